/*
 * fuzz_op_result.c - fuzz target for proto_op_result_decode: replies to
 * mutations.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/proto.h"
#include "tests/fuzz/fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_op_result r, r2;
	size_t l1, l2;
	char *e1, *e2;

	if (proto_op_result_decode((const char *)data, size, &r))
		return 0;
	e1 = proto_op_result_encode(&r, &l1);
	FUZZ_ASSERT(e1);
	FUZZ_ASSERT(proto_op_result_decode(e1, l1, &r2) == 0);
	e2 = proto_op_result_encode(&r2, &l2);
	FUZZ_ASSERT(fuzz_same(e1, l1, e2, l2));
	free(e1);
	free(e2);
	return 0;
}
