/*
 * cm.c - cairnd's context: the event loop thread, the job queue that
 * carries parked requests to it, counters, and small shared helpers.
 *
 * It runs the loop but builds nothing on it: daemon.c creates the modules,
 * starts recovery and hands cm_loop_stop() its teardown.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "chunkstore/cs.h"
#include "cm/cm.h"
#include "cm/inode.h"
#include "common/log.h"
#include "common/util.h"

int
cm_init(struct cm *cm, struct cm_config *cfg)
{
	memset(cm, 0, sizeof(*cm));
	cm->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	pthread_mutex_init(&cm->lock, NULL);
	pthread_mutex_init(&cm->qlock, NULL);
	TAILQ_INIT(&cm->queue);
	atomic_init(&cm->online, 0);
	metrics_hist_init(&cm->st.fetch_lat, metrics_latency_us,
			  metrics_latency_us_n, 1e-6);
	return 0;
}

void
cm_release(struct cm *cm)
{
	cm_config_release(&cm->cfg);
	free(cm->token);
	cm->token = NULL;
	pthread_mutex_destroy(&cm->lock);
	pthread_mutex_destroy(&cm->qlock);
}

/* Run every queued job; on the loop thread. */
static void
run_queue(evutil_socket_t fd, short what, void *arg)
{
	struct cm *cm = arg;
	struct cm_jobq q;
	struct cm_job *j;

	(void)fd;
	(void)what;
	TAILQ_INIT(&q);
	pthread_mutex_lock(&cm->qlock);
	TAILQ_CONCAT(&q, &cm->queue, link);
	pthread_mutex_unlock(&cm->qlock);
	while ((j = TAILQ_FIRST(&q))) {
		TAILQ_REMOVE(&q, j, link);
		j->run(cm, j);
	}
}

void
cm_post(struct cm *cm, struct cm_job *job)
{
	pthread_mutex_lock(&cm->qlock);
	TAILQ_INSERT_TAIL(&cm->queue, job, link);
	/* event_active() is thread-safe with evthread_use_pthreads(). It is
	 * called under qlock so that cm_loop_stop(), which closes the queue
	 * under qlock before it frees qev, cannot free it in between: the
	 * FUSE notifier may post a barrier's job after the loop is gone.
	 * No lock is taken inside qlock but libevent's own, and the loop
	 * runs jobs without holding that one. */
	if (!cm->qclosed)
		event_active(cm->qev, EV_READ, 0);
	pthread_mutex_unlock(&cm->qlock);
}

void
cm_run_late_jobs(struct cm *cm)
{
	bool closed;

	pthread_mutex_lock(&cm->qlock);
	closed = cm->qclosed;
	pthread_mutex_unlock(&cm->qlock);
	/* While the loop runs, its jobs are its own. */
	if (closed)
		run_queue(-1, 0, cm);
}

static void
close_queue(struct cm *cm)
{
	pthread_mutex_lock(&cm->qlock);
	cm->qclosed = true;
	pthread_mutex_unlock(&cm->qlock);
}

int
cm_loop_new(struct cm *cm)
{
	if (evthread_use_pthreads() < 0)
		return -ENOMEM;
	cm->base = event_base_new();
	if (!cm->base)
		return -ENOMEM;
	cm->qev = event_new(cm->base, -1, EV_PERSIST, run_queue, cm);
	if (!cm->qev)
		return -ENOMEM;
	return 0;
}

static void *
loop_main(void *arg)
{
	struct cm *cm = arg;

	event_base_dispatch(cm->base);
	return NULL;
}

int
cm_loop_run(struct cm *cm)
{
	int rc = pthread_create(&cm->loop_thread, NULL, loop_main, cm);

	if (rc)
		return -rc;
	cm->loop_running = true;
	return 0;
}

struct stop_job {
	struct cm_job job;
	void (*teardown)(struct cm *cm);
};

/* The last job: tear down on the loop thread, then leave the loop. */
static void
stop_job(struct cm *cm, struct cm_job *job)
{
	struct stop_job *sj = (struct stop_job *)job;

	if (sj->teardown)
		sj->teardown(cm);
	event_base_loopbreak(cm->base);
	free(sj);
}

void
cm_loop_stop(struct cm *cm, void (*teardown)(struct cm *cm))
{
	struct stop_job *sj;

	if (cm->loop_running) {
		sj = calloc(1, sizeof(*sj));
		if (sj) {
			sj->job.run = stop_job;
			sj->teardown = teardown;
			atomic_store_explicit(&cm->stopping, true,
					      memory_order_release);
			cm_post(cm, &sj->job);
			pthread_join(cm->loop_thread, NULL);
		}
		cm->loop_running = false;
		/* Jobs posted after the stop job: run them so they fail. */
		close_queue(cm);
		run_queue(-1, 0, cm);
	} else {
		close_queue(cm);
		if (teardown)
			teardown(cm);
	}
	if (cm->qev)
		event_free(cm->qev);
	cm->qev = NULL;
	if (cm->base)
		event_base_free(cm->base);
	cm->base = NULL;
}

struct delayed {
	struct cm *cm;
	struct cm_job *job;
};

static void
delayed_cb(evutil_socket_t fd, short what, void *arg)
{
	struct delayed *d = arg;

	(void)fd;
	(void)what;
	d->job->run(d->cm, d->job);
	free(d);
}

void
cm_kernel_barrier(struct cm *cm, struct cm_job *job)
{
	if (cm->kops.barrier)
		cm->kops.barrier(cm->kops.arg, job);
	else
		cm_post(cm, job);
}

int
cm_post_after(struct cm *cm, struct cm_job *job, unsigned ms)
{
	struct delayed *d = malloc(sizeof(*d));
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	if (!d)
		return -ENOMEM;
	d->cm = cm;
	d->job = job;
	if (event_base_once(cm->base, -1, EV_TIMEOUT, delayed_cb, d, &tv) <
	    0) {
		free(d);
		return -ENOMEM;
	}
	return 0;
}

int
cm_volinfo(struct cm *cm, struct proto_volinfo *vi)
{
	int rc = -ENOENT;

	pthread_mutex_lock(&cm->lock);
	if (cm->have_vi) {
		*vi = cm->vi;
		rc = 0;
	}
	pthread_mutex_unlock(&cm->lock);
	return rc;
}

#define LD(x) ((unsigned long long)atomic_load_explicit(&cm->st.x, \
			memory_order_relaxed))

size_t
cm_stats_format(struct cm *cm, char *buf, size_t len)
{
	static const char *const kinds[CM_R_MAX] = {
		"lookup", "getattr", "readdir", "open", "read",
		"readlink", "xattr", "statfs", "other"};
	struct cs_stats cs = {0};
	size_t off = 0;
	int n;

	if (cm->cs)
		cs_get_stats(cm->cs, &cs);
#define P(...)                                                               \
	do {                                                                 \
		n = snprintf(buf + off, len - off, __VA_ARGS__);             \
		if (n < 0 || (size_t)n >= len - off)                         \
			return off;                                          \
		off += (size_t)n;                                            \
	} while (0)
	if (len == 0)
		return 0;
	buf[0] = '\0';
	P("online %d\n", atomic_load(&cm->online));
	for (int i = 0; i < CM_R_MAX; i++)
		P("req_%s %llu\n", kinds[i], LD(reqs[i]));
	P("parked %llu\n", LD(parked));
	P("chunk_hits %llu\n", LD(chunk_hits));
	P("chunk_misses %llu\n", LD(chunk_misses));
	P("chunks_fetched %llu\n", LD(chunks_fetched));
	P("bytes_fetched %llu\n", LD(bytes_fetched));
	P("prefetches %llu\n", LD(prefetches));
	P("fetch_retries %llu\n", LD(fetch_retries));
	P("fetch_errors %llu\n", LD(fetch_errors));
	P("bad_chunks %llu\n", LD(bad_chunks));
	P("early_reads %llu\n", LD(early_reads));
	P("stale_chunks %llu\n", LD(stale_chunks));
	P("dir_fetches %llu\n", LD(dir_fetches));
	P("getattr_requests %llu\n", LD(getattr_reqs));
	P("getattr_fids %llu\n", LD(getattr_fids));
	P("link_fetches %llu\n", LD(link_fetches));
	P("xattr_fetches %llu\n", LD(xattr_fetches));
	P("events %llu\n", LD(events));
	P("own_events %llu\n", LD(own_events));
	P("event_reconnects %llu\n", LD(ev_reconnects));
	P("revalidations %llu\n", LD(revalidations));
	P("invalidations %llu\n", LD(invalidations));
	P("stores %llu\n", LD(stores));
	P("writebacks %llu\n", LD(writebacks));
	P("conflicts %llu\n", LD(conflicts));
	P("inodes %zu\n", cm->ino ? ino_count(cm->ino) : (size_t)0);
	P("cache_bytes_used %llu\n", (unsigned long long)cs.bytes_used);
	P("cache_bytes_limit %llu\n", (unsigned long long)cs.bytes_limit);
	P("cache_files_used %llu\n", (unsigned long long)cs.files_used);
	P("cache_evictions %llu\n", (unsigned long long)cs.evictions);
	P("chunk_size %u\n", cm->chunk_size);
#undef P
	return off;
}

int
cm_http_errno(int err, long status, const char *body, size_t len)
{
	struct proto_error pe;

	if (err)
		return err == -ECANCELED ? -ECANCELED : -EIO;
	if (status >= 200 && status < 300)
		return 0;
	if (status == 304)
		return 0;
	if (body && len && proto_error_decode(body, len, &pe) == 0 && pe.err)
		return -pe.err;
	if (status <= 0)
		return -EIO;
	return -proto_status_to_errno((int)status);
}

char *
cm_read_token(const char *path)
{
	char buf[1024], why[512];
	ssize_t n;
	char *p, *e;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		rc = errno;
		if (rc == ELOOP)
			log_err(LOG_MAIN,
				"cannot use token file '%s': it is a "
				"symbolic link; give the file itself",
				path);
		errno = rc;
		return NULL;
	}
	rc = util_check_secret_file(fd, path, why, sizeof(why));
	if (rc) {
		if (rc == -EPERM)
			log_err(LOG_MAIN, "cannot use token file '%s': %s",
				path, why);
		close(fd);
		errno = -rc;
		return NULL;
	}
	n = util_pread_all(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	if (n < 0) {
		rc = (int)-n;
		p = NULL;
		goto out;
	}
	buf[n] = '\0';
	p = buf;
	while (*p && isspace((unsigned char)*p))
		p++;
	e = p;
	while (*e && !isspace((unsigned char)*e)) {
		if (!isprint((unsigned char)*e))
			break;
		e++;
	}
	if (*e && !isspace((unsigned char)*e)) {
		rc = EINVAL; /* a control byte in the token */
		p = NULL;
		goto out;
	}
	*e = '\0';
	if (!*p) {
		rc = EINVAL;
		p = NULL;
		goto out;
	}
	p = strdup(p);
	rc = p ? 0 : errno;
out:
	/* On every path: whatever part of the token was read. */
	explicit_bzero(buf, sizeof(buf));
	errno = rc;
	return p;
}
