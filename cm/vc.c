/*
 * vc.c - the persistent metadata cache of cairnd, in one tdb file.
 *
 * This module only stores and loads; it has no idea whether a record is
 * current (events.c and mfetch.c decide that) and it never talks to the
 * network or to FUSE.
 *
 * Format. Keys are one tag byte followed by the 20-byte binary FID (volume
 * id little-endian, then the object id), or a tag byte alone for the
 * volume-wide records:
 *
 *   'H'        header: version, volume id, chunk size (checked at open)
 *   'V'        volinfo of the last connect
 *   'S'        last applied event sequence number
 *   'I'        page ids: the reserved limit, closed cleanly or not
 *              ("Page ids" below)
 *   'A'+FID    attributes; version 3 (VC_ATTR_CRC_VERSION): a CRC32C,
 *              the attributes, a u32 rdev and a u8 of flags
 *              (VC_ATTR_SERVER; version 3 without the flags, and versions
 *              1, without rdev, and 2, with it, of older cairnd are read)
 *   'D'+FID    directory listing: dv, count, its pages ("Listing design")
 *   'G'+FID+id a page of a listing
 *   'L'+FID    symlink target
 *   'X'+FID    xattrs; version 2 (VC_XATTR_CRC_VERSION): a CRC32C, the
 *              ctime stamp, count, then (u16 name len, name, u32 len,
 *              value) (version 1, without the CRC, is read)
 *   'P'+FID    a pin (fs pin): u8 flags (1 = recursive), u16 path length,
 *              the mount-relative path it was pinned by (for display)
 *
 * Every value begins with a version byte; integers are little-endian. A
 * record that fails to parse or its CRC ("Checksummed records") is
 * deleted and reads as a miss. doc/cache-format.md has the table.
 *
 * Crash logic: the file is opened with TDB_NOSYNC because everything in it
 * can be fetched again. A listing is stored so that a killed process
 * leaves the old one or the new one, never half (in a safe order:
 * "Listing design" below);
 * attribute records are each whole, and a batch of them is not atomic
 * (vc_put_attrs()). After power loss the file may be
 * damaged: tdb_open() or the header check fails and the file is recreated
 * empty (cairnd then refetches metadata, and chunk DVs still protect data).
 *
 * Locking: one process uses the file (cairnd holds the chunk store's
 * exclusive flock on the cache directory while it runs, and so does
 * cairn-fsck), so tdb's fcntl locks are switched off (TDB_NOLOCK, as for
 * the writeback store): they cost two system calls a fetch, a quarter of
 * a cold listing's CPU (doc/cm.md, "Listings at scale"). Within the
 * process vc->lock guards the handle.
 *
 * Misses. Every entry of a listing cairnd takes asks for its cached 'A'
 * record first (mcache_apply_fetched()), and in a cold listing every ask
 * misses: a cache and TLB miss on tdb's hash table each. vc->attrs holds
 * the hash of every 'A' key in the file (common/fpset.h: one pass over
 * the file at open, then every store adds), so a FID it has never seen
 * is answered without tdb. It only ever says "maybe" where "no" is true,
 * never the other way: nothing but this process writes the file while it
 * is open (the flock above), and each 'A' store goes through
 * vc_store_locked().
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/crc32c.h"
#include "cm/vc.h"
#include "common/fpset.h"
#include "common/log.h"
#include "common/memtrim.h"
#include "common/tdbw.h"
#include "common/util.h"

#define VC_KEY_LEN (1 + 20)

/* The hash chains of files made from now on (vc_set_new_hash_size()). */
static _Atomic unsigned new_hash_size = VC_HASH_SIZE;

void
vc_set_new_hash_size(unsigned n)
{
	atomic_store(&new_hash_size, n ? n : VC_HASH_SIZE);
}

struct vc {
	pthread_mutex_t lock;
	struct tdb_context *tdb; /* protected by lock */
	char *path;
	uint64_t next_id;  /* the next page id to hand out; protected by lock */
	uint64_t id_limit; /* the 'I' record's reservation; protected by lock */
	bool ids_open; /* vc_ids_open_locked() done: close marks it clean */
	/* A damaged 'D' was dropped, leaving pages no record names (its
	 * page ids cannot be trusted): the next open sweeps them. */
	atomic_bool need_sweep;
	atomic_ullong crc_bad; /* damaged records dropped (vc_damaged()) */
	atomic_bool crc_logged;
	atomic_bool read_err_logged; /* a failed read (vc_fetch()) */
	void (*drop_hook)(void *arg); /* vc_set_drop_hook() (tests) */
	void *drop_hook_arg;
	atomic_ullong swept; /* orphan pages swept at open (vc_swept()) */
	atomic_ullong rebuilt; /* files rebuilt at open (vc_rebuilt()) */
	/* The 'A' keys in the file, as hashes (fid_hash()); protected by
	 * lock. */
	struct fpset attrs;
	atomic_ullong attr_skips; /* lookups it answered (vc_filter_stats()) */
};

/* --- little-endian buffer helpers --- */

struct wbuf {
	uint8_t *p;
	size_t len, cap;
	int err;
};

static void
wb_need(struct wbuf *w, size_t n)
{
	size_t ncap;
	uint8_t *np;

	if (w->err || w->len + n <= w->cap)
		return;
	ncap = w->cap ? w->cap * 2 : 256;
	while (ncap < w->len + n)
		ncap *= 2;
	np = realloc(w->p, ncap);
	if (!np) {
		w->err = -ENOMEM;
		return;
	}
	w->p = np;
	w->cap = ncap;
}

static void
wb_bytes(struct wbuf *w, const void *b, size_t n)
{
	wb_need(w, n);
	if (w->err)
		return;
	if (n)
		memcpy(w->p + w->len, b, n);
	w->len += n;
}

static void
wb_u64(struct wbuf *w, uint64_t v)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	wb_bytes(w, b, 8);
}

static void
wb_u32(struct wbuf *w, uint32_t v)
{
	uint8_t b[4];

	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	wb_bytes(w, b, 4);
}

static void
wb_u16(struct wbuf *w, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};

	wb_bytes(w, b, 2);
}

static void
wb_u8(struct wbuf *w, uint8_t v)
{
	wb_bytes(w, &v, 1);
}

static void
wb_fid(struct wbuf *w, const struct fid *f)
{
	wb_u32(w, f->vol);
	wb_bytes(w, f->oid, FID_OID_LEN);
}

struct rbuf {
	const uint8_t *p;
	size_t len, off;
	bool bad;
};

static const uint8_t *
rb_take(struct rbuf *r, size_t n)
{
	const uint8_t *q;

	if (r->bad || r->len - r->off < n) {
		r->bad = true;
		return NULL;
	}
	q = r->p + r->off;
	r->off += n;
	return q;
}

static uint64_t
rb_u64(struct rbuf *r)
{
	const uint8_t *q = rb_take(r, 8);
	uint64_t v = 0;

	if (!q)
		return 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | q[i];
	return v;
}

static uint32_t
rb_u32(struct rbuf *r)
{
	const uint8_t *q = rb_take(r, 4);

	if (!q)
		return 0;
	return (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
	       (uint32_t)q[3] << 24;
}

static uint16_t
rb_u16(struct rbuf *r)
{
	const uint8_t *q = rb_take(r, 2);

	return q ? (uint16_t)(q[0] | q[1] << 8) : 0;
}

static uint8_t
rb_u8(struct rbuf *r)
{
	const uint8_t *q = rb_take(r, 1);

	return q ? q[0] : 0;
}

static void
rb_fid(struct rbuf *r, struct fid *f)
{
	const uint8_t *q;

	f->vol = rb_u32(r);
	q = rb_take(r, FID_OID_LEN);
	if (q)
		memcpy(f->oid, q, FID_OID_LEN);
	else
		memset(f->oid, 0, FID_OID_LEN);
}

/* --- records --- */

static void
enc_attr(struct wbuf *w, const struct proto_attr *a)
{
	wb_fid(w, &a->fid);
	wb_u8(w, (uint8_t)a->type);
	wb_u32(w, a->mode);
	wb_u32(w, a->uid);
	wb_u32(w, a->gid);
	wb_u64(w, a->size);
	wb_u64(w, a->nlink);
	wb_u64(w, a->dv);
	wb_u64(w, (uint64_t)a->atime_ns);
	wb_u64(w, (uint64_t)a->mtime_ns);
	wb_u64(w, (uint64_t)a->ctime_ns);
}

/* @version: the record's version byte (1: no rdev; 2 and 3: rdev). */
static void
dec_attr(struct rbuf *r, struct proto_attr *a, uint8_t version)
{
	memset(a, 0, sizeof(*a));
	rb_fid(r, &a->fid);
	a->type = (enum proto_type)rb_u8(r);
	a->mode = rb_u32(r);
	a->uid = rb_u32(r);
	a->gid = rb_u32(r);
	a->size = rb_u64(r);
	a->nlink = rb_u64(r);
	a->dv = rb_u64(r);
	a->atime_ns = (int64_t)rb_u64(r);
	a->mtime_ns = (int64_t)rb_u64(r);
	a->ctime_ns = (int64_t)rb_u64(r);
	if (version >= VC_ATTR_VERSION)
		a->rdev = rb_u32(r);
	if (a->type < PROTO_T_FILE || a->type > PROTO_T_MAX ||
	    a->mode > 07777 || (a->rdev && !proto_type_has_rdev(a->type)))
		r->bad = true;
}

/*
 * Checksummed records (doc/cache-format.md "Record checksums"). Without a
 * tdb transaction tdb overwrites a record in place when the new value
 * fits in the old one's space, so a process killed in the middle of that
 * copy can leave a value that mixes old and new bytes and still parses.
 * Records of the versions below therefore carry a CRC32C (base/crc32c.h,
 * SSE4.2 when present: ~20 ns for an 'A' record) of every byte after it:
 *
 *   byte 0      version
 *   bytes 1-4   CRC32C of bytes 5..end
 *   bytes 5-    the payload
 *
 * A record whose CRC does not match is dropped like one that does not
 * parse (a miss; the caller fetches it again), counted in vc_damaged()
 * and logged once. Versions without a CRC (written by an older cairnd)
 * are still read.
 */
#define VC_CRC_OFF 5

static bool
rec_has_crc(char tag, uint8_t v)
{
	return (tag == 'A' && v == VC_ATTR_CRC_VERSION) ||
	       (tag == 'D' && v == VC_DIR_CRC_VERSION) ||
	       (tag == 'G' && v == VC_PAGE_VERSION) ||
	       (tag == 'X' && v == VC_XATTR_CRC_VERSION) || tag == 'I';
}

/* Where a record's payload starts: after its version (and CRC). */
static size_t
rec_off(char tag, uint8_t v)
{
	return rec_has_crc(tag, v) ? VC_CRC_OFF : 1;
}

/* Start a checksummed record of version @v: the byte and room for the CRC. */
static void
rec_begin(struct wbuf *w, uint8_t v)
{
	wb_u8(w, v);
	wb_u32(w, 0);
}

/* Fill in the CRC of a record begun with rec_begin() at @start of @w. */
static void
rec_seal(struct wbuf *w, size_t start)
{
	uint32_t c;

	if (w->err || w->len < start + VC_CRC_OFF)
		return;
	c = crc32c(0, w->p + start + VC_CRC_OFF, w->len - start - VC_CRC_OFF);
	for (int i = 0; i < 4; i++)
		w->p[start + 1 + i] = (uint8_t)(c >> (8 * i));
}

/* Does record @p[0..len) of @tag pass its CRC (true for a version without
 * one)? */
static bool
rec_crc_ok(char tag, const uint8_t *p, size_t len)
{
	uint32_t c;

	if (len < 1 || !rec_has_crc(tag, p[0]))
		return true;
	if (len < VC_CRC_OFF)
		return false;
	c = (uint32_t)p[1] | (uint32_t)p[2] << 8 | (uint32_t)p[3] << 16 |
	    (uint32_t)p[4] << 24;
	return crc32c(0, p + VC_CRC_OFF, len - VC_CRC_OFF) == c;
}

/*
 * An 'A' record: version 3, its CRC, the attributes, the rdev and a byte
 * of @flags (VC_ATTR_SERVER). The flags byte came later within version
 * 3, not as a version of its own: a version-3 record without it (an
 * older cairnd's) reads as flags 0, and an older cairnd reads one with
 * it (its decoder takes the bytes it knows and the CRC covers them all),
 * so a downgrade keeps the cache ("Downgrade", doc/cache-format.md).
 */
static void
enc_attr_rec(struct wbuf *w, const struct proto_attr *a, unsigned flags)
{
	size_t start = w->len;

	rec_begin(w, VC_ATTR_CRC_VERSION);
	enc_attr(w, a);
	wb_u32(w, a->rdev);
	wb_u8(w, (uint8_t)flags);
	rec_seal(w, start);
}

/* The flags byte of an 'A' record of version @version whose attributes
 * @r has read: 0 when it has none. */
static unsigned
dec_attr_flags(struct rbuf *r, uint8_t version)
{
	if (version != VC_ATTR_CRC_VERSION || r->bad || r->off >= r->len)
		return 0;
	return rb_u8(r);
}

static TDB_DATA
mkkey(uint8_t *buf, char tag, const struct fid *fid)
{
	TDB_DATA k;

	buf[0] = (uint8_t)tag;
	if (fid) {
		for (int i = 0; i < 4; i++)
			buf[1 + i] = (uint8_t)(fid->vol >> (8 * i));
		memcpy(buf + 5, fid->oid, FID_OID_LEN);
	}
	k.dptr = buf;
	k.dsize = fid ? VC_KEY_LEN : 1;
	return k;
}

/* Is @p[0..n) a record of @tag that vc_fetch() takes: a known version and,
 * for one that has it, a good CRC? */
static bool
rec_ok(char tag, const uint8_t *p, size_t n)
{
	return n >= 1 &&
	       (p[0] == VC_REC_VERSION ||
		(tag == 'A' &&
		 (p[0] == VC_ATTR_VERSION || p[0] == VC_ATTR_CRC_VERSION)) ||
		(tag == 'D' &&
		 (p[0] == VC_DIR_VERSION || p[0] == VC_DIR_CRC_VERSION)) ||
		(tag == 'X' && p[0] == VC_XATTR_CRC_VERSION)) &&
	       rec_crc_ok(tag, p, n);
}

/* Fetch a record under the lock; on success the caller frees d->dptr. */
static int
vc_fetch(struct vc *vc, char tag, const struct fid *fid, TDB_DATA *d)
{
	uint8_t kb[VC_KEY_LEN];
	TDB_DATA k = mkkey(kb, tag, fid);
	uint8_t *p;
	size_t n;
	int rc;

	d->dptr = NULL;
	d->dsize = 0;
	pthread_mutex_lock(&vc->lock);
	if (tag == 'A' && !fpset_maybe(&vc->attrs, fid_hash(fid))) {
		rc = -ENOENT; /* never stored: no need to ask tdb */
		atomic_fetch_add_explicit(&vc->attr_skips, 1,
					  memory_order_relaxed);
	} else
		rc = tdbw_fetch(vc->tdb, k.dptr, k.dsize, &p, &n);
	pthread_mutex_unlock(&vc->lock);
	/* A record tdb finds damaged goes the way of one that does not
	 * parse (the caller drops it); any other failure to read is a miss,
	 * which the caller answers from the server. */
	if (rc == -EUCLEAN)
		return rc;
	if (rc && rc != -ENOENT &&
	    !atomic_exchange(&vc->read_err_logged, true))
		log_warn(LOG_VC, "metadata cache '%s': a record could not be "
				 "read (%s): taken as not cached (logged once)",
			 vc->path, strerror(-rc));
	if (rc)
		return -ENOENT;
	d->dptr = p;
	d->dsize = n;
	if (!rec_ok(tag, p, n)) {
		free(d->dptr);
		d->dptr = NULL;
		return -EUCLEAN;
	}
	return 0;
}

static int
vc_store_locked(struct vc *vc, char tag, const struct fid *fid,
		const struct wbuf *w)
{
	uint8_t kb[VC_KEY_LEN];
	TDB_DATA k = mkkey(kb, tag, fid);

	if (w->err)
		return w->err;
	/* Before the store: a set that cannot grow turns itself off
	 * (every answer "maybe"), so its failure is no failure here. */
	if (tag == 'A')
		(void)fpset_add(&vc->attrs, fid_hash(fid));
	return tdbw_store(vc->tdb, k.dptr, k.dsize, w->p, w->len, TDB_REPLACE);
}

static int
vc_store(struct vc *vc, char tag, const struct fid *fid, const struct wbuf *w)
{
	int rc;

	pthread_mutex_lock(&vc->lock);
	rc = vc_store_locked(vc, tag, fid, w);
	pthread_mutex_unlock(&vc->lock);
	return rc;
}

static int
vc_delete(struct vc *vc, char tag, const struct fid *fid)
{
	uint8_t kb[VC_KEY_LEN];
	TDB_DATA k = mkkey(kb, tag, fid);
	int rc;

	pthread_mutex_lock(&vc->lock);
	rc = tdbw_delete(vc->tdb, k.dptr, k.dsize);
	pthread_mutex_unlock(&vc->lock);
	return rc == -ENOENT ? 0 : rc;
}

/* Count a damaged record (a bad CRC, one that does not parse, a listing
 * naming a bad page); log only the first since vc_open(), as a torn
 * file can hold many. */
static void
vc_count_damaged(struct vc *vc, char tag, const char *what)
{
	atomic_fetch_add(&vc->crc_bad, 1);
	if (!atomic_exchange(&vc->crc_logged, true))
		log_warn(LOG_VC, "dropping damaged metadata record '%c' of "
				 "'%s' (bad checksum or format; it is fetched "
				 "again, and further ones are only counted)",
			 tag, what);
}

uint64_t
vc_damaged(struct vc *vc)
{
	return vc ? atomic_load(&vc->crc_bad) : 0;
}

void
vc_set_drop_hook(struct vc *vc, void (*fn)(void *arg), void *arg)
{
	vc->drop_hook = fn;
	vc->drop_hook_arg = arg;
}

/* A record without a CRC ('L', 'S', 'V') that does not parse: drop it so
 * it is refetched, and say so. */
static int
vc_bad_record(struct vc *vc, char tag, const struct fid *fid)
{
	char fs[FID_STRLEN] = "-";

	if (fid)
		fid_fmt(fid, fs);
	vc_count_damaged(vc, tag, fs);
	vc_delete(vc, tag, fid);
	return -ENOENT;
}

/*
 * A damaged 'A', 'D' or 'X' record: count it and drop it, but only if it is
 * still the one the reader saw, checked and deleted under one lock. @seen
 * holds its bytes for one that passed vc_fetch() but did not parse (the
 * record there must be those bytes); NULL for one that failed vc_fetch()
 * (the record there must still fail rec_ok(), or tdb must still find it
 * damaged). An editor that stored a fresh record since the read (its CRC
 * good) keeps it: the read missed, and the next one finds the new record.
 */
static int
vc_drop_bad(struct vc *vc, char tag, const struct fid *fid,
	    const TDB_DATA *seen)
{
	uint8_t kb[VC_KEY_LEN];
	TDB_DATA k = mkkey(kb, tag, fid);
	char fs[FID_STRLEN];
	uint8_t *cur = NULL;
	size_t len = 0;
	bool same;
	int rc;

	fid_fmt(fid, fs);
	vc_count_damaged(vc, tag, fs);
	if (tag == 'D')
		atomic_store(&vc->need_sweep, true);
	if (vc->drop_hook)
		vc->drop_hook(vc->drop_hook_arg);
	pthread_mutex_lock(&vc->lock);
	rc = tdbw_fetch(vc->tdb, k.dptr, k.dsize, &cur, &len);
	if (rc == -EUCLEAN)
		same = true;
	else if (rc)
		same = false;
	else if (seen)
		same = len == seen->dsize && !memcmp(cur, seen->dptr, len);
	else
		same = !rec_ok(tag, cur, len);
	if (same)
		tdbw_delete(vc->tdb, k.dptr, k.dsize);
	pthread_mutex_unlock(&vc->lock);
	free(cur);
	return -ENOENT;
}

/* --- open / close --- */

static int vc_ids_open_locked(struct vc *vc);
static int vc_sweep_locked(struct vc *vc, struct vc_check_result *res,
			   uint64_t *max_id);
static int id_store_locked(struct vc *vc, uint64_t limit, bool clean);

static int
attrs_load_cb(struct tdb_context *tdb, TDB_DATA k, TDB_DATA v, void *arg)
{
	struct fpset *s = arg;
	struct rbuf r = {.p = k.dptr, .len = k.dsize, .off = 1};
	struct fid fid;

	(void)tdb;
	(void)v;
	if (k.dsize != VC_KEY_LEN || k.dptr[0] != 'A')
		return 0;
	rb_fid(&r, &fid);
	return fpset_add(s, fid_hash(&fid)) ? 1 : 0; /* off: stop */
}

/* Fill vc->attrs with every 'A' key of the file: one pass at open,
 * 0.13-0.26 us a record (doc/cm.md, "The attribute filter"). A pass that stops
 * short (a damaged chain, no memory) leaves the set off: every FID is
 * then looked up in the file, as before the set. */
static void
attrs_load_locked(struct vc *vc)
{
	int n;

	fpset_free(&vc->attrs);
	n = tdb_traverse_read(vc->tdb, attrs_load_cb, &vc->attrs);
	if (n >= 0 && !vc->attrs.off)
		return;
	fpset_disable(&vc->attrs);
	log_warn(LOG_VC, "metadata cache '%s': cannot list its attribute "
			 "records (%s); every lookup asks the file",
		 vc->path, n < 0 ? tdb_errorstr(vc->tdb) : strerror(ENOMEM));
}

/* Whether the file holds any record (a new file holds none). */
static bool
vc_has_records(struct vc *vc)
{
	TDB_DATA k = tdb_firstkey(vc->tdb);
	bool any = k.dptr != NULL;

	free(k.dptr);
	return any;
}

static int
vc_check_header(struct vc *vc, uint32_t vol_id, uint32_t chunk_size)
{
	TDB_DATA d;
	struct rbuf r;
	int rc;

	rc = vc_fetch(vc, 'H', NULL, &d);
	if (rc < 0)
		return rc;
	r = (struct rbuf){.p = d.dptr, .len = d.dsize, .off = 1};
	if (rb_u32(&r) != vol_id || rb_u32(&r) != chunk_size || r.bad)
		rc = -ESTALE;
	free(d.dptr);
	return rc;
}

struct vc *
vc_open(const char *path, uint32_t vol_id, uint32_t chunk_size)
{
	struct vc *vc;
	struct wbuf w = {0};
	bool wiped = false;
	int rc, err;

	vc = calloc(1, sizeof(*vc));
	if (!vc)
		return NULL;
	pthread_mutex_init(&vc->lock, NULL);
	/* "maybe" to every FID until attrs_load_locked() has read them */
	fpset_disable(&vc->attrs);
	vc->path = strdup(path);
	if (!vc->path) {
		err = ENOMEM;
		goto fail;
	}
	/* tdbw_open(): a transaction cut short by a kill is rolled back,
	 * and what it had added past the old end cut off (tdb_check() at
	 * an unclean open would call it damage and rebuild the file). */
	vc->tdb = tdbw_open(path, atomic_load(&new_hash_size),
			    TDB_NOSYNC | TDB_NOLOCK, O_RDWR | O_CREAT, 0600,
			    NULL, NULL);
	if (!vc->tdb) {
		log_warn(LOG_VC, "cannot open metadata cache '%s': %s; "
				 "recreating it",
			 path, strerror(errno));
		unlink(path);
		vc->tdb = tdb_open(path, atomic_load(&new_hash_size),
				   TDB_NOSYNC | TDB_NOLOCK,
				   O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (!vc->tdb) {
			err = errno ? errno : EIO;
			goto fail;
		}
	}
	if (vol_id == 0) {
		/* Disconnected start: take the volume the file is for. */
		TDB_DATA d;
		struct rbuf r;

		rc = vc_fetch(vc, 'H', NULL, &d);
		if (rc < 0) {
			err = ENOENT;
			goto fail;
		}
		r = (struct rbuf){.p = d.dptr, .len = d.dsize, .off = 1};
		vol_id = rb_u32(&r);
		free(d.dptr);
		if (r.bad || vol_id == 0) {
			err = ENOENT;
			goto fail;
		}
	}
	rc = vc_check_header(vc, vol_id, chunk_size);
	if (rc == 0)
		goto ids;
	if (rc != -ENOENT)
		log_info(LOG_VC, "metadata cache '%s' belongs to another "
				 "volume or format; emptying it",
			 path);
	else if (vc_has_records(vc))
		log_warn(LOG_VC, "metadata cache '%s' holds records but no "
				 "header: damaged; emptying it",
			 path);
wipe:
	if (tdb_wipe_all(vc->tdb) != 0) {
		err = -tdbw_errno(vc->tdb);
		goto fail;
	}
	wb_u8(&w, VC_REC_VERSION);
	wb_u32(&w, vol_id);
	wb_u32(&w, chunk_size);
	rc = vc_store(vc, 'H', NULL, &w);
	free(w.p);
	w = (struct wbuf){0};
	if (rc < 0) {
		err = -rc;
		goto fail;
	}
ids:
	pthread_mutex_lock(&vc->lock);
	rc = vc_ids_open_locked(vc);
	if (rc == 0)
		attrs_load_locked(vc);
	pthread_mutex_unlock(&vc->lock);
	if (rc == -EAGAIN && !wiped) {
		wiped = true; /* the sweep failed and emptied the file */
		goto wipe;
	}
	if (rc < 0) {
		err = -rc;
		goto fail;
	}
	return vc;
fail:
	vc_close(vc);
	errno = err;
	return NULL;
}

void
vc_close(struct vc *vc)
{
	if (!vc)
		return;
	/* A damaged 'D' was dropped while open: sweep the pages it left
	 * now (one pass over the file, rare), so a cleanly stopped cairnd
	 * leaves a file cairn-fsck finds clean. Every id handed out is
	 * below next_id. */
	if (vc->tdb && vc->ids_open) {
		bool clean = true;

		if (atomic_load(&vc->need_sweep)) {
			struct vc_check_result res = {0};
			uint64_t max;

			clean = vc_sweep_locked(vc, &res, &max) == 0;
			if (res.orphans)
				log_info(LOG_VC, "swept %llu orphan listing "
						 "pages of damaged listings",
					 (unsigned long long)res.orphans);
		}
		id_store_locked(vc, vc->next_id, clean);
	}
	if (vc->tdb)
		tdb_close(vc->tdb);
	fpset_free(&vc->attrs);
	pthread_mutex_destroy(&vc->lock);
	free(vc->path);
	free(vc);
}

/* --- attributes --- */

int
vc_get_attr(struct vc *vc, const struct fid *fid, struct proto_attr *out)
{
	return vc_get_attr_flags(vc, fid, out, NULL);
}

int
vc_get_attr_flags(struct vc *vc, const struct fid *fid, struct proto_attr *out,
		  unsigned *flags)
{
	TDB_DATA d;
	struct rbuf r;
	unsigned fl;
	int rc;

	rc = vc_fetch(vc, 'A', fid, &d);
	if (rc == -EUCLEAN)
		return vc_drop_bad(vc, 'A', fid, NULL);
	if (rc < 0)
		return rc;
	r = (struct rbuf){.p = d.dptr, .len = d.dsize,
			  .off = rec_off('A', d.dptr[0])};
	dec_attr(&r, out, d.dptr[0]);
	fl = dec_attr_flags(&r, d.dptr[0]);
	if (r.bad || !fid_eq(&out->fid, fid)) {
		rc = vc_drop_bad(vc, 'A', fid, &d);
		free(d.dptr);
		return rc;
	}
	free(d.dptr);
	if (flags)
		*flags = fl;
	return 0;
}

int
vc_put_attr(struct vc *vc, const struct proto_attr *a)
{
	return vc_put_attrs(vc, a, 1);
}

/*
 * Each record is stored alone, without a transaction: every 'A' record is
 * whole in itself (the server's attributes of one object at one time), so
 * a process killed half-way leaves some of the new ones and the old rest,
 * each still true of its object at some time, which freshness (events,
 * revalidation) judges as for any cached record. A transaction a page of
 * a listing cost a quarter of a cold listing's CPU: starting one copies
 * the file's hash table (512 KB), committing one writes its recovery area
 * and maps the file again.
 */
int
vc_put_attrs(struct vc *vc, const struct proto_attr *a, size_t n)
{
	return vc_put_attrs_flags(vc, a, n, 0);
}

int
vc_put_attrs_flags(struct vc *vc, const struct proto_attr *a, size_t n,
		   unsigned flags)
{
	struct wbuf w = {0};
	int rc = 0;

	pthread_mutex_lock(&vc->lock);
	for (size_t i = 0; i < n && rc == 0; i++) {
		w.len = 0;
		enc_attr_rec(&w, &a[i], flags);
		rc = vc_store_locked(vc, 'A', &a[i].fid, &w);
	}
	pthread_mutex_unlock(&vc->lock);
	free(w.p);
	return rc;
}

int
vc_del_attr(struct vc *vc, const struct fid *fid)
{
	return vc_delete(vc, 'A', fid);
}

static int dir_delete(struct vc *vc, const struct fid *fid);

int
vc_del_dir(struct vc *vc, const struct fid *fid)
{
	return dir_delete(vc, fid);
}

int
vc_del_xattrs(struct vc *vc, const struct fid *fid)
{
	return vc_delete(vc, 'X', fid);
}

int
vc_forget(struct vc *vc, const struct fid *fid)
{
	static const char tags[] = "ALX";
	int rc = dir_delete(vc, fid), r;

	for (size_t i = 0; i < sizeof(tags) - 1; i++) {
		r = vc_delete(vc, tags[i], fid);
		if (r < 0 && rc == 0)
			rc = r;
	}
	return rc;
}

/* --- directories ---
 *
 * Listing design. A listing is a sequence of segments in name order, each
 * of 1 to VC_SEG_MAX entries with their names in one allocation; a
 * snapshot (struct vc_dir) is an array of references to segments plus the
 * index of each segment's first entry. Segments are immutable and shared
 * by every snapshot that holds them, so an edit (a create, an unlink, a
 * rename) copies the one or two segments it touches and the array of
 * segment references: O(VC_SEG_MAX + n / VC_SEG_FILL), about 30 KB at
 * 100,000 entries, where it copied the whole listing (6 MB) before. A
 * segment that grows past VC_SEG_MAX is split in halves; one left empty
 * is dropped, one that falls below VC_SEG_MIN joins a neighbour when the
 * two fit in VC_SEG_FILL.
 *
 * In the file a listing is the same: a 'D' record (version
 * VC_DIR_CRC_VERSION: CRC32C, dv, entry count, segment count, then each
 * segment's page id and entry count) and one 'G' record a segment, its
 * page (key 'G' + FID + u64 page id; value: version VC_PAGE_VERSION,
 * CRC32C, entry count, entries as in a version-1 listing). A page id names
 * one content for ever (a changed segment gets a new id, "Page ids"), so
 * storing a snapshot writes the pages its present 'D' does not name, then
 * the 'D' record, then deletes the pages the previous 'D' record named
 * that this one does not. A killed process leaves the old listing or the
 * new one, without a tdb transaction (starting one copies the tdb's hash
 * table, 512 KB); death between the steps leaves at most some pages no
 * record names (orphans, never read), which the next open sweeps ("sweep
 * and check" below). Only vc_put_dir() (a listing with all its entries'
 * attributes) uses a transaction. A 'D' record naming a page that is
 * missing, does not parse or its CRC, holds another count or breaks the
 * name order is a damaged listing: it is dropped with its pages and
 * fetched again. Version-1 'D' records (the whole listing in one record)
 * and version-2 ones (no CRC; their pages version 1) of earlier cairnd are
 * still read; an earlier cairnd drops a version-3 one as of another format
 * (and leaves its pages behind, for the next sweep).
 */
#define VC_SEG_FILL   256 /* entries a segment is built with */
#define VC_SEG_MAX    512 /* a segment that grows past this is split */
#define VC_SEG_MIN    64  /* one that shrinks below joins a neighbour */
#define VC_PG_KEY_LEN (VC_KEY_LEN + 8)

struct vc_seg {
	atomic_uint refcnt;
	uint32_t n;
	/* Its page's id, never used for other content; 0 until the page is
	 * first written. Protected by the lock of the vc that writes it (a
	 * segment belongs to one directory, so to one vc). */
	uint64_t id;
	struct vc_dirent ents[]; /* then the names, each NUL-terminated */
};

static int cmp_name(const struct vc_dirent *a, const struct vc_dirent *b);

/*
 * Page ids. An id names one content of one directory's listing for ever:
 * a store skips the pages its 'D' record already names, so an id given
 * twice would make a listing name the wrong page. Ids come from a counter
 * of the vc, at or above VC_ID_BASE (an older cairnd's ids, taken from
 * the wall clock in ns, are far below 2^63), and are reserved in blocks
 * of VC_ID_BLOCK by the 'I' record before one of them is used: a cairnd
 * restarted after a kill starts at the reservation, so neither a restart
 * nor a step of the clock can hand an id out twice. A segment gets its
 * id when its page is first written (0 until then). seg_id_floor, moved
 * past every id handed out or read back, keeps ids apart within the
 * process even across a file recreated under live snapshots.
 */
#define VC_ID_BASE  (UINT64_C(1) << 63)
#define VC_ID_BLOCK 65536
/* Ids at or above this are never handed out (2^63 of them come first): a
 * key or 'D' naming one is damage (keys carry no CRC), so no id + 1 and
 * no reservation can wrap around to ids in use. */
#define VC_ID_MAX   (UINT64_MAX - 2 * (uint64_t)VC_ID_BLOCK)
static _Atomic uint64_t seg_id_floor;

static void
seg_seen_id(uint64_t id)
{
	uint64_t v = atomic_load(&seg_id_floor);

	if (id >= VC_ID_MAX)
		return; /* damage, dropped by the caller */

	while (v <= id &&
	       !atomic_compare_exchange_weak(&seg_id_floor, &v, id + 1))
		;
}

/* Write the 'I' record: ids below @limit may be in use; @clean says the
 * file was closed by vc_close(). Under the lock. */
static int
id_store_locked(struct vc *vc, uint64_t limit, bool clean)
{
	struct wbuf w = {0};
	int rc;

	rec_begin(&w, VC_REC_VERSION);
	wb_u64(&w, limit);
	wb_u8(&w, clean ? 1 : 0);
	rec_seal(&w, 0);
	rc = vc_store_locked(vc, 'I', NULL, &w);
	free(w.p);
	return rc;
}

/* A new page id into *@id, reserving a block first when the last one is
 * used up. Under the lock. */
static int
seg_new_id_locked(struct vc *vc, uint64_t *id)
{
	uint64_t floor = atomic_load(&seg_id_floor);
	int rc;

	if (vc->next_id < floor)
		vc->next_id = floor;
	if (vc->next_id >= VC_ID_MAX)
		return -EOVERFLOW;
	if (vc->next_id >= vc->id_limit) {
		rc = id_store_locked(vc, vc->next_id + VC_ID_BLOCK, false);
		if (rc)
			return rc;
		vc->id_limit = vc->next_id + VC_ID_BLOCK;
	}
	*id = vc->next_id++;
	seg_seen_id(*id);
	return 0;
}

static char *
seg_names(struct vc_seg *s)
{
	return (char *)(s->ents + s->n);
}

/* A segment of @n entries and @blob bytes of names (refcount 1, no page
 * id yet). NULL when out of memory. */
static struct vc_seg *
seg_alloc(size_t n, size_t blob)
{
	struct vc_seg *s;

	s = malloc(sizeof(*s) + n * sizeof(s->ents[0]) + (blob ? blob : 1));
	if (!s)
		return NULL;
	atomic_init(&s->refcnt, 1);
	s->n = (uint32_t)n;
	s->id = 0;
	return s;
}

static struct vc_seg *
seg_get(struct vc_seg *s)
{
	atomic_fetch_add(&s->refcnt, 1);
	return s;
}

/* Drop a reference; @return the entries freed (0 while others hold it). */
static size_t
seg_put(struct vc_seg *s)
{
	size_t n;

	if (!s || atomic_fetch_sub(&s->refcnt, 1) != 1)
		return 0;
	n = s->n;
	free(s);
	return n;
}

/* A new segment holding copies of *@src[0..n), which are in name order. */
static struct vc_seg *
seg_from(const struct vc_dirent *const *src, size_t n)
{
	size_t blob = 0, off = 0;
	struct vc_seg *s;
	char *nm;

	for (size_t i = 0; i < n; i++)
		blob += src[i]->namelen + 1u;
	s = seg_alloc(n, blob);
	if (!s)
		return NULL;
	nm = seg_names(s);
	for (size_t i = 0; i < n; i++) {
		s->ents[i] = *src[i];
		memcpy(nm + off, src[i]->name, src[i]->namelen);
		nm[off + src[i]->namelen] = '\0';
		s->ents[i].name = nm + off;
		off += src[i]->namelen + 1u;
	}
	return s;
}

/* An empty snapshot with room for @nseg segment references. */
static struct vc_dir *
dir_new(size_t nseg)
{
	struct vc_dir *d;

	d = calloc(1, sizeof(*d) + nseg * sizeof(*d->seg) +
			      (nseg + 1) * sizeof(*d->first));
	if (!d)
		return NULL;
	atomic_init(&d->refcnt, 1);
	d->nseg = nseg;
	d->seg = (struct vc_seg **)(d + 1);
	d->first = (size_t *)(d->seg + nseg);
	return d;
}

/* Fill @d's first-entry index and count from its segments. */
static void
dir_count(struct vc_dir *d)
{
	size_t n = 0;

	for (size_t k = 0; k < d->nseg; k++) {
		d->first[k] = n;
		n += d->seg[k]->n;
	}
	d->first[d->nseg] = n;
	d->n = n;
}

const struct vc_dirent *
vc_dir_ent(const struct vc_dir *d, size_t i)
{
	size_t lo = 0, hi = d->nseg;

	assert(i < d->n);
	/* The last segment whose first entry is at or before i (no segment
	 * is empty, so first[] rises strictly). */
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;

		if (d->first[mid] <= i)
			lo = mid;
		else
			hi = mid;
	}
	return &d->seg[lo]->ents[i - d->first[lo]];
}

/* Where @key is, or would go, in @d: segment *@k, position *@j in it
 * (*@k = *@j = 0 in an empty listing; past the end: the last segment's
 * end). @return true if an entry of that name is there. */
static bool
dir_locate(const struct vc_dir *d, const struct vc_dirent *key, size_t *k,
	   size_t *j)
{
	size_t lo = 0, hi = d->nseg;
	const struct vc_seg *s;
	int c = 1;

	*k = *j = 0;
	if (!d->nseg)
		return false;
	/* The first segment whose last name is not below the key. */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		s = d->seg[mid];
		if (cmp_name(&s->ents[s->n - 1], key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == d->nseg) {
		*k = d->nseg - 1;
		*j = d->seg[*k]->n;
		return false;
	}
	*k = lo;
	s = d->seg[lo];
	lo = 0;
	hi = s->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		c = cmp_name(&s->ents[mid], key);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*j = lo;
	return lo < s->n && cmp_name(&s->ents[lo], key) == 0;
}

long
vc_dir_find(const struct vc_dir *d, const char *name, size_t len)
{
	struct vc_dirent key = {.name = name, .namelen = (uint16_t)len};
	size_t k, j;

	if (len > PROTO_NAME_MAX)
		return -1;
	if (!dir_locate(d, &key, &k, &j))
		return -1;
	return (long)(d->first[k] + j);
}

/* A new snapshot of @old's segments at @dv. NULL + errno. */
static struct vc_dir *
dir_share(const struct vc_dir *old, uint64_t dv)
{
	struct vc_dir *d = dir_new(old->nseg);

	if (!d) {
		errno = ENOMEM;
		return NULL;
	}
	d->fid = old->fid;
	d->dv = dv;
	for (size_t k = 0; k < old->nseg; k++)
		d->seg[k] = seg_get(old->seg[k]);
	dir_count(d);
	return d;
}

/*
 * The entries of @s (NULL: none) without position @jd (-1: none) and with
 * @a put at position @ja (-1: none; @rep: in place of the entry there), as
 * new segments in @out: none if nothing is left, two halves past
 * VC_SEG_MAX. @return how many, -1 when out of memory.
 */
static int
seg_edit(const struct vc_seg *s, long jd, const struct vc_dirent *a, long ja,
	 bool rep, struct vc_seg **out)
{
	const struct vc_dirent *tmp[VC_SEG_MAX + 1];
	size_t n = 0, sn = s ? s->n : 0;

	for (size_t i = 0; i <= sn; i++) {
		if (a && (long)i == ja)
			tmp[n++] = a;
		if (i == sn)
			break;
		if ((long)i == jd || (rep && (long)i == ja))
			continue;
		tmp[n++] = &s->ents[i];
	}
	if (n == 0)
		return 0;
	if (n <= VC_SEG_MAX) {
		out[0] = seg_from(tmp, n);
		return out[0] ? 1 : -1;
	}
	out[0] = seg_from(tmp, n / 2);
	out[1] = seg_from(tmp + n / 2, n - n / 2);
	if (!out[0] || !out[1]) {
		seg_put(out[0]);
		seg_put(out[1]);
		return -1;
	}
	return 2;
}

/*
 * Segment @s of @d (just made by an edit that removed an entry) joins a
 * neighbour when it has fallen below VC_SEG_MIN entries and the two fit
 * in VC_SEG_FILL, so a directory emptied entry by entry keeps about one
 * segment per VC_SEG_FILL entries, not its old count. @d's entry count
 * and first[] are filled afterwards (dir_count()). @return 0 or -1 when
 * out of memory.
 */
static int
dir_join(struct vc_dir *d, const struct vc_seg *s)
{
	const struct vc_dirent *tmp[VC_SEG_FILL];
	struct vc_seg *j;
	size_t i = 0, lo, n = 0;

	if (s->n >= VC_SEG_MIN)
		return 0;
	while (i < d->nseg && d->seg[i] != s)
		i++;
	assert(i < d->nseg);
	if (i + 1 < d->nseg && s->n + d->seg[i + 1]->n <= VC_SEG_FILL)
		lo = i;
	else if (i > 0 && s->n + d->seg[i - 1]->n <= VC_SEG_FILL)
		lo = i - 1;
	else
		return 0;
	for (size_t k = lo; k <= lo + 1; k++)
		for (uint32_t e = 0; e < d->seg[k]->n; e++)
			tmp[n++] = &d->seg[k]->ents[e];
	j = seg_from(tmp, n);
	if (!j)
		return -1;
	seg_put(d->seg[lo]);
	seg_put(d->seg[lo + 1]);
	d->seg[lo] = j;
	memmove(&d->seg[lo + 1], &d->seg[lo + 2],
		(d->nseg - lo - 2) * sizeof(*d->seg));
	d->nseg--;
	return 0;
}

/*
 * @old with @del removed and @add (@type, @fid) added or replaced: the one
 * or two segments they fall in are copied with the change, every other
 * segment is shared. An edit that changes no name, type or FID (the reply
 * to our own create, whose entry the create already put in) shares all of
 * them. NULL + errno.
 */
static struct vc_dir *
dir_edit_mem(const struct vc_dir *old, const char *del, const char *add,
	     uint8_t type, const struct fid *fid, uint64_t dv)
{
	struct vc_dirent dk = {0}, ak = {0};
	struct vc_seg *r1[2] = {0}, *r2[2] = {0};
	size_t kd = 0, jd = 0, ka = 0, ja = 0, nn, m = 0;
	bool hd = false, ha = false, two;
	int n1, n2 = 0;
	struct vc_dir *d;

	if (del) {
		dk.name = del;
		dk.namelen = (uint16_t)strlen(del);
		hd = dir_locate(old, &dk, &kd, &jd);
	}
	if (add) {
		ak.name = add;
		ak.namelen = (uint16_t)strlen(add);
		ak.type = type;
		ak.fid = *fid;
		ha = dir_locate(old, &ak, &ka, &ja);
		if (hd && !cmp_name(&dk, &ak))
			hd = false; /* the same name: replaced below */
	}
	if (!hd && (!add || (ha && old->seg[ka]->ents[ja].type == type &&
			     fid_eq(&old->seg[ka]->ents[ja].fid, fid))))
		return dir_share(old, dv);
	if (!old->nseg) {
		/* Only an add into an empty listing gets here. */
		n1 = seg_edit(NULL, -1, &ak, 0, false, r1);
		d = n1 == 1 ? dir_new(1) : NULL;
		if (!d) {
			seg_put(r1[0]);
			errno = ENOMEM;
			return NULL;
		}
		d->seg[0] = r1[0];
		goto done;
	}
	two = hd && add && kd != ka;
	if (hd && add && kd == ka)
		n1 = seg_edit(old->seg[kd], (long)jd, &ak, (long)ja, ha, r1);
	else if (hd)
		n1 = seg_edit(old->seg[kd], (long)jd, NULL, -1, false, r1);
	else
		n1 = seg_edit(old->seg[ka], -1, &ak, (long)ja, ha, r1);
	if (two)
		n2 = seg_edit(old->seg[ka], -1, &ak, (long)ja, ha, r2);
	if (!hd)
		kd = ka;
	nn = old->nseg - 1 + (size_t)n1 + (two ? (size_t)n2 - 1 : 0);
	d = n1 >= 0 && n2 >= 0 ? dir_new(nn) : NULL;
	if (!d) {
		for (int i = 0; i < 2; i++) {
			seg_put(n1 > i ? r1[i] : NULL);
			seg_put(n2 > i ? r2[i] : NULL);
		}
		errno = ENOMEM;
		return NULL;
	}
	for (size_t k = 0; k < old->nseg; k++) {
		if (k == kd)
			for (int i = 0; i < n1; i++)
				d->seg[m++] = r1[i];
		else if (two && k == ka)
			for (int i = 0; i < n2; i++)
				d->seg[m++] = r2[i];
		else
			d->seg[m++] = seg_get(old->seg[k]);
	}
	assert(m == nn);
	if (hd && n1 == 1 && dir_join(d, r1[0]) < 0) {
		vc_dir_put(d);
		errno = ENOMEM;
		return NULL;
	}
done:
	d->fid = old->fid;
	d->dv = dv;
	dir_count(d);
	return d;
}

static void
enc_dirent(struct wbuf *w, const struct vc_dirent *e)
{
	wb_u16(w, e->namelen);
	wb_bytes(w, e->name, e->namelen);
	wb_u8(w, e->type);
	wb_fid(w, &e->fid);
}

static TDB_DATA
pgkey(uint8_t *buf, const struct fid *fid, uint64_t id)
{
	TDB_DATA k = mkkey(buf, 'G', fid);

	for (int i = 0; i < 8; i++)
		buf[VC_KEY_LEN + i] = (uint8_t)(id >> (8 * i));
	k.dsize = VC_PG_KEY_LEN;
	return k;
}

/*
 * The page ids a 'D' record names, as an open-addressed set (ids are
 * never 0), each with a mark: a store marks the ones its snapshot still
 * names and drops the others. An edit of a listing of S segments costs
 * O(S) here, a few ns a segment; sorting both id lists and searching one
 * was a quarter of an offline create's listing store at 100,000 entries.
 */
struct idset {
	uint64_t *id;
	uint8_t *kept;
	size_t mask;
};

static size_t
idset_slot(const struct idset *set, uint64_t id)
{
	return (size_t)((id * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & set->mask;
}

static void
idset_free(struct idset *set)
{
	free(set->id);
	set->id = NULL;
}

/* The page ids the 'D' record of @fid names (versions 2 and 3; none for
 * a missing or torn record or another version) into @set (the caller
 * frees it with idset_free()). Under the lock. @return 0 or -ENOMEM. */
static int
dir_pages_locked(struct vc *vc, const struct fid *fid, struct idset *set)
{
	uint8_t kb[VC_KEY_LEN];
	TDB_DATA k = mkkey(kb, 'D', fid);
	struct rbuf r = {0};
	uint8_t *p;
	size_t len = 0, cap = 16;
	uint32_t nseg = 0;

	*set = (struct idset){0};
	if (tdbw_fetch(vc->tdb, k.dptr, k.dsize, &p, &len) != 0)
		p = NULL;
	if (p && (len < 1 ||
		  (p[0] != VC_DIR_VERSION && p[0] != VC_DIR_CRC_VERSION) ||
		  !rec_crc_ok('D', p, len))) {
		/* Another version, or torn: it names nothing we may keep
		 * (the caller writes every page anew). A torn one may have
		 * named pages: sweep them at close. */
		if (len >= 1 && p[0] == VC_DIR_CRC_VERSION)
			atomic_store(&vc->need_sweep, true);
		free(p);
		p = NULL;
	}
	if (p) {
		if (p[0] == VC_DIR_VERSION) /* an older cairnd's */
			atomic_store(&vc->need_sweep, true);
		r = (struct rbuf){.p = p, .len = len,
				  .off = rec_off('D', p[0])};
		rb_u64(&r);
		rb_u64(&r);
		nseg = rb_u32(&r);
		if (r.bad || nseg > (len - r.off) / 12)
			nseg = 0;
	}
	while (cap < 2 * (size_t)nseg)
		cap *= 2;
	set->id = calloc(cap, sizeof(*set->id) + 1);
	if (!set->id) {
		free(p);
		return -ENOMEM;
	}
	set->kept = (uint8_t *)(set->id + cap);
	set->mask = cap - 1;
	for (uint32_t i = 0; i < nseg; i++) {
		uint64_t id = rb_u64(&r);
		size_t h = idset_slot(set, id);

		rb_u32(&r);
		if (!id)
			continue;
		while (set->id[h] && set->id[h] != id)
			h = (h + 1) & set->mask;
		set->id[h] = id;
	}
	free(p);
	return 0;
}

/* Is @id in @set? If so it is marked kept. */
static bool
idset_keep(struct idset *set, uint64_t id)
{
	size_t h;

	if (!id)
		return false;
	for (h = idset_slot(set, id); set->id[h]; h = (h + 1) & set->mask)
		if (set->id[h] == id) {
			set->kept[h] = 1;
			return true;
		}
	return false;
}

/* Delete the pages of @fid in @set that are not marked kept. Under the
 * lock. */
static int
dir_drop_pages_locked(struct vc *vc, const struct fid *fid,
		      const struct idset *set)
{
	uint8_t kb[VC_PG_KEY_LEN];
	int rc;

	for (size_t h = 0; h <= set->mask; h++) {
		TDB_DATA k;

		if (!set->id[h] || set->kept[h])
			continue;
		k = pgkey(kb, fid, set->id[h]);
		rc = tdbw_delete(vc->tdb, k.dptr, k.dsize);
		if (rc < 0 && rc != -ENOENT)
			return rc;
	}
	return 0;
}

/*
 * Page sizes. A page's value ends with zero bytes up to a multiple of its
 * size class: 256 bytes, or the power of two at most an eighth of the
 * page (1 KiB for the 8-16 KiB pages of 256-512 entries), so at most an
 * eighth more bytes or 255. Each stored edit writes its segment's page
 * under a new id and deletes the old one (a page id names one content);
 * without classes the new page, a few bytes longer, never fits the
 * space the last edit of the same segment freed, and tdb's best-fit
 * allocator walks its free list (two or three reads of a 250 MB mapped
 * file a record) until a record within 1.05^n of the size turns up: in a
 * cache of 1,000,000 files, whose free list holds ~2,000 small records
 * of rewritten attributes, most of an offline create's listing store
 * (18 % of cairnd's samples).
 * Of the same class, the space freed by the last edit is at the head of
 * the free list and fits exactly. The pad came later within version 2,
 * not as a version of its own: readers parse the entries their count
 * names and the CRC covers the pad, so an older cairnd reads padded
 * pages (doc/cache-format.md).
 */
#define VC_PAGE_CLASS_MIN 256

static void
page_pad(struct wbuf *w)
{
	size_t g = VC_PAGE_CLASS_MIN, len;

	while (g * 16 <= w->len)
		g *= 2;
	len = (w->len + g - 1) / g * g;
	wb_need(w, len - w->len);
	if (w->err)
		return;
	memset(w->p + w->len, 0, len - w->len);
	w->len = len;
}

/* Are the bytes of @r from its offset on a page's pad (all zero)? */
static bool
page_pad_ok(const struct rbuf *r)
{
	for (size_t i = r->off; i < r->len; i++)
		if (r->p[i])
			return false;
	return true;
}

/*
 * Write snapshot @d as the listing of its FID, in this order: the pages of
 * its segments that the present 'D' record does not name, its 'D' record,
 * the deletion of the pages the previous record named and @d does not.
 * Under the lock; inside a transaction or not (the order alone keeps a
 * killed process from leaving a record that names a missing page).
 *
 * A page is written unless the present 'D' names its id: pages exist
 * only while a 'D' names them (dir_delete() and each store drop the
 * others), so a segment another snapshot had written, whose page was
 * dropped since (a forget, a removal on the server, a newer listing),
 * is written again rather than named missing. A segment without an id
 * gets one here.
 */
static int
dir_store_locked(struct vc *vc, const struct vc_dir *d)
{
	uint8_t kb[VC_PG_KEY_LEN];
	struct wbuf w = {0};
	struct idset old;
	int rc;

	rc = dir_pages_locked(vc, &d->fid, &old);
	if (rc < 0)
		return rc;
	for (size_t k = 0; k < d->nseg && rc == 0; k++) {
		struct vc_seg *s = d->seg[k];
		TDB_DATA key;

		if (idset_keep(&old, s->id))
			continue;
		if (!s->id && (rc = seg_new_id_locked(vc, &s->id)) != 0)
			break;
		w.len = 0;
		rec_begin(&w, VC_PAGE_VERSION);
		wb_u32(&w, s->n);
		for (uint32_t i = 0; i < s->n; i++)
			enc_dirent(&w, &s->ents[i]);
		page_pad(&w);
		rec_seal(&w, 0);
		if (w.err) {
			rc = w.err;
			break;
		}
		key = pgkey(kb, &d->fid, s->id);
		rc = tdbw_store(vc->tdb, key.dptr, key.dsize, w.p, w.len,
				TDB_REPLACE);
	}
	if (rc)
		goto out;
	w.len = 0;
	rec_begin(&w, VC_DIR_CRC_VERSION);
	wb_u64(&w, d->dv);
	wb_u64(&w, d->n);
	wb_u32(&w, (uint32_t)d->nseg);
	wb_need(&w, 12 * d->nseg); /* room once, not a growth a segment */
	for (size_t k = 0; k < d->nseg; k++) {
		wb_u64(&w, d->seg[k]->id);
		wb_u32(&w, d->seg[k]->n);
	}
	rec_seal(&w, 0);
	rc = vc_store_locked(vc, 'D', &d->fid, &w);
	if (rc)
		goto out;
	rc = dir_drop_pages_locked(vc, &d->fid, &old);
out:
	free(w.p);
	idset_free(&old);
	return rc;
}

/* Delete the listing of @fid: its 'D' record, then its pages (death in
 * between leaves only unnamed pages). No transaction: vc_forget() runs for
 * every object gone, most of which have no listing. */
/* The listing of @fid (its D record, key @k, and the pages it names)
 * goes; vc->lock held. */
static int
dir_delete_locked(struct vc *vc, const struct fid *fid, const TDB_DATA *k)
{
	struct idset old;
	int rc;

	rc = dir_pages_locked(vc, fid, &old);
	if (rc)
		return rc;
	rc = tdbw_delete(vc->tdb, k->dptr, k->dsize);
	if (rc == -ENOENT)
		rc = 0;
	if (!rc)
		rc = dir_drop_pages_locked(vc, fid, &old);
	idset_free(&old);
	return rc;
}

static int
dir_delete(struct vc *vc, const struct fid *fid)
{
	uint8_t kb[VC_KEY_LEN];
	TDB_DATA k = mkkey(kb, 'D', fid);
	int rc;

	pthread_mutex_lock(&vc->lock);
	rc = dir_delete_locked(vc, fid, &k);
	pthread_mutex_unlock(&vc->lock);
	return rc;
}

/* dir_delete(), only while the D record is still @seen (what a reader
 * parsed): an edit may have stored a new listing between the reader's
 * fetches of D and of its pages, and that one must not go.
 * @return 0, -EAGAIN if D changed (read again), or a tdb error. */
static int
dir_delete_if(struct vc *vc, const struct fid *fid, const TDB_DATA *seen)
{
	uint8_t kb[VC_KEY_LEN];
	TDB_DATA k = mkkey(kb, 'D', fid);
	size_t len = 0;
	uint8_t *cur = NULL;
	int rc;

	pthread_mutex_lock(&vc->lock);
	rc = tdbw_fetch(vc->tdb, k.dptr, k.dsize, &cur, &len);
	if (rc == -ENOENT) {
		rc = -EAGAIN; /* gone meanwhile: nothing of ours to drop */
	} else if (!rc && (len != seen->dsize ||
			   memcmp(cur, seen->dptr, len))) {
		rc = -EAGAIN;
	} else if (!rc || rc == -EUCLEAN) {
		rc = dir_delete_locked(vc, fid, &k);
	}
	pthread_mutex_unlock(&vc->lock);
	free(cur);
	return rc;
}

/*
 * What the transaction of vc_put_dir() stores, in tdbw_reserve()'s terms
 * (key + value + 32 bytes a record), with a margin: its 'A' records
 * (@alen bytes each, all the same size), the pages of @d (a header, then
 * per entry its name and 23 bytes), its 'D' record (12 bytes a segment)
 * and an 'I' record should page ids run out.
 */
static size_t
put_dir_need(const struct vc_dir *d, size_t nattr, size_t alen)
{
	size_t need = nattr * (VC_KEY_LEN + alen + 32);

	need += 2 * (VC_KEY_LEN + 64) + d->nseg * (VC_PG_KEY_LEN + 64 + 12);
	for (size_t k = 0; k < d->nseg; k++)
		for (uint32_t i = 0; i < d->seg[k]->n; i++)
			need += d->seg[k]->ents[i].namelen + 24;
	return need + 256;
}

int
vc_put_dir(struct vc *vc, const struct proto_dir *pd)
{
	struct vc_dir *d;
	struct wbuf w = {0};
	int rc = 0;

	d = vc_dir_from_proto(pd);
	if (!d)
		return -errno;
	enc_attr_rec(&w, &pd->dir, 0);
	if (w.err) {
		rc = w.err;
		goto out_unlocked;
	}
	pthread_mutex_lock(&vc->lock);
	/* Room first, outside the transaction: growing the file inside it
	 * would hold the growth (a quarter of the file, a tenth past
	 * 100 MiB) in memory until the commit (tdbw_reserve()). */
	rc = tdbw_reserve(vc->tdb, put_dir_need(d, pd->n + 1, w.len));
	if (rc)
		goto out;
	if ((rc = tdbw_txn_start(vc->tdb)) != 0)
		goto out;
	rc = dir_store_locked(vc, d);
	for (size_t i = 0; i <= pd->n && rc == 0; i++) {
		const struct proto_attr *a =
			i == pd->n ? &pd->dir : &pd->ents[i].attr;

		w.len = 0;
		enc_attr_rec(&w, a, 0);
		rc = vc_store_locked(vc, 'A', &a->fid, &w);
	}
	if (rc == 0)
		rc = tdbw_txn_commit(vc->tdb);
	else
		tdbw_txn_cancel(vc->tdb);
	/* A cancelled (or failed) transaction may have taken back an 'I'
	 * record that reserved ids handed out meanwhile: reserve anew
	 * before the next one. */
	if (rc)
		vc->id_limit = vc->next_id;
out:
	pthread_mutex_unlock(&vc->lock);
out_unlocked:
	free(w.p);
	vc_dir_put(d);
	return rc;
}

int
vc_dir_edit(struct vc *vc, const struct vc_dir *old,
	    const struct proto_attr *dir_after, const char *del,
	    const char *add, const struct proto_attr *add_attr,
	    struct vc_dir **out)
{
	return vc_dir_edit_flags(vc, old, dir_after, del, add, add_attr, out,
				 0);
}

int
vc_dir_edit_flags(struct vc *vc, const struct vc_dir *old,
		  const struct proto_attr *dir_after, const char *del,
		  const char *add, const struct proto_attr *add_attr,
		  struct vc_dir **out, unsigned flags)
{
	struct vc_dir *d;
	int rc = 0;

	*out = NULL;
	if (add && strlen(add) > PROTO_NAME_MAX)
		return -ENAMETOOLONG;
	if (del && strlen(del) > PROTO_NAME_MAX)
		del = NULL; /* no such entry */
	d = dir_edit_mem(old, del, add, add ? (uint8_t)add_attr->type : 0,
			 add ? &add_attr->fid : NULL, dir_after->dv);
	if (!d)
		return -ENOMEM;
	d->fid = dir_after->fid;
	if (flags & VC_E_NOSTORE) {
		d->stored_ms = old->stored_ms;
		d->unstored = true;
		*out = d;
		return 0;
	}
	/* No transaction: starting one copies the tdb's whole hash table
	 * (512 KB at 131,071 chains), which was half of an offline create's
	 * CPU. dir_store_locked() writes in an order that a killed process
	 * cannot break: the new pages (new keys) first, then the 'D' record
	 * that names them, then the removal of the pages it no longer names;
	 * death in between leaves the old listing whole, or the new one
	 * with some unnamed pages (garbage, never read). */
	pthread_mutex_lock(&vc->lock);
	rc = dir_store_locked(vc, d);
	pthread_mutex_unlock(&vc->lock);
	if (rc) {
		vc_dir_put(d);
		return rc;
	}
	d->stored_ms = (int64_t)util_now_ms();
	*out = d;
	return 0;
}

int
vc_dir_store_unstored(struct vc *vc, const struct vc_dir *d)
{
	uint8_t kd[VC_KEY_LEN];
	TDB_DATA k = mkkey(kd, 'D', &d->fid);
	uint8_t *dp = NULL;
	size_t dn = 0;
	int rc;

	pthread_mutex_lock(&vc->lock);
	/* The file's listing of a later DV wins (a fetch or an edit that
	 * stored since). Of the same DV ours is newer: mcache_late_dir()
	 * adds a late create's name at the same DV. A damaged or older
	 * record is replaced. Local DVs (CM_DV_LOCAL) compare above server
	 * ones, as they should: an offline listing is never replaced by the
	 * server's listing it came from. */
	rc = tdbw_fetch(vc->tdb, k.dptr, k.dsize, &dp, &dn);
	if (rc == 0 && dn > 0 && dp[0] == VC_DIR_CRC_VERSION &&
	    rec_ok('D', dp, dn)) {
		struct rbuf r = {.p = dp, .len = dn,
				 .off = rec_off('D', dp[0])};
		uint64_t dv = rb_u64(&r);

		if (!r.bad && dv > d->dv) {
			pthread_mutex_unlock(&vc->lock);
			free(dp);
			return 0;
		}
	}
	free(dp);
	rc = dir_store_locked(vc, d);
	pthread_mutex_unlock(&vc->lock);
	return rc;
}

static int
cmp_name(const struct vc_dirent *a, const struct vc_dirent *b)
{
	size_t n = a->namelen < b->namelen ? a->namelen : b->namelen;
	int c = memcmp(a->name, b->name, n);

	if (c)
		return c;
	return (int)a->namelen - (int)b->namelen;
}

struct vc_dir *
vc_dir_from_proto(const struct proto_dir *pd)
{
	struct vc_dirb b = {0};

	for (size_t i = 0; i < pd->n; i++) {
		int rc = vc_dirb_add(&b, pd->ents[i].name,
				     pd->ents[i].attr.type,
				     &pd->ents[i].attr.fid);

		if (rc < 0) {
			vc_dirb_release(&b);
			errno = -rc;
			return NULL;
		}
	}
	return vc_dirb_finish(&b, &pd->dir.fid, pd->dir.dv);
}

/*
 * Parse @cnt entries (u16 name length, name, u8 type, FID) of @r into a
 * new segment; two passes, so the names take exactly their room. NULL
 * when they do not parse (*@nomem false) or memory is short (true).
 */
static struct vc_seg *
parse_seg(struct rbuf *r, uint32_t cnt, bool *nomem)
{
	struct rbuf r0 = *r;
	size_t blob = 0, off = 0;
	struct vc_seg *s;
	char *nm;

	*nomem = false;
	for (uint32_t i = 0; i < cnt && !r0.bad; i++) {
		uint16_t nl = rb_u16(&r0);

		rb_take(&r0, (size_t)nl + 21);
		blob += (size_t)nl + 1;
	}
	if (r0.bad)
		return NULL;
	s = seg_alloc(cnt, blob);
	if (!s) {
		*nomem = true;
		return NULL;
	}
	nm = seg_names(s);
	for (uint32_t i = 0; i < cnt; i++) {
		uint16_t nl = rb_u16(r);
		const uint8_t *p = rb_take(r, nl);
		struct vc_dirent *e = &s->ents[i];

		if (!p || nl == 0 || proto_name_check((const char *)p, nl))
			goto bad;
		memcpy(nm + off, p, nl);
		nm[off + nl] = '\0';
		e->name = nm + off;
		e->namelen = nl;
		off += (size_t)nl + 1;
		e->type = rb_u8(r);
		rb_fid(r, &e->fid);
		if (r->bad || e->type < PROTO_T_FILE || e->type > PROTO_T_MAX)
			goto bad;
	}
	return s;
bad:
	free(s);
	return NULL;
}

/* A version-1 listing record (dv, count, entries in the server's order),
 * after the version byte. NULL: damaged (*@nomem false) or no memory. */
static struct vc_dir *
parse_dir_v1(struct rbuf *r, const struct fid *fid, bool *nomem)
{
	struct vc_dirb b = {0};
	struct vc_seg *s;
	struct vc_dir *d;
	uint64_t dv = rb_u64(r), n = rb_u64(r);

	*nomem = false;
	if (r->bad || n > (r->len - r->off) / 24 || n > UINT32_MAX)
		return NULL;
	s = parse_seg(r, (uint32_t)n, nomem);
	if (!s)
		return NULL;
	for (uint32_t i = 0; i < s->n && !*nomem; i++)
		*nomem = vc_dirb_add(&b, s->ents[i].name,
				     (enum proto_type)s->ents[i].type,
				     &s->ents[i].fid) < 0;
	free(s);
	if (*nomem) {
		vc_dirb_release(&b);
		return NULL;
	}
	d = vc_dirb_finish(&b, fid, dv);
	if (!d && errno == ENOMEM)
		*nomem = true;
	return d;
}

/*
 * Write listing @d, read from a 'D' record of an older version (@seen,
 * its bytes), in the present format, while that record is still there
 * (an edit may have stored a newer listing meanwhile): its pages stay
 * (version 1 pages are read), only a version-1 listing gets pages. So an
 * older cairnd's records go away as they are read; reading one still asks
 * for a sweep at close in this session (that cairnd may have left pages).
 * A failure (ENOSPC) changes nothing that matters: the old record stays
 * readable, and each later read tries the upgrade again.
 */
static void
dir_upgrade(struct vc *vc, const struct vc_dir *d, const TDB_DATA *seen)
{
	uint8_t kb[VC_KEY_LEN];
	TDB_DATA k = mkkey(kb, 'D', &d->fid);
	uint8_t *cur = NULL;
	size_t len = 0;

	pthread_mutex_lock(&vc->lock);
	if (tdbw_fetch(vc->tdb, k.dptr, k.dsize, &cur, &len) == 0 &&
	    len == seen->dsize && !memcmp(cur, seen->dptr, len))
		dir_store_locked(vc, d);
	pthread_mutex_unlock(&vc->lock);
	free(cur);
}

int
vc_get_dir(struct vc *vc, const struct fid *fid, struct vc_dir **out)
{
	uint8_t kb[VC_PG_KEY_LEN];
	TDB_DATA data;
	struct rbuf r;
	struct vc_dir *d = NULL;
	uint64_t dv, n;
	uint32_t nseg;
	bool nomem = false;
	int rc, tries = 0;

	*out = NULL;
again:
	d = NULL;
	nomem = false;
	/* After a read that met an edit, the next one holds the lock from
	 * D to its last page (a listing of 100,000 entries: ~400 fetches),
	 * so a busy editor cannot make it miss again. */
	if (tries) {
		uint8_t kd[VC_KEY_LEN];
		TDB_DATA k = mkkey(kd, 'D', fid);
		uint8_t *dp = NULL;
		size_t dn = 0;

		pthread_mutex_lock(&vc->lock);
		rc = tdbw_fetch(vc->tdb, k.dptr, k.dsize, &dp, &dn);
		data.dptr = dp;
		data.dsize = dn;
		if (rc && rc != -EUCLEAN) {
			pthread_mutex_unlock(&vc->lock);
			return rc == -ENOMEM ? -ENOMEM : -ENOENT;
		}
		if (rc || !rec_ok('D', dp, dn)) {
			pthread_mutex_unlock(&vc->lock);
			free(dp);
			return vc_drop_bad(vc, 'D', fid, NULL);
		}
	} else {
		rc = vc_fetch(vc, 'D', fid, &data);
	}
	if (rc == -EUCLEAN)
		return vc_drop_bad(vc, 'D', fid, NULL);
	if (rc < 0)
		return rc;
	r = (struct rbuf){.p = data.dptr, .len = data.dsize,
			  .off = rec_off('D', data.dptr[0])};
	/* A listing of an older cairnd: it ran on this file, and it drops
	 * our 'D' records without their pages. Sweep at close. */
	if (data.dptr[0] != VC_DIR_CRC_VERSION)
		atomic_store(&vc->need_sweep, true);
	if (data.dptr[0] == VC_REC_VERSION) {
		if (tries)
			pthread_mutex_unlock(&vc->lock);
		d = parse_dir_v1(&r, fid, &nomem);
		if (d)
			dir_upgrade(vc, d, &data);
		else
			rc = nomem ? -ENOMEM : vc_drop_bad(vc, 'D', fid, &data);
		free(data.dptr);
		if (!d)
			return rc;
		*out = d;
		return 0;
	}
	dv = rb_u64(&r);
	n = rb_u64(&r);
	nseg = rb_u32(&r);
	if (r.bad || nseg > (data.dsize - r.off) / 12)
		goto bad;
	d = dir_new(nseg);
	if (!d)
		goto nomem;
	d->fid = *fid;
	d->dv = dv;
	d->nseg = 0;
	for (uint32_t k = 0; k < nseg; k++) {
		uint64_t id = rb_u64(&r);
		uint32_t cnt = rb_u32(&r);
		TDB_DATA key = pgkey(kb, fid, id);
		struct rbuf pr;
		uint8_t *p;
		size_t len;
		struct vc_seg *s;

		if (id == 0 || id >= VC_ID_MAX || cnt == 0 ||
		    cnt > VC_SEG_MAX)
			goto bad;
		seg_seen_id(id);
		if (!tries)
			pthread_mutex_lock(&vc->lock);
		rc = tdbw_fetch(vc->tdb, key.dptr, key.dsize, &p, &len);
		if (!tries)
			pthread_mutex_unlock(&vc->lock);
		if (rc == -ENOMEM)
			goto nomem;
		if (rc)
			goto bad;
		/* A page of version 1 (an older cairnd's, no CRC) or 2. */
		pr = (struct rbuf){.p = p, .len = len, .off = 1};
		if (len > 0 && p[0] == VC_PAGE_VERSION)
			pr.off = rec_crc_ok('G', p, len) ? VC_CRC_OFF : len + 1;
		s = len > 0 &&
				    (p[0] == VC_REC_VERSION ||
				     p[0] == VC_PAGE_VERSION) &&
				    pr.off <= len && rb_u32(&pr) == cnt
			    ? parse_seg(&pr, cnt, &nomem)
			    : NULL;
		/* What follows the entries is the pad (page_pad()). */
		if (s && p[0] == VC_PAGE_VERSION && !page_pad_ok(&pr)) {
			free(s);
			s = NULL;
		}
		free(p);
		if (!s) {
			if (nomem)
				goto nomem;
			goto bad;
		}
		s->id = id;
		d->seg[d->nseg++] = s;
		/* Names rise within the page and across pages. */
		for (uint32_t i = 0; i < cnt; i++) {
			const struct vc_dirent *prev =
				i ? &s->ents[i - 1]
				: k ? &d->seg[k - 1]->ents[d->seg[k - 1]->n - 1]
				    : NULL;

			if (prev && cmp_name(prev, &s->ents[i]) >= 0)
				goto bad;
		}
	}
	dir_count(d);
	if (d->n != n)
		goto bad;
	if (tries)
		pthread_mutex_unlock(&vc->lock);
	if (data.dptr[0] != VC_DIR_CRC_VERSION)
		dir_upgrade(vc, d, &data);
	free(data.dptr);
	*out = d;
	return 0;
nomem:
	if (tries)
		pthread_mutex_unlock(&vc->lock);
	free(data.dptr);
	vc_dir_put(d);
	return -ENOMEM;
bad:
	if (tries)
		pthread_mutex_unlock(&vc->lock);
	vc_dir_put(d);
	/* A page missing or unlike its D may be an edit that stored a new
	 * listing (and dropped the pages of this one) after D was read:
	 * read again rather than delete what the edit wrote. */
	rc = dir_delete_if(vc, fid, &data);
	free(data.dptr);
	if (rc == -EAGAIN && ++tries < 8)
		goto again;
	if (rc != -EAGAIN) {
		char fs[FID_STRLEN];

		fid_fmt(fid, fs);
		vc_count_damaged(vc, 'D', fs);
		/* Pages of a torn 'D' it could not name are left: sweep
		 * them at the next open. */
		atomic_store(&vc->need_sweep, true);
	}
	return -ENOENT;
}

struct vc_dir *
vc_dir_get(struct vc_dir *d)
{
	if (d)
		atomic_fetch_add(&d->refcnt, 1);
	return d;
}

/*
 * A big listing freed (the last snapshot holding its segments went)
 * leaves malloc with many free pieces, which it keeps. When the segments
 * freed held VC_TRIM_ENTRIES entries or more, the free memory goes back
 * to the system once the frees are over (memtrim.h: on its own thread,
 * keeping some at the heap's top for the next listing). Any thread.
 */
#define VC_TRIM_ENTRIES 10000

static void
dir_trim(size_t n)
{
	if (n >= VC_TRIM_ENTRIES)
		memtrim_note_work(n * 60);
}

void
vc_dir_put(struct vc_dir *d)
{
	size_t freed = 0;

	if (!d || atomic_fetch_sub(&d->refcnt, 1) != 1)
		return;
	for (size_t k = 0; k < d->nseg; k++)
		freed += seg_put(d->seg[k]);
	free(d);
	dir_trim(freed);
}

/* --- symlinks --- */

int
vc_get_link(struct vc *vc, const struct fid *fid, char **out)
{
	TDB_DATA d;
	int rc;

	*out = NULL;
	rc = vc_fetch(vc, 'L', fid, &d);
	if (rc == -EUCLEAN)
		return vc_bad_record(vc, 'L', fid);
	if (rc < 0)
		return rc;
	if (d.dsize < 2 || d.dsize > PROTO_PATH_MAX ||
	    memchr(d.dptr + 1, '\0', d.dsize - 1)) {
		free(d.dptr);
		return vc_bad_record(vc, 'L', fid);
	}
	*out = strndup((const char *)d.dptr + 1, d.dsize - 1);
	free(d.dptr);
	return *out ? 0 : -ENOMEM;
}

int
vc_put_link(struct vc *vc, const struct fid *fid, const char *target)
{
	struct wbuf w = {0};
	int rc;

	wb_u8(&w, VC_REC_VERSION);
	wb_bytes(&w, target, strlen(target));
	rc = vc_store(vc, 'L', fid, &w);
	free(w.p);
	return rc;
}

/* --- xattrs --- */

int
vc_get_xattrs(struct vc *vc, const struct fid *fid, int64_t *stamp,
	      struct proto_xattr **xp, size_t *np)
{
	TDB_DATA d;
	struct rbuf r;
	struct proto_xattr *x = NULL;
	uint64_t n;
	size_t i = 0;
	int rc;

	*xp = NULL;
	*np = 0;
	rc = vc_fetch(vc, 'X', fid, &d);
	if (rc == -EUCLEAN)
		return vc_drop_bad(vc, 'X', fid, NULL);
	if (rc < 0)
		return rc;
	r = (struct rbuf){.p = d.dptr, .len = d.dsize,
			  .off = rec_off('X', d.dptr[0])};
	*stamp = (int64_t)rb_u64(&r);
	n = rb_u64(&r);
	if (r.bad || n > (d.dsize - r.off) / 7)
		goto bad;
	x = calloc(n ? n : 1, sizeof(*x));
	if (!x) {
		free(d.dptr);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		uint16_t nl = rb_u16(&r);
		const uint8_t *nm = rb_take(&r, nl);
		uint32_t vl;
		const uint8_t *v;

		if (!nm || nl == 0 || nl > PROTO_XATTR_NAME_MAX)
			goto bad;
		vl = rb_u32(&r);
		if (vl > PROTO_XATTR_VALUE_MAX)
			goto bad;
		v = rb_take(&r, vl);
		if (!v)
			goto bad;
		x[i].name = strndup((const char *)nm, nl);
		x[i].value = malloc(vl ? vl : 1);
		if (!x[i].name || !x[i].value) {
			i++;
			proto_xattrs_free(x, i);
			free(d.dptr);
			return -ENOMEM;
		}
		if (strlen(x[i].name) != nl) {
			i++;
			goto bad;
		}
		memcpy(x[i].value, v, vl);
		x[i].len = vl;
	}
	free(d.dptr);
	*xp = x;
	*np = n;
	return 0;
bad:
	proto_xattrs_free(x, i);
	rc = vc_drop_bad(vc, 'X', fid, &d);
	free(d.dptr);
	return rc;
}

int
vc_put_xattrs(struct vc *vc, const struct fid *fid, int64_t stamp,
	      const struct proto_xattr *x, size_t n)
{
	struct wbuf w = {0};
	int rc;

	rec_begin(&w, VC_XATTR_CRC_VERSION);
	wb_u64(&w, (uint64_t)stamp);
	wb_u64(&w, n);
	for (size_t i = 0; i < n; i++) {
		size_t nl = strlen(x[i].name);

		wb_u16(&w, (uint16_t)nl);
		wb_bytes(&w, x[i].name, nl);
		wb_u32(&w, (uint32_t)x[i].len);
		wb_bytes(&w, x[i].value, x[i].len);
	}
	rec_seal(&w, 0);
	rc = vc_store(vc, 'X', fid, &w);
	free(w.p);
	return rc;
}

/* --- volume-wide records --- */

int
vc_get_seq(struct vc *vc, uint64_t *seq)
{
	TDB_DATA d;
	struct rbuf r;
	int rc;

	*seq = 0;
	rc = vc_fetch(vc, 'S', NULL, &d);
	if (rc < 0)
		return rc == -EUCLEAN ? vc_bad_record(vc, 'S', NULL) : rc;
	r = (struct rbuf){.p = d.dptr, .len = d.dsize, .off = 1};
	*seq = rb_u64(&r);
	free(d.dptr);
	if (r.bad) {
		*seq = 0;
		return vc_bad_record(vc, 'S', NULL);
	}
	return 0;
}

int
vc_put_seq(struct vc *vc, uint64_t seq)
{
	struct wbuf w = {0};
	int rc;

	wb_u8(&w, VC_REC_VERSION);
	wb_u64(&w, seq);
	rc = vc_store(vc, 'S', NULL, &w);
	free(w.p);
	return rc;
}

int
vc_get_volinfo(struct vc *vc, struct proto_volinfo *vi)
{
	TDB_DATA d;
	struct rbuf r;
	const uint8_t *nm;
	uint8_t nl;
	int rc;

	memset(vi, 0, sizeof(*vi));
	rc = vc_fetch(vc, 'V', NULL, &d);
	if (rc < 0)
		return rc == -EUCLEAN ? vc_bad_record(vc, 'V', NULL) : rc;
	r = (struct rbuf){.p = d.dptr, .len = d.dsize, .off = 1};
	vi->version = (int)rb_u32(&r);
	nl = rb_u8(&r);
	nm = rb_take(&r, nl);
	if (nm && nl < sizeof(vi->name))
		memcpy(vi->name, nm, nl);
	else
		r.bad = true;
	vi->id = rb_u32(&r);
	rb_fid(&r, &vi->root);
	vi->event_seq = rb_u64(&r);
	vi->bytes_used = rb_u64(&r);
	vi->bytes_limit = rb_u64(&r);
	vi->files_used = rb_u64(&r);
	vi->files_limit = rb_u64(&r);
	vi->readonly = rb_u8(&r) != 0;
	free(d.dptr);
	if (r.bad) {
		memset(vi, 0, sizeof(*vi));
		return vc_bad_record(vc, 'V', NULL);
	}
	return 0;
}

int
vc_put_volinfo(struct vc *vc, const struct proto_volinfo *vi)
{
	struct wbuf w = {0};
	size_t nl = strnlen(vi->name, sizeof(vi->name) - 1);
	int rc;

	wb_u8(&w, VC_REC_VERSION);
	wb_u32(&w, (uint32_t)vi->version);
	wb_u8(&w, (uint8_t)nl);
	wb_bytes(&w, vi->name, nl);
	wb_u32(&w, vi->id);
	wb_fid(&w, &vi->root);
	wb_u64(&w, vi->event_seq);
	wb_u64(&w, vi->bytes_used);
	wb_u64(&w, vi->bytes_limit);
	wb_u64(&w, vi->files_used);
	wb_u64(&w, vi->files_limit);
	wb_u8(&w, vi->readonly);
	rc = vc_store(vc, 'V', NULL, &w);
	free(w.p);
	return rc;
}

/* --- walking --- */

struct collect {
	struct fid *fids;
	size_t n, cap;
	int err;
};

static int
collect_cb(struct tdb_context *tdb, TDB_DATA k, TDB_DATA v, void *arg)
{
	struct collect *c = arg;
	struct rbuf r;

	(void)tdb;
	(void)v;
	if (k.dsize != VC_KEY_LEN || k.dptr[0] != 'A')
		return 0;
	if (c->n == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 1024;
		struct fid *nf = realloc(c->fids, ncap * sizeof(*nf));

		if (!nf) {
			c->err = -ENOMEM;
			return 1;
		}
		c->fids = nf;
		c->cap = ncap;
	}
	r = (struct rbuf){.p = k.dptr, .len = k.dsize, .off = 1};
	rb_fid(&r, &c->fids[c->n++]);
	return 0;
}

int
vc_iterate_fids(struct vc *vc, int (*cb)(void *arg, const struct fid *fid),
		void *arg)
{
	struct collect c = {0};
	int rc = 0;

	pthread_mutex_lock(&vc->lock);
	if (tdb_traverse_read(vc->tdb, collect_cb, &c) < 0 && !c.err)
		c.err = tdbw_errno(vc->tdb);
	pthread_mutex_unlock(&vc->lock);
	if (c.err) {
		free(c.fids);
		return c.err;
	}
	for (size_t i = 0; i < c.n && rc == 0; i++)
		rc = cb(arg, &c.fids[i]);
	free(c.fids);
	return rc;
}

static int
count_cb(struct tdb_context *tdb, TDB_DATA k, TDB_DATA v, void *arg)
{
	(void)tdb;
	(void)v;
	if (k.dsize == VC_KEY_LEN && k.dptr[0] == 'A')
		(*(size_t *)arg)++;
	return 0;
}

size_t
vc_count(struct vc *vc)
{
	size_t n = 0;

	pthread_mutex_lock(&vc->lock);
	tdb_traverse_read(vc->tdb, count_cb, &n);
	pthread_mutex_unlock(&vc->lock);
	return n;
}

/* --- pins --- */

int
vc_put_pin(struct vc *vc, const struct fid *fid, int recursive,
	   const char *path, const struct vc_pin_owner *owner)
{
	struct wbuf w = {0};
	size_t len = strlen(path);
	int rc;

	if (len > UINT16_MAX)
		return -ENAMETOOLONG;
	if (owner && owner->ngroups > VC_PIN_GROUPS_MAX)
		return -EINVAL;
	wb_u8(&w, VC_REC_VERSION);
	/* Flags: 1 recursive, 2 an owner follows the path. */
	wb_u8(&w, (recursive ? 1 : 0) | (owner ? 2 : 0));
	wb_u16(&w, (uint16_t)len);
	wb_bytes(&w, path, len);
	if (owner) {
		wb_u32(&w, owner->uid);
		wb_u32(&w, owner->gid);
		wb_u16(&w, (uint16_t)owner->ngroups);
		for (uint32_t i = 0; i < owner->ngroups; i++)
			wb_u32(&w, owner->groups[i]);
	}
	rc = vc_store(vc, 'P', fid, &w);
	free(w.p);
	return rc;
}

int
vc_del_pin(struct vc *vc, const struct fid *fid)
{
	return vc_delete(vc, 'P', fid);
}

struct pin_rec_list {
	struct pin_item {
		struct fid fid;
		int recursive;
		char *path;
		bool has_owner;
		struct vc_pin_owner owner;
	} *v;
	size_t n, cap;
	int err;
};

static int
pin_collect_cb(struct tdb_context *tdb, TDB_DATA k, TDB_DATA v, void *arg)
{
	struct pin_rec_list *l = arg;
	struct rbuf r;
	struct pin_item *it;
	const uint8_t *q;
	uint16_t len;
	uint8_t flags;

	(void)tdb;
	if (k.dsize != VC_KEY_LEN || k.dptr[0] != 'P')
		return 0;
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 16;
		struct pin_item *nv = realloc(l->v, ncap * sizeof(*nv));

		if (!nv) {
			l->err = -ENOMEM;
			return 1;
		}
		l->v = nv;
		l->cap = ncap;
	}
	it = &l->v[l->n];
	r = (struct rbuf){.p = k.dptr, .len = k.dsize, .off = 1};
	rb_fid(&r, &it->fid);
	r = (struct rbuf){.p = v.dptr, .len = v.dsize};
	if (rb_u8(&r) != VC_REC_VERSION)
		return 0; /* skipped: another format, never trusted */
	flags = rb_u8(&r);
	len = rb_u16(&r);
	q = rb_take(&r, len);
	it->has_owner = flags & 2;
	if (it->has_owner) {
		it->owner.uid = rb_u32(&r);
		it->owner.gid = rb_u32(&r);
		it->owner.ngroups = rb_u16(&r);
		if (it->owner.ngroups > VC_PIN_GROUPS_MAX)
			return 0;
		for (uint32_t i = 0; i < it->owner.ngroups; i++)
			it->owner.groups[i] = rb_u32(&r);
	}
	if (r.bad || r.off != r.len || (flags & ~3) ||
	    (len && memchr(q, '\0', len)))
		return 0;
	it->recursive = flags & 1;
	it->path = strndup(len ? (const char *)q : "", len);
	if (!it->path) {
		l->err = -ENOMEM;
		return 1;
	}
	l->n++;
	return 0;
}

int
vc_iterate_pins(struct vc *vc,
		int (*cb)(void *arg, const struct fid *fid, int recursive,
			  const char *path, const struct vc_pin_owner *owner),
		void *arg)
{
	struct pin_rec_list l = {0};
	int rc = 0;
	size_t i;

	pthread_mutex_lock(&vc->lock);
	if (tdb_traverse_read(vc->tdb, pin_collect_cb, &l) < 0 && !l.err)
		l.err = tdbw_errno(vc->tdb);
	pthread_mutex_unlock(&vc->lock);
	if (!l.err)
		for (i = 0; i < l.n && rc == 0; i++)
			rc = cb(arg, &l.v[i].fid, l.v[i].recursive,
				l.v[i].path,
				l.v[i].has_owner ? &l.v[i].owner : NULL);
	for (i = 0; i < l.n; i++)
		free(l.v[i].path);
	free(l.v);
	return l.err ? l.err : rc;
}

/* --- sweep and check ---
 *
 * One pass over the whole file (tdb_traverse_read) collects every page
 * ('G'), every page a listing names ('D'), and the keys of records that
 * are damaged (a bad CRC, a version this cairnd does not write or read,
 * a record that does not parse). Then, by sorting both page lists: a
 * page no 'D' names is an orphan (left by a process killed between the
 * steps of a store, or by an older cairnd, which dropped a newer 'D' and
 * left its pages); a 'D' naming a missing or damaged page, or one with
 * another count, is a broken listing. vc_open() runs it when the file was
 * not closed cleanly ('I' record) and deletes what it found (the sweep);
 * vc_check() (cairn-fsck) reports, and deletes with --repair. The pass
 * reads every record once: ~0.3 s for 100,000 cached objects (loaded VM).
 */
struct pgref {
	uint8_t fid[20];
	uint64_t id;
	uint32_t cnt; /* a page's entry count, or the count a 'D' names */
	uint32_t d;   /* a page: 1 if damaged; a name: its 'D' in dk[] */
};

struct rkey {
	uint8_t k[VC_PG_KEY_LEN];
	uint8_t len;
};

struct scan {
	bool full; /* parse every page (vc_check), not only its CRC */
	struct pgref *pg, *nm;
	size_t npg, cpg, nnm, cnm;
	struct rkey *bad; /* damaged records */
	size_t nbad, cbad;
	struct rkey *dk; /* 'D' records that name pages */
	bool *dbroken;
	size_t nd, cd;
	uint64_t records, max_id;
	int err;
};

static void *
scan_grow(void *p, size_t *cap, size_t n, size_t sz, int *err)
{
	size_t ncap;
	void *np;

	if (n < *cap)
		return p;
	ncap = *cap ? *cap * 2 : 256;
	np = realloc(p, ncap * sz);
	if (!np) {
		*err = -ENOMEM;
		return NULL;
	}
	*cap = ncap;
	return np;
}

static void
scan_bad(struct scan *sc, TDB_DATA k)
{
	struct rkey *nb = scan_grow(sc->bad, &sc->cbad, sc->nbad,
				    sizeof(*sc->bad), &sc->err);

	if (!nb)
		return;
	sc->bad = nb;
	memcpy(sc->bad[sc->nbad].k, k.dptr, k.dsize);
	sc->bad[sc->nbad++].len = (uint8_t)k.dsize;
}

static void
scan_page(struct scan *sc, TDB_DATA k, TDB_DATA v)
{
	struct pgref *np;
	struct rbuf r = {.p = v.dptr, .len = v.dsize, .off = 1};
	struct pgref *g;
	bool damaged = true;
	uint32_t cnt = 0;

	np = scan_grow(sc->pg, &sc->cpg, sc->npg, sizeof(*sc->pg), &sc->err);
	if (!np)
		return;
	sc->pg = np;
	g = &sc->pg[sc->npg++];
	memcpy(g->fid, k.dptr + 1, 20);
	g->id = 0;
	for (int i = 7; i >= 0; i--)
		g->id = g->id << 8 | k.dptr[VC_KEY_LEN + i];
	if (g->id >= sc->max_id && g->id < VC_ID_MAX)
		sc->max_id = g->id;
	if (g->id < VC_ID_MAX && v.dsize > 0 && (v.dptr[0] == VC_REC_VERSION ||
			    (v.dptr[0] == VC_PAGE_VERSION &&
			     rec_crc_ok('G', v.dptr, v.dsize)))) {
		r.off = rec_off('G', v.dptr[0]);
		cnt = rb_u32(&r);
		damaged = r.bad || cnt == 0 || cnt > VC_SEG_MAX;
		if (!damaged && sc->full) {
			bool nomem = false;
			struct vc_seg *s = parse_seg(&r, cnt, &nomem);

			if (nomem)
				sc->err = -ENOMEM;
			for (uint32_t i = 1; s && i < cnt; i++)
				if (cmp_name(&s->ents[i - 1], &s->ents[i]) >= 0)
					damaged = true;
			damaged =
				damaged || !s ||
				(v.dptr[0] == VC_PAGE_VERSION ? !page_pad_ok(&r)
							      : r.off != r.len);
			free(s);
		}
	}
	g->cnt = cnt;
	g->d = damaged;
}

static void
scan_dir(struct scan *sc, TDB_DATA k, TDB_DATA v)
{
	struct rbuf r = {.p = v.dptr, .len = v.dsize};
	uint32_t nseg, d;
	uint64_t n, sum = 0;

	if (v.dsize < 1 || !rec_crc_ok('D', v.dptr, v.dsize)) {
		scan_bad(sc, k);
		return;
	}
	r.off = rec_off('D', v.dptr[0]);
	if (v.dptr[0] == VC_REC_VERSION) {
		struct fid f;
		struct rbuf kr = {.p = k.dptr, .len = k.dsize, .off = 1};
		bool nomem = false;
		struct vc_dir *dd;

		rb_fid(&kr, &f);
		dd = parse_dir_v1(&r, &f, &nomem);
		if (nomem)
			sc->err = -ENOMEM;
		else if (!dd)
			scan_bad(sc, k);
		vc_dir_put(dd);
		return;
	}
	if (v.dptr[0] != VC_DIR_VERSION && v.dptr[0] != VC_DIR_CRC_VERSION) {
		scan_bad(sc, k);
		return;
	}
	rb_u64(&r);
	n = rb_u64(&r);
	nseg = rb_u32(&r);
	if (r.bad || nseg > (r.len - r.off) / 12 ||
	    r.len - r.off != (size_t)nseg * 12) {
		scan_bad(sc, k);
		return;
	}
	{
		struct rkey *nk = scan_grow(sc->dk, &sc->cd, sc->nd,
					    sizeof(*sc->dk), &sc->err);
		bool *nb;

		if (!nk)
			return;
		sc->dk = nk;
		nb = realloc(sc->dbroken, sc->cd * sizeof(*nb));
		if (!nb) {
			sc->err = -ENOMEM;
			return;
		}
		sc->dbroken = nb;
	}
	d = (uint32_t)sc->nd++;
	memcpy(sc->dk[d].k, k.dptr, k.dsize);
	sc->dk[d].len = (uint8_t)k.dsize;
	sc->dbroken[d] = false;
	for (uint32_t i = 0; i < nseg; i++) {
		struct pgref *np = scan_grow(sc->nm, &sc->cnm, sc->nnm,
					     sizeof(*sc->nm), &sc->err);

		if (!np)
			return;
		sc->nm = np;
		memcpy(np[sc->nnm].fid, k.dptr + 1, 20);
		np[sc->nnm].id = rb_u64(&r);
		np[sc->nnm].cnt = rb_u32(&r);
		np[sc->nnm].d = d;
		sum += np[sc->nnm].cnt;
		if (np[sc->nnm].id >= sc->max_id &&
		    np[sc->nnm].id < VC_ID_MAX)
			sc->max_id = np[sc->nnm].id;
		if (np[sc->nnm].id == 0 || np[sc->nnm].id >= VC_ID_MAX ||
		    np[sc->nnm].cnt == 0 ||
		    np[sc->nnm].cnt > VC_SEG_MAX)
			sc->dbroken[d] = true;
		sc->nnm++;
	}
	if (sum != n)
		sc->dbroken[d] = true;
}

static int
scan_cb(struct tdb_context *tdb, TDB_DATA k, TDB_DATA v, void *arg)
{
	struct scan *sc = arg;

	(void)tdb;
	sc->records++;
	if (k.dsize == VC_PG_KEY_LEN && k.dptr[0] == 'G') {
		scan_page(sc, k, v);
	} else if (k.dsize == VC_KEY_LEN && k.dptr[0] == 'D') {
		scan_dir(sc, k, v);
	} else if (k.dsize == VC_KEY_LEN && k.dptr[0] == 'A') {
		struct proto_attr a;
		struct fid f;
		struct rbuf kr = {.p = k.dptr, .len = k.dsize, .off = 1};
		struct rbuf r = {.p = v.dptr, .len = v.dsize};

		rb_fid(&kr, &f);
		if (v.dsize < 1 ||
		    (v.dptr[0] != VC_REC_VERSION &&
		     v.dptr[0] != VC_ATTR_VERSION &&
		     v.dptr[0] != VC_ATTR_CRC_VERSION) ||
		    !rec_crc_ok('A', v.dptr, v.dsize)) {
			scan_bad(sc, k);
		} else {
			r.off = rec_off('A', v.dptr[0]);
			dec_attr(&r, &a, v.dptr[0]);
			if (r.bad || !fid_eq(&a.fid, &f))
				scan_bad(sc, k);
		}
	} else if (k.dsize == VC_KEY_LEN && k.dptr[0] == 'X') {
		/* Its version and CRC (the entries are parsed at a read). */
		if (!rec_ok('X', v.dptr, v.dsize))
			scan_bad(sc, k);
	} else if (k.dsize == 1 && k.dptr[0] == 'I') {
		if (v.dsize != VC_CRC_OFF + 9 || v.dptr[0] != VC_REC_VERSION ||
		    !rec_crc_ok('I', v.dptr, v.dsize))
			scan_bad(sc, k);
	}
	return sc->err ? 1 : 0;
}

static int
cmp_pgref(const void *x, const void *y)
{
	const struct pgref *a = x, *b = y;
	int c = memcmp(a->fid, b->fid, 20);

	if (c)
		return c;
	return a->id < b->id ? -1 : a->id > b->id;
}

static void
scan_free(struct scan *sc)
{
	free(sc->pg);
	free(sc->nm);
	free(sc->bad);
	free(sc->dk);
	free(sc->dbroken);
}

static void
key_fmt(const uint8_t *k, size_t len, char *out)
{
	struct rbuf r = {.p = k, .len = len, .off = 1};
	struct fid f;

	if (len < VC_KEY_LEN) {
		strcpy(out, "-");
		return;
	}
	rb_fid(&r, &f);
	fid_fmt(&f, out);
}

/*
 * Read the file into @sc, then mark broken listings and count orphan
 * pages; with @fix delete the damaged records, the broken listings (their
 * 'D' and the pages they name) and the orphans. @report (may be NULL)
 * hears each finding. The file is @tdb, used by this thread alone.
 */
static int
scan_file(struct tdb_context *tdb, struct scan *sc, bool fix,
	  void (*report)(void *arg, int error, const char *msg), void *arg,
	  struct vc_check_result *res)
{
	char msg[160], fs[FID_STRLEN];
	size_t j = 0;
	int rc = 0, r;

	if (tdb_traverse_read(tdb, scan_cb, sc) < 0 && !sc->err)
		sc->err = tdbw_errno(tdb);
	if (sc->err)
		return sc->err;
	res->records += sc->records;
	if (sc->npg)
		qsort(sc->pg, sc->npg, sizeof(*sc->pg), cmp_pgref);
	if (sc->nnm)
		qsort(sc->nm, sc->nnm, sizeof(*sc->nm), cmp_pgref);
	/* Each name against the page it names; a page named by no name is
	 * an orphan (names and pages both sorted by FID and id). */
	for (size_t i = 0; i < sc->nnm; i++) {
		const struct pgref *n = &sc->nm[i];

		while (j < sc->npg && cmp_pgref(&sc->pg[j], n) < 0)
			j++;
		if (j == sc->npg || cmp_pgref(&sc->pg[j], n) ||
		    sc->pg[j].d || sc->pg[j].cnt != n->cnt)
			sc->dbroken[n->d] = true;
	}
	for (size_t i = 0; i < sc->nbad; i++) {
		res->bad++;
		key_fmt(sc->bad[i].k, sc->bad[i].len, fs);
		snprintf(msg, sizeof(msg),
			 "damaged metadata record '%c' of %s (checksum or "
			 "format)%s",
			 sc->bad[i].k[0], fs, fix ? "; removed" : "");
		if (report)
			report(arg, 1, msg);
		if (fix) {
			r = tdbw_delete(tdb, sc->bad[i].k, sc->bad[i].len);
			if (r && r != -ENOENT && !rc)
				rc = r;
			else
				res->fixed++;
		}
	}
	for (size_t d = 0; d < sc->nd; d++) {
		if (!sc->dbroken[d])
			continue;
		res->broken++;
		key_fmt(sc->dk[d].k, sc->dk[d].len, fs);
		snprintf(msg, sizeof(msg),
			 "listing of %s names a missing or damaged page%s", fs,
			 fix ? "; removed with its pages" : "");
		if (report)
			report(arg, 1, msg);
		if (fix) {
			r = tdbw_delete(tdb, sc->dk[d].k, sc->dk[d].len);
			if (r && r != -ENOENT && !rc)
				rc = r;
			else
				res->fixed++;
		}
	}
	j = 0;
	for (size_t i = 0; i < sc->npg; i++) {
		const struct pgref *g = &sc->pg[i];
		bool named = false, drop;
		uint8_t kb[VC_PG_KEY_LEN];

		while (j < sc->nnm && cmp_pgref(&sc->nm[j], g) < 0)
			j++;
		/* Named by a listing that stays? (A page may be named by
		 * one listing only: its key holds the directory's FID.) */
		for (size_t q = j; q < sc->nnm && !cmp_pgref(&sc->nm[q], g);
		     q++)
			if (!sc->dbroken[sc->nm[q].d])
				named = true;
		if (named)
			continue;
		/* An orphan; or a page of a broken listing (found above). */
		drop = fix;
		if (j == sc->nnm || cmp_pgref(&sc->nm[j], g)) {
			struct rbuf fr = {.p = g->fid, .len = 20};
			struct fid f;

			res->orphans++;
			rb_fid(&fr, &f);
			fid_fmt(&f, fs);
			snprintf(msg, sizeof(msg),
				 "listing page %016llx of %s is named by no "
				 "listing (orphan)%s",
				 (unsigned long long)g->id, fs,
				 fix ? "; removed" : "");
			if (report)
				report(arg, 1, msg);
		}
		if (!drop)
			continue;
		kb[0] = 'G';
		memcpy(kb + 1, g->fid, 20);
		for (int b = 0; b < 8; b++)
			kb[VC_KEY_LEN + b] = (uint8_t)(g->id >> (8 * b));
		r = tdbw_delete(tdb, kb, sizeof(kb));
		if (r && r != -ENOENT && !rc)
			rc = r;
		else if (j == sc->nnm || cmp_pgref(&sc->nm[j], g))
			res->fixed++;
	}
	return rc;
}

/* Sweep the file of @vc (under its lock or at close): delete damaged
 * records, broken listings and orphan pages; *@max_id gets the largest
 * page id seen. */
static int
vc_sweep_locked(struct vc *vc, struct vc_check_result *res, uint64_t *max_id)
{
	struct scan sc = {0};
	int rc;

	rc = scan_file(vc->tdb, &sc, true, NULL, NULL, res);
	*max_id = sc.max_id;
	scan_free(&sc);
	return rc;
}

uint64_t
vc_swept(struct vc *vc)
{
	return vc ? atomic_load(&vc->swept) : 0;
}

void
vc_filter_stats(struct vc *vc, struct vc_filter_stats *st)
{
	pthread_mutex_lock(&vc->lock);
	st->held = vc->attrs.n;
	st->bytes = fpset_bytes(&vc->attrs);
	st->on = !vc->attrs.off;
	pthread_mutex_unlock(&vc->lock);
	st->skipped = atomic_load(&vc->attr_skips);
}

uint64_t
vc_rebuilt(struct vc *vc)
{
	return vc ? atomic_load(&vc->rebuilt) : 0;
}

/*
 * tdb's own structure after a kill. tdb without a transaction is not
 * kill-safe at the level of its space management: tdb_allocate() merges
 * a free record into its free left neighbour (the neighbour's length and
 * tailer written) before it unlinks that record from the free list, so a
 * process killed between those writes leaves the free list naming one
 * space twice (the grown neighbour covers a record still listed). The
 * next process hands both out: two records then share bytes, and each
 * store into one tears the other (hash chains through records whose key
 * changes: keys that no lookup or delete finds, a sweep that cannot
 * remove them). A kill between the unlink of a record and its return to
 * the free list, or between writing a new record and linking it, only
 * leaks its space, which tdb_check() reports too. So an open after a
 * kill runs tdb_check() (one pass over the file, like the sweep) and,
 * when it fails, rebuilds: tdbw_rebuild() (common/tdbw.c, shared with
 * cairn-fsck --repair) copies every record the hash chains reach into a
 * new file (PATH.rebuild), which is renamed over the old one. Chains that
 * loop or cross (test_tdbw "hostile"), a key met twice or a record tdb
 * cannot read stop the copy, and the file is emptied instead (it is a
 * cache); a dead record a killed delete left in its chain does not.
 * The copy never brings back a deleted record's bytes, as a linear
 * salvage (tdb_rescue()) could. A kill during the copy leaves the old
 * file, still not closed cleanly: the next open starts again; a kill
 * after the rename leaves the new one, swept next.
 */

/* Rebuild the file of @vc in place (above). Under the lock. @return 0 or
 * an error; on error the old file stays. */
static int
vc_rebuild_locked(struct vc *vc, struct tdbw_rebuild_result *res)
{
	return tdbw_rebuild(&vc->tdb, vc->path, atomic_load(&new_hash_size),
			    TDB_NOSYNC | TDB_NOLOCK, NULL, NULL, res);
}

/*
 * Page ids and the sweep at open: read the 'I' record; when it is missing,
 * damaged or says the file was not closed cleanly, sweep the file (above)
 * and start past every id in it too. Then reserve a block of ids and mark
 * the file open (not clean). Under the lock.
 */
static int
vc_ids_open_locked(struct vc *vc)
{
	uint64_t limit = 0, floor;
	bool clean = false;
	uint8_t *p;
	size_t n;
	int rc;

	if (tdbw_fetch(vc->tdb, "I", 1, &p, &n) == 0) {
		if (n == VC_CRC_OFF + 9 && p[0] == VC_REC_VERSION &&
		    rec_crc_ok('I', p, n)) {
			struct rbuf r = {.p = p, .len = n, .off = VC_CRC_OFF};

			limit = rb_u64(&r);
			clean = rb_u8(&r) == 1;
			if (limit > VC_ID_MAX) { /* damage: as no 'I' */
				limit = 0;
				clean = false;
			}
		}
		free(p);
	}
	if (!clean) {
		struct vc_check_result res = {0};
		struct tdbw_rebuild_result rr;
		uint64_t t0 = util_now_ms(), max = 0;
		char why[160];

		/* A kill may have left tdb's free list unsound (above). */
		if (tdbw_check(vc->tdb, why, sizeof(why)) != 0) {
			rc = vc_rebuild_locked(vc, &rr);
			if (rc) {
				log_warn(LOG_VC,
					 "cannot rebuild metadata "
					 "cache '%s' (tdb's structure "
					 "is damaged: %s): %s; emptying "
					 "it",
					 vc->path, why, strerror(-rc));
				if (tdb_wipe_all(vc->tdb) != 0)
					return -tdbw_errno(vc->tdb);
				return -EAGAIN;
			}
			atomic_fetch_add(&vc->rebuilt, 1);
			log_info(LOG_VC,
				 "rebuilt metadata cache '%s' (tdb's "
				 "structure was damaged: %s): %llu "
				 "records in %llu ms",
				 vc->path, why, (unsigned long long)rr.copied,
				 (unsigned long long)(util_now_ms() - t0));
		}
		/* A kill between tdbw_reserve()'s store and delete (before
		 * vc_put_dir()'s transaction) left its record: unused space. */
		rc = tdbw_delete(vc->tdb, TDBW_RESERVE_KEY,
				 TDBW_RESERVE_KEY_LEN);
		if (rc && rc != -ENOENT)
			log_warn(LOG_VC,
				 "cannot delete the reserve record of "
				 "metadata cache '%s': %s",
				 vc->path, strerror(-rc));
		rc = vc_sweep_locked(vc, &res, &max);
		if (max >= limit)
			limit = max + 1;
		if (rc) {
			/* Ids in the file unknown: start afresh (a cache). */
			log_warn(LOG_VC, "cannot sweep metadata cache '%s': "
					 "%s; emptying it",
				 vc->path, strerror(-rc));
			if (tdb_wipe_all(vc->tdb) != 0)
				return -tdbw_errno(vc->tdb);
			return -EAGAIN;
		}
		atomic_store(&vc->swept, res.orphans);
		log_info(LOG_VC, "metadata cache '%s' was not closed "
				 "cleanly: swept %llu orphan listing pages, "
				 "%llu broken listings, %llu damaged records "
				 "of %llu in %llu ms",
			 vc->path, (unsigned long long)res.orphans,
			 (unsigned long long)res.broken,
			 (unsigned long long)res.bad,
			 (unsigned long long)res.records,
			 (unsigned long long)(util_now_ms() - t0));
	}
	floor = atomic_load(&seg_id_floor);
	vc->next_id = limit > VC_ID_BASE ? limit : VC_ID_BASE;
	if (vc->next_id < floor)
		vc->next_id = floor;
	rc = id_store_locked(vc, vc->next_id + VC_ID_BLOCK, false);
	if (rc)
		return rc;
	vc->id_limit = vc->next_id + VC_ID_BLOCK;
	vc->ids_open = true;
	return 0;
}

/* What tdb's structure check found in @path (a damaged layout), and
 * with @repair the rebuild: its report and counts. @return 0 when the
 * records may be walked now (sound, or rebuilt), -EUCLEAN when not (a
 * check), or the rebuild's error. */
static int
check_layout(struct tdb_context **tdb, const char *path, int repair,
	     const char *why,
	     void (*report)(void *arg, int error, const char *msg), void *arg,
	     struct vc_check_result *res)
{
	struct tdbw_rebuild_result rr;
	char msg[4400];
	int rc;

	res->layout = 1;
	if (repair)
		rc = tdbw_rebuild(tdb, path, atomic_load(&new_hash_size),
				  TDB_NOSYNC | TDB_NOLOCK, NULL, NULL, &rr);
	else
		rc = tdbw_rebuild(tdb, NULL, atomic_load(&new_hash_size), 0,
				  NULL, NULL, &rr);
	if (rc) {
		snprintf(msg, sizeof(msg),
			 "metadata cache '%s': tdb's structure is damaged "
			 "(tdb_check: %s) and it cannot be rebuilt (%s: its "
			 "hash chains loop or cross, or name a record tdb "
			 "cannot read); %s",
			 path, why, strerror(-rc),
			 repair ? "removing it"
				: "--repair removes it (cairnd "
				  "fetches everything again)");
		report(arg, 1, msg);
		return rc;
	}
	res->kept = rr.copied;
	snprintf(msg, sizeof(msg),
		 "metadata cache '%s': tdb's structure is damaged (tdb_check: "
		 "%s); %s all %llu records its hash chains reach%s",
		 path, why, repair ? "rebuilt with" : "a rebuild keeps",
		 (unsigned long long)rr.copied,
		 repair ? ""
			: "; records not checked until it is rebuilt "
			  "(--repair, or the next cairnd start after an "
			  "unclean stop)");
	report(arg, 1, msg);
	if (!repair)
		return -EUCLEAN;
	res->fixed++;
	return 0;
}

int
vc_check(const char *path, int repair,
	 void (*report)(void *arg, int error, const char *msg), void *arg,
	 struct vc_check_result *res)
{
	struct tdb_context *tdb;
	struct scan sc = {.full = true};
	char why[256], msg[4400];
	int rc, recovered = 0;

	memset(res, 0, sizeof(*res));
	errno = 0;
	/* A repair opens read-write, which recovers a file left in the
	 * middle of a transaction; a check opens it read-only, or a
	 * recovered copy of it (tdbw_open_ro()). */
	if (repair)
		tdb = tdbw_open(path, 0, TDB_NOLOCK, O_RDWR, 0600, NULL, NULL);
	else
		tdb = tdbw_open_ro(path, TDB_NOLOCK, &recovered);
	if (!tdb)
		return errno ? -errno : -EIO;
	if (recovered) {
		snprintf(msg, sizeof(msg),
			 "metadata cache '%s' was left in the middle of a "
			 "store (a killed cairnd): it needs recovery, which "
			 "--repair or the next cairnd start does; checked as "
			 "recovered",
			 path);
		report(arg, 0, msg);
		res->recover = 1;
	}
	rc = tdbw_check(tdb, why, sizeof(why));
	if (rc == -EUCLEAN)
		rc = check_layout(&tdb, path, repair, why, report, arg, res);
	if (!rc) {
		rc = scan_file(tdb, &sc, repair, report, arg, res);
		scan_free(&sc);
	} else if (rc == -EUCLEAN && res->layout && !repair) {
		rc = 0; /* reported; the check stops at the structure */
	}
	tdb_close(tdb);
	return rc;
}

/* --- snapshots built page by page --- */

void
vc_dirb_release(struct vc_dirb *b)
{
	free(b->ents);
	free(b->off);
	free(b->names);
	memset(b, 0, sizeof(*b));
}

int
vc_dirb_add(struct vc_dirb *b, const char *name, enum proto_type type,
	    const struct fid *fid)
{
	size_t nl = strlen(name);

	if (nl > UINT16_MAX)
		return -EINVAL;
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		struct vc_dirent *e = realloc(b->ents, cap * sizeof(*e));
		size_t *o;

		if (!e)
			return -ENOMEM;
		b->ents = e;
		o = realloc(b->off, cap * sizeof(*o));
		if (!o)
			return -ENOMEM;
		b->off = o;
		b->cap = cap;
	}
	if (b->blen + nl + 1 > b->bcap) {
		size_t cap = b->bcap ? b->bcap : 4096;
		char *p;

		while (cap < b->blen + nl + 1)
			cap *= 2;
		p = realloc(b->names, cap);
		if (!p)
			return -ENOMEM;
		b->names = p;
		b->bcap = cap;
	}
	memcpy(b->names + b->blen, name, nl + 1);
	b->off[b->n] = b->blen;
	b->ents[b->n].name = NULL;
	b->ents[b->n].namelen = (uint16_t)nl;
	b->ents[b->n].type = (uint8_t)type;
	b->ents[b->n].fid = *fid;
	b->blen += nl + 1;
	b->n++;
	return 0;
}

/* An entry to sort, with 8 bytes of its name as a big-endian number
 * (zero-padded: names hold no NUL): the 8 after the prefix every name
 * of the listing shares, so names such as "img_000123.jpg" differ in
 * their keys too. Keys in the order of the names, ties broken by the
 * whole name (the sort was a tenth of a cold listing's CPU). */
struct sortent {
	uint64_t key;
	const struct vc_dirent *e;
};

static int
cmp_sortent(const void *x, const void *y)
{
	const struct sortent *a = x, *b = y;

	if (a->key != b->key)
		return a->key < b->key ? -1 : 1;
	return cmp_name(a->e, b->e);
}

static uint64_t
name_key(const struct vc_dirent *e, size_t skip)
{
	uint64_t k = 0;

	for (size_t i = skip; i < skip + 8; i++)
		k = k << 8 | (i < e->namelen ? (uint8_t)e->name[i] : 0);
	return k;
}

/* The length of the prefix all @n (> 0) entries' names share. */
static size_t
shared_prefix(const struct vc_dirent *ents, size_t n)
{
	size_t len = ents[0].namelen;

	for (size_t i = 1; i < n && len; i++) {
		size_t k = 0;

		while (k < len && k < ents[i].namelen &&
		       ents[i].name[k] == ents[0].name[k])
			k++;
		len = k;
	}
	return len;
}

/* Below this many entries qsort() is as quick. */
#define RADIX_MIN 256

/* Sort @se (@n entries) as cmp_sortent() orders them: the keys by a
 * least-significant-byte-first radix sort (a pass of 256 counters a
 * byte, a byte that no two keys differ in skipped), then each run of
 * equal keys (names alike in their first 8 bytes past the shared
 * prefix) by qsort(). @return 0 or -ENOMEM. */
static int
sort_ents(struct sortent *se, size_t n)
{
	struct sortent *tmp, *src = se, *dst, *t;
	uint64_t diff = 0;
	size_t cnt[256], i, j;

	if (n < RADIX_MIN) {
		qsort(se, n, sizeof(*se), cmp_sortent);
		return 0;
	}
	tmp = malloc(n * sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	dst = tmp;
	for (i = 1; i < n; i++)
		diff |= se[i].key ^ se[0].key;
	for (unsigned sh = 0; sh < 64; sh += 8) {
		size_t sum = 0;

		if (!((diff >> sh) & 0xff))
			continue;
		memset(cnt, 0, sizeof(cnt));
		for (i = 0; i < n; i++)
			cnt[(src[i].key >> sh) & 0xff]++;
		for (j = 0; j < 256; j++) {
			size_t c = cnt[j];

			cnt[j] = sum;
			sum += c;
		}
		for (i = 0; i < n; i++)
			dst[cnt[(src[i].key >> sh) & 0xff]++] = src[i];
		t = src;
		src = dst;
		dst = t;
	}
	if (src != se)
		memcpy(se, src, n * sizeof(*se));
	free(tmp);
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && se[j].key == se[i].key; j++)
			;
		if (j - i > 1)
			qsort(se + i, j - i, sizeof(*se), cmp_sortent);
	}
	return 0;
}

struct vc_dir *
vc_dirb_finish(struct vc_dirb *b, const struct fid *fid, uint64_t dv)
{
	const struct vc_dirent **ord = NULL;
	struct sortent *se = NULL;
	struct vc_dir *d = NULL;
	size_t nseg = (b->n + VC_SEG_FILL - 1) / VC_SEG_FILL, skip;
	int err = ENOMEM;

	ord = malloc((b->n ? b->n : 1) * sizeof(*ord));
	se = malloc((b->n ? b->n : 1) * sizeof(*se));
	if (!ord || !se)
		goto fail;
	for (size_t i = 0; i < b->n; i++)
		b->ents[i].name = b->names + b->off[i];
	skip = b->n ? shared_prefix(b->ents, b->n) : 0;
	for (size_t i = 0; i < b->n; i++) {
		se[i].e = &b->ents[i];
		se[i].key = name_key(&b->ents[i], skip);
	}
	if (sort_ents(se, b->n) < 0)
		goto fail;
	for (size_t i = 0; i < b->n; i++)
		ord[i] = se[i].e;
	free(se);
	se = NULL;
	for (size_t i = 1; i < b->n; i++)
		if (!cmp_name(ord[i - 1], ord[i])) {
			err = EINVAL;
			goto fail;
		}
	d = dir_new(nseg);
	if (!d)
		goto fail;
	d->fid = *fid;
	d->dv = dv;
	d->nseg = 0;
	for (size_t k = 0; k < nseg; k++) {
		size_t from = k * VC_SEG_FILL;
		size_t cnt =
			b->n - from < VC_SEG_FILL ? b->n - from : VC_SEG_FILL;

		d->seg[k] = seg_from(ord + from, cnt);
		if (!d->seg[k])
			goto fail;
		d->nseg++;
	}
	dir_count(d);
	free(ord);
	vc_dirb_release(b);
	return d;
fail:
	free(se);
	free(ord);
	vc_dir_put(d);
	vc_dirb_release(b);
	errno = err;
	return NULL;
}

int
vc_put_listing(struct vc *vc, const struct proto_attr *dir,
	       const struct vc_dir *d)
{
	struct wbuf w = {0};
	int rc;

	/* No transaction (it would copy the 512 KB hash table and write a
	 * recovery area for a few MB of pages): dir_store_locked()'s order
	 * keeps the old listing or the new one, and a listing record newer
	 * than its directory's attributes (killed before the 'A' below) is
	 * only fetched again. */
	pthread_mutex_lock(&vc->lock);
	rc = dir_store_locked(vc, d);
	if (!rc) {
		enc_attr_rec(&w, dir, 0);
		rc = w.err ? w.err : vc_store_locked(vc, 'A', &dir->fid, &w);
	}
	pthread_mutex_unlock(&vc->lock);
	free(w.p);
	return rc;
}
