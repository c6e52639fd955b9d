/*
 * wb.c - write-back of file data (see wb.h).
 *
 * One mutex (wb->lock) guards the table of write states and every field
 * of them; chunk I/O runs outside it. A state is "busy writing" while
 * writes run (writing > 0) and "storing" while a store is staged and sent;
 * a store waits for running writes to end, new writes wait for the store.
 *
 * dirty.tdb: key = the FID's 20 bytes, value = a wb_rec.h record (explicit
 * little-endian, versioned, CRC32C; a record that does not parse is
 * ignored and logged, one of the old host-order version 1 is read and
 * rewritten at once).
 * Opened with TDB_NOSYNC|TDB_NOLOCK (one process: the chunk store's flock
 * guards the cache directory); each change is one transaction, so a killed
 * process leaves the old or the new record.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include "chunkstore/cs.h"
#include "cm/cm.h"
#include "cm/fetch.h"
#include "cm/http.h"
#include "cm/inode.h"
#include "cm/mcache.h"
#include "cm/mfetch.h"
#include "cm/mut.h"
#include "cm/rlog.h"
#include "cm/wb.h"
#include "cm/wb_rec.h"
#include "common/log.h"
#include "common/tdbw.h"
#include "common/util.h"

#define WB_BUCKETS	  256
#define WB_STAGE_PARALLEL 8

struct flush_waiter {
	struct flush_waiter *next;
	wb_done_fn done;
	void *arg;
};

struct wstate {
	SLIST_ENTRY(wstate) link; /* in its bucket of wb->tab */
	struct fid fid;
	uint64_t base_dv, srv_size, size, zero_from;
	int64_t mtime_ns, ctime_ns;
	struct fid parent;
	char *name;
	struct proto_attr attr; /* the server's, at the first open */
	unsigned writers;
	unsigned writing;
	bool dirty, storing, gone, saved;
	bool conflicted; /* its changes went to a conflict copy */
	bool writeback;	 /* a store above the dirty limit is queued */
	/* Disconnected: the changes are in the replay log as a STORE record
	 * (their chunks stay DIRTY until it is replayed). */
	bool logged;
	/* A logged store is being replayed with base DV replay_to standing
	 * for replay_from (our own earlier changes moved the DV). */
	bool replaying;
	uint64_t replay_from, replay_to;
	struct flush_waiter *waiters; /* loop thread */
};

struct wb {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	SLIST_HEAD(wstate_list, wstate) tab[WB_BUCKETS];
	struct tdb_context *tdb;
	uint64_t ndirty;
	unsigned nold; /* version-1 records found at load */
};


/* --- table --- */

static size_t
bucket(const struct fid *f)
{
	return (f->oid[0] ^ f->oid[7] ^ f->oid[15]) % WB_BUCKETS;
}

static struct wstate *
find_locked(struct wb *wb, const struct fid *f)
{
	struct wstate *w;

	SLIST_FOREACH(w, &wb->tab[bucket(f)], link)
	if (fid_eq(&w->fid, f))
		return w;
	return NULL;
}

static void
unlink_free_locked(struct wb *wb, struct wstate *ws)
{
	SLIST_REMOVE(&wb->tab[bucket(&ws->fid)], ws, wstate, link);
	free(ws->name);
	free(ws);
}

/* Persist @ws (lock held). A failure is logged: the data itself is safe
 * in the chunk store; only the size would be guessed after a crash. */
static void
save_locked(struct wb *wb, struct wstate *ws)
{
	struct wb_rec r = {0};
	size_t len = 0;
	void *buf = NULL;
	int rc = -ENOMEM;

	if (!wb->tdb)
		goto out;
	r.flags = ws->logged ? WB_REC_LOGGED : 0;
	r.base_dv = ws->base_dv;
	r.srv_size = ws->srv_size;
	r.size = ws->size;
	r.zero_from = ws->zero_from;
	r.mtime_ns = ws->mtime_ns;
	r.ctime_ns = ws->ctime_ns;
	r.parent = ws->parent;
	r.name = ws->name;
	r.namelen = ws->name ? strlen(ws->name) : 0;
	buf = wb_rec_encode(&r, &len);
	if (!buf)
		goto out;
	rc = tdbw_txn_start(wb->tdb);
	if (rc == 0) {
		rc = tdbw_store(wb->tdb, &ws->fid, sizeof(ws->fid), buf, len,
				TDB_REPLACE);
		if (rc == 0)
			rc = tdbw_txn_commit(wb->tdb);
		else
			tdbw_txn_cancel(wb->tdb);
	}
	if (rc == 0)
		ws->saved = true;
out:
	if (rc != 0)
		log_warn(LOG_WB, "cannot save a write state in dirty.tdb: %s",
			 strerror(-rc));
	free(buf);
}

static void
forget_locked(struct wb *wb, struct wstate *ws)
{
	int rc;

	if (!ws->saved || !wb->tdb)
		return;
	rc = tdbw_txn_start(wb->tdb);
	if (rc == 0) {
		/* Not there is as good as dropped. */
		rc = tdbw_delete(wb->tdb, &ws->fid, sizeof(ws->fid));
		if (rc == 0 || rc == -ENOENT)
			rc = tdbw_txn_commit(wb->tdb);
		else
			tdbw_txn_cancel(wb->tdb);
	}
	if (rc != 0)
		log_warn(LOG_WB, "cannot drop a write state from dirty.tdb: %s",
			 strerror(-rc));
	ws->saved = false;
}

static void
mark_dirty_locked(struct wb *wb, struct wstate *ws)
{
	if (ws->gone)
		return;
	if (!ws->dirty) {
		ws->dirty = true;
		wb->ndirty++;
	}
}

static void
mark_clean_locked(struct wb *wb, struct wstate *ws)
{
	if (ws->dirty) {
		ws->dirty = false;
		wb->ndirty--;
	}
}

/* Wait (lock held) until no store runs on @ws; bounded. */
static int
wait_store_locked(struct cm *cm, struct wstate *ws)
{
	struct wb *wb = cm->wb;
	struct timespec until;
	uint64_t ms = 2 * cm->cfg.fetch_timeout_ms + 5000;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)(ms / 1000);
	while (ws->storing) {
		if (pthread_cond_timedwait(&wb->cond, &wb->lock, &until) ==
		    ETIMEDOUT)
			return -EIO;
	}
	return 0;
}

/* --- attributes --- */

void
wb_overlay(struct cm *cm, struct proto_attr *a)
{
	struct wb *wb = cm->wb;
	struct wstate *ws;

	if (!wb || a->type != PROTO_T_FILE)
		return;
	pthread_mutex_lock(&wb->lock);
	ws = find_locked(wb, &a->fid);
	if (ws && ws->conflicted) {
		/* the server's attributes stand */
	} else if (ws && !ws->gone) {
		a->size = ws->size;
		if (ws->dirty) {
			a->mtime_ns = ws->mtime_ns;
			a->ctime_ns = ws->ctime_ns;
		}
	} else if (ws) {
		/* Unlinked while open: what the open handles see. */
		a->nlink = 0;
		a->size = ws->size;
		a->mtime_ns = ws->mtime_ns;
		a->ctime_ns = ws->ctime_ns;
	}
	pthread_mutex_unlock(&wb->lock);
}

int
wb_orphan_attr(struct cm *cm, const struct fid *fid, struct proto_attr *out)
{
	struct wb *wb = cm->wb;
	struct wstate *ws;
	int rc = -ENOENT;

	if (!wb)
		return rc;
	pthread_mutex_lock(&wb->lock);
	ws = find_locked(wb, fid);
	if (ws && ws->gone && ws->attr.type == PROTO_T_FILE) {
		*out = ws->attr;
		out->nlink = 0;
		out->size = ws->size;
		out->mtime_ns = ws->mtime_ns;
		out->ctime_ns = ws->ctime_ns;
		rc = 0;
	}
	pthread_mutex_unlock(&wb->lock);
	return rc;
}

int
wb_name_of(struct cm *cm, const struct fid *fid, struct fid *parent, char *buf,
	   size_t len)
{
	struct wstate *ws;
	int rc = -ENOENT;

	if (!cm->wb)
		return rc;
	pthread_mutex_lock(&cm->wb->lock);
	ws = find_locked(cm->wb, fid);
	if (ws && ws->name && strlen(ws->name) < len) {
		strcpy(buf, ws->name);
		*parent = ws->parent;
		rc = 0;
	}
	pthread_mutex_unlock(&cm->wb->lock);
	return rc;
}

bool
wb_dirty(struct cm *cm, const struct fid *fid)
{
	struct wstate *ws;
	bool d;

	if (!cm->wb)
		return false;
	pthread_mutex_lock(&cm->wb->lock);
	ws = find_locked(cm->wb, fid);
	d = ws && ws->dirty;
	pthread_mutex_unlock(&cm->wb->lock);
	return d;
}

bool
wb_active(struct cm *cm, const struct fid *fid)
{
	bool a;

	if (!cm->wb)
		return false;
	pthread_mutex_lock(&cm->wb->lock);
	a = find_locked(cm->wb, fid) != NULL;
	pthread_mutex_unlock(&cm->wb->lock);
	return a;
}

uint64_t
wb_dirty_files(struct cm *cm)
{
	uint64_t n;

	if (!cm->wb)
		return 0;
	pthread_mutex_lock(&cm->wb->lock);
	n = cm->wb->ndirty;
	pthread_mutex_unlock(&cm->wb->lock);
	return n;
}

static void
set_name_locked(struct wstate *ws, const struct fid *parent, const char *name)
{
	char *n;

	if (!parent || !name)
		return;
	n = strdup(name);
	if (!n)
		return;
	free(ws->name);
	ws->name = n;
	ws->parent = *parent;
}

int
wb_open_write(struct cm *cm, const struct proto_attr *a,
	      const struct fid *parent, const char *name)
{
	struct wb *wb = cm->wb;
	struct wstate *ws;
	bool fresh = false;

	if (!wb)
		return -EIO;
	pthread_mutex_lock(&wb->lock);
	ws = find_locked(wb, &a->fid);
	if (!ws) {
		ws = calloc(1, sizeof(*ws));
		if (!ws) {
			pthread_mutex_unlock(&wb->lock);
			return -ENOMEM;
		}
		ws->fid = a->fid;
		ws->attr = *a;
		ws->base_dv = a->dv;
		ws->srv_size = ws->size = ws->zero_from = a->size;
		ws->mtime_ns = a->mtime_ns;
		ws->ctime_ns = a->ctime_ns;
		SLIST_INSERT_HEAD(&wb->tab[bucket(&a->fid)], ws, link);
		fresh = true;
	}
	ws->writers++;
	set_name_locked(ws, parent, name);
	pthread_mutex_unlock(&wb->lock);
	/* Chunks of older DVs would only get in the way of writes. */
	if (fresh && a->dv > 0)
		cs_invalidate(cm->cs, a->fid.vol, a->fid.oid, a->dv);
	return 0;
}

/* Drop every local chunk of @fid, dirty ones included (lock NOT held). */
static int
drop_dirty_cb(const struct cs_info *i, void *arg)
{
	struct cm *cm = arg;

	if (i->flags & CS_F_DIRTY) {
		cs_commit(cm->cs, &i->key);
		cs_mark_clean(cm->cs, &i->key, i->dv);
	}
	return 0;
}

static void
drop_chunks(struct cm *cm, const struct fid *fid)
{
	cs_iterate_file(cm->cs, fid->vol, fid->oid, drop_dirty_cb, cm);
	cs_invalidate(cm->cs, fid->vol, fid->oid, UINT64_MAX);
}

void
wb_release_write(struct cm *cm, const struct fid *fid)
{
	struct wb *wb = cm->wb;
	struct wstate *ws;
	bool drop = false;

	if (!wb)
		return;
	pthread_mutex_lock(&wb->lock);
	ws = find_locked(wb, fid);
	if (ws && ws->writers > 0)
		ws->writers--;
	if (ws && !ws->writers && !ws->storing &&
	    ((!ws->dirty && !ws->logged) || ws->gone)) {
		drop = ws->gone;
		forget_locked(wb, ws);
		unlink_free_locked(wb, ws);
	}
	pthread_mutex_unlock(&wb->lock);
	if (drop)
		drop_chunks(cm, fid);
}

void
wb_renamed(struct cm *cm, const struct fid *fid, const struct fid *parent,
	   const char *name)
{
	struct wstate *ws;

	if (!cm->wb)
		return;
	pthread_mutex_lock(&cm->wb->lock);
	ws = find_locked(cm->wb, fid);
	if (ws) {
		set_name_locked(ws, parent, name);
		if (ws->saved)
			save_locked(cm->wb, ws);
	}
	pthread_mutex_unlock(&cm->wb->lock);
}

void
wb_gone(struct cm *cm, const struct fid *fid)
{
	struct wb *wb = cm->wb;
	struct wstate *ws;
	bool drop = false;

	if (!wb)
		return;
	pthread_mutex_lock(&wb->lock);
	ws = find_locked(wb, fid);
	if (ws) {
		ws->gone = true;
		mark_clean_locked(wb, ws);
		forget_locked(wb, ws);
		if (!ws->writers && !ws->storing) {
			unlink_free_locked(wb, ws);
			drop = true;
		}
	}
	pthread_mutex_unlock(&wb->lock);
	if (drop)
		drop_chunks(cm, fid);
}

/* --- writes --- */

/*
 * Make chunk @c of @ws (snapshot values) ready for a write of [a, b)
 * (offsets in the chunk): returns 0, or -EAGAIN when the server's bytes
 * of the chunk that the write leaves must be fetched first.
 */
static int
prepare_chunk(struct cm *cm, const struct fid *fid, uint64_t base_dv,
	      uint64_t zero_from, uint64_t c, uint32_t a, uint32_t b)
{
	uint64_t cstart = c * cm->chunk_size;
	struct cs_key k;
	struct cs_info info;
	bool present;

	cm_chunk_key(&k, fid, c);
	present = cs_lookup(cm->cs, &k, &info) == 0 && info.dv == base_dv;
	if (present) {
		if (info.flags & CS_F_DIRTY)
			return 0;
		/* A clean copy of the server's bytes: cut what must read as
		 * zeros (after a truncate) before changing it. */
		if (cstart >= zero_from)
			return cs_truncate(cm->cs, &k, base_dv, 0);
		if (cstart + info.len > zero_from)
			return cs_truncate(cm->cs, &k, base_dv,
					   (uint32_t)(zero_from - cstart));
		return 0;
	}
	if (cstart >= zero_from || (a == 0 && cstart + b >= zero_from))
		return 0; /* nothing of the server's is left in it */
	return -EAGAIN;
}

/* Take a write slot on @fid's state; fills the snapshot. */
static int
begin_io(struct cm *cm, const struct fid *fid, struct wstate *snap)
{
	struct wb *wb = cm->wb;
	struct wstate *ws;
	int rc;

	if (!wb)
		return -EIO;
	pthread_mutex_lock(&wb->lock);
	ws = find_locked(wb, fid);
	if (!ws) {
		pthread_mutex_unlock(&wb->lock);
		return -EBADF;
	}
	rc = wait_store_locked(cm, ws);
	if (rc == 0 && ws->conflicted)
		rc = -EIO; /* this handle's version is in the conflict copy */
	if (rc == 0) {
		ws->writing++;
		*snap = *ws;
	}
	pthread_mutex_unlock(&wb->lock);
	return rc;
}

static void
end_io(struct cm *cm, const struct fid *fid, int rc, uint64_t new_size,
       bool set_size, uint64_t zero_from)
{
	struct wb *wb = cm->wb;
	struct wstate *ws;

	pthread_mutex_lock(&wb->lock);
	ws = find_locked(wb, fid);
	if (ws) {
		ws->writing--;
		if (rc >= 0) {
			bool grow = set_size ? new_size != ws->size
					     : new_size > ws->size;

			if (grow)
				ws->size = new_size;
			if (zero_from < ws->zero_from)
				ws->zero_from = zero_from;
			ws->mtime_ns = ws->ctime_ns = util_wall_ns();
			if (!ws->dirty || grow || !ws->saved) {
				mark_dirty_locked(wb, ws);
				if (!ws->gone)
					save_locked(wb, ws);
			}
		}
		pthread_cond_broadcast(&wb->cond);
	}
	pthread_mutex_unlock(&wb->lock);
}

/* Dirty bytes above which a file is stored before close (cfg.dirty_limit,
 * or a quarter of the cache size, at most 256 MiB). */
static uint64_t
dirty_limit(const struct cm *cm)
{
	uint64_t l = cm->cfg.cache_size / 4;

	if (cm->cfg.dirty_limit)
		return cm->cfg.dirty_limit;
	return l > (256ull << 20) ? 256ull << 20 : l;
}

/*
 * Above the dirty limit, store the file just written before its close
 * (one queued store at a time per file). Its next writes wait for that
 * store (promise 3 of wb.h), which is the back-pressure that keeps dirty
 * data within bounds while a big file streams in.
 */
static void
maybe_write_back(struct cm *cm, const struct fid *fid)
{
	struct wb *wb = cm->wb;
	struct cs_stats st;
	struct wstate *ws;
	bool go = false;

	cs_get_stats(cm->cs, &st);
	if (st.dirty_bytes <= dirty_limit(cm))
		return;
	pthread_mutex_lock(&wb->lock);
	ws = find_locked(wb, fid);
	if (ws && ws->dirty && !ws->storing && !ws->writeback && !ws->gone) {
		ws->writeback = true;
		go = true;
	}
	pthread_mutex_unlock(&wb->lock);
	if (go) {
		CM_STAT_INC(&cm->st, writebacks);
		wb_flush(cm, fid, NULL, NULL);
	}
}

ssize_t
wb_write(struct cm *cm, const struct fid *fid, uint64_t off, const void *buf,
	 size_t len, uint64_t *need)
{
	uint32_t csz = cm->chunk_size;
	struct wstate s;
	size_t done = 0;
	int rc;

	if (len == 0)
		return 0;
	rc = begin_io(cm, fid, &s);
	if (rc < 0)
		return rc;
	while (done < len) {
		uint64_t pos = off + done, c = pos / csz;
		uint32_t a = (uint32_t)(pos % csz);
		size_t n = csz - a < len - done ? csz - a : len - done;
		struct cs_key k;

		rc = prepare_chunk(cm, fid, s.base_dv, s.zero_from, c, a,
				   a + (uint32_t)n);
		if (rc == -EAGAIN)
			*need = c;
		if (rc < 0)
			break;
		cm_chunk_key(&k, fid, c);
		rc = cs_write(cm->cs, &k, s.base_dv, a,
			      (const uint8_t *)buf + done, n);
		if (rc == 0)
			rc = cs_commit_flags(cm->cs, &k, CS_C_NOSYNC);
		if (rc < 0)
			break;
		done += n;
	}
	end_io(cm, fid, done == len ? 0 : -1, off + len, false, UINT64_MAX);
	if (done == len) {
		maybe_write_back(cm, fid);
		return (ssize_t)len;
	}
	if (rc == -ESTALE)
		rc = -EIO;
	return rc;
}

struct trunc_ctx {
	struct cm *cm;
	uint64_t size;
	int rc;
};

/*
 * Cut every dirty chunk at or past the new size. One wholly past it is
 * emptied and made clean: a store sends only chunks below the size, and a
 * dirty chunk left behind would keep the old DV after the store and turn
 * the next write into it into -ESTALE.
 */
static int
trunc_cb(const struct cs_info *i, void *arg)
{
	struct trunc_ctx *t = arg;
	uint64_t cstart = i->key.chunk * t->cm->chunk_size;
	int rc = 0;

	if (!(i->flags & CS_F_DIRTY) || cstart + i->len <= t->size)
		return 0;
	rc = cs_truncate(t->cm->cs, &i->key, i->dv,
			 cstart >= t->size ? 0 : (uint32_t)(t->size - cstart));
	if (rc == 0)
		rc = cs_commit_flags(t->cm->cs, &i->key, CS_C_NOSYNC);
	if (rc == 0 && cstart >= t->size)
		rc = cs_mark_clean(t->cm->cs, &i->key, i->dv);
	if (rc < 0 && !t->rc)
		t->rc = rc;
	return 0;
}

int
wb_truncate(struct cm *cm, const struct fid *fid, uint64_t size, uint64_t *need)
{
	uint32_t csz = cm->chunk_size;
	struct trunc_ctx t = {cm, size, 0};
	struct wstate s;
	uint64_t zf = UINT64_MAX;
	int rc;

	rc = begin_io(cm, fid, &s);
	if (rc < 0)
		return rc;
	if (size < s.size) {
		uint64_t c = size / csz;
		uint32_t in = (uint32_t)(size % csz);

		if (size < s.zero_from && in) {
			/* The chunk that keeps its head must hold it. */
			struct cs_key k;

			rc = prepare_chunk(cm, fid, s.base_dv, s.zero_from, c,
					   0, 0);
			if (rc == -EAGAIN)
				*need = c;
			if (rc == 0) {
				cm_chunk_key(&k, fid, c);
				rc = cs_truncate(cm->cs, &k, s.base_dv, in);
				if (rc == 0)
					rc = cs_commit_flags(cm->cs, &k,
							     CS_C_NOSYNC);
			}
		}
		if (rc == 0) {
			cs_iterate_file(cm->cs, fid->vol, fid->oid, trunc_cb,
					&t);
			rc = t.rc;
		}
		if (size < s.zero_from)
			zf = size;
	}
	end_io(cm, fid, rc, size, true, zf);
	return rc == -ESTALE ? -EIO : rc;
}

/* --- reads --- */

ssize_t
wb_read(struct cm *cm, const struct fid *fid, uint64_t off, void *buf,
	size_t len, uint64_t *need)
{
	struct wb *wb = cm->wb;
	uint32_t csz = cm->chunk_size;
	struct wstate *ws, s;
	size_t done = 0;

	if (!wb)
		return -ENOENT;
	pthread_mutex_lock(&wb->lock);
	ws = find_locked(wb, fid);
	if (ws)
		s = *ws;
	pthread_mutex_unlock(&wb->lock);
	if (!ws || s.conflicted)
		return -ENOENT;
	if (off >= s.size)
		return 0;
	if (len > s.size - off)
		len = (size_t)(s.size - off);
	while (done < len) {
		uint64_t pos = off + done, c = pos / csz, cstart = c * csz;
		uint32_t a = (uint32_t)(pos % csz);
		size_t n = csz - a < len - done ? csz - a : len - done;
		uint8_t *dst = (uint8_t *)buf + done;
		struct cs_key k;
		struct cs_info info;
		uint64_t valid; /* bytes of the chunk that hold data */
		ssize_t got = 0;

		cm_chunk_key(&k, fid, c);
		if (cs_lookup(cm->cs, &k, &info) == 0 && info.dv == s.base_dv) {
			valid = info.len;
			if (!(info.flags & CS_F_DIRTY)) {
				if (cstart >= s.zero_from)
					valid = 0;
				else if (cstart + valid > s.zero_from)
					valid = s.zero_from - cstart;
			}
		} else if (pos >= s.zero_from) {
			valid = 0;
		} else {
			*need = c;
			return -EAGAIN;
		}
		if (a < valid) {
			size_t m = valid - a < n ? (size_t)(valid - a) : n;

			got = cs_read(cm->cs, &k, s.base_dv, a, dst, m);
			if (got != (ssize_t)m) {
				*need = c;
				return -EAGAIN; /* culled meanwhile */
			}
		}
		memset(dst + got, 0, n - (size_t)got);
		done += n;
	}
	return (ssize_t)len;
}

/* --- fetching for a write --- */

struct wfetch {
	struct cm *cm;
	wb_done_fn done;
	void *arg;
};

static void
wfetch_cb(void *arg, int err)
{
	struct wfetch *w = arg;
	struct cm *cm = w->cm;

	w->done(cm, w->arg, err);
	free(w);
}

void
wb_fetch(struct cm *cm, const struct fid *fid, uint64_t chunk, wb_done_fn done,
	 void *arg)
{
	struct wstate *ws;
	uint64_t dv = 0, size = 0;
	struct wfetch *w;
	int rc;

	pthread_mutex_lock(&cm->wb->lock);
	ws = find_locked(cm->wb, fid);
	if (ws) {
		dv = ws->base_dv;
		size = ws->srv_size;
	}
	pthread_mutex_unlock(&cm->wb->lock);
	if (!ws || chunk * (uint64_t)cm->chunk_size >= size) {
		done(cm, arg, ws ? 0 : -EBADF);
		return;
	}
	w = malloc(sizeof(*w));
	if (!w) {
		done(cm, arg, -ENOMEM);
		return;
	}
	w->cm = cm;
	w->done = done;
	w->arg = arg;
	rc = fetch_chunk(cm->fetch, fid, dv, size, chunk, wfetch_cb, w);
	if (rc < 0) {
		free(w);
		done(cm, arg, rc);
	}
}

/*
 * Fetching every chunk of a file that is about to lose its last name
 * while open: up to WB_STAGE_PARALLEL fetches at a time; the first error
 * is reported once all have ended. The chunks are pinned, so a cull
 * cannot take what the server no longer has.
 */
struct fetch_all {
	struct cm *cm;
	struct fid fid;
	uint64_t dv, srv_size, upto, next;
	unsigned inflight;
	int err;
	bool busy; /* in fetch_all_more: a callback from inside waits */
	wb_done_fn done;
	void *arg;
};

static void fetch_all_more(struct cm *cm, struct fetch_all *fa);

static void
fetch_all_cb(void *arg, int err)
{
	struct fetch_all *fa = arg;
	struct cm *cm = fa->cm;

	fa->inflight--;
	if (err < 0 && !fa->err)
		fa->err = err;
	fetch_all_more(cm, fa);
}

static void
fetch_all_more(struct cm *cm, struct fetch_all *fa)
{
	uint64_t csz = cm->chunk_size;

	if (fa->busy)
		return;
	fa->busy = true;
	while (!fa->err && fa->inflight < WB_STAGE_PARALLEL &&
	       fa->next * csz < fa->upto) {
		uint64_t c = fa->next++;
		struct cs_key k;
		struct cs_info info;
		int rc;

		cm_chunk_key(&k, &fa->fid, c);
		if (cs_lookup(cm->cs, &k, &info) == 0 && info.dv == fa->dv)
			continue;
		fa->inflight++;
		rc = fetch_chunk(cm->fetch, &fa->fid, fa->dv, fa->srv_size, c,
				 fetch_all_cb, fa);
		if (rc < 0) {
			fa->inflight--;
			fa->err = rc;
		}
	}
	fa->busy = false;
	if (fa->inflight)
		return;
	if (!fa->err)
		cs_pin_file(cm->cs, fa->fid.vol, fa->fid.oid, 1);
	fa->done(cm, fa->arg, fa->err);
	free(fa);
}

void
wb_fetch_all(struct cm *cm, const struct fid *fid, wb_done_fn done, void *arg)
{
	struct fetch_all *fa;
	struct wstate *ws;

	fa = calloc(1, sizeof(*fa));
	if (!fa) {
		done(cm, arg, -ENOMEM);
		return;
	}
	pthread_mutex_lock(&cm->wb->lock);
	ws = find_locked(cm->wb, fid);
	if (ws) {
		fa->dv = ws->base_dv;
		fa->srv_size = ws->srv_size;
		/* Past zero_from the server's bytes are not needed. */
		fa->upto = ws->zero_from < ws->srv_size ? ws->zero_from
							: ws->srv_size;
	}
	pthread_mutex_unlock(&cm->wb->lock);
	if (!ws) {
		free(fa);
		done(cm, arg, -EBADF);
		return;
	}
	fa->cm = cm;
	fa->fid = *fid;
	fa->done = done;
	fa->arg = arg;
	fetch_all_more(cm, fa);
}

/* --- stores --- */

struct store {
	struct cm *cm;
	struct fid fid;
	struct proto_op op;
	uint64_t seq;
	bool *dirty; /* per op.chunks[i]: send its data (else empty) */
	size_t next; /* next chunk to stage */
	unsigned inflight;
	int err;
	bool owns_state;   /* set ws->storing: clear it at the end */
	mut_done_fn mdone; /* resend at resume: report here */
	void *marg;
	/* Where the data comes from: the file itself, or for a conflict
	 * copy the refused file's chunks at its base DV (clean ones only
	 * below src_valid_to, the refused state's zero_from). */
	struct fid src_fid;
	uint64_t src_dv, src_valid_to;
	struct conflict *cf; /* set: this store writes a conflict copy */
	bool replay;	     /* reintegration: mut_send_replay, ungated */
};

static void store_send(struct store *st);
static void store_end(struct store *st, int err,
		      const struct proto_op_result *r);
struct conflict;
static int conflict_create(struct cm *cm, struct conflict *cf);
static void store_offline(struct store *st, const struct wstate *s);

static void
store_free(struct store *st)
{
	proto_op_release(&st->op);
	free(st->dirty);
	free(st);
}

static void
stage_done(void *arg, const struct http_result *res)
{
	struct store *st = arg;
	int rc = cm_http_errno(res->err, res->status, res->body, res->body_len);

	st->inflight--;
	if (rc < 0 && !st->err)
		st->err = rc == -ECANCELED ? -EIO : rc;
	store_send(st);
}

static int
stage_one(struct store *st, size_t i)
{
	struct cm *cm = st->cm;
	struct http_request hr = {0};
	char path[256];
	uint8_t *buf = NULL;
	ssize_t got = 0;
	int rc;

	rc = proto_stage_path(path, sizeof(path), cm->cfg.volume, &st->fid,
			      st->op.txid, st->op.chunks[i], cm->chunk_size);
	if (rc < 0)
		return rc;
	if (st->dirty[i]) {
		struct cs_key k;

		struct cs_info info;
		uint64_t cstart = st->op.chunks[i] * (uint64_t)cm->chunk_size;

		buf = malloc(cm->chunk_size);
		if (!buf)
			return -ENOMEM;
		cm_chunk_key(&k, &st->src_fid, st->op.chunks[i]);
		got = cs_read(cm->cs, &k, st->src_dv, 0, buf, cm->chunk_size);
		if (got > 0 && st->cf && cs_lookup(cm->cs, &k, &info) == 0 &&
		    !(info.flags & CS_F_DIRTY)) {
			/* The server's old bytes: only those still valid. */
			if (cstart >= st->src_valid_to)
				got = 0;
			else if (cstart + (uint64_t)got > st->src_valid_to)
				got = (ssize_t)(st->src_valid_to - cstart);
		}
		if (got < 0) {
			log_err(LOG_WB,
				"dirty chunk %llu of a file cannot be read: %s",
				(unsigned long long)st->op.chunks[i],
				strerror((int)-got));
			free(buf);
			return (int)got;
		}
	}
	hr.method = "PUT";
	hr.path = path;
	hr.body = buf ? (const void *)buf : "";
	hr.body_len = (size_t)got;
	hr.content_type = "application/octet-stream";
	hr.on_done = stage_done;
	hr.arg = st;
	hr.ungated = st->replay;
	st->inflight++;
	if (!http_submit(cm->http, &hr)) {
		st->inflight--;
		free(buf);
		return -EIO;
	}
	free(buf);
	return 0;
}

static void
store_sent(struct cm *cm, void *arg, int err, const struct proto_op_result *r)
{
	(void)cm;
	store_end(arg, err, r);
}

/* Stage what is left (bounded), then send the op once all are in. */
static void
store_send(struct store *st)
{
	struct cm *cm = st->cm;
	int rc;

	while (!st->err && st->inflight < WB_STAGE_PARALLEL &&
	       st->next < st->op.nchunks) {
		rc = stage_one(st, st->next);
		if (rc < 0) {
			st->err = rc;
			break;
		}
		st->next++;
	}
	if (st->inflight)
		return;
	if (st->err || cm_stopping(&cm->loop)) {
		store_end(st, st->err ? st->err : -EIO, NULL);
		return;
	}
	rc = st->replay ? mut_send_replay(cm, st->seq, &st->op, store_sent, st)
			: mut_send_logged(cm, st->seq, &st->op, store_sent, st);
	if (rc < 0)
		store_end(st, rc, NULL);
}

static int conflict_start(struct store *st);

static void
store_end(struct store *st, int err, const struct proto_op_result *r)
{
	struct cm *cm = st->cm;
	struct wb *wb = cm->wb;
	struct flush_waiter *w = NULL, *nx;
	struct wstate *ws;

	/* Refused as stale: someone else stored the file since our base
	 * DV. Ours goes to a conflict copy; this store ends from there. */
	if (err == -ESTALE && st->owns_state && !st->cf &&
	    !cm_stopping(&cm->loop) &&
	    conflict_start(st) == 0)
		return;
	if (st->replay && wb) {
		pthread_mutex_lock(&wb->lock);
		ws = find_locked(wb, &st->fid);
		if (ws)
			ws->replaying = false;
		pthread_mutex_unlock(&wb->lock);
	}
	if (err == -ESTALE && !st->replay)
		err = -EIO;

	if (err && st->seq && cm->rlog && !st->mdone && !st->replay) {
		/* The op never went (a staging failure): drop the record;
		 * the data stays dirty and the next flush tries again. */
		rlog_remove_flags(cm->rlog, st->seq, RLOG_A_NOSYNC);
	}
	if (err)
		log_warn(LOG_WB, "store of a file failed: %s",
			 strerror(-err));
	if (wb) {
		pthread_mutex_lock(&wb->lock);
		ws = find_locked(wb, &st->fid);
		if (ws && st->owns_state) {
			ws->storing = false;
			w = ws->waiters;
			ws->waiters = NULL;
			if (!ws->writers &&
			    ((!ws->dirty && !ws->logged) || ws->gone)) {
				forget_locked(wb, ws);
				unlink_free_locked(wb, ws);
			}
		}
		pthread_cond_broadcast(&wb->cond);
		pthread_mutex_unlock(&wb->lock);
	}
	for (; w; w = nx) {
		nx = w->next;
		w->done(cm, w->arg, err);
		free(w);
	}
	if (st->mdone)
		st->mdone(cm, st->marg, err, r);
	store_free(st);
}

struct collect {
	struct store *st;
	uint64_t size;
	uint64_t *chunks;
	bool *dirty;
	size_t n, cap;
	int err;
};

static int
collect_add(struct collect *c, uint64_t chunk, bool dirty)
{
	for (size_t i = 0; i < c->n; i++) {
		if (c->chunks[i] == chunk) {
			c->dirty[i] |= dirty;
			return 0;
		}
	}
	if (c->n == c->cap) {
		size_t nc = c->cap ? c->cap * 2 : 16;
		uint64_t *a = realloc(c->chunks, nc * sizeof(*a));
		bool *d;

		if (!a)
			return -ENOMEM;
		c->chunks = a;
		d = realloc(c->dirty, nc * sizeof(*d));
		if (!d)
			return -ENOMEM;
		c->dirty = d;
		c->cap = nc;
	}
	c->chunks[c->n] = chunk;
	c->dirty[c->n] = dirty;
	c->n++;
	return 0;
}

static int
collect_cb(const struct cs_info *i, void *arg)
{
	struct collect *c = arg;

	if ((i->flags & CS_F_DIRTY) && i->dv == c->st->op.base_dv &&
	    i->key.chunk * (uint64_t)c->st->cm->chunk_size < c->size &&
	    collect_add(c, i->key.chunk, true) < 0)
		c->err = -ENOMEM;
	return 0;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void
store_start(struct cm *cm, const struct fid *fid, wb_done_fn done, void *arg)
{
	struct wb *wb = cm->wb;
	struct flush_waiter *w = NULL;
	struct collect c = {0};
	struct rlog_effect eff;
	struct wstate *ws, s;
	struct store *st;
	struct fid rnd;
	uint64_t csz = cm->chunk_size, end;
	int rc;

	if (done) {
		w = calloc(1, sizeof(*w));
		if (!w) {
			done(cm, arg, -ENOMEM);
			return;
		}
		w->done = done;
		w->arg = arg;
	}
	pthread_mutex_lock(&wb->lock);
	ws = find_locked(wb, fid);
	if (!ws || !ws->dirty || ws->gone) {
		pthread_mutex_unlock(&wb->lock);
		if (w) {
			done(cm, arg, 0);
			free(w);
		}
		return;
	}
	if (w) {
		w->next = ws->waiters;
		ws->waiters = w;
	}
	if (ws->storing) {
		/* Joins the running store. NEEDSWORK: a write that came
		 * after its snapshot waits for the next flush. */
		pthread_mutex_unlock(&wb->lock);
		return;
	}
	ws->storing = true;
	ws->writeback = false;
	while (ws->writing > 0)
		pthread_cond_wait(&wb->cond, &wb->lock);
	s = *ws;
	pthread_mutex_unlock(&wb->lock);

	st = calloc(1, sizeof(*st));
	if (!st) {
		rc = -ENOMEM;
		goto fail_nost;
	}
	st->cm = cm;
	st->fid = *fid;
	st->src_fid = *fid;
	st->src_dv = s.base_dv;
	st->src_valid_to = UINT64_MAX;
	st->owns_state = true;
	st->op.kind = PROTO_OP_STORE;
	st->op.fid = *fid;
	st->op.base_dv = s.base_dv;
	st->op.chunk_size = cm->chunk_size;
	st->op.size = s.size;
	if ((rc = fid_random(0, &rnd)) < 0)
		goto fail;
	memcpy(st->op.txid, rnd.oid, sizeof(st->op.txid));
	c.st = st;
	c.size = s.size;
	cs_iterate_file(cm->cs, fid->vol, fid->oid, collect_cb, &c);
	/* After a truncate, the server's bytes from zero_from on must read
	 * as zeros: send those chunks (empty unless dirty). */
	end = s.srv_size < s.size ? s.srv_size : s.size;
	for (uint64_t ch = s.zero_from / csz;
	     s.zero_from < end && ch * csz < end && !c.err; ch++)
		if (collect_add(&c, ch, false) < 0)
			c.err = -ENOMEM;
	if (c.err) {
		rc = c.err;
		free(c.chunks);
		free(c.dirty);
		goto fail;
	}
	/* Sort chunk numbers, keeping the dirty flags with them. */
	{
		uint64_t *packed = malloc((c.n ? c.n : 1) * sizeof(*packed));

		if (!packed) {
			free(c.chunks);
			free(c.dirty);
			rc = -ENOMEM;
			goto fail;
		}
		for (size_t i = 0; i < c.n; i++)
			packed[i] = c.chunks[i] << 1 | (c.dirty[i] ? 1 : 0);
		qsort(packed, c.n, sizeof(*packed), cmp_u64);
		for (size_t i = 0; i < c.n; i++) {
			c.chunks[i] = packed[i] >> 1;
			c.dirty[i] = packed[i] & 1;
		}
		free(packed);
	}
	st->op.chunks = c.chunks;
	st->op.nchunks = c.n;
	st->dirty = c.dirty;
	if (cm_offline(cm)) {
		store_offline(st, &s);
		return;
	}
	if (cm->rlog) {
		rc = rlog_append_ex(cm->rlog, &st->op,
				    RLOG_A_INFLIGHT | RLOG_A_NOSYNC, &eff);
		if (rc == 0) {
			st->seq = eff.seq;
			memcpy(st->op.opid, eff.opid, sizeof(st->op.opid));
		}
		rlog_effect_release(&eff);
		if (rc < 0)
			goto fail;
	} else if ((rc = fid_random(0, &rnd)) == 0) {
		memcpy(st->op.opid, rnd.oid, sizeof(st->op.opid));
	} else {
		goto fail;
	}
	log_debug(LOG_WB, "storing %zu chunks, size %llu", st->op.nchunks,
		  (unsigned long long)st->op.size);
	store_send(st);
	return;
fail:
	store_end(st, rc, NULL);
	return;
fail_nost:
	pthread_mutex_lock(&wb->lock);
	ws = find_locked(wb, fid);
	if (ws) {
		ws->storing = false;
		w = ws->waiters;
		ws->waiters = NULL;
	}
	pthread_cond_broadcast(&wb->cond);
	pthread_mutex_unlock(&wb->lock);
	while (w) {
		struct flush_waiter *nx = w->next;

		w->done(cm, w->arg, rc);
		free(w);
		w = nx;
	}
}

/* --- conflict copies --- */

/*
 * A store refused with 412 (the file changed on the server since our base
 * DV) does not lose either side: the server keeps its version under the
 * name, and ours is created beside it as NAME.conflict-HOST-YYYYMMDD-HHMMSS
 * (local time; "-2", "-3" ... appended if that name is taken; the name
 * part is shortened to fit 255 bytes), written from our chunks at the base
 * DV, and logged. Only once the copy is stored are the local changes
 * dropped; until then they stay dirty, so a failure or a crash on the way
 * retries the whole thing at the next flush (a crash can leave an
 * incomplete earlier copy; never less than the local data).
 */
struct conflict {
	struct cm *cm;
	struct fid fid;	    /* the refused file */
	struct store *orig; /* the refused store; its waiters wait */
	/* or, from reintegration (no store of ours): report here */
	void (*cdone)(struct cm *, void *, int, const char *);
	void *carg;
	struct fid parent;
	char base[PROTO_NAME_MAX + 1]; /* the file's name */
	char name[PROTO_NAME_MAX + 1]; /* the copy's */
	uint32_t mode, uid, gid;
	uint64_t size, srv_size, zero_from, base_dv;
	unsigned attempt;
	size_t missing; /* chunks of the base version we did not hold */
};

static void
conflict_name(struct conflict *cf)
{
	char host[65], tail[128], ts[32];
	size_t keep, tl;
	struct tm tm;
	time_t now = time(NULL);

	if (gethostname(host, sizeof(host)) < 0)
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	host[strcspn(host, ".")] = '\0';
	localtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y%m%d-%H%M%S", &tm);
	if (cf->attempt)
		snprintf(tail, sizeof(tail), ".conflict-%s-%s-%u", host, ts,
			 cf->attempt + 1);
	else
		snprintf(tail, sizeof(tail), ".conflict-%s-%s", host, ts);
	tl = strlen(tail);
	keep = strlen(cf->base);
	if (keep + tl > PROTO_NAME_MAX) {
		keep = PROTO_NAME_MAX - tl;
		/* do not cut a UTF-8 sequence in two */
		while (keep > 0 &&
		       ((unsigned char)cf->base[keep] & 0xc0) == 0x80)
			keep--;
	}
	snprintf(cf->name, sizeof(cf->name), "%.*s%s", (int)keep, cf->base,
		 tail);
}

static void
conflict_end(struct conflict *cf, int err)
{
	struct store *orig = cf->orig;

	if (!orig) {
		cf->cdone(cf->cm, cf->carg, err, err ? NULL : cf->name);
		free(cf);
		return;
	}
	free(cf);
	store_end(orig, err == -ESTALE ? -EIO : err, NULL);
}

static void
conflict_stored(struct cm *cm, void *arg, int err,
		const struct proto_op_result *r)
{
	struct conflict *cf = arg;
	struct wb *wb = cm->wb;
	struct fid fid = cf->fid;
	struct wstate *ws;

	(void)r;
	if (err) {
		log_err(LOG_WB,
			"conflict copy '%s' of '%s' could not be "
			"stored (%s); the local version stays dirty",
			cf->name, cf->base, strerror(-err));
		conflict_end(cf, err);
		return;
	}
	log_warn(LOG_WB,
		 "conflict: '%s' changed on the server after DV %llu, which "
		 "this client's changes were based on; the server's version "
		 "stays, the local one is saved as '%s'%s",
		 cf->base, (unsigned long long)cf->base_dv, cf->name,
		 cf->missing ? " (parts of the old version that were not "
			       "cached read as zeros there)"
			     : "");
	CM_STAT_INC(&cm->st, conflicts);
	pthread_mutex_lock(&wb->lock);
	ws = find_locked(wb, &fid);
	if (ws) {
		mark_clean_locked(wb, ws);
		forget_locked(wb, ws);
		ws->conflicted = true;
		ws->logged = false;
		if (!cf->orig && !ws->writers && !ws->storing)
			unlink_free_locked(wb, ws);
	}
	pthread_mutex_unlock(&wb->lock);
	drop_chunks(cm, &fid);
	mcache_drop_file(cm->mc, &fid);
	/* close/fsync report it: the data is safe, but not in this file.
	 * (Reintegration gets 0 and the copy's name.) */
	conflict_end(cf, cf->orig ? -EIO : 0);
}

static void
conflict_created(struct cm *cm, void *arg, int err,
		 const struct proto_op_result *r)
{
	struct conflict *cf = arg;
	struct store *cp;
	struct collect c = {0};
	struct fid rnd;
	uint64_t csz = cm->chunk_size;
	int rc;

	if (err == -EEXIST && cf->attempt < 20) {
		cf->attempt++;
		rc = conflict_create(cm, cf);
		if (rc < 0)
			conflict_end(cf, rc);
		return;
	}
	if (err == -ENOENT && !fid_eq(&cf->parent, &cm->vi.root)) {
		/* The directory is gone on the server: the root gets it,
		 * for its owner only (what the directory kept from others
		 * the root would show them). */
		cf->parent = cm->vi.root;
		cf->mode &= ~(uint32_t)077;
		cf->attempt = 0;
		rc = conflict_create(cm, cf);
		if (rc < 0)
			conflict_end(cf, rc);
		return;
	}
	if (err || !r->has_attr) {
		log_err(LOG_WB,
			"conflict copy '%s' of '%s' could not be "
			"created (%s); the local version stays dirty",
			cf->name, cf->base, strerror(err ? -err : EIO));
		conflict_end(cf, err ? err : -EIO);
		return;
	}
	cp = calloc(1, sizeof(*cp));
	if (!cp) {
		conflict_end(cf, -ENOMEM);
		return;
	}
	cp->cm = cm;
	cp->fid = r->attr.fid;
	cp->src_fid = cf->fid;
	cp->src_dv = cf->base_dv;
	cp->src_valid_to = cf->zero_from;
	cp->cf = cf;
	cp->mdone = conflict_stored;
	cp->marg = cf;
	cp->op.kind = PROTO_OP_STORE;
	cp->op.fid = r->attr.fid;
	cp->op.base_dv = r->attr.dv;
	cp->op.chunk_size = cm->chunk_size;
	cp->op.size = cf->size;
	c.st = cp;
	for (uint64_t ch = 0; ch * csz < cf->size && !c.err; ch++) {
		struct cs_key k;
		struct cs_info info;

		cm_chunk_key(&k, &cp->src_fid, ch);
		if (cs_lookup(cm->cs, &k, &info) == 0 &&
		    info.dv == cf->base_dv) {
			if (collect_add(&c, ch, true) < 0)
				c.err = -ENOMEM;
		} else if (ch * csz < cf->zero_from &&
			   ch * csz < cf->srv_size) {
			cf->missing++;
		}
	}
	if (c.err || fid_random(0, &rnd) < 0) {
		free(c.chunks);
		free(c.dirty);
		cp->cf = NULL;
		cp->mdone = NULL;
		store_free(cp);
		conflict_end(cf, c.err ? c.err : -EIO);
		return;
	}
	memcpy(cp->op.txid, rnd.oid, sizeof(cp->op.txid));
	if (fid_random(0, &rnd) == 0)
		memcpy(cp->op.opid, rnd.oid, sizeof(cp->op.opid));
	cp->op.chunks = c.chunks;
	cp->op.nchunks = c.n;
	cp->dirty = c.dirty;
	/* Not logged: after a crash the original is still dirty and a new
	 * copy is made from it. */
	store_send(cp);
}

static int
conflict_create(struct cm *cm, struct conflict *cf)
{
	struct proto_op op;

	memset(&op, 0, sizeof(op));
	conflict_name(cf);
	op.kind = PROTO_OP_CREATE;
	op.parent = cf->parent;
	op.name = cf->name;
	op.type = PROTO_T_FILE;
	op.mode = cf->mode;
	op.uid = cf->uid;
	op.gid = cf->gid;
	if (fid_random(cf->parent.vol, &op.fid) < 0)
		return -EIO;
	/* Not through the disconnected path: reintegration makes copies. */
	return mut_submit_direct(cm, &op, conflict_created, cf);
}

/* Loop thread, from store_end: 0 = the conflict copy is under way and
 * will end @st; else end @st with the error as usual. */
static int
conflict_begin(struct cm *cm, struct conflict *cf)
{
	struct wstate *ws;
	char fs[FID_STRLEN];
	int rc;

	cf->cm = cm;
	pthread_mutex_lock(&cm->wb->lock);
	ws = find_locked(cm->wb, &cf->fid);
	if (ws && !ws->gone && (ws->dirty || ws->logged)) {
		if (ws->name) {
			cf->parent = ws->parent;
			snprintf(cf->base, sizeof(cf->base), "%s", ws->name);
		}
		cf->mode = ws->attr.mode & 07777;
		cf->uid = ws->attr.uid;
		cf->gid = ws->attr.gid;
		cf->size = ws->size;
		cf->srv_size = ws->srv_size;
		cf->zero_from = ws->zero_from;
		cf->base_dv = ws->base_dv;
	}
	pthread_mutex_unlock(&cm->wb->lock);
	if (!ws || !cf->base_dv) {
		free(cf);
		return -ENOENT;
	}
	if (!cf->base[0]) {
		/* No name known (never looked up by one): the volume's
		 * root gets it, named after the FID. */
		fid_fmt(&cf->fid, fs);
		snprintf(cf->base, sizeof(cf->base), "cairn-%s", fs);
		cf->parent = cm->vi.root;
		cf->mode &= ~(uint32_t)077; /* as above: owner only */
	}
	if (!cf->mode)
		cf->mode = 0600;
	rc = conflict_create(cm, cf);
	if (rc < 0)
		free(cf);
	return rc;
}

static int
conflict_start(struct store *st)
{
	struct conflict *cf = calloc(1, sizeof(*cf));

	if (!cf)
		return -ENOMEM;
	cf->orig = st;
	cf->fid = st->fid;
	return conflict_begin(st->cm, cf);
}

void
wb_conflict_copy(struct cm *cm, const struct fid *fid,
		 void (*done)(struct cm *, void *, int, const char *),
		 void *arg)
{
	struct conflict *cf = calloc(1, sizeof(*cf));
	int rc;

	if (!cf) {
		done(cm, arg, -ENOMEM, NULL);
		return;
	}
	cf->fid = *fid;
	cf->cdone = done;
	cf->carg = arg;
	rc = conflict_begin(cm, cf); /* frees @cf on failure */
	if (rc < 0)
		done(cm, arg, rc, NULL);
}

/* --- disconnected stores --- */

/* The changes are in the replay log now (or the store was absorbed by a
 * disconnect): the write state stops being dirty and becomes "logged",
 * its chunks stay DIRTY for the replay, and the cached attributes take
 * the local size and times. */
static void
mark_logged(struct cm *cm, const struct fid *fid)
{
	struct wb *wb = cm->wb;
	struct proto_attr a;
	struct wstate *ws;
	bool have = false;
	uint64_t size = 0;
	int64_t mt = 0, ct = 0;

	pthread_mutex_lock(&wb->lock);
	ws = find_locked(wb, fid);
	if (ws && !ws->gone) {
		mark_clean_locked(wb, ws);
		ws->logged = true;
		save_locked(wb, ws);
		size = ws->size;
		mt = ws->mtime_ns;
		ct = ws->ctime_ns;
		have = true;
	}
	pthread_mutex_unlock(&wb->lock);
	if (have && mcache_attr(cm->mc, fid, &a) == 0) {
		a.size = size;
		a.mtime_ns = mt;
		a.ctime_ns = ct;
		mcache_offline_attr(cm->mc, &a);
	}
}

/* store_start, disconnected: log the store (PENDING, durable: the rules of
 * doc/replay-log.md may merge it with an earlier one) instead of sending
 * it. */
static void
store_offline(struct store *st, const struct wstate *s)
{
	struct cm *cm = st->cm;
	struct rlog_effect eff;
	int rc = -EIO;

	if (cm->wbh && cm->wbh->note_base)
		cm->wbh->note_base(cm, &st->fid, &s->attr);
	if (cm->rlog)
		rc = rlog_append_ex(cm->rlog, &st->op, 0, &eff);
	if (cm->rlog && rc == 0 && cm->wbh && cm->wbh->note_path)
		cm->wbh->note_path(cm, eff.seq, &st->op);
	if (cm->rlog)
		rlog_effect_release(&eff);
	if (rc < 0) {
		log_err(LOG_WB, "cannot log a store while disconnected: %s",
			strerror(-rc));
		store_end(st, rc == -ENOSPC ? -ENOSPC : -EIO, NULL);
		return;
	}
	mark_logged(cm, &st->fid);
	store_end(st, 0, NULL);
}

void
wb_absorbed(struct cm *cm, const struct proto_op *op)
{
	if (cm->wb && op->kind == PROTO_OP_STORE)
		mark_logged(cm, &op->fid);
}

/* A store op from the replay log, its chunks tagged @src_dv: stage what
 * the chunk store holds DIRTY, then send (replayed or resent). */
static int
store_from_log(struct cm *cm, uint64_t seq, const struct proto_op *op,
	       uint64_t src_dv, bool replay,
	       void (*done)(struct cm *, void *, int,
			    const struct proto_op_result *),
	       void *arg)
{
	struct store *st = calloc(1, sizeof(*st));
	struct wstate *ws;

	if (!st)
		return -ENOMEM;
	if (mut_op_copy(&st->op, op) < 0 ||
	    !(st->dirty = calloc(op->nchunks ? op->nchunks : 1, 1))) {
		store_free(st);
		return -ENOMEM;
	}
	st->cm = cm;
	st->fid = op->fid;
	st->src_fid = op->fid;
	st->src_dv = src_dv;
	st->src_valid_to = UINT64_MAX;
	st->seq = seq;
	st->replay = replay;
	st->mdone = done;
	st->marg = arg;
	for (size_t i = 0; i < op->nchunks; i++) {
		struct cs_key k;
		struct cs_info info;

		cm_chunk_key(&k, &op->fid, op->chunks[i]);
		st->dirty[i] = cs_lookup(cm->cs, &k, &info) == 0 &&
			       info.dv == src_dv && (info.flags & CS_F_DIRTY);
	}
	if (replay) {
		pthread_mutex_lock(&cm->wb->lock);
		ws = find_locked(cm->wb, &op->fid);
		if (ws) {
			ws->replaying = true;
			ws->replay_from = src_dv;
			ws->replay_to = op->base_dv;
		}
		pthread_mutex_unlock(&cm->wb->lock);
	}
	store_send(st);
	return 0;
}

int
wb_replay_store(struct cm *cm, uint64_t seq, const struct proto_op *op,
		uint64_t src_dv,
		void (*done)(struct cm *, void *, int,
			     const struct proto_op_result *),
		void *arg)
{
	return store_from_log(cm, seq, op, src_dv, true, done, arg);
}

struct flush_job {
	struct cm_job job;
	struct fid fid;
	wb_done_fn done;
	void *arg;
};

static void
flush_run(struct cm_loop *loop, struct cm_job *job)
{
	struct cm *cm = cm_of_loop(loop);
	struct flush_job *fj = (struct flush_job *)job;

	if (cm_stopping(&cm->loop) || !cm->wb) {
		if (fj->done)
			fj->done(cm, fj->arg, -EIO);
	} else {
		store_start(cm, &fj->fid, fj->done, fj->arg);
	}
	free(fj);
}

void
wb_flush(struct cm *cm, const struct fid *fid, wb_done_fn done, void *arg)
{
	struct flush_job *fj;

	if (!wb_dirty(cm, fid)) {
		/* Nothing to store; the caller still wants its answer from
		 * the loop thread's point of view: answer at once. */
		if (done)
			done(cm, arg, 0);
		return;
	}
	fj = calloc(1, sizeof(*fj));
	if (!fj) {
		if (done)
			done(cm, arg, -ENOMEM);
		return;
	}
	fj->job.run = flush_run;
	fj->fid = *fid;
	fj->done = done;
	fj->arg = arg;
	cm_post(&cm->loop, &fj->job);
}

/* Retag after the server stored op (loop thread, from mut_apply). */
void
wb_stored(struct cm *cm, const struct proto_op *op, const struct proto_attr *a)
{
	struct wb *wb = cm->wb;
	struct wstate *ws;
	bool retag = true;
	uint64_t src = op->base_dv; /* the DV our chunks are tagged with */

	CM_STAT_INC(&cm->st, stores);
	if (wb) {
		pthread_mutex_lock(&wb->lock);
		ws = find_locked(wb, &op->fid);
		if (ws && ws->replaying && ws->replay_to == op->base_dv)
			src = ws->replay_from;
		pthread_mutex_unlock(&wb->lock);
	}
	/* Only chunks sent with data hold the new DV's bytes; the others
	 * the op names were sent empty (the range a truncate zeroed) and
	 * still hold the server's old bytes: dropped below. */
	for (size_t i = 0; i < op->nchunks; i++) {
		struct cs_key k;
		struct cs_info info;

		cm_chunk_key(&k, &op->fid, op->chunks[i]);
		if (cs_lookup(cm->cs, &k, &info) == 0 &&
		    (info.flags & CS_F_DIRTY) && info.dv == src)
			cs_mark_clean(cm->cs, &k, a->dv);
	}
	if (wb) {
		pthread_mutex_lock(&wb->lock);
		ws = find_locked(wb, &op->fid);
		if (ws && ws->base_dv == src) {
			ws->logged = false;
			ws->replaying = false;
			retag = ws->zero_from >= ws->srv_size;
			ws->base_dv = a->dv;
			ws->srv_size = ws->zero_from = a->size;
			ws->size = a->size;
			ws->mtime_ns = a->mtime_ns;
			ws->ctime_ns = a->ctime_ns;
			mark_clean_locked(wb, ws);
			forget_locked(wb, ws);
			if (!ws->writers && !ws->storing)
				unlink_free_locked(wb, ws);
		}
		pthread_mutex_unlock(&wb->lock);
	}
	/* Chunks we did not change hold the same bytes at the new DV, unless
	 * a truncate cut the file below the server's size: then the old
	 * ones go (refetched at the new DV when read). */
	if (retag)
		cs_set_dv_file(cm->cs, op->fid.vol, op->fid.oid, src, a->dv);
	else
		cs_invalidate(cm->cs, op->fid.vol, op->fid.oid, a->dv);
	mcache_stored_attr(cm->mc, a);
}

int
wb_resend_store(struct cm *cm, uint64_t seq, const struct proto_op *op,
		void (*done)(struct cm *, void *, int,
			     const struct proto_op_result *),
		void *arg)
{
	return store_from_log(cm, seq, op, op->base_dv, false, done, arg);
}

void
wb_resume(struct cm *cm)
{
	struct wb *wb = cm->wb;
	struct fid *dirty_fids = NULL;
	size_t n = 0, cap = 0;

	if (!wb)
		return;
	pthread_mutex_lock(&wb->lock);
	for (size_t b = 0; b < WB_BUCKETS; b++) {
		struct wstate *ws;

		SLIST_FOREACH(ws, &wb->tab[b], link) {
			if (!ws->dirty)
				continue;
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 16;
				struct fid *t =
					realloc(dirty_fids, nc * sizeof(*t));

				if (!t)
					break;
				dirty_fids = t;
				cap = nc;
			}
			dirty_fids[n++] = ws->fid;
		}
	}
	pthread_mutex_unlock(&wb->lock);
	for (size_t i = 0; i < n; i++) {
		log_info(LOG_WB, "storing data a crash left dirty");
		store_start(cm, &dirty_fids[i], NULL, NULL);
	}
	free(dirty_fids);
}

/* --- setup --- */

static int
load_cb(struct tdb_context *tdb, TDB_DATA k, TDB_DATA v, void *arg)
{
	struct wb *wb = arg;
	struct wb_rec r;
	struct wstate *ws;
	int rc;

	(void)tdb;
	rc = k.dsize == sizeof(struct fid) ? wb_rec_decode(v.dptr, v.dsize, &r)
					    : -EUCLEAN;
	if (rc == 0 || rc == 1) {
		if (r.zero_from > r.size + r.srv_size)
			rc = -EUCLEAN;
	}
	if (rc < 0) {
		log_warn(LOG_WB, "dirty.tdb: ignoring a %s record",
			 rc == -EPROTONOSUPPORT ? "newer" : "malformed");
		return 0;
	}
	ws = calloc(1, sizeof(*ws));
	if (!ws)
		return -1;
	memcpy(&ws->fid, k.dptr, sizeof(ws->fid));
	ws->base_dv = r.base_dv;
	ws->srv_size = r.srv_size;
	ws->size = r.size;
	ws->zero_from = r.zero_from;
	ws->mtime_ns = r.mtime_ns;
	ws->ctime_ns = r.ctime_ns;
	ws->parent = r.parent;
	if (r.namelen)
		ws->name = strndup(r.name, r.namelen);
	ws->logged = (r.flags & WB_REC_LOGGED) != 0;
	ws->dirty = !ws->logged;
	/* A version-1 record is rewritten once the table is loaded. */
	ws->saved = rc == 0;
	if (rc == 1)
		wb->nold++;
	if (ws->dirty)
		wb->ndirty++;
	SLIST_INSERT_HEAD(&wb->tab[bucket(&ws->fid)], ws, link);
	return 0;
}

/* Rewrite the version-1 records load_cb() found (not inside the
 * traverse: it would visit what it rewrites). */
static void
rewrite_old(struct wb *wb)
{
	unsigned n = 0;

	for (size_t b = 0; b < WB_BUCKETS; b++) {
		struct wstate *ws;

		SLIST_FOREACH(ws, &wb->tab[b], link) {
			if (ws->saved)
				continue;
			save_locked(wb, ws);
			n += ws->saved;
			/* Failed: the old record is still there, and read. */
			ws->saved = true;
		}
	}
	log_info(LOG_WB, "dirty.tdb: rewrote %u of %u records in the new "
			 "format",
		 n, wb->nold);
}

int
wb_new(struct cm *cm, const struct wb_hooks *hooks)
{
	struct wb *wb = calloc(1, sizeof(*wb));
	char path[4096];

	if (!wb)
		return -ENOMEM;
	cm->wbh = hooks;
	pthread_mutex_init(&wb->lock, NULL);
	pthread_cond_init(&wb->cond, NULL);
	snprintf(path, sizeof(path), "%s/dirty.tdb", cm->cfg.cache_dir);
	errno = 0;
	wb->tdb = tdb_open(path, 0, TDB_NOSYNC | TDB_NOLOCK, O_RDWR | O_CREAT,
			   0600);
	if (!wb->tdb) {
		int rc = tdbw_open_errno(errno);

		log_err(LOG_WB, "cannot open '%s': %s", path, strerror(-rc));
		pthread_mutex_destroy(&wb->lock);
		pthread_cond_destroy(&wb->cond);
		free(wb);
		return rc;
	}
	tdb_traverse(wb->tdb, load_cb, wb);
	if (wb->nold)
		rewrite_old(wb);
	if (wb->ndirty)
		log_info(LOG_WB, "%llu files have local changes to store",
			 (unsigned long long)wb->ndirty);
	cm->wb = wb;
	return 0;
}

void
wb_free(struct cm *cm)
{
	struct wb *wb = cm->wb;

	if (!wb)
		return;
	for (size_t b = 0; b < WB_BUCKETS; b++) {
		while (!SLIST_EMPTY(&wb->tab[b]))
			unlink_free_locked(wb, SLIST_FIRST(&wb->tab[b]));
	}
	if (wb->tdb)
		tdb_close(wb->tdb);
	pthread_mutex_destroy(&wb->lock);
	pthread_cond_destroy(&wb->cond);
	cm->wb = NULL;
	free(wb);
}
