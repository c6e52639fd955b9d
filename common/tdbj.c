/*
 * tdbj.c - the redo journal in front of a tdb (tdbj.h).
 *
 * Journal file (little-endian; doc/cache-format.md, "tdb journal"):
 *
 *   header, 40 bytes:  "cairntdj", u32 version, u32 header length (40),
 *                      u64 database id, u64 generation,
 *                      u32 CRC32C of the 32 bytes before it, u32 zero
 *   records, each:     u32 magic TDBJ_REC_MAGIC, u32 body length,
 *                      u32 CRC32C of the record (this field as zero),
 *                      u32 flags (zero), u64 generation, u64 seq (1, 2,
 *                      ... within the generation), u64 base (the file
 *                      offset known synced when the record was written),
 *                      then the body: entries of u8 type (1 put, 2
 *                      delete), u32 key length, u32 value length (0 for a
 *                      delete), key, value
 *
 * The tdb's TDBJ_KEY holds u64 id, u64 generation: every record of that
 * generation and all before it are in the tdb.
 *
 * Why "base": a record written while earlier ones were not yet synced
 * (TDBJ_C_NOSYNC) may reach the disk before them, so after a power loss an
 * earlier record can be garbage while a later one is whole; neither had
 * been acknowledged (a sync makes both durable), and the later one's base
 * (at most the garbage record's offset) says so. A bad record followed by
 * a whole one whose base lies beyond it was damaged after its sync: that
 * is -EUCLEAN, never a silent cut.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/crc32c.h"
#include "common/tdbj.h"
#include "common/util.h"

#define HDR_MAGIC      "cairntdj"
#define HDR_LEN	       40
#define REC_HDR	       40
#define TDBJ_REC_MAGIC 0x524a4454u  /* "TDJR" */
#define REC_MAX	       (256u << 20) /* largest record body */
#define ENT_PUT	       1
#define ENT_DEL	       2
/* TDBJ_O_PREALLOC: only with a checkpoint bound of at least this; zeros
 * are written ahead a quarter of the bound at a time, at most this (an
 * idle volume keeps at most 64 KiB of zeros; one extension-and-sync every
 * 64 KiB of records). */
#define PREALLOC_MIN_BOUND (64u << 10)
#define PREALLOC_MAX_STEP  (64u << 10)

struct ent {
	struct ent *next;
	uint32_t hash;
	uint32_t klen, vlen;
	bool del;
	uint8_t b[]; /* key, then value */
};

struct map {
	struct ent **b;
	size_t nb, n;
};

struct tdbj {
	struct tdb_context *tdb;
	unsigned flags;
	bool journal; /* false: straight to tdb */
	int fd;
	char *path;
	size_t max_bytes;
	uint64_t id, gen, seq;
	uint64_t end; /* file offset of the next record */
	/* TDBJ_O_PREALLOC: the file's size (zeros from end to alloc); off
	 * after a failed extension. */
	bool prealloc;
	uint64_t alloc;
	bool in_tx, broken;
	bool nolock; /* TDBJ_O_EXCL: we set TDB_NOLOCK between checkpoints */
	/* Durability, also touched by tdbj_sync_to() outside the caller's
	 * lock: bytes appended since open (lpos) and how many of them are
	 * known synced (lsynced; a checkpoint makes all of them so). */
	pthread_mutex_t smu;
	pthread_cond_t scond;
	uint64_t lpos, lsynced; /* protected by smu */
	bool syncing;		/* an fdatasync runs; protected by smu */
	int sync_err;		/* a failed one: -errno; protected by smu */
	struct map ov, tx;
	uint64_t ncommits, nsyncs, nckpt, nckpt_fail;
	int ckpt_err;
	/* After a failed checkpoint at commit, the next try waits until the
	 * journal has grown by another quarter of max_bytes (a full-overlay
	 * tdb transaction per commit otherwise); valid in generation
	 * ckpt_next_gen (a checkpoint starts a new one). */
	uint64_t ckpt_next, ckpt_next_gen;
	/* tdbj_set_stop(): past stop_bytes of journal while checkpoints
	 * fail, refuse new transactions (-ENOSPC) rather than grow the
	 * journal and the overlay without bound; a checkpoint is tried again
	 * at most once a STOP_RETRY_MS (stop_try: when the last one was). */
	uint64_t stop_bytes, stop_try;
	uint64_t nstopped;
	/* TDBJ_O_DIGEST: the digest of the tdb's records as of the last
	 * checkpoint (what TDBJ_KEY says), and what the open found. */
	uint64_t digest;
	uint64_t stale_bytes; /* journal bytes dropped as stale at open */
	bool stale;	      /* the open dropped a stale journal: the next
				 checkpoint must run even when empty */
	uint64_t nrepairs;
};

#define STOP_RETRY_MS 1000

/* --- little-endian --- */

static void
put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t
get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* --- TDBJ_O_DIGEST --- */

/* One record's share of the digest (XORed over the records, so a
 * checkpoint updates it from the old and new values of the keys it
 * writes). CRC32C is linear; the mix keeps two records' changes from
 * cancelling out in any structured way. */
static uint64_t
dhash(const void *k, size_t klen, const void *v, size_t vlen)
{
	uint64_t x = ((uint64_t)crc32c(crc32c(0x1u, k, klen), v, vlen) << 32) |
		     crc32c(crc32c(0x2u, k, klen), v, vlen);

	x ^= (uint64_t)klen << 40 ^ vlen;
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

static int
digest_cb(struct tdb_context *tdb, TDB_DATA k, TDB_DATA v, void *arg)
{
	uint64_t *d = arg;

	(void)tdb;
	if (!(k.dsize == TDBJ_KEY_LEN && !memcmp(k.dptr, TDBJ_KEY,
						 TDBJ_KEY_LEN)))
		*d ^= dhash(k.dptr, k.dsize, v.dptr, v.dsize);
	return 0;
}

/* The digest of every record of the tdb file but TDBJ_KEY. */
static int
tdb_digest(struct tdb_context *tdb, uint64_t *d)
{
	*d = 0;
	if (tdb_traverse_read(tdb, digest_cb, d) < 0)
		return tdbw_errno(tdb);
	return 0;
}

int
tdbj_digest_check(struct tdb_context *tdb)
{
	uint8_t *v = NULL;
	uint64_t have;
	size_t n;
	int rc;

	rc = tdbw_fetch(tdb, TDBJ_KEY, TDBJ_KEY_LEN, &v, &n);
	if (rc)
		return rc;
	if (n != 24) {
		free(v);
		return -ENOENT;
	}
	rc = tdb_digest(tdb, &have);
	if (!rc && have != get_le(v + 16, 8))
		rc = -ESTALE;
	free(v);
	return rc;
}

static int
old_digest_cb(TDB_DATA k, TDB_DATA v, void *arg)
{
	*(uint64_t *)arg ^= dhash(k.dptr, k.dsize, v.dptr, v.dsize);
	return 0;
}

/* TDBJ_KEY's value: u64 id, u64 generation[, u64 digest]. */
static size_t
gen_val(const struct tdbj *j, uint8_t v[24], uint64_t gen)
{
	put_le(v, j->id, 8);
	put_le(v + 8, gen, 8);
	if (!(j->flags & TDBJ_O_DIGEST))
		return 16;
	put_le(v + 16, j->digest, 8);
	return 24;
}

/* --- the overlay maps --- */

static uint32_t
khash(const void *k, size_t klen)
{
	return crc32c(0x9e3779b9u, k, klen);
}

static struct ent *
map_find(const struct map *m, const void *k, size_t klen, uint32_t h)
{
	struct ent *e;

	if (!m->nb)
		return NULL;
	for (e = m->b[h & (m->nb - 1)]; e; e = e->next)
		if (e->hash == h && e->klen == klen && !memcmp(e->b, k, klen))
			return e;
	return NULL;
}

static int
map_grow(struct map *m)
{
	size_t nb = m->nb ? 2 * m->nb : 64;
	struct ent **b = calloc(nb, sizeof(*b));

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < m->nb; i++) {
		struct ent *e, *nx;

		for (e = m->b[i]; e; e = nx) {
			nx = e->next;
			e->next = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	}
	free(m->b);
	m->b = b;
	m->nb = nb;
	return 0;
}

/* Link @e into @m, replacing (and freeing) an entry of the same key. */
static int
map_link(struct map *m, struct ent *e)
{
	struct ent **pp;

	if (m->n >= m->nb && map_grow(m))
		return -ENOMEM;
	for (pp = &m->b[e->hash & (m->nb - 1)]; *pp; pp = &(*pp)->next) {
		struct ent *o = *pp;

		if (o->hash == e->hash && o->klen == e->klen &&
		    !memcmp(o->b, e->b, e->klen)) {
			e->next = o->next;
			*pp = e;
			free(o);
			return 0;
		}
	}
	e->next = NULL;
	*pp = e;
	m->n++;
	return 0;
}

static int
map_put(struct map *m, const void *k, size_t klen, const void *v, size_t vlen,
	bool del)
{
	struct ent *e;

	if (klen > UINT32_MAX || vlen > UINT32_MAX)
		return -EINVAL;
	e = malloc(sizeof(*e) + klen + (del ? 0 : vlen));
	if (!e)
		return -ENOMEM;
	e->hash = khash(k, klen);
	e->klen = (uint32_t)klen;
	e->vlen = del ? 0 : (uint32_t)vlen;
	e->del = del;
	memcpy(e->b, k, klen);
	if (!del && vlen)
		memcpy(e->b + klen, v, vlen);
	if (map_link(m, e)) {
		free(e);
		return -ENOMEM;
	}
	return 0;
}

static void
map_clear(struct map *m)
{
	for (size_t i = 0; i < m->nb; i++) {
		struct ent *e, *nx;

		for (e = m->b[i]; e; e = nx) {
			nx = e->next;
			free(e);
		}
	}
	free(m->b);
	m->b = NULL;
	m->nb = m->n = 0;
}

/* Move every entry of @src into @dst (same key: @src's wins). Only fails
 * on -ENOMEM growing @dst's table, before anything moved. */
static int
map_grow_to(struct map *m, size_t n)
{
	while (m->nb < n)
		if (map_grow(m))
			return -ENOMEM;
	return 0;
}

static int
map_merge(struct map *dst, struct map *src)
{
	if (map_grow_to(dst, dst->n + src->n))
		return -ENOMEM;
	for (size_t i = 0; i < src->nb; i++) {
		struct ent *e, *nx;

		for (e = src->b[i]; e; e = nx) {
			nx = e->next;
			map_link(dst, e); /* cannot fail: table big enough */
		}
		src->b[i] = NULL;
	}
	src->n = 0;
	return 0;
}

/* --- journal file --- */

static void
hdr_encode(uint8_t out[HDR_LEN], uint64_t id, uint64_t gen)
{
	memset(out, 0, HDR_LEN);
	memcpy(out, HDR_MAGIC, 8);
	put_le(out + 8, TDBJ_VERSION, 4);
	put_le(out + 12, HDR_LEN, 4);
	put_le(out + 16, id, 8);
	put_le(out + 24, gen, 8);
	put_le(out + 32, crc32c(0, out, 32), 4);
}

/* fdatasync the journal under the caller's lock: everything appended is
 * then synced. */
static int
jsync(struct tdbj *j)
{
	int rc = 0;

	if (!(j->flags & TDBJ_O_NOSYNC) && fdatasync(j->fd))
		rc = -errno;
	pthread_mutex_lock(&j->smu);
	if (!rc) {
		j->lsynced = j->lpos;
		j->nsyncs += !(j->flags & TDBJ_O_NOSYNC);
	}
	pthread_mutex_unlock(&j->smu);
	return rc;
}

/* The file offset up to which the journal is known synced. */
static uint64_t
synced_off(struct tdbj *j)
{
	uint64_t unsynced;

	pthread_mutex_lock(&j->smu);
	unsynced = j->lpos - j->lsynced;
	pthread_mutex_unlock(&j->smu);
	return j->end > HDR_LEN + unsynced ? j->end - unsynced : HDR_LEN;
}

static int
sync_err(struct tdbj *j)
{
	int rc;

	pthread_mutex_lock(&j->smu);
	rc = j->sync_err;
	pthread_mutex_unlock(&j->smu);
	return rc;
}

/* Empty the journal and start generation @gen. */
static int
jreset(struct tdbj *j, uint64_t gen)
{
	uint8_t h[HDR_LEN];
	int rc;

	hdr_encode(h, j->id, gen);
	if (ftruncate(j->fd, HDR_LEN))
		return -errno;
	j->alloc = HDR_LEN;
	rc = util_pwrite_all(j->fd, h, HDR_LEN, 0);
	if (!rc)
		rc = jsync(j);
	if (rc)
		return rc;
	j->gen = gen;
	j->seq = 0;
	j->end = HDR_LEN;
	return 0;
}

/* Record @p (@avail bytes at file offset @off) if whole and of the
 * journal's generation: @return its total length, or 0. */
static size_t
rec_valid(const struct tdbj *j, const uint8_t *p, size_t avail, uint64_t off,
	  uint64_t *seq)
{
	uint8_t h[REC_HDR];
	uint32_t len, crc;

	if (avail < REC_HDR || get_le(p, 4) != TDBJ_REC_MAGIC)
		return 0;
	len = (uint32_t)get_le(p + 4, 4);
	if (len > REC_MAX || len > avail - REC_HDR)
		return 0;
	memcpy(h, p, REC_HDR);
	memset(h + 8, 0, 4);
	crc = crc32c(0, h, REC_HDR);
	crc = crc32c(crc, p + REC_HDR, len);
	if (crc != get_le(p + 8, 4) || get_le(p + 16, 8) != j->gen ||
	    get_le(p + 32, 8) > off)
		return 0;
	*seq = get_le(p + 24, 8);
	return REC_HDR + len;
}

/* Apply a record's body to the overlay. -EUCLEAN if it does not parse. */
static int
rec_apply(struct tdbj *j, const uint8_t *p, size_t len)
{
	size_t off = 0;
	int rc;

	while (off < len) {
		uint8_t type;
		uint32_t kl, vl;

		if (len - off < 9)
			return -EUCLEAN;
		type = p[off];
		kl = (uint32_t)get_le(p + off + 1, 4);
		vl = (uint32_t)get_le(p + off + 5, 4);
		off += 9;
		if ((type != ENT_PUT && type != ENT_DEL) ||
		    (type == ENT_DEL && vl) || kl > len - off ||
		    vl > len - off - kl)
			return -EUCLEAN;
		rc = map_put(&j->ov, p + off, kl, p + off + kl, vl,
			     type == ENT_DEL);
		if (rc)
			return rc;
		off += (size_t)kl + vl;
	}
	return 0;
}

/* Read the records of @buf (@size bytes, header checked) into the
 * overlay. *cut = where the valid prefix ends. */
static int
jscan(struct tdbj *j, const uint8_t *buf, size_t size, size_t *cut)
{
	size_t off = HDR_LEN, n;
	uint64_t seq;
	int rc;

	while (off < size) {
		n = rec_valid(j, buf + off, size - off, off, &seq);
		if (!n)
			break;
		if (seq != j->seq + 1)
			return -EUCLEAN;
		rc = rec_apply(j, buf + off + REC_HDR, n - REC_HDR);
		if (rc)
			return rc;
		j->seq = seq;
		off += n;
	}
	*cut = off;
	if (off == size)
		return 0;
	/* A bad record at @off: a torn tail, unless a whole record after it
	 * was written once @off had been synced. */
	for (size_t p = off + 1; p + REC_HDR <= size; p++) {
		n = rec_valid(j, buf + p, size - p, p, &seq);
		if (n && get_le(buf + p + 32, 8) > off)
			return -EUCLEAN;
	}
	return 0;
}

/* Give the tdb a database id and a journal generation (a new journal, or
 * a tdb that never had one). */
static int
tdb_gen_put(struct tdbj *j, uint64_t gen)
{
	uint8_t v[24];
	size_t vl = gen_val(j, v, gen);
	int rc;

	rc = tdbw_txn_start(j->tdb);
	if (rc)
		return rc;
	rc = tdbw_store(j->tdb, TDBJ_KEY, TDBJ_KEY_LEN, v, vl, TDB_REPLACE);
	if (rc) {
		tdbw_txn_cancel(j->tdb);
		return rc;
	}
	return tdbw_txn_commit(j->tdb);
}

/* First use of a journal by this tdb. */
static int
jinit(struct tdbj *j)
{
	int rc;

	if (!j->id) {
		while (!j->id)
			if (getrandom(&j->id, sizeof(j->id), 0) !=
			    (ssize_t)sizeof(j->id))
				return -errno;
		rc = tdb_gen_put(j, 0);
		if (rc)
			return rc;
		j->gen = 0;
	}
	return jreset(j, j->gen + 1);
}

static int
jopen(struct tdbj *j)
{
	bool ro = j->flags & TDBJ_O_RDONLY;
	bool dig = j->flags & TDBJ_O_DIGEST, has_dig = false;
	uint8_t *v = NULL, *buf = NULL;
	uint64_t applied = 0, hid, hgen, stored_dig = 0;
	struct stat sb;
	size_t size, cut, vl = 0;
	ssize_t got;
	int rc;

	rc = tdbw_fetch(j->tdb, TDBJ_KEY, TDBJ_KEY_LEN, &v, &vl);
	if (!rc) {
		/* 24 bytes (a digest) only with TDBJ_O_DIGEST: a handle
		 * without it cannot keep the digest true, so it refuses. */
		if (vl != 16 && !(dig && vl == 24)) {
			free(v);
			return -EUCLEAN;
		}
		j->id = get_le(v, 8);
		applied = get_le(v + 8, 8);
		if (vl == 24) {
			stored_dig = get_le(v + 16, 8);
			has_dig = true;
		}
		free(v);
		if (!j->id)
			return -EUCLEAN;
	} else if (rc != -ENOENT) {
		return rc;
	}
	/* The digest walks the hash chains, which never ends on a chain
	 * that loops through dead records, and a record the chains lost
	 * would make the journal look stale (dropped, below): a file whose
	 * structure is damaged is refused instead (-EUCLEAN; cairn-fsck
	 * says whether a rebuild keeps every record). One pass over the
	 * file, bounded by its size (tdbw_check()). */
	if (dig && (rc = tdbw_check(j->tdb, NULL, 0)))
		return rc;
	if (dig && (rc = tdb_digest(j->tdb, &j->digest)))
		return rc;
	/* The tdb changed since the checkpoint that wrote TDBJ_KEY, and
	 * not through a journal: a program that does not know the journal
	 * (an older cairnd) wrote it. The next checkpoint must record what
	 * it holds now, even with nothing to apply (below). */
	j->stale = has_dig && stored_dig != j->digest;
	j->gen = applied;
	j->fd = open(j->path, ro ? O_RDONLY | O_CLOEXEC : O_RDWR | O_CLOEXEC);
	if (j->fd < 0 && errno == ENOENT && !ro) {
		j->fd = open(j->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
			     0600);
	}
	if (j->fd < 0)
		return ro && errno == ENOENT ? 0 : -errno;
	if (fstat(j->fd, &sb))
		return -errno;
	/* Read whole: bounded by the checkpoint bound, unless checkpoints
	 * kept failing, which must not make the journal unreadable. */
	if ((uint64_t)sb.st_size > SIZE_MAX / 2)
		return -EFBIG;
	size = (size_t)sb.st_size;
	if (size < HDR_LEN) {
		/* Never got a whole header: it never held a record. */
		rc = ro ? 0 : jinit(j);
		goto out;
	}
	buf = malloc(size);
	if (!buf)
		return -ENOMEM;
	got = util_pread_all(j->fd, buf, size, 0);
	if (got < 0 || (size_t)got != size) {
		rc = got < 0 ? (int)got : -EIO;
		goto out;
	}
	rc = -EUCLEAN;
	if (memcmp(buf, HDR_MAGIC, 8) ||
	    get_le(buf + 32, 4) != crc32c(0, buf, 32)) {
		/* A header torn while a reset rewrote it: no record follows,
		 * so there is nothing to lose. With records, damage. */
		if (size == HDR_LEN)
			rc = ro ? 0 : jinit(j);
		goto out;
	}
	if (get_le(buf + 8, 4) != TDBJ_VERSION) {
		rc = -EPROTONOSUPPORT;
		goto out;
	}
	if (get_le(buf + 12, 4) != HDR_LEN)
		goto out;
	hid = get_le(buf + 16, 8);
	hgen = get_le(buf + 24, 8);
	if (!j->id) {
		/* The tdb never checkpointed a journal: this one belongs to
		 * another database unless it is empty. */
		if (size > HDR_LEN)
			goto out;
		rc = ro ? 0 : jinit(j);
		goto out;
	}
	if (hid != j->id || hgen > applied + 1)
		goto out;
	if (hgen <= applied) {
		/* Checkpointed already; the reset did not happen. */
		rc = ro ? 0 : jreset(j, applied + 1);
		goto out;
	}
	j->gen = hgen;
	if (j->stale) {
		/* This journal's records predate the foreign writes (which
		 * ran after every one of them, without them): they describe
		 * a past the tdb has overwritten. Drop them. The checkpoint
		 * below records the digest of what the tdb holds and empties
		 * the journal; a kill before it finds the same mismatch. */
		j->stale_bytes = size - HDR_LEN;
		j->end = size; /* nothing appended before that checkpoint */
		j->alloc = size;
		rc = 0;
		goto out;
	}
	rc = jscan(j, buf, size, &cut);
	if (rc)
		goto out;
	j->end = cut;
	/* What a killed process left may still be in the page cache only:
	 * sync it before a record claims it synced (base). The tail goes
	 * even when no record is whole (cut at the header): new records are
	 * written from the cut, and a whole record of this generation left
	 * behind them (written unsynced after the torn one, which a power
	 * loss can keep) would otherwise read as their successor at the
	 * next open once they end exactly where it begins (records of one
	 * kind of change have one length). */
	if (!ro && (cut > HDR_LEN || cut < size)) {
		if (cut < size && ftruncate(j->fd, (off_t)cut))
			rc = -errno;
		else
			rc = jsync(j);
	}
	j->alloc = cut;
out:
	if (!rc && j->stale && !ro)
		rc = tdbj_checkpoint(j);
	free(buf);
	return rc;
}

struct tdbj *
tdbj_open(struct tdb_context *tdb, const char *jpath, unsigned flags,
	  size_t max_bytes, int *err)
{
	struct tdbj *j;
	int rc = 0;

	if (!tdb || (flags & ~(unsigned)(TDBJ_O_RDONLY | TDBJ_O_NOSYNC |
					 TDBJ_O_EXCL | TDBJ_O_PREALLOC |
					 TDBJ_O_DIGEST))) {
		rc = -EINVAL;
		goto fail;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		rc = -ENOMEM;
		goto fail;
	}
	j->tdb = tdb;
	j->flags = flags;
	j->fd = -1;
	pthread_mutex_init(&j->smu, NULL);
	pthread_cond_init(&j->scond, NULL);
	j->max_bytes = max_bytes ? max_bytes : TDBJ_MAX_BYTES_DEFAULT;
	j->prealloc = (flags & TDBJ_O_PREALLOC) && !(flags & TDBJ_O_RDONLY) &&
		      j->max_bytes >= PREALLOC_MIN_BOUND;
	if (jpath) {
		j->journal = true;
		j->path = strdup(jpath);
		rc = j->path ? jopen(j) : -ENOMEM;
		/* Every read-write open syncs the journal's directory, not
		 * only one that made the file: a kill between the making and
		 * that sync leaves a whole header the next open would take
		 * as its own, and acknowledge records into a file whose
		 * entry a power loss may still take away. */
		if (!rc && !(flags & (TDBJ_O_RDONLY | TDBJ_O_NOSYNC)))
			rc = util_fsync_parent(j->path);
		if (rc) {
			map_clear(&j->ov);
			if (j->fd >= 0)
				close(j->fd);
			pthread_cond_destroy(&j->scond);
			pthread_mutex_destroy(&j->smu);
			free(j->path);
			free(j);
			goto fail;
		}
	}
	/* Nobody else uses the tdb: its reads need no fcntl chain locks
	 * (the overlay's misses cost two system calls each otherwise). */
	if (j->journal && (flags & TDBJ_O_EXCL) && !(flags & TDBJ_O_RDONLY) &&
	    !(tdb_get_flags(tdb) & TDB_NOLOCK)) {
		tdb_add_flags(tdb, TDB_NOLOCK);
		j->nolock = true;
	}
	if (err)
		*err = 0;
	return j;
fail:
	if (err)
		*err = rc;
	errno = -rc;
	return NULL;
}

/* Free @j but not its tdb. */
static void
jfree(struct tdbj *j)
{
	map_clear(&j->ov);
	map_clear(&j->tx);
	if (j->fd >= 0)
		close(j->fd);
	pthread_cond_destroy(&j->scond);
	pthread_mutex_destroy(&j->smu);
	free(j->path);
	free(j);
}

int
tdbj_close(struct tdbj *j)
{
	struct tdb_context *tdb;
	int rc = 0;

	if (!j)
		return 0;
	if (j->in_tx)
		tdbj_txn_cancel(j);
	if (j->nolock) {
		tdb_remove_flags(j->tdb, TDB_NOLOCK);
		j->nolock = false;
	}
	if (j->journal && !(j->flags & TDBJ_O_RDONLY) && j->fd >= 0)
		rc = tdbj_checkpoint(j);
	tdb = j->tdb;
	jfree(j);
	tdb_close(tdb);
	return rc;
}

struct tdb_context *
tdbj_detach(struct tdbj *j, int *err)
{
	struct tdb_context *tdb;
	int rc = 0;

	if (j->in_tx)
		tdbj_txn_cancel(j);
	if (j->nolock) {
		tdb_remove_flags(j->tdb, TDB_NOLOCK);
		j->nolock = false;
	}
	if (j->journal && !(j->flags & TDBJ_O_RDONLY) && j->fd >= 0)
		rc = tdbj_checkpoint(j);
	if (err)
		*err = rc;
	if (rc)
		return NULL;
	tdb = j->tdb;
	jfree(j);
	return tdb;
}

struct tdb_context *
tdbj_tdb(struct tdbj *j)
{
	return j->tdb;
}

/* --- reads --- */

static struct ent *
lookup(const struct tdbj *j, const void *k, size_t klen)
{
	uint32_t h;
	struct ent *e;

	if (!j->journal || (!j->ov.n && !j->tx.n))
		return NULL;
	h = khash(k, klen);
	if (j->in_tx && (e = map_find(&j->tx, k, klen, h)))
		return e;
	return map_find(&j->ov, k, klen, h);
}

static bool
is_gen_key(const void *k, size_t klen)
{
	return klen == TDBJ_KEY_LEN && !memcmp(k, TDBJ_KEY, TDBJ_KEY_LEN);
}

int
tdbj_fetch(struct tdbj *j, const void *k, size_t klen, uint8_t **val,
	   size_t *vlen)
{
	struct ent *e = lookup(j, k, klen);

	if (!e)
		return tdbw_fetch(j->tdb, k, klen, val, vlen);
	if (e->del)
		return -ENOENT;
	*val = malloc(e->vlen ? e->vlen : 1);
	if (!*val)
		return -ENOMEM;
	memcpy(*val, e->b + e->klen, e->vlen);
	*vlen = e->vlen;
	return 0;
}

int
tdbj_parse(struct tdbj *j, const void *k, size_t klen,
	   int (*parser)(TDB_DATA key, TDB_DATA data, void *arg), void *arg)
{
	struct ent *e = lookup(j, k, klen);

	if (!e)
		return tdbw_parse(j->tdb, k, klen, parser, arg);
	if (e->del)
		return -ENOENT;
	parser(tdbw_data(e->b, e->klen), tdbw_data(e->b + e->klen, e->vlen),
	       arg);
	return 0;
}

int
tdbj_fetch_fixed(struct tdbj *j, const void *k, size_t klen, void *dst,
		 size_t len)
{
	struct tdbw_fixed c = {dst, len, -EIO};
	int rc = tdbj_parse(j, k, klen, tdbw_fixed_parse, &c);

	return rc ? rc : c.rc;
}

/* --- writes --- */

static bool
exists(struct tdbj *j, const void *k, size_t klen)
{
	struct ent *e = lookup(j, k, klen);

	if (e)
		return !e->del;
	return tdb_exists(j->tdb, tdbw_data(k, klen)) == 1;
}

static int
change(struct tdbj *j, const void *k, size_t klen, const void *v, size_t vlen,
       int flag, bool del)
{
	bool implicit = !j->in_tx;
	int rc;

	if (j->flags & TDBJ_O_RDONLY)
		return -EROFS;
	if (j->broken)
		return -EIO;
	if (is_gen_key(k, klen))
		return -EINVAL;
	if (del || flag == TDB_INSERT || flag == TDB_MODIFY) {
		bool ex = exists(j, k, klen);

		if (del && !ex)
			return -ENOENT;
		if (!del && flag == TDB_INSERT && ex)
			return -EEXIST;
		if (!del && flag == TDB_MODIFY && !ex)
			return -ENOENT;
	}
	if (implicit && (rc = tdbj_txn_start(j)))
		return rc;
	rc = map_put(&j->tx, k, klen, v, vlen, del);
	if (implicit) {
		if (!rc)
			return tdbj_txn_commit(j, 0);
		tdbj_txn_cancel(j);
	}
	return rc;
}

int
tdbj_store(struct tdbj *j, const void *k, size_t klen, const void *v,
	   size_t vlen, int flag)
{
	if (!j->journal)
		return tdbw_store(j->tdb, k, klen, v, vlen, flag);
	return change(j, k, klen, v, vlen, flag, false);
}

int
tdbj_delete(struct tdbj *j, const void *k, size_t klen)
{
	if (!j->journal)
		return tdbw_delete(j->tdb, k, klen);
	return change(j, k, klen, NULL, 0, 0, true);
}

/* --- transactions --- */

/*
 * The journal is past its stop (tdbj_set_stop()). Only checkpoints that
 * keep failing let it get there (a commit past max_bytes checkpoints):
 * try one again, at most once a STOP_RETRY_MS, and refuse the new
 * transaction while it fails. Nothing committed is touched: the journal
 * keeps every change that returned 0.
 */
static int
stop_check(struct tdbj *j)
{
	uint64_t now = util_now_ms();
	int rc;

	if (j->stop_try && now - j->stop_try < STOP_RETRY_MS) {
		j->nstopped++;
		return -ENOSPC;
	}
	j->stop_try = now;
	rc = tdbj_checkpoint(j);
	if (!rc && j->end < j->stop_bytes) {
		j->stop_try = 0;
		return 0;
	}
	if (rc) {
		j->nckpt_fail++;
		j->ckpt_err = rc;
	}
	j->nstopped++;
	return -ENOSPC;
}

int
tdbj_txn_start(struct tdbj *j)
{
	if (!j->journal)
		return tdbw_txn_start(j->tdb);
	if (j->flags & TDBJ_O_RDONLY)
		return -EROFS;
	if (j->broken || sync_err(j))
		return -EIO;
	if (j->in_tx)
		return -EBUSY;
	if (j->stop_bytes && j->end >= j->stop_bytes) {
		int rc = stop_check(j);

		if (rc)
			return rc;
	}
	j->in_tx = true;
	return 0;
}

void
tdbj_txn_cancel(struct tdbj *j)
{
	if (!j->journal) {
		tdbw_txn_cancel(j->tdb);
		return;
	}
	map_clear(&j->tx);
	j->in_tx = false;
}

/* The open transaction as one record, into a malloc'd buffer. */
static int
rec_encode(struct tdbj *j, uint8_t **out, size_t *outlen)
{
	size_t len = 0, off = REC_HDR;
	uint8_t *p;
	uint32_t crc;

	for (size_t i = 0; i < j->tx.nb; i++)
		for (struct ent *e = j->tx.b[i]; e; e = e->next)
			len += 9 + (size_t)e->klen + e->vlen;
	if (len > REC_MAX)
		return -EFBIG;
	p = malloc(REC_HDR + len);
	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < j->tx.nb; i++)
		for (struct ent *e = j->tx.b[i]; e; e = e->next) {
			p[off] = e->del ? ENT_DEL : ENT_PUT;
			put_le(p + off + 1, e->klen, 4);
			put_le(p + off + 5, e->vlen, 4);
			memcpy(p + off + 9, e->b, (size_t)e->klen + e->vlen);
			off += 9 + (size_t)e->klen + e->vlen;
		}
	put_le(p, TDBJ_REC_MAGIC, 4);
	put_le(p + 4, len, 4);
	put_le(p + 8, 0, 4);
	put_le(p + 12, 0, 4);
	put_le(p + 16, j->gen, 8);
	put_le(p + 24, j->seq + 1, 8);
	put_le(p + 32, synced_off(j), 8);
	crc = crc32c(0, p, REC_HDR);
	crc = crc32c(crc, p + REC_HDR, len);
	put_le(p + 8, crc, 4);
	*out = p;
	*outlen = REC_HDR + len;
	return 0;
}

/*
 * TDBJ_O_PREALLOC: write zeros from j->alloc (the file's size, past the
 * last record) so that the file holds @need bytes and a step more. An
 * append that grows a file makes its fdatasync write the inode too (the
 * size), and allocate blocks; a record written over zeros inside the
 * size does neither (0.030 against 0.05 ms of CPU a sync on the
 * development VM, and one wait for the disk fewer). The zeros need no
 * sync of their own: the record's fdatasync writes them out with it, and
 * a crash before that leaves zeros or nothing after the last record,
 * which reads as the end (a tail) either way. A failed write (a full
 * disk, a file size limit) turns preallocation off and leaves the file
 * as it was; the record is then appended as without it.
 */
static void
prealloc(struct tdbj *j, uint64_t need)
{
	static const uint8_t zeros[64 << 10];
	uint64_t step = j->max_bytes / 4, to, off;

	if (step > PREALLOC_MAX_STEP)
		step = PREALLOC_MAX_STEP;
	to = (need + step + 4095) & ~(uint64_t)4095;
	for (off = j->alloc; off < to;) {
		size_t n = to - off < sizeof(zeros) ? (size_t)(to - off)
						    : sizeof(zeros);

		if (util_pwrite_all(j->fd, zeros, n, (off_t)off)) {
			/* Zeros past the end are a tail like any other
			 * (cut at the next open) if this fails too. */
			j->prealloc = false;
			(void)!ftruncate(j->fd, (off_t)j->alloc);
			return;
		}
		off += n;
	}
	j->alloc = to;
}

int
tdbj_txn_commit(struct tdbj *j, unsigned cflags)
{
	uint8_t *rec = NULL;
	size_t n;
	bool sync = !(cflags & (TDBJ_C_NOSYNC | TDBJ_C_DEFER));
	uint64_t pos;
	int rc;

	if (!j->journal) {
		/* tdb's own commit; a deferred one is synced now. */
		bool nosync = (cflags & TDBJ_C_NOSYNC) &&
			      !(tdb_get_flags(j->tdb) & TDB_NOSYNC);

		if (nosync)
			tdb_add_flags(j->tdb, TDB_NOSYNC);
		rc = tdbw_txn_commit(j->tdb);
		if (nosync)
			tdb_remove_flags(j->tdb, TDB_NOSYNC);
		return rc;
	}
	if (!j->in_tx)
		return -EINVAL;
	if (!j->tx.n) {
		j->in_tx = false;
		return 0;
	}
	rc = sync_err(j);
	/* Room in the overlay first: after the write, nothing may fail. */
	if (!rc)
		rc = map_grow_to(&j->ov, j->ov.n + j->tx.n);
	if (!rc)
		rc = rec_encode(j, &rec, &n);
	if (rc)
		goto fail;
	if (j->prealloc && j->end + n > j->alloc)
		prealloc(j, j->end + n);
	rc = util_pwrite_all(j->fd, rec, n, (off_t)j->end);
	free(rec);
	if (rc) {
		/* Take the record back. Unless that worked, the file's state
		 * is unknown: refuse later changes. */
		if (ftruncate(j->fd, (off_t)j->end))
			j->broken = true;
		j->alloc = j->end;
		goto fail;
	}
	pthread_mutex_lock(&j->smu);
	j->lpos += n;
	pos = j->lpos;
	pthread_mutex_unlock(&j->smu);
	if (sync && (rc = tdbj_sync_to(j, pos))) {
		/* The kernel may have dropped the page: whether the record
		 * is on disk is unknown. Refuse every later change. */
		(void)!ftruncate(j->fd, (off_t)j->end);
		j->alloc = j->end;
		j->broken = true;
		goto fail;
	}
	j->end += n;
	j->seq++;
	j->ncommits++;
	map_merge(&j->ov, &j->tx); /* cannot fail: room made above */
	map_clear(&j->tx);
	j->in_tx = false;
	if (j->end > j->max_bytes &&
	    (j->ckpt_next_gen != j->gen || j->end >= j->ckpt_next)) {
		/* The commit stands; a later commit tries again, once the
		 * journal has grown by a quarter of its bound. Counted for
		 * the caller to report (tdbj_stats()). */
		rc = tdbj_checkpoint(j);
		if (rc) {
			j->nckpt_fail++;
			j->ckpt_err = rc;
			j->ckpt_next_gen = j->gen;
			j->ckpt_next = j->end + j->max_bytes / 4;
		}
	}
	return 0;
fail:
	tdbj_txn_cancel(j);
	return rc;
}

uint64_t
tdbj_pos(struct tdbj *j)
{
	uint64_t pos;

	if (!j->journal)
		return 0;
	pthread_mutex_lock(&j->smu);
	pos = j->lpos;
	pthread_mutex_unlock(&j->smu);
	return pos;
}

int
tdbj_sync_to(struct tdbj *j, uint64_t pos)
{
	uint64_t target;
	int rc;

	if (!j->journal)
		return 0;
	pthread_mutex_lock(&j->smu);
	while (j->lsynced < pos && !j->sync_err) {
		if (j->syncing) {
			pthread_cond_wait(&j->scond, &j->smu);
			continue;
		}
		/* One fdatasync for everything appended so far: the
		 * committers behind this one share it. */
		target = j->lpos;
		j->syncing = true;
		pthread_mutex_unlock(&j->smu);
		rc = (j->flags & TDBJ_O_NOSYNC) || !fdatasync(j->fd) ? 0
								     : -errno;
		pthread_mutex_lock(&j->smu);
		j->syncing = false;
		if (rc) {
			j->sync_err = rc;
		} else {
			if (target > j->lsynced)
				j->lsynced = target;
			j->nsyncs += !(j->flags & TDBJ_O_NOSYNC);
		}
		pthread_cond_broadcast(&j->scond);
	}
	rc = j->lsynced >= pos ? 0 : j->sync_err;
	pthread_mutex_unlock(&j->smu);
	return rc;
}

static int checkpoint(struct tdbj *j);

/* The checkpoint is an ordinary tdb transaction, with tdb's locks (a
 * TDBJ_O_EXCL handle turns them off only between checkpoints). */
int
tdbj_checkpoint(struct tdbj *j)
{
	int rc;

	if (!j->nolock)
		return checkpoint(j);
	tdb_remove_flags(j->tdb, TDB_NOLOCK);
	rc = checkpoint(j);
	tdb_add_flags(j->tdb, TDB_NOLOCK);
	return rc;
}

static int
checkpoint(struct tdbj *j)
{
	uint8_t v[24];
	uint64_t dig = j->digest;
	size_t vl;
	int rc;

	if (!j->journal)
		return 0;
	if (j->flags & TDBJ_O_RDONLY)
		return -EROFS;
	if (j->in_tx)
		return -EBUSY;
	if (j->broken || sync_err(j))
		return -EIO;
	if (!j->ov.n && j->end == HDR_LEN && !j->stale)
		return 0;
	rc = tdbw_txn_start(j->tdb);
	if (rc)
		return rc;
	for (size_t i = 0; i < j->ov.nb && !rc; i++)
		for (struct ent *e = j->ov.b[i]; e && !rc; e = e->next) {
			if (j->flags & TDBJ_O_DIGEST) {
				/* Out with the old value, in with the new. */
				rc = tdbw_parse(j->tdb, e->b, e->klen,
						old_digest_cb, &dig);
				if (rc && rc != -ENOENT)
					break;
				rc = 0;
				if (!e->del)
					dig ^= dhash(e->b, e->klen,
						     e->b + e->klen, e->vlen);
			}
			if (e->del) {
				rc = tdbw_delete(j->tdb, e->b, e->klen);
				if (rc == -ENOENT)
					rc = 0;
			} else {
				rc = tdbw_store(j->tdb, e->b, e->klen,
						e->b + e->klen, e->vlen,
						TDB_REPLACE);
			}
		}
	if (!rc) {
		uint64_t old = j->digest;

		j->digest = dig;
		vl = gen_val(j, v, j->gen);
		j->digest = old;
		rc = tdbw_store(j->tdb, TDBJ_KEY, TDBJ_KEY_LEN, v, vl,
				TDB_REPLACE);
	}
	if (rc) {
		tdbw_txn_cancel(j->tdb);
		return rc;
	}
	rc = tdbw_txn_commit(j->tdb);
	if (rc)
		return rc;
	j->digest = dig;
	j->stale = false;
	/* The tdb has generation gen: the overlay is not needed, and the
	 * journal must not take another record of gen. */
	map_clear(&j->ov);
	j->nckpt++;
	rc = jreset(j, j->gen + 1);
	if (rc)
		j->broken = true;
	return rc;
}

int
tdbj_repair(struct tdbj *j)
{
	int rc;

	if (!j->journal || (j->flags & TDBJ_O_RDONLY) || j->in_tx)
		return 0;
	pthread_mutex_lock(&j->smu);
	rc = j->broken || j->sync_err || j->syncing;
	pthread_mutex_unlock(&j->smu);
	if (!rc)
		return 0;
	pthread_mutex_lock(&j->smu);
	if (j->syncing) {
		/* A tdbj_sync_to() outside our lock: try again later. */
		pthread_mutex_unlock(&j->smu);
		return -EBUSY;
	}
	/* What the journal holds on disk is unknown (a dropped page, a
	 * record that could not be taken back), but the overlay holds every
	 * committed change: a checkpoint puts all of it in the tdb with
	 * tdb's own syncs, and its reset rewrites the journal from an empty
	 * file. A crash before the tdb commit finds the journal as the
	 * failure left it (which the open reads as ever); after it, a
	 * journal whose generation the tdb contains, which the open
	 * empties. Waiters of tdbj_sync_to() that saw the error keep it;
	 * only later calls see the repaired handle. */
	j->sync_err = 0;
	pthread_mutex_unlock(&j->smu);
	j->broken = false;
	rc = tdbj_checkpoint(j);
	if (rc) {
		j->broken = true;
		return rc;
	}
	j->nrepairs++;
	return 0;
}

/* --- traversal --- */

struct trav_ctx {
	struct tdbj *j;
	int (*fn)(TDB_DATA key, TDB_DATA val, void *arg);
	void *arg;
	bool stopped;
	int n;
};

static int
trav_tdb(struct tdb_context *tdb, TDB_DATA key, TDB_DATA val, void *arg)
{
	struct trav_ctx *c = arg;

	(void)tdb;
	if (is_gen_key(key.dptr, key.dsize) ||
	    lookup(c->j, key.dptr, key.dsize))
		return 0;
	c->n++;
	if (c->fn(key, val, c->arg)) {
		c->stopped = true;
		return 1;
	}
	return 0;
}

int
tdbj_traverse_read(struct tdbj *j,
		   int (*fn)(TDB_DATA key, TDB_DATA val, void *arg), void *arg)
{
	struct trav_ctx c = {j, fn, arg, false, 0};

	if (j->in_tx)
		return -EBUSY;
	if (tdb_traverse_read(j->tdb, trav_tdb, &c) < 0 && !c.stopped)
		return tdbw_errno(j->tdb);
	for (size_t i = 0; i < j->ov.nb && !c.stopped; i++)
		for (struct ent *e = j->ov.b[i]; e && !c.stopped; e = e->next) {
			if (e->del)
				continue;
			c.n++;
			if (fn(tdbw_data(e->b, e->klen),
			       tdbw_data(e->b + e->klen, e->vlen), arg))
				c.stopped = true;
		}
	return c.n;
}

void
tdbj_stats(const struct tdbj *j, struct tdbj_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->commits = j->ncommits;
	pthread_mutex_lock((pthread_mutex_t *)&j->smu);
	st->syncs = j->nsyncs;
	pthread_mutex_unlock((pthread_mutex_t *)&j->smu);
	st->checkpoints = j->nckpt;
	st->bytes = j->journal ? j->end : 0;
	st->keys = j->ov.n;
	st->gen = j->gen;
	st->ckpt_fails = j->nckpt_fail;
	st->ckpt_err = j->ckpt_err;
	st->stale_bytes = j->stale_bytes;
	pthread_mutex_lock((pthread_mutex_t *)&j->smu);
	st->broken = j->broken ? -EIO : j->sync_err;
	pthread_mutex_unlock((pthread_mutex_t *)&j->smu);
	st->repairs = j->nrepairs;
	st->stopped = j->nstopped;
}

void
tdbj_set_stop(struct tdbj *j, uint64_t bytes)
{
	j->stop_bytes = bytes;
	j->stop_try = 0;
}
