/*
 * conn.h - the connection state of cairnd: connected, disconnected or
 * reintegrating, the network gate (http_set_gate()) that refuses requests
 * while disconnected, the server probes of an automatic disconnection and
 * the rules for moving between the modes.
 *
 * Layer rule: FUSE-free (libcm), level 1 of doc/cm.md "Levels": it
 * includes only http.h (level 0). What the modes mean for the rest of
 * cairnd (logging mutations, replaying them) is replay.c's business; conn
 * reaches it only through struct conn_hooks, which daemon.c fills in.
 *
 * Transitions (anything else is refused and changes nothing):
 *   CONNECTED     -> DISCONNECTED   conn_disconnect(): `fs disconnect`
 *                                   (manual: no probes) or a mutation,
 *                                   replay or resend at start
 *                                   (mut_resume()) that got no answer
 *                                   (auto: probes every 1 s doubling to
 *                                   30 s)
 *   REINTEGRATING -> DISCONNECTED   conn_disconnect(): the server was lost
 *                                   during the replay
 *   DISCONNECTED  -> DISCONNECTED   conn_disconnect(manual) of an auto
 *                                   disconnection makes it manual (no hook)
 *   DISCONNECTED  -> REINTEGRATING  a probe answered 200 (auto only), or
 *                                   conn_reconnect() (`fs reconnect`)
 *   REINTEGRATING -> CONNECTED      conn_reintegrated(): the replay ended
 * The mode is kept in <cache>/mode while not connected, so a restart
 * keeps it (and an auto disconnection probes again: conn_start()).
 *
 * Threads: conn_mode(), conn_offline() and the gate from any thread (the
 * mode is an atomic); the rest on the loop thread.
 */
#ifndef CAIRN_CM_CONN_H
#define CAIRN_CM_CONN_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct http_client;
struct conn;

/* Modes of the cache manager. */
enum cm_mode {
	CM_CONNECTED = 0,
	CM_DISCONNECTED = 1,
	CM_REINTEGRATING = 2,
};

/* "connected", "disconnected", "reintegrating" (fs status). */
const char *cm_mode_name(int mode);

/*
 * Upward hooks, called on the loop thread, each exactly once per
 * transition and after the mode has changed. NULL-safe.
 */
struct conn_hooks {
	/* Now DISCONNECTED (from CONNECTED or REINTEGRATING). */
	void (*went_offline)(void *arg, bool manual, const char *why);
	/* Now REINTEGRATING (a probe answered, or conn_reconnect()):
	 * start the replay; it ends with conn_reintegrated() or
	 * conn_disconnect(). */
	void (*reintegrate)(void *arg);
	/* Is cairnd stopping? Then an answered probe starts nothing. */
	bool (*stopping)(void *arg);
	void *arg;
};

/*
 * Before the loop runs: read <cache>/mode (@cache_dir; NULL: none kept),
 * install the gate on @http (may be NULL: no gate, no probes). @h is
 * copied. @return the handle or NULL + errno.
 */
struct conn *conn_new(struct event_base *base, struct http_client *http,
		      const char *cache_dir, const struct conn_hooks *h);
/* Loop thread, once running: probe if auto-disconnected. */
void conn_start(struct conn *c);
/* Loop thread, before @base and the HTTP client go: stop the probes and
 * forget them. The mode stays readable until conn_free(). */
void conn_stop(struct conn *c);
/* After every thread that reads the mode is gone. NULL-safe. */
void conn_free(struct conn *c);

/* Any thread. */
int conn_mode(const struct conn *c);
/* Are mutations logged instead of sent? (not CONNECTED) */
bool conn_offline(const struct conn *c);

/*
 * The write mode (doc/cm.md "Write modes"), kept here beside the mode
 * because both decide one thing: is a mutation logged and applied
 * locally (replay.c's path), or sent at once (mut.c's)? Writeback logs
 * while connected too. conn_logs_changes(): not connected, or
 * writeback. Any thread; replay.c sets it (a switch to sync only once
 * the log is drained, so nothing sent at once overtakes a logged
 * change).
 */
void conn_set_writeback(struct conn *c, bool on);
bool conn_writeback(const struct conn *c);
bool conn_logs_changes(const struct conn *c);

/* Loop thread: fs status. */
bool conn_manual(const struct conn *c);
int64_t conn_since_ms(const struct conn *c);

/*
 * Loop thread. @return 0 (now DISCONNECTED, went_offline was called), 1
 * already disconnected (a @manual request makes an auto disconnection
 * manual: its probes stop).
 */
int conn_disconnect(struct conn *c, bool manual, const char *why);
/*
 * fs reconnect, loop thread: a manual disconnection becomes automatic;
 * DISCONNECTED -> REINTEGRATING (reintegrate is called). @return 0, 1
 * already connected (refused), -EINPROGRESS reintegrating already (no new
 * replay; the running one goes on).
 */
int conn_reconnect(struct conn *c);
/* REINTEGRATING -> CONNECTED, loop thread. @return 0 or -EINVAL (not
 * reintegrating: nothing changes). */
int conn_reintegrated(struct conn *c);

/*
 * offline-miss policy: @wait false (error, the default): while
 * disconnected the gate refuses every gated request with -EHOSTUNREACH;
 * true: requests are tried with the usual bound, a miss may wait @wait_ms
 * (0: fetch-timeout) for the reconnection. Any thread.
 */
void conn_set_miss_policy(struct conn *c, bool wait, unsigned wait_ms);
bool conn_miss_policy(const struct conn *c, unsigned *wait_ms);

#endif /* CAIRN_CM_CONN_H */
