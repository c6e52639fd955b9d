/*
 * loop.c - the loop thread, the job queue that carries parked requests to
 * it, timers and the kernel barrier (loop.h).
 *
 * It runs the loop but builds nothing on it: daemon.c creates the modules,
 * starts recovery and hands cm_loop_stop() its teardown.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "cm/loop.h"

void
cm_loop_init(struct cm_loop *l)
{
	memset(l, 0, sizeof(*l));
	pthread_mutex_init(&l->qlock, NULL);
	TAILQ_INIT(&l->queue);
	TAILQ_INIT(&l->delayed);
	atomic_init(&l->stopping, false);
}

void
cm_loop_release(struct cm_loop *l)
{
	pthread_mutex_destroy(&l->qlock);
}

/* Run every queued job; on the loop thread. */
static void
run_queue(evutil_socket_t fd, short what, void *arg)
{
	struct cm_loop *l = arg;
	struct cm_jobq q;
	struct cm_job *j;

	(void)fd;
	(void)what;
	TAILQ_INIT(&q);
	pthread_mutex_lock(&l->qlock);
	TAILQ_CONCAT(&q, &l->queue, link);
	pthread_mutex_unlock(&l->qlock);
	while ((j = TAILQ_FIRST(&q))) {
		TAILQ_REMOVE(&q, j, link);
		j->run(l, j);
	}
}

void
cm_post(struct cm_loop *l, struct cm_job *job)
{
	pthread_mutex_lock(&l->qlock);
	TAILQ_INSERT_TAIL(&l->queue, job, link);
	/* event_active() is thread-safe with evthread_use_pthreads(). It is
	 * called under qlock so that cm_loop_stop(), which closes the queue
	 * under qlock before it frees qev, cannot free it in between: the
	 * FUSE notifier may post a barrier's job after the loop is gone.
	 * No lock is taken inside qlock but libevent's own, and the loop
	 * runs jobs without holding that one. */
	if (!l->qclosed)
		event_active(l->qev, EV_READ, 0);
	pthread_mutex_unlock(&l->qlock);
}

void
cm_run_late_jobs(struct cm_loop *l)
{
	bool closed;

	pthread_mutex_lock(&l->qlock);
	closed = l->qclosed;
	pthread_mutex_unlock(&l->qlock);
	/* While the loop runs, its jobs are its own. */
	if (closed)
		run_queue(-1, 0, l);
}

static void
close_queue(struct cm_loop *l)
{
	pthread_mutex_lock(&l->qlock);
	l->qclosed = true;
	pthread_mutex_unlock(&l->qlock);
}

int
cm_loop_new(struct cm_loop *l)
{
	if (evthread_use_pthreads() < 0)
		return -ENOMEM;
	l->base = event_base_new();
	if (!l->base)
		return -ENOMEM;
	l->qev = event_new(l->base, -1, EV_PERSIST, run_queue, l);
	if (!l->qev)
		return -ENOMEM;
	return 0;
}

int
cm_loop_attach(struct cm_loop *l, struct cm_loop *owner)
{
	if (!owner->base || owner->owner)
		return -EINVAL;
	l->base = owner->base;
	l->owner = owner;
	l->qev = event_new(l->base, -1, EV_PERSIST, run_queue, l);
	if (!l->qev)
		return -ENOMEM;
	l->next_attached = owner->next_attached;
	owner->next_attached = l;
	return 0;
}

static void *
loop_main(void *arg)
{
	struct cm_loop *l = arg;

	event_base_dispatch(l->base);
	return NULL;
}

int
cm_loop_run(struct cm_loop *l)
{
	int rc;

	if (l->owner) {
		/* The owner's thread runs it (started before or after). */
		l->running = true;
		return 0;
	}
	rc = pthread_create(&l->thread, NULL, loop_main, l);

	if (rc)
		return -rc;
	l->running = true;
	return 0;
}

struct stop_job {
	struct cm_job job;
	void (*teardown)(void *arg);
	void *arg;
};

/* The last job: tear down on the loop thread, then leave the loop. */
static void
stop_job(struct cm_loop *l, struct cm_job *job)
{
	struct stop_job *sj = container_of(job, struct stop_job, job);

	if (sj->teardown)
		sj->teardown(sj->arg);
	event_base_loopbreak(l->base);
	free(sj);
}

/* An attached loop whose owner stopped: nothing runs it any more. Close
 * its queue and free its event (the owner's base is freed right after),
 * then run what was posted to it late, so those jobs fail. Called by the
 * owner's stop, and again (harmlessly) by the attached loop's own. */
static void
detach(struct cm_loop *l)
{
	atomic_store_explicit(&l->stopping, true, memory_order_release);
	l->running = false;
	close_queue(l);
	if (l->qev)
		event_free(l->qev);
	l->qev = NULL;
	l->base = NULL;
	run_queue(-1, 0, l);
}

static void free_delayed(struct cm_loop *l);

void
cm_loop_stop(struct cm_loop *l, void (*teardown)(void *arg), void *arg)
{
	struct stop_job *sj;

	if (l->owner) {
		/* Its owner stops it (see loop.h); here only what is left. */
		detach(l);
		if (teardown)
			teardown(arg);
		return;
	}
	for (struct cm_loop *a = l->next_attached; a; a = a->next_attached)
		atomic_store_explicit(&a->stopping, true, memory_order_release);
	if (l->running) {
		sj = calloc(1, sizeof(*sj));
		if (sj) {
			sj->job.run = stop_job;
			sj->teardown = teardown;
			sj->arg = arg;
			atomic_store_explicit(&l->stopping, true,
					      memory_order_release);
			cm_post(l, &sj->job);
			pthread_join(l->thread, NULL);
		}
		l->running = false;
		/* Jobs posted after the stop job: run them so they fail. */
		close_queue(l);
		run_queue(-1, 0, l);
	} else {
		close_queue(l);
		if (teardown)
			teardown(arg);
	}
	for (struct cm_loop *a = l->next_attached; a; a = a->next_attached)
		detach(a);
	free_delayed(l);
	if (l->qev)
		event_free(l->qev);
	l->qev = NULL;
	if (l->base)
		event_base_free(l->base);
	l->base = NULL;
}

struct cm_delayed {
	struct cm_loop *l;     /* whose job it is */
	struct cm_loop *owner; /* whose base and list the timer is on */
	struct cm_job *job;
	struct event *ev;
	TAILQ_ENTRY(cm_delayed) link;
};

static void
delayed_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cm_delayed *d = arg;
	struct cm_loop *l = d->l;
	struct cm_job *job = d->job;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&d->owner->qlock);
	TAILQ_REMOVE(&d->owner->delayed, d, link);
	pthread_mutex_unlock(&d->owner->qlock);
	event_free(d->ev); /* fired: no longer pending */
	free(d);
	job->run(l, job);
}

/* The timers that never fired (a stop before their time): their jobs
 * never run, as before; their memory goes with the base. Stopped loop,
 * main thread. */
static void
free_delayed(struct cm_loop *l)
{
	struct cm_delayed *d;

	pthread_mutex_lock(&l->qlock);
	while ((d = TAILQ_FIRST(&l->delayed))) {
		TAILQ_REMOVE(&l->delayed, d, link);
		event_free(d->ev);
		free(d);
	}
	pthread_mutex_unlock(&l->qlock);
}

void
cm_kernel_barrier(struct cm_loop *l, struct cm_job *job)
{
	if (l->kops.barrier)
		l->kops.barrier(l->kops.arg, job);
	else
		cm_post(l, job);
}

int
cm_post_after(struct cm_loop *l, struct cm_job *job, unsigned ms)
{
	struct cm_loop *o = l->owner ? l->owner : l;
	struct cm_delayed *d = calloc(1, sizeof(*d));
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	int rc = 0;

	if (!d)
		return -ENOMEM;
	d->l = l;
	d->owner = o;
	d->job = job;
	d->ev = evtimer_new(o->base, delayed_cb, d);
	if (!d->ev) {
		free(d);
		return -ENOMEM;
	}
	pthread_mutex_lock(&o->qlock);
	if (o->qclosed)
		rc = -ECANCELED; /* stopped: the base is going */
	else if (evtimer_add(d->ev, &tv) < 0)
		rc = -ENOMEM;
	else
		TAILQ_INSERT_TAIL(&o->delayed, d, link);
	pthread_mutex_unlock(&o->qlock);
	if (rc) {
		event_free(d->ev);
		free(d);
	}
	return rc;
}
