/*
 * mut.h - mutations of a connected cairnd: every change goes into the
 * replay log (rlog.h) as an INFLIGHT record, is sent to the server as one
 * POST op, and once the server answered, its reply is applied to the
 * caches (attributes, listings, kernel) and the record is removed.
 *
 * Layer rule: FUSE-free (libcm). The FUSE front builds a struct proto_op
 * and answers its request from the done callback.
 *
 * Promises:
 *  1. A record is in the log before any byte of its op leaves, with the
 *     opid it is sent under; retries (a lost reply, a refused connection)
 *     reuse the opid, so the server applies the op at most once. A record
 *     left INFLIGHT by a crash is resent, under the same opid, by
 *     mut_resume() at the next start, or by the reintegration when the
 *     server does not answer then; it leaves the log only on an answer.
 *  2. The caches change only from the server's reply, never ahead of it:
 *     a refused op leaves nothing behind.
 *  3. An event about an object with an op in flight is held back and
 *     looked at again after the reply was applied, so our own change is not
 *     fetched back, and someone else's change in between is not missed.
 *
 * Threads: mut_submit() from any thread; the rest on the loop thread.
 */
#ifndef CAIRN_CM_MUT_H
#define CAIRN_CM_MUT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/proto.h"

struct cm_loop;
struct conn;
struct http_client;
struct mcache;
struct mfetch;
struct rlog;
struct mut;

/* Loop thread, exactly once per accepted op: @err 0 and the server's
 * reply @r, or a negative errno (@r NULL): -ESTALE when the server refused
 * it as stale (HTTP 410/412: a DV or a name it was based on changed). */
typedef void (*mut_done_fn)(void *arg, int err,
			    const struct proto_op_result *r);

/*
 * What the op log asks of the modules above it (the write states, wb.h;
 * disconnected operation, replay.h), given to mut_new() by daemon.c so
 * mut.c includes neither; called with @arg. A NULL hook is skipped (no
 * disconnect, -EIO for what needs it).
 */
struct mut_hooks {
	/* wb: an object's last name went (its write state goes); a store's
	 * reply @a came back for @op; resend a store left INFLIGHT by a
	 * crash (as wb_resend_store()); the log's INFLIGHT records are all
	 * resent (the dirty files come next). */
	void (*file_gone)(void *arg, const struct fid *fid);
	void (*file_stored)(void *arg, const struct proto_op *op,
			    const struct proto_attr *a);
	int (*resend_store)(void *arg, uint64_t seq, const struct proto_op *op,
			    mut_done_fn done, void *done_arg);
	void (*log_resumed)(void *arg);
	/* replay: may an op the server does not answer disconnect? take it
	 * into the disconnected log and apply it locally; log and apply an
	 * op while disconnected (as replay_submit()). */
	/* replay: a replayed record @seq (@op as sent) was acknowledged
	 * with @r; called before the record leaves the log, so what the
	 * replay learns from it (the DV map) is kept first. */
	void (*acked)(void *arg, uint64_t seq, const struct proto_op *op,
		      const struct proto_op_result *r);
	/* wb: the STORE records of @fids the server took leave the log
	 * next: what of theirs the log alone held (bytes, record format
	 * 3) is made durable in the chunk store first (wb_data_durable()).
	 * Called once for a batch. */
	void (*data_durable)(void *arg, const struct fid *fids, size_t n);
	bool (*may_absorb)(void *arg);
	void (*absorb)(void *arg, const struct proto_op *op, mut_done_fn done,
		       void *done_arg);
	int (*submit_offline)(void *arg, const struct proto_op *op,
			      mut_done_fn done, void *done_arg);
	/* replay: a record a crash left got no answer at its resend
	 * (mut_resume()) while connected: disconnect (auto), so that the
	 * reintegration sends it once the server answers. */
	void (*lost)(void *arg, const char *why);
	void *arg;
};

/* What mut_new() works with; the pointers must outlive the module (@http
 * until mut_stop()). */
struct mut_deps {
	struct cm_loop *loop; /* jobs, retry timers, stopping */
	struct http_client *http;
	struct rlog *rlog;   /* NULL: nothing logged (random opids) */
	struct conn *conn;   /* the mode; NULL: always connected */
	struct mcache *mc;   /* replies applied to the cached attributes */
	struct mfetch *mf;   /* and listings; held-back events go here */
	atomic_int *online;  /* last server contact worked */
	const char *volume;  /* for the URL */
	uint64_t timeout_ms; /* retries of an unanswered op end here */
};

/* @hooks (may be NULL) is copied. @return the handle or NULL + errno.
 * mut_stop(): loop thread, at teardown, after http_free(): fail what is
 * still waiting (-EIO); later ops fail. mut_free(): after the FUSE threads
 * are gone (mut_submit() reads the handle); stops first if needed. */
struct mut *mut_new(const struct mut_deps *deps, const struct mut_hooks *hooks);
void mut_stop(struct mut *mu);
void mut_free(struct mut *mu);

/* The server's protocol version, from its volume information: at
 * PROTO_V_ATTACH or later, stores' inline bytes go as the body's
 * attachment rather than base64 (about a third of the server's CPU a
 * small store in JSON parsing). Any thread. */
void mut_set_server_version(struct mut *mu, int version);

/*
 * Log @op (copied; a zero opid gets a random one) and send it; while the
 * connection logs changes (disconnected, or writeback: conn.h) it goes to
 * the submit_offline hook instead (logged PENDING, applied locally, sent
 * later by replay.c). @return 0
 * (@done will be called) or -errno (nothing logged or sent, no call).
 * Any thread.
 */
int mut_submit(struct mut *mu, const struct proto_op *op, mut_done_fn done,
	       void *arg);

/* As mut_submit(), whatever the mode: logged INFLIGHT and sent now (the
 * conflict copies of reintegration). */
int mut_submit_direct(struct mut *mu, const struct proto_op *op,
		      mut_done_fn done, void *arg);

/* Send an op whose record @seq is already in the log, under its opid (a
 * store whose chunks were just staged, a record found at start). Loop
 * thread. Same contract as mut_submit(). */
int mut_send_logged(struct mut *mu, uint64_t seq, const struct proto_op *op,
		    mut_done_fn done, void *arg);

/* As mut_send_logged(), for a record a crash left INFLIGHT (mut_resume(),
 * the resend_store hook): its answer may be the one the server recorded
 * for its opid then; sent only while connected, never absorbed, and
 * without an answer @done gets -EHOSTUNREACH and the record stays. */
int mut_send_resent(struct mut *mu, uint64_t seq, const struct proto_op *op,
		    mut_done_fn done, void *arg);

/* Reintegration (replay.c): send the logged record @seq as
 * mut_send_logged() does, but a refusal keeps the record (it becomes a
 * conflict) and a transport failure reports -EHOSTUNREACH at once (the
 * record stays for the next attempt). Not gated. Loop thread. */
int mut_send_replay(struct mut *mu, uint64_t seq, const struct proto_op *op,
		    mut_done_fn done, void *arg);

/*
 * Late creates (sync mode, issue #14): a new file's create is answered
 * before the server has it, and goes to the server with the file's first
 * store, as one batch (create, store, attributes), or alone as soon as
 * another op needs it first. mut_hold_create() logs @op (a CREATE)
 * INFLIGHT, like mut_submit(), but does not send it: @done is called
 * once the server answered it (an error: the name and object are dropped
 * from the caches). Ops about the file or its directory that come later
 * wait for its answer, so the server sees them in the caller's order.
 * @return 0, -EAGAIN when disconnected or without a log (use
 * mut_submit()), or -errno (nothing logged). Any thread.
 */
int mut_hold_create(struct mut *mu, const struct proto_op *op, mut_done_fn done,
		    void *arg);

/* Loop thread: is the create of @fid held (MUT_LATE_HELD: not sent; a
 * batch may take it), on its way (MUT_LATE_SENT) or neither? */
enum { MUT_LATE_NONE, MUT_LATE_HELD, MUT_LATE_SENT };
int mut_late_state(struct mut *mu, const struct fid *fid);
/* Loop thread: call @cb(@arg) once the late create of @fid has its
 * answer (a held one is sent now). @return 0, or -ENOENT (none: no call). */
int mut_after_late(struct mut *mu, const struct fid *fid, void (*cb)(void *arg),
		   void *arg);

/*
 * Batches: ops already in the log sent as one POST /v1/vol/NAME/batch
 * (doc/protocol.md), applied by the server in order in one commit. Each
 * op keeps its record, opid and done callback, as mut_send_logged()
 * (MUT_B_REPLAY: as mut_send_replay()); the callbacks are called in the
 * batch's order, after the caches took every reply of the batch. An op
 * the server did not apply because one before it failed on the server
 * gets -EAGAIN (the record is kept in replay mode). A server without
 * /batch (404) gets the ops one at a time, in order; a store or setattr
 * with base DV 0 then takes the DV an earlier op of the batch gave its
 * object, as the server does inside a batch.
 * Loop thread. mut_batch_send() takes @b (and frees it) whatever it
 * returns; mut_batch_free() drops an unsent batch (a held create it took
 * is held again).
 */
struct mut_batch;
enum { MUT_B_REPLAY = 1 };
struct mut_batch *mut_batch_new(struct mut *mu, unsigned flags);
int mut_batch_add(struct mut_batch *b, uint64_t seq, const struct proto_op *op,
		  mut_done_fn done, void *arg);
/* The held create of @fid as the next op: 0, or -ENOENT (none held). */
int mut_batch_add_held(struct mut_batch *b, const struct fid *fid);
size_t mut_batch_len(const struct mut_batch *b);
int mut_batch_send(struct mut_batch *b);
void mut_batch_free(struct mut_batch *b);
/*
 * An op of the log's own that got no answer before it could be sent (a
 * store whose staging PUTs got none) is absorbed as one without an
 * answer is: mut_can_absorb() says whether that may be done now (not
 * stopping, the replay module takes it); mut_batch_absorb() then takes
 * @b (not MUT_B_REPLAY): the mount disconnects, each op (a held create
 * with it first) keeps its record INFLIGHT for the reintegration, is
 * applied locally in order, and its callback gets the local result.
 */
bool mut_can_absorb(struct mut *mu);
void mut_batch_absorb(struct mut_batch *b);

/* One logged record of a replay batch: its seq, the op as it is to be
 * sent (copied), and who hears its result. */
struct mut_batch_op {
	uint64_t seq;
	const struct proto_op *op;
	mut_done_fn done;
	void *arg;
};

/*
 * Reintegration and writeback drains (replay.c): send the logged records
 * @ops[0..@n) (1..PROTO_BATCH_MAX) as one POST /v1/vol/NAME/batch, which
 * the server applies in order in one commit, each op with its own
 * result. When the reply comes, the acknowledged records are removed in
 * one transaction, then each op's done is called in order exactly as
 * mut_send_replay() would call it (its reply applied; what a later op
 * names stays ahead of the server until then: mut_batch_ahead(); a
 * refused record is kept: -ESTALE for 410/412, else the server's errno),
 * then @all(@all_arg, 0). If the batch failed as a
 * whole, each op's done gets the error and then @all: -EHOSTUNREACH (no
 * answer: records stay, resent first next time), -ENOSYS (404: a server
 * of protocol 2 without the route; nothing was applied: send them one by
 * one), -EIO (refused or unreadable as a whole). @return 0 (the calls
 * will come), or -errno and nothing sent, no call: -E2BIG (the body
 * would pass PROTO_BATCH_BODY_MAX: send fewer), -EINVAL, -ENOMEM, -EIO.
 * Not gated. Loop thread.
 */
int mut_send_replay_batch(struct mut *mu, const struct mut_batch_op *ops,
			  size_t n, void (*all)(void *arg, int err),
			  void *all_arg);

/* While mut_send_replay_batch()'s replies are applied (its records left
 * the log in one transaction before the first reply): does an op of it
 * whose reply is not applied yet name @fid? Then @fid is ahead of the
 * server, as when that op's record was still in the log (daemon.c asks
 * it with replay_ahead() for mcache's ahead hook). Any thread. */
bool mut_batch_ahead(struct mut *mu, const struct fid *fid);

/* Loop thread, from mfetch's defer_event hook: true if @ev is about an
 * object with an op in flight (the event is then replayed once the op is
 * done). Of the held events of one kind about one object only the newest
 * is kept (what applying one does depends only on it). */
bool mut_defer_event(struct mut *mu, const struct proto_event *ev);

/* Loop thread, at start: the event stream resumes after @seq (the one
 * saved); events up to it were seen by an earlier run. A mkdir reply
 * made before it (a record resent after a crash, answered from the
 * server's opid table) gives its directory no empty listing: what came
 * since may be lost with that run. */
void mut_events_from(struct mut *mu, uint64_t seq);

/* At start, before the mount answers: the names of the creates a crash
 * left INFLIGHT go back into the cached listings (a held create's edit
 * is kept in memory only), so the files they made are there before the
 * resent creates are answered; and the last INFLIGHT record is noted,
 * the end of what mut_resume() resends. */
void mut_show_lates(struct mut *mu);

/* Loop thread, at start: resend the records a crash left INFLIGHT (the
 * last one's seq is noted by mut_show_lates(); the op log's own records
 * after it are not touched), in order (stores go through the
 * resend_store hook, which stages their chunks again), then call
 * log_resumed. While connected only: a resend without an answer keeps
 * its record, disconnects (the lost hook) and leaves it and the rest to
 * the reintegration, as does a mode that is not connected. */
void mut_resume(struct mut *mu);

/* Copy @src into @dst (heap strings, value, chunks), or -ENOMEM.
 * Release with proto_op_release(). */
int mut_op_copy(struct proto_op *dst, const struct proto_op *src);

#endif /* CAIRN_CM_MUT_H */
