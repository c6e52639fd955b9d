/*
 * cm_ctl.c - the control socket handlers of cairnd (see cm_ctl.h).
 *
 * Path requests go through an asynchronous resolver: from the volume root,
 * one component at a time, through the metadata cache, asking meta.c for
 * what is missing and coming back from its callback, so a handler never
 * waits on the network inside the loop.
 *
 * Pins are pin.c's business: the handlers here resolve the path and hand
 * the call over.
 *
 * The disconnected-operation requests are offline.c's. NEEDSWORK:
 * flushall drops data only.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "chunkstore/cs.h"
#include "cm/cm.h"
#include "cm/cm_ctl.h"
#include "cm/ctl.h"
#include "cm/http.h"
#include "cm/meta.h"
#include "cm/offline.h"
#include "cm/pin.h"
#include "cm/vc.h"
#include "common/ctl_proto.h"
#include "common/fid.h"
#include "common/log.h"
#include "common/util.h"

/* Bound on fetch-and-retry rounds for one path component: a listing that
 * keeps changing under us is reported as EAGAIN rather than looped on. */
#define RESOLVE_TRIES 4

static struct ctl_server *ctl_srv;

/* ---- path resolution ------------------------------------------------ */

struct resolve;
typedef void (*resolve_done_fn)(struct resolve *r, const struct proto_attr *a);

struct resolve {
	struct cm *cm;
	struct ctl_call *call;
	struct ctl_peer peer;
	char *path;	  /* the request's path (copy) */
	const char *cur;  /* next component in @path */
	struct fid fid;	  /* object reached so far */
	int want;	  /* R_OK etc. needed on the target */
	bool recursive;	  /* the request's "recursive" (pin, unpin) */
	unsigned tries;
	resolve_done_fn done;
};

static void resolve_step(struct resolve *r);

static void
resolve_free(struct resolve *r)
{
	free(r->path);
	free(r);
}

/* Answer the call with @err and free @r. */
static void
resolve_fail(struct resolve *r, int err, const char *msg)
{
	ctl_reply_err(r->call, err, msg);
	resolve_free(r);
}

static void
resolve_cb(struct cm *cm, void *arg, int err)
{
	struct resolve *r = arg;

	(void)cm;
	if (err < 0) {
		resolve_fail(r, err, NULL);
		return;
	}
	resolve_step(r);
}

static uint32_t
attr_mode(const struct proto_attr *a)
{
	return (a->mode & 07777) | (a->type == PROTO_T_DIR ? S_IFDIR : 0);
}

static void
resolve_step(struct resolve *r)
{
	struct proto_attr a;
	struct vc_dir *d;
	const char *slash;
	size_t len;
	long i;
	int rc;

	for (;;) {
		rc = meta_cached_attr(r->cm, &r->fid, &a);
		if (rc == -ENOENT) {
			if (++r->tries > RESOLVE_TRIES) {
				resolve_fail(r, EAGAIN, NULL);
				return;
			}
			meta_want_attr(r->cm, &r->fid, resolve_cb, r);
			return;
		}
		if (rc < 0) {
			resolve_fail(r, rc, NULL);
			return;
		}
		while (*r->cur == '/')
			r->cur++;
		if (!*r->cur || !strcmp(r->cur, ".")) {
			if (ctl_peer_may(&r->peer, attr_mode(&a), a.uid, a.gid,
					 r->want) < 0) {
				resolve_fail(r, EACCES, NULL);
				return;
			}
			r->done(r, &a);
			return;
		}
		if (a.type != PROTO_T_DIR) {
			resolve_fail(r, ENOTDIR, NULL);
			return;
		}
		if (ctl_peer_may(&r->peer, attr_mode(&a), a.uid, a.gid, X_OK) <
		    0) {
			resolve_fail(r, EACCES, NULL);
			return;
		}
		rc = meta_cached_dir(r->cm, &r->fid, &d);
		if (rc == -ENOENT) {
			if (++r->tries > RESOLVE_TRIES) {
				resolve_fail(r, EAGAIN, NULL);
				return;
			}
			meta_want_dir(r->cm, &r->fid, resolve_cb, r);
			return;
		}
		if (rc < 0) {
			resolve_fail(r, rc, NULL);
			return;
		}
		slash = strchr(r->cur, '/');
		len = slash ? (size_t)(slash - r->cur) : strlen(r->cur);
		if (len == 1 && r->cur[0] == '.') {
			vc_dir_put(d);
			r->cur += len;
			continue;
		}
		i = vc_dir_find(d, r->cur, len);
		if (i < 0) {
			vc_dir_put(d);
			resolve_fail(r, ENOENT, NULL);
			return;
		}
		r->fid = d->ents[i].fid;
		vc_dir_put(d);
		r->cur += len;
		r->tries = 0;
	}
}

/* Resolve args.path for @call; @done answers the call and frees @r with
 * resolve_free() (or resolve_fail()). */
static void
resolve_start(struct cm *cm, struct ctl_call *call,
	      const struct ctl_peer *peer, json_t *args, int want,
	      resolve_done_fn done)
{
	const char *path = json_string_value(json_object_get(args, "path"));
	struct proto_volinfo vi;
	struct resolve *r;

	if (cm_volinfo(cm, &vi) < 0) {
		ctl_reply_err(call, EAGAIN, "the volume is not known yet");
		return;
	}
	r = calloc(1, sizeof(*r));
	if (!r || !(r->path = strdup(path ? path : ""))) {
		free(r);
		ctl_reply_err(call, ENOMEM, NULL);
		return;
	}
	r->cm = cm;
	r->call = call;
	r->peer = *peer;
	r->cur = r->path;
	r->fid = vi.root;
	r->want = want;
	r->recursive = json_is_true(json_object_get(args, "recursive"));
	r->done = done;
	resolve_step(r);
}

/* ---- chunk accounting ----------------------------------------------- */

struct chunk_count {
	uint64_t dv;
	uint64_t cached, bytes, any;
	bool pinned, dirty;
};

static int
count_chunk(const struct cs_info *ci, void *arg)
{
	struct chunk_count *c = arg;

	c->any++;
	c->bytes += ci->len;
	if (ci->flags & CS_F_DIRTY)
		c->dirty = true;
	if (ci->dv != c->dv)
		return 0;
	c->cached++;
	if (ci->flags & CS_F_PINNED)
		c->pinned = true;
	return 0;
}

static uint64_t
chunks_total(struct cm *cm, uint64_t size)
{
	return cm->chunk_size ? (size + cm->chunk_size - 1) / cm->chunk_size
			      : 0;
}

/* ---- handlers ------------------------------------------------------- */

static void
h_getcacheparms(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
		json_t *args)
{
	struct cm *cm = arg;
	struct cs_stats st;

	(void)peer;
	(void)args;
	cs_get_stats(cm->cs, &st);
	ctl_reply_ok(call,
		     json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s}",
			       "bytes_used", (json_int_t)st.bytes_used,
			       "bytes_limit", (json_int_t)st.bytes_limit,
			       "files_used", (json_int_t)st.files_used,
			       "files_limit", (json_int_t)st.files_limit,
			       "chunk_size", (json_int_t)st.chunk_size,
			       "pinned_bytes", (json_int_t)st.pinned_bytes,
			       "dirty_bytes", (json_int_t)st.dirty_bytes,
			       "hits", (json_int_t)st.hits, "misses",
			       (json_int_t)st.misses, "evictions",
			       (json_int_t)st.evictions, "cache_dir",
			       cm->cfg.cache_dir));
}

static void
h_setcachesize(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	       json_t *args)
{
	struct cm *cm = arg;
	uint64_t want = (uint64_t)json_integer_value(
		json_object_get(args, "bytes"));
	struct cs_limits l = {0};
	struct cs_stats st;
	char msg[160], a[32], b[32];
	uint64_t before;
	int rc;

	(void)peer;
	if (want == 0) {
		ctl_reply_err(call, EINVAL, "a cache size of 0 bytes");
		return;
	}
	cs_get_stats(cm->cs, &st);
	if (want < st.pinned_bytes + st.dirty_bytes) {
		util_fmt_size(st.pinned_bytes + st.dirty_bytes, a, sizeof(a));
		util_fmt_size(want, b, sizeof(b));
		snprintf(msg, sizeof(msg),
			 "pinned and dirty data need %s, more than %s", a, b);
		ctl_reply_err_detail(
			call, ENOSPC,
			json_pack("{s:I,s:I}", "bytes_needed",
				  (json_int_t)(st.pinned_bytes +
					       st.dirty_bytes),
				  "bytes_available", (json_int_t)want),
			msg);
		return;
	}
	before = st.bytes_used;
	l.max_bytes = want;
	rc = cs_set_limits(cm->cs, &l);
	if (rc < 0) {
		ctl_reply_err(call, rc, NULL);
		return;
	}
	cs_get_stats(cm->cs, &st);
	log_info(LOG_CTL, "cache limit set to %llu bytes by uid %u",
		 (unsigned long long)want, (unsigned)peer->uid);
	ctl_reply_ok(call, json_pack("{s:I,s:I,s:I}", "bytes_limit",
				     (json_int_t)st.bytes_limit, "bytes_used",
				     (json_int_t)st.bytes_used, "culled_bytes",
				     (json_int_t)(before > st.bytes_used
							  ? before - st.bytes_used
							  : 0)));
}

static void
h_status(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	 json_t *args)
{
	struct cm *cm = arg;

	(void)peer;
	(void)args;
	json_t *o = json_pack("{s:s,s:s,s:s,s:b}", "volume", cm->cfg.volume,
			      "server", cm->cfg.server, "version",
			      PACKAGE_VERSION, "online",
			      atomic_load(&cm->online) ? 1 : 0);

	/* "online": whether the last server contact worked; mode, replay
	 * log and conflicts from offline.c. */
	if (o)
		offline_status(cm, o);
	ctl_reply_ok(call, o);
}

static void
h_listvol(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	  json_t *args)
{
	struct cm *cm = arg;
	struct proto_volinfo vi;
	bool have = cm_volinfo(cm, &vi) == 0;

	(void)peer;
	(void)args;
	ctl_reply_ok(call,
		     json_pack("{s:[{s:s,s:I,s:s,s:s,s:s}]}", "volumes", "name",
			       cm->cfg.volume, "id",
			       (json_int_t)(have ? vi.id : 0), "mode",
			       have && vi.readonly ? "ro" : "rw", "server",
			       cm->cfg.server, "mountpoint",
			       cm->cfg.mountpoint));
}

struct ping {
	struct ctl_call *call;
	struct cm *cm;
	uint64_t start_ms;
};

static void
ping_done(void *arg, const struct http_result *res)
{
	struct ping *p = arg;
	uint64_t ms = util_now_ms() - p->start_ms;
	int err = res->err;
	json_t *s;

	if (!err && (res->status < 200 || res->status > 299))
		err = cm_http_errno(0, res->status, res->body, res->body_len);
	if (!err)
		s = json_pack("{s:s,s:b,s:I}", "url", p->cm->cfg.server, "up",
			      1, "latency_ms", (json_int_t)ms);
	else
		s = json_pack("{s:s,s:b,s:s}", "url", p->cm->cfg.server, "up",
			      0, "error", strerror(err < 0 ? -err : err));
	ctl_reply_ok(p->call, json_pack("{s:[o]}", "servers", s));
	free(p);
}

static void
h_checkservers(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	       json_t *args)
{
	struct cm *cm = arg;
	json_t *t = json_object_get(args, "timeout_ms");
	struct http_request req = {0};
	struct ping *p = calloc(1, sizeof(*p));

	(void)peer;
	if (!p) {
		ctl_reply_err(call, ENOMEM, NULL);
		return;
	}
	p->call = call;
	p->cm = cm;
	p->start_ms = util_now_ms();
	req.method = "GET";
	req.path = "/v1/ping";
	req.timeout_ms = t ? (unsigned)json_integer_value(t) : 5000;
	if (!req.timeout_ms)
		req.timeout_ms = 5000;
	req.max_body = 65536;
	req.on_done = ping_done;
	req.arg = p;
	if (!http_submit(cm->http, &req)) {
		int e = errno;

		free(p);
		ctl_reply_err(call, e, "cannot send the ping");
	}
}

static void
whereis_done(struct resolve *r, const struct proto_attr *a)
{
	char f[FID_STRLEN];

	ctl_reply_ok(r->call,
		     json_pack("{s:s,s:s,s:s,s:s}", "volume", r->cm->cfg.volume,
			       "fid", fid_fmt(&a->fid, f), "server",
			       r->cm->cfg.server, "path", r->path));
	resolve_free(r);
}

static void
h_whereis(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	  json_t *args)
{
	resolve_start(arg, call, peer, args, R_OK, whereis_done);
}

static void
examine_done(struct resolve *r, const struct proto_attr *a)
{
	struct chunk_count c = {.dv = a->dv};
	char f[FID_STRLEN];
	bool file = a->type == PROTO_T_FILE;

	if (file)
		cs_iterate_file(r->cm->cs, a->fid.vol, a->fid.oid, count_chunk,
				&c);
	ctl_reply_ok(r->call,
		     json_pack("{s:s,s:I,s:s,s:s,s:I,s:I,s:I,s:b,s:b,s:I,s:s}",
			       "fid", fid_fmt(&a->fid, f), "dv",
			       (json_int_t)a->dv, "volume", r->cm->cfg.volume,
			       "type", proto_type_name(a->type), "size",
			       (json_int_t)a->size, "chunks_cached",
			       (json_int_t)c.cached, "chunks_total",
			       (json_int_t)(file ? chunks_total(r->cm, a->size)
						 : 0),
			       "pinned", c.pinned, "dirty", c.dirty,
			       "last_fetched", (json_int_t)0, "path", r->path));
	resolve_free(r);
}

static void
h_examine(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	  json_t *args)
{
	resolve_start(arg, call, peer, args, R_OK, examine_done);
}

static void
flush_done(struct resolve *r, const struct proto_attr *a)
{
	struct chunk_count c = {.dv = a->dv};
	int rc = 0;

	if (a->type == PROTO_T_FILE) {
		cs_iterate_file(r->cm->cs, a->fid.vol, a->fid.oid, count_chunk,
				&c);
		if (c.dirty) {
			/* NEEDSWORK: store dirty data first (replay log). */
			resolve_fail(r, EBUSY,
				     "the file has data not yet stored on the "
				     "server");
			return;
		}
		rc = cs_invalidate(r->cm->cs, a->fid.vol, a->fid.oid,
				   UINT64_MAX);
	}
	if (rc < 0) {
		resolve_fail(r, rc, NULL);
		return;
	}
	/* NEEDSWORK: kernel page cache invalidation. */
	ctl_reply_ok(r->call,
		     json_pack("{s:I,s:I,s:b}", "bytes_dropped",
			       (json_int_t)c.bytes, "bytes_stored",
			       (json_int_t)0, "refetching",
			       a->type == PROTO_T_FILE &&
				       pin_refetch(r->cm, &a->fid)));
	resolve_free(r);
}

static void
h_flush(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	json_t *args)
{
	resolve_start(arg, call, peer, args, R_OK, flush_done);
}

static void
flushmeta_done(struct resolve *r, const struct proto_attr *a)
{
	if (a->type == PROTO_T_DIR)
		vc_del_dir(r->cm->vc, &a->fid);
	vc_del_xattrs(r->cm->vc, &a->fid);
	meta_drop_attr(r->cm, &a->fid);
	ctl_reply_ok(r->call, NULL);
	resolve_free(r);
}

static void
h_flushmeta(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	    json_t *args)
{
	resolve_start(arg, call, peer, args, R_OK, flushmeta_done);
}

/* flushvolume / flushall: every file of the volume with cached chunks. */
struct vol_files {
	uint32_t vol;
	struct vf {
		uint8_t oid[16];
		bool dirty;
		uint64_t bytes; /* clean bytes */
	} *f;
	size_t n, cap;
	int err;
};

static int
collect_file(const struct cs_info *ci, void *arg)
{
	struct vol_files *v = arg;
	struct vf *e = NULL, *nf;
	size_t i;

	if (ci->key.vol != v->vol)
		return 0;
	/* Chunks of one file are usually in neighbouring slots: look at the
	 * last file first. NEEDSWORK: a hash for very large caches. */
	for (i = v->n; i-- > 0;)
		if (!memcmp(v->f[i].oid, ci->key.fid, 16)) {
			e = &v->f[i];
			break;
		}
	if (!e) {
		if (v->n == v->cap) {
			v->cap = v->cap ? 2 * v->cap : 64;
			nf = realloc(v->f, v->cap * sizeof(*nf));
			if (!nf) {
				v->err = -ENOMEM;
				return 1;
			}
			v->f = nf;
		}
		e = &v->f[v->n++];
		memset(e, 0, sizeof(*e));
		memcpy(e->oid, ci->key.fid, 16);
	}
	if (ci->flags & CS_F_DIRTY)
		e->dirty = true;
	else
		e->bytes += ci->len;
	return 0;
}

static void
h_flushvolume(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	      json_t *args)
{
	struct cm *cm = arg;
	struct proto_volinfo vi;
	struct vol_files v = {0};
	uint64_t dropped = 0, kept = 0;
	size_t i;
	int rc;

	(void)peer;
	(void)args;
	if (cm_volinfo(cm, &vi) < 0) {
		ctl_reply_err(call, EAGAIN, "the volume is not known yet");
		return;
	}
	v.vol = vi.id;
	/* NEEDSWORK: one pass over the whole index on the loop thread; split
	 * it for very large caches. */
	cs_iterate(cm->cs, collect_file, &v);
	if (v.err < 0) {
		free(v.f);
		ctl_reply_err(call, v.err, NULL);
		return;
	}
	for (i = 0; i < v.n; i++) {
		if (v.f[i].dirty) {
			/* Never drop what is not stored yet (no store path
			 * here yet: the file is left alone). */
			kept++;
			continue;
		}
		rc = cs_invalidate(cm->cs, vi.id, v.f[i].oid, UINT64_MAX);
		if (rc >= 0)
			dropped += v.f[i].bytes;
	}
	free(v.f);
	log_info(LOG_CTL, "%s: dropped %llu bytes of cached data",
		 ctl_call_type(call) == CTL_FLUSHALL ? "flushall"
						     : "flushvolume",
		 (unsigned long long)dropped);
	ctl_reply_ok(call, json_pack("{s:I,s:I,s:I}", "bytes_dropped",
				     (json_int_t)dropped, "bytes_stored",
				     (json_int_t)0, "files_kept_dirty",
				     (json_int_t)kept));
}

static void
pin_done(struct resolve *r, const struct proto_attr *a)
{
	pin_ctl_pin(r->cm, r->call, &r->peer, a, r->path, r->recursive);
	resolve_free(r);
}

static void
h_pin(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
      json_t *args)
{
	resolve_start(arg, call, peer, args, R_OK, pin_done);
}

static void
unpin_done(struct resolve *r, const struct proto_attr *a)
{
	pin_ctl_unpin(r->cm, r->call, a, r->path, r->recursive);
	resolve_free(r);
}

static void
h_unpin(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	json_t *args)
{
	resolve_start(arg, call, peer, args, R_OK, unpin_done);
}

static void
h_pins(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
       json_t *args)
{
	(void)peer;
	pin_ctl_pins(arg, call,
		     json_string_value(json_object_get(args, "path")));
}

static const struct ctl_handlers cm_ctl_handlers = { .on = {
	[CTL_PIN] = h_pin,
	[CTL_UNPIN] = h_unpin,
	[CTL_PINS] = h_pins,
	[CTL_GETCACHEPARMS] = h_getcacheparms,
	[CTL_SETCACHESIZE] = h_setcachesize,
	[CTL_STATUS] = h_status,
	[CTL_LISTVOL] = h_listvol,
	[CTL_CHECKSERVERS] = h_checkservers,
	[CTL_WHEREIS] = h_whereis,
	[CTL_EXAMINE] = h_examine,
	[CTL_FLUSH] = h_flush,
	[CTL_FLUSHMETA] = h_flushmeta,
	[CTL_FLUSHVOLUME] = h_flushvolume,
	[CTL_DISCONNECT] = offline_ctl_disconnect,
	[CTL_RECONNECT] = offline_ctl_reconnect,
	[CTL_SETPOLICY] = offline_ctl_setpolicy,
	[CTL_CONFLICTS] = offline_ctl_conflicts,
	[CTL_RESOLVE] = offline_ctl_resolve,
	[CTL_REPLAYLOG] = offline_ctl_replaylog,
	/* NEEDSWORK: flushall should also drop cached metadata. */
	[CTL_FLUSHALL] = h_flushvolume,
} };

/* ---- start / stop --------------------------------------------------- */

static void
restore_job(struct cm *cm, struct cm_job *job)
{
	bool stopping;

	free(job);
	pthread_mutex_lock(&cm->qlock);
	stopping = cm->stopping;
	pthread_mutex_unlock(&cm->qlock);
	if (!stopping && cm->vc)
		pin_restore(cm);
}

/* Re-apply the recorded pins on the loop thread (pin.h). */
static void
pin_restore_post(struct cm *cm)
{
	struct cm_job *j = calloc(1, sizeof(*j));

	if (!j) {
		log_err(LOG_CTL, "cannot re-apply pins: %s", strerror(ENOMEM));
		return;
	}
	j->run = restore_job;
	cm_post(cm, j);
}

int
cm_ctl_start(struct cm *cm)
{
	char sock[108];
	const char *p = cm->cfg.ctl_socket;
	int rc, err = 0;

	if (!p) {
		rc = ctl_socket_path(cm->cfg.mountpoint, sock, sizeof(sock));
		if (rc < 0) {
			log_err(LOG_CTL, "cannot name the control socket for "
					 "'%s': %s",
				cm->cfg.mountpoint, strerror(-rc));
			return rc;
		}
		p = sock;
	}
	ctl_srv = ctl_server_new(cm->base, p, &cm_ctl_handlers, cm, &err);
	if (!ctl_srv) {
		log_err(LOG_CTL, "cannot listen on control socket '%s': %s", p,
			strerror(-err));
		return err < 0 ? err : -EIO;
	}
	pin_restore_post(cm);
	return 0;
}

static void
stop_job(struct cm *cm, struct cm_job *job)
{
	(void)cm;
	ctl_server_free(ctl_srv);
	ctl_srv = NULL;
	free(job);
}

void
cm_ctl_stop(struct cm *cm)
{
	struct cm_job *j;

	if (!ctl_srv)
		return;
	/* The server belongs to the loop thread: free it there. If the loop
	 * is not running, nobody else touches it. */
	j = cm->loop_running ? calloc(1, sizeof(*j)) : NULL;
	if (!j) {
		ctl_server_free(ctl_srv);
		ctl_srv = NULL;
		return;
	}
	j->run = stop_job;
	cm_post(cm, j);
}
