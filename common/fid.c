/*
 * fid.c - parse, print and mint file identifiers (see fid.h for the form).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "common/fid.h"
#include "common/util.h"

char *
fid_fmt(const struct fid *f, char *buf)
{
	/* Not snprintf: a listing formats 100,000 of these. */
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < 8; i++)
		buf[i] = digits[(f->vol >> (28 - 4 * i)) & 15];
	buf[8] = '.';
	util_hex_encode(f->oid, FID_OID_LEN, buf + 9);
	return buf;
}

int
fid_parse_n(const char *s, size_t len, struct fid *f)
{
	uint8_t v[4];

	if (!s || len != FID_STRLEN - 1 || s[8] != '.')
		return -EINVAL;
	if (util_hex_decode(s, 8, v, sizeof(v)) != 4)
		return -EINVAL;
	if (util_hex_decode(s + 9, 32, f->oid, FID_OID_LEN) != FID_OID_LEN)
		return -EINVAL;
	f->vol = (uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 |
		 (uint32_t)v[2] << 8 | v[3];
	return 0;
}

int
fid_parse(const char *s, struct fid *f)
{
	if (!s)
		return -EINVAL;
	return fid_parse_n(s, strlen(s), f);
}

int
fid_random(uint32_t vol, struct fid *f)
{
	size_t got = 0;
	ssize_t n;

	while (got < FID_OID_LEN) {
		n = getrandom(f->oid + got, FID_OID_LEN - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += n;
	}
	f->vol = vol;
	return 0;
}

bool
fid_eq(const struct fid *a, const struct fid *b)
{
	return a->vol == b->vol && !memcmp(a->oid, b->oid, FID_OID_LEN);
}

uint64_t
fid_hash(const struct fid *f)
{
	uint64_t a, b, h;

	memcpy(&a, f->oid, 8);
	memcpy(&b, f->oid + 8, 8);
	h = a ^ ((b ^ f->vol) * 0x9e3779b97f4a7c15ULL);
	h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
	h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
	return h ^ (h >> 31);
}

bool
fid_is_null(const struct fid *f)
{
	static const uint8_t zero[FID_OID_LEN];

	return f->vol == 0 && !memcmp(f->oid, zero, FID_OID_LEN);
}
