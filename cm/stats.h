/*
 * stats.h - cairnd's counters (level 1 of doc/cm.md "Levels"). Relaxed
 * atomics: any thread adds (CM_STAT_ADD), cm_stats_format_counters()
 * reads. The daemon owns one struct cm_stats and hands each module that
 * counts a pointer to it.
 */
#ifndef CAIRN_CM_STATS_H
#define CAIRN_CM_STATS_H

#include <stdatomic.h>
#include <stddef.h>

#include "common/metrics.h"

/* Kinds of FUSE requests, for the per-kind counters (the read path's
 * profile in doc/cm.md is made of these). */
enum cm_req_kind {
	CM_R_LOOKUP,
	CM_R_GETATTR,
	CM_R_READDIR,
	CM_R_OPEN,
	CM_R_READ,
	CM_R_READLINK,
	CM_R_XATTR,
	CM_R_STATFS,
	CM_R_OTHER,
	CM_R_OPENDIR,
	CM_R_RELEASE, /* release and releasedir */
	CM_R_FLUSH,
	CM_R_FORGET, /* forget and batch forget: requests, not inodes */
	CM_R_ACCESS,
	CM_R_MAX
};

struct cm_stats {
	atomic_uint_fast64_t reqs[CM_R_MAX];
	atomic_uint_fast64_t parked;	     /* requests that had to wait */
	atomic_uint_fast64_t dir_prefetches; /* subdirectory listings asked
						ahead (fuse_ops.c) */
	atomic_uint_fast64_t chunk_hits;     /* chunk reads served from cs */
	atomic_uint_fast64_t chunk_misses;   /* chunk reads that waited */
	atomic_uint_fast64_t chunks_fetched; /* verified and stored */
	atomic_uint_fast64_t bytes_fetched;
	atomic_uint_fast64_t prefetches; /* fetches started by readahead */
	atomic_uint_fast64_t fetch_retries;
	atomic_uint_fast64_t fetch_errors; /* fetches given up */
	atomic_uint_fast64_t bad_chunks;   /* checksum/length mismatches */
	atomic_uint_fast64_t early_reads;  /* served from a verified prefix */
	atomic_uint_fast64_t flushed_in_flight; /* fetched chunks not stored:
						   their file was flushed
						   meanwhile (fetch.c) */
	atomic_uint_fast64_t chunks_advised; /* chunk files read ahead
						(fetch_advise) */
	atomic_uint_fast64_t open_pushes;    /* small files put in the page
						cache at open (fuse_ops.c) */
	atomic_uint_fast64_t reads_held;     /* short READs held while a
						truncation was answered
						(fops_read_hold()) */
	atomic_uint_fast64_t stale_chunks; /* 410 replies */
	atomic_uint_fast64_t dir_fetches;
	atomic_uint_fast64_t dir_pages; /* pages of listings received */
	atomic_uint_fast64_t dir_streamed; /* opendirs that read a big
					      listing as it came (dstream.h) */
	atomic_uint_fast64_t dir_stream_held; /* of them, whole but
						 overtaken: held (dir_done()) */
	atomic_uint_fast64_t dir_late;	/* opendirs, lookups served a
					   listing events overtook
					   (mfetch_late_dir()) */
	atomic_uint_fast64_t dir_late_mut; /* of them, unlinks and renames
					     (name_fid()) */
	atomic_uint_fast64_t dir_held;	/* lookups named by the late listing
					   of an open handle (park_run()) */
	atomic_uint_fast64_t dir_attrs_unkept; /* entries of overtaken
						  listings whose attributes
						  were not kept (dir_take()) */
	atomic_uint_fast64_t dir_torn; /* listings a kill left ahead of
					  their directory's attributes,
					  taken (mcache_dir()) */
	atomic_uint_fast64_t dir_stale_offline; /* stored listings older
						   than their directory's
						   attributes, served
						   disconnected */
	atomic_uint_fast64_t fetched_old; /* fetched attributes (listing
					     entries, getattr answers) older
					     than the cached DV: not taken */
	atomic_uint_fast64_t getattr_reqs; /* POST getattr requests */
	atomic_uint_fast64_t getattr_fids;
	atomic_uint_fast64_t link_fetches;
	atomic_uint_fast64_t xattr_fetches;
	atomic_uint_fast64_t events;
	atomic_uint_fast64_t own_events; /* attr events our reply covered */
	atomic_uint_fast64_t ev_reconnects;
	atomic_uint_fast64_t revalidations;
	atomic_uint_fast64_t invalidations; /* kernel notifications queued */
	atomic_uint_fast64_t stores;	    /* data stores the server took */
	atomic_uint_fast64_t writebacks;    /* stores started by dirty-limit */
	atomic_uint_fast64_t wb_checkpoints; /* files checkpointed */
	atomic_uint_fast64_t wb_log_bytes;   /* stores logged with their bytes
						(replay record format 3) */
	atomic_uint_fast64_t wb_data_synced; /* ... whose chunks were synced
						before the record left */
	atomic_uint_fast64_t wb_data_restored; /* chunks restored from the
						  log at start */
	atomic_uint_fast64_t wb_read_retries; /* reads redone: a truncate */
	atomic_uint_fast64_t conflicts;	    /* conflict copies saved */
	atomic_uint_fast64_t rewrite_waits; /* writes that waited for the log
					       to send a STORE record of
					       their file first */
	atomic_uint_fast64_t wb_save_errors; /* write states dirty.tdb could
						not save or drop (wb.c) */
	atomic_uint_fast64_t wb_journal_repairs; /* dirty.tdb.jnl mended
						    after such errors */
	/* Chunk fetches from the first request to stored, microseconds;
	 * set up by cm_init() (fetch.c observes, ctl_metrics.c shows). */
	struct metrics_hist fetch_lat;
	atomic_uint_fast64_t replay_batches; /* batch requests of a replay */
	atomic_uint_fast64_t replay_batch_ops; /* records they carried */
	atomic_uint_fast64_t replay_singles; /* records replayed alone */
};

/*
 * FUSE requests by opcode, as read from /dev/fuse (fuse_common.c's read
 * hook), for the whole process (every session of it): slot 0 counts
 * opcodes of CM_FUSE_OPC_MAX and over. cm_stats_format_counters() prints
 * the ones not zero as "fuse_op_NAME N".
 */
#define CM_FUSE_OPC_MAX 64
extern atomic_uint_fast64_t cm_fuse_opc[CM_FUSE_OPC_MAX];

/* The lower-case name of FUSE opcode @opc ("getxattr"), or NULL. */
const char *cm_fuse_opc_name(unsigned opc);

/* Add @n to counter @f of @st (a struct cm_stats *). */
#define CM_STAT_ADD(st, f, n)                                                  \
	atomic_fetch_add_explicit(&(st)->f, (n), memory_order_relaxed)
#define CM_STAT_INC(st, f) CM_STAT_ADD(st, f, 1)

/* Append the counters as "name value\n" lines to @buf (at most @len bytes
 * in all, NUL-terminated), starting at @off. @return the new length; a
 * line that does not fit ends the list. Any thread. */
size_t cm_stats_format_counters(const struct cm_stats *st, char *buf,
				size_t len, size_t off);

#endif /* CAIRN_CM_STATS_H */
