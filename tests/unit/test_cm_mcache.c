/*
 * test_cm_mcache.c - the cached metadata (cm/mcache.c) on its own: built
 * from an inode table, a metadata cache, a chunk store, a loop whose
 * kernel ops count what they are told, and fake hooks, with no daemon and
 * no server. It checks what a fresh attribute, a listing edit, a
 * disconnected edit and a gone object do to the caches and the kernel,
 * and that the hooks are called with their own argument.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunkstore/cs.h"
#include "cm/cm.h"
#include "cm/inode.h"
#include "cm/loop.h"
#include "cm/mcache.h"
#include "cm/stats.h"
#include "cm/vc.h"
#include "common/log.h"
#include "tests/tap.h"

#define VOL 7

static char dir[] = "/tmp/test_cm_mcache.XXXXXX";

/* What the kernel ops and the hooks saw. */
static struct {
	unsigned inval_inode, inval_entry, dv_changed;
	int64_t last_off;
	bool overlay, orphan, active;
	void *arg_seen;
} k;

static void
k_inval_inode(void *arg, uint64_t ino, int64_t off, int64_t len)
{
	(void)arg;
	(void)ino;
	(void)len;
	k.inval_inode++;
	k.last_off = off;
}

static void
k_inval_entry(void *arg, uint64_t parent, const char *name, size_t len)
{
	(void)arg;
	(void)parent;
	(void)name;
	(void)len;
	k.inval_entry++;
}

/* A store answered while a lookup is between the attributes and the
 * overlay: stored() installs its attributes, then the write state goes. */
static struct {
	struct mcache *mc;
	struct proto_attr stored;
	bool pending;
} race;

static void
h_overlay(void *arg, struct proto_attr *a)
{
	k.arg_seen = arg;
	if (race.pending) {
		race.pending = false;
		mcache_stored_attr(race.mc, &race.stored);
		return; /* and no write state any more */
	}
	if (k.overlay)
		a->size = 777;
}

static int
h_orphan(void *arg, const struct fid *fid, struct proto_attr *out)
{
	k.arg_seen = arg;
	if (!k.orphan)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	out->fid = *fid;
	out->type = PROTO_T_FILE;
	out->size = 42;
	return 0;
}

static bool
h_active(void *arg, const struct fid *fid)
{
	(void)fid;
	k.arg_seen = arg;
	return k.active;
}

static void
h_dv_changed(void *arg, const struct proto_attr *a)
{
	(void)a;
	k.arg_seen = arg;
	k.dv_changed++;
}

static struct fid
mkfid(uint8_t b)
{
	struct fid f;

	memset(&f, 0, sizeof(f));
	f.vol = VOL;
	f.oid[0] = b;
	return f;
}

static struct proto_attr
mkattr(const struct fid *fid, enum proto_type t, uint64_t dv)
{
	struct proto_attr a;

	memset(&a, 0, sizeof(a));
	a.fid = *fid;
	a.type = t;
	a.mode = t == PROTO_T_DIR ? 0755 : 0644;
	a.nlink = t == PROTO_T_DIR ? 2 : 1;
	a.dv = dv;
	a.size = t == PROTO_T_FILE ? 100 : 0;
	a.ctime_ns = 1000;
	return a;
}

/* Make @fid known to the kernel (an inode entry). @return its number. */
static uint64_t
known(struct ino_table *ino, const struct fid *fid)
{
	struct ino_ent *e;
	uint64_t n;

	ino_lock(ino);
	e = ino_add_locked(ino, fid);
	n = e ? e->ino : 0;
	ino_unlock(ino);
	return n;
}

static bool
has_name(struct mcache *mc, const struct fid *d, const char *name)
{
	struct vc_dir *l = NULL;
	bool found;

	if (mcache_dir(mc, d, &l) < 0)
		return false;
	found = vc_dir_find(l, name, strlen(name)) >= 0;
	vc_dir_put(l);
	return found;
}

int
main(void)
{
	struct fid root = mkfid(1), f = mkfid(2), d = mkfid(3), g = mkfid(4);
	struct cs_params p = {.chunk_size = 65536};
	struct proto_attr a, got, after;
	struct proto_dirent ent;
	struct proto_dir pd;
	struct cm_stats st;
	struct cm_loop loop;
	struct mcache_hooks hooks = {
		.overlay = h_overlay,
		.orphan_attr = h_orphan,
		.active = h_active,
		.dv_changed = h_dv_changed,
		.arg = &k,
	};
	struct ino_table *ino;
	struct mcache *mc;
	struct cs_store *cs;
	struct vc *vc;
	struct cs_key ck;
	struct cs_info ci;
	char path[256], buf[100], cmd[300];
	uint64_t dv1, dv2;
	int err = 0;

	/* Small caches, quickly made (vc_set_new_hash_size()). */
	vc_set_new_hash_size(131071);

	log_init("test_cm_mcache", 0, LOG_CRIT);
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/cs", dir);
	if (mkdir(path, 0700) < 0 || cs_create(path, &p) < 0)
		return 1;
	cs = cs_open(path, &p, &err);
	snprintf(path, sizeof(path), "%s/meta.tdb", dir);
	vc = cs ? vc_open(path, VOL, cs_chunk_size(cs)) : NULL;
	ino = ino_new(&root);
	memset(&st, 0, sizeof(st));
	cm_loop_init(&loop);
	loop.kops.inval_inode = k_inval_inode;
	loop.kops.inval_entry = k_inval_entry;
	mc = vc && ino ? mcache_new(ino, vc, cs, &loop, &st, &hooks) : NULL;
	if (!mc) {
		diag("cannot set up: %s", strerror(err ? -err : errno));
		return 1;
	}

	/* Lookups: a miss, the orphan hook, the tdb, the overlay. */
	is_int(mcache_attr(mc, &f, &got), -ENOENT, "miss: -ENOENT");
	k.orphan = true;
	ok(mcache_attr(mc, &f, &got) == 0 && got.size == 42,
	   "miss of an open unlinked file: the orphan hook answers");
	ok(k.arg_seen == &k, "hooks get their own arg");
	k.orphan = false;
	a = mkattr(&f, PROTO_T_FILE, 1);
	vc_put_attr(vc, &a);
	ok(mcache_attr(mc, &f, &got) == 0 && got.size == 100 && got.dv == 1,
	   "from the tdb");
	k.overlay = true;
	ok(mcache_attr(mc, &f, &got) == 0 && got.size == 777,
	   "a write state's size goes over the cached one");
	k.overlay = false;

	/* A fresh attribute with the same DV: only the kernel's attrs. */
	ok(known(ino, &f) != 0, "f known to the kernel");
	a.mode = 0600;
	ok(!mcache_apply(mc, &a, true, false), "a file: no listing to fetch");
	is_int(k.inval_inode, 1, "mode change: one inode invalidation");
	is_int((int)k.last_off, -1, "... of the attributes only");
	is_int(k.dv_changed, 0, "same DV: pins not told");

	/* A new DV drops the chunks of older ones and tells pins. */
	cm_chunk_key(&ck, &f, 0);
	memset(buf, 'x', sizeof(buf));
	ok(cs_put(cs, &ck, 1, buf, sizeof(buf), 0) == 0, "chunk at DV 1");
	a.dv = 2;
	mcache_apply(mc, &a, true, false);
	is_int(cs_lookup(cs, &ck, &ci), -ENOENT, "DV 2: the DV 1 chunk goes");
	is_int(k.inval_inode, 2, "and the kernel's pages");
	is_int((int)k.last_off, 0, "... data too");
	is_int(k.dv_changed, 1, "pins told of the new DV");
	ok(mcache_attr(mc, &f, &got) == 0 && got.dv == 2, "DV 2 cached");

	/* Fetched answers at the DV cached (a chmod keeps it): the server's
	 * ctime orders two of its own answers; a client's clock does not. */
	{
		struct proto_attr fa;
		bool taken;

		a.mode = 0640;
		a.ctime_ns = 2000;
		mcache_apply(mc, &a, true, false); /* an answer of ours */
		fa = a;
		fa.mode = 0600;
		fa.ctime_ns = 1500;
		mcache_apply_fetched(mc, &fa, true, true, &taken);
		ok(!taken, "fetched at the same DV, earlier ctime: not taken");
		ok(mcache_attr(mc, &f, &got) == 0 && got.mode == 0640,
		   "... the answer's mode stays");
		fa.mode = 0604;
		fa.ctime_ns = 2500;
		mcache_apply_fetched(mc, &fa, true, true, &taken);
		ok(taken && mcache_attr(mc, &f, &got) == 0 && got.mode == 0604,
		   "a later ctime is taken");
		fa.mode = 0700;
		fa.ctime_ns = 9000; /* a local change, the client's clock */
		mcache_offline_attr(mc, &fa);
		fa.mode = 0611;
		fa.ctime_ns = 3000;
		mcache_apply_fetched(mc, &fa, true, true, &taken);
		ok(taken && mcache_attr(mc, &f, &got) == 0 && got.mode == 0611,
		   "over attributes of a local change: taken (no order)");
		a = fa;
	}

	/* The same once the kernel forgot the inode (drop_caches under
	 * load, t4088): its entry went, and with it the mark that the
	 * attributes are the server's; the file's record keeps it. */
	{
		struct proto_attr fa;
		struct ino_ent *e;
		bool taken, server;
		uint64_t n = known(ino, &f);

		a.mode = 0650;
		a.ctime_ns = 4000;
		mcache_apply(mc, &a, true, false); /* an answer of ours */
		ino_forget(ino, n, UINT64_MAX);
		ino_lock(ino);
		e = ino_find_locked(ino, &f);
		ino_unlock(ino);
		ok(!e, "forgotten: no inode entry");
		fa = a;
		fa.mode = 0600;
		fa.ctime_ns = 3500;
		mcache_apply_fetched(mc, &fa, true, true, &taken);
		ok(!taken, "forgotten: fetched, earlier ctime: not taken");
		known(ino, &f);
		ok(mcache_attr_src(mc, &f, &got, &server) == 0 &&
			   got.mode == 0650 && server,
		   "looked up again: the answer's mode, the server's own");
		mcache_apply_fetched(mc, &fa, true, true, &taken);
		ok(!taken, "... and the late one still not taken");
		k.overlay = true;
		ok(mcache_attr_src(mc, &f, &got, &server) == 0 && !server,
		   "overlaid by a write state: not the server's");
		k.overlay = false;
		/* A record without the mark (an older cairnd's, or our own
		 * making): no order, taken as before. */
		n = known(ino, &f);
		ino_forget(ino, n, UINT64_MAX);
		vc_put_attr(vc, &a);
		mcache_apply_fetched(mc, &fa, true, true, &taken);
		ok(taken && mcache_attr_src(mc, &f, &got, &server) == 0 &&
			   got.mode == 0600 && server,
		   "a record without the mark: the fetched one is taken");
		a = fa;
	}

	/* A directory the kernel knows whose DV moved: its listing is due,
	 * unless the news came with the listing. */
	a = mkattr(&d, PROTO_T_DIR, 5);
	vc_put_attr(vc, &a);
	known(ino, &d);
	a.dv = 6;
	ok(mcache_apply(mc, &a, true, false), "dir DV moved: listing due");
	a.dv = 7;
	ok(!mcache_apply(mc, &a, true, true), "... not when it came with it");

	/* Our own change: the listing we hold is at d-1, so it is edited. */
	memset(&pd, 0, sizeof(pd));
	pd.dir = a; /* DV 7 */
	pd.n = 1;
	ent.name = "a";
	ent.attr = mkattr(&f, PROTO_T_FILE, 2);
	pd.ents = &ent;
	ok(vc_put_dir(vc, &pd) == 0 && has_name(mc, &d, "a"), "listing at 7");
	after = a;
	after.dv = 8;
	got = mkattr(&g, PROTO_T_FILE, 1);
	ok(!mcache_local_dir(mc, &after, NULL, "b", &got),
	   "create at DV 8 over the listing at 7: edited in place");
	ok(has_name(mc, &d, "a") && has_name(mc, &d, "b"), "a and b listed");
	after.dv = 10;
	ok(mcache_local_dir(mc, &after, "a", NULL, NULL),
	   "DV 10 over the listing at 8: someone else changed it, fetch it");

	/* Disconnected: a local DV, the listing edited. */
	after = mkattr(&d, PROTO_T_DIR, 11);
	mcache_local_attr(mc, &after);
	pd.dir = after;
	vc_put_dir(vc, &pd);
	memset(&got, 0, sizeof(got));
	ok(mcache_offline_dir(mc, &d, "a", NULL, NULL, 0, &got) == 0,
	   "offline unlink of a");
	ok(got.dv & CM_DV_LOCAL, "the directory gets a local DV");
	ok(!has_name(mc, &d, "a"), "a is gone from the listing");
	dv1 = mcache_local_dv(mc);
	dv2 = mcache_local_dv(mc);
	ok((dv1 & CM_DV_LOCAL) && dv2 == dv1 + 1, "local DVs count up");
	is_int(mcache_offline_dir(mc, &g, NULL, "x", NULL, 0, &got), -ENOENT,
	       "no listing cached: -ENOENT");

	/* Gone: a file with a write state keeps its chunks. */
	ok(cs_put(cs, &ck, 2, buf, sizeof(buf), 0) == 0, "chunk at DV 2");
	k.active = true;
	mcache_gone(mc, &f);
	ok(cs_lookup(cs, &ck, &ci) == 0, "gone but written: chunks stay");
	is_int(mcache_attr(mc, &f, &got), -ENOENT, "attributes forgotten");
	k.active = false;
	mcache_gone(mc, &f);
	is_int(cs_lookup(cs, &ck, &ci), -ENOENT, "gone: chunks dropped");

	/* Pending attributes (a listing's page): lookups see them before
	 * they are in the file; news replaces them, and the write of the
	 * pending ones never puts the older value back. */
	{
		struct fid p1 = mkfid(20), p2 = mkfid(21), p3 = mkfid(22);
		struct proto_attr pa[3];

		pa[0] = mkattr(&p1, PROTO_T_FILE, 3);
		pa[1] = mkattr(&p2, PROTO_T_FILE, 4);
		pa[2] = mkattr(&p3, PROTO_T_FILE, 5);
		mcache_store_attrs(mc, pa, 3);
		is_int(vc_get_attr(vc, &p1, &got), -ENOENT,
		       "pending: not in the file yet");
		ok(mcache_attr(mc, &p1, &got) == 0 && got.dv == 3,
		   "  but a lookup sees it");
		after = pa[1];
		after.mode = 0600;
		after.dv = 9;
		mcache_local_attr(mc, &after); /* news about p2 */
		mcache_drop_attr(mc, &p3);
		is_int(mcache_attr(mc, &p3, &got), -ENOENT,
		       "a dropped pending attribute is gone");
		is_int((int)mcache_sync_attrs(mc, 0), 1,
		       "news and a drop took two out: one still pending");
		is_int((int)mcache_sync_attrs(mc, SIZE_MAX), 0,
		       "write the rest: none pending");
		ok(vc_get_attr(vc, &p1, &got) == 0 && got.dv == 3,
		   "the pending one is in the file");
		ok(vc_get_attr(vc, &p2, &got) == 0 && got.dv == 9 &&
			   got.mode == 0600,
		   "the news stands, not the older pending value");
		is_int(vc_get_attr(vc, &p3, &got), -ENOENT,
		       "the dropped one was not written");
		pa[0].dv = 10;
		mcache_store_attrs(mc, pa, 1);
		pa[0].dv = 11;
		mcache_store_attrs(mc, pa, 1);
		ok(mcache_attr(mc, &p1, &got) == 0 && got.dv == 11,
		   "a pending attribute listed again: the newer one");
		mcache_forget(mc, &p1);
		is_int(mcache_attr(mc, &p1, &got), -ENOENT,
		       "forgotten: pending and file both");
		pa[0] = mkattr(&p1, PROTO_T_FILE, 13);
		pa[2] = mkattr(&p3, PROTO_T_FILE, 14);
		mcache_store_attrs(mc, pa, 3);
		is_int((int)mcache_sync_attrs(mc, 2), 1,
		       "a slice of two of three: one left");
		is_int((int)mcache_sync_attrs(mc, SIZE_MAX), 0, "then none");
		/* An event found applied by a pending value: that value
		 * is written now, before the sequence passes the event. */
		pa[0] = mkattr(&p1, PROTO_T_FILE, 20);
		vc_put_attr(vc, &pa[0]);
		pa[0].dv = 21;
		mcache_store_attrs(mc, pa, 1);
		mcache_sync_attr(mc, &p1);
		ok(vc_get_attr(vc, &p1, &got) == 0 && got.dv == 21,
		   "mcache_sync_attr(): the pending value is in the file");
		is_int((int)mcache_sync_attrs(mc, 0), 0, "  and not pending");
		mcache_sync_attr(mc, &p3); /* not pending: nothing */
		ok(vc_get_attr(vc, &p3, &got) == 0 && got.dv == 14,
		   "  one not pending is left as it is");
		/* A directory's fetched listing over its pending attributes
		 * (its parent's listing): the listing's stand. */
		{
			struct fid pd5 = mkfid(23);
			struct vc_dirb b;
			struct vc_dir *nd;

			pa[0] = mkattr(&pd5, PROTO_T_DIR, 6);
			mcache_store_attrs(mc, pa, 1);
			memset(&b, 0, sizeof(b));
			vc_dirb_add(&b, "x", PROTO_T_FILE, &p1);
			nd = vc_dirb_finish(&b, &pd5, 7);
			ok(nd != NULL, "a listing at DV 7");
			pa[0].dv = 7;
			if (nd)
				mcache_put_listing(mc, &pa[0], nd);
			vc_dir_put(nd);
			ok(mcache_attr(mc, &pd5, &got) == 0 && got.dv == 7,
			   "put_listing: its attributes seen, not the pending");
			is_int((int)mcache_sync_attrs(mc, SIZE_MAX), 0,
			       "  sync");
			ok(vc_get_attr(vc, &pd5, &got) == 0 && got.dv == 7,
			   "  the file keeps DV 7, not the older pending 6");
		}
		pa[1].dv = 12;
		mcache_store_attrs(mc, &pa[1], 1);
	}

	/* The pending table full (half its slots: clusters, wrap-around,
	 * moves back on removal): every entry found, removed ones gone,
	 * every one written exactly as it was. */
	{
		enum { NP = 128 * 1024 };
		struct proto_attr *pa = calloc(NP, sizeof(*pa));
		size_t left, bad = 0, bad2 = 0, slices = 0;

		srand(7);
		for (int i = 0; pa && i < NP; i++) {
			struct fid fx;

			fx.vol = VOL;
			for (int b = 0; b < FID_OID_LEN; b++)
				fx.oid[b] = (uint8_t)rand();
			fx.oid[0] = 0xee; /* apart from the FIDs above */
			pa[i] = mkattr(&fx, PROTO_T_FILE, (uint64_t)i + 1);
		}
		if (pa)
			mcache_store_attrs(mc, pa, NP);
		/* Full: one already pending listed again is replaced in
		 * place, a new one goes to the file. */
		if (pa) {
			struct proto_attr two[2];
			struct fid nf = mkfid(24);

			two[0] = pa[1];
			two[0].dv = 7777777;
			two[1] = mkattr(&nf, PROTO_T_FILE, 5);
			mcache_store_attrs(mc, two, 2);
			ok(mcache_attr(mc, &pa[1].fid, &got) == 0 &&
				   got.dv == 7777777,
			   "table full: a pending one updated in place");
			ok(vc_get_attr(vc, &nf, &got) == 0 && got.dv == 5,
			   "  a new one written to the file");
			mcache_store_attrs(mc, &pa[1], 1); /* back */
			ok(mcache_attr(mc, &pa[1].fid, &got) == 0 &&
				   got.dv == 2,
			   "  and again");
		}
		for (int i = 0; pa && i < NP; i += 3)
			mcache_drop_attr(mc, &pa[i].fid);
		/* SIZE_MAX: everything, in slices that drop the lock. */
		if (pa) {
			struct proto_attr *cp = malloc(5000 * sizeof(*cp));
			size_t bad0 = 0;

			for (int i = 0; cp && i < 5000; i++) {
				cp[i] = pa[i];
				cp[i].fid.oid[0] = 0xef; /* others */
			}
			mcache_sync_attrs(mc, SIZE_MAX);
			if (cp)
				mcache_store_attrs(mc, cp, 5000);
			is_int((int)mcache_sync_attrs(mc, SIZE_MAX), 0,
			       "5,000 pending written whole (SIZE_MAX)");
			for (int i = 0; cp && i < 5000; i++)
				if (vc_get_attr(vc, &cp[i].fid, &got) != 0 ||
				    got.dv != cp[i].dv)
					bad0++;
			is_int((int)bad0, 0, "  each one in the file");
			free(cp);
			/* pending again, as the checks below expect */
			mcache_store_attrs(mc, pa, NP);
			for (int i = 0; i < NP; i += 3)
				mcache_drop_attr(mc, &pa[i].fid);
		}
		for (int i = 0; pa && i < NP; i++) {
			int rc = mcache_attr(mc, &pa[i].fid, &got);

			if (i % 3 == 0 ? rc != -ENOENT
				       : rc != 0 || got.dv != (uint64_t)i + 1)
				bad++;
		}
		is_int((int)bad, 0, "%d pending, a third dropped: all right",
		       NP);
		is_int((int)mcache_sync_attrs(mc, 0), NP - (NP + 2) / 3,
		       "  the count");
		while ((left = mcache_sync_attrs(mc, 5000)) > 0 &&
		       slices < 1000)
			slices++;
		is_int((int)left, 0, "written in slices of 5,000");
		for (int i = 0; pa && i < NP; i++) {
			int rc = vc_get_attr(vc, &pa[i].fid, &got);

			if (i % 3 == 0 ? rc != -ENOENT
				       : rc != 0 || got.dv != (uint64_t)i + 1)
				bad2++;
		}
		is_int((int)bad2, 0, "  each as it was, the dropped ones not");
		free(pa);
	}

	/* The attributes read before a store's answer installed its own,
	 * the overlay after its write state went: read again (t2364's
	 * reader got the size before the store, zeros past the new one). */
	{
		struct fid h = mkfid(0xe1);
		struct proto_attr old = mkattr(&h, PROTO_T_FILE, 5);

		old.size = 295021;
		ok(known(ino, &h) != 0, "h known to the kernel");
		mcache_apply(mc, &old, true, false);
		race.mc = mc;
		race.stored = old;
		race.stored.dv = 6;
		race.stored.size = 202945;
		race.pending = true;
		ok(mcache_attr(mc, &h, &got) == 0 && got.dv == 6 &&
			   got.size == 202945,
		   "a store answered under the overlay: its attributes");
		ok(!race.pending, "  (answered between the two)");
	}

	is_int((int)atomic_load(&st.invalidations),
	       (int)(k.inval_inode + k.inval_entry),
	       "every notification counted");

	mcache_free(mc);
	{
		struct fid p2 = mkfid(21);

		ok(vc_get_attr(vc, &p2, &got) == 0 && got.dv == 12,
		   "mcache_free() writes what is still pending");
	}
	ino_free(ino);
	vc_close(vc);
	cs_close(cs);
	cm_loop_release(&loop);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		diag("cannot remove %s", dir);
	return done_testing();
}
