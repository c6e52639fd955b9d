/*
 * vs_import.c - the data of vos import in two halves, so that several
 * threads can write chunk objects while one thread owns the tdb:
 * vs_import_write() makes the chunk objects of one file (file system
 * only, safe to call from any thread on a VS_BULK handle) and
 * vs_import_done() records them in the map with the file's size and
 * times (tdb, the handle's one thread). vos export has the same split:
 * vs_export_map() (tdb) and vs_export_write() (files). doc/vol-format.md.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/types.h>

#include <tdb.h>

#include "common/util.h"
#include "vol/volstore.h"
#include "vol/volstore_i.h"

/* Make data/XX for the first byte of an oid, once per process (a bulk
 * volume is new: nothing else makes them). */
static int
data_sub(struct vs_vol *v, uint8_t b)
{
	static __thread uint8_t made[256 / 8];
	static __thread bool data_made;
	static __thread const struct vs_vol *made_for;
	char sub[16];

	if (made_for != v) {
		memset(made, 0, sizeof(made));
		data_made = false;
		made_for = v;
	}
	if (made[b / 8] & (1u << (b % 8)))
		return 0;
	if (!data_made && mkdirat(v->dirfd, "data", 0700) < 0 &&
	    errno != EEXIST)
		return -errno;
	data_made = true;
	snprintf(sub, sizeof(sub), "data/%02x", b);
	if (mkdirat(v->dirfd, sub, 0700) < 0 && errno != EEXIST)
		return -errno;
	made[b / 8] |= (uint8_t)(1u << (b % 8));
	return 0;
}

/* Estimated growth of meta.tdb between two looks at its size (at most:
 * a sixty-fourth of the limit when a test lowers it). */
#define BULK_INLINE_CHECK (16u << 20)

/* A positive size from the environment (the tests' overrides), or 0. */
static uint64_t
env_bytes(const char *name)
{
	const char *s = getenv(name);
	char *end;
	unsigned long long n;

	if (!s || !*s)
		return 0;
	errno = 0;
	n = strtoull(s, &end, 10);
	return errno || *end ? 0 : n;
}

uint64_t
vs_meta_hard(void)
{
	uint64_t lim = env_bytes("CAIRN_TEST_TDB_LIMIT");

	/* tdb grows a file by 10 % of its size (at least): past ~3.72 GiB
	 * a growth step no longer fits under 4 GiB, so checkpoints would
	 * fail before 15/16 (VS_BULK_TDB_HARD, the import's backstop). */
	return lim && lim < VS_TDB_LIMIT ? lim - lim / 8
					 : VS_TDB_LIMIT - VS_TDB_LIMIT / 8;
}

int
vs_import_plan(uint64_t files, struct vs_import_budget *b)
{
	uint64_t lim = env_bytes("CAIRN_TEST_TDB_LIMIT");
	uint64_t pf = env_bytes("CAIRN_TEST_TDB_META_FILE");
	uint64_t room, maxcap;

	memset(b, 0, sizeof(*b));
	if (lim && lim < VS_TDB_LIMIT) {
		b->limit = lim;
		b->reserve = lim / 4;
		b->hard = lim - lim / 16;
		maxcap = lim / 4 * 3;
	} else {
		b->limit = VS_TDB_LIMIT;
		b->reserve = VS_TDB_RESERVE;
		b->hard = VS_BULK_TDB_HARD;
		maxcap = VS_INLINE_BULK_TDB_MAX;
	}
	b->maxcap = maxcap;
	b->files = files;
	b->per_file = pf ? pf : VS_BULK_META_FILE;
	b->meta = files > UINT64_MAX / b->per_file ? UINT64_MAX
						   : files * b->per_file;
	room = b->limit - b->reserve;
	if (b->meta >= room)
		return -EFBIG;
	b->cap = room - b->meta < maxcap ? room - b->meta : maxcap;
	return 0;
}

void
vs_import_budget(struct vs_vol *v, const struct vs_import_budget *b)
{
	v->bulk_cap = b->maxcap;
	v->bulk_room = b->limit - b->reserve;
	v->bulk_left = b->files;
	v->bulk_hard = b->hard;
	v->bulk_check = b->limit / 64 < BULK_INLINE_CHECK ? b->limit / 64
							  : BULK_INLINE_CHECK;
	v->bulk_meta = b->per_file;
}

bool
vs_import_full(struct vs_vol *v)
{
	return v->bulk_full;
}

int
vs_bulk_grow(struct vs_vol *v, uint64_t inl)
{
	struct stat st;

	if (!(v->flags & VS_BULK))
		return 0;
	if (v->bulk_full)
		return -EFBIG;
	/* Without vs_import_budget(): the defaults (a tree not counted). */
	if (!v->bulk_hard) {
		v->bulk_cap = VS_INLINE_BULK_TDB_MAX;
		v->bulk_hard = VS_BULK_TDB_HARD;
		v->bulk_check = BULK_INLINE_CHECK;
		v->bulk_meta = VS_BULK_META_FILE;
	}
	/* The size is looked at every bulk_check bytes of estimated growth,
	 * at the real estimate even when a test lowers bulk_meta. */
	v->bulk_inl += inl + VS_BULK_META_FILE;
	if (v->bulk_left)
		v->bulk_left--;
	if (v->bulk_inl < v->bulk_check)
		return 0;
	/* Judged on the size of the file, which tdb grows in steps (10 %
	 * above 100 MiB): inlining stops at the first look past the cap,
	 * up to a step later than the bytes alone would say. Inlining also
	 * stops once the metadata of the objects still to come would not fit
	 * under the limit less the reserve: the cap of vs_import_plan(),
	 * judged with what is left rather than the whole tree. The hard
	 * limit leaves tdb's last step room to clamp at 4 GiB. */
	v->bulk_inl = 0;
	if (fstat(tdb_fd(v->tdb), &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size >= v->bulk_cap ||
	    (v->bulk_room &&
	     (uint64_t)st.st_size + v->bulk_left * v->bulk_meta >=
		     v->bulk_room))
		__atomic_store_n(&v->bulk_objects, true, __ATOMIC_RELAXED);
	if ((uint64_t)st.st_size >= v->bulk_hard) {
		v->bulk_full = true;
		return -EFBIG;
	}
	return 0;
}

int
vs_import_write(struct vs_vol *v, const struct fid *fid, uint64_t gen,
		int srcfd, uint64_t size, uint8_t *buf,
		struct vs_ichunk **out, size_t *np)
{
	struct vs_ichunk *c = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	*out = NULL;
	*np = 0;
	if (!(v->flags & VS_BULK) || !v->cs)
		return -EINVAL;
	if (size > VS_FILE_MAX)
		return -EFBIG;
	for (uint64_t i = 0; i * v->cs < size; i++) {
		uint64_t base = i * v->cs;
		size_t want = size - base < v->cs ? (size_t)(size - base) :
						    v->cs;
		char path[DPATH_MAX];
		ssize_t got;
		int fd;

		/* Skip the holes of a sparse source whole chunks at a time
		 * (a file of one chunk is read: its zeros are trimmed). */
		if (size > v->cs) {
			off_t d = lseek(srcfd, (off_t)base, SEEK_DATA);

			if ((d < 0 && errno == ENXIO) ||
			    (d >= 0 && (uint64_t)d >= base + want))
				continue;
		}
		got = util_pread_all(srcfd, buf, want, (off_t)base);
		if (got < 0) {
			rc = (int)got;
			goto fail;
		}
		/* Trailing zeros are not stored; a chunk of zeros is a
		 * hole (no entry). */
		while (got && !buf[got - 1])
			got--;
		if (!got)
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 1;
			struct vs_ichunk *nca = realloc(c, nc * sizeof(*c));

			if (!nca) {
				rc = -ENOMEM;
				goto fail;
			}
			c = nca;
			cap = nc;
		}
		c[n].chunk = i;
		c[n].gen = gen;
		c[n].len = (uint32_t)got;
		c[n].data = NULL;
		/* Small: the bytes go in the map entry (vs_import_done()),
		 * no object. An inode allocation in data/XX was most of the
		 * cost of a small file's import. */
		if ((size_t)got <= VS_INLINE_BULK_WRITE_MAX &&
		    !__atomic_load_n(&v->bulk_objects, __ATOMIC_RELAXED)) {
			c[n].data = malloc((size_t)got);
			if (!c[n].data) {
				rc = -ENOMEM;
				goto fail;
			}
			memcpy(c[n].data, buf, (size_t)got);
			n++;
			continue;
		}
		rc = data_sub(v, fid->oid[0]);
		if (rc)
			goto fail;
		chunk_path(path, sizeof(path), fid->oid, i, gen);
		fd = openat(v->dirfd, path,
			    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0) {
			rc = -errno;
			goto fail;
		}
		n++; /* listed: a failure below removes it */
		rc = util_pwrite_all(fd, buf, (size_t)got, 0);
		if (close(fd) < 0 && !rc)
			rc = -errno;
		if (rc)
			goto fail;
	}
	*out = c;
	*np = n;
	return 0;
fail:
	for (size_t k = 0; k < n; k++) {
		char path[DPATH_MAX];

		if (c[k].data)
			continue;
		chunk_path(path, sizeof(path), fid->oid, c[k].chunk, gen);
		unlinkat(v->dirfd, path, 0);
	}
	vs_ichunk_free(c, n);
	return rc;
}

int
vs_import_done(struct vs_vol *v, const struct fid *fid, uint64_t gen,
	       uint64_t size, const struct vs_ichunk *c, size_t n,
	       int64_t atime, int64_t mtime, int64_t ctime)
{
	struct txn t;
	struct obj o;
	uint64_t inl = 0;
	int rc = txn_start(&t, v, false);

	if (rc)
		return rc;
	rc = obj_get_fid(v, fid, &o);
	if (rc) {
		txn_abort(&t);
		return rc;
	}
	if (size && (o.r.type != PROTO_T_FILE || o.r.size != 0 ||
		     o.r.dv != gen)) {
		rc = -EINVAL;
		goto out;
	}
	if (size && t.vr.bytes_limit &&
	    t.vr.bytes_used + size > t.vr.bytes_limit) {
		rc = -EDQUOT;
		goto out;
	}
	for (size_t i = 0; i < n && !rc; i++) {
		struct cent e = {0};

		if (c[i].data) {
			rc = cmap_put_inline(v, fid->oid, c[i].chunk, gen,
					     c[i].data, c[i].len);
			t.vr.magic = VREC_MAGIC_V3;
			inl += c[i].len + 64;
			continue;
		}
		e.gen = gen;
		e.len = c[i].len;
		rc = cmap_put(v, fid->oid, c[i].chunk, &e);
	}
	if (!rc)
		rc = vs_bulk_grow(v, inl);
	if (rc)
		goto out;
	if (size) {
		o.r.size = size;
		t.vr.bytes_used += size;
	}
	o.r.atime = atime;
	o.r.mtime = mtime;
	o.r.ctime = ctime;
	rc = obj_put(v, &o);
out:
	obj_release(&o);
	if (rc) {
		txn_abort(&t);
		return rc;
	}
	return txn_commit(&t);
}

bool
vs_import_inlines(struct vs_vol *v, uint64_t size)
{
	return (v->flags & VS_BULK) && size <= VS_INLINE_BULK_WRITE_MAX &&
	       size <= v->cs &&
	       !__atomic_load_n(&v->bulk_objects, __ATOMIC_RELAXED);
}

void
vs_ichunk_free(struct vs_ichunk *c, size_t n)
{
	for (size_t i = 0; c && i < n; i++)
		free(c[i].data);
	free(c);
}

int
vs_export_map(struct vs_vol *v, const struct fid *fid, uint64_t size,
	      struct vs_ichunk **out, size_t *np)
{
	uint64_t nc;
	struct vs_ichunk *c;
	size_t n = 0;

	*out = NULL;
	*np = 0;
	if (!v->cs)
		return -EPROTO;
	nc = (size + v->cs - 1) / v->cs;
	if (!nc)
		return 0;
	/* Small files are one chunk: the usual array is one entry. */
	c = calloc(nc < 64 ? (size_t)nc : 64, sizeof(*c));
	if (!c)
		return -ENOMEM;
	for (uint64_t i = 0, cap = nc < 64 ? nc : 64; i < nc; i++) {
		struct cent e;
		int rc = cmap_get(v, fid->oid, i, &e);

		if (rc == -ENOENT)
			continue;
		if (rc) {
			vs_ichunk_free(c, n);
			return rc;
		}
		if (n == cap) {
			struct vs_ichunk *nca = realloc(c, 2 * cap * sizeof(*c));

			if (!nca) {
				vs_ichunk_free(c, n);
				return -ENOMEM;
			}
			c = nca;
			cap *= 2;
		}
		c[n].chunk = i;
		c[n].gen = e.gen;
		c[n].len = e.len;
		c[n].data = NULL;
		if (e.flags & CENT_INLINE) {
			c[n].data = malloc(e.len ? e.len : 1);
			rc = c[n].data ? cmap_inline_read(v, fid->oid, i, &e,
							  c[n].data) :
					 -ENOMEM;
			if (rc) {
				vs_ichunk_free(c, n + 1);
				return rc;
			}
		}
		n++;
	}
	*out = c;
	*np = n;
	return 0;
}

int
vs_export_write(struct vs_vol *v, const struct fid *fid,
		const struct vs_ichunk *c, size_t n, int out)
{
	int rc = 0;

	for (size_t i = 0; i < n && !rc; i++) {
		char path[DPATH_MAX];
		int fd;

		if (c[i].data) {
			rc = util_pwrite_all(out, c[i].data, c[i].len,
					     (off_t)(c[i].chunk * v->cs));
			continue;
		}
		chunk_path(path, sizeof(path), fid->oid, c[i].chunk, c[i].gen);
		fd = openat(v->dirfd, path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return errno == ENOENT ? -EUCLEAN : -errno;
		rc = vs_copy_range(fd, 0, out, c[i].chunk * v->cs, c[i].len);
		close(fd);
	}
	return rc;
}
