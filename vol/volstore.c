/*
 * volstore.c - volume storage: the server root, volumes, objects,
 * directories, data versions, staging, the opid table and the event log.
 * It is the only code that knows the on-disk layout; it knows nothing of
 * HTTP or threads (callers serialize calls on one volume).
 *
 * Storage design (doc/vol-format.md has the full layout):
 *
 *   ROOT/secret.key                  token key (0600)
 *   ROOT/volumes/NAME/meta.tdb       every piece of metadata
 *   ROOT/volumes/NAME/tokens         "ID EPOCH": what a token must name
 *                                    (replaced by rename, never edited)
 *   ROOT/volumes/NAME/data/XX/OID.DV one file per (file object, data
 *                                    version) with size > 0; XX = first
 *                                    byte of OID in hex
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
 * exist together or not at all. A store or truncate first writes the NEW
 * data file OID.(DV+1) beside the old one (copy of the old bytes keeping
 * holes, staged chunks written in, ftruncate), fsyncs it and its directory,
 * THEN commits the transaction that makes the object point at DV+1, THEN
 * unlinks the old file. So:
 *
 *   - kill -9 or power loss before the commit: the object is at the old DV
 *     and its old file is intact; the new file is garbage that the next
 *     VS_CLEANUP open removes (no record points at it);
 *   - after the commit: the new file is durable (fsynced before), the old
 *     one may still exist and is removed by the next cleanup.
 *
 * Staged chunks are fsynced when they are PUT, so a store after a power
 * loss never copies torn staged bytes. The data files are immutable once
 * their DV is committed: a reader holding one open keeps reading that DV
 * even after it stops being current. New objects start at the volume's DV
 * high-water mark + 1, so a (FID, DV) pair never names two contents, even
 * when a client recreates an object with the same FID.
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

#define VREC_MAGIC 0x43564f31u /* "CVO1" */
#define OREC_MAGIC 0x434f4231u /* "COB1" */
#define DIR_SPLIT 64	       /* entries per bucket before the dir grows */
#define DIR_BUCKETS_MAX (1u << 20)
#define HASH_SIZE 10007
#define DPATH_MAX 96

/* The volume record, key "V". Host byte order (doc/vol-format.md). */
struct vrec {
	uint32_t magic;
	uint32_t id;
	uint8_t root[16];
	uint64_t ev_seq;
	uint64_t bytes_used, bytes_limit;
	uint64_t files_used, files_limit;
	uint64_t dv_max;
	uint64_t op_next, op_low;
	int64_t created;
	char name[72];
};

/* An object record, key "O" + oid, followed by the symlink target (tlen
 * bytes) and the xattr blob (xlen bytes: [u8 namelen][name][u32 vlen]
 * [value] ...). */
struct orec {
	uint32_t magic;
	uint8_t type;
	uint8_t pad[3];
	uint32_t mode, uid, gid;
	uint32_t nbuckets; /* directories: buckets of the entry list */
	uint64_t size, nlink, dv;
	int64_t atime, mtime, ctime;
	uint64_t nentries; /* directories */
	uint8_t parent[16]; /* directories: the one parent */
	uint32_t tlen, xlen;
};

_Static_assert(sizeof(struct orec) == 104, "orec layout");

struct vs_root {
	char *path;
	int fd;	  /* ROOT */
	int volfd; /* ROOT/volumes */
};

struct vs_vol {
	struct vs_root *root;
	char name[65];
	char dirname[80];
	int dirfd;
	int flags;
	struct tdb_context *tdb;
	uint32_t id;
	uint8_t rootoid[16];
	uint64_t staged;    /* bytes in stage/ (chunk files) */
	uint64_t stage_max; /* 0 = only the quota */
};

struct obj {
	uint8_t oid[16];
	struct orec r;
	char *target;
	uint8_t *x;
};

/* ---- small helpers ---- */

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t
wall_ms(void)
{
	return (uint64_t)now_ns() / 1000000;
}

static void
put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = v & 0xff;
		v >>= 8;
	}
}

static void
put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--) {
		p[i] = v & 0xff;
		v >>= 8;
	}
}

static uint64_t
name_hash(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

/* Fetch @key into a heap buffer (*val, free()). -ENOENT if missing. */
static int
kv_get(struct vs_vol *v, const void *k, size_t klen, uint8_t **val,
       size_t *vlen)
{
	return tdbw_fetch(v->tdb, k, klen, val, vlen);
}

static int
kv_put(struct vs_vol *v, const void *k, size_t klen, const void *val,
       size_t vlen)
{
	return tdbw_store(v->tdb, k, klen, val, vlen, TDB_REPLACE);
}

static int
kv_del(struct vs_vol *v, const void *k, size_t klen)
{
	int rc = tdbw_delete(v->tdb, k, klen);

	return rc == -ENOENT ? 0 : rc;
}

static bool
kv_exists(struct vs_vol *v, const void *k, size_t klen)
{
	TDB_DATA key = {.dptr = (unsigned char *)k, .dsize = klen};

	return tdb_exists(v->tdb, key) != 0;
}

/* ---- the volume record ---- */

static int
vrec_get(struct vs_vol *v, struct vrec *vr)
{
	uint8_t *val;
	size_t len;
	int rc = kv_get(v, "V", 1, &val, &len);

	if (rc)
		return rc == -ENOENT ? -EINVAL : rc;
	if (len != sizeof(*vr)) {
		free(val);
		return -EINVAL;
	}
	memcpy(vr, val, sizeof(*vr));
	free(val);
	if (vr->magic != VREC_MAGIC)
		return -EINVAL;
	vr->name[sizeof(vr->name) - 1] = 0;
	return 0;
}

static int
vrec_put(struct vs_vol *v, const struct vrec *vr)
{
	return kv_put(v, "V", 1, vr, sizeof(*vr));
}

/* ---- objects ---- */

static void
key_obj(uint8_t *k, const uint8_t oid[16])
{
	k[0] = 'O';
	memcpy(k + 1, oid, 16);
}

static void
obj_release(struct obj *o)
{
	free(o->target);
	free(o->x);
	o->target = NULL;
	o->x = NULL;
}

static int
obj_get(struct vs_vol *v, const uint8_t oid[16], struct obj *o)
{
	uint8_t k[17], *val;
	size_t len;
	int rc;

	memset(o, 0, sizeof(*o));
	key_obj(k, oid);
	rc = kv_get(v, k, sizeof(k), &val, &len);
	if (rc)
		return rc;
	rc = -EIO;
	if (len < sizeof(o->r))
		goto out;
	memcpy(&o->r, val, sizeof(o->r));
	if (o->r.magic != OREC_MAGIC ||
	    len != sizeof(o->r) + (size_t)o->r.tlen + o->r.xlen)
		goto out;
	memcpy(o->oid, oid, 16);
	if (o->r.tlen) {
		o->target = malloc(o->r.tlen + 1);
		if (!o->target) {
			rc = -ENOMEM;
			goto out;
		}
		memcpy(o->target, val + sizeof(o->r), o->r.tlen);
		o->target[o->r.tlen] = 0;
	}
	if (o->r.xlen) {
		o->x = malloc(o->r.xlen);
		if (!o->x) {
			rc = -ENOMEM;
			goto out;
		}
		memcpy(o->x, val + sizeof(o->r) + o->r.tlen, o->r.xlen);
	}
	rc = 0;
out:
	free(val);
	if (rc) {
		if (rc == -EIO)
			log_err(LOG_VOL, "corrupt object record in volume");
		obj_release(o);
	}
	return rc;
}

static int
obj_put(struct vs_vol *v, const struct obj *o)
{
	uint8_t k[17], *val;
	size_t len = sizeof(o->r) + o->r.tlen + o->r.xlen;
	int rc;

	val = malloc(len);
	if (!val)
		return -ENOMEM;
	memcpy(val, &o->r, sizeof(o->r));
	if (o->r.tlen)
		memcpy(val + sizeof(o->r), o->target, o->r.tlen);
	if (o->r.xlen)
		memcpy(val + sizeof(o->r) + o->r.tlen, o->x, o->r.xlen);
	key_obj(k, o->oid);
	rc = kv_put(v, k, sizeof(k), val, len);
	free(val);
	return rc;
}

static int
obj_del(struct vs_vol *v, const uint8_t oid[16])
{
	uint8_t k[17];

	key_obj(k, oid);
	return kv_del(v, k, sizeof(k));
}

static void
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

static int
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

/* ---- data files ---- */

static void
data_path(char *buf, size_t len, const uint8_t oid[16], uint64_t dv)
{
	char hex[33];

	util_hex_encode(oid, 16, hex);
	snprintf(buf, len, "data/%.2s/%s.%" PRIu64, hex, hex, dv);
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

int
vs_copy_sparse(int in, int out, uint64_t len)
{
	off_t pos = 0, end = (off_t)len;
	char *buf = NULL;
	int rc = 0;

	while (pos < end) {
		off_t d = lseek(in, pos, SEEK_DATA), h;

		if (d < 0) {
			if (errno == ENXIO)
				break;
			if (errno != EINVAL) {
				rc = -errno;
				goto out;
			}
			/* No SEEK_DATA on this file system: one data run. */
			d = pos;
			h = end;
		} else {
			if (d >= end)
				break;
			h = lseek(in, d, SEEK_HOLE);
			if (h < 0) {
				rc = -errno;
				goto out;
			}
		}
		if (h > end)
			h = end;
		while (d < h) {
			loff_t ioff = d, ooff = d;
			ssize_t n = copy_file_range(in, &ioff, out, &ooff,
						    (size_t)(h - d), 0);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				/* Fall back to read/write (another file system,
				 * or no copy_file_range). */
				size_t want = (size_t)(h - d) > (1u << 20) ?
						      (1u << 20) : (size_t)(h - d);
				ssize_t got;

				if (!buf && !(buf = malloc(1u << 20))) {
					rc = -ENOMEM;
					goto out;
				}
				got = util_pread_all(in, buf, want, d);
				if (got < 0) {
					rc = (int)got;
					goto out;
				}
				if (got == 0)
					break; /* source shorter than said */
				rc = util_pwrite_all(out, buf, (size_t)got, d);
				if (rc)
					goto out;
				n = got;
			}
			d += n;
		}
		pos = h;
	}
out:
	free(buf);
	return rc;
}

/* Make bytes [@from, @to) of @fd read as zeros (punch a hole, or write
 * zeros where the file system cannot). */
static int
zero_range(int fd, uint64_t from, uint64_t to)
{
	static const char zeros[65536];

	if (to <= from)
		return 0;
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)from, (off_t)(to - from)) == 0)
		return 0;
	while (from < to) {
		size_t n = to - from > sizeof(zeros) ? sizeof(zeros) :
						      (size_t)(to - from);
		int rc = util_pwrite_all(fd, zeros, n, (off_t)from);

		if (rc)
			return rc;
		from += n;
	}
	return 0;
}

/* ---- the root ---- */

int
vs_root_open(const char *path, bool create, struct vs_root **out)
{
	struct vs_root *r;
	int rc;

	*out = NULL;
	if (create) {
		rc = util_mkdir_p(path, 0700);
		if (rc)
			return rc;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->fd = r->volfd = -1;
	r->path = strdup(path);
	if (!r->path) {
		rc = -ENOMEM;
		goto fail;
	}
	r->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->fd < 0) {
		rc = -errno;
		goto fail;
	}
	if (create && mkdirat(r->fd, "volumes", 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		goto fail;
	}
	r->volfd = openat(r->fd, "volumes", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->volfd < 0) {
		rc = -errno;
		goto fail;
	}
	if (create)
		fsync(r->fd);
	*out = r;
	return 0;
fail:
	vs_root_close(r);
	return rc;
}

void
vs_root_close(struct vs_root *r)
{
	if (!r)
		return;
	if (r->volfd >= 0)
		close(r->volfd);
	if (r->fd >= 0)
		close(r->fd);
	free(r->path);
	free(r);
}

const char *
vs_root_path(const struct vs_root *r)
{
	return r->path;
}

int
vs_root_key(struct vs_root *r, bool create, uint8_t *key, size_t *len)
{
	char path[PATH_MAX];
	int rc;

	snprintf(path, sizeof(path), "%s/secret.key", r->path);
	rc = token_key_load(path, key, len);
	if (rc == -ENOENT && create) {
		rc = token_key_generate(path);
		if (rc && rc != -EEXIST)
			return rc;
		rc = token_key_load(path, key, len);
	}
	return rc;
}

int
vs_vol_meta_path(const struct vs_root *r, const char *name, char *buf,
		 size_t len)
{
	if (proto_volname_check(name))
		return -EINVAL;
	if ((size_t)snprintf(buf, len, "%s/volumes/%s/meta.tdb", r->path,
			     name) >= len)
		return -ENAMETOOLONG;
	return 0;
}

static void
staged_name(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, ".staged-%s", name);
}

/* Remove directory @name under @dirfd and everything in it (our own
 * layout only: two levels of subdirectories at most, no symlinks
 * followed). */
static int
rm_tree(int pfd, const char *name, int depth)
{
	int fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					     O_CLOEXEC);
	DIR *d;
	struct dirent *de;
	int rc = 0;

	if (fd < 0)
		return errno == ENOTDIR ? (unlinkat(pfd, name, 0) ? -errno : 0)
					: -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (de->d_type == DT_DIR && depth < 4)
			rc = rm_tree(dirfd(d), de->d_name, depth + 1);
		else if (unlinkat(dirfd(d), de->d_name, 0) < 0 &&
			 errno == EISDIR && depth < 4)
			rc = rm_tree(dirfd(d), de->d_name, depth + 1);
		if (rc)
			break;
	}
	closedir(d);
	if (!rc && unlinkat(pfd, name, AT_REMOVEDIR) < 0)
		rc = -errno;
	return rc;
}

/* Read the id of the volume in directory @dname (0 if unreadable). */
static uint32_t
peek_id(struct vs_root *r, const char *dname)
{
	char path[PATH_MAX];
	struct tdb_context *tdb;
	TDB_DATA key = {.dptr = (unsigned char *)"V", .dsize = 1}, d;
	uint32_t id = 0;
	struct vrec vr;

	snprintf(path, sizeof(path), "%s/volumes/%s/meta.tdb", r->path, dname);
	tdb = tdb_open(path, 0, TDB_DEFAULT, O_RDONLY, 0);
	if (!tdb)
		return 0;
	d = tdb_fetch(tdb, key);
	if (d.dptr && d.dsize == sizeof(vr)) {
		memcpy(&vr, d.dptr, sizeof(vr));
		if (vr.magic == VREC_MAGIC)
			id = vr.id;
	}
	free(d.dptr);
	tdb_close(tdb);
	return id;
}

static bool
id_in_use(struct vs_root *r, uint32_t id)
{
	int fd = dup(r->volfd);
	DIR *d;
	struct dirent *de;
	bool used = false;

	if (fd < 0)
		return true;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return true;
	}
	rewinddir(d);
	while (!used && (de = readdir(d))) {
		if (de->d_name[0] == '.' && strncmp(de->d_name, ".staged-", 8))
			continue;
		used = peek_id(r, de->d_name) == id;
	}
	closedir(d);
	return used;
}

static int
random_bytes(void *buf, size_t len)
{
	struct fid f;
	uint8_t *p = buf;

	while (len) {
		size_t n = len > 16 ? 16 : len;
		int rc = fid_random(0, &f);

		if (rc)
			return rc;
		memcpy(p, f.oid, n);
		p += n;
		len -= n;
	}
	return 0;
}

/* ---- token state (ROOT/volumes/NAME/tokens) ----
 *
 * One line "ID EPOCH\n": the volume id in 8 lower-case hex digits and the
 * token epoch in decimal (microseconds since the Unix epoch when it was
 * set). A token is honoured only if it names both (doc/protocol.md,
 * "Tokens"). The file lives beside meta.tdb, not in it, so cairn-vold's
 * loop thread can check a token with one stat() while a worker holds the
 * volume's tdb; it is replaced by write-fsync-rename, never edited, so a
 * reader sees the old line or the new one. */

static int
tokstate_write(int dfd, uint32_t id, uint64_t epoch)
{
	char buf[64], tmp[64];
	int n, fd, rc = 0;

	n = snprintf(buf, sizeof(buf), "%08" PRIx32 " %" PRIu64 "\n", id,
		     epoch);
	snprintf(tmp, sizeof(tmp), "tokens.tmp.%d", (int)getpid());
	fd = openat(dfd, tmp,
		    O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		    0600);
	if (fd < 0)
		return -errno;
	rc = util_write_all(fd, buf, (size_t)n);
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (!rc && renameat(dfd, tmp, dfd, "tokens") < 0)
		rc = -errno;
	if (rc) {
		unlinkat(dfd, tmp, 0);
		return rc;
	}
	if (fsync(dfd) < 0)
		return -errno;
	return 0;
}

/* Parse the token state in the open file @fd, strictly. */
static int
tokstate_parse(int fd, uint32_t *id, uint64_t *epoch)
{
	char buf[64], *end;
	unsigned long long e;
	unsigned long i;
	ssize_t n;

	n = util_pread_all(fd, buf, sizeof(buf) - 1, 0);
	if (n < 0)
		return (int)n;
	buf[n] = 0;
	if (n < 11 || buf[8] != ' ' || buf[n - 1] != '\n')
		return -EINVAL;
	for (int k = 0; k < 8; k++)
		if (!isxdigit((unsigned char)buf[k]))
			return -EINVAL;
	i = strtoul(buf, NULL, 16);
	if (!isdigit((unsigned char)buf[9]))
		return -EINVAL;
	errno = 0;
	e = strtoull(buf + 9, &end, 10);
	/* One line, nothing after it. */
	if (errno || *end != '\n' || end + 1 != buf + n || i == 0)
		return -EINVAL;
	*id = (uint32_t)i;
	*epoch = e;
	return 0;
}

int
vs_tokstate_get(struct vs_root *r, const char *name, bool force,
		struct vs_tokstate *ts)
{
	char path[128];
	struct stat st;
	int fd, rc;

	if (proto_volname_check(name))
		return -EINVAL;
	snprintf(path, sizeof(path), "%s/tokens", name);
	if (fstatat(r->volfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		ts->valid = false;
		return -errno;
	}
	/* The file is only ever replaced, so the same inode with the same
	 * times and size is the same line. */
	if (!force && ts->valid && st.st_dev == ts->dev &&
	    st.st_ino == ts->ino && st.st_size == ts->size &&
	    st.st_mtim.tv_sec == ts->mtime.tv_sec &&
	    st.st_mtim.tv_nsec == ts->mtime.tv_nsec)
		return 0;
	ts->valid = false;
	fd = openat(r->volfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	rc = tokstate_parse(fd, &ts->id, &ts->epoch);
	if (rc)
		goto out;
	ts->dev = st.st_dev;
	ts->ino = st.st_ino;
	ts->size = st.st_size;
	ts->mtime = st.st_mtim;
	ts->valid = true;
out:
	close(fd);
	return rc;
}

int
vs_tokstate_ensure(struct vs_root *r, const char *name)
{
	struct vs_tokstate ts = {0};
	struct vs_vol *v;
	int rc;

	rc = vs_tokstate_get(r, name, true, &ts);
	if (rc != -ENOENT)
		return rc;
	/* A volume made before token binding: vs_vol_open() writes it. */
	rc = vs_vol_open(r, name, VS_RDONLY, &v);
	if (rc)
		return rc;
	vs_vol_close(v);
	return vs_tokstate_get(r, name, true, &ts);
}

int
vs_vol_revoke(struct vs_root *r, const char *name, uint64_t *epochp)
{
	struct vs_tokstate ts = {0};
	uint64_t now = (uint64_t)now_ns() / 1000, epoch;
	int dfd, rc;

	rc = vs_tokstate_ensure(r, name);
	if (!rc)
		rc = vs_tokstate_get(r, name, true, &ts);
	if (rc)
		return rc;
	/* Later than every token minted so far, and meaningful as a time;
	 * never wrapped to 0, which would make every old token good. */
	if (now <= ts.epoch && ts.epoch == UINT64_MAX)
		return -EOVERFLOW;
	epoch = now > ts.epoch ? now : ts.epoch + 1;
	dfd = openat(r->volfd, name,
		     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	rc = tokstate_write(dfd, ts.id, epoch);
	close(dfd);
	if (!rc && epochp)
		*epochp = epoch;
	return rc;
}

int
vs_vol_create(struct vs_root *r, const char *name, uint64_t bytes_limit,
	      uint64_t files_limit, int flags, uint32_t *idp)
{
	char tmp[128], path[PATH_MAX];
	struct tdb_context *tdb = NULL;
	struct vs_vol v = {0};
	struct vrec vr;
	struct obj root;
	uint32_t id = 0;
	int rc, dfd = -1;
	bool made = false;

	if (proto_volname_check(name))
		return -EINVAL;
	if (faccessat(r->volfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	for (int i = 0; i < 64; i++) {
		rc = random_bytes(&id, sizeof(id));
		if (rc)
			return rc;
		if (id != 0 && !id_in_use(r, id))
			break;
		id = 0;
	}
	if (!id)
		return -EAGAIN;
	if (flags & VS_STAGED) {
		staged_name(tmp, sizeof(tmp), name);
	} else {
		uint32_t rnd;

		rc = random_bytes(&rnd, sizeof(rnd));
		if (rc)
			return rc;
		snprintf(tmp, sizeof(tmp), ".new-%s.%d.%08x", name,
			 (int)getpid(), rnd);
	}
	if (mkdirat(r->volfd, tmp, 0700) < 0)
		return -errno;
	made = true;
	dfd = openat(r->volfd, tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || mkdirat(dfd, "data", 0700) < 0 ||
	    mkdirat(dfd, "stage", 0700) < 0) {
		rc = -errno;
		goto out;
	}
	snprintf(path, sizeof(path), "%s/volumes/%s/meta.tdb", r->path, tmp);
	tdb = tdb_open(path, HASH_SIZE, TDB_DEFAULT, O_RDWR | O_CREAT | O_EXCL,
		       0600);
	if (!tdb) {
		rc = errno ? -errno : -EIO;
		goto out;
	}
	v.tdb = tdb;
	v.root = r;
	memset(&vr, 0, sizeof(vr));
	vr.magic = VREC_MAGIC;
	vr.id = id;
	vr.bytes_limit = bytes_limit;
	vr.files_limit = files_limit;
	vr.files_used = 1;
	vr.dv_max = 1;
	vr.created = now_ns();
	snprintf(vr.name, sizeof(vr.name), "%s", name);
	memset(&root, 0, sizeof(root));
	rc = random_bytes(root.oid, 16);
	if (rc)
		goto out;
	memcpy(vr.root, root.oid, 16);
	root.r.magic = OREC_MAGIC;
	root.r.type = PROTO_T_DIR;
	root.r.mode = 0755;
	root.r.uid = getuid();
	root.r.gid = getgid();
	root.r.nbuckets = 1;
	root.r.nlink = 2;
	root.r.dv = 1;
	root.r.atime = root.r.mtime = root.r.ctime = vr.created;
	memcpy(root.r.parent, root.oid, 16);
	rc = tdbw_txn_start(tdb);
	if (rc)
		goto out;
	rc = vrec_put(&v, &vr);
	if (!rc)
		rc = obj_put(&v, &root);
	if (rc) {
		tdbw_txn_cancel(tdb);
		goto out;
	}
	rc = tdbw_txn_commit(tdb);
	if (rc)
		goto out;
	tdb_close(tdb);
	tdb = NULL;
	rc = tokstate_write(dfd, id, (uint64_t)vr.created / 1000);
	if (rc)
		goto out;
	if (!(flags & VS_STAGED)) {
		if (renameat2(r->volfd, tmp, r->volfd, name, RENAME_NOREPLACE) <
		    0) {
			rc = -errno;
			goto out;
		}
	}
	made = false;
	fsync(r->volfd);
	if (idp)
		*idp = id;
	rc = 0;
out:
	if (tdb)
		tdb_close(tdb);
	if (dfd >= 0)
		close(dfd);
	if (made)
		rm_tree(r->volfd, tmp, 0);
	return rc;
}

int
vs_vol_publish(struct vs_root *r, const char *name)
{
	char tmp[128];

	if (proto_volname_check(name))
		return -EINVAL;
	staged_name(tmp, sizeof(tmp), name);
	if (renameat2(r->volfd, tmp, r->volfd, name, RENAME_NOREPLACE) < 0)
		return -errno;
	fsync(r->volfd);
	return 0;
}

int
vs_vol_remove(struct vs_root *r, const char *name, int flags)
{
	char src[128], dst[160];
	uint32_t rnd = 0;
	int rc;

	if (proto_volname_check(name))
		return -EINVAL;
	if (flags & VS_STAGED)
		staged_name(src, sizeof(src), name);
	else
		snprintf(src, sizeof(src), "%s", name);
	random_bytes(&rnd, sizeof(rnd));
	snprintf(dst, sizeof(dst), ".removed-%s.%08x", name, rnd);
	/* Rename first: the volume vanishes at once for every reader, and a
	 * crash in the middle of the deletion leaves only a hidden name. */
	if (renameat(r->volfd, src, r->volfd, dst) < 0)
		return -errno;
	fsync(r->volfd);
	rc = rm_tree(r->volfd, dst, 0);
	if (rc)
		log_warn(LOG_VOL, "cannot remove '%s': %s", dst, strerror(-rc));
	return 0;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
vs_vol_list(struct vs_root *r, char ***names, size_t *np)
{
	int fd = dup(r->volfd);
	DIR *d;
	struct dirent *de;
	char **v = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	*names = NULL;
	*np = 0;
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		if (proto_volname_check(de->d_name))
			continue;
		if (n == cap) {
			char **nv;

			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				rc = -ENOMEM;
				break;
			}
			v = nv;
		}
		v[n] = strdup(de->d_name);
		if (!v[n]) {
			rc = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (rc) {
		vs_names_free(v, n);
		return rc;
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp_str);
	*names = v;
	*np = n;
	return 0;
}

void
vs_names_free(char **names, size_t n)
{
	if (!names)
		return;
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* ---- cleanup of crash leftovers (VS_CLEANUP) ---- */

/* Parse "<32 hex>.<dv>" into @oid and @dv. */
static bool
parse_data_name(const char *s, uint8_t oid[16], uint64_t *dv)
{
	char *end;

	if (strlen(s) < 34 || s[32] != '.' ||
	    util_hex_decode(s, 32, oid, 16) != 16)
		return false;
	for (int i = 0; i < 32; i++)
		if (s[i] >= 'A' && s[i] <= 'F')
			return false;
	if (s[33] < '0' || s[33] > '9')
		return false;
	errno = 0;
	*dv = strtoull(s + 33, &end, 10);
	return !errno && !*end;
}

static void
cleanup_data(struct vs_vol *v)
{
	int fd = openat(v->dirfd, "data", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	struct dirent *de;
	unsigned removed = 0;

	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d))) {
		int sfd;
		DIR *sd;
		struct dirent *se;

		if (de->d_name[0] == '.')
			continue;
		sfd = openat(dirfd(d), de->d_name,
			     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sfd < 0)
			continue;
		sd = fdopendir(sfd);
		if (!sd) {
			close(sfd);
			continue;
		}
		while ((se = readdir(sd))) {
			uint8_t oid[16];
			uint64_t dv;
			struct obj o;
			bool keep = false;

			if (se->d_name[0] == '.')
				continue;
			if (parse_data_name(se->d_name, oid, &dv) &&
			    obj_get(v, oid, &o) == 0) {
				keep = o.r.type == PROTO_T_FILE &&
				       o.r.dv == dv && o.r.size > 0;
				obj_release(&o);
			}
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
		int sfd;
		DIR *sd;
		struct dirent *se;

		if (de->d_name[0] == '.')
			continue;
		sfd = openat(dirfd(d), de->d_name,
			     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sfd < 0)
			continue;
		sd = fdopendir(sfd);
		if (!sd) {
			close(sfd);
			continue;
		}
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
static void
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
static void
stage_dir_drop(struct vs_vol *v, const char *sdir)
{
	int fd = openat(v->dirfd, sdir,
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	char born[96];
	struct dirent *de;
	bool other = false;
	DIR *d;

	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
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

	snprintf(path, sizeof(path), "%s/" STAGE_BORN, name);
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
	int fd = openat(v->dirfd, "stage", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	struct dirent *de;
	int64_t now = (int64_t)wall_ms();
	int removed = 0;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
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
static void
cleanup_stage_tmp(struct vs_vol *v)
{
	int fd = openat(v->dirfd, "stage", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0)
		stage_walk(fd, stage_tmp_drop, NULL);
}

/* ---- open / close ---- */

int
vs_vol_open(struct vs_root *r, const char *name, int flags,
	    struct vs_vol **out)
{
	char path[PATH_MAX];
	struct vs_vol *v;
	struct vrec vr;
	int rc, oflags = (flags & VS_RDONLY) ? O_RDONLY : O_RDWR;
	int tflags = TDB_DEFAULT;

	*out = NULL;
	if (proto_volname_check(name))
		return -EINVAL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->root = r;
	v->flags = flags;
	v->dirfd = -1;
	snprintf(v->name, sizeof(v->name), "%s", name);
	if (flags & VS_STAGED)
		staged_name(v->dirname, sizeof(v->dirname), name);
	else
		snprintf(v->dirname, sizeof(v->dirname), "%s", name);
	v->dirfd = openat(r->volfd, v->dirname,
			  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (v->dirfd < 0) {
		rc = errno == ENOTDIR ? -ENOENT : -errno;
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/volumes/%s/meta.tdb", r->path,
		 v->dirname);
	if (flags & VS_NOSYNC)
		tflags |= TDB_NOSYNC;
	errno = 0;
	v->tdb = tdb_open(path, HASH_SIZE, tflags, oflags, 0600);
	if (!v->tdb) {
		rc = tdbw_open_errno(errno);
		goto fail;
	}
	rc = vrec_get(v, &vr);
	if (rc) {
		log_err(LOG_VOL, "cannot read volume record of '%s': %s", name,
			strerror(-rc));
		goto fail;
	}
	v->id = vr.id;
	memcpy(v->rootoid, vr.root, 16);
	/* Volumes made before tokens were bound to the id have no token
	 * state yet: start it at the creation time, so tokens minted from
	 * now on are bound and old-format ones stay refused. */
	if (faccessat(v->dirfd, "tokens", F_OK, AT_SYMLINK_NOFOLLOW) < 0 &&
	    errno == ENOENT) {
		rc = tokstate_write(v->dirfd, vr.id,
				    (uint64_t)vr.created / 1000);
		if (rc)
			log_warn(LOG_VOL,
				 "cannot write the token state of '%s': %s",
				 name, strerror(-rc));
	}
	if (flags & VS_CLEANUP) {
		cleanup_data(v);
		cleanup_stage_tmp(v);
		vs_stage_gc(v, VS_STAGE_AGE_S);
	}
	stage_count(v);
	*out = v;
	return 0;
fail:
	vs_vol_close(v);
	return rc;
}

void
vs_vol_close(struct vs_vol *v)
{
	if (!v)
		return;
	if (v->tdb)
		tdb_close(v->tdb);
	if (v->dirfd >= 0)
		close(v->dirfd);
	free(v);
}

int
vs_vol_info(struct vs_vol *v, struct vs_volinfo *out)
{
	struct vrec vr;
	int rc = vrec_get(v, &vr);

	memset(out, 0, sizeof(*out));
	if (rc)
		return rc;
	snprintf(out->name, sizeof(out->name), "%s", v->name);
	out->id = vr.id;
	out->root.vol = vr.id;
	memcpy(out->root.oid, vr.root, 16);
	out->event_seq = vr.ev_seq;
	out->bytes_used = vr.bytes_used;
	out->bytes_limit = vr.bytes_limit;
	out->files_used = vr.files_used;
	out->files_limit = vr.files_limit;
	out->dv_max = vr.dv_max;
	out->created_ns = vr.created;
	/* A damaged flag record must not make the volume unusable: it
	 * reads as private (vs_vol_public() says why). */
	vs_vol_public(v, &out->public);
	return 0;
}

int
vs_vol_set_limits(struct vs_vol *v, uint64_t bytes_limit,
		  uint64_t files_limit)
{
	struct vrec vr;
	int rc;

	if (v->flags & VS_RDONLY)
		return -EROFS;
	if ((rc = tdbw_txn_start(v->tdb)) != 0)
		return rc;
	rc = vrec_get(v, &vr);
	if (!rc) {
		vr.bytes_limit = bytes_limit;
		vr.files_limit = files_limit;
		rc = vrec_put(v, &vr);
	}
	if (rc) {
		tdbw_txn_cancel(v->tdb);
		return rc;
	}
	return tdbw_txn_commit(v->tdb);
}

/* The volume flags, key "F": one u32, host order. A record of its own
 * (not a field of "V") so volumes made before it need no conversion: a
 * missing key reads as no flag set. */
#define VFLAG_PUBLIC 1u

static int
vflags_get(struct vs_vol *v, uint32_t *flags)
{
	uint8_t *val;
	size_t len;
	int rc = kv_get(v, "F", 1, &val, &len);

	*flags = 0;
	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	if (len != sizeof(*flags)) {
		free(val);
		return -EINVAL;
	}
	memcpy(flags, val, sizeof(*flags));
	free(val);
	return 0;
}

int
vs_vol_public(struct vs_vol *v, bool *pub)
{
	uint32_t flags;
	int rc = vflags_get(v, &flags);

	*pub = !rc && (flags & VFLAG_PUBLIC);
	return rc;
}

int
vs_vol_set_public(struct vs_vol *v, bool pub)
{
	uint32_t flags;
	int rc;

	if (v->flags & VS_RDONLY)
		return -EROFS;
	if ((rc = tdbw_txn_start(v->tdb)) != 0)
		return rc;
	rc = vflags_get(v, &flags);
	/* A damaged record holds no flag we could keep: setting repairs it. */
	if (rc == -EINVAL)
		rc = 0;
	if (!rc) {
		flags = pub ? flags | VFLAG_PUBLIC : flags & ~VFLAG_PUBLIC;
		rc = kv_put(v, "F", 1, &flags, sizeof(flags));
	}
	if (rc) {
		tdbw_txn_cancel(v->tdb);
		return rc;
	}
	return tdbw_txn_commit(v->tdb);
}

int
vs_vol_sync(struct vs_vol *v)
{
	if (fsync(tdb_fd(v->tdb)) < 0)
		return -errno;
	if (syncfs(v->dirfd) < 0)
		return -errno;
	return 0;
}

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

static void
key_bucket(uint8_t *k, const uint8_t dir[16], uint32_t b)
{
	k[0] = 'B';
	memcpy(k + 1, dir, 16);
	put_be32(k + 17, b);
}

/* Look @name up in directory @dir: child oid and type. -ENOENT. */
static int
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
static int
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
static int
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
static int
dir_repoint(struct vs_vol *v, struct obj *dir, const char *name,
	    const uint8_t child[16], uint8_t type)
{
	int rc = dir_del(v, dir, name);

	return rc ? rc : dir_add(v, dir, name, child, type);
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

int
vs_readlink(struct vs_vol *v, const struct fid *fid, char **target)
{
	struct obj o;
	int rc = obj_get_fid(v, fid, &o);

	*target = NULL;
	if (rc)
		return rc;
	if (o.r.type != PROTO_T_SYMLINK || !o.target) {
		obj_release(&o);
		return -EINVAL;
	}
	*target = o.target;
	o.target = NULL;
	obj_release(&o);
	return 0;
}

/* Walk the xattr blob: calls @fn for each (name, value). */
struct xent {
	const char *name;
	size_t nlen;
	const uint8_t *val;
	size_t vlen;
	size_t off, reclen;
};

static bool
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

int
vs_data_open(struct vs_vol *v, const struct fid *fid, uint64_t dv, int *fdp,
	     uint64_t *size, uint64_t *cur_dv)
{
	char path[DPATH_MAX];
	struct obj o;
	int rc = obj_get_fid(v, fid, &o), fd;

	*fdp = -1;
	if (rc)
		return rc;
	*cur_dv = o.r.dv;
	*size = o.r.size;
	if (o.r.type != PROTO_T_FILE) {
		rc = o.r.type == PROTO_T_DIR ? -EISDIR : -EINVAL;
		goto out;
	}
	if (o.r.dv != dv) {
		rc = -ESTALE;
		goto out;
	}
	if (o.r.size == 0)
		goto out;
	data_path(path, sizeof(path), o.oid, o.r.dv);
	fd = openat(v->dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		/* A file whose bytes are all holes may have no data file;
		 * anything else missing is a damaged volume. */
		if (errno != ENOENT)
			rc = -errno;
		else
			log_warn(LOG_VOL, "volume '%s': data file '%s' missing "
				 "(reads as zeros)", v->name, path);
		goto out;
	}
	*fdp = fd;
out:
	obj_release(&o);
	return rc;
}

static void
key_ev(uint8_t *k, uint64_t seq)
{
	k[0] = 'L';
	put_be64(k + 1, seq);
}

/* Stored event: [u8 kind][16 oid][u64 dv]. */
int
vs_events_read(struct vs_vol *v, uint64_t from, struct proto_event *out,
	       size_t max, size_t *np)
{
	struct vrec vr;
	uint64_t seq;
	size_t n = 0;
	int rc = vrec_get(v, &vr);

	*np = 0;
	if (rc)
		return rc;
	if (from == 0)
		from = 1;
	for (seq = from; seq <= vr.ev_seq && n < max; seq++) {
		uint8_t k[9], *val;
		size_t len;

		key_ev(k, seq);
		rc = kv_get(v, k, sizeof(k), &val, &len);
		if (rc == -ENOENT)
			continue;
		if (rc)
			return rc;
		if (len == 25) {
			out[n].seq = seq;
			out[n].kind = (enum proto_ev_kind)val[0];
			out[n].fid.vol = v->id;
			memcpy(out[n].fid.oid, val + 1, 16);
			memcpy(&out[n].dv, val + 17, 8);
			n++;
		}
		free(val);
	}
	*np = n;
	return 0;
}

/* ---- staging ---- */

static void
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
	if (rc)
		return rc;
	if (o.r.type != PROTO_T_FILE) {
		rc = o.r.type == PROTO_T_DIR ? -EISDIR : -EINVAL;
		obj_release(&o);
		return rc;
	}
	obj_release(&o);
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

/* ---- mutations ---- */

struct txn {
	struct vs_vol *v;
	struct vrec vr;
	int64_t now;
	const char *msg;	/* error message for the reply */
	uint64_t cur_dv;	/* 410/412: the current dv */
	struct proto_op_result res;
	bool events;
	int nev;
	struct proto_event ev[VS_MAX_EVENTS];
	int ngone;
	char gone[4][DPATH_MAX];   /* data files to unlink after the commit */
	char newfile[DPATH_MAX];   /* data file to unlink if we fail */
	const struct proto_op *store; /* to clean staging after the commit */
};

static int
fail(struct txn *t, int err, const char *msg)
{
	t->msg = msg;
	return err;
}

static void
add_event(struct txn *t, enum proto_ev_kind kind, const uint8_t oid[16],
	  uint64_t dv)
{
	struct proto_event *e;

	if (!t->events || t->nev >= VS_MAX_EVENTS)
		return;
	/* One event per (kind, object) per mutation is enough. */
	for (int i = 0; i < t->nev; i++)
		if (t->ev[i].kind == kind && !memcmp(t->ev[i].fid.oid, oid, 16)) {
			t->ev[i].dv = dv;
			return;
		}
	e = &t->ev[t->nev++];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->fid.vol = t->v->id;
	memcpy(e->fid.oid, oid, 16);
	e->dv = dv;
}

static uint64_t
next_dv(struct txn *t, uint64_t dv)
{
	dv++;
	if (dv > t->vr.dv_max)
		t->vr.dv_max = dv;
	return dv;
}

/* Mark the data file of (@o, its dv) for removal after the commit. */
static void
gone_file(struct txn *t, const struct obj *o)
{
	if (o->r.type != PROTO_T_FILE || o->r.size == 0 || t->ngone >= 4)
		return;
	data_path(t->gone[t->ngone++], DPATH_MAX, o->oid, o->r.dv);
}

/* Load the directory @f for a change: must exist and be a directory. */
static int
load_dir(struct txn *t, const struct fid *f, struct obj *d)
{
	int rc = obj_get_fid(t->v, f, d);

	if (rc == -ENOENT)
		return fail(t, -ENOENT, "no such directory");
	if (rc)
		return rc;
	if (d->r.type != PROTO_T_DIR) {
		obj_release(d);
		return fail(t, -ENOTDIR, "not a directory");
	}
	return 0;
}

static void
dir_touch(struct txn *t, struct obj *d)
{
	d->r.dv = next_dv(t, d->r.dv);
	d->r.mtime = d->r.ctime = t->now;
	add_event(t, PROTO_EV_DIR, d->oid, d->r.dv);
}

/*
 * Make the data file of @o at @newdv with @newsize bytes: the old bytes
 * up to the new size (holes kept), then the staged chunks of @store (may
 * be NULL: a truncate), fsynced with its directory. Nothing in the
 * database changes here.
 */
static int
data_make(struct txn *t, const struct obj *o, uint64_t newdv,
	  uint64_t newsize, const struct proto_op *store)
{
	struct vs_vol *v = t->v;
	char path[DPATH_MAX], old[DPATH_MAX];
	int fd = -1, ofd = -1, dfd = -1, rc = 0;
	uint8_t *buf = NULL;

	if (newsize == 0)
		return 0;
	data_path(path, sizeof(path), o->oid, newdv);
	dfd = data_dir_open(v, o->oid, true);
	if (dfd < 0)
		return dfd;
	snprintf(t->newfile, sizeof(t->newfile), "%s", path);
	if (o->r.size > 0) {
		data_path(old, sizeof(old), o->oid, o->r.dv);
		/* Same bytes, new DV: a hard link is an exact copy. */
		if (!store && newsize == o->r.size) {
			unlinkat(v->dirfd, path, 0);
			if (linkat(v->dirfd, old, v->dirfd, path, 0) == 0)
				goto sync_dir;
		}
		ofd = openat(v->dirfd, old, O_RDONLY | O_CLOEXEC);
		if (ofd < 0 && errno != ENOENT) {
			rc = -errno;
			goto out;
		}
	}
	fd = openat(v->dirfd, path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	if (ofd >= 0) {
		rc = vs_copy_sparse(ofd, fd,
				    o->r.size < newsize ? o->r.size : newsize);
		if (rc)
			goto out;
	}
	for (size_t i = 0; store && i < store->nchunks; i++) {
		char sdir[64], sfile[128];
		uint64_t c = store->chunks[i], off, end;
		uint32_t cs = store->chunk_size;
		int sfd;
		ssize_t got;

		stage_names(sdir, sizeof(sdir), sfile, sizeof(sfile),
			    store->txid, o->oid, cs, c);
		off = c * cs;
		if (off >= newsize)
			continue;
		end = off + cs < newsize ? off + cs : newsize;
		if (!buf && !(buf = malloc(PROTO_CHUNK_MAX))) {
			rc = -ENOMEM;
			goto out;
		}
		sfd = openat(v->dirfd, sfile, O_RDONLY | O_CLOEXEC);
		if (sfd < 0) {
			rc = -errno;
			goto out;
		}
		got = util_pread_all(sfd, buf, cs, 0);
		close(sfd);
		if (got < 0) {
			rc = (int)got;
			goto out;
		}
		if ((uint64_t)got > end - off)
			got = (ssize_t)(end - off);
		rc = util_pwrite_all(fd, buf, (size_t)got, (off_t)off);
		/* A staged chunk is the whole chunk: what it does not cover
		 * reads as zeros, not as the old bytes. */
		if (!rc && ofd >= 0 && off + (uint64_t)got < o->r.size)
			rc = zero_range(fd, off + (uint64_t)got, end);
		if (rc)
			goto out;
	}
	if (ftruncate(fd, (off_t)newsize) < 0) {
		rc = -errno;
		goto out;
	}
	if (!(v->flags & VS_NOSYNC) && fsync(fd) < 0) {
		rc = -errno;
		goto out;
	}
sync_dir:
	if (!(v->flags & VS_NOSYNC) && fsync(dfd) < 0)
		rc = -errno;
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	if (ofd >= 0)
		close(ofd);
	close(dfd);
	return rc;
}

/* Pick the new object's oid (client's choice or random). */
static int
new_oid(struct txn *t, const struct fid *want, uint8_t oid[16])
{
	uint8_t k[17];

	if (!fid_is_null(want)) {
		if (want->vol != t->v->id)
			return fail(t, -EINVAL, "fid of another volume");
		key_obj(k, want->oid);
		if (kv_exists(t->v, k, sizeof(k)))
			return fail(t, -EEXIST, "fid exists");
		memcpy(oid, want->oid, 16);
		return 0;
	}
	for (int i = 0; i < 8; i++) {
		int rc = random_bytes(oid, 16);

		if (rc)
			return rc;
		key_obj(k, oid);
		if (!kv_exists(t->v, k, sizeof(k)))
			return 0;
	}
	return -EIO;
}

static int
op_create(struct txn *t, const struct proto_op *op)
{
	struct obj d, o;
	uint8_t child[16];
	int rc;

	rc = load_dir(t, &op->parent, &d);
	if (rc)
		return rc;
	memset(&o, 0, sizeof(o));
	if (ent_get(t->v, d.oid, op->name, child, NULL) == 0) {
		rc = fail(t, -EEXIST, "name exists");
		goto out;
	}
	if (t->vr.files_limit && t->vr.files_used >= t->vr.files_limit) {
		rc = fail(t, -EDQUOT, "volume file quota exceeded");
		goto out;
	}
	rc = new_oid(t, &op->fid, o.oid);
	if (rc)
		goto out;
	o.r.magic = OREC_MAGIC;
	o.r.type = (uint8_t)op->type;
	o.r.mode = op->mode & 07777;
	o.r.uid = op->uid;
	o.r.gid = op->gid;
	o.r.nlink = 1;
	o.r.dv = next_dv(t, t->vr.dv_max);
	o.r.atime = o.r.mtime = o.r.ctime = t->now;
	switch (op->kind) {
	case PROTO_OP_MKDIR:
		o.r.type = PROTO_T_DIR;
		o.r.nlink = 2;
		o.r.nbuckets = 1;
		memcpy(o.r.parent, d.oid, 16);
		d.r.nlink++;
		break;
	case PROTO_OP_SYMLINK:
		o.r.type = PROTO_T_SYMLINK;
		o.r.mode = 0777;
		o.target = strdup(op->target);
		if (!o.target) {
			rc = -ENOMEM;
			goto out;
		}
		o.r.tlen = (uint32_t)strlen(o.target);
		o.r.size = o.r.tlen;
		break;
	default:
		if (op->type != PROTO_T_FILE && op->type != PROTO_T_FIFO) {
			rc = fail(t, -EINVAL, "bad type for create");
			goto out;
		}
		break;
	}
	rc = dir_add(t->v, &d, op->name, o.oid, o.r.type);
	if (rc)
		goto out;
	dir_touch(t, &d);
	rc = obj_put(t->v, &o);
	if (!rc)
		rc = obj_put(t->v, &d);
	if (rc)
		goto out;
	t->vr.files_used++;
	t->res.has_attr = t->res.has_parent = true;
	obj_attr(t->v, &o, &t->res.attr);
	obj_attr(t->v, &d, &t->res.parent);
out:
	obj_release(&o);
	obj_release(&d);
	return rc;
}

static int
op_link(struct txn *t, const struct proto_op *op)
{
	struct obj d, o;
	uint8_t child[16];
	int rc;

	rc = load_dir(t, &op->parent, &d);
	if (rc)
		return rc;
	rc = obj_get_fid(t->v, &op->fid, &o);
	if (rc) {
		if (rc == -ENOENT)
			rc = fail(t, -ENOENT, "no such object");
		goto out;
	}
	if (o.r.type == PROTO_T_DIR) {
		rc = fail(t, -EPERM, "cannot hard-link a directory");
		goto out;
	}
	if (ent_get(t->v, d.oid, op->name, child, NULL) == 0) {
		rc = fail(t, -EEXIST, "name exists");
		goto out;
	}
	rc = dir_add(t->v, &d, op->name, o.oid, o.r.type);
	if (rc)
		goto out;
	dir_touch(t, &d);
	o.r.nlink++;
	o.r.ctime = t->now;
	add_event(t, PROTO_EV_ATTR, o.oid, o.r.dv);
	rc = obj_put(t->v, &o);
	if (!rc)
		rc = obj_put(t->v, &d);
	if (rc)
		goto out;
	t->res.has_attr = t->res.has_parent = true;
	obj_attr(t->v, &o, &t->res.attr);
	obj_attr(t->v, &d, &t->res.parent);
out:
	obj_release(&o);
	obj_release(&d);
	return rc;
}

/* Drop one link of @o (its name is already gone): delete it at nlink 0.
 * Fills @victim with the attributes after (nlink 0 = gone). */
static int
drop_link(struct txn *t, struct obj *o, struct proto_attr *victim)
{
	int rc;

	if (o->r.type == PROTO_T_DIR) {
		for (uint32_t b = 0; b < o->r.nbuckets; b++) {
			uint8_t k[21];

			key_bucket(k, o->oid, b);
			rc = kv_del(t->v, k, sizeof(k));
			if (rc)
				return rc;
		}
		o->r.nlink = 0;
	} else if (o->r.nlink > 0) {
		o->r.nlink--;
	}
	o->r.ctime = t->now;
	obj_attr(t->v, o, victim);
	if (o->r.nlink > 0) {
		add_event(t, PROTO_EV_ATTR, o->oid, o->r.dv);
		return obj_put(t->v, o);
	}
	victim->nlink = 0;
	add_event(t, PROTO_EV_GONE, o->oid, 0);
	if (o->r.type == PROTO_T_FILE) {
		t->vr.bytes_used -= o->r.size < t->vr.bytes_used ?
					    o->r.size : t->vr.bytes_used;
		gone_file(t, o);
	}
	if (t->vr.files_used)
		t->vr.files_used--;
	return obj_del(t->v, o->oid);
}

static int
op_unlink(struct txn *t, const struct proto_op *op)
{
	struct obj d, o;
	uint8_t child[16];
	int rc;

	memset(&o, 0, sizeof(o));
	rc = load_dir(t, &op->parent, &d);
	if (rc)
		return rc;
	if (ent_get(t->v, d.oid, op->name, child, NULL)) {
		rc = fail(t, -ENOENT, "no such name");
		goto out;
	}
	if (op->fid.vol != t->v->id || memcmp(child, op->fid.oid, 16)) {
		t->cur_dv = d.r.dv;
		rc = fail(t, -ECANCELED, "name points to another object");
		goto out;
	}
	rc = obj_get(t->v, child, &o);
	if (rc)
		goto out;
	if (op->kind == PROTO_OP_UNLINK && o.r.type == PROTO_T_DIR) {
		rc = fail(t, -EISDIR, "is a directory");
		goto out;
	}
	if (op->kind == PROTO_OP_RMDIR) {
		if (o.r.type != PROTO_T_DIR) {
			rc = fail(t, -ENOTDIR, "not a directory");
			goto out;
		}
		if (o.r.nentries) {
			rc = fail(t, -ENOTEMPTY, "directory not empty");
			goto out;
		}
		if (!memcmp(o.oid, t->v->rootoid, 16)) {
			rc = fail(t, -EBUSY, "cannot remove the root");
			goto out;
		}
		if (d.r.nlink > 2)
			d.r.nlink--;
	}
	rc = dir_del(t->v, &d, op->name);
	if (rc)
		goto out;
	dir_touch(t, &d);
	t->res.has_victim = true;
	rc = drop_link(t, &o, &t->res.victim);
	if (!rc)
		rc = obj_put(t->v, &d);
	if (rc)
		goto out;
	t->res.has_parent = true;
	obj_attr(t->v, &d, &t->res.parent);
out:
	obj_release(&o);
	obj_release(&d);
	return rc;
}

/* Is directory @anc the same as @dir or one of its ancestors? */
static int
is_ancestor(struct txn *t, const uint8_t anc[16], const uint8_t dir[16],
	    bool *yes)
{
	uint8_t cur[16];

	memcpy(cur, dir, 16);
	*yes = false;
	for (int depth = 0; depth < 100000; depth++) {
		struct obj o;
		int rc;

		if (!memcmp(cur, anc, 16)) {
			*yes = true;
			return 0;
		}
		if (!memcmp(cur, t->v->rootoid, 16))
			return 0;
		rc = obj_get(t->v, cur, &o);
		if (rc)
			return rc == -ENOENT ? -EIO : rc;
		memcpy(cur, o.r.parent, 16);
		obj_release(&o);
	}
	return -EIO;
}

static int
op_rename(struct txn *t, const struct proto_op *op)
{
	struct obj sd, dd, o, vic;
	struct obj *dst;
	uint8_t child[16], tchild[16], ttype;
	bool same_dir, have_target, anc;
	int rc;

	memset(&dd, 0, sizeof(dd));
	memset(&o, 0, sizeof(o));
	memset(&vic, 0, sizeof(vic));
	rc = load_dir(t, &op->parent, &sd);
	if (rc)
		return rc;
	same_dir = fid_eq(&op->parent, &op->newparent);
	if (!same_dir) {
		rc = load_dir(t, &op->newparent, &dd);
		if (rc)
			goto out;
	}
	dst = same_dir ? &sd : &dd;
	if (ent_get(t->v, sd.oid, op->name, child, NULL)) {
		rc = fail(t, -ENOENT, "no such name");
		goto out;
	}
	if (op->fid.vol != t->v->id || memcmp(child, op->fid.oid, 16)) {
		t->cur_dv = sd.r.dv;
		rc = fail(t, -ECANCELED, "name points to another object");
		goto out;
	}
	rc = obj_get(t->v, child, &o);
	if (rc)
		goto out;
	have_target = ent_get(t->v, dst->oid, op->newname, tchild, &ttype) == 0;
	if (have_target && (op->flags & PROTO_RENAME_NOREPLACE)) {
		rc = fail(t, -EEXIST, "name exists");
		goto out;
	}
	if (!have_target && !fid_is_null(&op->victim)) {
		if (op->flags & PROTO_RENAME_EXCHANGE)
			rc = fail(t, -ENOENT, "no such name to exchange with");
		else {
			t->cur_dv = dst->r.dv;
			rc = fail(t, -ECANCELED, "the expected victim is gone");
		}
		goto out;
	}
	if (have_target && (fid_is_null(&op->victim) ||
			    op->victim.vol != t->v->id ||
			    memcmp(tchild, op->victim.oid, 16))) {
		t->cur_dv = dst->r.dv;
		rc = fail(t, -ECANCELED, "new name points to another object");
		goto out;
	}
	/* Renaming a name onto itself, or onto another link of the same
	 * object, changes nothing (rename(2)). */
	if (have_target && !memcmp(tchild, o.oid, 16)) {
		t->res.has_attr = t->res.has_parent = true;
		obj_attr(t->v, &o, &t->res.attr);
		obj_attr(t->v, &sd, &t->res.parent);
		if (!same_dir) {
			t->res.has_newparent = true;
			obj_attr(t->v, &dd, &t->res.newparent);
		}
		goto out;
	}
	if (o.r.type == PROTO_T_DIR && !same_dir) {
		rc = is_ancestor(t, o.oid, dst->oid, &anc);
		if (rc)
			goto out;
		if (anc) {
			rc = fail(t, -EINVAL, "cannot move a directory into itself");
			goto out;
		}
	}
	if (have_target) {
		rc = obj_get(t->v, tchild, &vic);
		if (rc)
			goto out;
	}
	if (op->flags & PROTO_RENAME_EXCHANGE) {
		if (vic.r.type == PROTO_T_DIR && !same_dir) {
			rc = is_ancestor(t, vic.oid, sd.oid, &anc);
			if (rc)
				goto out;
			if (anc) {
				rc = fail(t, -EINVAL,
					  "cannot move a directory into itself");
				goto out;
			}
		}
		rc = dir_repoint(t->v, &sd, op->name, vic.oid, vic.r.type);
		if (!rc)
			rc = dir_repoint(t->v, dst, op->newname, o.oid, o.r.type);
		if (rc)
			goto out;
		if (!same_dir) {
			if (o.r.type == PROTO_T_DIR) {
				memcpy(o.r.parent, dst->oid, 16);
				dst->r.nlink++;
				sd.r.nlink--;
			}
			if (vic.r.type == PROTO_T_DIR) {
				memcpy(vic.r.parent, sd.oid, 16);
				sd.r.nlink++;
				dst->r.nlink--;
			}
		}
		vic.r.ctime = t->now;
		rc = obj_put(t->v, &vic);
		if (rc)
			goto out;
		t->res.has_victim = true;
		obj_attr(t->v, &vic, &t->res.victim);
	} else {
		if (have_target) {
			if (o.r.type == PROTO_T_DIR && vic.r.type != PROTO_T_DIR) {
				rc = fail(t, -ENOTDIR, "target is not a directory");
				goto out;
			}
			if (o.r.type != PROTO_T_DIR && vic.r.type == PROTO_T_DIR) {
				rc = fail(t, -EISDIR, "target is a directory");
				goto out;
			}
			if (vic.r.type == PROTO_T_DIR && vic.r.nentries) {
				rc = fail(t, -ENOTEMPTY, "directory not empty");
				goto out;
			}
			rc = dir_del(t->v, dst, op->newname);
			if (rc)
				goto out;
			if (vic.r.type == PROTO_T_DIR && dst->r.nlink > 2)
				dst->r.nlink--;
			t->res.has_victim = true;
			rc = drop_link(t, &vic, &t->res.victim);
			if (rc)
				goto out;
		}
		rc = dir_del(t->v, &sd, op->name);
		if (!rc)
			rc = dir_add(t->v, dst, op->newname, o.oid, o.r.type);
		if (rc)
			goto out;
		if (o.r.type == PROTO_T_DIR && !same_dir) {
			memcpy(o.r.parent, dst->oid, 16);
			if (sd.r.nlink > 2)
				sd.r.nlink--;
			dst->r.nlink++;
		}
	}
	o.r.ctime = t->now;
	dir_touch(t, &sd);
	if (!same_dir)
		dir_touch(t, &dd);
	rc = obj_put(t->v, &o);
	if (!rc)
		rc = obj_put(t->v, &sd);
	if (!rc && !same_dir)
		rc = obj_put(t->v, &dd);
	if (rc)
		goto out;
	t->res.has_attr = t->res.has_parent = true;
	obj_attr(t->v, &o, &t->res.attr);
	obj_attr(t->v, &sd, &t->res.parent);
	if (!same_dir) {
		t->res.has_newparent = true;
		obj_attr(t->v, &dd, &t->res.newparent);
	}
out:
	obj_release(&vic);
	obj_release(&o);
	obj_release(&dd);
	obj_release(&sd);
	return rc;
}

static int
op_setattr(struct txn *t, const struct proto_op *op)
{
	struct obj o;
	int rc = obj_get_fid(t->v, &op->fid, &o);

	if (rc)
		return rc == -ENOENT ? fail(t, rc, "no such object") : rc;
	if (op->base_dv != o.r.dv) {
		t->cur_dv = o.r.dv;
		rc = fail(t, -ECANCELED, "data version changed");
		goto out;
	}
	if (op->mask & PROTO_SA_SIZE) {
		uint64_t newdv;

		if (o.r.type == PROTO_T_DIR) {
			rc = fail(t, -EISDIR, "is a directory");
			goto out;
		}
		if (o.r.type != PROTO_T_FILE) {
			rc = fail(t, -EINVAL, "not a regular file");
			goto out;
		}
		if (op->size > VS_FILE_MAX) {
			rc = fail(t, -EFBIG, "file too large");
			goto out;
		}
		if (t->vr.bytes_limit && op->size > o.r.size &&
		    t->vr.bytes_used - o.r.size + op->size > t->vr.bytes_limit) {
			rc = fail(t, -EDQUOT, "volume quota exceeded");
			goto out;
		}
		newdv = next_dv(t, o.r.dv);
		rc = data_make(t, &o, newdv, op->size, NULL);
		if (rc)
			goto out;
		gone_file(t, &o);
		t->vr.bytes_used = t->vr.bytes_used - o.r.size + op->size;
		o.r.size = op->size;
		o.r.dv = newdv;
		o.r.mtime = t->now;
		add_event(t, PROTO_EV_DATA, o.oid, o.r.dv);
	}
	if (op->mask & PROTO_SA_MODE)
		o.r.mode = op->mode & 07777;
	if (op->mask & PROTO_SA_UID)
		o.r.uid = op->uid;
	if (op->mask & PROTO_SA_GID)
		o.r.gid = op->gid;
	if (op->mask & PROTO_SA_ATIME)
		o.r.atime = op->atime_ns;
	if (op->mask & PROTO_SA_MTIME)
		o.r.mtime = op->mtime_ns;
	o.r.ctime = t->now;
	if (!(op->mask & PROTO_SA_SIZE))
		add_event(t, PROTO_EV_ATTR, o.oid, o.r.dv);
	rc = obj_put(t->v, &o);
	if (rc)
		goto out;
	t->res.has_attr = true;
	obj_attr(t->v, &o, &t->res.attr);
out:
	obj_release(&o);
	return rc;
}

static int
op_xattr(struct txn *t, const struct proto_op *op)
{
	struct obj o;
	struct xent e;
	size_t off = 0, nlen = op->xname ? strlen(op->xname) : 0, total = 0;
	bool found = false;
	struct xent fe = {0};
	uint8_t *nx = NULL;
	size_t nxlen;
	int rc = obj_get_fid(t->v, &op->fid, &o);

	if (rc)
		return rc == -ENOENT ? fail(t, rc, "no such object") : rc;
	if (nlen == 0 || nlen > PROTO_XATTR_NAME_MAX) {
		rc = fail(t, nlen ? -ENAMETOOLONG : -EINVAL, "bad xattr name");
		goto out;
	}
	if (strncmp(op->xname, "user.", 5)) {
		rc = fail(t, -ENOTSUP, "only user.* xattrs are stored");
		goto out;
	}
	while (xnext(o.x, o.r.xlen, &off, &e)) {
		if (e.nlen == nlen && !memcmp(e.name, op->xname, nlen)) {
			found = true;
			fe = e;
		} else {
			total += e.nlen + 1;
		}
	}
	if (op->kind == PROTO_OP_REMOVEXATTR) {
		if (!found) {
			rc = fail(t, -ENOENT, "no such attribute");
			goto out;
		}
		memmove(o.x + fe.off, o.x + fe.off + fe.reclen,
			o.r.xlen - fe.off - fe.reclen);
		o.r.xlen -= (uint32_t)fe.reclen;
	} else {
		uint32_t vl = (uint32_t)op->xlen;

		if ((op->flags & PROTO_XATTR_CREATE) && found) {
			rc = fail(t, -EEXIST, "attribute exists");
			goto out;
		}
		if ((op->flags & PROTO_XATTR_REPLACE) && !found) {
			rc = fail(t, -ENOENT, "no such attribute");
			goto out;
		}
		if (op->xlen > PROTO_XATTR_VALUE_MAX) {
			rc = fail(t, -E2BIG, "attribute value too large");
			goto out;
		}
		if (total + nlen + 1 > PROTO_XATTR_LIST_MAX) {
			rc = fail(t, -E2BIG, "too many attribute names");
			goto out;
		}
		nxlen = o.r.xlen - (found ? fe.reclen : 0) + 5 + nlen + vl;
		nx = malloc(nxlen);
		if (!nx) {
			rc = -ENOMEM;
			goto out;
		}
		if (found) {
			memcpy(nx, o.x, fe.off);
			memcpy(nx + fe.off, o.x + fe.off + fe.reclen,
			       o.r.xlen - fe.off - fe.reclen);
			off = o.r.xlen - fe.reclen;
		} else {
			if (o.r.xlen)
				memcpy(nx, o.x, o.r.xlen);
			off = o.r.xlen;
		}
		nx[off] = (uint8_t)nlen;
		memcpy(nx + off + 1, op->xname, nlen);
		memcpy(nx + off + 1 + nlen, &vl, 4);
		if (vl)
			memcpy(nx + off + 5 + nlen, op->xvalue, vl);
		free(o.x);
		o.x = nx;
		o.r.xlen = (uint32_t)nxlen;
	}
	o.r.ctime = t->now;
	add_event(t, PROTO_EV_ATTR, o.oid, o.r.dv);
	rc = obj_put(t->v, &o);
	if (rc)
		goto out;
	t->res.has_attr = true;
	obj_attr(t->v, &o, &t->res.attr);
out:
	obj_release(&o);
	return rc;
}

static int
op_store(struct txn *t, const struct proto_op *op)
{
	struct obj o;
	uint64_t newdv;
	int rc = obj_get_fid(t->v, &op->fid, &o);

	if (rc)
		return rc == -ENOENT ? fail(t, rc, "no such object") : rc;
	if (o.r.type != PROTO_T_FILE) {
		rc = fail(t, o.r.type == PROTO_T_DIR ? -EISDIR : -EINVAL,
			  "not a regular file");
		goto out;
	}
	if (op->base_dv != o.r.dv) {
		t->cur_dv = o.r.dv;
		rc = fail(t, -ECANCELED, "data version changed");
		goto out;
	}
	if (op->size > VS_FILE_MAX) {
		rc = fail(t, -EFBIG, "file too large");
		goto out;
	}
	for (size_t i = 0; i < op->nchunks; i++) {
		char sdir[64], sfile[128];
		struct stat st;

		stage_names(sdir, sizeof(sdir), sfile, sizeof(sfile), op->txid,
			    o.oid, op->chunk_size, op->chunks[i]);
		if (fstatat(t->v->dirfd, sfile, &st, 0) < 0) {
			rc = errno == ENOENT ?
				     fail(t, -EINVAL, "a listed chunk was not staged") :
				     -errno;
			goto out;
		}
	}
	if (t->vr.bytes_limit && op->size > o.r.size &&
	    t->vr.bytes_used - o.r.size + op->size > t->vr.bytes_limit) {
		rc = fail(t, -EDQUOT, "volume quota exceeded");
		goto out;
	}
	newdv = next_dv(t, o.r.dv);
	rc = data_make(t, &o, newdv, op->size, op);
	if (rc)
		goto out;
	gone_file(t, &o);
	t->vr.bytes_used = t->vr.bytes_used - o.r.size + op->size;
	o.r.size = op->size;
	o.r.dv = newdv;
	o.r.mtime = o.r.ctime = t->now;
	add_event(t, PROTO_EV_DATA, o.oid, o.r.dv);
	rc = obj_put(t->v, &o);
	if (rc)
		goto out;
	t->store = op;
	t->res.has_attr = true;
	obj_attr(t->v, &o, &t->res.attr);
out:
	obj_release(&o);
	return rc;
}

static int
do_op(struct txn *t, const struct proto_op *op)
{
	switch (op->kind) {
	case PROTO_OP_CREATE:
	case PROTO_OP_MKDIR:
	case PROTO_OP_SYMLINK:
		return op_create(t, op);
	case PROTO_OP_LINK:
		return op_link(t, op);
	case PROTO_OP_UNLINK:
	case PROTO_OP_RMDIR:
		return op_unlink(t, op);
	case PROTO_OP_RENAME:
		return op_rename(t, op);
	case PROTO_OP_SETATTR:
		return op_setattr(t, op);
	case PROTO_OP_SETXATTR:
	case PROTO_OP_REMOVEXATTR:
		return op_xattr(t, op);
	case PROTO_OP_STORE:
		return op_store(t, op);
	default:
		return fail(t, -EINVAL, "unknown operation");
	}
}

static int
append_events(struct txn *t)
{
	for (int i = 0; i < t->nev; i++) {
		uint8_t k[9], val[25];
		int rc;

		t->ev[i].seq = ++t->vr.ev_seq;
		key_ev(k, t->ev[i].seq);
		val[0] = (uint8_t)t->ev[i].kind;
		memcpy(val + 1, t->ev[i].fid.oid, 16);
		memcpy(val + 17, &t->ev[i].dv, 8);
		rc = kv_put(t->v, k, sizeof(k), val, sizeof(val));
		if (rc)
			return rc;
		if (t->ev[i].seq > VS_EVENT_RING) {
			key_ev(k, t->ev[i].seq - VS_EVENT_RING);
			rc = kv_del(t->v, k, sizeof(k));
			if (rc)
				return rc;
		}
	}
	return 0;
}

/* Opid table: "Q"+opid -> [u64 wall ms][u32 status][body]; "q"+be64 n ->
 * opid, the insertion order, so the oldest can be dropped. */
static int
opid_lookup(struct vs_vol *v, const uint8_t opid[16], struct vs_reply *rep)
{
	uint8_t k[17], *val;
	size_t len;
	uint32_t st;
	int rc;

	k[0] = 'Q';
	memcpy(k + 1, opid, 16);
	rc = kv_get(v, k, sizeof(k), &val, &len);
	if (rc)
		return rc;
	if (len < 12) {
		free(val);
		return -EIO;
	}
	memcpy(&st, val + 8, 4);
	rep->body = malloc(len - 12 + 1);
	if (!rep->body) {
		free(val);
		return -ENOMEM;
	}
	memcpy(rep->body, val + 12, len - 12);
	rep->body[len - 12] = 0;
	rep->len = len - 12;
	rep->status = (int)st;
	rep->replayed = true;
	free(val);
	return 0;
}

static int
opid_record(struct txn *t, const uint8_t opid[16], int status,
	    const char *body, size_t blen)
{
	uint8_t k[17], nk[9], *val;
	uint64_t now = wall_ms();
	uint32_t st = (uint32_t)status;
	int rc;

	val = malloc(12 + blen);
	if (!val)
		return -ENOMEM;
	memcpy(val, &now, 8);
	memcpy(val + 8, &st, 4);
	memcpy(val + 12, body, blen);
	k[0] = 'Q';
	memcpy(k + 1, opid, 16);
	rc = kv_put(t->v, k, sizeof(k), val, 12 + blen);
	free(val);
	if (rc)
		return rc;
	nk[0] = 'q';
	put_be64(nk + 1, t->vr.op_next++);
	rc = kv_put(t->v, nk, sizeof(nk), opid, 16);
	if (rc)
		return rc;
	/* Drop at most two of the oldest per insert: bounded work, and the
	 * table still shrinks faster than it grows. */
	for (int i = 0; i < 2 && t->vr.op_next - t->vr.op_low > VS_OPID_KEEP;
	     i++) {
		uint8_t *o, *q;
		size_t olen, qlen;
		uint64_t when = 0;

		put_be64(nk + 1, t->vr.op_low);
		rc = kv_get(t->v, nk, sizeof(nk), &o, &olen);
		if (rc == -ENOENT) {
			t->vr.op_low++;
			continue;
		}
		if (rc)
			return rc;
		if (olen == 16) {
			memcpy(k + 1, o, 16);
			if (kv_get(t->v, k, sizeof(k), &q, &qlen) == 0) {
				if (qlen >= 8)
					memcpy(&when, q, 8);
				free(q);
			}
		}
		free(o);
		if (when && now - when < VS_OPID_AGE_MS)
			break;
		if (olen == 16)
			kv_del(t->v, k, sizeof(k));
		kv_del(t->v, nk, sizeof(nk));
		t->vr.op_low++;
	}
	return 0;
}

static int
txn_start(struct txn *t, struct vs_vol *v, bool events)
{
	int rc;

	memset(t, 0, sizeof(*t));
	t->v = v;
	t->events = events;
	t->now = now_ns();
	if (v->flags & VS_RDONLY)
		return -EROFS;
	rc = tdbw_txn_start(v->tdb);
	if (rc)
		return rc;
	rc = vrec_get(v, &t->vr);
	if (rc)
		tdbw_txn_cancel(v->tdb);
	return rc;
}

static void
txn_abort(struct txn *t)
{
	tdbw_txn_cancel(t->v->tdb);
	if (t->newfile[0])
		unlinkat(t->v->dirfd, t->newfile, 0);
}

static int
txn_commit(struct txn *t)
{
	int rc = vrec_put(t->v, &t->vr);

	if (rc) {
		txn_abort(t);
		return rc;
	}
	rc = tdbw_txn_commit(t->v->tdb);
	if (rc) {
		log_err(LOG_VOL, "cannot commit to volume '%s': %s",
			t->v->name, strerror(-rc));
		if (t->newfile[0])
			unlinkat(t->v->dirfd, t->newfile, 0);
		/* A commit that failed is never "not found" to the caller. */
		return rc != -ENOENT ? rc : -EIO;
	}
	/* Committed: old data files may go now (a crash before this leaves
	 * them for the next cleanup). */
	for (int i = 0; i < t->ngone; i++)
		unlinkat(t->v->dirfd, t->gone[i], 0);
	if (t->store) {
		char sdir[64], sfile[128];

		stage_names(sdir, sizeof(sdir), sfile, sizeof(sfile),
			    t->store->txid, t->store->fid.oid,
			    t->store->chunk_size, 0);
		for (size_t i = 0; i < t->store->nchunks; i++) {
			struct stat st;

			stage_names(sdir, sizeof(sdir), sfile, sizeof(sfile),
				    t->store->txid, t->store->fid.oid,
				    t->store->chunk_size, t->store->chunks[i]);
			if (fstatat(t->v->dirfd, sfile, &st,
				    AT_SYMLINK_NOFOLLOW) == 0 &&
			    unlinkat(t->v->dirfd, sfile, 0) == 0)
				t->v->staged -=
					t->v->staged > (uint64_t)st.st_size
						? (uint64_t)st.st_size
						: t->v->staged;
		}
		stage_dir_drop(t->v, sdir);
	}
	return 0;
}

int
vs_apply(struct vs_vol *v, const struct proto_op *op, struct vs_reply *rep)
{
	struct txn t;
	char *body;
	size_t blen;
	int rc, status;

	memset(rep, 0, sizeof(*rep));
	if (v->flags & VS_RDONLY)
		return -EROFS;
	rc = opid_lookup(v, op->opid, rep);
	if (rc != -ENOENT)
		return rc;
	rc = txn_start(&t, v, true);
	if (rc)
		return rc;
	rc = do_op(&t, op);
	if (rc == 0) {
		/* The events get their seqs first: the reply names the last,
		 * so a client can tell the events its reply already covers. */
		rc = append_events(&t);
		if (rc) {
			txn_abort(&t);
			return rc;
		}
		t.res.event_seq = t.nev ? t.vr.ev_seq : 0;
		body = proto_op_result_encode(&t.res, &blen);
		if (!body) {
			txn_abort(&t);
			return -errno ? -errno : -ENOMEM;
		}
		rc = opid_record(&t, op->opid, 200, body, blen);
		if (rc) {
			free(body);
			txn_abort(&t);
			return rc;
		}
		rc = txn_commit(&t);
		if (rc) {
			free(body);
			return rc;
		}
		rep->status = 200;
		rep->body = body;
		rep->len = blen;
		rep->nev = t.nev;
		memcpy(rep->ev, t.ev, sizeof(t.ev));
		return 0;
	}
	txn_abort(&t);
	status = proto_errno_to_status(-rc);
	if (status >= 500 && rc != -EDQUOT && rc != -ENOSPC)
		return rc;
	/* A refusal is a reply too: record it under the opid so a retry
	 * gets the same answer even if the state changed meanwhile. */
	body = proto_error_encode(rc, t.msg, t.cur_dv, &blen);
	if (!body)
		return -ENOMEM;
	{
		struct txn t2;
		int rc2 = txn_start(&t2, v, false);

		if (!rc2) {
			rc2 = opid_record(&t2, op->opid, status, body, blen);
			if (rc2)
				txn_abort(&t2);
			else
				rc2 = txn_commit(&t2);
		}
		if (rc2) {
			free(body);
			return rc2;
		}
	}
	rep->status = status;
	rep->body = body;
	rep->len = blen;
	return 0;
}

int
vs_apply_raw(struct vs_vol *v, const struct proto_op *op,
	     struct proto_op_result *res)
{
	struct txn t;
	int rc = txn_start(&t, v, false);

	if (rc)
		return rc;
	rc = do_op(&t, op);
	if (rc) {
		txn_abort(&t);
		return rc;
	}
	rc = txn_commit(&t);
	if (!rc && res)
		*res = t.res;
	return rc;
}

int
vs_import_times(struct vs_vol *v, const struct fid *fid, int64_t atime,
		int64_t mtime, int64_t ctime)
{
	struct txn t;
	struct obj o;
	int rc = txn_start(&t, v, false);

	if (rc)
		return rc;
	rc = obj_get_fid(v, fid, &o);
	if (rc) {
		txn_abort(&t);
		return rc;
	}
	o.r.atime = atime;
	o.r.mtime = mtime;
	o.r.ctime = ctime;
	rc = obj_put(v, &o);
	obj_release(&o);
	if (rc) {
		txn_abort(&t);
		return rc;
	}
	return txn_commit(&t);
}

int
vs_import_data(struct vs_vol *v, const struct fid *fid, int srcfd,
	       uint64_t size)
{
	char path[DPATH_MAX];
	struct txn t;
	struct obj o;
	int rc, fd = -1, dfd = -1;

	if (size > VS_FILE_MAX)
		return -EFBIG;
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
		if (dfd < 0) {
			rc = dfd;
			goto out;
		}
		data_path(path, sizeof(path), o.oid, o.r.dv);
		snprintf(t.newfile, sizeof(t.newfile), "%s", path);
		fd = openat(v->dirfd, path,
			    O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0) {
			rc = -errno;
			goto out;
		}
		rc = vs_copy_sparse(srcfd, fd, size);
		if (!rc && ftruncate(fd, (off_t)size) < 0)
			rc = -errno;
		if (!rc && !(v->flags & VS_NOSYNC) &&
		    (fsync(fd) < 0 || fsync(dfd) < 0))
			rc = -errno;
		if (rc)
			goto out;
	}
	o.r.size = size;
	t.vr.bytes_used += size;
	rc = obj_put(v, &o);
out:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	obj_release(&o);
	if (rc) {
		txn_abort(&t);
		return rc;
	}
	return txn_commit(&t);
}
