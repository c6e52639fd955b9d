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

struct cm_loop;

/* The operation table; the session's userdata must be the struct cm *. */
extern const struct fuse_lowlevel_ops fops_ops;

/*
 * Read the requests of @se and write its replies through cairnd's own
 * hooks (fuse_session_custom_io()): they count requests by opcode and let
 * cairnd negotiate FUSE_HANDLE_KILLPRIV_V2 (fuse_i.h). Call after
 * fuse_session_mount(), before the loop. @return 0 or a negative errno.
 */
int fops_session_io(struct fuse_session *se);

/* The notifier thread and its queue; cairnd.c owns it. */
struct fops_notifier;

/*
 * Start the notifier thread for @se and plug it into @loop's kernel ops.
 * Call after the mount, before the loop starts. @return the notifier, or
 * NULL + errno.
 */
struct fops_notifier *fops_notifier_start(struct cm_loop *loop,
					  struct fuse_session *se);
/* Unplug and stop it (drops the invalidations still queued; the jobs of
 * barriers still queued run here, and then the loop's late jobs); after
 * cm_loop_stop(). Frees @nt; NULL-safe. */
void fops_notifier_stop(struct fops_notifier *nt);

#endif /* CAIRN_CM_FUSE_OPS_H */
