/*
 * loop.h - the event loop runtime of cairnd (level 1 of doc/cm.md
 * "Levels"): one libevent base run by one loop thread, the job queue that
 * carries work from any thread to it (cm_post), timers (cm_post_after),
 * the kernel barrier and the stopping flag.
 *
 * Threads (DESIGN.md "Data flow"):
 *  - FUSE workers answer what the caches hold, at once. For a miss they
 *    package the request as a struct cm_job and cm_post() it; they never
 *    wait for the network.
 *  - ONE loop thread runs @base: HTTP (http.h), the fetch engine, metadata
 *    fetches, the event stream, and the jobs. Modules whose functions say
 *    "loop thread only" keep their state unlocked for that reason.
 *  - Kernel invalidations are queued by the loop and written to /dev/fuse
 *    by a notifier thread of the FUSE front (doc/cm.md explains why not by
 *    the loop itself: a parked lookup holds the directory's lock in the
 *    kernel that an entry invalidation needs). The front plugs them in
 *    through struct cm_kernel_ops, so no module below it includes
 *    fuse_lowlevel.h.
 *
 * Locks: qlock (the queue) is a leaf. stopping is an atomic, read without
 * a lock (cm_stopping()).
 *
 * A job does not get the daemon's context: its owner embeds struct cm_job
 * in a struct of its own and finds its module from there (container_of).
 */
#ifndef CAIRN_CM_LOOP_H
#define CAIRN_CM_LOOP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct event;
struct event_base;
struct cm_loop;

#ifndef container_of
#define container_of(ptr, type, member)                                        \
	((type *)(void *)((char *)(ptr)-offsetof(type, member)))
#endif

/*
 * A unit of work for the loop thread. The poster allocates the job (usually
 * embedded in a bigger struct); @run owns it from then on.
 */
struct cm_job {
	TAILQ_ENTRY(cm_job) link;
	void (*run)(struct cm_loop *loop, struct cm_job *job);
};
TAILQ_HEAD(cm_jobq, cm_job);
struct cm_delayed; /* loop.c: a timer of cm_post_after() */
TAILQ_HEAD(cm_delayedq, cm_delayed);

/*
 * Kernel notifications; set by the FUSE front, NULL-safe (a NULL hook is
 * skipped). Called on the loop thread only; they queue and return.
 */
struct cm_kernel_ops {
	/* Invalidate the attributes (@off < 0) or attributes and cached
	 * data from @off for @len bytes (0 = to the end) of @ino. */
	void (*inval_inode)(void *arg, uint64_t ino, int64_t off, int64_t len);
	/* Drop the kernel's dentry @name in directory @parent. */
	void (*inval_entry)(void *arg, uint64_t parent, const char *name,
			    size_t len);
	/* Post @job to the loop (cm_post) once every notification queued
	 * before this call was written to the kernel, so an answer that
	 * promises "the next stat asks cairnd" is sent after the kernel
	 * forgot. @job is the caller's until it runs; it runs exactly once,
	 * also at shutdown (then on the stopping thread, with
	 * cm_stopping() true). Use cm_kernel_barrier(), which posts @job
	 * at once when no hook is set. */
	void (*barrier)(void *arg, struct cm_job *job);
	void *arg;
};

struct cm_loop {
	struct event_base *base;   /* the loop thread's */
	struct cm_kernel_ops kops; /* set by the FUSE front */

	pthread_mutex_t qlock;
	struct cm_jobq queue; /* protected by qlock */
	/* Timers of cm_post_after() not fired yet, on the loop that owns
	 * the base (an attached loop's too): freed with the base. */
	struct cm_delayedq delayed; /* protected by qlock */
	bool qclosed;	      /* protected by qlock: qev is gone, a
				 posted job waits for
				 cm_run_late_jobs() */
	atomic_bool stopping; /* set once by cm_loop_stop(); read by
				 any thread (cm_stopping()) */
	struct event *qev;    /* fired by cm_post() */
	pthread_t thread;
	bool running;
	/* Attached (cm_loop_attach()): the loop whose base and thread this
	 * one shares, and the next loop attached to that owner. */
	struct cm_loop *owner;
	struct cm_loop *next_attached;
};

/* Set up @l's lock and queue; nothing is allocated. */
void cm_loop_init(struct cm_loop *l);
/* Create the event base (with pthreads support) and the job queue's
 * event; nothing runs yet. @return 0 or -errno. */
int cm_loop_new(struct cm_loop *l);
/*
 * Share @owner's base and thread (one cairnd serving several volumes:
 * one struct cm_loop per volume, so each has its own job queue and
 * container_of() still finds its volume, but one loop thread runs them
 * all and "loop thread only" stays true across volumes). Call after
 * cm_loop_new(@owner), from the main thread, before the loop runs.
 * cm_loop_run() of an attached loop only marks it running; the owner's
 * cm_loop_stop() stops every attached loop with it (their teardowns are
 * the caller's: see cm_loop_stop()). @return 0 or -errno.
 */
int cm_loop_attach(struct cm_loop *l, struct cm_loop *owner);

/* Run the loop in a new thread: queued jobs start running. */
int cm_loop_run(struct cm_loop *l);
/*
 * Stop the loop: set stopping, run @teardown(@arg) (may be NULL) on the
 * loop thread as its last job, join the thread, run what was posted after
 * it (so it fails), free the base. If the loop never ran, @teardown runs
 * here. Safe to call if cm_loop_new() never ran or failed.
 *
 * Attached loops (cm_loop_attach()): the owner's stop sets their stopping
 * flags too, before @teardown, which must tear down what runs on them as
 * well. Then cm_loop_stop() of each attached loop (after the owner's,
 * with no teardown) runs what was posted to it late and frees its event.
 */
void cm_loop_stop(struct cm_loop *l, void (*teardown)(void *arg), void *arg);
/* Free the lock (after cm_loop_stop()). */
void cm_loop_release(struct cm_loop *l);

/* Hand @job to the loop thread; any thread. Returns at once. After
 * cm_loop_stop() began, jobs are run with stopping set so they can
 * fail their requests; once the loop is gone they wait in the queue for
 * cm_run_late_jobs(). */
void cm_post(struct cm_loop *l, struct cm_job *job);
/* After cm_loop_stop(), once no thread can post any more (the FUSE
 * notifier is joined): run what was posted since, so every job runs
 * exactly once and can answer and free its request. Does nothing before
 * cm_loop_stop() closed the queue. */
void cm_run_late_jobs(struct cm_loop *l);

/* Has cm_loop_stop() begun? Any thread, no lock: the flag only goes
 * from false to true, and a job posted after it was set still runs (with
 * it set), so a reader that misses the change by a moment is harmless. */
static inline bool
cm_stopping(struct cm_loop *l)
{
	return atomic_load_explicit(&l->stopping, memory_order_acquire);
}

/* Loop thread: run @job on the loop once the kernel notifications queued
 * so far were delivered (kops.barrier), or, with no notifier, soon
 * (cm_post). @job runs exactly once, never inside this call. */
void cm_kernel_barrier(struct cm_loop *l, struct cm_job *job);

/* Loop thread: run @job on the loop in @ms milliseconds. @return 0 or
 * -errno (then nothing happens: the caller still owns @job). */
int cm_post_after(struct cm_loop *l, struct cm_job *job, unsigned ms);

#endif /* CAIRN_CM_LOOP_H */
