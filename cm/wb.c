/*
 * wb.c - write-back of file data (see wb.h).
 *
 * One mutex (wb->lock) guards the table of write states and every field
 * of them; chunk I/O runs outside it (checkpoints too: ckpt_begin_locked()). A state is "busy writing" while
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
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chunkstore/cs.h"
#include "cm/cm.h"
#include "cm/conn.h"
#include "cm/fetch.h"
#include "cm/http.h"
#include "cm/inode.h"
#include "cm/loop.h"
#include "cm/mcache.h"
#include "cm/mfetch.h"
#include "cm/mut.h"
#include "cm/rlog.h"
#include "cm/stats.h"
#include "cm/wb.h"
#include "cm/wb_i.h"
#include "cm/wb_rec.h"
#include "common/log.h"
#include "common/tdbj.h"
#include "common/tdbw.h"
#include "common/util.h"

/* --- table --- */

static size_t
bucket(const struct fid *f)
{
	return (f->oid[0] ^ f->oid[7] ^ f->oid[15]) % WB_BUCKETS;
}

struct wstate *
wb_find_locked(struct wb *wb, const struct fid *f)
{
	struct wstate *w;

	SLIST_FOREACH(w, &wb->tab[bucket(f)], link)
	if (fid_eq(&w->fid, f))
		return w;
	return NULL;
}

void
wb_unlink_free_locked(struct wb *wb, struct wstate *ws)
{
	SLIST_REMOVE(&wb->tab[bucket(&ws->fid)], ws, wstate, link);
	free(ws->name);
	free(ws->cgen);
	free(ws->sgen);
	free(ws);
}

void
wb_ahead_reset_locked(struct wstate *ws)
{
	ws->ahead = false;
	if (ws->sgen)
		memset(ws->sgen, 0, ws->ngen * sizeof(*ws->sgen));
}

/* Chunks [@c0, @c1] of @ws were written (lock held). */
static void
gen_bump_locked(struct wstate *ws, uint64_t c0, uint64_t c1)
{
	if (ws->no_ahead)
		return;
	if (c1 >= ws->ngen) {
		size_t n = ws->ngen ? ws->ngen : 16;
		uint32_t *cg, *sg;

		while (n <= c1)
			n *= 2;
		/* Stage-ahead is for streams; a file written far out (over
		 * 256 GiB of 256 KiB chunks) just goes at close. */
		if (n > (1u << 20)) {
			ws->no_ahead = true;
			wb_ahead_reset_locked(ws);
			return;
		}
		cg = realloc(ws->cgen, n * sizeof(*cg));
		if (cg)
			ws->cgen = cg;
		sg = cg ? realloc(ws->sgen, n * sizeof(*sg)) : NULL;
		if (sg)
			ws->sgen = sg;
		if (!cg || !sg) {
			ws->no_ahead = true;
			wb_ahead_reset_locked(ws);
			return;
		}
		memset(ws->cgen + ws->ngen, 0, (n - ws->ngen) * sizeof(*cg));
		memset(ws->sgen + ws->ngen, 0, (n - ws->ngen) * sizeof(*sg));
		ws->ngen = n;
	}
	for (uint64_t c = c0; c <= c1; c++)
		ws->cgen[c]++;
}

void (*wb_saved_hook)(void);
void (*wb_cut_hook)(const struct fid *fid);
void (*wb_read_hook)(const struct fid *fid);

/* Persist @ws (lock held). A failure is logged: the data itself is safe
 * in the chunk store; only the size would be guessed after a crash. */
/*
 * dirty.tdb.jnl refuses every change after a failed write or sync (its
 * state on disk is unknown). Report that once, count each refused save or
 * drop, and mend it (tdbj_repair(): a synced checkpoint of every committed
 * change, then a fresh journal) at the next save or tick, at most once a
 * second while it keeps failing.
 */
#define DJ_MEND_MS 1000

static void
dj_save_failed(struct wb *wb, int rc, const char *what)
{
	CM_STAT_INC(wb->d.st, wb_save_errors);
	if (wb->dj_failing)
		return;
	wb->dj_failing = true;
	log_err(LOG_WB, "cannot %s a write state in dirty.tdb: %s (until "
		"mended, a kill -9 loses the write states changed since; "
		"counter wb_save_errors)", what, strerror(-rc));
}

/* Lock held. */
static void
dj_mend_locked(struct wb *wb)
{
	struct tdbj_stats js;
	uint64_t now;
	int rc;

	if (!wb->dj_failing || !wb->dj)
		return;
	now = util_now_ms();
	if (wb->dj_mend_ms && now - wb->dj_mend_ms < DJ_MEND_MS)
		return;
	wb->dj_mend_ms = now;
	tdbj_stats(wb->dj, &js);
	rc = js.broken ? tdbj_repair(wb->dj) : 0;
	if (rc) {
		log_warn(LOG_WB, "dirty.tdb.jnl: still cannot mend: %s",
			 strerror(-rc));
		return;
	}
	if (js.broken)
		CM_STAT_INC(wb->d.st, wb_journal_repairs);
	for (size_t i = 0; i < wb->undropped.cap && !rc; i++) {
		struct fidmap_slot *sl = &wb->undropped.slot[i];

		if (!sl->used || !sl->dv)
			continue;
		rc = tdbj_txn_start(wb->dj);
		if (rc == 0) {
			rc = tdbj_delete(wb->dj, &sl->fid, sizeof(sl->fid));
			if (rc == 0 || rc == -ENOENT)
				rc = tdbj_txn_commit(wb->dj, TDBJ_C_NOSYNC);
			else
				tdbj_txn_cancel(wb->dj);
		}
		if (rc == 0)
			sl->dv = 0;
	}
	if (rc) {
		log_warn(LOG_WB, "dirty.tdb: still cannot drop a write "
			 "state: %s", strerror(-rc));
		return;
	}
	fidmap_clear(&wb->undropped);
	wb->dj_failing = false;
	log_info(LOG_WB, "dirty.tdb.jnl mended: write states are saved "
		 "again");
}

int
wb_save_locked(struct wb *wb, struct wstate *ws)
{
	struct wb_rec r = {0};
	size_t len = 0;
	void *buf = NULL;
	int rc = -ENOMEM;

	if (!wb->dj)
		goto out;
	dj_mend_locked(wb);
	wb->dj_save_ms = util_now_ms();
	r.flags = (ws->logged ? WB_REC_LOGGED : 0) |
		  (ws->created ? WB_REC_CREATED : 0);
	r.sa_mask = ws->sa_mask;
	r.sa_mode = ws->sa_mode;
	r.sa_uid = ws->sa_uid;
	r.sa_gid = ws->sa_gid;
	r.sa_atime_ns = ws->sa_atime_ns;
	r.sa_mtime_ns = ws->sa_mtime_ns;
	r.base_dv = ws->base_dv;
	r.srv_size = ws->srv_size;
	/* What the committed chunks hold: a kill -9 discards the open
	 * working copies, and a size beyond their bytes would read (and be
	 * stored) as zeros. Growth since is found from the chunks. */
	r.size = ws->uncommitted || ws->checkpointing ? ws->ck_size : ws->size;
	/* A truncate is cutting (cut_begin()): the size it cuts to, saved
	 * before its first cut; zero_from stays (wb_new() lowers it to
	 * the size it finds). */
	if (ws->ncut && r.size > ws->cut_to)
		r.size = ws->cut_to;
	r.zero_from = ws->zero_from;
	r.mtime_ns = ws->mtime_ns;
	r.ctime_ns = ws->ctime_ns;
	r.parent = ws->parent;
	r.name = ws->name;
	r.namelen = ws->name ? strlen(ws->name) : 0;
	buf = wb_rec_encode(&r, &len);
	if (!buf)
		goto out;
	/* One record appended to dirty.tdb.jnl, not synced (wb_new()). */
	rc = tdbj_txn_start(wb->dj);
	if (rc == 0) {
		rc = tdbj_store(wb->dj, &ws->fid, sizeof(ws->fid), buf, len,
				TDB_REPLACE);
		if (rc == 0)
			rc = tdbj_txn_commit(wb->dj, TDBJ_C_NOSYNC);
		else
			tdbj_txn_cancel(wb->dj);
	}
	if (rc == 0) {
		struct fidmap_slot *sl = fidmap_find(&wb->undropped, &ws->fid);

		if (sl)
			sl->dv = 0; /* this record replaced the undropped one */
		ws->saved = true;
		if (wb_saved_hook)
			wb_saved_hook();
	}
out:
	if (rc != 0) {
		/* The state stays unsaved: the next change saves it again. */
		dj_save_failed(wb, rc, "save");
	} else if (wb->dj_failing && !wb->undropped.n) {
		wb->dj_failing = false; /* a transient error (ENOMEM) */
	}
	free(buf);
	return rc;
}

void
wb_forget_locked(struct wb *wb, struct wstate *ws)
{
	int rc;

	if (!ws->saved || !wb->dj)
		return;
	dj_mend_locked(wb);
	wb->dj_save_ms = util_now_ms();
	rc = tdbj_txn_start(wb->dj);
	if (rc == 0) {
		/* Not there is as good as dropped. */
		rc = tdbj_delete(wb->dj, &ws->fid, sizeof(ws->fid));
		if (rc == 0 || rc == -ENOENT)
			rc = tdbj_txn_commit(wb->dj, TDBJ_C_NOSYNC);
		else
			tdbj_txn_cancel(wb->dj);
	}
	if (rc != 0) {
		dj_save_failed(wb, rc, "drop");
		/* Deleted once mended (dj_mend_locked()). Out of memory
		 * here: the record stays, as before. */
		fidmap_put(&wb->undropped, &ws->fid, 1);
	}
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

void
wb_mark_clean_locked(struct wb *wb, struct wstate *ws)
{
	if (ws->dirty) {
		ws->dirty = false;
		wb->ndirty--;
	}
}

int
wb_checkpoint_locked(struct wb *wb, struct wstate *ws)
{
	int rc;

	if (!ws->uncommitted || !wb->d.cs)
		return 0;
	rc = cs_commit_file_flags(wb->d.cs, ws->fid.vol, ws->fid.oid,
				  CS_C_NOSYNC);
	if (rc < 0) {
		log_err(LOG_WB, "cannot commit the chunks of a file: %s",
			strerror(-rc));
		return rc;
	}
	ws->uncommitted = false;
	CM_STAT_INC(wb->d.st, wb_checkpoints);
	/* The record's size may now lag behind (growth): found from the
	 * chunks after a crash (sizes_from_chunks()). Shrinking saves at
	 * once (a truncate). A state never saved is saved now. */
	if (ws->dirty && !ws->saved && !ws->gone)
		wb_save_locked(wb, ws);
	return 0;
}

/*
 * Checkpoints outside wb->lock (review 10, finding 2: it is one mutex for
 * every file, and a commit reads, CRCs and may fdatasync up to 64 working
 * copies). Under the lock ckpt_begin_locked() marks the state
 * "checkpointing", pins it against a store (writing++: a store waits for
 * writing == 0) and clears uncommitted; the commit runs unlocked; then
 * ckpt_end_locked() finds the state again (it may have been freed
 * meanwhile: by fid and id) and settles it. Meanwhile a save names ck_size
 * (wb_save_locked()), and a write that ends sets uncommitted again without
 * moving ck_size, which stays what the last finished checkpoint committed;
 * once this one succeeds ck_size becomes the size it started at. A failed
 * commit sets uncommitted again.
 */
struct ckpt {
	struct fid fid;
	uint64_t id, target;
};

static bool
ckpt_begin_locked(struct wb *wb, struct wstate *ws, struct ckpt *ck)
{
	if (!ws->uncommitted || ws->checkpointing || !wb->d.cs)
		return false;
	ws->checkpointing = true;
	ws->writing++;
	ws->uncommitted = false;
	ck->fid = ws->fid;
	ck->id = ws->id;
	ck->target = ws->size;
	return true;
}

static int
ckpt_commit(struct wb *wb, const struct ckpt *ck)
{
	int rc = cs_commit_file_flags(wb->d.cs, ck->fid.vol, ck->fid.oid,
				      CS_C_NOSYNC);

	if (rc < 0)
		log_err(LOG_WB, "cannot commit the chunks of a file: %s",
			strerror(-rc));
	return rc < 0 ? rc : 0;
}

/* @return the state again (lock held), or NULL if it went meanwhile. */
static struct wstate *
ckpt_end_locked(struct wb *wb, const struct ckpt *ck, int rc)
{
	struct wstate *ws = wb_find_locked(wb, &ck->fid);

	if (ws && ws->id != ck->id)
		ws = NULL;
	if (ws) {
		ws->checkpointing = false;
		ws->writing--;
		if (rc < 0) {
			if (!ws->uncommitted) {
				ws->uncommitted = true;
				ws->ck_ms = util_now_ms();
			}
		} else {
			if (ws->uncommitted)
				ws->ck_size = ck->target;
			CM_STAT_INC(wb->d.st, wb_checkpoints);
			if (ws->dirty && !ws->saved && !ws->gone)
				wb_save_locked(wb, ws);
		}
	}
	pthread_cond_broadcast(&wb->cond);
	return ws;
}

/*
 * Checkpoint *@wsp now, outside the lock (held at call and return): waits
 * for a checkpoint already running, then commits what is left. *@wsp is
 * set to the state found again, NULL if it went meanwhile (its chunks are
 * committed then all the same). @return 0 or -errno.
 */
static int
checkpoint_wait_locked(struct wb *wb, struct wstate **wsp)
{
	struct wstate *ws = *wsp;
	struct ckpt ck;
	int rc;

	while (ws->checkpointing) {
		struct fid fid = ws->fid;
		uint64_t id = ws->id;

		pthread_cond_wait(&wb->cond, &wb->lock);
		ws = wb_find_locked(wb, &fid);
		if (!ws || ws->id != id) {
			*wsp = NULL;
			return 0;
		}
	}
	*wsp = ws;
	if (!ckpt_begin_locked(wb, ws, &ck))
		return 0;
	pthread_mutex_unlock(&wb->lock);
	rc = ckpt_commit(wb, &ck);
	pthread_mutex_lock(&wb->lock);
	*wsp = ckpt_end_locked(wb, &ck, rc);
	return rc;
}

/* Checkpoint @fid's state if it has uncommitted writes (no lock held). */
static void
checkpoint_fid(struct wb *wb, const struct fid *fid)
{
	struct wstate *ws;

	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, fid);
	if (ws && ws->uncommitted && !ws->gone && !ws->storing)
		checkpoint_wait_locked(wb, &ws);
	pthread_mutex_unlock(&wb->lock);
}

/*
 * The idle checkpoint (review 10, finding 5): the WB_CKPT_MS rule of
 * end_io() needs a later write, so a file written once and then held open
 * would keep its writes in working copies until its close. While some
 * state is uncommitted a loop timer checkpoints those uncommitted for
 * WB_CKPT_MS: at most ~WB_CKPT_MS of acknowledged writes of a file left
 * open are exposed to a kill -9 (more while a store or a checkpoint of it
 * runs). A file still being written is mostly checkpointed by its writer
 * first (end_io(), in the writer's thread); the timer's commits run on the
 * loop thread, as the files it finds are idle.
 */
#define CKPT_TICK_MIN_MS 50
#define CKPT_BATCH	 16

static void ckpt_tick(struct cm_loop *loop, struct cm_job *job);

/* Lock held: arm the timer if it is not; @return true if the caller must
 * post the job (after dropping the lock). */
static bool
ckpt_arm_locked(struct wb *wb)
{
	/* (A loop never made, in unit tests: no base, no timer.) */
	if (wb->ckpt_armed || !wb->d.loop || !wb->d.loop->base)
		return false;
	wb->ckpt_armed = true;
	return true;
}

static void
ckpt_post(struct wb *wb)
{
	wb->ckpt_job.run = ckpt_tick;
	cm_post(wb->d.loop, &wb->ckpt_job);
}

static void
ckpt_tick(struct cm_loop *loop, struct cm_job *job)
{
	struct wb *wb = (struct wb *)((char *)job - offsetof(struct wb,
							      ckpt_job));
	struct ckpt ck[CKPT_BATCH];
	size_t n = 0;
	uint64_t now, next = UINT64_MAX;
	bool more = false;

	if (cm_stopping(loop))
		return; /* wb_free() commits what is left */
	now = util_now_ms();
	pthread_mutex_lock(&wb->lock);
	dj_mend_locked(wb);
	for (size_t b = 0; b < WB_BUCKETS; b++) {
		struct wstate *ws;

		SLIST_FOREACH(ws, &wb->tab[b], link)
		{
			uint64_t due;

			if (!ws->uncommitted || ws->gone)
				continue;
			due = ws->ck_ms + WB_CKPT_MS;
			if (due <= now && n < CKPT_BATCH && !ws->storing &&
			    ckpt_begin_locked(wb, ws, &ck[n])) {
				n++;
				continue;
			}
			/* Not yet due, or busy (a store, a checkpoint, the
			 * batch full): look again later. */
			more = true;
			if (due > now && due < next)
				next = due;
		}
	}
	pthread_mutex_unlock(&wb->lock);
	for (size_t i = 0; i < n; i++) {
		int rc = ckpt_commit(wb, &ck[i]);

		pthread_mutex_lock(&wb->lock);
		ckpt_end_locked(wb, &ck[i], rc);
		pthread_mutex_unlock(&wb->lock);
	}
	pthread_mutex_lock(&wb->lock);
	/* A state that became uncommitted meanwhile found the timer armed
	 * and left it to this tick: look at the table once more. */
	for (size_t b = 0; !more && b < WB_BUCKETS; b++) {
		struct wstate *ws;

		SLIST_FOREACH(ws, &wb->tab[b], link)
		if (ws->uncommitted && !ws->gone)
			more = true;
	}
	if (wb->dj) {
		/* dirty.tdb.jnl's checkpoint while no save waits for it
		 * (below WB_JOURNAL_MAX a save never runs one), on this
		 * thread under the lock: the files are idle, the loop is
		 * held for it. The timer stays armed until then. */
		struct tdbj_stats js;

		tdbj_stats(wb->dj, &js);
		if (js.bytes > WB_JOURNAL_IDLE && !js.broken) {
			if (util_now_ms() - wb->dj_save_ms >=
			    WB_JOURNAL_IDLE_MS) {
				int crc = tdbj_checkpoint(wb->dj);

				if (crc)
					log_warn(LOG_WB,
						 "dirty.tdb.jnl: checkpoint: "
						 "%s",
						 strerror(-crc));
				else
					log_info(LOG_WB,
						 "dirty.tdb.jnl: %llu bytes "
						 "checkpointed while idle",
						 (unsigned long long)js.bytes);
			} else {
				more = true;
			}
		}
	}
	if (!more)
		wb->ckpt_armed = false;
	pthread_mutex_unlock(&wb->lock);
	if (more) {
		uint64_t ms = next == UINT64_MAX || next <= now
				      ? CKPT_TICK_MIN_MS * 4
				      : next - now;

		if (ms < CKPT_TICK_MIN_MS)
			ms = CKPT_TICK_MIN_MS;
		if (ms > WB_CKPT_MS)
			ms = WB_CKPT_MS;
		if (cm_post_after(loop, job, (unsigned)ms) < 0) {
			pthread_mutex_lock(&wb->lock);
			wb->ckpt_armed = false;
			pthread_mutex_unlock(&wb->lock);
		}
	}
}

/* Wait (lock held) until no store runs on @ws; bounded. */
static int
wait_store_locked(struct wb *wb, struct wstate *ws)
{
	struct timespec until;
	uint64_t ms = 2 * wb->d.timeout_ms + 5000;

	util_deadline(&until, CLOCK_REALTIME, ms);
	while (ws->storing) {
		if (pthread_cond_timedwait(&wb->cond, &wb->lock, &until) ==
		    ETIMEDOUT)
			return -EIO;
	}
	return 0;
}

/* --- attributes --- */

void
wb_overlay(struct wb *wb, struct proto_attr *a)
{
	struct wstate *ws;

	if (!wb || a->type != PROTO_T_FILE)
		return;
	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, &a->fid);
	if (ws && ws->conflicted) {
		/* the server's attributes stand */
	} else if (ws && !ws->gone) {
		a->size = ws->size;
		if (ws->dirty) {
			a->mtime_ns = ws->mtime_ns;
			a->ctime_ns = ws->ctime_ns;
		}
		if (ws->sa_mask & PROTO_SA_MODE)
			a->mode = (a->mode & ~07777u) | (ws->sa_mode & 07777);
		if (ws->sa_mask & PROTO_SA_UID)
			a->uid = ws->sa_uid;
		if (ws->sa_mask & PROTO_SA_GID)
			a->gid = ws->sa_gid;
		if (ws->sa_mask & PROTO_SA_ATIME)
			a->atime_ns = ws->sa_atime_ns;
		if (ws->sa_mask & PROTO_SA_MTIME)
			a->mtime_ns = ws->sa_mtime_ns;
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
wb_orphan_attr(struct wb *wb, const struct fid *fid, struct proto_attr *out)
{
	struct wstate *ws;
	int rc = -ENOENT;

	if (!wb)
		return rc;
	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, fid);
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
wb_name_of(struct wb *wb, const struct fid *fid, struct fid *parent, char *buf,
	   size_t len)
{
	struct wstate *ws;
	int rc = -ENOENT;

	if (!wb)
		return rc;
	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, fid);
	if (ws && ws->name && strlen(ws->name) < len) {
		strcpy(buf, ws->name);
		*parent = ws->parent;
		rc = 0;
	}
	pthread_mutex_unlock(&wb->lock);
	return rc;
}

bool
wb_dirty(struct wb *wb, const struct fid *fid)
{
	struct wstate *ws;
	bool d;

	if (!wb)
		return false;
	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, fid);
	d = ws && ws->dirty;
	pthread_mutex_unlock(&wb->lock);
	return d;
}

bool
wb_active(struct wb *wb, const struct fid *fid)
{
	bool a;

	if (!wb)
		return false;
	pthread_mutex_lock(&wb->lock);
	a = wb_find_locked(wb, fid) != NULL;
	pthread_mutex_unlock(&wb->lock);
	return a;
}

uint64_t
wb_logged_size(struct wb *wb, const struct fid *fid)
{
	struct wstate *ws;
	uint64_t n = 0;

	if (!wb)
		return 0;
	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, fid);
	if (ws && ws->logged && !ws->gone && !ws->conflicted)
		n = ws->logged_size;
	pthread_mutex_unlock(&wb->lock);
	return n;
}

uint64_t
wb_dirty_files(struct wb *wb)
{
	uint64_t n;

	if (!wb)
		return 0;
	pthread_mutex_lock(&wb->lock);
	n = wb->ndirty;
	pthread_mutex_unlock(&wb->lock);
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

/* Lock held: nothing noted of @fid in wb->moved_src (see below). */
static void
moved_forget_locked(struct wb *wb, const struct fid *fid)
{
	struct fidmap_slot *ms = fidmap_find(&wb->moved_src, fid);
	struct fidmap_slot *md = fidmap_find(&wb->moved_dst, fid);

	if (ms)
		ms->dv = 0;
	if (md)
		md->dv = 0;
}

/*
 * Lock held: the base DV of a new write state made from the cached
 * attributes @a. Their DV, unless stored() moved the chunks from that DV
 * (the one the store was logged on, local or the server's before it) to
 * the store's answer while a later record kept the attributes on it
 * (moved_note_locked()): the chunks are at the answer's DV then, and a
 * write state on the old one found none (a truncate or write asked the
 * server for a DV it no longer had, or never had, and failed with EIO:
 * t2356, t2350 under load). Its records are sent on the DV map's DV all
 * the same (replay.c subst_base()).
 */
static uint64_t
moved_base_locked(struct wb *wb, const struct proto_attr *a)
{
	struct fidmap_slot *ms = fidmap_find(&wb->moved_src, &a->fid);
	struct fidmap_slot *md = fidmap_find(&wb->moved_dst, &a->fid);
	uint64_t base = a->dv;

	if (ms && ms->dv && ms->dv == a->dv && md && md->dv)
		base = md->dv;
	moved_forget_locked(wb, &a->fid);
	return base;
}

int
wb_open_write(struct wb *wb, const struct proto_attr *a,
	      const struct fid *parent, const char *name)
{
	struct wstate *ws;
	bool fresh = false;
	uint64_t base = 0;

	if (!wb)
		return -EIO;
	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, &a->fid);
	if (!ws) {
		ws = calloc(1, sizeof(*ws));
		if (!ws) {
			pthread_mutex_unlock(&wb->lock);
			return -ENOMEM;
		}
		ws->fid = a->fid;
		ws->id = ++wb->next_id;
		ws->attr = *a;
		ws->base_dv = moved_base_locked(wb, a);
		ws->srv_size = ws->size = ws->zero_from = a->size;
		ws->mtime_ns = a->mtime_ns;
		ws->ctime_ns = a->ctime_ns;
		SLIST_INSERT_HEAD(&wb->tab[bucket(&a->fid)], ws, link);
		fresh = true;
		base = ws->base_dv;
		{
			char fs[FID_STRLEN];

			log_debug(LOG_WB,
				  "write state of %s: base DV %llu%s, size %llu",
				  fid_fmt(&a->fid, fs),
				  (unsigned long long)ws->base_dv,
				  ws->base_dv != a->dv
					  ? " (its store's answer; the cached "
					    "attributes stay ahead)"
					  : "",
				  (unsigned long long)a->size);
		}
	}
	ws->writers++;
	set_name_locked(ws, parent, name);
	pthread_mutex_unlock(&wb->lock);
	/* Chunks of older DVs would only get in the way of writes. */
	if (fresh && base > 0)
		cs_invalidate(wb->d.cs, a->fid.vol, a->fid.oid, base);
	return 0;
}

/* Drop every local chunk of @fid, dirty ones included (lock NOT held). */
static int
drop_dirty_cb(const struct cs_info *i, void *arg)
{
	struct wb *wb = arg;

	if (i->flags & CS_F_DIRTY) {
		/* about to be dropped: no fsync */
		cs_commit_flags(wb->d.cs, &i->key, CS_C_NOSYNC);
		cs_mark_clean(wb->d.cs, &i->key, i->dv);
	}
	return 0;
}

void
wb_drop_chunks(struct wb *wb, const struct fid *fid)
{
	struct fidmap_slot *sl;

	/* no sync owed to chunks that go (a sync thread's ends as it
	 * started: it finds its state changed) */
	pthread_mutex_lock(&wb->lock);
	sl = fidmap_find(&wb->owed, fid);
	if (sl && sl->dv == 1) {
		sl->dv = 0;
		if (!--wb->nowed)
			fidmap_clear(&wb->owed);
	}
	pthread_mutex_unlock(&wb->lock);
	cs_iterate_file(wb->d.cs, fid->vol, fid->oid, drop_dirty_cb, wb);
	cs_invalidate(wb->d.cs, fid->vol, fid->oid, UINT64_MAX);
}

void
wb_release_write(struct wb *wb, const struct fid *fid)
{
	struct wstate *ws;
	bool drop = false;

	if (!wb)
		return;
	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, fid);
	/* No writer is left to close it: what it wrote after its last
	 * flush (a failed one, or writes through a mapping) is committed
	 * now, not only at the next store; outside the lock, while this
	 * writer still holds the state. */
	if (ws && ws->writers <= 1 && !ws->gone)
		checkpoint_wait_locked(wb, &ws);
	if (ws && ws->writers > 0)
		ws->writers--;
	if (ws && !ws->writers && !ws->storing &&
	    ((!ws->dirty && !ws->logged) || ws->gone)) {
		drop = ws->gone;
		wb_forget_locked(wb, ws);
		wb_unlink_free_locked(wb, ws);
	}
	pthread_mutex_unlock(&wb->lock);
	if (drop)
		wb_drop_chunks(wb, fid);
}

void
wb_created(struct wb *wb, const struct fid *fid)
{
	struct wstate *ws;

	if (!wb)
		return;
	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, fid);
	if (ws && ws->base_dv == 0 && !ws->gone) {
		/* Not saved: the create's record is in the log; the first
		 * write saves the state. */
		ws->created = true;
		mark_dirty_locked(wb, ws);
	}
	pthread_mutex_unlock(&wb->lock);
}

int
wb_setattr(struct wb *wb, const struct fid *fid, uint32_t mask, uint32_t mode,
	   uint32_t uid, uint32_t gid, int64_t atime_ns, int64_t mtime_ns)
{
	struct wstate *ws;
	int rc = -ENOENT;

	if (!wb || !mask ||
	    (mask & ~(uint32_t)(PROTO_SA_MODE | PROTO_SA_UID | PROTO_SA_GID |
				PROTO_SA_ATIME | PROTO_SA_MTIME)))
		return -ENOENT;
	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, fid);
	/* Folded or not, it returns as durable as the op it replaces (a
	 * replay-log append in writeback mode, the server's answer): so
	 * must the writes before it be, which may sit in open working
	 * copies (review 10, finding 4: a setattr of a logged file, or one
	 * while a store runs, is not folded). Outside the lock. */
	if (ws && ws->uncommitted && !ws->gone && !ws->storing &&
	    checkpoint_wait_locked(wb, &ws) < 0) {
		pthread_mutex_unlock(&wb->lock);
		return -ENOENT;
	}
	/* Only what a store will carry anyway: an open file with local
	 * changes (not yet at the store that takes them, nor logged).
	 * Writeback and disconnected too: the store at close is logged
	 * with the attributes as a setattr record in the same replay-log
	 * commit (store_offline()); until then dirty.tdb keeps them, so a
	 * kill -9 loses nothing that returned (wb_resume() logs the store
	 * with them). */
	if (ws && ws->writers && ws->dirty && !ws->gone && !ws->logged &&
	    !ws->storing && !ws->conflicted && !ws->replaying) {
		struct wstate old = *ws;

		if (mask & PROTO_SA_MODE)
			ws->sa_mode = mode & 07777;
		if (mask & PROTO_SA_UID)
			ws->sa_uid = uid;
		if (mask & PROTO_SA_GID)
			ws->sa_gid = gid;
		if (mask & PROTO_SA_ATIME)
			ws->sa_atime_ns = atime_ns;
		if (mask & PROTO_SA_MTIME)
			ws->sa_mtime_ns = mtime_ns;
		ws->sa_mask |= mask;
		ws->ctime_ns = util_wall_ns();
		rc = wb_save_locked(wb, ws);
		if (rc) {
			/* Not saved: a kill -9 would lose it. Send or log it
			 * as a setattr of its own. */
			ws->sa_mask = old.sa_mask;
			ws->sa_mode = old.sa_mode;
			ws->sa_uid = old.sa_uid;
			ws->sa_gid = old.sa_gid;
			ws->sa_atime_ns = old.sa_atime_ns;
			ws->sa_mtime_ns = old.sa_mtime_ns;
			ws->ctime_ns = old.ctime_ns;
			rc = -ENOENT;
		}
	}
	pthread_mutex_unlock(&wb->lock);
	return rc;
}

void
wb_renamed(struct wb *wb, const struct fid *fid, const struct fid *parent,
	   const char *name)
{
	struct wstate *ws;

	if (!wb)
		return;
	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, fid);
	if (ws) {
		set_name_locked(ws, parent, name);
		if (ws->saved)
			wb_save_locked(wb, ws);
	}
	pthread_mutex_unlock(&wb->lock);
}

void
wb_gone(struct wb *wb, const struct fid *fid)
{
	struct wstate *ws;
	bool drop = false;

	if (!wb)
		return;
	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, fid);
	if (ws) {
		ws->gone = true;
		wb_mark_clean_locked(wb, ws);
		wb_forget_locked(wb, ws);
		if (!ws->writers && !ws->storing) {
			wb_unlink_free_locked(wb, ws);
			drop = true;
		}
	}
	pthread_mutex_unlock(&wb->lock);
	if (drop)
		wb_drop_chunks(wb, fid);
}

/* --- writes --- */

/*
 * Make chunk @c of @ws (snapshot values) ready for a write of [a, b)
 * (offsets in the chunk): returns 0, or -EAGAIN when the server's bytes
 * of the chunk that the write leaves must be fetched first.
 */
static int
prepare_chunk(struct wb *wb, const struct fid *fid, uint64_t base_dv,
	      uint64_t zero_from, uint64_t c, uint32_t a, uint32_t b)
{
	uint64_t cstart = c * wb->d.chunk_size;
	struct cs_key k;
	struct cs_info info;
	bool present;

	cm_chunk_key(&k, fid, c);
	present = cs_lookup(wb->d.cs, &k, &info) == 0 && info.dv == base_dv;
	if (present) {
		if (info.flags & CS_F_DIRTY)
			return 0;
		/* A clean copy of the server's bytes: cut what must read as
		 * zeros (after a truncate) before changing it. */
		if (cstart >= zero_from)
			return cs_truncate(wb->d.cs, &k, base_dv, 0);
		if (cstart + info.len > zero_from)
			return cs_truncate(wb->d.cs, &k, base_dv,
					   (uint32_t)(zero_from - cstart));
		return 0;
	}
	if (cstart >= zero_from || (a == 0 && cstart + b >= zero_from))
		return 0; /* nothing of the server's is left in it */
	return -EAGAIN;
}

uint32_t
wb_killed_mode(uint32_t mode, int how)
{
	if (!how)
		return mode;
	mode &= ~(uint32_t)S_ISUID;
	if (how == WB_KILL_ALL || (mode & S_IXGRP))
		mode &= ~(uint32_t)S_ISGID;
	return mode;
}

/*
 * Fold @kill into @ws (lock held, no store running: the caller waited
 * for it, and it counts as writing or holds the lock throughout), saved
 * in dirty.tdb before any byte of the write it goes with is written: a
 * store's snapshot (taken once writing is 0) and a wb_resume() after a
 * kill -9 both find the mode with the data. The state is marked dirty
 * even if the write then fails: a store of the mode alone errs on the
 * safe side, as the kernel's file_remove_privs() before a failed write.
 */
static int
kill_locked(struct wb *wb, struct wstate *ws, const struct wb_kill *kill)
{
	uint32_t was_mask = ws->sa_mask, was_mode = ws->sa_mode;
	bool was_dirty = ws->dirty;
	uint32_t mode;
	int rc;

	if (!kill || !kill->how || ws->gone)
		return 0;
	mode = (ws->sa_mask & PROTO_SA_MODE) ? ws->sa_mode
	       : kill->mode != WB_MODE_UNKNOWN ? kill->mode
					       : ws->attr.mode;
	mode &= 07777;
	if (wb_killed_mode(mode, kill->how) == mode)
		return 0;
	if (ws->logged || ws->replaying || ws->conflicted)
		return -EPERM;
	ws->sa_mode = wb_killed_mode(mode, kill->how);
	ws->sa_mask |= PROTO_SA_MODE;
	ws->ctime_ns = util_wall_ns();
	if (!ws->dirty)
		mark_dirty_locked(wb, ws);
	rc = wb_save_locked(wb, ws);
	if (rc) {
		/* Not saved: the data must not go without it. The mode
		 * goes first as a setattr of its own. */
		ws->sa_mask = was_mask;
		ws->sa_mode = was_mode;
		if (!was_dirty)
			wb_mark_clean_locked(wb, ws);
		return -EPERM;
	}
	return 0;
}

int
wb_kill(struct wb *wb, const struct fid *fid, const struct wb_kill *kill)
{
	struct wstate *ws;
	int rc;

	if (!wb)
		return -EIO;
	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, fid);
	rc = ws ? wait_store_locked(wb, ws) : -EBADF;
	if (rc == 0)
		rc = kill_locked(wb, ws, kill);
	pthread_mutex_unlock(&wb->lock);
	return rc;
}

/* Take a write slot on @fid's state, after clearing @kill's bits
 * (kill_locked()); fills the snapshot. With WB_IO_LOGGED in @flags,
 * -EINPROGRESS (nothing taken) when the write or truncate at @at would
 * change bytes a logged store still has to send (wb_logged_size()):
 * checked here, under the lock a store takes once the running writes
 * are done, so no store is logged between the check and the write. */
static int
begin_io(struct wb *wb, const struct fid *fid, struct wstate *snap,
	 const struct wb_kill *kill, uint64_t at, unsigned flags)
{
	struct wstate *ws;
	int rc;

	if (!wb)
		return -EIO;
	pthread_mutex_lock(&wb->lock);
	for (;;) {
		ws = wb_find_locked(wb, fid);
		if (!ws) {
			pthread_mutex_unlock(&wb->lock);
			return -EBADF;
		}
		/* A replay's retag moves the base DV (stored()): begin
		 * after it, with the new one. */
		if (ws->retagging) {
			pthread_cond_wait(&wb->cond, &wb->lock);
			continue;
		}
		rc = wait_store_locked(wb, ws);
		if (rc < 0 || !ws->retagging)
			break;
	}
	if (rc == 0 && ws->conflicted)
		rc = -EIO; /* this handle's version is in the conflict copy */
	if (rc == 0 && (flags & WB_IO_LOGGED) && ws->logged && !ws->gone &&
	    at < ws->logged_size)
		rc = -EINPROGRESS;
	if (rc == 0)
		rc = kill_locked(wb, ws, kill);
	if (rc == 0) {
		ws->writing++;
		ws->io++;
		*snap = *ws;
	}
	pthread_mutex_unlock(&wb->lock);
	return rc;
}

static int
end_io(struct wb *wb, const struct fid *fid, int rc, uint64_t new_size,
       bool set_size, uint64_t zero_from)
{
	struct wstate *ws;
	struct ckpt ck;
	bool ckpt = false, arm = false;

	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, fid);
	if (ws) {
		ws->writing--;
		ws->io--;
		if (set_size) {
			/* A truncate commits every working copy of the file
			 * (outside the lock) and saves the new size with it
			 * (below). */
			if (checkpoint_wait_locked(wb, &ws) < 0 && rc >= 0)
				rc = -EIO;
		} else if (!ws->uncommitted) {
			/* The first write since the last checkpoint: the
			 * committed chunks hold the size before it (or, while
			 * a checkpoint runs, ck_size already says what the
			 * last finished one committed). */
			ws->uncommitted = true;
			if (!ws->checkpointing)
				ws->ck_size = ws->size;
			ws->ck_ms = util_now_ms();
			arm = ckpt_arm_locked(wb);
		}
	}
	if (ws) {
		if (rc >= 0) {
			bool grow = set_size ? new_size != ws->size
					     : new_size > ws->size;

			if (grow)
				ws->size = new_size;
			if (set_size && ws->ck_size > new_size)
				ws->ck_size = new_size;
			if (zero_from < ws->zero_from)
				ws->zero_from = zero_from;
			ws->mtime_ns = ws->ctime_ns = util_wall_ns();
			/* A write after utimes sets mtime again. */
			if (ws->sa_mask & PROTO_SA_MTIME) {
				ws->sa_mask &= ~(uint32_t)PROTO_SA_MTIME;
				ws->saved = false;
			}
			/* A write that only grows the file is not saved:
			 * its chunk says how far it reached, and wb_new()
			 * takes the size from the chunks after a crash. So
			 * an append costs the chunk's commit alone. */
			if (!ws->dirty || !ws->saved || (set_size && grow)) {
				mark_dirty_locked(wb, ws);
				if (!ws->gone)
					wb_save_locked(wb, ws);
			}
		}
		/* A file written for a while without a close: its writes
		 * are committed at least once per WB_CKPT_MS, so a kill -9
		 * loses no more than that of them. */
		if (ws->uncommitted && util_now_ms() - ws->ck_ms >= WB_CKPT_MS)
			ckpt = ckpt_begin_locked(wb, ws, &ck);
		pthread_cond_broadcast(&wb->cond);
	}
	pthread_mutex_unlock(&wb->lock);
	if (arm)
		ckpt_post(wb);
	if (ckpt) {
		int crc = ckpt_commit(wb, &ck);

		pthread_mutex_lock(&wb->lock);
		ckpt_end_locked(wb, &ck, crc);
		pthread_mutex_unlock(&wb->lock);
	}
	return rc;
}

/* Dirty bytes above which a file is stored before close (cfg.dirty_limit,
 * or a quarter of the cache size, at most 256 MiB). */
static uint64_t
dirty_limit(const struct wb *wb)
{
	uint64_t l = wb->d.cache_size / 4;

	if (wb->d.dirty_limit)
		return wb->d.dirty_limit;
	return l > (256ull << 20) ? 256ull << 20 : l;
}

/*
 * Above the dirty limit, store the file just written before its close
 * (one queued store at a time per file). Its next writes wait for that
 * store (promise 3 of wb.h), which is the back-pressure that keeps dirty
 * data within bounds while a big file streams in.
 */
static void
maybe_write_back(struct wb *wb, const struct fid *fid)
{
	struct cs_stats st;
	struct wstate *ws;
	bool go = false;

	cs_get_stats(wb->d.cs, &st);
	if (st.dirty_bytes <= dirty_limit(wb))
		return;
	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, fid);
	if (ws && ws->dirty && !ws->storing && !ws->writeback && !ws->gone) {
		ws->writeback = true;
		go = true;
	}
	pthread_mutex_unlock(&wb->lock);
	if (go) {
		CM_STAT_INC(wb->d.st, writebacks);
		wb_flush(wb, fid, NULL, NULL);
	}
}

ssize_t
wb_write(struct wb *wb, const struct fid *fid, uint64_t off, const void *buf,
	 size_t len, uint64_t *need, const struct wb_kill *kill)
{
	return wb_write_ex(wb, fid, off, buf, len, need, kill, 0);
}

ssize_t
wb_write_ex(struct wb *wb, const struct fid *fid, uint64_t off,
	    const void *buf, size_t len, uint64_t *need,
	    const struct wb_kill *kill, unsigned flags)
{
	uint32_t csz = wb->d.chunk_size;
	unsigned commit_flags;
	struct wstate s;
	size_t done = 0;
	int rc;

	if (len == 0)
		return kill ? wb_kill(wb, fid, kill) : 0;
	rc = begin_io(wb, fid, &s, kill, off, flags);
	if (rc < 0)
		return rc;
	/* While changes are logged (writeback, disconnected), the close
	 * fsyncs what a stream filled: its writing to disk starts at once. */
	commit_flags = CS_C_NOSYNC;
	if (wb->d.conn && conn_logs_changes(wb->d.conn))
		commit_flags |= CS_C_WRITEOUT;
	while (done < len) {
		uint64_t pos = off + done, c = pos / csz;
		uint32_t a = (uint32_t)(pos % csz);
		size_t n = csz - a < len - done ? csz - a : len - done;
		struct cs_key k;

		rc = prepare_chunk(wb, fid, s.base_dv, s.zero_from, c, a,
				   a + (uint32_t)n);
		if (rc == -EAGAIN)
			*need = c;
		if (rc < 0)
			break;
		cm_chunk_key(&k, fid, c);
		/* Into the chunk's working copy, which stays open until
		 * the file's next checkpoint (wb_checkpoint_locked()), or
		 * until this write fills it to its end: a stream moves on
		 * and does not come back, so it is committed now. */
		rc = cs_write(wb->d.cs, &k, s.base_dv, a,
			      (const uint8_t *)buf + done, n);
		if (rc == 0 && a + n == csz)
			rc = cs_commit_flags(wb->d.cs, &k, commit_flags);
		if (rc < 0)
			break;
		done += n;
	}
	/* A write that failed after its first chunks (-EAGAIN for a chunk
	 * to fetch, an I/O error) changed those: the file is dirty up to
	 * where it got (review 10, 8b), or its release would commit them
	 * DIRTY at the base DV with no write state to store them. */
	end_io(wb, fid, done ? 0 : -1, off + done, false, UINT64_MAX);
	if (done) {
		uint64_t c0 = off / csz, c1 = (off + done - 1) / csz;
		uint64_t full = (off + done) / csz; /* chunks below: ended */
		bool go = false;
		struct wstate *ws;

		pthread_mutex_lock(&wb->lock);
		ws = wb_find_locked(wb, fid);
		if (ws) {
			/* Only a stream (each write where the last ended)
			 * is staged ahead: random writes would stage chunks
			 * that change again before the store. */
			bool stream = off == ws->last_end;

			gen_bump_locked(ws, c0, c1);
			ws->last_end = off + done;
			/* Not while changes are logged (the write-out
			 * above is their counterpart): one look at the
			 * mode for the whole write. */
			go = stream && !ws->no_ahead && !ws->gone &&
			     !ws->logged && full > c0 && wb->d.http &&
			     !(commit_flags & CS_C_WRITEOUT);
		}
		pthread_mutex_unlock(&wb->lock);
		for (uint64_t c = c0; go && c < full; c++)
			wb_stage_ahead(wb, fid, c);
	}
	if (done == len) {
		maybe_write_back(wb, fid);
		return (ssize_t)len;
	}
	if (rc == -ESTALE)
		rc = -EIO;
	return rc;
}

struct trunc_ctx {
	struct wb *wb;
	uint64_t size;
	int rc;
	uint64_t reached; /* the lowest offset a cut took bytes from */
};

/*
 * Cut every dirty chunk at or past the new size. One wholly past it is
 * emptied and made clean: a store sends only chunks below the size, and a
 * dirty chunk left behind would keep the old DV after the store and turn
 * the next write into it into -ESTALE. The chunks to cut are collected
 * (trunc_collect()) and cut from the last one down (trunc_cut()), so that
 * at every moment the dirty chunks still uncut hold a prefix of the old
 * version: what a kill -9 or a failed cut then leaves (doc/cm.md, "A
 * truncate and a kill -9").
 */
struct trunc_list {
	struct cs_info *v;
	size_t n, cap;
	int rc;
};

static int
trunc_collect(const struct cs_info *i, void *arg)
{
	struct trunc_list *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct cs_info *v = realloc(l->v, cap * sizeof(*v));

		if (!v) {
			l->rc = -ENOMEM;
			return -1;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *i;
	return 0;
}

static int
chunk_desc(const void *a, const void *b)
{
	uint64_t x = ((const struct cs_info *)a)->key.chunk;
	uint64_t y = ((const struct cs_info *)b)->key.chunk;

	return x < y ? 1 : x > y ? -1 : 0;
}

static int
trunc_cut(const struct cs_info *i, void *arg)
{
	struct trunc_ctx *t = arg;
	uint64_t cstart = i->key.chunk * t->wb->d.chunk_size;
	int rc = 0;

	if (!(i->flags & CS_F_DIRTY) || cstart + i->len <= t->size)
		return 0;
	rc = cs_truncate(t->wb->d.cs, &i->key, i->dv,
			 cstart >= t->size ? 0 : (uint32_t)(t->size - cstart));
	if (rc == 0) {
		uint64_t at = cstart >= t->size ? cstart : t->size;

		if (at < t->reached)
			t->reached = at;
	}
	if (rc == 0)
		rc = cs_commit_flags(t->wb->d.cs, &i->key, CS_C_NOSYNC);
	if (rc == 0 && cstart >= t->size)
		rc = cs_mark_clean(t->wb->d.cs, &i->key, i->dv);
	if (rc < 0 && !t->rc)
		t->rc = rc;
	return 0;
}

/* A truncate to @size is about to cut chunks of @fid (writing held):
 * readers take the file as that short from now on (wstate.ncut). Ended
 * by end_io() with set_size, once the new size is set. */
static void
cut_begin(struct wb *wb, const struct fid *fid, uint64_t size)
{
	struct wstate *ws;

	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, fid);
	if (ws) {
		if (!ws->ncut++ || size < ws->cut_to)
			ws->cut_to = size;
		ws->tgen++;
		/* Before the first cut, dirty.tdb names the new size: a
		 * kill -9 during the cuts then restarts from it, grown
		 * back over the dirty chunks not cut yet (a prefix of the
		 * old version: the cuts go from the last chunk down), not
		 * from the old size over cut chunks (zeros). */
		if (ws->dirty && !ws->gone)
			wb_save_locked(wb, ws);
	}
	pthread_mutex_unlock(&wb->lock);
}

/* The end of cut_begin()'s truncate, after end_io() set the size. */
static void
cut_end(struct wb *wb, const struct fid *fid)
{
	struct wstate *ws;

	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, fid);
	if (ws && ws->ncut) {
		ws->ncut--;
		ws->tgen++;
	}
	pthread_mutex_unlock(&wb->lock);
}

int
wb_truncate(struct wb *wb, const struct fid *fid, uint64_t size, uint64_t *need,
	    const struct wb_kill *kill)
{
	return wb_truncate_ex(wb, fid, size, need, kill, 0);
}

int
wb_truncate_ex(struct wb *wb, const struct fid *fid, uint64_t size,
	       uint64_t *need, const struct wb_kill *kill, unsigned flags)
{
	uint32_t csz = wb->d.chunk_size;
	struct trunc_ctx t = {wb, size, 0, UINT64_MAX};
	struct wstate s;
	uint64_t zf = UINT64_MAX;
	bool cut = false;
	int rc;

	rc = begin_io(wb, fid, &s, kill, size, flags);
	if (rc < 0)
		return rc;
	if (size < s.size) {
		cut = true;
		cut_begin(wb, fid, size);
	}
	if (size < s.size) {
		uint64_t c = size / csz;
		uint32_t in = (uint32_t)(size % csz);
		struct trunc_list l = {NULL, 0, 0, 0};

		/* The chunk that keeps its head must hold it: fetched
		 * first if need be (-EAGAIN: nothing cut yet), cut last. */
		if (size < s.zero_from && in) {
			rc = prepare_chunk(wb, fid, s.base_dv, s.zero_from, c,
					   0, 0);
			if (rc == -EAGAIN)
				*need = c;
		}
		if (rc == 0) {
			cs_iterate_file(wb->d.cs, fid->vol, fid->oid,
					trunc_collect, &l);
			rc = l.rc;
		}
		if (rc == 0) {
			qsort(l.v, l.n, sizeof(*l.v), chunk_desc);
			for (size_t i = 0; i < l.n; i++)
				trunc_cut(&l.v[i], &t);
			rc = t.rc;
		}
		free(l.v);
		if (rc == 0 && size < s.zero_from && in) {
			struct cs_key k;

			cm_chunk_key(&k, fid, c);
			rc = cs_truncate(wb->d.cs, &k, s.base_dv, in);
			if (rc == 0 && size < t.reached)
				t.reached = size;
			if (rc == 0)
				rc = cs_commit_flags(wb->d.cs, &k,
						     CS_C_NOSYNC);
		}
		if (size < s.zero_from)
			zf = size;
	}
	if (cut && wb_cut_hook)
		wb_cut_hook(fid);
	if (rc < 0 && t.reached < s.size) {
		/* Failed after a cut (an I/O error, no space for a working
		 * copy): the bytes from t.reached up may be gone from some
		 * chunks, so the file ends there now, short of the old size
		 * (which would read them as zeros) and of the size asked
		 * for. The caller still gets the error. */
		int erc = rc;

		rc = end_io(wb, fid, 0, t.reached, true,
			    t.reached < s.zero_from ? t.reached : UINT64_MAX);
		if (rc >= 0)
			rc = erc;
	} else {
		rc = end_io(wb, fid, rc, size, true, zf);
	}
	if (cut)
		cut_end(wb, fid);
	{
		struct wstate *ws;

		/* A truncate changes chunks no generation counts: what was
		 * staged ahead goes at the next store again. */
		pthread_mutex_lock(&wb->lock);
		ws = wb_find_locked(wb, fid);
		if (ws)
			wb_ahead_reset_locked(ws);
		pthread_mutex_unlock(&wb->lock);
	}
	if (rc < 0) {
		char fs[FID_STRLEN];

		/* Said: an EIO here reaches ftruncate or an O_TRUNC open
		 * with nothing else in the log (t4085, writeback). */
		log_debug(LOG_WB,
			  "truncate of %s to %llu (base DV %llu, size %llu) "
			  "failed: %s",
			  fid_fmt(fid, fs), (unsigned long long)size,
			  (unsigned long long)s.base_dv,
			  (unsigned long long)s.size, strerror(-rc));
	}
	return rc == -ESTALE ? -EIO : rc;
}

/* --- reads --- */

/*
 * A chunk of @fid was not where the copy @s of its write state said (its
 * tag is not the base DV, or it went between the lookup and the read):
 * a store's reply may have moved chunks and state to a new DV meanwhile
 * (wb_stored() does both under wb->lock). @return 1 and a fresh copy in
 * @s if the state moved, 0 if it did not (the miss is real), -ENOENT if
 * the write state is gone (read the normal way).
 */
/* Lock held: the copy of @ws a reader works from. A state being cut
 * (wstate.ncut) reads as cut already: the bytes the cut takes may be
 * gone from its chunks before the new size is set. */
static void
read_snap_locked(const struct wstate *ws, struct wstate *s)
{
	*s = *ws;
	if (s->ncut) {
		if (s->size > s->cut_to)
			s->size = s->cut_to;
		if (s->zero_from > s->cut_to)
			s->zero_from = s->cut_to;
	}
}

/*
 * A chunk of @fid was not where the copy @s of its write state said (its
 * tag is not the base DV, or it went between the lookup and the read):
 * a store's reply may have moved chunks and state to a new DV meanwhile
 * (wb_stored() does both under wb->lock), or a truncate cut it. @return 1
 * and a fresh copy in @s if the state moved, 0 if it did not (the miss is
 * real), -ENOENT if the write state is gone (read the normal way).
 */
static int
read_moved(struct wb *wb, const struct fid *fid, struct wstate *s)
{
	struct wstate *ws;
	int rc = 0;

	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, fid);
	if (!ws || ws->conflicted)
		rc = -ENOENT;
	else if (ws->base_dv != s->base_dv || ws->zero_from != s->zero_from ||
		 ws->size != s->size || ws->tgen != s->tgen ||
		 ws->id != s->id) {
		read_snap_locked(ws, s);
		rc = 1;
	}
	pthread_mutex_unlock(&wb->lock);
	return rc;
}

/* read_pass(): a truncate began or ended, or the state was made anew,
 * while the pass ran (read_moved() refreshed @s): the bytes it has are
 * from the state before and may be zeros a cut left; wb_read() starts
 * again from the fresh copy. An errno no pass returns otherwise. */
#define PASS_AGAIN (-EINTR)

/* One pass of wb_read() from the copy @s. */
static ssize_t
read_pass(struct wb *wb, const struct fid *fid, struct wstate *s, uint64_t off,
	  void *buf, size_t len, uint64_t *need)
{
	uint32_t csz = wb->d.chunk_size;
	size_t done = 0;
	unsigned moves = 0;
	uint64_t tgen0 = s->tgen, id0 = s->id;
	int rc;

	if (off >= s->size)
		return 0;
	if (len > s->size - off)
		len = (size_t)(s->size - off);
	while (done < len) {
		uint64_t pos = off + done, c = pos / csz, cstart = c * csz;
		uint32_t a = (uint32_t)(pos % csz);
		size_t n = csz - a < len - done ? csz - a : len - done;
		uint8_t *dst = (uint8_t *)buf + done;
		struct cs_key k;
		struct cs_info info;
		uint64_t valid; /* bytes of the chunk that hold data */
		ssize_t got = 0;
		bool found;

		cm_chunk_key(&k, fid, c);
		found = cs_lookup(wb->d.cs, &k, &info) == 0 &&
			info.dv == s->base_dv;
		if (!found && moves < 8) {
			/* Zeros (beyond zero_from) or a fetch (below) only if
			 * the state did not move under us. */
			rc = read_moved(wb, fid, s);
			if (rc < 0)
				return rc;
			if (rc > 0 && (s->tgen != tgen0 || s->id != id0))
				return PASS_AGAIN;
			if (rc > 0) {
				moves++;
				if (pos >= s->size)
					break;
				if (len - done > s->size - pos)
					len = done + (size_t)(s->size - pos);
				continue;
			}
		}
		if (found) {
			valid = info.len;
			if (!(info.flags & CS_F_DIRTY)) {
				if (cstart >= s->zero_from)
					valid = 0;
				else if (cstart + valid > s->zero_from)
					valid = s->zero_from - cstart;
			}
		} else if (pos >= s->zero_from) {
			valid = 0;
		} else {
			*need = c;
			return -EAGAIN;
		}
		if (a < valid) {
			size_t m = valid - a < n ? (size_t)(valid - a) : n;

			got = cs_read(wb->d.cs, &k, s->base_dv, a, dst, m);
			if (got != (ssize_t)m) {
				if (moves < 8 &&
				    (rc = read_moved(wb, fid, s)) != 0) {
					if (rc < 0)
						return rc;
					if (s->tgen != tgen0 || s->id != id0)
						return PASS_AGAIN;
					moves++;
					if (pos >= s->size)
						break;
					if (len - done > s->size - pos)
						len = done +
						      (size_t)(s->size - pos);
					continue;
				}
				*need = c;
				return -EAGAIN; /* culled meanwhile */
			}
		}
		/* Zeros: a hole (a write or a truncate past the end), or
		 * bytes a truncate cut; the latter is found below. */
		memset(dst + got, 0, n - (size_t)got);
		done += n;
	}
	return (ssize_t)done;
}

/*
 * Read through @fid's write state. A truncate may cut a chunk while the
 * read runs with the size from before it, which reads the cut bytes as
 * zeros: so a read during which a truncate began or ended (tgen moved)
 * is done again, from the state as it is then (a local file system's
 * reader sees the old bytes, the short file or the new bytes, never
 * zeros that were not written).
 */
#define READ_PASSES 64

ssize_t
wb_read(struct wb *wb, const struct fid *fid, uint64_t off, void *buf,
	size_t len, uint64_t *need)
{
	struct wstate *ws, s;
	ssize_t n = -EIO;

	if (!wb)
		return -ENOENT;
	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, fid);
	if (ws)
		read_snap_locked(ws, &s);
	pthread_mutex_unlock(&wb->lock);
	if (!ws || s.conflicted)
		return -ENOENT;
	if (wb_read_hook)
		wb_read_hook(fid);
	for (unsigned pass = 0; pass < READ_PASSES; pass++) {
		int rc = 0;

		n = read_pass(wb, fid, &s, off, buf, len, need);
		if (n == PASS_AGAIN) {
			CM_STAT_INC(wb->d.st, wb_read_retries);
			continue; /* @s is the fresh copy */
		}
		if (n < 0)
			return n;
		/* The same state, and no truncate began or ended since the
		 * copy the pass used: its bytes stand. */
		pthread_mutex_lock(&wb->lock);
		ws = wb_find_locked(wb, fid);
		if (!ws || ws->conflicted)
			rc = -ENOENT;
		else if (ws->id == s.id && ws->tgen == s.tgen)
			rc = 1;
		else
			read_snap_locked(ws, &s);
		pthread_mutex_unlock(&wb->lock);
		if (rc)
			return rc < 0 ? rc : n;
		CM_STAT_INC(wb->d.st, wb_read_retries);
	}
	log_warn(LOG_WB, "a read kept meeting truncates of its file");
	return -EIO;
}

/* --- fetching for a write --- */

struct wfetch {
	wb_done_fn done;
	void *arg;
};

static void
wfetch_cb(void *arg, int err)
{
	struct wfetch *w = arg;

	w->done(w->arg, err);
	free(w);
}

void
wb_fetch(struct wb *wb, const struct fid *fid, uint64_t chunk, wb_done_fn done,
	 void *arg)
{
	struct wstate *ws;
	uint64_t dv = 0, size = 0;
	struct wfetch *w;
	int rc;

	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, fid);
	if (ws) {
		dv = ws->base_dv;
		size = ws->srv_size;
	}
	pthread_mutex_unlock(&wb->lock);
	if (!ws || chunk * (uint64_t)wb->d.chunk_size >= size) {
		done(arg, ws ? 0 : -EBADF);
		return;
	}
	w = malloc(sizeof(*w));
	if (!w) {
		done(arg, -ENOMEM);
		return;
	}
	w->done = done;
	w->arg = arg;
	rc = fetch_chunk(wb->d.fetch, fid, dv, size, chunk, wfetch_cb, w);
	if (rc < 0) {
		free(w);
		done(arg, rc);
	}
}

/*
 * Fetching every chunk of a file that is about to lose its last name
 * while open: up to WB_STAGE_PARALLEL fetches at a time; the first error
 * is reported once all have ended. The chunks are pinned, so a cull
 * cannot take what the server no longer has.
 */
struct fetch_all {
	struct wb *wb;
	struct fid fid;
	uint64_t dv, srv_size, upto, next;
	unsigned inflight;
	int err;
	bool busy; /* in fetch_all_more: a callback from inside waits */
	wb_done_fn done;
	void *arg;
};

static void fetch_all_more(struct wb *wb, struct fetch_all *fa);

static void
fetch_all_cb(void *arg, int err)
{
	struct fetch_all *fa = arg;
	struct wb *wb = fa->wb;

	fa->inflight--;
	if (err < 0 && !fa->err)
		fa->err = err;
	fetch_all_more(wb, fa);
}

static void
fetch_all_more(struct wb *wb, struct fetch_all *fa)
{
	uint64_t csz = wb->d.chunk_size;

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
		if (cs_lookup(wb->d.cs, &k, &info) == 0 && info.dv == fa->dv)
			continue;
		fa->inflight++;
		rc = fetch_chunk(wb->d.fetch, &fa->fid, fa->dv, fa->srv_size, c,
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
		cs_pin_file(wb->d.cs, fa->fid.vol, fa->fid.oid, 1);
	fa->done(fa->arg, fa->err);
	free(fa);
}

void
wb_fetch_all(struct wb *wb, const struct fid *fid, wb_done_fn done, void *arg)
{
	struct fetch_all *fa;
	struct wstate *ws;

	fa = calloc(1, sizeof(*fa));
	if (!fa) {
		done(arg, -ENOMEM);
		return;
	}
	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, fid);
	if (ws) {
		fa->dv = ws->base_dv;
		fa->srv_size = ws->srv_size;
		/* Past zero_from the server's bytes are not needed. */
		fa->upto = ws->zero_from < ws->srv_size ? ws->zero_from
							: ws->srv_size;
	}
	pthread_mutex_unlock(&wb->lock);
	if (!ws) {
		free(fa);
		done(arg, -EBADF);
		return;
	}
	fa->wb = wb;
	fa->fid = *fid;
	fa->done = done;
	fa->arg = arg;
	fetch_all_more(wb, fa);
}

struct flush_job {
	struct cm_job job;
	struct wb *wb;
	struct fid fid;
	wb_done_fn done;
	void *arg;
};

static void
flush_run(struct cm_loop *loop, struct cm_job *job)
{
	struct flush_job *fj = (struct flush_job *)job;
	struct wb *wb = fj->wb;

	if (cm_stopping(loop)) {
		if (fj->done)
			fj->done(fj->arg, -EIO);
	} else {
		wb_store_start(wb, &fj->fid, fj->done, fj->arg);
	}
	free(fj);
}

void
wb_flush(struct wb *wb, const struct fid *fid, wb_done_fn done, void *arg)
{
	struct flush_job *fj;

	if (!wb_dirty(wb, fid)) {
		/* Nothing to store; the caller still wants its answer from
		 * the loop thread's point of view: answer at once. */
		if (done)
			done(arg, 0);
		return;
	}
	/* The writes since the last checkpoint are committed here, in the
	 * caller's thread (a FUSE flush or fsync, a writer above the dirty
	 * limit), not on the loop thread by wb_store_start(), where the
	 * commit would stall every fetch and reply meanwhile (review 10,
	 * finding 3). Writes that come after it wait for the store or are
	 * committed by it. */
	checkpoint_fid(wb, fid);
	fj = calloc(1, sizeof(*fj));
	if (!fj) {
		if (done)
			done(arg, -ENOMEM);
		return;
	}
	fj->job.run = flush_run;
	fj->wb = wb;
	fj->fid = *fid;
	fj->done = done;
	fj->arg = arg;
	cm_post(wb->d.loop, &fj->job);
}

struct stored_rest {
	struct wb *wb;
	uint64_t src, dv, size;
};

static int
stored_rest_cb(const struct cs_info *i, void *arg)
{
	struct stored_rest *sr = arg;

	if ((i->flags & CS_F_DIRTY) && i->dv == sr->src &&
	    i->key.chunk * (uint64_t)sr->wb->d.chunk_size < sr->size)
		cs_mark_clean(sr->wb->d.cs, &i->key, sr->dv);
	return 0;
}

static void stored(struct wb *wb, const struct proto_op *op,
		   const struct proto_attr *a);

/* Retag after the server stored @op (loop thread: the op log's reply,
 * through its file_stored hook). */
void
wb_stored(struct wb *wb, const struct proto_op *op, const struct proto_attr *a)
{
	CM_STAT_INC(wb->d.st, stores);
	stored(wb, op, a);
}

void
wb_log_settle(struct wb *wb, const struct fid *fid)
{
	struct proto_attr a;
	struct proto_op op;
	struct wstate *ws;
	bool orphan;

	if (!wb || !wb->d.rlog)
		return;
	memset(&op, 0, sizeof(op));
	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, fid);
	orphan = ws && ws->logged && !ws->dirty && !ws->storing &&
		 !ws->replaying && !ws->gone && !ws->conflicted &&
		 !ws->writing && (ws->base_dv & CM_DV_LOCAL);
	if (orphan) {
		op.kind = PROTO_OP_STORE;
		op.fid = *fid;
		op.base_dv = ws->base_dv;
		op.size = ws->size;
	}
	pthread_mutex_unlock(&wb->lock);
	if (!orphan ||
	    rlog_fid_find(wb->d.rlog, fid,
			  RLOG_MASK(RLOG_PENDING) | RLOG_MASK(RLOG_INFLIGHT),
			  UINT64_MAX, NULL) == 0 ||
	    mcache_attr(wb->d.mc, fid, &a) < 0 || !a.dv ||
	    (a.dv & CM_DV_LOCAL))
		return;
	/* Its store was acknowledged while this record was still to go
	 * (stored()'s "later"); the server has our bytes at the DV it
	 * gave that store, which a setattr or rename kept. */
	a.size = op.size;
	stored(wb, &op, &a);
}

/* Lock held. @on: stored() moved @fid's chunks from the DV @src to @dst
 * while the cached attributes stay on @src (wb->moved_src); else forget
 * what was noted of @fid. */
static void
moved_note_locked(struct wb *wb, const struct fid *fid, bool on, uint64_t src,
		  uint64_t dst)
{
	/* Out of memory: nothing noted, the write state starts on @src
	 * as before (its truncate or write then fetches and fails). */
	if (!on || !fidmap_put(&wb->moved_src, fid, src) ||
	    !fidmap_put(&wb->moved_dst, fid, dst))
		moved_forget_locked(wb, fid);
}

/* stored()'s debug line: what the answer @a to @op (its chunks at @src)
 * did with the write state @ws (lock held; NULL: none). */
static void
stored_debug(const struct proto_op *op, uint64_t src,
	     const struct proto_attr *a, const char *what,
	     const struct wstate *ws)
{
	char fs[FID_STRLEN];

	log_debug(LOG_WB,
		  "stored %s: base %llu (logged on %llu) -> DV %llu; %s "
		  "(its base: %llu)",
		  fid_fmt(&op->fid, fs), (unsigned long long)op->base_dv,
		  (unsigned long long)src, (unsigned long long)a->dv, what,
		  (unsigned long long)(ws ? ws->base_dv : 0));
}

static void
stored(struct wb *wb, const struct proto_op *op, const struct proto_attr *a)
{
	struct wstate *ws;
	bool retag = true, mine, ahead;
	uint64_t src = op->base_dv; /* the DV our chunks are tagged with */

	if (wb) {
		bool later = false, moved = false;

		pthread_mutex_lock(&wb->lock);
	again:
		src = op->base_dv;
		ws = wb_find_locked(wb, &op->fid);
		if (ws && ws->replaying && ws->replay_to == op->base_dv)
			src = ws->replay_from;
		/* A replayed store (writeback, or writes during a
		 * reintegration) and a later STORE record of the file is
		 * still to be sent: its chunks stay as they are, DIRTY at
		 * the old DV, for that store to send; the write state keeps
		 * the local size. The DV map of replay.c gives the later
		 * record this reply's DV as its base. Only a STORE carries
		 * the file forward: a later rename or setattr does not, and
		 * the map does not outlive a restart or a reintegration. */
		if (ws && ws->replaying && ws->base_dv == src && wb->d.rlog &&
		    rlog_fid_find_kind(wb->d.rlog, &op->fid,
				       RLOG_MASK(RLOG_PENDING) |
					       RLOG_MASK(RLOG_INFLIGHT),
				       PROTO_OP_STORE, UINT64_MAX,
				       NULL) == 0) {
			stored_debug(op, src, a, "a later store record is "
				     "logged: the write state stays", ws);
			later = true;
		} else if (ws && ws->replaying && ws->base_dv == src &&
			 (ws->dirty || ws->uncommitted || ws->writing ||
			  ws->checkpointing)) {
			/* Written again since the store was logged, no
			 * store of that logged yet: the write state and
			 * every chunk (DIRTY ones staying DIRTY: they may
			 * hold bytes the server lacks) move to the new DV,
			 * which the next store is based on. A write that
			 * runs, or whose bytes sit in working copies not
			 * committed yet, counts too (review 10, finding 1):
			 * the store may have staged those bytes, and the
			 * committed chunks lack them, so they are not
			 * called clean; the file is dirty again and its next
			 * store sends them (again, at worst). */
			uint64_t old_srv = ws->srv_size;
			bool resave = ws->saved;

			if (ws->io) {
				/* A write or truncate runs with the old base
				 * DV: a chunk it makes after the retag would
				 * stay at that DV, a hole to readers at the
				 * new one. Wait for those running (none
				 * begins meanwhile: begin_io()), then decide
				 * again (the lock is held from their end). */
				struct fid fid = ws->fid;
				uint64_t id = ws->id;

				ws->retagging = true;
				while (ws && ws->io) {
					pthread_cond_wait(&wb->cond, &wb->lock);
					ws = wb_find_locked(wb, &fid);
					if (ws && ws->id != id)
						ws = NULL;
				}
				if (ws)
					ws->retagging = false;
				pthread_cond_broadcast(&wb->cond);
				goto again;
			}
			if (!ws->dirty && !ws->gone) {
				mark_dirty_locked(wb, ws);
				resave = true;
			}

			ws->replaying = false;
			ws->created = false;
			ws->logged = false;
			ws->base_dv = a->dv;
			ws->srv_size = a->size;
			if (ws->zero_from >= old_srv || ws->zero_from > a->size)
				ws->zero_from = a->size;
			cs_retag_file(wb->d.cs, op->fid.vol, op->fid.oid, src,
				      a->dv);
			if (resave && !ws->gone)
				wb_save_locked(wb, ws);
			stored_debug(op, src, a, "written again since: the "
				     "write state moves", ws);
			later = true;
			moved = true;
		}
		pthread_mutex_unlock(&wb->lock);
		/* The cached attributes take the new DV too, as below: else
		 * the event of this very store, applied after its record
		 * left the log, looks like another client's change. It
		 * dropped the attributes, the kernel's pages with them,
		 * and until they were fetched again an ftruncate of the
		 * open file failed with EIO (reply_attr_of(); t4085,
		 * t4086). Not when a later record keeps the file ahead:
		 * mcache_stored_attr() leaves it then. */
		if (moved)
			mcache_stored_attr(wb->d.mc, a);
		if (later)
			return;
	}
	/*
	 * The chunks move to the new DV and the write state to its new base
	 * under one hold of wb->lock: wb_read() copies the state, then looks
	 * the chunks up without the lock, and a chunk whose tag left the
	 * base it copied makes it look again under the lock (else it read a
	 * created file's chunk as zeros: t4020, t4024). The write state's
	 * record in dirty.tdb goes before any chunk is retagged: a cairnd
	 * killed in between finds no write state and DIRTY chunks at the old
	 * DV that its cached attributes still name (read right, then
	 * replaced by the server's DV through the events), never a write
	 * state whose base DV no chunk has any more.
	 */
	/* Asked once, for the note and for mcache_stored_attr_known()
	 * below (same thread: nothing leaves the log in between). */
	ahead = mcache_ahead(wb->d.mc, &op->fid);
	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, &op->fid);
	mine = ws && ws->base_dv == src;
	moved_note_locked(wb, &op->fid, mine && ahead && src != a->dv, src,
			  a->dv);
	stored_debug(op, src, a,
		     mine ? "the write state moves"
		     : ws ? "the write state stays"
			  : "no write state",
		     ws);
	if (mine) {
		ws->logged = false;
		ws->replaying = false;
		ws->created = false;
		retag = ws->zero_from >= ws->srv_size;
		ws->base_dv = a->dv;
		ws->srv_size = ws->zero_from = a->size;
		ws->size = a->size;
		ws->mtime_ns = a->mtime_ns;
		ws->ctime_ns = a->ctime_ns;
		wb_mark_clean_locked(wb, ws);
		wb_forget_locked(wb, ws);
	}
	/* Only chunks sent with data hold the new DV's bytes; the others
	 * the op names were sent empty (the range a truncate zeroed) and
	 * still hold the server's old bytes: dropped below. */
	for (size_t i = 0; i < op->nchunks; i++) {
		struct cs_key k;
		struct cs_info info;

		cm_chunk_key(&k, &op->fid, op->chunks[i]);
		if (cs_lookup(wb->d.cs, &k, &info) == 0 &&
		    (info.flags & CS_F_DIRTY) && info.dv == src)
			cs_mark_clean(wb->d.cs, &k, a->dv);
	}
	/* Chunks an earlier store of the same file sent while this one was
	 * logged already (see "later" above) are still DIRTY at @src: the
	 * server has their bytes now too. */
	{
		struct stored_rest sr = {wb, src, a->dv, op->size};

		cs_iterate_file(wb->d.cs, op->fid.vol, op->fid.oid,
				stored_rest_cb, &sr);
	}
	/* Chunks we did not change hold the same bytes at the new DV, unless
	 * a truncate cut the file below the server's size: then the old
	 * ones go (refetched at the new DV when read). */
	if (retag)
		cs_set_dv_file(wb->d.cs, op->fid.vol, op->fid.oid, src, a->dv);
	else
		cs_invalidate(wb->d.cs, op->fid.vol, op->fid.oid, a->dv);
	pthread_mutex_unlock(&wb->lock);
	mcache_stored_attr_known(wb->d.mc, a, ahead);
	if (!mine)
		return;
	/* The write state goes once the cached attributes name the new DV:
	 * a read in between goes through it (base a->dv) rather than
	 * through attributes that still name the old one. */
	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, &op->fid);
	if (ws && ws->base_dv == a->dv && !ws->dirty && !ws->logged &&
	    !ws->saved && !ws->writers && !ws->storing)
		wb_unlink_free_locked(wb, ws);
	pthread_mutex_unlock(&wb->lock);
}

static void
store_dirty(struct wb *wb, bool crash_left)
{
	struct fid *dirty_fids = NULL;
	size_t n = 0, cap = 0;

	if (!wb)
		return;
	pthread_mutex_lock(&wb->lock);
	for (size_t b = 0; b < WB_BUCKETS; b++) {
		struct wstate *ws;

		SLIST_FOREACH(ws, &wb->tab[b], link) {
			if (!ws->dirty || (crash_left && !ws->crash_left))
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
			ws->crash_left = false;
			dirty_fids[n++] = ws->fid;
		}
	}
	pthread_mutex_unlock(&wb->lock);
	for (size_t i = 0; i < n; i++) {
		log_info(LOG_WB, "storing data a crash left dirty");
		wb_store_start(wb, &dirty_fids[i], NULL, NULL);
	}
	free(dirty_fids);
}

void
wb_resume(struct wb *wb)
{
	store_dirty(wb, false);
}

void
wb_resume_crashed(struct wb *wb)
{
	/* Only what the crash left: a file written since (created while
	 * the resume ran, its close's store still in flight) is stored by
	 * its own close; stored from here too, disconnected, it was logged
	 * a second time beside its absorbed store. */
	store_dirty(wb, true);
}

/* --- setup --- */

static int
load_cb(TDB_DATA k, TDB_DATA v, void *arg)
{
	struct wb *wb = arg;
	struct wb_rec r;
	struct wstate *ws;
	int rc;

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
	ws->id = ++wb->next_id;
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
	/* What the records in the log cover is not in dirty.tdb (the size
	 * there may be an older checkpoint's): any rewrite waits for them
	 * once. */
	ws->logged_size = ws->logged ? UINT64_MAX : 0;
	ws->created = (r.flags & WB_REC_CREATED) != 0;
	ws->sa_mask = r.sa_mask;
	ws->sa_mode = r.sa_mode;
	ws->sa_uid = r.sa_uid;
	ws->sa_gid = r.sa_gid;
	ws->sa_atime_ns = r.sa_atime_ns;
	ws->sa_mtime_ns = r.sa_mtime_ns;
	ws->dirty = !ws->logged;
	ws->crash_left = ws->dirty;
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
			wb_save_locked(wb, ws);
			n += ws->saved;
			/* Failed: the old record is still there, and read. */
			ws->saved = true;
		}
	}
	log_info(LOG_WB, "dirty.tdb: rewrote %u of %u records in the new "
			 "format",
		 n, wb->nold);
}

struct size_scan {
	struct wstate *ws;
	uint32_t csz;
	uint64_t end;
};

static int
size_cb(const struct cs_info *i, void *arg)
{
	struct size_scan *z = arg;
	uint64_t e = i->key.chunk * (uint64_t)z->csz + i->len;

	if ((i->flags & CS_F_DIRTY) && i->dv == z->ws->base_dv && e > z->end)
		z->end = e;
	return 0;
}

/* Writes that grew a file are not saved one by one (end_io): the end of
 * its last dirty chunk is at least the size the last write returned. */
static void
sizes_from_chunks(struct wb *wb)
{
	for (size_t b = 0; b < WB_BUCKETS; b++) {
		struct wstate *ws;

		SLIST_FOREACH(ws, &wb->tab[b], link) {
			struct size_scan z = {ws, wb->d.chunk_size, 0};
			bool ch = false;

			if (!ws->dirty || !wb->d.cs || !wb->d.chunk_size)
				continue;
			/* The lengths the chunk files hold, not the index's
			 * of before a commit a kill -9 cut short. */
			cs_verify_file(wb->d.cs, ws->fid.vol, ws->fid.oid);
			cs_iterate_file(wb->d.cs, ws->fid.vol, ws->fid.oid,
					size_cb, &z);

			if (z.end > ws->size) {
				ws->size = z.end;
				ch = true;
			}
			/* Past the size, clean chunks must read as zeros
			 * when the file grows again: a record saved during
			 * a truncate's cuts names the size cut to with the
			 * zero_from of before (cut_begin()). */
			if (ws->zero_from > ws->size) {
				ws->zero_from = ws->size;
				ch = true;
			}
			if (ch)
				wb_save_locked(wb, ws);
		}
	}
}

/* tdbw_rebuild()'s verify: the rebuilt records are exactly those of the
 * last checkpoint (the digest in TDBJ_KEY). */
static int
digest_verify(void *arg, struct tdb_context *rebuilt)
{
	(void)arg;
	return tdbj_digest_check(rebuilt);
}

/*
 * The journal's open refused dirty.tdb (-EUCLEAN). If tdb's structure is
 * what it refused (tdbw_check()), rebuild the file from its hash chains
 * as `cairn-fsck --repair` would, and only when the rebuilt records
 * match the digest of the last checkpoint: then no write state is lost.
 * A kill in a checkpoint that grew the file, recovered by a tdb that did
 * not cut the tail (a cairnd before session 15, or tdb itself), left
 * such a file (doc/cm.md, "Session 15"). @return 0 when *@tdbp was
 * rebuilt (a new handle), -EUCLEAN otherwise (the refusal stands).
 */
static int
dirty_rebuild(const char *path, struct tdb_context **tdbp)
{
	struct tdbw_rebuild_result rr;
	char why[256];
	int rc;

	rc = tdbw_check(*tdbp, why, sizeof(why));
	if (rc != -EUCLEAN)
		return -EUCLEAN; /* sound: the journal is what was refused */
	rc = tdbw_rebuild(tdbp, path, tdb_hash_size(*tdbp), TDB_NOLOCK,
			  digest_verify, NULL, &rr);
	if (rc) {
		log_err(LOG_WB,
			"'%s': tdb's structure is damaged (tdb_check: %s) and "
			"a rebuild would not keep every write state: %s",
			path, why, strerror(-rc));
		return -EUCLEAN;
	}
	log_warn(LOG_WB,
		 "'%s': tdb's structure was damaged (tdb_check: %s); rebuilt "
		 "from its hash chains: all %llu records kept (they match "
		 "the digest of its last checkpoint: no write state lost)",
		 path, why, (unsigned long long)rr.copied);
	return 0;
}

struct wb *
wb_new(const struct wb_deps *deps)
{
	struct wb *wb = calloc(1, sizeof(*wb));
	struct tdb_context *tdb;
	char path[4096];
	uint64_t cut = 0;
	int rc;

	if (!wb)
		return NULL;
	wb->d = *deps;
	pthread_mutex_init(&wb->lock, NULL);
	pthread_cond_init(&wb->cond, NULL);
	snprintf(path, sizeof(path), "%s/dirty.tdb", wb->d.cache_dir);
	errno = 0;
	/* tdbw_open(): a kill in a checkpoint that grew the file leaves,
	 * once recovered, a tail tdb_check() calls damage (and the
	 * journal's open runs it): cut off here. */
	tdb = tdbw_open(path, 0, TDB_NOLOCK, O_RDWR | O_CREAT, 0600, NULL,
			&cut);
	if (!tdb) {
		rc = tdbw_open_errno(errno);
		goto fail;
	}
	if (cut)
		log_info(LOG_WB,
			 "'%s': a checkpoint cut short by a crash was rolled "
			 "back (its changes are still in dirty.tdb.jnl); "
			 "%llu bytes it had added cut off",
			 path, (unsigned long long)cut);
	/* A save is one record appended to dirty.tdb.jnl, not a tdb
	 * transaction (which remapped the whole file each time: 4-6 a
	 * written file). Its commit is not synced (TDBJ_C_NOSYNC), as
	 * dirty.tdb's never was: a write state must survive the death of
	 * cairnd, whose writes the page cache keeps; what close(2) promises
	 * beyond that is in the replay log (doc/cache-format.md). What the
	 * journal does sync is its own bookkeeping, so that a power cut
	 * leaves a state it can open: a checkpoint (every MiB of journal,
	 * and at close) is a synced tdb transaction before the journal is
	 * reset, and a record claims only what was really synced before it
	 * (unsynced records lost to a power cut are a cut tail, not
	 * damage). */
	snprintf(path, sizeof(path), "%s/dirty.tdb.jnl", wb->d.cache_dir);
	/* TDBJ_O_DIGEST: an older cairnd ignores the journal and writes
	 * dirty.tdb directly; the digest each checkpoint leaves in dirty.tdb
	 * then no longer matches, and the journal (older than what that
	 * cairnd did) is dropped rather than replayed over it
	 * (doc/cache-format.md). That digest's longer TDBJ_KEY also makes
	 * builds that know the journal but not the digest refuse dirty.tdb. */
	wb->dj = tdbj_open(tdb, path, TDBJ_O_DIGEST, WB_JOURNAL_MAX, &rc);
	if (!wb->dj && rc == -EUCLEAN) {
		char tpath[4096];

		snprintf(tpath, sizeof(tpath), "%s/dirty.tdb", wb->d.cache_dir);
		if (dirty_rebuild(tpath, &tdb) == 0)
			wb->dj = tdbj_open(tdb, path, TDBJ_O_DIGEST,
					   WB_JOURNAL_MAX, &rc);
	}
	if (!wb->dj) {
		tdb_close(tdb);
		goto fail;
	}
	{
		struct tdbj_stats js;

		tdbj_stats(wb->dj, &js);
		if (js.stale_bytes)
			log_err(LOG_WB,
				"dirty.tdb changed outside its journal (an "
				"older cairnd ran?): dropped %llu bytes of "
				"dirty.tdb.jnl older than those changes",
				(unsigned long long)js.stale_bytes);
	}
	rc = tdbj_traverse_read(wb->dj, load_cb, wb);
	if (rc < 0) {
		snprintf(path, sizeof(path), "%s/dirty.tdb", wb->d.cache_dir);
		goto fail;
	}
	if (wb->nold)
		rewrite_old(wb);
	sizes_from_chunks(wb);
	if (wb->ndirty)
		log_info(LOG_WB, "%llu files have local changes to store",
			 (unsigned long long)wb->ndirty);
	return wb;
fail:
	log_err(LOG_WB, "cannot open '%s': %s%s%s%s", path, strerror(-rc),
		rc == -EUCLEAN ? "; `cairn-fsck --check " : "",
		rc == -EUCLEAN ? wb->d.cache_dir : "",
		rc == -EUCLEAN ? "` says what is damaged and whether "
				 "`cairn-fsck --repair` can mend it without "
				 "losing a write"
			       : "");
	tdbj_close(wb->dj);
	for (size_t b = 0; b < WB_BUCKETS; b++)
		while (!SLIST_EMPTY(&wb->tab[b]))
			wb_unlink_free_locked(wb, SLIST_FIRST(&wb->tab[b]));
	pthread_mutex_destroy(&wb->lock);
	pthread_cond_destroy(&wb->cond);
	free(wb);
	errno = -rc;
	return NULL;
}

void
wb_free(struct wb *wb)
{
	if (!wb)
		return;
	for (size_t b = 0; b < WB_BUCKETS; b++) {
		struct wstate *ws;

		/* Files still open for writing (a lazy unmount): commit what
		 * was written, else cs_close() discards it. */
		SLIST_FOREACH(ws, &wb->tab[b], link)
		if (!ws->gone)
			wb_checkpoint_locked(wb, ws);
		while (!SLIST_EMPTY(&wb->tab[b]))
			wb_unlink_free_locked(wb, SLIST_FIRST(&wb->tab[b]));
	}
	tdbj_close(wb->dj);
	fidmap_clear(&wb->based);
	fidmap_clear(&wb->undropped);
	fidmap_clear(&wb->moved_src);
	fidmap_clear(&wb->moved_dst);
	/* owed chunks: cs_close() syncs the file system; the sync
	 * threads end first (they use the chunk store and wb->lock) */
	pthread_mutex_lock(&wb->lock);
	while (wb->nsyncers)
		pthread_cond_wait(&wb->cond, &wb->lock);
	pthread_mutex_unlock(&wb->lock);
	fidmap_clear(&wb->owed);
	pthread_mutex_destroy(&wb->lock);
	pthread_cond_destroy(&wb->cond);
	free(wb);
}
