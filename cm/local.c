/*
 * local.c - applying an op to the caches without the server (see local.h).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cm/local.h"
#include "cm/mcache.h"
#include "cm/vc.h"
#include "common/util.h"

struct local {
	struct local_deps d;
	struct local_hooks h;
};

struct local *
local_new(const struct local_deps *deps, const struct local_hooks *hooks)
{
	struct local *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->d = *deps;
	if (hooks)
		l->h = *hooks;
	return l;
}

void
local_free(struct local *l)
{
	free(l);
}

static int
cached_listing(struct local *l, const struct fid *dir, struct vc_dir **d)
{
	int rc = mcache_dir(l->d.mc, dir, d);

	if (rc == -ENOTDIR)
		return rc;
	/* Not cached: nothing can be decided about its names offline. */
	return rc < 0 ? -EIO : 0;
}

int
local_lookup_name(struct local *l, const struct fid *dir, const char *name,
		  struct fid *fid, enum proto_type *type)
{
	struct vc_dir *d;
	long idx;
	int rc = cached_listing(l, dir, &d);

	if (rc < 0)
		return rc;
	idx = vc_dir_find(d, name, strlen(name));
	if (idx >= 0) {
		if (fid)
			*fid = vc_dir_ent(d, idx)->fid;
		if (type)
			*type = (enum proto_type)vc_dir_ent(d, idx)->type;
	}
	vc_dir_put(d);
	return idx >= 0 ? 0 : -ENOENT;
}

static int
dir_is_empty(struct local *l, const struct fid *dir)
{
	struct vc_dir *d;
	int rc = cached_listing(l, dir, &d);

	if (rc < 0)
		return rc;
	rc = d->n == 0 ? 0 : -ENOTEMPTY;
	vc_dir_put(d);
	return rc;
}

static void
now_times(struct proto_attr *a, bool m)
{
	int64_t t = util_wall_ns();

	a->ctime_ns = t;
	if (m)
		a->mtime_ns = t;
}

/* One less name for @fid (unlink, rmdir, rename over it); fills @out. */
static void
drop_name(struct local *l, const struct fid *fid, bool is_dir, bool commit,
	  struct proto_attr *out)
{
	struct proto_attr a;

	if (mcache_attr(l->d.mc, fid, &a) < 0) {
		memset(&a, 0, sizeof(a));
		a.fid = *fid;
	}
	a.nlink = is_dir || a.nlink <= 1 ? 0 : a.nlink - 1;
	now_times(&a, false);
	*out = a;
	if (!commit)
		return;
	if (a.nlink > 0)
		mcache_offline_attr(l->d.mc, &a);
	else if (l->h.file_gone)
		l->h.file_gone(l->h.arg, fid);
}

static int
apply_xattr(struct local *l, const struct proto_op *op, bool commit,
	    struct proto_op_result *r)
{
	struct proto_xattr *x = NULL, *nx;
	struct proto_attr a;
	size_t n = 0, i, m = 0;
	int64_t stamp;
	int rc;

	if (mcache_attr(l->d.mc, &op->fid, &a) < 0)
		return -EIO;
	rc = vc_get_xattrs(l->d.vc, &op->fid, &stamp, &x, &n);
	if (rc < 0 || stamp != a.ctime_ns) {
		proto_xattrs_free(x, n);
		return -EIO; /* not known offline */
	}
	for (i = 0; i < n && strcmp(x[i].name, op->xname); i++)
		;
	if (op->kind == PROTO_OP_SETXATTR) {
		if (i < n && (op->flags & PROTO_XATTR_CREATE))
			rc = -EEXIST;
		else if (i == n && (op->flags & PROTO_XATTR_REPLACE))
			rc = -ENODATA;
	} else if (i == n) {
		rc = -ENODATA;
	}
	if (rc < 0 || !commit) {
		proto_xattrs_free(x, n);
		return rc;
	}
	nx = calloc(n + 1, sizeof(*nx));
	if (!nx) {
		proto_xattrs_free(x, n);
		return -ENOMEM;
	}
	for (size_t j = 0; j < n; j++)
		if (j != i)
			nx[m++] = x[j];
		else
			free(x[j].name), free(x[j].value);
	if (op->kind == PROTO_OP_SETXATTR) {
		nx[m].name = strdup(op->xname);
		nx[m].value = malloc(op->xlen ? op->xlen : 1);
		if (nx[m].name && nx[m].value) {
			memcpy(nx[m].value, op->xvalue, op->xlen);
			nx[m].len = op->xlen;
			m++;
		} else {
			free(nx[m].name);
			free(nx[m].value);
		}
	}
	free(x);
	now_times(&a, false);
	vc_put_xattrs(l->d.vc, &op->fid, a.ctime_ns, nx, m);
	proto_xattrs_free(nx, m);
	mcache_offline_attr(l->d.mc, &a);
	r->has_attr = true;
	r->attr = a;
	return 0;
}

int
local_apply(struct local *l, const struct proto_op *op, bool commit,
	    struct proto_op_result *r)
{
	struct proto_attr a, pa;
	struct fid f, victim;
	enum proto_type t = PROTO_T_NONE, vt = PROTO_T_NONE;
	int rc;

	memset(r, 0, sizeof(*r));
	switch (op->kind) {
	case PROTO_OP_CREATE:
	case PROTO_OP_MKDIR:
	case PROTO_OP_SYMLINK:
	case PROTO_OP_MKMOUNT:
		rc = local_lookup_name(l, &op->parent, op->name, NULL, NULL);
		if (rc == 0)
			return -EEXIST;
		if (rc != -ENOENT)
			return rc;
		if (!commit)
			return 0;
		memset(&a, 0, sizeof(a));
		a.fid = op->fid;
		a.type = op->kind == PROTO_OP_MKDIR	? PROTO_T_DIR
			 : op->kind == PROTO_OP_SYMLINK ? PROTO_T_SYMLINK
			 : op->kind == PROTO_OP_MKMOUNT ? PROTO_T_MOUNT
							: op->type;
		a.mode = op->mode & 07777;
		a.rdev = op->rdev;
		a.uid = op->uid;
		a.gid = op->gid;
		a.nlink = a.type == PROTO_T_DIR ? 2 : 1;
		a.size = op->target ? strlen(op->target) : 0;
		a.dv = mcache_local_dv(l->d.mc);
		a.atime_ns = util_wall_ns();
		a.mtime_ns = a.ctime_ns = a.atime_ns;
		mcache_offline_attr(l->d.mc, &a);
		if (a.type == PROTO_T_DIR)
			mcache_offline_newdir(l->d.mc, &a);
		if (op->target)
			vc_put_link(l->d.vc, &a.fid, op->target);
		rc = mcache_offline_dir(l->d.mc, &op->parent, NULL, op->name,
					&a, a.type == PROTO_T_DIR ? 1 : 0,
					&r->parent);
		r->has_attr = true;
		r->attr = a;
		r->has_parent = rc == 0;
		return rc;
	case PROTO_OP_LINK:
		rc = local_lookup_name(l, &op->parent, op->name, NULL, NULL);
		if (rc == 0)
			return -EEXIST;
		if (rc != -ENOENT)
			return rc;
		if (mcache_attr(l->d.mc, &op->fid, &a) < 0)
			return -EIO;
		if (a.type == PROTO_T_DIR || a.type == PROTO_T_MOUNT)
			return -EPERM;
		if (!commit)
			return 0;
		a.nlink++;
		now_times(&a, false);
		mcache_offline_attr(l->d.mc, &a);
		rc = mcache_offline_dir(l->d.mc, &op->parent, NULL, op->name,
					&a, 0, &r->parent);
		r->has_attr = true;
		r->attr = a;
		r->has_parent = rc == 0;
		return rc;
	case PROTO_OP_UNLINK:
	case PROTO_OP_RMDIR:
		rc = local_lookup_name(l, &op->parent, op->name, &f, &t);
		if (rc < 0)
			return rc;
		if (op->kind == PROTO_OP_RMDIR) {
			if (t != PROTO_T_DIR)
				return -ENOTDIR;
			rc = dir_is_empty(l, &f);
			if (rc < 0)
				return rc;
		} else if (t == PROTO_T_DIR) {
			return -EISDIR;
		}
		if (!commit)
			return 0;
		drop_name(l, &f, t == PROTO_T_DIR, true, &r->victim);
		r->has_victim = true;
		rc = mcache_offline_dir(l->d.mc, &op->parent, op->name, NULL,
					NULL, t == PROTO_T_DIR ? -1 : 0,
					&r->parent);
		r->has_parent = rc == 0;
		return rc;
	case PROTO_OP_RENAME: {
		bool exch = op->flags & PROTO_RENAME_EXCHANGE;
		bool have_victim;
		struct proto_attr va;

		rc = local_lookup_name(l, &op->parent, op->name, &f, &t);
		if (rc < 0)
			return rc;
		rc = local_lookup_name(l, &op->newparent, op->newname, &victim,
				       &vt);
		if (rc < 0 && rc != -ENOENT)
			return rc;
		have_victim = rc == 0;
		if (have_victim && fid_eq(&f, &victim))
			return 0; /* two names of one object */
		if ((op->flags & PROTO_RENAME_NOREPLACE) && have_victim)
			return -EEXIST;
		if (exch && !have_victim)
			return -ENOENT;
		if (have_victim && !exch) {
			if (vt == PROTO_T_DIR && t != PROTO_T_DIR)
				return -EISDIR;
			if (vt != PROTO_T_DIR && t == PROTO_T_DIR)
				return -ENOTDIR;
			if (vt == PROTO_T_DIR &&
			    (rc = dir_is_empty(l, &victim)) < 0)
				return rc;
		}
		if (mcache_attr(l->d.mc, &f, &a) < 0)
			return -EIO;
		if (!commit)
			return 0;
		now_times(&a, false);
		mcache_offline_attr(l->d.mc, &a);
		r->has_attr = true;
		r->attr = a;
		if (exch) {
			if (mcache_attr(l->d.mc, &victim, &va) < 0)
				return -EIO;
			mcache_offline_dir(l->d.mc, &op->parent, NULL, op->name,
					   &va, 0, &r->parent);
			mcache_offline_dir(l->d.mc, &op->newparent, NULL,
					   op->newname, &a, 0, &r->newparent);
			r->has_victim = true;
			r->victim = va;
			r->has_parent = r->has_newparent = true;
			return 0;
		}
		if (have_victim) {
			drop_name(l, &victim, vt == PROTO_T_DIR, true,
				  &r->victim);
			r->has_victim = true;
		}
		if (fid_eq(&op->parent, &op->newparent)) {
			rc = mcache_offline_dir(
				l->d.mc, &op->parent, op->name, op->newname, &a,
				have_victim && vt == PROTO_T_DIR ? -1 : 0,
				&r->parent);
			r->has_parent = rc == 0;
			return rc;
		}
		rc = mcache_offline_dir(l->d.mc, &op->parent, op->name, NULL,
					NULL, t == PROTO_T_DIR ? -1 : 0,
					&r->parent);
		if (rc == 0)
			rc = mcache_offline_dir(
				l->d.mc, &op->newparent, NULL, op->newname, &a,
				t == PROTO_T_DIR && !(have_victim &&
						      vt == PROTO_T_DIR)
					? 1
					: 0,
				&r->newparent);
		r->has_parent = r->has_newparent = rc == 0;
		return rc;
	}
	case PROTO_OP_SETATTR:
		if (mcache_attr(l->d.mc, &op->fid, &a) < 0)
			return -EIO;
		if (!commit)
			return 0;
		if (op->mask & PROTO_SA_MODE)
			a.mode = op->mode & 07777;
		if (op->mask & PROTO_SA_UID)
			a.uid = op->uid;
		if (op->mask & PROTO_SA_GID)
			a.gid = op->gid;
		if (op->mask & PROTO_SA_SIZE)
			a.size = op->size;
		if (op->mask & PROTO_SA_ATIME)
			a.atime_ns = op->atime_ns;
		if (op->mask & PROTO_SA_MTIME)
			a.mtime_ns = op->mtime_ns;
		now_times(&a, (op->mask & PROTO_SA_SIZE) &&
				      !(op->mask & PROTO_SA_MTIME));
		mcache_offline_attr(l->d.mc, &a);
		r->has_attr = true;
		r->attr = a;
		return 0;
	case PROTO_OP_SETXATTR:
	case PROTO_OP_REMOVEXATTR:
		return apply_xattr(l, op, commit, r);
	case PROTO_OP_STORE:
		/* wb.c logs stores itself; an absorbed one lands here. */
		if (commit && l->h.store_absorbed)
			l->h.store_absorbed(l->h.arg, op);
		if (mcache_attr(l->d.mc, &op->fid, &pa) == 0) {
			r->has_attr = true;
			r->attr = pa;
		}
		return 0;
	default:
		return -EINVAL;
	}
}
