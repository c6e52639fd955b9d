/*
 * ctl_i.h - what cairnd's control handlers (ctl_*.c) share with the control
 * server (cm_ctl.c): the asynchronous path resolver and the handlers that
 * go into the server's table. Private to the control front end: no module
 * below it includes this.
 *
 * Threads: everything runs on the loop thread.
 */
#ifndef CAIRN_CM_CTL_I_H
#define CAIRN_CM_CTL_I_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "cm/daemon_i.h"
#include "cm/ctl.h"

struct resolve;
typedef void (*resolve_done_fn)(struct resolve *r, const struct proto_attr *a);

/* A path being resolved for a control call (cm_ctl.c). */
struct resolve {
	struct cm *cm;
	struct ctl_call *call;
	struct ctl_peer peer;
	char *path;	   /* the request's path (copy) */
	const char *cur;   /* next component in @path */
	struct fid fid;	   /* object reached so far */
	struct fid parent; /* the directory @fid was found in */
	bool have_parent;
	char name[256]; /* @fid's name in @parent */
	int want;	/* R_OK etc. needed on the target */
	bool recursive; /* the request's "recursive" (pin, unpin) */
	unsigned tries;
	resolve_done_fn done;
	void *arg;		     /* the handler's, for @done */
	void (*arg_free)(void *arg); /* called by cm_ctl_resolve_free() on
					@arg unless @done set it to NULL */
};

/* Resolve args.path for @call, checking @want (R_OK ...) for @peer on the
 * way; @done answers the call and frees @r with cm_ctl_resolve_free() (or
 * cm_ctl_resolve_fail()). */
void cm_ctl_resolve(struct cm *cm, struct ctl_call *call,
		    const struct ctl_peer *peer, json_t *args, int want,
		    resolve_done_fn done);
/* The same for @path (mount-relative, "." = the root) instead of
 * args.path, with @arg for @done (r->arg); @arg_free (may be NULL) frees
 * it when the call fails on the way, or whenever @r is freed with r->arg
 * still set. */
void cm_ctl_resolve_path(struct cm *cm, struct ctl_call *call,
			 const struct ctl_peer *peer, const char *path,
			 int want, resolve_done_fn done, void *arg,
			 void (*arg_free)(void *arg));
void cm_ctl_resolve_free(struct resolve *r);
/* Answer the call with @err (and @msg, may be NULL) and free @r. */
void cm_ctl_resolve_fail(struct resolve *r, int err, const char *msg);
/* The st_mode-like mode the permission checks use. */
uint32_t cm_ctl_attr_mode(const struct proto_attr *a);

/*
 * A change made through the control socket (fs mkmount, fs rmmount, fs
 * resolve keep-local), not through the mount: the kernel did not see it,
 * and would keep the entries and attributes it cached of what @op touched
 * for the entry and attribute timeouts (a day by default): a negative
 * entry hid a new mount point, a removed one stayed. Tell the kernel to
 * drop them (@op's names, its directories' attributes and listings, its
 * objects' attributes), then run @job on the loop once it has
 * (cm_kernel_barrier()). Call it after the change is in the caches (the
 * op's answer applied), and answer the call from @job: a lookup or stat
 * made after the answer then comes to cairnd and sees the change.
 */
void cm_ctl_kernel_sync(struct cm *cm, const struct proto_op *op,
			struct cm_job *job);

/* The handler table of one volume (cm_ctl.c); a namespace routes each
 * request to it with the volume's struct cm (ctl_ns.c). */
extern const struct ctl_handlers cm_ctl_handlers;

/* The handlers (struct ctl_handlers signature; @arg is the struct cm). */
#define CM_CTL_HANDLER(name)                                                   \
	void name(void *arg, struct ctl_call *call,                            \
		  const struct ctl_peer *peer, json_t *args)

/* ctl_write.c: fs setpolicy write-mode / writeback-delay / log-sync (@return false:
 * not one of these names), the write-mode members of fs status, fs sync. */
bool cm_ctl_setpolicy_write(struct cm *cm, struct ctl_call *call,
			    const struct ctl_peer *peer, const char *name,
			    const char *value);
void cm_ctl_write_status(struct cm *cm, json_t *o);
CM_CTL_HANDLER(cm_ctl_h_sync);

/* ctl_cache.c */
CM_CTL_HANDLER(cm_ctl_h_getcacheparms);
CM_CTL_HANDLER(cm_ctl_h_setcachesize);
CM_CTL_HANDLER(cm_ctl_h_status);
CM_CTL_HANDLER(cm_ctl_h_listvol);
CM_CTL_HANDLER(cm_ctl_h_checkservers);
CM_CTL_HANDLER(cm_ctl_h_whereis);
CM_CTL_HANDLER(cm_ctl_h_examine);
/* ctl_flush.c (flushall is flushvolume, then the metadata) */
CM_CTL_HANDLER(cm_ctl_h_flush);
CM_CTL_HANDLER(cm_ctl_h_flushmeta);
CM_CTL_HANDLER(cm_ctl_h_flushvolume);
/* ctl_pin.c */
CM_CTL_HANDLER(cm_ctl_h_pin);
CM_CTL_HANDLER(cm_ctl_h_unpin);
CM_CTL_HANDLER(cm_ctl_h_pins);

/* ctl_offline.c */
CM_CTL_HANDLER(cm_ctl_h_disconnect);
CM_CTL_HANDLER(cm_ctl_h_reconnect);
CM_CTL_HANDLER(cm_ctl_h_setpolicy);
CM_CTL_HANDLER(cm_ctl_h_conflicts);
CM_CTL_HANDLER(cm_ctl_h_resolve);
CM_CTL_HANDLER(cm_ctl_h_replaylog);

/* ctl_mount.c: mount points (doc/cm.md "Mount points") */
CM_CTL_HANDLER(cm_ctl_h_mkmount);
CM_CTL_HANDLER(cm_ctl_h_lsmount);
CM_CTL_HANDLER(cm_ctl_h_rmmount);

/* ctl_metrics.c: fs metrics, and the loopback listener of
 * metrics-listen (started and stopped with the control server; start
 * does nothing without the setting). @return 0 or -errno (logged). */
CM_CTL_HANDLER(cm_ctl_h_metrics);
int cm_metrics_listen_start(struct cm *cm);
void cm_metrics_listen_stop(struct cm *cm);
/* A namespace: fs metrics without -V, every volume's figures in one
 * exposition (each family once). The listener of a namespace, started
 * on one of its volumes, answers the same. */
void cm_ns_ctl_h_metrics(struct cm_ns *ns, struct ctl_call *call);
/* Mode, since, progress and log counts for fs status (added to @o). */
void cm_ctl_offline_status(struct cm *cm, json_t *o);

#endif /* CAIRN_CM_CTL_I_H */
