/*
 * fuse_ns.h - the FUSE front of a namespace: one cairnd, several volumes
 * under one mount root (fuse_ns.c; daemon_i.h struct cm_ns).
 *
 * Layer rule: part of the FUSE front end (level 7 of doc/cm.md), like
 * fuse_ops.h; only cairnd.c includes it.
 */
#ifndef CAIRN_CM_FUSE_NS_H
#define CAIRN_CM_FUSE_NS_H

#include "cm/fuse_ops.h"

/* The operation table of a namespace's session; its userdata must be the
 * struct cm_ns *. FUSE worker threads. */
extern const struct fuse_lowlevel_ops fns_ops;

/*
 * struct cm's cross hook for the volumes of a namespace (@arg the struct
 * cm of the volume that holds the mount point): a lookup landed on a
 * mount point to @volume, "VOLUME" (on the same server as @arg's volume)
 * or "ALIAS:VOLUME" (on the server of cairnd.conf's "[server ALIAS]").
 * If this cairnd serves that volume, answer the lookup @req (a
 * fuse_req_t) with its root, now or from the loop, and @return 0; else
 * -EACCES (@req is the caller's to answer). Any FUSE worker thread, or
 * the loop thread.
 */
int fns_cross(void *arg, const char *volume, void *req);

/*
 * A reload added or removed volume @name of the mount root: tell the
 * kernel to forget the root's cached listing and attributes and its
 * entry for @name (a negative entry, or the removed volume's root). Not
 * on the loop thread (an entry invalidation waits for the root's lock,
 * which a lookup parked on the loop may hold): cairnd.c's signal thread.
 */
void fns_root_changed(struct fuse_session *se, const char *name);

#endif /* CAIRN_CM_FUSE_NS_H */
