/*
 * daemon.c - the one place that builds cairnd (see daemon.h): it opens
 * the stores, creates every module in order and wires them, runs the
 * recovery of what a crash left half done, and tears everything down
 * once, in reverse. cairnd.c keeps the arguments, signals and the FUSE
 * session; cm.c only runs the loop.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>

#include "chunkstore/cs.h"
#include "cm/access.h"
#include "cm/daemon_i.h"
#include "cm/cm_ctl.h"
#include "cm/conn.h"
#include "cm/daemon.h"
#include "cm/events.h"
#include "cm/fetch.h"
#include "cm/http.h"
#include "cm/inode.h"
#include "cm/local.h"
#include "cm/mcache.h"
#include "cm/mfetch.h"
#include "cm/mut.h"
#include "cm/replay.h"
#include "cm/pin.h"
#include "cm/rlog.h"
#include "cm/vc.h"
#include "cm/wb.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/util.h"

/* --- one blocking volinfo request, before any thread exists --- */

struct vi_req {
	struct event_base *base;
	int rc;
	struct proto_volinfo vi;
};

static void
vi_done(void *arg, const struct http_result *res)
{
	struct vi_req *r = arg;

	r->rc = cm_http_errno(res->err, res->status, res->body, res->body_len);
	if (res->err)
		r->rc = res->err;
	if (r->rc == 0) {
		r->rc = proto_volinfo_decode(res->body, res->body_len, &r->vi);
		if (r->rc < 0)
			log_err(LOG_MAIN, "bad volume information from the "
					  "server: %s",
				strerror(-r->rc));
	}
	event_base_loopbreak(r->base);
}

static int
fetch_volinfo(struct cm *cm, struct proto_volinfo *vi)
{
	struct http_config hc = {0};
	struct http_request rq = {0};
	struct http_client *h = NULL;
	struct vi_req r = {0};
	char path[128];

	r.rc = -EIO;
	r.base = event_base_new();
	if (!r.base)
		return -ENOMEM;
	hc.base_url = cm->cfg.server;
	hc.token = cm->token;
	hc.ca_file = cm->cfg.ca_file;
	hc.proxy = cm->cfg.proxy;
	hc.connect_timeout_ms = (unsigned)cm->cfg.fetch_timeout_ms;
	hc.timeout_ms = (unsigned)cm->cfg.fetch_timeout_ms;
	h = http_new(r.base, &hc);
	if (!h) {
		r.rc = -errno;
		goto out;
	}
	snprintf(path, sizeof(path), "/v1/vol/%s", cm->cfg.volume);
	rq.path = path;
	rq.on_done = vi_done;
	rq.arg = &r;
	if (!http_submit(h, &rq)) {
		r.rc = -errno;
		goto out;
	}
	event_base_dispatch(r.base);
	*vi = r.vi;
out:
	http_free(h);
	event_base_free(r.base);
	return r.rc;
}

/* --- the stores --- */

/*
 * Raise the soft RLIMIT_NOFILE to the hard limit and size the chunk
 * store's read fd cache from it: half the descriptors (the other half is
 * for FUSE, sockets, tdb and working copies), at least 64, at most 16384.
 * A warm sequential read of a 256 MiB file touches 1024 chunk files; with
 * the library's default of 256 it reopened every one of them.
 */
static uint32_t
fd_cache_size(void)
{
	struct rlimit rl;
	rlim_t soft;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_warn(LOG_MAIN, "cannot read the fd limit: %s",
			 strerror(errno));
		return CS_FD_CACHE_DEFAULT;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit want = {rl.rlim_max, rl.rlim_max};

		if (setrlimit(RLIMIT_NOFILE, &want) == 0)
			rl.rlim_cur = rl.rlim_max;
		else
			log_warn(LOG_MAIN,
				 "cannot raise the fd limit to %llu: "
				 "%s",
				 (unsigned long long)rl.rlim_max,
				 strerror(errno));
	}
	soft = rl.rlim_cur == RLIM_INFINITY ? (rlim_t)2 * CS_FD_CACHE_MAX
					    : rl.rlim_cur;
	soft /= 2;
	if (soft < 64)
		soft = 64;
	if (soft > CS_FD_CACHE_MAX)
		soft = CS_FD_CACHE_MAX;
	log_info(LOG_MAIN, "fd limit %llu: up to %u chunk files kept open",
		 (unsigned long long)rl.rlim_cur, (unsigned)soft);
	return (uint32_t)soft;
}

static int
open_cs(struct cm *cm)
{
	struct cs_params p = {0};
	int err = 0;

	p.chunk_size = cm->cfg.chunk_size;
	p.fd_cache = fd_cache_size();
	p.limits.max_bytes = cm->cfg.cache_size;
	p.log = log_callback;
	p.log_arg = (void *)(uintptr_t)LOG_CS;
	cm->cs = cs_open(cm->cfg.cache_dir, &p, &err);
	if (!cm->cs && err == -ENOENT) {
		err = cs_create(cm->cfg.cache_dir, &p);
		if (err < 0)
			return err;
		log_info(LOG_MAIN, "created cache in '%s'", cm->cfg.cache_dir);
		cm->cs = cs_open(cm->cfg.cache_dir, &p, &err);
	}
	if (!cm->cs)
		return err ? err : -EIO;
	cm->chunk_size = cs_chunk_size(cm->cs);
	if (cm->chunk_size != cm->cfg.chunk_size)
		log_info(LOG_MAIN, "the cache's chunk size is %u (fixed when "
				   "it was created)",
			 cm->chunk_size);
	return 0;
}

static char *
vc_path(struct cm *cm)
{
	size_t n = strlen(cm->cfg.cache_dir) + 16;
	char *p = malloc(n);

	if (p)
		snprintf(p, n, "%s/meta.tdb", cm->cfg.cache_dir);
	return p;
}

/*
 * Find the volume: ask the server, else take what the cache remembers.
 * On success cm->vi holds the volume and cm->vc is open for it.
 * @return 0 or -errno (message logged).
 */
static int
find_volume(struct cm *cm)
{
	struct proto_volinfo vi, cached;
	struct proto_attr root;
	char *path = vc_path(cm);
	uint64_t seq = 0;
	int rc;

	if (!path)
		return -ENOMEM;
	rc = fetch_volinfo(cm, &vi);
	if (rc == 0) {
		if (strcmp(vi.name, cm->cfg.volume)) {
			log_err(LOG_MAIN, "server answered for volume '%s', "
					  "not '%s'",
				vi.name, cm->cfg.volume);
			rc = -EPROTO;
			goto out;
		}
		atomic_store(&cm->online, 1);
		cm->vc = vc_open(path, vi.id, cm->chunk_size);
		if (!cm->vc) {
			rc = -errno;
			log_err(LOG_MAIN, "cannot open metadata cache '%s': %s",
				path, strerror(-rc));
			goto out;
		}
		if (vc_get_volinfo(cm->vc, &cached) == 0 &&
		    !fid_eq(&cached.root, &vi.root)) {
			/* Same id, other root: a recreated volume. */
			log_warn(LOG_MAIN, "volume '%s' was recreated on the "
					   "server; dropping cached metadata",
				 vi.name);
			vc_close(cm->vc);
			unlink(path);
			cm->vc = vc_open(path, vi.id, cm->chunk_size);
			if (!cm->vc) {
				rc = -errno;
				goto out;
			}
		}
		vc_get_seq(cm->vc, &seq);
		if (seq > vi.event_seq) {
			/* The server lost its event history: resume would
			 * miss changes. Start from now; the stream's first
			 * ping after a reset revalidates. */
			log_warn(LOG_MAIN, "server event sequence %llu is "
					   "behind ours (%llu); revalidating",
				 (unsigned long long)vi.event_seq,
				 (unsigned long long)seq);
			vc_put_seq(cm->vc, 0);
		}
		vc_put_volinfo(cm->vc, &vi);
	} else {
		log_warn(LOG_MAIN, "cannot reach server '%s' for volume '%s': "
				   "%s; trying the cache",
			 cm->cfg.server, cm->cfg.volume, strerror(-rc));
		cm->vc = vc_open(path, 0, cm->chunk_size);
		if (!cm->vc || vc_get_volinfo(cm->vc, &vi) < 0 ||
		    strcmp(vi.name, cm->cfg.volume) ||
		    vc_get_attr(cm->vc, &vi.root, &root) < 0) {
			log_err(LOG_MAIN, "cannot mount volume '%s': the server "
					  "is unreachable and the cache in '%s' "
					  "holds no copy of it",
				cm->cfg.volume, cm->cfg.cache_dir);
			rc = -EHOSTUNREACH;
			goto out;
		}
		/* Still CONNECTED: the first change (or resend) without an
		 * answer disconnects (doc/cm.md, "Starting with the server
		 * down"). */
		log_info(LOG_MAIN, "mounting volume '%s' from the cache "
				   "(server unreachable: what is cached is "
				   "served, the first change without an answer "
				   "disconnects)",
			 vi.name);
	}
	pthread_mutex_lock(&cm->lock);
	cm->vi = vi;
	cm->have_vi = true;
	pthread_mutex_unlock(&cm->lock);
	rc = 0;
out:
	free(path);
	return rc;
}

/* What the write half, pins and disconnected operation add to a read:
 * mcache.c and mfetch.c call up only through these, with @arg the
 * daemon's struct cm. */
static void
h_overlay(void *arg, struct proto_attr *a)
{
	wb_overlay(((struct cm *)arg)->wb, a);
}

static int
h_orphan_attr(void *arg, const struct fid *fid, struct proto_attr *out)
{
	return wb_orphan_attr(((struct cm *)arg)->wb, fid, out);
}

static bool
h_active(void *arg, const struct fid *fid)
{
	return wb_active(((struct cm *)arg)->wb, fid);
}

/* Writeback: our view of @fid is ahead of the server (replay.h). */
static bool
h_ahead(void *arg, const struct fid *fid)
{
	struct cm *cm = arg;

	return replay_ahead(cm->replay, fid) || mut_batch_ahead(cm->mut, fid);
}

static bool
h_disconnected(void *arg)
{
	struct cm *cm = arg;

	return cm->conn && conn_mode(cm->conn) == CM_DISCONNECTED;
}

static void
h_dv_changed(void *arg, const struct proto_attr *a)
{
	pin_changed(((struct cm *)arg)->pin, a);
}

static bool
h_defer_event(void *arg, const struct proto_event *ev)
{
	return mut_defer_event(((struct cm *)arg)->mut, ev);
}

static void
h_applied_event(void *arg, const struct proto_event *ev)
{
	pin_event(((struct cm *)arg)->pin, ev);
}

static void
h_ahead_event(void *arg, const struct proto_event *ev)
{
	replay_ahead_event(((struct cm *)arg)->replay, &ev->fid);
}

static bool
h_pinned(void *arg, const struct fid *fid)
{
	return pin_covers(((struct cm *)arg)->pin, fid);
}

static uint64_t
h_miss_wait_ms(void *arg)
{
	return replay_miss_wait_ms(((struct cm *)arg)->replay);
}

/* The op log calls up into write states and disconnected operation, and
 * local application into write states, only through these (@arg the
 * daemon's struct cm: the modules are built after the op log). */
static void
h_file_gone(void *arg, const struct fid *fid)
{
	wb_gone(((struct cm *)arg)->wb, fid);
}

static void
h_file_stored(void *arg, const struct proto_op *op, const struct proto_attr *a)
{
	wb_stored(((struct cm *)arg)->wb, op, a);
}

static int
h_resend_store(void *arg, uint64_t seq, const struct proto_op *op,
	       mut_done_fn done, void *done_arg)
{
	return wb_resend_store(((struct cm *)arg)->wb, seq, op, done, done_arg);
}

static void
h_log_resumed(void *arg)
{
	wb_resume_crashed(((struct cm *)arg)->wb);
}

static void
h_data_durable(void *arg, const struct fid *fids, size_t n)
{
	(void)wb_data_durable(((struct cm *)arg)->wb, fids, n);
}

static void
h_acked(void *arg, uint64_t seq, const struct proto_op *op,
	const struct proto_op_result *r)
{
	replay_acked(((struct cm *)arg)->replay, seq, op, r);
}

static bool
h_may_absorb(void *arg)
{
	return replay_may_absorb(((struct cm *)arg)->replay);
}

static void
h_absorb(void *arg, const struct proto_op *op, mut_done_fn done, void *done_arg)
{
	replay_absorb(((struct cm *)arg)->replay, op, done, done_arg);
}

static int
h_submit_offline(void *arg, const struct proto_op *op, mut_done_fn done,
		 void *done_arg)
{
	return replay_submit(((struct cm *)arg)->replay, op, done, done_arg);
}

static void
h_lost(void *arg, const char *why)
{
	replay_disconnect(((struct cm *)arg)->replay, false, why);
}

static void
h_store_absorbed(void *arg, const struct proto_op *op)
{
	wb_absorbed(((struct cm *)arg)->wb, op);
}

/* conn calls up into disconnected operation only through these. */
static void
h_went_offline(void *arg, bool manual, const char *why)
{
	struct cm *cm = arg;

	/* What only memory holds goes to the file: after a crash offline
	 * nothing can be fetched again (pending attributes of listings'
	 * entries; listings edited in memory, else the stored older one
	 * is all a disconnected restart has, t2367). */
	if (cm->mc)
		mcache_sync_attrs(cm->mc, SIZE_MAX);
	if (cm->ino)
		ino_store_unstored(cm->ino);
	replay_went_offline(cm->replay, manual, why);
}

static void
h_reintegrate(void *arg)
{
	replay_reintegrate(((struct cm *)arg)->replay);
}

static bool
conn_stopping(void *arg)
{
	return cm_stopping(&((struct cm *)arg)->loop);
}

/*
 * The replay log, after the fork (tdb handles must not cross it; the
 * write states' dirty.tdb is opened by wb_new(), later in the build). A
 * damaged replay log is never replaced here: cairnd refuses to start, so
 * nothing it holds is lost (cairn-fsck tells more).
 */
static int
open_write_state(struct cm *cm)
{
	char path[4096];
	int err = 0;

	snprintf(path, sizeof(path), "%s/rlog.tdb", cm->cfg.cache_dir);
	cm->rlog = rlog_open(path, &err);
	if (!cm->rlog) {
		log_err(LOG_MAIN, "cannot open the replay log '%s': %s", path,
			strerror(-err));
		return err;
	}
	return 0;
}


/* --- opening the stores (before the mount) --- */

/* The kernel forgot a directory whose last listing edit was kept in
 * memory only (mcache.c writes a listing at most once a second): write
 * it now, or a start or a disconnect after this would find the file's
 * older listing, which is not served once the directory's attributes are
 * newer (EIO offline). ino_set_drop(). */
static void
dir_drop(void *arg, struct vc_dir *d)
{
	struct cm *cm = arg;
	int rc = cm->vc ? vc_dir_store_unstored(cm->vc, d) : 0;

	if (rc)
		log_warn(LOG_META, "cannot write a directory listing kept "
			 "in memory: %s", strerror(-rc));
	vc_dir_put(d);
}

int
cm_daemon_open(struct cm *cm)
{
	int rc = 0;

	/* A volume of a namespace gets the namespace's chunk store. */
	if (cm->cs_shared)
		cm->chunk_size = cs_chunk_size(cm->cs);
	else
		rc = open_cs(cm);
	if (rc < 0) {
		log_err(LOG_MAIN, "cannot open cache '%s': %s",
			cm->cfg.cache_dir,
			rc == -EBUSY ? "in use by another process"
				     : strerror(-rc));
		return rc;
	}
	rc = find_volume(cm);
	if (rc < 0)
		return rc;
	cm->ino = ino_new_at(&cm->vi.root, cm->ino_base);
	if (!cm->ino) {
		log_err(LOG_MAIN, "out of memory");
		return -ENOMEM;
	}
	ino_set_drop(cm->ino, dir_drop, cm);
	return 0;
}

void
cm_daemon_before_fork(struct cm *cm)
{
	vc_close(cm->vc);
	cm->vc = NULL;
}

int
cm_daemon_after_fork(struct cm *cm)
{
	char *p = vc_path(cm);

	cm->vc = p ? vc_open(p, cm->vi.id, cm->chunk_size) : NULL;
	free(p);
	if (!cm->vc) {
		log_err(LOG_MAIN, "cannot reopen the metadata cache");
		return -EIO;
	}
	return 0;
}

/* --- building the modules --- */

/* The chunk fetch engine (it lives until cm_daemon_close(): FUSE threads
 * read through it). */
static int
fetch_module_new(struct cm *cm)
{
	const struct fetch_hooks fh = {
		.pinned = h_pinned,
		.miss_wait_ms = h_miss_wait_ms,
		.arg = cm,
	};
	const struct fetch_deps d = {
		.loop = &cm->loop,
		.http = cm->http,
		.cs = cm->cs,
		.mc = cm->mc,
		.mf = cm->mf,
		.st = &cm->st,
		.online = &cm->online,
		.away_ms = &cm->away_ms,
		.chunk_size = cm->chunk_size,
		.timeout_ms = (unsigned)cm->cfg.fetch_timeout_ms,
		.volume = cm->cfg.volume,
		.server = cm->cfg.server,
		.mountpoint = cm->cfg.mountpoint,
	};

	cm->fetch = fetch_new(&d, &fh);
	return cm->fetch ? 0 : -errno;
}

/* The cached metadata (it lives until cm_daemon_close(): FUSE threads
 * read it) and the metadata fetches over it. */
static int
meta_modules_new(struct cm *cm)
{
	const struct mcache_hooks mch = {
		.overlay = h_overlay,
		.orphan_attr = h_orphan_attr,
		.active = h_active,
		.dv_changed = h_dv_changed,
		.ahead = h_ahead,
		.disconnected = h_disconnected,
		.arg = cm,
	};
	const struct mfetch_hooks mfh = {
		.defer_event = h_defer_event,
		.applied_event = h_applied_event,
		.ahead_event = h_ahead_event,
		.arg = cm,
	};
	struct mfetch_deps d = {
		.loop = &cm->loop,
		.http = cm->http,
		.ino = cm->ino,
		.vc = cm->vc,
		.cs = cm->cs,
		.st = &cm->st,
		.online = &cm->online,
		.volume = cm->cfg.volume,
		.server = cm->cfg.server,
		.timeout_ms = (unsigned)cm->cfg.fetch_timeout_ms,
	};

	cm->mc = mcache_new(cm->ino, cm->vc, cm->cs, &cm->loop, &cm->st, &mch);
	if (!cm->mc)
		return -errno;
	d.mc = cm->mc;
	cm->mf = mfetch_new(&d, &mfh);
	if (!cm->mf)
		return -errno;
	cm->acc = acc_new(cm->mc, &cm->vi.root);
	return cm->acc ? 0 : -errno;
}

/* The write half, in level order: the op log, the write states (they
 * open <cache>/dirty.tdb), local application and disconnected operation.
 * The op log, the write states and disconnected operation live until
 * cm_daemon_close(): FUSE threads submit and write through them. */
static int
write_modules_new(struct cm *cm)
{
	const struct mut_hooks mh = {
		.file_gone = h_file_gone,
		.file_stored = h_file_stored,
		.resend_store = h_resend_store,
		.log_resumed = h_log_resumed,
		.acked = h_acked,
		.data_durable = h_data_durable,
		.may_absorb = h_may_absorb,
		.absorb = h_absorb,
		.submit_offline = h_submit_offline,
		.lost = h_lost,
		.arg = cm,
	};
	const struct mut_deps md = {
		.loop = &cm->loop,
		.http = cm->http,
		.rlog = cm->rlog,
		.conn = cm->conn,
		.mc = cm->mc,
		.mf = cm->mf,
		.online = &cm->online,
		.volume = cm->cfg.volume,
		.timeout_ms = cm->cfg.fetch_timeout_ms,
	};
	const struct wb_deps wd = {
		.loop = &cm->loop,
		.http = cm->http,
		.cs = cm->cs,
		.rlog = cm->rlog,
		.conn = cm->conn,
		.mc = cm->mc,
		.fetch = cm->fetch,
		.ino = cm->ino,
		.st = &cm->st,
		.root = cm->vi.root,
		.cache_dir = cm->cfg.cache_dir,
		.volume = cm->cfg.volume,
		.chunk_size = cm->chunk_size,
		.timeout_ms = cm->cfg.fetch_timeout_ms,
		.dirty_limit = cm->cfg.dirty_limit,
		.cache_size = cm->cfg.cache_size,
	};
	const struct local_hooks lh = {
		.file_gone = h_file_gone,
		.store_absorbed = h_store_absorbed,
		.arg = cm,
	};
	const struct local_deps ld = {.mc = cm->mc, .vc = cm->vc};
	struct wb_deps w = wd;
	struct replay_deps rd = {
		.loop = &cm->loop,
		.rlog = cm->rlog,
		.conn = cm->conn,
		.mc = cm->mc,
		.mf = cm->mf,
		.online = &cm->online,
		.st = &cm->st,
		.cache_dir = cm->cfg.cache_dir,
		.timeout_ms = cm->cfg.fetch_timeout_ms,
	};

	cm->mut = mut_new(&md, &mh);
	if (!cm->mut)
		return -errno;
	w.mut = cm->mut;
	if (cm->have_vi)
		mut_set_server_version(cm->mut, cm->vi.version);
	cm->wb = wb_new(&w);
	if (cm->wb && cm->have_vi)
		wb_set_server_version(cm->wb, cm->vi.version);
	if (!cm->wb) {
		int rc = -errno;

		log_err(LOG_MAIN, "cannot open the write-back state: %s",
			strerror(-rc));
		return rc;
	}
	/* Before the mount answers: chunks a power cut took back are
	 * written again from the bytes their store records carry. A
	 * failure leaves the bytes in the log (sent from there). */
	(void)wb_restore_logged(cm->wb);
	cm->local = local_new(&ld, &lh);
	if (!cm->local)
		return -errno;
	rd.mut = cm->mut;
	rd.wb = cm->wb;
	rd.local = cm->local;
	cm->replay = replay_new(&rd);
	if (!cm->replay)
		return -errno;
	/* The write mode of the config: logged from the first change on
	 * (the drain's clock starts with recover()). */
	replay_set_writeback_delay(cm->replay, cm->cfg.writeback_delay_ms);
	replay_set_log_sync(cm->replay, cm->cfg.log_sync_close);
	conn_set_writeback(cm->conn, cm->cfg.writeback);
	return 0;
}

static int
loop_modules_new(struct cm *cm)
{
	struct http_config hc = {0};
	int rc;

	/* In a namespace the volumes share one loop thread (loop.h). */
	rc = cm->ns ? cm_loop_attach(&cm->loop, &cm->ns->loop)
		    : cm_loop_new(&cm->loop);
	if (rc < 0)
		return rc;
	hc.base_url = cm->cfg.server;
	hc.token = cm->token;
	hc.ca_file = cm->cfg.ca_file;
	hc.proxy = cm->cfg.proxy;
	hc.max_parallel = cm->cfg.max_parallel;
	hc.connect_timeout_ms = cm->cfg.fetch_timeout_ms < 3000
					? (unsigned)cm->cfg.fetch_timeout_ms
					: 3000;
	hc.timeout_ms = (unsigned)cm->cfg.fetch_timeout_ms;
	cm->http = http_new(cm->loop.base, &hc);
	if (!cm->http)
		return -errno;
	/* The connection modes call up into disconnected operation only
	 * through these (conn.h). */
	{
		const struct conn_hooks ch = {
			.went_offline = h_went_offline,
			.reintegrate = h_reintegrate,
			.stopping = conn_stopping,
			.arg = cm,
		};

		cm->conn = conn_new(cm->loop.base, cm->http, cm->cfg.cache_dir,
				    &ch);
		if (!cm->conn)
			return -errno;
	}
	rc = meta_modules_new(cm);
	if (rc == 0)
		rc = fetch_module_new(cm);
	if (rc == 0) {
		const struct ev_deps ed = {
			.loop = &cm->loop,
			.http = cm->http,
			.vc = cm->vc,
			.mf = cm->mf,
			.st = &cm->st,
			.volume = cm->cfg.volume,
			.online = &cm->online,
			.away_ms = &cm->away_ms,
		};

		cm->evs = ev_new(&ed);
		rc = cm->evs ? 0 : -errno;
	}
	if (rc == 0) {
		const struct pin_deps pd = {
			.loop = &cm->loop,
			.cs = cm->cs,
			.vc = cm->vc,
			.mc = cm->mc,
			.mf = cm->mf,
			.fetch = cm->fetch,
			.online = &cm->online,
			.chunk_size = cm->chunk_size,
			.max_parallel = cm->cfg.max_parallel,
		};

		cm->pin = pin_new(&pd);
		rc = cm->pin ? 0 : -errno;
	}
	if (rc == 0)
		rc = write_modules_new(cm);
	return rc;
}

int
cm_daemon_build(struct cm *cm)
{
	int rc = open_write_state(cm);

	if (rc < 0)
		return rc;
	rc = loop_modules_new(cm);
	if (rc < 0) {
		log_err(LOG_MAIN, "cannot set up the event loop: %s",
			strerror(-rc));
		return rc;
	}
	/* A namespace has one control socket for all (ctl_ns.c). */
	return cm->ns ? 0 : cm_ctl_start(cm);
}

/* --- recovery, on the loop thread --- */

struct start_job {
	struct cm_job job;
	struct cm *cm;
	uint64_t since;
};

/*
 * The first job: follow the events, finish what a crash left half done
 * (logged ops, then dirty files: mut_resume() calls wb_resume_crashed()
 * when the log is through or the server does not answer; disconnected,
 * the log waits for reintegration and dirty files are logged now), then
 * re-apply the recorded pins.
 */
static void
recover(struct cm_loop *loop, struct cm_job *job)
{
	struct start_job *sj = container_of(job, struct start_job, job);
	struct cm *cm = sj->cm;
	int rc;

	(void)loop;
	mut_events_from(cm->mut, sj->since);
	rc = ev_start(cm->evs, sj->since);
	if (rc < 0)
		log_err(LOG_EV, "cannot follow events: %s", strerror(-rc));
	free(sj);
	replay_set_writeback(cm->replay, cm->cfg.writeback, NULL, NULL);
	if (cm_offline(cm)) {
		struct proto_attr ra;

		/* A cache whose metadata was lost (emptied as damaged,
		 * deleted) serves nothing disconnected, the root first. */
		if (cm->mc && mcache_attr(cm->mc, &cm->vi.root, &ra) < 0)
			log_warn(LOG_OFF, "disconnected, and the metadata "
					  "cache holds nothing of the volume's "
					  "root (lost or emptied): nothing can "
					  "be served until 'fs reconnect'");
		conn_start(cm->conn);
		wb_resume_crashed(cm->wb);
	} else if (!replay_resume(cm->replay)) {
		/* Sync mode and nothing logged as writeback: resend what a
		 * crash left INFLIGHT, then store the dirty files. */
		mut_resume(cm->mut);
	}
	if (!cm_stopping(&cm->loop) && cm->vc)
		pin_restore(cm->pin);
}

int
cm_daemon_start(struct cm *cm)
{
	struct start_job *sj;
	uint64_t seq = 0;
	int rc;

	vc_get_seq(cm->vc, &seq);
	mut_show_lates(cm->mut);
	rc = cm_loop_run(&cm->loop);
	if (rc < 0)
		return rc;
	sj = calloc(1, sizeof(*sj));
	if (!sj)
		return -ENOMEM;
	sj->job.run = recover;
	sj->cm = cm;
	sj->since = seq;
	cm_post(&cm->loop, &sj->job);
	return 0;
}

/* --- teardown, once, in reverse --- */

/* On the loop thread (or here, if it never ran). Cancelling the HTTP
 * client answers every parked request (EIO) from its callback, inside
 * http_free(); pins go after fetch and meta so no callback reaches a
 * freed pin job. */
void
cm_daemon_teardown(void *arg)
{
	struct cm *cm = arg;

	/* Pending attributes into the file before ev_stop() saves the
	 * event sequence (the events it passes may rely on them). */
	if (cm->mc)
		mcache_sync_attrs(cm->mc, SIZE_MAX);
	ev_stop(cm->evs);
	replay_stop(cm->replay);
	conn_stop(cm->conn);
	http_free(cm->http);
	cm->http = NULL;
	mut_stop(cm->mut);
	fetch_stop(cm->fetch);
	acc_free(cm->acc);
	cm->acc = NULL;
	mfetch_free(cm->mf);
	cm->mf = NULL;
	pin_free(cm->pin);
	cm->pin = NULL;
	ev_free(cm->evs);
	cm->evs = NULL;
}

void
cm_daemon_stop(struct cm *cm)
{
	if (cm->ns) {
		/* Torn down by the namespace's loop stop (daemon_ns.c). */
		cm_loop_stop(&cm->loop, NULL, NULL);
		return;
	}
	cm_ctl_stop(cm);
	cm_loop_stop(&cm->loop, cm_daemon_teardown, cm);
}

void
cm_daemon_close(struct cm *cm)
{
	char stats[4096];

	cm_stats_format(cm, stats, sizeof(stats));
	for (char *l = strtok(stats, "\n"); l; l = strtok(NULL, "\n"))
		log_info(LOG_MAIN, "stat %s", l);
	/* What FUSE threads used until the session was gone, in the
	 * reverse of the order loop_modules_new() built it. */
	replay_free(cm->replay);
	cm->replay = NULL;
	local_free(cm->local);
	cm->local = NULL;
	wb_free(cm->wb);
	cm->wb = NULL;
	mut_free(cm->mut);
	cm->mut = NULL;
	fetch_free(cm->fetch);
	cm->fetch = NULL;
	mcache_free(cm->mc);
	cm->mc = NULL;
	ino_free(cm->ino);
	cm->ino = NULL;
	/* last of the loop's modules: FUSE threads read the mode until the
	 * session is gone */
	conn_free(cm->conn);
	cm->conn = NULL;
	rlog_close(cm->rlog);
	cm->rlog = NULL;
	vc_close(cm->vc);
	cm->vc = NULL;
	if (!cm->cs_shared)
		cs_close(cm->cs);
	cm->cs = NULL;
}
