/*
 * vs_txn.c - transactions (one tdb transaction per mutation, or per
 * group of them: vs_batch.c), the opid table, the event log and the
 * import entry points (volstore.c has the crash logic).
 */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <linux/falloc.h>

#include "common/log.h"
#include "common/tdbw.h"
#include "common/token.h"
#include "common/util.h"
#include "vol/volstore.h"
#include "vol/volstore_i.h"

static void
key_ev(uint8_t *k, uint64_t seq)
{
	k[0] = 'L';
	put_be64(k + 1, seq);
}

/* Stored event: [u8 kind][16 oid][u64 dv]. */
int
vs_events_read(struct vs_vol *v, uint64_t from, struct proto_event *out,
	       size_t max, size_t *np)
{
	struct vrec vr;
	uint64_t seq;
	size_t n = 0;
	int rc = vrec_get(v, &vr);

	*np = 0;
	if (rc)
		return rc;
	if (from == 0)
		from = 1;
	for (seq = from; seq <= vr.ev_seq && n < max; seq++) {
		uint8_t k[9], *val;
		size_t len;

		key_ev(k, seq);
		rc = kv_get(v, k, sizeof(k), &val, &len);
		if (rc == -ENOENT)
			continue;
		if (rc)
			return rc;
		if (len == 25) {
			out[n].seq = seq;
			out[n].kind = (enum proto_ev_kind)val[0];
			out[n].fid.vol = v->id;
			memcpy(out[n].fid.oid, val + 1, 16);
			memcpy(&out[n].dv, val + 17, 8);
			n++;
		}
		free(val);
	}
	*np = n;
	return 0;
}

int
append_events(struct txn *t)
{
	for (int i = 0; i < t->nev; i++) {
		uint8_t k[9], val[25];
		int rc;

		t->ev[i].seq = ++t->vr.ev_seq;
		key_ev(k, t->ev[i].seq);
		val[0] = (uint8_t)t->ev[i].kind;
		memcpy(val + 1, t->ev[i].fid.oid, 16);
		memcpy(val + 17, &t->ev[i].dv, 8);
		rc = kv_put(t->v, k, sizeof(k), val, sizeof(val));
		if (rc)
			return rc;
		if (t->ev[i].seq > VS_EVENT_RING) {
			key_ev(k, t->ev[i].seq - VS_EVENT_RING);
			rc = kv_del(t->v, k, sizeof(k));
			if (rc)
				return rc;
		}
	}
	return 0;
}

/* Opid table: "Q"+opid -> [u64 wall ms][u32 status][body]; "q"+be64 n ->
 * opid, the insertion order, so the oldest can be dropped. */
int
opid_lookup(struct vs_vol *v, const uint8_t opid[16], struct vs_reply *rep)
{
	uint8_t k[17], *val;
	size_t len;
	uint32_t st;
	int rc;

	k[0] = 'Q';
	memcpy(k + 1, opid, 16);
	rc = kv_get(v, k, sizeof(k), &val, &len);
	if (rc)
		return rc;
	if (len < 12) {
		free(val);
		return -EIO;
	}
	memcpy(&st, val + 8, 4);
	rep->body = malloc(len - 12 + 1);
	if (!rep->body) {
		free(val);
		return -ENOMEM;
	}
	memcpy(rep->body, val + 12, len - 12);
	rep->body[len - 12] = 0;
	rep->len = len - 12;
	rep->status = (int)st;
	rep->replayed = true;
	free(val);
	return 0;
}

int
opid_record(struct txn *t, const uint8_t opid[16], int status,
	    const char *body, size_t blen)
{
	uint8_t k[17], nk[9], *val;
	uint64_t now = wall_ms();
	uint32_t st = (uint32_t)status;
	int rc;

	val = malloc(12 + blen);
	if (!val)
		return -ENOMEM;
	memcpy(val, &now, 8);
	memcpy(val + 8, &st, 4);
	memcpy(val + 12, body, blen);
	k[0] = 'Q';
	memcpy(k + 1, opid, 16);
	rc = kv_put(t->v, k, sizeof(k), val, 12 + blen);
	free(val);
	if (rc)
		return rc;
	nk[0] = 'q';
	put_be64(nk + 1, t->vr.op_next++);
	rc = kv_put(t->v, nk, sizeof(nk), opid, 16);
	if (rc)
		return rc;
	/* Drop at most two of the oldest per insert: bounded work, and the
	 * table still shrinks faster than it grows. */
	for (int i = 0; i < 2 && t->vr.op_next - t->vr.op_low > VS_OPID_KEEP;
	     i++) {
		uint8_t *o, *q;
		size_t olen, qlen;
		uint64_t when = 0;

		put_be64(nk + 1, t->vr.op_low);
		rc = kv_get(t->v, nk, sizeof(nk), &o, &olen);
		if (rc == -ENOENT) {
			t->vr.op_low++;
			continue;
		}
		if (rc)
			return rc;
		if (olen == 16) {
			memcpy(k + 1, o, 16);
			if (kv_get(t->v, k, sizeof(k), &q, &qlen) == 0) {
				if (qlen >= 8)
					memcpy(&when, q, 8);
				free(q);
			}
		}
		free(o);
		if (when && now - when < VS_OPID_AGE_MS)
			break;
		if (olen == 16)
			kv_del(t->v, k, sizeof(k));
		kv_del(t->v, nk, sizeof(nk));
		t->vr.op_low++;
	}
	return 0;
}

void
txn_init(struct txn *t, struct vs_vol *v, bool events)
{
	memset(t, 0, sizeof(*t));
	t->v = v;
	t->events = events;
	t->now = now_ns();
}

int
txn_start(struct txn *t, struct vs_vol *v, bool events)
{
	int rc;

	txn_init(t, v, events);
	if (v->flags & VS_RDONLY)
		return -EROFS;
	if (v->flags & VS_BULK) {
		/* An unpublished import: writes go straight to the file (a
		 * tdb commit remaps the whole file, so one per op is O(size)
		 * each). A failure cannot be undone: the handle is done. */
		if (v->broken)
			return -EIO;
		t->bulk = true;
		return vrec_get(v, &t->vr);
	}
	rc = tdbj_txn_start(v->j);
	if (rc)
		return rc;
	rc = vrec_get(v, &t->vr);
	if (rc)
		tdbj_txn_cancel(v->j);
	return rc;
}

/* Unlink the chunk objects of @refs and free the lists of @t. */
static void
txn_unlink(struct txn *t, const struct cref *refs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char path[DPATH_MAX];

		chunk_path(path, sizeof(path), refs[i].oid, refs[i].chunk,
			   refs[i].gen);
		if (unlinkat(t->v->dirfd, path, 0) < 0 && errno != ENOENT)
			t->v->leaked = true; /* for the next open's scan */
	}
}

static void
txn_free(struct txn *t)
{
	free(t->gone);
	free(t->made);
	t->gone = t->made = NULL;
	t->ngone = t->nmade = t->capgone = t->capmade = 0;
}

void
txn_discard(struct txn *t)
{
	txn_unlink(t, t->made, t->nmade);
	txn_free(t);
}

void
txn_abort(struct txn *t)
{
	if (t->bulk)
		t->v->broken = true;
	else
		tdbj_txn_cancel(t->v->j);
	txn_discard(t);
}

int
txn_commit(struct txn *t)
{
	int rc = vrec_put(t->v, &t->vr);

	if (rc) {
		txn_abort(t);
		return rc;
	}
	if (t->bulk) {
		txn_after_commit(t);
		return 0;
	}
	rc = tdbj_txn_commit(t->v->j, 0);
	if (rc) {
		log_err(LOG_VOL, "cannot commit to volume '%s': %s",
			t->v->name, strerror(-rc));
		txn_discard(t);
		/* A commit that failed is never "not found" to the caller. */
		return rc != -ENOENT ? rc : -EIO;
	}
	txn_after_commit(t);
	return 0;
}

void
txn_after_commit(struct txn *t)
{
	/* Committed: chunk objects no longer referenced may go now (a crash
	 * before this leaves them for the next cleanup). */
	txn_unlink(t, t->gone, t->ngone);
	txn_free(t);
	if (t->store) {
		char sdir[64], sfile[128];

		stage_names(sdir, sizeof(sdir), sfile, sizeof(sfile),
			    t->store->txid, t->store->fid.oid,
			    t->store->chunk_size, 0);
		for (size_t i = 0; i < t->store->nchunks; i++) {
			struct stat st;

			stage_names(sdir, sizeof(sdir), sfile, sizeof(sfile),
				    t->store->txid, t->store->fid.oid,
				    t->store->chunk_size, t->store->chunks[i]);
			if (fstatat(t->v->dirfd, sfile, &st,
				    AT_SYMLINK_NOFOLLOW) == 0 &&
			    unlinkat(t->v->dirfd, sfile, 0) == 0)
				t->v->staged -=
					t->v->staged > (uint64_t)st.st_size
						? (uint64_t)st.st_size
						: t->v->staged;
		}
		stage_dir_drop(t->v, sdir);
	}
}

int
vs_apply_raw(struct vs_vol *v, const struct proto_op *op,
	     struct proto_op_result *res)
{
	struct txn t;
	int rc = txn_start(&t, v, false);

	if (rc)
		return rc;
	rc = do_op(&t, op);
	if (rc) {
		txn_abort(&t);
		return rc;
	}
	rc = txn_commit(&t);
	if (!rc && res)
		*res = t.res;
	return rc;
}

int
vs_import_times(struct vs_vol *v, const struct fid *fid, int64_t atime,
		int64_t mtime, int64_t ctime)
{
	struct txn t;
	struct obj o;
	int rc = vs_bulk_grow(v, 0); /* every object not vs_import_done()'s */

	if (!rc)
		rc = txn_start(&t, v, false);
	if (rc)
		return rc;
	rc = obj_get_fid(v, fid, &o);
	if (rc) {
		txn_abort(&t);
		return rc;
	}
	o.r.atime = atime;
	o.r.mtime = mtime;
	o.r.ctime = ctime;
	rc = obj_put(v, &o);
	obj_release(&o);
	if (rc) {
		txn_abort(&t);
		return rc;
	}
	return txn_commit(&t);
}
