/*
 * replay.c - disconnected operation: logging mutations while
 * disconnected, and reintegration (see replay.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <stddef.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>

#include "cm/cm.h"
#include "cm/conflict.h"
#include "cm/conn.h"
#include "cm/fidmap.h"
#include "cm/inode.h"
#include "cm/local.h"
#include "cm/loop.h"
#include "cm/mcache.h"
#include "cm/mfetch.h"
#include "cm/mut.h"
#include "cm/replay.h"
#include "cm/rlog.h"
#include "cm/stats.h"
#include "cm/vc.h"
#include "cm/wb.h"
#include "common/ctl_proto.h" /* CTL_PATH_MAX */
#include "common/log.h"
#include "common/util.h"

#define PATH_DEPTH_MAX 64
/* records a replay marks INFLIGHT ahead of sending, per durable commit;
 * the ones it never got to stay INFLIGHT (not merged with later changes)
 * and are sent first next time */
#define REINT_WINDOW 64

#define WAIT_MAX_S 3600

struct syncw;
struct rbatch;
struct replay;

static void waiters_lost(struct replay *rp);
static void waiters_answered(struct replay *rp, uint64_t seq,
			     const struct proto_op *op);
static void refresh_dropped(struct replay *rp);

struct replay {
	struct replay_deps d;
	bool stopped; /* replay_stop(): nothing new starts */
	/* reintegration */
	bool running;
	uint64_t after;
	uint64_t done_recs, total_recs, done_bytes, total_bytes, refused;
	struct fidmap map;   /* replay: FID -> the DV our change produced */
	struct fidmap base0; /* FID -> the DV our first change was based on */
	struct fidmap prev;  /* FID -> the DV our last change was sent on */
	struct fidmap logged; /* FID -> the DV our last change was logged on */
	int mapfd; /* <cache>/replay-dv, the map as it grows (or -1) */
	uint64_t sent;	     /* records acknowledged since start */
	struct rbatch *batch; /* the batch in flight, or NULL */
	/* The batch after it, built and staging while it is in flight
	 * (batch_prebuild()), or NULL. */
	struct rbatch *next_batch;
	bool no_batch;	      /* the server has no /batch: single ops */
	bool batch_off_pass;  /* a batch failed as a whole: single ops
				 until this replay ends */
	/* writeback (doc/cm.md "Write modes") */
	bool wb_on;	     /* write-mode writeback asked for */
	uint64_t wb_delay_ms;
	/* log-sync=close: writeback's metadata ops are appended unsynced
	 * (oreq_run()); read by FUSE threads (replay_log_sync_close()). */
	atomic_bool log_close;
	bool draining;	     /* the running replay is a drain pass */
	bool resume_dirty;   /* after this pass: store what a crash left */
	struct event *tick;  /* the drain's clock */
	TAILQ_HEAD(, syncw) syncq; /* fs sync, fsync, switch to sync */
	struct fidmap dropped; /* events dropped while ahead: refresh
				  once no record names them */
	struct fidmap touched; /* answered this pass: refresh from the
				  server once nothing names them */
	/* fs reconnect: told at the end of the reintegration */
	replay_reconnected_fn waiter;
	void *waiter_arg;
};

uint64_t
replay_miss_wait_ms(struct replay *rp)
{
	unsigned ms;

	if (!rp || rp->stopped || !rp->d.conn || !conn_offline(rp->d.conn) ||
	    !conn_miss_policy(rp->d.conn, &ms))
		return 0;
	return ms ? ms : rp->d.timeout_ms;
}

bool
replay_may_absorb(struct replay *rp)
{
	return rp && !rp->stopped && rp->d.rlog != NULL;
}

/* --- modes: conn.c switches them, these are its hooks --- */

void
replay_disconnect(struct replay *rp, bool manual, const char *why)
{
	if (rp && !rp->stopped && rp->d.conn)
		conn_disconnect(rp->d.conn, manual, why);
}

/* Make the log's unsynced commits durable; a failure is logged (the
 * log then refuses every change, which its callers report). */
static void
sync_log(struct replay *rp)
{
	int rc = rlog_sync(rp->d.rlog);

	if (rc)
		log_err(LOG_OFF, "cannot sync the replay log: %s",
			strerror(-rc));
}

void
replay_went_offline(struct replay *rp, bool manual, const char *why)
{
	(void)manual;
	(void)why;
	if (!rp)
		return;
	if (!rp->stopped) {
		/* log-sync=close: what writeback appended unsynced while
		 * connected is durable now, as disconnected ops are. */
		if (rp->d.rlog && atomic_load(&rp->log_close))
			sync_log(rp);
		rp->running = false;
		rp->draining = false;
		waiters_lost(rp);
	}
	atomic_store(rp->d.online, 0);
}

/* --- mutations while disconnected --- */

struct oreq {
	struct cm_job job;
	struct replay *rp;
	struct proto_op op;
	mut_done_fn done;
	void *arg;
	unsigned tries; /* fetches made for it (connected: writeback) */
	unsigned wants; /* fetches still out */
};

#define OREQ_TRIES 3

static void oreq_run(struct cm_loop *loop, struct cm_job *job);

static void
oreq_fetched(void *arg, int err)
{
	struct oreq *q = arg;

	(void)err; /* the next try says what is still missing */
	if (--q->wants == 0)
		cm_post(q->rp->d.loop, &q->job);
}

/* Writeback: the caches lack what the local check needs (a listing that
 * is not cached, or stale after a refresh from the server; attributes,
 * xattrs). Connected, fetch it and try again, rather than the EIO of
 * disconnected operation. @return true if fetches are on their way. */
static bool
oreq_fetch(struct replay *rp, struct oreq *q)
{
	const struct proto_op *op = &q->op;
	struct fid child;
	enum proto_type t;

	if (q->tries >= OREQ_TRIES || !rp->d.conn ||
	    conn_mode(rp->d.conn) != CM_CONNECTED)
		return false;
	q->tries++;
	q->wants = 1; /* held until every want is issued */
	switch (op->kind) {
	case PROTO_OP_RENAME:
		q->wants++;
		mfetch_want_dir(rp->d.mf, &op->newparent, oreq_fetched, q);
		/* fall through */
	case PROTO_OP_CREATE:
	case PROTO_OP_MKDIR:
	case PROTO_OP_SYMLINK:
	case PROTO_OP_MKMOUNT:
	case PROTO_OP_LINK:
	case PROTO_OP_UNLINK:
	case PROTO_OP_RMDIR:
		q->wants++;
		mfetch_want_dir(rp->d.mf, &op->parent, oreq_fetched, q);
		/* a directory removed or replaced must be known empty */
		if (q->tries > 1 && op->name &&
		    local_lookup_name(rp->d.local, &op->parent, op->name,
				      &child, &t) == 0 &&
		    t == PROTO_T_DIR) {
			q->wants++;
			mfetch_want_dir(rp->d.mf, &child, oreq_fetched, q);
		}
		if (op->kind == PROTO_OP_LINK) {
			q->wants++;
			mfetch_want_attr(rp->d.mf, &op->fid, oreq_fetched, q);
		}
		break;
	case PROTO_OP_SETXATTR:
	case PROTO_OP_REMOVEXATTR:
		q->wants++;
		mfetch_want_xattrs(rp->d.mf, &op->fid, oreq_fetched, q);
		/* fall through */
	default:
		q->wants++;
		mfetch_want_attr(rp->d.mf, &op->fid, oreq_fetched, q);
		break;
	}
	oreq_fetched(q, 0);
	return true;
}

static void
oreq_run(struct cm_loop *loop, struct cm_job *job)
{
	struct oreq *q = (struct oreq *)job;
	struct replay *rp = q->rp;
	struct proto_op_result r;
	struct rlog_effect eff;
	struct fid gone = {0};
	bool cancelled = false;
	int rc;

	rc = cm_stopping(loop) ? -EIO
			       : local_apply(rp->d.local, &q->op, false, &r);
	if (rc == -EIO && !cm_stopping(loop) && oreq_fetch(rp, q))
		return; /* back here once it is fetched */
	if (rc == 0) {
		/* log-sync=close, writeback and connected: a metadata op's
		 * record is appended without its own fdatasync (it
		 * survives the death of cairnd at once, a power cut once
		 * synced). The next synced commit makes it durable with
		 * everything before it: a store at close, a close or
		 * fsync answered from the log (fuse_ops.c sync_logged()),
		 * the drain's clock within a tick (tick_cb()), a
		 * disconnect. log-sync=op (the default) and disconnected:
		 * synced before the op returns. */
		unsigned af = 0;

		if (atomic_load(&rp->log_close) && rp->d.conn &&
		    conn_writeback(rp->d.conn) &&
		    conn_mode(rp->d.conn) == CM_CONNECTED)
			af = RLOG_A_NOSYNC;
		rc = rlog_append_ex(rp->d.rlog, &q->op, af, &eff);
		if (rc == 0)
			conflict_note_path(rp->d.wb, eff.seq, &q->op);
		if (rc == 0) {
			/* A FID created in the log and now removed leaves
			 * nothing: drop what is local about it. */
			for (size_t i = 0; i < eff.nchanges; i++) {
				if (eff.changes[i].why == RLOG_WHY_IDENTITY) {
					wb_gone(rp->d.wb, &eff.changes[i].fid);
					gone = eff.changes[i].fid;
				}
				if (eff.changes[i].removed &&
				    eff.changes[i].why != RLOG_WHY_MERGED)
					cancelled = true;
			}
		} else {
			log_err(LOG_OFF, "cannot log %s: %s",
				proto_op_name(q->op.kind), strerror(-rc));
			rc = rc == -ENOSPC ? -ENOSPC : -EIO;
		}
		rlog_effect_release(&eff);
	}
	if (rc == 0) {
		conflict_note_base(rp->d.wb, &q->op.fid, NULL);
		rc = local_apply(rp->d.local, &q->op, true, &r);
	}
	if (rc == 0 && cancelled && rp->d.conn &&
	    conn_mode(rp->d.conn) == CM_CONNECTED) {
		/* Records left the log without reaching the server: the
		 * directories they named may no longer be ahead, and hold
		 * a local DV and whatever news was dropped meanwhile. */
		const struct fid *f[4] = {&q->op.fid, &q->op.parent,
					  &q->op.newparent, &q->op.victim};

		for (size_t i = 0; i < 4; i++)
			if (!fid_is_null(f[i]) && !fid_eq(f[i], &gone))
				replay_ahead_event(rp, f[i]);
		refresh_dropped(rp);
	}
	q->done(q->arg, rc, rc ? NULL : &r);
	proto_op_release(&q->op);
	free(q);
}

int
replay_submit(struct replay *rp, const struct proto_op *op, mut_done_fn done,
	      void *arg)
{
	struct oreq *q;

	if (!rp || !rp->d.rlog)
		return -EIO;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	if (mut_op_copy(&q->op, op) < 0) {
		free(q);
		return -ENOMEM;
	}
	q->done = done;
	q->arg = arg;
	q->job.run = oreq_run;
	q->rp = rp;
	cm_post(rp->d.loop, &q->job);
	return 0;
}

void
replay_absorb(struct replay *rp, const struct proto_op *op, mut_done_fn done,
	      void *arg)
{
	struct proto_op_result r;
	int rc;

	replay_disconnect(rp, false, "the server does not answer");
	rc = local_apply(rp->d.local, op, false, &r);
	if (rc == 0)
		rc = local_apply(rp->d.local, op, true, &r);
	/* Answered as logged, so as durable as a disconnected op (invariant
	 * 2): the record was appended for a connected send (RLOG_A_NOSYNC)
	 * and a store's chunks committed without sync. Chunks first, then
	 * the log: a record that survives a power cut names chunks that
	 * did (the order of store_offline()). */
	if (rc == 0) {
		int src = 0;

		if (op->kind == PROTO_OP_STORE)
			src = wb_sync_chunks(rp->d.wb, &op->fid);
		if (src == 0 && (src = rlog_sync(rp->d.rlog)) != 0)
			log_err(LOG_OFF, "cannot sync the replay log: %s",
				strerror(-src));
		if (src)
			rc = src == -ENOSPC ? -ENOSPC : -EIO;
	}
	done(arg, rc, rc ? NULL : &r);
}

/* --- reintegration and writeback drains --- */

#define LIVE (RLOG_MASK(RLOG_PENDING) | RLOG_MASK(RLOG_INFLIGHT))

/* A drain leaves alone the INFLIGHT records the op log sends itself (a
 * connected op in flight, a late create held back: rlog_is_direct()):
 * resent, the server would answer a held create from its opid table
 * and the store the op log sends with it would not be rebased (stale:
 * a conflict copy, close fails with EIO). A reintegration takes them:
 * the op log gave them up when the server went. */
static bool
owned(struct replay *rp, const struct rlog_rec *rec)
{
	return rp->draining && rec->state == RLOG_INFLIGHT &&
	       rlog_is_direct(rp->d.rlog, rec->seq);
}

/*
 * The DV map: FID -> the DV the server gave our last replayed change of
 * it (rp->map), and the DV that change was based on (rp->base0: what the
 * server had before our first change of it in the map's life, 0 for an
 * object we made), and the DV our last change of it was sent on
 * (rp->prev). A later STORE or SETATTR of the FID is based on our own
 * change when its base DV is local, the base0, the prev, or the DV our
 * change produced: then it is sent with the map's DV. The prev is what a
 * store and the setattr logged with it in one commit share: a store that
 * is replayed twice (kill -9 between its log commit and its write state's
 * save: the restart stores the file again, on the DV the first one
 * produced) moves the file past that base before the setattr goes, and
 * the setattr is still ours, not stale (t4075). And the DV our last
 * change was logged on (rp->logged): a write state whose store was
 * answered while a later STORE record of the file was still in the log
 * keeps its base (wb.c stored(), "later"), so every record logged until
 * one is answered with none after it names that same DV, however many of
 * them were sent meanwhile. The prev names only the last one's sent
 * (mapped) base: with two such answers in a row (a writer that fsyncs
 * each version, its next close logged before the answer reached the
 * write state) the third record went out on the old DV and came back
 * 412, a conflict of the client with itself (t4084). A base that is none
 * of these is a server DV the record learned later (writeback: a refresh
 * after the last drain, another client's change): it stands, and if it is
 * stale the server says so (a conflict, rightly).
 */
static struct fidmap_slot *
map_find(struct replay *rp, const struct fid *fid)
{
	return fidmap_find(&rp->map, fid);
}

static void
map_put(struct replay *rp, const struct fid *fid, uint64_t dv, uint64_t base0,
	uint64_t prev, uint64_t logged)
{
	if (!fidmap_put(&rp->map, fid, dv) ||
	    (!fidmap_find(&rp->base0, fid) &&
	     !fidmap_put(&rp->base0, fid, base0)) ||
	    (prev && !fidmap_put(&rp->prev, fid, prev)) ||
	    (logged && !fidmap_put(&rp->logged, fid, logged)))
		log_warn(LOG_OFF, "out of memory for the replay DV map");
}

/*
 * The map is also appended to <cache>/replay-dv ("FID DV BASE0 PREV
 * LOGGED" lines, PREV and LOGGED 0 when unknown; a line of an older
 * cairnd has no PREV or no LOGGED;
 * no fsync: it must outlive the process, not the machine), so a cairnd
 * killed in the middle of a reintegration or a drain still knows, when it
 * goes on, which DVs its own replayed changes produced. Emptied when the
 * log has nothing left to send (the map in memory stays: records logged
 * before a refresh reached the caches still find their DV).
 */
static void
map_path(struct replay *rp, char *buf, size_t len)
{
	snprintf(buf, len, "%s/replay-dv", rp->d.cache_dir);
}

static void
map_set(struct replay *rp, const struct fid *fid, uint64_t dv, uint64_t base0,
	uint64_t prev)
{
	char line[FID_STRLEN + 128], fs[FID_STRLEN];
	struct fidmap_slot *b, *lg;
	int n;

	map_put(rp, fid, dv, base0, prev, 0);
	if (rp->mapfd < 0)
		return;
	b = fidmap_find(&rp->base0, fid);
	lg = fidmap_find(&rp->logged, fid);
	n = snprintf(line, sizeof(line), "%s %llu %llu %llu %llu\n",
		     fid_fmt(fid, fs), (unsigned long long)dv,
		     (unsigned long long)(b ? b->dv : 0),
		     (unsigned long long)prev,
		     (unsigned long long)(lg ? lg->dv : 0));
	if (write(rp->mapfd, line, (size_t)n) != n)
		log_warn(LOG_OFF, "cannot write the replay DV map: %s",
			 strerror(errno));
}

/*
 * The map as a previous cairnd left it in replay-dv: a record is removed
 * (the map learnt its DV first) before its reply is applied to the
 * caches, so a kill -9 in between leaves cached attributes at the local
 * DV the op gave them, for an object no record names any more (a file
 * made in writeback, its create answered). The file used to be all that
 * knew its server DV, and it is emptied once the log is: a record logged
 * on that local DV after this start (the store of the file a crash left
 * dirty, wb_resume_crashed(), after the first pass) was then, after one
 * more restart, unsendable: a conflict "object gone" for an object the
 * server has (t4075 once, t4082). So the replies are finished now: those
 * cached attributes take the map's DV. Objects a live record names keep
 * their local view; their records' replies come (doc/cm.md "A reply a
 * kill cut off").
 */
static void
map_settle(struct replay *rp)
{
	size_t n = 0;

	for (size_t i = 0; i < rp->map.cap; i++) {
		struct fidmap_slot *sl = &rp->map.slot[i];

		if (!sl->used || replay_ahead(rp, &sl->fid))
			continue;
		if (mcache_settle_local_dv(rp->d.mc, &sl->fid, sl->dv))
			n++;
	}
	if (n)
		log_info(LOG_OFF,
			 "%zu objects still showed a local DV the server "
			 "had replaced (a restart cut their replies short): "
			 "moved to the server's",
			 n);
}

static void
map_open(struct replay *rp)
{
	char path[4096], line[200];
	size_t before = rp->map.n;
	FILE *f;

	map_path(rp, path, sizeof(path));
	f = fopen(path, "re");
	if (f) {
		while (fgets(line, sizeof(line), f)) {
			char *sp = strchr(line, ' ');
			unsigned long long dv, b0 = 0, pv = 0, lg = 0;
			struct fid fid;

			if (sp &&
			    fid_parse_n(line, (size_t)(sp - line), &fid) == 0 &&
			    sscanf(sp + 1, "%llu %llu %llu %llu", &dv, &b0, &pv,
				   &lg) >= 1)
				map_put(rp, &fid, dv, b0, pv, lg);
		}
		fclose(f);
		if (rp->map.n > before) {
			log_info(LOG_OFF,
				 "going on with a replay a restart cut short "
				 "(%zu objects already replayed)",
				 rp->map.n - before);
			map_settle(rp);
		}
	}
	rp->mapfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

static void
map_close(struct replay *rp, bool remove)
{
	char path[4096];

	if (rp->mapfd >= 0)
		close(rp->mapfd);
	rp->mapfd = -1;
	fidmap_clear(&rp->map);
	fidmap_clear(&rp->base0);
	fidmap_clear(&rp->prev);
	fidmap_clear(&rp->logged);
	if (remove) {
		map_path(rp, path, sizeof(path));
		unlink(path);
	}
}

/* Nothing left to send: the file goes, the map in memory stays (bounded:
 * beyond 1M objects it is dropped too). */
static void
map_trim(struct replay *rp)
{
	char path[4096];

	if (rp->map.n > (1u << 20)) {
		map_close(rp, true);
		return;
	}
	if (rp->mapfd >= 0 && ftruncate(rp->mapfd, 0) < 0) {
		map_path(rp, path, sizeof(path));
		log_warn(LOG_OFF, "cannot empty '%s': %s", path,
			 strerror(errno));
	}
}

void
replay_acked(struct replay *rp, uint64_t seq, const struct proto_op *op,
	     const struct proto_op_result *r)
{
	if (!rp || rp->stopped)
		return;
	waiters_answered(rp, seq, op);
	/* The directories the op changed: a later SETATTR of one (logged
	 * with a local DV, or the DV of our earlier change of it) is based
	 * on the DV this reply gave it, not on the one before. */
	if (r->has_parent && r->parent.type == PROTO_T_DIR &&
	    !fid_is_null(&r->parent.fid))
		map_set(rp, &r->parent.fid, r->parent.dv, 0, 0);
	if (r->has_newparent && r->newparent.type == PROTO_T_DIR &&
	    !fid_is_null(&r->newparent.fid))
		map_set(rp, &r->newparent.fid, r->newparent.dv, 0, 0);
	if (!r->has_attr || op->kind == PROTO_OP_UNLINK ||
	    op->kind == PROTO_OP_RMDIR)
		return;
	map_set(rp, &r->attr.fid, r->attr.dv,
		(op->base_dv & CM_DV_LOCAL) ? 0 : op->base_dv,
		(op->base_dv & CM_DV_LOCAL) ? 0 : op->base_dv);
}

/* The base DV record @op is sent with (see the DV map above); @return
 * the DV its chunks are tagged with (the base it was logged with). */
static uint64_t
subst_base(struct replay *rp, struct proto_op *op)
{
	uint64_t src = op->base_dv;
	struct fidmap_slot *s, *b, *pv, *lg;
	struct proto_attr ca;

	if (op->kind != PROTO_OP_STORE && op->kind != PROTO_OP_SETATTR)
		return src;
	s = map_find(rp, &op->fid);
	b = fidmap_find(&rp->base0, &op->fid);
	pv = fidmap_find(&rp->prev, &op->fid);
	lg = fidmap_find(&rp->logged, &op->fid);
	if (s && ((src & CM_DV_LOCAL) || src == s->dv || (b && src == b->dv) ||
		  (pv && src == pv->dv) || (lg && src == lg->dv)))
		op->base_dv = s->dv;
	if (s) {
		char fs[FID_STRLEN];

		log_debug(LOG_OFF,
			  "%s of %s logged on DV %llu, sent on %llu (the DV "
			  "map: %llu, first based on %llu, last sent on %llu, "
			  "logged on %llu)",
			  op->kind == PROTO_OP_STORE ? "store" : "setattr",
			  fid_fmt(&op->fid, fs), (unsigned long long)src,
			  (unsigned long long)op->base_dv,
			  (unsigned long long)s->dv,
			  (unsigned long long)(b ? b->dv : 0),
			  (unsigned long long)(pv ? pv->dv : 0),
			  (unsigned long long)(lg ? lg->dv : 0));
	}
	/* The write state that logged it stays on @src while "later"
	 * answers come (see the DV map above): a record after this one
	 * logged on it is ours too. A refused one leaves it too, harmless:
	 * the next record on it goes on the DV our last taken change made,
	 * which the server refuses if anyone changed the file since. */
	if (!(src & CM_DV_LOCAL) &&
	    !fidmap_put(&rp->logged, &op->fid, src))
		log_warn(LOG_OFF, "out of memory for the replay DV map");
	if (!s && (src & CM_DV_LOCAL) &&
		 mcache_attr(rp->d.mc, &op->fid, &ca) == 0 &&
		 !(ca.dv & CM_DV_LOCAL))
		/* An object made offline whose create went before a
		 * restart: the DV the create's reply stored in the cache. */
		op->base_dv = ca.dv;
	return src;
}

/* A STORE or SETATTR still based on a local DV after subst_base(): its
 * object was never made on the server (its create was refused, or never
 * sent). The server would say ENOENT; a local DV cannot even be sent. */
static bool
unsendable(const struct proto_op *op)
{
	return (op->kind == PROTO_OP_STORE || op->kind == PROTO_OP_SETATTR) &&
	       (op->base_dv & CM_DV_LOCAL);
}

struct rbatch;

struct rctx {
	struct replay *rp;
	uint64_t seq;
	struct proto_op op; /* a copy, for the conflict record */
	uint64_t src;	    /* the base it was logged with */
	int err;
	uint64_t nbytes;
	bool has_local; /* the local view when it was refused */
	struct proto_attr local;
	char path[CTL_PATH_MAX]; /* what the change is about */
	char *copy;		 /* the conflict copy's name, or NULL */
	struct rbatch *b;	 /* sent in this batch, or NULL */
	/* in a batch: its result, kept until the batch's turn comes */
	bool answered;
	int res_err;
	bool res_attr;
	struct fid res_fid;
	uint64_t res_dv;
};

/* One batch: its records in log order, their results handled one after
 * the other once the reply is in. */
struct rbatch {
	struct replay *rp;
	size_t n, next;	  /* records; the next to handle */
	struct rctx **c;
	struct mut_batch_op *ops;
	struct proto_op *sent; /* the ops as sent (substituted bases) */
	size_t nstores, staged, staging;
	size_t staging_chunks; /* chunks of the stores staging now */
	int stage_err;
	bool in_stage; /* stage_more() runs: a store staged at once (no
			  chunks to send) must not re-enter it */
	bool aborted; /* failed as a whole: results are ignored */
	/* Built ahead (rp->next_batch): staged and waiting for the batch
	 * in flight to be answered (ready), or given up (discard: freed
	 * once no store of it is staging any more). */
	bool ready, discard;
	/* The staging transaction of all its stores (doc/protocol.md: a
	 * transaction may hold chunks of many files): one staging
	 * directory on the server per batch, not one per store. */
	uint8_t txid[16];
	/* what this batch changes: a batch built behind it defers stores
	 * and setattrs of these (their base DV comes with our reply) */
	struct fidmap changed;
};

static void reint_next(struct replay *rp);
static void batch_continue(struct rbatch *b);
static void next_batch_drop(struct replay *rp);
static void batch_send(struct rbatch *b);
static void batch_rec_done(void *arg, int err,
			   const struct proto_op_result *r);

static void
rctx_free(struct rctx *c)
{
	proto_op_release(&c->op);
	free(c->copy);
	free(c);
}

/* The record of @c is settled: go on with the batch or the log. */
static void
rec_next(struct replay *rp, struct rctx *c)
{
	struct rbatch *b = c->b;

	rctx_free(c);
	if (b)
		batch_continue(b);
	else
		reint_next(rp);
}

/* The objects a record named: refreshed from the server once nothing in
 * the log names them (writeback drains; a reintegration revalidates
 * everything at its end). */
static void
touch(struct replay *rp, const struct proto_op *op)
{
	const struct fid *f[4] = {&op->fid, &op->parent, &op->newparent,
				  &op->victim};

	if (!rp->draining)
		return;
	for (size_t i = 0; i < 4; i++)
		if (!fid_is_null(f[i]))
			fidmap_put(&rp->touched, f[i], 0);
}

static void
refresh_one(struct replay *rp, const struct fid *fid)
{
	struct proto_attr a;

	/* A directory with its listing, in one step: attributes at a new
	 * DV beside the old listing would leave it stale (and the next
	 * local change of it waiting for a fetch). */
	if (mcache_attr(rp->d.mc, fid, &a) == 0 && a.type == PROTO_T_DIR)
		mfetch_want_dir(rp->d.mf, fid, NULL, NULL);
	else
		mfetch_want_attr(rp->d.mf, fid, NULL, NULL);
}

/* The objects whose events were dropped while they were ahead and that
 * are not any more: fetched now; the others stay in the set. */
static void
refresh_dropped(struct replay *rp)
{
	struct fidmap keep = {0};

	if (!rp->dropped.n)
		return;
	for (size_t i = 0; i < rp->dropped.cap; i++) {
		struct fidmap_slot *sl = &rp->dropped.slot[i];

		if (!sl->used)
			continue;
		if (replay_ahead(rp, &sl->fid)) {
			if (!fidmap_put(&keep, &sl->fid, 0))
				refresh_one(rp, &sl->fid); /* no memory */
			continue;
		}
		refresh_one(rp, &sl->fid);
	}
	fidmap_clear(&rp->dropped);
	rp->dropped = keep;
}

void
replay_ahead_event(struct replay *rp, const struct fid *fid)
{
	if (!rp || rp->stopped || fid_is_null(fid))
		return;
	if (!fidmap_put(&rp->dropped, fid, 0))
		log_warn(LOG_OFF, "out of memory for the dropped events");
}

static void
refresh_touched(struct replay *rp)
{
	for (size_t i = 0; i < rp->touched.cap; i++) {
		struct fidmap_slot *sl = &rp->touched.slot[i];

		if (!sl->used || replay_ahead(rp, &sl->fid))
			continue;
		refresh_one(rp, &sl->fid);
	}
	fidmap_clear(&rp->touched);
	refresh_dropped(rp);
}

/* --- who waits for the server: fs sync, fsync, fs flush, a switch to
 * sync --- */

struct syncw {
	TAILQ_ENTRY(syncw) link;
	struct cm_job job;
	struct replay *rp;
	struct fid fid;
	bool has_fid;
	bool all;	/* every record, also those logged later (switch) */
	uint64_t below; /* records before this seq */
	/* Of those, how many were live when it started (or last looked
	 * again) and have not been answered since (acknowledged, refused).
	 * One that went without an answer was merged into a newer record
	 * (store, setattr, xattr: doc/replay-log.md) or was a connected
	 * op's: the waiter then waits for what the log holds now. */
	size_t left;
	uint64_t sent0; /* rp->sent when it started */
	int err;
	replay_synced_fn done;
	void *arg;
};

static bool
names(const struct proto_op *op, const struct fid *f)
{
	return fid_eq(&op->fid, f) || fid_eq(&op->parent, f) ||
	       fid_eq(&op->newparent, f) || fid_eq(&op->victim, f);
}

/* @w waits for the live records the log holds now (its object's, or
 * all). */
static void
syncw_note(struct replay *rp, struct syncw *w)
{
	struct rlog_stats st;
	size_t n = 0;

	/* The op log's own records (rlog_is_direct()) are not counted:
	 * they are never merged, and their answers do not come through
	 * replay_acked(); counted, a waiter would look again after each of
	 * them and, with sync-mode ops always in flight, never end. */
	memset(&st, 0, sizeof(st));
	rlog_stats(rp->d.rlog, &st);
	w->below = st.next_seq;
	if (!w->has_fid) {
		uint64_t live = st.pending + st.inflight;
		size_t direct = rlog_ndirect(rp->d.rlog);

		w->left = live > direct ? (size_t)(live - direct) : 0;
	} else if (rlog_fid_count(rp->d.rlog, &w->fid, LIVE | RLOG_NOT_DIRECT,
				  -1, w->below, &n) == 0) {
		w->left = n;
	} else {
		w->left = 1; /* looked at again when none is live below */
	}
}

static bool
syncw_live(struct replay *rp, struct syncw *w)
{
	struct rlog_rec rec;
	bool live;

	if (w->has_fid)
		return rlog_fid_find(rp->d.rlog, &w->fid, LIVE, w->below,
				     NULL) == 0;
	if (rlog_next(rp->d.rlog, 0, LIVE, &rec) < 0)
		return false;
	live = w->all || rec.seq < w->below;
	rlog_rec_release(&rec);
	return live;
}

/* Does @w still wait for a live record? A record it waited for that
 * left the log unanswered may live on in a newer one (a merge keeps the
 * new record: its seq is past @w->below): then it waits for the records
 * the log holds now. */
static bool
syncw_waits(struct replay *rp, struct syncw *w)
{
	if (syncw_live(rp, w))
		return true;
	if (w->all || !w->left)
		return false;
	syncw_note(rp, w);
	return w->left && syncw_live(rp, w);
}

/* Record @seq (@op as sent) was answered: one fewer for its waiters. */
static void
waiters_answered(struct replay *rp, uint64_t seq, const struct proto_op *op)
{
	struct syncw *w;

	TAILQ_FOREACH(w, &rp->syncq, link)
	if (seq < w->below && w->left && (!w->has_fid || names(op, &w->fid)))
		w->left--;
}

static void
syncw_answer(struct replay *rp, struct syncw *w, int err)
{
	TAILQ_REMOVE(&rp->syncq, w, link);
	if (w->all && !err && !rp->wb_on && rp->d.conn)
		conn_set_writeback(rp->d.conn, false);
	if (w->all && err)
		rp->wb_on = true; /* the switch to sync failed: writeback */
	if (w->done)
		w->done(w->arg, err, rp->sent - w->sent0);
	free(w);
}

/* Answer the waiters whose records are all in (loop thread). */
static void
check_waiters(struct replay *rp)
{
	struct syncw *w, *nx;

	for (w = TAILQ_FIRST(&rp->syncq); w; w = nx) {
		nx = TAILQ_NEXT(w, link);
		if (!syncw_waits(rp, w))
			syncw_answer(rp, w, w->err);
	}
}

/* A record became a conflict: the waiters for it will hear EIO. */
static void
waiters_refused(struct replay *rp, uint64_t seq, const struct proto_op *op)
{
	struct syncw *w;

	TAILQ_FOREACH(w, &rp->syncq, link)
	if (seq < w->below && (!w->has_fid || names(op, &w->fid)))
		w->err = -EIO;
	waiters_answered(rp, seq, op);
}

/* The server was lost: a switch to sync fails (the others wait on). */
static void
waiters_lost(struct replay *rp)
{
	struct syncw *w, *nx;

	for (w = TAILQ_FIRST(&rp->syncq); w; w = nx) {
		nx = TAILQ_NEXT(w, link);
		if (w->all)
			syncw_answer(rp, w, -EHOSTUNREACH);
	}
}

/* --- records --- */

/* Record a refusal as a CONFLICT (with the copy's path, if one was made)
 * and go on. */
static void
reint_record(struct replay *rp, struct rctx *c, const struct proto_attr *srv)
{
	const char *copy = c->copy;
	struct rlog_conflict cf;
	char path[CTL_PATH_MAX], cpath[CTL_PATH_MAX + PROTO_NAME_MAX + 2];
	char msg[CTL_PATH_MAX + PROTO_NAME_MAX + 128];
	int rc;

	memset(&cf, 0, sizeof(cf));
	cf.kind = conflict_kind(&c->op, c->err);
	cf.err = -c->err;
	snprintf(path, sizeof(path), "%s", c->path);
	if (copy) {
		char dir[CTL_PATH_MAX];
		const char *slash = strrchr(path, '/');

		snprintf(dir, sizeof(dir), "%.*s",
			 slash ? (int)(slash - path) : 0, path);
		if (snprintf(cpath, sizeof(cpath), "%s%s%s", dir,
			     dir[0] ? "/" : "", copy) >= (int)sizeof(cpath) ||
		    snprintf(msg, sizeof(msg),
			     "%s; the local version is saved as '%s'",
			     strerror(-c->err), cpath) >= (int)sizeof(msg))
			snprintf(msg, sizeof(msg), "%s", strerror(-c->err));
	} else {
		snprintf(msg, sizeof(msg), "%s", strerror(-c->err));
	}
	cf.msg = msg;
	/* local.path: the path the change is about (fs conflicts, fs
	 * resolve match on it). */
	cf.local.path = path;
	cf.local.dv = c->op.base_dv;
	if (c->has_local) {
		cf.local.size = c->local.size;
		cf.local.mtime_ns = c->local.mtime_ns;
	}
	if (conflict_base_find(rp->d.wb, &c->op.fid, &cf.base) == 0)
		cf.has_base = true;
	if (srv) {
		cf.has_server = true;
		cf.server = *srv;
	}
	rc = rlog_conflict_add(rp->d.rlog, c->seq, &cf);
	if (rc < 0)
		log_err(LOG_OFF,
			"cannot record a conflict for record %llu: "
			"%s",
			(unsigned long long)c->seq, strerror(-rc));
	rp->refused++;
	waiters_refused(rp, c->seq, &c->op);
	touch(rp, &c->op);
	log_warn(LOG_OFF, "conflict: %s '%s' refused by the server (%s)%s",
		 proto_op_name(c->op.kind), path, strerror(-c->err),
		 copy ? "; local data saved as a conflict copy" : "");
	rec_next(rp, c);
}

/* The server's version of the object, fetched: record the conflict. */
static void
reint_server_attr(void *arg, int err)
{
	struct rctx *c = arg;
	struct replay *rp = c->rp;
	struct proto_attr a;

	if (rp->stopped || cm_stopping(rp->d.loop)) {
		rctx_free(c);
		return;
	}
	reint_record(rp, c,
		     !err && mcache_attr(rp->d.mc, &c->op.fid, &a) == 0 ? &a
									: NULL);
}

static void
reint_conflict(struct replay *rp, struct rctx *c, const char *copy)
{
	if (copy)
		c->copy = strdup(copy);
	/* What we cache of it is our own view: ask the server. */
	mcache_drop_attr(rp->d.mc, &c->op.fid);
	mfetch_want_attr(rp->d.mf, &c->op.fid, reint_server_attr, c);
}

static void
reint_copied(void *arg, int err, const char *copy)
{
	struct rctx *c = arg;
	struct replay *rp = c->rp;

	if (err)
		log_err(LOG_OFF,
			"the local version of a refused store could "
			"not be saved (%s): it stays in the cache",
			strerror(-err));
	reint_conflict(rp, c, err ? NULL : copy);
}

/* The server lost, or out of resources: stop here; the record stays and
 * is sent first next time. */
static void
reint_lost(struct replay *rp, const char *why)
{
	rp->after = 0;
	replay_disconnect(rp, false, why);
}

/* What the server said about record @c: acknowledged (@has_attr: the DV
 * it now has) or refused. */
static void
rec_result(struct replay *rp, struct rctx *c, int err, bool has_attr,
	   const struct fid *afid, uint64_t adv)
{
	if (!err) {
		rp->done_recs++;
		rp->sent++;
		rp->done_bytes += c->nbytes;
		/* The DV map learnt it already (replay_acked(), before
		 * the record left the log). */
		(void)has_attr;
		(void)afid;
		(void)adv;
		touch(rp, &c->op);
		if (c->op.kind != PROTO_OP_STORE &&
		    c->op.kind != PROTO_OP_UNLINK &&
		    c->op.kind != PROTO_OP_RMDIR)
			wb_log_settle(rp->d.wb, &c->op.fid);
		rec_next(rp, c);
		return;
	}
	if (err == -EHOSTUNREACH || err == -ECANCELED || err == -EIO ||
	    err == -ENOSYS) {
		struct rbatch *b = c->b;

		rctx_free(c);
		if (b) {
			b->aborted = true;
			batch_continue(b);
			return;
		}
		reint_lost(rp, "the server was lost while replaying the log");
		return;
	}
	c->err = err;
	c->has_local = mcache_attr(rp->d.mc, &c->op.fid, &c->local) == 0;
	/* as noted when it was logged, or now, while the write state still
	 * knows the file's name */
	if (conflict_path_noted(rp->d.wb, c->seq, c->path, sizeof(c->path)) < 0)
		conflict_op_path(rp->d.wb, &c->op, c->path, sizeof(c->path));
	if (c->op.kind == PROTO_OP_STORE) {
		wb_conflict_copy(rp->d.wb, &c->op.fid, reint_copied, c);
		return;
	}
	reint_conflict(rp, c, NULL);
}

static void
reint_done(void *arg, int err, const struct proto_op_result *r)
{
	struct rctx *c = arg;
	struct replay *rp = c->rp;

	if (rp->stopped || cm_stopping(rp->d.loop)) {
		rctx_free(c);
		return;
	}
	rec_result(rp, c, err, r && r->has_attr, r ? &r->attr.fid : NULL,
		   r ? r->attr.dv : 0);
}

/* The end of a reintegration (CONNECTED now) or of a drain pass. */
static void
reint_finish(struct replay *rp)
{
	struct rlog_stats st;
	bool drain = rp->draining;

	rp->running = false;
	rp->draining = false;
	rp->batch_off_pass = false;
	if (!drain)
		conn_reintegrated(rp->d.conn);
	atomic_store(rp->d.online, 1);
	memset(&st, 0, sizeof(st));
	rlog_stats(rp->d.rlog, &st);
	if (!drain)
		map_close(rp, true);
	else if (!st.pending && !st.inflight)
		map_trim(rp);
	if (!st.conflicts && !st.pending && !st.inflight)
		conflict_records_clear(rp->d.wb);
	if (drain)
		log_debug(LOG_OFF, "drained: %llu records sent, %llu refused",
			  (unsigned long long)rp->done_recs,
			  (unsigned long long)rp->refused);
	else
		log_info(LOG_OFF,
			 "connected: %llu records replayed, %llu refused "
			 "(%llu conflicts to resolve)",
			 (unsigned long long)rp->done_recs,
			 (unsigned long long)rp->refused,
			 (unsigned long long)st.conflicts);
	if (drain) {
		refresh_touched(rp);
	} else {
		/* Everything made or changed offline carries a local DV:
		 * take the server's view of it all. */
		mfetch_revalidate_all(rp->d.mf);
	}
	if (!drain || rp->resume_dirty) {
		/* The first pass at start stores what the crash left dirty
		 * (not a file written since: its close stores it); a
		 * reintegration, every dirty file. */
		bool start = drain && rp->resume_dirty;

		rp->resume_dirty = false;
		if (start)
			wb_resume_crashed(rp->d.wb);
		else
			wb_resume(rp->d.wb);
	}
	check_waiters(rp);
	if (!drain && rp->waiter) {
		replay_reconnected_fn fn = rp->waiter;

		rp->waiter = NULL;
		fn(rp->waiter_arg, 0, rp->done_recs, rp->refused, st.conflicts);
	}
}

/* May the replay go on? (a reintegration, or a drain while connected) */
static bool
may_run(struct replay *rp)
{
	int mode;

	if (rp->stopped || cm_stopping(rp->d.loop) || !rp->running)
		return false;
	mode = conn_mode(rp->d.conn);
	return mode == CM_REINTEGRATING ||
	       (rp->draining && mode == CM_CONNECTED);
}

/* Read record @rec into a fresh rctx with its base substituted. */
static struct rctx *
rctx_new(struct replay *rp, struct rlog_rec *rec)
{
	struct rctx *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->rp = rp;
	c->seq = rec->seq;
	c->nbytes = rec->nbytes;
	c->src = subst_base(rp, &rec->op);
	if (mut_op_copy(&c->op, &rec->op) < 0) {
		free(c);
		return NULL;
	}
	return c;
}

/* One record at a time (a server without /batch). */
static void
single_next(struct replay *rp)
{
	struct rlog_rec rec;
	struct rctx *c;
	int rc;

	rc = rlog_next(rp->d.rlog, rp->after, LIVE, &rec);
	if (rc == 0 && owned(rp, &rec)) {
		/* the rest waits for it: this pass ends, the next one
		 * starts once the op log is done (tick_cb()) */
		rlog_rec_release(&rec);
		rc = -ENOENT;
	}
	if (rc < 0) {
		reint_finish(rp);
		return;
	}
	rp->after = rec.seq;
	c = rctx_new(rp, &rec);
	if (!c) {
		rlog_rec_release(&rec);
		reint_lost(rp, "out of memory");
		return;
	}
	/* INFLIGHT before any byte leaves: a window of records ahead in one
	 * commit, not a durable commit per record. */
	if (rec.state == RLOG_PENDING &&
	    (rc = rlog_set_inflight_run(rp->d.rlog, rec.seq, REINT_WINDOW,
					NULL)) < 0) {
		log_err(LOG_OFF, "cannot mark record %llu in flight: %s",
			(unsigned long long)rec.seq, strerror(-rc));
		rlog_rec_release(&rec);
		rctx_free(c);
		reint_lost(rp, "the replay log cannot be written");
		return;
	}
	if (unsendable(&rec.op)) {
		rlog_rec_release(&rec);
		rec_result(rp, c, -ENOENT, false, NULL, 0);
		return;
	}
	log_debug(LOG_OFF, "replaying %s (record %llu)",
		  proto_op_name(rec.op.kind), (unsigned long long)rec.seq);
	CM_STAT_INC(rp->d.st, replay_singles);
	if (rec.op.kind == PROTO_OP_STORE)
		rc = wb_replay_store(rp->d.wb, rec.seq, &rec.op, c->src,
				     reint_done, c);
	else
		rc = mut_send_replay(rp->d.mut, rec.seq, &rec.op, reint_done,
				     c);
	rlog_rec_release(&rec);
	if (rc < 0) {
		rctx_free(c);
		reint_lost(rp, "cannot send the replay log");
	}
}

/* --- batches --- */

static void
rbatch_free(struct rbatch *b)
{
	for (size_t i = b->next; i < b->n; i++)
		if (b->c[i])
			rctx_free(b->c[i]);
	for (size_t i = 0; i < b->n; i++)
		proto_op_release(&b->sent[i]);
	free(b->c);
	free(b->ops);
	free(b->sent);
	fidmap_clear(&b->changed);
	free(b);
}

/* End the stores of @b that staged (their results go to records no
 * batch handles now; the records stay INFLIGHT, sent again later), and
 * free it. */
static void
batch_cancel(struct rbatch *b)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->ops[i].done && b->ops[i].done != batch_rec_done)
			b->ops[i].done(b->ops[i].arg, -ECANCELED, NULL);
	rbatch_free(b);
}

/* The batch built ahead is not sent: given up now, or once its stores
 * staging now are staged (batch_staged() comes back for it). */
static void
next_batch_drop(struct replay *rp)
{
	struct rbatch *nb = rp->next_batch;

	if (!nb)
		return;
	rp->next_batch = NULL;
	nb->discard = true;
	if (!nb->staging && !nb->in_stage)
		batch_cancel(nb);
}

static void
batch_continue(struct rbatch *b)
{
	struct replay *rp = b->rp;
	struct rctx *c;

	if (rp->stopped || cm_stopping(rp->d.loop)) {
		b->rp->batch = NULL;
		rbatch_free(b);
		next_batch_drop(rp);
		return;
	}
	if (b->aborted || b->next == b->n) {
		bool aborted = b->aborted;
		struct rbatch *nb;

		rp->batch = NULL;
		rbatch_free(b);
		refresh_touched(rp);
		if (aborted) {
			next_batch_drop(rp);
			reint_lost(rp, "the server was lost while replaying "
				       "the log");
			return;
		}
		nb = rp->next_batch;
		if (nb && may_run(rp)) {
			/* The batch built behind this one goes now (or once
			 * its stores are staged: stage_more() sends it). */
			rp->next_batch = NULL;
			rp->batch = nb;
			check_waiters(rp);
			if (nb->ready)
				batch_send(nb);
			return;
		}
		next_batch_drop(rp);
		reint_next(rp);
		return;
	}
	c = b->c[b->next];
	b->c[b->next++] = NULL;
	rec_result(rp, c, c->res_err, c->res_attr, &c->res_fid, c->res_dv);
}

/* A record's own result, called by mut (or by the store that carried
 * it) while the batch reply is taken apart: kept for its turn. */
static void
batch_rec_done(void *arg, int err, const struct proto_op_result *r)
{
	struct rctx *c = arg;

	c->answered = true;
	c->res_err = err;
	log_debug(LOG_OFF, "record %llu (%s, base %llu): %s",
		  (unsigned long long)c->seq, proto_op_name(c->op.kind),
		  (unsigned long long)c->op.base_dv,
		  err ? strerror(-err) : "done");
	if (r && r->has_attr) {
		c->res_attr = true;
		c->res_fid = r->attr.fid;
		c->res_dv = r->attr.dv;
	}
}

static void
batch_all_done(void *arg, int err)
{
	struct rbatch *b = arg;
	struct replay *rp = b->rp;

	if (rp->stopped || cm_stopping(rp->d.loop)) {
		rp->batch = NULL;
		rbatch_free(b);
		next_batch_drop(rp);
		return;
	}
	if (err == -ENOSYS || err == -EIO) {
		/* What was built behind it goes one by one too. */
		next_batch_drop(rp);
		/* No /batch (protocol 2), or the batch was refused as a
		 * whole: the same records one by one (still INFLIGHT, so
		 * nothing merged into them meanwhile). */
		if (err == -ENOSYS) {
			log_info(LOG_OFF, "the server has no batch requests: "
					  "replaying one record at a time");
			rp->no_batch = true;
		} else {
			rp->batch_off_pass = true;
		}
		rp->after = b->c[0] ? b->c[0]->seq - 1 : 0;
		rp->batch = NULL;
		rbatch_free(b);
		reint_next(rp);
		return;
	}
	if (err) {
		b->aborted = true;
		batch_continue(b);
		return;
	}
	CM_STAT_INC(rp->d.st, replay_batches);
	CM_STAT_ADD(rp->d.st, replay_batch_ops, b->n);
	log_debug(LOG_OFF, "batch of %zu records answered", b->n);
	batch_continue(b);
}

static void batch_prebuild(struct replay *rp, struct rbatch *behind);

/* All stores of @b are staged (or one failed): send it, unless it was
 * built ahead and the batch before it is still in flight (then it waits:
 * batch_continue() sends it). */
static void
batch_send(struct rbatch *b)
{
	struct replay *rp = b->rp;
	int rc;

	if (b->discard) {
		batch_cancel(b);
		return;
	}
	if (b != rp->batch) {
		b->ready = true;
		return;
	}
	if (b->stage_err || rp->stopped || cm_stopping(rp->d.loop) ||
	    !may_run(rp)) {
		/* End the stores that did stage: their results go to
		 * records this batch no longer handles. */
		b->aborted = true;
		rp->batch = NULL;
		batch_cancel(b);
		next_batch_drop(rp);
		if (!rp->stopped && !cm_stopping(rp->d.loop) && may_run(rp))
			reint_lost(rp, "cannot stage the data of a store");
		return;
	}
	log_debug(LOG_OFF, "batch of %zu records staged, sending", b->n);
	{
		/* Small files whose bytes only their records hold: their
		 * chunk files are synced while the server commits, off the
		 * loop (the reply waits for it before the records go). */
		struct fid fids[PROTO_BATCH_MAX];
		size_t nf = 0;

		for (size_t i = 0; i < b->n && nf < PROTO_BATCH_MAX; i++)
			if (b->sent[i].kind == PROTO_OP_STORE &&
			    b->sent[i].data)
				fids[nf++] = b->sent[i].fid;
		wb_data_durable_ahead(rp->d.wb, fids, nf);
	}
	rc = mut_send_replay_batch(rp->d.mut, b->ops, b->n, batch_all_done, b);
	if (rc < 0) {
		log_warn(LOG_OFF, "cannot send a batch of %zu records (%s): one "
				  "at a time",
			 b->n, strerror(-rc));
		rp->batch_off_pass = true;
		rp->after = b->c[0]->seq - 1;
		rp->batch = NULL;
		batch_cancel(b);
		next_batch_drop(rp);
		reint_next(rp);
		return;
	}
	/* While the server commits this one, the next is built and its
	 * stores staged: the two costs overlap. */
	if (!rp->next_batch)
		batch_prebuild(rp, b);
}

static void stage_more(struct rbatch *b);

/* A store of the batch is staged: its op goes with the others. */
static void
batch_staged(void *arg, int err, const struct proto_op *sop,
	     mut_done_fn op_done, void *op_arg)
{
	struct rctx *c = arg;
	struct rbatch *b = c->b;
	size_t i;

	b->staging--;
	b->staged++;
	for (i = 0; i < b->n && b->c[i] != c; i++)
		;
	b->staging_chunks -= b->sent[i].nchunks ? b->sent[i].nchunks : 1;
	if (!err && sop && !sop->data && b->sent[i].data) {
		/* The record's bytes (format 3), which a server without
		 * inline stores does not take: staged instead (store_from_
		 * log()). */
		free(b->sent[i].data);
		b->sent[i].data = NULL;
		b->sent[i].dlen = 0;
	}
	if (!err && sop && sop->data && !b->sent[i].data) {
		/* A small file's bytes, inline: they go in the batch. */
		b->sent[i].data = malloc(sop->dlen ? sop->dlen : 1);
		if (b->sent[i].data) {
			memcpy(b->sent[i].data, sop->data, sop->dlen);
			b->sent[i].dlen = sop->dlen;
		} else {
			/* as a staging failure: the batch does not go, its
			 * records stay INFLIGHT */
			op_done(op_arg, -ENOMEM, NULL);
			err = -ENOMEM;
		}
	}
	if (err) {
		if (!b->stage_err)
			b->stage_err = err;
		/* the store is over; its record stays INFLIGHT */
		b->ops[i].done = NULL;
	} else {
		b->ops[i].done = op_done;
		b->ops[i].arg = op_arg;
	}
	if (b->discard) {
		if (!b->staging && !b->in_stage)
			batch_cancel(b);
		return;
	}
	if (!b->in_stage)
		stage_more(b);
}

/* Stores staged at once: many small ones (one PUT each, the server's
 * fsync per staged chunk is the cost), but not more than
 * BATCH_STAGING_CHUNKS chunks in flight (a chunk's bytes are copied into
 * its request: 64 x 256 KiB = 16 MiB at most). */
#define BATCH_STAGING	     8
#define BATCH_STAGING_CHUNKS 64

static void
stage_more(struct rbatch *b)
{
	struct replay *rp = b->rp;

	b->in_stage = true;
	for (size_t i = 0; i < b->n && b->staging < BATCH_STAGING &&
			   !b->stage_err && !b->discard;
	     i++) {
		struct rctx *c = b->c[i];
		int rc;

		size_t nch = b->sent[i].nchunks ? b->sent[i].nchunks : 1;

		if (b->sent[i].kind != PROTO_OP_STORE || b->ops[i].arg)
			continue;
		if (b->staging && b->staging_chunks + nch > BATCH_STAGING_CHUNKS)
			break; /* a store staged later makes room */
		b->ops[i].arg = c; /* taken (until batch_staged sets it) */
		memcpy(b->sent[i].txid, b->txid, sizeof(b->txid));
		b->staging++;
		b->staging_chunks += nch;
		rc = wb_stage_replay_store(rp->d.wb, c->seq, &b->sent[i],
					   c->src, batch_staged, c,
					   batch_rec_done, c);
		if (rc < 0) {
			b->staging--;
			b->staging_chunks -= nch;
			b->staged++;
			b->stage_err = rc;
			b->ops[i].done = NULL;
		}
		/* Stores staged at once freed a slot: look again from the
		 * start (the claimed ones are skipped). */
		if (b->staging < BATCH_STAGING && i + 1 == b->n &&
		    b->staged + b->staging < b->nstores && !b->stage_err)
			i = (size_t)-1;
	}
	b->in_stage = false;
	if (b->staging == 0 &&
	    (b->staged == b->nstores || b->stage_err || b->discard))
		batch_send(b);
}

/* Rough size of @op in a batch body, so a batch stays well below
 * PROTO_BATCH_BODY_MAX. */
static size_t
op_cost(const struct proto_op *op)
{
	size_t inl = 0;

	/* a small store may carry its bytes (base64) once staged */
	if (op->kind == PROTO_OP_STORE && op->nchunks == 1 &&
	    op->size <= PROTO_INLINE_MAX)
		inl = (size_t)op->size / 3 * 4 + 4;
	return 512 + (op->name ? strlen(op->name) : 0) +
	       (op->newname ? strlen(op->newname) : 0) +
	       2 * (op->target ? strlen(op->target) : 0) +
	       (op->xname ? strlen(op->xname) : 0) + 2 * op->xlen +
	       24 * op->nchunks + inl;
}

#define BATCH_SCAN  1024      /* records looked at for one batch */

/* Is record @seq one of @b's? (its records are in log order) */
static bool
in_batch(const struct rbatch *b, uint64_t seq)
{
	size_t lo = 0, hi = b->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (b->ops[mid].seq == seq)
			return true;
		if (b->ops[mid].seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}
#define BATCH_BYTES (8u << 20) /* body budget */

static int64_t backlog_age_ms(struct replay *rp);

/* A drain pass that sent a batch already, with only young records left
 * (none waited writeback-delay, less the clock's slack), nobody waiting
 * for the server, writeback on: it may end and leave them to the
 * clock. */
static bool
drain_may_wait(struct replay *rp)
{
	uint64_t slack = rp->wb_delay_ms / 4 < 250 ? rp->wb_delay_ms / 4 : 250;
	int64_t age;

	/* never the first batch of a pass: what started it goes */
	if (!rp->draining || !rp->wb_on || !TAILQ_EMPTY(&rp->syncq) ||
	    !(rp->done_recs + rp->refused))
		return false;
	age = backlog_age_ms(rp);
	return age >= 0 && (uint64_t)age + slack < rp->wb_delay_ms;
}

/*
 * The next batch: from rp->after, up to PROTO_BATCH_MAX records in log
 * order. A record waits for a later batch (deferred) when it names an
 * object a deferred record names (their order must stay), or when it is
 * a STORE or SETATTR of an object an earlier record of this batch
 * changes: its base DV is the one that record's reply brings (the DV
 * map). Records of disjoint objects do not depend on each other, so
 * sending a later one before a deferred one changes nothing the server
 * or anyone could see.
 *
 * Built ahead (@behind: the batch in flight, batch_prebuild()), stores
 * and setattrs of what @behind changes wait too (their base DV is in its
 * reply), and a batch that cannot be built now (nothing to send, a
 * record that must be settled first, no memory) is not built: @return
 * false, nothing changed; the usual build comes after @behind's reply.
 */
static bool
batch_build(struct replay *rp, struct rbatch *behind)
{
	struct fidmap blocked = {0}, changed = {0};
	struct rlog_rec rec;
	struct rbatch *b;
	struct fidmap created = {0};
	uint64_t cur = rp->after, first_deferred = 0, first_pending = 0;
	size_t scanned = 0, bytes = 0, npend = 0;
	bool fresh, held = false, at_end = false;
	int rc;

	b = calloc(1, sizeof(*b));
	if (!b || !(b->c = calloc(PROTO_BATCH_MAX, sizeof(*b->c))) ||
	    !(b->ops = calloc(PROTO_BATCH_MAX, sizeof(*b->ops))) ||
	    !(b->sent = calloc(PROTO_BATCH_MAX, sizeof(*b->sent)))) {
		if (b) {
			free(b->c);
			free(b->ops);
			free(b);
		}
		if (!behind)
			reint_lost(rp, "out of memory");
		return false;
	}
	b->rp = rp;
	{
		struct fid t;

		if (fid_random(0, &t) < 0) {
			rbatch_free(b);
			if (!behind)
				reint_lost(rp, "no random transaction id");
			return false;
		}
		memcpy(b->txid, t.oid, sizeof(b->txid));
	}
	while (b->n < PROTO_BATCH_MAX && scanned < BATCH_SCAN) {
		const struct fid *m[4];
		bool defer = false, compound;
		struct rctx *c;

		rc = rlog_next(rp->d.rlog, cur, LIVE, &rec);
		if (rc < 0) {
			at_end = true;
			break;
		}
		/* PENDING: never sent, so no reply to it can be in the
		 * server's opid table. They are set INFLIGHT after the scan,
		 * in one commit, before anything is sent (appends run on
		 * this thread too: none comes in between). */
		fresh = rec.state == RLOG_PENDING;
		if (!fresh && behind && in_batch(behind, rec.seq)) {
			/* On its way in the batch in flight (behind scans
			 * from its first deferred record). */
			cur = rec.seq;
			scanned++;
			rlog_rec_release(&rec);
			continue;
		}
		if (fresh && !npend++)
			first_pending = rec.seq;
		cur = rec.seq;
		scanned++;
		m[0] = &rec.op.fid;
		m[1] = &rec.op.parent;
		m[2] = &rec.op.newparent;
		m[3] = &rec.op.victim;
		for (size_t k = 0; k < 4; k++)
			if (!fid_is_null(m[k]) && fidmap_find(&blocked, m[k]))
				defer = true;
		if (!fresh && owned(rp, &rec)) {
			/* The op log's: not sent, and what names its
			 * objects after it waits (deferred) */
			defer = true;
			held = true;
		}
		/* A store or setattr of a file a fresh create of this batch
		 * makes, based on that create (a local DV): base DV 0, which
		 * the server takes as "the DV this batch left it at", so
		 * create, data and attributes go in one request. */
		compound = !defer &&
			   (rec.op.kind == PROTO_OP_STORE ||
			    rec.op.kind == PROTO_OP_SETATTR) &&
			   (rec.op.base_dv & CM_DV_LOCAL) &&
			   fidmap_find(&created, &rec.op.fid);
		if (!compound &&
		    (rec.op.kind == PROTO_OP_STORE ||
		     rec.op.kind == PROTO_OP_SETATTR) &&
		    (fidmap_find(&changed, &rec.op.fid) ||
		     (behind && fidmap_find(&behind->changed, &rec.op.fid))))
			defer = true;
		if (!defer && b->n &&
		    bytes + op_cost(&rec.op) > BATCH_BYTES) {
			cur = rec.seq - 1;
			rlog_rec_release(&rec);
			break;
		}
		if (defer) {
			for (size_t k = 0; k < 4; k++)
				if (!fid_is_null(m[k]))
					fidmap_put(&blocked, m[k], 0);
			if (!first_deferred)
				first_deferred = rec.seq;
			rlog_rec_release(&rec);
			continue;
		}
		c = rctx_new(rp, &rec);
		if (c && compound)
			rec.op.base_dv = 0;
		if (c && unsendable(&rec.op)) {
			if (b->n || behind) {
				/* first in the next batch */
				cur = rec.seq - 1;
				rctx_free(c);
				rlog_rec_release(&rec);
				break;
			}
			rlog_rec_release(&rec);
			fidmap_clear(&blocked);
			fidmap_clear(&changed);
			fidmap_clear(&created);
			rbatch_free(b);
			if (npend && rlog_set_inflight_run(rp->d.rlog,
							   first_pending, npend,
							   NULL) < 0) {
				rctx_free(c);
				reint_lost(rp, "the replay log cannot be "
					       "written");
				return false;
			}
			rp->after = first_deferred ? first_deferred - 1
						   : c->seq;
			rec_result(rp, c, -ENOENT, false, NULL, 0);
			return true;
		}
		if (!c || mut_op_copy(&b->sent[b->n], &rec.op) < 0) {
			if (c)
				rctx_free(c);
			rlog_rec_release(&rec);
			fidmap_clear(&blocked);
			fidmap_clear(&changed);
			fidmap_clear(&created);
			rbatch_free(b);
			if (!behind)
				reint_lost(rp, "out of memory");
			return false;
		}
		c->b = b;
		b->c[b->n] = c;
		b->ops[b->n].seq = rec.seq;
		b->ops[b->n].op = &b->sent[b->n];
		if (rec.op.kind == PROTO_OP_STORE) {
			b->nstores++;
			b->ops[b->n].done = NULL; /* set once staged */
		} else {
			b->ops[b->n].done = batch_rec_done;
			b->ops[b->n].arg = c;
		}
		bytes += op_cost(&rec.op);
		if (rec.op.kind != PROTO_OP_UNLINK &&
		    rec.op.kind != PROTO_OP_RMDIR) {
			fidmap_put(&changed, &rec.op.fid, 0);
			fidmap_put(&b->changed, &rec.op.fid, 0);
		}
		/* A directory's DV moves with its entries: a SETATTR of it
		 * waits for the reply that brings the new one. */
		for (size_t k = 1; k < 3; k++)
			if (!fid_is_null(m[k])) {
				fidmap_put(&changed, m[k], 0);
				fidmap_put(&b->changed, m[k], 0);
			}
		if (fresh && rec.op.kind == PROTO_OP_CREATE)
			fidmap_put(&created, &rec.op.fid, 0);
		b->n++;
		rlog_rec_release(&rec);
	}
	fidmap_clear(&blocked);
	fidmap_clear(&changed);
	fidmap_clear(&created);
	/* Built ahead, a batch that took the whole log and is small is not
	 * worth a request of its own: while a writer still adds records
	 * (a writeback drain), the build after the reply takes more. */
	if (behind && (b->n == 0 || (at_end && b->n < PROTO_BATCH_MAX / 4))) {
		rbatch_free(b);
		return false;
	}
	/* The same after a reply, in a drain: a few fresh records a writer
	 * is still adding wait for the drain's clock (tick_cb() starts the
	 * next pass once the oldest PENDING record has waited
	 * writeback-delay, or at once for a waiter) instead of a request
	 * each time a reply came. Batches once got bigger by themselves
	 * while their stores' chunks were PUT; inline, a drain of a slow
	 * writer went out a few records a request (t4023). */
	if (!behind && b->n && at_end && npend == b->n && !held &&
	    b->n < PROTO_BATCH_MAX / 4 && drain_may_wait(rp)) {
		rbatch_free(b);
		reint_finish(rp);
		return true;
	}
	/* INFLIGHT before any byte leaves: the PENDING records scanned are
	 * the first npend of the PENDING list from first_pending. */
	if (npend && (rc = rlog_set_inflight_run(rp->d.rlog, first_pending,
						 npend, NULL)) < 0) {
		log_err(LOG_OFF, "cannot mark record %llu in flight: %s",
			(unsigned long long)first_pending, strerror(-rc));
		rbatch_free(b);
		if (!behind)
			reint_lost(rp, "the replay log cannot be written");
		return false;
	}
	if (b->n == 0) {
		rbatch_free(b);
		if (held) {
			/* Only what waits for the op log's records is left:
			 * the pass ends; tick_cb() starts the next once
			 * they are answered. */
			reint_finish(rp);
			return true;
		}
		if (first_deferred) {
			/* cannot happen: the first record is never deferred */
			rp->batch_off_pass = true;
			reint_next(rp);
			return true;
		}
		reint_finish(rp);
		return true;
	}
	rp->after = first_deferred ? first_deferred - 1 : cur;
	/* stores: the ops' arg is the claim mark of stage_more() */
	for (size_t i = 0; i < b->n; i++)
		if (b->sent[i].kind == PROTO_OP_STORE)
			b->ops[i].arg = NULL;
	log_debug(LOG_OFF, "replaying a batch of %zu records (%zu stores)%s",
		  b->n, b->nstores, behind ? ", built ahead" : "");
	if (behind)
		rp->next_batch = b;
	else
		rp->batch = b;
	stage_more(b);
	return true;
}

static void
batch_next(struct replay *rp)
{
	batch_build(rp, NULL);
}

/* @behind was sent: build the next batch and stage its stores now. */
static void
batch_prebuild(struct replay *rp, struct rbatch *behind)
{
	if (rp->no_batch || rp->batch_off_pass || !may_run(rp))
		return;
	batch_build(rp, behind);
}

static void
reint_next(struct replay *rp)
{
	if (!may_run(rp))
		return;
	check_waiters(rp);
	if (rp->no_batch || rp->batch_off_pass)
		single_next(rp);
	else
		batch_next(rp);
}

/* Start a pass over the log: a reintegration, or a drain (@draining)
 * while connected. Counts what it has to do for `fs status`. */
static void
pass_begin(struct replay *rp, bool draining)
{
	struct rlog_stats st;

	memset(&st, 0, sizeof(st));
	rlog_stats(rp->d.rlog, &st);
	rp->running = true;
	rp->draining = draining;
	rp->after = 0;
	rp->done_recs = rp->done_bytes = rp->refused = 0;
	rp->total_recs = st.pending + st.inflight;
	rp->total_bytes = st.data_bytes;
	if (rp->mapfd < 0)
		map_open(rp);
}

/* conn.c's hook: now REINTEGRATING (a probe answered, or fs reconnect). */
void
replay_reintegrate(struct replay *rp)
{
	if (!rp || rp->stopped)
		return;
	/* A drain pass cut short by the disconnection is over; this replay
	 * takes its place. */
	pass_begin(rp, false);
	log_info(LOG_OFF, "reintegrating %llu records (%llu bytes)",
		 (unsigned long long)rp->total_recs,
		 (unsigned long long)rp->total_bytes);
	reint_next(rp);
}

/* --- writeback --- */

bool
replay_ahead(struct replay *rp, const struct fid *fid)
{
	if (!rp || rp->stopped || !rp->d.rlog || !rp->d.conn ||
	    fid_is_null(fid))
		return false;
	if (!rp->running && !conn_logs_changes(rp->d.conn))
		return false;
	/* The op log's own records (connected ops in flight, held late
	 * creates) do not count: their replies are the server's view. */
	return rlog_fid_find(rp->d.rlog, fid, LIVE | RLOG_NOT_DIRECT,
			     UINT64_MAX, NULL) == 0;
}

/* A drain pass: the replay while connected. */
static void
drain_start(struct replay *rp)
{
	if (rp->stopped || rp->running || cm_stopping(rp->d.loop) ||
	    conn_mode(rp->d.conn) != CM_CONNECTED)
		return;
	pass_begin(rp, true);
	log_debug(LOG_OFF, "draining %llu records (%llu bytes)",
		  (unsigned long long)rp->total_recs,
		  (unsigned long long)rp->total_bytes);
	reint_next(rp);
}

/* The age of the oldest record still to send, or -1 if none. */
static int64_t
backlog_age_ms(struct replay *rp)
{
	struct rlog_rec rec;
	int64_t age;

	if (rlog_next(rp->d.rlog, 0, LIVE, &rec) < 0)
		return -1;
	age = util_wall_ns() / 1000000 - rec.time_ms;
	rlog_rec_release(&rec);
	return age < 0 ? 0 : age;
}

static void
tick_arm(struct replay *rp)
{
	uint64_t ms = rp->wb_delay_ms / 4;
	struct timeval tv;

	if (!rp->tick || rp->stopped)
		return;
	if (ms < 10)
		ms = 10;
	if (ms > 250)
		ms = 250;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(rp->tick, &tv);
}

/* The drain's clock: a pass starts when the oldest PENDING record has
 * waited writeback-delay (less a tick, so it is sent within the bound),
 * or at once when someone waits for the server. Only PENDING records
 * count: an INFLIGHT one of a connected op is mut's, in flight now. */
static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct replay *rp = arg;
	struct rlog_stats st;

	(void)fd;
	(void)what;
	if (rp->stopped || cm_stopping(rp->d.loop))
		return;
	/* log-sync=close: what oreq_run() appended without a sync is
	 * durable within a tick (at most 250 ms): one fdatasync for all of
	 * it, none when nothing is unsynced. Only while changes are
	 * logged: the op log's own records (sync mode) need none. */
	if (atomic_load(&rp->log_close) && conn_logs_changes(rp->d.conn))
		sync_log(rp);
	memset(&st, 0, sizeof(st));
	/* Waiters for records the op log sends (sync mode: a connected op,
	 * a held late create) hear it here once those are answered. */
	if (!rp->running && !TAILQ_EMPTY(&rp->syncq))
		check_waiters(rp);
	if (!rp->running && conn_mode(rp->d.conn) == CM_CONNECTED &&
	    rlog_stats(rp->d.rlog, &st) == 0 && st.pending) {
		int64_t age = backlog_age_ms(rp);
		uint64_t slack = rp->wb_delay_ms / 4 < 250 ? rp->wb_delay_ms / 4
							   : 250;

		if (!TAILQ_EMPTY(&rp->syncq) || !rp->wb_on ||
		    (age >= 0 && (uint64_t)age + slack >= rp->wb_delay_ms))
			drain_start(rp);
	}
	tick_arm(rp);
}

static void
tick_start(struct replay *rp)
{
	if (rp->tick || rp->stopped)
		return;
	rp->tick = evtimer_new(rp->d.loop->base, tick_cb, rp);
	if (!rp->tick) {
		log_err(LOG_OFF, "cannot start the writeback timer");
		return;
	}
	tick_arm(rp);
}

bool
replay_resume(struct replay *rp)
{
	struct rlog_stats st;

	if (!rp || rp->stopped || !rp->d.rlog)
		return false;
	tick_start(rp);
	memset(&st, 0, sizeof(st));
	rlog_stats(rp->d.rlog, &st);
	/* PENDING records: this cache ran in writeback (or offline) and
	 * was stopped with changes still to send; they go first, INFLIGHT
	 * ones of a crash with them, in order, as a drain. */
	if (!rp->wb_on && !st.pending)
		return false;
	if (!rp->wb_on) {
		/* Sync mode now, writeback before: go on logging until
		 * what was logged is sent, so nothing overtakes it. */
		conn_set_writeback(rp->d.conn, true);
		replay_set_writeback(rp, false, NULL, NULL);
	}
	rp->resume_dirty = true;
	drain_start(rp);
	if (!rp->running) {
		rp->resume_dirty = false;
		return false;
	}
	return true;
}

int
replay_set_writeback(struct replay *rp, bool on, replay_synced_fn done,
		     void *arg)
{
	struct syncw *w;

	if (!rp || rp->stopped || !rp->d.conn)
		return -EIO;
	tick_start(rp);
	if (on) {
		rp->wb_on = true;
		conn_set_writeback(rp->d.conn, true);
		return 1;
	}
	rp->wb_on = false;
	if (!conn_writeback(rp->d.conn))
		return 1;
	/* Back to sync: the log drains first (new changes are still
	 * logged until it is empty, so none overtakes a logged one). */
	w = calloc(1, sizeof(*w));
	if (!w) {
		rp->wb_on = true;
		return -ENOMEM;
	}
	w->rp = rp;
	w->all = true;
	w->below = UINT64_MAX;
	w->sent0 = rp->sent;
	w->done = done;
	w->arg = arg;
	TAILQ_INSERT_TAIL(&rp->syncq, w, link);
	if (!syncw_waits(rp, w)) {
		syncw_answer(rp, w, 0);
		return 0;
	}
	if (conn_mode(rp->d.conn) == CM_DISCONNECTED) {
		syncw_answer(rp, w, -EHOSTUNREACH);
		return 0;
	}
	drain_start(rp);
	return 0;
}

void
replay_set_writeback_delay(struct replay *rp, uint64_t ms)
{
	if (rp)
		rp->wb_delay_ms = ms;
}

void
replay_set_log_sync(struct replay *rp, bool close)
{
	if (!rp)
		return;
	/* Back to op: from the next op on each is synced as it is logged;
	 * what close appended unsynced is synced now, so from here on
	 * every op that returned is durable. */
	if (atomic_exchange(&rp->log_close, close) && !close && rp->d.rlog &&
	    !rp->stopped)
		sync_log(rp);
}

bool
replay_log_sync_close(struct replay *rp)
{
	return rp && atomic_load(&rp->log_close);
}

static void
sync_job(struct cm_loop *loop, struct cm_job *job)
{
	struct syncw *w = (struct syncw *)((char *)job -
					   offsetof(struct syncw, job));
	struct replay *rp = w->rp;

	if (cm_stopping(loop) || rp->stopped) {
		w->done(w->arg, -ESHUTDOWN, 0);
		free(w);
		return;
	}
	syncw_note(rp, w);
	w->sent0 = rp->sent;
	TAILQ_INSERT_TAIL(&rp->syncq, w, link);
	if (!syncw_waits(rp, w)) {
		syncw_answer(rp, w, 0);
		return;
	}
	/* Now, not after the delay. Disconnected: when reintegrated. */
	drain_start(rp);
}

int
replay_sync(struct replay *rp, const struct fid *fid, replay_synced_fn done,
	    void *arg)
{
	struct syncw *w;

	if (!rp || rp->stopped || !rp->d.rlog)
		return -EIO;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->rp = rp;
	if (fid) {
		w->fid = *fid;
		w->has_fid = true;
	}
	w->done = done;
	w->arg = arg;
	w->job.run = sync_job;
	cm_post(rp->d.loop, &w->job);
	return 0;
}

bool
replay_wb_state(struct replay *rp, struct replay_wb_state *s)
{
	struct rlog_stats st;
	struct syncw *w;
	int64_t age;

	memset(s, 0, sizeof(s[0]));
	if (!rp || rp->stopped || !rp->d.rlog)
		return false;
	s->writeback = rp->wb_on;
	s->delay_ms = rp->wb_delay_ms;
	s->log_close = atomic_load(&rp->log_close);
	s->draining = rp->draining;
	TAILQ_FOREACH(w, &rp->syncq, link)
	if (w->all)
		s->draining = true;
	memset(&st, 0, sizeof(st));
	rlog_stats(rp->d.rlog, &st);
	s->records = st.pending + st.inflight;
	s->bytes = st.data_bytes;
	age = s->records ? backlog_age_ms(rp) : -1;
	s->oldest_ms = age > 0 ? (uint64_t)age : 0;
	return true;
}

/* --- setup --- */

struct replay *
replay_new(const struct replay_deps *deps)
{
	struct replay *rp = calloc(1, sizeof(*rp));

	if (!rp)
		return NULL;
	rp->d = *deps;
	rp->mapfd = -1;
	rp->wb_delay_ms = 1000;
	TAILQ_INIT(&rp->syncq);
	return rp;
}

void
replay_stop(struct replay *rp)
{
	if (!rp || rp->stopped)
		return;
	if (rp->waiter)
		rp->waiter(rp->waiter_arg, -ESHUTDOWN, 0, 0, 0);
	rp->waiter = NULL;
	while (!TAILQ_EMPTY(&rp->syncq)) {
		struct syncw *w = TAILQ_FIRST(&rp->syncq);

		TAILQ_REMOVE(&rp->syncq, w, link);
		if (w->done)
			w->done(w->arg, -ESHUTDOWN, 0);
		free(w);
	}
	if (rp->tick)
		event_free(rp->tick);
	rp->tick = NULL;
	map_close(rp, false);
	fidmap_clear(&rp->touched);
	fidmap_clear(&rp->dropped);
	rp->stopped = true;
}

void
replay_free(struct replay *rp)
{
	if (!rp)
		return;
	replay_stop(rp);
	free(rp);
}

/* --- for the control handlers (ctl_offline.c) --- */

bool
replay_get_state(struct replay *rp, struct replay_state *s)
{
	unsigned w;

	memset(s, 0, sizeof(*s));
	s->mode = rp && rp->d.conn ? conn_mode(rp->d.conn) : CM_CONNECTED;
	if (!rp || rp->stopped || !rp->d.conn)
		return false;
	s->since_ms = conn_since_ms(rp->d.conn);
	s->manual = conn_manual(rp->d.conn);
	s->miss_wait = conn_miss_policy(rp->d.conn, &w);
	s->wait_s = (w ? w : (unsigned)rp->d.timeout_ms) / 1000;
	s->done_recs = rp->done_recs;
	s->total_recs = rp->total_recs;
	s->done_bytes = rp->done_bytes;
	s->total_bytes = rp->total_bytes;
	return true;
}

int
replay_reconnect(struct replay *rp, replay_reconnected_fn done, void *arg)
{

	if (!rp || rp->stopped || !rp->d.conn)
		return -EIO;
	if (rp->waiter)
		return -EBUSY;
	if (conn_mode(rp->d.conn) == CM_CONNECTED)
		return 1;
	rp->waiter = done;
	rp->waiter_arg = arg;
	/* a reintegration already running (-EINPROGRESS) tells the waiter
	 * when it ends, like one this starts (replay_reintegrate()) */
	conn_reconnect(rp->d.conn);
	/* told by reint_finish(), or here if it stopped at once */
	if (rp->waiter && conn_mode(rp->d.conn) == CM_DISCONNECTED) {
		rp->waiter = NULL;
		return -EHOSTUNREACH;
	}
	return 0;
}

void
replay_set_miss_policy(struct replay *rp, bool wait, unsigned wait_s)
{
	if (rp && rp->d.conn)
		conn_set_miss_policy(rp->d.conn, wait, wait_s * 1000);
}

