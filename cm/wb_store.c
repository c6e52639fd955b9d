/*
 * wb_store.c - stores of the write-back module (see wb.h, promises 2 and
 * 3): collect the chunks a file changed, stage them under a fresh txid,
 * send one store op through mut.c; disconnected, log it instead; resend
 * or replay a store from the replay log.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chunkstore/cs.h"
#include "cm/cm.h"
#include "cm/conflict.h"
#include "cm/conn.h"
#include "cm/http.h"
#include "cm/loop.h"
#include "cm/mcache.h"
#include "cm/mut.h"
#include "cm/rlog.h"
#include "cm/wb.h"
#include "cm/wb_i.h"
#include "common/log.h"
#include "common/util.h"

static void store_offline(struct store *st, const struct wstate *s);

/* --- stores --- */

void
wb_store_free(struct store *st)
{
	proto_op_release(&st->op);
	free(st->dirty);
	free(st);
}

static void
stage_done(void *arg, const struct http_result *res)
{
	struct store *st = arg;
	int rc = cm_http_errno(res->err, res->status, res->body, res->body_len);

	st->inflight--;
	if (rc < 0 && !st->err)
		st->err = rc == -ECANCELED ? -EIO : rc;
	wb_store_send(st);
}

static int
stage_one(struct store *st, size_t i)
{
	struct wb *wb = st->wb;
	struct http_request hr = {0};
	char path[256];
	uint8_t *buf = NULL;
	ssize_t got = 0;
	int rc;

	rc = proto_stage_path(path, sizeof(path), wb->d.volume, &st->fid,
			      st->op.txid, st->op.chunks[i], wb->d.chunk_size);
	if (rc < 0)
		return rc;
	if (st->dirty[i]) {
		struct cs_key k;

		struct cs_info info;
		uint64_t cstart = st->op.chunks[i] * (uint64_t)wb->d.chunk_size;

		buf = malloc(wb->d.chunk_size);
		if (!buf)
			return -ENOMEM;
		cm_chunk_key(&k, &st->src_fid, st->op.chunks[i]);
		got = cs_read(wb->d.cs, &k, st->src_dv, 0, buf,
			      wb->d.chunk_size);
		if (got > 0 && st->cf && cs_lookup(wb->d.cs, &k, &info) == 0 &&
		    !(info.flags & CS_F_DIRTY)) {
			/* The server's old bytes: only those still valid. */
			if (cstart >= st->src_valid_to)
				got = 0;
			else if (cstart + (uint64_t)got > st->src_valid_to)
				got = (ssize_t)(st->src_valid_to - cstart);
		}
		if (got < 0) {
			log_err(LOG_WB,
				"dirty chunk %llu of a file cannot be read: %s",
				(unsigned long long)st->op.chunks[i],
				strerror((int)-got));
			free(buf);
			return (int)got;
		}
	}
	hr.method = "PUT";
	hr.path = path;
	hr.body = buf ? (const void *)buf : "";
	hr.body_len = (size_t)got;
	hr.content_type = "application/octet-stream";
	hr.on_done = stage_done;
	hr.arg = st;
	hr.ungated = st->replay;
	st->inflight++;
	if (!http_submit(wb->d.http, &hr)) {
		st->inflight--;
		free(buf);
		return -EIO;
	}
	free(buf);
	return 0;
}

static void
store_sent(void *arg, int err, const struct proto_op_result *r)
{
	wb_store_end(arg, err, r);
}

/* Stage what is left (bounded), then send the op once all are in. */
void
wb_store_send(struct store *st)
{
	struct wb *wb = st->wb;
	int rc;

	while (!st->err && st->inflight < WB_STAGE_PARALLEL &&
	       st->next < st->op.nchunks) {
		rc = stage_one(st, st->next);
		if (rc < 0) {
			st->err = rc;
			break;
		}
		st->next++;
	}
	if (st->inflight)
		return;
	if (st->err || cm_stopping(wb->d.loop)) {
		if (st->staged) {
			/* Told once, here: the store ends without mdone. */
			st->staged(st->staged_arg, st->err ? st->err : -EIO,
				   NULL, NULL);
			st->mdone = NULL;
		}
		wb_store_end(st, st->err ? st->err : -EIO, NULL);
		return;
	}
	if (st->staged) {
		/* The op goes in a batch; its result comes to store_sent. */
		st->staged(st->staged_arg, 0, store_sent, st);
		return;
	}
	rc = st->replay ? mut_send_replay(wb->d.mut, st->seq, &st->op,
					  store_sent, st)
			: mut_send_logged(wb->d.mut, st->seq, &st->op,
					  store_sent, st);
	if (rc < 0)
		wb_store_end(st, rc, NULL);
}

/* Tell the waiters taken off a write state, and free them. */
static void
wake_waiters(struct wb *wb, struct flush_waiters *l, int err)
{
	struct flush_waiter *w;

	while ((w = SLIST_FIRST(l))) {
		SLIST_REMOVE_HEAD(l, link);
		w->done(w->arg, err);
		free(w);
	}
}

void
wb_store_end(struct store *st, int err, const struct proto_op_result *r)
{
	struct wb *wb = st->wb;
	struct flush_waiters w = SLIST_HEAD_INITIALIZER(w);
	struct wstate *ws;

	/* Refused as stale: someone else stored the file since our base
	 * DV. Ours goes to a conflict copy; this store ends from there. */
	if (err == -ESTALE && st->owns_state && !st->cf &&
	    !cm_stopping(wb->d.loop) && wb_conflict_start(st) == 0)
		return;
	if (st->replay && wb) {
		pthread_mutex_lock(&wb->lock);
		ws = wb_find_locked(wb, &st->fid);
		if (ws)
			ws->replaying = false;
		pthread_mutex_unlock(&wb->lock);
	}
	if (err == -ESTALE && !st->replay)
		err = -EIO;

	if (err && st->seq && wb->d.rlog && !st->mdone && !st->replay) {
		/* The op never went (a staging failure): drop the record;
		 * the data stays dirty and the next flush tries again. */
		rlog_remove_flags(wb->d.rlog, st->seq, RLOG_A_NOSYNC);
	}
	if (err)
		log_warn(LOG_WB, "store of a file failed: %s",
			 strerror(-err));
	if (wb) {
		pthread_mutex_lock(&wb->lock);
		ws = wb_find_locked(wb, &st->fid);
		if (ws && st->owns_state) {
			ws->storing = false;
			w = ws->waiters;
			SLIST_INIT(&ws->waiters);
			if (!ws->writers &&
			    ((!ws->dirty && !ws->logged) || ws->gone)) {
				wb_forget_locked(wb, ws);
				wb_unlink_free_locked(wb, ws);
			}
		}
		pthread_cond_broadcast(&wb->cond);
		pthread_mutex_unlock(&wb->lock);
	}
	wake_waiters(wb, &w, err);
	if (st->mdone)
		st->mdone(st->marg, err, r);
	wb_store_free(st);
}

int
wb_collect_add(struct collect *c, uint64_t chunk, bool dirty)
{
	for (size_t i = 0; i < c->n; i++) {
		if (c->chunks[i] == chunk) {
			c->dirty[i] |= dirty;
			return 0;
		}
	}
	if (c->n == c->cap) {
		size_t nc = c->cap ? c->cap * 2 : 16;
		uint64_t *a = realloc(c->chunks, nc * sizeof(*a));
		bool *d;

		if (!a)
			return -ENOMEM;
		c->chunks = a;
		d = realloc(c->dirty, nc * sizeof(*d));
		if (!d)
			return -ENOMEM;
		c->dirty = d;
		c->cap = nc;
	}
	c->chunks[c->n] = chunk;
	c->dirty[c->n] = dirty;
	c->n++;
	return 0;
}

static int
collect_cb(const struct cs_info *i, void *arg)
{
	struct collect *c = arg;

	if ((i->flags & CS_F_DIRTY) && i->dv == c->st->op.base_dv &&
	    i->key.chunk * (uint64_t)c->st->wb->d.chunk_size < c->size &&
	    wb_collect_add(c, i->key.chunk, true) < 0)
		c->err = -ENOMEM;
	return 0;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

void
wb_store_start(struct wb *wb, const struct fid *fid, wb_done_fn done, void *arg)
{
	struct flush_waiters waiters = SLIST_HEAD_INITIALIZER(waiters);
	struct flush_waiter *w = NULL;
	struct collect c = {0};
	struct rlog_effect eff;
	struct wstate *ws, s;
	struct store *st;
	struct fid rnd;
	uint64_t csz = wb->d.chunk_size, end;
	int rc;

	if (done) {
		w = calloc(1, sizeof(*w));
		if (!w) {
			done(arg, -ENOMEM);
			return;
		}
		w->done = done;
		w->arg = arg;
	}
	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, fid);
	if (!ws || !ws->dirty || ws->gone) {
		pthread_mutex_unlock(&wb->lock);
		if (w) {
			done(arg, 0);
			free(w);
		}
		return;
	}
	if (w) {
		SLIST_INSERT_HEAD(&ws->waiters, w, link);
	}
	if (ws->storing) {
		/* Joins the running store. NEEDSWORK: a write that came
		 * after its snapshot waits for the next flush. */
		pthread_mutex_unlock(&wb->lock);
		return;
	}
	ws->storing = true;
	ws->writeback = false;
	while (ws->writing > 0)
		pthread_cond_wait(&wb->cond, &wb->lock);
	s = *ws;
	pthread_mutex_unlock(&wb->lock);

	st = calloc(1, sizeof(*st));
	if (!st) {
		rc = -ENOMEM;
		goto fail_nost;
	}
	st->wb = wb;
	st->fid = *fid;
	st->src_fid = *fid;
	st->src_dv = s.base_dv;
	st->src_valid_to = UINT64_MAX;
	st->owns_state = true;
	st->op.kind = PROTO_OP_STORE;
	st->op.fid = *fid;
	st->op.base_dv = s.base_dv;
	st->op.chunk_size = wb->d.chunk_size;
	st->op.size = s.size;
	if ((rc = fid_random(0, &rnd)) < 0)
		goto fail;
	memcpy(st->op.txid, rnd.oid, sizeof(st->op.txid));
	c.st = st;
	c.size = s.size;
	cs_iterate_file(wb->d.cs, fid->vol, fid->oid, collect_cb, &c);
	/* After a truncate, the server's bytes from zero_from on must read
	 * as zeros: send those chunks (empty unless dirty). */
	end = s.srv_size < s.size ? s.srv_size : s.size;
	for (uint64_t ch = s.zero_from / csz;
	     s.zero_from < end && ch * csz < end && !c.err; ch++)
		if (wb_collect_add(&c, ch, false) < 0)
			c.err = -ENOMEM;
	if (c.err) {
		rc = c.err;
		free(c.chunks);
		free(c.dirty);
		goto fail;
	}
	/* Sort chunk numbers, keeping the dirty flags with them. */
	{
		uint64_t *packed = malloc((c.n ? c.n : 1) * sizeof(*packed));

		if (!packed) {
			free(c.chunks);
			free(c.dirty);
			rc = -ENOMEM;
			goto fail;
		}
		for (size_t i = 0; i < c.n; i++)
			packed[i] = c.chunks[i] << 1 | (c.dirty[i] ? 1 : 0);
		qsort(packed, c.n, sizeof(*packed), cmp_u64);
		for (size_t i = 0; i < c.n; i++) {
			c.chunks[i] = packed[i] >> 1;
			c.dirty[i] = packed[i] & 1;
		}
		free(packed);
	}
	st->op.chunks = c.chunks;
	st->op.nchunks = c.n;
	st->dirty = c.dirty;
	if (wb->d.conn && conn_logs_changes(wb->d.conn)) {
		store_offline(st, &s);
		return;
	}
	if (wb->d.rlog) {
		rc = rlog_append_ex(wb->d.rlog, &st->op,
				    RLOG_A_INFLIGHT | RLOG_A_NOSYNC, &eff);
		if (rc == 0) {
			st->seq = eff.seq;
			memcpy(st->op.opid, eff.opid, sizeof(st->op.opid));
		}
		rlog_effect_release(&eff);
		if (rc < 0)
			goto fail;
	} else if ((rc = fid_random(0, &rnd)) == 0) {
		memcpy(st->op.opid, rnd.oid, sizeof(st->op.opid));
	} else {
		goto fail;
	}
	log_debug(LOG_WB, "storing %zu chunks, size %llu", st->op.nchunks,
		  (unsigned long long)st->op.size);
	wb_store_send(st);
	return;
fail:
	wb_store_end(st, rc, NULL);
	return;
fail_nost:
	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, fid);
	if (ws) {
		ws->storing = false;
		waiters = ws->waiters;
		SLIST_INIT(&ws->waiters);
	}
	pthread_cond_broadcast(&wb->cond);
	pthread_mutex_unlock(&wb->lock);
	wake_waiters(wb, &waiters, rc);
}

/* --- disconnected stores --- */

/* The changes are in the replay log now (or the store was absorbed by a
 * disconnect): the write state stops being dirty and becomes "logged",
 * its chunks stay DIRTY for the replay, and the cached attributes take
 * the local size and times. */
static void
mark_logged(struct wb *wb, const struct fid *fid)
{
	struct proto_attr a;
	struct wstate *ws;
	bool have = false;
	uint64_t size = 0;
	int64_t mt = 0, ct = 0;

	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, fid);
	if (ws && !ws->gone) {
		wb_mark_clean_locked(wb, ws);
		ws->logged = true;
		wb_save_locked(wb, ws);
		size = ws->size;
		mt = ws->mtime_ns;
		ct = ws->ctime_ns;
		have = true;
	}
	pthread_mutex_unlock(&wb->lock);
	if (have && mcache_attr(wb->d.mc, fid, &a) == 0) {
		a.size = size;
		a.mtime_ns = mt;
		a.ctime_ns = ct;
		mcache_offline_attr(wb->d.mc, &a);
	}
}

/* wb_store_start, disconnected: log the store (PENDING, durable: the rules of
 * doc/replay-log.md may merge it with an earlier one) instead of sending
 * it. */
static void
store_offline(struct store *st, const struct wstate *s)
{
	struct wb *wb = st->wb;
	struct rlog_effect eff;
	int rc = -EIO;

	conflict_note_base(wb, &st->fid, &s->attr);
	/* The record is durable when close returns (writeback, or
	 * disconnected): so must the data it names be. Writes committed
	 * their chunks without fsync (promise 1 is about cairnd, not the
	 * machine); this makes them survive the machine too. */
	rc = cs_sync_file(wb->d.cs, st->fid.vol, st->fid.oid);
	if (rc < 0) {
		log_err(LOG_WB, "cannot sync the chunks of a file: %s",
			strerror(-rc));
		wb_store_end(st, rc == -ENOSPC ? -ENOSPC : -EIO, NULL);
		return;
	}
	rc = -EIO;
	if (wb->d.rlog)
		rc = rlog_append_ex(wb->d.rlog, &st->op, 0, &eff);
	if (wb->d.rlog && rc == 0)
		conflict_note_path(wb, eff.seq, &st->op);
	if (wb->d.rlog)
		rlog_effect_release(&eff);
	if (rc < 0) {
		log_err(LOG_WB, "cannot log a store while disconnected: %s",
			strerror(-rc));
		wb_store_end(st, rc == -ENOSPC ? -ENOSPC : -EIO, NULL);
		return;
	}
	mark_logged(wb, &st->fid);
	wb_store_end(st, 0, NULL);
}

void
wb_absorbed(struct wb *wb, const struct proto_op *op)
{
	if (wb && op->kind == PROTO_OP_STORE)
		mark_logged(wb, &op->fid);
}

/* A store op from the replay log, its chunks tagged @src_dv: stage what
 * the chunk store holds DIRTY, then send (replayed or resent). */
static int
store_from_log(struct wb *wb, uint64_t seq, const struct proto_op *op,
	       uint64_t src_dv, bool replay, mut_done_fn done, void *arg,
	       void (*staged)(void *, int, mut_done_fn, void *),
	       void *staged_arg)
{
	struct store *st = calloc(1, sizeof(*st));
	struct wstate *ws;

	if (!st)
		return -ENOMEM;
	if (mut_op_copy(&st->op, op) < 0 ||
	    !(st->dirty = calloc(op->nchunks ? op->nchunks : 1, 1))) {
		wb_store_free(st);
		return -ENOMEM;
	}
	st->wb = wb;
	st->fid = op->fid;
	st->src_fid = op->fid;
	st->src_dv = src_dv;
	st->src_valid_to = UINT64_MAX;
	st->seq = seq;
	st->replay = replay;
	st->mdone = done;
	st->marg = arg;
	st->staged = staged;
	st->staged_arg = staged_arg;
	for (size_t i = 0; i < op->nchunks; i++) {
		struct cs_key k;
		struct cs_info info;

		cm_chunk_key(&k, &op->fid, op->chunks[i]);
		st->dirty[i] = cs_lookup(wb->d.cs, &k, &info) == 0 &&
			       info.dv == src_dv && (info.flags & CS_F_DIRTY);
	}
	if (replay) {
		pthread_mutex_lock(&wb->lock);
		ws = wb_find_locked(wb, &op->fid);
		if (ws) {
			ws->replaying = true;
			ws->replay_from = src_dv;
			ws->replay_to = op->base_dv;
		}
		pthread_mutex_unlock(&wb->lock);
	}
	wb_store_send(st);
	return 0;
}

int
wb_replay_store(struct wb *wb, uint64_t seq, const struct proto_op *op,
		uint64_t src_dv, mut_done_fn done, void *arg)
{
	return store_from_log(wb, seq, op, src_dv, true, done, arg, NULL, NULL);
}

int
wb_stage_replay_store(struct wb *wb, uint64_t seq, const struct proto_op *op,
		      uint64_t src_dv,
		      void (*staged)(void *arg, int err, mut_done_fn op_done,
				     void *op_arg),
		      void *staged_arg, mut_done_fn done, void *arg)
{
	if (!staged)
		return -EINVAL;
	return store_from_log(wb, seq, op, src_dv, true, done, arg, staged,
			      staged_arg);
}

int
wb_resend_store(struct wb *wb, uint64_t seq, const struct proto_op *op,
		mut_done_fn done, void *arg)
{
	return store_from_log(wb, seq, op, op->base_dv, false, done, arg, NULL,
			      NULL);
}
