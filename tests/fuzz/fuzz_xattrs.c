/*
 * fuzz_xattrs.c - fuzz target for proto_xattrs_decode: extended attributes with
 * base64 values; values survive a round trip byte for byte.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/proto.h"
#include "tests/fuzz/fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_xattr *x, *y;
	struct fid fid = {0};
	uint64_t dv, dv2;
	size_t n, m, i, l;
	char *e;

	if (proto_xattrs_decode((const char *)data, size, &dv, &x, &n))
		return 0;
	fid.vol = 1;
	e = proto_xattrs_encode(&fid, dv, x, n, &l);
	FUZZ_ASSERT(e);
	FUZZ_ASSERT(proto_xattrs_decode(e, l, &dv2, &y, &m) == 0);
	FUZZ_ASSERT(m == n && dv2 == dv);
	for (i = 0; i < n; i++) {
		FUZZ_ASSERT(x[i].len <= PROTO_XATTR_VALUE_MAX);
		FUZZ_ASSERT(!strcmp(x[i].name, y[i].name));
		FUZZ_ASSERT(x[i].len == y[i].len);
		FUZZ_ASSERT(!memcmp(x[i].value, y[i].value, x[i].len));
	}
	free(e);
	proto_xattrs_free(x, n);
	proto_xattrs_free(y, m);
	return 0;
}
