/*
 * pin.c - the pinned set of cairnd and the jobs that fill it (see pin.h).
 *
 * It decides what is pinned and makes sure it is cached; it does not fetch
 * anything itself (mfetch.c and fetch.c do) and never talks to FUSE. All
 * state belongs to the loop thread.
 *
 * A job runs in two phases. The scan walks the tree from the pin's object
 * with an explicit stack, taking what the metadata cache holds and asking
 * mfetch.c for the rest (attributes, listings, symlink targets, xattrs; at
 * most SCAN_PARALLEL requests at once), and collects the objects and files
 * of the set; nothing is pinned yet. Then a foreground pin checks the
 * space, records the pin in the tdb, adds the objects to the set (pinning
 * the chunks already cached), and the fetch phase asks fetch.c for every
 * missing chunk, max_parallel at a time, reporting progress at most ten
 * times a second (ctl_pin.c turns it into PROGRESS frames). Callbacks may
 * come synchronously (mfetch.c answers at once on shutdown or ENOMEM), so
 * the pumps guard against re-entry.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "chunkstore/cs.h"
#include "cm/cm.h"
#include "cm/ctl.h"
#include "cm/fetch.h"
#include "cm/loop.h"
#include "cm/mcache.h"
#include "cm/mfetch.h"
#include "cm/pin.h"
#include "cm/vc.h"
#include "common/log.h"
#include "common/util.h"

#define PIN_BUCKETS   4096
#define SCAN_PARALLEL 32 /* metadata requests of one job at once */
#define SCAN_TRIES    4	 /* fetches of one object's attrs or listing */
#define REFETCH_DEPTH 3	 /* background refetches started by refetches */
#define PROGRESS_MS   100

struct prec;

/* One object of the pinned set and the pins that cover it. */
struct pobj {
	LIST_ENTRY(pobj) link;
	struct fid fid;
	uint8_t type;
	unsigned nrecs;
	struct prec **recs;
};
LIST_HEAD(pobj_list, pobj);

/* One pin record. @objs lists what it covers (each FID once). */
struct prec {
	TAILQ_ENTRY(prec) link;
	struct fid fid;
	bool recursive;
	struct ctl_peer owner; /* who pinned it: background jobs read as
				* this user (uid 0 for records without one) */
	bool dead;     /* unpinned; freed when the last job lets go */
	bool listed;   /* in pin->recs */
	bool shown;    /* scratch of pin_ctl_pins(): the caller sees it */
	unsigned refs; /* jobs holding it, plus 1 while listed */
	char *path;
	struct fid *objs;
	size_t nobjs, capobjs;
};
TAILQ_HEAD(prec_list, prec);

struct pjob;
TAILQ_HEAD(pjob_list, pjob);

struct pin {
	struct pobj_list buckets[PIN_BUCKETS];
	struct prec_list recs;
	struct pjob_list jobs;

	struct cm_loop *loop;
	struct cs_store *cs;
	struct vc *vc;
	struct mcache *mc;
	struct mfetch *mf;
	struct fetch *fetch;
	atomic_int *online;
	uint32_t chunk_size;
	unsigned max_parallel;
};

/* --- the pinned set --- */

static size_t
fid_bucket(const struct fid *fid)
{
	return (size_t)(fid_hash(fid) % PIN_BUCKETS);
}

static struct pobj *
pobj_find(struct pin *pin, const struct fid *fid)
{
	struct pobj *o;

	if (!pin)
		return NULL;
	LIST_FOREACH (o, &pin->buckets[fid_bucket(fid)], link)
		if (fid_eq(&o->fid, fid))
			return o;
	return NULL;
}

bool
pin_covers(struct pin *pin, const struct fid *fid)
{
	return pobj_find(pin, fid) != NULL;
}

struct pin *
pin_new(const struct pin_deps *d)
{
	struct pin *pin = calloc(1, sizeof(*pin));

	if (!pin)
		return NULL;
	for (size_t i = 0; i < PIN_BUCKETS; i++)
		LIST_INIT(&pin->buckets[i]);
	TAILQ_INIT(&pin->recs);
	TAILQ_INIT(&pin->jobs);
	pin->loop = d->loop;
	pin->cs = d->cs;
	pin->vc = d->vc;
	pin->mc = d->mc;
	pin->mf = d->mf;
	pin->fetch = d->fetch;
	pin->online = d->online;
	pin->chunk_size = d->chunk_size;
	pin->max_parallel = d->max_parallel ? d->max_parallel : 8;
	return pin;
}

/* Add @fid to @rec's cover and the set; pin a file's cached chunks. */
static int
pobj_add(struct pin *pin, struct prec *rec, const struct fid *fid, uint8_t type)
{
	struct pobj *o = pobj_find(pin, fid);
	struct prec **nr;
	struct fid *nf;

	if (o) {
		for (unsigned i = 0; i < o->nrecs; i++)
			if (o->recs[i] == rec)
				return 0;
	} else {
		o = calloc(1, sizeof(*o));
		if (!o)
			return -ENOMEM;
		o->fid = *fid;
		o->type = type;
		LIST_INSERT_HEAD(&pin->buckets[fid_bucket(fid)], o, link);
		if (type == PROTO_T_FILE)
			cs_pin_file(pin->cs, fid->vol, fid->oid, 1);
	}
	if (rec->nobjs == rec->capobjs) {
		size_t ncap = rec->capobjs ? 2 * rec->capobjs : 16;

		nf = realloc(rec->objs, ncap * sizeof(*nf));
		if (!nf)
			return -ENOMEM;
		rec->objs = nf;
		rec->capobjs = ncap;
	}
	nr = realloc(o->recs, (o->nrecs + 1) * sizeof(*nr));
	if (!nr)
		return -ENOMEM;
	o->recs = nr;
	o->recs[o->nrecs++] = rec;
	rec->objs[rec->nobjs++] = *fid;
	return 0;
}

static void
pobj_free(struct pin *pin, struct pobj *o, bool unpin_chunks)
{
	if (unpin_chunks && o->type == PROTO_T_FILE)
		cs_pin_file(pin->cs, o->fid.vol, o->fid.oid, 0);
	LIST_REMOVE(o, link);
	free(o->recs);
	free(o);
}

/* Take @rec's cover out of the set. @return the bytes of the files that
 * are no longer pinned at all (by their cached size). */
static uint64_t
prec_uncover(struct pin *pin, struct prec *rec)
{
	struct proto_attr a;
	uint64_t bytes = 0;

	for (size_t i = 0; i < rec->nobjs; i++) {
		struct pobj *o = pobj_find(pin, &rec->objs[i]);

		if (!o)
			continue; /* gone from the server meanwhile */
		for (unsigned j = 0; j < o->nrecs; j++)
			if (o->recs[j] == rec) {
				o->recs[j] = o->recs[--o->nrecs];
				break;
			}
		if (o->nrecs)
			continue;
		if (o->type == PROTO_T_FILE &&
		    mcache_attr(pin->mc, &o->fid, &a) == 0)
			bytes += a.size;
		pobj_free(pin, o, true);
	}
	rec->nobjs = 0;
	return bytes;
}

static void
prec_put(struct prec *rec)
{
	if (!rec || --rec->refs)
		return;
	free(rec->objs);
	free(rec->path);
	free(rec);
}

static struct prec *
prec_find(struct pin *pin, const struct fid *fid)
{
	struct prec *r;

	if (!pin)
		return NULL;
	TAILQ_FOREACH (r, &pin->recs, link)
		if (fid_eq(&r->fid, fid))
			return r;
	return NULL;
}

/* A new record, not yet listed (refs 1: the caller's). */
static struct prec *
prec_new(const struct fid *fid, bool recursive, const char *path)
{
	struct prec *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->path = strdup(path);
	if (!r->path) {
		free(r);
		return NULL;
	}
	r->fid = *fid;
	r->recursive = recursive;
	r->refs = 1;
	return r;
}

static void
prec_list_add(struct pin *pin, struct prec *r)
{
	if (r->listed)
		return;
	r->listed = true;
	r->refs++;
	TAILQ_INSERT_TAIL(&pin->recs, r, link);
}

static void
prec_unlist(struct pin *pin, struct prec *r)
{
	if (!r->listed)
		return;
	r->listed = false;
	r->dead = true;
	TAILQ_REMOVE(&pin->recs, r, link);
	prec_put(r);
}

/* --- jobs --- */

struct pitem {
	struct fid fid;
	uint8_t tries;
	bool root;
	bool asked;	/* xattrs / link requested already */
	bool want_dir;	/* fetch the listing even if one is cached */
};

struct pfile {
	struct fid fid;
	uint64_t dv, size;
	uint32_t left;	/* chunk fetches outstanding */
	bool issued;	/* every missing chunk was asked for */
	bool stale;	/* a chunk came back 410: refetch at the new DV */
};

struct pjob {
	TAILQ_ENTRY(pjob) link;
	struct pin *pin;
	bool fg; /* a caller waits for the answer (@watch) */
	struct pin_watch watch;
	struct ctl_peer peer;
	struct prec *rec;      /* ref held; NULL: add nothing to the set */
	bool new_rec;	       /* rec was made by this job */
	bool recursive;
	bool check_space;
	unsigned depth;	       /* background refetch generation */

	struct pitem *q;
	size_t qn, qcap;
	struct {
		struct fid fid;
		uint8_t type;
	} *objs;
	size_t nobjs, capobjs;
	struct pfile *files;
	size_t nfiles, capfiles;
	unsigned mpending;
	int err;
	uint64_t skipped;
	bool pumping, fetching, finished;

	size_t fi;
	uint64_t ci;
	unsigned inflight;
	uint64_t bytes_total, bytes_done, bytes_fetched, files_done;
	uint64_t chunk_errs;
	int fetch_err;
	uint64_t last_progress;
};

/* A request of a job in flight, so its callback finds its place. */
struct preq {
	struct pjob *job;
	struct pitem it; /* scan: the item to look at again */
	size_t fi;	 /* fetch: the file */
	uint32_t len;	 /* fetch: the chunk's length */
};

static void scan_pump(struct pjob *j);
static void fetch_pump(struct pjob *j);
static struct pjob *job_new(struct pin *pin, const struct fid *fid,
			    struct prec *rec, bool recursive);
static void job_start(struct pjob *j);

static void
job_free(struct pjob *j)
{
	if (!j)
		return;
	TAILQ_REMOVE(&j->pin->jobs, j, link);
	prec_put(j->rec);
	free(j->q);
	free(j->objs);
	free(j->files);
	free(j);
}

/* Shutdown has begun: the teardown (daemon.c) stops http, fetch and
 * mfetch before pin_free(), so nothing new is asked for. */
static bool
pin_stopping(struct pin *pin)
{
	return cm_stopping(pin->loop);
}

static bool
job_stopping(struct pjob *j)
{
	return pin_stopping(j->pin);
}

static int
push_item(struct pjob *j, const struct pitem *it)
{
	if (j->qn == j->qcap) {
		size_t ncap = j->qcap ? 2 * j->qcap : 64;
		struct pitem *nq = realloc(j->q, ncap * sizeof(*nq));

		if (!nq)
			return -ENOMEM;
		j->q = nq;
		j->qcap = ncap;
	}
	j->q[j->qn++] = *it;
	return 0;
}

static void
job_error(struct pjob *j, int err)
{
	if (!j->err)
		j->err = err;
}

static int
add_obj(struct pjob *j, const struct fid *fid, uint8_t type)
{
	if (j->nobjs == j->capobjs) {
		size_t ncap = j->capobjs ? 2 * j->capobjs : 64;
		void *n = realloc(j->objs, ncap * sizeof(*j->objs));

		if (!n)
			return -ENOMEM;
		j->objs = n;
		j->capobjs = ncap;
	}
	j->objs[j->nobjs].fid = *fid;
	j->objs[j->nobjs++].type = type;
	return 0;
}

static int
add_file(struct pjob *j, const struct proto_attr *a)
{
	if (j->nfiles == j->capfiles) {
		size_t ncap = j->capfiles ? 2 * j->capfiles : 64;
		struct pfile *n = realloc(j->files, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		j->files = n;
		j->capfiles = ncap;
	}
	memset(&j->files[j->nfiles], 0, sizeof(j->files[0]));
	j->files[j->nfiles].fid = a->fid;
	j->files[j->nfiles].dv = a->dv;
	j->files[j->nfiles++].size = a->size;
	return 0;
}

/* --- scan --- */

/* A metadata request came back: look at the item again (or, for the
 * xattr and link side requests, just count it). */
static void
scan_cb(void *arg, int err)
{
	struct preq *r = arg;
	struct pjob *j = r->job;

	j->mpending--;
	if (r->it.tries > 0) {
		/* An attribute or listing request: retry the item. */
		if (err == -ENOENT && !r->it.root) {
			/* Removed meanwhile: not part of the set. */
		} else if (err == -ENOENT) {
			job_error(j, err);
		} else if (err < 0 && err != -EAGAIN &&
			   r->it.tries >= SCAN_TRIES) {
			job_error(j, err);
		} else if (push_item(j, &r->it) < 0) {
			job_error(j, -ENOMEM);
		}
	} else if (err < 0 && err != -ENOENT && err != -EAGAIN) {
		char fs[FID_STRLEN];

		log_debug(LOG_PIN, "pin: cannot fetch metadata of '%s': %s",
			  fid_fmt(&r->it.fid, fs), strerror(-err));
	}
	free(r);
	scan_pump(j);
}

typedef void (*want_fn)(struct mfetch *, const struct fid *, mfetch_cb,
			void *);

/* Ask mfetch.c for something about @it; retry: look at @it again after. */
static void
scan_want(struct pjob *j, const struct pitem *it, want_fn fn, bool retry)
{
	struct preq *r = calloc(1, sizeof(*r));

	if (!r) {
		job_error(j, -ENOMEM);
		return;
	}
	r->job = j;
	r->it = *it;
	if (retry) {
		r->it.tries++;
		if (r->it.tries > SCAN_TRIES) {
			free(r);
			job_error(j, -EIO);
			return;
		}
	} else {
		r->it.tries = 0;
	}
	j->mpending++;
	fn(j->pin->mf, &it->fid, scan_cb, r);
}

static uint32_t
attr_mode(const struct proto_attr *a)
{
	return (a->mode & 07777) | (a->type == PROTO_T_DIR ? S_IFDIR : 0);
}

static void
scan_item(struct pjob *j, struct pitem *it)
{
	struct pin *pin = j->pin;
	struct proto_attr a;
	struct proto_xattr *x = NULL;
	struct vc_dir *d = NULL;
	size_t nx = 0;
	int64_t stamp;
	char *link;
	int rc;

	if (it->want_dir) {
		it->want_dir = false;
		scan_want(j, it, mfetch_want_dir, true);
		return;
	}
	rc = mcache_attr(pin->mc, &it->fid, &a);
	if (rc == -ENOENT) {
		scan_want(j, it, mfetch_want_attr, true);
		return;
	}
	if (rc < 0) {
		job_error(j, rc);
		return;
	}
	/* What the caller may not read is left out of a tree (and counted);
	 * the pinned object itself was checked by the resolver. */
	if (ctl_peer_may(&j->peer, attr_mode(&a), a.uid, a.gid,
			 a.type == PROTO_T_DIR ? R_OK | X_OK : R_OK) < 0) {
		if (it->root)
			job_error(j, -EACCES);
		else
			j->skipped++;
		return;
	}
	if (!it->asked) {
		it->asked = true;
		if (vc_get_xattrs(pin->vc, &it->fid, &stamp, &x, &nx) == 0) {
			proto_xattrs_free(x, nx);
			if (stamp != a.ctime_ns)
				scan_want(j, it, mfetch_want_xattrs, false);
		} else {
			scan_want(j, it, mfetch_want_xattrs, false);
		}
		if (a.type == PROTO_T_SYMLINK || a.type == PROTO_T_MOUNT) {
			if (vc_get_link(pin->vc, &it->fid, &link) == 0)
				free(link);
			else
				scan_want(j, it, mfetch_want_link, false);
		}
	}
	if (a.type == PROTO_T_DIR && (it->root || j->recursive)) {
		rc = mcache_dir(pin->mc, &it->fid, &d);
		if (rc == -ENOENT) {
			scan_want(j, it, mfetch_want_dir, true);
			return;
		}
		if (rc < 0) {
			job_error(j, rc);
			return;
		}
		for (size_t i = 0; j->recursive && i < d->n; i++) {
			struct pitem c = {.fid = vc_dir_ent(d, i)->fid};

			if (push_item(j, &c) < 0) {
				job_error(j, -ENOMEM);
				break;
			}
		}
		vc_dir_put(d);
	}
	if (add_obj(j, &it->fid, a.type) < 0 ||
	    (a.type == PROTO_T_FILE && add_file(j, &a) < 0))
		job_error(j, -ENOMEM);
}

static void scan_done(struct pjob *j);

static void
scan_pump(struct pjob *j)
{
	struct pitem it;

	if (j->pumping)
		return;
	j->pumping = true;
	while (j->qn > 0 && j->mpending < SCAN_PARALLEL && !job_stopping(j)) {
		/* A foreground pin stops at its first error; a background
		 * job pins what it can reach. */
		if (j->err && j->fg)
			break;
		it = j->q[--j->qn];
		scan_item(j, &it);
	}
	j->pumping = false;
	if (j->qn > 0 && job_stopping(j))
		job_error(j, -ECANCELED);
	if (j->mpending == 0 &&
	    (j->qn == 0 || job_stopping(j) || (j->err && j->fg)))
		scan_done(j);
}

/* Give the caller of a foreground pin its answer (once). */
static void
job_answer(struct pjob *j, const struct pin_result *res)
{
	if (!j->fg)
		return;
	j->fg = false;
	if (j->watch.done)
		j->watch.done(j->watch.arg, res);
}

/* --- space --- */

struct pinned_count {
	uint64_t dv, bytes, chunks;
};

static int
count_pinned(const struct cs_info *ci, void *arg)
{
	struct pinned_count *c = arg;

	if (ci->dv == c->dv && (ci->flags & CS_F_PINNED)) {
		c->bytes += ci->len;
		c->chunks++;
	}
	return 0;
}

/* Chunk files culling cannot free: pinned or dirty. */
static int
count_held(const struct cs_info *ci, void *arg)
{
	uint64_t *n = arg;

	if (ci->flags & (CS_F_PINNED | CS_F_DIRTY))
		(*n)++;
	return 0;
}

/* The same check for the cache's file limit: every chunk is one chunk
 * file, however small, so many small files can fill the slots while the
 * bytes fit. @return 0 if the set's chunks fit. */
static int
check_files(struct pjob *j, uint64_t need, const struct cs_stats *st)
{
	struct pin_result res = {.err = -ENOSPC, .kind = PIN_NO_FILES};
	uint64_t held = 0, usable, avail;

	if (!need)
		return 0;
	/* NEEDSWORK: one pass over the whole index; the chunk store could
	 * count pinned and dirty chunks as it counts their bytes. */
	cs_iterate(j->pin->cs, count_held, &held);
	usable = st->files_limit - st->files_limit * CS_DEFAULT_STOP_PCT / 100;
	avail = usable > held ? usable - held : 0;
	if (need <= avail)
		return 0;
	res.need = need;
	res.avail = avail;
	res.limit = st->files_limit;
	job_answer(j, &res);
	return -ENOSPC;
}

/* Refuse (ENOSPC) if what the set adds to the pinned bytes does not fit
 * beside what is pinned and dirty already. @return 0 if it fits. */
static int
check_space(struct pjob *j)
{
	struct pin *pin = j->pin;
	struct pin_result res = {.err = -ENOSPC, .kind = PIN_NO_SPACE};
	struct cs_stats st;
	uint64_t need = 0, need_files = 0, usable, avail;

	for (size_t i = 0; i < j->nfiles; i++) {
		struct pinned_count pc = {.dv = j->files[i].dv};
		uint64_t n = (j->files[i].size + pin->chunk_size - 1) /
			     pin->chunk_size;

		cs_iterate_file(pin->cs, j->files[i].fid.vol,
				j->files[i].fid.oid, count_pinned, &pc);
		if (pc.bytes < j->files[i].size)
			need += j->files[i].size - pc.bytes;
		if (pc.chunks < n)
			need_files += n - pc.chunks;
	}
	cs_get_stats(pin->cs, &st);
	/* The store refuses allocations that leave less than the stop level
	 * free, so that part of the limit cannot hold pinned data. */
	usable = st.bytes_limit - st.bytes_limit * CS_DEFAULT_STOP_PCT / 100;
	avail = usable > st.pinned_bytes + st.dirty_bytes
			? usable - st.pinned_bytes - st.dirty_bytes
			: 0;
	if (need <= avail)
		return check_files(j, need_files, &st);
	res.need = need;
	res.avail = avail;
	job_answer(j, &res);
	return -ENOSPC;
}

/* --- commit and fetch --- */

static void job_finish(struct pjob *j);
static void send_progress(struct pjob *j, bool force);

static void
owner_to_vc(const struct ctl_peer *p, struct vc_pin_owner *o)
{
	memset(o, 0, sizeof(*o));
	o->uid = p->uid;
	o->gid = p->gid;
	/* Groups beyond the record's room are dropped: that can only take
	 * access away, never give it. */
	o->ngroups = p->ngroups < VC_PIN_GROUPS_MAX ? (uint32_t)p->ngroups
						   : VC_PIN_GROUPS_MAX;
	for (uint32_t i = 0; i < o->ngroups; i++)
		o->groups[i] = p->groups[i];
}

static void
owner_from_vc(const struct vc_pin_owner *o, struct ctl_peer *p)
{
	memset(p, 0, sizeof(*p));
	if (!o)
		return; /* a record from before owners: root, as it was */
	p->uid = o->uid;
	p->gid = o->gid;
	p->ngroups = o->ngroups;
	for (uint32_t i = 0; i < o->ngroups && i < CTL_PEER_GROUPS_MAX; i++)
		p->groups[i] = o->groups[i];
}

static void
scan_done(struct pjob *j)
{
	struct pin *pin = j->pin;
	struct prec *rec = j->rec;
	char fs[FID_STRLEN];
	int rc;

	if (j->fetching || j->finished)
		return;
	j->fetching = true;
	if (j->err && j->fg) {
		struct pin_result res = {.err = j->err, .kind = PIN_FAILED};

		if (j->err == -EIO && !atomic_load(pin->online))
			res.kind = PIN_NO_SERVER;
		job_answer(j, &res);
		job_finish(j);
		return;
	}
	if (j->err)
		log_warn(LOG_PIN, "pin of '%s': %s; pinning what was reached",
			 rec ? rec->path : fid_fmt(&j->q[0].fid, fs),
			 strerror(-j->err));
	if (j->check_space && check_space(j) < 0) {
		job_finish(j);
		return;
	}
	if (rec && !rec->dead) {
		if (j->fg && (j->new_rec || rec->owner.uid == j->peer.uid)) {
			/* The pinner's identity is the pin's (refreshed when
			 * its owner pins again). Pinning another user's pin
			 * again does not take it over: it stays theirs, so
			 * only they (or root) may remove it. */
			rec->owner = j->peer;
			rec->owner.pid = 0;
		}
		if (j->new_rec || j->fg) {
			struct vc_pin_owner ow;

			owner_to_vc(&rec->owner, &ow);
			rc = vc_put_pin(pin->vc, &rec->fid, j->recursive,
					rec->path, &ow);
			if (rc < 0)
				log_warn(LOG_PIN,
					 "cannot record the pin of '%s': %s",
					 rec->path, strerror(-rc));
		}
		if (j->fg)
			rec->recursive = j->recursive;
		prec_list_add(pin, rec);
		for (size_t i = 0; i < j->nobjs; i++)
			if (pobj_add(pin, rec, &j->objs[i].fid,
				     j->objs[i].type) < 0)
				job_error(j, -ENOMEM);
	} else {
		for (size_t i = 0; i < j->nfiles; i++)
			if (pin_covers(pin, &j->files[i].fid))
				cs_pin_file(pin->cs, j->files[i].fid.vol,
					    j->files[i].fid.oid, 1);
	}
	for (size_t i = 0; i < j->nfiles; i++)
		j->bytes_total += j->files[i].size;
	j->fi = 0;
	j->ci = 0;
	send_progress(j, true);
	fetch_pump(j);
}

static void
send_progress(struct pjob *j, bool force)
{
	uint64_t now = util_now_ms();
	struct pin_progress pr;

	if (!j->fg || !j->watch.progress ||
	    (!force && now - j->last_progress < PROGRESS_MS))
		return;
	j->last_progress = now;
	pr.bytes_done = j->bytes_done;
	pr.bytes_total = j->bytes_total;
	pr.files_done = j->files_done;
	pr.files_total = j->nfiles;
	j->watch.progress(j->watch.arg, &pr);
}

static void
file_step_done(struct pjob *j, struct pfile *f)
{
	if (f->issued && f->left == 0)
		j->files_done++;
}

static void
fetch_cb(void *arg, int err)
{
	struct preq *r = arg;
	struct pjob *j = r->job;
	struct pfile *f = &j->files[r->fi];

	j->inflight--;
	f->left--;
	if (err == 0) {
		j->bytes_done += r->len;
		j->bytes_fetched += r->len;
	} else if (err == -ESTALE) {
		f->stale = true;
	} else {
		j->chunk_errs++;
		if (!j->fetch_err)
			j->fetch_err = err;
	}
	free(r);
	file_step_done(j, f);
	send_progress(j, false);
	fetch_pump(j);
}

static void
fetch_pump(struct pjob *j)
{
	struct pin *pin = j->pin;
	unsigned max = pin->max_parallel;

	if (j->pumping)
		return;
	j->pumping = true;
	while (j->fi < j->nfiles && j->inflight < max) {
		struct pfile *f = &j->files[j->fi];
		uint64_t n = (f->size + pin->chunk_size - 1) / pin->chunk_size;
		struct cs_info info;
		struct cs_key k;
		struct preq *r;
		int rc;

		if (j->ci >= n || job_stopping(j)) {
			f->issued = true;
			file_step_done(j, f);
			j->fi++;
			j->ci = 0;
			continue;
		}
		cm_chunk_key(&k, &f->fid, j->ci++);
		if (cs_lookup(pin->cs, &k, &info) == 0 && info.dv == f->dv &&
		    (info.flags & CS_F_VALID)) {
			j->bytes_done += info.len;
			continue;
		}
		r = calloc(1, sizeof(*r));
		if (!r) {
			j->chunk_errs++;
			j->fetch_err = j->fetch_err ? j->fetch_err : -ENOMEM;
			continue;
		}
		r->job = j;
		r->fi = j->fi;
		r->len = f->size - k.chunk * pin->chunk_size < pin->chunk_size
				 ? (uint32_t)(f->size -
					      k.chunk * pin->chunk_size)
				 : pin->chunk_size;
		f->left++;
		j->inflight++;
		rc = fetch_chunk(pin->fetch, &f->fid, f->dv, f->size, k.chunk,
				 fetch_cb, r);
		if (rc < 0) {
			free(r);
			f->left--;
			j->inflight--;
			j->chunk_errs++;
			j->fetch_err = j->fetch_err ? j->fetch_err : rc;
		}
	}
	j->pumping = false;
	if (j->fi >= j->nfiles && j->inflight == 0)
		job_finish(j);
}

static void
job_finish(struct pjob *j)
{
	struct pin *pin = j->pin;

	if (j->finished)
		return;
	j->finished = true;
	/* What a pin promises (offline use) survives a crash: the listings'
	 * attributes still pending go to the cache file now (mcache.c). */
	mcache_sync_attrs(pin->mc, SIZE_MAX);
	for (size_t i = 0; i < j->nfiles && !job_stopping(j); i++) {
		struct pjob *n;

		if (!j->files[i].stale || j->depth >= REFETCH_DEPTH ||
		    !pin_covers(pin, &j->files[i].fid))
			continue;
		/* The file changed under us: the attributes we used are
		 * old. Look again and fetch the new data version. */
		mcache_drop_attr(pin->mc, &j->files[i].fid);
		n = job_new(pin, &j->files[i].fid, NULL, false);
		if (n) {
			n->depth = j->depth + 1;
			job_start(n);
		}
	}
	if (j->fg) {
		struct pin_result res = {
			.kind = j->chunk_errs ? PIN_CHUNKS_MISSING : PIN_DONE,
			.bytes_total = j->bytes_total,
			.bytes_done = j->bytes_done,
			.bytes_fetched = j->bytes_fetched,
			.files = j->nfiles,
			.files_skipped = j->skipped,
			.chunks_failed = j->chunk_errs,
			.fetch_err = j->fetch_err,
		};

		send_progress(j, true);
		res.err = j->chunk_errs ? j->fetch_err : 0;
		if (res.err == -EIO && !atomic_load(pin->online))
			res.err = -EHOSTUNREACH;
		job_answer(j, &res);
	} else if (j->chunk_errs) {
		log_info(LOG_PIN, "pin: %llu chunks of %s could not be fetched: "
				  "%s",
			 (unsigned long long)j->chunk_errs,
			 j->rec ? j->rec->path : "a pinned file",
			 strerror(-j->fetch_err));
	}
	job_free(j);
}

static struct pjob *
job_new(struct pin *pin, const struct fid *fid, struct prec *rec,
	bool recursive)
{
	struct pjob *j;
	struct pitem it = {.fid = *fid, .root = true};
	struct pobj *o;

	j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	j->pin = pin;
	j->recursive = recursive;
	j->rec = rec;
	if (rec)
		rec->refs++;
	/* A background job reads the tree as the user who pinned it (as
	 * the first pin that covers the object, for a refetch), so it never
	 * takes in what that user could not read. A foreground pin sets its
	 * caller instead. */
	o = rec ? NULL : pobj_find(pin, fid);
	if (rec)
		j->peer = rec->owner;
	else if (o && o->nrecs)
		j->peer = o->recs[0]->owner;
	else
		j->peer.uid = j->peer.gid = 0;
	TAILQ_INSERT_TAIL(&pin->jobs, j, link);
	if (push_item(j, &it) < 0) {
		job_free(j);
		return NULL;
	}
	return j;
}

static void
job_start(struct pjob *j)
{
	scan_pump(j);
}

/* --- entry points --- */

int
pin_add(struct pin *pin, const struct ctl_peer *peer,
	const struct proto_attr *attr, const char *path, bool recursive,
	const struct pin_watch *watch)
{
	struct prec *rec = prec_find(pin, &attr->fid);
	bool fresh = false;
	struct pjob *j;

	if (!pin)
		return -ECANCELED;
	if (rec) {
		/* Pinning again refreshes the pin (and may widen it). */
		recursive = recursive || rec->recursive;
		rec->refs++;
	} else {
		rec = prec_new(&attr->fid, recursive, path);
		fresh = true;
		if (!rec)
			return -ENOMEM;
	}
	j = job_new(pin, &attr->fid, rec, recursive);
	prec_put(rec); /* the job holds its own reference */
	if (!j)
		return -ENOMEM;
	j->fg = true;
	j->watch = *watch;
	j->peer = *peer;
	j->new_rec = fresh;
	j->check_space = true;
	log_info(LOG_PIN, "pin%s of '%s' by uid %u", recursive ? " -r" : "",
		 path, (unsigned)peer->uid);
	job_start(j);
	return 0;
}

bool
pin_path_under(const char *p, const char *top)
{
	size_t n = strlen(top);

	if (!strcmp(top, "."))
		return true;
	return !strncmp(p, top, n) && (p[n] == '\0' || p[n] == '/');
}

/* May @p remove pin @r? Its owner or root (a record from before owners
 * were kept belongs to root). */
static bool
may_unpin(const struct ctl_peer *p, const struct prec *r)
{
	return p->uid == 0 || p->uid == r->owner.uid;
}

int
pin_remove(struct pin *pin, const struct ctl_peer *peer, const struct fid *fid,
	   const char *path, bool recursive, struct pin_removed *out)
{
	struct prec *r, *nx;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!pin)
		return 0;
	/* The pin on the object itself, if another user's, is refused
	 * before anything goes: "fs unpin FILE" names it. */
	TAILQ_FOREACH (r, &pin->recs, link) {
		if (!recursive && fid_eq(&r->fid, fid) && !may_unpin(peer, r)) {
			snprintf(out->path, sizeof(out->path), "%s", r->path);
			out->owner = (uid_t)r->owner.uid;
			return -EPERM;
		}
	}
	for (r = TAILQ_FIRST(&pin->recs); r; r = nx) {
		nx = TAILQ_NEXT(r, link);
		if (!fid_eq(&r->fid, fid) &&
		    !(recursive && pin_path_under(r->path, path)))
			continue;
		/* unpin -r takes the caller's pins only. */
		if (!may_unpin(peer, r)) {
			out->kept++;
			continue;
		}
		rc = vc_del_pin(pin->vc, &r->fid);
		if (rc < 0)
			log_warn(LOG_PIN,
				 "cannot remove the pin record of '%s': %s",
				 r->path, strerror(-rc));
		out->bytes += prec_uncover(pin, r);
		out->removed++;
		log_info(LOG_PIN, "unpinned '%s' (uid %u)", r->path,
			 (unsigned)peer->uid);
		prec_unlist(pin, r);
	}
	return 0;
}

struct cached_count {
	uint64_t dv, bytes;
};

static int
count_cached(const struct cs_info *ci, void *arg)
{
	struct cached_count *c = arg;

	if (ci->dv == c->dv && (ci->flags & CS_F_VALID))
		c->bytes += ci->len;
	return 0;
}

/* Size and bytes missing of file @fid by the cached metadata; a file
 * whose attributes are not cached counts as 0 bytes, all missing. */
static bool
file_bytes(struct pin *pin, const struct fid *fid, uint64_t *size,
	   uint64_t *missing)
{
	struct proto_attr a;
	struct cached_count c;

	if (mcache_attr(pin->mc, fid, &a) < 0 || a.type != PROTO_T_FILE)
		return false;
	c.dv = a.dv;
	c.bytes = 0;
	cs_iterate_file(pin->cs, fid->vol, fid->oid, count_cached, &c);
	*size = a.size;
	*missing = c.bytes < a.size ? a.size - c.bytes : 0;
	return true;
}

int
pin_list(struct pin *pin, const struct pin_lister *l, bool all,
	 uint64_t *bytes_pinned, uint64_t *bytes_missing)
{
	uint64_t tb = 0, tm = 0, size, missing;
	struct prec *r;
	struct pobj *o;
	int rc;

	*bytes_pinned = *bytes_missing = 0;
	if (!pin)
		return 0;
	TAILQ_FOREACH (r, &pin->recs, link) {
		struct pin_info pi = {
			.path = r->path,
			.recursive = r->recursive,
			.owner = (uid_t)r->owner.uid,
		};

		/* Once per record: the totals below look again. */
		r->shown = l->sees(l->arg, r->path, (uid_t)r->owner.uid);
		if (!r->shown)
			continue;
		for (size_t i = 0; i < r->nobjs; i++) {
			if (!file_bytes(pin, &r->objs[i], &size, &missing))
				continue;
			pi.bytes += size;
			pi.missing += missing;
			pi.files++;
		}
		rc = l->each(l->arg, &pi);
		if (rc < 0)
			return rc;
	}
	/* Totals count each file once, however many pins cover it. */
	for (size_t i = 0; i < PIN_BUCKETS; i++)
		LIST_FOREACH (o, &pin->buckets[i], link) {
			if (o->type != PROTO_T_FILE ||
			    !file_bytes(pin, &o->fid, &size, &missing))
				continue;
			if (!all) {
				bool in = false;

				/* Covered by a pin the caller sees. */
				for (unsigned k = 0; k < o->nrecs; k++)
					in = in || (o->recs[k]->listed &&
						    o->recs[k]->shown);
				if (!in)
					continue;
			}
			tb += size;
			tm += missing;
		}
	*bytes_pinned = tb;
	*bytes_missing = tm;
	return 0;
}

bool
pin_refetch(struct pin *pin, const struct fid *fid)
{
	struct pjob *j;

	if (!pin_covers(pin, fid))
		return false;
	j = job_new(pin, fid, NULL, false);
	if (j)
		job_start(j);
	return true;
}

void
pin_event(struct pin *pin, const struct proto_event *ev)
{
	struct pobj *o = pobj_find(pin, &ev->fid);
	struct prec *rec = NULL;
	struct pjob *j;

	if (!o)
		return;
	switch (ev->kind) {
	case PROTO_EV_DATA:
	case PROTO_EV_ATTR:
		/* mfetch.c dropped what changed; the job fetches it again. */
		j = job_new(pin, &ev->fid, NULL, false);
		if (j)
			job_start(j);
		break;
	case PROTO_EV_DIR:
		/* A recursive pin over this directory takes in its new
		 * entries; a plain pin of it just keeps the listing. */
		for (unsigned i = 0; i < o->nrecs; i++)
			if (o->recs[i]->recursive && !o->recs[i]->dead)
				rec = o->recs[i];
		j = job_new(pin, &ev->fid, rec, rec != NULL);
		if (j) {
			j->q[0].want_dir = true;
			job_start(j);
		}
		break;
	case PROTO_EV_GONE:
		/* Leave its pins' records alone (fs pins shows them). */
		pobj_free(pin, o, false);
		break;
	default:
		break;
	}
}

struct changed {
	struct pin *pin;
	struct proto_event ev;
};

static void
changed_cb(evutil_socket_t fd, short what, void *arg)
{
	struct changed *c = arg;

	(void)fd;
	(void)what;
	if (!pin_stopping(c->pin))
		pin_event(c->pin, &c->ev);
	free(c);
}

void
pin_changed(struct pin *pin, const struct proto_attr *a)
{
	static const struct timeval now = {0, 0};
	struct changed *c;

	if (!pin_covers(pin, &a->fid) ||
	    (a->type != PROTO_T_FILE && a->type != PROTO_T_DIR))
		return;
	c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->pin = pin;
	c->ev.kind = a->type == PROTO_T_FILE ? PROTO_EV_DATA : PROTO_EV_DIR;
	c->ev.fid = a->fid;
	c->ev.dv = a->dv;
	/* Next loop turn: the caller is in the middle of storing what it
	 * learnt, and a job would read the cache right away. */
	if (event_base_once(pin->loop->base, -1, EV_TIMEOUT, changed_cb, c,
			    &now) < 0)
		free(c);
}

static int
restore_cb(void *arg, const struct fid *fid, int recursive, const char *path,
	   const struct vc_pin_owner *owner)
{
	struct pin *pin = arg;
	struct prec *rec;
	struct pjob *j;

	if (prec_find(pin, fid))
		return 0;
	rec = prec_new(fid, recursive, path);
	if (!rec)
		return -ENOMEM;
	owner_from_vc(owner, &rec->owner);
	prec_list_add(pin, rec);
	j = job_new(pin, fid, rec, recursive);
	prec_put(rec);
	if (!j)
		return -ENOMEM;
	return 0;
}

int
pin_restore(struct pin *pin)
{
	struct pjob *j, *nx;
	size_t n = 0;
	int rc;

	if (!pin)
		return -ENOMEM;
	rc = vc_iterate_pins(pin->vc, restore_cb, pin);
	if (rc < 0)
		log_err(LOG_PIN, "cannot load pins: %s", strerror(-rc));
	/* Start them only now: a job may finish at once and free itself. */
	for (j = TAILQ_FIRST(&pin->jobs); j; j = nx) {
		nx = TAILQ_NEXT(j, link);
		n++;
		job_start(j);
	}
	if (n)
		log_info(LOG_PIN, "re-applying %zu pins", n);
	return rc;
}

void
pin_free(struct pin *pin)
{
	const struct pin_result stopping = {.err = -ECANCELED,
					    .kind = PIN_STOPPING};
	struct prec *r;
	struct pobj *o;

	if (!pin)
		return;
	while (!TAILQ_EMPTY(&pin->jobs)) {
		struct pjob *j = TAILQ_FIRST(&pin->jobs);

		job_answer(j, &stopping);
		job_free(j);
	}
	while ((r = TAILQ_FIRST(&pin->recs)))
		prec_unlist(pin, r);
	for (size_t i = 0; i < PIN_BUCKETS; i++)
		while ((o = LIST_FIRST(&pin->buckets[i]))) {
			LIST_REMOVE(o, link);
			free(o->recs);
			free(o);
		}
	free(pin);
}
