/*
 * wb_rec.c - encoding of dirty.tdb records (see wb_rec.h).
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/crc32c.h"
#include "cm/wb_rec.h"
#include "common/proto.h"

#define REC_FIXED    76	 /* version 2: everything but the name */
#define REC_FIXED_V3 108 /* version 3 */

/* Version 1: the raw struct wb.c wrote before, in host byte order. */
struct wrec_v1 {
	uint8_t version;
	uint8_t flags;
	uint8_t pad[2];
	uint32_t namelen;
	uint64_t base_dv, srv_size, size, zero_from;
	int64_t mtime_ns, ctime_ns;
	struct fid parent;
} __attribute__((packed));

static uint8_t *
put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
	return p + n;
}

static uint64_t
get_le(const uint8_t **p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)(*p)[i] << (8 * i);
	*p += n;
	return v;
}

void *
wb_rec_encode(const struct wb_rec *r, size_t *len)
{
	bool v3 = r->sa_mask || (r->flags & ~WB_REC_LOGGED);
	size_t n = (v3 ? REC_FIXED_V3 : REC_FIXED) + r->namelen;
	uint8_t *buf, *p;

	if (r->namelen > PROTO_NAME_MAX) {
		errno = EINVAL;
		return NULL;
	}
	buf = malloc(n);
	if (!buf)
		return NULL;
	p = buf;
	*p++ = v3 ? 3 : 2;
	*p++ = r->flags;
	p = put_le(p, r->namelen, 2);
	p = put_le(p, r->base_dv, 8);
	p = put_le(p, r->srv_size, 8);
	p = put_le(p, r->size, 8);
	p = put_le(p, r->zero_from, 8);
	p = put_le(p, (uint64_t)r->mtime_ns, 8);
	p = put_le(p, (uint64_t)r->ctime_ns, 8);
	p = put_le(p, r->parent.vol, 4);
	memcpy(p, r->parent.oid, FID_OID_LEN);
	p += FID_OID_LEN;
	if (v3) {
		p = put_le(p, r->sa_mask, 4);
		p = put_le(p, r->sa_mode, 4);
		p = put_le(p, r->sa_uid, 4);
		p = put_le(p, r->sa_gid, 4);
		p = put_le(p, (uint64_t)r->sa_atime_ns, 8);
		p = put_le(p, (uint64_t)r->sa_mtime_ns, 8);
	}
	if (r->namelen)
		memcpy(p, r->name, r->namelen);
	p += r->namelen;
	put_le(p, crc32c(0, buf, (size_t)(p - buf)), 4);
	*len = n;
	return buf;
}

static int
decode_v1(const uint8_t *v, size_t len, struct wb_rec *r)
{
	struct wrec_v1 o;

	if (len < sizeof(o))
		return -EUCLEAN;
	memcpy(&o, v, sizeof(o));
	if (o.namelen > PROTO_NAME_MAX || len != sizeof(o) + o.namelen)
		return -EUCLEAN;
	r->flags = o.flags;
	r->base_dv = o.base_dv;
	r->srv_size = o.srv_size;
	r->size = o.size;
	r->zero_from = o.zero_from;
	r->mtime_ns = o.mtime_ns;
	r->ctime_ns = o.ctime_ns;
	r->parent = o.parent;
	r->namelen = o.namelen;
	r->name = o.namelen ? (const char *)v + sizeof(o) : NULL;
	return 1;
}

int
wb_rec_decode(const void *v, size_t len, struct wb_rec *r)
{
	const uint8_t *b = v, *p;
	size_t nl, fixed;

	memset(r, 0, sizeof(*r));
	if (len < 1)
		return -EUCLEAN;
	if (b[0] == 1)
		return decode_v1(b, len, r);
	if (b[0] != 2 && b[0] != 3)
		return b[0] > WB_REC_VERSION ? -EPROTONOSUPPORT : -EUCLEAN;
	fixed = b[0] == 3 ? REC_FIXED_V3 : REC_FIXED;
	if (len < fixed)
		return -EUCLEAN;
	p = b + 2;
	nl = (size_t)get_le(&p, 2);
	if (nl > PROTO_NAME_MAX || len != fixed + nl)
		return -EUCLEAN;
	{
		const uint8_t *c = b + len - 4;

		if (get_le(&c, 4) != crc32c(0, b, len - 4))
			return -EUCLEAN;
	}
	r->flags = b[1];
	r->namelen = nl;
	r->base_dv = get_le(&p, 8);
	r->srv_size = get_le(&p, 8);
	r->size = get_le(&p, 8);
	r->zero_from = get_le(&p, 8);
	r->mtime_ns = (int64_t)get_le(&p, 8);
	r->ctime_ns = (int64_t)get_le(&p, 8);
	r->parent.vol = (uint32_t)get_le(&p, 4);
	memcpy(r->parent.oid, p, FID_OID_LEN);
	p += FID_OID_LEN;
	if (b[0] == 3) {
		r->sa_mask = (uint32_t)get_le(&p, 4);
		r->sa_mode = (uint32_t)get_le(&p, 4);
		r->sa_uid = (uint32_t)get_le(&p, 4);
		r->sa_gid = (uint32_t)get_le(&p, 4);
		r->sa_atime_ns = (int64_t)get_le(&p, 8);
		r->sa_mtime_ns = (int64_t)get_le(&p, 8);
	}
	r->name = nl ? (const char *)p : NULL;
	return 0;
}
