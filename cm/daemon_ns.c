/*
 * daemon_ns.c - building and stopping a namespace: one cairnd serving
 * several volumes, from one or more servers, under one mount root
 * (daemon_i.h struct cm_ns, cairnd.conf(5) "[volume DIR]"). It opens the
 * one chunk store, builds a struct cm per volume with daemon.c (each on
 * its own CACHE/vol/DIR for meta.tdb, the replay log, the write states
 * and the mode, and attached to the namespace's one loop thread), and
 * tears them down in reverse. The FUSE routing is fuse_ns.c, the control
 * routing ctl_ns.c.
 *
 * What one volume's trouble does to the others: nothing. A volume whose
 * server cannot be reached at start and which the cache holds no copy
 * of is left out (its directory answers EIO, the log says why); a server
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

	rc = cm_config_for_vol(&ns->cfg, i, &vc);
	if (rc < 0)
		return rc;
	cm_init(cm, &vc);
	cm->ns = ns;
	cm->slot = (unsigned)i + 1;
	cm->ino_base = (uint64_t)cm->slot << CM_NS_SLOT_SHIFT;
	cm->ns_dir = ns->cfg.vols[i].dir;
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

struct ns_retry {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool started, stop;
	uint64_t *at_ms;    /* [n]: the next try of a left-out volume */
	unsigned *delay_ms; /* [n]: the wait after that try */
	unsigned *tries;    /* [n] */
	struct cm **old;    /* the replaced structs, freed at close */
	size_t nold;
};

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
	size_t n = ns->cfg.nvols ? ns->cfg.nvols : 1;
	pthread_condattr_t ca;

	if (!r)
		return -ENOMEM;
	ns->retry = r;
	r->at_ms = calloc(n, sizeof(*r->at_ms));
	r->delay_ms = calloc(n, sizeof(*r->delay_ms));
	r->tries = calloc(n, sizeof(*r->tries));
	r->old = calloc(n, sizeof(*r->old));
	pthread_mutex_init(&r->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (!r->at_ms || !r->delay_ms || !r->tries || !r->old)
		return -ENOMEM;
	return 0;
}

static void
retry_free(struct cm_ns *ns)
{
	struct ns_retry *r = ns->retry;

	if (!r)
		return;
	for (size_t k = 0; k < r->nold; k++) {
		cm_daemon_close(r->old[k]);
		cm_release(r->old[k]);
		free(r->old[k]);
	}
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r->at_ms);
	free(r->delay_ms);
	free(r->tries);
	free(r->old);
	free(r);
	ns->retry = NULL;
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
	if (rc == 0)
		__atomic_store_n(&ns->vols[aj->i], cm, __ATOMIC_RELEASE);
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
		log_info(LOG_MAIN, "volume '%s': trying again to open it (try "
				   "%u)",
			 old->ns_dir, r->tries[i]);
		rc = open_vol(ns, i, cm, ns->n);
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
		r->old[r->nold++] = rc == 0 ? old : cm;
		if (rc < 0) {
			log_err(LOG_MAIN, "volume '%s' could not be started "
					  "(%s): it stays out until cairnd "
					  "restarts",
				old->ns_dir, strerror(-rc));
			r->at_ms[i] = UINT64_MAX;
			return false;
		}
		log_msg(LOG_MAIN, LOG_NOTICE, "volume '%s' is back: its "
			"server answered at try %u; it is served from now on",
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
		bool any = false;
		struct timespec ts;

		for (size_t i = 0; i < ns->n && !r->stop; i++) {
			if (!cm_ns_vol(ns, i)->ns_failed ||
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
			if (r->at_ms[i] != UINT64_MAX) {
				any = true;
				if (r->at_ms[i] < next)
					next = r->at_ms[i];
			}
		}
		if (!any && !r->stop) {
			/* nothing left out any more: the thread ends */
			break;
		}
		now = util_now_ms();
		if (next <= now)
			continue;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += (time_t)((next - now) / 1000);
		ts.tv_nsec += (long)((next - now) % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
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
	bool any = false;
	int rc;

	for (size_t i = 0; i < ns->n; i++) {
		struct cm *cm = ns->vols[i];

		r->delay_ms[i] = RETRY_FIRST_MS * 2;
		r->at_ms[i] = now + RETRY_FIRST_MS;
		if (cm->ns_failed && cm->ns_dup)
			r->at_ms[i] = UINT64_MAX;
		else if (cm->ns_failed)
			any = true;
	}
	if (!any)
		return 0;
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
	ns->vols = calloc(ns->cfg.nvols, sizeof(*ns->vols));
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
