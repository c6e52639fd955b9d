/*
 * mcache.c - the cached metadata of cairnd (mcache.h): lookups from the
 * inode table and the metadata cache, the edits news and our own changes
 * make to them, and the kernel notifications those call for.
 *
 * It never fetches and never replies to FUSE; mfetch.c fills it from the
 * server, the FUSE front and the control handlers read it.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chunkstore/cs.h"
#include "cm/inode.h"
#include "cm/loop.h"
#include "cm/mcache.h"
#include "cm/stats.h"
#include "cm/vc.h"
#include "common/log.h"
#include "common/memtrim.h"
#include "common/util.h"

struct mcache {
	struct ino_table *ino; /* thread-safe (own lock) */
	struct vc *vc;	       /* thread-safe */
	struct cs_store *cs;   /* thread-safe */
	struct cm_loop *loop;  /* its kernel ops */
	struct cm_stats *st;
	struct mcache_hooks hooks; /* never changed after mcache_new() */
	_Atomic uint64_t next_dv;  /* mcache_local_dv(); 0: not seeded */
	/* One edit of a cached listing at a time (read, edit, install):
	 * the loop applies replies, FUSE workers add late creates and
	 * disconnected changes. */
	pthread_mutex_t edit;
	/* Attributes from listings not yet in the cache file ("pending",
	 * below); pend_lock guards them. */
	pthread_mutex_t pend_lock;
	struct pend_slot *pend;	   /* PEND_SLOTS slots, or NULL */
	size_t npend;
	size_t pend_pos;	   /* where the next write resumes */
	atomic_size_t npend_any; /* npend, read without the lock */
};

/*
 * Pending attributes. A cold listing stored every entry's attributes in
 * meta.tdb as its pages came: a tdb record an entry, 40 % of cairnd's CPU
 * in a cold ls -f of 100,000 entries (doc/cm.md "Profiles of the
 * big-directory rows"), all of it before the first READDIR was answered.
 * Now mcache_store_attrs() keeps them here and mcache_sync_attrs() (on
 * the loop, once listings stop coming: mfetch.c) moves them to the file.
 * A lookup reads the inode table, then here, then the file, so a pending
 * attribute is the cached one. Any other change to the attributes of a
 * FID (news, our own changes, drops, forgets) first takes it out of here
 * (pend_del()), under pend_lock, and the sync writes under pend_lock too:
 * an older pending value never lands over a newer stored one. A crash
 * loses what is pending: those entries are fetched again (a listing's
 * READDIRPLUS then fetches the listing again, a LOOKUP the attributes),
 * as for any record the cache does not hold; news found already applied
 * by a pending value writes that value first (mcache_sync_attr()), so
 * the saved event sequence never passes it while the file is older.
 * Bounded: past PEND_MAX new entries are stored synchronously (ones
 * already pending are still replaced in place). Every pending value is
 * a listing's, the server's own: it goes to the file marked so
 * (VC_ATTR_SERVER, PEND_VC_FLAGS), and a pending value read is taken as
 * the server's (fetched_older()).
 */
#define PEND_MAX (128 * 1024)
#define PEND_VC_FLAGS VC_ATTR_SERVER
/* An open-addressed table (linear probing) of (hash, node) pairs at most
 * half full, so a lookup that misses, most of a cold listing's, reads one
 * slot and no node: with chains of nodes, the nodes' cache misses were a
 * sixth of the listing's CPU. 4 MiB, allocated while anything is
 * pending. */
#define PEND_SLOTS (2 * PEND_MAX)
#define PEND_MASK (PEND_SLOTS - 1)
#define PEND_USED (1ull << 63) /* in every tag: 0 is an empty slot */

struct pend_node {
	struct proto_attr a;
};

struct pend_slot {
	uint64_t tag; /* the FID's hash | PEND_USED, or 0 */
	struct pend_node *n;
};

static uint64_t
pend_tag(const struct fid *fid)
{
	uint64_t h = fid->vol, w;

	for (int i = 0; i < FID_OID_LEN; i += 8) {
		memcpy(&w, fid->oid + i, sizeof(w));
		h ^= w;
		h *= 0x9e3779b97f4a7c15ull;
		h ^= h >> 29;
	}
	return h | PEND_USED;
}

/* With pend_lock held: the slot of @fid, or -1 with *@free_at the empty
 * slot where it would go (tag in *@tagp). */
static long
pend_find_locked(struct mcache *mc, const struct fid *fid, uint64_t *tagp,
		 size_t *free_at)
{
	uint64_t tag = pend_tag(fid);
	size_t i = (size_t)tag & PEND_MASK;

	if (tagp)
		*tagp = tag;
	if (!mc->pend)
		return -1;
	for (;; i = (i + 1) & PEND_MASK) {
		struct pend_slot *sl = &mc->pend[i];

		if (!sl->tag) {
			if (free_at)
				*free_at = i;
			return -1;
		}
		if (sl->tag == tag && fid_eq(&sl->n->a.fid, fid))
			return (long)i;
	}
}

void
mcache_prefetch_ents(struct mcache *mc, const struct proto_dirent *ents,
		     size_t n)
{
	/* A cold listing's lookups miss; each miss of the 4 MiB table
	 * waited for memory alone (pend_find_locked was 14-17 % of
	 * cairnd's samples in a cold ls -f of 100,000 entries, nearly all
	 * on the load of the slot's tag; 4-5 % with this). The lines
	 * asked for here arrive together; dir_take() asks for the next
	 * TAKE_CHUNK entries' while it applies these, as lines asked for
	 * a whole page ahead were evicted again before their turn. */
	pthread_mutex_lock(&mc->pend_lock);
	for (size_t i = 0; mc->pend && i < n; i++) {
		size_t at = (size_t)pend_tag(&ents[i].attr.fid) & PEND_MASK;

		__builtin_prefetch(&mc->pend[at], 1, 3);
	}
	pthread_mutex_unlock(&mc->pend_lock);
}

/* With pend_lock held: empty slot @i, moving back the entries after it
 * that would no longer be found (backward-shift deletion). */
static void
pend_remove_slot_locked(struct mcache *mc, size_t i)
{
	size_t j = i;

	free(mc->pend[i].n);
	for (;;) {
		size_t home;

		j = (j + 1) & PEND_MASK;
		if (!mc->pend[j].tag)
			break;
		home = (size_t)mc->pend[j].tag & PEND_MASK;
		/* Stays if its home lies cyclically in (i, j]. */
		if (i <= j ? (home > i && home <= j) : (home > i || home <= j))
			continue;
		mc->pend[i] = mc->pend[j];
		i = j;
	}
	mc->pend[i].tag = 0;
	mc->pend[i].n = NULL;
	mc->npend--;
}

/* With pend_lock held: nothing pending, the table goes. */
static void
pend_empty_locked(struct mcache *mc)
{
	if (mc->npend || !mc->pend)
		return;
	free(mc->pend);
	mc->pend = NULL;
	mc->pend_pos = 0;
}

static bool
pend_get(struct mcache *mc, const struct fid *fid, struct proto_attr *out)
{
	bool found = false;
	long i;

	if (!atomic_load_explicit(&mc->npend_any, memory_order_relaxed))
		return false;
	pthread_mutex_lock(&mc->pend_lock);
	i = pend_find_locked(mc, fid, NULL, NULL);
	if (i >= 0) {
		*out = mc->pend[i].n->a;
		found = true;
	}
	pthread_mutex_unlock(&mc->pend_lock);
	return found;
}

/* With pend_lock held: drop @fid's pending attributes. */
static void
pend_del_locked(struct mcache *mc, const struct fid *fid)
{
	long i = pend_find_locked(mc, fid, NULL, NULL);

	if (i < 0)
		return;
	pend_remove_slot_locked(mc, (size_t)i);
	atomic_store_explicit(&mc->npend_any, mc->npend, memory_order_relaxed);
	pend_empty_locked(mc);
}

/* Before any other write of @fid's attributes (see above). */
static void
pend_del(struct mcache *mc, const struct fid *fid)
{
	if (!atomic_load_explicit(&mc->npend_any, memory_order_relaxed))
		return;
	pthread_mutex_lock(&mc->pend_lock);
	pend_del_locked(mc, fid);
	pthread_mutex_unlock(&mc->pend_lock);
}

/* With pend_lock held: write up to @max pending attributes to the file
 * and drop them. @return how many are left. */
static size_t
pend_sync_locked(struct mcache *mc, size_t max)
{
	struct proto_attr *buf;
	size_t k = 0, cap = max < 1024 ? max : 1024, done = 0, scanned = 0;
	int rc;

	if (!mc->npend || !max)
		return mc->npend;
	buf = malloc(cap * sizeof(*buf));
	/* From where the last write stopped. Removing a slot only moves
	 * later entries back to it or after it, so a scan of every slot
	 * sees each entry. */
	while (mc->npend && max && scanned < PEND_SLOTS) {
		struct pend_slot *sl = &mc->pend[mc->pend_pos];

		if (!sl->tag) {
			mc->pend_pos = (mc->pend_pos + 1) & PEND_MASK;
			scanned++;
			continue;
		}
		if (buf) {
			buf[k++] = sl->n->a;
		} else {
			rc = vc_put_attrs_flags(mc->vc, &sl->n->a, 1,
						PEND_VC_FLAGS);
			if (rc < 0)
				log_warn(LOG_META, "cannot store attributes: %s",
					 strerror(-rc));
		}
		pend_remove_slot_locked(mc, mc->pend_pos);
		max--;
		done++;
		if (buf && k == cap) {
			rc = vc_put_attrs_flags(mc->vc, buf, k, PEND_VC_FLAGS);
			if (rc < 0)
				log_warn(LOG_META, "cannot store attributes: %s",
					 strerror(-rc));
			k = 0;
		}
	}
	if (buf && k &&
	    (rc = vc_put_attrs_flags(mc->vc, buf, k, PEND_VC_FLAGS)) < 0)
		log_warn(LOG_META, "cannot store attributes: %s",
			 strerror(-rc));
	free(buf);
	/* The nodes go back to the system once the burst is over. */
	if (done)
		memtrim_note(done * sizeof(struct pend_node));
	atomic_store_explicit(&mc->npend_any, mc->npend, memory_order_relaxed);
	pend_empty_locked(mc);
	return mc->npend;
}

void
mcache_sync_attr(struct mcache *mc, const struct fid *fid)
{
	struct proto_attr a;
	long i;
	int rc;

	if (!atomic_load_explicit(&mc->npend_any, memory_order_relaxed))
		return;
	pthread_mutex_lock(&mc->pend_lock);
	i = pend_find_locked(mc, fid, NULL, NULL);
	if (i >= 0) {
		/* Under pend_lock, as the sync: no older value after it. */
		a = mc->pend[i].n->a;
		rc = vc_put_attrs_flags(mc->vc, &a, 1, PEND_VC_FLAGS);
		if (rc < 0)
			log_warn(LOG_META, "cannot store attributes: %s",
				 strerror(-rc));
		pend_remove_slot_locked(mc, (size_t)i);
		atomic_store_explicit(&mc->npend_any, mc->npend,
				      memory_order_relaxed);
		pend_empty_locked(mc);
	}
	pthread_mutex_unlock(&mc->pend_lock);
}

/* A sync of everything drops pend_lock every PEND_SLICE writes, so a
 * lookup that misses the inode table waits for at most that many. */
#define PEND_SLICE 2048

size_t
mcache_sync_attrs(struct mcache *mc, size_t max)
{
	size_t left, budget = max;

	if (!atomic_load_explicit(&mc->npend_any, memory_order_relaxed))
		return 0;
	pthread_mutex_lock(&mc->pend_lock);
	/* Bounded by what was pending at the start: entries added
	 * meanwhile (a listing still coming) may stay. */
	if (max == SIZE_MAX)
		budget = mc->npend;
	for (;;) {
		size_t n = budget < PEND_SLICE ? budget : PEND_SLICE;

		left = pend_sync_locked(mc, n);
		budget -= n;
		if (!left || !budget)
			break;
		pthread_mutex_unlock(&mc->pend_lock);
		pthread_mutex_lock(&mc->pend_lock);
		left = mc->npend;
		if (!left)
			break;
	}
	pthread_mutex_unlock(&mc->pend_lock);
	return left;
}

struct mcache *
mcache_new(struct ino_table *ino, struct vc *vc, struct cs_store *cs,
	   struct cm_loop *loop, struct cm_stats *st,
	   const struct mcache_hooks *hooks)
{
	struct mcache *mc = calloc(1, sizeof(*mc));

	if (!mc)
		return NULL;
	pthread_mutex_init(&mc->edit, NULL);
	pthread_mutex_init(&mc->pend_lock, NULL);
	atomic_init(&mc->npend_any, 0);
	mc->ino = ino;
	mc->vc = vc;
	mc->cs = cs;
	mc->loop = loop;
	mc->st = st;
	atomic_init(&mc->next_dv, 0);
	if (hooks)
		mc->hooks = *hooks;
	return mc;
}

void
mcache_free(struct mcache *mc)
{
	if (!mc)
		return;
	/* What is still pending goes to the file (a clean stop keeps it). */
	mcache_sync_attrs(mc, SIZE_MAX);
	free(mc->pend);
	pthread_mutex_destroy(&mc->pend_lock);
	pthread_mutex_destroy(&mc->edit);
	free(mc);
}

/* --- kernel notifications --- */

void
mcache_inval_inode(struct mcache *mc, uint64_t ino, int64_t off, int64_t len)
{
	const struct cm_kernel_ops *k = &mc->loop->kops;

	if (!ino || !k->inval_inode)
		return;
	CM_STAT_INC(mc->st, invalidations);
	k->inval_inode(k->arg, ino, off, len);
}

static void
inval_entry(struct mcache *mc, uint64_t parent, const char *name, size_t len)
{
	const struct cm_kernel_ops *k = &mc->loop->kops;

	if (!parent || !k->inval_entry)
		return;
	CM_STAT_INC(mc->st, invalidations);
	k->inval_entry(k->arg, parent, name, len);
}

/* --- cached lookups (any thread) --- */

static bool
same_attr(const struct proto_attr *a, const struct proto_attr *b)
{
	return a->type == b->type && a->mode == b->mode && a->uid == b->uid &&
	       a->gid == b->gid && a->size == b->size && a->nlink == b->nlink &&
	       a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns &&
	       a->atime_ns == b->atime_ns;
}

/* Did the server give @a, not our own making (a local DV, or 0: a create
 * not answered yet)? */
static bool
server_attr(const struct proto_attr *a)
{
	return a->dv && !(a->dv & CM_DV_LOCAL);
}

/* The flags of an 'A' record of @a stored with the same mark as an inode
 * entry gets (ino_ent.attr_server): so a lookup after the kernel forgot
 * the inode, and its entry with the mark, reads the mark back. */
static unsigned
vc_flags(const struct proto_attr *a)
{
	return server_attr(a) ? VC_ATTR_SERVER : 0;
}

/* The attributes of @fid outside the inode table: pending, else in the
 * file. *@server: whether they are the server's own (a pending value
 * always is, a record when it says so). @return 0 or -ENOENT. */
static int
stored_attr(struct mcache *mc, const struct fid *fid, struct proto_attr *out,
	    bool *server)
{
	unsigned flags = 0;
	int rc;

	*server = false;
	if (pend_get(mc, fid, out)) {
		*server = true;
		return 0;
	}
	rc = vc_get_attr_flags(mc->vc, fid, out, &flags);
	if (rc == 0)
		*server = flags & VC_ATTR_SERVER;
	return rc;
}

int
mcache_attr(struct mcache *mc, const struct fid *fid, struct proto_attr *out)
{
	return mcache_attr_src(mc, fid, out, NULL);
}

/* Are @fid's cached attributes in its inode entry still @raw? (None held
 * there: taken as unchanged.) */
static bool
entry_attr_is(struct mcache *mc, const struct fid *fid,
	      const struct proto_attr *raw)
{
	struct ino_ent *e;
	bool same = true;

	ino_lock(mc->ino);
	e = ino_find_locked(mc->ino, fid);
	if (e && e->have_attr)
		same = e->attr.dv == raw->dv && same_attr(&e->attr, raw);
	ino_unlock(mc->ino);
	return same;
}

/* How often mcache_attr_src() reads again attributes that changed under
 * the write state's overlay before it answers with what it has. */
#define ATTR_OVERLAY_TRIES 8

int
mcache_attr_src(struct mcache *mc, const struct fid *fid,
		struct proto_attr *out, bool *server)
{
	const struct mcache_hooks *h = &mc->hooks;
	struct proto_attr raw;
	struct ino_ent *e;
	bool srv = false;
	int rc, tries = 0;

	if (server)
		*server = false;
again:
	ino_lock(mc->ino);
	e = ino_find_locked(mc->ino, fid);
	if (e && e->have_attr) {
		*out = e->attr;
		srv = e->attr_server;
		ino_unlock(mc->ino);
		goto overlay;
	}
	ino_unlock(mc->ino);
	rc = stored_attr(mc, fid, out, &srv);
	if (rc < 0)
		return h->orphan_attr && h->orphan_attr(h->arg, fid, out) == 0
			       ? 0
			       : rc;
	ino_lock(mc->ino);
	e = ino_find_locked(mc->ino, fid);
	if (e && !e->have_attr) {
		e->attr = *out;
		e->have_attr = true;
		/* From the file, whose record says whether they are the
		 * server's: an inode the kernel forgot and looks up again
		 * must not lose it (t4088, fetched_older()). */
		e->attr_server = srv;
	}
	ino_unlock(mc->ino);
overlay:
	if (h->overlay) {
		raw = *out;
		h->overlay(h->arg, out);
		/*
		 * The attributes and the write state are read under two
		 * locks, one after the other. A store's answer installs
		 * its attributes, then the write state goes (stored(), then
		 * wb_store_end() or the close's wb_release_write()): read
		 * across both, the attributes from before the store got no
		 * overlay and went out as they were, the old version's size
		 * (doc/cm.md "An answer from before a store"). If they
		 * changed meanwhile, read both again: once the write state
		 * is gone, the attributes that replaced it are in.
		 */
		if (raw.type == PROTO_T_FILE && !entry_attr_is(mc, fid, &raw) &&
		    ++tries < ATTR_OVERLAY_TRIES)
			goto again;
		/* A write state's values are ours, not the server's. */
		if (srv && server && !same_attr(&raw, out))
			srv = false;
	}
	if (server)
		*server = srv;
	return 0;
}

/*
 * The stored listing @d of a directory whose attributes @a have another
 * DV: not served, the server's is fetched, unless
 *   - its DV is local and above @a's: an offline or writeback edit
 *     stores the listing, then the attributes (mcache_offline_dir(),
 *     install_dir()), and a kill between the two leaves this; nothing
 *     else does (a fetched listing and its directory's attributes are
 *     one transaction, vc_put_dir()). The edit was neither logged nor
 *     answered, so either state is right, and the listing's is the one
 *     we have: taken, the attributes moved to its DV, where changes of
 *     the directory are logged (ahead of the server) or nothing can be
 *     fetched (disconnected). Connected and not ahead, the server's
 *     listing is fetched as for any stale one.
 *   - disconnected, any other: the stored listing is older than the
 *     attributes (a connected edit kept in memory, a listing not
 *     fetched since an event, then a crash, and a start with the
 *     server down). It is what we have: served as it is (a cached,
 *     older view, as the files' data offline), the attributes
 *     unchanged, so that once connected the server's listing is
 *     fetched. An edit offline builds on it (a new local DV for both).
 *     Connected with the server down, a listing fetch still fails
 *     (EIO) until a change made offline disconnects the mount.
 * @a is updated when taken. @return whether @d is served.
 */
static bool
dir_other_dv_ok(struct mcache *mc, struct proto_attr *a,
		const struct vc_dir *d)
{
	bool offline = mc->hooks.disconnected &&
		       mc->hooks.disconnected(mc->hooks.arg);
	struct ino_ent *e;

	if ((d->dv & CM_DV_LOCAL) && d->dv > a->dv &&
	    (offline ||
	     (mc->hooks.ahead && mc->hooks.ahead(mc->hooks.arg, &a->fid)))) {
		log_info(LOG_META, "a listing stored by an edit a kill cut "
				   "short (DV %#llx, its directory's "
				   "attributes at %#llx): taken",
			 (unsigned long long)d->dv,
			 (unsigned long long)a->dv);
		CM_STAT_INC(mc->st, dir_torn);
		a->dv = d->dv;
		pend_del(mc, &a->fid);
		vc_put_attr(mc->vc, a);
		ino_lock(mc->ino);
		e = ino_find_locked(mc->ino, &a->fid);
		if (e && e->have_attr && e->attr.dv < d->dv)
			e->attr.dv = d->dv;
		ino_unlock(mc->ino);
		return true;
	}
	if (!offline)
		return false;
	log_debug(LOG_META, "disconnected: serving a stored listing at DV "
			    "%#llx, its directory's attributes at %#llx",
		  (unsigned long long)d->dv, (unsigned long long)a->dv);
	CM_STAT_INC(mc->st, dir_stale_offline);
	return true;
}

int
mcache_dir(struct mcache *mc, const struct fid *fid, struct vc_dir **out)
{
	struct proto_attr a;
	struct ino_ent *e;
	struct vc_dir *d = NULL;
	int rc;

	*out = NULL;
	rc = mcache_attr(mc, fid, &a);
	if (rc < 0)
		return rc;
	if (a.type != PROTO_T_DIR)
		return -ENOTDIR;
	ino_lock(mc->ino);
	e = ino_find_locked(mc->ino, fid);
	if (e && e->dir && e->dir->dv == a.dv)
		d = vc_dir_get(e->dir);
	ino_unlock(mc->ino);
	if (d) {
		*out = d;
		return 0;
	}
	rc = vc_get_dir(mc->vc, fid, &d);
	if (rc < 0)
		return rc;
	if (d->dv != a.dv && !dir_other_dv_ok(mc, &a, d)) {
		vc_dir_put(d);
		return -ENOENT;
	}
	ino_lock(mc->ino);
	e = ino_find_locked(mc->ino, fid);
	if (e && (!e->dir || e->dir->dv != d->dv)) {
		vc_dir_put(e->dir);
		e->dir = vc_dir_get(d);
	}
	ino_unlock(mc->ino);
	*out = d;
	return 0;
}

/* --- dropping --- */

void
mcache_drop_file(struct mcache *mc, const struct fid *fid)
{
	struct ino_ent *e;
	uint64_t ino = 0;

	ino_lock(mc->ino);
	e = ino_find_locked(mc->ino, fid);
	if (e) {
		e->have_attr = false;
		e->opened = false; /* no keep_cache at the next open */
		e->pages_dropped = true;
		ino = e->ino;
	}
	ino_unlock(mc->ino);
	pend_del(mc, fid);
	vc_del_attr(mc->vc, fid);
	mcache_inval_inode(mc, ino, 0, 0);
}

void
mcache_drop_attr(struct mcache *mc, const struct fid *fid)
{
	struct ino_ent *e;

	ino_lock(mc->ino);
	e = ino_find_locked(mc->ino, fid);
	if (e)
		e->have_attr = false;
	ino_unlock(mc->ino);
	pend_del(mc, fid);
	vc_del_attr(mc->vc, fid);
}

/* Forget every cached record of @fid (fs flushmeta, flushall). */
void
mcache_forget(struct mcache *mc, const struct fid *fid)
{
	struct ino_ent *e;
	struct vc_dir *old = NULL;

	ino_lock(mc->ino);
	e = ino_find_locked(mc->ino, fid);
	if (e) {
		e->have_attr = false;
		old = e->dir;
		e->dir = NULL;
	}
	ino_unlock(mc->ino);
	vc_dir_put(old);
	pend_del(mc, fid);
	vc_forget(mc->vc, fid);
}

bool
mcache_ahead(struct mcache *mc, const struct fid *fid)
{
	return mc && mc->hooks.ahead && mc->hooks.ahead(mc->hooks.arg, fid);
}

void
mcache_gone(struct mcache *mc, const struct fid *fid)
{
	struct ino_ent *e;
	struct vc_dir *old = NULL;
	uint64_t ino = 0;

	if (mcache_ahead(mc, fid))
		return; /* made or changed here, not on the server yet */

	ino_lock(mc->ino);
	e = ino_find_locked(mc->ino, fid);
	if (e) {
		ino = e->ino;
		e->have_attr = false;
		old = e->dir;
		e->dir = NULL;
	}
	ino_unlock(mc->ino);
	vc_dir_put(old);
	pend_del(mc, fid);
	vc_forget(mc->vc, fid);
	/* A file open here keeps its chunks (unlinked while open, or
	 * written): wb.c drops them when the last handle goes. */
	if (!mc->hooks.active || !mc->hooks.active(mc->hooks.arg, fid))
		cs_invalidate(mc->cs, fid->vol, fid->oid, UINT64_MAX);
	mcache_inval_inode(mc, ino, 0, 0);
}

/* --- applying news --- */

/*
 * Is @a, fetched, older than the cached @old? Server DVs only grow, so a
 * cached server DV above @a's was answered after the server built @a. At
 * the same DV (a chmod, chown or utimes keeps it) the server's ctime
 * orders them: every change of an object's attributes moves it forward
 * (vol/vs_ops.c, touch_ctime()). Only when @old_server says @old is the
 * server's too (a client's clock is no order of the server's changes):
 * otherwise, as before, the fetched attributes are taken (t2352's late
 * getattr took a chmod back until the chmod's event; t4088). The mark is
 * the inode entry's, or the file's (VC_ATTR_SERVER) once the kernel
 * forgot the inode: before the file kept it, a late listing after a
 * forget took a chmod back (t4088 under load, other tests' drop_caches).
 */
static bool
fetched_older(const struct proto_attr *old, const struct proto_attr *a,
	      bool old_server)
{
	if (old->type != a->type || (old->dv & CM_DV_LOCAL) ||
	    (a->dv & CM_DV_LOCAL))
		return false;
	return old->dv > a->dv || (old_server && old->dv == a->dv &&
				   old->ctime_ns > a->ctime_ns);
}

bool
mcache_apply(struct mcache *mc, const struct proto_attr *a, bool store,
	     bool from_listing)
{
	return mcache_apply_fetched(mc, a, store, from_listing, NULL);
}

/* What is cached of @fid's attributes, before news replaces them: the
 * inode entry's, else (never held, or the kernel forgot the inode and its
 * entry went) what the file holds, each with its mark (*@server). The raw
 * values, no write state's overlay. With @note, the inode lookup notes
 * its bucket (ino_find_note_locked()) and *@absent says whether there was
 * no inode entry. @return whether there are any. */
static bool
cached_attr(struct mcache *mc, const struct fid *fid, struct proto_attr *out,
	    bool *server, struct ino_absent *note, bool *absent)
{
	struct ino_ent *e;
	bool have = false;

	ino_lock(mc->ino);
	e = note ? ino_find_note_locked(mc->ino, fid, note)
		 : ino_find_locked(mc->ino, fid);
	if (e && e->have_attr) {
		*out = e->attr;
		*server = e->attr_server;
		have = true;
	}
	if (absent)
		*absent = !e;
	ino_unlock(mc->ino);
	return have || stored_attr(mc, fid, out, server) == 0;
}

bool
mcache_fetched_older(struct mcache *mc, const struct proto_attr *a)
{
	struct proto_attr old;
	bool server = false;

	if (mcache_ahead(mc, &a->fid))
		return false; /* mcache_put_listing() keeps ours then */
	return cached_attr(mc, &a->fid, &old, &server, NULL, NULL) &&
	       fetched_older(&old, a, server);
}

bool
mcache_apply_fetched(struct mcache *mc, const struct proto_attr *a,
		     bool store, bool from_listing, bool *taken)
{
	struct proto_attr old;
	struct ino_ent *e;
	bool have_old = false, refetch = false, looked = false;
	bool old_server = false, absent = false;
	struct ino_absent note;
	uint64_t ino = 0;

	if (taken)
		*taken = true;
	if (mcache_ahead(mc, &a->fid) && mcache_attr(mc, &a->fid, &old) == 0)
		return false; /* our own view stands until it is sent */
	if (taken) {
		/* What we hold first: it is compared before it is replaced.
		 * The note of the bucket saves the second lookup below (a
		 * cold listing's entries have no inode entry; each lookup is
		 * a cache miss or more in a table of a million entries). */
		have_old = cached_attr(mc, &a->fid, &old, &old_server, &note,
				       &absent);
		if (have_old && fetched_older(&old, a, old_server)) {
			*taken = false;
			return false;
		}
		/* Read once: a cold listing's entries are in neither. */
		looked = true;
	}
	ino_lock(mc->ino);
	if (absent && ino_still_absent_locked(mc->ino, &a->fid, &note))
		e = NULL; /* still none: nothing made one since */
	else
		e = ino_find_locked(mc->ino, &a->fid);
	if (e) {
		ino = e->ino;
		if (e->have_attr) {
			old = e->attr;
			have_old = true;
		}
		e->attr = *a;
		e->have_attr = true;
		e->attr_server = server_attr(a);
	}
	ino_unlock(mc->ino);
	if (!have_old && !looked)
		have_old = stored_attr(mc, &a->fid, &old, &old_server) == 0;
	if (store) {
		pend_del(mc, &a->fid);
		vc_put_attrs_flags(mc->vc, a, 1, vc_flags(a));
	}
	if (!have_old)
		return false;
	if (old.dv != a->dv || old.type != a->type) {
		if (a->type == PROTO_T_FILE)
			cs_invalidate(mc->cs, a->fid.vol, a->fid.oid, a->dv);
		refetch = a->type == PROTO_T_DIR && ino && !from_listing;
		mcache_inval_inode(mc, ino, 0, 0);
		/* Also when no event said so (bulk revalidation). */
		if (mc->hooks.dv_changed)
			mc->hooks.dv_changed(mc->hooks.arg, a);
	} else if (!same_attr(&old, a)) {
		mcache_inval_inode(mc, ino, -1, 0);
	}
	if (old.ctime_ns != a->ctime_ns)
		vc_del_xattrs(mc->vc, &a->fid);
	return refetch;
}

/* Tell the kernel which names of directory @ino changed between @old and
 * @new (both in name order). */
static void
diff_entries(struct mcache *mc, uint64_t ino, const struct vc_dir *old,
	     const struct vc_dir *nw)
{
	size_t i = 0, j = 0;

	while (i < old->n || j < nw->n) {
		const struct vc_dirent *a =
			i < old->n ? vc_dir_ent(old, i) : NULL;
		const struct vc_dirent *b =
			j < nw->n ? vc_dir_ent(nw, j) : NULL;
		int c;

		if (!a)
			c = 1;
		else if (!b)
			c = -1;
		else {
			size_t l = a->namelen < b->namelen ? a->namelen
							   : b->namelen;

			c = memcmp(a->name, b->name, l);
			if (!c)
				c = (int)a->namelen - (int)b->namelen;
		}
		if (c < 0) {
			inval_entry(mc, ino, a->name, a->namelen);
			i++;
		} else if (c > 0) {
			inval_entry(mc, ino, b->name, b->namelen);
			j++;
		} else {
			if (!fid_eq(&a->fid, &b->fid))
				inval_entry(mc, ino, a->name, a->namelen);
			i++;
			j++;
		}
	}
}

void
mcache_put_listing(struct mcache *mc, const struct proto_attr *dir,
		   struct vc_dir *nw)
{
	struct vc_dir *old = NULL;
	struct ino_ent *e;
	uint64_t ino = 0;
	int rc;

	if (mcache_ahead(mc, &dir->fid)) {
		struct vc_dir *cur = NULL;

		/* Writeback: the local listing is ahead of the server's and
		 * stands until the log has drained (doc/cm.md, write modes). */
		if (mcache_dir(mc, &dir->fid, &cur) == 0) {
			vc_dir_put(cur);
			return;
		}
	}
	/* vc_put_listing() writes the directory's attributes: an older
	 * pending value (its parent's listing) must not land over them. */
	pend_del(mc, &dir->fid);
	rc = vc_put_listing(mc->vc, dir, nw);
	if (rc < 0)
		log_warn(LOG_META, "cannot store listing: %s", strerror(-rc));
	ino_lock(mc->ino);
	e = ino_find_locked(mc->ino, &dir->fid);
	if (e) {
		ino = e->ino;
		old = e->dir;
		e->dir = vc_dir_get(nw);
	}
	ino_unlock(mc->ino);
	if (ino && old && old->dv != nw->dv) {
		diff_entries(mc, ino, old, nw);
		mcache_inval_inode(mc, ino, 0, 0);
	}
	vc_dir_put(old);
}

/* Keep @n attributes pending (replacing pending ones of the same FIDs,
 * full table or not); new ones past PEND_MAX, or without memory, are
 * written to the file now. */
static int
pend_add(struct mcache *mc, const struct proto_attr *a, size_t n)
{
	struct proto_attr *over = NULL; /* to the file */
	size_t nover = 0;
	bool all_over = false;
	int rc = 0;

	pthread_mutex_lock(&mc->pend_lock);
	if (!mc->pend)
		mc->pend = calloc(PEND_SLOTS, sizeof(*mc->pend));
	for (size_t i = 0; i < n; i++) {
		struct pend_node *nd = NULL;
		size_t at = 0;
		uint64_t tag;
		long found = pend_find_locked(mc, &a[i].fid, &tag, &at);

		if (found >= 0) {
			mc->pend[found].n->a = a[i];
			continue;
		}
		if (mc->pend && mc->npend < PEND_MAX)
			nd = malloc(sizeof(*nd));
		if (nd) {
			nd->a = a[i];
			mc->pend[at].tag = tag;
			mc->pend[at].n = nd;
			mc->npend++;
			continue;
		}
		if (!over && !all_over) {
			over = malloc((n - i) * sizeof(*over));
			all_over = !over;
		}
		if (over)
			over[nover++] = a[i];
	}
	if (all_over) {
		/* No memory for the list: write the whole page, none of
		 * it pending (a pending value would shadow the file's). */
		for (size_t i = 0; i < n; i++)
			pend_del_locked(mc, &a[i].fid);
	}
	atomic_store_explicit(&mc->npend_any, mc->npend, memory_order_relaxed);
	pend_empty_locked(mc);
	pthread_mutex_unlock(&mc->pend_lock);
	if (all_over)
		rc = vc_put_attrs_flags(mc->vc, a, n, PEND_VC_FLAGS);
	else if (nover)
		rc = vc_put_attrs_flags(mc->vc, over, nover, PEND_VC_FLAGS);
	free(over);
	return rc;
}

void
mcache_store_attrs(struct mcache *mc, const struct proto_attr *a, size_t n)
{
	struct proto_attr *own = NULL;
	size_t k = 0;
	int rc;

	/* Writeback: attributes of objects ahead of the server (a live
	 * record names them) keep their local values; a listing's page
	 * does not replace them. */
	for (size_t i = 0; mc->hooks.ahead && i < n; i++) {
		if (!mcache_ahead(mc, &a[i].fid))
			continue;
		if (!own) {
			own = malloc(n * sizeof(*own));
			if (!own)
				break;
			memcpy(own, a, i * sizeof(*own));
			k = i;
		}
		for (size_t j = i + 1; j < n; j++)
			if (!mcache_ahead(mc, &a[j].fid))
				own[k++] = a[j];
		break;
	}
	if (own) {
		a = own;
		n = k;
	}
	rc = n ? pend_add(mc, a, n) : 0;
	free(own);

	if (rc < 0)
		log_warn(LOG_META, "cannot store attributes: %s",
			 strerror(-rc));
}

/* --- our own changes (mut.c) --- */

void
mcache_local_attr(struct mcache *mc, const struct proto_attr *a)
{
	mcache_apply(mc, a, true, true);
}

/* Store @a as the cached attributes and tell the kernel; with
 * @pages_current the kernel's pages are @a's data (our own store). */
static void
install_attr(struct mcache *mc, const struct proto_attr *a, bool pages_current)
{
	struct ino_ent *e;
	uint64_t ino = 0;

	pend_del(mc, &a->fid);
	vc_put_attr(mc->vc, a);
	ino_lock(mc->ino);
	e = ino_find_locked(mc->ino, &a->fid);
	if (e) {
		ino = e->ino;
		e->attr = *a;
		e->have_attr = true;
		e->attr_server = false;
		if (pages_current)
			e->open_dv = a->dv;
	}
	ino_unlock(mc->ino);
	mcache_inval_inode(mc, ino, -1, 0);
}

void
mcache_stored_attr(struct mcache *mc, const struct proto_attr *a)
{
	mcache_stored_attr_known(mc, a, mcache_ahead(mc, &a->fid));
}

void
mcache_stored_attr_known(struct mcache *mc, const struct proto_attr *a,
			 bool ahead)
{
	if (ahead)
		return;
	install_attr(mc, a, true);
}

bool
mcache_settle_local_dv(struct mcache *mc, const struct fid *fid, uint64_t dv)
{
	struct proto_attr a;
	struct ino_ent *e;
	bool have = false;

	if (!mc || !dv || (dv & CM_DV_LOCAL))
		return false;
	ino_lock(mc->ino);
	e = ino_find_locked(mc->ino, fid);
	if (e && e->have_attr) {
		a = e->attr;
		have = true;
	}
	ino_unlock(mc->ino);
	if (!have)
		have = pend_get(mc, fid, &a) || vc_get_attr(mc->vc, fid, &a) == 0;
	if (!have || !(a.dv & CM_DV_LOCAL))
		return false;
	a.dv = dv;
	install_attr(mc, &a, false);
	if (mc->hooks.dv_changed)
		mc->hooks.dv_changed(mc->hooks.arg, &a);
	return true;
}

/* A directory's new attributes @a and its edited listing @nw (our
 * reference, given up) become the cached ones. */
static void
install_dir(struct mcache *mc, const struct proto_attr *a, struct vc_dir *nw)
{
	struct vc_dir *prev = NULL;
	struct ino_ent *e;

	pend_del(mc, &a->fid);
	vc_put_attrs_flags(mc->vc, a, 1, vc_flags(a));
	ino_lock(mc->ino);
	e = ino_find_locked(mc->ino, &a->fid);
	if (e) {
		e->attr = *a;
		e->have_attr = true;
		e->attr_server = server_attr(a);
		prev = e->dir;
		e->dir = vc_dir_get(nw);
	}
	ino_unlock(mc->ino);
	vc_dir_put(prev);
	vc_dir_put(nw);
}

bool
mcache_local_dir(struct mcache *mc, const struct proto_attr *dir_after,
		 const char *del, const char *add,
		 const struct proto_attr *add_attr)
{
	struct vc_dir *old = NULL, *nw = NULL;
	struct ino_ent *e;
	int rc;

	if (mcache_ahead(mc, &dir_after->fid))
		return false;
	pthread_mutex_lock(&mc->edit);
	ino_lock(mc->ino);
	e = ino_find_locked(mc->ino, &dir_after->fid);
	if (e && e->dir && e->dir->dv + 1 == dir_after->dv)
		old = vc_dir_get(e->dir);
	ino_unlock(mc->ino);
	if (!old && vc_get_dir(mc->vc, &dir_after->fid, &old) == 0 &&
	    old->dv + 1 != dir_after->dv) {
		vc_dir_put(old);
		old = NULL;
	}
	if (!old) {
		pthread_mutex_unlock(&mc->edit);
		/* Another change came between: the listing we hold (if any)
		 * is not the one the server edited. Fetch it again. */
		return mcache_apply(mc, dir_after, true, false);
	}
	/* The listing is written at most once a second per directory:
	 * storing it writes the pages of the segments changed since and
	 * its record (vc.c), a transaction, and a record older than the
	 * directory's attributes is only fetched again. */
	rc = vc_dir_edit_flags(mc->vc, old, dir_after, del, add, add_attr, &nw,
			       util_now_ms() - (uint64_t)old->stored_ms < 1000
				       ? VC_E_NOSTORE
				       : 0);
	vc_dir_put(old);
	if (rc < 0) {
		log_warn(LOG_META, "cannot update a cached listing: %s",
			 strerror(-rc));
		vc_del_dir(mc->vc, &dir_after->fid);
		pthread_mutex_unlock(&mc->edit);
		return mcache_apply(mc, dir_after, true, false);
	}
	install_dir(mc, dir_after, nw);
	pthread_mutex_unlock(&mc->edit);
	return false;
}

int
mcache_late_dir(struct mcache *mc, const struct fid *dir, const char *add,
		const struct proto_attr *add_attr)
{
	struct vc_dir *old = NULL, *nw = NULL;
	struct proto_attr a;
	bool held;
	int rc;

	pthread_mutex_lock(&mc->edit);
	rc = mcache_dir(mc, dir, &old);
	if (rc == 0 && (rc = mcache_attr(mc, dir, &a)) < 0)
		vc_dir_put(old);
	if (rc == 0 && (a.dv & CM_DV_LOCAL)) {
		vc_dir_put(old);
		rc = -EAGAIN;
	}
	if (rc == 0) {
		/* Same DV: the server's answer to the create (DV + 1)
		 * edits this listing as usual. Kept in memory by the
		 * directory's inode; with none (at start, mut_show_lates())
		 * written, else it would be lost. */
		ino_lock(mc->ino);
		held = ino_find_locked(mc->ino, dir) != NULL;
		ino_unlock(mc->ino);
		rc = vc_dir_edit_flags(mc->vc, old, &a, NULL, add, add_attr,
				       &nw, held ? VC_E_NOSTORE : 0);
		vc_dir_put(old);
		if (rc == 0)
			install_dir(mc, &a, nw);
	}
	pthread_mutex_unlock(&mc->edit);
	return rc;
}

void
mcache_inval_name(struct mcache *mc, const struct fid *dir, const char *name)
{
	uint64_t ino = 0;
	struct ino_ent *e;

	ino_lock(mc->ino);
	e = ino_find_locked(mc->ino, dir);
	if (e)
		ino = e->ino;
	ino_unlock(mc->ino);
	inval_entry(mc, ino, name, strlen(name));
}

/* --- disconnected edits --- */

uint64_t
mcache_local_dv(struct mcache *mc)
{
	uint64_t v = atomic_load(&mc->next_dv);

	if (!v) {
		/* Unique across restarts: milliseconds since the epoch. */
		uint64_t seed = CM_DV_LOCAL |
				((uint64_t)util_wall_ns() / 1000000) << 16;

		atomic_compare_exchange_strong(&mc->next_dv, &v, seed);
	}
	return atomic_fetch_add(&mc->next_dv, 1) | CM_DV_LOCAL;
}

void
mcache_offline_attr(struct mcache *mc, const struct proto_attr *a)
{
	install_attr(mc, a, false);
}

int
mcache_offline_dir(struct mcache *mc, const struct fid *dir, const char *del,
		   const char *add, const struct proto_attr *add_attr,
		   int nlink_delta, struct proto_attr *dir_after)
{
	struct vc_dir *old = NULL, *nw = NULL;
	struct proto_attr a;
	int rc;

	pthread_mutex_lock(&mc->edit);
	rc = mcache_dir(mc, dir, &old);
	if (rc < 0)
		goto out;
	rc = mcache_attr(mc, dir, &a);
	if (rc < 0) {
		vc_dir_put(old);
		goto out;
	}
	a.dv = mcache_local_dv(mc);
	a.mtime_ns = a.ctime_ns = util_wall_ns();
	if (nlink_delta < 0 && a.nlink > 2)
		a.nlink--;
	else if (nlink_delta > 0)
		a.nlink++;
	rc = vc_dir_edit(mc->vc, old, &a, del, add, add_attr, &nw);
	vc_dir_put(old);
	if (rc < 0)
		goto out;
	install_dir(mc, &a, nw);
	*dir_after = a;
out:
	pthread_mutex_unlock(&mc->edit);
	return rc;
}

int
mcache_offline_newdir(struct mcache *mc, const struct proto_attr *a)
{
	struct proto_dir d;

	memset(&d, 0, sizeof(d));
	d.dir = *a;
	return vc_put_dir(mc->vc, &d);
}
