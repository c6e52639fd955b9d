/*
 * memtrim.h - give the heap memory a burst of frees left behind back to the
 * system, once the burst is over.
 *
 * glibc's free() keeps what it frees: a page is handed back only when the
 * free space at the top of the heap passes M_TRIM_THRESHOLD (cairnd sets
 * 64 MiB, fetch.c), and never from the middle of the heap. After the
 * kernel forgets the 100,000 inodes of a walk, cairnd's anonymous memory
 * stayed at its peak although a tenth of it was in use (doc/cm.md,
 * "Memory"). Modules that free a lot tell memtrim_note() how much; when at
 * least MEMTRIM_MIN bytes were noted, a helper thread calls malloc_trim(0)
 * (which also hands back whole free pages inside the heap) once no note
 * came for MEMTRIM_QUIET_MS, or at the latest MEMTRIM_MAX_DELAY_MS after
 * the first note, so a long steady stream of frees is trimmed too.
 *
 * Layer rule: libc, pthreads and common/log.h; any thread may call it,
 * also with its own locks held (it takes no lock of the caller's and never
 * blocks on the trim; the trim itself holds malloc's lock while it runs).
 */
#ifndef CAIRN_MEMTRIM_H
#define CAIRN_MEMTRIM_H

#include <stddef.h>
#include <stdint.h>

#define MEMTRIM_MIN	     (1u << 20) /* bytes noted before a trim */
#define MEMTRIM_QUIET_MS     300
#define MEMTRIM_MAX_DELAY_MS 2000
/* What a trim after memtrim_note_work() alone leaves at the heap's top. */
#define MEMTRIM_WORK_PAD     (32u << 20)

/* @bytes of heap memory were freed. Starts the helper thread on first
 * need; if it cannot be started, trims at once (at most once a second). */
void memtrim_note(size_t bytes);

/* The same for the scratch memory of a burst of work that is likely to
 * come again soon (a big listing: its decoded pages, the cache's
 * transaction): its trim hands back the free pages inside the heap but
 * keeps up to MEMTRIM_WORK_PAD at its top, so the next listing does not
 * fault all of it in again (with every thread on one heap, trimming the
 * top after each listing made back-to-back listings of a changing
 * 20,000-entry directory slow enough to fail t2160). Any
 * memtrim_note() since the last trim makes it a full one. */
void memtrim_note_work(size_t bytes);

/* Trims done so far (tests). */
uint64_t memtrim_count(void);

/* Put every thread of the process on glibc's one main heap (M_ARENA_MAX
 * 1): freed memory of per-thread heaps is kept by them (malloc_trim hands
 * back free pages inside them but never their top), so a program with many
 * worker threads that each allocate and free keeps several peaks. Call at
 * the start of main, before any thread exists. */
void memtrim_single_arena(void);

#endif /* CAIRN_MEMTRIM_H */
