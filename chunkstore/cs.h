/*
 * cs.h - libchunkstore, the tagged on-disk chunk cache of cairnd.
 *
 * LAYER RULE: this library includes nothing of cairn's (not even common/),
 * no FUSE, libevent, curl or tdb: libc and pthreads only. It logs through
 * the callback its caller passes in struct cs_params. Keep it that way:
 * cairn-fsck links it without libfuse to prove it (STYLE.md section 1).
 *
 * What the store promises (the class contract, as CVMFS cache.h does it):
 *
 *  - A chunk is named by a key (volume, 128-bit fid, chunk number) and
 *    tagged with the data version (DV) of the file it came from. At most
 *    one chunk per key is stored; cs_put replaces an older one.
 *  - Reads: cs_read returns bytes of the chunk only when the caller's DV
 *    equals the stored one (-ESTALE otherwise). A chunk whose content fails
 *    its CRC32C is never returned: the read fails with -EIO and the record
 *    is dropped, so the caller refetches it. The checksum is verified the
 *    first time a chunk is read after cs_open, not on every read.
 *  - Transactional writes: cs_put writes a whole chunk through a temporary
 *    file and a rename; a crash leaves either the old chunk or the new one.
 *    Clean chunks (data the server has) are not fsynced; dirty chunks are.
 *  - Local writes: cs_write and cs_truncate change a per-chunk working copy
 *    that readers see at once; cs_commit makes it durable (after 0 it
 *    survives kill -9 and power loss). A working copy stays open across
 *    writes until its commit (one copy of the chunk, one new file per
 *    commit, however many writes); about CS_WC_OPEN_MAX (64) are open,
 *    beyond that the least recently written is committed without sync (a
 *    soft bound: exceeded by up to the number of writing threads, or when
 *    none can be committed), and when the cache is full idle ones are
 *    committed to free their old committed files before a write fails
 *    with -ENOSPC.
 *    Uncommitted working copies are discarded by a crash and by cs_close.
 *  - Pins and dirt: dirty and pinned chunks are never culled. Culling
 *    evicts clean unpinned chunks in least-recently-used order with
 *    cachefilesd-style thresholds (struct cs_limits).
 *  - Crash safety: after kill -9 or a power cut at any point, cs_open
 *    recovers without wiping the cache: a lost or torn index is rebuilt
 *    from the tags every chunk file carries.
 *  - Errors: functions return 0 or a negative errno (counts >= 0 where
 *    said) and log a line through the caller's callback; bad input from
 *    disk is an error, never an abort. Every free/close accepts NULL.
 *  - Threads: every function except cs_open, cs_close, cs_create and
 *    cs_check may be called from many threads at once on one store; an
 *    internal mutex guards the store and bulk reads run outside it.
 *    cs_close must not race with other calls on the same store.
 *  - One process at a time: cs_open takes an exclusive flock(2) on the
 *    index; a second opener (another cairnd, cairn-fsck) gets -EBUSY.
 *
 * The on-disk format is described in chunkstore/cs_format.c,
 * doc/cache-format.md and cairn-cache(5).
 */
#ifndef CAIRN_CS_H
#define CAIRN_CS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CS_CHUNK_MIN	 (64u * 1024)
#define CS_CHUNK_MAX	 (4u * 1024 * 1024)
#define CS_CHUNK_DEFAULT (256u * 1024)

/* Working copies kept open at once (one fd each): beyond it, the least
 * recently written idle one is committed without sync to make room. Soft:
 * see cs.h's header comment. */
#define CS_WC_OPEN_MAX 64

/* Defaults cs_create uses for zero fields of struct cs_limits. */
#define CS_DEFAULT_MAX_BYTES (1ull << 30)
#define CS_DEFAULT_CULL_PCT  7
#define CS_DEFAULT_RUN_PCT   10
#define CS_DEFAULT_STOP_PCT  3

/* A chunk's name: volume id, 128-bit object id, chunk number. */
struct cs_key {
	uint32_t vol;
	uint8_t fid[16];
	uint64_t chunk;
};

/*
 * Chunk flags. VALID: the chunk has readable content (committed, or a
 * working copy). DIRTY: it holds local changes the server has not stored
 * (a committed dirty chunk or a working copy). PINNED: never culled.
 */
enum { CS_F_VALID = 1, CS_F_DIRTY = 2, CS_F_PINNED = 4 };

/* What cs_lookup and the iterators report about one chunk. */
struct cs_info {
	struct cs_key key;
	uint64_t dv;	   /* data version the content belongs to */
	uint32_t len;	   /* content length, <= the chunk size */
	uint32_t flags;	   /* CS_F_* */
	uint64_t last_use; /* logical clock; larger is more recent */
	uint32_t slot;	   /* index slot; stable while the chunk is present */
	uint32_t gen;	   /* generation of the slot's committed file: each
			      commit or put of the slot raises it */
};

/*
 * cachefilesd-style thresholds, percent of the LIMIT that is free (bytes
 * and files separately). Defaults: cull 7, run 10, stop 3. When a new
 * allocation would leave less than cull_pct free, clean unpinned chunks are
 * evicted (least recently used first) until run_pct is free; when less than
 * stop_pct would still be free, the allocation fails with -ENOSPC. Must hold
 * stop_pct <= cull_pct <= run_pct < 100. A zero field means "default" to
 * cs_create and "keep the current value" to cs_open and cs_set_limits.
 * max_files defaults to max_bytes / CS_CHUNK_MIN.
 */
struct cs_limits {
	uint64_t max_bytes;
	uint64_t max_files;
	unsigned cull_pct, run_pct, stop_pct;
};

/* Log sink: level is a syslog(3) level, LOG_ERR..LOG_DEBUG; msg has no
 * newline. It may be called from any thread that calls into the store,
 * with the store's lock held: it must not call back into the store. */
typedef void (*cs_log_fn)(void *arg, int level, const char *msg);

/* Read fds cs_open keeps open (struct cs_params fd_cache): the default
 * suits tools; a daemon sizes it from its RLIMIT_NOFILE. */
#define CS_FD_CACHE_DEFAULT 256
#define CS_FD_CACHE_MIN	    16
#define CS_FD_CACHE_MAX	    16384

struct cs_params {
	uint32_t chunk_size; /* power of two, CS_CHUNK_MIN..MAX; 0 = default */
	struct cs_limits limits;
	/* cs_open only: chunk files kept open for reading; 0 = default,
	 * else clamped to CS_FD_CACHE_MIN..MAX. The store holds at most
	 * this many fds for cached reads, plus one per read in flight when
	 * every cached one is busy. */
	uint32_t fd_cache;
	cs_log_fn log; /* NULL: messages are dropped */
	void *log_arg;
};

struct cs_stats {
	uint64_t bytes_used, bytes_limit, files_used, files_limit, dirty_bytes,
		pinned_bytes, hits, misses, evictions;
	uint32_t chunk_size;
	/* working copies made since cs_open, open now, committed to keep
	 * about CS_WC_OPEN_MAX open, and committed to free the space of
	 * their old committed files when the cache was full */
	uint64_t wc_made, wc_open, wc_evicts, wc_space_commits;
};

struct cs_store;

/*
 * Create an empty cache in @dir (made with mode 0700 if missing, parent
 * must exist) with the chunk size and limits of @p (NULL: all defaults).
 * The index is written last, so a crash leaves no half cache cs_open
 * would take for one.
 *
 * @return 0; -EEXIST if a cache (an index or a chunks/ folder) is there;
 * -EINVAL for a bad chunk size or thresholds; another -errno on I/O error.
 */
int cs_create(const char *dir, const struct cs_params *p);

/*
 * Open the cache in @dir. @p gives the log callback and, where nonzero,
 * limits that replace the stored ones (its chunk_size is ignored: the
 * cache's own is used). cs_open never creates a cache: on -ENOENT the
 * caller calls cs_create and opens again. After an unclean shutdown it
 * recovers (a directory scan; chunk contents are not read), and it rebuilds
 * a torn or missing index from the chunk files' tags.
 *
 * @return the store, which the caller closes with cs_close(); NULL with
 * *err (if @err is not NULL) set to -ENOENT (no cache), -EBUSY (opened by
 * another process), -EINVAL (not a cairn cache index), -ENOTSUP (a newer
 * format version), -EROFS/-EACCES (not writable) or another -errno.
 */
struct cs_store *cs_open(const char *dir, const struct cs_params *p, int *err);

/*
 * Clean shutdown: discard uncommitted working copies (logged), write the
 * last-use stamps, sync the file system and set the clean flag, so the next
 * cs_open skips recovery. Accepts NULL. No other call may run concurrently.
 */
void cs_close(struct cs_store *cs);

/* The cache's chunk size in bytes (fixed at cs_create). */
uint32_t cs_chunk_size(const struct cs_store *cs);

/*
 * Describe the chunk @k (its working copy if there is one) in @out.
 * A lookup does not count as a use for LRU purposes. After an unclean
 * shutdown, a chunk stored just before the crash (a put that had not
 * returned) may show its previous DV until its first cs_read, which checks
 * the file and adopts its tag; committed and returned DIRTY data always
 * shows as it is.
 * @return 0, or -ENOENT if absent.
 */
int cs_lookup(struct cs_store *cs, const struct cs_key *k, struct cs_info *out);

/*
 * Ask the kernel to read chunk @k's file ahead (POSIX_FADV_WILLNEED) if
 * it is committed with tag @dv and idle; does not count as a use. A
 * sequential reader of many chunks otherwise sends the disk one chunk
 * file's read at a time. Any thread; the lock is not held over the
 * advice. @return 0 if the chunk is there at @dv (advised, or a working
 * copy: nothing to read ahead), -ENOENT absent or another DV.
 */
int cs_willneed(struct cs_store *cs, const struct cs_key *k, uint64_t dv);

/*
 * Copy up to @len bytes at @off of chunk @k, tagged @dv, into @buf; reads
 * see an uncommitted working copy. Meant for the hot path (one call per
 * FUSE read of up to 128 KiB): the lock is held only to find the chunk and
 * the pread runs outside it.
 *
 * @return bytes copied (0 at or after the chunk's end); -ENOENT absent;
 * -ESTALE stored with another DV; -EIO the content failed its checksum (the
 * record is dropped so the caller refetches); -EINVAL bad arguments.
 */
ssize_t cs_read(struct cs_store *cs, const struct cs_key *k, uint64_t dv,
		uint32_t off, void *buf, size_t len);

/*
 * Store a whole chunk @buf[0..@len) for @k tagged @dv, replacing any older
 * one, transactionally (temporary file, rename, then the index record).
 * @flags may be CS_F_DIRTY and/or CS_F_PINNED; a DIRTY put is durable when
 * it returns 0 (fsync of file, folder and index), a clean one is not (it
 * can be refetched). Culls synchronously when the limits require it.
 *
 * @return 0; -EINVAL (len > chunk size, bad flags); -EBUSY (the chunk has
 * an uncommitted working copy, or this is a clean put over a DIRTY chunk:
 * local changes are never replaced by a fetched copy); -ENOSPC (above the stop level even after
 * culling, or the disk is full); another -errno on I/O error. On error the
 * old chunk, if any, is unchanged.
 */
int cs_put(struct cs_store *cs, const struct cs_key *k, uint64_t dv,
	   const void *buf, uint32_t len, unsigned flags);

/*
 * As cs_put, with @crc the CRC32C of @buf[0..@len) (crc32c(0, buf, len) of
 * base/crc32c.h) that the caller already has, e.g. combined from block
 * checksums it verified while the chunk came in: saves cs_put's pass over
 * the chunk. The store takes @crc as the chunk's checksum without checking
 * it and, as after cs_put, does not check the content again before the next
 * cs_open: the caller vouches for it. A wrong one (a caller's bug) shows at
 * the first cs_read after the next cs_open, which fails with -EIO and drops
 * the chunk.
 */
int cs_put_crc(struct cs_store *cs, const struct cs_key *k, uint64_t dv,
	       const void *buf, uint32_t len, unsigned flags, uint32_t crc);

/*
 * Write @len bytes at @off into the working copy of chunk @k, creating it
 * from the committed chunk (copy on write) if needed. A gap before @off is
 * zero-filled; with no committed chunk the working copy starts empty, so a
 * caller writing into the middle of a file must have fetched that chunk
 * first. Readers see the change at once; the chunk shows DIRTY. Not
 * durable until cs_commit. Culls synchronously when needed.
 *
 * @return 0; -EINVAL (off + len beyond the chunk size); -ESTALE (the stored
 * chunk or working copy has another DV); -EIO (the committed chunk failed
 * its checksum and was dropped); -ENOSPC; another -errno.
 */
int cs_write(struct cs_store *cs, const struct cs_key *k, uint64_t dv,
	     uint32_t off, const void *buf, size_t len);

/*
 * Set the working copy's length to @len (<= chunk size), creating the
 * working copy as cs_write does; growing zero-fills.
 * @return 0 or -errno as cs_write.
 */
int cs_truncate(struct cs_store *cs, const struct cs_key *k, uint64_t dv,
		uint32_t len);

/*
 * Make the working copy of @k durable: append its tag, fsync, rename it
 * over the chunk file, fsync the folder and the index. After 0 the data
 * survives kill -9 and power loss and the chunk is committed DIRTY.
 * @return 0 (also when there is no working copy but a committed chunk);
 * -ENOENT if neither exists; another -errno (the working copy is kept).
 */
int cs_commit(struct cs_store *cs, const struct cs_key *k);

/*
 * As cs_commit; with CS_C_NOSYNC nothing is fsynced, so the commit
 * survives the death of the process (kill -9) but not a power cut; except
 * that over dirty content that may be durable (not UNSYNCED) the working
 * copy is fdatasynced before the rename (doc/cache-format.md). cairnd
 * commits a file's working copies this way at its checkpoints: close and
 * fsync (before the store), truncate, setattr, the last writer's release,
 * a write 1 s after the first uncommitted one, the idle timer, wb_free,
 * and a write that fills a chunk to its end; the chunk store itself does
 * for the evictions beyond CS_WC_OPEN_MAX and the ENOSPC commits. It
 * fsyncs where durability is promised (cs_sync_file). Writes in between
 * go to the open working copy: a crash of the process discards them (the
 * chunk keeps its last commit).
 */
enum {
	CS_C_NOSYNC = 1,
	/* With CS_C_NOSYNC (a synced commit writes anyway, and ignores
	 * it; so does one that must fdatasync over a durable dirty chunk):
	 * start writing the committed file to disk now
	 * (sync_file_range(SYNC_FILE_RANGE_WRITE), not waited for), so that
	 * the cs_sync_file() that will follow finds it written. cairnd sets
	 * it for a chunk a stream has filled while its changes are logged
	 * (writeback, disconnected): the close of a big file then waits for
	 * the tail of its writing, not for all of it. */
	CS_C_WRITEOUT = 2,
};
int cs_commit_flags(struct cs_store *cs, const struct cs_key *k,
		    unsigned flags);

/*
 * cs_commit every working copy of file (@vol, @fid), with one index fsync.
 * @return the number of chunks committed (>= 0) or the first -errno.
 */
int cs_commit_file(struct cs_store *cs, uint32_t vol, const uint8_t fid[16]);

/* As cs_commit_file; @flags as cs_commit_flags (CS_C_NOSYNC: no fsync at
 * all, the commits survive kill -9 but not a power cut; CS_C_WRITEOUT). */
int cs_commit_file_flags(struct cs_store *cs, uint32_t vol,
			 const uint8_t fid[16], unsigned flags);

/*
 * Make every local change of file (@vol, @fid) durable: commit its working
 * copies and fsync its DIRTY chunk files (those committed with
 * CS_C_NOSYNC), their folders and the index. @return 0 or -errno.
 */
int cs_sync_file(struct cs_store *cs, uint32_t vol, const uint8_t fid[16]);

/*
 * cs_sync_file for the files of @keys[0..@n) (their chunk numbers are
 * ignored) at once: each chunk file fsynced, each folder once, the index
 * once. @return 0 or the first -errno.
 */
int cs_sync_files(struct cs_store *cs, const struct cs_key *keys, size_t n);

/*
 * After the server stored chunk @k: clear DIRTY and retag it (and a working
 * copy, which stays dirty) with @new_dv. With a working copy open the
 * chunk keeps DIRTY and is only retagged: the store may have sent the
 * copy's bytes, which the committed file lacks. Not fsynced: after a crash the
 * chunk may show DIRTY with the old DV again, which is the safe side.
 * @return 0, -ENOENT if no committed chunk, -ESTALE if the chunk turned
 * out to differ from what lookups showed (see cs_lookup), another -errno.
 */
int cs_mark_clean(struct cs_store *cs, const struct cs_key *k, uint64_t new_dv);

/*
 * Retag the clean committed chunks of file (@vol, @fid) tagged @old_dv
 * with @new_dv (our own store bumped the DV and the content is unchanged).
 * @return the number of chunks retagged (>= 0) or -errno.
 */
int cs_set_dv_file(struct cs_store *cs, uint32_t vol, const uint8_t fid[16],
		   uint64_t old_dv, uint64_t new_dv);

/*
 * Retag every chunk of file (@vol, @fid) tagged @old_dv, DIRTY ones and
 * working copies included, with @new_dv: the DV the local changes are
 * based on turned out to be another (a file created before the server
 * knew it, cairnd's late creates). Not fsynced, like cs_mark_clean.
 * @return the number of committed chunks retagged (>= 0) or -errno.
 */
int cs_retag_file(struct cs_store *cs, uint32_t vol, const uint8_t fid[16],
		  uint64_t old_dv, uint64_t new_dv);

/*
 * Set (@pin != 0) or clear PINNED on every chunk of the file present now;
 * chunks stored later take the flag from cs_put's @flags. Unpinning counts
 * as a use for LRU purposes.
 * @return the number of chunks changed (>= 0) or -errno.
 */
int cs_pin_file(struct cs_store *cs, uint32_t vol, const uint8_t fid[16],
		int pin);

/*
 * Drop the CLEAN committed chunks of the file whose DV is below @below_dv
 * (UINT64_MAX: all of them), pinned or not. Dirty chunks and working
 * copies are never dropped.
 * @return the number of chunks dropped (>= 0) or -errno.
 */
int cs_invalidate(struct cs_store *cs, uint32_t vol, const uint8_t fid[16],
		  uint64_t below_dv);

/*
 * Call @fn for every chunk present (as cs_lookup describes it), in slot
 * order, until it returns nonzero. @fn runs without the store's lock and may
 * call cs_ functions; chunks added or removed meanwhile may or may not be
 * seen (weakly consistent, like readdir).
 * @return 0, or the first nonzero value @fn returned.
 */
int cs_iterate(struct cs_store *cs, int (*fn)(const struct cs_info *, void *),
	       void *arg);

/*
 * As cs_iterate, for the chunks of one file only: O(chunks of that file).
 */
int cs_iterate_file(struct cs_store *cs, uint32_t vol, const uint8_t fid[16],
		    int (*fn)(const struct cs_info *, void *), void *arg);

/*
 * Check the committed chunks of one file not checked since open against
 * their files (what a first read does), so that cs_iterate_file() then
 * reports the lengths their files hold: after a crash the index may name
 * the length from before a commit whose rename was done. A chunk that
 * fails is dropped. @return 0 or -EINVAL.
 */
int cs_verify_file(struct cs_store *cs, uint32_t vol, const uint8_t fid[16]);

/* Fill @st with the store's counters and limits. */
void cs_get_stats(struct cs_store *cs, struct cs_stats *st);

/*
 * Replace the limits (zero fields keep their value), persist them in the
 * index header and cull at once if needed.
 * @return 0 or -EINVAL (thresholds out of order), another -errno.
 */
int cs_set_limits(struct cs_store *cs, const struct cs_limits *l);

/*
 * One cull pass if free space or files are below the cull level: evict
 * clean unpinned chunks, least recently used first, until the run level.
 * @return the number of chunks evicted (>= 0) or -errno.
 */
int cs_cull(struct cs_store *cs);

/*
 * Make up to @n empty spare chunk files, while fewer than @target (at
 * most 1024) are kept: a put of a new chunk then reuses a spare's inode
 * instead of creating one (the costliest step of a cold read's store on
 * ext4). For a thread with nothing else to do (cairnd's store threads
 * when idle); takes the lock per file, never while creating it. Spares
 * are empty .tmp files: cs_close unlinks them, recovery removes them
 * after a crash. @return files made (> 0), 0 when @target is reached,
 * or -errno.
 */
int cs_make_spares(struct cs_store *cs, unsigned n, unsigned target);

/*
 * Write pending index updates (last-use stamps) and fdatasync the index.
 * @return 0 or -errno.
 */
int cs_sync(struct cs_store *cs);

/*
 * Offline check and repair (cairn-fsck). Reads the whole cache in @dir,
 * every chunk's content included, without opening it as a store (nothing is
 * changed unless @flags has CS_CHECK_REPAIR). Each finding is passed to
 * @report (may be NULL) as one line of plain words, e.g. "chunk file
 * chunks/01/00000001 (slot 1, vol 7, fid 00..., chunk 4): checksum
 * mismatch". A finding is an error (corruption the library would only
 * work around) or a note (what recovery at the next cs_open handles: the
 * unclean flag, temporary files, orphans with good tags, stale records).
 * With CS_CHECK_REPAIR, errors and notes are fixed: bad records and files
 * dropped, orphans adopted, temporary files removed, the index rewritten
 * and the clean flag set.
 */
enum { CS_CHECK_REPAIR = 1 };
enum cs_finding { CS_FIND_NOTE = 0, CS_FIND_ERROR = 1 };

struct cs_check_result {
	uint64_t records; /* committed chunks found in the end */
	uint64_t files;	  /* chunk files looked at */
	uint64_t bytes;	  /* content bytes checked */
	uint64_t errors;  /* errors found */
	uint64_t fixed;	  /* of those, corrected (with CS_CHECK_REPAIR) */
	uint64_t notes;	  /* notes found (fixed too with CS_CHECK_REPAIR) */
	uint32_t chunk_size;
	int clean; /* the clean-shutdown flag was set */
};

typedef void (*cs_report_fn)(void *arg, enum cs_finding kind, const char *msg);

/*
 * @return 0 when the check ran (see @res: errors, fixed), or -errno when it
 * could not (-ENOENT no cache, -EBUSY in use, -EINVAL not a cache index,
 * -ENOTSUP newer format, I/O errors). @log as in cs_params (may be NULL).
 */
int cs_check(const char *dir, unsigned flags, cs_report_fn report, void *arg,
	     struct cs_check_result *res, cs_log_fn log, void *log_arg);

/*
 * cs_check(), then, when it ran (returns 0), @locked(@locked_arg) before the
 * cache directory's lock is let go: a checker of other files in the folder
 * (cairn-fsck's metadata caches) runs while no cairnd can open the cache,
 * since cs_open() takes the same lock. A second flock on a new descriptor
 * would fail with -EBUSY (the lock goes with the open file description),
 * hence a hook and not a separate lock call. @locked may be NULL.
 */
int cs_check_locked(const char *dir, unsigned flags, cs_report_fn report,
		    void *arg, struct cs_check_result *res, cs_log_fn log,
		    void *log_arg, void (*locked)(void *arg),
		    void *locked_arg);

#endif /* CAIRN_CS_H */
