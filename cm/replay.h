/*
 * replay.h - disconnected operation of cairnd: logging mutations while
 * disconnected (applied to the caches by local.h), and reintegration.
 * The modes themselves, the network gate and the probes are conn.h's;
 * conn.c calls up here through its hooks, which daemon.c points at
 * replay_went_offline() and replay_reintegrate().
 *
 * Layer rule: FUSE-free (libcm), level 6 of doc/cm.md "Levels".
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
 * copy (NAME.conflict-HOST-YYYYMMDD-HHMMSS, conflict.h). Replay goes on with
 * the rest. doc/replay-log.md and doc/cm.md ("Disconnected operation").
 *
 * Threads: replay_submit() and replay_miss_wait_ms() from any thread; the rest
 * on the loop thread unless said.
 */
#ifndef CAIRN_CM_REPLAY_H
#define CAIRN_CM_REPLAY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cm/mut.h"

struct cm_loop;
struct cm_stats;
struct conn;
struct local;
struct mcache;
struct mfetch;
struct rlog;
struct wb;
struct replay;

/* What replay_new() works with; the pointers must outlive the module
 * (@mut, @wb, @mf until replay_stop()). */
struct replay_deps {
	struct cm_loop *loop;
	struct rlog *rlog;   /* the log it appends to and replays */
	struct conn *conn;   /* the mode */
	struct mut *mut;     /* replayed records are sent through it */
	struct wb *wb;	     /* stores, conflict records and copies */
	struct local *local; /* applying an op without the server */
	struct mcache *mc;
	struct mfetch *mf;     /* the server's view after a refusal, and of
				  everything once reintegrated */
	atomic_int *online;    /* last server contact worked */
	struct cm_stats *st;   /* replay_batches, replay_singles */
	const char *cache_dir; /* <cache>/replay-dv */
	uint64_t timeout_ms;   /* fetch-timeout: offline-miss=wait's default */
};

/* Before the loop starts. @return the handle or NULL + errno.
 * replay_stop(): loop thread, at teardown, before the modules it uses go:
 * a waiting fs reconnect hears -ESHUTDOWN; nothing new starts.
 * replay_free(): after the FUSE threads are gone (replay_submit() reads
 * the handle); stops first if needed. */
struct replay *replay_new(const struct replay_deps *deps);
void replay_stop(struct replay *rp);
void replay_free(struct replay *rp);

/* What conn's hooks (conn.h) call, through daemon.c, loop thread: now
 * disconnected (what was replaying stops); now reintegrating (start the
 * replay, which ends in conn_reintegrated() or a disconnection). */
void replay_went_offline(struct replay *rp, bool manual, const char *why);
void replay_reintegrate(struct replay *rp);

/* Any thread: may a connected mutation that gets no answer disconnect
 * (true unless stopped)? (mut's may_absorb hook) */
bool replay_may_absorb(struct replay *rp);

/* Any thread: how long a miss may wait for the reconnection: 0 unless
 * disconnected with offline-miss=wait[:SECONDS] (default fetch-timeout). */
uint64_t replay_miss_wait_ms(struct replay *rp);

/* Disconnect (loop thread; conn_disconnect() if the module is set up).
 * @manual: by fs disconnect (no probes). */
void replay_disconnect(struct replay *rp, bool manual, const char *why);

/* Any thread: log @op (PENDING, durable) and apply it locally; @done gets
 * the local result on the loop thread. Same contract as mut_submit().
 * (mut's submit_offline hook) */
int replay_submit(struct replay *rp, const struct proto_op *op,
		  mut_done_fn done, void *arg);
/* Loop thread: a connected op that got no answer becomes part of the
 * disconnected log (its record stays INFLIGHT); apply it locally and call
 * @done with the local result. Disconnects (auto) first. (mut's absorb
 * hook) */
void replay_absorb(struct replay *rp, const struct proto_op *op,
		   mut_done_fn done, void *arg);

/* What fs status shows (loop thread). @return false when the module is
 * not set up (then only @s->mode is filled). */
struct replay_state {
	int mode; /* enum cm_mode */
	int64_t since_ms;
	bool manual;
	bool miss_wait; /* offline-miss=wait */
	unsigned wait_s;
	uint64_t done_recs, total_recs, done_bytes, total_bytes;
};
bool replay_get_state(struct replay *rp, struct replay_state *s);

/* fs reconnect (loop thread): start a reintegration and call @done when
 * it ends (err 0 with its counts) or cairnd stops (-ESHUTDOWN). @return 0
 * (@done will be called), 1 already connected, -EBUSY a reconnect is
 * waiting already, -EHOSTUNREACH the server did not take the log (still
 * disconnected), -EIO no replay module. */
typedef void (*replay_reconnected_fn)(void *arg, int err, uint64_t replayed,
				      uint64_t refused, uint64_t conflicts);
int replay_reconnect(struct replay *rp, replay_reconnected_fn done, void *arg);
/*
 * Writeback (doc/cm.md "Write modes"). While the connection logs changes
 * (conn_logs_changes(): writeback, or not connected), every mutation goes
 * through replay_submit() and every store at close is logged; a *drain
 * pass* (the reintegration loop, run while CONNECTED) sends the log in
 * batches: writeback-delay after the oldest record was logged, or at once
 * when someone waits for the server (replay_sync()).
 *
 * replay_set_writeback(): loop thread. On: at once (@return 1, no call).
 * Off: @return 1 if nothing is logged as writeback; else 0, and @done
 * gets 0 once the log is drained (then changes are sent at once again),
 * -EHOSTUNREACH if the server is lost first (still writeback), or
 * -ESHUTDOWN. @return -errno: nothing changed.
 * replay_set_writeback_delay(): loop thread, 10 ms .. 1 h.
 */
typedef void (*replay_synced_fn)(void *arg, int err, uint64_t records);
int replay_set_writeback(struct replay *rp, bool on, replay_synced_fn done,
			 void *arg);
void replay_set_writeback_delay(struct replay *rp, uint64_t ms);
/*
 * log-sync (cairnd(8) "WRITE MODES"): @close false (op, the default): in
 * writeback every op is durable in the local log when it returns; true
 * (close): connected, a metadata op's record is appended without a sync
 * of its own and is durable at the next close(2)/fsync(2) of any file,
 * within a tick of the drain's clock (0.25 s), or at a disconnect.
 * Disconnected, every op is synced either way. Loop thread (or before
 * the loop runs); setting op syncs what close left unsynced.
 * replay_log_sync_close(): any thread.
 */
void replay_set_log_sync(struct replay *rp, bool close);
bool replay_log_sync_close(struct replay *rp);

/*
 * fsync(2), fs flush, fs sync: call @done(@arg, err, records sent
 * meanwhile) on the loop thread once no record logged before this call
 * and naming @fid (any record, @fid NULL) is left to send: err 0, -EIO
 * when one of them was refused (a conflict), -ESHUTDOWN. Starts a drain
 * pass at once if one was waiting for the delay; while disconnected it
 * waits for the reintegration. Any thread. @return 0 or -errno (no
 * call).
 */
int replay_sync(struct replay *rp, const struct fid *fid,
		replay_synced_fn done, void *arg);

/*
 * Loop thread, at start, before mut_resume(): if the log holds PENDING
 * records (the cache ran in writeback, or offline, before) or writeback
 * is on, start a drain pass that sends them, with what a crash left
 * INFLIGHT, and then stores the files a crash left dirty
 * (wb_resume_crashed()): @return true, and mut_resume() must not run.
 * Also starts the drain's clock.
 */
bool replay_resume(struct replay *rp);

/* mut's acked hook (loop thread): replayed record @seq, sent as @op, was
 * acknowledged with @r: the DV map learns the DV (and <cache>/replay-dv
 * has it) before the record leaves the log. */
void replay_acked(struct replay *rp, uint64_t seq, const struct proto_op *op,
		  const struct proto_op_result *r);

/* mcache's ahead hook (loop thread): while changes are logged (writeback,
 * disconnected, replaying), is @fid named by a record still to send?
 * Then the server's news about it waits (mcache_ahead()). */
bool replay_ahead(struct replay *rp, const struct fid *fid);

/* mfetch's ahead_event hook (loop thread): news about @fid was dropped
 * because replay_ahead() said so; @fid is fetched again once no record
 * to send names it (a pass acknowledged them, or the log's cancellation
 * rules removed them). */
void replay_ahead_event(struct replay *rp, const struct fid *fid);

/* fs status (loop thread). @return false when not set up. */
struct replay_wb_state {
	bool writeback;	   /* asked for */
	bool draining;	   /* a drain pass runs, or a switch to sync waits */
	uint64_t delay_ms; /* writeback-delay */
	bool log_close;	   /* log-sync=close */
	uint64_t records;  /* PENDING and INFLIGHT records */
	uint64_t bytes;	   /* store data they carry */
	uint64_t oldest_ms; /* age of the oldest, 0 if none */
};
bool replay_wb_state(struct replay *rp, struct replay_wb_state *s);

/* fs setpolicy offline-miss=error|wait[:SECONDS] (0: fetch-timeout). */
void replay_set_miss_policy(struct replay *rp, bool wait, unsigned wait_s);

#endif /* CAIRN_CM_REPLAY_H */
