/*
 * mfetch.c - metadata fetches for cairnd (mfetch.h): shared wants, POST
 * getattr batches, paged listings, symlink targets and xattrs, events and
 * bulk revalidation, all applied to the cached metadata through mcache.h.
 *
 * Everything here runs on the loop thread, so the table of outstanding
 * wants needs no lock. It never replies to FUSE: a parked request gives a
 * callback, and the FUSE front retries the request from the cache when
 * the callback says the data is there.
 */
#include "config.h"

#include <errno.h>
#include <sys/queue.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "chunkstore/cs.h"
#include "cm/cm.h"
#include "cm/http.h"
#include "cm/inode.h"
#include "cm/loop.h"
#include "cm/mcache.h"
#include "cm/dstream.h"
#include "cm/mfetch.h"
#include "cm/stats.h"
#include "cm/vc.h"
#include "common/log.h"
#include "common/memtrim.h"
#include "common/util.h"

enum mfetch_kind { MK_ATTR, MK_DIR, MK_LINK, MK_XATTR };

struct mfetch_waiter {
	mfetch_cb cb;
	void *arg;
	bool early; /* a listing's: called at its first page (streams) */
	SLIST_ENTRY(mfetch_waiter) link;
};
SLIST_HEAD(mfetch_waiters, mfetch_waiter);

struct mfetch_op {
	TAILQ_ENTRY(mfetch_op) link;
	enum mfetch_kind kind;
	struct fid fid;
	bool sent;
	struct mfetch_waiters waiters; /* newest first */
	/* MK_DIR: the listing as its pages come, while an OPENDIR reads
	 * it (mfetch_want_dir_stream()); ended and dropped here at the
	 * op's completion. */
	struct dstream *stream;
};
TAILQ_HEAD(mfetch_opq, mfetch_op);

/* Events remembered by FID (changed_since()): a reply asked for more
 * than MF_RING events ago is not trusted for any object. 1,024 was one
 * to five seconds of a churning directory (t2370, ~200-400 events a
 * second), less than one listing of 10,000 entries takes on a loaded
 * machine: every entry's attributes were then dropped, and an ls -l
 * looked up each name with a fetch of the whole directory (150 s and
 * more). 16,384: ~40 s of such churn, 512 KiB. */
#define MF_RING		16384
#define MF_RING_BUCKETS 4096 /* chains of ~4 events, newest first */
#define MF_OWN	64 /* our own recent changes, for event_apply() */

/* Listings kept for an OPENDIR after events overtook them, while the
 * fetch's waiters run (dir_done()): ~60 bytes an entry (a vc_dir). */
#define MF_LATE 1
/* A held listing answers LOOKUPs this long after it came (ms). */
#define MF_HELD_MS 5000

struct mfetch {
	struct mfetch_opq ops; /* every op not yet completed */
	/* The FIDs of the last MF_RING events, so a reply that left the
	 * server before an event about its object is not trusted. Event
	 * g is ring[g % MF_RING]; the events whose FIDs hash alike are
	 * chained from ring_head[], newest first (prev: the generation
	 * of the one before, 0 = none), so changed_since() reads only
	 * the events of its FID's chain since the reply was asked for,
	 * not every event since (a listing asks about each entry). */
	uint64_t gen; /* events applied so far */
	struct {
		struct fid fid;
		uint64_t prev;
	} ring[MF_RING];
	uint64_t ring_head[MF_RING_BUCKETS];
	/* Our last MF_OWN changes (mfetch_own_change()): an attr event
	 * about one of these FIDs with a seq up to the one noted was ours,
	 * and the op's reply already gave us its result. */
	struct {
		struct fid fid;
		uint64_t seq;
	} own[MF_OWN];
	unsigned own_next;
	/* Listings events overtook (mfetch_late_dir()), newest at
	 * late_next - 1. */
	struct {
		struct fid fid;
		struct vc_dir *d;
		uint64_t asked_seq; /* send_seq of its first page */
	} late[MF_LATE];
	unsigned late_next;
	/* The late listing an open handle holds (mfetch_hold_late()):
	 * h is the handle's (open while it has more references than
	 * ours), d the listing that answers LOOKUPs, the handle's or a
	 * newer late one (mfetch_held_renew()), taken at at_ms. */
	struct {
		struct vc_dir *h, *d;
		uint64_t at_ms;
	} held;
	/* Listing requests sent so far (dir_send()): a FUSE worker reads
	 * it when it parks (mfetch_send_seq()), so it is atomic. */
	atomic_uint_fast64_t send_seq;
	size_t attr_unsent;	/* MK_ATTR ops waiting for a batch */
	struct event *flush_ev; /* sends the attr batch */
	struct event *sync_ev;	/* writes pending attributes */
	bool shutting;

	struct cm_loop *loop;
	struct http_client *http;
	struct mcache *mc;
	struct ino_table *ino;
	struct vc *vc;
	struct cs_store *cs;
	struct cm_stats *st;
	atomic_int *online;
	char *volume;
	char *server;
	unsigned timeout_ms;
	struct mfetch_hooks hooks;
};

/* A POST getattr in flight: the ops (or, for revalidation, bare FIDs). */
struct attr_batch {
	struct mfetch *mf;
	uint64_t gen; /* mf->gen when sent */
	size_t n;
	struct mfetch_op **ops; /* NULL for a revalidation batch */
	struct fid *fids;
};

/* --- small helpers --- */

/* Listings keep their entries' attributes pending in memory (mcache.c
 * "Pending attributes"); they go to the cache file SYNC_DELAY_MS after
 * the last listing, SYNC_SLICE a turn of the loop, off the path of the
 * READDIRs that wait for the listing. */
#define SYNC_DELAY_MS 500
#define SYNC_SLICE 2048

static void
sync_attrs(evutil_socket_t fd, short what, void *arg)
{
	struct mfetch *mf = arg;
	struct timeval now = {0, 0};

	(void)fd;
	(void)what;
	if (mcache_sync_attrs(mf->mc, SYNC_SLICE) > 0 && !mf->shutting)
		event_add(mf->sync_ev, &now);
}

/* A listing came: write its attributes once listings stop coming. */
static void
sync_later(struct mfetch *mf)
{
	struct timeval tv = {SYNC_DELAY_MS / 1000, SYNC_DELAY_MS % 1000 * 1000};

	if (mf->sync_ev && !mf->shutting)
		event_add(mf->sync_ev, &tv);
}

/* A fresh attribute: into the cache, and a listing the cache says is due
 * (mcache_apply()) fetched. */
static void
apply_attr(struct mfetch *mf, const struct proto_attr *a, bool store,
	   bool from_listing)
{
	if (mcache_apply(mf->mc, a, store, from_listing))
		mfetch_want_dir(mf, &a->fid, NULL, NULL);
}

/* The same for attributes built by the server before they came (a
 * listing's, a getattr's): one older than what an answer of ours cached
 * meanwhile is not taken (session 11's t4024: a listing built before our
 * store committed gave the file its DV 1 and size 0 after the store's
 * answer; the file read empty and the next write failed as stale, t2366).
 * @return whether @a was taken. */
static bool
apply_fetched(struct mfetch *mf, const struct proto_attr *a, bool store,
	      bool from_listing)
{
	bool taken;

	if (mcache_apply_fetched(mf->mc, a, store, from_listing, &taken))
		mfetch_want_dir(mf, &a->fid, NULL, NULL);
	if (!taken)
		CM_STAT_INC(mf->st, fetched_old);
	return taken;
}

static unsigned
ring_bucket(const struct fid *fid)
{
	return (unsigned)(fid_hash(fid) >> 20) % MF_RING_BUCKETS;
}

/* Note event number m->gen, about @fid. */
static void
ring_add(struct mfetch *m, const struct fid *fid)
{
	unsigned b = ring_bucket(fid);

	m->ring[m->gen % MF_RING].fid = *fid;
	m->ring[m->gen % MF_RING].prev = m->ring_head[b];
	m->ring_head[b] = m->gen;
}

/* Did an event about @fid arrive after generation @since? */
static bool
changed_since(struct mfetch *m, const struct fid *fid, uint64_t since)
{
	if (m->gen - since >= MF_RING)
		return true; /* too many to tell: assume so */
	/* Every generation after @since is still in the ring, and a
	 * chain only goes back in time. */
	for (uint64_t g = m->ring_head[ring_bucket(fid)]; g > since;
	     g = m->ring[g % MF_RING].prev)
		if (fid_eq(&m->ring[g % MF_RING].fid, fid))
			return true;
	return false;
}

static int
mkpath(struct mfetch *mf, char *buf, size_t len, const char *what,
       const struct fid *fid)
{
	char fs[FID_STRLEN];
	int n;

	if (fid)
		n = snprintf(buf, len, "/v1/vol/%s/%s/%s", mf->volume, what,
			     fid_fmt(fid, fs));
	else
		n = snprintf(buf, len, "/v1/vol/%s/%s", mf->volume, what);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static void
op_complete(struct mfetch *mf, struct mfetch_op *op, int err)
{
	struct mfetch_waiters ws = op->waiters;
	struct mfetch_waiter *w;

	TAILQ_REMOVE(&mf->ops, op, link);
	if (op->stream) {
		/* Every page is in (0), or the listing failed: readers past
		 * the end hear which, and no waiter outlives this. */
		dstream_end(op->stream, err);
		dstream_wake(op->stream);
		dstream_put(op->stream);
	}
	free(op);
	while ((w = SLIST_FIRST(&ws))) {
		SLIST_REMOVE_HEAD(&ws, link);
		if (w->cb)
			w->cb(w->arg, err);
		free(w);
	}
}

/* Does anyone wait for @op's result (a waiter with a callback)? */
static bool
op_has_cb(const struct mfetch_op *op)
{
	const struct mfetch_waiter *w;

	SLIST_FOREACH (w, &op->waiters, link)
		if (w->cb)
			return true;
	return false;
}

/* Does an OPENDIR wait for @op's first page (mfetch_want_dir_stream())? */
static bool
op_has_early(const struct mfetch_op *op)
{
	const struct mfetch_waiter *w;

	SLIST_FOREACH (w, &op->waiters, link)
		if (w->early)
			return true;
	return false;
}

/* A page went into @op's stream: the OPENDIRs that wait for its first
 * page go on (their callback finds the stream), and so do the READDIRs
 * that wait for more of it. */
static void
stream_wake(struct mfetch_op *op)
{
	struct mfetch_waiters run = SLIST_HEAD_INITIALIZER(run),
			      keep = SLIST_HEAD_INITIALIZER(keep);
	struct mfetch_waiter *w;

	if (!op->stream)
		return;
	while ((w = SLIST_FIRST(&op->waiters))) {
		SLIST_REMOVE_HEAD(&op->waiters, link);
		if (w->early)
			SLIST_INSERT_HEAD(&run, w, link);
		else
			SLIST_INSERT_HEAD(&keep, w, link);
	}
	while ((w = SLIST_FIRST(&keep))) { /* back, in their order */
		SLIST_REMOVE_HEAD(&keep, link);
		SLIST_INSERT_HEAD(&op->waiters, w, link);
	}
	/* A callback may join this op again: the list is ours. */
	while ((w = SLIST_FIRST(&run))) {
		SLIST_REMOVE_HEAD(&run, link);
		w->cb(w->arg, 0);
		free(w);
	}
	dstream_wake(op->stream);
}

static struct mfetch_op *
op_find(struct mfetch *m, enum mfetch_kind kind, const struct fid *fid)
{
	struct mfetch_op *op;

	TAILQ_FOREACH (op, &m->ops, link)
		if (op->kind == kind && fid_eq(&op->fid, fid))
			return op;
	return NULL;
}

/* Find or create the op for (@kind, @fid) and add a waiter. @return the op
 * and *fresh = true if it is new (the caller must start it), or NULL after
 * calling @cb with -ENOMEM. */
static struct mfetch_op *
op_join(struct mfetch *mf, enum mfetch_kind kind, const struct fid *fid,
	mfetch_cb cb, void *arg, bool *fresh)
{
	struct mfetch_op *op;
	struct mfetch_waiter *w;

	*fresh = false;
	if (!mf || mf->shutting) {
		if (cb)
			cb(arg, -ECANCELED);
		return NULL;
	}
	w = calloc(1, sizeof(*w));
	op = op_find(mf, kind, fid);
	if (!op) {
		op = calloc(1, sizeof(*op));
		if (op) {
			op->kind = kind;
			op->fid = *fid;
			TAILQ_INSERT_TAIL(&mf->ops, op, link);
			*fresh = true;
		}
	}
	if (!op || !w) {
		if (op && *fresh) {
			TAILQ_REMOVE(&mf->ops, op, link);
			free(op);
		}
		free(w);
		if (cb)
			cb(arg, -ENOMEM);
		return NULL;
	}
	w->cb = cb;
	w->arg = arg;
	SLIST_INSERT_HEAD(&op->waiters, w, link);
	return op;
}

static void
note_net(struct mfetch *mf, int err)
{
	int was = atomic_exchange(mf->online, err == 0);

	if (was && err)
		log_warn(LOG_META, "server '%s' unreachable: %s", mf->server,
			 strerror(-err));
	else if (!was && !err)
		log_info(LOG_META, "server '%s' reachable again", mf->server);
}

/* The errno a finished request stands for; tracks reachability. */
static int
result_errno(struct mfetch *mf, const struct http_result *res)
{
	if (res->err == -E2BIG) {
		/* The server answered, past the reply's bound (http.c's
		 * max_body, 64 MiB for a listing): a bad reply, not an
		 * unreachable server (t2371). */
		note_net(mf, 0);
		log_err(LOG_META, "bad reply: larger than its bound, refused");
		return -EIO;
	}
	if (res->err) {
		if (res->err != -ECANCELED)
			note_net(mf, res->err);
		return res->err == -ECANCELED ? -ECANCELED : -EIO;
	}
	note_net(mf, 0);
	return cm_http_errno(0, res->status, res->body, res->body_len);
}

static struct http_req *
submit(struct mfetch *mf, const char *method, const char *path,
       const void *body, size_t blen, http_done_fn done, void *arg)
{
	struct http_request r = {
		.method = method,
		.path = path,
		.body = body,
		.body_len = blen,
		.timeout_ms = mf->timeout_ms,
		.on_done = done,
		.arg = arg,
	};

	return http_submit(mf->http, &r);
}

/* --- attributes: batches of POST getattr --- */

static void attr_done(void *arg, const struct http_result *res);

static int
send_attr_batch(struct mfetch *mf, struct attr_batch *b)
{
	char path[128];
	char *body;
	size_t blen;
	int rc;

	rc = mkpath(mf, path, sizeof(path), "getattr", NULL);
	if (rc < 0)
		return rc;
	b->gen = mf->gen;
	body = proto_getattr_req_encode(b->fids, b->n, &blen);
	if (!body)
		return -errno;
	CM_STAT_INC(mf->st, getattr_reqs);
	CM_STAT_ADD(mf->st, getattr_fids, b->n);
	if (!submit(mf, "POST", path, body, blen, attr_done, b))
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
batch_new(struct mfetch *mf, size_t n, bool with_ops)
{
	struct attr_batch *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->mf = mf;
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
	struct mfetch *mf = arg;
	struct mfetch_op *op, *nx;
	struct attr_batch *b;
	size_t n;
	int rc;

	(void)fd;
	(void)what;
	while (mf->attr_unsent > 0) {
		n = mf->attr_unsent < PROTO_GETATTR_MAX ? mf->attr_unsent
							: PROTO_GETATTR_MAX;
		b = batch_new(mf, n, true);
		if (!b)
			rc = -ENOMEM;
		TAILQ_FOREACH (op, &mf->ops, link) {
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
		mf->attr_unsent -= b->n;
		rc = send_attr_batch(mf, b);
		if (rc < 0) {
			/* Disconnected, the gate refuses every fetch: a miss
			 * as expected, not an error to log each time. */
			if (rc == -EHOSTUNREACH)
				log_debug(LOG_META, "cannot send getattr: %s",
					  strerror(-rc));
			else
				log_err(LOG_META, "cannot send getattr: %s",
					strerror(-rc));
			for (size_t i = 0; i < b->n; i++)
				op_complete(mf, b->ops[i], rc);
			batch_free(b);
		}
	}
	if (mf->attr_unsent > 0) {
		/* Out of memory: fail what is left rather than hang it. */
		for (op = TAILQ_FIRST(&mf->ops); op; op = nx) {
			nx = TAILQ_NEXT(op, link);
			if (op->kind == MK_ATTR && !op->sent)
				op_complete(mf, op, -ENOMEM);
		}
		mf->attr_unsent = 0;
	}
}

void
mfetch_want_attr(struct mfetch *mf, const struct fid *fid, mfetch_cb cb,
		 void *arg)
{
	bool fresh;
	struct mfetch_op *op = op_join(mf, MK_ATTR, fid, cb, arg, &fresh);

	if (!op || !fresh)
		return;
	mf->attr_unsent++;
	/* Batch everything wanted in this loop iteration into one POST. */
	event_active(mf->flush_ev, EV_TIMEOUT, 0);
}

static void
attr_done(void *arg, const struct http_result *res)
{
	struct attr_batch *b = arg;
	struct mfetch *mf = b->mf;
	struct proto_attr *attrs = NULL;
	int *errs = NULL;
	size_t n = 0;
	int rc;

	rc = result_errno(mf, res);
	if (rc == 0) {
		rc = proto_attrs_decode(res->body, res->body_len, &attrs, &errs,
					&n);
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
		if (rc == 0 && changed_since(mf, &b->fids[i], b->gen)) {
			/* Older than an event about it: ask again, and let
			 * the waiters retry (they join the new request). */
			mfetch_want_attr(mf, &b->fids[i], NULL, NULL);
		} else if (rc == 0 && err == 0) {
			apply_fetched(mf, &attrs[i], true, false);
		} else if (rc == 0 && err == -ENOENT) {
			mcache_gone(mf->mc, &b->fids[i]);
		}
		if (b->ops)
			op_complete(mf, b->ops[i], err);
	}
	free(attrs);
	free(errs);
	batch_free(b);
}

/* --- directories --- */

/* A listing being fetched, one page after the other (protocol version 2;
 * a version 1 server answers the first request with everything). */
struct dir_req {
	struct mfetch *mf;
	struct mfetch_op *op;
	uint64_t gen;
	struct proto_attr dir; /* the directory, as the first page says */
	struct vc_dirb acc;    /* names, types, FIDs of the pages so far */
	bool have;	       /* a first page arrived */
	bool whole;	       /* ask for everything at once */
	int restarts;	       /* the directory changed mid-way */
	uint64_t asked_seq;    /* mf->send_seq of this try's first page */
	bool ahead;	       /* local changes were ahead of the server
				  when this try began (mcache_ahead()) */
	bool restart_next;     /* a page of another DV came without a 410
				  while the next was on its way: start
				  over when that one arrives */
	unsigned pages;	       /* pages received */
	int failed;	       /* a page we took failed (-errno) while
				  the next one was on its way */
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
	struct mfetch *mf = dr->mf;
	char path[192 + PROTO_CURSOR_MAX];
	uint64_t seq;
	size_t n;
	int rc = mkpath(mf, path, sizeof(path) - PROTO_CURSOR_MAX - 32, "dir",
			&dr->op->fid);

	if (rc)
		return rc;
	n = strlen(path);
	if (!dr->whole)
		/* enc=bin: binary pages from a server of protocol 8 on; an
		 * older one ignores it and answers JSON (dir_page() tells
		 * them apart by their first bytes). */
		snprintf(path + n, sizeof(path) - n, "?limit=%u&enc=bin%s%s",
			 PROTO_DIR_PAGE_MAX, dr->next[0] ? "&cursor=" : "",
			 dr->next);
	seq = atomic_fetch_add(&mf->send_seq, 1) + 1;
	if (!dr->next[0]) {
		/* A first page: a try begins. A listing read while a
		 * local change was ahead lacks it, even once the change
		 * drained: never a late listing (mfetch_late_dir()). */
		dr->asked_seq = seq;
		dr->ahead = mcache_ahead(mf->mc, &dr->op->fid);
	}
	if (!submit(mf, "GET", path, NULL, 0, dir_done, dr))
		return errno ? -errno : -ENOMEM;
	return 0;
}

/* Forget the pages so far and ask for the first one again. */
static int
dir_restart(struct dir_req *dr)
{
	vc_dirb_release(&dr->acc);
	if (dr->op->stream)
		dstream_restart(dr->op->stream);
	dr->have = false;
	dr->next[0] = 0;
	dr->gen = dr->mf->gen;
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

/* dir_take() applies a page's entries this many at a time, the slots of
 * the next chunk's pending attributes asked for from memory meanwhile
 * (mcache_prefetch_ents()): asked for a whole page ahead, they were
 * evicted again before their turn. */
#define TAKE_CHUNK 64

/* The entries of one page: their names into dr->acc, their attributes
 * applied and stored now, so that no more than one page is ever held
 * decoded. When the directory changed since we asked (the listing is
 * then fetched again), an entry's attributes are still as fresh as a
 * getattr's unless an event about that entry itself came since (an
 * event about the directory says nothing of its children): those are
 * kept, so a READDIRPLUS or LOOKUP after a late listing (fuse_ops.c)
 * finds them rather than fetch the whole directory again for each name.
 * @return 0 or -errno. */
static int
dir_take(struct dir_req *dr, const struct proto_dir *page)
{
	struct mfetch *mf = dr->mf;
	struct proto_attr *a;
	bool changed;
	size_t n = 0, stored = 0;
	int rc = 0;

	if (page->n > PROTO_DIR_MAX - dr->acc.n)
		return -E2BIG;
	/* The first page of a listing that comes in several, and an OPENDIR
	 * waits for it: it reads the pages as they come (dstream.h) rather
	 * than wait for the last. Not while local changes are ahead of the
	 * server (only the stored listing has them). Without memory, no
	 * stream: the OPENDIR waits for the end. */
	if (!dr->op->stream && dr->acc.n == 0 && dr->next[0] && !dr->whole &&
	    !dr->ahead && op_has_early(dr->op))
		dr->op->stream = dstream_new(&dr->op->fid);
	if (dr->op->stream)
		(void)dstream_add(dr->op->stream, page->ents, page->n);
	for (size_t i = 0; i < page->n && rc == 0; i++)
		rc = vc_dirb_add(&dr->acc, page->ents[i].name,
				 page->ents[i].attr.type,
				 &page->ents[i].attr.fid);
	if (rc || !page->n)
		return rc;
	if (mf->gen - dr->gen >= MF_RING) {
		/* too many events to tell which entries changed */
		CM_STAT_ADD(mf->st, dir_attrs_unkept, page->n);
		return 0;
	}
	changed = changed_since(mf, &dr->op->fid, dr->gen);
	a = malloc(page->n * sizeof(*a));
	if (!a)
		return -ENOMEM;
	mcache_prefetch_ents(mf->mc, page->ents,
			     page->n < TAKE_CHUNK ? page->n : TAKE_CHUNK);
	for (size_t i = 0; i < page->n; i++) {
		if (i % TAKE_CHUNK == 0) {
			/* The chunk before is applied: kept pending; the
			 * slots of the chunk after this one asked for. */
			size_t at = i + TAKE_CHUNK;

			if (n > stored)
				mcache_store_attrs(mf->mc, a + stored,
						   n - stored);
			stored = n;
			if (at < page->n)
				mcache_prefetch_ents(
					mf->mc, page->ents + at,
					page->n - at < TAKE_CHUNK
						? page->n - at
						: TAKE_CHUNK);
		}
		if (changed &&
		    changed_since(mf, &page->ents[i].attr.fid, dr->gen)) {
			CM_STAT_INC(mf->st, dir_attrs_unkept);
			continue;
		}
		a[n] = page->ents[i].attr;
		if (apply_fetched(mf, &a[n], false, true))
			n++;
	}
	if (n > stored)
		mcache_store_attrs(mf->mc, a + stored, n - stored);
	free(a);
	return 0;
}

/* The cursor of the next page when @body is a binary page that has one,
 * or starts as cairn-vold writes a JSON page, {"next":"CURSOR", (into
 * @out, PROTO_CURSOR_MAX bytes): the next page can be asked for before
 * this one is decoded. @return whether it does. */
static bool
peek_next(const char *body, size_t len, char *out)
{
	static const char head[] = "{\"next\":\"";
	size_t hl = sizeof(head) - 1, n = 0;

	if (proto_dirb_is(body, len))
		return proto_dirb_peek_next(body, len, out) == 0 && out[0];
	if (len < hl || memcmp(body, head, hl))
		return false;
	for (const char *c = body + hl; c < body + len && *c != '"'; c++) {
		if (!((*c >= '0' && *c <= '9') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= 'a' && *c <= 'z') || *c == '.' || *c == '_' ||
		      *c == '-') ||
		    n + 1 >= PROTO_CURSOR_MAX)
			return false;
		out[n++] = *c;
	}
	if (!n || hl + n >= len)
		return false;
	out[n] = 0;
	return true;
}

/* One page arrived: take it into dr. @return 1 when another page was
 * asked for (dr lives on), 0 when dr->acc is the whole listing, -errno. */
static int
dir_page(struct dir_req *dr, const struct http_result *res)
{
	struct mfetch *mf = dr->mf;
	char early[PROTO_CURSOR_MAX], dec[PROTO_CURSOR_MAX];
	struct proto_dir page;
	int rc = result_errno(mf, res);

	dr->pages++;
	CM_STAT_INC(mf->st, dir_pages);
	if (dr->restart_next) {
		/* The page before was of another DV (below): this one is
		 * of no use whatever it holds. */
		dr->restart_next = false;
		return asked(dir_restart(dr));
	}
	if (dr->failed)
		rc = dr->failed;
	else if (rc == -ESTALE && dr->have && !dr->whole)
		/* Our cursor is for a DV the directory has left. */
		return asked(dir_restart(dr));
	if (rc)
		return rc;
	if (!dr->whole && peek_next(res->body, res->body_len, early)) {
		/* Ask for the next page before decoding this one (~1.5 ms
		 * of 4,096 entries): cairn-vold reads it meanwhile. What
		 * goes wrong with this page from here on is the next
		 * page's failure (dr->failed). */
		memcpy(dr->next, early, sizeof(early));
		rc = dir_send(dr);
		/* Out now, not when the loop turns after this page. */
		if (rc == 0)
			http_send_now(mf->http);
		if (rc)
			return rc;
		rc = proto_dir_page_decode_unchecked(
			res->body, res->body_len, !dr->have, &page, dec);
		if (rc == 0 && (!fid_eq(&page.dir.fid, &dr->op->fid) ||
				strcmp(dec, early))) {
			/* A cursor that is not the one read, or another
			 * directory: not a server of ours. */
			proto_dir_release(&page);
			rc = -EINVAL;
		}
		if (rc == 0 && dr->have && page.dir.dv != dr->dir.dv) {
			/* A page of another DV without a 410 (cairn-vold
			 * answers 410; a relay or another server may not):
			 * start over, as the path below does, once the
			 * page already asked for arrives. */
			proto_dir_release(&page);
			dr->restart_next = true;
			return 1;
		}
		if (rc == 0) {
			if (!dr->have)
				dr->dir = page.dir;
			dr->have = true;
			rc = dir_take(dr, &page);
			proto_dir_release(&page);
			stream_wake(dr->op);
		}
		if (rc < 0 && rc != -ENOMEM)
			log_err(LOG_META, "bad directory reply: %s",
				strerror(-rc));
		dr->failed = rc == -ENOMEM ? rc : rc < 0 ? -EIO : 0;
		return 1;
	}
	rc = proto_dir_page_decode_unchecked(res->body, res->body_len,
					     !dr->have, &page, dr->next);
	if (rc == 0 && !fid_eq(&page.dir.fid, &dr->op->fid)) {
		proto_dir_release(&page);
		rc = -EINVAL;
	}
	if (rc == 0 && dr->have && page.dir.dv != dr->dir.dv) {
		proto_dir_release(&page);
		if (!dr->whole)
			return asked(dir_restart(dr));
		rc = -EIO;
	} else if (rc == 0) {
		bool more = dr->next[0] != 0;

		if (!dr->have)
			dr->dir = page.dir;
		dr->have = true;
		/* Ask for the next page first: the server reads it while we
		 * take this one. */
		if (more && (rc = dir_send(dr)) != 0) {
			proto_dir_release(&page);
			return rc;
		}
		if (more)
			http_send_now(mf->http);
		rc = dir_take(dr, &page);
		proto_dir_release(&page);
		if (more) {
			stream_wake(dr->op);
			/* dr lives on: a failure is the next page's. */
			if (rc < 0 && rc != -ENOMEM)
				log_err(LOG_META, "bad directory reply: %s",
					strerror(-rc));
			dr->failed = rc == -ENOMEM ? rc : rc < 0 ? -EIO : 0;
			return 1;
		}
	}
	if (rc < 0 && rc != -ENOMEM)
		log_err(LOG_META, "bad directory reply: %s", strerror(-rc));
	return rc == -ENOMEM ? rc : rc < 0 ? -EIO : 0;
}

/* Forget the late listing of @fid, if any. */
static void
late_drop(struct mfetch *mf, const struct fid *fid)
{
	for (unsigned i = 0; i < MF_LATE; i++)
		if (mf->late[i].d && fid_eq(&mf->late[i].fid, fid)) {
			vc_dir_put(mf->late[i].d);
			mf->late[i].d = NULL;
		}
}

/* Keep @d (a reference is taken) as @fid's late listing. */
static void
late_put(struct mfetch *mf, const struct fid *fid, struct vc_dir *d,
	 uint64_t asked_seq)
{
	unsigned i = mf->late_next++ % MF_LATE;

	late_drop(mf, fid);
	vc_dir_put(mf->late[i].d);
	mf->late[i].fid = *fid;
	mf->late[i].d = vc_dir_get(d);
	mf->late[i].asked_seq = asked_seq;
}

static void
held_clear(struct mfetch *mf)
{
	vc_dir_put(mf->held.h);
	vc_dir_put(mf->held.d);
	mf->held.h = mf->held.d = NULL;
}

/* Forget the held listing when it is @fid's (NULL: any) or no open
 * handle holds it any more (only our references are left). */
static void
held_drop(struct mfetch *mf, const struct fid *fid)
{
	if (!mf->held.h)
		return;
	if ((fid && fid_eq(&mf->held.h->fid, fid)) ||
	    atomic_load(&mf->held.h->refcnt) <= 1 + (mf->held.d == mf->held.h))
		held_clear(mf);
}

void
mfetch_hold_late(struct mfetch *mf, struct vc_dir *d)
{
	if (!mf || !d)
		return;
	held_clear(mf);
	mf->held.h = vc_dir_get(d);
	mf->held.d = vc_dir_get(d);
	mf->held.at_ms = util_now_ms();
}

void
mfetch_held_renew(struct mfetch *mf, struct vc_dir *d)
{
	if (!mf || !d || !mf->held.h || !fid_eq(&mf->held.h->fid, &d->fid))
		return;
	if (mf->held.d != d) {
		vc_dir_put(mf->held.d);
		mf->held.d = vc_dir_get(d);
	}
	mf->held.at_ms = util_now_ms();
}

void
mfetch_held_release(struct mfetch *mf)
{
	if (mf)
		held_drop(mf, NULL);
}

void
mfetch_drop_held(struct mfetch *mf)
{
	if (mf)
		held_clear(mf);
}

void
mfetch_dir_mutated(struct mfetch *mf, const struct fid *fid)
{
	if (!mf || !fid || fid_is_null(fid))
		return;
	held_drop(mf, fid);
	late_drop(mf, fid);
}

int
mfetch_held_dir(struct mfetch *mf, const struct fid *fid, struct vc_dir **out)
{
	*out = NULL;
	if (!mf)
		return -ENOENT;
	held_drop(mf, NULL);
	if (!mf->held.h || !fid_eq(&mf->held.h->fid, fid))
		return -ENOENT;
	/* Only for a few seconds after it came: changes from other
	 * clients that no event about the child shows (a rename away, a
	 * remove of a linked object) must show within seconds, not stay
	 * hidden while a handle is open. Older, a LOOKUP fetches the
	 * directory, and a late listing that fetch gives takes its place
	 * (mfetch_held_renew()). */
	if (util_now_ms() - mf->held.at_ms > MF_HELD_MS)
		return -ESTALE;
	*out = vc_dir_get(mf->held.d);
	return 0;
}

uint64_t
mfetch_send_seq(struct mfetch *mf)
{
	return mf ? atomic_load(&mf->send_seq) : 0;
}

int
mfetch_late_dir(struct mfetch *mf, const struct fid *fid, uint64_t since_seq,
		struct vc_dir **out)
{
	*out = NULL;
	for (unsigned i = 0; i < MF_LATE; i++)
		if (mf->late[i].d && fid_eq(&mf->late[i].fid, fid) &&
		    mf->late[i].asked_seq > since_seq) {
			*out = vc_dir_get(mf->late[i].d);
			return 0;
		}
	return -ENOENT;
}

/* Every page of @op's listing is in and no name came twice: its stream's
 * readers get the end now, not after the listing is stored (~20 ms of
 * 100,000 entries). */
static void
stream_whole(struct mfetch_op *op)
{
	if (!op->stream)
		return;
	dstream_end(op->stream, 0);
	stream_wake(op);
}

static void
dir_release(void *d)
{
	vc_dir_put(d);
}

static void
dir_done(void *arg, const struct http_result *res)
{
	struct dir_req *dr = arg;
	struct mfetch *mf = dr->mf;
	struct vc_dir *nw = NULL;
	struct fid fid = dr->op->fid;
	bool refetch = false;
	int rc;

	rc = dir_page(dr, res);
	if (rc > 0)
		return; /* the next page is on its way */
	if (rc == 0 && (changed_since(mf, &dr->op->fid, dr->gen) ||
			mcache_fetched_older(mf->mc, &dr->dir))) {
		/* The directory changed after this reply left the server
		 * (an event said so, or an answer to one of our changes
		 * gave it a later DV or ctime: the listing would take a
		 * chmod of ours back, or the name we just made, until the
		 * change's event; t4088 round 5): fetch it again once this
		 * op is done (below). The listing is still one DV's whole:
		 * kept for an OPENDIR waiting for it (mfetch_late_dir()),
		 * never stored. */
		refetch = true;
		if (!dr->ahead && (op_has_cb(dr->op) || dr->op->stream)) {
			/* Sorted and indexed only for a waiter (a parked
			 * FUSE request, a handle reading the stream): not
			 * for a prefetch or our own refetch, which nobody
			 * waits for. */
			nw = vc_dirb_finish(&dr->acc, &dr->op->fid, dr->dir.dv);
			if (nw) {
				late_put(mf, &dr->op->fid, nw, dr->asked_seq);
				stream_whole(dr->op);
			}
			if (nw && dr->op->stream) {
				/* The handle that read it as it came holds
				 * it as a late listing's handle does: ls
				 * -l's LOOKUPs of the names it gave take
				 * their FIDs from it (mfetch_held_dir()). */
				dstream_keep(dr->op->stream, vc_dir_get(nw),
					     dir_release);
				mfetch_hold_late(mf, nw);
				CM_STAT_INC(mf->st, dir_stream_held);
			}
			vc_dir_put(nw);
			nw = NULL;
		}
		goto out;
	}
	if (rc == -ENOENT)
		mcache_gone(mf->mc, &dr->op->fid);
	if (rc < 0)
		goto out;
	/* The pages' names were not compared (decoded unchecked): a
	 * name given twice, within a page or across pages, is caught
	 * here, before anything uses the listing. */
	nw = vc_dirb_finish(&dr->acc, &dr->op->fid, dr->dir.dv);
	if (!nw) {
		rc = errno == EINVAL ? -EIO : -ENOMEM;
		if (rc == -EIO)
			log_err(LOG_META, "bad directory reply: a name twice");
		goto out;
	}
	stream_whole(dr->op);
	apply_attr(mf, &dr->dir, false, true);
	late_drop(mf, &dr->op->fid);
	held_drop(mf, &dr->op->fid);
	mcache_put_listing(mf->mc, &dr->dir, nw);
	vc_dir_put(nw);
out:
	sync_later(mf);
	vc_dirb_release(&dr->acc);
	held_drop(mf, NULL); /* its handle was released */
	op_complete(mf, dr->op, rc);
	/* Its waiters ran in op_complete(): a late listing is for them
	 * only, so it never stays in memory (a big one is megabytes). */
	if (refetch)
		late_drop(mf, &fid);
	/* A big listing freed its pages (a few MB each, decoded): give the
	 * memory back rather than keep the high-water mark (memtrim.h: on
	 * its own thread, once the burst is over, keeping some for the
	 * next listing). */
	if (dr->pages > 2)
		memtrim_note_work(MEMTRIM_MIN);
	free(dr);
	if (refetch)
		mfetch_want_dir(mf, &fid, NULL, NULL);
}

static void
want_dir(struct mfetch *mf, const struct fid *fid, mfetch_cb cb, void *arg,
	 bool early)
{
	bool fresh;
	struct mfetch_op *op = op_join(mf, MK_DIR, fid, cb, arg, &fresh);
	struct dir_req *dr;
	char fs[FID_STRLEN];
	int rc = 0;

	if (!op)
		return;
	/* op_join() put ours first. */
	SLIST_FIRST(&op->waiters)->early = early && cb;
	if (!fresh)
		return;
	op->sent = true;
	dr = calloc(1, sizeof(*dr));
	if (!dr)
		rc = -ENOMEM;
	if (rc == 0) {
		dr->mf = mf;
		dr->op = op;
		dr->gen = mf->gen;
		CM_STAT_INC(mf->st, dir_fetches);
		/* Which listings a walk fetched, and whether someone waits
		 * (a prefetch has no callback): t2202's counts. */
		log_debug(LOG_META, "listing %s: fetch%s",
			  fid_fmt(fid, fs), cb ? "" : " (nobody waits)");
		rc = dir_send(dr);
	}
	if (rc < 0) {
		free(dr);
		op_complete(mf, op, rc);
	}
}

void
mfetch_want_dir(struct mfetch *mf, const struct fid *fid, mfetch_cb cb,
		void *arg)
{
	want_dir(mf, fid, cb, arg, false);
}

void
mfetch_want_dir_stream(struct mfetch *mf, const struct fid *fid,
		       mfetch_cb cb, void *arg)
{
	struct mfetch_op *op = mf && !mf->shutting ? op_find(mf, MK_DIR, fid)
						    : NULL;

	if (op && op->stream) {
		cb(arg, 0); /* it streams already: mfetch_stream_get() */
		return;
	}
	want_dir(mf, fid, cb, arg, true);
}

struct dstream *
mfetch_stream_get(struct mfetch *mf, const struct fid *fid)
{
	struct mfetch_op *op = mf ? op_find(mf, MK_DIR, fid) : NULL;

	if (!op || !op->stream)
		return NULL;
	dstream_ref(op->stream);
	return op->stream;
}

/* --- symlinks and xattrs --- */

struct one_req {
	struct mfetch *mf;
	struct mfetch_op *op;
	uint64_t gen;
};

static void
link_done(void *arg, const struct http_result *res)
{
	struct one_req *r = arg;
	struct mfetch *mf = r->mf;
	char *target = NULL;
	int rc;

	rc = result_errno(mf, res);
	if (rc == 0) {
		rc = proto_link_decode(res->body, res->body_len, &target);
		if (rc < 0) {
			log_err(LOG_META, "bad readlink reply: %s",
				strerror(-rc));
			rc = -EIO;
		}
	}
	if (rc == 0)
		rc = vc_put_link(mf->vc, &r->op->fid, target);
	if (rc == -ENOENT)
		mcache_gone(mf->mc, &r->op->fid);
	free(target);
	op_complete(mf, r->op, rc);
	free(r);
}

static void
xattr_done(void *arg, const struct http_result *res)
{
	struct one_req *r = arg;
	struct mfetch *mf = r->mf;
	struct proto_xattr *x = NULL;
	struct proto_attr a;
	uint64_t dv;
	size_t n = 0;
	int rc;

	rc = result_errno(mf, res);
	if (rc == 0) {
		rc = proto_xattrs_decode(res->body, res->body_len, &dv, &x, &n);
		if (rc < 0) {
			log_err(LOG_META, "bad xattr reply: %s", strerror(-rc));
			rc = -EIO;
		}
	}
	/* Stamp the set with the ctime we hold: if an attr event raced with
	 * this fetch, the attributes are gone or newer and the stamp will not
	 * match, so the set is refetched. */
	if (rc == 0 && changed_since(mf, &r->op->fid, r->gen))
		rc = -EAGAIN;
	else if (rc == 0 && mcache_attr(mf->mc, &r->op->fid, &a) == 0)
		rc = vc_put_xattrs(mf->vc, &r->op->fid, a.ctime_ns, x, n);
	else if (rc == 0)
		rc = -EAGAIN;
	if (rc == -ENOENT)
		mcache_gone(mf->mc, &r->op->fid);
	proto_xattrs_free(x, n);
	op_complete(mf, r->op, rc);
	free(r);
}

static void
want_one(struct mfetch *mf, enum mfetch_kind kind, const char *what,
	 const struct fid *fid, mfetch_cb cb, void *arg, http_done_fn done)
{
	char path[192];
	bool fresh;
	struct mfetch_op *op = op_join(mf, kind, fid, cb, arg, &fresh);
	struct one_req *r;
	int rc;

	if (!op || !fresh)
		return;
	op->sent = true;
	rc = mkpath(mf, path, sizeof(path), what, fid);
	r = calloc(1, sizeof(*r));
	if (rc == 0 && !r)
		rc = -ENOMEM;
	if (rc == 0) {
		r->mf = mf;
		r->op = op;
		r->gen = mf->gen;
		if (!submit(mf, "GET", path, NULL, 0, done, r))
			rc = -errno;
	}
	if (rc < 0) {
		free(r);
		op_complete(mf, op, rc);
	}
}

void
mfetch_want_link(struct mfetch *mf, const struct fid *fid, mfetch_cb cb,
		 void *arg)
{
	CM_STAT_INC(mf->st, link_fetches);
	want_one(mf, MK_LINK, "link", fid, cb, arg, link_done);
}

void
mfetch_want_xattrs(struct mfetch *mf, const struct fid *fid, mfetch_cb cb,
		   void *arg)
{
	CM_STAT_INC(mf->st, xattr_fetches);
	want_one(mf, MK_XATTR, "xattr", fid, cb, arg, xattr_done);
}

/* --- our own changes (mut.c) --- */

void
mfetch_own_change(struct mfetch *mf, const struct fid *fid, uint64_t event_seq)
{
	if (!mf || !event_seq)
		return;
	mf->own[mf->own_next % MF_OWN].fid = *fid;
	mf->own[mf->own_next % MF_OWN].seq = event_seq;
	mf->own_next++;
}

void
mfetch_dir_changed(struct mfetch *mf, const struct proto_attr *a)
{
	if (!mf)
		return;
	/* Our own change (or a refusal of it): a listing taken before it
	 * is no answer any more, whatever mcache does next. */
	mfetch_dir_mutated(mf, &a->fid);
	apply_attr(mf, a, true, false);
}

void
mfetch_local_dir(struct mfetch *mf, const struct proto_attr *dir_after,
		 const char *del, const char *add,
		 const struct proto_attr *add_attr)
{
	if (!mf)
		return;
	/* Before mcache_local_dir(), which returns early while the
	 * directory is ahead: the held and late listings predate this
	 * change of ours and would give the old names back (a LOOKUP of
	 * the name just moved away got the moved object). */
	mfetch_dir_mutated(mf, &dir_after->fid);
	if (mcache_local_dir(mf->mc, dir_after, del, add, add_attr))
		mfetch_want_dir(mf, &dir_after->fid, NULL, NULL);
}

/* Does a reply we applied already include event @ev? */
static bool
own_covers(struct mfetch *m, const struct proto_event *ev)
{
	for (unsigned i = 0; i < MF_OWN; i++)
		if (m->own[i].seq && ev->seq <= m->own[i].seq &&
		    fid_eq(&m->own[i].fid, &ev->fid))
			return true;
	return false;
}

static void
event_apply(struct mfetch *mf, const struct proto_event *ev)
{
	struct proto_attr a;
	uint64_t ino = 0;
	bool have;
	char fs[FID_STRLEN];

	if (mf->hooks.defer_event && mf->hooks.defer_event(mf->hooks.arg, ev))
		return; /* looked at again when our change is applied */
	CM_STAT_INC(mf->st, events);
	log_debug(LOG_META, "event %llu %s '%s' dv %llu",
		  (unsigned long long)ev->seq, proto_ev_name(ev->kind),
		  fid_fmt(&ev->fid, fs), (unsigned long long)ev->dv);
	if (ev->kind == PROTO_EV_DATA || ev->kind == PROTO_EV_ATTR ||
	    ev->kind == PROTO_EV_DIR || ev->kind == PROTO_EV_GONE) {
		mf->gen++;
		ring_add(mf, &ev->fid);
	}
	/* Writeback: what we cache of it is ahead of the server; the
	 * server's state is fetched once our changes are in (replay.c). */
	if (mcache_ahead(mf->mc, &ev->fid)) {
		if (mf->hooks.ahead_event)
			mf->hooks.ahead_event(mf->hooks.arg, ev);
		return;
	}
	have = mcache_attr(mf->mc, &ev->fid, &a) == 0;
	ino = ino_of(mf->ino, &ev->fid);
	switch (ev->kind) {
	case PROTO_EV_DATA:
		/* Old news as well: the answer to our own store (or a fetch)
		 * gave a later DV already. The event of a create or store of
		 * ours held back while the next store was in flight comes
		 * after that store's answer; dropping the attributes then
		 * cost a getattr a file, and a disconnect before its answer
		 * left the file EIO offline (t2365). A server DV only
		 * grows. */
		if (have && !(a.dv & CM_DV_LOCAL) && a.dv >= ev->dv) {
			/* Past this event the saved sequence must not
			 * go while the file holds an older DV. */
			mcache_sync_attr(mf->mc, &ev->fid);
			return;
		}
		cs_invalidate(mf->cs, ev->fid.vol, ev->fid.oid, ev->dv);
		mcache_drop_attr(mf->mc, &ev->fid);
		mcache_inval_inode(mf->mc, ino, 0, 0);
		if (ino)
			mfetch_want_attr(mf, &ev->fid, NULL, NULL);
		break;
	case PROTO_EV_ATTR:
		if (!have && !ino)
			return;
		/* Attr changes keep the DV, so only the seq tells our own
		 * setattr's event (its reply is applied) from another's. */
		if (have && own_covers(mf, ev)) {
			CM_STAT_INC(mf->st, own_events);
			mcache_sync_attr(mf->mc, &ev->fid);
			return;
		}
		mcache_drop_attr(mf->mc, &ev->fid);
		vc_del_xattrs(mf->vc, &ev->fid);
		mcache_inval_inode(mf->mc, ino, -1, 0);
		if (ino)
			mfetch_want_attr(mf, &ev->fid, NULL, NULL);
		break;
	case PROTO_EV_DIR:
		/* Old news too: an answer to one of our changes already gave
		 * the directory this DV or a later one (fetching the listing
		 * again would drop the names of files created here that the
		 * server has not been sent yet). */
		if (have && !(a.dv & CM_DV_LOCAL) && a.dv >= ev->dv) {
			mcache_sync_attr(mf->mc, &ev->fid); /* as DATA */
			return;
		}
		if (ino) {
			/* Keep serving the old listing until the new one is
			 * here; dir_done() diffs them for the kernel. */
			mfetch_want_dir(mf, &ev->fid, NULL, NULL);
		} else if (have) {
			vc_del_dir(mf->vc, &ev->fid);
			mcache_drop_attr(mf->mc, &ev->fid);
		}
		break;
	case PROTO_EV_GONE:
		if (!have && !ino)
			return;
		mcache_gone(mf->mc, &ev->fid);
		break;
	default:
		break;
	}
}

void
mfetch_event(struct mfetch *mf, const struct proto_event *ev)
{
	event_apply(mf, ev);
	/* After the caches dropped what changed: pinned objects are fetched
	 * again (pin.h). */
	if (mf->hooks.applied_event)
		mf->hooks.applied_event(mf->hooks.arg, ev);
}

/* --- bulk revalidation --- */

struct reval {
	struct mfetch *mf;
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
	rc = send_attr_batch(rv->mf, rv->b);
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
		rv->b = batch_new(rv->mf, PROTO_GETATTR_MAX, false);
		if (!rv->b)
			return -ENOMEM;
	}
	rv->b->fids[rv->b->n++] = *fid;
	if (rv->b->n == PROTO_GETATTR_MAX)
		return reval_send(rv);
	return 0;
}

void
mfetch_revalidate_all(struct mfetch *mf)
{
	struct reval rv = {.mf = mf};
	int rc;

	CM_STAT_INC(mf->st, revalidations);
	/* Events were missed: a held listing may hide any of them. */
	held_clear(mf);
	/* Every cached attribute, the pending ones too. */
	mcache_sync_attrs(mf->mc, SIZE_MAX);
	rc = vc_iterate_fids(mf->vc, reval_cb, &rv);
	if (rc == 0)
		rc = reval_send(&rv);
	else
		batch_free(rv.b);
	if (rc < 0)
		log_err(LOG_META, "cannot revalidate the cache: %s",
			strerror(-rc));
	else
		log_info(LOG_META,
			 "revalidating cached metadata (%zu getattr "
			 "requests)",
			 rv.batches);
}

/* --- setup --- */

struct mfetch *
mfetch_new(const struct mfetch_deps *d, const struct mfetch_hooks *hooks)
{
	struct mfetch *mf = calloc(1, sizeof(*mf));

	if (!mf)
		return NULL;
	TAILQ_INIT(&mf->ops);
	mf->loop = d->loop;
	mf->http = d->http;
	mf->mc = d->mc;
	mf->ino = d->ino;
	mf->vc = d->vc;
	mf->cs = d->cs;
	mf->st = d->st;
	mf->online = d->online;
	mf->timeout_ms = d->timeout_ms;
	if (hooks)
		mf->hooks = *hooks;
	mf->volume = strdup(d->volume ? d->volume : "");
	mf->server = strdup(d->server ? d->server : "");
	mf->flush_ev = event_new(d->loop->base, -1, 0, flush_attrs, mf);
	mf->sync_ev = event_new(d->loop->base, -1, 0, sync_attrs, mf);
	if (!mf->volume || !mf->server || !mf->flush_ev || !mf->sync_ev) {
		if (mf->flush_ev)
			event_free(mf->flush_ev);
		if (mf->sync_ev)
			event_free(mf->sync_ev);
		free(mf->volume);
		free(mf->server);
		free(mf);
		errno = ENOMEM;
		return NULL;
	}
	return mf;
}

void
mfetch_free(struct mfetch *mf)
{
	struct mfetch_op *op;

	if (!mf)
		return;
	mf->shutting = true;
	while ((op = TAILQ_FIRST(&mf->ops)))
		op_complete(mf, op, -ECANCELED);
	event_free(mf->flush_ev);
	event_free(mf->sync_ev);
	for (unsigned i = 0; i < MF_LATE; i++)
		vc_dir_put(mf->late[i].d);
	held_clear(mf);
	/* Pending attributes to the file now (mcache_free() would too). */
	mcache_sync_attrs(mf->mc, SIZE_MAX);
	free(mf->volume);
	free(mf->server);
	free(mf);
}
