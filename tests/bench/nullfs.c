/*
 * nullfs.c - a FUSE file system that keeps names and attributes in memory
 * and throws file data away: the floor under any FUSE file system's write
 * path (issue #14). bench-fuse-floor.sh untars and dd's through it beside
 * cairnd and local disk, so that a target can be judged against what
 * FUSE itself costs on this kernel: nearly the same requests reach it as
 * reach cairnd (it mounts with cairnd's options and asks the kernel for
 * the same capabilities, but not FUSE_HANDLE_KILLPRIV_V2, which libfuse
 * does not offer: one GETATTR more an untarred file), and each is
 * answered at once from a table under one lock, with no disk, no log and
 * no server. doc/cm.md, "The floor under the write path".
 *
 * usage: nullfs [-o writeback] MOUNTPOINT
 * Runs in the foreground until unmounted (fusermount3 -u) or signalled.
 * -o writeback turns on the kernel's write-back cache
 * (FUSE_CAP_WRITEBACK_CACHE, which cairnd does not use) to show what that
 * would give. The requests of each kind so far are the value of the
 * extended attribute "nullfs.stats" of any file ("NAME COUNT" lines), as
 * cairnd's are of "cairn.stats".
 *
 * Reads return zeros up to a file's size. Nothing is ever freed before
 * exit (FORGET is counted, not acted on): a benchmark's tree is small.
 * Not a test of anything; it is built by make bench only.
 */
#define FUSE_USE_VERSION 35
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

struct node {
	struct stat st;
	char *name;
	fuse_ino_t parent;
	struct node *hnext;	/* (parent, name) hash chain */
	struct node *kid, *sib; /* a directory's entries */
	char *target;		/* symlink */
};

#define HASH_BITS 16
/* cairnd's default entry and attribute timeouts: a day */
#define NF_TIMEOUT 86400.0

enum {
	R_LOOKUP,
	R_FORGET,
	R_GETATTR,
	R_SETATTR,
	R_MKDIR,
	R_MKNOD,
	R_CREATE,
	R_OPEN,
	R_READ,
	R_WRITE,
	R_FLUSH,
	R_RELEASE,
	R_FSYNC,
	R_UNLINK,
	R_RMDIR,
	R_RENAME,
	R_SYMLINK,
	R_READLINK,
	R_OPENDIR,
	R_READDIR,
	R_RELEASEDIR,
	R_STATFS,
	R_GETXATTR,
	R_SETXATTR,
	R_LISTXATTR,
	R_REMOVEXATTR,
	R_ACCESS,
	R_N
};
static const char *const rname[R_N] = {
	[R_LOOKUP] = "LOOKUP",
	[R_FORGET] = "FORGET",
	[R_GETATTR] = "GETATTR",
	[R_SETATTR] = "SETATTR",
	[R_MKDIR] = "MKDIR",
	[R_MKNOD] = "MKNOD",
	[R_CREATE] = "CREATE",
	[R_OPEN] = "OPEN",
	[R_READ] = "READ",
	[R_WRITE] = "WRITE",
	[R_FLUSH] = "FLUSH",
	[R_RELEASE] = "RELEASE",
	[R_FSYNC] = "FSYNC",
	[R_UNLINK] = "UNLINK",
	[R_RMDIR] = "RMDIR",
	[R_RENAME] = "RENAME",
	[R_SYMLINK] = "SYMLINK",
	[R_READLINK] = "READLINK",
	[R_OPENDIR] = "OPENDIR",
	[R_READDIR] = "READDIR",
	[R_RELEASEDIR] = "RELEASEDIR",
	[R_STATFS] = "STATFS",
	[R_GETXATTR] = "GETXATTR",
	[R_SETXATTR] = "SETXATTR",
	[R_LISTXATTR] = "LISTXATTR",
	[R_REMOVEXATTR] = "REMOVEXATTR",
	[R_ACCESS] = "ACCESS",
};

static struct {
	pthread_mutex_t lock;
	struct node **ino; /* by inode number; [1] is the root */
	size_t nino, cap;
	struct node *hash[1u << HASH_BITS];
	bool writeback;
	unsigned long nreq[R_N];
} fs = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void
count(int r)
{
	__atomic_add_fetch(&fs.nreq[r], 1, __ATOMIC_RELAXED);
}

static uint32_t
hname(fuse_ino_t parent, const char *name)
{
	uint32_t h = 2166136261u ^ (uint32_t)parent;

	for (; *name; name++)
		h = (h ^ (uint8_t)*name) * 16777619u;
	return h >> (32 - HASH_BITS);
}

/* Caller holds fs.lock. */
static struct node *
find(fuse_ino_t parent, const char *name)
{
	struct node *n;

	for (n = fs.hash[hname(parent, name)]; n; n = n->hnext)
		if (n->parent == parent && !strcmp(n->name, name))
			return n;
	return NULL;
}

static struct node *
get(fuse_ino_t ino)
{
	return ino < fs.nino ? fs.ino[ino] : NULL;
}

static void
now(struct timespec *t)
{
	clock_gettime(CLOCK_REALTIME, t);
}

/* A new node named @name in directory @parent (caller holds fs.lock and
 * has checked the name is free). NULL: out of memory. */
static struct node *
add(fuse_ino_t parent, const char *name, mode_t mode, const fuse_req_t req)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct node *n, *p = get(parent);
	uint32_t h;

	if (fs.nino == fs.cap) {
		size_t cap = fs.cap ? fs.cap * 2 : 1024;
		struct node **t = realloc(fs.ino, cap * sizeof(*t));

		if (!t)
			return NULL;
		fs.ino = t;
		fs.cap = cap;
	}
	n = calloc(1, sizeof(*n));
	if (!n || !(n->name = strdup(name))) {
		free(n);
		return NULL;
	}
	n->st.st_ino = fs.nino;
	n->st.st_mode = mode;
	n->st.st_nlink = S_ISDIR(mode) ? 2 : 1;
	n->st.st_uid = c->uid;
	n->st.st_gid = c->gid;
	n->st.st_blksize = 4096;
	now(&n->st.st_mtim);
	n->st.st_atim = n->st.st_ctim = n->st.st_mtim;
	n->parent = parent;
	fs.ino[fs.nino++] = n;
	if (p) {
		h = hname(parent, name);
		n->hnext = fs.hash[h];
		fs.hash[h] = n;
		n->sib = p->kid;
		p->kid = n;
		if (S_ISDIR(mode))
			p->st.st_nlink++;
		p->st.st_mtim = p->st.st_ctim = n->st.st_mtim;
	}
	return n;
}

/* Take @n out of its directory's name table and list (fs.lock held). */
static void
detach(struct node *n)
{
	struct node **pp = &fs.hash[hname(n->parent, n->name)];
	struct node *p = get(n->parent);

	while (*pp != n)
		pp = &(*pp)->hnext;
	*pp = n->hnext;
	for (pp = &p->kid; *pp != n; pp = &(*pp)->sib)
		;
	*pp = n->sib;
	if (S_ISDIR(n->st.st_mode))
		p->st.st_nlink--;
	now(&p->st.st_mtim);
	p->st.st_ctim = p->st.st_mtim;
}

/* An entry for @st, or a negative one (NULL). */
static void
reply_entry(fuse_req_t req, const struct stat *st)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	if (st) {
		e.ino = st->st_ino;
		e.attr = *st;
	}
	/* cairnd's defaults: a day, negative entries too. */
	e.attr_timeout = NF_TIMEOUT;
	e.entry_timeout = NF_TIMEOUT;
	fuse_reply_entry(req, &e);
}

static void
nf_init(void *data, struct fuse_conn_info *conn)
{
	(void)data;
	/* What cairnd's op_init asks for, and no FUSE_HANDLE_KILLPRIV. */
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)
		conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	conn->want &= ~(unsigned)FUSE_CAP_HANDLE_KILLPRIV;
	if (fs.writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	else
		conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
}

static void
nf_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct node *n;
	struct stat st;

	count(R_LOOKUP);
	pthread_mutex_lock(&fs.lock);
	n = find(parent, name);
	if (n)
		st = n->st;
	pthread_mutex_unlock(&fs.lock);
	reply_entry(req, n ? &st : NULL);
}

static void
nf_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	(void)ino;
	(void)nlookup;
	count(R_FORGET);
	fuse_reply_none(req);
}

static void
nf_forget_multi(fuse_req_t req, size_t count_, struct fuse_forget_data *f)
{
	(void)f;
	(void)count_;
	count(R_FORGET);
	fuse_reply_none(req);
}

/* The attributes @st (copied under the lock), or ENOENT (NULL). */
static void
reply_attr(fuse_req_t req, const struct stat *st)
{
	if (st)
		fuse_reply_attr(req, st, NF_TIMEOUT);
	else
		fuse_reply_err(req, ENOENT);
}

static void
nf_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct node *n;
	struct stat st;

	(void)fi;
	count(R_GETATTR);
	pthread_mutex_lock(&fs.lock);
	n = get(ino);
	if (n)
		st = n->st;
	pthread_mutex_unlock(&fs.lock);
	reply_attr(req, n ? &st : NULL);
}

static void
nf_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *a, int set,
	   struct fuse_file_info *fi)
{
	struct node *n;
	struct stat st;

	(void)fi;
	count(R_SETATTR);
	pthread_mutex_lock(&fs.lock);
	n = get(ino);
	if (n) {
		if (set & FUSE_SET_ATTR_MODE)
			n->st.st_mode =
				(n->st.st_mode & S_IFMT) | (a->st_mode & 07777);
		if (set & FUSE_SET_ATTR_UID)
			n->st.st_uid = a->st_uid;
		if (set & FUSE_SET_ATTR_GID)
			n->st.st_gid = a->st_gid;
		if (set & FUSE_SET_ATTR_SIZE)
			n->st.st_size = a->st_size;
		if (set & FUSE_SET_ATTR_ATIME_NOW)
			now(&n->st.st_atim);
		else if (set & FUSE_SET_ATTR_ATIME)
			n->st.st_atim = a->st_atim;
		if (set & FUSE_SET_ATTR_MTIME_NOW)
			now(&n->st.st_mtim);
		else if (set & FUSE_SET_ATTR_MTIME)
			n->st.st_mtim = a->st_mtim;
		now(&n->st.st_ctim);
		st = n->st;
	}
	pthread_mutex_unlock(&fs.lock);
	reply_attr(req, n ? &st : NULL);
}

/* MKDIR, MKNOD, CREATE and SYMLINK: a new name. */
static void
make(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
     const char *target, struct fuse_file_info *fi)
{
	struct node *n = NULL;
	struct stat st;
	int err = 0;

	pthread_mutex_lock(&fs.lock);
	if (!get(parent) || !S_ISDIR(get(parent)->st.st_mode))
		err = ENOTDIR;
	else if (find(parent, name))
		err = EEXIST;
	else if (!(n = add(parent, name, mode, req)))
		err = ENOMEM;
	else if (target && !(n->target = strdup(target)))
		err = ENOMEM;
	if (n) {
		if (target)
			n->st.st_size = (off_t)strlen(target);
		st = n->st;
	}
	pthread_mutex_unlock(&fs.lock);
	if (err) {
		fuse_reply_err(req, err);
	} else if (fi) {
		struct fuse_entry_param e;

		memset(&e, 0, sizeof(e));
		e.ino = st.st_ino;
		e.attr = st;
		e.attr_timeout = e.entry_timeout = NF_TIMEOUT;
		/* As cairnd: a file created write-only skips the page
		 * cache (unless the kernel's write-back cache is on). */
		if ((fi->flags & O_ACCMODE) == O_WRONLY && !fs.writeback)
			fi->direct_io = 1;
		fuse_reply_create(req, &e, fi);
	} else {
		reply_entry(req, &st);
	}
}

static void
nf_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	count(R_MKDIR);
	make(req, parent, name, S_IFDIR | (mode & 07777), NULL, NULL);
}

static void
nf_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	 dev_t rdev)
{
	(void)rdev;
	count(R_MKNOD);
	make(req, parent, name, mode, NULL, NULL);
}

static void
nf_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	  struct fuse_file_info *fi)
{
	count(R_CREATE);
	make(req, parent, name, S_IFREG | (mode & 07777), NULL, fi);
}

static void
nf_symlink(fuse_req_t req, const char *target, fuse_ino_t parent,
	   const char *name)
{
	count(R_SYMLINK);
	make(req, parent, name, S_IFLNK | 0777, target, NULL);
}

static void
nf_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char *t = NULL;

	count(R_READLINK);
	pthread_mutex_lock(&fs.lock);
	if (get(ino) && get(ino)->target)
		t = strdup(get(ino)->target);
	pthread_mutex_unlock(&fs.lock);
	if (!t) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	fuse_reply_readlink(req, t);
	free(t);
}

static void
remove_name(fuse_req_t req, fuse_ino_t parent, const char *name, bool dir)
{
	struct node *n;
	int err = 0;

	pthread_mutex_lock(&fs.lock);
	n = find(parent, name);
	if (!n)
		err = ENOENT;
	else if (dir && !S_ISDIR(n->st.st_mode))
		err = ENOTDIR;
	else if (!dir && S_ISDIR(n->st.st_mode))
		err = EISDIR;
	else if (dir && n->kid)
		err = ENOTEMPTY;
	else {
		detach(n);
		n->st.st_nlink = 0;
	}
	pthread_mutex_unlock(&fs.lock);
	fuse_reply_err(req, err);
}

static void
nf_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	count(R_UNLINK);
	remove_name(req, parent, name, false);
}

static void
nf_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	count(R_RMDIR);
	remove_name(req, parent, name, true);
}

static void
nf_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
	  fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct node *n, *old;
	char *nn;
	int err = 0;

	count(R_RENAME);
	if (flags & ~(unsigned)RENAME_NOREPLACE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	pthread_mutex_lock(&fs.lock);
	n = find(parent, name);
	old = find(newparent, newname);
	if (!n || !get(newparent))
		err = ENOENT;
	else if (old && (flags & RENAME_NOREPLACE))
		err = EEXIST;
	else if (old && old != n && S_ISDIR(old->st.st_mode) && old->kid)
		err = ENOTEMPTY;
	else if (!(nn = strdup(newname)))
		err = ENOMEM;
	if (!err && old != n) {
		struct node *p = get(newparent);
		uint32_t h = hname(newparent, newname);

		if (old)
			detach(old);
		detach(n);
		free(n->name);
		n->name = nn;
		n->parent = newparent;
		n->hnext = fs.hash[h];
		fs.hash[h] = n;
		n->sib = p->kid;
		p->kid = n;
		if (S_ISDIR(n->st.st_mode))
			p->st.st_nlink++;
	} else if (!err) {
		free(nn);
	}
	pthread_mutex_unlock(&fs.lock);
	fuse_reply_err(req, err);
}

static void
nf_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	count(R_OPEN);
	fuse_reply_open(req, fi);
}

static void
nf_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	struct fuse_file_info *fi)
{
	static const char zeros[128 << 10];
	off_t len = 0;

	(void)fi;
	count(R_READ);
	pthread_mutex_lock(&fs.lock);
	if (get(ino))
		len = get(ino)->st.st_size;
	pthread_mutex_unlock(&fs.lock);
	len = off >= len ? 0 : len - off;
	if ((size_t)len > size)
		len = (off_t)size;
	if ((size_t)len > sizeof(zeros))
		len = sizeof(zeros);
	fuse_reply_buf(req, zeros, (size_t)len);
}

static void
nf_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
	 off_t off, struct fuse_file_info *fi)
{
	struct node *n;

	(void)buf;
	(void)fi;
	count(R_WRITE);
	pthread_mutex_lock(&fs.lock);
	n = get(ino);
	if (n) {
		if (off + (off_t)size > n->st.st_size)
			n->st.st_size = off + (off_t)size;
		n->st.st_blocks = (n->st.st_size + 511) / 512;
		now(&n->st.st_mtim);
		n->st.st_ctim = n->st.st_mtim;
	}
	pthread_mutex_unlock(&fs.lock);
	if (!n)
		fuse_reply_err(req, ENOENT);
	else
		fuse_reply_write(req, size);
}

static void
nf_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	count(R_FLUSH);
	fuse_reply_err(req, 0);
}

static void
nf_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	count(R_RELEASE);
	fuse_reply_err(req, 0);
}

static void
nf_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
	 struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	count(R_FSYNC);
	fuse_reply_err(req, 0);
}

static void
nf_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	count(R_OPENDIR);
	fuse_reply_open(req, fi);
}

/* READDIR: the entries after position @off (1-based; "." and ".." left
 * out, which the kernel does not need for ls or rm -r). */
static void
nf_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	   struct fuse_file_info *fi)
{
	char *buf = malloc(size);
	size_t used = 0;
	struct node *n;
	off_t i = 0;

	(void)fi;
	count(R_READDIR);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_lock(&fs.lock);
	for (n = get(ino) ? get(ino)->kid : NULL; n; n = n->sib) {
		size_t len;

		if (++i <= off)
			continue;
		len = fuse_add_direntry(req, buf + used, size - used, n->name,
					&n->st, i);
		if (len > size - used)
			break;
		used += len;
	}
	pthread_mutex_unlock(&fs.lock);
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void
nf_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	count(R_RELEASEDIR);
	fuse_reply_err(req, 0);
}

static void
nf_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	(void)ino;
	count(R_STATFS);
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = sv.f_frsize = 4096;
	sv.f_blocks = sv.f_bfree = sv.f_bavail = 1u << 30;
	sv.f_files = sv.f_ffree = 1u << 30;
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

/* "nullfs.stats": the requests so far; no other attribute exists. */
static void
nf_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char buf[2048];
	size_t len = 0;

	(void)ino;
	count(R_GETXATTR);
	if (strcmp(name, "nullfs.stats")) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	for (int r = 0; r < R_N; r++)
		len += (size_t)snprintf(
			buf + len, sizeof(buf) - len, "%s %lu\n", rname[r],
			__atomic_load_n(&fs.nreq[r], __ATOMIC_RELAXED));
	if (!size)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, len);
}

static void
nf_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
	    size_t size, int flags)
{
	(void)ino;
	(void)name;
	(void)value;
	(void)size;
	(void)flags;
	count(R_SETXATTR);
	fuse_reply_err(req, ENOTSUP);
}

static void
nf_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	(void)ino;
	count(R_LISTXATTR);
	if (size)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_xattr(req, 0);
}

static void
nf_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino;
	(void)name;
	count(R_REMOVEXATTR);
	fuse_reply_err(req, ENODATA);
}

static void
nf_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	(void)ino;
	(void)mask;
	count(R_ACCESS);
	fuse_reply_err(req, 0);
}

static const struct fuse_lowlevel_ops ops = {
	.init = nf_init,
	.lookup = nf_lookup,
	.forget = nf_forget,
	.forget_multi = nf_forget_multi,
	.getattr = nf_getattr,
	.setattr = nf_setattr,
	.mkdir = nf_mkdir,
	.mknod = nf_mknod,
	.create = nf_create,
	.symlink = nf_symlink,
	.readlink = nf_readlink,
	.unlink = nf_unlink,
	.rmdir = nf_rmdir,
	.rename = nf_rename,
	.open = nf_open,
	.read = nf_read,
	.write = nf_write,
	.flush = nf_flush,
	.release = nf_release,
	.fsync = nf_fsync,
	.opendir = nf_opendir,
	.readdir = nf_readdir,
	.releasedir = nf_releasedir,
	.statfs = nf_statfs,
	.getxattr = nf_getxattr,
	.setxattr = nf_setxattr,
	.listxattr = nf_listxattr,
	.removexattr = nf_removexattr,
	.access = nf_access,
};

static int
usage(FILE *out, int rc)
{
	fprintf(out,
		"usage: nullfs [-o writeback] MOUNTPOINT\n"
		"A FUSE file system that keeps names and attributes in memory "
		"and\nthrows file data away (the floor of "
		"bench-fuse-floor.sh). "
		"Runs in\nthe foreground until unmounted.\n");
	return rc;
}

int
main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_loop_config lc = {0};
	struct fuse_session *se;
	const char *mnt = NULL;
	struct node *root;
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return usage(stdout, 0);
		if (!strcmp(argv[i], "-o") && i + 1 < argc) {
			const char *o = argv[++i];

			if (!strcmp(o, "writeback"))
				fs.writeback = true;
			else
				return usage(stderr, 2);
		} else if (!mnt && argv[i][0] != '-') {
			mnt = argv[i];
		} else {
			return usage(stderr, 2);
		}
	}
	if (!mnt)
		return usage(stderr, 2);
	/* Inode 0 is no inode; 1 is the root. */
	fs.nino = 1;
	fs.cap = 1024;
	fs.ino = calloc(fs.cap, sizeof(*fs.ino));
	root = fs.ino ? calloc(1, sizeof(*root)) : NULL;
	if (!root || !(root->name = strdup("")))
		return 1;
	root->st.st_ino = 1;
	root->st.st_mode = S_IFDIR | 0755;
	root->st.st_nlink = 2;
	now(&root->st.st_mtim);
	root->st.st_atim = root->st.st_ctim = root->st.st_mtim;
	fs.ino[fs.nino++] = root;
	/* cairnd's mount options (cm/cairnd.c make_fuse_opts()). */
	if (fuse_opt_add_arg(&args, argv[0]) || fuse_opt_add_arg(&args, "-o") ||
	    fuse_opt_add_arg(&args, "nosuid,nodev,allow_other,"
				    "default_permissions,fsname=nullfs,"
				    "subtype=nullfs"))
		return 1;
	se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (!se)
		return 1;
	if (fuse_set_signal_handlers(se) == 0) {
		if (fuse_session_mount(se, mnt) == 0) {
			lc.clone_fd = 0;
			lc.max_idle_threads = 16; /* cairnd's default */
			rc = fuse_session_loop_mt(se, &lc) ? 1 : 0;
			fuse_session_unmount(se);
		}
		fuse_remove_signal_handlers(se);
	}
	fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	return rc;
}
