/*
 * fuzz_dirbin.c - fuzz target for binary listing pages (protocol 8,
 * proto_dirb_decode()). The input is a page without its magic (the
 * target puts "CDP1" in front, so every input reaches the decoder past
 * its first check). An accepted page re-encodes to the same bytes (one
 * page, one encoding), every name passes proto_name_check(), the head
 * is a directory's, and the cursor peeked at is the decoded one;
 * proto_dir_page_decode() takes it too, with the same entries.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/proto.h"
#include "tests/fuzz/fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_dir d, d2;
	struct proto_sbuf b = {0};
	char next[PROTO_CURSOR_MAX], peek[PROTO_CURSOR_MAX];
	char *page, *again;
	size_t len, alen;
	int rc;

	page = malloc(size + 4);
	if (!page)
		return 0;
	memcpy(page, PROTO_DIRB_MAGIC, 4);
	if (size)
		memcpy(page + 4, data, size);
	len = size + 4;
	rc = proto_dirb_decode(page, len, PROTO_DIR_PAGE_MAX, &d, next);
	FUZZ_ASSERT(rc == 0 || rc == -EINVAL || rc == -E2BIG || rc == -ENOMEM);
	if (rc) {
		FUZZ_ASSERT(d.n == 0 && d.ents == NULL);
		free(page);
		return 0;
	}
	FUZZ_ASSERT(d.dir.type == PROTO_T_DIR && d.n <= PROTO_DIR_PAGE_MAX);
	FUZZ_ASSERT(proto_dirb_peek_next(page, len, peek) == 0 &&
		    !strcmp(peek, next));
	proto_dirb_reserve(&b);
	for (size_t i = 0; i < d.n; i++) {
		FUZZ_ASSERT(proto_name_check(d.ents[i].name,
					     strlen(d.ents[i].name)) == 0);
		proto_dirb_ent(&b, d.ents[i].name, strlen(d.ents[i].name),
			       &d.ents[i].attr);
	}
	again = proto_dirb_page_end(&b, &d.dir, next, &alen);
	FUZZ_ASSERT(fuzz_same(page, len, again, alen));
	rc = proto_dir_page_decode_unchecked(page, len, true, &d2, peek);
	FUZZ_ASSERT(rc == 0 && d2.n == d.n && !strcmp(peek, next));
	for (size_t i = 0; i < d.n; i++)
		FUZZ_ASSERT(!strcmp(d.ents[i].name, d2.ents[i].name) &&
			    fid_eq(&d.ents[i].attr.fid, &d2.ents[i].attr.fid));
	free(again);
	free(page);
	proto_dir_release(&d);
	proto_dir_release(&d2);
	return 0;
}
