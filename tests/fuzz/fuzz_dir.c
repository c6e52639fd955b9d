/*
 * fuzz_dir.c - fuzz target for proto_dir_decode and proto_dir_page_decode:
 * readdirplus replies and pages of them; every accepted name passes
 * proto_name_check(), a page re-encodes to the same bytes with its cursor.
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
	char next[PROTO_CURSOR_MAX], next2[PROTO_CURSOR_MAX];
	size_t i, l1, l2;
	char *e1, *e2;

	if (proto_dir_page_decode((const char *)data, size, false, &d, next) ==
	    0) {
		FUZZ_ASSERT(d.n <= PROTO_DIR_PAGE_MAX);
		e1 = proto_dir_page_encode(&d, next, &l1);
		FUZZ_ASSERT(e1);
		FUZZ_ASSERT(proto_dir_page_decode(e1, l1, false, &d2, next2) ==
				    0 &&
			    d2.n == d.n && !strcmp(next, next2));
		free(e1);
		proto_dir_release(&d2);
		proto_dir_release(&d);
	}
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
