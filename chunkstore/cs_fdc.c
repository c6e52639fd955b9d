/*
 * cs_fdc.c - the read fd cache: open read-only fds of committed chunk
 * files, so a read costs a lookup and a pread, not an open and a close.
 * The lifetime rules are at struct cs_fdc_ent in cs_i.h.
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
	cs->nunmapped++;
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
	/* O_NOATIME: a read does not dirty the chunk file's inode (with
	 * relatime the first read after a store did, once a file: a warm
	 * read of 4,096 chunks left 4,096 inodes for writeback to write
	 * while the next reads waited for the disk). Permitted since the
	 * store's files are ours; EPERM (another owner) falls back. */
	fd = openat(cs->dirfd, path, O_RDONLY | O_CLOEXEC | O_NOATIME);
	if (fd < 0 && errno == EPERM)
		fd = openat(cs->dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	cs->fdc_opens++;
	if ((i = fdc_victim(cs)) < 0) {
		out->fd = fd;
		out->ent = -1;
		__atomic_add_fetch(&cs->nprivate, 1, __ATOMIC_ACQ_REL);
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
		if (r->fd >= 0) {
			close(r->fd);
			__atomic_sub_fetch(&cs->nprivate, 1, __ATOMIC_ACQ_REL);
		}
	} else {
		e = &cs->fdc[r->ent];
		if (__atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) == 0) {
			/* Unmapped while we read: ours was the last hold. */
			if (!locked)
				pthread_mutex_lock(&cs->lock);
			fdc_free(e);
			cs->nunmapped--;
			if (!locked)
				pthread_mutex_unlock(&cs->lock);
		}
	}
	r->fd = -1;
	r->ent = -1;
}

/* Lock held: after cs_fdc_forget(@slot), any entry still open for the
 * slot is a reader's, and a private fd could be of any file. Conservative:
 * an entry of an older generation (another file) counts too. */
int
cs_fdc_held(struct cs_store *cs, uint32_t slot)
{
	if (__atomic_load_n(&cs->nprivate, __ATOMIC_ACQUIRE))
		return 1;
	/* The usual case: every open entry is mapped, none of them the
	 * slot's (it was just forgotten). */
	if (!cs->nunmapped)
		return 0;
	for (uint32_t i = 0; i < cs->nfdc; i++)
		if (cs->fdc[i].fd >= 0 && cs->fdc[i].slot == slot)
			return 1;
	return 0;
}
