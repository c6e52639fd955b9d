/*
 * test_cm_wb.c - the dirty.tdb record (cm/wb_rec.c) and its migration in
 * wb_new() (cm/wb.c): explicit little-endian bytes, a CRC32C that refuses
 * a flipped bit, a version byte that refuses the future, and a record of
 * the old host-order format (version 1) read once and rewritten. And a
 * race of cm/wb.c itself: reads of a file whose store the server has just
 * acknowledged (wb_stored() moves chunks and write state to the new DV)
 * never see zeros or a fetch for what the cache holds (t4020's flake).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <tdb.h>
#include <unistd.h>

#include "chunkstore/cs.h"
#include "chunkstore/cs_i.h" /* cs_fault_hook */
#include "cm/cm.h"
#include "cm/inode.h"
#include "cm/loop.h"
#include "cm/mcache.h"
#include "cm/rlog.h"
#include "cm/stats.h"
#include "cm/vc.h"
#include "cm/wb.h"
#include "cm/wb_i.h" /* wb_saved_hook */
#include "cm/wb_rec.h"
#include "common/log.h"
#include "tests/tap.h"

static char dir[] = "/tmp/test_cm_wb.XXXXXX";

/* The version-1 record exactly as wb.c wrote it before issue #13. */
struct wrec_v1 {
	uint8_t version;
	uint8_t flags;
	uint8_t pad[2];
	uint32_t namelen;
	uint64_t base_dv, srv_size, size, zero_from;
	int64_t mtime_ns, ctime_ns;
	struct fid parent;
} __attribute__((packed));

static struct fid
mkfid(uint32_t vol, uint8_t b)
{
	struct fid f;

	memset(&f, 0, sizeof(f));
	f.vol = vol;
	for (size_t i = 0; i < sizeof(f.oid); i++)
		f.oid[i] = (uint8_t)(b + i);
	return f;
}

static struct wb_rec
sample(void)
{
	struct wb_rec r;

	memset(&r, 0, sizeof(r));
	r.flags = WB_REC_LOGGED;
	r.base_dv = 0x0102030405060708ull;
	r.srv_size = 300000;
	r.size = 1234567;
	r.zero_from = 299999;
	r.mtime_ns = -1500000001; /* before 1970: two's complement */
	r.ctime_ns = 1700000000123456789ll;
	r.parent = mkfid(0xa1b2c3d4, 0x40);
	r.name = "notes.txt";
	r.namelen = strlen(r.name);
	return r;
}

static int
same(const struct wb_rec *a, const struct wb_rec *b)
{
	return a->flags == b->flags && a->base_dv == b->base_dv &&
	       a->srv_size == b->srv_size && a->size == b->size &&
	       a->zero_from == b->zero_from && a->mtime_ns == b->mtime_ns &&
	       a->ctime_ns == b->ctime_ns && fid_eq(&a->parent, &b->parent) &&
	       a->namelen == b->namelen &&
	       (!a->namelen || !memcmp(a->name, b->name, a->namelen));
}

static void
test_codec(void)
{
	struct wb_rec r = sample(), d;
	uint8_t *buf;
	size_t len = 0;

	buf = wb_rec_encode(&r, &len);
	ok(buf != NULL, "encode");
	is_int((int)len, 76 + 9, "76 bytes plus the name");
	is_int(buf[0], 2, "version byte 2");
	is_int(buf[4], 0x08, "base_dv little-endian, low byte first");
	is_int(buf[11], 0x01, "base_dv high byte last");
	is_int(buf[52], 0xd4, "parent volume little-endian");
	is_int(wb_rec_decode(buf, len, &d), 0, "decode");
	ok(same(&r, &d), "every field round trips, negative time too");

	buf[40] ^= 0x10;
	is_int(wb_rec_decode(buf, len, &d), -EUCLEAN,
	       "a flipped bit: -EUCLEAN");
	buf[40] ^= 0x10;
	is_int(wb_rec_decode(buf, len - 1, &d), -EUCLEAN,
	       "one byte short: -EUCLEAN");
	is_int(wb_rec_decode(buf, 3, &d), -EUCLEAN, "three bytes: -EUCLEAN");
	buf[0] = 4;
	is_int(wb_rec_decode(buf, len, &d), -EPROTONOSUPPORT,
	       "version 4: -EPROTONOSUPPORT");
	buf[0] = 0;
	is_int(wb_rec_decode(buf, len, &d), -EUCLEAN, "version 0: -EUCLEAN");
	free(buf);

	r.name = NULL;
	r.namelen = 0;
	buf = wb_rec_encode(&r, &len);
	is_int(wb_rec_decode(buf, len, &d), 0, "no name");
	ok(d.namelen == 0 && d.name == NULL, "no name read back");
	free(buf);

	r.namelen = 256;
	r.name = "x";
	errno = 0;
	ok(wb_rec_encode(&r, &len) == NULL && errno == EINVAL,
	   "a name over 255 bytes is refused");

	/* Version 3: a late create and attributes set while written. */
	r = sample();
	r.flags = WB_REC_CREATED;
	r.base_dv = 0;
	r.sa_mask = PROTO_SA_MODE | PROTO_SA_MTIME;
	r.sa_mode = 0640;
	r.sa_uid = 1001;
	r.sa_gid = 1002;
	r.sa_atime_ns = -5;
	r.sa_mtime_ns = 1600000000123456789ll;
	buf = wb_rec_encode(&r, &len);
	ok(buf != NULL, "encode version 3");
	is_int((int)len, (int)(108 + r.namelen), "108 bytes plus the name");
	is_int(buf[0], 3, "version byte 3");
	is_int(wb_rec_decode(buf, len, &d), 0, "decode version 3");
	ok(same(&r, &d) && d.sa_mask == r.sa_mask && d.sa_mode == 0640 &&
		   d.sa_uid == 1001 && d.sa_gid == 1002 &&
		   d.sa_atime_ns == -5 && d.sa_mtime_ns == r.sa_mtime_ns,
	   "version 3: every field round trips");
	buf[80] ^= 1;
	is_int(wb_rec_decode(buf, len, &d), -EUCLEAN,
	       "version 3: a flipped bit: -EUCLEAN");
	is_int(wb_rec_decode(buf, len - 32, &d), -EUCLEAN,
	       "version 3 cut to version 2's length: -EUCLEAN");
	free(buf);
	r.flags = WB_REC_LOGGED;
	r.sa_mask = 0;
	buf = wb_rec_encode(&r, &len);
	is_int(buf ? buf[0] : -1, 2, "nothing new in use: still version 2");
	free(buf);
}

/* A version-1 record (host order, no checksum) for @r, in @buf. */
static size_t
old_record(const struct wb_rec *r, uint8_t *buf)
{
	struct wrec_v1 o;

	memset(&o, 0, sizeof(o));
	o.version = 1;
	o.flags = r->flags;
	o.namelen = (uint32_t)r->namelen;
	o.base_dv = r->base_dv;
	o.srv_size = r->srv_size;
	o.size = r->size;
	o.zero_from = r->zero_from;
	o.mtime_ns = r->mtime_ns;
	o.ctime_ns = r->ctime_ns;
	o.parent = r->parent;
	memcpy(buf, &o, sizeof(o));
	memcpy(buf + sizeof(o), r->name, r->namelen);
	return sizeof(o) + r->namelen;
}

static void
test_old_format(void)
{
	struct wb_rec r = sample(), d;
	uint8_t buf[512];
	size_t len = old_record(&r, buf);

	is_int(wb_rec_decode(buf, len, &d), 1,
	       "a version-1 record reads, as old");
	ok(same(&r, &d), "with every field");
	is_int(wb_rec_decode(buf, len - 1, &d), -EUCLEAN,
	       "a version-1 record of the wrong length: -EUCLEAN");
}

/* wb_new() on a dirty.tdb holding a version-1 record: the write state is
 * loaded, and the record is version 2 afterwards. */
static void
test_migration(void)
{
	struct wb_deps wd = {0};
	struct wb *wb;
	struct wb_rec r = sample(), d;
	struct fid fid = mkfid(7, 0x10);
	struct tdb_context *tdb;
	uint8_t buf[512];
	char path[256];
	TDB_DATA k = {(unsigned char *)&fid, sizeof(fid)}, v;
	struct proto_attr a;

	r.flags = 0; /* dirty, not logged */
	snprintf(path, sizeof(path), "%s/dirty.tdb", dir);
	tdb = tdb_open(path, 0, TDB_NOLOCK, O_RDWR | O_CREAT, 0600);
	ok(tdb != NULL, "create dirty.tdb");
	v.dptr = buf;
	v.dsize = old_record(&r, buf);
	ok(tdb && tdb_store(tdb, k, v, TDB_REPLACE) == 0,
	   "store a version-1 record");
	if (tdb)
		tdb_close(tdb);

	wd.cache_dir = dir;
	wb = wb_new(&wd);
	ok(wb != NULL, "wb_new reads it");
	ok(wb_active(wb, &fid), "the write state is there");
	ok(wb_dirty(wb, &fid), "and dirty");
	memset(&a, 0, sizeof(a));
	a.fid = fid;
	a.type = PROTO_T_FILE;
	a.size = 1;
	wb_overlay(wb, &a);
	ok(a.size == r.size && a.mtime_ns == r.mtime_ns,
	   "its local size and mtime overlay the server's");
	wb_free(wb);

	tdb = tdb_open(path, 0, TDB_NOLOCK, O_RDONLY, 0600);
	v = tdb ? tdb_fetch(tdb, k) : (TDB_DATA){0};
	ok(v.dptr && v.dsize > 0 && v.dptr[0] == 2,
	   "the record was rewritten as version 2");
	is_int(v.dptr ? wb_rec_decode(v.dptr, v.dsize, &d) : -1, 0,
	       "and decodes as current");
	ok(same(&r, &d), "with the same fields");
	free(v.dptr);
	if (tdb)
		tdb_close(tdb);
	unlink(path);
}

/* --- reads while a store is acknowledged --- */

#define RACE_VOL 7u
#define RACE_FILES 200

struct race {
	struct wb *wb;
	_Atomic unsigned cur; /* the file being stored (index + 1), 0: none */
	atomic_bool stop;
	_Atomic unsigned long reads, good, zeros, fetches, gone, other;
	uint8_t want[987];
};

static struct fid
race_fid(unsigned i)
{
	struct fid f = mkfid(RACE_VOL, 0x10);

	memcpy(f.oid, &i, sizeof(i));
	return f;
}

static void *
race_reader(void *arg)
{
	struct race *r = arg;
	uint8_t buf[4096];

	while (!atomic_load(&r->stop)) {
		unsigned i = atomic_load(&r->cur);
		struct fid f;
		uint64_t need = 0;
		ssize_t n;

		if (!i)
			continue;
		f = race_fid(i - 1);
		n = wb_read(r->wb, &f, 0, buf, sizeof(buf), &need);
		atomic_fetch_add(&r->reads, 1);
		if (n == (ssize_t)sizeof(r->want) &&
		    !memcmp(buf, r->want, sizeof(r->want)))
			atomic_fetch_add(&r->good, 1);
		else if (n == (ssize_t)sizeof(r->want))
			atomic_fetch_add(&r->zeros, 1);
		else if (n == -EAGAIN)
			atomic_fetch_add(&r->fetches, 1);
		else if (n == -ENOENT)
			atomic_fetch_add(&r->gone, 1);
		else
			atomic_fetch_add(&r->other, 1);
	}
	return NULL;
}

/* A chunk store, metadata cache, inode table, mcache and wb of their own
 * in DIR/NAME, for the race tests (test_stored_race, test_trunc_race). */
struct wbenv {
	struct cm_stats st;
	struct cm_loop loop;
	struct mcache_hooks hooks;
	struct wb_deps d;
	struct ino_table *ino;
	struct mcache *mc;
	struct cs_store *cs;
	struct vc *vc;
	struct wb *wb;
	char path[256];
};

/* A fresh chunk store of @chunk_size in DIR/@name/cs (what was there is
 * removed). @return 0, or -1 with a failed check said. */
static int
wbenv_create(struct wbenv *e, const char *name, uint32_t chunk_size)
{
	struct cs_params p = {0};
	char path[300], cmd[300];

	memset(e, 0, sizeof(*e));
	snprintf(e->path, sizeof(e->path), "%s/%s", dir, name);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->path);
	if (system(cmd) != 0)
		diag("cannot remove '%s'", e->path);
	mkdir(e->path, 0700);
	snprintf(path, sizeof(path), "%s/cs", e->path);
	p.chunk_size = chunk_size;
	if (mkdir(path, 0700) < 0 || cs_create(path, &p) < 0) {
		ok(0, "set up a chunk store");
		return -1;
	}
	return 0;
}

/* Open the cache in e->path as cairnd would: chunk store, metadata cache
 * of volume @vol, inode table rooted at @root, mcache and wb (a restart
 * after wbenv_detach() too). @return 0 or -1 (nothing said). */
static int
wbenv_attach(struct wbenv *e, uint32_t vol, const struct fid *root,
	     const char *volume)
{
	struct cs_params p = {0};
	char path[300];
	int err = 0;

	snprintf(path, sizeof(path), "%s/cs", e->path);
	e->cs = cs_open(path, &p, &err);
	snprintf(path, sizeof(path), "%s/meta.tdb", e->path);
	e->vc = e->cs ? vc_open(path, vol, cs_chunk_size(e->cs)) : NULL;
	e->ino = ino_new(root);
	cm_loop_init(&e->loop);
	e->mc = e->vc && e->ino ? mcache_new(e->ino, e->vc, e->cs, &e->loop,
					     &e->st, &e->hooks)
				: NULL;
	e->d.loop = &e->loop;
	e->d.cs = e->cs;
	e->d.mc = e->mc;
	e->d.ino = e->ino;
	e->d.st = &e->st;
	e->d.root = *root;
	e->d.cache_dir = e->path;
	e->d.volume = volume;
	e->d.chunk_size = e->cs ? cs_chunk_size(e->cs) : 0;
	e->d.timeout_ms = 1000;
	e->d.dirty_limit = 1ull << 30;
	e->d.cache_size = 64ull << 20;
	e->wb = e->mc ? wb_new(&e->d) : NULL;
	return e->wb ? 0 : -1;
}

/* Close what wbenv_attach() opened; the files stay. */
static void
wbenv_detach(struct wbenv *e)
{
	wb_free(e->wb);
	mcache_free(e->mc);
	ino_free(e->ino);
	vc_close(e->vc);
	cs_close(e->cs);
	e->wb = NULL;
	e->mc = NULL;
	e->ino = NULL;
	e->vc = NULL;
	e->cs = NULL;
}

/* @return 0, or -1 with a failed check said (wbenv_close() all the same). */
static int
wbenv_open(struct wbenv *e, const char *name, uint32_t vol, uint32_t chunk_size)
{
	struct fid root = mkfid(vol, 0x01);

	if (wbenv_create(e, name, chunk_size) < 0)
		return -1;
	if (wbenv_attach(e, vol, &root, name) < 0) {
		ok(0, "set up cs, vc, mcache and wb: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void
wbenv_close(struct wbenv *e)
{
	char cmd[300];

	wbenv_detach(e);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->path);
	if (system(cmd) != 0)
		diag("cannot remove '%s'", e->path);
}

/*
 * A file made here (local DV, server size 0: what its chunk does not hold
 * reads as zeros) is written, then its store is acknowledged at a server
 * DV while another thread reads it in a loop. Before the fix the reader
 * could copy the write state (base: the local DV), then find the chunk
 * retagged to the server's DV and read zeros of the right size.
 */
static void
test_stored_race(void)
{
	struct fid root = mkfid(RACE_VOL, 0x01);
	struct wbenv e;
	struct race r;
	pthread_t th;
	unsigned bad_write = 0;

	memset(&r, 0, sizeof(r));
	for (size_t i = 0; i < sizeof(r.want); i++)
		r.want[i] = (uint8_t)('a' + i % 23);
	if (wbenv_open(&e, "race", RACE_VOL, 65536) < 0)
		goto out;
	r.wb = e.wb;
	if (pthread_create(&th, NULL, race_reader, &r) != 0) {
		ok(0, "start the reader");
		goto out;
	}
	for (unsigned i = 0; i < RACE_FILES; i++) {
		struct fid f = race_fid(i);
		struct proto_attr a, srv;
		struct proto_op op;
		uint64_t chunk0 = 0, need = 0;
		unsigned long r0;

		memset(&a, 0, sizeof(a));
		a.fid = f;
		a.type = PROTO_T_FILE;
		a.mode = 0644;
		a.nlink = 1;
		a.dv = CM_DV_LOCAL | (1000 + i);
		vc_put_attr(e.vc, &a);
		if (wb_open_write(r.wb, &a, &root, "f") < 0 ||
		    wb_write(r.wb, &f, 0, r.want, sizeof(r.want), &need, NULL) !=
			    (ssize_t)sizeof(r.want)) {
			bad_write++;
			continue;
		}
		atomic_store(&r.cur, i + 1);
		/* Let the reader in before the reply comes. */
		r0 = atomic_load(&r.reads);
		while (atomic_load(&r.reads) < r0 + 2)
			sched_yield();
		memset(&op, 0, sizeof(op));
		op.kind = PROTO_OP_STORE;
		op.fid = f;
		op.base_dv = a.dv;
		op.chunk_size = e.d.chunk_size;
		op.size = sizeof(r.want);
		op.chunks = &chunk0;
		op.nchunks = 1;
		srv = a;
		srv.dv = 5 + i;
		srv.size = sizeof(r.want);
		wb_stored(r.wb, &op, &srv);
		r0 = atomic_load(&r.reads);
		while (atomic_load(&r.reads) < r0 + 2)
			sched_yield();
		atomic_store(&r.cur, 0);
		wb_release_write(r.wb, &f);
	}
	atomic_store(&r.stop, true);
	pthread_join(th, NULL);
	is_int(bad_write, 0, "%d files written", RACE_FILES);
	diag("%lu reads: %lu right, %lu zeros, %lu fetches, %lu without a "
	     "write state, %lu other",
	     atomic_load(&r.reads), atomic_load(&r.good),
	     atomic_load(&r.zeros), atomic_load(&r.fetches),
	     atomic_load(&r.gone), atomic_load(&r.other));
	ok(atomic_load(&r.good) > RACE_FILES, "the reader read them");
	is_int((int)atomic_load(&r.zeros), 0,
	       "no read of a file being acknowledged saw zeros");
	is_int((int)atomic_load(&r.fetches), 0,
	       "none asked to fetch a chunk the cache holds");
	is_int((int)atomic_load(&r.other), 0, "no other result");
out:
	wbenv_close(&e);
}

/* --- reads while a truncate cuts (t2364) --- */

#define TR_VOL 8u
#define TR_CS  65536u
#define TR_LEN (3 * TR_CS)

static struct wb *tr_wb;
static uint8_t tr_data[TR_LEN], tr_buf[TR_LEN];
static ssize_t tr_n;   /* what the read in a hook returned */
static uint64_t tr_to; /* the truncate the read hook runs */
static int tr_rc;

static void
tr_cut(const struct fid *fid)
{
	uint64_t need = 0;

	tr_n = wb_read(tr_wb, fid, 0, tr_buf, TR_LEN, &need);
}

static void
tr_read(const struct fid *fid)
{
	uint64_t need = 0;

	wb_read_hook = NULL;
	tr_rc = wb_truncate(tr_wb, fid, tr_to, &need, NULL);
}

/* Fails the chunk store's ftruncate number tr_fail_at (1 = the first). */
static int tr_ftruncs, tr_fail_at;

static int
tr_fault(enum cs_fault_op op, const char *what)
{
	(void)what;
	if (op == CS_FOP_FTRUNCATE && ++tr_ftruncs == tr_fail_at)
		return -EIO;
	return 0;
}

/* No byte of [0, n) of tr_buf is other than tr_data's. */
static bool
tr_same(ssize_t n)
{
	return n >= 0 && !memcmp(tr_buf, tr_data, (size_t)n);
}

/*
 * A truncate cuts a file's dirty chunks before it sets the size (t2364,
 * session 10's "KNOWN" zeros of t2360): a read in between, or one whose
 * copy of the write state predates the truncate, read the cut bytes as
 * zeros of the old size. Now it reads the file as cut (the size it is
 * cut to).
 */
static void
test_trunc_race(void)
{
	struct fid root = mkfid(TR_VOL, 0x01), f = mkfid(TR_VOL, 0x20);
	struct proto_attr a;
	struct cs_key k;
	struct wbenv e;
	uint64_t need = 0;
	ssize_t n;

	for (size_t i = 0; i < TR_LEN; i++)
		tr_data[i] = (uint8_t)(1 + i % 251);
	if (wbenv_open(&e, "trunc", TR_VOL, TR_CS) < 0)
		goto out;
	tr_wb = e.wb;
	memset(&a, 0, sizeof(a));
	a.fid = f;
	a.type = PROTO_T_FILE;
	a.mode = 0644;
	a.nlink = 1;
	a.dv = CM_DV_LOCAL | 77;
	vc_put_attr(e.vc, &a);
	ok(wb_open_write(tr_wb, &a, &root, "f") == 0, "open a file to write");

	/* 1: three dirty chunks (writeback: not stored yet), O_TRUNC. */
	is_int((int)wb_write(tr_wb, &f, 0, tr_data, TR_LEN, &need, NULL),
	       (int)TR_LEN, "write three chunks");
	tr_n = -1;
	wb_cut_hook = tr_cut;
	is_int(wb_truncate(tr_wb, &f, 0, &need, NULL), 0, "truncate to 0");
	wb_cut_hook = NULL;
	is_int((int)tr_n, 0,
	       "a read while the chunks are cut: the empty file, "
	       "no zeros of the old size");

	/* 2: rewritten, cut in its second chunk. */
	is_int((int)wb_write(tr_wb, &f, 0, tr_data, TR_LEN, &need, NULL),
	       (int)TR_LEN, "write them again");
	tr_n = -1;
	wb_cut_hook = tr_cut;
	is_int(wb_truncate(tr_wb, &f, 70000, &need, NULL), 0,
	       "truncate to 70000");
	wb_cut_hook = NULL;
	ok(tr_n == 70000 && tr_same(tr_n),
	   "a read while the chunks are cut: the 70000 bytes kept (%zd)", tr_n);

	/* 3: a read whose copy of the state predates the whole truncate. */
	is_int((int)wb_write(tr_wb, &f, 0, tr_data, TR_LEN, &need, NULL),
	       (int)TR_LEN, "write them again");
	tr_to = 0;
	tr_rc = -1;
	wb_read_hook = tr_read;
	n = wb_read(tr_wb, &f, 0, tr_buf, TR_LEN, &need);
	wb_read_hook = NULL;
	is_int(tr_rc, 0, "a truncate to 0 during a read");
	is_int((int)n, 0, "the read: the empty file, not %d zeros",
	       (int)TR_LEN);
	ok(atomic_load(&e.st.wb_read_retries) >= 1, "it read again (%lu)",
	   (unsigned long)atomic_load(&e.st.wb_read_retries));

	/* 4: the same to 100000 bytes. */
	is_int((int)wb_write(tr_wb, &f, 0, tr_data, TR_LEN, &need, NULL),
	       (int)TR_LEN, "write them again");
	tr_to = 100000;
	wb_read_hook = tr_read;
	n = wb_read(tr_wb, &f, 0, tr_buf, TR_LEN, &need);
	wb_read_hook = NULL;
	ok(n == 100000 && tr_same(n),
	   "a read across a truncate to 100000: "
	   "its bytes (%zd)",
	   n);
	n = wb_read(tr_wb, &f, 0, tr_buf, TR_LEN, &need);
	ok(n == 100000 && tr_same(n), "and after it");

	/* 5: a truncate to 100 that fails after its first cut (the head
	 * chunk cut to 100, then the second chunk's ftruncate fails): the
	 * file ends where the cut reached, not at the old size over cut
	 * chunks (zeros). */
	is_int((int)wb_write(tr_wb, &f, 0, tr_data, TR_LEN, &need, NULL),
	       (int)TR_LEN, "write them again");
	tr_ftruncs = 0;
	tr_fail_at = 2;
	cs_fault_hook = tr_fault;
	ok(wb_truncate(tr_wb, &f, 100, &need, NULL) < 0,
	   "a truncate to 100 whose second cut fails: an error");
	cs_fault_hook = NULL;
	ok(tr_ftruncs >= 2, "(the second cut was tried: %d)", tr_ftruncs);
	n = wb_read(tr_wb, &f, 0, tr_buf, TR_LEN, &need);
	ok(n == 100 && tr_same(n),
	   "the file ends where the cut reached: 100 bytes, no zeros (%zd)",
	   n);
	memset(&a, 0, sizeof(a));
	a.fid = f;
	a.type = PROTO_T_FILE;
	a.size = TR_LEN;
	wb_overlay(tr_wb, &a);
	is_int((int)a.size, 100, "its size is 100");
	is_int((int)wb_write(tr_wb, &f, 100, tr_data + 100, TR_LEN - 100,
			     &need, NULL),
	       (int)(TR_LEN - 100), "written again after it");
	n = wb_read(tr_wb, &f, 0, tr_buf, TR_LEN, &need);
	ok(n == (ssize_t)TR_LEN && tr_same(n), "and read whole (%zd)", n);
	wb_release_write(tr_wb, &f);

	/* 5: a server file of three chunks, only chunk 0 written here (1
	 * and 2 never fetched). A truncate to 0 after the read took its
	 * copy: chunk 0 reads as cut (zeros), chunk 1's miss refreshes the
	 * copy mid-pass (review 11, Z1); the read must start again, not
	 * return chunk 0's zeros. */
	f = mkfid(TR_VOL, 0x21);
	memset(&a, 0, sizeof(a));
	a.fid = f;
	a.type = PROTO_T_FILE;
	a.mode = 0644;
	a.nlink = 1;
	a.dv = 900;
	a.size = TR_LEN;
	vc_put_attr(e.vc, &a);
	cm_chunk_key(&k, &f, 0);
	is_int(cs_put(e.cs, &k, 900, tr_data, TR_CS, 0), 0,
	       "its chunk 0 fetched (1 and 2 not)");
	ok(wb_open_write(tr_wb, &a, &root, "g") == 0,
	   "a server file of three chunks, opened to write");
	is_int((int)wb_write(tr_wb, &f, 0, tr_data, TR_CS, &need, NULL),
	       (int)TR_CS, "write its chunk 0 again");
	tr_to = 0;
	tr_rc = -1;
	wb_read_hook = tr_read;
	n = wb_read(tr_wb, &f, 0, tr_buf, TR_LEN, &need);
	wb_read_hook = NULL;
	is_int(tr_rc, 0, "a truncate to 0 during the read");
	is_int((int)n, 0, "the read: the empty file, not chunk 0's zeros");
	wb_release_write(tr_wb, &f);
out:
	wbenv_close(&e);
	tr_wb = NULL;
}

/* --- set-ID bits cleared with a write (FUSE_HANDLE_KILLPRIV_V2) --- */

/* The dirty.tdb record of @fid under @cache_dir (0 if found). */
static int
saved_rec(const char *cache_dir, const struct fid *fid, struct wb_rec *out,
	  void **buf)
{
	char path[300];
	struct tdb_context *tdb;
	TDB_DATA k = {(unsigned char *)fid, sizeof(*fid)}, v = {0};
	int rc = -1;

	snprintf(path, sizeof(path), "%s/dirty.tdb", cache_dir);
	tdb = tdb_open(path, 0, TDB_NOLOCK, O_RDONLY, 0600);
	if (tdb) {
		v = tdb_fetch(tdb, k);
		tdb_close(tdb);
	}
	if (v.dptr)
		rc = wb_rec_decode(v.dptr, v.dsize, out);
	*buf = v.dptr;
	return rc;
}

/*
 * A flagged write saves the cleared mode in dirty.tdb before its data
 * (review 10, findings 1 and 2): whatever reads dirty.tdb after the
 * write returned (a store's snapshot, wb_resume() after kill -9) finds
 * the data with the mode, never without. A state that cannot take it
 * (its store logged) refuses the write with -EPERM before writing a byte.
 */
/* Open @fid (a new file) for writing and write a byte: a save. */
static int
write_new(struct wb *wb, struct vc *vc, const struct fid *root,
	  struct fid fid, const char *name)
{
	struct proto_attr a;
	struct wb_kill k = {.how = WB_KILL, .mode = 0644};
	uint64_t need = 0;

	memset(&a, 0, sizeof(a));
	a.fid = fid;
	a.type = PROTO_T_FILE;
	a.mode = S_IFREG | 0644;
	a.nlink = 1;
	a.dv = 90;
	vc_put_attr(vc, &a);
	if (wb_open_write(wb, &a, root, name))
		return -1;
	return (int)wb_write(wb, &fid, 0, "x", 1, &need, &k);
}

/*
 * dirty.tdb.jnl failing (review 11, J3): a write whose state cannot be
 * saved still works, is counted (wb_save_errors) and logged once; once
 * the journal can be written again the next save mends it
 * (wb_journal_repairs) instead of refusing every save for the rest of
 * the process, and later states reach dirty.tdb.
 */
static void
journal_break_mend(struct wb **wbp, struct vc *vc, struct cm_stats *st,
		   const char *cdir, const struct fid *root)
{
	struct wb *wb = *wbp;
	struct fid h = mkfid(RACE_VOL, 0x60), i = mkfid(RACE_VOL, 0x61),
		   m = mkfid(RACE_VOL, 0x62), g = mkfid(RACE_VOL, 0x50);
	char jpath[300], p[64], l[300];
	int fd = -1, saved, ro;
	struct wb_rec r;
	void *buf = NULL;

	snprintf(jpath, sizeof(jpath), "%s/dirty.tdb.jnl", cdir);
	for (int n = 3; n < 1024 && fd < 0; n++) {
		ssize_t len;

		snprintf(p, sizeof(p), "/proc/self/fd/%d", n);
		len = readlink(p, l, sizeof(l) - 1);
		if (len > 0) {
			l[len] = 0;
			if (!strcmp(l, jpath))
				fd = n;
		}
	}
	ok(fd >= 0, "journal: found dirty.tdb.jnl's fd");
	if (fd < 0)
		return;
	saved = dup(fd);
	ro = open(jpath, O_RDONLY);
	dup2(ro, fd); /* its writes and ftruncate now fail */
	close(ro);
	is_int(write_new(wb, vc, root, h, "h"), 1,
	       "journal: a write works while its state cannot be saved");
	is_int(write_new(wb, vc, root, i, "i"), 1, "journal: another");
	/* g (test_kill's) has a saved record: its drop fails now */
	wb_gone(wb, &g);
	ok(atomic_load(&st->wb_save_errors) >= 2,
	   "journal: the refused saves are counted (%llu)",
	   (unsigned long long)atomic_load(&st->wb_save_errors));
	dup2(saved, fd);
	close(saved);
	usleep(1100 * 1000); /* the mending waits a second between tries */
	is_int(write_new(wb, vc, root, m, "m"), 1, "journal: a later write");
	is_int((int)atomic_load(&st->wb_journal_repairs), 1,
	       "journal: its save mended the journal");
	wb_release_write(wb, &h);
	wb_release_write(wb, &i);
	wb_release_write(wb, &m);
	wb_free(wb); /* checkpoints the journal into dirty.tdb */
	*wbp = NULL;
	ok(saved_rec(cdir, &m, &r, &buf) == 0, "journal: m's state saved");
	free(buf);
	buf = NULL;
	ok(saved_rec(cdir, &h, &r, &buf) == 0,
	   "journal: h's too (saved again at its close)");
	free(buf);
	buf = NULL;
	ok(saved_rec(cdir, &g, &r, &buf) != 0,
	   "journal: the record whose drop failed was deleted once mended");
	free(buf);
}

static void
test_kill(void)
{
	struct wbenv e;
	struct fid root = mkfid(RACE_VOL, 0x01), f = mkfid(RACE_VOL, 0x30),
		   g = mkfid(RACE_VOL, 0x50);
	struct proto_attr a, o;
	struct wb_rec r;
	struct wb_kill k = {.how = WB_KILL, .mode = 06755};
	struct cs_key key;
	struct cs_info info;
	char path[320];
	uint64_t need = 0;
	void *buf = NULL;

	is_int((int)wb_killed_mode(06755, WB_KILL), 0755,
	       "a kill clears set-user-ID and a group-executable set-group-ID");
	is_int((int)wb_killed_mode(06745, WB_KILL), 02745,
	       "not set-group-ID without group execute");
	is_int((int)wb_killed_mode(06745, WB_KILL_ALL), 0745,
	       "unless all (a caller outside the group)");
	if (wbenv_open(&e, "kill", RACE_VOL, 65536) < 0)
		goto out;
	memset(&a, 0, sizeof(a));
	a.fid = f;
	a.type = PROTO_T_FILE;
	a.mode = S_IFREG | 06755;
	a.nlink = 1;
	a.dv = 77;
	vc_put_attr(e.vc, &a);
	ok(wb_open_write(e.wb, &a, &root, "suid") == 0, "open a 6755 file");
	ok(saved_rec(e.path, &f, &r, &buf) != 0, "no state saved before");
	free(buf);
	is_int((int)wb_write(e.wb, &f, 0, "new", 3, &need, &k), 3,
	       "a flagged write");
	o = a;
	wb_overlay(e.wb, &o);
	is_int((int)(o.mode & 07777), 0755, "the overlay shows 0755");
	/* The second write has nothing to clear (the state's mode goes
	 * first, not the caller's stale view). */
	is_int((int)wb_write(e.wb, &f, 3, "er", 2, &need, &k), 2,
	       "a second flagged write");
	/* The state is in dirty.tdb or its journal; wb_free() checkpoints
	 * the journal into dirty.tdb, read here (nothing is stored without
	 * a loop). What a kill -9 leaves is test_kill_die's. */
	wb_free(e.wb);
	e.wb = NULL;
	ok(saved_rec(e.path, &f, &r, &buf) == 0, "its state is saved");
	ok((r.sa_mask & PROTO_SA_MODE) && r.sa_mode == 0755,
	   "with the cleared mode (mask 0x%x mode %o)", r.sa_mask, r.sa_mode);
	free(buf);

	/* A state whose store is logged cannot take the mode. */
	memset(&r, 0, sizeof(r));
	r.flags = WB_REC_LOGGED;
	r.base_dv = 78;
	r.size = 0;
	r.zero_from = 0;
	r.parent = root;
	r.name = "logged";
	r.namelen = strlen(r.name);
	{
		size_t len = 0;
		void *v = wb_rec_encode(&r, &len);
		struct tdb_context *tdb;
		TDB_DATA kk = {(unsigned char *)&g, sizeof(g)}, vv;

		snprintf(path, sizeof(path), "%s/dirty.tdb", e.path);
		tdb = tdb_open(path, 0, TDB_NOLOCK, O_RDWR, 0600);
		vv.dptr = v;
		vv.dsize = len;
		ok(v && tdb && tdb_store(tdb, kk, vv, TDB_REPLACE) == 0,
		   "a logged state in dirty.tdb");
		if (tdb)
			tdb_close(tdb);
		free(v);
		e.wb = wb_new(&e.d);
	}
	a.fid = g;
	a.dv = 78;
	a.size = 0;
	vc_put_attr(e.vc, &a);
	ok(e.wb && wb_open_write(e.wb, &a, &root, "logged") == 0,
	   "open it for writing");
	is_int((int)wb_write(e.wb, &g, 0, "new", 3, &need, &k), -EPERM,
	       "a flagged write to it: -EPERM (the setattr goes first)");
	cm_chunk_key(&key, &g, 0);
	ok(cs_lookup(e.cs, &key, &info) != 0, "and nothing of it written");
	o = a;
	wb_overlay(e.wb, &o);
	is_int((int)(o.mode & 07777), 06755, "nor a mode folded");
	/* Loaded logged, what its records cover is unknown: a write that
	 * asks (a FUSE thread's) waits for the log first, at any offset. */
	is_int((int)wb_write_ex(e.wb, &g, 1000, "new", 3, &need, NULL,
				WB_IO_LOGGED),
	       -EINPROGRESS, "a write asking for the log's wait: -EINPROGRESS");
	is_int(wb_truncate_ex(e.wb, &g, 5, &need, NULL, WB_IO_LOGGED),
	       -EINPROGRESS, "a truncate too");
	ok(cs_lookup(e.cs, &key, &info) != 0, "and nothing of them done");
	ok(wb_logged_size(e.wb, &g) == UINT64_MAX,
	   "wb_logged_size: unknown, all of it");
	is_int((int)wb_write(e.wb, &g, 0, "new", 3, &need, NULL), 3,
	       "written once the setattr went (no kill)");
	wb_release_write(e.wb, &g);
	if (e.wb)
		journal_break_mend(&e.wb, e.vc, &e.st, e.path, &root);
out:
	wbenv_close(&e);
}

/* --- kill -9 in the middle of a flagged write --- */

static int die_at, die_steps;

static int
die_hook(enum cs_fault_op op, const char *what)
{
	(void)op;
	(void)what;
	if (++die_steps == die_at)
		_exit(42);
	return 0;
}

static void
die_saved(void)
{
	if (++die_steps == die_at)
		_exit(42);
}

/*
 * One round of a die-at-step-N test (test_kill_die, test_trunc_die): a
 * fresh cache in DIR/@name (chunks of @chunk_size), a child that opens it
 * and runs @child(@e, @n, @arg), which _exit()s: 0 when the work
 * completed, 42 when it died at its @n-th step (die_hook, die_saved);
 * then the cache reopened in @e as a restarted cairnd would.
 * @return 1 (completed), 0 (died), -1 (a check failed and was said; @e
 * closed).
 */
static int
die_round(struct wbenv *e, const char *name, uint32_t chunk_size,
	  const struct fid *root, int n,
	  void (*child)(struct wbenv *e, int n, void *arg), void *arg)
{
	pid_t pid;
	int status = 0;

	if (wbenv_create(e, name, chunk_size) < 0)
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		if (wbenv_attach(e, RACE_VOL, root, "kill9") < 0)
			_exit(3);
		child(e, n, arg);
		_exit(99); /* a child that did not exit */
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    (WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 42)) {
		ok(0, "step %d: the child ran (status 0x%x)", n, status);
		return -1;
	}
	if (wbenv_attach(e, RACE_VOL, root, "kill9") < 0) {
		ok(0, "step %d: reopen the cache", n);
		wbenv_detach(e);
		return -1;
	}
	return WEXITSTATUS(status) == 0;
}

/* Arm the die-at-step-N hooks in a child. */
static void
die_arm(int n)
{
	die_steps = 0;
	die_at = n;
	cs_fault_hook = die_hook;
	wb_saved_hook = die_saved;
}

/* test_kill_die's child: the 6755 file written with the kill. */
struct kill_die_arg {
	struct fid root;
	struct proto_attr a;
	const uint8_t *data;
	size_t len;
};

static void
kill_die_child(struct wbenv *e, int n, void *arg)
{
	struct kill_die_arg *c = arg;
	struct wb_kill k = {.how = WB_KILL, .mode = 06755};
	uint64_t need = 0;

	vc_put_attr(e->vc, &c->a);
	if (wb_open_write(e->wb, &c->a, &c->root, "f") < 0)
		_exit(4);
	die_arm(n);
	_exit(wb_write(e->wb, &c->a.fid, 0, c->data, c->len, &need, &k) ==
			      (ssize_t)c->len
		      ? 0
		      : 5);
}

/*
 * STYLE §6's die-at-step-N: a child writes 150 KB (three chunks) to a
 * 6755 file with the kill and "dies" at its N-th chunk-store I/O or
 * after its N-th dirty.tdb save (wb_saved_hook); the
 * parent opens the cache as a restarted cairnd would. Whenever a dirty
 * write state is there (what wb_resume() would store), it must carry the
 * cleared mode: never the data without it (review 10, finding 2). N
 * grows until the write completes.
 */
static void
test_kill_die(void)
{
	static uint8_t data[150000];
	struct kill_die_arg c;
	char cmd[300];
	int n, rc = 0, bad = 0, dirty_seen = 0;

	memset(data, 'N', sizeof(data));
	memset(&c, 0, sizeof(c));
	c.root = mkfid(RACE_VOL, 0x01);
	c.a.fid = mkfid(RACE_VOL, 0x70);
	c.a.type = PROTO_T_FILE;
	c.a.mode = S_IFREG | 06755;
	c.a.nlink = 1;
	c.a.dv = 91;
	c.data = data;
	c.len = sizeof(data);
	for (n = 1; n < 200 && rc == 0; n++) {
		struct wbenv e;

		rc = die_round(&e, "kill9", 65536, &c.root, n, kill_die_child,
			       &c);
		if (rc < 0)
			return;
		if (wb_dirty(e.wb, &c.a.fid)) {
			struct proto_attr o = c.a;

			dirty_seen++;
			wb_overlay(e.wb, &o);
			if ((o.mode & 07777) != 0755) {
				diag("step %d: a dirty state with mode %o", n,
				     o.mode & 07777);
				bad++;
			}
		}
		wbenv_detach(&e);
	}
	ok(rc == 1, "the write completed at step %d", n - 1);
	ok(dirty_seen > 0, "%d restarts found a dirty state", dirty_seen);
	is_int(bad, 0, "every one of them with the cleared mode");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s/kill9'", dir);
	if (system(cmd) != 0)
		diag("cannot remove '%s/kill9'", dir);
}

/*
 * A kill -9 in the middle of a shrinking truncate (doc/cm.md "A truncate
 * and a kill -9"): a child writes three chunks, commits them, truncates
 * to 100 and dies at its N-th chunk-store I/O or dirty.tdb save; the
 * parent opens the cache as a restarted cairnd would and reads the
 * file: a prefix of what was written, at least 100 bytes, never zeros
 * (before: the old size over cut chunks). N grows until the truncate
 * completes.
 */
/* test_trunc_die's child: three chunks written and committed, then the
 * truncate to 100 that dies. */
static void
trunc_die_child(struct wbenv *e, int n, void *arg)
{
	struct proto_attr *a = arg;
	struct fid root = mkfid(RACE_VOL, 0x01);
	uint64_t need = 0;

	vc_put_attr(e->vc, a);
	if (wb_open_write(e->wb, a, &root, "f") < 0)
		_exit(4);
	if (wb_write(e->wb, &a->fid, 0, tr_data, TR_LEN, &need, NULL) !=
		    (ssize_t)TR_LEN ||
	    wb_truncate(e->wb, &a->fid, TR_LEN - 1, &need, NULL) != 0)
		_exit(5); /* committed, the size saved */
	die_arm(n);
	_exit(wb_truncate(e->wb, &a->fid, 100, &need, NULL) == 0 ? 0 : 6);
}

static void
test_trunc_die(void)
{
	struct fid root = mkfid(RACE_VOL, 0x01), f = mkfid(RACE_VOL, 0x71);
	struct proto_attr a;
	char cmd[300];
	int n, rc = 0, bad = 0, mid = 0;

	for (size_t i = 0; i < TR_LEN; i++)
		tr_data[i] = (uint8_t)(1 + i % 251);
	memset(&a, 0, sizeof(a));
	a.fid = f;
	a.type = PROTO_T_FILE;
	a.mode = S_IFREG | 0644;
	a.nlink = 1;
	a.dv = 93;
	for (n = 1; n < 200 && rc == 0; n++) {
		struct wbenv e;
		uint64_t need = 0;
		ssize_t got;

		rc = die_round(&e, "tkill9", TR_CS, &root, n, trunc_die_child,
			       &a);
		if (rc < 0)
			return;
		got = wb_read(e.wb, &f, 0, tr_buf, TR_LEN, &need);
		if (got < 100 || got > (ssize_t)TR_LEN - 1 || !tr_same(got) ||
		    (rc == 1 && got != 100)) {
			diag("step %d: read %zd bytes%s", n, got,
			     got > 0 && !tr_same(got) ? ", not a prefix" : "");
			bad++;
		} else if (got > 100 && got < (ssize_t)TR_LEN - 1) {
			mid++;
		}
		wbenv_detach(&e);
	}
	ok(rc == 1, "the truncate completed at step %d", n - 1);
	is_int(bad, 0, "every restart read a prefix of the file, no zeros");
	ok(mid > 0, "%d restarts found it half done (a longer prefix)", mid);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s/tkill9'", dir);
	if (system(cmd) != 0)
		diag("cannot remove '%s/tkill9'", dir);
}

/*
 * wb_restore_logged() (doc/cm.md "Session 13"): a store record carrying
 * a small file's bytes rebuilds chunk 0 when a power cut took it (gone,
 * or an older file of the slot), keeps it when it holds those bytes or a
 * later generation of the slot (written since), and leaves a file whose
 * newer store carries no bytes alone.
 */
#define RL_VOL 0x5e
static void
rl_store(struct rlog *l, const struct fid *f, const void *b, size_t n,
	 const struct cs_info *at, uint32_t gen_delta_up, uint32_t gen_back)
{
	uint64_t c0[] = {0};
	struct proto_op op;

	memset(&op, 0, sizeof(op));
	op.kind = PROTO_OP_STORE;
	op.fid = *f;
	op.base_dv = 5;
	op.size = n;
	op.chunk_size = 65536;
	op.chunks = c0;
	op.nchunks = 1;
	op.txid[0] = 1;
	op.data = (void *)b;
	op.dlen = n;
	op.data_dv = 5;
	op.data_slot = at ? at->slot : 4000;
	op.data_gen = at ? at->gen + gen_delta_up - gen_back : 1;
	is_int(rlog_append(l, &op, NULL), 0, "log a store with %zu bytes", n);
}

static bool
rl_holds(struct cs_store *cs, const struct fid *f, const void *b, size_t n)
{
	struct cs_key k;
	uint8_t got[65536];
	ssize_t r;

	cm_chunk_key(&k, f, 0);
	r = cs_read(cs, &k, 5, 0, got, sizeof(got));
	return r == (ssize_t)n && !memcmp(got, b, n);
}

static void
test_restore_logged(void)
{
	struct fid root = mkfid(RL_VOL, 0x01), f[5];
	static uint8_t want[5][3000], old[3000];
	struct cs_info info[5];
	struct wbenv e;
	struct cs_key k;
	struct rlog *l;
	char path[400];
	int err = 0;

	diag("--- restore a small file's chunk from its replay record");
	if (wbenv_create(&e, "restore", 65536) < 0)
		return;
	for (int i = 0; i < 5; i++) {
		f[i] = mkfid(RL_VOL, (uint8_t)(0x10 + i));
		memset(want[i], 'a' + i, sizeof(want[i]));
	}
	memset(old, 'z', sizeof(old));
	snprintf(path, sizeof(path), "%s/rlog.tdb", e.path);
	l = rlog_open(path, &err);
	ok(l != NULL, "a replay log");
	if (!l)
		return;
	e.d.rlog = l;
	if (wbenv_attach(&e, RL_VOL, &root, "restore") < 0) {
		ok(0, "set up cs, vc, mcache and wb");
		rlog_close(l);
		return;
	}
	/* f0: the chunk is gone (a power cut before its file reached the
	 * disk). f1: it holds the record's bytes. f2: the slot holds an
	 * older file (the rename did not reach the disk). f3: a later
	 * generation with other bytes (written since the close). f4: a
	 * later store without bytes settled it (chunk gone, left so). */
	for (int i = 1; i < 4; i++) {
		cm_chunk_key(&k, &f[i], 0);
		is_int(cs_put(e.cs, &k, 5, i == 1 ? want[1] : old, 3000,
			      CS_F_DIRTY),
		       0, "chunk of f%d", i);
		cs_lookup(e.cs, &k, &info[i]);
	}
	rl_store(l, &f[0], want[0], 3000, NULL, 0, 0);
	rl_store(l, &f[1], want[1], 3000, &info[1], 0, 0);
	rl_store(l, &f[2], want[2], 3000, &info[2], 3, 0);
	rl_store(l, &f[3], want[3], 3000, &info[3], 0, 1);
	rl_store(l, &f[4], want[4], 3000, NULL, 0, 0);
	{
		uint64_t c[] = {0, 1};
		struct proto_op op;

		memset(&op, 0, sizeof(op));
		op.kind = PROTO_OP_STORE;
		op.fid = f[4];
		op.base_dv = 5;
		op.size = 70000;
		op.chunk_size = 65536;
		op.chunks = c;
		op.nchunks = 2;
		op.txid[0] = 2;
		is_int(rlog_append(l, &op, NULL), 0,
		       "then a bigger store of f4, no bytes");
	}
	is_int(wb_restore_logged(e.wb), 2, "two chunks restored (f0, f2)");
	ok(rl_holds(e.cs, &f[0], want[0], 3000), "f0: rebuilt from the record");
	ok(rl_holds(e.cs, &f[1], want[1], 3000), "f1: kept, the same bytes");
	ok(rl_holds(e.cs, &f[2], want[2], 3000),
	   "f2: an older file of the slot replaced by the record's bytes");
	ok(rl_holds(e.cs, &f[3], old, 3000),
	   "f3: a later generation of the slot kept (written since)");
	cm_chunk_key(&k, &f[4], 0);
	ok(cs_lookup(e.cs, &k, &info[4]) == -ENOENT,
	   "f4: a newer store without bytes: not rebuilt from the older");
	cm_chunk_key(&k, &f[0], 0);
	ok(cs_lookup(e.cs, &k, &info[0]) == 0 && (info[0].flags & CS_F_DIRTY),
	   "the rebuilt chunk is dirty");
	is_int(wb_restore_logged(e.wb), 0, "a second pass restores nothing");
	/* the owed map: a drained batch's FIDs, nothing owed here */
	is_int(wb_data_durable(e.wb, f, 5), 0, "nothing owed: no sync");
	wbenv_close(&e);
	rlog_close(l);
}

int
main(void)
{
	log_init("test_cm_wb", 0, LOG_ERR);
	/* Small caches, quickly made (vc_set_new_hash_size()). */
	vc_set_new_hash_size(131071);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 99;
	}
	plan(0);
	test_codec();
	test_old_format();
	test_migration();
	test_stored_race();
	test_trunc_race();
	test_kill();
	test_kill_die();
	test_trunc_die();
	test_restore_logged();
	rmdir(dir);
	return done_testing();
}
