/*
 * vold_pool.h - cairn-vold's worker threads: disk work off the loop.
 *
 * The event loop never waits for the disk (STYLE: "loops never block on
 * fsync"): it wraps the work in a job and submits it; one of N worker
 * threads runs job->run(); then job->done() runs back on the loop thread,
 * which is the only thread that may touch evhttp requests.
 *
 * Threads: vold_pool_submit() from the loop thread only; run() on a worker;
 * done() on the loop thread. The caller owns the job; done() usually
 * frees it.
 */
#ifndef CAIRN_VOLD_POOL_H
#define CAIRN_VOLD_POOL_H

#include <sys/queue.h>

struct event_base;
struct vold_pool;

struct vold_job {
	TAILQ_ENTRY(vold_job) link;
	void (*run)(struct vold_job *job);  /* on a worker */
	void (*done)(struct vold_job *job); /* then on the loop */
};

/* Start @nthreads workers delivering done() on @base (which must have been
 * made after evthread_use_pthreads()). NULL + errno on failure. */
struct vold_pool *vold_pool_new(struct event_base *base, int nthreads);

/* Queue @job. Loop thread only. */
void vold_pool_submit(struct vold_pool *p, struct vold_job *job);

/* Jobs queued or running. Loop thread only. */
unsigned vold_pool_pending(const struct vold_pool *p);

/* Finish queued jobs, stop the workers, run the last done()s, free.
 * Accepts NULL. Loop thread only, with the loop not running. */
void vold_pool_free(struct vold_pool *p);

#endif /* CAIRN_VOLD_POOL_H */
