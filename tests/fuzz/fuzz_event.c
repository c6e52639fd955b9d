/*
 * fuzz_event.c - fuzz target for proto_event_decode: one line of the event
 * stream.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/proto.h"
#include "tests/fuzz/fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_event ev, ev2;
	char *e;
	size_t l;

	if (proto_event_decode((const char *)data, size, &ev))
		return 0;
	e = proto_event_encode(&ev, &l);
	FUZZ_ASSERT(e && l > 0 && e[l - 1] == '\n');
	FUZZ_ASSERT(proto_event_decode(e, l, &ev2) == 0);
	FUZZ_ASSERT(ev.seq == ev2.seq && ev.kind == ev2.kind &&
		    fid_eq(&ev.fid, &ev2.fid) && ev.dv == ev2.dv);
	free(e);
	return 0;
}
