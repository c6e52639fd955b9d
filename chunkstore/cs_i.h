/*
 * cs_i.h - internals shared by the files of libchunkstore.
 *
 * Users of the library need not know any of this: cs.h is its whole face.
 * Tests, the benchmark and nothing else may include it (for the fault hook,
 * the checksum and the on-disk layout). Same layer rule as cs.h: libc and
 * pthreads only.
 */
#ifndef CAIRN_CS_I_H
#define CAIRN_CS_I_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/crc32c.h"
#include "cs.h"

/* On-disk constants; cs_format.c explains them. */
#define CS_MAGIC       "CAIRNCSI"
#define CS_VERSION     1
#define CS_HDR_SIZE    128
#define CS_REC_SIZE    64
#define CS_TRL_SIZE    64
#define CS_TRL_MAGIC   0x52545343u /* "CSTR" read little-endian */
#define CS_TRL_VERSION 1
#define CS_NDIRS       256
#define CS_INDEX_NAME  "index"
#define CS_INDEX_TMP   "index.tmp"
#define CS_CHUNKS_DIR  "chunks"
#define CS_TMP_SUFFIX  ".tmp"
#define CS_WIP_SUFFIX  ".wip"
#define CS_PATH_MAX    32
#define CS_NONE	       UINT32_MAX
#define CS_MAX_SLOTS   (1u << 30)
/* Spare chunk files kept for reuse (struct cs_store spare). */
#define CS_SPARE_MAX 1024

/* Flags of an index record and a trailer (bits 0..2 equal CS_F_*). */
#define CS_RF_VALID  1u
#define CS_RF_DIRTY  2u
#define CS_RF_PINNED 4u
#define CS_RF_MASK   7u

/* The index header, decoded. */
struct cs_hdr {
	uint32_t version;
	uint32_t chunk_size;
	uint64_t slot_count;
	uint64_t max_bytes, max_files;
	uint8_t cull_pct, run_pct, stop_pct;
	uint32_t clean;
	uint64_t clock;
	uint64_t create_time;
	uint64_t open_count;
};

/* One index record, decoded. A free slot has no CS_RF_VALID. */
struct cs_rec {
	struct cs_key key;
	uint64_t dv;
	uint64_t last_use;
	uint32_t len;
	uint32_t crc;
	uint32_t gen;
	uint32_t flags;
};

/* A chunk file's trailer (its tag), decoded. */
struct cs_trl {
	struct cs_key key;
	uint64_t dv;
	uint32_t len;
	uint32_t crc;
	uint32_t gen;
	uint32_t slot;
	uint32_t flags; /* CS_RF_DIRTY | CS_RF_PINNED */
	uint8_t shift;	/* log2 of the cache's chunk size */
};

void cs_hdr_encode(const struct cs_hdr *h, uint8_t out[CS_HDR_SIZE]);
int cs_hdr_decode(const uint8_t *in, size_t n, struct cs_hdr *h);
void cs_rec_encode(const struct cs_rec *r, uint8_t out[CS_REC_SIZE]);
int cs_rec_decode(const uint8_t in[CS_REC_SIZE], struct cs_rec *r);
void cs_trl_encode(const struct cs_trl *t, uint8_t out[CS_TRL_SIZE]);
int cs_trl_decode(const uint8_t in[CS_TRL_SIZE], struct cs_trl *t);
void cs_chunk_path(char out[CS_PATH_MAX], uint32_t slot, const char *suffix);
int cs_parse_chunk_name(const char *name, uint32_t *slot, const char **suffix);
int cs_valid_chunk_size(uint32_t sz);
int cs_check_limits(const struct cs_limits *l);
void cs_key_str(char *out, size_t n, const struct cs_key *k);

/* Logging through the caller's callback; formats like printf. */
void cs_logf(cs_log_fn fn, void *arg, int level, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
#define cs_log(cs, level, ...)                                                 \
	cs_logf((cs)->log, (cs)->log_arg, level, __VA_ARGS__)

/*
 * Fault injection for the crash tests. Every write-side system call of the
 * library goes through a cs_io_ wrapper that first calls cs_fault_hook when
 * it is set: the hook returns 0 to let the call run, a -errno to fail it,
 * or calls _exit() to "die" at that step. NULL (the default) costs one
 * load and branch. Only tests arm it; it is not thread-safe to change while
 * a store is in use.
 */
enum cs_fault_op {
	CS_FOP_OPEN, /* open with O_CREAT */
	CS_FOP_PWRITE,
	CS_FOP_FSYNC, /* fsync and fdatasync */
	CS_FOP_RENAME,
	CS_FOP_FTRUNCATE,
	CS_FOP_UNLINK,
	CS_FOP_MKDIR,
};
typedef int (*cs_fault_fn)(enum cs_fault_op op, const char *what);
extern cs_fault_fn cs_fault_hook;

int cs_io_open(int dirfd, const char *path, int flags, mode_t mode);
int cs_io_pwrite(int fd, const void *buf, size_t n, off_t off);
ssize_t cs_io_pread(int fd, void *buf, size_t n, off_t off);
int cs_io_fsync(int fd);
int cs_io_fdatasync(int fd);
/* Start writing @fd's dirty pages to disk, not waiting for them (a hint:
 * a failure is the later fsync's to report). */
void cs_io_writeout(int fd);
int cs_io_rename(int dirfd, const char *from, const char *to);
int cs_io_ftruncate(int fd, off_t len);
int cs_io_unlink(int dirfd, const char *path);
int cs_io_mkdir(int dirfd, const char *path, mode_t mode);
int cs_io_fsync_dir(int dirfd, const char *path);

/* In-memory slot state (struct cs_slot.flags). */
enum {
	CS_SF_USED = 0x01,	/* holds a key; in the key and file tables */
	CS_SF_COMMITTED = 0x02, /* a committed chunk file exists */
	CS_SF_DIRTY = 0x04,	/* committed content is dirty */
	CS_SF_PINNED = 0x08,
	CS_SF_VERIFIED = 0x10, /* content checked since cs_open */
	CS_SF_BUSY = 0x20,     /* a put or commit is between its steps */
	CS_SF_RECDIRTY = 0x40, /* the index record on disk is out of date */
	/* The committed file came from a commit without sync and has not
	 * been fsynced since: its data may not be on disk. Unknown (after
	 * an open, an adoption) counts as synced. */
	CS_SF_UNSYNCED = 0x80,
};

/* One index slot in memory: 72 bytes, kept small for 1M-slot caches. */
struct cs_slot {
	uint64_t chunk;
	uint64_t dv;
	uint64_t last_use;
	uint8_t fid[16];
	uint32_t vol;
	uint32_t len;
	uint32_t crc;
	uint32_t gen;
	uint32_t fnext, fprev; /* chain of the file's slots, CS_NONE ends */
	uint32_t wc;	       /* 1 + index in cs->wcs, 0 = no working copy */
	uint16_t flags;	       /* CS_SF_* */
	uint16_t fdc;	       /* 1 + its read fd cache entry, 0 = none */
};

/* An uncommitted working copy: chunks/XX/SSSSSSSS.wip, data only. */
struct cs_wc {
	int fd;
	uint32_t slot;
	uint32_t len;
	uint64_t dv;
};

/*
 * The read fd cache: up to nfdc (cs_params fd_cache) open read-only fds of
 * committed chunk files, so a FUSE read costs a lookup and a pread, not an open
 * and a close. An entry is keyed by slot and generation (a put or commit
 * renames a new file over the slot and bumps the generation, so a stale fd is
 * never handed out) and reached from its slot's fdc field.
 *
 * Lifetime: refs counts the cache's own reference (while the entry is
 * mapped from its slot) plus one per reader. Entries are handed out and
 * unmapped only under the store's lock; readers pread outside it and give
 * their reference back with an atomic decrement. Whoever drops refs to 0
 * closes the fd and frees the entry (a reader takes the lock for that),
 * so an fd is never closed while another thread reads it. Eviction is
 * CLOCK over the entries: a use sets @used, the hand clears it and evicts
 * mapped entries found unused.
 */
struct cs_fdc_ent {
	int fd; /* -1: free entry */
	uint32_t slot, gen;
	uint32_t refs;	/* atomic; see above */
	uint8_t mapped; /* slots[slot].fdc points here, cache ref held */
	uint8_t used;	/* CLOCK reference bit */
};

/* A reader's hold on a chunk fd: ent >= 0 a cache entry, -1 a private fd
 * of a committed file the holder closes (every entry busy), -2 a private
 * dup of a working copy's fd (which a commit makes a chunk file); both
 * counted in cs->nprivate. */
struct cs_fdref {
	int fd;
	int ent;
};

struct cs_store {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* signalled when a slot leaves CS_SF_BUSY */
	char *dir;
	int dirfd; /* the cache folder */
	int idxfd; /* the index, flock()ed */
	cs_log_fn log;
	void *log_arg;
	uint32_t chunk_size;
	uint8_t shift;
	uint64_t create_time;
	uint64_t open_count;

	/* Everything below is protected by lock. */
	struct cs_limits lim;
	struct cs_slot *slots;
	uint32_t nslots, slots_cap;
	uint32_t *freel; /* stack of free slot numbers */
	uint32_t nfree, free_cap;
	uint64_t *ktab; /* key -> tag | 1 + slot, linear probing */
	uint32_t kmask, nkeys;
	uint64_t *ftab; /* (vol, fid) -> tag | 1 + first slot of the file */
	uint32_t fmask, nfiles;
	struct cs_wc **wcs;
	uint32_t nwcs;	    /* entries of wcs[] (capacity) */
	uint32_t nwc;	    /* working copies open (non-NULL entries) */
	uint64_t wc_made;   /* working copies created (tests, stats) */
	uint64_t wc_evicts; /* committed to make room (CS_WC_OPEN_MAX) */
	uint64_t wc_space_commits; /* committed to free space (ENOSPC) */
	uint64_t clock;
	uint64_t bytes_used, files_used, dirty_bytes, pinned_bytes;
	uint64_t hits, misses, evictions;
	int io_error; /* an index write failed: do not set the clean flag */
	struct cs_fdc_ent *fdc; /* nfdc entries, fixed at cs_open */
	uint32_t nfdc;
	uint32_t fdc_hand;
	uint64_t fdc_opens; /* chunk files opened for reading (tests) */
	uint32_t nprivate;  /* atomic: private read fds held (cs_fdref < 0) */
	uint32_t nunmapped; /* fd cache entries unmapped, still held */
	/*
	 * Spare files, as OpenAFS reuses its V-files: a clean chunk dropped
	 * while no reader holds its file is not unlinked but renamed to its
	 * slot's temporary name (chunks/XX/SSSSSSSS.tmp) and truncated to 0,
	 * and the slot is kept here instead of on the free list. A put that
	 * needs a new slot takes one of these first and opens that .tmp
	 * (O_CREAT|O_TRUNC, as always): the inode is reused, so ext4 does
	 * not allocate one (nor, without a journal, skip the inodes freed in
	 * the last 30 s to find one). Crash: a .tmp is what recovery removes
	 * anyway; cs_close unlinks the spares left.
	 */
	uint32_t *spare; /* CS_SPARE_MAX slots, free, each with its .tmp */
	uint32_t nspare;
	uint64_t spare_reuses; /* puts that reused a spare file (tests) */
	int readahead;	    /* WILLNEED the next chunk at a chunk's end */
};

/*
 * The levels of libchunkstore, each calling only the ones above it in this
 * list (tests/check-layers.sh does not see calls; keep it so by hand):
 *   crc32c.c, cs_format.c   checksum, byte layout, I/O wrappers
 *   cs_hash.c               key and file tables over the slot array
 *   cs_fdc.c                read fd cache
 *   cs_slot.c               the handle, slots, records, verdicts
 *   cs_cull.c               eviction
 *   cs_recover.c            load, recovery, cs_check
 *   cs_txn.c                put, working copies, commit
 *   cs_store.c              open/close, read, retag, iterate, stats
 * Everything below runs with cs->lock held unless it says otherwise.
 */

/* cs_hash.c */
int cs_tables_init(struct cs_store *cs, uint32_t nslots);
int cs_slot_grow(struct cs_store *cs, uint32_t nslots);
uint32_t cs_key_find(struct cs_store *cs, const struct cs_key *k);
int cs_key_insert(struct cs_store *cs, uint32_t slot);
int cs_key_insert_dup(struct cs_store *cs, uint32_t slot, uint32_t *dup);
void cs_key_remove(struct cs_store *cs, uint32_t slot);
void cs_slot_key(const struct cs_slot *s, struct cs_key *k);
int cs_key_eq(const struct cs_slot *s, uint32_t vol, const uint8_t fid[16],
	      uint64_t chunk);
/* The first slot of file (@vol, @fid), CS_NONE if it has none. */
uint32_t cs_file_find(struct cs_store *cs, uint32_t vol, const uint8_t fid[16]);
/* Free what cs_tables_init and cs_slot_grow mapped (any thread, no lock). */
void cs_big_free(void *p, size_t size);

/* cs_fdc.c */
void cs_fdc_forget(struct cs_store *cs, uint32_t slot);
int cs_fdc_get(struct cs_store *cs, uint32_t slot, struct cs_fdref *out);
void cs_fdc_release(struct cs_store *cs, struct cs_fdref *r, int locked);
/* Does a reader hold a read fd that may be of @slot's file? */
int cs_fdc_held(struct cs_store *cs, uint32_t slot);

/* cs_slot.c */
struct cs_wc *cs_slot_wc(const struct cs_store *cs, const struct cs_slot *s);
int cs_slot_present(const struct cs_slot *s);
void cs_acct(struct cs_store *cs, const struct cs_slot *s, int sign);
int cs_write_rec(struct cs_store *cs, uint32_t slot);
int cs_write_hdr(struct cs_store *cs, int clean);
void cs_slot_rec(const struct cs_store *cs, uint32_t slot, struct cs_rec *r);
void cs_slot_from_rec(struct cs_slot *s, const struct cs_rec *r);
int cs_alloc_slot(struct cs_store *cs, const struct cs_key *k, uint32_t *out);
/* As cs_alloc_slot, a slot with a spare file first (*spare set to 1). */
int cs_alloc_slot_spare(struct cs_store *cs, const struct cs_key *k,
			uint32_t *out, int *spare);
/* Unlink the spare files left (cs_close: nothing else runs). */
void cs_spare_drain(struct cs_store *cs);
void cs_unalloc_slot(struct cs_store *cs, uint32_t slot);
int cs_drop_slot(struct cs_store *cs, uint32_t slot, const char *why);
uint32_t cs_find_idle(struct cs_store *cs, const struct cs_key *k);
uint32_t cs_file_idle(struct cs_store *cs, uint32_t vol, const uint8_t fid[16]);
void cs_unbusy(struct cs_store *cs, uint32_t slot);
int cs_rewrite_trl(struct cs_store *cs, uint32_t slot);
void cs_fill_info(const struct cs_store *cs, uint32_t slot,
		  struct cs_info *out);
int cs_apply_verdict(struct cs_store *cs, uint32_t slot, int v,
		     const struct cs_trl *t);
/* No lock: read a whole chunk file (caller frees), NULL if it cannot. */
uint8_t *cs_read_whole(struct cs_store *cs, int fd, size_t *size);
void cs_fill_limits(struct cs_limits *dst, const struct cs_limits *src);
void cs_default_limits(struct cs_limits *l, const struct cs_limits *src);
struct cs_store *cs_store_new(const char *dir, cs_log_fn log, void *log_arg,
			      uint32_t nfdc);
void cs_store_free(struct cs_store *cs);

/* cs_cull.c (lock held). */
int cs_reserve(struct cs_store *cs, uint64_t add_bytes, uint64_t add_files);
int cs_cull_locked(struct cs_store *cs, uint64_t add_bytes, uint64_t add_files);

/*
 * cs_recover.c: loading, recovery and checking. One context serves cs_open
 * (fast: trailers only where the index cannot be trusted) and cs_check
 * (deep: every file read and verified; changes only with repair).
 */
struct cs_rctx {
	int deep;    /* read and verify every chunk file */
	int apply;   /* change files; 0 for cs_check without repair */
	int full;    /* no usable index: rebuild it from the trailers */
	int unclean; /* the clean flag was not set, or the index is short */
	int rdonly;  /* the index was opened read-only */
	uint32_t want_chunk_size; /* for a rebuild with no trailer to go by */
	uint8_t *bad;		  /* per slot: its record failed its CRC */
	uint8_t *present; /* per slot: bit 0 chunk file, bit 1 tmp, 2 wip */
	uint32_t ncap;	  /* entries in bad[] and present[] */
	cs_report_fn report;
	void *report_arg;
	struct cs_check_result *res;
};

int cs_load(struct cs_store *cs, struct cs_rctx *rc, int oflags);
int cs_scan(struct cs_store *cs, struct cs_rctx *rc);
int cs_reconcile(struct cs_store *cs, struct cs_rctx *rc);
int cs_build(struct cs_store *cs, struct cs_rctx *rc);
int cs_write_index_full(struct cs_store *cs, int clean);
int cs_flush_recs(struct cs_store *cs);
void cs_rctx_release(struct cs_rctx *rc);
int cs_verify_buf(const uint8_t *file, size_t size, uint32_t slot,
		  uint8_t shift, const struct cs_rec *rec, struct cs_trl *out);

/*
 * Benchmark-only: add @n clean committed records with keys (vol, fid from
 * @i, chunk 0) and no chunk files, as if chunks had been stored. Lets the
 * benchmark measure index costs at 1M records without 1M files.
 */
int cs_bench_insert(struct cs_store *cs, uint32_t n);

#endif /* CAIRN_CS_I_H */
