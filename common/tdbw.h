/*
 * tdbw.h - the one wrapper around tdb: its -1 + tdb_error() convention
 * turned into cairn's negative errno, and the fetch/store/delete and
 * transaction calls every tdb user in cairn makes (cm/rlog*.c, cm/vc.c,
 * vol/volstore.c).
 *
 * Layer rule: common/ includes no library headers but this one's <tdb.h>
 * (tests/check-layers.sh allows it for tdbw.* alone), so both cm/ and vol/
 * can share it; a program that never calls tdbw_* does not link libtdb.
 * The wrapper knows nothing of keys or values: callers lay out their own.
 *
 * The errno mapping, the same for every user:
 *   TDB_ERR_CORRUPT   -EUCLEAN  the file's structure is damaged
 *   TDB_ERR_IO        -EIO      a read or write failed, or a read ran past
 *                               the end of a file cut short (tdb does not
 *                               tell these apart, so neither do we)
 *   TDB_ERR_OOM       -ENOMEM
 *   TDB_ERR_EXISTS    -EEXIST   TDB_INSERT of a key that is there
 *   TDB_ERR_NOEXIST   -ENOENT
 *   TDB_ERR_RDONLY    -EROFS
 *   TDB_ERR_EINVAL    -EINVAL
 *   TDB_ERR_LOCK, TDB_ERR_NOLOCK, TDB_ERR_LOCK_TIMEOUT
 *                     -EAGAIN   another process holds the lock: try again
 *   TDB_ERR_NESTING   -EBUSY    a transaction is already open
 *   anything else     -EIO      (also a failed call that set no error)
 * and tdb_open() failing on a file that exists gives -EUCLEAN unless the
 * system said why (-ENOENT, -EACCES, ...): tdb_open reports a header it
 * rejects (bad magic, bad version, a file shorter than its header) as EIO.
 *
 * Why -EUCLEAN and not -EIO for a corrupt database: the two need different
 * answers. -EUCLEAN ("structure needs cleaning", what ext4 and xfs return
 * when they find damaged metadata) means the disk works and the file is
 * wrong: the metadata cache drops the record and fetches it again
 * (vc_bad_record), the replay log refuses it as rlog.h promises and
 * cairn-fsck is the answer, the volume server answers 500. -EIO means the
 * device failed and retrying or another disk is the answer. Before this
 * wrapper the replay log and the metadata cache said -EUCLEAN and the
 * volume store -EIO for the same damage.
 *
 * Threads: a tdb handle is not thread-safe; callers serialise (rlog and vc
 * under their mutex, volstore on its owner thread). tdb_error() is per
 * handle, so call tdbw_errno() before anything else touches the handle.
 */
#ifndef CAIRN_COMMON_TDBW_H
#define CAIRN_COMMON_TDBW_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <tdb.h>

/* A TDB_DATA over @n bytes at @p (tdb never writes through it). */
static inline TDB_DATA
tdbw_data(const void *p, size_t n)
{
	TDB_DATA d = {(unsigned char *)p, n};

	return d;
}

/* The -errno for the last failed call on @tdb, as in the table above.
 * Never 0: call it only after a call failed. */
int tdbw_errno(struct tdb_context *tdb);

/* The -errno for a tdb_open()/tdb_open_ex() that returned NULL, given the
 * errno it left (pass 0 if none): -ENOENT, -EACCES, -EPERM, -ENOMEM,
 * -EMFILE, -ENFILE, -EROFS, -EEXIST, -ENOSPC and -EDQUOT as they are,
 * anything else -EUCLEAN. Set errno to 0 before the open. */
int tdbw_open_errno(int err);

/* Fetch @k into a malloc'd buffer (*val, the caller frees) of *vlen bytes.
 * @return 0, -ENOENT when the key is not there, or the mapped error. */
int tdbw_fetch(struct tdb_context *tdb, const void *k, size_t klen,
	       uint8_t **val, size_t *vlen);

/* Call @parser on the value of @k in place, without a malloc
 * (tdb_parse_record; @parser's return value is ignored, it reports through
 * @arg). @return 0 when @parser ran, -ENOENT when the key is not there,
 * -EUCLEAN when the lookup met a damaged record, or the mapped error. */
int tdbw_parse(struct tdb_context *tdb, const void *k, size_t klen,
	       int (*parser)(TDB_DATA key, TDB_DATA data, void *arg),
	       void *arg);

/* Copy the value of @k into @dst without a malloc (tdbw_parse).
 * @return 0, -ENOENT, -EUCLEAN when the value is not exactly @len bytes,
 * or the mapped error. */
int tdbw_fetch_fixed(struct tdb_context *tdb, const void *k, size_t klen,
		     void *dst, size_t len);

/* The parser behind tdbw_fetch_fixed(), for wrappers that look
 * elsewhere first (common/tdbj.c): copies a value of exactly @len bytes
 * to @dst and sets @rc to 0, or @rc to -EUCLEAN for another length. */
struct tdbw_fixed {
	void *dst;
	size_t len;
	int rc;
};
int tdbw_fixed_parse(TDB_DATA key, TDB_DATA data, void *arg);

/* tdb_store(): @flag TDB_REPLACE, TDB_INSERT (-EEXIST if there) or
 * TDB_MODIFY (-ENOENT if not). @return 0 or the mapped error. */
int tdbw_store(struct tdb_context *tdb, const void *k, size_t klen,
	       const void *v, size_t vlen, int flag);

/* Delete @k. @return 0, -ENOENT when it was not there, or the mapped
 * error. Callers to whom a missing key is success test for -ENOENT. */
int tdbw_delete(struct tdb_context *tdb, const void *k, size_t klen);

/* Transactions: start, commit (durable unless the handle has TDB_NOSYNC)
 * and cancel. start and commit @return 0 or the mapped error; after a
 * failed commit, tdb has cancelled the transaction. cancel cannot fail in
 * a way the caller could act on. */
int tdbw_txn_start(struct tdb_context *tdb);
int tdbw_txn_commit(struct tdb_context *tdb);
void tdbw_txn_cancel(struct tdb_context *tdb);

/*
 * Room for a transaction, made outside it. tdb grows a file when no free
 * record fits a store, by a quarter of the file (a tenth past 100 MiB;
 * tdb 1.4 io.c, tdb_expand_adjust()). Outside a transaction the growth
 * goes to the file; inside one it is a write of that many zero bytes into
 * the transaction's blocks (transaction_expand_file()), anonymous memory
 * held until the commit: ~11 MB for a 45 MB file. So before a
 * transaction that stores records, call this with @need = the sum over
 * them of (key + value + 32) bytes: it stores one record of @need bytes
 * (key TDBW_RESERVE_KEY) and deletes it. The store takes a free record
 * that fits, or grows the file (outside any transaction: on disk); the
 * delete gives its space back to the free list as one free record at
 * least as large as every store of the transaction together asks (tdb
 * asks for 1.25 x (key + value) + 28 bytes a record), so none of them
 * grows the file (the commit still may, on disk, to put tdb's recovery
 * area at its end). Growth happens only when no free record fits, not
 * at every call; a call costs a store and a delete of @need bytes.
 *
 * Crash safety is that of any store and delete outside a transaction: a
 * kill in the middle may leave tdb's free list unsound (tdbw_check()
 * reports it, tdbw_rebuild() repairs it) or the record itself in place;
 * the caller's format must ignore the key (a NUL byte and a name;
 * meta.tdb's keys start with a letter), and may delete it at open. Not
 * for a handle inside a transaction (-EBUSY: the growth would be in
 * memory).
 * @return 0, -EBUSY, -ENOMEM, or the mapped error of the store.
 */
#define TDBW_RESERVE_KEY     "\0tdbw-reserve"
#define TDBW_RESERVE_KEY_LEN (sizeof(TDBW_RESERVE_KEY) - 1)
int tdbw_reserve(struct tdb_context *tdb, size_t need);

/*
 * Structure check and rebuild (tdb's own layout: hash chains, free list,
 * record lengths), shared by cairnd's metadata cache (cm/vc.c, at an
 * unclean open) and cairn-fsck.
 *
 * tdbw_check() runs tdb_check(), which walks the file once from the first
 * record to the end (each step the record's own length, checked against
 * the file's size) and accounts for the hash chains and the free list by
 * the offsets they name, without following them: a chain that loops, two
 * records that overlap, a length past the end or a file cut short are
 * found in one bounded pass and never hang it (test_tdbw "hostile"). On
 * failure @why (if not NULL) gets tdb's first message about it, e.g.
 * "Record offset 3400 too far 1000", without its newline. The handle's
 * logging function is restored afterwards.
 * @return 0 when the structure is sound, -EUCLEAN when it is not, or the
 * mapped error of a check that could not run (-ENOMEM).
 */
int tdbw_check(struct tdb_context *tdb, char *why, size_t whylen);

/* What tdbw_rebuild() copied. */
struct tdbw_rebuild_result {
	uint64_t copied; /* records in the new file */
};

/*
 * Rebuild the database of *@tdbp, whose structure tdbw_check() found
 * damaged: every record its hash chains reach (tdb_traverse_read(), so
 * exactly what a lookup could find) is stored with TDB_INSERT into a new
 * file, @path.rebuild (created with @hash_size and @tdb_flags, mode
 * 0600), which is then renamed over @path and reopened read-write with
 * @tdb_flags; the old handle is closed and *@tdbp replaced.
 *
 * Bounded: every chain is walked first over the file's bytes, each
 * record offset at most once across all chains; a chain that comes back
 * to an offset (a loop, also one through dead records only, which tdb's
 * walk would follow for ever without a call back), crosses another or
 * names no record's place is refused with -EUCLEAN before the copy.
 * Dead records are skipped (tdb 1.4 marks a deleted record dead before
 * it unlinks it: a kill leaves one). A key met twice stops the copy
 * (-EUCLEAN), and so does a record tdb cannot read (a length past the
 * end, a file cut short). The rebuild never
 * reaches bytes no chain names: a record deleted (or a freed one's
 * leftovers inside a reused space) does not come back, which a linear
 * salvage (tdb_rescue()) would risk. So it either keeps every record the
 * chains name or fails, and the caller decides: a cache (meta.tdb) is
 * emptied, a file of acknowledged writes is left as it is.
 *
 * @path NULL is a dry run: the records go to an in-memory database that
 * is thrown away, nothing on disk changes, *@tdbp stays.
 *
 * @verify (if not NULL) is called with the new database, whole and sound,
 * before it replaces anything: a nonzero return (a negative errno) stops
 * the rebuild there, leaves @path as it was and is returned. A caller
 * that can tell whether everything was kept (dirty.tdb's digest,
 * tdbj_digest_check()) rebuilds only then.
 *
 * A kill during the copy leaves @path as it was and a stray @path.rebuild
 * (removed by the next rebuild); the rename is the only switch. With
 * TDB_NOSYNC in @tdb_flags (a cache: meta.tdb) nothing is synced;
 * without it (dirty.tdb) the new file is fsync()ed before the rename and
 * the folder after it, so a power cut leaves the old file or the whole
 * new one. (If the folder's sync fails after the rename, the new file is
 * in place but the error is returned.)
 * @return 0, or a negative errno (the old file stays, *@tdbp unchanged,
 * except when only the reopen failed: then *@tdbp is the old handle of a
 * file no longer named, and the caller should close it).
 */
int tdbw_rebuild(struct tdb_context **tdbp, const char *path, int hash_size,
		 int tdb_flags,
		 int (*verify)(void *arg, struct tdb_context *rebuilt),
		 void *arg, struct tdbw_rebuild_result *res);

/*
 * tdb_open_ex() (@log and the hash function may be NULL) that also takes
 * back what tdb's crash recovery leaves behind. A process killed in a
 * commit that grew the file (tdb expands it before it writes the
 * transaction's blocks) leaves the file longer than the transaction's
 * start; the open recovers it (the old blocks are written back from the
 * recovery area), but tdb 1.4 no longer cuts the file to the old end
 * (tdb commit 8c3fda4 "don't truncate tdb on recovery"), so the tail holds
 * what the dead commit wrote there: records, a free record, zeros, that no
 * hash chain or free list names. tdb never reads it (it grows the file
 * past it), but tdb_check() walks every byte to the end and reports
 * "Hashes do not match records" or a bad magic, which cairnd and
 * cairn-fsck take for damage. So before the open this reads the recovery
 * record; if a commit was in flight (its magic is valid) and the open
 * recovered it read-write, the handle is closed, the file cut to the
 * transaction's start (the recovery record's key_len: the size tdb had
 * when it began; never below the end of a recovery area the header still
 * names), synced (unless TDB_NOSYNC), and opened again. Nothing the
 * recovered database names lies past that end (a recovery area beyond it
 * is unhooked by the recovery itself). When that commit had moved the
 * recovery area (its recovery data outgrew the old one), the rollback
 * leaves the old area named by nothing; if the records then tile the file
 * with exactly one recovery record among them, the header names it again.
 * Only for a file no other process has open (cairn's are guarded by a
 * lock of their own).
 * @cut (may be NULL) gets the bytes cut, 0 when none.
 * @return the handle or NULL and errno, as tdb_open_ex().
 */
struct tdb_context *tdbw_open(const char *path, int hash_size, int tdb_flags,
			      int oflags, mode_t mode,
			      const struct tdb_logging_context *log,
			      uint64_t *cut);

/*
 * Open @path for a check that must change nothing (cairn-fsck --check):
 * read-only with @tdb_flags. tdb opens a file left in the middle of a
 * transaction (a process killed in a commit) only read-write, as it
 * recovers the file then; read-only it fails without an errno. So then a
 * copy of the file is made in $TMPDIR (or /tmp) and opened read-write,
 * which recovers the copy, and the copy is unlinked at once (the handle
 * keeps it); *@recovered is set. The copy costs the file's size in I/O,
 * only on that path.
 * @return the handle (the caller tdb_close()s it), or NULL with errno:
 * ENOENT, EACCES, ..., or EIO when neither opens (not a tdb, a header
 * tdb rejects).
 */
struct tdb_context *tdbw_open_ro(const char *path, int tdb_flags,
				 int *recovered);

#endif /* CAIRN_COMMON_TDBW_H */
