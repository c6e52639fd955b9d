/*
 * rlog_i.h - internals shared by the files of the replay log (cm/rlog*.c).
 *
 * Nothing outside cm/rlog*.c includes this: cm/rlog.h is the module's whole
 * face. The split follows the seams the module already had, as tdb splits
 * its own code (common/io.c, common/transaction.c, ...):
 *
 *   rlog_codec.c   the record and header byte layout, op validation
 *   rlog_list.c    the header, the ordered lists, records in the file
 *   rlog_cancel.c  the cancellation rules run at append
 *   rlog_check.c   rlog_check(), the consistency check
 *   rlog.c         transactions, group commit, open/close, reading,
 *                  state changes, statistics
 *
 * Every function here runs with l->lock held unless its comment says
 * otherwise (the codec functions touch no handle at all). Same layer rule
 * as rlog.h.
 */
#ifndef CAIRN_CM_RLOG_I_H
#define CAIRN_CM_RLOG_I_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "cm/rlog.h"
#include "common/tdbj.h"

#define HDR_MAGIC  "cairnrlg" /* 8 bytes, no NUL on disk */
#define HDR_LEN	   80	      /* bytes of header version 1 */
#define REC_FORMAT 1	      /* the format byte of every record */
/* Format 1 plus a u32 rdev at the end: only for the create of a device
 * node, so an older cairnd refuses just those records. */
#define REC_FORMAT_RDEV 2
/* Format 2 (rdev, 0 but for a device) plus a store's bytes: u64 chunk
 * DV, u32 slot, u32 generation, u32 length, the bytes. Only a store of
 * chunk 0 of a small file (doc/replay-log.md "Format 3"). */
#define REC_FORMAT_DATA 3
/* The journal's checkpoint bound (tdbj_open()): a small store's record
 * carries its bytes (format 3), and most records leave the log within a
 * second, so a larger bound lets them come and go in the journal alone
 * instead of being written into the tdb by a checkpoint and freed by the
 * next (doc/cm.md "Session 13"). */
#define RLOG_JNL_MAX (32u << 20)
/* tdb hash chains. tdb never rehashes: a lookup walks keys/HASH_SIZE
 * entries (a record is ~6 keys: chains of ~5 at 100k records with this
 * size), and each transaction and traverse reads the whole 512 KiB table.
 * Since the journal, transactions are checkpoints (every 4 MiB of
 * journal), so lookups decide: 32749 made a replay of 100k records cost
 * 2.2x a record what 10k cost (session 8, doc/cm.md). A log made with
 * the old size keeps it (tdb fixes it at creation). */
#define HASH_SIZE 131071
#define RLOG_MAX_DEAD 8
/* A rule gives up (keeps the op as it came) beyond this many steps. */
#define SCAN_MAX	 65536
#define MERGE_CHUNKS_MAX (1u << 20) /* largest chunk list a merge builds */
#define GROUP_MAX	 1024	    /* ops in one group commit */
#define STR_MAX		 4096	    /* conflict path and message */

/* Roles a record names a FID in (aux of 'F' list nodes). */
enum {
	ROLE_OBJ = 1,
	ROLE_PARENT = 2,
	ROLE_NEWPARENT = 4,
	ROLE_VICTIM = 8,
};

/* The list ids. */
enum {
	LT_ALL = 'A',
	LT_PEND = 'P',
	LT_CONF = 'C',
	LT_FID = 'F',
};

#define LID_LEN 21 /* type byte + vol (be32) + oid */

struct lid {
	uint8_t b[LID_LEN];
};

struct lhead {
	uint64_t first, last, count;
};

struct lnode {
	uint64_t prev, next;
	uint8_t aux, kind;
};

struct hdr {
	uint32_t version; /* as read; rlog_hdr_encode() writes the current */
	uint64_t next_seq;
	int64_t created_ms;
	uint64_t nrec, npend, ninfl, nconf, data_bytes;
};

/* One append waiting for a group commit. */
struct greq {
	const struct proto_op *ops;
	size_t n;
	unsigned flags;
	struct rlog_effect *effs; /* n of them, always non-NULL here */
	int rc;
	bool done;
	STAILQ_ENTRY(greq) link;
};

struct rlog {
	char *path;
	unsigned flags;
	int lockfd; /* holds the flock for the handle's life */

	pthread_mutex_t lock;
	struct tdbj *j;		 /* the tdb + journal, protected by lock */
	struct hdr hdr;		 /* committed header, protected by lock */
	struct hdr tx;		 /* the open transaction's header, ditto */
	uint64_t nappends, ncommits, ncancelled; /* protected by lock */
	/* Failed checkpoints warned about, and when (ckpt_check()); ditto. */
	uint64_t ckpt_fails_seen;
	int64_t ckpt_warn_ms;

	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	STAILQ_HEAD(, greq) queue; /* protected by qlock */
	bool leader;		   /* a group commit runs; protected by qlock */
	bool tx_nosync;		   /* the running transaction need not be
				      fsynced (RLOG_A_NOSYNC); under lock */
	/* RLOG_A_LAZY removals not committed yet, protected by lock; the
	 * first nlazy_tx of them ride in the open transaction */
	uint64_t *lazy;
	size_t nlazy, caplazy, nlazy_tx;
	/* Records this handle appended with RLOG_A_INFLIGHT and that are
	 * still INFLIGHT (rlog_is_direct()): sorted seqs, under lock; not
	 * on disk (a restart owns none). */
	uint64_t *direct;
	size_t ndirect, direct_cap;
};

/* Commit the RLOG_A_LAZY removals waiting (rlog.c); lock held. */
void rlog_lazy_flush_locked(struct rlog *l);

/* --- little-endian encoder / bounds-checked decoder (rlog_codec.c) --- */

struct wbuf {
	uint8_t *p;
	size_t len, cap;
	int err;
};

void rlog_w_uint(struct wbuf *b, uint64_t v, int n);

#define w_u8(b, v)  rlog_w_uint((b), (uint64_t)(v), 1)
#define w_u16(b, v) rlog_w_uint((b), (uint64_t)(v), 2)
#define w_u32(b, v) rlog_w_uint((b), (uint64_t)(v), 4)
#define w_u64(b, v) rlog_w_uint((b), (uint64_t)(v), 8)

struct rbuf {
	const uint8_t *p;
	size_t len, off;
	int err;
};

uint64_t rlog_r_uint(struct rbuf *b, int n);

#define r_u8(b)	 ((uint8_t)rlog_r_uint((b), 1))
#define r_u16(b) ((uint16_t)rlog_r_uint((b), 2))
#define r_u32(b) ((uint32_t)rlog_r_uint((b), 4))
#define r_u64(b) rlog_r_uint((b), 8)
#define r_i64(b) ((int64_t)rlog_r_uint((b), 8))

struct memb {
	struct fid fid;
	uint8_t roles;
};

/* rlog.c: @fn on every record whose state is in @states, in seq order;
 * takes l->lock per step, so the caller must not hold it. */
int rlog_walk(struct rlog *l, unsigned states, rlog_iter_fn fn, void *arg);

/* rlog_codec.c: no handle, no lock. */
void rlog_be64_put(uint8_t *p, uint64_t v);
int rlog_cmp_u64(const void *a, const void *b);
int rlog_hdr_decode(const uint8_t *p, size_t len, struct hdr *h);
void rlog_hdr_encode(const struct hdr *h, uint8_t out[HDR_LEN]);
void rlog_lid_make(struct lid *id, uint8_t type, const struct fid *f);
int64_t rlog_now_real_ms(void);
int rlog_op_check(const struct proto_op *op);

int rlog_op_dup(struct proto_op *dst, const struct proto_op *src);
int rlog_rec_decode(const uint8_t *p, size_t len, uint64_t seq,
		    struct rlog_rec *r);
int rlog_rec_dup(struct rlog_rec *dst, const struct rlog_rec *src);
int rlog_rec_encode(const struct rlog_rec *r, struct wbuf *b);
uint64_t rlog_store_bytes(const struct proto_op *op);
bool rlog_streq(const char *a, const char *b);
bool rlog_zero16(const uint8_t b[16]);

/* rlog_list.c: l->lock held, inside a transaction for the writers. */
int rlog_hdr_put(struct rlog *l, const struct hdr *h);
uint64_t *rlog_hdr_state_count(struct hdr *h, enum rlog_state s);
int rlog_lhead_get(struct rlog *l, const struct lid *id, struct lhead *h);
int rlog_list_insert(struct rlog *l, const struct lid *id, uint64_t seq,
		     uint8_t aux, uint8_t kind);
int rlog_list_remove(struct rlog *l, const struct lid *id, uint64_t seq);
int rlog_list_set(struct rlog *l, const struct lid *id, uint64_t seq,
		  uint8_t aux, uint8_t kind);
int rlog_lnode_get(struct rlog *l, const struct lid *id, uint64_t seq,
		   struct lnode *n);
size_t rlog_op_membs(const struct proto_op *op, struct memb m[4]);
int rlog_rec_del(struct rlog *l, const struct rlog_rec *r);
int rlog_rec_load(struct rlog *l, uint64_t seq, struct rlog_rec *rec);
int rlog_rec_new(struct rlog *l, struct rlog_rec *r);
int rlog_rec_rewrite(struct rlog *l, const struct rlog_rec *old,
		     struct rlog_rec *nw);
int rlog_rec_state(struct rlog *l, uint64_t seq, enum rlog_state *st);
int rlog_rec_store(struct rlog *l, const struct rlog_rec *rec, int flag);

/* rlog_cancel.c: one op through the cancellation rules and into the log,
 * inside the append's transaction. */
int rlog_apply_one(struct rlog *l, const struct proto_op *op, unsigned flags,
		   struct rlog_effect *eff);

#endif /* CAIRN_CM_RLOG_I_H */
