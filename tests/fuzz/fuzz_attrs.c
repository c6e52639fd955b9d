/*
 * fuzz_attrs.c - fuzz target for proto_attrs_decode: the getattr reply;
 * re-encoding what was accepted gives the same result.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/proto.h"
#include "tests/fuzz/fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_attr *a, *b;
	int *ea, *eb;
	size_t n, m, l1, l2;
	char *e1, *e2;

	if (proto_attrs_decode((const char *)data, size, &a, &ea, &n))
		return 0;
	FUZZ_ASSERT(n <= PROTO_GETATTR_MAX && a && ea);
	e1 = proto_attrs_encode(a, ea, n, &l1);
	FUZZ_ASSERT(e1);
	FUZZ_ASSERT(proto_attrs_decode(e1, l1, &b, &eb, &m) == 0 && m == n);
	e2 = proto_attrs_encode(b, eb, m, &l2);
	FUZZ_ASSERT(fuzz_same(e1, l1, e2, l2));
	free(e1);
	free(e2);
	free(a);
	free(ea);
	free(b);
	free(eb);
	return 0;
}
