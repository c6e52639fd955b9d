/*
 * fpset.c - a growable set of 32-bit fingerprints (fpset.h).
 *
 * A fingerprint is the top 32 bits of the hash (0 is taken as 1, 0 marks
 * an empty slot) and its home slot is its own low bits, so a larger table
 * is filled from the fingerprints alone.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "common/fpset.h"

static uint32_t
fp_of(uint64_t h)
{
	uint32_t fp = (uint32_t)(h >> 32);

	return fp ? fp : 1;
}

void
fpset_init(struct fpset *s)
{
	s->slot = NULL;
	s->mask = 0;
	s->n = 0;
	s->off = false;
}

/* Put @fp into @slot (@mask + 1 slots, at least one empty). */
static void
put(uint32_t *slot, size_t mask, uint32_t fp)
{
	size_t i = fp & mask;

	while (slot[i] && slot[i] != fp)
		i = (i + 1) & mask;
	slot[i] = fp;
}

static int
grow(struct fpset *s)
{
	size_t nslots = s->slot ? (s->mask + 1) * 2 : FPSET_MIN_SLOTS;
	uint32_t *ns;

	/* A fingerprint's home is its low bits: 2^31 slots at most. */
	if ((s->slot && s->mask >= ((size_t)1 << 30)) ||
	    !(ns = calloc(nslots, sizeof(*ns)))) {
		fpset_disable(s);
		return -ENOMEM;
	}
	for (size_t i = 0; s->slot && i <= s->mask; i++)
		if (s->slot[i])
			put(ns, nslots - 1, s->slot[i]);
	free(s->slot);
	s->slot = ns;
	s->mask = nslots - 1;
	return 0;
}

int
fpset_add(struct fpset *s, uint64_t h)
{
	uint32_t fp = fp_of(h);
	size_t i;

	if (s->off)
		return 0;
	/* At most three quarters full, counting the one to come. */
	if ((!s->slot || (s->n + 1) * 4 > (s->mask + 1) * 3) && grow(s))
		return -ENOMEM;
	for (i = fp & s->mask; s->slot[i]; i = (i + 1) & s->mask)
		if (s->slot[i] == fp)
			return 0; /* held (this hash, or one like it) */
	s->slot[i] = fp;
	s->n++;
	return 0;
}

bool
fpset_maybe(const struct fpset *s, uint64_t h)
{
	uint32_t fp = fp_of(h);

	if (s->off)
		return true;
	if (!s->slot)
		return false;
	for (size_t i = fp & s->mask; s->slot[i]; i = (i + 1) & s->mask)
		if (s->slot[i] == fp)
			return true;
	return false;
}

void
fpset_free(struct fpset *s)
{
	free(s->slot);
	fpset_init(s);
}

void
fpset_disable(struct fpset *s)
{
	fpset_free(s);
	s->off = true;
}

size_t
fpset_bytes(const struct fpset *s)
{
	return s->slot ? (s->mask + 1) * sizeof(*s->slot) : 0;
}
