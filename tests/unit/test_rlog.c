/*
 * test_rlog.c - unit tests of the replay log (cm/rlog.c): every API call,
 * every cancellation rule and its refusals (checked by counting records and
 * reading the survivors back), damaged files, concurrency. The crash test
 * is tests/unit/test_rlog_crash.c.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tdb.h>

#include "base/crc32c.h"
#include "cm/rlog.h"
#include "cm/rlog_i.h"
#include "common/log.h"
#include "tests/tap.h"
#include "tests/unit/tdb_damage.h"

#define CS (256u * 1024)

static char dir[256];
static int npath;

/* A fresh log path in the test directory. */
static const char *
newpath(void)
{
	static char p[512];

	snprintf(p, sizeof(p), "%s/log%d.tdb", dir, ++npath);
	return p;
}

static struct rlog *
fresh(void)
{
	int err = 0;
	struct rlog *l = rlog_open(newpath(), &err);

	if (!l)
		diag("rlog_open: %s", strerror(-err));
	return l;
}

static struct fid
F(unsigned n) {
	struct fid f = {.vol = 7};

	if (!n)
		return (struct fid){0}; /* F(0): the null FID, "none" */
	f.oid[0] = 0xab;
	f.oid[14] = (uint8_t)(n >> 8);
	f.oid[15] = (uint8_t)n;
	return f;
}

#define ROOT F(1)

static bool
fid_is(const struct fid *f, unsigned n)
{
	struct fid want = F(n);

	return fid_eq(f, &want);
}

static struct proto_op
op_new(enum proto_op_kind k)
{
	struct proto_op op;

	memset(&op, 0, sizeof(op));
	op.kind = k;
	return op;
}

static struct proto_op
op_create(struct fid parent, const char *name, struct fid fid)
{
	struct proto_op op = op_new(PROTO_OP_CREATE);

	op.parent = parent;
	op.name = (char *)name;
	op.fid = fid;
	op.type = PROTO_T_FILE;
	op.mode = 0644;
	op.uid = 1000;
	op.gid = 100;
	return op;
}

static struct proto_op
op_mkdir(struct fid parent, const char *name, struct fid fid)
{
	struct proto_op op = op_create(parent, name, fid);

	op.kind = PROTO_OP_MKDIR;
	op.type = PROTO_T_DIR;
	op.mode = 0755;
	return op;
}

static struct proto_op
op_name(enum proto_op_kind k, struct fid parent, const char *name,
	struct fid fid)
{
	struct proto_op op = op_new(k);

	op.parent = parent;
	op.name = (char *)name;
	op.fid = fid;
	return op;
}

static struct proto_op
op_rename(struct fid p, const char *n, struct fid fid, struct fid np,
	  const char *nn, struct fid victim)
{
	struct proto_op op = op_name(PROTO_OP_RENAME, p, n, fid);

	op.newparent = np;
	op.newname = (char *)nn;
	op.victim = victim;
	return op;
}

static struct proto_op
op_setattr(struct fid fid, uint64_t base, uint32_t mask, uint32_t mode,
	   uint32_t uid, uint64_t size)
{
	struct proto_op op = op_new(PROTO_OP_SETATTR);

	op.fid = fid;
	op.base_dv = base;
	op.mask = mask;
	op.mode = mode;
	op.uid = uid;
	op.size = size;
	op.mtime_ns = 1234;
	return op;
}

static struct proto_op
op_setx(struct fid fid, const char *name, const char *val, uint32_t flags)
{
	struct proto_op op = op_new(PROTO_OP_SETXATTR);

	op.fid = fid;
	op.xname = (char *)name;
	op.xvalue = (void *)val;
	op.xlen = strlen(val);
	op.flags = flags;
	return op;
}

static struct proto_op
op_rmx(struct fid fid, const char *name)
{
	struct proto_op op = op_new(PROTO_OP_REMOVEXATTR);

	op.fid = fid;
	op.xname = (char *)name;
	return op;
}

static struct proto_op
op_store(struct fid fid, uint64_t base, uint64_t size, uint64_t *chunks,
	 size_t n)
{
	struct proto_op op = op_new(PROTO_OP_STORE);

	op.fid = fid;
	op.base_dv = base;
	op.size = size;
	op.chunk_size = CS;
	op.chunks = chunks;
	op.nchunks = n;
	op.txid[0] = 9;
	return op;
}

static int
app(struct rlog *l, struct proto_op op)
{
	uint64_t seq;
	int rc = rlog_append(l, &op, &seq);

	if (rc)
		diag("append %s: %s", proto_op_name(op.kind), strerror(-rc));
	return rc ? -1 : (int)seq;
}

static uint64_t
nrec(struct rlog *l)
{
	struct rlog_stats st;

	if (rlog_stats(l, &st))
		return (uint64_t)-1;
	return st.records;
}

static int
consistent(struct rlog *l)
{
	char why[200];
	int rc = rlog_check(l, RLOG_CHECK_KEYS, why, sizeof(why));

	if (rc)
		diag("rlog_check: %s", why);
	return rc == 0;
}

/* The records in seq order, into a static array. */
static struct rlog_rec recs[64];
static size_t nrecs;

static int
collect_fn(const struct rlog_rec *r, void *arg)
{
	(void)arg;
	if (nrecs == 64)
		return 1;
	/* Shallow copies are fine: only scalars and names are compared, and
	 * strings are duplicated here. */
	recs[nrecs] = *r;
	recs[nrecs].op.name = r->op.name ? strdup(r->op.name) : NULL;
	recs[nrecs].op.newname = r->op.newname ? strdup(r->op.newname) : NULL;
	recs[nrecs].op.target = NULL;
	recs[nrecs].op.xname = r->op.xname ? strdup(r->op.xname) : NULL;
	recs[nrecs].op.xvalue = NULL;
	if (r->op.xlen) {
		recs[nrecs].op.xvalue = malloc(r->op.xlen + 1);
		memcpy(recs[nrecs].op.xvalue, r->op.xvalue, r->op.xlen);
		((char *)recs[nrecs].op.xvalue)[r->op.xlen] = 0;
	}
	recs[nrecs].op.chunks = NULL;
	if (r->op.nchunks) {
		recs[nrecs].op.chunks = malloc(r->op.nchunks * 8);
		memcpy(recs[nrecs].op.chunks, r->op.chunks, r->op.nchunks * 8);
	}
	memset(&recs[nrecs].conflict, 0, sizeof(recs[nrecs].conflict));
	nrecs++;
	return 0;
}

static size_t
collect(struct rlog *l)
{
	for (size_t i = 0; i < nrecs; i++)
		rlog_rec_release(&recs[i]);
	nrecs = 0;
	if (rlog_iterate(l, collect_fn, NULL))
		return (size_t)-1;
	return nrecs;
}

static int
chunks_are(const struct rlog_rec *r, const uint64_t *want, size_t n)
{
	if (r->op.nchunks != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (r->op.chunks[i] != want[i])
			return 0;
	return 1;
}

/* --- tests --- */

static void
test_open_create(void)
{
	const char *p = newpath();
	struct rlog_stats st;
	struct rlog_rec r;
	struct rlog *l, *l2;
	struct stat sb;
	char tmp[600];
	int err = 1;

	l = rlog_open(p, &err);
	ok(l && err == 0, "open creates a new log");
	ok(stat(p, &sb) == 0 && (sb.st_mode & 0777) == 0600,
	   "the file exists with mode 0600");
	snprintf(tmp, sizeof(tmp), "%s.new", p);
	ok(access(tmp, F_OK) != 0, "no temporary file left behind");
	is_int(rlog_stats(l, &st), 0, "stats of an empty log");
	ok(st.records == 0 && st.next_seq == 1 && st.oldest_ms == 0,
	   "empty: 0 records, next seq 1, no age");
	is_int(rlog_first(l, &r), -ENOENT, "first of an empty log: -ENOENT");
	is_int(rlog_get(l, 1, &r), -ENOENT, "get of a missing seq: -ENOENT");
	l2 = rlog_open(p, &err);
	ok(!l2 && err == -EBUSY, "a second open of the same log: -EBUSY");
	ok(consistent(l), "empty log is consistent");
	rlog_close(l);
	l = rlog_open(p, &err);
	ok(l != NULL, "reopen an existing log");
	rlog_close(l);
	l = rlog_open_flags(p, RLOG_O_RDONLY, &err);
	ok(l != NULL, "open read-only");
	{
		struct proto_op op = op_create(ROOT, "a", F(2));

		is_int(rlog_append(l, &op, NULL), -EROFS,
		       "append on a read-only log: -EROFS");
	}
	rlog_close(l);
	rlog_close(NULL);
	ok(!rlog_open_flags(p, 99, &err) && err == -EINVAL,
	   "unknown open flag: -EINVAL");
}

static void
test_append_get(void)
{
	struct rlog *l = fresh();
	struct rlog_rec r;
	struct rlog_effect eff;
	struct proto_op op;
	uint64_t chunks[] = {0, 3};
	uint64_t s1, s2, s3, s4;
	uint8_t opid[16];
	int64_t now = (int64_t)time(NULL) * 1000;
	char blob[] = {'v', 0, 'w'};

	op = op_create(ROOT, "hello.txt", F(2));
	is_int(rlog_append_ex(l, &op, 0, &eff), 0, "append create");
	s1 = eff.seq;
	ok(s1 == 1 && eff.fate == RLOG_APPENDED && eff.nchanges == 0,
	   "first record gets seq 1, fate appended");
	{
		static const uint8_t z[16];

		ok(memcmp(eff.opid, z, 16) != 0,
		   "a zero opid is replaced by a random one");
	}
	memcpy(opid, eff.opid, 16);
	rlog_effect_release(&eff);
	is_int(rlog_get(l, s1, &r), 0, "get it back");
	ok(r.seq == s1 && r.state == RLOG_PENDING &&
		   r.op.kind == PROTO_OP_CREATE && !memcmp(r.op.opid, opid, 16),
	   "seq, state, kind, opid");
	ok(fid_is(&r.op.parent, 1) && fid_is(&r.op.fid, 2) &&
		   !strcmp(r.op.name, "hello.txt") && r.op.mode == 0644 &&
		   r.op.uid == 1000 && r.op.gid == 100 &&
		   r.op.type == PROTO_T_FILE,
	   "all create fields kept");
	ok(r.time_ms >= now - 5000 && r.time_ms <= now + 5000,
	   "wall-clock time recorded");
	rlog_rec_release(&r);

	op = op_new(PROTO_OP_SYMLINK);
	op.parent = ROOT;
	op.name = "ln";
	op.fid = F(3);
	op.target = "../some/where";
	memset(op.opid, 0x5a, 16);
	is_int(rlog_append(l, &op, &s2), 0, "append symlink with an opid");
	rlog_get(l, s2, &r);
	ok(s2 > s1 && !strcmp(r.op.target, "../some/where") &&
		   r.op.opid[0] == 0x5a && r.op.opid[15] == 0x5a,
	   "target kept, a given opid kept");
	rlog_rec_release(&r);

	op = op_setx(F(2), "user.k", "", 0);
	op.xvalue = blob;
	op.xlen = sizeof(blob);
	op.flags = PROTO_XATTR_CREATE;
	is_int(rlog_append(l, &op, &s3), 0, "append setxattr");
	rlog_get(l, s3, &r);
	ok(r.op.xlen == 3 && !memcmp(r.op.xvalue, blob, 3) &&
		   !strcmp(r.op.xname, "user.k") &&
		   r.op.flags == PROTO_XATTR_CREATE,
	   "binary xattr value with a NUL kept");
	rlog_rec_release(&r);

	op = op_store(F(4), 17, 3 * CS + 10, chunks, 2);
	is_int(rlog_append(l, &op, &s4), 0, "append store");
	rlog_get(l, s4, &r);
	ok(r.op.base_dv == 17 && r.op.size == 3 * CS + 10 &&
		   r.op.chunk_size == CS && chunks_are(&r, chunks, 2) &&
		   r.op.txid[0] == 9,
	   "store fields kept");
	is_int(r.nbytes, CS + 10,
	       "store byte count: chunk 0 whole, chunk 3 "
	       "up to the size");
	rlog_rec_release(&r);
	ok(s1 < s2 && s2 < s3 && s3 < s4, "seqs strictly increase");
	ok(consistent(l), "consistent after appends");
	rlog_close(l);
}

static void
test_invalid(void)
{
	struct rlog *l = fresh();
	struct proto_op op;
	uint64_t dup[] = {1, 1};

	op = op_new(PROTO_OP_NONE);
	is_int(rlog_append(l, &op, NULL), -EINVAL, "kind none: -EINVAL");
	op = op_create(ROOT, "a/b", F(2));
	is_int(rlog_append(l, &op, NULL), -EINVAL, "name with '/': -EINVAL");
	op = op_create(ROOT, "..", F(2));
	is_int(rlog_append(l, &op, NULL), -EINVAL, "name '..': -EINVAL");
	op = op_name(PROTO_OP_UNLINK, ROOT, "a", F(0));
	memset(&op.fid, 0, sizeof(op.fid));
	is_int(rlog_append(l, &op, NULL), -EINVAL, "unlink without fid");
	op = op_store(F(2), 1, 10, dup, 2);
	is_int(rlog_append(l, &op, NULL), -EINVAL, "store chunk twice");
	op = op_store(F(2), 1, 10, NULL, 0);
	op.chunk_size = 1000;
	is_int(rlog_append(l, &op, NULL), -EINVAL,
	       "store chunk size not a "
	       "power of two");
	op = op_setattr(F(2), 1, 0, 0, 0, 0);
	is_int(rlog_append(l, &op, NULL), -EINVAL, "setattr empty mask");
	op = op_rename(ROOT, "a", F(2), ROOT, "b", F(0));
	memset(&op.victim, 0, sizeof(op.victim));
	op.flags = PROTO_RENAME_EXCHANGE;
	is_int(rlog_append(l, &op, NULL), -EINVAL, "exchange without victim");
	op = op_setx(F(2), "user.a", "x", 3);
	is_int(rlog_append(l, &op, NULL), -EINVAL, "setxattr both flags");
	is_int(rlog_append(l, NULL, NULL), -EINVAL, "NULL op");
	is_int(nrec(l), 0, "nothing was appended");
	rlog_close(l);
}

static void
test_states(void)
{
	struct rlog *l = fresh();
	struct rlog_rec r;
	uint64_t s[5], rm[3];
	struct rlog_stats st;
	char name[16];
	int i;

	for (i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		s[i] = (uint64_t)app(l, op_create(ROOT, name, F(10 + i)));
	}
	is_int(rlog_first(l, &r), 0, "first pending");
	is_int(r.seq, s[0], "is the oldest");
	rlog_rec_release(&r);
	is_int(rlog_set_state(l, s[0], RLOG_INFLIGHT), 0, "set inflight");
	rlog_first(l, &r);
	is_int(r.seq, s[1], "first now skips the inflight record");
	rlog_rec_release(&r);
	is_int(rlog_next(l, 0, RLOG_MASK(RLOG_INFLIGHT), &r), 0,
	       "next inflight");
	ok(r.seq == s[0] && r.state == RLOG_INFLIGHT, "finds it");
	rlog_rec_release(&r);
	is_int(rlog_next(l, s[0], RLOG_MASK(RLOG_INFLIGHT), &r), -ENOENT,
	       "no second inflight");
	is_int(rlog_next(l, s[2], RLOG_MASK_ALL, &r), 0, "next after s2");
	is_int(r.seq, s[3], "is s3");
	rlog_rec_release(&r);
	is_int(rlog_set_state(l, s[0], RLOG_PENDING), 0,
	       "inflight back to pending");
	rlog_first(l, &r);
	is_int(r.seq, s[0], "pending list keeps seq order on re-entry");
	rlog_rec_release(&r);
	is_int(rlog_set_state(l, s[0], RLOG_CONFLICT), -EINVAL,
	       "set_state(CONFLICT): -EINVAL");
	is_int(rlog_set_state(l, 999, RLOG_INFLIGHT), -ENOENT,
	       "set_state of a missing record: -ENOENT");
	is_int(rlog_remove(l, s[1]), 0, "remove");
	is_int(rlog_get(l, s[1], &r), -ENOENT, "removed record is gone");
	is_int(rlog_remove(l, s[1]), -ENOENT, "remove twice: -ENOENT");
	is_int(collect(l), 4, "iterate sees 4 records");
	ok(recs[0].seq == s[0] && recs[1].seq == s[2] && recs[3].seq == s[4],
	   "in seq order");
	rm[0] = s[2];
	rm[1] = 12345;
	rm[2] = s[3];
	is_int(rlog_remove_batch(l, rm, 3), 2,
	       "remove_batch removes 2, skips a missing seq");
	rlog_stats(l, &st);
	ok(st.records == 2 && st.pending == 2 && st.next_seq == s[4] + 1,
	   "stats after removals");
	ok(consistent(l), "consistent after state changes");
	rlog_close(l);
}

/* rlog_fid_find: the oldest record naming a FID in any role, by state and
 * below a seq (what writeback mode asks of the log). */
static void
test_fid_find(void)
{
	struct rlog *l = fresh();
	struct rlog_conflict cf = {.kind = RLOG_CF_STALE_DV, .err = ESTALE};
	uint64_t s1, s2, s3, seq = 99;
	const unsigned live = RLOG_MASK(RLOG_PENDING) | RLOG_MASK(RLOG_INFLIGHT);
	struct fid none = F(0), root = ROOT, f20 = F(20), f21 = F(21),
		   f22 = F(22);

	s1 = (uint64_t)app(l, op_mkdir(ROOT, "d", F(20)));
	s2 = (uint64_t)app(l, op_create(F(20), "x", F(21)));
	s3 = (uint64_t)app(l, op_setattr(F(21), 5, PROTO_SA_MODE, 0600, 0, 0));
	is_int(rlog_fid_find(l, &none, live, UINT64_MAX, &seq),
	       -ENOENT, "the null FID names nothing");
	is_int(rlog_fid_find(l, &root, live, UINT64_MAX, &seq), 0,
	       "the root: named as a parent");
	is_int(seq, s1, "by the mkdir");
	is_int(rlog_fid_find(l, &f20, live, UINT64_MAX, &seq), 0,
	       "d: its mkdir");
	is_int(seq, s1, "the oldest first");
	is_int(rlog_fid_find(l, &f21, live, UINT64_MAX, &seq), 0, "x");
	is_int(seq, s2, "its create");
	is_int(rlog_fid_find(l, &f21, live, s2, &seq), -ENOENT,
	       "nothing of x below its create");
	is_int(rlog_fid_find(l, &f22, live, UINT64_MAX, NULL), -ENOENT,
	       "an unknown FID");
	is_int(rlog_set_state(l, s2, RLOG_INFLIGHT), 0, "create in flight");
	is_int(rlog_fid_find(l, &f21, RLOG_MASK(RLOG_PENDING), UINT64_MAX,
			     &seq),
	       0, "x: a pending record");
	is_int(seq, s3, "the setattr");
	is_int(rlog_remove(l, s3), 0, "the setattr acknowledged");
	is_int(rlog_fid_find(l, &f21, RLOG_MASK(RLOG_PENDING), UINT64_MAX,
			     NULL),
	       -ENOENT, "x: nothing pending");
	is_int(rlog_conflict_add(l, s2, &cf), 0, "the create refused");
	is_int(rlog_fid_find(l, &f21, live, UINT64_MAX, NULL), -ENOENT,
	       "a conflict is not a live record");
	is_int(rlog_fid_find(l, &f21, RLOG_MASK(RLOG_CONFLICT), UINT64_MAX,
			     &seq),
	       0, "but can be asked for");
	is_int(seq, s2, "the refused create");
	is_int(rlog_fid_find(l, &f20, live, UINT64_MAX, &seq), 0,
	       "d is still named by its mkdir");
	is_int(seq, s1, "seq");
	ok(consistent(l), "consistent");
	rlog_close(l);
}

/* rlog_fid_find_kind, rlog_fid_count; the direct set (records born
 * INFLIGHT through this handle: their appender sends them). */
static void
test_fid_kinds_direct(void)
{
	struct rlog *l = fresh();
	const unsigned live = RLOG_MASK(RLOG_PENDING) | RLOG_MASK(RLOG_INFLIGHT);
	uint64_t ch0[1] = {0}, s1, s2, s3, seq = 99;
	struct proto_op op;
	struct rlog_effect eff;
	struct fid f30 = F(30), f31 = F(31), root_fid = ROOT;
	char path[512];
	size_t n = 99;
	int err = 0;

	snprintf(path, sizeof(path), "%s/log%d.tdb", dir, npath);
	s1 = (uint64_t)app(l, op_store(F(30), 4, 10, ch0, 1));
	s2 = (uint64_t)app(l, op_setattr(F(30), 4, PROTO_SA_MODE, 0600, 0, 0));
	is_int(rlog_fid_find_kind(l, &f30, live, PROTO_OP_STORE, UINT64_MAX,
				  &seq),
	       0, "a store of the file");
	is_int(seq, s1, "the store");
	is_int(rlog_fid_find_kind(l, &f30, live, PROTO_OP_SETATTR, s2, &seq),
	       -ENOENT, "no setattr below the setattr");
	is_int(rlog_fid_find_kind(l, &root_fid, live, PROTO_OP_STORE,
				  UINT64_MAX, NULL),
	       -ENOENT, "no store of the root");
	is_int(rlog_fid_count(l, &f30, live, -1, UINT64_MAX, &n), 0, "count");
	is_int((long long)n, 2, "two records name the file");
	is_int(rlog_fid_count(l, &f30, live, -1, s2, &n), 0, "count below");
	is_int((long long)n, 1, "one below the setattr");
	is_int(rlog_fid_count(l, &f30, live, PROTO_OP_STORE, UINT64_MAX, &n),
	       0, "count stores");
	is_int((long long)n, 1, "one store");
	is_int(rlog_fid_count(l, &f31, live, -1, UINT64_MAX, &n), 0,
	       "count of an unknown FID");
	is_int((long long)n, 0, "none");
	ok(!rlog_is_direct(l, s1), "a PENDING record is not direct");
	op = op_setattr(F(31), 4, PROTO_SA_MODE, 0600, 0, 0);
	is_int(rlog_append_ex(l, &op, RLOG_A_INFLIGHT | RLOG_A_NOSYNC, &eff), 0,
	       "append born in flight");
	s3 = eff.seq;
	rlog_effect_release(&eff);
	ok(rlog_is_direct(l, s3), "it is direct");
	is_int(rlog_fid_find(l, &f31, live | RLOG_NOT_DIRECT, UINT64_MAX,
			     NULL),
	       -ENOENT, "RLOG_NOT_DIRECT skips it");
	is_int(rlog_fid_find(l, &f31, live, UINT64_MAX, &seq), 0,
	       "without, found");
	is_int(rlog_set_inflight_run(l, s1, 2, NULL), 0, "a replay's window");
	ok(!rlog_is_direct(l, s1) && !rlog_is_direct(l, s2),
	   "records a replay set INFLIGHT are not direct");
	rlog_undirect(l, s3);
	ok(!rlog_is_direct(l, s3), "given up: not direct");
	op = op_setattr(F(31), 4, PROTO_SA_MODE, 0644, 0, 0);
	is_int(rlog_append_ex(l, &op, RLOG_A_INFLIGHT | RLOG_A_NOSYNC, &eff), 0,
	       "another");
	seq = eff.seq;
	rlog_effect_release(&eff);
	ok(rlog_is_direct(l, seq), "direct");
	is_int(rlog_remove(l, seq), 0, "acknowledged");
	ok(!rlog_is_direct(l, seq), "removed: not direct");
	op = op_setattr(F(31), 4, PROTO_SA_MODE, 0640, 0, 0);
	is_int(rlog_append_ex(l, &op, RLOG_A_INFLIGHT | RLOG_A_NOSYNC, &eff), 0,
	       "and another");
	seq = eff.seq;
	rlog_effect_release(&eff);
	is_int(rlog_remove_flags(l, seq, RLOG_A_NOSYNC | RLOG_A_LAZY), 0,
	       "acknowledged, removed lazily");
	ok(!rlog_is_direct(l, seq) && rlog_ndirect(l) == 0,
	   "a lazy removal: not direct either; none left");
	op = op_setattr(F(31), 4, PROTO_SA_MODE, 0600, 0, 0);
	is_int(rlog_append_ex(l, &op, RLOG_A_INFLIGHT | RLOG_A_NOSYNC, &eff), 0,
	       "one more, left in flight");
	seq = eff.seq;
	rlog_effect_release(&eff);
	rlog_close(l);
	l = rlog_open(path, &err);
	ok(l && !rlog_is_direct(l, seq),
	   "a reopened log has no direct record");
	ok(consistent(l), "consistent");
	rlog_close(l);
}

/* rlog_set_inflight_run: a window of PENDING records in one commit; the
 * order of the log and the other states are untouched. */
static void
test_inflight_run(void)
{
	struct rlog *l = fresh();
	struct rlog_conflict c;
	struct rlog_rec r;
	struct rlog_stats st;
	uint64_t s[10];
	size_t moved = 99;
	char name[16];
	int i, inorder = 1;

	for (i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "g%d", i);
		s[i] = (uint64_t)app(l, op_create(ROOT, name, F(30 + i)));
	}
	rlog_set_state(l, s[3], RLOG_INFLIGHT);
	rlog_set_state(l, s[6], RLOG_INFLIGHT);
	memset(&c, 0, sizeof(c));
	c.kind = RLOG_CF_NAME_EXISTS;
	c.err = EEXIST;
	c.msg = "exists";
	is_int(rlog_conflict_add(l, s[6], &c), 0, "s6 is a conflict");
	is_int(rlog_set_inflight_run(l, s[0], 3, &moved), 0, "run of 3");
	is_int(moved, 3, "moved 3");
	is_int(rlog_first(l, &r), 0, "a pending record is left");
	is_int(r.seq, s[4], "the first pending is s4 (s3 was in flight)");
	rlog_rec_release(&r);
	is_int(rlog_set_inflight_run(l, s[4], 64, &moved), 0, "run of 64");
	is_int(moved, 5, "moved the 5 pending ones, past s6's conflict");
	is_int(rlog_first(l, &r), -ENOENT, "nothing pending");
	rlog_stats(l, &st);
	ok(st.pending == 0 && st.inflight == 9 && st.conflicts == 1 &&
		   st.records == 10,
	   "stats: 9 in flight, 1 conflict");
	is_int(collect(l), 10, "iterate sees all 10");
	for (i = 0; i < 10; i++)
		if (recs[i].seq != s[i] ||
		    recs[i].state != (i == 6 ? RLOG_CONFLICT : RLOG_INFLIGHT))
			inorder = 0;
	ok(inorder, "log order and states as expected");
	is_int(rlog_set_inflight_run(l, s[0], 8, &moved), 0,
	       "a record already in flight: 0");
	is_int(moved, 0, "moves nothing");
	is_int(rlog_set_inflight_run(l, s[6], 8, &moved), -EBUSY,
	       "a conflict: -EBUSY");
	is_int(rlog_set_inflight_run(l, 999, 8, &moved), -ENOENT,
	       "a missing record: -ENOENT");
	is_int(rlog_set_inflight_run(l, s[0], 0, &moved), -EINVAL,
	       "max 0: -EINVAL");
	/* Back to PENDING near the head and near the tail: the pending list
	 * takes each at its place (walked from the nearer end). */
	is_int(rlog_set_state(l, s[8], RLOG_PENDING), 0, "s8 pending again");
	is_int(rlog_set_state(l, s[1], RLOG_PENDING), 0, "s1 pending again");
	is_int(rlog_set_state(l, s[2], RLOG_PENDING), 0, "s2 pending again");
	is_int(rlog_first(l, &r), 0, "first pending");
	is_int(r.seq, s[1], "is s1");
	rlog_rec_release(&r);
	is_int(rlog_next(l, s[1], RLOG_MASK(RLOG_PENDING), &r), 0, "next");
	is_int(r.seq, s[2], "is s2");
	rlog_rec_release(&r);
	is_int(rlog_next(l, s[2], RLOG_MASK(RLOG_PENDING), &r), 0, "next");
	is_int(r.seq, s[8], "is s8");
	rlog_rec_release(&r);
	ok(consistent(l), "consistent after runs");
	rlog_close(l);
}

static int
stop_at_2(const struct rlog_rec *r, void *arg)
{
	int *n = arg;

	(void)r;
	return ++*n == 2 ? 42 : 0;
}

/* The callback removes every record it sees: the walk goes on. */
static int
remove_fn(const struct rlog_rec *r, void *arg)
{
	struct rlog *l = arg;

	return rlog_remove(l, r->seq);
}

static void
test_iterate(void)
{
	struct rlog *l = fresh();
	int n = 0;

	app(l, op_create(ROOT, "a", F(2)));
	app(l, op_create(ROOT, "b", F(3)));
	app(l, op_create(ROOT, "c", F(4)));
	is_int(rlog_iterate(l, stop_at_2, &n), 42,
	       "iterate stops with the callback's value");
	is_int(rlog_iterate(l, remove_fn, l), 0,
	       "callback may remove records while iterating");
	is_int(nrec(l), 0, "all removed");
	ok(consistent(l), "consistent");
	rlog_close(l);
}

static int
count_fn(const struct rlog_rec *r, void *arg)
{
	(*(int *)arg)++;
	return r->state == RLOG_CONFLICT ? 0 : 1;
}

static void
test_conflicts(void)
{
	const char *p = newpath();
	int err;
	struct rlog *l = rlog_open(p, &err);
	struct rlog_conflict c;
	struct rlog_rec r;
	struct rlog_stats st;
	uint64_t ch[] = {0};
	uint64_t s1, s2;
	int n = 0;

	s1 = (uint64_t)app(l, op_store(F(2), 5, 100, ch, 1));
	s2 = (uint64_t)app(l, op_create(ROOT, "x", F(3)));
	memset(&c, 0, sizeof(c));
	c.kind = RLOG_CF_STALE_DV;
	c.err = ECANCELED;
	c.local.size = 100;
	c.local.mtime_ns = 77;
	c.local.dv = 5;
	c.local.path = "/cache/conflicts/2.local";
	c.has_server = true;
	c.server.fid = F(2);
	c.server.dv = 9;
	c.server.size = 4096;
	c.has_base = true;
	c.base.fid = F(2);
	c.base.dv = 5;
	c.base.size = 50;
	c.msg = "data version moved";
	rlog_set_state(l, s1, RLOG_INFLIGHT);
	is_int(rlog_conflict_add(l, s1, &c), 0, "conflict_add");
	is_int(rlog_conflict_add(l, s1, &c), -EEXIST, "twice: -EEXIST");
	c.kind = RLOG_CF_NONE;
	is_int(rlog_conflict_add(l, s2, &c), -EINVAL, "kind none: -EINVAL");
	c.kind = RLOG_CF_STALE_DV;
	rlog_close(l);
	l = rlog_open(p, &err);
	is_int(rlog_get(l, s1, &r), 0, "conflict survives reopen");
	ok(r.state == RLOG_CONFLICT && r.has_conflict &&
		   r.conflict.kind == RLOG_CF_STALE_DV &&
		   r.conflict.err == ECANCELED &&
		   r.conflict.local.size == 100 &&
		   r.conflict.local.mtime_ns == 77 &&
		   r.conflict.local.dv == 5 &&
		   !strcmp(r.conflict.local.path, "/cache/conflicts/2.local") &&
		   r.conflict.has_server && r.conflict.server.dv == 9 &&
		   r.conflict.server.size == 4096 && r.conflict.has_base &&
		   r.conflict.base.size == 50 &&
		   !strcmp(r.conflict.msg, "data version moved") &&
		   r.conflict.time_ms > 0,
	   "every conflict field kept");
	ok(r.op.base_dv == 5 && r.op.kind == PROTO_OP_STORE,
	   "the op itself kept");
	rlog_rec_release(&r);
	/* Nothing in a conflict is dropped implicitly. */
	is_int(rlog_remove(l, s1), -EBUSY, "remove of a conflict: -EBUSY");
	is_int(rlog_set_state(l, s1, RLOG_PENDING), -EBUSY,
	       "set_state of a conflict: -EBUSY");
	app(l, op_store(F(2), 5, 200, ch, 1));
	is_int(nrec(l), 3, "a new store does not merge into a conflict");
	is_int(rlog_first(l, &r), 0, "first pending");
	ok(r.seq == s2, "skips the conflict");
	rlog_rec_release(&r);
	is_int(rlog_conflicts(l, count_fn, &n), 0, "conflicts iterates");
	is_int(n, 1, "one conflict listed");
	rlog_stats(l, &st);
	ok(st.conflicts == 1 && st.records == 3 && st.pending == 2,
	   "stats count the conflict");
	is_int(rlog_conflict_resolve(l, s2), -EINVAL,
	       "resolve of a non-conflict: -EINVAL");
	is_int(rlog_conflict_resolve(l, s1), 0, "resolve");
	is_int(rlog_get(l, s1, &r), -ENOENT, "resolved conflict removed");
	is_int(rlog_conflict_resolve(l, s1), -ENOENT, "resolve twice: -ENOENT");
	ok(!strcmp(rlog_conflict_name(RLOG_CF_STALE_DV), "stale-dv") &&
		   !strcmp(rlog_state_name(RLOG_INFLIGHT), "inflight"),
	   "names");
	ok(consistent(l), "consistent");
	rlog_close(l);
}

static void
test_stats(void)
{
	struct rlog *l = fresh();
	struct rlog_stats st;
	uint64_t ch[] = {0, 1};
	int64_t now = (int64_t)time(NULL) * 1000;

	app(l, op_store(F(2), 1, 2 * CS, ch, 2));
	app(l, op_create(ROOT, "a", F(3)));
	is_int(rlog_stats(l, &st), 0, "stats");
	ok(st.records == 2 && st.pending == 2 && st.inflight == 0 &&
		   st.data_bytes == 2 * CS && st.file_bytes > 0 &&
		   st.oldest_ms >= now - 5000 && st.appends == 2 &&
		   st.commits == 2,
	   "records, bytes, oldest time, appends, commits");
	rlog_close(l);
}

/* Rule 1: store over store. */
static void
test_rule_store(void)
{
	struct rlog *l = fresh();
	struct rlog_effect eff;
	struct proto_op op;
	uint64_t a[] = {0, 2}, b[] = {1}, c[] = {3}, d[] = {0};
	uint64_t s1, want[4] = {0, 1, 2, 3};

	s1 = (uint64_t)app(l, op_store(F(2), 5, 3 * CS, a, 2));
	op = op_store(F(2), 6, 3 * CS, b, 1);
	is_int(rlog_append_ex(l, &op, 0, &eff), 0, "second store");
	ok(eff.fate == RLOG_MERGED && eff.nchanges == 1 &&
		   eff.changes[0].seq == s1 && eff.changes[0].removed &&
		   eff.changes[0].why == RLOG_WHY_MERGED,
	   "effect: merged, the older store removed");
	is_int(collect(l), 1, "store over store: one record remains");
	ok(recs[0].seq == eff.seq && recs[0].op.base_dv == 5 &&
		   recs[0].op.size == 3 * CS && chunks_are(&recs[0], want, 3),
	   "earliest base_dv, chunk union {0,1,2}, latest size");
	rlog_effect_release(&eff);

	/* Shrink then grow: the zeros between must be stored. */
	app(l, op_store(F(3), 1, 10, d, 1));
	app(l, op_store(F(3), 2, 3 * CS + 1, c, 1));
	is_int(collect(l), 2, "shrink+grow merged");
	ok(recs[1].op.base_dv == 1 && chunks_are(&recs[1], want, 4),
	   "gap chunks 1 and 2 added: {0,1,2,3}");

	/* Truncation drops chunks past the new size. */
	app(l, op_store(F(4), 1, 3 * CS, want, 3));
	app(l, op_store(F(4), 2, 10, d, 1));
	collect(l);
	ok(nrecs == 3 && recs[2].op.size == 10 && chunks_are(&recs[2], d, 1),
	   "chunks past the new size dropped");

	/* Not merged: a truncate between. */
	app(l, op_store(F(5), 1, CS, d, 1));
	app(l, op_setattr(F(5), 2, PROTO_SA_SIZE, 0, 0, 0));
	app(l, op_store(F(5), 3, CS, d, 1));
	is_int(nrec(l), 6, "store, truncate, store: all three kept");

	/* Not merged: INFLIGHT. */
	s1 = (uint64_t)app(l, op_store(F(6), 1, CS, d, 1));
	rlog_set_state(l, s1, RLOG_INFLIGHT);
	app(l, op_store(F(6), 2, CS, d, 1));
	is_int(nrec(l), 8, "store over an inflight store: both kept");

	/* Not merged: born INFLIGHT (connected mode). */
	op = op_store(F(7), 1, CS, d, 1);
	rlog_append(l, &op, NULL);
	op.base_dv = 2;
	is_int(rlog_append_ex(l, &op, RLOG_A_INFLIGHT, &eff), 0,
	       "append born inflight");
	ok(eff.fate == RLOG_APPENDED && nrec(l) == 10,
	   "an inflight append merges nothing");
	rlog_effect_release(&eff);
	ok(consistent(l), "consistent");
	rlog_close(l);
}

/* Rule 2: setattr over setattr. */
static void
test_rule_setattr(void)
{
	struct rlog *l = fresh();
	uint64_t d[] = {0};

	app(l, op_setattr(F(2), 5, PROTO_SA_MODE, 0600, 0, 0));
	app(l, op_setattr(F(2), 6, PROTO_SA_UID, 0, 42, 0));
	is_int(collect(l), 1, "setattr over setattr: one record");
	ok(recs[0].op.mask == (PROTO_SA_MODE | PROTO_SA_UID) &&
		   recs[0].op.mode == 0600 && recs[0].op.uid == 42 &&
		   recs[0].op.base_dv == 5,
	   "masks merged, values kept, earliest base_dv");
	app(l, op_setattr(F(2), 7, PROTO_SA_MODE, 0644, 0, 0));
	collect(l);
	ok(nrecs == 1 && recs[0].op.mode == 0644 && recs[0].op.uid == 42,
	   "later value wins");

	app(l, op_setattr(F(3), 1, PROTO_SA_SIZE, 0, 0, 100));
	app(l, op_setattr(F(3), 2, PROTO_SA_SIZE, 0, 0, 10));
	collect(l);
	ok(nrecs == 2 && recs[1].op.size == 10 && recs[1].op.base_dv == 1,
	   "shrinking truncates merge");
	app(l, op_setattr(F(3), 3, PROTO_SA_SIZE, 0, 0, 50));
	is_int(nrec(l), 3, "a growing truncate after a shrink is kept apart");

	app(l, op_setattr(F(4), 1, PROTO_SA_MODE, 0600, 0, 0));
	app(l, op_store(F(4), 1, CS, d, 1));
	app(l, op_setattr(F(4), 2, PROTO_SA_MODE, 0644, 0, 0));
	is_int(nrec(l), 6, "a store between two setattrs: no merge");
	ok(consistent(l), "consistent");
	rlog_close(l);
}

/* Rule 3: create ... remove leaves nothing. */
static void
test_rule_identity(void)
{
	struct rlog *l = fresh();
	struct rlog_effect eff;
	struct proto_op op;
	uint64_t d[] = {0};
	uint64_t s;
	size_t i;
	int identity = 0;

	app(l, op_create(ROOT, "keep", F(99)));
	app(l, op_create(ROOT, "a", F(2)));
	app(l, op_store(F(2), 0, CS, d, 1));
	app(l, op_setattr(F(2), 1, PROTO_SA_MODE, 0600, 0, 0));
	app(l, op_setx(F(2), "user.x", "1", 0));
	app(l, op_rename(ROOT, "a", F(2), ROOT, "b", F(0)));
	op = op_name(PROTO_OP_UNLINK, ROOT, "b", F(2));
	is_int(rlog_append_ex(l, &op, 0, &eff), 0, "unlink the new file");
	for (i = 0; i < eff.nchanges; i++)
		identity += eff.changes[i].why == RLOG_WHY_IDENTITY &&
			    fid_is(&eff.changes[i].fid, 2);
	ok(eff.fate == RLOG_VANISHED && eff.seq == 0 && identity == 4,
	   "vanished; 4 records about the FID reported cancelled");
	rlog_effect_release(&eff);
	is_int(collect(l), 1, "only the unrelated create remains");
	ok(!strcmp(recs[0].op.name, "keep"), "the unrelated record is intact");

	/* A directory with a child created and removed inside it. */
	app(l, op_mkdir(ROOT, "d", F(3)));
	app(l, op_create(F(3), "x", F(4)));
	app(l, op_name(PROTO_OP_UNLINK, F(3), "x", F(4)));
	app(l, op_name(PROTO_OP_RMDIR, ROOT, "d", F(3)));
	is_int(nrec(l), 1, "mkdir d, create d/x, rm d/x, rmdir d: nothing");

	/* A child moved out of the directory keeps the directory's records
	 * from vanishing unless the move folded into the child's create. */
	app(l, op_mkdir(ROOT, "d2", F(5)));
	app(l, op_create(F(5), "x", F(6)));
	app(l, op_rename(F(5), "x", F(6), ROOT, "x", F(0)));
	app(l, op_name(PROTO_OP_RMDIR, ROOT, "d2", F(5)));
	collect(l);
	ok(nrecs == 2 && recs[1].op.kind == PROTO_OP_CREATE &&
		   fid_is(&recs[1].op.parent, 1) &&
		   !strcmp(recs[1].op.name, "x"),
	   "mkdir d2, create d2/x, mv d2/x x, rmdir d2: just 'create x'");

	/* An object that exists on the server: its unlink stays. */
	app(l, op_setattr(F(7), 1, PROTO_SA_MODE, 0600, 0, 0));
	app(l, op_name(PROTO_OP_UNLINK, ROOT, "old", F(7)));
	is_int(nrec(l), 4, "no create in the log: nothing cancelled");

	/* The create already INFLIGHT: nothing cancelled. */
	s = (uint64_t)app(l, op_create(ROOT, "f", F(8)));
	rlog_set_state(l, s, RLOG_INFLIGHT);
	app(l, op_name(PROTO_OP_UNLINK, ROOT, "f", F(8)));
	is_int(nrec(l), 6, "inflight create: create and unlink both kept");

	/* Hard link: removing one name must not cancel the create. */
	app(l, op_create(ROOT, "h1", F(9)));
	app(l, op_name(PROTO_OP_LINK, ROOT, "h2", F(9)));
	app(l, op_name(PROTO_OP_UNLINK, ROOT, "h1", F(9)));
	is_int(nrec(l), 9, "create, link, unlink one name: all kept");
	app(l, op_name(PROTO_OP_UNLINK, ROOT, "h2", F(9)));
	is_int(nrec(l), 6, "unlink of the last name: all four vanish");

	/* rename over a file created in the log cancels that file. */
	app(l, op_create(ROOT, "v", F(10)));
	app(l, op_store(F(10), 0, CS, d, 1));
	app(l, op_create(ROOT, "t", F(11)));
	op = op_rename(ROOT, "t", F(11), ROOT, "v", F(10));
	is_int(rlog_append_ex(l, &op, 0, &eff), 0, "rename t over new v");
	collect(l);
	ok(nrecs == 7 && recs[6].op.kind == PROTO_OP_CREATE &&
		   fid_is(&recs[6].op.fid, 11) && !strcmp(recs[6].op.name, "v"),
	   "v's create and store vanish; 'create t, mv t v' = 'create v'");
	ok(eff.fate == RLOG_FOLDED, "fate: folded into t's create");
	rlog_effect_release(&eff);

	/* rename of a new file over an OLD one, then rm: the old one must
	 * still be removed on the server. */
	app(l, op_create(ROOT, "t2", F(12)));
	app(l, op_store(F(12), 0, CS, d, 1));
	app(l, op_rename(ROOT, "t2", F(12), ROOT, "old2", F(13)));
	is_int(nrec(l), 10, "create, store, rename over an old file");
	app(l, op_name(PROTO_OP_UNLINK, ROOT, "old2", F(12)));
	collect(l);
	ok(nrecs == 8 && recs[7].op.kind == PROTO_OP_UNLINK &&
		   fid_is(&recs[7].op.fid, 13) &&
		   !strcmp(recs[7].op.name, "old2") &&
		   fid_is(&recs[7].op.parent, 1),
	   "what remains is 'unlink old2' of the old FID");
	ok(consistent(l), "consistent");
	rlog_close(l);
}

/* Rule 4: rename chains. */
static void
test_rule_rename(void)
{
	struct rlog *l = fresh();
	struct rlog_effect eff;
	struct proto_op op;
	uint64_t s;

	s = (uint64_t)app(l, op_create(ROOT, "a", F(2)));
	op = op_rename(ROOT, "a", F(2), ROOT, "b", F(0));
	is_int(rlog_append_ex(l, &op, 0, &eff), 0, "rename the new file");
	ok(eff.fate == RLOG_FOLDED && eff.seq == s && eff.nchanges == 1 &&
		   !eff.changes[0].removed,
	   "folded into the create (rewritten in place)");
	rlog_effect_release(&eff);
	app(l, op_rename(ROOT, "b", F(2), ROOT, "c", F(0)));
	collect(l);
	ok(nrecs == 1 && recs[0].seq == s && !strcmp(recs[0].op.name, "c") &&
		   recs[0].op.kind == PROTO_OP_CREATE,
	   "create a, mv a b, mv b c = create c");

	/* An existing object: a->b->c = a->c. */
	s = (uint64_t)app(l, op_rename(ROOT, "p", F(3), ROOT, "q", F(0)));
	app(l, op_rename(ROOT, "q", F(3), F(50), "r", F(0)));
	collect(l);
	ok(nrecs == 2 && recs[1].seq == s && !strcmp(recs[1].op.name, "p") &&
		   !strcmp(recs[1].op.newname, "r") &&
		   fid_is(&recs[1].op.newparent, 50),
	   "mv p q, mv q dir/r = mv p dir/r");

	/* Back to where it came from: nothing. */
	app(l, op_rename(ROOT, "m", F(4), ROOT, "n", F(0)));
	op = op_rename(ROOT, "n", F(4), ROOT, "m", F(0));
	is_int(rlog_append_ex(l, &op, 0, &eff), 0, "rename back");
	ok(eff.fate == RLOG_VANISHED && nrec(l) == 2,
	   "mv m n, mv n m: nothing");
	rlog_effect_release(&eff);

	/* An intervening reference to the final name: no collapse. G sits
	 * at "g"; F(5) goes e->f; G leaves g; F(5) goes f->g. Collapsed,
	 * "mv e g" would run while G still had the name. */
	app(l, op_rename(ROOT, "e", F(5), ROOT, "f", F(0)));
	app(l, op_rename(ROOT, "g", F(6), ROOT, "h", F(0)));
	app(l, op_rename(ROOT, "f", F(5), ROOT, "g", F(0)));
	is_int(nrec(l), 5, "intervening use of the name: three renames kept");

	/* The target directory is created after the first record. */
	app(l, op_create(ROOT, "k", F(7)));
	app(l, op_mkdir(ROOT, "nd", F(8)));
	app(l, op_rename(ROOT, "k", F(7), F(8), "k", F(0)));
	is_int(nrec(l), 8, "target dir made in between: kept");

	/* The first record already INFLIGHT. */
	s = (uint64_t)app(l, op_create(ROOT, "i", F(9)));
	rlog_set_state(l, s, RLOG_INFLIGHT);
	app(l, op_rename(ROOT, "i", F(9), ROOT, "j", F(0)));
	is_int(nrec(l), 10, "inflight create: rename kept");

	/* A create cannot replace: rename over an existing victim stays. */
	app(l, op_create(ROOT, "tmp", F(10)));
	app(l, op_rename(ROOT, "tmp", F(10), ROOT, "dst", F(11)));
	is_int(nrec(l), 12, "create tmp, mv tmp over old dst: both kept");

	/* A directory moved across directories after another rename. */
	app(l, op_rename(ROOT, "dd", F(12), ROOT, "de", F(0)));
	app(l, op_rename(ROOT, "z1", F(13), ROOT, "z2", F(0)));
	app(l, op_rename(ROOT, "de", F(12), F(14), "de", F(0)));
	is_int(nrec(l), 15,
	       "possible directory moved after another rename: "
	       "kept");

	/* The victim of the last rename is touched in between: kept. */
	app(l, op_rename(ROOT, "va", F(15), ROOT, "vb", F(0)));
	app(l, op_setattr(F(16), 1, PROTO_SA_MODE, 0600, 0, 0));
	app(l, op_rename(ROOT, "vb", F(15), ROOT, "vd", F(16)));
	is_int(nrec(l), 18, "victim named in between: kept");
	/* ... and untouched: folded, the victim carried over. */
	app(l, op_rename(ROOT, "wa", F(17), ROOT, "wb", F(0)));
	app(l, op_rename(ROOT, "wb", F(17), ROOT, "wd", F(18)));
	collect(l);
	ok(nrecs == 19 && !strcmp(recs[18].op.name, "wa") &&
		   !strcmp(recs[18].op.newname, "wd") &&
		   fid_is(&recs[18].op.victim, 18),
	   "mv wa wb, mv wb over wd = mv wa over wd");
	/* An exchange never folds. */
	app(l, op_rename(ROOT, "xa", F(19), ROOT, "xb", F(0)));
	op = op_rename(ROOT, "xb", F(19), ROOT, "xc", F(20));
	op.flags = PROTO_RENAME_EXCHANGE;
	app(l, op);
	is_int(nrec(l), 21, "exchange after a rename: kept");
	ok(consistent(l), "consistent");
	rlog_close(l);
}

/* Rule 5: xattrs. */
static void
test_rule_xattr(void)
{
	struct rlog *l = fresh();
	struct rlog_effect eff;
	struct proto_op op;

	app(l, op_setx(F(2), "user.a", "one", 0));
	app(l, op_setx(F(2), "user.a", "two", PROTO_XATTR_REPLACE));
	collect(l);
	ok(nrecs == 1 && !strcmp(recs[0].op.xvalue, "two") &&
		   recs[0].op.flags == 0,
	   "set + set: last value, first precondition");
	app(l, op_setx(F(2), "user.b", "x", 0));
	is_int(nrec(l), 2, "another name is another record");

	app(l, op_setx(F(3), "user.a", "v", PROTO_XATTR_CREATE));
	op = op_rmx(F(3), "user.a");
	is_int(rlog_append_ex(l, &op, 0, &eff), 0, "remove after create");
	ok(eff.fate == RLOG_VANISHED && nrec(l) == 2,
	   "set(create) + remove: nothing");
	rlog_effect_release(&eff);

	app(l, op_setx(F(4), "user.a", "v", PROTO_XATTR_REPLACE));
	app(l, op_rmx(F(4), "user.a"));
	collect(l);
	ok(nrecs == 3 && recs[2].op.kind == PROTO_OP_REMOVEXATTR,
	   "set(replace) + remove: remove");

	app(l, op_setx(F(5), "user.a", "v", 0));
	app(l, op_rmx(F(5), "user.a"));
	is_int(nrec(l), 5, "set(0) + remove: both kept");
	app(l, op_setx(F(5), "user.a", "w", 0));
	collect(l);
	ok(nrecs == 5 && recs[4].op.kind == PROTO_OP_SETXATTR &&
		   recs[4].op.flags == PROTO_XATTR_REPLACE &&
		   !strcmp(recs[4].op.xvalue, "w"),
	   "remove + set: set(replace)");
	ok(consistent(l), "consistent");
	rlog_close(l);
}

static void
test_batch(void)
{
	struct rlog *l = fresh();
	struct proto_op ops[100];
	struct rlog_effect effs[100];
	char names[100][16];
	struct rlog_stats st;
	int i;

	for (i = 0; i < 100; i++) {
		snprintf(names[i], sizeof(names[i]), "n%d", i);
		ops[i] = op_create(ROOT, names[i], F(100 + i));
	}
	is_int(rlog_append_batch(l, ops, 100, 0, effs), 0, "batch of 100");
	rlog_stats(l, &st);
	ok(st.records == 100 && st.commits == 1, "100 records, one commit");
	ok(effs[0].seq == 1 && effs[99].seq == 100, "seqs in order");
	for (i = 0; i < 100; i++)
		rlog_effect_release(&effs[i]);
	ops[50].name = "bad/name";
	is_int(rlog_append_batch(l, ops, 100, 0, NULL), -EINVAL,
	       "a bad op fails the batch");
	is_int(nrec(l), 100, "nothing of it appended");
	ops[0] = op_create(ROOT, "tmp", F(900));
	ops[1] = op_name(PROTO_OP_UNLINK, ROOT, "tmp", F(900));
	is_int(rlog_append_batch(l, ops, 2, 0, effs), 0,
	       "create + unlink in one batch");
	ok(effs[1].fate == RLOG_VANISHED && nrec(l) == 100,
	   "they cancel within the batch");
	rlog_effect_release(&effs[0]);
	rlog_effect_release(&effs[1]);
	ok(consistent(l), "consistent");
	rlog_close(l);
}

/* --- damaged files --- */

static char *
slurp(const char *p, size_t *n)
{
	FILE *f = fopen(p, "rb");
	char *buf;
	long len;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(len ? (size_t)len : 1);
	*n = fread(buf, 1, (size_t)len, f);
	fclose(f);
	return buf;
}

static void
spit(const char *p, const void *buf, size_t n)
{
	FILE *f = fopen(p, "wb");

	fwrite(buf, 1, n, f);
	fclose(f);
}

/* Open @p, expect @want, and the file must be byte for byte unchanged. */
static void
open_fails_untouched(const char *p, int want, const char *what)
{
	size_t n1 = 0, n2 = 0;
	char *b1 = slurp(p, &n1), *b2;
	struct rlog *l;
	int err = 0;

	l = rlog_open(p, &err);
	ok(!l && err == want, "%s: open gives %s", what, strerror(-want));
	if (err != want)
		diag("    got %s", strerror(-err));
	b2 = slurp(p, &n2);
	ok(b1 && b2 && n1 == n2 && !memcmp(b1, b2, n1), "%s: file untouched",
	   what);
	free(b1);
	free(b2);
	rlog_close(l);
}

/* Rewrite the header key through tdb itself. */
static void
poke_header(const char *p, uint32_t version, int flip)
{
	struct tdb_context *t = tdb_open(p, 0, 0, O_RDWR, 0600);
	TDB_DATA key = {(unsigned char *)"H", 1}, v;

	v = tdb_fetch(t, key);
	if (version) {
		v.dptr[8] = (uint8_t)version;
		v.dptr[9] = (uint8_t)(version >> 8);
	}
	if (flip)
		v.dptr[20] ^= 0x40;
	tdb_store(t, key, v, TDB_REPLACE);
	free(v.dptr);
	tdb_close(t);
}

/* The version of the header in the tdb file itself (what a cairnd that
 * knows no journal reads), 0 if unreadable. */
static uint32_t
raw_version(const char *p, struct rlog *l)
{
	int status;
	/* In a child: tdb refuses a second open of a file in one process
	 * (the log @l may be open here). */
	pid_t pid = fork();

	if (!pid) {
		struct tdb_context *t;
		TDB_DATA key = {(unsigned char *)"H", 1}, v;
		uint32_t ver = 0;

		/* The fork copied tdb's list of open files: drop ours. */
		if (l)
			tdb_close(tdbj_tdb(l->j));
		t = tdb_open(p, 0, 0, O_RDONLY, 0600);
		if (t) {
			v = tdb_fetch(t, key);
			if (v.dptr && v.dsize >= 12)
				ver = v.dptr[8] | v.dptr[9] << 8;
		}
		_exit((int)ver);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return 0;
	return (uint32_t)WEXITSTATUS(status);
}

/* Version 2: the tdb file says 2 before the journal holds any record, so
 * an older cairnd (version 1 only) refuses the log instead of ignoring
 * rlog.tdb.jnl; a version 1 log is upgraded at open. */
static void
test_version_upgrade(void)
{
	const char *p = newpath();
	struct tdb_context *t;
	TDB_DATA key = {(unsigned char *)"H", 1}, v;
	struct rlog *l;
	struct rlog_rec r;
	uint32_t crc;
	int err;

	l = rlog_open(p, &err);
	is_int((int)raw_version(p, l), RLOG_FORMAT_VERSION,
	       "a new log says version 2 in the tdb");
	app(l, op_create(ROOT, "a", F(2)));
	is_int((int)raw_version(p, l), 2,
	       "with a journal record: still 2 in the tdb (old code refuses)");
	rlog_close(l);
	/* Make it a version 1 log, as an older cairnd left it. */
	t = tdb_open(p, 0, 0, O_RDWR, 0600);
	v = tdb_fetch(t, key);
	v.dptr[8] = 1;
	v.dptr[9] = 0;
	crc = crc32c(0, v.dptr, v.dsize - 4);
	for (int i = 0; i < 4; i++)
		v.dptr[v.dsize - 4 + i] = (uint8_t)(crc >> (8 * i));
	tdb_store(t, key, v, TDB_REPLACE);
	free(v.dptr);
	tdb_close(t);
	is_int((int)raw_version(p, NULL), 1, "poked to version 1");
	l = rlog_open_flags(p, RLOG_O_RDONLY, &err);
	ok(l != NULL, "a version 1 log opens read-only");
	rlog_close(l);
	is_int((int)raw_version(p, NULL), 1, "read-only: not upgraded");
	l = rlog_open(p, &err);
	ok(l != NULL, "a version 1 log opens read-write");
	is_int((int)raw_version(p, l), 2, "and is upgraded to 2 in the tdb");
	ok(l && !rlog_get(l, 1, &r) && r.op.kind == PROTO_OP_CREATE,
	   "its record is kept");
	if (l)
		rlog_rec_release(&r);
	ok(l && !rlog_check(l, RLOG_CHECK_KEYS, NULL, 0), "rlog_check ok");
	rlog_close(l);
}

static void
test_damaged(void)
{
	const char *p;
	char buf[8192];
	struct rlog *l;
	struct rlog_rec r;
	uint8_t k[9] = {'R', 0, 0, 0, 0, 0, 0, 0, 1};
	struct tdb_context *t;
	TDB_DATA key = {k, 9}, v;
	int err;

	p = newpath();
	srand(7);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)rand();
	spit(p, buf, sizeof(buf));
	open_fails_untouched(p, -EUCLEAN, "random bytes");

	p = newpath();
	spit(p, "", 0);
	open_fails_untouched(p, -EUCLEAN, "empty file");

	p = newpath();
	t = tdb_open(p, 0, 0, O_RDWR | O_CREAT, 0600);
	v.dptr = (unsigned char *)"other";
	v.dsize = 5;
	tdb_store(t, v, v, TDB_INSERT);
	tdb_close(t);
	open_fails_untouched(p, -EUCLEAN, "a tdb that is not a replay log");

	p = newpath();
	l = rlog_open(p, &err);
	app(l, op_create(ROOT, "a", F(2)));
	rlog_close(l);
	poke_header(p, 3, 0);
	open_fails_untouched(p, -EPROTONOSUPPORT, "format version 3");
	poke_header(p, 2, 1);
	open_fails_untouched(p, -EUCLEAN, "header with a flipped bit");

	p = newpath();
	l = rlog_open(p, &err);
	app(l, op_create(ROOT, "a", F(2)));
	rlog_close(l);
	t = tdb_open(p, 0, 0, O_RDWR, 0600);
	v = tdb_fetch(t, key);
	v.dptr[40] ^= 1;
	tdb_store(t, key, v, TDB_REPLACE);
	free(v.dptr);
	tdb_close(t);
	l = rlog_open(p, &err);
	ok(l != NULL, "a damaged record does not stop the open");
	is_int(rlog_get(l, 1, &r), -EUCLEAN, "reading it: -EUCLEAN");
	ok(rlog_check(l, 0, NULL, 0) == -EUCLEAN, "rlog_check reports it");
	rlog_close(l);

	/* Damage tdb sees itself (common/tdbw.h): the same -EUCLEAN. */
	p = newpath();
	l = rlog_open(p, &err);
	app(l, op_create(ROOT, "a", F(2)));
	rlog_close(l);
	is_int(tdb_damage_record(p, k, sizeof(k)), 0,
	       "smash record 1's tdb header");
	l = rlog_open(p, &err);
	ok(l != NULL, "a record tdb finds corrupt does not stop the open");
	is_int(rlog_get(l, 1, &r), -EUCLEAN, "reading it: -EUCLEAN");
	rlog_close(l);
	ok(truncate(p, 100) == 0, "cut the log inside tdb's header");
	open_fails_untouched(p, -EUCLEAN, "a log cut short");

	p = newpath();
	t = tdb_open(p, 0, 0, O_RDWR | O_CREAT, 0600);
	tdb_close(t);
	chmod(p, 0);
	if (geteuid() != 0) {
		l = rlog_open(p, &err);
		ok(!l && err == -EACCES, "unreadable file: -EACCES");
	} else {
		skip(1, "root reads mode 0 files");
	}
}

/* --- format 3: a small store's bytes in its record --- */

/* @r encoded, its CRC made right over the first @len bytes. */
static int
decode_cut(const struct wbuf *b, size_t len, struct rlog_rec *out)
{
	uint8_t *p = malloc(len ? len : 1);
	uint32_t crc;
	int rc;

	memcpy(p, b->p, len);
	if (len >= 4) {
		crc = crc32c(0, p + 4, len - 4);
		for (int i = 0; i < 4; i++)
			p[i] = (uint8_t)(crc >> (8 * i));
	}
	rc = rlog_rec_decode(p, len, 1, out);
	free(p);
	return rc;
}

static void
test_data(void)
{
	char *p = strdup(newpath());
	struct rlog *l;
	struct rlog_rec r = {0}, d;
	struct wbuf b = {0};
	struct proto_op op;
	uint64_t c0[] = {0}, c01[] = {0, 1}, s1, s2, s3, seq;
	uint8_t bytes[3000], other[100], big[PROTO_INLINE_MAX + 1];
	bool all_bad = true;
	size_t dpos;
	int err = 0, rc;

	for (size_t i = 0; i < sizeof(bytes); i++)
		bytes[i] = (uint8_t)(i * 7 + 1);
	memset(other, 0x42, sizeof(other));
	memset(big, 1, sizeof(big));
	l = rlog_open(p, &err);

	/* appended, read back, survives a reopen */
	op = op_store(F(2), 5, sizeof(bytes), c0, 1);
	op.data = bytes;
	op.dlen = sizeof(bytes);
	op.data_dv = 5;
	op.data_slot = 77;
	op.data_gen = 1234;
	is_int(rlog_append(l, &op, &s1), 0, "append a store with its bytes");
	is_int(rlog_get(l, s1, &r), 0, "get it");
	ok(r.op.data && r.op.dlen == sizeof(bytes) &&
		   !memcmp(r.op.data, bytes, sizeof(bytes)) &&
		   r.op.data_dv == 5 && r.op.data_slot == 77 &&
		   r.op.data_gen == 1234 && r.op.nchunks == 1 &&
		   r.op.size == sizeof(bytes),
	   "bytes, chunk DV, slot and generation kept");
	is_int(rlog_rec_encode(&r, &b), 0, "encode it");
	is_int(b.len > 5 ? b.p[4] : 0, REC_FORMAT_DATA, "as format 3");
	rlog_rec_release(&r);
	rlog_close(l);
	l = rlog_open(p, &err);
	ok(l && rlog_get(l, s1, &r) == 0 && r.op.dlen == sizeof(bytes) &&
		   !memcmp(r.op.data, bytes, sizeof(bytes)),
	   "the bytes survive close and open (checkpoint)");
	rlog_rec_release(&r);
	ok(l && consistent(l), "consistent");

	/* what may carry bytes */
	op = op_store(F(3), 5, 2 * CS, c01, 2);
	op.data = other;
	op.dlen = sizeof(other);
	is_int(rlog_append(l, &op, &seq), -EINVAL,
	       "bytes with chunks {0,1}: -EINVAL");
	op = op_store(F(3), 5, sizeof(big), c0, 1);
	op.data = big;
	op.dlen = sizeof(big);
	is_int(rlog_append(l, &op, &seq), -EINVAL,
	       "more than PROTO_INLINE_MAX bytes: -EINVAL");
	op = op_store(F(3), 5, 50, c0, 1);
	op.data = other;
	op.dlen = sizeof(other);
	is_int(rlog_append(l, &op, &seq), -EINVAL,
	       "more bytes than the size: -EINVAL");
	op = op_new(PROTO_OP_SETATTR);
	op.fid = F(3);
	op.mask = PROTO_SA_MODE;
	op.data = other;
	op.dlen = sizeof(other);
	is_int(rlog_append(l, &op, &seq), -EINVAL,
	       "bytes on a setattr: -EINVAL");

	/* merges: the newest store's bytes, or none */
	op = op_store(F(4), 9, sizeof(other), c0, 1);
	op.data = other;
	op.dlen = sizeof(other);
	app(l, op);
	op = op_store(F(4), 10, 2000, c0, 1);
	op.data = bytes;
	op.dlen = 2000;
	is_int(rlog_append(l, &op, &s2), 0, "a second small store");
	ok(rlog_get(l, s2, &r) == 0 && r.op.base_dv == 9 && r.op.dlen == 2000 &&
		   !memcmp(r.op.data, bytes, 2000),
	   "merged: the older base DV, the newer bytes");
	rlog_rec_release(&r);
	op = op_store(F(4), 10, 3 * CS, c01, 2);
	is_int(rlog_append(l, &op, &s3), 0, "then a big store of the file");
	ok(rlog_get(l, s3, &r) == 0 && !r.op.data && r.op.nchunks == 3 &&
		   rlog_get(l, s2, &d) == -ENOENT,
	   "merged into one store of {0,1,2} without bytes (its caller "
	   "synced)");
	rlog_rec_release(&r);
	op = op_store(F(4), 10, sizeof(other), c0, 1);
	op.data = other;
	op.dlen = sizeof(other);
	is_int(rlog_append(l, &op, &s3), 0, "then small again");
	ok(rlog_get(l, s3, &r) == 0 && r.op.dlen == sizeof(other) &&
		   r.op.nchunks == 1 && r.op.chunks[0] == 0,
	   "merged: chunk 0 alone, with the bytes");
	rlog_rec_release(&r);
	ok(consistent(l), "consistent after merges");

	/* A store without bytes stays format 1 (older cairnd reads it) */
	op = op_store(F(5), 1, 10, c0, 1);
	is_int(rlog_append(l, &op, &seq), 0, "a store without bytes");
	rlog_get(l, seq, &r);
	free(b.p);
	memset(&b, 0, sizeof(b));
	rlog_rec_encode(&r, &b);
	ok(!r.op.data && b.p[4] == REC_FORMAT, "is format 1");
	rlog_rec_release(&r);
	rlog_close(l);

	/* truncated records, each with a right CRC: -EUCLEAN, never a
	 * record with part of its bytes */
	memset(&r, 0, sizeof(r));
	r.seq = 1;
	r.state = RLOG_PENDING;
	r.op = op_store(F(2), 5, sizeof(bytes), c0, 1);
	r.op.data = bytes;
	r.op.dlen = sizeof(bytes);
	free(b.p);
	memset(&b, 0, sizeof(b));
	is_int(rlog_rec_encode(&r, &b), 0, "encode a record with bytes");
	is_int(decode_cut(&b, b.len, &d), 0, "whole: decodes");
	rlog_rec_release(&d);
	for (size_t n = 0; n < b.len; n++) {
		rc = decode_cut(&b, n, &d);
		if (rc != -EUCLEAN) {
			diag("cut at %zu of %zu: %d", n, b.len, rc);
			all_bad = false;
			if (rc == 0)
				rlog_rec_release(&d);
		}
	}
	ok(all_bad, "every cut short of the end: -EUCLEAN");
	/* the length field: after rdev, DV, slot, gen */
	dpos = b.len - sizeof(bytes) - 4;
	b.p[dpos] = 0xff;
	b.p[dpos + 1] = 0xff;
	b.p[dpos + 2] = 0xff;
	b.p[dpos + 3] = 0x7f;
	is_int(decode_cut(&b, b.len, &d), -EUCLEAN,
	       "a length past the record: -EUCLEAN");
	b.p[dpos] = 0;
	b.p[dpos + 1] = 0;
	b.p[dpos + 2] = 0;
	b.p[dpos + 3] = 0;
	is_int(decode_cut(&b, b.len, &d), -EUCLEAN,
	       "length 0 with bytes after it: -EUCLEAN");
	b.p[dpos] = (uint8_t)(sizeof(bytes) & 0xff);
	b.p[dpos + 1] = (uint8_t)(sizeof(bytes) >> 8);
	is_int(decode_cut(&b, b.len, &d), 0, "mended: decodes");
	rlog_rec_release(&d);
	b.p[6] = PROTO_OP_SETATTR;
	is_int(decode_cut(&b, b.len, &d), -EUCLEAN,
	       "format 3 of another kind: -EUCLEAN");
	free(b.p);

	/* a flipped byte in a record's bytes, in the file: that record
	 * reads -EUCLEAN, the others are all there */
	l = rlog_open(p, &err);
	{
		struct tdb_context *t;
		uint8_t k[9] = {'R', 0, 0, 0, 0, 0, 0, 0, 0};
		TDB_DATA key = {k, 9}, v;

		rlog_close(l);
		k[8] = (uint8_t)s1;
		t = tdb_open(p, 0, 0, O_RDWR, 0600);
		v = tdb_fetch(t, key);
		ok(v.dptr && v.dsize > sizeof(bytes),
		   "the record with bytes is in the tdb");
		if (v.dptr) {
			v.dptr[v.dsize - 100] ^= 0x10;
			tdb_store(t, key, v, TDB_REPLACE);
			free(v.dptr);
		}
		tdb_close(t);
		l = rlog_open(p, &err);
		ok(l != NULL, "a damaged record with bytes does not stop the "
			      "open");
		is_int(rlog_get(l, s1, &r), -EUCLEAN, "reading it: -EUCLEAN");
		ok(rlog_next(l, 0, RLOG_MASK_ALL, &r) == -EUCLEAN &&
			   r.seq == s1,
		   "a scan meets it: -EUCLEAN, with its seq");
		ok(rlog_next(l, s1, RLOG_MASK_ALL, &r) == 0 && r.seq > s1,
		   "and steps over it to the next record");
		rlog_rec_release(&r);
		ok(rlog_check(l, 0, NULL, 0) == -EUCLEAN,
		   "rlog_check reports it");
		ok(rlog_get(l, s3, &r) == 0 && r.op.dlen == sizeof(other),
		   "the other records read as before");
		rlog_rec_release(&r);
		rlog_close(l);
	}
	free(p);
}

/* --- threads: group commit --- */

struct thr {
	struct rlog *l;
	int id, n, fails;
	uint64_t last;
	int order;
};

static void *
thr_main(void *arg)
{
	struct thr *t = arg;
	char name[32];
	uint64_t seq;

	t->order = 1;
	for (int i = 0; i < t->n; i++) {
		struct proto_op op;

		snprintf(name, sizeof(name), "t%d-%d", t->id, i);
		op = op_create(ROOT, name,
			       F((unsigned)(1000 + t->id * 1000 + i)));
		if (rlog_append(t->l, &op, &seq)) {
			t->fails++;
			continue;
		}
		if (seq <= t->last)
			t->order = 0;
		t->last = seq;
	}
	return NULL;
}

static void
test_threads(void)
{
	struct rlog *l = fresh();
	struct thr t[8];
	pthread_t th[8];
	struct rlog_stats st;
	int i, fails = 0, order = 1;

	for (i = 0; i < 8; i++) {
		t[i] = (struct thr){.l = l, .id = i, .n = 50};
		pthread_create(&th[i], NULL, thr_main, &t[i]);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		fails += t[i].fails;
		order &= t[i].order;
	}
	rlog_stats(l, &st);
	ok(fails == 0 && st.records == 400, "8 threads x 50 appends: 400");
	ok(order, "each thread sees its seqs increase");
	diag("group commit: %llu appends in %llu commits",
	     (unsigned long long)st.appends, (unsigned long long)st.commits);
	ok(st.commits <= st.appends, "never more commits than appends");
	ok(consistent(l), "consistent");
	rlog_close(l);
}

/* Sockets and devices (issue #16): a device's create keeps its rdev in a
 * record of format 2, across a reopen; the codec refuses an rdev where
 * none belongs. */
static void
test_special(void)
{
	const char *p = newpath();
	struct rlog *l;
	struct rlog_rec r, g;
	struct proto_op op;
	struct wbuf b = {0};
	uint64_t s1, s2, s3;
	int err;

	l = rlog_open(p, &err);
	op = op_create(ROOT, "null", F(40));
	op.type = PROTO_T_CHR;
	op.rdev = 0x103;
	is_int(rlog_append(l, &op, &s1), 0, "append create chr 1:3");
	op = op_create(ROOT, "sock", F(41));
	op.type = PROTO_T_SOCK;
	is_int(rlog_append(l, &op, &s2), 0, "append create socket");
	op = op_create(ROOT, "blk", F(42));
	op.type = PROTO_T_BLK;
	op.rdev = 0xffffffffu;
	is_int(rlog_append(l, &op, &s3), 0, "append create blk, largest rdev");
	op = op_create(ROOT, "bad", F(43));
	op.type = PROTO_T_SOCK;
	op.rdev = 5;
	is_int(rlog_append(l, &op, NULL), -EINVAL, "a socket with an rdev: -EINVAL");
	op.type = PROTO_T_SYMLINK;
	op.rdev = 0;
	is_int(rlog_append(l, &op, NULL), -EINVAL, "create of type symlink: -EINVAL");
	rlog_close(l);
	l = rlog_open(p, &err);
	is_int(rlog_get(l, s1, &r), 0, "get the chr after a reopen");
	ok(r.op.type == PROTO_T_CHR && r.op.rdev == 0x103, "type and rdev kept");
	rlog_rec_release(&r);
	is_int(rlog_get(l, s2, &r), 0, "get the socket");
	ok(r.op.type == PROTO_T_SOCK && r.op.rdev == 0, "socket kept, no rdev");
	rlog_rec_release(&r);
	is_int(rlog_get(l, s3, &r), 0, "get the blk");
	ok(r.op.type == PROTO_T_BLK && r.op.rdev == 0xffffffffu, "largest rdev kept");

	/* The codec: format 2 only with an rdev, and only for a device. */
	is_int(rlog_rec_encode(&r, &b), 0, "encode the blk record");
	is_int(b.len > 5 ? b.p[4] : -1, 2, "its format byte is 2");
	is_int(rlog_rec_decode(b.p, b.len, r.seq, &g), 0, "it decodes");
	is_int(g.op.rdev, 0xffffffffu, "... with its rdev");
	rlog_rec_release(&g);
	is_int(rlog_rec_decode(b.p, b.len - 4, r.seq, &g), -EUCLEAN,
	       "cut short: -EUCLEAN");
	free(b.p);
	memset(&b, 0, sizeof(b));
	r.op.type = PROTO_T_FIFO; /* an rdev on a FIFO */
	is_int(rlog_rec_encode(&r, &b), 0, "encode a FIFO given an rdev");
	is_int(rlog_rec_decode(b.p, b.len, r.seq, &g), -EUCLEAN,
	       "a FIFO's record with an rdev: -EUCLEAN");
	free(b.p);
	memset(&b, 0, sizeof(b));
	r.op.type = PROTO_T_FILE;
	r.op.rdev = 0;
	is_int(rlog_rec_encode(&r, &b), 0, "encode a file create");
	is_int(b.len > 5 ? b.p[4] : -1, 1, "its format byte is 1 (an older cairnd reads it)");
	free(b.p);
	rlog_rec_release(&r);
	ok(consistent(l), "consistent");
	rlog_close(l);
}

/* Mount points (issue #15): a mkmount record keeps its target and type
 * across a reopen, in format 1; a bad target is refused; mkmount then
 * unlink of the same mount point, both PENDING, cancel out. */
static void
test_mount(void)
{
	const char *p = newpath();
	struct rlog *l;
	struct rlog_rec r, g;
	struct proto_op op;
	struct wbuf b = {0};
	uint64_t s1;
	int err;

	l = rlog_open(p, &err);
	op = op_create(ROOT, "proj", F(50));
	op.kind = PROTO_OP_MKMOUNT;
	op.type = PROTO_T_MOUNT;
	op.mode = 0755;
	op.target = "lab:proj";
	is_int(rlog_append(l, &op, &s1), 0, "append mkmount");
	op.target = "../etc";
	is_int(rlog_append(l, &op, NULL), -EINVAL,
	       "a target with '..': -EINVAL");
	op.target = "";
	is_int(rlog_append(l, &op, NULL), -EINVAL, "an empty target: -EINVAL");
	op.target = NULL;
	is_int(rlog_append(l, &op, NULL), -EINVAL, "no target: -EINVAL");
	rlog_close(l);
	l = rlog_open(p, &err);
	is_int(rlog_get(l, s1, &r), 0, "get the mkmount after a reopen");
	ok(r.op.kind == PROTO_OP_MKMOUNT && r.op.type == PROTO_T_MOUNT &&
		   r.op.target && !strcmp(r.op.target, "lab:proj") &&
		   !strcmp(r.op.name, "proj") && fid_is(&r.op.fid, 50),
	   "kind, type, target, name and FID kept");
	is_int(rlog_rec_encode(&r, &b), 0, "encode it");
	is_int(b.len > 5 ? b.p[4] : -1, 1, "its format byte is 1");
	is_int(rlog_rec_decode(b.p, b.len, r.seq, &g), 0, "it decodes");
	rlog_rec_release(&g);
	b.p[6] = PROTO_OP_MAX + 1; /* a kind from a later cairnd */
	{
		uint32_t crc = crc32c(0, b.p + 4, b.len - 4);

		for (int i = 0; i < 4; i++)
			b.p[i] = (uint8_t)(crc >> (8 * i));
	}
	is_int(rlog_rec_decode(b.p, b.len, r.seq, &g), -EUCLEAN,
	       "a kind this cairnd does not know: -EUCLEAN");
	free(b.p);
	rlog_rec_release(&r);
	op = op_name(PROTO_OP_UNLINK, ROOT, "proj", F(50));
	is_int(rlog_append(l, &op, NULL), 0, "append its unlink (rmmount)");
	is_int(nrec(l), 0, "mkmount then rmmount, both pending: nothing left");
	ok(consistent(l), "consistent");
	rlog_close(l);
}

/* Records survive close and reopen, with everything in place. */
static void
test_reopen(void)
{
	const char *p = newpath();
	struct rlog *l;
	struct rlog_rec r;
	int err;

	l = rlog_open(p, &err);
	for (int i = 0; i < 20; i++) {
		char name[16];

		snprintf(name, sizeof(name), "r%d", i);
		app(l, op_create(ROOT, name, F(200 + i)));
	}
	rlog_close(l);
	l = rlog_open(p, &err);
	is_int(nrec(l), 20, "20 records after reopen");
	rlog_first(l, &r);
	ok(r.seq == 1 && !strcmp(r.op.name, "r0"), "first is the oldest");
	rlog_rec_release(&r);
	ok(app(l, op_create(ROOT, "next", F(300))) == 21,
	   "seqs continue after reopen");
	ok(consistent(l), "consistent after reopen");
	rlog_close(l);
}

/* Connected mode's appends and removals skip the fsyncs, one call at a
 * time; a log reopened after them has what they wrote. */
static void
test_nosync(void)
{
	const char *p = newpath();
	struct rlog_effect eff;
	struct proto_op op = op_create(ROOT, "ns", F(400));
	struct rlog_stats st;
	struct rlog *l;
	int err;

	l = rlog_open(p, &err);
	is_int(rlog_append_ex(l, &op, RLOG_A_INFLIGHT | RLOG_A_NOSYNC, &eff),
	       0, "append with RLOG_A_NOSYNC");
	ok(eff.seq == 1, "got seq 1");
	rlog_effect_release(&eff);
	/* An absorbed op (replay_absorb()) is answered as logged: rlog_sync
	 * makes the NOSYNC commits durable with one fdatasync. */
	{
		struct rlog_stats s0, s1;

		rlog_stats(l, &s0);
		is_int(rlog_sync(l), 0, "rlog_sync");
		rlog_stats(l, &s1);
		is_int((long long)(s1.syncs - s0.syncs), 1,
		       "one fdatasync for the NOSYNC commit");
		is_int(rlog_sync(l), 0, "rlog_sync again");
		rlog_stats(l, &s0);
		is_int((long long)(s0.syncs - s1.syncs), 0,
		       "none when nothing new was committed");
		is_int(rlog_sync(NULL), 0, "rlog_sync(NULL)");
	}
	is_int(rlog_append_ex(l, &op, 64, &eff), -EINVAL, "unknown flag");
	rlog_effect_release(&eff);
	is_int(rlog_remove_flags(l, 1, 64), -EINVAL, "unknown remove flag");
	rlog_close(l);
	l = rlog_open(p, &err);
	is_int(nrec(l), 1, "record there after reopen");
	is_int(rlog_remove_flags(l, 1, RLOG_A_NOSYNC), 0, "remove, no sync");
	rlog_stats(l, &st);
	ok(st.records == 0 && st.commits == 1, "removed in one commit");
	ok(consistent(l), "consistent");
	rlog_close(l);
	l = rlog_open(p, &err);
	is_int(nrec(l), 0, "removal there after reopen");
	rlog_close(l);
}

/* RLOG_A_LAZY: removals that ride in the next transaction, are flushed
 * before any read and at close, and are lost (the records resent) when
 * the process dies first. */
static void
test_lazy(void)
{
	const char *p = newpath();
	struct rlog_effect eff;
	struct proto_op op;
	struct rlog_stats st;
	struct rlog_rec r;
	struct rlog *l;
	uint64_t seqs[3];
	uint64_t commits;
	int err, status;
	pid_t pid;

	l = rlog_open(p, &err);
	for (int i = 0; i < 3; i++) {
		char name[16];

		snprintf(name, sizeof(name), "lz%d", i);
		op = op_create(ROOT, name, F(500 + i));
		rlog_append_ex(l, &op, RLOG_A_INFLIGHT | RLOG_A_NOSYNC, &eff);
		seqs[i] = eff.seq;
		rlog_effect_release(&eff);
	}
	rlog_stats(l, &st);
	commits = st.commits;
	is_int(rlog_remove_batch_flags(l, seqs, 2,
				       RLOG_A_NOSYNC | RLOG_A_LAZY),
	       0, "lazy removal of two records");
	op = op_create(ROOT, "lz3", F(503));
	is_int(rlog_append_ex(l, &op, RLOG_A_INFLIGHT | RLOG_A_NOSYNC, &eff),
	       0, "an append after it");
	rlog_effect_release(&eff);
	rlog_stats(l, &st);
	ok(st.records == 2 && st.commits == commits + 1,
	   "the removals rode in the append's commit (%llu records, "
	   "%llu commits)",
	   (unsigned long long)st.records, (unsigned long long)st.commits);
	is_int(rlog_get(l, seqs[0], &r), -ENOENT, "a lazily removed record is gone");
	rlog_rec_release(&r);
	is_int(rlog_remove_flags(l, seqs[2], RLOG_A_LAZY), 0,
	       "lazy removal of one");
	is_int(rlog_get(l, seqs[2], &r), -ENOENT, "a read flushes it first");
	rlog_rec_release(&r);
	is_int(rlog_remove_flags(l, seqs[2], RLOG_A_LAZY), 0,
	       "a lazy removal of a record already gone");
	ok(consistent(l), "consistent (the gone one skipped)");
	/* A conflict is never removed lazily: it stays. */
	rlog_next(l, 0, RLOG_MASK(RLOG_INFLIGHT), &r);
	{
		struct rlog_conflict c = {.kind = RLOG_CF_STALE_DV, .err = 116};
		uint64_t cs = r.seq;

		rlog_rec_release(&r);
		is_int(rlog_conflict_add(l, cs, &c), 0, "make the last a conflict");
		is_int(rlog_remove_flags(l, cs, RLOG_A_LAZY), 0,
		       "lazy removal of a conflict is taken");
		rlog_stats(l, &st);
		ok(st.records == 1 && st.conflicts == 1,
		   "but the conflict stays");
		is_int(rlog_conflict_resolve(l, cs), 0, "resolve it");
	}
	/* Close flushes. */
	op = op_create(ROOT, "lz4", F(504));
	rlog_append_ex(l, &op, RLOG_A_INFLIGHT | RLOG_A_NOSYNC, &eff);
	seqs[0] = eff.seq;
	rlog_effect_release(&eff);
	rlog_remove_flags(l, seqs[0], RLOG_A_NOSYNC | RLOG_A_LAZY);
	rlog_close(l);
	l = rlog_open(p, &err);
	is_int(nrec(l), 0, "a lazy removal is committed at close");
	/* A process that dies first loses it: the record is found again. */
	op = op_create(ROOT, "lz5", F(505));
	rlog_append_ex(l, &op, RLOG_A_INFLIGHT | RLOG_A_NOSYNC, &eff);
	seqs[0] = eff.seq;
	rlog_effect_release(&eff);
	rlog_close(l);
	pid = fork();
	if (pid == 0) {
		struct rlog *cl = rlog_open(p, &err);

		if (!cl || rlog_remove_flags(cl, seqs[0], RLOG_A_LAZY))
			_exit(2);
		_exit(0); /* dies without closing the log */
	}
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	   "a child removes lazily and dies");
	l = rlog_open(p, &err);
	is_int(nrec(l), 1, "the record is there again: it will be resent");
	ok(consistent(l), "consistent");
	is_int(rlog_remove_flags(l, seqs[0], RLOG_A_LAZY | 64), -EINVAL,
	       "unknown flag with lazy");
	rlog_close(l);
	l = rlog_open_flags(p, RLOG_O_RDONLY, &err);
	is_int(rlog_remove_flags(l, seqs[0], RLOG_A_LAZY), -EROFS,
	       "lazy removal on a read-only log: -EROFS");
	rlog_close(l);
}

/* The journal (common/tdbj.h): a log killed without closing keeps every
 * returned append in PATH.jnl, not in PATH; a read-only open reads it and
 * writes nothing; a reopen checkpoints at close; another log's journal is
 * refused, and a new log removes a journal left at its path. */
static void
test_journal(void)
{
	const char *p0 = newpath();
	char p[512], jp[600], jp2[600], cmd[1400];
	struct rlog *l;
	struct rlog_stats st;
	struct stat sb, sb2;
	pid_t pid;
	int err, status;

	snprintf(p, sizeof(p), "%s", p0);
	snprintf(jp, sizeof(jp), "%s.jnl", p);
	pid = fork();
	if (!pid) {
		l = rlog_open(p, &err);
		if (!l)
			_exit(2);
		for (unsigned i = 0; i < 20; i++) {
			char n[16];
			struct proto_op op;

			snprintf(n, sizeof(n), "j%u", i);
			op = op_create(ROOT, n, F(100 + i));
			if (rlog_append(l, &op, NULL))
				_exit(3);
		}
		_exit(0); /* no close: no checkpoint */
	}
	waitpid(pid, &status, 0);
	is_int(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0,
	       "a child appended 20 records and died without closing");
	ok(stat(jp, &sb) == 0 && sb.st_size > 40,
	   "the records are in the journal beside the log");
	stat(p, &sb2);
	l = rlog_open_flags(p, RLOG_O_RDONLY, &err);
	ok(l != NULL, "read-only open of a log with a journal");
	if (l) {
		is_int(rlog_stats(l, &st), 0, "stats");
		is_int((int)st.records, 20, "read-only sees the 20 records");
		ok(consistent(l), "and they are consistent");
		rlog_close(l);
	}
	{
		struct stat a, b;

		ok(stat(jp, &a) == 0 && a.st_size == sb.st_size &&
			   stat(p, &b) == 0 && b.st_size == sb2.st_size &&
			   a.st_mtime == sb.st_mtime,
		   "read-only open wrote neither file");
	}
	l = rlog_open(p, &err);
	ok(l != NULL, "read-write open");
	if (l) {
		is_int(rlog_stats(l, &st), 0, "stats");
		is_int((int)st.records, 20, "20 records");
		rlog_close(l);
	}
	ok(stat(jp, &sb) == 0 && sb.st_size == 40,
	   "close checkpointed: the journal is its header alone");

	/* Another log's journal beside this log. */
	snprintf(jp2, sizeof(jp2), "%s", newpath());
	l = rlog_open(jp2, &err);
	rlog_close(l);
	snprintf(cmd, sizeof(cmd), "cp '%s.jnl' '%s'", jp2, jp);
	ok(system(cmd) == 0, "put another log's journal beside the log");
	l = rlog_open(p, &err);
	ok(!l && err == -EUCLEAN, "refused: -EUCLEAN");
	rlog_close(l);

	/* The log removed by hand, its journal left: a new log is made. */
	unlink(p);
	l = rlog_open(p, &err);
	ok(l != NULL, "a new log at a path with a stale journal");
	if (l) {
		is_int(rlog_stats(l, &st), 0, "stats");
		is_int((int)st.records, 0, "empty");
		rlog_close(l);
	}
}

static const struct {
	const char *name;
	void (*fn)(void);
} cases[] = {
	{"journal", test_journal},
	{"open_create", test_open_create},
	{"append_get", test_append_get},
	{"data", test_data},
	{"invalid", test_invalid},
	{"states", test_states},
	{"iterate", test_iterate},
	{"conflicts", test_conflicts},
	{"stats", test_stats},
	{"rule_store", test_rule_store},
	{"rule_setattr", test_rule_setattr},
	{"rule_identity", test_rule_identity},
	{"rule_rename", test_rule_rename},
	{"rule_xattr", test_rule_xattr},
	{"batch", test_batch},
	{"damaged", test_damaged},
	{"version_upgrade", test_version_upgrade},
	{"threads", test_threads},
	{"inflight_run", test_inflight_run},
	{"fid_find", test_fid_find},
	{"fid_kinds_direct", test_fid_kinds_direct},
	{"reopen", test_reopen},
	{"lazy", test_lazy},
	{"special", test_special},
	{"mount", test_mount},
	{"nosync", test_nosync},
};

int
main(void)
{
	const char *tmp = getenv("TMPDIR");
	char cmd[300];
	size_t i;

	log_init("test_rlog", 0, LOG_CRIT);
	snprintf(dir, sizeof(dir), "%s/test_rlog.XXXXXX", tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 99;
	}
	plan(0);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		diag("--- %s", cases[i].name);
		cases[i].fn();
	}
	for (i = 0; i < nrecs; i++)
		rlog_rec_release(&recs[i]);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		diag("cannot remove %s", dir);
	return done_testing();
}
