/*
 * meta.c - metadata fetches and invalidation for cairnd.
 *
 * Everything here except meta_cached_*() runs on the loop thread, so the
 * table of outstanding wants needs no lock. It never replies to FUSE: a
 * parked request gives a callback, and the FUSE front retries the request
 * from the cache when the callback says the data is there.
 */
#include "config.h"

#include <errno.h>
#include <sys/queue.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "chunkstore/cs.h"
#include "cm/http.h"
#include "cm/inode.h"
#include "cm/meta.h"
#include "cm/vc.h"
#include "common/log.h"
#include "common/util.h"

enum meta_kind { MK_ATTR, MK_DIR, MK_LINK, MK_XATTR };

struct meta_waiter {
	meta_cb cb;
	void *arg;
	SLIST_ENTRY(meta_waiter) link;
};
SLIST_HEAD(meta_waiters, meta_waiter);

struct meta_op {
	TAILQ_ENTRY(meta_op) link;
	enum meta_kind kind;
	struct fid fid;
	bool sent;
	struct meta_waiters waiters; /* newest first */
};
TAILQ_HEAD(meta_opq, meta_op);

#define META_RING 1024
#define META_OWN  64 /* our own recent changes, for event_apply() */

struct meta {
	struct meta_opq ops;	 /* every op not yet completed */
	/* The FIDs of the last META_RING events, so a reply that left the
	 * server before an event about its object is not trusted. */
	uint64_t gen;		 /* events applied so far */
	struct {
		struct fid fid;
		uint64_t gen;
	} ring[META_RING];
	/* Our last META_OWN changes (meta_own_change()): an attr event
	 * about one of these FIDs with a seq up to the one noted was ours,
	 * and the op's reply already gave us its result. */
	struct {
		struct fid fid;
		uint64_t seq;
	} own[META_OWN];
	unsigned own_next;
	size_t attr_unsent;	 /* MK_ATTR ops waiting for a batch */
	struct event *flush_ev;	 /* sends the attr batch */
	bool shutting;
};

/* A POST getattr in flight: the ops (or, for revalidation, bare FIDs). */
struct attr_batch {
	struct cm *cm;
	uint64_t gen; /* meta->gen when sent */
	size_t n;
	struct meta_op **ops; /* NULL for a revalidation batch */
	struct fid *fids;
};

static void apply_attr(struct cm *cm, const struct proto_attr *a, bool store,
		       bool from_listing);
static void gone(struct cm *cm, const struct fid *fid);

/* --- small helpers --- */

/* Did an event about @fid arrive after generation @since? */
static bool
changed_since(struct meta *m, const struct fid *fid, uint64_t since)
{
	if (m->gen - since >= META_RING)
		return true; /* too many to tell: assume so */
	for (uint64_t g = since + 1; g <= m->gen; g++)
		if (fid_eq(&m->ring[g % META_RING].fid, fid))
			return true;
	return false;
}

static void
kinval_inode(struct cm *cm, uint64_t ino, int64_t off, int64_t len)
{
	if (!ino || !cm->loop.kops.inval_inode)
		return;
	CM_STAT_INC(&cm->st, invalidations);
	cm->loop.kops.inval_inode(cm->loop.kops.arg, ino, off, len);
}

static void
kinval_entry(struct cm *cm, uint64_t parent, const char *name, size_t len)
{
	if (!parent || !cm->loop.kops.inval_entry)
		return;
	CM_STAT_INC(&cm->st, invalidations);
	cm->loop.kops.inval_entry(cm->loop.kops.arg, parent, name, len);
}

static int
mkpath(struct cm *cm, char *buf, size_t len, const char *what,
       const struct fid *fid)
{
	char fs[FID_STRLEN];
	int n;

	if (fid)
		n = snprintf(buf, len, "/v1/vol/%s/%s/%s", cm->cfg.volume,
			     what, fid_fmt(fid, fs));
	else
		n = snprintf(buf, len, "/v1/vol/%s/%s", cm->cfg.volume, what);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static void
op_complete(struct cm *cm, struct meta_op *op, int err)
{
	struct meta_waiters ws = op->waiters;
	struct meta_waiter *w;

	TAILQ_REMOVE(&cm->meta->ops, op, link);
	free(op);
	while ((w = SLIST_FIRST(&ws))) {
		SLIST_REMOVE_HEAD(&ws, link);
		if (w->cb)
			w->cb(cm, w->arg, err);
		free(w);
	}
}

static struct meta_op *
op_find(struct meta *m, enum meta_kind kind, const struct fid *fid)
{
	struct meta_op *op;

	TAILQ_FOREACH(op, &m->ops, link)
	if (op->kind == kind && fid_eq(&op->fid, fid))
		return op;
	return NULL;
}

/* Find or create the op for (@kind, @fid) and add a waiter. @return the op
 * and *fresh = true if it is new (the caller must start it), or NULL after
 * calling @cb with -ENOMEM. */
static struct meta_op *
op_join(struct cm *cm, enum meta_kind kind, const struct fid *fid,
	meta_cb cb, void *arg, bool *fresh)
{
	struct meta *m = cm->meta;
	struct meta_op *op;
	struct meta_waiter *w;

	*fresh = false;
	if (!m || m->shutting) {
		if (cb)
			cb(cm, arg, -ECANCELED);
		return NULL;
	}
	w = calloc(1, sizeof(*w));
	op = op_find(m, kind, fid);
	if (!op) {
		op = calloc(1, sizeof(*op));
		if (op) {
			op->kind = kind;
			op->fid = *fid;
			TAILQ_INSERT_TAIL(&m->ops, op, link);
			*fresh = true;
		}
	}
	if (!op || !w) {
		if (op && *fresh) {
			TAILQ_REMOVE(&m->ops, op, link);
			free(op);
		}
		free(w);
		if (cb)
			cb(cm, arg, -ENOMEM);
		return NULL;
	}
	w->cb = cb;
	w->arg = arg;
	SLIST_INSERT_HEAD(&op->waiters, w, link);
	return op;
}

static void
note_net(struct cm *cm, int err)
{
	int was = atomic_exchange(&cm->online, err == 0);

	if (was && err)
		log_warn(LOG_META, "server '%s' unreachable: %s",
			 cm->cfg.server, strerror(-err));
	else if (!was && !err)
		log_info(LOG_META, "server '%s' reachable again",
			 cm->cfg.server);
}

/* The errno a finished request stands for; tracks reachability. */
static int
result_errno(struct cm *cm, const struct http_result *res)
{
	if (res->err) {
		if (res->err != -ECANCELED)
			note_net(cm, res->err);
		return res->err == -ECANCELED ? -ECANCELED : -EIO;
	}
	note_net(cm, 0);
	return cm_http_errno(0, res->status, res->body, res->body_len);
}

static struct http_req *
submit(struct cm *cm, const char *method, const char *path, const void *body,
       size_t blen, http_done_fn done, void *arg)
{
	struct http_request r = {
		.method = method,
		.path = path,
		.body = body,
		.body_len = blen,
		.timeout_ms = (unsigned)cm->cfg.fetch_timeout_ms,
		.on_done = done,
		.arg = arg,
	};

	return http_submit(cm->http, &r);
}

/* --- cached lookups (any thread) --- */

int
meta_cached_attr(struct cm *cm, const struct fid *fid, struct proto_attr *out)
{
	struct ino_ent *e;
	int rc;

	ino_lock(cm->ino);
	e = ino_find_locked(cm->ino, fid);
	if (e && e->have_attr) {
		*out = e->attr;
		ino_unlock(cm->ino);
		if (cm->mhooks.overlay)
			cm->mhooks.overlay(cm, out);
		return 0;
	}
	ino_unlock(cm->ino);
	rc = vc_get_attr(cm->vc, fid, out);
	if (rc < 0)
		return cm->mhooks.orphan_attr &&
				       cm->mhooks.orphan_attr(cm, fid, out) == 0
			       ? 0
			       : rc;
	ino_lock(cm->ino);
	e = ino_find_locked(cm->ino, fid);
	if (e && !e->have_attr) {
		e->attr = *out;
		e->have_attr = true;
	}
	ino_unlock(cm->ino);
	if (cm->mhooks.overlay)
		cm->mhooks.overlay(cm, out);
	return 0;
}

int
meta_cached_dir(struct cm *cm, const struct fid *fid, struct vc_dir **out)
{
	struct proto_attr a;
	struct ino_ent *e;
	struct vc_dir *d = NULL;
	int rc;

	*out = NULL;
	rc = meta_cached_attr(cm, fid, &a);
	if (rc < 0)
		return rc;
	if (a.type != PROTO_T_DIR)
		return -ENOTDIR;
	ino_lock(cm->ino);
	e = ino_find_locked(cm->ino, fid);
	if (e && e->dir && e->dir->dv == a.dv)
		d = vc_dir_get(e->dir);
	ino_unlock(cm->ino);
	if (d) {
		*out = d;
		return 0;
	}
	rc = vc_get_dir(cm->vc, fid, &d);
	if (rc < 0)
		return rc;
	if (d->dv != a.dv) {
		vc_dir_put(d);
		return -ENOENT;
	}
	ino_lock(cm->ino);
	e = ino_find_locked(cm->ino, fid);
	if (e && (!e->dir || e->dir->dv != d->dv)) {
		vc_dir_put(e->dir);
		e->dir = vc_dir_get(d);
	}
	ino_unlock(cm->ino);
	*out = d;
	return 0;
}

/* --- attributes: batches of POST getattr --- */

static void attr_done(void *arg, const struct http_result *res);

static int
send_attr_batch(struct cm *cm, struct attr_batch *b)
{
	char path[128];
	char *body;
	size_t blen;
	int rc;

	rc = mkpath(cm, path, sizeof(path), "getattr", NULL);
	if (rc < 0)
		return rc;
	b->gen = cm->meta->gen;
	body = proto_getattr_req_encode(b->fids, b->n, &blen);
	if (!body)
		return -errno;
	CM_STAT_INC(&cm->st, getattr_reqs);
	CM_STAT_ADD(&cm->st, getattr_fids, b->n);
	if (!submit(cm, "POST", path, body, blen, attr_done, b))
		rc = -errno;
	free(body);
	return rc;
}

static void
batch_free(struct attr_batch *b)
{
	if (!b)
		return;
	free(b->ops);
	free(b->fids);
	free(b);
}

static struct attr_batch *
batch_new(struct cm *cm, size_t n, bool with_ops)
{
	struct attr_batch *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->cm = cm;
	b->fids = calloc(n ? n : 1, sizeof(*b->fids));
	if (with_ops)
		b->ops = calloc(n ? n : 1, sizeof(*b->ops));
	if (!b->fids || (with_ops && !b->ops)) {
		batch_free(b);
		return NULL;
	}
	return b;
}

static void
flush_attrs(evutil_socket_t fd, short what, void *arg)
{
	struct cm *cm = arg;
	struct meta *m = cm->meta;
	struct meta_op *op, *nx;
	struct attr_batch *b;
	size_t n;
	int rc;

	(void)fd;
	(void)what;
	while (m->attr_unsent > 0) {
		n = m->attr_unsent < PROTO_GETATTR_MAX ? m->attr_unsent
						       : PROTO_GETATTR_MAX;
		b = batch_new(cm, n, true);
		if (!b)
			rc = -ENOMEM;
		TAILQ_FOREACH(op, &m->ops, link)
		{
			if (!b || b->n == n)
				break;
			if (op->kind != MK_ATTR || op->sent)
				continue;
			op->sent = true;
			b->ops[b->n] = op;
			b->fids[b->n++] = op->fid;
		}
		if (!b)
			break;
		m->attr_unsent -= b->n;
		rc = send_attr_batch(cm, b);
		if (rc < 0) {
			log_err(LOG_META, "cannot send getattr: %s",
				strerror(-rc));
			for (size_t i = 0; i < b->n; i++)
				op_complete(cm, b->ops[i], rc);
			batch_free(b);
		}
	}
	if (m->attr_unsent > 0) {
		/* Out of memory: fail what is left rather than hang it. */
		for (op = TAILQ_FIRST(&m->ops); op; op = nx) {
			nx = TAILQ_NEXT(op, link);
			if (op->kind == MK_ATTR && !op->sent)
				op_complete(cm, op, -ENOMEM);
		}
		m->attr_unsent = 0;
	}
}

void
meta_want_attr(struct cm *cm, const struct fid *fid, meta_cb cb, void *arg)
{
	bool fresh;
	struct meta_op *op = op_join(cm, MK_ATTR, fid, cb, arg, &fresh);

	if (!op || !fresh)
		return;
	cm->meta->attr_unsent++;
	/* Batch everything wanted in this loop iteration into one POST. */
	event_active(cm->meta->flush_ev, EV_TIMEOUT, 0);
}

static void
attr_done(void *arg, const struct http_result *res)
{
	struct attr_batch *b = arg;
	struct cm *cm = b->cm;
	struct proto_attr *attrs = NULL;
	int *errs = NULL;
	size_t n = 0;
	int rc;

	rc = result_errno(cm, res);
	if (rc == 0) {
		rc = proto_attrs_decode(res->body, res->body_len, &attrs,
					&errs, &n);
		if (rc == 0 && n != b->n)
			rc = -EINVAL;
		if (rc < 0) {
			log_err(LOG_META, "bad getattr reply: %s",
				strerror(-rc));
			rc = -EIO;
		}
	}
	for (size_t i = 0; i < b->n; i++) {
		int err = rc;

		if (rc == 0 && !fid_eq(&attrs[i].fid, &b->fids[i]))
			err = -EIO;
		else if (rc == 0 && errs[i])
			err = -errs[i];
		if (rc == 0 && changed_since(cm->meta, &b->fids[i], b->gen)) {
			/* Older than an event about it: ask again, and let
			 * the waiters retry (they join the new request). */
			meta_want_attr(cm, &b->fids[i], NULL, NULL);
		} else if (rc == 0 && err == 0) {
			apply_attr(cm, &attrs[i], true, false);
		} else if (rc == 0 && err == -ENOENT) {
			gone(cm, &b->fids[i]);
		}
		if (b->ops)
			op_complete(cm, b->ops[i], err);
	}
	free(attrs);
	free(errs);
	batch_free(b);
}

void
meta_drop_file(struct cm *cm, const struct fid *fid)
{
	struct ino_ent *e;
	uint64_t ino = 0;

	ino_lock(cm->ino);
	e = ino_find_locked(cm->ino, fid);
	if (e) {
		e->have_attr = false;
		e->opened = false; /* no keep_cache at the next open */
		ino = e->ino;
	}
	ino_unlock(cm->ino);
	vc_del_attr(cm->vc, fid);
	kinval_inode(cm, ino, 0, 0);
}

void
meta_drop_attr(struct cm *cm, const struct fid *fid)
{
	struct ino_ent *e;

	ino_lock(cm->ino);
	e = ino_find_locked(cm->ino, fid);
	if (e)
		e->have_attr = false;
	ino_unlock(cm->ino);
	vc_del_attr(cm->vc, fid);
}

/* Forget every cached record of @fid (fs flushmeta, flushall). */
void
meta_forget(struct cm *cm, const struct fid *fid)
{
	struct ino_ent *e;
	struct vc_dir *old = NULL;

	ino_lock(cm->ino);
	e = ino_find_locked(cm->ino, fid);
	if (e) {
		e->have_attr = false;
		old = e->dir;
		e->dir = NULL;
	}
	ino_unlock(cm->ino);
	vc_dir_put(old);
	vc_forget(cm->vc, fid);
}

/* --- directories --- */

/* A listing being fetched, one page after the other (protocol version 2;
 * a version 1 server answers the first request with everything). */
struct dir_req {
	struct cm *cm;
	struct meta_op *op;
	uint64_t gen;
	struct proto_dir acc;	     /* the pages so far */
	bool have;		     /* acc holds the first page */
	bool whole;		     /* ask for everything at once */
	int restarts;		     /* the directory changed mid-way */
	char next[PROTO_CURSOR_MAX]; /* the page to ask for, "" = first */
};

/* Pages of one listing must all come from one DV of the directory; when
 * it changes mid-way we start over. After DIR_RESTARTS of those, the last
 * try asks for the whole listing in one reply (the server reads it in one
 * hold of its lock), so a directory that changes faster than it can be
 * paged through still lists, within the 64 MiB of one reply. */
#define DIR_RESTARTS 8

static void dir_done(void *arg, const struct http_result *res);

/* Ask for the page dr->next names (the first one if ""). @return 0 or
 * -errno. */
static int
dir_send(struct dir_req *dr)
{
	struct cm *cm = dr->cm;
	char path[192 + PROTO_CURSOR_MAX];
	size_t n;
	int rc = mkpath(cm, path, sizeof(path) - PROTO_CURSOR_MAX - 32, "dir",
			&dr->op->fid);

	if (rc)
		return rc;
	n = strlen(path);
	if (!dr->whole)
		snprintf(path + n, sizeof(path) - n, "?limit=%u%s%s",
			 PROTO_DIR_PAGE_MAX, dr->next[0] ? "&cursor=" : "",
			 dr->next);
	if (!submit(cm, "GET", path, NULL, 0, dir_done, dr))
		return errno ? -errno : -ENOMEM;
	return 0;
}

/* Forget the pages so far and ask for the first one again. */
static int
dir_restart(struct dir_req *dr)
{
	proto_dir_release(&dr->acc);
	dr->have = false;
	dr->next[0] = 0;
	dr->gen = dr->cm->meta->gen;
	dr->whole = ++dr->restarts >= DIR_RESTARTS;
	log_debug(LOG_META, "directory changed while listed: starting over");
	return dir_send(dr);
}

/* Turn the result of asking for another page into dir_page()'s. */
static int
asked(int rc)
{
	return rc < 0 ? rc : 1;
}

/* One page arrived: add it to dr->acc. @return 1 when another page was
 * asked for (dr lives on), 0 when dr->acc is the whole listing, -errno. */
static int
dir_page(struct dir_req *dr, const struct http_result *res)
{
	struct cm *cm = dr->cm;
	struct proto_dir page;
	int rc = result_errno(cm, res);

	if (rc == -ESTALE && dr->have && !dr->whole) {
		/* Our cursor is for a DV the directory has left. */
		return asked(dir_restart(dr));
	}
	if (rc)
		return rc;
	rc = proto_dir_page_decode(res->body, res->body_len, !dr->have, &page,
				   dr->next);
	if (rc == 0 && !fid_eq(&page.dir.fid, &dr->op->fid)) {
		proto_dir_release(&page);
		rc = -EINVAL;
	}
	if (rc == 0 && dr->have && page.dir.dv != dr->acc.dir.dv) {
		proto_dir_release(&page);
		if (!dr->whole)
			return asked(dir_restart(dr));
		rc = -EIO;
	} else if (rc == 0 && dr->have) {
		rc = proto_dir_append(&dr->acc, &page);
	} else if (rc == 0) {
		dr->acc = page;
		dr->have = true;
	}
	if (rc == 0 && dr->next[0])
		return asked(dir_send(dr));
	/* Each page was checked alone; a name on two pages is caught
	 * here. */
	if (rc == 0)
		rc = proto_dir_check_names(&dr->acc);
	if (rc < 0 && rc != -ENOMEM)
		log_err(LOG_META, "bad directory reply: %s", strerror(-rc));
	return rc == -ENOMEM ? rc : rc < 0 ? -EIO : 0;
}

/* Tell the kernel which names of directory @ino changed between @old and
 * @new (both sorted by name through byname). */
static void
diff_entries(struct cm *cm, uint64_t ino, const struct vc_dir *old,
	     const struct vc_dir *nw)
{
	size_t i = 0, j = 0;

	while (i < old->n || j < nw->n) {
		const struct vc_dirent *a =
			i < old->n ? &old->ents[old->byname[i]] : NULL;
		const struct vc_dirent *b =
			j < nw->n ? &nw->ents[nw->byname[j]] : NULL;
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
			kinval_entry(cm, ino, a->name, a->namelen);
			i++;
		} else if (c > 0) {
			kinval_entry(cm, ino, b->name, b->namelen);
			j++;
		} else {
			if (!fid_eq(&a->fid, &b->fid))
				kinval_entry(cm, ino, a->name, a->namelen);
			i++;
			j++;
		}
	}
}

static void
dir_done(void *arg, const struct http_result *res)
{
	struct dir_req *dr = arg;
	struct cm *cm = dr->cm;
	struct proto_dir pd = {0};
	struct vc_dir *nw = NULL, *old = NULL;
	struct ino_ent *e;
	uint64_t ino = 0;
	struct fid fid = dr->op->fid;
	bool refetch = false;
	int rc;

	rc = dir_page(dr, res);
	if (rc > 0)
		return; /* the next page is on its way */
	pd = dr->acc;
	memset(&dr->acc, 0, sizeof(dr->acc));
	if (rc == 0 && changed_since(cm->meta, &dr->op->fid, dr->gen)) {
		/* The directory changed after this reply left the server:
		 * fetch it again once this op is done (below). */
		refetch = true;
		goto out;
	}
	if (rc == -ENOENT)
		gone(cm, &dr->op->fid);
	if (rc < 0)
		goto out;
	nw = vc_dir_from_proto(&pd);
	if (!nw) {
		rc = -ENOMEM;
		goto out;
	}
	/* Compare every entry with what we knew, so changed files lose
	 * their stale chunks and kernel caches, then store all at once. */
	for (size_t i = 0; i < pd.n; i++)
		apply_attr(cm, &pd.ents[i].attr, false, true);
	apply_attr(cm, &pd.dir, false, true);
	rc = vc_put_dir(cm->vc, &pd);
	if (rc < 0)
		log_warn(LOG_META, "cannot store listing: %s", strerror(-rc));
	rc = 0;
	ino_lock(cm->ino);
	e = ino_find_locked(cm->ino, &pd.dir.fid);
	if (e) {
		ino = e->ino;
		old = e->dir;
		e->dir = vc_dir_get(nw);
	}
	ino_unlock(cm->ino);
	if (ino && old && old->dv != nw->dv) {
		diff_entries(cm, ino, old, nw);
		kinval_inode(cm, ino, 0, 0);
	}
	vc_dir_put(old);
	vc_dir_put(nw);
out:
	proto_dir_release(&pd);
	op_complete(cm, dr->op, rc);
	free(dr);
	if (refetch)
		meta_want_dir(cm, &fid, NULL, NULL);
}

void
meta_want_dir(struct cm *cm, const struct fid *fid, meta_cb cb, void *arg)
{
	bool fresh;
	struct meta_op *op = op_join(cm, MK_DIR, fid, cb, arg, &fresh);
	struct dir_req *dr;
	int rc = 0;

	if (!op || !fresh)
		return;
	op->sent = true;
	dr = calloc(1, sizeof(*dr));
	if (!dr)
		rc = -ENOMEM;
	if (rc == 0) {
		dr->cm = cm;
		dr->op = op;
		dr->gen = cm->meta->gen;
		CM_STAT_INC(&cm->st, dir_fetches);
		rc = dir_send(dr);
	}
	if (rc < 0) {
		free(dr);
		op_complete(cm, op, rc);
	}
}

/* --- symlinks and xattrs --- */

struct one_req {
	struct cm *cm;
	struct meta_op *op;
	uint64_t gen;
};

static void
link_done(void *arg, const struct http_result *res)
{
	struct one_req *r = arg;
	struct cm *cm = r->cm;
	char *target = NULL;
	int rc;

	rc = result_errno(cm, res);
	if (rc == 0) {
		rc = proto_link_decode(res->body, res->body_len, &target);
		if (rc < 0) {
			log_err(LOG_META, "bad readlink reply: %s",
				strerror(-rc));
			rc = -EIO;
		}
	}
	if (rc == 0)
		rc = vc_put_link(cm->vc, &r->op->fid, target);
	if (rc == -ENOENT)
		gone(cm, &r->op->fid);
	free(target);
	op_complete(cm, r->op, rc);
	free(r);
}

static void
xattr_done(void *arg, const struct http_result *res)
{
	struct one_req *r = arg;
	struct cm *cm = r->cm;
	struct proto_xattr *x = NULL;
	struct proto_attr a;
	uint64_t dv;
	size_t n = 0;
	int rc;

	rc = result_errno(cm, res);
	if (rc == 0) {
		rc = proto_xattrs_decode(res->body, res->body_len, &dv, &x, &n);
		if (rc < 0) {
			log_err(LOG_META, "bad xattr reply: %s",
				strerror(-rc));
			rc = -EIO;
		}
	}
	/* Stamp the set with the ctime we hold: if an attr event raced with
	 * this fetch, the attributes are gone or newer and the stamp will not
	 * match, so the set is refetched. */
	if (rc == 0 && changed_since(cm->meta, &r->op->fid, r->gen))
		rc = -EAGAIN;
	else if (rc == 0 && meta_cached_attr(cm, &r->op->fid, &a) == 0)
		rc = vc_put_xattrs(cm->vc, &r->op->fid, a.ctime_ns, x, n);
	else if (rc == 0)
		rc = -EAGAIN;
	if (rc == -ENOENT)
		gone(cm, &r->op->fid);
	proto_xattrs_free(x, n);
	op_complete(cm, r->op, rc);
	free(r);
}

static void
want_one(struct cm *cm, enum meta_kind kind, const char *what,
	 const struct fid *fid, meta_cb cb, void *arg, http_done_fn done)
{
	char path[192];
	bool fresh;
	struct meta_op *op = op_join(cm, kind, fid, cb, arg, &fresh);
	struct one_req *r;
	int rc;

	if (!op || !fresh)
		return;
	op->sent = true;
	rc = mkpath(cm, path, sizeof(path), what, fid);
	r = calloc(1, sizeof(*r));
	if (rc == 0 && !r)
		rc = -ENOMEM;
	if (rc == 0) {
		r->cm = cm;
		r->op = op;
		r->gen = cm->meta->gen;
		if (!submit(cm, "GET", path, NULL, 0, done, r))
			rc = -errno;
	}
	if (rc < 0) {
		free(r);
		op_complete(cm, op, rc);
	}
}

void
meta_want_link(struct cm *cm, const struct fid *fid, meta_cb cb, void *arg)
{
	CM_STAT_INC(&cm->st, link_fetches);
	want_one(cm, MK_LINK, "link", fid, cb, arg, link_done);
}

void
meta_want_xattrs(struct cm *cm, const struct fid *fid, meta_cb cb, void *arg)
{
	CM_STAT_INC(&cm->st, xattr_fetches);
	want_one(cm, MK_XATTR, "xattr", fid, cb, arg, xattr_done);
}

/* --- applying news --- */

/* The object is gone from the server: drop everything about it. */
static void
gone(struct cm *cm, const struct fid *fid)
{
	struct ino_ent *e;
	struct vc_dir *old = NULL;
	uint64_t ino = 0;

	ino_lock(cm->ino);
	e = ino_find_locked(cm->ino, fid);
	if (e) {
		ino = e->ino;
		e->have_attr = false;
		old = e->dir;
		e->dir = NULL;
	}
	ino_unlock(cm->ino);
	vc_dir_put(old);
	vc_forget(cm->vc, fid);
	/* A file open here keeps its chunks (unlinked while open, or
	 * written): wb.c drops them when the last handle goes. */
	if (!cm->mhooks.active || !cm->mhooks.active(cm, fid))
		cs_invalidate(cm->cs, fid->vol, fid->oid, UINT64_MAX);
	kinval_inode(cm, ino, 0, 0);
}

static bool
same_attr(const struct proto_attr *a, const struct proto_attr *b)
{
	return a->type == b->type && a->mode == b->mode && a->uid == b->uid &&
	       a->gid == b->gid && a->size == b->size &&
	       a->nlink == b->nlink && a->mtime_ns == b->mtime_ns &&
	       a->ctime_ns == b->ctime_ns && a->atime_ns == b->atime_ns;
}

/*
 * A fresh attribute from the server. Compare with what we held and drop
 * what it makes stale: chunks below the new DV, the kernel's page cache
 * and attributes. A directory whose DV moved and that the kernel knows is
 * refetched at once (unless this news came with its listing), so entry
 * invalidations go out within the second.
 */
static void
apply_attr(struct cm *cm, const struct proto_attr *a, bool store,
	   bool from_listing)
{
	struct proto_attr old;
	struct ino_ent *e;
	bool have_old = false;
	uint64_t ino = 0;

	ino_lock(cm->ino);
	e = ino_find_locked(cm->ino, &a->fid);
	if (e) {
		ino = e->ino;
		if (e->have_attr) {
			old = e->attr;
			have_old = true;
		}
		e->attr = *a;
		e->have_attr = true;
	}
	ino_unlock(cm->ino);
	if (!have_old)
		have_old = vc_get_attr(cm->vc, &a->fid, &old) == 0;
	if (store)
		vc_put_attr(cm->vc, a);
	if (!have_old)
		return;
	if (old.dv != a->dv || old.type != a->type) {
		if (a->type == PROTO_T_FILE)
			cs_invalidate(cm->cs, a->fid.vol, a->fid.oid, a->dv);
		if (a->type == PROTO_T_DIR && ino && !from_listing)
			meta_want_dir(cm, &a->fid, NULL, NULL);
		kinval_inode(cm, ino, 0, 0);
		/* Also when no event said so (bulk revalidation). */
		if (cm->mhooks.dv_changed)
			cm->mhooks.dv_changed(cm, a);
	} else if (!same_attr(&old, a)) {
		kinval_inode(cm, ino, -1, 0);
	}
	if (old.ctime_ns != a->ctime_ns)
		vc_del_xattrs(cm->vc, &a->fid);
}

/* --- our own changes (mut.c) --- */

void
meta_own_change(struct cm *cm, const struct fid *fid, uint64_t event_seq)
{
	struct meta *m = cm->meta;

	if (!m || !event_seq)
		return;
	m->own[m->own_next % META_OWN].fid = *fid;
	m->own[m->own_next % META_OWN].seq = event_seq;
	m->own_next++;
}

/* Does a reply we applied already include event @ev? */
static bool
own_covers(struct meta *m, const struct proto_event *ev)
{
	for (unsigned i = 0; i < META_OWN; i++)
		if (m->own[i].seq && ev->seq <= m->own[i].seq &&
		    fid_eq(&m->own[i].fid, &ev->fid))
			return true;
	return false;
}

void
meta_local_attr(struct cm *cm, const struct proto_attr *a)
{
	apply_attr(cm, a, true, true);
}

/* Store @a as the cached attributes and tell the kernel; with
 * @pages_current the kernel's pages are @a's data (our own store). */
static void
install_attr(struct cm *cm, const struct proto_attr *a, bool pages_current)
{
	struct ino_ent *e;
	uint64_t ino = 0;

	vc_put_attr(cm->vc, a);
	ino_lock(cm->ino);
	e = ino_find_locked(cm->ino, &a->fid);
	if (e) {
		ino = e->ino;
		e->attr = *a;
		e->have_attr = true;
		if (pages_current)
			e->open_dv = a->dv;
	}
	ino_unlock(cm->ino);
	kinval_inode(cm, ino, -1, 0);
}

void
meta_stored_attr(struct cm *cm, const struct proto_attr *a)
{
	install_attr(cm, a, true);
}

void
meta_dir_changed(struct cm *cm, const struct proto_attr *a)
{
	apply_attr(cm, a, true, false);
}

/* A directory's new attributes @a and its edited listing @nw (our
 * reference, given up) become the cached ones. */
static void
install_dir(struct cm *cm, const struct proto_attr *a, struct vc_dir *nw)
{
	struct vc_dir *prev = NULL;
	struct ino_ent *e;

	vc_put_attr(cm->vc, a);
	ino_lock(cm->ino);
	e = ino_find_locked(cm->ino, &a->fid);
	if (e) {
		e->attr = *a;
		e->have_attr = true;
		prev = e->dir;
		e->dir = vc_dir_get(nw);
	}
	ino_unlock(cm->ino);
	vc_dir_put(prev);
	vc_dir_put(nw);
}

/* --- disconnected edits --- */

uint64_t
meta_local_dv(void)
{
	static _Atomic uint64_t next;
	uint64_t v = atomic_load(&next);

	if (!v) {
		/* Unique across restarts: milliseconds since the epoch. */
		uint64_t seed = CM_DV_LOCAL | ((uint64_t)util_wall_ns() /
					       1000000) << 16;

		atomic_compare_exchange_strong(&next, &v, seed);
	}
	return atomic_fetch_add(&next, 1) | CM_DV_LOCAL;
}

void
meta_offline_attr(struct cm *cm, const struct proto_attr *a)
{
	install_attr(cm, a, false);
}

int
meta_offline_dir(struct cm *cm, const struct fid *dir, const char *del,
		 const char *add, const struct proto_attr *add_attr,
		 int nlink_delta, struct proto_attr *dir_after)
{
	struct vc_dir *old = NULL, *nw = NULL;
	struct proto_attr a;
	int rc;

	rc = meta_cached_dir(cm, dir, &old);
	if (rc < 0)
		return rc;
	rc = meta_cached_attr(cm, dir, &a);
	if (rc < 0) {
		vc_dir_put(old);
		return rc;
	}
	a.dv = meta_local_dv();
	a.mtime_ns = a.ctime_ns = util_wall_ns();
	if (nlink_delta < 0 && a.nlink > 2)
		a.nlink--;
	else if (nlink_delta > 0)
		a.nlink++;
	rc = vc_dir_edit(cm->vc, old, &a, del, add, add_attr, &nw);
	vc_dir_put(old);
	if (rc < 0)
		return rc;
	install_dir(cm, &a, nw);
	*dir_after = a;
	return 0;
}

int
meta_offline_newdir(struct cm *cm, const struct proto_attr *a)
{
	struct proto_dir d;

	memset(&d, 0, sizeof(d));
	d.dir = *a;
	return vc_put_dir(cm->vc, &d);
}

void
meta_local_dir(struct cm *cm, const struct proto_attr *dir_after,
	       const char *del, const char *add,
	       const struct proto_attr *add_attr)
{
	struct vc_dir *old = NULL, *nw = NULL;
	struct ino_ent *e;
	int rc;

	ino_lock(cm->ino);
	e = ino_find_locked(cm->ino, &dir_after->fid);
	if (e && e->dir && e->dir->dv + 1 == dir_after->dv)
		old = vc_dir_get(e->dir);
	ino_unlock(cm->ino);
	if (!old && vc_get_dir(cm->vc, &dir_after->fid, &old) == 0 &&
	    old->dv + 1 != dir_after->dv) {
		vc_dir_put(old);
		old = NULL;
	}
	if (!old) {
		/* Another change came between: the listing we hold (if any)
		 * is not the one the server edited. Fetch it again. */
		apply_attr(cm, dir_after, true, false);
		return;
	}
	rc = vc_dir_edit(cm->vc, old, dir_after, del, add, add_attr, &nw);
	vc_dir_put(old);
	if (rc < 0) {
		log_warn(LOG_META, "cannot update a cached listing: %s",
			 strerror(-rc));
		vc_del_dir(cm->vc, &dir_after->fid);
		apply_attr(cm, dir_after, true, false);
		return;
	}
	install_dir(cm, dir_after, nw);
}

static void
event_apply(struct cm *cm, const struct proto_event *ev)
{
	struct proto_attr a;
	uint64_t ino = 0;
	bool have;
	char fs[FID_STRLEN];

	if (cm->mhooks.defer_event && cm->mhooks.defer_event(cm, ev))
		return; /* looked at again when our change is applied */
	CM_STAT_INC(&cm->st, events);
	log_debug(LOG_META, "event %llu %s '%s' dv %llu",
		  (unsigned long long)ev->seq, proto_ev_name(ev->kind),
		  fid_fmt(&ev->fid, fs), (unsigned long long)ev->dv);
	if (ev->kind == PROTO_EV_DATA || ev->kind == PROTO_EV_ATTR ||
	    ev->kind == PROTO_EV_DIR || ev->kind == PROTO_EV_GONE) {
		struct meta *m = cm->meta;

		m->gen++;
		m->ring[m->gen % META_RING].fid = ev->fid;
		m->ring[m->gen % META_RING].gen = m->gen;
	}
	have = meta_cached_attr(cm, &ev->fid, &a) == 0;
	ino = ino_of(cm->ino, &ev->fid);
	switch (ev->kind) {
	case PROTO_EV_DATA:
		if (have && a.dv == ev->dv)
			return;
		cs_invalidate(cm->cs, ev->fid.vol, ev->fid.oid, ev->dv);
		meta_drop_attr(cm, &ev->fid);
		kinval_inode(cm, ino, 0, 0);
		if (ino)
			meta_want_attr(cm, &ev->fid, NULL, NULL);
		break;
	case PROTO_EV_ATTR:
		if (!have && !ino)
			return;
		/* Attr changes keep the DV, so only the seq tells our own
		 * setattr's event (its reply is applied) from another's. */
		if (have && own_covers(cm->meta, ev)) {
			CM_STAT_INC(&cm->st, own_events);
			return;
		}
		meta_drop_attr(cm, &ev->fid);
		vc_del_xattrs(cm->vc, &ev->fid);
		kinval_inode(cm, ino, -1, 0);
		if (ino)
			meta_want_attr(cm, &ev->fid, NULL, NULL);
		break;
	case PROTO_EV_DIR:
		if (have && a.dv == ev->dv)
			return;
		if (ino) {
			/* Keep serving the old listing until the new one is
			 * here; dir_done() diffs them for the kernel. */
			meta_want_dir(cm, &ev->fid, NULL, NULL);
		} else if (have) {
			vc_del_dir(cm->vc, &ev->fid);
			meta_drop_attr(cm, &ev->fid);
		}
		break;
	case PROTO_EV_GONE:
		if (!have && !ino)
			return;
		gone(cm, &ev->fid);
		break;
	default:
		break;
	}
}

void
meta_event(struct cm *cm, const struct proto_event *ev)
{
	event_apply(cm, ev);
	/* After the caches dropped what changed: pinned objects are fetched
	 * again (pin.h). */
	if (cm->mhooks.applied_event)
		cm->mhooks.applied_event(cm, ev);
}

/* --- bulk revalidation --- */

struct reval {
	struct cm *cm;
	struct attr_batch *b;
	size_t batches;
	int err;
};

static int
reval_send(struct reval *rv)
{
	int rc;

	if (!rv->b || rv->b->n == 0)
		return 0;
	rc = send_attr_batch(rv->cm, rv->b);
	if (rc < 0)
		batch_free(rv->b);
	rv->b = NULL;
	rv->batches++;
	return rc;
}

static int
reval_cb(void *arg, const struct fid *fid)
{
	struct reval *rv = arg;

	if (!rv->b) {
		rv->b = batch_new(rv->cm, PROTO_GETATTR_MAX, false);
		if (!rv->b)
			return -ENOMEM;
	}
	rv->b->fids[rv->b->n++] = *fid;
	if (rv->b->n == PROTO_GETATTR_MAX)
		return reval_send(rv);
	return 0;
}

void
meta_revalidate_all(struct cm *cm)
{
	struct reval rv = {.cm = cm};
	int rc;

	CM_STAT_INC(&cm->st, revalidations);
	rc = vc_iterate_fids(cm->vc, reval_cb, &rv);
	if (rc == 0)
		rc = reval_send(&rv);
	else
		batch_free(rv.b);
	if (rc < 0)
		log_err(LOG_META, "cannot revalidate the cache: %s",
			strerror(-rc));
	else
		log_info(LOG_META, "revalidating cached metadata (%zu getattr "
				 "requests)",
			 rv.batches);
}

/* --- setup --- */

int
meta_new(struct cm *cm, const struct cm_meta_hooks *hooks)
{
	struct meta *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	if (hooks)
		cm->mhooks = *hooks;
	TAILQ_INIT(&m->ops);
	m->flush_ev = event_new(cm->loop.base, -1, 0, flush_attrs, cm);
	if (!m->flush_ev) {
		free(m);
		return -ENOMEM;
	}
	cm->meta = m;
	return 0;
}

void
meta_free(struct cm *cm)
{
	struct meta *m = cm->meta;
	struct meta_op *op;

	if (!m)
		return;
	m->shutting = true;
	while ((op = TAILQ_FIRST(&m->ops)))
		op_complete(cm, op, -ECANCELED);
	event_free(m->flush_ev);
	free(m);
	cm->meta = NULL;
}
