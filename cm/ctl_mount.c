/*
 * ctl_mount.c - control requests of mount points (doc/cm.md "Mount
 * points", doc/control.md): fs mkmount, fs lsmount, fs rmmount. The
 * changes are ordinary ops of the replay log (mkmount, and an unlink of
 * the mount point) submitted through mut.c, so they work disconnected and
 * are replayed like any other; nothing here crosses a mount point.
 *
 * Every request names its path without following the last component:
 * mkmount resolves the parent and names the new entry in it, lsmount and
 * rmmount look at the entry itself, as AFS's fs commands do.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm/access.h"
#include "cm/cm.h"
#include "cm/ctl.h"
#include "cm/ctl_i.h"
#include "cm/mcache.h"
#include "cm/mfetch.h"
#include "cm/mut.h"
#include "cm/vc.h"
#include "common/ctl_proto.h"
#include "common/log.h"

/* One mkmount or rmmount on its way through the op log. */
struct mnt_call {
	struct cm *cm;
	struct ctl_call *call;
	struct proto_op op;
	char *path;
	struct cm_job job;    /* the answer, after the kernel barrier */
	char fid[FID_STRLEN]; /* mkmount: the new mount point's */
};

static void
mnt_call_free(struct mnt_call *mc)
{
	if (!mc)
		return;
	proto_op_release(&mc->op);
	free(mc->path);
	free(mc);
}

/* What may the caller do? @return 0, or answers the call and -errno. */
static int
mnt_may(struct cm *cm, struct ctl_call *call, const struct ctl_peer *peer,
	const struct proto_op *op)
{
	struct acc_need need;
	int rc = acc_may_change(cm->acc, peer, op, NULL, NULL, &need);

	if (rc == -EAGAIN) /* just resolved: only a racing change */
		ctl_reply_err(call, EAGAIN,
			      "the directory changed meanwhile: "
			      "try again");
	else if (rc < 0)
		ctl_reply_err(call, -rc, NULL);
	return rc;
}

/* The answer, once the kernel dropped what it cached of the names
 * (cm_ctl_kernel_sync()): `test -e` right after `fs rmmount` returned
 * found the name still there (t5051), and a name looked up before `fs
 * mkmount` stayed a negative entry (t2131). */
static void
mnt_reply(struct cm_loop *loop, struct cm_job *job)
{
	struct mnt_call *mc = container_of(job, struct mnt_call, job);

	(void)loop;
	if (mc->op.kind == PROTO_OP_MKMOUNT) {
		ctl_reply_ok(mc->call,
			     json_pack("{s:s,s:s,s:s}", "path", mc->path,
				       "volume", mc->op.target, "fid",
				       mc->fid));
		log_info(LOG_CTL, "mount point '%s' for volume '%s' made",
			 mc->path, mc->op.target);
	} else {
		ctl_reply_ok(mc->call, json_pack("{s:s}", "path", mc->path));
		log_info(LOG_CTL, "mount point '%s' removed", mc->path);
	}
	mnt_call_free(mc);
}

static void
mnt_done(void *arg, int err, const struct proto_op_result *r)
{
	struct mnt_call *mc = arg;

	if (err) {
		ctl_reply_err(mc->call, -err,
			      err == -EEXIST ? "the name exists" : NULL);
		mnt_call_free(mc);
		return;
	}
	if (mc->op.kind == PROTO_OP_MKMOUNT)
		fid_fmt(r && r->has_attr ? &r->attr.fid : &mc->op.fid, mc->fid);
	/* The answer is in the caches (mut.c applied it, or the offline
	 * edit made it): now the kernel, then the caller. */
	mc->job.run = mnt_reply;
	cm_ctl_kernel_sync(mc->cm, &mc->op, &mc->job);
}

static void
mnt_submit(struct cm *cm, struct mnt_call *mc)
{
	int rc;

	mc->cm = cm;
	rc = mut_submit(cm->mut, &mc->op, mnt_done, mc);

	if (rc < 0) {
		ctl_reply_err(mc->call, -rc, NULL);
		mnt_call_free(mc);
	}
}

/* The end of a resolved mkmount or rmmount: the permission check of
 * any change to the parent (mnt_may()), then @mc goes to the server, or
 * is dropped (the call answered). Frees the resolver @r. */
static void
mnt_may_submit(struct resolve *r, struct mnt_call *mc)
{
	struct cm *cm = r->cm;
	int rc = mnt_may(cm, r->call, &r->peer, &mc->op);

	cm_ctl_resolve_free(r);
	if (rc < 0)
		mnt_call_free(mc);
	else
		mnt_submit(cm, mc);
}

/* ---- fs mkmount PATH VOLUME ---- */

/* What the resolver of the parent carries for mk_parent(). */
struct mk_req {
	char name[256];
	char *volume;
	char *path;
};

static void
mk_req_free(void *arg)
{
	struct mk_req *mk = arg;

	free(mk->volume);
	free(mk->path);
	free(mk);
}

static void
mk_parent(struct resolve *r, const struct proto_attr *a)
{
	struct mk_req *mk = r->arg;
	struct mnt_call *mc;

	if (a->type != PROTO_T_DIR) {
		cm_ctl_resolve_fail(r, ENOTDIR,
				    "the parent is not a directory");
		return;
	}
	mc = calloc(1, sizeof(*mc));
	if (!mc) {
		cm_ctl_resolve_fail(r, ENOMEM, NULL);
		return;
	}
	mc->call = r->call;
	mc->op.kind = PROTO_OP_MKMOUNT;
	mc->op.type = PROTO_T_MOUNT;
	mc->op.parent = r->fid;
	mc->op.mode = 0755; /* as the server makes it (not on the wire) */
	mc->op.uid = r->peer.uid;
	mc->op.gid = r->peer.gid;
	mc->op.name = strdup(mk->name);
	mc->op.target = mk->volume;
	mc->path = mk->path;
	mk->volume = mk->path = NULL;
	if (!mc->op.name || fid_random(r->fid.vol, &mc->op.fid) < 0) {
		cm_ctl_resolve_fail(r, ENOMEM, NULL);
		mnt_call_free(mc);
		return;
	}
	mnt_may_submit(r, mc);
}

/* Split mount-relative @path into its parent (heap) and last component.
 * @return the parent, or NULL with *@err set (EINVAL: no name to make). */
static char *
split_path(const char *path, char name[256], int *err)
{
	char *dir = strdup(path), *slash, *base;
	size_t len;

	*err = ENOMEM;
	if (!dir)
		return NULL;
	len = strlen(dir);
	while (len > 1 && dir[len - 1] == '/')
		dir[--len] = '\0';
	slash = strrchr(dir, '/');
	base = slash ? slash + 1 : dir;
	*err = EINVAL;
	if (proto_name_check(base, strlen(base)) < 0) {
		free(dir);
		return NULL;
	}
	snprintf(name, 256, "%s", base);
	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		strcpy(dir, ".");
	else
		*slash = '\0';
	return dir;
}

CM_CTL_HANDLER(cm_ctl_h_mkmount)
{
	struct cm *cm = arg;
	const char *path = json_string_value(json_object_get(args, "path"));
	const char *vol = json_string_value(json_object_get(args, "target"));
	struct proto_volinfo vi;
	struct mk_req *mk;
	char *dir;
	int err;

	if (!vol || proto_mount_target_check(vol, strlen(vol)) < 0) {
		ctl_reply_err(call, EINVAL,
			      "not a volume name: VOLUME or ALIAS:VOLUME, each "
			      "of letters, digits, '.', '_', '-', not starting "
			      "with '.'");
		return;
	}
	/* An older server refuses the op (400, an op it does not know):
	 * say why here, before anything is logged. */
	if (cm_volinfo(cm, &vi) == 0 && vi.version < PROTO_V_MOUNT) {
		ctl_reply_err(call, EOPNOTSUPP,
			      "the server does not know mount points "
			      "(protocol 5)");
		return;
	}
	mk = calloc(1, sizeof(*mk));
	if (!mk) {
		ctl_reply_err(call, ENOMEM, NULL);
		return;
	}
	dir = split_path(path ? path : "", mk->name, &err);
	mk->volume = strdup(vol);
	mk->path = strdup(path ? path : "");
	if (!dir || !mk->volume || !mk->path) {
		free(dir);
		mk_req_free(mk);
		ctl_reply_err(call, dir ? ENOMEM : err,
			      dir || err != EINVAL
				      ? NULL
				      : "the path must end in a name to make");
		return;
	}
	/* Write and search on the parent, checked again by mnt_may() as
	 * for any new entry (acc_may_change()). */
	cm_ctl_resolve_path(cm, call, peer, dir, W_OK | X_OK, mk_parent, mk,
			    mk_req_free);
	free(dir);
}

/* ---- fs lsmount PATH ---- */

static void ls_resolved(struct resolve *r, const struct proto_attr *a);

static void
ls_fetched(void *arg, int err)
{
	struct resolve *r = arg;
	struct proto_attr a;

	if (err < 0) {
		cm_ctl_resolve_fail(r, -err, NULL);
		return;
	}
	if (mcache_attr(r->cm->mc, &r->fid, &a) < 0) {
		cm_ctl_resolve_fail(r, ENOENT, NULL);
		return;
	}
	ls_resolved(r, &a);
}

static void
ls_resolved(struct resolve *r, const struct proto_attr *a)
{
	char *target = NULL, fs[FID_STRLEN];

	if (a->type != PROTO_T_MOUNT) {
		cm_ctl_resolve_fail(r, EINVAL, "not a mount point");
		return;
	}
	if (vc_get_link(r->cm->vc, &r->fid, &target) < 0) {
		if (++r->tries > 4) {
			cm_ctl_resolve_fail(r, EAGAIN, NULL);
			return;
		}
		mfetch_want_link(r->cm->mf, &r->fid, ls_fetched, r);
		return;
	}
	ctl_reply_ok(r->call,
		     json_pack("{s:s,s:s,s:s}", "path", r->path, "volume",
			       target, "fid", fid_fmt(&r->fid, fs)));
	free(target);
	cm_ctl_resolve_free(r);
}

CM_CTL_HANDLER(cm_ctl_h_lsmount)
{
	cm_ctl_resolve(arg, call, peer, args, 0, ls_resolved);
}

/* ---- fs rmmount PATH ---- */

static void
rm_resolved(struct resolve *r, const struct proto_attr *a)
{
	struct mnt_call *mc;

	if (a->type != PROTO_T_MOUNT || !r->have_parent) {
		cm_ctl_resolve_fail(r, EINVAL, "not a mount point");
		return;
	}
	mc = calloc(1, sizeof(*mc));
	if (!mc || !(mc->path = strdup(r->path)) ||
	    !(mc->op.name = strdup(r->name))) {
		mnt_call_free(mc);
		cm_ctl_resolve_fail(r, ENOMEM, NULL);
		return;
	}
	mc->call = r->call;
	mc->op.kind = PROTO_OP_UNLINK;
	mc->op.parent = r->parent;
	mc->op.fid = r->fid;
	mnt_may_submit(r, mc);
}

CM_CTL_HANDLER(cm_ctl_h_rmmount)
{
	cm_ctl_resolve(arg, call, peer, args, 0, rm_resolved);
}
