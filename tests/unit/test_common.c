/*
 * test_common.c - unit tests of common/'s small modules: FIDs, sizes,
 * durations, hex, whole-buffer I/O, log level parsing and escaping, names
 * escaped for display, and the secret-file rule.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fid.h"
#include "common/log.h"
#include "common/memtrim.h"
#include "common/util.h"
#include "tests/tap.h"

static void
test_fid(void)
{
	struct fid f, g;
	char buf[FID_STRLEN];

	is_int(fid_parse("0000002a.00112233445566778899aabbccddeeff", &f), 0,
	       "fid parse");
	is_int(f.vol, 42, "fid vol");
	ok(f.oid[0] == 0x00 && f.oid[15] == 0xff, "fid oid bytes");
	is_str(fid_fmt(&f, buf), "0000002a.00112233445566778899aabbccddeeff",
	       "fid format round trip");
	is_int(fid_parse("FFFFFFFF.00112233445566778899AABBCCDDEEFF", &g), 0,
	       "upper-case hex accepted");
	is_int(g.vol, 0xffffffffu, "max vol");
	is_str(fid_fmt(&g, buf), "ffffffff.00112233445566778899aabbccddeeff",
	       "formatted in lower case");
	is_int(fid_parse("0000002a.00112233445566778899aabbccddeef", &g),
	       -EINVAL, "short fid");
	is_int(fid_parse("0000002a.00112233445566778899aabbccddeeff0", &g),
	       -EINVAL, "long fid");
	is_int(fid_parse("0000002a-00112233445566778899aabbccddeeff", &g),
	       -EINVAL, "wrong separator");
	is_int(fid_parse("0000002g.00112233445566778899aabbccddeeff", &g),
	       -EINVAL, "bad vol digit");
	is_int(fid_parse("0000002a.0011223344556677889 aabbccddeeff", &g),
	       -EINVAL, "space in oid");
	is_int(fid_parse("", &g), -EINVAL, "empty fid");
	is_int(fid_parse(NULL, &g), -EINVAL, "NULL fid");
	is_int(fid_parse_n("0000002a.00112233445566778899aabbccddeeffXX", 41,
			   &g),
	       0, "fid_parse_n takes a prefix");
	ok(fid_eq(&f, &g), "fid_eq");
	g.oid[7] ^= 1;
	ok(!fid_eq(&f, &g), "fid_eq sees one bit");
	memset(&g, 0, sizeof(g));
	ok(fid_is_null(&g), "null fid");
	g.vol = 1;
	ok(!fid_is_null(&g), "vol only is not null");
	is_int(fid_random(42, &f), 0, "fid_random");
	is_int(fid_random(42, &g), 0, "fid_random again");
	ok(f.vol == 42 && !fid_eq(&f, &g), "random fids differ");
	/* fid_hash: the same FID the same hash; a counter in the last bytes
	 * of the oid, or in the volume, still spreads over the low bits
	 * (tables take them) and the high bits (fpset's fingerprints). */
	g = f;
	ok(fid_hash(&f) == fid_hash(&g), "fid_hash: equal fids, equal hashes");
	{
		unsigned lo[64] = {0}, hi[64] = {0}, lo_used = 0, hi_used = 0;

		for (uint32_t i = 0; i < 4096; i++) {
			struct fid c = {.vol = 7};

			memcpy(c.oid + 12, &i, sizeof(i));
			if (i >= 2048) {
				memset(c.oid, 0, sizeof(c.oid));
				c.vol = i;
			}
			lo[fid_hash(&c) & 63]++;
			hi[fid_hash(&c) >> 58]++;
		}
		for (int i = 0; i < 64; i++) {
			lo_used += lo[i] > 32;
			hi_used += hi[i] > 32;
		}
		is_int((int)lo_used, 64, "fid_hash: counter fids fill every low bucket");
		is_int((int)hi_used, 64, "fid_hash: ...and every high bucket");
	}
}

static void
test_size(void)
{
	static const struct {
		const char *s;
		int rc;
		uint64_t v;
	} t[] = {
		{"0", 0, 0},
		{"4096", 0, 4096},
		{"256K", 0, 256 << 10},
		{"256k", 0, 256 << 10},
		{"256KiB", 0, 256 << 10},
		{"256kib", 0, 256 << 10},
		{"256KB", 0, 256 << 10},
		{"10M", 0, 10 << 20},
		{"2G", 0, 2ull << 30},
		{"1T", 0, 1ull << 40},
		{"100B", 0, 100},
		{"18446744073709551615", 0, UINT64_MAX},
		{"16777215T", 0, 16777215ull << 40},
		{"16777216T", -ERANGE, 0},
		{"18446744073709551616", -ERANGE, 0},
		{"99999999999999999999999", -ERANGE, 0},
		{"", -EINVAL, 0},
		{"K", -EINVAL, 0},
		{"-1", -EINVAL, 0},
		{"+1", -EINVAL, 0},
		{" 1", -EINVAL, 0},
		{"1 ", -EINVAL, 0},
		{"1X", -EINVAL, 0},
		{"1Ki", -EINVAL, 0},
		{"1KiBx", -EINVAL, 0},
		{"1BB", -EINVAL, 0},
		{"1.5M", -EINVAL, 0},
		{"0x10", -EINVAL, 0},
	};
	uint64_t v;
	size_t i;
	char buf[32];

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		v = 12345;
		is_int(util_parse_size(t[i].s, &v), t[i].rc, "parse_size '%s'",
		       t[i].s);
		if (t[i].rc == 0)
			ok(v == t[i].v, "  value of '%s'", t[i].s);
		else
			ok(v == 12345, "  '%s' leaves *out alone", t[i].s);
	}
	is_int(util_parse_size(NULL, &v), -EINVAL, "parse_size NULL");
	is_str(util_fmt_size(0, buf, sizeof(buf)), "0 B", "fmt 0");
	is_str(util_fmt_size(1023, buf, sizeof(buf)), "1023 B", "fmt 1023");
	is_str(util_fmt_size(1536, buf, sizeof(buf)), "1.5 KiB", "fmt 1.5K");
	is_str(util_fmt_size(3ull << 30, buf, sizeof(buf)), "3.0 GiB",
	       "fmt 3G");
	is_str(util_fmt_size(UINT64_MAX, buf, sizeof(buf)), "16384.0 PiB",
	       "fmt max");
}

static void
test_duration(void)
{
	uint64_t ms;

	is_int(util_parse_duration_ms("500ms", &ms), 0, "500ms");
	is_int(ms, 500, "500ms value");
	is_int(util_parse_duration_ms("3s", &ms), 0, "3s");
	is_int(ms, 3000, "3s value");
	is_int(util_parse_duration_ms("3", &ms), 0, "bare seconds");
	is_int(ms, 3000, "bare value");
	is_int(util_parse_duration_ms("2m", &ms), 0, "2m");
	is_int(ms, 120000, "2m value");
	is_int(util_parse_duration_ms("1h", &ms), 0, "1h");
	is_int(ms, 3600000, "1h value");
	is_int(util_parse_duration_ms("1d", &ms), -EINVAL, "unknown unit");
	is_int(util_parse_duration_ms("-1s", &ms), -EINVAL, "negative");
	is_int(util_parse_duration_ms("", &ms), -EINVAL, "empty");
	is_int(util_parse_duration_ms("s", &ms), -EINVAL, "unit only");
	is_int(util_parse_duration_ms("18446744073709551615s", &ms), -ERANGE,
	       "seconds overflow");
	is_int(util_parse_duration_ms("18446744073709551615ms", &ms), 0,
	       "max ms");
	is_int(util_parse_duration_ms("99999999999999999999999ms", &ms),
	       -ERANGE, "strtoull overflow");
}

static void
test_hex(void)
{
	uint8_t in[4] = {0x00, 0x7f, 0xa5, 0xff}, out[4];
	char buf[9];

	util_hex_encode(in, 4, buf);
	is_str(buf, "007fa5ff", "hex encode");
	util_hex_encode(in, 0, buf);
	is_str(buf, "", "hex encode empty");
	is_int(util_hex_decode("007fa5ff", 8, out, 4), 4, "hex decode");
	ok(!memcmp(in, out, 4), "hex round trip");
	is_int(util_hex_decode("007FA5FF", 8, out, 4), 4, "upper-case hex");
	is_int(util_hex_decode("007fa5f", 7, out, 4), -EINVAL, "odd length");
	is_int(util_hex_decode("007fa5fg", 8, out, 4), -EINVAL, "bad digit");
	is_int(util_hex_decode("0x", 2, out, 4), -EINVAL, "0x");
	is_int(util_hex_decode("007fa5ff00", 10, out, 4), -ERANGE,
	       "output too small");
	is_int(util_hex_decode("", 0, out, 4), 0, "empty");
}

static void
test_io(void)
{
	char dir[] = "/tmp/cairn-common-XXXXXX", path[128], sub[160];
	char buf[64];
	struct stat st;
	int fd;

	if (!mkdtemp(dir)) {
		skip(8, "mkdtemp failed");
		return;
	}
	snprintf(path, sizeof(path), "%s/f", dir);
	fd = open(path, O_RDWR | O_CREAT, 0600);
	ok(fd >= 0, "open temp file");
	is_int(util_write_all(fd, "hello world", 11), 0, "write_all");
	is_int(util_pwrite_all(fd, "W", 1, 6), 0, "pwrite_all");
	is_int(util_pread_all(fd, buf, sizeof(buf), 0), 11,
	       "pread_all stops at end of file");
	ok(!memcmp(buf, "hello World", 11), "contents");
	is_int(util_pread_all(fd, buf, 4, 100), 0, "pread past end");
	is_int(util_write_all(-1, "x", 1), -EBADF, "write_all bad fd");
	close(fd);
	is_int(util_fsync_parent(path), 0, "fsync_parent");
	snprintf(sub, sizeof(sub), "%s/a/b/c", dir);
	is_int(util_mkdir_p(sub, 0700), 0, "mkdir_p");
	ok(stat(sub, &st) == 0 && S_ISDIR(st.st_mode), "made the tree");
	is_int(util_mkdir_p(sub, 0700), 0, "mkdir_p again");
	is_int(util_mkdir_p(path, 0700), -ENOTDIR,
	       "mkdir_p on an existing file is ENOTDIR");
	{
		uint64_t a = util_now_ms(), b = util_now_ms();

		ok(b >= a, "monotonic clock");
	}
	{
		char link[160];
		struct dirent *de;
		int n = 0, fl;
		DIR *d = util_opendirat(AT_FDCWD, dir, 0);

		ok(d != NULL, "opendirat of a directory");
		while (d && (de = readdir(d)))
			if (!strcmp(de->d_name, "f") || !strcmp(de->d_name, "a"))
				n++;
		is_int(n, 2, "lists its entries");
		fl = d ? fcntl(dirfd(d), F_GETFD) : -1;
		ok(fl >= 0 && (fl & FD_CLOEXEC), "close-on-exec");
		if (d)
			closedir(d);
		errno = 0;
		ok(!util_opendirat(AT_FDCWD, path, 0) && errno == ENOTDIR,
		   "opendirat of a file: NULL, ENOTDIR");
		errno = 0;
		ok(!util_opendirat(AT_FDCWD, "/nonexistent-cairn-dir", 0) &&
			   errno == ENOENT,
		   "opendirat of nothing: NULL, ENOENT");
		snprintf(link, sizeof(link), "%s/l", dir);
		if (symlink("a", link) == 0) {
			d = util_opendirat(AT_FDCWD, link, 0);
			ok(d != NULL, "a symlink to a directory is followed");
			if (d)
				closedir(d);
			errno = 0;
			ok(!util_opendirat(AT_FDCWD, link, O_NOFOLLOW) &&
				   (errno == ELOOP || errno == ENOTDIR),
			   "but not with O_NOFOLLOW");
			unlink(link);
		} else {
			skip(2, "symlink failed");
		}
	}
	unlink(path);
	snprintf(sub, sizeof(sub), "%s/a/b/c", dir);
	rmdir(sub);
	snprintf(sub, sizeof(sub), "%s/a/b", dir);
	rmdir(sub);
	snprintf(sub, sizeof(sub), "%s/a", dir);
	rmdir(sub);
	rmdir(dir);
}

static void
test_log(void)
{
	is_int(log_parse_level("err"), LOG_ERR, "err");
	is_int(log_parse_level("warn"), LOG_WARNING, "warn");
	is_int(log_parse_level("info"), LOG_INFO, "info");
	is_int(log_parse_level("debug"), LOG_DEBUG, "debug");
	is_int(log_parse_level("7"), LOG_DEBUG, "number");
	is_int(log_parse_level("loud"), -EINVAL, "unknown level");
	is_int(log_parse_level(""), -EINVAL, "empty level");
	is_int(log_parse_level("8"), -EINVAL, "level out of range");
	is_int(log_parse_level("-1"), -EINVAL, "negative level");
	log_init("test_common", 0, LOG_WARNING);
	is_int(log_get_level(), LOG_WARNING, "level set");
	ok(!log_enabled(LOG_INFO) && log_enabled(LOG_ERR), "log_enabled");
	log_set_level(LOG_DEBUG);
	ok(log_enabled(LOG_DEBUG), "set_level");
	log_set_level(LOG_ERR);

	/* A name with a newline and an escape sequence stays on one line,
	 * escaped: it cannot forge a second log line. */
	{
		char path[] = "/tmp/cairn-log-XXXXXX", buf[512] = "";
		int fd = mkstemp(path), saved = dup(STDERR_FILENO);
		ssize_t n = -1;

		if (fd >= 0 && saved >= 0 && dup2(fd, STDERR_FILENO) >= 0) {
			log_err(LOG_MAIN, "cannot open '%s'",
				"a\n2026-01-01 forged\x1b[2J");
			dup2(saved, STDERR_FILENO);
			n = pread(fd, buf, sizeof(buf) - 1, 0);
		}
		buf[n > 0 ? n : 0] = 0;
		ok(n > 0 && strchr(buf, '\n') == buf + n - 1 &&
			   strstr(buf, "cannot open 'a\\n2026-01-01 forged"
				       "\\x1b[2J'") &&
			   !strchr(buf, 0x1b),
		   "log line escaped, one line");
		if (fd >= 0)
			close(fd);
		if (saved >= 0)
			close(saved);
		unlink(path);
	}
}

/* util_escape() of @n bytes at @in must give @want. */
static void
esc_is(const char *in, size_t n, const char *want, const char *desc)
{
	char out[256];
	size_t len = util_escape(in, n, out, sizeof(out));

	is_str(out, want, "escape: %s", desc);
	is_int((int)len, (int)strlen(want), "escape: %s (length)", desc);
}

static void
test_escape(void)
{
	char small[6], *d;
	size_t len;

	esc_is("plain name.txt", 14, "plain name.txt", "printable ASCII kept");
	esc_is("a\nb", 3, "a\\nb", "newline");
	esc_is("\a\b\t\v\f\r", 6, "\\a\\b\\t\\v\\f\\r", "C escapes");
	esc_is("\x1b[31mred", 8, "\\x1b[31mred", "ESC");
	esc_is("x\x7f", 2, "x\\x7f", "DEL");
	esc_is("a\\b", 3, "a\\\\b", "backslash doubled (unambiguous)");
	esc_is("a\0b", 3, "a\\x00b", "NUL inside a counted buffer");
	esc_is("\x01\x1f", 2, "\\x01\\x1f", "other C0 controls");
	esc_is("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14,
	       "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
	       "valid UTF-8 (2, 3 and 4 bytes) kept");
	esc_is("x\xffy", 3, "x\\xffy", "invalid byte 0xff");
	esc_is("\xc3", 1, "\\xc3", "truncated sequence");
	esc_is("\xc3(", 2, "\\xc3(", "bad continuation");
	esc_is("\xc0\xaf", 2, "\\xc0\\xaf", "overlong '/'");
	esc_is("\xe0\x80\xaf", 3, "\\xe0\\x80\\xaf", "overlong 3-byte");
	esc_is("\xed\xa0\x80", 3, "\\xed\\xa0\\x80", "UTF-16 surrogate");
	esc_is("\xf4\x90\x80\x80", 4, "\\xf4\\x90\\x80\\x80", "above U+10FFFF");
	esc_is("\xc2\x9b"
	       "2J",
	       4,
	       "\\xc2\\x9b"
	       "2J",
	       "C1 control (CSI) escaped");
	esc_is("\xc2\xa0", 2, "\xc2\xa0", "U+00A0 kept");
	esc_is("a\xe2\x80\xaetxt.exe", 11, "a\\u{202e}txt.exe",
	       "U+202E right-to-left override escaped");
	esc_is("\xe2\x80\xaa\xe2\x80\xab\xe2\x80\xac\xe2\x80\xad", 12,
	       "\\u{202a}\\u{202b}\\u{202c}\\u{202d}",
	       "U+202A..U+202D embeddings and overrides");
	esc_is("\xe2\x81\xa6\xe2\x81\xa9", 6, "\\u{2066}\\u{2069}",
	       "U+2066..U+2069 isolates");
	esc_is("\xe2\x80\x8e\xe2\x80\x8f\xd8\x9c", 8,
	       "\\u{200e}\\u{200f}\\u{61c}", "LRM, RLM, ALM");
	esc_is("a\xe2\x80\xa8" "b\xe2\x80\xa9", 8, "a\\u{2028}b\\u{2029}",
	       "line and paragraph separators");
	esc_is("\xe2\x80\x8d\xe2\x80\xaf\xe2\x81\xa5", 9,
	       "\xe2\x80\x8d\xe2\x80\xaf\xe2\x81\xa5",
	       "neighbours kept (U+200D, U+202F, U+2065)");
	/* snprintf-like truncation. */
	len = util_escape("ab\ncd", 5, small, sizeof(small));
	is_int((int)len, 6, "truncated: full length reported");
	is_str(small, "ab\\nc", "truncated: NUL-terminated prefix");
	is_int((int)util_escape("\n", 1, NULL, 0), 2, "length only");
	d = util_escape_dup("new\nline");
	is_str(d, "new\\nline", "escape_dup");
	free(d);
	ok(!util_escape_dup(NULL) && errno == EINVAL, "escape_dup(NULL)");
}

static void
test_secret_file(void)
{
	char dir[] = "/tmp/cairn-secret-XXXXXX", path[128], why[512];
	int fd;

	if (!mkdtemp(dir)) {
		skip(5, "mkdtemp failed");
		return;
	}
	snprintf(path, sizeof(path), "%s/tok", dir);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	fchmod(fd, 0600);
	is_int(util_check_secret_file(fd, path, why, sizeof(why)), 0,
	       "0600 file of ours is fine");
	fchmod(fd, 0400);
	is_int(util_check_secret_file(fd, path, why, sizeof(why)), 0,
	       "0400 is fine too");
	fchmod(fd, 0644);
	is_int(util_check_secret_file(fd, path, why, sizeof(why)), -EPERM,
	       "0644 refused");
	ok(strstr(why, "mode 0644") && strstr(why, "owner ") &&
		   strstr(why, "chmod 600 '") && strstr(why, path),
	   "the reason names mode, owner, fix and file: %s", why);
	fchmod(fd, 0620);
	is_int(util_check_secret_file(fd, path, why, sizeof(why)), -EPERM,
	       "group-writable refused");
	if (geteuid() == 0 && fchown(fd, 65534, 65534) == 0) {
		fchmod(fd, 0600);
		is_int(util_check_secret_file(fd, path, why, sizeof(why)),
		       -EPERM, "another user's 0600 file refused");
		ok(strstr(why, "owned by another user") &&
			   strstr(why, "chown "),
		   "the reason says chown: %s", why);
	} else {
		skip(2, "not root: cannot give the file away");
	}
	close(fd);
	fd = open(dir, O_RDONLY | O_DIRECTORY);
	is_int(util_check_secret_file(fd, dir, why, sizeof(why)), -EPERM,
	       "a directory refused");
	close(fd);
	unlink(path);
	rmdir(dir);
}

/* memtrim: notes under MEMTRIM_MIN trim nothing; crossing it trims once,
 * after the notes went quiet; a steady stream is trimmed within
 * MEMTRIM_MAX_DELAY_MS. */
static void
test_memtrim(void)
{
	uint64_t n0 = memtrim_count(), t0;

	memtrim_note(0);
	memtrim_note(MEMTRIM_MIN / 4);
	usleep((MEMTRIM_QUIET_MS + 200) * 1000);
	is_int((int)(memtrim_count() - n0), 0, "memtrim: a little, no trim");
	t0 = util_now_ms();
	memtrim_note(MEMTRIM_MIN);
	is_int((int)(memtrim_count() - n0), 0, "  not at once");
	while (memtrim_count() == n0 && util_now_ms() - t0 < 10000)
		usleep(20000);
	is_int((int)(memtrim_count() - n0), 1, "  once the notes are quiet");
	ok(util_now_ms() - t0 >= MEMTRIM_QUIET_MS - 20, "  not before");
	/* Notes every 50 ms, never quiet: trimmed anyway. */
	n0 = memtrim_count();
	t0 = util_now_ms();
	while (memtrim_count() == n0 && util_now_ms() - t0 < 10000) {
		memtrim_note(MEMTRIM_MIN);
		usleep(50000);
	}
	ok(memtrim_count() > n0 &&
		   util_now_ms() - t0 < MEMTRIM_MAX_DELAY_MS + 2000,
	   "  a steady stream is trimmed within the max delay");
	/* A work note trims too (keeping the heap's top). */
	n0 = memtrim_count();
	t0 = util_now_ms();
	memtrim_note_work(MEMTRIM_MIN);
	while (memtrim_count() == n0 && util_now_ms() - t0 < 10000)
		usleep(20000);
	is_int((int)(memtrim_count() - n0), 1, "  a work note trims once");
	/* A forked child (cairnd going to the background) starts its own
	 * helper thread. (ThreadSanitizer stops a child of a threaded
	 * process that starts a thread: die_after_fork.) */
#ifdef __SANITIZE_THREAD__
	skip(1, "a thread in a forked child under ThreadSanitizer");
#else
	{
		pid_t pid = fork();
		int st = -1;

		if (pid == 0) {
			uint64_t c0 = memtrim_count(), t1 = util_now_ms();

			memtrim_note(MEMTRIM_MIN);
			while (memtrim_count() == c0 &&
			       util_now_ms() - t1 < 10000)
				usleep(20000);
			_exit(memtrim_count() > c0 ? 0 : 1);
		}
		if (pid > 0)
			waitpid(pid, &st, 0);
		ok(pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		   "  and trims in a forked child too");
	}
#endif
}

/* util_deadline: now plus the milliseconds, nanoseconds normalized. */
static void
test_deadline(void)
{
	struct timespec a, d, b;
	long long ns;

	clock_gettime(CLOCK_MONOTONIC, &a);
	util_deadline(&d, CLOCK_MONOTONIC, 1999);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ok(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L,
	   "deadline: nanoseconds normalized (%ld)", (long)d.tv_nsec);
	ns = (long long)(d.tv_sec - a.tv_sec) * 1000000000LL +
	     (d.tv_nsec - a.tv_nsec);
	ok(ns >= 1999000000LL, "deadline: at least 1999 ms after before");
	ns = (long long)(d.tv_sec - b.tv_sec) * 1000000000LL +
	     (d.tv_nsec - b.tv_nsec);
	ok(ns <= 1999000000LL, "deadline: at most 1999 ms after after");
	util_deadline(&d, CLOCK_REALTIME, 0);
	ok(d.tv_sec > 1000000000, "deadline: of the clock asked (realtime)");
}

int
main(void)
{
	test_fid();
	test_size();
	test_duration();
	test_hex();
	test_io();
	test_log();
	test_escape();
	test_secret_file();
	test_memtrim();
	test_deadline();
	return done_testing();
}
