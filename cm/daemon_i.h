/*
 * daemon_i.h - struct cm, the context of one cairnd: its settings, the
 * stores, the handle of every module, the volume information. daemon.c
 * builds and tears it down; the front ends (the FUSE handlers, the
 * control handlers) and cairnd.c reach the modules through it.
 *
 * Layer rule: level 7 of doc/cm.md "Levels", included only by the front
 * ends (level 7) and daemon.c, cairnd.c (level 8). A module below them
 * never sees struct cm: its constructor gets what it uses, and what it
 * calls upward goes through hooks with a void *arg that daemon.c fills
 * in (tests/check-layers.sh enforces it).
 */
#ifndef CAIRN_CM_DAEMON_I_H
#define CAIRN_CM_DAEMON_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cm/cm.h"
#include "cm/conn.h"
#include "cm/loop.h"
#include "cm/stats.h"
#include "common/proto.h"

struct access;
struct cs_store;
struct ctl_server;
struct cm_metrics_srv;
struct evstream;
struct fetch;
struct http_client;
struct ino_table;
struct local;
struct mcache;
struct mfetch;
struct mut;
struct pin;
struct replay;
struct rlog;
struct vc;
struct wb;

struct cm {
	struct cm_config cfg;
	char *token;	     /* bearer token read from cfg.token_file */
	uint32_t chunk_size; /* of the open chunk store */

	struct cm_loop loop;	  /* the loop thread, jobs, kernel ops */
	struct http_client *http; /* loop thread (submit: any) */
	struct cs_store *cs;	  /* thread-safe */
	struct vc *vc;		  /* thread-safe */
	struct ino_table *ino;	  /* thread-safe (own lock) */
	struct mcache *mc;	  /* cached metadata: any thread, freed
				     after the FUSE threads */
	struct mfetch *mf;	  /* metadata fetches: loop thread only */
	struct access *acc;	  /* control callers' rights: loop thread */
	struct fetch *fetch;	  /* chunks: loop thread (reads: any),
				     freed after the FUSE threads */
	struct evstream *evs;	  /* loop thread only */
	struct rlog *rlog;	  /* thread-safe: the replay log */
	struct mut *mut;	  /* the op log (mut.h): submit from any
				     thread; stopped with the loop, freed
				     after the FUSE threads */
	struct wb *wb;		  /* thread-safe (wb.h) */
	struct pin *pin;	  /* loop thread only (pin.h) */
	struct ctl_server *ctl;	  /* loop thread only (cm_ctl.h) */
	struct cm_metrics_srv *msrv; /* loop thread only: metrics-listen */

	pthread_mutex_t lock;
	struct proto_volinfo vi; /* protected by lock */
	bool have_vi;		 /* protected by lock */

	atomic_int online;     /* last server contact worked */
	/* When the server was found away (a refused connection) in the
	 * current run of failures, util_now_ms(); 0 once it answers. Read
	 * and written by fetch.c and events.c: loop thread only. */
	uint64_t away_ms;
	struct conn *conn;     /* the mode (conn.h): built by daemon.c,
				  freed after the FUSE threads */
	struct local *local;   /* loop thread only (local.h) */
	struct replay *replay; /* disconnected operation (replay.h):
				  stopped with the loop, freed after
				  the FUSE threads */
	struct cm_stats st;

	/* One volume of a namespace (NULL/0 when cairnd serves one volume,
	 * as it always did). Set by daemon_ns.c before cm_daemon_open(),
	 * read-only after. */
	struct cm_ns *ns;   /* the namespace this volume is in */
	unsigned slot;	    /* 1..: its inode slot (CM_NS_SLOT) */
	uint64_t ino_base;  /* (uint64_t)slot << CM_NS_SLOT_SHIFT */
	const char *ns_dir; /* its name under the mount root */
	bool cs_shared;	    /* cs is the namespace's: do not close it */
	bool ns_failed;	    /* could not be opened: its directory
			       answers EIO (the others are served) */
	bool ns_dup;	    /* left out for a duplicate volume id: not
			       retried (daemon_ns.c) */
	bool ns_hidden;	    /* removed from the config by a reload: not
			       listed nor looked up in the mount root,
			       still served by inode (cm_ns_hidden()) */

	/*
	 * Mount points (FUSE front end, doc/cm.md "Mount points"): a lookup
	 * that lands on a mount-point object whose target is volume @volume
	 * (as stored: "VOLUME" or "ALIAS:VOLUME", proto_mount_target_check())
	 * calls this with the lookup's @req (a fuse_req_t).
	 * @return 0: the hook answers @req (the target volume's root entry,
	 * now or later from the loop, or an error); -EACCES (any negative
	 * errno): the volume is not served here, and the caller answers @req
	 * with the mount point itself (an empty, unreadable directory). NULL:
	 * every mount point is such a directory. Set by whoever builds the
	 * namespace, before the session starts; called on a FUSE worker
	 * thread, or on the loop thread when the lookup had to fetch the
	 * target first; it must not block on the network.
	 * (A namespace sets fuse_ns.c's fns_cross, @cross_arg the volume.)
	 */
	int (*cross)(void *arg, const char *volume, void *req);
	void *cross_arg;
};

/*
 * The inode numbers of a namespace. The kernel sees one inode space for
 * the whole mount: FUSE_ROOT_ID (1) is the namespace root cairnd
 * synthesizes (a read-only directory of the configured volumes), and
 * volume i (0..) hands out numbers from its slot, i + 1, in the high
 * bits (inode.h ino_new_at()): its root is base | 1. Every handler finds
 * its volume from the number it is given; kernel notifications carry the
 * numbers as the volume's table has them, no translation needed.
 */
#define CM_NS_SLOT_SHIFT 48
#define CM_NS_SLOT(ino)	 ((unsigned)((uint64_t)(ino) >> CM_NS_SLOT_SHIFT))

/*
 * A namespace: one cairnd serving several volumes under one mount root
 * (cairnd.conf(5) "[volume DIR]"). Built by daemon_ns.c: one chunk store
 * (the index shared, chunk keys carry the server's volume id), one loop
 * thread (@loop owns it; each volume's loop is attached, loop.h), one
 * FUSE session and control socket; per volume a struct cm of its own
 * with its own connection (so its own offline mode), metadata cache,
 * replay log and write states under CACHE/vol/DIR.
 */
struct cm_ns {
	struct cm_config cfg; /* the whole config (vols[] listed) */
	struct cs_store *cs;  /* shared by every volume */
	uint32_t chunk_size;
	struct cm_loop loop;	/* the loop thread; volumes attach */
	struct ctl_server *ctl; /* loop thread only: the one control socket */
	struct cm *metrics_vol; /* whose cm->msrv is the metrics-listen
				   listener (ctl_ns.c), or NULL */
	/* Volumes: grows on a reload that adds one (up to cap), never
	 * shrinks; changed on the loop thread only (a release store after
	 * vols[n] is set), read elsewhere with cm_ns_count(). */
	size_t n;
	size_t cap; /* vols[] has room for this many (CM_NS_MAX_VOLUMES) */
	/* [cap]; vols[i]->slot == i + 1. A volume left out at start is
	 * retried (daemon_ns.c): once its server answers, the loop thread
	 * replaces vols[i] with the served struct cm (a release store); a
	 * thread other than the loop reads it with cm_ns_vol(). The struct
	 * it replaced stays allocated until cm_ns_close(). */
	struct cm **vols;
	uint64_t root_ctime_ns; /* the namespace root's times: the start */

	/* Called on the loop thread when a volume left out at start has
	 * been built and is about to be served (its modules exist, its loop
	 * is attached, it is not yet in vols[]): the front end starts what
	 * it needs for it (cairnd.c: the notifier thread, the cross hook).
	 * @return 0, or -errno: the volume stays out. Set before
	 * cm_ns_start(). */
	int (*on_attach)(void *arg, struct cm *cm);
	void *on_attach_arg;
	struct ns_retry *retry; /* daemon_ns.c: the retrier's state */
};

/* Any thread: how many slots @ns has now (served, left out, removed). */
static inline size_t
cm_ns_count(struct cm_ns *ns)
{
	return __atomic_load_n(&ns->n, __ATOMIC_ACQUIRE);
}

/* Any thread: has a reload removed @cm from the mount root's listing? */
static inline bool
cm_ns_hidden(struct cm *cm)
{
	return __atomic_load_n(&cm->ns_hidden, __ATOMIC_ACQUIRE);
}

/* Any thread: volume @i of @ns (i < cm_ns_count(ns)). */
static inline struct cm *
cm_ns_vol(struct cm_ns *ns, size_t i)
{
	return __atomic_load_n(&ns->vols[i], __ATOMIC_ACQUIRE);
}

/* Any thread: the volume of a namespace named @dir, or NULL. */
struct cm *cm_ns_find(struct cm_ns *ns, const char *dir, size_t len);
/* Any thread: the volume of inode number @ino (its slot), or NULL (the
 * namespace root, or no such slot). */
struct cm *cm_ns_of_ino(struct cm_ns *ns, uint64_t ino);

/* The struct cm that embeds @loop: for front-end jobs that carry no
 * pointer of their own (a job gets only the loop). */
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

#endif /* CAIRN_CM_DAEMON_I_H */
