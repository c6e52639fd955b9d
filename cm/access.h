/*
 * access.h - may a control-socket caller see or make a change to what the
 * cache holds? The answers the mount would give that user (default
 * permissions: POSIX owner/group/other classes), worked out from the
 * cached metadata, for the control requests that do not go through the
 * path resolver of cm_ctl.c: the lists of conflicts, replay records and
 * pins, and fs resolve.
 *
 * Layer rule: FUSE-free (libcm), level 3. It reads the cached metadata
 * (mcache.h) and never fetches: a caller that gets -EAGAIN fetches what
 * *need names (or gives up) and asks again.
 *
 * Invariants:
 *  - root (uid 0) may always (0), whatever is cached;
 *  - for anyone else an answer that cannot be proved from the cache is
 *    -EAGAIN, never 0: no sight and no change without proof.
 */
#ifndef CAIRN_CM_ACCESS_H
#define CAIRN_CM_ACCESS_H

#include <stdbool.h>
#include <sys/types.h>

#include "common/fid.h"
#include "common/proto.h"

struct ctl_peer;
struct mcache;
struct proto_op;
struct access;

/* Answers from @mc (which must outlive the handle) for the volume whose
 * root is @root. @return the handle, or NULL + errno. */
struct access *acc_new(struct mcache *mc, const struct fid *root);
void acc_free(struct access *acc);

/* What -EAGAIN lacks: the attributes or the listing of need->fid. */
struct acc_need {
	struct fid fid;
	bool dir; /* the listing (else the attributes) */
};

/*
 * May @p reach @path (mount-relative, "." = the root) through the mount:
 * search permission on the root and on every directory before the last
 * component? Loop thread. @return 0, -EACCES (a directory @p may not
 * search), -ENOENT (a component on the way is gone or not a directory),
 * -EAGAIN (not cached: *@need says what; @need may be NULL).
 */
int acc_reach(struct access *acc, const struct ctl_peer *p, const char *path,
	      struct acc_need *need);

/*
 * May @p make change @op, as the mount would let it, on what the cache
 * holds now (the parents' and the object's current attributes)? What each
 * kind needs, root aside:
 *   create, mkdir, symlink: write+search on the parent, the new object
 *     owned by @p (op uid) and of a group of @p's or, if the parent is
 *     set-gid, the parent's;
 *   link: write+search on the parent, read+write on (or owning) the object;
 *   unlink, rmdir: write+search on the parent, and with the sticky bit
 *     owning the parent or the object (@victim, if not null, is the object
 *     that has the name now; else op->fid);
 *   rename: the same on both parents (the object, and a victim);
 *   setattr: mode, times: owning the object (times also with write
 *     permission; a mode with S_ISGID also being in the file's group); uid: root only unless unchanged; gid: owning it and in
 *     the group; size: write permission;
 *   setxattr, removexattr: "user." write permission, "trusted." and
 *     "security." root only, others owning the object;
 *   store: write permission on the object.
 * @known (may be NULL): attributes of an object (known->fid) to use when
 * the cache has none for it, e.g. those a conflict recorded of an object
 * gone on the server since.
 * Loop thread. @return 0, -EACCES, -EPERM (only root may), -EAGAIN
 * (*@need not cached).
 */
int acc_may_change(struct access *acc, const struct ctl_peer *p,
		   const struct proto_op *op, const struct fid *victim,
		   const struct proto_attr *known, struct acc_need *need);

/*
 * May @p see a record about @path whose directory is @dir (a null FID:
 * unknown), made by @owner? Root and @owner always; anyone else if
 * acc_reach() of @path succeeds and @p may read and search the directory
 * @path's last component is in (a list of names is a listing: a 0711
 * directory lets one reach names one knows, not learn them) and, if
 * @dir's attributes are cached, @dir as well. A record whose path is
 * gone (a directory on it removed) is seen by its owner and root only.
 * Never fetches: what is not cached is not seen. Loop thread.
 */
bool acc_sees(struct access *acc, const struct ctl_peer *p, const char *path,
	      const struct fid *dir, uid_t owner);

#endif /* CAIRN_CM_ACCESS_H */
