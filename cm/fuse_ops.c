/*
 * fuse_ops.c - the FUSE low-level handlers of cairnd: thin, each one reads
 * the caches and replies at once, or parks the request for the loop thread.
 *
 * It is not where data is fetched or caches are filled (mfetch.c, fetch.c);
 * the mutating handlers are in fuse_mut.c (fuse_i.h is what the two
 * share), which hands metadata changes to mut.c and file data to wb.c.
 *
 * The park/retry pattern: a handler fills a struct park with its
 * arguments and calls its try_*() function. try_*() either replies (and
 * returns 0) or says what it needs (returns 1 with p->need and p->need_fid
 * set). On a worker a need turns into a heap copy of the park posted to the
 * loop; the loop asks mfetch.c for the need and, when it is in the cache,
 * calls the same try_*() again there. A park gets PARK_TRIES tries.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <stdio.h>

#include "chunkstore/cs.h"
#include "cm/conn.h"
#include "cm/dstream.h"
#include "cm/fetch.h"
#include "cm/fuse_i.h"
#include "cm/fuse_ops.h"
#include "cm/inode.h"
#include "cm/mcache.h"
#include "cm/mfetch.h"
#include "cm/pin.h"
#include "cm/mut.h"
#include "cm/replay.h"
#include "cm/rlog.h"
#include "cm/wb.h"
#include "cm/vc.h"
#include "common/log.h"
#include "common/util.h"

#define PARK_TRIES 4
#define STATS_SLACK  256  /* cairn.stats: size query headroom */
#define KERNEL_RA_KB 4096 /* fetch_kernel_readahead(): after INIT */

enum park_op {
	P_LOOKUP,
	P_GETATTR,
	P_OPENDIR,
	P_READDIR,
	P_OPEN,
	P_READLINK,
	P_GETXATTR,
	P_LISTXATTR,
};

enum need_kind {
	NEED_ATTR,
	NEED_DIR,
	NEED_DIR_STREAM, /* an OPENDIR: the first of several pages will do */
	NEED_MORE,	 /* a READDIR of a stream: its next entries */
	NEED_LINK,
	NEED_XATTR
};

struct park {
	struct cm_job job;
	struct cm *cm;
	fuse_req_t req;
	enum park_op op;
	fuse_ino_t ino;
	char *name;
	size_t size;
	off_t off;
	bool plus;
	struct fuse_file_info fi;
	unsigned tries;
	enum need_kind need;
	struct fid need_fid;
	uint64_t wait_until; /* offline-miss=wait: util_now_ms() bound */
	uint64_t t0_seq;     /* mfetch_send_seq() when parked */
	/* LOOKUP: the FID a late listing gave the name, while its
	 * attributes are fetched (try_lookup) */
	bool have_late_child;
	struct fid late_child;
	/* LOOKUP: the held listing named late_child, whose object turned
	 * out gone: the name may name a new one, so a listing fetch once
	 * (lookup_held() is not tried again) */
	bool held_tried;
	bool kill; /* open: O_TRUNC flagged (fops_kill_suidgid()) */
};


static int try_op(struct cm *cm, struct park *p);

/* An OPENDIR's handle is its listing (a vc_dir, malloc'ed, so its low
 * bits are free); FH_LATE marks a late listing (try_opendir), whose
 * missing attributes a READDIRPLUS does not fetch the directory again
 * for. FH_STREAM marks a listing read as it comes (a dstream). */
#define FH_LATE ((uintptr_t)1)
#define FH_STREAM ((uintptr_t)2)

static struct vc_dir *
fh_dir(uint64_t fh)
{
	if (fh & FH_STREAM)
		return NULL;
	return (struct vc_dir *)(uintptr_t)(fh & ~(uint64_t)FH_LATE);
}

static struct dstream *
fh_stream(uint64_t fh)
{
	if (!(fh & FH_STREAM))
		return NULL;
	return (struct dstream *)(uintptr_t)(fh & ~(uint64_t)FH_STREAM);
}

/* A late listing of directory @fid for @p, on the loop only (a retry
 * from mfetch's callback; see try_opendir), or NULL. */
static struct vc_dir *
late_dir(struct cm *cm, struct park *p, const struct fid *fid)
{
	struct vc_dir *d;

	if (p->tries == 0 || !cm->mf || mcache_ahead(cm->mc, fid) ||
	    mfetch_late_dir(cm->mf, fid, p->t0_seq, &d) < 0)
		return NULL;
	CM_STAT_INC(&cm->st, dir_late);
	/* A handle's held listing that aged out answers again from this
	 * newer one (mfetch_held_dir()). */
	mfetch_held_renew(cm->mf, d);
	return d;
}


static int
need(struct park *p, enum need_kind k, const struct fid *fid)
{
	p->need = k;
	p->need_fid = *fid;
	return 1;
}

/* --- parking --- */

static void park_free(struct park *p)
{
	free(p->name);
	free(p);
}

static void
park_resume(void *arg, int err)
{
	struct park *p = arg;
	struct cm *cm = p->cm;

	/* -EAGAIN: what was fetched was already stale (a change raced with
	 * it, e.g. xattrs while their object changes): fetch again, within
	 * the same bound on tries. */
	if (err == -EAGAIN && p->tries + 1 < PARK_TRIES) {
		p->tries++;
		p->job.run(&cm->loop, &p->job);
		return;
	}
	/* Disconnected with offline-miss=wait: a miss waits for the
	 * reconnection (probes, fs reconnect) up to the policy's bound. */
	if (err && err != -ENOENT && err != -ENOTDIR &&
	    !cm_stopping(&cm->loop)) {
		uint64_t bound = replay_miss_wait_ms(cm->replay),
			 now = util_now_ms();

		if (bound && !p->wait_until)
			p->wait_until = now + bound;
		if (bound && now < p->wait_until &&
		    cm_post_after(&cm->loop, &p->job, 250) == 0)
			return;
	}
	if (err == -ENOENT && p->op == P_LOOKUP && p->have_late_child &&
	    p->need == NEED_ATTR && !p->held_tried) {
		/* The held listing's FID for the name is gone, but the name
		 * may name a new object now (removed and made again on
		 * another client): a listing fetch once, not ENOENT. */
		struct fid pfid;

		p->held_tried = true;
		p->have_late_child = false;
		if (ino_fid(cm->ino, p->ino, &pfid) == 0) {
			need(p, NEED_DIR, &pfid);
			p->tries++;
			p->job.run(&cm->loop, &p->job);
			return;
		}
	}
	if (err) {
		/* ENOENT of the object we needed: the object is gone.
		 * Anything else (no answer, a bad reply): EIO. */
		fuse_reply_err(p->req, err == -ENOENT	  ? ENOENT
				       : err == -ENOTDIR ? ENOTDIR
							  : EIO);
		park_free(p);
		return;
	}
	p->tries++;
	if (try_op(cm, p) == 0) {
		park_free(p);
		return;
	}
	if (p->tries >= PARK_TRIES) {
		log_warn(LOG_FUSE, "request still not answerable after %u "
				   "fetches; giving up",
			 p->tries);
		fuse_reply_err(p->req, EIO);
		park_free(p);
		return;
	}
	p->job.run(&cm->loop, &p->job);
}

/* A READDIR of a stream (NEED_MORE): its entries came, or the listing
 * ended. Not a try of PARK_TRIES: each wake brings an entry nearer, and
 * a listing of a million entries is 245 pages. Loop thread. */
static void
park_more(void *arg, int err)
{
	struct park *p = arg;
	struct cm *cm = p->cm;

	if (err) {
		fuse_reply_err(p->req, -err == ENOMEM ? ENOMEM : EIO);
		park_free(p);
		return;
	}
	if (try_op(cm, p) == 0) {
		park_free(p);
		return;
	}
	p->job.run(&cm->loop, &p->job);
}

/*
 * A LOOKUP that needs a listing of a directory an open handle holds a
 * late listing of (try_opendir(), mfetch_hold_late()): ls -l stats each
 * name its readdir gave. A name that listing shows names its FID, and
 * the FID's attributes, cached (no event about it since) or fetched
 * now, answer the LOOKUP (try_lookup(), late_child; ENOENT when the
 * object is gone), rather than one fetch of the whole directory a name,
 * which the churn overtakes again. A name it does not show still waits
 * for a listing asked for after the LOOKUP began. Loop thread. @return
 * whether @p was taken care of.
 */
static bool
lookup_held(struct cm *cm, struct park *p)
{
	struct proto_attr a;
	struct vc_dir *d;
	long idx;

	if (p->op != P_LOOKUP || !p->name || p->have_late_child ||
	    p->held_tried || mcache_ahead(cm->mc, &p->need_fid) ||
	    mfetch_held_dir(cm->mf, &p->need_fid, &d) < 0)
		return false;
	idx = vc_dir_find(d, p->name, strlen(p->name));
	if (idx >= 0) {
		p->have_late_child = true;
		p->late_child = vc_dir_ent(d, idx)->fid;
	}
	vc_dir_put(d);
	if (idx < 0)
		return false;
	CM_STAT_INC(&cm->st, dir_held);
	/* A retry (-EAGAIN, an offline wait) fetches the attributes
	 * again, not the whole directory. */
	need(p, NEED_ATTR, &p->late_child);
	if (mcache_attr(cm->mc, &p->late_child, &a) == 0)
		park_resume(p, 0);
	else
		mfetch_want_attr(cm->mf, &p->late_child, park_resume, p);
	return true;
}

static void
park_run(struct cm_loop *loop, struct cm_job *job)
{
	struct park *p = container_of(job, struct park, job);
	struct cm *cm = p->cm;
	struct vc_dir *d;

	(void)loop;
	if (!cm->mf) {
		fuse_reply_err(p->req, EIO);
		park_free(p);
		return;
	}
	if (p->need == NEED_DIR && lookup_held(cm, p))
		return;
	if (p->op == P_OPENDIR &&
	    (p->need == NEED_DIR || p->need == NEED_DIR_STREAM) &&
	    mcache_dir(cm->mc, &p->need_fid, &d) == 0) {
		/* The listing it needs was stored since the worker looked
		 * (a listing's stream ends for its readers before the loop
		 * sorts and stores it: `ls; ls`): no second fetch of it.
		 * Not for a LOOKUP or READDIR, which may ask for a fetch of
		 * a stored listing for the attributes it brings. */
		vc_dir_put(d);
		park_resume(p, 0);
		return;
	}
	switch (p->need) {
	case NEED_ATTR:
		mfetch_want_attr(cm->mf, &p->need_fid, park_resume, p);
		break;
	case NEED_DIR:
		mfetch_want_dir(cm->mf, &p->need_fid, park_resume, p);
		break;
	case NEED_DIR_STREAM:
		mfetch_want_dir_stream(cm->mf, &p->need_fid, park_resume, p);
		break;
	case NEED_MORE: {
		/* Entry off - 2 is the first this READDIR gives (offsets:
		 * try_readdir()). */
		int rc = dstream_wait(fh_stream(p->fi.fh),
				      p->off > 2 ? (size_t)p->off - 2 : 0,
				      park_more, p);

		if (rc)
			park_more(p, rc > 0 ? 0 : rc);
		break;
	}
	case NEED_LINK:
		mfetch_want_link(cm->mf, &p->need_fid, park_resume, p);
		break;
	case NEED_XATTR:
		mfetch_want_xattrs(cm->mf, &p->need_fid, park_resume, p);
		break;
	}
}

/* From a worker: copy @p to the heap and hand it to the loop. */
static void
park(struct cm *cm, struct park *p)
{
	struct park *h = malloc(sizeof(*h));

	if (!h) {
		fuse_reply_err(p->req, ENOMEM);
		return;
	}
	*h = *p;
	h->t0_seq = mfetch_send_seq(cm->mf);
	h->name = NULL;
	if (p->name) {
		h->name = strdup(p->name);
		if (!h->name) {
			free(h);
			fuse_reply_err(p->req, ENOMEM);
			return;
		}
	}
	h->job.run = park_run;
	CM_STAT_INC(&cm->st, parked);
	cm_post(&cm->loop, &h->job);
}

static void
run_or_park(struct cm *cm, struct park *p)
{
	if (try_op(cm, p) != 0)
		park(cm, p);
}

/* --- lookup / getattr --- */

/* Valid replies: fuse_reply_entry (positive or negative), fuse_reply_err. */
static int
try_lookup(struct cm *cm, struct park *p)
{
	struct fuse_entry_param e;
	struct vc_dir *d;
	struct proto_attr a;
	struct fid pfid, cfid;
	struct ino_ent *ent;
	bool late, server;
	long idx;
	int rc;

	if (ino_fid(cm->ino, p->ino, &pfid) < 0) {
		fuse_reply_err(p->req, ESTALE);
		return 0;
	}
	rc = mcache_dir(cm->mc, &pfid, &d);
	if (rc == -ENOTDIR) {
		fuse_reply_err(p->req, -fops_notdir_err(cm, &pfid));
		return 0;
	}
	/* Events overtook the listing: the late one (try_opendir), so an
	 * ls -l or rm -r in a directory that changes faster than its
	 * listing comes answers each name after one fetch rather than fail
	 * after PARK_TRIES. The kernel keeps no entry from it: the events
	 * that overtook it already invalidated the names they touched. */
	if (rc < 0 && p->have_late_child && !mcache_ahead(cm->mc, &pfid)) {
		/* A late listing named it; its attributes were fetched. */
		cfid = p->late_child;
		late = true;
		goto child;
	}
	if (rc < 0 && !(d = late_dir(cm, p, &pfid)))
		return need(p, NEED_DIR, &pfid);
	late = rc < 0;
	idx = vc_dir_find(d, p->name, strlen(p->name));
	if (idx < 0) {
		vc_dir_put(d);
		/* A negative entry the kernel may keep: a later create on
		 * the server sends a dir event and we invalidate the name. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = late ? 0 : cm->cfg.entry_timeout;
		fuse_reply_entry(p->req, &e);
		return 0;
	}
	cfid = vc_dir_ent(d, idx)->fid;
	vc_dir_put(d);
child:
	if (mcache_attr_src(cm->mc, &cfid, &a, &server) < 0) {
		if (late) {
			/* An event about it came during the fetch, so the
			 * listing's attributes were not kept: a getattr of
			 * that FID, not another fetch of the whole
			 * directory (which the churn may overtake again). */
			p->have_late_child = true;
			p->late_child = cfid;
			return need(p, NEED_ATTR, &cfid);
		}
		/* The listing once (it brings every entry's attributes);
		 * then the name's own: in a directory that changes faster
		 * than its listing comes, each fetch is overtaken and this
		 * entry, which an event touched, never gets them from it
		 * (it failed with EIO after PARK_TRIES fetches). */
		if (p->tries > 0)
			return need(p, NEED_ATTR, &cfid);
		return need(p, NEED_DIR, &pfid);
	}
	if (a.type == PROTO_T_MOUNT) {
		/* Answered with the target's root, or shown as itself. */
		rc = fops_cross(cm, p->req, &cfid);
		if (rc == 0)
			return 0;
		if (rc == 1)
			return need(p, NEED_LINK, &cfid);
	}
	memset(&e, 0, sizeof(e));
	ino_lock(cm->ino);
	ent = ino_add_locked(cm->ino, &cfid);
	if (ent) {
		ent->nlookup++;
		ino_set_name_locked(ent, &pfid, p->name);
		if (!ent->have_attr) {
			ent->attr = a;
			ent->have_attr = true;
			/* As the cache knows it: a LOOKUP of an inode the
			 * kernel forgot must not drop the mark that makes
			 * a late listing's older attributes old news
			 * (fetched_older(), t4088). */
			ent->attr_server = server;
		}
		e.ino = ent->ino;
	}
	ino_unlock(cm->ino);
	if (!e.ino) {
		fuse_reply_err(p->req, ENOMEM);
		return 0;
	}
	fops_to_stat(cm, &a, e.ino, &e.attr);
	e.attr_timeout = cm->cfg.attr_timeout;
	e.entry_timeout = late ? 0 : cm->cfg.entry_timeout;
	if (fuse_reply_entry(p->req, &e) != 0)
		ino_forget(cm->ino, e.ino, 1);
	return 0;
}

static void
op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct cm *cm = fops_req_cm(req);
	struct park p = {.cm = cm, .req = req, .op = P_LOOKUP, .ino = parent,
			 .name = (char *)name};

	fops_count(cm, CM_R_LOOKUP);
	if (strlen(name) > PROTO_NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	run_or_park(cm, &p);
}

/* Valid replies: fuse_reply_none. */
static void
op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fops_count(fops_req_cm(req), CM_R_FORGET);
	ino_forget(fops_req_cm(req)->ino, ino, nlookup);
	fuse_reply_none(req);
}

static void
op_forget_multi(fuse_req_t req, size_t count_, struct fuse_forget_data *f)
{
	struct cm *cm = fops_req_cm(req);

	fops_count(cm, CM_R_FORGET);
	for (size_t i = 0; i < count_; i++)
		ino_forget(cm->ino, f[i].ino, f[i].nlookup);
	fuse_reply_none(req);
}

/* Valid replies: fuse_reply_attr, fuse_reply_err. */
static int
try_getattr(struct cm *cm, struct park *p)
{
	struct proto_attr a;
	struct fid fid;
	struct stat st;

	if (ino_fid(cm->ino, p->ino, &fid) < 0) {
		fuse_reply_err(p->req, ESTALE);
		return 0;
	}
	if (mcache_attr(cm->mc, &fid, &a) < 0)
		return need(p, NEED_ATTR, &fid);
	fops_to_stat(cm, &a, p->ino, &st);
	fuse_reply_attr(p->req, &st, cm->cfg.attr_timeout);
	return 0;
}

static void
op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct cm *cm = fops_req_cm(req);
	struct park p = {.cm = cm, .req = req, .op = P_GETATTR, .ino = ino};

	(void)fi;
	fops_count(cm, CM_R_GETATTR);
	run_or_park(cm, &p);
}

/* --- directories --- */

/*
 * Listing prefetch. A walker (ls -lR, find, du, cp -r, tar) opens a
 * directory and then each of its subdirectories in turn; cold, each of
 * those waits for its own listing fetch, one after the other. So the
 * first open of a directory's inode asks for the listings that are not
 * cached of up to KIDS_MAX of its subdirectories and of the KIDS_MAX
 * directories after it in its parent's listing (the order readdir gave
 * the walker), all at once (a listing brings every entry's attributes
 * too). A walk through a wide directory so moves a window of listings
 * ahead of it (it advances once the walk nears its end, where the
 * directories after the one opened are not all cached); a prefetched
 * listing prefetches nothing until its own directory is opened.
 */
#define KIDS_MAX 32

struct kids_job {
	struct cm_job job;
	struct cm *cm;
	struct fid fid;
};

/* Loop: ask for the listings of up to KIDS_MAX directories of @d from
 * entry @from on that are not cached (meta_want_dir() joins a fetch
 * already going). When the first KIDS_WARM are all cached, the walk is
 * warm (or behind its window): stop, rather than read listings from the
 * metadata file to find that the rest are cached too. */
#define KIDS_WARM 4

static void
kids_want(struct cm *cm, const struct vc_dir *d, size_t from)
{
	struct vc_dir *cd;
	unsigned n = 0, cached = 0;

	for (size_t i = from; i < d->n && n < KIDS_MAX; i++) {
		const struct vc_dirent *de = vc_dir_ent(d, i);

		if (de->type != PROTO_T_DIR)
			continue;
		n++;
		if (mcache_dir(cm->mc, &de->fid, &cd) == 0) {
			vc_dir_put(cd);
			if (++cached == KIDS_WARM && cached == n)
				break;
			continue;
		}
		mfetch_want_dir(cm->mf, &de->fid, NULL, NULL);
		CM_STAT_INC(&cm->st, dir_prefetches);
	}
}

static void
kids_run(struct cm_loop *loop, struct cm_job *job)
{
	struct kids_job *k = container_of(job, struct kids_job, job);
	struct cm *cm = k->cm;
	char name[PROTO_NAME_MAX + 1];
	struct vc_dir *d;
	struct fid pfid;
	long idx;

	if (cm_stopping(loop) || !cm->mf || cm_offline(cm))
		goto out;
	if (mcache_dir(cm->mc, &k->fid, &d) == 0) {
		kids_want(cm, d, 0);
		vc_dir_put(d);
	}
	/* The siblings after it: its name is the one the kernel last
	 * looked it up by (lookup or readdirplus). */
	if (ino_name_of(cm->ino, &k->fid, &pfid, name, sizeof(name)) == 0 &&
	    mcache_dir(cm->mc, &pfid, &d) == 0) {
		idx = vc_dir_find(d, name, strlen(name));
		if (idx >= 0)
			kids_want(cm, d, (size_t)idx + 1);
		vc_dir_put(d);
	}
out:
	free(k);
}

/* Any thread: prefetch the listings of @d's subdirectories and of the
 * directories after it (on the loop). */
static void
kids_prefetch(struct cm *cm, const struct vc_dir *d)
{
	struct kids_job *k;

	if (cm_offline(cm) || !(k = calloc(1, sizeof(*k))))
		return;
	k->cm = cm;
	k->fid = d->fid;
	k->job.run = kids_run;
	cm_post(&cm->loop, &k->job);
}

/* Directory @ino is open with listing @d: noted in its inode entry (the
 * DV the kernel's readdir cache holds). @return whether it is the first
 * open (its subdirectories' listings are then prefetched). */
static bool
dir_opened(struct cm *cm, fuse_ino_t ino, const struct vc_dir *d)
{
	struct ino_ent *e;
	bool first = false;

	ino_lock(cm->ino);
	e = ino_get_locked(cm->ino, ino);
	if (e) {
		first = !e->opened;
		e->opened = true;
		e->open_dv = d->dv;
	}
	ino_unlock(cm->ino);
	return first;
}

/* Directories of this many entries or more are not kept in the
 * kernel's readdir cache across opens (try_opendir). */
#define DIR_KEEP_MAX 10000

/* Valid replies: fuse_reply_open, fuse_reply_err. */
static int
try_opendir(struct cm *cm, struct park *p)
{
	struct vc_dir *d;
	struct ino_ent *e;
	struct fid fid;
	int rc;

	if (ino_fid(cm->ino, p->ino, &fid) < 0) {
		fuse_reply_err(p->req, ESTALE);
		return 0;
	}
	rc = mcache_dir(cm->mc, &fid, &d);
	if (rc == -ENOTDIR) {
		fuse_reply_err(p->req, -fops_notdir_err(cm, &fid));
		return 0;
	}
	if (rc < 0) {
		/* Local changes ahead (known on the loop only, a retry):
		 * their listing is the stored one, whole. */
		bool ahead = p->tries > 0 && mcache_ahead(cm->mc, &fid);
		struct dstream *ds;

		/* A big listing still coming: read it as it comes (a retry,
		 * on the loop: mfetch's callback at its first page). Not
		 * for the kernel's readdir cache: the stored listing will
		 * be sorted otherwise. */
		if (p->tries > 0 && cm->mf && !ahead &&
		    (ds = mfetch_stream_get(cm->mf, &fid))) {
			CM_STAT_INC(&cm->st, dir_streamed);
			p->fi.fh = (uintptr_t)ds | FH_STREAM;
			p->fi.cache_readdir = 0;
			p->fi.keep_cache = 0;
			if (fuse_reply_open(p->req, &p->fi) != 0)
				dstream_put(ds);
			return 0;
		}
		/* Fetched, but events overtook it (the directory changes
		 * faster than its listing arrives): a listing of one DV
		 * asked for after this open began is what readdir may show,
		 * rather than fetching it again until we give up with EIO
		 * (t2370). Not while local changes are ahead of the server
		 * (writeback): only the stored listing has them. On the
		 * loop: a retry comes from mfetch's callback. */
		if (!(d = late_dir(cm, p, &fid)))
			/* Ahead: the whole stored listing (waiting for a
			 * stream's first page again would find the stream
			 * not taken above again). */
			return need(p, ahead ? NEED_DIR : NEED_DIR_STREAM,
				    &fid);
		/* The LOOKUPs of the names it shows (ls -l) take their FIDs
		 * from it while it is open (park_run()). */
		mfetch_hold_late(cm->mf, d);
		p->fi.fh = (uintptr_t)d | FH_LATE;
		/* Not for the kernel's readdir cache: it is already old. */
		p->fi.cache_readdir = 0;
		p->fi.keep_cache = 0;
		if (fuse_reply_open(p->req, &p->fi) != 0)
			vc_dir_put(d);
		return 0;
	}
	p->fi.fh = (uintptr_t)d;
	/* The kernel may cache the listing pages (we invalidate the inode
	 * when the listing changes), and keep them across opens while the
	 * listing's DV is the one it saw last time. */
	p->fi.cache_readdir = 1;
	ino_lock(cm->ino);
	e = ino_get_locked(cm->ino, p->ino);
	/* Not for a big directory: the kernel then reads it from us again
	 * at each open, and an ls -l (whose stats between reads make the
	 * kernel ask READDIRPLUS) gets every entry's attributes ~25 to a
	 * request, where from the kernel's cache each stat was a LOOKUP
	 * round trip. */
	if (e)
		p->fi.keep_cache = e->opened && e->open_dv == d->dv &&
				   d->n < DIR_KEEP_MAX;
	ino_unlock(cm->ino);
	if (dir_opened(cm, p->ino, d))
		kids_prefetch(cm, d);
	if (fuse_reply_open(p->req, &p->fi) != 0)
		vc_dir_put(d);
	return 0;
}

static void
op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct cm *cm = fops_req_cm(req);
	struct park p = {.cm = cm, .req = req, .op = P_OPENDIR, .ino = ino,
			 .fi = *fi};

	fops_count(cm, CM_R_OPENDIR);
	run_or_park(cm, &p);
}

struct done_job {
	struct cm_job job;
	struct cm *cm;
	fuse_ino_t ino;
	struct fid fid;
};

static void
done_run(struct cm_loop *loop, struct cm_job *job)
{
	struct done_job *dj = container_of(job, struct done_job, job);
	struct vc_dir *d;

	if (!cm_stopping(loop) &&
	    mcache_dir(dj->cm->mc, &dj->fid, &d) == 0) {
		if (dir_opened(dj->cm, dj->ino, d))
			kids_prefetch(dj->cm, d);
		vc_dir_put(d);
	}
	free(dj);
}

/* Any thread: a READDIR reached the end of the stream of directory @ino
 * (@fid). Its listing is stored once the loop has sorted it, unless
 * events overtook it; then (a job on the loop, after that) a first open
 * of it prefetches what a walk lists next, as try_opendir does. */
static void
stream_done(struct cm *cm, fuse_ino_t ino, const struct fid *fid)
{
	struct done_job *dj = calloc(1, sizeof(*dj));

	if (!dj)
		return;
	dj->cm = cm;
	dj->ino = ino;
	dj->fid = *fid;
	dj->job.run = done_run;
	cm_post(&cm->loop, &dj->job);
}

/*
 * One entry of a READDIR(PLUS) reply at @buf (@room bytes left): @name,
 * the entry of @fid and @type (@dir is the directory itself for "." and
 * "..", @fid NULL), whose next offset is @next. readdirplus counts a
 * lookup for every entry it returns with an inode (not "." and "..",
 * which the kernel does not link). When its attributes are missing and
 * @may_fetch, nothing is added and *@fetch says the listing should be
 * fetched (it brings every entry's attributes at once). @return the
 * bytes the entry takes: more than @room when it did not fit (nothing
 * added, no lookup counted).
 */
static size_t
dirent_add(struct cm *cm, struct park *p, char *buf, size_t room,
	   const char *name, const struct fid *dir, const struct fid *fid,
	   uint8_t type, off_t next, bool may_fetch, bool *fetch)
{
	struct fuse_entry_param e;
	struct proto_attr a;
	size_t n;

	memset(&e, 0, sizeof(e));
	*fetch = false;
	if (!fid) {
		e.attr.st_ino = fops_st_ino(cm, dir);
		e.attr.st_mode = S_IFDIR;
	} else if (!p->plus || type == PROTO_T_MOUNT) {
		/* A mount point goes without attributes, so the kernel's
		 * next use of its name is a lookup, which crosses it
		 * (doc/cm.md "Mount points"). */
		e.attr.st_ino = fops_st_ino(cm, fid);
		e.attr.st_mode = fops_dirent_mode(type);
	} else if (mcache_attr(cm->mc, fid, &a) < 0) {
		if (may_fetch) {
			*fetch = true;
			return room + 1;
		}
		/* Still missing: a plain entry, no lookup, with the type
		 * the listing says (find(1) trusts d_type: a directory
		 * shown as a file is not descended into). */
		e.attr.st_ino = fops_st_ino(cm, fid);
		e.attr.st_mode = fops_dirent_mode(type);
	} else {
		struct ino_ent *ent;

		ino_lock(cm->ino);
		ent = ino_add_locked(cm->ino, fid);
		e.ino = ent ? ent->ino : 0;
		/* The kernel now knows it by this name, as after a lookup
		 * (sibling_prefetch uses it); but the snapshot may predate
		 * a rename, so a lookup's name stays. */
		if (ent)
			ino_set_listed_name_locked(ent, dir, name);
		ino_unlock(cm->ino);
		fops_to_stat(cm, &a, e.ino, &e.attr);
		if (e.ino) {
			e.attr_timeout = cm->cfg.attr_timeout;
			e.entry_timeout = cm->cfg.entry_timeout;
		} else {
			e.attr.st_ino = fops_st_ino(cm, fid);
		}
	}
	if (p->plus)
		n = fuse_add_direntry_plus(p->req, buf, room, name, &e, next);
	else
		n = fuse_add_direntry(p->req, buf, room, name, &e.attr, next);
	if (n > room)
		return n;
	if (p->plus && e.ino) {
		struct ino_ent *ent;

		ino_lock(cm->ino);
		ent = ino_get_locked(cm->ino, e.ino);
		if (ent)
			ent->nlookup++;
		ino_unlock(cm->ino);
	}
	return n;
}

/*
 * READDIR of a listing read as it comes (try_opendir, dstream.h):
 * offsets as below, entry i in the order the pages brought them. What
 * has come is given at once; a READDIR past it waits for the next page
 * (NEED_MORE), and past the end of the whole listing gets nothing (the
 * end) or the listing's failure. Attributes missing for READDIRPLUS are
 * not fetched (the listing being fetched brings them; as for a late
 * listing, a plain entry).
 */
static int
try_readdir_stream(struct cm *cm, struct park *p, struct dstream *ds)
{
	size_t size = p->size, used = 0;
	char *buf, name[NAME_MAX + 1];
	int got = 1;
	bool fetch;
	off_t i;

	buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(p->req, ENOMEM);
		return 0;
	}
	for (i = p->off;; i++) {
		struct fid fid;
		uint8_t type = 0;
		size_t n;

		if (i < 2) {
			n = dirent_add(cm, p, buf + used, size - used,
				       i == 0 ? "." : "..", dstream_fid(ds),
				       NULL, 0, i + 1, false, &fetch);
		} else {
			got = dstream_ent(ds, (size_t)(i - 2), name,
					  sizeof(name), &fid, &type);
			if (got <= 0)
				break;
			n = dirent_add(cm, p, buf + used, size - used, name,
				       dstream_fid(ds), &fid, type, i + 1,
				       false, &fetch);
		}
		if (n > size - used)
			break;
		used += n;
	}
	if (used == 0 && got == 0) {
		/* Nothing new yet: wait for the next page. */
		free(buf);
		return need(p, NEED_MORE, dstream_fid(ds));
	}
	if (got == -1)
		stream_done(cm, p->ino, dstream_fid(ds));
	if (used == 0 && got < -1)
		fuse_reply_err(p->req, got == -ENOMEM ? ENOMEM : EIO);
	else
		fuse_reply_buf(p->req, buf, used);
	free(buf);
	return 0;
}

/*
 * Valid replies: fuse_reply_buf, fuse_reply_err. Offsets: 1 is ".", 2 is
 * "..", 3 + i is entry i of the snapshot taken at opendir, so offsets stay
 * valid however the directory changes meanwhile.
 */
static int
try_readdir(struct cm *cm, struct park *p)
{
	struct vc_dir *d = fh_dir(p->fi.fh);
	struct dstream *ds = fh_stream(p->fi.fh);
	bool late = p->fi.fh & FH_LATE;
	size_t size = p->size, used = 0;
	char *buf;
	off_t i;

	if (ds)
		return try_readdir_stream(cm, p, ds);
	if (!d) {
		fuse_reply_err(p->req, EBADF);
		return 0;
	}
	buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(p->req, ENOMEM);
		return 0;
	}
	for (i = p->off; i < (off_t)d->n + 2; i++) {
		bool fetch;
		size_t n;

		if (i < 2) {
			n = dirent_add(cm, p, buf + used, size - used,
				       i == 0 ? "." : "..", &d->fid, NULL, 0,
				       i + 1, false, &fetch);
		} else {
			const struct vc_dirent *de = vc_dir_ent(d, i - 2);

			/* One listing fetch brings every entry's
			 * attributes at once (not on a late listing's
			 * handle: the fetch would be overtaken again;
			 * dir_take() kept the attributes of the entries no
			 * event touched). */
			n = dirent_add(cm, p, buf + used, size - used,
				       de->name, &d->fid, &de->fid, de->type,
				       i + 1, p->tries == 0 && used == 0 && !late,
				       &fetch);
			if (fetch) {
				free(buf);
				return need(p, NEED_DIR, &d->fid);
			}
		}
		if (n > size - used)
			break; /* not added: no lookup counted */
		used += n;
	}
	fuse_reply_buf(p->req, buf, used);
	free(buf);
	return 0;
}

static void
do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	   struct fuse_file_info *fi, bool plus)
{
	struct cm *cm = fops_req_cm(req);
	struct park p = {.cm = cm, .req = req, .op = P_READDIR, .ino = ino,
			 .size = size, .off = off, .plus = plus, .fi = *fi};

	fops_count(cm, CM_R_READDIR);
	run_or_park(cm, &p);
}

static void
op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void
op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

/* A late listing's handle was released: the loop frees the held
 * listing now if no other handle holds it (it may be megabytes; else
 * it stayed until a later LOOKUP or listing fetch). */
struct held_rel {
	struct cm_job job;
	struct cm *cm;
};

static void
held_rel_run(struct cm_loop *loop, struct cm_job *job)
{
	struct held_rel *r = container_of(job, struct held_rel, job);

	if (!cm_stopping(loop))
		mfetch_held_release(r->cm->mf);
	free(r);
}

/* Valid replies: fuse_reply_err. */
static void
op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct cm *cm = fops_req_cm(req);
	struct held_rel *r;

	(void)ino;
	fops_count(cm, CM_R_RELEASE);
	vc_dir_put(fh_dir(fi->fh));
	dstream_put(fh_stream(fi->fh));
	if ((fi->fh & (FH_LATE | FH_STREAM)) && (r = calloc(1, sizeof(*r)))) {
		r->cm = cm;
		r->job.run = held_rel_run;
		cm_post(&cm->loop, &r->job);
	}
	fuse_reply_err(req, 0);
}

/* --- files --- */

static void nt_inval_inode(void *arg, uint64_t ino, int64_t off, int64_t len);
static int nt_store(void *arg, fuse_ino_t ino, void *buf, size_t len);

/*
 * Open-time push. A warm cat, cp or tar of small files waited twice per
 * file: for the OPEN, then for the READ of its bytes (the page cache was
 * dropped). So the first open of a small file whose one chunk the store
 * holds at the current DV stores the whole file in the kernel's page
 * cache (FUSE_NOTIFY_STORE, one write to /dev/fuse) before the open is
 * answered with keep_cache: its reads are then page-cache hits, and a
 * file opened for reading costs one round trip. OPEN_PUSH_MAX is the
 * kernel's own first readahead on a FUSE mount (128 KiB): a reader of
 * the first bytes would have made it read that much anyway.
 *
 * Only on a worker (p->tries == 0), never on the loop: the store waits
 * for the page locks of the folios it fills, and the one thing that can
 * hold them is a reader whose READ the loop answers. A read-only open
 * holds no inode lock in the kernel (fuse_open takes it for O_TRUNC
 * only). Only a first open since the kernel made the inode (its page
 * cache is empty: no open before, no pages dropped by news since), so a
 * hot reopen copies nothing, and no page of an older DV can survive
 * beyond the pushed range.
 */
#define OPEN_PUSH_MAX (128 * 1024)

static bool
open_push(struct cm *cm, fuse_ino_t ino, struct ino_ent *e,
	  const struct proto_attr *a)
{
	void *nt = cm->loop.kops.arg;
	struct cs_key k;
	bool moved;
	char *buf;

	if (cm->loop.kops.inval_inode != nt_inval_inode || !nt)
		return false;
	buf = fops_tbuf_get((size_t)a->size);
	cm_chunk_key(&k, &a->fid, 0);
	if (!buf || cs_read(cm->cs, &k, a->dv, 0, buf, (size_t)a->size) !=
			    (ssize_t)a->size)
		return false;
	if (nt_store(nt, ino, buf, (size_t)a->size) != 0)
		return false;
	CM_STAT_INC(&cm->st, open_pushes);
	/* News that changed the file while we copied it found no pages
	 * to drop yet: drop them now (the notifier's queue is any
	 * thread's). The open still keeps the cache: the reader reads
	 * what it would have read had it been first. */
	ino_lock(cm->ino);
	moved = !e->have_attr || e->attr.dv != a->dv;
	ino_unlock(cm->ino);
	if (moved)
		nt_inval_inode(nt, ino, 0, 0);
	return true;
}

/*
 * Sibling advice. A warm cat, cp or tar of a directory of small files
 * (chunks cached, page cache dropped) still read each file's chunk file
 * from the disk in turn, at its open. So the open-time push of every
 * SIB_ADVISE-th entry of a listing also asks the kernel to read ahead
 * the chunk files of the next 2 * SIB_ADVISE small files
 * (fetch_advise(), counted in chunks_advised): their disk reads overlap
 * the walker's opens, and each file is advised about twice. On the
 * worker, after the open is answered.
 */
#define SIB_ADVISE 16

static void
sibling_advise(struct cm *cm, const struct fid *fid)
{
	char name[PROTO_NAME_MAX + 1];
	struct vc_dir *d;
	struct fid pfid;
	long idx;

	if (ino_name_of(cm->ino, fid, &pfid, name, sizeof(name)) < 0 ||
	    mcache_dir(cm->mc, &pfid, &d) < 0)
		return;
	idx = vc_dir_find(d, name, strlen(name));
	for (size_t i = (size_t)idx + 1, n = 0;
	     idx >= 0 && idx % SIB_ADVISE == 0 && i < d->n &&
	     n < 2 * SIB_ADVISE;
	     i++) {
		const struct vc_dirent *de = vc_dir_ent(d, i);
		struct proto_attr a;

		if (de->type != PROTO_T_FILE)
			continue;
		n++;
		if (mcache_attr(cm->mc, &de->fid, &a) == 0 && a.size > 0 &&
		    a.size <= cm->chunk_size && !(a.dv & CM_DV_LOCAL))
			(void)fetch_advise(cm->fetch, &de->fid, a.dv, a.size, 0,
					   0);
	}
	vc_dir_put(d);
}

/*
 * The truncation of an O_TRUNC open. op_open() waited for the file's
 * logged store before it looked at anything (fmut_drain_first()), but
 * another handle's close may have logged one since: then, on a FUSE
 * worker, wait for that one too rather than cut chunks its record still
 * has to send (fmut_logged_try(), as for writes). On the loop (a parked
 * open) it cannot wait: as before.
 */
struct open_trunc {
	struct cm *cm;
	const struct fid *fid;
	uint64_t *need;
	const struct wb_kill *kill;
};

static int
open_trunc_try(void *arg, unsigned flags)
{
	struct open_trunc *t = arg;

	return wb_truncate_ex(t->cm->wb, t->fid, 0, t->need, t->kill, flags);
}

static int
open_truncate(struct cm *cm, struct park *p, const struct fid *fid,
	      uint64_t *need, const struct wb_kill *kill)
{
	struct open_trunc t = {cm, fid, need, kill};

	return fmut_logged_try(cm, fid, 0, p->tries == 0, open_trunc_try, &t);
}

/* Valid replies: fuse_reply_open, fuse_reply_err. */
static int
try_open(struct cm *cm, struct park *p)
{
	struct proto_attr a;
	struct cm_file *f;
	struct ino_ent *e;
	struct fid fid;
	bool fresh = false, pushed = false;
	int kill_later = 0;
	bool trunc_later = false, trunc_mark = false;

	if (ino_fid(cm->ino, p->ino, &fid) < 0) {
		fuse_reply_err(p->req, ESTALE);
		return 0;
	}
	if (mcache_attr(cm->mc, &fid, &a) < 0)
		return need(p, NEED_ATTR, &fid);
	if (a.type == PROTO_T_DIR) {
		fuse_reply_err(p->req, EISDIR);
		return 0;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		fuse_reply_err(p->req, ENOMEM);
		return 0;
	}
	pthread_mutex_init(&f->mu, NULL);
	f->fid = fid;
	ino_lock(cm->ino);
	e = ino_get_locked(cm->ino, p->ino);
	if (e) {
		/* While a handle writes past the page cache, this one
		 * does too (fuse_i.h, fops_dio_grant_locked()). */
		bool writes = (p->fi.flags & O_ACCMODE) != O_RDONLY ||
			      (p->fi.flags & O_TRUNC);

		p->fi.direct_io = fops_dio_grant_locked(e, false, writes);
		f->dio = p->fi.direct_io && writes;
		e->nopen++;
		/* Keep the page cache when the content is the one the
		 * kernel cached at the last open: events invalidate it
		 * precisely when it changes. */
		p->fi.keep_cache = e->opened && e->open_dv == a.dv &&
				   !p->fi.direct_io;
		fresh = !e->opened && !e->pages_dropped;
		e->opened = true;
		e->open_dv = a.dv;
		f->e = e;
	}
	ino_unlock(cm->ino);
	if (!e) {
		pthread_mutex_destroy(&f->mu);
		free(f);
		fuse_reply_err(p->req, ESTALE);
		return 0;
	}
	/* O_TRUNC comes with the open (atomic_o_trunc), even O_RDONLY. */
	if ((p->fi.flags & O_ACCMODE) != O_RDONLY || (p->fi.flags & O_TRUNC)) {
		char name[PROTO_NAME_MAX + 1];
		struct fid pfid;
		bool named = ino_name_of(cm->ino, &fid, &pfid, name,
					 sizeof(name)) == 0;
		int rc = wb_open_write(cm->wb, &a, named ? &pfid : NULL,
				       named ? name : NULL);
		uint64_t need = 0;

		struct wb_kill k = {
			.how = p->kill && (p->fi.flags & O_TRUNC) &&
					       (a.mode & (S_ISUID | S_ISGID))
				       ? fops_kill_how(p->req, &a)
				       : 0,
			.mode = a.mode & 07777};
		bool kill = wb_killed_mode(k.mode, k.how) != k.mode;

		if (rc == 0 && (p->fi.flags & O_TRUNC) &&
		    (a.size > 0 || kill)) {
			/* Local, like ftruncate: stored at close. (An
			 * empty file too when set-ID bits go: the write
			 * state then carries them.) The bits go first,
			 * saved with the state before the truncation
			 * (wb_truncate()); if the write state cannot take
			 * them (its last store is logged or replayed), a
			 * setattr of their own goes first, and the
			 * truncation after it, before the open is
			 * answered (fmut_kill_open()). Reads that
			 * come back short meanwhile wait until the
			 * kernel has the new size (fuse_i.h,
			 * fops_trunc_begin()). */
			fops_trunc_begin(p->req, p->ino);
			trunc_mark = true;
			rc = open_truncate(cm, p, &fid, &need, kill ? &k : NULL);
			if (rc == -EPERM) {
				kill_later = k.how;
				trunc_later = a.size > 0;
				rc = 0;
			} else if (rc < 0) {
				wb_release_write(cm->wb, &fid);
			} else if (kill && cm->loop.kops.inval_inode) {
				/* The kernel keeps the old mode until it
				 * asks again. */
				cm->loop.kops.inval_inode(cm->loop.kops.arg,
							  p->ino, -1, 0);
			}
		}

		if (rc < 0) {
			fops_file_release(cm, f);
			pthread_mutex_destroy(&f->mu);
			free(f);
			fuse_reply_err(p->req, -rc);
			if (trunc_mark)
				fops_trunc_end(p->ino);
			return 0;
		}
		f->writer = true;
		/* Reads must see our writes: no stale pages from before. */
		p->fi.keep_cache = p->fi.keep_cache &&
				   !wb_dirty(cm->wb, &fid) &&
				   !(p->fi.flags & O_TRUNC);
	}
	/* A reader's close has nothing to store and cairnd keeps no POSIX
	 * locks (the kernel does): no FLUSH round trip on its close
	 * (FOPEN_NOFLUSH). Writers keep theirs: close reports the store. */
	p->fi.noflush = !f->writer;
	if (fresh && !f->writer && !p->fi.direct_io && p->tries == 0 &&
	    a.type == PROTO_T_FILE &&
	    a.size > 0 && a.size <= OPEN_PUSH_MAX && a.size <= cm->chunk_size &&
	    !(a.dv & CM_DV_LOCAL) && !wb_active(cm->wb, &fid) &&
	    open_push(cm, p->ino, e, &a))
		p->fi.keep_cache = pushed = true;
	p->fi.fh = (uintptr_t)f;
	if (kill_later) {
		/* Marks the truncation itself, until it answers. */
		fmut_kill_open(cm, p->req, p->ino, &p->fi, kill_later,
			       trunc_later);
		if (trunc_mark)
			fops_trunc_end(p->ino);
		return 0;
	}
	if (fuse_reply_open(p->req, &p->fi) != 0) {
		if (f->writer)
			wb_release_write(cm->wb, &fid);
		fops_file_release(cm, f);
		pthread_mutex_destroy(&f->mu);
		free(f);
		if (trunc_mark)
			fops_trunc_end(p->ino);
		return 0;
	}
	if (trunc_mark)
		fops_trunc_end(p->ino);
	if (pushed && cm->cfg.readahead_max)
		sibling_advise(cm, &fid);
	return 0;
}

static void
op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct cm *cm = fops_req_cm(req);
	struct park p = {.cm = cm, .req = req, .op = P_OPEN, .ino = ino,
			 .fi = *fi, .kill = fops_kill_suidgid(FOPS_KILL_OPEN)};

	fops_count(cm, CM_R_OPEN);
	fetch_kernel_readahead(cm->fetch, KERNEL_RA_KB);
	if (((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) &&
	    fops_read_only(cm)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (fi->flags & O_TRUNC) {
		/* Before the attributes are looked at: a refused store of
		 * the file drops them and its write state, and this open
		 * then starts from the server's version. */
		struct fid fid;

		if (ino_fid(cm->ino, ino, &fid) == 0)
			fmut_drain_first(cm, &fid, 0);
	}
	run_or_park(cm, &p);
}

/*
 * Sequential readahead per open file: the window starts at 2 chunks when a
 * reader goes forward, doubles each time it enters a new chunk, up to
 * cfg.readahead_max; a jump resets it. Requests go out when the reader
 * has used half of what was asked ahead.
 */
static void
file_readahead(struct cm *cm, struct cm_file *f, uint64_t dv, uint64_t fsize,
	  uint64_t off, size_t len)
{
	uint64_t cs = cm->chunk_size, c1 = (off + len - 1) / cs;
	uint64_t first = 0, last = 0;
	bool go = false, seq;

	if (cm->cfg.readahead_max == 0)
		return;
	pthread_mutex_lock(&f->mu);
	/* Kernel readahead sends several reads at once, slightly out of
	 * order: anything near the last end counts as sequential. */
	seq = off + 4 * cs >= f->next_off && off <= f->next_off + 4 * cs;
	if (f->ra_dv != dv) {
		f->ra_dv = dv;
		f->ra_next = 0;
		f->window = 0;
	}
	if (seq) {
		if (f->window == 0)
			f->window = 2;
		else if (c1 > f->last_chunk)
			f->window = f->window * 2 > cm->cfg.readahead_max
					    ? cm->cfg.readahead_max
					    : f->window * 2;
		if (c1 + 1 + f->window / 2 >= f->ra_next) {
			first = c1 + 1 > f->ra_next ? c1 + 1 : f->ra_next;
			last = c1 + f->window;
			if (first <= last && first * cs < fsize) {
				go = true;
				f->ra_next = last + 1;
			}
		}
	} else {
		f->window = 0;
	}
	if (c1 > f->last_chunk || !seq)
		f->last_chunk = c1;
	if (off + len > f->next_off || !seq)
		f->next_off = off + len;
	pthread_mutex_unlock(&f->mu);
	if (go && fetch_advise(cm->fetch, &f->fid, dv, fsize, first, last))
		fetch_prefetch(cm->fetch, &f->fid, dv, fsize, first, last);
}

/*
 * Sibling prefetch. A cold cat, cp or tar of a tree of small files waits
 * for one chunk GET per file, one after the other. So a read that misses
 * at the start of a file also asks for the whole of the next SIB_MAX
 * small files (one chunk at most) of its directory, in listing order
 * (the order readdir gave the walker); fetch_prefetch() skips what is
 * cached or in flight, so a sequential walk keeps SIB_MAX files ahead.
 */
#define SIB_MAX 16

struct sib_job {
	struct cm_job job;
	struct cm *cm;
	struct fid fid;
};

static void
sib_run(struct cm_loop *loop, struct cm_job *job)
{
	struct sib_job *k = container_of(job, struct sib_job, job);
	struct cm *cm = k->cm;
	char name[PROTO_NAME_MAX + 1];
	struct vc_dir *d;
	struct fid pfid;
	long idx;

	if (cm_stopping(loop) || !cm->mf || !cm->fetch || cm_offline(cm) ||
	    ino_name_of(cm->ino, &k->fid, &pfid, name, sizeof(name)) < 0 ||
	    mcache_dir(cm->mc, &pfid, &d) < 0)
		goto out;
	idx = vc_dir_find(d, name, strlen(name));
	for (size_t i = idx < 0 ? d->n : (size_t)idx + 1, n = 0;
	     i < d->n && n < SIB_MAX; i++) {
		const struct vc_dirent *de = vc_dir_ent(d, i);
		struct proto_attr a;

		if (de->type != PROTO_T_FILE)
			continue;
		n++;
		/* Not a file with local changes: its reads go through its
		 * write state, and a local DV is not the server's. */
		if (mcache_attr(cm->mc, &de->fid, &a) == 0 && a.size > 0 &&
		    a.size <= cm->chunk_size && !(a.dv & CM_DV_LOCAL) &&
		    !wb_active(cm->wb, &de->fid))
			fetch_prefetch(cm->fetch, &de->fid, a.dv, a.size, 0, 0);
	}
	vc_dir_put(d);
out:
	free(k);
}

static void
sibling_prefetch(struct cm *cm, const struct fid *fid)
{
	struct sib_job *k;

	if (cm->cfg.readahead_max == 0 || cm_offline(cm) ||
	    !(k = calloc(1, sizeof(*k))))
		return;
	k->cm = cm;
	k->fid = *fid;
	k->job.run = sib_run;
	cm_post(&cm->loop, &k->job);
}

/*
 * Read @size bytes at @off of the open file @f (inode @ino) for @req.
 * @may_hold: a short answer while a truncation of the inode is under way
 * or was just answered waits (fops_read_hold(), fuse_i.h); false once it
 * has waited. Any thread.
 */
static void
read_file(struct cm *cm, fuse_req_t req, fuse_ino_t ino, struct cm_file *f,
	  uint64_t off, size_t size, bool may_hold)
{
	uint64_t dv = 0, fsize = 0;
	bool have;
	size_t len;
	char *buf;
	int rc;

	if (wb_active(cm->wb, &f->fid)) {
		fmut_wio_read(cm, req, ino, f, off, size, may_hold);
		return;
	}
	ino_lock(cm->ino);
	have = f->e->have_attr;
	if (have) {
		dv = f->e->attr.dv;
		fsize = f->e->attr.size;
	}
	ino_unlock(cm->ino);
	if (!have)
		goto park;
	if (off >= fsize) {
		if (size && may_hold && fops_trunc_hold(ino))
			fops_read_hold(cm, req, ino, f, off, size);
		else
			fuse_reply_buf(req, NULL, 0);
		return;
	}
	len = fsize - off < size ? (size_t)(fsize - off) : size;
	if (len < size && may_hold && fops_trunc_hold(ino)) {
		fops_read_hold(cm, req, ino, f, off, size);
		return;
	}
	file_readahead(cm, f, dv, fsize, off, len);
	buf = fops_tbuf_get(len);
	if (buf && fetch_read_cached(cm->fetch, &f->fid, dv, off, buf, len) ==
			   (ssize_t)len) {
		fuse_reply_buf(req, buf, len);
		return;
	}
	if (off == 0 && fsize <= cm->chunk_size)
		sibling_prefetch(cm, &f->fid);
park:
	rc = fetch_read_park(cm->fetch, &f->fid, off, size, req,
			     fops_read_reply);
	if (rc < 0)
		fuse_reply_err(req, -rc);
}

/* A READ held by fops_read_hold(), on the loop. */
struct held_read {
	struct cm_job job;
	struct cm *cm;
	fuse_req_t req;
	fuse_ino_t ino;
	struct cm_file *f;
	uint64_t off;
	size_t size;
	uint64_t since_ms;
};

/* How often a held READ looks again. */
#define HOLD_STEP_MS 5

static void
held_read_run(struct cm_loop *loop, struct cm_job *job)
{
	struct held_read *h = container_of(job, struct held_read, job);

	/* The file stays open while its READ is out: the kernel holds it. */
	if (!cm_stopping(loop) && fops_trunc_hold(h->ino) &&
	    util_now_ms() - h->since_ms < FOPS_HOLD_MAX_MS &&
	    cm_post_after(loop, &h->job, HOLD_STEP_MS) == 0)
		return;
	read_file(h->cm, h->req, h->ino, h->f, h->off, h->size, false);
	free(h);
}

void
fops_read_hold(struct cm *cm, fuse_req_t req, fuse_ino_t ino,
	       struct cm_file *f, uint64_t off, size_t size)
{
	struct held_read *h = calloc(1, sizeof(*h));

	if (!h) {
		read_file(cm, req, ino, f, off, size, false);
		return;
	}
	CM_STAT_INC(&cm->st, reads_held);
	h->cm = cm;
	h->req = req;
	h->ino = ino;
	h->f = f;
	h->off = off;
	h->size = size;
	h->since_ms = util_now_ms();
	h->job.run = held_read_run;
	cm_post(&cm->loop, &h->job);
}

/* Valid replies: fuse_reply_buf, fuse_reply_err (possibly from the loop). */
static void
op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	struct fuse_file_info *fi)
{
	struct cm *cm = fops_req_cm(req);
	struct cm_file *f = (struct cm_file *)(uintptr_t)fi->fh;

	fops_count(cm, CM_R_READ);
	if (!f || off < 0) {
		fuse_reply_err(req, EBADF);
		return;
	}
	read_file(cm, req, ino, f, (uint64_t)off, size, true);
}

/* Valid replies: fuse_reply_err. */
static void
op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct cm *cm = fops_req_cm(req);
	struct cm_file *f = (struct cm_file *)(uintptr_t)fi->fh;

	(void)ino;
	fops_count(cm, CM_R_RELEASE);
	if (f) {
		if (f->writer) {
			/* Data not stored by a flush (it failed) stays
			 * dirty and is stored later (wb_resume). */
			wb_release_write(cm->wb, &f->fid);
		}
		fops_file_release(cm, f);
		pthread_mutex_destroy(&f->mu);
		free(f);
	}
	fuse_reply_err(req, 0);
}

/* log-sync=close (cairnd(8) "WRITE MODES"): while changes are logged
 * (writeback, disconnected), close(2) and fsync(2) mean durable in the
 * local log, and writeback's metadata ops were appended unsynced
 * (replay.c, oreq_run()). A store at close synced the journal and
 * everything before it (then this returns at once, no syscall); a close
 * with nothing to store, or an fsync answered from the log, syncs it
 * here. log-sync=op: every op was synced when it returned, nothing to
 * do. @return 0 or -EIO. */
static int
sync_logged(struct cm *cm)
{
	int rc;

	if (!replay_log_sync_close(cm->replay) || !cm->conn ||
	    !conn_logs_changes(cm->conn))
		return 0;
	rc = rlog_sync(cm->rlog);
	if (rc)
		log_err(LOG_FUSE, "cannot sync the replay log: %s",
			strerror(-rc));
	return rc ? -EIO : 0;
}

/* A flush or fsync waiting for wb_flush(), which may call back from the
 * loop thread: there fops_req_cm() does not know the request's cm (a
 * namespace mount's requests carry the namespace, not a volume's cm). */
struct flush_wait {
	fuse_req_t req;
	struct cm *cm;
};

static void
flush_reply(void *arg, int err)
{
	struct flush_wait *w = arg;

	if (!err)
		err = sync_logged(w->cm);
	fuse_reply_err(w->req, err == -ESTALE ? EIO : -err);
	free(w);
}

/* wb_flush(@fid), then flush_reply(). */
static void
flush_then_reply(struct cm *cm, fuse_req_t req, const struct fid *fid)
{
	struct flush_wait *w = malloc(sizeof(*w));

	if (!w) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	w->req = req;
	w->cm = cm;
	wb_flush(cm->wb, fid, flush_reply, w);
}

/* Valid replies: fuse_reply_err. close(2) waits for this, so a store
 * that fails is reported here (AFS: store on close). */
static void
op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct cm *cm = fops_req_cm(req);
	struct cm_file *f = (struct cm_file *)(uintptr_t)fi->fh;

	(void)ino;
	fops_count(cm, CM_R_FLUSH);
	if (!f || !f->writer) {
		fuse_reply_err(req, -sync_logged(cm));
		return;
	}
	flush_then_reply(cm, req, &f->fid);
}

/* An fsync in writeback mode: the store is logged, now the server. */
struct fsync_req {
	fuse_req_t req;
	struct cm *cm;
	struct fid fid;
};

static void
fsync_synced(void *arg, int err, uint64_t records)
{
	struct fsync_req *fr = arg;

	(void)records;
	fuse_reply_err(fr->req, err == -ESHUTDOWN ? EIO : -err);
	free(fr);
}

static void
fsync_flushed(void *arg, int err)
{
	struct fsync_req *fr = arg;

	if (!err)
		err = replay_sync(fr->cm->replay, &fr->fid, fsync_synced, fr);
	if (err) {
		fuse_reply_err(fr->req, err == -ESTALE ? EIO : -err);
		free(fr);
	}
}

/* Writeback and connected: fsync waits for the server (doc/cm.md "Write
 * modes"); disconnected it returns once the change is in the local log,
 * as in disconnected operation. */
static struct fsync_req *
fsync_waits(struct cm *cm, fuse_req_t req, const struct fid *fid)
{
	struct fsync_req *fr;

	if (!cm->conn || !conn_writeback(cm->conn) || conn_offline(cm->conn))
		return NULL;
	fr = calloc(1, sizeof(*fr));
	if (fr) {
		fr->req = req;
		fr->cm = cm;
		fr->fid = *fid;
	}
	return fr;
}

/* Valid replies: fuse_reply_err. Connected: the server has the data (in
 * writeback mode too: it waits for the drain). */
static void
op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
	 struct fuse_file_info *fi)
{
	struct cm *cm = fops_req_cm(req);
	struct fsync_req *fr;
	struct fid fid;

	(void)datasync;
	(void)fi;
	if (ino_fid(cm->ino, ino, &fid) < 0) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	fr = fsync_waits(cm, req, &fid);
	if (fr)
		wb_flush(cm->wb, &fid, fsync_flushed, fr);
	else
		flush_then_reply(cm, req, &fid);
}

/* Valid replies: fuse_reply_err. Directory changes are on the server
 * when their call returns; in writeback mode this waits for them. */
static void
op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
	    struct fuse_file_info *fi)
{
	struct cm *cm = fops_req_cm(req);
	struct fsync_req *fr;
	struct fid fid;

	(void)datasync;
	(void)fi;
	if (ino_fid(cm->ino, ino, &fid) < 0 ||
	    !(fr = fsync_waits(cm, req, &fid))) {
		fuse_reply_err(req, -sync_logged(cm));
		return;
	}
	fsync_flushed(fr, 0);
}

/* --- symlinks --- */

/* Valid replies: fuse_reply_readlink, fuse_reply_err. */
static int
try_readlink(struct cm *cm, struct park *p)
{
	struct fid fid;
	char *target;

	if (ino_fid(cm->ino, p->ino, &fid) < 0) {
		fuse_reply_err(p->req, ESTALE);
		return 0;
	}
	if (vc_get_link(cm->vc, &fid, &target) < 0)
		return need(p, NEED_LINK, &fid);
	fuse_reply_readlink(p->req, target);
	free(target);
	return 0;
}

static void
op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct cm *cm = fops_req_cm(req);
	struct park p = {.cm = cm, .req = req, .op = P_READLINK, .ino = ino};

	fops_count(cm, CM_R_READLINK);
	run_or_park(cm, &p);
}

/* --- xattrs --- */

static void
reply_bytes(fuse_req_t req, size_t size, const void *v, size_t len)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, v, len);
}

/*
 * Valid replies: fuse_reply_buf, fuse_reply_xattr (size query),
 * fuse_reply_err (ERANGE, ENODATA, ENOTSUP). The root answers the virtual
 * "cairn.stats" with the counters as text (doc/cm.md "Counters").
 */
static int
try_xattr(struct cm *cm, struct park *p)
{
	struct proto_xattr *x = NULL;
	struct proto_attr a;
	struct fid fid;
	int64_t stamp;
	size_t n = 0;

	if (p->op == P_GETXATTR && p->ino == INO_ROOT &&
	    !strcmp(p->name, STATS_XATTR)) {
		char buf[4096];
		size_t len = cm_stats_format(cm, buf, sizeof(buf));

		/* The counters move between a caller's size query and its
		 * read (getfattr rounds the size up to 1 KiB): a text that
		 * grew past the buffer was ERANGE. Ask for room to grow. */
		if (p->size == 0)
			fuse_reply_xattr(p->req, len + STATS_SLACK);
		else
			reply_bytes(p->req, p->size, buf, len);
		return 0;
	}
	if (p->op == P_GETXATTR && strncmp(p->name, "user.", 5)) {
		/* The server stores the user namespace only (a setxattr of
		 * any other is refused with ENOTSUP), so the others are not
		 * supported here either: no fetch, and ENOTSUP rather than
		 * ENODATA, because GNU ls remembers per device that a file
		 * system does not support security contexts and ACLs and
		 * stops asking (ENODATA made it ask twice a file, each a
		 * FUSE round trip the kernel cannot answer itself). */
		fuse_reply_err(p->req, ENOTSUP);
		return 0;
	}
	if (ino_fid(cm->ino, p->ino, &fid) < 0) {
		fuse_reply_err(p->req, ESTALE);
		return 0;
	}
	if (mcache_attr(cm->mc, &fid, &a) < 0)
		return need(p, NEED_ATTR, &fid);
	if (vc_get_xattrs(cm->vc, &fid, &stamp, &x, &n) < 0)
		return need(p, NEED_XATTR, &fid);
	if (stamp != a.ctime_ns) {
		proto_xattrs_free(x, n);
		return need(p, NEED_XATTR, &fid);
	}
	if (p->op == P_GETXATTR) {
		size_t i;

		for (i = 0; i < n; i++)
			if (!strcmp(x[i].name, p->name))
				break;
		if (i == n)
			fuse_reply_err(p->req, ENODATA);
		else
			reply_bytes(p->req, p->size, x[i].value, x[i].len);
	} else {
		size_t total = 0, off = 0;
		char *list;

		for (size_t i = 0; i < n; i++)
			total += strlen(x[i].name) + 1;
		list = malloc(total ? total : 1);
		if (!list) {
			fuse_reply_err(p->req, ENOMEM);
		} else {
			for (size_t i = 0; i < n; i++) {
				size_t l = strlen(x[i].name) + 1;

				memcpy(list + off, x[i].name, l);
				off += l;
			}
			reply_bytes(p->req, p->size, list, total);
			free(list);
		}
	}
	proto_xattrs_free(x, n);
	return 0;
}

static void
op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct cm *cm = fops_req_cm(req);
	struct park p = {.cm = cm, .req = req, .op = P_GETXATTR, .ino = ino,
			 .name = (char *)name, .size = size};

	fops_count(cm, CM_R_XATTR);
	run_or_park(cm, &p);
}

static void
op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct cm *cm = fops_req_cm(req);
	struct park p = {.cm = cm, .req = req, .op = P_LISTXATTR, .ino = ino,
			 .size = size};

	fops_count(cm, CM_R_XATTR);
	run_or_park(cm, &p);
}

/* --- the rest --- */

/*
 * Valid replies: fuse_reply_statfs. Blocks of 4 KiB: the volume's quota
 * when it has one, else what it uses plus what the cache has free (the
 * most a disconnected client could add).
 */
static void
op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct cm *cm = fops_req_cm(req);
	struct proto_volinfo vi;
	struct cs_stats cs;
	struct statvfs sv;
	uint64_t bs = 4096, total, used, ftotal, fused;

	(void)ino;
	fops_count(cm, CM_R_STATFS);
	memset(&vi, 0, sizeof(vi));
	cm_volinfo(cm, &vi);
	cs_get_stats(cm->cs, &cs);
	used = vi.bytes_used;
	total = vi.bytes_limit ? vi.bytes_limit
			       : used + (cs.bytes_limit > cs.bytes_used
						 ? cs.bytes_limit - cs.bytes_used
						 : 0);
	if (total < used)
		total = used;
	fused = vi.files_used;
	ftotal = vi.files_limit ? vi.files_limit : fused + 1000000;
	if (ftotal < fused)
		ftotal = fused;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = bs;
	sv.f_frsize = bs;
	sv.f_blocks = (fsblkcnt_t)((total + bs - 1) / bs);
	sv.f_bfree = (fsblkcnt_t)((total - used) / bs);
	sv.f_bavail = sv.f_bfree;
	sv.f_files = (fsfilcnt_t)ftotal;
	sv.f_ffree = (fsfilcnt_t)(ftotal - fused);
	sv.f_favail = sv.f_ffree;
	sv.f_namemax = PROTO_NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

/* Valid replies: fuse_reply_err. With default_permissions the kernel does
 * the checks; this only refuses writing. */
static void
op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	(void)ino;
	fops_count(fops_req_cm(req), CM_R_ACCESS);
	fuse_reply_err(req, (mask & W_OK) && fops_read_only(fops_req_cm(req)) ? EROFS
								      : 0);
}

static void
op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct cm *cm = userdata;

	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)
		conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	/* Set-ID bits (issue #14). libfuse 3.14 puts FUSE_HANDLE_KILLPRIV
	 * (v1) in want by default but never sends it to the kernel; v1
	 * would leave clearing them on write, truncate and chown to us
	 * without telling which caller may keep them (CAP_FSETID), and
	 * the kernel would still ask for security.capability at most
	 * writes. Out of want with it. With KILLPRIV_V2 (fuse_common.c adds it
	 * to the INIT reply) the kernel flags the requests that must clear
	 * them, and, the file system being marked SB_NOSEC, asks for
	 * security.capability once per file until its attributes are
	 * refreshed rather than at every write. Without it the kernel
	 * clears the bits itself (a getattr and a chmod). */
	conn->want &= ~(unsigned)FUSE_CAP_HANDLE_KILLPRIV;
	bool v2 = fops_init_killpriv(true);
	/* max_readahead stays what the kernel offers (it can only be
	 * lowered here); our own readahead fetches further ahead. */
	(void)cm;
	log_info(LOG_FUSE,
		 "fuse protocol %u.%u, max_readahead %u, max_write %u, "
		 "max_read %u, want 0x%x, killpriv_v2 %s",
		 conn->proto_major, conn->proto_minor, conn->max_readahead,
		 conn->max_write, conn->max_read, conn->want,
		 v2 ? "yes" : "no (the kernel clears set-ID bits)");
}

static int
try_op(struct cm *cm, struct park *p)
{
	switch (p->op) {
	case P_LOOKUP:
		return try_lookup(cm, p);
	case P_GETATTR:
		return try_getattr(cm, p);
	case P_OPENDIR:
		return try_opendir(cm, p);
	case P_READDIR:
		return try_readdir(cm, p);
	case P_OPEN:
		return try_open(cm, p);
	case P_READLINK:
		return try_readlink(cm, p);
	case P_GETXATTR:
	case P_LISTXATTR:
		return try_xattr(cm, p);
	}
	fuse_reply_err(p->req, ENOSYS);
	return 0;
}

const struct fuse_lowlevel_ops fops_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = fmut_setattr,
	.readlink = op_readlink,
	.mknod = fmut_mknod,
	.mkdir = fmut_mkdir,
	.unlink = fmut_unlink,
	.rmdir = fmut_rmdir,
	.symlink = fmut_symlink,
	.rename = fmut_rename,
	.link = fmut_link,
	.open = op_open,
	.read = op_read,
	.write = fmut_write,
	.flush = op_flush,
	.fsync = op_fsync,
	.fsyncdir = op_fsyncdir,
	.release = op_release,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.statfs = op_statfs,
	.setxattr = fmut_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = fmut_removexattr,
	.access = op_access,
	.create = fmut_create,
	.fallocate = fmut_fallocate,
};

/* --- the notifier thread --- */

/* One queued notification: an inode or entry invalidation, or a barrier
 * (@job set: posted to the loop when the thread reaches it, so everything
 * queued before it was written by then). */
struct note {
	TAILQ_ENTRY(note) link;
	struct cm_job *job;
	bool entry;
	uint64_t ino;
	int64_t off, len;
	size_t namelen;
	char name[];
};
TAILQ_HEAD(noteq, note);

struct fops_notifier {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct noteq q;	  /* protected by mu */
	bool stop;	  /* protected by mu */
	pthread_t thread;
	struct fuse_session *se;
	struct cm_loop *loop; /* where barriers' jobs go */
};

/* A worker: store @len bytes at offset 0 of @ino in the kernel's page
 * cache, at once (not queued: the caller answers an open after it).
 * @return 0 or -errno. */
static int
nt_store(void *arg, fuse_ino_t ino, void *buf, size_t len)
{
	struct fops_notifier *nt = arg;
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(len);

	bv.buf[0].mem = buf;
	return fuse_lowlevel_notify_store(nt->se, ino, 0, &bv, 0);
}

static void
nt_push(struct fops_notifier *nt, struct note *n)
{
	pthread_mutex_lock(&nt->mu);
	if (nt->stop) {
		pthread_mutex_unlock(&nt->mu);
		/* Not reached in practice: the hooks are unplugged before
		 * the stop, and only the loop calls them. A barrier's job
		 * must still run once; nothing is left to wait for. */
		if (n->job)
			n->job->run(nt->loop, n->job);
		free(n);
		return;
	}
	TAILQ_INSERT_TAIL(&nt->q, n, link);
	pthread_cond_signal(&nt->cv);
	pthread_mutex_unlock(&nt->mu);
}

static void
nt_inval_inode(void *arg, uint64_t ino, int64_t off, int64_t len)
{
	struct fops_notifier *nt = arg;
	struct note *n = calloc(1, sizeof(*n));

	if (!n)
		return;
	n->ino = ino;
	n->off = off;
	n->len = len;
	nt_push(nt, n);
}

static void
nt_inval_entry(void *arg, uint64_t parent, const char *name, size_t len)
{
	struct fops_notifier *nt = arg;
	struct note *n = calloc(1, sizeof(*n) + len + 1);

	if (!n)
		return;
	n->entry = true;
	n->ino = parent;
	n->namelen = len;
	memcpy(n->name, name, len);
	nt_push(nt, n);
}

static void
nt_barrier(void *arg, struct cm_job *job)
{
	struct fops_notifier *nt = arg;
	struct note *n = calloc(1, sizeof(*n));

	if (!n) {
		/* The order of the queue cannot be kept: the answer may beat
		 * the invalidations, as it did before barriers existed. */
		cm_post(nt->loop, job);
		return;
	}
	n->job = job;
	nt_push(nt, n);
}

static void *
nt_main(void *arg)
{
	struct fops_notifier *nt = arg;

	pthread_mutex_lock(&nt->mu);
	for (;;) {
		struct note *n;
		int rc;

		while (!nt->stop && TAILQ_EMPTY(&nt->q))
			pthread_cond_wait(&nt->cv, &nt->mu);
		if (nt->stop)
			break;
		n = TAILQ_FIRST(&nt->q);
		TAILQ_REMOVE(&nt->q, n, link);
		pthread_mutex_unlock(&nt->mu);
		if (n->job) {
			/* The writes before it returned, so the kernel has
			 * applied them; cm_post() takes only the leaf qlock,
			 * and mu is not held. */
			cm_post(nt->loop, n->job);
			free(n);
			pthread_mutex_lock(&nt->mu);
			continue;
		}
		if (n->entry)
			rc = fuse_lowlevel_notify_inval_entry(
				nt->se, n->ino, n->name, n->namelen);
		else
			rc = fuse_lowlevel_notify_inval_inode(nt->se, n->ino,
							      n->off, n->len);
		/* -ENOENT: the kernel had already dropped it. */
		if (rc < 0 && rc != -ENOENT)
			log_debug(LOG_FUSE, "cannot invalidate inode %llu: %s",
				  (unsigned long long)n->ino, strerror(-rc));
		free(n);
		pthread_mutex_lock(&nt->mu);
	}
	pthread_mutex_unlock(&nt->mu);
	return NULL;
}

struct fops_notifier *
fops_notifier_start(struct cm_loop *loop, struct fuse_session *se)
{
	struct fops_notifier *nt = calloc(1, sizeof(*nt));
	int rc;

	if (!nt)
		return NULL;
	pthread_mutex_init(&nt->mu, NULL);
	pthread_cond_init(&nt->cv, NULL);
	TAILQ_INIT(&nt->q);
	nt->se = se;
	nt->loop = loop;
	rc = pthread_create(&nt->thread, NULL, nt_main, nt);
	if (rc) {
		pthread_cond_destroy(&nt->cv);
		pthread_mutex_destroy(&nt->mu);
		free(nt);
		errno = rc;
		return NULL;
	}
	loop->kops.inval_inode = nt_inval_inode;
	loop->kops.inval_entry = nt_inval_entry;
	loop->kops.barrier = nt_barrier;
	loop->kops.arg = nt;
	return nt;
}

void
fops_notifier_stop(struct fops_notifier *nt)
{
	struct cm_loop *loop;
	struct note *n;

	if (!nt)
		return;
	loop = nt->loop;
	loop->kops.inval_inode = NULL;
	loop->kops.inval_entry = NULL;
	loop->kops.barrier = NULL;
	loop->kops.arg = NULL;
	pthread_mutex_lock(&nt->mu);
	nt->stop = true;
	pthread_cond_signal(&nt->cv);
	pthread_mutex_unlock(&nt->mu);
	pthread_join(nt->thread, NULL);
	while ((n = TAILQ_FIRST(&nt->q))) {
		TAILQ_REMOVE(&nt->q, n, link);
		/* The loop is gone (cm_loop_stop() ran): a barrier's job runs
		 * here, with cm_stopping() true, as cm_loop_stop() runs
		 * late jobs, so its control call is answered and freed. */
		if (n->job)
			n->job->run(loop, n->job);
		free(n);
	}
	pthread_cond_destroy(&nt->cv);
	pthread_mutex_destroy(&nt->mu);
	free(nt);
	/* Barriers the thread reached after cm_loop_stop() had drained the
	 * queue were posted into a closed queue: run them now, when nothing
	 * can post any more. */
	cm_run_late_jobs(loop);
}
