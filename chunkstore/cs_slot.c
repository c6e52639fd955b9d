/*
 * cs_slot.c - the store handle and its slots: allocation and release,
 * accounting, index records and header writes, dropping a chunk, and
 * judging a chunk file against its record (what a read, a commit and
 * recovery all need).
 *
 * It sits below culling, recovery and the public operations, which all
 * call it; it calls none of them. The caller holds cs->lock unless a
 * function says otherwise.
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

struct cs_wc *
cs_slot_wc(const struct cs_store *cs, const struct cs_slot *s)
{
	return s->wc ? cs->wcs[s->wc - 1] : NULL;
}

/* Add (@sign 1) or remove (-1) slot @s's share of the counters. */
void
cs_acct(struct cs_store *cs, const struct cs_slot *s, int sign)
{
	const struct cs_wc *wc = cs_slot_wc(cs, s);
	uint64_t com = s->flags & CS_SF_COMMITTED ? s->len : 0;
	uint64_t w = wc ? wc->len : 0;
	/* A dirty chunk with a working copy: the copy is its next version,
	 * not more dirty data (review 10, finding 6), so its larger length
	 * counts; a clean chunk's copy is dirty on its own. */
	uint64_t dirty = !(s->flags & CS_SF_DIRTY) ? w
			 : wc			  ? (com > w ? com : w)
						  : com;
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
 * Keep @slot's committed file as a spare (struct cs_store spare): rename
 * it to the slot's .tmp name and empty it. Only for a clean file no
 * reader holds: the inode is written again by the next put, and a reader
 * must never see those bytes as this chunk's. @return 1 if kept.
 */
static int
keep_spare(struct cs_store *cs, uint32_t slot, const char *path)
{
	struct cs_slot *s = &cs->slots[slot];
	char tmp[CS_PATH_MAX];
	int fd;

	if (!cs->spare || cs->nspare >= CS_SPARE_MAX ||
	    (s->flags & CS_SF_DIRTY) || cs_fdc_held(cs, slot))
		return 0;
	cs_chunk_path(tmp, slot, CS_TMP_SUFFIX);
	if (cs_io_rename(cs->dirfd, path, tmp) < 0)
		return 0;
	/* Empty, so a spare holds no disk space the limits do not see. */
	fd = cs_io_open(cs->dirfd, tmp, O_WRONLY | O_TRUNC | O_CLOEXEC, 0);
	if (fd < 0) {
		cs_io_unlink(cs->dirfd, tmp);
		return 1; /* the file is gone either way; no spare */
	}
	close(fd);
	cs->spare[cs->nspare++] = slot;
	return 2;
}

/*
 * Remove committed slot @slot (no working copy, not busy): unlink its file
 * (or keep it as a spare under its .tmp name) first, then free the record,
 * so a crash in between leaves a record whose file is missing, which
 * recovery drops (and a .tmp, which it removes).
 */
int
cs_drop_slot(struct cs_store *cs, uint32_t slot, const char *why)
{
	struct cs_slot *s = &cs->slots[slot];
	char path[CS_PATH_MAX];
	int rc = 0, kept;

	cs_chunk_path(path, slot, NULL);
	cs_fdc_forget(cs, slot);
	kept = keep_spare(cs, slot, path);
	if (!kept)
		rc = cs_io_unlink(cs->dirfd, path);
	if (rc < 0)
		/* The file stays as an orphan; an unclean open re-adopts it
		 * and a later read judges it again. */
		cs_log(cs, LOG_WARNING,
		       "cannot remove chunk file '%s' (%s): %s", path, why,
		       strerror(-rc));
	cs_acct(cs, s, -1);
	cs_key_remove(cs, slot);
	s->flags = 0;
	s->len = 0;
	cs_write_rec(cs, slot);
	if (kept != 2)
		push_free(cs, slot);
	return 0;
}

int
cs_alloc_slot_spare(struct cs_store *cs, const struct cs_key *k, uint32_t *out,
		    int *spare)
{
	uint32_t slot;
	int rc;

	*spare = 0;
	if (!cs->nspare)
		return cs_alloc_slot(cs, k, out);
	/* cs_alloc_slot takes the free list's top: put the spare there. */
	slot = cs->spare[--cs->nspare];
	push_free(cs, slot);
	if ((rc = cs_alloc_slot(cs, k, out)) < 0)
		return rc; /* the slot stays free; its .tmp is reused later */
	*spare = *out == slot;
	return 0;
}

int
cs_make_spares(struct cs_store *cs, unsigned n, unsigned target)
{
	char tmp[CS_PATH_MAX];
	unsigned made = 0;
	uint32_t slot;
	int fd, rc = 0;

	if (!cs)
		return -EINVAL;
	if (target > CS_SPARE_MAX)
		target = CS_SPARE_MAX;
	while (made < n) {
		pthread_mutex_lock(&cs->lock);
		if (!cs->spare || cs->nspare >= target) {
			pthread_mutex_unlock(&cs->lock);
			break;
		}
		/* The slot leaves the free list (or is new) and is on no list
		 * while its file is made: nothing else can take it. */
		if (cs->nfree) {
			slot = cs->freel[--cs->nfree];
		} else {
			slot = cs->nslots;
			if (slot >= CS_MAX_SLOTS ||
			    (rc = cs_slot_grow(cs, slot + 1)) < 0) {
				pthread_mutex_unlock(&cs->lock);
				rc = rc < 0 ? rc : -ENOSPC;
				break;
			}
		}
		pthread_mutex_unlock(&cs->lock);
		/* Empty, like a spare kept from a dropped chunk; a crash
		 * leaves a .tmp, which recovery removes. */
		cs_chunk_path(tmp, slot, CS_TMP_SUFFIX);
		fd = cs_io_open(cs->dirfd, tmp,
				O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
		pthread_mutex_lock(&cs->lock);
		if (fd < 0) {
			push_free(cs, slot);
			pthread_mutex_unlock(&cs->lock);
			rc = fd;
			break;
		}
		close(fd);
		/* Another thread (a store thread of this or another volume's
		 * fetch engine: they share the store) may have filled the
		 * list while the lock was dropped: the array holds
		 * CS_SPARE_MAX, so a spare past that goes back. */
		if (cs->nspare >= target) {
			cs_io_unlink(cs->dirfd, tmp);
			push_free(cs, slot);
			pthread_mutex_unlock(&cs->lock);
			break;
		}
		cs->spare[cs->nspare++] = slot;
		pthread_mutex_unlock(&cs->lock);
		made++;
	}
	return made ? (int)made : rc;
}

void
cs_spare_drain(struct cs_store *cs)
{
	char tmp[CS_PATH_MAX];

	while (cs->nspare) {
		uint32_t slot = cs->spare[--cs->nspare];

		cs_chunk_path(tmp, slot, CS_TMP_SUFFIX);
		cs_io_unlink(cs->dirfd, tmp);
		push_free(cs, slot);
	}
}

int
cs_alloc_slot(struct cs_store *cs, const struct cs_key *k, uint32_t *out)
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

/* Give back a slot from cs_alloc_slot that never got content. */
void
cs_unalloc_slot(struct cs_store *cs, uint32_t slot)
{
	cs->files_used--;
	cs_key_remove(cs, slot);
	cs->slots[slot].flags = 0;
	push_free(cs, slot);
}

/* Find @k, waiting while a put or commit is between its steps. */
uint32_t
cs_find_idle(struct cs_store *cs, const struct cs_key *k)
{
	uint32_t slot;

	while ((slot = cs_key_find(cs, k)) != CS_NONE &&
	       (cs->slots[slot].flags & CS_SF_BUSY))
		pthread_cond_wait(&cs->cond, &cs->lock);
	return slot;
}

void
cs_unbusy(struct cs_store *cs, uint32_t slot)
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
int
cs_rewrite_trl(struct cs_store *cs, uint32_t slot)
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

void
cs_fill_info(const struct cs_store *cs, uint32_t slot, struct cs_info *out)
{
	const struct cs_slot *s = &cs->slots[slot];
	const struct cs_wc *wc = cs_slot_wc(cs, s);

	memset(out, 0, sizeof(*out));
	cs_slot_key(s, &out->key);
	out->dv = wc ? wc->dv : s->dv;
	out->len = wc ? wc->len : s->len;
	out->flags = CS_F_VALID |
		     (wc || (s->flags & CS_SF_DIRTY) ? CS_F_DIRTY : 0) |
		     (s->flags & CS_SF_PINNED ? CS_F_PINNED : 0);
	out->last_use = s->last_use;
	out->slot = slot;
	out->gen = s->gen;
}

int
cs_slot_present(const struct cs_slot *s)
{
	return (s->flags & CS_SF_USED) &&
	       ((s->flags & CS_SF_COMMITTED) || s->wc);
}

void
cs_fill_limits(struct cs_limits *dst, const struct cs_limits *src)
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
	cs_fill_limits(l, src);
	if (!l->max_files)
		l->max_files = l->max_bytes / CS_CHUNK_MIN
				       ? l->max_bytes / CS_CHUNK_MIN
				       : 1;
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
	free(cs->spare);
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
	cs_big_free(cs->slots, (size_t)cs->slots_cap * sizeof(*cs->slots));
	free(cs->freel);
	if (cs->ktab) {
		cs_big_free(cs->ktab, ((size_t)cs->kmask + 1) * sizeof(*cs->ktab));
		cs_big_free(cs->ftab, ((size_t)cs->fmask + 1) * sizeof(*cs->ftab));
	}
	pthread_mutex_destroy(&cs->lock);
	pthread_cond_destroy(&cs->cond);
	free(cs->fdc);
	free(cs->dir);
	free(cs);
}

/*
 * Apply the verdict of cs_verify_buf to slot @slot (lock held): mark it
 * verified, adopt the trailer, rewrite a torn trailer, or drop it.
 * @return 0 if the slot still holds verified content, -EIO if dropped.
 */
int
cs_apply_verdict(struct cs_store *cs, uint32_t slot, int v, const struct cs_trl *t)
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
		cs_rewrite_trl(cs, slot);
	}
	s->flags |= CS_SF_VERIFIED;
	return 0;
}

/* Read and verify the whole chunk file behind @fd. @return a malloc'd
 * buffer of the file (caller frees) with *size, or NULL and *v < 0. */
uint8_t *
cs_read_whole(struct cs_store *cs, int fd, size_t *size)
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

/* Wait until no slot of the file is busy (lock held). @return its head. */
uint32_t
cs_file_idle(struct cs_store *cs, uint32_t vol, const uint8_t fid[16])
{
	uint32_t head, s;

again:
	head = cs_file_find(cs, vol, fid);
	for (s = head; s != CS_NONE; s = cs->slots[s].fnext) {
		if (cs->slots[s].flags & CS_SF_BUSY) {
			pthread_cond_wait(&cs->cond, &cs->lock);
			goto again;
		}
	}
	return head;
}
