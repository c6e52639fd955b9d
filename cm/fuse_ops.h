/*
 * fuse_ops.h - cairnd's FUSE front: the low-level operation table and the
 * notifier thread that writes kernel invalidations.
 *
 * Layer rule: the only cm/ files that include fuse_lowlevel.h are this
 * pair and cairnd.c; everything below (libcm) is FUSE-free.
 */
#ifndef CAIRN_CM_FUSE_OPS_H
#define CAIRN_CM_FUSE_OPS_H

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>

#include "cm/cm.h"

/* The operation table; the session's userdata must be the struct cm *. */
extern const struct fuse_lowlevel_ops fops_ops;

/*
 * Start the notifier thread for @se and plug it into cm->loop.kops. Call after
 * the mount, before the loop starts. @return 0 or -errno.
 */
int fops_notifier_start(struct cm *cm, struct fuse_session *se);
/* Stop it (drops the invalidations still queued; the jobs of barriers
 * still queued run here); after cm_loop_stop(). */
void fops_notifier_stop(struct cm *cm);

#endif /* CAIRN_CM_FUSE_OPS_H */
