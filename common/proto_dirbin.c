/*
 * proto_dirbin.c - listing pages in binary (protocol 8): what a client
 * that asks ?enc=bin gets instead of a JSON page. The layout is
 * doc/protocol.md's "Binary pages"; a page holds exactly what its JSON
 * twin holds and is checked as strictly (names, types, modes, ranges,
 * the cursor), so a client takes either the same way. Fixed offsets and
 * little-endian integers: the decoder is a bounds check and a few loads
 * an entry, where the JSON scanner is a walk of ~240 bytes of text.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/proto.h"

/* Offsets in a page's head, then in an attribute record. */
enum {
	H_MAGIC = 0,
	H_COUNT = 4,
	H_NEXTLEN = 8,
	H_NEXT = 9,
	H_DIR = H_NEXT + PROTO_CURSOR_MAX - 1,
};
enum {
	A_VOL = 0,
	A_OID = 4,
	A_TYPE = A_OID + FID_OID_LEN,
	A_MODE = A_TYPE + 1,
	A_UID = A_MODE + 4,
	A_GID = A_UID + 4,
	A_RDEV = A_GID + 4,
	A_SIZE = A_RDEV + 4,
	A_NLINK = A_SIZE + 8,
	A_DV = A_NLINK + 8,
	A_ATIME = A_DV + 8,
	A_MTIME = A_ATIME + 8,
	A_CTIME = A_MTIME + 8,
	A_END = A_CTIME + 8,
};
_Static_assert(A_END == PROTO_DIRB_ATTR_LEN, "attribute record size");
_Static_assert(H_DIR + A_END == PROTO_DIRB_HEAD_LEN, "head size");
_Static_assert(PROTO_T_FILE == 1 && PROTO_T_MOUNT == 8,
	       "the wire's type codes are enum proto_type's");

static void
put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void
put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t
get64(const unsigned char *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* What the JSON encoder refuses (EINVAL) or cannot carry (ERANGE), so
 * both encodings refuse the same attributes. */
static int
attr_check(const struct proto_attr *a)
{
	if (a->type < PROTO_T_FILE || a->type > PROTO_T_MAX ||
	    a->mode > 07777 || fid_is_null(&a->fid) ||
	    (a->rdev && !proto_type_has_rdev(a->type)))
		return EINVAL;
	if (a->size > INT64_MAX || a->nlink > INT64_MAX || a->dv > INT64_MAX)
		return ERANGE;
	return 0;
}

static void
attr_put(unsigned char *p, const struct proto_attr *a)
{
	put32(p + A_VOL, a->fid.vol);
	memcpy(p + A_OID, a->fid.oid, FID_OID_LEN);
	p[A_TYPE] = (unsigned char)a->type;
	put32(p + A_MODE, a->mode);
	put32(p + A_UID, a->uid);
	put32(p + A_GID, a->gid);
	put32(p + A_RDEV, a->rdev);
	put64(p + A_SIZE, a->size);
	put64(p + A_NLINK, a->nlink);
	put64(p + A_DV, a->dv);
	put64(p + A_ATIME, (uint64_t)a->atime_ns);
	put64(p + A_MTIME, (uint64_t)a->mtime_ns);
	put64(p + A_CTIME, (uint64_t)a->ctime_ns);
}

/* @return whether the record at @p is attributes the JSON decoder would
 * take (attr() in proto_dirdec.c), into *a. */
static bool
attr_get(const unsigned char *p, struct proto_attr *a)
{
	a->fid.vol = get32(p + A_VOL);
	memcpy(a->fid.oid, p + A_OID, FID_OID_LEN);
	a->type = (enum proto_type)p[A_TYPE];
	a->mode = get32(p + A_MODE);
	a->uid = get32(p + A_UID);
	a->gid = get32(p + A_GID);
	a->rdev = get32(p + A_RDEV);
	a->size = get64(p + A_SIZE);
	a->nlink = get64(p + A_NLINK);
	a->dv = get64(p + A_DV);
	a->atime_ns = (int64_t)get64(p + A_ATIME);
	a->mtime_ns = (int64_t)get64(p + A_MTIME);
	a->ctime_ns = (int64_t)get64(p + A_CTIME);
	return attr_check(a) == 0;
}

void
proto_dirb_reserve(struct proto_sbuf *b)
{
	proto_sbuf_grow(b, PROTO_DIRB_HEAD_LEN);
	if (b->err)
		return;
	memset(b->p, 0, PROTO_DIRB_HEAD_LEN);
	b->len = PROTO_DIRB_HEAD_LEN;
	b->nents = 0;
	b->reserved = true;
}

void
proto_dirb_ent(struct proto_sbuf *b, const char *name, size_t len,
	       const struct proto_attr *a)
{
	unsigned char *p;
	int err;

	if (b->err)
		return;
	if (!b->reserved) {
		b->err = EINVAL;
		return;
	}
	if (!name || proto_name_check(name, len)) {
		b->err = EINVAL;
		return;
	}
	err = attr_check(a);
	if (err) {
		b->err = err;
		return;
	}
	proto_sbuf_grow(b, 1 + len + PROTO_DIRB_ATTR_LEN);
	if (b->err)
		return;
	p = (unsigned char *)b->p + b->len;
	p[0] = (unsigned char)len; /* proto_name_check(): 1..255 */
	memcpy(p + 1, name, len);
	attr_put(p + 1 + len, a);
	b->len += 1 + len + PROTO_DIRB_ATTR_LEN;
	b->nents++;
}

char *
proto_dirb_page_end(struct proto_sbuf *b, const struct proto_attr *dir,
		    const char *next, size_t *lenp)
{
	size_t nl = next ? strlen(next) : 0;
	unsigned char *p;
	char *out;
	int err;

	if (!b->p && !b->err)
		proto_dirb_reserve(b); /* no entry came */
	if (!b->err && !b->reserved)
		b->err = EINVAL;
	if (!b->err &&
	    (dir->type != PROTO_T_DIR || (nl && !proto_cursor_ok(next, nl)) ||
	     b->nents > PROTO_DIR_PAGE_MAX))
		b->err = EINVAL;
	if (!b->err && (err = attr_check(dir)) != 0)
		b->err = err;
	if (b->err) {
		errno = b->err;
		proto_sbuf_release(b);
		return NULL;
	}
	p = (unsigned char *)b->p;
	memcpy(p + H_MAGIC, PROTO_DIRB_MAGIC, 4);
	put32(p + H_COUNT, (uint32_t)b->nents);
	p[H_NEXTLEN] = (unsigned char)nl;
	memset(p + H_NEXT, 0, PROTO_CURSOR_MAX - 1);
	memcpy(p + H_NEXT, next ? next : "", nl);
	attr_put(p + H_DIR, dir);
	out = b->p;
	if (lenp)
		*lenp = b->len;
	memset(b, 0, sizeof(*b));
	return out;
}

bool
proto_dirb_is(const void *buf, size_t len)
{
	return len >= 4 && !memcmp(buf, PROTO_DIRB_MAGIC, 4);
}

/* The head of the binary page at @p (@len bytes): its magic, its cursor
 * (its length, its bytes, its zero padding) into @next when not NULL.
 * @return the cursor's length, or -EINVAL. */
static int
head_cursor(const unsigned char *p, size_t len, char *next)
{
	size_t nl;

	if (len < PROTO_DIRB_HEAD_LEN || !proto_dirb_is(p, len))
		return -EINVAL;
	nl = p[H_NEXTLEN];
	if (nl && !proto_cursor_ok((const char *)p + H_NEXT, nl))
		return -EINVAL;
	/* The padding is zero: one page has one encoding. */
	for (size_t i = nl; i < PROTO_CURSOR_MAX - 1; i++)
		if (p[H_NEXT + i])
			return -EINVAL;
	if (next) {
		memcpy(next, p + H_NEXT, nl);
		next[nl] = 0;
	}
	return (int)nl;
}

int
proto_dirb_peek_next(const void *buf, size_t len, char *next)
{
	int nl = head_cursor(buf, len, next);

	return nl < 0 ? nl : 0;
}

int
proto_dirb_decode(const void *buf, size_t len, size_t max, struct proto_dir *d,
		  char *next)
{
	const unsigned char *p = buf, *end = p + len;
	char cur[PROTO_CURSOR_MAX];
	size_t n;
	int rc = -EINVAL;

	memset(d, 0, sizeof(*d));
	if (next)
		next[0] = 0;
	if (head_cursor(p, len, cur) < 0)
		return -EINVAL;
	n = get32(p + H_COUNT);
	if (!attr_get(p + H_DIR, &d->dir) || d->dir.type != PROTO_T_DIR) {
		memset(d, 0, sizeof(*d));
		return -EINVAL;
	}
	/* Each entry takes at least 2 + PROTO_DIRB_ATTR_LEN bytes: a count
	 * the body cannot hold is refused before anything is allocated. */
	if (n > (len - PROTO_DIRB_HEAD_LEN) / (2 + PROTO_DIRB_ATTR_LEN))
		goto bad;
	if (n > max) {
		rc = -E2BIG;
		goto bad;
	}
	if (n) {
		d->ents = calloc(n, sizeof(*d->ents));
		if (!d->ents) {
			rc = -ENOMEM;
			goto bad;
		}
	}
	p += PROTO_DIRB_HEAD_LEN;
	for (size_t i = 0; i < n; i++) {
		struct proto_dirent *e = &d->ents[i];
		size_t l;

		if (p >= end)
			goto bad;
		l = p[0];
		if ((size_t)(end - p) < 1 + l + PROTO_DIRB_ATTR_LEN ||
		    proto_name_check((const char *)p + 1, l) ||
		    !attr_get(p + 1 + l, &e->attr))
			goto bad;
		e->name = malloc(l + 1);
		if (!e->name) {
			rc = -ENOMEM;
			goto bad;
		}
		memcpy(e->name, p + 1, l);
		e->name[l] = 0;
		d->n = i + 1;
		p += 1 + l + PROTO_DIRB_ATTR_LEN;
	}
	if (p != end)
		goto bad;
	if (next)
		memcpy(next, cur, sizeof(cur));
	return 0;
bad:
	proto_dir_release(d);
	return rc;
}
