/*
 * rlog_cancel.c - the cancellation rules: what an append does to the
 * PENDING records already in the log (drop, fold, merge), inside the
 * append's transaction. doc/replay-log.md states each rule and its safety
 * condition; the comments here say how the code checks it.
 */

#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cm/rlog_i.h"

/* --- effects --- */

static int
eff_add(struct rlog_effect *eff, const struct rlog_rec *r, enum rlog_why why,
	bool removed)
{
	struct rlog_change *c;

	c = realloc(eff->changes, (eff->nchanges + 1) * sizeof(*c));
	if (!c)
		return -ENOMEM;
	eff->changes = c;
	c += eff->nchanges++;
	c->seq = r->seq;
	c->why = why;
	c->removed = removed;
	c->kind = r->op.kind;
	c->fid = r->op.fid;
	return 0;
}

static int
cancel_rec(struct rlog *l, const struct rlog_rec *r, struct rlog_effect *eff,
	   enum rlog_why why)
{
	int rc = rlog_rec_del(l, r);

	if (!rc)
		rc = eff_add(eff, r, why, true);
	if (!rc)
		l->ncancelled++;
	return rc;
}

/*
 * The cancellation rules. Each runs inside the append's transaction, reads
 * only the lists of the FIDs involved, and either changes nothing (the op
 * is appended as it came) or applies completely. doc/replay-log.md states
 * every rule with its safety condition; the comments here say how the
 * code checks it.
 */

/* Walk state for one FID list, newest first. */
struct back {
	struct lid id;
	uint64_t seq;
	struct lnode node;
	size_t steps;
};

static int
back_start(struct rlog *l, struct back *w, const struct fid *f)
{
	struct lhead h;
	int rc;

	rlog_lid_make(&w->id, LT_FID, f);
	w->steps = 0;
	rc = rlog_lhead_get(l, &w->id, &h);
	w->seq = h.last;
	return rc;
}

/* Step to the next older node; 0 with w->seq == 0 at the end, -E2BIG when
 * the walk is too long (the caller then keeps the op as is). */
static int
back_next(struct rlog *l, struct back *w)
{
	int rc;

	if (!w->seq)
		return 0;
	if (++w->steps > SCAN_MAX)
		return -E2BIG;
	rc = rlog_lnode_get(l, &w->id, w->seq, &w->node);
	return rc == -ENOENT ? -EUCLEAN : rc;
}

/*
 * Rule 3, identity cancellation: @f was created in the log (its create,
 * mkdir or symlink record is still PENDING) and @remover takes away its
 * last name. Then every record about @f vanishes; a rename of @f over
 * another object becomes the removal of that object. Conditions, all
 * checked before anything changes:
 *  - every record naming @f is PENDING and names it as its object only
 *    (not as a parent: a directory whose entries moved elsewhere stays;
 *    not as a victim);
 *  - the oldest of them is the create; none is an exchange;
 *  - creates and links minus unlinks/rmdirs of @f count exactly one name
 *    (so hard links keep the create alive until the last name goes).
 * *@gone tells whether it applied.
 */
static int
rule_identity(struct rlog *l, const struct fid *f, struct rlog_effect *eff,
	      bool *gone)
{
	struct lhead h;
	struct lid id;
	struct lnode n;
	struct rlog_rec r = {0}, nw = {0};
	uint64_t *seqs = NULL, seq;
	enum rlog_state st;
	enum proto_op_kind created = PROTO_OP_NONE;
	long names = 0;
	size_t cnt = 0, i;
	int rc;

	*gone = false;
	rlog_lid_make(&id, LT_FID, f);
	rc = rlog_lhead_get(l, &id, &h);
	if (rc || !h.count || h.count > SCAN_MAX)
		return rc;
	seqs = malloc(h.count * sizeof(*seqs));
	if (!seqs)
		return -ENOMEM;
	for (seq = h.first; seq && cnt < h.count; seq = n.next) {
		rc = rlog_lnode_get(l, &id, seq, &n);
		if (rc)
			goto out;
		if (n.aux != ROLE_OBJ)
			goto out;
		rc = rlog_rec_state(l, seq, &st);
		if (rc)
			goto out;
		if (st != RLOG_PENDING)
			goto out;
		switch (n.kind) {
		case PROTO_OP_CREATE:
		case PROTO_OP_MKDIR:
		case PROTO_OP_SYMLINK:
		case PROTO_OP_MKMOUNT:
			if (cnt || created)
				goto out;
			created = n.kind;
			names++;
			break;
		case PROTO_OP_LINK:
			names++;
			break;
		case PROTO_OP_UNLINK:
		case PROTO_OP_RMDIR:
			names--;
			break;
		default:
			break;
		}
		if (!created)
			goto out; /* a record about @f older than its create */
		seqs[cnt++] = seq;
	}
	if (seq || cnt != h.count || names != 1)
		goto out;
	/* A rename of @f that carried a victim or swapped two objects: an
	 * exchange cannot be undone alone, so nothing happens. */
	for (i = 0; i < cnt; i++) {
		bool exchange;

		rc = rlog_lnode_get(l, &id, seqs[i], &n);
		if (rc)
			goto out;
		if (n.kind != PROTO_OP_RENAME)
			continue;
		rc = rlog_rec_load(l, seqs[i], &r);
		if (rc)
			goto out;
		exchange = r.op.flags & PROTO_RENAME_EXCHANGE;
		rlog_rec_release(&r);
		if (exchange)
			goto out;
	}
	for (i = 0; i < cnt; i++) {
		rc = rlog_rec_load(l, seqs[i], &r);
		if (rc)
			goto out;
		if (r.op.kind == PROTO_OP_RENAME &&
		    !fid_is_null(&r.op.victim)) {
			/* "rename tmp over a" then "rm a" (tmp created in the
			 * log): the server must still lose the old a. */
			rc = rlog_rec_dup(&nw, &r);
			if (rc)
				goto out;
			nw.op.kind = created == PROTO_OP_MKDIR
					     ? PROTO_OP_RMDIR
					     : PROTO_OP_UNLINK;
			nw.op.parent = r.op.newparent;
			free(nw.op.name);
			nw.op.name = nw.op.newname;
			nw.op.newname = NULL;
			nw.op.fid = r.op.victim;
			memset(&nw.op.newparent, 0, sizeof(nw.op.newparent));
			memset(&nw.op.victim, 0, sizeof(nw.op.victim));
			nw.op.flags = 0;
			rc = rlog_rec_rewrite(l, &r, &nw);
			if (!rc)
				rc = eff_add(eff, &r, RLOG_WHY_REWRITTEN,
					     false);
			rlog_rec_release(&nw);
		} else {
			rc = cancel_rec(l, &r, eff, RLOG_WHY_IDENTITY);
		}
		rlog_rec_release(&r);
		if (rc)
			goto out;
	}
	*gone = true;
out:
	free(seqs);
	return rc;
}

/* Does @r name (@dir, @name) as its source or its target? */
static bool
names_entry(const struct proto_op *op, const struct fid *dir, const char *name)
{
	return (fid_eq(&op->parent, dir) && rlog_streq(op->name, name)) ||
	       (fid_eq(&op->newparent, dir) && rlog_streq(op->newname, name));
}

/* Does any record newer than @after in @dir's list name (@dir, @n1) or
 * (@dir, @n2), or (with @obj) name @dir as its object? -E2BIG if too long
 * to tell. */
static int
dir_touched_after(struct rlog *l, const struct fid *dir, uint64_t after,
		  const char *n1, const char *n2, bool obj, bool *hit)
{
	struct back w;
	struct rlog_rec r;
	int rc;

	*hit = false;
	rc = back_start(l, &w, dir);
	while (!rc && w.seq > after) {
		rc = back_next(l, &w);
		if (rc)
			break;
		if (obj && (w.node.aux & ROLE_OBJ)) {
			*hit = true;
			return 0;
		}
		if (w.node.aux & (ROLE_PARENT | ROLE_NEWPARENT)) {
			rc = rlog_rec_load(l, w.seq, &r);
			if (rc)
				break;
			*hit = (n1 && names_entry(&r.op, dir, n1)) ||
			       (n2 && names_entry(&r.op, dir, n2));
			rlog_rec_release(&r);
			if (*hit)
				return 0;
		}
		w.seq = w.node.prev;
	}
	return rc;
}

/* Is there any RENAME newer than @after in the whole log? */
static int
rename_after(struct rlog *l, uint64_t after, bool *hit)
{
	struct lid id;
	struct lhead h;
	struct lnode n;
	uint64_t seq;
	size_t steps = 0;
	int rc;

	*hit = false;
	rlog_lid_make(&id, LT_ALL, NULL);
	rc = rlog_lhead_get(l, &id, &h);
	for (seq = h.last; !rc && seq > after; seq = n.prev) {
		if (++steps > SCAN_MAX)
			return -E2BIG;
		rc = rlog_lnode_get(l, &id, seq, &n);
		if (!rc && n.kind == PROTO_OP_RENAME) {
			*hit = true;
			return 0;
		}
	}
	return rc;
}

/*
 * Rule 4, rename chains: @op renames F from (P1, n1) to (P2, n2); R is the
 * newest record that gave F the name (P1, n1) (create, mkdir, symlink,
 * link, or rename to it). R is rewritten in place to give F the name
 * (P2, n2) at once, and @op vanishes. Safe when (doc/replay-log.md):
 *  a. R is PENDING; neither R nor @op is an exchange;
 *  b. R, if a rename, has no victim (its victim must still go);
 *     R, if a create or link, meets an @op without victim (a create
 *     cannot replace anything);
 *  c. no record after R names (P1, n1) or (P2, n2) (the server would see
 *     the name free, or taken, at another moment than the client did);
 *  d. no record after R names @op's victim (it now goes at R's moment);
 *  e. P2 == P1, or no record after R has P2 as its object (P2 might be
 *     created or moved after R);
 *  f. if F may be a directory (R is a mkdir or a rename) and P2 != P1, no
 *     rename at all after R (moving F earlier must not put it under one of
 *     its own descendants).
 * A rename back to where R took it from, with no victim, drops both.
 */
static int
rule_fold(struct rlog *l, struct rlog_rec *n, struct rlog_effect *eff,
	  bool *done)
{
	const struct proto_op *op = &n->op;
	struct rlog_rec r = {0}, nw = {0};
	struct back w;
	struct lhead vh;
	struct lid vid;
	enum rlog_state st;
	bool hit, found = false, origin;
	int rc;

	*done = false;
	if ((op->flags & PROTO_RENAME_EXCHANGE) ||
	    (fid_eq(&op->parent, &op->newparent) &&
	     rlog_streq(op->name, op->newname)))
		return 0;
	rc = back_start(l, &w, &op->fid);
	while (!rc && w.seq) {
		rc = back_next(l, &w);
		if (rc)
			break;
		if (w.node.aux & ROLE_OBJ) {
			rc = rlog_rec_load(l, w.seq, &r);
			if (rc)
				break;
			switch (r.op.kind) {
			case PROTO_OP_CREATE:
			case PROTO_OP_MKDIR:
			case PROTO_OP_SYMLINK:
			case PROTO_OP_MKMOUNT:
			case PROTO_OP_LINK:
				found = fid_eq(&r.op.parent, &op->parent) &&
					rlog_streq(r.op.name, op->name);
				break;
			case PROTO_OP_RENAME:
				found = fid_eq(&r.op.newparent, &op->parent) &&
					rlog_streq(r.op.newname, op->name);
				break;
			default:
				break;
			}
			if (found)
				break;
			rlog_rec_release(&r);
		}
		w.seq = w.node.prev;
	}
	if (rc || !found)
		goto keep;
	/* a, b */
	rc = rlog_rec_state(l, r.seq, &st);
	if (rc || st != RLOG_PENDING)
		goto keep;
	if (r.op.kind == PROTO_OP_RENAME) {
		if (!fid_is_null(&r.op.victim) ||
		    (r.op.flags & PROTO_RENAME_EXCHANGE))
			goto keep;
	} else if (!fid_is_null(&op->victim)) {
		goto keep;
	}
	/* c, e */
	rc = dir_touched_after(l, &op->parent, r.seq, op->name,
			       fid_eq(&op->parent, &op->newparent) ? op->newname
								   : NULL,
			       false, &hit);
	if (rc || hit)
		goto keep;
	if (!fid_eq(&op->parent, &op->newparent)) {
		rc = dir_touched_after(l, &op->newparent, r.seq, op->newname,
				       NULL, true, &hit);
		if (rc || hit)
			goto keep;
	}
	/* d */
	if (!fid_is_null(&op->victim)) {
		rlog_lid_make(&vid, LT_FID, &op->victim);
		rc = rlog_lhead_get(l, &vid, &vh);
		if (rc || vh.last > r.seq)
			goto keep;
	}
	/* f */
	if ((r.op.kind == PROTO_OP_MKDIR || r.op.kind == PROTO_OP_RENAME) &&
	    !fid_eq(&op->parent, &op->newparent)) {
		rc = rename_after(l, r.seq, &hit);
		if (rc || hit)
			goto keep;
	}
	origin = r.op.kind == PROTO_OP_RENAME && fid_is_null(&op->victim) &&
		 fid_eq(&r.op.parent, &op->newparent) &&
		 rlog_streq(r.op.name, op->newname);
	if (origin) {
		/* R's own source name must not have been touched either: the
		 * object goes back to a name nobody else used meanwhile. */
		rc = dir_touched_after(l, &r.op.parent, r.seq, r.op.name, NULL,
				       false, &hit);
		if (rc || hit)
			goto keep;
		rc = cancel_rec(l, &r, eff, RLOG_WHY_FOLDED);
		if (rc)
			goto out;
		eff->fate = RLOG_VANISHED;
		eff->seq = 0;
		*done = true;
		goto out;
	}
	rc = rlog_rec_dup(&nw, &r);
	if (rc)
		goto out;
	if (r.op.kind == PROTO_OP_RENAME) {
		free(nw.op.newname);
		nw.op.newname = strdup(op->newname);
		nw.op.newparent = op->newparent;
		nw.op.victim = op->victim;
		nw.op.flags = op->flags;
	} else {
		free(nw.op.name);
		nw.op.name = strdup(op->newname);
		nw.op.parent = op->newparent;
	}
	if (!nw.op.name || (nw.op.kind == PROTO_OP_RENAME && !nw.op.newname)) {
		rc = -ENOMEM;
		goto out;
	}
	rc = rlog_rec_rewrite(l, &r, &nw);
	if (!rc)
		rc = eff_add(eff, &r, RLOG_WHY_FOLDED, false);
	if (rc)
		goto out;
	eff->fate = RLOG_FOLDED;
	eff->seq = r.seq;
	memcpy(eff->opid, r.op.opid, 16);
	*done = true;
	goto out;
keep:
	if (rc == -E2BIG)
		rc = 0;
out:
	rlog_rec_release(&r);
	rlog_rec_release(&nw);
	return rc;
}

/* Append chunk numbers to a growing sorted-unique set. */
static int
chunks_union(uint64_t **set, size_t *n, const uint64_t *add, size_t nadd)
{
	uint64_t *s;
	size_t i, k;

	if (*n + nadd > MERGE_CHUNKS_MAX)
		return -E2BIG;
	s = realloc(*set, (*n + nadd + 1) * sizeof(*s));
	if (!s)
		return -ENOMEM;
	if (nadd)
		memcpy(s + *n, add, nadd * sizeof(*s));
	*n += nadd;
	*set = s;
	qsort(s, *n, sizeof(*s), rlog_cmp_u64);
	for (i = k = 0; i < *n; i++)
		if (!k || s[k - 1] != s[i])
			s[k++] = s[i];
	*n = k;
	return 0;
}

/*
 * Rule 1, store over store: the newest older store of the same FID, if
 * PENDING with the same chunk size and no truncate (setattr of size)
 * between them, is replaced by the new one, which takes the older base DV,
 * the union of the chunks, and the newest size. A store's chunks are read
 * from the local cache when it is sent, so the union sends the latest
 * bytes. When the file had shrunk before it grew again (old size < new
 * size), the chunks from the old size to the new one are added too: the
 * server must write the zeros there, which "chunks not listed keep their
 * old bytes" would otherwise skip. Chunks wholly past the new size go.
 */
static int
rule_store(struct rlog *l, struct rlog_rec *n, struct rlog_effect *eff)
{
	struct proto_op *op = &n->op;
	struct rlog_rec r = {0};
	struct back w;
	enum rlog_state st;
	uint64_t *set = NULL, *gap = NULL, first, last, c;
	size_t nset = 0, i, k;
	int rc;

	rc = back_start(l, &w, &op->fid);
	while (!rc && w.seq) {
		rc = back_next(l, &w);
		if (rc)
			break;
		if ((w.node.aux & ROLE_OBJ) && w.node.kind == PROTO_OP_STORE)
			break;
		if ((w.node.aux & ROLE_OBJ) &&
		    w.node.kind == PROTO_OP_SETATTR) {
			rc = rlog_rec_load(l, w.seq, &r);
			if (rc)
				break;
			k = r.op.mask & PROTO_SA_SIZE;
			rlog_rec_release(&r);
			if (k)
				goto keep; /* a truncate in between */
		}
		w.seq = w.node.prev;
	}
	if (rc || !w.seq)
		goto keep;
	rc = rlog_rec_state(l, w.seq, &st);
	if (rc || st != RLOG_PENDING)
		goto keep;
	rc = rlog_rec_load(l, w.seq, &r);
	if (rc || r.op.chunk_size != op->chunk_size)
		goto keep;
	rc = chunks_union(&set, &nset, r.op.chunks, r.op.nchunks);
	if (!rc)
		rc = chunks_union(&set, &nset, op->chunks, op->nchunks);
	if (!rc && r.op.size < op->size) {
		first = r.op.size / op->chunk_size;
		last = (op->size - 1) / op->chunk_size;
		if (last - first >= MERGE_CHUNKS_MAX) {
			rc = -E2BIG;
			goto keep;
		}
		gap = malloc((last - first + 1) * sizeof(*gap));
		if (!gap) {
			rc = -ENOMEM;
			goto out;
		}
		for (c = first, k = 0; c <= last; c++)
			gap[k++] = c;
		rc = chunks_union(&set, &nset, gap, k);
	}
	if (rc)
		goto keep;
	for (i = k = 0; i < nset; i++)
		if (set[i] < (op->size + op->chunk_size - 1) / op->chunk_size)
			set[k++] = set[i];
	/* The new store carries its bytes (format 3): the survivor must
	 * still be a store of chunk 0 alone, or the bytes would name less
	 * than it sends. (A small file's union is chunk 0 anyway: chunks
	 * past its size go.) */
	if (op->data &&
	    !rlog_data_ok(op->kind, op->chunk_size, op->size, set, k, op->dlen))
		goto keep;
	rc = cancel_rec(l, &r, eff, RLOG_WHY_MERGED);
	if (rc)
		goto out;
	free(op->chunks);
	op->chunks = set;
	op->nchunks = k;
	set = NULL;
	op->base_dv = r.op.base_dv;
	n->time_ms = r.time_ms;
	goto out;
keep:
	if (rc == -E2BIG)
		rc = 0;
out:
	free(set);
	free(gap);
	rlog_rec_release(&r);
	return rc;
}

/*
 * Rule 2, setattr over setattr: the newest older setattr of the FID, if
 * PENDING with no store between them, is replaced by the new one with the
 * union of the masks (the newer value wins per field) and the older base
 * DV. Two truncates merge only when the second does not grow the file:
 * "truncate to 0, then to 10" must leave zeros that "truncate to 10"
 * would not write.
 */
static int
rule_setattr(struct rlog *l, struct rlog_rec *n, struct rlog_effect *eff)
{
	struct proto_op *op = &n->op;
	struct rlog_rec r = {0};
	struct back w;
	enum rlog_state st;
	uint32_t old;
	int rc;

	rc = back_start(l, &w, &op->fid);
	while (!rc && w.seq) {
		rc = back_next(l, &w);
		if (rc)
			break;
		if ((w.node.aux & ROLE_OBJ) && w.node.kind == PROTO_OP_STORE)
			goto keep;
		if ((w.node.aux & ROLE_OBJ) && w.node.kind == PROTO_OP_SETATTR)
			break;
		w.seq = w.node.prev;
	}
	if (rc || !w.seq)
		goto keep;
	rc = rlog_rec_state(l, w.seq, &st);
	if (rc || st != RLOG_PENDING)
		goto keep;
	rc = rlog_rec_load(l, w.seq, &r);
	if (rc)
		goto keep;
	if ((r.op.mask & op->mask & PROTO_SA_SIZE) && op->size > r.op.size)
		goto keep;
	old = r.op.mask & ~op->mask;
	if (old & PROTO_SA_MODE)
		op->mode = r.op.mode;
	if (old & PROTO_SA_UID)
		op->uid = r.op.uid;
	if (old & PROTO_SA_GID)
		op->gid = r.op.gid;
	if (old & PROTO_SA_SIZE)
		op->size = r.op.size;
	if (old & PROTO_SA_ATIME)
		op->atime_ns = r.op.atime_ns;
	if (old & PROTO_SA_MTIME)
		op->mtime_ns = r.op.mtime_ns;
	rc = cancel_rec(l, &r, eff, RLOG_WHY_MERGED);
	if (rc)
		goto out;
	op->mask |= r.op.mask;
	op->base_dv = r.op.base_dv;
	n->time_ms = r.time_ms;
	goto out;
keep:
	if (rc == -E2BIG)
		rc = 0;
out:
	rlog_rec_release(&r);
	return rc;
}

/*
 * Rule 5, xattrs: the newest older setxattr/removexattr of the same name
 * on the FID, if PENDING, is superseded; the survivor keeps the OLDER
 * record's precondition (the server's state before both):
 *   set(f1) + set(f2)        -> set(f1), newer value
 *   set(CREATE) + remove     -> nothing (it never existed on the server)
 *   set(REPLACE) + remove    -> remove
 *   set(0) + remove          -> both kept (no op says "remove if present")
 *   remove + set(f)          -> set(REPLACE)
 *   remove + remove          -> the older remove
 * *@gone: the new op needs no record of its own.
 */
static int
rule_xattr(struct rlog *l, struct rlog_rec *n, struct rlog_effect *eff,
	   bool *gone)
{
	struct proto_op *op = &n->op;
	struct rlog_rec r = {0};
	struct back w;
	enum rlog_state st;
	bool found = false;
	int rc;

	*gone = false;
	rc = back_start(l, &w, &op->fid);
	while (!rc && w.seq) {
		rc = back_next(l, &w);
		if (rc)
			break;
		if ((w.node.aux & ROLE_OBJ) &&
		    (w.node.kind == PROTO_OP_SETXATTR ||
		     w.node.kind == PROTO_OP_REMOVEXATTR)) {
			rc = rlog_rec_load(l, w.seq, &r);
			if (rc)
				break;
			found = rlog_streq(r.op.xname, op->xname);
			if (found)
				break;
			rlog_rec_release(&r);
		}
		w.seq = w.node.prev;
	}
	if (rc || !found)
		goto keep;
	rc = rlog_rec_state(l, r.seq, &st);
	if (rc || st != RLOG_PENDING)
		goto keep;
	if (r.op.kind == PROTO_OP_SETXATTR) {
		if (op->kind == PROTO_OP_SETXATTR) {
			op->flags = r.op.flags;
		} else if (r.op.flags & PROTO_XATTR_CREATE) {
			*gone = true;
		} else if (!(r.op.flags & PROTO_XATTR_REPLACE)) {
			goto keep;
		}
	} else if (op->kind == PROTO_OP_SETXATTR) {
		op->flags = PROTO_XATTR_REPLACE;
	} else {
		/* remove + remove: the older one stays and carries both. */
		eff->fate = RLOG_FOLDED;
		eff->seq = r.seq;
		memcpy(eff->opid, r.op.opid, 16);
		*gone = true;
		goto out;
	}
	rc = cancel_rec(l, &r, eff, RLOG_WHY_MERGED);
	if (rc)
		goto out;
	if (*gone) {
		eff->fate = RLOG_VANISHED;
		eff->seq = 0;
	} else {
		n->time_ms = r.time_ms;
	}
	goto out;
keep:
	if (rc == -E2BIG)
		rc = 0;
out:
	rlog_rec_release(&r);
	return rc;
}

/* Apply one (checked) op inside the open transaction. */
int
rlog_apply_one(struct rlog *l, const struct proto_op *op, unsigned flags,
	  struct rlog_effect *eff)
{
	struct rlog_rec n = {0};
	bool done = false;
	int rc;

	memset(eff, 0, sizeof(*eff));
	rc = rlog_op_dup(&n.op, op);
	if (rc)
		return rc;
	if (rlog_zero16(n.op.opid) && getrandom(n.op.opid, 16, 0) != 16) {
		rc = -errno;
		goto out;
	}
	memcpy(eff->opid, n.op.opid, 16);
	n.state = (flags & RLOG_A_INFLIGHT) ? RLOG_INFLIGHT : RLOG_PENDING;
	n.time_ms = rlog_now_real_ms();
	if (n.state == RLOG_PENDING) {
		switch (n.op.kind) {
		case PROTO_OP_UNLINK:
		case PROTO_OP_RMDIR:
			rc = rule_identity(l, &n.op.fid, eff, &done);
			if (done)
				eff->fate = RLOG_VANISHED;
			break;
		case PROTO_OP_RENAME:
			if (!fid_is_null(&n.op.victim) &&
			    !(n.op.flags & PROTO_RENAME_EXCHANGE)) {
				rc = rule_identity(l, &n.op.victim, eff, &done);
				if (!rc && done) {
					memset(&n.op.victim, 0,
					       sizeof(n.op.victim));
					done = false;
				}
			}
			if (!rc)
				rc = rule_fold(l, &n, eff, &done);
			break;
		case PROTO_OP_STORE:
			rc = rule_store(l, &n, eff);
			break;
		case PROTO_OP_SETATTR:
			rc = rule_setattr(l, &n, eff);
			break;
		case PROTO_OP_SETXATTR:
		case PROTO_OP_REMOVEXATTR:
			rc = rule_xattr(l, &n, eff, &done);
			break;
		default:
			break;
		}
	}
	if (rc || done)
		goto out;
	n.nbytes = rlog_store_bytes(&n.op);
	rc = rlog_rec_new(l, &n);
	if (rc)
		goto out;
	eff->seq = n.seq;
	eff->fate = eff->nchanges ? RLOG_MERGED : RLOG_APPENDED;
out:
	rlog_rec_release(&n);
	return rc;
}
