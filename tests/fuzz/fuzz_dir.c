/*
 * fuzz_dir.c - fuzz target for proto_dir_decode and proto_dir_page_decode:
 * readdirplus replies and pages of them; every accepted name passes
 * proto_name_check(), a page re-encodes to the same bytes with its cursor.
 * The one-pass decoder (proto_dir_scan) must give what the jansson one
 * gives, result and entries.
 */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/proto.h"
#include "common/proto_dirdec.h"
#include "tests/fuzz/fuzz.h"

static bool
same_attr(const struct proto_attr *a, const struct proto_attr *b)
{
	return fid_eq(&a->fid, &b->fid) && a->type == b->type &&
	       a->mode == b->mode && a->uid == b->uid && a->gid == b->gid &&
	       a->size == b->size && a->nlink == b->nlink && a->dv == b->dv &&
	       a->atime_ns == b->atime_ns && a->mtime_ns == b->mtime_ns &&
	       a->ctime_ns == b->ctime_ns && a->rdev == b->rdev;
}

/* Both decoders on the same input, with @max entries and a cursor or
 * not: the same code, and when 0 the same listing. */
static void
agree(const char *buf, size_t len, size_t max, bool cursor)
{
	struct proto_dir a, b;
	char na[PROTO_CURSOR_MAX], nb[PROTO_CURSOR_MAX];
	int ra = proto_dir_scan(buf, len, max, &a, cursor ? na : NULL);
	int rb = proto_dir_decode_jansson(buf, len, max, &b,
					  cursor ? nb : NULL);

	FUZZ_ASSERT(ra == rb);
	if (ra == 0) {
		FUZZ_ASSERT(a.n == b.n && same_attr(&a.dir, &b.dir));
		FUZZ_ASSERT(!cursor || !strcmp(na, nb));
		for (size_t i = 0; i < a.n; i++)
			FUZZ_ASSERT(!strcmp(a.ents[i].name, b.ents[i].name) &&
				    same_attr(&a.ents[i].attr, &b.ents[i].attr));
	}
	proto_dir_release(&a);
	proto_dir_release(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_dir d, d2;
	char next[PROTO_CURSOR_MAX], next2[PROTO_CURSOR_MAX];
	size_t i, l1, l2;
	char *e1, *e2;

	agree((const char *)data, size, PROTO_DIR_MAX, false);
	agree((const char *)data, size, PROTO_DIR_PAGE_MAX, true);
	agree((const char *)data, size, 1, true);
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
