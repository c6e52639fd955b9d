/*
 * volstore_i.h - what the parts of the volume storage library share
 * (volstore.c, vs_root.c, vs_dir.c, vs_data.c, vs_ops.c, vs_txn.c): the
 * record layouts, the handles and the internal helpers. Not for use
 * outside vol/volstore*.c and vol/vs_*.c; volstore.h is the public API.
 */
#ifndef CAIRN_VOLSTORE_I_H
#define CAIRN_VOLSTORE_I_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/tdbj.h"
#include "common/tdbw.h"
#include "common/util.h"
#include "vol/volstore.h"

#define VREC_MAGIC_V1	0x43564f31u /* "CVO1": format 1, one file per DV */
#define VREC_MAGIC	0x43564f32u /* "CVO2": format 2, chunk objects */
/* "CVO3": format 3, format 2 whose chunk map may hold inline chunks
 * (CENT_INLINE). A volume becomes format 3 in the commit that writes its
 * first inline chunk; format 2 code refuses it (unknown magic). */
#define VREC_MAGIC_V3	0x43564f33u
#define VREC_MAGIC_GONE 0x43564f58u /* "CVOX": marked by vs_vol_remove() */
/* "CVJ2", "CVJ3": format 2 or 3 while cairn-vold's commit journal may
 * hold changes the tdb file lacks (vs_jlock.c); code older than the
 * journal refuses the volume. vrec_get() reads them as CVO2/CVO3. */
#define VREC_MAGIC_J2	0x43564a32u
#define VREC_MAGIC_J3	0x43564a33u
#define OREC_MAGIC	0x434f4231u /* "COB1" */
#define OREC_MAGIC_EXT	0x434f4232u /* "COB2": an orec, then an orec_ext */
#define DIR_SPLIT	32 /* entries per bucket before the dir grows */
#define DIR_BUCKETS_MAX (1u << 20)
#define HASH_SIZE	10007
/* vs_vol_open() flag of the library's own: a format 1 volume is -EPROTO,
 * not converted (the snapshot's read-write handle). */
#define VS_NOCONVERT	0x100
#define DPATH_MAX	96

/* The volume record, key "V". Host byte order (doc/vol-format.md). */
struct vrec {
	uint32_t magic;
	uint32_t id;
	uint8_t root[16];
	uint64_t ev_seq;
	uint64_t bytes_used, bytes_limit;
	uint64_t files_used, files_limit;
	uint64_t dv_max;
	uint64_t op_next, op_low;
	int64_t created;
	char name[72];
	/* Format 2 and later (a format 1 record ends here). */
	uint32_t chunk_size; /* server chunk size (VS_CHUNK_MIN..MAX) */
	uint32_t pad;
};

#define VREC_V1_SIZE offsetof(struct vrec, chunk_size)

/*
 * A chunk map entry, key "C" + oid + be64 chunk index: chunk @chunk of a
 * file is the chunk object data/XX/OID.CHUNK.GEN, whose first @len bytes
 * are the file's bytes [chunk * cs, chunk * cs + len); the rest of the
 * chunk up to the file size reads as zeros. No entry: a hole. GEN is the
 * data version that wrote the object, so a name is never reused and an
 * object never changes once its entry is committed.
 */
struct cent {
	uint64_t gen;
	uint32_t len;
	uint32_t flags; /* CENT_INLINE; 0 in format 2 */
};

/* Format 3: the chunk's @len bytes follow the entry in its value (16 +
 * len bytes) instead of living in a chunk object, for chunks of at most
 * VS_INLINE_MAX bytes written by chunk_put(): a small store is then made
 * durable by the tdb commit alone, with no object to fdatasync and no
 * directory to fsync. */
#define CENT_INLINE	1u
#define VS_INLINE_MAX	65536
/* What a store writes inline (the format accepts up to VS_INLINE_MAX):
 * chunks of at most VS_INLINE_WRITE_MAX bytes (the protocol's inline
 * store, 64 KiB: a small file's store is then one journal fdatasync, not
 * also an object's fdatasync and its folder's fsync), while meta.tdb is smaller
 * than VS_INLINE_TDB_MAX (a bulk import, VS_BULK: its own cap, below).
 * tdb's offsets are 32-bit: a file cannot pass 4 GiB, and meta.tdb is
 * mapped whole by every process that opens the volume, so the bytes of
 * small files must not grow it without bound (a million 16 KiB files
 * would be 16 GiB). Past the cap, small chunks are objects again, as in
 * format 2. */
#define VS_INLINE_WRITE_MAX	65536
/* A bulk import's bound (vos import --jobs 0): lower, so that its tdb
 * budget (below) holds the bytes of more of the small files, the ones
 * that gain most from having no object. */
#define VS_INLINE_BULK_WRITE_MAX	16384
/* Chunks past a file's first (a big file's: a log appended to and
 * fsynced, 4 KiB at a time) keep the 16 KiB bound: each store rewrites
 * the chunk whole, inline twice (journal, tdb), and 64 KiB inline made
 * bench-write's 20 x (append 4 KiB + fsync) of a 16 MiB file 2.1-2.5 ->
 * 2.9-3.6 ms an fsync. */
#define VS_INLINE_LATER_MAX	16384
#define VS_INLINE_TDB_MAX	(1024ull << 20)
/*
 * The tdb budget of a bulk import (vs_import.c, vs_import_plan()). tdb
 * cannot pass VS_TDB_LIMIT (4 GiB), and not only inline bytes grow
 * meta.tdb: every object adds its metadata (object record, map entry,
 * directory bucket entry, tdb's record headers and free-space slack),
 * whether or not its data goes inline. Measured as meta.tdb's size less
 * the inline bytes (r^8 trees, mktree.py): ~0.81 KiB an object at 100,000
 * objects, ~1.4 KiB at 10,000 (tdb doubles a file under 100 MiB, so more
 * of it is slack). VS_BULK_META_FILE (1 KiB) is the estimate.
 * VS_TDB_RESERVE (1 GiB) stays free for what comes after the import:
 * tdb's recovery area at cairn-vold's first checkpoint (at least 10 % of
 * the file, or twice the data a checkpoint rewrites), tdb's 10 % growth
 * steps and the metadata clients add. So a tree of N objects is refused
 * before anything is written when N x VS_BULK_META_FILE does not fit
 * under VS_TDB_LIMIT - VS_TDB_RESERVE (~3.1 million objects), and
 * inlining stops when meta.tdb reaches VS_INLINE_BULK_TDB_MAX or when
 * its size plus the estimated metadata of the objects still to come
 * reaches VS_TDB_LIMIT - VS_TDB_RESERVE (3 GiB - N x 1 KiB at the start,
 * looser as the import goes). VS_BULK_TDB_HARD (3.75 GiB) is the
 * backstop: the import stops with -EFBIG when meta.tdb passes it (the
 * estimate was too low), rather than fail at 4 GiB with tdb's late error
 * or leave cairn-vold no room. At 3 GiB, ~1,300,000 small files of the
 * r^8 shape (~2.3 KiB of meta.tdb each, inline bytes included) stay
 * inline. Packing small files into shared objects would keep any size
 * linear (doc/vol-format.md, NEEDSWORK).
 */
#define VS_INLINE_BULK_TDB_MAX (3072ull << 20)
#define VS_TDB_LIMIT	       (4096ull << 20)
#define VS_TDB_RESERVE	       (1024ull << 20)
#define VS_BULK_TDB_HARD       (3840ull << 20)
#define VS_BULK_META_FILE      1024u

/* One chunk object, by name. */
struct cref {
	uint8_t oid[16];
	uint64_t chunk, gen;
	bool durable; /* made: linked from an fsynced staged chunk */
};

/* An object record, key "O" + oid, followed by the symlink target (tlen
 * bytes) and the xattr blob (xlen bytes: [u8 namelen][name][u32 vlen]
 * [value] ...). */
struct orec {
	uint32_t magic;
	uint8_t type;
	uint8_t pad[3];
	uint32_t mode, uid, gid;
	uint32_t nbuckets; /* directories: buckets of the entry list */
	uint64_t size, nlink, dv;
	int64_t atime, mtime, ctime;
	uint64_t nentries;  /* directories */
	uint8_t parent[16]; /* directories: the one parent */
	uint32_t tlen, xlen;
};

_Static_assert(sizeof(struct orec) == 104, "orec layout");

/*
 * Sockets and device nodes (types SOCK, CHR, BLK) have a longer record:
 * magic COB2, the 104 bytes above, then this extension, then the target
 * and xattrs. Every other object keeps COB1, so a server that predates the
 * extension still reads every other object of the volume (doc/vol-format.md).
 * A reader takes @len bytes of extension and ignores what it does not know.
 */
struct orec_ext {
	uint32_t len;  /* bytes of extension, this field included (>= 8) */
	uint32_t rdev; /* CHR, BLK: the device number; else 0 */
};

#define OREC_EXT_MAX 4096

struct vs_root {
	char *path;
	int fd;	   /* ROOT */
	int volfd; /* ROOT/volumes */
	/* The open VS_CLEANUP handles (vs_root.c, the clean-close marker):
	 * only the last one of a volume to close may write the marker. */
	pthread_mutex_t cl_lock;
	struct vs_vol *cl_open;
	size_t jmax; /* VS_JOURNAL checkpoint bound (0: tdbj's default) */
};

struct vs_vol {
	struct vs_root *root;
	char name[65];
	char dirname[96];
	int dirfd;
	int flags;
	struct tdb_context *tdb;
	struct tdbj *j; /* owns tdb: reads and writes go through it */
	int lockfd;	/* the volume's "lock" (vs_jlock.c); -1: none */
	short lockmode; /* F_RDLCK, F_WRLCK, 0: not held */
	bool jn;	/* v->j journals (exclusive lock, record marked) */
	uint64_t jfail_seen;	/* checkpoint failures reported (vs_jlock.c) */
	uint64_t jfail_logged;	/* util_now_ms() of the last such report */
	uint64_t jretry_at;	/* no journal again before (util_now_ms()) */
	bool meta_full;		/* meta.tdb near tdb's limit: do_op() refuses
				   what adds records (vs_vol_coord()) */
	uint32_t id;
	uint8_t rootoid[16];
	uint64_t staged;    /* bytes in stage/ (chunk files) */
	uint64_t stage_max; /* 0 = only the quota */
	uint32_t cs;	    /* server chunk size; 0: format 1, read-only */
	bool v1_said;	    /* format 1: the refusal was logged */
	bool snap;	    /* VS_SNAPSHOT: dirname is ours to remove */
	bool broken;	    /* VS_BULK: a mutation failed half-way */
	bool leaked;	    /* an object that should go could not be
			       unlinked: no clean-close marker (vs_root.c) */
	bool cl_reg;		/* VS_CLEANUP: in root->cl_open, by cl_next */
	struct vs_vol *cl_next;
	struct vs_bcache *bcache; /* VS_BULK: directory buckets not yet
				     written (vs_dir.c) */
	/* VS_BULK (vs_import.c): meta.tdb reached the bulk inline cap,
	 * small chunks are objects from now on (read by the import's workers
	 * without a lock: atomic); bytes meta.tdb is estimated to have grown
	 * by since its size was last looked at; the budget of
	 * vs_import_plan() (0: the defaults); meta.tdb passed bulk_hard (the
	 * import stops). All but bulk_objects: the handle's thread. */
	bool bulk_objects;
	bool bulk_full;
	uint64_t bulk_inl;
	uint64_t bulk_cap, bulk_hard, bulk_check, bulk_meta;
	uint64_t bulk_room, bulk_left; /* limit less reserve; objects to come */
	struct vs_undo *undo; /* vs_batch.c: records what kv_put/kv_del
				 change, so one op of a group can be
				 rolled back; NULL = not recording */
};

struct obj {
	uint8_t oid[16];
	struct orec r;
	uint32_t rdev; /* from the orec_ext of a COB2 record, else 0 */
	char *target;
	uint8_t *x;
};

/* Walk the xattr blob: calls @fn for each (name, value). */
struct xent {
	const char *name;
	size_t nlen;
	const uint8_t *val;
	size_t vlen;
	size_t off, reclen;
};

/* ---- mutations ---- */

struct txn {
	struct vs_vol *v;
	struct vrec vr;
	int64_t now;
	const char *msg; /* error message for the reply */
	uint64_t cur_dv; /* 410/412: the current dv */
	struct proto_op_result res;
	bool events;
	bool bulk; /* VS_BULK: no tdb transaction under this one */
	int nev;
	struct proto_event ev[VS_MAX_EVENTS];
	/* Chunk objects to unlink after the commit (no longer referenced)
	 * and the ones this transaction wrote (to unlink if it fails). */
	struct cref *gone, *made;
	size_t ngone, nmade, capgone, capmade;
	const struct proto_op *store; /* to clean staging after the commit */
};

/* ---- small helpers ---- */

static inline int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline uint64_t
wall_ms(void)
{
	return (uint64_t)now_ns() / 1000000;
}

static inline void
put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = v & 0xff;
		v >>= 8;
	}
}

static inline void
put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--) {
		p[i] = v & 0xff;
		v >>= 8;
	}
}

static inline uint64_t
name_hash(const char *s, size_t len)
{
	return util_fnv1a(s, len);
}

/* Fetch @key into a heap buffer (*val, free()). -ENOENT if missing. */
static inline int
kv_get(struct vs_vol *v, const void *k, size_t klen, uint8_t **val,
       size_t *vlen)
{
	return tdbj_fetch(v->j, k, klen, val, vlen);
}

/* Fetch @key, whose value must be exactly @size bytes, into @out.
 * -ENOENT if missing, @bad_len (a negative errno) for another length. */
static inline int
kv_get_fixed(struct vs_vol *v, const void *k, size_t klen, void *out,
	     size_t size, int bad_len)
{
	uint8_t *val;
	size_t len;
	int rc = kv_get(v, k, klen, &val, &len);

	if (rc)
		return rc;
	if (len == size)
		memcpy(out, val, size);
	free(val);
	return len == size ? 0 : bad_len;
}

/* vs_batch.c: the undo log of one op in a group commit. While v->undo
 * is set, kv_put() and kv_del() call undo_save() to keep the value of @k
 * they replace; undo_rollback() (with v->undo cleared) puts every saved
 * value back, newest first, and empties the log. */
struct vs_undo;
struct vs_undo *undo_new(void);
void undo_free(struct vs_undo *u);
void undo_reset(struct vs_undo *u);
int undo_save(struct vs_vol *v, const void *k, size_t klen);
int undo_rollback(struct vs_vol *v, struct vs_undo *u);

/* Every write of the volume store goes through kv_put() and kv_del(), so
 * that vs_batch.c can undo one op inside a shared transaction. */
static inline int
kv_put(struct vs_vol *v, const void *k, size_t klen, const void *val,
       size_t vlen)
{
	int rc;

	if (v->undo) {
		rc = undo_save(v, k, klen);
		if (rc)
			return rc;
	}
	errno = 0;
	rc = tdbj_store(v->j, k, klen, val, vlen, TDB_REPLACE);
	/* When growing the file fails (a full disk), tdb keeps the error
	 * code of the lookup it made before, and errno may be gone: a
	 * replacing store is never ENOENT. */
	if (rc == -ENOENT)
		rc = errno == ENOSPC || errno == EDQUOT ? -errno : -EIO;
	return rc;
}

static inline int
kv_del(struct vs_vol *v, const void *k, size_t klen)
{
	int rc;

	if (v->undo) {
		rc = undo_save(v, k, klen);
		if (rc)
			return rc;
	}
	rc = tdbj_delete(v->j, k, klen);
	return rc == -ENOENT ? 0 : rc;
}

static inline int
kv_exists_noop(TDB_DATA key, TDB_DATA data, void *arg)
{
	(void)key;
	(void)data;
	(void)arg;
	return 0;
}

static inline bool
kv_exists(struct vs_vol *v, const void *k, size_t klen)
{
	TDB_DATA key = {.dptr = (unsigned char *)k, .dsize = klen};

	(void)key;
	return tdbj_parse(v->j, k, klen, kv_exists_noop, NULL) == 0;
}

/* vs_jlock.c: the volume lock and the commit journal */
int vlock_open(int dirfd);
int vlock_set(int fd, short type);
int vlock_take(int dirfd, int fd, short type, const char *name);
bool vlock_knocked(int dirfd);
/* After tdb_open(), the lock taken: replay a journal a crash left, attach
 * one (exclusive, VS_JOURNAL), set v->j. */
int vj_open(struct vs_vol *v);
/* Checkpoint, unmark, close the tdb and release the lock. */
int vj_close(struct vs_vol *v);

/* volstore.c */
/* -EPROTO for a format 1 record (vrec_get_v1() reads that). */
int vrec_get(struct vs_vol *v, struct vrec *vr);
int vrec_get_v1(struct vs_vol *v, struct vrec *vr);
int vrec_put(struct vs_vol *v, const struct vrec *vr);
void key_obj(uint8_t *k, const uint8_t oid[16]);
void obj_release(struct obj *o);
int obj_get(struct vs_vol *v, const uint8_t oid[16], struct obj *o);
int obj_put(struct vs_vol *v, const struct obj *o);
int obj_del(struct vs_vol *v, const uint8_t oid[16]);
void obj_attr(const struct vs_vol *v, const struct obj *o,
	      struct proto_attr *a);
int obj_get_fid(struct vs_vol *v, const struct fid *f, struct obj *o);
bool xnext(const uint8_t *x, size_t xlen, size_t *off, struct xent *e);

/* vs_root.c */
int rm_tree(int pfd, const char *name, int depth);
int random_bytes(void *buf, size_t len);

/* vs_dir.c */
void key_bucket(uint8_t *k, const uint8_t dir[16], uint32_t b);
int ent_get(struct vs_vol *v, const uint8_t dir[16], const char *name,
	    uint8_t child[16], uint8_t *type);
int dir_add(struct vs_vol *v, struct obj *dir, const char *name,
	    const uint8_t child[16], uint8_t type);
int dir_del(struct vs_vol *v, struct obj *dir, const char *name);
int dir_buckets_drop(struct vs_vol *v, const uint8_t dir[16],
		     uint32_t nbuckets);
/* VS_BULK: write the buckets kept in memory (dir_cache_flush()), or
 * forget them (dir_cache_free()). */
int dir_cache_flush(struct vs_vol *v);
void dir_cache_free(struct vs_vol *v);
int dir_repoint(struct vs_vol *v, struct obj *dir, const char *name,
		const uint8_t child[16], uint8_t type);

/* vs_data.c */
void data_path(char *buf, size_t len, const uint8_t oid[16], uint64_t dv);
void chunk_path(char *buf, size_t len, const uint8_t oid[16], uint64_t chunk,
		uint64_t gen);
int cmap_get(struct vs_vol *v, const uint8_t oid[16], uint64_t chunk,
	     struct cent *e);
int cmap_put(struct vs_vol *v, const uint8_t oid[16], uint64_t chunk,
	     const struct cent *e);
/* Point chunk @chunk of @oid at the @len (1..VS_INLINE_MAX) bytes @buf
 * kept in its entry (CENT_INLINE), at generation @gen. The caller makes
 * the volume record format 3 in the same transaction. */
int cmap_put_inline(struct vs_vol *v, const uint8_t oid[16], uint64_t chunk,
		    uint64_t gen, const uint8_t *buf, size_t len);
/* The bytes of inline entry @e (cmap_get() of the same chunk) into @buf
 * (e->len bytes). @return 0, -EUCLEAN if the entry changed shape, -errno. */
int cmap_inline_read(struct vs_vol *v, const uint8_t oid[16], uint64_t chunk,
		     const struct cent *e, uint8_t *buf);
/* Copy @len bytes at @ioff of @in to @ooff of @out (copy_file_range, or
 * reads and writes where it cannot). @return 0, -EIO when @in is shorter,
 * -errno. Any thread: file system calls only. */
int vs_copy_range(int in, uint64_t ioff, int out, uint64_t ooff,
		  uint64_t len);
/* Drop every chunk of file @o (its last link went). */
int data_drop_all(struct txn *t, const struct obj *o);
/* Convert a format 1 volume (vs_vol_open()). @return 0 or -errno. */
int data_convert(struct vs_vol *v);
void cleanup_data(struct vs_vol *v);
void stage_count(struct vs_vol *v);
void stage_dir_drop(struct vs_vol *v, const char *sdir);
void cleanup_stage_tmp(struct vs_vol *v);
void stage_names(char *dir, size_t dlen, char *file, size_t flen,
		 const uint8_t txid[16], const uint8_t oid[16], uint32_t cs,
		 uint64_t chunk);
int data_make(struct txn *t, const struct obj *o, uint64_t newdv,
	      uint64_t newsize, const struct proto_op *store);

/* vs_ops.c */
int fail(struct txn *t, int err, const char *msg);
int do_op(struct txn *t, const struct proto_op *op);

/* vs_txn.c */
/* A struct txn without a tdb transaction (vs_batch.c shares one). */
void txn_init(struct txn *t, struct vs_vol *v, bool events);
int txn_start(struct txn *t, struct vs_vol *v, bool events);
/* Remove the new data file of an op that will not be committed. */
void txn_discard(struct txn *t);
void txn_abort(struct txn *t);
int txn_commit(struct txn *t);
/* What follows a commit: old data files and used staging removed. */
void txn_after_commit(struct txn *t);
int append_events(struct txn *t);
int opid_lookup(struct vs_vol *v, const uint8_t opid[16],
		struct vs_reply *rep);
int opid_record(struct txn *t, const uint8_t opid[16], int status,
		const char *body, size_t blen);

/* vs_import.c: a bulk import recorded one object with @inl inline bytes
 * (meta.tdb grew by about that and the per-file metadata); every so often
 * look at its size: stop inlining past the cap, -EFBIG past the hard
 * limit (VS_BULK_TDB_HARD). 0 at once for other handles. */
int vs_bulk_grow(struct vs_vol *v, uint64_t inl);
/* The size meta.tdb and its journal may reach before cairn-vold refuses
 * operations that add records: 7/8 of tdb's 4 GiB (3.5 GiB: a file past
 * ~3.72 GiB cannot take tdb's 10 % growth step), or 7/8 of
 * CAIRN_TEST_TDB_LIMIT when that is set (tests). */
uint64_t vs_meta_hard(void);

#endif /* CAIRN_VOLSTORE_I_H */
