/*
 * vold_pool.c - a fixed pool of worker threads for cairn-vold: a job queue
 * in, a done queue out, and an eventfd that the workers write so done()
 * runs on the loop. Not a general thread pool: no priorities, no
 * cancellation (a job whose client went away still runs; its done() finds
 * the request gone).
 *
 * Why an eventfd of our own and not event_active() from the worker: that
 * takes libevent's base lock and writes libevent's notification fd while
 * holding it, and the loop, woken by that very write, then finds the lock
 * held and sleeps on it (a futex wait and wake, two context switches more
 * for every request). The loop reads our eventfd under no lock of ours.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/log.h"
#include "vol/vold_pool.h"

struct vold_pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	TAILQ_HEAD(, vold_job) todo;	/* protected by lock */
	TAILQ_HEAD(, vold_job) done;	/* protected by lock */
	bool stop;			/* protected by lock */
	unsigned pending;		/* loop thread only */
	struct event *ev; /* EV_READ on efd */
	int efd;	  /* a worker writes it when done was empty */
	int n;
	pthread_t *threads;
};

static void *
worker(void *arg)
{
	struct vold_pool *p = arg;
	bool wake;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct vold_job *j;

		while (!p->stop && TAILQ_EMPTY(&p->todo))
			pthread_cond_wait(&p->cond, &p->lock);
		j = TAILQ_FIRST(&p->todo);
		if (!j)
			break; /* stop, and nothing left to do */
		TAILQ_REMOVE(&p->todo, j, link);
		pthread_mutex_unlock(&p->lock);
		j->run(j);
		pthread_mutex_lock(&p->lock);
		wake = TAILQ_EMPTY(&p->done);
		TAILQ_INSERT_TAIL(&p->done, j, link);
		/* Wake the loop outside our lock (its drain() takes it at
		 * once), and only for the first job of a batch: a list that
		 * was not empty has a wake-up on its way whose drain has not
		 * taken the list yet, and that drain takes this job too. */
		if (wake) {
			uint64_t one = 1;

			pthread_mutex_unlock(&p->lock);
			/* Cannot fail but by overflowing the counter, which
			 * a read resets long before that. */
			if (write(p->efd, &one, sizeof(one)) < 0)
				log_warn(LOG_MAIN, "cannot wake the loop: %s",
					 strerror(errno));
			pthread_mutex_lock(&p->lock);
		}
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void
drain(struct vold_pool *p)
{
	TAILQ_HEAD(, vold_job) q = TAILQ_HEAD_INITIALIZER(q);
	struct vold_job *j;

	pthread_mutex_lock(&p->lock);
	TAILQ_CONCAT(&q, &p->done, link);
	pthread_mutex_unlock(&p->lock);
	/* done() may submit new jobs (a request that needs a second step):
	 * take the list first so that never loops here. */
	while ((j = TAILQ_FIRST(&q))) {
		TAILQ_REMOVE(&q, j, link);
		p->pending--;
		j->done(j);
	}
}

static void
on_done(evutil_socket_t fd, short what, void *arg)
{
	uint64_t n;

	/* Reset the count before taking the list: a job finished after
	 * this read writes again, one finished before it is in the list. */
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn(LOG_MAIN, "cannot read the pool's eventfd: %s",
			 strerror(errno));
	drain(arg);
}

struct vold_pool *
vold_pool_new(struct event_base *base, int nthreads)
{
	struct vold_pool *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	TAILQ_INIT(&p->todo);
	TAILQ_INIT(&p->done);
	p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->efd < 0)
		goto fail;
	p->ev = event_new(base, p->efd, EV_READ | EV_PERSIST, on_done, p);
	p->threads = calloc((size_t)nthreads, sizeof(*p->threads));
	if (!p->ev || !p->threads || event_add(p->ev, NULL))
		goto fail;
	for (p->n = 0; p->n < nthreads; p->n++) {
		int rc = pthread_create(&p->threads[p->n], NULL, worker, p);

		if (rc) {
			errno = rc;
			log_err(LOG_MAIN, "cannot start worker thread: %s",
				strerror(rc));
			goto fail;
		}
	}
	return p;
fail:
	vold_pool_free(p);
	errno = errno ? errno : ENOMEM;
	return NULL;
}

void
vold_pool_submit(struct vold_pool *p, struct vold_job *job)
{
	p->pending++;
	pthread_mutex_lock(&p->lock);
	TAILQ_INSERT_TAIL(&p->todo, job, link);
	pthread_mutex_unlock(&p->lock);
	/* After the unlock, so the woken worker does not find the lock
	 * still held. A worker that is not waiting takes the job at its
	 * next look at the queue (under the lock), so none is missed. */
	pthread_cond_signal(&p->cond);
}

unsigned
vold_pool_pending(const struct vold_pool *p)
{
	return p->pending;
}

void
vold_pool_free(struct vold_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->n; i++)
		pthread_join(p->threads[i], NULL);
	if (p->ev)
		drain(p);
	if (p->ev)
		event_free(p->ev);
	if (p->efd >= 0)
		close(p->efd);
	free(p->threads);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
