/*
 * mut.c - sending mutations through the replay log (see mut.h).
 *
 * One struct mreq per op, from mut_submit() to its done callback. The loop
 * keeps the ops in flight on a list, which is also what mut_defer_event()
 * consults. Retries: a transport failure (no reply, a refused connection,
 * 502/503/504 from a proxy) is retried with the same opid, with backoff,
 * until cfg.fetch_timeout_ms has passed since the first try; then the
 * caller gets EIO and the record is dropped (the server may or may not
 * have applied it: its event tells us if it did, as with NFS).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "cm/cm.h"
#include "cm/loop.h"
#include "cm/conn.h"
#include "cm/http.h"
#include "cm/mcache.h"
#include "cm/mfetch.h"
#include "cm/mut.h"
#include "cm/rlog.h"
#include "cm/vc.h"
#include "common/log.h"
#include "common/util.h"

/* Events held back while an op on their object is in flight: distinct
 * (object, kind) pairs, the newest of each (mut_defer_event()). A replay
 * batch has up to PROTO_BATCH_MAX ops in flight, each naming up to four
 * objects; past this bound the cache is revalidated as a whole. */
#define MUT_DEFER_MAX 65536
/* A late create not taken by a store within this goes alone. */
#define MUT_HOLD_MS 1000
/* Events applied as they came, the newest kept (struct mut's evseen). */
#define MUT_EVSEEN 256

/* Something that waits for a late create (below) to be answered. */
struct mwait {
	STAILQ_ENTRY(mwait) link;
	void (*wake)(struct mwait *w);
};
STAILQ_HEAD(mwaitq, mwait);

struct mut_batch;
struct mbatch;

struct mreq {
	struct cm_job job;
	TAILQ_ENTRY(mreq) link;
	struct mwait w;	       /* waiting for a late create */
	struct mwaitq waiters; /* late create: what waits for its answer */
	struct mut_batch *b;   /* member of a batch */
	struct mut *mu;
	struct proto_op op;
	uint64_t seq;
	mut_done_fn done;
	void *arg;
	unsigned attempts;
	uint64_t deadline;
	struct event *retry_ev;
	bool listed;
	bool replay; /* reintegration: a refusal keeps the record */
	/* A late create (mut_hold_create()): answered to its caller before
	 * the server has it. Held: logged, listed, not sent yet. */
	bool late, held;
	bool removed;	       /* its record went with its batch's */
	bool acked;	       /* the acked hook heard of it (replay) */
	/* Its opid may have gone out before (a record found at start): the
	 * answer may be the one the server recorded then, not its state
	 * now. A retry (attempts > 1) is as unsure. */
	bool resent;
	/* The server answered it (a refusal is an answer; no reply, the
	 * gate's refusal, a proxy's 502-504 are not). A record resent at
	 * start that got no answer stays in the log (finish_end()). */
	bool answered;
	struct event *hold_ev; /* held: MUT_HOLD_MS */
	/* A late create is on mu->lates from its start until it is freed,
	 * listed in flight or not (waiting for an earlier late create);
	 * order: when it (or any op) first started, so an op waits only
	 * for late creates that started before it. */
	TAILQ_ENTRY(mreq) llink;
	bool in_lates;
	uint64_t order;
};
TAILQ_HEAD(mreqq, mreq);

/* A batch request (mut_batch_*): members in order. */
struct mut_batch {
	struct mwait w; /* waiting for a late create */
	struct mut *mu;
	struct mreq **r;
	size_t n, cap;
	unsigned flags;
	unsigned attempts;
	uint64_t deadline;
	struct event *retry_ev;
	/* The server has no /batch: the members go one at a time (next),
	 * and what an earlier one answered stands in for base DV 0. */
	bool single;
	size_t next;
	struct proto_attr *got; /* single: per member, its reply's attr */
	bool *have;
};

struct mut {
	struct mut_deps d;
	struct mut_hooks h;
	bool stopped; /* mut_stop(): nothing new starts */
	struct mreqq inflight;
	struct mreqq lates; /* every late create not yet answered */
	uint64_t order_next;
	unsigned n;
	struct proto_event *deferred; /* ndeferred of capdeferred */
	size_t ndeferred, capdeferred;
	bool overflow; /* deferred events were lost: revalidate */
	/* The newest events applied as they came (not held back), and
	 * ev_floor: the newest seq that left this ring, or the one the
	 * event stream restarted from (mut_events_from()). A mkdir reply
	 * older than news of its directory gives no empty listing
	 * (new_dir_listing()). */
	struct {
		struct fid fid;
		uint64_t seq;
	} evseen[MUT_EVSEEN];
	unsigned evseen_next;
	uint64_t ev_floor;
	bool nobatch;  /* the server answered 404 to /batch */
	/* A replay batch's results are being handled (mbatch_end()): the
	 * held-back events wait for its end, not each member's. */
	bool batch_ending;
	/* Meanwhile (its records already removed) the members from
	 * ending_next on that the server took are not applied yet: what
	 * they name is ahead of the server (mut_batch_ahead()). Under
	 * ending_mu: the ahead hook is asked from any thread. */
	pthread_mutex_t ending_mu;
	atomic_bool ending_on; /* ending is set: the lock is worth taking */
	atomic_bool attach_ok; /* mut_set_server_version() */
	const struct mbatch *ending;
	const struct proto_batch_result *ending_res;
	size_t ending_next;
	/* resume state: the next record after resume_after, up to
	 * resume_upto (the last INFLIGHT record at start: what a crash
	 * left; the op log's own records come after it) */
	uint64_t resume_after, resume_upto;
	bool upto_set;
	bool resuming;
};

static void send_req(struct mreq *m);

static void
noop_done(void *arg, int err, const struct proto_op_result *r)
{
	(void)arg;
	(void)err;
	(void)r;
}

/* Disconnected with @m unanswered: its record stays INFLIGHT (it may
 * have arrived), disconnected operation applies it locally and answers
 * the caller (a late create's was answered: nobody to tell). */
static void
absorb_one(struct mut *mu, struct mreq *m)
{
	/* the reintegration sends it now, not this module */
	if (m->seq && mu->d.rlog)
		rlog_undirect(mu->d.rlog, m->seq);
	mu->h.absorb(mu->h.arg, &m->op, m->done ? m->done : noop_done, m->arg);
}

/* How a request's body is encoded for this server (PROTO_ENC_ATTACH at
 * protocol 7), and its type: JSON, or JSON + NUL + attachment. */
static unsigned
enc_flags(struct mut *mu)
{
	return atomic_load(&mu->attach_ok) ? PROTO_ENC_ATTACH : 0;
}

static const char *
body_type(const char *body, size_t len)
{
	return memchr(body, 0, len) ? PROTO_ATTACH_TYPE : NULL;
}

/* --- copies --- */

static char *
dup_or_null(const char *s, int *rc)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*rc = -ENOMEM;
	return d;
}

int
mut_op_copy(struct proto_op *dst, const struct proto_op *src)
{
	int rc = 0;

	*dst = *src;
	dst->name = dup_or_null(src->name, &rc);
	dst->newname = dup_or_null(src->newname, &rc);
	dst->target = dup_or_null(src->target, &rc);
	dst->xname = dup_or_null(src->xname, &rc);
	dst->xvalue = NULL;
	dst->chunks = NULL;
	dst->data = NULL;
	if (src->data) {
		dst->data = malloc(src->dlen ? src->dlen : 1);
		if (dst->data)
			memcpy(dst->data, src->data, src->dlen);
		else
			rc = -ENOMEM;
	}
	if (src->xvalue || src->xlen) {
		dst->xvalue = malloc(src->xlen ? src->xlen : 1);
		if (dst->xvalue)
			memcpy(dst->xvalue, src->xvalue, src->xlen);
		else
			rc = -ENOMEM;
	}
	if (src->nchunks) {
		dst->chunks = malloc(src->nchunks * sizeof(*dst->chunks));
		if (dst->chunks)
			memcpy(dst->chunks, src->chunks,
			       src->nchunks * sizeof(*dst->chunks));
		else
			rc = -ENOMEM;
	}
	if (rc)
		proto_op_release(dst);
	return rc;
}

static void
mreq_free(struct mreq *m)
{
	if (m->in_lates)
		TAILQ_REMOVE(&m->mu->lates, m, llink);
	if (m->retry_ev)
		event_free(m->retry_ev);
	if (m->hold_ev)
		event_free(m->hold_ev);
	proto_op_release(&m->op);
	free(m);
}

/* --- applying a reply --- */

/* The object's last name is gone: its write state goes too (wb). */
static void
file_gone(struct mut *mu, const struct fid *fid)
{
	if (mu->h.file_gone)
		mu->h.file_gone(mu->h.arg, fid);
}

static bool
touches(const struct proto_op *op, const struct fid *f)
{
	return fid_eq(&op->fid, f) || fid_eq(&op->parent, f) ||
	       fid_eq(&op->newparent, f) || fid_eq(&op->victim, f);
}

/*
 * Is @r, the answer to @m, the server's state right after it applied
 * @m, with nothing about its object we have seen since? Not when @m's
 * opid may have gone out before (a resend at start, a retry: the answer
 * may come from the server's opid table, made long ago), when the reply
 * carries no event seq, or when it is older than an event seen about
 * its object (or than any we no longer remember: ev_floor). News that
 * comes later is applied after it, so a fresh reply may be trusted.
 */
static bool
reply_fresh(const struct mreq *m, const struct proto_op_result *r)
{
	const struct mut *mu = m->mu;

	if (m->resent || m->attempts > 1 || (m->b && m->b->attempts > 1) ||
	    !r->has_attr || !r->event_seq || r->event_seq < mu->ev_floor)
		return false;
	for (unsigned i = 0; i < MUT_EVSEEN; i++)
		if (mu->evseen[i].seq > r->event_seq &&
		    fid_eq(&mu->evseen[i].fid, &r->attr.fid))
			return false;
	return true;
}

/* An event applied as it came (mut_defer_event() did not hold it). */
static void
note_event(struct mut *mu, const struct proto_event *ev)
{
	unsigned i = mu->evseen_next++ % MUT_EVSEEN;

	if (mu->evseen[i].seq > mu->ev_floor)
		mu->ev_floor = mu->evseen[i].seq;
	mu->evseen[i].fid = ev->fid;
	mu->evseen[i].seq = ev->seq;
}

/* A directory we just made, at the DV the mkdir reply gave it, is empty:
 * its listing is known without asking, so it can be listed, and changed
 * offline (`fs disconnect` right after a mkdir: creates in it failed
 * with EIO, no cached listing; t4060). Only while the cached attributes
 * are the reply's (an event may have moved them on already), and only
 * from a @fresh reply (reply_fresh()): one from the server's opid table
 * (a record resent after a crash) may be older than the directory, and
 * an empty listing at its DV would hide the names made since. */
static void
new_dir_listing(struct mut *mu, const struct proto_attr *a, bool fresh)
{
	struct proto_attr cur;
	struct vc_dir *d;

	if (!fresh || a->type != PROTO_T_DIR ||
	    mcache_attr(mu->d.mc, &a->fid, &cur) < 0 || cur.dv != a->dv)
		return;
	if (mcache_dir(mu->d.mc, &a->fid, &d) == 0) {
		vc_dir_put(d); /* a listing at this DV is cached already */
		return;
	}
	if (mcache_offline_newdir(mu->d.mc, a) < 0)
		log_debug(LOG_MUT, "cannot cache the new directory's listing");
}

/*
 * May @m's answer be older than what we cache (its opid may have gone
 * out before: a record resent at start, a retry), and are the cached
 * attributes of @a's object at a later server DV than @a's? Then @a is
 * old news. A DV of an object only grows on the server, so the cached
 * attributes stand. Sync mode drops a record lazily (in the log's next
 * transaction, RLOG_A_LAZY): cairnd killed after a late create and its
 * store were answered resends both, and the create's answer, from the
 * server's opid table, says DV 1 and size 0 while the cache holds the
 * store's DV and size, and no write state is left to overlay them: a
 * read between the create's answer and the store's showed an empty
 * file (t2090, t2340).
 */
static bool
reply_old(const struct mreq *m, const struct proto_attr *a)
{
	struct proto_attr cur;

	if (!(m->resent || m->attempts > 1 || (m->b && m->b->attempts > 1)))
		return false;
	return (a->dv & CM_DV_LOCAL) == 0 &&
	       mcache_attr(m->mu->d.mc, &a->fid, &cur) == 0 &&
	       cur.type == a->type && !(cur.dv & CM_DV_LOCAL) &&
	       cur.dv > a->dv;
}

/* Cache @a from @m's answer unless it is old news (reply_old()). */
static void
reply_attr(const struct mreq *m, const struct proto_attr *a)
{
	if (reply_old(m, a)) {
		log_debug(LOG_MUT, "answer to a resent op: DV %llu, older "
				   "than the cached one: kept the cached",
			  (unsigned long long)a->dv);
		return;
	}
	mcache_local_attr(m->mu->d.mc, a);
}

/* Apply the server's reply @r to @m's op to the caches; @fresh:
 * reply_fresh(). */
static void
apply_reply(const struct mreq *m, const struct proto_op_result *r, bool fresh)
{
	struct mut *mu = m->mu;
	const struct proto_op *op = &m->op;

	switch (op->kind) {
	case PROTO_OP_CREATE:
	case PROTO_OP_MKDIR:
	case PROTO_OP_SYMLINK:
	case PROTO_OP_MKMOUNT:
	case PROTO_OP_LINK:
		if (r->has_attr)
			reply_attr(m, &r->attr);
		if (r->has_attr && op->kind == PROTO_OP_MKDIR)
			new_dir_listing(mu, &r->attr, fresh);
		/* (a listing at a later DV than an old answer's is newer) */
		if (r->has_parent && !reply_old(m, &r->parent))
			mfetch_local_dir(mu->d.mf, &r->parent, NULL, op->name,
					 &r->attr);
		/* Resent at start: a lookup before this answer may have left
		 * the kernel a negative entry (mut_show_lates() could not
		 * list the name: the listing was not cached). */
		if (m->resent && op->name)
			mcache_inval_name(mu->d.mc, &op->parent, op->name);
		break;
	case PROTO_OP_UNLINK:
	case PROTO_OP_RMDIR:
		if (r->has_victim && r->victim.nlink > 0 &&
		    op->kind == PROTO_OP_UNLINK)
			reply_attr(m, &r->victim);
		if (r->has_parent && !reply_old(m, &r->parent))
			mfetch_local_dir(mu->d.mf, &r->parent, op->name, NULL,
					 NULL);
		if (r->has_victim &&
		    (r->victim.nlink == 0 || op->kind == PROTO_OP_RMDIR))
			file_gone(mu, &op->fid);
		break;
	case PROTO_OP_RENAME:
		if (r->has_attr)
			reply_attr(m, &r->attr);
		if (op->flags & PROTO_RENAME_EXCHANGE) {
			/* Both names stay; they swapped objects. */
			if (r->has_victim)
				reply_attr(m, &r->victim);
			if (r->has_parent && r->has_newparent &&
			    r->has_victim) {
				mfetch_local_dir(mu->d.mf, &r->parent, NULL,
						 op->name, &r->victim);
				mfetch_local_dir(mu->d.mf, &r->newparent, NULL,
						 op->newname, &r->attr);
			} else if (r->has_parent) {
				/* Two names in one DV step: fetch it. */
				mfetch_dir_changed(mu->d.mf, &r->parent);
			}
			break;
		}
		if (r->has_victim) {
			if (r->victim.nlink == 0)
				file_gone(mu, &r->victim.fid);
			else
				reply_attr(m, &r->victim);
		}
		if (r->has_newparent) {
			if (r->has_parent)
				mfetch_local_dir(mu->d.mf, &r->parent, op->name,
						 NULL, NULL);
			mfetch_local_dir(mu->d.mf, &r->newparent, NULL,
					 op->newname, &r->attr);
		} else if (r->has_parent) {
			/* Same directory: one DV step for both names. */
			mfetch_local_dir(mu->d.mf, &r->parent, op->name,
					 op->newname, &r->attr);
		}
		break;
	case PROTO_OP_STORE:
		if (r->has_attr && mu->h.file_stored)
			mu->h.file_stored(mu->h.arg, op, &r->attr);
		break;
	case PROTO_OP_SETATTR:
	case PROTO_OP_SETXATTR:
	case PROTO_OP_REMOVEXATTR:
		if (r->has_attr)
			reply_attr(m, &r->attr);
		break;
	default:
		break;
	}
}

/* --- deferred events --- */

/* Hold @ev back: an event of the same kind about the same object held
 * already is replaced by it (what applying an event does depends only on
 * the newest: a directory's listing at its DV, a file's data at its DV,
 * attributes fetched again). A replay batch's creates in one directory
 * then hold one event of it, not one per create: before, 256 of them
 * overflowed the held set and every batch ended in a revalidation of the
 * whole cache (#17: ~4 ms a record at 100,000 records in a 1M-file
 * volume). */
static void
defer_one(struct mut *mu, const struct proto_event *ev)
{
	for (size_t i = mu->ndeferred; i-- > 0;) {
		struct proto_event *d = &mu->deferred[i];

		if (d->kind == ev->kind && fid_eq(&d->fid, &ev->fid)) {
			if (ev->seq >= d->seq)
				*d = *ev;
			return;
		}
	}
	if (mu->ndeferred == mu->capdeferred) {
		size_t nc = mu->capdeferred ? 2 * mu->capdeferred : 64;
		struct proto_event *p;

		if (nc > MUT_DEFER_MAX ||
		    !(p = realloc(mu->deferred, nc * sizeof(*p)))) {
			mu->overflow = true;
			return;
		}
		mu->deferred = p;
		mu->capdeferred = nc;
	}
	mu->deferred[mu->ndeferred++] = *ev;
}

void
mut_events_from(struct mut *mu, uint64_t seq)
{
	if (mu && seq > mu->ev_floor)
		mu->ev_floor = seq;
}

bool
mut_defer_event(struct mut *mu, const struct proto_event *ev)
{
	struct mreq *m;

	if (!mu || mu->stopped || fid_is_null(&ev->fid))
		return false;
	TAILQ_FOREACH(m, &mu->inflight, link) {
		if (!touches(&m->op, &ev->fid))
			continue;
		defer_one(mu, ev);
		return true;
	}
	note_event(mu, ev);
	return false;
}

/* Replay the held-back events whose objects have no op in flight now. */
static void
replay_deferred(struct mut *mu)
{
	struct proto_event *evs;
	size_t n = 0, keep = 0;

	if (!mu->ndeferred)
		goto out;
	evs = malloc(mu->ndeferred * sizeof(*evs));
	if (!evs) {
		/* apply none now: they wait for the next look */
		log_warn(LOG_MUT, "out of memory for the held-back events");
		return;
	}
	for (size_t i = 0; i < mu->ndeferred; i++) {
		struct mreq *m;
		bool busy = false;

		TAILQ_FOREACH(m, &mu->inflight, link) {
			if (touches(&m->op, &mu->deferred[i].fid)) {
				busy = true;
				break;
			}
		}
		if (busy)
			mu->deferred[keep++] = mu->deferred[i];
		else
			evs[n++] = mu->deferred[i];
	}
	mu->ndeferred = keep;
	for (size_t i = 0; i < n; i++)
		mfetch_event(mu->d.mf, &evs[i]);
	free(evs);
out:
	if (mu->overflow && TAILQ_EMPTY(&mu->inflight)) {
		mu->overflow = false;
		mfetch_revalidate_all(mu->d.mf);
	}
}

/* --- sending --- */

static void batch_single_next(struct mut_batch *b);

static void
unlist(struct mreq *m)
{
	if (m->listed) {
		TAILQ_REMOVE(&m->mu->inflight, m, link);
		m->listed = false;
		m->mu->n--;
	}
}

/*
 * A replayed record the server took goes before its reply is applied:
 * what the caches ask of the log then (is an object's local view ahead
 * of the server? writeback) must not count the change the server just
 * took. The DV map hears the acknowledged DV first (mut_hooks.acked).
 * A refused one stays (it becomes a conflict), and so does one that got
 * no answer (resent first next time): finish_end() keeps those.
 */
static void
finish_drop(struct mreq *m, int err, const struct proto_op_result *r)
{
	struct mut *mu = m->mu;
	int rc;

	if (m->removed || err)
		return;
	if (r && mu->h.acked && !m->acked)
		mu->h.acked(mu->h.arg, m->seq, &m->op, r);
	m->acked = true;
	if (m->seq && mu->d.rlog && m->op.kind == PROTO_OP_STORE &&
	    mu->h.data_durable)
		mu->h.data_durable(mu->h.arg, &m->op.fid, 1);
	if (m->seq && mu->d.rlog) {
		rc = rlog_remove_flags(mu->d.rlog, m->seq, RLOG_A_NOSYNC);
		if (rc < 0 && rc != -ENOENT)
			log_warn(LOG_MUT,
				 "cannot drop replay record %llu: %s",
				 (unsigned long long)m->seq, strerror(-rc));
	}
	m->removed = true;
}

/* The server's answer @r to @m (or @err) goes to the caches. */
static void
finish_apply(struct mreq *m, int err, const struct proto_op_result *r)
{
	struct mut *mu = m->mu;

	/* Before anything else, whether the server took the op or not (a
	 * 412 or ESTALE says our listing is old too): a listing an open
	 * handle holds, or a late one, was taken before this change and
	 * must not answer a LOOKUP after it (mv log log.1; echo x > log
	 * would truncate log.1). */
	mfetch_dir_mutated(mu->d.mf, &m->op.parent);
	mfetch_dir_mutated(mu->d.mf, &m->op.newparent);
	if (!err && r) {
		apply_reply(m, r,
			    m->op.kind == PROTO_OP_MKDIR && reply_fresh(m, r));
		if (r->has_attr)
			mfetch_own_change(mu->d.mf, &r->attr.fid, r->event_seq);
	} else if (err && err != -EIO && m->late && !cm_stopping(mu->d.loop)) {
		/* The server refused a create we had answered: the name and
		 * the object we put in the caches are not there. What was
		 * written to it goes to a conflict copy (its store fails as
		 * stale, wb.c). */
		struct proto_attr pa;

		log_warn(LOG_MUT, "create of '%s' refused by the server: %s",
			 m->op.name ? m->op.name : "", strerror(-err));
		mcache_forget(mu->d.mc, &m->op.fid);
		if (mcache_attr(mu->d.mc, &m->op.parent, &pa) == 0) {
			/* A DV of our own makes mfetch fetch the listing
			 * again and tell the kernel which names changed. */
			pa.dv = mcache_local_dv(mu->d.mc);
			mfetch_dir_changed(mu->d.mf, &pa);
		} else {
			mcache_forget(mu->d.mc, &m->op.parent);
		}
	}
}

/* The record goes (unless kept), the caller hears, waiters wake. */
static void
finish_end(struct mreq *m, int err, const struct proto_op_result *r)
{
	struct mut *mu = m->mu;
	struct mwaitq wq = STAILQ_HEAD_INITIALIZER(wq);
	struct mwait *w;
	int rc;

	STAILQ_CONCAT(&wq, &m->waiters);
	if (m->removed)
		goto removed;
	/* Reintegration keeps a refused record (it becomes a conflict) and
	 * one that got no answer (it is resent first next time). */
	if (m->late && err == -EIO && !mu->stopped && !cm_stopping(mu->d.loop))
		log_warn(LOG_MUT,
			 "create of '%s' got no answer: kept in the "
			 "replay log, sent again at the next start",
			 m->op.name ? m->op.name : "");
	/* A late create without an answer (I/O error, shutdown) stays: its
	 * caller was answered, so it must reach the server some time. So
	 * does a record a crash left that found no server at its resend
	 * (mut_resume()): it may carry an acknowledged change (a late
	 * create, a store at close), and the reintegration sends it. */
	if (m->seq && mu->d.rlog && !(m->replay && err) &&
	    !(m->late && err == -EIO) && !(m->resent && err && !m->answered)) {
		if (m->op.kind == PROTO_OP_STORE && mu->h.data_durable)
			mu->h.data_durable(mu->h.arg, &m->op.fid, 1);
		/* Sync mode: in the log's next transaction (RLOG_A_LAZY: a
		 * record a crash keeps is resent under its opid). */
		rc = rlog_remove_flags(mu->d.rlog, m->seq,
				       m->replay ? RLOG_A_NOSYNC
						 : RLOG_A_NOSYNC | RLOG_A_LAZY);
		if (rc < 0 && rc != -ENOENT)
			log_warn(LOG_MUT,
				 "cannot drop replay record %llu: %s",
				 (unsigned long long)m->seq, strerror(-rc));
	} else if (m->seq && mu->d.rlog) {
		/* kept: a replay (drain, reintegration) may send it now */
		rlog_undirect(mu->d.rlog, m->seq);
	}
removed:
	if (m->done)
		m->done(m->arg, err, r);
	mreq_free(m);
	while ((w = STAILQ_FIRST(&wq))) {
		STAILQ_REMOVE_HEAD(&wq, link);
		w->wake(w);
	}
}

static void
finish(struct mreq *m, int err, const struct proto_op_result *r)
{
	struct mut *mu = m->mu;
	struct mut_batch *b = m->b;

	unlist(m);
	if (m->replay)
		finish_drop(m, err, r);
	finish_apply(m, err, r);
	if (b && b->single) {
		/* One member of a batch sent alone: note its answer for the
		 * base DVs of the next ones, then send the next. */
		for (size_t i = 0; i < b->n; i++) {
			if (b->r[i] != m)
				continue;
			b->r[i] = NULL;
			if (!err && r && r->has_attr) {
				b->got[i] = r->attr;
				b->have[i] = true;
			}
		}
	}
	finish_end(m, err, r);
	if (b && b->single)
		batch_single_next(b);
	if (!mu->stopped && !mu->batch_ending)
		replay_deferred(mu);
}

static void absorb_req(struct mreq *m);
static bool may_absorb(struct mut *mu, const struct mreq *m);

/* DISCONNECTED now (not reintegrating): the gate refuses our requests. */
static bool
disconnected(const struct mut *mu)
{
	return mu->d.conn && conn_mode(mu->d.conn) == CM_DISCONNECTED;
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mreq *m = arg;

	(void)fd;
	(void)what;
	/* Disconnected while it waited to try again (another op got no
	 * answer, a resend at start, fs disconnect): the gate would refuse
	 * it and the caller get EIO with the record dropped (a close's
	 * store, a mkdir), so it is absorbed as at its deadline. */
	if (disconnected(m->mu) && may_absorb(m->mu, m)) {
		absorb_req(m);
		return;
	}
	send_req(m);
}

/* May @m, without an answer, be absorbed (replay_absorb(): disconnect,
 * keep its record INFLIGHT, apply it locally, answer its caller)? An op
 * of the op log's own: not a replay (it has its own end), not a record
 * resent at start (mut_resume()). */
static bool
may_absorb(struct mut *mu, const struct mreq *m)
{
	return m->seq && !m->replay && !m->resent && !mu->stopped &&
	       !cm_stopping(mu->d.loop) && mu->h.may_absorb && mu->h.absorb &&
	       mu->h.may_absorb(mu->h.arg);
}

/* The server stopped answering: disconnect, and @m's op stays in the
 * log (INFLIGHT: it may have arrived) to be replayed; the caller gets
 * the local result. */
static void
absorb_req(struct mreq *m)
{
	struct mut *mu = m->mu;
	struct mwaitq wq = STAILQ_HEAD_INITIALIZER(wq);
	struct mut_batch *b = m->b && m->b->single ? m->b : NULL;
	struct mwait *w;

	unlist(m);
	STAILQ_CONCAT(&wq, &m->waiters);
	absorb_one(mu, m);
	if (b)
		for (size_t i = 0; i < b->n; i++)
			if (b->r[i] == m)
				b->r[i] = NULL;
	mreq_free(m);
	/* What waited for a late create goes on (and is absorbed in its
	 * turn). */
	while ((w = STAILQ_FIRST(&wq))) {
		STAILQ_REMOVE_HEAD(&wq, link);
		w->wake(w);
	}
	if (b)
		batch_single_next(b);
}

static bool
retriable(const struct http_result *res)
{
	if (res->err == -ECANCELED)
		return false;
	if (res->err)
		return true;
	return res->status == 0 || res->status == 502 || res->status == 503 ||
	       res->status == 504;
}

/*
 * A record resent at start (mut_resume()) goes to the server only while
 * the mount is connected: once it is not (a live op got no answer, fs
 * disconnect), the reintegration sends it with the rest of the log, and
 * a resend racing it (a retry, a late create's waiter) would only add a
 * second request under the same opid. Stopping counts too: it ends
 * without an answer.
 */
static bool
resent_offline(const struct mreq *m)
{
	const struct mut *mu = m->mu;

	return mu->stopped || cm_stopping(mu->d.loop) ||
	       (mu->d.conn && conn_offline(mu->d.conn));
}

static void
http_done(void *arg, const struct http_result *res)
{
	struct mreq *m = arg;
	struct mut *mu = m->mu;
	struct proto_op_result r;
	int rc;

	if (m->resent && retriable(res) &&
	    (util_now_ms() >= m->deadline || resent_offline(m))) {
		/* A record a crash left, without an answer: kept for the
		 * reintegration (mut_resume() stops). While still connected
		 * it is absorbed as a live op would be (the disconnect, and
		 * its change applied locally if it is not there yet: an op
		 * in flight at the kill; one already applied fails there,
		 * harmlessly), but nobody waits for that answer, and the
		 * record stays whatever it says. */
		if (!resent_offline(m) && mu->h.may_absorb && mu->h.absorb &&
		    mu->h.may_absorb(mu->h.arg))
			mu->h.absorb(mu->h.arg, &m->op, noop_done, NULL);
		finish(m, -EHOSTUNREACH, NULL);
		return;
	}
	m->answered = !res->err && !retriable(res);
	if (retriable(res) &&
	    (util_now_ms() >= m->deadline || disconnected(mu)) &&
	    may_absorb(mu, m)) {
		absorb_req(m);
		return;
	}
	if (m->replay && res->err && res->err != -ECANCELED) {
		finish(m, -EHOSTUNREACH, NULL);
		return;
	}
	if (retriable(res) && util_now_ms() < m->deadline && !mu->stopped &&
	    !cm_stopping(mu->d.loop)) {
		unsigned ms = 50u << (m->attempts < 6 ? m->attempts : 6);
		struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

		atomic_store(mu->d.online, 0);
		if (!m->retry_ev)
			m->retry_ev =
				evtimer_new(mu->d.loop->base, retry_cb, m);
		if (m->retry_ev && evtimer_add(m->retry_ev, &tv) == 0)
			return;
	}
	rc = cm_http_errno(res->err, res->status, res->body, res->body_len);
	if (rc == 0) {
		atomic_store(mu->d.online, 1);
		rc = proto_op_result_decode(res->body, res->body_len, &r);
		if (rc < 0) {
			log_err(LOG_MUT, "bad reply to %s: %s",
				proto_op_name(m->op.kind), strerror(-rc));
			finish(m, -EIO, NULL);
			return;
		}
		finish(m, 0, &r);
		return;
	}
	/* 410/412: what the op was based on is stale (a DV, or a name that
	 * now points elsewhere). Callers get -ESTALE for it; other
	 * ECANCELEDs (transport) are plain I/O errors. */
	if (res->status == 410 || res->status == 412)
		rc = -ESTALE;
	else if (rc == -ECANCELED)
		rc = -EIO;
	log_debug(LOG_MUT, "%s '%s' refused: %s (HTTP %ld)",
		  proto_op_name(m->op.kind), m->op.name ? m->op.name : "",
		  strerror(-rc), res->status);
	finish(m, rc, NULL);
}

static void
send_req(struct mreq *m)
{
	struct mut *mu = m->mu;
	struct http_request hr = {0};
	char path[160];
	size_t len = 0;
	char *body;

	if (m->resent && resent_offline(m)) {
		finish(m, -EHOSTUNREACH, NULL); /* kept: see http_done() */
		return;
	}
	m->attempts++;
	snprintf(path, sizeof(path), "/v1/vol/%s/op", mu->d.volume);
	body = proto_op_encode_ex(&m->op, enc_flags(mu), &len);
	if (!body) {
		finish(m, errno == ENOMEM ? -ENOMEM : -EINVAL, NULL);
		return;
	}
	hr.method = "POST";
	hr.path = path;
	hr.body = body;
	hr.body_len = len;
	hr.content_type = body_type(body, len);
	hr.on_done = http_done;
	hr.arg = m;
	hr.ungated = m->replay;
	if (!mu->d.http || !http_submit(mu->d.http, &hr)) {
		free(body);
		finish(m, -EIO, NULL);
		return;
	}
	free(body);
}

/* --- late creates: what must wait for them --- */

/*
 * The late create that @op must follow, or NULL: one about the object
 * @op changes or about a directory @op changes (so the server applies
 * them in the order the caller made them, and replies about that
 * directory come back in the order of its DVs). Members of batch @b
 * (may be NULL) and @self do not count. Loop thread.
 */
static struct mreq *
late_dep(struct mut *mu, const struct proto_op *op, const struct mut_batch *b,
	 const struct mreq *self)
{
	struct mreq *h;

	/* Late creates still waiting for an earlier one count too: an op
	 * about such a file must not overtake its create. */
	TAILQ_FOREACH(h, &mu->lates, llink) {
		if (h == self || (b && h->b == b))
			continue;
		if (self && self->order && h->order >= self->order)
			continue;
		if (touches(op, &h->op.fid) || touches(op, &h->op.parent))
			return h;
	}
	return NULL;
}

/* Loop thread: @m starts now (for the first time, or again after a
 * wait): it gets its place in the order of ops, and a late create joins
 * mu->lates. */
static void
mreq_order(struct mut *mu, struct mreq *m)
{
	if (!m->order)
		m->order = ++mu->order_next;
	if (m->late && !m->in_lates) {
		TAILQ_INSERT_TAIL(&mu->lates, m, llink);
		m->in_lates = true;
	}
}

/* Held, listed and in no batch: a store may take it into its batch. */
static bool
is_held(const struct mreq *h)
{
	return h->held && h->listed && !h->b;
}

static void
send_late(struct mut *mu, struct mreq *h)
{
	if (h->hold_ev)
		evtimer_del(h->hold_ev);
	h->held = false;
	h->deadline = util_now_ms() + mu->d.timeout_ms;
	send_req(h);
}

static void
hold_expired(evutil_socket_t fd, short what, void *arg)
{
	struct mreq *m = arg;

	(void)fd;
	(void)what;
	if (is_held(m) && !m->mu->stopped)
		send_late(m->mu, m);
}

/* @w waits for the late create @h; a held one is sent now, alone (one
 * still waiting for an earlier one is sent as soon as it may: start()). */
static void
wait_late(struct mut *mu, struct mreq *h, struct mwait *w)
{
	STAILQ_INSERT_TAIL(&h->waiters, w, link);
	if (is_held(h))
		send_late(mu, h);
}

static void
start(struct mut *mu, struct mreq *m)
{
	struct mreq *h;

	if (mu->stopped || cm_stopping(mu->d.loop) || !mu->d.http) {
		finish(m, -EIO, NULL);
		return;
	}
	mreq_order(mu, m);
	h = late_dep(mu, &m->op, NULL, m);
	if (h) {
		wait_late(mu, h, &m->w);
		return;
	}
	m->deadline = util_now_ms() + mu->d.timeout_ms;
	TAILQ_INSERT_TAIL(&mu->inflight, m, link);
	m->listed = true;
	mu->n++;
	/* Something waits for it already (it waited itself): no holding. */
	if (m->held && !STAILQ_EMPTY(&m->waiters))
		m->held = false;
	if (m->held) {
		/* Another op about the same directory is on its way: its
		 * reply and ours could come back out of DV order, and a
		 * listing fetched in between would not have our name. */
		struct mreq *o;

		TAILQ_FOREACH(o, &mu->inflight, link)
			if (o != m && !o->held &&
			    touches(&o->op, &m->op.parent))
				break;
		if (!o) {
			/* Held: goes with its file's first store, or alone
			 * after MUT_HOLD_MS (events about its directory wait
			 * while it is held). */
			struct timeval tv = {MUT_HOLD_MS / 1000,
					     (MUT_HOLD_MS % 1000) * 1000};

			if (!m->hold_ev)
				m->hold_ev = evtimer_new(mu->d.loop->base,
							 hold_expired, m);
			if (m->hold_ev)
				evtimer_add(m->hold_ev, &tv);
			return;
		}
		m->held = false;
	}
	send_req(m);
}

static void
wake_mreq(struct mwait *w)
{
	struct mreq *m = (struct mreq *)((char *)w - offsetof(struct mreq, w));

	start(m->mu, m);
}

static void
run_job(struct cm_loop *loop, struct cm_job *job)
{
	struct mreq *m = (struct mreq *)job;
	struct mut *mu = m->mu;

	(void)loop;
	/* Disconnected between the append and now: the record is INFLIGHT
	 * and never left; it is replayed with the rest. */
	if (mu->d.conn && conn_mode(mu->d.conn) == CM_DISCONNECTED && m->seq &&
	    !cm_stopping(mu->d.loop) && mu->h.absorb) {
		absorb_one(mu, m);
		mreq_free(m);
		return;
	}
	start(mu, m);
}

static struct mreq *
mreq_new(struct mut *mu, const struct proto_op *op, mut_done_fn done, void *arg)
{
	struct mreq *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	if (mut_op_copy(&m->op, op) < 0) {
		free(m);
		return NULL;
	}
	m->mu = mu;
	m->done = done;
	m->arg = arg;
	m->job.run = run_job;
	m->w.wake = wake_mreq;
	STAILQ_INIT(&m->waiters);
	return m;
}

int
mut_submit(struct mut *mu, const struct proto_op *op, mut_done_fn done,
	   void *arg)
{
	if (!mu)
		return -EIO;
	if (mu->d.conn && conn_logs_changes(mu->d.conn))
		return mu->h.submit_offline
			       ? mu->h.submit_offline(mu->h.arg, op, done, arg)
			       : -EIO;
	return mut_submit_direct(mu, op, done, arg);
}

static int
log_and_post(struct mut *mu, const struct proto_op *op, mut_done_fn done,
	     void *arg, bool late)
{
	struct rlog_effect eff;
	struct mreq *m;
	int rc;

	if (!mu)
		return -EIO;
	m = mreq_new(mu, op, done, arg);
	if (!m)
		return -ENOMEM;
	m->late = m->held = late;
	if (mu->d.rlog) {
		rc = rlog_append_ex(mu->d.rlog, &m->op,
				    RLOG_A_INFLIGHT | RLOG_A_NOSYNC, &eff);
		if (rc < 0) {
			rlog_effect_release(&eff);
			log_err(LOG_MUT, "cannot log %s: %s",
				proto_op_name(op->kind), strerror(-rc));
			mreq_free(m);
			return rc == -ENOSPC ? -ENOSPC : -EIO;
		}
		m->seq = eff.seq;
		memcpy(m->op.opid, eff.opid, sizeof(m->op.opid));
		rlog_effect_release(&eff);
	} else {
		static const uint8_t zero[16];
		struct fid r;

		if (!memcmp(m->op.opid, zero, 16) && fid_random(0, &r) == 0)
			memcpy(m->op.opid, r.oid, sizeof(m->op.opid));
	}
	cm_post(mu->d.loop, &m->job);
	return 0;
}

int
mut_submit_direct(struct mut *mu, const struct proto_op *op, mut_done_fn done,
		  void *arg)
{
	return log_and_post(mu, op, done, arg, false);
}

int
mut_hold_create(struct mut *mu, const struct proto_op *op, mut_done_fn done,
		void *arg)
{
	if (op->kind != PROTO_OP_CREATE)
		return -EINVAL;
	/* Without a log nothing could survive a crash: create as usual. */
	if (!mu || !mu->d.rlog)
		return -EAGAIN;
	if (mu->d.conn && conn_logs_changes(mu->d.conn))
		return -EAGAIN;
	return log_and_post(mu, op, done, arg, true);
}

static struct mreq *
find_late(struct mut *mu, const struct fid *fid)
{
	struct mreq *h;

	TAILQ_FOREACH(h, &mu->lates, llink)
		if (fid_eq(&h->op.fid, fid))
			return h;
	return NULL;
}

int
mut_late_state(struct mut *mu, const struct fid *fid)
{
	struct mreq *h = mu ? find_late(mu, fid) : NULL;

	if (!h)
		return MUT_LATE_NONE;
	return is_held(h) ? MUT_LATE_HELD : MUT_LATE_SENT;
}

struct late_waiter {
	struct mwait w;
	void (*cb)(void *arg);
	void *arg;
};

static void
wake_cb(struct mwait *w)
{
	struct late_waiter *lw = (struct late_waiter *)w;
	void (*cb)(void *) = lw->cb;
	void *arg = lw->arg;

	free(lw);
	cb(arg);
}

int
mut_after_late(struct mut *mu, const struct fid *fid, void (*cb)(void *arg),
	       void *arg)
{
	struct mreq *h = mu ? find_late(mu, fid) : NULL;
	struct late_waiter *lw;

	if (!h)
		return -ENOENT;
	lw = calloc(1, sizeof(*lw));
	if (!lw)
		return -ENOMEM;
	lw->w.wake = wake_cb;
	lw->cb = cb;
	lw->arg = arg;
	wait_late(mu, h, &lw->w);
	return 0;
}

static int
send_logged(struct mut *mu, uint64_t seq, const struct proto_op *op,
	    mut_done_fn done, void *arg, bool replay, bool resent)
{
	struct mreq *m = mreq_new(mu, op, done, arg);

	if (!m)
		return -ENOMEM;
	m->seq = seq;
	m->replay = replay;
	m->resent = resent;
	start(mu, m);
	return 0;
}

int
mut_send_logged(struct mut *mu, uint64_t seq, const struct proto_op *op,
		mut_done_fn done, void *arg)
{
	return send_logged(mu, seq, op, done, arg, false, false);
}

int
mut_send_resent(struct mut *mu, uint64_t seq, const struct proto_op *op,
		mut_done_fn done, void *arg)
{
	return send_logged(mu, seq, op, done, arg, false, true);
}

int
mut_send_replay(struct mut *mu, uint64_t seq, const struct proto_op *op,
		mut_done_fn done, void *arg)
{
	return send_logged(mu, seq, op, done, arg, true, false);
}

/* --- batches --- */

static void batch_send_req(struct mut_batch *b);

static void
batch_free(struct mut_batch *b)
{
	if (!b)
		return;
	if (b->retry_ev)
		event_free(b->retry_ev);
	free(b->r);
	free(b->got);
	free(b->have);
	free(b);
}

struct mut_batch *
mut_batch_new(struct mut *mu, unsigned flags)
{
	struct mut_batch *b;

	if (!mu)
		return NULL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->mu = mu;
	b->flags = flags;
	return b;
}

static int
batch_push(struct mut_batch *b, struct mreq *m)
{
	if (b->n == PROTO_BATCH_MAX)
		return -E2BIG;
	if (b->n == b->cap) {
		size_t nc = b->cap ? 2 * b->cap : 4;
		struct mreq **r = realloc(b->r, nc * sizeof(*r));

		if (!r)
			return -ENOMEM;
		b->r = r;
		b->cap = nc;
	}
	b->r[b->n++] = m;
	m->b = b;
	if (m->hold_ev)
		evtimer_del(m->hold_ev);
	return 0;
}

int
mut_batch_add(struct mut_batch *b, uint64_t seq, const struct proto_op *op,
	      mut_done_fn done, void *arg)
{
	struct mreq *m;
	int rc;

	if (!b)
		return -EINVAL;
	m = mreq_new(b->mu, op, done, arg);
	if (!m)
		return -ENOMEM;
	m->seq = seq;
	m->replay = (b->flags & MUT_B_REPLAY) != 0;
	rc = batch_push(b, m);
	if (rc < 0)
		mreq_free(m);
	return rc;
}

int
mut_batch_add_held(struct mut_batch *b, const struct fid *fid)
{
	struct mreq *h;
	int rc;

	if (!b)
		return -EINVAL;
	h = find_late(b->mu, fid);
	if (!h || !is_held(h))
		return -ENOENT;
	rc = batch_push(b, h);
	return rc;
}

size_t
mut_batch_len(const struct mut_batch *b)
{
	return b ? b->n : 0;
}

void
mut_batch_free(struct mut_batch *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++) {
		if (b->r[i]->listed) {
			/* A held create given back: held again. */
			struct timeval tv = {MUT_HOLD_MS / 1000,
					     (MUT_HOLD_MS % 1000) * 1000};

			b->r[i]->b = NULL;
			if (b->r[i]->hold_ev)
				evtimer_add(b->r[i]->hold_ev, &tv);
			continue;
		}
		mreq_free(b->r[i]);
	}
	batch_free(b);
}

/* Every member ends with @err (the request as a whole failed). */
static void
batch_finish_all(struct mut_batch *b, int err)
{
	struct mut *mu = b->mu;

	for (size_t i = 0; i < b->n; i++)
		unlist(b->r[i]);
	for (size_t i = 0; i < b->n; i++)
		finish_apply(b->r[i], err, NULL);
	for (size_t i = 0; i < b->n; i++)
		finish_end(b->r[i], err, NULL);
	batch_free(b);
	if (!mu->stopped)
		replay_deferred(mu);
}

/* An entry of a batch reply as an errno (0: applied). 424 (not applied:
 * an op before it failed on the server) is -EAGAIN. */
static int
entry_errno(const struct proto_batch_result *e)
{
	if (e->status >= 200 && e->status < 300)
		return 0;
	if (e->status == 410 || e->status == 412)
		return -ESTALE;
	if (e->status == 424)
		return -EAGAIN;
	if (e->err.err > 0)
		return -e->err.err;
	return -proto_status_to_errno(e->status);
}

/* Every cache change first, then the records and the callers in order:
 * a caller woken by one member sees what the later ones changed too. */
static void
batch_finish_results(struct mut_batch *b, struct proto_batch_result *out)
{
	struct mut *mu = b->mu;

	for (size_t i = 0; i < b->n; i++)
		unlist(b->r[i]);
	for (size_t i = 0; i < b->n; i++) {
		int e = entry_errno(&out[i]);

		if (e && e != -EAGAIN)
			log_debug(LOG_MUT, "%s '%s' refused in a batch: %s",
				  proto_op_name(b->r[i]->op.kind),
				  b->r[i]->op.name ? b->r[i]->op.name : "",
				  strerror(-e));
		finish_apply(b->r[i], e, e ? NULL : &out[i].res);
	}
	if (mu->d.rlog) {
		/* The records the server answered go in one transaction. */
		uint64_t seqs[PROTO_BATCH_MAX];
		struct fid fids[PROTO_BATCH_MAX];
		size_t ns = 0, nf = 0;
		int rc;

		for (size_t i = 0; i < b->n; i++) {
			struct mreq *m = b->r[i];
			int e = entry_errno(&out[i]);

			if (!m->seq || (m->replay && e))
				continue;
			seqs[ns++] = m->seq;
			m->removed = true;
			if (m->op.kind == PROTO_OP_STORE)
				fids[nf++] = m->op.fid;
		}
		if (nf && mu->h.data_durable)
			mu->h.data_durable(mu->h.arg, fids, nf);
		rc = rlog_remove_batch_flags(
			mu->d.rlog, seqs, ns,
			(b->flags & MUT_B_REPLAY) ? RLOG_A_NOSYNC
						  : RLOG_A_NOSYNC | RLOG_A_LAZY);
		if (rc < 0) {
			log_warn(LOG_MUT, "cannot drop %zu replay records: %s",
				 ns, strerror(-rc));
			for (size_t i = 0; i < b->n; i++)
				b->r[i]->removed = false;
		}
	}
	for (size_t i = 0; i < b->n; i++) {
		int e = entry_errno(&out[i]);

		finish_end(b->r[i], e, e ? NULL : &out[i].res);
	}
	batch_free(b);
	if (!mu->stopped)
		replay_deferred(mu);
}

/* Server without /batch: one at a time, in order. */
static void
batch_single_next(struct mut_batch *b)
{
	struct mreq *m = NULL;

	while (b->next < b->n && !(m = b->r[b->next]))
		b->next++;
	if (b->next >= b->n) {
		batch_free(b);
		return;
	}
	b->next++;
	if ((m->op.kind == PROTO_OP_STORE || m->op.kind == PROTO_OP_SETATTR) &&
	    m->op.base_dv == 0) {
		for (size_t j = 0; j + 1 < b->next; j++)
			if (b->have[j] && fid_eq(&b->got[j].fid, &m->op.fid))
				m->op.base_dv = b->got[j].dv;
	}
	if (b->mu->stopped || cm_stopping(b->mu->d.loop) || !b->mu->d.http) {
		finish(m, -EIO, NULL);
		return;
	}
	m->attempts = 0;
	m->deadline = util_now_ms() + b->mu->d.timeout_ms;
	send_req(m);
}

static void
batch_go_single(struct mut_batch *b, bool nobatch)
{
	if (nobatch && !b->mu->nobatch)
		log_info(LOG_MUT, "the server has no batch requests: ops go "
				  "one at a time");
	b->got = calloc(b->n, sizeof(*b->got));
	b->have = calloc(b->n, sizeof(*b->have));
	if (!b->got || !b->have) {
		batch_finish_all(b, -ENOMEM);
		return;
	}
	b->single = true;
	b->next = 0;
	if (nobatch)
		b->mu->nobatch = true;
	batch_single_next(b);
}

/* May batch @b, without an answer, be absorbed (may_absorb())? */
static bool
batch_may_absorb(struct mut_batch *b)
{
	struct mut *mu = b->mu;

	return !(b->flags & MUT_B_REPLAY) && !mu->stopped &&
	       !cm_stopping(mu->d.loop) && mu->h.may_absorb && mu->h.absorb &&
	       mu->h.may_absorb(mu->h.arg);
}

/* As for a single op (absorb_req()): disconnect, the records stay
 * INFLIGHT, each op is applied locally, in order. */
static void
batch_absorb(struct mut_batch *b)
{
	struct mut *mu = b->mu;

	for (size_t i = 0; i < b->n; i++)
		unlist(b->r[i]);
	for (size_t i = 0; i < b->n; i++) {
		struct mreq *m = b->r[i];
		struct mwaitq wq = STAILQ_HEAD_INITIALIZER(wq);
		struct mwait *w;

		STAILQ_CONCAT(&wq, &m->waiters);
		absorb_one(mu, m);
		mreq_free(m);
		while ((w = STAILQ_FIRST(&wq))) {
			STAILQ_REMOVE_HEAD(&wq, link);
			w->wake(w);
		}
	}
	batch_free(b);
}

bool
mut_can_absorb(struct mut *mu)
{
	return mu && !mu->stopped && !cm_stopping(mu->d.loop) &&
	       mu->h.may_absorb && mu->h.absorb && mu->h.may_absorb(mu->h.arg);
}

void
mut_batch_absorb(struct mut_batch *b)
{
	if (b)
		batch_absorb(b);
}

static void
batch_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mut_batch *b = arg;

	(void)fd;
	(void)what;
	/* Disconnected meanwhile: as retry_cb(). */
	if (disconnected(b->mu) && batch_may_absorb(b)) {
		batch_absorb(b);
		return;
	}
	batch_send_req(b);
}

static void
batch_http_done(void *arg, const struct http_result *res)
{
	struct mut_batch *b = arg;
	struct mut *mu = b->mu;
	struct proto_batch_result *out = NULL;
	bool replay = b->flags & MUT_B_REPLAY;
	int rc;

	if (retriable(res) &&
	    (util_now_ms() >= b->deadline || disconnected(mu)) &&
	    batch_may_absorb(b)) {
		batch_absorb(b);
		return;
	}
	if (replay && res->err && res->err != -ECANCELED) {
		batch_finish_all(b, -EHOSTUNREACH);
		return;
	}
	if (retriable(res) && util_now_ms() < b->deadline && !mu->stopped &&
	    !cm_stopping(mu->d.loop)) {
		unsigned ms = 50u << (b->attempts < 6 ? b->attempts : 6);
		struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

		atomic_store(mu->d.online, 0);
		if (!b->retry_ev)
			b->retry_ev = evtimer_new(mu->d.loop->base,
						  batch_retry_cb, b);
		if (b->retry_ev && evtimer_add(b->retry_ev, &tv) == 0)
			return;
	}
	if (res->status == 404 && !mu->stopped && !cm_stopping(mu->d.loop)) {
		batch_go_single(b, true);
		return;
	}
	rc = cm_http_errno(res->err, res->status, res->body, res->body_len);
	if (rc == 0) {
		atomic_store(mu->d.online, 1);
		rc = proto_batch_reply_decode(res->body, res->body_len, b->n,
					      &out);
		if (rc < 0) {
			log_err(LOG_MUT, "bad reply to a batch of %zu: %s",
				b->n, strerror(-rc));
			batch_finish_all(b, -EIO);
			return;
		}
		batch_finish_results(b, out);
		free(out);
		return;
	}
	if (res->status == 410 || res->status == 412)
		rc = -ESTALE;
	else if (rc == -ECANCELED)
		rc = -EIO;
	log_warn(LOG_MUT, "batch of %zu refused: %s (HTTP %ld)", b->n,
		 strerror(-rc), res->status);
	batch_finish_all(b, rc);
}

static void
batch_send_req(struct mut_batch *b)
{
	struct mut *mu = b->mu;
	struct http_request hr = {0};
	struct proto_op *ops;
	char path[160];
	size_t len = 0;
	char *body;

	b->attempts++;
	if (mu->stopped || cm_stopping(mu->d.loop) || !mu->d.http) {
		batch_finish_all(b, -EIO);
		return;
	}
	ops = malloc(b->n * sizeof(*ops));
	if (!ops) {
		batch_finish_all(b, -ENOMEM);
		return;
	}
	for (size_t i = 0; i < b->n; i++)
		ops[i] = b->r[i]->op;
	body = proto_batch_encode_ex(ops, b->n, false, enc_flags(mu), &len);
	free(ops);
	if (!body) {
		batch_finish_all(b, errno == ENOMEM ? -ENOMEM : -EINVAL);
		return;
	}
	snprintf(path, sizeof(path), "/v1/vol/%s/batch", mu->d.volume);
	hr.method = "POST";
	hr.path = path;
	hr.body = body;
	hr.body_len = len;
	hr.content_type = body_type(body, len);
	hr.on_done = batch_http_done;
	hr.arg = b;
	hr.ungated = (b->flags & MUT_B_REPLAY) != 0;
	if (!http_submit(mu->d.http, &hr)) {
		free(body);
		batch_finish_all(b, -EIO);
		return;
	}
	free(body);
}

static void batch_start(struct mut_batch *b);

static void
wake_batch(struct mwait *w)
{
	batch_start((struct mut_batch *)((char *)w -
					 offsetof(struct mut_batch, w)));
}

static void
batch_start(struct mut_batch *b)
{
	struct mut *mu = b->mu;

	if (mu->stopped || cm_stopping(mu->d.loop) || !mu->d.http) {
		batch_finish_all(b, -EIO);
		return;
	}
	for (size_t i = 0; i < b->n; i++)
		mreq_order(mu, b->r[i]);
	for (size_t i = 0; i < b->n; i++) {
		struct mreq *h = late_dep(mu, &b->r[i]->op, b, b->r[i]);

		if (h) {
			b->w.wake = wake_batch;
			wait_late(mu, h, &b->w);
			return;
		}
	}
	b->deadline = util_now_ms() + mu->d.timeout_ms;
	for (size_t i = 0; i < b->n; i++) {
		struct mreq *m = b->r[i];

		m->held = false;
		if (!m->listed) {
			TAILQ_INSERT_TAIL(&mu->inflight, m, link);
			m->listed = true;
			mu->n++;
		}
	}
	if (b->n == 1 || mu->nobatch) {
		/* One op needs no batch; a server without /batch gets
		 * them one at a time. */
		batch_go_single(b, false);
		return;
	}
	batch_send_req(b);
}

int
mut_batch_send(struct mut_batch *b)
{
	if (!b)
		return -EINVAL;
	if (!b->n) {
		batch_free(b);
		return 0;
	}
	batch_start(b);
	return 0;
}

/* --- replay in batches --- */

struct mbatch {
	struct mut *mu;
	size_t n;
	struct mreq **m; /* n of them, listed in flight */
	void (*all)(void *arg, int err);
	void *all_arg;
};

/*
 * The records of @b the server took, before any reply is applied: the
 * acked hook hears each (the DV map learns its DV first, as finish_drop()
 * does for one), then they leave the log in ONE transaction instead of
 * one each (a replay of 10,000 small files made 20,000 of them). A record
 * whose removal failed is left to finish_drop() (removed one by one; the
 * hook is not called twice). The replies are then applied one after the
 * other, and what a member not applied yet names stays ahead of the
 * server meanwhile (mbatch_ahead_from(), mut_batch_ahead()), as when its
 * record was still in the log.
 */
static void
mbatch_drop_acked(struct mbatch *b, const struct proto_batch_result *res)
{
	struct mut *mu = b->mu;
	uint64_t seqs[PROTO_BATCH_MAX];
	struct fid fids[PROTO_BATCH_MAX];
	size_t ns = 0, nf = 0;
	int rc;

	if (!mu->d.rlog)
		return;
	for (size_t i = 0; i < b->n && ns < PROTO_BATCH_MAX; i++) {
		struct mreq *m = b->m[i];

		if (res[i].status != 200 || !m->seq || m->removed)
			continue;
		if (mu->h.acked && !m->acked)
			mu->h.acked(mu->h.arg, m->seq, &m->op, &res[i].res);
		m->acked = true;
		seqs[ns++] = m->seq;
		if (m->op.kind == PROTO_OP_STORE)
			fids[nf++] = m->op.fid;
	}
	if (!ns)
		return;
	/* Bytes only the log held (format 3) reach the chunk store's disk
	 * first, every file of the batch in one pass (wb_data_durable()):
	 * this is where a writeback close's chunk syncs went. */
	if (nf && mu->h.data_durable)
		mu->h.data_durable(mu->h.arg, fids, nf);
	rc = rlog_remove_batch_flags(mu->d.rlog, seqs, ns, RLOG_A_NOSYNC);
	if (rc < 0) {
		log_warn(LOG_MUT, "cannot drop %zu replayed records: %s", ns,
			 strerror(-rc));
		return;
	}
	for (size_t i = 0; i < b->n; i++)
		if (res[i].status == 200 && b->m[i]->seq)
			b->m[i]->removed = true;
}

/* The members of @b (NULL: none) from @next on that the server took
 * count as ahead of the server. Set before their records are removed,
 * so that the log or this names them at every moment. */
static void
mbatch_ahead_from(struct mut *mu, const struct mbatch *b,
		  const struct proto_batch_result *res, size_t next)
{
	pthread_mutex_lock(&mu->ending_mu);
	mu->ending = b;
	mu->ending_res = res;
	mu->ending_next = next;
	atomic_store(&mu->ending_on, b != NULL);
	pthread_mutex_unlock(&mu->ending_mu);
}

bool
mut_batch_ahead(struct mut *mu, const struct fid *fid)
{
	bool ahead = false;

	if (!mu || fid_is_null(fid) || !atomic_load(&mu->ending_on))
		return false;
	pthread_mutex_lock(&mu->ending_mu);
	for (size_t i = mu->ending_next; mu->ending && i < mu->ending->n;
	     i++) {
		const struct mreq *m = mu->ending->m[i];

		if (mu->ending_res[i].status == 200 && touches(&m->op, fid)) {
			ahead = true;
			break;
		}
	}
	pthread_mutex_unlock(&mu->ending_mu);
	return ahead;
}

static void
mbatch_end(struct mbatch *b, int err, const struct proto_batch_result *res)
{
	struct mut *mu = b->mu;

	/* One pass over the held-back events at the end, not one per
	 * member: each pass is (events x ops in flight). */
	mu->batch_ending = true;
	if (!err) {
		mbatch_ahead_from(mu, b, res, 0);
		mbatch_drop_acked(b, res);
	}
	for (size_t i = 0; i < b->n; i++) {
		int rc = err;

		/* The later members' changes stay ahead while this one's
		 * reply is applied (their records are gone already). */
		if (!err)
			mbatch_ahead_from(mu, b, res, i + 1);
		if (!err && res[i].status == 200) {
			finish(b->m[i], 0, &res[i].res);
			continue;
		}
		if (!err) {
			/* As a single op's refusal (http_done). */
			rc = res[i].status == 410 || res[i].status == 412
				     ? -ESTALE
				     : -(res[i].err.err ? res[i].err.err : EIO);
			if (rc == -ECANCELED)
				rc = -ESTALE;
			log_debug(LOG_MUT, "%s '%s' refused in a batch: %s (%d)",
				  proto_op_name(b->m[i]->op.kind),
				  b->m[i]->op.name ? b->m[i]->op.name : "",
				  strerror(-rc), res[i].status);
		}
		finish(b->m[i], rc, NULL);
	}
	mbatch_ahead_from(mu, NULL, NULL, 0);
	mu->batch_ending = false;
	if (!mu->stopped)
		replay_deferred(mu);
	if (b->all)
		b->all(b->all_arg, err);
	free(b->m);
	free(b);
}

static void
mbatch_http_done(void *arg, const struct http_result *res)
{
	struct mbatch *b = arg;
	struct mut *mu = b->mu;
	struct proto_batch_result *r = NULL;
	int rc;

	if (res->err && res->err != -ECANCELED) {
		mbatch_end(b, -EHOSTUNREACH, NULL);
		return;
	}
	if (res->err || mu->stopped) {
		mbatch_end(b, -EIO, NULL);
		return;
	}
	if (res->status == 0 || res->status == 502 || res->status == 503 ||
	    res->status == 504) {
		mbatch_end(b, -EHOSTUNREACH, NULL);
		return;
	}
	if (res->status == 404 || res->status == 405) {
		/* A server of protocol 2: no such route, nothing applied. */
		mbatch_end(b, -ENOSYS, NULL);
		return;
	}
	if (res->status != 200) {
		log_warn(LOG_MUT, "a batch of %zu ops was refused as a whole "
				  "(HTTP %ld)",
			 b->n, res->status);
		mbatch_end(b, -EIO, NULL);
		return;
	}
	atomic_store(mu->d.online, 1);
	rc = proto_batch_reply_decode(res->body, res->body_len, b->n, &r);
	if (rc < 0) {
		log_err(LOG_MUT, "bad reply to a batch of %zu ops: %s", b->n,
			strerror(-rc));
		mbatch_end(b, -EIO, NULL);
		return;
	}
	mbatch_end(b, 0, r);
	free(r);
}

int
mut_send_replay_batch(struct mut *mu, const struct mut_batch_op *ops, size_t n,
		      void (*all)(void *arg, int err), void *all_arg)
{
	struct http_request hr = {0};
	struct proto_op *arr = NULL;
	struct mbatch *b;
	char path[160];
	size_t len = 0, i;
	char *body;
	int rc = -ENOMEM;

	if (!mu || mu->stopped || cm_stopping(mu->d.loop) || !mu->d.http)
		return -EIO;
	if (n == 0 || n > PROTO_BATCH_MAX)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	arr = calloc(n, sizeof(*arr));
	if (!b || !arr || !(b->m = calloc(n, sizeof(*b->m))))
		goto fail;
	b->mu = mu;
	b->all = all;
	b->all_arg = all_arg;
	for (i = 0; i < n; i++) {
		b->m[i] = mreq_new(mu, ops[i].op, ops[i].done, ops[i].arg);
		if (!b->m[i])
			goto fail;
		b->m[i]->seq = ops[i].seq;
		b->m[i]->replay = true;
		arr[i] = b->m[i]->op; /* shallow: read by the encoder only */
		b->n++;
	}
	body = proto_batch_encode_ex(arr, n, false, enc_flags(mu), &len);
	if (!body) {
		rc = errno == E2BIG ? -E2BIG : errno == ENOMEM ? -ENOMEM
							       : -EINVAL;
		goto fail;
	}
	snprintf(path, sizeof(path), "/v1/vol/%s/batch", mu->d.volume);
	hr.method = "POST";
	hr.path = path;
	hr.body = body;
	hr.body_len = len;
	hr.content_type = body_type(body, len);
	hr.on_done = mbatch_http_done;
	hr.arg = b;
	hr.ungated = true;
	if (!http_submit(mu->d.http, &hr)) {
		free(body);
		rc = -EIO;
		goto fail;
	}
	free(body);
	free(arr);
	/* In flight now: events about these objects wait for the reply. */
	for (i = 0; i < n; i++) {
		TAILQ_INSERT_TAIL(&mu->inflight, b->m[i], link);
		b->m[i]->listed = true;
		mu->n++;
	}
	return 0;
fail:
	free(arr);
	if (b) {
		for (i = 0; i < b->n; i++)
			mreq_free(b->m[i]);
		free(b->m);
		free(b);
	}
	return rc;
}

/* --- resume after a crash --- */

/*
 * The records a crash left INFLIGHT are resent one at a time, in seq
 * order, under their opids, while the mount is connected. Only those:
 * the last one's seq is noted at start (resume_upto, by
 * mut_show_lates() before the mount answers), and what the op log
 * appends after it is its own (a create held while the resume ran was
 * resent beside its own batch, then dropped when that resend failed:
 * the acknowledged file ended as a conflict copy).
 *
 * A resend without an answer ends the resume: the record stays
 * INFLIGHT, the mount disconnects (auto, as for any mutation without an
 * answer: conn.h) and the reintegration its probe starts sends it, and
 * every record after it, in seq order. The same when the mount is not
 * connected any more (a live op got no answer, fs disconnect): the
 * records wait for the reintegration. Either way the dirty files come
 * next (log_resumed: wb_resume_crashed(), which logs them while
 * disconnected). A refusal (the server answered) is logged and the
 * resume goes on.
 */
static void resume_next(struct mut *mu);

static void
resume_end(struct mut *mu)
{
	mu->resuming = false;
	if (mu->h.log_resumed)
		mu->h.log_resumed(mu->h.arg);
}

static void
resume_done(void *arg, int err, const struct proto_op_result *r)
{
	struct mut *mu = arg;

	(void)r;
	if (mu->stopped) {
		mu->resuming = false;
		return;
	}
	if (err == -EHOSTUNREACH) {
		/* No answer: kept (finish_end(), wb_store_end()). */
		log_warn(LOG_MUT,
			 "record %llu left by a crash got no answer: it and "
			 "the rest wait for the reintegration",
			 (unsigned long long)mu->resume_after);
		if ((!mu->d.conn || conn_mode(mu->d.conn) == CM_CONNECTED) &&
		    !cm_stopping(mu->d.loop) && mu->h.lost)
			mu->h.lost(mu->h.arg, "the server does not answer");
		resume_end(mu);
		return;
	}
	if (err)
		log_warn(LOG_MUT, "resent record %llu refused: %s",
			 (unsigned long long)mu->resume_after, strerror(-err));
	resume_next(mu);
}

static void
resume_next(struct mut *mu)
{
	struct rlog_rec rec;
	int rc;

	for (;;) {
		if (!mu->d.rlog || cm_stopping(mu->d.loop)) {
			mu->resuming = false;
			return;
		}
		if (mu->d.conn && conn_offline(mu->d.conn)) {
			/* Disconnected meanwhile: the reintegration sends
			 * what is left, in order. */
			log_info(LOG_MUT, "not connected: the records a crash "
					  "left wait for the reintegration");
			resume_end(mu);
			return;
		}
		rc = rlog_next(mu->d.rlog, mu->resume_after,
			       RLOG_MASK(RLOG_INFLIGHT), &rec);
		if (rc == -EUCLEAN && rec.seq > mu->resume_after &&
		    rec.seq <= mu->resume_upto) {
			mu->resume_after = rec.seq; /* damaged: step over */
			continue;
		}
		if (rc < 0 || rec.seq > mu->resume_upto) {
			if (rc == 0)
				rlog_rec_release(&rec);
			resume_end(mu);
			return;
		}
		mu->resume_after = rec.seq;
		log_info(LOG_MUT, "resending %s (record %llu) left by a crash",
			 proto_op_name(rec.op.kind),
			 (unsigned long long)rec.seq);
		if (rec.op.kind == PROTO_OP_STORE)
			rc = mu->h.resend_store
				     ? mu->h.resend_store(mu->h.arg, rec.seq,
							  &rec.op, resume_done,
							  mu)
				     : -EIO;
		else
			rc = mut_send_resent(mu, rec.seq, &rec.op, resume_done,
					     mu);
		rlog_rec_release(&rec);
		if (rc == 0)
			return; /* resume_done() goes on */
		log_warn(LOG_MUT, "cannot resend record %llu: %s",
			 (unsigned long long)mu->resume_after, strerror(-rc));
	}
}

/* The last INFLIGHT record now: what mut_resume() takes. */
static void
note_upto(struct mut *mu)
{
	struct rlog_rec rec;
	uint64_t after = 0;
	int rc;

	mu->resume_upto = 0;
	while ((rc = rlog_next(mu->d.rlog, after, RLOG_MASK(RLOG_INFLIGHT),
			       &rec)) == 0 ||
	       rc == -EUCLEAN) {
		if (rec.seq <= after)
			break;
		after = mu->resume_upto = rec.seq;
		if (rc == 0)
			rlog_rec_release(&rec);
	}
	mu->upto_set = true;
}

/*
 * At start, before the mount answers the kernel: the name of each create
 * a crash left INFLIGHT goes back into the cached listing of its
 * directory (as mcache_late_dir() put it there when the create was held;
 * that edit is not written to meta.tdb), and the new file gets
 * attributes (DV 0, as a held create's) if none are cached. Without it,
 * a lookup before the resent create's answer found the name missing and
 * the kernel kept that negative entry (entry-timeout, a day) after the
 * answer added it: the file written before the crash was not there
 * (t2340). The write state (dirty.tdb) gives its size and bytes.
 */
void
mut_show_lates(struct mut *mu)
{
	struct rlog_rec rec;
	uint64_t after = 0;

	if (!mu || !mu->d.rlog)
		return;
	note_upto(mu);
	if (!mu->d.mc)
		return;
	while (rlog_next(mu->d.rlog, after, RLOG_MASK(RLOG_INFLIGHT),
			 &rec) == 0) {
		const struct proto_op *op = &rec.op;
		struct proto_attr a, cur;
		struct vc_dir *d;
		int rc;

		after = rec.seq;
		if (op->kind != PROTO_OP_CREATE || !op->name ||
		    op->type != PROTO_T_FILE) {
			rlog_rec_release(&rec);
			continue;
		}
		memset(&a, 0, sizeof(a));
		a.fid = op->fid;
		a.type = PROTO_T_FILE;
		a.mode = op->mode;
		a.uid = op->uid;
		a.gid = op->gid;
		a.nlink = 1;
		a.atime_ns = a.mtime_ns = a.ctime_ns = util_wall_ns();
		if (mcache_attr(mu->d.mc, &a.fid, &cur) < 0)
			mcache_local_attr(mu->d.mc, &a);
		if (mcache_dir(mu->d.mc, &op->parent, &d) == 0) {
			long idx = vc_dir_find(d, op->name, strlen(op->name));

			vc_dir_put(d);
			rc = idx >= 0 ? 0
				      : mcache_late_dir(mu->d.mc, &op->parent,
							op->name, &a);
			if (rc < 0)
				log_debug(LOG_MUT,
					  "a resent create's name not listed: "
					  "%s",
					  strerror(-rc));
		}
		rlog_rec_release(&rec);
	}
}

void
mut_resume(struct mut *mu)
{
	if (!mu || mu->stopped || mu->resuming)
		return;
	/* The bound mut_show_lates() noted before the mount answered (a
	 * change since has records of its own), else the last now. */
	if (!mu->upto_set && mu->d.rlog)
		note_upto(mu);
	mu->upto_set = false;
	mu->resuming = true;
	mu->resume_after = 0;
	resume_next(mu);
}

/* --- setup --- */

struct mut *
mut_new(const struct mut_deps *deps, const struct mut_hooks *hooks)
{
	struct mut *mu = calloc(1, sizeof(*mu));

	if (!mu)
		return NULL;
	mu->d = *deps;
	if (hooks)
		mu->h = *hooks;
	TAILQ_INIT(&mu->inflight);
	TAILQ_INIT(&mu->lates);
	pthread_mutex_init(&mu->ending_mu, NULL);
	return mu;
}

void
mut_set_server_version(struct mut *mu, int version)
{
	if (mu)
		atomic_store(&mu->attach_ok, version >= PROTO_V_ATTACH);
}

void
mut_stop(struct mut *mu)
{
	struct mreq *m;

	if (!mu || mu->stopped)
		return;
	mu->stopped = true;
	mu->d.http = NULL;
	while ((m = TAILQ_FIRST(&mu->inflight))) {
		if (m->b && !m->b->single)
			batch_finish_all(m->b, -EIO);
		else
			finish(m, -EIO, NULL);
	}
}

void
mut_free(struct mut *mu)
{
	if (!mu)
		return;
	mut_stop(mu);
	free(mu->deferred);
	pthread_mutex_destroy(&mu->ending_mu);
	free(mu);
}
