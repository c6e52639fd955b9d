/*
 * test_tdbw.c - the tdb wrapper (common/tdbw.h): each row of its errno
 * table produced by a real condition on a real file, above all a corrupt
 * and a truncated database, which every tdb user in cairn now reports the
 * same way.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/tdbw.h"
#include "tests/tap.h"
#include "tests/unit/memstat.h"
#include "tests/unit/tdb_damage.h"

static char dir[] = "/tmp/test_tdbw.XXXXXX";

static struct tdb_context *
db_open(const char *name, int oflags, char *path, size_t len)
{
	snprintf(path, len, "%s/%s", dir, name);
	return tdb_open(path, 131, TDB_NOSYNC | TDB_DISALLOW_NESTING, oflags,
			0600);
}

/* A database of 50 keys "key0".."key49", each with a 40-byte value. */
static void
db_fill(const char *name, char *path, size_t len)
{
	struct tdb_context *t = db_open(name, O_RDWR | O_CREAT, path, len);
	char k[16], v[40];

	memset(v, 'v', sizeof(v));
	for (int i = 0; i < 50; i++) {
		snprintf(k, sizeof(k), "key%d", i);
		tdbw_store(t, k, strlen(k), v, sizeof(v), TDB_REPLACE);
	}
	tdb_close(t);
}

static void
test_basic(void)
{
	char path[256];
	struct tdb_context *t = db_open("a.tdb", O_RDWR | O_CREAT, path,
					sizeof(path));
	uint8_t *val = NULL, fixed[4];
	size_t vlen = 0;

	ok(t != NULL, "create a database");
	is_int(tdbw_fetch(t, "x", 1, &val, &vlen), -ENOENT,
	       "fetch of a missing key: -ENOENT");
	is_int(tdbw_store(t, "x", 1, "abcd", 4, TDB_INSERT), 0, "insert");
	is_int(tdbw_store(t, "x", 1, "efgh", 4, TDB_INSERT), -EEXIST,
	       "insert over an existing key: -EEXIST");
	is_int(tdbw_store(t, "y", 1, "efgh", 4, TDB_MODIFY), -ENOENT,
	       "modify of a missing key: -ENOENT");
	is_int(tdbw_fetch(t, "x", 1, &val, &vlen), 0, "fetch");
	ok(val && vlen == 4 && !memcmp(val, "abcd", 4), "the value came back");
	free(val);
	is_int(tdbw_fetch_fixed(t, "x", 1, fixed, 4), 0, "fixed fetch");
	ok(!memcmp(fixed, "abcd", 4), "fixed value");
	is_int(tdbw_fetch_fixed(t, "x", 1, fixed, 3), -EUCLEAN,
	       "fixed fetch of a value of another size: -EUCLEAN");
	is_int(tdbw_fetch_fixed(t, "z", 1, fixed, 4), -ENOENT,
	       "fixed fetch of a missing key: -ENOENT");
	is_int(tdbw_txn_start(t), 0, "transaction start");
	is_int(tdbw_txn_start(t), -EBUSY,
	       "a second transaction on the handle: -EBUSY");
	is_int(tdbw_delete(t, "x", 1), 0, "delete inside it");
	tdbw_txn_cancel(t);
	is_int(tdbw_fetch(t, "x", 1, &val, &vlen), 0,
	       "cancel undid the delete");
	free(val);
	is_int(tdbw_txn_start(t), 0, "transaction start");
	is_int(tdbw_delete(t, "x", 1), 0, "delete");
	is_int(tdbw_txn_commit(t), 0, "commit");
	is_int(tdbw_delete(t, "x", 1), -ENOENT, "delete again: -ENOENT");
	tdb_close(t);

	t = tdb_open(path, 0, 0, O_RDONLY, 0);
	is_int(tdbw_store(t, "x", 1, "abcd", 4, TDB_REPLACE), -EROFS,
	       "store on a read-only handle: -EROFS");
	tdb_close(t);
	unlink(path);
}

static void
test_damage(void)
{
	char path[256];
	struct tdb_context *t;
	uint8_t *val = NULL, fixed[40];
	size_t vlen;
	int fd;

	/* A record whose header tdb finds damaged: TDB_ERR_CORRUPT. */
	db_fill("c.tdb", path, sizeof(path));
	is_int(tdb_damage_record(path, "key17", 5), 0, "smash a record's magic");
	t = db_open("c.tdb", O_RDWR, path, sizeof(path));
	ok(t != NULL, "the damaged database still opens");
	is_int(tdbw_fetch(t, "key17", 5, &val, &vlen), -EUCLEAN,
	       "fetch of the damaged record: -EUCLEAN");
	is_int(tdbw_fetch_fixed(t, "key17", 5, fixed, sizeof(fixed)),
	       -EUCLEAN, "fixed fetch of it too (tdb_parse_record says NOEXIST)");
	tdb_close(t);
	unlink(path);

	/* Cut inside the header: tdb_open refuses it (errno EIO). */
	db_fill("t.tdb", path, sizeof(path));
	ok(truncate(path, 100) == 0, "truncate to 100 bytes");
	errno = 0;
	t = db_open("t.tdb", O_RDWR, path, sizeof(path));
	ok(t == NULL, "open of a file cut inside its header fails");
	is_int(tdbw_open_errno(errno), -EUCLEAN, "it maps to -EUCLEAN");

	/* Garbage where the header should be. */
	fd = open(path, O_WRONLY | O_TRUNC);
	ok(fd >= 0 && write(fd, "this is not a tdb file, not at all", 34) == 34,
	   "write garbage");
	close(fd);
	errno = 0;
	t = db_open("t.tdb", O_RDWR, path, sizeof(path));
	ok(t == NULL, "open of garbage fails");
	is_int(tdbw_open_errno(errno), -EUCLEAN, "it maps to -EUCLEAN");
	unlink(path);

	/* Cut after the hash table: tdb reads past the end (TDB_ERR_IO). */
	db_fill("s.tdb", path, sizeof(path));
	ok(truncate(path, 1000) == 0, "truncate to 1000 bytes");
	t = db_open("s.tdb", O_RDWR, path, sizeof(path));
	ok(t != NULL, "a file cut after its hash table opens");
	is_int(tdbw_fetch(t, "key40", 5, &val, &vlen), -EIO,
	       "a record past the end: -EIO, as documented");
	tdb_close(t);
	unlink(path);

	is_int(tdbw_open_errno(ENOENT), -ENOENT, "open: ENOENT kept");
	is_int(tdbw_open_errno(EACCES), -EACCES, "open: EACCES kept");
	is_int(tdbw_open_errno(0), -EUCLEAN, "open: no errno is -EUCLEAN");
}

/* A database of @n keys "k00000".. with the value "value of KEY". */
static void
db_fill_n(const char *name, int n, char *path, size_t len)
{
	struct tdb_context *t = db_open(name, O_RDWR | O_CREAT, path, len);
	char k[16], v[40];

	for (int i = 0; i < n; i++) {
		snprintf(k, sizeof(k), "k%05d", i);
		snprintf(v, sizeof(v), "value of %s", k);
		tdbw_store(t, k, strlen(k), v, strlen(v), TDB_REPLACE);
	}
	tdb_close(t);
}

/* Every record of @t has its key's value; @return how many records. */
struct verify {
	int n, wrong;
};

static int
verify_cb(struct tdb_context *t, TDB_DATA k, TDB_DATA v, void *arg)
{
	struct verify *vf = arg;
	char want[64];

	(void)t;
	snprintf(want, sizeof(want), "value of %.*s", (int)k.dsize,
		 (const char *)k.dptr);
	if (v.dsize != strlen(want) || memcmp(v.dptr, want, v.dsize))
		vf->wrong++;
	vf->n++;
	return 0;
}

static int
refuse(void *arg, struct tdb_context *rebuilt)
{
	(void)rebuilt;
	*(int *)arg += 1;
	return -ESTALE;
}

/*
 * tdbw_check() and tdbw_rebuild() against each damage of tdb's layout
 * (tdb_damage_layout()): the check fails with a message, in bounded time
 * (alarm: a hang kills the test), and changes nothing; the rebuild
 * either keeps every record the chains reach, each with its own value,
 * and the result passes the check, or fails with -EUCLEAN (a loop, a
 * record tdb cannot read, a key twice) and leaves the file alone.
 */
static void
test_hostile(void)
{
	static const struct {
		int kind;
		const char *name;
		int rebuilt; /* records kept, or -1: the rebuild fails */
	} cases[] = {
		{'l', "a hash chain that loops", -1},
		{'d', "a loop of dead records", -1},
		{'o', "two records overlapping", 2000},
		{'p', "a record length past the end", -1},
		{'k', "a kill inside a delete (a dead record in its chain, "
		      "one unlinked)", 1998},
		{'t', "a file cut short", -1},
	};
	char path[256], why[256];
	struct tdbw_rebuild_result res;
	struct tdb_context *t;
	struct verify vf;
	struct stat st0, st1;
	int refused = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *nm = cases[i].name;
		int want = cases[i].rebuilt;

		db_fill_n("h.tdb", 2000, path, sizeof(path));
		if (cases[i].kind == 't') {
			stat(path, &st0);
			ok(truncate(path, st0.st_size * 6 / 10) == 0,
			   "%s: made", nm);
		} else {
			is_int(tdb_damage_layout(path, cases[i].kind), 0,
			       "%s: made", nm);
		}
		stat(path, &st0);
		alarm(20);
		t = tdb_open(path, 0, TDB_NOLOCK, O_RDONLY, 0600);
		ok(t != NULL, "%s: opens read-only", nm);
		if (!t)
			continue;
		is_int(tdbw_check(t, why, sizeof(why)), -EUCLEAN,
		       "%s: check says -EUCLEAN", nm);
		ok(why[0] != '\0' && !strchr(why, '\n'),
		   "%s: with tdb's message '%s'", nm, why);
		is_int(tdbw_rebuild(&t, NULL, 131, 0, NULL, NULL, &res),
		       want < 0 ? -EUCLEAN : 0, "%s: dry run: %s", nm,
		       want < 0 ? "-EUCLEAN" : "done");
		if (want >= 0)
			is_int((int)res.copied, want, "%s: dry run keeps %d",
			       nm, want);
		tdb_close(t);
		t = tdb_open(path, 0, TDB_NOLOCK, O_RDWR, 0600);
		if (want >= 0) {
			refused = 0;
			is_int(tdbw_rebuild(&t, path, 131,
					    TDB_NOLOCK | TDB_NOSYNC, refuse,
					    &refused, &res),
			       -ESTALE, "%s: a rebuild its verify refuses", nm);
		} else {
			is_int(tdbw_rebuild(&t, path, 131,
					    TDB_NOLOCK | TDB_NOSYNC, NULL, NULL,
					    &res),
			       -EUCLEAN, "%s: the rebuild fails", nm);
		}
		stat(path, &st1);
		ok(st1.st_size == st0.st_size && st1.st_ino == st0.st_ino &&
			   st1.st_mtime == st0.st_mtime,
		   "%s: check, dry run and %s changed nothing", nm,
		   want < 0 ? "failed rebuild" : "refused rebuild");
		if (want >= 0) {
			is_int(tdbw_rebuild(&t, path, 131,
					    TDB_NOLOCK | TDB_NOSYNC, NULL, NULL,
					    &res),
			       0, "%s: rebuild", nm);
			is_int(tdbw_check(t, why, sizeof(why)), 0,
			       "%s: the rebuilt file checks clean", nm);
			vf = (struct verify){0};
			tdb_traverse_read(t, verify_cb, &vf);
			ok(vf.n == want && vf.wrong == 0,
			   "%s: %d records, each with its own value", nm, vf.n);
		}
		alarm(0);
		tdb_close(t);
		unlink(path);
	}

	/* A key in two versions (both in a chain): the rebuild fails. */
	db_fill_n("d.tdb", 200, path, sizeof(path));
	is_int(tdb_damage_twin(path, "k00007", "k00008", 6), 0,
	       "a second version of k00007");
	t = tdb_open(path, 0, TDB_NOLOCK, O_RDWR, 0600);
	is_int(tdbw_check(t, why, sizeof(why)), -EUCLEAN,
	       "check finds the record in the wrong chain: '%s'", why);
	is_int(tdbw_rebuild(&t, path, 131, TDB_NOLOCK | TDB_NOSYNC, NULL, NULL,
			    &res),
	       -EUCLEAN, "the rebuild meets k00007 twice: -EUCLEAN");
	tdb_close(t);
	unlink(path);

	/* A sound file checks clean. */
	db_fill_n("c.tdb", 100, path, sizeof(path));
	t = tdb_open(path, 0, TDB_NOLOCK, O_RDONLY, 0600);
	is_int(tdbw_check(t, why, sizeof(why)), 0, "a sound file checks clean");
	tdb_close(t);
	unlink(path);
}

/*
 * A process killed in a commit that grew the file (t4081 does it with gdb
 * in cairnd): the state is made here by committing, then setting the
 * recovery record's magic valid again, which is the file as the commit
 * leaves it after its writes and their sync, before it invalidates the
 * record. tdb's open rolls the transaction back but leaves the grown
 * tail, which tdb_check() calls damage; tdbw_open() cuts it.
 */
static void
test_recovered_tail(void)
{
	char path[256], k[16], v[200], why[256];
	struct tdb_context *t;
	struct stat st;
	uint32_t rstart, magic = 0xf53bc0e7u;
	uint64_t cut = 1;
	off_t size0, size1;
	int fd, bad = 0;

	snprintf(path, sizeof(path), "%s/r.tdb", dir);
	t = tdb_open(path, 131, TDB_NOLOCK, O_RDWR | O_CREAT, 0600);
	tdbw_store(t, "old", 3, "1", 1, TDB_INSERT);
	tdb_close(t);
	stat(path, &st);
	size0 = st.st_size;
	t = tdb_open(path, 0, TDB_NOLOCK, O_RDWR, 0600);
	memset(v, 'n', sizeof(v));
	tdbw_txn_start(t);
	for (int i = 0; i < 2000; i++) {
		snprintf(k, sizeof(k), "new%d", i);
		tdbw_store(t, k, strlen(k), v, sizeof(v), TDB_INSERT);
	}
	is_int(tdbw_txn_commit(t), 0, "a commit of 2000 records");
	tdb_close(t);
	stat(path, &st);
	size1 = st.st_size;
	ok(size1 > size0, "it grew the file (%lld -> %lld bytes)",
	   (long long)size0, (long long)size1);
	fd = open(path, O_RDWR);
	if (pread(fd, &rstart, 4, 44) != 4 ||
	    pwrite(fd, &magic, 4, (off_t)rstart + 20) != 4)
		bad = 1;
	close(fd);
	ok(!bad && rstart, "its recovery record made valid again (the kill)");

	/* What tdb's own open leaves: the rollback, the tail kept. */
	{
		char p2[256];
		size_t n;
		uint8_t *buf = tdb_damage_load(path, &n);

		snprintf(p2, sizeof(p2), "%s/r2.tdb", dir);
		close(open(p2, O_WRONLY | O_CREAT, 0600));
		if (buf)
			tdb_damage_save(p2, buf, n);
		t = tdb_open(p2, 0, TDB_NOLOCK, O_RDWR, 0600);
		stat(p2, &st);
		diag("tdb_open: %lld bytes after the recovery, tdb_check %s",
		     (long long)st.st_size,
		     tdbw_check(t, why, sizeof(why)) ? why : "clean");
		tdb_close(t);
		unlink(p2);
	}

	t = tdbw_open(path, 0, TDB_NOLOCK, O_RDWR, 0600, NULL, &cut);
	ok(t != NULL, "tdbw_open opens it");
	is_int((int)cut, (int)(size1 - size0),
	       "the tail the commit added is cut");
	stat(path, &st);
	is_int((int)st.st_size, (int)size0,
	       "the file has its size before the commit");
	is_int(tdbw_check(t, why, sizeof(why)), 0, "tdb_check finds it sound");
	is_int(tdbw_fetch_fixed(t, "old", 3, v, 1), 0,
	       "the old record is there");
	is_int(tdbw_fetch_fixed(t, "new7", 4, v, sizeof(v)), -ENOENT,
	       "the rolled-back ones are not");
	tdb_close(t);

	/* A commit that only rewrote records in place, killed the same
	 * way: the header still names the recovery area after the
	 * rollback (tdbw_open() never cuts one it names: an area at the
	 * end that such a commit enlarged reaches past the old end). */
	memset(v, 'm', sizeof(v));
	t = tdb_open(path, 0, TDB_NOLOCK, O_RDWR, 0600);
	tdbw_txn_start(t);
	for (int i = 0; i < 2000; i++) {
		snprintf(k, sizeof(k), "new%d", i);
		tdbw_store(t, k, strlen(k), v, sizeof(v), TDB_INSERT);
	}
	tdbw_txn_commit(t);
	memset(v, 'o', sizeof(v));
	tdbw_txn_start(t);
	for (int i = 0; i < 2000; i++) {
		snprintf(k, sizeof(k), "new%d", i);
		tdbw_store(t, k, strlen(k), v, sizeof(v), TDB_MODIFY);
	}
	stat(path, &st);
	size0 = st.st_size;
	is_int(tdbw_txn_commit(t), 0,
	       "a commit rewriting 2000 records in place");
	tdb_close(t);
	stat(path, &st);
	size1 = st.st_size;
	fd = open(path, O_RDWR);
	bad = pread(fd, &rstart, 4, 44) != 4 ||
	      pwrite(fd, &magic, 4, (off_t)rstart + 20) != 4;
	close(fd);
	t = tdbw_open(path, 0, TDB_NOLOCK, O_RDWR, 0600, NULL, &cut);
	ok(t != NULL && !bad,
	   "tdbw_open opens it (%lld -> %lld bytes, "
	   "recovery area at %u)",
	   (long long)size0, (long long)size1, rstart);
	is_int(tdbw_check(t, why, sizeof(why)), 0,
	       "tdb_check finds it sound (%llu bytes cut)",
	       (unsigned long long)cut);
	is_int(tdbw_fetch_fixed(t, "new7", 4, v, sizeof(v)), 0,
	       "the records of the last commit before it are there");
	ok(v[0] == 'm', "with their values before the rolled-back one");
	tdb_close(t);

	/* Nothing pending: nothing cut. */
	t = tdbw_open(path, 0, TDB_NOLOCK, O_RDWR, 0600, NULL, &cut);
	ok(t != NULL && cut == 0,
	   "a file with no recovery pending: nothing cut");
	tdb_close(t);
	unlink(path);
}

/*
 * The same kill in a commit whose recovery data outgrew the recovery area:
 * tdb moved the area past the transaction's end, and the rollback left
 * the old one named by nothing (tdb_check() would call it dead space,
 * swallowing every record after it). tdbw_open() names it again.
 */
static void
test_recovered_moved_area(void)
{
	char path[256], k[16], v[200], why[256];
	struct tdb_context *t;
	uint32_t area0 = 0, area1 = 0, rstart = 0, magic = 0xf53bc0e7u;
	uint64_t cut = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/m.tdb", dir);
	t = tdb_open(path, 131, TDB_NOLOCK, O_RDWR | O_CREAT, 0600);
	memset(v, 'a', sizeof(v));
	tdbw_txn_start(t);
	for (int i = 0; i < 3000; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		tdbw_store(t, k, strlen(k), v, sizeof(v), TDB_INSERT);
	}
	tdbw_txn_commit(t);
	fd = open(path, O_RDONLY);
	if (pread(fd, &area0, 4, 44) != 4)
		area0 = 0;
	close(fd);
	/* Every record rewritten (the recovery data outgrows the area),
	 * and as many new ones (the file grows). */
	memset(v, 'b', sizeof(v));
	tdbw_txn_start(t);
	for (int i = 0; i < 3000; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		tdbw_store(t, k, strlen(k), v, sizeof(v), TDB_MODIFY);
		snprintf(k, sizeof(k), "n%d", i);
		tdbw_store(t, k, strlen(k), v, sizeof(v), TDB_INSERT);
	}
	tdbw_txn_commit(t);
	tdb_close(t);
	fd = open(path, O_RDWR);
	if (pread(fd, &area1, 4, 44) != 4 ||
	    pwrite(fd, &magic, 4, (off_t)area1 + 20) != 4)
		area1 = 0;
	close(fd);
	ok(area0 && area1 && area1 != area0,
	   "the commit moved the recovery area (%u -> %u)", area0, area1);
	t = tdbw_open(path, 0, TDB_NOLOCK, O_RDWR, 0600, NULL, &cut);
	ok(t != NULL && cut > 0, "tdbw_open rolls it back and cuts %llu bytes",
	   (unsigned long long)cut);
	fd = open(path, O_RDONLY);
	if (pread(fd, &rstart, 4, 44) != 4)
		rstart = 0;
	close(fd);
	is_int((int)rstart, (int)area0, "the old recovery area is named again");
	is_int(tdbw_check(t, why, sizeof(why)), 0, "tdb_check finds it sound");
	is_int(tdbw_fetch_fixed(t, "k7", 2, v, sizeof(v)), 0, "k7 is there");
	ok(v[0] == 'a', "with its value before the rolled-back commit");
	is_int(tdbw_fetch_fixed(t, "n7", 2, v, sizeof(v)), -ENOENT,
	       "n7 is not");
	tdb_close(t);
	unlink(path);
}

static off_t
fsize(struct tdb_context *t)
{
	struct stat st;

	return fstat(tdb_fd(t), &st) ? -1 : st.st_size;
}

/*
 * tdbw_reserve(): a transaction that needs more room than the free list
 * has grows the file inside it, and tdb holds that growth (a quarter of
 * the file, all zeros) in the transaction's blocks until the commit.
 * With the room reserved first, the growth is on disk and the
 * transaction's peak memory is its records. Issue #17.
 */
static void
test_reserve(void)
{
	char path[256], k[32], v[200];
	struct tdb_context *t;
	off_t s0, s1, s2;
	long anon0, anon1;
	int i, rc = 0;

	snprintf(path, sizeof(path), "%s/reserve.tdb", dir);
	t = tdb_open(path, 131, TDB_NOSYNC | TDB_NOLOCK, O_RDWR | O_CREAT,
		     0600);
	ok(t != NULL, "reserve: a database");
	if (!t)
		return;
	memset(v, 'r', sizeof(v));
	for (i = 0; rc == 0 && fsize(t) < 16 << 20 && i < 1000000; i++) {
		snprintf(k, sizeof(k), "r%d", i);
		rc = tdbw_store(t, k, strlen(k), v, sizeof(v), TDB_INSERT);
	}
	ok(rc == 0 && fsize(t) >= 16 << 20, "reserve: 16 MiB of records");
	/* A first transaction: its commit puts tdb's recovery area at the
	 * end of the file (grown by a quarter, on disk), which later ones
	 * reuse while their old blocks fit in it. */
	is_int(tdbw_txn_start(t), 0, "reserve: a first transaction");
	is_int(tdbw_store(t, "w", 1, v, sizeof(v), TDB_INSERT), 0,
	       "reserve: its store");
	is_int(tdbw_txn_commit(t), 0, "reserve: its commit");
	ok(tdb_damage_use_free(t, "fill", 1024) >= 0,
	   "reserve: the free list used up (no free record of 1 KiB)");
	s0 = fsize(t);

	/* The transaction: 100 records of 200 bytes, ~21 KB of tdb's
	 * space; the free list has none of it. */
	malloc_trim(0); /* so that what follows allocates fresh pages */
	anon0 = status_kb("RssAnon");
	is_int(tdbw_reserve(t, 100 * (8 + sizeof(v) + 32)), 0,
	       "reserve: room for a transaction");
	s1 = fsize(t);
	ok(s1 > s0,
	   "reserve: it grew the file (%lld -> %lld), outside the "
	   "transaction",
	   (long long)s0, (long long)s1);
	is_int(tdbw_txn_start(t), 0, "reserve: a transaction");
	is_int(tdbw_reserve(t, 100), -EBUSY,
	       "reserve: inside a transaction: -EBUSY");
	for (rc = 0, i = 0; i < 100 && rc == 0; i++) {
		snprintf(k, sizeof(k), "t%d", i);
		rc = tdbw_store(t, k, strlen(k), v, sizeof(v), TDB_INSERT);
	}
	is_int(rc, 0, "reserve: its 100 stores");
	/* What the transaction holds, before its commit frees it (RssAnon:
	 * VmHWM would mix in the file's pages, which a remap drops). */
	anon1 = status_kb("RssAnon");
	is_int(tdbw_txn_commit(t), 0, "reserve: its commit");
	s2 = fsize(t);
	ok(s2 == s1,
	   "reserve: the transaction did not grow the file "
	   "(%lld -> %lld)",
	   (long long)s1, (long long)s2);
	/* tdb grows a 20 MiB file by 5 MiB; inside the transaction that
	 * would be zeros in its blocks. */
	if (!MEM_MEASURED || anon0 <= 0 || anon1 <= 0)
		skip(1, "memory not measured (sanitizers, or no RssAnon)");
	else
		ok(anon1 - anon0 < 1024,
		   "reserve: the transaction holds %ld kB more anonymous "
		   "memory (< 1 MiB)",
		   anon1 - anon0);
	is_int(tdbw_reserve(t, 100 * (8 + sizeof(v) + 32)), 0,
	       "reserve: again, with room left");
	ok(fsize(t) == s2, "reserve: no growth when a free record fits");
	ok(!tdb_exists(t, tdbw_data(TDBW_RESERVE_KEY, TDBW_RESERVE_KEY_LEN)),
	   "reserve: its record does not stay");
	is_int(tdbw_check(t, NULL, 0), 0, "reserve: tdb_check() accepts it");
	tdb_close(t);
	unlink(path);
}

int
main(void)
{
	if (!mkdtemp(dir))
		return 99;
	test_basic();
	test_damage();
	test_hostile();
	test_recovered_tail();
	test_recovered_moved_area();
	test_reserve();
	rmdir(dir);
	return done_testing();
}
