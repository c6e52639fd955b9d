/*
 * vs_ops.c - the mutations of POST /op (op_create, op_link, op_unlink,
 * op_rename, op_setattr, op_xattr, op_store), each run inside a struct txn
 * (vs_txn.c).
 */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <linux/falloc.h>

#include "common/log.h"
#include "common/tdbw.h"
#include "common/token.h"
#include "common/util.h"
#include "vol/volstore.h"
#include "vol/volstore_i.h"

int
fail(struct txn *t, int err, const char *msg)
{
	t->msg = msg;
	return err;
}

static void
add_event(struct txn *t, enum proto_ev_kind kind, const uint8_t oid[16],
	  uint64_t dv)
{
	struct proto_event *e;

	if (!t->events || t->nev >= VS_MAX_EVENTS)
		return;
	/* One event per (kind, object) per mutation is enough. */
	for (int i = 0; i < t->nev; i++)
		if (t->ev[i].kind == kind && !memcmp(t->ev[i].fid.oid, oid, 16)) {
			t->ev[i].dv = dv;
			return;
		}
	e = &t->ev[t->nev++];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->fid.vol = t->v->id;
	memcpy(e->fid.oid, oid, 16);
	e->dv = dv;
}

static uint64_t
next_dv(struct txn *t, uint64_t dv)
{
	dv++;
	if (dv > t->vr.dv_max)
		t->vr.dv_max = dv;
	return dv;
}

/*
 * A change of @r's attributes: its ctime moves to the transaction's time,
 * and past the last one when the clock went back or an earlier op of the
 * same batch changed the object. Two answers about one object at one DV
 * are ordered by it (a chmod keeps the DV): cairnd keeps the one with the
 * later ctime (cm/mcache.c, fetched_older()).
 */
static void
touch_ctime(const struct txn *t, struct orec *r)
{
	r->ctime = t->now > r->ctime ? t->now : r->ctime + 1;
}

/* Load the directory @f for a change: must exist and be a directory. */
static int
load_dir(struct txn *t, const struct fid *f, struct obj *d)
{
	int rc = obj_get_fid(t->v, f, d);

	if (rc == -ENOENT)
		return fail(t, -ENOENT, "no such directory");
	if (rc)
		return rc;
	if (d->r.type != PROTO_T_DIR) {
		obj_release(d);
		return fail(t, -ENOTDIR, "not a directory");
	}
	return 0;
}

static void
dir_touch(struct txn *t, struct obj *d)
{
	d->r.dv = next_dv(t, d->r.dv);
	touch_ctime(t, &d->r);
	d->r.mtime = d->r.ctime;
	add_event(t, PROTO_EV_DIR, d->oid, d->r.dv);
}

/*
 * Report the attributes after the change: @o always, @parent and
 * @newparent when not NULL.
 */
static void
report_attrs(struct txn *t, struct obj *o, struct obj *parent,
	     struct obj *newparent)
{
	t->res.has_attr = true;
	obj_attr(t->v, o, &t->res.attr);
	if (parent) {
		t->res.has_parent = true;
		obj_attr(t->v, parent, &t->res.parent);
	}
	if (newparent) {
		t->res.has_newparent = true;
		obj_attr(t->v, newparent, &t->res.newparent);
	}
}

/* Write back @o and the directories not NULL, then report them all. */
static int
put_report(struct txn *t, struct obj *o, struct obj *parent,
	   struct obj *newparent)
{
	int rc = obj_put(t->v, o);

	if (!rc && parent)
		rc = obj_put(t->v, parent);
	if (!rc && newparent)
		rc = obj_put(t->v, newparent);
	if (rc)
		return rc;
	report_attrs(t, o, parent, newparent);
	return 0;
}

/* 16 random bytes for a new oid, from a per-thread pool of 4 KiB drawn
 * with one getrandom() (one call a create before: a system call of each
 * small create's ~20). A forked child empties the pool of the thread that
 * forked (pthread_atfork), so it never repeats its parent's oids; an oid
 * that exists anyway is drawn again (new_oid()). */
static __thread uint8_t oid_pool[4096];
static __thread size_t oid_left;
static pthread_once_t oid_once = PTHREAD_ONCE_INIT;

static void
oid_forked(void)
{
	oid_left = 0;
}

static void
oid_init(void)
{
	pthread_atfork(NULL, NULL, oid_forked);
}

static int
oid_random(uint8_t oid[16])
{
	pthread_once(&oid_once, oid_init);
	if (!oid_left) {
		size_t got = 0;

		while (got < sizeof(oid_pool)) {
			ssize_t n = getrandom(oid_pool + got,
					      sizeof(oid_pool) - got, 0);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return random_bytes(oid, 16);
			got += (size_t)n;
		}
		oid_left = sizeof(oid_pool);
	}
	oid_left -= 16;
	memcpy(oid, oid_pool + oid_left, 16);
	memset(oid_pool + oid_left, 0, 16); /* never handed out twice */
	return 0;
}

/* Pick the new object's oid (client's choice or random). */
static int
new_oid(struct txn *t, const struct fid *want, uint8_t oid[16])
{
	uint8_t k[17];

	if (!fid_is_null(want)) {
		if (want->vol != t->v->id)
			return fail(t, -EINVAL, "fid of another volume");
		key_obj(k, want->oid);
		if (kv_exists(t->v, k, sizeof(k)))
			return fail(t, -EEXIST, "fid exists");
		memcpy(oid, want->oid, 16);
		return 0;
	}
	for (int i = 0; i < 8; i++) {
		int rc = oid_random(oid);

		if (rc)
			return rc;
		key_obj(k, oid);
		if (!kv_exists(t->v, k, sizeof(k)))
			return 0;
	}
	return -EIO;
}

/* The content of a new symlink or mount point @o: a copy of @target,
 * its length as the size. @return 0 or -ENOMEM. */
static int
obj_set_target(struct obj *o, const char *target)
{
	o->target = strdup(target);
	if (!o->target)
		return -ENOMEM;
	o->r.tlen = (uint32_t)strlen(o->target);
	o->r.size = o->r.tlen;
	return 0;
}

static int
op_create(struct txn *t, const struct proto_op *op)
{
	struct obj d, o;
	uint8_t child[16];
	int rc;

	rc = load_dir(t, &op->parent, &d);
	if (rc)
		return rc;
	memset(&o, 0, sizeof(o));
	if (ent_get(t->v, d.oid, op->name, child, NULL) == 0) {
		rc = fail(t, -EEXIST, "name exists");
		goto out;
	}
	if (t->vr.files_limit && t->vr.files_used >= t->vr.files_limit) {
		rc = fail(t, -EDQUOT, "volume file quota exceeded");
		goto out;
	}
	rc = new_oid(t, &op->fid, o.oid);
	if (rc)
		goto out;
	o.r.magic = OREC_MAGIC;
	o.r.type = (uint8_t)op->type;
	o.r.mode = op->mode & 07777;
	o.r.uid = op->uid;
	o.r.gid = op->gid;
	o.r.nlink = 1;
	o.r.dv = next_dv(t, t->vr.dv_max);
	o.r.atime = o.r.mtime = o.r.ctime = t->now;
	switch (op->kind) {
	case PROTO_OP_MKDIR:
		o.r.type = PROTO_T_DIR;
		o.r.nlink = 2;
		o.r.nbuckets = 1;
		memcpy(o.r.parent, d.oid, 16);
		d.r.nlink++;
		break;
	case PROTO_OP_SYMLINK:
		o.r.type = PROTO_T_SYMLINK;
		o.r.mode = 0777;
		rc = obj_set_target(&o, op->target);
		if (rc)
			goto out;
		break;
	case PROTO_OP_MKMOUNT:
		/* The decoder checked the target; vos builds ops itself. */
		if (!op->target ||
		    proto_mount_target_check(op->target, strlen(op->target))) {
			rc = fail(t, -EINVAL, "bad mount-point target");
			goto out;
		}
		o.r.type = PROTO_T_MOUNT;
		o.r.mode = 0755;
		rc = obj_set_target(&o, op->target);
		if (rc)
			goto out;
		break;
	default:
		if (!proto_type_creatable(op->type) ||
		    (op->rdev && !proto_type_has_rdev(op->type))) {
			rc = fail(t, -EINVAL, "bad type for create");
			goto out;
		}
		o.rdev = op->rdev;
		break;
	}
	rc = dir_add(t->v, &d, op->name, o.oid, o.r.type);
	if (rc)
		goto out;
	dir_touch(t, &d);
	rc = put_report(t, &o, &d, NULL);
	if (!rc)
		t->vr.files_used++;
out:
	obj_release(&o);
	obj_release(&d);
	return rc;
}

static int
op_link(struct txn *t, const struct proto_op *op)
{
	struct obj d, o;
	uint8_t child[16];
	int rc;

	rc = load_dir(t, &op->parent, &d);
	if (rc)
		return rc;
	rc = obj_get_fid(t->v, &op->fid, &o);
	if (rc) {
		if (rc == -ENOENT)
			rc = fail(t, -ENOENT, "no such object");
		goto out;
	}
	if (o.r.type == PROTO_T_DIR || o.r.type == PROTO_T_MOUNT) {
		rc = fail(t, -EPERM,
			  o.r.type == PROTO_T_DIR
				  ? "cannot hard-link a directory"
				  : "cannot hard-link a mount point");
		goto out;
	}
	if (ent_get(t->v, d.oid, op->name, child, NULL) == 0) {
		rc = fail(t, -EEXIST, "name exists");
		goto out;
	}
	rc = dir_add(t->v, &d, op->name, o.oid, o.r.type);
	if (rc)
		goto out;
	dir_touch(t, &d);
	o.r.nlink++;
	touch_ctime(t, &o.r);
	add_event(t, PROTO_EV_ATTR, o.oid, o.r.dv);
	rc = put_report(t, &o, &d, NULL);
out:
	obj_release(&o);
	obj_release(&d);
	return rc;
}

/* Drop one link of @o (its name is already gone): delete it at nlink 0.
 * Fills @victim with the attributes after (nlink 0 = gone). */
static int
drop_link(struct txn *t, struct obj *o, struct proto_attr *victim)
{
	int rc;

	if (o->r.type == PROTO_T_DIR) {
		rc = dir_buckets_drop(t->v, o->oid, o->r.nbuckets);
		if (rc)
			return rc;
		o->r.nlink = 0;
	} else if (o->r.nlink > 0) {
		o->r.nlink--;
	}
	touch_ctime(t, &o->r);
	obj_attr(t->v, o, victim);
	if (o->r.nlink > 0) {
		add_event(t, PROTO_EV_ATTR, o->oid, o->r.dv);
		return obj_put(t->v, o);
	}
	victim->nlink = 0;
	add_event(t, PROTO_EV_GONE, o->oid, 0);
	if (o->r.type == PROTO_T_FILE) {
		int drc = data_drop_all(t, o);

		if (drc)
			return drc;
		t->vr.bytes_used -= o->r.size < t->vr.bytes_used ?
					    o->r.size : t->vr.bytes_used;
	}
	if (t->vr.files_used)
		t->vr.files_used--;
	return obj_del(t->v, o->oid);
}

/*
 * The name @name in directory @d must still be the object @fid the
 * client based its op on: 404 ENOENT if the name is gone, 412 (with the
 * directory's DV) if it now names another object. @child gets the OID.
 */
static int
name_is_fid(struct txn *t, const struct obj *d, const char *name,
	    const struct fid *fid, uint8_t child[16])
{
	if (ent_get(t->v, d->oid, name, child, NULL))
		return fail(t, -ENOENT, "no such name");
	if (fid->vol != t->v->id || memcmp(child, fid->oid, 16)) {
		t->cur_dv = d->r.dv;
		return fail(t, -ECANCELED, "name points to another object");
	}
	return 0;
}

static int
op_unlink(struct txn *t, const struct proto_op *op)
{
	struct obj d, o;
	uint8_t child[16];
	int rc;

	memset(&o, 0, sizeof(o));
	rc = load_dir(t, &op->parent, &d);
	if (rc)
		return rc;
	rc = name_is_fid(t, &d, op->name, &op->fid, child);
	if (rc)
		goto out;
	rc = obj_get(t->v, child, &o);
	if (rc)
		goto out;
	if (op->kind == PROTO_OP_UNLINK && o.r.type == PROTO_T_DIR) {
		rc = fail(t, -EISDIR, "is a directory");
		goto out;
	}
	if (op->kind == PROTO_OP_RMDIR) {
		if (o.r.type != PROTO_T_DIR) {
			rc = fail(t, -ENOTDIR, "not a directory");
			goto out;
		}
		if (o.r.nentries) {
			rc = fail(t, -ENOTEMPTY, "directory not empty");
			goto out;
		}
		if (!memcmp(o.oid, t->v->rootoid, 16)) {
			rc = fail(t, -EBUSY, "cannot remove the root");
			goto out;
		}
		if (d.r.nlink > 2)
			d.r.nlink--;
	}
	rc = dir_del(t->v, &d, op->name);
	if (rc)
		goto out;
	dir_touch(t, &d);
	t->res.has_victim = true;
	rc = drop_link(t, &o, &t->res.victim);
	if (!rc)
		rc = obj_put(t->v, &d);
	if (rc)
		goto out;
	t->res.has_parent = true;
	obj_attr(t->v, &d, &t->res.parent);
out:
	obj_release(&o);
	obj_release(&d);
	return rc;
}

/* Is directory @anc the same as @dir or one of its ancestors? */
static int
is_ancestor(struct txn *t, const uint8_t anc[16], const uint8_t dir[16],
	    bool *yes)
{
	uint8_t cur[16];

	memcpy(cur, dir, 16);
	*yes = false;
	for (int depth = 0; depth < 100000; depth++) {
		struct obj o;
		int rc;

		if (!memcmp(cur, anc, 16)) {
			*yes = true;
			return 0;
		}
		if (!memcmp(cur, t->v->rootoid, 16))
			return 0;
		rc = obj_get(t->v, cur, &o);
		if (rc)
			return rc == -ENOENT ? -EIO : rc;
		memcpy(cur, o.r.parent, 16);
		obj_release(&o);
	}
	return -EIO;
}

static int
op_rename(struct txn *t, const struct proto_op *op)
{
	struct obj sd, dd, o, vic;
	struct obj *dst;
	uint8_t child[16], tchild[16], ttype;
	bool same_dir, have_target, anc;
	int rc;

	memset(&dd, 0, sizeof(dd));
	memset(&o, 0, sizeof(o));
	memset(&vic, 0, sizeof(vic));
	rc = load_dir(t, &op->parent, &sd);
	if (rc)
		return rc;
	same_dir = fid_eq(&op->parent, &op->newparent);
	if (!same_dir) {
		rc = load_dir(t, &op->newparent, &dd);
		if (rc)
			goto out;
	}
	dst = same_dir ? &sd : &dd;
	rc = name_is_fid(t, &sd, op->name, &op->fid, child);
	if (rc)
		goto out;
	rc = obj_get(t->v, child, &o);
	if (rc)
		goto out;
	have_target = ent_get(t->v, dst->oid, op->newname, tchild, &ttype) == 0;
	if (have_target && (op->flags & PROTO_RENAME_NOREPLACE)) {
		rc = fail(t, -EEXIST, "name exists");
		goto out;
	}
	if (!have_target && !fid_is_null(&op->victim)) {
		if (op->flags & PROTO_RENAME_EXCHANGE)
			rc = fail(t, -ENOENT, "no such name to exchange with");
		else {
			t->cur_dv = dst->r.dv;
			rc = fail(t, -ECANCELED, "the expected victim is gone");
		}
		goto out;
	}
	if (have_target && (fid_is_null(&op->victim) ||
			    op->victim.vol != t->v->id ||
			    memcmp(tchild, op->victim.oid, 16))) {
		t->cur_dv = dst->r.dv;
		rc = fail(t, -ECANCELED, "new name points to another object");
		goto out;
	}
	/* Renaming a name onto itself, or onto another link of the same
	 * object, changes nothing (rename(2)). */
	if (have_target && !memcmp(tchild, o.oid, 16)) {
		report_attrs(t, &o, &sd, same_dir ? NULL : &dd);
		goto out;
	}
	if (o.r.type == PROTO_T_DIR && !same_dir) {
		rc = is_ancestor(t, o.oid, dst->oid, &anc);
		if (rc)
			goto out;
		if (anc) {
			rc = fail(t, -EINVAL, "cannot move a directory into itself");
			goto out;
		}
	}
	if (have_target) {
		rc = obj_get(t->v, tchild, &vic);
		if (rc)
			goto out;
	}
	if (op->flags & PROTO_RENAME_EXCHANGE) {
		if (vic.r.type == PROTO_T_DIR && !same_dir) {
			rc = is_ancestor(t, vic.oid, sd.oid, &anc);
			if (rc)
				goto out;
			if (anc) {
				rc = fail(t, -EINVAL,
					  "cannot move a directory into itself");
				goto out;
			}
		}
		rc = dir_repoint(t->v, &sd, op->name, vic.oid, vic.r.type);
		if (!rc)
			rc = dir_repoint(t->v, dst, op->newname, o.oid, o.r.type);
		if (rc)
			goto out;
		if (!same_dir) {
			if (o.r.type == PROTO_T_DIR) {
				memcpy(o.r.parent, dst->oid, 16);
				dst->r.nlink++;
				sd.r.nlink--;
			}
			if (vic.r.type == PROTO_T_DIR) {
				memcpy(vic.r.parent, sd.oid, 16);
				sd.r.nlink++;
				dst->r.nlink--;
			}
		}
		touch_ctime(t, &vic.r);
		rc = obj_put(t->v, &vic);
		if (rc)
			goto out;
		t->res.has_victim = true;
		obj_attr(t->v, &vic, &t->res.victim);
	} else {
		if (have_target) {
			if (o.r.type == PROTO_T_DIR && vic.r.type != PROTO_T_DIR) {
				rc = fail(t, -ENOTDIR, "target is not a directory");
				goto out;
			}
			if (o.r.type != PROTO_T_DIR && vic.r.type == PROTO_T_DIR) {
				rc = fail(t, -EISDIR, "target is a directory");
				goto out;
			}
			if (vic.r.type == PROTO_T_DIR && vic.r.nentries) {
				rc = fail(t, -ENOTEMPTY, "directory not empty");
				goto out;
			}
			rc = dir_del(t->v, dst, op->newname);
			if (rc)
				goto out;
			if (vic.r.type == PROTO_T_DIR && dst->r.nlink > 2)
				dst->r.nlink--;
			t->res.has_victim = true;
			rc = drop_link(t, &vic, &t->res.victim);
			if (rc)
				goto out;
		}
		rc = dir_del(t->v, &sd, op->name);
		if (!rc)
			rc = dir_add(t->v, dst, op->newname, o.oid, o.r.type);
		if (rc)
			goto out;
		if (o.r.type == PROTO_T_DIR && !same_dir) {
			memcpy(o.r.parent, dst->oid, 16);
			if (sd.r.nlink > 2)
				sd.r.nlink--;
			dst->r.nlink++;
		}
	}
	touch_ctime(t, &o.r);
	dir_touch(t, &sd);
	if (!same_dir)
		dir_touch(t, &dd);
	rc = put_report(t, &o, &sd, same_dir ? NULL : &dd);
out:
	obj_release(&vic);
	obj_release(&o);
	obj_release(&dd);
	obj_release(&sd);
	return rc;
}

/*
 * Give file @o new data of @size bytes at the next DV (data_make() with
 * @store, NULL for a truncate): refuses past the volume quota, moves
 * bytes_used, size, DV and mtime, and records the data event.
 */
static int
data_replace(struct txn *t, struct obj *o, uint64_t size,
	     const struct proto_op *store)
{
	uint64_t newdv;
	int rc;

	if (t->vr.bytes_limit && size > o->r.size &&
	    t->vr.bytes_used - o->r.size + size > t->vr.bytes_limit)
		return fail(t, -EDQUOT, "volume quota exceeded");
	newdv = next_dv(t, o->r.dv);
	rc = data_make(t, o, newdv, size, store);
	if (rc)
		return rc;
	t->vr.bytes_used = t->vr.bytes_used - o->r.size + size;
	o->r.size = size;
	o->r.dv = newdv;
	o->r.mtime = t->now;
	add_event(t, PROTO_EV_DATA, o->oid, o->r.dv);
	return 0;
}

static int
op_setattr(struct txn *t, const struct proto_op *op)
{
	struct obj o;
	int rc = obj_get_fid(t->v, &op->fid, &o);

	if (rc)
		return rc == -ENOENT ? fail(t, rc, "no such object") : rc;
	if (op->base_dv != o.r.dv) {
		t->cur_dv = o.r.dv;
		rc = fail(t, -ECANCELED, "data version changed");
		goto out;
	}
	if (op->mask & PROTO_SA_SIZE) {
		if (o.r.type == PROTO_T_DIR) {
			rc = fail(t, -EISDIR, "is a directory");
			goto out;
		}
		if (o.r.type != PROTO_T_FILE) {
			rc = fail(t, -EINVAL, "not a regular file");
			goto out;
		}
		if (op->size > VS_FILE_MAX) {
			rc = fail(t, -EFBIG, "file too large");
			goto out;
		}
		rc = data_replace(t, &o, op->size, NULL);
		if (rc)
			goto out;
	}
	if (op->mask & PROTO_SA_MODE)
		o.r.mode = op->mode & 07777;
	if (op->mask & PROTO_SA_UID)
		o.r.uid = op->uid;
	if (op->mask & PROTO_SA_GID)
		o.r.gid = op->gid;
	if (op->mask & PROTO_SA_ATIME)
		o.r.atime = op->atime_ns;
	if (op->mask & PROTO_SA_MTIME)
		o.r.mtime = op->mtime_ns;
	touch_ctime(t, &o.r);
	if (!(op->mask & PROTO_SA_SIZE))
		add_event(t, PROTO_EV_ATTR, o.oid, o.r.dv);
	rc = put_report(t, &o, NULL, NULL);
out:
	obj_release(&o);
	return rc;
}

static int
op_xattr(struct txn *t, const struct proto_op *op)
{
	struct obj o;
	struct xent e;
	size_t off = 0, nlen = op->xname ? strlen(op->xname) : 0, total = 0;
	bool found = false;
	struct xent fe = {0};
	uint8_t *nx = NULL;
	size_t nxlen;
	int rc = obj_get_fid(t->v, &op->fid, &o);

	if (rc)
		return rc == -ENOENT ? fail(t, rc, "no such object") : rc;
	if (nlen == 0 || nlen > PROTO_XATTR_NAME_MAX) {
		rc = fail(t, nlen ? -ENAMETOOLONG : -EINVAL, "bad xattr name");
		goto out;
	}
	if (strncmp(op->xname, "user.", 5)) {
		rc = fail(t, -ENOTSUP, "only user.* xattrs are stored");
		goto out;
	}
	while (xnext(o.x, o.r.xlen, &off, &e)) {
		if (e.nlen == nlen && !memcmp(e.name, op->xname, nlen)) {
			found = true;
			fe = e;
		} else {
			total += e.nlen + 1;
		}
	}
	if (op->kind == PROTO_OP_REMOVEXATTR) {
		if (!found) {
			rc = fail(t, -ENOENT, "no such attribute");
			goto out;
		}
		memmove(o.x + fe.off, o.x + fe.off + fe.reclen,
			o.r.xlen - fe.off - fe.reclen);
		o.r.xlen -= (uint32_t)fe.reclen;
	} else {
		uint32_t vl = (uint32_t)op->xlen;

		if ((op->flags & PROTO_XATTR_CREATE) && found) {
			rc = fail(t, -EEXIST, "attribute exists");
			goto out;
		}
		if ((op->flags & PROTO_XATTR_REPLACE) && !found) {
			rc = fail(t, -ENOENT, "no such attribute");
			goto out;
		}
		if (op->xlen > PROTO_XATTR_VALUE_MAX) {
			rc = fail(t, -E2BIG, "attribute value too large");
			goto out;
		}
		if (total + nlen + 1 > PROTO_XATTR_LIST_MAX) {
			rc = fail(t, -E2BIG, "too many attribute names");
			goto out;
		}
		nxlen = o.r.xlen - (found ? fe.reclen : 0) + 5 + nlen + vl;
		nx = malloc(nxlen);
		if (!nx) {
			rc = -ENOMEM;
			goto out;
		}
		if (found) {
			memcpy(nx, o.x, fe.off);
			memcpy(nx + fe.off, o.x + fe.off + fe.reclen,
			       o.r.xlen - fe.off - fe.reclen);
			off = o.r.xlen - fe.reclen;
		} else {
			if (o.r.xlen)
				memcpy(nx, o.x, o.r.xlen);
			off = o.r.xlen;
		}
		nx[off] = (uint8_t)nlen;
		memcpy(nx + off + 1, op->xname, nlen);
		memcpy(nx + off + 1 + nlen, &vl, 4);
		if (vl)
			memcpy(nx + off + 5 + nlen, op->xvalue, vl);
		free(o.x);
		o.x = nx;
		o.r.xlen = (uint32_t)nxlen;
	}
	touch_ctime(t, &o.r);
	add_event(t, PROTO_EV_ATTR, o.oid, o.r.dv);
	rc = put_report(t, &o, NULL, NULL);
out:
	obj_release(&o);
	return rc;
}

static int
op_store(struct txn *t, const struct proto_op *op)
{
	struct obj o;
	int rc = obj_get_fid(t->v, &op->fid, &o);

	if (rc)
		return rc == -ENOENT ? fail(t, rc, "no such object") : rc;
	if (o.r.type != PROTO_T_FILE) {
		rc = fail(t, o.r.type == PROTO_T_DIR ? -EISDIR : -EINVAL,
			  "not a regular file");
		goto out;
	}
	if (op->base_dv != o.r.dv) {
		t->cur_dv = o.r.dv;
		rc = fail(t, -ECANCELED, "data version changed");
		goto out;
	}
	if (op->size > VS_FILE_MAX) {
		rc = fail(t, -EFBIG, "file too large");
		goto out;
	}
	for (size_t i = 0; i < op->nchunks; i++) {
		char sdir[64], sfile[128];
		struct stat st;

		if (op->data)
			break; /* its one chunk came inline */
		stage_names(sdir, sizeof(sdir), sfile, sizeof(sfile), op->txid,
			    o.oid, op->chunk_size, op->chunks[i]);
		if (fstatat(t->v->dirfd, sfile, &st, 0) < 0) {
			rc = errno == ENOENT ?
				     fail(t, -EINVAL, "a listed chunk was not staged") :
				     -errno;
			goto out;
		}
	}
	rc = data_replace(t, &o, op->size, op);
	if (rc)
		goto out;
	touch_ctime(t, &o.r);
	rc = put_report(t, &o, NULL, NULL);
	/* Staged chunks go after the commit; inline bytes staged nothing
	 * (no staging directory to look at). */
	if (!rc && !op->data)
		t->store = op;
out:
	obj_release(&o);
	return rc;
}

/* Does @op add records to meta.tdb (refused near tdb's limit)? A store
 * that empties a file frees, the others may grow it. */
static bool
op_grows(const struct proto_op *op)
{
	switch (op->kind) {
	case PROTO_OP_CREATE:
	case PROTO_OP_MKDIR:
	case PROTO_OP_SYMLINK:
	case PROTO_OP_MKMOUNT:
	case PROTO_OP_LINK:
	case PROTO_OP_SETXATTR:
		return true;
	case PROTO_OP_STORE:
		return op->size > 0;
	default:
		return false;
	}
}

int
do_op(struct txn *t, const struct proto_op *op)
{
	if (t->v->meta_full && op_grows(op))
		return fail(t, -ENOSPC, "the volume's metadata is near tdb's "
			    "4 GiB limit: the volume must be rewritten (vos "
			    "export, vos import)");
	switch (op->kind) {
	case PROTO_OP_CREATE:
	case PROTO_OP_MKDIR:
	case PROTO_OP_SYMLINK:
	case PROTO_OP_MKMOUNT:
		return op_create(t, op);
	case PROTO_OP_LINK:
		return op_link(t, op);
	case PROTO_OP_UNLINK:
	case PROTO_OP_RMDIR:
		return op_unlink(t, op);
	case PROTO_OP_RENAME:
		return op_rename(t, op);
	case PROTO_OP_SETATTR:
		return op_setattr(t, op);
	case PROTO_OP_SETXATTR:
	case PROTO_OP_REMOVEXATTR:
		return op_xattr(t, op);
	case PROTO_OP_STORE:
		return op_store(t, op);
	default:
		return fail(t, -EINVAL, "unknown operation");
	}
}
