/*
 * rlog.c - the replay log: cairnd's durable, ordered list of mutations not
 * yet acknowledged by the server, with Coda-style cancellation at append.
 *
 * It is a store, not a sender: the write path and the reintegration worker
 * decide when to send; this module decides what survives, in which order,
 * and makes every change durable before it returns.
 *
 * File design (one tdb file, CACHEDIR/rlog.tdb):
 *
 *   "H"                      header: magic, format version, next seq,
 *                            counters (records per state, data bytes)
 *   'R' seq(be64)            a record: CRC32C, format byte, state, kind,
 *                            seq, wall-clock time, byte count, the op in a
 *                            fixed little-endian layout, an optional
 *                            conflict section (doc/replay-log.md, "Format")
 *   'h' list-id              head of a list: first seq, last seq, count
 *   'n' list-id seq(be64)    a list node: prev seq, next seq, aux, kind
 *
 * tdb is a hash: it has no order. Order and secondary indexes are doubly
 * linked lists of node keys, kept sorted by seq, in the same file and
 * updated in the same transaction as the records:
 *
 *   list 'A'             every record (aux = state): rlog_iterate()
 *   list 'P'             PENDING records: rlog_first() is O(1)
 *   list 'C'             CONFLICT records: rlog_conflicts()
 *   list 'F' + FID       every record that names FID, aux = the roles it
 *                        names it in (object, parent, newparent, victim):
 *                        cancellation costs O(records of that FID)
 *
 * Appends take the end of each list (seqs only grow), so an append writes
 * a fixed number of small keys whatever the log's size; opening reads one
 * header, never the records.
 *
 * Crash design: every change (append with its cancellations, state change,
 * removal, conflict) is ONE tdb transaction. tdb's commit writes the old
 * contents of every region it will overwrite into a recovery area, fsyncs,
 * writes the new data, fsyncs, and clears the recovery magic; tdb_open()
 * rolls an interrupted commit back. So a process killed at any instant
 * leaves the log as it was before the call or as it is after it, and a
 * call that returned 0 has reached the disk. RLOG_O_NOSYNC skips the fsyncs
 * (tests only): process death is still survived, power loss is not. A new
 * file is built under PATH.new and linked to PATH only once complete, so
 * PATH never names a half-made log; an existing PATH is opened WITHOUT
 * O_CREAT, because tdb re-initialises a file with a bad header when
 * O_CREAT is given (a silent wipe).
 *
 * Locking: one process (exclusive flock on PATH, so tdb's own fcntl locks
 * are switched off with TDB_NOLOCK); within it, l->lock guards the tdb
 * handle and the cached header. Appends go through a group-commit queue
 * (l->qlock): the thread that finds no commit running becomes the leader,
 * takes every queued append, and commits them in one transaction while
 * later arrivals queue for the next one.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <tdb.h>

#include "cm/rlog.h"
#include "chunkstore/cs.h"
#include "common/log.h"
#include "common/util.h"

#define HDR_MAGIC  "cairnrlg" /* 8 bytes, no NUL on disk */
#define HDR_LEN	   80	      /* bytes of header version 1 */
#define REC_FORMAT 1	      /* the format byte of every record */
/* tdb hash chains. tdb never rehashes: a lookup walks keys/HASH_SIZE
 * entries (a record is ~6 keys: chains of ~2 at 10k records, ~18 at 100k),
 * and each transaction and traverse reads the whole 128 KiB table;
 * bench_rlog measured this size against 10007 and 131071. */
#define HASH_SIZE 32749
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
	struct tdb_context *tdb; /* protected by lock */
	struct hdr hdr;		 /* committed header, protected by lock */
	struct hdr tx;		 /* the open transaction's header, ditto */
	uint64_t nappends, ncommits, ncancelled; /* protected by lock */

	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	STAILQ_HEAD(, greq) queue; /* protected by qlock */
	bool leader;		   /* a group commit runs; protected by qlock */
	bool tx_nosync;		   /* the running transaction need not be
				      fsynced (RLOG_A_NOSYNC); under lock */
};

/* --- small helpers --- */

static int64_t
now_real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool
zero16(const uint8_t b[16])
{
	static const uint8_t z[16];

	return !memcmp(b, z, 16);
}

static bool
streq(const char *a, const char *b)
{
	return a && b && !strcmp(a, b);
}

static void
be64_put(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void
lid_make(struct lid *id, uint8_t type, const struct fid *f)
{
	memset(id, 0, sizeof(*id));
	id->b[0] = type;
	if (f) {
		id->b[1] = (uint8_t)(f->vol >> 24);
		id->b[2] = (uint8_t)(f->vol >> 16);
		id->b[3] = (uint8_t)(f->vol >> 8);
		id->b[4] = (uint8_t)f->vol;
		memcpy(id->b + 5, f->oid, FID_OID_LEN);
	}
}

/* CRC32C (Castagnoli), table driven: records are checked on every read,
 * so a flipped bit on disk is -EUCLEAN, never a wrong op replayed. */
static uint32_t
crc32c(const uint8_t *p, size_t n)
{
	return cs_crc32c(0, p, n);
}

/* --- little-endian encoder / bounds-checked decoder --- */

struct wbuf {
	uint8_t *p;
	size_t len, cap;
	int err;
};

static void
w_need(struct wbuf *b, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (b->err || b->len + n <= b->cap)
		return;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + n)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->err = -ENOMEM;
		return;
	}
	b->p = p;
	b->cap = cap;
}

static void
w_bytes(struct wbuf *b, const void *src, size_t n)
{
	w_need(b, n);
	if (b->err)
		return;
	if (n)
		memcpy(b->p + b->len, src, n);
	b->len += n;
}

static void
w_uint(struct wbuf *b, uint64_t v, int n)
{
	uint8_t t[8];

	for (int i = 0; i < n; i++, v >>= 8)
		t[i] = (uint8_t)v;
	w_bytes(b, t, (size_t)n);
}

#define w_u8(b, v)  w_uint((b), (uint64_t)(v), 1)
#define w_u16(b, v) w_uint((b), (uint64_t)(v), 2)
#define w_u32(b, v) w_uint((b), (uint64_t)(v), 4)
#define w_u64(b, v) w_uint((b), (uint64_t)(v), 8)

static void
w_fid(struct wbuf *b, const struct fid *f)
{
	w_u32(b, f->vol);
	w_bytes(b, f->oid, FID_OID_LEN);
}

/* A string: u16 (length + 1), 0 for NULL, then the bytes without NUL. */
static void
w_str(struct wbuf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (s && n >= 0xffff) {
		b->err = -EINVAL;
		return;
	}
	w_u16(b, s ? n + 1 : 0);
	w_bytes(b, s, n);
}

struct rbuf {
	const uint8_t *p;
	size_t len, off;
	int err;
};

static const uint8_t *
r_take(struct rbuf *b, size_t n)
{
	const uint8_t *p;

	if (b->err || b->len - b->off < n) {
		b->err = -EUCLEAN;
		return NULL;
	}
	p = b->p + b->off;
	b->off += n;
	return p;
}

static uint64_t
r_uint(struct rbuf *b, int n)
{
	const uint8_t *p = r_take(b, (size_t)n);
	uint64_t v = 0;

	for (int i = n - 1; p && i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

#define r_u8(b)	 ((uint8_t)r_uint((b), 1))
#define r_u16(b) ((uint16_t)r_uint((b), 2))
#define r_u32(b) ((uint32_t)r_uint((b), 4))
#define r_u64(b) r_uint((b), 8)
#define r_i64(b) ((int64_t)r_uint((b), 8))

static void
r_bytes(struct rbuf *b, void *dst, size_t n)
{
	const uint8_t *p = r_take(b, n);

	if (p)
		memcpy(dst, p, n);
}

static void
r_fid(struct rbuf *b, struct fid *f)
{
	f->vol = r_u32(b);
	r_bytes(b, f->oid, FID_OID_LEN);
}

static char *
r_str(struct rbuf *b, size_t max)
{
	uint16_t n = r_u16(b);
	const uint8_t *p;
	char *s;

	if (b->err || n == 0)
		return NULL;
	n--;
	p = r_take(b, n);
	if (!p)
		return NULL;
	if (n > max || memchr(p, 0, n)) {
		b->err = -EUCLEAN;
		return NULL;
	}
	s = malloc((size_t)n + 1);
	if (!s) {
		b->err = -ENOMEM;
		return NULL;
	}
	memcpy(s, p, n);
	s[n] = 0;
	return s;
}

/* --- records --- */

enum { RF_CONFLICT = 1 };

static void
w_attr(struct wbuf *b, const struct proto_attr *a)
{
	w_fid(b, &a->fid);
	w_u8(b, a->type);
	w_u32(b, a->mode);
	w_u32(b, a->uid);
	w_u32(b, a->gid);
	w_u64(b, a->size);
	w_u64(b, a->nlink);
	w_u64(b, a->dv);
	w_u64(b, a->atime_ns);
	w_u64(b, a->mtime_ns);
	w_u64(b, a->ctime_ns);
}

static void
r_attr(struct rbuf *b, struct proto_attr *a)
{
	r_fid(b, &a->fid);
	a->type = (enum proto_type)r_u8(b);
	a->mode = r_u32(b);
	a->uid = r_u32(b);
	a->gid = r_u32(b);
	a->size = r_u64(b);
	a->nlink = r_u64(b);
	a->dv = r_u64(b);
	a->atime_ns = r_i64(b);
	a->mtime_ns = r_i64(b);
	a->ctime_ns = r_i64(b);
}

/* Encode @r into @b (which the caller frees). */
static int
rec_encode(const struct rlog_rec *r, struct wbuf *b)
{
	const struct proto_op *op = &r->op;
	uint32_t crc;

	w_u32(b, 0); /* CRC, filled in below */
	w_u8(b, REC_FORMAT);
	w_u8(b, r->state);
	w_u8(b, op->kind);
	w_u8(b, r->has_conflict ? RF_CONFLICT : 0);
	w_u64(b, r->seq);
	w_u64(b, r->time_ms);
	w_u64(b, r->nbytes);
	w_bytes(b, op->opid, 16);
	w_bytes(b, op->txid, 16);
	w_fid(b, &op->parent);
	w_fid(b, &op->fid);
	w_fid(b, &op->newparent);
	w_fid(b, &op->victim);
	w_u8(b, op->type);
	w_u32(b, op->mode);
	w_u32(b, op->uid);
	w_u32(b, op->gid);
	w_u32(b, op->mask);
	w_u32(b, op->flags);
	w_u32(b, op->chunk_size);
	w_u64(b, op->base_dv);
	w_u64(b, op->size);
	w_u64(b, op->atime_ns);
	w_u64(b, op->mtime_ns);
	w_str(b, op->name);
	w_str(b, op->newname);
	w_str(b, op->target);
	w_str(b, op->xname);
	w_u32(b, op->xlen);
	w_bytes(b, op->xvalue, op->xlen);
	w_u32(b, op->nchunks);
	for (size_t i = 0; i < op->nchunks; i++)
		w_u64(b, op->chunks[i]);
	if (r->has_conflict) {
		const struct rlog_conflict *c = &r->conflict;

		w_u8(b, c->kind);
		w_u32(b, c->err);
		w_u64(b, c->time_ms);
		w_u64(b, c->local.size);
		w_u64(b, c->local.mtime_ns);
		w_u64(b, c->local.dv);
		w_str(b, c->local.path);
		w_str(b, c->msg);
		w_u8(b, c->has_server);
		w_attr(b, &c->server);
		w_u8(b, c->has_base);
		w_attr(b, &c->base);
	}
	if (b->err)
		return b->err;
	crc = crc32c(b->p + 4, b->len - 4);
	for (int i = 0; i < 4; i++)
		b->p[i] = (uint8_t)(crc >> (8 * i));
	return 0;
}

/* Decode @len bytes of record @seq into @r. @return 0, -EUCLEAN for
 * anything that is not a well-formed record of this format, -ENOMEM. */
static int
rec_decode(const uint8_t *p, size_t len, uint64_t seq, struct rlog_rec *r)
{
	struct rbuf b = {.p = p, .len = len};
	struct proto_op *op = &r->op;
	uint32_t crc;
	uint8_t fmt, rflags;
	uint32_t n;

	memset(r, 0, sizeof(*r));
	crc = r_u32(&b);
	if (b.err || crc != crc32c(p + 4, len - 4))
		return -EUCLEAN;
	fmt = r_u8(&b);
	r->state = (enum rlog_state)r_u8(&b);
	op->kind = (enum proto_op_kind)r_u8(&b);
	rflags = r_u8(&b);
	r->seq = r_u64(&b);
	r->time_ms = r_i64(&b);
	r->nbytes = r_u64(&b);
	if (fmt != REC_FORMAT || r->seq != seq || r->state < RLOG_PENDING ||
	    r->state > RLOG_CONFLICT || op->kind <= PROTO_OP_NONE ||
	    op->kind > PROTO_OP_STORE || (rflags & ~RF_CONFLICT) ||
	    !(rflags & RF_CONFLICT) != (r->state != RLOG_CONFLICT))
		b.err = -EUCLEAN;
	r_bytes(&b, op->opid, 16);
	r_bytes(&b, op->txid, 16);
	r_fid(&b, &op->parent);
	r_fid(&b, &op->fid);
	r_fid(&b, &op->newparent);
	r_fid(&b, &op->victim);
	op->type = (enum proto_type)r_u8(&b);
	op->mode = r_u32(&b);
	op->uid = r_u32(&b);
	op->gid = r_u32(&b);
	op->mask = r_u32(&b);
	op->flags = r_u32(&b);
	op->chunk_size = r_u32(&b);
	op->base_dv = r_u64(&b);
	op->size = r_u64(&b);
	op->atime_ns = r_i64(&b);
	op->mtime_ns = r_i64(&b);
	op->name = r_str(&b, PROTO_NAME_MAX);
	op->newname = r_str(&b, PROTO_NAME_MAX);
	op->target = r_str(&b, PROTO_PATH_MAX);
	op->xname = r_str(&b, PROTO_XATTR_NAME_MAX);
	n = r_u32(&b);
	if (!b.err && n > PROTO_XATTR_VALUE_MAX)
		b.err = -EUCLEAN;
	if (!b.err && (n || op->kind == PROTO_OP_SETXATTR)) {
		op->xvalue = malloc(n ? n : 1);
		if (!op->xvalue)
			b.err = -ENOMEM;
		else
			r_bytes(&b, op->xvalue, n);
		op->xlen = n;
	}
	n = r_u32(&b);
	if (!b.err && n > (b.len - b.off) / 8)
		b.err = -EUCLEAN;
	if (!b.err && n) {
		op->chunks = malloc(n * sizeof(*op->chunks));
		if (!op->chunks)
			b.err = -ENOMEM;
		for (uint32_t i = 0; !b.err && i < n; i++)
			op->chunks[i] = r_u64(&b);
		op->nchunks = n;
	}
	if (!b.err && (rflags & RF_CONFLICT)) {
		struct rlog_conflict *c = &r->conflict;

		r->has_conflict = true;
		c->kind = (enum rlog_conflict_kind)r_u8(&b);
		c->err = (int)r_u32(&b);
		c->time_ms = r_i64(&b);
		c->local.size = r_u64(&b);
		c->local.mtime_ns = r_i64(&b);
		c->local.dv = r_u64(&b);
		c->local.path = r_str(&b, STR_MAX);
		c->msg = r_str(&b, STR_MAX);
		c->has_server = r_u8(&b) != 0;
		r_attr(&b, &c->server);
		c->has_base = r_u8(&b) != 0;
		r_attr(&b, &c->base);
		if (c->kind >= RLOG_CF_MAX)
			b.err = -EUCLEAN;
	}
	if (!b.err && b.off != b.len)
		b.err = -EUCLEAN;
	if (b.err) {
		rlog_rec_release(r);
		return b.err;
	}
	return 0;
}

void
rlog_rec_release(struct rlog_rec *rec)
{
	if (!rec)
		return;
	proto_op_release(&rec->op);
	free(rec->conflict.local.path);
	free(rec->conflict.msg);
	memset(rec, 0, sizeof(*rec));
}

void
rlog_effect_release(struct rlog_effect *eff)
{
	if (!eff)
		return;
	free(eff->changes);
	memset(eff, 0, sizeof(*eff));
}

/* Deep copy of an op (strings, value, chunks). */
static int
op_dup(struct proto_op *dst, const struct proto_op *src)
{
	*dst = *src;
	dst->name = dst->newname = dst->target = dst->xname = NULL;
	dst->xvalue = NULL;
	dst->chunks = NULL;
	if ((src->name && !(dst->name = strdup(src->name))) ||
	    (src->newname && !(dst->newname = strdup(src->newname))) ||
	    (src->target && !(dst->target = strdup(src->target))) ||
	    (src->xname && !(dst->xname = strdup(src->xname))))
		goto nomem;
	if (src->xvalue || src->kind == PROTO_OP_SETXATTR) {
		dst->xvalue = malloc(src->xlen ? src->xlen : 1);
		if (!dst->xvalue)
			goto nomem;
		if (src->xlen)
			memcpy(dst->xvalue, src->xvalue, src->xlen);
	}
	if (src->nchunks) {
		dst->chunks = malloc(src->nchunks * sizeof(*dst->chunks));
		if (!dst->chunks)
			goto nomem;
		memcpy(dst->chunks, src->chunks,
		       src->nchunks * sizeof(*dst->chunks));
	}
	return 0;
nomem:
	proto_op_release(dst);
	return -ENOMEM;
}

static int
conflict_dup(struct rlog_conflict *dst, const struct rlog_conflict *src)
{
	*dst = *src;
	dst->local.path = dst->msg = NULL;
	if ((src->local.path && !(dst->local.path = strdup(src->local.path))) ||
	    (src->msg && !(dst->msg = strdup(src->msg)))) {
		free(dst->local.path);
		dst->local.path = NULL;
		return -ENOMEM;
	}
	return 0;
}

static int
rec_dup(struct rlog_rec *dst, const struct rlog_rec *src)
{
	int rc;

	*dst = *src;
	memset(&dst->conflict, 0, sizeof(dst->conflict));
	rc = op_dup(&dst->op, &src->op);
	if (rc)
		return rc;
	if (src->has_conflict) {
		rc = conflict_dup(&dst->conflict, &src->conflict);
		if (rc) {
			proto_op_release(&dst->op);
			return rc;
		}
	}
	return 0;
}

/* Bytes of file data a store sends: each listed chunk, up to the size. */
static uint64_t
store_bytes(const struct proto_op *op)
{
	uint64_t n = 0;

	if (op->kind != PROTO_OP_STORE)
		return 0;
	for (size_t i = 0; i < op->nchunks; i++) {
		uint64_t off = op->chunks[i] * op->chunk_size;

		if (off < op->size)
			n += op->size - off < op->chunk_size ? op->size - off
							     : op->chunk_size;
	}
	return n;
}

/* --- op validation: what the protocol's op table requires --- */

static int
name_ok(const char *s)
{
	return s && !proto_name_check(s, strlen(s));
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int
op_check(const struct proto_op *op)
{
	const uint32_t sa_all = PROTO_SA_MODE | PROTO_SA_UID | PROTO_SA_GID |
				PROTO_SA_SIZE | PROTO_SA_ATIME | PROTO_SA_MTIME;

	switch (op->kind) {
	case PROTO_OP_CREATE:
	case PROTO_OP_MKDIR:
	case PROTO_OP_SYMLINK:
		if (fid_is_null(&op->parent) || !name_ok(op->name) ||
		    op->mode > 07777)
			return -EINVAL;
		if (op->kind == PROTO_OP_CREATE && op->type != PROTO_T_FILE &&
		    op->type != PROTO_T_FIFO)
			return -EINVAL;
		if (op->kind == PROTO_OP_SYMLINK &&
		    (!op->target || !op->target[0] ||
		     strlen(op->target) >= PROTO_PATH_MAX))
			return -EINVAL;
		return 0;
	case PROTO_OP_LINK:
	case PROTO_OP_UNLINK:
	case PROTO_OP_RMDIR:
		if (fid_is_null(&op->parent) || !name_ok(op->name) ||
		    fid_is_null(&op->fid))
			return -EINVAL;
		return 0;
	case PROTO_OP_RENAME:
		if (fid_is_null(&op->parent) || !name_ok(op->name) ||
		    fid_is_null(&op->fid) || fid_is_null(&op->newparent) ||
		    !name_ok(op->newname) ||
		    (op->flags & ~(uint32_t)(PROTO_RENAME_NOREPLACE |
					     PROTO_RENAME_EXCHANGE)) ||
		    op->flags ==
			    (PROTO_RENAME_NOREPLACE | PROTO_RENAME_EXCHANGE) ||
		    ((op->flags & PROTO_RENAME_EXCHANGE) &&
		     fid_is_null(&op->victim)))
			return -EINVAL;
		return 0;
	case PROTO_OP_SETATTR:
		if (fid_is_null(&op->fid) || !op->mask ||
		    (op->mask & ~sa_all) ||
		    ((op->mask & PROTO_SA_MODE) && op->mode > 07777) ||
		    ((op->mask & PROTO_SA_SIZE) && op->size > INT64_MAX))
			return -EINVAL;
		return 0;
	case PROTO_OP_SETXATTR:
	case PROTO_OP_REMOVEXATTR:
		if (fid_is_null(&op->fid) || !op->xname || !op->xname[0] ||
		    strlen(op->xname) > PROTO_XATTR_NAME_MAX)
			return -EINVAL;
		if (op->kind == PROTO_OP_REMOVEXATTR)
			return 0;
		if (op->xlen > PROTO_XATTR_VALUE_MAX ||
		    (op->xlen && !op->xvalue) ||
		    (op->flags &
		     ~(uint32_t)(PROTO_XATTR_CREATE | PROTO_XATTR_REPLACE)) ||
		    op->flags == (PROTO_XATTR_CREATE | PROTO_XATTR_REPLACE))
			return -EINVAL;
		return 0;
	case PROTO_OP_STORE: {
		uint64_t *s;
		size_t i;

		if (fid_is_null(&op->fid) || op->chunk_size < PROTO_CHUNK_MIN ||
		    op->chunk_size > PROTO_CHUNK_MAX ||
		    (op->chunk_size & (op->chunk_size - 1)) ||
		    op->size > INT64_MAX || (op->nchunks && !op->chunks) ||
		    op->nchunks > MERGE_CHUNKS_MAX)
			return -EINVAL;
		for (i = 0; i < op->nchunks; i++)
			if (op->chunks[i] > INT64_MAX / op->chunk_size)
				return -EINVAL;
		if (op->nchunks < 2)
			return 0;
		s = malloc(op->nchunks * sizeof(*s));
		if (!s)
			return -ENOMEM;
		memcpy(s, op->chunks, op->nchunks * sizeof(*s));
		qsort(s, op->nchunks, sizeof(*s), cmp_u64);
		for (i = 1; i < op->nchunks && s[i - 1] != s[i]; i++)
			;
		free(s);
		return i < op->nchunks ? -EINVAL : 0;
	}
	default:
		return -EINVAL;
	}
}

/* --- tdb access (the only place tdb's -1 + tdb_error() is seen) --- */

static int
tdb_errno(struct rlog *l)
{
	switch (tdb_error(l->tdb)) {
	case TDB_ERR_CORRUPT:
		return -EUCLEAN;
	case TDB_ERR_OOM:
		return -ENOMEM;
	case TDB_ERR_EXISTS:
		return -EEXIST;
	case TDB_ERR_NOEXIST:
		return -ENOENT;
	case TDB_ERR_RDONLY:
		return -EROFS;
	case TDB_ERR_EINVAL:
		return -EINVAL;
	case TDB_ERR_LOCK:
	case TDB_ERR_NOLOCK:
	case TDB_ERR_LOCK_TIMEOUT:
	case TDB_ERR_NESTING:
		return -EBUSY;
	default:
		return -EIO;
	}
}

static int
kv_put(struct rlog *l, const void *k, size_t klen, const void *v, size_t vlen,
       int flag)
{
	TDB_DATA key = {(unsigned char *)k, klen};
	TDB_DATA val = {(unsigned char *)v, vlen};

	return tdb_store(l->tdb, key, val, flag) ? tdb_errno(l) : 0;
}

static int
kv_del(struct rlog *l, const void *k, size_t klen)
{
	TDB_DATA key = {(unsigned char *)k, klen};

	return tdb_delete(l->tdb, key) ? tdb_errno(l) : 0;
}

/* Copy a small fixed-size value out with tdb_parse_record (no malloc). */
struct fixed_ctx {
	void *dst;
	size_t len;
	int rc;
};

static int
fixed_parse(TDB_DATA key, TDB_DATA data, void *arg)
{
	struct fixed_ctx *c = arg;

	(void)key;
	if (data.dsize != c->len) {
		c->rc = -EUCLEAN;
		return 0;
	}
	memcpy(c->dst, data.dptr, c->len);
	c->rc = 0;
	return 0;
}

static int
kv_get_fixed(struct rlog *l, const void *k, size_t klen, void *dst, size_t len)
{
	TDB_DATA key = {(unsigned char *)k, klen};
	struct fixed_ctx c = {dst, len, -EIO};

	if (tdb_parse_record(l->tdb, key, fixed_parse, &c) == -1)
		return tdb_errno(l);
	return c.rc;
}

/* --- the header --- */

static void
hdr_encode(const struct hdr *h, uint8_t out[HDR_LEN])
{
	struct wbuf b = {.p = out, .cap = HDR_LEN};
	uint32_t crc;

	w_bytes(&b, HDR_MAGIC, 8);
	w_u32(&b, RLOG_FORMAT_VERSION);
	w_u32(&b, HDR_LEN);
	w_u64(&b, h->next_seq);
	w_u64(&b, h->created_ms);
	w_u64(&b, h->nrec);
	w_u64(&b, h->npend);
	w_u64(&b, h->ninfl);
	w_u64(&b, h->nconf);
	w_u64(&b, h->data_bytes);
	w_u32(&b, 0); /* reserved */
	crc = crc32c(out, HDR_LEN - 4);
	w_u32(&b, crc);
}

/* @return 0, -EUCLEAN (not a header of ours, or damaged) or
 * -EPROTONOSUPPORT (a replay log of another version). */
static int
hdr_decode(const uint8_t *p, size_t len, struct hdr *h)
{
	struct rbuf b = {.p = p, .len = len};
	uint32_t version, hlen;

	if (len < 16 || memcmp(p, HDR_MAGIC, 8))
		return -EUCLEAN;
	b.off = 8;
	version = r_u32(&b);
	hlen = r_u32(&b);
	if (version != RLOG_FORMAT_VERSION)
		return -EPROTONOSUPPORT;
	if (hlen != HDR_LEN || len != HDR_LEN ||
	    crc32c(p, HDR_LEN - 4) !=
		    (uint32_t)(p[HDR_LEN - 4] | p[HDR_LEN - 3] << 8 |
			       p[HDR_LEN - 2] << 16 |
			       (uint32_t)p[HDR_LEN - 1] << 24))
		return -EUCLEAN;
	h->next_seq = r_u64(&b);
	h->created_ms = r_i64(&b);
	h->nrec = r_u64(&b);
	h->npend = r_u64(&b);
	h->ninfl = r_u64(&b);
	h->nconf = r_u64(&b);
	h->data_bytes = r_u64(&b);
	if (b.err || h->next_seq == 0 ||
	    h->npend + h->ninfl + h->nconf != h->nrec)
		return -EUCLEAN;
	return 0;
}

static int
hdr_put(struct rlog *l, const struct hdr *h)
{
	uint8_t buf[HDR_LEN];

	hdr_encode(h, buf);
	return kv_put(l, "H", 1, buf, sizeof(buf), TDB_REPLACE);
}

static uint64_t *
hdr_state_count(struct hdr *h, enum rlog_state s)
{
	return s == RLOG_PENDING    ? &h->npend
	       : s == RLOG_INFLIGHT ? &h->ninfl
				    : &h->nconf;
}

/* --- lists --- */

static void
lhead_key(uint8_t k[1 + LID_LEN], const struct lid *id)
{
	k[0] = 'h';
	memcpy(k + 1, id->b, LID_LEN);
}

static void
lnode_key(uint8_t k[1 + LID_LEN + 8], const struct lid *id, uint64_t seq)
{
	k[0] = 'n';
	memcpy(k + 1, id->b, LID_LEN);
	be64_put(k + 1 + LID_LEN, seq);
}

static int
lhead_get(struct rlog *l, const struct lid *id, struct lhead *h)
{
	uint8_t k[1 + LID_LEN], v[24];
	struct rbuf b = {.p = v, .len = sizeof(v)};
	int rc;

	lhead_key(k, id);
	rc = kv_get_fixed(l, k, sizeof(k), v, sizeof(v));
	if (rc == -ENOENT) {
		memset(h, 0, sizeof(*h));
		return 0;
	}
	if (rc)
		return rc;
	h->first = r_u64(&b);
	h->last = r_u64(&b);
	h->count = r_u64(&b);
	return h->count && h->first && h->last ? 0 : -EUCLEAN;
}

static int
lhead_put(struct rlog *l, const struct lid *id, const struct lhead *h)
{
	uint8_t k[1 + LID_LEN], v[24];
	struct wbuf b = {.p = v, .cap = sizeof(v)};

	lhead_key(k, id);
	if (!h->count)
		return kv_del(l, k, sizeof(k));
	w_u64(&b, h->first);
	w_u64(&b, h->last);
	w_u64(&b, h->count);
	return kv_put(l, k, sizeof(k), v, sizeof(v), TDB_REPLACE);
}

static int
lnode_get(struct rlog *l, const struct lid *id, uint64_t seq, struct lnode *n)
{
	uint8_t k[1 + LID_LEN + 8], v[18];
	struct rbuf b = {.p = v, .len = sizeof(v)};
	int rc;

	lnode_key(k, id, seq);
	rc = kv_get_fixed(l, k, sizeof(k), v, sizeof(v));
	if (rc)
		return rc;
	n->prev = r_u64(&b);
	n->next = r_u64(&b);
	n->aux = r_u8(&b);
	n->kind = r_u8(&b);
	return 0;
}

static int
lnode_put(struct rlog *l, const struct lid *id, uint64_t seq,
	  const struct lnode *n)
{
	uint8_t k[1 + LID_LEN + 8], v[18];
	struct wbuf b = {.p = v, .cap = sizeof(v)};

	lnode_key(k, id, seq);
	w_u64(&b, n->prev);
	w_u64(&b, n->next);
	w_u8(&b, n->aux);
	w_u8(&b, n->kind);
	return kv_put(l, k, sizeof(k), v, sizeof(v), TDB_REPLACE);
}

/* Point the neighbour of a node (or the head) at @to. */
static int
link_prev_of(struct rlog *l, const struct lid *id, struct lhead *h,
	     uint64_t next, uint64_t to)
{
	struct lnode n;
	int rc;

	if (!next) {
		h->last = to;
		return 0;
	}
	rc = lnode_get(l, id, next, &n);
	if (rc)
		return rc == -ENOENT ? -EUCLEAN : rc;
	n.prev = to;
	return lnode_put(l, id, next, &n);
}

static int
link_next_of(struct rlog *l, const struct lid *id, struct lhead *h,
	     uint64_t prev, uint64_t to)
{
	struct lnode n;
	int rc;

	if (!prev) {
		h->first = to;
		return 0;
	}
	rc = lnode_get(l, id, prev, &n);
	if (rc)
		return rc == -ENOENT ? -EUCLEAN : rc;
	n.next = to;
	return lnode_put(l, id, prev, &n);
}

/* The last node of list @h below @seq (0: none), walking from whichever
 * end @seq is nearer by value: appends land at the tail in O(1), and a
 * record re-entering a list near its head (INFLIGHT -> PENDING of the
 * oldest records, a conflict from the front of a replay) in O(1) too. */
static int
list_find_before(struct rlog *l, const struct lid *id, const struct lhead *h,
		 uint64_t seq, uint64_t *out)
{
	struct lnode cur;
	uint64_t at, before = 0;
	size_t steps = 0;
	int rc;

	if (h->count && seq > h->first && seq < h->last &&
	    seq - h->first < h->last - seq) {
		for (at = h->first; at && at < seq; at = cur.next) {
			if (++steps > h->count)
				return -EUCLEAN;
			rc = lnode_get(l, id, at, &cur);
			if (rc)
				return rc == -ENOENT ? -EUCLEAN : rc;
			before = at;
		}
		*out = at == seq ? seq : before;
		return 0;
	}
	for (at = h->last; at && at > seq; at = cur.prev) {
		if (++steps > h->count)
			return -EUCLEAN;
		rc = lnode_get(l, id, at, &cur);
		if (rc)
			return rc == -ENOENT ? -EUCLEAN : rc;
	}
	*out = at;
	return 0;
}

/* Insert @seq in order (see list_find_before()). */
static int
list_insert(struct rlog *l, const struct lid *id, uint64_t seq, uint8_t aux,
	    uint8_t kind)
{
	struct lhead h;
	struct lnode n = {.aux = aux, .kind = kind}, cur;
	uint64_t after;
	int rc;

	rc = lhead_get(l, id, &h);
	if (!rc)
		rc = list_find_before(l, id, &h, seq, &after);
	if (rc)
		return rc;
	if (after == seq)
		return -EEXIST;
	n.prev = after;
	if (after) {
		rc = lnode_get(l, id, after, &cur);
		if (rc)
			return rc == -ENOENT ? -EUCLEAN : rc;
		n.next = cur.next;
	} else {
		n.next = h.first;
	}
	rc = lnode_put(l, id, seq, &n);
	if (!rc)
		rc = link_next_of(l, id, &h, n.prev, seq);
	if (!rc)
		rc = link_prev_of(l, id, &h, n.next, seq);
	if (rc)
		return rc;
	h.count++;
	return lhead_put(l, id, &h);
}

static int
list_remove(struct rlog *l, const struct lid *id, uint64_t seq)
{
	uint8_t k[1 + LID_LEN + 8];
	struct lhead h;
	struct lnode n;
	int rc;

	rc = lhead_get(l, id, &h);
	if (!rc)
		rc = lnode_get(l, id, seq, &n);
	if (rc)
		return rc == -ENOENT ? -EUCLEAN : rc;
	rc = link_next_of(l, id, &h, n.prev, n.next);
	if (!rc)
		rc = link_prev_of(l, id, &h, n.next, n.prev);
	if (rc)
		return rc;
	lnode_key(k, id, seq);
	rc = kv_del(l, k, sizeof(k));
	if (rc)
		return rc;
	if (!h.count)
		return -EUCLEAN;
	h.count--;
	return lhead_put(l, id, &h);
}

static int
list_set(struct rlog *l, const struct lid *id, uint64_t seq, uint8_t aux,
	 uint8_t kind)
{
	struct lnode n;
	int rc;

	rc = lnode_get(l, id, seq, &n);
	if (rc)
		return rc == -ENOENT ? -EUCLEAN : rc;
	n.aux = aux;
	n.kind = kind;
	return lnode_put(l, id, seq, &n);
}

/* --- records in the file --- */

static void
rec_key(uint8_t k[9], uint64_t seq)
{
	k[0] = 'R';
	be64_put(k + 1, seq);
}

struct rec_ctx {
	uint64_t seq;
	struct rlog_rec *rec;
	int rc;
};

static int
rec_parse(TDB_DATA key, TDB_DATA data, void *arg)
{
	struct rec_ctx *c = arg;

	(void)key;
	c->rc = rec_decode(data.dptr, data.dsize, c->seq, c->rec);
	return 0;
}

/* Read record @seq. -ENOENT if absent; -EUCLEAN if damaged (logged). */
static int
rec_load(struct rlog *l, uint64_t seq, struct rlog_rec *rec)
{
	uint8_t k[9];
	TDB_DATA key = {k, sizeof(k)};
	struct rec_ctx c = {seq, rec, -EIO};

	memset(rec, 0, sizeof(*rec));
	rec_key(k, seq);
	if (tdb_parse_record(l->tdb, key, rec_parse, &c) == -1)
		return tdb_errno(l);
	if (c.rc == -EUCLEAN)
		log_err(LOG_RLOG, "cannot read record %llu of '%s': %s",
			(unsigned long long)seq, l->path, strerror(EUCLEAN));
	return c.rc;
}

static int
rec_store(struct rlog *l, const struct rlog_rec *rec, int flag)
{
	struct wbuf b = {0};
	uint8_t k[9];
	int rc;

	rc = rec_encode(rec, &b);
	rec_key(k, rec->seq);
	if (!rc)
		rc = kv_put(l, k, sizeof(k), b.p, b.len, flag);
	free(b.p);
	return rc;
}

/* The FIDs a record names, each once, with the roles it names them in. */
struct memb {
	struct fid fid;
	uint8_t roles;
};

static size_t
op_membs(const struct proto_op *op, struct memb m[4])
{
	const struct {
		const struct fid *f;
		uint8_t role;
	} all[4] = {
		{&op->fid, ROLE_OBJ},
		{&op->parent, ROLE_PARENT},
		{&op->newparent, ROLE_NEWPARENT},
		{&op->victim, ROLE_VICTIM},
	};
	size_t n = 0, i, j;

	for (i = 0; i < 4; i++) {
		if (fid_is_null(all[i].f))
			continue;
		for (j = 0; j < n && !fid_eq(&m[j].fid, all[i].f); j++)
			;
		if (j == n) {
			m[n].fid = *all[i].f;
			m[n++].roles = 0;
		}
		m[j].roles |= all[i].role;
	}
	return n;
}

static int
state_lists_add(struct rlog *l, const struct rlog_rec *r)
{
	struct lid id;
	int rc;

	lid_make(&id, LT_ALL, NULL);
	rc = list_insert(l, &id, r->seq, r->state, r->op.kind);
	if (rc || r->state == RLOG_INFLIGHT)
		return rc;
	lid_make(&id, r->state == RLOG_PENDING ? LT_PEND : LT_CONF, NULL);
	return list_insert(l, &id, r->seq, r->state, r->op.kind);
}

static int
state_lists_del(struct rlog *l, const struct rlog_rec *r)
{
	struct lid id;
	int rc;

	lid_make(&id, LT_ALL, NULL);
	rc = list_remove(l, &id, r->seq);
	if (rc || r->state == RLOG_INFLIGHT)
		return rc;
	lid_make(&id, r->state == RLOG_PENDING ? LT_PEND : LT_CONF, NULL);
	return list_remove(l, &id, r->seq);
}

/* Store a new record: it gets the next seq. */
static int
rec_new(struct rlog *l, struct rlog_rec *r)
{
	struct memb m[4];
	struct lid id;
	size_t n, i;
	int rc;

	r->seq = l->tx.next_seq++;
	rc = rec_store(l, r, TDB_INSERT);
	if (!rc)
		rc = state_lists_add(l, r);
	n = op_membs(&r->op, m);
	for (i = 0; !rc && i < n; i++) {
		lid_make(&id, LT_FID, &m[i].fid);
		rc = list_insert(l, &id, r->seq, m[i].roles, r->op.kind);
	}
	if (rc)
		return rc;
	l->tx.nrec++;
	(*hdr_state_count(&l->tx, r->state))++;
	l->tx.data_bytes += r->nbytes;
	return 0;
}

/* Delete record @r (as loaded) with every index entry. */
static int
rec_del(struct rlog *l, const struct rlog_rec *r)
{
	struct memb m[4];
	struct lid id;
	uint8_t k[9];
	size_t n, i;
	uint64_t *cnt;
	int rc;

	rc = state_lists_del(l, r);
	n = op_membs(&r->op, m);
	for (i = 0; !rc && i < n; i++) {
		lid_make(&id, LT_FID, &m[i].fid);
		rc = list_remove(l, &id, r->seq);
	}
	rec_key(k, r->seq);
	if (!rc)
		rc = kv_del(l, k, sizeof(k));
	if (rc)
		return rc;
	cnt = hdr_state_count(&l->tx, r->state);
	if (!l->tx.nrec || !*cnt || l->tx.data_bytes < r->nbytes)
		return -EUCLEAN;
	l->tx.nrec--;
	(*cnt)--;
	l->tx.data_bytes -= r->nbytes;
	return 0;
}

/* Replace record @old by @nw: same seq and state, another op. The FID
 * lists follow the op; a FID @nw names anew is inserted at its place. */
static int
rec_rewrite(struct rlog *l, const struct rlog_rec *old, struct rlog_rec *nw)
{
	struct memb mo[4], mn[4];
	struct lid id;
	size_t no, nn, i, j;
	int rc;

	nw->nbytes = store_bytes(&nw->op);
	rc = rec_store(l, nw, TDB_MODIFY);
	if (rc)
		return rc;
	if (old->op.kind != nw->op.kind) {
		lid_make(&id, LT_ALL, NULL);
		rc = list_set(l, &id, nw->seq, nw->state, nw->op.kind);
		if (!rc && nw->state != RLOG_INFLIGHT) {
			lid_make(&id,
				 nw->state == RLOG_PENDING ? LT_PEND : LT_CONF,
				 NULL);
			rc = list_set(l, &id, nw->seq, nw->state, nw->op.kind);
		}
		if (rc)
			return rc;
	}
	no = op_membs(&old->op, mo);
	nn = op_membs(&nw->op, mn);
	for (i = 0; i < no; i++) {
		for (j = 0; j < nn && !fid_eq(&mo[i].fid, &mn[j].fid); j++)
			;
		lid_make(&id, LT_FID, &mo[i].fid);
		if (j == nn)
			rc = list_remove(l, &id, nw->seq);
		else if (mn[j].roles != mo[i].roles ||
			 old->op.kind != nw->op.kind)
			rc = list_set(l, &id, nw->seq, mn[j].roles,
				      nw->op.kind);
		if (rc)
			return rc;
	}
	for (j = 0; j < nn; j++) {
		for (i = 0; i < no && !fid_eq(&mo[i].fid, &mn[j].fid); i++)
			;
		if (i < no)
			continue;
		lid_make(&id, LT_FID, &mn[j].fid);
		rc = list_insert(l, &id, nw->seq, mn[j].roles, nw->op.kind);
		if (rc)
			return rc;
	}
	if (l->tx.data_bytes < old->nbytes)
		return -EUCLEAN;
	l->tx.data_bytes += nw->nbytes - old->nbytes;
	return 0;
}

/* State of record @seq from its 'A' node (no record read). */
static int
rec_state(struct rlog *l, uint64_t seq, enum rlog_state *st)
{
	struct lid id;
	struct lnode n;
	int rc;

	lid_make(&id, LT_ALL, NULL);
	rc = lnode_get(l, &id, seq, &n);
	if (rc)
		return rc;
	*st = (enum rlog_state)n.aux;
	return 0;
}

/* --- effects --- */

static int
eff_add(struct rlog_effect *eff, const struct rlog_rec *r, enum rlog_why why,
	bool removed)
{
	struct rlog_change *c;

	c = realloc(eff->changes, (eff->nchanges + 1) * sizeof(*c));
	if (!c)
		return -ENOMEM;
	eff->changes = c;
	c += eff->nchanges++;
	c->seq = r->seq;
	c->why = why;
	c->removed = removed;
	c->kind = r->op.kind;
	c->fid = r->op.fid;
	return 0;
}

static int
cancel_rec(struct rlog *l, const struct rlog_rec *r, struct rlog_effect *eff,
	   enum rlog_why why)
{
	int rc = rec_del(l, r);

	if (!rc)
		rc = eff_add(eff, r, why, true);
	if (!rc)
		l->ncancelled++;
	return rc;
}

/*
 * The cancellation rules. Each runs inside the append's transaction, reads
 * only the lists of the FIDs involved, and either changes nothing (the op
 * is appended as it came) or applies completely. doc/replay-log.md states
 * every rule with its safety condition; the comments here say how the
 * code checks it.
 */

/* Walk state for one FID list, newest first. */
struct back {
	struct lid id;
	uint64_t seq;
	struct lnode node;
	size_t steps;
};

static int
back_start(struct rlog *l, struct back *w, const struct fid *f)
{
	struct lhead h;
	int rc;

	lid_make(&w->id, LT_FID, f);
	w->steps = 0;
	rc = lhead_get(l, &w->id, &h);
	w->seq = h.last;
	return rc;
}

/* Step to the next older node; 0 with w->seq == 0 at the end, -E2BIG when
 * the walk is too long (the caller then keeps the op as is). */
static int
back_next(struct rlog *l, struct back *w)
{
	int rc;

	if (!w->seq)
		return 0;
	if (++w->steps > SCAN_MAX)
		return -E2BIG;
	rc = lnode_get(l, &w->id, w->seq, &w->node);
	return rc == -ENOENT ? -EUCLEAN : rc;
}

/*
 * Rule 3, identity cancellation: @f was created in the log (its create,
 * mkdir or symlink record is still PENDING) and @remover takes away its
 * last name. Then every record about @f vanishes; a rename of @f over
 * another object becomes the removal of that object. Conditions, all
 * checked before anything changes:
 *  - every record naming @f is PENDING and names it as its object only
 *    (not as a parent: a directory whose entries moved elsewhere stays;
 *    not as a victim);
 *  - the oldest of them is the create; none is an exchange;
 *  - creates and links minus unlinks/rmdirs of @f count exactly one name
 *    (so hard links keep the create alive until the last name goes).
 * *@gone tells whether it applied.
 */
static int
rule_identity(struct rlog *l, const struct fid *f, struct rlog_effect *eff,
	      bool *gone)
{
	struct lhead h;
	struct lid id;
	struct lnode n;
	struct rlog_rec r = {0}, nw = {0};
	uint64_t *seqs = NULL, seq;
	enum rlog_state st;
	enum proto_op_kind created = PROTO_OP_NONE;
	long names = 0;
	size_t cnt = 0, i;
	int rc;

	*gone = false;
	lid_make(&id, LT_FID, f);
	rc = lhead_get(l, &id, &h);
	if (rc || !h.count || h.count > SCAN_MAX)
		return rc;
	seqs = malloc(h.count * sizeof(*seqs));
	if (!seqs)
		return -ENOMEM;
	for (seq = h.first; seq && cnt < h.count; seq = n.next) {
		rc = lnode_get(l, &id, seq, &n);
		if (rc)
			goto out;
		if (n.aux != ROLE_OBJ)
			goto out;
		rc = rec_state(l, seq, &st);
		if (rc)
			goto out;
		if (st != RLOG_PENDING)
			goto out;
		switch (n.kind) {
		case PROTO_OP_CREATE:
		case PROTO_OP_MKDIR:
		case PROTO_OP_SYMLINK:
			if (cnt || created)
				goto out;
			created = n.kind;
			names++;
			break;
		case PROTO_OP_LINK:
			names++;
			break;
		case PROTO_OP_UNLINK:
		case PROTO_OP_RMDIR:
			names--;
			break;
		default:
			break;
		}
		if (!created)
			goto out; /* a record about @f older than its create */
		seqs[cnt++] = seq;
	}
	if (seq || cnt != h.count || names != 1)
		goto out;
	/* A rename of @f that carried a victim or swapped two objects: an
	 * exchange cannot be undone alone, so nothing happens. */
	for (i = 0; i < cnt; i++) {
		bool exchange;

		rc = lnode_get(l, &id, seqs[i], &n);
		if (rc)
			goto out;
		if (n.kind != PROTO_OP_RENAME)
			continue;
		rc = rec_load(l, seqs[i], &r);
		if (rc)
			goto out;
		exchange = r.op.flags & PROTO_RENAME_EXCHANGE;
		rlog_rec_release(&r);
		if (exchange)
			goto out;
	}
	for (i = 0; i < cnt; i++) {
		rc = rec_load(l, seqs[i], &r);
		if (rc)
			goto out;
		if (r.op.kind == PROTO_OP_RENAME &&
		    !fid_is_null(&r.op.victim)) {
			/* "rename tmp over a" then "rm a" (tmp created in the
			 * log): the server must still lose the old a. */
			rc = rec_dup(&nw, &r);
			if (rc)
				goto out;
			nw.op.kind = created == PROTO_OP_MKDIR
					     ? PROTO_OP_RMDIR
					     : PROTO_OP_UNLINK;
			nw.op.parent = r.op.newparent;
			free(nw.op.name);
			nw.op.name = nw.op.newname;
			nw.op.newname = NULL;
			nw.op.fid = r.op.victim;
			memset(&nw.op.newparent, 0, sizeof(nw.op.newparent));
			memset(&nw.op.victim, 0, sizeof(nw.op.victim));
			nw.op.flags = 0;
			rc = rec_rewrite(l, &r, &nw);
			if (!rc)
				rc = eff_add(eff, &r, RLOG_WHY_REWRITTEN,
					     false);
			rlog_rec_release(&nw);
		} else {
			rc = cancel_rec(l, &r, eff, RLOG_WHY_IDENTITY);
		}
		rlog_rec_release(&r);
		if (rc)
			goto out;
	}
	*gone = true;
out:
	free(seqs);
	return rc;
}

/* Does @r name (@dir, @name) as its source or its target? */
static bool
names_entry(const struct proto_op *op, const struct fid *dir, const char *name)
{
	return (fid_eq(&op->parent, dir) && streq(op->name, name)) ||
	       (fid_eq(&op->newparent, dir) && streq(op->newname, name));
}

/* Does any record newer than @after in @dir's list name (@dir, @n1) or
 * (@dir, @n2), or (with @obj) name @dir as its object? -E2BIG if too long
 * to tell. */
static int
dir_touched_after(struct rlog *l, const struct fid *dir, uint64_t after,
		  const char *n1, const char *n2, bool obj, bool *hit)
{
	struct back w;
	struct rlog_rec r;
	int rc;

	*hit = false;
	rc = back_start(l, &w, dir);
	while (!rc && w.seq > after) {
		rc = back_next(l, &w);
		if (rc)
			break;
		if (obj && (w.node.aux & ROLE_OBJ)) {
			*hit = true;
			return 0;
		}
		if (w.node.aux & (ROLE_PARENT | ROLE_NEWPARENT)) {
			rc = rec_load(l, w.seq, &r);
			if (rc)
				break;
			*hit = (n1 && names_entry(&r.op, dir, n1)) ||
			       (n2 && names_entry(&r.op, dir, n2));
			rlog_rec_release(&r);
			if (*hit)
				return 0;
		}
		w.seq = w.node.prev;
	}
	return rc;
}

/* Is there any RENAME newer than @after in the whole log? */
static int
rename_after(struct rlog *l, uint64_t after, bool *hit)
{
	struct lid id;
	struct lhead h;
	struct lnode n;
	uint64_t seq;
	size_t steps = 0;
	int rc;

	*hit = false;
	lid_make(&id, LT_ALL, NULL);
	rc = lhead_get(l, &id, &h);
	for (seq = h.last; !rc && seq > after; seq = n.prev) {
		if (++steps > SCAN_MAX)
			return -E2BIG;
		rc = lnode_get(l, &id, seq, &n);
		if (!rc && n.kind == PROTO_OP_RENAME) {
			*hit = true;
			return 0;
		}
	}
	return rc;
}

/*
 * Rule 4, rename chains: @op renames F from (P1, n1) to (P2, n2); R is the
 * newest record that gave F the name (P1, n1) (create, mkdir, symlink,
 * link, or rename to it). R is rewritten in place to give F the name
 * (P2, n2) at once, and @op vanishes. Safe when (doc/replay-log.md):
 *  a. R is PENDING; neither R nor @op is an exchange;
 *  b. R, if a rename, has no victim (its victim must still go);
 *     R, if a create or link, meets an @op without victim (a create
 *     cannot replace anything);
 *  c. no record after R names (P1, n1) or (P2, n2) (the server would see
 *     the name free, or taken, at another moment than the client did);
 *  d. no record after R names @op's victim (it now goes at R's moment);
 *  e. P2 == P1, or no record after R has P2 as its object (P2 might be
 *     created or moved after R);
 *  f. if F may be a directory (R is a mkdir or a rename) and P2 != P1, no
 *     rename at all after R (moving F earlier must not put it under one of
 *     its own descendants).
 * A rename back to where R took it from, with no victim, drops both.
 */
static int
rule_fold(struct rlog *l, struct rlog_rec *n, struct rlog_effect *eff,
	  bool *done)
{
	const struct proto_op *op = &n->op;
	struct rlog_rec r = {0}, nw = {0};
	struct back w;
	struct lhead vh;
	struct lid vid;
	enum rlog_state st;
	bool hit, found = false, origin;
	int rc;

	*done = false;
	if ((op->flags & PROTO_RENAME_EXCHANGE) ||
	    (fid_eq(&op->parent, &op->newparent) &&
	     streq(op->name, op->newname)))
		return 0;
	rc = back_start(l, &w, &op->fid);
	while (!rc && w.seq) {
		rc = back_next(l, &w);
		if (rc)
			break;
		if (w.node.aux & ROLE_OBJ) {
			rc = rec_load(l, w.seq, &r);
			if (rc)
				break;
			switch (r.op.kind) {
			case PROTO_OP_CREATE:
			case PROTO_OP_MKDIR:
			case PROTO_OP_SYMLINK:
			case PROTO_OP_LINK:
				found = fid_eq(&r.op.parent, &op->parent) &&
					streq(r.op.name, op->name);
				break;
			case PROTO_OP_RENAME:
				found = fid_eq(&r.op.newparent, &op->parent) &&
					streq(r.op.newname, op->name);
				break;
			default:
				break;
			}
			if (found)
				break;
			rlog_rec_release(&r);
		}
		w.seq = w.node.prev;
	}
	if (rc || !found)
		goto keep;
	/* a, b */
	rc = rec_state(l, r.seq, &st);
	if (rc || st != RLOG_PENDING)
		goto keep;
	if (r.op.kind == PROTO_OP_RENAME) {
		if (!fid_is_null(&r.op.victim) ||
		    (r.op.flags & PROTO_RENAME_EXCHANGE))
			goto keep;
	} else if (!fid_is_null(&op->victim)) {
		goto keep;
	}
	/* c, e */
	rc = dir_touched_after(l, &op->parent, r.seq, op->name,
			       fid_eq(&op->parent, &op->newparent) ? op->newname
								   : NULL,
			       false, &hit);
	if (rc || hit)
		goto keep;
	if (!fid_eq(&op->parent, &op->newparent)) {
		rc = dir_touched_after(l, &op->newparent, r.seq, op->newname,
				       NULL, true, &hit);
		if (rc || hit)
			goto keep;
	}
	/* d */
	if (!fid_is_null(&op->victim)) {
		lid_make(&vid, LT_FID, &op->victim);
		rc = lhead_get(l, &vid, &vh);
		if (rc || vh.last > r.seq)
			goto keep;
	}
	/* f */
	if ((r.op.kind == PROTO_OP_MKDIR || r.op.kind == PROTO_OP_RENAME) &&
	    !fid_eq(&op->parent, &op->newparent)) {
		rc = rename_after(l, r.seq, &hit);
		if (rc || hit)
			goto keep;
	}
	origin = r.op.kind == PROTO_OP_RENAME && fid_is_null(&op->victim) &&
		 fid_eq(&r.op.parent, &op->newparent) &&
		 streq(r.op.name, op->newname);
	if (origin) {
		/* R's own source name must not have been touched either: the
		 * object goes back to a name nobody else used meanwhile. */
		rc = dir_touched_after(l, &r.op.parent, r.seq, r.op.name, NULL,
				       false, &hit);
		if (rc || hit)
			goto keep;
		rc = cancel_rec(l, &r, eff, RLOG_WHY_FOLDED);
		if (rc)
			goto out;
		eff->fate = RLOG_VANISHED;
		eff->seq = 0;
		*done = true;
		goto out;
	}
	rc = rec_dup(&nw, &r);
	if (rc)
		goto out;
	if (r.op.kind == PROTO_OP_RENAME) {
		free(nw.op.newname);
		nw.op.newname = strdup(op->newname);
		nw.op.newparent = op->newparent;
		nw.op.victim = op->victim;
		nw.op.flags = op->flags;
	} else {
		free(nw.op.name);
		nw.op.name = strdup(op->newname);
		nw.op.parent = op->newparent;
	}
	if (!nw.op.name || (nw.op.kind == PROTO_OP_RENAME && !nw.op.newname)) {
		rc = -ENOMEM;
		goto out;
	}
	rc = rec_rewrite(l, &r, &nw);
	if (!rc)
		rc = eff_add(eff, &r, RLOG_WHY_FOLDED, false);
	if (rc)
		goto out;
	eff->fate = RLOG_FOLDED;
	eff->seq = r.seq;
	memcpy(eff->opid, r.op.opid, 16);
	*done = true;
	goto out;
keep:
	if (rc == -E2BIG)
		rc = 0;
out:
	rlog_rec_release(&r);
	rlog_rec_release(&nw);
	return rc;
}

/* Append chunk numbers to a growing sorted-unique set. */
static int
chunks_union(uint64_t **set, size_t *n, const uint64_t *add, size_t nadd)
{
	uint64_t *s;
	size_t i, k;

	if (*n + nadd > MERGE_CHUNKS_MAX)
		return -E2BIG;
	s = realloc(*set, (*n + nadd + 1) * sizeof(*s));
	if (!s)
		return -ENOMEM;
	if (nadd)
		memcpy(s + *n, add, nadd * sizeof(*s));
	*n += nadd;
	*set = s;
	qsort(s, *n, sizeof(*s), cmp_u64);
	for (i = k = 0; i < *n; i++)
		if (!k || s[k - 1] != s[i])
			s[k++] = s[i];
	*n = k;
	return 0;
}

/*
 * Rule 1, store over store: the newest older store of the same FID, if
 * PENDING with the same chunk size and no truncate (setattr of size)
 * between them, is replaced by the new one, which takes the older base DV,
 * the union of the chunks, and the newest size. A store's chunks are read
 * from the local cache when it is sent, so the union sends the latest
 * bytes. When the file had shrunk before it grew again (old size < new
 * size), the chunks from the old size to the new one are added too: the
 * server must write the zeros there, which "chunks not listed keep their
 * old bytes" would otherwise skip. Chunks wholly past the new size go.
 */
static int
rule_store(struct rlog *l, struct rlog_rec *n, struct rlog_effect *eff)
{
	struct proto_op *op = &n->op;
	struct rlog_rec r = {0};
	struct back w;
	enum rlog_state st;
	uint64_t *set = NULL, *gap = NULL, first, last, c;
	size_t nset = 0, i, k;
	int rc;

	rc = back_start(l, &w, &op->fid);
	while (!rc && w.seq) {
		rc = back_next(l, &w);
		if (rc)
			break;
		if ((w.node.aux & ROLE_OBJ) && w.node.kind == PROTO_OP_STORE)
			break;
		if ((w.node.aux & ROLE_OBJ) &&
		    w.node.kind == PROTO_OP_SETATTR) {
			rc = rec_load(l, w.seq, &r);
			if (rc)
				break;
			k = r.op.mask & PROTO_SA_SIZE;
			rlog_rec_release(&r);
			if (k)
				goto keep; /* a truncate in between */
		}
		w.seq = w.node.prev;
	}
	if (rc || !w.seq)
		goto keep;
	rc = rec_state(l, w.seq, &st);
	if (rc || st != RLOG_PENDING)
		goto keep;
	rc = rec_load(l, w.seq, &r);
	if (rc || r.op.chunk_size != op->chunk_size)
		goto keep;
	rc = chunks_union(&set, &nset, r.op.chunks, r.op.nchunks);
	if (!rc)
		rc = chunks_union(&set, &nset, op->chunks, op->nchunks);
	if (!rc && r.op.size < op->size) {
		first = r.op.size / op->chunk_size;
		last = (op->size - 1) / op->chunk_size;
		if (last - first >= MERGE_CHUNKS_MAX) {
			rc = -E2BIG;
			goto keep;
		}
		gap = malloc((last - first + 1) * sizeof(*gap));
		if (!gap) {
			rc = -ENOMEM;
			goto out;
		}
		for (c = first, k = 0; c <= last; c++)
			gap[k++] = c;
		rc = chunks_union(&set, &nset, gap, k);
	}
	if (rc)
		goto keep;
	for (i = k = 0; i < nset; i++)
		if (set[i] < (op->size + op->chunk_size - 1) / op->chunk_size)
			set[k++] = set[i];
	rc = cancel_rec(l, &r, eff, RLOG_WHY_MERGED);
	if (rc)
		goto out;
	free(op->chunks);
	op->chunks = set;
	op->nchunks = k;
	set = NULL;
	op->base_dv = r.op.base_dv;
	n->time_ms = r.time_ms;
	goto out;
keep:
	if (rc == -E2BIG)
		rc = 0;
out:
	free(set);
	free(gap);
	rlog_rec_release(&r);
	return rc;
}

/*
 * Rule 2, setattr over setattr: the newest older setattr of the FID, if
 * PENDING with no store between them, is replaced by the new one with the
 * union of the masks (the newer value wins per field) and the older base
 * DV. Two truncates merge only when the second does not grow the file:
 * "truncate to 0, then to 10" must leave zeros that "truncate to 10"
 * would not write.
 */
static int
rule_setattr(struct rlog *l, struct rlog_rec *n, struct rlog_effect *eff)
{
	struct proto_op *op = &n->op;
	struct rlog_rec r = {0};
	struct back w;
	enum rlog_state st;
	uint32_t old;
	int rc;

	rc = back_start(l, &w, &op->fid);
	while (!rc && w.seq) {
		rc = back_next(l, &w);
		if (rc)
			break;
		if ((w.node.aux & ROLE_OBJ) && w.node.kind == PROTO_OP_STORE)
			goto keep;
		if ((w.node.aux & ROLE_OBJ) && w.node.kind == PROTO_OP_SETATTR)
			break;
		w.seq = w.node.prev;
	}
	if (rc || !w.seq)
		goto keep;
	rc = rec_state(l, w.seq, &st);
	if (rc || st != RLOG_PENDING)
		goto keep;
	rc = rec_load(l, w.seq, &r);
	if (rc)
		goto keep;
	if ((r.op.mask & op->mask & PROTO_SA_SIZE) && op->size > r.op.size)
		goto keep;
	old = r.op.mask & ~op->mask;
	if (old & PROTO_SA_MODE)
		op->mode = r.op.mode;
	if (old & PROTO_SA_UID)
		op->uid = r.op.uid;
	if (old & PROTO_SA_GID)
		op->gid = r.op.gid;
	if (old & PROTO_SA_SIZE)
		op->size = r.op.size;
	if (old & PROTO_SA_ATIME)
		op->atime_ns = r.op.atime_ns;
	if (old & PROTO_SA_MTIME)
		op->mtime_ns = r.op.mtime_ns;
	rc = cancel_rec(l, &r, eff, RLOG_WHY_MERGED);
	if (rc)
		goto out;
	op->mask |= r.op.mask;
	op->base_dv = r.op.base_dv;
	n->time_ms = r.time_ms;
	goto out;
keep:
	if (rc == -E2BIG)
		rc = 0;
out:
	rlog_rec_release(&r);
	return rc;
}

/*
 * Rule 5, xattrs: the newest older setxattr/removexattr of the same name
 * on the FID, if PENDING, is superseded; the survivor keeps the OLDER
 * record's precondition (the server's state before both):
 *   set(f1) + set(f2)        -> set(f1), newer value
 *   set(CREATE) + remove     -> nothing (it never existed on the server)
 *   set(REPLACE) + remove    -> remove
 *   set(0) + remove          -> both kept (no op says "remove if present")
 *   remove + set(f)          -> set(REPLACE)
 *   remove + remove          -> the older remove
 * *@gone: the new op needs no record of its own.
 */
static int
rule_xattr(struct rlog *l, struct rlog_rec *n, struct rlog_effect *eff,
	   bool *gone)
{
	struct proto_op *op = &n->op;
	struct rlog_rec r = {0};
	struct back w;
	enum rlog_state st;
	bool found = false;
	int rc;

	*gone = false;
	rc = back_start(l, &w, &op->fid);
	while (!rc && w.seq) {
		rc = back_next(l, &w);
		if (rc)
			break;
		if ((w.node.aux & ROLE_OBJ) &&
		    (w.node.kind == PROTO_OP_SETXATTR ||
		     w.node.kind == PROTO_OP_REMOVEXATTR)) {
			rc = rec_load(l, w.seq, &r);
			if (rc)
				break;
			found = streq(r.op.xname, op->xname);
			if (found)
				break;
			rlog_rec_release(&r);
		}
		w.seq = w.node.prev;
	}
	if (rc || !found)
		goto keep;
	rc = rec_state(l, r.seq, &st);
	if (rc || st != RLOG_PENDING)
		goto keep;
	if (r.op.kind == PROTO_OP_SETXATTR) {
		if (op->kind == PROTO_OP_SETXATTR) {
			op->flags = r.op.flags;
		} else if (r.op.flags & PROTO_XATTR_CREATE) {
			*gone = true;
		} else if (!(r.op.flags & PROTO_XATTR_REPLACE)) {
			goto keep;
		}
	} else if (op->kind == PROTO_OP_SETXATTR) {
		op->flags = PROTO_XATTR_REPLACE;
	} else {
		/* remove + remove: the older one stays and carries both. */
		eff->fate = RLOG_FOLDED;
		eff->seq = r.seq;
		memcpy(eff->opid, r.op.opid, 16);
		*gone = true;
		goto out;
	}
	rc = cancel_rec(l, &r, eff, RLOG_WHY_MERGED);
	if (rc)
		goto out;
	if (*gone) {
		eff->fate = RLOG_VANISHED;
		eff->seq = 0;
	} else {
		n->time_ms = r.time_ms;
	}
	goto out;
keep:
	if (rc == -E2BIG)
		rc = 0;
out:
	rlog_rec_release(&r);
	return rc;
}

/* Apply one (checked) op inside the open transaction. */
static int
apply_one(struct rlog *l, const struct proto_op *op, unsigned flags,
	  struct rlog_effect *eff)
{
	struct rlog_rec n = {0};
	bool done = false;
	int rc;

	memset(eff, 0, sizeof(*eff));
	rc = op_dup(&n.op, op);
	if (rc)
		return rc;
	if (zero16(n.op.opid) && getrandom(n.op.opid, 16, 0) != 16) {
		rc = -errno;
		goto out;
	}
	memcpy(eff->opid, n.op.opid, 16);
	n.state = (flags & RLOG_A_INFLIGHT) ? RLOG_INFLIGHT : RLOG_PENDING;
	n.time_ms = now_real_ms();
	if (n.state == RLOG_PENDING) {
		switch (n.op.kind) {
		case PROTO_OP_UNLINK:
		case PROTO_OP_RMDIR:
			rc = rule_identity(l, &n.op.fid, eff, &done);
			if (done)
				eff->fate = RLOG_VANISHED;
			break;
		case PROTO_OP_RENAME:
			if (!fid_is_null(&n.op.victim) &&
			    !(n.op.flags & PROTO_RENAME_EXCHANGE)) {
				rc = rule_identity(l, &n.op.victim, eff, &done);
				if (!rc && done) {
					memset(&n.op.victim, 0,
					       sizeof(n.op.victim));
					done = false;
				}
			}
			if (!rc)
				rc = rule_fold(l, &n, eff, &done);
			break;
		case PROTO_OP_STORE:
			rc = rule_store(l, &n, eff);
			break;
		case PROTO_OP_SETATTR:
			rc = rule_setattr(l, &n, eff);
			break;
		case PROTO_OP_SETXATTR:
		case PROTO_OP_REMOVEXATTR:
			rc = rule_xattr(l, &n, eff, &done);
			break;
		default:
			break;
		}
	}
	if (rc || done)
		goto out;
	n.nbytes = store_bytes(&n.op);
	rc = rec_new(l, &n);
	if (rc)
		goto out;
	eff->seq = n.seq;
	eff->fate = eff->nchanges ? RLOG_MERGED : RLOG_APPENDED;
out:
	rlog_rec_release(&n);
	return rc;
}

/* --- transactions --- */

static int
txn_begin(struct rlog *l)
{
	if (l->flags & RLOG_O_RDONLY)
		return -EROFS;
	if (tdb_transaction_start(l->tdb))
		return tdb_errno(l);
	l->tx = l->hdr;
	return 0;
}

static int
txn_commit(struct rlog *l)
{
	int rc = hdr_put(l, &l->tx);
	bool nosync = l->tx_nosync && !(l->flags & RLOG_O_NOSYNC);

	l->tx_nosync = false;
	if (rc) {
		tdb_transaction_cancel(l->tdb);
		return rc;
	}
	/* A per-call RLOG_A_NOSYNC: only this commit skips the fsyncs. */
	if (nosync)
		tdb_add_flags(l->tdb, TDB_NOSYNC);
	rc = tdb_transaction_commit(l->tdb);
	if (nosync)
		tdb_remove_flags(l->tdb, TDB_NOSYNC);
	if (rc) {
		rc = tdb_errno(l);
		log_err(LOG_RLOG, "cannot commit to replay log '%s': %s",
			l->path, strerror(-rc));
		return rc;
	}
	l->hdr = l->tx;
	l->ncommits++;
	return 0;
}

static void
txn_cancel(struct rlog *l)
{
	l->tx_nosync = false;
	tdb_transaction_cancel(l->tdb);
}

static void
effs_release(struct rlog_effect *effs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		rlog_effect_release(&effs[i]);
}

/* Run @reqs (a chain of @nreq group members) in one transaction. */
static int
commit_reqs(struct rlog *l, struct greq **reqs, size_t nreq)
{
	uint64_t cancelled = l->ncancelled;
	size_t i, j;
	int rc;

	bool nosync = true;

	rc = txn_begin(l);
	if (rc)
		return rc;
	for (i = 0; i < nreq; i++)
		if (!(reqs[i]->flags & RLOG_A_NOSYNC))
			nosync = false;
	l->tx_nosync = nosync;
	for (i = 0; !rc && i < nreq; i++)
		for (j = 0; !rc && j < reqs[i]->n; j++)
			rc = apply_one(l, &reqs[i]->ops[j], reqs[i]->flags,
				       &reqs[i]->effs[j]);
	if (!rc)
		rc = txn_commit(l);
	else
		txn_cancel(l);
	if (rc) {
		l->ncancelled = cancelled;
		for (i = 0; i < nreq; i++)
			effs_release(reqs[i]->effs, reqs[i]->n);
		return rc;
	}
	for (i = 0; i < nreq; i++)
		l->nappends += reqs[i]->n;
	return 0;
}

/* The leader's work: one transaction for the whole group; if it fails,
 * each member alone, so one member's error is not another's. */
static void
group_run(struct rlog *l, struct greq **reqs, size_t nreq)
{
	int rc;

	pthread_mutex_lock(&l->lock);
	rc = commit_reqs(l, reqs, nreq);
	if (rc && nreq > 1) {
		for (size_t i = 0; i < nreq; i++)
			reqs[i]->rc = commit_reqs(l, &reqs[i], 1);
	} else {
		for (size_t i = 0; i < nreq; i++)
			reqs[i]->rc = rc;
	}
	pthread_mutex_unlock(&l->lock);
}

/* Queue @req and return once a group commit has run it. */
static int
group_submit(struct rlog *l, struct greq *req)
{
	struct greq *batch[64], **reqs = batch, *r;
	size_t nreq, nops, cap = 64;

	pthread_mutex_lock(&l->qlock);
	STAILQ_INSERT_TAIL(&l->queue, req, link);
	while (!req->done) {
		if (l->leader) {
			pthread_cond_wait(&l->qcond, &l->qlock);
			continue;
		}
		l->leader = true;
		nreq = nops = 0;
		while ((r = STAILQ_FIRST(&l->queue)) &&
		       (!nreq || nops + r->n <= GROUP_MAX)) {
			if (nreq == cap) {
				struct greq **nr;

				nr = malloc(2 * cap * sizeof(*nr));
				if (!nr)
					break;
				memcpy(nr, reqs, nreq * sizeof(*nr));
				if (reqs != batch)
					free(reqs);
				reqs = nr;
				cap *= 2;
			}
			STAILQ_REMOVE_HEAD(&l->queue, link);
			reqs[nreq++] = r;
			nops += r->n;
		}
		pthread_mutex_unlock(&l->qlock);
		group_run(l, reqs, nreq);
		pthread_mutex_lock(&l->qlock);
		for (size_t i = 0; i < nreq; i++)
			reqs[i]->done = true;
		l->leader = false;
		pthread_cond_broadcast(&l->qcond);
	}
	pthread_mutex_unlock(&l->qlock);
	if (reqs != batch)
		free(reqs);
	return req->rc;
}

static int
append_common(struct rlog *l, const struct proto_op *ops, size_t n,
	      unsigned flags, struct rlog_effect *effs)
{
	struct greq req = {.ops = ops, .n = n, .flags = flags, .effs = effs};
	size_t i;
	int rc;

	/* The effects are outputs: whatever they held is overwritten. */
	if (effs && n)
		memset(effs, 0, n * sizeof(*effs));
	if (!l || (n && !ops) ||
	    (flags & ~(unsigned)(RLOG_A_INFLIGHT | RLOG_A_NOSYNC)))
		return -EINVAL;
	if (l->flags & RLOG_O_RDONLY)
		return -EROFS;
	for (i = 0; i < n; i++) {
		rc = op_check(&ops[i]);
		if (rc)
			return rc;
	}
	if (!n)
		return 0;
	return group_submit(l, &req);
}

int
rlog_append_ex(struct rlog *l, const struct proto_op *op, unsigned flags,
	       struct rlog_effect *eff)
{
	struct rlog_effect local;
	int rc;

	if (eff)
		memset(eff, 0, sizeof(*eff));
	if (!op)
		return -EINVAL;
	rc = append_common(l, op, 1, flags, eff ? eff : &local);
	if (!eff)
		rlog_effect_release(&local);
	return rc;
}

int
rlog_append(struct rlog *l, const struct proto_op *op, uint64_t *seq)
{
	struct rlog_effect eff;
	int rc;

	if (!op)
		return -EINVAL;
	rc = append_common(l, op, 1, 0, &eff);
	if (seq)
		*seq = rc ? 0 : eff.seq;
	rlog_effect_release(&eff);
	return rc;
}

int
rlog_append_batch(struct rlog *l, const struct proto_op *ops, size_t n,
		  unsigned flags, struct rlog_effect *effs)
{
	struct rlog_effect *local = effs;
	int rc;

	if (!effs && n) {
		local = calloc(n, sizeof(*local));
		if (!local)
			return -ENOMEM;
	}
	rc = append_common(l, ops, n, flags, local);
	if (!effs) {
		effs_release(local, n);
		free(local);
	}
	return rc;
}

/* --- open / close --- */

static void tdb_log(struct tdb_context *tdb, enum tdb_debug_level level,
		    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
tdb_log(struct tdb_context *tdb, enum tdb_debug_level level, const char *fmt,
	...)
{
	char msg[512];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = 0;
	log_msg(LOG_RLOG,
		level <= TDB_DEBUG_ERROR     ? LOG_ERR
		: level == TDB_DEBUG_WARNING ? LOG_WARNING
					     : LOG_DEBUG,
		"tdb '%s': %s", tdb_name(tdb), msg);
}

static struct tdb_context *
tdb_open_log(const char *path, int oflags, unsigned flags)
{
	struct tdb_logging_context lc = {tdb_log, NULL};
	/* NOMMAP: with a map, every commit unmaps and remaps the whole file,
	 * which costs more than the preads (bench_rlog: 2-3x). NOLOCK: the
	 * flock in rlog_open() keeps other processes out. */
	int tflags = TDB_NOMMAP | TDB_NOLOCK | TDB_DISALLOW_NESTING |
		     TDB_INCOMPATIBLE_HASH;

	if (flags & RLOG_O_NOSYNC)
		tflags |= TDB_NOSYNC;
	struct tdb_context *t =
		tdb_open_ex(path, HASH_SIZE, tflags, oflags, 0600, &lc, NULL);

	/* Removed records stay in their hash chain as dead ones, reused by
	 * the next record of that chain: without it every removal grows
	 * the free list, which each allocation walks, and replaying a log
	 * of 20,000 records slowed to ~170 ms a record (4,000 preads). */
	if (t)
		tdb_set_max_dead(t, RLOG_MAX_DEAD);
	return t;
}

/* Build a complete empty log at @path: under @path.new, then link(2), which
 * (unlike rename) never replaces a file that appeared meanwhile. */
static int
create_log(const char *path, unsigned flags)
{
	struct tdb_context *t;
	struct hdr h = {.next_seq = 1, .created_ms = now_real_ms()};
	uint8_t buf[HDR_LEN];
	TDB_DATA key = {(unsigned char *)"H", 1}, val = {buf, sizeof(buf)};
	char *tmp;
	int rc = 0;

	if (asprintf(&tmp, "%s.new", path) < 0)
		return -ENOMEM;
	/* A leftover from a creation that died: it was never the log. */
	if (unlink(tmp) && errno != ENOENT) {
		rc = -errno;
		goto out;
	}
	t = tdb_open_log(tmp, O_RDWR | O_CREAT | O_EXCL, flags);
	if (!t) {
		rc = errno ? -errno : -EIO;
		goto out;
	}
	hdr_encode(&h, buf);
	if (tdb_transaction_start(t) || tdb_store(t, key, val, TDB_INSERT) ||
	    tdb_transaction_commit(t))
		rc = -EIO;
	tdb_close(t);
	if (!rc && !(flags & RLOG_O_NOSYNC)) {
		int fd = open(tmp, O_RDONLY | O_CLOEXEC);

		if (fd < 0 || fsync(fd))
			rc = -errno;
		if (fd >= 0)
			close(fd);
	}
	if (!rc && link(tmp, path))
		rc = -errno;
	unlink(tmp);
	if (!rc && !(flags & RLOG_O_NOSYNC))
		rc = util_fsync_parent(path);
out:
	if (rc && rc != -EEXIST)
		log_err(LOG_RLOG, "cannot create replay log '%s': %s", path,
			strerror(-rc));
	free(tmp);
	return rc;
}

struct rlog *
rlog_open(const char *path, int *err)
{
	return rlog_open_flags(path, 0, err);
}

struct rlog *
rlog_open_flags(const char *path, unsigned flags, int *err)
{
	struct rlog *l = NULL;
	TDB_DATA key = {(unsigned char *)"H", 1}, val = {0};
	int rc = 0, tries;
	bool ro = flags & RLOG_O_RDONLY;

	if (!path || (flags & ~(unsigned)(RLOG_O_RDONLY | RLOG_O_NOSYNC))) {
		rc = -EINVAL;
		goto fail;
	}
	l = calloc(1, sizeof(*l));
	if (!l || !(l->path = strdup(path))) {
		rc = -ENOMEM;
		goto fail;
	}
	l->flags = flags;
	l->lockfd = -1;
	pthread_mutex_init(&l->lock, NULL);
	pthread_mutex_init(&l->qlock, NULL);
	pthread_cond_init(&l->qcond, NULL);
	STAILQ_INIT(&l->queue);
	for (tries = 0; tries < 3 && l->lockfd < 0; tries++) {
		l->lockfd = open(path, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
		if (l->lockfd >= 0)
			break;
		rc = -errno;
		if (rc != -ENOENT || ro)
			goto fail;
		rc = create_log(path, flags);
		if (rc && rc != -EEXIST)
			goto fail;
		rc = 0;
	}
	if (l->lockfd < 0) {
		rc = -EIO;
		goto fail;
	}
	if (flock(l->lockfd, (ro ? LOCK_SH : LOCK_EX) | LOCK_NB)) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto fail;
	}
	/* Never O_CREAT here: tdb would re-initialise a damaged file. */
	errno = 0;
	l->tdb = tdb_open_log(path, ro ? O_RDONLY : O_RDWR, flags);
	if (!l->tdb) {
		rc = errno == ENOENT   ? -ENOENT
		     : errno == EACCES ? -EACCES
		     : errno == ENOMEM ? -ENOMEM
				       : -EUCLEAN;
		goto fail;
	}
	val = tdb_fetch(l->tdb, key);
	if (!val.dptr) {
		rc = tdb_error(l->tdb) == TDB_ERR_NOEXIST ? -EUCLEAN
							  : tdb_errno(l);
		goto fail;
	}
	rc = hdr_decode(val.dptr, val.dsize, &l->hdr);
	free(val.dptr);
	if (rc)
		goto fail;
	if (err)
		*err = 0;
	return l;
fail:
	if (rc == -EUCLEAN)
		log_err(LOG_RLOG,
			"cannot open replay log '%s': not a cairn replay log, "
			"or damaged (left as is): %s",
			path, strerror(EUCLEAN));
	else if (rc == -EPROTONOSUPPORT)
		log_err(LOG_RLOG,
			"cannot open replay log '%s': format version is not "
			"%d (left as is): %s",
			path, RLOG_FORMAT_VERSION, strerror(EPROTONOSUPPORT));
	else
		log_err(LOG_RLOG, "cannot open replay log '%s': %s",
			path ? path : "(null)", strerror(-rc));
	rlog_close(l);
	if (err)
		*err = rc;
	errno = -rc;
	return NULL;
}

void
rlog_close(struct rlog *l)
{
	if (!l)
		return;
	if (l->tdb)
		tdb_close(l->tdb);
	if (l->lockfd >= 0)
		close(l->lockfd);
	pthread_cond_destroy(&l->qcond);
	pthread_mutex_destroy(&l->qlock);
	pthread_mutex_destroy(&l->lock);
	free(l->path);
	free(l);
}

/* --- reading --- */

int
rlog_get(struct rlog *l, uint64_t seq, struct rlog_rec *rec)
{
	int rc;

	if (!l || !rec)
		return -EINVAL;
	memset(rec, 0, sizeof(*rec));
	if (!seq)
		return -ENOENT;
	pthread_mutex_lock(&l->lock);
	rc = rec_load(l, seq, rec);
	pthread_mutex_unlock(&l->lock);
	return rc;
}

/* First seq > @after in list @type whose aux state is in @states. The
 * 'A' node of @after, when it still exists, gives the next one at once;
 * otherwise the walk starts at the head. Called with the lock held. */
static int
list_next_locked(struct rlog *l, uint8_t type, uint64_t after, unsigned states,
		 uint64_t *out)
{
	struct lid id;
	struct lhead h;
	struct lnode n;
	uint64_t seq;
	size_t steps = 0;
	int rc;

	*out = 0;
	lid_make(&id, type, NULL);
	rc = lhead_get(l, &id, &h);
	if (rc)
		return rc;
	seq = h.first;
	if (after && after < h.last && h.first <= after) {
		rc = lnode_get(l, &id, after, &n);
		if (!rc)
			seq = n.next;
		else if (rc != -ENOENT)
			return rc;
	}
	for (; seq; seq = n.next) {
		if (++steps > h.count + 1)
			return -EUCLEAN;
		rc = lnode_get(l, &id, seq, &n);
		if (rc)
			return rc == -ENOENT ? -EUCLEAN : rc;
		if (seq > after && (states & RLOG_MASK(n.aux))) {
			*out = seq;
			return 0;
		}
	}
	return -ENOENT;
}

int
rlog_next(struct rlog *l, uint64_t after, unsigned states, struct rlog_rec *rec)
{
	uint8_t type = LT_ALL;
	uint64_t seq;
	int rc;

	if (!l || !rec)
		return -EINVAL;
	memset(rec, 0, sizeof(*rec));
	if (states == RLOG_MASK(RLOG_PENDING))
		type = LT_PEND;
	else if (states == RLOG_MASK(RLOG_CONFLICT))
		type = LT_CONF;
	pthread_mutex_lock(&l->lock);
	rc = list_next_locked(l, type, after, states, &seq);
	if (!rc)
		rc = rec_load(l, seq, rec);
	pthread_mutex_unlock(&l->lock);
	return rc;
}

int
rlog_first(struct rlog *l, struct rlog_rec *rec)
{
	return rlog_next(l, 0, RLOG_MASK(RLOG_PENDING), rec);
}

static int
walk(struct rlog *l, unsigned states, rlog_iter_fn fn, void *arg)
{
	struct rlog_rec rec;
	uint64_t cur = 0;
	int rc;

	if (!l || !fn)
		return -EINVAL;
	for (;;) {
		rc = rlog_next(l, cur, states, &rec);
		if (rc == -ENOENT)
			return 0;
		if (rc)
			return rc;
		cur = rec.seq;
		rc = fn(&rec, arg);
		rlog_rec_release(&rec);
		if (rc)
			return rc;
	}
}

int
rlog_iterate(struct rlog *l, rlog_iter_fn fn, void *arg)
{
	return walk(l, RLOG_MASK_ALL, fn, arg);
}

int
rlog_conflicts(struct rlog *l, rlog_iter_fn fn, void *arg)
{
	return walk(l, RLOG_MASK(RLOG_CONFLICT), fn, arg);
}

/* --- changing records --- */

/* Move loaded record @r to @state (with @c when CONFLICT), in the open
 * transaction. */
static int
rec_move(struct rlog *l, struct rlog_rec *r, enum rlog_state state,
	 const struct rlog_conflict *c)
{
	struct rlog_rec nw = *r;
	struct lid id;
	int rc;

	nw.state = state;
	if (c) {
		nw.has_conflict = true;
		nw.conflict = *c;
		if (!nw.conflict.time_ms)
			nw.conflict.time_ms = now_real_ms();
	}
	rc = rec_store(l, &nw, TDB_MODIFY);
	if (rc)
		return rc;
	/* The 'A' list keeps its order: only the node's state changes. */
	lid_make(&id, LT_ALL, NULL);
	rc = list_set(l, &id, r->seq, state, r->op.kind);
	if (!rc && r->state != RLOG_INFLIGHT) {
		lid_make(&id, r->state == RLOG_PENDING ? LT_PEND : LT_CONF,
			 NULL);
		rc = list_remove(l, &id, r->seq);
	}
	if (!rc && state != RLOG_INFLIGHT) {
		lid_make(&id, state == RLOG_PENDING ? LT_PEND : LT_CONF, NULL);
		rc = list_insert(l, &id, r->seq, state, r->op.kind);
	}
	if (rc)
		return rc;
	(*hdr_state_count(&l->tx, r->state))--;
	(*hdr_state_count(&l->tx, state))++;
	return 0;
}

int
rlog_set_state(struct rlog *l, uint64_t seq, enum rlog_state state)
{
	struct rlog_rec r;
	int rc;

	if (!l || (state != RLOG_PENDING && state != RLOG_INFLIGHT))
		return -EINVAL;
	pthread_mutex_lock(&l->lock);
	rc = txn_begin(l);
	if (rc)
		goto out;
	rc = rec_load(l, seq, &r);
	if (!rc && r.state == RLOG_CONFLICT)
		rc = -EBUSY;
	if (!rc && r.state != state)
		rc = rec_move(l, &r, state, NULL);
	rlog_rec_release(&r);
	if (!rc)
		rc = txn_commit(l);
	else
		txn_cancel(l);
out:
	pthread_mutex_unlock(&l->lock);
	return rc;
}

int
rlog_set_inflight_run(struct rlog *l, uint64_t seq, size_t max, size_t *moved)
{
	struct rlog_rec r;
	struct lnode n;
	struct lid pid;
	size_t done = 0;
	int rc = 0;

	if (moved)
		*moved = 0;
	if (!l || !seq || !max)
		return -EINVAL;
	lid_make(&pid, LT_PEND, NULL);
	pthread_mutex_lock(&l->lock);
	rc = txn_begin(l);
	if (rc)
		goto out;
	while (seq && done < max) {
		rc = rec_load(l, seq, &r);
		if (rc)
			break;
		if (r.state != RLOG_PENDING) {
			if (r.state == RLOG_CONFLICT && !done)
				rc = -EBUSY;
			rlog_rec_release(&r);
			break;
		}
		/* the next PENDING one, read before this one leaves the list */
		rc = lnode_get(l, &pid, seq, &n);
		if (!rc)
			rc = rec_move(l, &r, RLOG_INFLIGHT, NULL);
		rlog_rec_release(&r);
		if (rc) {
			rc = rc == -ENOENT ? -EUCLEAN : rc;
			break;
		}
		done++;
		seq = n.next;
	}
	if (!rc)
		rc = txn_commit(l);
	else
		txn_cancel(l);
	if (!rc && moved)
		*moved = done;
out:
	pthread_mutex_unlock(&l->lock);
	return rc;
}

static int
remove_locked(struct rlog *l, const uint64_t *seqs, size_t n, bool conflict)
{
	struct rlog_rec r;
	size_t i;
	int rc, removed = 0;

	rc = txn_begin(l);
	if (rc)
		return rc;
	for (i = 0; !rc && i < n; i++) {
		rc = rec_load(l, seqs[i], &r);
		if (rc == -ENOENT && !conflict && n > 1) {
			rc = 0;
			continue;
		}
		if (!rc && (r.state == RLOG_CONFLICT) != conflict)
			rc = conflict ? -EINVAL : -EBUSY;
		if (!rc)
			rc = rec_del(l, &r);
		if (!rc)
			removed++;
		rlog_rec_release(&r);
	}
	if (!rc)
		rc = txn_commit(l);
	else
		txn_cancel(l);
	return rc ? rc : removed;
}

int
rlog_remove(struct rlog *l, uint64_t seq)
{
	return rlog_remove_flags(l, seq, 0);
}

int
rlog_remove_flags(struct rlog *l, uint64_t seq, unsigned flags)
{
	int rc;

	if (!l || (flags & ~(unsigned)RLOG_A_NOSYNC))
		return -EINVAL;
	pthread_mutex_lock(&l->lock);
	l->tx_nosync = !!(flags & RLOG_A_NOSYNC);
	rc = remove_locked(l, &seq, 1, false);
	l->tx_nosync = false;
	pthread_mutex_unlock(&l->lock);
	return rc < 0 ? rc : 0;
}

int
rlog_remove_batch(struct rlog *l, const uint64_t *seqs, size_t n)
{
	int rc;

	if (!l || (n && !seqs) || n > INT32_MAX)
		return -EINVAL;
	if (!n)
		return 0;
	pthread_mutex_lock(&l->lock);
	rc = remove_locked(l, seqs, n, false);
	pthread_mutex_unlock(&l->lock);
	return rc;
}

int
rlog_conflict_add(struct rlog *l, uint64_t seq, const struct rlog_conflict *c)
{
	struct rlog_rec r;
	int rc;

	if (!l || !c || c->kind <= RLOG_CF_NONE || c->kind >= RLOG_CF_MAX ||
	    c->err < 0 || (c->local.path && strlen(c->local.path) > STR_MAX) ||
	    (c->msg && strlen(c->msg) > STR_MAX))
		return -EINVAL;
	pthread_mutex_lock(&l->lock);
	rc = txn_begin(l);
	if (rc)
		goto out;
	rc = rec_load(l, seq, &r);
	if (!rc && r.state == RLOG_CONFLICT)
		rc = -EEXIST;
	if (!rc)
		rc = rec_move(l, &r, RLOG_CONFLICT, c);
	rlog_rec_release(&r);
	if (!rc)
		rc = txn_commit(l);
	else
		txn_cancel(l);
out:
	pthread_mutex_unlock(&l->lock);
	return rc;
}

int
rlog_conflict_resolve(struct rlog *l, uint64_t seq)
{
	int rc;

	if (!l)
		return -EINVAL;
	pthread_mutex_lock(&l->lock);
	rc = remove_locked(l, &seq, 1, true);
	pthread_mutex_unlock(&l->lock);
	return rc < 0 ? rc : 0;
}

/* --- statistics --- */

int
rlog_stats(struct rlog *l, struct rlog_stats *st)
{
	struct rlog_rec r;
	struct stat sb;
	uint64_t seq;
	int rc;

	if (!l || !st)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&l->lock);
	st->records = l->hdr.nrec;
	st->pending = l->hdr.npend;
	st->inflight = l->hdr.ninfl;
	st->conflicts = l->hdr.nconf;
	st->data_bytes = l->hdr.data_bytes;
	st->next_seq = l->hdr.next_seq;
	st->appends = l->nappends;
	st->commits = l->ncommits;
	st->cancelled = l->ncancelled;
	if (!fstat(tdb_fd(l->tdb), &sb))
		st->file_bytes = (uint64_t)sb.st_size;
	/* The age of the log is that of its head in seq order (a merged
	 * record keeps its oldest change's time, so a younger head can hide
	 * an older merged record behind it; reintegration ages by the head,
	 * which is what it must send first anyway). */
	rc = list_next_locked(l, LT_ALL, 0, RLOG_MASK_ALL, &seq);
	if (!rc)
		rc = rec_load(l, seq, &r);
	if (!rc) {
		st->oldest_ms = r.time_ms;
		rlog_rec_release(&r);
	}
	pthread_mutex_unlock(&l->lock);
	return rc == -ENOENT ? 0 : rc;
}

const char *
rlog_state_name(enum rlog_state s)
{
	switch (s) {
	case RLOG_PENDING:
		return "pending";
	case RLOG_INFLIGHT:
		return "inflight";
	case RLOG_CONFLICT:
		return "conflict";
	}
	return "unknown";
}

const char *
rlog_conflict_name(enum rlog_conflict_kind k)
{
	static const char *const names[RLOG_CF_MAX] = {
		[RLOG_CF_NONE] = "none",
		[RLOG_CF_STALE_DV] = "stale-dv",
		[RLOG_CF_NAME_EXISTS] = "name-exists",
		[RLOG_CF_NAME_CHANGED] = "name-changed",
		[RLOG_CF_PARENT_GONE] = "parent-gone",
		[RLOG_CF_OBJECT_GONE] = "object-gone",
		[RLOG_CF_NOT_EMPTY] = "not-empty",
		[RLOG_CF_NO_SPACE] = "no-space",
		[RLOG_CF_REFUSED] = "refused",
	};

	return k >= 0 && k < RLOG_CF_MAX ? names[k] : "unknown";
}

/* --- consistency check --- */

struct check_ctx {
	uint64_t nrec, nnodes, nheads;
	struct lid *fheads;
	size_t nf, capf;
	int rc;
};

static int
check_traverse(struct tdb_context *tdb, TDB_DATA key, TDB_DATA val, void *arg)
{
	struct check_ctx *c = arg;
	struct lid *nf;

	(void)tdb;
	(void)val;
	if (key.dsize == 9 && key.dptr[0] == 'R') {
		c->nrec++;
	} else if (key.dsize == 1 + LID_LEN + 8 && key.dptr[0] == 'n') {
		c->nnodes++;
	} else if (key.dsize == 1 + LID_LEN && key.dptr[0] == 'h') {
		c->nheads++;
		if (key.dptr[1] != LT_FID)
			return 0;
		if (c->nf == c->capf) {
			c->capf = c->capf ? 2 * c->capf : 64;
			nf = realloc(c->fheads, c->capf * sizeof(*nf));
			if (!nf) {
				c->rc = -ENOMEM;
				return -1;
			}
			c->fheads = nf;
		}
		memcpy(c->fheads[c->nf++].b, key.dptr + 1, LID_LEN);
	} else if (!(key.dsize == 1 && key.dptr[0] == 'H')) {
		c->rc = -EUCLEAN;
		return -1;
	}
	return 0;
}

static int
cmp_fid(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct fid));
}

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			if (why)                                               \
				snprintf(why, len, __VA_ARGS__);               \
			rc = -EUCLEAN;                                         \
			goto out;                                              \
		}                                                              \
	} while (0)

/* Walk list @id: increasing seqs, consistent back links, @count nodes. */
static int
check_list(struct rlog *l, const struct lid *id, uint64_t *count, char *why,
	   size_t len)
{
	struct lhead h;
	struct lnode n;
	uint64_t seq, prev = 0, cnt = 0;
	int rc;

	rc = lhead_get(l, id, &h);
	if (rc)
		return rc;
	for (seq = h.first; seq; prev = seq, seq = n.next) {
		CHECK(cnt++ < h.count, "list '%c' longer than its count",
		      id->b[0]);
		rc = lnode_get(l, id, seq, &n);
		CHECK(!rc, "list '%c' misses node %llu", id->b[0],
		      (unsigned long long)seq);
		CHECK(n.prev == prev && seq > prev,
		      "list '%c' out of order at %llu", id->b[0],
		      (unsigned long long)seq);
	}
	CHECK(cnt == h.count && h.last == prev, "list '%c' count or tail wrong",
	      id->b[0]);
	*count = cnt;
out:
	return rc;
}

int
rlog_check(struct rlog *l, unsigned flags, char *why, size_t len)
{
	struct check_ctx c = {0};
	struct rlog_rec r = {0};
	struct memb m[4];
	struct lid id, pid, cid;
	struct lhead h;
	struct lnode n, sn;
	uint64_t seq, cnt[4] = {0}, bytes = 0, membs = 0, fnodes = 0, k;
	uint64_t npl, ncl, nal;
	struct fid *fids = NULL;
	size_t i, nm, nfids = 0, capfids = 0, same;
	int rc;

	if (!l)
		return -EINVAL;
	if (why && len)
		why[0] = 0;
	pthread_mutex_lock(&l->lock);
	lid_make(&id, LT_ALL, NULL);
	lid_make(&pid, LT_PEND, NULL);
	lid_make(&cid, LT_CONF, NULL);
	rc = check_list(l, &id, &nal, why, len);
	if (!rc)
		rc = check_list(l, &pid, &npl, why, len);
	if (!rc)
		rc = check_list(l, &cid, &ncl, why, len);
	if (rc)
		goto out;
	rc = lhead_get(l, &id, &h);
	for (seq = h.first; !rc && seq; seq = n.next) {
		rc = lnode_get(l, &id, seq, &n);
		if (rc)
			break;
		rc = rec_load(l, seq, &r);
		CHECK(!rc, "record %llu unreadable: %s",
		      (unsigned long long)seq, strerror(-rc));
		CHECK(r.state == n.aux && r.op.kind == n.kind &&
			      seq < l->hdr.next_seq,
		      "record %llu disagrees with its list node",
		      (unsigned long long)seq);
		cnt[r.state]++;
		bytes += r.nbytes;
		CHECK(r.nbytes == store_bytes(&r.op),
		      "record %llu byte count wrong", (unsigned long long)seq);
		if (r.state != RLOG_INFLIGHT) {
			rc = lnode_get(l, r.state == RLOG_PENDING ? &pid : &cid,
				       seq, &sn);
			CHECK(!rc, "record %llu missing from its state list",
			      (unsigned long long)seq);
		}
		nm = op_membs(&r.op, m);
		for (i = 0; i < nm; i++) {
			struct lid fid;

			lid_make(&fid, LT_FID, &m[i].fid);
			rc = lnode_get(l, &fid, seq, &sn);
			CHECK(!rc && sn.aux == m[i].roles &&
				      sn.kind == r.op.kind,
			      "record %llu missing from a FID index",
			      (unsigned long long)seq);
		}
		for (i = 0; i < nm; i++) {
			if (nfids == capfids) {
				struct fid *nf;

				capfids = capfids ? 2 * capfids : 256;
				nf = realloc(fids, capfids * sizeof(*nf));
				if (!nf) {
					rc = -ENOMEM;
					goto out;
				}
				fids = nf;
			}
			fids[nfids++] = m[i].fid;
		}
		membs += nm;
		rlog_rec_release(&r);
	}
	if (rc)
		goto out;
	/* Each FID list reached from the records: in order, and exactly as
	 * long as the number of records naming that FID. */
	if (nfids)
		qsort(fids, nfids, sizeof(*fids), cmp_fid);
	for (i = 0; i < nfids; i += same) {
		struct lid fid;

		for (same = 1;
		     i + same < nfids && !cmp_fid(&fids[i], &fids[i + same]);
		     same++)
			;
		lid_make(&fid, LT_FID, &fids[i]);
		rc = check_list(l, &fid, &k, why, len);
		if (rc)
			goto out;
		CHECK(k == same, "a FID index lists %llu records, %zu name it",
		      (unsigned long long)k, same);
	}
	CHECK(cnt[RLOG_PENDING] == l->hdr.npend && npl == l->hdr.npend &&
		      cnt[RLOG_INFLIGHT] == l->hdr.ninfl &&
		      cnt[RLOG_CONFLICT] == l->hdr.nconf &&
		      ncl == l->hdr.nconf && nal == l->hdr.nrec &&
		      bytes == l->hdr.data_bytes,
	      "header counters disagree with the records");
	if (!(flags & RLOG_CHECK_KEYS))
		goto out;
	if (tdb_traverse_read(l->tdb, check_traverse, &c) < 0 && !c.rc)
		c.rc = tdb_errno(l);
	rc = c.rc;
	CHECK(!rc, "unknown key in the file");
	for (i = 0; i < c.nf; i++) {
		rc = check_list(l, &c.fheads[i], &k, why, len);
		if (rc)
			goto out;
		fnodes += k;
	}
	CHECK(c.nrec == l->hdr.nrec, "%llu records but header says %llu",
	      (unsigned long long)c.nrec, (unsigned long long)l->hdr.nrec);
	CHECK(fnodes == membs && c.nnodes == nal + npl + ncl + membs,
	      "index has %llu nodes, records need %llu",
	      (unsigned long long)c.nnodes,
	      (unsigned long long)(nal + npl + ncl + membs));
out:
	rlog_rec_release(&r);
	free(c.fheads);
	free(fids);
	pthread_mutex_unlock(&l->lock);
	return rc;
}
