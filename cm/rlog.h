/*
 * rlog.h - the replay log: every mutation of a cairnd mount, durable, in
 * order, with Coda-style cancellation, until the server has acknowledged it.
 *
 * Layer rule: FUSE-free and network-free. It includes common/proto.h for
 * struct proto_op and nothing else of ours but logging; it never sends
 * anything. The write path (connected mode: append, send, remove) and the
 * reintegration worker (disconnected mode: the log grows, is replayed later)
 * both sit on top of it. doc/replay-log.md is the long form of this page.
 *
 * Invariants (tests/unit/test_rlog.c holds the module to them):
 *  1. A record is durable when rlog_append*() returns 0: a process killed
 *     after that still has it (one journal record + fdatasync, common/
 *     tdbj.h); a process
 *     killed during the call has the whole append, cancellations included,
 *     or none of it. Power loss: the same, given a disk that honours fsync.
 *  2. Seqs strictly increase in append order and are never reused. A
 *     record's opid never changes once appended.
 *  3. Cancellation and merging touch PENDING records only, never INFLIGHT
 *     (perhaps already at the server) or CONFLICT ones. A record must be
 *     set INFLIGHT (durably: rlog_set_state() commits) before any byte of
 *     it goes to the server.
 *  4. A CONFLICT record is never dropped implicitly: only
 *     rlog_conflict_resolve() removes it; rlog_remove() refuses it.
 *  5. A file that is not a replay log of this version, or is damaged, is an
 *     error at open (-EUCLEAN, -EPROTONOSUPPORT) and is left untouched.
 *
 * Threads: every function may be called from any thread (FUSE workers
 * append directly; the loop thread sends, acks, resolves). One mutex guards
 * the tdb handle, which is not thread-safe. Concurrent appends share one
 * transaction and one fsync (group commit); each still returns only after
 * its own record is durable. Callbacks of rlog_iterate()/rlog_conflicts()
 * run WITHOUT the mutex held and may call any rlog function on the same
 * log. One process at a time: rlog_open() takes an exclusive flock.
 *
 * Errors: 0 or a negative errno. -ENOENT no such record; -EINVAL a
 * malformed op or a forbidden state change; -EBUSY the record is a
 * conflict; -EUCLEAN a damaged file or record; -EIO, -ENOSPC, -ENOMEM
 * from below; -EROFS on a log opened with RLOG_O_RDONLY.
 */
#ifndef CAIRN_CM_RLOG_H
#define CAIRN_CM_RLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/fid.h"
#include "common/proto.h"

/* The header's version; see doc/replay-log.md. 2: the log may have records
 * in its journal rlog.tdb.jnl, which a cairnd of version 1 would ignore. A
 * version 1 log is upgraded in place at its first read-write open. */
#define RLOG_FORMAT_VERSION 2

struct rlog;

enum rlog_state {
	RLOG_PENDING = 1, /* waiting; cancellation rules may merge or drop it */
	RLOG_INFLIGHT = 2, /* may have reached the server: resend as is */
	RLOG_CONFLICT = 3, /* the server refused it; see struct rlog_conflict */
};

/* Why a replayed change was refused, as the reintegration worker saw it. */
enum rlog_conflict_kind {
	RLOG_CF_NONE = 0,
	RLOG_CF_STALE_DV,    /* store/setattr: the server's DV moved on (412) */
	RLOG_CF_NAME_EXISTS, /* create/link/rename: another object has the name
			      */
	RLOG_CF_NAME_CHANGED, /* unlink/rmdir/rename: the name now names another
				 FID (412) */
	RLOG_CF_PARENT_GONE,  /* the directory was removed on the server */
	RLOG_CF_OBJECT_GONE,  /* the object was removed on the server */
	RLOG_CF_NOT_EMPTY,    /* rmdir: the server's directory has entries */
	RLOG_CF_NO_SPACE,     /* quota or server disk full (507) */
	RLOG_CF_REFUSED,      /* any other refusal (403, 400, ...) */
	RLOG_CF_MAX
};

/*
 * What the reintegration worker knows about a conflict. Strings are heap
 * and owned by whoever holds the struct (rlog_rec_release() frees those of
 * a record read back); rlog_conflict_add() copies what it is given.
 */
struct rlog_conflict {
	enum rlog_conflict_kind kind;
	int err;	 /* positive errno the server answered, 0 if none */
	int64_t time_ms; /* wall clock when found; 0 = rlog_conflict_add()
			    fills in now */
	struct {
		uint64_t size;
		int64_t mtime_ns;
		uint64_t dv; /* the DV the local change was based on */
		char *path;  /* where the local version was saved, or NULL */
	} local;
	bool has_server;
	struct proto_attr server; /* the server's version when refused */
	bool has_base;
	struct proto_attr base; /* metadata from before the local change */
	char *msg;		/* the server's message, or NULL */
};

/*
 * One record as read back. Everything is a copy the caller owns and
 * releases with rlog_rec_release() (strings, xvalue, chunks of @op, and
 * the conflict's strings).
 */
struct rlog_rec {
	uint64_t seq;
	enum rlog_state state;
	int64_t time_ms;    /* wall clock (ms since the epoch) when the oldest
			       change this record carries was appended */
	uint64_t nbytes;    /* store: bytes of file data the store will send */
	struct proto_op op; /* as appended (or as merged); opid never zero */
	bool has_conflict;  /* state == RLOG_CONFLICT */
	struct rlog_conflict conflict;
};

/* Zeroes @rec after freeing what it owns; accepts NULL. */
void rlog_rec_release(struct rlog_rec *rec);

/* --- open / close --- */

enum {
	RLOG_O_RDONLY = 1, /* tools: read only (shared flock); mutations give
			      -EROFS */
	RLOG_O_NOSYNC = 2, /* tests and benchmarks ONLY: no fsync, so only
			      process death is survived, not power loss */
};

/*
 * Open the log at @path, creating it (mode 0600) when it does not exist; a
 * new file is built under "@path.new" and linked into place, so @path is
 * only ever a complete log. An existing file is never rewritten at open
 * (tdb's crash recovery excepted): one that is not a replay log, has a
 * damaged header or is of another version gives NULL, a log line and
 * *err = -EUCLEAN / -EPROTONOSUPPORT. -EBUSY when another process has it
 * open. @return the handle, or NULL and a negative errno in *err (@err may
 * be NULL). Any thread.
 */
struct rlog *rlog_open(const char *path, int *err);
struct rlog *rlog_open_flags(const char *path, unsigned flags, int *err);

/* Close; accepts NULL. No other call on @l may be running or follow. */
void rlog_close(struct rlog *l);

/* --- appending --- */

enum rlog_fate {
	RLOG_APPENDED =
		0,     /* a new record at effect.seq, nothing else changed */
	RLOG_MERGED,   /* a new record at effect.seq that absorbed older
			  records (listed in changes) */
	RLOG_FOLDED,   /* no new record: an older record (effect.seq) was
			  rewritten to include this op (rename chains) */
	RLOG_VANISHED, /* no record at all: this op and the older records
			  listed cancelled out (effect.seq = 0) */
};

enum rlog_why {
	RLOG_WHY_MERGED = 1, /* superseded by the new record (store, setattr,
				xattr of the same name) */
	RLOG_WHY_IDENTITY,   /* about a FID created in the log and now removed:
				drop its local state (dirty chunks ...) */
	RLOG_WHY_FOLDED,     /* rename chain: rewritten to the final name */
	RLOG_WHY_REWRITTEN,  /* a rename over another object, whose own FID was
				cancelled, became an unlink/rmdir of that
				other object */
};

/* One older record an append removed or rewrote. */
struct rlog_change {
	uint64_t seq;
	enum rlog_why why;
	bool removed;		 /* gone; false = rewritten in place */
	enum proto_op_kind kind; /* its kind before the change */
	struct fid fid;		 /* its object (op.fid) */
};

/* What an append did. Release with rlog_effect_release(). */
struct rlog_effect {
	uint64_t seq; /* the record carrying the op; 0 if vanished */
	enum rlog_fate fate;
	uint8_t opid[16]; /* the opid the op got (generated if it had
			     none); for FOLDED, the older record's */
	size_t nchanges;
	struct rlog_change *changes; /* heap array, NULL when none */
};

/* Frees @eff->changes and zeroes @eff; accepts NULL. */
void rlog_effect_release(struct rlog_effect *eff);

enum {
	/* The record is born INFLIGHT and no rule merges it: connected mode
	 * sends it at once, so it must not change after the call returns. */
	RLOG_A_INFLIGHT = 1,
	/* This change need not survive a power cut, only the death of the
	 * process: its transaction skips the fsyncs (tdb TDB_NOSYNC for one
	 * commit). Connected mode uses it: the caller is answered only once
	 * the server replied, so a record lost with the machine was never
	 * acknowledged to anyone. A group commit fsyncs if any member did
	 * not ask for this. */
	RLOG_A_NOSYNC = 2,
	/* Removals only (rlog_remove_flags, rlog_remove_batch_flags): the
	 * records go in the next transaction of the log (an append's, a
	 * state change's) instead of one of their own, or at the latest
	 * before anything reads the log or it is closed, or when
	 * RLOG_LAZY_MAX are waiting. Until then they are in memory only:
	 * a process killed meanwhile finds them again at its next start
	 * and resends them under their opids (the server answers a
	 * repeated opid from its table and applies nothing twice). Sync
	 * mode removes what the server acknowledged this way: one local
	 * transaction per FUSE operation instead of two. Implies NOSYNC. */
	RLOG_A_LAZY = 4,
};

/* Make every commit so far durable, those made with RLOG_A_NOSYNC too
 * (one fdatasync of the journal, shared with concurrent callers):
 * a connected op absorbed by a disconnect (replay_absorb()) is answered
 * as logged, so its record must survive a power cut. @return 0 or -errno
 * (the log then refuses every change). Any thread. */
int rlog_sync(struct rlog *l);

/* Lazy removals waiting at most (RLOG_A_LAZY). */
#define RLOG_LAZY_MAX 256

/*
 * Append @op durably, after applying the cancellation rules of
 * doc/replay-log.md to the PENDING records it meets. @op is copied; a
 * zero opid is replaced by 16 random bytes. *@seq (may be NULL) is the
 * record that now carries the op, 0 when it vanished. @return 0, -EINVAL
 * for an op the protocol cannot carry (doc/protocol.md op table), or an
 * error from the file (nothing changed then). Any thread.
 */
int rlog_append(struct rlog *l, const struct proto_op *op, uint64_t *seq);

/* Same, with @flags (RLOG_A_*) and the full effect in @eff (may be NULL;
 * release it with rlog_effect_release() whatever the return value). */
int rlog_append_ex(struct rlog *l, const struct proto_op *op, unsigned flags,
		   struct rlog_effect *eff);

/*
 * Append @n ops as one transaction and one fsync: all of them or none.
 * Ops are applied in order, so later ones may cancel earlier ones of the
 * same batch. @effs is NULL or an array of @n effects. Any thread.
 */
int rlog_append_batch(struct rlog *l, const struct proto_op *ops, size_t n,
		      unsigned flags, struct rlog_effect *effs);

/* --- reading --- */

/* The oldest PENDING record into *@rec (release it). -ENOENT if none. */
int rlog_first(struct rlog *l, struct rlog_rec *rec);

/* May a store record carry @dlen of its bytes (format 3)? Chunk 0 alone
 * of a file of at most PROTO_INLINE_MAX bytes that fits the chunk (what
 * a batch sends inline), and 0 < @dlen <= the size. */
bool rlog_data_ok(enum proto_op_kind kind, uint32_t chunk_size, uint64_t size,
		  const uint64_t *chunks, size_t nchunks, size_t dlen);

/* States as a mask for rlog_next(). */
#define RLOG_MASK(state) (1u << (state))
/* In rlog_fid_find()'s @states: skip the records rlog_is_direct() names. */
#define RLOG_NOT_DIRECT (1u << 16)
#define RLOG_MASK_ALL                                                          \
	(RLOG_MASK(RLOG_PENDING) | RLOG_MASK(RLOG_INFLIGHT) |                  \
	 RLOG_MASK(RLOG_CONFLICT))

/* The first record with seq > @after whose state is in @states (a mask of
 * RLOG_MASK()). -ENOENT if none; -EUCLEAN if that record is damaged
 * (rec->seq then names it, nothing else is set: a scan may step over
 * it). After a restart, rlog_next(l, 0,
 * RLOG_MASK(RLOG_INFLIGHT), &r) finds what must be resent as is. */
int rlog_next(struct rlog *l, uint64_t after, unsigned states,
	      struct rlog_rec *rec);

/*
 * The oldest record naming @fid (as object, parent, new parent or
 * victim: the per-FID index) whose state is in @states (RLOG_MASK()s)
 * and whose seq is below @below (UINT64_MAX: any). *@seqp (may be NULL)
 * gets its seq. @return 0, -ENOENT if there is none, or -errno.
 * O(records naming @fid). Any thread. What writeback mode asks: is the
 * local view of @fid ahead of the server (a PENDING or INFLIGHT record
 * names it), has a change of it made before a point been sent.
 */
int rlog_fid_find(struct rlog *l, const struct fid *fid, unsigned states,
		  uint64_t below, uint64_t *seqp);
/* Was record @seq appended with RLOG_A_INFLIGHT through this handle
 * and is it still INFLIGHT (not removed, not set PENDING or CONFLICT)?
 * Such a record is its appender's: a connected op in flight, a late
 * create held back (cairnd's op log); a replay leaves it alone. Not
 * kept on disk: after a restart no record is direct. Any thread. */
bool rlog_is_direct(struct rlog *l, uint64_t seq);
/* The appender gave record @seq up (no answer, disconnected): it stays
 * INFLIGHT, for a replay to resend. */
void rlog_undirect(struct rlog *l, uint64_t seq);
/* How many records rlog_is_direct() names now. */
size_t rlog_ndirect(struct rlog *l);
/* How many records name @fid with a state in @states below @below (*@n;
 * what fs sync PATH waits for); @kind >= 0: only records of that kind
 * with @fid as their object. @return 0 or -errno. */
int rlog_fid_count(struct rlog *l, const struct fid *fid, unsigned states,
		   int kind, uint64_t below, size_t *n);
/* As rlog_fid_find(), counting only @kind records with @fid as their
 * object (writeback: is a later STORE of the file still to be sent?). */
int rlog_fid_find_kind(struct rlog *l, const struct fid *fid, unsigned states,
		       enum proto_op_kind kind, uint64_t below, uint64_t *seqp);

/* Record @seq into *@rec (release it). -ENOENT if there is none. */
int rlog_get(struct rlog *l, uint64_t seq, struct rlog_rec *rec);

/*
 * Call @fn for every record in seq order; @fn returns 0 to go on, anything
 * else stops the walk and is returned. @fn gets a record the walk releases
 * after the call; it runs without the lock and may append, remove or
 * change records (the walk then sees the log as it is at each step).
 * @return 0, @fn's value, or -errno.
 */
typedef int (*rlog_iter_fn)(const struct rlog_rec *rec, void *arg);
int rlog_iterate(struct rlog *l, rlog_iter_fn fn, void *arg);

/* --- changing records --- */

/*
 * PENDING -> INFLIGHT before sending; INFLIGHT -> PENDING only when the
 * caller KNOWS the request never left (connect refused): the record
 * becomes mergeable again. Durable on return. -EBUSY for a CONFLICT
 * record, -EINVAL for @state RLOG_CONFLICT (use rlog_conflict_add()).
 */
int rlog_set_state(struct rlog *l, uint64_t seq, enum rlog_state state);

/*
 * PENDING -> INFLIGHT for @seq and the PENDING records after it, in log
 * order (records in other states are passed over), up to @max of them,
 * in ONE transaction: a replay marks a window of records ahead instead of
 * paying a durable commit per record. @seq already INFLIGHT moves nothing
 * (*moved = 0) and returns 0; -EBUSY when @seq is a CONFLICT, -ENOENT when
 * it does not exist. Durable on return.
 */
int rlog_set_inflight_run(struct rlog *l, uint64_t seq, size_t max,
			  size_t *moved);

/*
 * Drop a record the server acknowledged. Durable on return (a removal lost
 * in a crash would only resend an op whose opid the server remembers).
 * -EBUSY for a CONFLICT record (use rlog_conflict_resolve()).
 */
int rlog_remove(struct rlog *l, uint64_t seq);
/* Same, with @flags RLOG_A_NOSYNC (a lost removal only resends an op
 * whose opid the server remembers). */
int rlog_remove_flags(struct rlog *l, uint64_t seq, unsigned flags);

/* Drop @n acknowledged records in one transaction; stops at nothing:
 * missing seqs are skipped, a CONFLICT one fails the whole call (-EBUSY,
 * nothing removed). @return the number removed or -errno. */
int rlog_remove_batch(struct rlog *l, const uint64_t *seqs, size_t n);
/* Same, with @flags RLOG_A_NOSYNC (the records of a batch request the
 * server answered, connected mode). */
int rlog_remove_batch_flags(struct rlog *l, const uint64_t *seqs, size_t n,
			    unsigned flags);

/* --- conflicts --- */

/*
 * Move record @seq (PENDING or INFLIGHT) to CONFLICT with a copy of *@c.
 * -EEXIST if it already is one. Durable on return.
 */
int rlog_conflict_add(struct rlog *l, uint64_t seq,
		      const struct rlog_conflict *c);

/* Call @fn for every CONFLICT record in seq order; as rlog_iterate(). */
int rlog_conflicts(struct rlog *l, rlog_iter_fn fn, void *arg);

/* Remove CONFLICT record @seq once the user settled it. -EINVAL if the
 * record is not a conflict, -ENOENT if there is none. */
int rlog_conflict_resolve(struct rlog *l, uint64_t seq);

/* --- statistics --- */

struct rlog_stats {
	uint64_t records; /* all records */
	uint64_t pending, inflight, conflicts;
	uint64_t data_bytes; /* sum of nbytes: store data waiting to go */
	uint64_t file_bytes; /* size of the tdb file */
	int64_t oldest_ms;   /* time_ms of the oldest record, 0 if empty */
	uint64_t next_seq;   /* the seq the next record will get */
	/* Since open, in this process: */
	uint64_t appends;   /* ops appended (batches count each op) */
	uint64_t commits;   /* transactions committed (fsyncs) */
	uint64_t cancelled; /* older records removed by the rules */
	uint64_t syncs;	    /* fdatasyncs of the journal */
};

int rlog_stats(struct rlog *l, struct rlog_stats *st);

/*
 * Verify the file: every record decodes (CRC, format), the seq-order list
 * holds each record once in increasing order, the state lists and the
 * per-FID index hold exactly what the records say, the header's counters
 * are right: O(records). With RLOG_CHECK_KEYS, also walk every key of the
 * file, so an orphan (an index entry or record no list reaches) is found:
 * O(file), ~0.1 s for tdb's hash table alone. For tests and cairn-fsck;
 * it changes nothing. @return 0, or -EUCLEAN with a one-line reason in
 * @why (may be NULL). Any thread.
 */
enum { RLOG_CHECK_KEYS = 1 };
int rlog_check(struct rlog *l, unsigned flags, char *why, size_t len);

/* Names for logs and tools: "pending", "stale-dv", ... */
const char *rlog_state_name(enum rlog_state s);
const char *rlog_conflict_name(enum rlog_conflict_kind k);

#endif /* CAIRN_CM_RLOG_H */
