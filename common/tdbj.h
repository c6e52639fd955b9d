/*
 * tdbj.h - a redo journal in front of a tdb: a transaction commits as ONE
 * appended record and ONE fdatasync instead of tdb's 4-5 syncs and its
 * recovery area. doc/cache-format.md, "tdb journal", is the long form.
 *
 * A struct tdbj wraps an open tdb handle. Its calls mirror tdbw.h's
 * (fetch, parse, fetch_fixed, store, delete, txn_*) and return the same
 * errnos; callers switch from tdbw_x(tdb, ...) to tdbj_x(j, ...). With a
 * journal, a committed transaction's puts and deletes live in an in-memory
 * overlay that every read consults first, and in the journal file; the
 * tdb file is written only at a checkpoint, which applies the overlay in
 * one ordinary (synced) tdb transaction that also records the journal
 * generation it covers, then empties the journal. So a process killed or
 * a machine that loses power at any instant leaves the old tdb plus a
 * journal prefix: every commit that returned 0, and no half of any other.
 * Without a journal (@jpath NULL) the calls go straight to tdb and a
 * commit is tdb's own.
 *
 * Checkpoints run when the journal passes @max_bytes, at tdbj_close() and
 * on tdbj_checkpoint(); whoever reads the tdb file directly (a copy,
 * another process, tdb_traverse) calls tdbj_checkpoint() first, or uses
 * tdbj_traverse_read(), which sees the overlay.
 *
 * The tdb holds one key of ours, TDBJ_KEY (5 bytes, "\0tdbj"): the
 * database id and the generation the tdb contains. Callers never use it;
 * tdbj_traverse_read() hides it.
 *
 * Layer rule: as tdbw.h (common/, may include <tdb.h>).
 * Threads: none of its own. The caller serialises every call on a handle,
 * as it does for the tdb handle (which tdbj owns from open to close),
 * except tdbj_sync_to(), which may run outside that lock.
 */
#ifndef CAIRN_COMMON_TDBJ_H
#define CAIRN_COMMON_TDBJ_H

#include <stddef.h>
#include <stdint.h>

#include "common/tdbw.h"

#define TDBJ_VERSION 1 /* the journal file's format version */
#define TDBJ_KEY     "\0tdbj"
#define TDBJ_KEY_LEN 5
/* Default checkpoint bound on the journal file (@max_bytes 0). */
#define TDBJ_MAX_BYTES_DEFAULT (4u << 20)

struct tdbj;

enum {
	TDBJ_O_RDONLY = 1, /* load the journal, write nothing: -EROFS on
			      any change (the tdb must be read-only too) */
	TDBJ_O_NOSYNC = 2, /* no fdatasync (tests, benchmarks): process
			      death is survived, power loss is not */
	TDBJ_O_EXCL = 4,   /* the caller keeps every other process off the
			      tdb file (a lock of its own): with a journal,
			      tdb's fcntl locks are turned off (TDB_NOLOCK)
			      but around checkpoints; back on at
			      tdbj_detach() and tdbj_close(). The caller
			      must not hold a tdb lock across a commit */
	TDBJ_O_PREALLOC = 8, /* keep zeros written ahead of the last record
			      (a quarter of @max_bytes at a time, at most
			      1 MiB; only with @max_bytes >= 64 KiB), so a
			      commit overwrites allocated blocks within the
			      file's size and its fdatasync writes no inode.
			      The file then ends in zeros, which a reader
			      takes as the end (a tail); the journal's
			      extent is tdbj_stats() .bytes, not its size */
	TDBJ_O_DIGEST = 16, /* keep a digest of the tdb's records in
			      TDBJ_KEY (written at every checkpoint), and
			      at open drop a journal whose tdb no longer
			      has that digest: the tdb was written by a
			      program that ignores the journal (an older
			      build) after the journal's records, which
			      are therefore stale (tdbj_stats()
			      .stale_bytes). A handle without this flag
			      refuses such a tdb (-EUCLEAN). The open
			      first checks tdb's structure (tdbw_check())
			      and refuses a damaged file (-EUCLEAN) rather
			      than walk it. Costs a read of the whole tdb
			      at open and a lookup per key at a
			      checkpoint */
};

/*
 * Take over @tdb (opened by the caller, TDB_NOLOCK or not; the caller
 * keeps other writers out) and attach the journal at @jpath, created
 * (0600) when missing. Reads the journal into the overlay: a torn or
 * bad-CRC tail (a commit that never returned) is cut off (left in the file
 * when read-only); a damaged record that a later record proves had been
 * synced, a record that does not parse, a journal of another database or
 * of a generation the tdb cannot follow give -EUCLEAN; a header of another
 * version -EPROTONOSUPPORT. A journal whose generation the tdb already
 * contains is emptied (ignored when read-only). @jpath NULL: no journal.
 * @max_bytes: checkpoint bound, 0 for the default.
 * @return the handle, or NULL and *err (-errno); on failure @tdb is NOT
 * closed (still the caller's).
 */
struct tdbj *tdbj_open(struct tdb_context *tdb, const char *jpath,
		       unsigned flags, size_t max_bytes, int *err);

/* Checkpoint (unless read-only), free, and tdb_close() the tdb. @return 0
 * or the checkpoint's error (the journal then still holds the changes;
 * nothing is lost). Accepts NULL. */
int tdbj_close(struct tdbj *j);

/* Checkpoint (unless read-only) and free @j, but keep its tdb open:
 * @return the tdb, now the caller's again (to attach another journal, or
 * none). On a failed checkpoint NULL and *err (-errno): @j is untouched
 * and still owns the tdb; the journal holds every change. */
struct tdb_context *tdbj_detach(struct tdbj *j, int *err);

/* The tdb underneath (tdb_fd, tdb_name...). Do not write through it. */
struct tdb_context *tdbj_tdb(struct tdbj *j);

/* As tdbw_fetch/parse/fetch_fixed/store/delete, through the open
 * transaction, then the overlay, then the tdb. A store or delete outside
 * a transaction is a transaction of its own. */
int tdbj_fetch(struct tdbj *j, const void *k, size_t klen, uint8_t **val,
	       size_t *vlen);
int tdbj_parse(struct tdbj *j, const void *k, size_t klen,
	       int (*parser)(TDB_DATA key, TDB_DATA data, void *arg),
	       void *arg);
int tdbj_fetch_fixed(struct tdbj *j, const void *k, size_t klen, void *dst,
		     size_t len);
int tdbj_store(struct tdbj *j, const void *k, size_t klen, const void *v,
	       size_t vlen, int flag);
int tdbj_delete(struct tdbj *j, const void *k, size_t klen);

/*
 * Transactions: one at a time (-EBUSY when one is open). Commit appends
 * one record and fdatasyncs it (one sync; none for TDBJ_C_NOSYNC or a
 * TDBJ_O_NOSYNC handle), then checkpoints when the journal passed its
 * bound. @return 0 once the record is durable, or -errno: the transaction
 * is then cancelled, the file is as before it, and after a failed write or
 * sync the handle refuses every later change with -EIO (the kernel may
 * have dropped the page: the journal's state is unknown). A checkpoint
 * that fails after the commit does not fail the commit.
 */
/* TDBJ_C_NOSYNC: this commit skips the fdatasync: process death is
 * survived; the next synced commit makes it durable.
 * TDBJ_C_DEFER: the commit writes its record and returns; the caller
 * makes it durable with tdbj_sync_to(j, tdbj_pos(j)), which may run
 * outside the caller's lock (group commit: the next transaction can be
 * written while this one syncs, and one fdatasync serves everyone whose
 * record was written before it started). Until then other calls already
 * see its changes. */
enum { TDBJ_C_NOSYNC = 1, TDBJ_C_DEFER = 2 };
int tdbj_txn_start(struct tdbj *j);
int tdbj_txn_commit(struct tdbj *j, unsigned cflags);
void tdbj_txn_cancel(struct tdbj *j);

/* The journal position after the last commit (caller's lock), for
 * tdbj_sync_to(). 0 without a journal. */
uint64_t tdbj_pos(struct tdbj *j);

/* Return once everything up to @pos is synced (a checkpoint counts), or
 * the error of the fdatasync that failed (the handle then refuses every
 * change: -EIO). Thread-safe: may run concurrently with any call on @j
 * but tdbj_close(). 0 at once without a journal or with TDBJ_O_NOSYNC. */
int tdbj_sync_to(struct tdbj *j, uint64_t pos);

/* Apply the overlay to the tdb and empty the journal now (no transaction
 * may be open). @return 0 or -errno. */
int tdbj_checkpoint(struct tdbj *j);

/* After a failed write or sync (every change refused with -EIO): apply
 * the overlay (every committed change) to the tdb in a checkpoint, which
 * rewrites the journal, and accept changes again. @return 0 (also when
 * nothing was broken) or -errno (still broken; try again later). Caller's
 * lock, no transaction open. */
int tdbj_repair(struct tdbj *j);

/* tdb_traverse_read() as the handle sees it (tdb records the overlay does
 * not shadow, then the overlay's), without TDBJ_KEY, outside a
 * transaction. @fn returns nonzero to stop. @return the number of records
 * visited or -errno. */
int tdbj_traverse_read(struct tdbj *j,
		       int (*fn)(TDB_DATA key, TDB_DATA val, void *arg),
		       void *arg);

struct tdbj_stats {
	uint64_t commits;     /* transactions committed */
	uint64_t syncs;	      /* fdatasyncs of the journal */
	uint64_t checkpoints; /* overlay applied to the tdb */
	uint64_t bytes;	      /* journal file size now */
	uint64_t keys;	      /* keys in the overlay now */
	uint64_t gen;	      /* the journal's generation */
	uint64_t ckpt_fails;  /* checkpoints a commit tried that failed */
	int ckpt_err;	      /* the last one's -errno (0: none) */
	uint64_t stopped;     /* transactions refused past the stop */
	uint64_t stale_bytes; /* TDBJ_O_DIGEST: journal bytes the open
				 dropped as stale (0: none) */
	int broken;	      /* -errno while changes are refused after a
				 failed write or sync (tdbj_repair()) */
	uint64_t repairs;     /* tdbj_repair() calls that mended it */
};
void tdbj_stats(const struct tdbj *j, struct tdbj_stats *st);

/*
 * Bound the journal at @bytes (0: no bound, the default). A commit past
 * max_bytes tries a checkpoint, and a checkpoint that fails (the tdb
 * cannot grow: a full disk, tdb's 4 GiB) leaves the commit standing, so
 * without a stop the journal and its in-memory overlay grow as long as
 * checkpoints fail. Once the journal holds @bytes, tdbj_txn_start() tries
 * a checkpoint (at most once a second) and, while it fails, returns
 * -ENOSPC: no new change, every committed one kept. Counted in
 * tdbj_stats() .stopped.
 */
void tdbj_set_stop(struct tdbj *j, uint64_t bytes);

/*
 * Whether the records of @tdb (opened alone, no journal attached: a copy
 * being rebuilt by cairn-fsck) are exactly those the file's TDBJ_KEY
 * digest was made of (TDBJ_O_DIGEST, written at every checkpoint; at rest
 * nothing else writes the file). One walk of the records: call it on a
 * database whose structure is sound (tdbw_check()).
 * @return 0 when the digest matches, -ESTALE when it does not (a record
 * missing, added or changed), -ENOENT when the file carries no digest
 * (no TDBJ_KEY, or one of 16 bytes), or the mapped tdb error.
 */
int tdbj_digest_check(struct tdb_context *tdb);

#endif /* CAIRN_COMMON_TDBJ_H */
