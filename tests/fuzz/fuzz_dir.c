/*
 * fuzz_dir.c - fuzz target for proto_dir_decode: readdirplus replies; every
 * accepted name passes proto_name_check().
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/proto.h"
#include "tests/fuzz/fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_dir d, d2;
	size_t i, l1, l2;
	char *e1, *e2;

	if (proto_dir_decode((const char *)data, size, &d))
		return 0;
	FUZZ_ASSERT(d.dir.type == PROTO_T_DIR);
	for (i = 0; i < d.n; i++)
		FUZZ_ASSERT(proto_name_check(d.ents[i].name,
					     strlen(d.ents[i].name)) == 0);
	e1 = proto_dir_encode(&d, &l1);
	FUZZ_ASSERT(e1);
	FUZZ_ASSERT(proto_dir_decode(e1, l1, &d2) == 0 && d2.n == d.n);
	e2 = proto_dir_encode(&d2, &l2);
	FUZZ_ASSERT(fuzz_same(e1, l1, e2, l2));
	free(e1);
	free(e2);
	proto_dir_release(&d);
	proto_dir_release(&d2);
	return 0;
}
