/*
 * parrun.h - run a few independent blocking calls at the same time.
 *
 * Layer rule: base/ (libc and pthreads, nothing of ours; see crc32c.h).
 * Made for syncs: the fsyncs and fdatasyncs of one durable step (a
 * store's chunk objects and their folder in vol/) do not depend on each
 * other, and the disk overlaps them when they are issued together, where
 * in a row each waits for the one before. Each call costs a thread start:
 * for a writeback close's chunk syncs in cairnd (three short syncs) that
 * cost more CPU than the overlap saved on this project's VM (doc/cm.md,
 * "Session 12").
 */
#ifndef CAIRN_BASE_PARRUN_H
#define CAIRN_BASE_PARRUN_H

#include <stddef.h>

/* At most this many threads besides the caller's. */
#define PARRUN_THREADS 3

/*
 * Call @fn(@arg, i) once for every i in [0, @n), on the caller's thread
 * and up to min(@extra, PARRUN_THREADS, @n - 1) short-lived threads more,
 * and return once every call has returned. @fn stores its own results
 * (in @arg) and must be safe to run on several threads at once. A thread
 * that cannot be created leaves its share to the others: every call still
 * runs. @extra 0 runs them in order on the caller's thread (a crash test
 * that counts steps). Any thread.
 */
void par_run(size_t n, unsigned extra, void (*fn)(void *arg, size_t i),
	     void *arg);

#endif
