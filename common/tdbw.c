/*
 * tdbw.c - the tdb wrapper (tdbw.h): one errno mapping and the handful of
 * calls cairn's tdb users share. It holds no state and takes no lock; the
 * caller owns the handle.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/tdbw.h"
#include "common/util.h"

/* tdb's on-disk header and record (tdb_private.h), as far as the
 * recovery record and the hash chains go: no mutex area. */
#define TDBW_HDR_LEN	    168
#define TDBW_VERSION	    (0x26011967 + 6)
#define TDBW_RECOVERY_MAGIC 0xf53bc0e7u
#define TDBW_MAGIC_FOOD	    "TDB file\n"
/* Where the head of hash chain @b lies (b = -1: the free list's), and
 * where the first record can: past the header and every chain head. */
#define TDBW_CHAIN_HEAD(b)  (TDBW_HDR_LEN + 4 * ((uint64_t)(b) + 1))
#define TDBW_FIRST_REC(hs)  TDBW_CHAIN_HEAD(hs)

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

int
tdbw_reserve(struct tdb_context *tdb, size_t need)
{
	uint8_t *zero;
	int rc;

	if (tdb_transaction_active(tdb))
		return -EBUSY;
	/* calloc: zero pages that a large @need leaves unfaulted (the
	 * store only reads them). */
	zero = calloc(1, need ? need : 1);
	if (!zero)
		return -ENOMEM;
	rc = tdbw_store(tdb, TDBW_RESERVE_KEY, TDBW_RESERVE_KEY_LEN, zero, need,
			TDB_REPLACE);
	free(zero);
	if (rc)
		return rc;
	rc = tdbw_delete(tdb, TDBW_RESERVE_KEY, TDBW_RESERVE_KEY_LEN);
	return rc == -ENOENT ? 0 : rc;
}

/* tdb_check()'s messages, caught by a logging function set for the call:
 * the first of level TDB_DEBUG_ERROR or worse is kept. */
struct check_log {
	char *why;
	size_t len;
	bool have;
};

static void check_log_fn(struct tdb_context *tdb, enum tdb_debug_level lvl,
			 const char *fmt, ...) PRINTF_ATTRIBUTE(3, 4);

static void
check_log_fn(struct tdb_context *tdb, enum tdb_debug_level lvl, const char *fmt,
	     ...)
{
	struct check_log *cl = tdb_get_logging_private(tdb);
	va_list ap;
	size_t n;

	if (!cl || cl->have || !cl->why || !cl->len || lvl > TDB_DEBUG_ERROR)
		return;
	va_start(ap, fmt);
	vsnprintf(cl->why, cl->len, fmt, ap);
	va_end(ap);
	n = strlen(cl->why);
	while (n && (cl->why[n - 1] == '\n' || cl->why[n - 1] == ' '))
		cl->why[--n] = '\0';
	cl->have = true;
}

int
tdbw_check(struct tdb_context *tdb, char *why, size_t whylen)
{
	struct tdb_logging_context old = {tdb_log_fn(tdb),
					  tdb_get_logging_private(tdb)};
	struct check_log cl = {why, whylen, false};
	struct tdb_logging_context cap = {check_log_fn, &cl};
	int rc = 0;

	if (why && whylen)
		why[0] = '\0';
	tdb_set_logging_function(tdb, &cap);
	if (tdb_check(tdb, NULL, NULL) != 0) {
		rc = tdbw_errno(tdb);
		/* tdb_check() leaves TDB_ERR_CORRUPT for a damaged layout; a
		 * read past the end (a file cut short) is damage too. */
		if (rc == -EIO)
			rc = -EUCLEAN;
	}
	tdb_set_logging_function(tdb, &old);
	if (rc && why && whylen && !cl.have)
		snprintf(why, whylen, "%s", tdb_errorstr(tdb));
	return rc;
}

/*
 * Does every hash chain of @tdb's file end? tdb_traverse_read() skips a
 * dead record (TDB_DEAD_MAGIC) without calling back, so a chain that
 * loops through dead records only would never end, and a chain that
 * names a record twice, or names one past the end, is not one to walk.
 * And tdb 1.4 writes dead records: a delete marks its record dead, then
 * takes the dead ones out of the chain (tdb_trim_dead()), so a kill in
 * between leaves one in its chain, and freed space keeps the bytes of old
 * dead headers. So rather than look for the magic, walk every chain here,
 * over the file's bytes, each record offset taken once across all
 * chains (a bitmap): a chain that comes back to an offset (a loop, two
 * chains crossing) or names one that is not a record's place (unaligned,
 * inside the hash table, past the end) makes the file unwalkable. One
 * step per record at most: bounded by the file's size. The header's
 * byte order is tdb's (a converted file is read swapped). @return 1
 * walkable, 0 not, or a negative errno.
 */
static int
chains_walkable(struct tdb_context *tdb)
{
	struct stat st;
	uint8_t *m, *seen = NULL;
	uint32_t version, hash_size;
	uint64_t first, n;
	bool swap;
	int fd = tdb_fd(tdb), ok = 1;

	if (fd < 0 || fstat(fd, &st) != 0)
		return -EIO;
	n = (uint64_t)st.st_size;
	if (n < TDBW_HDR_LEN + 4)
		return 0;
	m = mmap(NULL, (size_t)n, PROT_READ, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED)
		return -errno;
	memcpy(&version, m + 32, 4);
	memcpy(&hash_size, m + 36, 4);
	swap = version != TDBW_VERSION;
	if (swap) {
		version = __builtin_bswap32(version);
		hash_size = __builtin_bswap32(hash_size);
	}
	first = TDBW_FIRST_REC(hash_size);
	if (version != TDBW_VERSION || first > n) {
		ok = 0;
		goto out;
	}
	seen = calloc(n / 32 + 1, 1); /* a bit per 4-byte offset */
	if (!seen) {
		ok = -ENOMEM;
		goto out;
	}
	for (uint64_t b = 0; b < hash_size && ok == 1; b++) {
		uint32_t off;

		memcpy(&off, m + TDBW_CHAIN_HEAD(b), 4);
		if (swap)
			off = __builtin_bswap32(off);
		while (off) {
			uint64_t i = off / 4;

			if (off % 4 || off < first || off + 24ull > n ||
			    (seen[i / 8] & (1u << (i % 8)))) {
				ok = 0;
				break;
			}
			seen[i / 8] |= (uint8_t)(1u << (i % 8));
			memcpy(&off, m + off, 4); /* the record's next */
			if (swap)
				off = __builtin_bswap32(off);
		}
	}
out:
	free(seen);
	munmap(m, (size_t)n);
	return ok;
}

struct rebuild {
	struct tdb_context *to;
	struct tdbw_rebuild_result *res;
	int err;
};

static int
rebuild_cb(struct tdb_context *tdb, TDB_DATA k, TDB_DATA v, void *arg)
{
	struct rebuild *rb = arg;

	(void)tdb;
	if (tdb_store(rb->to, k, v, TDB_INSERT) != 0) {
		/* A key met twice: the chains loop or cross. */
		rb->err = tdb_error(rb->to) == TDB_ERR_EXISTS
				  ? -EUCLEAN
				  : tdbw_errno(rb->to);
		return 1;
	}
	rb->res->copied++;
	return 0;
}

int
tdbw_rebuild(struct tdb_context **tdbp, const char *path, int hash_size,
	     int tdb_flags,
	     int (*verify)(void *arg, struct tdb_context *rebuilt), void *arg,
	     struct tdbw_rebuild_result *res)
{
	struct rebuild rb = {.res = res};
	struct tdb_context *t;
	char *tmp = NULL;
	size_t len;
	int rc;

	memset(res, 0, sizeof(*res));
	rc = chains_walkable(*tdbp);
	if (rc <= 0)
		return rc < 0 ? rc : -EUCLEAN;
	if (path) {
		len = strlen(path) + sizeof(".rebuild");
		tmp = malloc(len);
		if (!tmp)
			return -ENOMEM;
		snprintf(tmp, len, "%s.rebuild", path);
		unlink(tmp);
		errno = 0;
		rb.to = tdb_open(tmp, hash_size, tdb_flags,
				 O_RDWR | O_CREAT | O_TRUNC, 0600);
	} else {
		rb.to = tdb_open("rebuild", hash_size, TDB_INTERNAL,
				 O_RDWR | O_CREAT, 0600);
	}
	if (!rb.to) {
		rc = errno ? -errno : -EIO;
		goto out;
	}
	if (tdb_traverse_read(*tdbp, rebuild_cb, &rb) < 0 && !rb.err) {
		rb.err = tdbw_errno(*tdbp);
		/* tdb_check() failed already: a read past the end is the
		 * damage, not the device. */
		if (rb.err == -EIO)
			rb.err = -EUCLEAN;
	}
	rc = rb.err;
	if (!rc && verify)
		rc = verify(arg, rb.to);
	/* Durable before it is named, when the caller's file is synced. */
	if (!rc && path && !(tdb_flags & TDB_NOSYNC) &&
	    fsync(tdb_fd(rb.to)) != 0)
		rc = -errno;
	if (tdb_close(rb.to) != 0 && !rc)
		rc = -EIO;
	if (rc || !path)
		goto out;
	if (rename(tmp, path) != 0) {
		rc = -errno;
		goto out;
	}
	if (!(tdb_flags & TDB_NOSYNC) && (rc = util_fsync_parent(path)) != 0)
		goto out;
	errno = 0;
	t = tdb_open(path, hash_size, tdb_flags, O_RDWR, 0600);
	if (!t) {
		rc = errno ? -errno : -EIO;
		goto out;
	}
	tdb_close(*tdbp);
	*tdbp = t;
out:
	if (rc && tmp)
		unlink(tmp);
	free(tmp);
	return rc;
}


/* The size @path had when the transaction whose recovery is pending
 * began (the recovery record's key_len), or 0: no recovery pending, or a
 * file this cannot read (converted byte order, mutexes: tdb_open judges
 * it). */
static uint64_t
recovery_pending_eof(const char *path)
{
	uint8_t h[TDBW_HDR_LEN], rec[24];
	uint32_t version, hash_size, mutex_size, rstart, magic, eof;
	uint64_t ret = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	if (util_pread_all(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
	    memcmp(h, TDBW_MAGIC_FOOD, strlen(TDBW_MAGIC_FOOD)))
		goto out;
	memcpy(&version, h + 32, 4);
	memcpy(&hash_size, h + 36, 4);
	memcpy(&rstart, h + 44, 4);
	memcpy(&mutex_size, h + 64, 4);
	if (version != TDBW_VERSION || mutex_size || !rstart)
		goto out;
	if (util_pread_all(fd, rec, sizeof(rec), rstart) !=
	    (ssize_t)sizeof(rec))
		goto out;
	memcpy(&magic, rec + 20, 4);
	memcpy(&eof, rec + 8, 4);
	/* The old end cannot lie inside the header and hash table. */
	if (magic == TDBW_RECOVERY_MAGIC &&
	    eof >= TDBW_FIRST_REC(hash_size))
		ret = eof;
out:
	close(fd);
	return ret;
}

/* @end, or the end of the recovery area the header of the tdb file @fd
 * names, if that lies beyond it. */
static uint64_t
recovery_area_end(int fd, uint64_t end)
{
	uint32_t rstart, rec_len;
	uint64_t area;

	if (util_pread_all(fd, &rstart, 4, 44) != 4 || !rstart ||
	    util_pread_all(fd, &rec_len, 4, (off_t)rstart + 4) != 4)
		return end;
	area = (uint64_t)rstart + 24 + rec_len;
	return area > end ? area : end;
}

/*
 * A commit whose recovery data outgrew the recovery area frees the old
 * area in the transaction and puts a new one past the transaction's end,
 * writing its offset into the header at once. Rolled back, the old area
 * is the old area again (its blocks written back), but the recovery
 * unhooks the new one by zeroing the header's offset: the old area is
 * then named by nothing. tdb never uses it again; tdb_check() takes it
 * for dead space, which in tdb 1.4 swallows every record after it. So
 * when the header names no area, walk the records from the first to
 * @size (each step the record's own length): if they tile the file
 * exactly, every magic is one of tdb's, and exactly one is a recovery
 * record's, name that one again (what the header held before the
 * transaction). Anything else: leave the file as it is. @return 1 when
 * the header was written, 0 when not, or -errno.
 */
static int
rename_recovery_area(int fd, uint64_t size)
{
	uint32_t hash_size, rstart, r[6], found = 0;
	uint64_t off;
	int n = 0;

	if (util_pread_all(fd, &hash_size, 4, 36) != 4 ||
	    util_pread_all(fd, &rstart, 4, 44) != 4 || rstart)
		return 0;
	for (off = TDBW_FIRST_REC(hash_size);
	     off + sizeof(r) <= size; off += sizeof(r) + r[1]) {
		if (util_pread_all(fd, r, sizeof(r), (off_t)off) !=
		    (ssize_t)sizeof(r))
			return 0;
		switch (r[5]) {
		case TDBW_RECOVERY_MAGIC:
		case 0: /* TDB_RECOVERY_INVALID_MAGIC */
			found = (uint32_t)off;
			n++;
			break;
		case 0x26011999u: /* TDB_MAGIC */
		case 0xd9fee666u: /* TDB_FREE_MAGIC */
		case 0xfee1deadu: /* TDB_DEAD_MAGIC */
			break;
		default:
			return 0;
		}
	}
	if (off != size || n != 1 || found >= size)
		return 0;
	return util_pwrite_all(fd, &found, 4, 44) ? -EIO : 1;
}

struct tdb_context *
tdbw_open(const char *path, int hash_size, int tdb_flags, int oflags,
	  mode_t mode, const struct tdb_logging_context *log, uint64_t *cut)
{
	struct tdb_context *tdb;
	uint64_t eof = 0, end;
	uint32_t rstart;
	struct stat st;
	bool named;
	int fd, err = 0;

	if (cut)
		*cut = 0;
	if ((oflags & O_ACCMODE) != O_RDONLY && !(tdb_flags & TDB_INTERNAL))
		eof = recovery_pending_eof(path);
	tdb = tdb_open_ex(path, hash_size, tdb_flags, oflags, mode, log, NULL);
	/* Opened read-write with a recovery pending: tdb recovered it. A
	 * recovery area the header still names may reach past the old end
	 * (one at the end of the file that this commit enlarged): keep it. */
	if (!tdb || !eof)
		return tdb;
	end = recovery_area_end(tdb_fd(tdb), eof);
	if (fstat(tdb_fd(tdb), &st))
		return tdb;
	named = util_pread_all(tdb_fd(tdb), &rstart, 4, 44) == 4 && rstart;
	if ((uint64_t)st.st_size <= end && named)
		return tdb;
	tdb_close(tdb);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	if ((uint64_t)st.st_size > end && ftruncate(fd, (off_t)end))
		err = errno;
	if (!err && !named) {
		uint64_t size = (uint64_t)st.st_size;
		int rc = rename_recovery_area(fd, size > end ? end : size);

		if (rc < 0)
			err = -rc;
	}
	if (!err && !(tdb_flags & TDB_NOSYNC) && fdatasync(fd))
		err = errno;
	close(fd);
	if (err) {
		errno = err;
		return NULL;
	}
	if (cut && (uint64_t)st.st_size > end)
		*cut = (uint64_t)st.st_size - end;
	return tdb_open_ex(path, hash_size, tdb_flags,
			   oflags & ~(O_CREAT | O_EXCL | O_TRUNC), mode, log,
			   NULL);
}

struct tdb_context *
tdbw_open_ro(const char *path, int tdb_flags, int *recovered)
{
	const char *td = getenv("TMPDIR");
	struct tdb_context *tdb;
	char tmp[4096], buf[65536];
	int in, out, rc = 0;
	ssize_t n;

	*recovered = 0;
	errno = 0;
	tdb = tdb_open(path, 0, tdb_flags, O_RDONLY, 0600);
	if (tdb)
		return tdb;
	if (errno && errno != EIO)
		return NULL;
	snprintf(tmp, sizeof(tmp), "%s/cairn-tdb-check-XXXXXX",
		 td && *td ? td : "/tmp");
	in = open(path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return NULL;
	out = mkostemp(tmp, O_CLOEXEC);
	if (out < 0) {
		rc = errno;
		close(in);
		errno = rc;
		return NULL;
	}
	while ((n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = errno;
			break;
		}
		if ((rc = -util_write_all(out, buf, (size_t)n)) != 0)
			break;
	}
	close(in);
	close(out);
	tdb = NULL;
	if (!rc) {
		tdb = tdbw_open(tmp, 0, tdb_flags, O_RDWR, 0600, NULL, NULL);
		if (tdb)
			*recovered = 1;
		else
			rc = EIO;
	}
	unlink(tmp);
	errno = rc;
	return tdb;
}
