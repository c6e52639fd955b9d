/*
 * fuse_mut.c - the mutating FUSE handlers of cairnd. fuse_ops.c holds the
 * operation table and the read side; fuse_i.h is what the two share
 * (to_stat, the per-open-file struct, the request counters).
 *
 * Metadata changes (create, mkdir, unlink, rename, setattr, xattrs ...)
 * become one struct proto_op each, sent through mut.c (replay log, then
 * the server); the request is answered from the server's reply. Data goes
 * through wb.c: written into dirty chunks at once, stored at flush/fsync.
 * A handler that needs a directory listing it does not hold parks the
 * request (as reads do) and runs again on the loop once it is there.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h> /* RENAME_NOREPLACE, RENAME_EXCHANGE */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "chunkstore/cs.h"
#include "cm/access.h"
#include "cm/conn.h"
#include "cm/fetch.h"
#include "cm/fuse_i.h"
#include "cm/inode.h"
#include "cm/mcache.h"
#include "cm/mfetch.h"
#include "cm/mut.h"
#include "cm/replay.h"
#include "cm/pin.h"
#include "cm/vc.h"
#include "cm/wb.h"
#include "common/log.h"
#include "common/util.h"

/* --- a rewrite waits for the log (doc/cm.md "A rewrite waits for the
 * log") --- */

/* One waiter: the FUSE thread and replay_sync()'s callback each hold a
 * reference; the last one frees it (the thread may give up first). */
struct drainw {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	unsigned refs;
	bool done;
};

static void
drainw_put(struct drainw *w)
{
	bool last;

	pthread_mutex_lock(&w->mu);
	last = --w->refs == 0;
	pthread_mutex_unlock(&w->mu);
	if (last) {
		pthread_cond_destroy(&w->cond);
		pthread_mutex_destroy(&w->mu);
		free(w);
	}
}

static void
drainw_synced(void *arg, int err, uint64_t records)
{
	struct drainw *w = arg;

	(void)err; /* a refusal: the copy is made; the write finds out */
	(void)records;
	pthread_mutex_lock(&w->mu);
	w->done = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->mu);
	drainw_put(w);
}

void
fmut_drain_first(struct cm *cm, const struct fid *fid, uint64_t off)
{
	uint64_t bound = 2 * cm->cfg.fetch_timeout_ms + 5000;
	uint64_t t0, ms;
	pthread_condattr_t ca;
	struct drainw *w;
	char fs[FID_STRLEN];
	bool done;

	if (!cm->replay || !cm->conn || conn_mode(cm->conn) == CM_DISCONNECTED ||
	    off >= wb_logged_size(cm->wb, fid))
		return;
	w = calloc(1, sizeof(*w));
	if (!w)
		return;
	pthread_mutex_init(&w->mu, NULL);
	/* steps of the monotonic clock: a clock set back lengthens none */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cond, &ca);
	pthread_condattr_destroy(&ca);
	w->refs = 2;
	if (replay_sync(cm->replay, fid, drainw_synced, w) < 0) {
		w->refs = 1;
		drainw_put(w);
		return;
	}
	CM_STAT_INC(&cm->st, rewrite_waits);
	t0 = util_now_ms();
	fid_fmt(fid, fs);
	log_debug(LOG_FUSE, "a write at %llu of %s waits for its logged store",
		  (unsigned long long)off, fs);
	/* In steps, so that a lost server (the records stay: disconnected
	 * operation) ends the wait: a write must not hang offline. */
	pthread_mutex_lock(&w->mu);
	while (!w->done && util_now_ms() - t0 < bound &&
	       conn_mode(cm->conn) != CM_DISCONNECTED && !cm_stopping(&cm->loop)) {
		struct timespec until;

		util_deadline(&until, CLOCK_MONOTONIC, 100);
		(void)pthread_cond_timedwait(&w->cond, &w->mu, &until);
	}
	done = w->done;
	pthread_mutex_unlock(&w->mu);
	drainw_put(w);
	ms = util_now_ms() - t0;
	if (!done)
		log_warn(LOG_FUSE,
			 "a write of %s went on after %llu ms without the "
			 "server's answer to its logged store (%s)",
			 fs, (unsigned long long)ms,
			 conn_mode(cm->conn) == CM_DISCONNECTED ? "disconnected"
			 : cm_stopping(&cm->loop)		 ? "stopping"
								 : "timed out");
	else if (ms >= 1000)
		log_info(LOG_FUSE,
			 "a write of %s waited %llu ms for its logged store",
			 fs, (unsigned long long)ms);
}

/* --- reads, writes and truncates of files with a write state --- */

#define WIO_TRIES 6

struct wio {
	struct cm_job job;
	struct cm *cm;
	fuse_req_t req;
	enum wio_kind kind;
	struct fid fid;
	uint64_t off; /* W_TRUNC: the new size */
	size_t len;
	uint8_t *buf; /* W_WRITE: a copy of the data */
	uint64_t need;
	unsigned tries;
	fuse_ino_t ino; /* W_TRUNC: for the attribute reply */
	/* W_WRITE, W_TRUNC: the set-ID bits a flagged request clears
	 * (how 0: none), in the write state before the data (wb_kill()) */
	struct wb_kill kill;
	bool reply0; /* W_TRUNC of a fallocate: answered 0, not attributes */
	/* W_READ: the open file (fops_read_hold()), and whether a short
	 * answer may wait for a truncation of @ino */
	struct cm_file *file;
	bool may_hold;
	bool trunc_mark; /* W_TRUNC: fops_trunc_end(@ino) owed when answered */
	/* W_WRITE, W_TRUNC on a FUSE thread, connected: a change to what
	 * a logged store still sends waits for the log (WB_IO_LOGGED) */
	bool drain;
};

/* @w was answered: the truncation it marked is over. */
static void
wio_done(struct wio *w)
{
	if (w->trunc_mark) {
		w->trunc_mark = false;
		fops_trunc_end(w->ino);
	}
}

static void
wio_free(struct wio *w)
{
	wio_done(w);
	free(w->buf);
	free(w);
}

/* A truncate's attribute reply whose attributes were not cached (another
 * client's change dropped them meanwhile): fetched first, on the loop.
 * The truncate is done; EIO would tell the caller otherwise. */
struct attr_wait {
	struct cm_job job;
	struct cm *cm;
	fuse_req_t req;
	fuse_ino_t ino;
	struct fid fid;
	bool trunc_mark; /* taken over from the wio: ended at the reply */
	unsigned tries;
};

static bool
reply_attr_now(struct cm *cm, fuse_req_t req, fuse_ino_t ino,
	       const struct fid *fid)
{
	struct proto_attr a;
	struct stat st;

	if (mcache_attr(cm->mc, fid, &a) < 0)
		return false;
	fops_to_stat(cm, &a, ino, &st);
	fuse_reply_attr(req, &st, cm->cfg.attr_timeout);
	return true;
}

static void
attr_wait_fetched(void *arg, int err)
{
	struct attr_wait *aw = arg;

	/* A fetch an event overtook completes without storing what it
	 * brought (mfetch.c): ask again, a few times, from a job of its
	 * own (not from inside mfetch's completion). */
	if (!err && !reply_attr_now(aw->cm, aw->req, aw->ino, &aw->fid)) {
		if (++aw->tries < 4) {
			cm_post(&aw->cm->loop, &aw->job);
			return;
		}
		err = -EIO;
	}
	if (err)
		fuse_reply_err(aw->req, EIO);
	if (aw->trunc_mark)
		fops_trunc_end(aw->ino);
	free(aw);
}

static void
attr_wait_job(struct cm_loop *loop, struct cm_job *job)
{
	struct attr_wait *aw = (struct attr_wait *)job;

	(void)loop;
	if (cm_stopping(&aw->cm->loop)) {
		attr_wait_fetched(aw, -ESHUTDOWN);
		return;
	}
	mfetch_want_attr(aw->cm->mf, &aw->fid, attr_wait_fetched, aw);
}

/* Answer @req with the attributes of @fid (inode @ino), fetched first if
 * they are not cached; @trunc_mark: fops_trunc_end(@ino) once answered
 * (else the caller's). @return true if the end is the reply's. */
static bool
reply_attr_of(struct cm *cm, fuse_req_t req, fuse_ino_t ino,
	      const struct fid *fid, bool trunc_mark)
{
	struct attr_wait *aw;

	if (reply_attr_now(cm, req, ino, fid))
		return false;
	aw = calloc(1, sizeof(*aw));
	if (!aw) {
		fuse_reply_err(req, EIO);
		return false;
	}
	aw->cm = cm;
	aw->req = req;
	aw->ino = ino;
	aw->fid = *fid;
	aw->trunc_mark = trunc_mark;
	aw->job.run = attr_wait_job;
	cm_post(&cm->loop, &aw->job);
	return trunc_mark;
}

static void kill_mop_start(struct cm *cm, struct wio *w);

/* The kernel should see the mode a kill left (@w's inode). */
static void
wio_killed(struct cm *cm, const struct wio *w)
{
	if (w->kill.how && w->ino && cm->loop.kops.inval_inode &&
	    w->kill.mode != WB_MODE_UNKNOWN &&
	    wb_killed_mode(w->kill.mode, w->kill.how) != w->kill.mode)
		cm->loop.kops.inval_inode(cm->loop.kops.arg, w->ino, -1, 0);
}

/* Try once; 0 = answered, -EAGAIN = w->need must be fetched, -EPERM =
 * the set-ID bits must be cleared by a setattr of their own first
 * (kill_mop_start()). */
static int
wio_try(struct cm *cm, struct wio *w, uint8_t *rbuf)
{
	ssize_t n;
	int rc;

	switch (w->kind) {
	case W_READ:
		n = wb_read(cm->wb, &w->fid, w->off, rbuf, w->len, &w->need);
		if (n == -EAGAIN)
			return -EAGAIN;
		if (n == -ENOENT) {
			/* The write state went away (stored and closed):
			 * read the normal way. */
			rc = fetch_read_park(cm->fetch, &w->fid, w->off, w->len,
					     w->req, fops_read_reply);
			if (rc < 0)
				fuse_reply_err(w->req, -rc);
			return 0;
		}
		if (n < 0)
			fuse_reply_err(w->req, (int)-n);
		else if ((size_t)n < w->len && w->may_hold &&
			 fops_trunc_hold(w->ino))
			fops_read_hold(cm, w->req, w->ino, w->file, w->off,
				       w->len);
		else
			fuse_reply_buf(w->req, (const char *)rbuf, (size_t)n);
		return 0;
	case W_WRITE:
		n = wb_write_ex(cm->wb, &w->fid, w->off, w->buf, w->len,
				&w->need, w->kill.how ? &w->kill : NULL,
				w->drain ? WB_IO_LOGGED : 0);
		if (n == -EAGAIN || n == -EPERM || n == -EINPROGRESS)
			return (int)n;
		if (w->kill.how)
			wio_killed(cm, w);
		if (n < 0 || w->reply0)
			fuse_reply_err(w->req, n < 0 ? (int)-n : 0);
		else
			fuse_reply_write(w->req, (size_t)n);
		return 0;
	case W_TRUNC:
		rc = wb_truncate_ex(cm->wb, &w->fid, w->off, &w->need,
				    w->kill.how ? &w->kill : NULL,
				    w->drain ? WB_IO_LOGGED : 0);
		if (rc == -EAGAIN || rc == -EPERM || rc == -EINPROGRESS)
			return rc;
		if (w->kill.how)
			wio_killed(cm, w);
		if (rc < 0 || w->reply0)
			fuse_reply_err(w->req, rc < 0 ? -rc : 0);
		else if (reply_attr_of(cm, w->req, w->ino, &w->fid,
				       w->trunc_mark))
			w->trunc_mark = false;
		return 0;
	}
	fuse_reply_err(w->req, EIO);
	return 0;
}

static void wio_job(struct cm_loop *loop, struct cm_job *job);

static void
wio_fetched(void *arg, int err)
{
	struct wio *w = arg;
	struct cm *cm = w->cm;

	if (err) {
		fuse_reply_err(w->req, err == -EBADF ? EBADF : EIO);
		wio_free(w);
		return;
	}
	wio_job(&cm->loop, &w->job);
}

/* Loop thread: try again; fetch what is missing. */
static void
wio_job(struct cm_loop *loop, struct cm_job *job)
{
	struct cm *cm = cm_of_loop(loop);
	struct wio *w = (struct wio *)job;
	uint8_t *rbuf = NULL;

	if (cm_stopping(&cm->loop)) {
		fuse_reply_err(w->req, EIO);
		wio_free(w);
		return;
	}
	if (w->kind == W_READ && !(rbuf = malloc(w->len ? w->len : 1))) {
		fuse_reply_err(w->req, ENOMEM);
		wio_free(w);
		return;
	}
	if (w->tries) {
		int rc = wio_try(cm, w, rbuf);

		free(rbuf);
		rbuf = NULL;
		if (rc == 0) {
			wio_free(w);
			return;
		}
		if (rc == -EPERM) {
			kill_mop_start(cm, w);
			return;
		}
	}
	free(rbuf);
	if (w->tries++ >= WIO_TRIES) {
		log_warn(LOG_FUSE, "a chunk needed by a write kept "
				   "disappearing; giving up");
		fuse_reply_err(w->req, EIO);
		wio_free(w);
		return;
	}
	wb_fetch(cm->wb, &w->fid, w->need, wio_fetched, w);
}

int
fmut_logged_try(struct cm *cm, const struct fid *fid, uint64_t off,
		bool may_wait, int (*try)(void *arg, unsigned flags), void *arg)
{
	unsigned flags = may_wait && cm->conn &&
					 conn_mode(cm->conn) != CM_DISCONNECTED
				 ? WB_IO_LOGGED
				 : 0;
	int rc = try(arg, flags);

	for (int i = 0; rc == -EINPROGRESS && i < 3; i++) {
		fmut_drain_first(cm, fid, off);
		rc = try(arg, flags);
	}
	/* Logged again and again meanwhile (another writer of the file
	 * closing or fsyncing): as before the wait. */
	if (rc == -EINPROGRESS)
		rc = try(arg, 0);
	return rc;
}

struct wio_try_arg {
	struct cm *cm;
	struct wio *w;
	uint8_t *rbuf;
};

static int
wio_try_flags(void *arg, unsigned flags)
{
	struct wio_try_arg *ta = arg;

	ta->w->drain = (flags & WB_IO_LOGGED) != 0;
	return wio_try(ta->cm, ta->w, ta->rbuf);
}

/* Try @w (on the stack, its buffer the caller's) once; park a copy of it
 * if it must wait for a fetch or for a kill's setattr. */
static void
wio_run(struct cm *cm, const struct wio *w, uint8_t *rbuf)
{
	struct wio *h;
	struct wio_try_arg ta = {cm, (struct wio *)w, rbuf};
	int rc;

	/* A FUSE thread may wait for the log; a parked copy, tried again
	 * on the loop, may not (it never asks: h->drain below). */
	rc = fmut_logged_try(cm, &w->fid, w->off, w->kind != W_READ,
			     wio_try_flags, &ta);

	if (rc == 0) {
		wio_done((struct wio *)w);
		return;
	}
	h = malloc(sizeof(*h));
	if (!h) {
		fuse_reply_err(w->req, ENOMEM);
		wio_done((struct wio *)w);
		return;
	}
	*h = *w;
	h->buf = NULL;
	h->drain = false;
	if (w->kind == W_WRITE) {
		h->buf = malloc(w->len ? w->len : 1);
		if (!h->buf) {
			free(h);
			fuse_reply_err(w->req, ENOMEM);
			wio_done((struct wio *)w);
			return;
		}
		memcpy(h->buf, w->buf, w->len);
	}
	/* tries = 1: the first entry on the loop fetches w.need, then
	 * tries again. */
	h->tries = 1;
	h->job.run = wio_job;
	CM_STAT_INC(&cm->st, parked);
	if (rc == -EPERM)
		kill_mop_start(cm, h);
	else
		cm_post(&cm->loop, &h->job);
}

static void
wio_start(struct cm *cm, fuse_req_t req, enum wio_kind kind,
	  const struct fid *fid, uint64_t off, const void *buf, size_t len,
	  fuse_ino_t ino, const struct wb_kill *kill)
{
	struct wio w = {.cm = cm, .req = req, .kind = kind, .fid = *fid,
			.off = off, .len = len, .buf = (uint8_t *)buf,
			.ino = ino};
	uint8_t *rbuf = NULL;

	if (kill)
		w.kill = *kill;
	if (kind == W_READ && !(rbuf = (uint8_t *)fops_tbuf_get(len ? len : 1))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	wio_run(cm, &w, rbuf);
}

void
fmut_wio_start(struct cm *cm, fuse_req_t req, enum wio_kind kind,
	       const struct fid *fid, uint64_t off, const void *buf, size_t len)
{
	wio_start(cm, req, kind, fid, off, buf, len, 0, NULL);
}

void
fmut_wio_read(struct cm *cm, fuse_req_t req, fuse_ino_t ino,
	      struct cm_file *f, uint64_t off, size_t len, bool may_hold)
{
	struct wio w = {.cm = cm, .req = req, .kind = W_READ, .fid = f->fid,
			.off = off, .len = len, .ino = ino,
			.file = f, .may_hold = may_hold};
	uint8_t *rbuf = (uint8_t *)fops_tbuf_get(len ? len : 1);

	if (!rbuf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	wio_run(cm, &w, rbuf);
}

void
fmut_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
	 off_t off, struct fuse_file_info *fi)
{
	struct cm *cm = fops_req_cm(req);
	struct cm_file *f = (struct cm_file *)(uintptr_t)fi->fh;
	struct wb_kill kill = {0};

	fops_count(cm, CM_R_OTHER);
	if (!f || !f->writer || off < 0) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if ((uint64_t)off + size > (uint64_t)INT64_MAX) {
		fuse_reply_err(req, EFBIG);
		return;
	}
	if (fops_kill_suidgid(FOPS_KILL_WRITE))
		fops_kill_of(cm, req, &f->fid, &kill);
	wio_start(cm, req, W_WRITE, &f->fid, (uint64_t)off, buf, size, ino,
		  &kill);
}

/* --- metadata operations --- */

enum mop_kind {
	M_CREATE,
	M_MKNOD,
	M_MKDIR,
	M_SYMLINK,
	M_LINK,
	M_UNLINK,
	M_RMDIR,
	M_RENAME,
	M_SETATTR,
	M_SETXATTR,
	M_REMOVEXATTR,
	M_FALLOCATE,
};

#define MOP_TRIES 4

struct mop {
	struct cm_job job;
	struct cm *cm;
	fuse_req_t req;
	enum mop_kind kind;
	fuse_ino_t ino, parent, newparent;
	char *name, *newname, *target, *xname;
	void *xvalue;
	size_t xlen;
	uint32_t mode, uid, gid;
	uint32_t rdev; /* mknod of a device */
	unsigned flags;
	struct stat st;
	int to_set;
	struct fuse_file_info fi;
	unsigned tries;
	bool flushed;	    /* setattr: local data stored first */
	int orphan_state;   /* unlink/rename over a file open here: */
	struct fid orphan;  /* 1 = held, fetching; 2 = ready */
	bool held;	    /* a wb hold on @orphan is ours to give */
	bool retried_stale; /* setattr: resent once after a 412 */
	bool late;	    /* create: answered before the server has it */
	int kill;	    /* setattr: clear set-ID bits of the mode it finds
			       (wb_killed_mode()'s how), else 0 */
	bool kill_only;	    /* setattr: the mode of a kill alone, sent
			       before the data it goes with (not after a
			       flush of it) */
	struct wio *then;   /* kill_only: the write or truncate to run
			       once it is done (ours until then) */
	bool reply_open;    /* kill_only of an O_TRUNC open: answer the
			       open with @fi */
	bool open_trunc;    /* ... after truncating it */
	uint64_t trunc_ino; /* a truncation of this inode is marked until
			       the mop ends (fops_trunc_begin()), or 0 */
	struct fid need_dir;
	struct fid fid;	    /* the object (for replies) */
	uint64_t t0_seq;    /* mfetch_send_seq() when started (name_fid()) */
};

static void orphan_settle(struct cm *cm, struct mop *m, bool orphaned);

/* Undo the open behind @fi, which will get no release (its answer was an
 * error, or the answer failed). */
static void
open_undo(struct cm *cm, const struct fuse_file_info *fi)
{
	struct cm_file *f = (struct cm_file *)(uintptr_t)fi->fh;

	wb_release_write(cm->wb, &f->fid);
	fops_file_release(cm, f);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

static void
mop_free(struct mop *m)
{
	if (m->held && m->cm) /* never sent */
		orphan_settle(m->cm, m, false);
	if (m->reply_open && m->cm) /* the open was answered an error */
		open_undo(m->cm, &m->fi);
	if (m->then) /* the write was answered an error */
		wio_free(m->then);
	if (m->trunc_ino)
		fops_trunc_end(m->trunc_ino);
	free(m->name);
	free(m->newname);
	free(m->target);
	free(m->xname);
	free(m->xvalue);
	free(m);
}

static int mop_try(struct cm *cm, struct mop *m);

/* Once the setattr of a kill is done (or found nothing to clear): run the
 * write or truncate it went before, or truncate and answer the open. */
static void
kill_continue(struct cm *cm, struct mop *m)
{
	/* The kernel keeps the old mode until it asks again. */
	if (m->ino && cm->loop.kops.inval_inode)
		cm->loop.kops.inval_inode(cm->loop.kops.arg, m->ino, -1, 0);
	if (m->then) {
		struct wio *w = m->then;

		m->then = NULL;
		/* The server has the mode now; the write must not ask
		 * again (a logged state keeps showing its own). */
		w->kill.how = 0;
		cm_post(&cm->loop, &w->job); /* wio_job() */
		return;
	}
	if (m->reply_open) {
		struct cm_file *f = (struct cm_file *)(uintptr_t)m->fi.fh;
		uint64_t need = 0;
		int rc = m->open_trunc ? wb_truncate(cm->wb, &f->fid, 0, &need,
						     NULL)
				       : 0;

		if (rc < 0) {
			fuse_reply_err(m->req, rc == -ESTALE ? EIO : -rc);
			return; /* mop_free() undoes the open */
		}
		m->reply_open = false;
		if (fuse_reply_open(m->req, &m->fi) != 0)
			open_undo(cm, &m->fi); /* interrupted */
	}
}

/* The FID @name names in directory @dir: 0, -ENOENT, or 1 (the listing
 * must be fetched: m->need_dir is set). A directory that changes faster
 * than its listing comes has no stored listing: once fetched (on the
 * loop, m->tries > 0), the listing events overtook serves, under the
 * rule of an OPENDIR's (fuse_ops.c late_dir()): asked for after this
 * op began, no local change of @dir ahead. The server checks the name
 * still names that FID (412 otherwise), so an rm there is one fetch,
 * not MOP_TRIES of them and EIO. */
static int
name_fid(struct cm *cm, struct mop *m, const struct fid *dir,
	 const char *name, struct fid *out, enum proto_type *type)
{
	struct vc_dir *d;
	long idx;
	int rc = mcache_dir(cm->mc, dir, &d);

	if (rc == -ENOTDIR)
		return fops_notdir_err(cm, dir);
	if (rc < 0 && m->tries > 0 && cm->mf && !mcache_ahead(cm->mc, dir) &&
	    mfetch_late_dir(cm->mf, dir, m->t0_seq, &d) == 0) {
		CM_STAT_INC(&cm->st, dir_late);
		CM_STAT_INC(&cm->st, dir_late_mut);
		rc = 0;
	}
	if (rc < 0) {
		m->need_dir = *dir;
		return 1;
	}
	idx = vc_dir_find(d, name, strlen(name));
	if (idx >= 0) {
		*out = vc_dir_ent(d, idx)->fid;
		if (type)
			*type = (enum proto_type)vc_dir_ent(d, idx)->type;
	}
	vc_dir_put(d);
	return idx >= 0 ? 0 : -ENOENT;
}

/*
 * Unlinking (or renaming over) the last name of a file open here: POSIX
 * says it keeps working until closed, and the server will not have it.
 * Take a write-state hold on it and fetch what is missing first (@return
 * 4), so reads, writes and fstat are served locally; mop_done hands the
 * hold to the inode (released at the last close). Best effort: a file
 * that cannot be fetched whole is unlinked anyway (a warning says so).
 */
static int
orphan_prepare(struct cm *cm, struct mop *m, const struct fid *fid)
{
	struct proto_attr a;
	struct ino_ent *e;
	bool open_here;

	if (m->orphan_state == 2)
		return 0;
	if (m->orphan_state == 1)
		return 4;
	ino_lock(cm->ino);
	e = ino_find_locked(cm->ino, fid);
	open_here = e && e->nopen > 0 && !e->orphan_hold;
	ino_unlock(cm->ino);
	if (!open_here || mcache_attr(cm->mc, fid, &a) < 0 ||
	    a.type != PROTO_T_FILE || a.nlink > 1 ||
	    wb_open_write(cm->wb, &a, NULL, NULL) < 0) {
		m->orphan_state = 2;
		return 0;
	}
	m->orphan = *fid;
	m->held = true;
	m->orphan_state = 1;
	return 4;
}

static void mop_job(struct cm_loop *loop, struct cm_job *job);

static void
mop_orphan_fetched(void *arg, int err)
{
	struct mop *m = arg;
	struct cm *cm = m->cm;

	if (err)
		log_warn(LOG_FUSE, "a file unlinked while open could not be "
				   "fetched whole (%s): reads of its missing "
				   "parts will fail", strerror(-err));
	m->orphan_state = 2;
	mop_job(&cm->loop, &m->job);
}

/* The server answered the unlink/rename that may have orphaned m->orphan:
 * hand the hold to the inode, or let it go. */
static void
orphan_settle(struct cm *cm, struct mop *m, bool orphaned)
{
	struct ino_ent *e;
	bool keep = false;

	if (!m->held)
		return;
	if (orphaned) {
		ino_lock(cm->ino);
		e = ino_find_locked(cm->ino, &m->orphan);
		if (e && e->nopen > 0 && !e->orphan_hold) {
			e->orphan_hold = true;
			keep = true;
		}
		ino_unlock(cm->ino);
	} else if (!pin_covers(cm->pin, &m->orphan)) {
		cs_pin_file(cm->cs, m->orphan.vol, m->orphan.oid, 0);
	}
	if (!keep)
		wb_release_write(cm->wb, &m->orphan);
	m->held = false;
}

static void
reply_entry(struct cm *cm, struct mop *m, const struct proto_attr *attr)
{
	struct fuse_entry_param e;
	struct proto_attr a = *attr;
	struct ino_ent *ent;
	struct cm_file *f = NULL;

	memset(&e, 0, sizeof(e));
	if (m->kind == M_CREATE) {
		f = calloc(1, sizeof(*f));
		if (!f || wb_open_write(cm->wb, &a, NULL, m->name) < 0) {
			free(f);
			fuse_reply_err(m->req, ENOMEM);
			return;
		}
		if (m->late)
			wb_created(cm->wb, &a.fid);
		pthread_mutex_init(&f->mu, NULL);
		f->fid = a.fid;
		f->writer = true;
	}
	ino_lock(cm->ino);
	ent = ino_add_locked(cm->ino, &a.fid);
	if (ent) {
		struct fid pfid;

		ent->nlookup++;
		if (m->kind != M_LINK && ino_get_locked(cm->ino, m->parent)) {
			pfid = ino_get_locked(cm->ino, m->parent)->fid;
			ino_set_name_locked(ent, &pfid, m->name);
		}
		ent->attr = a;
		ent->have_attr = true;
		ent->attr_server = false;
		e.ino = ent->ino;
		if (f) {
			f->dio = fops_dio_grant_locked(
				ent, (m->fi.flags & O_ACCMODE) == O_WRONLY,
				true);
			ent->nopen++;
			ent->opened = true;
			ent->open_dv = a.dv;
			f->e = ent;
		}
	}
	ino_unlock(cm->ino);
	if (!e.ino) {
		if (f) {
			wb_release_write(cm->wb, &a.fid);
			pthread_mutex_destroy(&f->mu);
			free(f);
		}
		fuse_reply_err(m->req, ENOMEM);
		return;
	}
	if (f) {
		struct fid pfid;

		if (ino_fid(cm->ino, m->parent, &pfid) == 0)
			wb_renamed(cm->wb, &a.fid, &pfid, m->name);
	}
	wb_overlay(cm->wb, &a);
	fops_to_stat(cm, &a, e.ino, &e.attr);
	e.attr_timeout = cm->cfg.attr_timeout;
	e.entry_timeout = cm->cfg.entry_timeout;
	if (f) {
		m->fi.fh = (uintptr_t)f;
		m->fi.keep_cache = 0;
		m->fi.direct_io = f->dio;
		if (fuse_reply_create(m->req, &e, &m->fi) != 0) {
			wb_release_write(cm->wb, &a.fid);
			fops_file_release(cm, f);
			ino_forget(cm->ino, e.ino, 1);
			pthread_mutex_destroy(&f->mu);
			free(f);
		}
		return;
	}
	if (fuse_reply_entry(m->req, &e) != 0)
		ino_forget(cm->ino, e.ino, 1);
}

static void
mop_attr_fetched(void *arg, int err)
{
	struct mop *m = arg;
	struct cm *cm = m->cm;

	if (err) {
		fuse_reply_err(m->req, EIO);
		mop_free(m);
		return;
	}
	mop_job(&cm->loop, &m->job);
}

/* Loop thread: the server answered. */
static void
mop_done(void *arg, int err, const struct proto_op_result *r)
{
	struct mop *m = arg;
	struct cm *cm = m->cm;

	if (m->kind == M_UNLINK || m->kind == M_RENAME)
		orphan_settle(cm, m,
			      !err && r->has_victim && r->victim.nlink == 0);
	if (err == -ESTALE && m->kind == M_SETATTR && !m->retried_stale &&
	    !cm_stopping(&cm->loop)) {
		/* Our DV was old (someone wrote the file): once more with
		 * fresh attributes. */
		m->retried_stale = true;
		mcache_drop_attr(cm->mc, &m->fid);
		mfetch_want_attr(cm->mf, &m->fid, mop_attr_fetched, m);
		return;
	}
	if (err) {
		if (err == -ESTALE) {
			/* A name we acted on named another object: our
			 * listing was old. Fetch it again. */
			struct fid pfid;

			if (ino_fid(cm->ino, m->parent, &pfid) == 0)
				mfetch_want_dir(cm->mf, &pfid, NULL, NULL);
			err = -EIO;
		}
		/* The server says ENOENT for a missing attribute
		 * (removexattr, setxattr with XATTR_REPLACE). */
		if ((m->kind == M_REMOVEXATTR || m->kind == M_SETXATTR) &&
		    err == -ENOENT)
			err = -ENODATA;
		/* A kill that failed fails its write, open or truncate. */
		if (m->kill_only)
			err = -EIO;
		fuse_reply_err(m->req, -err);
		mop_free(m);
		return;
	}
	switch (m->kind) {
	case M_CREATE:
	case M_MKNOD:
	case M_MKDIR:
	case M_SYMLINK:
	case M_LINK:
		if (!r->has_attr) {
			fuse_reply_err(m->req, EIO);
			break;
		}
		reply_entry(cm, m, &r->attr);
		break;
	case M_SETATTR:
	case M_FALLOCATE:
		if (m->kill_only) {
			kill_continue(cm, m);
		} else if (r->has_attr && m->kind == M_SETATTR) {
			struct proto_attr a = r->attr;
			struct stat st;

			wb_overlay(cm->wb, &a);
			fops_to_stat(cm, &a, m->ino, &st);
			fuse_reply_attr(m->req, &st, cm->cfg.attr_timeout);
		} else {
			fuse_reply_err(m->req, 0);
		}
		break;
	case M_RENAME:
		if (r->has_attr) {
			struct ino_ent *e;
			struct fid np;

			if (ino_fid(cm->ino, m->newparent, &np) == 0) {
				wb_renamed(cm->wb, &r->attr.fid, &np,
					   m->newname);
				ino_lock(cm->ino);
				e = ino_find_locked(cm->ino, &r->attr.fid);
				if (e)
					ino_set_name_locked(e, &np,
							    m->newname);
				ino_unlock(cm->ino);
			}
		}
		fuse_reply_err(m->req, 0);
		break;
	default:
		fuse_reply_err(m->req, 0);
		break;
	}
	mop_free(m);
}

static void
mop_flushed(void *arg, int err)
{
	struct mop *m = arg;
	struct cm *cm = m->cm;

	if (err) {
		fuse_reply_err(m->req, err == -ESTALE ? EIO : -err);
		mop_free(m);
		return;
	}
	m->flushed = true;
	mop_job(&cm->loop, &m->job);
}

/* Fill @op's setattr fields from m->st / m->to_set. */
static void
setattr_fields(struct mop *m, struct proto_op *op)
{
	if (m->to_set & FUSE_SET_ATTR_MODE) {
		op->mask |= PROTO_SA_MODE;
		op->mode = m->st.st_mode & 07777;
	}
	if (m->to_set & FUSE_SET_ATTR_UID) {
		op->mask |= PROTO_SA_UID;
		op->uid = m->st.st_uid;
	}
	if (m->to_set & FUSE_SET_ATTR_GID) {
		op->mask |= PROTO_SA_GID;
		op->gid = m->st.st_gid;
	}
	if (m->to_set & FUSE_SET_ATTR_SIZE) {
		op->mask |= PROTO_SA_SIZE;
		op->size = (uint64_t)m->st.st_size;
	}
	if (m->to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW)) {
		op->mask |= PROTO_SA_ATIME;
		op->atime_ns = (m->to_set & FUSE_SET_ATTR_ATIME_NOW)
				       ? util_wall_ns()
				       : (int64_t)m->st.st_atim.tv_sec *
						 1000000000 +
					 m->st.st_atim.tv_nsec;
	}
	if (m->to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) {
		op->mask |= PROTO_SA_MTIME;
		op->mtime_ns = (m->to_set & FUSE_SET_ATTR_MTIME_NOW)
				       ? util_wall_ns()
				       : (int64_t)m->st.st_mtim.tv_sec *
						 1000000000 +
					 m->st.st_mtim.tv_nsec;
	}
}

/*
 * A new regular file answered at once (sync mode, issue #14): the create
 * is logged and held (mut_hold_create()); it reaches the server with the
 * file's first store at close or fsync, in one batch with the data and the
 * attributes set meanwhile, or alone as soon as another op needs it. Only
 * when the directory's listing is cached and current (so the name is
 * known to be free, and the listing shows it at once). @return 0
 * (answered) or -EAGAIN (create it the usual way).
 */
static int
late_create(struct cm *cm, struct mop *m, const struct proto_op *op)
{
	struct proto_attr a;
	struct vc_dir *d;
	long idx;
	int rc;

	if (m->kind != M_CREATE || op->type != PROTO_T_FILE || cm_offline(cm) ||
	    mcache_dir(cm->mc, &op->parent, &d) < 0)
		return -EAGAIN;
	idx = vc_dir_find(d, op->name, strlen(op->name));
	vc_dir_put(d);
	if (idx >= 0)
		return -EAGAIN; /* the server says EEXIST */
	memset(&a, 0, sizeof(a));
	a.fid = op->fid;
	a.type = PROTO_T_FILE;
	a.mode = op->mode;
	a.uid = op->uid;
	a.gid = op->gid;
	a.nlink = 1;
	a.dv = 0; /* until the server answers: wb.h, created */
	a.atime_ns = a.mtime_ns = a.ctime_ns = util_wall_ns();
	rc = mut_hold_create(cm->mut, op, NULL, NULL);
	if (rc == -EAGAIN)
		return rc;
	if (rc < 0) {
		fuse_reply_err(m->req, -rc);
		return 0;
	}
	rc = mcache_late_dir(cm->mc, &op->parent, op->name, &a);
	if (rc < 0)
		log_debug(LOG_FUSE, "late create: listing not edited: %s",
			  strerror(-rc));
	m->late = true;
	reply_entry(cm, m, &a);
	return 0;
}

/*
 * Build and send the op, or answer. @return -1 (sent), 0 (answered), 1
 * (a listing is needed: m->need_dir), 2 (local data must be stored
 * first), 3 (attributes needed), 4 (an orphan-to-be must be fetched).
 */
static int
mop_try(struct cm *cm, struct mop *m)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(m->req);
	struct proto_op op;
	struct proto_attr a;
	struct fid pfid, npfid;
	enum proto_type t = PROTO_T_NONE;
	int rc;

	memset(&op, 0, sizeof(op));
	if (fops_read_only(cm)) {
		fuse_reply_err(m->req, EROFS);
		return 0;
	}
	switch (m->kind) {
	case M_CREATE:
	case M_MKNOD:
	case M_MKDIR:
	case M_SYMLINK:
		if (ino_fid(cm->ino, m->parent, &pfid) < 0) {
			fuse_reply_err(m->req, ESTALE);
			return 0;
		}
		rc = proto_name_check(m->name, strlen(m->name));
		if (rc < 0) {
			fuse_reply_err(m->req, -rc);
			return 0;
		}
		op.kind = m->kind == M_MKDIR	 ? PROTO_OP_MKDIR
			  : m->kind == M_SYMLINK ? PROTO_OP_SYMLINK
						 : PROTO_OP_CREATE;
		op.parent = pfid;
		op.name = m->name;
		op.type = S_ISFIFO(m->mode)   ? PROTO_T_FIFO
			  : S_ISSOCK(m->mode) ? PROTO_T_SOCK
			  : S_ISCHR(m->mode)  ? PROTO_T_CHR
			  : S_ISBLK(m->mode)  ? PROTO_T_BLK
					      : PROTO_T_FILE;
		if (proto_type_has_rdev(op.type))
			op.rdev = m->rdev;
		op.mode = m->mode & 07777;
		op.uid = ctx->uid;
		op.gid = ctx->gid;
		op.target = m->target;
		/* BSD group semantics under a set-group-ID directory: the
		 * new object takes the directory's group, and a new
		 * directory the bit too. */
		if (mcache_attr(cm->mc, &pfid, &a) == 0 && (a.mode & S_ISGID)) {
			op.gid = a.gid;
			if (m->kind == M_MKDIR)
				op.mode |= S_ISGID;
		}
		if (fid_random(pfid.vol, &op.fid) < 0) {
			fuse_reply_err(m->req, EIO);
			return 0;
		}
		break;
	case M_LINK:
		if (ino_fid(cm->ino, m->ino, &op.fid) < 0 ||
		    ino_fid(cm->ino, m->newparent, &op.parent) < 0) {
			fuse_reply_err(m->req, ESTALE);
			return 0;
		}
		rc = proto_name_check(m->newname, strlen(m->newname));
		if (rc < 0) {
			fuse_reply_err(m->req, -rc);
			return 0;
		}
		op.kind = PROTO_OP_LINK;
		op.name = m->newname;
		break;
	case M_UNLINK:
	case M_RMDIR:
		if (ino_fid(cm->ino, m->parent, &pfid) < 0) {
			fuse_reply_err(m->req, ESTALE);
			return 0;
		}
		rc = name_fid(cm, m, &pfid, m->name, &op.fid, &t);
		if (rc == 1)
			return 1;
		if (rc < 0) {
			fuse_reply_err(m->req, -rc);
			return 0;
		}
		if (m->kind == M_UNLINK && t == PROTO_T_DIR) {
			fuse_reply_err(m->req, EISDIR);
			return 0;
		}
		if (m->kind == M_RMDIR && t != PROTO_T_DIR) {
			fuse_reply_err(m->req, ENOTDIR);
			return 0;
		}
		if (m->kind == M_UNLINK &&
		    (rc = orphan_prepare(cm, m, &op.fid)) != 0)
			return rc;
		op.kind = m->kind == M_RMDIR ? PROTO_OP_RMDIR : PROTO_OP_UNLINK;
		op.parent = pfid;
		op.name = m->name;
		break;
	case M_RENAME:
		if (ino_fid(cm->ino, m->parent, &pfid) < 0 ||
		    ino_fid(cm->ino, m->newparent, &npfid) < 0) {
			fuse_reply_err(m->req, ESTALE);
			return 0;
		}
		if (m->flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
			fuse_reply_err(m->req, EINVAL);
			return 0;
		}
		rc = proto_name_check(m->newname, strlen(m->newname));
		if (rc < 0) {
			fuse_reply_err(m->req, -rc);
			return 0;
		}
		rc = name_fid(cm, m, &pfid, m->name, &op.fid, NULL);
		if (rc == 1)
			return 1;
		if (rc < 0) {
			fuse_reply_err(m->req, -rc);
			return 0;
		}
		rc = name_fid(cm, m, &npfid, m->newname, &op.victim, NULL);
		if (rc == 1)
			return 1;
		if (rc < 0 && rc != -ENOENT) {
			fuse_reply_err(m->req, -rc);
			return 0;
		}
		if (fid_eq(&op.fid, &op.victim)) {
			/* Two names of one object: rename(2) does nothing. */
			fuse_reply_err(m->req, 0);
			return 0;
		}
		if (rc == 0 && !(m->flags & RENAME_EXCHANGE) &&
		    (rc = orphan_prepare(cm, m, &op.victim)) != 0)
			return rc;
		op.kind = PROTO_OP_RENAME;
		op.parent = pfid;
		op.name = m->name;
		op.newparent = npfid;
		op.newname = m->newname;
		if (m->flags & RENAME_NOREPLACE)
			op.flags |= PROTO_RENAME_NOREPLACE;
		if (m->flags & RENAME_EXCHANGE)
			op.flags |= PROTO_RENAME_EXCHANGE;
		break;
	case M_SETATTR:
	case M_FALLOCATE:
		if (ino_fid(cm->ino, m->ino, &op.fid) < 0) {
			fuse_reply_err(m->req, ESTALE);
			return 0;
		}
		if (!m->kill_only && wb_dirty(cm->wb, &op.fid) &&
		    !m->flushed) {
			m->fid = op.fid;
			return 2;
		}
		if (mcache_attr(cm->mc, &op.fid, &a) < 0) {
			m->need_dir = op.fid; /* attributes, in fact */
			return 3;
		}
		op.kind = PROTO_OP_SETATTR;
		op.base_dv = a.dv;
		if (m->kind == M_FALLOCATE) {
			/* st_size -1: nothing to grow, the kill alone */
			if (m->st.st_size >= 0) {
				op.mask = PROTO_SA_SIZE;
				op.size = (uint64_t)m->st.st_size;
			}
			/* A fallocate by a caller without CAP_FSETID
			 * clears set-ID bits in the same op. */
			if (wb_killed_mode(a.mode & 07777, m->kill) !=
			    (a.mode & 07777)) {
				op.mask |= PROTO_SA_MODE;
				op.mode = wb_killed_mode(a.mode & 07777,
							 m->kill);
			}
			if (!op.mask) {
				fuse_reply_err(m->req, 0);
				return 0;
			}
			break;
		}
		if (m->kill && !(m->to_set & FUSE_SET_ATTR_MODE) &&
		    wb_killed_mode(a.mode & 07777, m->kill) !=
			    (a.mode & 07777)) {
			m->to_set |= FUSE_SET_ATTR_MODE;
			m->st.st_mode = wb_killed_mode(a.mode & 07777,
						       m->kill);
		}
		setattr_fields(m, &op);
		if (!op.mask && m->kill) {
			/* A kill that found nothing to clear. */
			if (m->kill_only)
				kill_continue(cm, m);
			else
				reply_attr_of(cm, m->req, m->ino, &op.fid, false);
			return 0;
		}
		break;
	case M_SETXATTR:
	case M_REMOVEXATTR:
		if (ino_fid(cm->ino, m->ino, &op.fid) < 0) {
			fuse_reply_err(m->req, ESTALE);
			return 0;
		}
		op.kind = m->kind == M_SETXATTR ? PROTO_OP_SETXATTR
						: PROTO_OP_REMOVEXATTR;
		op.xname = m->xname;
		op.xvalue = m->xvalue;
		op.xlen = m->xlen;
		op.flags = m->flags & (PROTO_XATTR_CREATE | PROTO_XATTR_REPLACE);
		break;
	}
	m->fid = op.fid;
	if (late_create(cm, m, &op) == 0)
		return 0;
	rc = mut_submit(cm->mut, &op, mop_done, m);
	if (rc < 0) {
		fuse_reply_err(m->req, -rc);
		return 0;
	}
	return -1; /* sent: mop_done owns @m now */
}

static void
mop_dir_cb(void *arg, int err)
{
	struct mop *m = arg;
	struct cm *cm = m->cm;

	if (err) {
		fuse_reply_err(m->req, err == -ENOENT ? ENOENT : EIO);
		mop_free(m);
		return;
	}
	mop_job(&cm->loop, &m->job);
}

/* Loop thread: run again, getting what it needs first. */
static void
mop_job(struct cm_loop *loop, struct cm_job *job)
{
	struct cm *cm = cm_of_loop(loop);
	struct mop *m = (struct mop *)job;
	int rc;

	if (cm_stopping(&cm->loop) || !cm->mf) {
		fuse_reply_err(m->req, EIO);
		mop_free(m);
		return;
	}
	rc = mop_try(cm, m);
	if (rc == 0) {
		mop_free(m);
		return;
	}
	if (rc < 0)
		return;
	if (m->tries++ >= MOP_TRIES) {
		fuse_reply_err(m->req, EIO);
		mop_free(m);
		return;
	}
	if (rc == 1)
		mfetch_want_dir(cm->mf, &m->need_dir, mop_dir_cb, m);
	else if (rc == 4)
		wb_fetch_all(cm->wb, &m->orphan, mop_orphan_fetched, m);
	else if (rc == 3)
		mfetch_want_attr(cm->mf, &m->need_dir, mop_dir_cb, m);
	else
		wb_flush(cm->wb, &m->fid, mop_flushed, m);
}

/* From a worker: try at once; park what needs the loop. @m is heap. */
static void
mop_start(struct cm *cm, struct mop *m)
{
	int rc;

	fops_count(cm, CM_R_OTHER);
	m->cm = cm;
	m->job.run = mop_job;
	m->t0_seq = mfetch_send_seq(cm->mf);
	rc = mop_try(cm, m);
	if (rc == 0) {
		mop_free(m);
		return;
	}
	if (rc < 0)
		return;
	CM_STAT_INC(&cm->st, parked);
	cm_post(&cm->loop, &m->job); /* mop_job retries, then fetches */
}

static struct mop *
mop_new(fuse_req_t req, enum mop_kind kind)
{
	struct mop *m = calloc(1, sizeof(*m));

	if (!m) {
		fuse_reply_err(req, ENOMEM);
		return NULL;
	}
	m->req = req;
	m->kind = kind;
	return m;
}

/*
 * A flagged write or truncate (@w, parked) whose write state cannot take
 * the mode (wb_kill()'s -EPERM: its last store is logged or being
 * replayed): clear the set-ID bits with a setattr of their own first,
 * without storing the data (a mode-only setattr needs none of it), then
 * run @w without the kill. If the setattr fails, so does @w (EIO), and
 * nothing of it is written: the kernel's rule when file_remove_privs()
 * fails.
 */
static void
kill_mop_start(struct cm *cm, struct wio *w)
{
	struct mop *m = mop_new(w->req, M_SETATTR);

	log_info(LOG_FUSE, "set-ID bits of a file whose store is logged: "
			   "cleared by a setattr before the write");
	if (!m) {
		wio_free(w);
		return;
	}
	m->ino = w->ino;
	m->kill = w->kill.how;
	m->kill_only = true;
	m->then = w;
	mop_start(cm, m); /* counted: a request to the server of its own */
}

void
fmut_kill_open(struct cm *cm, fuse_req_t req, fuse_ino_t ino,
	       const struct fuse_file_info *fi, int how, bool trunc)
{
	struct mop *m = mop_new(req, M_SETATTR);

	log_info(LOG_FUSE, "set-ID bits of a file whose store is logged: "
			   "cleared by a setattr before the O_TRUNC");
	if (!m) {
		open_undo(cm, fi);
		return;
	}
	m->ino = ino;
	m->kill = how;
	m->kill_only = true;
	m->reply_open = true;
	m->open_trunc = trunc;
	m->fi = *fi;
	if (trunc) {
		fops_trunc_begin(req, ino);
		m->trunc_ino = ino;
	}
	mop_start(cm, m); /* counted: a request to the server of its own */
}

/* strdup that answers ENOMEM itself; @return false then. */
static bool
mop_dup(struct mop *m, char **dst, const char *src)
{
	if (!src)
		return true;
	*dst = strdup(src);
	if (*dst)
		return true;
	fuse_reply_err(m->req, ENOMEM);
	mop_free(m);
	return false;
}

void
fmut_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	  struct fuse_file_info *fi)
{
	struct mop *m = mop_new(req, M_CREATE);

	if (!m || !mop_dup(m, &m->name, name))
		return;
	m->parent = parent;
	m->mode = mode;
	m->fi = *fi;
	mop_start(fops_req_cm(req), m);
}

void
fmut_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	 dev_t rdev)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct cm *cm = fops_req_cm(req);
	struct proto_volinfo vi;
	struct mop *m;

	if (!S_ISREG(mode) && !S_ISFIFO(mode) && !S_ISSOCK(mode) &&
	    !S_ISCHR(mode) && !S_ISBLK(mode)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	/* A server before PROTO_V_SPECIAL keeps no sockets or devices; with no
	 * volume information yet, the server says so itself (EINVAL). */
	if ((S_ISSOCK(mode) || S_ISCHR(mode) || S_ISBLK(mode)) &&
	    cm_volinfo(cm, &vi) == 0 && vi.version < PROTO_V_SPECIAL) {
		fuse_reply_err(req, EPERM);
		return;
	}
	/* mknod(2): a device node needs CAP_MKNOD. The kernel checks it
	 * before it asks us; this holds if it ever does not. */
	if ((S_ISCHR(mode) || S_ISBLK(mode)) &&
	    !acc_may_mknod_dev(ctx->pid, ctx->uid)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if ((S_ISCHR(mode) || S_ISBLK(mode)) &&
	    (uint64_t)rdev > PROTO_RDEV_MAX) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	m = mop_new(req, M_MKNOD);
	if (!m || !mop_dup(m, &m->name, name))
		return;
	m->parent = parent;
	m->mode = mode;
	m->rdev = S_ISCHR(mode) || S_ISBLK(mode) ? (uint32_t)rdev : 0;
	mop_start(cm, m);
}

void
fmut_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct mop *m = mop_new(req, M_MKDIR);

	if (!m || !mop_dup(m, &m->name, name))
		return;
	m->parent = parent;
	m->mode = mode;
	mop_start(fops_req_cm(req), m);
}

void
fmut_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
	   const char *name)
{
	struct mop *m;

	if (strlen(link) >= PROTO_PATH_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	m = mop_new(req, M_SYMLINK);
	if (!m || !mop_dup(m, &m->name, name) ||
	    !mop_dup(m, &m->target, link))
		return;
	m->parent = parent;
	m->mode = 0777;
	mop_start(fops_req_cm(req), m);
}

void
fmut_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
	const char *newname)
{
	struct mop *m = mop_new(req, M_LINK);

	if (!m || !mop_dup(m, &m->newname, newname))
		return;
	m->ino = ino;
	m->newparent = newparent;
	mop_start(fops_req_cm(req), m);
}

void
fmut_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mop *m = mop_new(req, M_UNLINK);

	if (!m || !mop_dup(m, &m->name, name))
		return;
	m->parent = parent;
	mop_start(fops_req_cm(req), m);
}

void
fmut_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mop *m = mop_new(req, M_RMDIR);

	if (!m || !mop_dup(m, &m->name, name))
		return;
	m->parent = parent;
	mop_start(fops_req_cm(req), m);
}

void
fmut_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
	  fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct mop *m = mop_new(req, M_RENAME);

	if (!m || !mop_dup(m, &m->name, name) ||
	    !mop_dup(m, &m->newname, newname))
		return;
	m->parent = parent;
	m->newparent = newparent;
	m->flags = flags;
	mop_start(fops_req_cm(req), m);
}

#define LOCAL_SET                                                          \
	(FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MTIME_NOW |                    \
	 FUSE_SET_ATTR_CTIME)

void
fmut_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
	   struct fuse_file_info *fi)
{
	struct cm *cm = fops_req_cm(req);
	struct mop *m;
	struct fid fid;
	int set = to_set;
	int kill = 0, flagged = 0;
	bool local_trunc, have_ka = false;
	struct proto_attr ka;

	(void)fi;
	if (fops_read_only(cm)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (ino_fid(cm->ino, ino, &fid) < 0) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	/* Before anything looks at the write state or the attributes: a
	 * store the wait sends may end the write state (the truncate then
	 * goes to the server) or be refused (a conflict copy). */
	if ((set & FUSE_SET_ATTR_SIZE) && attr->st_size >= 0)
		fmut_drain_first(cm, &fid, (uint64_t)attr->st_size);
	/* "now" times set by the kernel with a truncate are ours to keep. */
	if ((set & FUSE_SET_ATTR_MTIME) && (set & FUSE_SET_ATTR_MTIME_NOW))
		set &= ~FUSE_SET_ATTR_MTIME;
	/* A truncate by a caller without CAP_FSETID, or a chown: the
	 * set-ID bits go with it (KILLPRIV_V2, fuse_i.h; libfuse passes
	 * the kernel's FATTR_KILL_SUIDGID on as FUSE_SET_ATTR_KILL_SUID).
	 * A local truncate folds them into the write state after it
	 * (wio_try()); anything else sets them as a mode of the same op,
	 * or, when the attributes are not cached, the op works the mode
	 * out (mop_try()). */
	if ((set & FUSE_SET_ATTR_KILL_SUID) && !(set & FUSE_SET_ATTR_MODE)) {
		have_ka = mcache_attr(cm->mc, &fid, &ka) == 0;
		/* A chown's flag is the kernel's whatever the caller: the
		 * group rule alone (a caller outside the group and without
		 * CAP_FSETID would lose a set-group-ID bit without group
		 * execute on a local file system; rare, kept here). */
		flagged = (set & FUSE_SET_ATTR_SIZE)
				  ? fops_kill_how(req, have_ka ? &ka : NULL)
				  : FOPS_KILL;
	}
	set &= ~(FUSE_SET_ATTR_KILL_SUID | FUSE_SET_ATTR_KILL_SGID);
	local_trunc = (set & FUSE_SET_ATTR_SIZE) && !(set & ~LOCAL_SET) &&
		      wb_active(cm->wb, &fid);
	if (flagged && !local_trunc) {
		if (!have_ka) {
			kill = flagged;
		} else if (wb_killed_mode(ka.mode & 07777, flagged) !=
			   (ka.mode & 07777)) {
			set |= FUSE_SET_ATTR_MODE;
			attr->st_mode = wb_killed_mode(ka.mode & 07777,
						       flagged);
		}
	}
	if (local_trunc) {
		struct wio w = {.cm = cm, .req = req, .kind = W_TRUNC,
				.fid = fid, .off = (uint64_t)attr->st_size,
				.ino = ino,
				.kill = {.how = flagged,
					 .mode = have_ka ? ka.mode & 07777
							 : WB_MODE_UNKNOWN}};

		if (attr->st_size < 0) {
			fuse_reply_err(req, EINVAL);
			return;
		}
		fops_count(cm, CM_R_OTHER);
		/* Reads that come back short wait until the kernel has the
		 * new size (fuse_i.h, fops_trunc_begin()). */
		fops_trunc_begin(req, ino);
		w.trunc_mark = true;
		wio_run(cm, &w, NULL);
		return;
	}
	/* chown to the owner and group it has (tar -x does it for every
	 * file): nothing to ask the server, unless set-ID bits would be
	 * cleared. */
	if ((set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) && !kill &&
	    !(set & ~(FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID |
		      FUSE_SET_ATTR_CTIME))) {
		struct proto_attr a;

		if (mcache_attr(cm->mc, &fid, &a) == 0 &&
		    (!(set & FUSE_SET_ATTR_UID) || a.uid == attr->st_uid) &&
		    (!(set & FUSE_SET_ATTR_GID) || a.gid == attr->st_gid) &&
		    !(a.mode & (S_ISUID | S_ISGID))) {
			fops_count(cm, CM_R_OTHER);
			reply_attr_of(cm, req, ino, &fid, false);
			return;
		}
	}
	/* chmod, chown, utimes of a file being written (tar does them
	 * before its close): they go with its store (wb_setattr()). */
	if (!(set & ~(FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID |
		      FUSE_SET_ATTR_GID | FUSE_SET_ATTR_ATIME |
		      FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME |
		      FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME)) &&
	    (set & ~FUSE_SET_ATTR_CTIME) && !kill && wb_active(cm->wb, &fid)) {
		struct proto_attr a;
		uint32_t mask = 0;
		int64_t at = 0, mt = 0;

		if (set & FUSE_SET_ATTR_MODE)
			mask |= PROTO_SA_MODE;
		if (set & FUSE_SET_ATTR_UID)
			mask |= PROTO_SA_UID;
		if (set & FUSE_SET_ATTR_GID)
			mask |= PROTO_SA_GID;
		if (set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW)) {
			mask |= PROTO_SA_ATIME;
			at = (set & FUSE_SET_ATTR_ATIME_NOW)
				     ? util_wall_ns()
				     : (int64_t)attr->st_atim.tv_sec *
						       1000000000 +
					       attr->st_atim.tv_nsec;
		}
		if (set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) {
			mask |= PROTO_SA_MTIME;
			mt = (set & FUSE_SET_ATTR_MTIME_NOW)
				     ? util_wall_ns()
				     : (int64_t)attr->st_mtim.tv_sec *
						       1000000000 +
					       attr->st_mtim.tv_nsec;
		}
		/* A chown of a set-ID file goes to the server at once
		 * (the mode it clears goes with it, set above). */
		if (mcache_attr(cm->mc, &fid, &a) == 0 &&
		    (!(mask & (PROTO_SA_UID | PROTO_SA_GID)) ||
		     !(a.mode & (S_ISUID | S_ISGID))) &&
		    wb_setattr(cm->wb, &fid, mask, attr->st_mode & 07777,
			       attr->st_uid, attr->st_gid, at, mt) == 0) {
			fops_count(cm, CM_R_OTHER);
			reply_attr_of(cm, req, ino, &fid, false);
			return;
		}
	}
	if (!(set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID |
		     FUSE_SET_ATTR_GID | FUSE_SET_ATTR_SIZE |
		     FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW |
		     FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))) {
		fops_count(cm, CM_R_OTHER);
		reply_attr_of(cm, req, ino, &fid, false);
		return;
	}
	m = mop_new(req, M_SETATTR);
	if (!m)
		return;
	m->ino = ino;
	m->st = *attr;
	m->to_set = set;
	m->kill = kill;
	if (set & FUSE_SET_ATTR_SIZE) {
		/* As a local truncation: the server's answer makes the
		 * cached size the new one before the kernel has it. */
		fops_trunc_begin(req, ino);
		m->trunc_ino = ino;
	}
	mop_start(cm, m);
}

void
fmut_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
	    const char *value, size_t size, int flags)
{
	struct mop *m;

	if (strlen(name) > PROTO_XATTR_NAME_MAX) {
		fuse_reply_err(req, ERANGE);
		return;
	}
	if (size > PROTO_XATTR_VALUE_MAX) {
		fuse_reply_err(req, E2BIG);
		return;
	}
	if (!strcmp(name, STATS_XATTR)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	m = mop_new(req, M_SETXATTR);
	if (!m || !mop_dup(m, &m->xname, name))
		return;
	m->xvalue = malloc(size ? size : 1);
	if (!m->xvalue) {
		fuse_reply_err(req, ENOMEM);
		mop_free(m);
		return;
	}
	memcpy(m->xvalue, value, size);
	m->xlen = size;
	m->ino = ino;
	m->flags = (flags & XATTR_CREATE ? PROTO_XATTR_CREATE : 0) |
		   (flags & XATTR_REPLACE ? PROTO_XATTR_REPLACE : 0);
	mop_start(fops_req_cm(req), m);
}

void
fmut_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct mop *m = mop_new(req, M_REMOVEXATTR);

	if (!m || !mop_dup(m, &m->xname, name))
		return;
	m->ino = ino;
	mop_start(fops_req_cm(req), m);
}

/* Mode 0 only: make the file at least @offset + @length bytes long (the
 * server does not reserve space, so this is a growing truncate). */
void
fmut_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
	     off_t length, struct fuse_file_info *fi)
{
	struct cm *cm = fops_req_cm(req);
	struct proto_attr a;
	struct fid fid;
	uint64_t end;
	int kill = 0;

	(void)fi;
	if (mode != 0) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (offset < 0 || length <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (ino_fid(cm->ino, ino, &fid) < 0 ||
	    mcache_attr(cm->mc, &fid, &a) < 0) {
		fuse_reply_err(req, EIO);
		return;
	}
	end = (uint64_t)offset + (uint64_t)length;
	/* Like a write, a fallocate by a caller without CAP_FSETID clears
	 * set-ID bits (the kernel's file_modified(); under KILLPRIV_V2 it
	 * leaves that to us and FUSE_FALLOCATE has no flag for it), before
	 * the size, or with it. */
	if ((a.mode & (S_ISUID | S_ISGID)) && !fops_caller_fsetid(req))
		kill = fops_kill_how(req, &a);
	if (wb_killed_mode(a.mode & 07777, kill) == (a.mode & 07777))
		kill = 0;
	if (end <= a.size && !kill) {
		fuse_reply_err(req, 0);
		return;
	}
	if (wb_active(cm->wb, &fid)) {
		struct wio w = {.cm = cm, .req = req, .ino = ino, .fid = fid,
				.reply0 = true,
				.kill = {.how = kill, .mode = a.mode & 07777}};

		if (end > a.size) {
			w.kind = W_TRUNC;
			w.off = end;
		} else {
			/* Nothing to grow: the kill alone, as an empty
			 * write (wb_write() of 0 bytes is wb_kill()). */
			w.kind = W_WRITE;
			w.off = a.size;
			w.buf = (uint8_t *)"";
		}
		wio_run(cm, &w, NULL);
		return;
	}
	{
		struct mop *m = mop_new(req, M_FALLOCATE);

		if (!m)
			return;
		m->ino = ino;
		m->kill = kill;
		m->st.st_size = end > a.size ? (off_t)end : -1;
		mop_start(cm, m);
	}
}
