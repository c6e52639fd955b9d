/*
 * volstore.c - volume storage: the volume record, object records and the
 * attribute reads (getattr, readlink, xattrs). The other parts of the
 * library are vs_root.c (the root, volumes, token state, open/close),
 * vs_dir.c (directory entries, buckets, listings), vs_data.c (data files,
 * staging, cleanup of crash leftovers), vs_ops.c (the op_* mutations) and
 * vs_txn.c (transactions, the opid table, events); volstore_i.h holds
 * what they share. It is the only code that knows the on-disk layout; it
 * knows nothing of HTTP or threads (callers serialize calls on one volume).
 *
 * Storage design (doc/vol-format.md has the full layout), format 2:
 *
 *   ROOT/secret.key                  token key (0600)
 *   ROOT/volumes/NAME/meta.tdb       every piece of metadata, and the chunk
 *                                    map: "C" + OID + be64 N -> {gen, len}
 *   ROOT/volumes/NAME/tokens         "ID EPOCH": what a token must name
 *                                    (replaced by rename, never edited)
 *   ROOT/volumes/NAME/data/XX/OID.N.GEN  chunk object: the first len bytes
 *                                    of chunk N (server chunk size in the
 *                                    volume record) written at DV GEN;
 *                                    XX = first byte of OID in hex
 *   ROOT/volumes/NAME/stage/TXID/OID.CS.CHUNK   staged chunks
 *   ROOT/volumes/NAME/stage/TXID/.born          created with TXID/, never
 *                                    written: its mtime is the creation
 *                                    time that expiry goes by
 *
 * Paths on the server are built from hex object ids, hex txids and decimal
 * numbers only; a client's names are tdb keys and never touch the file
 * system (Invariant 5).
 *
 * Crash logic. Every mutation is one tdb transaction: tdb writes the new
 * blocks to a recovery area, fsyncs, writes them in place, fsyncs, and a
 * crash at any point leaves the old or the new database, never a mix
 * (tdb's transaction.c). The transaction also appends the events and the
 * opid record, so an acknowledged mutation, its events and its dedup entry
 * exist together or not at all. A store or truncate first makes the NEW
 * chunk objects OID.N.(DV+1) of the chunks it changes (vs_data.c:
 * data_make(); written and fdatasynced, or hard links to staged chunks,
 * which were fsynced at their PUT), fsyncs their directory, THEN commits the
 * transaction that points the map at them, THEN unlinks the objects it
 * stopped naming. So:
 *
 *   - kill -9 or power loss before the commit: the map and every object
 *     it names are the old ones; the new objects are garbage that the next
 *     VS_CLEANUP open removes (no map entry names them);
 *   - after the commit: the new objects are durable (fsynced before), the
 *     replaced ones may still exist and are removed by the next cleanup.
 *
 * Staged chunks are fsynced when they are PUT, so a store after a power
 * loss never copies torn staged bytes. Chunk objects are immutable once
 * their entry is committed (GEN makes every name new): a reader holding
 * one open keeps reading that DV even after it stops being current. New
 * objects start at the volume's DV high-water mark + 1, so a (FID, DV)
 * pair never names two contents, even when a client recreates an object
 * with the same FID.
 */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <linux/falloc.h>

#include "common/log.h"
#include "common/tdbw.h"
#include "common/token.h"
#include "common/util.h"
#include "vol/volstore.h"
#include "vol/volstore_i.h"

/* ---- the volume record ---- */

int
vrec_get(struct vs_vol *v, struct vrec *vr)
{
	uint8_t *val;
	size_t len;
	int rc = kv_get(v, "V", 1, &val, &len);

	if (rc)
		return rc == -ENOENT ? -EINVAL : rc;
	memset(vr, 0, sizeof(*vr));
	if (len >= 4 &&
	    *(const uint32_t *)(const void *)val == VREC_MAGIC_GONE) {
		free(val);
		return -ENOENT; /* vos remove is deleting it */
	}
	if (len == VREC_V1_SIZE && len >= 4 &&
	    *(const uint32_t *)(const void *)val == VREC_MAGIC_V1) {
		/* Format 1: vrec_get_v1() and data_convert() read it. */
		free(val);
		return -EPROTO;
	}
	if (len != sizeof(*vr)) {
		free(val);
		return -EINVAL;
	}
	memcpy(vr, val, sizeof(*vr));
	free(val);
	if (vr->magic == VREC_MAGIC_J2)
		vr->magic = VREC_MAGIC;
	else if (vr->magic == VREC_MAGIC_J3)
		vr->magic = VREC_MAGIC_V3;
	if (vr->magic != VREC_MAGIC && vr->magic != VREC_MAGIC_V3)
		return -EINVAL;
	vr->name[sizeof(vr->name) - 1] = 0;
	return 0;
}

int
vrec_get_v1(struct vs_vol *v, struct vrec *vr)
{
	int rc;

	memset(vr, 0, sizeof(*vr));
	rc = kv_get_fixed(v, "V", 1, vr, VREC_V1_SIZE, -EINVAL);
	if (rc)
		return rc == -ENOENT ? -EINVAL : rc;
	if (vr->magic != VREC_MAGIC_V1)
		return -EINVAL;
	vr->name[sizeof(vr->name) - 1] = 0;
	return 0;
}

int
vrec_put(struct vs_vol *v, const struct vrec *vr)
{
	struct vrec m;

	if (!v->jn)
		return kv_put(v, "V", 1, vr, sizeof(*vr));
	/* Journalled: the mark travels with every record, so a checkpoint
	 * never writes an unmarked one (vs_jlock.c). */
	m = *vr;
	if (m.magic == VREC_MAGIC)
		m.magic = VREC_MAGIC_J2;
	else if (m.magic == VREC_MAGIC_V3)
		m.magic = VREC_MAGIC_J3;
	return kv_put(v, "V", 1, &m, sizeof(m));
}

/* ---- objects ---- */

void
key_obj(uint8_t *k, const uint8_t oid[16])
{
	k[0] = 'O';
	memcpy(k + 1, oid, 16);
}

void
obj_release(struct obj *o)
{
	free(o->target);
	free(o->x);
	o->target = NULL;
	o->x = NULL;
}

/* Decode the object record @val (@len bytes) into @o (zeroed by the
 * caller). @return 0, -EIO (does not parse), -ENOMEM. */
static int
obj_decode(struct obj *o, const uint8_t *val, size_t len)
{
	size_t hlen;

	if (len < sizeof(o->r))
		return -EIO;
	memcpy(&o->r, val, sizeof(o->r));
	hlen = sizeof(o->r);
	if (o->r.magic == OREC_MAGIC_EXT) {
		struct orec_ext ext;

		if (len < hlen + sizeof(ext))
			return -EIO;
		memcpy(&ext, val + hlen, sizeof(ext));
		if (ext.len < sizeof(ext) || ext.len > OREC_EXT_MAX ||
		    ext.len > len - hlen)
			return -EIO;
		o->rdev = ext.rdev;
		hlen += ext.len;
	} else if (o->r.magic != OREC_MAGIC) {
		return -EIO;
	}
	if (len != hlen + (size_t)o->r.tlen + o->r.xlen)
		return -EIO;
	if (o->r.tlen) {
		o->target = malloc(o->r.tlen + 1);
		if (!o->target)
			return -ENOMEM;
		memcpy(o->target, val + hlen, o->r.tlen);
		o->target[o->r.tlen] = 0;
	}
	if (o->r.xlen) {
		o->x = malloc(o->r.xlen);
		if (!o->x)
			return -ENOMEM;
		memcpy(o->x, val + hlen + o->r.tlen, o->r.xlen);
	}
	return 0;
}

struct obj_parse {
	struct obj *o;
	int rc;
};

/* tdbj_parse() callback: the record is decoded where tdb keeps it (in
 * its map), not first copied into a buffer of its own: a listing reads
 * one object record an entry. */
static int
obj_parser(TDB_DATA key, TDB_DATA data, void *arg)
{
	struct obj_parse *p = arg;

	(void)key;
	p->rc = obj_decode(p->o, data.dptr, data.dsize);
	return 0;
}

int
obj_get(struct vs_vol *v, const uint8_t oid[16], struct obj *o)
{
	struct obj_parse p = {.o = o, .rc = -EIO};
	uint8_t k[17];
	int rc;

	memset(o, 0, sizeof(*o));
	key_obj(k, oid);
	rc = tdbj_parse(v->j, k, sizeof(k), obj_parser, &p);
	if (!rc)
		rc = p.rc;
	if (rc) {
		if (rc == -EIO)
			log_err(LOG_VOL, "corrupt object record in volume");
		obj_release(o);
		return rc;
	}
	memcpy(o->oid, oid, 16);
	return 0;
}

/* Sockets, devices and mount points get the COB2 record with its
 * extension; every other type stays COB1 (see struct orec_ext). A mount
 * point needs no field of the extension: COB2 makes a server before
 * protocol 4 refuse the record (EIO), as it does a socket's, rather than
 * take it for an object of a type it has no name for (doc/vol-format.md
 * says what a server of protocol 4 does with it). */
static bool
obj_has_ext(const struct obj *o)
{
	return o->r.type == PROTO_T_SOCK || o->r.type == PROTO_T_CHR ||
	       o->r.type == PROTO_T_BLK || o->r.type == PROTO_T_MOUNT;
}

int
obj_put(struct vs_vol *v, const struct obj *o)
{
	uint8_t k[17], *val;
	struct orec r = o->r;
	struct orec_ext ext = {.len = sizeof(ext), .rdev = o->rdev};
	size_t hlen = sizeof(r) + (obj_has_ext(o) ? sizeof(ext) : 0);
	size_t len = hlen + o->r.tlen + o->r.xlen;
	int rc;

	val = malloc(len);
	if (!val)
		return -ENOMEM;
	r.magic = obj_has_ext(o) ? OREC_MAGIC_EXT : OREC_MAGIC;
	memcpy(val, &r, sizeof(r));
	if (obj_has_ext(o))
		memcpy(val + sizeof(r), &ext, sizeof(ext));
	if (o->r.tlen)
		memcpy(val + hlen, o->target, o->r.tlen);
	if (o->r.xlen)
		memcpy(val + hlen + o->r.tlen, o->x, o->r.xlen);
	key_obj(k, o->oid);
	rc = kv_put(v, k, sizeof(k), val, len);
	free(val);
	return rc;
}

int
obj_del(struct vs_vol *v, const uint8_t oid[16])
{
	uint8_t k[17];

	key_obj(k, oid);
	return kv_del(v, k, sizeof(k));
}

void
obj_attr(const struct vs_vol *v, const struct obj *o, struct proto_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->fid.vol = v->id;
	memcpy(a->fid.oid, o->oid, 16);
	a->type = (enum proto_type)o->r.type;
	a->mode = o->r.mode & 07777;
	a->uid = o->r.uid;
	a->gid = o->r.gid;
	a->size = o->r.size;
	a->nlink = o->r.nlink;
	a->dv = o->r.dv;
	a->atime_ns = o->r.atime;
	a->mtime_ns = o->r.mtime;
	a->ctime_ns = o->r.ctime;
	if (proto_type_has_rdev(a->type))
		a->rdev = o->rdev;
}

/* A FID of this volume, as an oid. -ENOENT for another volume's FID. */
static int
fid_oid(const struct vs_vol *v, const struct fid *f, const uint8_t **oid)
{
	if (f->vol != v->id || fid_is_null(f))
		return -ENOENT;
	*oid = f->oid;
	return 0;
}

int
obj_get_fid(struct vs_vol *v, const struct fid *f, struct obj *o)
{
	const uint8_t *oid;
	int rc = fid_oid(v, f, &oid);

	if (rc) {
		memset(o, 0, sizeof(*o));
		return rc;
	}
	return obj_get(v, oid, o);
}

/* ---- reads ---- */

int
vs_getattr(struct vs_vol *v, const struct fid *fid, struct proto_attr *a)
{
	struct obj o;
	int rc = obj_get_fid(v, fid, &o);

	if (rc) {
		memset(a, 0, sizeof(*a));
		a->fid = *fid;
		return rc;
	}
	obj_attr(v, &o, a);
	obj_release(&o);
	return 0;
}

int
vs_readlink(struct vs_vol *v, const struct fid *fid, char **target)
{
	return vs_readlink_type(v, fid, target, NULL);
}

int
vs_readlink_type(struct vs_vol *v, const struct fid *fid, char **target,
		 enum proto_type *type)
{
	struct obj o;
	int rc = obj_get_fid(v, fid, &o);

	*target = NULL;
	if (rc)
		return rc;
	if ((o.r.type != PROTO_T_SYMLINK && o.r.type != PROTO_T_MOUNT) ||
	    !o.target) {
		obj_release(&o);
		return -EINVAL;
	}
	if (type)
		*type = (enum proto_type)o.r.type;
	*target = o.target;
	o.target = NULL;
	obj_release(&o);
	return 0;
}

bool
xnext(const uint8_t *x, size_t xlen, size_t *off, struct xent *e)
{
	uint32_t vl;
	size_t o = *off;

	if (o + 1 > xlen)
		return false;
	e->nlen = x[o];
	if (!e->nlen || o + 1 + e->nlen + 4 > xlen)
		return false;
	e->name = (const char *)x + o + 1;
	memcpy(&vl, x + o + 1 + e->nlen, 4);
	if (o + 5 + e->nlen + (size_t)vl > xlen)
		return false;
	e->val = x + o + 5 + e->nlen;
	e->vlen = vl;
	e->off = o;
	e->reclen = 5 + e->nlen + vl;
	*off = o + e->reclen;
	return true;
}

int
vs_xattrs(struct vs_vol *v, const struct fid *fid, uint64_t *dv,
	  struct proto_xattr **xp, size_t *np)
{
	struct obj o;
	struct proto_xattr *x = NULL;
	struct xent e;
	size_t off = 0, n = 0;
	int rc = obj_get_fid(v, fid, &o);

	*xp = NULL;
	*np = 0;
	if (rc)
		return rc;
	*dv = o.r.dv;
	while (xnext(o.x, o.r.xlen, &off, &e))
		n++;
	x = calloc(n ? n : 1, sizeof(*x));
	if (!x) {
		rc = -ENOMEM;
		goto out;
	}
	off = 0;
	for (size_t i = 0; i < n && xnext(o.x, o.r.xlen, &off, &e); i++) {
		x[i].name = strndup(e.name, e.nlen);
		x[i].value = malloc(e.vlen ? e.vlen : 1);
		x[i].len = e.vlen;
		if (!x[i].name || !x[i].value) {
			proto_xattrs_free(x, n);
			x = NULL;
			rc = -ENOMEM;
			goto out;
		}
		memcpy(x[i].value, e.val, e.vlen);
	}
	*xp = x;
	*np = n;
out:
	obj_release(&o);
	return rc;
}

uint32_t
vs_hash_size(uint64_t nobjects)
{
	/* About 2 records an object (its object record and its directory
	 * entry; a share of a bucket or chunk map). Four chains an object
	 * keep a chain half a record long: a lookup reads ~1.25 records,
	 * each a cache miss in a large file, where one chain an object made
	 * it ~2 (half of cairn-vold's CPU in a listing of 100,000 entries was
	 * those reads). 4 bytes a chain: 16 MB at 1,000,000 objects. Odd, so
	 * the hash modulo mixes every bit. */
	if (nobjects <= HASH_SIZE / 4)
		return HASH_SIZE;
	if (nobjects > (1u << 22))
		nobjects = 1u << 22;
	return (uint32_t)(nobjects * 4) | 1;
}
