/*
 * daemon.h - building and stopping cairnd, in one place (level 8 of
 * doc/cm.md "Levels"; FUSE-free, so it is in libcm).
 *
 * The order, for cairnd.c:
 *   cm_init()                   settings, token
 *   cm_daemon_open()            chunk store, volume (server or cache) and
 *                               meta.tdb, inode table; before the mount
 *   [mount; fork: cm_daemon_before_fork() / cm_daemon_after_fork()]
 *   cm_daemon_build()           replay log, write states, loop, HTTP
 *                               client, meta, fetch, mut, offline, the
 *                               control server
 *   [FUSE notifier: plugs cm->kops]
 *   cm_daemon_start()           the loop thread; its first job follows
 *                               the events and recovers: mut_resume ->
 *                               wb_resume -> pin restore
 *   ... serve ...
 *   cm_daemon_stop()            control server, then every loop module in
 *                               reverse, on the loop thread
 *   [FUSE notifier stop, unmount]
 *   cm_daemon_close()           counters to the log, then the stores
 *   cm_release()
 * Each step may be called after an earlier one failed (it frees what is
 * there).
 */
#ifndef CAIRN_CM_DAEMON_H
#define CAIRN_CM_DAEMON_H

struct cm;

/* @return 0 or -errno; every failure is logged. */
int cm_daemon_open(struct cm *cm);
/* tdb's fcntl locks do not survive fork(): close meta.tdb before it and
 * reopen it after (the chunk store's flock does survive). */
void cm_daemon_before_fork(struct cm *cm);
int cm_daemon_after_fork(struct cm *cm);
int cm_daemon_build(struct cm *cm);
int cm_daemon_start(struct cm *cm);
void cm_daemon_stop(struct cm *cm);
/* What cm_daemon_stop() runs on the loop thread: stop every loop module
 * of @arg (a struct cm). A namespace runs it for each of its volumes in
 * its own loop's teardown (daemon_ns.c). */
void cm_daemon_teardown(void *arg);
void cm_daemon_close(struct cm *cm);

/*
 * A namespace (daemon_i.h struct cm_ns; daemon_ns.c): the same steps for
 * several volumes under one mount root. cm_ns_open() takes @cfg over
 * (moved) and opens the shared chunk store and every volume (one that
 * cannot be opened is left out and logged: @return -errno only when
 * none can be served); build, start, stop and close as above, for all
 * of them and the one control socket.
 */
struct cm_ns;
struct cm_config;
int cm_ns_open(struct cm_ns *ns, struct cm_config *cfg);
void cm_ns_before_fork(struct cm_ns *ns);
int cm_ns_after_fork(struct cm_ns *ns);
int cm_ns_build(struct cm_ns *ns);
int cm_ns_start(struct cm_ns *ns);
void cm_ns_stop(struct cm_ns *ns);
void cm_ns_close(struct cm_ns *ns);

/*
 * SIGHUP in a namespace (cairnd.c's signal thread), in two steps.
 * cm_ns_reload_check(): may the volume list of @nc (a loaded, checked
 * config) replace the running one? A section of a running volume whose
 * server or volume name changed needs a restart: @return -EINVAL (the
 * log names it), -ENOSPC past CM_NS_MAX_VOLUMES slots; nothing changed.
 * cm_ns_reload_apply(): apply it, on the loop thread (this waits):
 * a volume no longer listed is hidden from the mount root (still served
 * by inode for what uses it; its replay log and unstored files stay and
 * still go to its server; closed at the next restart); one listed again
 * is shown again; a new one gets a slot, is left out (EIO) until the
 * retrier has opened it in the background, then served. It may take
 * @nc over (then *@nc is zeroed). @changed is called on this thread for
 * each name that appeared in or left the mount root.
 */
int cm_ns_reload_check(struct cm_ns *ns, const struct cm_config *nc);
void cm_ns_reload_apply(struct cm_ns *ns, struct cm_config *nc,
			void (*changed)(void *arg, const char *dir),
			void *arg);

#endif /* CAIRN_CM_DAEMON_H */
