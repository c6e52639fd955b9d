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
 *   'A'+FID    attributes; version 2 (VC_ATTR_VERSION) adds a u32 rdev
 *              at the end and is written only for sockets and devices, so
 *              an older cairnd drops (and refetches) just those
 *   'D'+FID    directory listing: dv, count, then per entry
 *              (u16 name length, name, u8 type, 20-byte FID)
 *   'L'+FID    symlink target
 *   'X'+FID    xattrs: ctime stamp, count, then (u16 name len, name, u32 len, value)
 *   'P'+FID    a pin (fs pin): u8 flags (1 = recursive), u16 path length,
 *              the mount-relative path it was pinned by (for display)
 *
 * Every value begins with VC_REC_VERSION; integers are little-endian. A
 * record that fails to parse is deleted and reads as a miss.
 *
 * Crash logic: the file is opened with TDB_NOSYNC because everything in it
 * can be fetched again; multi-record updates (a listing plus its entries'
 * attributes) run in a tdb transaction so a killed process leaves either
 * the old or the new set, never half. After power loss the file may be
 * damaged: tdb_open() or the header check fails and the file is recreated
 * empty (cairnd then refetches metadata, and chunk DVs still protect data).
 *
 * Locking: one process uses the file (cairnd holds the chunk store's
 * exclusive flock on the cache directory while it runs, and so does
 * cairn-fsck), so tdb's fcntl locks are switched off (TDB_NOLOCK, as for
 * the writeback store): they cost two system calls a fetch, a quarter of
 * a cold listing's CPU (doc/cm.md, "Listings at scale"). Within the
 * process vc->lock guards the handle.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm/vc.h"
#include "common/log.h"
#include "common/memtrim.h"
#include "common/tdbw.h"
#include "common/util.h"

#define VC_KEY_LEN (1 + 20)
/* tdb hash chains of a new file (an existing one keeps its own): about one
 * chain per cached object up to 131,071, 512 KiB of table. */
#define VC_HASH_SIZE 131071

struct vc {
	pthread_mutex_t lock;
	struct tdb_context *tdb; /* protected by lock */
	char *path;
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

/* @version: the record's version byte (1: no rdev; 2: rdev). */
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
	if (version == VC_ATTR_VERSION)
		a->rdev = rb_u32(r);
	if (a->type < PROTO_T_FILE || a->type > PROTO_T_MAX ||
	    a->mode > 07777 || (a->rdev && !proto_type_has_rdev(a->type)))
		r->bad = true;
}

/* The version byte of an 'A' record: 1 unless @a needs the rdev of 2. */
static uint8_t
attr_version(const struct proto_attr *a)
{
	return a->type > PROTO_T_MAX_V2 || a->rdev ? VC_ATTR_VERSION
						   : VC_REC_VERSION;
}

/* An 'A' record: its version byte, then the attributes. */
static void
enc_attr_rec(struct wbuf *w, const struct proto_attr *a)
{
	uint8_t v = attr_version(a);

	wb_u8(w, v);
	enc_attr(w, a);
	if (v == VC_ATTR_VERSION)
		wb_u32(w, a->rdev);
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
	rc = tdbw_fetch(vc->tdb, k.dptr, k.dsize, &p, &n);
	pthread_mutex_unlock(&vc->lock);
	/* A record tdb finds damaged goes the way of one that does not
	 * parse (the caller drops it); any other failure to read is a miss,
	 * which the caller answers from the server. */
	if (rc == -EUCLEAN)
		return rc;
	if (rc)
		return -ENOENT;
	d->dptr = p;
	d->dsize = n;
	if (d->dsize < 1 ||
	    (d->dptr[0] != VC_REC_VERSION &&
	     !(tag == 'A' && d->dptr[0] == VC_ATTR_VERSION))) {
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

/* A record that does not parse: drop it so it is refetched, and say so. */
static int
vc_bad_record(struct vc *vc, char tag, const struct fid *fid)
{
	char fs[FID_STRLEN] = "-";

	if (fid)
		fid_fmt(fid, fs);
	log_warn(LOG_VC, "dropping damaged metadata record '%c' of '%s'", tag,
		 fs);
	vc_delete(vc, tag, fid);
	return -ENOENT;
}

/* --- open / close --- */

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
	int rc, err;

	vc = calloc(1, sizeof(*vc));
	if (!vc)
		return NULL;
	pthread_mutex_init(&vc->lock, NULL);
	vc->path = strdup(path);
	if (!vc->path) {
		err = ENOMEM;
		goto fail;
	}
	vc->tdb = tdb_open(path, VC_HASH_SIZE, TDB_NOSYNC | TDB_NOLOCK,
			   O_RDWR | O_CREAT, 0600);
	if (!vc->tdb) {
		log_warn(LOG_VC, "cannot open metadata cache '%s': %s; "
				 "recreating it",
			 path, strerror(errno));
		unlink(path);
		vc->tdb = tdb_open(path, VC_HASH_SIZE,
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
		return vc;
	if (rc != -ENOENT)
		log_info(LOG_VC, "metadata cache '%s' belongs to another "
				 "volume or format; emptying it",
			 path);
	if (tdb_wipe_all(vc->tdb) != 0) {
		err = -tdbw_errno(vc->tdb);
		goto fail;
	}
	wb_u8(&w, VC_REC_VERSION);
	wb_u32(&w, vol_id);
	wb_u32(&w, chunk_size);
	rc = vc_store(vc, 'H', NULL, &w);
	free(w.p);
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
	if (vc->tdb)
		tdb_close(vc->tdb);
	pthread_mutex_destroy(&vc->lock);
	free(vc->path);
	free(vc);
}

/* --- attributes --- */

int
vc_get_attr(struct vc *vc, const struct fid *fid, struct proto_attr *out)
{
	TDB_DATA d;
	struct rbuf r;
	int rc;

	rc = vc_fetch(vc, 'A', fid, &d);
	if (rc == -EUCLEAN)
		return vc_bad_record(vc, 'A', fid);
	if (rc < 0)
		return rc;
	r = (struct rbuf){.p = d.dptr, .len = d.dsize, .off = 1};
	dec_attr(&r, out, d.dptr[0]);
	free(d.dptr);
	if (r.bad || !fid_eq(&out->fid, fid))
		return vc_bad_record(vc, 'A', fid);
	return 0;
}

int
vc_put_attr(struct vc *vc, const struct proto_attr *a)
{
	return vc_put_attrs(vc, a, 1);
}

int
vc_put_attrs(struct vc *vc, const struct proto_attr *a, size_t n)
{
	struct wbuf w = {0};
	int rc = 0;
	bool txn = n > 1;

	pthread_mutex_lock(&vc->lock);
	if (txn && (rc = tdbw_txn_start(vc->tdb)) != 0)
		goto out;
	for (size_t i = 0; i < n && rc == 0; i++) {
		w.len = 0;
		enc_attr_rec(&w, &a[i]);
		rc = vc_store_locked(vc, 'A', &a[i].fid, &w);
	}
	if (txn) {
		if (rc == 0)
			rc = tdbw_txn_commit(vc->tdb);
		else
			tdbw_txn_cancel(vc->tdb);
	}
out:
	pthread_mutex_unlock(&vc->lock);
	free(w.p);
	return rc;
}

int
vc_del_attr(struct vc *vc, const struct fid *fid)
{
	return vc_delete(vc, 'A', fid);
}

int
vc_del_dir(struct vc *vc, const struct fid *fid)
{
	return vc_delete(vc, 'D', fid);
}

int
vc_del_xattrs(struct vc *vc, const struct fid *fid)
{
	return vc_delete(vc, 'X', fid);
}

int
vc_forget(struct vc *vc, const struct fid *fid)
{
	static const char tags[] = "ADLX";
	int rc = 0, r;

	for (size_t i = 0; i < sizeof(tags) - 1; i++) {
		r = vc_delete(vc, tags[i], fid);
		if (r < 0 && rc == 0)
			rc = r;
	}
	return rc;
}

/* --- directories --- */

static void
enc_listing(struct wbuf *w, const struct proto_dir *d)
{
	wb_u8(w, VC_REC_VERSION);
	wb_u64(w, d->dir.dv);
	wb_u64(w, d->n);
	for (size_t i = 0; i < d->n; i++) {
		size_t nl = strlen(d->ents[i].name);

		wb_u16(w, (uint16_t)nl);
		wb_bytes(w, d->ents[i].name, nl);
		wb_u8(w, (uint8_t)d->ents[i].attr.type);
		wb_fid(w, &d->ents[i].attr.fid);
	}
}

int
vc_put_dir(struct vc *vc, const struct proto_dir *d)
{
	struct wbuf w = {0};
	int rc = 0;

	enc_listing(&w, d);
	if (w.err) {
		free(w.p);
		return w.err;
	}
	pthread_mutex_lock(&vc->lock);
	if ((rc = tdbw_txn_start(vc->tdb)) != 0)
		goto out;
	rc = vc_store_locked(vc, 'D', &d->dir.fid, &w);
	for (size_t i = 0; i <= d->n && rc == 0; i++) {
		const struct proto_attr *a =
			i == d->n ? &d->dir : &d->ents[i].attr;

		w.len = 0;
		enc_attr_rec(&w, a);
		rc = vc_store_locked(vc, 'A', &a->fid, &w);
	}
	if (rc == 0)
		rc = tdbw_txn_commit(vc->tdb);
	else
		tdbw_txn_cancel(vc->tdb);
out:
	pthread_mutex_unlock(&vc->lock);
	free(w.p);
	return rc;
}

static struct vc_dir *dir_alloc_raw(size_t n, size_t blob, bool zero);
static int cmp_name(const struct vc_dirent *a, const struct vc_dirent *b);

/* Where @name would go in @d's name index: the number of entries whose
 * names sort before it. */
static size_t
byname_lower(const struct vc_dir *d, const char *name, size_t len)
{
	struct vc_dirent key = {.name = name, .namelen = (uint16_t)len};
	size_t lo = 0, hi = d->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (cmp_name(&d->ents[d->byname[mid]], &key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* A new snapshot of @old's entries at @dv, sharing @old's arrays (held
 * through a reference on their owner). NULL + errno. */
static struct vc_dir *
dir_share(const struct vc_dir *old, uint64_t dv)
{
	struct vc_dir *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	atomic_init(&d->refcnt, 1);
	d->fid = old->fid;
	d->dv = dv;
	d->n = old->n;
	d->ents = old->ents;
	d->byname = old->byname;
	d->names = old->names;
	d->base = vc_dir_get((struct vc_dir *)(old->base ? old->base : old));
	return d;
}

/*
 * @old with @del removed and @add (@type, @fid) added or replaced, without
 * sorting or comparing names beyond two binary searches: the entries are
 * copied in order (the new one last), and the name index is @old's with
 * the removed entries skipped and the new one put at its place. An edit
 * that changes no name, type or FID (the reply to our own create, whose
 * entry the create already put in) only makes a new snapshot header over
 * @old's arrays. So an edit of a 100,000-entry listing is a few
 * megabytes of copying, or nothing: it compared every name with the two
 * names before (3.5 ms of cairnd's CPU a create, doc/cm.md). NULL + errno.
 */
static struct vc_dir *
dir_edit_mem(const struct vc_dir *old, const char *del, const char *add,
	     uint8_t type, const struct fid *fid, uint64_t dv)
{
	size_t addlen = add ? strlen(add) : 0, blob = addlen + 1, n, off = 0;
	size_t pos = 0, k = 0, j;
	long di = del ? vc_dir_find(old, del, strlen(del)) : -1;
	long ai = add ? vc_dir_find(old, add, addlen) : -1;
	struct vc_dir *d;

	if (di == ai)
		di = -1; /* the same name: replaced below */
	if (di < 0 &&
	    (!add || (ai >= 0 && old->ents[ai].type == type &&
		      fid_eq(&old->ents[ai].fid, fid))))
		return dir_share(old, dv);
	n = old->n - (di >= 0) - (ai >= 0);
	for (size_t i = 0; i < old->n; i++)
		blob += old->ents[i].namelen + 1u;
	d = dir_alloc_raw(n + (add ? 1 : 0), blob, false);
	if (!d) {
		errno = ENOMEM;
		return NULL;
	}
	d->fid = old->fid;
	d->dv = dv;
	for (size_t i = 0; i < old->n; i++) {
		const struct vc_dirent *e = &old->ents[i];
		struct vc_dirent *o;

		if ((long)i == di || (long)i == ai)
			continue;
		o = &d->ents[k++];
		*o = *e;
		memcpy(d->names + off, e->name, e->namelen);
		d->names[off + e->namelen] = 0;
		o->name = d->names + off;
		off += e->namelen + 1u;
	}
	if (add) {
		struct vc_dirent *o = &d->ents[n];

		memcpy(d->names + off, add, addlen + 1);
		o->name = d->names + off;
		o->namelen = (uint16_t)addlen;
		o->type = type;
		o->fid = *fid;
		pos = byname_lower(old, add, addlen);
	}
	/* Old index i moves down by the removed entries before it. */
	for (j = 0, k = 0; j < old->n; j++) {
		uint32_t oi = old->byname[j];

		if (add && j == pos)
			d->byname[k++] = (uint32_t)n;
		if ((long)oi == di || (long)oi == ai)
			continue;
		d->byname[k++] = oi - (uint32_t)(di >= 0 && di < (long)oi) -
				 (uint32_t)(ai >= 0 && ai < (long)oi);
	}
	if (add && pos == old->n)
		d->byname[k++] = (uint32_t)n;
	return d;
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
	struct proto_dir pd = {.dir = *dir_after};
	struct wbuf w = {0};
	struct vc_dir *d;
	int rc = 0;

	*out = NULL;
	if (add && strlen(add) > PROTO_NAME_MAX)
		return -ENAMETOOLONG;
	d = dir_edit_mem(old, del, add, add ? (uint8_t)add_attr->type : 0,
			 add ? &add_attr->fid : NULL, dir_after->dv);
	if (!d)
		return -ENOMEM;
	d->fid = dir_after->fid;
	if (flags & VC_E_NOSTORE) {
		d->stored_ms = old->stored_ms;
		*out = d;
		return 0;
	}
	pd.ents = calloc(d->n ? d->n : 1, sizeof(*pd.ents));
	if (!pd.ents) {
		vc_dir_put(d);
		return -ENOMEM;
	}
	for (size_t i = 0; i < d->n; i++) {
		pd.ents[i].name = (char *)d->ents[i].name;
		pd.ents[i].attr.type = (enum proto_type)d->ents[i].type;
		pd.ents[i].attr.fid = d->ents[i].fid;
	}
	pd.n = d->n;
	enc_listing(&w, &pd);
	rc = w.err;
	if (!rc) {
		pthread_mutex_lock(&vc->lock);
		rc = vc_store_locked(vc, 'D', &dir_after->fid, &w);
		pthread_mutex_unlock(&vc->lock);
	}
	free(w.p);
	free(pd.ents);
	if (rc) {
		vc_dir_put(d);
		return rc;
	}
	d->stored_ms = (int64_t)util_now_ms();
	*out = d;
	return 0;
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

static int
cmp_idx(const void *x, const void *y, void *arg)
{
	const struct vc_dir *d = arg;

	return cmp_name(&d->ents[*(const uint32_t *)x],
			&d->ents[*(const uint32_t *)y]);
}

/* Allocate a snapshot of @n entries with @blob bytes of names; @zero:
 * the arrays zeroed (an edit fills every slot, and zeroing 4 MB of a
 * 100,000-entry listing per create was a tenth of its cost). */
static struct vc_dir *
dir_alloc_raw(size_t n, size_t blob, bool zero)
{
	struct vc_dir *d = calloc(1, sizeof(*d));
	size_t m = n ? n : 1;

	if (!d)
		return NULL;
	atomic_init(&d->refcnt, 1);
	d->ents = zero ? calloc(m, sizeof(*d->ents))
		       : malloc(m * sizeof(*d->ents));
	d->byname = zero ? calloc(m, sizeof(*d->byname))
			 : malloc(m * sizeof(*d->byname));
	d->names = malloc(blob ? blob : 1);
	if (!d->ents || !d->byname || !d->names) {
		free(d->ents);
		free(d->byname);
		free(d->names);
		free(d);
		return NULL;
	}
	d->n = n;
	return d;
}

static struct vc_dir *
dir_alloc(size_t n, size_t blob)
{
	return dir_alloc_raw(n, blob, true);
}

static void
dir_index(struct vc_dir *d)
{
	for (size_t i = 0; i < d->n; i++)
		d->byname[i] = (uint32_t)i;
	qsort_r(d->byname, d->n, sizeof(*d->byname), cmp_idx, d);
}

struct vc_dir *
vc_dir_from_proto(const struct proto_dir *pd)
{
	struct vc_dir *d;
	size_t blob = 0, off = 0;

	for (size_t i = 0; i < pd->n; i++)
		blob += strlen(pd->ents[i].name) + 1;
	d = dir_alloc(pd->n, blob);
	if (!d) {
		errno = ENOMEM;
		return NULL;
	}
	d->fid = pd->dir.fid;
	d->dv = pd->dir.dv;
	for (size_t i = 0; i < pd->n; i++) {
		size_t nl = strlen(pd->ents[i].name);

		memcpy(d->names + off, pd->ents[i].name, nl + 1);
		d->ents[i].name = d->names + off;
		d->ents[i].namelen = (uint16_t)nl;
		d->ents[i].type = (uint8_t)pd->ents[i].attr.type;
		d->ents[i].fid = pd->ents[i].attr.fid;
		off += nl + 1;
	}
	dir_index(d);
	return d;
}

int
vc_get_dir(struct vc *vc, const struct fid *fid, struct vc_dir **out)
{
	TDB_DATA data;
	struct rbuf r;
	struct vc_dir *d = NULL;
	uint64_t dv, n;
	size_t off = 0;
	int rc;

	*out = NULL;
	rc = vc_fetch(vc, 'D', fid, &data);
	if (rc == -EUCLEAN)
		return vc_bad_record(vc, 'D', fid);
	if (rc < 0)
		return rc;
	r = (struct rbuf){.p = data.dptr, .len = data.dsize, .off = 1};
	dv = rb_u64(&r);
	n = rb_u64(&r);
	/* Each entry takes at least 2 + 1 + 1 + 20 bytes: bound n by size. */
	if (r.bad || n > (data.dsize - r.off) / 24)
		goto bad;
	d = dir_alloc(n, data.dsize);
	if (!d) {
		free(data.dptr);
		return -ENOMEM;
	}
	d->fid = *fid;
	d->dv = dv;
	for (size_t i = 0; i < n; i++) {
		uint16_t nl = rb_u16(&r);
		const uint8_t *nm = rb_take(&r, nl);

		if (!nm || nl == 0 || proto_name_check((const char *)nm, nl))
			goto bad;
		memcpy(d->names + off, nm, nl);
		d->names[off + nl] = '\0';
		d->ents[i].name = d->names + off;
		d->ents[i].namelen = nl;
		off += (size_t)nl + 1;
		d->ents[i].type = rb_u8(&r);
		rb_fid(&r, &d->ents[i].fid);
		if (r.bad || d->ents[i].type < PROTO_T_FILE ||
		    d->ents[i].type > PROTO_T_MAX)
			goto bad;
	}
	free(data.dptr);
	dir_index(d);
	*out = d;
	return 0;
bad:
	free(data.dptr);
	vc_dir_put(d);
	return vc_bad_record(vc, 'D', fid);
}

struct vc_dir *
vc_dir_get(struct vc_dir *d)
{
	if (d)
		atomic_fetch_add(&d->refcnt, 1);
	return d;
}

/*
 * Every edit of a big listing copies its arrays (~60 bytes an entry) and
 * frees the old ones; malloc keeps what is freed, and the anonymous
 * memory of cairnd grew from 46 to 100 MB over 400 creates and unlinks
 * in a 100,000-entry directory and stayed there. When a snapshot of
 * VC_TRIM_ENTRIES or more is freed, the free memory goes back to the
 * system once the frees are over (memtrim.h: on its own thread, keeping
 * some at the heap's top for the next edit). Any thread.
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
	if (!d || atomic_fetch_sub(&d->refcnt, 1) != 1)
		return;
	if (d->base) {
		/* The arrays are the base's. */
		vc_dir_put(d->base);
		free(d);
		return;
	}
	free(d->ents);
	free(d->byname);
	free(d->names);
	dir_trim(d->n);
	free(d);
}

long
vc_dir_find(const struct vc_dir *d, const char *name, size_t len)
{
	size_t lo = 0, hi = d->n;
	struct vc_dirent key = {.name = name, .namelen = (uint16_t)len};

	if (len > PROTO_NAME_MAX)
		return -1;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = cmp_name(&key, &d->ents[d->byname[mid]]);

		if (c == 0)
			return d->byname[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
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
		return vc_bad_record(vc, 'X', fid);
	if (rc < 0)
		return rc;
	r = (struct rbuf){.p = d.dptr, .len = d.dsize, .off = 1};
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
	free(d.dptr);
	return vc_bad_record(vc, 'X', fid);
}

int
vc_put_xattrs(struct vc *vc, const struct fid *fid, int64_t stamp,
	      const struct proto_xattr *x, size_t n)
{
	struct wbuf w = {0};
	int rc;

	wb_u8(&w, VC_REC_VERSION);
	wb_u64(&w, (uint64_t)stamp);
	wb_u64(&w, n);
	for (size_t i = 0; i < n; i++) {
		size_t nl = strlen(x[i].name);

		wb_u16(&w, (uint16_t)nl);
		wb_bytes(&w, x[i].name, nl);
		wb_u32(&w, (uint32_t)x[i].len);
		wb_bytes(&w, x[i].value, x[i].len);
	}
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

struct vc_dir *
vc_dirb_finish(struct vc_dirb *b, const struct fid *fid, uint64_t dv)
{
	struct vc_dir *d = calloc(1, sizeof(*d));

	if (!d) {
		vc_dirb_release(b);
		errno = ENOMEM;
		return NULL;
	}
	atomic_init(&d->refcnt, 1);
	d->fid = *fid;
	d->dv = dv;
	d->n = b->n;
	/* The builder's arrays become the snapshot's (shrunk to fit). */
	d->names = b->names ? b->names : malloc(1);
	d->ents = b->ents ? b->ents : calloc(1, sizeof(*d->ents));
	d->byname = calloc(b->n ? b->n : 1, sizeof(*d->byname));
	b->names = NULL;
	b->ents = NULL;
	if (!d->names || !d->ents || !d->byname) {
		vc_dirb_release(b);
		vc_dir_put(d);
		errno = ENOMEM;
		return NULL;
	}
	for (size_t i = 0; i < b->n; i++)
		d->ents[i].name = d->names + b->off[i];
	vc_dirb_release(b);
	dir_index(d);
	for (size_t i = 1; i < d->n; i++)
		if (!cmp_name(&d->ents[d->byname[i - 1]],
			      &d->ents[d->byname[i]])) {
			vc_dir_put(d);
			errno = EINVAL;
			return NULL;
		}
	return d;
}

int
vc_put_listing(struct vc *vc, const struct proto_attr *dir,
	       const struct vc_dir *d)
{
	struct wbuf w = {0};
	int rc;

	wb_u8(&w, VC_REC_VERSION);
	wb_u64(&w, d->dv);
	wb_u64(&w, d->n);
	for (size_t i = 0; i < d->n; i++) {
		wb_u16(&w, d->ents[i].namelen);
		wb_bytes(&w, d->ents[i].name, d->ents[i].namelen);
		wb_u8(&w, d->ents[i].type);
		wb_fid(&w, &d->ents[i].fid);
	}
	rc = w.err;
	pthread_mutex_lock(&vc->lock);
	if (!rc)
		rc = tdbw_txn_start(vc->tdb);
	if (!rc) {
		rc = vc_store_locked(vc, 'D', &d->fid, &w);
		if (!rc) {
			w.len = 0;
			wb_u8(&w, VC_REC_VERSION);
			enc_attr(&w, dir);
			rc = w.err ? w.err
				   : vc_store_locked(vc, 'A', &dir->fid, &w);
		}
		if (!rc)
			rc = tdbw_txn_commit(vc->tdb);
		else
			tdbw_txn_cancel(vc->tdb);
	}
	pthread_mutex_unlock(&vc->lock);
	free(w.p);
	return rc;
}
