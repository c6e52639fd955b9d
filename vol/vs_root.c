/*
 * vs_root.c - the server root: its key, the volumes directory, token
 * state, creating, publishing, removing and listing volumes, and opening
 * and closing one (volstore.c has the storage design).
 */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
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
	pthread_mutex_init(&r->cl_lock, NULL);
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
	pthread_mutex_destroy(&r->cl_lock);
	free(r->path);
	free(r);
}

void
vs_root_set_journal_max(struct vs_root *r, size_t bytes)
{
	r->jmax = bytes;
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
int
rm_tree(int pfd, const char *name, int depth)
{
	DIR *d = util_opendirat(pfd, name, O_NOFOLLOW);
	struct dirent *de;
	int rc = 0;

	if (!d)
		return errno == ENOTDIR ? (unlinkat(pfd, name, 0) ? -errno : 0)
					: -errno;
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
	/* Format 1 records are a prefix of format 2 ones. */
	if (d.dptr && (d.dsize == sizeof(vr) || d.dsize == VREC_V1_SIZE)) {
		memset(&vr, 0, sizeof(vr));
		memcpy(&vr, d.dptr, d.dsize);
		if (vr.magic == VREC_MAGIC || vr.magic == VREC_MAGIC_V3 ||
		    vr.magic == VREC_MAGIC_J2 || vr.magic == VREC_MAGIC_J3 ||
		    vr.magic == VREC_MAGIC_V1 || vr.magic == VREC_MAGIC_GONE)
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

int
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
	return vs_vol_create_sized(r, name, bytes_limit, files_limit, flags,
				   0, idp);
}

int
vs_vol_create_sized(struct vs_root *r, const char *name,
		    uint64_t bytes_limit, uint64_t files_limit, int flags,
		    uint64_t nobjects, uint32_t *idp)
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
	tdb = tdb_open(path, (int)vs_hash_size(nobjects), TDB_DEFAULT,
		       O_RDWR | O_CREAT | O_EXCL, 0600);
	if (!tdb) {
		rc = errno ? -errno : -EIO;
		goto out;
	}
	v.tdb = tdb;
	{
		int err = 0;

		v.j = tdbj_open(tdb, NULL, 0, 0, &err);
		if (!v.j) {
			rc = err;
			goto out;
		}
	}
	v.root = r;
	memset(&vr, 0, sizeof(vr));
	vr.magic = VREC_MAGIC;
	vr.chunk_size = VS_CHUNK_DEFAULT;
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
	tdbj_close(v.j);
	v.j = NULL;
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
	if (v.j)
		tdbj_close(v.j);
	else if (tdb)
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

/*
 * Mark volume directory @dname removed: under the volume's lock, shared
 * (a cairn-vold that journals it checkpoints and goes on without the
 * journal first: vs_jlock.c), in one transaction, which waits for any
 * commit in flight (tdb's transaction lock is held across processes),
 * the volume record's magic becomes VREC_MAGIC_GONE; every later
 * transaction and staged chunk reads it as -ENOENT, and cairn-vold never
 * journals a record so marked. A volume whose tdb cannot be opened
 * (missing, damaged, already open in this process) has nothing to
 * coordinate with: 0 with a warning, or -ENOENT.
 */
static int
mark_removed_once(struct vs_root *r, const char *dname)
{
	char path[PATH_MAX];
	struct tdb_context *tdb;
	uint8_t *val = NULL;
	size_t len;
	uint32_t gone = VREC_MAGIC_GONE;
	int rc, dfd, lfd = -1, terr;

	dfd = openat(r->volfd, dname,
		     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return errno == ENOENT || errno == ENOTDIR ? -ENOENT : -errno;
	lfd = vlock_open(dfd);
	rc = lfd < 0 ? lfd : vlock_take(dfd, lfd, F_RDLCK, dname);
	if (rc) {
		close(dfd);
		if (lfd >= 0)
			close(lfd);
		log_err(LOG_VOL, "cannot lock volume '%s' to remove it: %s",
			dname, strerror(-rc));
		return rc;
	}
	snprintf(path, sizeof(path), "%s/volumes/%s/meta.tdb", r->path, dname);
	errno = 0;
	tdb = tdb_open(path, HASH_SIZE, TDB_DEFAULT, O_RDWR, 0600);
	terr = errno;
	if (tdb) {
		/* The tdb of the directory whose lock we hold (by path: a
		 * remove and create of the name may have come between). */
		struct stat a, b;

		if (fstat(tdb_fd(tdb), &a) < 0 ||
		    fstatat(dfd, "meta.tdb", &b, AT_SYMLINK_NOFOLLOW) < 0 ||
		    a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
			tdb_close(tdb);
			close(dfd);
			close(lfd);
			return -ESTALE;
		}
	}
	close(dfd);
	if (!tdb) {
		rc = tdbw_open_errno(terr);
		close(lfd);
		if (rc == -ENOENT && faccessat(r->volfd, dname, F_OK,
					       AT_SYMLINK_NOFOLLOW) < 0)
			return -ENOENT;
		log_warn(LOG_VOL, "cannot mark volume '%s' removed: %s", dname,
			 strerror(-rc));
		return 0;
	}
	rc = tdbw_txn_start(tdb);
	if (rc)
		goto out;
	rc = tdbw_fetch(tdb, "V", 1, &val, &len);
	if (!rc && len >= sizeof(gone)) {
		memcpy(val, &gone, sizeof(gone));
		rc = tdbw_store(tdb, "V", 1, val, len, TDB_REPLACE);
	}
	if (rc)
		tdbw_txn_cancel(tdb);
	else
		rc = tdbw_txn_commit(tdb);
out:
	free(val);
	tdb_close(tdb);
	close(lfd);
	if (rc)
		log_warn(LOG_VOL, "cannot mark volume '%s' removed: %s", dname,
			 strerror(-rc));
	return 0;
}

static int
vol_mark_removed(struct vs_root *r, const char *dname)
{
	int rc, tries = 0;

	do
		rc = mark_removed_once(r, dname);
	while (rc == -ESTALE && ++tries < 5);
	return rc == -ESTALE ? -ENOENT : rc;
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
	if (!(flags & VS_STAGED)) {
		rc = vol_mark_removed(r, src);
		if (rc)
			return rc;
	}
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

/* ---- open / close ---- */

/* ---- snapshots (VS_SNAPSHOT) ---- */

/* Remove the snapshots of volume @name whose maker is gone
 * (".snap-NAME.PID.RND" with no process PID). */
static void
snap_sweep(struct vs_root *r, const char *name)
{
	char prefix[96];
	DIR *d = util_opendirat(r->volfd, ".", 0);
	struct dirent *de;
	size_t pl;

	if (!d)
		return;
	pl = (size_t)snprintf(prefix, sizeof(prefix), ".snap-%s.", name);
	while ((de = readdir(d))) {
		long pid;
		char *end;

		if (strncmp(de->d_name, prefix, pl))
			continue;
		pid = strtol(de->d_name + pl, &end, 10);
		if (*end != '.' || pid <= 0 ||
		    (kill((pid_t)pid, 0) < 0 && errno == ESRCH))
			rm_tree(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}

struct snap_link {
	struct vs_vol *live;
	int sfd; /* the snapshot's directory */
	int rc;
};

/* Hard-link the chunk object a "C" record names into the snapshot. */
static int
snap_link_one(struct tdb_context *tdb, TDB_DATA key, TDB_DATA val, void *arg)
{
	struct snap_link *sl = arg;
	char path[DPATH_MAX], sub[16];
	uint64_t chunk = 0;
	struct cent e;

	(void)tdb;
	if (key.dsize != 25 || key.dptr[0] != 'C')
		return 0;
	if (val.dsize < sizeof(e)) {
		sl->rc = -EUCLEAN;
		return -1;
	}
	memcpy(&e, val.dptr, sizeof(e));
	/* An inline chunk (format 3) is in the copied meta.tdb already. */
	if (val.dsize > sizeof(e) && (e.flags & CENT_INLINE))
		return 0;
	for (int i = 0; i < 8; i++)
		chunk = chunk << 8 | key.dptr[17 + i];
	chunk_path(path, sizeof(path), key.dptr + 1, chunk, e.gen);
	if (linkat(sl->live->dirfd, path, sl->sfd, path, 0) == 0)
		return 0;
	if (errno == ENOENT) {
		snprintf(sub, sizeof(sub), "data/%02x", key.dptr[1]);
		if (mkdirat(sl->sfd, sub, 0700) < 0 && errno != EEXIST) {
			sl->rc = -errno;
			return -1;
		}
		if (linkat(sl->live->dirfd, path, sl->sfd, path, 0) == 0)
			return 0;
	}
	sl->rc = -errno;
	log_err(LOG_VOL, "snapshot of '%s': cannot link '%s': %s",
		sl->live->name, path, strerror(errno));
	return -1;
}

/* Copy the open file @in to @name in @to (a new file). Through @in and
 * not a new open of the same file: closing any fd of a file drops every
 * fcntl lock this process holds on it, tdb's included. */
static int
snap_copy(int in, int to, const char *name)
{
	char *buf = malloc(1u << 20);
	off_t off = 0;
	int out, rc = 0;

	if (!buf)
		return -ENOMEM;
	out = openat(to, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		rc = -errno;
		free(buf);
		return rc;
	}
	for (;;) {
		ssize_t n = util_pread_all(in, buf, 1u << 20, off);

		if (n <= 0) {
			rc = (int)n;
			break;
		}
		rc = util_pwrite_all(out, buf, (size_t)n, off);
		if (rc)
			break;
		off += n;
	}
	close(out);
	free(buf);
	return rc;
}

/*
 * Make a snapshot of volume @name in a new hidden directory, whose name
 * goes to @dname. While tdb's all-record read lock is held no commit of
 * any process can happen (a commit needs it for writing), so the copy of
 * meta.tdb is one instant, and the chunk objects its map names all exist
 * (an object is unlinked only after the commit that stops naming it):
 * they are hard-linked, not copied.
 */
static int
snap_make(struct vs_root *r, const char *name, char *dname, size_t dlen)
{
	struct snap_link sl = {.sfd = -1};
	struct vs_vol *live = NULL;
	struct tdb_context *copy = NULL;
	char path[PATH_MAX];
	uint32_t rnd = 0;
	bool locked = false;
	int rc;

	/* Opened for writing though nothing is written: tdb does no locking
	 * at all on a read-only handle (and a read-only open fails while a
	 * commit is in flight: it cannot run recovery). A format 1 volume
	 * is refused, not converted: an export must not change it. */
	rc = vs_vol_open(r, name, VS_NOCONVERT, &live);
	if (rc)
		return rc;
	snap_sweep(r, name);
	random_bytes(&rnd, sizeof(rnd));
	snprintf(dname, dlen, ".snap-%s.%d.%08x", name, (int)getpid(), rnd);
	if (mkdirat(r->volfd, dname, 0700) < 0) {
		rc = -errno;
		dname[0] = 0;
		goto out;
	}
	sl.live = live;
	sl.sfd = openat(r->volfd, dname, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sl.sfd < 0 || mkdirat(sl.sfd, "data", 0700) < 0) {
		rc = -errno;
		goto out;
	}
	if (tdb_lockall_read(live->tdb) != 0) {
		rc = tdbw_errno(live->tdb);
		goto out;
	}
	locked = true;
	rc = snap_copy(tdb_fd(live->tdb), sl.sfd, "meta.tdb");
	if (rc)
		goto out;
	/* tokens is only ever replaced by a rename: a link is a copy. */
	if (linkat(live->dirfd, "tokens", sl.sfd, "tokens", 0) < 0 &&
	    errno != ENOENT) {
		rc = -errno;
		goto out;
	}
	snprintf(path, sizeof(path), "%s/volumes/%s/meta.tdb", r->path,
		 dname);
	errno = 0;
	copy = tdb_open(path, HASH_SIZE, TDB_DEFAULT, O_RDONLY, 0600);
	if (!copy) {
		rc = tdbw_open_errno(errno);
		goto out;
	}
	if (tdb_traverse_read(copy, snap_link_one, &sl) < 0 && !sl.rc)
		sl.rc = tdbw_errno(copy);
	rc = sl.rc;
out:
	if (copy)
		tdb_close(copy);
	if (locked)
		tdb_unlockall_read(live->tdb);
	if (sl.sfd >= 0)
		close(sl.sfd);
	vs_vol_close(live);
	if (rc && dname[0]) {
		rm_tree(r->volfd, dname, 0);
		dname[0] = 0;
	}
	return rc;
}

/*
 * The clean-close marker (doc/vol-format.md, "Cleanup at open"): an empty
 * file CLEAN_MARK in the volume's directory says that no chunk object is
 * there that the map does not name. The serving process removes it when
 * it opens the volume (durably, before any store can make an object) and
 * writes it again when its last handle of the volume closes having
 * removed everything a commit stopped naming; vos import writes it into
 * the volume it made. So the cleanup's scan of every chunk object runs
 * only after a crash (no marker): the open of a cleanly closed volume
 * costs the same at any size.
 */
#define CLEAN_MARK "clean"

/* VS_CLEANUP open: take the marker away. @return true when it was there
 * (the scan can be skipped), false if the scan must run. */
static bool
clean_open(struct vs_vol *v)
{
	struct vs_root *r = v->root;
	bool other = false, clean;

	pthread_mutex_lock(&r->cl_lock);
	for (struct vs_vol *o = r->cl_open; o; o = o->cl_next)
		if (!strcmp(o->dirname, v->dirname))
			other = true;
	v->cl_next = r->cl_open;
	r->cl_open = v;
	v->cl_reg = true;
	pthread_mutex_unlock(&r->cl_lock);
	/* Another handle of this process has it open (the marker was its
	 * to take): a scan now could remove the new object of a store in
	 * flight there. */
	if (other)
		return true;
	clean = unlinkat(v->dirfd, CLEAN_MARK, 0) == 0;
	if (!clean && errno != ENOENT) {
		/* It cannot be taken away, so a crash would leave it
		 * lying: close must not make things worse. */
		log_warn(LOG_VOL, "volume '%s': cannot remove %s: %s", v->name,
			 CLEAN_MARK, strerror(errno));
		v->leaked = true;
		return false;
	}
	/* Gone for good before a store makes its first object. */
	if (clean && fsync(v->dirfd) < 0) {
		v->leaked = true;
		return false;
	}
	return clean;
}

/* Write the marker into the volume directory @dfd and make it durable. */
static int
clean_write(int dfd)
{
	int fd = openat(dfd, CLEAN_MARK, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		return -errno;
	close(fd);
	return fsync(dfd) < 0 ? -errno : 0;
}

/* VS_CLEANUP close: the last handle of the volume in this process writes
 * the marker, unless some object could not be unlinked or the volume was
 * removed or replaced meanwhile. */
static void
clean_close(struct vs_vol *v)
{
	struct vs_root *r = v->root;
	bool other = false, leaked = v->leaked;
	struct stat a, b;
	struct vrec vr;
	int rc;

	if (!v->cl_reg)
		return;
	pthread_mutex_lock(&r->cl_lock);
	for (struct vs_vol **p = &r->cl_open; *p; p = &(*p)->cl_next)
		if (*p == v) {
			*p = v->cl_next;
			break;
		}
	for (struct vs_vol *o = r->cl_open; o; o = o->cl_next)
		if (!strcmp(o->dirname, v->dirname)) {
			other = true;
			/* Its close decides, knowing what we leaked. */
			o->leaked |= leaked;
		}
	pthread_mutex_unlock(&r->cl_lock);
	if (other || leaked || !v->tdb || v->dirfd < 0 || !v->cs)
		return;
	/* A volume vos removed (magic CVOX) or renamed away. */
	if (vrec_get(v, &vr) != 0 || fstat(v->dirfd, &a) < 0 ||
	    fstatat(r->volfd, v->dirname, &b, AT_SYMLINK_NOFOLLOW) < 0 ||
	    a.st_dev != b.st_dev || a.st_ino != b.st_ino)
		return;
	rc = clean_write(v->dirfd);
	if (rc)
		log_warn(LOG_VOL, "volume '%s': cannot write %s: %s", v->name,
			 CLEAN_MARK, strerror(-rc));
}

/* Is the tdb of @v the meta.tdb of the directory whose lock we hold?
 * meta.tdb is opened by its path (tdb takes no descriptor): a `vos
 * remove` and `vos create` of the name between our directory open and
 * the tdb open would give us the new volume's tdb under the old one's
 * lock and journal. -ESTALE then (vs_vol_open() opens again). */
static int
tdb_in_dir(struct vs_vol *v)
{
	struct stat a, b;

	if (fstat(tdb_fd(v->tdb), &a) < 0)
		return -errno;
	if (fstatat(v->dirfd, "meta.tdb", &b, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? -ESTALE : -errno;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino ? 0 : -ESTALE;
}

static int
vol_open_once(struct vs_root *r, const char *name, int flags,
	      struct vs_vol **out);

int
vs_vol_open(struct vs_root *r, const char *name, int flags,
	    struct vs_vol **out)
{
	int rc, tries = 0;

	do
		rc = vol_open_once(r, name, flags, out);
	while (rc == -ESTALE && ++tries < 5);
	if (rc == -ESTALE)
		rc = -ENOENT;
	return rc;
}

static int
vol_open_once(struct vs_root *r, const char *name, int flags,
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
	/* Writes without transactions only into a volume nobody sees. */
	if ((flags & VS_BULK) &&
	    ((flags & (VS_STAGED | VS_RDONLY | VS_SNAPSHOT)) != VS_STAGED))
		return -EINVAL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->root = r;
	v->flags = flags;
	v->dirfd = -1;
	v->lockfd = -1;
	snprintf(v->name, sizeof(v->name), "%s", name);
	if (flags & VS_SNAPSHOT) {
		flags |= VS_RDONLY;
		oflags = O_RDONLY;
		v->flags = flags;
		rc = snap_make(r, name, v->dirname, sizeof(v->dirname));
		if (rc)
			goto fail;
		v->snap = true;
	} else if (flags & VS_STAGED)
		staged_name(v->dirname, sizeof(v->dirname), name);
	else
		snprintf(v->dirname, sizeof(v->dirname), "%s", name);
	v->dirfd = openat(r->volfd, v->dirname,
			  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (v->dirfd < 0) {
		rc = errno == ENOTDIR ? -ENOENT : -errno;
		goto fail;
	}
	/* A published volume is shared with other processes: its lock
	 * first (vs_jlock.c). Exclusive for cairn-vold's journal, unless
	 * another process is knocking or holds it. */
	if (!(flags & VS_STAGED) && !v->snap) {
		rc = vlock_open(v->dirfd);
		if (rc < 0)
			goto fail;
		v->lockfd = rc;
		if ((flags & VS_JOURNAL) && !(flags & VS_RDONLY) &&
		    !vlock_knocked(v->dirfd) &&
		    vlock_set(v->lockfd, F_WRLCK) == 0) {
			v->lockmode = F_WRLCK;
		} else {
			rc = vlock_take(v->dirfd, v->lockfd, F_RDLCK, name);
			if (rc)
				goto fail;
			v->lockmode = F_RDLCK;
		}
	}
	snprintf(path, sizeof(path), "%s/volumes/%s/meta.tdb", r->path,
		 v->dirname);
	if (flags & VS_NOSYNC)
		tflags |= TDB_NOSYNC;
	/* VS_BULK: a hidden volume only this handle writes; tdb's fcntl
	 * chain locks were 40 system calls per imported file. */
	if (flags & VS_BULK)
		tflags |= TDB_NOLOCK;
	errno = 0;
	v->tdb = tdb_open(path, HASH_SIZE, tflags, oflags, 0600);
	rc = v->tdb ? 0 : tdbw_open_errno(errno);
	if (rc == -EUCLEAN && (flags & VS_RDONLY) && v->lockmode == F_RDLCK &&
	    vlock_set(v->lockfd, F_WRLCK) == 0) {
		/* A tdb commit cut short by a crash (the journal's checkpoint,
		 * or cairn-vold without one), which only a read-write open
		 * undoes; nobody else has the volume now (the lock is ours
		 * alone), so run that open, then read as asked. */
		struct tdb_context *t = tdb_open(path, HASH_SIZE, TDB_DEFAULT,
						 O_RDWR, 0600);

		if (t)
			tdb_close(t);
		if (vlock_set(v->lockfd, F_RDLCK) == 0) {
			errno = 0;
			v->tdb = tdb_open(path, HASH_SIZE, tflags, oflags,
					  0600);
			rc = v->tdb ? 0 : tdbw_open_errno(errno);
		} else {
			v->lockmode = F_WRLCK;
		}
	}
	if (!rc && v->lockfd >= 0)
		rc = tdb_in_dir(v);
	if (rc)
		goto fail;
	rc = vj_open(v);
	if (rc)
		goto fail;
	rc = vrec_get(v, &vr);
	if (rc == -EPROTO && (flags & VS_NOCONVERT))
		goto fail;
	if (rc == -EPROTO && (flags & VS_RDONLY)) {
		/* Format 1 read-only: metadata reads work, data reads are
		 * refused (v->cs stays 0) until a writer converts it. */
		rc = vrec_get_v1(v, &vr);
		if (rc)
			goto fail;
		vr.chunk_size = 0;
		goto opened;
	}
	if (rc == -EPROTO) {
		/* The conversion makes chunk objects a crash would leave
		 * behind: no marker may say there are none. */
		unlinkat(v->dirfd, CLEAN_MARK, 0);
		rc = data_convert(v);
		if (!rc)
			rc = vrec_get(v, &vr);
		if (rc) {
			log_err(LOG_VOL, "cannot convert volume '%s' to "
				"format 2: %s", name, strerror(-rc));
			goto fail;
		}
	}
	if (rc) {
		log_err(LOG_VOL, "cannot read volume record of '%s': %s", name,
			strerror(-rc));
		goto fail;
	}
	if (vr.chunk_size < VS_CHUNK_MIN || vr.chunk_size > VS_CHUNK_MAX ||
	    (vr.chunk_size & (vr.chunk_size - 1))) {
		log_err(LOG_VOL, "volume '%s': bad chunk size %u", name,
			vr.chunk_size);
		rc = -EUCLEAN;
		goto fail;
	}
	v->cs = vr.chunk_size;
opened:
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
		if (!clean_open(v)) {
			/* One all-record read lock for the scan: tdb's chain
			 * lock around each of its lookups is then a no-op
			 * (two fcntl calls less an object). */
			bool locked = tdb_lockall_read(v->tdb) == 0;

			cleanup_data(v);
			if (locked)
				tdb_unlockall_read(v->tdb);
		}
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
	if (v->flags & VS_CLEANUP)
		clean_close(v);
	dir_cache_free(v); /* not synced: an import that failed */
	vj_close(v);
	if (v->dirfd >= 0)
		close(v->dirfd);
	if (v->snap)
		rm_tree(v->root->volfd, v->dirname, 0);
	free(v);
}

int
vs_vol_info(struct vs_vol *v, struct vs_volinfo *out)
{
	struct vrec vr;
	int rc = (v->cs ? vrec_get(v, &vr) : vrec_get_v1(v, &vr));

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
	out->chunk_size = vr.chunk_size;
	out->format = !v->cs ? 1 : vr.magic == VREC_MAGIC_V3 ? 3 : 2;
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
	if ((rc = tdbj_txn_start(v->j)) != 0)
		return rc;
	rc = vrec_get(v, &vr);
	if (!rc) {
		vr.bytes_limit = bytes_limit;
		vr.files_limit = files_limit;
		rc = vrec_put(v, &vr);
	}
	if (rc) {
		tdbj_txn_cancel(v->j);
		return rc;
	}
	return tdbj_txn_commit(v->j, 0);
}

/* The volume flags, key "F": one u32, host order. A record of its own
 * (not a field of "V") so volumes made before it need no conversion: a
 * missing key reads as no flag set. */
#define VFLAG_PUBLIC 1u

static int
vflags_get(struct vs_vol *v, uint32_t *flags)
{
	int rc;

	*flags = 0;
	rc = kv_get_fixed(v, "F", 1, flags, sizeof(*flags), -EINVAL);
	return rc == -ENOENT ? 0 : rc;
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
	if ((rc = tdbj_txn_start(v->j)) != 0)
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
		tdbj_txn_cancel(v->j);
		return rc;
	}
	return tdbj_txn_commit(v->j, 0);
}

int
vs_vol_sync(struct vs_vol *v)
{
	int rc = dir_cache_flush(v);

	if (rc)
		return rc;
	/* A bulk load names every object it made (a failure removes the
	 * whole staged volume): the first open of it needs no scan. The
	 * syncfs below makes the marker durable with the rest. */
	if ((v->flags & VS_BULK) && !v->broken) {
		int fd = openat(v->dirfd, CLEAN_MARK,
				O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

		if (fd < 0)
			return -errno;
		close(fd);
	}
	if (fsync(tdb_fd(v->tdb)) < 0)
		return -errno;
	if (syncfs(v->dirfd) < 0)
		return -errno;
	return 0;
}
