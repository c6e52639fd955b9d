/*
 * local.h - applying an op to the caches the way the server would, without
 * the server: what disconnected operation (replay.c) does with every
 * mutation while the server cannot be reached. The server's errors are
 * decided from what the caches hold (a name taken, a directory not empty,
 * a listing not cached: -EIO), so a change that would fail on the server
 * fails here too; one that passes changes the cached attributes and
 * listings with local DVs (CM_DV_LOCAL), which nothing can take for the
 * server's.
 *
 * Layer rule: FUSE-free (libcm). Loop thread.
 */
#ifndef CAIRN_CM_LOCAL_H
#define CAIRN_CM_LOCAL_H

#include <stdbool.h>

#include "common/fid.h"
#include "common/proto.h"

struct cm;

/*
 * Check @op against what the caches hold (the server's errors, decided
 * locally) and, with @commit, apply it as the server would and fill @r.
 * @return 0 or -errno (-EIO: not known without the server).
 */
int local_apply(struct cm *cm, const struct proto_op *op, bool commit,
		struct proto_op_result *r);

/* The FID and type of @name in directory @dir, from the cached listing
 * (either may be NULL). @return 0, -ENOENT, -ENOTDIR, or -EIO when the
 * listing is not cached. */
int local_lookup_name(struct cm *cm, const struct fid *dir, const char *name,
		      struct fid *fid, enum proto_type *type);

#endif /* CAIRN_CM_LOCAL_H */
