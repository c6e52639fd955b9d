/*
 * fidmap.h - FID -> u64, open addressing (linear probing), grows at 1/2
 * full: the replay's DV map (replay.c) and the set of objects whose base
 * is noted (conflict.c) are looked up once per record, so a linear list
 * made replay O(records^2).
 *
 * Layer rule: FUSE-free (libcm), level 0. Not thread-safe: its owner
 * locks (or keeps it on one thread).
 */
#ifndef CAIRN_CM_FIDMAP_H
#define CAIRN_CM_FIDMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/fid.h"

struct fidmap_slot {
	struct fid fid;
	uint64_t dv; /* the value */
	bool used;
};

struct fidmap {
	struct fidmap_slot *slot;
	size_t n, cap; /* cap: 0 or a power of two */
};

/* The slot of @f, or NULL. */
struct fidmap_slot *fidmap_find(const struct fidmap *m, const struct fid *f);
/* Set @f to @dv (added if new). @return its slot, or NULL: out of memory
 * (the map is unchanged). */
struct fidmap_slot *fidmap_put(struct fidmap *m, const struct fid *f,
			       uint64_t dv);
/* Empty @m and free its table. */
void fidmap_clear(struct fidmap *m);

#endif /* CAIRN_CM_FIDMAP_H */
