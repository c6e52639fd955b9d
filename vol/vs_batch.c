/*
 * vs_batch.c - group commits: many mutations (single ops and the ops of
 * batch requests) applied in order in one tdb transaction and made
 * durable by one commit, each with its own opid, events and reply. It
 * also holds vs_apply(), a group of one. It does not know HTTP or threads
 * (cairn-vold's vold_http.c decides which requests form a group).
 *
 * Crash logic (volstore.c has the rest). A group is one tdb transaction:
 * a kill -9 or power loss before its commit leaves none of its ops, after
 * it all of them, with their opid records and events; the replies are
 * sent only after the commit, so every acknowledged op is durable and a
 * retried op finds its opid. The data files of stores and truncates in a
 * group are written and fsynced before the commit, as for a single op.
 *
 * One op's failure must not undo the others in the same transaction, and
 * tdb has no savepoints. So while a group runs, kv_put() and kv_del()
 * first save the value they replace (undo_save(); NULL for a key that was
 * not there) in an undo log that is reset before each op. An op that
 * fails has its writes put back in reverse order (undo_rollback()) and
 * its new data file removed; its refusal is then recorded under its opid
 * in the same transaction. The cost is one tdb lookup per write.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/proto.h"
#include "common/tdbw.h"
#include "vol/volstore.h"
#include "vol/volstore_i.h"

/* Undo log: records [u32 klen][u32 vlen, UINT32_MAX = key absent][key]
 * [old value], appended; @offs[i] is where record i starts. */
struct vs_undo {
	uint8_t *buf;
	size_t len, cap;
	size_t *offs;
	size_t n, ncap;
};

#define UNDO_ABSENT UINT32_MAX

/* Append the record of @k (@klen bytes) and its old value @val (@vlen
 * bytes), or of its absence (@val NULL). */
static int
undo_append(struct vs_undo *u, const void *k, size_t klen, const void *val,
	    size_t vlen)
{
	uint32_t kl = (uint32_t)klen, vl;
	size_t need;

	if (klen > UINT32_MAX / 2 || vlen > UINT32_MAX / 2)
		return -E2BIG;
	vl = val ? (uint32_t)vlen : UNDO_ABSENT;
	if (!val)
		vlen = 0;
	need = 8 + klen + vlen;
	if (u->len + need > u->cap) {
		size_t c = u->cap ? u->cap : 4096;
		uint8_t *nb;

		while (c < u->len + need)
			c *= 2;
		nb = realloc(u->buf, c);
		if (!nb)
			return -ENOMEM;
		u->buf = nb;
		u->cap = c;
	}
	if (u->n == u->ncap) {
		size_t c = u->ncap ? u->ncap * 2 : 64;
		size_t *no = realloc(u->offs, c * sizeof(*no));

		if (!no)
			return -ENOMEM;
		u->offs = no;
		u->ncap = c;
	}
	u->offs[u->n++] = u->len;
	memcpy(u->buf + u->len, &kl, 4);
	memcpy(u->buf + u->len + 4, &vl, 4);
	memcpy(u->buf + u->len + 8, k, klen);
	if (vlen)
		memcpy(u->buf + u->len + 8 + klen, val, vlen);
	u->len += need;
	return 0;
}

struct undo_cp {
	struct vs_undo *u;
	const void *k;
	size_t klen;
	int rc;
};

/* tdbj_parse() callback: the old value straight into the log (no copy
 * of its own to malloc and free: a fetch was most of what the undo log
 * cost a write). */
static int
undo_parse(TDB_DATA key, TDB_DATA data, void *arg)
{
	struct undo_cp *c = arg;
	static const uint8_t none;

	(void)key;
	c->rc = undo_append(c->u, c->k, c->klen,
			    data.dsize ? data.dptr : &none, data.dsize);
	return 0;
}

int
undo_save(struct vs_vol *v, const void *k, size_t klen)
{
	struct undo_cp c = {v->undo, k, klen, -EIO};
	int rc = tdbj_parse(v->j, k, klen, undo_parse, &c);

	if (rc == -ENOENT)
		return undo_append(v->undo, k, klen, NULL, 0);
	return rc ? rc : c.rc;
}

void
undo_reset(struct vs_undo *u)
{
	u->len = 0;
	u->n = 0;
}

struct vs_undo *
undo_new(void)
{
	return calloc(1, sizeof(struct vs_undo));
}

void
undo_free(struct vs_undo *u)
{
	if (!u)
		return;
	free(u->buf);
	free(u->offs);
	free(u);
}

/* Put back what the current op changed, newest first (the oldest saved
 * value of a key written twice is the one that ends up there). Called
 * with v->undo cleared, so nothing is recorded meanwhile. */
int
undo_rollback(struct vs_vol *v, struct vs_undo *u)
{
	int rc = 0;

	for (size_t i = u->n; i-- > 0 && !rc;) {
		const uint8_t *p = u->buf + u->offs[i];
		uint32_t kl, vl;

		memcpy(&kl, p, 4);
		memcpy(&vl, p + 4, 4);
		if (vl == UNDO_ABSENT) {
			rc = tdbj_delete(v->j, p + 8, kl);
			if (rc == -ENOENT)
				rc = 0;
		} else {
			rc = tdbj_store(v->j, p + 8, kl, p + 8 + kl, vl,
					TDB_REPLACE);
		}
	}
	undo_reset(u);
	return rc;
}

/* An op a batch does not apply: 424, never recorded. */
static int
reply_not_applied(struct vs_reply *rep)
{
	memset(rep, 0, sizeof(*rep));
	rep->body = proto_error_encode(EAGAIN,
				       "not applied: an earlier operation "
				       "of the batch failed",
				       0, &rep->len);
	if (!rep->body)
		return -ENOMEM;
	rep->status = 424;
	return 0;
}

/* What apply_one() left in the transaction. */
enum wrote {
	W_NOTHING = 0, /* a replay, a server failure, not applied */
	W_APPLIED,     /* the op and its reply: txn_after_commit() due */
	W_REFUSAL,     /* only its refusal under its opid */
};

/*
 * Apply @op inside the open transaction, on top of *@vr (the volume
 * record as the ops before left it, updated when something is written).
 * @t is the op's own txn, which the caller keeps for after the commit.
 * @return 0 with @rep filled in (a success, a recorded refusal, a
 * replay, or a server failure in rep->err) and *@w, or -errno when the
 * transaction can no longer be trusted (a failed rollback): the caller
 * cancels everything.
 */
static int
apply_one(struct vs_vol *v, struct vs_undo *u, struct vrec *vr,
	  const struct proto_op *op, struct txn *t, struct vs_reply *rep,
	  enum wrote *w)
{
	char *body = NULL;
	size_t blen = 0;
	bool server = false;
	int rc, rrc, status;

	*w = W_NOTHING;
	memset(rep, 0, sizeof(*rep));
	/* Inside the transaction: an opid recorded earlier in this group
	 * is found too. */
	rc = opid_lookup(v, op->opid, rep);
	if (rc == 0)
		return 0;
	memset(rep, 0, sizeof(*rep));
	txn_init(t, v, true);
	t->vr = *vr;
	if (rc != -ENOENT) {
		/* Nothing written yet; whatever it was, it is ours. */
		server = true;
		goto failed;
	}
	undo_reset(u);
	v->undo = u;
	rc = do_op(t, op);
	if (rc == 0) {
		/* The events get their seqs first: the reply names the last,
		 * so a client can tell the events its reply already covers. */
		rc = append_events(t);
		if (!rc) {
			t->res.event_seq = t->nev ? t->vr.ev_seq : 0;
			body = proto_op_result_encode(&t->res, &blen);
			if (!body)
				rc = errno ? -errno : -ENOMEM;
		}
		if (!rc)
			rc = opid_record(t, op->opid, 200, body, blen);
		if (!rc) {
			v->undo = NULL;
			*vr = t->vr;
			rep->status = 200;
			rep->body = body;
			rep->len = blen;
			rep->nev = t->nev;
			memcpy(rep->ev, t->ev, sizeof(t->ev));
			*w = W_APPLIED;
			return 0;
		}
		free(body);
		body = NULL;
		/* A failure after the op itself worked is the server's. */
		server = true;
	}
	v->undo = NULL;
	rrc = undo_rollback(v, u);
	txn_discard(t);
	if (rrc) {
		log_err(LOG_VOL, "cannot roll back an operation in volume "
				 "'%s': %s",
			v->name, strerror(-rrc));
		return rrc;
	}
failed:
	status = proto_errno_to_status(-rc);
	if (status >= 500 && rc != -EDQUOT && rc != -ENOSPC)
		server = true;
	if (server && status < 500) {
		rc = -EIO;
		status = 500;
	}
	body = proto_error_encode(rc, server ? NULL : t->msg, t->cur_dv,
				  &blen);
	if (!body)
		return -ENOMEM;
	if (server) {
		/* Not the op's fault: not recorded, a retry runs it again. */
		rep->status = status;
		rep->body = body;
		rep->len = blen;
		rep->err = rc;
		return 0;
	}
	/* A refusal is a reply too: record it under the opid so a retry
	 * gets the same answer even if the state changed meanwhile. */
	txn_init(t, v, false);
	t->vr = *vr;
	v->undo = u;
	rc = opid_record(t, op->opid, status, body, blen);
	v->undo = NULL;
	if (rc) {
		rrc = undo_rollback(v, u);
		free(body);
		if (rrc)
			return rrc;
		if (proto_errno_to_status(-rc) < 500)
			rc = -EIO;
		body = proto_error_encode(rc, NULL, 0, &blen);
		if (!body)
			return -ENOMEM;
		rep->status = proto_errno_to_status(-rc);
		rep->body = body;
		rep->len = blen;
		rep->err = rc;
		return 0;
	}
	*vr = t->vr;
	rep->status = status;
	rep->body = body;
	rep->len = blen;
	*w = W_REFUSAL;
	return 0;
}

/*
 * A store or setattr (@ops[@j]) with base_dv 0 on a file that an earlier
 * create of the same batch made, or that an earlier store of the same
 * batch changed (@ts, @wrote and @reps are the batch's own): the client
 * cannot know the new object's first DV (the volume's high-water mark +
 * 1), nor the DV a store gives it, so the op is applied to the DV the
 * batch left it at (a file's attributes set after its data: cairnd's
 * store at close with the utimes and chmod that came before it). Fills
 * *@tmp with that op and returns true.
 *
 * The latest such op counts. One answered from the opid table (a resend)
 * gives the DV its recorded reply named, not the file's DV now: a batch
 * whose sender died may still be applied after the restarted client
 * resent part of it (its creates, alone), and its store then goes on
 * the DV that create produced, refused as stale only if the file changed
 * since (t4024; before, base 0 stayed and the store was refused, its
 * refusal recorded under its opid for the resend to find).
 */
static bool
new_in_batch(struct vs_vol *v, const struct proto_op *ops, size_t j,
	     const struct txn *ts, const enum wrote *wrote,
	     const struct vs_reply *reps, struct proto_op *tmp)
{
	const struct proto_op *op = &ops[j];
	struct proto_op_result res;
	struct proto_attr a;

	if ((op->kind != PROTO_OP_STORE && op->kind != PROTO_OP_SETATTR) ||
	    op->base_dv != 0)
		return false;
	for (size_t i = j; i-- > 0;) {
		if (ops[i].kind != PROTO_OP_CREATE &&
		    ops[i].kind != PROTO_OP_STORE)
			continue;
		if (wrote[i] == W_APPLIED) {
			if (!fid_eq(&ts[i].res.attr.fid, &op->fid))
				continue;
			if (vs_getattr(v, &op->fid, &a))
				return false;
		} else if (reps[i].replayed && reps[i].status == 200 &&
			   proto_op_result_decode(reps[i].body, reps[i].len,
						  &res) == 0 &&
			   res.has_attr && fid_eq(&res.attr.fid, &op->fid)) {
			a.dv = res.attr.dv;
		} else {
			continue;
		}
		*tmp = *op;
		tmp->base_dv = a.dv;
		return true;
	}
	return false;
}

static void
replies_clear(struct vs_group_req *reqs, size_t nreq)
{
	for (size_t i = 0; i < nreq; i++)
		for (size_t j = 0; j < reqs[i].n; j++) {
			free(reqs[i].reps[j].body);
			memset(&reqs[i].reps[j], 0, sizeof(reqs[i].reps[j]));
		}
}

int
vs_apply_group(struct vs_vol *v, struct vs_group_req *reqs, size_t nreq)
{
	struct vs_undo *u = NULL;
	struct txn *ts = NULL;
	struct proto_op *tmps = NULL; /* ops rebased by new_in_batch(): a
					 txn keeps a pointer to its op
					 until txn_after_commit() */
	enum wrote *wrote = NULL;
	bool dirty = false;
	struct vrec vr;
	size_t nops = 0, k = 0;
	int rc;

	for (size_t i = 0; i < nreq; i++) {
		for (size_t j = 0; j < reqs[i].n; j++)
			memset(&reqs[i].reps[j], 0, sizeof(reqs[i].reps[j]));
		nops += reqs[i].n;
	}
	if (v->flags & VS_RDONLY)
		return -EROFS;
	if (!nops)
		return 0;
	ts = calloc(nops, sizeof(*ts));
	tmps = calloc(nops, sizeof(*tmps));
	wrote = calloc(nops, sizeof(*wrote));
	u = undo_new();
	if (!ts || !tmps || !wrote || !u) {
		rc = -ENOMEM;
		goto out;
	}
	rc = tdbj_txn_start(v->j);
	if (rc)
		goto out;
	rc = vrec_get(v, &vr);
	if (rc) {
		tdbj_txn_cancel(v->j);
		goto out;
	}
	for (size_t i = 0; i < nreq; i++) {
		bool stopped = false;
		size_t k0 = k;

		for (size_t j = 0; j < reqs[i].n; j++, k++) {
			struct vs_reply *rep = &reqs[i].reps[j];
			const struct proto_op *op = &reqs[i].ops[j];

			if (new_in_batch(v, reqs[i].ops, j, ts + k0,
					 wrote + k0, reqs[i].reps, &tmps[k]))
				op = &tmps[k];
			if (stopped)
				rc = reply_not_applied(rep);
			else
				rc = apply_one(v, u, &vr, op, &ts[k], rep,
					       &wrote[k]);
			if (rc)
				goto cancel;
			if (wrote[k] != W_NOTHING)
				dirty = true;
			/* A batch stops at a server failure (the ops after it
			 * may depend on it), and at any failure if asked. */
			if (rep->status != 200 && (rep->err || reqs[i].stop))
				stopped = true;
		}
	}
	if (!dirty) {
		/* Only replays and server failures: nothing to make
		 * durable. */
		tdbj_txn_cancel(v->j);
		goto out;
	}
	rc = vrec_put(v, &vr);
	if (rc)
		goto cancel;
	rc = tdbj_txn_commit(v->j, 0);
	if (rc) {
		log_err(LOG_VOL, "cannot commit to volume '%s': %s", v->name,
			strerror(-rc));
		/* A commit that failed is never "not found" to the caller. */
		if (rc == -ENOENT)
			rc = -EIO;
		goto discard;
	}
	for (k = 0; k < nops; k++)
		if (wrote[k] == W_APPLIED)
			txn_after_commit(&ts[k]);
	goto out;
cancel:
	tdbj_txn_cancel(v->j);
discard:
	v->undo = NULL;
	for (k = 0; k < nops; k++)
		if (wrote[k] == W_APPLIED)
			txn_discard(&ts[k]);
	replies_clear(reqs, nreq);
out:
	v->undo = NULL;
	undo_free(u);
	free(ts);
	free(tmps);
	free(wrote);
	return rc;
}

int
vs_apply(struct vs_vol *v, const struct proto_op *op, struct vs_reply *rep)
{
	struct vs_group_req r = {.ops = op, .n = 1, .reps = rep};
	int rc = vs_apply_group(v, &r, 1);

	if (!rc && rep->err) {
		/* A single op's server failure is the caller's error. */
		rc = rep->err;
		free(rep->body);
		memset(rep, 0, sizeof(*rep));
	}
	return rc;
}
