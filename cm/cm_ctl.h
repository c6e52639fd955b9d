/*
 * cm_ctl.h - cairnd's control server: the cache manager's side of fs(1)
 * (doc/control.md, "Implementing the handlers in cairnd"). cm/ctl.c is the
 * transport; cm_ctl.c holds the table and the path resolver, the handlers
 * are in ctl_cache.c, ctl_flush.c, ctl_pin.c and ctl_offline.c (ctl_i.h).
 *
 * Threads: cm_ctl_start() before the loop runs (or on it); every handler
 * runs on the loop thread. cm_ctl_stop() from the main thread at shutdown,
 * before cm_loop_stop(): it frees the server on the loop thread (through
 * the job queue) so the socket file is gone before the loop's base is.
 * The server is cm->ctl; daemon.c starts and stops it.
 */
#ifndef CAIRN_CM_CM_CTL_H
#define CAIRN_CM_CM_CTL_H

struct cm;

/* Listen on cfg.ctl_socket, or on ctl_socket_path(cfg.mountpoint) (which
 * must be canonical). Needs cm->loop.base. @return 0 or -errno (logged). */
int cm_ctl_start(struct cm *cm);
/* Stop listening and remove the socket file. Safe if never started. */
void cm_ctl_stop(struct cm *cm);

/* A namespace's one control socket (ctl_ns.c): on
 * cfg.ctl_socket or ctl_socket_path(mount root); a request's path picks
 * the volume by its first component. Needs ns->loop.base. @return 0 or
 * -errno (logged). */
struct cm_ns;
int cm_ns_ctl_start(struct cm_ns *ns);
void cm_ns_ctl_stop(struct cm_ns *ns);

#endif /* CAIRN_CM_CM_CTL_H */
