/*
 * fuzz_getattr_req.c - fuzz target for proto_getattr_req_decode: the bulk
 * revalidation request the server parses.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/proto.h"
#include "tests/fuzz/fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fid *f, *g;
	size_t n, m, l;
	char *e;

	if (proto_getattr_req_decode((const char *)data, size, &f, &n))
		return 0;
	FUZZ_ASSERT(n <= PROTO_GETATTR_MAX && f);
	e = proto_getattr_req_encode(f, n, &l);
	FUZZ_ASSERT(e);
	FUZZ_ASSERT(proto_getattr_req_decode(e, l, &g, &m) == 0 && m == n);
	FUZZ_ASSERT(n == 0 || !memcmp(f, g, n * sizeof(*f)));
	free(e);
	free(f);
	free(g);
	return 0;
}
