/*
 * test_tdbj.c - the tdb redo journal (common/tdbj.h): reads through the
 * overlay, one sync per commit, checkpoints, and above all what open makes
 * of a journal a crash or a bad disk left: torn tails, flipped bytes,
 * absurd length fields, journals of another generation or database, and
 * processes killed with SIGKILL at random points of a commit stream.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/crc32c.h"
#include "common/tdbj.h"
#include "tests/tap.h"
#include "tests/unit/tdb_damage.h"

static char dir[] = "/tmp/test_tdbj.XXXXXX";
static char dbp[300], jp[300];

static struct tdbj *
jo(unsigned flags, size_t max, int *err)
{
	bool ro = flags & TDBJ_O_RDONLY;
	struct tdb_context *t =
		tdb_open(dbp, 131, TDB_NOSYNC | TDB_DISALLOW_NESTING,
			 ro ? O_RDONLY : O_RDWR | O_CREAT, 0600);
	struct tdbj *j;

	if (!t) {
		*err = -errno;
		return NULL;
	}
	j = tdbj_open(t, jp, flags, max, err);
	if (!j)
		tdb_close(t);
	return j;
}

static void
fresh(void)
{
	unlink(dbp);
	unlink(jp);
}

static int
put(struct tdbj *j, const char *k, const char *v)
{
	return tdbj_store(j, k, strlen(k), v, strlen(v), TDB_REPLACE);
}

/* The value of @k as a string in @out, or "" with the error. */
static int
get(struct tdbj *j, const char *k, char *out, size_t len)
{
	uint8_t *v;
	size_t vl;
	int rc = tdbj_fetch(j, k, strlen(k), &v, &vl);

	out[0] = 0;
	if (rc)
		return rc;
	if (vl >= len)
		vl = len - 1;
	memcpy(out, v, vl);
	out[vl] = 0;
	free(v);
	return 0;
}

static off_t
fsize(const char *p)
{
	struct stat sb;

	return stat(p, &sb) ? -1 : sb.st_size;
}

/* Commit @n transactions "kI" = "vI" in a child that then dies without
 * closing (nothing checkpointed at exit). */
static void
child_commits(int n, unsigned flags)
{
	pid_t pid = fork();

	if (!pid) {
		int err;
		struct tdbj *j = jo(flags, 0, &err);
		char k[32], v[32];

		if (!j)
			_exit(2);
		for (int i = 0; i < n; i++) {
			snprintf(k, sizeof(k), "k%d", i);
			snprintf(v, sizeof(v), "v%d", i);
			if (tdbj_txn_start(j) || put(j, k, v) ||
			    tdbj_txn_commit(j, 0))
				_exit(3);
		}
		_exit(0);
	}
	int st;

	waitpid(pid, &st, 0);
	is_int(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0,
	       "child committed %d transactions and died unclosed", n);
}

static int
count_present(struct tdbj *j, int n)
{
	char k[32], v[32], want[32];
	int c = 0;

	for (int i = 0; i < n; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		snprintf(want, sizeof(want), "v%d", i);
		if (!get(j, k, v, sizeof(v)) && !strcmp(v, want))
			c++;
	}
	return c;
}

/* How many of @pfx0..@pfx(n-1) hold a 999-byte run of 'v'. */
static int
count_prefix(struct tdbj *j, const char *pfx, int n)
{
	char k[32];
	uint8_t *v;
	size_t vl;
	int c = 0;

	for (int i = 0; i < n; i++) {
		snprintf(k, sizeof(k), "%s%d", pfx, i);
		if (tdbj_fetch(j, k, strlen(k), &v, &vl))
			continue;
		if (vl == 999 && v[0] == 'v' && v[998] == 'v')
			c++;
		free(v);
	}
	return c;
}

/* Flip one byte of the journal at @off. */
static void
flip(off_t off)
{
	int fd = open(jp, O_RDWR);
	uint8_t b;

	if (pread(fd, &b, 1, off) != 1)
		b = 0;
	b ^= 0x5a;
	ok(pwrite(fd, &b, 1, off) == 1, "flipped the byte at %lld",
	   (long long)off);
	close(fd);
}

static void
test_basic(void)
{
	int err;
	struct tdbj *j;
	struct tdbj_stats st;
	char v[64];
	uint8_t fx[4];
	TDB_DATA d;
	uint64_t s0;

	fresh();
	j = jo(0, 0, &err);
	ok(j != NULL, "open a tdb with a new journal");
	if (!j)
		return;
	is_int(fsize(jp), 40, "the new journal is its 40-byte header");
	is_int(tdbj_txn_start(j), 0, "txn start");
	is_int(tdbj_txn_start(j), -EBUSY, "a second txn: -EBUSY");
	is_int(put(j, "a", "alpha"), 0, "store in the txn");
	is_int(get(j, "a", v, sizeof(v)), 0, "the txn sees its store");
	is_str(v, "alpha", "value");
	tdbj_txn_cancel(j);
	is_int(get(j, "a", v, sizeof(v)), -ENOENT, "cancel dropped it");
	is_int(fsize(jp), 40, "a cancelled txn writes nothing");

	tdbj_stats(j, &st);
	s0 = st.syncs;
	is_int(tdbj_txn_start(j), 0, "txn start");
	is_int(put(j, "a", "alpha"), 0, "store a");
	is_int(tdbj_store(j, "b", 1, "beta", 4, TDB_INSERT), 0, "insert b");
	is_int(tdbj_store(j, "b", 1, "x", 1, TDB_INSERT), -EEXIST,
	       "insert over b in the same txn: -EEXIST");
	is_int(tdbj_store(j, "c", 1, "x", 1, TDB_MODIFY), -ENOENT,
	       "modify of a missing key: -ENOENT");
	is_int(tdbj_delete(j, "zz", 2), -ENOENT, "delete of a missing key");
	is_int(tdbj_store(j, TDBJ_KEY, TDBJ_KEY_LEN, "x", 1, TDB_REPLACE),
	       -EINVAL, "the journal's own key is refused");
	is_int(tdbj_txn_commit(j, 0), 0, "commit");
	tdbj_stats(j, &st);
	is_int((int)(st.syncs - s0), 1, "the commit cost one fdatasync");
	is_int((int)st.commits, 1, "one commit counted");
	ok(fsize(jp) > 40, "the journal holds a record");
	d = tdb_fetch(tdbj_tdb(j), tdbw_data("a", 1));
	ok(d.dptr == NULL, "the tdb file itself was not written");
	free(d.dptr);
	is_int(get(j, "a", v, sizeof(v)), 0, "a read sees the overlay");
	is_str(v, "alpha", "value of a");
	is_int(tdbj_fetch_fixed(j, "b", 1, fx, 4), 0, "fixed fetch of b");
	ok(!memcmp(fx, "beta", 4), "b's value");
	is_int(tdbj_fetch_fixed(j, "b", 1, fx, 3), -EUCLEAN,
	       "fixed fetch of a wrong size: -EUCLEAN");

	is_int(tdbj_delete(j, "a", 1), 0, "delete a outside a txn");
	is_int(get(j, "a", v, sizeof(v)), -ENOENT, "a is gone");
	tdbj_stats(j, &st);
	is_int((int)(st.syncs - s0), 2, "the implicit txn cost one more sync");

	is_int(tdbj_checkpoint(j), 0, "checkpoint");
	d = tdb_fetch(tdbj_tdb(j), tdbw_data("b", 1));
	ok(d.dptr && d.dsize == 4, "the checkpoint wrote b to the tdb");
	free(d.dptr);
	is_int(fsize(jp), 40, "and emptied the journal");
	tdbj_stats(j, &st);
	is_int((int)st.gen, 2, "a new generation");
	is_int(tdbj_close(j), 0, "close");

	j = jo(0, 0, &err);
	ok(j != NULL, "reopen");
	if (!j)
		return;
	is_int(get(j, "b", v, sizeof(v)), 0, "b survived a checkpoint");
	is_str(v, "beta", "its value");
	is_int(get(j, "a", v, sizeof(v)), -ENOENT, "a stays deleted");
	tdbj_close(j);
}

static int
trav_count(TDB_DATA k, TDB_DATA v, void *arg)
{
	int *n = arg;

	(void)v;
	if (k.dsize == TDBJ_KEY_LEN && !memcmp(k.dptr, TDBJ_KEY, 5))
		*n += 1000;
	else
		(*n)++;
	return 0;
}

static void
test_traverse(void)
{
	int err, n = 0;
	struct tdbj *j;

	fresh();
	j = jo(0, 0, &err);
	if (!ok(j != NULL, "open for traverse"))
		return;
	put(j, "t1", "1");
	put(j, "t2", "2");
	tdbj_checkpoint(j);
	put(j, "t3", "3");
	put(j, "t2", "22");
	tdbj_delete(j, "t1", 2);
	is_int(tdbj_traverse_read(j, trav_count, &n), 2,
	       "traverse visits t2, t3 once each");
	is_int(n, 2, "and hides deleted keys and the journal's key");
	tdbj_close(j);
}

static void
test_replay(void)
{
	int err;
	struct tdbj *j;
	off_t sz;
	char v[32];

	fresh();
	child_commits(10, 0);
	sz = fsize(jp);
	j = jo(TDBJ_O_RDONLY, 0, &err);
	ok(j != NULL, "read-only open of a journal with 10 records");
	if (j) {
		is_int(count_present(j, 10), 10,
		       "read-only open sees all 10 commits");
		is_int(put(j, "x", "y"), -EROFS, "and refuses changes");
		tdbj_close(j);
	}
	is_int((int)fsize(jp), (int)sz, "read-only open wrote nothing");

	/* Torn tail: the last record loses its last 3 bytes. */
	ok(truncate(jp, sz - 3) == 0, "tear the last record");
	j = jo(TDBJ_O_RDONLY, 0, &err);
	ok(j != NULL, "read-only open of a torn journal");
	if (j) {
		is_int(count_present(j, 10), 9, "the torn commit is cut");
		tdbj_close(j);
	}
	is_int((int)fsize(jp), (int)sz - 3, "read-only leaves the tail");
	j = jo(0, 0, &err);
	ok(j != NULL, "read-write open of a torn journal");
	if (j) {
		is_int(count_present(j, 10), 9, "9 commits");
		is_int(get(j, "k9", v, sizeof(v)), -ENOENT, "k9 is not there");
		ok(fsize(jp) < sz - 3, "the tail was cut off the file");
		is_int(put(j, "k9", "v9"), 0, "a commit after the cut");
		tdbj_close(j);
	}
	j = jo(0, 0, &err);
	if (ok(j != NULL, "reopen after close")) {
		is_int(count_present(j, 10), 10, "all 10 after a checkpoint");
		tdbj_close(j);
	}
}

/* In a child: commit "kI" = "vI" for I in @from..@to-1 with commit
 * flags @cflags, then die unclosed. */
static void
child_commits_from(int from, int to, unsigned cflags)
{
	pid_t pid = fork();

	if (!pid) {
		int err;
		struct tdbj *j = jo(0, 0, &err);
		char k[32], v[32];

		if (!j)
			_exit(2);
		for (int i = from; i < to; i++) {
			snprintf(k, sizeof(k), "k%d", i);
			snprintf(v, sizeof(v), "v%d", i);
			if (tdbj_txn_start(j) || put(j, k, v) ||
			    tdbj_txn_commit(j, cflags))
				_exit(3);
		}
		_exit(0);
	}
	int st;

	waitpid(pid, &st, 0);
	is_int(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0,
	       "child committed k%d..k%d and died unclosed", from, to - 1);
}

/*
 * The first record torn, an unsynced one after it whole (a power loss
 * may keep the later page and lose the earlier): the cut is at the
 * header, and a read-write open must still drop the later record from
 * the file. Left there, it would follow the first new record of the same
 * length exactly where it begins, with the next seq, and come back as
 * a commit at the next open although it was never acknowledged.
 */
static void
test_torn_first(void)
{
	int err;
	struct tdbj *j;
	off_t sz, rl;

	fresh();
	child_commits_from(0, 2, TDBJ_C_NOSYNC); /* k0, k1: base 40 each */
	sz = fsize(jp);
	rl = (sz - 40) / 2;
	flip(40 + rl - 2); /* k0's value: its CRC fails */
	j = jo(0, 0, &err);
	if (ok(j != NULL, "torn first record, a whole unsynced one after it: "
			  "opens (an unacknowledged tail)")) {
		is_int(count_present(j, 2), 0, "neither commit is there");
		is_int((int)fsize(jp), 40, "the tail is cut off the file");
		tdbj_close(j);
	}
	/* The same, then a commit of the same length and a kill. */
	fresh();
	child_commits_from(0, 2, TDBJ_C_NOSYNC);
	flip(40 + rl - 2);
	child_commits_from(5, 6, 0); /* k5 = v5: rl bytes at offset 40 */
	j = jo(TDBJ_O_RDONLY, 0, &err);
	if (ok(j != NULL, "reopen after a new commit over the torn one")) {
		is_int(count_present(j, 6), 1, "only k5, the new commit");
		is_int(get(j, "k1", (char[32]){0}, 32), -ENOENT,
		       "k1 (never acknowledged) does not come back");
		tdbj_close(j);
	}
}

/*
 * TDBJ_O_PREALLOC: zeros ahead of the last record. A kill leaves them
 * after the records; they read as the end, a read-write open cuts them
 * off, and a torn last record before them is a tail as without them.
 */
static void
test_prealloc(void)
{
	int err;
	struct tdbj *j;
	off_t sz = 40 + 10 * 33, rl;

	fresh();
	child_commits(10, TDBJ_O_PREALLOC); /* default bound: 64 KiB steps */
	ok(fsize(jp) >= 40 + (64 << 10), "zeros written ahead (%ld bytes)",
	   (long)fsize(jp));
	j = jo(TDBJ_O_RDONLY, 0, &err);
	if (ok(j != NULL, "read-only open of a preallocated journal")) {
		is_int(count_present(j, 10), 10, "all 10 commits");
		tdbj_close(j);
	}
	j = jo(0, 0, &err);
	if (ok(j != NULL, "read-write open")) {
		is_int(count_present(j, 10), 10, "all 10 commits");
		sz = fsize(jp);
		ok(sz > 40 && sz < 4096, "the zeros are cut off (%ld bytes)",
		   (long)sz);
		tdbj_close(j);
	}
	is_int((int)fsize(jp), 40, "a close checkpoints: header only");
	rl = (sz - 40) / 10;

	/* The last record torn, zeros after it: a tail. */
	fresh();
	child_commits(5, TDBJ_O_PREALLOC);
	flip(40 + 5 * rl - 2);
	j = jo(TDBJ_O_PREALLOC, 0, &err);
	if (ok(j != NULL, "torn last record before the zeros: opens")) {
		is_int(count_present(j, 5), 4, "4 commits, the tail cut");
		is_int(put(j, "k4", "v4"), 0, "a commit after the cut");
		ok(fsize(jp) >= 40 + 5 * rl + (64 << 10),
		   "over new zeros");
		tdbj_close(j);
	}
	j = jo(0, 0, &err);
	if (ok(j != NULL, "reopen")) {
		is_int(count_present(j, 5), 5, "all 5");
		tdbj_close(j);
	}

	/* A damaged record that synced ones follow: still refused. */
	fresh();
	child_commits(5, TDBJ_O_PREALLOC);
	flip(40 + 2 * rl + rl / 2);
	j = jo(0, 0, &err);
	ok(j == NULL && err == -EUCLEAN,
	   "bad CRC before valid records, zeros after them: -EUCLEAN");

	/* A small bound (tests, t1180): no preallocation. */
	fresh();
	j = jo(TDBJ_O_PREALLOC, 4096, &err);
	if (ok(j != NULL, "a 4 KiB bound")) {
		is_int(put(j, "a", "b"), 0, "a commit");
		ok(fsize(jp) < 4096, "no zeros ahead under 64 KiB bounds");
		tdbj_close(j);
	}
}

/* Record offsets of a journal of records of equal size. */
static void
test_damage(void)
{
	int err;
	struct tdbj *j;
	off_t sz, rl;

	/* A flipped byte in the last record: an unacknowledged tail. */
	fresh();
	child_commits(5, 0);
	sz = fsize(jp);
	rl = (sz - 40) / 5; /* "kI"/"vI" records are all the same size */
	flip(sz - 2);
	j = jo(0, 0, &err);
	if (ok(j != NULL, "bad CRC in the last record: opens")) {
		is_int(count_present(j, 5), 4, "4 commits, the tail cut");
		tdbj_close(j);
	}

	/* A flipped byte in a middle record followed by synced ones. */
	fresh();
	child_commits(5, 0);
	flip(40 + rl + rl / 2);
	j = jo(TDBJ_O_RDONLY, 0, &err);
	ok(j == NULL, "bad CRC before valid records: refused");
	is_int(err, -EUCLEAN, "-EUCLEAN");
	j = jo(0, 0, &err);
	ok(j == NULL && err == -EUCLEAN, "read-write too");
	is_int((int)fsize(jp), (int)(40 + 5 * rl), "and left as is");

	/* An absurd length field in the middle. */
	fresh();
	child_commits(5, 0);
	flip(40 + 2 * rl + 7); /* top byte of record 3's length */
	j = jo(0, 0, &err);
	ok(j == NULL && err == -EUCLEAN,
	   "oversized length before valid records: -EUCLEAN");
	/* ... and in the last record: a tail. */
	fresh();
	child_commits(5, 0);
	flip(40 + 4 * rl + 7);
	j = jo(0, 0, &err);
	if (ok(j != NULL, "oversized length in the last record: a tail")) {
		is_int(count_present(j, 5), 4, "4 commits");
		tdbj_close(j);
	}

	/* A bad header alone (a reset torn): nothing to lose, a new one. */
	fresh();
	child_commits(2, 0);
	j = jo(0, 0, &err);
	if (j)
		tdbj_close(j);
	flip(20);
	j = jo(0, 0, &err);
	if (ok(j != NULL, "a damaged header with no record: opens")) {
		is_int(count_present(j, 2), 2, "the tdb's data is there");
		tdbj_close(j);
	}

	/* A bad header with records behind it. */
	fresh();
	child_commits(2, 0);
	flip(3);
	j = jo(0, 0, &err);
	ok(j == NULL && err == -EUCLEAN, "bad header magic: -EUCLEAN");
	fresh();
	child_commits(2, 0);
	{
		int fd = open(jp, O_RDWR);
		uint8_t h[40];

		ok(pread(fd, h, 40, 0) == 40, "read the header");
		h[8] = 9; /* version 9, with a CRC to match */
		uint32_t c = crc32c(0, h, 32);

		for (int i = 0; i < 4; i++)
			h[32 + i] = (uint8_t)(c >> (8 * i));
		ok(pwrite(fd, h, 40, 0) == 40, "wrote version 9");
		close(fd);
	}
	j = jo(0, 0, &err);
	ok(j == NULL && err == -EPROTONOSUPPORT,
	   "journal of another version: -EPROTONOSUPPORT");

	/* A record whose CRC holds but whose body does not parse cannot be
	 * made by flipping; the parser is covered by a hand-made one. */
	fresh();
	child_commits(1, 0);
	{
		int fd = open(jp, O_RDWR);
		uint8_t r[80];
		ssize_t n = pread(fd, r, sizeof(r), 40);
		uint32_t len = r[4] | r[5] << 8, c;

		r[40] = 7; /* entry type 7 */
		memset(r + 8, 0, 4);
		c = crc32c(0, r, 40);
		c = crc32c(c, r + 40, len);
		for (int i = 0; i < 4; i++)
			r[8 + i] = (uint8_t)(c >> (8 * i));
		ok(n >= 40 + (ssize_t)len && pwrite(fd, r, n, 40) == n,
		   "a record with a good CRC and a bad entry");
		close(fd);
	}
	j = jo(0, 0, &err);
	ok(j == NULL && err == -EUCLEAN, "a record that does not parse: "
					 "-EUCLEAN");
}

static void
copy(const char *from, const char *to)
{
	char cmd[700];

	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
	ok(system(cmd) == 0, "copy %s", from);
}

static void
test_generation(void)
{
	int err;
	struct tdbj *j;
	char oldj[320], oldd[320], v[32];

	snprintf(oldj, sizeof(oldj), "%s.old", jp);
	snprintf(oldd, sizeof(oldd), "%s.old", dbp);

	/* A journal the tdb already contains (checkpoint, then the reset
	 * lost): discarded, not applied twice. */
	fresh();
	child_commits(3, 0);
	copy(jp, oldj);
	j = jo(0, 0, &err);
	if (j)
		tdbj_close(j); /* checkpoints */
	copy(oldj, jp);
	j = jo(0, 0, &err);
	if (ok(j != NULL, "journal of an applied generation: opens")) {
		is_int(count_present(j, 3), 3, "the data is the tdb's");
		is_int((int)fsize(jp), 40, "and the journal was emptied");
		/* Make sure nothing of the old generation comes back. */
		tdbj_delete(j, "k0", 2);
		tdbj_close(j);
	}
	copy(oldj, jp);
	j = jo(0, 0, &err);
	if (ok(j != NULL, "again, after a delete")) {
		is_int(get(j, "k0", v, sizeof(v)), -ENOENT,
		       "the stale journal did not resurrect k0");
		tdbj_close(j);
	}

	/* A tdb restored from before a checkpoint, with the newer journal. */
	fresh();
	child_commits(2, 0);
	j = jo(0, 0, &err);
	if (j)
		tdbj_close(j);
	copy(dbp, oldd);
	j = jo(0, 0, &err);
	if (j) {
		put(j, "n", "1");
		tdbj_checkpoint(j);
		put(j, "n", "2");
		tdbj_checkpoint(j);
		put(j, "n", "3");
	}
	/* die without a checkpoint: fork to keep the journal as is */
	pid_t pid = fork();

	if (!pid)
		_exit(0);
	waitpid(pid, NULL, 0);
	copy(jp, oldj);
	if (j)
		tdbj_close(j);
	copy(oldd, dbp);
	copy(oldj, jp);
	j = jo(0, 0, &err);
	ok(j == NULL && err == -EUCLEAN,
	   "journal two generations ahead of the tdb: -EUCLEAN");

	/* A journal of another database. */
	fresh();
	child_commits(2, 0);
	copy(jp, oldj);
	fresh();
	j = jo(0, 0, &err);
	if (j)
		tdbj_close(j);
	copy(oldj, jp);
	j = jo(0, 0, &err);
	ok(j == NULL && err == -EUCLEAN,
	   "journal of another database: -EUCLEAN");
	unlink(oldj);
	unlink(oldd);
}

static void
test_checkpoint_bound(void)
{
	int err;
	struct tdbj *j;
	struct tdbj_stats st;
	char k[32], v[300];
	pid_t pid;

	fresh();
	pid = fork();
	if (!pid) {
		j = jo(TDBJ_O_NOSYNC, 4096, &err);
		if (!j)
			_exit(2);
		memset(v, 'x', 250);
		v[250] = 0;
		for (int i = 0; i < 200; i++) {
			snprintf(k, sizeof(k), "k%d", i);
			snprintf(v, 16, "v%d", i);
			if (tdbj_txn_start(j) ||
			    tdbj_store(j, k, strlen(k), v, 250, TDB_REPLACE) ||
			    tdbj_txn_commit(j, 0))
				_exit(3);
		}
		tdbj_stats(j, &st);
		_exit(st.checkpoints >= 10 && st.syncs == 0 ? 0 : 4);
	}
	int status;

	waitpid(pid, &status, 0);
	is_int(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0,
	       "4 KiB bound: checkpoints ran, NOSYNC synced nothing");
	ok(fsize(jp) <= 4096 + 400, "the journal stayed near its bound");
	j = jo(0, 0, &err);
	if (ok(j != NULL, "reopen")) {
		uint8_t *val;
		size_t vl;
		int good = 0;

		for (int i = 0; i < 200; i++) {
			snprintf(k, sizeof(k), "k%d", i);
			if (!tdbj_fetch(j, k, strlen(k), &val, &vl)) {
				good += vl == 250;
				free(val);
			}
		}
		is_int(good, 200, "all 200 commits, in tdb or journal");
		tdbj_close(j);
	}

	/* TDBJ_C_NOSYNC: written, not synced, survives process death. */
	fresh();
	pid = fork();
	if (!pid) {
		j = jo(0, 0, &err);
		uint64_t s1;

		if (!j)
			_exit(2);
		tdbj_stats(j, &st);
		s1 = st.syncs;
		if (tdbj_txn_start(j) || put(j, "ns", "1") ||
		    tdbj_txn_commit(j, TDBJ_C_NOSYNC))
			_exit(2);
		tdbj_stats(j, &st);
		_exit(st.syncs == s1 ? 0 : 3);
	}
	waitpid(pid, &status, 0);
	is_int(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0,
	       "a TDBJ_C_NOSYNC commit made no sync");
	j = jo(0, 0, &err);
	if (ok(j != NULL, "reopen")) {
		ok(get(j, "ns", v, sizeof(v)) == 0 && !strcmp(v, "1"),
		   "and survived process death");
		tdbj_close(j);
	}

	/* No journal: straight to tdb. */
	fresh();
	{
		struct tdb_context *t =
			tdb_open(dbp, 131, TDB_NOSYNC, O_RDWR | O_CREAT, 0600);

		j = tdbj_open(t, NULL, 0, 0, &err);
		ok(j != NULL, "open without a journal");
		is_int(tdbj_txn_start(j), 0, "txn");
		is_int(put(j, "p", "q"), 0, "store");
		is_int(tdbj_txn_commit(j, TDBJ_C_NOSYNC), 0, "commit");
		TDB_DATA d = tdb_fetch(tdbj_tdb(j), tdbw_data("p", 1));

		ok(d.dptr != NULL, "written to the tdb at once");
		free(d.dptr);
		tdbj_close(j);
		ok(fsize(jp) < 0, "and no journal file");
	}
}

static int
slurp(const char *p, uint8_t **buf)
{
	off_t n = fsize(p);
	int fd = open(p, O_RDONLY);

	*buf = malloc(n > 0 ? (size_t)n : 1);
	if (fd < 0 || !*buf || n < 0 || pread(fd, *buf, (size_t)n, 0) != n)
		n = -1;
	if (fd >= 0)
		close(fd);
	return (int)n;
}

static void
spill(const char *p, const uint8_t *buf, size_t n)
{
	int fd = open(p, O_WRONLY | O_TRUNC | O_CREAT, 0600);

	if (fd < 0 || write(fd, buf, n) != (ssize_t)n)
		diag("cannot write %s", p);
	if (fd >= 0)
		close(fd);
}

/* Any single damaged byte anywhere in a journal of 8 commits: a read-only
 * open gives a prefix of the commits (never a gap, never a wrong value)
 * or refuses with -EUCLEAN, and changes nothing. */
static void
test_random_flips(void)
{
	uint8_t *orig = NULL, *dorig = NULL, *cur = NULL;
	int jn, dn, bad = 0, refused = 0, cut = 0, runs = 400;

	fresh();
	child_commits(8, 0);
	jn = slurp(jp, &orig);
	dn = slurp(dbp, &dorig);
	if (ok(jn > 40 && dn > 0, "a journal of 8 commits to damage")) {
		for (int it = 0; it < runs; it++) {
			int off = it % 2 ? rand() % jn : jn - 1 - rand() % 100,
			    err, m;
			uint8_t save = orig[off];
			struct tdbj *j;
			char k[16], v[16];

			orig[off] ^= (uint8_t)(1 + rand() % 255);
			spill(jp, orig, (size_t)jn);
			spill(dbp, dorig, (size_t)dn);
			j = jo(TDBJ_O_RDONLY, 0, &err);
			if (!j) {
				refused++;
				if (err != -EUCLEAN) {
					diag("byte %d: open gave %d", off, err);
					bad++;
				}
			} else {
				for (m = 0; m < 8; m++) {
					snprintf(k, sizeof(k), "k%d", m);
					if (get(j, k, v, sizeof(v)))
						break;
				}
				if (count_present(j, 8) != m) {
					diag("byte %d: not a prefix", off);
					bad++;
				}
				cut += m < 8;
				tdbj_close(j);
				if (slurp(jp, &cur) != jn ||
				    memcmp(cur, orig, (size_t)jn))
					bad++;
				free(cur);
			}
			orig[off] = save;
		}
		diag("%d damaged journals: %d refused, %d cut to a prefix",
		     runs, refused, cut);
		is_int(bad, 0, "every damaged byte: a prefix or -EUCLEAN");
		ok(refused > 0 && cut > 0, "both answers were seen");
	}
	free(orig);
	free(dorig);
}

/* Group commit: threads commit with TDBJ_C_DEFER under one lock and sync
 * outside it; every commit is durable when sync_to returns, and they
 * share fdatasyncs. */
static pthread_mutex_t gm = PTHREAD_MUTEX_INITIALIZER;
static struct tdbj *gj;
static int gfail;

static void *
group_thread(void *arg)
{
	long t = (long)arg;
	char k[32], v[32];

	for (int i = 0; i < 50; i++) {
		uint64_t pos;
		int rc;

		snprintf(k, sizeof(k), "t%ld-%d", t, i);
		snprintf(v, sizeof(v), "%d", i);
		pthread_mutex_lock(&gm);
		rc = tdbj_txn_start(gj);
		if (!rc)
			rc = put(gj, k, v);
		if (!rc)
			rc = tdbj_txn_commit(gj, TDBJ_C_DEFER);
		pos = tdbj_pos(gj);
		pthread_mutex_unlock(&gm);
		if (!rc)
			rc = tdbj_sync_to(gj, pos);
		if (rc)
			__atomic_add_fetch(&gfail, 1, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

static void
test_group(void)
{
	pthread_t th[8];
	struct tdbj_stats st0, st;
	int err, n = 0, status;
	char k[32], v[32];
	struct tdbj *r;
	pid_t pid;

	/* In a child that dies without closing: the journal alone must then
	 * hold every commit whose sync_to returned. */
	fresh();
	fflush(stdout); /* the child prints: not the parent's buffer twice */
	pid = fork();
	if (!pid) {
		gj = jo(0, 0, &err);
		if (!gj)
			_exit(2);
		tdbj_stats(gj, &st0);
		for (long t = 0; t < 8; t++)
			pthread_create(&th[t], NULL, group_thread, (void *)t);
		for (int t = 0; t < 8; t++)
			pthread_join(th[t], NULL);
		tdbj_stats(gj, &st);
		printf("# 400 deferred commits from 8 threads, %d fdatasyncs\n",
		       (int)(st.syncs - st0.syncs));
		fflush(stdout);
		if (gfail || st.commits - st0.commits != 400)
			_exit(3);
		if (st.syncs - st0.syncs > 400 || st.checkpoints)
			_exit(4);
		if (tdbj_sync_to(gj, tdbj_pos(gj)))
			_exit(5);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	is_int(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0,
	       "8 threads x 50 deferred commits + sync_to outside the lock: "
	       "no error, at most one sync a commit");
	r = jo(TDBJ_O_RDONLY, 0, &err);
	if (ok(r != NULL, "open what the child left")) {
		for (int t = 0; t < 8; t++)
			for (int i = 0; i < 50; i++) {
				snprintf(k, sizeof(k), "t%d-%d", t, i);
				n += !get(r, k, v, sizeof(v)) && atoi(v) == i;
			}
		is_int(n, 400, "all 400 commits are in the journal");
		tdbj_close(r);
	}
}

/*
 * The crash test: a child commits transaction i = 1, 2, ... each setting
 * "last" = i, "kI" = i and deleting "k(I-3)", with a small bound so that
 * checkpoints happen too, and reports each acknowledged i down a pipe; it
 * is killed with SIGKILL after a random delay. Then the state must be
 * exactly that of one transaction L >= the last acknowledged.
 */
static void
test_kill(void)
{
	int bad = 0, runs = 25;
	long amin = -1, amax = 0;

	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	for (int run = 0; run < runs; run++) {
		int pfd[2], err;
		pid_t pid;
		long acked = 0, x;
		struct tdbj *j;

		fresh();
		if (pipe(pfd))
			break;
		pid = fork();
		if (!pid) {
			char k[32], v[32];

			close(pfd[0]);
			/* Every fourth run with zeros written ahead (a bound
			 * of 64 KiB, the least that preallocates). */
			j = run % 4 == 3
				    ? jo(TDBJ_O_PREALLOC, 64 << 10, &err)
				    : jo(run % 2 ? TDBJ_O_NOSYNC : 0, 8192, &err);
			if (!j)
				_exit(2);
			for (long i = 1;; i++) {
				snprintf(v, sizeof(v), "%ld", i);
				snprintf(k, sizeof(k), "k%ld", i);
				if (tdbj_txn_start(j) || put(j, "last", v) ||
				    put(j, k, v))
					_exit(3);
				if (i > 3) {
					snprintf(k, sizeof(k), "k%ld", i - 3);
					if (tdbj_delete(j, k, strlen(k)))
						_exit(4);
				}
				if (run % 3 == 2) {
					/* deferred: durable at sync_to */
					if (tdbj_txn_commit(j, TDBJ_C_DEFER) ||
					    tdbj_sync_to(j, tdbj_pos(j)))
						_exit(5);
				} else if (tdbj_txn_commit(j, 0)) {
					_exit(5);
				}
				if (write(pfd[1], &i, sizeof(i)) != sizeof(i))
					_exit(6);
			}
		}
		close(pfd[1]);
		usleep(2000 + rand() % 60000);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		while (read(pfd[0], &x, sizeof(x)) == sizeof(x))
			acked = x;
		close(pfd[0]);
		if (amin < 0 || acked < amin)
			amin = acked;
		if (acked > amax)
			amax = acked;

		j = jo(0, 0, &err);
		if (!j) {
			diag("run %d: open failed: %s", run, strerror(-err));
			bad++;
			continue;
		}
		char v[32], k[32];
		long last = get(j, "last", v, sizeof(v)) ? 0 : atol(v);
		bool good = last >= acked;

		for (long i = last - 5; i <= last + 1; i++) {
			if (i < 1)
				continue;
			snprintf(k, sizeof(k), "k%ld", i);
			int rc = get(j, k, v, sizeof(v));
			bool want = i <= last && i > last - 3;

			if (want ? rc || atol(v) != i : rc != -ENOENT)
				good = false;
		}
		if (!good) {
			diag("run %d: acked %ld, last %ld: inconsistent", run,
			     acked, last);
			bad++;
		}
		tdbj_close(j);
	}
	diag("acknowledged commits before the kill: %ld to %ld", amin, amax);
	is_int(bad, 0,
	       "%d SIGKILLs mid-commit: every acknowledged commit "
	       "there, none half-applied",
	       runs);
}

/* A write the disk refuses (RLIMIT_FSIZE standing in for a full disk)
 * fails that change only: the record is taken back and later changes
 * work once there is room again. */
static void
test_full_disk(void)
{
	int err, rc;
	struct tdbj *j;
	struct rlimit old, lim;
	struct stat sb;
	off_t before;
	char big[8192], out[64];

	fresh();
	j = jo(0, 0, &err);
	ok(j != NULL, "full disk: open");
	if (!j)
		return;
	is_int(put(j, "a", "1"), 0, "full disk: store a");
	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &old);
	stat(jp, &sb);
	lim = old;
	lim.rlim_cur = (rlim_t)sb.st_size + 100;
	setrlimit(RLIMIT_FSIZE, &lim);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	rc = put(j, "b", big);
	setrlimit(RLIMIT_FSIZE, &old);
	is_int(rc, -EFBIG, "full disk: store b past the limit -EFBIG");
	before = sb.st_size;
	stat(jp, &sb);
	is_int((long)sb.st_size, (long)before,
	       "full disk: the torn record taken back");
	is_int(get(j, "b", out, sizeof(out)), -ENOENT, "full disk: b absent");
	is_int(put(j, "c", "3"), 0, "full disk: store c with room again");
	is_int(tdbj_checkpoint(j), 0, "full disk: checkpoint");
	is_int(put(j, "d", "4"), 0, "full disk: store d after checkpoint");
	tdbj_close(j);
	signal(SIGXFSZ, SIG_DFL);
	j = jo(0, 0, &err);
	ok(j != NULL, "full disk: reopen");
	if (!j)
		return;
	rc = get(j, "a", out, sizeof(out));
	ok(!rc && !strcmp(out, "1"), "full disk: a after reopen");
	is_int(get(j, "b", out, sizeof(out)), -ENOENT,
	       "full disk: b absent after reopen");
	rc = get(j, "c", out, sizeof(out));
	ok(!rc && !strcmp(out, "3"), "full disk: c after reopen");
	rc = get(j, "d", out, sizeof(out));
	ok(!rc && !strcmp(out, "4"), "full disk: d after reopen");
	tdbj_close(j);
}

/* A checkpoint a commit tries and that fails (the tdb cannot grow) fails
 * nothing but itself: the commit stands, the failure is counted for the
 * caller to report, and a later commit's checkpoint works. */
static void
test_ckpt_fail(void)
{
	int err, rc = 0;
	struct tdbj *j;
	struct tdbj_stats st;
	struct rlimit old, lim;
	struct stat sb;
	char v[5000], k[16], out[8];

	fresh();
	j = jo(TDBJ_O_NOSYNC, 2048, &err);
	ok(j != NULL, "checkpoint failure: open with a 2 KiB bound");
	if (!j)
		return;
	memset(v, 'v', sizeof(v) - 1);
	v[sizeof(v) - 1] = 0;
	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &old);
	stat(dbp, &sb);
	lim = old;
	/* Room for the journal's records, not for the tdb to take them
	 * all (600 KB): the checkpoints fail once it must grow past. */
	lim.rlim_cur = (rlim_t)sb.st_size + 380 * 1024;
	setrlimit(RLIMIT_FSIZE, &lim);
	for (int i = 0; i < 120 && !rc; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		rc = put(j, k, v);
	}
	setrlimit(RLIMIT_FSIZE, &old);
	is_int(rc, 0, "checkpoint failure: the commits stand");
	tdbj_stats(j, &st);
	/* tdb's own error for a write it could not make: -EIO */
	ok(st.ckpt_fails >= 1 && st.ckpt_err < 0,
	   "checkpoint failure: counted, with its error (%llu, %d)",
	   (unsigned long long)st.ckpt_fails, st.ckpt_err);
	{
		struct tdbj_stats st2;

		is_int(put(j, "k999", "x"), 0,
		       "checkpoint failure: a commit with room");
		tdbj_stats(j, &st2);
		ok(st2.checkpoints == st.checkpoints &&
		   st2.ckpt_fails == st.ckpt_fails,
		   "checkpoint failure: a small commit right after does not "
		   "try again (waits for a quarter of the bound)");
		is_int(put(j, "k998", v), 0,
		       "checkpoint failure: a big commit");
		tdbj_stats(j, &st2);
		ok(st2.checkpoints == st.checkpoints + 1,
		   "checkpoint failure: tries again, and it worked");
	}
	tdbj_close(j);
	signal(SIGXFSZ, SIG_DFL);
	j = jo(0, 0, &err);
	rc = j ? get(j, "k119", out, sizeof(out)) : -1;
	ok(!rc && !strcmp(out, "vvvvvvv"),
	   "checkpoint failure: all there after reopen");
	if (j)
		tdbj_close(j);
}

/* With a stop (tdbj_set_stop()), a journal whose checkpoints keep
 * failing stops taking changes at the stop (-ENOSPC, nothing lost), and
 * takes them again once a checkpoint works (tried at most once a
 * second). */
static void
test_stop(void)
{
	int err, rc = 0, i, last = -1;
	struct tdbj *j;
	struct tdbj_stats st, st2;
	struct rlimit old, lim;
	struct stat sb;
	char v[1000], k[16], out[8];

	fresh();
	j = jo(TDBJ_O_NOSYNC, 2048, &err);
	ok(j != NULL, "stop: open with a 2 KiB bound");
	if (!j)
		return;
	tdbj_set_stop(j, 16384);
	memset(v, 'v', sizeof(v) - 1);
	v[sizeof(v) - 1] = 0;
	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &old);
	stat(dbp, &sb);
	lim = old;
	/* The tdb cannot grow by 16 KiB: every checkpoint of the ~20 KiB
	 * the journal takes fails; the journal itself may pass that (the
	 * limit is on the tdb's size, the journal is smaller). */
	lim.rlim_cur = (rlim_t)sb.st_size + 8192;
	setrlimit(RLIMIT_FSIZE, &lim);
	for (i = 0; i < 200 && !rc; i++) {
		snprintf(k, sizeof(k), "s%d", i);
		rc = put(j, k, v);
		if (!rc)
			last = i;
	}
	tdbj_stats(j, &st);
	is_int(rc, -ENOSPC, "stop: a change past the stop is refused "
	       "(after %d commits; journal %llu bytes)", last + 1,
	       (unsigned long long)st.bytes);
	ok(st.bytes >= 16384 && st.bytes < 16384 + 2 * sizeof(v) + 512,
	   "stop: the journal stopped at its stop (%llu bytes)",
	   (unsigned long long)st.bytes);
	ok(st.ckpt_fails >= 1 && st.stopped >= 1,
	   "stop: failures and refusals counted (%llu, %llu)",
	   (unsigned long long)st.ckpt_fails, (unsigned long long)st.stopped);
	is_int(put(j, "small", "x"), -ENOSPC,
	       "stop: a small change too, right after (no retry yet)");
	tdbj_stats(j, &st2);
	ok(st2.checkpoints == st.checkpoints,
	   "stop: no checkpoint tried within a second of the last");
	snprintf(k, sizeof(k), "s%d", last);
	rc = get(j, k, out, sizeof(out));
	ok(!rc && !strcmp(out, "vvvvvvv"), "stop: the last commit is there");
	setrlimit(RLIMIT_FSIZE, &old);
	usleep(1100 * 1000);
	is_int(put(j, "after", "y"), 0,
	       "stop: with room again, a change goes through");
	tdbj_stats(j, &st2);
	ok(st2.checkpoints > st.checkpoints && st2.bytes < 16384,
	   "stop: by a checkpoint (journal %llu bytes)",
	   (unsigned long long)st2.bytes);
	tdbj_close(j);
	signal(SIGXFSZ, SIG_DFL);
	j = jo(0, 0, &err);
	rc = j ? count_prefix(j, "s", last + 1) : -1;
	is_int(rc, last + 1, "stop: every committed change after reopen");
	rc = j ? get(j, "after", out, sizeof(out)) : -1;
	ok(!rc && !strcmp(out, "y"), "stop: and the one after");
	if (j)
		tdbj_close(j);
}

/* TDBJ_O_DIGEST: what a kill leaves (the tdb of the last checkpoint and
 * a journal of later records) opens as ever, after checkpoints that put,
 * overwrote and deleted keys; but once a program that ignores the journal
 * (an older build) wrote the tdb, the journal is dropped, not replayed
 * over those writes. */
static void
snap(const char *suffix)
{
	char to[400];

	snprintf(to, sizeof(to), "%s%s", dbp, suffix);
	copy(dbp, to);
	snprintf(to, sizeof(to), "%s%s", jp, suffix);
	copy(jp, to);
}

static void
unsnap(const char *suffix)
{
	char from[400];

	snprintf(from, sizeof(from), "%s%s", jp, suffix);
	copy(from, jp);
	snprintf(from, sizeof(from), "%s%s", dbp, suffix);
	copy(from, dbp);
}

static void
test_digest(void)
{
	int err, rc;
	struct tdbj *j;
	struct tdbj_stats st;
	struct tdb_context *t;
	char k[16], v[64], out[64];

	fresh();
	j = jo(TDBJ_O_DIGEST | TDBJ_O_NOSYNC, 4096, &err);
	ok(j != NULL, "digest: open");
	if (!j)
		return;
	/* Many checkpoints (4 KiB bound) of puts, overwrites, deletes. */
	for (int i = 0; i < 300; i++) {
		snprintf(k, sizeof(k), "k%d", i % 37);
		snprintf(v, sizeof(v), "value %d of a key", i);
		rc = i % 5 == 4 ? tdbj_delete(j, k, strlen(k)) : put(j, k, v);
		if (rc && rc != -ENOENT)
			break;
	}
	is_int(put(j, "last", "L"), 0, "digest: 300 changes and one more");
	tdbj_stats(j, &st);
	ok(st.checkpoints >= 3 && st.bytes > 40,
	   "digest: checkpoints ran, a journal is left (%llu, %llu)",
	   (unsigned long long)st.checkpoints, (unsigned long long)st.bytes);
	snap(".kill"); /* what a kill -9 now leaves */
	tdbj_close(j);
	unsnap(".kill");
	j = jo(TDBJ_O_DIGEST, 0, &err);
	ok(j != NULL, "digest: a killed pair opens");
	if (!j)
		return;
	tdbj_stats(j, &st);
	is_int((long)st.stale_bytes, 0, "digest: no false alarm after "
					"incremental checkpoints");
	rc = get(j, "last", out, sizeof(out));
	ok(!rc && !strcmp(out, "L"), "digest: the journal was replayed");
	tdbj_close(j);

	/* A handle without the digest refuses the longer TDBJ_KEY. */
	j = jo(0, 0, &err);
	ok(!j && err == -EUCLEAN, "digest: a handle without TDBJ_O_DIGEST "
				  "refuses such a tdb (%d)", err);
	if (j)
		tdbj_close(j);

	/* The downgrade: an older program writes the tdb the kill left,
	 * ignoring the journal. */
	unsnap(".kill");
	t = tdb_open(dbp, 0, TDB_NOSYNC, O_RDWR, 0600);
	ok(t != NULL, "digest: open the tdb as an older build would");
	if (!t)
		return;
	ok(tdb_store(t, tdbw_data("k1", 2), tdbw_data("old", 3),
		     TDB_REPLACE) == 0, "digest: it writes k1");
	tdb_close(t);
	j = jo(TDBJ_O_DIGEST, 0, &err);
	ok(j != NULL, "digest: opens after foreign writes");
	if (!j)
		return;
	tdbj_stats(j, &st);
	ok(st.stale_bytes > 0, "digest: the journal was dropped as stale "
			       "(%llu bytes)",
	   (unsigned long long)st.stale_bytes);
	is_int(get(j, "last", out, sizeof(out)), -ENOENT,
	       "digest: its record was not replayed");
	rc = get(j, "k1", out, sizeof(out));
	ok(!rc && !strcmp(out, "old"), "digest: the foreign write stands");
	is_int((long)st.bytes, 40, "digest: the journal was emptied");
	is_int(put(j, "new", "N"), 0, "digest: a commit after");
	snap(".kill2");
	tdbj_close(j);
	unsnap(".kill2");
	j = jo(TDBJ_O_DIGEST, 0, &err);
	ok(j != NULL, "digest: a kill after it opens");
	if (!j)
		return;
	tdbj_stats(j, &st);
	rc = get(j, "new", out, sizeof(out));
	ok(!rc && !strcmp(out, "N") && !st.stale_bytes,
	   "digest: and replays the new journal (no second alarm)");
	tdbj_close(j);

	/* Foreign writes after a clean close (an empty journal): no record
	 * dropped, and the digest is renewed before the next records. */
	t = tdb_open(dbp, 0, TDB_NOSYNC, O_RDWR, 0600);
	ok(t && tdb_delete(t, tdbw_data("new", 3)) == 0,
	   "digest: an older build deletes a key after a clean close");
	if (t)
		tdb_close(t);
	j = jo(TDBJ_O_DIGEST, 0, &err);
	ok(j != NULL, "digest: reopen");
	if (!j)
		return;
	is_int(put(j, "after", "A"), 0, "digest: a commit");
	snap(".kill3");
	tdbj_close(j);
	unsnap(".kill3");
	j = jo(TDBJ_O_DIGEST, 0, &err);
	rc = j ? get(j, "after", out, sizeof(out)) : -1;
	ok(!rc && !strcmp(out, "A"), "digest: its record survives a kill");
	if (j)
		tdbj_close(j);
}

/* The journal's fd, found by its path in /proc/self/fd. */
static int
journal_fd(void)
{
	char p[64], l[400];

	for (int fd = 3; fd < 1024; fd++) {
		ssize_t n;

		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		n = readlink(p, l, sizeof(l) - 1);
		if (n <= 0)
			continue;
		l[n] = 0;
		if (!strcmp(l, jp))
			return fd;
	}
	return -1;
}

/* A write that fails and cannot be taken back leaves the handle refusing
 * every change (-EIO); tdbj_repair() checkpoints the overlay and makes it
 * work again, and nothing committed is lost. */
static void
test_repair(void)
{
	int err, fd, saved, ro;
	struct tdbj *j;
	struct tdbj_stats st;
	char out[16];

	fresh();
	j = jo(TDBJ_O_DIGEST | TDBJ_O_NOSYNC, 0, &err);
	ok(j != NULL, "repair: open");
	if (!j)
		return;
	is_int(put(j, "a", "1"), 0, "repair: store a");
	fd = journal_fd();
	ok(fd >= 0, "repair: found the journal's fd");
	if (fd < 0)
		return;
	saved = dup(fd);
	ro = open(jp, O_RDONLY);
	dup2(ro, fd); /* writes and ftruncate now fail */
	close(ro);
	is_int(put(j, "b", "2"), -EBADF, "repair: a write that fails");
	tdbj_stats(j, &st);
	is_int(st.broken, -EIO, "repair: not taken back: the handle is "
				"broken");
	is_int(put(j, "c", "3"), -EIO, "repair: later changes refused");
	err = tdbj_repair(j);
	ok(err < 0, "repair: fails while the fd does (%d)", err);
	tdbj_stats(j, &st);
	is_int(st.broken, -EIO, "repair: and the handle stays broken");
	dup2(saved, fd);
	close(saved);
	is_int(tdbj_repair(j), 0, "repair: works once it can");
	tdbj_stats(j, &st);
	ok(st.broken == 0 && st.repairs == 1 && st.bytes == 40,
	   "repair: counted, the journal rewritten empty");
	is_int(put(j, "d", "4"), 0, "repair: changes accepted again");
	snap(".kill");
	tdbj_close(j);
	unsnap(".kill");
	j = jo(TDBJ_O_DIGEST, 0, &err);
	ok(j != NULL, "repair: reopen what a kill leaves");
	if (!j)
		return;
	ok(!get(j, "a", out, sizeof(out)) && !strcmp(out, "1") &&
		   !get(j, "d", out, sizeof(out)) && !strcmp(out, "4"),
	   "repair: a and d there");
	ok(get(j, "b", out, sizeof(out)) == -ENOENT &&
		   get(j, "c", out, sizeof(out)) == -ENOENT,
	   "repair: b and c (refused) not there");
	tdbj_close(j);
}

static double
ms_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/*
 * What a checkpoint costs its caller (review 11, J2): cairnd's dirty.tdb
 * as an untar of 2,000 files drives it (six unsynced saves of a
 * 110-byte record a file, half of them ending in a delete; a 1 MiB
 * bound, tdb's syncs on, TDBJ_O_DIGEST), timed per commit. Reported
 * (diag), not asserted: it depends on the machine and its load.
 */
static void
test_ckpt_cost(void)
{
	enum { NF = 2000, NS = 6 };
	struct tdb_context *t;
	struct tdbj *j;
	struct tdbj_stats st0, st;
	static double lat[NF * NS];
	double ck_max = 0, ck_sum = 0, t0;
	uint8_t key[16] = {0}, val[110];
	int err, n = 0, nck = 0, rc = 0;

	fresh();
	t = tdb_open(dbp, 0, TDB_NOLOCK, O_RDWR | O_CREAT, 0600);
	j = t ? tdbj_open(t, jp, TDBJ_O_DIGEST, 1u << 20, &err) : NULL;
	ok(j != NULL, "cost: open as cairnd's dirty.tdb");
	if (!j) {
		if (t)
			tdb_close(t);
		return;
	}
	memset(val, 7, sizeof(val));
	for (int f = 0; f < NF && !rc; f++) {
		memcpy(key, &f, sizeof(f));
		for (int s = 0; s < NS && !rc; s++) {
			tdbj_stats(j, &st0);
			t0 = ms_now();
			rc = tdbj_txn_start(j);
			if (!rc && s == NS - 1 && f % 2) {
				rc = tdbj_delete(j, key, sizeof(key));
			} else if (!rc) {
				val[0] = (uint8_t)s;
				rc = tdbj_store(j, key, sizeof(key), val,
						sizeof(val), TDB_REPLACE);
			}
			if (!rc)
				rc = tdbj_txn_commit(j, TDBJ_C_NOSYNC);
			lat[n] = ms_now() - t0;
			tdbj_stats(j, &st);
			if (st.checkpoints != st0.checkpoints) {
				nck++;
				ck_sum += lat[n];
				if (lat[n] > ck_max)
					ck_max = lat[n];
			}
			n++;
		}
	}
	is_int(rc, 0, "cost: %d saves", n);
	ok(nck >= 1, "cost: %d checkpoints ran", nck);
	qsort(lat, (size_t)n, sizeof(lat[0]), cmp_d);
	diag("cost: commit p50 %.3f p99 %.3f p99.9 %.3f max %.2f ms; "
	     "checkpoints %d, mean %.2f ms, max %.2f ms",
	     lat[n / 2], lat[n * 99 / 100], lat[n * 999 / 1000], lat[n - 1],
	     nck, nck ? ck_sum / nck : 0, ck_max);
	t0 = ms_now();
	is_int(tdbj_close(j), 0, "cost: close");
	diag("cost: close (a checkpoint) %.2f ms", ms_now() - t0);
}

/* tdbj_digest_check() (cairn-fsck's proof that a rebuilt dirty.tdb lost
 * nothing): a checkpointed file matches its digest; a record added, a
 * value changed or a record gone does not; a file without a digest says
 * -ENOENT. */
static void
test_digest_check(void)
{
	struct tdb_context *t;
	struct tdbj *j;
	char k[16], v[64];
	int err;

	fresh();
	j = jo(TDBJ_O_DIGEST | TDBJ_O_NOSYNC, 4096, &err);
	ok(j != NULL, "digest check: open");
	if (!j)
		return;
	for (int i = 0; i < 100; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		snprintf(v, sizeof(v), "value of k%d", i);
		put(j, k, v);
	}
	tdbj_close(j); /* the last checkpoint */
	t = tdb_open(dbp, 0, TDB_NOLOCK, O_RDWR, 0600);
	is_int(tdbj_digest_check(t), 0,
	       "digest check: a checkpointed file matches its digest");
	tdbw_store(t, "extra", 5, "x", 1, TDB_INSERT);
	is_int(tdbj_digest_check(t), -ESTALE, "digest check: a record added");
	tdbw_delete(t, "extra", 5);
	is_int(tdbj_digest_check(t), 0, "digest check: and removed again");
	tdbw_store(t, "k7", 2, "value of k8", 11, TDB_REPLACE);
	is_int(tdbj_digest_check(t), -ESTALE, "digest check: a value changed");
	tdbw_store(t, "k7", 2, "value of k7", 11, TDB_REPLACE);
	tdbw_delete(t, "k9", 2);
	is_int(tdbj_digest_check(t), -ESTALE, "digest check: a record gone");
	tdb_close(t);

	/* A damaged structure: the open refuses it instead of walking it
	 * (a loop through dead records would never end; alarm). */
	fresh();
	j = jo(TDBJ_O_DIGEST | TDBJ_O_NOSYNC, 4096, &err);
	for (int i = 0; i < 100; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		put(j, k, "v");
	}
	tdbj_close(j);
	is_int(tdb_damage_layout(dbp, 'd'), 0,
	       "digest check: a loop of dead records made");
	alarm(20);
	j = jo(TDBJ_O_DIGEST, 4096, &err);
	ok(!j && err == -EUCLEAN,
	   "digest check: the open refuses it: -EUCLEAN (%d)", err);
	alarm(0);
	tdbj_close(j);

	fresh();
	j = jo(TDBJ_O_NOSYNC, 4096, &err);
	put(j, "a", "b");
	tdbj_close(j);
	t = tdb_open(dbp, 0, TDB_NOLOCK, O_RDWR, 0600);
	is_int(tdbj_digest_check(t), -ENOENT,
	       "digest check: a file without a digest: -ENOENT");
	tdb_close(t);
	fresh();
}

int
main(void)
{
	if (!mkdtemp(dir))
		return 99;
	snprintf(dbp, sizeof(dbp), "%s/db.tdb", dir);
	snprintf(jp, sizeof(jp), "%s/db.tdb.jnl", dir);
	test_basic();
	test_traverse();
	test_replay();
	test_damage();
	test_torn_first();
	test_prealloc();
	test_generation();
	test_checkpoint_bound();
	test_random_flips();
	test_group();
	test_kill();
	test_full_disk();
	test_ckpt_fail();
	test_stop();
	test_digest();
	test_digest_check();
	test_repair();
	test_ckpt_cost();
	fresh();
	for (int i = 0; i < 3; i++) {
		static const char *sfx[] = {".kill", ".kill2", ".kill3"};
		char p[400];

		snprintf(p, sizeof(p), "%s%s", dbp, sfx[i]);
		unlink(p);
		snprintf(p, sizeof(p), "%s%s", jp, sfx[i]);
		unlink(p);
	}
	rmdir(dir);
	return done_testing();
}
