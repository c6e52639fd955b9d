/*
 * vs_dir.c - directories: entries ("E" keys), the hash buckets that list
 * them ("B" keys), lookups and listings (volstore.c has the storage
 * design).
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

/* ---- directories ---- */

/* Entry key: "E" + dir oid + name. */
static size_t
key_ent(uint8_t *k, const uint8_t dir[16], const char *name, size_t nlen)
{
	k[0] = 'E';
	memcpy(k + 1, dir, 16);
	memcpy(k + 17, name, nlen);
	return 17 + nlen;
}

void
key_bucket(uint8_t *k, const uint8_t dir[16], uint32_t b)
{
	k[0] = 'B';
	memcpy(k + 1, dir, 16);
	put_be32(k + 17, b);
}

/* Look @name up in directory @dir: child oid and type. -ENOENT. */
int
ent_get(struct vs_vol *v, const uint8_t dir[16], const char *name,
	uint8_t child[16], uint8_t *type)
{
	uint8_t k[17 + PROTO_NAME_MAX], *val;
	size_t len, nlen = strlen(name);
	int rc;

	if (nlen > PROTO_NAME_MAX)
		return -ENAMETOOLONG;
	rc = kv_get(v, k, key_ent(k, dir, name, nlen), &val, &len);
	if (rc)
		return rc;
	if (len != 17) {
		free(val);
		return -EIO;
	}
	memcpy(child, val, 16);
	if (type)
		*type = val[16];
	free(val);
	return 0;
}

/* One bucket record: [16 oid][1 type][1 namelen][name]. Walk with this;
 * returns the record's length or 0 at the end / on garbage. */
static size_t
brec_next(const uint8_t *p, size_t left)
{
	size_t n;

	if (left < 18)
		return 0;
	n = 18 + (size_t)p[17];
	return p[17] && n <= left ? n : 0;
}

/*
 * A bucket is stored padded with zero bytes up to a power of two (at
 * least BUCKET_MIN): the walk above ends at the padding (a zero name
 * length), so readers see the same records. A create or unlink then
 * rewrites the bucket in place (tdb keeps a record where it is while the
 * new value fits), instead of freeing the old record and allocating a
 * bigger one for every entry added: those freed pieces made tdb's free
 * list, which every allocation walks, grow with the directory
 * (doc/vol-format.md, "Profile").
 */
#define BUCKET_MIN 128

static size_t
bucket_cap(size_t len)
{
	size_t cap = BUCKET_MIN;

	while (cap < len)
		cap *= 2;
	return cap;
}

/* @return the bytes of @buf the records use (the padding is not). */
static size_t
bucket_used(const uint8_t *buf, size_t len)
{
	size_t off = 0, n;

	while ((n = brec_next(buf + off, len - off)))
		off += n;
	return off;
}

/* Read bucket @b of @dir from meta.tdb: *len is the length of its
 * records, without the padding. A missing bucket is empty (*buf NULL). */
static int
bucket_load(struct vs_vol *v, const uint8_t dir[16], uint32_t b, uint8_t **buf,
	    size_t *len)
{
	uint8_t k[21];
	int rc;

	key_bucket(k, dir, b);
	rc = kv_get(v, k, sizeof(k), buf, len);
	if (rc == -ENOENT) {
		*buf = NULL;
		*len = 0;
		return 0;
	}
	if (rc == 0)
		*len = bucket_used(*buf, *len);
	return rc;
}

static int
bucket_store(struct vs_vol *v, const uint8_t dir[16], uint32_t b,
	     const uint8_t *buf, size_t len)
{
	uint8_t k[21], *pad;
	size_t cap = bucket_cap(len);
	int rc;

	key_bucket(k, dir, b);
	if (!len)
		return kv_del(v, k, sizeof(k));
	pad = malloc(cap);
	if (!pad)
		return -ENOMEM;
	memcpy(pad, buf, len);
	memset(pad + len, 0, cap - len);
	rc = kv_put(v, k, sizeof(k), pad, cap);
	free(pad);
	return rc;
}

/*
 * VS_BULK (vos import): buckets are kept in memory and written once, by
 * dir_cache_flush() (vs_vol_sync(), or when they pass BCACHE_MAX bytes).
 * Rewriting a growing bucket for every imported name was most of an
 * import's cost. Hash table of (dir, bucket) -> records, chained.
 */
#define BCACHE_MAX (64u << 20)

struct bc_ent {
	uint8_t dir[16];
	uint32_t b;
	uint8_t *buf; /* the records, no padding; NULL when empty */
	size_t len, cap; /* @cap: bytes allocated at @buf */
	struct bc_ent *next;
};

struct vs_bcache {
	struct bc_ent **tab;
	size_t ntab, n, bytes;
};

static size_t
bc_hash(const struct vs_bcache *c, const uint8_t dir[16], uint32_t b)
{
	uint64_t h;

	memcpy(&h, dir, 8);
	h ^= (uint64_t)b * 0x9e3779b97f4a7c15ull;
	h *= 0xff51afd7ed558ccdull;
	return (size_t)(h ^ (h >> 29)) & (c->ntab - 1);
}

static struct bc_ent **
bc_slot(struct vs_bcache *c, const uint8_t dir[16], uint32_t b)
{
	struct bc_ent **pp = &c->tab[bc_hash(c, dir, b)];

	while (*pp && !((*pp)->b == b && !memcmp((*pp)->dir, dir, 16)))
		pp = &(*pp)->next;
	return pp;
}

static int
bc_grow(struct vs_bcache *c)
{
	size_t ntab = c->ntab ? c->ntab * 2 : 1024;
	struct bc_ent **tab = calloc(ntab, sizeof(*tab)), **old = c->tab;
	size_t oldn = c->ntab;

	if (!tab)
		return -ENOMEM;
	c->tab = tab;
	c->ntab = ntab;
	for (size_t i = 0; i < oldn; i++)
		while (old[i]) {
			struct bc_ent *e = old[i];
			size_t h = bc_hash(c, e->dir, e->b);

			old[i] = e->next;
			e->next = tab[h];
			tab[h] = e;
		}
	free(old);
	return 0;
}

void
dir_cache_free(struct vs_vol *v)
{
	struct vs_bcache *c = v->bcache;

	if (!c)
		return;
	for (size_t i = 0; i < c->ntab; i++)
		while (c->tab[i]) {
			struct bc_ent *e = c->tab[i];

			c->tab[i] = e->next;
			free(e->buf);
			free(e);
		}
	free(c->tab);
	free(c);
	v->bcache = NULL;
}

int
dir_cache_flush(struct vs_vol *v)
{
	struct vs_bcache *c = v->bcache;
	int rc = 0;

	if (!c)
		return 0;
	for (size_t i = 0; i < c->ntab && !rc; i++)
		for (struct bc_ent *e = c->tab[i]; e && !rc; e = e->next)
			rc = bucket_store(v, e->dir, e->b, e->buf, e->len);
	dir_cache_free(v);
	return rc;
}

static int
bucket_get(struct vs_vol *v, const uint8_t dir[16], uint32_t b, uint8_t **buf,
	   size_t *len)
{
	struct vs_bcache *c = v->bcache;
	struct bc_ent **pp, *e;
	int rc;

	if (!(v->flags & VS_BULK))
		return bucket_load(v, dir, b, buf, len);
	if (c && c->ntab) {
		pp = bc_slot(c, dir, b);
		if (*pp) {
			e = *pp;
			*len = e->len;
			*buf = NULL;
			if (!e->len)
				return 0;
			*buf = malloc(e->len);
			if (!*buf)
				return -ENOMEM;
			memcpy(*buf, e->buf, e->len);
			return 0;
		}
	}
	/* Not cached: as stored (an earlier flush), cached on the put. */
	rc = bucket_load(v, dir, b, buf, len);
	return rc;
}

static int
bucket_put(struct vs_vol *v, const uint8_t dir[16], uint32_t b,
	   const uint8_t *buf, size_t len)
{
	struct vs_bcache *c = v->bcache;
	struct bc_ent **pp, *e;
	uint8_t *copy = NULL;

	if (!(v->flags & VS_BULK))
		return bucket_store(v, dir, b, buf, len);
	if (!c) {
		c = v->bcache = calloc(1, sizeof(*c));
		if (!c)
			return -ENOMEM;
	}
	if ((c->n + 1) > c->ntab && bc_grow(c))
		return -ENOMEM;
	if (len) {
		copy = malloc(len);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, buf, len);
	}
	pp = bc_slot(c, dir, b);
	e = *pp;
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e) {
			free(copy);
			return -ENOMEM;
		}
		memcpy(e->dir, dir, 16);
		e->b = b;
		*pp = e;
		c->n++;
		c->bytes += sizeof(*e);
	}
	c->bytes -= e->cap;
	free(e->buf);
	e->buf = copy;
	e->len = e->cap = len;
	c->bytes += len;
	return c->bytes > BCACHE_MAX ? dir_cache_flush(v) : 0;
}

/* VS_BULK: append the record @rec (@n bytes) to bucket @b of @dir where
 * it is cached, in place (its buffer doubles when full): a bucket_get()
 * and bucket_put() copied the whole bucket (~1.7 KB in a directory of
 * 1,000) twice for every name imported. 1: appended; 0: not cached (the
 * caller gets and puts); < 0: an error. */
static int
bucket_append(struct vs_vol *v, const uint8_t dir[16], uint32_t b,
	      const uint8_t *rec, size_t n)
{
	struct vs_bcache *c = v->bcache;
	struct bc_ent *e;

	if (!(v->flags & VS_BULK) || !c || !c->ntab)
		return 0;
	e = *bc_slot(c, dir, b);
	if (!e)
		return 0;
	if (e->len + n > e->cap) {
		size_t nc = e->cap ? e->cap * 2 : BUCKET_MIN;
		uint8_t *nb;

		while (nc < e->len + n)
			nc *= 2;
		nb = realloc(e->buf, nc);
		if (!nb)
			return -ENOMEM;
		c->bytes += nc - e->cap;
		e->buf = nb;
		e->cap = nc;
	}
	memcpy(e->buf + e->len, rec, n);
	e->len += n;
	if (c->bytes > BCACHE_MAX) {
		int rc = dir_cache_flush(v);

		return rc ? rc : 1;
	}
	return 1;
}

/* Delete every bucket of directory @dir (its last link went away). */
int
dir_buckets_drop(struct vs_vol *v, const uint8_t dir[16], uint32_t nbuckets)
{
	for (uint32_t b = 0; b < nbuckets; b++) {
		int rc;

		if (v->flags & VS_BULK) {
			rc = bucket_put(v, dir, b, NULL, 0);
		} else {
			uint8_t k[21];

			key_bucket(k, dir, b);
			rc = kv_del(v, k, sizeof(k));
		}
		if (rc)
			return rc;
	}
	return 0;
}

/* Split every bucket of @dir in two (the directory doubled its size), so
 * buckets stay near DIR_SPLIT entries and a create rewrites one small
 * bucket. Amortized O(1) per entry. */
static int
dir_grow(struct vs_vol *v, struct obj *dir)
{
	uint32_t nb = dir->r.nbuckets, mask = nb * 2 - 1;
	int rc = 0;

	for (uint32_t b = 0; b < nb && !rc; b++) {
		uint8_t *buf, *lo, *hi;
		size_t len, nlo = 0, nhi = 0, off = 0, n;

		rc = bucket_get(v, dir->oid, b, &buf, &len);
		if (rc)
			break;
		lo = malloc(len + 1);
		hi = malloc(len + 1);
		if (!lo || !hi) {
			rc = -ENOMEM;
		} else {
			while ((n = brec_next(buf + off, len - off))) {
				uint64_t h = name_hash((const char *)buf + off + 18,
						       buf[off + 17]);

				if ((h & mask) == b) {
					memcpy(lo + nlo, buf + off, n);
					nlo += n;
				} else {
					memcpy(hi + nhi, buf + off, n);
					nhi += n;
				}
				off += n;
			}
			rc = bucket_put(v, dir->oid, b, lo, nlo);
			if (!rc)
				rc = bucket_put(v, dir->oid, b + nb, hi, nhi);
		}
		free(lo);
		free(hi);
		free(buf);
	}
	if (!rc)
		dir->r.nbuckets = nb * 2;
	return rc;
}

/* Add name -> child to @dir (in memory: the caller writes @dir). */
int
dir_add(struct vs_vol *v, struct obj *dir, const char *name,
	const uint8_t child[16], uint8_t type)
{
	uint8_t k[17 + PROTO_NAME_MAX], e[17], *buf, *nbuf;
	uint8_t rec[18 + PROTO_NAME_MAX];
	size_t nlen = strlen(name), len;
	uint32_t b;
	int rc;

	memcpy(e, child, 16);
	e[16] = type;
	rc = kv_put(v, k, key_ent(k, dir->oid, name, nlen), e, sizeof(e));
	if (rc)
		return rc;
	memcpy(rec, child, 16);
	rec[16] = type;
	rec[17] = (uint8_t)nlen;
	memcpy(rec + 18, name, nlen);
	b = (uint32_t)(name_hash(name, nlen) & (dir->r.nbuckets - 1));
	rc = bucket_append(v, dir->oid, b, rec, 18 + nlen);
	if (rc < 0)
		return rc;
	if (!rc) {
		rc = bucket_get(v, dir->oid, b, &buf, &len);
		if (rc)
			return rc;
		nbuf = realloc(buf, len + 18 + nlen);
		if (!nbuf) {
			free(buf);
			return -ENOMEM;
		}
		memcpy(nbuf + len, rec, 18 + nlen);
		rc = bucket_put(v, dir->oid, b, nbuf, len + 18 + nlen);
		free(nbuf);
		if (rc)
			return rc;
	}
	rc = 0;
	dir->r.nentries++;
	if (dir->r.nentries > (uint64_t)dir->r.nbuckets * DIR_SPLIT &&
	    dir->r.nbuckets < DIR_BUCKETS_MAX)
		rc = dir_grow(v, dir);
	return rc;
}

/* Remove @name from @dir (in memory: the caller writes @dir). */
int
dir_del(struct vs_vol *v, struct obj *dir, const char *name)
{
	uint8_t k[17 + PROTO_NAME_MAX], *buf;
	size_t nlen = strlen(name), len, off = 0, n;
	uint32_t b;
	int rc;

	rc = kv_del(v, k, key_ent(k, dir->oid, name, nlen));
	if (rc)
		return rc;
	b = (uint32_t)(name_hash(name, nlen) & (dir->r.nbuckets - 1));
	rc = bucket_get(v, dir->oid, b, &buf, &len);
	if (rc)
		return rc;
	while ((n = brec_next(buf + off, len - off))) {
		if (buf[off + 17] == nlen &&
		    !memcmp(buf + off + 18, name, nlen)) {
			memmove(buf + off, buf + off + n, len - off - n);
			len -= n;
			rc = bucket_put(v, dir->oid, b, buf, len);
			free(buf);
			if (!rc && dir->r.nentries)
				dir->r.nentries--;
			return rc;
		}
		off += n;
	}
	free(buf);
	log_err(LOG_VOL, "volume '%s': entry '%s' missing from its bucket",
		v->name, name);
	return -EIO;
}

/* Rewrite the bucket record of @name in @dir to point at @child (rename
 * exchange keeps both names). */
int
dir_repoint(struct vs_vol *v, struct obj *dir, const char *name,
	    const uint8_t child[16], uint8_t type)
{
	int rc = dir_del(v, dir, name);

	return rc ? rc : dir_add(v, dir, name, child, type);
}

int
vs_lookup(struct vs_vol *v, const struct fid *dir, const char *name,
	  struct fid *child)
{
	struct obj d;
	int rc = obj_get_fid(v, dir, &d);

	if (rc)
		return rc;
	if (d.r.type != PROTO_T_DIR) {
		obj_release(&d);
		return -ENOTDIR;
	}
	obj_release(&d);
	child->vol = v->id;
	return ent_get(v, dir->oid, name, child->oid, NULL);
}

/* Append an entry to the proto_dir @arg (struct dirent_acc), growing its
 * array (doubling, at most to ->max) as needed. */
struct dirent_acc {
	struct proto_dir *out;
	size_t cap, max;
};

static int
dirent_push(void *arg, const char *name, size_t len,
	    const struct proto_attr *a)
{
	struct dirent_acc *acc = arg;
	struct proto_dir *out = acc->out;
	struct proto_dirent *e;

	if (out->n == acc->cap) {
		size_t nc = acc->cap ? acc->cap * 2 : 64;
		struct proto_dirent *ne;

		if (nc > acc->max)
			nc = acc->max;
		if (nc <= acc->cap)
			return -ENOMEM;
		ne = realloc(out->ents, nc * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		out->ents = ne;
		acc->cap = nc;
	}
	e = &out->ents[out->n];
	e->name = strndup(name, len);
	if (!e->name)
		return -ENOMEM;
	e->attr = *a;
	out->n++;
	return 0;
}

/* Give the entry of the bucket record @rec to @fn. @return 0, 1 when the
 * record names an object that is not there (logged, skipped), or @fn's
 * error. */
static int
dirent_give(struct vs_vol *v, const uint8_t *rec, vs_dirent_fn fn, void *arg)
{
	struct proto_attr a;
	struct obj c;

	if (obj_get(v, rec, &c)) {
		log_err(LOG_VOL, "volume '%s': dangling entry", v->name);
		return 1;
	}
	obj_attr(v, &c, &a);
	obj_release(&c);
	return fn(arg, (const char *)rec + 18, rec[17], &a);
}

/*
 * A listing reads a bucket and one object record an entry: under one
 * read lock of the whole file rather than a chain lock (two fcntl calls)
 * a record, which were a fifth of cairn-vold's CPU in a listing of
 * 100,000 entries. Commits of other processes (vos) wait for the page,
 * as they wait for a snapshot. Best effort: without the lock (inside a
 * transaction, say) each fetch locks its chain as before. @return
 * whether tdb_unlockall_read() is due.
 */
static bool
read_lock(struct vs_vol *v)
{
	return tdb_lockall_read(v->tdb) == 0;
}

int
vs_readdir(struct vs_vol *v, const struct fid *dirfid, struct proto_dir *out)
{
	struct dirent_acc acc;
	bool locked = false;
	struct obj d;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = obj_get_fid(v, dirfid, &d);
	if (rc)
		return rc;
	if (d.r.type != PROTO_T_DIR) {
		obj_release(&d);
		return -ENOTDIR;
	}
	obj_attr(v, &d, &out->dir);
	acc.out = out;
	acc.cap = d.r.nentries ? d.r.nentries : 1;
	acc.max = SIZE_MAX / sizeof(*out->ents);
	out->ents = calloc(acc.cap, sizeof(*out->ents));
	if (!out->ents) {
		rc = -ENOMEM;
		goto out;
	}
	locked = read_lock(v);
	for (uint32_t b = 0; b < d.r.nbuckets; b++) {
		uint8_t *buf;
		size_t len, off = 0, n;

		rc = bucket_get(v, d.oid, b, &buf, &len);
		if (rc)
			goto out;
		while ((n = brec_next(buf + off, len - off))) {
			rc = dirent_give(v, buf + off, dirent_push, &acc);
			if (rc < 0) {
				free(buf);
				goto out;
			}
			off += n;
		}
		free(buf);
	}
	rc = 0;
out:
	if (locked)
		tdb_unlockall_read(v->tdb);
	obj_release(&d);
	if (rc)
		proto_dir_release(out);
	return rc;
}

int
vs_readdir_scan(struct vs_vol *v, const struct fid *dirfid,
		const struct proto_dir_cursor *from, size_t limit,
		struct proto_attr *dir, vs_dirent_fn fn, void *arg,
		struct proto_dir_cursor *next, bool *more, size_t *np)
{
	uint64_t b = from ? from->bucket : 0, skip = from ? from->index : 0;
	bool locked = false;
	struct obj d;
	size_t given = 0;
	int rc;

	memset(dir, 0, sizeof(*dir));
	memset(next, 0, sizeof(*next));
	*more = false;
	*np = 0;
	if (limit == 0)
		return -EINVAL;
	rc = obj_get_fid(v, dirfid, &d);
	if (rc)
		return rc;
	if (d.r.type != PROTO_T_DIR) {
		obj_release(&d);
		return -ENOTDIR;
	}
	obj_attr(v, &d, dir);
	if (from && from->dv != d.r.dv) {
		rc = -ESTALE;
		goto out;
	}
	locked = read_lock(v);
	for (; b < d.r.nbuckets; b++, skip = 0) {
		uint8_t *buf;
		size_t len, off = 0, n;
		uint64_t k = 0;

		rc = bucket_get(v, d.oid, (uint32_t)b, &buf, &len);
		if (rc)
			goto out;
		for (; (n = brec_next(buf + off, len - off)); off += n, k++) {
			if (k < skip)
				continue;
			if (given == limit) {
				/* Full: the next page starts here. */
				next->dv = d.r.dv;
				next->bucket = b;
				next->index = k;
				*more = true;
				free(buf);
				rc = 0;
				goto out;
			}
			rc = dirent_give(v, buf + off, fn, arg);
			if (rc < 0) {
				free(buf);
				goto out;
			}
			if (rc == 0)
				given++;
		}
		free(buf);
	}
	rc = 0;
out:
	if (locked)
		tdb_unlockall_read(v->tdb);
	obj_release(&d);
	*np = given;
	if (rc)
		*more = false;
	return rc;
}

int
vs_readdir_page(struct vs_vol *v, const struct fid *dirfid,
		const struct proto_dir_cursor *from, size_t limit,
		struct proto_dir *out, struct proto_dir_cursor *next,
		bool *more)
{
	struct dirent_acc acc = {.out = out, .cap = 0, .max = limit};
	size_t n;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = vs_readdir_scan(v, dirfid, from, limit, &out->dir, dirent_push,
			     &acc, next, more, &n);
	if (rc) {
		struct proto_attr keep = out->dir;

		proto_dir_release(out);
		if (rc == -ESTALE)
			out->dir = keep;
	} else if (!out->ents) {
		/* An empty page still has an array, as before. */
		out->ents = calloc(1, sizeof(*out->ents));
		if (!out->ents)
			rc = -ENOMEM;
	}
	return rc;
}
