/*
 * fuzz_error.c - fuzz target for proto_error_decode: error bodies, which may
 * come from anything between client and server (proxies send HTML).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/proto.h"
#include "tests/fuzz/fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_error er, er2;
	size_t l;
	char *e;

	if (proto_error_decode((const char *)data, size, &er))
		return 0;
	FUZZ_ASSERT(er.err > 0 && strlen(er.msg) < sizeof(er.msg));
	e = proto_error_encode(er.err, er.msg, er.cur_dv, &l);
	FUZZ_ASSERT(e);
	FUZZ_ASSERT(proto_error_decode(e, l, &er2) == 0);
	FUZZ_ASSERT(er.err == er2.err && !strcmp(er.msg, er2.msg));
	free(e);
	return 0;
}
