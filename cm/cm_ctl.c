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
 * Flushes store a file's local changes (wb.c) before they drop anything
 * of it, one file at a time, and answer when the last one is done.
 *
 * The disconnected-operation requests are offline.c's.
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
#include "cm/inode.h"
#include "cm/meta.h"
#include "cm/offline.h"
#include "cm/pin.h"
#include "cm/vc.h"
#include "cm/wb.h"
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
	struct fid parent; /* the directory @fid was found in */
	bool have_parent;
	char name[256];	  /* @fid's name in @parent */
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
		r->parent = r->fid;
		r->have_parent = true;
		/* The schema bounds components to 255 bytes. */
		snprintf(r->name, sizeof(r->name), "%.*s", (int)len, r->cur);
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
	/* dirty_bytes: the chunk store's dirty chunks (whole chunks, as they
	 * take cache space); dirty_files: files with unstored changes. */
	ctl_reply_ok(call,
		     json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
			       "s:s}",
			       "dirty_files", (json_int_t)wb_dirty_files(cm),
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
	/* Clamped: the call holds the caller's connection meanwhile. */
	req.timeout_ms = ctl_timeout_ms(args, "timeout_ms", 5000);
	req.max_body = 65536;
	req.probe = 1; /* its own slot: a user cannot fill the read slots */
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

/* ---- flush ---------------------------------------------------------- */

/*
 * A flush job: for each file in turn, store its local changes (wb_flush),
 * then drop its clean chunks, invalidate the kernel's page cache of it and,
 * if it is pinned, fetch it again in the background. A file whose store
 * fails keeps everything (dirty data is never dropped) and is counted;
 * the others are flushed all the same. Files go one at a time: a store is
 * the server's work, and a flush of a clean file is quick. flushall then
 * drops the cached metadata nothing needs.
 */
struct fjob {
	struct cm *cm;
	struct ctl_call *call;
	unsigned type;	 /* CTL_FLUSH, CTL_FLUSHVOLUME or CTL_FLUSHALL */
	bool one_file;	 /* fs flush FILE: its error is the answer */
	struct fid *fids;
	size_t n, i;
	bool waiting, pumping;
	uint64_t dirty_now; /* dirty bytes of fids[i] before its store */
	uint64_t dropped, stored, failed, meta_dropped;
	int err;	    /* first store error */
	bool probed, server_down, meta_done;
	bool refetching;
	uint64_t last_progress;
};

struct file_bytes {
	uint64_t clean, dirty;
};

static int
count_bytes(const struct cs_info *ci, void *arg)
{
	struct file_bytes *b = arg;

	if (ci->flags & CS_F_DIRTY)
		b->dirty += ci->len;
	else
		b->clean += ci->len;
	return 0;
}

/* Tell the kernel to forget @fid's pages and attributes (the notifier
 * thread sends it: never from inside a FUSE handler). */
static void
kernel_forget_data(struct cm *cm, const struct fid *fid)
{
	uint64_t ino = ino_of(cm->ino, fid);

	if (!ino || !cm->kops.inval_inode)
		return;
	CM_STAT_INC(cm, invalidations);
	cm->kops.inval_inode(cm->kops.arg, ino, 0, 0);
}

static void fjob_pump(struct fjob *j);

static void
fjob_free(struct fjob *j)
{
	if (!j)
		return;
	free(j->fids);
	free(j);
}

static int
fjob_add(struct fjob *j, const struct fid *fid, size_t *cap)
{
	struct fid *nf;

	if (j->n == *cap) {
		*cap = *cap ? 2 * *cap : 16;
		nf = realloc(j->fids, *cap * sizeof(*nf));
		if (!nf)
			return -ENOMEM;
		j->fids = nf;
	}
	j->fids[j->n++] = *fid;
	return 0;
}

/* The store of fids[i] is over (@err): drop the file's data unless it
 * failed, then go on with the next one. Loop thread. */
static void
fjob_stored(struct cm *cm, void *arg, int err)
{
	struct fjob *j = arg;
	const struct fid *fid = &j->fids[j->i];
	struct file_bytes b = {0};
	char fs[FID_STRLEN];
	int rc;

	if (err < 0) {
		/* Never drop what the server does not have. */
		j->failed++;
		if (!j->err)
			j->err = err;
		log_warn(LOG_CTL, "flush: cannot store '%s', keeping it: %s",
			 fid_fmt(fid, fs), strerror(-err));
	} else {
		j->stored += j->dirty_now;
		cs_iterate_file(cm->cs, fid->vol, fid->oid, count_bytes, &b);
		rc = cs_invalidate(cm->cs, fid->vol, fid->oid, UINT64_MAX);
		if (rc < 0)
			log_warn(LOG_CTL, "flush: cannot drop chunks of '%s': %s",
				 fid_fmt(fid, fs), strerror(-rc));
		else
			j->dropped += b.clean;
		kernel_forget_data(cm, fid);
		if (pin_refetch(cm, fid))
			j->refetching = true;
	}
	j->i++;
	j->waiting = false;
	fjob_pump(j);
}

struct meta_drop {
	struct cm *cm;
	struct fid *v;
	size_t n, cap;
};

static int
collect_meta(void *arg, const struct fid *fid)
{
	struct meta_drop *m = arg;
	struct fid *nv;

	/* What a pin or a local change needs stays: offline work reads it,
	 * and a store is based on it. */
	if (pin_covers(m->cm, fid) || wb_active(m->cm, fid))
		return 0;
	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 256;
		nv = realloc(m->v, m->cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		m->v = nv;
	}
	m->v[m->n++] = *fid;
	return 0;
}

/* flushall: forget the cached metadata of every object no pin and no
 * local change needs; the kernel forgets its attributes and pages. */
static uint64_t
drop_all_meta(struct cm *cm)
{
	struct meta_drop m = {.cm = cm};
	struct proto_volinfo vi;
	int rc;

	rc = vc_iterate_fids(cm->vc, collect_meta, &m);
	if (rc < 0)
		log_warn(LOG_CTL, "flushall: cannot list cached metadata: %s",
			 strerror(-rc));
	for (size_t i = 0; i < m.n; i++) {
		/* The root stays: the mount's own attributes. */
		if (cm_volinfo(cm, &vi) == 0 && fid_eq(&vi.root, &m.v[i]))
			continue;
		meta_forget(cm, &m.v[i]);
		kernel_forget_data(cm, &m.v[i]);
	}
	free(m.v);
	return m.n;
}

static void fjob_finish(struct fjob *j);

static void
probe_done(void *arg, const struct http_result *res)
{
	struct fjob *j = arg;

	j->server_down = res->err != 0 || res->status < 200 ||
			 res->status > 299;
	fjob_finish(j);
}

/* A store failed with EIO: is the server there at all? Ask it (a ping,
 * at most 3 s) so the answer can say "unreachable" (fs exits 75) rather
 * than a bare I/O error. @return 0 if the ping is on its way. */
static int
fjob_probe(struct fjob *j)
{
	struct http_request req = {0};

	j->probed = true;
	req.method = "GET";
	req.path = "/v1/ping";
	req.timeout_ms = 3000;
	req.max_body = 65536;
	req.probe = 1;
	req.on_done = probe_done;
	req.arg = j;
	return http_submit(j->cm->http, &req) ? 0 : -EIO;
}

static void
fjob_finish(struct fjob *j)
{
	struct cm *cm = j->cm;
	char msg[256], a[32];
	int err = j->err;
	json_t *res;

	if (j->type == CTL_FLUSHALL && !j->meta_done) {
		j->meta_done = true;
		j->meta_dropped = drop_all_meta(cm);
	}
	if (j->type != CTL_FLUSH)
		log_info(LOG_CTL, "%s: dropped %llu bytes, stored %llu bytes "
				  "first, %llu files could not be stored",
			 j->type == CTL_FLUSHALL ? "flushall" : "flushvolume",
			 (unsigned long long)j->dropped,
			 (unsigned long long)j->stored,
			 (unsigned long long)j->failed);
	if (j->failed && err == -EIO && !j->probed && fjob_probe(j) == 0)
		return; /* back here when the ping is answered */
	if (j->failed) {
		/* A store that failed because the server is away is a
		 * temporary failure (fs exits 75), as for pin. */
		if (err == -EIO && (j->server_down || !atomic_load(&cm->online)))
			err = -EHOSTUNREACH;
		if (j->one_file)
			snprintf(msg, sizeof(msg),
				 "cannot store the file's changes on the "
				 "server (%s); nothing was dropped",
				 strerror(-err));
		else
			snprintf(msg, sizeof(msg),
				 "%llu of %zu files could not be stored on "
				 "the server (%s) and were kept; %s of the "
				 "others was dropped",
				 (unsigned long long)j->failed, j->n,
				 strerror(-err),
				 util_fmt_size(j->dropped, a, sizeof(a)));
		ctl_reply_err_detail(
			j->call, err,
			json_pack("{s:I,s:I,s:I}", "bytes_dropped",
				  (json_int_t)j->dropped, "bytes_stored",
				  (json_int_t)j->stored, "files_failed",
				  (json_int_t)j->failed),
			msg);
		fjob_free(j);
		return;
	}
	res = json_pack("{s:I,s:I,s:I}", "bytes_dropped",
			(json_int_t)j->dropped, "bytes_stored",
			(json_int_t)j->stored, "files", (json_int_t)j->n);
	if (res && j->type == CTL_FLUSH)
		json_object_set_new(res, "refetching",
				    json_boolean(j->refetching));
	if (res && j->type != CTL_FLUSH)
		json_object_set_new(res, "volume",
				    json_string(cm->cfg.volume));
	if (res && j->type == CTL_FLUSHALL)
		json_object_set_new(res, "entries_dropped",
				    json_integer((json_int_t)j->meta_dropped));
	if (!res)
		ctl_reply_err(j->call, ENOMEM, NULL);
	else
		ctl_reply_ok(j->call, res);
	fjob_free(j);
}

static void
fjob_progress(struct fjob *j)
{
	uint64_t now = util_now_ms();

	if (j->n < 2 || now - j->last_progress < 100)
		return;
	j->last_progress = now;
	ctl_progress(j->call, json_pack("{s:I,s:I}", "files_done",
					(json_int_t)j->i, "files_total",
					(json_int_t)j->n));
}

/* Store and drop the files one by one. wb_flush() answers a clean file
 * at once (inside the call), so this loops instead of recursing. */
static void
fjob_pump(struct fjob *j)
{
	if (j->pumping)
		return;
	j->pumping = true;
	while (!j->waiting && j->i < j->n) {
		struct file_bytes b = {0};
		const struct fid *fid = &j->fids[j->i];

		fjob_progress(j);
		cs_iterate_file(j->cm->cs, fid->vol, fid->oid, count_bytes, &b);
		j->dirty_now = b.dirty;
		j->waiting = true;
		wb_flush(j->cm, fid, fjob_stored, j);
	}
	j->pumping = false;
	if (!j->waiting && j->i >= j->n)
		fjob_finish(j);
}

static struct fjob *
fjob_new(struct cm *cm, struct ctl_call *call)
{
	struct fjob *j = calloc(1, sizeof(*j));

	if (!j) {
		ctl_reply_err(call, ENOMEM, NULL);
		return NULL;
	}
	j->cm = cm;
	j->call = call;
	j->type = ctl_call_type(call);
	return j;
}

static void
flush_done(struct resolve *r, const struct proto_attr *a)
{
	struct fjob *j = fjob_new(r->cm, r->call);
	struct vc_dir *d = NULL;
	size_t cap = 0;
	int rc = 0;

	if (!j) {
		resolve_free(r);
		return;
	}
	if (a->type == PROTO_T_FILE) {
		j->one_file = true;
		rc = fjob_add(j, &a->fid, &cap);
	} else if (a->type == PROTO_T_DIR) {
		/* The files of the directory, not recursive. Their mode is
		 * not checked: reading the directory shows them anyway, and
		 * a flush hands nobody their data. */
		rc = meta_cached_dir(r->cm, &a->fid, &d);
		if (rc == -ENOENT)
			rc = 0; /* no listing cached: nothing of it either */
		for (size_t i = 0; d && rc == 0 && i < d->n; i++) {
			struct proto_attr ea;

			if (meta_cached_attr(r->cm, &d->ents[i].fid, &ea) ==
				    0 &&
			    ea.type == PROTO_T_FILE)
				rc = fjob_add(j, &ea.fid, &cap);
		}
		vc_dir_put(d);
	}
	resolve_free(r);
	if (rc < 0) {
		ctl_reply_err(j->call, rc, NULL);
		fjob_free(j);
		return;
	}
	fjob_pump(j);
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
	struct cm *cm = r->cm;
	struct vc_dir *d = NULL;
	uint64_t ino = ino_of(cm->ino, &a->fid), pino = 0;
	uint64_t n = 1;

	/* The kernel forgets the names in a directory and the object's own
	 * name, so the next lookup and stat come to cairnd again. */
	if (a->type == PROTO_T_DIR && meta_cached_dir(cm, &a->fid, &d) == 0) {
		for (size_t i = 0; ino && cm->kops.inval_entry && i < d->n;
		     i++) {
			CM_STAT_INC(cm, invalidations);
			cm->kops.inval_entry(cm->kops.arg, ino,
					     d->ents[i].name,
					     strlen(d->ents[i].name));
		}
		n += d->n;
		vc_dir_put(d);
	}
	if (r->have_parent)
		pino = ino_of(cm->ino, &r->parent);
	if (pino && cm->kops.inval_entry) {
		CM_STAT_INC(cm, invalidations);
		cm->kops.inval_entry(cm->kops.arg, pino, r->name,
				     strlen(r->name));
	}
	/* A file with local changes keeps its attributes (its store is
	 * based on them); the rest is forgotten. */
	if (!wb_active(cm, &a->fid))
		meta_forget(cm, &a->fid);
	if (ino && cm->kops.inval_inode) {
		CM_STAT_INC(cm, invalidations);
		/* -1: attributes only; a directory also drops its pages
		 * (readdir), a file keeps its data (tagged by DV). */
		cm->kops.inval_inode(cm->kops.arg, ino,
				     a->type == PROTO_T_DIR ? 0 : -1, 0);
	}
	ctl_reply_ok(r->call, json_pack("{s:I}", "entries_dropped",
					(json_int_t)n));
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
	struct fjob *j;
	uint32_t vol;
	size_t cap;
	int err;
};

static int
collect_file(const struct cs_info *ci, void *arg)
{
	struct vol_files *v = arg;
	struct fjob *j = v->j;
	struct fid fid;

	if (ci->key.vol != v->vol)
		return 0;
	fid.vol = ci->key.vol;
	memcpy(fid.oid, ci->key.fid, sizeof(fid.oid));
	/* Chunks of one file are usually in neighbouring slots: look at the
	 * last files only. A file seen twice is flushed twice, harmlessly
	 * (the second finds nothing). */
	for (size_t i = j->n, k = 0; i-- > 0 && k < 8; k++)
		if (fid_eq(&j->fids[i], &fid))
			return 0;
	if (fjob_add(j, &fid, &v->cap) < 0) {
		v->err = -ENOMEM;
		return 1;
	}
	return 0;
}

static void
h_flushvolume(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	      json_t *args)
{
	struct cm *cm = arg;
	struct proto_volinfo vi;
	struct vol_files v = {0};

	(void)peer;
	(void)args;
	if (cm_volinfo(cm, &vi) < 0) {
		ctl_reply_err(call, EAGAIN, "the volume is not known yet");
		return;
	}
	v.j = fjob_new(cm, call);
	if (!v.j)
		return;
	v.vol = vi.id;
	/* NEEDSWORK: one pass over the whole index on the loop thread; split
	 * it for very large caches. */
	cs_iterate(cm->cs, collect_file, &v);
	if (v.err < 0) {
		ctl_reply_err(call, v.err, NULL);
		fjob_free(v.j);
		return;
	}
	fjob_pump(v.j);
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
	pin_ctl_unpin(r->cm, r->call, &r->peer, a, r->path, r->recursive);
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
	pin_ctl_pins(arg, call, peer,
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
	[CTL_FLUSHALL] = h_flushvolume, /* and then the metadata */
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
	struct ctl_limits lim;
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
	ctl_server_get_limits(ctl_srv, &lim);
	lim.max_conns_per_uid = cm->cfg.ctl_conns_per_uid;
	ctl_server_set_limits(ctl_srv, &lim);
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
