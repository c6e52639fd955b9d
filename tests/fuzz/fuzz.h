/*
 * fuzz.h - what every fuzz target in tests/fuzz/ shares.
 *
 * A target defines LLVMFuzzerTestOneInput(). It is built twice: with clang
 * and libFuzzer (tests/fuzz/fuzz.sh), and with the normal compiler against
 * standalone.c, whose main() feeds it each file of a seed corpus so the
 * seeds run under `make check` (git's oss-fuzz/ targets work the same way).
 * A target aborts, through FUZZ_ASSERT, only when a property of the
 * protocol code is broken: decode(encode(decode(x))) must equal
 * decode(x), and an accepted input must re-encode.
 */
#ifndef CAIRN_FUZZ_H
#define CAIRN_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_ASSERT(c)                                                         \
	do {                                                                   \
		if (!(c)) {                                                    \
			fprintf(stderr, "fuzz check failed: %s at %s:%d\n",    \
				#c, __FILE__, __LINE__);                       \
			abort();                                               \
		}                                                              \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Two encodings are the same bytes. Both may be NULL (then both must be). */
static inline int
fuzz_same(const char *a, size_t alen, const char *b, size_t blen)
{
	if (!a || !b)
		return a == b;
	return alen == blen && !memcmp(a, b, alen);
}

/* A NUL-terminated heap copy of the input, for string APIs. */
static inline char *
fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s) {
		memcpy(s, data, size);
		s[size] = 0;
	}
	return s;
}

#endif /* CAIRN_FUZZ_H */
