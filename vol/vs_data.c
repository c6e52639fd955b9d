/*
 * vs_data.c - data files (data/XX/OID.DV), staging (stage/TXID/...), making
 * a new data version, and the cleanup of crash leftovers at open
 * (volstore.c has the storage design and the crash logic).
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
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "base/parrun.h"
#include "common/log.h"
#include "common/tdbw.h"
#include "common/token.h"
#include "common/util.h"
#include "vol/volstore.h"
#include "vol/volstore_i.h"

/* ---- chunk objects ---- */

void
data_path(char *buf, size_t len, const uint8_t oid[16], uint64_t dv)
{
	char hex[33];

	util_hex_encode(oid, 16, hex);
	snprintf(buf, len, "data/%.2s/%s.%" PRIu64, hex, hex, dv);
}

void
chunk_path(char *buf, size_t len, const uint8_t oid[16], uint64_t chunk,
	   uint64_t gen)
{
	char hex[33];

	util_hex_encode(oid, 16, hex);
	snprintf(buf, len, "data/%.2s/%s.%" PRIu64 ".%" PRIu64, hex, hex,
		 chunk, gen);
}

static void
key_chunk(uint8_t *k, const uint8_t oid[16], uint64_t chunk)
{
	k[0] = 'C';
	memcpy(k + 1, oid, 16);
	put_be64(k + 17, chunk);
}

struct cmap_parse {
	struct cent *e;
	uint8_t *buf; /* cmap_inline_read(): where the bytes go */
	int rc;
};

/* A 16-byte value names a chunk object (its flags are not looked at:
 * format 2 never set them); a longer one is an inline entry, whose flags
 * must say so and whose length must be what follows. */
static int
cmap_parser(TDB_DATA key, TDB_DATA data, void *arg)
{
	struct cmap_parse *cp = arg;
	struct cent e;

	(void)key;
	cp->rc = -EUCLEAN;
	if (data.dsize < sizeof(e))
		return 0;
	memcpy(&e, data.dptr, sizeof(e));
	if (data.dsize == sizeof(e)) {
		e.flags = 0;
	} else if (!(e.flags & CENT_INLINE) || e.len > VS_INLINE_MAX ||
		   data.dsize != sizeof(e) + e.len) {
		return 0;
	} else if (cp->buf) {
		if (e.len != cp->e->len || !(cp->e->flags & CENT_INLINE))
			return 0;
		memcpy(cp->buf, data.dptr + sizeof(e), e.len);
	}
	if (!cp->buf)
		*cp->e = e;
	cp->rc = 0;
	return 0;
}

int
cmap_get(struct vs_vol *v, const uint8_t oid[16], uint64_t chunk,
	 struct cent *e)
{
	struct cmap_parse cp = {e, NULL, 0};
	uint8_t k[25];
	int rc;

	key_chunk(k, oid, chunk);
	rc = tdbj_parse(v->j, k, sizeof(k), cmap_parser, &cp);
	if (rc)
		return rc;
	if (cp.rc)
		return cp.rc;
	return e->len <= v->cs ? 0 : -EUCLEAN;
}

int
cmap_inline_read(struct vs_vol *v, const uint8_t oid[16], uint64_t chunk,
		 const struct cent *e, uint8_t *buf)
{
	struct cent want = *e;
	struct cmap_parse cp = {&want, buf, 0};
	uint8_t k[25];
	int rc;

	key_chunk(k, oid, chunk);
	rc = tdbj_parse(v->j, k, sizeof(k), cmap_parser, &cp);
	if (rc)
		return rc == -ENOENT ? -EUCLEAN : rc;
	return cp.rc;
}

int
cmap_put_inline(struct vs_vol *v, const uint8_t oid[16], uint64_t chunk,
		uint64_t gen, const uint8_t *buf, size_t len)
{
	struct cent e = {0};
	uint8_t k[25], *val = malloc(sizeof(e) + len);
	int rc;

	if (!val)
		return -ENOMEM;
	e.gen = gen;
	e.len = (uint32_t)len;
	e.flags = CENT_INLINE;
	memcpy(val, &e, sizeof(e));
	memcpy(val + sizeof(e), buf, len);
	key_chunk(k, oid, chunk);
	rc = kv_put(v, k, sizeof(k), val, sizeof(e) + len);
	free(val);
	return rc;
}

int
cmap_put(struct vs_vol *v, const uint8_t oid[16], uint64_t chunk,
	 const struct cent *e)
{
	uint8_t k[25];

	key_chunk(k, oid, chunk);
	return kv_put(v, k, sizeof(k), e, sizeof(*e));
}

static int
cmap_del(struct vs_vol *v, const uint8_t oid[16], uint64_t chunk)
{
	uint8_t k[25];

	key_chunk(k, oid, chunk);
	return kv_del(v, k, sizeof(k));
}

static int
cref_push(struct cref **a, size_t *n, size_t *cap, const uint8_t oid[16],
	  uint64_t chunk, uint64_t gen)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		struct cref *na = realloc(*a, nc * sizeof(**a));

		if (!na)
			return -ENOMEM;
		*a = na;
		*cap = nc;
	}
	memcpy((*a)[*n].oid, oid, 16);
	(*a)[*n].chunk = chunk;
	(*a)[*n].gen = gen;
	(*a)[*n].durable = false;
	(*n)++;
	return 0;
}

/* Drop the map entry of chunk @chunk of @oid (if any); its object goes
 * once the transaction is committed. */
static int
chunk_drop(struct txn *t, const uint8_t oid[16], uint64_t chunk)
{
	struct cent e = {0};
	int rc = cmap_get(t->v, oid, chunk, &e);

	if (rc == -ENOENT)
		return 0;
	if (rc && rc != -EUCLEAN)
		return rc;
	rc = cmap_del(t->v, oid, chunk);
	if (rc || (e.flags & CENT_INLINE))
		return rc;
	return cref_push(&t->gone, &t->ngone, &t->capgone, oid, chunk, e.gen);
}

int
data_drop_all(struct txn *t, const struct obj *o)
{
	uint64_t n = (o->r.size + t->v->cs - 1) / t->v->cs;

	if (o->r.type != PROTO_T_FILE)
		return 0;
	for (uint64_t i = 0; i < n; i++) {
		int rc = chunk_drop(t, o->oid, i);

		if (rc)
			return rc;
	}
	return 0;
}

/* Open (and with @create make, fsyncing data/) the directory of @oid's
 * data files. @return an fd or -errno. */
static int
data_dir_open(struct vs_vol *v, const uint8_t oid[16], bool create)
{
	char sub[16];
	int fd;

	snprintf(sub, sizeof(sub), "data/%02x", oid[0]);
	fd = openat(v->dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0 || errno != ENOENT || !create)
		return fd >= 0 ? fd : -errno;
	if (mkdirat(v->dirfd, sub, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (!(v->flags & VS_NOSYNC)) {
		int dfd = openat(v->dirfd, "data", O_RDONLY | O_DIRECTORY |
						   O_CLOEXEC);

		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	fd = openat(v->dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd >= 0 ? fd : -errno;
}

/* ---- cleanup of crash leftovers (VS_CLEANUP) ---- */

/* Parse "<32 hex>.<n>" or "<32 hex>.<n>.<m>" into @oid, @n and @m.
 * @return 1 (a format 1 data file OID.DV), 2 (a chunk object
 * OID.CHUNK.GEN) or 0 (anything else). */
static int
parse_data_name(const char *s, uint8_t oid[16], uint64_t *n, uint64_t *m)
{
	char *end;

	if (strlen(s) < 34 || s[32] != '.' ||
	    util_hex_decode(s, 32, oid, 16) != 16)
		return 0;
	for (int i = 0; i < 32; i++)
		if (s[i] >= 'A' && s[i] <= 'F')
			return 0;
	if (s[33] < '0' || s[33] > '9')
		return 0;
	errno = 0;
	*n = strtoull(s + 33, &end, 10);
	if (errno)
		return 0;
	if (!*end)
		return 1;
	if (end[0] != '.' || end[1] < '0' || end[1] > '9')
		return 0;
	*m = strtoull(end + 1, &end, 10);
	return !errno && !*end ? 2 : 0;
}

void
cleanup_data(struct vs_vol *v)
{
	DIR *d = util_opendirat(v->dirfd, "data", 0);
	struct dirent *de;
	unsigned removed = 0;

	if (!d)
		return;
	while ((de = readdir(d))) {
		DIR *sd;
		struct dirent *se;

		if (de->d_name[0] == '.')
			continue;
		sd = util_opendirat(dirfd(d), de->d_name, O_NOFOLLOW);
		if (!sd)
			continue;
		while ((se = readdir(sd))) {
			uint8_t oid[16];
			uint64_t chunk = 0, gen = 0;
			struct cent e;
			bool keep = false;

			if (se->d_name[0] == '.')
				continue;
			/* A chunk object stays while the map names it; a
			 * format 1 data file (converted) or anything else
			 * goes. */
			if (parse_data_name(se->d_name, oid, &chunk, &gen) ==
				    2 &&
			    cmap_get(v, oid, chunk, &e) == 0)
				keep = e.gen == gen && !(e.flags & CENT_INLINE);
			if (!keep && unlinkat(dirfd(sd), se->d_name, 0) == 0)
				removed++;
		}
		closedir(sd);
	}
	closedir(d);
	if (removed)
		log_info(LOG_VOL, "volume '%s': removed %u stale data files",
			 v->name, removed);
}

#define STAGE_BORN ".born"

/* Call @fn(txfd, name, @arg) for every entry of every staging transaction
 * in the directory @fd, which it takes over (closed when done, as
 * fdopendir(3) does). Transactions are the names in it not starting with
 * a dot; @fn sees every entry of one but "." and "..", the .born marker and
 * .tmp files of PUTs included, and @txfd is valid only during the call. A
 * transaction that cannot be opened is passed over.
 * @return 0, or -errno if @fd cannot be read (then @fn was not called). */
static int
stage_walk(int fd, void (*fn)(int txfd, const char *name, void *arg), void *arg)
{
	DIR *d = fdopendir(fd);
	struct dirent *de;

	if (!d) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	while ((de = readdir(d))) {
		DIR *sd;
		struct dirent *se;

		if (de->d_name[0] == '.')
			continue;
		sd = util_opendirat(dirfd(d), de->d_name, O_NOFOLLOW);
		if (!sd)
			continue;
		while ((se = readdir(sd)))
			if (strcmp(se->d_name, ".") && strcmp(se->d_name, ".."))
				fn(dirfd(sd), se->d_name, arg);
		closedir(sd);
	}
	closedir(d);
	return 0;
}

static bool
stage_is_tmp(const char *name)
{
	size_t l = strlen(name);

	return l > 4 && !strcmp(name + l - 4, ".tmp");
}

static void
stage_count_one(int txfd, const char *name, void *arg)
{
	uint64_t *sum = arg;
	struct stat st;

	if (name[0] == '.' || stage_is_tmp(name))
		return;
	if (fstatat(txfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(st.st_mode))
		*sum += (uint64_t)st.st_size;
}

/* Sum the sizes of the staged chunk files into v->staged (.tmp files of
 * PUTs in flight or dead, and the .born markers, do not count). */
void
stage_count(struct vs_vol *v)
{
	int fd = openat(v->dirfd, "stage", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	uint64_t sum = 0;

	/* A stage/ that cannot be opened (none yet) counts as empty; one
	 * opened but not readable leaves the count as it was. */
	if (fd < 0)
		v->staged = 0;
	else if (stage_walk(fd, stage_count_one, &sum) == 0)
		v->staged = sum;
}

/* Remove the staging directory @sdir if only its .born marker is left
 * (other files' chunks of the same transaction keep it, marker and all,
 * so their expiry still counts from its creation). */
void
stage_dir_drop(struct vs_vol *v, const char *sdir)
{
	DIR *d = util_opendirat(v->dirfd, sdir, O_NOFOLLOW);
	char born[96];
	struct dirent *de;
	bool other = false;

	if (!d)
		return;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    strcmp(de->d_name, STAGE_BORN))
			other = true;
	closedir(d);
	if (other)
		return;
	snprintf(born, sizeof(born), "%s/" STAGE_BORN, sdir);
	unlinkat(v->dirfd, born, 0);
	unlinkat(v->dirfd, sdir, AT_REMOVEDIR);
}

/* When staging transaction @name (a directory in @sfd) was created: the
 * mtime of its .born marker. A transaction without one (made by an older
 * server, or a crash between mkdir and marker) gets one now, so it expires
 * at the latest one age after it was first seen. */
static int
stage_born(int sfd, const char *name, int64_t *born_ms)
{
	char path[64];
	struct stat st;
	int fd;

	if ((size_t)snprintf(path, sizeof(path), "%s/" STAGE_BORN, name) >=
	    sizeof(path))
		return -ENAMETOOLONG; /* the caller takes 32-byte names only */
	if (fstatat(sfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		*born_ms = (int64_t)st.st_mtim.tv_sec * 1000 +
			   st.st_mtim.tv_nsec / 1000000;
		return 0;
	}
	if (errno != ENOENT)
		return -errno;
	fd = openat(sfd, path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
		    0600);
	if (fd < 0)
		return -errno;
	close(fd);
	*born_ms = (int64_t)wall_ms();
	return 0;
}

int
vs_stage_gc(struct vs_vol *v, int64_t age_s)
{
	DIR *d = util_opendirat(v->dirfd, "stage", 0);
	struct dirent *de;
	int64_t now = (int64_t)wall_ms();
	int removed = 0;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		int64_t born = 0;

		if (de->d_name[0] == '.' || strlen(de->d_name) != 32)
			continue;
		/* By creation, not by last write: a client that keeps
		 * writing into a transaction must not keep it forever. */
		if (stage_born(dirfd(d), de->d_name, &born))
			continue;
		if (now - born >= age_s * 1000 &&
		    rm_tree(dirfd(d), de->d_name, 1) == 0)
			removed++;
	}
	closedir(d);
	if (removed) {
		log_info(LOG_VOL,
			 "volume '%s': %d staging transaction%s expired",
			 v->name, removed, removed == 1 ? "" : "s");
		stage_count(v);
	}
	return removed;
}

void
vs_vol_set_stage_max(struct vs_vol *v, uint64_t max_bytes)
{
	v->stage_max = max_bytes;
}

uint64_t
vs_staged_bytes(const struct vs_vol *v)
{
	return v->staged;
}

static void
stage_tmp_drop(int txfd, const char *name, void *arg)
{
	(void)arg;
	if (stage_is_tmp(name))
		unlinkat(txfd, name, 0);
}

/* Remove the temporary files of PUTs that died half-way. */
void
cleanup_stage_tmp(struct vs_vol *v)
{
	int fd = openat(v->dirfd, "stage", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0)
		stage_walk(fd, stage_tmp_drop, NULL);
}

/* Data reads of a format 1 volume opened read-only: refused, once with
 * the command that converts it. */
static int
data_v1_refuse(struct vs_vol *v)
{
	if (!v->v1_said) {
		log_err(LOG_VOL, "volume '%s' is in the old format 1: run "
			"'vos upgrade %s' (or let cairn-vold open it) to "
			"convert it", v->name, v->name);
		v->v1_said = true;
	}
	return -EPROTO;
}

/* Append an extent to @ext (merging runs of zeros). */
static void
ext_add(struct vs_extent *ext, size_t *n, int fd, uint64_t off, uint64_t len)
{
	if (!len) {
		if (fd >= 0)
			close(fd);
		return;
	}
	if (fd < 0 && *n && ext[*n - 1].fd < 0) {
		ext[*n - 1].len += len;
		return;
	}
	ext[*n].fd = fd;
	ext[*n].off = off;
	ext[*n].len = len;
	(*n)++;
}

/*
 * Get the regular file @fid for reading at data version @dv: refuses a
 * format 1 volume, -EISDIR/-EINVAL for another type, -ESTALE at another
 * DV. Fills @size and @cur_dv once the object is found. On success @o
 * holds the object (obj_release it); on error it is released.
 */
static int
get_file_at(struct vs_vol *v, const struct fid *fid, uint64_t dv,
	    struct obj *o, uint64_t *size, uint64_t *cur_dv)
{
	int rc = obj_get_fid(v, fid, o);

	if (rc)
		return rc;
	if (!v->cs) {
		rc = data_v1_refuse(v);
		goto fail;
	}
	*cur_dv = o->r.dv;
	*size = o->r.size;
	if (o->r.type != PROTO_T_FILE) {
		rc = o->r.type == PROTO_T_DIR ? -EISDIR : -EINVAL;
		goto fail;
	}
	if (o->r.dv != dv) {
		rc = -ESTALE;
		goto fail;
	}
	return 0;
fail:
	obj_release(o);
	return rc;
}

/* An fd holding the bytes of inline entry @e (chunk @chunk of @oid) at
 * offset 0, for the extents of vs_data_open(), which cairn-vold sends
 * with sendfile and keeps open in its chunk cache like a chunk object's:
 * an anonymous memory file. @return the fd or -errno. */
static int
inline_fd(struct vs_vol *v, const uint8_t oid[16], uint64_t chunk,
	  const struct cent *e)
{
	uint8_t *buf = malloc(e->len);
	int fd, rc;

	if (!buf)
		return -ENOMEM;
	rc = cmap_inline_read(v, oid, chunk, e, buf);
	if (rc) {
		free(buf);
		return rc;
	}
	fd = memfd_create("cairn-chunk", MFD_CLOEXEC);
	if (fd < 0) {
		free(buf);
		return -errno;
	}
	rc = util_pwrite_all(fd, buf, e->len, 0);
	free(buf);
	if (rc) {
		close(fd);
		return rc;
	}
	return fd;
}

int
vs_data_open(struct vs_vol *v, const struct fid *fid, uint64_t dv,
	     uint64_t off, uint64_t len, struct vs_extent *ext, size_t *n,
	     uint64_t *size, uint64_t *cur_dv)
{
	uint64_t scs = v->cs, end;
	struct obj o;
	int rc;

	*n = 0;
	rc = get_file_at(v, fid, dv, &o, size, cur_dv);
	if (rc)
		return rc;
	if (len > PROTO_CHUNK_MAX) {
		rc = -EINVAL;
		goto out;
	}
	if (off >= o.r.size)
		goto out;
	end = o.r.size - off < len ? o.r.size : off + len;
	for (uint64_t i = off / scs; i * scs < end; i++) {
		uint64_t base = i * scs;
		uint64_t a = off > base ? off : base;
		uint64_t b = end < base + scs ? end : base + scs;
		char path[DPATH_MAX];
		struct cent e;
		int fd;

		rc = cmap_get(v, o.oid, i, &e);
		if (rc == -ENOENT) {
			rc = 0;
			ext_add(ext, n, -1, 0, b - a);
			continue;
		}
		if (rc)
			goto fail;
		if (base + e.len <= a) {
			ext_add(ext, n, -1, 0, b - a);
			continue;
		}
		if (e.flags & CENT_INLINE) {
			fd = inline_fd(v, o.oid, i, &e);
			if (fd < 0) {
				rc = fd;
				goto fail;
			}
		} else {
			chunk_path(path, sizeof(path), o.oid, i, e.gen);
			fd = openat(v->dirfd, path, O_RDONLY | O_CLOEXEC);
		}
		if (fd < 0) {
			rc = errno == ENOENT ? -EUCLEAN : -errno;
			log_err(LOG_VOL, "volume '%s': cannot open chunk "
				"object '%s': %s", v->name, path,
				strerror(-rc));
			goto fail;
		}
		if (base + e.len >= b) {
			ext_add(ext, n, fd, a - base, b - a);
		} else {
			ext_add(ext, n, fd, a - base, base + e.len - a);
			ext_add(ext, n, -1, 0, b - base - e.len);
		}
	}
out:
	obj_release(&o);
	return rc;
fail:
	for (size_t i = 0; i < *n; i++)
		if (ext[i].fd >= 0)
			close(ext[i].fd);
	*n = 0;
	goto out;
}

int
vs_copy_range(int in, uint64_t ioff, int out, uint64_t ooff, uint64_t len)
{
	char buf[65536];

	while (len) {
		loff_t io = (loff_t)ioff, oo = (loff_t)ooff;
		ssize_t n = copy_file_range(in, &io, out, &oo, (size_t)len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			size_t want = len > sizeof(buf) ? sizeof(buf) :
							  (size_t)len;
			int rc;

			n = util_pread_all(in, buf, want, (off_t)ioff);
			if (n < 0)
				return (int)n;
			if (n == 0)
				return -EIO; /* shorter than its entry */
			rc = util_pwrite_all(out, buf, (size_t)n, (off_t)ooff);
			if (rc)
				return rc;
		}
		ioff += (uint64_t)n;
		ooff += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

int
vs_data_copy(struct vs_vol *v, const struct fid *fid, uint64_t dv, int out,
	     uint64_t *size, uint64_t *cur_dv)
{
	struct obj o;
	uint64_t n;
	int rc = get_file_at(v, fid, dv, &o, size, cur_dv);

	if (rc)
		return rc;
	n = (o.r.size + v->cs - 1) / v->cs;
	for (uint64_t i = 0; i < n && !rc; i++) {
		char path[DPATH_MAX];
		struct cent e;
		int fd;

		rc = cmap_get(v, o.oid, i, &e);
		if (rc == -ENOENT) {
			rc = 0;
			continue;
		}
		if (rc)
			break;
		if (e.flags & CENT_INLINE) {
			uint8_t *buf = malloc(e.len);

			rc = buf ? cmap_inline_read(v, o.oid, i, &e, buf)
				 : -ENOMEM;
			if (!rc)
				rc = util_pwrite_all(out, buf, e.len,
						     (off_t)(i * v->cs));
			free(buf);
			continue;
		}
		chunk_path(path, sizeof(path), o.oid, i, e.gen);
		fd = openat(v->dirfd, path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			rc = errno == ENOENT ? -EUCLEAN : -errno;
			break;
		}
		rc = vs_copy_range(fd, 0, out, i * v->cs, e.len);
		close(fd);
	}
	obj_release(&o);
	return rc;
}

/* ---- staging ---- */

void
stage_names(char *dir, size_t dlen, char *file, size_t flen,
	    const uint8_t txid[16], const uint8_t oid[16], uint32_t cs,
	    uint64_t chunk)
{
	char t[33], o[33];

	util_hex_encode(txid, 16, t);
	util_hex_encode(oid, 16, o);
	snprintf(dir, dlen, "stage/%s", t);
	snprintf(file, flen, "stage/%s/%s.%u.%" PRIu64, t, o, cs, chunk);
}

int
vs_stage_put(struct vs_vol *v, const struct fid *fid, const uint8_t txid[16],
	     uint64_t chunk, uint32_t cs, const void *buf, size_t len)
{
	char dir[64], file[128], tmp[160];
	struct obj o;
	struct vrec vr;
	struct stat st;
	uint64_t old = 0, total;
	int rc, fd = -1;

	if (v->flags & VS_RDONLY)
		return -EROFS;
	if (len > cs)
		return -E2BIG;
	if (chunk >= VS_FILE_MAX / cs)
		return -EFBIG;
	rc = obj_get_fid(v, fid, &o);
	/* A FID of this volume that no object has yet is one the client
	 * will create with this data, in the batch that stores it
	 * (protocol version 3). */
	if (rc == -ENOENT && fid->vol == v->id && !fid_is_null(fid))
		goto staged;
	if (rc)
		return rc;
	if (o.r.type != PROTO_T_FILE) {
		rc = o.r.type == PROTO_T_DIR ? -EISDIR : -EINVAL;
		obj_release(&o);
		return rc;
	}
	obj_release(&o);
staged:
	stage_names(dir, sizeof(dir), file, sizeof(file), txid, fid->oid, cs,
		    chunk);
	/* Staged bytes are disk the volume uses: they count against its
	 * quota and the staging cap before anything is written. A chunk
	 * written again replaces its old bytes. */
	if (fstatat(v->dirfd, file, &st, AT_SYMLINK_NOFOLLOW) == 0)
		old = (uint64_t)st.st_size;
	total = (v->staged > old ? v->staged - old : 0) + len;
	if (v->stage_max && total > v->stage_max)
		return -EDQUOT;
	rc = vrec_get(v, &vr);
	if (rc)
		return rc;
	if (vr.bytes_limit && len > old &&
	    (vr.bytes_used > vr.bytes_limit ||
	     total > vr.bytes_limit - vr.bytes_used))
		return -EDQUOT;
	if (mkdirat(v->dirfd, dir, 0700) < 0) {
		if (errno != EEXIST)
			return -errno;
	} else {
		char born[96];
		int bfd;

		/* The creation time expiry goes by (vs_stage_gc). */
		snprintf(born, sizeof(born), "%s/" STAGE_BORN, dir);
		bfd = openat(v->dirfd, born, O_WRONLY | O_CREAT | O_CLOEXEC,
			     0600);
		if (bfd >= 0)
			close(bfd);
	}
	if (!(v->flags & VS_NOSYNC)) {
		int sfd = openat(v->dirfd, "stage", O_RDONLY | O_DIRECTORY |
							    O_CLOEXEC);

		if (sfd >= 0) {
			fsync(sfd);
			close(sfd);
		}
	}
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", file, (int)gettid());
	fd = openat(v->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0600);
	if (fd < 0)
		return -errno;
	rc = util_write_all(fd, buf, len);
	if (!rc && !(v->flags & VS_NOSYNC) && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (!rc && renameat(v->dirfd, tmp, v->dirfd, file) < 0)
		rc = -errno;
	if (rc) {
		unlinkat(v->dirfd, tmp, 0);
		return rc;
	}
	v->staged = total;
	/* The rename must be durable too: fsync the transaction directory. */
	if (!(v->flags & VS_NOSYNC)) {
		int dfd = openat(v->dirfd, dir, O_RDONLY | O_DIRECTORY |
							O_CLOEXEC);

		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	return 0;
}

/* Read the chunk object of entry @e (chunk @chunk of @oid) into @buf
 * (e->len bytes). A missing object is a damaged volume: -EUCLEAN. */
static int
chunk_read(struct vs_vol *v, const uint8_t oid[16], uint64_t chunk,
	   const struct cent *e, uint8_t *buf)
{
	char path[DPATH_MAX];
	ssize_t got;
	int fd;

	if (e->flags & CENT_INLINE)
		return cmap_inline_read(v, oid, chunk, e, buf);
	chunk_path(path, sizeof(path), oid, chunk, e->gen);
	fd = openat(v->dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			return -errno;
		log_err(LOG_VOL, "volume '%s': chunk object '%s' missing",
			v->name, path);
		return -EUCLEAN;
	}
	got = util_pread_all(fd, buf, e->len, 0);
	close(fd);
	if (got < 0)
		return (int)got;
	/* A short object (cannot happen: written and fsynced before its
	 * entry) reads as zeros rather than as garbage. */
	if ((size_t)got < e->len)
		memset(buf + got, 0, e->len - (size_t)got);
	return 0;
}

/* Does chunk @chunk, of @len stored bytes, go inline (VS_INLINE_WRITE_MAX
 * for a file's first chunk, VS_INLINE_LATER_MAX for the others)? A bulk
 * import (vos import --jobs 0) too, up to VS_INLINE_BULK_WRITE_MAX, until
 * meta.tdb reaches its cap (vs_import_plan()). */
static bool
inline_ok(struct vs_vol *v, uint64_t chunk, size_t len)
{
	struct stat st;

	if (len > ((v->flags & VS_BULK) ? VS_INLINE_BULK_WRITE_MAX
		   : chunk	       ? VS_INLINE_LATER_MAX
				       : VS_INLINE_WRITE_MAX) ||
	    ((v->flags & VS_BULK) &&
	     __atomic_load_n(&v->bulk_objects, __ATOMIC_RELAXED)))
		return false;
	return !fstat(tdb_fd(v->tdb), &st) &&
	       (uint64_t)st.st_size < (!(v->flags & VS_BULK) ? VS_INLINE_TDB_MAX
				       : v->bulk_cap	     ? v->bulk_cap
						     : VS_INLINE_BULK_TDB_MAX);
}

/*
 * Make @buf (@len bytes, trailing zeros are not stored) the new content of
 * chunk @chunk of @oid at generation @gen: write the object (the caller
 * makes it durable with made_sync() and fsyncs its directory), point the
 * map at it and mark the object it replaces for removal after the commit.
 * An empty content is a hole: the entry goes.
 */
static int
chunk_put(struct txn *t, const uint8_t oid[16], uint64_t chunk, uint64_t gen,
	  const uint8_t *buf, size_t len)
{
	struct vs_vol *v = t->v;
	char path[DPATH_MAX];
	struct cent e = {0}, old;
	bool had_old;
	int rc, fd;

	while (len && !buf[len - 1])
		len--;
	if (!len)
		return chunk_drop(t, oid, chunk);
	rc = cmap_get(v, oid, chunk, &old);
	if (rc && rc != -ENOENT && rc != -EUCLEAN)
		return rc;
	had_old = rc == 0;
	if (had_old && old.gen == gen)
		return -EINVAL; /* one name written twice: a bug of ours */
	if (inline_ok(v, chunk, len)) {
		/* Small: the bytes go in the entry, durable with the commit;
		 * the volume is format 3 from this commit on. */
		rc = cmap_put_inline(v, oid, chunk, gen, buf, len);
		if (rc)
			return rc;
		t->vr.magic = VREC_MAGIC_V3;
		if (!had_old || (old.flags & CENT_INLINE))
			return 0;
		return cref_push(&t->gone, &t->ngone, &t->capgone, oid, chunk,
				 old.gen);
	}
	chunk_path(path, sizeof(path), oid, chunk, gen);
	/* Listed before it exists, so a failure anywhere removes it. */
	rc = cref_push(&t->made, &t->nmade, &t->capmade, oid, chunk, gen);
	if (rc)
		return rc;
	/* A leftover of a try never committed may hold the name, perhaps as
	 * a link to a staged chunk: a new inode, never a truncate of it. A
	 * bulk import writes a volume nobody else has seen, where no name
	 * was ever tried: it skips the unlink (a directory lookup that was
	 * a tenth of an import of files with data; O_EXCL still refuses a
	 * name that is there). */
	if (!(v->flags & VS_BULK))
		unlinkat(v->dirfd, path, 0);
	fd = openat(v->dirfd, path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0600);
	if (fd < 0 && errno == ENOENT) {
		/* The first object of data/XX: make the directory. */
		int dfd = data_dir_open(v, oid, true);

		if (dfd < 0)
			return dfd;
		close(dfd);
		fd = openat(v->dirfd, path,
			    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	}
	if (fd < 0)
		return -errno;
	rc = util_pwrite_all(fd, buf, len, 0);
	/* Start the writeback now; made_sync() waits for it once all the
	 * objects of the change are written (one journal commit for all,
	 * not one per object). */
	if (!rc && !(v->flags & VS_NOSYNC))
		sync_file_range(fd, 0, (off_t)len, SYNC_FILE_RANGE_WRITE);
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (rc)
		return rc;
	e.gen = gen;
	e.len = (uint32_t)len;
	rc = cmap_put(v, oid, chunk, &e);
	if (rc || !had_old || (old.flags & CENT_INLINE))
		return rc;
	return cref_push(&t->gone, &t->ngone, &t->capgone, oid, chunk,
			 old.gen);
}

/* Objects written by one change above which made_sync() flushes the whole
 * file system once instead of each object (on ext4 without a journal
 * every fdatasync is a cache flush of the device). */
#define MADE_SYNCFS 64

/* One sync of made_sync(): an object's fdatasync or the folder's fsync. */
struct msync {
	int fd;
	bool dir;
	int rc;
};

static void
msync_one(void *arg, size_t i)
{
	struct msync *m = (struct msync *)arg + i;

	m->rc = (m->dir ? fsync(m->fd) : fdatasync(m->fd)) < 0 ? -errno : 0;
}

/* Make the chunk objects t->made[@from..] durable before the commit that
 * names them (a new file's size and blocks are what fdatasync keeps),
 * and, when @dfd >= 0, their folder @dfd (their names); objects linked
 * from fsynced staged chunks are durable already. The syncs do not depend
 * on each other and are issued together (base/parrun.h): a store of a
 * 16-64 KiB file waited for its object's fdatasync and then its folder's
 * fsync, one after the other, before its commit's own (doc/cm.md,
 * "Session 12"). */
static int
made_sync(struct txn *t, size_t from, int dfd)
{
	struct msync *m;
	size_t n = 0, k = 0;
	int rc = 0;

	if (t->v->flags & VS_NOSYNC)
		return 0;
	for (size_t i = from; i < t->nmade; i++)
		n += !t->made[i].durable;
	if (n > MADE_SYNCFS) {
		if (syncfs(t->v->dirfd) < 0)
			return -errno;
		return dfd >= 0 && fsync(dfd) < 0 ? -errno : 0;
	}
	m = calloc(n + 1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	for (size_t i = from; i < t->nmade; i++) {
		char path[DPATH_MAX];
		int fd;

		if (t->made[i].durable)
			continue;
		chunk_path(path, sizeof(path), t->made[i].oid, t->made[i].chunk,
			   t->made[i].gen);
		fd = openat(t->v->dirfd, path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			rc = -errno;
			break;
		}
		m[k++] = (struct msync){fd, false, 0};
	}
	if (!rc) {
		if (dfd >= 0)
			m[k++] = (struct msync){dfd, true, 0};
		par_run(k, PARRUN_THREADS, msync_one, m);
	}
	for (size_t i = 0; i < k; i++) {
		if (!rc)
			rc = m[i].rc;
		if (!m[i].dir)
			close(m[i].fd);
	}
	free(m);
	return rc;
}

/*
 * Make staged chunk @c of @store (chunk size = the server's) the object of
 * chunk @c of @oid at @gen by a hard link: the staged file was fsynced
 * when it was PUT and is never written again (a new PUT of the same chunk
 * renames a new file over the name), so the object needs no copy and no
 * flush, only its directory's fsync. @clip is how much of the chunk lies
 * below the new size. @return 0; -EXDEV when a link cannot do it (a
 * staged chunk longer than @clip, or a file system without hard links:
 * the caller copies); -errno.
 */
static int
chunk_link(struct txn *t, const struct proto_op *store, const uint8_t oid[16],
	   uint64_t c, uint64_t gen, uint64_t clip)
{
	struct vs_vol *v = t->v;
	char sdir[64], sfile[128], path[DPATH_MAX];
	struct cent e = {0}, old;
	struct stat st;
	bool had_old;
	int rc;

	stage_names(sdir, sizeof(sdir), sfile, sizeof(sfile), store->txid, oid,
		    store->chunk_size, c);
	if (fstatat(v->dirfd, sfile, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > clip ||
	    st.st_size == 0)
		return -EXDEV;
	rc = cmap_get(v, oid, c, &old);
	if (rc && rc != -ENOENT && rc != -EUCLEAN)
		return rc;
	had_old = rc == 0;
	if (had_old && old.gen == gen)
		return -EINVAL;
	chunk_path(path, sizeof(path), oid, c, gen);
	rc = cref_push(&t->made, &t->nmade, &t->capmade, oid, c, gen);
	if (rc)
		return rc;
	t->made[t->nmade - 1].durable = true;
	/* A name of this GEN can only be a leftover of a try that was never
	 * committed (GEN is past every committed one): replace it. */
	unlinkat(v->dirfd, path, 0);
	rc = linkat(v->dirfd, sfile, v->dirfd, path, 0) < 0 ? -errno : 0;
	if (rc == -ENOENT) {
		/* The staged file is there (fstatat above): data/XX is not. */
		int dfd = data_dir_open(v, oid, true);

		if (dfd < 0) {
			t->nmade--;
			return dfd;
		}
		close(dfd);
		rc = linkat(v->dirfd, sfile, v->dirfd, path, 0) < 0 ? -errno
								    : 0;
	}
	if (rc) {
		t->nmade--;
		if (rc == -EXDEV || rc == -EPERM || rc == -EMLINK ||
		    rc == -EOPNOTSUPP)
			return -EXDEV;
		return rc;
	}
	e.gen = gen;
	e.len = (uint32_t)st.st_size;
	rc = cmap_put(v, oid, c, &e);
	if (rc || !had_old || (old.flags & CENT_INLINE))
		return rc;
	return cref_push(&t->gone, &t->ngone, &t->capgone, oid, c, old.gen);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Read staged chunk @c of @store (for file @oid) into @buf: @return the
 * bytes read (at most the chunk size) or -errno. */
static ssize_t
stage_read(struct vs_vol *v, const struct proto_op *store,
	   const uint8_t oid[16], uint64_t c, uint8_t *buf)
{
	char sdir[64], sfile[128];
	ssize_t got;
	int sfd;

	if (store->data) {
		/* Inline (PROTO_V_INLINE): the decoder bounded it by the
		 * chunk size; the one chunk it is is the only one named. */
		if (store->nchunks != 1 || c != store->chunks[0] ||
		    store->dlen > store->chunk_size)
			return -EINVAL;
		memcpy(buf, store->data, store->dlen);
		return (ssize_t)store->dlen;
	}
	stage_names(sdir, sizeof(sdir), sfile, sizeof(sfile), store->txid,
		    oid, store->chunk_size, c);
	sfd = openat(v->dirfd, sfile, O_RDONLY | O_CLOEXEC);
	if (sfd < 0)
		return -errno;
	got = util_pread_all(sfd, buf, store->chunk_size, 0);
	close(sfd);
	return got;
}

/*
 * Make the data of @o at @newdv with @newsize bytes: the server chunks the
 * staged chunks of @store (may be NULL: a truncate) cover get new chunk
 * objects, chunks past the new size are dropped and the one the new size
 * cuts is trimmed; every other chunk keeps its object. So the cost is
 * what the store carries, not what the file holds. A staged chunk is the
 * whole chunk: what it does not cover reads as zeros. The new objects are
 * fsynced with their directory before this returns; the map entries are
 * written in the transaction; replaced objects are listed in t->gone.
 */
int
data_make(struct txn *t, const struct obj *o, uint64_t newdv,
	  uint64_t newsize, const struct proto_op *store)
{
	struct vs_vol *v = t->v;
	uint64_t scs = v->cs, oldn = (o->r.size + scs - 1) / scs;
	uint64_t newn = (newsize + scs - 1) / scs, cut = newsize / scs;
	uint64_t *idx = NULL;
	size_t nidx = 0, made0 = t->nmade;
	uint8_t *buf = NULL, *sbuf = NULL;
	bool cut_done = false, wrote = false;
	int dfd = -1, rc = 0;

	if (store && store->nchunks) {
		uint64_t cs = store->chunk_size;

		idx = malloc(store->nchunks * sizeof(*idx));
		buf = malloc(scs);
		sbuf = malloc(cs > scs ? cs : scs);
		if (!idx || !buf || !sbuf) {
			rc = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < store->nchunks; i++)
			if (store->chunks[i] * cs < newsize)
				idx[nidx++] = store->chunks[i];
		qsort(idx, nidx, sizeof(*idx), cmp_u64);
		/* The directory data/XX is made by the first object put in it
		 * (chunk_put(), chunk_link()), not here: a store of inline
		 * chunks makes and fsyncs no directory. */
		for (size_t k = 0; k < nidx;) {
			uint64_t off = idx[k] * cs, end;
			uint64_t first = off / scs, last, i;
			ssize_t got;

			if (k && idx[k] == idx[k - 1]) {
				k++;
				continue;
			}
			end = off + cs < newsize ? off + cs : newsize;
			last = (end - 1) / scs;
			if (cs == scs && !store->data) {
				/* The staged chunk is the new object: link it
				 * (no copy; it was fsynced when PUT). */
				rc = chunk_link(t, store, o->oid, idx[k], newdv,
						end - off);
				if (rc == 0) {
					if (first == cut)
						cut_done = true;
					wrote = true;
					k++;
					continue;
				}
				if (rc != -EXDEV)
					goto out;
				rc = 0;
			}
			if (cs >= scs) {
				/* Whole server chunks: nothing old to keep. */
				got = stage_read(v, store, o->oid, idx[k],
						 sbuf);
				if (got < 0) {
					rc = (int)got;
					goto out;
				}
				if ((uint64_t)got > end - off)
					got = (ssize_t)(end - off);
				for (i = first; i <= last; i++) {
					uint64_t so = i * scs - off, sl;

					sl = (uint64_t)got > so ?
						     (uint64_t)got - so :
						     0;
					if (sl > scs)
						sl = scs;
					rc = chunk_put(t, o->oid, i,
						       newdv, sbuf + so,
						       (size_t)sl);
					if (rc)
						goto out;
					if (i == cut)
						cut_done = true;
				}
				wrote = true;
				k++;
				continue;
			}
			/* Staged chunks smaller than a server chunk: merge
			 * every one that falls in server chunk @first into
			 * its old content. */
			{
				uint64_t base = first * scs, clen;
				struct cent e;

				/* Only the bytes the new chunk will have need
				 * a value (old content, staged bytes or
				 * zeros): a small file's store zeroed a whole
				 * server chunk (256 KiB) to keep 1 KiB. */
				clen = newsize - base < scs ? newsize - base
							    : scs;
				memset(buf, 0, clen);
				rc = cmap_get(v, o->oid, first, &e);
				if (rc == 0)
					rc = chunk_read(v, o->oid, first, &e,
							buf);
				if (rc && rc != -ENOENT)
					goto out;
				rc = 0;
				for (; k < nidx && idx[k] * cs / scs == first;
				     k++) {
					if (k && idx[k] == idx[k - 1])
						continue;
					off = idx[k] * cs;
					end = off + cs < newsize ? off + cs
								 : newsize;
					got = stage_read(v, store, o->oid,
							 idx[k], sbuf);
					if (got < 0) {
						rc = (int)got;
						goto out;
					}
					if ((uint64_t)got > end - off)
						got = (ssize_t)(end - off);
					memset(buf + (off - base), 0,
					       end - off);
					memcpy(buf + (off - base), sbuf,
					       (size_t)got);
				}
				rc = chunk_put(t, o->oid, first, newdv,
					       buf, (size_t)clen);
				if (rc)
					goto out;
				if (first == cut)
					cut_done = true;
				wrote = true;
			}
		}
	}
	if (newsize < o->r.size) {
		for (uint64_t i = newn; i < oldn; i++) {
			rc = chunk_drop(t, o->oid, i);
			if (rc)
				goto out;
		}
		/* Trim the chunk the new size cuts, so that bytes past it
		 * read as zeros if the file grows again. */
		if (newsize % scs && !cut_done) {
			struct cent e;
			uint64_t keep = newsize - cut * scs;

			rc = cmap_get(v, o->oid, cut, &e);
			if (rc == -ENOENT)
				rc = 0;
			else if (!rc && e.len > keep) {
				if (!buf && !(buf = malloc(scs))) {
					rc = -ENOMEM;
					goto out;
				}
				rc = chunk_read(v, o->oid, cut, &e, buf);
				if (!rc)
					rc = chunk_put(t, o->oid, cut,
						       newdv, buf,
						       (size_t)keep);
				wrote = true;
			}
			if (rc)
				goto out;
		}
	}
	/* Inline chunks made no object: nothing to flush but the commit. */
	wrote = wrote && t->nmade > made0;
	if (wrote && !(v->flags & VS_NOSYNC)) {
		dfd = data_dir_open(v, o->oid, false);
		rc = dfd < 0 ? dfd : made_sync(t, made0, dfd);
	}
out:
	free(idx);
	free(buf);
	free(sbuf);
	if (dfd >= 0)
		close(dfd);
	return rc;
}

int
vs_import_data(struct vs_vol *v, const struct fid *fid, int srcfd,
	       uint64_t size)
{
	struct txn t;
	struct obj o;
	uint8_t *buf = NULL;
	int rc, dfd = -1;

	if (size > VS_FILE_MAX)
		return -EFBIG;
	/* A bulk import (--jobs 0): the bytes that may go inline count
	 * toward the next look at meta.tdb's size, which the file's
	 * vs_import_times() makes (vs_bulk_grow()). */
	if ((v->flags & VS_BULK) && size <= VS_INLINE_BULK_WRITE_MAX)
		v->bulk_inl += size + 64;
	rc = txn_start(&t, v, false);
	if (rc)
		return rc;
	rc = obj_get_fid(v, fid, &o);
	if (rc) {
		txn_abort(&t);
		return rc;
	}
	if (o.r.type != PROTO_T_FILE || o.r.size != 0) {
		rc = -EINVAL;
		goto out;
	}
	if (t.vr.bytes_limit && t.vr.bytes_used + size > t.vr.bytes_limit) {
		rc = -EDQUOT;
		goto out;
	}
	if (size) {
		dfd = data_dir_open(v, o.oid, true);
		buf = malloc(v->cs);
		if (dfd < 0 || !buf) {
			rc = dfd < 0 ? dfd : -ENOMEM;
			goto out;
		}
	}
	for (uint64_t i = 0; i * v->cs < size; i++) {
		uint64_t base = i * v->cs;
		size_t want = size - base < v->cs ? (size_t)(size - base) :
						    v->cs;
		off_t d = lseek(srcfd, (off_t)base, SEEK_DATA);
		ssize_t got;

		/* Skip the holes of a sparse source whole chunks at a time. */
		if ((d < 0 && errno == ENXIO) ||
		    (d >= 0 && (uint64_t)d >= base + want))
			continue;
		got = util_pread_all(srcfd, buf, want, (off_t)base);
		if (got < 0) {
			rc = (int)got;
			goto out;
		}
		rc = chunk_put(&t, o.oid, i, o.r.dv, buf, (size_t)got);
		if (rc)
			goto out;
	}
	if (size) {
		rc = made_sync(&t, 0, dfd);
		if (rc)
			goto out;
	}
	o.r.size = size;
	t.vr.bytes_used += size;
	rc = obj_put(v, &o);
out:
	free(buf);
	if (dfd >= 0)
		close(dfd);
	obj_release(&o);
	if (rc) {
		txn_abort(&t);
		return rc;
	}
	return txn_commit(&t);
}

/* ---- conversion from format 1 ---- */

struct conv_scan {
	uint8_t (*oid)[16];
	size_t n, cap;
	int err;
};

static int
conv_scan_one(struct tdb_context *tdb, TDB_DATA key, TDB_DATA val, void *arg)
{
	struct conv_scan *cs = arg;

	(void)tdb;
	(void)val;
	if (key.dsize != 17 || key.dptr[0] != 'O')
		return 0;
	if (cs->n == cs->cap) {
		size_t nc = cs->cap ? cs->cap * 2 : 256;
		uint8_t(*na)[16] = realloc(cs->oid, nc * 16);

		if (!na) {
			cs->err = -ENOMEM;
			return -1;
		}
		cs->oid = na;
		cs->cap = nc;
	}
	memcpy(cs->oid[cs->n++], key.dptr + 1, 16);
	return 0;
}

/* Make the format 1 data file @path (open as @fd) of the one-chunk file
 * @o its chunk object 0 by a hard link. @return 0, or -EXDEV when it
 * cannot (the file is not exactly o->r.size bytes, no hard links): copy. */
static int
conv_link(struct txn *t, int fd, const char *path, const struct obj *o)
{
	struct vs_vol *v = t->v;
	char obj[DPATH_MAX];
	struct cent e = {0};
	struct stat st;
	int rc;

	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != o->r.size)
		return -EXDEV;
	chunk_path(obj, sizeof(obj), o->oid, 0, o->r.dv);
	rc = cref_push(&t->made, &t->nmade, &t->capmade, o->oid, 0, o->r.dv);
	if (rc)
		return rc;
	t->made[t->nmade - 1].durable = true;
	unlinkat(v->dirfd, obj, 0);
	if (linkat(v->dirfd, path, v->dirfd, obj, 0) < 0) {
		t->nmade--;
		return -EXDEV;
	}
	e.gen = o->r.dv;
	e.len = (uint32_t)o->r.size;
	return cmap_put(v, o->oid, 0, &e);
}

/*
 * Convert a format 1 volume (one data file data/XX/OID.DV per file) to
 * format 2 (chunk objects and the "C" map), in one transaction: every
 * data file is cut into chunk objects named with the file's current DV,
 * written and fsynced with their directories, then the map entries and
 * the format 2 volume record are committed together. A crash before the
 * commit leaves format 1 intact (and unreferenced chunk objects the next
 * cleanup removes); after it, only the old data files are left over, and
 * they are removed here or by the next cleanup. DVs do not change: the
 * bytes of every (FID, DV) stay the same.
 */
int
data_convert(struct vs_vol *v)
{
	struct conv_scan sc = {0};
	struct txn t;
	struct cref *old = NULL;
	uint8_t *buf = NULL;
	size_t nfiles = 0, capold = 0;
	int rc;

	if (v->flags & VS_RDONLY)
		return -EROFS;
	if (tdb_traverse_read(v->tdb, conv_scan_one, &sc) < 0 && !sc.err)
		sc.err = -EIO;
	if (sc.err) {
		free(sc.oid);
		return sc.err;
	}
	memset(&t, 0, sizeof(t));
	t.v = v;
	t.now = now_ns();
	rc = tdbj_txn_start(v->j);
	if (rc)
		goto out_free;
	rc = vrec_get_v1(v, &t.vr);
	if (rc) {
		tdbj_txn_cancel(v->j);
		/* Converted by another process meanwhile? */
		rc = vrec_get(v, &t.vr) == 0 ? 0 : rc;
		goto out_free;
	}
	v->cs = VS_CHUNK_DEFAULT;
	buf = malloc(v->cs);
	if (!buf) {
		rc = -ENOMEM;
		goto fail;
	}
	for (size_t k = 0; k < sc.n; k++) {
		char path[DPATH_MAX];
		size_t made0 = t.nmade;
		struct obj o;
		int fd, dfd;

		if (obj_get(v, sc.oid[k], &o))
			continue;
		if (o.r.type != PROTO_T_FILE || o.r.size == 0) {
			obj_release(&o);
			continue;
		}
		data_path(path, sizeof(path), o.oid, o.r.dv);
		fd = openat(v->dirfd, path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			/* Format 1 read a missing file as zeros. */
			rc = errno == ENOENT ? 0 : -errno;
			obj_release(&o);
			if (rc)
				goto fail;
			continue;
		}
		dfd = data_dir_open(v, o.oid, true);
		if (dfd < 0) {
			rc = dfd;
			close(fd);
			obj_release(&o);
			goto fail;
		}
		/* A file of one chunk whose data file holds exactly its bytes
		 * (fsynced when it was written) becomes its object by a hard
		 * link: most files of a volume convert without a copy. */
		if (o.r.size <= v->cs && conv_link(&t, fd, path, &o) == 0) {
			if (!(v->flags & VS_NOSYNC) && fsync(dfd) < 0)
				rc = -errno;
			close(dfd);
			close(fd);
			if (!rc)
				rc = cref_push(&old, &nfiles, &capold, o.oid,
					       0, o.r.dv);
			obj_release(&o);
			if (rc)
				goto fail;
			continue;
		}
		for (uint64_t i = 0; !rc && i * v->cs < o.r.size; i++) {
			uint64_t base = i * v->cs;
			size_t want = o.r.size - base < v->cs ?
					      (size_t)(o.r.size - base) :
					      v->cs;
			off_t d = lseek(fd, (off_t)base, SEEK_DATA);
			ssize_t got;

			if ((d < 0 && errno == ENXIO) ||
			    (d >= 0 && (uint64_t)d >= base + want))
				continue;
			got = util_pread_all(fd, buf, want, (off_t)base);
			if (got < 0)
				rc = (int)got;
			else
				rc = chunk_put(&t, o.oid, i, o.r.dv, buf,
					       (size_t)got);
		}
		if (!rc)
			rc = made_sync(&t, made0, dfd);
		close(dfd);
		close(fd);
		if (!rc)
			rc = cref_push(&old, &nfiles, &capold, o.oid, 0,
				       o.r.dv);
		obj_release(&o);
		if (rc)
			goto fail;
	}
	/* Format 3 if a copied chunk was small enough to go inline. */
	if (t.vr.magic != VREC_MAGIC_V3)
		t.vr.magic = VREC_MAGIC;
	t.vr.chunk_size = v->cs;
	rc = txn_commit(&t);
	if (rc)
		goto out_free;
	log_info(LOG_VOL, "volume '%s': converted to format 2 (%zu data "
		 "files, chunk size %u)", v->name, nfiles, v->cs);
	/* The format 1 files are unreferenced now. */
	for (size_t k = 0; k < nfiles; k++) {
		char path[DPATH_MAX];

		data_path(path, sizeof(path), old[k].oid, old[k].gen);
		unlinkat(v->dirfd, path, 0);
	}
	goto out_free;
fail:
	txn_abort(&t);
out_free:
	free(old);
	free(buf);
	free(sc.oid);
	return rc;
}

