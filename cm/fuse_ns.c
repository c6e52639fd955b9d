/*
 * fuse_ns.c - the FUSE front of a namespace (daemon_i.h struct cm_ns):
 * the operation table the session gets when cairnd serves several
 * volumes under one mount root. It answers for the namespace root itself
 * (inode 1: a read-only directory of the configured volumes, synthesized
 * here) and routes every other request to the volume whose slot its
 * inode number carries, calling the one-volume handler of fuse_ops.c or
 * fuse_mut.c with that volume set for the thread (fops_set_req_cm()).
 * A rename or link between two volumes is EXDEV, as between two file
 * systems; mv(1) then copies.
 *
 * It is also where a mount point is crossed (struct cm's cross hook):
 * the lookup is answered with the target volume's root, as a lookup of
 * /MOUNTROOT/DIR is.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "chunkstore/cs.h"
#include "cm/fuse_i.h"
#include "cm/fuse_ns.h"
#include "cm/inode.h"
#include "cm/mcache.h"
#include "cm/mfetch.h"
#include "common/log.h"

static struct cm_ns *
req_ns(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* The volume of @ino, or NULL after answering @req (the namespace root,
 * an unknown slot, a volume left out at start). */
static struct cm *
vol_of(fuse_req_t req, fuse_ino_t ino, int root_err)
{
	struct cm *cm;

	if (ino == FUSE_ROOT_ID) {
		fuse_reply_err(req, root_err);
		return NULL;
	}
	cm = cm_ns_of_ino(req_ns(req), ino);
	if (!cm || cm->ns_failed) {
		fuse_reply_err(req, cm ? EIO : ESTALE);
		return NULL;
	}
	return cm;
}

/* Run handler call @call for volume @vol on this thread. */
#define ROUTE(vol, call)                                                       \
	do {                                                                   \
		struct cm *old_ = fops_set_req_cm(vol);                        \
		call;                                                          \
		fops_set_req_cm(old_);                                         \
	} while (0)

/* Run handler call @call in the volume of @ino, if vol_of() finds it
 * (the namespace root answers @root_err): what most handlers below do. */
#define ROUTE_INO(req, ino, root_err, call)                                    \
	do {                                                                   \
		struct cm *vcm_ = vol_of(req, ino, root_err);                  \
		if (vcm_)                                                      \
			ROUTE(vcm_, call);                                     \
	} while (0)

/* --- the namespace root --- */

static void
root_stat(struct cm_ns *ns, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = FUSE_ROOT_ID;
	st->st_mode = S_IFDIR | 0555;
	st->st_nlink = 2;
	for (size_t i = 0, n = cm_ns_count(ns); i < n; i++)
		if (!cm_ns_hidden(cm_ns_vol(ns, i)))
			st->st_nlink++;
	st->st_blksize = ns->chunk_size;
	st->st_atim.tv_sec = ns->root_ctime_ns / 1000000000;
	st->st_atim.tv_nsec = ns->root_ctime_ns % 1000000000;
	st->st_mtim = st->st_atim;
	st->st_ctim = st->st_atim;
}

/*
 * Answer @req with the entry of @cm's root: one kernel lookup counted
 * (the root is never forgotten anyway). @return 0 answered, 1 the root's
 * attributes are not cached yet.
 */
static int
try_root_entry(struct cm *cm, fuse_req_t req)
{
	struct fuse_entry_param e;
	struct proto_attr a;
	struct ino_ent *ent;

	if (mcache_attr(cm->mc, &cm->vi.root, &a) < 0)
		return 1;
	memset(&e, 0, sizeof(e));
	e.ino = cm->ino_base | INO_ROOT;
	ino_lock(cm->ino);
	ent = ino_get_locked(cm->ino, e.ino);
	if (ent)
		ent->nlookup++;
	ino_unlock(cm->ino);
	fops_to_stat(cm, &a, e.ino, &e.attr);
	e.attr_timeout = cm->cfg.attr_timeout;
	e.entry_timeout = cm->cfg.entry_timeout;
	fuse_reply_entry(req, &e);
	return 0;
}

struct root_wait {
	struct cm_job job;
	struct cm *cm;
	fuse_req_t req;
};

static void
root_fetched(void *arg, int err)
{
	struct root_wait *w = arg;

	if (err || try_root_entry(w->cm, w->req) != 0)
		fuse_reply_err(w->req, err == -ENOENT ? ENOENT : EIO);
	free(w);
}

static void
root_run(struct cm_loop *loop, struct cm_job *job)
{
	struct root_wait *w = container_of(job, struct root_wait, job);

	if (cm_stopping(loop) || !w->cm->mf) {
		fuse_reply_err(w->req, EIO);
		free(w);
		return;
	}
	mfetch_want_attr(w->cm->mf, &w->cm->vi.root, root_fetched, w);
}

/* Any worker: answer @req with @cm's root entry, now or from the loop. */
static void
reply_root_entry(struct cm *cm, fuse_req_t req)
{
	struct root_wait *w;

	if (try_root_entry(cm, req) == 0)
		return;
	w = calloc(1, sizeof(*w));
	if (!w) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	w->cm = cm;
	w->req = req;
	w->job.run = root_run;
	cm_post(&cm->loop, &w->job);
}

int
fns_cross(void *arg, const char *volume, void *req)
{
	struct cm *src = arg;
	struct cm_ns *ns = src->ns;
	const char *colon = strchr(volume, ':'), *name = volume,
		   *url = src->cfg.server;
	char alias[PROTO_NAME_MAX + 1];

	/* "VOLUME": on the server of the volume that holds the mount point;
	 * "ALIAS:VOLUME": on the server of "[server ALIAS]". */
	if (colon) {
		size_t n = (size_t)(colon - volume);

		if (n >= sizeof(alias))
			return -EACCES;
		memcpy(alias, volume, n);
		alias[n] = '\0';
		url = cm_config_srv_url(&ns->cfg, alias);
		name = colon + 1;
		if (!url)
			return -EACCES;
	}
	for (size_t i = 0, nv = cm_ns_count(ns); i < nv; i++) {
		struct cm *cm = cm_ns_vol(ns, i);

		if (cm->ns_failed || cm_ns_hidden(cm) || !cm->cfg.volume || !cm->cfg.server ||
		    strcmp(cm->cfg.volume, name) || strcmp(cm->cfg.server, url))
			continue;
		reply_root_entry(cm, req);
		return 0;
	}
	return -EACCES;
}

void
fns_root_changed(struct fuse_session *se, const char *name)
{
	int rc;

	/* The listing (cached: cache_readdir) and the root's attributes. */
	rc = fuse_lowlevel_notify_inval_inode(se, FUSE_ROOT_ID, 0, 0);
	if (rc < 0 && rc != -ENOENT)
		log_debug(LOG_FUSE, "invalidating the root: %s",
			  strerror(-rc));
	/* The name's entry: a negative one, or the volume's root. */
	rc = fuse_lowlevel_notify_inval_entry(se, FUSE_ROOT_ID, name,
					      strlen(name));
	if (rc < 0 && rc != -ENOENT)
		log_debug(LOG_FUSE, "invalidating '%s' in the root: %s", name,
			  strerror(-rc));
}

static void
ns_init(void *userdata, struct fuse_conn_info *conn)
{
	struct cm_ns *ns = userdata;

	for (size_t i = 0, n = cm_ns_count(ns); i < n; i++)
		if (!cm_ns_vol(ns, i)->ns_failed) {
			fops_ops.init(cm_ns_vol(ns, i), conn);
			return;
		}
}

static void
ns_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct cm_ns *ns = req_ns(req);
	struct cm *cm;

	if (parent != FUSE_ROOT_ID) {
		if ((cm = vol_of(req, parent, EIO)))
			ROUTE(cm, fops_ops.lookup(req, parent, name));
		return;
	}
	cm = cm_ns_find(ns, name, strlen(name));
	if (!cm || cm_ns_hidden(cm)) {
		/* A reload that adds the name tells the kernel
		 * (fns_root_changed()): it may keep the negative entry. */
		struct fuse_entry_param e;

		memset(&e, 0, sizeof(e));
		e.entry_timeout = 86400;
		fuse_reply_entry(req, &e);
		return;
	}
	if (cm->ns_failed) {
		fuse_reply_err(req, EIO);
		return;
	}
	reply_root_entry(cm, req);
}

static void
ns_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct cm *cm = cm_ns_of_ino(req_ns(req), ino);

	if (cm && cm->ino)
		ino_forget(cm->ino, ino, nlookup);
	fuse_reply_none(req);
}

static void
ns_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f)
{
	struct cm_ns *ns = req_ns(req);

	for (size_t i = 0; i < count; i++) {
		struct cm *cm = cm_ns_of_ino(ns, f[i].ino);

		if (cm && cm->ino)
			ino_forget(cm->ino, f[i].ino, f[i].nlookup);
	}
	fuse_reply_none(req);
}

static void
ns_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;

	if (ino == FUSE_ROOT_ID) {
		root_stat(req_ns(req), &st);
		fuse_reply_attr(req, &st, 86400);
		return;
	}
	ROUTE_INO(req, ino, EIO, fops_ops.getattr(req, ino, fi));
}

static void
ns_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
	   struct fuse_file_info *fi)
{
	ROUTE_INO(req, ino, EACCES,
		  fops_ops.setattr(req, ino, attr, to_set, fi));
}

static void
ns_readlink(fuse_req_t req, fuse_ino_t ino)
{
	ROUTE_INO(req, ino, EINVAL, fops_ops.readlink(req, ino));
}

/* Creating in the namespace root: it is read-only. */
static void
ns_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	 dev_t rdev)
{
	ROUTE_INO(req, parent, EACCES,
		  fops_ops.mknod(req, parent, name, mode, rdev));
}

static void
ns_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	ROUTE_INO(req, parent, EACCES, fops_ops.mkdir(req, parent, name, mode));
}

static void
ns_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	ROUTE_INO(req, parent, EACCES, fops_ops.unlink(req, parent, name));
}

static void
ns_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	ROUTE_INO(req, parent, EACCES, fops_ops.rmdir(req, parent, name));
}

static void
ns_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
	   const char *name)
{
	ROUTE_INO(req, parent, EACCES,
		  fops_ops.symlink(req, link, parent, name));
}

/* For a rename or a link from @a to @b: neither may be the read-only
 * root (EACCES), and both must be in one volume (EXDEV). @return true,
 * or false after answering @req. */
static bool
one_vol(fuse_req_t req, fuse_ino_t a, fuse_ino_t b)
{
	if (a == FUSE_ROOT_ID || b == FUSE_ROOT_ID) {
		fuse_reply_err(req, EACCES);
		return false;
	}
	if (CM_NS_SLOT(a) != CM_NS_SLOT(b)) {
		fuse_reply_err(req, EXDEV);
		return false;
	}
	return true;
}

static void
ns_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
	  fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	if (one_vol(req, parent, newparent))
		ROUTE_INO(req, parent, EACCES,
			  fops_ops.rename(req, parent, name, newparent, newname,
					  flags));
}

static void
ns_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
	const char *newname)
{
	if (one_vol(req, ino, newparent))
		ROUTE_INO(req, ino, EACCES,
			  fops_ops.link(req, ino, newparent, newname));
}

static void
ns_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	ROUTE_INO(req, ino, EISDIR, fops_ops.open(req, ino, fi));
}

static void
ns_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	struct fuse_file_info *fi)
{
	ROUTE_INO(req, ino, EISDIR, fops_ops.read(req, ino, size, off, fi));
}

static void
ns_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
	 off_t off, struct fuse_file_info *fi)
{
	ROUTE_INO(req, ino, EISDIR,
		  fops_ops.write(req, ino, buf, size, off, fi));
}

static void
ns_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	ROUTE_INO(req, ino, 0, fops_ops.flush(req, ino, fi));
}

static void
ns_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
	 struct fuse_file_info *fi)
{
	ROUTE_INO(req, ino, 0, fops_ops.fsync(req, ino, datasync, fi));
}

static void
ns_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	ROUTE_INO(req, ino, 0, fops_ops.release(req, ino, fi));
}

static void
ns_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino == FUSE_ROOT_ID) {
		fi->fh = 0;
		fi->cache_readdir = 1;
		fi->keep_cache = 1;
		fuse_reply_open(req, fi);
		return;
	}
	ROUTE_INO(req, ino, EIO, fops_ops.opendir(req, ino, fi));
}

/* The root's listing: ".", "..", then the volumes in config order
 * (offsets as fuse_ops.c: 1 ".", 2 "..", 3 + i volume i). No attributes
 * in readdirplus: the kernel looks each one up. */
static void
root_readdir(fuse_req_t req, size_t size, off_t off, bool plus)
{
	struct cm_ns *ns = req_ns(req);
	size_t used = 0;
	off_t nv = (off_t)cm_ns_count(ns);
	char *buf = malloc(size ? size : 1);

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (off_t i = off; i < nv + 2; i++) {
		struct fuse_entry_param e;
		const char *name;
		size_t n;

		memset(&e, 0, sizeof(e));
		e.attr.st_mode = S_IFDIR;
		if (i < 2) {
			name = i == 0 ? "." : "..";
			e.attr.st_ino = FUSE_ROOT_ID;
		} else {
			struct cm *cm = cm_ns_vol(ns, (size_t)i - 2);

			if (cm_ns_hidden(cm))
				continue; /* removed by a reload */
			name = cm->ns_dir;
			e.attr.st_ino = cm->ino_base | INO_ROOT;
		}
		if (plus)
			n = fuse_add_direntry_plus(req, buf + used, size - used,
						   name, &e, i + 1);
		else
			n = fuse_add_direntry(req, buf + used, size - used,
					      name, &e.attr, i + 1);
		if (n > size - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

/* readdir, or readdirplus with @plus: the root's own listing, else the
 * volume's. */
static void
readdir_any(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	    struct fuse_file_info *fi, bool plus)
{
	if (ino == FUSE_ROOT_ID) {
		root_readdir(req, size, off, plus);
		return;
	}
	ROUTE_INO(req, ino, EIO,
		  (plus ? fops_ops.readdirplus
			: fops_ops.readdir)(req, ino, size, off, fi));
}

static void
ns_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	   struct fuse_file_info *fi)
{
	readdir_any(req, ino, size, off, fi, false);
}

static void
ns_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	       struct fuse_file_info *fi)
{
	readdir_any(req, ino, size, off, fi, true);
}

/* releasedir and fsyncdir of the root: nothing to do (vol_of() answers
 * 0). */
static void
ns_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	ROUTE_INO(req, ino, 0, fops_ops.releasedir(req, ino, fi));
}

static void
ns_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
	    struct fuse_file_info *fi)
{
	ROUTE_INO(req, ino, 0, fops_ops.fsyncdir(req, ino, datasync, fi));
}

/* The root: the shared cache's space (a volume answers with its own). */
static void
ns_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct cm_ns *ns = req_ns(req);
	struct cm *cm = ino == FUSE_ROOT_ID ? NULL : cm_ns_of_ino(ns, ino);
	struct cs_stats cs;
	struct statvfs sv;

	if (cm && !cm->ns_failed) {
		ROUTE(cm, fops_ops.statfs(req, ino));
		return;
	}
	cs_get_stats(ns->cs, &cs);
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_blocks = cs.bytes_limit / 4096;
	sv.f_bfree = cs.bytes_limit > cs.bytes_used
			     ? (cs.bytes_limit - cs.bytes_used) / 4096
			     : 0;
	sv.f_bavail = sv.f_bfree;
	sv.f_files = cs.files_limit;
	sv.f_ffree = cs.files_limit > cs.files_used
			     ? cs.files_limit - cs.files_used
			     : 0;
	sv.f_favail = sv.f_ffree;
	sv.f_namemax = PROTO_NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

static void
ns_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
	    size_t size, int flags)
{
	ROUTE_INO(req, ino, EACCES,
		  fops_ops.setxattr(req, ino, name, value, size, flags));
}

static void
ns_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	ROUTE_INO(req, ino, ENODATA, fops_ops.getxattr(req, ino, name, size));
}

static void
ns_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	if (ino == FUSE_ROOT_ID) {
		if (size == 0)
			fuse_reply_xattr(req, 0);
		else
			fuse_reply_buf(req, NULL, 0);
		return;
	}
	ROUTE_INO(req, ino, 0, fops_ops.listxattr(req, ino, size));
}

static void
ns_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	ROUTE_INO(req, ino, EACCES, fops_ops.removexattr(req, ino, name));
}

static void
ns_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	if (ino == FUSE_ROOT_ID) {
		fuse_reply_err(req, (mask & W_OK) ? EACCES : 0);
		return;
	}
	ROUTE_INO(req, ino, 0, fops_ops.access(req, ino, mask));
}

static void
ns_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	  struct fuse_file_info *fi)
{
	ROUTE_INO(req, parent, EACCES,
		  fops_ops.create(req, parent, name, mode, fi));
}

static void
ns_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
	     off_t length, struct fuse_file_info *fi)
{
	ROUTE_INO(req, ino, EISDIR,
		  fops_ops.fallocate(req, ino, mode, offset, length, fi));
}

const struct fuse_lowlevel_ops fns_ops = {
	.init = ns_init,
	.lookup = ns_lookup,
	.forget = ns_forget,
	.forget_multi = ns_forget_multi,
	.getattr = ns_getattr,
	.setattr = ns_setattr,
	.readlink = ns_readlink,
	.mknod = ns_mknod,
	.mkdir = ns_mkdir,
	.unlink = ns_unlink,
	.rmdir = ns_rmdir,
	.symlink = ns_symlink,
	.rename = ns_rename,
	.link = ns_link,
	.open = ns_open,
	.read = ns_read,
	.write = ns_write,
	.flush = ns_flush,
	.fsync = ns_fsync,
	.fsyncdir = ns_fsyncdir,
	.release = ns_release,
	.opendir = ns_opendir,
	.readdir = ns_readdir,
	.readdirplus = ns_readdirplus,
	.releasedir = ns_releasedir,
	.statfs = ns_statfs,
	.setxattr = ns_setxattr,
	.getxattr = ns_getxattr,
	.listxattr = ns_listxattr,
	.removexattr = ns_removexattr,
	.access = ns_access,
	.create = ns_create,
	.fallocate = ns_fallocate,
};
