/*
 * fuzz_volinfo.c - fuzz target for proto_volinfo_decode: must not crash, leak
 * or accept what it cannot re-encode; decode(encode(v)) == v.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/proto.h"
#include "tests/fuzz/fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_volinfo v, w;
	size_t l1, l2;
	char *e1, *e2;

	if (proto_volinfo_decode((const char *)data, size, &v))
		return 0;
	e1 = proto_volinfo_encode(&v, &l1);
	FUZZ_ASSERT(e1);
	FUZZ_ASSERT(proto_volinfo_decode(e1, l1, &w) == 0);
	e2 = proto_volinfo_encode(&w, &l2);
	FUZZ_ASSERT(fuzz_same(e1, l1, e2, l2));
	free(e1);
	free(e2);
	return 0;
}
