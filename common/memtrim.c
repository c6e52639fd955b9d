/*
 * memtrim.c - deferred malloc_trim after a burst of frees (memtrim.h).
 *
 * State is process-wide (the heap is). A note adds to @pending and stamps
 * @last_ms; the first note that brings @pending to MEMTRIM_MIN wakes the
 * helper thread, which then waits until the notes have been quiet for
 * MEMTRIM_QUIET_MS (or MEMTRIM_MAX_DELAY_MS since it woke) and trims.
 */
#include "config.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "common/log.h"
#include "common/memtrim.h"
#include "common/util.h"

static pthread_mutex_t mt_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t mt_cond = PTHREAD_COND_INITIALIZER;
static bool mt_started;	    /* the thread runs (mt_lock) */
static bool mt_failed;	    /* it could not be started (mt_lock) */
static bool mt_atfork;	    /* mt_child() registered (mt_lock) */
static bool mt_armed;	    /* a trim is due (mt_lock) */
static _Atomic size_t mt_pending;   /* bytes noted since the last trim */
static _Atomic bool mt_full;	    /* memtrim_note() since then, not only
				       memtrim_note_work() */
static _Atomic uint64_t mt_last_ms; /* when the last note came */
static _Atomic uint64_t mt_trims;
static _Atomic uint64_t mt_sync_ms; /* last trim without the thread */

static void
trim_now(void)
{
	size_t noted = atomic_exchange(&mt_pending, 0);
	bool full = atomic_exchange(&mt_full, false);
	uint64_t t0 = util_now_ms();
	int gave = malloc_trim(full ? 0 : MEMTRIM_WORK_PAD);
	uint64_t ms;

	atomic_fetch_add(&mt_trims, 1);
	ms = util_now_ms() - t0;
	/* Every thread's malloc waited that long: say so when it shows. */
	if (ms >= 50)
		log_info(LOG_MAIN, "memtrim: trimming the heap took %llu ms "
				   "(%zu bytes freed since the last trim)",
			 (unsigned long long)ms, noted);
	else
		log_debug(LOG_MAIN, "memtrim: %zu bytes freed, trim %s in "
				    "%llu ms",
			  noted, gave ? "gave memory back" : "found nothing",
			  (unsigned long long)ms);
}

/* A forked child (cairnd going to the background) has no helper thread:
 * the next note that crosses the line starts one. */
static void
mt_child(void)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t c = PTHREAD_COND_INITIALIZER;

	mt_lock = m;
	mt_cond = c;
	mt_started = false;
	mt_armed = false;
	/* What the parent noted went with its thread: a count left at or
	 * past MEMTRIM_MIN would make every later note skip starting the
	 * child's thread (cairnd notes listings before it forks). */
	atomic_store(&mt_pending, 0);
	atomic_store(&mt_full, false);
}

static void
sleep_ms(uint64_t ms)
{
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
			      .tv_nsec = (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) != 0)
		;
}

static void *
mt_main(void *arg)
{
	(void)arg;
	for (;;) {
		uint64_t woke, now, quiet;

		pthread_mutex_lock(&mt_lock);
		while (!mt_armed)
			pthread_cond_wait(&mt_cond, &mt_lock);
		pthread_mutex_unlock(&mt_lock);
		woke = util_now_ms();
		for (;;) {
			now = util_now_ms();
			quiet = now - atomic_load(&mt_last_ms);
			if (quiet >= MEMTRIM_QUIET_MS ||
			    now - woke >= MEMTRIM_MAX_DELAY_MS)
				break;
			sleep_ms(MEMTRIM_QUIET_MS - quiet);
		}
		/* Disarm first: a note arriving during the trim arms the
		 * next one. */
		pthread_mutex_lock(&mt_lock);
		mt_armed = false;
		pthread_mutex_unlock(&mt_lock);
		trim_now();
	}
	return NULL;
}

static void
note(size_t bytes, bool full)
{
	size_t before;
	bool sync = false;

	if (!bytes)
		return;
	if (full)
		atomic_store(&mt_full, true);
	atomic_store(&mt_last_ms, util_now_ms());
	before = atomic_fetch_add(&mt_pending, bytes);
	if (before >= MEMTRIM_MIN || before + bytes < MEMTRIM_MIN)
		return; /* not the note that crossed the line */
	pthread_mutex_lock(&mt_lock);
	if (!mt_atfork)
		mt_atfork = pthread_atfork(NULL, NULL, mt_child) == 0;
	if (!mt_started && !mt_failed) {
		pthread_attr_t at;
		pthread_t th;

		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&at, 64 << 10);
		if (pthread_create(&th, &at, mt_main, NULL) == 0)
			mt_started = true;
		else
			mt_failed = true;
		pthread_attr_destroy(&at);
	}
	if (mt_started) {
		mt_armed = true;
		pthread_cond_signal(&mt_cond);
	} else {
		sync = true;
	}
	pthread_mutex_unlock(&mt_lock);
	if (sync) {
		uint64_t now = util_now_ms(), prev = atomic_load(&mt_sync_ms);

		if (now - prev >= 1000 &&
		    atomic_compare_exchange_strong(&mt_sync_ms, &prev, now))
			trim_now();
		else
			atomic_store(&mt_pending, 0); /* the next MIN tries */
	}
}

void
memtrim_note(size_t bytes)
{
	note(bytes, true);
}

void
memtrim_note_work(size_t bytes)
{
	note(bytes, false);
}

uint64_t
memtrim_count(void)
{
	return atomic_load(&mt_trims);
}

void
memtrim_single_arena(void)
{
	mallopt(M_ARENA_MAX, 1);
}
