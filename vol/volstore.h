/*
 * volstore.h - the volume storage of cairn: a server root holding volumes,
 * each a tdb of metadata (and of each file's chunk map) plus immutable
 * chunk objects.
 *
 * Layer rule: this is a FUSE-free, HTTP-free library (vol/libvolstore.a).
 * It includes common/ only and is linked by cairn-vold and by admin/vos,
 * so that both write volumes through the same code. It must not include
 * libevent or anything of cm/ or chunkstore/. doc/vol-format.md describes
 * the files; the design essay at the top of volstore.c says which writes
 * and fsyncs happen in which order.
 *
 * Threads: a struct vs_root may be shared by threads (it holds only the
 * root path and its directory fd). A struct vs_vol is NOT thread-safe: the
 * caller serializes every call on one handle (cairn-vold keeps one mutex
 * per volume). tdb refuses to open one file twice in one process, so there
 * is at most one vs_vol per volume per process. Several processes (vold
 * and vos) may hold the same volume open: tdb's fcntl locks order them.
 *
 * Errors: 0 or -errno, as everywhere in cairn. The errno values are the
 * ones doc/protocol.md maps to HTTP statuses (-ENOENT 404, -EEXIST 409,
 * -ECANCELED 412, -ESTALE 410, -ERANGE 416, -EDQUOT 507, ...).
 */
#ifndef CAIRN_VOLSTORE_H
#define CAIRN_VOLSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "common/fid.h"
#include "common/proto.h"

#define VS_EVENT_RING 65536	 /* events kept per volume (tdb and memory) */
#define VS_OPID_KEEP 100000	 /* opids kept at least (and 7 days) */
#define VS_OPID_AGE_MS (7ull * 24 * 3600 * 1000)
#define VS_STAGE_AGE_S (24 * 3600) /* uncommitted staging is removed after */
#define VS_MAX_EVENTS 6		 /* events one mutation can produce */
#define VS_FILE_MAX (1ull << 44) /* largest file size (16 TiB) */
/* Server chunk size: a file's data is one chunk object per chunk of this
 * size (doc/vol-format.md). A power of two; the volume record keeps it. */
#define VS_CHUNK_MIN (64u * 1024)
#define VS_CHUNK_MAX (4u * 1024 * 1024)
#define VS_CHUNK_DEFAULT (256u * 1024)
/* Extents vs_data_open() may return for a range of at most
 * PROTO_CHUNK_MAX bytes: two per server chunk (bytes, then zeros). */
#define VS_EXTENTS_MAX (2 * (PROTO_CHUNK_MAX / VS_CHUNK_MIN) + 2)

struct vs_root;
struct vs_vol;

/* vs_vol_open() flags */
enum {
	VS_RDONLY = 1,	/* no mutation allowed (-EROFS) */
	VS_CLEANUP = 2, /* remove crash leftovers (only the serving process) */
	VS_NOSYNC = 4,	/* no fsync (bulk import into an unpublished volume) */
	VS_STAGED = 8,	/* the volume made by vs_vol_create(VS_STAGED) */
	VS_SNAPSHOT = 16, /* a read-only snapshot of one instant (vos export) */
	VS_BULK = 32,	  /* with VS_STAGED: no tdb transactions at all, every
			     write goes straight to meta.tdb (vos import: a
			     crash throws the unpublished volume away); a
			     failed mutation leaves the handle refusing
			     every later one (-EIO) */
	VS_JOURNAL = 64,  /* cairn-vold: commit through a redo journal while
			     no other process uses the volume (vs_jlock.c) */
};

/*
 * Open the server root @path. With @create, make it (mode 0700) and its
 * volumes/ directory, and the secret key if missing. Without, a missing
 * root is -ENOENT. @return 0 and *out (free with vs_root_close()).
 */
int vs_root_open(const char *path, bool create, struct vs_root **out);
void vs_root_close(struct vs_root *r);
/* The journal size at which a VS_JOURNAL handle checkpoints (0: the
 * default, TDBJ_MAX_BYTES_DEFAULT). */
void vs_root_set_journal_max(struct vs_root *r, size_t bytes);
const char *vs_root_path(const struct vs_root *r);

/*
 * Load the server's secret key (ROOT/secret.key) into @key (TOKEN_KEY_MAX
 * bytes), creating it first if it does not exist and @create is set.
 * @return 0 and *len, or -errno (-EPERM for a key file others can read).
 */
int vs_root_key(struct vs_root *r, bool create, uint8_t *key, size_t *len);

/*
 * Token state of a volume: its id and its token epoch. A token names both
 * (common/token.h), so a token of a removed volume does not work on a new
 * one of the same name, and vs_vol_revoke() voids every token minted
 * before it. Kept in ROOT/volumes/NAME/tokens (doc/vol-format.md).
 */
struct vs_tokstate {
	uint32_t id;
	uint64_t epoch;
	/* Private: the file the values were read from (vs_tokstate_get()). */
	bool valid;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

/*
 * Read the token state of volume @name into @ts. Unless @force, a @ts
 * that already holds the values of the same file is kept after one
 * fstatat() (cairn-vold calls this on every request, from its loop
 * thread; it touches neither the tdb nor the volume's lock). Zero @ts
 * before the first call. @return 0, -ENOENT (no such volume, or one made
 * by an older vos that nothing has opened since: vs_tokstate_ensure()),
 * -EINVAL (a corrupt file), -errno.
 */
int vs_tokstate_get(struct vs_root *r, const char *name, bool force,
		    struct vs_tokstate *ts);

/* Make sure volume @name has its token state (older volumes get one
 * starting at their creation time). @return 0, -ENOENT, -errno. */
int vs_tokstate_ensure(struct vs_root *r, const char *name);

/*
 * Revoke every token of volume @name: set its token epoch to now (in
 * microseconds), or one more than the old epoch if that is not later.
 * Written to a temporary file, fsynced and renamed into place; a running
 * cairn-vold sees it on the next request. @return 0 and *epoch (may be
 * NULL), -ENOENT, -EOVERFLOW (the epoch is at UINT64_MAX: it would wrap),
 * -errno.
 */
int vs_vol_revoke(struct vs_root *r, const char *name, uint64_t *epoch);

/*
 * Create volume @name (proto_volname_check() rules) with a fresh random id
 * unique in the root and an empty root directory owned by @uid/@gid, mode
 * 0755. Limits of 0 mean none. With VS_STAGED in @flags the volume is
 * made under a hidden name and appears only with vs_vol_publish() (vos
 * import fills it first). @return 0 and *id, -EEXIST, -EINVAL, -errno.
 */
int vs_vol_create(struct vs_root *r, const char *name, uint64_t bytes_limit,
		  uint64_t files_limit, int flags, uint32_t *id);

/*
 * vs_vol_create() for a volume that will hold about @nobjects objects (vos
 * import counts them first; 0: unknown, the default size). tdb's hash
 * table has a fixed number of chains, chosen here (vs_hash_size()): every
 * lookup and insert walks one chain, so a volume with far more records
 * than chains pays for the whole volume's size on every change.
 */
int vs_vol_create_sized(struct vs_root *r, const char *name,
			uint64_t bytes_limit, uint64_t files_limit, int flags,
			uint64_t nobjects, uint32_t *id);
/* The tdb hash chains of a volume made for @nobjects objects: 10,007
 * (the default) up to 2,501 objects, else four chains an object (4n + 1),
 * at most 2^24 + 1 (a 64 MiB table). */
uint32_t vs_hash_size(uint64_t nobjects);
/* Make a staged volume visible under its name (atomic rename, fsynced).
 * @return 0, -EEXIST if a volume of that name appeared meanwhile. */
int vs_vol_publish(struct vs_root *r, const char *name);

/* Remove volume @name (or its staged copy with VS_STAGED): first marked
 * removed in a transaction of its own, which waits for a commit in flight
 * in any process (tdb's transaction lock) and after which every mutation
 * and staged chunk is refused with -ENOENT, so no change is acknowledged
 * into a volume being removed; then renamed away, so it disappears
 * atomically, then deleted. @return 0, -ENOENT. */
int vs_vol_remove(struct vs_root *r, const char *name, int flags);

/* Names of all published volumes, sorted. *names is a heap array of *n
 * heap strings; free with vs_names_free(). */
int vs_vol_list(struct vs_root *r, char ***names, size_t *n);
void vs_names_free(char **names, size_t n);

/* Path of a volume's metadata file into @buf (to stat it). */
int vs_vol_meta_path(const struct vs_root *r, const char *name, char *buf,
		     size_t len);

/*
 * Open volume @name with VS_* @flags. VS_CLEANUP removes data files no
 * object points at, temporary files and staging older than a day: only
 * the process that serves the volume may ask for it (a store in flight in
 * another process would lose its new file). @return 0 and *out, -ENOENT,
 * -EINVAL (bad name or a volume record that does not decode), -EUCLEAN
 * (meta.tdb is damaged, as common/tdbw.h defines it), -errno.
 * With VS_SNAPSHOT (implies VS_RDONLY) the handle reads one instant of
 * the volume however long it is used: its metadata is copied and its
 * chunk objects hard-linked into a hidden directory while tdb's
 * all-record read lock holds every commit off (O(metadata + chunks), no
 * data copied), and vs_vol_close() removes the copy. Snapshots left by a
 * process that died are removed by the next snapshot of that volume.
 * A volume of the old format 1 (one data file per DV) is converted to
 * format 2 here, in one transaction, unless VS_RDONLY: then metadata
 * reads work and data reads fail with -EPROTO (vs_volinfo.chunk_size is
 * 0) until a writer converts it ('vos upgrade').
 */
int vs_vol_open(struct vs_root *r, const char *name, int flags,
		struct vs_vol **out);
void vs_vol_close(struct vs_vol *v);

struct vs_volinfo {
	char name[65];
	uint32_t id;
	struct fid root;
	uint64_t event_seq; /* last event's sequence number (0 = none yet) */
	uint64_t bytes_used, bytes_limit;
	uint64_t files_used, files_limit;
	uint64_t dv_max; /* highest data version ever given out */
	int64_t created_ns;
	uint32_t chunk_size; /* server chunk size; 0: format 1 (read-only) */
	unsigned format;     /* 1, 2 or 3 (inline chunks: doc/vol-format.md) */
	bool public; /* vs_vol_public(); false if it cannot be read */
};
int vs_vol_info(struct vs_vol *v, struct vs_volinfo *out);

/* Change the quota (vos). Limits of 0 mean none. */
int vs_vol_set_limits(struct vs_vol *v, uint64_t bytes_limit,
		      uint64_t files_limit);

/*
 * The public flag: whether chunk replies may be kept by shared HTTP caches
 * (doc/protocol.md, "Caching and trust"). Off unless vos set it; a volume
 * created anew starts private, whatever an older volume of that name was.
 * vs_vol_public() reads it (false when never set, and when the record is
 * damaged: -EINVAL then); vs_vol_set_public() writes it in a transaction
 * of its own, replacing a damaged record. @return 0, -EROFS (set on a
 * VS_RDONLY handle), -EINVAL, -errno.
 */
int vs_vol_public(struct vs_vol *v, bool *pub);
int vs_vol_set_public(struct vs_vol *v, bool pub);

/* --- reads --- */

/* Attributes of @fid. @return 0, -ENOENT (also for another volume's FID). */
int vs_getattr(struct vs_vol *v, const struct fid *fid, struct proto_attr *a);

/* The FID a name in directory @dir points at. @return 0, -ENOENT,
 * -ENOTDIR. */
int vs_lookup(struct vs_vol *v, const struct fid *dir, const char *name,
	      struct fid *child);

/* readdirplus: @out filled as proto_dir (heap; proto_dir_release()).
 * @return 0, -ENOENT, -ENOTDIR. */
int vs_readdir(struct vs_vol *v, const struct fid *dir, struct proto_dir *out);

/*
 * One page of a listing: at most @limit (>= 1) entries of directory @dir,
 * from @from (NULL: the start; else a cursor this function gave for the
 * same directory). *next receives where the following page starts and
 * *more whether there is one. The pages of one DV together hold every
 * entry exactly once; positions are the hash bucket and the rank in it, so
 * they stay valid exactly as long as the directory's DV does.
 * @return 0; -ESTALE when @from is for another DV (out->dir is then set,
 * so the caller can report the current DV, and there are no entries);
 * -ENOENT, -ENOTDIR, -ENOMEM. @out is released with proto_dir_release()
 * in every case.
 */
int vs_readdir_page(struct vs_vol *v, const struct fid *dir,
		    const struct proto_dir_cursor *from, size_t limit,
		    struct proto_dir *out, struct proto_dir_cursor *next,
		    bool *more);

/*
 * The same page given entry by entry, decoded nowhere: @fn gets each
 * entry's name (@len bytes, not NUL-terminated, as stored: the caller
 * checks it) and attributes, under the volume file's read lock, and may
 * encode them at once (cairn-vold writes the reply's JSON this way, so a
 * request holds its text, never the page decoded). *dir receives the
 * directory's attributes (also on -ESTALE), *np the entries given. A
 * negative return of @fn stops the scan and is returned. @return as
 * vs_readdir_page().
 */
typedef int (*vs_dirent_fn)(void *arg, const char *name, size_t len,
			    const struct proto_attr *a);
int vs_readdir_scan(struct vs_vol *v, const struct fid *dir,
		    const struct proto_dir_cursor *from, size_t limit,
		    struct proto_attr *dirattr, vs_dirent_fn fn, void *arg,
		    struct proto_dir_cursor *next, bool *more, size_t *np);

/* Symlink target (or a mount point's target volume), heap string the
 * caller frees. @return 0, -ENOENT, -EINVAL (neither). */
int vs_readlink(struct vs_vol *v, const struct fid *fid, char **target);
/* The same, and the object's type (SYMLINK or MOUNT) in *@type when
 * @type is not NULL. */
int vs_readlink_type(struct vs_vol *v, const struct fid *fid, char **target,
		     enum proto_type *type);

/* All xattrs of @fid (heap array, free with proto_xattrs_free()) and the
 * object's dv. @return 0, -ENOENT. */
int vs_xattrs(struct vs_vol *v, const struct fid *fid, uint64_t *dv,
	      struct proto_xattr **x, size_t *n);

/* One piece of a range of file data: @len bytes at @off of the open
 * chunk object @fd, or @len zeros when @fd is -1. */
struct vs_extent {
	int fd;
	uint64_t off, len;
};

/*
 * Open the bytes [@off, @off + @len) of file @fid at data version @dv for
 * reading (@len at most PROTO_CHUNK_MAX), clipped at the file's size:
 * @ext receives *n extents (at most VS_EXTENTS_MAX) that together hold
 * the range in order. The caller closes every ext[i].fd >= 0. The chunk
 * objects behind the fds never change, even after @dv stops being current
 * (a new DV writes new objects), so they may be read later without the
 * volume's lock. *n is 0 when @off is at or past the end.
 * @return 0 with *size (the file's size); -ESTALE with *cur_dv if @dv is
 * not current; -ENOENT; -EISDIR / -EINVAL for a directory / other type;
 * -EUCLEAN for a chunk object the map names but the disk lacks.
 */
int vs_data_open(struct vs_vol *v, const struct fid *fid, uint64_t dv,
		 uint64_t off, uint64_t len, struct vs_extent *ext, size_t *n,
		 uint64_t *size, uint64_t *cur_dv);

/*
 * Copy the whole data of file @fid at data version @dv into @out at the
 * same offsets (holes stay holes; @out is not truncated or extended past
 * the last stored byte). Used by vos export. @return 0, -ESTALE with
 * *cur_dv, -ENOENT, -errno.
 */
int vs_data_copy(struct vs_vol *v, const struct fid *fid, uint64_t dv,
		 int out, uint64_t *size, uint64_t *cur_dv);

/* Events with seq >= @from, oldest first, at most @max, from the volume's
 * persistent ring. @return 0 and *n. */
int vs_events_read(struct vs_vol *v, uint64_t from, struct proto_event *out,
		   size_t max, size_t *n);

/* --- mutations --- */

/*
 * Stage one chunk of a store (PUT /stage): @len bytes (at most @cs) of
 * chunk @chunk of @fid in transaction @txid, written and fsynced (so a
 * later store after a power loss still finds the bytes it was promised).
 * Staged bytes count against the volume's quota (bytes used + everything
 * staged, this chunk included, must fit in the byte limit) and against the
 * staging cap of vs_vol_set_stage_limits(); a chunk written again counts
 * once. A FID of this volume that names no object yet is accepted: the
 * data of a file the client creates with that FID in the batch that
 * stores it. @return 0, -ENOENT (a FID of another volume),
 * -EISDIR/-EINVAL (not a file),
 * -EFBIG (beyond VS_FILE_MAX), -E2BIG (@len > @cs), -EDQUOT (over the
 * quota or the cap: nothing written), -errno.
 */
int vs_stage_put(struct vs_vol *v, const struct fid *fid,
		 const uint8_t txid[16], uint64_t chunk, uint32_t cs,
		 const void *buf, size_t len);

/* Remove staging transactions created @age_s seconds ago or earlier, by
 * their creation time: writing more chunks into one does not keep it. */
int vs_stage_gc(struct vs_vol *v, int64_t age_s);

/* cairn-vold, every tick and on SIGUSR2, with the handle's lock: a
 * VS_JOURNAL handle checkpoints and shares the volume when another
 * process knocks, and journals again when none does (vs_jlock.c).
 * @return 0 or -errno (logged). */
int vs_vol_coord(struct vs_vol *v);

/* Cap the bytes staged in the volume at @max_bytes (0: only the quota
 * bounds them). Per open handle, not stored in the volume (cairn-vold
 * sets it from its configuration at open). */
void vs_vol_set_stage_max(struct vs_vol *v, uint64_t max_bytes);

/* Bytes staged in the volume now (counted at open, kept up to date by
 * this handle). */
uint64_t vs_staged_bytes(const struct vs_vol *v);

/* The outcome of one mutation. */
struct vs_reply {
	int status;   /* HTTP status: 200, or the one of the error */
	char *body;   /* heap JSON (op result or error body); free() */
	size_t len;
	bool replayed; /* answered from the opid table */
	int err;       /* vs_apply_group(): -errno of a server failure of
			  this op (status 5xx, not recorded: a retry runs
			  it again), else 0 */
	int nev;
	struct proto_event ev[VS_MAX_EVENTS]; /* appended, in seq order */
};

/*
 * Apply one decoded mutation (POST /op), as doc/protocol.md says: checks,
 * then one tdb transaction that changes the objects, appends the events,
 * records the reply under the opid and is committed (fsynced) before this
 * returns. A repeated opid gets the first reply again and changes
 * nothing. Semantic failures (4xx) are replies too, recorded under the
 * opid; only server failures return -errno (nothing changed, nothing
 * recorded). @rep is filled either way; free rep->body.
 */
int vs_apply(struct vs_vol *v, const struct proto_op *op,
	     struct vs_reply *rep);

/* One request of a group commit: the op of a POST /op (@n = 1) or the
 * ops of a POST /batch, in order, and where their replies go. */
struct vs_group_req {
	const struct proto_op *ops;
	size_t n;
	bool stop;		/* a batch's "stop_on_error" */
	struct vs_reply *reps;	/* @n replies, filled in */
};

/*
 * Apply the ops of @nreq requests, in order, in ONE tdb transaction that
 * is committed (fsynced) once before this returns: a group commit
 * (doc/vol-format.md, "Group commits"). Each op is applied as vs_apply()
 * applies it, with its own opid, events and reply; one that fails is
 * rolled back alone (an undo log of its writes) and its refusal
 * recorded under its opid, and the ops after it still run. A repeated
 * opid, also one repeated within the group, gets the first reply. A
 * server failure of one op (rep->err, status 5xx) is not recorded; in a
 * batch it ends the batch, and so does any failure when @stop is set:
 * the ops after it get status 424 ("not applied", EAGAIN, not
 * recorded). Events of an op are in rep->ev, in seq order across the
 * group. @return 0 with every reply filled in (free each body), or
 * -errno when nothing at all was committed (the replies are then
 * empty): -EROFS, a failed commit, a failed rollback, -ENOMEM.
 */
int vs_apply_group(struct vs_vol *v, struct vs_group_req *reqs, size_t nreq);

/* As vs_apply() without the opid table and without events: for vos
 * import into an unpublished volume. Failures are returned as -errno. */
int vs_apply_raw(struct vs_vol *v, const struct proto_op *op,
		 struct proto_op_result *res);

/* vos import: set all three times (ctime too, which no op can) and the
 * whole data of file @fid from @srcfd (@size bytes, holes kept), without a
 * new DV. @return 0 or -errno. */
int vs_import_times(struct vs_vol *v, const struct fid *fid, int64_t atime,
		    int64_t mtime, int64_t ctime);
int vs_import_data(struct vs_vol *v, const struct fid *fid, int srcfd,
		   uint64_t size);

/*
 * vos import with worker threads (vol/vs_import.c). vs_import_write()
 * writes the chunk objects of file @fid (data version @gen, its DV) from
 * @srcfd, @size bytes, holes and trailing zeros left out, using @buf (the
 * volume's chunk size in bytes) and returns what it wrote in *@out (free
 * it): file system calls only, so any thread may call it on a VS_BULK
 * handle while another thread calls the rest; on failure it removes what
 * it wrote. vs_import_done() records them (the handle's thread): the map
 * entries, the size and the three times of @fid; with @size 0 and no
 * chunks only the times. @return 0 or -errno (-EDQUOT over the quota).
 */
struct vs_ichunk {
	uint64_t chunk, gen;
	uint32_t len;
	/* export of a format 3 volume: the bytes of an inline chunk
	 * (malloc'd, vs_ichunk_free()); NULL for a chunk object */
	uint8_t *data;
};
/* Free @c (@n entries) with the inline bytes its entries hold. */
void vs_ichunk_free(struct vs_ichunk *c, size_t n);
int vs_import_write(struct vs_vol *v, const struct fid *fid, uint64_t gen,
		    int srcfd, uint64_t size, uint8_t *buf,
		    struct vs_ichunk **out, size_t *n);
int vs_import_done(struct vs_vol *v, const struct fid *fid, uint64_t gen,
		   uint64_t size, const struct vs_ichunk *c, size_t n,
		   int64_t atime, int64_t mtime, int64_t ctime);
/*
 * The tdb budget of a bulk import of a tree of @files objects (counted
 * first; volstore_i.h, VS_TDB_LIMIT): *@b gets tdb's limit, the reserve,
 * the per-file metadata estimate, the inline cap at the start (it
 * loosens as the objects still to come get fewer: vs_bulk_grow()) and
 * the hard limit.
 * @return 0, or -EFBIG if the metadata alone would not fit under the
 * limit less the reserve (refuse the tree before writing anything). For
 * tests only, the environment can lower the limits:
 * CAIRN_TEST_TDB_LIMIT=BYTES stands for tdb's 4 GiB (the reserve is a
 * quarter of it, the cap at most three quarters, the hard limit 15/16),
 * CAIRN_TEST_TDB_META_FILE=BYTES for the per-file estimate; only the bulk
 * import reads them. vs_import_budget() gives a VS_BULK handle the
 * budget; vs_import_full() says whether an import stopped on the hard
 * limit (its error is then -EFBIG).
 */
struct vs_import_budget {
	uint64_t limit, reserve, per_file, meta, cap, hard;
	uint64_t files, maxcap; /* the tree's objects; the cap at most */
};
int vs_import_plan(uint64_t files, struct vs_import_budget *b);
void vs_import_budget(struct vs_vol *v, const struct vs_import_budget *b);
bool vs_import_full(struct vs_vol *v);
/* Will a file of @size bytes go inline whole (one chunk of at most
 * VS_INLINE_BULK_WRITE_MAX bytes, meta.tdb under its cap), so that no chunk
 * object is made for it? Any thread, a VS_BULK handle. */
bool vs_import_inlines(struct vs_vol *v, uint64_t size);

/*
 * vos export with worker threads, the same split: vs_export_map() reads
 * the chunk map of file @fid (@size bytes; the handle's thread) into
 * *@out (vs_ichunk_free() it; holes have no entry; an inline chunk's
 * bytes are read there, since only that thread may use the tdb);
 * vs_export_write() copies those chunks into @out at their offsets (file system calls only, any
 * thread; @out is not extended past the last stored byte). @return 0,
 * -EUCLEAN (an object the map names is missing), -errno.
 */
int vs_export_map(struct vs_vol *v, const struct fid *fid, uint64_t size,
		  struct vs_ichunk **out, size_t *n);
int vs_export_write(struct vs_vol *v, const struct fid *fid,
		    const struct vs_ichunk *c, size_t n, int out);

/* Flush everything (after a VS_NOSYNC bulk load): the directory buckets
 * a VS_BULK handle keeps in memory, then meta.tdb and the file system.
 * @return 0 or -errno. */
int vs_vol_sync(struct vs_vol *v);

#endif /* CAIRN_VOLSTORE_H */
