/*
 * fuzz_blocks.c - fuzz target for proto_blocks_parse, the X-Cairn-Blocks
 * reply header of a chunk GET. Input: 4 bytes of body length (little
 * endian, taken modulo the chunk size + 1), then the header value. An
 * accepted value must format back to the same bytes (it is strict), and
 * verifying a body of that length must neither overrun nor go backwards.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/proto.h"
#include "tests/fuzz/fuzz.h"

#define CS 262144u

static uint8_t body[CS];

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_blocks pb, again;
	char out[PROTO_BLOCKS_STRLEN], *s;
	uint32_t len;
	ssize_t v;
	int rc, n;

	if (size < 4)
		return 0;
	len = (uint32_t)data[0] | (uint32_t)data[1] << 8 |
	      (uint32_t)data[2] << 16 | (uint32_t)data[3] << 24;
	len %= CS + 1;
	s = fuzz_cstr(data + 4, size - 4);
	if (!s)
		return 0;
	rc = proto_blocks_parse(s, CS, len, &pb);
	FUZZ_ASSERT(rc == 0 || rc == -EINVAL || rc == -ENOTSUP);
	if (rc == 0) {
		FUZZ_ASSERT(pb.len == len && pb.n <= PROTO_BLOCKS_MAX);
		FUZZ_ASSERT((uint64_t)pb.n * pb.bsize >= len);
		n = proto_blocks_format(out, sizeof(out), &pb);
		FUZZ_ASSERT(n > 0 && !strcmp(out, s));
		FUZZ_ASSERT(proto_blocks_parse(out, CS, len, &again) == 0);
		FUZZ_ASSERT(!memcmp(&again, &pb, sizeof(pb)));
		v = proto_blocks_verify(&pb, body, 0, len);
		FUZZ_ASSERT(v == -EIO || (v >= 0 && (size_t)v <= len));
		/* A body whose sums match verifies whole. */
		FUZZ_ASSERT(proto_blocks_compute(&again, pb.bsize, body, len) ==
			    0);
		FUZZ_ASSERT(proto_blocks_verify(&again, body, 0, len) ==
			    (ssize_t)len);
	}
	free(s);
	return 0;
}
