/*
 * fpset.h - a set of 64-bit key hashes that answers "certainly not" or
 * "maybe": an in-memory front for a lookup that is dear when it misses.
 *
 * cairnd asks its meta.tdb for the cached attributes of every entry of a
 * listing it takes (cm/mcache.c, mcache_apply_fetched()); in a cold
 * listing every one of those asks misses, and each miss is a cache and TLB
 * miss on tdb's 4 MiB hash table: 16-17 % of cairnd's CPU in a cold
 * `ls -f` of 100,000 entries (doc/cm.md). cm/vc.c adds the hash of every
 * 'A' key it stores and asks here first.
 *
 * The set keeps a 32-bit fingerprint of each hash in an open-addressed
 * table (linear probing) that doubles when three quarters full, so it grows
 * with the set and forgets nothing: fpset_maybe() is false only for a hash
 * never added since the set was made or last emptied. Hashes that share a
 * fingerprint and its slot only answer "maybe" where "no" was true; the
 * lookup behind the set answers those. Nothing is ever removed (a deleted
 * key stays a "maybe" until the set is built again). Memory: 4 bytes a
 * slot, 5.3 to 10.7 bytes a fingerprint held, from FPSET_MIN_SLOTS slots.
 *
 * If a table cannot be grown the set turns itself off and answers "maybe"
 * to everything, which is always correct, until fpset_free().
 *
 * Not thread-safe: the owner serializes every call (vc.c holds its lock).
 * Layer rule: libc only.
 */
#ifndef CAIRN_FPSET_H
#define CAIRN_FPSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FPSET_MIN_SLOTS 4096

struct fpset {
	uint32_t *slot; /* 0 = empty; NULL until the first add */
	size_t mask;	/* slots - 1 */
	size_t n;	/* fingerprints held */
	bool off;	/* a growth failed: every answer is "maybe" */
};

/* An empty set (also what a zeroed struct fpset is). */
void fpset_init(struct fpset *s);

/* Hold @h. @return 0, or -ENOMEM: the set is then off (see above). */
int fpset_add(struct fpset *s, uint64_t h);

/* false: @h was never added (since the last fpset_free()); true: it may
 * have been. */
bool fpset_maybe(const struct fpset *s, uint64_t h);

/* Forget every hash and release the table: the set is empty, and on again,
 * as after fpset_init(). */
void fpset_free(struct fpset *s);

/* Release the table and turn the set off: every answer is "maybe" until
 * fpset_free(). For a set whose owner does not know what it must hold
 * (still being filled, or a fill that failed half-way). */
void fpset_disable(struct fpset *s);

/* Bytes of memory the table takes. */
size_t fpset_bytes(const struct fpset *s);

#endif /* CAIRN_FPSET_H */
