/*
 * fuzz_link.c - fuzz target for proto_link_decode: symlink targets.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/proto.h"
#include "tests/fuzz/fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *t, *u, *e;
	size_t l;

	if (proto_link_decode((const char *)data, size, &t))
		return 0;
	FUZZ_ASSERT(t[0] && strlen(t) < PROTO_PATH_MAX);
	e = proto_link_encode(t, &l);
	FUZZ_ASSERT(e);
	FUZZ_ASSERT(proto_link_decode(e, l, &u) == 0 && !strcmp(t, u));
	free(e);
	free(t);
	free(u);
	return 0;
}
