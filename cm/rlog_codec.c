/*
 * rlog_codec.c - the replay log's byte layout: the little-endian encoder
 * and bounds-checked decoder, records and the header (doc/replay-log.md,
 * "Format"), and the validation of an op before it is appended.
 *
 * Pure functions of their arguments: nothing here touches the tdb file or
 * a handle, so a decoder bug cannot change the log.
 */

#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/crc32c.h"
#include "cm/rlog_i.h"

/* --- small helpers --- */

int64_t
rlog_now_real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool
rlog_zero16(const uint8_t b[16])
{
	static const uint8_t z[16];

	return !memcmp(b, z, 16);
}

bool
rlog_streq(const char *a, const char *b)
{
	return a && b && !strcmp(a, b);
}

void
rlog_be64_put(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

void
rlog_lid_make(struct lid *id, uint8_t type, const struct fid *f)
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

/* --- little-endian encoder / bounds-checked decoder --- */

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

void
rlog_w_uint(struct wbuf *b, uint64_t v, int n)
{
	uint8_t t[8];

	for (int i = 0; i < n; i++, v >>= 8)
		t[i] = (uint8_t)v;
	w_bytes(b, t, (size_t)n);
}


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

uint64_t
rlog_r_uint(struct rbuf *b, int n)
{
	const uint8_t *p = r_take(b, (size_t)n);
	uint64_t v = 0;

	for (int i = n - 1; p && i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}


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
int
rlog_rec_encode(const struct rlog_rec *r, struct wbuf *b)
{
	const struct proto_op *op = &r->op;
	uint8_t fmt = REC_FORMAT;
	uint32_t crc;

	if (op->data)
		fmt = REC_FORMAT_DATA;
	else if (op->rdev)
		fmt = REC_FORMAT_RDEV;
	w_u32(b, 0); /* CRC, filled in below */
	w_u8(b, fmt);
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
	if (op->rdev || op->data)
		w_u32(b, op->rdev);
	if (op->data) {
		w_u64(b, op->data_dv);
		w_u32(b, op->data_slot);
		w_u32(b, op->data_gen);
		w_u32(b, (uint32_t)op->dlen);
		w_bytes(b, op->data, op->dlen);
	}
	if (b->err)
		return b->err;
	crc = crc32c(0, b->p + 4, b->len - 4);
	for (int i = 0; i < 4; i++)
		b->p[i] = (uint8_t)(crc >> (8 * i));
	return 0;
}

/* Decode @len bytes of record @seq into @r. @return 0, -EUCLEAN for
 * anything that is not a well-formed record of this format, -ENOMEM. */
int
rlog_rec_decode(const uint8_t *p, size_t len, uint64_t seq, struct rlog_rec *r)
{
	struct rbuf b = {.p = p, .len = len};
	struct proto_op *op = &r->op;
	uint32_t crc;
	uint8_t fmt, rflags;
	uint32_t n;

	memset(r, 0, sizeof(*r));
	crc = r_u32(&b);
	/* Records are checked on every read, so a flipped bit on disk is
	 * -EUCLEAN, never a wrong op replayed. */
	if (b.err || crc != crc32c(0, p + 4, len - 4))
		return -EUCLEAN;
	fmt = r_u8(&b);
	r->state = (enum rlog_state)r_u8(&b);
	op->kind = (enum proto_op_kind)r_u8(&b);
	rflags = r_u8(&b);
	r->seq = r_u64(&b);
	r->time_ms = r_i64(&b);
	r->nbytes = r_u64(&b);
	if ((fmt != REC_FORMAT && fmt != REC_FORMAT_RDEV &&
	     fmt != REC_FORMAT_DATA) ||
	    r->seq != seq || r->state < RLOG_PENDING ||
	    r->state > RLOG_CONFLICT || op->kind <= PROTO_OP_NONE ||
	    op->kind > PROTO_OP_MAX || (rflags & ~RF_CONFLICT) ||
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
	if (!b.err && fmt == REC_FORMAT_RDEV) {
		op->rdev = r_u32(&b);
		if (!b.err && (op->kind != PROTO_OP_CREATE ||
			       !proto_type_has_rdev(op->type) || !op->rdev))
			b.err = -EUCLEAN;
	}
	if (!b.err && fmt == REC_FORMAT_DATA) {
		/* A store's bytes: the one thing a record holds that the
		 * chunk store may not (a power cut), so each bound is
		 * checked before a byte is copied. */
		op->rdev = r_u32(&b);
		op->data_dv = r_u64(&b);
		op->data_slot = r_u32(&b);
		op->data_gen = r_u32(&b);
		n = r_u32(&b);
		if (!b.err && !rlog_data_ok(op->kind, op->chunk_size, op->size,
					    op->chunks, op->nchunks, n))
			b.err = -EUCLEAN;
		if (!b.err && op->rdev)
			b.err = -EUCLEAN;
		if (!b.err && n > b.len - b.off)
			b.err = -EUCLEAN;
		if (!b.err) {
			op->data = malloc(n);
			if (!op->data)
				b.err = -ENOMEM;
			else
				r_bytes(&b, op->data, n);
			op->dlen = n;
		}
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
int
rlog_op_dup(struct proto_op *dst, const struct proto_op *src)
{
	*dst = *src;
	dst->name = dst->newname = dst->target = dst->xname = NULL;
	dst->xvalue = NULL;
	dst->chunks = NULL;
	dst->data = NULL;
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
	/* A small store's bytes (format 3) */
	if (src->data) {
		dst->data = malloc(src->dlen ? src->dlen : 1);
		if (!dst->data)
			goto nomem;
		memcpy(dst->data, src->data, src->dlen);
	} else {
		dst->dlen = 0;
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

int
rlog_rec_dup(struct rlog_rec *dst, const struct rlog_rec *src)
{
	int rc;

	*dst = *src;
	memset(&dst->conflict, 0, sizeof(dst->conflict));
	rc = rlog_op_dup(&dst->op, &src->op);
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
uint64_t
rlog_store_bytes(const struct proto_op *op)
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

/* May a record carry @dlen bytes of a store (format 3)? Chunk 0 only, of
 * a file of at most PROTO_INLINE_MAX bytes that fits the chunk: what a
 * batch sends inline (doc/cm.md "Small files inline"). */
bool
rlog_data_ok(enum proto_op_kind kind, uint32_t chunk_size, uint64_t size,
	     const uint64_t *chunks, size_t nchunks, size_t dlen)
{
	return kind == PROTO_OP_STORE && nchunks == 1 && chunks &&
	       chunks[0] == 0 && dlen > 0 && dlen <= PROTO_INLINE_MAX &&
	       dlen <= chunk_size && dlen <= size;
}

static int
name_ok(const char *s)
{
	return s && !proto_name_check(s, strlen(s));
}

int
rlog_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int
rlog_op_check(const struct proto_op *op)
{
	const uint32_t sa_all = PROTO_SA_MODE | PROTO_SA_UID | PROTO_SA_GID |
				PROTO_SA_SIZE | PROTO_SA_ATIME | PROTO_SA_MTIME;

	if (op->data && op->kind != PROTO_OP_STORE)
		return -EINVAL;
	switch (op->kind) {
	case PROTO_OP_CREATE:
	case PROTO_OP_MKDIR:
	case PROTO_OP_SYMLINK:
	case PROTO_OP_MKMOUNT:
		if (fid_is_null(&op->parent) || !name_ok(op->name) ||
		    op->mode > 07777)
			return -EINVAL;
		if (op->kind == PROTO_OP_CREATE &&
		    (!proto_type_creatable(op->type) ||
		     (op->rdev && !proto_type_has_rdev(op->type))))
			return -EINVAL;
		if (op->kind == PROTO_OP_SYMLINK &&
		    (!op->target || !op->target[0] ||
		     strlen(op->target) >= PROTO_PATH_MAX))
			return -EINVAL;
		if (op->kind == PROTO_OP_MKMOUNT &&
		    (!op->target ||
		     proto_mount_target_check(op->target, strlen(op->target))))
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

		if (op->data &&
		    !rlog_data_ok(op->kind, op->chunk_size, op->size,
				  op->chunks, op->nchunks, op->dlen))
			return -EINVAL;

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
		qsort(s, op->nchunks, sizeof(*s), rlog_cmp_u64);
		for (i = 1; i < op->nchunks && s[i - 1] != s[i]; i++)
			;
		free(s);
		return i < op->nchunks ? -EINVAL : 0;
	}
	default:
		return -EINVAL;
	}
}

/* --- the header --- */

void
rlog_hdr_encode(const struct hdr *h, uint8_t out[HDR_LEN])
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
	crc = crc32c(0, out, HDR_LEN - 4);
	w_u32(&b, crc);
}

/* @return 0, -EUCLEAN (not a header of ours, or damaged) or
 * -EPROTONOSUPPORT (a replay log of another version). */
int
rlog_hdr_decode(const uint8_t *p, size_t len, struct hdr *h)
{
	struct rbuf b = {.p = p, .len = len};
	uint32_t version, hlen;

	if (len < 16 || memcmp(p, HDR_MAGIC, 8))
		return -EUCLEAN;
	b.off = 8;
	version = r_u32(&b);
	hlen = r_u32(&b);
	/* Version 1 (no journal yet) is read, and upgraded by
	 * rlog_open_flags(); the header's layout did not change. */
	if (version < 1 || version > RLOG_FORMAT_VERSION)
		return -EPROTONOSUPPORT;
	h->version = version;
	if (hlen != HDR_LEN || len != HDR_LEN ||
	    crc32c(0, p, HDR_LEN - 4) !=
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
