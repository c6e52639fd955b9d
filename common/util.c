/*
 * util.c - sizes, durations, hex and whole-buffer I/O (see util.h).
 */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

int
util_parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -ERANGE;
	switch (toupper((unsigned char)*end)) {
	case 0:
		break;
	case 'K':
		shift = 10;
		break;
	case 'M':
		shift = 20;
		break;
	case 'G':
		shift = 30;
		break;
	case 'T':
		shift = 40;
		break;
	case 'B':
		break;
	default:
		return -EINVAL;
	}
	if (*end) {
		end++;
		if (shift && (!strcasecmp(end, "iB") || !strcasecmp(end, "B")))
			end += strlen(end);
		if (*end)
			return -EINVAL;
	}
	if (shift && v > (ULLONG_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

char *
util_fmt_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB",
					     "PiB" };
	double v = (double)bytes;
	unsigned u = 0;

	while (v >= 1024 && u < sizeof(units) / sizeof(units[0]) - 1) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

int
util_parse_duration_ms(const char *s, uint64_t *out_ms)
{
	unsigned long long v, mul;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -ERANGE;
	if (!*end || !strcmp(end, "s"))
		mul = 1000;
	else if (!strcmp(end, "ms"))
		mul = 1;
	else if (!strcmp(end, "m"))
		mul = 60000;
	else if (!strcmp(end, "h"))
		mul = 3600000;
	else
		return -EINVAL;
	if (v > ULLONG_MAX / mul)
		return -ERANGE;
	*out_ms = v * mul;
	return 0;
}

void
util_hex_encode(const void *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *p = in;
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * len] = 0;
}

/* The value of each hex digit plus one (0: not a digit): FIDs in
 * listings are decoded 100,000 a big directory. */
static const uint8_t hexval1[256] = {
	['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,
	['5'] = 6,  ['6'] = 7,  ['7'] = 8,  ['8'] = 9,  ['9'] = 10,
	['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15,
	['f'] = 16, ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14,
	['E'] = 15, ['F'] = 16};

static int
hexval(int c)
{
	return (int)hexval1[(unsigned char)c] - 1;
}

int
util_hex_decode(const char *in, size_t inlen, void *out, size_t outlen)
{
	unsigned char *o = out;
	size_t i;
	int hi, lo;

	if (inlen % 2)
		return -EINVAL;
	if (inlen / 2 > outlen)
		return -ERANGE;
	for (i = 0; i < inlen; i += 2) {
		hi = hexval((unsigned char)in[i]);
		lo = hexval((unsigned char)in[i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		o[i / 2] = (unsigned char)(hi << 4 | lo);
	}
	return (int)(inlen / 2);
}

int
util_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= n;
	}
	return 0;
}

int
util_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = pwrite(fd, p, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= n;
		off += n;
	}
	return 0;
}

ssize_t
util_pread_all(int fd, void *buf, size_t len, off_t off)
{
	char *p = buf;
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = pread(fd, p + got, len - got, off + got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		got += n;
	}
	return (ssize_t)got;
}

uint64_t
util_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
util_deadline(struct timespec *ts, clockid_t clock, uint64_t ms)
{
	clock_gettime(clock, ts);
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

int64_t
util_wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int
util_fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	char *slash;
	int fd, rc = 0;

	if (strlen(path) >= sizeof(dir))
		return -ENAMETOOLONG;
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = 0;
	else
		*slash = 0;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

DIR *
util_opendirat(int dirfd, const char *path, int flags)
{
	int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | flags);
	DIR *d;

	if (fd < 0)
		return NULL;
	d = fdopendir(fd);
	if (!d) {
		int e = errno;

		close(fd);
		errno = e;
	}
	return d;
}

int
util_mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	char *p;

	if (strlen(path) >= sizeof(buf))
		return -ENAMETOOLONG;
	strcpy(buf, path);
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0) {
		struct stat st;

		if (errno != EEXIST)
			return -errno;
		/* An existing file of that name is not the directory the
		 * caller asked for. */
		if (stat(buf, &st) < 0)
			return -errno;
		if (!S_ISDIR(st.st_mode))
			return -ENOTDIR;
	}
	return 0;
}

int
util_check_secret_file(int fd, const char *path, char *why, size_t whylen)
{
	struct passwd pw, *pp = NULL, mpw, *mp = NULL;
	char pbuf[1024], mbuf[1024], owner[64], me[64];
	const char *what = NULL;
	uid_t euid = geteuid();
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISREG(st.st_mode) && st.st_uid == euid && !(st.st_mode & 077))
		return 0;
	if (!S_ISREG(st.st_mode))
		what = "not a regular file";
	else if (st.st_uid != euid)
		what = "owned by another user";
	else
		what = "group or others may read or change it";
	getpwuid_r(st.st_uid, &pw, pbuf, sizeof(pbuf), &pp);
	getpwuid_r(euid, &mpw, mbuf, sizeof(mbuf), &mp);
	if (pp)
		snprintf(owner, sizeof(owner), "%s (uid %u)", pp->pw_name,
			 (unsigned)st.st_uid);
	else
		snprintf(owner, sizeof(owner), "uid %u", (unsigned)st.st_uid);
	if (mp)
		snprintf(me, sizeof(me), "%s", mpw.pw_name);
	else
		snprintf(me, sizeof(me), "%u", (unsigned)euid);
	if (!S_ISREG(st.st_mode))
		snprintf(why, whylen, "mode %04o, owner %s: %s",
			 (unsigned)(st.st_mode & 07777), owner, what);
	else
		snprintf(why, whylen,
			 "mode %04o, owner %s: %s; it must be readable by %s "
			 "alone; fix: chmod 600 '%s'; chown %s '%s'",
			 (unsigned)(st.st_mode & 07777), owner, what, me, path,
			 me, path);
	return -EPERM;
}

/* Length of the valid UTF-8 sequence of 2..4 bytes at @s (at most @n
 * bytes), or 0 when it is not one (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
static size_t
utf8_len(const unsigned char *s, size_t n, uint32_t *out)
{
	size_t len, i;
	uint32_t cp;

	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	*out = cp;
	return len;
}

/* Code points that reorder or break the text around them on a terminal
 * without being visible: bidi embeddings, overrides and isolates, the
 * marks (LRM, RLM, ALM), and the line and paragraph separators. A name
 * holding U+202E shows its end first ("txt.exe" as "exe.txt"). */
static bool
utf8_invisible(uint32_t cp)
{
	return (cp >= 0x202a && cp <= 0x202e) ||
	       (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200e || cp == 0x200f ||
	       cp == 0x061c || cp == 0x2028 || cp == 0x2029;
}

size_t
util_escape(const char *in, size_t len, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)in;
	size_t i = 0, o = 0, k;
	uint32_t cp = 0;
	char e;

#define PUT(c)                                                                 \
	do {                                                                   \
		if (o + 1 < outlen)                                            \
			out[o] = (c);                                          \
		o++;                                                           \
	} while (0)
	while (i < len) {
		unsigned char c = s[i];

		e = 0;
		if (c >= 0x20 && c < 0x7f && c != '\\') {
			PUT((char)c);
			i++;
			continue;
		}
		if (c >= 0x80 && (k = utf8_len(s + i, len - i, &cp)) &&
		    !(c == 0xc2 && s[i + 1] < 0xa0)) {
			if (utf8_invisible(cp)) {
				char u[16];

				/* "\u{202e}": at most 8 bytes for 2 or 3. */
				snprintf(u, sizeof(u), "\\u{%x}", (unsigned)cp);
				for (char *q = u; *q; q++)
					PUT(*q);
				i += k;
				continue;
			}
			for (; k; k--)
				PUT((char)s[i++]);
			continue;
		}
		switch (c) {
		case '\a':
			e = 'a';
			break;
		case '\b':
			e = 'b';
			break;
		case '\t':
			e = 't';
			break;
		case '\n':
			e = 'n';
			break;
		case '\v':
			e = 'v';
			break;
		case '\f':
			e = 'f';
			break;
		case '\r':
			e = 'r';
			break;
		case '\\':
			e = '\\';
			break;
		default:
			break;
		}
		PUT('\\');
		if (e) {
			PUT(e);
		} else {
			PUT('x');
			PUT(hex[c >> 4]);
			PUT(hex[c & 15]);
		}
		i++;
	}
#undef PUT
	if (outlen)
		out[o < outlen ? o : outlen - 1] = '\0';
	return o;
}

char *
util_escape_dup(const char *s)
{
	size_t len, n;
	char *out;

	if (!s) {
		errno = EINVAL;
		return NULL;
	}
	len = strlen(s);
	n = util_escape(s, len, NULL, 0);
	out = malloc(n + 1);
	if (!out)
		return NULL;
	util_escape(s, len, out, n + 1);
	return out;
}
