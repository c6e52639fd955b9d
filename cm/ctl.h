/*
 * ctl.h - cairnd's control socket server: accepts fs(1) connections on a
 * Unix socket, reads framed requests (common/ctl_proto.h), identifies the
 * caller, enforces the root-only rule, and hands each request to a handler
 * from a table the cache manager fills in.
 *
 * Layer rule: FUSE-free and cache-free. This module knows the wire format
 * and the peer's credentials, nothing about inodes, chunks or the server;
 * what a request means is the handlers' business (doc/control.md,
 * "Implementing the handlers in cairnd").
 *
 * What the server does before a handler runs:
 *  - frames are checked (magic, version, type, flags, size <= 1 MiB); a bad
 *    frame gets an ERROR with id 0 and the connection is closed;
 *  - the payload must be a JSON object matching the type's schema
 *    (ctl_args_check()); otherwise an ERROR EINVAL for that id, and the
 *    connection stays usable;
 *  - a CTL_TF_ROOT type from a peer whose uid is not 0 gets EPERM;
 *  - a NULL handler gets ENOSYS.
 * So a handler may rely on its arguments' presence and types, and on "path"
 * being a clean mount-relative path. It still checks permissions on the
 * objects it touches, with ctl_peer_may().
 *
 * Threads: everything here, handlers included, runs on the thread running
 * the event_base given to ctl_server_new() ("the loop thread"). ctl_reply_*,
 * ctl_progress and the ctl_call accessors must be called on that thread too;
 * work done elsewhere hops back with event_base_once() or the like.
 * NEEDSWORK: a thread-safe reply queue, if handlers ever answer from FUSE
 * worker threads.
 *
 * Lifetime of a call: the handler receives the only reference to @call and
 * must answer it exactly once, with ctl_reply_ok(), ctl_reply_err() or
 * ctl_reply_err_detail() - now or later. Answering frees the call. If the
 * client goes away first, the call is "cancelled": its cancel callback (if
 * set) runs once, ctl_progress() returns -ECANCELED, and the eventual answer
 * is discarded - but the handler must still answer, to free it. Calls
 * outlive ctl_server_free() the same way.
 */
#ifndef CAIRN_CM_CTL_H
#define CAIRN_CM_CTL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <jansson.h>

#include "common/ctl_proto.h"

struct event_base;
struct ctl_server;
struct ctl_call;

#define CTL_PEER_GROUPS_MAX 256

/* Who is asking: SO_PEERCRED at accept time, plus supplementary groups
 * (SO_PEERGROUPS, the first CTL_PEER_GROUPS_MAX of them; or on kernels
 * without it /proc/PID/status "Groups:", used only when its "Uid:" and
 * "Gid:" still match the peer's). */
struct ctl_peer {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	size_t ngroups;
	gid_t groups[CTL_PEER_GROUPS_MAX];
};

/*
 * A request handler. @args is the request's payload (borrowed: valid during
 * the call only; json_incref() what you keep). @peer is valid until @call
 * is answered (it is also ctl_call_peer(call)).
 */
typedef void (*ctl_handler_fn)(void *arg, struct ctl_call *call,
			       const struct ctl_peer *peer, json_t *args);

/* The handler table, indexed by request type:
 *     static const struct ctl_handlers h = { .on = {
 *             [CTL_PIN] = cm_ctl_pin, [CTL_STATUS] = cm_ctl_status } };
 * A NULL slot answers ENOSYS. */
struct ctl_handlers {
	ctl_handler_fn on[CTL_REQ_MAX + 1];
};

/* Limits; ctl_server_new() starts with the defaults below. */
struct ctl_limits {
	unsigned max_conns;	   /* open connections; more are refused (64) */
	unsigned max_conns_per_uid; /* open connections of one non-root uid
				       (8; 0 = no per-uid cap). Root has no
				       per-uid cap, and the last
				       CTL_ROOT_RESERVE of max_conns are
				       root's alone */
	unsigned max_pending;	   /* unanswered calls per connection; reading
				      pauses at this many (16) */
	size_t max_outbuf;	   /* PROGRESS is dropped while a connection's
				      unsent output exceeds this (256 KiB) */
	unsigned idle_timeout_ms;  /* close a connection idle this long with
				      no call pending (60000) */
	unsigned write_timeout_ms; /* close a client that does not read its
				      replies for this long (30000) */
};

/* Connections of max_conns that only root may use, so that users who fill
 * the socket never lock root out (fs disconnect, flushall, ...). */
#define CTL_ROOT_RESERVE 4

/* Bounds of a client-supplied timeout (e.g. checkservers' "timeout_ms"):
 * a call that parks on the network holds a connection and a pending slot,
 * so no client may ask for more than CTL_TIMEOUT_MAX_MS. */
#define CTL_TIMEOUT_MAX_MS 60000u

/*
 * The timeout a request asks for in its integer member @key of @args, in
 * ms: @dflt when absent or 0, CTL_TIMEOUT_MAX_MS when larger than that.
 * Any thread (no state).
 */
unsigned ctl_timeout_ms(const json_t *args, const char *key, unsigned dflt);

/*
 * Listen on @sockpath (a directory missing above it is created 0755; the
 * socket is made 0666 - who may do what is checked per request). A stale
 * socket file is removed only if nobody answers on it; a live one gives
 * -EADDRINUSE, a non-socket file -EEXIST. @h is copied; @arg is passed to
 * every handler. Call on the loop thread or before the loop runs.
 * @return the server, or NULL with *err set to a negative errno.
 */
struct ctl_server *ctl_server_new(struct event_base *base, const char *sockpath,
				  const struct ctl_handlers *h, void *arg,
				  int *err);

/*
 * Stop listening, close every connection (cancelling their calls; handlers
 * still answer them later, harmlessly), remove the socket file if it is
 * still ours, and free. NULL is fine. Never call it from inside a handler.
 */
void ctl_server_free(struct ctl_server *s);

/* Read or change the limits (applied to new work; loop thread). */
void ctl_server_get_limits(const struct ctl_server *s, struct ctl_limits *l);
void ctl_server_set_limits(struct ctl_server *s, const struct ctl_limits *l);

/* Counters, for logs and tests. */
struct ctl_stats {
	uint64_t conns_accepted;
	uint64_t conns_refused; /* over max_conns or max_conns_per_uid */
	uint64_t calls;		/* handed to a handler */
	uint64_t bad_frames;	/* closed for a bad header or size */
	uint64_t bad_requests;	/* EINVAL, EPERM, ENOSYS before a handler */
	uint64_t progress_dropped;
	unsigned conns_open;
	unsigned calls_pending;
};
void ctl_server_get_stats(const struct ctl_server *s, struct ctl_stats *st);

/*
 * Tests only: after SO_PEERCRED is read for a new connection, @fn may
 * rewrite the peer (e.g. pretend uid 65534 while the test runs as root).
 */
void ctl_server_set_peer_hook(struct ctl_server *s,
			      void (*fn)(void *arg, struct ctl_peer *p),
			      void *arg);

/* Answer @call with OK and @result (reference stolen; NULL = {}). Frees
 * @call. A result whose JSON exceeds CTL_PAYLOAD_MAX is turned into an
 * ERROR EMSGSIZE (paginate big answers). */
void ctl_reply_ok(struct ctl_call *call, json_t *result);
/* Have @fn(@arg, result) edit @call's OK result before it is sent (a
 * router that gave a handler a path of its own puts the full path back,
 * ctl_ns.c). @arg must live until the call is answered. Loop thread. */
void ctl_call_set_filter(struct ctl_call *call,
			 void (*fn)(void *arg, json_t *result), void *arg);

/* Answer @call with ERROR: @err a positive or negative errno, @msg a
 * human sentence (NULL = strerror). Frees @call. */
void ctl_reply_err(struct ctl_call *call, int err, const char *msg);

/* Like ctl_reply_err(), with the members of @detail (reference stolen, an
 * object or NULL) added to the error payload, e.g. {"bytes_short": N} for
 * a pin that does not fit. errno/error/message cannot be overridden. */
void ctl_reply_err_detail(struct ctl_call *call, int err, json_t *detail,
			  const char *msg);

/*
 * Send a PROGRESS message (reference to @p stolen) if the client asked for
 * progress (CTL_FL_PROGRESS). @return 0 if queued or not wanted, -ENOBUFS
 * if dropped because the client reads too slowly (progress is lossy; send
 * at most ~10 per second), -ECANCELED if the client is gone.
 */
int ctl_progress(struct ctl_call *call, json_t *p);

/* 1 if the client has gone away (the answer will be discarded). */
int ctl_call_cancelled(const struct ctl_call *call);

/* The request's type and caller. */
unsigned ctl_call_type(const struct ctl_call *call);
const struct ctl_peer *ctl_call_peer(const struct ctl_call *call);

/* Run @fn(@arg, @call) once if the client goes away before the answer
 * (also at ctl_server_free()). @fn must not free @call except by answering
 * it, which it may do. One callback per call; a second replaces the first. */
void ctl_call_on_cancel(struct ctl_call *call,
			void (*fn)(void *arg, struct ctl_call *call),
			void *arg);

/*
 * May @p access an object with permission bits @mode (st_mode; with S_IFDIR
 * set, root may always search), owner @uid, group @gid? @want is a mask of
 * R_OK, W_OK, X_OK. POSIX classes: owner bits if @p owns it, else group
 * bits if @gid is @p's group or a supplementary group, else other bits.
 * Root may read and write anything and execute anything with an x bit.
 * @return 0 if allowed, -EACCES if not.
 */
int ctl_peer_may(const struct ctl_peer *p, uint32_t mode, uint32_t uid,
		 uint32_t gid, int want);

/* 1 if @gid is @p's group or one of its supplementary groups, else 0. */
int ctl_peer_in_group(const struct ctl_peer *p, gid_t gid);

/*
 * Fill @p's groups from a /proc/PID/status text @f (the fallback for
 * kernels without SO_PEERGROUPS; public for the unit test): only when its
 * effective uid and gid ("Uid:", "Gid:") are @p->uid, @p->gid.
 * @return 0, or -ESRCH (another process now: @p gets no groups).
 */
int ctl_peer_groups_parse(struct ctl_peer *p, FILE *f);

#endif /* CAIRN_CM_CTL_H */
