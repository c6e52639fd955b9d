/*
 * cs_store.c - the chunk store's public operations: create, open, close,
 * lookup, read, retagging, pins, invalidation, iteration and statistics.
 *
 * It decides nothing about the byte layout (cs_format.c), recovery
 * (cs_recover.c), which chunks to evict (cs_cull.c) or how a write becomes
 * durable (cs_txn.c); the index (cs_hash.c), the slots (cs_slot.c) and the
 * read fd cache (cs_fdc.c) sit below all of them. One mutex guards the
 * in-memory index; reads of chunk data and the slow steps of a put or
 * commit (writing and fsyncing the file) run outside it, with the slot
 * marked CS_SF_BUSY so nobody else changes it meanwhile.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
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
	cs_fill_limits(&lim, p ? &p->limits : NULL);
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
	/* Spare files only in an open store (not cs_check's), which
	 * cs_close drains; without the array, dropped files are unlinked. */
	cs->spare = malloc(CS_SPARE_MAX * sizeof(*cs->spare));
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
	cs_spare_drain(cs);
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
	if (slot != CS_NONE && cs_slot_present(&cs->slots[slot])) {
		cs_fill_info(cs, slot, out);
		rc = 0;
	}
	pthread_mutex_unlock(&cs->lock);
	return rc;
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
	whole = cs_read_whole(cs, fr.fd, &size);
	cs_fdc_release(cs, &fr, 1);
	cs_slot_rec(cs, slot, &rec);
	v = whole ? cs_verify_buf(whole, size, slot, cs->shift, &rec, &t)
		  : -EBADMSG;
	free(whole);
	return cs_apply_verdict(cs, slot, v, &t);
}

/* Lock held: verify every committed slot of the file (see above). */
static void
verify_file(struct cs_store *cs, uint32_t vol, const uint8_t fid[16])
{
	uint32_t todo[64], n;

	do {
		n = 0;
		for (uint32_t s = cs_file_find(cs, vol, fid);
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

int
cs_willneed(struct cs_store *cs, const struct cs_key *k, uint64_t dv)
{
	struct cs_fdref fr = {-1, -1};
	struct cs_slot *s;
	struct cs_wc *wc;
	uint32_t slot, len = 0;

	if (!cs || !k)
		return -EINVAL;
	pthread_mutex_lock(&cs->lock);
	slot = cs_key_find(cs, k);
	if (slot == CS_NONE || !cs_slot_present(&cs->slots[slot])) {
		pthread_mutex_unlock(&cs->lock);
		return -ENOENT;
	}
	s = &cs->slots[slot];
	wc = cs_slot_wc(cs, s);
	if ((wc ? wc->dv : s->dv) != dv) {
		pthread_mutex_unlock(&cs->lock);
		return -ENOENT;
	}
	if (!wc &&
	    (s->flags & (CS_SF_COMMITTED | CS_SF_BUSY)) == CS_SF_COMMITTED &&
	    s->len && cs_fdc_get(cs, slot, &fr) == 0)
		len = s->len;
	pthread_mutex_unlock(&cs->lock);
	if (fr.fd >= 0) {
		(void)posix_fadvise(fr.fd, 0, len, POSIX_FADV_WILLNEED);
		cs_fdc_release(cs, &fr, 0);
	}
	return 0;
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
	if (slot == CS_NONE || !cs_slot_present(&cs->slots[slot])) {
		r = -ENOENT;
		goto miss;
	}
	s = &cs->slots[slot];
	wc = cs_slot_wc(cs, s);
	if ((wc ? wc->dv : s->dv) != dv) {
		r = -ESTALE;
		goto miss;
	}
	end = wc ? wc->len : s->len;
	n = off >= end ? 0 : end - off < len ? end - off : len;
	r = 0;
	if (wc) {
		/* Working copies change in place: a private dup. Counted
		 * with the private fds: a commit makes this inode the
		 * chunk's file, which a later drop must not empty into a
		 * spare while this read may still be on its way to it. */
		fr.fd = fcntl(wc->fd, F_DUPFD_CLOEXEC, 0);
		fr.ent = -2;
		if (fr.fd < 0)
			r = -errno;
		else
			__atomic_add_fetch(&cs->nprivate, 1, __ATOMIC_ACQ_REL);
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
		whole = cs_read_whole(cs, fr.fd, &size);
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
		if (cs_apply_verdict(cs, slot, v, &t) < 0) {
			free(whole);
			cs->misses++;
			pthread_mutex_unlock(&cs->lock);
			return -EIO;
		}
		if (!cs_key_eq(s, k->vol, k->fid, k->chunk) || s->dv != dv) {
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
	slot = cs_find_idle(cs, k);
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
	wc = cs_slot_wc(cs, s);
	cs_acct(cs, s, -1);
	/* An open working copy may hold bytes written after the committed
	 * file's, and the store may have staged them (cs_read prefers the
	 * copy): the committed file is not what the server has at @new_dv.
	 * Retag only; it stays DIRTY, so a kill -9 that discards the copy
	 * leaves older bytes DIRTY (at worst stored again), never CLEAN at
	 * a DV whose content is the copy's. */
	if (!wc)
		s->flags &= (uint16_t)~CS_SF_DIRTY;
	s->dv = new_dv;
	if (wc)
		wc->dv = new_dv;
	cs_acct(cs, s, 1);
	/* Trailer first, record second: see "generation" in cs_format.c. */
	cs_rewrite_trl(cs, slot);
	rc = cs_write_rec(cs, slot);
out:
	pthread_mutex_unlock(&cs->lock);
	return rc;
}

static int
retag_file(struct cs_store *cs, uint32_t vol, const uint8_t fid[16],
	   uint64_t old_dv, uint64_t new_dv, bool dirty_too)
{
	uint32_t s;
	int n = 0;

	if (!cs || !fid)
		return -EINVAL;
	pthread_mutex_lock(&cs->lock);
	cs_file_idle(cs, vol, fid);
	verify_file(cs, vol, fid);
	for (s = cs_file_idle(cs, vol, fid); s != CS_NONE;
	     s = cs->slots[s].fnext) {
		struct cs_slot *sl = &cs->slots[s];
		struct cs_wc *wc = cs_slot_wc(cs, sl);

		if (wc && wc->dv == old_dv)
			wc->dv = new_dv;
		if (!(sl->flags & CS_SF_COMMITTED) ||
		    ((sl->flags & CS_SF_DIRTY) && !dirty_too) ||
		    sl->dv != old_dv)
			continue;
		sl->dv = new_dv;
		cs_rewrite_trl(cs, s);
		cs_write_rec(cs, s);
		n++;
	}
	pthread_mutex_unlock(&cs->lock);
	return n;
}

int
cs_set_dv_file(struct cs_store *cs, uint32_t vol, const uint8_t fid[16],
	       uint64_t old_dv, uint64_t new_dv)
{
	return retag_file(cs, vol, fid, old_dv, new_dv, false);
}

int
cs_retag_file(struct cs_store *cs, uint32_t vol, const uint8_t fid[16],
	      uint64_t old_dv, uint64_t new_dv)
{
	return retag_file(cs, vol, fid, old_dv, new_dv, true);
}

int
cs_pin_file(struct cs_store *cs, uint32_t vol, const uint8_t fid[16], int pin)
{
	uint32_t s;
	int n = 0;

	if (!cs || !fid)
		return -EINVAL;
	pthread_mutex_lock(&cs->lock);
	cs_file_idle(cs, vol, fid);
	verify_file(cs, vol, fid);
	for (s = cs_file_idle(cs, vol, fid); s != CS_NONE;
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
			cs_rewrite_trl(cs, s);
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
	for (s = cs_file_idle(cs, vol, fid); s != CS_NONE; s = next) {
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
			if (cs_slot_present(&cs->slots[i]))
				cs_fill_info(cs, i, &batch[n++]);
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
cs_verify_file(struct cs_store *cs, uint32_t vol, const uint8_t fid[16])
{
	if (!cs || !fid)
		return -EINVAL;
	pthread_mutex_lock(&cs->lock);
	cs_file_idle(cs, vol, fid);
	verify_file(cs, vol, fid);
	pthread_mutex_unlock(&cs->lock);
	return 0;
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
	for (s = cs_file_find(cs, vol, fid); s != CS_NONE;
	     s = cs->slots[s].fnext) {
		if (!cs_slot_present(&cs->slots[s]))
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
		cs_fill_info(cs, s, &v[n++]);
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
	st->wc_made = cs->wc_made;
	st->wc_open = cs->nwc;
	st->wc_evicts = cs->wc_evicts;
	st->wc_space_commits = cs->wc_space_commits;
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
	cs_fill_limits(&nl, l);
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
		if ((rc = cs_alloc_slot(cs, &k, &slot)) < 0)
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
