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

static int
bucket_get(struct vs_vol *v, const uint8_t dir[16], uint32_t b, uint8_t **buf,
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
	return rc;
}

static int
bucket_put(struct vs_vol *v, const uint8_t dir[16], uint32_t b,
	   const uint8_t *buf, size_t len)
{
	uint8_t k[21];

	key_bucket(k, dir, b);
	if (!len)
		return kv_del(v, k, sizeof(k));
	return kv_put(v, k, sizeof(k), buf, len);
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
	size_t nlen = strlen(name), len;
	uint32_t b;
	int rc;

	memcpy(e, child, 16);
	e[16] = type;
	rc = kv_put(v, k, key_ent(k, dir->oid, name, nlen), e, sizeof(e));
	if (rc)
		return rc;
	b = (uint32_t)(name_hash(name, nlen) & (dir->r.nbuckets - 1));
	rc = bucket_get(v, dir->oid, b, &buf, &len);
	if (rc)
		return rc;
	nbuf = realloc(buf, len + 18 + nlen);
	if (!nbuf) {
		free(buf);
		return -ENOMEM;
	}
	memcpy(nbuf + len, child, 16);
	nbuf[len + 16] = type;
	nbuf[len + 17] = (uint8_t)nlen;
	memcpy(nbuf + len + 18, name, nlen);
	rc = bucket_put(v, dir->oid, b, nbuf, len + 18 + nlen);
	free(nbuf);
	if (rc)
		return rc;
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

/* Append the entry of the bucket record @rec to @out, growing out->ents
 * (doubling, at most to @max) as needed. @return 0, 1 when the record
 * names an object that is not there (logged, skipped), or -ENOMEM. */
static int
dirent_push(struct vs_vol *v, struct proto_dir *out, size_t *cap, size_t max,
	    const uint8_t *rec)
{
	struct proto_dirent *e;
	struct obj c;

	if (obj_get(v, rec, &c)) {
		log_err(LOG_VOL, "volume '%s': dangling entry", v->name);
		return 1;
	}
	if (out->n == *cap) {
		size_t nc = *cap * 2 < max ? *cap * 2 : max;
		struct proto_dirent *ne;

		ne = realloc(out->ents, nc * sizeof(*ne));
		if (!ne) {
			obj_release(&c);
			return -ENOMEM;
		}
		out->ents = ne;
		*cap = nc;
	}
	e = &out->ents[out->n];
	e->name = strndup((const char *)rec + 18, rec[17]);
	if (!e->name) {
		obj_release(&c);
		return -ENOMEM;
	}
	obj_attr(v, &c, &e->attr);
	obj_release(&c);
	out->n++;
	return 0;
}

int
vs_readdir(struct vs_vol *v, const struct fid *dirfid, struct proto_dir *out)
{
	struct obj d;
	size_t cap;
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
	cap = d.r.nentries ? d.r.nentries : 1;
	out->ents = calloc(cap, sizeof(*out->ents));
	if (!out->ents) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint32_t b = 0; b < d.r.nbuckets; b++) {
		uint8_t *buf;
		size_t len, off = 0, n;

		rc = bucket_get(v, d.oid, b, &buf, &len);
		if (rc)
			goto out;
		while ((n = brec_next(buf + off, len - off))) {
			rc = dirent_push(v, out, &cap, SIZE_MAX, buf + off);
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
	obj_release(&d);
	if (rc)
		proto_dir_release(out);
	return rc;
}

int
vs_readdir_page(struct vs_vol *v, const struct fid *dirfid,
		const struct proto_dir_cursor *from, size_t limit,
		struct proto_dir *out, struct proto_dir_cursor *next,
		bool *more)
{
	uint64_t b = from ? from->bucket : 0, skip = from ? from->index : 0;
	struct obj d;
	size_t cap;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(next, 0, sizeof(*next));
	*more = false;
	if (limit == 0)
		return -EINVAL;
	rc = obj_get_fid(v, dirfid, &d);
	if (rc)
		return rc;
	if (d.r.type != PROTO_T_DIR) {
		obj_release(&d);
		return -ENOTDIR;
	}
	obj_attr(v, &d, &out->dir);
	if (from && from->dv != d.r.dv) {
		rc = -ESTALE;
		goto out;
	}
	cap = d.r.nentries < limit ? (size_t)d.r.nentries : limit;
	if (!cap)
		cap = 1;
	out->ents = calloc(cap, sizeof(*out->ents));
	if (!out->ents) {
		rc = -ENOMEM;
		goto out;
	}
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
			if (out->n == limit) {
				/* Full: the next page starts here. */
				next->dv = d.r.dv;
				next->bucket = b;
				next->index = k;
				*more = true;
				free(buf);
				rc = 0;
				goto out;
			}
			/* nentries may be low: grow up to @limit. */
			rc = dirent_push(v, out, &cap, limit, buf + off);
			if (rc < 0) {
				free(buf);
				goto out;
			}
		}
		free(buf);
	}
	rc = 0;
out:
	obj_release(&d);
	if (rc) {
		struct proto_attr keep = out->dir;

		proto_dir_release(out);
		if (rc == -ESTALE)
			out->dir = keep;
		*more = false;
	}
	return rc;
}
