/*
 * ctl_offline.c - control requests of disconnected operation (fs
 * disconnect, reconnect, setpolicy, conflicts, replaylog, resolve) and the
 * offline part of fs status.
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

#include <event2/event.h>

#include "cm/access.h"
#include "cm/cm.h"
#include "cm/conflict.h"
#include "cm/conn.h"
#include "cm/ctl.h"
#include "cm/ctl_i.h"
#include "cm/http.h"
#include "cm/inode.h"
#include "cm/local.h"
#include "cm/mcache.h"
#include "cm/mfetch.h"
#include "cm/mut.h"
#include "cm/replay.h"
#include "cm/rlog.h"
#include "cm/vc.h"
#include "cm/wb.h"
#include "common/ctl_proto.h"
#include "common/log.h"
#include "common/util.h"

#define WAIT_MAX_S 3600 /* offline-miss=wait:SECONDS */


static void
offline_status_log(json_t *o, const struct rlog_stats *st)
{
	json_object_set_new(
		o, "replay_pending",
		json_integer((json_int_t)(st->pending + st->inflight)));
	json_object_set_new(o, "replay_bytes",
			    json_integer((json_int_t)st->data_bytes));
	json_object_set_new(o, "conflicts",
			    json_integer((json_int_t)st->conflicts));
}

void
cm_ctl_offline_status(struct cm *cm, json_t *o)
{
	struct replay_state s;
	struct rlog_stats st;

	memset(&st, 0, sizeof(st));
	if (cm->rlog)
		rlog_stats(cm->rlog, &st);
	if (!replay_get_state(cm->replay, &s)) {
		json_object_set_new(o, "mode",
				    json_string(cm_mode_name(s.mode)));
		offline_status_log(o, &st);
		return;
	}
	json_object_set_new(o, "mode", json_string(cm_mode_name(s.mode)));
	offline_status_log(o, &st);
	cm_ctl_write_status(cm, o);
	json_object_set_new(o, "since_ms", json_integer(s.since_ms));
	json_object_set_new(o, "manual", json_boolean(s.manual));
	if (s.miss_wait) {
		char w[32];

		snprintf(w, sizeof(w), "wait:%u", s.wait_s);
		json_object_set_new(o, "offline_miss", json_string(w));
	} else {
		json_object_set_new(o, "offline_miss", json_string("error"));
	}
	if (s.mode == CM_REINTEGRATING) {
		json_object_set_new(o, "replay_done",
				    json_integer((json_int_t)s.done_recs));
		json_object_set_new(o, "replay_total",
				    json_integer((json_int_t)s.total_recs));
		json_object_set_new(o, "replay_bytes_done",
				    json_integer((json_int_t)s.done_bytes));
		json_object_set_new(o, "replay_bytes_total",
				    json_integer((json_int_t)s.total_bytes));
	}
}

void
cm_ctl_h_disconnect(void *arg, struct ctl_call *call,
		       const struct ctl_peer *peer, json_t *args)
{
	struct cm *cm = arg;

	(void)args;
	if (!cm->rlog) {
		ctl_reply_err(call, -EIO, "no replay log: cannot disconnect");
		return;
	}
	replay_disconnect(cm->replay, true, "fs disconnect");
	log_info(LOG_CTL, "disconnected by uid %u", (unsigned)peer->uid);
	ctl_reply_ok(call, json_pack("{s:s}", "mode", "disconnected"));
}

static void
reconnected(void *arg, int err, uint64_t replayed, uint64_t refused,
	    uint64_t conflicts)
{
	struct ctl_call *call = arg;

	if (err < 0) {
		ctl_reply_err(call, err, err == -ESHUTDOWN
						 ? "cairnd is stopping"
						 : NULL);
		return;
	}
	ctl_reply_ok(call, json_pack("{s:s,s:I,s:I,s:I}", "mode", "connected",
				     "replayed", (json_int_t)replayed,
				     "refused", (json_int_t)refused,
				     "conflicts", (json_int_t)conflicts));
}

void
cm_ctl_h_reconnect(void *arg, struct ctl_call *call,
		      const struct ctl_peer *peer, json_t *args)
{
	struct cm *cm = arg;
	int rc;

	(void)args;
	log_info(LOG_CTL, "reconnect asked by uid %u", (unsigned)peer->uid);
	rc = replay_reconnect(cm->replay, reconnected, call);
	if (rc == 1)
		ctl_reply_ok(call, json_pack("{s:s,s:i,s:i,s:i}", "mode",
					     "connected", "replayed", 0,
					     "refused", 0, "conflicts", 0));
	else if (rc == -EBUSY)
		ctl_reply_err(call, rc, "a reconnect is already running");
	else if (rc == -EHOSTUNREACH)
		ctl_reply_err(call, rc,
			      "the server did not take the replay log; still "
			      "disconnected (cairnd retries by itself)");
	else if (rc < 0)
		ctl_reply_err(call, rc, NULL);
}

void
cm_ctl_h_setpolicy(void *arg, struct ctl_call *call,
		      const struct ctl_peer *peer, json_t *args)
{
	struct cm *cm = arg;
	const char *name = json_string_value(json_object_get(args, "name"));
	const char *value = json_string_value(json_object_get(args, "value"));
	if (name && cm_ctl_setpolicy_write(cm, call, peer, name, value))
		return;
	if (!name || strcmp(name, "offline-miss")) {
		ctl_reply_err(call, -EINVAL,
			      "unknown policy (known: offline-miss, "
			      "write-mode, writeback-delay, log-sync)");
		return;
	}
	unsigned secs = 0;
	char extra;

	if (!value || (strcmp(value, "error") && strcmp(value, "wait") &&
		       (sscanf(value, "wait:%u%c", &secs, &extra) != 1 ||
			!secs || secs > WAIT_MAX_S))) {
		ctl_reply_err(call, -EINVAL,
			      "offline-miss is error, wait or wait:SECONDS "
			      "(1..3600)");
		return;
	}
	replay_set_miss_policy(cm->replay, !strncmp(value, "wait", 4), secs);
	ctl_reply_ok(call,
		     json_pack("{s:s,s:s}", "name", name, "value", value));
}

struct clist {
	struct cm *cm;
	const struct ctl_peer *peer; /* who asks: sees what the mount shows */
	json_t *arr;
	const char *path; /* filter, or NULL */
	size_t n, limit;
};

/* The directory a change is in, if the op names it (else null). */
static struct fid
op_dir(const struct proto_op *op)
{
	struct fid none;

	switch (op->kind) {
	case PROTO_OP_CREATE:
	case PROTO_OP_MKDIR:
	case PROTO_OP_SYMLINK:
	case PROTO_OP_MKMOUNT:
	case PROTO_OP_LINK:
	case PROTO_OP_UNLINK:
	case PROTO_OP_RMDIR:
	case PROTO_OP_RENAME:
		return op->parent;
	default:
		memset(&none, 0, sizeof(none));
		return none;
	}
}

static int
conflict_cb(const struct rlog_rec *rec, void *arg)
{
	struct clist *l = arg;
	const struct rlog_conflict *c = &rec->conflict;
	json_t *o;

	if (l->path && (!c->local.path || strcmp(c->local.path, l->path)))
		return 0;
	if (l->peer->uid != 0) {
		struct fid dir = op_dir(&rec->op);

		/* Another user's change is none of the caller's business
		 * unless the mount would show the caller its path. */
		if (!c->local.path ||
		    !acc_sees(l->cm->acc, l->peer, c->local.path, &dir,
			      (uid_t)rec->op.uid))
			return 0;
	}
	o = json_pack("{s:I,s:s,s:s,s:s,s:s,s:I,s:I,s:I}", "seq",
		      (json_int_t)rec->seq, "path",
		      c->local.path ? c->local.path : "", "op",
		      proto_op_name(rec->op.kind), "kind",
		      rlog_conflict_name(c->kind), "message",
		      c->msg ? c->msg : "", "base_dv", (json_int_t)c->local.dv,
		      "local_size", (json_int_t)c->local.size, "time_ms",
		      (json_int_t)c->time_ms);
	if (o && c->has_server) {
		json_object_set_new(o, "server_size",
				    json_integer((json_int_t)c->server.size));
		json_object_set_new(o, "server_dv",
				    json_integer((json_int_t)c->server.dv));
		json_object_set_new(o, "server_mtime_ns",
				    json_integer(c->server.mtime_ns));
	}
	if (o)
		json_object_set_new(o, "local_mtime_ns",
				    json_integer(c->local.mtime_ns));
	if (o && c->has_base) {
		json_object_set_new(o, "base_size",
				    json_integer((json_int_t)c->base.size));
		json_object_set_new(o, "base_mtime_ns",
				    json_integer(c->base.mtime_ns));
	}
	if (o && c->msg) {
		/* the copy's path, from the message reint_record wrote */
		const char *p = strstr(c->msg, "saved as '");
		const char *e = p ? strrchr(p + 10, '\'') : NULL;

		if (e)
			json_object_set_new(
				o, "copy",
				json_stringn(p + 10, (size_t)(e - p - 10)));
	}
	if (o)
		json_array_append_new(l->arr, o);
	return 0;
}

void
cm_ctl_h_conflicts(void *arg, struct ctl_call *call,
		      const struct ctl_peer *peer, json_t *args)
{
	struct cm *cm = arg;
	struct clist l = {.cm = cm, .peer = peer};
	int rc;

	l.arr = json_array();
	l.path = json_string_value(json_object_get(args, "path"));
	rc = cm->rlog ? rlog_conflicts(cm->rlog, conflict_cb, &l) : 0;
	if (rc < 0) {
		json_decref(l.arr);
		ctl_reply_err(call, rc, NULL);
		return;
	}
	ctl_reply_ok(call, json_pack("{s:o}", "conflicts", l.arr));
}

static int
replay_cb(const struct rlog_rec *rec, void *arg)
{
	struct clist *l = arg;
	char fs[FID_STRLEN];
	json_t *o;

	if (rec->state == RLOG_CONFLICT)
		return 0;
	if (l->peer->uid != 0) {
		char path[CTL_PATH_MAX];
		struct fid dir = op_dir(&rec->op);

		/* Shown only if its path is known and the mount would show
		 * it to the caller; "pending" counts what is shown. */
		if (conflict_op_path(l->cm->wb, &rec->op, path, sizeof(path)) <
			    0 &&
		    conflict_path_noted(l->cm->wb, rec->seq, path,
					sizeof(path)) < 0)
			return 0;
		if (!acc_sees(l->cm->acc, l->peer, path, &dir,
			      (uid_t)rec->op.uid))
			return 0;
	}
	l->n++;
	if (l->limit && json_array_size(l->arr) >= l->limit)
		return 0;
	o = json_pack(
		"{s:I,s:s,s:s,s:s,s:s,s:I,s:I}", "seq", (json_int_t)rec->seq,
		"op", proto_op_name(rec->op.kind), "state",
		rlog_state_name(rec->state), "fid", fid_fmt(&rec->op.fid, fs),
		"name", rec->op.name ? rec->op.name : "", "bytes",
		(json_int_t)rec->nbytes, "time_ms", (json_int_t)rec->time_ms);
	if (o)
		json_array_append_new(l->arr, o);
	return 0;
}

void
cm_ctl_h_replaylog(void *arg, struct ctl_call *call,
		      const struct ctl_peer *peer, json_t *args)
{
	struct cm *cm = arg;
	struct clist l = {.cm = cm, .peer = peer};
	json_t *lim = json_object_get(args, "limit");
	int rc;

	l.arr = json_array();
	l.limit = json_is_integer(lim) ? (size_t)json_integer_value(lim) : 0;
	rc = cm->rlog ? rlog_iterate(cm->rlog, replay_cb, &l) : 0;
	if (rc < 0) {
		json_decref(l.arr);
		ctl_reply_err(call, rc, NULL);
		return;
	}
	ctl_reply_ok(call, json_pack("{s:o,s:I}", "records", l.arr, "pending",
				     (json_int_t)l.n));
}

/* fs resolve PATH --keep local|server|both. */
struct cres {
	const char *path, *how;
	uint64_t seq;
	bool is_store;
	int found;
	struct proto_op op; /* a copy of the refused op */
	bool has_base;
	struct proto_attr base; /* the object before the local change */
};

static int
resolve_cb(const struct rlog_rec *rec, void *arg)
{
	struct cres *r = arg;

	if (!rec->conflict.local.path ||
	    strcmp(rec->conflict.local.path, r->path))
		return 0;
	r->seq = rec->seq;
	r->is_store = rec->op.kind == PROTO_OP_STORE;
	r->has_base = rec->conflict.has_base;
	if (r->has_base)
		r->base = rec->conflict.base;
	r->found++;
	if (mut_op_copy(&r->op, &rec->op) < 0)
		memset(&r->op, 0, sizeof(r->op));
	return 1;
}

/*
 * keep-local of a refused metadata change: do it again on what the server
 * has now. setattr and xattrs: based on the current DV. unlink, rmdir:
 * remove what the name names now. The conflict goes once the server took
 * it.
 */
struct redo {
	struct cm *cm;
	struct ctl_call *call;
	struct ctl_peer peer; /* who asked: the redo is done for them */
	struct proto_op op;
	uint64_t seq;
	char path[CTL_PATH_MAX];
	bool have_both;	   /* rename: both listings fetched */
	struct cm_job job; /* the answer, after the kernel barrier */
	int rc;		   /* ... and its result */
};

static void
redo_free(struct redo *d)
{
	proto_op_release(&d->op);
	free(d);
}

/* The answer to a redone change, once the kernel forgot what it cached
 * of its names and objects (cm_ctl_kernel_sync()): the redo went to the
 * server from here, not through the mount, so the kernel did not see it
 * (a redone rename's old name was still there when fs resolve returned:
 * t2132). */
static void
redo_reply(struct cm_loop *loop, struct cm_job *job)
{
	struct redo *d = container_of(job, struct redo, job);

	(void)loop;
	if (d->rc < 0)
		ctl_reply_err(d->call, d->rc, NULL);
	else
		ctl_reply_ok(d->call, json_pack("{s:s,s:s}", "path", d->path,
						"how", "keep-local"));
	log_info(LOG_CTL, "conflict at '%s' settled (keep-local: redone)",
		 d->path);
	redo_free(d);
}

static void
redo_done(void *arg, int err, const struct proto_op_result *r)
{
	struct redo *d = arg;
	struct cm *cm = d->cm;

	(void)r;
	if (err) {
		ctl_reply_err(d->call, err == -ESTALE ? -EAGAIN : err,
			      "the server refused the change again");
		redo_free(d);
		return;
	}
	d->rc = rlog_conflict_resolve(cm->rlog, d->seq);
	d->job.run = redo_reply;
	cm_ctl_kernel_sync(cm, &d->op, &d->job);
}

static void
redo_send(struct cm *cm, struct redo *d)
{
	int rc = mut_submit_direct(cm->mut, &d->op, redo_done, d);

	if (rc < 0) {
		ctl_reply_err(d->call, rc, NULL);
		redo_free(d);
	}
}

static bool
takes_name(enum proto_op_kind k)
{
	return k == PROTO_OP_CREATE || k == PROTO_OP_MKDIR ||
	       k == PROTO_OP_SYMLINK || k == PROTO_OP_LINK ||
	       k == PROTO_OP_MKMOUNT;
}

/* The server's object that had the name is gone: now make ours. */
static void
redo_removed(void *arg, int err, const struct proto_op_result *r)
{
	struct redo *d = arg;
	struct cm *cm = d->cm;

	(void)r;
	if (err) {
		ctl_reply_err(d->call, err,
			      "the server's object at that name cannot be "
			      "removed (a directory must be empty)");
		redo_free(d);
		return;
	}
	memset(d->op.opid, 0, sizeof(d->op.opid));
	redo_send(cm, d);
}

static void resolve_deny(struct ctl_call *call, const char *path,
			 const struct proto_op *op, int err);

/* The listings and attributes are fresh now: may the caller still make
 * the change, on what the server has now (@victim: what has the name and
 * would go, or NULL)? If not, answer and free @d. */
static bool
redo_allowed(struct cm *cm, struct redo *d, const struct fid *victim)
{
	int rc = acc_may_change(cm->acc, &d->peer, &d->op, victim, NULL, NULL);

	if (rc == 0)
		return true;
	log_info(LOG_CTL, "keep-local at '%s' refused to uid %u: %s", d->path,
		 (unsigned)d->peer.uid, strerror(rc == -EAGAIN ? EACCES : -rc));
	resolve_deny(d->call, d->path, &d->op, rc == -EAGAIN ? -EACCES : rc);
	redo_free(d);
	return false;
}

static void
redo_fetched(void *arg, int err)
{
	struct redo *d = arg;
	struct cm *cm = d->cm;
	struct proto_attr a;
	enum proto_type t;
	struct fid f;

	if (err) {
		ctl_reply_err(d->call, err, "the object is gone on the server");
		redo_free(d);
		return;
	}
	if (takes_name(d->op.kind)) {
		/* keep-local: ours takes the name; what has it now goes. */
		struct proto_op rm;
		int rc;

		if (local_lookup_name(cm->local, &d->op.parent, d->op.name, &f,
				      &t) < 0) {
			if (!redo_allowed(cm, d, NULL))
				return;
			memset(d->op.opid, 0, sizeof(d->op.opid));
			redo_send(cm, d);
			return;
		}
		if (!redo_allowed(cm, d, &f))
			return;
		memset(&rm, 0, sizeof(rm));
		rm.kind = t == PROTO_T_DIR ? PROTO_OP_RMDIR : PROTO_OP_UNLINK;
		rm.parent = d->op.parent;
		rm.name = d->op.name;
		rm.fid = f;
		rc = mut_submit_direct(cm->mut, &rm, redo_removed, d);
		if (rc < 0) {
			ctl_reply_err(d->call, rc, NULL);
			redo_free(d);
		}
		return;
	}
	if (d->op.kind == PROTO_OP_RENAME && !d->have_both) {
		d->have_both = true;
		mfetch_want_dir(cm->mf, &d->op.newparent, redo_fetched, d);
		return;
	}
	if (d->op.kind == PROTO_OP_RENAME) {
		/* keep-local: the rename happens, over what has the new
		 * name now, if the object still has its old one. */
		if (local_lookup_name(cm->local, &d->op.parent, d->op.name, &f,
				      NULL) < 0 ||
		    !fid_eq(&f, &d->op.fid)) {
			ctl_reply_err(
				d->call, -ESTALE,
				"the object no longer has its old name on "
				"the server");
			redo_free(d);
			return;
		}
		memset(&d->op.victim, 0, sizeof(d->op.victim));
		if (local_lookup_name(cm->local, &d->op.newparent,
				      d->op.newname, &f, NULL) == 0)
			d->op.victim = f;
		d->op.flags &= ~(uint32_t)PROTO_RENAME_NOREPLACE;
		if (!redo_allowed(cm, d, NULL))
			return;
	} else if (d->op.kind == PROTO_OP_UNLINK ||
		   d->op.kind == PROTO_OP_RMDIR) {
		if (local_lookup_name(cm->local, &d->op.parent, d->op.name, &f,
				      &t) < 0) {
			/* Nothing there any more: what we wanted holds. */
			redo_done(d, 0, NULL);
			return;
		}
		d->op.fid = f;
		if (!redo_allowed(cm, d, NULL))
			return;
	} else {
		if (mcache_attr(cm->mc, &d->op.fid, &a) == 0)
			d->op.base_dv = a.dv;
		if (!redo_allowed(cm, d, NULL))
			return;
	}
	memset(d->op.opid, 0, sizeof(d->op.opid));
	redo_send(cm, d);
}

static void
redo_start(struct cm *cm, struct ctl_call *call, const struct ctl_peer *peer,
	   struct cres *r)
{
	struct redo *d = calloc(1, sizeof(*d));

	if (!d || mut_op_copy(&d->op, &r->op) < 0) {
		free(d);
		ctl_reply_err(call, -ENOMEM, NULL);
		return;
	}
	d->cm = cm;
	d->call = call;
	d->peer = *peer;
	d->seq = r->seq;
	snprintf(d->path, sizeof(d->path), "%s", r->path);
	if (d->op.kind == PROTO_OP_UNLINK || d->op.kind == PROTO_OP_RMDIR ||
	    takes_name(d->op.kind)) {
		mfetch_want_dir(cm->mf, &d->op.parent, redo_fetched, d);
		return;
	}
	if (d->op.kind == PROTO_OP_RENAME) {
		/* the old name's listing, then the new one's */
		mfetch_want_dir(cm->mf, &d->op.parent, redo_fetched, d);
		return;
	}
	mcache_drop_attr(cm->mc, &d->op.fid);
	mfetch_want_attr(cm->mf, &d->op.fid, redo_fetched, d);
}

/* Refuse to settle @op's conflict at @path: the caller could not make
 * the change through the mount (@err -EACCES or -EPERM). */
static void
resolve_deny(struct ctl_call *call, const char *path, const struct proto_op *op,
	     int err)
{
	char msg[CTL_PATH_MAX + 256];
	const char *need;

	switch (op->kind) {
	case PROTO_OP_SETATTR:
	case PROTO_OP_SETXATTR:
	case PROTO_OP_REMOVEXATTR:
		need = "owning the object (or write permission on it)";
		break;
	case PROTO_OP_STORE:
		need = "write permission on the file";
		break;
	default:
		need = "write and search permission on the directory (and "
		       "the new object being yours)";
	}
	snprintf(msg, sizeof(msg),
		 "you may not settle the conflict at '%s': the %s needs %s, "
		 "which you do not have through the mount; ask its owner or "
		 "root",
		 path, proto_op_name(op->kind) ? proto_op_name(op->kind)
					       : "change",
		 need);
	ctl_reply_err(call, err == -EPERM ? EPERM : EACCES, msg);
}

/* May @peer settle @r's conflict? What the change itself needs (access.h:
 * keep-local redoes it, keep-remote and keep-both drop or set aside a
 * change that was theirs to make), plus reaching its path. A directory on
 * the way that is gone leaves the change's own checks. */
static int
resolve_may(struct cm *cm, const struct ctl_peer *peer, const struct cres *r,
	    struct acc_need *need)
{
	int rc = acc_reach(cm->acc, peer, r->path, need);

	if (rc < 0 && rc != -ENOENT)
		return rc;
	/* The object may be gone on the server: judge it then by what it
	 * was before the local change. */
	return acc_may_change(cm->acc, peer, &r->op, NULL,
			      r->has_base ? &r->base : NULL, need);
}

/* keep-remote and keep-both change nothing on the server. When what the
 * check needs is gone there (a create in a directory removed since), the
 * object the caller made offline is enough: it was made as op uid. */
static bool
resolve_own_gone(const struct ctl_peer *peer, const struct cres *r)
{
	enum proto_op_kind k = r->op.kind;

	return strcmp(r->how, "keep-local") &&
	       (k == PROTO_OP_CREATE || k == PROTO_OP_MKDIR ||
		k == PROTO_OP_SYMLINK || k == PROTO_OP_MKMOUNT) &&
	       (uid_t)r->op.uid == peer->uid;
}

static void resolve_go(struct cm *cm, struct ctl_call *call,
		       const struct ctl_peer *peer, struct cres *r);

/* A permission check waiting for metadata the cache did not hold. */
struct rauth {
	struct cm *cm;
	struct ctl_call *call;
	struct ctl_peer peer;
	struct cres r; /* r.path, r.how point at the copies below */
	char path[CTL_PATH_MAX];
	char how[16];
	unsigned tries;
};

static void rauth_step(struct rauth *a, int err);
static void rreach_step(struct rauth *a, int err);

static void
rauth_cb(void *arg, int err)
{
	rauth_step(arg, err);
}

static void
rauth_step(struct rauth *a, int err)
{
	struct acc_need need;
	int rc;

	rc = resolve_may(a->cm, &a->peer, &a->r, &need);
	if (rc == -EAGAIN && !err && a->tries++ < 8 &&
	    !cm_offline(a->cm)) {
		if (need.dir)
			mfetch_want_dir(a->cm->mf, &need.fid, rauth_cb, a);
		else
			mfetch_want_attr(a->cm->mf, &need.fid, rauth_cb, a);
		return;
	}
	if (rc == -EAGAIN && err == -ENOENT &&
	    resolve_own_gone(&a->peer, &a->r))
		rc = 0;
	if (rc == -EAGAIN && ((err && err != -ENOENT) ||
			      cm_offline(a->cm))) {
		/* Not a refusal: the answer is not to be had now. */
		ctl_reply_err(a->call, EAGAIN,
			      "cannot check your permission now: what it "
			      "needs is not cached and the server cannot be "
			      "asked; try again when connected");
		proto_op_release(&a->r.op);
		free(a);
		return;
	}
	if (rc == 0) {
		resolve_go(a->cm, a->call, &a->peer, &a->r);
	} else {
		/* Not provable from what the cache holds (or can fetch):
		 * no proof, no change. */
		log_info(LOG_CTL, "resolve at '%s' refused to uid %u: %s",
			 a->r.path, (unsigned)a->peer.uid,
			 strerror(rc == -EAGAIN ? EACCES : -rc));
		resolve_deny(a->call, a->r.path, &a->r.op,
			     rc == -EAGAIN ? -EACCES : rc);
		proto_op_release(&a->r.op);
	}
	free(a);
}

static void
rreach_cb(void *arg, int err)
{
	rreach_step(arg, err);
}

/* Before rauth_step(): may the caller reach a->r.path through the mount?
 * A refusal here is the same whether or not there is a conflict at the
 * path and names no change: the path is not the caller's to ask about. */
static void
rreach_step(struct rauth *a, int err)
{
	struct acc_need need;
	int rc;

	rc = acc_reach(a->cm->acc, &a->peer, a->r.path, &need);
	if (rc == -EAGAIN && !err && a->tries++ < 8 &&
	    !cm_offline(a->cm)) {
		if (need.dir)
			mfetch_want_dir(a->cm->mf, &need.fid, rreach_cb, a);
		else
			mfetch_want_attr(a->cm->mf, &need.fid, rreach_cb, a);
		return;
	}
	if (rc == -EACCES) {
		log_info(LOG_CTL, "resolve at '%s' refused to uid %u: %s",
			 a->r.path, (unsigned)a->peer.uid, strerror(EACCES));
		ctl_reply_err(a->call, EACCES,
			      "you may not settle conflicts there: a "
			      "directory on the path is not searchable for "
			      "you through the mount; ask root");
		free(a);
		return;
	}
	if (rc == -EAGAIN && ((err && err != -ENOENT) ||
			      cm_offline(a->cm))) {
		ctl_reply_err(a->call, EAGAIN,
			      "cannot check your permission now: what it "
			      "needs is not cached and the server cannot be "
			      "asked; try again when connected");
		free(a);
		return;
	}
	/* Reached, or a directory on the way is gone (the change's own
	 * checks decide then): now look. */
	rc = a->cm->rlog ? rlog_conflicts(a->cm->rlog, resolve_cb, &a->r) : 0;
	if (rc < 0 || !a->r.found) {
		proto_op_release(&a->r.op);
		if (rc < 0)
			ctl_reply_err(a->call, rc, NULL);
		else
			ctl_reply_err(a->call, -ENOENT,
				      "no conflict at this path");
		free(a);
		return;
	}
	a->tries = 0;
	rauth_step(a, 0);
}

void
cm_ctl_h_resolve(void *arg, struct ctl_call *call,
		    const struct ctl_peer *peer, json_t *args)
{
	struct cm *cm = arg;
	struct cres r = {0};
	struct rauth *a;
	int rc;

	r.path = json_string_value(json_object_get(args, "path"));
	r.how = json_string_value(json_object_get(args, "how"));
	if (!r.path || !r.how) {
		ctl_reply_err(call, -EINVAL, "path and how are needed");
		return;
	}
	while (r.path[0] == '/')
		r.path++;
	if (strcmp(r.how, "keep-local") && strcmp(r.how, "keep-remote") &&
	    strcmp(r.how, "keep-both")) {
		ctl_reply_err(call, -EINVAL,
			      "how is keep-local, keep-remote or keep-both");
		return;
	}
	if (peer->uid != 0) {
		/* Anyone else must first reach the path, before it learns
		 * whether there is a conflict there (and of what kind); the
		 * checks may have to fetch metadata, so they outlive @args:
		 * copy. */
		a = calloc(1, sizeof(*a));
		if (!a) {
			ctl_reply_err(call, -ENOMEM, NULL);
			return;
		}
		a->cm = cm;
		a->call = call;
		a->peer = *peer;
		snprintf(a->path, sizeof(a->path), "%s", r.path);
		snprintf(a->how, sizeof(a->how), "%s", r.how);
		a->r.path = a->path;
		a->r.how = a->how;
		rreach_step(a, 0);
		return;
	}
	rc = cm->rlog ? rlog_conflicts(cm->rlog, resolve_cb, &r) : 0;
	if (rc < 0) {
		proto_op_release(&r.op);
		ctl_reply_err(call, rc, NULL);
		return;
	}
	if (!r.found) {
		ctl_reply_err(call, -ENOENT, "no conflict at this path");
		return;
	}
	resolve_go(cm, call, peer, &r);
}

/* Settle @r's conflict as r->how says (the caller may). Releases r->op. */
static void
resolve_go(struct cm *cm, struct ctl_call *call, const struct ctl_peer *peer,
	   struct cres *r)
{
	int rc;

	/* keep-local of a refused store is fs's job (it renames the
	 * conflict copy over the file through the mount, then settles with
	 * keep-both); any other change is redone here on the server's
	 * current state: setattr and xattrs on the current DV, unlink and
	 * rmdir of what the name names now, a create, mkdir, symlink or
	 * link after removing what took its name (a directory must be
	 * empty), a rename over what has the new name now. Either way it
	 * is checked again, as the caller, on what the server has then. */
	if (!strcmp(r->how, "keep-local")) {
		enum proto_op_kind k = r->op.kind;

		if (cm_offline(cm)) {
			proto_op_release(&r->op);
			ctl_reply_err(call, -EAGAIN,
				      "keep-local needs the server: reconnect "
				      "first");
			return;
		}
		if (k == PROTO_OP_SETATTR || k == PROTO_OP_SETXATTR ||
		    k == PROTO_OP_REMOVEXATTR || k == PROTO_OP_UNLINK ||
		    k == PROTO_OP_RMDIR || k == PROTO_OP_RENAME ||
		    takes_name(k)) {
			redo_start(cm, call, peer, r);
			proto_op_release(&r->op);
			return;
		}
		proto_op_release(&r->op);
		ctl_reply_err(call, -ENOTSUP,
			      "keep-local of a refused store is done by fs "
			      "(it renames the conflict copy over the file)");
		return;
	}
	/* A refused small store's bytes (format 3) leave the log with it:
	 * its chunk, the local version the conflict copy came from, is on
	 * disk first. */
	if (r->op.kind == PROTO_OP_STORE)
		(void)wb_data_durable(cm->wb, &r->op.fid, 1);
	proto_op_release(&r->op);
	rc = rlog_conflict_resolve(cm->rlog, r->seq);
	if (rc < 0) {
		ctl_reply_err(call, rc, NULL);
		return;
	}
	log_info(LOG_CTL, "conflict at '%s' settled (%s) by uid %u", r->path,
		 r->how, (unsigned)peer->uid);
	ctl_reply_ok(call,
		     json_pack("{s:s,s:s}", "path", r->path, "how", r->how));
}
