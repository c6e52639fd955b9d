/*
 * replay.c - disconnected operation: logging mutations while
 * disconnected, and reintegration (see replay.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


#include "cm/cm.h"
#include "cm/conflict.h"
#include "cm/conn.h"
#include "cm/fidmap.h"
#include "cm/inode.h"
#include "cm/local.h"
#include "cm/mcache.h"
#include "cm/mfetch.h"
#include "cm/mut.h"
#include "cm/replay.h"
#include "cm/rlog.h"
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

struct replay {
	struct replay_deps d;
	bool stopped; /* replay_stop(): nothing new starts */
	/* reintegration */
	bool running;
	uint64_t after;
	uint64_t done_recs, total_recs, done_bytes, total_bytes, refused;
	struct fidmap map;   /* replay: FID -> the DV our change produced */
	int mapfd; /* <cache>/replay-dv, the map as it grows (or -1) */
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

void
replay_went_offline(struct replay *rp, bool manual, const char *why)
{
	(void)manual;
	(void)why;
	if (!rp)
		return;
	if (!rp->stopped)
		rp->running = false;
	atomic_store(rp->d.online, 0);
}

/* --- mutations while disconnected --- */

struct oreq {
	struct cm_job job;
	struct replay *rp;
	struct proto_op op;
	mut_done_fn done;
	void *arg;
};

static void
oreq_run(struct cm_loop *loop, struct cm_job *job)
{
	struct oreq *q = (struct oreq *)job;
	struct replay *rp = q->rp;
	struct proto_op_result r;
	struct rlog_effect eff;
	int rc;

	rc = cm_stopping(loop) ? -EIO
			       : local_apply(rp->d.local, &q->op, false, &r);
	if (rc == 0) {
		rc = rlog_append_ex(rp->d.rlog, &q->op, 0, &eff);
		if (rc == 0)
			conflict_note_path(rp->d.wb, eff.seq, &q->op);
		if (rc == 0) {
			/* A FID created in the log and now removed leaves
			 * nothing: drop what is local about it. */
			for (size_t i = 0; i < eff.nchanges; i++)
				if (eff.changes[i].why == RLOG_WHY_IDENTITY)
					wb_gone(rp->d.wb, &eff.changes[i].fid);
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
	done(arg, rc, rc ? NULL : &r);
}

/* --- reintegration --- */

static struct fidmap_slot *
map_find(struct replay *rp, const struct fid *fid)
{
	return fidmap_find(&rp->map, fid);
}

static void
map_put(struct replay *rp, const struct fid *fid, uint64_t dv)
{
	if (!fidmap_put(&rp->map, fid, dv))
		log_warn(LOG_OFF, "out of memory for the replay DV map");
}

/*
 * The map is also appended to <cache>/replay-dv ("FID DV" lines, no
 * fsync: it must outlive the process, not the machine), so a cairnd killed
 * in the middle of a reintegration still knows, when it goes on, which
 * DVs its own replayed changes produced. Removed when the log is empty.
 */
static void
map_path(struct replay *rp, char *buf, size_t len)
{
	snprintf(buf, len, "%s/replay-dv", rp->d.cache_dir);
}

static void
map_set(struct replay *rp, const struct fid *fid, uint64_t dv)
{
	char line[FID_STRLEN + 32], fs[FID_STRLEN];
	int n;

	map_put(rp, fid, dv);
	if (rp->mapfd < 0)
		return;
	n = snprintf(line, sizeof(line), "%s %llu\n", fid_fmt(fid, fs),
		     (unsigned long long)dv);
	if (write(rp->mapfd, line, (size_t)n) != n)
		log_warn(LOG_OFF, "cannot write the replay DV map: %s",
			 strerror(errno));
}

static void
map_open(struct replay *rp)
{
	char path[4096], line[128];
	FILE *f;

	map_path(rp, path, sizeof(path));
	f = fopen(path, "re");
	if (f) {
		while (fgets(line, sizeof(line), f)) {
			char *sp = strchr(line, ' ');
			unsigned long long dv;
			struct fid fid;

			if (sp &&
			    fid_parse_n(line, (size_t)(sp - line), &fid) == 0 &&
			    sscanf(sp + 1, "%llu", &dv) == 1)
				map_put(rp, &fid, dv);
		}
		fclose(f);
		if (rp->map.n)
			log_info(LOG_OFF,
				 "going on with a reintegration a "
				 "restart cut short (%zu objects "
				 "already replayed)",
				 rp->map.n);
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
	if (remove) {
		map_path(rp, path, sizeof(path));
		unlink(path);
	}
}

struct rctx {
	struct replay *rp;
	uint64_t seq;
	struct proto_op op; /* a copy, for the conflict record */
	int err;
	uint64_t nbytes;
	bool has_local; /* the local view when it was refused */
	struct proto_attr local;
	char path[CTL_PATH_MAX]; /* what the change is about */
	char *copy;		 /* the conflict copy's name, or NULL */
};

static void reint_next(struct replay *rp);

static void
rctx_free(struct rctx *c)
{
	proto_op_release(&c->op);
	free(c->copy);
	free(c);
}

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
	log_warn(LOG_OFF, "conflict: %s '%s' refused by the server (%s)%s",
		 proto_op_name(c->op.kind), path, strerror(-c->err),
		 copy ? "; local data saved as a conflict copy" : "");
	rctx_free(c);
	reint_next(rp);
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

static void
reint_done(void *arg, int err, const struct proto_op_result *r)
{
	struct rctx *c = arg;
	struct replay *rp = c->rp;

	if (rp->stopped || cm_stopping(rp->d.loop)) {
		rctx_free(c);
		return;
	}
	if (!err) {
		rp->done_recs++;
		rp->done_bytes += c->nbytes;
		if (r && r->has_attr && c->op.kind != PROTO_OP_UNLINK &&
		    c->op.kind != PROTO_OP_RMDIR)
			map_set(rp, &r->attr.fid, r->attr.dv);
		rctx_free(c);
		reint_next(rp);
		return;
	}
	if (err == -EHOSTUNREACH || err == -ECANCELED || err == -EIO) {
		/* No answer (or not a real one): stop here; the record
		 * stays and is sent first next time. */
		rctx_free(c);
		rp->after = 0;
		replay_disconnect(rp, false,
				  "the server was lost while "
				  "reintegrating");
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
reint_finish(struct replay *rp)
{
	struct rlog_stats st;

	rp->running = false;
	conn_reintegrated(rp->d.conn);
	atomic_store(rp->d.online, 1);
	map_close(rp, true);
	memset(&st, 0, sizeof(st));
	rlog_stats(rp->d.rlog, &st);
	if (!st.conflicts) {
		conflict_records_clear(rp->d.wb);
	}
	log_info(LOG_OFF,
		 "connected: %llu records replayed, %llu refused "
		 "(%llu conflicts to resolve)",
		 (unsigned long long)rp->done_recs,
		 (unsigned long long)rp->refused,
		 (unsigned long long)st.conflicts);
	/* Everything made or changed offline carries a local DV: take the
	 * server's view of it all. */
	mfetch_revalidate_all(rp->d.mf);
	wb_resume(rp->d.wb);
	if (rp->waiter) {
		replay_reconnected_fn fn = rp->waiter;

		rp->waiter = NULL;
		fn(rp->waiter_arg, 0, rp->done_recs, rp->refused, st.conflicts);
	}
}

static void
reint_next(struct replay *rp)
{
	struct rlog_rec rec;
	struct rctx *c;
	struct fidmap_slot *s;
	uint64_t src;
	int rc;

	if (rp->stopped || cm_stopping(rp->d.loop) ||
	    conn_mode(rp->d.conn) != CM_REINTEGRATING)
		return;
	rc = rlog_next(rp->d.rlog, rp->after,
		       RLOG_MASK(RLOG_PENDING) | RLOG_MASK(RLOG_INFLIGHT),
		       &rec);
	if (rc < 0) {
		reint_finish(rp);
		return;
	}
	rp->after = rec.seq;
	c = calloc(1, sizeof(*c));
	if (!c || mut_op_copy(&c->op, &rec.op) < 0) {
		free(c);
		rlog_rec_release(&rec);
		rp->after = 0;
		replay_disconnect(rp, false, "out of memory");
		return;
	}
	c->rp = rp;
	c->seq = rec.seq;
	c->nbytes = rec.nbytes;
	src = rec.op.base_dv;
	/* Based on our own earlier change: the DV the server gave it. An
	 * object made offline (a local DV) whose create went before a
	 * restart: the DV the create's reply stored in the cache. */
	s = map_find(rp, &rec.op.fid);
	if (rec.op.kind == PROTO_OP_STORE || rec.op.kind == PROTO_OP_SETATTR) {
		struct proto_attr ca;

		if (s)
			rec.op.base_dv = s->dv;
		else if ((rec.op.base_dv & CM_DV_LOCAL) &&
			 mcache_attr(rp->d.mc, &rec.op.fid, &ca) == 0 &&
			 !(ca.dv & CM_DV_LOCAL))
			rec.op.base_dv = ca.dv;
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
		rp->after = 0;
		replay_disconnect(rp, false,
				  "the replay log cannot be written");
		return;
	}
	log_debug(LOG_OFF, "replaying %s (record %llu)",
		  proto_op_name(rec.op.kind), (unsigned long long)rec.seq);
	if (rec.op.kind == PROTO_OP_STORE)
		rc = wb_replay_store(rp->d.wb, rec.seq, &rec.op, src,
				     reint_done, c);
	else
		rc = mut_send_replay(rp->d.mut, rec.seq, &rec.op, reint_done,
				     c);
	rlog_rec_release(&rec);
	if (rc < 0) {
		rctx_free(c);
		rp->after = 0;
		replay_disconnect(rp, false, "cannot send the replay log");
	}
}

/* conn.c's hook: now REINTEGRATING (a probe answered, or fs reconnect). */
void
replay_reintegrate(struct replay *rp)
{
	struct rlog_stats st;

	if (!rp || rp->stopped)
		return;
	memset(&st, 0, sizeof(st));
	rlog_stats(rp->d.rlog, &st);
	rp->running = true;
	rp->after = 0;
	rp->done_recs = rp->done_bytes = rp->refused = 0;
	rp->total_recs = st.pending + st.inflight;
	rp->total_bytes = st.data_bytes;
	if (rp->mapfd < 0)
		map_open(rp);
	log_info(LOG_OFF, "reintegrating %llu records (%llu bytes)",
		 (unsigned long long)rp->total_recs,
		 (unsigned long long)rp->total_bytes);
	reint_next(rp);
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
	map_close(rp, false);
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

