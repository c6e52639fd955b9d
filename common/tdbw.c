/*
 * tdbw.c - the tdb wrapper (tdbw.h): one errno mapping and the handful of
 * calls cairn's tdb users share. It holds no state and takes no lock; the
 * caller owns the handle.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "common/tdbw.h"

/* tdb's offsets are 32-bit: a file cannot pass 4 GiB. tdb grows a file
 * by at least 10 % (above 100 MiB) and reports a growth that would pass
 * 4 GiB ("tdb_expand overflow detected") as TDB_ERR_OOM, like a failed
 * malloc. A file within one such step of 4 GiB (4 GiB / 1.1) tells the
 * two apart: that is a full database (-ENOSPC), not memory. */
#define TDBW_LIMIT (4096ull << 20)
static bool
tdbw_full(struct tdb_context *tdb)
{
	struct stat st;
	int fd = tdb_fd(tdb);

	return fd >= 0 && !fstat(fd, &st) &&
	       (uint64_t)st.st_size >= TDBW_LIMIT / 11 * 10;
}

int
tdbw_errno(struct tdb_context *tdb)
{
	switch (tdb_error(tdb)) {
	case TDB_ERR_CORRUPT:
		return -EUCLEAN;
	case TDB_ERR_IO:
		return -EIO;
	case TDB_ERR_OOM:
		return tdbw_full(tdb) ? -ENOSPC : -ENOMEM;
	case TDB_ERR_EXISTS:
		return -EEXIST;
	case TDB_ERR_NOEXIST:
		return -ENOENT;
	case TDB_ERR_RDONLY:
		return -EROFS;
	case TDB_ERR_EINVAL:
		return -EINVAL;
	case TDB_ERR_LOCK:
	case TDB_ERR_NOLOCK:
	case TDB_ERR_LOCK_TIMEOUT:
		return -EAGAIN;
	case TDB_ERR_NESTING:
		return -EBUSY;
	default:
		return -EIO;
	}
}

int
tdbw_open_errno(int err)
{
	switch (err) {
	case ENOENT:
	case EACCES:
	case EPERM:
	case ENOMEM:
	case EMFILE:
	case ENFILE:
	case EROFS:
	case EEXIST:
	case ENOSPC:
	case EDQUOT:
		return -err;
	default:
		return -EUCLEAN;
	}
}

int
tdbw_fetch(struct tdb_context *tdb, const void *k, size_t klen,
	   uint8_t **val, size_t *vlen)
{
	TDB_DATA d = tdb_fetch(tdb, tdbw_data(k, klen));

	if (!d.dptr)
		return tdbw_errno(tdb);
	*val = d.dptr;
	*vlen = d.dsize;
	return 0;
}

/*
 * tdb_parse_record() reports every failed lookup as TDB_ERR_NOEXIST, also
 * one that stopped at a damaged record in the hash chain, while tdb_fetch()
 * keeps the error it met. So a miss is asked again through tdb_fetch(): a
 * hit costs one lookup, a miss two.
 */
static int
parse_errno(struct tdb_context *tdb, TDB_DATA key)
{
	TDB_DATA d;

	if (tdb_error(tdb) != TDB_ERR_NOEXIST)
		return tdbw_errno(tdb);
	d = tdb_fetch(tdb, key);
	if (d.dptr) {
		/* Found the second time: the handle's owner is not alone. */
		free(d.dptr);
		return -EIO;
	}
	return tdbw_errno(tdb);
}

int
tdbw_parse(struct tdb_context *tdb, const void *k, size_t klen,
	   int (*parser)(TDB_DATA key, TDB_DATA data, void *arg), void *arg)
{
	TDB_DATA key = tdbw_data(k, klen);

	if (tdb_parse_record(tdb, key, parser, arg) == -1)
		return parse_errno(tdb, key);
	return 0;
}

int
tdbw_fixed_parse(TDB_DATA key, TDB_DATA data, void *arg)
{
	struct tdbw_fixed *c = arg;

	(void)key;
	if (data.dsize != c->len) {
		c->rc = -EUCLEAN;
		return 0;
	}
	memcpy(c->dst, data.dptr, c->len);
	c->rc = 0;
	return 0;
}

int
tdbw_fetch_fixed(struct tdb_context *tdb, const void *k, size_t klen,
		 void *dst, size_t len)
{
	struct tdbw_fixed c = {dst, len, -EIO};
	int rc = tdbw_parse(tdb, k, klen, tdbw_fixed_parse, &c);

	return rc ? rc : c.rc;
}

int
tdbw_store(struct tdb_context *tdb, const void *k, size_t klen,
	   const void *v, size_t vlen, int flag)
{
	if (tdb_store(tdb, tdbw_data(k, klen), tdbw_data(v, vlen), flag))
		return tdbw_errno(tdb);
	return 0;
}

int
tdbw_delete(struct tdb_context *tdb, const void *k, size_t klen)
{
	if (tdb_delete(tdb, tdbw_data(k, klen)))
		return tdbw_errno(tdb);
	return 0;
}

int
tdbw_txn_start(struct tdb_context *tdb)
{
	return tdb_transaction_start(tdb) ? tdbw_errno(tdb) : 0;
}

int
tdbw_txn_commit(struct tdb_context *tdb)
{
	return tdb_transaction_commit(tdb) ? tdbw_errno(tdb) : 0;
}

void
tdbw_txn_cancel(struct tdb_context *tdb)
{
	tdb_transaction_cancel(tdb);
}
