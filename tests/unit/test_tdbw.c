/*
 * test_tdbw.c - the tdb wrapper (common/tdbw.h): each row of its errno
 * table produced by a real condition on a real file, above all a corrupt
 * and a truncated database, which every tdb user in cairn now reports the
 * same way.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/tdbw.h"
#include "tests/tap.h"
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

int
main(void)
{
	if (!mkdtemp(dir))
		return 99;
	test_basic();
	test_damage();
	test_hostile();
	rmdir(dir);
	return done_testing();
}
