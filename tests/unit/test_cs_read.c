/*
 * test_cs_read.c - the read side of the chunk store's fd cache: a read
 * neither dirties a chunk file's inode (O_NOATIME: its atime stays what
 * it was) nor stops seeing damage, and the cached fd is the one read.
 */
#include "tests/unit/cs_test_util.h"

#include <sys/time.h>

#include "chunkstore/cs_i.h"
#include "tests/tap.h"

#define CHUNK CS_CHUNK_MIN
#define OLD_ATIME 946684800 /* 2000-01-01: relatime would update it */

static char base[256];

static struct cs_store *
mkstore(const char *dir)
{
	struct cs_params p = t_params(CHUNK);
	int err = 0;

	if (cs_create(dir, &p) < 0)
		return NULL;
	return cs_open(dir, &p, &err);
}

static char *
newdir(char *buf, size_t n, const char *tag)
{
	snprintf(buf, n, "%s/%s", base, tag);
	if (mkdir(buf, 0700) < 0 && errno != EEXIST) {
		perror("mkdir");
		exit(99);
	}
	return buf;
}

/* The chunk file of @k: its path under @dir. */
static int
chunk_file(struct cs_store *cs, const char *dir, const struct cs_key *k,
	   char *path, size_t n)
{
	struct cs_info info;
	char rel[CS_PATH_MAX];

	if (cs_lookup(cs, k, &info) < 0)
		return -1;
	cs_chunk_path(rel, info.slot, NULL);
	snprintf(path, n, "%s/%s", dir, rel);
	return 0;
}

/* Is some fd of this process open on @path with O_NOATIME? */
static int
open_noatime(const char *path)
{
	struct stat want, st;
	char p[64], line[128];
	FILE *f;
	int found = 0;

	if (stat(path, &want) < 0)
		return -1;
	for (int fd = 3; fd < 1024; fd++) {
		unsigned long flags = 0;

		if (fstat(fd, &st) < 0 || st.st_ino != want.st_ino ||
		    st.st_dev != want.st_dev)
			continue;
		snprintf(p, sizeof(p), "/proc/self/fdinfo/%d", fd);
		if (!(f = fopen(p, "r")))
			continue;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "flags: %lo", &flags) == 1)
				break;
		fclose(f);
		if (!(flags & O_NOATIME))
			return 0;
		found = 1;
	}
	return found;
}

static void
test_atime(void)
{
	char d[320], path[512];
	struct cs_store *cs = mkstore(newdir(d, sizeof(d), "atime"));
	struct cs_key k = t_key(3, 1, 0);
	uint32_t len = t_len(&k, 1, CHUNK);
	struct timespec ts[2] = {{OLD_ATIME, 0}, {0, UTIME_OMIT}};
	struct stat st;
	uint8_t *buf = malloc(len), *want = malloc(len);

	ok(cs != NULL && buf && want && len > 8192, "store");
	t_fill(want, len, &k, 1);
	is_int(t_put(cs, &k, 1, CHUNK, 0), 0, "put a chunk");
	is_int(chunk_file(cs, d, &k, path, sizeof(path)), 0, "its file");
	is_int(utimensat(AT_FDCWD, path, ts, 0), 0, "its atime set to 2000");
	is_int((int)cs_read(cs, &k, 1, 4096, buf, 4096), 4096,
	       "read 4 KiB from the middle");
	ok(!memcmp(buf, want + 4096, 4096), "the right bytes");
	is_int((int)cs_read(cs, &k, 1, 0, buf, len), (int)len,
	       "read it whole (the cached fd)");
	ok(!memcmp(buf, want, len), "the right bytes");
	is_int(open_noatime(path), 1,
	       "the read fd cache holds the file with O_NOATIME");
	is_int(stat(path, &st), 0, "stat");
	is_int((int)(st.st_atime == OLD_ATIME), 1,
	       "the reads left its atime alone (inode not dirtied)");
	cs_close(cs);
	free(buf);
	free(want);
}

/* A chunk damaged on disk is still caught by the first read after an
 * open, and the cached fd does not hide a replacement. */
static void
test_damage(void)
{
	char d[320], path[512];
	struct cs_store *cs = mkstore(newdir(d, sizeof(d), "damage"));
	struct cs_params p = t_params(0);
	struct cs_key k = t_key(3, 2, 0);
	uint32_t len = t_len(&k, 1, CHUNK);
	uint8_t *buf = malloc(CHUNK), *want = malloc(CHUNK), c = 0;
	int fd, err = 0;

	ok(cs != NULL && buf && want && len > 200, "store");
	is_int(t_put(cs, &k, 1, CHUNK, 0), 0, "put a chunk");
	is_int((int)cs_read(cs, &k, 1, 0, buf, 16), 16, "read: cached fd");
	/* A new version replaces the file under the cached fd. */
	is_int(t_put(cs, &k, 2, CHUNK, 0), 0, "put a new version");
	len = t_len(&k, 2, CHUNK);
	t_fill(want, len, &k, 2);
	is_int((int)cs_read(cs, &k, 2, 0, buf, len), (int)len,
	       "read the new version");
	ok(!memcmp(buf, want, len), "its bytes, not the old file's");
	is_int((int)cs_read(cs, &k, 1, 0, buf, 16), -ESTALE,
	       "the old version: -ESTALE");
	is_int(chunk_file(cs, d, &k, path, sizeof(path)), 0, "its file");
	cs_close(cs);
	/* Flip a byte of the content; the next open must catch it. */
	fd = open(path, O_RDWR);
	ok(fd >= 0 && pread(fd, &c, 1, 100) == 1, "read a byte of it");
	c ^= 0x40;
	ok(pwrite(fd, &c, 1, 100) == 1, "damage it");
	close(fd);
	cs = cs_open(d, &p, &err);
	ok(cs != NULL, "open again");
	if (cs) {
		is_int((int)cs_read(cs, &k, 2, len - 16, buf, 16), -EIO,
		       "a small read far from the damage: -EIO");
		is_int((int)cs_read(cs, &k, 2, len - 16, buf, 16), -ENOENT,
		       "then it is gone: -ENOENT (refetched by the caller)");
		cs_close(cs);
	}
	free(buf);
	free(want);
}

int
main(void)
{
	t_mkdtemp(base, sizeof(base), "read");
	test_atime();
	test_damage();
	t_rm_rf(base);
	done_testing();
	return 0;
}
