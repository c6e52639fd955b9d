/*
 * ctl_flush.c - fs flush, flushmeta, flushvolume and flushall.
 *
 * Flushes store a file's local changes (wb.c) before they drop anything
 * of it, one file at a time, and answer when the last one is done. Each
 * of these commands answers only after the kernel invalidations it queued
 * were written (cm_kernel_barrier()): "the next stat asks the server" must
 * hold for a stat started right after the answer.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "chunkstore/cs.h"
#include "cm/cm.h"
#include "cm/conn.h"
#include "cm/ctl.h"
#include "cm/ctl_i.h"
#include "cm/fetch.h"
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

/* ---- flush ---------------------------------------------------------- */

/*
 * A flush job: for each file in turn, store its local changes (wb_flush),
 * then drop its clean chunks, invalidate the kernel's page cache of it and,
 * if it is pinned, fetch it again in the background. A file whose store
 * fails keeps everything (dirty data is never dropped) and is counted;
 * the others are flushed all the same. Files go one at a time: a store is
 * the server's work, and a flush of a clean file is quick. flushall then
 * drops the cached metadata nothing needs.
 */
struct fjob {
	struct cm *cm;
	struct ctl_call *call;
	unsigned type;	 /* CTL_FLUSH, CTL_FLUSHVOLUME or CTL_FLUSHALL */
	bool one_file;	 /* fs flush FILE: its error is the answer */
	struct fid *fids;
	size_t n, i;
	bool waiting, pumping;
	uint64_t dirty_now; /* dirty bytes of fids[i] before its store */
	uint64_t dropped, stored, failed, meta_dropped;
	int err;	    /* first store error */
	bool probed, server_down, meta_done;
	bool refetching;
	bool fenced; /* the kernel barrier was passed */
	struct cm_job fence;
	uint64_t last_progress;
};

struct file_bytes {
	uint64_t clean, dirty;
};

static int
count_bytes(const struct cs_info *ci, void *arg)
{
	struct file_bytes *b = arg;

	if (ci->flags & CS_F_DIRTY)
		b->dirty += ci->len;
	else
		b->clean += ci->len;
	return 0;
}

/* Tell the kernel to forget @fid's pages and attributes (the notifier
 * thread sends it: never from inside a FUSE handler). */
static void
kernel_forget_data(struct cm *cm, const struct fid *fid)
{
	uint64_t ino = ino_of(cm->ino, fid);

	if (!ino || !cm->loop.kops.inval_inode)
		return;
	CM_STAT_INC(&cm->st, invalidations);
	cm->loop.kops.inval_inode(cm->loop.kops.arg, ino, 0, 0);
}

static void fjob_pump(struct fjob *j);

static void
fjob_free(struct fjob *j)
{
	if (!j)
		return;
	free(j->fids);
	free(j);
}

static int
fjob_add(struct fjob *j, const struct fid *fid, size_t *cap)
{
	struct fid *nf;

	if (j->n == *cap) {
		*cap = *cap ? 2 * *cap : 16;
		nf = realloc(j->fids, *cap * sizeof(*nf));
		if (!nf)
			return -ENOMEM;
		j->fids = nf;
	}
	j->fids[j->n++] = *fid;
	return 0;
}

/* Drop fids[i]'s clean data (its store went well, and no store of a
 * fetched chunk of it is in flight any more), then go on with the next
 * file. Loop thread. */
static void
fjob_drop(struct fjob *j)
{
	struct cm *cm = j->cm;
	const struct fid *fid = &j->fids[j->i];
	struct file_bytes b = {0};
	char fs[FID_STRLEN];
	int rc;

	cs_iterate_file(cm->cs, fid->vol, fid->oid, count_bytes, &b);
	rc = cs_invalidate(cm->cs, fid->vol, fid->oid, UINT64_MAX);
	if (rc < 0)
		log_warn(LOG_CTL, "flush: cannot drop chunks of '%s': %s",
			 fid_fmt(fid, fs), strerror(-rc));
	else
		j->dropped += b.clean;
	kernel_forget_data(cm, fid);
	if (pin_refetch(cm->pin, fid))
		j->refetching = true;
	j->i++;
	j->waiting = false;
	fjob_pump(j);
}

static void
fjob_quiesced(void *arg, int err)
{
	(void)err;
	fjob_drop(arg);
}

/* The store of fids[i] is over (@err): drop the file's data unless it
 * failed, then go on with the next one. Loop thread. */
static void
fjob_stored(void *arg, int err)
{
	struct fjob *j = arg;
	struct cm *cm = j->cm;
	const struct fid *fid = &j->fids[j->i];
	char fs[FID_STRLEN];

	if (err < 0) {
		/* Never drop what the server does not have. */
		j->failed++;
		if (!j->err)
			j->err = err;
		log_warn(LOG_CTL, "flush: cannot store '%s', keeping it: %s",
			 fid_fmt(fid, fs), strerror(-err));
		j->i++;
		j->waiting = false;
		fjob_pump(j);
		return;
	}
	j->stored += j->dirty_now;
	/* A read answered from a chunk's verified blocks may still have the
	 * chunk with a store thread: it would land after the drop. Wait for
	 * those (transfers still receiving are told not to store). */
	if (fetch_drop_file(cm->fetch, fid, fjob_quiesced, j) == 1)
		return;
	fjob_drop(j);
}

static void
fjob_synced(void *arg, int err, uint64_t records)
{
	(void)records;
	fjob_stored(arg, err);
}

/* Stored (or logged, in writeback mode: then the server must have it
 * before anything is dropped, doc/cm.md "Write modes"). */
static void
fjob_flushed(void *arg, int err)
{
	struct fjob *j = arg;
	struct cm *cm = j->cm;

	/* Disconnected (before, or by this very store: its op or staging
	 * got no answer and it was absorbed): the changes are in the
	 * replay log, not on the server, so nothing is dropped (fs(1):
	 * exit 75); the clean data stays for reading offline too. */
	if (!err && j->dirty_now && cm->conn && conn_offline(cm->conn))
		err = -EHOSTUNREACH;
	if (!err && cm->conn && conn_writeback(cm->conn) &&
	    !conn_offline(cm->conn) &&
	    replay_sync(cm->replay, &j->fids[j->i], fjob_synced, j) == 0)
		return;
	fjob_stored(j, err);
}

struct meta_drop {
	struct cm *cm;
	struct fid *v;
	size_t n, cap;
};

static int
collect_meta(void *arg, const struct fid *fid)
{
	struct meta_drop *m = arg;
	struct fid *nv;

	/* What a pin or a local change needs stays: offline work reads it,
	 * and a store is based on it. */
	if (pin_covers(m->cm->pin, fid) || wb_active(m->cm->wb, fid))
		return 0;
	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 256;
		nv = realloc(m->v, m->cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		m->v = nv;
	}
	m->v[m->n++] = *fid;
	return 0;
}

/* flushall: forget the cached metadata of every object no pin and no
 * local change needs; the kernel forgets its attributes and pages. */
static uint64_t
drop_all_meta(struct cm *cm)
{
	struct meta_drop m = {.cm = cm};
	struct proto_volinfo vi;
	int rc;

	mcache_sync_attrs(cm->mc, SIZE_MAX); /* the pending ones too */
	rc = vc_iterate_fids(cm->vc, collect_meta, &m);
	if (rc < 0)
		log_warn(LOG_CTL, "flushall: cannot list cached metadata: %s",
			 strerror(-rc));
	for (size_t i = 0; i < m.n; i++) {
		/* The root stays: the mount's own attributes. */
		if (cm_volinfo(cm, &vi) == 0 && fid_eq(&vi.root, &m.v[i]))
			continue;
		mcache_forget(cm->mc, &m.v[i]);
		kernel_forget_data(cm, &m.v[i]);
	}
	free(m.v);
	/* A late listing an open handle holds goes too (mfetch.c). */
	mfetch_drop_held(cm->mf);
	return m.n;
}

static void fjob_finish(struct fjob *j);

static void
fjob_fenced(struct cm_loop *loop, struct cm_job *job)
{
	(void)loop;
	fjob_finish(container_of(job, struct fjob, fence));
}

static void
probe_done(void *arg, const struct http_result *res)
{
	struct fjob *j = arg;

	j->server_down = res->err != 0 || res->status < 200 ||
			 res->status > 299;
	fjob_finish(j);
}

/* A store failed with EIO: is the server there at all? Ask it (a ping,
 * at most 3 s) so the answer can say "unreachable" (fs exits 75) rather
 * than a bare I/O error. @return 0 if the ping is on its way. */
static int
fjob_probe(struct fjob *j)
{
	struct http_request req = {0};

	j->probed = true;
	req.method = "GET";
	req.path = "/v1/ping";
	req.timeout_ms = 3000;
	req.max_body = 65536;
	req.probe = 1;
	req.on_done = probe_done;
	req.arg = j;
	return http_submit(j->cm->http, &req) ? 0 : -EIO;
}

static void
fjob_finish(struct fjob *j)
{
	struct cm *cm = j->cm;
	char msg[256], a[32];
	int err = j->err;
	json_t *res;

	if (j->type == CTL_FLUSHALL && !j->meta_done) {
		j->meta_done = true;
		j->meta_dropped = drop_all_meta(cm);
	}
	if (!j->fenced) {
		/* Answer once the kernel forgot what was dropped; back
		 * here from fjob_fenced(). */
		j->fenced = true;
		j->fence.run = fjob_fenced;
		cm_kernel_barrier(&cm->loop, &j->fence);
		return;
	}
	if (j->type != CTL_FLUSH)
		log_info(LOG_CTL, "%s: dropped %llu bytes, stored %llu bytes "
				  "first, %llu files could not be stored",
			 j->type == CTL_FLUSHALL ? "flushall" : "flushvolume",
			 (unsigned long long)j->dropped,
			 (unsigned long long)j->stored,
			 (unsigned long long)j->failed);
	/* At shutdown (a barrier run late) the HTTP client is gone. */
	if (j->failed && err == -EIO && !j->probed && !cm_stopping(&cm->loop) &&
	    fjob_probe(j) == 0)
		return; /* back here when the ping is answered */
	if (j->failed) {
		/* A store that failed because the server is away is a
		 * temporary failure (fs exits 75), as for pin. */
		if (err == -EIO && (j->server_down || !atomic_load(&cm->online)))
			err = -EHOSTUNREACH;
		if (j->one_file)
			snprintf(msg, sizeof(msg),
				 "cannot store the file's changes on the "
				 "server (%s); nothing was dropped",
				 strerror(-err));
		else
			snprintf(msg, sizeof(msg),
				 "%llu of %zu files could not be stored on "
				 "the server (%s) and were kept; %s of the "
				 "others was dropped",
				 (unsigned long long)j->failed, j->n,
				 strerror(-err),
				 util_fmt_size(j->dropped, a, sizeof(a)));
		ctl_reply_err_detail(
			j->call, err,
			json_pack("{s:I,s:I,s:I}", "bytes_dropped",
				  (json_int_t)j->dropped, "bytes_stored",
				  (json_int_t)j->stored, "files_failed",
				  (json_int_t)j->failed),
			msg);
		fjob_free(j);
		return;
	}
	res = json_pack("{s:I,s:I,s:I}", "bytes_dropped",
			(json_int_t)j->dropped, "bytes_stored",
			(json_int_t)j->stored, "files", (json_int_t)j->n);
	if (res && j->type == CTL_FLUSH)
		json_object_set_new(res, "refetching",
				    json_boolean(j->refetching));
	if (res && j->type != CTL_FLUSH)
		json_object_set_new(res, "volume",
				    json_string(cm->cfg.volume));
	if (res && j->type == CTL_FLUSHALL)
		json_object_set_new(res, "entries_dropped",
				    json_integer((json_int_t)j->meta_dropped));
	if (!res)
		ctl_reply_err(j->call, ENOMEM, NULL);
	else
		ctl_reply_ok(j->call, res);
	fjob_free(j);
}

static void
fjob_progress(struct fjob *j)
{
	uint64_t now = util_now_ms();

	if (j->n < 2 || now - j->last_progress < 100)
		return;
	j->last_progress = now;
	ctl_progress(j->call, json_pack("{s:I,s:I}", "files_done",
					(json_int_t)j->i, "files_total",
					(json_int_t)j->n));
}

/* Store and drop the files one by one. wb_flush() answers a clean file
 * at once (inside the call), so this loops instead of recursing. */
static void
fjob_pump(struct fjob *j)
{
	if (j->pumping)
		return;
	j->pumping = true;
	while (!j->waiting && j->i < j->n) {
		struct file_bytes b = {0};
		const struct fid *fid = &j->fids[j->i];

		fjob_progress(j);
		cs_iterate_file(j->cm->cs, fid->vol, fid->oid, count_bytes, &b);
		j->dirty_now = b.dirty;
		j->waiting = true;
		wb_flush(j->cm->wb, fid, fjob_flushed, j);
	}
	j->pumping = false;
	if (!j->waiting && j->i >= j->n)
		fjob_finish(j);
}

static struct fjob *
fjob_new(struct cm *cm, struct ctl_call *call)
{
	struct fjob *j = calloc(1, sizeof(*j));

	if (!j) {
		ctl_reply_err(call, ENOMEM, NULL);
		return NULL;
	}
	j->cm = cm;
	j->call = call;
	j->type = ctl_call_type(call);
	return j;
}

static void
flush_done(struct resolve *r, const struct proto_attr *a)
{
	struct fjob *j = fjob_new(r->cm, r->call);
	struct vc_dir *d = NULL;
	size_t cap = 0;
	int rc = 0;

	if (!j) {
		cm_ctl_resolve_free(r);
		return;
	}
	if (a->type == PROTO_T_FILE) {
		j->one_file = true;
		rc = fjob_add(j, &a->fid, &cap);
	} else if (a->type == PROTO_T_DIR) {
		/* The files of the directory, not recursive. Their mode is
		 * not checked: reading the directory shows them anyway, and
		 * a flush hands nobody their data. */
		rc = mcache_dir(r->cm->mc, &a->fid, &d);
		if (rc == -ENOENT)
			rc = 0; /* no listing cached: nothing of it either */
		for (size_t i = 0; d && rc == 0 && i < d->n; i++) {
			struct proto_attr ea;

			if (mcache_attr(r->cm->mc, &vc_dir_ent(d, i)->fid,
					&ea) == 0 &&
			    ea.type == PROTO_T_FILE)
				rc = fjob_add(j, &ea.fid, &cap);
		}
		vc_dir_put(d);
	}
	cm_ctl_resolve_free(r);
	if (rc < 0) {
		ctl_reply_err(j->call, rc, NULL);
		fjob_free(j);
		return;
	}
	fjob_pump(j);
}

void
cm_ctl_h_flush(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	json_t *args)
{
	cm_ctl_resolve(arg, call, peer, args, R_OK, flush_done);
}

/* A flushmeta answer waiting for the kernel barrier. */
struct fmeta {
	struct cm_job job;
	struct ctl_call *call;
	uint64_t n;
};

static void
flushmeta_reply(struct cm_loop *loop, struct cm_job *job)
{
	struct fmeta *m = container_of(job, struct fmeta, job);

	(void)loop;
	ctl_reply_ok(m->call,
		     json_pack("{s:I}", "entries_dropped", (json_int_t)m->n));
	free(m);
}

static void
flushmeta_done(struct resolve *r, const struct proto_attr *a)
{
	struct cm *cm = r->cm;
	struct vc_dir *d = NULL;
	uint64_t ino = ino_of(cm->ino, &a->fid), pino = 0;
	uint64_t n = 1;
	struct fmeta *m;

	/* The kernel forgets the names in a directory and the object's own
	 * name, so the next lookup and stat come to cairnd again. */
	if (a->type == PROTO_T_DIR && mcache_dir(cm->mc, &a->fid, &d) == 0) {
		for (size_t i = 0; ino && cm->loop.kops.inval_entry && i < d->n;
		     i++) {
			CM_STAT_INC(&cm->st, invalidations);
			cm->loop.kops.inval_entry(cm->loop.kops.arg, ino,
					     vc_dir_ent(d, i)->name,
					     vc_dir_ent(d, i)->namelen);
		}
		n += d->n;
		vc_dir_put(d);
	}
	if (r->have_parent)
		pino = ino_of(cm->ino, &r->parent);
	if (pino && cm->loop.kops.inval_entry) {
		CM_STAT_INC(&cm->st, invalidations);
		cm->loop.kops.inval_entry(cm->loop.kops.arg, pino, r->name,
				     strlen(r->name));
	}
	/* A file with local changes keeps its attributes (its store is
	 * based on them); the rest is forgotten. */
	if (!wb_active(cm->wb, &a->fid))
		mcache_forget(cm->mc, &a->fid);
	mfetch_dir_mutated(cm->mf, &a->fid); /* its held listing */
	if (ino && cm->loop.kops.inval_inode) {
		CM_STAT_INC(&cm->st, invalidations);
		/* -1: attributes only; a directory also drops its pages
		 * (readdir), a file keeps its data (tagged by DV). */
		cm->loop.kops.inval_inode(cm->loop.kops.arg, ino,
				     a->type == PROTO_T_DIR ? 0 : -1, 0);
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		ctl_reply_err(r->call, ENOMEM, NULL);
		cm_ctl_resolve_free(r);
		return;
	}
	m->job.run = flushmeta_reply;
	m->call = r->call;
	m->n = n;
	cm_ctl_resolve_free(r);
	/* Answer once the kernel forgot: the next stat must come here. */
	cm_kernel_barrier(&cm->loop, &m->job);
}

void
cm_ctl_h_flushmeta(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	    json_t *args)
{
	cm_ctl_resolve(arg, call, peer, args, R_OK, flushmeta_done);
}

/* flushvolume / flushall: every file of the volume with cached chunks. */
struct vol_files {
	struct fjob *j;
	uint32_t vol;
	size_t cap;
	int err;
};

static int
collect_file(const struct cs_info *ci, void *arg)
{
	struct vol_files *v = arg;
	struct fjob *j = v->j;
	struct fid fid;

	if (ci->key.vol != v->vol)
		return 0;
	fid.vol = ci->key.vol;
	memcpy(fid.oid, ci->key.fid, sizeof(fid.oid));
	/* Chunks of one file are usually in neighbouring slots: look at the
	 * last files only. A file seen twice is flushed twice, harmlessly
	 * (the second finds nothing). */
	for (size_t i = j->n, k = 0; i-- > 0 && k < 8; k++)
		if (fid_eq(&j->fids[i], &fid))
			return 0;
	if (fjob_add(j, &fid, &v->cap) < 0) {
		v->err = -ENOMEM;
		return 1;
	}
	return 0;
}

void
cm_ctl_h_flushvolume(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	      json_t *args)
{
	struct cm *cm = arg;
	struct proto_volinfo vi;
	struct vol_files v = {0};

	(void)peer;
	(void)args;
	if (cm_volinfo(cm, &vi) < 0) {
		ctl_reply_err(call, EAGAIN, "the volume is not known yet");
		return;
	}
	v.j = fjob_new(cm, call);
	if (!v.j)
		return;
	v.vol = vi.id;
	/* NEEDSWORK: one pass over the whole index on the loop thread; split
	 * it for very large caches. */
	cs_iterate(cm->cs, collect_file, &v);
	if (v.err < 0) {
		ctl_reply_err(call, v.err, NULL);
		fjob_free(v.j);
		return;
	}
	fjob_pump(v.j);
}
