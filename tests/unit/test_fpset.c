/*
 * test_fpset.c - the fingerprint set in front of cairnd's attribute lookups
 * (common/fpset.h): it may answer "maybe" where "no" was true, never "no"
 * where a hash was added; it grows with what it holds; off, it says "maybe".
 */
#include "config.h"

#include <stdint.h>

#include "common/fpset.h"
#include "tests/tap.h"

/* A reproducible stream of 64-bit values (splitmix64). */
static uint64_t
next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void
test_empty(void)
{
	struct fpset s;
	uint64_t r = 1;
	int yes = 0;

	fpset_init(&s);
	for (int i = 0; i < 1000; i++)
		yes += fpset_maybe(&s, next(&r));
	is_int(yes, 0, "an empty set says no to everything");
	is_int((int)fpset_bytes(&s), 0, "an empty set holds no table");
	ok(fpset_maybe(&s, 0) == false, "...also to the hash 0");
	fpset_free(&s);
}

static void
test_many(void)
{
	enum { N = 200000 };
	struct fpset s;
	uint64_t r = 42, q;
	int missing = 0, fp = 0, bad_add = 0;

	fpset_init(&s);
	for (int i = 0; i < N; i++)
		bad_add += fpset_add(&s, next(&r)) != 0;
	is_int(bad_add, 0, "%d adds", N);
	/* Two of N random hashes share a 32-bit fingerprint about
	 * N^2 / 2^33 times (~5): each such pair is held once. */
	ok(s.n <= N && s.n >= N - 50, "it holds %zu fingerprints for %d", s.n,
	   N);
	r = 42;
	for (int i = 0; i < N; i++)
		missing += !fpset_maybe(&s, next(&r));
	is_int(missing, 0, "every hash added is a maybe (no false no)");
	/* Never added: the stream goes on past the N added. */
	q = r;
	for (int i = 0; i < N; i++)
		fp += fpset_maybe(&s, next(&q));
	ok(fp < N / 1000, "hashes never added: %d of %d answer maybe", fp, N);
	/* 4 bytes a slot, at most three quarters full: 5.3-10.7 a hash. */
	ok(fpset_bytes(&s) >= (size_t)N * 4 * 4 / 3 &&
		   fpset_bytes(&s) <=
			   (size_t)N * 4 * 8 / 3 + FPSET_MIN_SLOTS * 4,
	   "memory: %zu bytes for %d (%.1f a hash)", fpset_bytes(&s), N,
	   (double)fpset_bytes(&s) / N);
	ok(s.n * 4 <= (s.mask + 1) * 3, "at most three quarters full");
	fpset_free(&s);
	ok(!fpset_maybe(&s, 42) && fpset_bytes(&s) == 0,
	   "freed: empty again, no table");
}

static void
test_edges(void)
{
	struct fpset s;
	uint64_t zero_top = 0x00000000deadbeefULL;
	uint64_t one_top = 0x00000001deadbeefULL;
	uint64_t twin = 0x12345678deadbeefULL, twin2 = 0x1234567800000001ULL;

	fpset_init(&s);
	is_int(fpset_add(&s, zero_top), 0, "add a hash whose top half is 0");
	ok(fpset_maybe(&s, zero_top), "...found (0 is the empty slot's mark)");
	ok(fpset_maybe(&s, one_top),
	   "...and a hash of fingerprint 1 shares it: maybe, never no");
	is_int(fpset_add(&s, twin), 0, "add a hash");
	is_int(fpset_add(&s, twin), 0, "add it again");
	is_int((int)s.n, 2, "held once");
	/* Same top half, another home slot: a maybe only if it lands on the
	 * same chain; either way the added one stays found. */
	ok(fpset_maybe(&s, twin), "the added hash is found");
	(void)fpset_maybe(&s, twin2);
	fpset_disable(&s);
	ok(fpset_maybe(&s, 7) && fpset_maybe(&s, twin),
	   "off: every answer is maybe");
	is_int(fpset_add(&s, 9), 0,
	       "an add to a set that is off is no failure");
	is_int((int)fpset_bytes(&s), 0, "off: no table");
	fpset_free(&s);
	ok(!fpset_maybe(&s, 7), "freed: on again, and empty");
	is_int(fpset_add(&s, 7), 0, "and it takes hashes again");
	ok(fpset_maybe(&s, 7), "...and finds them");
	fpset_free(&s);
}

/* A growth in the middle keeps everything: add one at a time across
 * several doublings, checking all held so far after each doubling. */
static void
test_growth(void)
{
	struct fpset s;
	uint64_t r = 7, q;
	size_t last_mask = 0;
	int lost = 0, growths = 0;

	fpset_init(&s);
	for (int i = 0; i < 50000; i++) {
		fpset_add(&s, next(&r));
		if (s.mask != last_mask) {
			growths++;
			last_mask = s.mask;
			q = 7;
			for (int k = 0; k <= i; k++)
				lost += !fpset_maybe(&s, next(&q));
		}
	}
	ok(growths >= 5, "%d growths", growths);
	is_int(lost, 0, "nothing lost across them");
	fpset_free(&s);
}

int
main(void)
{
	plan(0);
	test_empty();
	test_many();
	test_edges();
	test_growth();
	return done_testing();
}
