/*
 * cm.h - the shared context of cairnd: configuration, the stores, the
 * module handles, the volume information and mode. The event loop runtime
 * is cm/loop.h (struct cm_loop), the counters cm/stats.h (struct
 * cm_stats); struct cm embeds one of each. daemon.c builds the modules.
 *
 * Layer rule: FUSE-free (this header is part of libcm), level 2 of
 * doc/cm.md "Levels": it includes no other cm/ header but the level-1
 * ones (conn.h for the connection modes, loop.h, stats.h). The FUSE front
 * (fuse_ops.c) plugs kernel notifications in through struct cm_kernel_ops
 * (loop.h), so the modules below it never include fuse_lowlevel.h; the
 * hook tables below (and mut.h's, wb.h's) let a lower module call a
 * higher one without including it.
 *
 * Threads: loop.h.
 *
 * Locks. The only nesting is ino table lock (inode.h) > vc lock (vc.h) >
 * cs lock (chunkstore, internal): a thread holding one may take those to
 * its right, never to its left. Every other lock is a leaf: nothing else
 * is locked and no other module is called while it is held.
 *   wb->lock (wb.c: write states; only its own dirty.tdb under it)
 *   rlog's l->lock (the tdb) and l->qlock (group-commit queue): rlog.c
 *     drops qlock before it takes l->lock, so they do not nest either
 *   cm->lock (volinfo), cm->loop.qlock (the job queue, loop.c)
 *   fetch.c's slock (store thread queue), http.c's submit lock
 *   fuse_ops.c: the notifier's mu, and struct cm_file's mu (readahead
 *     state; fetch_prefetch() is called after it is dropped)
 * cm->loop.stopping is an atomic, read without a lock (cm_stopping()).
 */
#ifndef CAIRN_CM_CM_H
#define CAIRN_CM_CM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/queue.h>

#include "chunkstore/cs.h"
#include "common/fid.h"
#include "common/proto.h"
#include "cm/conn.h"
#include "cm/loop.h"
#include "cm/stats.h"

struct cm;
struct event;
struct event_base;
struct http_client;
struct cs_store;
struct vc;
struct ino_table;
struct mcache;
struct access;
struct mfetch;
struct fetch;
struct evstream;
struct rlog;
struct mut;
struct wb;
struct local;
struct replay;
struct pin;
struct ctl_server;

/* Settings of one cairnd, from the command line and cairn.conf(5). */
struct cm_config {
	char *server;	    /* base URL of cairn-vold */
	char *volume;	    /* volume name */
	char *token_file;   /* file holding the bearer token */
	char *cache_dir;    /* chunk store + metadata cache */
	char *mountpoint;
	char *config_file;  /* what was loaded, or NULL */
	char *fuse_opts;    /* extra -o options, comma-separated, or NULL */
	char *ca_file;	    /* HTTPS CA bundle, or NULL */
	char *ctl_socket;   /* control socket path, or NULL: the default */
	char *proxy;	    /* HTTP proxy URL, or NULL: none (never the
			       environment's http_proxy) */
	uint64_t cache_size;	   /* bytes (cs limit) */
	uint64_t dirty_limit;	   /* bytes; 0: a quarter of cache_size, at
				      most 256 MiB (wb.c) */
	uint32_t chunk_size;	   /* bytes, for a new cache only */
	uint64_t fetch_timeout_ms; /* bound on a miss */
	bool writeback;		   /* write-mode: false sync, true writeback
				      (the mode at start; fs setpolicy
				      changes the running one, replay.c) */
	uint64_t writeback_delay_ms; /* longest wait of a logged change
					before its drain starts */
	double entry_timeout;	   /* seconds the kernel keeps names */
	double attr_timeout;	   /* seconds the kernel keeps attributes */
	unsigned max_parallel;	   /* HTTP transfers at once */
	unsigned readahead_max;	   /* chunks of readahead per open file */
	unsigned threads;	   /* FUSE worker threads (max idle) */
	unsigned ctl_conns_per_uid; /* control connections of one non-root
				       uid; 0 = no per-uid cap */
	int log_level;
	bool foreground;
	bool use_syslog;
	bool allow_insecure_http; /* http:// to a host not on this machine */
};

/* Default values (doc'd in cairnd(8)); fields not set stay NULL/0. */
void cm_config_init(struct cm_config *c);
void cm_config_release(struct cm_config *c);
/*
 * Set one setting by its long-option / ini key name ("server", "cache-size",
 * "fetch-timeout", ...). @return 0, -ENOENT for an unknown key, -EINVAL for
 * a bad value (a message goes to *why, a static string).
 */
int cm_config_set(struct cm_config *c, const char *key, const char *value,
		  const char **why);
/* The write modes' settings, shared by the config and fs setpolicy:
 * "sync" or "writeback"; a duration from 10 ms to 1 h. @return 0 or
 * -EINVAL (nothing changed). */
#define CM_WB_DELAY_MIN_MS 10
#define CM_WB_DELAY_MAX_MS 3600000
int cm_write_mode_parse(const char *v, bool *writeback);
int cm_writeback_delay_parse(const char *v, uint64_t *ms);
/*
 * Load an ini file (inih): keys as cm_config_set(), in the [cairnd]
 * section or before any section. Keys in @skip (NULL-terminated list, may
 * be NULL) are ignored, so the command line wins. @return 0 or -errno;
 * on a bad line *line is its number.
 */
int cm_config_load(struct cm_config *c, const char *path,
		   const char *const *skip, int *line);
/* Check that the required settings are present, and the transport rule
 * below. @return 0 or -EINVAL with *why naming the first missing one, or
 * -EPERM when plain http:// would leave the machine without
 * allow-insecure-http (*why names the option). */
int cm_config_check(const struct cm_config *c, const char **why);

/*
 * The transport rule. The bearer token goes with every request, so plain
 * http:// is accepted only where nobody else can read it: a loopback
 * server (127.0.0.0/8, ::1, "localhost"), reached directly or through a
 * loopback proxy. Anything else needs https:// or allow-insecure-http.
 *
 * cm_url_loopback(): whether the host of the http(s) URL @url is one of
 * those loopback names, written literally; a host name other than
 * "localhost", a numeric form inet_pton() does not take ("127.1"), user
 * information with several '@' or a malformed port count as not loopback,
 * so doubt always falls on the refusing side.
 * cm_config_cleartext(): whether @c's requests cross the network in clear
 * text (the case allow-insecure-http allows, and cairnd then warns about).
 * Both are pure: no name is resolved, nothing is connected.
 */
bool cm_url_loopback(const char *url);
bool cm_config_cleartext(const struct cm_config *c);

/* The chunk store's key of chunk @chunk of @fid. */
static inline void
cm_chunk_key(struct cs_key *k, const struct fid *fid, uint64_t chunk)
{
	memset(k, 0, sizeof(*k));
	k->vol = fid->vol;
	memcpy(k->fid, fid->oid, sizeof(k->fid));
	k->chunk = chunk;
}

struct cm {
	struct cm_config cfg;
	char *token;		/* bearer token read from cfg.token_file */
	uint32_t chunk_size;	/* of the open chunk store */

	struct cm_loop loop;	    /* the loop thread, jobs, kernel ops */
	struct http_client *http;   /* loop thread (submit: any) */
	struct cs_store *cs;	    /* thread-safe */
	struct vc *vc;		    /* thread-safe */
	struct ino_table *ino;	    /* thread-safe (own lock) */
	struct mcache *mc;	    /* cached metadata: any thread, freed
				       after the FUSE threads */
	struct mfetch *mf;	    /* metadata fetches: loop thread only */
	struct access *acc;	    /* control callers' rights: loop thread */
	struct fetch *fetch;	    /* chunks: loop thread (reads: any),
				       freed after the FUSE threads */
	struct evstream *evs;	    /* loop thread only */
	struct rlog *rlog;	    /* thread-safe: the replay log */
	struct mut *mut;	    /* the op log (mut.h): submit from any
				       thread; stopped with the loop, freed
				       after the FUSE threads */
	struct wb *wb;		    /* thread-safe (wb.h) */
	struct pin *pin;	    /* loop thread only (pin.h) */
	struct ctl_server *ctl;	    /* loop thread only (cm_ctl.h) */

	pthread_mutex_t lock;
	struct proto_volinfo vi;    /* protected by lock */
	bool have_vi;		    /* protected by lock */

	atomic_int online;	    /* last server contact worked */
	struct conn *conn;	    /* the mode (conn.h): built by daemon.c,
				       freed after the FUSE threads */
	struct local *local;	    /* loop thread only (local.h) */
	struct replay *replay;	    /* disconnected operation (replay.h):
				       stopped with the loop, freed after
				       the FUSE threads */
	struct cm_stats st;
};

/* The struct cm that embeds @loop: for jobs of modules that still take
 * struct cm * (a job gets only the loop). */
static inline struct cm *
cm_of_loop(struct cm_loop *loop)
{
	return container_of(loop, struct cm, loop);
}

/*
 * Set up @cm's locks and loop queue; cfg is taken over (moved) from @cfg.
 * @return 0 or -errno.
 */
int cm_init(struct cm *cm, struct cm_config *cfg);
void cm_release(struct cm *cm);

/* Any thread: are mutations logged instead of sent? (not CONNECTED;
 * conn.h has the modes) */
static inline bool
cm_offline(struct cm *cm)
{
	return cm->conn && conn_offline(cm->conn);
}

/* The current volume information (copy). @return 0 or -ENOENT. */
int cm_volinfo(struct cm *cm, struct proto_volinfo *vi);

/* Write the counters as "name value\n" lines into @buf (at most @len
 * bytes, NUL-terminated). @return the length. Any thread. */
size_t cm_stats_format(struct cm *cm, char *buf, size_t len);

/* Map an HTTP result (transport errno or status + error body) to a
 * negative errno: what a FUSE request should see. */
int cm_http_errno(int err, long status, const char *body, size_t len);

/* Bearer token from a file: first line, trimmed. The file is opened with
 * O_NOFOLLOW and must pass util_check_secret_file() (a regular file owned
 * by our user, mode 0600 or stricter): anyone who can read the token can
 * read the volume past every file mode (Invariant 6). A refusal is logged
 * with the mode, the owner and the fix. @return heap string or NULL +
 * errno (EPERM refused, ELOOP a symbolic link, EINVAL an empty or binary
 * file). */
char *cm_read_token(const char *path);

#endif /* CAIRN_CM_CM_H */
