/*
 * test_cm_vc.c - the metadata cache (cm/vc.c) and the inode table
 * (cm/inode.c): round trips, versioned records, damaged records read as
 * misses, volume mismatch empties the file, disconnected open.
 */
#include "config.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tdb.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/crc32c.h"
#include "cm/inode.h"
#include "cm/vc.h"
#include "common/log.h"
#include "common/tdbw.h"
#include "tests/tap.h"
#include "tests/unit/memstat.h"
#include "tests/unit/tdb_damage.h"

static char dir[] = "/tmp/test_cm_vc.XXXXXX";
static char path[256];

static struct fid
mkfid(uint32_t vol, uint8_t b)
{
	struct fid f;

	memset(&f, 0, sizeof(f));
	f.vol = vol;
	memset(f.oid, b, sizeof(f.oid));
	return f;
}

static struct proto_attr
mkattr(struct fid f, enum proto_type t, uint64_t dv)
{
	struct proto_attr a;

	memset(&a, 0, sizeof(a));
	a.fid = f;
	a.type = t;
	a.mode = 0644;
	a.uid = 1000;
	a.gid = 100;
	a.size = 12345;
	a.nlink = 2;
	a.dv = dv;
	a.atime_ns = -5;
	a.mtime_ns = 1700000000123456789LL;
	a.ctime_ns = 1700000000987654321LL;
	return a;
}

/* Overwrite the value of a record directly with tdb, as a damaged file. */
static void
poke(char tag, const struct fid *f, const void *val, size_t len)
{
	struct tdb_context *t = tdb_open(path, 0, 0, O_RDWR, 0600);
	uint8_t kb[21];
	TDB_DATA k = {kb, 21}, v = {(uint8_t *)val, len};

	kb[0] = (uint8_t)tag;
	for (int i = 0; i < 4; i++)
		kb[1 + i] = (uint8_t)(f->vol >> (8 * i));
	memcpy(kb + 5, f->oid, 16);
	tdb_store(t, k, v, TDB_REPLACE);
	tdb_close(t);
}

/* The hash chains of the cache's tdb: a new file gets VC_HASH_SIZE (about
 * one chain an object up to a million objects), an existing one keeps the
 * size it was made with and still works. */
static void
test_hash_size(void)
{
	struct tdb_context *t;
	struct vc *vc;
	struct fid f = mkfid(7, 1);
	struct proto_attr a = mkattr(f, PROTO_T_FILE, 3), b;

	unlink(path);
	vc_set_new_hash_size(0); /* what cairnd makes */
	vc = vc_open(path, 7, 262144);
	vc_set_new_hash_size(131071);
	ok(vc != NULL, "vc_open creates the file");
	vc_close(vc);
	t = tdb_open(path, 0, TDB_NOLOCK, O_RDONLY, 0600);
	ok(t != NULL, "the new file opens as a tdb");
	is_int(t ? tdb_hash_size(t) : 0, VC_HASH_SIZE,
	       "a new cache file has VC_HASH_SIZE chains");
	ok(VC_HASH_SIZE >= 1000000, "at least a million chains");
	if (t)
		tdb_close(t);
	unlink(path);
	/* A file of an earlier cairnd: 131,071 chains. */
	t = tdb_open(path, 131071, TDB_NOSYNC, O_RDWR | O_CREAT, 0600);
	ok(t != NULL, "a file with 131,071 chains");
	if (t)
		tdb_close(t);
	vc = vc_open(path, 7, 262144);
	ok(vc != NULL, "vc_open takes it");
	is_int(vc_put_attr(vc, &a), 0, "put attr in it");
	is_int(vc_get_attr(vc, &f, &b), 0, "and get it back");
	vc_close(vc);
	t = tdb_open(path, 0, TDB_NOLOCK, O_RDONLY, 0600);
	is_int(t ? tdb_hash_size(t) : 0, 131071, "it keeps its 131,071 chains");
	if (t)
		tdb_close(t);
	unlink(path);
}

static void
test_attrs(void)
{
	struct vc *vc = vc_open(path, 7, 262144);
	struct fid f = mkfid(7, 1), g = mkfid(7, 2);
	struct proto_attr a = mkattr(f, PROTO_T_FILE, 3), b;

	ok(vc != NULL, "vc_open creates the file");
	is_int(vc_get_attr(vc, &f, &b), -ENOENT, "miss is -ENOENT");
	is_int(vc_put_attr(vc, &a), 0, "put attr");
	is_int(vc_get_attr(vc, &f, &b), 0, "get attr");
	ok(!memcmp(&a, &b, sizeof(a)), "attr round trip, negative time too");
	is_int(vc_get_attr(vc, &g, &b), -ENOENT, "other fid misses");
	is_int(vc_count(vc), 1, "one attr record");
	vc_close(vc);
	/* Reopen: persistent. */
	vc = vc_open(path, 7, 262144);
	is_int(vc_get_attr(vc, &f, &b), 0, "attr survives reopen");
	vc_close(vc);
	/* A record of a future version reads as a miss and is dropped. */
	{
		uint8_t v[64] = {VC_ATTR_CRC_VERSION + 1};

		poke('A', &f, v, sizeof(v));
	}
	vc = vc_open(path, 7, 262144);
	is_int(vc_get_attr(vc, &f, &b), -ENOENT, "future record is a miss");
	vc_close(vc);
	/* A truncated record too. */
	{
		uint8_t v[5] = {VC_REC_VERSION, 1, 2, 3, 4};

		poke('A', &f, v, sizeof(v));
	}
	vc = vc_open(path, 7, 262144);
	is_int(vc_get_attr(vc, &f, &b), -ENOENT, "truncated record is a miss");
	vc_close(vc);
	/* A record tdb itself finds damaged (common/tdbw.h: -EUCLEAN) is a
	 * miss, as a record that does not parse is: the caller refetches it
	 * from the server and writes it again. */
	{
		uint8_t kb[21] = {'A'};

		for (int i = 0; i < 4; i++)
			kb[1 + i] = (uint8_t)(f.vol >> (8 * i));
		memcpy(kb + 5, f.oid, 16);
		unlink(path);
		vc = vc_open(path, 7, 262144);
		is_int(vc_put_attr(vc, &a), 0, "put attr in a new file");
		vc_close(vc);
		is_int(tdb_damage_record(path, kb, sizeof(kb)), 0,
		       "smash the record's tdb header");
		vc = vc_open(path, 7, 262144);
		ok(vc != NULL, "the damaged file still opens");
		is_int(vc_get_attr(vc, &f, &b), -ENOENT,
		       "tdb-damaged record is a miss");
		is_int(vc_put_attr(vc, &a), 0,
		       "the attr is written again over the damaged one");
		is_int(vc_get_attr(vc, &f, &b), 0, "and reads back");
		vc_close(vc);
		unlink(path);
	}
}

/* A FID whose object id is a counter in its last bytes (the attribute
 * filter mixes every byte: such FIDs must not all share a slot). */
static struct fid
countfid(uint32_t vol, uint32_t i)
{
	struct fid f;

	memset(&f, 0, sizeof(f));
	f.vol = vol;
	memcpy(f.oid + 12, &i, sizeof(i));
	return f;
}

/* The attribute filter (vc.c, "Misses"): a FID never stored is answered
 * without the file; one stored, now or by an earlier process, is always
 * looked up (never a false miss), also after the file was emptied. */
static void
test_attr_filter(void)
{
	enum { N = 5000 };
	struct vc_filter_stats st0, st;
	struct proto_attr a, b;
	struct vc *vc;
	int bad = 0, found = 0;

	unlink(path);
	vc = vc_open(path, 7, 262144);
	ok(vc != NULL, "filter: a new file");
	vc_filter_stats(vc, &st0);
	ok(st0.on && st0.held == 0, "filter: on and empty in a new file");
	is_int(vc_get_attr(vc, &(struct fid){7, {1}}, &b), -ENOENT,
	       "filter: a miss");
	vc_filter_stats(vc, &st);
	is_int((int)(st.skipped - st0.skipped), 1,
	       "filter: ...answered without the file");
	for (uint32_t i = 0; i < N; i++) {
		a = mkattr(countfid(7, i), PROTO_T_FILE, i + 1);
		bad += vc_put_attr(vc, &a) != 0;
	}
	is_int(bad, 0, "filter: %d attrs stored", N);
	for (uint32_t i = 0; i < N; i++) {
		struct fid f = countfid(7, i);

		bad += vc_get_attr(vc, &f, &b) != 0 || b.dv != i + 1;
	}
	is_int(bad, 0, "filter: every stored attr reads back");
	vc_filter_stats(vc, &st0);
	for (uint32_t i = N; i < 2 * N; i++) {
		struct fid f = countfid(7, i);

		found += vc_get_attr(vc, &f, &b) == 0;
	}
	vc_filter_stats(vc, &st);
	is_int(found, 0, "filter: %d never stored miss", N);
	ok(st.skipped - st0.skipped >= N - N / 100,
	   "filter: %llu of those %d answered without the file",
	   (unsigned long long)(st.skipped - st0.skipped), N);
	ok(st.held == N && st.bytes > 0 && st.bytes <= 16 * N,
	   "filter: holds %llu in %llu bytes", (unsigned long long)st.held,
	   (unsigned long long)st.bytes);
	vc_close(vc);

	/* What an earlier process stored is read at open. */
	vc = vc_open(path, 7, 262144);
	vc_filter_stats(vc, &st);
	ok(st.on && st.held == N, "filter: reopened, %llu held (one pass)",
	   (unsigned long long)st.held);
	for (uint32_t i = 0; i < N; i++) {
		struct fid f = countfid(7, i);

		bad += vc_get_attr(vc, &f, &b) != 0 || b.dv != i + 1;
	}
	is_int(bad, 0, "filter: every attr of the earlier process reads back");
	/* One stored and deleted: still a maybe, so the file answers. */
	{
		struct fid f = countfid(7, 3);

		is_int(vc_del_attr(vc, &f), 0, "filter: delete a stored attr");
		is_int(vc_get_attr(vc, &f, &b), -ENOENT,
		       "filter: ...then it misses (asked of the file)");
		a = mkattr(f, PROTO_T_DIR, 99);
		is_int(vc_put_attr(vc, &a), 0, "filter: store it again");
		is_int(vc_get_attr(vc, &f, &b), 0, "filter: ...found");
		is_int((int)b.dv, 99, "filter: ...the new one");
	}
	vc_close(vc);

	/* Emptied for another volume: nothing of the old file is held. */
	vc = vc_open(path, 8, 262144);
	vc_filter_stats(vc, &st);
	ok(vc && st.on && st.held == 0,
	   "filter: a file emptied at open holds nothing");
	a = mkattr(countfid(8, 1), PROTO_T_FILE, 5);
	is_int(vc_put_attr(vc, &a), 0, "filter: store in the emptied file");
	is_int(vc_get_attr(vc, &a.fid, &b), 0, "filter: ...found");
	vc_close(vc);
	unlink(path);
}

static void
test_dirs(void)
{
	struct vc *vc = vc_open(path, 7, 262144);
	struct fid d = mkfid(7, 9);
	struct proto_dirent ents[3];
	struct proto_dir pd;
	struct vc_dir *vd;
	struct proto_attr a;
	const char *names[3] = {"zeta", "alpha b", "\xc3\xa9t\xc3\xa9"};

	for (int i = 0; i < 3; i++) {
		ents[i].name = (char *)names[i];
		ents[i].attr = mkattr(mkfid(7, (uint8_t)(20 + i)),
				      i == 1 ? PROTO_T_DIR : PROTO_T_FILE, 1);
	}
	pd.dir = mkattr(d, PROTO_T_DIR, 5);
	pd.n = 3;
	pd.ents = ents;
	is_int(vc_put_dir(vc, &pd), 0, "put dir");
	is_int(vc_get_dir(vc, &d, &vd), 0, "get dir");
	is_int(vd->n, 3, "three entries");
	is_int(vd->dv, 5, "listing dv");
	is_str(vc_dir_ent(vd, 0)->name, "alpha b", "name order");
	is_str(vc_dir_ent(vd, 1)->name, "zeta", "name order (2)");
	is_int(vc_dir_find(vd, "alpha b", 7), 0, "find by name");
	is_int(vc_dir_find(vd, "\xc3\xa9t\xc3\xa9", 5), 2, "find utf-8 name");
	is_int(vc_dir_find(vd, "alpha", 5), -1, "prefix is not a match");
	is_int(vc_dir_find(vd, "nope", 4), -1, "missing name");
	vc_dir_put(vd);
	is_int(vc_get_attr(vc, &ents[1].attr.fid, &a), 0,
	       "entry attrs stored with the listing");
	is_int(a.type, PROTO_T_DIR, "entry type kept");
	is_int(vc_get_attr(vc, &d, &a), 0, "dir attrs stored");
	is_int(vc_del_dir(vc, &d), 0, "del dir");
	is_int(vc_get_dir(vc, &d, &vd), -ENOENT, "listing gone");
	vc_close(vc);
	/* A listing whose count lies. */
	{
		uint8_t v[17] = {VC_REC_VERSION, 5, 0, 0, 0, 0, 0, 0, 0,
				 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};

		poke('D', &d, v, sizeof(v));
	}
	vc = vc_open(path, 7, 262144);
	is_int(vc_get_dir(vc, &d, &vd), -ENOENT, "lying count is a miss");
	vc_close(vc);
}

/* Listing edits: no sort, the name index merged; with VC_E_NOSTORE the
 * file keeps the older record. Checked against a sorted model at every
 * step of 300 random adds, replaces and removes. */
static int
sorted_ok(const struct vc_dir *d)
{
	for (size_t i = 0; i + 1 < d->n; i++) {
		const struct vc_dirent *a = vc_dir_ent(d, i);
		const struct vc_dirent *b = vc_dir_ent(d, i + 1);
		size_t n = a->namelen < b->namelen ? a->namelen : b->namelen;
		int c = memcmp(a->name, b->name, n);

		if (c > 0 || (c == 0 && a->namelen >= b->namelen))
			return 0;
	}
	return 1;
}

static void
test_dir_edits(void)
{
	struct vc *vc = vc_open(path, 7, 262144);
	struct fid d = mkfid(7, 11);
	struct proto_dir pd;
	struct vc_dir *cur, *nw = NULL, *disk;
	struct proto_attr da = mkattr(d, PROTO_T_DIR, 1), ea;
	char names[64][8];
	int in[64] = {0}, bad = 0, badfind = 0, count = 0;
	unsigned seed = 2220;

	memset(&pd, 0, sizeof(pd));
	pd.dir = da;
	is_int(vc_put_dir(vc, &pd), 0, "edits: an empty listing");
	is_int(vc_get_dir(vc, &d, &cur), 0, "edits: read back");
	for (int i = 0; i < 64; i++)
		snprintf(names[i], sizeof(names[i]), "n%02d%c", (i * 37) % 64,
			 'a' + i % 26);
	for (int step = 0; step < 300; step++) {
		int i = (int)((seed = seed * 1103515245u + 12345u) >> 16) % 64;
		int rm = in[i] && (seed & 0x100);

		da.dv++;
		ea = mkattr(mkfid(7, (uint8_t)(100 + i)), PROTO_T_FILE, 1);
		if (vc_dir_edit_flags(vc, cur, &da, rm ? names[i] : NULL,
				      rm ? NULL : names[i], &ea, &nw,
				      step % 3 ? VC_E_NOSTORE : 0) < 0) {
			bad++;
			break;
		}
		vc_dir_put(cur);
		cur = nw;
		if (!rm && !in[i])
			count++;
		if (rm)
			count--;
		in[i] = !rm;
		if (!sorted_ok(cur) || (int)cur->n != count || cur->dv != da.dv)
			bad++;
		for (int j = 0; j < 64; j++) {
			long x = vc_dir_find(cur, names[j], strlen(names[j]));

			if ((x >= 0) != in[j] ||
			    (x >= 0 && vc_dir_ent(cur, x)->fid.oid[0] != 100 + j))
				badfind++;
		}
	}
	is_int(bad, 0, "edits: counts, DVs and the name index stay right");
	is_int(badfind, 0, "edits: every name found iff present, right FID");
	/* Step 299 was a NOSTORE edit (299 % 3 != 0); 297 was stored. */
	is_int(vc_get_dir(vc, &d, &disk), 0, "edits: the file has a listing");
	ok(disk && disk->dv + 2 == cur->dv,
	   "edits: NOSTORE left the file at the last stored DV");
	vc_dir_put(disk);
	vc_dir_put(cur);
	vc_close(vc);
}

/* Renames (del and add of two names), a name given another FID, and an
 * edit that changes only the DV (it shares the old snapshot's arrays,
 * which must outlive the old snapshot's own reference). */
static void
test_dir_edit_kinds(void)
{
	struct vc *vc = vc_open(path, 7, 262144);
	struct fid d = mkfid(7, 12);
	struct proto_dir pd;
	struct proto_attr da = mkattr(d, PROTO_T_DIR, 1), ea;
	struct vc_dir *cur, *nw = NULL, *sh = NULL;
	char nm[4][4] = {"b", "d", "a", "c"};
	long x;

	memset(&pd, 0, sizeof(pd));
	pd.dir = da;
	vc_put_dir(vc, &pd);
	vc_get_dir(vc, &d, &cur);
	for (int i = 0; i < 4; i++) {
		ea = mkattr(mkfid(7, (uint8_t)(40 + i)), PROTO_T_FILE, 1);
		da.dv++;
		vc_dir_edit_flags(vc, cur, &da, NULL, nm[i], &ea, &nw,
				  VC_E_NOSTORE);
		vc_dir_put(cur);
		cur = nw;
	}
	/* rename "d" -> "bb": between "b" and "c" */
	ea = mkattr(mkfid(7, 41), PROTO_T_FILE, 1);
	da.dv++;
	is_int(vc_dir_edit_flags(vc, cur, &da, "d", "bb", &ea, &nw,
				 VC_E_NOSTORE),
	       0, "edit kinds: a rename");
	vc_dir_put(cur);
	cur = nw;
	ok(cur->n == 4 && sorted_ok(cur) && vc_dir_find(cur, "d", 1) < 0 &&
		   (x = vc_dir_find(cur, "bb", 2)) >= 0 &&
		   vc_dir_ent(cur, x)->fid.oid[0] == 41,
	   "edit kinds: renamed, name index in order");
	/* "a" now names another object of another type */
	ea = mkattr(mkfid(7, 50), PROTO_T_SYMLINK, 1);
	da.dv++;
	vc_dir_edit_flags(vc, cur, &da, NULL, "a", &ea, &nw, VC_E_NOSTORE);
	vc_dir_put(cur);
	cur = nw;
	x = vc_dir_find(cur, "a", 1);
	ok(cur->n == 4 && sorted_ok(cur) && x >= 0 &&
		   vc_dir_ent(cur, x)->fid.oid[0] == 50 &&
		   vc_dir_ent(cur, x)->type == PROTO_T_SYMLINK,
	   "edit kinds: a name replaced with another FID and type");
	/* the same entry again: a new DV over the same arrays */
	da.dv++;
	is_int(vc_dir_edit_flags(vc, cur, &da, NULL, "a", &ea, &sh,
				 VC_E_NOSTORE),
	       0, "edit kinds: an edit that changes only the DV");
	ok(sh && sh->nseg == cur->nseg && sh->seg[0] == cur->seg[0] &&
		   sh->dv == da.dv && sh->n == 4,
	   "edit kinds: ... shares the old snapshot's segments");
	vc_dir_put(cur);
	/* and again over the shared one, then an edit that copies */
	da.dv++;
	vc_dir_edit_flags(vc, sh, &da, "zz", NULL, NULL, &nw, VC_E_NOSTORE);
	ok(nw && nw->seg[0] == sh->seg[0] && nw->dv == da.dv,
	   "edit kinds: removing a missing name shares too");
	vc_dir_put(sh);
	da.dv++;
	vc_dir_edit_flags(vc, nw, &da, "b", NULL, NULL, &cur, VC_E_NOSTORE);
	vc_dir_put(nw);
	ok(cur && cur->n == 3 && sorted_ok(cur) &&
		   vc_dir_find(cur, "b", 1) < 0 &&
		   vc_dir_find(cur, "bb", 2) >= 0 &&
		   vc_dir_find(cur, "c", 1) >= 0,
	   "edit kinds: a copy after shared snapshots were put");
	vc_dir_put(cur);
	vc_close(vc);
}

static void
test_link_xattr_seq(void)
{
	struct vc *vc = vc_open(path, 7, 262144);
	struct fid f = mkfid(7, 3);
	struct proto_xattr x[2] = {{"user.a", "1", 1}, {"user.empty", "", 0}};
	struct proto_xattr *got;
	struct proto_volinfo vi = {0}, vi2;
	size_t n;
	int64_t stamp;
	uint64_t seq;
	char *t;

	is_int(vc_put_link(vc, &f, "../some/target"), 0, "put link");
	is_int(vc_get_link(vc, &f, &t), 0, "get link");
	is_str(t, "../some/target", "link round trip");
	free(t);
	is_int(vc_put_xattrs(vc, &f, 42, x, 2), 0, "put xattrs");
	is_int(vc_get_xattrs(vc, &f, &stamp, &got, &n), 0, "get xattrs");
	is_int(n, 2, "two xattrs");
	is_int(stamp, 42, "stamp kept");
	is_str(got[1].name, "user.empty", "xattr name");
	is_int(got[1].len, 0, "empty value");
	ok(got[0].len == 1 && !memcmp(got[0].value, "1", 1), "value");
	proto_xattrs_free(got, n);
	is_int(vc_put_seq(vc, 1234), 0, "put seq");
	is_int(vc_get_seq(vc, &seq), 0, "get seq");
	is_int(seq, 1234, "seq round trip");
	vi.version = 1;
	strcpy(vi.name, "home");
	vi.id = 7;
	vi.root = mkfid(7, 1);
	vi.event_seq = 99;
	vi.readonly = true;
	is_int(vc_put_volinfo(vc, &vi), 0, "put volinfo");
	is_int(vc_get_volinfo(vc, &vi2), 0, "get volinfo");
	ok(!memcmp(&vi, &vi2, sizeof(vi)), "volinfo round trip");
	is_int(vc_forget(vc, &f), 0, "forget");
	is_int(vc_get_link(vc, &f, &t), -ENOENT, "link forgotten");
	vc_close(vc);
	/* Disconnected open: takes the stored volume. */
	vc = vc_open(path, 0, 262144);
	ok(vc != NULL, "open with vol 0 takes the stored volume");
	is_int(vc_get_seq(vc, &seq), 0, "seq still there");
	vc_close(vc);
	/* Another volume empties it. */
	vc = vc_open(path, 8, 262144);
	is_int(vc_get_seq(vc, &seq), -ENOENT, "other volume: emptied");
	vc_close(vc);
	unlink(path);
	vc = vc_open(path, 0, 262144);
	ok(vc == NULL && errno == ENOENT, "vol 0 on an empty file fails");
	unlink(path);
}

struct pin_seen {
	int n, rec;
	char path[64];
	struct fid fid;
	bool has_owner;
	struct vc_pin_owner owner;
};

static int pin_cb(void *arg, const struct fid *fid, int recursive,
		  const char *p, const struct vc_pin_owner *o);

/* Like pin_cb, for the record of FID (7, 10) only. */
static int
pin_cb_g(void *arg, const struct fid *fid, int recursive, const char *p,
	 const struct vc_pin_owner *o)
{
	struct fid g = mkfid(7, 10);

	return fid_eq(fid, &g) ? pin_cb(arg, fid, recursive, p, o) : 0;
}

static int
pin_cb(void *arg, const struct fid *fid, int recursive, const char *p,
       const struct vc_pin_owner *o)
{
	struct pin_seen *s = arg;

	s->n++;
	s->has_owner = o != NULL;
	if (o)
		s->owner = *o;
	s->rec = recursive;
	s->fid = *fid;
	snprintf(s->path, sizeof(s->path), "%s", p);
	return 0;
}

static void
test_pins(void)
{
	struct vc *vc = vc_open(path, 7, 262144);
	struct fid f = mkfid(7, 9), g = mkfid(7, 10);
	struct pin_seen s = {0};

	is_int(vc_put_pin(vc, &f, 1, "data/sub", NULL), 0, "put pin");
	is_int(vc_put_attr(vc, &(struct proto_attr){.fid = g, .type =
					   PROTO_T_FILE}),
	       0, "an attr beside it");
	is_int(vc_iterate_pins(vc, pin_cb, &s), 0, "iterate pins");
	is_int(s.n, 1, "one pin (attrs are not pins)");
	ok(s.rec == 1 && fid_eq(&s.fid, &f), "fid and recursive flag");
	is_str(s.path, "data/sub", "path round trip");
	ok(!s.has_owner, "no owner given, none read back");
	{
		struct vc_pin_owner ow = {.uid = 1000, .gid = 100,
					  .ngroups = 2, .groups = {5, 6}};

		is_int(vc_put_pin(vc, &g, 0, "f", &ow), 0, "put an owned pin");
		s.n = 0;
		memset(&s.owner, 0, sizeof(s.owner));
		is_int(vc_iterate_pins(vc, pin_cb_g, &s), 0, "iterate again");
		ok(s.has_owner && s.owner.uid == 1000 && s.owner.gid == 100 &&
			   s.owner.ngroups == 2 && s.owner.groups[1] == 6,
		   "owner round trip");
		ow.ngroups = VC_PIN_GROUPS_MAX + 1;
		is_int(vc_put_pin(vc, &g, 0, "f", &ow), -EINVAL,
		       "too many groups refused");
		is_int(vc_del_pin(vc, &g), 0, "delete the owned pin");
	}
	is_int(vc_forget(vc, &f), 0, "forget the object's metadata");
	s.n = 0;
	vc_iterate_pins(vc, pin_cb, &s);
	is_int(s.n, 1, "the pin outlives vc_forget");
	vc_close(vc);
	vc = vc_open(path, 7, 262144);
	s.n = 0;
	vc_iterate_pins(vc, pin_cb, &s);
	is_int(s.n, 1, "and a reopen");
	is_int(vc_del_pin(vc, &f), 0, "delete pin");
	is_int(vc_del_pin(vc, &f), 0, "deleting a missing pin is fine");
	s.n = 0;
	vc_iterate_pins(vc, pin_cb, &s);
	is_int(s.n, 0, "gone");
	vc_close(vc);
	unlink(path);
}

static void
test_inodes(void)
{
	struct fid r = mkfid(7, 1), a = mkfid(7, 2), b = mkfid(7, 3);
	struct ino_table *t = ino_new(&r);
	struct ino_ent *e;
	struct fid got;
	uint64_t ia, ib;

	ok(t != NULL, "ino_new");
	is_int(ino_of(t, &r), INO_ROOT, "root is inode 1");
	ino_lock(t);
	e = ino_add_locked(t, &a);
	e->nlookup++;
	ia = e->ino;
	e = ino_add_locked(t, &a);
	e->nlookup++;
	ok(e->ino == ia, "same fid, same inode (hard links)");
	e = ino_add_locked(t, &b);
	e->nlookup++;
	ib = e->ino;
	ino_unlock(t);
	ok(ia != ib && ia > 1 && ib > 1, "distinct inodes");
	is_int(ino_fid(t, ia, &got), 0, "ino -> fid");
	ok(fid_eq(&got, &a), "right fid");
	ino_forget(t, ia, 1);
	is_int(ino_of(t, &a), ia, "one lookup left");
	ino_forget(t, ia, 1);
	is_int(ino_of(t, &a), 0, "forgotten at zero");
	ino_forget(t, INO_ROOT, 100);
	is_int(ino_of(t, &r), INO_ROOT, "root is never forgotten");
	/* An open file keeps its entry past the last forget. */
	ino_lock(t);
	e = ino_get_locked(t, ib);
	e->nopen++;
	ino_unlock(t);
	ino_forget(t, ib, 1);
	is_int(ino_of(t, &b), ib, "open entry survives forget");
	ino_close(t, e, false);
	is_int(ino_of(t, &b), 0, "freed at close");
	/* Growth. */
	for (int i = 0; i < 5000; i++) {
		struct fid f = mkfid(7, 0);

		memcpy(f.oid, &i, sizeof(i));
		f.oid[15] = 0xaa;
		ino_lock(t);
		ino_add_locked(t, &f)->nlookup = 1;
		ino_unlock(t);
	}
	is_int(ino_count(t), 5001, "5000 entries plus the root");
	ino_free(t);
}

/* A snapshot built entry by entry (a listing in pages): the same lookups
 * as one from a whole reply, stored and read back, a name twice refused,
 * and an empty one. */
static void
test_dirb(void)
{
	struct vc *vc = vc_open(path, 7, 65536);
	struct fid d = mkfid(7, 40), f;
	struct proto_attr da = mkattr(d, PROTO_T_DIR, 9), a;
	struct vc_dirb b = {0};
	struct vc_dir *vd, *back;
	char name[32];
	bool all = true;
	int n = 5000;

	ok(vc != NULL, "open for the builder");
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "n%05d", (i * 7919) % n);
		f = mkfid(7, (uint8_t)i);
		if (vc_dirb_add(&b, name, i % 2 ? PROTO_T_FILE : PROTO_T_DIR,
				&f))
			all = false;
	}
	ok(all, "5000 names added");
	vd = vc_dirb_finish(&b, &d, 9);
	ok(vd && vd->n == (size_t)n && vd->dv == 9, "finished: 5000, dv 9");
	ok(b.ents == NULL && b.names == NULL && b.n == 0,
	   "the builder is emptied");
	all = vd != NULL;
	for (int i = 0; vd && i < n; i++) {
		long k;

		snprintf(name, sizeof(name), "n%05d", i);
		k = vc_dir_find(vd, name, strlen(name));
		all = all && k >= 0 && !strcmp(vc_dir_ent(vd, k)->name, name);
	}
	ok(all, "every name found, in arrival order");
	is_int(vd ? vc_put_listing(vc, &da, vd) : -1, 0, "store the listing");
	is_int(vc_get_dir(vc, &d, &back), 0, "read it back");
	ok(back && back->n == (size_t)n && back->dv == 9 &&
		   vc_dir_find(back, "n04999", 6) >= 0 &&
		   !strcmp(vc_dir_ent(back, 0)->name, vc_dir_ent(vd, 0)->name) &&
		   fid_eq(&vc_dir_ent(back, 1)->fid, &vc_dir_ent(vd, 1)->fid) &&
		   vc_dir_ent(back, 1)->type == vc_dir_ent(vd, 1)->type,
	   "the same entries");
	is_int(vc_get_attr(vc, &d, &a), 0, "the directory's attributes too");
	is_int((int)a.dv, 9, "at its dv");
	vc_dir_put(back);
	vc_dir_put(vd);

	f = mkfid(7, 1);
	vc_dirb_add(&b, "same", PROTO_T_FILE, &f);
	vc_dirb_add(&b, "other", PROTO_T_FILE, &f);
	vc_dirb_add(&b, "same", PROTO_T_DIR, &f);
	vd = vc_dirb_finish(&b, &d, 10);
	ok(vd == NULL && errno == EINVAL, "a name twice: EINVAL");
	ok(b.ents == NULL && b.off == NULL, "and the builder released");
	vd = vc_dirb_finish(&b, &d, 11);
	ok(vd && vd->n == 0 && vc_dir_find(vd, "x", 1) == -1,
	   "an empty listing");
	vc_dir_put(vd);
	vc_close(vc);
}

/* Is @vd in name order (bytes unsigned, a prefix first), each name once? */
static bool
dir_in_order(const struct vc_dir *vd)
{
	for (size_t i = 1; i < vd->n; i++) {
		const struct vc_dirent *a = vc_dir_ent(vd, i - 1);
		const struct vc_dirent *b = vc_dir_ent(vd, i);
		size_t l = a->namelen < b->namelen ? a->namelen : b->namelen;
		int c = memcmp(a->name, b->name, l);

		if (c > 0 || (c == 0 && a->namelen >= b->namelen))
			return false;
	}
	return true;
}

/* The snapshot's sort (a radix sort of 8 name bytes past the prefix all
 * names share, then by whole name where those are alike): names with a
 * long shared prefix, that prefix itself as a name, names alike in 12
 * bytes past it, bytes above 0x7f, a small set (qsort()), and a name
 * twice among thousands that share a prefix. */
static void
test_dirb_order(void)
{
	static const char *odd[] = {
		"data-set-2024-",
		"data-set-2024-\xc3\xa9t\xc3\xa9",
		"data-set-2024-z",
		"data-set-2024-AAAAAAAAAAAA1",
		"data-set-2024-AAAAAAAAAAAA2",
		"data-set-2024-AAAAAAAAAAAA",
		"data-set-2024-AAAAAAAAAAA",
		"data-set-2024-\x7f",
		"data-set-2024-\x80",
	};
	struct fid d = mkfid(7, 41), f = mkfid(7, 1);
	struct vc_dirb b = {0};
	struct vc_dir *vd;
	char name[64];
	bool all;
	int n = 3000;

	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "data-set-2024-%06d.jpg",
			 (i * 7919) % n);
		vc_dirb_add(&b, name, PROTO_T_FILE, &f);
	}
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
		vc_dirb_add(&b, odd[i], PROTO_T_FILE, &f);
	vd = vc_dirb_finish(&b, &d, 12);
	ok(vd && vd->n == n + sizeof(odd) / sizeof(odd[0]),
	   "a shared prefix: every name kept");
	ok(vd && dir_in_order(vd), "in name order, each once");
	ok(vd && !strcmp(vc_dir_ent(vd, 0)->name, "data-set-2024-") &&
		   !strcmp(vc_dir_ent(vd, vd->n - 1)->name,
			   "data-set-2024-\xc3\xa9t\xc3\xa9"),
	   "the prefix itself first, bytes above 0x7f last");
	all = vd != NULL;
	for (size_t i = 0; vd && i < sizeof(odd) / sizeof(odd[0]); i++) {
		long k = vc_dir_find(vd, odd[i], strlen(odd[i]));

		all = all && k >= 0 && !strcmp(vc_dir_ent(vd, k)->name, odd[i]);
	}
	for (int i = 0; vd && i < n; i += 97) {
		snprintf(name, sizeof(name), "data-set-2024-%06d.jpg", i);
		all = all && vc_dir_find(vd, name, strlen(name)) >= 0;
	}
	ok(all, "and found by name");
	vc_dir_put(vd);

	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
		vc_dirb_add(&b, odd[sizeof(odd) / sizeof(odd[0]) - 1 - i],
			    PROTO_T_FILE, &f);
	vd = vc_dirb_finish(&b, &d, 13);
	ok(vd && vd->n == sizeof(odd) / sizeof(odd[0]) && dir_in_order(vd),
	   "a small set in name order");
	vc_dir_put(vd);

	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "data-set-2024-AAAAAAAAAA%05d",
			 i == n - 1 ? 17 : i);
		vc_dirb_add(&b, name, PROTO_T_FILE, &f);
	}
	vd = vc_dirb_finish(&b, &d, 14);
	ok(vd == NULL && errno == EINVAL,
	   "a name twice among names alike past the prefix: EINVAL");
}

/* The version byte of the raw 'A' record of @f, -1 if none. */
static int
peek_version(const struct fid *f)
{
	struct tdb_context *t = tdb_open(path, 0, 0, O_RDONLY, 0600);
	uint8_t kb[21];
	TDB_DATA k = {kb, 21}, v;
	int ver = -1;

	if (!t)
		return -1;
	kb[0] = 'A';
	for (int i = 0; i < 4; i++)
		kb[1 + i] = (uint8_t)(f->vol >> (8 * i));
	memcpy(kb + 5, f->oid, 16);
	v = tdb_fetch(t, k);
	if (v.dptr && v.dsize)
		ver = v.dptr[0];
	free(v.dptr);
	tdb_close(t);
	return ver;
}

/* Sockets and devices (issue #16): version 2 'A' records with the rdev,
 * written only for them; version 1 records still read. */
static void
test_special(void)
{
	struct vc *vc;
	struct fid fc = mkfid(7, 0x21), fs = mkfid(7, 0x22), ff = mkfid(7, 0x23),
		   fd = mkfid(7, 0x24);
	struct proto_attr c = mkattr(fc, PROTO_T_CHR, 4), s = mkattr(fs, PROTO_T_SOCK, 5),
			  f = mkattr(ff, PROTO_T_FIFO, 6), b;
	struct proto_dir pd;
	struct proto_dirent ents[3];
	struct vc_dir *vd = NULL;

	unlink(path);
	vc = vc_open(path, 7, 262144);
	c.rdev = 0xfff00103u;
	c.size = 0;
	is_int(vc_put_attr(vc, &c), 0, "put a chr");
	is_int(vc_put_attr(vc, &s), 0, "put a socket");
	is_int(vc_put_attr(vc, &f), 0, "put a fifo");
	is_int(vc_get_attr(vc, &fc, &b), 0, "get the chr");
	ok(!memcmp(&b, &c, sizeof(b)), "chr round trip with its rdev");
	is_int(vc_get_attr(vc, &fs, &b), 0, "get the socket");
	ok(!memcmp(&b, &s, sizeof(b)), "socket round trip");
	vc_close(vc);
	is_int(peek_version(&fc), VC_ATTR_CRC_VERSION,
	       "a chr is a version 3 record (CRC and rdev)");
	is_int(peek_version(&fs), VC_ATTR_CRC_VERSION,
	       "a socket is a version 3 record");
	is_int(peek_version(&ff), VC_ATTR_CRC_VERSION,
	       "a fifo too (every record has its CRC now)");

	/* A version 2 record that gives a FIFO an rdev does not parse. */
	{
		uint8_t v[128];
		size_t n = 0;

		v[n++] = VC_ATTR_VERSION;
		for (int i = 0; i < 4; i++)
			v[n++] = (uint8_t)(ff.vol >> (8 * i));
		memcpy(v + n, ff.oid, 16);
		n += 16;
		v[n++] = PROTO_T_FIFO;
		memset(v + n, 0, 4 * 3 + 8 * 6); /* mode..ctime */
		n += 4 * 3 + 8 * 6;
		v[n++] = 1; /* rdev 1 */
		v[n++] = 0;
		v[n++] = 0;
		v[n++] = 0;
		poke('A', &ff, v, n);
		vc = vc_open(path, 7, 262144);
		is_int(vc_get_attr(vc, &ff, &b), -ENOENT,
		       "a fifo with an rdev is a miss");
		/* The same bytes with type chr are a device 0:1. */
		v[21] = PROTO_T_CHR;
		vc_close(vc);
		poke('A', &ff, v, n);
		vc = vc_open(path, 7, 262144);
		is_int(vc_get_attr(vc, &ff, &b), 0, "the same as a chr reads");
		is_int(b.rdev, 1, "... with its rdev");
		/* Version 2 without its rdev: truncated. */
		vc_close(vc);
		poke('A', &ff, v, n - 4);
		vc = vc_open(path, 7, 262144);
		is_int(vc_get_attr(vc, &ff, &b), -ENOENT,
		       "a version 2 record without its rdev is a miss");
		/* A type past the last one this cairnd knows. */
		v[21] = PROTO_T_MAX + 1;
		vc_close(vc);
		poke('A', &ff, v, n);
		vc = vc_open(path, 7, 262144);
		is_int(vc_get_attr(vc, &ff, &b), -ENOENT,
		       "an unknown type is a miss");
	}

	/* A listing with each new type. */
	memset(&pd, 0, sizeof(pd));
	pd.dir = mkattr(fd, PROTO_T_DIR, 9);
	ents[0] = (struct proto_dirent){(char *)"c", c};
	ents[1] = (struct proto_dirent){(char *)"s", s};
	ents[2] = (struct proto_dirent){(char *)"b", mkattr(mkfid(7, 0x25), PROTO_T_BLK, 1)};
	ents[2].attr.rdev = 0x801;
	pd.n = 3;
	pd.ents = ents;
	is_int(vc_put_dir(vc, &pd), 0, "put a listing of devices and a socket");
	is_int(vc_get_dir(vc, &fd, &vd), 0, "get it");
	ok(vd && vd->n == 3 && vc_dir_ent(vd, 0)->type == PROTO_T_BLK &&
		   vc_dir_ent(vd, 1)->type == PROTO_T_CHR &&
		   vc_dir_ent(vd, 2)->type == PROTO_T_SOCK,
	   "the listing keeps each type");
	vc_dir_put(vd);
	is_int(vc_get_attr(vc, &ents[2].attr.fid, &b), 0, "the blk's attributes");
	is_int(b.rdev, 0x801, "... with its rdev, from the listing's transaction");
	vc_close(vc);
	unlink(path);
}

/* --- listings in pages --- */

/* Same entries (names, types, FIDs) in the same order. */
static int
same_listing(const struct vc_dir *a, const struct vc_dir *b)
{
	if (a->n != b->n || a->dv != b->dv)
		return 0;
	for (size_t i = 0; i < a->n; i++) {
		const struct vc_dirent *x = vc_dir_ent(a, i), *y = vc_dir_ent(b, i);

		if (x->namelen != y->namelen || strcmp(x->name, y->name) ||
		    x->type != y->type || !fid_eq(&x->fid, &y->fid))
			return 0;
	}
	return 1;
}

/* Segments of 1..512 entries, first[] their running count. */
static int
segs_ok(const struct vc_dir *d)
{
	size_t n = 0;

	for (size_t k = 0; k < d->nseg; k++) {
		if (d->first[k] != n || d->seg[k] == NULL)
			return 0;
		n = k + 1 < d->nseg ? d->first[k + 1] : d->n;
		if (n <= d->first[k] || n - d->first[k] > 512)
			return 0;
	}
	return d->first[d->nseg] == d->n && n == d->n;
}

static uint8_t last_page[29]; /* the key of a page count_pages() saw */

static int
count_pages_cb(struct tdb_context *t, TDB_DATA k, TDB_DATA v, void *arg)
{
	const struct fid *f = ((const struct fid **)arg)[0];
	size_t *n = ((size_t **)arg)[1];

	(void)t;
	(void)v;
	if (k.dsize == 29 && k.dptr[0] == 'G' &&
	    !memcmp(k.dptr + 5, f->oid, 16)) {
		(*n)++;
		memcpy(last_page, k.dptr, 29);
	}
	return 0;
}

/* 'G' records of directory @f in the file (vc closed). */
static size_t
count_pages(const struct fid *f)
{
	struct tdb_context *t = tdb_open(path, 0, 0, O_RDWR, 0600);
	size_t n = 0;
	const void *arg[2] = {f, &n};

	tdb_traverse(t, count_pages_cb, arg);
	tdb_close(t);
	return n;
}


/*
 * A listing of 3,000 entries edited 3,000 times (adds, removes, renames,
 * a run of names that all fall in one segment so it splits, a run of
 * removes that empties segments), checked against a model at every step
 * and against the file at every stored step; the file holds exactly the
 * listing's pages; a damaged or missing page drops the listing (and its
 * pages); a version-1 record is still read.
 */
static void
test_dir_pages(void)
{
	struct vc *vc = vc_open(path, 7, 262144);
	struct fid d = mkfid(7, 13);
	struct proto_attr da = mkattr(d, PROTO_T_DIR, 1), ea;
	struct vc_dirb b = {0};
	struct vc_dir *cur, *nw = NULL, *disk = NULL;
	enum { NN = 5000 };
	static char names[NN][16];
	static int in[NN];
	int count = 0, bad = 0, badfile = 0, badseg = 0, stores = 0;
	unsigned seed = 2290;
	size_t pages;

	for (int i = 0; i < NN; i++) {
		if (i < 4000)
			snprintf(names[i], sizeof(names[i]), "e%05d", i * 7);
		else /* all between e14000 and e14007: one segment */
			snprintf(names[i], sizeof(names[i]), "e14000x%04d",
				 i - 4000);
	}
	for (int i = 0; i < 3000; i++) {
		int j = (i * 1237) % 3000;

		ea = mkattr(mkfid(7, 0), PROTO_T_FILE, 1);
		ea.fid.oid[1] = (uint8_t)j;
		ea.fid.oid[2] = (uint8_t)(j >> 8);
		vc_dirb_add(&b, names[j], PROTO_T_FILE, &ea.fid);
		in[j] = 1;
		count++;
	}
	cur = vc_dirb_finish(&b, &d, da.dv);
	ok(cur && cur->n == 3000 && cur->nseg == 12 && segs_ok(cur) &&
		   sorted_ok(cur),
	   "pages: 3,000 entries in 12 segments, in name order");
	is_int(vc_put_listing(vc, &da, cur), 0, "pages: stored");
	for (int step = 0; step < 3000 && cur; step++) {
		int i, k2 = -1;
		const char *del = NULL, *add = NULL;

		seed = seed * 1103515245u + 12345u;
		if (step < 1000)
			i = 4000 + step; /* the one-segment run */
		else if (step < 1600)
			i = 1000 + (step - 1000); /* removes in a row */
		else
			i = (int)((seed >> 8) % NN);
		if (step >= 1000 && step < 1600)
			del = in[i] ? names[i] : NULL;
		else if (in[i] && (seed & 0x10000)) {
			/* rename i to a name not present */
			k2 = (int)((seed >> 3) % NN);
			if (in[k2] || k2 == i)
				k2 = -1;
			del = names[i];
			add = k2 >= 0 ? names[k2] : NULL;
		} else
			add = names[i];
		ea = mkattr(mkfid(7, 0), PROTO_T_FILE, 1);
		{
			int t = add ? (k2 >= 0 ? k2 : i) : 0;

			ea.fid.oid[1] = (uint8_t)t;
			ea.fid.oid[2] = (uint8_t)(t >> 8);
			ea.fid.oid[3] = (uint8_t)step; /* a replace changes it */
		}
		da.dv++;
		if (vc_dir_edit_flags(vc, cur, &da, del, add, &ea, &nw,
				      step % 5 ? VC_E_NOSTORE : 0) < 0) {
			bad++;
			break;
		}
		vc_dir_put(cur);
		cur = nw;
		if (del) { /* only ever names[i], present */
			in[i] = 0;
			count--;
		}
		if (add) {
			int t = k2 >= 0 ? k2 : i;

			if (!in[t])
				count++;
			in[t] = 1;
		}
		if ((int)cur->n != count || !segs_ok(cur))
			badseg++;
		if (step % 97 == 0 || step == 999 || step == 1599) {
			int miss = 0;

			for (int j = 0; j < NN; j++)
				if ((vc_dir_find(cur, names[j],
						 strlen(names[j])) >= 0) != in[j])
					miss++;
			if (miss || !sorted_ok(cur))
				bad++;
		}
		if (step % 5 == 0) {
			stores++;
			if (vc_get_dir(vc, &d, &disk) != 0 ||
			    !same_listing(disk, cur) || !segs_ok(disk))
				badfile++;
			vc_dir_put(disk);
			disk = NULL;
		}
	}
	is_int(bad, 0, "pages: every name found iff present, in name order");
	is_int(badseg, 0, "pages: counts and segments stay right");
	is_int(badfile, 0, "pages: every stored step reads back the same");
	ok(cur && cur->nseg > 12, "pages: the one-segment run split it");
	diag("pages: %d stores, %zu entries in %zu segments at the end",
	     stores, cur ? cur->n : 0, cur ? cur->nseg : 0);
	/* Thin out: remove all but one name in 50, so segments fall below
	 * 64 entries and join their neighbours. */
	for (int i = 0; i < NN && cur; i++) {
		if (!in[i] || i % 50 == 0)
			continue;
		da.dv++;
		if (vc_dir_edit_flags(vc, cur, &da, names[i], NULL, NULL, &nw,
				      i % 7 ? VC_E_NOSTORE : 0) < 0) {
			bad++;
			break;
		}
		vc_dir_put(cur);
		cur = nw;
		in[i] = 0;
		count--;
		if ((int)cur->n != count || !segs_ok(cur))
			badseg++;
	}
	for (int j = 0; j < NN && cur; j++)
		if ((vc_dir_find(cur, names[j], strlen(names[j])) >= 0) != in[j])
			bad++;
	is_int(bad + badseg, 0, "pages: thinning keeps names and segments right");
	ok(cur && cur->nseg <= cur->n / 64 + 2,
	   "pages: thinned out, segments joined (%zu entries in %zu)",
	   cur ? cur->n : 0, cur ? cur->nseg : 0);
	/* The last step (2999) was NOSTORE: store it. */
	da.dv++;
	vc_dir_edit_flags(vc, cur, &da, NULL, NULL, NULL, &nw, 0);
	vc_dir_put(cur);
	cur = nw;
	vc_close(vc);
	pages = count_pages(&d);
	is_int(pages, cur->nseg, "pages: the file holds exactly its pages");
	vc = vc_open(path, 7, 262144);
	ok(vc_get_dir(vc, &d, &disk) == 0 && same_listing(disk, cur),
	   "pages: read back after a reopen");
	vc_dir_put(disk);
	vc_close(vc);

	/* A damaged page, then a missing one: the listing is dropped. */
	{
		struct tdb_context *t = tdb_open(path, 0, 0, O_RDWR, 0600);
		TDB_DATA k = {last_page, 29},
			 v = {(uint8_t *)"\x01\x02\x00\x00\x00zz", 7};

		tdb_store(t, k, v, TDB_REPLACE);
		tdb_close(t);
	}
	vc = vc_open(path, 7, 262144);
	is_int(vc_get_dir(vc, &d, &disk), -ENOENT,
	       "pages: a damaged page drops the listing");
	vc_close(vc);
	is_int(count_pages(&d), 0, "pages: ... and all its pages");
	vc = vc_open(path, 7, 262144);
	is_int(vc_put_listing(vc, &da, cur), 0, "pages: stored again");
	vc_close(vc);
	count_pages(&d);
	{
		struct tdb_context *t = tdb_open(path, 0, 0, O_RDWR, 0600);
		TDB_DATA k = {last_page, 29};

		tdb_delete(t, k);
		tdb_close(t);
	}
	vc = vc_open(path, 7, 262144);
	is_int(vc_get_dir(vc, &d, &disk), -ENOENT,
	       "pages: a missing page drops the listing");
	is_int(vc_del_dir(vc, &d), 0, "pages: deleting a dropped listing");
	vc_close(vc);
	vc_dir_put(cur);

	/* A version-1 record (server order) still reads, in name order. */
	{
		uint8_t v[1 + 16 + 2 * (2 + 1 + 1 + 20)] = {VC_REC_VERSION, 9};
		size_t o = 1 + 8;

		v[o] = 2;
		o += 8;
		for (int i = 0; i < 2; i++) {
			v[o] = 1;
			v[o + 2] = (uint8_t)(i ? 'a' : 'b');
			v[o + 3] = PROTO_T_FILE;
			v[o + 4] = 7;
			v[o + 8] = (uint8_t)(60 + i);
			o += 24;
		}
		poke('D', &d, v, sizeof(v));
	}
	vc = vc_open(path, 7, 262144);
	ok(vc_get_dir(vc, &d, &disk) == 0 && disk->n == 2 && disk->dv == 9 &&
		   !strcmp(vc_dir_ent(disk, 0)->name, "a") &&
		   vc_dir_ent(disk, 0)->fid.oid[0] == 61,
	   "pages: a version-1 listing is read, in name order");
	vc_dir_put(disk);
	vc_close(vc);
}

/* A reader of the file's listing (vc_get_dir: D, then its pages, each
 * under the lock on its own) racing an editor that stores a new listing
 * and drops the old pages between the two: the reader must read again,
 * never delete the editor's listing as damaged. */
struct race {
	struct vc *vc;
	struct fid d;
	atomic_bool done;
	atomic_int reads;
	int misses, last_rc;
};

static void *
race_reader(void *arg)
{
	struct race *r = arg;

	while (!atomic_load(&r->done)) {
		struct vc_dir *vd = NULL;

		int rc = vc_get_dir(r->vc, &r->d, &vd);

		if (rc == 0)
			vc_dir_put(vd);
		else
			r->misses++, r->last_rc = rc;
		r->reads++;
	}
	return NULL;
}

static void
test_dir_read_race(void)
{
	enum { N = 1500, STEPS = 1500 };
	struct race r = {.vc = vc_open(path, 7, 262144), .d = mkfid(7, 13)};
	struct proto_dirent *ents = calloc(N, sizeof(*ents));
	char (*names)[12] = calloc(N, sizeof(*names));
	struct proto_attr da = mkattr(r.d, PROTO_T_DIR, 1), ea;
	struct proto_dir pd = {.dir = da, .n = N, .ents = ents};
	struct vc_dir *cur = NULL, *nw = NULL, *disk = NULL;
	pthread_t th;
	int bad = 0;

	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "f%05d", i * 2);
		ents[i].name = names[i];
		ents[i].attr = mkattr(mkfid(7, (uint8_t)i), PROTO_T_FILE, 1);
	}
	ok(r.vc && vc_put_dir(r.vc, &pd) == 0 &&
		   vc_get_dir(r.vc, &r.d, &cur) == 0,
	   "race: a listing of %d entries (several pages)", N);
	pthread_create(&th, NULL, race_reader, &r);
	/* The reader's first read done before the edits start: on a loaded
	 * machine the thread could otherwise first run after the last edit
	 * ("read 0 times", seen at load 30). */
	while (atomic_load(&r.reads) == 0)
		usleep(1000);
	for (int step = 0; step < STEPS && cur; step++) {
		char name[12];

		/* a new odd name in a page chosen by the step, stored at once:
		 * the page is written anew and the old one dropped */
		snprintf(name, sizeof(name), "f%05d", ((step * 7919) % N) * 2 + 1);
		da.dv++;
		ea = mkattr(mkfid(7, (uint8_t)step), PROTO_T_FILE, 1);
		if (vc_dir_edit_flags(r.vc, cur, &da,
				      vc_dir_find(cur, name, strlen(name)) >= 0
					      ? name
					      : NULL,
				      vc_dir_find(cur, name, strlen(name)) >= 0
					      ? NULL
					      : name,
				      &ea, &nw, 0) < 0) {
			bad++;
			break;
		}
		vc_dir_put(cur);
		cur = nw;
	}
	atomic_store(&r.done, true);
	pthread_join(th, NULL);
	is_int(bad, 0, "race: %d stored edits", STEPS);
	ok(atomic_load(&r.reads) > 0, "race: the reader read %d times",
	   atomic_load(&r.reads));
	/* Before the fix every run missed some and most lost the listing;
	 * a rare miss (a refetch in cairnd) is not the bug. */
	ok(r.misses * 100 <= atomic_load(&r.reads),
	   "race: reads that missed the listing %d of %d (last error %d)",
	   r.misses, atomic_load(&r.reads), r.last_rc);
	is_int(vc_get_dir(r.vc, &r.d, &disk), 0,
	       "race: the file still has the listing after the race");
	ok(disk && cur && disk->dv == cur->dv && disk->n == cur->n,
	   "race: the editor's last listing (DV and entries)");
	vc_dir_put(disk);
	vc_dir_put(cur);
	vc_close(r.vc);
	free(ents);
	free(names);
}

/* --- torn records, page ids, shared pages, the sweep (issue #17) --- */

/* The raw value of key @k[0..kn) (malloc'ed into *@v), or -1. */
static int
raw_get(const uint8_t *k, size_t kn, uint8_t **v, size_t *vn)
{
	struct tdb_context *t = tdb_open(path, 0, 0, O_RDONLY, 0600);
	TDB_DATA key = {(uint8_t *)k, kn}, d;

	*v = NULL;
	*vn = 0;
	if (!t)
		return -1;
	d = tdb_fetch(t, key);
	tdb_close(t);
	if (!d.dptr)
		return -1;
	*v = d.dptr;
	*vn = d.dsize;
	return 0;
}

static void
raw_put(const uint8_t *k, size_t kn, const uint8_t *v, size_t vn)
{
	struct tdb_context *t = tdb_open(path, 0, 0, O_RDWR, 0600);
	TDB_DATA key = {(uint8_t *)k, kn}, d = {(uint8_t *)v, vn};

	tdb_store(t, key, d, TDB_REPLACE);
	tdb_close(t);
}

static void
fidkey(uint8_t *kb, char tag, const struct fid *f)
{
	kb[0] = (uint8_t)tag;
	for (int i = 0; i < 4; i++)
		kb[1 + i] = (uint8_t)(f->vol >> (8 * i));
	memcpy(kb + 5, f->oid, 16);
}

static uint64_t
le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* The page ids the 'D' record of @f names (version 3), into @ids. */
static size_t
dir_ids(const struct fid *f, uint64_t *ids, size_t max)
{
	uint8_t kb[21], *v;
	size_t vn, n = 0;

	fidkey(kb, 'D', f);
	if (raw_get(kb, 21, &v, &vn) || vn < 25 || v[0] != VC_DIR_CRC_VERSION) {
		free(v);
		return 0;
	}
	for (size_t o = 25; o + 12 <= vn && n < max; o += 12)
		ids[n++] = le64(v + o);
	free(v);
	return n;
}

/* A listing of @n entries "nNNNNN" of directory @d at DV @dv. */
static struct vc_dir *
mklisting(const struct fid *d, int n, uint64_t dv, int salt)
{
	struct vc_dirb b = {0};

	for (int i = 0; i < n; i++) {
		char nm[16];
		struct fid e = mkfid(7, (uint8_t)(i + salt));

		e.oid[1] = (uint8_t)(i >> 8);
		snprintf(nm, sizeof(nm), "n%06d", i * 2);
		vc_dirb_add(&b, nm, PROTO_T_FILE, &e);
	}
	return vc_dirb_finish(&b, d, dv);
}

static void
check_cb(void *arg, int error, const char *msg)
{
	(void)msg;
	if (error)
		(*(int *)arg)++;
}

/*
 * A torn record: every byte of a stored 'A' and 'D' record flipped in
 * turn (as a kill in the middle of an overwrite in place would leave
 * it), and records mixed from two versions of the same size: each reads
 * as a miss (dropped, counted), never as other data, and is fetched
 * (stored) again. A flipped page drops its listing.
 */
static void
test_torn(void)
{
	struct vc *vc;
	struct fid f = mkfid(7, 0x31), d = mkfid(7, 0x32);
	struct proto_attr a = mkattr(f, PROTO_T_FILE, 3), a2, b;
	struct proto_attr da = mkattr(d, PROTO_T_DIR, 4);
	struct vc_dir *l1, *l2, *got = NULL;
	uint8_t ka[21], kd[21], *va = NULL, *va2 = NULL, *vd = NULL,
			      *vd2 = NULL, *mix;
	size_t na, na2, nd, nd2;
	int wrong = 0, notmiss = 0;
	uint64_t damaged0;

	unlink(path);
	fidkey(ka, 'A', &f);
	fidkey(kd, 'D', &d);
	vc = vc_open(path, 7, 262144);
	l1 = mklisting(&d, 1000, 4, 0);
	l2 = mklisting(&d, 1000, 5, 1); /* same size, other FIDs */
	is_int(vc_put_attr(vc, &a), 0, "torn: put an attr");
	is_int(vc_put_listing(vc, &da, l1), 0, "torn: put a listing");
	vc_close(vc);
	ok(raw_get(ka, 21, &va, &na) == 0 && va[0] == VC_ATTR_CRC_VERSION,
	   "torn: the 'A' record is version %d (a CRC)", VC_ATTR_CRC_VERSION);
	ok(raw_get(kd, 21, &vd, &nd) == 0 && vd[0] == VC_DIR_CRC_VERSION,
	   "torn: the 'D' record is version %d", VC_DIR_CRC_VERSION);
	/* Every byte of the 'A' record, flipped. */
	vc = vc_open(path, 7, 262144);
	damaged0 = vc_damaged(vc);
	vc_close(vc);
	for (size_t i = 0; va && i < na; i++) {
		va[i] ^= 0x5a;
		raw_put(ka, 21, va, na);
		va[i] ^= 0x5a;
		vc = vc_open(path, 7, 262144);
		if (vc_get_attr(vc, &f, &b) != -ENOENT)
			notmiss++;
		if (vc_get_attr(vc, &f, &b) != -ENOENT)
			wrong++; /* dropped: still a miss */
		vc_put_attr(vc, &a); /* refetched */
		if (vc_get_attr(vc, &f, &b) || memcmp(&a, &b, sizeof(a)))
			wrong++;
		vc_close(vc);
	}
	is_int(notmiss, 0, "torn: each of the %zu bytes of 'A' flipped is a miss",
	       na);
	is_int(wrong, 0, "torn: ... dropped, and read right once stored again");
	/* Two versions of the same size, mixed at every cut. */
	a2 = a;
	a2.size = 999999;
	a2.mtime_ns += 77;
	vc = vc_open(path, 7, 262144);
	vc_put_attr(vc, &a2);
	vc_close(vc);
	raw_get(ka, 21, &va2, &na2);
	ok(na2 == na, "torn: both 'A' versions have the same size (%zu)", na);
	mix = malloc(na);
	notmiss = 0;
	for (size_t cut = 1; va2 && na2 == na && cut < na; cut++) {
		memcpy(mix, va2, cut);
		memcpy(mix + cut, va + cut, na - cut);
		if (!memcmp(mix, va, na) || !memcmp(mix, va2, na))
			continue; /* the same bytes from the cut on */
		raw_put(ka, 21, mix, na);
		vc = vc_open(path, 7, 262144);
		if (vc_get_attr(vc, &f, &b) != -ENOENT)
			notmiss++;
		vc_close(vc);
	}
	is_int(notmiss, 0, "torn: an 'A' mixed from old and new bytes is a miss");
	free(mix);

	/* Every byte of the 'D' record flipped: the listing is dropped (a
	 * miss, fetched again), never read as another listing. */
	notmiss = 0;
	wrong = 0;
	for (size_t i = 0; vd && i < nd; i++) {
		vd[i] ^= 0xa5;
		raw_put(kd, 21, vd, nd);
		vd[i] ^= 0xa5;
		vc = vc_open(path, 7, 262144);
		if (vc_get_dir(vc, &d, &got) != -ENOENT) {
			notmiss++;
			vc_dir_put(got);
		}
		got = NULL;
		if (vc_put_listing(vc, &da, l1) != 0 ||
		    vc_get_dir(vc, &d, &got) != 0 || !same_listing(got, l1))
			wrong++;
		vc_dir_put(got);
		got = NULL;
		vc_close(vc);
		free(vd);
		raw_get(kd, 21, &vd, &nd); /* the record stored again */
	}
	is_int(notmiss, 0, "torn: each of the %zu bytes of 'D' flipped is a miss",
	       nd);
	is_int(wrong, 0, "torn: ... and the listing stored again reads right");
	/* 'D' of another listing with the same page count, mixed. */
	vc = vc_open(path, 7, 262144);
	vc_put_listing(vc, &da, l2);
	vc_close(vc);
	raw_get(kd, 21, &vd2, &nd2);
	ok(nd2 == nd, "torn: two 'D' records of the same size (%zu)", nd);
	mix = malloc(nd);
	notmiss = 0;
	for (size_t cut = 1; vd2 && nd2 == nd && cut < nd; cut += 3) {
		memcpy(mix, vd, cut);
		memcpy(mix + cut, vd2 + cut, nd - cut);
		if (!memcmp(mix, vd, nd) || !memcmp(mix, vd2, nd))
			continue;
		raw_put(kd, 21, mix, nd);
		vc = vc_open(path, 7, 262144);
		if (vc_get_dir(vc, &d, &got) != -ENOENT) {
			notmiss++;
			vc_dir_put(got);
		}
		got = NULL;
		vc_close(vc);
	}
	is_int(notmiss, 0, "torn: a 'D' mixed from two listings is a miss");
	free(mix);

	/* A flipped byte in a page: the listing is dropped with its pages. */
	vc = vc_open(path, 7, 262144);
	vc_put_listing(vc, &da, l1);
	vc_close(vc);
	count_pages(&d);
	{
		uint8_t *pv;
		size_t pn;

		ok(raw_get(last_page, 29, &pv, &pn) == 0 && pv[0] == VC_PAGE_VERSION,
		   "torn: pages are version %d (a CRC)", VC_PAGE_VERSION);
		notmiss = 0;
		for (size_t i = 0; pv && i < pn; i += 97) {
			pv[i] ^= 0x01;
			raw_put(last_page, 29, pv, pn);
			pv[i] ^= 0x01;
			vc = vc_open(path, 7, 262144);
			if (vc_get_dir(vc, &d, &got) != -ENOENT) {
				notmiss++;
				vc_dir_put(got);
			}
			got = NULL;
			if (i == 0) {
				vc_close(vc);
				is_int(count_pages(&d), 0,
				       "torn: a bad page drops all pages");
				vc = vc_open(path, 7, 262144);
			}
			vc_put_listing(vc, &da, l1);
			vc_close(vc);
		}
		is_int(notmiss, 0, "torn: a page with a flipped byte drops it");
		free(pv);
	}
	vc = vc_open(path, 7, 262144);
	ok(vc_get_dir(vc, &d, &got) == 0 && same_listing(got, l1),
	   "torn: the listing stored again reads right");
	vc_dir_put(got);
	got = NULL;
	/* Counted (a fresh count a process: each vc_open starts at 0). */
	vc_get_attr(vc, &f, &b);
	is_int(vc_damaged(vc), damaged0, "torn: nothing damaged now");
	va[3] ^= 1;
	vc_close(vc);
	raw_put(ka, 21, va, na);
	vc = vc_open(path, 7, 262144);
	vc_get_attr(vc, &f, &b);
	is_int(vc_damaged(vc), damaged0 + 1, "torn: a bad record is counted");
	vc_close(vc);
	free(va);
	free(va2);
	free(vd);
	free(vd2);
	vc_dir_put(l1);
	vc_dir_put(l2);
	unlink(path);
}

/*
 * A reader that finds a damaged 'A', 'D' or 'X' record drops it only if it
 * is still the one it read (compare-and-delete under one lock): an editor
 * that stores a fresh record between the read and the drop (here: the
 * vc_set_drop_hook() of the reader) keeps it.
 */
struct drop_race {
	struct vc *vc;
	char tag;
	struct proto_attr a, da;
	struct vc_dir *l;
	struct proto_xattr *x;
	int calls;
};

static void
drop_race_store(void *arg)
{
	struct drop_race *r = arg;

	r->calls++;
	if (r->tag == 'A')
		vc_put_attr(r->vc, &r->a);
	else if (r->tag == 'D')
		vc_put_listing(r->vc, &r->da, r->l);
	else
		vc_put_xattrs(r->vc, &r->a.fid, 77, r->x, 1);
}

static void
test_drop_race(void)
{
	struct vc *vc;
	struct fid f = mkfid(7, 0x51), g = mkfid(7, 0x52), d = mkfid(7, 0x53);
	struct proto_attr a = mkattr(f, PROTO_T_FILE, 3), ga, b;
	struct proto_attr da = mkattr(d, PROTO_T_DIR, 4);
	struct proto_xattr x1[1] = {{"user.old", "1", 1}};
	struct proto_xattr x2[1] = {{"user.new", "22", 2}};
	struct proto_xattr *xg = NULL;
	struct vc_dir *l1, *l2, *got = NULL;
	struct drop_race r = {0};
	uint8_t ka[21], kga[21], kd[21], kx[21], *v = NULL, *vx = NULL;
	size_t n, nx;
	int64_t stamp = 0;

	unlink(path);
	fidkey(ka, 'A', &f);
	fidkey(kga, 'A', &g);
	fidkey(kd, 'D', &d);
	fidkey(kx, 'X', &f);
	ga = mkattr(g, PROTO_T_FILE, 9);
	l1 = mklisting(&d, 600, 4, 0);
	l2 = mklisting(&d, 700, 5, 1);
	vc = vc_open(path, 7, 262144);
	vc_put_attr(vc, &a);
	vc_put_attr(vc, &ga);
	vc_put_listing(vc, &da, l1);
	vc_put_xattrs(vc, &f, 42, x1, 1);
	vc_close(vc);

	/* 'A' with a bad CRC; a fresh one stored before the drop. */
	raw_get(ka, 21, &v, &n);
	v[n - 1] ^= 0x10;
	raw_put(ka, 21, v, n);
	free(v);
	vc = vc_open(path, 7, 262144);
	r.vc = vc;
	r.tag = 'A';
	r.a = a;
	r.a.size = 4242;
	vc_set_drop_hook(vc, drop_race_store, &r);
	is_int(vc_get_attr(vc, &f, &b), -ENOENT, "drop race: a torn 'A' is a miss");
	is_int(r.calls, 1, "drop race: ... the editor stored a fresh one meanwhile");
	vc_set_drop_hook(vc, NULL, NULL);
	ok(vc_get_attr(vc, &f, &b) == 0 && b.size == 4242,
	   "drop race: the fresh 'A' is kept (not deleted as the torn one)");
	vc_close(vc);

	/* 'A' that passes its CRC but does not belong (another FID's). */
	raw_get(kga, 21, &v, &n);
	raw_put(ka, 21, v, n);
	free(v);
	vc = vc_open(path, 7, 262144);
	r.vc = vc;
	r.calls = 0;
	r.a.size = 5353;
	vc_set_drop_hook(vc, drop_race_store, &r);
	is_int(vc_get_attr(vc, &f, &b), -ENOENT,
	       "drop race: an 'A' of another FID is a miss");
	vc_set_drop_hook(vc, NULL, NULL);
	ok(r.calls == 1 && vc_get_attr(vc, &f, &b) == 0 && b.size == 5353,
	   "drop race: ... and the fresh one stored meanwhile is kept");
	vc_close(vc);
	/* Without an editor, the bad one is still dropped. */
	raw_get(kga, 21, &v, &n);
	raw_put(ka, 21, v, n);
	free(v);
	vc = vc_open(path, 7, 262144);
	is_int(vc_get_attr(vc, &f, &b), -ENOENT, "drop race: alone, a miss");
	vc_close(vc);
	is_int(raw_get(ka, 21, &v, &n), -1, "drop race: ... and the record deleted");

	/* 'D' with a bad CRC; a fresh listing stored before the drop. */
	raw_get(kd, 21, &v, &n);
	v[n - 1] ^= 0x10;
	raw_put(kd, 21, v, n);
	free(v);
	vc = vc_open(path, 7, 262144);
	r.vc = vc;
	r.tag = 'D';
	r.da = da;
	r.l = l2;
	r.calls = 0;
	vc_set_drop_hook(vc, drop_race_store, &r);
	is_int(vc_get_dir(vc, &d, &got), -ENOENT, "drop race: a torn 'D' is a miss");
	vc_set_drop_hook(vc, NULL, NULL);
	got = NULL;
	ok(r.calls == 1 && vc_get_dir(vc, &d, &got) == 0 &&
		   same_listing(got, l2),
	   "drop race: the fresh listing is kept and reads right");
	vc_dir_put(got);
	got = NULL;
	vc_close(vc);

	/* 'X': written with a CRC; torn, then a fresh one meanwhile. */
	ok(raw_get(kx, 21, &vx, &nx) == 0 && vx[0] == VC_XATTR_CRC_VERSION,
	   "drop race: 'X' records are version %d (a CRC)", VC_XATTR_CRC_VERSION);
	vx[nx - 1] ^= 0x10;
	raw_put(kx, 21, vx, nx);
	vx[nx - 1] ^= 0x10;
	vc = vc_open(path, 7, 262144);
	r.vc = vc;
	r.tag = 'X';
	r.a = a;
	r.x = x2;
	r.calls = 0;
	vc_set_drop_hook(vc, drop_race_store, &r);
	is_int(vc_get_xattrs(vc, &f, &stamp, &xg, &n), -ENOENT,
	       "drop race: a torn 'X' is a miss");
	vc_set_drop_hook(vc, NULL, NULL);
	ok(r.calls == 1 && vc_get_xattrs(vc, &f, &stamp, &xg, &n) == 0 &&
		   n == 1 && stamp == 77 && !strcmp(xg[0].name, "user.new"),
	   "drop race: the fresh 'X' is kept and reads right");
	proto_xattrs_free(xg, n);
	xg = NULL;
	vc_close(vc);
	free(vx);
	vc_dir_put(l1);
	vc_dir_put(l2);
	unlink(path);
}

/*
 * 'X' records carry a CRC32C (version 2): every byte flipped, and an old
 * and a new record of the same size mixed at every cut (a torn in-place
 * overwrite: the new ctime stamp with the old values), read as a miss;
 * version 1 (an older cairnd's, no CRC) is still read.
 */
static void
test_xattr_crc(void)
{
	struct vc *vc;
	struct fid f = mkfid(7, 0x61);
	struct proto_xattr x1[1] = {{"user.k", "aaaa", 4}};
	struct proto_xattr x2[1] = {{"user.k", "bbbb", 4}};
	struct proto_xattr *got = NULL;
	uint8_t kx[21], *v1 = NULL, *v2 = NULL, *mix;
	uint8_t old[64];
	size_t n1, n2, n, ol = 0;
	int64_t stamp;
	int notmiss = 0, wrong = 0;

	unlink(path);
	fidkey(kx, 'X', &f);
	vc = vc_open(path, 7, 262144);
	vc_put_xattrs(vc, &f, 100, x1, 1);
	vc_close(vc);
	raw_get(kx, 21, &v1, &n1);
	vc = vc_open(path, 7, 262144);
	vc_put_xattrs(vc, &f, 200, x2, 1);
	vc_close(vc);
	raw_get(kx, 21, &v2, &n2);
	ok(v1 && v2 && n1 == n2 && v1[0] == VC_XATTR_CRC_VERSION,
	   "xattr crc: two 'X' records of version %d, %zu bytes",
	   VC_XATTR_CRC_VERSION, n1);
	for (size_t i = 0; v2 && i < n2; i++) {
		v2[i] ^= 0x5a;
		raw_put(kx, 21, v2, n2);
		v2[i] ^= 0x5a;
		vc = vc_open(path, 7, 262144);
		if (vc_get_xattrs(vc, &f, &stamp, &got, &n) != -ENOENT) {
			notmiss++;
			proto_xattrs_free(got, n);
		}
		got = NULL;
		if (vc_get_xattrs(vc, &f, &stamp, &got, &n) != -ENOENT)
			wrong++; /* dropped */
		vc_close(vc);
	}
	is_int(notmiss, 0, "xattr crc: each of the %zu bytes flipped is a miss",
	       n2);
	is_int(wrong, 0, "xattr crc: ... and it is dropped");
	mix = malloc(n1);
	notmiss = 0;
	for (size_t cut = 1; v1 && v2 && n1 == n2 && cut < n1; cut++) {
		memcpy(mix, v2, cut);
		memcpy(mix + cut, v1 + cut, n1 - cut);
		if (!memcmp(mix, v1, n1) || !memcmp(mix, v2, n1))
			continue;
		raw_put(kx, 21, mix, n1);
		vc = vc_open(path, 7, 262144);
		if (vc_get_xattrs(vc, &f, &stamp, &got, &n) != -ENOENT) {
			notmiss++;
			proto_xattrs_free(got, n);
		}
		got = NULL;
		vc_close(vc);
	}
	is_int(notmiss, 0, "xattr crc: old and new bytes mixed at any cut is a miss");
	free(mix);
	/* cairn-fsck's check finds a torn 'X' and, with repair, drops it. */
	{
		struct vc_check_result res;
		int errs = 0;

		v2[n2 - 1] ^= 0x01;
		raw_put(kx, 21, v2, n2);
		v2[n2 - 1] ^= 0x01;
		vc_check(path, 0, check_cb, &errs, &res);
		ok(errs == 1 && res.bad == 1,
		   "xattr crc: vc_check finds the torn 'X' (%d)", errs);
		errs = 0;
		vc_check(path, 1, check_cb, &errs, &res);
		ok(res.fixed == 1 && raw_get(kx, 21, &mix, &n) == -1,
		   "xattr crc: ... and repair deletes it");
		errs = 0;
		vc_check(path, 0, check_cb, &errs, &res);
		is_int(errs, 0, "xattr crc: then the check is clean");
	}
	/* Version 1: stamp, count, then the entry, no CRC. */
	old[ol++] = VC_REC_VERSION;
	for (int i = 0; i < 8; i++)
		old[ol++] = (uint8_t)((uint64_t)300 >> (8 * i));
	for (int i = 0; i < 8; i++)
		old[ol++] = i == 0 ? 1 : 0;
	old[ol++] = 6;
	old[ol++] = 0;
	memcpy(old + ol, "user.k", 6);
	ol += 6;
	old[ol++] = 2;
	old[ol++] = 0;
	old[ol++] = 0;
	old[ol++] = 0;
	memcpy(old + ol, "cc", 2);
	ol += 2;
	raw_put(kx, 21, old, ol);
	vc = vc_open(path, 7, 262144);
	ok(vc_get_xattrs(vc, &f, &stamp, &got, &n) == 0 && n == 1 &&
		   stamp == 300 && got[0].len == 2 &&
		   !memcmp(got[0].value, "cc", 2),
	   "xattr crc: a version 1 record (older cairnd) is still read");
	proto_xattrs_free(got, n);
	got = NULL;
	is_int(vc_damaged(vc), 0, "xattr crc: ... and not counted damaged");
	vc_close(vc);
	free(v1);
	free(v2);
	unlink(path);
}

static void
note_cb(void *arg, int error, const char *msg)
{
	int *c = arg;

	if (error)
		c[0]++;
	else if (strstr(msg, "needs recovery"))
		c[1]++;
}

/*
 * A file left in the middle of a transaction (a process killed after
 * tdb wrote its recovery data): tdb cannot open it read-only. vc_check()
 * without repair says it needs recovery and checks a recovered copy,
 * leaving the file as it is; with repair it is recovered (not removed).
 */
static void
test_check_recover(void)
{
	struct fid d = mkfid(7, 0x71), f = mkfid(7, 0x72);
	struct proto_attr da = mkattr(d, PROTO_T_DIR, 1);
	struct proto_attr a = mkattr(f, PROTO_T_FILE, 2), b;
	struct vc_check_result res;
	struct vc_dir *l, *got = NULL;
	struct vc *vc;
	struct stat st0, st1;
	struct tdb_context *t;
	int c[2] = {0, 0};
	pid_t pid;

	unlink(path);
	l = mklisting(&d, 1500, 1, 0);
	vc = vc_open(path, 7, 262144);
	vc_put_listing(vc, &da, l);
	vc_put_attr(vc, &a);
	vc_close(vc);
	pid = fork();
	if (pid == 0) {
		uint8_t kb[21], val[3] = {1, 2, 3};
		TDB_DATA k = {kb, 21}, v = {val, 3};

		t = tdb_open(path, 0, TDB_NOLOCK, O_RDWR, 0600);
		fidkey(kb, 'A', &f);
		if (!t || tdb_transaction_start(t) ||
		    tdb_store(t, k, v, TDB_REPLACE) ||
		    tdb_transaction_prepare_commit(t))
			_exit(1);
		_exit(0); /* killed before the commit */
	}
	{
		int st = -1;

		waitpid(pid, &st, 0);
		is_int(st, 0, "recover: a child left a transaction prepared");
	}
	t = tdb_open(path, 0, TDB_NOLOCK, O_RDONLY, 0600);
	ok(!t, "recover: tdb cannot open the file read-only");
	if (t)
		tdb_close(t);
	stat(path, &st0);
	is_int(vc_check(path, 0, note_cb, c, &res), 0,
	       "recover: the check runs (on a recovered copy)");
	ok(c[1] == 1 && res.recover == 1 && c[0] == 0 && res.records > 8,
	   "recover: it says 'needs recovery', no error (%d, %llu records)",
	   c[0], (unsigned long long)res.records);
	stat(path, &st1);
	ok(st0.st_size == st1.st_size && st0.st_mtim.tv_sec == st1.st_mtim.tv_sec &&
		   st0.st_mtim.tv_nsec == st1.st_mtim.tv_nsec,
	   "recover: the check left the file as it was");
	t = tdb_open(path, 0, TDB_NOLOCK, O_RDONLY, 0600);
	ok(!t, "recover: ... still to be recovered");
	if (t)
		tdb_close(t);
	c[0] = c[1] = 0;
	is_int(vc_check(path, 1, note_cb, c, &res), 0, "recover: repair runs");
	ok(c[0] == 0 && c[1] == 0 && res.recover == 0,
	   "recover: repair recovers it, nothing to fix");
	vc = vc_open(path, 7, 262144);
	ok(vc_get_attr(vc, &f, &b) == 0 && b.dv == a.dv,
	   "recover: the attribute before the killed transaction is kept");
	ok(vc_get_dir(vc, &d, &got) == 0 && same_listing(got, l),
	   "recover: and the listing");
	vc_dir_put(got);
	vc_close(vc);
	/* Not a tdb at all: still an error (-EIO). */
	{
		int fd = open(path, O_WRONLY | O_TRUNC);
		char junk[4096];

		memset(junk, 0x42, sizeof(junk));
		ok(fd >= 0 && write(fd, junk, sizeof(junk)) == sizeof(junk),
		   "recover: the file overwritten with junk");
		close(fd);
	}
	c[0] = c[1] = 0;
	is_int(vc_check(path, 0, note_cb, c, &res), -EIO,
	       "recover: junk is -EIO, not 'needs recovery'");
	is_int(c[1], 0, "recover: ... and no recovery note");
	vc_dir_put(l);
	unlink(path);
}

/*
 * Page ids never repeat: they come from the 'I' record's reservation,
 * not the clock. A process killed (here: a child that _exit()s without
 * vc_close(), so the file is not marked clean) hands out ids; the next
 * open starts past all of them, and past every id in the file when the
 * 'I' record is gone. Ids of an older cairnd (clock-based, < 2^63) never
 * meet ours.
 */
static void
test_page_ids(void)
{
	struct fid d = mkfid(7, 0x41), e = mkfid(7, 0x42);
	struct proto_attr da = mkattr(d, PROTO_T_DIR, 1);
	uint64_t ids[64], ids2[64], maxc = 0;
	size_t n, n2;
	int bad = 0;
	pid_t pid;
	struct vc *vc;
	struct vc_dir *l, *got = NULL;

	unlink(path);
	pid = fork();
	if (pid == 0) {
		vc = vc_open(path, 7, 262144);
		l = mklisting(&d, 3000, 1, 0);
		vc_put_listing(vc, &da, l);
		_exit(0); /* as kill -9: no vc_close() */
	}
	waitpid(pid, NULL, 0);
	n = dir_ids(&d, ids, 64);
	ok(n == 12, "ids: the killed process stored 12 pages");
	for (size_t i = 0; i < n; i++) {
		if (ids[i] < (UINT64_C(1) << 63))
			bad++;
		if (ids[i] > maxc)
			maxc = ids[i];
	}
	is_int(bad, 0, "ids: at or above 2^63 (apart from the clock's)");
	vc = vc_open(path, 7, 262144);
	ok(vc_get_dir(vc, &d, &got) == 0 && got->n == 3000,
	   "ids: its listing reads after the restart");
	vc_dir_put(got);
	got = NULL;
	l = mklisting(&e, 3000, 1, 3);
	da.fid = e;
	vc_put_listing(vc, &da, l);
	vc_dir_put(l);
	vc_close(vc);
	n2 = dir_ids(&e, ids2, 64);
	bad = 0;
	for (size_t i = 0; i < n2; i++)
		if (ids2[i] <= maxc)
			bad++;
	ok(n2 == 12 && bad == 0,
	   "ids: a restarted process starts past the killed one's ids");
	/* No 'I' record (lost, or a file of an older cairnd): the ids come
	 * from a pass over the file, past every id in it. */
	{
		struct tdb_context *t = tdb_open(path, 0, 0, O_RDWR, 0600);
		TDB_DATA k = {(uint8_t *)"I", 1};

		tdb_delete(t, k);
		tdb_close(t);
	}
	for (size_t i = 0; i < n2; i++)
		if (ids2[i] > maxc)
			maxc = ids2[i];
	vc = vc_open(path, 7, 262144);
	l = mklisting(&d, 500, 2, 5);
	da.fid = d;
	vc_put_listing(vc, &da, l);
	vc_dir_put(l);
	vc_close(vc);
	n = dir_ids(&d, ids, 64);
	bad = 0;
	for (size_t i = 0; i < n; i++)
		if (ids[i] <= maxc)
			bad++;
	ok(n == 2 && bad == 0, "ids: without 'I', past every id in the file");
	/* A torn 'I' record is the same as none. */
	{
		uint8_t *v;
		size_t vn;

		maxc = ids[0] > ids[1] ? ids[0] : ids[1];
		ok(raw_get((const uint8_t *)"I", 1, &v, &vn) == 0 && vn == 14,
		   "ids: the 'I' record (14 bytes)");
		v[7] ^= 0x80; /* its limit, far lower, CRC now wrong */
		raw_put((const uint8_t *)"I", 1, v, vn);
		free(v);
	}
	vc = vc_open(path, 7, 262144);
	l = mklisting(&e, 10, 3, 5);
	da.fid = e;
	vc_put_listing(vc, &da, l);
	vc_dir_put(l);
	vc_close(vc);
	n2 = dir_ids(&e, ids2, 64);
	ok(n2 == 1 && ids2[0] > maxc, "ids: a torn 'I' does not move ids back");
	/* A page key naming the top id (damage: keys carry no CRC) in a file
	 * without 'I': dropped, and the ids do not wrap to used ones. An
	 * orphan page far above every id of this process is the highest
	 * id in use (ids kept apart within the process would hide a wrap). */
	{
		uint8_t kb[29], val[16] = {VC_REC_VERSION, 1, 0, 0, 0};
		uint64_t far = (UINT64_C(1) << 63) + (UINT64_C(1) << 40);

		fidkey(kb, 'G', &e);
		for (int i = 0; i < 8; i++)
			kb[21 + i] = (uint8_t)(far >> (8 * i));
		raw_put(kb, 29, val, sizeof(val));
	}
	{
		uint8_t kb[29], val[16] = {VC_REC_VERSION, 1, 0, 0, 0};
		uint8_t *v;
		size_t vn;
		struct tdb_context *t;
		TDB_DATA k = {(uint8_t *)"I", 1};

		fidkey(kb, 'G', &e);
		memset(kb + 21, 0xff, 8);
		raw_put(kb, 29, val, sizeof(val));
		t = tdb_open(path, 0, 0, O_RDWR, 0600);
		tdb_delete(t, k);
		tdb_close(t);
		maxc = (UINT64_C(1) << 63) + (UINT64_C(1) << 40);
		vc = vc_open(path, 7, 262144);
		l = mklisting(&d, 1000, 4, 7);
		da.fid = d;
		is_int(vc_put_listing(vc, &da, l), 0,
		       "ids: a listing stored after a top id was seen");
		vc_dir_put(l);
		vc_close(vc);
		n = dir_ids(&d, ids, 64);
		bad = 0;
		for (size_t i = 0; i < n; i++)
			if (ids[i] <= maxc || ids[i] > UINT64_MAX - 65536)
				bad++;
		ok(n == 4 && bad == 0,
		   "ids: past the ids in use, no wrap (%zu ids, %d bad)", n,
		   bad);
		ok(raw_get(kb, 29, &v, &vn) == -1,
		   "ids: the page of the top id was swept");
	}
	unlink(path);
}

/*
 * A snapshot's pages dropped under it (vc_del_dir(): a forget, a removal
 * on the server) while another snapshot sharing its segments is kept:
 * storing that one later writes the pages again, so its listing never
 * names a missing page.
 */
static void
test_shared_pages(void)
{
	struct fid d = mkfid(7, 0x51);
	struct proto_attr da = mkattr(d, PROTO_T_DIR, 1), ea;
	struct vc *vc;
	struct vc_dir *s1, *s2 = NULL, *s3 = NULL, *got = NULL;

	unlink(path);
	vc = vc_open(path, 7, 262144);
	s1 = mklisting(&d, 2000, 1, 0);
	is_int(vc_put_listing(vc, &da, s1), 0, "shared: a listing stored");
	ea = mkattr(mkfid(7, 0xee), PROTO_T_FILE, 1);
	da.dv = 2;
	is_int(vc_dir_edit_flags(vc, s1, &da, NULL, "zz-new", &ea, &s2,
				 VC_E_NOSTORE),
	       0, "shared: an edit not stored yet shares its pages");
	is_int(vc_del_dir(vc, &d), 0, "shared: the listing is dropped");
	da.dv = 3;
	is_int(vc_dir_edit_flags(vc, s2, &da, NULL, NULL, NULL, &s3, 0), 0,
	       "shared: the edit stored later");
	is_int(vc_get_dir(vc, &d, &got), 0,
	       "shared: it reads back (no missing page)");
	ok(got && got->n == 2001 && vc_dir_find(got, "zz-new", 6) == 2000,
	   "shared: with every entry");
	vc_dir_put(got);
	got = NULL;
	is_int(vc_damaged(vc), 0, "shared: nothing was found damaged");
	/* And through vc_put_listing() of the old snapshot too. */
	vc_del_dir(vc, &d);
	da.dv = 1;
	is_int(vc_put_listing(vc, &da, s1), 0, "shared: the old one stored again");
	ok(vc_get_dir(vc, &d, &got) == 0 && same_listing(got, s1),
	   "shared: ... reads back");
	vc_dir_put(got);
	vc_close(vc);
	is_int(count_pages(&d), s1->nseg, "shared: the file holds its pages only");
	vc_dir_put(s1);
	vc_dir_put(s2);
	vc_dir_put(s3);
	unlink(path);
}

/*
 * Orphan pages (left by a kill between the steps of a store) are swept
 * by the next open of a file not closed cleanly; vc_check() (cairn-fsck)
 * reports them and, with repair, removes them, and finds damaged records.
 */
static void
test_sweep(void)
{
	struct fid d = mkfid(7, 0x61), o = mkfid(7, 0x62);
	struct proto_attr da = mkattr(d, PROTO_T_DIR, 1);
	struct vc_check_result res;
	struct vc *vc;
	struct vc_dir *l, *got = NULL;
	int errs = 0;
	pid_t pid;

	unlink(path);
	l = mklisting(&d, 2000, 1, 0);
	vc = vc_open(path, 7, 262144);
	vc_put_listing(vc, &da, l);
	vc_close(vc);
	errs = 0;
	is_int(vc_check(path, 0, check_cb, &errs, &res), 0, "sweep: check runs");
	ok(errs == 0 && res.orphans == 0 && res.bad == 0 && res.broken == 0 &&
		   res.records > 8,
	   "sweep: a clean file checks clean (%llu records)",
	   (unsigned long long)res.records);
	/* Orphans: pages of a directory no 'D' names, and extra pages of
	 * ours, written by a process then killed. */
	pid = fork();
	if (pid == 0) {
		uint8_t kb[29], val[16] = {VC_REC_VERSION, 1, 0, 0, 0};

		fidkey(kb, 'G', &o);
		for (int i = 0; i < 5; i++) {
			memset(kb + 21, 0, 8);
			kb[21] = (uint8_t)(i + 1);
			kb[28] = 0x80;
			raw_put(kb, 29, val, sizeof(val));
		}
		fidkey(kb, 'G', &d);
		memset(kb + 21, 0xee, 8);
		raw_put(kb, 29, val, sizeof(val));
		vc = vc_open(path, 7, 262144);
		_exit(vc ? 0 : 1); /* killed: the file is not marked clean */
	}
	waitpid(pid, NULL, 0);
	errs = 0;
	vc_check(path, 0, check_cb, &errs, &res);
	ok(errs == 6 && res.orphans == 6, "sweep: the check finds 6 orphans (%d)",
	   errs);
	vc = vc_open(path, 7, 262144);
	is_int(vc_swept(vc), 6, "sweep: the open after a kill sweeps them");
	ok(vc_get_dir(vc, &d, &got) == 0 && same_listing(got, l),
	   "sweep: the listing is kept");
	vc_dir_put(got);
	vc_close(vc);
	is_int(count_pages(&o), 0, "sweep: no page of the other directory");
	is_int(count_pages(&d), l->nseg, "sweep: the listing's pages only");
	errs = 0;
	vc_check(path, 0, check_cb, &errs, &res);
	is_int(errs, 0, "sweep: the check is clean after the sweep");
	/* A clean close is not swept at open (vc_check does find them). */
	{
		uint8_t kb[29], val[16] = {VC_REC_VERSION, 1, 0, 0, 0};

		fidkey(kb, 'G', &o);
		memset(kb + 21, 0x11, 8);
		raw_put(kb, 29, val, sizeof(val));
	}
	vc = vc_open(path, 7, 262144);
	is_int(vc_swept(vc), 0, "sweep: a cleanly closed file is not swept");
	vc_close(vc);
	/* A damaged 'A', a damaged page (its listing is broken), repair. */
	{
		struct proto_attr a = mkattr(mkfid(7, 0x63), PROTO_T_FILE, 1);
		uint8_t ka[21], *v;
		size_t vn;

		vc = vc_open(path, 7, 262144);
		vc_put_attr(vc, &a);
		vc_close(vc);
		fidkey(ka, 'A', &a.fid);
		raw_get(ka, 21, &v, &vn);
		v[vn - 1] ^= 0x10;
		raw_put(ka, 21, v, vn);
		free(v);
		count_pages(&d);
		raw_get(last_page, 29, &v, &vn);
		v[vn / 2] ^= 0x10;
		raw_put(last_page, 29, v, vn);
		free(v);
	}
	errs = 0;
	vc_check(path, 0, check_cb, &errs, &res);
	ok(res.orphans == 1 && res.bad == 1 && res.broken == 1 && errs == 3,
	   "sweep: check finds an orphan, a bad record and a broken listing");
	errs = 0;
	is_int(vc_check(path, 1, check_cb, &errs, &res), 0, "sweep: repair");
	ok(res.fixed == 3 && errs == 3, "sweep: repair fixes all three (%llu)",
	   (unsigned long long)res.fixed);
	errs = 0;
	vc_check(path, 0, check_cb, &errs, &res);
	ok(errs == 0 && res.orphans + res.bad + res.broken == 0,
	   "sweep: clean after the repair");
	is_int(count_pages(&d), 0, "sweep: the broken listing's pages went");
	vc = vc_open(path, 7, 262144);
	is_int(vc_get_dir(vc, &d, &got), -ENOENT,
	       "sweep: the broken listing is a miss (fetched again)");
	vc_close(vc);
	/* A torn 'D' met by a store (no read first): the store writes every
	 * page anew, and the close sweeps the pages the torn one named. */
	{
		uint8_t kd[21], *v;
		size_t vn;
		struct vc_dir *l2 = mklisting(&d, 1500, 2, 9);

		vc = vc_open(path, 7, 262144);
		vc_put_listing(vc, &da, l);
		vc_close(vc);
		fidkey(kd, 'D', &d);
		raw_get(kd, 21, &v, &vn);
		v[vn - 3] ^= 0x40;
		raw_put(kd, 21, v, vn);
		free(v);
		vc = vc_open(path, 7, 262144);
		is_int(vc_put_listing(vc, &da, l2), 0,
		       "sweep: a store over a torn 'D'");
		ok(vc_get_dir(vc, &d, &got) == 0 && same_listing(got, l2),
		   "sweep: ... reads back");
		vc_dir_put(got);
		got = NULL;
		vc_close(vc);
		is_int(count_pages(&d), l2->nseg,
		       "sweep: the close swept the torn one's pages");
		errs = 0;
		vc_check(path, 0, check_cb, &errs, &res);
		is_int(errs, 0, "sweep: the file checks clean");
		vc_dir_put(l2);
	}
	/* An older cairnd ran on the file: it dropped our 'D' (version 3,
	 * unknown to it) without its pages and wrote its own (version 1
	 * here). The file was closed cleanly, so the open does not sweep;
	 * reading the old-version 'D' makes the close sweep. */
	{
		uint8_t v[1 + 16 + 24] = {VC_REC_VERSION, 9};

		vc = vc_open(path, 7, 262144);
		vc_put_listing(vc, &da, l);
		vc_close(vc);
		v[9] = 1; /* one entry */
		v[17] = 1;
		v[19] = 'a';
		v[20] = PROTO_T_FILE;
		v[21] = 7;
		poke('D', &d, v, sizeof(v));
		ok(count_pages(&d) == l->nseg, "sweep: old cairnd: our pages left");
		vc = vc_open(path, 7, 262144);
		is_int(vc_swept(vc), 0, "sweep: old cairnd: not swept at open");
		ok(vc_get_dir(vc, &d, &got) == 0 && got->n == 1,
		   "sweep: old cairnd: its listing reads");
		vc_dir_put(got);
		got = NULL;
		vc_close(vc);
		is_int(count_pages(&d), 1,
		       "sweep: old cairnd: swept at close (left: the page of "
		       "its listing, now in our format)");
		{
			uint64_t ids[4];

			is_int(dir_ids(&d, ids, 4), 1,
			       "sweep: old cairnd: its 'D' was rewritten as "
			       "version 3 when read");
		}
		vc = vc_open(path, 7, 262144);
		ok(vc_get_dir(vc, &d, &got) == 0 && got->n == 1 &&
			   !strcmp(vc_dir_ent(got, 0)->name, "a"),
		   "sweep: old cairnd: ... and reads the same");
		vc_dir_put(got);
		got = NULL;
		vc_close(vc);
	}
	/* A version-2 'D' (no CRC) of an older cairnd: read, and rewritten
	 * as version 3 naming the same pages. */
	{
		uint8_t kd[21], *v;
		size_t vn;
		uint64_t ids[64];

		vc = vc_open(path, 7, 262144);
		vc_put_listing(vc, &da, l);
		vc_close(vc);
		fidkey(kd, 'D', &d);
		raw_get(kd, 21, &v, &vn);
		v[4] = VC_DIR_VERSION; /* version 2 = the same without CRC */
		raw_put(kd, 21, v + 4, vn - 4);
		free(v);
		is_int(dir_ids(&d, ids, 64), 0, "v2: the 'D' is version 2");
		vc = vc_open(path, 7, 262144);
		ok(vc_get_dir(vc, &d, &got) == 0 && same_listing(got, l),
		   "v2: a version-2 listing reads");
		vc_dir_put(got);
		got = NULL;
		vc_close(vc);
		is_int(dir_ids(&d, ids, 64), l->nseg,
		       "v2: rewritten as version 3, the same pages");
		is_int(count_pages(&d), l->nseg, "v2: no page written or lost");
		errs = 0;
		vc_check(path, 0, check_cb, &errs, &res);
		is_int(errs, 0, "v2: the file checks clean");
	}
	is_int(vc_check("/nonexistent/meta.tdb", 0, check_cb, &errs, &res),
	       -ENOENT, "sweep: no file is -ENOENT");
	vc_dir_put(l);
	unlink(path);
}

/*
 * kill -9 in the middle of stored edits: a child edits a listing of
 * 20,000 entries (each edit stored: its page(s), then its 'D' record,
 * overwritten in place when its size does not change) and is killed at
 * a random moment, 40 times over one file. After each kill the listing
 * reads as the one of the last acknowledged edit or of the edit in
 * flight, or is a miss (dropped as damaged, then "fetched" again: stored
 * from the model), never anything else; the open after the kill sweeps
 * what the kill left, so a check after a clean close is clean. tdb's own
 * structure is checked too (tdb_check()) after each kill and each clean
 * close: a kill inside a tdb store can leak space or leave tdb's free
 * list naming space twice (cm/vc.c, "tdb's own structure after a kill"),
 * and the open after the kill must rebuild such a file. Before it did,
 * the two shared bytes later showed as garbage keys in every check
 * (TSan, CI), and every run failed the tdb_check() after a close.
 * A failing round says what vc_check() found (which invariant, which
 * FID and page). VC_KILL_ONLY=1 runs only this test; VC_KILL_ROUNDS and
 * VC_KILL_SEED change it; VC_KILL_KEEP=FILE keeps a copy of the file
 * at the first kill that left tdb_check() failing.
 */
#define KE_BASE 20000
#define KE_KEPT 64

/* tdb's own structure (hash chains, free list, every byte in exactly one
 * record) of the file at @p: 1 consistent, 0 not, -1 cannot open. */
static int
tdb_structure_ok(const char *p)
{
	struct tdb_context *t = tdb_open(p, 0, TDB_NOLOCK, O_RDONLY, 0600);
	int ok;

	if (!t)
		return -1;
	ok = tdb_check(t, NULL, NULL) == 0;
	tdb_close(t);
	return ok;
}

/* vc_check()'s findings in a kill round: counted, the first few said. */
struct ke_check {
	int round, errs;
};

static void
ke_check_cb(void *arg, int error, const char *msg)
{
	struct ke_check *c = arg;

	if (!error)
		return;
	if (c->errs++ < 5)
		diag("kill: round %d: vc_check: %s", c->round, msg);
}

static void
ke_name(char *b, size_t n, int k, bool *add, int *idx)
{
	/* step k: add "bNNNNNN-k", or remove "bNNNNNN" every third step */
	*add = k % 3 != 0;
	*idx = *add ? (int)(((long)k * 7919) % KE_BASE)
		    : (int)(((long)k * 104729) % KE_BASE);
	if (*add)
		snprintf(b, n, "b%06d-%d", *idx, k);
	else
		snprintf(b, n, "b%06d", *idx);
}

/* The model after steps [0, upto): 1 = present. */
struct ke_model {
	char (*extra)[24];
	int nextra;
	bool base[KE_BASE];
};

static void
ke_apply(struct ke_model *m, int k)
{
	char nm[24];
	bool add;
	int idx;

	ke_name(nm, sizeof(nm), k, &add, &idx);
	if (add)
		memcpy(m->extra[m->nextra++], nm, sizeof(nm));
	else
		m->base[idx] = false;
}

static int
ke_matches(const struct vc_dir *d, const struct ke_model *m)
{
	size_t n = 0;
	char nm[24];

	for (int i = 0; i < KE_BASE; i++) {
		if (!m->base[i])
			continue;
		n++;
		snprintf(nm, sizeof(nm), "b%06d", i);
		if (vc_dir_find(d, nm, strlen(nm)) < 0)
			return 0;
	}
	for (int i = 0; i < m->nextra; i++)
		if (vc_dir_find(d, m->extra[i], strlen(m->extra[i])) < 0)
			return 0;
	return d->n == n + (size_t)m->nextra;
}

static struct vc_dir *
ke_build(const struct fid *d, const struct ke_model *m, uint64_t dv)
{
	struct vc_dirb b = {0};
	struct fid e = mkfid(7, 0x71);
	char nm[24];

	for (int i = 0; i < KE_BASE; i++)
		if (m->base[i]) {
			snprintf(nm, sizeof(nm), "b%06d", i);
			vc_dirb_add(&b, nm, PROTO_T_FILE, &e);
		}
	for (int i = 0; i < m->nextra; i++)
		vc_dirb_add(&b, m->extra[i], PROTO_T_FILE, &e);
	return vc_dirb_finish(&b, d, dv);
}

static void
test_kill_edits(void)
{
	enum { MAXSTEPS = 200000 };
	const char *env = getenv("VC_KILL_ROUNDS");
	int ROUNDS = env ? atoi(env) : 40;
	struct fid d = mkfid(7, 0x70);
	struct proto_attr da = mkattr(d, PROTO_T_DIR, 1);
	struct ke_model *m = calloc(1, sizeof(*m)), *m2 = calloc(1, sizeof(*m2));
	struct vc_check_result res;
	struct vc *vc;
	struct vc_dir *l, *got = NULL;
	int step = 0, bad = 0, dropped = 0, inflight = 0, torn = 0, rc;
	int kept_lost = 0;
	struct fid kept[KE_KEPT];
	unsigned seed = getenv("VC_KILL_SEED") ?
				(unsigned)atoi(getenv("VC_KILL_SEED")) : 2330;
	struct ke_check kc;
	uint64_t swept, rebuilt;

	m->extra = calloc(MAXSTEPS, sizeof(*m->extra));
	m2->extra = calloc(MAXSTEPS, sizeof(*m2->extra));
	for (int i = 0; i < KE_BASE; i++)
		m->base[i] = true;
	unlink(path);
	vc = vc_open(path, 7, 262144);
	l = ke_build(&d, m, 1);
	vc_put_listing(vc, &da, l);
	vc_dir_put(l);
	/* Records no edit touches (attributes of other objects): a kill
	 * that leaves tdb's structure inconsistent must not cost them (the
	 * open's rebuild keeps what the chains name; it used to refuse
	 * every file that held a dead record, and the file was emptied). */
	for (int i = 0; i < KE_KEPT; i++) {
		struct proto_attr ka;

		kept[i] = mkfid(7, 0x80);
		kept[i].oid[0] = (uint8_t)i;
		ka = mkattr(kept[i], PROTO_T_FILE, 5);
		vc_put_attr(vc, &ka);
	}
	vc_close(vc);
	for (int r = 0; r < ROUNDS; r++) {
		int pfd[2], last = -1, v, fl;
		pid_t pid;

		if (pipe(pfd))
			break;
		pid = fork();
		if (pid == 0) {
			struct vc_dir *cur = NULL, *nw;
			struct proto_attr ea = mkattr(mkfid(7, 0x71), PROTO_T_FILE, 1);

			close(pfd[0]);
			vc = vc_open(path, 7, 262144);
			if (!vc || vc_get_dir(vc, &d, &cur))
				_exit(3);
			v = -1;
			if (write(pfd[1], &v, sizeof(v)) != sizeof(v))
				_exit(4);
			for (int k = step; k < MAXSTEPS; k++) {
				char nm[24];
				bool add;
				int idx;

				ke_name(nm, sizeof(nm), k, &add, &idx);
				da.dv = (uint64_t)k + 2;
				if (vc_dir_edit_flags(vc, cur, &da, add ? NULL : nm,
						      add ? nm : NULL, &ea, &nw,
						      0))
					_exit(5);
				vc_dir_put(cur);
				cur = nw;
				if (write(pfd[1], &k, sizeof(k)) != sizeof(k))
					_exit(4);
			}
			_exit(0);
		}
		close(pfd[1]);
		/* Ready (opened, read), then a random moment. */
		if (read(pfd[0], &v, sizeof(v)) != sizeof(v)) {
			bad++;
			close(pfd[0]);
			waitpid(pid, NULL, 0);
			break;
		}
		seed = seed * 1103515245u + 12345u;
		usleep(5000 + (seed >> 8) % 60000);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		while (read(pfd[0], &v, sizeof(v)) == sizeof(v))
			last = v;
		close(pfd[0]);
		if (tdb_structure_ok(path) != 1) {
			torn++;
			diag("kill: round %d: the kill left tdb's structure "
			     "inconsistent (tdb_check fails)", r);
			if (torn == 1 && getenv("VC_KILL_KEEP")) {
				char cmd[600];

				snprintf(cmd, sizeof(cmd), "cp %s %s", path,
					 getenv("VC_KILL_KEEP"));
				if (system(cmd))
					diag("kill: cannot keep the file");
			}
		}
		/* The acknowledged steps, then the one in flight maybe. */
		for (int k = step; k <= last; k++)
			ke_apply(m, k);
		memcpy(m2->base, m->base, sizeof(m->base));
		memcpy(m2->extra, m->extra, (size_t)m->nextra * sizeof(*m->extra));
		m2->nextra = m->nextra;
		/* The edit in flight: the one after the last acknowledged,
		 * or this round's first if none was (a slow child: TSan). */
		fl = last + 1 > step ? last + 1 : step;
		ke_apply(m2, fl);
		vc = vc_open(path, 7, 262144);
		for (int i = 0; i < KE_KEPT; i++) {
			struct proto_attr ka;

			if (vc_get_attr(vc, &kept[i], &ka) != 0)
				kept_lost++;
		}
		got = NULL;
		if (vc_get_dir(vc, &d, &got) == -ENOENT) {
			dropped++;
			da.dv = 1;
			l = ke_build(&d, m, 1); /* fetched again */
			vc_put_listing(vc, &da, l);
			vc_dir_put(l);
		} else if (got && ke_matches(got, m)) {
			;
		} else if (got && ke_matches(got, m2)) {
			inflight++;
			memcpy(m->base, m2->base, sizeof(m->base));
			memcpy(m->extra, m2->extra,
			       (size_t)m2->nextra * sizeof(*m->extra));
			m->nextra = m2->nextra;
			last = fl;
		} else {
			bad++;
			diag("kill: round %d: a listing of %zu entries, neither "
			     "step %d nor the next", r, got ? got->n : 0, last);
		}
		vc_dir_put(got);
		step = last + 1 > step ? last + 1 : step;
		swept = vc_swept(vc);
		rebuilt = vc_rebuilt(vc);
		vc_close(vc);
		kc = (struct ke_check){.round = r};
		rc = vc_check(path, 0, ke_check_cb, &kc, &res);
		if (tdb_structure_ok(path) != 1) {
			bad++;
			diag("kill: round %d: after the clean close, tdb_check "
			     "fails (the open rebuilt the file: %llu)",
			     r, (unsigned long long)rebuilt);
		}
		if (rc || kc.errs) {
			bad++;
			diag("kill: round %d: vc_check returned %d, %d errors "
			     "(%llu records, %llu bad, %llu orphans, %llu "
			     "broken, recover %d); the open had swept %llu "
			     "orphans; acknowledged up to step %d",
			     r, rc, kc.errs, (unsigned long long)res.records,
			     (unsigned long long)res.bad,
			     (unsigned long long)res.orphans,
			     (unsigned long long)res.broken, res.recover,
			     (unsigned long long)swept, last);
		}
	}
	is_int(bad, 0, "kill: %d kills during stored edits (%d edits): every "
		       "listing is the acknowledged one or the one in flight, "
		       "the file checks clean", ROUNDS, step);
	is_int(kept_lost, 0, "kill: the %d records no edit touched are there "
			     "after every kill (%d left tdb's structure "
			     "inconsistent: rebuilt, not emptied)",
	       KE_KEPT, torn);
	diag("kill: %d listings had the edit in flight, %d were dropped as "
	     "damaged, %d kills left tdb's structure inconsistent", inflight,
	     dropped, torn);
	free(m->extra);
	free(m2->extra);
	free(m);
	free(m2);
	unlink(path);
}

/* The whole of @path, for "the check changed nothing". */
static char *
file_bytes(const char *p, size_t *n)
{
	struct stat st;
	char *b = NULL;
	int fd = open(p, O_RDONLY);

	*n = 0;
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) == 0 && (b = malloc((size_t)st.st_size + 1)) &&
	    pread(fd, b, (size_t)st.st_size, 0) == st.st_size)
		*n = (size_t)st.st_size;
	close(fd);
	return b;
}

/*
 * tdb's own structure damaged in a file closed cleanly (so no open
 * sweeps or rebuilds it): vc_check() finds it in bounded time (alarm;
 * a walk of the loop would never end), reports it and changes nothing;
 * repair rebuilds what the hash chains still reach as an unclean open
 * would (the result checks clean and a vc_open reads the listing), or
 * fails (a loop, a record tdb cannot read: cairn-fsck then removes the
 * file, cairnd empties it), leaving the file to its caller.
 */
static void
test_layout(void)
{
	static const struct {
		int kind;
		const char *name;
		bool rebuilds;
	} cases[] = {
		{'l', "a hash chain that loops", false},
		{'o', "two records overlapping", true},
		{'p', "a record length past the end", false},
	};
	struct fid d = mkfid(7, 0x71);
	struct proto_attr da = mkattr(d, PROTO_T_DIR, 1);
	struct vc_check_result res;
	struct vc_dir *l = mklisting(&d, 3000, 1, 0), *got = NULL;
	struct vc *vc;
	char *before, *after;
	size_t nb, na;
	int errs, rc;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *nm = cases[i].name;

		unlink(path);
		vc = vc_open(path, 7, 262144);
		vc_put_listing(vc, &da, l);
		for (int j = 0; j < 300; j++) {
			struct proto_attr a =
				mkattr(mkfid(7, 0x1000 + j), PROTO_T_FILE, 1);

			vc_put_attr(vc, &a);
		}
		vc_close(vc);
		is_int(tdb_damage_layout(path, cases[i].kind), 0,
		       "layout: %s: made", nm);
		before = file_bytes(path, &nb);
		alarm(30);
		errs = 0;
		is_int(vc_check(path, 0, check_cb, &errs, &res), 0,
		       "layout: %s: check runs", nm);
		ok(errs == 1 && res.layout == 1 && res.fixed == 0 &&
			   (cases[i].rebuilds ? res.kept > 100 : res.kept == 0),
		   "layout: %s: one error, tdb's structure (a rebuild would "
		   "keep %llu)",
		   nm, (unsigned long long)res.kept);
		after = file_bytes(path, &na);
		ok(before && after && na == nb && !memcmp(before, after, nb),
		   "layout: %s: the check changed nothing", nm);
		free(after);
		errs = 0;
		rc = vc_check(path, 1, check_cb, &errs, &res);
		if (!cases[i].rebuilds) {
			after = file_bytes(path, &na);
			ok(rc == -EUCLEAN && res.layout == 1 && errs == 1 &&
				   na == nb && !memcmp(before, after, nb),
			   "layout: %s: repair cannot rebuild it: -EUCLEAN, "
			   "the file left to the caller (%d)",
			   nm, rc);
			free(after);
			free(before);
			alarm(0);
			continue;
		}
		free(before);
		ok(rc == 0 && res.layout == 1 && res.fixed >= 1,
		   "layout: %s: repair rebuilt it (%llu records kept, %llu "
		   "fixed)",
		   nm, (unsigned long long)res.kept,
		   (unsigned long long)res.fixed);
		errs = 0;
		vc_check(path, 0, check_cb, &errs, &res);
		ok(errs == 0 && res.layout == 0,
		   "layout: %s: the file checks clean after the repair", nm);
		alarm(0);
		vc = vc_open(path, 7, 262144);
		ok(vc && vc_get_dir(vc, &d, &got) == 0 && same_listing(got, l),
		   "layout: %s: the listing reads after the repair", nm);
		vc_dir_put(got);
		got = NULL;
		vc_close(vc);
	}
	vc_dir_put(l);
	unlink(path);
}

/* The directory of step @k of the room tests, with @n entries. */
static struct proto_dir
room_dir(int k, size_t n, struct proto_dirent *ents, char (*names)[16])
{
	struct proto_dir pd;
	struct fid f = mkfid(7, 0x90);

	f.oid[1] = (uint8_t)k;
	f.oid[2] = (uint8_t)(k >> 8);
	f.oid[3] = (uint8_t)(k >> 16);
	memset(&pd, 0, sizeof(pd));
	pd.dir = mkattr(f, PROTO_T_DIR, 1);
	for (size_t i = 0; i < n; i++) {
		struct fid e = f;

		e.oid[0] = 0x91;
		e.oid[4] = (uint8_t)i;
		e.oid[5] = (uint8_t)(i >> 8);
		snprintf(names[i], 16, "e%u", (unsigned)i);
		ents[i].name = names[i];
		ents[i].attr = mkattr(e, PROTO_T_FILE, 1);
	}
	pd.n = n;
	pd.ents = ents;
	return pd;
}

/*
 * Issue #17: vc_put_dir()'s transaction (an offline mkdir) on a meta.tdb
 * whose free list is used up. tdb grows the file by a quarter when a
 * store does not fit, and inside a transaction that growth is zeros in
 * the transaction's blocks, resident until the commit: 4 MiB for a
 * 16 MiB file. vc_put_dir() makes the room first (tdbw_reserve()).
 */
static void
test_put_dir_room(void)
{
	struct proto_dirent ents[64];
	char names[64][16];
	struct proto_dir pd;
	struct tdb_context *t;
	struct stat st;
	struct vc *vc;
	struct vc_dir *got = NULL;
	long rss0, hwm;
	int rc = 0, i;

	unlink(path);
	vc = vc_open(path, 7, 262144);
	for (i = 0; vc && rc == 0 && i < 1000000; i++) {
		struct fid f = mkfid(7, 0x92);
		struct proto_attr a;

		if (i % 1000 == 0 &&
		    (stat(path, &st) || st.st_size >= 16 << 20))
			break;
		memcpy(f.oid, &i, sizeof(i));
		a = mkattr(f, PROTO_T_FILE, 1);
		rc = vc_put_attr(vc, &a);
	}
	ok(vc && rc == 0 && !stat(path, &st) && st.st_size >= 16 << 20,
	   "room: 16 MiB of attributes");
	vc_close(vc);
	t = tdb_open(path, 0, TDB_NOLOCK, O_RDWR, 0600);
	ok(t && tdb_damage_use_free(t, "fill", 1024) >= 0,
	   "room: its free list used up (records a sweep ignores)");
	if (t)
		tdb_close(t);
	vc = vc_open(path, 7, 262144);
	ok(vc != NULL, "room: opened again");
	if (!vc)
		return;
	pd = room_dir(0, 64, ents, names);
	/* Free heap pages back to the system, so that what the call
	 * allocates shows in VmHWM. */
	malloc_trim(0);
	if (MEM_MEASURED && hwm_reset() == 0 &&
	    (rss0 = status_kb("VmRSS")) > 0) {
		is_int(vc_put_dir(vc, &pd), 0, "room: an offline mkdir");
		hwm = status_kb("VmHWM");
		/* ~3.5 MB with the room made first (the hash table's copy
		 * and its pages, the blocks, the recovery data); ~11 MB
		 * when the transaction grows the file. */
		ok(hwm - rss0 < 6144,
		   "room: its peak memory %ld kB (< 6 MiB; the 4 MiB growth "
		   "inside the transaction would add ~7 MB)",
		   hwm - rss0);
	} else {
		is_int(vc_put_dir(vc, &pd), 0, "room: an offline mkdir");
		skip(1, "memory not measured (sanitizers, or no "
			"/proc/self/clear_refs)");
	}
	ok(vc_get_dir(vc, &pd.dir.fid, &got) == 0 && got && got->n == 64,
	   "room: its listing reads");
	vc_dir_put(got);
	vc_close(vc);
	is_int(tdb_structure_ok(path), 1, "room: tdb_check() accepts the file");
	t = tdb_open(path, 0, TDB_NOLOCK, O_RDONLY, 0600);
	ok(t && !tdb_exists(t, (TDB_DATA){(unsigned char *)TDBW_RESERVE_KEY,
					  TDBW_RESERVE_KEY_LEN}),
	   "room: no reserve record left");
	if (t)
		tdb_close(t);
	/* What a kill between the reserve's store and delete leaves: the
	 * record, in a file not closed cleanly (a child opens and dies). */
	t = tdb_open(path, 0, TDB_NOLOCK, O_RDWR, 0600);
	ok(t && tdb_store(t,
			  (TDB_DATA){(unsigned char *)TDBW_RESERVE_KEY,
				     TDBW_RESERVE_KEY_LEN},
			  (TDB_DATA){(unsigned char *)names, 1000},
			  TDB_INSERT) == 0,
	   "room: a reserve record left behind");
	if (t)
		tdb_close(t);
	if (fork() == 0)
		_exit(vc_open(path, 7, 262144) ? 0 : 1);
	wait(&rc);
	ok(WIFEXITED(rc) && WEXITSTATUS(rc) == 0,
	   "room: a child opened it and died");
	vc = vc_open(path, 7, 262144);
	ok(vc && vc_get_dir(vc, &pd.dir.fid, &got) == 0 && got && got->n == 64,
	   "room: the open after it: the listing reads");
	vc_dir_put(got);
	if (vc)
		vc_close(vc);
	t = tdb_open(path, 0, TDB_NOLOCK, O_RDONLY, 0600);
	ok(t && !tdb_exists(t, (TDB_DATA){(unsigned char *)TDBW_RESERVE_KEY,
					  TDBW_RESERVE_KEY_LEN}),
	   "room: the unclean open deleted the reserve record");
	if (t)
		tdb_close(t);
	unlink(path);
}

/*
 * vc_put_dir() (reserve, then the transaction) killed at random moments:
 * the next open leaves a file tdb_check() accepts, every acknowledged
 * directory there and no reserve record. VC_KILL_ROUNDS as above.
 */
static void
test_kill_put_dir(void)
{
	const char *env = getenv("VC_KILL_ROUNDS");
	int rounds = env ? atoi(env) / 2 : 20, step = 0, bad = 0, torn = 0;
	unsigned seed = 1717;
	struct proto_dirent ents[16];
	char names[16][16];
	struct tdb_context *t;
	struct vc *vc;

	unlink(path);
	vc = vc_open(path, 7, 262144);
	vc_close(vc);
	for (int r = 0; r < rounds; r++) {
		int pfd[2], last = -1, v;
		pid_t pid;

		if (pipe(pfd))
			break;
		pid = fork();
		if (pid == 0) {
			close(pfd[0]);
			vc = vc_open(path, 7, 262144);
			if (!vc)
				_exit(3);
			v = -1;
			if (write(pfd[1], &v, sizeof(v)) != sizeof(v))
				_exit(4);
			for (int k = step; k < step + 100000; k++) {
				struct proto_dir pd = room_dir(
					k, (size_t)k % 16, ents, names);

				if (vc_put_dir(vc, &pd))
					_exit(5);
				if (write(pfd[1], &k, sizeof(k)) != sizeof(k))
					_exit(4);
			}
			_exit(0);
		}
		close(pfd[1]);
		if (read(pfd[0], &v, sizeof(v)) != sizeof(v)) {
			bad++;
			close(pfd[0]);
			waitpid(pid, NULL, 0);
			break;
		}
		seed = seed * 1103515245u + 12345u;
		usleep(5000 + (seed >> 8) % 60000);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		while (read(pfd[0], &v, sizeof(v)) == sizeof(v))
			last = v;
		close(pfd[0]);
		if (tdb_structure_ok(path) != 1)
			torn++;
		vc = vc_open(path, 7, 262144);
		if (!vc) {
			bad++;
			diag("kill put_dir: round %d: open fails", r);
			break;
		}
		for (int k = step; k <= last; k++) {
			struct proto_dir pd =
				room_dir(k, (size_t)k % 16, ents, names);
			struct vc_dir *got = NULL;

			if (vc_get_dir(vc, &pd.dir.fid, &got) != 0 ||
			    got->n != pd.n) {
				if (bad++ < 5)
					diag("kill put_dir: round %d: step %d "
					     "lost",
					     r, k);
			}
			vc_dir_put(got);
		}
		vc_close(vc);
		if (tdb_structure_ok(path) != 1 && bad++ < 5)
			diag("kill put_dir: round %d: tdb_check fails after "
			     "the open",
			     r);
		t = tdb_open(path, 0, TDB_NOLOCK, O_RDONLY, 0600);
		if (!t ||
		    tdb_exists(t, (TDB_DATA){(unsigned char *)TDBW_RESERVE_KEY,
					     TDBW_RESERVE_KEY_LEN})) {
			if (bad++ < 5)
				diag("kill put_dir: round %d: a reserve record "
				     "after the open",
				     r);
		}
		if (t)
			tdb_close(t);
		if (last + 1 > step)
			step = last + 1;
	}
	diag("kill put_dir: %d rounds, %d steps, %d kills left tdb's "
	     "structure to repair",
	     rounds, step, torn);
	is_int(bad, 0,
	       "kill put_dir: every open after a kill finds the "
	       "acknowledged directories and a sound file");
	unlink(path);
}

/* The flags byte of 'A' records (VC_ATTR_SERVER): written after the rdev
 * within version 3; a version-3 record without it (an older cairnd's)
 * reads as flags 0, so nothing is taken for the server's that was not
 * marked so. */
static void
test_attr_flags(void)
{
	struct fid f = mkfid(7, 0x31), g = mkfid(7, 0x32);
	struct proto_attr a = mkattr(f, PROTO_T_FILE, 3),
			  ga = mkattr(g, PROTO_T_FILE, 4), b;
	uint8_t kb[21], *v = NULL;
	unsigned flags = 99;
	size_t n = 0, n0 = 0;
	struct vc *vc;
	uint32_t c;

	unlink(path);
	vc = vc_open(path, 7, 262144);
	is_int(vc_put_attrs_flags(vc, &a, 1, VC_ATTR_SERVER), 0,
	       "flags: put the server's own");
	ok(vc_get_attr_flags(vc, &f, &b, &flags) == 0 &&
		   !memcmp(&a, &b, sizeof(a)) && flags == VC_ATTR_SERVER,
	   "flags: read back with VC_ATTR_SERVER");
	ok(vc_get_attr(vc, &f, &b) == 0 && !memcmp(&a, &b, sizeof(a)),
	   "flags: vc_get_attr() reads it as ever");
	vc_put_attr(vc, &ga);
	ok(vc_get_attr_flags(vc, &g, &b, &flags) == 0 && flags == 0,
	   "flags: vc_put_attr() writes none");
	vc_close(vc);

	kb[0] = 'A';
	for (int i = 0; i < 4; i++)
		kb[1 + i] = (uint8_t)(g.vol >> (8 * i));
	memcpy(kb + 5, g.oid, 16);
	ok(raw_get(kb, sizeof(kb), &v, &n0) == 0 && v[0] == VC_ATTR_CRC_VERSION,
	   "flags: still version 3");
	free(v);
	for (int i = 0; i < 4; i++)
		kb[1 + i] = (uint8_t)(f.vol >> (8 * i));
	memcpy(kb + 5, f.oid, 16);
	if (raw_get(kb, sizeof(kb), &v, &n) == 0 && n == n0 && n > 6) {
		/* As an older cairnd wrote it: no flags byte, its CRC. */
		ok(v[n - 1] == VC_ATTR_SERVER, "flags: the last byte");
		n--;
		c = crc32c(0, v + 5, n - 5);
		for (int i = 0; i < 4; i++)
			v[1 + i] = (uint8_t)(c >> (8 * i));
		poke('A', &f, v, n);
	} else {
		ok(0, "flags: the raw record, one size for both");
	}
	free(v);
	vc = vc_open(path, 7, 262144);
	flags = 99;
	ok(vc_get_attr_flags(vc, &f, &b, &flags) == 0 &&
		   !memcmp(&a, &b, sizeof(a)) && flags == 0,
	   "flags: an older cairnd's version 3 reads, flags 0");
	vc_close(vc);
	unlink(path);
}

/*
 * Page sizes (page_pad() in cm/vc.c): a page's value ends with zeros up
 * to its size class (256 bytes, or the power of two at most an eighth of
 * the page); a page of the same version without the pad (an older
 * cairnd's) reads and checks clean; a pad with a byte set, its CRC right,
 * is damage: the read drops the listing, vc_check() reports it.
 */
static void
test_page_pad(void)
{
	struct vc *vc;
	struct fid d = mkfid(7, 77);
	struct proto_attr da = mkattr(d, PROTO_T_DIR, 1);
	struct vc_dirb b = {0};
	struct vc_dir *cur, *back = NULL;
	struct vc_check_result res;
	uint8_t *v = NULL;
	size_t n = 0, exact = 9, g = 256, want;
	char name[16];
	uint32_t c;
	int errs = 0, zeros = 1;

	unlink(path);
	vc = vc_open(path, 7, 262144);
	for (int i = 0; i < 200; i++) {
		struct fid f = mkfid(7, 0);

		f.oid[1] = (uint8_t)i;
		f.oid[2] = 0x5a;
		snprintf(name, sizeof(name), "p%05d", i);
		vc_dirb_add(&b, name, PROTO_T_FILE, &f);
		exact += strlen(name) + 23; /* u16 length, name, type, FID */
	}
	cur = vc_dirb_finish(&b, &d, da.dv);
	ok(cur && cur->nseg == 1, "pad: 200 entries, one page");
	is_int(vc_put_listing(vc, &da, cur), 0, "pad: stored");
	vc_dir_put(cur);
	vc_close(vc);
	while (g * 16 <= exact)
		g *= 2;
	want = (exact + g - 1) / g * g;
	is_int(count_pages(&d), 1, "pad: one 'G' record");
	if (raw_get(last_page, sizeof(last_page), &v, &n) != 0 || n != want ||
	    want == exact) {
		ok(0, "pad: the page is %zu bytes, %zu padded to %zu (is %zu)",
		   want, exact, g, n);
		free(v);
		unlink(path);
		return;
	}
	ok(1, "pad: the page is %zu bytes, %zu padded to a multiple of %zu", n,
	   exact, g);
	for (size_t i = exact; i < n; i++)
		zeros = zeros && v[i] == 0;
	ok(zeros, "pad: zeros after the entries");

	/* As an older cairnd wrote it: the entries alone, their CRC. */
	c = crc32c(0, v + 5, exact - 5);
	for (int i = 0; i < 4; i++)
		v[1 + i] = (uint8_t)(c >> (8 * i));
	raw_put(last_page, sizeof(last_page), v, exact);
	vc = vc_open(path, 7, 262144);
	ok(vc_get_dir(vc, &d, &back) == 0 && back && back->n == 200,
	   "pad: a page without the pad reads");
	vc_dir_put(back);
	back = NULL;
	vc_close(vc);
	vc_check(path, 0, check_cb, &errs, &res);
	ok(errs == 0 && res.bad == 0 && res.broken == 0,
	   "pad: ... and checks clean (%d)", errs);

	/* The pad again, with a byte set and the CRC made right. */
	v[n - 1] = 1;
	c = crc32c(0, v + 5, n - 5);
	for (int i = 0; i < 4; i++)
		v[1 + i] = (uint8_t)(c >> (8 * i));
	raw_put(last_page, sizeof(last_page), v, n);
	errs = 0;
	vc_check(path, 0, check_cb, &errs, &res);
	ok(errs > 0 && res.broken == 1,
	   "pad: vc_check() finds the listing broken (%d)", errs);
	vc = vc_open(path, 7, 262144);
	ok(vc_get_dir(vc, &d, &back) != 0 && !back,
	   "pad: a byte set in the pad drops the listing on read");
	vc_dir_put(back);
	vc_close(vc);
	free(v);
	unlink(path);
}

int
main(void)
{
	log_init("test_cm_vc", 0, LOG_ERR);
	/* Small caches, quickly made (vc_set_new_hash_size()). */
	vc_set_new_hash_size(131071);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 99;
	}
	snprintf(path, sizeof(path), "%s/meta.tdb", dir);
	if (getenv("VC_KILL_ONLY")) { /* a loop over the kill test alone */
		test_kill_edits();
		goto out;
	}
	test_hash_size();
	test_attrs();
	test_attr_filter();
	test_dirs();
	test_dir_edits();
	test_dir_read_race();
	test_dir_edit_kinds();
	test_dirb();
	test_dirb_order();
	test_dir_pages();
	test_page_pad();
	test_link_xattr_seq();
	test_pins();
	test_inodes();
	test_special();
	test_attr_flags();
	test_torn();
	test_drop_race();
	test_xattr_crc();
	test_check_recover();
	test_page_ids();
	test_shared_pages();
	test_sweep();
	test_layout();
	test_put_dir_room();
	test_kill_edits();
	test_kill_put_dir();
out:
	unlink(path);
	rmdir(dir);
	return done_testing();
}
