/*
 * fuzz_parse_path.c - fuzz target for proto_parse_path: request targets as the
 * server receives them; a chunk or stage path without extra parameters must be
 * rebuilt byte for byte by proto_chunk_path() / proto_stage_path(), since one
 * content has one URL.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/proto.h"
#include "tests/fuzz/fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_path p;
	char *s, buf[512];
	int rc, n;

	s = fuzz_cstr(data, size);
	if (!s)
		return 0;
	rc = proto_parse_path(s, &p);
	FUZZ_ASSERT(rc == 0 || rc == -EINVAL || rc == -ENOENT || rc == -ERANGE);
	if (rc == 0 && p.kind != PROTO_P_PING)
		FUZZ_ASSERT(proto_volname_check(p.vol) == 0);
	if (rc == 0 && !strchr(s, '&') &&
	    (p.kind == PROTO_P_DATA || p.kind == PROTO_P_STAGE)) {
		if (p.kind == PROTO_P_DATA)
			n = proto_chunk_path(buf, sizeof(buf), p.vol, &p.fid,
					     p.dv, p.chunk, p.chunk_size);
		else
			n = proto_stage_path(buf, sizeof(buf), p.vol, &p.fid,
					     p.txid, p.chunk, p.chunk_size);
		FUZZ_ASSERT(n > 0 && !strcmp(buf, s));
	}
	free(s);
	return 0;
}
