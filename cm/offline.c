/*
 * offline.c - disconnected operation (see offline.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


#include "cm/cm.h"
#include "cm/conn.h"
#include "cm/inode.h"
#include "cm/mcache.h"
#include "cm/mfetch.h"
#include "cm/mut.h"
#include "cm/offline.h"
#include "cm/rlog.h"
#include "cm/vc.h"
#include "cm/wb.h"
#include "common/ctl_proto.h" /* CTL_PATH_MAX */
#include "common/log.h"
#include "common/util.h"

#define PATH_DEPTH_MAX 64
/* records a replay marks INFLIGHT ahead of sending, per durable commit;
 * the ones it never got to stay INFLIGHT (not merged with later changes)
 * and are sent first next time */
#define REINT_WINDOW 64

#define WAIT_MAX_S 3600

/* FID -> u64, open addressing (linear probing), grows at 1/2 full: the
 * replay's DV map and the set of objects whose base is noted are looked
 * up once per record, so a linear list made replay O(records^2). */
struct dvsub {
	struct fid fid;
	uint64_t dv; /* the server's DV after our last replayed change */
	bool used;
};

struct fidmap {
	struct dvsub *slot;
	size_t n, cap; /* cap: 0 or a power of two */
};

static size_t
fidmap_hash(const struct fid *f)
{
	uint64_t h = 1469598103934665603ULL ^ f->vol;

	for (size_t i = 0; i < sizeof(f->oid); i++)
		h = (h ^ f->oid[i]) * 1099511628211ULL;
	return (size_t)h;
}

static struct dvsub *
fidmap_find(const struct fidmap *m, const struct fid *f)
{
	if (!m->cap)
		return NULL;
	for (size_t i = fidmap_hash(f) & (m->cap - 1);;
	     i = (i + 1) & (m->cap - 1)) {
		if (!m->slot[i].used)
			return NULL;
		if (fid_eq(&m->slot[i].fid, f))
			return &m->slot[i];
	}
}

static struct dvsub *
fidmap_put(struct fidmap *m, const struct fid *f, uint64_t dv)
{
	struct dvsub *s = fidmap_find(m, f);
	size_t i;

	if (s) {
		s->dv = dv;
		return s;
	}
	if ((m->n + 1) * 2 > m->cap) {
		size_t nc = m->cap ? m->cap * 2 : 256;
		struct dvsub *ns = calloc(nc, sizeof(*ns));
		struct fidmap grown = {ns, 0, nc};

		if (!ns)
			return NULL;
		for (i = 0; i < m->cap; i++)
			if (m->slot[i].used)
				fidmap_put(&grown, &m->slot[i].fid,
					   m->slot[i].dv);
		free(m->slot);
		*m = grown;
	}
	for (i = fidmap_hash(f) & (m->cap - 1); m->slot[i].used;
	     i = (i + 1) & (m->cap - 1))
		;
	m->slot[i].used = true;
	m->slot[i].fid = *f;
	m->slot[i].dv = dv;
	m->n++;
	return &m->slot[i];
}

static void
fidmap_clear(struct fidmap *m)
{
	free(m->slot);
	memset(m, 0, sizeof(*m));
}

struct offline {
	/* reintegration */
	bool running;
	uint64_t after;
	uint64_t done_recs, total_recs, done_bytes, total_bytes, refused;
	struct fidmap map;   /* replay: FID -> the DV our change produced */
	struct fidmap based; /* FIDs whose base is in replay-base */
	bool based_loaded;
	int mapfd; /* <cache>/replay-dv, the map as it grows (or -1) */
	/* fs reconnect: told at the end of the reintegration */
	offline_reconnected_fn waiter;
	void *waiter_arg;
};

uint64_t
offline_miss_wait_ms(struct cm *cm)
{
	unsigned ms;

	if (!cm->off || !cm->conn || !conn_offline(cm->conn) ||
	    !conn_miss_policy(cm->conn, &ms))
		return 0;
	return ms ? ms : cm->cfg.fetch_timeout_ms;
}

bool
offline_auto(struct cm *cm)
{
	return cm->off != NULL && cm->rlog != NULL;
}

/* --- modes: conn.c switches them, these are its hooks --- */

void
offline_disconnect(struct cm *cm, bool manual, const char *why)
{
	if (cm->off && cm->conn)
		conn_disconnect(cm->conn, manual, why);
}

void
offline_went_offline(void *arg, bool manual, const char *why)
{
	struct cm *cm = arg;

	(void)manual;
	(void)why;
	if (cm->off)
		cm->off->running = false;
	atomic_store(&cm->online, 0);
}

/* --- base metadata: what the server had before our first offline change
 * of an object, for conflict records. Lines "FID SIZE MTIME_NS DV MODE UID
 * GID" in <cache>/replay-base (no fsync: it must outlive the process),
 * read on demand, removed when the log is empty. --- */

static void
base_path(struct cm *cm, char *buf, size_t len)
{
	snprintf(buf, len, "%s/replay-base", cm->cfg.cache_dir);
}

static int
base_find(struct cm *cm, const struct fid *fid, struct proto_attr *out)
{
	char path[4096], line[256], fs[FID_STRLEN];
	unsigned long long size, dv;
	long long mt;
	unsigned mode, uid, gid;
	int rc = -ENOENT;
	FILE *f;

	base_path(cm, path, sizeof(path));
	f = fopen(path, "re");
	if (!f)
		return rc;
	fid_fmt(fid, fs);
	while (fgets(line, sizeof(line), f)) {
		size_t n = strlen(fs);

		if (strncmp(line, fs, n) || line[n] != ' ' ||
		    sscanf(line + n, "%llu %lld %llu %o %u %u", &size, &mt, &dv,
			   &mode, &uid, &gid) != 6)
			continue;
		memset(out, 0, sizeof(*out));
		out->fid = *fid;
		out->size = size;
		out->mtime_ns = mt;
		out->dv = dv;
		out->mode = mode;
		out->uid = uid;
		out->gid = gid;
		rc = 0; /* the first line of a FID is its base */
		break;
	}
	fclose(f);
	return rc;
}

void
offline_note_base(struct cm *cm, const struct fid *fid,
		  const struct proto_attr *known)
{
	char path[4096], line[256], fs[FID_STRLEN];
	struct proto_attr a;
	int fd, n;

	if (known)
		a = *known;
	else if (!cm->off || mcache_attr(cm->mc, fid, &a) < 0)
		return;
	if (!cm->off || (a.dv & CM_DV_LOCAL))
		return;
	base_path(cm, path, sizeof(path));
	if (!cm->off->based_loaded) {
		/* the FIDs already noted (a restart while disconnected) */
		FILE *f = fopen(path, "re");
		char l[256];
		struct fid nf;

		cm->off->based_loaded = true;
		while (f && fgets(l, sizeof(l), f))
			if (strchr(l, ' ') &&
			    fid_parse_n(l, (size_t)(strchr(l, ' ') - l), &nf) ==
				    0)
				fidmap_put(&cm->off->based, &nf, 0);
		if (f)
			fclose(f);
	}
	if (fidmap_find(&cm->off->based, fid))
		return;
	fidmap_put(&cm->off->based, fid, 0);
	n = snprintf(line, sizeof(line), "%s %llu %lld %llu %o %u %u\n",
		     fid_fmt(fid, fs), (unsigned long long)a.size,
		     (long long)a.mtime_ns, (unsigned long long)a.dv,
		     (unsigned)a.mode, (unsigned)a.uid, (unsigned)a.gid);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, line, (size_t)n) != n)
		log_warn(LOG_OFF, "cannot note base metadata: %s",
			 strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* --- paths noted at append time: the names an offline change was about
 * may be gone by the time it is refused (a directory removed on the
 * server, an inode the kernel forgot). Lines "SEQ<TAB>PATH" in
 * <cache>/replay-paths, the last line of a seq wins. --- */


static void
paths_file(struct cm *cm, char *buf, size_t len)
{
	snprintf(buf, len, "%s/replay-paths", cm->cfg.cache_dir);
}

void
offline_note_path(struct cm *cm, uint64_t seq, const struct proto_op *op)
{
	char file[4096], path[CTL_PATH_MAX], line[CTL_PATH_MAX + 32];
	int fd, n;

	if (!seq)
		return;
	offline_op_path(cm, op, path, sizeof(path));
	if (!path[0] || strchr(path, '\n'))
		return;
	n = snprintf(line, sizeof(line), "%llu\t%s\n", (unsigned long long)seq,
		     path);
	if (n < 0 || n >= (int)sizeof(line))
		return;
	paths_file(cm, file, sizeof(file));
	fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, line, (size_t)n) != n)
		log_warn(LOG_OFF, "cannot note the path of a change: %s",
			 strerror(errno));
	if (fd >= 0)
		close(fd);
}

int
offline_path_noted(struct cm *cm, uint64_t seq, char *buf, size_t len)
{
	char file[4096], line[CTL_PATH_MAX + 32];
	int rc = -ENOENT;
	FILE *f;

	paths_file(cm, file, sizeof(file));
	f = fopen(file, "re");
	if (!f)
		return rc;
	while (fgets(line, sizeof(line), f)) {
		char *tab = strchr(line, '\t'), *nl;

		if (!tab || strtoull(line, NULL, 10) != seq)
			continue;
		nl = strchr(tab + 1, '\n');
		if (nl)
			*nl = '\0';
		if (strlen(tab + 1) < len) {
			strcpy(buf, tab + 1);
			rc = 0;
		}
	}
	fclose(f);
	return rc;
}

/* --- local application --- */

static int
cached_listing(struct cm *cm, const struct fid *dir, struct vc_dir **d)
{
	int rc = mcache_dir(cm->mc, dir, d);

	if (rc == -ENOTDIR)
		return rc;
	/* Not cached: nothing can be decided about its names offline. */
	return rc < 0 ? -EIO : 0;
}

/* The FID and type of @name in directory @dir: 0, -ENOENT, -EIO. */
int
offline_lookup_name(struct cm *cm, const struct fid *dir, const char *name,
		    struct fid *fid, enum proto_type *type)
{
	struct vc_dir *d;
	long idx;
	int rc = cached_listing(cm, dir, &d);

	if (rc < 0)
		return rc;
	idx = vc_dir_find(d, name, strlen(name));
	if (idx >= 0) {
		if (fid)
			*fid = d->ents[idx].fid;
		if (type)
			*type = (enum proto_type)d->ents[idx].type;
	}
	vc_dir_put(d);
	return idx >= 0 ? 0 : -ENOENT;
}

static int
dir_is_empty(struct cm *cm, const struct fid *dir)
{
	struct vc_dir *d;
	int rc = cached_listing(cm, dir, &d);

	if (rc < 0)
		return rc;
	rc = d->n == 0 ? 0 : -ENOTEMPTY;
	vc_dir_put(d);
	return rc;
}

static void
now_times(struct proto_attr *a, bool m)
{
	int64_t t = util_wall_ns();

	a->ctime_ns = t;
	if (m)
		a->mtime_ns = t;
}

/* One less name for @fid (unlink, rmdir, rename over it); fills @out. */
static void
drop_name(struct cm *cm, const struct fid *fid, bool is_dir, bool commit,
	  struct proto_attr *out)
{
	struct proto_attr a;

	if (mcache_attr(cm->mc, fid, &a) < 0) {
		memset(&a, 0, sizeof(a));
		a.fid = *fid;
	}
	a.nlink = is_dir || a.nlink <= 1 ? 0 : a.nlink - 1;
	now_times(&a, false);
	*out = a;
	if (!commit)
		return;
	if (a.nlink > 0)
		mcache_offline_attr(cm->mc, &a);
	else
		wb_gone(cm, fid);
}

static int
apply_xattr(struct cm *cm, const struct proto_op *op, bool commit,
	    struct proto_op_result *r)
{
	struct proto_xattr *x = NULL, *nx;
	struct proto_attr a;
	size_t n = 0, i, m = 0;
	int64_t stamp;
	int rc;

	if (mcache_attr(cm->mc, &op->fid, &a) < 0)
		return -EIO;
	rc = vc_get_xattrs(cm->vc, &op->fid, &stamp, &x, &n);
	if (rc < 0 || stamp != a.ctime_ns) {
		proto_xattrs_free(x, n);
		return -EIO; /* not known offline */
	}
	for (i = 0; i < n && strcmp(x[i].name, op->xname); i++)
		;
	if (op->kind == PROTO_OP_SETXATTR) {
		if (i < n && (op->flags & PROTO_XATTR_CREATE))
			rc = -EEXIST;
		else if (i == n && (op->flags & PROTO_XATTR_REPLACE))
			rc = -ENODATA;
	} else if (i == n) {
		rc = -ENODATA;
	}
	if (rc < 0 || !commit) {
		proto_xattrs_free(x, n);
		return rc;
	}
	nx = calloc(n + 1, sizeof(*nx));
	if (!nx) {
		proto_xattrs_free(x, n);
		return -ENOMEM;
	}
	for (size_t j = 0; j < n; j++)
		if (j != i)
			nx[m++] = x[j];
		else
			free(x[j].name), free(x[j].value);
	if (op->kind == PROTO_OP_SETXATTR) {
		nx[m].name = strdup(op->xname);
		nx[m].value = malloc(op->xlen ? op->xlen : 1);
		if (nx[m].name && nx[m].value) {
			memcpy(nx[m].value, op->xvalue, op->xlen);
			nx[m].len = op->xlen;
			m++;
		} else {
			free(nx[m].name);
			free(nx[m].value);
		}
	}
	free(x);
	now_times(&a, false);
	vc_put_xattrs(cm->vc, &op->fid, a.ctime_ns, nx, m);
	proto_xattrs_free(nx, m);
	mcache_offline_attr(cm->mc, &a);
	r->has_attr = true;
	r->attr = a;
	return 0;
}

/*
 * Check @op against what the caches hold (the server's errors, decided
 * locally) and, with @commit, apply it as the server would and fill @r.
 */
static int
local_apply(struct cm *cm, const struct proto_op *op, bool commit,
	    struct proto_op_result *r)
{
	struct proto_attr a, pa;
	struct fid f, victim;
	enum proto_type t = PROTO_T_NONE, vt = PROTO_T_NONE;
	int rc;

	memset(r, 0, sizeof(*r));
	switch (op->kind) {
	case PROTO_OP_CREATE:
	case PROTO_OP_MKDIR:
	case PROTO_OP_SYMLINK:
		rc = offline_lookup_name(cm, &op->parent, op->name, NULL, NULL);
		if (rc == 0)
			return -EEXIST;
		if (rc != -ENOENT)
			return rc;
		if (!commit)
			return 0;
		memset(&a, 0, sizeof(a));
		a.fid = op->fid;
		a.type = op->kind == PROTO_OP_MKDIR	? PROTO_T_DIR
			 : op->kind == PROTO_OP_SYMLINK ? PROTO_T_SYMLINK
							: op->type;
		a.mode = op->mode & 07777;
		a.uid = op->uid;
		a.gid = op->gid;
		a.nlink = a.type == PROTO_T_DIR ? 2 : 1;
		a.size = op->target ? strlen(op->target) : 0;
		a.dv = mcache_local_dv(cm->mc);
		a.atime_ns = util_wall_ns();
		a.mtime_ns = a.ctime_ns = a.atime_ns;
		mcache_offline_attr(cm->mc, &a);
		if (a.type == PROTO_T_DIR)
			mcache_offline_newdir(cm->mc, &a);
		if (op->target)
			vc_put_link(cm->vc, &a.fid, op->target);
		rc = mcache_offline_dir(cm->mc, &op->parent, NULL, op->name, &a,
					a.type == PROTO_T_DIR ? 1 : 0,
					&r->parent);
		r->has_attr = true;
		r->attr = a;
		r->has_parent = rc == 0;
		return rc;
	case PROTO_OP_LINK:
		rc = offline_lookup_name(cm, &op->parent, op->name, NULL, NULL);
		if (rc == 0)
			return -EEXIST;
		if (rc != -ENOENT)
			return rc;
		if (mcache_attr(cm->mc, &op->fid, &a) < 0)
			return -EIO;
		if (a.type == PROTO_T_DIR)
			return -EPERM;
		if (!commit)
			return 0;
		a.nlink++;
		now_times(&a, false);
		mcache_offline_attr(cm->mc, &a);
		rc = mcache_offline_dir(cm->mc, &op->parent, NULL, op->name, &a,
					0, &r->parent);
		r->has_attr = true;
		r->attr = a;
		r->has_parent = rc == 0;
		return rc;
	case PROTO_OP_UNLINK:
	case PROTO_OP_RMDIR:
		rc = offline_lookup_name(cm, &op->parent, op->name, &f, &t);
		if (rc < 0)
			return rc;
		if (op->kind == PROTO_OP_RMDIR) {
			if (t != PROTO_T_DIR)
				return -ENOTDIR;
			rc = dir_is_empty(cm, &f);
			if (rc < 0)
				return rc;
		} else if (t == PROTO_T_DIR) {
			return -EISDIR;
		}
		if (!commit)
			return 0;
		drop_name(cm, &f, t == PROTO_T_DIR, true, &r->victim);
		r->has_victim = true;
		rc = mcache_offline_dir(cm->mc, &op->parent, op->name, NULL,
					NULL, t == PROTO_T_DIR ? -1 : 0,
					&r->parent);
		r->has_parent = rc == 0;
		return rc;
	case PROTO_OP_RENAME: {
		bool exch = op->flags & PROTO_RENAME_EXCHANGE;
		bool have_victim;
		struct proto_attr va;

		rc = offline_lookup_name(cm, &op->parent, op->name, &f, &t);
		if (rc < 0)
			return rc;
		rc = offline_lookup_name(cm, &op->newparent, op->newname, &victim, &vt);
		if (rc < 0 && rc != -ENOENT)
			return rc;
		have_victim = rc == 0;
		if (have_victim && fid_eq(&f, &victim))
			return 0; /* two names of one object */
		if ((op->flags & PROTO_RENAME_NOREPLACE) && have_victim)
			return -EEXIST;
		if (exch && !have_victim)
			return -ENOENT;
		if (have_victim && !exch) {
			if (vt == PROTO_T_DIR && t != PROTO_T_DIR)
				return -EISDIR;
			if (vt != PROTO_T_DIR && t == PROTO_T_DIR)
				return -ENOTDIR;
			if (vt == PROTO_T_DIR &&
			    (rc = dir_is_empty(cm, &victim)) < 0)
				return rc;
		}
		if (mcache_attr(cm->mc, &f, &a) < 0)
			return -EIO;
		if (!commit)
			return 0;
		now_times(&a, false);
		mcache_offline_attr(cm->mc, &a);
		r->has_attr = true;
		r->attr = a;
		if (exch) {
			if (mcache_attr(cm->mc, &victim, &va) < 0)
				return -EIO;
			mcache_offline_dir(cm->mc, &op->parent, NULL, op->name,
					   &va, 0, &r->parent);
			mcache_offline_dir(cm->mc, &op->newparent, NULL,
					   op->newname, &a, 0, &r->newparent);
			r->has_victim = true;
			r->victim = va;
			r->has_parent = r->has_newparent = true;
			return 0;
		}
		if (have_victim) {
			drop_name(cm, &victim, vt == PROTO_T_DIR, true,
				  &r->victim);
			r->has_victim = true;
		}
		if (fid_eq(&op->parent, &op->newparent)) {
			rc = mcache_offline_dir(
				cm->mc, &op->parent, op->name, op->newname, &a,
				have_victim && vt == PROTO_T_DIR ? -1 : 0,
				&r->parent);
			r->has_parent = rc == 0;
			return rc;
		}
		rc = mcache_offline_dir(cm->mc, &op->parent, op->name, NULL,
					NULL, t == PROTO_T_DIR ? -1 : 0,
					&r->parent);
		if (rc == 0)
			rc = mcache_offline_dir(
				cm->mc, &op->newparent, NULL, op->newname, &a,
				t == PROTO_T_DIR && !(have_victim &&
						      vt == PROTO_T_DIR)
					? 1
					: 0,
				&r->newparent);
		r->has_parent = r->has_newparent = rc == 0;
		return rc;
	}
	case PROTO_OP_SETATTR:
		if (mcache_attr(cm->mc, &op->fid, &a) < 0)
			return -EIO;
		if (!commit)
			return 0;
		if (op->mask & PROTO_SA_MODE)
			a.mode = op->mode & 07777;
		if (op->mask & PROTO_SA_UID)
			a.uid = op->uid;
		if (op->mask & PROTO_SA_GID)
			a.gid = op->gid;
		if (op->mask & PROTO_SA_SIZE)
			a.size = op->size;
		if (op->mask & PROTO_SA_ATIME)
			a.atime_ns = op->atime_ns;
		if (op->mask & PROTO_SA_MTIME)
			a.mtime_ns = op->mtime_ns;
		now_times(&a, (op->mask & PROTO_SA_SIZE) &&
				      !(op->mask & PROTO_SA_MTIME));
		mcache_offline_attr(cm->mc, &a);
		r->has_attr = true;
		r->attr = a;
		return 0;
	case PROTO_OP_SETXATTR:
	case PROTO_OP_REMOVEXATTR:
		return apply_xattr(cm, op, commit, r);
	case PROTO_OP_STORE:
		/* wb.c logs stores itself; an absorbed one lands here. */
		if (commit)
			wb_absorbed(cm, op);
		if (mcache_attr(cm->mc, &op->fid, &pa) == 0) {
			r->has_attr = true;
			r->attr = pa;
		}
		return 0;
	default:
		return -EINVAL;
	}
}

/* --- mutations while disconnected --- */

struct oreq {
	struct cm_job job;
	struct proto_op op;
	mut_done_fn done;
	void *arg;
};

static void
oreq_run(struct cm_loop *loop, struct cm_job *job)
{
	struct cm *cm = cm_of_loop(loop);
	struct oreq *q = (struct oreq *)job;
	struct proto_op_result r;
	struct rlog_effect eff;
	int rc;

	rc = cm_stopping(&cm->loop) ? -EIO : local_apply(cm, &q->op, false, &r);
	if (rc == 0) {
		rc = rlog_append_ex(cm->rlog, &q->op, 0, &eff);
		if (rc == 0)
			offline_note_path(cm, eff.seq, &q->op);
		if (rc == 0) {
			/* A FID created in the log and now removed leaves
			 * nothing: drop what is local about it. */
			for (size_t i = 0; i < eff.nchanges; i++)
				if (eff.changes[i].why == RLOG_WHY_IDENTITY)
					wb_gone(cm, &eff.changes[i].fid);
		} else {
			log_err(LOG_OFF, "cannot log %s: %s",
				proto_op_name(q->op.kind), strerror(-rc));
			rc = rc == -ENOSPC ? -ENOSPC : -EIO;
		}
		rlog_effect_release(&eff);
	}
	if (rc == 0) {
		offline_note_base(cm, &q->op.fid, NULL);
		rc = local_apply(cm, &q->op, true, &r);
	}
	q->done(cm, q->arg, rc, rc ? NULL : &r);
	proto_op_release(&q->op);
	free(q);
}

int
offline_submit(struct cm *cm, const struct proto_op *op, mut_done_fn done,
	       void *arg)
{
	struct oreq *q;

	if (!cm->rlog)
		return -EIO;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	if (mut_op_copy(&q->op, op) < 0) {
		free(q);
		return -ENOMEM;
	}
	q->done = done;
	q->arg = arg;
	q->job.run = oreq_run;
	cm_post(&cm->loop, &q->job);
	return 0;
}

void
offline_absorb(struct cm *cm, const struct proto_op *op, mut_done_fn done,
	       void *arg)
{
	struct proto_op_result r;
	int rc;

	offline_disconnect(cm, false, "the server does not answer");
	rc = local_apply(cm, op, false, &r);
	if (rc == 0)
		rc = local_apply(cm, op, true, &r);
	done(cm, arg, rc, rc ? NULL : &r);
}

/* --- reintegration --- */

static struct dvsub *
map_find(struct offline *o, const struct fid *fid)
{
	return fidmap_find(&o->map, fid);
}

static void
map_put(struct offline *o, const struct fid *fid, uint64_t dv)
{
	if (!fidmap_put(&o->map, fid, dv))
		log_warn(LOG_OFF, "out of memory for the replay DV map");
}

/*
 * The map is also appended to <cache>/replay-dv ("FID DV" lines, no
 * fsync: it must outlive the process, not the machine), so a cairnd killed
 * in the middle of a reintegration still knows, when it goes on, which
 * DVs its own replayed changes produced. Removed when the log is empty.
 */
static void
map_path(struct cm *cm, char *buf, size_t len)
{
	snprintf(buf, len, "%s/replay-dv", cm->cfg.cache_dir);
}

static void
map_set(struct cm *cm, const struct fid *fid, uint64_t dv)
{
	struct offline *o = cm->off;
	char line[FID_STRLEN + 32], fs[FID_STRLEN];
	int n;

	map_put(o, fid, dv);
	if (o->mapfd < 0)
		return;
	n = snprintf(line, sizeof(line), "%s %llu\n", fid_fmt(fid, fs),
		     (unsigned long long)dv);
	if (write(o->mapfd, line, (size_t)n) != n)
		log_warn(LOG_OFF, "cannot write the replay DV map: %s",
			 strerror(errno));
}

static void
map_open(struct cm *cm)
{
	struct offline *o = cm->off;
	char path[4096], line[128];
	FILE *f;

	map_path(cm, path, sizeof(path));
	f = fopen(path, "re");
	if (f) {
		while (fgets(line, sizeof(line), f)) {
			char *sp = strchr(line, ' ');
			unsigned long long dv;
			struct fid fid;

			if (sp &&
			    fid_parse_n(line, (size_t)(sp - line), &fid) == 0 &&
			    sscanf(sp + 1, "%llu", &dv) == 1)
				map_put(o, &fid, dv);
		}
		fclose(f);
		if (o->map.n)
			log_info(LOG_OFF,
				 "going on with a reintegration a "
				 "restart cut short (%zu objects "
				 "already replayed)",
				 o->map.n);
	}
	o->mapfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

static void
map_close(struct cm *cm, bool remove)
{
	struct offline *o = cm->off;
	char path[4096];

	if (o->mapfd >= 0)
		close(o->mapfd);
	o->mapfd = -1;
	fidmap_clear(&o->map);
	if (remove) {
		map_path(cm, path, sizeof(path));
		unlink(path);
	}
}

/* The path of @fid below the mount, from the names the inode table knows
 * (best effort; the FID when unknown). @return 0, or -ENOENT when @buf
 * holds the FID or a cut path rather than a mount path. */
static int
path_of(struct cm *cm, const struct fid *fid, char *buf, size_t len)
{
	char name[PROTO_NAME_MAX + 1], tmp[CTL_PATH_MAX];
	struct fid cur = *fid, parent;
	int depth = 0;

	buf[0] = '\0';
	while (!fid_eq(&cur, &cm->vi.root) && depth++ < PATH_DEPTH_MAX) {
		if (ino_name_of(cm->ino, &cur, &parent, name, sizeof(name)) <
			    0 &&
		    wb_name_of(cm, &cur, &parent, name, sizeof(name)) < 0) {
			char fs[FID_STRLEN];

			snprintf(buf, len, "%s", fid_fmt(fid, fs));
			return -ENOENT;
		}
		if (snprintf(tmp, sizeof(tmp), "%s%s%s", name,
			     buf[0] ? "/" : "", buf) >= (int)sizeof(tmp) ||
		    snprintf(buf, len, "%s", tmp) >= (int)len)
			return -ENOENT; /* too deep to show whole */
		cur = parent;
	}
	return fid_eq(&cur, &cm->vi.root) ? 0 : -ENOENT;
}

/* The path an op is about: the object, or the name it makes. @return 0,
 * or -ENOENT when it is not a whole mount path (see path_of()). */
int
offline_op_path(struct cm *cm, const struct proto_op *op, char *buf,
		size_t len)
{
	char dir[CTL_PATH_MAX];
	int rc;

	switch (op->kind) {
	case PROTO_OP_CREATE:
	case PROTO_OP_MKDIR:
	case PROTO_OP_SYMLINK:
	case PROTO_OP_LINK:
	case PROTO_OP_UNLINK:
	case PROTO_OP_RMDIR:
	case PROTO_OP_RENAME:
		rc = path_of(cm, &op->parent, dir, sizeof(dir));
		if (snprintf(buf, len, "%s%s%s", dir, dir[0] ? "/" : "",
			     op->name ? op->name : "") >= (int)len) {
			buf[0] = '\0'; /* too long to show */
			return -ENOENT;
		}
		return rc;
	default:
		return path_of(cm, &op->fid, buf, len);
	}
}

static enum rlog_conflict_kind
conflict_kind(const struct proto_op *op, int err)
{
	switch (-err) {
	case ESTALE:
		return op->kind == PROTO_OP_STORE ||
				       op->kind == PROTO_OP_SETATTR
			       ? RLOG_CF_STALE_DV
			       : RLOG_CF_NAME_CHANGED;
	case EEXIST:
		return RLOG_CF_NAME_EXISTS;
	case ENOTEMPTY:
		return RLOG_CF_NOT_EMPTY;
	case ENOSPC:
	case EDQUOT:
		return RLOG_CF_NO_SPACE;
	case ENOENT:
		return op->kind == PROTO_OP_CREATE ||
				       op->kind == PROTO_OP_MKDIR ||
				       op->kind == PROTO_OP_SYMLINK
			       ? RLOG_CF_PARENT_GONE
			       : RLOG_CF_OBJECT_GONE;
	default:
		return RLOG_CF_REFUSED;
	}
}

struct rctx {
	struct cm *cm;
	uint64_t seq;
	struct proto_op op; /* a copy, for the conflict record */
	int err;
	uint64_t nbytes;
	bool has_local; /* the local view when it was refused */
	struct proto_attr local;
	char path[CTL_PATH_MAX]; /* what the change is about */
	char *copy;		 /* the conflict copy's name, or NULL */
};

static void reint_next(struct cm *cm);

static void
rctx_free(struct rctx *c)
{
	proto_op_release(&c->op);
	free(c->copy);
	free(c);
}

/* Record a refusal as a CONFLICT (with the copy's path, if one was made)
 * and go on. */
static void
reint_record(struct cm *cm, struct rctx *c, const struct proto_attr *srv)
{
	struct offline *o = cm->off;
	const char *copy = c->copy;
	struct rlog_conflict cf;
	char path[CTL_PATH_MAX], cpath[CTL_PATH_MAX + PROTO_NAME_MAX + 2];
	char msg[CTL_PATH_MAX + PROTO_NAME_MAX + 128];
	int rc;

	memset(&cf, 0, sizeof(cf));
	cf.kind = conflict_kind(&c->op, c->err);
	cf.err = -c->err;
	snprintf(path, sizeof(path), "%s", c->path);
	if (copy) {
		char dir[CTL_PATH_MAX];
		const char *slash = strrchr(path, '/');

		snprintf(dir, sizeof(dir), "%.*s",
			 slash ? (int)(slash - path) : 0, path);
		if (snprintf(cpath, sizeof(cpath), "%s%s%s", dir,
			     dir[0] ? "/" : "", copy) >= (int)sizeof(cpath) ||
		    snprintf(msg, sizeof(msg),
			     "%s; the local version is saved as '%s'",
			     strerror(-c->err), cpath) >= (int)sizeof(msg))
			snprintf(msg, sizeof(msg), "%s", strerror(-c->err));
	} else {
		snprintf(msg, sizeof(msg), "%s", strerror(-c->err));
	}
	cf.msg = msg;
	/* local.path: the path the change is about (fs conflicts, fs
	 * resolve match on it). */
	cf.local.path = path;
	cf.local.dv = c->op.base_dv;
	if (c->has_local) {
		cf.local.size = c->local.size;
		cf.local.mtime_ns = c->local.mtime_ns;
	}
	if (base_find(cm, &c->op.fid, &cf.base) == 0)
		cf.has_base = true;
	if (srv) {
		cf.has_server = true;
		cf.server = *srv;
	}
	rc = rlog_conflict_add(cm->rlog, c->seq, &cf);
	if (rc < 0)
		log_err(LOG_OFF,
			"cannot record a conflict for record %llu: "
			"%s",
			(unsigned long long)c->seq, strerror(-rc));
	o->refused++;
	log_warn(LOG_OFF, "conflict: %s '%s' refused by the server (%s)%s",
		 proto_op_name(c->op.kind), path, strerror(-c->err),
		 copy ? "; local data saved as a conflict copy" : "");
	rctx_free(c);
	reint_next(cm);
}

/* The server's version of the object, fetched: record the conflict. */
static void
reint_server_attr(void *arg, int err)
{
	struct rctx *c = arg;
	struct cm *cm = c->cm;
	struct proto_attr a;

	if (!cm->off || cm_stopping(&cm->loop)) {
		rctx_free(c);
		return;
	}
	reint_record(cm, c,
		     !err && mcache_attr(cm->mc, &c->op.fid, &a) == 0 ? &a
								      : NULL);
}

static void
reint_conflict(struct cm *cm, struct rctx *c, const char *copy)
{
	if (copy)
		c->copy = strdup(copy);
	/* What we cache of it is our own view: ask the server. */
	mcache_drop_attr(cm->mc, &c->op.fid);
	mfetch_want_attr(cm->mf, &c->op.fid, reint_server_attr, c);
}

static void
reint_copied(struct cm *cm, void *arg, int err, const char *copy)
{
	struct rctx *c = arg;

	if (err)
		log_err(LOG_OFF,
			"the local version of a refused store could "
			"not be saved (%s): it stays in the cache",
			strerror(-err));
	reint_conflict(cm, c, err ? NULL : copy);
}

static void
reint_done(struct cm *cm, void *arg, int err, const struct proto_op_result *r)
{
	struct rctx *c = arg;
	struct offline *o = cm->off;

	if (!o || cm_stopping(&cm->loop)) {
		rctx_free(c);
		return;
	}
	if (!err) {
		o->done_recs++;
		o->done_bytes += c->nbytes;
		if (r && r->has_attr && c->op.kind != PROTO_OP_UNLINK &&
		    c->op.kind != PROTO_OP_RMDIR)
			map_set(cm, &r->attr.fid, r->attr.dv);
		rctx_free(c);
		reint_next(cm);
		return;
	}
	if (err == -EHOSTUNREACH || err == -ECANCELED || err == -EIO) {
		/* No answer (or not a real one): stop here; the record
		 * stays and is sent first next time. */
		rctx_free(c);
		o->after = 0;
		offline_disconnect(cm, false,
				   "the server was lost while "
				   "reintegrating");
		return;
	}
	c->err = err;
	c->has_local = mcache_attr(cm->mc, &c->op.fid, &c->local) == 0;
	/* as noted when it was logged, or now, while the write state still
	 * knows the file's name */
	if (offline_path_noted(cm, c->seq, c->path, sizeof(c->path)) < 0)
		offline_op_path(cm, &c->op, c->path, sizeof(c->path));
	if (c->op.kind == PROTO_OP_STORE) {
		wb_conflict_copy(cm, &c->op.fid, reint_copied, c);
		return;
	}
	reint_conflict(cm, c, NULL);
}

static void
reint_finish(struct cm *cm)
{
	struct offline *o = cm->off;
	struct rlog_stats st;

	o->running = false;
	conn_reintegrated(cm->conn);
	atomic_store(&cm->online, 1);
	map_close(cm, true);
	memset(&st, 0, sizeof(st));
	rlog_stats(cm->rlog, &st);
	if (!st.conflicts) {
		char path[4096];

		base_path(cm, path, sizeof(path));
		unlink(path);
		fidmap_clear(&o->based);
		o->based_loaded = false;
		paths_file(cm, path, sizeof(path));
		unlink(path);
	}
	log_info(LOG_OFF,
		 "connected: %llu records replayed, %llu refused "
		 "(%llu conflicts to resolve)",
		 (unsigned long long)o->done_recs,
		 (unsigned long long)o->refused,
		 (unsigned long long)st.conflicts);
	/* Everything made or changed offline carries a local DV: take the
	 * server's view of it all. */
	mfetch_revalidate_all(cm->mf);
	wb_resume(cm);
	if (o->waiter) {
		offline_reconnected_fn fn = o->waiter;

		o->waiter = NULL;
		fn(o->waiter_arg, 0, o->done_recs, o->refused, st.conflicts);
	}
}

static void
reint_next(struct cm *cm)
{
	struct offline *o = cm->off;
	struct rlog_rec rec;
	struct rctx *c;
	struct dvsub *s;
	uint64_t src;
	int rc;

	if (!o || cm_stopping(&cm->loop) ||
	    conn_mode(cm->conn) != CM_REINTEGRATING)
		return;
	rc = rlog_next(cm->rlog, o->after,
		       RLOG_MASK(RLOG_PENDING) | RLOG_MASK(RLOG_INFLIGHT),
		       &rec);
	if (rc < 0) {
		reint_finish(cm);
		return;
	}
	o->after = rec.seq;
	c = calloc(1, sizeof(*c));
	if (!c || mut_op_copy(&c->op, &rec.op) < 0) {
		free(c);
		rlog_rec_release(&rec);
		o->after = 0;
		offline_disconnect(cm, false, "out of memory");
		return;
	}
	c->cm = cm;
	c->seq = rec.seq;
	c->nbytes = rec.nbytes;
	src = rec.op.base_dv;
	/* Based on our own earlier change: the DV the server gave it. An
	 * object made offline (a local DV) whose create went before a
	 * restart: the DV the create's reply stored in the cache. */
	s = map_find(o, &rec.op.fid);
	if (rec.op.kind == PROTO_OP_STORE || rec.op.kind == PROTO_OP_SETATTR) {
		struct proto_attr ca;

		if (s)
			rec.op.base_dv = s->dv;
		else if ((rec.op.base_dv & CM_DV_LOCAL) &&
			 mcache_attr(cm->mc, &rec.op.fid, &ca) == 0 &&
			 !(ca.dv & CM_DV_LOCAL))
			rec.op.base_dv = ca.dv;
	}
	/* INFLIGHT before any byte leaves: a window of records ahead in one
	 * commit, not a durable commit per record. */
	if (rec.state == RLOG_PENDING &&
	    (rc = rlog_set_inflight_run(cm->rlog, rec.seq, REINT_WINDOW,
					NULL)) < 0) {
		log_err(LOG_OFF, "cannot mark record %llu in flight: %s",
			(unsigned long long)rec.seq, strerror(-rc));
		rlog_rec_release(&rec);
		rctx_free(c);
		o->after = 0;
		offline_disconnect(cm, false,
				   "the replay log cannot be written");
		return;
	}
	log_debug(LOG_OFF, "replaying %s (record %llu)",
		  proto_op_name(rec.op.kind), (unsigned long long)rec.seq);
	if (rec.op.kind == PROTO_OP_STORE)
		rc = wb_replay_store(cm, rec.seq, &rec.op, src, reint_done, c);
	else
		rc = mut_send_replay(cm, rec.seq, &rec.op, reint_done, c);
	rlog_rec_release(&rec);
	if (rc < 0) {
		rctx_free(c);
		o->after = 0;
		offline_disconnect(cm, false, "cannot send the replay log");
	}
}

/* conn.c's hook: now REINTEGRATING (a probe answered, or fs reconnect). */
void
offline_reintegrate(void *arg)
{
	struct cm *cm = arg;
	struct offline *o = cm->off;
	struct rlog_stats st;

	if (!o)
		return;
	memset(&st, 0, sizeof(st));
	rlog_stats(cm->rlog, &st);
	o->running = true;
	o->after = 0;
	o->done_recs = o->done_bytes = o->refused = 0;
	o->total_recs = st.pending + st.inflight;
	o->total_bytes = st.data_bytes;
	if (o->mapfd < 0)
		map_open(cm);
	log_info(LOG_OFF, "reintegrating %llu records (%llu bytes)",
		 (unsigned long long)o->total_recs,
		 (unsigned long long)o->total_bytes);
	reint_next(cm);
}

/* --- setup --- */

int
offline_new(struct cm *cm)
{
	struct offline *o = calloc(1, sizeof(*o));

	if (!o)
		return -ENOMEM;
	o->mapfd = -1;
	cm->off = o;
	return 0;
}

void
offline_free(struct cm *cm)
{
	struct offline *o = cm->off;

	if (!o)
		return;
	if (o->waiter)
		o->waiter(o->waiter_arg, -ESHUTDOWN, 0, 0, 0);
	map_close(cm, false);
	fidmap_clear(&o->based);
	cm->off = NULL;
	free(o);
}

/* --- for the control handlers (ctl_offline.c) --- */

bool
offline_get_state(struct cm *cm, struct offline_state *s)
{
	struct offline *off = cm->off;
	unsigned w;

	memset(s, 0, sizeof(*s));
	s->mode = cm->conn ? conn_mode(cm->conn) : CM_CONNECTED;
	if (!off || !cm->conn)
		return false;
	s->since_ms = conn_since_ms(cm->conn);
	s->manual = conn_manual(cm->conn);
	s->miss_wait = conn_miss_policy(cm->conn, &w);
	s->wait_s = (w ? w : (unsigned)cm->cfg.fetch_timeout_ms) / 1000;
	s->done_recs = off->done_recs;
	s->total_recs = off->total_recs;
	s->done_bytes = off->done_bytes;
	s->total_bytes = off->total_bytes;
	return true;
}

int
offline_reconnect(struct cm *cm, offline_reconnected_fn done, void *arg)
{
	struct offline *o = cm->off;

	if (!o || !cm->conn)
		return -EIO;
	if (o->waiter)
		return -EBUSY;
	if (conn_mode(cm->conn) == CM_CONNECTED)
		return 1;
	o->waiter = done;
	o->waiter_arg = arg;
	/* a reintegration already running (-EINPROGRESS) tells the waiter
	 * when it ends, like one this starts (offline_reintegrate()) */
	conn_reconnect(cm->conn);
	/* told by reint_finish(), or here if it stopped at once */
	if (o->waiter && conn_mode(cm->conn) == CM_DISCONNECTED) {
		o->waiter = NULL;
		return -EHOSTUNREACH;
	}
	return 0;
}

void
offline_set_miss_policy(struct cm *cm, bool wait, unsigned wait_s)
{
	conn_set_miss_policy(cm->conn, wait, wait_s * 1000);
}
