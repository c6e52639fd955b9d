/*
 * fuzz_op.c - fuzz target for proto_op_decode: mutations, the richest decoder;
 * accepted operations re-encode to the same bytes, and through the
 * attached form of protocol 7 (a store's bytes after the JSON) back to them.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/proto.h"
#include "tests/fuzz/fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_op op, op2, op3;
	size_t l1, l2, l3, l4;
	char *e1, *e2, *e3, *e4;

	if (proto_op_decode((const char *)data, size, &op))
		return 0;
	FUZZ_ASSERT(op.kind > PROTO_OP_NONE && op.kind <= PROTO_OP_MAX);
	if (op.name)
		FUZZ_ASSERT(!proto_name_check(op.name, strlen(op.name)));
	if (op.newname)
		FUZZ_ASSERT(!proto_name_check(op.newname, strlen(op.newname)));
	FUZZ_ASSERT(op.mode <= 07777 && op.xlen <= PROTO_XATTR_VALUE_MAX);
	if (op.kind == PROTO_OP_MKMOUNT)
		FUZZ_ASSERT(op.target && op.type == PROTO_T_MOUNT &&
			    !proto_mount_target_check(op.target,
						      strlen(op.target)));
	e1 = proto_op_encode(&op, &l1);
	FUZZ_ASSERT(e1);
	FUZZ_ASSERT(proto_op_decode(e1, l1, &op2) == 0);
	e2 = proto_op_encode(&op2, &l2);
	FUZZ_ASSERT(fuzz_same(e1, l1, e2, l2));
	e3 = proto_op_encode_ex(&op, PROTO_ENC_ATTACH, &l3);
	FUZZ_ASSERT(e3);
	FUZZ_ASSERT(proto_op_decode(e3, l3, &op3) == 0);
	e4 = proto_op_encode(&op3, &l4);
	FUZZ_ASSERT(fuzz_same(e1, l1, e4, l4));
	free(e1);
	free(e2);
	free(e3);
	free(e4);
	proto_op_release(&op3);
	proto_op_release(&op);
	proto_op_release(&op2);
	return 0;
}
