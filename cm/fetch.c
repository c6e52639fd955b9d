/*
 * fetch.c - chunk transfers and parked reads.
 *
 * The loop thread owns every transfer and parked read; FUSE workers only
 * read the chunk store (fetch_read_cached) and post jobs. A transfer
 * collects the body in a chunk-sized buffer while it streams in (@have
 * bytes) and hashes it (SHA-256) as it comes. When the server sent
 * per-block CRC32Cs (X-Cairn-Blocks), each block is checked as soon as it
 * is complete, and a waiter whose range lies inside the verified prefix
 * (@verified) is answered from the buffer at once. When the body ends, its
 * length is right and its SHA-256 matches, the rest of the waiters get
 * their bytes and the transfer goes to a store thread, which writes the
 * chunk file; back on the loop fetch_chunk() callers hear. No byte is
 * served before the block holding it, or the whole body, was verified
 * (doc/cm.md "Early replies", "Fetching chunks").
 */
#include "config.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/evp.h>

#include "chunkstore/cs.h"
#include "cm/cm.h"
#include "cm/fetch.h"
#include "cm/http.h"
#include "cm/loop.h"
#include "cm/mcache.h"
#include "cm/mfetch.h"
#include "cm/stats.h"
#include "common/log.h"
#include "common/util.h"

#define FETCH_BUCKETS 256
#define FETCH_MAX_INFLIGHT 64 /* readahead stops adding beyond this */
#define READ_TRIES 4	       /* attribute refreshes of one parked read */
/* Store threads: one writes a chunk file while another creates the file
 * of the next (mostly kernel time, which waits on the file system's locks
 * as much as it computes). */
#define STORE_THREADS 2
/* Chunks waiting for the store threads; past this the loop stores itself,
 * which slows its receiving down to the disk's pace. Readahead keeps at
 * most FETCH_MAX_INFLIGHT transfers, storing ones included, and parked
 * reads add a few dozen more, so the loop only stores when the threads
 * fall far behind; the bound is there for memory (256 KiB a chunk). */
#define STORE_QUEUE_MAX 128
/* Spare chunk files the idle store threads keep ready (cs_make_spares):
 * 1024 (256 MiB of 256 KiB chunks) spare as many inode creations on a
 * cold read; made SPARE_BATCH at a time once no chunk was stored for
 * SPARE_IDLE_MS. */
#define SPARE_TARGET 1024
#define SPARE_BATCH 16
#define SPARE_IDLE_MS 1000 /* no store for this long: idle */
/* Other work (busy()) postpones spares, but a mount touched every second
 * (a prompt's git status, a monitoring stat) must not starve them: one
 * batch at least this often once no chunk was stored for SPARE_IDLE_MS
 * (16 files every 5 s: little next to a cold listing's CPU). */
#define SPARE_BUSY_MS 5000

struct xfer;

/* One reader's interest in one chunk: a parked read (@rd), which needs
 * bytes [@a, @b) of the chunk, or a caller of fetch_chunk() (@rd NULL,
 * @done called once the chunk is stored). */
struct waiter {
	SLIST_ENTRY(waiter) link;
	struct rd *rd;
	uint64_t chunk;
	uint32_t a, b;
	fetch_done_fn done;
	void *arg;
};
SLIST_HEAD(waiters, waiter);

struct xfer {
	TAILQ_ENTRY(xfer) link;
	struct fetch *f;
	struct fid fid;
	uint64_t dv, chunk, fsize;
	uint32_t expect;   /* body length the chunk must have */
	uint8_t *buf;
	size_t have;	   /* bytes received into buf */
	size_t verified;   /* prefix of buf whose blocks matched their sums */
	bool use_blocks;   /* the reply carried usable block sums (@pb) */
	const char *bad;   /* why the body was refused, or NULL */
	struct proto_blocks pb;
	unsigned attempts;
	uint64_t deadline; /* util_now_ms() bound for the whole fetch */
	uint64_t t0_us;	   /* metrics_now_us() at the first attempt */
	struct waiters waiters;
	struct http_req *req;
	struct event *retry_ev;
	/* Hand-off to the store thread: while @storing, that thread reads
	 * buf/have/fid/dv/chunk and sets @store_rc; the loop may read
	 * buf and add waiters, nothing else. */
	bool storing;
	/* A flush of the file came while this transfer was under way
	 * (fetch_drop_file): its waiters get their bytes, the chunk store
	 * does not. Set on the loop, read by the store thread. */
	atomic_bool nostore;
	bool skipped;		/* the store thread did not store (nostore) */
	unsigned put_flags;	/* CS_F_PINNED or 0, decided on the loop */
	/* SHA-256 of the body so far, updated as bytes arrive (each byte
	 * is hashed while it is in the CPU's cache from the copy into
	 * @buf, and the store thread does not read the chunk again). */
	EVP_MD_CTX *md;
	int store_rc;		/* 0 or cs_put's */
	TAILQ_ENTRY(xfer) slink; /* in fetch->squeue, protected by slock */
	struct cm_job sjob;	/* the store thread's answer to the loop */
};
TAILQ_HEAD(xferq, xfer);

/* A flush waiting until no store of its file is in flight. */
struct quiesce {
	TAILQ_ENTRY(quiesce) link;
	struct fid fid;
	fetch_done_fn done;
	void *arg;
};
TAILQ_HEAD(quiesceq, quiesce);

struct fetch {
	struct xferq buckets[FETCH_BUCKETS];
	size_t inflight;
	/* The store threads: SHA-256 and cs_put() off the loop thread. */
	pthread_t sthread[STORE_THREADS];
	unsigned nsthreads; /* started */
	pthread_mutex_t slock;
	pthread_cond_t scond;
	struct xferq squeue;	/* protected by slock */
	unsigned nqueued;	/* in squeue; protected by slock */
	bool sstop;		/* protected by slock */
	bool want_spares;	/* fewer than SPARE_TARGET may be left; slock */
	uint64_t last_store_ms;	/* util_now_ms() of the last store; slock */
	uint64_t last_busy_ms;	/* of the last sign of other work (busy());
				   slock */
	uint64_t last_spares_ms; /* of the last batch of spares; slock */
	uint64_t last_work;	/* busy()'s count when last seen; slock */
	bool stopped;		/* fetch_stop() ran: jobs only fail */
	atomic_int ra_done;	/* fetch_kernel_readahead() ran */
	struct quiesceq quiesce; /* fetch_drop_file() waiters; loop thread */

	struct cm_loop *loop;
	struct http_client *http;
	struct cs_store *cs; /* thread-safe */
	struct mcache *mc;
	struct mfetch *mf; /* loop thread, until fetch_stop() */
	struct cm_stats *st;
	atomic_int *online;
	uint64_t *away_ms; /* loop thread (struct cm's), or NULL */
	uint32_t chunk_size;
	unsigned timeout_ms;
	char *volume, *server, *mountpoint;
	struct fetch_hooks hooks;
};

/* A parked read. */
struct rd {
	struct cm_job job;
	struct fetch *f;
	struct fid fid;
	uint64_t off;
	size_t want;	/* bytes asked for */
	void *req;
	fetch_reply_fn reply;
	uint64_t dv, fsize;
	uint8_t *buf;
	size_t len;	/* bytes this read returns (clipped to fsize) */
	unsigned pending;
	int err;
	unsigned tries;
	bool started;	/* chunks were requested at least once */
	uint64_t wait_until; /* offline-miss=wait: util_now_ms() bound */
};

struct pf_job {
	struct cm_job job;
	struct fetch *f;
	struct fid fid;
	uint64_t dv, fsize, first, last;
};

static void rd_start(struct fetch *f, struct rd *rd);
static void rd_copy(struct rd *rd, const struct xfer *x, size_t upto);
static void xfer_store(struct xfer *x);

static size_t
bucket_of(const struct fid *fid, uint64_t dv, uint64_t chunk)
{
	uint64_t h = chunk * 0x9e3779b97f4a7c15ULL ^ dv;

	h ^= (uint64_t)fid->oid[0] | (uint64_t)fid->oid[1] << 8 |
	     (uint64_t)fid->oid[2] << 16;
	return (size_t)(h % FETCH_BUCKETS);
}

static struct xfer *
xfer_find(struct fetch *f, const struct fid *fid, uint64_t dv, uint64_t chunk)
{
	struct xfer *x;

	TAILQ_FOREACH(x, &f->buckets[bucket_of(fid, dv, chunk)], link)
	if (x->chunk == chunk && x->dv == dv && fid_eq(&x->fid, fid))
		return x;
	return NULL;
}

/* --- the hot path --- */

ssize_t
fetch_read_cached(struct fetch *f, const struct fid *fid, uint64_t dv,
		  uint64_t off, void *buf, size_t len)
{
	uint32_t cs = f->chunk_size;
	struct cs_key k;
	size_t done = 0;

	cm_chunk_key(&k, fid, 0);
	while (done < len) {
		uint64_t pos = off + done;
		uint32_t in = (uint32_t)(pos % cs);
		size_t n = cs - in;
		ssize_t got;

		if (n > len - done)
			n = len - done;
		k.chunk = pos / cs;
		got = cs_read(f->cs, &k, dv, in, (uint8_t *)buf + done, n);
		if (got < 0 || (size_t)got != n) {
			CM_STAT_INC(f->st, chunk_misses);
			return -ENOENT;
		}
		CM_STAT_INC(f->st, chunk_hits);
		done += n;
	}
	return (ssize_t)len;
}

/* --- transfers --- */

static void xfer_send(struct xfer *x);

/*
 * End a transfer: @err 0 means verified, and stored as x->store_rc says.
 * Readers get their bytes (or @err), fetch_chunk() callers the outcome of
 * the store. Frees @x unless @keep (a transfer the store thread still
 * holds at shutdown: its answer frees it).
 */
static void
xfer_end(struct xfer *x, int err, bool keep)
{
	struct fetch *f = x->f;
	struct waiters ws = x->waiters, later = SLIST_HEAD_INITIALIZER(later);
	struct waiter *w;

	TAILQ_REMOVE(&f->buckets[bucket_of(&x->fid, x->dv, x->chunk)], x,
		     link);
	f->inflight--;
	SLIST_INIT(&x->waiters);
	while ((w = SLIST_FIRST(&ws))) {
		struct rd *rd = w->rd;

		SLIST_REMOVE_HEAD(&ws, link);
		if (!rd) {
			/* fetch_chunk() callers hear after the store. */
			SLIST_INSERT_HEAD(&later, w, link);
			continue;
		}
		free(w);
		if (rd->err == 0 && err)
			rd->err = err;
		if (!err)
			rd_copy(rd, x, x->have);
		if (--rd->pending == 0)
			rd_start(f, rd);
	}
	/* Not stored because a flush came meanwhile: a fetch_chunk()
	 * caller (fs pin) must ask again, as after a DV change. */
	if (!err && x->skipped)
		err = -ESTALE;
	/* EBUSY: local changes of the chunk are newer; they stay. */
	if (!err && x->store_rc < 0 && x->store_rc != -EBUSY) {
		log_warn(LOG_FETCH, "cannot store chunk %llu: %s",
			 (unsigned long long)x->chunk, strerror(-x->store_rc));
		err = x->store_rc;
	}
	while ((w = SLIST_FIRST(&later))) {
		SLIST_REMOVE_HEAD(&later, link);
		w->done(w->arg, err);
		free(w);
	}
	if (keep)
		return;
	if (x->retry_ev)
		event_free(x->retry_ev);
	EVP_MD_CTX_free(x->md);
	free(x->buf);
	free(x);
}

static void
xfer_finish(struct xfer *x, int err)
{
	xfer_end(x, err, false);
}

static void
xfer_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	xfer_send(arg);
}

/* Try again after a short backoff if attempts and time are left. */
static void
xfer_fail(struct xfer *x, int err, bool retriable)
{
	struct fetch *f = x->f;
	uint64_t now = util_now_ms(), delay;

	delay = 100u << (x->attempts > 4 ? 4 : x->attempts);
	if (retriable && x->attempts < FETCH_ATTEMPTS &&
	    now + delay < x->deadline) {
		struct timeval tv = {(time_t)(delay / 1000),
				     (suseconds_t)(delay % 1000) * 1000};

		CM_STAT_INC(f->st, fetch_retries);
		if (!x->retry_ev)
			x->retry_ev =
				evtimer_new(f->loop->base, xfer_retry_cb, x);
		if (x->retry_ev && evtimer_add(x->retry_ev, &tv) == 0)
			return;
	}
	CM_STAT_INC(f->st, fetch_errors);
	xfer_finish(x, err);
}

/* Copy the share of @rd's read that chunk @x->chunk holds out of @x->buf
 * (@upto bytes of it are good). */
static void
rd_copy(struct rd *rd, const struct xfer *x, size_t upto)
{
	uint64_t cstart = x->chunk * x->f->chunk_size;
	uint64_t a = rd->off > cstart ? rd->off : cstart;
	uint64_t b = rd->off + rd->len;

	if (b > cstart + upto)
		b = cstart + upto;
	if (b > a)
		memcpy(rd->buf + (a - rd->off), x->buf + (a - cstart), b - a);
}

/* Answer every parked read whose share of this chunk now lies in the
 * verified prefix. The waiters are unlinked first: a read that completes
 * may start other work before we are done walking. */
static void
xfer_serve_verified(struct xfer *x, bool early)
{
	struct fetch *f = x->f;
	struct waiters ready = SLIST_HEAD_INITIALIZER(ready);
	struct waiters keep = SLIST_HEAD_INITIALIZER(keep);
	struct waiter *w;

	while ((w = SLIST_FIRST(&x->waiters))) {
		SLIST_REMOVE_HEAD(&x->waiters, link);
		if (w->rd && w->b <= x->verified)
			SLIST_INSERT_HEAD(&ready, w, link);
		else
			SLIST_INSERT_HEAD(&keep, w, link);
	}
	/* Back in their order. */
	while ((w = SLIST_FIRST(&keep))) {
		SLIST_REMOVE_HEAD(&keep, link);
		SLIST_INSERT_HEAD(&x->waiters, w, link);
	}
	while ((w = SLIST_FIRST(&ready))) {
		struct rd *rd = w->rd;

		SLIST_REMOVE_HEAD(&ready, link);
		free(w);
		rd_copy(rd, x, x->verified);
		if (early)
			CM_STAT_INC(f->st, early_reads);
		if (--rd->pending == 0)
			rd_start(f, rd);
	}
}

/* The reply's headers, before its first body byte: pick up block sums. */
static int
xfer_head(void *arg, const struct http_result *res)
{
	struct xfer *x = arg;
	int rc;

	if (res->status != 200 || !res->blocks ||
	    (res->file_size >= 0 && (uint64_t)res->file_size != x->fsize))
		return 0; /* xfer_done sorts these out */
	rc = proto_blocks_parse(res->blocks, x->f->chunk_size, x->expect,
				&x->pb);
	if (rc == -ENOTSUP)
		return 0; /* another algorithm: wait for the whole body */
	if (rc < 0) {
		x->bad = "malformed X-Cairn-Blocks";
		return 1;
	}
	x->use_blocks = true;
	return 0;
}

static int
xfer_data(void *arg, const void *data, size_t len)
{
	struct xfer *x = arg;
	ssize_t v;

	if (len > x->f->chunk_size - x->have) {
		x->bad = "body longer than a chunk";
		return 1;
	}
	memcpy(x->buf + x->have, data, len);
	if (!EVP_DigestUpdate(x->md, x->buf + x->have, len)) {
		x->bad = "cannot hash";
		return 1;
	}
	x->have += len;
	if (!x->use_blocks)
		return 0;
	v = proto_blocks_verify(&x->pb, x->buf, x->verified, x->have);
	if (v < 0) {
		/* Nothing at or past the bad block was served; the
		 * transfer is retried as a whole. */
		x->bad = "block checksum mismatch";
		return 1;
	}
	if ((size_t)v > x->verified) {
		x->verified = (size_t)v;
		xfer_serve_verified(x, true);
	}
	return 0;
}

/* Loop thread, once the whole body is in: does the SHA-256 of what came
 * (hashed as it arrived) match @hex? */
static bool
sha_matches(struct xfer *x, const char *hex)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char got[2 * 32 + 1];

	if (!hex || strlen(hex) != 64)
		return false;
	if (!EVP_DigestFinal_ex(x->md, md, &mdlen) || mdlen != 32)
		return false;
	util_hex_encode(md, 32, got);
	return strcasecmp(got, hex) == 0;
}

/* --- the store thread --- */

/* Store a verified chunk: x->store_rc is 0 or cs_put's. */
static void
store_one(struct fetch *f, struct xfer *x)
{
	struct cs_key k;

	if (atomic_load(&x->nostore)) {
		/* Flushed while it came in: verified (its waiters get the
		 * bytes) but not kept. */
		x->skipped = true;
		return;
	}
	cm_chunk_key(&k, &x->fid, x->chunk);
	/* Every block matched its CRC32C as it came in: the chunk's own
	 * CRC32C follows from those sums, with no second pass over it. */
	if (x->use_blocks && x->verified == x->have && x->pb.len == x->have)
		x->store_rc =
			cs_put_crc(f->cs, &k, x->dv, x->buf, (uint32_t)x->have,
				   x->put_flags, proto_blocks_crc(&x->pb));
	else
		x->store_rc = cs_put(f->cs, &k, x->dv, x->buf,
				     (uint32_t)x->have, x->put_flags);
}

/* Has cairnd done other work since the last call (slock held)? FUSE
 * requests, pages of listings and attributes fetched: a cold listing
 * costs the loop thread as much CPU as the machine gives it, and 1,024
 * spare files made meanwhile took more than half of cairnd's CPU during
 * a cold ls -f of 100,000 entries on a fresh mount (doc/cm.md "Profiles
 * of the big-directory rows"). */
static bool
busy(struct fetch *f)
{
	uint64_t n = 0;

	for (int i = 0; i < CM_R_MAX; i++)
		n += atomic_load_explicit(&f->st->reqs[i],
					  memory_order_relaxed);
	n += atomic_load_explicit(&f->st->dir_pages, memory_order_relaxed);
	n += atomic_load_explicit(&f->st->getattr_fids, memory_order_relaxed);
	if (n == f->last_work)
		return false;
	f->last_work = n;
	return true;
}

/*
 * Storing a chunk (a file created, written and renamed) is kernel work
 * the loop must not wait for: a thread of its own does it, so the loop
 * goes on receiving. Readers never wait for it (their bytes were verified
 * on the loop); fetch_chunk() callers are answered when it is done.
 */
static void *
store_main(void *arg)
{
	struct fetch *f = arg;
	struct xfer *x;

	pthread_mutex_lock(&f->slock);
	for (;;) {
		while (!(x = TAILQ_FIRST(&f->squeue)) && !f->sstop) {
			/* Idle (nothing stored for SPARE_IDLE_MS): make a
			 * few spare chunk files, so that the stores of the
			 * next cold read reuse inodes instead of creating
			 * them. Not between the stores of a read: that only
			 * moves the same work into the read and competes
			 * with it. A few at a time: a chunk that comes
			 * meanwhile waits for at most SPARE_BATCH files. */
			uint64_t now = util_now_ms(), due;

			/* Nor while cairnd is busy otherwise, but a batch
			 * at least every SPARE_BUSY_MS. */
			if (f->want_spares && busy(f))
				f->last_busy_ms = now;
			due = f->last_busy_ms + SPARE_IDLE_MS;
			if (due > f->last_spares_ms + SPARE_BUSY_MS)
				due = f->last_spares_ms + SPARE_BUSY_MS;
			if (due < f->last_store_ms + SPARE_IDLE_MS)
				due = f->last_store_ms + SPARE_IDLE_MS;
			if (f->want_spares && now >= due) {
				int made;

				pthread_mutex_unlock(&f->slock);
				made = cs_make_spares(f->cs, SPARE_BATCH,
						      SPARE_TARGET);
				pthread_mutex_lock(&f->slock);
				f->last_spares_ms = util_now_ms();
				if (made > 0)
					continue;
				f->want_spares = false;
			}
			if (f->want_spares) {
				struct timespec ts;

				util_deadline(&ts, CLOCK_REALTIME, due - now);
				pthread_cond_timedwait(&f->scond, &f->slock,
						       &ts);
			} else {
				pthread_cond_wait(&f->scond, &f->slock);
			}
		}
		if (!x)
			break;
		TAILQ_REMOVE(&f->squeue, x, slink);
		f->nqueued--;
		pthread_mutex_unlock(&f->slock);
		store_one(f, x);
		cm_post(f->loop, &x->sjob);
		pthread_mutex_lock(&f->slock);
		f->want_spares = true; /* that store may have used one */
		f->last_store_ms = util_now_ms();
	}
	pthread_mutex_unlock(&f->slock);
	return NULL;
}

/* Loop thread: is a store of @fid with the store threads? */
static bool
storing_file(struct fetch *f, const struct fid *fid)
{
	struct xfer *x;

	for (size_t i = 0; i < FETCH_BUCKETS; i++)
		TAILQ_FOREACH(x, &f->buckets[i], link)
			if (x->storing && fid_eq(&x->fid, fid))
				return true;
	return false;
}

/* Loop thread: a store of @fid came back; answer the flushes of it that
 * have nothing in flight any more. */
static void
quiesce_check(struct fetch *f, const struct fid *fid)
{
	struct quiesceq ready = TAILQ_HEAD_INITIALIZER(ready);
	struct quiesce *q, *nq;

	if (TAILQ_EMPTY(&f->quiesce) || storing_file(f, fid))
		return;
	for (q = TAILQ_FIRST(&f->quiesce); q; q = nq) {
		nq = TAILQ_NEXT(q, link);
		if (fid_eq(&q->fid, fid)) {
			TAILQ_REMOVE(&f->quiesce, q, link);
			TAILQ_INSERT_TAIL(&ready, q, link);
		}
	}
	while ((q = TAILQ_FIRST(&ready))) {
		TAILQ_REMOVE(&ready, q, link);
		q->done(q->arg, 0);
		free(q);
	}
}

/* Loop thread: the store thread is done with @x. */
static void
xfer_stored(struct cm_loop *loop, struct cm_job *job)
{
	struct xfer *x = container_of(job, struct xfer, sjob);
	struct fetch *f = x->f;
	struct fid fid = x->fid;

	(void)loop;
	x->storing = false;
	if (f->stopped) {
		/* Shut down meanwhile: fetch_stop() answered the waiters. */
		if (x->retry_ev)
			event_free(x->retry_ev);
		EVP_MD_CTX_free(x->md);
		free(x->buf);
		free(x);
		return;
	}
	if (!x->skipped) {
		CM_STAT_INC(f->st, chunks_fetched);
		CM_STAT_ADD(f->st, bytes_fetched, x->have);
	} else {
		CM_STAT_INC(f->st, flushed_in_flight);
	}
	metrics_hist_observe(&f->st->fetch_lat, metrics_now_us() - x->t0_us);
	xfer_finish(x, 0);
	quiesce_check(f, &fid);
}

/* Loop thread: hand a complete body of the right length to the store
 * thread (or, if it cannot run or is STORE_QUEUE_MAX behind, do its work
 * here). */
static void
xfer_store(struct xfer *x)
{
	struct fetch *f = x->f;

	x->storing = true;
	x->store_rc = 0;
	x->skipped = false;
	x->put_flags = f->hooks.pinned && f->hooks.pinned(f->hooks.arg, &x->fid)
			       ? CS_F_PINNED
			       : 0;
	x->sjob.run = xfer_stored;
	pthread_mutex_lock(&f->slock);
	if (f->nsthreads && !f->sstop && f->nqueued < STORE_QUEUE_MAX) {
		TAILQ_INSERT_TAIL(&f->squeue, x, slink);
		f->nqueued++;
		pthread_cond_signal(&f->scond);
		pthread_mutex_unlock(&f->slock);
		return;
	}
	pthread_mutex_unlock(&f->slock);
	store_one(f, x);
	xfer_stored(f->loop, &x->sjob);
}

static void
xfer_done(void *arg, const struct http_result *res)
{
	struct xfer *x = arg;
	struct fetch *f = x->f;
	char fs[FID_STRLEN];
	int err;

	x->req = NULL;
	fid_fmt(&x->fid, fs);
	if (res->err == -ECANCELED && !x->bad) {
		xfer_finish(x, -EIO);
		return;
	}
	if (res->err && !x->bad) {
		int was = atomic_exchange(f->online, 0);
		uint64_t now = util_now_ms(), away = now;

		if (was)
			log_warn(LOG_FETCH, "server '%s' unreachable: %s",
				 f->server, strerror(-res->err));
		if (f->away_ms) {
			if (was || !*f->away_ms)
				*f->away_ms = now;
			away = *f->away_ms;
		}
		/* A refused connection while the server has been known to be
		 * away (an earlier request, or the event stream, found it
		 * gone) for longer than the retries would wait is not
		 * retried: the reader hears EIO now, not after the backoff
		 * (offline-miss=error). Sooner than that it may be a restart
		 * of cairn-vold (a few hundred ms), which the retries cover;
		 * so are a first failure and a connection broken mid-reply. */
		xfer_fail(x, -EIO,
			  was || !cm_server_refused(res->err) ||
				  now - away < FETCH_AWAY_FAST_MS);
		return;
	}
	atomic_store(f->online, 1);
	if (f->away_ms)
		*f->away_ms = 0;
	if (res->status == 410 || res->status == 416) {
		CM_STAT_INC(f->st, stale_chunks);
		xfer_finish(x, -ESTALE);
		return;
	}
	if (res->status != 200 || x->bad) {
		err = x->bad ? -EIO : cm_http_errno(0, res->status, NULL, 0);
		log_warn(LOG_FETCH, "cannot fetch chunk %llu of '%s' dv %llu: "
				    "%s (attempt %u of %u)",
			 (unsigned long long)x->chunk, fs,
			 (unsigned long long)x->dv,
			 x->bad ? x->bad : strerror(-err), x->attempts,
			 FETCH_ATTEMPTS);
		if (x->bad)
			CM_STAT_INC(f->st, bad_chunks);
		if (err == -ENOENT) {
			xfer_finish(x, -ENOENT);
			return;
		}
		xfer_fail(x, -EIO, true);
		return;
	}
	if (res->file_size >= 0 && (uint64_t)res->file_size != x->fsize) {
		/* Same DV, other size: our attributes are not the server's;
		 * refresh them like a 410 would. */
		log_warn(LOG_FETCH, "chunk %llu of '%s': server says size %lld, "
				    "cached %llu",
			 (unsigned long long)x->chunk, fs,
			 (long long)res->file_size,
			 (unsigned long long)x->fsize);
		xfer_finish(x, -ESTALE);
		return;
	}
	if (x->have != x->expect) {
		CM_STAT_INC(f->st, bad_chunks);
		log_warn(LOG_FETCH, "chunk %llu of '%s' dv %llu: wrong length "
				    "(attempt %u of %u); not stored",
			 (unsigned long long)x->chunk, fs,
			 (unsigned long long)x->dv, x->attempts,
			 FETCH_ATTEMPTS);
		xfer_fail(x, -EIO, true);
		return;
	}
	/* The body was hashed as it came in: no pass over it here. */
	if (!sha_matches(x, res->sha256)) {
		CM_STAT_INC(f->st, bad_chunks);
		log_warn(LOG_FETCH, "chunk %llu of '%s' dv %llu: checksum "
				    "mismatch (attempt %u of %u); not stored",
			 (unsigned long long)x->chunk, fs,
			 (unsigned long long)x->dv, x->attempts,
			 FETCH_ATTEMPTS);
		xfer_fail(x, -EIO, true);
		return;
	}
	/* Verified whole: every reader gets its bytes now, not once the
	 * chunk file is written; the store thread only stores. */
	if (x->verified < x->have) {
		x->verified = x->have;
		xfer_serve_verified(x, false);
	}
	xfer_store(x);
}

static void
xfer_send(struct xfer *x)
{
	struct fetch *f = x->f;
	char path[256];
	uint64_t now = util_now_ms();
	struct http_request r = {0};
	int rc;

	x->attempts++;
	x->have = 0;
	x->verified = 0;
	if ((!x->md && !(x->md = EVP_MD_CTX_new())) ||
	    !EVP_DigestInit_ex(x->md, EVP_sha256(), NULL)) {
		xfer_fail(x, -EIO, false);
		return;
	}
	x->use_blocks = false;
	x->bad = NULL;
	rc = proto_chunk_path(path, sizeof(path), f->volume, &x->fid, x->dv,
			      x->chunk, f->chunk_size);
	if (rc < 0) {
		xfer_finish(x, -EIO);
		return;
	}
	r.method = "GET";
	r.path = path;
	r.timeout_ms = x->deadline > now ? (unsigned)(x->deadline - now) : 1;
	r.on_head = xfer_head;
	r.on_data = xfer_data;
	r.on_done = xfer_done;
	r.arg = x;
	x->req = http_submit(f->http, &r);
	if (!x->req)
		xfer_fail(x, -EIO, false);
}

/* Find or start the transfer of a chunk; add @w (may be NULL). @return
 * 0, -EAGAIN when @w is NULL and the in-flight limit is reached, -ENOMEM. */
static int
xfer_want(struct fetch *f, const struct fid *fid, uint64_t dv, uint64_t fsize,
	  uint64_t chunk, struct waiter *w)
{
	struct xfer *x = xfer_find(f, fid, dv, chunk);
	uint64_t start = chunk * f->chunk_size;

	if (!x) {
		if (!w && f->inflight >= FETCH_MAX_INFLIGHT)
			return -EAGAIN;
		x = calloc(1, sizeof(*x));
		if (!x)
			return -ENOMEM;
		x->buf = malloc(f->chunk_size);
		if (!x->buf) {
			free(x);
			return -ENOMEM;
		}
		x->f = f;
		x->fid = *fid;
		x->dv = dv;
		x->chunk = chunk;
		x->fsize = fsize;
		x->expect = fsize - start < f->chunk_size
				    ? (uint32_t)(fsize - start)
				    : f->chunk_size;
		x->deadline = util_now_ms() + f->timeout_ms;
		x->t0_us = metrics_now_us();
		TAILQ_INSERT_TAIL(&f->buckets[bucket_of(fid, dv, chunk)], x,
				  link);
		f->inflight++;
		if (!w)
			CM_STAT_INC(f->st, prefetches);
		xfer_send(x);
		/* xfer_send may have failed and freed x already. */
		x = xfer_find(f, fid, dv, chunk);
		if (!x && w) {
			if (w->rd)
				w->rd->err = w->rd->err ? w->rd->err : -EIO;
			return -EIO;
		}
	}
	if (w && x && w->rd && w->b <= x->verified) {
		/* Joining late: our bytes are verified already. The caller
		 * holds a count on the read, so pending stays above 0. */
		rd_copy(w->rd, x, x->verified);
		CM_STAT_INC(f->st, early_reads);
		w->rd->pending--;
		free(w);
		return 0;
	}
	/* A fetch_chunk() caller wants the chunk stored, even if a flush
	 * came before it (too late if the store thread has it: the caller
	 * hears -ESTALE and asks again). */
	if (w && x && !w->rd && !x->storing)
		atomic_store(&x->nostore, false);
	if (w && x)
		SLIST_INSERT_HEAD(&x->waiters, w, link);
	return 0;
}

/* --- parked reads --- */

static void
rd_reply(struct fetch *f, struct rd *rd, int err)
{
	(void)f;
	rd->reply(rd->req, rd->buf, err ? 0 : rd->len, err);
	free(rd->buf);
	free(rd);
}

/*
 * Disconnected with offline-miss=wait: a read that found no server starts
 * over every 250 ms until the policy's bound (counted from the first
 * failure), so it is answered as soon as the server is back. @return true
 * when the read was put back.
 */
static bool
rd_wait_offline(struct fetch *f, struct rd *rd, int err)
{
	uint64_t bound, now;

	if (err == -ENOENT || err == -ESTALE || err == -ENOMEM ||
	    cm_stopping(f->loop))
		return false;
	bound = f->hooks.miss_wait_ms ? f->hooks.miss_wait_ms(f->hooks.arg) : 0;
	if (!bound)
		return false;
	now = util_now_ms();
	if (!rd->wait_until)
		rd->wait_until = now + bound;
	if (now >= rd->wait_until)
		return false;
	rd->err = 0;
	rd->tries = 0;
	rd->started = false;
	free(rd->buf);
	rd->buf = NULL;
	return cm_post_after(f->loop, &rd->job, 250) == 0;
}

static void
rd_attr_cb(void *arg, int err)
{
	struct rd *rd = arg;
	struct fetch *f = rd->f;

	if (err) {
		if (rd_wait_offline(f, rd, err))
			return;
		rd_reply(f, rd, err == -ENOENT ? -ESTALE : -EIO);
		return;
	}
	rd_start(f, rd);
}

/*
 * (Re)start a parked read: called first from the job, and again when the
 * last chunk it waited for has arrived (pending == 0). If it has all its
 * bytes, reply; if a chunk was stale, refresh the attributes and start over
 * with the new DV; otherwise serve hits and wait for the misses.
 */
static void
rd_start(struct fetch *f, struct rd *rd)
{
	struct proto_attr a;
	uint64_t c0, c1;
	int rc;

	if (rd->started) {
		/* Second entry: the chunks we waited for are in. */
		if (rd->err == 0) {
			rd_reply(f, rd, 0);
			return;
		}
		if (rd->err != -ESTALE || rd->tries >= READ_TRIES) {
			if (rd_wait_offline(f, rd, rd->err))
				return;
			rd_reply(f, rd, rd->err == -ENOENT ? -ESTALE : -EIO);
			return;
		}
		/* The DV moved under us: fetch the attributes again. */
		rd->err = 0;
		rd->started = false;
		free(rd->buf);
		rd->buf = NULL;
		mcache_drop_attr(f->mc, &rd->fid);
	}
	rd->tries++;
	if (mcache_attr(f->mc, &rd->fid, &a) < 0) {
		if (rd->tries > READ_TRIES) {
			rd_reply(f, rd, -EIO);
			return;
		}
		mfetch_want_attr(f->mf, &rd->fid, rd_attr_cb, rd);
		return;
	}
	if (a.type != PROTO_T_FILE) {
		rd_reply(f, rd, -EISDIR);
		return;
	}
	rd->dv = a.dv;
	rd->fsize = a.size;
	rd->len = rd->off >= a.size ? 0
		  : a.size - rd->off < rd->want ? (size_t)(a.size - rd->off)
						 : rd->want;
	rd->buf = malloc(rd->len ? rd->len : 1);
	if (!rd->buf) {
		rd_reply(f, rd, -ENOMEM);
		return;
	}
	if (rd->len == 0) {
		rd_reply(f, rd, 0);
		return;
	}
	rd->started = true;
	c0 = rd->off / f->chunk_size;
	c1 = (rd->off + rd->len - 1) / f->chunk_size;
	rd->pending = 1; /* held while we walk the chunks */
	for (uint64_t c = c0; c <= c1; c++) {
		uint64_t cstart = c * f->chunk_size;
		uint64_t a0 = rd->off > cstart ? rd->off : cstart;
		uint64_t b0 = rd->off + rd->len;
		struct cs_key k;
		struct waiter *w;
		ssize_t got;

		if (b0 > cstart + f->chunk_size)
			b0 = cstart + f->chunk_size;
		cm_chunk_key(&k, &rd->fid, c);
		got = cs_read(f->cs, &k, rd->dv, (uint32_t)(a0 - cstart),
			      rd->buf + (a0 - rd->off), b0 - a0);
		if (got == (ssize_t)(b0 - a0)) {
			CM_STAT_INC(f->st, chunk_hits);
			continue;
		}
		CM_STAT_INC(f->st, chunk_misses);
		w = calloc(1, sizeof(*w));
		if (!w) {
			rd->err = -ENOMEM;
			break;
		}
		w->rd = rd;
		w->chunk = c;
		w->a = (uint32_t)(a0 - cstart);
		w->b = (uint32_t)(b0 - cstart);
		rd->pending++;
		rc = xfer_want(f, &rd->fid, rd->dv, rd->fsize, c, w);
		if (rc < 0) {
			rd->pending--;
			free(w);
			if (!rd->err)
				rd->err = rc;
			break;
		}
	}
	if (--rd->pending == 0)
		rd_start(f, rd);
}

static void
rd_job(struct cm_loop *loop, struct cm_job *job)
{
	struct rd *rd = container_of(job, struct rd, job);
	struct fetch *f = rd->f;

	(void)loop;
	if (f->stopped) {
		rd->reply(rd->req, NULL, 0, -EIO);
		free(rd);
		return;
	}
	rd_start(f, rd);
}

int
fetch_read_park(struct fetch *f, const struct fid *fid, uint64_t off,
		size_t len, void *req, fetch_reply_fn reply)
{
	struct rd *rd = calloc(1, sizeof(*rd));

	if (!rd)
		return -ENOMEM;
	rd->job.run = rd_job;
	rd->f = f;
	rd->fid = *fid;
	rd->off = off;
	rd->want = len;
	rd->req = req;
	rd->reply = reply;
	CM_STAT_INC(f->st, parked);
	cm_post(f->loop, &rd->job);
	return 0;
}


/* --- readahead --- */

static void
pf_run(struct cm_loop *loop, struct cm_job *job)
{
	struct pf_job *p = container_of(job, struct pf_job, job);
	struct fetch *f = p->f;
	uint64_t nchunks;

	(void)loop;
	if (f->stopped || p->fsize == 0)
		goto out;
	nchunks = (p->fsize + f->chunk_size - 1) / f->chunk_size;
	if (p->last >= nchunks)
		p->last = nchunks - 1;
	for (uint64_t c = p->first; c <= p->last; c++) {
		struct cs_key k;
		struct cs_info info;

		if (xfer_find(f, &p->fid, p->dv, c))
			continue;
		cm_chunk_key(&k, &p->fid, c);
		if (cs_lookup(f->cs, &k, &info) == 0 && info.dv == p->dv)
			continue;
		if (xfer_want(f, &p->fid, p->dv, p->fsize, c, NULL) < 0)
			break;
	}
out:
	free(p);
}

bool
fetch_advise(struct fetch *f, const struct fid *fid, uint64_t dv,
	     uint64_t fsize, uint64_t first, uint64_t last)
{
	bool missing = false;
	struct cs_key k;

	cm_chunk_key(&k, fid, 0);
	for (uint64_t c = first; c <= last && c * f->chunk_size < fsize; c++) {
		k.chunk = c;
		if (cs_willneed(f->cs, &k, dv) == 0)
			CM_STAT_INC(f->st, chunks_advised);
		else
			missing = true;
	}
	return missing;
}

void
fetch_prefetch(struct fetch *f, const struct fid *fid, uint64_t dv,
	       uint64_t fsize, uint64_t first, uint64_t last)
{
	struct pf_job *p;

	if (first > last || first * f->chunk_size >= fsize)
		return;
	p = calloc(1, sizeof(*p));
	if (!p)
		return;
	p->job.run = pf_run;
	p->f = f;
	p->fid = *fid;
	p->dv = dv;
	p->fsize = fsize;
	p->first = first;
	p->last = last;
	cm_post(f->loop, &p->job);
}

/* --- fetches without a reader (fs pin) --- */

int
fetch_chunk(struct fetch *f, const struct fid *fid, uint64_t dv, uint64_t fsize,
	    uint64_t chunk, fetch_done_fn done, void *arg)
{
	struct waiter *w;
	int rc;

	if (!f || f->stopped)
		return -ECANCELED;
	if (chunk * f->chunk_size >= fsize)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->chunk = chunk;
	w->done = done;
	w->arg = arg;
	rc = xfer_want(f, fid, dv, fsize, chunk, w);
	if (rc < 0)
		free(w);
	return rc;
}

/* --- flushes --- */

int
fetch_drop_file(struct fetch *f, const struct fid *fid, fetch_done_fn done,
		void *arg)
{
	struct quiesce *q;
	bool wait = false;
	struct xfer *x;

	if (!f || f->stopped)
		return 0;
	for (size_t i = 0; i < FETCH_BUCKETS; i++)
		TAILQ_FOREACH(x, &f->buckets[i], link) {
			if (!fid_eq(&x->fid, fid))
				continue;
			atomic_store(&x->nostore, true);
			if (x->storing)
				wait = true;
		}
	if (!wait)
		return 0;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->fid = *fid;
	q->done = done;
	q->arg = arg;
	TAILQ_INSERT_TAIL(&f->quiesce, q, link);
	return 1;
}

/* --- kernel readahead --- */

/* Escape @in as /proc/self/mountinfo does (space, tab, newline and
 * backslash as \ooo). @return 0, or -ENAMETOOLONG. */
static int
mountinfo_escape(const char *in, char *out, size_t len)
{
	size_t o = 0;

	for (; *in; in++) {
		unsigned char ch = (unsigned char)*in;

		if (o + 5 > len)
			return -ENAMETOOLONG;
		if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\\')
			o += (size_t)snprintf(out + o, len - o, "\\%03o", ch);
		else
			out[o++] = (char)ch;
	}
	out[o] = '\0';
	return 0;
}

void
fetch_kernel_readahead(struct fetch *f, unsigned kib)
{
	char want[8192], line[16384], path[64], dev[32] = "";
	FILE *fp;
	int rc;

	if (!f || atomic_exchange(&f->ra_done, 1) || !f->mountpoint ||
	    mountinfo_escape(f->mountpoint, want, sizeof(want)) < 0)
		return;
	fp = fopen("/proc/self/mountinfo", "re");
	if (!fp)
		return;
	/* "ID PARENT MAJ:MIN ROOT MOUNTPOINT ...": the last line for our
	 * mount point is the mount on top. */
	while (fgets(line, sizeof(line), fp)) {
		char d[32], mp[8192];

		if (sscanf(line, "%*u %*u %31s %*s %8191s", d, mp) == 2 &&
		    !strcmp(mp, want) && strstr(line, " - fuse"))
			snprintf(dev, sizeof(dev), "%s", d);
	}
	fclose(fp);
	if (!dev[0] || strchr(dev, '/'))
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", dev);
	fp = fopen(path, "we");
	if (!fp) {
		log_info(LOG_FETCH, "cannot raise kernel readahead ('%s'): %s",
			 path, strerror(errno));
		return;
	}
	rc = fprintf(fp, "%u\n", kib) < 0 ? -EIO : 0;
	if (fclose(fp) != 0 || rc)
		log_info(LOG_FETCH, "cannot raise kernel readahead ('%s')",
			 path);
	else
		log_debug(LOG_FETCH, "kernel readahead of %s: %u KiB", dev,
			  kib);
}

/* --- setup --- */

struct fetch *
fetch_new(const struct fetch_deps *d, const struct fetch_hooks *hooks)
{
	struct fetch *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->loop = d->loop;
	f->http = d->http;
	f->cs = d->cs;
	f->mc = d->mc;
	f->mf = d->mf;
	f->st = d->st;
	f->online = d->online;
	f->away_ms = d->away_ms;
	f->chunk_size = d->chunk_size;
	f->timeout_ms = d->timeout_ms;
	if (hooks)
		f->hooks = *hooks;
	f->volume = strdup(d->volume ? d->volume : "");
	f->server = strdup(d->server ? d->server : "");
	f->mountpoint = d->mountpoint ? strdup(d->mountpoint) : NULL;
	if (!f->volume || !f->server || (d->mountpoint && !f->mountpoint)) {
		free(f->volume);
		free(f->server);
		free(f->mountpoint);
		free(f);
		errno = ENOMEM;
		return NULL;
	}
	/* Every transfer has a chunk-sized buffer and every parked read one
	 * of up to 1 MiB. Above glibc's mmap threshold each would be a fresh
	 * mmap, zero-filled page by page and unmapped again: a cold read
	 * spent a third of the loop thread's time there. Keep them on the
	 * heap, and do not hand the heap's top back after every free. */
	mallopt(M_MMAP_THRESHOLD, 8 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	for (size_t i = 0; i < FETCH_BUCKETS; i++)
		TAILQ_INIT(&f->buckets[i]);
	TAILQ_INIT(&f->squeue);
	TAILQ_INIT(&f->quiesce);
	pthread_mutex_init(&f->slock, NULL);
	pthread_cond_init(&f->scond, NULL);
	f->want_spares = true;
	/* A start is busy: the mount, its first lookups and listings. */
	f->last_store_ms = util_now_ms();
	f->last_busy_ms = f->last_store_ms;
	f->last_spares_ms = f->last_store_ms;
	/* Without a thread, stores run on the loop (slower, still right). */
	while (f->nsthreads < STORE_THREADS &&
	       pthread_create(&f->sthread[f->nsthreads], NULL, store_main, f) ==
		       0)
		f->nsthreads++;
	if (!f->nsthreads)
		log_warn(LOG_FETCH, "cannot start the store thread; storing "
				    "on the loop");
	return f;
}

void
fetch_stop(struct fetch *f)
{
	if (!f || f->stopped)
		return;
	/* The store thread finishes its queue (each answer is a job that
	 * runs later and, seeing the engine stopped, only frees). */
	if (f->nsthreads) {
		pthread_mutex_lock(&f->slock);
		f->sstop = true;
		pthread_cond_broadcast(&f->scond);
		pthread_mutex_unlock(&f->slock);
		while (f->nsthreads)
			pthread_join(f->sthread[--f->nsthreads], NULL);
	}
	/* http_free() ran first, so transfers waiting for a reply are gone;
	 * what is left waits for a retry timer or for its store answer. */
	for (size_t i = 0; i < FETCH_BUCKETS; i++) {
		struct xfer *x;

		while ((x = TAILQ_FIRST(&f->buckets[i])))
			xfer_end(x, -EIO, x->storing);
	}
	f->stopped = true;
	/* The store threads are gone: whatever they had is stored. A flush
	 * waiting for them goes on (stopped first: what it starts next, a
	 * pin refetch, is refused, the HTTP client being gone). */
	while (!TAILQ_EMPTY(&f->quiesce)) {
		struct quiesce *q = TAILQ_FIRST(&f->quiesce);

		TAILQ_REMOVE(&f->quiesce, q, link);
		q->done(q->arg, 0);
		free(q);
	}
	f->mf = NULL;
}

void
fetch_free(struct fetch *f)
{
	if (!f)
		return;
	fetch_stop(f);
	pthread_cond_destroy(&f->scond);
	pthread_mutex_destroy(&f->slock);
	free(f->volume);
	free(f->server);
	free(f->mountpoint);
	free(f);
}
