/*
 * cm_ctl.c - cairnd's control server (see cm_ctl.h): the table of
 * handlers, start and stop, and the path resolver the handlers share.
 *
 * The handlers live in one file per group of commands: ctl_cache.c
 * (cache and server questions, status), ctl_flush.c (flushes), ctl_pin.c
 * (pins), ctl_offline.c (disconnected operation); ctl_i.h is what they
 * share with this file.
 *
 * Path requests go through an asynchronous resolver: from the volume root,
 * one component at a time, through the metadata cache, asking mfetch.c for
 * what is missing and coming back from its callback, so a handler never
 * waits on the network inside the loop.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "chunkstore/cs.h"
#include "cm/cm.h"
#include "cm/cm_ctl.h"
#include "cm/ctl.h"
#include "cm/ctl_i.h"
#include "cm/http.h"
#include "cm/inode.h"
#include "cm/mcache.h"
#include "cm/mfetch.h"
#include "cm/replay.h"
#include "cm/pin.h"
#include "cm/vc.h"
#include "cm/wb.h"
#include "common/ctl_proto.h"
#include "common/fid.h"
#include "common/log.h"
#include "common/util.h"

/* Bound on fetch-and-retry rounds for one path component: a listing that
 * keeps changing under us is reported as EAGAIN rather than looped on. */
#define RESOLVE_TRIES 4

/* ---- path resolution ------------------------------------------------ */

static void resolve_step(struct resolve *r);

void
cm_ctl_resolve_free(struct resolve *r)
{
	if (r->arg && r->arg_free)
		r->arg_free(r->arg);
	free(r->path);
	free(r);
}

/* Answer the call with @err and free @r. */
void
cm_ctl_resolve_fail(struct resolve *r, int err, const char *msg)
{
	ctl_reply_err(r->call, err, msg);
	cm_ctl_resolve_free(r);
}

static void
resolve_cb(void *arg, int err)
{
	struct resolve *r = arg;

	if (err < 0) {
		cm_ctl_resolve_fail(r, err, NULL);
		return;
	}
	resolve_step(r);
}

uint32_t
cm_ctl_attr_mode(const struct proto_attr *a)
{
	return (a->mode & 07777) | (a->type == PROTO_T_DIR ? S_IFDIR : 0);
}

/* The kernel inode of @fid's directory, then its attributes and pages
 * dropped (a directory's pages are its cached listing). */
static void
forget_dir(struct cm *cm, const struct fid *dir)
{
	mcache_inval_inode(cm->mc, ino_of(cm->ino, dir), 0, 0);
}

void
cm_ctl_kernel_sync(struct cm *cm, const struct proto_op *op, struct cm_job *job)
{
	/* The names first (their entries, a negative one too), then the
	 * directories holding them (mtime, nlink, the cached listing),
	 * then the objects' attributes (ctime, nlink; not their pages: a
	 * file's data is tagged by its DV). An object the kernel has no
	 * inode of (ino 0: a new one, or a mount point it only ever saw
	 * crossed) is skipped. */
	if (op->name && !fid_is_null(&op->parent))
		mcache_inval_name(cm->mc, &op->parent, op->name);
	if (op->newname && !fid_is_null(&op->newparent))
		mcache_inval_name(cm->mc, &op->newparent, op->newname);
	if (!fid_is_null(&op->parent))
		forget_dir(cm, &op->parent);
	if (!fid_is_null(&op->newparent) &&
	    !fid_eq(&op->newparent, &op->parent))
		forget_dir(cm, &op->newparent);
	if (!fid_is_null(&op->fid))
		mcache_inval_inode(cm->mc, ino_of(cm->ino, &op->fid), -1, 0);
	if (!fid_is_null(&op->victim))
		mcache_inval_inode(cm->mc, ino_of(cm->ino, &op->victim), -1, 0);
	cm_kernel_barrier(&cm->loop, job);
}

static void
resolve_step(struct resolve *r)
{
	struct proto_attr a;
	struct vc_dir *d;
	const char *slash;
	size_t len;
	long i;
	int rc;

	for (;;) {
		rc = mcache_attr(r->cm->mc, &r->fid, &a);
		if (rc == -ENOENT) {
			if (++r->tries > RESOLVE_TRIES) {
				cm_ctl_resolve_fail(r, EAGAIN, NULL);
				return;
			}
			mfetch_want_attr(r->cm->mf, &r->fid, resolve_cb, r);
			return;
		}
		if (rc < 0) {
			cm_ctl_resolve_fail(r, rc, NULL);
			return;
		}
		while (*r->cur == '/')
			r->cur++;
		if (!*r->cur || !strcmp(r->cur, ".")) {
			if (ctl_peer_may(&r->peer, cm_ctl_attr_mode(&a), a.uid, a.gid,
					 r->want) < 0) {
				cm_ctl_resolve_fail(r, EACCES, NULL);
				return;
			}
			r->done(r, &a);
			return;
		}
		if (a.type != PROTO_T_DIR) {
			cm_ctl_resolve_fail(r, ENOTDIR, NULL);
			return;
		}
		if (ctl_peer_may(&r->peer, cm_ctl_attr_mode(&a), a.uid, a.gid, X_OK) <
		    0) {
			cm_ctl_resolve_fail(r, EACCES, NULL);
			return;
		}
		rc = mcache_dir(r->cm->mc, &r->fid, &d);
		if (rc == -ENOENT) {
			if (++r->tries > RESOLVE_TRIES) {
				cm_ctl_resolve_fail(r, EAGAIN, NULL);
				return;
			}
			mfetch_want_dir(r->cm->mf, &r->fid, resolve_cb, r);
			return;
		}
		if (rc < 0) {
			cm_ctl_resolve_fail(r, rc, NULL);
			return;
		}
		slash = strchr(r->cur, '/');
		len = slash ? (size_t)(slash - r->cur) : strlen(r->cur);
		if (len == 1 && r->cur[0] == '.') {
			vc_dir_put(d);
			r->cur += len;
			continue;
		}
		i = vc_dir_find(d, r->cur, len);
		if (i < 0) {
			vc_dir_put(d);
			cm_ctl_resolve_fail(r, ENOENT, NULL);
			return;
		}
		r->parent = r->fid;
		r->have_parent = true;
		/* The schema bounds components to 255 bytes. */
		snprintf(r->name, sizeof(r->name), "%.*s", (int)len, r->cur);
		r->fid = vc_dir_ent(d, i)->fid;
		vc_dir_put(d);
		r->cur += len;
		r->tries = 0;
	}
}

/* Resolve args.path for @call; @done answers the call and frees @r with
 * cm_ctl_resolve_free() (or cm_ctl_resolve_fail()). */
static struct resolve *
resolve_new(struct cm *cm, struct ctl_call *call, const struct ctl_peer *peer,
	    const char *path, int want, resolve_done_fn done)
{
	struct proto_volinfo vi;
	struct resolve *r;

	if (cm_volinfo(cm, &vi) < 0) {
		ctl_reply_err(call, EAGAIN, "the volume is not known yet");
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (!r || !(r->path = strdup(path ? path : ""))) {
		free(r);
		ctl_reply_err(call, ENOMEM, NULL);
		return NULL;
	}
	r->cm = cm;
	r->call = call;
	r->peer = *peer;
	r->cur = r->path;
	r->fid = vi.root;
	r->want = want;
	r->done = done;
	return r;
}

void
cm_ctl_resolve(struct cm *cm, struct ctl_call *call,
	      const struct ctl_peer *peer, json_t *args, int want,
	      resolve_done_fn done)
{
	const char *path = json_string_value(json_object_get(args, "path"));
	struct resolve *r = resolve_new(cm, call, peer, path, want, done);

	if (!r)
		return;
	r->recursive = json_is_true(json_object_get(args, "recursive"));
	resolve_step(r);
}

void
cm_ctl_resolve_path(struct cm *cm, struct ctl_call *call,
		    const struct ctl_peer *peer, const char *path, int want,
		    resolve_done_fn done, void *arg,
		    void (*arg_free)(void *arg))
{
	struct resolve *r = resolve_new(cm, call, peer, path, want, done);

	if (!r) {
		if (arg && arg_free)
			arg_free(arg);
		return;
	}
	r->arg = arg;
	r->arg_free = arg_free;
	resolve_step(r);
}

const struct ctl_handlers cm_ctl_handlers = { .on = {
	[CTL_PIN] = cm_ctl_h_pin,
	[CTL_UNPIN] = cm_ctl_h_unpin,
	[CTL_PINS] = cm_ctl_h_pins,
	[CTL_GETCACHEPARMS] = cm_ctl_h_getcacheparms,
	[CTL_SETCACHESIZE] = cm_ctl_h_setcachesize,
	[CTL_STATUS] = cm_ctl_h_status,
	[CTL_LISTVOL] = cm_ctl_h_listvol,
	[CTL_CHECKSERVERS] = cm_ctl_h_checkservers,
	[CTL_WHEREIS] = cm_ctl_h_whereis,
	[CTL_EXAMINE] = cm_ctl_h_examine,
	[CTL_FLUSH] = cm_ctl_h_flush,
	[CTL_FLUSHMETA] = cm_ctl_h_flushmeta,
	[CTL_FLUSHVOLUME] = cm_ctl_h_flushvolume,
	[CTL_DISCONNECT] = cm_ctl_h_disconnect,
	[CTL_RECONNECT] = cm_ctl_h_reconnect,
	[CTL_SETPOLICY] = cm_ctl_h_setpolicy,
	[CTL_SYNC] = cm_ctl_h_sync,
	[CTL_CONFLICTS] = cm_ctl_h_conflicts,
	[CTL_RESOLVE] = cm_ctl_h_resolve,
	[CTL_REPLAYLOG] = cm_ctl_h_replaylog,
	[CTL_FLUSHALL] = cm_ctl_h_flushvolume, /* and then the metadata */
	[CTL_METRICS] = cm_ctl_h_metrics,
	[CTL_MKMOUNT] = cm_ctl_h_mkmount,
	[CTL_LSMOUNT] = cm_ctl_h_lsmount,
	[CTL_RMMOUNT] = cm_ctl_h_rmmount,
} };

/* ---- start / stop --------------------------------------------------- */

int
cm_ctl_start(struct cm *cm)
{
	char sock[108];
	const char *p = cm->cfg.ctl_socket;
	struct ctl_limits lim;
	int rc, err = 0;

	if (!p) {
		rc = ctl_socket_path(cm->cfg.mountpoint, sock, sizeof(sock));
		if (rc < 0) {
			log_err(LOG_CTL, "cannot name the control socket for "
					 "'%s': %s",
				cm->cfg.mountpoint, strerror(-rc));
			return rc;
		}
		p = sock;
	}
	cm->ctl = ctl_server_new(cm->loop.base, p, &cm_ctl_handlers, cm, &err);
	if (!cm->ctl) {
		log_err(LOG_CTL, "cannot listen on control socket '%s': %s", p,
			strerror(-err));
		return err < 0 ? err : -EIO;
	}
	ctl_server_get_limits(cm->ctl, &lim);
	lim.max_conns_per_uid = cm->cfg.ctl_conns_per_uid;
	ctl_server_set_limits(cm->ctl, &lim);
	return cm_metrics_listen_start(cm);
}

struct stop_job {
	struct cm_job job;
	struct cm *cm;
};

static void
stop_job(struct cm_loop *loop, struct cm_job *job)
{
	struct stop_job *sj = container_of(job, struct stop_job, job);

	(void)loop;
	cm_metrics_listen_stop(sj->cm);
	ctl_server_free(sj->cm->ctl);
	sj->cm->ctl = NULL;
	free(sj);
}

void
cm_ctl_stop(struct cm *cm)
{
	struct stop_job *j;

	if (!cm->ctl)
		return;
	/* The server belongs to the loop thread: free it there. If the loop
	 * is not running, nobody else touches it. */
	j = cm->loop.running ? calloc(1, sizeof(*j)) : NULL;
	if (!j) {
		cm_metrics_listen_stop(cm);
		ctl_server_free(cm->ctl);
		cm->ctl = NULL;
		return;
	}
	j->job.run = stop_job;
	j->cm = cm;
	cm_post(&cm->loop, &j->job);
}

