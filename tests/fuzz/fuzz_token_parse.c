/*
 * fuzz_token_parse.c - fuzz target for token_parse() and token_verify():
 * bearer tokens arrive straight from the network. A token that parses must
 * re-mint to the same text except for the MAC, and a random string must
 * never verify.
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
	char *s, vol[65], tok[TOKEN_MAX];
	uint64_t expiry;
	int rc, vrc, rw, n;

	s = fuzz_cstr(data, size);
	if (!s)
		return 0;
	vrc = token_verify(key, sizeof(key), s, "home", 0, 1);
	FUZZ_ASSERT(vrc == 0 || vrc == -EACCES || vrc == -EPERM);
	rc = token_parse(s, vol, sizeof(vol), &rw, &expiry);
	FUZZ_ASSERT(rc == 0 || rc == -EINVAL);
	if (rc) {
		FUZZ_ASSERT(vrc == -EACCES);
		goto out;
	}
	n = token_mint(key, sizeof(key), vol, rw, expiry, tok, sizeof(tok));
	FUZZ_ASSERT(n > 64 && (size_t)n == strlen(s));
	FUZZ_ASSERT(!memcmp(tok, s, (size_t)n - 64));
	/* Only the genuine MAC verifies; guessing one is not something a
	 * fuzzer may do in our lifetime. */
	if (strcmp(tok, s))
		FUZZ_ASSERT(vrc == -EACCES);
	/* At time 0 nothing has expired yet. */
	FUZZ_ASSERT(token_verify(key, sizeof(key), tok, vol, rw, 0) == 0);
out:
	free(s);
	return 0;
}
