/*
 * fuzz_token_parse.c - fuzz target for token_parse(), token_verify() and
 * token_allows(): bearer tokens arrive straight from the network. A
 * version-2 token that parses must re-mint to the same text except for
 * the MAC, an old-format one must never verify, a random string must
 * never verify, and a token only allows the volume, id and epoch it names.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/token.h"
#include "tests/fuzz/fuzz.h"

static const uint8_t key[32] = "fuzz-key-fuzz-key-fuzz-key-fuzz";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct token_info ti, vt;
	char *s, tok[TOKEN_MAX];
	int rc, vrc, n;

	s = fuzz_cstr(data, size);
	if (!s)
		return 0;
	vrc = token_verify(key, sizeof(key), s, 1, &vt);
	FUZZ_ASSERT(vrc == 0 || vrc == -EACCES);
	rc = token_parse(s, &ti);
	FUZZ_ASSERT(rc == 0 || rc == -EINVAL);
	if (rc) {
		FUZZ_ASSERT(vrc == -EACCES);
		goto out;
	}
	FUZZ_ASSERT(ti.version == 1 || ti.version == 2);
	FUZZ_ASSERT(strlen(ti.vol) > 0 && strlen(ti.vol) <= 64);
	if (ti.version == 1) {
		FUZZ_ASSERT(vrc == -EACCES);
		goto out;
	}
	n = token_mint(key, sizeof(key), &ti, tok, sizeof(tok));
	FUZZ_ASSERT(n > 64 && (size_t)n == strlen(s));
	FUZZ_ASSERT(!memcmp(tok, s, (size_t)n - 64));
	/* Only the genuine MAC verifies; guessing one is not something a
	 * fuzzer may do in our lifetime. */
	if (strcmp(tok, s))
		FUZZ_ASSERT(vrc == -EACCES);
	/* At time 0 nothing has expired yet. */
	FUZZ_ASSERT(token_verify(key, sizeof(key), tok, 0, &vt) == 0);
	FUZZ_ASSERT(token_allows(&vt, ti.vol, ti.volid, ti.epoch, ti.rw) == 0);
	FUZZ_ASSERT(token_allows(&vt, ti.vol, ti.volid ^ 1, ti.epoch, 0) ==
		    -ESTALE);
	FUZZ_ASSERT(token_allows(&vt, ti.vol, ti.volid, ti.epoch + 1, 0) ==
		    -ESTALE);
	FUZZ_ASSERT(token_allows(&vt, "", ti.volid, ti.epoch, 0) == -EPERM);
out:
	free(s);
	return 0;
}
