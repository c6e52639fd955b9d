/*
 * vold.h - cairn-vold internals shared by vold.c (program: options, config
 * file, daemon) and vold_http.c (the HTTP front: routes, volumes, event
 * streams, chunk cache). Not a library: nothing outside vol/ includes it.
 *
 * Threads: everything here runs on the one event-loop thread, except what
 * vold_http.c hands to the worker pool (vold_pool.h).
 */
#ifndef CAIRN_VOLD_H
#define CAIRN_VOLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/conf.h"

struct event_base;
struct vs_root;
struct vold;

/* Admission defaults (doc/protocol.md, "Limits"). Loopback is not exempt. */
#define VOLD_DEFAULT_MAX_CONNS 1024
#define VOLD_DEFAULT_MAX_CONNS_ADDR 64
#define VOLD_DEFAULT_REQUEST_DEADLINE 30
#define VOLD_DEFAULT_MAX_STREAMS_TOKEN 8

/* Settings: command line over config file over defaults. Strings are
 * heap (free with vold_conf_release()). */
struct vold_conf {
	char *root;	 /* server root (--root, [vold] root) */
	char *listen;	 /* ADDR:PORT, [::1]:PORT (default 127.0.0.1:7070) */
	char *port_file; /* write the bound port here */
	char *cert, *key; /* PEM files: HTTPS when both are set */
	char *pidfile;
	char *metrics_listen;	 /* GET /metrics here: ADDR:PORT, or PORT
				    for 127.0.0.1; NULL: no metrics */
	char *metrics_port_file; /* write the metrics port here */
	int workers;	 /* disk worker threads (default 4) */
	int timeout_s;	 /* HTTP read/write timeout (default 60) */
	int cache_objects; /* open data files kept for chunk GETs (1024) */
	int max_conns;	    /* connections in all (VOLD_DEFAULT_MAX_CONNS) */
	int max_conns_addr; /* connections from one address */
	int request_deadline_s; /* to receive one request, head and body */
	int max_streams_token;	/* event streams open with one token */
	uint64_t stage_max; /* bytes staged per volume, 0 = only the quota */
	bool no_journal;    /* journal = no: tdb's own commits only */
	uint64_t journal_max; /* journal-checkpoint: bytes, 0 = default */
	int stage_expire_s; /* staged uploads removed this long after their
			       creation (0 = VS_STAGE_AGE_S) */
	char *access_log;   /* access log file, "-" for stderr, NULL: none */
	int log_level;
	bool use_syslog;
	bool foreground;
	struct conf_origins origins; /* where each setting came from */
	const char *const *skip;     /* while loading: keys the command
					line gives (vold.c) */
};

void vold_conf_release(struct vold_conf *c);

/*
 * Start serving: bind conf->listen, set up HTTP(S) with the limits of
 * doc/protocol.md and the worker pool. @key is the token key (copied).
 * @return 0 and *out, or -errno (logged).
 */
int vold_start(const struct vold_conf *conf, struct event_base *base,
	       struct vs_root *root, const uint8_t *key, size_t keylen,
	       struct vold **out);

/* The TCP port actually bound (port 0 asked = the one the kernel chose). */
int vold_port(const struct vold *vd);
/* The address as bound, for the "listening on" line. */
const char *vold_addr(const struct vold *vd);
/* The port of the metrics listener, 0 if there is none. */
int vold_metrics_port(const struct vold *vd);

/* Forget every volume not in use so the next request reopens it (SIGHUP:
 * volumes created or removed by vos meanwhile). */
void vold_rescan(struct vold *vd);

/* SIGUSR2: another process knocks on a volume we journal (vs_jlock.c):
 * look at every open volume now rather than at the next tick. */
void vold_knock(struct vold *vd);

/*
 * The access log: one line per answered request, written with one
 * write(2) to @fd (O_APPEND) from the loop thread: the time (UTC), the
 * peer, the method, the path and query (escaped; tokens travel only in the
 * Authorization header, never here), the status, the body bytes ("-" for
 * a streamed reply) and the time from the request's head to the reply's
 * end. @fd -1: none. The server takes @fd over and closes the one it had
 * (SIGHUP reopens the file: log rotation). Loop thread.
 */
void vold_set_access_log(struct vold *vd, int fd);

/* Stop accepting, end event streams, let running jobs finish (bounded),
 * close every volume, free. Loop thread; the loop must not be running. */
void vold_stop(struct vold *vd);

#endif /* CAIRN_VOLD_H */
