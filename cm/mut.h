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
 *     mut_resume() at the next start.
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

#include <stdbool.h>
#include <stdint.h>

#include "common/proto.h"

struct cm;
struct mut;

/* Loop thread, exactly once per accepted op: @err 0 and the server's
 * reply @r, or a negative errno (@r NULL): -ESTALE when the server refused
 * it as stale (HTTP 410/412: a DV or a name it was based on changed). */
typedef void (*mut_done_fn)(struct cm *cm, void *arg, int err,
			    const struct proto_op_result *r);

/*
 * What the op log asks of the modules above it (the write states, wb.c;
 * disconnected operation, replay.c), given to mut_new() by daemon.c so
 * mut.c includes neither (cm->muth; never cleared). A NULL hook is
 * skipped (no disconnect, -EIO for what needs it).
 */
struct mut_hooks {
	/* wb: an object's last name went (its write state goes); a store's
	 * reply @a came back for @op; resend a store left INFLIGHT by a
	 * crash (as wb_resend_store()); the log's INFLIGHT records are all
	 * resent (the dirty files come next). */
	void (*file_gone)(struct cm *cm, const struct fid *fid);
	void (*file_stored)(struct cm *cm, const struct proto_op *op,
			    const struct proto_attr *a);
	int (*resend_store)(struct cm *cm, uint64_t seq,
			    const struct proto_op *op, mut_done_fn done,
			    void *arg);
	void (*log_resumed)(struct cm *cm);
	/* offline: may an op the server does not answer disconnect? take it
	 * into the disconnected log and apply it locally; log and apply an
	 * op while disconnected (as offline_submit()). */
	bool (*may_absorb)(struct cm *cm);
	void (*absorb)(struct cm *cm, const struct proto_op *op,
		       mut_done_fn done, void *arg);
	int (*submit_offline)(struct cm *cm, const struct proto_op *op,
			      mut_done_fn done, void *arg);
};

int mut_new(struct cm *cm, const struct mut_hooks *hooks);
/* Fails what is still waiting (-EIO); after http_free(). */
void mut_free(struct cm *cm);

/*
 * Log @op (copied; a zero opid gets a random one) and send it. @return 0
 * (@done will be called) or -errno (nothing logged or sent, no call).
 * Any thread.
 */
int mut_submit(struct cm *cm, const struct proto_op *op, mut_done_fn done,
	       void *arg);

/* As mut_submit(), whatever the mode: logged INFLIGHT and sent now (the
 * conflict copies of reintegration). */
int mut_submit_direct(struct cm *cm, const struct proto_op *op,
		      mut_done_fn done, void *arg);

/* Send an op whose record @seq is already in the log, under its opid (a
 * store whose chunks were just staged, a record found at start). Loop
 * thread. Same contract as mut_submit(). */
int mut_send_logged(struct cm *cm, uint64_t seq, const struct proto_op *op,
		    mut_done_fn done, void *arg);

/* Reintegration (replay.c): send the logged record @seq as
 * mut_send_logged() does, but a refusal keeps the record (it becomes a
 * conflict) and a transport failure reports -EHOSTUNREACH at once (the
 * record stays for the next attempt). Not gated. Loop thread. */
int mut_send_replay(struct cm *cm, uint64_t seq, const struct proto_op *op,
		    mut_done_fn done, void *arg);

/* Apply a reply to the caches as mut does for its own ops (loop). */
void mut_apply(struct cm *cm, const struct proto_op *op,
	       const struct proto_op_result *r);

/* Loop thread, from meta_event(): true if @ev is about an object with an
 * op in flight (the event is then replayed once the op is done). */
bool mut_defer_event(struct cm *cm, const struct proto_event *ev);

/* Loop thread, at start: resend the records a crash left INFLIGHT, in
 * order (stores go through wb.c, which stages their chunks again). */
void mut_resume(struct cm *cm);


/* Copy @src into @dst (heap strings, value, chunks), or -ENOMEM.
 * Release with proto_op_release(). */
int mut_op_copy(struct proto_op *dst, const struct proto_op *src);

#endif /* CAIRN_CM_MUT_H */
