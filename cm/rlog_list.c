/*
 * rlog_list.c - the replay log inside its tdb file: the header, the doubly
 * linked lists that give a hash file its order and indexes, and records as
 * stored. tdb is reached through common/tdbw.h, which maps its errors.
 *
 * Callers hold l->lock and an open transaction; nothing here commits.
 */

#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm/rlog_i.h"
#include "common/log.h"

int
rlog_hdr_put(struct rlog *l, const struct hdr *h)
{
	uint8_t buf[HDR_LEN];

	rlog_hdr_encode(h, buf);
	return tdbj_store(l->j, "H", 1, buf, sizeof(buf), TDB_REPLACE);
}

uint64_t *
rlog_hdr_state_count(struct hdr *h, enum rlog_state s)
{
	return s == RLOG_PENDING    ? &h->npend
	       : s == RLOG_INFLIGHT ? &h->ninfl
				    : &h->nconf;
}

/* --- lists --- */

static void
lhead_key(uint8_t k[1 + LID_LEN], const struct lid *id)
{
	k[0] = 'h';
	memcpy(k + 1, id->b, LID_LEN);
}

static void
lnode_key(uint8_t k[1 + LID_LEN + 8], const struct lid *id, uint64_t seq)
{
	k[0] = 'n';
	memcpy(k + 1, id->b, LID_LEN);
	rlog_be64_put(k + 1 + LID_LEN, seq);
}

int
rlog_lhead_get(struct rlog *l, const struct lid *id, struct lhead *h)
{
	uint8_t k[1 + LID_LEN], v[24];
	struct rbuf b = {.p = v, .len = sizeof(v)};
	int rc;

	lhead_key(k, id);
	rc = tdbj_fetch_fixed(l->j, k, sizeof(k), v, sizeof(v));
	if (rc == -ENOENT) {
		memset(h, 0, sizeof(*h));
		return 0;
	}
	if (rc)
		return rc;
	h->first = r_u64(&b);
	h->last = r_u64(&b);
	h->count = r_u64(&b);
	return h->count && h->first && h->last ? 0 : -EUCLEAN;
}

static int
lhead_put(struct rlog *l, const struct lid *id, const struct lhead *h)
{
	uint8_t k[1 + LID_LEN], v[24];
	struct wbuf b = {.p = v, .cap = sizeof(v)};

	lhead_key(k, id);
	if (!h->count)
		return tdbj_delete(l->j, k, sizeof(k));
	w_u64(&b, h->first);
	w_u64(&b, h->last);
	w_u64(&b, h->count);
	return tdbj_store(l->j, k, sizeof(k), v, sizeof(v), TDB_REPLACE);
}

int
rlog_lnode_get(struct rlog *l, const struct lid *id, uint64_t seq, struct lnode *n)
{
	uint8_t k[1 + LID_LEN + 8], v[18];
	struct rbuf b = {.p = v, .len = sizeof(v)};
	int rc;

	lnode_key(k, id, seq);
	rc = tdbj_fetch_fixed(l->j, k, sizeof(k), v, sizeof(v));
	if (rc)
		return rc;
	n->prev = r_u64(&b);
	n->next = r_u64(&b);
	n->aux = r_u8(&b);
	n->kind = r_u8(&b);
	return 0;
}

static int
lnode_put(struct rlog *l, const struct lid *id, uint64_t seq,
	  const struct lnode *n)
{
	uint8_t k[1 + LID_LEN + 8], v[18];
	struct wbuf b = {.p = v, .cap = sizeof(v)};

	lnode_key(k, id, seq);
	w_u64(&b, n->prev);
	w_u64(&b, n->next);
	w_u8(&b, n->aux);
	w_u8(&b, n->kind);
	return tdbj_store(l->j, k, sizeof(k), v, sizeof(v), TDB_REPLACE);
}

/* Point the neighbour of a node (or the head) at @to. */
static int
link_prev_of(struct rlog *l, const struct lid *id, struct lhead *h,
	     uint64_t next, uint64_t to)
{
	struct lnode n;
	int rc;

	if (!next) {
		h->last = to;
		return 0;
	}
	rc = rlog_lnode_get(l, id, next, &n);
	if (rc)
		return rc == -ENOENT ? -EUCLEAN : rc;
	n.prev = to;
	return lnode_put(l, id, next, &n);
}

static int
link_next_of(struct rlog *l, const struct lid *id, struct lhead *h,
	     uint64_t prev, uint64_t to)
{
	struct lnode n;
	int rc;

	if (!prev) {
		h->first = to;
		return 0;
	}
	rc = rlog_lnode_get(l, id, prev, &n);
	if (rc)
		return rc == -ENOENT ? -EUCLEAN : rc;
	n.next = to;
	return lnode_put(l, id, prev, &n);
}

/* The last node of list @h below @seq (0: none), walking from whichever
 * end @seq is nearer by value: appends land at the tail in O(1), and a
 * record re-entering a list near its head (INFLIGHT -> PENDING of the
 * oldest records, a conflict from the front of a replay) in O(1) too. */
static int
list_find_before(struct rlog *l, const struct lid *id, const struct lhead *h,
		 uint64_t seq, uint64_t *out)
{
	struct lnode cur;
	uint64_t at, before = 0;
	size_t steps = 0;
	int rc;

	if (h->count && seq > h->first && seq < h->last &&
	    seq - h->first < h->last - seq) {
		for (at = h->first; at && at < seq; at = cur.next) {
			if (++steps > h->count)
				return -EUCLEAN;
			rc = rlog_lnode_get(l, id, at, &cur);
			if (rc)
				return rc == -ENOENT ? -EUCLEAN : rc;
			before = at;
		}
		*out = at == seq ? seq : before;
		return 0;
	}
	for (at = h->last; at && at > seq; at = cur.prev) {
		if (++steps > h->count)
			return -EUCLEAN;
		rc = rlog_lnode_get(l, id, at, &cur);
		if (rc)
			return rc == -ENOENT ? -EUCLEAN : rc;
	}
	*out = at;
	return 0;
}

/* Insert @seq in order (see list_find_before()). */
int
rlog_list_insert(struct rlog *l, const struct lid *id, uint64_t seq, uint8_t aux,
	    uint8_t kind)
{
	struct lhead h;
	struct lnode n = {.aux = aux, .kind = kind}, cur;
	uint64_t after;
	int rc;

	rc = rlog_lhead_get(l, id, &h);
	if (!rc)
		rc = list_find_before(l, id, &h, seq, &after);
	if (rc)
		return rc;
	if (after == seq)
		return -EEXIST;
	n.prev = after;
	if (after) {
		rc = rlog_lnode_get(l, id, after, &cur);
		if (rc)
			return rc == -ENOENT ? -EUCLEAN : rc;
		n.next = cur.next;
	} else {
		n.next = h.first;
	}
	rc = lnode_put(l, id, seq, &n);
	if (!rc)
		rc = link_next_of(l, id, &h, n.prev, seq);
	if (!rc)
		rc = link_prev_of(l, id, &h, n.next, seq);
	if (rc)
		return rc;
	h.count++;
	return lhead_put(l, id, &h);
}

int
rlog_list_remove(struct rlog *l, const struct lid *id, uint64_t seq)
{
	uint8_t k[1 + LID_LEN + 8];
	struct lhead h;
	struct lnode n;
	int rc;

	rc = rlog_lhead_get(l, id, &h);
	if (!rc)
		rc = rlog_lnode_get(l, id, seq, &n);
	if (rc)
		return rc == -ENOENT ? -EUCLEAN : rc;
	rc = link_next_of(l, id, &h, n.prev, n.next);
	if (!rc)
		rc = link_prev_of(l, id, &h, n.next, n.prev);
	if (rc)
		return rc;
	lnode_key(k, id, seq);
	rc = tdbj_delete(l->j, k, sizeof(k));
	if (rc)
		return rc;
	if (!h.count)
		return -EUCLEAN;
	h.count--;
	return lhead_put(l, id, &h);
}

int
rlog_list_set(struct rlog *l, const struct lid *id, uint64_t seq, uint8_t aux,
	 uint8_t kind)
{
	struct lnode n;
	int rc;

	rc = rlog_lnode_get(l, id, seq, &n);
	if (rc)
		return rc == -ENOENT ? -EUCLEAN : rc;
	n.aux = aux;
	n.kind = kind;
	return lnode_put(l, id, seq, &n);
}

/* --- records in the file --- */

static void
rec_key(uint8_t k[9], uint64_t seq)
{
	k[0] = 'R';
	rlog_be64_put(k + 1, seq);
}

struct rec_ctx {
	uint64_t seq;
	struct rlog_rec *rec;
	int rc;
};

static int
rec_parse(TDB_DATA key, TDB_DATA data, void *arg)
{
	struct rec_ctx *c = arg;

	(void)key;
	c->rc = rlog_rec_decode(data.dptr, data.dsize, c->seq, c->rec);
	return 0;
}

/* Read record @seq. -ENOENT if absent; -EUCLEAN if damaged (logged). */
int
rlog_rec_load(struct rlog *l, uint64_t seq, struct rlog_rec *rec)
{
	uint8_t k[9];
	struct rec_ctx c = {seq, rec, -EIO};
	int rc;

	memset(rec, 0, sizeof(*rec));
	rec_key(k, seq);
	rc = tdbj_parse(l->j, k, sizeof(k), rec_parse, &c);
	if (rc)
		return rc;
	if (c.rc == -EUCLEAN)
		log_err(LOG_RLOG, "cannot read record %llu of '%s': %s",
			(unsigned long long)seq, l->path, strerror(EUCLEAN));
	return c.rc;
}

int
rlog_rec_store(struct rlog *l, const struct rlog_rec *rec, int flag)
{
	struct wbuf b = {0};
	uint8_t k[9];
	int rc;

	rc = rlog_rec_encode(rec, &b);
	rec_key(k, rec->seq);
	if (!rc)
		rc = tdbj_store(l->j, k, sizeof(k), b.p, b.len, flag);
	free(b.p);
	return rc;
}

/* The FIDs a record names, each once, with the roles it names them in. */
size_t
rlog_op_membs(const struct proto_op *op, struct memb m[4])
{
	const struct {
		const struct fid *f;
		uint8_t role;
	} all[4] = {
		{&op->fid, ROLE_OBJ},
		{&op->parent, ROLE_PARENT},
		{&op->newparent, ROLE_NEWPARENT},
		{&op->victim, ROLE_VICTIM},
	};
	size_t n = 0, i, j;

	for (i = 0; i < 4; i++) {
		if (fid_is_null(all[i].f))
			continue;
		for (j = 0; j < n && !fid_eq(&m[j].fid, all[i].f); j++)
			;
		if (j == n) {
			m[n].fid = *all[i].f;
			m[n++].roles = 0;
		}
		m[j].roles |= all[i].role;
	}
	return n;
}

static int
state_lists_add(struct rlog *l, const struct rlog_rec *r)
{
	struct lid id;
	int rc;

	rlog_lid_make(&id, LT_ALL, NULL);
	rc = rlog_list_insert(l, &id, r->seq, r->state, r->op.kind);
	if (rc || r->state == RLOG_INFLIGHT)
		return rc;
	rlog_lid_make(&id, r->state == RLOG_PENDING ? LT_PEND : LT_CONF, NULL);
	return rlog_list_insert(l, &id, r->seq, r->state, r->op.kind);
}

static int
state_lists_del(struct rlog *l, const struct rlog_rec *r)
{
	struct lid id;
	int rc;

	rlog_lid_make(&id, LT_ALL, NULL);
	rc = rlog_list_remove(l, &id, r->seq);
	if (rc || r->state == RLOG_INFLIGHT)
		return rc;
	rlog_lid_make(&id, r->state == RLOG_PENDING ? LT_PEND : LT_CONF, NULL);
	return rlog_list_remove(l, &id, r->seq);
}

/* Store a new record: it gets the next seq. */
int
rlog_rec_new(struct rlog *l, struct rlog_rec *r)
{
	struct memb m[4];
	struct lid id;
	size_t n, i;
	int rc;

	r->seq = l->tx.next_seq++;
	rc = rlog_rec_store(l, r, TDB_INSERT);
	if (!rc)
		rc = state_lists_add(l, r);
	n = rlog_op_membs(&r->op, m);
	for (i = 0; !rc && i < n; i++) {
		rlog_lid_make(&id, LT_FID, &m[i].fid);
		rc = rlog_list_insert(l, &id, r->seq, m[i].roles, r->op.kind);
	}
	if (rc)
		return rc;
	l->tx.nrec++;
	(*rlog_hdr_state_count(&l->tx, r->state))++;
	l->tx.data_bytes += r->nbytes;
	return 0;
}

/* Delete record @r (as loaded) with every index entry. */
int
rlog_rec_del(struct rlog *l, const struct rlog_rec *r)
{
	struct memb m[4];
	struct lid id;
	uint8_t k[9];
	size_t n, i;
	uint64_t *cnt;
	int rc;

	rc = state_lists_del(l, r);
	n = rlog_op_membs(&r->op, m);
	for (i = 0; !rc && i < n; i++) {
		rlog_lid_make(&id, LT_FID, &m[i].fid);
		rc = rlog_list_remove(l, &id, r->seq);
	}
	rec_key(k, r->seq);
	if (!rc)
		rc = tdbj_delete(l->j, k, sizeof(k));
	if (rc)
		return rc;
	cnt = rlog_hdr_state_count(&l->tx, r->state);
	if (!l->tx.nrec || !*cnt || l->tx.data_bytes < r->nbytes)
		return -EUCLEAN;
	l->tx.nrec--;
	(*cnt)--;
	l->tx.data_bytes -= r->nbytes;
	return 0;
}

/* Replace record @old by @nw: same seq and state, another op. The FID
 * lists follow the op; a FID @nw names anew is inserted at its place. */
int
rlog_rec_rewrite(struct rlog *l, const struct rlog_rec *old, struct rlog_rec *nw)
{
	struct memb mo[4], mn[4];
	struct lid id;
	size_t no, nn, i, j;
	int rc;

	nw->nbytes = rlog_store_bytes(&nw->op);
	rc = rlog_rec_store(l, nw, TDB_MODIFY);
	if (rc)
		return rc;
	if (old->op.kind != nw->op.kind) {
		rlog_lid_make(&id, LT_ALL, NULL);
		rc = rlog_list_set(l, &id, nw->seq, nw->state, nw->op.kind);
		if (!rc && nw->state != RLOG_INFLIGHT) {
			rlog_lid_make(&id,
				 nw->state == RLOG_PENDING ? LT_PEND : LT_CONF,
				 NULL);
			rc = rlog_list_set(l, &id, nw->seq, nw->state, nw->op.kind);
		}
		if (rc)
			return rc;
	}
	no = rlog_op_membs(&old->op, mo);
	nn = rlog_op_membs(&nw->op, mn);
	for (i = 0; i < no; i++) {
		for (j = 0; j < nn && !fid_eq(&mo[i].fid, &mn[j].fid); j++)
			;
		rlog_lid_make(&id, LT_FID, &mo[i].fid);
		if (j == nn)
			rc = rlog_list_remove(l, &id, nw->seq);
		else if (mn[j].roles != mo[i].roles ||
			 old->op.kind != nw->op.kind)
			rc = rlog_list_set(l, &id, nw->seq, mn[j].roles,
				      nw->op.kind);
		if (rc)
			return rc;
	}
	for (j = 0; j < nn; j++) {
		for (i = 0; i < no && !fid_eq(&mo[i].fid, &mn[j].fid); i++)
			;
		if (i < no)
			continue;
		rlog_lid_make(&id, LT_FID, &mn[j].fid);
		rc = rlog_list_insert(l, &id, nw->seq, mn[j].roles, nw->op.kind);
		if (rc)
			return rc;
	}
	if (l->tx.data_bytes < old->nbytes)
		return -EUCLEAN;
	l->tx.data_bytes += nw->nbytes - old->nbytes;
	return 0;
}

/* State of record @seq from its 'A' node (no record read). */
int
rlog_rec_state(struct rlog *l, uint64_t seq, enum rlog_state *st)
{
	struct lid id;
	struct lnode n;
	int rc;

	rlog_lid_make(&id, LT_ALL, NULL);
	rc = rlog_lnode_get(l, &id, seq, &n);
	if (rc)
		return rc;
	*st = (enum rlog_state)n.aux;
	return 0;
}
