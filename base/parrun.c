/*
 * parrun.c - par_run(): a few independent blocking calls at once, each
 * call taken by whichever thread is free next. Not a pool: the threads
 * live for one par_run() (a sync costs far more than a thread start, and
 * nothing outlives the call, so a fork()ed child inherits no stale
 * threads).
 */
#include <pthread.h>

#include "base/parrun.h"

struct par {
	void (*fn)(void *arg, size_t i);
	void *arg;
	size_t n;
	size_t next; /* atomic: the next call to take */
};

static void *
par_worker(void *arg)
{
	struct par *p = arg;
	size_t i;

	while ((i = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED)) < p->n)
		p->fn(p->arg, i);
	return NULL;
}

void
par_run(size_t n, unsigned extra, void (*fn)(void *arg, size_t i), void *arg)
{
	struct par p = {fn, arg, n, 0};
	pthread_t th[PARRUN_THREADS];
	size_t nth = 0, want = n ? n - 1 : 0;

	if (want > extra)
		want = extra;
	if (want > PARRUN_THREADS)
		want = PARRUN_THREADS;
	while (nth < want &&
	       pthread_create(&th[nth], NULL, par_worker, &p) == 0)
		nth++;
	par_worker(&p);
	for (size_t i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
}
