/*
 * access.c - what a control-socket caller may see and change, from the
 * cached metadata (see access.h).
 *
 * It is the mount's default_permissions done again for requests that do
 * not pass through the kernel: the conflict, replay-log and pin lists,
 * and fs resolve, whose keep-local makes cairnd redo a change with the
 * volume's token. It decides; it fetches nothing and answers nobody.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/capability.h>

#include "cm/access.h"
#include "cm/ctl.h"
#include "cm/mcache.h"
#include "cm/vc.h"
#include "common/proto.h"

static uint32_t
attr_mode(const struct proto_attr *a)
{
	return (a->mode & 07777) | (a->type == PROTO_T_DIR ? S_IFDIR : 0);
}

struct access {
	struct mcache *mc;
	struct fid root;
	/* The attributes acc_may_change() falls back on for its op's
	 * object when the cache lacks them (loop thread only, like
	 * everything here). */
	const struct proto_attr *fallback;
};

struct access *
acc_new(struct mcache *mc, const struct fid *root)
{
	struct access *acc = calloc(1, sizeof(*acc));

	if (!acc)
		return NULL;
	acc->mc = mc;
	acc->root = *root;
	return acc;
}

void
acc_free(struct access *acc)
{
	free(acc);
}

static int
need_attr(struct access *acc, const struct fid *fid, struct proto_attr *a,
	  struct acc_need *need)
{
	if (mcache_attr(acc->mc, fid, a) == 0)
		return 0;
	if (acc->fallback && fid_eq(&acc->fallback->fid, fid)) {
		*a = *acc->fallback;
		return 0;
	}
	if (need) {
		need->fid = *fid;
		need->dir = false;
	}
	return -EAGAIN;
}

/* acc_reach() for anyone but root; on success *@last holds the
 * attributes of the directory the last component is in and *@have_last
 * says whether there is one (not for the root itself). */
static int
reach(struct access *acc, const struct ctl_peer *p, const char *path,
      struct acc_need *need, struct proto_attr *last, bool *have_last)
{
	struct proto_attr a, up;
	struct vc_dir *d;
	const char *cur = path, *slash;
	struct fid fid;
	bool have_up = false;
	size_t len;
	long i;
	int rc;

	memset(&up, 0, sizeof(up));
	*have_last = false;
	if (!path)
		return -EAGAIN;
	fid = acc->root;
	for (;;) {
		while (*cur == '/')
			cur++;
		if (!*cur || !strcmp(cur, ".")) {
			/* The root itself, or a trailing "." after a
			 * directory: that one is in @up. */
			*last = up;
			*have_last = have_up;
			return 0;
		}
		/* @fid is the directory the next component is in: reaching
		 * that component takes search permission on it. */
		rc = need_attr(acc, &fid, &a, need);
		if (rc < 0)
			return rc;
		if (a.type != PROTO_T_DIR)
			return -ENOENT;
		if (ctl_peer_may(p, attr_mode(&a), a.uid, a.gid, X_OK) < 0)
			return -EACCES;
		slash = strchr(cur, '/');
		if (!slash) {
			/* The object itself: no more to search. */
			*last = a;
			*have_last = true;
			return 0;
		}
		len = (size_t)(slash - cur);
		if (len == 1 && cur[0] == '.') {
			cur = slash;
			continue;
		}
		rc = mcache_dir(acc->mc, &fid, &d);
		if (rc == -ENOTDIR)
			return -ENOENT;
		if (rc < 0) {
			if (need) {
				need->fid = fid;
				need->dir = true;
			}
			return -EAGAIN;
		}
		i = vc_dir_find(d, cur, len);
		if (i < 0) {
			vc_dir_put(d);
			return -ENOENT;
		}
		fid = vc_dir_ent(d, i)->fid;
		vc_dir_put(d);
		cur = slash;
		up = a;
		have_up = true;
	}
}

int
acc_reach(struct access *acc, const struct ctl_peer *p, const char *path,
	  struct acc_need *need)
{
	struct proto_attr last;
	bool have_last;

	if (p->uid == 0)
		return 0;
	return reach(acc, p, path, need, &last, &have_last);
}

static bool
owns(const struct ctl_peer *p, const struct proto_attr *a)
{
	return p->uid == 0 || p->uid == (uid_t)a->uid;
}

/* Write and search permission on directory @dir; with the sticky bit
 * and a removal of @obj (may be NULL: nothing removed), owning @dir or
 * @obj as well. */
static int
may_dir(struct access *acc, const struct ctl_peer *p, const struct fid *dir,
	const struct fid *obj, struct acc_need *need)
{
	struct proto_attr d, o;
	int rc;

	rc = need_attr(acc, dir, &d, need);
	if (rc < 0)
		return rc;
	if (d.type != PROTO_T_DIR)
		return -EACCES;
	if (ctl_peer_may(p, attr_mode(&d), d.uid, d.gid, W_OK | X_OK) < 0)
		return -EACCES;
	if (!obj || fid_is_null(obj) || !(d.mode & S_ISVTX) || owns(p, &d))
		return 0;
	rc = need_attr(acc, obj, &o, need);
	if (rc < 0)
		return rc;
	return owns(p, &o) ? 0 : -EACCES;
}

/* A new object of @op in @parent would belong to @p: the owner is the
 * caller, the group one of the caller's, or the parent's when the parent
 * is set-gid (which is what gives a new object the parent's group). */
static int
may_own_new(struct access *acc, const struct ctl_peer *p,
	    const struct proto_op *op, struct acc_need *need)
{
	struct proto_attr d;
	int rc;

	if ((uid_t)op->uid != p->uid)
		return -EPERM;
	if (ctl_peer_in_group(p, (gid_t)op->gid))
		return 0;
	rc = need_attr(acc, &op->parent, &d, need);
	if (rc < 0)
		return rc;
	return op->gid == d.gid && (d.mode & S_ISGID) ? 0 : -EPERM;
}

static int
may_setattr(const struct ctl_peer *p, const struct proto_op *op,
	    const struct proto_attr *a)
{
	bool w = ctl_peer_may(p, attr_mode(a), a->uid, a->gid, W_OK) == 0;

	if ((op->mask & PROTO_SA_UID) && op->uid != a->uid)
		return -EPERM;
	if ((op->mask & PROTO_SA_GID) && op->gid != a->gid &&
	    (!owns(p, a) || !ctl_peer_in_group(p, (gid_t)op->gid)))
		return -EPERM;
	if ((op->mask & (PROTO_SA_MODE | PROTO_SA_UID | PROTO_SA_GID)) &&
	    !owns(p, a))
		return -EPERM;
	/* chmod by anyone but root outside the file's group drops S_ISGID
	 * (the kernel clears it): redone with the bit, it would make a
	 * set-gid file of a group the caller is not in. */
	if ((op->mask & PROTO_SA_MODE) && (op->mode & S_ISGID) && p->uid != 0 &&
	    !ctl_peer_in_group(
		    p, (gid_t)((op->mask & PROTO_SA_GID) ? op->gid : a->gid)))
		return -EPERM;
	/* The op does not say whether the times were "now" (which write
	 * permission allows) or chosen (which takes ownership). */
	if ((op->mask & (PROTO_SA_ATIME | PROTO_SA_MTIME)) && !owns(p, a) && !w)
		return -EPERM;
	if ((op->mask & PROTO_SA_SIZE) && !w)
		return -EACCES;
	return 0;
}

static int
may_xattr(const struct ctl_peer *p, const struct proto_op *op,
	  const struct proto_attr *a)
{
	const char *n = op->xname ? op->xname : "";

	if (!strncmp(n, "user.", 5))
		return ctl_peer_may(p, attr_mode(a), a->uid, a->gid, W_OK);
	if (!strncmp(n, "trusted.", 8) || !strncmp(n, "security.", 9))
		return -EPERM;
	return owns(p, a) ? 0 : -EPERM;
}

static int may_change(struct access *acc, const struct ctl_peer *p,
		      const struct proto_op *op, const struct fid *victim,
		      struct acc_need *need);

int
acc_may_change(struct access *acc, const struct ctl_peer *p,
	       const struct proto_op *op, const struct fid *victim,
	       const struct proto_attr *known, struct acc_need *need)
{
	int rc;

	acc->fallback = known;
	rc = may_change(acc, p, op, victim, need);
	acc->fallback = NULL;
	return rc;
}

static int
may_change(struct access *acc, const struct ctl_peer *p,
	   const struct proto_op *op, const struct fid *victim,
	   struct acc_need *need)
{
	const struct fid *gone = victim && !fid_is_null(victim) ? victim
							       : NULL;
	struct proto_attr a;
	int rc;

	if (p->uid == 0)
		return 0;
	switch (op->kind) {
	case PROTO_OP_CREATE:
	case PROTO_OP_MKDIR:
	case PROTO_OP_SYMLINK:
	case PROTO_OP_MKMOUNT:
		/* mknod(2) of a device needs CAP_MKNOD: fs resolve --keep
		 * local must not make one for a caller without it. */
		if (op->kind == PROTO_OP_CREATE &&
		    proto_type_has_rdev(op->type) &&
		    !acc_may_mknod_dev(p->pid, p->uid))
			return -EPERM;
		rc = may_dir(acc, p, &op->parent, gone, need);
		return rc < 0 ? rc : may_own_new(acc, p, op, need);
	case PROTO_OP_LINK:
		rc = may_dir(acc, p, &op->parent, gone, need);
		if (rc < 0)
			return rc;
		rc = need_attr(acc, &op->fid, &a, need);
		if (rc < 0)
			return rc;
		if (owns(p, &a) || ctl_peer_may(p, attr_mode(&a), a.uid, a.gid,
						R_OK | W_OK) == 0)
			return 0;
		return -EPERM;
	case PROTO_OP_UNLINK:
	case PROTO_OP_RMDIR:
		return may_dir(acc, p, &op->parent, gone ? gone : &op->fid,
			       need);
	case PROTO_OP_RENAME:
		rc = may_dir(acc, p, &op->parent, &op->fid, need);
		if (rc < 0)
			return rc;
		return may_dir(
			acc, p, &op->newparent,
			gone ? gone
			     : (fid_is_null(&op->victim) ? NULL : &op->victim),
			need);
	case PROTO_OP_SETATTR:
		rc = need_attr(acc, &op->fid, &a, need);
		return rc < 0 ? rc : may_setattr(p, op, &a);
	case PROTO_OP_SETXATTR:
	case PROTO_OP_REMOVEXATTR:
		rc = need_attr(acc, &op->fid, &a, need);
		return rc < 0 ? rc : may_xattr(p, op, &a);
	case PROTO_OP_STORE:
		rc = need_attr(acc, &op->fid, &a, need);
		if (rc < 0)
			return rc;
		return ctl_peer_may(p, attr_mode(&a), a.uid, a.gid, W_OK);
	default:
		return -EPERM;
	}
}

bool
acc_sees(struct access *acc, const struct ctl_peer *p, const char *path,
	 const struct fid *dir, uid_t owner)
{
	struct proto_attr a;
	bool have_last;

	if (p->uid == 0 || p->uid == owner)
		return true;
	/* A directory on the way gone (-ENOENT) leaves no current path to
	 * judge by: the record is its owner's and root's only. */
	if (reach(acc, p, path, NULL, &a, &have_last) < 0)
		return false;
	/* Searching a directory (0711, as home directories often are)
	 * reaches a name one knows; a list of names is a listing, which
	 * takes read permission as well, as readdir would. */
	if (have_last &&
	    ctl_peer_may(p, attr_mode(&a), a.uid, a.gid, R_OK | X_OK) < 0)
		return false;
	/* The directory the change was made in, if still cached, too. */
	if (dir && !fid_is_null(dir) && mcache_attr(acc->mc, dir, &a) == 0 &&
	    ctl_peer_may(p, attr_mode(&a), a.uid, a.gid, R_OK | X_OK) < 0)
		return false;
	return true;
}

int
acc_proc_has_cap(FILE *f, uid_t uid, int cap)
{
	char line[256];
	bool have_uid = false, have_cap = false, uid_ok = false;
	unsigned long long eff = 0;

	if (cap < 0 || cap > 63)
		return -EINVAL;
	while (fgets(line, sizeof(line), f)) {
		unsigned long r, e;
		char *end;

		if (!strncmp(line, "Uid:", 4)) {
			/* real, effective, saved, filesystem */
			r = strtoul(line + 4, &end, 10);
			if (end == line + 4)
				return -EINVAL;
			e = strtoul(end, &end, 10);
			(void)r;
			have_uid = true;
			uid_ok = e == (unsigned long)uid;
		} else if (!strncmp(line, "CapEff:", 7)) {
			const char *p = line + 7;

			while (*p == ' ' || *p == '\t')
				p++;
			errno = 0;
			eff = strtoull(p, &end, 16);
			if (end == p || errno || (*end != '\n' && *end))
				return -EINVAL;
			have_cap = true;
		}
	}
	if (!have_uid || !have_cap)
		return -EINVAL;
	return uid_ok && (eff >> cap & 1) ? 1 : 0;
}

bool
acc_may_mknod_dev(pid_t pid, uid_t uid)
{
	char path[64];
	FILE *f;
	int rc = -EINVAL;

	if (pid > 0) {
		snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
		f = fopen(path, "re");
		if (f) {
			rc = acc_proc_has_cap(f, uid, CAP_MKNOD);
			fclose(f);
		}
	}
	if (rc < 0)
		return uid == 0;
	return rc == 1;
}
