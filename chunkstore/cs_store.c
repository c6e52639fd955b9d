/*
 * cs_store.c - the chunk store's public operations: create, open, close,
 * lookup, read, put, working copies and commit, retagging, pins,
 * invalidation, iteration and statistics.
 *
 * It decides nothing about the byte layout (cs_format.c), recovery
 * (cs_recover.c) or which chunks to evict (cs_cull.c). One mutex guards the
 * in-memory index; reads of chunk data and the slow steps of a put or
 * commit (writing and fsyncing the file) run outside it, with the slot
 * marked CS_SF_BUSY so nobody else changes it meanwhile.
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

static void
big_free(void *p, size_t size)
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
		big_free(kt, (size_t)size * sizeof(*kt));
		big_free(ft, (size_t)size * sizeof(*ft));
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
		big_free(cs->ktab, ((size_t)cs->kmask + 1) * sizeof(*kt));
		big_free(cs->ftab, ((size_t)cs->fmask + 1) * sizeof(*ft));
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

static int
key_eq(const struct cs_slot *s, uint32_t vol, const uint8_t fid[16],
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
		    key_eq(&cs->slots[entry_slot(e)], k->vol, k->fid, k->chunk))
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

static uint32_t
file_find(struct cs_store *cs, uint32_t vol, const uint8_t fid[16])
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
		    key_eq(&cs->slots[entry_slot(e)], s->vol, s->fid,
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

static struct cs_wc *
slot_wc(const struct cs_store *cs, const struct cs_slot *s)
{
	return s->wc ? cs->wcs[s->wc - 1] : NULL;
}

/* Add (@sign 1) or remove (-1) slot @s's share of the counters. */
void
cs_acct(struct cs_store *cs, const struct cs_slot *s, int sign)
{
	const struct cs_wc *wc = slot_wc(cs, s);
	uint64_t com = s->flags & CS_SF_COMMITTED ? s->len : 0;
	uint64_t w = wc ? wc->len : 0;
	uint64_t dirty = (s->flags & CS_SF_DIRTY ? com : 0) + w;
	uint64_t pinned = s->flags & CS_SF_PINNED ? com + w : 0;
	uint64_t files = s->flags & CS_SF_USED ? 1 : 0;

	if (sign > 0) {
		cs->bytes_used += com + w;
		cs->dirty_bytes += dirty;
		cs->pinned_bytes += pinned;
		cs->files_used += files;
	} else {
		cs->bytes_used -= com + w;
		cs->dirty_bytes -= dirty;
		cs->pinned_bytes -= pinned;
		cs->files_used -= files;
	}
}

void
cs_slot_rec(const struct cs_store *cs, uint32_t slot, struct cs_rec *r)
{
	const struct cs_slot *s = &cs->slots[slot];

	memset(r, 0, sizeof(*r));
	r->gen = s->gen;
	if (!(s->flags & CS_SF_COMMITTED))
		return;
	cs_slot_key(s, &r->key);
	r->dv = s->dv;
	r->last_use = s->last_use;
	r->len = s->len;
	r->crc = s->crc;
	r->flags = CS_RF_VALID | (s->flags & CS_SF_DIRTY ? CS_RF_DIRTY : 0) |
		   (s->flags & CS_SF_PINNED ? CS_RF_PINNED : 0);
}

void
cs_slot_from_rec(struct cs_slot *s, const struct cs_rec *r)
{
	s->vol = r->key.vol;
	memcpy(s->fid, r->key.fid, 16);
	s->chunk = r->key.chunk;
	s->dv = r->dv;
	s->last_use = r->last_use;
	s->len = r->len;
	s->crc = r->crc;
	s->gen = r->gen;
	s->flags = (uint16_t)((r->flags & CS_RF_VALID ? CS_SF_COMMITTED : 0) |
			      (r->flags & CS_RF_DIRTY ? CS_SF_DIRTY : 0) |
			      (r->flags & CS_RF_PINNED ? CS_SF_PINNED : 0));
}

/* Write slot @slot's record to the index (not synced). */
int
cs_write_rec(struct cs_store *cs, uint32_t slot)
{
	uint8_t buf[CS_REC_SIZE];
	struct cs_rec r;
	int rc;

	cs_slot_rec(cs, slot, &r);
	cs_rec_encode(&r, buf);
	rc = cs_io_pwrite(cs->idxfd, buf, sizeof(buf),
			  CS_HDR_SIZE + (off_t)slot * CS_REC_SIZE);
	if (rc < 0) {
		cs->io_error = 1;
		cs->slots[slot].flags |= CS_SF_RECDIRTY;
		cs_log(cs, LOG_ERR, "cannot write index record %u in '%s': %s",
		       slot, cs->dir, strerror(-rc));
		return rc;
	}
	cs->slots[slot].flags &= (uint16_t)~CS_SF_RECDIRTY;
	return 0;
}

int
cs_write_hdr(struct cs_store *cs, int clean)
{
	uint8_t buf[CS_HDR_SIZE];
	struct cs_hdr h = {
		.version = CS_VERSION,
		.chunk_size = cs->chunk_size,
		.slot_count = cs->nslots,
		.max_bytes = cs->lim.max_bytes,
		.max_files = cs->lim.max_files,
		.cull_pct = (uint8_t)cs->lim.cull_pct,
		.run_pct = (uint8_t)cs->lim.run_pct,
		.stop_pct = (uint8_t)cs->lim.stop_pct,
		.clean = (uint32_t)clean,
		.clock = cs->clock,
		.create_time = cs->create_time,
		.open_count = cs->open_count,
	};
	int rc;

	cs_hdr_encode(&h, buf);
	rc = cs_io_pwrite(cs->idxfd, buf, sizeof(buf), 0);
	if (rc < 0)
		cs_log(cs, LOG_ERR, "cannot write index header in '%s': %s",
		       cs->dir, strerror(-rc));
	return rc;
}

/* ---- read fd cache (the rules are in cs_i.h, struct cs_fdc_ent) ---- */

/* Close a free-to-be entry's fd (lock held; no references left). */
static void
fdc_free(struct cs_fdc_ent *e)
{
	close(e->fd);
	e->fd = -1;
	e->used = 0;
	e->mapped = 0;
}

/* Unmap a mapped entry: drop the cache's reference (lock held). The fd is
 * closed now if no reader holds it, else by the last reader. @return 1 if
 * the entry is free now. */
static int
fdc_unmap(struct cs_store *cs, struct cs_fdc_ent *e)
{
	if (cs->slots[e->slot].fdc == (uint16_t)(e - cs->fdc + 1))
		cs->slots[e->slot].fdc = 0;
	e->mapped = 0;
	if (__atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		fdc_free(e);
		return 1;
	}
	return 0;
}

/* Lock held: the slot's file changes or goes; later reads must reopen. */
void
cs_fdc_forget(struct cs_store *cs, uint32_t slot)
{
	struct cs_slot *s = &cs->slots[slot];
	struct cs_fdc_ent *e;

	if (!s->fdc)
		return;
	e = &cs->fdc[s->fdc - 1];
	s->fdc = 0;
	if (e->mapped && e->slot == slot)
		fdc_unmap(cs, e);
}

/* CLOCK: a free entry, or one made free by evicting an unused mapped
 * entry. Entries only readers hold are passed over. @return its index or
 * -1 if every entry is held by a reader right now. */
static int
fdc_victim(struct cs_store *cs)
{
	for (uint32_t n = 0; n < 2 * cs->nfdc + 1; n++) {
		uint32_t i = cs->fdc_hand;
		struct cs_fdc_ent *e = &cs->fdc[i];

		cs->fdc_hand = (i + 1) % cs->nfdc;
		if (e->fd < 0)
			return (int)i;
		if (!e->mapped)
			continue;
		if (e->used) {
			e->used = 0;
			continue;
		}
		if (fdc_unmap(cs, e))
			return (int)i;
	}
	return -1;
}

/*
 * Lock held: a read-only fd of committed slot @slot's current file in
 * *out, from the cache or opened now (and cached). The caller preads
 * (with or without the lock) and gives it back with cs_fdc_release.
 * @return 0 or -errno from openat (-ENOENT: the file is missing).
 */
int
cs_fdc_get(struct cs_store *cs, uint32_t slot, struct cs_fdref *out)
{
	struct cs_slot *s = &cs->slots[slot];
	char path[CS_PATH_MAX];
	struct cs_fdc_ent *e;
	int fd, i;

	if (s->fdc) {
		e = &cs->fdc[s->fdc - 1];
		if (e->mapped && e->slot == slot && e->gen == s->gen)
			goto hit;
		cs_fdc_forget(cs, slot);
	}
	cs_chunk_path(path, slot, NULL);
	fd = openat(cs->dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	cs->fdc_opens++;
	if ((i = fdc_victim(cs)) < 0) {
		out->fd = fd;
		out->ent = -1;
		return 0;
	}
	e = &cs->fdc[i];
	e->fd = fd;
	e->slot = slot;
	e->gen = s->gen;
	e->mapped = 1;
	__atomic_store_n(&e->refs, 1, __ATOMIC_RELEASE);
	s->fdc = (uint16_t)(i + 1);
hit:
	e->used = 1;
	__atomic_add_fetch(&e->refs, 1, __ATOMIC_ACQ_REL);
	out->fd = e->fd;
	out->ent = (int)(e - cs->fdc);
	return 0;
}

/* Give back what cs_fdc_get returned; @locked: the caller holds the
 * store's lock. Accepts a released ref (fd -1). */
void
cs_fdc_release(struct cs_store *cs, struct cs_fdref *r, int locked)
{
	struct cs_fdc_ent *e;

	if (r->ent < 0) {
		if (r->fd >= 0)
			close(r->fd);
	} else {
		e = &cs->fdc[r->ent];
		if (__atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) == 0) {
			/* Unmapped while we read: ours was the last hold. */
			if (!locked)
				pthread_mutex_lock(&cs->lock);
			fdc_free(e);
			if (!locked)
				pthread_mutex_unlock(&cs->lock);
		}
	}
	r->fd = -1;
	r->ent = -1;
}

static void
push_free(struct cs_store *cs, uint32_t slot)
{
	if (cs->nfree == cs->free_cap) {
		uint32_t cap = cs->free_cap ? cs->free_cap * 2 : 1024;
		uint32_t *n = realloc(cs->freel, cap * sizeof(*n));

		/* Without room the slot is only leaked until the next open. */
		if (!n)
			return;
		cs->freel = n;
		cs->free_cap = cap;
	}
	cs->freel[cs->nfree++] = slot;
}

/*
 * Remove committed slot @slot (no working copy, not busy): unlink its file
 * first, then free the record, so a crash in between leaves a record whose
 * file is missing, which recovery drops.
 */
int
cs_drop_slot(struct cs_store *cs, uint32_t slot, const char *why)
{
	struct cs_slot *s = &cs->slots[slot];
	char path[CS_PATH_MAX];
	int rc;

	cs_chunk_path(path, slot, NULL);
	rc = cs_io_unlink(cs->dirfd, path);
	if (rc < 0)
		/* The file stays as an orphan; an unclean open re-adopts it
		 * and a later read judges it again. */
		cs_log(cs, LOG_WARNING,
		       "cannot remove chunk file '%s' (%s): %s", path, why,
		       strerror(-rc));
	cs_fdc_forget(cs, slot);
	cs_acct(cs, s, -1);
	cs_key_remove(cs, slot);
	s->flags = 0;
	s->len = 0;
	cs_write_rec(cs, slot);
	push_free(cs, slot);
	return 0;
}

static int
alloc_slot(struct cs_store *cs, const struct cs_key *k, uint32_t *out)
{
	uint32_t slot;
	struct cs_slot *s;
	int rc;

	if (cs->nfree) {
		slot = cs->freel[--cs->nfree];
	} else {
		if (cs->nslots >= CS_MAX_SLOTS)
			return -ENOSPC;
		slot = cs->nslots;
		if ((rc = cs_slot_grow(cs, slot + 1)) < 0)
			return rc;
	}
	s = &cs->slots[slot];
	s->vol = k->vol;
	memcpy(s->fid, k->fid, 16);
	s->chunk = k->chunk;
	s->dv = 0;
	s->len = 0;
	s->crc = 0;
	s->flags = 0;
	s->wc = 0;
	if ((rc = cs_key_insert(cs, slot)) < 0) {
		push_free(cs, slot);
		return rc;
	}
	cs->files_used++;
	*out = slot;
	return 0;
}

/* Give back a slot from alloc_slot that never got content. */
static void
unalloc_slot(struct cs_store *cs, uint32_t slot)
{
	cs->files_used--;
	cs_key_remove(cs, slot);
	cs->slots[slot].flags = 0;
	push_free(cs, slot);
}

/* Find @k, waiting while a put or commit is between its steps. */
static uint32_t
find_idle(struct cs_store *cs, const struct cs_key *k)
{
	uint32_t slot;

	while ((slot = cs_key_find(cs, k)) != CS_NONE &&
	       (cs->slots[slot].flags & CS_SF_BUSY))
		pthread_cond_wait(&cs->cond, &cs->lock);
	return slot;
}

static void
unbusy(struct cs_store *cs, uint32_t slot)
{
	cs->slots[slot].flags &= (uint16_t)~CS_SF_BUSY;
	pthread_cond_broadcast(&cs->cond);
}

static void
fill_trl(const struct cs_store *cs, uint32_t slot, struct cs_trl *t)
{
	const struct cs_slot *s = &cs->slots[slot];

	memset(t, 0, sizeof(*t));
	cs_slot_key(s, &t->key);
	t->dv = s->dv;
	t->len = s->len;
	t->crc = s->crc;
	t->gen = s->gen;
	t->slot = slot;
	t->flags = (s->flags & CS_SF_DIRTY ? CS_RF_DIRTY : 0) |
		   (s->flags & CS_SF_PINNED ? CS_RF_PINNED : 0);
	t->shift = cs->shift;
}

/* Rewrite a committed chunk's trailer in place after a retag. A torn
 * rewrite is caught by the trailer CRC and the record then rules. */
static int
rewrite_trl(struct cs_store *cs, uint32_t slot)
{
	uint8_t buf[CS_TRL_SIZE];
	char path[CS_PATH_MAX];
	struct cs_trl t;
	int fd, rc;

	fill_trl(cs, slot, &t);
	cs_trl_encode(&t, buf);
	cs_chunk_path(path, slot, NULL);
	fd = cs_io_open(cs->dirfd, path, O_WRONLY, 0);
	if (fd < 0) {
		rc = fd;
		goto out;
	}
	rc = cs_io_pwrite(fd, buf, sizeof(buf), cs->slots[slot].len);
	close(fd);
out:
	if (rc < 0)
		cs_log(cs, LOG_WARNING, "cannot retag chunk file '%s': %s",
		       path, strerror(-rc));
	return rc;
}

static void
fill_info(const struct cs_store *cs, uint32_t slot, struct cs_info *out)
{
	const struct cs_slot *s = &cs->slots[slot];
	const struct cs_wc *wc = slot_wc(cs, s);

	memset(out, 0, sizeof(*out));
	cs_slot_key(s, &out->key);
	out->dv = wc ? wc->dv : s->dv;
	out->len = wc ? wc->len : s->len;
	out->flags = CS_F_VALID |
		     (wc || (s->flags & CS_SF_DIRTY) ? CS_F_DIRTY : 0) |
		     (s->flags & CS_SF_PINNED ? CS_F_PINNED : 0);
	out->last_use = s->last_use;
	out->slot = slot;
}

static int
present(const struct cs_slot *s)
{
	return (s->flags & CS_SF_USED) &&
	       ((s->flags & CS_SF_COMMITTED) || s->wc);
}

/* ---- create, open, close ---- */

static void
fill_limits(struct cs_limits *dst, const struct cs_limits *src)
{
	if (!src)
		return;
	if (src->max_bytes)
		dst->max_bytes = src->max_bytes;
	if (src->max_files)
		dst->max_files = src->max_files;
	if (src->cull_pct)
		dst->cull_pct = src->cull_pct;
	if (src->run_pct)
		dst->run_pct = src->run_pct;
	if (src->stop_pct)
		dst->stop_pct = src->stop_pct;
}

void
cs_default_limits(struct cs_limits *l, const struct cs_limits *src)
{
	l->max_bytes = CS_DEFAULT_MAX_BYTES;
	l->max_files = 0;
	l->cull_pct = CS_DEFAULT_CULL_PCT;
	l->run_pct = CS_DEFAULT_RUN_PCT;
	l->stop_pct = CS_DEFAULT_STOP_PCT;
	fill_limits(l, src);
	if (!l->max_files)
		l->max_files = l->max_bytes / CS_CHUNK_MIN
				       ? l->max_bytes / CS_CHUNK_MIN
				       : 1;
}

static int
exists_at(int dirfd, const char *path)
{
	struct stat st;

	return fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

int
cs_create(const char *dir, const struct cs_params *p)
{
	cs_log_fn log = p ? p->log : NULL;
	void *log_arg = p ? p->log_arg : NULL;
	uint32_t chunk = p && p->chunk_size ? p->chunk_size : CS_CHUNK_DEFAULT;
	struct cs_limits lim;
	uint8_t buf[CS_HDR_SIZE];
	struct cs_hdr h;
	int dirfd = -1, fd = -1, made_chunks = 0, rc;
	char sub[16];

	if (!dir)
		return -EINVAL;
	cs_default_limits(&lim, p ? &p->limits : NULL);
	if (!cs_valid_chunk_size(chunk) || cs_check_limits(&lim) < 0) {
		cs_logf(log, log_arg, LOG_ERR,
			"cannot create cache '%s': bad chunk size or limits",
			dir);
		return -EINVAL;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		goto fail;
	}
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		rc = -errno;
		goto fail;
	}
	if (exists_at(dirfd, CS_INDEX_NAME) ||
	    exists_at(dirfd, CS_CHUNKS_DIR)) {
		close(dirfd);
		return -EEXIST;
	}
	if ((rc = cs_io_mkdir(dirfd, CS_CHUNKS_DIR, 0700)) < 0)
		goto fail;
	made_chunks = 1;
	for (int i = 0; i < CS_NDIRS; i++) {
		snprintf(sub, sizeof(sub), CS_CHUNKS_DIR "/%02x", i);
		if ((rc = cs_io_mkdir(dirfd, sub, 0700)) < 0)
			goto fail;
	}
	memset(&h, 0, sizeof(h));
	h.version = CS_VERSION;
	h.chunk_size = chunk;
	h.max_bytes = lim.max_bytes;
	h.max_files = lim.max_files;
	h.cull_pct = (uint8_t)lim.cull_pct;
	h.run_pct = (uint8_t)lim.run_pct;
	h.stop_pct = (uint8_t)lim.stop_pct;
	h.clean = 1;
	h.create_time = (uint64_t)time(NULL);
	cs_hdr_encode(&h, buf);
	/* The index goes in last, by rename: its presence means a cache. */
	fd = cs_io_open(dirfd, CS_INDEX_TMP, O_CREAT | O_TRUNC | O_WRONLY,
			0600);
	if (fd < 0) {
		rc = fd;
		goto fail;
	}
	if ((rc = cs_io_pwrite(fd, buf, sizeof(buf), 0)) < 0 ||
	    (rc = cs_io_fsync(fd)) < 0 ||
	    (rc = cs_io_fsync_dir(dirfd, CS_CHUNKS_DIR)) < 0 ||
	    (rc = cs_io_rename(dirfd, CS_INDEX_TMP, CS_INDEX_NAME)) < 0 ||
	    (rc = cs_io_fsync_dir(dirfd, ".")) < 0)
		goto fail;
	close(fd);
	close(dirfd);
	return 0;
fail:
	cs_logf(log, log_arg, LOG_ERR, "cannot create cache '%s': %s", dir,
		strerror(-rc));
	if (fd >= 0)
		close(fd);
	if (dirfd >= 0) {
		unlinkat(dirfd, CS_INDEX_TMP, 0);
		if (made_chunks && !exists_at(dirfd, CS_INDEX_NAME)) {
			for (int i = 0; i < CS_NDIRS; i++) {
				snprintf(sub, sizeof(sub),
					 CS_CHUNKS_DIR "/%02x", i);
				unlinkat(dirfd, sub, AT_REMOVEDIR);
			}
			unlinkat(dirfd, CS_CHUNKS_DIR, AT_REMOVEDIR);
		}
		close(dirfd);
	}
	return rc;
}

struct cs_store *
cs_store_new(const char *dir, cs_log_fn log, void *log_arg, uint32_t nfdc)
{
	struct cs_store *cs = calloc(1, sizeof(*cs));

	if (!cs)
		return NULL;
	if (nfdc == 0)
		nfdc = CS_FD_CACHE_DEFAULT;
	else if (nfdc < CS_FD_CACHE_MIN)
		nfdc = CS_FD_CACHE_MIN;
	else if (nfdc > CS_FD_CACHE_MAX)
		nfdc = CS_FD_CACHE_MAX;
	cs->nfdc = nfdc;
	cs->dir = strdup(dir);
	cs->fdc = calloc(nfdc, sizeof(*cs->fdc));
	if (!cs->dir || !cs->fdc) {
		free(cs->fdc);
		free(cs->dir);
		free(cs);
		return NULL;
	}
	pthread_mutex_init(&cs->lock, NULL);
	pthread_cond_init(&cs->cond, NULL);
	cs->dirfd = cs->idxfd = -1;
	cs->log = log;
	cs->log_arg = log_arg;
	for (uint32_t i = 0; i < cs->nfdc; i++)
		cs->fdc[i].fd = -1;
	cs->readahead = 0; /* measured: no gain, see bench_cs D */
	return cs;
}

void
cs_store_free(struct cs_store *cs)
{
	if (!cs)
		return;
	for (uint32_t i = 0; i < cs->nfdc; i++)
		if (cs->fdc[i].fd >= 0)
			close(cs->fdc[i].fd);
	for (uint32_t i = 0; i < cs->nwcs; i++) {
		if (cs->wcs[i]) {
			close(cs->wcs[i]->fd);
			free(cs->wcs[i]);
		}
	}
	if (cs->idxfd >= 0)
		close(cs->idxfd);
	if (cs->dirfd >= 0)
		close(cs->dirfd);
	free(cs->wcs);
	big_free(cs->slots, (size_t)cs->slots_cap * sizeof(*cs->slots));
	free(cs->freel);
	if (cs->ktab) {
		big_free(cs->ktab, ((size_t)cs->kmask + 1) * sizeof(*cs->ktab));
		big_free(cs->ftab, ((size_t)cs->fmask + 1) * sizeof(*cs->ftab));
	}
	pthread_mutex_destroy(&cs->lock);
	pthread_cond_destroy(&cs->cond);
	free(cs->fdc);
	free(cs->dir);
	free(cs);
}

struct cs_store *
cs_open(const char *dir, const struct cs_params *p, int *err)
{
	struct cs_rctx rc = {.apply = 1};
	struct cs_limits lim;
	struct cs_store *cs;
	int r;

	if (!dir) {
		r = -EINVAL;
		goto fail_nocs;
	}
	cs = cs_store_new(dir, p ? p->log : NULL, p ? p->log_arg : NULL,
			  p ? p->fd_cache : 0);
	if (!cs) {
		r = -ENOMEM;
		goto fail_nocs;
	}
	cs->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cs->dirfd < 0) {
		r = -errno;
		goto fail;
	}
	/* The folder is the lock, so rebuilding the index by rename keeps it.
	 */
	if (flock(cs->dirfd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto fail;
	}
	rc.want_chunk_size = p && p->chunk_size ? p->chunk_size : 0;
	if ((r = cs_load(cs, &rc, O_RDWR)) < 0)
		goto fail;
	if (rc.full || rc.unclean) {
		if ((r = cs_scan(cs, &rc)) < 0 ||
		    (r = cs_reconcile(cs, &rc)) < 0)
			goto fail;
	}
	if ((r = cs_build(cs, &rc)) < 0)
		goto fail;
	lim = cs->lim;
	fill_limits(&lim, p ? &p->limits : NULL);
	if (cs_check_limits(&lim) < 0) {
		cs_log(cs, LOG_WARNING, "ignoring bad limits for cache '%s'",
		       dir);
	} else {
		cs->lim = lim;
	}
	cs->open_count++;
	/* Clean = 0 must be on disk before any chunk file changes. */
	if (rc.full)
		r = cs_write_index_full(cs, 0);
	else if ((r = cs_flush_recs(cs)) == 0 && (r = cs_write_hdr(cs, 0)) == 0)
		r = cs_io_fdatasync(cs->idxfd);
	if (r < 0)
		goto fail;
	cs_rctx_release(&rc);
	if (err)
		*err = 0;
	return cs;
fail:
	if (r != -ENOENT)
		cs_log(cs, LOG_ERR, "cannot open cache '%s': %s", dir,
		       strerror(-r));
	cs_rctx_release(&rc);
	cs_store_free(cs);
fail_nocs:
	if (err)
		*err = r;
	return NULL;
}

void
cs_close(struct cs_store *cs)
{
	int rc = 0;

	if (!cs)
		return;
	for (uint32_t i = 0; i < cs->nwcs; i++) {
		struct cs_wc *wc = cs->wcs[i];
		char path[CS_PATH_MAX];

		if (!wc)
			continue;
		cs_chunk_path(path, wc->slot, CS_WIP_SUFFIX);
		cs_log(cs, LOG_WARNING,
		       "discarding uncommitted working copy '%s' (%u bytes)",
		       path, wc->len);
		close(wc->fd);
		cs_io_unlink(cs->dirfd, path);
		free(wc);
		cs->wcs[i] = NULL;
	}
	if (cs_flush_recs(cs) < 0 || cs->io_error)
		rc = -EIO;
	/* Slots allocated but never written (a failed put, a discarded
	 * working copy) must exist as free records, as the header counts
	 * them: extend the index with zeros, which read as free records. */
	if (!rc) {
		struct stat st;
		off_t want = CS_HDR_SIZE + (off_t)cs->nslots * CS_REC_SIZE;

		if (fstat(cs->idxfd, &st) < 0)
			rc = -errno;
		else if (st.st_size < want)
			rc = cs_io_ftruncate(cs->idxfd, want);
	}
	/* Clean puts were never synced: make every file durable before the
	 * flag tells the next open to trust the index without a scan. */
	if (!rc && syncfs(cs->dirfd) < 0)
		rc = -errno;
	if (!rc && (rc = cs_write_hdr(cs, 1)) == 0)
		rc = cs_io_fdatasync(cs->idxfd);
	if (rc < 0)
		cs_log(cs, LOG_WARNING,
		       "cache '%s' not closed cleanly, next open recovers: %s",
		       cs->dir, strerror(-rc));
	cs_store_free(cs);
}

uint32_t
cs_chunk_size(const struct cs_store *cs)
{
	return cs ? cs->chunk_size : 0;
}

/* ---- lookup and read ---- */

int
cs_lookup(struct cs_store *cs, const struct cs_key *k, struct cs_info *out)
{
	uint32_t slot;
	int rc = -ENOENT;

	if (!cs || !k || !out)
		return -EINVAL;
	pthread_mutex_lock(&cs->lock);
	slot = cs_key_find(cs, k);
	if (slot != CS_NONE && present(&cs->slots[slot])) {
		fill_info(cs, slot, out);
		rc = 0;
	}
	pthread_mutex_unlock(&cs->lock);
	return rc;
}

/*
 * Apply the verdict of cs_verify_buf to slot @slot (lock held): mark it
 * verified, adopt the trailer, rewrite a torn trailer, or drop it.
 * @return 0 if the slot still holds verified content, -EIO if dropped.
 */
static int
apply_verdict(struct cs_store *cs, uint32_t slot, int v, const struct cs_trl *t)
{
	struct cs_slot *s = &cs->slots[slot];
	char path[CS_PATH_MAX], key[96];
	struct cs_key k;

	cs_chunk_path(path, slot, NULL);
	cs_slot_key(s, &k);
	cs_key_str(key, sizeof(key), &k);
	if (v < 0) {
		cs_log(cs, s->flags & CS_SF_DIRTY ? LOG_ERR : LOG_WARNING,
		       "dropping chunk file '%s' (%s)%s: %s", path, key,
		       s->flags & CS_SF_DIRTY ? ", dirty data lost" : "",
		       v == -EIO ? "checksum mismatch" : "bad trailer");
		cs_drop_slot(cs, slot, "checksum mismatch");
		return -EIO;
	}
	if (v == 1) {
		/* The file is newer than its record (a crash between rename
		 * and record write): the trailer is the truth. */
		cs_log(cs, LOG_INFO,
		       "chunk file '%s' newer than its record; adopting its "
		       "tag",
		       path);
		cs_acct(cs, s, -1);
		if (memcmp(&t->key, &k, sizeof(k))) {
			cs_key_remove(cs, slot);
			s->vol = t->key.vol;
			memcpy(s->fid, t->key.fid, 16);
			s->chunk = t->key.chunk;
			if (cs_key_find(cs, &t->key) != CS_NONE ||
			    cs_key_insert(cs, slot) < 0) {
				/* Not in the tables any more: re-add only the
				 * bytes, which cs_drop_slot takes off again. */
				cs_acct(cs, s, 1);
				cs_drop_slot(cs, slot, "duplicate key");
				return -EIO;
			}
		}
		s->dv = t->dv;
		s->len = t->len;
		s->crc = t->crc;
		s->gen = t->gen;
		s->flags =
			(uint16_t)((s->flags & ~(CS_SF_DIRTY | CS_SF_PINNED)) |
				   (t->flags & CS_RF_DIRTY ? CS_SF_DIRTY : 0) |
				   (t->flags & CS_RF_PINNED ? CS_SF_PINNED
							    : 0));
		cs_acct(cs, s, 1);
		cs_fdc_forget(cs, slot);
		cs_write_rec(cs, slot);
	} else if (v == 2) {
		cs_log(cs, LOG_INFO, "rewriting torn trailer of '%s'", path);
		rewrite_trl(cs, slot);
	}
	s->flags |= CS_SF_VERIFIED;
	return 0;
}

/* Read and verify the whole chunk file behind @fd. @return a malloc'd
 * buffer of the file (caller frees) with *size, or NULL and *v < 0. */
static uint8_t *
read_whole(struct cs_store *cs, int fd, size_t *size)
{
	struct stat st;
	uint8_t *buf;
	ssize_t r;

	if (fstat(fd, &st) < 0 || st.st_size < CS_TRL_SIZE ||
	    (uint64_t)st.st_size > (uint64_t)cs->chunk_size + CS_TRL_SIZE)
		return NULL;
	buf = malloc((size_t)st.st_size);
	if (!buf)
		return NULL;
	r = cs_io_pread(fd, buf, (size_t)st.st_size, 0);
	if (r != st.st_size) {
		free(buf);
		return NULL;
	}
	*size = (size_t)st.st_size;
	return buf;
}

/*
 * Lock held. Before a trailer is rewritten in place, the slot's record must
 * be known to describe its file: after a crash the file may be newer than
 * the record (another length), and writing a trailer at the record's
 * length would then cut into the content. Verifies the whole file once.
 * @return 0, or -ENOENT / -EIO when the slot was dropped. The slot may
 * have been re-keyed: callers look their key up again.
 */
static int
ensure_verified(struct cs_store *cs, uint32_t slot)
{
	struct cs_slot *s = &cs->slots[slot];
	struct cs_rec rec;
	struct cs_trl t;
	struct cs_fdref fr;
	uint8_t *whole;
	size_t size = 0;
	int rc, v;

	if (s->flags & CS_SF_VERIFIED)
		return 0;
	if ((rc = cs_fdc_get(cs, slot, &fr)) < 0) {
		if (rc == -ENOENT)
			cs_drop_slot(cs, slot, "file missing");
		return rc;
	}
	whole = read_whole(cs, fr.fd, &size);
	cs_fdc_release(cs, &fr, 1);
	cs_slot_rec(cs, slot, &rec);
	v = whole ? cs_verify_buf(whole, size, slot, cs->shift, &rec, &t)
		  : -EBADMSG;
	free(whole);
	return apply_verdict(cs, slot, v, &t);
}

/* Lock held: verify every committed slot of the file (see above). */
static void
verify_file(struct cs_store *cs, uint32_t vol, const uint8_t fid[16])
{
	uint32_t todo[64], n;

	do {
		n = 0;
		for (uint32_t s = file_find(cs, vol, fid);
		     s != CS_NONE && n < 64; s = cs->slots[s].fnext)
			if ((cs->slots[s].flags &
			     (CS_SF_COMMITTED | CS_SF_VERIFIED)) ==
			    CS_SF_COMMITTED)
				todo[n++] = s;
		/* Each slot ends verified or dropped, so this terminates. */
		for (uint32_t i = 0; i < n; i++)
			ensure_verified(cs, todo[i]);
	} while (n == 64);
}

/*
 * Lock held: after a read that ends at the end of a full chunk, take a
 * hold on the next chunk's cached fd (if it is committed and idle) so the
 * caller can start readahead on it outside the lock. @return 0 if *nx
 * holds an fd.
 */
static int
next_chunk_fd(struct cs_store *cs, const struct cs_key *k, uint64_t dv,
	      struct cs_fdref *nx, uint32_t *len)
{
	struct cs_key nk = *k;
	struct cs_slot *s;
	uint32_t slot;

	nk.chunk++;
	slot = cs_key_find(cs, &nk);
	if (slot == CS_NONE)
		return -ENOENT;
	s = &cs->slots[slot];
	if ((s->flags & (CS_SF_COMMITTED | CS_SF_BUSY)) != CS_SF_COMMITTED ||
	    s->wc || s->dv != dv || !s->len)
		return -ENOENT;
	*len = s->len;
	return cs_fdc_get(cs, slot, nx);
}

ssize_t
cs_read(struct cs_store *cs, const struct cs_key *k, uint64_t dv, uint32_t off,
	void *buf, size_t len)
{
	struct cs_fdref fr = {-1, -1}, nx = {-1, -1};
	struct cs_slot *s;
	struct cs_wc *wc;
	uint32_t slot, end, gen, nlen = 0;
	uint8_t *whole;
	size_t n, size = 0;
	ssize_t r;
	int v;

	if (!cs || !k || (len && !buf))
		return -EINVAL;
	pthread_mutex_lock(&cs->lock);
again:
	slot = cs_key_find(cs, k);
	if (slot == CS_NONE || !present(&cs->slots[slot])) {
		r = -ENOENT;
		goto miss;
	}
	s = &cs->slots[slot];
	wc = slot_wc(cs, s);
	if ((wc ? wc->dv : s->dv) != dv) {
		r = -ESTALE;
		goto miss;
	}
	end = wc ? wc->len : s->len;
	n = off >= end ? 0 : end - off < len ? end - off : len;
	r = 0;
	if (wc) {
		/* Working copies change in place: a private dup, as before. */
		fr.fd = fcntl(wc->fd, F_DUPFD_CLOEXEC, 0);
		if (fr.fd < 0)
			r = -errno;
	} else if (n) {
		r = cs_fdc_get(cs, slot, &fr);
		if (r == -ENOENT) {
			cs_log(cs, LOG_WARNING,
			       "chunk file of slot %u missing; dropping its "
			       "record",
			       slot);
			cs_drop_slot(cs, slot, "file missing");
			goto miss;
		}
	}
	if (r < 0 && n) {
		pthread_mutex_unlock(&cs->lock);
		cs_log(cs, LOG_ERR, "cannot open chunk of slot %u: %s", slot,
		       strerror((int)-r));
		return r;
	}
	if (!wc && n && !(s->flags & CS_SF_VERIFIED)) {
		struct cs_rec rec;
		struct cs_trl t;

		/* First read since open: check the whole file outside the
		 * lock, then apply the verdict if the slot did not change. */
		cs_slot_rec(cs, slot, &rec);
		gen = s->gen;
		pthread_mutex_unlock(&cs->lock);
		whole = read_whole(cs, fr.fd, &size);
		v = whole ? cs_verify_buf(whole, size, slot, cs->shift, &rec,
					  &t)
			  : -EBADMSG;
		cs_fdc_release(cs, &fr, 0);
		pthread_mutex_lock(&cs->lock);
		s = &cs->slots[slot];
		if (!(s->flags & CS_SF_USED) || s->gen != gen ||
		    !(s->flags & CS_SF_COMMITTED) || s->wc ||
		    (s->flags & CS_SF_VERIFIED)) {
			free(whole);
			goto again;
		}
		if (apply_verdict(cs, slot, v, &t) < 0) {
			free(whole);
			cs->misses++;
			pthread_mutex_unlock(&cs->lock);
			return -EIO;
		}
		if (!key_eq(s, k->vol, k->fid, k->chunk) || s->dv != dv) {
			free(whole);
			goto again;
		}
		end = s->len;
		n = off >= end ? 0 : end - off < len ? end - off : len;
		if (n)
			memcpy(buf, whole + off, n);
		free(whole);
		s->last_use = ++cs->clock;
		s->flags |= CS_SF_RECDIRTY;
		cs->hits++;
		pthread_mutex_unlock(&cs->lock);
		return (ssize_t)n;
	}
	s->last_use = ++cs->clock;
	s->flags |= CS_SF_RECDIRTY;
	cs->hits++;
	/* A sequential reader is about to cross into the next chunk: with a
	 * cold page cache its first read would wait for the disk. */
	if (cs->readahead && !wc && n && off + n == end &&
	    end == cs->chunk_size && next_chunk_fd(cs, k, dv, &nx, &nlen) < 0)
		nx.fd = -1;
	pthread_mutex_unlock(&cs->lock);
	if (!n)
		goto out;
	r = cs_io_pread(fr.fd, buf, n, off);
	if (r >= 0 && (size_t)r < n) {
		cs_log(cs, LOG_ERR, "chunk of slot %u shorter than its record",
		       slot);
		r = -EIO;
	}
	if (nx.fd >= 0)
		(void)posix_fadvise(nx.fd, 0, nlen, POSIX_FADV_WILLNEED);
out:
	cs_fdc_release(cs, &fr, 0);
	cs_fdc_release(cs, &nx, 0);
	return r;
miss:
	cs->misses++;
	pthread_mutex_unlock(&cs->lock);
	return r;
}

/* ---- put ---- */

int
cs_put(struct cs_store *cs, const struct cs_key *k, uint64_t dv,
       const void *buf, uint32_t len, unsigned flags)
{
	char tmp[CS_PATH_MAX], path[CS_PATH_MAX], sub[CS_PATH_MAX];
	uint8_t tbuf[CS_TRL_SIZE];
	struct cs_slot *s;
	struct cs_trl t;
	uint32_t slot, crc;
	int fresh = 0, fd = -1, rc, dirty = !!(flags & CS_F_DIRTY);
	uint64_t add, old;

	if (!cs || !k || (len && !buf) || len > cs->chunk_size ||
	    (flags & ~(unsigned)(CS_F_DIRTY | CS_F_PINNED)))
		return -EINVAL;
	crc = cs_crc32c(0, buf, len);
	pthread_mutex_lock(&cs->lock);
	slot = find_idle(cs, k);
	if (slot != CS_NONE) {
		s = &cs->slots[slot];
		/* Local changes are never overwritten by a clean copy (a
		 * fetch that raced a write): the caller must store them or
		 * mark them clean first. */
		if (s->wc || (!dirty && (s->flags & CS_SF_DIRTY))) {
			rc = -EBUSY;
			goto out_unlock;
		}
		old = s->flags & CS_SF_COMMITTED ? s->len : 0;
		add = len > old ? len - old : 0;
		/* Busy first, so the cull below cannot pick this slot. */
		s->flags |= CS_SF_BUSY;
		if ((rc = cs_reserve(cs, add, 0)) < 0) {
			unbusy(cs, slot);
			goto out_unlock;
		}
	} else {
		if ((rc = cs_reserve(cs, len, 1)) < 0 ||
		    (rc = alloc_slot(cs, k, &slot)) < 0)
			goto out_unlock;
		fresh = 1;
		cs->slots[slot].flags |= CS_SF_BUSY;
	}
	s = &cs->slots[slot];
	memset(&t, 0, sizeof(t));
	t.key = *k;
	t.dv = dv;
	t.len = len;
	t.crc = crc;
	t.gen = s->gen + 1;
	t.slot = slot;
	t.flags = (dirty ? CS_RF_DIRTY : 0) |
		  ((flags & CS_F_PINNED) || (s->flags & CS_SF_PINNED)
			   ? CS_RF_PINNED
			   : 0);
	t.shift = cs->shift;
	pthread_mutex_unlock(&cs->lock);

	cs_trl_encode(&t, tbuf);
	cs_chunk_path(tmp, slot, CS_TMP_SUFFIX);
	cs_chunk_path(path, slot, NULL);
	fd = cs_io_open(cs->dirfd, tmp, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	if (fd < 0) {
		rc = fd;
		goto fail_io;
	}
	if ((rc = cs_io_pwrite(fd, buf, len, 0)) < 0 ||
	    (rc = cs_io_pwrite(fd, tbuf, sizeof(tbuf), len)) < 0 ||
	    (dirty && (rc = cs_io_fsync(fd)) < 0))
		goto fail_io;
	close(fd);
	fd = -1;

	pthread_mutex_lock(&cs->lock);
	/* The rename happens under the lock, so a reader that opens the file
	 * by name always finds the generation its slot says. */
	if ((rc = cs_io_rename(cs->dirfd, tmp, path)) < 0) {
		pthread_mutex_unlock(&cs->lock);
		goto fail_io;
	}
	s = &cs->slots[slot];
	cs_acct(cs, s, -1);
	cs_fdc_forget(cs, slot);
	s->dv = dv;
	s->len = len;
	s->crc = crc;
	s->gen = t.gen;
	s->flags = (uint16_t)(CS_SF_USED | CS_SF_COMMITTED | CS_SF_VERIFIED |
			      CS_SF_BUSY | (dirty ? CS_SF_DIRTY : 0) |
			      (t.flags & CS_RF_PINNED ? CS_SF_PINNED : 0));
	s->last_use = ++cs->clock;
	cs_acct(cs, s, 1);
	rc = cs_write_rec(cs, slot);
	unbusy(cs, slot);
	pthread_mutex_unlock(&cs->lock);
	if (dirty) {
		snprintf(sub, sizeof(sub), CS_CHUNKS_DIR "/%02x", slot & 0xff);
		if (rc == 0 && (rc = cs_io_fsync_dir(cs->dirfd, sub)) == 0)
			rc = cs_io_fdatasync(cs->idxfd);
		if (rc < 0)
			cs_log(cs, LOG_ERR, "cannot sync dirty chunk '%s': %s",
			       path, strerror(-rc));
		return rc;
	}
	return 0;

fail_io:
	cs_log(cs, LOG_ERR, "cannot store chunk '%s': %s", path, strerror(-rc));
	if (fd >= 0)
		close(fd);
	unlinkat(cs->dirfd, tmp, 0);
	pthread_mutex_lock(&cs->lock);
	if (fresh)
		unalloc_slot(cs, slot);
	unbusy(cs, slot);
out_unlock:
	pthread_mutex_unlock(&cs->lock);
	return rc;
}

/* ---- working copies ---- */

static int
wc_attach(struct cs_store *cs, uint32_t slot, int fd, uint32_t len, uint64_t dv)
{
	struct cs_wc *wc = calloc(1, sizeof(*wc));
	uint32_t i;

	if (!wc)
		return -ENOMEM;
	for (i = 0; i < cs->nwcs && cs->wcs[i]; i++)
		;
	if (i == cs->nwcs) {
		uint32_t n = cs->nwcs ? cs->nwcs * 2 : 16;
		struct cs_wc **nw = realloc(cs->wcs, n * sizeof(*nw));

		if (!nw) {
			free(wc);
			return -ENOMEM;
		}
		memset(nw + cs->nwcs, 0, (n - cs->nwcs) * sizeof(*nw));
		cs->wcs = nw;
		cs->nwcs = n;
	}
	wc->fd = fd;
	wc->slot = slot;
	wc->len = len;
	wc->dv = dv;
	cs->wcs[i] = wc;
	cs->slots[slot].wc = i + 1;
	return 0;
}

static void
wc_detach(struct cs_store *cs, struct cs_slot *s)
{
	struct cs_wc *wc = slot_wc(cs, s);

	if (!wc)
		return;
	close(wc->fd);
	cs->wcs[s->wc - 1] = NULL;
	free(wc);
	s->wc = 0;
}

/*
 * Make sure chunk @k has a working copy tagged @dv that may grow to @end
 * bytes (lock held, slot not busy). @return 0 and *out, or -errno.
 */
static int
wc_prepare(struct cs_store *cs, const struct cs_key *k, uint64_t dv,
	   uint32_t end, uint32_t *out)
{
	char wip[CS_PATH_MAX];
	struct cs_slot *s;
	struct cs_wc *wc;
	uint32_t slot = cs_key_find(cs, k);
	struct cs_fdref fr;
	uint8_t *whole = NULL;
	size_t size = 0;
	int fd = -1, rc;

	if (slot == CS_NONE || !present(&cs->slots[slot])) {
		if (slot != CS_NONE)
			return -EBUSY; /* a first put is in flight */
		if ((rc = cs_reserve(cs, end, 1)) < 0 ||
		    (rc = alloc_slot(cs, k, &slot)) < 0)
			return rc;
		cs_chunk_path(wip, slot, CS_WIP_SUFFIX);
		fd = cs_io_open(cs->dirfd, wip, O_CREAT | O_TRUNC | O_RDWR,
				0600);
		if (fd < 0 || (rc = wc_attach(cs, slot, fd, 0, dv)) < 0) {
			rc = fd < 0 ? fd : rc;
			if (fd >= 0) {
				close(fd);
				unlinkat(cs->dirfd, wip, 0);
			}
			unalloc_slot(cs, slot);
			cs_log(cs, LOG_ERR,
			       "cannot create working copy '%s': %s", wip,
			       strerror(-rc));
			return rc;
		}
		*out = slot;
		return 0;
	}
	s = &cs->slots[slot];
	wc = slot_wc(cs, s);
	if (wc) {
		if (wc->dv != dv)
			return -ESTALE;
		if (end > wc->len &&
		    (rc = cs_reserve(cs, end - wc->len, 0)) < 0)
			return rc;
		*out = slot;
		return 0;
	}
	if (s->dv != dv)
		return -ESTALE;
	s->flags |= CS_SF_BUSY;
	rc = cs_reserve(
		cs, (uint64_t)s->len + (end > s->len ? end - s->len : 0), 0);
	s->flags &= (uint16_t)~CS_SF_BUSY;
	if (rc < 0)
		return rc;
	/* Copy on write; the committed content is checked on the way. */
	if ((rc = cs_fdc_get(cs, slot, &fr)) < 0)
		goto fail_copy;
	whole = read_whole(cs, fr.fd, &size);
	cs_fdc_release(cs, &fr, 1);
	if (!(s->flags & CS_SF_VERIFIED)) {
		struct cs_rec rec;
		struct cs_trl t;
		int v;

		cs_slot_rec(cs, slot, &rec);
		v = whole ? cs_verify_buf(whole, size, slot, cs->shift, &rec,
					  &t)
			  : -EBADMSG;
		if ((rc = apply_verdict(cs, slot, v, &t)) < 0) {
			free(whole);
			return rc;
		}
		if (!key_eq(s, k->vol, k->fid, k->chunk) || s->dv != dv) {
			free(whole);
			return -ESTALE;
		}
	}
	if (!whole || size < (size_t)s->len + CS_TRL_SIZE) {
		rc = -EIO;
		goto fail_copy;
	}
	cs_chunk_path(wip, slot, CS_WIP_SUFFIX);
	fd = cs_io_open(cs->dirfd, wip, O_CREAT | O_TRUNC | O_RDWR, 0600);
	if (fd < 0) {
		rc = fd;
		goto fail_copy;
	}
	if ((rc = cs_io_pwrite(fd, whole, s->len, 0)) < 0) {
		close(fd);
		unlinkat(cs->dirfd, wip, 0);
		goto fail_copy;
	}
	free(whole);
	whole = NULL;
	cs_acct(cs, s, -1);
	if ((rc = wc_attach(cs, slot, fd, s->len, dv)) < 0) {
		cs_acct(cs, s, 1);
		close(fd);
		unlinkat(cs->dirfd, wip, 0);
		goto fail_copy;
	}
	cs_acct(cs, s, 1);
	*out = slot;
	return 0;
fail_copy:
	free(whole);
	cs_log(cs, LOG_ERR, "cannot make working copy of slot %u: %s", slot,
	       strerror(-rc));
	return rc;
}

int
cs_write(struct cs_store *cs, const struct cs_key *k, uint64_t dv, uint32_t off,
	 const void *buf, size_t len)
{
	struct cs_slot *s;
	struct cs_wc *wc;
	uint32_t slot, end;
	int rc;

	if (!cs || !k || (len && !buf) || (uint64_t)off + len > cs->chunk_size)
		return -EINVAL;
	end = off + (uint32_t)len;
	pthread_mutex_lock(&cs->lock);
	find_idle(cs, k);
	if ((rc = wc_prepare(cs, k, dv, end, &slot)) < 0)
		goto out;
	s = &cs->slots[slot];
	wc = slot_wc(cs, s);
	/* A gap between the old end and @off reads back as zeros (a hole). */
	if (len && (rc = cs_io_pwrite(wc->fd, buf, len, off)) < 0) {
		cs_log(cs, LOG_ERR, "cannot write working copy of slot %u: %s",
		       slot, strerror(-rc));
		if (wc->len < end)
			(void)!ftruncate(wc->fd, wc->len);
		goto out;
	}
	if (end > wc->len) {
		cs_acct(cs, s, -1);
		wc->len = end;
		cs_acct(cs, s, 1);
	}
	s->last_use = ++cs->clock;
	rc = 0;
out:
	pthread_mutex_unlock(&cs->lock);
	return rc;
}

int
cs_truncate(struct cs_store *cs, const struct cs_key *k, uint64_t dv,
	    uint32_t len)
{
	struct cs_slot *s;
	struct cs_wc *wc;
	uint32_t slot;
	int rc;

	if (!cs || !k || len > cs->chunk_size)
		return -EINVAL;
	pthread_mutex_lock(&cs->lock);
	find_idle(cs, k);
	if ((rc = wc_prepare(cs, k, dv, len, &slot)) < 0)
		goto out;
	s = &cs->slots[slot];
	wc = slot_wc(cs, s);
	if ((rc = cs_io_ftruncate(wc->fd, len)) < 0) {
		cs_log(cs, LOG_ERR,
		       "cannot truncate working copy of slot %u: %s", slot,
		       strerror(-rc));
		goto out;
	}
	cs_acct(cs, s, -1);
	wc->len = len;
	cs_acct(cs, s, 1);
	s->last_use = ++cs->clock;
out:
	pthread_mutex_unlock(&cs->lock);
	return rc;
}

/* ---- commit ---- */

struct commit_job {
	uint32_t slot;
	int fd; /* dup of the working copy's fd */
	uint32_t len;
	struct cs_trl t;
	int rc;
};

/* Lock held: mark the slot busy and note what the I/O needs. */
static int
commit_begin(struct cs_store *cs, uint32_t slot, struct commit_job *j)
{
	struct cs_slot *s = &cs->slots[slot];
	struct cs_wc *wc = slot_wc(cs, s);

	memset(j, 0, sizeof(*j));
	j->slot = slot;
	j->fd = fcntl(wc->fd, F_DUPFD_CLOEXEC, 0);
	if (j->fd < 0)
		return -errno;
	j->len = wc->len;
	cs_slot_key(s, &j->t.key);
	j->t.dv = wc->dv;
	j->t.len = wc->len;
	j->t.gen = s->gen + 1;
	j->t.slot = slot;
	j->t.flags = CS_RF_DIRTY | (s->flags & CS_SF_PINNED ? CS_RF_PINNED : 0);
	j->t.shift = cs->shift;
	s->flags |= CS_SF_BUSY;
	return 0;
}

/* No lock: checksum the working copy, append its trailer, fsync it. */
static void
commit_io(struct cs_store *cs, struct commit_job *j, int nosync)
{
	uint8_t tbuf[CS_TRL_SIZE];
	uint8_t *data = malloc(j->len ? j->len : 1);
	ssize_t r;

	if (!data) {
		j->rc = -ENOMEM;
		return;
	}
	r = cs_io_pread(j->fd, data, j->len, 0);
	if (r < 0 || (uint32_t)r != j->len) {
		j->rc = r < 0 ? (int)r : -EIO;
		free(data);
		return;
	}
	j->t.crc = cs_crc32c(0, data, j->len);
	free(data);
	cs_trl_encode(&j->t, tbuf);
	if ((j->rc = cs_io_pwrite(j->fd, tbuf, sizeof(tbuf), j->len)) == 0 &&
	    !nosync)
		j->rc = cs_io_fsync(j->fd);
}

/* Lock held: rename into place and update the slot, or undo. */
static void
commit_finish(struct cs_store *cs, struct commit_job *j)
{
	struct cs_slot *s = &cs->slots[j->slot];
	char wip[CS_PATH_MAX], path[CS_PATH_MAX];

	cs_chunk_path(wip, j->slot, CS_WIP_SUFFIX);
	cs_chunk_path(path, j->slot, NULL);
	if (!j->rc)
		j->rc = cs_io_rename(cs->dirfd, wip, path);
	if (j->rc) {
		/* Cut the trailer off again so later writes past the end
		 * leave zeros, not trailer bytes. */
		(void)!ftruncate(j->fd, j->len);
		cs_log(cs, LOG_ERR, "cannot commit working copy '%s': %s", wip,
		       strerror(-j->rc));
	} else {
		cs_acct(cs, s, -1);
		wc_detach(cs, s);
		cs_fdc_forget(cs, j->slot);
		s->dv = j->t.dv;
		s->len = j->t.len;
		s->crc = j->t.crc;
		s->gen = j->t.gen;
		s->flags |= CS_SF_COMMITTED | CS_SF_DIRTY | CS_SF_VERIFIED;
		cs_acct(cs, s, 1);
		j->rc = cs_write_rec(cs, j->slot);
	}
	close(j->fd);
	unbusy(cs, j->slot);
}

/* Commit jobs @j[0..n) (begun), then sync folders and the index once
 * (unless @nosync: then the commit survives the death of the process,
 * not of the machine). */
static int
commit_run(struct cs_store *cs, struct commit_job *j, uint32_t n, int nosync)
{
	char sub[CS_PATH_MAX];
	uint8_t synced[CS_NDIRS] = {0};
	int rc = 0, done = 0;

	for (uint32_t i = 0; i < n; i++)
		commit_io(cs, &j[i], nosync);
	pthread_mutex_lock(&cs->lock);
	for (uint32_t i = 0; i < n; i++)
		commit_finish(cs, &j[i]);
	pthread_mutex_unlock(&cs->lock);
	for (uint32_t i = 0; i < n; i++) {
		if (j[i].rc) {
			if (!rc)
				rc = j[i].rc;
			continue;
		}
		done++;
		if (nosync || synced[j[i].slot & 0xff]++)
			continue;
		snprintf(sub, sizeof(sub), CS_CHUNKS_DIR "/%02x",
			 j[i].slot & 0xff);
		if ((j[i].rc = cs_io_fsync_dir(cs->dirfd, sub)) < 0 && !rc)
			rc = j[i].rc;
	}
	if (done && !rc && !nosync)
		rc = cs_io_fdatasync(cs->idxfd);
	if (rc < 0)
		cs_log(cs, LOG_ERR, "cannot make commit durable in '%s': %s",
		       cs->dir, strerror(-rc));
	return rc < 0 ? rc : done;
}

int
cs_commit(struct cs_store *cs, const struct cs_key *k)
{
	return cs_commit_flags(cs, k, 0);
}

int
cs_commit_flags(struct cs_store *cs, const struct cs_key *k, unsigned flags)
{
	struct commit_job j;
	uint32_t slot;
	int rc;

	if (!cs || !k || (flags & ~(unsigned)CS_C_NOSYNC))
		return -EINVAL;
	pthread_mutex_lock(&cs->lock);
	slot = find_idle(cs, k);
	if (slot == CS_NONE || !present(&cs->slots[slot])) {
		pthread_mutex_unlock(&cs->lock);
		return -ENOENT;
	}
	if (!cs->slots[slot].wc) {
		pthread_mutex_unlock(&cs->lock);
		return 0;
	}
	rc = commit_begin(cs, slot, &j);
	pthread_mutex_unlock(&cs->lock);
	if (rc < 0)
		return rc;
	rc = commit_run(cs, &j, 1, !!(flags & CS_C_NOSYNC));
	return rc < 0 ? rc : 0;
}

/* Wait until no slot of the file is busy (lock held). @return its head. */
static uint32_t
file_idle(struct cs_store *cs, uint32_t vol, const uint8_t fid[16])
{
	uint32_t head, s;

again:
	head = file_find(cs, vol, fid);
	for (s = head; s != CS_NONE; s = cs->slots[s].fnext) {
		if (cs->slots[s].flags & CS_SF_BUSY) {
			pthread_cond_wait(&cs->cond, &cs->lock);
			goto again;
		}
	}
	return head;
}

int
cs_commit_file(struct cs_store *cs, uint32_t vol, const uint8_t fid[16])
{
	struct commit_job *jobs = NULL;
	uint32_t n = 0, cap = 0, s;
	int rc = 0;

	if (!cs || !fid)
		return -EINVAL;
	pthread_mutex_lock(&cs->lock);
	for (s = file_idle(cs, vol, fid); s != CS_NONE;
	     s = cs->slots[s].fnext) {
		if (!cs->slots[s].wc)
			continue;
		if (n == cap) {
			struct commit_job *nj;

			cap = cap ? cap * 2 : 8;
			nj = realloc(jobs, cap * sizeof(*nj));
			if (!nj) {
				rc = -ENOMEM;
				break;
			}
			jobs = nj;
		}
		if ((rc = commit_begin(cs, s, &jobs[n])) < 0)
			break;
		n++;
	}
	pthread_mutex_unlock(&cs->lock);
	if (n) {
		int r = commit_run(cs, jobs, n, 0);

		if (!rc)
			rc = r;
	}
	free(jobs);
	return rc;
}

int
cs_sync_file(struct cs_store *cs, uint32_t vol, const uint8_t fid[16])
{
	uint32_t *slots = NULL, n = 0, cap = 0, s;
	uint8_t synced[CS_NDIRS] = {0};
	char path[CS_PATH_MAX], sub[CS_PATH_MAX];
	int rc, first = 0;

	if (!cs || !fid)
		return -EINVAL;
	rc = cs_commit_file(cs, vol, fid);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&cs->lock);
	for (s = file_idle(cs, vol, fid); s != CS_NONE;
	     s = cs->slots[s].fnext) {
		if (!(cs->slots[s].flags & CS_SF_DIRTY) ||
		    !(cs->slots[s].flags & CS_SF_COMMITTED))
			continue;
		if (n == cap) {
			uint32_t *ns;

			cap = cap ? cap * 2 : 16;
			ns = realloc(slots, cap * sizeof(*ns));
			if (!ns) {
				first = -ENOMEM;
				break;
			}
			slots = ns;
		}
		slots[n++] = s;
	}
	pthread_mutex_unlock(&cs->lock);
	/* A chunk replaced meanwhile was fsynced by its own commit or is
	 * clean; ENOENT is therefore not an error here. */
	for (uint32_t i = 0; i < n && !first; i++) {
		int fd;

		cs_chunk_path(path, slots[i], NULL);
		fd = cs_io_open(cs->dirfd, path, O_RDONLY, 0);
		if (fd == -ENOENT)
			continue;
		if (fd < 0) {
			first = fd;
			break;
		}
		rc = cs_io_fsync(fd);
		close(fd);
		if (rc < 0 && !first)
			first = rc;
		if (synced[slots[i] & 0xff]++)
			continue;
		snprintf(sub, sizeof(sub), CS_CHUNKS_DIR "/%02x",
			 slots[i] & 0xff);
		if ((rc = cs_io_fsync_dir(cs->dirfd, sub)) < 0 && !first)
			first = rc;
	}
	free(slots);
	if (!first && n)
		first = cs_io_fdatasync(cs->idxfd);
	if (first < 0)
		cs_log(cs, LOG_ERR, "cannot sync the chunks of a file in '%s': %s",
		       cs->dir, strerror(-first));
	return first < 0 ? first : 0;
}

/* ---- retagging, pins, invalidation ---- */

int
cs_mark_clean(struct cs_store *cs, const struct cs_key *k, uint64_t new_dv)
{
	struct cs_slot *s;
	struct cs_wc *wc;
	uint32_t slot;
	int rc;

	if (!cs || !k)
		return -EINVAL;
	pthread_mutex_lock(&cs->lock);
	slot = find_idle(cs, k);
	if (slot != CS_NONE && (cs->slots[slot].flags & CS_SF_COMMITTED)) {
		uint32_t gen = cs->slots[slot].gen;
		uint64_t dv = cs->slots[slot].dv;

		if (ensure_verified(cs, slot) < 0) {
			slot = CS_NONE;
		} else if (cs_key_find(cs, k) != slot ||
			   cs->slots[slot].gen != gen ||
			   cs->slots[slot].dv != dv) {
			/* After a crash the file held newer content than the
			 * record the caller saw: that is not what the server
			 * stored, so do not retag it. */
			rc = -ESTALE;
			goto out;
		}
	}
	if (slot == CS_NONE || !(cs->slots[slot].flags & CS_SF_COMMITTED)) {
		rc = -ENOENT;
		goto out;
	}
	s = &cs->slots[slot];
	wc = slot_wc(cs, s);
	cs_acct(cs, s, -1);
	s->flags &= (uint16_t)~CS_SF_DIRTY;
	s->dv = new_dv;
	if (wc)
		wc->dv = new_dv;
	cs_acct(cs, s, 1);
	/* Trailer first, record second: see "generation" in cs_format.c. */
	rewrite_trl(cs, slot);
	rc = cs_write_rec(cs, slot);
out:
	pthread_mutex_unlock(&cs->lock);
	return rc;
}

int
cs_set_dv_file(struct cs_store *cs, uint32_t vol, const uint8_t fid[16],
	       uint64_t old_dv, uint64_t new_dv)
{
	uint32_t s;
	int n = 0;

	if (!cs || !fid)
		return -EINVAL;
	pthread_mutex_lock(&cs->lock);
	file_idle(cs, vol, fid);
	verify_file(cs, vol, fid);
	for (s = file_idle(cs, vol, fid); s != CS_NONE;
	     s = cs->slots[s].fnext) {
		struct cs_slot *sl = &cs->slots[s];
		struct cs_wc *wc = slot_wc(cs, sl);

		if (wc && wc->dv == old_dv)
			wc->dv = new_dv;
		if (!(sl->flags & CS_SF_COMMITTED) ||
		    (sl->flags & CS_SF_DIRTY) || sl->dv != old_dv)
			continue;
		sl->dv = new_dv;
		rewrite_trl(cs, s);
		cs_write_rec(cs, s);
		n++;
	}
	pthread_mutex_unlock(&cs->lock);
	return n;
}

int
cs_pin_file(struct cs_store *cs, uint32_t vol, const uint8_t fid[16], int pin)
{
	uint32_t s;
	int n = 0;

	if (!cs || !fid)
		return -EINVAL;
	pthread_mutex_lock(&cs->lock);
	file_idle(cs, vol, fid);
	verify_file(cs, vol, fid);
	for (s = file_idle(cs, vol, fid); s != CS_NONE;
	     s = cs->slots[s].fnext) {
		struct cs_slot *sl = &cs->slots[s];

		if (!!(sl->flags & CS_SF_PINNED) == !!pin)
			continue;
		cs_acct(cs, sl, -1);
		if (pin) {
			sl->flags |= CS_SF_PINNED;
		} else {
			sl->flags &= (uint16_t)~CS_SF_PINNED;
			sl->last_use = ++cs->clock;
		}
		cs_acct(cs, sl, 1);
		if (sl->flags & CS_SF_COMMITTED) {
			rewrite_trl(cs, s);
			cs_write_rec(cs, s);
		}
		n++;
	}
	pthread_mutex_unlock(&cs->lock);
	return n;
}

int
cs_invalidate(struct cs_store *cs, uint32_t vol, const uint8_t fid[16],
	      uint64_t below_dv)
{
	uint32_t s, next;
	int n = 0;

	if (!cs || !fid)
		return -EINVAL;
	pthread_mutex_lock(&cs->lock);
	for (s = file_idle(cs, vol, fid); s != CS_NONE; s = next) {
		struct cs_slot *sl = &cs->slots[s];

		/* Dropping unlinks s from the chain: read the next first. The
		 * head's successor is re-linked as head, which is still next.
		 */
		next = sl->fnext;
		if (!(sl->flags & CS_SF_COMMITTED) ||
		    (sl->flags & CS_SF_DIRTY) || sl->wc ||
		    (below_dv != UINT64_MAX && sl->dv >= below_dv))
			continue;
		cs_drop_slot(cs, s, "invalidated");
		n++;
	}
	pthread_mutex_unlock(&cs->lock);
	return n;
}

/* ---- iteration and statistics ---- */

int
cs_iterate(struct cs_store *cs, int (*fn)(const struct cs_info *, void *),
	   void *arg)
{
	struct cs_info batch[256];
	uint32_t i = 0, n;

	if (!cs || !fn)
		return -EINVAL;
	for (;;) {
		pthread_mutex_lock(&cs->lock);
		for (n = 0; i < cs->nslots && n < 256; i++)
			if (present(&cs->slots[i]))
				fill_info(cs, i, &batch[n++]);
		pthread_mutex_unlock(&cs->lock);
		if (!n)
			return 0;
		for (uint32_t j = 0; j < n; j++) {
			int rc = fn(&batch[j], arg);

			if (rc)
				return rc;
		}
	}
}

int
cs_iterate_file(struct cs_store *cs, uint32_t vol, const uint8_t fid[16],
		int (*fn)(const struct cs_info *, void *), void *arg)
{
	struct cs_info *v = NULL;
	uint32_t n = 0, cap = 0, s;
	int rc = 0;

	if (!cs || !fid || !fn)
		return -EINVAL;
	pthread_mutex_lock(&cs->lock);
	for (s = file_find(cs, vol, fid); s != CS_NONE;
	     s = cs->slots[s].fnext) {
		if (!present(&cs->slots[s]))
			continue;
		if (n == cap) {
			struct cs_info *nv;

			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*nv));
			if (!nv) {
				pthread_mutex_unlock(&cs->lock);
				free(v);
				return -ENOMEM;
			}
			v = nv;
		}
		fill_info(cs, s, &v[n++]);
	}
	pthread_mutex_unlock(&cs->lock);
	for (uint32_t i = 0; i < n && !rc; i++)
		rc = fn(&v[i], arg);
	free(v);
	return rc;
}

void
cs_get_stats(struct cs_store *cs, struct cs_stats *st)
{
	if (!st)
		return;
	memset(st, 0, sizeof(*st));
	if (!cs)
		return;
	pthread_mutex_lock(&cs->lock);
	st->bytes_used = cs->bytes_used;
	st->bytes_limit = cs->lim.max_bytes;
	st->files_used = cs->files_used;
	st->files_limit = cs->lim.max_files;
	st->dirty_bytes = cs->dirty_bytes;
	st->pinned_bytes = cs->pinned_bytes;
	st->hits = cs->hits;
	st->misses = cs->misses;
	st->evictions = cs->evictions;
	st->chunk_size = cs->chunk_size;
	pthread_mutex_unlock(&cs->lock);
}

int
cs_set_limits(struct cs_store *cs, const struct cs_limits *l)
{
	struct cs_limits nl;
	int rc;

	if (!cs || !l)
		return -EINVAL;
	pthread_mutex_lock(&cs->lock);
	nl = cs->lim;
	fill_limits(&nl, l);
	if ((rc = cs_check_limits(&nl)) < 0)
		goto out;
	cs->lim = nl;
	if ((rc = cs_write_hdr(cs, 0)) < 0)
		goto out;
	rc = cs_cull_locked(cs, 0, 0);
	rc = rc < 0 ? rc : 0;
out:
	pthread_mutex_unlock(&cs->lock);
	return rc;
}

int
cs_cull(struct cs_store *cs)
{
	int rc;

	if (!cs)
		return -EINVAL;
	pthread_mutex_lock(&cs->lock);
	rc = cs_cull_locked(cs, 0, 0);
	pthread_mutex_unlock(&cs->lock);
	return rc;
}

int
cs_sync(struct cs_store *cs)
{
	int rc;

	if (!cs)
		return -EINVAL;
	pthread_mutex_lock(&cs->lock);
	rc = cs_flush_recs(cs);
	pthread_mutex_unlock(&cs->lock);
	if (rc == 0)
		rc = cs_io_fdatasync(cs->idxfd);
	return rc;
}

int
cs_bench_insert(struct cs_store *cs, uint32_t n)
{
	int rc = 0;

	pthread_mutex_lock(&cs->lock);
	for (uint32_t i = 0; i < n && !rc; i++) {
		struct cs_key k = {.vol = 1, .chunk = 0};
		uint32_t slot;

		memcpy(k.fid, &i, sizeof(i));
		if ((rc = alloc_slot(cs, &k, &slot)) < 0)
			break;
		cs->files_used--;
		cs->slots[slot].flags |= CS_SF_COMMITTED | CS_SF_RECDIRTY;
		cs->slots[slot].len = 16;
		cs->slots[slot].last_use = ++cs->clock;
		cs_acct(cs, &cs->slots[slot], 1);
	}
	if (!rc)
		rc = cs_flush_recs(cs);
	pthread_mutex_unlock(&cs->lock);
	return rc;
}
