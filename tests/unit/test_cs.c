/*
 * test_cs.c - libchunkstore's public API, call by call, with bad input:
 * damaged index and chunk files (checked-in ones under tests/data/cs-* and
 * ones made here), a read-only and a full file system (tmpfs mounts,
 * skipped when mounting is not allowed), a threaded smoke test, and the
 * read fd cache (no stale fd after a replace, bounded fd count, readers
 * racing replacements).
 */
#include "tests/unit/cs_test_util.h"

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <pthread.h>
#include <sys/mount.h>
#include <sys/resource.h>

#include "chunkstore/cs_i.h"
#include "tests/tap.h"

#define CHUNK  CS_CHUNK_MIN
#define MAXLEN 5000

static char base[256];

static char *
newdir(char *buf, size_t n, const char *name)
{
	snprintf(buf, n, "%s/%s", base, name);
	t_rm_rf(buf);
	return buf;
}

static struct cs_store *
mkstore(const char *dir)
{
	struct cs_params p = t_params(CHUNK);
	int err = 0;
	struct cs_store *cs;

	if (cs_create(dir, &p) < 0)
		return NULL;
	cs = cs_open(dir, &p, &err);
	return cs;
}

static struct cs_store *
reopen(const char *dir, int *err)
{
	struct cs_params p = t_params(0);

	return cs_open(dir, &p, err);
}

/* Read all of (@k, @dv) and check it against its derived content. */
static int
read_ok(struct cs_store *cs, const struct cs_key *k, uint64_t dv)
{
	uint8_t buf[CHUNK];
	ssize_t n = cs_read(cs, k, dv, 0, buf, sizeof(buf));

	return n >= 0 && t_check(buf, (size_t)n, k, dv, MAXLEN);
}

static void
flip_byte(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	uint8_t b = 0;

	if (fd < 0 || pread(fd, &b, 1, off) != 1)
		exit(99);
	b ^= 0x40;
	if (pwrite(fd, &b, 1, off) != 1)
		exit(99);
	close(fd);
}

static int
file_exists(const char *dir, const char *rel)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	return access(p, F_OK) == 0;
}

/* .tmp files in @dir's 256 chunk folders. */
static int
count_tmp(const char *dir)
{
	char p[1024];
	int n = 0;

	for (int i = 0; i < 256; i++) {
		DIR *dd;
		struct dirent *e;

		snprintf(p, sizeof(p), "%s/chunks/%02x", dir, i);
		if (!(dd = opendir(p)))
			continue;
		while ((e = readdir(dd)))
			if (strstr(e->d_name, ".tmp"))
				n++;
		closedir(dd);
	}
	return n;
}


static void *
spares_thr(void *arg)
{
	for (int i = 0; i < 64; i++)
		(void)cs_make_spares(arg, 32, CS_SPARE_MAX);
	return NULL;
}

/* .tmp files anywhere under the store @d. */
static unsigned
count_tmp_files(const char *d)
{
	char cmd[4200];
	unsigned n = 0;
	FILE *p;
	int len = snprintf(cmd, sizeof(cmd), "find '%.4096s' -name '*%s' | wc -l",
			   d, CS_TMP_SUFFIX);

	if (len < 0 || (size_t)len >= sizeof(cmd))
		return 0;
	p = popen(cmd, "r");
	if (p) {
		if (fscanf(p, "%u", &n) != 1)
			n = 0;
		pclose(p);
	}
	return n;
}

static void
make_four_spares(struct cs_store *cs)
{
	if (cs_make_spares(cs, 4, 4) != 4)
		_exit(4);
}

/* Simulate a crash: the child stores and exits without cs_close. */
static void
crash_after(const char *dir, void (*fn)(struct cs_store *))
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		int err;
		struct cs_store *cs = reopen(dir, &err);

		if (!cs)
			_exit(3);
		fn(cs);
		_exit(0);
	}
	waitpid(pid, &st, 0);
}

static void
test_crc(void)
{
	uint8_t buf[1000];

	is_int(crc32c(0, "123456789", 9), 0xe3069283u, "crc32c check value");
	is_int(crc32c_sw(0, "123456789", 9), 0xe3069283u,
	       "crc32c table path check value");
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)t_mix(i);
	is_int(crc32c(crc32c(0, buf, 333), buf + 333, 667),
	       crc32c(0, buf, 1000), "crc32c chains");
	{
		int same = 1;

		for (size_t off = 0; off < 9; off++)
			for (size_t len = 0; len < 70; len += 7)
				same &= crc32c(0, buf + off, len) ==
					crc32c_sw(0, buf + off, len);
		ok(same,
		   "hardware (%s) and table crc32c agree at all alignments",
		   crc32c_hw_available() ? "sse4.2" : "absent");
	}
}

static int locked_calls, locked_open_err;

/* cs_check_locked's hook: a cs_open of the cache (what cairnd does) must
 * be refused while the hook runs. */
static void
locked_hook(void *arg)
{
	struct cs_params p = t_params(CHUNK);
	struct cs_store *cs;
	int err = 0;

	locked_calls++;
	cs = cs_open(arg, &p, &err);
	locked_open_err = cs ? 0 : err;
	cs_close(cs);
}

static void
test_create_open(void)
{
	char d[512];
	struct cs_params p = t_params(1000);
	struct cs_store *cs, *cs2;
	int err = 0;

	newdir(d, sizeof(d), "create");
	is_int(cs_create(d, &p), -EINVAL, "create: chunk size 1000 is -EINVAL");
	p.chunk_size = CHUNK * 3;
	is_int(cs_create(d, &p), -EINVAL,
	       "create: non power of two is -EINVAL");
	p = t_params(CHUNK);
	p.limits.stop_pct = 50;
	is_int(cs_create(d, &p), -EINVAL, "create: stop > cull is -EINVAL");
	ok(!file_exists(d, "index") && !file_exists(d, "chunks"),
	   "failed create left nothing behind");
	p = t_params(CHUNK);
	cs = cs_open(d, &p, &err);
	ok(!cs && err == -ENOENT, "open before create: -ENOENT (got %d)", err);
	is_int(cs_create(d, &p), 0, "create");
	is_int(cs_create(d, &p), -EEXIST, "create twice: -EEXIST");
	cs = cs_open(d, &p, &err);
	ok(cs && err == 0, "open");
	is_int(cs_chunk_size(cs), CHUNK, "chunk size kept");
	cs2 = cs_open(d, &p, &err);
	ok(!cs2 && err == -EBUSY, "second open of the same cache: -EBUSY");
	{
		struct cs_check_result r;

		is_int(cs_check(d, 0, NULL, NULL, &r, NULL, NULL), -EBUSY,
		       "cs_check while open: -EBUSY");
		locked_calls = 0;
		is_int(cs_check_locked(d, 0, NULL, NULL, &r, NULL, NULL,
				       locked_hook, (void *)d),
		       -EBUSY, "cs_check_locked while open: -EBUSY");
		is_int(locked_calls, 0, "... and its hook is not run");
	}
	cs_close(cs);
	{
		struct cs_check_result r;

		locked_calls = 0;
		locked_open_err = 0;
		is_int(cs_check_locked(d, 0, NULL, NULL, &r, NULL, NULL,
				       locked_hook, (void *)d),
		       0, "cs_check_locked after close: 0");
		is_int(locked_calls, 1, "... its hook ran once");
		is_int(locked_open_err, -EBUSY,
		       "... with the lock held: cs_open in the hook is -EBUSY");
		cs = cs_open(d, &p, &err);
		ok(cs && err == 0, "open after cs_check_locked returned");
		cs_close(cs);
	}
	cs_close(NULL);
	cs = cs_open("/nonexistent/cairn/cache", &p, &err);
	ok(!cs && err == -ENOENT, "open of a missing folder: -ENOENT");
	cs = cs_open(NULL, &p, NULL);
	ok(!cs, "open(NULL) fails");
	is_int(cs_chunk_size(NULL), 0, "chunk size of NULL");
}

static void
test_put_read(void)
{
	char d[512];
	struct cs_store *cs = mkstore(newdir(d, sizeof(d), "putread"));
	struct cs_key k1 = t_key(7, 1, 4), k2 = t_key(7, 1, 5),
		      kx = t_key(8, 1, 4);
	struct cs_info info;
	struct cs_stats st;
	uint8_t buf[CHUNK + 1];
	ssize_t n;
	uint32_t len1;

	ok(cs != NULL, "store for put/read");
	is_int(t_put(cs, &k1, 5, MAXLEN, 0), 0, "put clean chunk");
	len1 = t_len(&k1, 5, MAXLEN);
	is_int(cs_lookup(cs, &k1, &info), 0, "lookup finds it");
	ok(info.dv == 5 && info.len == len1 && info.flags == CS_F_VALID &&
		   info.key.chunk == 4 && info.key.vol == 7,
	   "lookup: dv, len, flags, key");
	is_int(cs_lookup(cs, &kx, &info), -ENOENT,
	       "lookup other volume: -ENOENT");
	ok(read_ok(cs, &k1, 5), "read returns the content");
	n = cs_read(cs, &k1, 5, len1 - 10, buf, 100);
	is_int(n, 10, "read near the end is short");
	is_int(cs_read(cs, &k1, 5, len1, buf, 100), 0, "read at the end: 0");
	is_int(cs_read(cs, &k1, 5, CHUNK + 10, buf, 100), 0,
	       "read past the end: 0");
	is_int(cs_read(cs, &k1, 6, 0, buf, 100), -ESTALE,
	       "read with another dv: -ESTALE");
	is_int(cs_willneed(cs, &k1, 5), 0, "willneed of a chunk there: 0");
	is_int(cs_willneed(cs, &k1, 6), -ENOENT,
	       "willneed with another dv: -ENOENT");
	is_int(cs_willneed(cs, &k2, 5), -ENOENT, "willneed absent: -ENOENT");
	is_int(cs_willneed(cs, NULL, 5), -EINVAL, "willneed NULL key: -EINVAL");
	ok(read_ok(cs, &k1, 5), "read after willneed returns the content");
	is_int(cs_read(cs, &k2, 5, 0, buf, 100), -ENOENT,
	       "read absent: -ENOENT");
	is_int(cs_read(cs, NULL, 5, 0, buf, 100), -EINVAL,
	       "read NULL key: -EINVAL");
	is_int(cs_read(cs, &k1, 5, 0, NULL, 100), -EINVAL,
	       "read NULL buf: -EINVAL");
	is_int(cs_put(cs, &k2, 1, buf, CHUNK + 1, 0), -EINVAL,
	       "put above the chunk size: -EINVAL");
	is_int(cs_put(cs, &k2, 1, buf, 10, 0x80), -EINVAL,
	       "put bad flags: -EINVAL");
	is_int(cs_put(cs, &k2, 1, NULL, 10, 0), -EINVAL,
	       "put NULL buf: -EINVAL");
	is_int(cs_put(cs, &k2, 1, buf, 0, 0), 0, "put empty chunk");
	is_int(cs_read(cs, &k2, 1, 0, buf, 10), 0, "read empty chunk: 0");
	is_int(t_put(cs, &k1, 6, MAXLEN, 0), 0, "put replaces");
	ok(read_ok(cs, &k1, 6), "read new content");
	is_int(cs_read(cs, &k1, 5, 0, buf, 10), -ESTALE, "old dv now -ESTALE");
	cs_get_stats(cs, &st);
	ok(st.files_used == 2 && st.bytes_used == t_len(&k1, 6, MAXLEN) &&
		   st.chunk_size == CHUNK,
	   "stats: 2 files, bytes of the live chunks");
	ok(st.hits >= 5 && st.misses >= 3, "stats: hits %llu misses %llu",
	   (unsigned long long)st.hits, (unsigned long long)st.misses);
	is_int(cs_lookup(cs, NULL, &info), -EINVAL, "lookup NULL: -EINVAL");
	is_int(cs_sync(cs), 0, "sync");
	cs_close(cs);
	cs = reopen(d, NULL);
	ok(cs && read_ok(cs, &k1, 6), "content survives close and open");
	cs_close(cs);
}

/* Inode of @rel under @dir, 0 if absent; *size its size. */
static ino_t
ino_of(const char *dir, const char *rel, off_t *size)
{
	char p[1024];
	struct stat st;
	int n = snprintf(p, sizeof(p), "%s/%s", dir, rel);

	if (n < 0 || (size_t)n >= sizeof(p) || stat(p, &st) < 0)
		return 0;
	if (size)
		*size = st.st_size;
	return st.st_ino;
}

/* Spare files: a dropped clean chunk's file is emptied and kept as its
 * slot's .tmp, and the next put of a new chunk writes into it, unless a
 * reader holds the file; cs_close leaves none behind. */
static void
test_spare(void)
{
	char d[512];
	struct cs_store *cs = mkstore(newdir(d, sizeof(d), "spare"));
	struct cs_key k1 = t_key(9, 1, 0), k2 = t_key(9, 2, 0),
		      k3 = t_key(9, 3, 0), k4 = t_key(9, 4, 0);
	struct cs_info info;
	struct cs_fdref fr;
	ino_t ino, ino2;
	off_t size = -1;
	char rel[CS_PATH_MAX], reltmp[CS_PATH_MAX];
	uint32_t slot;
	int rc;

	ok(cs != NULL, "store for spares");
	is_int(t_put(cs, &k1, 1, MAXLEN, 0), 0, "put a chunk");
	is_int(cs_lookup(cs, &k1, &info), 0, "lookup");
	slot = info.slot;
	cs_chunk_path(rel, slot, NULL);
	cs_chunk_path(reltmp, slot, CS_TMP_SUFFIX);
	ino = ino_of(d, rel, NULL);
	ok(ino != 0, "its file exists");
	is_int(cs_invalidate(cs, 9, k1.fid, UINT64_MAX), 1, "drop it");
	ok(ino_of(d, rel, NULL) == 0, "the chunk file is gone");
	ok(ino_of(d, reltmp, &size) == ino && size == 0,
	   "kept as an empty spare under the slot's .tmp name");
	is_int(cs->nspare, 1, "one spare");
	is_int(t_put(cs, &k2, 1, MAXLEN, 0), 0, "put another chunk");
	is_int(cs_lookup(cs, &k2, &info), 0, "lookup");
	ok(info.slot == slot && ino_of(d, rel, NULL) == ino,
	   "it took the spare's slot and inode");
	ok(ino_of(d, reltmp, NULL) == 0 && cs->nspare == 0 &&
		   cs->spare_reuses == 1,
	   "the spare is used up");
	ok(read_ok(cs, &k2, 1), "and reads back its own content");
	is_int(cs_read(cs, &k1, 1, 0, rel, 1), -ENOENT,
	       "the old chunk is gone");

	/* A reader holding the file: unlinked, not reused. */
	pthread_mutex_lock(&cs->lock);
	rc = cs_fdc_get(cs, slot, &fr);
	pthread_mutex_unlock(&cs->lock);
	is_int(rc, 0, "a reader holds the chunk's fd");
	is_int(cs_invalidate(cs, 9, k2.fid, UINT64_MAX), 1, "drop it");
	ok(ino_of(d, rel, NULL) == 0 && ino_of(d, reltmp, NULL) == 0 &&
		   cs->nspare == 0,
	   "held by a reader: unlinked, no spare");
	{
		uint8_t b[16], want[16];
		ssize_t n = pread(fr.fd, b, sizeof(b), 0);

		t_fill(want, sizeof(want), &k2, 1);
		ok(n == 16 && !memcmp(b, want, 16),
		   "the reader still reads the chunk's bytes");
	}
	is_int(cs->nunmapped, 1, "its fd cache entry is unmapped, still held");
	cs_fdc_release(cs, &fr, 0);
	is_int(cs->nunmapped, 0, "and freed by the reader's release");
	is_int(t_put(cs, &k3, 1, MAXLEN, 0), 0, "put a third chunk");
	ino2 = ino_of(d, rel, NULL);
	is_int(cs->spare_reuses, 1, "no spare to reuse");

	/* Spares left at close are removed; the cache checks clean. */
	is_int(cs_invalidate(cs, 9, k3.fid, UINT64_MAX), 1, "drop the third");
	ok(ino_of(d, reltmp, NULL) == ino2 && cs->nspare == 1, "a spare again");
	cs_close(cs);
	ok(ino_of(d, reltmp, NULL) == 0, "cs_close removed the spare");
	{
		struct cs_check_result r;

		is_int(cs_check(d, 0, NULL, NULL, &r, NULL, NULL), 0, "check");
		ok(r.errors == 0 && r.notes == 0 && r.clean,
		   "clean, no notes (errors %llu, notes %llu)",
		   (unsigned long long)r.errors, (unsigned long long)r.notes);
	}
	cs = reopen(d, NULL);
	ok(cs && t_put(cs, &k4, 2, MAXLEN, 0) == 0 && read_ok(cs, &k4, 2),
	   "reopened: puts and reads as before");

	/* Spares made ahead (cs_make_spares): empty .tmp files of free
	 * slots, taken by the next puts of new chunks. */
	{
		struct cs_key kk[4];
		uint32_t before = cs->nslots, files = cs->files_used;
		uint64_t reuses = cs->spare_reuses;
		int all = 1;

		is_int(cs_make_spares(cs, 3, 5), 3, "make 3 spares");
		is_int(cs_make_spares(cs, 8, 5), 2, "make up to the target 5");
		is_int(cs_make_spares(cs, 8, 5), 0, "target reached: none made");
		is_int(cs_make_spares(NULL, 1, 1), -EINVAL, "NULL store: -EINVAL");
		is_int(cs->nspare, 5, "5 spares kept");
		for (uint32_t i = 0; i < cs->nspare; i++) {
			cs_chunk_path(reltmp, cs->spare[i], CS_TMP_SUFFIX);
			if (!ino_of(d, reltmp, &size) || size != 0)
				all = 0;
		}
		ok(all, "each is an empty file under its slot's .tmp name");
		ok(cs->files_used == files && cs->nslots >= before,
		   "spares are not counted as used files");
		for (int i = 0; i < 4; i++) {
			kk[i] = t_key(9, 7, (uint64_t)i);
			if (t_put(cs, &kk[i], 3, MAXLEN, 0) < 0 ||
			    !read_ok(cs, &kk[i], 3))
				all = 0;
		}
		ok(all, "4 puts of new chunks read back");
		is_int((int)(cs->spare_reuses - reuses), 4,
		       "each took a spare's inode");
		is_int(cs->nspare, 1, "one spare left");
	}
	/* Several store threads (a namespace's fetch engines share one
	 * store) make spares at once: the list never passes its array. */
	{
		pthread_t th[4];
		uint32_t n_tmp = 0;

		for (int i = 0; i < 4; i++)
			pthread_create(&th[i], NULL, spares_thr, cs);
		for (int i = 0; i < 4; i++)
			pthread_join(th[i], NULL);
		ok(cs->nspare <= CS_SPARE_MAX && cs->nspare >= CS_SPARE_MAX - 8,
		   "4 threads to the cap: %u spares kept (cap %d)",
		   cs->nspare, CS_SPARE_MAX);
		for (uint32_t i = 0; i < cs->nspare; i++) {
			cs_chunk_path(reltmp, cs->spare[i], CS_TMP_SUFFIX);
			if (ino_of(d, reltmp, &size))
				n_tmp++;
		}
		is_int((int)n_tmp, (int)cs->nspare,
		       "each kept spare has its file");
		is_int((int)count_tmp_files(d), (int)cs->nspare,
		       "and no other .tmp file is left behind");
	}
	cs_close(cs);
	{
		struct cs_check_result r;

		is_int(cs_check(d, 0, NULL, NULL, &r, NULL, NULL), 0,
		       "check after made spares");
		ok(r.errors == 0 && r.clean,
		   "clean after close: the spare made ahead was removed");
	}
	/* A crash with spares made ahead: recovery removes them, the
	 * chunks stay. */
	crash_after(d, make_four_spares);
	{
		struct cs_check_result r;

		is_int(cs_check(d, 0, NULL, NULL, &r, NULL, NULL), 0,
		       "check after a crash with spares");
		ok(r.errors == 0, "no errors, only leftovers (notes %llu)",
		   (unsigned long long)r.notes);
	}
	cs = reopen(d, NULL);
	ok(cs != NULL, "open after a crash with spares");
	if (cs) {
		struct cs_key kk = t_key(9, 7, 3);
		is_int(count_tmp(d), 0, "recovery removed the spares' .tmp files");
		ok(read_ok(cs, &kk, 3), "a chunk stored in a spare survives");
	}
	cs_close(cs);
}

/* cs_put_crc: the caller's CRC32C is the chunk's; a wrong one is caught by
 * the first read after the next open. */
static void
test_put_crc(void)
{
	char d[512];
	struct cs_store *cs = mkstore(newdir(d, sizeof(d), "putcrc"));
	struct cs_key k1 = t_key(7, 2, 0), k2 = t_key(7, 2, 1);
	static uint8_t buf[CHUNK];
	uint32_t len1 = t_len(&k1, 3, MAXLEN), len2 = t_len(&k2, 3, MAXLEN);
	uint32_t crc1, crc2;

	ok(cs != NULL, "store for put_crc");
	t_fill(buf, len1, &k1, 3);
	crc1 = crc32c(0, buf, len1);
	is_int(cs_put_crc(cs, &k1, 3, buf, len1, 0, crc1), 0,
	       "put_crc with the right CRC");
	t_fill(buf, len2, &k2, 3);
	crc2 = crc32c(0, buf, len2);
	is_int(cs_put_crc(cs, &k2, 3, buf, len2, 0, crc2 ^ 1), 0,
	       "put_crc with a wrong CRC is taken on trust");
	is_int(cs_put_crc(cs, &k2, 3, buf, CHUNK + 1, 0, 0), -EINVAL,
	       "put_crc above the chunk size: -EINVAL");
	is_int(cs_put_crc(cs, &k2, 3, NULL, 10, 0, 0), -EINVAL,
	       "put_crc NULL buf: -EINVAL");
	ok(read_ok(cs, &k1, 3), "put_crc chunk reads back");
	cs_close(cs);
	cs = reopen(d, NULL);
	ok(cs && read_ok(cs, &k1, 3), "and after close and open");
	is_int(cs_read(cs, &k2, 3, 0, buf, 10), -EIO,
	       "the wrong CRC fails the first read after open: -EIO");
	is_int(cs_read(cs, &k2, 3, 0, buf, 10), -ENOENT,
	       "and the chunk is dropped");
	cs_close(cs);
}

/* cairnd's write path: commits without fsync survive the death of the
 * process; a fetched (clean) copy never replaces local changes. */
static void
test_nosync_commit(void)
{
	char d[512];
	struct cs_store *cs = mkstore(newdir(d, sizeof(d), "nosync"));
	struct cs_key k = t_key(3, 5, 0);
	uint8_t buf[CHUNK];
	struct cs_info info;
	pid_t pid;
	int st = 0;
	ssize_t n;

	cs_close(cs);
	pid = fork();
	if (pid == 0) {
		struct cs_store *c = reopen(d, NULL);

		if (!c || cs_write(c, &k, 4, 0, "durable", 7) < 0 ||
		    cs_commit_flags(c, &k, CS_C_NOSYNC) < 0 ||
		    cs_write(c, &k, 4, 7, "-lost", 5) < 0)
			_exit(1);
		raise(SIGKILL); /* no close: as kill -9 */
		_exit(2);
	}
	waitpid(pid, &st, 0);
	ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child killed");
	cs = reopen(d, NULL);
	ok(cs != NULL, "reopen after the kill");
	n = cs_read(cs, &k, 4, 0, buf, sizeof(buf));
	ok(n == 7 && !memcmp(buf, "durable", 7),
	   "commit without fsync survived the kill; later write did not");
	is_int(cs_lookup(cs, &k, &info), 0, "lookup");
	is_int(info.flags, CS_F_VALID | CS_F_DIRTY, "still dirty");
	is_int(t_put(cs, &k, 4, MAXLEN, 0), -EBUSY,
	       "clean put over a dirty chunk: -EBUSY");
	n = cs_read(cs, &k, 4, 0, buf, sizeof(buf));
	ok(n == 7 && !memcmp(buf, "durable", 7), "dirty data unchanged");
	is_int(t_put(cs, &k, 4, MAXLEN, CS_F_DIRTY), 0,
	       "dirty put over a dirty chunk is fine");
	is_int(cs_commit_flags(cs, &k, 99), -EINVAL, "bad commit flags");
	/* CS_C_WRITEOUT: the commit starts the file's writing and returns
	 * (t2359 looks at the pages); the chunk is committed, unsynced. A
	 * commit without sync first, so that the slot is UNSYNCED: over a
	 * durable dirty chunk the commit fdatasyncs instead. */
	is_int(cs_write(cs, &k, 4, 0, "unsynced", 8), 0, "write");
	is_int(cs_commit_flags(cs, &k, CS_C_NOSYNC), 0, "commit without sync");
	is_int(cs_write(cs, &k, 4, 0, "outward", 7), 0, "write");
	is_int(cs_commit_flags(cs, &k, CS_C_NOSYNC | CS_C_WRITEOUT), 0,
	       "commit with CS_C_WRITEOUT");
	n = cs_read(cs, &k, 4, 0, buf, sizeof(buf));
	ok(n >= 7 && !memcmp(buf, "outward", 7), "... reads the new bytes");
	is_int(cs_lookup(cs, &k, &info), 0, "lookup");
	is_int(info.flags, CS_F_VALID | CS_F_DIRTY, "... committed, dirty");
	is_int(cs_write(cs, &k, 4, 0, "again", 5), 0, "write");
	is_int(cs_sync_file(cs, 3, k.fid), 0, "sync_file commits and syncs");
	is_int(cs_lookup(cs, &k, &info), 0, "lookup");
	ok(info.flags == (CS_F_VALID | CS_F_DIRTY), "committed, dirty");
	is_int(cs_mark_clean(cs, &k, 5), 0, "mark clean");
	is_int(t_put(cs, &k, 5, MAXLEN, 0), 0, "clean put over clean: fine");
	cs_close(cs);
}

static void
test_working_copy(void)
{
	char d[512];
	struct cs_store *cs = mkstore(newdir(d, sizeof(d), "wc"));
	struct cs_key k = t_key(7, 2, 0), kn = t_key(7, 2, 1);
	uint8_t buf[CHUNK], want[CHUNK];
	struct cs_info info;
	uint32_t len = t_len(&k, 1, MAXLEN);
	ssize_t n;

	is_int(t_put(cs, &k, 1, MAXLEN, 0), 0, "put base chunk");
	is_int(cs_write(cs, &k, 2, 0, "x", 1), -ESTALE,
	       "write with another dv: -ESTALE");
	is_int(cs_write(cs, &k, 1, CHUNK - 1, "xy", 2), -EINVAL,
	       "write past the chunk size: -EINVAL");
	is_int(cs_write(cs, &k, 1, 100, "hello", 5), 0,
	       "write into working copy");
	t_fill(want, len, &k, 1);
	memcpy(want + 100, "hello", 5);
	n = cs_read(cs, &k, 1, 0, buf, sizeof(buf));
	ok(n == len && !memcmp(buf, want, len),
	   "read sees the working copy at once");
	is_int(cs_lookup(cs, &k, &info), 0, "lookup");
	ok(info.flags == (CS_F_VALID | CS_F_DIRTY),
	   "working copy shows VALID|DIRTY");
	is_int(t_put(cs, &k, 1, MAXLEN, 0), -EBUSY,
	       "put over a working copy: -EBUSY");
	is_int(cs_write(cs, &k, 1, len + 10, "Z", 1), 0, "write past the end");
	n = cs_read(cs, &k, 1, 0, buf, sizeof(buf));
	ok(n == len + 11 && buf[len] == 0 && buf[len + 9] == 0 &&
		   buf[len + 10] == 'Z',
	   "gap before a write past the end reads as zeros");
	cs_close(cs); /* discards the working copy */
	ok(strstr(t_last_log, "discarding uncommitted working copy") != NULL,
	   "close logged: %s", t_last_log);
	cs = reopen(d, NULL);
	ok(cs && read_ok(cs, &k, 1), "uncommitted write discarded by close");
	is_int(cs_lookup(cs, &k, &info), 0, "lookup after reopen");
	is_int(info.flags, CS_F_VALID, "clean again");
	is_int(cs_write(cs, &k, 1, 0, "abc", 3), 0, "write again");
	is_int(cs_truncate(cs, &k, 1, 10), 0, "truncate to 10");
	n = cs_read(cs, &k, 1, 0, buf, sizeof(buf));
	ok(n == 10 && !memcmp(buf, "abc", 3),
	   "truncated working copy reads 10 bytes");
	is_int(cs_truncate(cs, &k, 1, 20), 0, "truncate up to 20");
	n = cs_read(cs, &k, 1, 0, buf, sizeof(buf));
	ok(n == 20 && buf[15] == 0, "growing truncate zero-fills");
	is_int(cs_truncate(cs, &k, 1, CHUNK + 1), -EINVAL,
	       "truncate past chunk: -EINVAL");
	is_int(cs_commit(cs, &k), 0, "commit");
	is_int(cs_commit(cs, &k), 0, "commit without working copy: 0");
	is_int(cs_commit(cs, &kn), -ENOENT, "commit of absent chunk: -ENOENT");
	cs_lookup(cs, &k, &info);
	ok(info.flags == (CS_F_VALID | CS_F_DIRTY) && info.len == 20,
	   "committed chunk is dirty, 20 bytes");
	/* A chunk born of cs_write alone. */
	is_int(cs_write(cs, &kn, 9, 10, "abc", 3), 0, "write to a new chunk");
	n = cs_read(cs, &kn, 9, 0, buf, sizeof(buf));
	ok(n == 13 && buf[0] == 0 && buf[9] == 0 && !memcmp(buf + 10, "abc", 3),
	   "new chunk: zeros then data");
	is_int(cs_write(cs, &kn, 9, 0, "Q", 1), 0, "second write");
	is_int(cs_commit_file(cs, 7, k.fid), 1,
	       "commit_file commits 1 working copy");
	is_int(cs_commit_file(cs, 7, k.fid), 0, "commit_file again: 0");
	cs_close(cs);
	cs = reopen(d, NULL);
	n = cs_read(cs, &kn, 9, 0, buf, sizeof(buf));
	ok(n == 13 && buf[0] == 'Q' && !memcmp(buf + 10, "abc", 3),
	   "committed new chunk survives reopen");
	cs_lookup(cs, &kn, &info);
	is_int(info.flags, CS_F_VALID | CS_F_DIRTY, "still dirty after reopen");
	is_int(cs_mark_clean(cs, &kn, 10), 0, "mark clean with dv 10");
	cs_lookup(cs, &kn, &info);
	ok(info.flags == CS_F_VALID && info.dv == 10, "clean, dv 10");
	is_int(cs_read(cs, &kn, 9, 0, buf, 1), -ESTALE, "old dv: -ESTALE");
	is_int(cs_mark_clean(cs, &kn, 10), 0, "mark clean twice is fine");
	{
		struct cs_key ka = t_key(1, 1, 1);

		is_int(cs_mark_clean(cs, &ka, 1), -ENOENT,
		       "mark clean absent: -ENOENT");
	}
	cs_close(cs);
	cs = reopen(d, NULL);
	cs_lookup(cs, &kn, &info);
	ok(info.flags == CS_F_VALID && info.dv == 10, "mark clean persisted");
	n = cs_read(cs, &kn, 10, 0, buf, sizeof(buf));
	ok(n == 13 && buf[0] == 'Q', "retagged content verified after reopen");
	cs_close(cs);
}

static int
count_cb(const struct cs_info *i, void *arg)
{
	(void)i;
	(*(int *)arg)++;
	return 0;
}

static int
stop_cb(const struct cs_info *i, void *arg)
{
	(void)i;
	return ++(*(int *)arg) == 3 ? 42 : 0;
}

static void
test_file_ops(void)
{
	char d[512];
	struct cs_store *cs = mkstore(newdir(d, sizeof(d), "fileops"));
	struct cs_key f[6], other = t_key(3, 99, 0);
	struct cs_info info;
	int n = 0;

	for (int i = 0; i < 6; i++)
		f[i] = t_key(3, 50, (uint64_t)i);
	for (int i = 0; i < 4; i++)
		is_int(t_put(cs, &f[i], 7, MAXLEN, 0), 0,
		       "put chunk %d of file at dv 7", i);
	is_int(t_put(cs, &f[4], 7, MAXLEN, CS_F_DIRTY), 0, "put dirty chunk 4");
	is_int(t_put(cs, &f[5], 3, MAXLEN, 0), 0, "put chunk 5 at dv 3");
	is_int(t_put(cs, &other, 7, MAXLEN, 0), 0, "put another file's chunk");
	is_int(cs_set_dv_file(cs, 3, f[0].fid, 7, 8), 4,
	       "set_dv_file retags 4 clean chunks");
	{
		uint8_t buf[16];

		ok(cs_read(cs, &f[0], 8, 0, buf, 16) > 0,
		   "retagged chunk reads at dv 8");
	}
	cs_lookup(cs, &f[4], &info);
	is_int(info.dv, 7, "dirty chunk not retagged");
	cs_lookup(cs, &other, &info);
	is_int(info.dv, 7, "other file not retagged");
	is_int(cs_pin_file(cs, 3, f[0].fid, 1), 6, "pin 6 chunks");
	is_int(cs_pin_file(cs, 3, f[0].fid, 1), 0, "pin again: 0 changed");
	cs_lookup(cs, &f[2], &info);
	ok(info.flags & CS_F_PINNED, "pinned flag shows");
	cs_close(cs);
	cs = reopen(d, NULL);
	cs_lookup(cs, &f[2], &info);
	ok(info.flags & CS_F_PINNED, "pin persisted");
	is_int(cs_iterate_file(cs, 3, f[0].fid, count_cb, &n), 0,
	       "iterate_file");
	is_int(n, 6, "iterate_file saw 6 chunks");
	n = 0;
	is_int(cs_iterate(cs, count_cb, &n), 0, "iterate");
	is_int(n, 7, "iterate saw 7 chunks");
	n = 0;
	is_int(cs_iterate(cs, stop_cb, &n), 42, "iterate returns fn's nonzero");
	is_int(n, 3, "iterate stopped at the third");
	is_int(cs_invalidate(cs, 3, f[0].fid, 8), 1,
	       "invalidate below 8 drops the dv-3 chunk");
	is_int(cs_lookup(cs, &f[5], &info), -ENOENT, "dv-3 chunk gone");
	is_int(cs_invalidate(cs, 3, f[0].fid, UINT64_MAX), 4,
	       "invalidate all drops 4 clean");
	is_int(cs_lookup(cs, &f[4], &info), 0, "dirty chunk kept");
	is_int(cs_lookup(cs, &other, &info), 0, "other file kept");
	is_int(cs_pin_file(cs, 3, f[0].fid, 0), 1, "unpin the remaining chunk");
	is_int(cs_invalidate(cs, 3, NULL, 1), -EINVAL,
	       "invalidate NULL fid: -EINVAL");
	is_int(cs_iterate(cs, NULL, NULL), -EINVAL, "iterate NULL fn: -EINVAL");
	{
		struct cs_limits l = {.stop_pct = 9, .cull_pct = 8};
		struct cs_stats st;

		is_int(cs_set_limits(cs, &l), -EINVAL,
		       "limits stop > cull: -EINVAL");
		l = (struct cs_limits){.max_bytes = 123456789,
				       .max_files = 4321};
		is_int(cs_set_limits(cs, &l), 0, "set limits");
		cs_get_stats(cs, &st);
		ok(st.bytes_limit == 123456789 && st.files_limit == 4321,
		   "limits in stats");
		cs_close(cs);
		cs = reopen(d, NULL);
		cs_get_stats(cs, &st);
		ok(st.bytes_limit == 123456789 && st.files_limit == 4321,
		   "limits persisted");
		is_int(cs_cull(cs), 0, "cull below level: 0");
	}
	cs_close(cs);
}

static void
put_one_more(struct cs_store *cs)
{
	struct cs_key k = t_key(5, 5, 5);

	t_put(cs, &k, 1, MAXLEN, 0);
}

static void
test_damage(void)
{
	char d[512], p[600];
	struct cs_key k = t_key(4, 4, 0), k2 = t_key(4, 4, 1),
		      k5 = t_key(5, 5, 5);
	struct cs_store *cs = mkstore(newdir(d, sizeof(d), "damage"));
	struct cs_info info;
	uint8_t buf[64];
	int err;

	is_int(t_put(cs, &k, 1, MAXLEN, 0), 0, "put chunk for damage tests");
	is_int(t_put(cs, &k2, 1, MAXLEN, CS_F_DIRTY), 0, "put dirty chunk");
	cs_close(cs);

	/* Bit flip in the content: read fails once, record dropped. */
	snprintf(p, sizeof(p), "%s/chunks/00/00000000", d);
	flip_byte(p, 3);
	cs = reopen(d, &err);
	t_nlog = 0;
	is_int(cs_read(cs, &k, 1, 0, buf, 10), -EIO, "flipped chunk: -EIO");
	ok(t_nlog > 0 && strstr(t_last_log, "checksum mismatch"), "logged: %s",
	   t_last_log);
	is_int(cs_lookup(cs, &k, &info), -ENOENT, "record dropped after -EIO");
	ok(!file_exists(d, "chunks/00/00000000"), "bad chunk file removed");
	is_int(t_put(cs, &k, 1, MAXLEN, 0), 0, "refetched chunk stored again");
	ok(read_ok(cs, &k, 1), "and reads fine");
	cs_close(cs);

	/* Bit flip in an index record: rebuilt from the file's tag. */
	snprintf(p, sizeof(p), "%s/index", d);
	flip_byte(p, CS_HDR_SIZE + 1 * CS_REC_SIZE + 30);
	cs = reopen(d, &err);
	ok(cs != NULL, "open with a damaged record");
	cs_lookup(cs, &k2, &info);
	ok(read_ok(cs, &k2, 1) && info.flags == (CS_F_VALID | CS_F_DIRTY),
	   "damaged record rebuilt from the chunk's tag, still dirty");
	cs_close(cs);

	/* Record pointing at a missing file (clean open trusts the index). */
	snprintf(p, sizeof(p), "%s/chunks/00/00000000", d);
	unlink(p);
	cs = reopen(d, &err);
	is_int(cs_read(cs, &k, 1, 0, buf, 10), -ENOENT,
	       "missing chunk file: -ENOENT");
	is_int(cs_lookup(cs, &k, &info), -ENOENT, "its record dropped");
	ok(read_ok(cs, &k2, 1), "other chunk fine");
	cs_close(cs);

	/* Crash after a put, plus leftovers: tmp and wip files. */
	crash_after(d, put_one_more);
	snprintf(p, sizeof(p), "%s/chunks/07/00000007.tmp", d);
	close(open(p, O_CREAT | O_WRONLY, 0600));
	snprintf(p, sizeof(p), "%s/chunks/08/00000008.wip", d);
	close(open(p, O_CREAT | O_WRONLY, 0600));
	snprintf(p, sizeof(p), "%s/chunks/09/README", d);
	close(open(p, O_CREAT | O_WRONLY, 0600));
	cs = reopen(d, &err);
	ok(cs != NULL, "open after a crash");
	ok(read_ok(cs, &k5, 1), "chunk put before the crash is there");
	ok(!file_exists(d, "chunks/07/00000007.tmp") &&
		   !file_exists(d, "chunks/08/00000008.wip"),
	   "tmp and wip files removed by recovery");
	ok(file_exists(d, "chunks/09/README"), "foreign file left alone");
	unlink(p);
	cs_close(cs);

	/* Orphan chunk file: index cut back to its header. */
	snprintf(p, sizeof(p), "%s/index", d);
	if (truncate(p, CS_HDR_SIZE) < 0)
		exit(99);
	cs = reopen(d, &err);
	ok(cs && read_ok(cs, &k2, 1) && read_ok(cs, &k5, 1),
	   "orphan chunk files adopted after the index was truncated");
	cs_lookup(cs, &k2, &info);
	is_int(info.flags, CS_F_VALID | CS_F_DIRTY,
	       "adopted dirty chunk stays dirty");
	cs_close(cs);

	/* Torn header, truncated header, missing index: all rebuilt. */
	flip_byte(p, 21);
	cs = reopen(d, &err);
	ok(cs && read_ok(cs, &k2, 1) && cs_chunk_size(cs) == CHUNK,
	   "torn header: index rebuilt, chunk size from the tags");
	cs_close(cs);
	if (truncate(p, 50) < 0)
		exit(99);
	cs = reopen(d, &err);
	ok(cs && read_ok(cs, &k5, 1), "index shorter than a header: rebuilt");
	cs_close(cs);
	unlink(p);
	cs = reopen(d, &err);
	ok(cs && read_ok(cs, &k2, 1) && read_ok(cs, &k5, 1),
	   "missing index: rebuilt");
	cs_close(cs);
	{
		struct cs_check_result r;

		is_int(cs_check(d, 0, NULL, NULL, &r, NULL, NULL), 0,
		       "cs_check runs");
		ok(r.errors == 0 && r.records == 2 && r.clean,
		   "cache consistent after all that");
	}
}

/* Copy checked-in file @name over @dir/index and try to open it. */
static void
test_data_file(const char *dir, const char *name, int want, const char *what)
{
	char src[1024], dst[600], a[4096], b[4096];
	const char *srcdir = getenv("top_srcdir");
	ssize_t na, nb;
	int fi, fo, err = 0;
	struct cs_store *cs;

	snprintf(src, sizeof(src), "%s/tests/data/%s", srcdir ? srcdir : "..",
		 name);
	snprintf(dst, sizeof(dst), "%s/index", dir);
	fi = open(src, O_RDONLY);
	if (fi < 0) {
		skip(2, "checked-in test file missing");
		return;
	}
	na = read(fi, a, sizeof(a));
	close(fi);
	fo = open(dst, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	if (na < 0 || fo < 0 || write(fo, a, (size_t)na) != na)
		exit(99);
	close(fo);
	cs = reopen(dir, &err);
	if (want < 0) {
		ok(!cs && err == want, "%s: open fails with %d (got %d)", what,
		   want, err);
		fi = open(dst, O_RDONLY);
		nb = read(fi, b, sizeof(b));
		close(fi);
		ok(nb == na && !memcmp(a, b, (size_t)na),
		   "%s: index left unchanged", what);
	} else {
		ok(cs != NULL, "%s: opens (rebuilt)", what);
		ok(t_nlog > 0, "%s: logged '%s'", what, t_last_log);
	}
	cs_close(cs);
}

static void
test_data_files(void)
{
	char d[512];
	struct cs_store *cs = mkstore(newdir(d, sizeof(d), "datafiles"));

	cs_close(cs);
	test_data_file(d, "cs-bad-magic.index", -EINVAL, "wrong magic");
	test_data_file(d, "cs-future-version.index", -ENOTSUP, "version 2");
	t_nlog = 0;
	test_data_file(d, "cs-torn-header.index", 0, "torn header");
}

/* Mount a tmpfs of @opts on @dir; @return 0 or -1 (then the test skips). */
static int
mount_tmpfs(const char *dir, const char *opts)
{
	mkdir(dir, 0700);
	return mount("cs-test", dir, "tmpfs", 0, opts);
}

static void
test_readonly(void)
{
	char d[512], c[600];
	struct cs_store *cs;
	int err = 0;

	newdir(d, sizeof(d), "ro");
	if (mount_tmpfs(d, "size=4m") < 0) {
		diag("cannot mount tmpfs (%s): skipping read-only tests",
		     strerror(errno));
		skip(4, "mount not permitted");
		return;
	}
	snprintf(c, sizeof(c), "%s/cache", d);
	cs = mkstore(c);
	cs_close(cs);
	if (mount(NULL, d, NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0) {
		skip(4, "remount read-only not permitted");
		umount(d);
		return;
	}
	t_nlog = 0;
	cs = reopen(c, &err);
	ok(!cs && err == -EROFS, "open on a read-only fs: -EROFS (got %d)",
	   err);
	ok(t_nlog > 0 && strstr(t_last_log, "Read-only"), "logged: %s",
	   t_last_log);
	{
		char c2[600];
		struct cs_params p = t_params(CHUNK);

		snprintf(c2, sizeof(c2), "%s/other", d);
		is_int(cs_create(c2, &p), -EROFS,
		       "create on a read-only fs: -EROFS");
	}
	{
		struct cs_check_result r;

		is_int(cs_check(c, 0, NULL, NULL, &r, NULL, NULL), 0,
		       "cs_check works on a read-only fs");
	}
	umount(d);
}

static void
test_full_disk(void)
{
	char d[512], c[600];
	struct cs_params p = t_params(CS_CHUNK_DEFAULT);
	struct cs_store *cs;
	struct cs_stats before, after;
	uint8_t *buf = malloc(CS_CHUNK_DEFAULT);
	int rc = 0, i, err;

	newdir(d, sizeof(d), "full");
	if (mount_tmpfs(d, "size=2m") < 0) {
		skip(5, "mount not permitted");
		free(buf);
		return;
	}
	snprintf(c, sizeof(c), "%s/cache", d);
	p.limits.max_bytes = 1ull << 30;
	cs_create(c, &p);
	cs = cs_open(c, &p, &err);
	memset(buf, 0x5a, CS_CHUNK_DEFAULT);
	for (i = 0; i < 100; i++) {
		struct cs_key k = t_key(1, 1, (uint64_t)i);

		cs_get_stats(cs, &before);
		rc = cs_put(cs, &k, 1, buf, CS_CHUNK_DEFAULT, 0);
		if (rc < 0)
			break;
	}
	is_int(rc, -ENOSPC, "put on a full disk: -ENOSPC after %d chunks", i);
	cs_get_stats(cs, &after);
	ok(after.files_used == before.files_used &&
		   after.bytes_used == before.bytes_used,
	   "failed put changed no counters");
	{
		struct cs_key k0 = t_key(1, 1, 0),
			      kf = t_key(1, 1, (uint64_t)i);
		struct cs_info info;

		ok(cs_read(cs, &k0, 1, 0, buf, 10) == 10,
		   "earlier chunk still readable");
		is_int(cs_lookup(cs, &kf, &info), -ENOENT,
		       "failed chunk not there");
	}
	{
		char tmp[700];

		snprintf(tmp, sizeof(tmp), "%s/chunks/%02x/%08x.tmp", c,
			 i & 0xff, i);
		ok(access(tmp, F_OK) < 0, "no temporary file left behind");
	}
	cs_close(cs);
	umount(d);
	free(buf);
}

struct thr {
	struct cs_store *cs;
	int id;
	int bad;
};

static void *
thr_main(void *arg)
{
	struct thr *t = arg;
	uint8_t buf[CHUNK];

	for (int i = 0; i < 1500; i++) {
		uint64_t r = t_mix((uint64_t)t->id << 32 | (uint64_t)i);
		struct cs_key k = t_key(9, (unsigned)(r % 16), (r >> 8) % 4);
		uint64_t dv = (r >> 16) % 3;
		ssize_t n;

		switch ((r >> 24) % 4) {
		case 0:
			if (t_put(t->cs, &k, dv, MAXLEN, 0) < 0)
				t->bad++;
			break;
		case 1: {
			struct cs_key kw =
				t_key(10 + (uint32_t)t->id, 1, r % 4);

			if (cs_write(t->cs, &kw, 1, (uint32_t)(r % 1000),
				     "data", 4) < 0 ||
			    ((r >> 40) % 4 == 0 && cs_commit(t->cs, &kw) < 0))
				t->bad++;
			break;
		}
		default:
			n = cs_read(t->cs, &k, dv, 0, buf, sizeof(buf));
			if (n == -EIO || (n >= 0 && !t_check(buf, (size_t)n, &k,
							     dv, MAXLEN)))
				t->bad++;
			break;
		}
	}
	return NULL;
}

static void
test_threads(void)
{
	char d[512];
	struct cs_store *cs = mkstore(newdir(d, sizeof(d), "threads"));
	pthread_t th[6];
	struct thr t[6];
	int bad = 0;

	for (int i = 0; i < 6; i++) {
		t[i] = (struct thr){.cs = cs, .id = i};
		pthread_create(&th[i], NULL, thr_main, &t[i]);
	}
	for (int i = 0; i < 6; i++) {
		pthread_join(th[i], NULL);
		bad += t[i].bad;
	}
	is_int(bad, 0,
	       "6 threads: puts, reads, writes, commits; no bad result");
	cs_close(cs);
	{
		struct cs_check_result r;

		is_int(cs_check(d, 0, NULL, NULL, &r, NULL, NULL), 0,
		       "check after threads");
		is_int(r.errors, 0, "no errors after the threaded run");
	}
}

/* ---- read fd cache ---- */

static int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* opendir's own */
}

/* Store @len bytes of @c for @k, tagged @dv. */
static int
put_byte(struct cs_store *cs, const struct cs_key *k, uint64_t dv, int c,
	 uint32_t len)
{
	uint8_t buf[CHUNK];

	memset(buf, c, len);
	return cs_put(cs, k, dv, buf, len, 0);
}

/* Does a read of (@k, @dv) give @len bytes of @c? */
static int
read_byte(struct cs_store *cs, const struct cs_key *k, uint64_t dv, int c,
	  uint32_t len)
{
	uint8_t buf[CHUNK];
	ssize_t n = cs_read(cs, k, dv, 0, buf, sizeof(buf));

	if (n != (ssize_t)len)
		return 0;
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] != (uint8_t)c)
			return 0;
	return 1;
}

static void
test_fdc_stale(void)
{
	char d[512], p[600];
	struct cs_store *cs = mkstore(newdir(d, sizeof(d), "fdc-stale"));
	struct cs_key k = t_key(21, 1, 0), k2 = t_key(21, 1, 1);
	struct cs_key other = t_key(21, 2, 0);
	uint64_t opens;
	int err;

	/* Same key, same DV, new bytes: only the generation tells them
	 * apart, so this is the stale-fd case proper. */
	put_byte(cs, &k, 5, 'a', 1000);
	ok(read_byte(cs, &k, 5, 'a', 1000), "fdc: first read");
	opens = cs->fdc_opens;
	ok(read_byte(cs, &k, 5, 'a', 1000) && cs->fdc_opens == opens,
	   "fdc: second read reuses the cached fd");
	put_byte(cs, &k, 5, 'b', 900);
	ok(read_byte(cs, &k, 5, 'b', 900),
	   "fdc: replaced (same DV): new bytes");
	put_byte(cs, &k, 6, 'c', 800);
	ok(read_byte(cs, &k, 6, 'c', 800), "fdc: replaced (new DV): new bytes");
	is_int((int)cs_read(cs, &k, 5, 0, NULL, 0), -ESTALE,
	       "fdc: old DV -ESTALE");

	/* Working copy over a cached committed chunk, then commit. */
	is_int(cs_write(cs, &k, 6, 0, "dd", 2), 0, "fdc: write into wc");
	{
		uint8_t buf[CHUNK];
		ssize_t n = cs_read(cs, &k, 6, 0, buf, sizeof(buf));

		ok(n == 800 && buf[0] == 'd' && buf[1] == 'd' && buf[2] == 'c',
		   "fdc: reads see the working copy");
		is_int(cs_truncate(cs, &k, 6, 10), 0, "fdc: truncate wc");
		n = cs_read(cs, &k, 6, 0, buf, sizeof(buf));
		ok(n == 10 && buf[1] == 'd' && buf[9] == 'c',
		   "fdc: reads see the truncated working copy");
		is_int(cs_commit(cs, &k), 0, "fdc: commit");
		memset(buf, 0, sizeof(buf));
		n = cs_read(cs, &k, 6, 0, buf, sizeof(buf));
		ok(n == 10 && buf[0] == 'd' && buf[9] == 'c',
		   "fdc: after commit the committed copy is read");
		is_int(cs_mark_clean(cs, &k, 7), 0, "fdc: mark clean");
		n = cs_read(cs, &k, 7, 0, buf, sizeof(buf));
		ok(n == 10 && buf[0] == 'd', "fdc: read after retag");
	}

	/* Invalidate drops; a later put of the key reads its own bytes. */
	put_byte(cs, &k2, 7, 'e', 700);
	ok(read_byte(cs, &k2, 7, 'e', 700), "fdc: read chunk 1");
	is_int(cs_invalidate(cs, 21, k.fid, UINT64_MAX), 2,
	       "fdc: invalidate the file");
	is_int((int)cs_read(cs, &k2, 7, 0, NULL, 0), -ENOENT,
	       "fdc: invalidated chunk -ENOENT");
	/* The freed slots are reused by the next puts. */
	put_byte(cs, &other, 1, 'f', 600);
	put_byte(cs, &k2, 7, 'g', 500);
	ok(read_byte(cs, &other, 1, 'f', 600) &&
		   read_byte(cs, &k2, 7, 'g', 500),
	   "fdc: reused slots read their new chunks");

	/* Checksum on first read after open still holds. */
	cs_close(cs);
	snprintf(p, sizeof(p), "%s/chunks/%02x/%08x", d, 0u, 0u);
	cs = reopen(d, &err);
	{
		struct cs_info inf;

		if (cs_lookup(cs, &k2, &inf) == 0)
			snprintf(p, sizeof(p), "%s/chunks/%02x/%08x", d,
				 inf.slot & 0xff, inf.slot);
	}
	cs_close(cs);
	flip_byte(p, 3);
	cs = reopen(d, &err);
	{
		uint8_t b1[16];

		is_int((int)cs_read(cs, &k2, 7, 0, b1, 1), -EIO,
		       "fdc: damaged chunk -EIO on first read after open");
		is_int((int)cs_read(cs, &k2, 7, 0, b1, 1), -ENOENT,
		       "fdc: and dropped");
	}
	ok(read_byte(cs, &other, 1, 'f', 600), "fdc: other chunk intact");
	cs_close(cs);
}

static void
test_fdc_bound(void)
{
	char d[512];
	struct cs_store *cs = mkstore(newdir(d, sizeof(d), "fdc-bound"));
	struct cs_limits l = {0};
	int before, after, bad = 0, culled = 0;
	uint64_t opens;

	for (unsigned i = 0; i < 600; i++) {
		struct cs_key k = t_key(22, i / 16, i % 16);

		if (t_put(cs, &k, 1, MAXLEN, 0) < 0)
			bad++;
	}
	is_int(bad, 0, "fdc: 600 chunks stored");
	before = count_fds();
	for (int pass = 0; pass < 3; pass++)
		for (unsigned i = 0; i < 600; i++) {
			struct cs_key k = t_key(22, i / 16, i % 16);

			if (!read_ok(cs, &k, 1))
				bad++;
		}
	after = count_fds();
	is_int(bad, 0, "fdc: 1800 reads of 600 chunks correct");
	ok(after >= before && after - before <= CS_FD_CACHE_DEFAULT,
	   "fdc: open fds bounded (%d before, %d after, cache %d)", before,
	   after, CS_FD_CACHE_DEFAULT);
	/* A working set that fits is opened once. */
	opens = cs->fdc_opens;
	for (int pass = 0; pass < 5; pass++)
		for (unsigned i = 0; i < 100; i++) {
			struct cs_key k = t_key(22, i / 16, i % 16);

			if (!read_ok(cs, &k, 1))
				bad++;
		}
	ok(bad == 0 && cs->fdc_opens - opens <= 100,
	   "fdc: 500 reads of 100 chunks: %llu opens",
	   (unsigned long long)(cs->fdc_opens - opens));
	/* Cull most of it away: the culled chunks' fds go too. */
	l.max_files = 100;
	is_int(cs_set_limits(cs, &l), 0, "fdc: limit to 100 files");
	for (unsigned i = 0; i < 600; i++) {
		struct cs_key k = t_key(22, i / 16, i % 16);
		ssize_t n = cs_read(cs, &k, 1, 0, NULL, 0);

		if (n == -ENOENT)
			culled++;
		else if (!read_ok(cs, &k, 1))
			bad++;
	}
	ok(culled >= 500 && bad == 0, "fdc: %d culled, the rest correct",
	   culled);
	ok(count_fds() - before <= 100 + 1,
	   "fdc: fds of culled chunks closed (%d over)", count_fds() - before);
	cs_close(cs);
	is_int(count_fds(), before - 2, "fdc: cs_close closes every cached fd");
}

/* Read @n chunks of fid @f @passes times; @return the bad reads. */
static int
read_chunks(struct cs_store *cs, unsigned f, unsigned n, int passes)
{
	int bad = 0;

	for (int pass = 0; pass < passes; pass++)
		for (unsigned i = 0; i < n; i++) {
			struct cs_key k = t_key(24, f + i / 16, i % 16);

			if (!read_ok(cs, &k, 1))
				bad++;
		}
	return bad;
}

/* cs_params.fd_cache: the size of the read fd cache, clamped. */
static void
test_fdc_param(void)
{
	char d[512];
	struct cs_params p = t_params(CHUNK);
	struct cs_store *cs;
	int err = 0, bad = 0, before, peak;
	uint64_t opens;

	newdir(d, sizeof(d), "fdc-param");
	is_int(cs_create(d, &p), 0, "fdc param: created");
	/* Default, minimum and maximum clamps. */
	cs = cs_open(d, &p, &err);
	is_int(cs ? (int)cs->nfdc : -1, CS_FD_CACHE_DEFAULT,
	       "fdc param: 0 gives the default");
	cs_close(cs);
	p.fd_cache = 1;
	cs = cs_open(d, &p, &err);
	is_int(cs ? (int)cs->nfdc : -1, CS_FD_CACHE_MIN,
	       "fdc param: 1 is raised to the minimum");
	cs_close(cs);
	p.fd_cache = 1u << 30;
	cs = cs_open(d, &p, &err);
	is_int(cs ? (int)cs->nfdc : -1, CS_FD_CACHE_MAX,
	       "fdc param: 2^30 is capped at the maximum");
	cs_close(cs);

	/* A small cache: 200 chunks read 3 times stay correct, and the
	 * process never holds more than the cache's fds for them. */
	p.fd_cache = 32;
	before = count_fds();
	cs = cs_open(d, &p, &err);
	if (!cs) {
		ok(0, "fdc param: open with fd_cache 32 (%d)", err);
		return;
	}
	for (unsigned i = 0; i < 600; i++) {
		struct cs_key k = t_key(24, i / 16, i % 16);

		if (t_put(cs, &k, 1, MAXLEN, 0) < 0)
			bad++;
	}
	is_int(bad, 0, "fdc param: 600 chunks stored");
	opens = cs->fdc_opens;
	peak = 0;
	for (int pass = 0; pass < 3; pass++) {
		bad += read_chunks(cs, 0, 200, 1);
		if (count_fds() > peak)
			peak = count_fds();
	}
	is_int(bad, 0, "fdc param 32: 600 reads of 200 chunks correct");
	/* before: nothing open; the store adds its folder and index. */
	ok(peak - before <= 32 + 2,
	   "fdc param 32: at most 32 cached fds (%d over the start)",
	   peak - before);
	ok(cs->fdc_opens - opens >= 400,
	   "fdc param 32: 200 chunks do not fit: %llu opens",
	   (unsigned long long)(cs->fdc_opens - opens));
	cs_close(cs);
	is_int(count_fds(), before, "fdc param 32: cs_close closes them all");

	/* A cache larger than the default: 500 chunks, more than 256, are
	 * opened once over 3 passes, and the fds stay bounded by it. It
	 * needs ~530 fds: raise the soft limit as cairnd does. */
	{
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 1024 &&
		    rl.rlim_max > rl.rlim_cur) {
			rl.rlim_cur = rl.rlim_max < 1024 ? rl.rlim_max : 1024;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
		if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < 600) {
			skip(7, "fdc param 520: RLIMIT_NOFILE below 600");
			return;
		}
	}
	p.fd_cache = 520;
	cs = cs_open(d, &p, &err);
	if (!cs) {
		ok(0, "fdc param: open with fd_cache 520 (%d)", err);
		return;
	}
	opens = cs->fdc_opens;
	bad = read_chunks(cs, 0, 500, 3);
	is_int(bad, 0, "fdc param 520: 1500 reads of 500 chunks correct");
	is_int((int)(cs->fdc_opens - opens), 500,
	       "fdc param 520: each of 500 chunks opened once");
	ok(count_fds() - before <= 520 + 2,
	   "fdc param 520: fds bounded (%d over the start)",
	   count_fds() - before);
	/* All 600: the cache evicts, reads stay right, fds stay bounded. */
	bad = read_chunks(cs, 0, 600, 2);
	is_int(bad, 0, "fdc param 520: 1200 reads of 600 chunks correct");
	ok(count_fds() - before <= 520 + 2,
	   "fdc param 520: still bounded (%d over the start)",
	   count_fds() - before);
	cs_close(cs);
	is_int(count_fds(), before, "fdc param 520: cs_close closes them all");
}

struct fdc_thr {
	struct cs_store *cs;
	int id, writer;
	int bad, reads;
};

static void *
fdc_thr_main(void *arg)
{
	struct fdc_thr *t = arg;
	uint8_t buf[CHUNK];

	for (int i = 0; i < 3000; i++) {
		uint64_t r = t_mix((uint64_t)t->id << 32 | (uint64_t)i);
		/* 400 chunks: more than the cache holds, so entries are
		 * evicted while other threads read through them. */
		struct cs_key k = t_key(23, (unsigned)(r % 25), (r >> 8) % 16);
		uint64_t dv = 1 + (r >> 16) % 2;
		ssize_t n;

		if (t->writer) {
			if ((r >> 24) % 50 == 0)
				cs_invalidate(t->cs, 23, k.fid, UINT64_MAX);
			else if (t_put(t->cs, &k, dv, MAXLEN, 0) < 0)
				t->bad++;
			continue;
		}
		n = cs_read(t->cs, &k, dv, 0, buf, sizeof(buf));
		if (n >= 0) {
			t->reads++;
			if (!t_check(buf, (size_t)n, &k, dv, MAXLEN))
				t->bad++;
		} else if (n != -ENOENT && n != -ESTALE) {
			t->bad++;
		}
	}
	return NULL;
}

static void
test_fdc_threads(void)
{
	char d[512];
	struct cs_store *cs = mkstore(newdir(d, sizeof(d), "fdc-threads"));
	pthread_t th[6];
	struct fdc_thr t[6];
	int bad = 0, reads = 0, before = count_fds();

	for (unsigned i = 0; i < 400; i++) {
		struct cs_key k = t_key(23, i / 16, i % 16);

		t_put(cs, &k, 1, MAXLEN, 0);
	}
	for (int i = 0; i < 6; i++) {
		t[i] = (struct fdc_thr){.cs = cs, .id = i, .writer = i >= 4};
		pthread_create(&th[i], NULL, fdc_thr_main, &t[i]);
	}
	for (int i = 0; i < 6; i++) {
		pthread_join(th[i], NULL);
		bad += t[i].bad;
		reads += t[i].reads;
	}
	is_int(bad, 0,
	       "fdc: 4 readers, 2 replacing/invalidating: no bad "
	       "result");
	ok(reads > 1000, "fdc: %d reads returned data", reads);
	ok(count_fds() - before <= CS_FD_CACHE_DEFAULT,
	   "fdc: fds bounded after threads");
	cs_close(cs);
	/* before counted the store's folder and index fds. */
	is_int(count_fds(), before - 2,
	       "fdc: no fd leaked by the threaded run");
}

static void
report_cb(void *arg, enum cs_finding kind, const char *msg)
{
	(void)kind;
	snprintf(arg, 512, "%s", msg);
}

static void
test_check_repair(void)
{
	char d[512], p[600], msg[512] = "";
	struct cs_store *cs = mkstore(newdir(d, sizeof(d), "check"));
	struct cs_key k = t_key(6, 6, 4);
	struct cs_check_result r;

	t_put(cs, &k, 3, MAXLEN, 0);
	cs_close(cs);
	is_int(cs_check(d, 0, report_cb, msg, &r, NULL, NULL), 0,
	       "check clean cache");
	ok(r.errors == 0 && r.notes == 0 && r.records == 1 && r.files == 1 &&
		   r.bytes == t_len(&k, 3, MAXLEN) + CS_TRL_SIZE,
	   "clean: 1 chunk, every byte read");
	snprintf(p, sizeof(p), "%s/chunks/00/00000000", d);
	flip_byte(p, 0);
	is_int(cs_check(d, 0, report_cb, msg, &r, NULL, NULL), 0,
	       "check flipped cache");
	ok(r.errors == 1 && r.fixed == 0, "one error, not fixed");
	ok(strstr(msg, "checksum mismatch") && strstr(msg, "chunk 4"),
	   "report: %s", msg);
	ok(file_exists(d, "chunks/00/00000000"), "check alone changed nothing");
	is_int(cs_check(d, CS_CHECK_REPAIR, report_cb, msg, &r, NULL, NULL), 0,
	       "repair");
	ok(r.errors == 1 && r.fixed == 1 && r.records == 0,
	   "repaired: chunk dropped");
	is_int(cs_check(d, 0, NULL, NULL, &r, NULL, NULL), 0, "check again");
	ok(r.errors == 0 && r.notes == 0 && r.clean, "clean after repair");
	is_int(cs_check("/nonexistent/x", 0, NULL, NULL, &r, NULL, NULL),
	       -ENOENT, "check missing folder: -ENOENT");
	is_int(cs_check(d, 0x10, NULL, NULL, &r, NULL, NULL), -EINVAL,
	       "check bad flags");
}

int
main(void)
{
	t_mkdtemp(base, sizeof(base), "test");
	plan(0);
	test_crc();
	test_create_open();
	test_put_read();
	test_put_crc();
	test_spare();
	test_working_copy();
	test_nosync_commit();
	test_file_ops();
	test_damage();
	test_data_files();
	test_readonly();
	test_full_disk();
	test_threads();
	test_fdc_stale();
	test_fdc_bound();
	test_fdc_param();
	test_fdc_threads();
	test_check_repair();
	t_rm_rf(base);
	return done_testing();
}
