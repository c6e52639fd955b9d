/*
 * cm.h - the shared context of cairnd: configuration, the stores, the event
 * loop, the job queue that carries parked FUSE requests to the loop, and the
 * counters. Every module of cm/ takes a struct cm *; daemon.c builds them.
 *
 * Layer rule: FUSE-free (this header is part of libcm), level 2 of
 * doc/cm.md "Levels": it includes no other cm/ header but conn.h (level
 * 1, the connection modes). The FUSE front
 * (fuse_ops.c) plugs kernel notifications in through struct cm_kernel_ops,
 * so the modules below it never include fuse_lowlevel.h; the hook tables
 * below (and mut.h's, wb.h's) let a lower module call a higher one without
 * including it.
 *
 * Threads (DESIGN.md "Data flow"):
 *  - FUSE workers answer what the caches hold, at once. For a miss they
 *    package the request as a struct cm_job and cm_post() it; they never
 *    wait for the network.
 *  - ONE loop thread runs @base: HTTP (http.h), the fetch engine, metadata
 *    fetches, the event stream, and the jobs. Modules whose functions say
 *    "loop thread only" keep their state unlocked for that reason.
 *  - Kernel invalidations are queued by the loop and written to /dev/fuse
 *    by a notifier thread of the FUSE front (doc/cm.md explains why not by
 *    the loop itself: a parked lookup holds the directory's lock in the
 *    kernel that an entry invalidation needs).
 *
 * Locks. The only nesting is ino table lock (inode.h) > vc lock (vc.h) >
 * cs lock (chunkstore, internal): a thread holding one may take those to
 * its right, never to its left. Every other lock is a leaf: nothing else
 * is locked and no other module is called while it is held.
 *   wb->lock (wb.c: write states; only its own dirty.tdb under it)
 *   rlog's l->lock (the tdb) and l->qlock (group-commit queue): rlog.c
 *     drops qlock before it takes l->lock, so they do not nest either
 *   cm->lock (volinfo), cm->qlock (the job queue)
 *   fetch.c's slock (store thread queue), http.c's submit lock
 *   fuse_ops.c: the notifier's mu, and struct cm_file's mu (readahead
 *     state; fetch_prefetch() is called after it is dropped)
 * cm->stopping is an atomic, read without a lock (cm_stopping()).
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

struct cm;
struct event;
struct event_base;
struct http_client;
struct cs_store;
struct vc;
struct ino_table;
struct meta;
struct fetch;
struct evstream;
struct rlog;
struct mut;
struct wb;
struct pin;
struct ctl_server;
struct mut_hooks;
struct wb_hooks;
struct cm_job;

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

/* Kinds of FUSE requests, for the per-kind counters. */
enum cm_req_kind {
	CM_R_LOOKUP,
	CM_R_GETATTR,
	CM_R_READDIR,
	CM_R_OPEN,
	CM_R_READ,
	CM_R_READLINK,
	CM_R_XATTR,
	CM_R_STATFS,
	CM_R_OTHER,
	CM_R_MAX
};

/* DVs made while disconnected have this bit; server DVs never do. */
#define CM_DV_LOCAL (1ull << 63)

/* The chunk store's key of chunk @chunk of @fid. */
static inline void
cm_chunk_key(struct cs_key *k, const struct fid *fid, uint64_t chunk)
{
	memset(k, 0, sizeof(*k));
	k->vol = fid->vol;
	memcpy(k->fid, fid->oid, sizeof(k->fid));
	k->chunk = chunk;
}

/* Counters, relaxed atomics: any thread adds, cm_stats_format() reads. */
struct cm_stats {
	atomic_uint_fast64_t reqs[CM_R_MAX];
	atomic_uint_fast64_t parked;	     /* requests that had to wait */
	atomic_uint_fast64_t chunk_hits;     /* chunk reads served from cs */
	atomic_uint_fast64_t chunk_misses;   /* chunk reads that waited */
	atomic_uint_fast64_t chunks_fetched; /* verified and stored */
	atomic_uint_fast64_t bytes_fetched;
	atomic_uint_fast64_t prefetches;     /* fetches started by readahead */
	atomic_uint_fast64_t fetch_retries;
	atomic_uint_fast64_t fetch_errors;   /* fetches given up */
	atomic_uint_fast64_t bad_chunks;     /* checksum/length mismatches */
	atomic_uint_fast64_t early_reads;    /* served from a verified prefix */
	atomic_uint_fast64_t stale_chunks;   /* 410 replies */
	atomic_uint_fast64_t dir_fetches;
	atomic_uint_fast64_t getattr_reqs;   /* POST getattr requests */
	atomic_uint_fast64_t getattr_fids;
	atomic_uint_fast64_t link_fetches;
	atomic_uint_fast64_t xattr_fetches;
	atomic_uint_fast64_t events;
	atomic_uint_fast64_t own_events;     /* attr events our reply covered */
	atomic_uint_fast64_t ev_reconnects;
	atomic_uint_fast64_t revalidations;
	atomic_uint_fast64_t invalidations;  /* kernel notifications queued */
	atomic_uint_fast64_t stores;	     /* data stores the server took */
	atomic_uint_fast64_t writebacks;     /* stores started by dirty-limit */
	atomic_uint_fast64_t conflicts;	     /* conflict copies saved */
};

#define CM_STAT_ADD(cm, f, n) \
	atomic_fetch_add_explicit(&(cm)->st.f, (n), memory_order_relaxed)
#define CM_STAT_INC(cm, f) CM_STAT_ADD(cm, f, 1)

/*
 * Kernel notifications; set by the FUSE front, NULL-safe (a NULL hook is
 * skipped). Called on the loop thread only; they queue and return.
 */
struct cm_kernel_ops {
	/* Invalidate the attributes (@off < 0) or attributes and cached
	 * data from @off for @len bytes (0 = to the end) of @ino. */
	void (*inval_inode)(void *arg, uint64_t ino, int64_t off, int64_t len);
	/* Drop the kernel's dentry @name in directory @parent. */
	void (*inval_entry)(void *arg, uint64_t parent, const char *name,
			    size_t len);
	/* Post @job to the loop (cm_post) once every notification queued
	 * before this call was written to the kernel, so an answer that
	 * promises "the next stat asks cairnd" is sent after the kernel
	 * forgot. @job is the caller's until it runs; it runs exactly once,
	 * also at shutdown (then on the stopping thread, with
	 * cm_stopping() true). Use cm_kernel_barrier(), which posts @job
	 * at once when no hook is set. */
	void (*barrier)(void *arg, struct cm_job *job);
	void *arg;
};

/*
 * Upward hooks of the read half. meta.c and fetch.c answer reads from the
 * caches; what the modules above them (write states, the op log, pins,
 * disconnected operation) add to a read comes through these, given to
 * meta_new() and fetch_new() by daemon.c, so the read half includes none
 * of those modules (the pattern of cm_kernel_ops and http_set_gate()).
 * They are kept in struct cm and never cleared: FUSE threads may still
 * read while the loop's modules are torn down. NULL-safe: a NULL hook is
 * skipped (no overlay, false, 0).
 */
struct cm_meta_hooks {
	/* Write state (wb): put the local size and times of a file being
	 * written over @a; attributes of an orphan (open, unlinked) @fid
	 * (0 or -ENOENT); does @fid have a write state (its chunks stay). */
	void (*overlay)(struct cm *cm, struct proto_attr *a);
	int (*orphan_attr)(struct cm *cm, const struct fid *fid,
			   struct proto_attr *out);
	bool (*active)(struct cm *cm, const struct fid *fid);
	/* Op log (mut): true if @ev is about an object with an op in flight
	 * (it is held back and applied after the reply). */
	bool (*defer_event)(struct cm *cm, const struct proto_event *ev);
	/* Pins: after @ev was applied to the caches; when an object's DV
	 * changed without an event (a bulk revalidation). */
	void (*applied_event)(struct cm *cm, const struct proto_event *ev);
	void (*dv_changed)(struct cm *cm, const struct proto_attr *a);
};

struct cm_fetch_hooks {
	/* Must a chunk of @fid be stored pinned? */
	bool (*pinned)(struct cm *cm, const struct fid *fid);
	/* How long a failed read may keep retrying (disconnected with
	 * offline-miss=wait), 0: not at all. */
	uint64_t (*miss_wait_ms)(struct cm *cm);
};

/*
 * A unit of work for the loop thread. The poster allocates the job (usually
 * embedded in a bigger struct); @run owns it from then on.
 */
struct cm_job {
	TAILQ_ENTRY(cm_job) link;
	void (*run)(struct cm *cm, struct cm_job *job);
};
TAILQ_HEAD(cm_jobq, cm_job);

struct cm {
	struct cm_config cfg;
	char *token;		/* bearer token read from cfg.token_file */
	uint32_t chunk_size;	/* of the open chunk store */

	struct event_base *base;
	struct http_client *http;   /* loop thread (submit: any) */
	struct cs_store *cs;	    /* thread-safe */
	struct vc *vc;		    /* thread-safe */
	struct ino_table *ino;	    /* thread-safe (own lock) */
	struct meta *meta;	    /* loop thread only */
	struct fetch *fetch;	    /* loop thread only */
	struct evstream *evs;	    /* loop thread only */
	struct rlog *rlog;	    /* thread-safe: the replay log */
	struct mut *mut;	    /* loop thread only (mut.h) */
	struct wb *wb;		    /* thread-safe (wb.h) */
	struct pin *pin;	    /* loop thread only (pin.h) */
	struct ctl_server *ctl;    /* loop thread only (cm_ctl.h) */
	struct cm_kernel_ops kops;
	struct cm_meta_hooks mhooks; /* set by meta_new(), never cleared */
	struct cm_fetch_hooks fhooks; /* set by fetch_new(), never cleared */
	const struct mut_hooks *muth; /* set by mut_new() (mut.h) */
	const struct wb_hooks *wbh;   /* set by wb_new() (wb.h) */

	pthread_mutex_t lock;
	struct proto_volinfo vi;    /* protected by lock */
	bool have_vi;		    /* protected by lock */

	pthread_mutex_t qlock;
	struct cm_jobq queue;	    /* protected by qlock */
	bool qclosed;		    /* protected by qlock: qev is gone, a
				       posted job waits for
				       cm_run_late_jobs() */
	atomic_bool stopping;	    /* set once by cm_loop_stop(); read by
				       any thread (cm_stopping()) */
	struct event *qev;	    /* fired by cm_post() */
	pthread_t loop_thread;
	bool loop_running;

	atomic_int online;	    /* last server contact worked */
	struct conn *conn;	    /* the mode (conn.h): built by daemon.c,
				       freed after the FUSE threads */
	struct offline *off;	    /* loop thread only (offline.h) */
	struct cm_stats st;
};

/*
 * Set up @cm's locks and queue; cfg is taken over (moved) from @cfg.
 * @return 0 or -errno.
 */
int cm_init(struct cm *cm, struct cm_config *cfg);
/* Create the event base (with pthreads support) and the job queue's
 * event; nothing runs yet. @return 0 or -errno. */
int cm_loop_new(struct cm *cm);
/* Run the loop in a new thread: queued jobs start running. */
int cm_loop_run(struct cm *cm);
/*
 * Stop the loop: set cm->stopping, run @teardown (may be NULL) on the loop
 * thread as its last job, join the thread, run what was posted after it
 * (so it fails), free the base. If the loop never ran, @teardown runs
 * here. Safe to call if cm_loop_new() never ran or failed.
 */
void cm_loop_stop(struct cm *cm, void (*teardown)(struct cm *cm));
void cm_release(struct cm *cm);

/* Hand @job to the loop thread; any thread. Returns at once. After
 * cm_loop_stop() began, jobs are run with cm->stopping set so they can
 * fail their requests; once the loop is gone they wait in the queue for
 * cm_run_late_jobs(). */
void cm_post(struct cm *cm, struct cm_job *job);
/* After cm_loop_stop(), once no thread can post any more (the FUSE
 * notifier is joined): run what was posted since, so every job runs
 * exactly once and can answer and free its request. Does nothing before
 * cm_loop_stop() closed the queue. */
void cm_run_late_jobs(struct cm *cm);

/* Has cm_loop_stop() begun? Any thread, no lock: the flag only goes
 * from false to true, and a job posted after it was set still runs (with
 * it set), so a reader that misses the change by a moment is harmless. */
static inline bool
cm_stopping(struct cm *cm)
{
	return atomic_load_explicit(&cm->stopping, memory_order_acquire);
}

/* Any thread: are mutations logged instead of sent? (not CONNECTED;
 * conn.h has the modes) */
static inline bool
cm_offline(struct cm *cm)
{
	return cm->conn && conn_offline(cm->conn);
}

/* Loop thread: run @job on the loop once the kernel notifications queued
 * so far were delivered (cm->kops.barrier), or, with no notifier, soon
 * (cm_post). @job runs exactly once, never inside this call. */
void cm_kernel_barrier(struct cm *cm, struct cm_job *job);

/* Loop thread: run @job on the loop in @ms milliseconds. @return 0 or
 * -errno (then nothing happens: the caller still owns @job). */
int cm_post_after(struct cm *cm, struct cm_job *job, unsigned ms);

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
