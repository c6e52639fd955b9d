/*
 * conflict.c - conflicts (see conflict.h): the records that explain a
 * refused change of reintegration, and conflict copies, the local version
 * of a file whose store the server refused, saved beside it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chunkstore/cs.h"
#include "cm/cm.h"
#include "cm/conflict.h"
#include "cm/fidmap.h"
#include "cm/http.h"
#include "cm/inode.h"
#include "cm/mcache.h"
#include "cm/mut.h"
#include "cm/rlog.h"
#include "cm/stats.h"
#include "cm/wb.h"
#include "cm/wb_i.h"
#include "common/ctl_proto.h" /* CTL_PATH_MAX */
#include "common/log.h"
#include "common/util.h"


#define PATH_DEPTH_MAX 64

/* --- conflict records --- */

/* --- base metadata: what the server had before our first offline change
 * of an object, for conflict records. Lines "FID SIZE MTIME_NS DV MODE UID
 * GID" in <cache>/replay-base (no fsync: it must outlive the process),
 * read on demand, removed when the log is empty. --- */

static void
base_path(struct wb *wb, char *buf, size_t len)
{
	snprintf(buf, len, "%s/replay-base", wb->d.cache_dir);
}

int
conflict_base_find(struct wb *wb, const struct fid *fid, struct proto_attr *out)
{
	char path[4096], line[256], fs[FID_STRLEN];
	unsigned long long size, dv;
	long long mt;
	unsigned mode, uid, gid;
	int rc = -ENOENT;
	FILE *f;

	base_path(wb, path, sizeof(path));
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
conflict_note_base(struct wb *wb, const struct fid *fid,
		   const struct proto_attr *known)
{
	char path[4096], line[256], fs[FID_STRLEN];
	struct proto_attr a;
	int fd, n;

	if (known)
		a = *known;
	else if (!wb || mcache_attr(wb->d.mc, fid, &a) < 0)
		return;
	if (!wb || (a.dv & CM_DV_LOCAL))
		return;
	base_path(wb, path, sizeof(path));
	if (!wb->based_loaded) {
		/* the FIDs already noted (a restart while disconnected) */
		FILE *f = fopen(path, "re");
		char l[256];
		struct fid nf;

		wb->based_loaded = true;
		while (f && fgets(l, sizeof(l), f))
			if (strchr(l, ' ') &&
			    fid_parse_n(l, (size_t)(strchr(l, ' ') - l), &nf) ==
				    0)
				fidmap_put(&wb->based, &nf, 0);
		if (f)
			fclose(f);
	}
	if (fidmap_find(&wb->based, fid))
		return;
	fidmap_put(&wb->based, fid, 0);
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
paths_file(struct wb *wb, char *buf, size_t len)
{
	snprintf(buf, len, "%s/replay-paths", wb->d.cache_dir);
}

void
conflict_note_path(struct wb *wb, uint64_t seq, const struct proto_op *op)
{
	char file[4096], path[CTL_PATH_MAX], line[CTL_PATH_MAX + 32];
	int fd, n;

	if (!seq)
		return;
	conflict_op_path(wb, op, path, sizeof(path));
	if (!path[0] || strchr(path, '\n'))
		return;
	n = snprintf(line, sizeof(line), "%llu\t%s\n", (unsigned long long)seq,
		     path);
	if (n < 0 || n >= (int)sizeof(line))
		return;
	paths_file(wb, file, sizeof(file));
	fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, line, (size_t)n) != n)
		log_warn(LOG_OFF, "cannot note the path of a change: %s",
			 strerror(errno));
	if (fd >= 0)
		close(fd);
}

int
conflict_path_noted(struct wb *wb, uint64_t seq, char *buf, size_t len)
{
	char file[4096], line[CTL_PATH_MAX + 32];
	int rc = -ENOENT;
	FILE *f;

	paths_file(wb, file, sizeof(file));
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

/* The path of @fid below the mount, from the names the inode table knows
 * (best effort; the FID when unknown). @return 0, or -ENOENT when @buf
 * holds the FID or a cut path rather than a mount path. */
static int
path_of(struct wb *wb, const struct fid *fid, char *buf, size_t len)
{
	char name[PROTO_NAME_MAX + 1], tmp[CTL_PATH_MAX];
	struct fid cur = *fid, parent;
	int depth = 0;

	buf[0] = '\0';
	while (!fid_eq(&cur, &wb->d.root) && depth++ < PATH_DEPTH_MAX) {
		if (ino_name_of(wb->d.ino, &cur, &parent, name, sizeof(name)) <
			    0 &&
		    wb_name_of(wb, &cur, &parent, name, sizeof(name)) < 0) {
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
	return fid_eq(&cur, &wb->d.root) ? 0 : -ENOENT;
}

int
conflict_op_path(struct wb *wb, const struct proto_op *op, char *buf,
		 size_t len)
{
	char dir[CTL_PATH_MAX];
	int rc;

	switch (op->kind) {
	case PROTO_OP_CREATE:
	case PROTO_OP_MKDIR:
	case PROTO_OP_SYMLINK:
	case PROTO_OP_MKMOUNT:
	case PROTO_OP_LINK:
	case PROTO_OP_UNLINK:
	case PROTO_OP_RMDIR:
	case PROTO_OP_RENAME:
		rc = path_of(wb, &op->parent, dir, sizeof(dir));
		if (snprintf(buf, len, "%s%s%s", dir, dir[0] ? "/" : "",
			     op->name ? op->name : "") >= (int)len) {
			buf[0] = '\0'; /* too long to show */
			return -ENOENT;
		}
		return rc;
	default:
		return path_of(wb, &op->fid, buf, len);
	}
}

enum rlog_conflict_kind
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
				       op->kind == PROTO_OP_SYMLINK ||
				       op->kind == PROTO_OP_MKMOUNT
			       ? RLOG_CF_PARENT_GONE
			       : RLOG_CF_OBJECT_GONE;
	default:
		return RLOG_CF_REFUSED;
	}
}

void
conflict_records_clear(struct wb *wb)
{
	char path[4096];

	base_path(wb, path, sizeof(path));
	unlink(path);
	if (wb) {
		fidmap_clear(&wb->based);
		wb->based_loaded = false;
	}
	paths_file(wb, path, sizeof(path));
	unlink(path);
}

/* --- conflict copies --- */

/*
 * A store refused with 412 (the file changed on the server since our base
 * DV) does not lose either side: the server keeps its version under the
 * name, and ours is created beside it as NAME.conflict-HOST-YYYYMMDD-HHMMSS
 * (local time; "-2", "-3" ... appended if that name is taken; the name
 * part is shortened to fit 255 bytes), written from our chunks at the base
 * DV, and logged. Only once the copy is stored are the local changes
 * dropped; until then they stay dirty, so a failure or a crash on the way
 * retries the whole thing at the next flush (a crash can leave an
 * incomplete earlier copy; never less than the local data).
 */
struct conflict {
	struct wb *wb;
	struct fid fid;	    /* the refused file */
	struct store *orig; /* the refused store; its waiters wait */
	/* or, from reintegration (no store of ours): report here */
	void (*cdone)(void *, int, const char *);
	void *carg;
	struct fid parent;
	char base[PROTO_NAME_MAX + 1]; /* the file's name */
	char name[PROTO_NAME_MAX + 1]; /* the copy's */
	uint32_t mode, uid, gid;
	uint64_t size, srv_size, zero_from, base_dv;
	unsigned attempt;
	size_t missing; /* chunks of the base version we did not hold */
};

static int conflict_create(struct wb *wb, struct conflict *cf);

static void
conflict_name(struct conflict *cf)
{
	char host[65], tail[128], ts[32];
	size_t keep, tl;
	struct tm tm;
	time_t now = time(NULL);

	if (gethostname(host, sizeof(host)) < 0)
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	host[strcspn(host, ".")] = '\0';
	localtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y%m%d-%H%M%S", &tm);
	if (cf->attempt)
		snprintf(tail, sizeof(tail), ".conflict-%s-%s-%u", host, ts,
			 cf->attempt + 1);
	else
		snprintf(tail, sizeof(tail), ".conflict-%s-%s", host, ts);
	tl = strlen(tail);
	keep = strlen(cf->base);
	if (keep + tl > PROTO_NAME_MAX) {
		keep = PROTO_NAME_MAX - tl;
		/* do not cut a UTF-8 sequence in two */
		while (keep > 0 &&
		       ((unsigned char)cf->base[keep] & 0xc0) == 0x80)
			keep--;
	}
	snprintf(cf->name, sizeof(cf->name), "%.*s%s", (int)keep, cf->base,
		 tail);
}

static void
conflict_end(struct conflict *cf, int err)
{
	struct store *orig = cf->orig;

	if (!orig) {
		cf->cdone(cf->carg, err, err ? NULL : cf->name);
		free(cf);
		return;
	}
	free(cf);
	wb_store_end(orig, err == -ESTALE ? -EIO : err, NULL);
}

static void
conflict_stored(void *arg, int err, const struct proto_op_result *r)
{
	struct conflict *cf = arg;
	struct wb *wb = cf->wb;
	struct fid fid = cf->fid;
	struct wstate *ws;
	size_t nstores = 0;

	(void)r;
	if (err) {
		log_err(LOG_WB,
			"conflict copy '%s' of '%s' could not be "
			"stored (%s); the local version stays dirty",
			cf->name, cf->base, strerror(-err));
		conflict_end(cf, err);
		return;
	}
	log_warn(LOG_WB,
		 "conflict: '%s' changed on the server after DV %llu, which "
		 "this client's changes were based on; the server's version "
		 "stays, the local one is saved as '%s'%s",
		 cf->base, (unsigned long long)cf->base_dv, cf->name,
		 cf->missing ? " (parts of the old version that were not "
			       "cached read as zeros there)"
			     : "");
	CM_STAT_INC(wb->d.st, conflicts);
	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, &fid);
	if (ws) {
		wb_mark_clean_locked(wb, ws);
		wb_forget_locked(wb, ws);
		ws->conflicted = true;
		ws->logged = false;
		if (!cf->orig && !ws->writers && !ws->storing)
			wb_unlink_free_locked(wb, ws);
	}
	pthread_mutex_unlock(&wb->lock);
	/* A later STORE record of the file (written again while this one
	 * was on its way; this one is still in the log, INFLIGHT) reads
	 * these chunks when it is sent: they stay DIRTY for it, its own
	 * answer settles them. Dropped, it would send zeros of the right
	 * size, or a copy of zeros. */
	if (!wb->d.rlog ||
	    rlog_fid_count(wb->d.rlog, &fid,
			   RLOG_MASK(RLOG_PENDING) | RLOG_MASK(RLOG_INFLIGHT),
			   PROTO_OP_STORE, UINT64_MAX, &nstores) < 0 ||
	    nstores < 2)
		wb_drop_chunks(wb, &fid);
	mcache_drop_file(wb->d.mc, &fid);
	/* close/fsync report it: the data is safe, but not in this file.
	 * (Reintegration gets 0 and the copy's name.) */
	conflict_end(cf, cf->orig ? -EIO : 0);
}

static void
conflict_created(void *arg, int err, const struct proto_op_result *r)
{
	struct conflict *cf = arg;
	struct wb *wb = cf->wb;
	struct store *cp;
	struct collect c = {0};
	struct fid rnd;
	uint64_t csz = wb->d.chunk_size;
	int rc;

	if (err == -EEXIST && cf->attempt < 20) {
		cf->attempt++;
		rc = conflict_create(wb, cf);
		if (rc < 0)
			conflict_end(cf, rc);
		return;
	}
	if (err == -ENOENT && !fid_eq(&cf->parent, &wb->d.root)) {
		/* The directory is gone on the server: the root gets it,
		 * for its owner only (what the directory kept from others
		 * the root would show them). */
		cf->parent = wb->d.root;
		cf->mode &= ~(uint32_t)077;
		cf->attempt = 0;
		rc = conflict_create(wb, cf);
		if (rc < 0)
			conflict_end(cf, rc);
		return;
	}
	if (err || !r->has_attr) {
		log_err(LOG_WB,
			"conflict copy '%s' of '%s' could not be "
			"created (%s); the local version stays dirty",
			cf->name, cf->base, strerror(err ? -err : EIO));
		conflict_end(cf, err ? err : -EIO);
		return;
	}
	cp = calloc(1, sizeof(*cp));
	if (!cp) {
		conflict_end(cf, -ENOMEM);
		return;
	}
	cp->wb = wb;
	cp->fid = r->attr.fid;
	cp->src_fid = cf->fid;
	cp->src_dv = cf->base_dv;
	cp->src_valid_to = cf->zero_from;
	cp->cf = cf;
	cp->mdone = conflict_stored;
	cp->marg = cf;
	cp->op.kind = PROTO_OP_STORE;
	cp->op.fid = r->attr.fid;
	cp->op.base_dv = r->attr.dv;
	cp->op.chunk_size = wb->d.chunk_size;
	cp->op.size = cf->size;
	c.st = cp;
	for (uint64_t ch = 0; ch * csz < cf->size && !c.err; ch++) {
		struct cs_key k;
		struct cs_info info;

		cm_chunk_key(&k, &cp->src_fid, ch);
		if (cs_lookup(wb->d.cs, &k, &info) == 0 &&
		    info.dv == cf->base_dv) {
			if (wb_collect_add(&c, ch, true) < 0)
				c.err = -ENOMEM;
		} else if (ch * csz < cf->zero_from &&
			   ch * csz < cf->srv_size) {
			cf->missing++;
		}
	}
	if (c.err || fid_random(0, &rnd) < 0) {
		free(c.chunks);
		free(c.dirty);
		cp->cf = NULL;
		cp->mdone = NULL;
		wb_store_free(cp);
		conflict_end(cf, c.err ? c.err : -EIO);
		return;
	}
	memcpy(cp->op.txid, rnd.oid, sizeof(cp->op.txid));
	if (fid_random(0, &rnd) == 0)
		memcpy(cp->op.opid, rnd.oid, sizeof(cp->op.opid));
	cp->op.chunks = c.chunks;
	cp->op.nchunks = c.n;
	cp->dirty = c.dirty;
	{
		char fs[FID_STRLEN];

		log_debug(LOG_WB,
			  "conflict copy '%s' of %s: %llu bytes from DV %llu "
			  "(valid to %llu, server size %llu): %zu chunks, "
			  "%zu missing",
			  cf->name, fid_fmt(&cf->fid, fs),
			  (unsigned long long)cf->size,
			  (unsigned long long)cf->base_dv,
			  (unsigned long long)cf->zero_from,
			  (unsigned long long)cf->srv_size, c.n, cf->missing);
	}
	/* Not logged: after a crash the original is still dirty and a new
	 * copy is made from it. */
	wb_store_send(cp);
}

static int
conflict_create(struct wb *wb, struct conflict *cf)
{
	struct proto_op op;

	memset(&op, 0, sizeof(op));
	conflict_name(cf);
	op.kind = PROTO_OP_CREATE;
	op.parent = cf->parent;
	op.name = cf->name;
	op.type = PROTO_T_FILE;
	op.mode = cf->mode;
	op.uid = cf->uid;
	op.gid = cf->gid;
	if (fid_random(cf->parent.vol, &op.fid) < 0)
		return -EIO;
	/* Not through the disconnected path: reintegration makes copies. */
	return mut_submit_direct(wb->d.mut, &op, conflict_created, cf);
}

/* Loop thread, from wb_store_end: 0 = the conflict copy is under way and
 * will end @st; else end @st with the error as usual. */
static int
conflict_begin(struct wb *wb, struct conflict *cf)
{
	struct wstate *ws;
	char fs[FID_STRLEN];
	bool created = false;
	int rc;

	cf->wb = wb;
	pthread_mutex_lock(&wb->lock);
	ws = wb_find_locked(wb, &cf->fid);
	if (ws && !ws->gone && (ws->dirty || ws->logged)) {
		if (ws->name) {
			cf->parent = ws->parent;
			snprintf(cf->base, sizeof(cf->base), "%s", ws->name);
		}
		cf->mode = ws->attr.mode & 07777;
		cf->uid = ws->attr.uid;
		cf->gid = ws->attr.gid;
		cf->size = ws->size;
		cf->srv_size = ws->srv_size;
		cf->zero_from = ws->zero_from;
		cf->base_dv = ws->base_dv;
		created = ws->created; /* base DV 0: a refused late create */
	}
	pthread_mutex_unlock(&wb->lock);
	if (!ws || (!cf->base_dv && !created)) {
		free(cf);
		return -ENOENT;
	}
	if (!cf->base[0]) {
		/* No name known (never looked up by one): the volume's
		 * root gets it, named after the FID. */
		fid_fmt(&cf->fid, fs);
		snprintf(cf->base, sizeof(cf->base), "cairn-%s", fs);
		cf->parent = wb->d.root;
		cf->mode &= ~(uint32_t)077; /* as above: owner only */
	}
	if (!cf->mode)
		cf->mode = 0600;
	rc = conflict_create(wb, cf);
	if (rc < 0)
		free(cf);
	return rc;
}

int
wb_conflict_start(struct store *st)
{
	struct conflict *cf = calloc(1, sizeof(*cf));

	if (!cf)
		return -ENOMEM;
	cf->orig = st;
	cf->fid = st->fid;
	return conflict_begin(st->wb, cf);
}

void
wb_conflict_copy(struct wb *wb, const struct fid *fid,
		 void (*done)(void *, int, const char *), void *arg)
{
	struct conflict *cf = calloc(1, sizeof(*cf));
	int rc;

	if (!cf) {
		done(arg, -ENOMEM, NULL);
		return;
	}
	cf->fid = *fid;
	cf->cdone = done;
	cf->carg = arg;
	rc = conflict_begin(wb, cf); /* frees @cf on failure */
	if (rc < 0)
		done(arg, rc, NULL);
}

