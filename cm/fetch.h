/*
 * fetch.h - cairnd's chunk fetch engine and read path.
 *
 * Layer rule: FUSE-free (libcm), level 4 of doc/cm.md "Levels" (it asks
 * mfetch for attributes a read lacks). A FUSE read reaches it as an opaque
 * request pointer plus a reply function.
 *
 * Promises:
 *  - A byte handed to a reader comes from a chunk whose whole body matched
 *    the server's X-Cairn-SHA256 and expected length for that (FID, DV,
 *    chunk) (DESIGN.md invariant 1), either just now or when it was stored
 *    (the chunk store's CRC32C guards it on disk) — or, while the chunk
 *    is still arriving, from a block that matched its X-Cairn-Blocks
 *    CRC32C (early replies, doc/cm.md). Only whole-body-verified chunks
 *    are stored.
 *  - One transfer per (FID, DV, chunk) at a time, shared by every reader
 *    that waits for it and by readahead.
 *  - A wrong checksum, a short or long body, or a malformed reply is never
 *    stored; the chunk is tried FETCH_ATTEMPTS times in all, then every
 *    waiter gets -EIO. Every miss is answered within the fetch timeout
 *    (fetch_deps.timeout_ms) plus the retry backoff.
 *  - A 410 (the DV is no longer current) makes the reader refresh the
 *    file's attributes and read the new DV.
 */
#ifndef CAIRN_CM_FETCH_H
#define CAIRN_CM_FETCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <stdatomic.h>
#include <stdbool.h>

#include "common/fid.h"

struct cm_loop;
struct cm_stats;
struct cs_store;
struct http_client;
struct mcache;
struct mfetch;
struct fetch;

#define FETCH_ATTEMPTS 3
/* A refused connection fails a miss at once (no retry) only when the
 * server has been found away at least this long before: longer than the
 * retries' backoff, so a restart of cairn-vold is ridden out. */
#define FETCH_AWAY_FAST_MS 1000

/* How a parked read is answered, on the loop thread, exactly once:
 * @err 0 and @len bytes at @buf (0 at end of file), or a negative errno. */
typedef void (*fetch_reply_fn)(void *req, const void *buf, size_t len,
			       int err);

/*
 * Upward hooks: what pins and disconnected operation add to a chunk read,
 * given by daemon.c so this module includes neither (the pattern of
 * cm_kernel_ops and http_set_gate()). NULL-safe: a NULL hook is skipped.
 */
struct fetch_hooks {
	/* Must a chunk of @fid be stored pinned? */
	bool (*pinned)(void *arg, const struct fid *fid);
	/* How long a failed read may keep retrying (disconnected with
	 * offline-miss=wait), 0: not at all. */
	uint64_t (*miss_wait_ms)(void *arg);
	void *arg;
};

/* What fetch_new() works with; the pointers must outlive the engine
 * (@mf until fetch_stop()). */
struct fetch_deps {
	struct cm_loop *loop; /* its base; jobs, timers, stopping */
	struct http_client *http;
	struct cs_store *cs;
	struct mcache *mc; /* a read's current attributes */
	struct mfetch *mf; /* fetches them when missing */
	struct cm_stats *st;
	atomic_int *online;	/* cleared when the server does not answer */
	uint64_t *away_ms;	/* struct cm's (loop thread), or NULL */
	uint32_t chunk_size;	/* of @cs */
	unsigned timeout_ms;	/* bound on a miss */
	const char *volume;	/* for the URLs */
	const char *server;	/* for log lines */
	const char *mountpoint; /* for fetch_kernel_readahead(), or NULL */
};

/* Set up the engine and start the store thread, which checks each fetched
 * chunk's SHA-256 and stores it. @hooks (may be NULL) is copied. @return
 * the handle or NULL + errno.
 * fetch_stop(): loop thread, at teardown, after http_free() (which cancels
 * the transfers): join the store thread, answer what still waits (-EIO);
 * later jobs and calls fail. fetch_free(): after the FUSE threads are
 * gone (they read through the handle); stops first if needed. */
struct fetch *fetch_new(const struct fetch_deps *deps,
			const struct fetch_hooks *hooks);
void fetch_stop(struct fetch *f);
void fetch_free(struct fetch *f);

/*
 * Any thread, the hot path: copy [@off, @off+@len) of file @fid at @dv
 * (size @fsize; the caller has clipped @len to it) from the chunk store
 * into @buf. No allocation, no metadata access.
 * @return @len when every chunk was there; -ENOENT when one is missing or
 * stale (the caller parks the read); another -errno only for bad input.
 */
ssize_t fetch_read_cached(struct fetch *f, const struct fid *fid, uint64_t dv,
			  uint64_t off, void *buf, size_t len);

/*
 * Any thread: park a read of @len bytes at @off of @fid; the loop looks at
 * the file's current attributes, serves what is cached, fetches the rest,
 * and calls @reply(@req, ...) once. @return 0, or -ENOMEM (then @reply is
 * not called).
 */
int fetch_read_park(struct fetch *f, const struct fid *fid, uint64_t off,
		    size_t len, void *req, fetch_reply_fn reply);

/*
 * Any thread: start fetching chunks @first..@last (inclusive) of @fid at
 * @dv / @fsize that are neither cached nor in flight (readahead). Bounded:
 * chunks beyond the in-flight limit are skipped.
 */
/*
 * Any thread (a reader's worker): have the kernel read ahead the chunk
 * files of chunks @first..@last of @fid at @dv that the store holds
 * (cs_willneed), counted in chunks_advised. Warm sequential reads: the
 * chunks are separate files, so without it the disk sees one chunk
 * file's read at a time. @return true if some chunk of the range below
 * @fsize is not cached (then fetch_prefetch() it).
 */
bool fetch_advise(struct fetch *f, const struct fid *fid, uint64_t dv,
		  uint64_t fsize, uint64_t first, uint64_t last);

void fetch_prefetch(struct fetch *f, const struct fid *fid, uint64_t dv,
		    uint64_t fsize, uint64_t first, uint64_t last);

/* Completion of fetch_chunk(), on the loop thread: @err 0 once the chunk
 * is verified and stored, else a negative errno (-ESTALE: @dv is no longer
 * current; -EIO, -ENOSPC, -ECANCELED at shutdown). */
typedef void (*fetch_done_fn)(void *arg, int err);

/*
 * Loop thread only: fetch chunk @chunk of @fid at @dv / @fsize into the
 * chunk store (joining a transfer already under way) and call @done once.
 * There is no in-flight limit here: the caller bounds how many it starts
 * (fs pin uses cfg.max_parallel). Chunks of a pinned file (pin_covers())
 * are stored with CS_F_PINNED, whoever fetched them.
 * @return 0 (@done will be called), or -errno and @done is never called.
 */
int fetch_chunk(struct fetch *f, const struct fid *fid, uint64_t dv,
		uint64_t fsize, uint64_t chunk, fetch_done_fn done, void *arg);

/*
 * Loop thread only: a flush (ctl_flush.c) is about to drop @fid's chunks.
 * Transfers of the file under way still answer their readers but are not
 * stored (a fetch_chunk() caller joining one before its store makes it
 * stored again); a chunk the store threads hold now may land any moment,
 * so the flush must wait for those before it drops anything.
 * @return 0: nothing is being stored, drop now (@done is not called);
 * 1: @done is called once the stores of @fid in flight are done;
 * -ENOMEM.
 */
int fetch_drop_file(struct fetch *f, const struct fid *fid,
		    fetch_done_fn done, void *arg);

/*
 * Any thread, once per engine (later calls do nothing); call it only
 * after the kernel has finished FUSE INIT (from a request handler), since
 * INIT lowers the value again. Raise the kernel's readahead for the mount
 * (its bdi's read_ahead_kb) to @kib. The kernel offers FUSE 128 KiB and a
 * file system can only lower that in INIT; with 128 KiB a sequential
 * reader sends 128-256 KiB reads one or two at a time, with a few MiB it
 * sends 1 MiB reads (the FUSE request maximum) several at once, which
 * roughly doubled warm sequential reads (doc/cm.md). Needs root; without
 * it the kernel default stays (logged at info).
 */
void fetch_kernel_readahead(struct fetch *f, unsigned kib);

#endif /* CAIRN_CM_FETCH_H */
