/*
 * util.h - small helpers every cairn program needs: sizes, hex, whole-buffer
 * I/O, monotonic time. No policy, no allocation unless said.
 */
#ifndef CAIRN_UTIL_H
#define CAIRN_UTIL_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* Parse "4096", "256K", "10M", "2G", "1T" (binary units, optional "iB" or
 * "B"). @return 0 and *out, or -EINVAL / -ERANGE; *out untouched then. */
int util_parse_size(const char *s, uint64_t *out);

/* Format @bytes as "1.5 GiB" into @buf of @len bytes; returns @buf. */
char *util_fmt_size(uint64_t bytes, char *buf, size_t len);

/* Parse a duration "500ms", "3s", "2m", "1h" or plain seconds into
 * milliseconds. @return 0 or -EINVAL / -ERANGE. */
int util_parse_duration_ms(const char *s, uint64_t *out_ms);

/* Lower-case hex of @len bytes into @out (2*len+1 bytes, NUL-terminated). */
void util_hex_encode(const void *in, size_t len, char *out);

/* Decode exactly @inlen hex digits into at most @outlen bytes.
 * @return the number of bytes written, or -EINVAL on a bad digit or odd
 * length, -ERANGE if @out is too small. */
int util_hex_decode(const char *in, size_t inlen, void *out, size_t outlen);

/* pwrite()/write() the whole buffer, retrying on EINTR and short writes.
 * @return 0 or -errno. */
int util_write_all(int fd, const void *buf, size_t len);
int util_pwrite_all(int fd, const void *buf, size_t len, off_t off);

/* pread() until @len bytes or end of file. @return bytes read or -errno. */
ssize_t util_pread_all(int fd, void *buf, size_t len, off_t off);

/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t util_now_ms(void);

/* FNV-1a, 64 bits, of @len bytes at @p. Stable: cairn-vold places a
 * directory's names in buckets by it (vol/volstore_i.h). */
static inline uint64_t
util_fnv1a(const void *p, size_t len)
{
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}
/* *@ts = now on @clock plus @ms, normalized: the deadline of a
 * pthread_cond_timedwait() on a condition variable of that clock. */
void util_deadline(struct timespec *ts, clockid_t clock, uint64_t ms);
/* Wall-clock time in nanoseconds since the epoch (file times). */
int64_t util_wall_ns(void);

/* fsync() the directory that holds @path (after a rename into it).
 * @return 0 or -errno. */
int util_fsync_parent(const char *path);

/* mkdir -p with @mode. @return 0 or -errno. */
int util_mkdir_p(const char *path, mode_t mode);

/* opendir(3) of @path under @dirfd (openat(2) with O_RDONLY |
 * O_DIRECTORY | O_CLOEXEC and @flags, e.g. O_NOFOLLOW). NULL with errno
 * set on failure; closedir() closes the descriptor. */
DIR *util_opendirat(int dirfd, const char *path, int flags);

/*
 * Check that the open file @fd, named @path, is fit to hold a secret (a
 * bearer token, the server's key): a regular file owned by the effective
 * uid, with no permission bit for group or others (a token is as good as
 * the access it grants, so "readable by the owner alone" is the rule). The
 * caller opens @path with O_NOFOLLOW, so a symbolic link never gets here.
 * On refusal @why (@whylen bytes) says what is wrong and the fix, naming
 * the file, its mode and its owner, ready for a log line, e.g.
 * "mode 0644, owner root (uid 0): others may read it; fix: chmod 600
 * '/etc/cairn/home.token'; chown cairn '/etc/cairn/home.token'".
 * @return 0, -EPERM (refused; @why set), or -errno of fstat().
 */
int util_check_secret_file(int fd, const char *path, char *why, size_t whylen);

/*
 * Escape @len bytes at @in for display on a terminal or in a log line, as
 * C escapes: \a \b \t \n \v \f \r, "\\" for a backslash, \xHH for
 * any other byte below 0x20, DEL (0x7f), the C1 controls U+0080..U+009F
 * (both bytes) and every byte that is not part of valid UTF-8 (overlong
 * forms, surrogates and code points above U+10FFFF count as invalid).
 * Code points that reorder or split the text invisibly are written
 * \u{HEX}: the bidi controls U+202A..U+202E, U+2066..U+2069, U+200E,
 * U+200F, U+061C and the separators U+2028, U+2029.
 * Printable ASCII and other valid UTF-8 are kept as they are. Names may hold
 * any byte but '/' and NUL; this keeps what a user sees unambiguous and
 * keeps a hostile name from moving the cursor or forging log lines.
 * Writes at most @outlen bytes to @out, always NUL-terminated when
 * @outlen > 0. @return the length the whole escaped text needs (without
 * the NUL), like snprintf(); at most 4 * @len. Any thread.
 */
size_t util_escape(const char *in, size_t len, char *out, size_t outlen);

/* util_escape() of the NUL-terminated @s into a heap string the caller
 * frees. @return NULL and errno ENOMEM if out of memory; NULL @s gives
 * NULL with errno EINVAL. */
char *util_escape_dup(const char *s);

#endif /* CAIRN_UTIL_H */
