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
 * Layer rule: FUSE-free (libcm), level 3 of doc/cm.md "Levels": over the
 * cached metadata (mcache.h) and vc.h only; what it asks of the write
 * states comes through struct local_hooks. Loop thread.
 */
#ifndef CAIRN_CM_LOCAL_H
#define CAIRN_CM_LOCAL_H

#include <stdbool.h>

#include "common/fid.h"
#include "common/proto.h"

struct mcache;
struct vc;
struct local;

/* What local_apply() asks of the modules above it (the write states),
 * called with @arg; given to local_new() by daemon.c. NULL: skipped. */
struct local_hooks {
	/* An object lost its last name: its write state goes (wb_gone()). */
	void (*file_gone)(void *arg, const struct fid *fid);
	/* A store op was taken into the disconnected log: its write state
	 * is "logged" now (wb_absorbed()). */
	void (*store_absorbed)(void *arg, const struct proto_op *op);
	void *arg;
};

/* What local_new() works with; the pointers must outlive the module. */
struct local_deps {
	struct mcache *mc; /* cached attributes and listings */
	struct vc *vc;	   /* symlink targets, xattrs */
};

/* @hooks (may be NULL) is copied. @return the handle or NULL + errno. */
struct local *local_new(const struct local_deps *deps,
			const struct local_hooks *hooks);
void local_free(struct local *l);

/*
 * Check @op against what the caches hold (the server's errors, decided
 * locally) and, with @commit, apply it as the server would and fill @r.
 * @return 0 or -errno (-EIO: not known without the server).
 */
int local_apply(struct local *l, const struct proto_op *op, bool commit,
		struct proto_op_result *r);

/* The FID and type of @name in directory @dir, from the cached listing
 * (either may be NULL). @return 0, -ENOENT, -ENOTDIR, or -EIO when the
 * listing is not cached. */
int local_lookup_name(struct local *l, const struct fid *dir, const char *name,
		      struct fid *fid, enum proto_type *type);

#endif /* CAIRN_CM_LOCAL_H */
