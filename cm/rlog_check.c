/*
 * rlog_check.c - rlog_check(): reads the whole file and verifies every
 * record, list and counter against each other. Used by the tests
 * and the crash test's checker; it changes nothing.
 */

#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm/rlog_i.h"

/* --- consistency check --- */

struct check_ctx {
	uint64_t nrec, nnodes, nheads;
	struct lid *fheads;
	size_t nf, capf;
	int rc;
};

static int
check_traverse(TDB_DATA key, TDB_DATA val, void *arg)
{
	struct check_ctx *c = arg;
	struct lid *nf;

	(void)val;
	if (key.dsize == 9 && key.dptr[0] == 'R') {
		c->nrec++;
	} else if (key.dsize == 1 + LID_LEN + 8 && key.dptr[0] == 'n') {
		c->nnodes++;
	} else if (key.dsize == 1 + LID_LEN && key.dptr[0] == 'h') {
		c->nheads++;
		if (key.dptr[1] != LT_FID)
			return 0;
		if (c->nf == c->capf) {
			c->capf = c->capf ? 2 * c->capf : 64;
			nf = realloc(c->fheads, c->capf * sizeof(*nf));
			if (!nf) {
				c->rc = -ENOMEM;
				return -1;
			}
			c->fheads = nf;
		}
		memcpy(c->fheads[c->nf++].b, key.dptr + 1, LID_LEN);
	} else if (!(key.dsize == 1 && key.dptr[0] == 'H')) {
		c->rc = -EUCLEAN;
		return -1;
	}
	return 0;
}

static int
cmp_fid(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct fid));
}

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			if (why)                                               \
				snprintf(why, len, __VA_ARGS__);               \
			rc = -EUCLEAN;                                         \
			goto out;                                              \
		}                                                              \
	} while (0)

/* Walk list @id: increasing seqs, consistent back links, @count nodes. */
static int
check_list(struct rlog *l, const struct lid *id, uint64_t *count, char *why,
	   size_t len)
{
	struct lhead h;
	struct lnode n;
	uint64_t seq, prev = 0, cnt = 0;
	int rc;

	rc = rlog_lhead_get(l, id, &h);
	if (rc)
		return rc;
	for (seq = h.first; seq; prev = seq, seq = n.next) {
		CHECK(cnt++ < h.count, "list '%c' longer than its count",
		      id->b[0]);
		rc = rlog_lnode_get(l, id, seq, &n);
		CHECK(!rc, "list '%c' misses node %llu", id->b[0],
		      (unsigned long long)seq);
		CHECK(n.prev == prev && seq > prev,
		      "list '%c' out of order at %llu", id->b[0],
		      (unsigned long long)seq);
	}
	CHECK(cnt == h.count && h.last == prev, "list '%c' count or tail wrong",
	      id->b[0]);
	*count = cnt;
out:
	return rc;
}

int
rlog_check(struct rlog *l, unsigned flags, char *why, size_t len)
{
	struct check_ctx c = {0};
	struct rlog_rec r = {0};
	struct memb m[4];
	struct lid id, pid, cid;
	struct lhead h;
	struct lnode n, sn;
	uint64_t seq, cnt[4] = {0}, bytes = 0, membs = 0, fnodes = 0, k;
	uint64_t npl, ncl, nal;
	struct fid *fids = NULL;
	size_t i, nm, nfids = 0, capfids = 0, same;
	int rc;

	if (!l)
		return -EINVAL;
	if (why && len)
		why[0] = 0;
	pthread_mutex_lock(&l->lock);
	rlog_lazy_flush_locked(l);
	rlog_lid_make(&id, LT_ALL, NULL);
	rlog_lid_make(&pid, LT_PEND, NULL);
	rlog_lid_make(&cid, LT_CONF, NULL);
	rc = check_list(l, &id, &nal, why, len);
	if (!rc)
		rc = check_list(l, &pid, &npl, why, len);
	if (!rc)
		rc = check_list(l, &cid, &ncl, why, len);
	if (rc)
		goto out;
	rc = rlog_lhead_get(l, &id, &h);
	for (seq = h.first; !rc && seq; seq = n.next) {
		rc = rlog_lnode_get(l, &id, seq, &n);
		if (rc)
			break;
		rc = rlog_rec_load(l, seq, &r);
		CHECK(!rc, "record %llu unreadable: %s",
		      (unsigned long long)seq, strerror(-rc));
		CHECK(r.state == n.aux && r.op.kind == n.kind &&
			      seq < l->hdr.next_seq,
		      "record %llu disagrees with its list node",
		      (unsigned long long)seq);
		cnt[r.state]++;
		bytes += r.nbytes;
		CHECK(r.nbytes == rlog_store_bytes(&r.op),
		      "record %llu byte count wrong", (unsigned long long)seq);
		if (r.state != RLOG_INFLIGHT) {
			rc = rlog_lnode_get(l, r.state == RLOG_PENDING ? &pid : &cid,
				       seq, &sn);
			CHECK(!rc, "record %llu missing from its state list",
			      (unsigned long long)seq);
		}
		nm = rlog_op_membs(&r.op, m);
		for (i = 0; i < nm; i++) {
			struct lid fid;

			rlog_lid_make(&fid, LT_FID, &m[i].fid);
			rc = rlog_lnode_get(l, &fid, seq, &sn);
			CHECK(!rc && sn.aux == m[i].roles &&
				      sn.kind == r.op.kind,
			      "record %llu missing from a FID index",
			      (unsigned long long)seq);
		}
		for (i = 0; i < nm; i++) {
			if (nfids == capfids) {
				struct fid *nf;

				capfids = capfids ? 2 * capfids : 256;
				nf = realloc(fids, capfids * sizeof(*nf));
				if (!nf) {
					rc = -ENOMEM;
					goto out;
				}
				fids = nf;
			}
			fids[nfids++] = m[i].fid;
		}
		membs += nm;
		rlog_rec_release(&r);
	}
	if (rc)
		goto out;
	/* Each FID list reached from the records: in order, and exactly as
	 * long as the number of records naming that FID. */
	if (nfids)
		qsort(fids, nfids, sizeof(*fids), cmp_fid);
	for (i = 0; i < nfids; i += same) {
		struct lid fid;

		for (same = 1;
		     i + same < nfids && !cmp_fid(&fids[i], &fids[i + same]);
		     same++)
			;
		rlog_lid_make(&fid, LT_FID, &fids[i]);
		rc = check_list(l, &fid, &k, why, len);
		if (rc)
			goto out;
		CHECK(k == same, "a FID index lists %llu records, %zu name it",
		      (unsigned long long)k, same);
	}
	CHECK(cnt[RLOG_PENDING] == l->hdr.npend && npl == l->hdr.npend &&
		      cnt[RLOG_INFLIGHT] == l->hdr.ninfl &&
		      cnt[RLOG_CONFLICT] == l->hdr.nconf &&
		      ncl == l->hdr.nconf && nal == l->hdr.nrec &&
		      bytes == l->hdr.data_bytes,
	      "header counters disagree with the records");
	if (!(flags & RLOG_CHECK_KEYS))
		goto out;
	rc = tdbj_traverse_read(l->j, check_traverse, &c);
	if (rc < 0 && !c.rc)
		c.rc = rc;
	rc = c.rc;
	CHECK(!rc, "unknown key in the file");
	for (i = 0; i < c.nf; i++) {
		rc = check_list(l, &c.fheads[i], &k, why, len);
		if (rc)
			goto out;
		fnodes += k;
	}
	CHECK(c.nrec == l->hdr.nrec, "%llu records but header says %llu",
	      (unsigned long long)c.nrec, (unsigned long long)l->hdr.nrec);
	CHECK(fnodes == membs && c.nnodes == nal + npl + ncl + membs,
	      "index has %llu nodes, records need %llu",
	      (unsigned long long)c.nnodes,
	      (unsigned long long)(nal + npl + ncl + membs));
out:
	rlog_rec_release(&r);
	free(c.fheads);
	free(fids);
	pthread_mutex_unlock(&l->lock);
	return rc;
}
