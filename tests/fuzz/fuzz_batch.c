/*
 * fuzz_batch.c - fuzz target for proto_batch_decode (protocol version 3):
 * accepted batches hold 1..PROTO_BATCH_MAX valid ops and re-encode to the
 * same bytes, and through the attached form of protocol 7 back to them;
 * the reply decoder must survive the same input.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/proto.h"
#include "tests/fuzz/fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_batch b, b2, b3;
	struct proto_batch_result *res = NULL;
	size_t l1, l2, l3, l4;
	char *e1, *e2, *e3, *e4;

	/* The same bytes as a reply of 1..3 results. */
	for (size_t n = 1; n <= 3; n++)
		if (proto_batch_reply_decode((const char *)data, size, n,
					     &res) == 0) {
			for (size_t i = 0; i < n; i++)
				FUZZ_ASSERT(res[i].status == 200 ||
					    (res[i].status >= 400 &&
					     res[i].status <= 599));
			free(res);
		}
	if (proto_batch_decode((const char *)data, size, &b))
		return 0;
	FUZZ_ASSERT(b.n >= 1 && b.n <= PROTO_BATCH_MAX && b.ops);
	for (size_t i = 0; i < b.n; i++) {
		FUZZ_ASSERT(b.ops[i].kind > PROTO_OP_NONE &&
			    b.ops[i].kind <= PROTO_OP_MAX);
		if (b.ops[i].name)
			FUZZ_ASSERT(!proto_name_check(b.ops[i].name,
						      strlen(b.ops[i].name)));
	}
	e1 = proto_batch_encode(b.ops, b.n, b.stop, &l1);
	FUZZ_ASSERT(e1);
	FUZZ_ASSERT(proto_batch_decode(e1, l1, &b2) == 0);
	FUZZ_ASSERT(b2.n == b.n && b2.stop == b.stop);
	e2 = proto_batch_encode(b2.ops, b2.n, b2.stop, &l2);
	FUZZ_ASSERT(fuzz_same(e1, l1, e2, l2));
	e3 = proto_batch_encode_ex(b.ops, b.n, b.stop, PROTO_ENC_ATTACH, &l3);
	FUZZ_ASSERT(e3);
	FUZZ_ASSERT(proto_batch_decode(e3, l3, &b3) == 0);
	e4 = proto_batch_encode(b3.ops, b3.n, b3.stop, &l4);
	FUZZ_ASSERT(fuzz_same(e1, l1, e4, l4));
	free(e1);
	free(e2);
	free(e3);
	free(e4);
	proto_batch_release(&b3);
	proto_batch_release(&b);
	proto_batch_release(&b2);
	return 0;
}
