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
#include "common/log.h"
#include "common/util.h"

#define MUT_DEFER_MAX 256

struct mreq {
	struct cm_job job;
	TAILQ_ENTRY(mreq) link;
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
};
TAILQ_HEAD(mreqq, mreq);

struct mut {
	struct mut_deps d;
	struct mut_hooks h;
	bool stopped; /* mut_stop(): nothing new starts */
	struct mreqq inflight;
	unsigned n;
	struct proto_event deferred[MUT_DEFER_MAX];
	size_t ndeferred;
	bool overflow; /* deferred events were lost: revalidate */
	/* resume state */
	uint64_t resume_after;
	bool resuming;
};

static void send_req(struct mreq *m);

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
	if (m->retry_ev)
		event_free(m->retry_ev);
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

/* Apply the server's reply @r to @op to the caches. */
static void
apply_reply(struct mut *mu, const struct proto_op *op,
	    const struct proto_op_result *r)
{
	switch (op->kind) {
	case PROTO_OP_CREATE:
	case PROTO_OP_MKDIR:
	case PROTO_OP_SYMLINK:
	case PROTO_OP_LINK:
		if (r->has_attr)
			mcache_local_attr(mu->d.mc, &r->attr);
		if (r->has_parent)
			mfetch_local_dir(mu->d.mf, &r->parent, NULL, op->name,
					 &r->attr);
		break;
	case PROTO_OP_UNLINK:
	case PROTO_OP_RMDIR:
		if (r->has_victim && r->victim.nlink > 0 &&
		    op->kind == PROTO_OP_UNLINK)
			mcache_local_attr(mu->d.mc, &r->victim);
		if (r->has_parent)
			mfetch_local_dir(mu->d.mf, &r->parent, op->name, NULL,
					 NULL);
		if (r->has_victim &&
		    (r->victim.nlink == 0 || op->kind == PROTO_OP_RMDIR))
			file_gone(mu, &op->fid);
		break;
	case PROTO_OP_RENAME:
		if (r->has_attr)
			mcache_local_attr(mu->d.mc, &r->attr);
		if (op->flags & PROTO_RENAME_EXCHANGE) {
			/* Both names stay; they swapped objects. */
			if (r->has_victim)
				mcache_local_attr(mu->d.mc, &r->victim);
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
				mcache_local_attr(mu->d.mc, &r->victim);
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
			mcache_local_attr(mu->d.mc, &r->attr);
		break;
	default:
		break;
	}
}

/* --- deferred events --- */

bool
mut_defer_event(struct mut *mu, const struct proto_event *ev)
{
	struct mreq *m;

	if (!mu || mu->stopped || fid_is_null(&ev->fid))
		return false;
	TAILQ_FOREACH(m, &mu->inflight, link) {
		if (!touches(&m->op, &ev->fid))
			continue;
		if (mu->ndeferred < MUT_DEFER_MAX)
			mu->deferred[mu->ndeferred++] = *ev;
		else
			mu->overflow = true;
		return true;
	}
	return false;
}

/* Replay the held-back events whose objects have no op in flight now. */
static void
replay_deferred(struct mut *mu)
{
	struct proto_event evs[MUT_DEFER_MAX];
	size_t n = 0, keep = 0;

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
	if (mu->overflow && TAILQ_EMPTY(&mu->inflight)) {
		mu->overflow = false;
		mfetch_revalidate_all(mu->d.mf);
	}
}

/* --- sending --- */

static void
finish(struct mreq *m, int err, const struct proto_op_result *r)
{
	struct mut *mu = m->mu;
	int rc;

	if (m->listed) {
		TAILQ_REMOVE(&mu->inflight, m, link);
		m->listed = false;
		mu->n--;
	}
	/* Reintegration keeps a refused record (it becomes a conflict) and
	 * one that got no answer (it is resent first next time). The record
	 * goes before the reply is applied: what the caches ask of the log
	 * then (is an object's local view ahead of the server? writeback)
	 * must not count the change the server just took. */
	if (m->replay && !err && r && mu->h.acked)
		mu->h.acked(mu->h.arg, m->seq, &m->op, r);
	if (m->seq && mu->d.rlog && !(m->replay && err)) {
		rc = rlog_remove_flags(mu->d.rlog, m->seq, RLOG_A_NOSYNC);
		if (rc < 0 && rc != -ENOENT)
			log_warn(LOG_MUT,
				 "cannot drop replay record %llu: %s",
				 (unsigned long long)m->seq, strerror(-rc));
	}
	if (!err && r) {
		apply_reply(mu, &m->op, r);
		if (r->has_attr)
			mfetch_own_change(mu->d.mf, &r->attr.fid, r->event_seq);
	}
	if (m->done)
		m->done(m->arg, err, r);
	mreq_free(m);
	if (!mu->stopped)
		replay_deferred(mu);
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	send_req(arg);
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

static void
http_done(void *arg, const struct http_result *res)
{
	struct mreq *m = arg;
	struct mut *mu = m->mu;
	struct proto_op_result r;
	int rc;

	if (retriable(res) && util_now_ms() >= m->deadline && m->seq &&
	    !m->replay && !mu->stopped && !cm_stopping(mu->d.loop) &&
	    mu->h.may_absorb && mu->h.absorb && mu->h.may_absorb(mu->h.arg)) {
		/* The server stopped answering: disconnect, and this op
		 * stays in the log (INFLIGHT: it may have arrived) to be
		 * replayed; the caller gets the local result. */
		if (m->listed) {
			TAILQ_REMOVE(&mu->inflight, m, link);
			m->listed = false;
			mu->n--;
		}
		mu->h.absorb(mu->h.arg, &m->op, m->done, m->arg);
		mreq_free(m);
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

	m->attempts++;
	snprintf(path, sizeof(path), "/v1/vol/%s/op", mu->d.volume);
	body = proto_op_encode(&m->op, &len);
	if (!body) {
		finish(m, errno == ENOMEM ? -ENOMEM : -EINVAL, NULL);
		return;
	}
	hr.method = "POST";
	hr.path = path;
	hr.body = body;
	hr.body_len = len;
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

static void
start(struct mut *mu, struct mreq *m)
{
	if (mu->stopped || cm_stopping(mu->d.loop) || !mu->d.http) {
		finish(m, -EIO, NULL);
		return;
	}
	m->deadline = util_now_ms() + mu->d.timeout_ms;
	TAILQ_INSERT_TAIL(&mu->inflight, m, link);
	m->listed = true;
	mu->n++;
	send_req(m);
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
		mu->h.absorb(mu->h.arg, &m->op, m->done, m->arg);
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

int
mut_submit_direct(struct mut *mu, const struct proto_op *op, mut_done_fn done,
		  void *arg)
{
	struct rlog_effect eff;
	struct mreq *m;
	int rc;

	if (!mu)
		return -EIO;
	m = mreq_new(mu, op, done, arg);
	if (!m)
		return -ENOMEM;
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

static int
send_logged(struct mut *mu, uint64_t seq, const struct proto_op *op,
	    mut_done_fn done, void *arg, bool replay)
{
	struct mreq *m = mreq_new(mu, op, done, arg);

	if (!m)
		return -ENOMEM;
	m->seq = seq;
	m->replay = replay;
	start(mu, m);
	return 0;
}

int
mut_send_logged(struct mut *mu, uint64_t seq, const struct proto_op *op,
		mut_done_fn done, void *arg)
{
	return send_logged(mu, seq, op, done, arg, false);
}

int
mut_send_replay(struct mut *mu, uint64_t seq, const struct proto_op *op,
		mut_done_fn done, void *arg)
{
	return send_logged(mu, seq, op, done, arg, true);
}

/* --- replay in batches --- */

struct mbatch {
	struct mut *mu;
	size_t n;
	struct mreq **m; /* n of them, listed in flight */
	void (*all)(void *arg, int err);
	void *all_arg;
};

static void
mbatch_end(struct mbatch *b, int err, const struct proto_batch_result *res)
{
	struct mut *mu = b->mu;

	for (size_t i = 0; i < b->n; i++) {
		int rc = err;

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
	if (b->all)
		b->all(b->all_arg, err);
	free(b->m);
	free(b);
	(void)mu;
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
	body = proto_batch_encode(arr, n, false, &len);
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

static void resume_next(struct mut *mu);

static void
resume_done(void *arg, int err, const struct proto_op_result *r)
{
	struct mut *mu = arg;

	(void)r;
	if (err)
		log_warn(LOG_MUT, "replayed record refused: %s",
			 strerror(-err));
	if (!mu->stopped)
		resume_next(mu);
}

static void
resume_next(struct mut *mu)
{
	struct rlog_rec rec;
	int rc;

	if (!mu->d.rlog || cm_stopping(mu->d.loop)) {
		mu->resuming = false;
		return;
	}
	rc = rlog_next(mu->d.rlog, mu->resume_after, RLOG_MASK(RLOG_INFLIGHT),
		       &rec);
	if (rc < 0) {
		mu->resuming = false;
		if (mu->h.log_resumed)
			mu->h.log_resumed(mu->h.arg);
		return;
	}
	mu->resume_after = rec.seq;
	log_info(LOG_MUT, "resending %s (record %llu) left by a crash",
		 proto_op_name(rec.op.kind), (unsigned long long)rec.seq);
	if (rec.op.kind == PROTO_OP_STORE)
		rc = mu->h.resend_store
			     ? mu->h.resend_store(mu->h.arg, rec.seq, &rec.op,
						  resume_done, mu)
			     : -EIO;
	else
		rc = mut_send_logged(mu, rec.seq, &rec.op, resume_done, mu);
	rlog_rec_release(&rec);
	if (rc < 0)
		resume_next(mu);
}

void
mut_resume(struct mut *mu)
{
	if (!mu || mu->stopped || mu->resuming)
		return;
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
	return mu;
}

void
mut_stop(struct mut *mu)
{
	struct mreq *m;

	if (!mu || mu->stopped)
		return;
	while ((m = TAILQ_FIRST(&mu->inflight)))
		finish(m, -EIO, NULL);
	mu->stopped = true;
	mu->d.http = NULL;
}

void
mut_free(struct mut *mu)
{
	if (!mu)
		return;
	mut_stop(mu);
	free(mu);
}
