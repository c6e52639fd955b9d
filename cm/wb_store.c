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
#include "cm/fidmap.h"
#include "cm/http.h"
#include "cm/loop.h"
#include "cm/mcache.h"
#include "cm/mut.h"
#include "cm/rlog.h"
#include "cm/stats.h"
#include "cm/wb.h"
#include "cm/wb_i.h"
#include "common/log.h"
#include "common/util.h"

static void store_offline(struct store *st, const struct wstate *s);

/* --- stores --- */

void
wb_set_server_version(struct wb *wb, int version)
{
	if (wb)
		atomic_store(&wb->inline_ok, version >= PROTO_V_INLINE);
}

/*
 * A small file's one dirty chunk rides in the store op itself ("data",
 * PROTO_V_INLINE) instead of a PUT to the staging area first: one round
 * trip at close instead of two, and on the server no staging directory,
 * no fsync of it, no link. Only a store of chunk 0 of a file of at most
 * PROTO_INLINE_MAX bytes, read from the file itself (not a conflict
 * copy's source) and not staged ahead. The bytes are read here, after the
 * record was logged: in sync mode the log does not hold them (a resend
 * after a crash reads them again); a record of writeback or disconnected
 * mode does (format 3: log_bytes(), store_from_log() sends them from
 * there). A replayed store too (at the DV its chunks are
 * tagged with, src_dv); in a batch (st->staged) the caller takes the
 * bytes from st->op into the op it sends: a replay of small files made
 * offline is then one batch request per 256 records, not also a PUT
 * (and a server fsync) per file. @return 1 (inline now), 0 (stage as usual) or
 * -errno.
 */
static int
store_inline(struct store *st)
{
	struct wb *wb = st->wb;
	struct cs_key k;
	uint8_t *buf;
	ssize_t got;

	if (!atomic_load(&wb->inline_ok) || st->cf || st->op.data || st->next ||
	    st->op.nchunks != 1 || st->op.chunks[0] != 0 || !st->dirty[0] ||
	    (st->skip && st->skip[0]) || st->op.size == 0 ||
	    st->op.size > PROTO_INLINE_MAX || st->op.size > wb->d.chunk_size)
		return 0;
	buf = malloc(st->op.size);
	if (!buf)
		return -ENOMEM;
	cm_chunk_key(&k, &st->src_fid, 0);
	got = cs_read(wb->d.cs, &k, st->src_dv, 0, buf, st->op.size);
	if (got <= 0) {
		free(buf);
		if (got < 0)
			log_err(LOG_WB, "dirty chunk 0 of a file cannot be "
					"read: %s",
				strerror((int)-got));
		return got < 0 ? (int)got : 0;
	}
	st->op.data = buf;
	st->op.dlen = (size_t)got;
	st->next = 1;
	return 1;
}

void
wb_store_free(struct store *st)
{
	mut_batch_free(st->batch);
	proto_op_release(&st->op);
	free(st->skip);
	free(st->dirty);
	free(st);
}

static void
stage_done(void *arg, const struct http_result *res)
{
	struct store *st = arg;
	int rc = cm_http_errno(res->err, res->status, res->body, res->body_len);

	st->inflight--;
	/* No answer (a transport failure, a proxy's 502-504): for a resend
	 * that is not a refusal (mut.c's resent records). */
	if (rc < 0 && st->resent &&
	    (res->err || res->status == 0 || res->status == 502 ||
	     res->status == 503 || res->status == 504))
		rc = -EHOSTUNREACH;
	if (rc < 0 && !st->err) {
		st->err = rc == -ECANCELED ? -EIO : rc;
		st->noanswer = res->err != -ECANCELED &&
			       (res->err || res->status == 0 ||
				res->status == 502 || res->status == 503 ||
				res->status == 504);
	}
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
	/* A server restarting (kill -9, an upgrade) refuses the connection
	 * for a moment: try again within fetch-timeout, as mut.c does for
	 * the store op itself (a PUT of the same bytes under the same txid
	 * may arrive twice). Not in a replay: it has its own retries. */
	if (!st->replay)
		hr.retry_ms = (unsigned)wb->d.timeout_ms;
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
	struct store *st = arg;

	if (st->sa.kind) {
		/* The setattr after it ends the store. */
		st->part_err = err;
		if (r) {
			st->part_r = *r;
			st->have_part_r = true;
		}
		return;
	}
	wb_store_end(st, err, r);
}

/* The attributes set while the file was written, sent after its store:
 * the last answer of the batch. */
static void
sa_sent(void *arg, int err, const struct proto_op_result *r)
{
	struct store *st = arg;
	struct wb *wb = st->wb;
	struct wstate *ws;
	int final = st->part_err;

	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, &st->fid);
	/* Any answer settles them (a refusal would be refused again); a
	 * transport failure keeps them for the next store. Bits set again
	 * since the snapshot stay. */
	if (ws && (err != -EIO || r)) {
		uint32_t m = st->sa.mask;

		if ((m & PROTO_SA_MODE) && ws->sa_mode == st->sa.mode)
			ws->sa_mask &= ~(uint32_t)PROTO_SA_MODE;
		if ((m & PROTO_SA_UID) && ws->sa_uid == st->sa.uid)
			ws->sa_mask &= ~(uint32_t)PROTO_SA_UID;
		if ((m & PROTO_SA_GID) && ws->sa_gid == st->sa.gid)
			ws->sa_mask &= ~(uint32_t)PROTO_SA_GID;
		if ((m & PROTO_SA_ATIME) && ws->sa_atime_ns == st->sa.atime_ns)
			ws->sa_mask &= ~(uint32_t)PROTO_SA_ATIME;
		if ((m & PROTO_SA_MTIME) && ws->sa_mtime_ns == st->sa.mtime_ns)
			ws->sa_mask &= ~(uint32_t)PROTO_SA_MTIME;
	}
	if (ws && !err && r && r->has_attr) {
		ws->mtime_ns = r->attr.mtime_ns;
		ws->ctime_ns = r->attr.ctime_ns;
	}
	pthread_mutex_unlock(&wb->lock);
	if (!final && err) {
		log_warn(LOG_WB,
			 "attributes set on a file being written were "
			 "refused: %s",
			 strerror(-err));
		final = err == -ESTALE ? -EIO : err;
	}
	wb_store_end(st, final, st->have_part_r ? &st->part_r : NULL);
}

/*
 * A live store whose staging PUTs got no answer (the server went, or a
 * start found it down) goes as its op would without an answer: the mount
 * disconnects and the store, with the file's held create before it and
 * the attributes set meanwhile after it, is absorbed (its records stay
 * for the reintegration, which stages the chunks again; the close gets
 * the local result). Before, the store ended with EIO and its record was
 * dropped while the held create, given back, went alone: the server got
 * an empty file and nothing stored the bytes until the next start
 * (t2369). @return true if absorbed (st ends from the callbacks).
 */
static bool
absorb_unstaged(struct store *st)
{
	struct wb *wb = st->wb;
	struct mut_batch *b;

	if (!st->noanswer || st->staged || st->replay || st->resent ||
	    st->cf || st->mdone || !st->seq || !st->owns_state ||
	    cm_stopping(wb->d.loop) || !mut_can_absorb(wb->d.mut))
		return false;
	b = st->batch ? st->batch : mut_batch_new(wb->d.mut, 0);
	st->batch = NULL;
	if (!b || mut_batch_add(b, st->seq, &st->op, store_sent, st) < 0 ||
	    (st->sa.kind &&
	     mut_batch_add(b, st->sa_seq, &st->sa, sa_sent, st) < 0)) {
		st->batch = b; /* wb_store_end() frees it */
		return false;
	}
	log_warn(LOG_WB, "the server did not answer a store's staging: "
			 "disconnected, the store is kept in the replay log");
	st->err = 0;
	mut_batch_absorb(b);
	return true;
}

/* Stage what is left (bounded), then send the op once all are in. */
void
wb_store_send(struct store *st)
{
	struct wb *wb = st->wb;
	int rc;

	if (st->wait_ahead)
		return; /* the last stage-ahead PUT of its txid calls again */
	/* Based on a local DV still: the file was made while disconnected
	 * and the server never took its create (refused in the replay), so
	 * there is no object to store into. Said as the server would say
	 * it (a store to a missing object), without staging its chunks: a
	 * local DV is not a DV the protocol carries. */
	if (!st->err && !st->batch && (st->op.base_dv & CM_DV_LOCAL))
		st->err = -ENOENT;
	/* A resend once the mount is not connected: the reintegration
	 * sends the record (mut_resume()). */
	if (!st->err && st->resent && wb->d.conn && conn_offline(wb->d.conn))
		st->err = -EHOSTUNREACH;
	if (!st->err && !st->inflight && (rc = store_inline(st)) < 0)
		st->err = rc;
	while (!st->err && st->inflight < WB_STAGE_PARALLEL &&
	       st->next < st->op.nchunks) {
		if (st->skip && st->skip[st->next]) {
			st->next++; /* staged ahead, unchanged since */
			continue;
		}
		rc = stage_one(st, st->next);
		if (rc < 0) {
			st->err = rc;
			break;
		}
		st->next++;
	}
	if (st->inflight)
		return;
	if (st->err && absorb_unstaged(st))
		return;
	if (st->err || cm_stopping(wb->d.loop)) {
		if (st->staged) {
			/* Told once, here: the store ends without mdone. */
			st->staged(st->staged_arg, st->err ? st->err : -EIO,
				   NULL, NULL, NULL);
			st->mdone = NULL;
		}
		wb_store_end(st, st->err ? st->err : -EIO, NULL);
		return;
	}
	if (st->staged) {
		/* The op goes in a batch; its result comes to store_sent. */
		st->staged(st->staged_arg, 0, &st->op, store_sent, st);
		return;
	}
	if (st->batch) {
		/* The late create (if the batch holds it), the store, the
		 * attributes: one request, one commit on the server. */
		struct mut_batch *b = st->batch;

		rc = mut_batch_add(b, st->seq, &st->op, store_sent, st);
		if (rc == 0 && st->sa.kind)
			rc = mut_batch_add(b, st->sa_seq, &st->sa, sa_sent, st);
		if (rc < 0) {
			wb_store_end(st, rc, NULL);
			return;
		}
		st->batch = NULL;
		mut_batch_send(b);
		return;
	}
	if (st->replay)
		rc = mut_send_replay(wb->d.mut, st->seq, &st->op, store_sent,
				     st);
	else if (st->resent)
		rc = mut_send_resent(wb->d.mut, st->seq, &st->op, store_sent,
				     st);
	else
		rc = mut_send_logged(wb->d.mut, st->seq, &st->op, store_sent,
				     st);
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

	if (err && st->sa_seq && wb->d.rlog && st->batch) {
		/* Never sent (a staging failure): its record goes, the
		 * attributes stay in the write state. */
		rlog_remove_flags(wb->d.rlog, st->sa_seq, RLOG_A_NOSYNC);
	}
	if (st->wait_ahead || st->skip) {
		pthread_mutex_lock(&wb->lock);
		ws = wb_find_locked(wb, &st->fid);
		if (ws && ws->ahead_waiter == st)
			ws->ahead_waiter = NULL;
		pthread_mutex_unlock(&wb->lock);
		st->wait_ahead = false;
		free(st->skip);
		st->skip = NULL;
	}
	mut_batch_free(st->batch);
	st->batch = NULL;
	st->held = false;
	memset(&st->sa, 0, sizeof(st->sa));
	st->sa_seq = 0;
	/* A file created late whose create the server refused (its name
	 * was taken meanwhile): the server has no such object, so ours
	 * goes to a conflict copy as a stale store's does. */
	if (err == -ENOENT && st->op.base_dv == 0 && st->owns_state)
		err = -ESTALE;
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
		(void)wb_data_durable(wb, &st->fid, 1);
		rlog_remove_flags(wb->d.rlog, st->seq, RLOG_A_NOSYNC);
	}
	/* A resend without an answer: mut_resume() says so. */
	if (err && !(st->resent && err == -EHOSTUNREACH))
		log_warn(LOG_WB, "store of a file failed: %s", strerror(-err));
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

/* A store that waits for its file's late create to be answered. */
struct restart {
	struct wb *wb;
	struct fid fid;
	wb_done_fn done;
	void *arg;
};

static void
restart_cb(void *arg)
{
	struct restart r = *(struct restart *)arg;

	free(arg);
	wb_store_start(r.wb, &r.fid, r.done, r.arg);
}

static bool
is_created(struct wb *wb, const struct fid *fid)
{
	struct wstate *ws;
	bool c;

	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, fid);
	c = ws && ws->created && !ws->storing;
	pthread_mutex_unlock(&wb->lock);
	return c;
}

void
wb_store_start(struct wb *wb, const struct fid *fid, wb_done_fn done, void *arg)
{
	struct flush_waiters waiters = SLIST_HEAD_INITIALIZER(waiters);
	struct flush_waiter *w = NULL;
	struct collect c = {0};
	struct rlog_effect eff[2];
	struct proto_attr srv = {0};
	struct mut_batch *batch = NULL;
	struct wstate *ws, s;
	struct store *st;
	struct fid rnd;
	uint64_t csz = wb->d.chunk_size, end;
	bool have_srv = false;
	int rc, late = MUT_LATE_NONE;

	if (is_created(wb, fid)) {
		/* A late create: held, it goes in this store's batch; on its
		 * way alone (another op needed it first), this store waits
		 * for its answer and then takes the DV it gave the file. */
		late = mut_late_state(wb->d.mut, fid);
		if (late == MUT_LATE_SENT) {
			struct restart *r = malloc(sizeof(*r));

			if (r) {
				*r = (struct restart){wb, *fid, done, arg};
				if (mut_after_late(wb->d.mut, fid, restart_cb,
						   r) == 0)
					return;
				free(r);
			}
		}
		if (late == MUT_LATE_HELD) {
			batch = mut_batch_new(wb->d.mut, 0);
			if (!batch || mut_batch_add_held(batch, fid) < 0) {
				mut_batch_free(batch);
				batch = NULL;
				late = MUT_LATE_NONE;
			}
		}
		if (late == MUT_LATE_NONE)
			have_srv = mcache_attr(wb->d.mc, fid, &srv) == 0 &&
				   srv.dv && !(srv.dv & CM_DV_LOCAL);
	}
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
		mut_batch_free(batch);
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
		mut_batch_free(batch);
		return;
	}
	ws->storing = true;
	ws->writeback = false;
	while (ws->writing > 0)
		pthread_cond_wait(&wb->cond, &wb->lock);
	/* The writes since the last checkpoint sit in open working copies:
	 * commit them (no fsync; store_offline() syncs what it logs), so
	 * the chunks this store names are committed, which cs_mark_clean()
	 * after the reply needs, and a crash from here on resends this
	 * state. New writes wait for the store (promise 3), and "storing"
	 * keeps the write state, so the commit itself (which may sync a
	 * chunk a writeback close made durable) runs without the lock;
	 * the checkpoint under it then finds nothing left to commit. */
	rc = 0;
	if (ws->uncommitted) {
		pthread_mutex_unlock(&wb->lock);
		rc = cs_commit_file_flags(wb->d.cs, fid->vol, fid->oid,
					  CS_C_NOSYNC);
		if (rc < 0)
			log_err(LOG_WB, "cannot commit the chunks of a file: %s",
				strerror(-rc));
		pthread_mutex_lock(&wb->lock);
		ws = wb_find_locked(wb, fid);
		if (rc >= 0 && !ws)
			rc = -EIO;
	}
	if (rc < 0 || (rc = wb_checkpoint_locked(wb, ws)) < 0) {
		pthread_mutex_unlock(&wb->lock);
		goto fail_nost;
	}
	if (ws->created && !batch && have_srv) {
		/* The create went alone (or before a crash): the server
		 * has the file at srv.dv, empty. The chunks written since
		 * are based on that. */
		cs_retag_file(wb->d.cs, fid->vol, fid->oid, 0, srv.dv);
		ws->created = false;
		ws->base_dv = srv.dv;
		ws->srv_size = 0;
		wb_save_locked(wb, ws);
	}
	s = *ws;
	pthread_mutex_unlock(&wb->lock);

	st = calloc(1, sizeof(*st));
	if (!st) {
		rc = -ENOMEM;
		goto fail_nost;
	}
	st->wb = wb;
	st->held = batch != NULL;
	st->batch = batch;
	batch = NULL;
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
	/* Chunks staged ahead under the write state's txid, and not written
	 * since, are named without being sent again. */
	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, fid);
	if (ws && ws->ahead && (st->skip = calloc(c.n ? c.n : 1, 1))) {
		memcpy(st->op.txid, ws->ahead_txid, sizeof(st->op.txid));
		for (size_t i = 0; i < c.n; i++) {
			uint64_t ch = c.chunks[i];

			st->skip[i] = c.dirty[i] && ch < ws->ngen &&
				      ws->sgen[ch] &&
				      ws->sgen[ch] == ws->cgen[ch];
		}
		wb_ahead_reset_locked(ws);
		if (ws->ahead_inflight) {
			st->wait_ahead = true;
			ws->ahead_waiter = st;
		}
	} else if (ws) {
		wb_ahead_reset_locked(ws);
	}
	pthread_mutex_unlock(&wb->lock);
	if (s.sa_mask) {
		/* After the store in the same batch: base DV 0 is the DV
		 * the store gives the file (doc/protocol.md, batches). */
		st->sa.kind = PROTO_OP_SETATTR;
		st->sa.fid = *fid;
		st->sa.base_dv = 0;
		st->sa.mask = s.sa_mask;
		st->sa.mode = s.sa_mode;
		st->sa.uid = s.sa_uid;
		st->sa.gid = s.sa_gid;
		st->sa.atime_ns = s.sa_atime_ns;
		st->sa.mtime_ns = s.sa_mtime_ns;
	}
	if (wb->d.conn && conn_logs_changes(wb->d.conn)) {
		store_offline(st, &s);
		return;
	}
	if (!st->batch && st->sa.kind) {
		st->batch = mut_batch_new(wb->d.mut, 0);
		if (!st->batch) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	if (wb->d.rlog) {
		struct proto_op ops[2] = {st->op, st->sa};
		size_t nops = st->sa.kind ? 2 : 1;

		/* The setattr is sent on base DV 0 (after the store, in its
		 * batch) but logged on the store's base, as store_offline()
		 * logs it: a reintegration that takes the records (the
		 * batch absorbed without an answer) sends it after the
		 * store's answer and moves it to the DV that gave (base 0
		 * alone is refused as stale for a file that existed). */
		ops[1].base_dv = st->op.base_dv;
		memset(eff, 0, sizeof(eff));
		/* One transaction for both records. */
		rc = rlog_append_batch(wb->d.rlog, ops, nops,
				       RLOG_A_INFLIGHT | RLOG_A_NOSYNC, eff);
		if (rc == 0) {
			st->seq = eff[0].seq;
			memcpy(st->op.opid, eff[0].opid, sizeof(st->op.opid));
			if (nops == 2) {
				st->sa_seq = eff[1].seq;
				memcpy(st->sa.opid, eff[1].opid,
				       sizeof(st->sa.opid));
			}
		}
		rlog_effect_release(&eff[0]);
		rlog_effect_release(&eff[1]);
		if (rc < 0)
			goto fail;
	} else if ((rc = fid_random(0, &rnd)) == 0) {
		memcpy(st->op.opid, rnd.oid, sizeof(st->op.opid));
		if (st->sa.kind && (rc = fid_random(0, &rnd)) == 0)
			memcpy(st->sa.opid, rnd.oid, sizeof(st->sa.opid));
		if (rc < 0)
			goto fail;
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
	mut_batch_free(batch);
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
mark_logged(struct wb *wb, const struct fid *fid, const struct proto_op *sa)
{
	struct proto_attr a;
	struct wstate *ws;
	bool have = false;
	uint64_t size = 0;
	int64_t mt = 0, ct = 0;
	uint32_t mask = sa && sa->kind ? sa->mask : 0;

	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, fid);
	if (ws && !ws->gone) {
		wb_mark_clean_locked(wb, ws);
		if (!ws->logged || ws->logged_size < ws->size)
			ws->logged_size = ws->size;
		ws->logged = true;
		/* The folded mtime the setattr record carries is the file's
		 * now (wb_overlay() shows ws->mtime_ns no more). */
		if (mask & PROTO_SA_MTIME)
			ws->mtime_ns = sa->mtime_ns;
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
		/* and the attributes logged with the store (wb_setattr()) */
		if (mask & PROTO_SA_MODE)
			a.mode = (a.mode & ~07777u) | (sa->mode & 07777);
		if (mask & PROTO_SA_UID)
			a.uid = sa->uid;
		if (mask & PROTO_SA_GID)
			a.gid = sa->gid;
		if (mask & PROTO_SA_ATIME)
			a.atime_ns = sa->atime_ns;
		mcache_offline_attr(wb->d.mc, &a);
	}
}

/*
 * The owed map (wb->owed, under wb->lock): OWED_NO (absent or 0), OWED_YES
 * (a record with bytes was logged since the file's chunks were last
 * synced), OWED_BUSY (a sync thread is syncing them: wb_data_durable_
 * ahead()). A close sets OWED_YES whatever the state, so a sync that
 * started before it does not count for it; a sync ending moves only
 * OWED_BUSY to OWED_NO (OWED_YES on failure).
 */
enum { OWED_NO = 0, OWED_YES = 1, OWED_BUSY = 2 };

static void
owed_to_locked(struct wb *wb, const struct fid *fid, uint64_t to,
	       uint64_t only_from)
{
	struct fidmap_slot *sl = fidmap_find(&wb->owed, fid);
	uint64_t from = sl ? sl->dv : OWED_NO;

	if (from == to || (only_from != UINT64_MAX && from != only_from))
		return;
	if (!sl) {
		sl = fidmap_put(&wb->owed, fid, to);
		if (!sl) {
			/* out of memory: not noted, so synced now */
			pthread_mutex_unlock(&wb->lock);
			(void)cs_sync_file(wb->d.cs, fid->vol, fid->oid);
			pthread_mutex_lock(&wb->lock);
			return;
		}
	}
	sl->dv = to;
	if (from == OWED_NO)
		wb->nowed++;
	else if (to == OWED_NO && !--wb->nowed)
		fidmap_clear(&wb->owed);
	pthread_cond_broadcast(&wb->cond);
}

/* Mark @fid's chunks owed a sync (@owed), or synced. */
static void
owed_set(struct wb *wb, const struct fid *fid, bool owed)
{
	pthread_mutex_lock(&wb->lock);
	owed_to_locked(wb, fid, owed ? OWED_YES : OWED_NO, UINT64_MAX);
	pthread_mutex_unlock(&wb->lock);
}

/* Sync the chunk files of @fids[0..@n) (cs_sync_files), logged. */
static int
sync_fids(struct wb *wb, const struct fid *fids, size_t n)
{
	struct cs_key *keys = calloc(n ? n : 1, sizeof(*keys));
	int rc;

	if (!keys)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		keys[i].vol = fids[i].vol;
		memcpy(keys[i].fid, fids[i].oid, sizeof(keys[i].fid));
	}
	rc = n ? cs_sync_files(wb->d.cs, keys, n) : 0;
	if (rc < 0)
		log_err(LOG_WB,
			"cannot sync the chunks of %zu files whose "
			"bytes the replay log holds: %s",
			n, strerror(-rc));
	else
		CM_STAT_ADD(wb->d.st, wb_data_synced, n);
	free(keys);
	return rc;
}

/* @fids[0..@n) whose state is @from become @to; @out (may be NULL) gets
 * them, *@nout their number. Lock held. */
static void
owed_take_locked(struct wb *wb, const struct fid *fids, size_t n, uint64_t from,
		 uint64_t to, struct fid *out, size_t *nout)
{
	*nout = 0;
	for (size_t i = 0; i < n; i++) {
		struct fidmap_slot *sl = fidmap_find(&wb->owed, &fids[i]);

		if (!sl || sl->dv != from)
			continue;
		/* the same FID twice in @fids: once */
		if (to != from)
			owed_to_locked(wb, &fids[i], to, from);
		if (out)
			out[*nout] = fids[i];
		(*nout)++;
	}
}

int
wb_data_durable(struct wb *wb, const struct fid *fids, size_t n)
{
	struct fid *got;
	size_t k = 0;
	int rc;

	if (!wb || !wb->d.cs || !n)
		return 0;
	pthread_mutex_lock(&wb->lock);
	if (!wb->nowed) {
		pthread_mutex_unlock(&wb->lock);
		return 0;
	}
	/* A sync thread started at the batch's send (wb_data_durable_
	 * ahead()) ends first: its files are then synced, or owed again
	 * (it failed) and synced here. */
	for (;;) {
		size_t busy;

		owed_take_locked(wb, fids, n, OWED_BUSY, OWED_BUSY, NULL,
				 &busy);
		if (!busy)
			break;
		pthread_cond_wait(&wb->cond, &wb->lock);
	}
	pthread_mutex_unlock(&wb->lock);
	got = calloc(n, sizeof(*got));
	if (!got)
		return -ENOMEM;
	pthread_mutex_lock(&wb->lock);
	owed_take_locked(wb, fids, n, OWED_YES, OWED_BUSY, got, &k);
	pthread_mutex_unlock(&wb->lock);
	rc = sync_fids(wb, got, k);
	pthread_mutex_lock(&wb->lock);
	for (size_t i = 0; i < k; i++)
		owed_to_locked(wb, &got[i], rc < 0 ? OWED_YES : OWED_NO,
			       OWED_BUSY);
	pthread_mutex_unlock(&wb->lock);
	free(got);
	return rc;
}

struct ahead_sync {
	struct wb *wb;
	size_t n;
	struct fid fids[];
};

static void *
ahead_sync_run(void *arg)
{
	struct ahead_sync *as = arg;
	struct wb *wb = as->wb;
	int rc = sync_fids(wb, as->fids, as->n);

	pthread_mutex_lock(&wb->lock);
	for (size_t i = 0; i < as->n; i++)
		owed_to_locked(wb, &as->fids[i], rc < 0 ? OWED_YES : OWED_NO,
			       OWED_BUSY);
	wb->nsyncers--;
	pthread_cond_broadcast(&wb->cond);
	pthread_mutex_unlock(&wb->lock);
	free(as);
	return NULL;
}

void
wb_data_durable_ahead(struct wb *wb, const struct fid *fids, size_t n)
{
	struct ahead_sync *as;
	pthread_attr_t at;
	pthread_t th;
	bool started = false;

	if (!wb || !wb->d.cs || !n)
		return;
	as = calloc(1, sizeof(*as) + n * sizeof(as->fids[0]));
	if (!as)
		return; /* the batch's reply syncs them */
	as->wb = wb;
	pthread_mutex_lock(&wb->lock);
	if (wb->nowed)
		owed_take_locked(wb, fids, n, OWED_YES, OWED_BUSY, as->fids,
				 &as->n);
	if (as->n)
		wb->nsyncers++;
	pthread_mutex_unlock(&wb->lock);
	if (!as->n) {
		free(as);
		return;
	}
	if (pthread_attr_init(&at) == 0) {
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		started = pthread_create(&th, &at, ahead_sync_run, as) == 0;
		pthread_attr_destroy(&at);
	}
	if (!started) {
		/* owed again: the batch's reply syncs them */
		pthread_mutex_lock(&wb->lock);
		for (size_t i = 0; i < as->n; i++)
			owed_to_locked(wb, &as->fids[i], OWED_YES, OWED_BUSY);
		wb->nsyncers--;
		pthread_cond_broadcast(&wb->cond);
		pthread_mutex_unlock(&wb->lock);
		free(as);
	}
}

/*
 * store_offline(): may the record carry the file's bytes (format 3)?
 * A store of chunk 0 alone of a file of at most PROTO_INLINE_MAX bytes
 * (what a batch sends inline), read from the chunk store after its
 * working copy is committed (no sync), with the chunk's DV tag, slot and
 * generation (wb_restore_logged()). @return 1 (st->op carries them), 0
 * (sync the chunks as before), -errno.
 */
static int
log_bytes(struct store *st)
{
	struct wb *wb = st->wb;
	struct cs_key k;
	struct cs_info info;
	uint8_t *buf;
	ssize_t got;
	int rc;

	if (!wb->d.rlog || st->cf || st->op.data || st->op.nchunks != 1 ||
	    st->op.chunks[0] != 0 || !st->dirty[0] ||
	    (st->skip && st->skip[0]) || st->op.size == 0 ||
	    st->op.size > PROTO_INLINE_MAX || st->op.size > wb->d.chunk_size)
		return 0;
	rc = cs_commit_file_flags(wb->d.cs, st->fid.vol, st->fid.oid,
				  CS_C_NOSYNC);
	if (rc < 0)
		return rc;
	cm_chunk_key(&k, &st->fid, 0);
	if (cs_lookup(wb->d.cs, &k, &info) < 0 || info.dv != st->src_dv ||
	    !(info.flags & CS_F_DIRTY))
		return 0;
	buf = malloc(st->op.size);
	if (!buf)
		return 0;
	got = cs_read(wb->d.cs, &k, st->src_dv, 0, buf, st->op.size);
	if (got <= 0) {
		free(buf);
		return 0;
	}
	st->op.data = buf;
	st->op.dlen = (size_t)got;
	st->op.data_dv = info.dv;
	st->op.data_slot = info.slot;
	st->op.data_gen = info.gen;
	return 1;
}

/* wb_store_start, disconnected: log the store (PENDING, durable: the rules of
 * doc/replay-log.md may merge it with an earlier one) instead of sending
 * it. */
static void
store_offline(struct store *st, const struct wstate *s)
{
	struct wb *wb = st->wb;
	struct rlog_effect eff[2];
	char fs[FID_STRLEN];
	int rc = -EIO;

	conflict_note_base(wb, &st->fid, &s->attr);
	/* The record is durable when close returns (writeback, or
	 * disconnected): so must the data it names be. Writes committed
	 * their chunks without fsync (promise 1 is about cairnd, not the
	 * machine). A small file's bytes ride in the record itself
	 * (format 3), which the log's one fdatasync makes durable; the
	 * chunk is synced later, before the record leaves the log
	 * (wb_data_durable()), and restored from the record at start if a
	 * power cut took it (wb_restore_logged()). Any other store syncs
	 * its chunks first, which also covers bytes an older record of
	 * the file carried (a merge keeps no bytes then). */
	rc = log_bytes(st);
	if (rc == 0)
		rc = cs_sync_file(wb->d.cs, st->fid.vol, st->fid.oid);
	if (rc == 0)
		owed_set(wb, &st->fid, false);
	if (rc > 0)
		rc = 0;
	if (rc < 0) {
		log_err(LOG_WB, "cannot sync the chunks of a file: %s",
			strerror(-rc));
		wb_store_end(st, rc == -ENOSPC ? -ENOSPC : -EIO, NULL);
		return;
	}
	rc = -EIO;
	if (wb->d.rlog) {
		/* The attributes set while it was written (wb_setattr())
		 * follow the store as a setattr record on the same base (the
		 * replay moves it to the store's DV), in the same commit:
		 * one fdatasync for both, and never one without the other. */
		struct proto_op ops[2] = {st->op, st->sa};
		size_t nops = st->sa.kind ? 2 : 1;

		ops[1].base_dv = st->op.base_dv;
		memset(eff, 0, sizeof(eff));
		rc = rlog_append_batch(wb->d.rlog, ops, nops, 0, eff);
		if (st->op.data && rc == 0) {
			owed_set(wb, &st->fid, true);
			CM_STAT_INC(wb->d.st, wb_log_bytes);
		}
		/* The bytes are the log's now; a store from it reads them
		 * there (store_from_log()). */
		free(st->op.data);
		st->op.data = NULL;
		st->op.dlen = 0;
		for (size_t i = 0; rc == 0 && i < nops; i++)
			if (eff[i].seq)
				conflict_note_path(wb, eff[i].seq, &ops[i]);
		if (rc == 0)
			log_debug(LOG_WB,
				  "store of %s logged: record %llu, base %llu, "
				  "size %llu",
				  fid_fmt(&st->fid, fs),
				  (unsigned long long)eff[0].seq,
				  (unsigned long long)st->op.base_dv,
				  (unsigned long long)st->op.size);
		rlog_effect_release(&eff[0]);
		rlog_effect_release(&eff[1]);
	}
	if (rc == 0 && st->sa.kind) {
		struct wstate *ws;

		pthread_mutex_lock(&wb->lock);
		ws = wb_find_locked(wb, &st->fid);
		if (ws)
			ws->sa_mask = 0;
		pthread_mutex_unlock(&wb->lock);
	}
	if (rc < 0) {
		log_err(LOG_WB, "cannot log a store while disconnected: %s",
			strerror(-rc));
		wb_store_end(st, rc == -ENOSPC ? -ENOSPC : -EIO, NULL);
		return;
	}
	mark_logged(wb, &st->fid, &st->sa);
	wb_store_end(st, 0, NULL);
}

/* --- bytes in the log, at start --- */

struct logged {
	struct fid fid;
	uint64_t seq; /* the newest store with bytes; 0: none */
	uint64_t cut; /* the smallest size a later truncate logged */
};

/* Is chunk 0 of @op's file what @op logged, or newer? */
static bool
logged_chunk_ok(struct wb *wb, const struct proto_op *op, size_t want)
{
	struct cs_key k;
	struct cs_info info;
	uint8_t *buf;
	ssize_t got;
	bool ok;

	cm_chunk_key(&k, &op->fid, 0);
	if (cs_lookup(wb->d.cs, &k, &info) < 0 || info.dv != op->data_dv ||
	    !(info.flags & CS_F_DIRTY))
		return false;
	buf = malloc(wb->d.chunk_size);
	if (!buf)
		return true; /* left as it is, as before format 3 */
	/* Read whole: after a crash the file is verified (its CRC) at
	 * the first read, and a torn one is dropped (-EIO). */
	got = cs_read(wb->d.cs, &k, op->data_dv, 0, buf, wb->d.chunk_size);
	if (got < 0 || cs_lookup(wb->d.cs, &k, &info) < 0) {
		free(buf);
		return false;
	}
	/* Written since the close that logged it (a later generation of
	 * the same slot, whole): that is the file now. A power cut takes
	 * a chunk back only to an older generation or a torn file. */
	if (info.slot == op->data_slot && info.gen > op->data_gen)
		ok = true;
	else
		ok = (size_t)got == want && !memcmp(buf, op->data, want);
	free(buf);
	return ok;
}

int
wb_restore_logged(struct wb *wb)
{
	struct fidmap map = {0};
	struct logged *v = NULL;
	struct cs_key *keys = NULL;
	size_t n = 0, cap = 0, nk = 0, restored = 0;
	struct rlog_rec rec;
	uint64_t after = 0;
	int rc = 0;

	if (!wb || !wb->d.rlog || !wb->d.cs)
		return 0;
	for (;;) {
		struct fidmap_slot *sl;
		struct logged *lg = NULL;
		int r = rlog_next(wb->d.rlog, after, RLOG_MASK_ALL, &rec);

		if (r == -EUCLEAN && rec.seq > after) {
			/* damaged: reported where it is sent; the others
			 * are still checked */
			after = rec.seq;
			continue;
		}
		if (r < 0)
			break;
		after = rec.seq;
		if (rec.op.kind != PROTO_OP_STORE &&
		    !(rec.op.kind == PROTO_OP_SETATTR &&
		      (rec.op.mask & PROTO_SA_SIZE))) {
			rlog_rec_release(&rec);
			continue;
		}
		sl = fidmap_find(&map, &rec.op.fid);
		if (sl)
			lg = &v[sl->dv - 1];
		if (rec.op.kind == PROTO_OP_SETATTR) {
			/* a truncate after it: the chunk holds no more */
			if (lg && lg->seq && rec.op.size < lg->cut)
				lg->cut = rec.op.size;
		} else if (!rec.op.data) {
			/* A store without bytes synced the chunks first
			 * (store_offline()): they are the file now. */
			if (lg)
				lg->seq = 0;
		} else {
			if (!lg) {
				if (n == cap) {
					size_t nc = cap ? 2 * cap : 64;
					struct logged *t =
						realloc(v, nc * sizeof(*t));

					if (!t) {
						rlog_rec_release(&rec);
						rc = -ENOMEM;
						break;
					}
					v = t;
					cap = nc;
				}
				if (!fidmap_put(&map, &rec.op.fid, n + 1)) {
					rlog_rec_release(&rec);
					rc = -ENOMEM;
					break;
				}
				lg = &v[n++];
				memset(lg, 0, sizeof(*lg));
				lg->fid = rec.op.fid;
			}
			/* The bytes are read again below, one record at
			 * a time: an offline day's log may hold many. */
			lg->seq = rec.seq;
			lg->cut = UINT64_MAX;
		}
		rlog_rec_release(&rec);
	}
	if (n && !(keys = calloc(n, sizeof(*keys))))
		rc = -ENOMEM;
	for (size_t i = 0; i < n && keys; i++) {
		struct logged *lg = &v[i];
		size_t want;
		struct cs_key k;
		int r;

		if (!lg->seq || rlog_get(wb->d.rlog, lg->seq, &rec) < 0)
			continue;
		if (!rec.op.data) {
			rlog_rec_release(&rec);
			continue;
		}
		want = rec.op.dlen;
		if (lg->cut < want)
			want = (size_t)lg->cut;
		keys[nk].vol = lg->fid.vol;
		memcpy(keys[nk].fid, lg->fid.oid, sizeof(keys[nk].fid));
		nk++;
		if (logged_chunk_ok(wb, &rec.op, want)) {
			rlog_rec_release(&rec);
			continue;
		}
		cm_chunk_key(&k, &lg->fid, 0);
		r = cs_put(wb->d.cs, &k, rec.op.data_dv, rec.op.data,
			   (uint32_t)want, CS_F_DIRTY);
		rlog_rec_release(&rec);
		if (r < 0) {
			log_err(LOG_WB,
				"cannot restore a file's bytes from "
				"the replay log into the cache: %s "
				"(the log keeps them)",
				strerror(-r));
			if (!rc)
				rc = r;
			continue;
		}
		restored++;
		CM_STAT_INC(wb->d.st, wb_data_restored);
	}
	/* What was verified is made durable too: the log may drop the
	 * bytes once the server has them. */
	if (nk) {
		int r = cs_sync_files(wb->d.cs, keys, nk);

		if (r < 0) {
			log_err(LOG_WB,
				"cannot sync the chunks of %zu files "
				"the replay log holds bytes of: %s",
				nk, strerror(-r));
			if (!rc)
				rc = r;
		}
	}
	if (restored)
		log_warn(LOG_WB,
			 "restored %zu files' bytes from the replay "
			 "log into the cache (a power cut had taken "
			 "them back)",
			 restored);
	free(v);
	free(keys);
	fidmap_clear(&map);
	return rc < 0 ? rc : (int)restored;
}

void
wb_absorbed(struct wb *wb, const struct proto_op *op)
{
	if (wb && op->kind == PROTO_OP_STORE)
		mark_logged(wb, &op->fid, NULL);
}

int
wb_sync_chunks(struct wb *wb, const struct fid *fid)
{
	int rc;

	if (!wb || !wb->d.cs)
		return 0;
	rc = cs_sync_file(wb->d.cs, fid->vol, fid->oid);
	if (rc < 0)
		log_err(LOG_WB, "cannot sync the chunks of a file: %s",
			strerror(-rc));
	return rc;
}

/* A store op from the replay log, its chunks tagged @src_dv: stage what
 * the chunk store holds DIRTY, then send (replayed or resent). */
static int
store_from_log(struct wb *wb, uint64_t seq, const struct proto_op *op,
	       uint64_t src_dv, bool replay, bool resent, mut_done_fn done,
	       void *arg, wb_staged_fn staged, void *staged_arg)
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
	st->resent = resent;
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
		/* A chunk it names goes empty (zeros) unless DIRTY at the
		 * base it was logged with: right for a range a truncate
		 * zeroed, wrong if the bytes sit at another DV. Said, so a
		 * "right size, wrong bytes" can be traced. */
		if (!st->dirty[i] && cs_lookup(wb->d.cs, &k, &info) == 0 &&
		    (info.flags & CS_F_DIRTY))
			log_warn(LOG_WB,
				 "store record %llu: chunk %llu is dirty at "
				 "DV %llu, not at its base %llu: sent as "
				 "zeros",
				 (unsigned long long)seq,
				 (unsigned long long)op->chunks[i],
				 (unsigned long long)info.dv,
				 (unsigned long long)src_dv);
	}
	/* The record carries the bytes (format 3): they are what the close
	 * logged, whatever the chunk holds now (a power cut, a later
	 * write): sent inline from there, nothing staged. A server without
	 * inline stores gets chunk 0 staged from the chunk store as before
	 * (restored from the record at start, wb_restore_logged()). */
	if (st->op.data && atomic_load(&wb->inline_ok) &&
	    rlog_data_ok(st->op.kind, st->op.chunk_size, st->op.size,
			 st->op.chunks, st->op.nchunks, st->op.dlen)) {
		st->next = 1;
	} else if (st->op.data) {
		free(st->op.data);
		st->op.data = NULL;
		st->op.dlen = 0;
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
	return store_from_log(wb, seq, op, src_dv, true, false, done, arg, NULL,
			      NULL);
}

int
wb_stage_replay_store(struct wb *wb, uint64_t seq, const struct proto_op *op,
		      uint64_t src_dv, wb_staged_fn staged, void *staged_arg,
		      mut_done_fn done, void *arg)
{
	if (!staged)
		return -EINVAL;
	return store_from_log(wb, seq, op, src_dv, true, false, done, arg,
			      staged, staged_arg);
}

int
wb_resend_store(struct wb *wb, uint64_t seq, const struct proto_op *op,
		mut_done_fn done, void *arg)
{
	return store_from_log(wb, seq, op, op->base_dv, false, true, done, arg,
			      NULL, NULL);
}

/* --- stage-ahead --- */

struct ahead_job {
	struct cm_job job;
	struct wb *wb;
	struct fid fid;
	uint64_t chunk;
};

struct ahead_put {
	struct wb *wb;
	struct fid fid;
	uint64_t chunk, id;
	uint32_t gen;
	uint8_t txid[16];
};

/* One stage-ahead PUT less of @ap's write state: note what it staged,
 * and start the store that waited for it. */
static void
ahead_end(struct ahead_put *ap, bool ok)
{
	struct wb *wb = ap->wb;
	struct store *st = NULL;
	struct wstate *ws;

	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, &ap->fid);
	if (ws && ws->id == ap->id) {
		if (ok && ws->ahead && ap->chunk < ws->ngen &&
		    !memcmp(ws->ahead_txid, ap->txid, sizeof(ap->txid)))
			ws->sgen[ap->chunk] = ap->gen;
		if (ws->ahead_inflight)
			ws->ahead_inflight--;
		if (!ws->ahead_inflight && ws->ahead_waiter) {
			st = ws->ahead_waiter;
			ws->ahead_waiter = NULL;
		}
	}
	pthread_mutex_unlock(&wb->lock);
	free(ap);
	if (st) {
		st->wait_ahead = false;
		wb_store_send(st);
	}
}

static void
ahead_done(void *arg, const struct http_result *res)
{
	ahead_end(arg, cm_http_errno(res->err, res->status, res->body,
				     res->body_len) == 0);
}

static void
ahead_run(struct cm_loop *loop, struct cm_job *job)
{
	struct ahead_job *j = (struct ahead_job *)job;
	struct wb *wb = j->wb;
	struct http_request hr = {0};
	struct ahead_put *ap = NULL;
	struct wstate *ws;
	struct cs_key k;
	struct fid rnd;
	char path[256];
	uint8_t *buf = NULL;
	uint64_t dv = 0;
	ssize_t got;
	uint64_t c = j->chunk;

	if (cm_stopping(loop) || !wb->d.http ||
	    (wb->d.conn && conn_logs_changes(wb->d.conn)))
		goto out;
	ap = calloc(1, sizeof(*ap));
	buf = malloc(wb->d.chunk_size);
	if (!ap || !buf)
		goto out;
	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, &j->fid);
	if (!ws || ws->storing || ws->gone || ws->logged || ws->no_ahead ||
	    ws->conflicted || ws->replaying || c >= ws->ngen ||
	    ws->ahead_inflight >= WB_STAGE_PARALLEL ||
	    (ws->sgen[c] && ws->sgen[c] == ws->cgen[c])) {
		pthread_mutex_unlock(&wb->lock);
		goto out;
	}
	if (!ws->ahead) {
		if (fid_random(0, &rnd) < 0) {
			pthread_mutex_unlock(&wb->lock);
			goto out;
		}
		memcpy(ws->ahead_txid, rnd.oid, sizeof(ws->ahead_txid));
		wb_ahead_reset_locked(ws);
		ws->ahead = true;
	}
	ap->wb = wb;
	ap->fid = j->fid;
	ap->chunk = c;
	ap->id = ws->id;
	ap->gen = ws->cgen[c];
	memcpy(ap->txid, ws->ahead_txid, sizeof(ap->txid));
	dv = ws->base_dv;
	ws->ahead_inflight++;
	pthread_mutex_unlock(&wb->lock);
	/* Read after the generation was taken: a write that lands now
	 * bumps it, and the store sends the chunk again. */
	cm_chunk_key(&k, &j->fid, c);
	got = cs_read(wb->d.cs, &k, dv, 0, buf, wb->d.chunk_size);
	if (got <= 0 ||
	    proto_stage_path(path, sizeof(path), wb->d.volume, &j->fid,
			     ap->txid, c, wb->d.chunk_size) < 0) {
		ahead_end(ap, false);
		ap = NULL;
		goto out;
	}
	hr.method = "PUT";
	hr.path = path;
	hr.body = buf;
	hr.body_len = (size_t)got;
	hr.content_type = "application/octet-stream";
	hr.on_done = ahead_done;
	hr.arg = ap;
	if (!http_submit(wb->d.http, &hr))
		ahead_end(ap, false);
	ap = NULL;
out:
	free(ap);
	free(buf);
	free(j);
}

void
wb_stage_ahead(struct wb *wb, const struct fid *fid, uint64_t chunk)
{
	struct ahead_job *j = calloc(1, sizeof(*j));

	if (!j)
		return;
	j->job.run = ahead_run;
	j->wb = wb;
	j->fid = *fid;
	j->chunk = chunk;
	cm_post(wb->d.loop, &j->job);
}
