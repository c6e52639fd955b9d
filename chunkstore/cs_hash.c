/*
 * cs_hash.c - the in-memory index of the chunk store: the key table
 * (vol, fid, chunk) -> slot and the file table (vol, fid) -> its chain of
 * slots, both open-addressing hashes over the slot array.
 *
 * Memory only: nothing here does I/O. The caller holds cs->lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "cs_i.h"

/*
 * ---- hash tables ----
 * Linear probing with backward-shift deletion. An entry is 64 bits: the
 * low half is 1 + slot (0 = empty), the high half the top 32 bits of the
 * key's hash, so a probe compares tags and touches a slot (a likely cache
 * miss) only on a tag match.
 */

static uint64_t
mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static uint64_t
file_hash(uint32_t vol, const uint8_t fid[16])
{
	uint64_t a, b;

	memcpy(&a, fid, 8);
	memcpy(&b, fid + 8, 8);
	return mix64(a ^ mix64(b ^ ((uint64_t)vol << 32 | vol)));
}

static uint64_t
key_hash(uint32_t vol, const uint8_t fid[16], uint64_t chunk)
{
	return mix64(file_hash(vol, fid) + chunk * 0x9e3779b97f4a7c15ull);
}

static uint64_t
slot_khash(const struct cs_store *cs, uint32_t slot)
{
	const struct cs_slot *s = &cs->slots[slot];

	return key_hash(s->vol, s->fid, s->chunk);
}

static uint64_t
slot_fhash(const struct cs_store *cs, uint32_t slot)
{
	const struct cs_slot *s = &cs->slots[slot];

	return file_hash(s->vol, s->fid);
}

static uint64_t
tab_entry(uint64_t h, uint32_t slot)
{
	return (h & 0xffffffff00000000ull) | ((uint64_t)slot + 1);
}

static uint32_t
entry_slot(uint64_t e)
{
	return (uint32_t)e - 1;
}

static void
tab_delete(const struct cs_store *cs, uint64_t *tab, uint32_t mask, uint32_t i,
	   uint64_t (*hash)(const struct cs_store *, uint32_t))
{
	uint32_t j = i;

	tab[i] = 0;
	/* Move up every later entry whose home is not in (i, j], so probe
	 * chains stay whole without tombstones. */
	for (;;) {
		uint32_t k;

		j = (j + 1) & mask;
		if (!tab[j])
			return;
		k = (uint32_t)hash(cs, entry_slot(tab[j])) & mask;
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		tab[i] = tab[j];
		tab[j] = 0;
		i = j;
	}
}

static uint32_t
tab_pos(const uint64_t *tab, uint32_t mask, uint64_t h, uint32_t slot)
{
	uint32_t i = (uint32_t)h & mask;

	while (tab[i] && entry_slot(tab[i]) != slot)
		i = (i + 1) & mask;
	return i;
}

/*
 * Large arrays (the slots and both tables) live in their own anonymous
 * mappings with transparent huge pages requested: at 1M slots they span
 * about 90 MB, and with 4 KiB pages nearly every lookup and every slot of a
 * clean open costs a TLB miss and a page fault. Fresh mappings are zero.
 */
static void *
big_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	if (size >= (2u << 20))
		madvise(p, size, MADV_HUGEPAGE);
	return p;
}

static void *
big_realloc(void *old, size_t old_size, size_t size)
{
	void *p;

	if (!old)
		return big_alloc(size);
	p = mremap(old, old_size, size, MREMAP_MAYMOVE);
	if (p == MAP_FAILED)
		return NULL;
	if (size >= (2u << 20))
		madvise(p, size, MADV_HUGEPAGE);
	return p;
}

void
cs_big_free(void *p, size_t size)
{
	if (p)
		munmap(p, size);
}

static int
tab_rebuild(struct cs_store *cs, uint32_t size)
{
	uint64_t *kt = big_alloc((size_t)size * sizeof(*kt));
	uint64_t *ft = big_alloc((size_t)size * sizeof(*ft));
	uint32_t mask = size - 1;

	if (!kt || !ft) {
		cs_big_free(kt, (size_t)size * sizeof(*kt));
		cs_big_free(ft, (size_t)size * sizeof(*ft));
		return -ENOMEM;
	}
	for (uint32_t s = 0; s < cs->nslots; s++) {
		struct cs_slot *sl = &cs->slots[s];
		uint64_t h;
		uint32_t i;

		if (!(sl->flags & CS_SF_USED))
			continue;
		h = slot_khash(cs, s);
		for (i = (uint32_t)h & mask; kt[i]; i = (i + 1) & mask)
			;
		kt[i] = tab_entry(h, s);
		if (sl->fprev == CS_NONE) {
			h = slot_fhash(cs, s);
			for (i = (uint32_t)h & mask; ft[i]; i = (i + 1) & mask)
				;
			ft[i] = tab_entry(h, s);
		}
	}
	if (cs->ktab) {
		cs_big_free(cs->ktab, ((size_t)cs->kmask + 1) * sizeof(*kt));
		cs_big_free(cs->ftab, ((size_t)cs->fmask + 1) * sizeof(*ft));
	}
	cs->ktab = kt;
	cs->ftab = ft;
	cs->kmask = cs->fmask = mask;
	return 0;
}

/* Size the slot array and tables for @nslots slots. */
int
cs_tables_init(struct cs_store *cs, uint32_t nslots)
{
	uint32_t size = 1024;
	int rc;

	if ((rc = cs_slot_grow(cs, nslots)) < 0)
		return rc;
	while (size < 2 * (uint64_t)nslots)
		size <<= 1;
	return tab_rebuild(cs, size);
}

int
cs_slot_grow(struct cs_store *cs, uint32_t nslots)
{
	uint32_t cap = cs->slots_cap ? cs->slots_cap : 1024;
	struct cs_slot *ns;

	if (nslots > CS_MAX_SLOTS)
		return -EFBIG;
	if (nslots <= cs->slots_cap)
		goto out;
	while (cap < nslots)
		cap = cap > CS_MAX_SLOTS / 2 ? CS_MAX_SLOTS : cap * 2;
	ns = big_realloc(cs->slots, (size_t)cs->slots_cap * sizeof(*ns),
			 (size_t)cap * sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	for (uint32_t i = cs->slots_cap; i < cap; i++)
		ns[i].fnext = ns[i].fprev = CS_NONE;
	cs->slots = ns;
	cs->slots_cap = cap;
out:
	if (nslots > cs->nslots)
		cs->nslots = nslots;
	return 0;
}

int
cs_key_eq(const struct cs_slot *s, uint32_t vol, const uint8_t fid[16],
       uint64_t chunk)
{
	return s->chunk == chunk && s->vol == vol && !memcmp(s->fid, fid, 16);
}

uint32_t
cs_key_find(struct cs_store *cs, const struct cs_key *k)
{
	uint64_t h, e, tag;
	uint32_t i;

	if (!cs->ktab)
		return CS_NONE;
	h = key_hash(k->vol, k->fid, k->chunk);
	tag = h & 0xffffffff00000000ull;
	for (i = (uint32_t)h & cs->kmask; (e = cs->ktab[i]);
	     i = (i + 1) & cs->kmask)
		if ((e & 0xffffffff00000000ull) == tag &&
		    cs_key_eq(&cs->slots[entry_slot(e)], k->vol, k->fid, k->chunk))
			return entry_slot(e);
	return CS_NONE;
}

/* The first slot of file (@vol, @fid) whose file hash is @h; *pos gets
 * the table position (or the empty one where it would go). */
static uint32_t
file_find_h(struct cs_store *cs, uint32_t vol, const uint8_t fid[16],
	    uint64_t h, uint32_t *pos)
{
	uint64_t e, tag = h & 0xffffffff00000000ull;
	uint32_t i;

	for (i = (uint32_t)h & cs->fmask; (e = cs->ftab[i]);
	     i = (i + 1) & cs->fmask) {
		const struct cs_slot *s = &cs->slots[entry_slot(e)];

		if ((e & 0xffffffff00000000ull) == tag && s->vol == vol &&
		    !memcmp(s->fid, fid, 16))
			break;
	}
	*pos = i;
	return e ? entry_slot(e) : CS_NONE;
}

uint32_t
cs_file_find(struct cs_store *cs, uint32_t vol, const uint8_t fid[16])
{
	uint32_t pos;

	if (!cs->ftab)
		return CS_NONE;
	return file_find_h(cs, vol, fid, file_hash(vol, fid), &pos);
}

/*
 * Enter the key already written in slot @slot into both tables.
 * @return 0; -EEXIST if another slot holds the key (its number in *dup,
 * if @dup is not NULL); -ENOMEM.
 */
static int
key_insert(struct cs_store *cs, uint32_t slot, uint32_t *dup)
{
	struct cs_slot *s = &cs->slots[slot];
	uint64_t h, e, tag;
	uint32_t head, i;
	int rc;

	if (!cs->ktab || 2 * ((uint64_t)cs->nkeys + 1) > cs->kmask + 1) {
		uint32_t size = cs->ktab ? (cs->kmask + 1) * 2 : 1024;

		if ((rc = tab_rebuild(cs, size)) < 0)
			return rc;
	}
	h = key_hash(s->vol, s->fid, s->chunk);
	tag = h & 0xffffffff00000000ull;
	for (i = (uint32_t)h & cs->kmask; (e = cs->ktab[i]);
	     i = (i + 1) & cs->kmask) {
		if ((e & 0xffffffff00000000ull) == tag &&
		    cs_key_eq(&cs->slots[entry_slot(e)], s->vol, s->fid,
			   s->chunk)) {
			if (dup)
				*dup = entry_slot(e);
			return -EEXIST;
		}
	}
	cs->ktab[i] = tab_entry(h, slot);
	cs->nkeys++;
	h = file_hash(s->vol, s->fid);
	head = file_find_h(cs, s->vol, s->fid, h, &i);
	if (head != CS_NONE) {
		/* Link in after the head so the file table needs no change. */
		s->fprev = head;
		s->fnext = cs->slots[head].fnext;
		if (s->fnext != CS_NONE)
			cs->slots[s->fnext].fprev = slot;
		cs->slots[head].fnext = slot;
	} else {
		s->fprev = s->fnext = CS_NONE;
		cs->ftab[i] = tab_entry(h, slot);
		cs->nfiles++;
	}
	s->flags |= CS_SF_USED;
	return 0;
}

int
cs_key_insert(struct cs_store *cs, uint32_t slot)
{
	return key_insert(cs, slot, NULL);
}

int
cs_key_insert_dup(struct cs_store *cs, uint32_t slot, uint32_t *dup)
{
	return key_insert(cs, slot, dup);
}

void
cs_key_remove(struct cs_store *cs, uint32_t slot)
{
	struct cs_slot *s = &cs->slots[slot];
	uint32_t i;

	if (!(s->flags & CS_SF_USED))
		return;
	i = tab_pos(cs->ktab, cs->kmask, slot_khash(cs, slot), slot);
	tab_delete(cs, cs->ktab, cs->kmask, i, slot_khash);
	cs->nkeys--;
	if (s->fprev != CS_NONE) {
		cs->slots[s->fprev].fnext = s->fnext;
		if (s->fnext != CS_NONE)
			cs->slots[s->fnext].fprev = s->fprev;
	} else {
		uint64_t h = slot_fhash(cs, slot);

		i = tab_pos(cs->ftab, cs->fmask, h, slot);
		if (s->fnext != CS_NONE) {
			/* Same file, same hash: the next slot takes the entry.
			 */
			cs->ftab[i] = tab_entry(h, s->fnext);
			cs->slots[s->fnext].fprev = CS_NONE;
		} else {
			tab_delete(cs, cs->ftab, cs->fmask, i, slot_fhash);
			cs->nfiles--;
		}
	}
	s->fnext = s->fprev = CS_NONE;
	s->flags &= (uint16_t)~CS_SF_USED;
}

void
cs_slot_key(const struct cs_slot *s, struct cs_key *k)
{
	memset(k, 0, sizeof(*k));
	k->vol = s->vol;
	memcpy(k->fid, s->fid, 16);
	k->chunk = s->chunk;
}
