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

/* ---- data files ---- */

void
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

void
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
void
cleanup_stage_tmp(struct vs_vol *v)
{
	int fd = openat(v->dirfd, "stage", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0)
		stage_walk(fd, stage_tmp_drop, NULL);
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

/*
 * Make the data file of @o at @newdv with @newsize bytes: the old bytes
 * up to the new size (holes kept), then the staged chunks of @store (may
 * be NULL: a truncate), fsynced with its directory. Nothing in the
 * database changes here.
 */
int
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
