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

struct offline {
	/* reintegration */
	bool running;
	uint64_t after;
	uint64_t done_recs, total_recs, done_bytes, total_bytes, refused;
	struct fidmap map;   /* replay: FID -> the DV our change produced */
	int mapfd; /* <cache>/replay-dv, the map as it grows (or -1) */
	/* fs reconnect: told at the end of the reintegration */
	offline_reconnected_fn waiter;
	void *waiter_arg;
};

uint64_t
offline_miss_wait_ms(struct cm *cm)
{
	unsigned ms;

	if (!cm->off || !cm->conn || !conn_offline(cm->conn) ||
	    !conn_miss_policy(cm->conn, &ms))
		return 0;
	return ms ? ms : cm->cfg.fetch_timeout_ms;
}

bool
offline_auto(struct cm *cm)
{
	return cm->off != NULL && cm->rlog != NULL;
}

/* --- modes: conn.c switches them, these are its hooks --- */

void
offline_disconnect(struct cm *cm, bool manual, const char *why)
{
	if (cm->off && cm->conn)
		conn_disconnect(cm->conn, manual, why);
}

void
offline_went_offline(void *arg, bool manual, const char *why)
{
	struct cm *cm = arg;

	(void)manual;
	(void)why;
	if (cm->off)
		cm->off->running = false;
	atomic_store(&cm->online, 0);
}

/* --- mutations while disconnected --- */

struct oreq {
	struct cm_job job;
	struct proto_op op;
	mut_done_fn done;
	void *arg;
};

static void
oreq_run(struct cm_loop *loop, struct cm_job *job)
{
	struct cm *cm = cm_of_loop(loop);
	struct oreq *q = (struct oreq *)job;
	struct proto_op_result r;
	struct rlog_effect eff;
	int rc;

	rc = cm_stopping(&cm->loop) ? -EIO : local_apply(cm, &q->op, false, &r);
	if (rc == 0) {
		rc = rlog_append_ex(cm->rlog, &q->op, 0, &eff);
		if (rc == 0)
			conflict_note_path(cm, eff.seq, &q->op);
		if (rc == 0) {
			/* A FID created in the log and now removed leaves
			 * nothing: drop what is local about it. */
			for (size_t i = 0; i < eff.nchanges; i++)
				if (eff.changes[i].why == RLOG_WHY_IDENTITY)
					wb_gone(cm, &eff.changes[i].fid);
		} else {
			log_err(LOG_OFF, "cannot log %s: %s",
				proto_op_name(q->op.kind), strerror(-rc));
			rc = rc == -ENOSPC ? -ENOSPC : -EIO;
		}
		rlog_effect_release(&eff);
	}
	if (rc == 0) {
		conflict_note_base(cm, &q->op.fid, NULL);
		rc = local_apply(cm, &q->op, true, &r);
	}
	q->done(cm, q->arg, rc, rc ? NULL : &r);
	proto_op_release(&q->op);
	free(q);
}

int
offline_submit(struct cm *cm, const struct proto_op *op, mut_done_fn done,
	       void *arg)
{
	struct oreq *q;

	if (!cm->rlog)
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
	cm_post(&cm->loop, &q->job);
	return 0;
}

void
offline_absorb(struct cm *cm, const struct proto_op *op, mut_done_fn done,
	       void *arg)
{
	struct proto_op_result r;
	int rc;

	offline_disconnect(cm, false, "the server does not answer");
	rc = local_apply(cm, op, false, &r);
	if (rc == 0)
		rc = local_apply(cm, op, true, &r);
	done(cm, arg, rc, rc ? NULL : &r);
}

/* --- reintegration --- */

static struct fidmap_slot *
map_find(struct offline *o, const struct fid *fid)
{
	return fidmap_find(&o->map, fid);
}

static void
map_put(struct offline *o, const struct fid *fid, uint64_t dv)
{
	if (!fidmap_put(&o->map, fid, dv))
		log_warn(LOG_OFF, "out of memory for the replay DV map");
}

/*
 * The map is also appended to <cache>/replay-dv ("FID DV" lines, no
 * fsync: it must outlive the process, not the machine), so a cairnd killed
 * in the middle of a reintegration still knows, when it goes on, which
 * DVs its own replayed changes produced. Removed when the log is empty.
 */
static void
map_path(struct cm *cm, char *buf, size_t len)
{
	snprintf(buf, len, "%s/replay-dv", cm->cfg.cache_dir);
}

static void
map_set(struct cm *cm, const struct fid *fid, uint64_t dv)
{
	struct offline *o = cm->off;
	char line[FID_STRLEN + 32], fs[FID_STRLEN];
	int n;

	map_put(o, fid, dv);
	if (o->mapfd < 0)
		return;
	n = snprintf(line, sizeof(line), "%s %llu\n", fid_fmt(fid, fs),
		     (unsigned long long)dv);
	if (write(o->mapfd, line, (size_t)n) != n)
		log_warn(LOG_OFF, "cannot write the replay DV map: %s",
			 strerror(errno));
}

static void
map_open(struct cm *cm)
{
	struct offline *o = cm->off;
	char path[4096], line[128];
	FILE *f;

	map_path(cm, path, sizeof(path));
	f = fopen(path, "re");
	if (f) {
		while (fgets(line, sizeof(line), f)) {
			char *sp = strchr(line, ' ');
			unsigned long long dv;
			struct fid fid;

			if (sp &&
			    fid_parse_n(line, (size_t)(sp - line), &fid) == 0 &&
			    sscanf(sp + 1, "%llu", &dv) == 1)
				map_put(o, &fid, dv);
		}
		fclose(f);
		if (o->map.n)
			log_info(LOG_OFF,
				 "going on with a reintegration a "
				 "restart cut short (%zu objects "
				 "already replayed)",
				 o->map.n);
	}
	o->mapfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

static void
map_close(struct cm *cm, bool remove)
{
	struct offline *o = cm->off;
	char path[4096];

	if (o->mapfd >= 0)
		close(o->mapfd);
	o->mapfd = -1;
	fidmap_clear(&o->map);
	if (remove) {
		map_path(cm, path, sizeof(path));
		unlink(path);
	}
}

struct rctx {
	struct cm *cm;
	uint64_t seq;
	struct proto_op op; /* a copy, for the conflict record */
	int err;
	uint64_t nbytes;
	bool has_local; /* the local view when it was refused */
	struct proto_attr local;
	char path[CTL_PATH_MAX]; /* what the change is about */
	char *copy;		 /* the conflict copy's name, or NULL */
};

static void reint_next(struct cm *cm);

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
reint_record(struct cm *cm, struct rctx *c, const struct proto_attr *srv)
{
	struct offline *o = cm->off;
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
	if (conflict_base_find(cm, &c->op.fid, &cf.base) == 0)
		cf.has_base = true;
	if (srv) {
		cf.has_server = true;
		cf.server = *srv;
	}
	rc = rlog_conflict_add(cm->rlog, c->seq, &cf);
	if (rc < 0)
		log_err(LOG_OFF,
			"cannot record a conflict for record %llu: "
			"%s",
			(unsigned long long)c->seq, strerror(-rc));
	o->refused++;
	log_warn(LOG_OFF, "conflict: %s '%s' refused by the server (%s)%s",
		 proto_op_name(c->op.kind), path, strerror(-c->err),
		 copy ? "; local data saved as a conflict copy" : "");
	rctx_free(c);
	reint_next(cm);
}

/* The server's version of the object, fetched: record the conflict. */
static void
reint_server_attr(void *arg, int err)
{
	struct rctx *c = arg;
	struct cm *cm = c->cm;
	struct proto_attr a;

	if (!cm->off || cm_stopping(&cm->loop)) {
		rctx_free(c);
		return;
	}
	reint_record(cm, c,
		     !err && mcache_attr(cm->mc, &c->op.fid, &a) == 0 ? &a
								       : NULL);
}

static void
reint_conflict(struct cm *cm, struct rctx *c, const char *copy)
{
	if (copy)
		c->copy = strdup(copy);
	/* What we cache of it is our own view: ask the server. */
	mcache_drop_attr(cm->mc, &c->op.fid);
	mfetch_want_attr(cm->mf, &c->op.fid, reint_server_attr, c);
}

static void
reint_copied(struct cm *cm, void *arg, int err, const char *copy)
{
	struct rctx *c = arg;

	if (err)
		log_err(LOG_OFF,
			"the local version of a refused store could "
			"not be saved (%s): it stays in the cache",
			strerror(-err));
	reint_conflict(cm, c, err ? NULL : copy);
}

static void
reint_done(struct cm *cm, void *arg, int err, const struct proto_op_result *r)
{
	struct rctx *c = arg;
	struct offline *o = cm->off;

	if (!o || cm_stopping(&cm->loop)) {
		rctx_free(c);
		return;
	}
	if (!err) {
		o->done_recs++;
		o->done_bytes += c->nbytes;
		if (r && r->has_attr && c->op.kind != PROTO_OP_UNLINK &&
		    c->op.kind != PROTO_OP_RMDIR)
			map_set(cm, &r->attr.fid, r->attr.dv);
		rctx_free(c);
		reint_next(cm);
		return;
	}
	if (err == -EHOSTUNREACH || err == -ECANCELED || err == -EIO) {
		/* No answer (or not a real one): stop here; the record
		 * stays and is sent first next time. */
		rctx_free(c);
		o->after = 0;
		offline_disconnect(cm, false,
				   "the server was lost while "
				   "reintegrating");
		return;
	}
	c->err = err;
	c->has_local = mcache_attr(cm->mc, &c->op.fid, &c->local) == 0;
	/* as noted when it was logged, or now, while the write state still
	 * knows the file's name */
	if (conflict_path_noted(cm, c->seq, c->path, sizeof(c->path)) < 0)
		conflict_op_path(cm, &c->op, c->path, sizeof(c->path));
	if (c->op.kind == PROTO_OP_STORE) {
		wb_conflict_copy(cm, &c->op.fid, reint_copied, c);
		return;
	}
	reint_conflict(cm, c, NULL);
}

static void
reint_finish(struct cm *cm)
{
	struct offline *o = cm->off;
	struct rlog_stats st;

	o->running = false;
	conn_reintegrated(cm->conn);
	atomic_store(&cm->online, 1);
	map_close(cm, true);
	memset(&st, 0, sizeof(st));
	rlog_stats(cm->rlog, &st);
	if (!st.conflicts) {
		conflict_records_clear(cm);
	}
	log_info(LOG_OFF,
		 "connected: %llu records replayed, %llu refused "
		 "(%llu conflicts to resolve)",
		 (unsigned long long)o->done_recs,
		 (unsigned long long)o->refused,
		 (unsigned long long)st.conflicts);
	/* Everything made or changed offline carries a local DV: take the
	 * server's view of it all. */
	mfetch_revalidate_all(cm->mf);
	wb_resume(cm);
	if (o->waiter) {
		offline_reconnected_fn fn = o->waiter;

		o->waiter = NULL;
		fn(o->waiter_arg, 0, o->done_recs, o->refused, st.conflicts);
	}
}

static void
reint_next(struct cm *cm)
{
	struct offline *o = cm->off;
	struct rlog_rec rec;
	struct rctx *c;
	struct fidmap_slot *s;
	uint64_t src;
	int rc;

	if (!o || cm_stopping(&cm->loop) ||
	    conn_mode(cm->conn) != CM_REINTEGRATING)
		return;
	rc = rlog_next(cm->rlog, o->after,
		       RLOG_MASK(RLOG_PENDING) | RLOG_MASK(RLOG_INFLIGHT),
		       &rec);
	if (rc < 0) {
		reint_finish(cm);
		return;
	}
	o->after = rec.seq;
	c = calloc(1, sizeof(*c));
	if (!c || mut_op_copy(&c->op, &rec.op) < 0) {
		free(c);
		rlog_rec_release(&rec);
		o->after = 0;
		offline_disconnect(cm, false, "out of memory");
		return;
	}
	c->cm = cm;
	c->seq = rec.seq;
	c->nbytes = rec.nbytes;
	src = rec.op.base_dv;
	/* Based on our own earlier change: the DV the server gave it. An
	 * object made offline (a local DV) whose create went before a
	 * restart: the DV the create's reply stored in the cache. */
	s = map_find(o, &rec.op.fid);
	if (rec.op.kind == PROTO_OP_STORE || rec.op.kind == PROTO_OP_SETATTR) {
		struct proto_attr ca;

		if (s)
			rec.op.base_dv = s->dv;
		else if ((rec.op.base_dv & CM_DV_LOCAL) &&
			 mcache_attr(cm->mc, &rec.op.fid, &ca) == 0 &&
			 !(ca.dv & CM_DV_LOCAL))
			rec.op.base_dv = ca.dv;
	}
	/* INFLIGHT before any byte leaves: a window of records ahead in one
	 * commit, not a durable commit per record. */
	if (rec.state == RLOG_PENDING &&
	    (rc = rlog_set_inflight_run(cm->rlog, rec.seq, REINT_WINDOW,
					NULL)) < 0) {
		log_err(LOG_OFF, "cannot mark record %llu in flight: %s",
			(unsigned long long)rec.seq, strerror(-rc));
		rlog_rec_release(&rec);
		rctx_free(c);
		o->after = 0;
		offline_disconnect(cm, false,
				   "the replay log cannot be written");
		return;
	}
	log_debug(LOG_OFF, "replaying %s (record %llu)",
		  proto_op_name(rec.op.kind), (unsigned long long)rec.seq);
	if (rec.op.kind == PROTO_OP_STORE)
		rc = wb_replay_store(cm, rec.seq, &rec.op, src, reint_done, c);
	else
		rc = mut_send_replay(cm, rec.seq, &rec.op, reint_done, c);
	rlog_rec_release(&rec);
	if (rc < 0) {
		rctx_free(c);
		o->after = 0;
		offline_disconnect(cm, false, "cannot send the replay log");
	}
}

/* conn.c's hook: now REINTEGRATING (a probe answered, or fs reconnect). */
void
offline_reintegrate(void *arg)
{
	struct cm *cm = arg;
	struct offline *o = cm->off;
	struct rlog_stats st;

	if (!o)
		return;
	memset(&st, 0, sizeof(st));
	rlog_stats(cm->rlog, &st);
	o->running = true;
	o->after = 0;
	o->done_recs = o->done_bytes = o->refused = 0;
	o->total_recs = st.pending + st.inflight;
	o->total_bytes = st.data_bytes;
	if (o->mapfd < 0)
		map_open(cm);
	log_info(LOG_OFF, "reintegrating %llu records (%llu bytes)",
		 (unsigned long long)o->total_recs,
		 (unsigned long long)o->total_bytes);
	reint_next(cm);
}

/* --- setup --- */

int
offline_new(struct cm *cm)
{
	struct offline *o = calloc(1, sizeof(*o));

	if (!o)
		return -ENOMEM;
	o->mapfd = -1;
	cm->off = o;
	return 0;
}

void
offline_free(struct cm *cm)
{
	struct offline *o = cm->off;

	if (!o)
		return;
	if (o->waiter)
		o->waiter(o->waiter_arg, -ESHUTDOWN, 0, 0, 0);
	map_close(cm, false);
	cm->off = NULL;
	free(o);
}

/* --- for the control handlers (ctl_offline.c) --- */

bool
offline_get_state(struct cm *cm, struct offline_state *s)
{
	struct offline *off = cm->off;
	unsigned w;

	memset(s, 0, sizeof(*s));
	s->mode = cm->conn ? conn_mode(cm->conn) : CM_CONNECTED;
	if (!off || !cm->conn)
		return false;
	s->since_ms = conn_since_ms(cm->conn);
	s->manual = conn_manual(cm->conn);
	s->miss_wait = conn_miss_policy(cm->conn, &w);
	s->wait_s = (w ? w : (unsigned)cm->cfg.fetch_timeout_ms) / 1000;
	s->done_recs = off->done_recs;
	s->total_recs = off->total_recs;
	s->done_bytes = off->done_bytes;
	s->total_bytes = off->total_bytes;
	return true;
}

int
offline_reconnect(struct cm *cm, offline_reconnected_fn done, void *arg)
{
	struct offline *o = cm->off;

	if (!o || !cm->conn)
		return -EIO;
	if (o->waiter)
		return -EBUSY;
	if (conn_mode(cm->conn) == CM_CONNECTED)
		return 1;
	o->waiter = done;
	o->waiter_arg = arg;
	/* a reintegration already running (-EINPROGRESS) tells the waiter
	 * when it ends, like one this starts (offline_reintegrate()) */
	conn_reconnect(cm->conn);
	/* told by reint_finish(), or here if it stopped at once */
	if (o->waiter && conn_mode(cm->conn) == CM_DISCONNECTED) {
		o->waiter = NULL;
		return -EHOSTUNREACH;
	}
	return 0;
}

void
offline_set_miss_policy(struct cm *cm, bool wait, unsigned wait_s)
{
	conn_set_miss_policy(cm->conn, wait, wait_s * 1000);
}

