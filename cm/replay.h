/*
 * replay.h - disconnected operation of cairnd: the local application of
 * mutations while disconnected, and reintegration. The modes themselves,
 * the network gate and the probes are conn.h's; conn.c calls up here
 * through the hooks offline_went_offline() and offline_reintegrate(),
 * which daemon.c gives it.
 *
 * Layer rule: FUSE-free (libcm).
 *
 * Modes (conn.h): CONNECTED -> DISCONNECTED by `fs disconnect` (manual:
 * stays until `fs reconnect`) or when the server stops answering a
 * mutation for fetch-timeout (auto: conn.c probes and reconnects by itself
 * when one answers). DISCONNECTED -> REINTEGRATING -> CONNECTED: the
 * replay log is sent in order; new mutations meanwhile are logged too
 * (they go after it).
 *
 * While disconnected (and reintegrating), every mutation is appended to
 * the replay log as a PENDING record, durably (fsync), before the call
 * returns, and applied to the caches as the server would: objects made
 * offline and directories changed offline get local DVs (CM_DV_LOCAL), so
 * none of it can pass for the server's; a bulk revalidation after
 * reintegration replaces it. The network is gated: requests other than
 * probes and the replay fail at once (offline-miss=error, the default) or
 * are tried with the usual bound (offline-miss=wait).
 *
 * Reintegration replays records in seq order. A record's base DV is the
 * server's when we went offline; once a record about an object succeeded,
 * later records about it are based on our own change and are sent with the
 * DV the server gave it. A refusal never loses anything: the record stays
 * in the log as a CONFLICT (kind, the server's message, the local size and
 * mtime), and a refused store first saves the local data as a conflict
 * copy (NAME.conflict-HOST-YYYYMMDD-HHMMSS, wb.c). Replay goes on with
 * the rest. doc/replay-log.md and doc/cm.md ("Disconnected operation").
 *
 * Threads: cm_offline() and offline_submit() from any thread; the rest on
 * the loop thread unless said.
 */
#ifndef CAIRN_CM_REPLAY_H
#define CAIRN_CM_REPLAY_H

#include <stdbool.h>

#include "cm/cm.h"
#include "cm/mut.h"

/* Before the loop starts, after cm->conn is built. @return 0 or -errno. */
int offline_new(struct cm *cm);
void offline_free(struct cm *cm);

/* conn_hooks (conn.h) for daemon.c, @arg the struct cm, loop thread:
 * now disconnected (what was replaying stops); now reintegrating (start
 * the replay, which ends in conn_reintegrated() or a disconnection). */
void offline_went_offline(void *arg, bool manual, const char *why);
void offline_reintegrate(void *arg);

/* cm_offline() (cm.h), any thread: are mutations logged instead of
 * sent? */
/* Any thread: may a connected mutation that gets no answer disconnect
 * (true unless stopping)? */
bool offline_auto(struct cm *cm);

/* Any thread: how long a miss may wait for the reconnection: 0 unless
 * disconnected with offline-miss=wait[:SECONDS] (default fetch-timeout). */
uint64_t offline_miss_wait_ms(struct cm *cm);

/* Disconnect (loop thread; conn_disconnect() if the module is set up).
 * @manual: by fs disconnect (no probes). */
void offline_disconnect(struct cm *cm, bool manual, const char *why);

/* Any thread: log @op (PENDING, durable) and apply it locally; @done gets
 * the local result on the loop thread. Same contract as mut_submit(). */
int offline_submit(struct cm *cm, const struct proto_op *op,
		   mut_done_fn done, void *arg);
/* Loop thread: a connected op that got no answer becomes part of the
 * disconnected log (its record stays INFLIGHT); apply it locally and call
 * @done with the local result. Disconnects (auto) first. */
void offline_absorb(struct cm *cm, const struct proto_op *op,
		    mut_done_fn done, void *arg);

/* What fs status shows (loop thread). @return false when the module is
 * not set up (then only @s->mode is filled). */
struct offline_state {
	int mode; /* enum cm_mode */
	int64_t since_ms;
	bool manual;
	bool miss_wait; /* offline-miss=wait */
	unsigned wait_s;
	uint64_t done_recs, total_recs, done_bytes, total_bytes;
};
bool offline_get_state(struct cm *cm, struct offline_state *s);

/* fs reconnect (loop thread): start a reintegration and call @done when
 * it ends (err 0 with its counts) or cairnd stops (-ESHUTDOWN). @return 0
 * (@done will be called), 1 already connected, -EBUSY a reconnect is
 * waiting already, -EHOSTUNREACH the server did not take the log (still
 * disconnected), -EIO no offline module. */
typedef void (*offline_reconnected_fn)(void *arg, int err, uint64_t replayed,
				       uint64_t refused, uint64_t conflicts);
int offline_reconnect(struct cm *cm, offline_reconnected_fn done, void *arg);
/* fs setpolicy offline-miss=error|wait[:SECONDS] (0: fetch-timeout). */
void offline_set_miss_policy(struct cm *cm, bool wait, unsigned wait_s);
#endif /* CAIRN_CM_REPLAY_H */
