/*
 * cs_test_util.h - helpers shared by the chunk store tests: temporary
 * folders, keys, content derived from a chunk's tag (so any chunk read back
 * can be verified without a reference copy), a capturing log callback and
 * running cairn-fsck as a separate process.
 */
#ifndef CAIRN_CS_TEST_UTIL_H
#define CAIRN_CS_TEST_UTIL_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "chunkstore/cs.h"

static inline uint64_t
t_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static inline int
t_rm_cb(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	remove(path);
	return 0;
}

static inline void
t_rm_rf(const char *path)
{
	nftw(path, t_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Make a fresh temporary folder named after @tag into @buf. */
static inline char *
t_mkdtemp(char *buf, size_t n, const char *tag)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(buf, n, "%s/cs-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
	if (!mkdtemp(buf)) {
		perror("mkdtemp");
		exit(99);
	}
	return buf;
}

static inline struct cs_key
t_key(uint32_t vol, unsigned file, uint64_t chunk)
{
	struct cs_key k;

	memset(&k, 0, sizeof(k));
	k.vol = vol;
	k.fid[0] = (uint8_t)file;
	k.fid[1] = (uint8_t)(file >> 8);
	k.fid[15] = 0xa5;
	k.chunk = chunk;
	return k;
}

/* The length and bytes of the chunk (@k, @dv): a pure function of both. */
static inline uint32_t
t_len(const struct cs_key *k, uint64_t dv, uint32_t max)
{
	uint64_t h = t_mix(k->vol ^ t_mix(k->chunk ^ t_mix(dv)) ^ k->fid[0] ^
			   (uint64_t)k->fid[1] << 8);

	return (uint32_t)(h % max) + 1;
}

static inline void
t_fill(uint8_t *buf, uint32_t len, const struct cs_key *k, uint64_t dv)
{
	uint64_t seed = t_mix(k->vol ^ t_mix(k->chunk ^ t_mix(dv ^ 77)) ^
			      k->fid[0] ^ (uint64_t)k->fid[1] << 8);

	for (uint32_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(t_mix(seed + i / 8) >> (8 * (i % 8)));
}

/* Does @buf hold exactly the content of (@k, @dv)? */
static inline int
t_check(const uint8_t *buf, size_t len, const struct cs_key *k, uint64_t dv,
	uint32_t max)
{
	uint8_t *want;
	int ok;

	if (len != t_len(k, dv, max))
		return 0;
	want = malloc(len ? len : 1);
	t_fill(want, (uint32_t)len, k, dv);
	ok = !memcmp(want, buf, len);
	free(want);
	return ok;
}

/* Store (@k, @dv) with its derived content. */
static inline int
t_put(struct cs_store *cs, const struct cs_key *k, uint64_t dv, uint32_t max,
      unsigned flags)
{
	uint32_t len = t_len(k, dv, max);
	uint8_t *buf = malloc(len);
	int rc;

	t_fill(buf, len, k, dv);
	rc = cs_put(cs, k, dv, buf, len, flags);
	free(buf);
	return rc;
}

static char t_last_log[512];
static int t_nlog;
static int t_quiet_log = 1;

static inline void
t_log(void *arg, int level, const char *msg)
{
	(void)arg;
	snprintf(t_last_log, sizeof(t_last_log), "%s", msg);
	t_nlog++;
	if (!t_quiet_log || getenv("CS_TEST_VERBOSE"))
		printf("# log(%d): %s\n", level, msg);
}

static inline struct cs_params
t_params(uint32_t chunk)
{
	struct cs_params p;

	memset(&p, 0, sizeof(p));
	p.chunk_size = chunk;
	p.log = t_log;
	return p;
}

/* Where cairn-fsck is: $CAIRN_FSCK, else $top_builddir/admin/cairn-fsck. */
static inline const char *
t_fsck_path(void)
{
	static char path[1024];
	const char *env = getenv("CAIRN_FSCK"), *top = getenv("top_builddir");

	if (env && *env)
		return env;
	snprintf(path, sizeof(path), "%s/admin/cairn-fsck",
		 top && *top ? top : ".");
	return access(path, X_OK) == 0 ? path : NULL;
}

/* Run cairn-fsck @mode (e.g. "--check") on @dir in another process.
 * @return its exit status, or -1 if it did not exit normally. */
static inline int
t_run_fsck(const char *fsck, const char *mode, const char *dir, int quiet)
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		if (quiet) {
			int fd = open("/dev/null", O_WRONLY);

			dup2(fd, 1);
		}
		execl(fsck, fsck, mode, "--quiet", dir, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#endif /* CAIRN_CS_TEST_UTIL_H */
