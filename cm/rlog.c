/*
 * rlog.c - the replay log: cairnd's durable, ordered list of mutations not
 * yet acknowledged by the server, with Coda-style cancellation at append.
 *
 * It is a store, not a sender: the write path and the reintegration worker
 * decide when to send; this module decides what survives, in which order,
 * and makes every change durable before it returns.
 *
 * File design (one tdb file, CACHEDIR/rlog.tdb, and its journal):
 *
 *   "H"                      header: magic, format version, next seq,
 *                            counters (records per state, data bytes)
 *   'R' seq(be64)            a record: CRC32C, format byte, state, kind,
 *                            seq, wall-clock time, byte count, the op in a
 *                            fixed little-endian layout, an optional
 *                            conflict section (doc/replay-log.md, "Format")
 *   'h' list-id              head of a list: first seq, last seq, count
 *   'n' list-id seq(be64)    a list node: prev seq, next seq, aux, kind
 *
 * tdb is a hash: it has no order. Order and secondary indexes are doubly
 * linked lists of node keys, kept sorted by seq, in the same file and
 * updated in the same transaction as the records:
 *
 *   list 'A'             every record (aux = state): rlog_iterate()
 *   list 'P'             PENDING records: rlog_first() is O(1)
 *   list 'C'             CONFLICT records: rlog_conflicts()
 *   list 'F' + FID       every record that names FID, aux = the roles it
 *                        names it in (object, parent, newparent, victim):
 *                        cancellation costs O(records of that FID)
 *
 * Appends take the end of each list (seqs only grow), so an append writes
 * a fixed number of small keys whatever the log's size; opening reads one
 * header, never the records.
 *
 * Crash design: every change (append with its cancellations, state change,
 * removal, conflict) is ONE transaction of the tdb through its journal
 * PATH.jnl (common/tdbj.h): the commit appends one record holding every
 * key the transaction changed and fdatasyncs it once; reads see those keys
 * in memory until a checkpoint (journal past RLOG_JNL_MAX, close) writes
 * them to the tdb in one ordinary tdb transaction. Open cuts a torn journal
 * tail (a commit that never returned). So a process killed at any instant
 * leaves the log as it was before the call or as it is after it, and a
 * call that returned 0 has reached the disk. RLOG_O_NOSYNC skips the
 * fsyncs (tests only): process death is still survived, power loss is not.
 * A new file is built under PATH.new and linked to PATH only once
 * complete, so PATH never names a half-made log; an existing PATH is
 * opened WITHOUT O_CREAT, because tdb re-initialises a file with a bad
 * header when O_CREAT is given (a silent wipe).
 *
 * Locking: one process (exclusive flock on PATH, so tdb's own fcntl locks
 * are switched off with TDB_NOLOCK); within it, l->lock guards the tdb
 * handle and the cached header. Appends go through a group-commit queue
 * (l->qlock): the thread that finds no commit running becomes the leader,
 * takes every queued append, and commits them in one transaction while
 * later arrivals queue for the next one.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "cm/rlog.h"
#include "cm/rlog_i.h"
#include "common/log.h"
#include "common/util.h"

/* --- transactions --- */

/* Remove the lazy removals (RLOG_A_LAZY) in the open transaction. A
 * record already gone or now a conflict is skipped. */
static int
lazy_apply(struct rlog *l)
{
	struct rlog_rec r;
	int rc;

	for (size_t i = 0; i < l->nlazy; i++) {
		rc = rlog_rec_load(l, l->lazy[i], &r);
		if (rc == -ENOENT)
			continue;
		if (rc)
			return rc;
		rc = r.state == RLOG_CONFLICT ? 0 : rlog_rec_del(l, &r);
		rlog_rec_release(&r);
		if (rc)
			return rc;
	}
	return 0;
}

static int
txn_begin(struct rlog *l)
{
	int rc;

	if (l->flags & RLOG_O_RDONLY)
		return -EROFS;
	rc = tdbj_txn_start(l->j);
	if (rc)
		return rc;
	l->tx = l->hdr;
	l->nlazy_tx = 0;
	if (l->nlazy) {
		/* The removals waiting ride in this transaction. If they
		 * cannot, they are dropped (the records stay, to be resent
		 * at the next start) rather than fail the caller's change. */
		rc = lazy_apply(l);
		if (rc) {
			log_warn(LOG_RLOG,
				 "cannot drop %zu acknowledged records of "
				 "'%s': %s",
				 l->nlazy, l->path, strerror(-rc));
			tdbj_txn_cancel(l->j);
			l->nlazy = 0;
			rc = tdbj_txn_start(l->j);
			if (rc)
				return rc;
			l->tx = l->hdr;
		} else {
			l->nlazy_tx = l->nlazy;
		}
	}
	return 0;
}

/* A checkpoint the last commit tried failed (disk full, I/O error): the
 * journal keeps the changes and grows; say so, at most once a minute. */
static void
ckpt_check(struct rlog *l)
{
	struct tdbj_stats js;
	int64_t now;

	tdbj_stats(l->j, &js);
	if (js.ckpt_fails == l->ckpt_fails_seen)
		return;
	now = rlog_now_real_ms();
	if (l->ckpt_warn_ms && now - l->ckpt_warn_ms < 60000)
		return;
	log_warn(LOG_RLOG,
		 "cannot checkpoint the journal of '%s' (%" PRIu64
		 " failure(s), journal %" PRIu64 " bytes): %s",
		 l->path, js.ckpt_fails - l->ckpt_fails_seen, js.bytes,
		 strerror(-js.ckpt_err));
	l->ckpt_fails_seen = js.ckpt_fails;
	l->ckpt_warn_ms = now;
}

static int
txn_commit(struct rlog *l)
{
	int rc = rlog_hdr_put(l, &l->tx);
	bool nosync = l->tx_nosync && !(l->flags & RLOG_O_NOSYNC);

	l->tx_nosync = false;
	if (rc) {
		tdbj_txn_cancel(l->j);
		return rc;
	}
	/* A per-call RLOG_A_NOSYNC: only this commit skips the fsync. */
	rc = tdbj_txn_commit(l->j, nosync ? TDBJ_C_NOSYNC : 0);
	if (rc) {
		log_err(LOG_RLOG, "cannot commit to replay log '%s': %s",
			l->path, strerror(-rc));
		return rc;
	}
	l->hdr = l->tx;
	l->ncommits++;
	ckpt_check(l);
	/* The lazy removals it carried are done; later ones wait on. */
	if (l->nlazy_tx) {
		memmove(l->lazy, l->lazy + l->nlazy_tx,
			(l->nlazy - l->nlazy_tx) * sizeof(*l->lazy));
		l->nlazy -= l->nlazy_tx;
		l->nlazy_tx = 0;
	}
	return 0;
}

static void
txn_cancel(struct rlog *l)
{
	l->tx_nosync = false;
	l->nlazy_tx = 0;
	tdbj_txn_cancel(l->j);
}

int
rlog_sync(struct rlog *l)
{
	uint64_t pos;

	if (!l)
		return 0;
	pthread_mutex_lock(&l->lock);
	pos = tdbj_pos(l->j);
	pthread_mutex_unlock(&l->lock);
	/* One fdatasync of the journal covers every commit before it,
	 * those made with RLOG_A_NOSYNC included. */
	return tdbj_sync_to(l->j, pos);
}

/* Commit the lazy removals waiting, in a transaction of their own
 * (without fsync): before a read, a close, or when too many wait. Called
 * with the lock held. */
void
rlog_lazy_flush_locked(struct rlog *l)
{
	if (!l->nlazy || (l->flags & RLOG_O_RDONLY))
		return;
	if (txn_begin(l))
		return;
	l->tx_nosync = true;
	if (txn_commit(l))
		l->nlazy = 0; /* logged by txn_commit; resent at next start */
}

static void direct_del(struct rlog *l, uint64_t seq);

/* Queue @n removals (RLOG_A_LAZY). @return 0 or -ENOMEM. */
static int
lazy_add_locked(struct rlog *l, const uint64_t *seqs, size_t n)
{
	if (l->nlazy + n > l->caplazy) {
		size_t nc = l->caplazy ? l->caplazy : 16;
		uint64_t *p;

		while (nc < l->nlazy + n)
			nc *= 2;
		p = realloc(l->lazy, nc * sizeof(*p));
		if (!p)
			return -ENOMEM;
		l->lazy = p;
		l->caplazy = nc;
	}
	for (size_t i = 0; i < n; i++)
		if (seqs[i]) {
			l->lazy[l->nlazy++] = seqs[i];
			/* gone for every reader from now on */
			direct_del(l, seqs[i]);
		}
	if (l->nlazy >= RLOG_LAZY_MAX)
		rlog_lazy_flush_locked(l);
	return 0;
}

static void
effs_release(struct rlog_effect *effs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		rlog_effect_release(&effs[i]);
}

/* --- the direct set: records whose appender sends them --- */

static size_t
direct_at(const struct rlog *l, uint64_t seq)
{
	size_t lo = 0, hi = l->ndirect;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (l->direct[mid] < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Lock held. Seqs grow: an append goes at the end. Out of memory the
 * record is not listed (a replay may then send it too, under its opid:
 * the server answers it once). */
static void
direct_add(struct rlog *l, uint64_t seq)
{
	size_t i;

	if (l->ndirect == l->direct_cap) {
		size_t cap = l->direct_cap ? 2 * l->direct_cap : 16;
		uint64_t *nd = realloc(l->direct, cap * sizeof(*nd));

		if (!nd)
			return;
		l->direct = nd;
		l->direct_cap = cap;
	}
	i = direct_at(l, seq);
	if (i < l->ndirect && l->direct[i] == seq)
		return;
	memmove(&l->direct[i + 1], &l->direct[i],
		(l->ndirect - i) * sizeof(*l->direct));
	l->direct[i] = seq;
	l->ndirect++;
}

/* Lock held. */
static void
direct_del(struct rlog *l, uint64_t seq)
{
	size_t i = direct_at(l, seq);

	if (i >= l->ndirect || l->direct[i] != seq)
		return;
	memmove(&l->direct[i], &l->direct[i + 1],
		(l->ndirect - i - 1) * sizeof(*l->direct));
	l->ndirect--;
}

bool
rlog_is_direct(struct rlog *l, uint64_t seq)
{
	size_t i;
	bool r;

	if (!l)
		return false;
	pthread_mutex_lock(&l->lock);
	i = direct_at(l, seq);
	r = i < l->ndirect && l->direct[i] == seq;
	pthread_mutex_unlock(&l->lock);
	return r;
}

size_t
rlog_ndirect(struct rlog *l)
{
	size_t n;

	if (!l)
		return 0;
	pthread_mutex_lock(&l->lock);
	n = l->ndirect;
	pthread_mutex_unlock(&l->lock);
	return n;
}

void
rlog_undirect(struct rlog *l, uint64_t seq)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->lock);
	direct_del(l, seq);
	pthread_mutex_unlock(&l->lock);
}

/* Run @reqs (a chain of @nreq group members) in one transaction. */
static int
commit_reqs(struct rlog *l, struct greq **reqs, size_t nreq)
{
	uint64_t cancelled = l->ncancelled;
	size_t i, j;
	int rc;

	bool nosync = true;

	rc = txn_begin(l);
	if (rc)
		return rc;
	for (i = 0; i < nreq; i++)
		if (!(reqs[i]->flags & RLOG_A_NOSYNC))
			nosync = false;
	l->tx_nosync = nosync;
	for (i = 0; !rc && i < nreq; i++)
		for (j = 0; !rc && j < reqs[i]->n; j++)
			rc = rlog_apply_one(l, &reqs[i]->ops[j], reqs[i]->flags,
				       &reqs[i]->effs[j]);
	if (!rc)
		rc = txn_commit(l);
	else
		txn_cancel(l);
	if (rc) {
		l->ncancelled = cancelled;
		for (i = 0; i < nreq; i++)
			effs_release(reqs[i]->effs, reqs[i]->n);
		return rc;
	}
	for (i = 0; i < nreq; i++) {
		l->nappends += reqs[i]->n;
		if (reqs[i]->flags & RLOG_A_INFLIGHT)
			for (j = 0; j < reqs[i]->n; j++)
				if (reqs[i]->effs[j].seq)
					direct_add(l, reqs[i]->effs[j].seq);
	}
	return 0;
}

/* The leader's work: one transaction for the whole group; if it fails,
 * each member alone, so one member's error is not another's. */
static void
group_run(struct rlog *l, struct greq **reqs, size_t nreq)
{
	int rc;

	pthread_mutex_lock(&l->lock);
	rc = commit_reqs(l, reqs, nreq);
	if (rc && nreq > 1) {
		for (size_t i = 0; i < nreq; i++)
			reqs[i]->rc = commit_reqs(l, &reqs[i], 1);
	} else {
		for (size_t i = 0; i < nreq; i++)
			reqs[i]->rc = rc;
	}
	pthread_mutex_unlock(&l->lock);
}

/* Queue @req and return once a group commit has run it. */
static int
group_submit(struct rlog *l, struct greq *req)
{
	struct greq *batch[64], **reqs = batch, *r;
	size_t nreq, nops, cap = 64;

	pthread_mutex_lock(&l->qlock);
	STAILQ_INSERT_TAIL(&l->queue, req, link);
	while (!req->done) {
		if (l->leader) {
			pthread_cond_wait(&l->qcond, &l->qlock);
			continue;
		}
		l->leader = true;
		nreq = nops = 0;
		while ((r = STAILQ_FIRST(&l->queue)) &&
		       (!nreq || nops + r->n <= GROUP_MAX)) {
			if (nreq == cap) {
				struct greq **nr;

				nr = malloc(2 * cap * sizeof(*nr));
				if (!nr)
					break;
				memcpy(nr, reqs, nreq * sizeof(*nr));
				if (reqs != batch)
					free(reqs);
				reqs = nr;
				cap *= 2;
			}
			STAILQ_REMOVE_HEAD(&l->queue, link);
			reqs[nreq++] = r;
			nops += r->n;
		}
		pthread_mutex_unlock(&l->qlock);
		group_run(l, reqs, nreq);
		pthread_mutex_lock(&l->qlock);
		for (size_t i = 0; i < nreq; i++)
			reqs[i]->done = true;
		l->leader = false;
		pthread_cond_broadcast(&l->qcond);
	}
	pthread_mutex_unlock(&l->qlock);
	if (reqs != batch)
		free(reqs);
	return req->rc;
}

static int
append_common(struct rlog *l, const struct proto_op *ops, size_t n,
	      unsigned flags, struct rlog_effect *effs)
{
	struct greq req = {.ops = ops, .n = n, .flags = flags, .effs = effs};
	size_t i;
	int rc;

	/* The effects are outputs: whatever they held is overwritten. */
	if (effs && n)
		memset(effs, 0, n * sizeof(*effs));
	if (!l || (n && !ops) ||
	    (flags & ~(unsigned)(RLOG_A_INFLIGHT | RLOG_A_NOSYNC)))
		return -EINVAL;
	if (l->flags & RLOG_O_RDONLY)
		return -EROFS;
	for (i = 0; i < n; i++) {
		rc = rlog_op_check(&ops[i]);
		if (rc)
			return rc;
	}
	if (!n)
		return 0;
	return group_submit(l, &req);
}

int
rlog_append_ex(struct rlog *l, const struct proto_op *op, unsigned flags,
	       struct rlog_effect *eff)
{
	struct rlog_effect local;
	int rc;

	if (eff)
		memset(eff, 0, sizeof(*eff));
	if (!op)
		return -EINVAL;
	rc = append_common(l, op, 1, flags, eff ? eff : &local);
	if (!eff)
		rlog_effect_release(&local);
	return rc;
}

int
rlog_append(struct rlog *l, const struct proto_op *op, uint64_t *seq)
{
	struct rlog_effect eff;
	int rc;

	if (!op)
		return -EINVAL;
	rc = append_common(l, op, 1, 0, &eff);
	if (seq)
		*seq = rc ? 0 : eff.seq;
	rlog_effect_release(&eff);
	return rc;
}

int
rlog_append_batch(struct rlog *l, const struct proto_op *ops, size_t n,
		  unsigned flags, struct rlog_effect *effs)
{
	struct rlog_effect *local = effs;
	int rc;

	if (!effs && n) {
		local = calloc(n, sizeof(*local));
		if (!local)
			return -ENOMEM;
	}
	rc = append_common(l, ops, n, flags, local);
	if (!effs) {
		effs_release(local, n);
		free(local);
	}
	return rc;
}

/* --- open / close --- */

static void tdb_log(struct tdb_context *tdb, enum tdb_debug_level level,
		    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
tdb_log(struct tdb_context *tdb, enum tdb_debug_level level, const char *fmt,
	...)
{
	char msg[512];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = 0;
	log_msg(LOG_RLOG,
		level <= TDB_DEBUG_ERROR     ? LOG_ERR
		: level == TDB_DEBUG_WARNING ? LOG_WARNING
					     : LOG_DEBUG,
		"tdb '%s': %s", tdb_name(tdb), msg);
}

static struct tdb_context *
tdb_open_log(const char *path, int oflags, unsigned flags)
{
	struct tdb_logging_context lc = {tdb_log, NULL};
	/* Mapped: the tdb file is written only at journal checkpoints, so
	 * the remap each tdb commit costs is paid once per checkpoint, and
	 * every read the overlay does not answer is a memcpy, not a pread
	 * (without the map a 4 MiB checkpoint took 0.5 s of preads, with it
	 * 0.05 s; before the journal, TDB_NOMMAP won because every change
	 * remapped). NOLOCK: the flock in rlog_open() keeps other processes
	 * out. */
	int tflags = TDB_NOLOCK | TDB_DISALLOW_NESTING | TDB_INCOMPATIBLE_HASH;

	if (flags & RLOG_O_NOSYNC)
		tflags |= TDB_NOSYNC;
	uint64_t cut = 0;
	/* tdbw_open(): a commit cut short by a kill (a checkpoint) is rolled
	 * back and what it had added past the old end cut off, which
	 * tdb_check() (cairn-fsck) would call damage. */
	struct tdb_context *t =
		tdbw_open(path, HASH_SIZE, tflags, oflags, 0600, &lc, &cut);

	if (cut)
		log_info(LOG_RLOG,
			 "'%s': a checkpoint cut short by a crash was rolled "
			 "back (its changes are still in the journal); %llu "
			 "bytes it had added cut off",
			 path, (unsigned long long)cut);

	/* Removed records stay in their hash chain as dead ones, reused by
	 * the next record of that chain: without it every removal grows
	 * the free list, which each allocation walks, and replaying a log
	 * of 20,000 records slowed to ~170 ms a record (4,000 preads). */
	if (t)
		tdb_set_max_dead(t, RLOG_MAX_DEAD);
	return t;
}

/* The journal beside the log (common/tdbj.h): @path.jnl, malloc'd. */
static int
journal_path(const char *path, char **out)
{
	return asprintf(out, "%s.jnl", path) < 0 ? -ENOMEM : 0;
}

/* Build a complete empty log at @path: under @path.new, then link(2), which
 * (unlike rename) never replaces a file that appeared meanwhile. */
static int
create_log(const char *path, unsigned flags)
{
	struct tdb_context *t;
	struct hdr h = {.next_seq = 1, .created_ms = rlog_now_real_ms()};
	uint8_t buf[HDR_LEN];
	char *tmp;
	int rc = 0;

	if (asprintf(&tmp, "%s.new", path) < 0)
		return -ENOMEM;
	/* A leftover from a creation that died: it was never the log. */
	if (unlink(tmp) && errno != ENOENT) {
		rc = -errno;
		goto out;
	}
	t = tdb_open_log(tmp, O_RDWR | O_CREAT | O_EXCL, flags);
	if (!t) {
		rc = errno ? -errno : -EIO;
		goto out;
	}
	rlog_hdr_encode(&h, buf);
	rc = tdbw_txn_start(t);
	if (!rc)
		rc = tdbw_store(t, "H", 1, buf, sizeof(buf), TDB_INSERT);
	if (!rc)
		rc = tdbw_txn_commit(t);
	tdb_close(t);
	if (!rc && !(flags & RLOG_O_NOSYNC)) {
		int fd = open(tmp, O_RDONLY | O_CLOEXEC);

		if (fd < 0 || fsync(fd))
			rc = -errno;
		if (fd >= 0)
			close(fd);
	}
	/* A journal left by a log that was removed by hand belongs to no
	 * log now; the new one would refuse it (another database id). */
	if (!rc) {
		char *jpath;

		rc = journal_path(path, &jpath);
		if (!rc && unlink(jpath) && errno != ENOENT)
			rc = -errno;
		free(jpath);
	}
	if (!rc && link(tmp, path))
		rc = -errno;
	unlink(tmp);
	if (!rc && !(flags & RLOG_O_NOSYNC))
		rc = util_fsync_parent(path);
out:
	if (rc && rc != -EEXIST)
		log_err(LOG_RLOG, "cannot create replay log '%s': %s", path,
			strerror(-rc));
	free(tmp);
	return rc;
}

/* Read the header "H" straight from the tdb @t (no journal yet); unless
 * @ro, rewrite a header of an older version as the current one in one
 * synced tdb transaction. -EUCLEAN: no header (not a replay log) or a
 * damaged one; -EPROTONOSUPPORT: a newer version. */
static int
tdb_header_upgrade(struct tdb_context *t, bool ro)
{
	uint8_t *val, buf[HDR_LEN];
	size_t vlen;
	struct hdr h;
	int rc;

	rc = tdbw_fetch(t, "H", 1, &val, &vlen);
	if (rc)
		return rc == -ENOENT ? -EUCLEAN : rc;
	rc = rlog_hdr_decode(val, vlen, &h);
	free(val);
	if (rc || ro || h.version == RLOG_FORMAT_VERSION)
		return rc;
	rlog_hdr_encode(&h, buf);
	rc = tdbw_txn_start(t);
	if (!rc)
		rc = tdbw_store(t, "H", 1, buf, sizeof(buf), TDB_REPLACE);
	if (!rc)
		rc = tdbw_txn_commit(t);
	else
		tdbw_txn_cancel(t);
	if (!rc)
		log_info(LOG_RLOG,
			 "replay log upgraded from format version %u to %d",
			 h.version, RLOG_FORMAT_VERSION);
	return rc;
}

struct rlog *
rlog_open(const char *path, int *err)
{
	return rlog_open_flags(path, 0, err);
}

struct rlog *
rlog_open_flags(const char *path, unsigned flags, int *err)
{
	struct rlog *l = NULL;
	struct tdb_context *t;
	char *jpath = NULL;
	uint8_t *val;
	size_t vlen;
	int rc = 0, tries;
	bool ro = flags & RLOG_O_RDONLY;

	if (!path || (flags & ~(unsigned)(RLOG_O_RDONLY | RLOG_O_NOSYNC))) {
		rc = -EINVAL;
		goto fail;
	}
	l = calloc(1, sizeof(*l));
	if (!l || !(l->path = strdup(path))) {
		rc = -ENOMEM;
		goto fail;
	}
	l->flags = flags;
	l->lockfd = -1;
	pthread_mutex_init(&l->lock, NULL);
	pthread_mutex_init(&l->qlock, NULL);
	pthread_cond_init(&l->qcond, NULL);
	STAILQ_INIT(&l->queue);
	for (tries = 0; tries < 3 && l->lockfd < 0; tries++) {
		l->lockfd = open(path, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
		if (l->lockfd >= 0)
			break;
		rc = -errno;
		if (rc != -ENOENT || ro)
			goto fail;
		rc = create_log(path, flags);
		if (rc && rc != -EEXIST)
			goto fail;
		rc = 0;
	}
	if (l->lockfd < 0) {
		rc = -EIO;
		goto fail;
	}
	if (flock(l->lockfd, (ro ? LOCK_SH : LOCK_EX) | LOCK_NB)) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto fail;
	}
	/* Never O_CREAT here: tdb would re-initialise a damaged file. */
	errno = 0;
	t = tdb_open_log(path, ro ? O_RDONLY : O_RDWR, flags);
	if (!t) {
		rc = tdbw_open_errno(errno);
		goto fail;
	}
	/* A tdb without our header is not a replay log: refused before the
	 * journal is attached (which would write its key into the file). A
	 * version 1 log is upgraded in the tdb itself before the journal
	 * may take a record: from then on a cairnd that knows no journal
	 * refuses the file instead of ignoring rlog.tdb.jnl. */
	rc = tdb_header_upgrade(t, ro);
	if (rc) {
		tdb_close(t);
		goto fail;
	}
	rc = journal_path(path, &jpath);
	if (!rc) {
		unsigned jf = ro ? TDBJ_O_RDONLY : 0;

		if (flags & RLOG_O_NOSYNC)
			jf |= TDBJ_O_NOSYNC;
		l->j = tdbj_open(t, jpath, jf, RLOG_JNL_MAX, &rc);
		if (!l->j)
			log_err(LOG_RLOG, "cannot open the journal '%s': %s",
				jpath, strerror(-rc));
	}
	free(jpath);
	if (!l->j) {
		tdb_close(t);
		goto fail;
	}
	rc = tdbj_fetch(l->j, "H", 1, &val, &vlen);
	if (rc) {
		/* A tdb without our header is not a replay log. */
		if (rc == -ENOENT)
			rc = -EUCLEAN;
		goto fail;
	}
	rc = rlog_hdr_decode(val, vlen, &l->hdr);
	free(val);
	/* A header of version 1 in the journal (a log written by a cairnd
	 * that had the journal but not version 2): write it as current. */
	if (!rc && !ro && l->hdr.version != RLOG_FORMAT_VERSION) {
		uint8_t buf[HDR_LEN];

		rlog_hdr_encode(&l->hdr, buf);
		rc = tdbj_store(l->j, "H", 1, buf, sizeof(buf), TDB_REPLACE);
		l->hdr.version = RLOG_FORMAT_VERSION;
	}
	if (rc)
		goto fail;
	if (err)
		*err = 0;
	return l;
fail:
	if (rc == -EUCLEAN)
		log_err(LOG_RLOG,
			"cannot open replay log '%s': not a cairn replay log, "
			"or damaged (left as is): %s",
			path, strerror(EUCLEAN));
	else if (rc == -EPROTONOSUPPORT)
		log_err(LOG_RLOG,
			"cannot open replay log '%s': format version is not "
			"%d (left as is): %s",
			path, RLOG_FORMAT_VERSION, strerror(EPROTONOSUPPORT));
	else
		log_err(LOG_RLOG, "cannot open replay log '%s': %s",
			path ? path : "(null)", strerror(-rc));
	rlog_close(l);
	if (err)
		*err = rc;
	errno = -rc;
	return NULL;
}

void
rlog_close(struct rlog *l)
{
	if (!l)
		return;
	if (l->j) {
		int rc;

		pthread_mutex_lock(&l->lock);
		rlog_lazy_flush_locked(l);
		pthread_mutex_unlock(&l->lock);
		/* Checkpoints: the journal's records go into the tdb. If that
		 * fails they stay in the journal, read again at open. */
		rc = tdbj_close(l->j);
		if (rc)
			log_warn(LOG_RLOG,
				 "cannot checkpoint the journal of '%s': %s",
				 l->path, strerror(-rc));
	}
	free(l->lazy);
	if (l->lockfd >= 0)
		close(l->lockfd);
	pthread_cond_destroy(&l->qcond);
	pthread_mutex_destroy(&l->qlock);
	pthread_mutex_destroy(&l->lock);
	free(l->direct);
	free(l->path);
	free(l);
}

/* --- reading --- */

int
rlog_get(struct rlog *l, uint64_t seq, struct rlog_rec *rec)
{
	int rc;

	if (!l || !rec)
		return -EINVAL;
	memset(rec, 0, sizeof(*rec));
	if (!seq)
		return -ENOENT;
	pthread_mutex_lock(&l->lock);
	rlog_lazy_flush_locked(l);
	rc = rlog_rec_load(l, seq, rec);
	pthread_mutex_unlock(&l->lock);
	return rc;
}

/* First seq > @after in list @type whose aux state is in @states. The
 * 'A' node of @after, when it still exists, gives the next one at once;
 * otherwise the walk starts at the head. Called with the lock held. */
static int
list_next_locked(struct rlog *l, uint8_t type, uint64_t after, unsigned states,
		 uint64_t *out)
{
	struct lid id;
	struct lhead h;
	struct lnode n;
	uint64_t seq;
	size_t steps = 0;
	int rc;

	*out = 0;
	rlog_lid_make(&id, type, NULL);
	rc = rlog_lhead_get(l, &id, &h);
	if (rc)
		return rc;
	seq = h.first;
	if (after && after < h.last && h.first <= after) {
		rc = rlog_lnode_get(l, &id, after, &n);
		if (!rc)
			seq = n.next;
		else if (rc != -ENOENT)
			return rc;
	}
	for (; seq; seq = n.next) {
		if (++steps > h.count + 1)
			return -EUCLEAN;
		rc = rlog_lnode_get(l, &id, seq, &n);
		if (rc)
			return rc == -ENOENT ? -EUCLEAN : rc;
		if (seq > after && (states & RLOG_MASK(n.aux))) {
			*out = seq;
			return 0;
		}
	}
	return -ENOENT;
}

int
rlog_next(struct rlog *l, uint64_t after, unsigned states, struct rlog_rec *rec)
{
	uint8_t type = LT_ALL;
	uint64_t seq;
	int rc;

	if (!l || !rec)
		return -EINVAL;
	memset(rec, 0, sizeof(*rec));
	if (states == RLOG_MASK(RLOG_PENDING))
		type = LT_PEND;
	else if (states == RLOG_MASK(RLOG_CONFLICT))
		type = LT_CONF;
	pthread_mutex_lock(&l->lock);
	rlog_lazy_flush_locked(l);
	rc = list_next_locked(l, type, after, states, &seq);
	if (!rc) {
		rc = rlog_rec_load(l, seq, rec);
		if (rc == -EUCLEAN)
			rec->seq = seq; /* which one, to step over it */
	}
	pthread_mutex_unlock(&l->lock);
	return rc;
}

/* @kind < 0: any record naming @fid; else only @kind records with @fid
 * as their object. @count: count them all (0 if none) instead. */
static int
fid_find(struct rlog *l, const struct fid *fid, unsigned states, int kind,
	 uint64_t below, uint64_t *seqp, size_t *count)
{
	struct lid id;
	struct lhead h;
	struct lnode n;
	enum rlog_state st;
	uint64_t seq;
	size_t steps = 0;
	int rc;

	if (!l || !fid)
		return -EINVAL;
	if (seqp)
		*seqp = 0;
	if (count)
		*count = 0;
	rlog_lid_make(&id, LT_FID, fid);
	pthread_mutex_lock(&l->lock);
	rlog_lazy_flush_locked(l);
	rc = rlog_lhead_get(l, &id, &h);
	if (rc == 0)
		rc = h.count ? 0 : -ENOENT;
	for (seq = h.first; rc == 0; seq = n.next) {
		if (!seq || seq >= below) {
			rc = -ENOENT;
			break;
		}
		if (++steps > SCAN_MAX) {
			rc = -EUCLEAN; /* a list longer than the log */
			break;
		}
		rc = rlog_lnode_get(l, &id, seq, &n);
		if (rc == 0 && kind >= 0 &&
		    (n.kind != (uint8_t)kind || !(n.aux & ROLE_OBJ)))
			continue;
		if (rc == 0 && (states & RLOG_NOT_DIRECT) && l->ndirect) {
			size_t i = direct_at(l, seq);

			if (i < l->ndirect && l->direct[i] == seq)
				continue;
		}
		if (rc == 0)
			rc = rlog_rec_state(l, seq, &st);
		if (rc == 0 && (states & RLOG_MASK(st))) {
			if (count) {
				++*count;
				continue;
			}
			if (seqp)
				*seqp = seq;
			break;
		}
	}
	pthread_mutex_unlock(&l->lock);
	if (count && rc == -ENOENT)
		rc = 0;
	return rc;
}

int
rlog_fid_count(struct rlog *l, const struct fid *fid, unsigned states,
	       int kind, uint64_t below, size_t *n)
{
	return fid_find(l, fid, states, kind < 0 ? -1 : kind, below, NULL, n);
}

int
rlog_fid_find(struct rlog *l, const struct fid *fid, unsigned states,
	      uint64_t below, uint64_t *seqp)
{
	return fid_find(l, fid, states, -1, below, seqp, NULL);
}

int
rlog_fid_find_kind(struct rlog *l, const struct fid *fid, unsigned states,
		   enum proto_op_kind kind, uint64_t below, uint64_t *seqp)
{
	return fid_find(l, fid, states, (int)kind, below, seqp, NULL);
}

int
rlog_first(struct rlog *l, struct rlog_rec *rec)
{
	return rlog_next(l, 0, RLOG_MASK(RLOG_PENDING), rec);
}

int
rlog_walk(struct rlog *l, unsigned states, rlog_iter_fn fn, void *arg)
{
	struct rlog_rec rec;
	uint64_t cur = 0;
	int rc;

	if (!l || !fn)
		return -EINVAL;
	for (;;) {
		rc = rlog_next(l, cur, states, &rec);
		if (rc == -ENOENT)
			return 0;
		if (rc)
			return rc;
		cur = rec.seq;
		rc = fn(&rec, arg);
		rlog_rec_release(&rec);
		if (rc)
			return rc;
	}
}

int
rlog_iterate(struct rlog *l, rlog_iter_fn fn, void *arg)
{
	return rlog_walk(l, RLOG_MASK_ALL, fn, arg);
}

int
rlog_conflicts(struct rlog *l, rlog_iter_fn fn, void *arg)
{
	return rlog_walk(l, RLOG_MASK(RLOG_CONFLICT), fn, arg);
}

/* --- changing records --- */

/* Move loaded record @r to @state (with @c when CONFLICT), in the open
 * transaction. */
static int
rec_move(struct rlog *l, struct rlog_rec *r, enum rlog_state state,
	 const struct rlog_conflict *c)
{
	struct rlog_rec nw = *r;
	struct lid id;
	int rc;

	nw.state = state;
	if (c) {
		nw.has_conflict = true;
		nw.conflict = *c;
		if (!nw.conflict.time_ms)
			nw.conflict.time_ms = rlog_now_real_ms();
	}
	rc = rlog_rec_store(l, &nw, TDB_MODIFY);
	if (rc)
		return rc;
	/* The 'A' list keeps its order: only the node's state changes. */
	rlog_lid_make(&id, LT_ALL, NULL);
	rc = rlog_list_set(l, &id, r->seq, state, r->op.kind);
	if (!rc && r->state != RLOG_INFLIGHT) {
		rlog_lid_make(&id, r->state == RLOG_PENDING ? LT_PEND : LT_CONF,
			 NULL);
		rc = rlog_list_remove(l, &id, r->seq);
	}
	if (!rc && state != RLOG_INFLIGHT) {
		rlog_lid_make(&id, state == RLOG_PENDING ? LT_PEND : LT_CONF, NULL);
		rc = rlog_list_insert(l, &id, r->seq, state, r->op.kind);
	}
	if (rc)
		return rc;
	(*rlog_hdr_state_count(&l->tx, r->state))--;
	(*rlog_hdr_state_count(&l->tx, state))++;
	return 0;
}

int
rlog_set_state(struct rlog *l, uint64_t seq, enum rlog_state state)
{
	struct rlog_rec r;
	int rc;

	if (!l || (state != RLOG_PENDING && state != RLOG_INFLIGHT))
		return -EINVAL;
	pthread_mutex_lock(&l->lock);
	rc = txn_begin(l);
	if (rc)
		goto out;
	rc = rlog_rec_load(l, seq, &r);
	if (!rc && r.state == RLOG_CONFLICT)
		rc = -EBUSY;
	if (!rc && r.state != state)
		rc = rec_move(l, &r, state, NULL);
	rlog_rec_release(&r);
	if (!rc)
		rc = txn_commit(l);
	else
		txn_cancel(l);
	if (!rc && state == RLOG_PENDING)
		direct_del(l, seq);
out:
	pthread_mutex_unlock(&l->lock);
	return rc;
}

int
rlog_set_inflight_run(struct rlog *l, uint64_t seq, size_t max, size_t *moved)
{
	struct rlog_rec r;
	struct lnode n;
	struct lid pid;
	size_t done = 0;
	int rc = 0;

	if (moved)
		*moved = 0;
	if (!l || !seq || !max)
		return -EINVAL;
	rlog_lid_make(&pid, LT_PEND, NULL);
	pthread_mutex_lock(&l->lock);
	rc = txn_begin(l);
	if (rc)
		goto out;
	while (seq && done < max) {
		rc = rlog_rec_load(l, seq, &r);
		if (rc)
			break;
		if (r.state != RLOG_PENDING) {
			if (r.state == RLOG_CONFLICT && !done)
				rc = -EBUSY;
			rlog_rec_release(&r);
			break;
		}
		/* the next PENDING one, read before this one leaves the list */
		rc = rlog_lnode_get(l, &pid, seq, &n);
		if (!rc)
			rc = rec_move(l, &r, RLOG_INFLIGHT, NULL);
		rlog_rec_release(&r);
		if (rc) {
			rc = rc == -ENOENT ? -EUCLEAN : rc;
			break;
		}
		done++;
		seq = n.next;
	}
	if (!rc)
		rc = txn_commit(l);
	else
		txn_cancel(l);
	if (!rc && moved)
		*moved = done;
out:
	pthread_mutex_unlock(&l->lock);
	return rc;
}

static int
remove_locked(struct rlog *l, const uint64_t *seqs, size_t n, bool conflict)
{
	struct rlog_rec r;
	size_t i;
	int rc, removed = 0;

	rc = txn_begin(l);
	if (rc)
		return rc;
	for (i = 0; !rc && i < n; i++) {
		rc = rlog_rec_load(l, seqs[i], &r);
		if (rc == -ENOENT && !conflict && n > 1) {
			rc = 0;
			continue;
		}
		if (!rc && (r.state == RLOG_CONFLICT) != conflict)
			rc = conflict ? -EINVAL : -EBUSY;
		if (!rc)
			rc = rlog_rec_del(l, &r);
		if (!rc)
			removed++;
		rlog_rec_release(&r);
	}
	if (!rc)
		rc = txn_commit(l);
	else
		txn_cancel(l);
	if (!rc)
		for (i = 0; i < n; i++)
			direct_del(l, seqs[i]);
	return rc ? rc : removed;
}

int
rlog_remove(struct rlog *l, uint64_t seq)
{
	return rlog_remove_flags(l, seq, 0);
}

int
rlog_remove_flags(struct rlog *l, uint64_t seq, unsigned flags)
{
	int rc;

	if (!l || (flags & ~(unsigned)(RLOG_A_NOSYNC | RLOG_A_LAZY)))
		return -EINVAL;
	if ((flags & RLOG_A_LAZY) && (l->flags & RLOG_O_RDONLY))
		return -EROFS;
	pthread_mutex_lock(&l->lock);
	if (flags & RLOG_A_LAZY) {
		rc = lazy_add_locked(l, &seq, 1);
		pthread_mutex_unlock(&l->lock);
		return rc;
	}
	l->tx_nosync = !!(flags & RLOG_A_NOSYNC);
	rc = remove_locked(l, &seq, 1, false);
	l->tx_nosync = false;
	pthread_mutex_unlock(&l->lock);
	return rc < 0 ? rc : 0;
}

int
rlog_remove_batch(struct rlog *l, const uint64_t *seqs, size_t n)
{
	return rlog_remove_batch_flags(l, seqs, n, 0);
}

int
rlog_remove_batch_flags(struct rlog *l, const uint64_t *seqs, size_t n,
			unsigned flags)
{
	int rc;

	if (!l || (n && !seqs) || n > INT32_MAX ||
	    (flags & ~(unsigned)(RLOG_A_NOSYNC | RLOG_A_LAZY)))
		return -EINVAL;
	if (!n)
		return 0;
	if ((flags & RLOG_A_LAZY) && (l->flags & RLOG_O_RDONLY))
		return -EROFS;
	pthread_mutex_lock(&l->lock);
	if (flags & RLOG_A_LAZY) {
		rc = lazy_add_locked(l, seqs, n);
		pthread_mutex_unlock(&l->lock);
		return rc;
	}
	l->tx_nosync = !!(flags & RLOG_A_NOSYNC);
	rc = remove_locked(l, seqs, n, false);
	l->tx_nosync = false;
	pthread_mutex_unlock(&l->lock);
	return rc;
}

int
rlog_conflict_add(struct rlog *l, uint64_t seq, const struct rlog_conflict *c)
{
	struct rlog_rec r;
	int rc;

	if (!l || !c || c->kind <= RLOG_CF_NONE || c->kind >= RLOG_CF_MAX ||
	    c->err < 0 || (c->local.path && strlen(c->local.path) > STR_MAX) ||
	    (c->msg && strlen(c->msg) > STR_MAX))
		return -EINVAL;
	pthread_mutex_lock(&l->lock);
	rc = txn_begin(l);
	if (rc)
		goto out;
	rc = rlog_rec_load(l, seq, &r);
	if (!rc && r.state == RLOG_CONFLICT)
		rc = -EEXIST;
	if (!rc)
		rc = rec_move(l, &r, RLOG_CONFLICT, c);
	rlog_rec_release(&r);
	if (!rc)
		rc = txn_commit(l);
	else
		txn_cancel(l);
	if (!rc)
		direct_del(l, seq);
out:
	pthread_mutex_unlock(&l->lock);
	return rc;
}

int
rlog_conflict_resolve(struct rlog *l, uint64_t seq)
{
	int rc;

	if (!l)
		return -EINVAL;
	pthread_mutex_lock(&l->lock);
	rc = remove_locked(l, &seq, 1, true);
	pthread_mutex_unlock(&l->lock);
	return rc < 0 ? rc : 0;
}

/* --- statistics --- */

int
rlog_stats(struct rlog *l, struct rlog_stats *st)
{
	struct rlog_rec r;
	struct tdbj_stats js;
	struct stat sb;
	uint64_t seq;
	int rc;

	if (!l || !st)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&l->lock);
	rlog_lazy_flush_locked(l);
	st->records = l->hdr.nrec;
	st->pending = l->hdr.npend;
	st->inflight = l->hdr.ninfl;
	st->conflicts = l->hdr.nconf;
	st->data_bytes = l->hdr.data_bytes;
	st->next_seq = l->hdr.next_seq;
	st->appends = l->nappends;
	st->commits = l->ncommits;
	st->cancelled = l->ncancelled;
	tdbj_stats(l->j, &js);
	st->syncs = js.syncs;
	if (!fstat(tdb_fd(tdbj_tdb(l->j)), &sb))
		st->file_bytes = (uint64_t)sb.st_size + js.bytes;
	/* The age of the log is that of its head in seq order (a merged
	 * record keeps its oldest change's time, so a younger head can hide
	 * an older merged record behind it; reintegration ages by the head,
	 * which is what it must send first anyway). */
	rc = list_next_locked(l, LT_ALL, 0, RLOG_MASK_ALL, &seq);
	if (!rc)
		rc = rlog_rec_load(l, seq, &r);
	if (!rc) {
		st->oldest_ms = r.time_ms;
		rlog_rec_release(&r);
	}
	pthread_mutex_unlock(&l->lock);
	return rc == -ENOENT ? 0 : rc;
}

const char *
rlog_state_name(enum rlog_state s)
{
	switch (s) {
	case RLOG_PENDING:
		return "pending";
	case RLOG_INFLIGHT:
		return "inflight";
	case RLOG_CONFLICT:
		return "conflict";
	}
	return "unknown";
}

const char *
rlog_conflict_name(enum rlog_conflict_kind k)
{
	static const char *const names[RLOG_CF_MAX] = {
		[RLOG_CF_NONE] = "none",
		[RLOG_CF_STALE_DV] = "stale-dv",
		[RLOG_CF_NAME_EXISTS] = "name-exists",
		[RLOG_CF_NAME_CHANGED] = "name-changed",
		[RLOG_CF_PARENT_GONE] = "parent-gone",
		[RLOG_CF_OBJECT_GONE] = "object-gone",
		[RLOG_CF_NOT_EMPTY] = "not-empty",
		[RLOG_CF_NO_SPACE] = "no-space",
		[RLOG_CF_REFUSED] = "refused",
	};

	return k >= 0 && k < RLOG_CF_MAX ? names[k] : "unknown";
}
