/*
 * cs_txn.c - the chunk store's transactional writes: cs_put (a whole chunk
 * at once), working copies (cs_write, cs_truncate) and their commit
 * (cs_commit*, cs_sync_file): temp file or .wip, fsync, rename, then the
 * index record, in the order cs_format.c explains.
 *
 * The slow steps run without cs->lock, the slot marked CS_SF_BUSY.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
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

/* ---- put ---- */

static int put(struct cs_store *cs, const struct cs_key *k, uint64_t dv,
	       const void *buf, uint32_t len, unsigned flags, uint32_t crc);

int
cs_put(struct cs_store *cs, const struct cs_key *k, uint64_t dv,
       const void *buf, uint32_t len, unsigned flags)
{
	if (len && !buf)
		return -EINVAL;
	return put(cs, k, dv, buf, len, flags, crc32c(0, buf, len));
}

int
cs_put_crc(struct cs_store *cs, const struct cs_key *k, uint64_t dv,
	   const void *buf, uint32_t len, unsigned flags, uint32_t crc)
{
	return put(cs, k, dv, buf, len, flags, crc);
}

static int
put(struct cs_store *cs, const struct cs_key *k, uint64_t dv, const void *buf,
    uint32_t len, unsigned flags, uint32_t crc)
{
	char tmp[CS_PATH_MAX], path[CS_PATH_MAX], sub[CS_PATH_MAX];
	uint8_t tbuf[CS_TRL_SIZE];
	struct cs_slot *s;
	struct cs_trl t;
	uint32_t slot;
	int fresh = 0, fd = -1, rc, dirty = !!(flags & CS_F_DIRTY);
	uint64_t add, old;

	if (!cs || !k || (len && !buf) || len > cs->chunk_size ||
	    (flags & ~(unsigned)(CS_F_DIRTY | CS_F_PINNED)))
		return -EINVAL;
	pthread_mutex_lock(&cs->lock);
	slot = cs_find_idle(cs, k);
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
			cs_unbusy(cs, slot);
			goto out_unlock;
		}
	} else {
		int spare;

		if ((rc = cs_reserve(cs, len, 1)) < 0 ||
		    (rc = cs_alloc_slot_spare(cs, k, &slot, &spare)) < 0)
			goto out_unlock;
		cs->spare_reuses += (uint64_t)spare;
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
	cs_unbusy(cs, slot);
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
		cs_unalloc_slot(cs, slot);
	cs_unbusy(cs, slot);
out_unlock:
	pthread_mutex_unlock(&cs->lock);
	return rc;
}

/* ---- working copies ---- */

struct commit_job;
static int commit_begin(struct cs_store *cs, uint32_t slot,
			struct commit_job *j);
static int commit_run(struct cs_store *cs, struct commit_job *j, uint32_t n,
		      unsigned flags);
static int wc_make_room(struct cs_store *cs, const struct cs_key *k);

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
	cs->nwc++;
	cs->wc_made++;
	return 0;
}

static void
wc_detach(struct cs_store *cs, struct cs_slot *s)
{
	struct cs_wc *wc = cs_slot_wc(cs, s);

	if (!wc)
		return;
	close(wc->fd);
	cs->wcs[s->wc - 1] = NULL;
	free(wc);
	s->wc = 0;
	cs->nwc--;
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

	if (slot == CS_NONE || !cs_slot_present(&cs->slots[slot])) {
		if (slot != CS_NONE)
			return -EBUSY; /* a first put is in flight */
		if ((rc = cs_reserve(cs, end, 1)) < 0 ||
		    (rc = cs_alloc_slot(cs, k, &slot)) < 0)
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
			cs_unalloc_slot(cs, slot);
			cs_log(cs, LOG_ERR,
			       "cannot create working copy '%s': %s", wip,
			       strerror(-rc));
			return rc;
		}
		*out = slot;
		return 0;
	}
	s = &cs->slots[slot];
	wc = cs_slot_wc(cs, s);
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
	whole = cs_read_whole(cs, fr.fd, &size);
	cs_fdc_release(cs, &fr, 1);
	if (!(s->flags & CS_SF_VERIFIED)) {
		struct cs_rec rec;
		struct cs_trl t;
		int v;

		cs_slot_rec(cs, slot, &rec);
		v = whole ? cs_verify_buf(whole, size, slot, cs->shift, &rec,
					  &t)
			  : -EBADMSG;
		if ((rc = cs_apply_verdict(cs, slot, v, &t)) < 0) {
			free(whole);
			return rc;
		}
		if (!cs_key_eq(s, k->vol, k->fid, k->chunk) || s->dv != dv) {
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

static int wc_prepare_room(struct cs_store *cs, const struct cs_key *k,
			   uint64_t dv, uint32_t end, uint32_t *out);

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
	if ((rc = wc_prepare_room(cs, k, dv, end, &slot)) < 0)
		goto out;
	s = &cs->slots[slot];
	wc = cs_slot_wc(cs, s);
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
	if ((rc = wc_prepare_room(cs, k, dv, len, &slot)) < 0)
		goto out;
	s = &cs->slots[slot];
	wc = cs_slot_wc(cs, s);
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
	/* the committed content it replaces is dirty and may be on disk
	 * (synced): the new data must be too before the rename */
	bool keep_durable;
	bool synced; /* the working copy's data was fsynced */
};

/* Lock held: mark the slot busy and note what the I/O needs. */
static int
commit_begin(struct cs_store *cs, uint32_t slot, struct commit_job *j)
{
	struct cs_slot *s = &cs->slots[slot];
	struct cs_wc *wc = cs_slot_wc(cs, s);

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
	j->keep_durable =
		(s->flags & (CS_SF_COMMITTED | CS_SF_DIRTY | CS_SF_UNSYNCED)) ==
		(CS_SF_COMMITTED | CS_SF_DIRTY);
	s->flags |= CS_SF_BUSY;
	return 0;
}

/* No lock: checksum the working copy, append its trailer, fsync it
 * (@flags: CS_C_NOSYNC, CS_C_WRITEOUT). */
static void
commit_io(struct cs_store *cs, struct commit_job *j, unsigned flags)
{
	int nosync = !!(flags & CS_C_NOSYNC);
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
	j->t.crc = crc32c(0, data, j->len);
	free(data);
	cs_trl_encode(&j->t, tbuf);
	/* Without sync too, a dirty chunk that may be durable (a close in
	 * writeback mode synced it and logged its store) is replaced only
	 * by data on disk: the rename alone does not order the new file's
	 * data before the name on every file system (ext4 without a
	 * journal, or a rename over a name that was exchanged), and a power
	 * cut would then leave the name on a torn file, which fails its CRC
	 * and is dropped, acknowledged bytes with it. */
	if ((j->rc = cs_io_pwrite(j->fd, tbuf, sizeof(tbuf), j->len)) == 0 &&
	    (!nosync || j->keep_durable)) {
		j->rc = nosync ? cs_io_fdatasync(j->fd) : cs_io_fsync(j->fd);
		j->synced = j->rc == 0;
	} else if (!j->rc && (flags & CS_C_WRITEOUT)) {
		cs_io_writeout(j->fd);
	}
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
		if (j->synced)
			s->flags &= (uint16_t)~CS_SF_UNSYNCED;
		else
			s->flags |= CS_SF_UNSYNCED;
		cs_acct(cs, s, 1);
		j->rc = cs_write_rec(cs, j->slot);
	}
	close(j->fd);
	cs_unbusy(cs, j->slot);
}

/* Commit jobs @j[0..n) (begun), then sync folders and the index once
 * (unless @flags has CS_C_NOSYNC: then the commit survives the death of
 * the process, not of the machine; CS_C_WRITEOUT starts the files'
 * writing to disk). */
static int
commit_run(struct cs_store *cs, struct commit_job *j, uint32_t n,
	   unsigned flags)
{
	int nosync = !!(flags & CS_C_NOSYNC);
	char sub[CS_PATH_MAX];
	uint8_t synced[CS_NDIRS] = {0};
	int rc = 0, done = 0;

	for (uint32_t i = 0; i < n; i++)
		commit_io(cs, &j[i], flags);
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

/*
 * Lock held, @k's slot not busy. Commit the least recently written idle
 * working copy other than @k's without sync (as cs_commit_flags
 * (CS_C_NOSYNC) would: its content stays what readers saw, and is the
 * slot's committed DIRTY content from then on). @space: only one whose
 * slot has a committed file, which the commit frees (the cache is full:
 * cs_reserve failed). The lock is let go meanwhile. @return 1 if one was
 * committed (the caller looks its slot up again), 0 if none could be.
 */
static int
wc_commit_idle(struct cs_store *cs, const struct cs_key *k, bool space)
{
	struct commit_job j;
	uint32_t slot = cs_key_find(cs, k), victim = CS_NONE;
	uint64_t oldest = UINT64_MAX;
	int rc;

	for (uint32_t i = 0; i < cs->nwcs; i++) {
		struct cs_slot *s;

		if (!cs->wcs[i] || cs->wcs[i]->slot == slot)
			continue;
		s = &cs->slots[cs->wcs[i]->slot];
		if (!(s->flags & CS_SF_BUSY) && s->last_use < oldest &&
		    (!space || (s->flags & CS_SF_COMMITTED))) {
			oldest = s->last_use;
			victim = cs->wcs[i]->slot;
		}
	}
	if (victim == CS_NONE || commit_begin(cs, victim, &j) < 0)
		return 0;
	pthread_mutex_unlock(&cs->lock);
	rc = commit_run(cs, &j, 1, CS_C_NOSYNC);
	pthread_mutex_lock(&cs->lock);
	if (rc < 1)
		return 0;
	if (space)
		cs->wc_space_commits++;
	else
		cs->wc_evicts++;
	return 1;
}

/*
 * Lock held, @k's slot not busy. Working copies stay open from their first
 * write to their commit (at the caller's checkpoint), one fd each: when
 * CS_WC_OPEN_MAX are open and @k has none, commit the least recently
 * written idle one. A soft bound: threads that find CS_WC_OPEN_MAX - 1
 * open at once may each open one (the lock is let go during a commit), and
 * when every copy is busy or the commit fails the write opens one all the
 * same; so open copies exceed the bound by at most about the number of
 * writing threads. @return 1 if one was committed, else 0.
 */
static int
wc_make_room(struct cs_store *cs, const struct cs_key *k)
{
	uint32_t slot;

	if (cs->nwc < CS_WC_OPEN_MAX)
		return 0;
	slot = cs_key_find(cs, k);
	if (slot != CS_NONE && cs->slots[slot].wc)
		return 0;
	return wc_commit_idle(cs, k, false);
}

/*
 * wc_prepare(), and when the cache is full (-ENOSPC), commit idle working
 * copies of other chunks first, which frees their old committed files,
 * and try again. Lock held.
 */
static int
wc_prepare_room(struct cs_store *cs, const struct cs_key *k, uint64_t dv,
		uint32_t end, uint32_t *out)
{
	int rc;

	cs_find_idle(cs, k);
	if (wc_make_room(cs, k))
		cs_find_idle(cs, k);
	rc = wc_prepare(cs, k, dv, end, out);
	for (int n = 0; rc == -ENOSPC && n < CS_WC_OPEN_MAX &&
			wc_commit_idle(cs, k, true);
	     n++) {
		cs_find_idle(cs, k);
		rc = wc_prepare(cs, k, dv, end, out);
	}
	return rc;
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

	if (!cs || !k || (flags & ~(unsigned)(CS_C_NOSYNC | CS_C_WRITEOUT)))
		return -EINVAL;
	pthread_mutex_lock(&cs->lock);
	slot = cs_find_idle(cs, k);
	if (slot == CS_NONE || !cs_slot_present(&cs->slots[slot])) {
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
	rc = commit_run(cs, &j, 1, flags);
	return rc < 0 ? rc : 0;
}

int
cs_commit_file(struct cs_store *cs, uint32_t vol, const uint8_t fid[16])
{
	return cs_commit_file_flags(cs, vol, fid, 0);
}

int
cs_commit_file_flags(struct cs_store *cs, uint32_t vol, const uint8_t fid[16],
		     unsigned flags)
{
	struct commit_job *jobs = NULL;
	uint32_t n = 0, cap = 0, s;
	int rc = 0;

	if (!cs || !fid || (flags & ~(unsigned)(CS_C_NOSYNC | CS_C_WRITEOUT)))
		return -EINVAL;
	pthread_mutex_lock(&cs->lock);
	for (s = cs_file_idle(cs, vol, fid); s != CS_NONE;
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
		int r = commit_run(cs, jobs, n, flags);

		if (!rc)
			rc = r;
	}
	free(jobs);
	return rc;
}

int
cs_sync_file(struct cs_store *cs, uint32_t vol, const uint8_t fid[16])
{
	struct cs_key k;

	if (!cs || !fid)
		return -EINVAL;
	memset(&k, 0, sizeof(k));
	k.vol = vol;
	memcpy(k.fid, fid, 16);
	return cs_sync_files(cs, &k, 1);
}

int
cs_sync_files(struct cs_store *cs, const struct cs_key *keys, size_t nk)
{
	uint32_t *slots = NULL, *gens = NULL, n = 0, cap = 0, s;
	uint8_t synced[CS_NDIRS] = {0};
	char path[CS_PATH_MAX], sub[CS_PATH_MAX];
	int rc, first = 0;

	if (!cs || (nk && !keys))
		return -EINVAL;
	for (size_t f = 0; f < nk; f++) {
		rc = cs_commit_file(cs, keys[f].vol, keys[f].fid);
		if (rc < 0)
			return rc;
	}
	pthread_mutex_lock(&cs->lock);
	for (size_t f = 0; f < nk && !first; f++) {
		for (s = cs_file_idle(cs, keys[f].vol, keys[f].fid);
		     s != CS_NONE; s = cs->slots[s].fnext) {
			if (!(cs->slots[s].flags & CS_SF_DIRTY) ||
			    !(cs->slots[s].flags & CS_SF_COMMITTED))
				continue;
			if (n == cap) {
				uint32_t *ns, *ng;

				cap = cap ? cap * 2 : 16;
				ns = realloc(slots, cap * sizeof(*ns));
				if (ns)
					slots = ns;
				ng = ns ? realloc(gens, cap * sizeof(*ng))
					: NULL;
				if (ng)
					gens = ng;
				if (!ns || !ng) {
					first = -ENOMEM;
					break;
				}
			}
			gens[n] = cs->slots[s].gen;
			slots[n++] = s;
		}
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
		if (rc == 0) {
			/* The file of that generation (or a newer one, which
			 * keeps its own flag) is on disk now. */
			pthread_mutex_lock(&cs->lock);
			if (cs->slots[slots[i]].gen == gens[i])
				cs->slots[slots[i]].flags &=
					(uint16_t)~CS_SF_UNSYNCED;
			pthread_mutex_unlock(&cs->lock);
		}
		if (synced[slots[i] & 0xff]++)
			continue;
		snprintf(sub, sizeof(sub), CS_CHUNKS_DIR "/%02x",
			 slots[i] & 0xff);
		if ((rc = cs_io_fsync_dir(cs->dirfd, sub)) < 0 && !first)
			first = rc;
	}
	free(slots);
	free(gens);
	if (!first && n)
		first = cs_io_fdatasync(cs->idxfd);
	if (first < 0)
		cs_log(cs, LOG_ERR, "cannot sync the chunks of a file in '%s': %s",
		       cs->dir, strerror(-first));
	return first < 0 ? first : 0;
}
