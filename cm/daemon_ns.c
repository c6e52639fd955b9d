/*
 * daemon_ns.c - building and stopping a namespace: one cairnd serving
 * several volumes, from one or more servers, under one mount root
 * (daemon_i.h struct cm_ns, cairnd.conf(5) "[volume DIR]"). It opens the
 * one chunk store, builds a struct cm per volume with daemon.c (each on
 * its own CACHE/vol/DIR for meta.tdb, the replay log, the write states
 * and the mode, and attached to the namespace's one loop thread), and
 * tears them down in reverse. The FUSE routing is fuse_ns.c, the control
 * routing ctl_ns.c. While it runs, a retrier thread opens the volumes
 * left out at start once their servers answer, and a SIGHUP applies the
 * config's volume list (cm_ns_reload_check(), cm_ns_reload_apply()).
 *
 * What one volume's trouble does to the others: nothing. A volume whose
 * server cannot be reached at start and which the cache holds no copy
 * of is left out (its directory answers EIO, the log says why) and
 * retried in the background; a server
 * lost later takes only its volume offline (each volume has its own
 * connection, struct conn). A volume id seen twice (two servers that
 * drew the same random id) would mix chunks and accounting in the shared
 * chunk store: the second volume is left out, with a message.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chunkstore/cs.h"
#include "cm/cm_ctl.h"
#include "cm/daemon.h"
#include "cm/daemon_i.h"
#include "cm/inode.h"
#include "cm/rlog.h"
#include "cm/wb.h"
#include "cm/vc.h"
#include "common/log.h"
#include "common/util.h"

/* Mirrors open_cs() of daemon.c for the shared store. */
static int
ns_open_cs(struct cm_ns *ns)
{
	struct cs_params p = {0};
	int err = 0;

	p.chunk_size = ns->cfg.chunk_size;
	p.fd_cache = CS_FD_CACHE_DEFAULT * 4;
	p.limits.max_bytes = ns->cfg.cache_size;
	p.log = log_callback;
	p.log_arg = (void *)(uintptr_t)LOG_CS;
	ns->cs = cs_open(ns->cfg.cache_dir, &p, &err);
	if (!ns->cs && err == -ENOENT) {
		err = cs_create(ns->cfg.cache_dir, &p);
		if (err < 0)
			return err;
		log_info(LOG_MAIN, "created cache in '%s'", ns->cfg.cache_dir);
		ns->cs = cs_open(ns->cfg.cache_dir, &p, &err);
	}
	if (!ns->cs)
		return err ? err : -EIO;
	ns->chunk_size = cs_chunk_size(ns->cs);
	return 0;
}

/* The retrier's and the reloads' state (see "The retrier" below). */
struct ns_retry {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool started, stop;
	/* Per slot [cap]: where its settings are (the start's config, or
	 * one a reload added it from, kept in cfgs[]) and its section. */
	const struct cm_config **src;
	size_t *srck;
	uint64_t *at_ms;    /* the next try of a left-out volume */
	unsigned *delay_ms; /* the wait after that try */
	unsigned *tries;
	bool *added;	    /* added by a reload */
	struct cm **old;    /* the replaced structs, freed at close */
	size_t nold;
	struct cm_config **cfgs; /* configs reloads added volumes from */
	size_t ncfgs;
};

/* Volume @i into @cm (zeroed or released): its settings, its directory
 * under the cache, its token, then daemon.c's open (the server's volume
 * information, or the cache's; a blocking request); its id is compared
 * with those of volumes 0..@others-1 but @i. @return 0, or -errno: the
 * volume is left out (logged). */
static int
open_vol(struct cm_ns *ns, size_t i, struct cm *cm, size_t others)
{
	struct cm_config vc;
	char *dir = NULL;
	int rc;

	rc = cm_config_for_vol(ns->retry->src[i], ns->retry->srck[i], &vc);
	if (rc < 0)
		return rc;
	cm_init(cm, &vc);
	cm->ns = ns;
	cm->slot = (unsigned)i + 1;
	cm->ino_base = (uint64_t)cm->slot << CM_NS_SLOT_SHIFT;
	cm->ns_dir = ns->retry->src[i]->vols[ns->retry->srck[i]].dir;
	cm->cs = ns->cs;
	cm->cs_shared = true;
	if (asprintf(&dir, "%s/vol/%s", ns->cfg.cache_dir, cm->ns_dir) < 0)
		return -ENOMEM;
	rc = util_mkdir_p(dir, 0700);
	if (rc < 0) {
		log_err(LOG_MAIN, "volume '%s': cannot use '%s': %s",
			cm->ns_dir, dir, strerror(-rc));
		free(dir);
		return rc;
	}
	free(cm->cfg.cache_dir);
	cm->cfg.cache_dir = dir;
	cm->token = cm_read_token(cm->cfg.token_file);
	if (!cm->token) {
		rc = -errno;
		log_err(LOG_MAIN,
			"volume '%s': cannot read token file '%s': "
			"%s",
			cm->ns_dir, cm->cfg.token_file, strerror(-rc));
		return rc;
	}
	rc = cm_daemon_open(cm);
	if (rc < 0)
		return rc;
	for (size_t k = 0; k < others; k++) {
		struct cm *o = cm_ns_vol(ns, k);

		if (k == i)
			continue;
		if (!o->ns_failed && o->vi.id == cm->vi.id) {
			log_err(LOG_MAIN,
				"volume '%s' (%s) has the id %u of "
				"volume '%s' (%s): one cache cannot "
				"hold both; '%s' is left out",
				cm->ns_dir, cm->cfg.server, cm->vi.id,
				o->ns_dir, o->cfg.server, cm->ns_dir);
			return -EEXIST;
		}
	}
	log_info(LOG_MAIN, "volume '%s' is '%s' from %s (id %u)", cm->ns_dir,
		 cm->cfg.volume, cm->cfg.server, cm->vi.id);
	return 0;
}

/*
 * The retrier: a volume left out at start (its server down and nothing
 * cached, an unreadable token) is tried again by a thread of its own,
 * 1 s after the start, then after 2, 4, ... up to 60 s between tries:
 * cm_daemon_open() asks the server for the volume information, a
 * blocking request that must not run on the loop thread. Once it has
 * it, a job on the loop thread builds the volume's modules (attaching
 * its loop), lets the front end start what it needs (ns->on_attach),
 * starts it (recovery, the event stream) and publishes it in vols[]:
 * from then on its directory is served. The struct cm it replaces (the
 * left-out one, which FUSE workers may still be looking at) is kept
 * until cm_ns_close(). A duplicate volume id is not retried: that is
 * the config's to fix.
 */
#define RETRY_FIRST_MS 1000
#define RETRY_MAX_MS   60000

struct attach_job {
	struct cm_job job;
	struct cm_ns *ns;
	size_t i;
	struct cm *cm;
	int rc;
	bool done;
};

static int
retry_new(struct cm_ns *ns)
{
	struct ns_retry *r = calloc(1, sizeof(*r));
	size_t n = ns->cap;
	pthread_condattr_t ca;

	if (!r)
		return -ENOMEM;
	ns->retry = r;
	r->at_ms = calloc(n, sizeof(*r->at_ms));
	r->delay_ms = calloc(n, sizeof(*r->delay_ms));
	r->tries = calloc(n, sizeof(*r->tries));
	r->old = calloc(2 * n, sizeof(*r->old));
	r->src = calloc(n, sizeof(*r->src));
	r->srck = calloc(n, sizeof(*r->srck));
	r->added = calloc(n, sizeof(*r->added));
	r->cfgs = calloc(n, sizeof(*r->cfgs));
	pthread_mutex_init(&r->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (!r->at_ms || !r->delay_ms || !r->tries || !r->old || !r->src ||
	    !r->srck || !r->added || !r->cfgs)
		return -ENOMEM;
	for (size_t i = 0; i < ns->cfg.nvols; i++) {
		r->src[i] = &ns->cfg;
		r->srck[i] = i;
	}
	return 0;
}

/* What open_vol() left of a volume it could not open (never attached). */
static void
drop_unattached(struct cm *cm)
{
	ino_free(cm->ino);
	cm->ino = NULL;
	if (cm->vc)
		vc_close(cm->vc);
	cm->vc = NULL;
	cm_release(cm);
	free(cm);
}

static void
retry_free(struct cm_ns *ns)
{
	struct ns_retry *r = ns->retry;

	if (!r)
		return;
	for (size_t k = 0; k < r->nold; k++) {
		struct cm *o = r->old[k];

		if (!o->loop.owner) {
			/* a left-out struct a served one replaced */
			drop_unattached(o);
			continue;
		}
		cm_daemon_close(o);
		cm_release(o);
		free(o);
	}
	for (size_t k = 0; k < r->ncfgs; k++) {
		cm_config_release(r->cfgs[k]);
		free(r->cfgs[k]);
	}
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r->src);
	free(r->srck);
	free(r->added);
	free(r->cfgs);
	free(r->at_ms);
	free(r->delay_ms);
	free(r->tries);
	free(r->old);
	free(r);
	ns->retry = NULL;
}

/* On the loop thread: build, start and publish a retried volume. */
static void
attach_run(struct cm_loop *loop, struct cm_job *job)
{
	struct attach_job *aj = container_of(job, struct attach_job, job);
	struct cm_ns *ns = aj->ns;
	struct cm *cm = aj->cm;
	int rc = -ECANCELED;

	if (!cm_stopping(loop)) {
		rc = cm_daemon_build(cm);
		if (rc == 0 && ns->on_attach)
			rc = ns->on_attach(ns->on_attach_arg, cm);
		if (rc == 0)
			rc = cm_daemon_start(cm);
		if (rc < 0 && cm->loop.owner)
			cm_daemon_teardown(cm);
	}
	if (rc == 0) {
		/* A reload may have removed it meanwhile (loop thread too). */
		cm->ns_hidden = ns->vols[aj->i]->ns_hidden;
		__atomic_store_n(&ns->vols[aj->i], cm, __ATOMIC_RELEASE);
	}
	pthread_mutex_lock(&ns->retry->lock);
	aj->rc = rc;
	aj->done = true;
	pthread_cond_broadcast(&ns->retry->cond);
	pthread_mutex_unlock(&ns->retry->lock);
}

/* The retrier thread, lock held: try volume @i once. @return true when
 * it is served now. */
static bool
retry_one(struct cm_ns *ns, size_t i)
{
	struct ns_retry *r = ns->retry;
	struct cm *cm = calloc(1, sizeof(*cm)), *old = ns->vols[i];
	struct attach_job *aj = NULL;
	int rc = -ENOMEM;

	r->tries[i]++;
	pthread_mutex_unlock(&r->lock);
	if (cm) {
		log_debug(LOG_MAIN, "volume '%s': trying to open it (try %u)",
			  old->ns_dir, r->tries[i]);
		rc = open_vol(ns, i, cm, cm_ns_count(ns));
		aj = rc == 0 ? calloc(1, sizeof(*aj)) : NULL;
		if (rc == 0 && !aj)
			rc = -ENOMEM;
	}
	if (rc == 0) {
		cm->cross = old->cross;
		cm->cross_arg = cm;
		aj->job.run = attach_run;
		aj->ns = ns;
		aj->i = i;
		aj->cm = cm;
		cm_post(&ns->loop, &aj->job);
	}
	pthread_mutex_lock(&r->lock);
	if (rc == 0) {
		while (!aj->done)
			pthread_cond_wait(&r->cond, &r->lock);
		rc = aj->rc;
		free(aj);
		/* Served: the left-out struct is kept (workers may still
		 * look at it). Not: the new one is (its loop is attached),
		 * and the volume is not tried again (at most one struct per
		 * volume is kept). */
		if (r->nold < 2 * ns->cap)
			r->old[r->nold++] = rc == 0 ? old : cm;
		if (rc < 0) {
			log_err(LOG_MAIN, "volume '%s' could not be started "
					  "(%s): it stays out until cairnd "
					  "restarts",
				old->ns_dir, strerror(-rc));
			r->at_ms[i] = UINT64_MAX;
			return false;
		}
		if (r->added[i])
			log_msg(LOG_MAIN, LOG_NOTICE, "volume '%s' (added by "
				"a reload) is served from now on", cm->ns_dir);
		else
			log_msg(LOG_MAIN, LOG_NOTICE, "volume '%s' is back: "
				"its server answered at try %u; it is served "
				"from now on",
				cm->ns_dir, r->tries[i]);
		return true;
	}
	if (cm)
		drop_unattached(cm);
	if (rc == -EEXIST)
		r->at_ms[i] = UINT64_MAX;
	else
		log_warn(LOG_MAIN, "volume '%s' is still not served (%s): next "
				   "try in %u s",
			 old->ns_dir, strerror(-rc), r->delay_ms[i] / 1000);
	return false;
}

static void *
retry_main(void *arg)
{
	struct cm_ns *ns = arg;
	struct ns_retry *r = ns->retry;

	pthread_mutex_lock(&r->lock);
	while (!r->stop) {
		uint64_t now = util_now_ms(), next = now + RETRY_MAX_MS;
		struct timespec ts;

		for (size_t i = 0; i < cm_ns_count(ns) && !r->stop; i++) {
			struct cm *cm = cm_ns_vol(ns, i);

			if (!cm->ns_failed || cm_ns_hidden(cm) ||
			    r->at_ms[i] == UINT64_MAX)
				continue;
			if (r->at_ms[i] <= now) {
				r->at_ms[i] = now + r->delay_ms[i];
				if (retry_one(ns, i))
					continue;
				r->delay_ms[i] = r->delay_ms[i] * 2 > RETRY_MAX_MS
							 ? RETRY_MAX_MS
							 : r->delay_ms[i] * 2;
				now = util_now_ms();
				if (r->at_ms[i] < now)
					r->at_ms[i] = now;
			}
			if (r->at_ms[i] < next)
				next = r->at_ms[i];
		}
		/* With nothing left out it sleeps; a reload that adds a
		 * volume wakes it. */
		now = util_now_ms();
		if (next <= now)
			continue;
		util_deadline(&ts, CLOCK_MONOTONIC, next - now);
		if (!r->stop)
			pthread_cond_timedwait(&r->cond, &r->lock, &ts);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

static int
retry_start(struct cm_ns *ns)
{
	struct ns_retry *r = ns->retry;
	uint64_t now = util_now_ms();
	int rc;

	for (size_t i = 0; i < ns->n; i++) {
		struct cm *cm = ns->vols[i];

		r->delay_ms[i] = RETRY_FIRST_MS * 2;
		r->at_ms[i] = now + RETRY_FIRST_MS;
		if (cm->ns_failed && cm->ns_dup)
			r->at_ms[i] = UINT64_MAX;
	}
	rc = pthread_create(&r->thread, NULL, retry_main, ns);
	if (rc)
		return -rc;
	r->started = true;
	return 0;
}

static void
retry_stop(struct cm_ns *ns)
{
	struct ns_retry *r = ns->retry;

	if (!r || !r->started)
		return;
	pthread_mutex_lock(&r->lock);
	r->stop = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->thread, NULL);
	r->started = false;
}

int
cm_ns_open(struct cm_ns *ns, struct cm_config *cfg)
{
	size_t ok = 0;
	int rc;

	memset(ns, 0, sizeof(*ns));
	ns->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	cm_loop_init(&ns->loop);
	ns->root_ctime_ns = util_wall_ns();
	rc = ns_open_cs(ns);
	if (rc < 0) {
		log_err(LOG_MAIN, "cannot open cache '%s': %s",
			ns->cfg.cache_dir,
			rc == -EBUSY ? "in use by another process"
				     : strerror(-rc));
		return rc;
	}
	ns->cap = CM_NS_MAX_VOLUMES;
	ns->vols = calloc(ns->cap, sizeof(*ns->vols));
	rc = retry_new(ns);
	if (!ns->vols || rc < 0)
		return -ENOMEM;
	for (size_t i = 0; i < ns->cfg.nvols; i++) {
		ns->vols[i] = calloc(1, sizeof(struct cm));
		if (!ns->vols[i])
			return -ENOMEM;
		ns->n = i + 1;
		rc = open_vol(ns, i, ns->vols[i], i);
		if (rc < 0) {
			ns->vols[i]->ns_failed = true;
			ns->vols[i]->ns_dup = rc == -EEXIST;
			log_warn(LOG_MAIN,
				 "volume '%s' is not served: its "
				 "directory answers EIO",
				 ns->cfg.vols[i].dir);
		} else {
			ok++;
		}
	}
	if (!ok) {
		log_err(LOG_MAIN,
			"none of the %zu configured volumes can be "
			"served",
			ns->n);
		return -EHOSTUNREACH;
	}
	return 0;
}

void
cm_ns_before_fork(struct cm_ns *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		if (!ns->vols[i]->ns_failed)
			cm_daemon_before_fork(ns->vols[i]);
}

int
cm_ns_after_fork(struct cm_ns *ns)
{
	for (size_t i = 0; i < ns->n; i++) {
		int rc;

		if (ns->vols[i]->ns_failed)
			continue;
		rc = cm_daemon_after_fork(ns->vols[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int
cm_ns_build(struct cm_ns *ns)
{
	int rc = cm_loop_new(&ns->loop);

	if (rc < 0) {
		log_err(LOG_MAIN, "cannot set up the event loop: %s",
			strerror(-rc));
		return rc;
	}
	for (size_t i = 0; i < ns->n; i++) {
		if (ns->vols[i]->ns_failed)
			continue;
		rc = cm_daemon_build(ns->vols[i]);
		if (rc < 0)
			return rc;
	}
	return cm_ns_ctl_start(ns);
}

int
cm_ns_start(struct cm_ns *ns)
{
	int rc = cm_loop_run(&ns->loop);

	for (size_t i = 0; rc == 0 && i < ns->n; i++)
		if (!ns->vols[i]->ns_failed)
			rc = cm_daemon_start(ns->vols[i]);
	if (rc == 0)
		rc = retry_start(ns);
	return rc;
}

/* On the loop thread, its last job: every volume's loop modules. */
static void
ns_teardown(void *arg)
{
	struct cm_ns *ns = arg;

	for (size_t i = ns->n; i-- > 0;)
		if (ns->vols[i]->loop.owner)
			cm_daemon_teardown(ns->vols[i]);
}

void
cm_ns_stop(struct cm_ns *ns)
{
	retry_stop(ns);
	cm_ns_ctl_stop(ns);
	cm_loop_stop(&ns->loop, ns_teardown, ns);
	for (size_t i = ns->n; i-- > 0;)
		cm_daemon_stop(ns->vols[i]);
}

void
cm_ns_close(struct cm_ns *ns)
{
	for (size_t i = ns->n; i-- > 0;) {
		struct cm *cm = ns->vols[i];

		if (cm->cfg.volume)
			log_info(LOG_MAIN, "volume '%s':", cm->ns_dir);
		cm_daemon_close(cm);
		cm_release(cm);
		free(cm);
	}
	free(ns->vols);
	ns->vols = NULL;
	ns->n = 0;
	retry_free(ns);
	cs_close(ns->cs);
	ns->cs = NULL;
	cm_loop_release(&ns->loop);
	cm_config_release(&ns->cfg);
}

/* --- SIGHUP: the volume list --- */

/* The slot of @dir, or (size_t)-1. */
static size_t
slot_of(struct cm_ns *ns, const char *dir)
{
	for (size_t i = 0, n = cm_ns_count(ns); i < n; i++)
		if (!strcmp(cm_ns_vol(ns, i)->ns_dir, dir))
			return i;
	return (size_t)-1;
}

static size_t
sect_of(const struct cm_config *nc, const char *dir)
{
	for (size_t k = 0; k < nc->nvols; k++)
		if (!strcmp(nc->vols[k].dir, dir))
			return k;
	return (size_t)-1;
}

static int
same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

int
cm_ns_reload_check(struct cm_ns *ns, const struct cm_config *nc)
{
	struct ns_retry *r = ns->retry;
	size_t add = 0, n = cm_ns_count(ns);
	int rc = 0;

	for (size_t k = 0; k < nc->nvols && rc == 0; k++) {
		size_t i = slot_of(ns, nc->vols[k].dir);
		struct cm_config ov, nv;

		if (i == (size_t)-1) {
			add++;
			continue;
		}
		if (cm_config_for_vol(r->src[i], r->srck[i], &ov) < 0)
			return -ENOMEM;
		if (cm_config_for_vol(nc, k, &nv) < 0) {
			cm_config_release(&ov);
			return -ENOMEM;
		}
		if (!same_str(ov.server, nv.server) ||
		    !same_str(ov.volume, nv.volume)) {
			log_err(LOG_MAIN,
				"reload: volume '%s' is now '%s' from %s "
				"(was '%s' from %s): changing a running "
				"volume's server or volume needs a restart; "
				"the volume list stays as it is",
				nc->vols[k].dir, nv.volume, nv.server,
				ov.volume, ov.server);
			rc = -EINVAL;
		}
		cm_config_release(&ov);
		cm_config_release(&nv);
	}
	if (rc == 0 && n + add > ns->cap) {
		log_err(LOG_MAIN,
			"reload: %zu new volumes would make more than %zu "
			"since the start; the volume list stays as it is "
			"(restart cairnd)",
			add, ns->cap);
		rc = -ENOSPC;
	}
	return rc;
}

struct reload_job {
	struct cm_job job;
	struct cm_ns *ns;
	struct cm_config *nc; /* heap: kept when a volume was added */
	bool kept, done;
	const char **names; /* [cap]: changed in the mount root */
	size_t nnames;
};

/* Log what a volume no longer listed leaves behind. Loop thread. */
static void
say_removed(struct cm *cm)
{
	struct rlog_stats st = {0};
	uint64_t files = 0;

	if (cm->ns_failed) {
		log_info(LOG_MAIN, "reload: volume '%s' (not served) is "
				   "removed from the mount root",
			 cm->ns_dir);
		return;
	}
	if (cm->rlog)
		rlog_stats(cm->rlog, &st);
	if (cm->wb)
		files = wb_dirty_files(cm->wb);
	if (!files && !st.pending && !st.inflight)
		log_info(LOG_MAIN, "reload: volume '%s' is removed from the "
				   "mount root; nothing of it is waiting for "
				   "its server. Processes already inside it "
				   "keep working until cairnd restarts",
			 cm->ns_dir);
	else
		log_warn(LOG_MAIN, "reload: volume '%s' is removed from the "
				   "mount root; its %llu files not stored and "
				   "%llu changes in the replay log are kept in "
				   "'%s' and still go to its server while "
				   "cairnd runs (else at the next start that "
				   "lists it). Processes already inside it "
				   "keep working until cairnd restarts",
			 cm->ns_dir, (unsigned long long)files,
			 (unsigned long long)(st.pending + st.inflight),
			 cm->cfg.cache_dir);
}

static void
reload_run(struct cm_loop *loop, struct cm_job *job)
{
	struct reload_job *rj = container_of(job, struct reload_job, job);
	struct cm_ns *ns = rj->ns;
	struct ns_retry *r = ns->retry;
	struct cm_config *nc = rj->nc;
	uint64_t now = util_now_ms();

	pthread_mutex_lock(&r->lock);
	if (cm_stopping(loop))
		goto done;
	for (size_t i = 0; i < ns->n; i++) {
		struct cm *cm = ns->vols[i];
		bool listed = sect_of(nc, cm->ns_dir) != (size_t)-1;

		if (listed == !cm->ns_hidden)
			continue;
		__atomic_store_n(&cm->ns_hidden, !listed, __ATOMIC_RELEASE);
		rj->names[rj->nnames++] = cm->ns_dir;
		if (!listed) {
			say_removed(cm);
			continue;
		}
		log_info(LOG_MAIN, "reload: volume '%s' is listed again%s",
			 cm->ns_dir,
			 cm->ns_failed ? "; not served yet, trying to open it"
				       : "");
		r->at_ms[i] = now;
		r->delay_ms[i] = RETRY_FIRST_MS * 2;
	}
	for (size_t k = 0; k < nc->nvols; k++) {
		size_t i = ns->n;
		struct cm_config vc;
		struct cm *cm;

		if (slot_of(ns, nc->vols[k].dir) != (size_t)-1)
			continue;
		if (i >= ns->cap || cm_config_for_vol(nc, k, &vc) < 0)
			break; /* checked before; out of memory */
		cm = calloc(1, sizeof(*cm));
		if (!cm) {
			cm_config_release(&vc);
			break;
		}
		cm_init(cm, &vc);
		cm->ns = ns;
		cm->slot = (unsigned)i + 1;
		cm->ino_base = (uint64_t)cm->slot << CM_NS_SLOT_SHIFT;
		cm->ns_dir = nc->vols[k].dir;
		cm->cs = ns->cs;
		cm->cs_shared = true;
		cm->ns_failed = true; /* until the retrier has opened it */
		rj->kept = true;
		r->src[i] = nc;
		r->srck[i] = k;
		r->at_ms[i] = now;
		r->delay_ms[i] = RETRY_FIRST_MS * 2;
		r->tries[i] = 0;
		r->added[i] = true;
		__atomic_store_n(&ns->vols[i], cm, __ATOMIC_RELEASE);
		__atomic_store_n(&ns->n, i + 1, __ATOMIC_RELEASE);
		rj->names[rj->nnames++] = cm->ns_dir;
		log_info(LOG_MAIN, "reload: volume '%s' is new ('%s' from %s): "
				   "opening it in the background",
			 cm->ns_dir, cm->cfg.volume, cm->cfg.server);
	}
	if (rj->kept)
		r->cfgs[r->ncfgs++] = nc;
done:
	rj->done = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

void
cm_ns_reload_apply(struct cm_ns *ns, struct cm_config *nc,
		   void (*changed)(void *arg, const char *dir), void *arg)
{
	struct ns_retry *r = ns->retry;
	struct reload_job *rj = calloc(1, sizeof(*rj));

	if (rj) {
		rj->nc = malloc(sizeof(*rj->nc));
		rj->names = calloc(ns->cap, sizeof(*rj->names));
	}
	if (!rj || !rj->nc || !rj->names) {
		log_err(LOG_MAIN, "reload: out of memory; the volume list "
				  "stays as it is");
		if (rj) {
			free(rj->nc);
			free(rj->names);
		}
		free(rj);
		return;
	}
	/* Moved: the slots a reload adds point into it for good. */
	*rj->nc = *nc;
	memset(nc, 0, sizeof(*nc));
	rj->ns = ns;
	rj->job.run = reload_run;
	cm_post(&ns->loop, &rj->job);
	pthread_mutex_lock(&r->lock);
	while (!rj->done)
		pthread_cond_wait(&r->cond, &r->lock);
	pthread_mutex_unlock(&r->lock);
	for (size_t k = 0; k < rj->nnames; k++)
		changed(arg, rj->names[k]);
	if (!rj->kept) {
		cm_config_release(rj->nc);
		free(rj->nc);
	}
	free(rj->names);
	free(rj);
}
