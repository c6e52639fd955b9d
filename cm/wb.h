/*
 * wb.h - write-back of file data: local writes into dirty chunks, stores
 * to the server at close and fsync (AFS semantics).
 *
 * Layer rule: FUSE-free (libcm).
 *
 * A file that is open for writing, or has local changes, has a write
 * state: the server DV the changes are based on (base_dv), the server's
 * size at that DV, the local size, and "zero_from": from there on, bytes
 * no local chunk holds read as zeros (the smallest size the file had since
 * base_dv; truncating down moves it). Its data lives in the chunk store:
 * chunks the file changed are DIRTY, tagged base_dv; other chunks are the
 * server's, fetched on demand at base_dv.
 *
 * Promises:
 *  1. Data a write returned survives kill -9 of cairnd once a checkpoint
 *     of its file committed it (without fsync): its close or fsync
 *     (wb_flush(), then the start of its store), a truncate, a setattr
 *     of it (wb_setattr()), the last writer's release, a write WB_CKPT_MS
 *     after the first uncommitted one, or the idle timer once writes have
 *     been uncommitted for WB_CKPT_MS.
 *     Writes in between sit in open working copies of the chunk store,
 *     which a crash discards: the file is then its last checkpoint, and
 *     the write state kept in <cache>/dirty.tdb (a tdb transaction, no
 *     fsync) names no more than that (ck_size). After a crash,
 *     wb_resume() stores what is dirty.
 *  2. A store sends only the chunks that changed (plus, after a truncate,
 *     empty chunks for the range that must read as zeros), staged under a
 *     fresh txid, then ONE store op through mut.c (so the replay log holds
 *     it, and a crash mid-store resends it under the same opid and txid).
 *     wb_flush() reports its result: close and fsync return it.
 *  3. While a store of a file runs, writes to that file wait (bounded), so
 *     what is staged is what the store names.
 *  4. A fetched chunk never replaces a dirty one (cs_put refuses).
 *
 * Threads: any thread except where it says loop.
 */
#ifndef CAIRN_CM_WB_H
#define CAIRN_CM_WB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/fid.h"
#include "common/proto.h"

#include "cm/mut.h"

struct cm_loop;
struct cm_stats;
struct conn;
struct cs_store;
struct fetch;
struct http_client;
struct ino_table;
struct mcache;
struct rlog;
struct wb;

/* Called exactly once, on the loop thread unless said. */
typedef void (*wb_done_fn)(void *arg, int err);

/* What wb_new() works with; the pointers must outlive the module (@http,
 * @fetch and @mut until the loop's teardown: nothing is stored after it). */
struct wb_deps {
	struct cm_loop *loop;	  /* flush jobs, stopping */
	struct http_client *http; /* staging chunks */
	struct cs_store *cs;	  /* the chunks */
	struct rlog *rlog;	  /* stores are logged */
	struct conn *conn;	  /* the mode; NULL: always connected */
	struct mcache *mc;	  /* attributes the write states change */
	struct fetch *fetch;	  /* chunks a write needs first */
	struct mut *mut;	  /* the store ops; conflict copies' creates */
	struct ino_table *ino;	  /* names, for conflict paths */
	struct cm_stats *st;
	struct fid root;       /* the volume's root (conflict copies) */
	const char *cache_dir; /* <cache>/dirty.tdb, replay-base, ... */
	const char *volume;    /* for the URLs */
	uint32_t chunk_size;   /* of @cs */
	uint64_t timeout_ms;   /* fetch-timeout: bounds a wait */
	uint64_t dirty_limit;  /* bytes (0: a quarter of cache_size,
				  at most 256 MiB) */
	uint64_t cache_size;
};

/* Open <cache>/dirty.tdb and load the write states it holds. @return the
 * handle or NULL + errno. wb_free(): after the FUSE threads are gone
 * (they write through the handle). Every other function takes a NULL
 * handle as "no write states" where it says nothing else. */
struct wb *wb_new(const struct wb_deps *deps);
void wb_free(struct wb *wb);

/* The protocol version of the server (struct proto_volinfo): from
 * PROTO_V_INLINE on, a store of a small file carries its bytes in the
 * request instead of a PUT to the staging area first (doc/cm.md, "Small
 * files inline"). Any thread. */
void wb_set_server_version(struct wb *wb, int version);

/* If @a's object has a write state, replace size and times with the local
 * ones. */
void wb_overlay(struct wb *wb, struct proto_attr *a);

/* The attributes of an open file whose last name is gone (unlinked while
 * open): the ones it had, with nlink 0 and the local size and times.
 * @return 0, or -ENOENT if @fid is not such a file. */
int wb_orphan_attr(struct wb *wb, const struct fid *fid,
		   struct proto_attr *out);

/* Does @fid have local changes not stored yet? */
bool wb_dirty(struct wb *wb, const struct fid *fid);
/* Does @fid have a write state (open for writing, or dirty)? */
bool wb_active(struct wb *wb, const struct fid *fid);
/* While a STORE record of @fid is in the replay log (the write state is
 * *logged*): the largest size such a record logged, else 0. A record
 * names the file's chunks, not a copy of them, so a write below that
 * size or a truncate under it changes what the record sends, or what a
 * refusal's conflict copy saves (doc/cm.md "A rewrite waits for the
 * log"). Any thread. */
uint64_t wb_logged_size(struct wb *wb, const struct fid *fid);

/* A handle with write access was opened on @a's file / released. @parent
 * and @name (may be NULL) name it, for conflict copies. */
int wb_open_write(struct wb *wb, const struct proto_attr *a,
		  const struct fid *parent, const char *name);
void wb_release_write(struct wb *wb, const struct fid *fid);

/* The file opened by wb_open_write() (attributes of DV 0) was created
 * late (mut_hold_create()): its first store takes the create along. */
void wb_created(struct wb *wb, const struct fid *fid);

/*
 * Fold a setattr (PROTO_SA_MODE, UID, GID, ATIME, MTIME bits of @mask;
 * nothing else) of a file being written into its write state: it is sent
 * after the file's next store, in the same batch, and saved in dirty.tdb
 * meanwhile. Only for an open file with local changes. @return 0 (taken:
 * wb_overlay() shows it now) or -ENOENT (send it as usual). Any thread.
 */
int wb_setattr(struct wb *wb, const struct fid *fid, uint32_t mask,
	       uint32_t mode, uint32_t uid, uint32_t gid, int64_t atime_ns,
	       int64_t mtime_ns);

/*
 * Set-ID bits a write or truncate clears with its data
 * (FUSE_HANDLE_KILLPRIV_V2: the kernel flags it, fuse_i.h). @how:
 * WB_KILL clears set-user-ID, and set-group-ID when group-executable;
 * WB_KILL_ALL set-group-ID in any case (a caller outside the file's
 * group). @mode: the file's mode (07777) as the caller saw it, or
 * WB_MODE_UNKNOWN (the server's at the first open is taken); a mode folded
 * into the write state (chmod) goes first.
 */
enum { WB_KILL = 1, WB_KILL_ALL = 2 };
#define WB_MODE_UNKNOWN UINT32_MAX
struct wb_kill {
	int how;
	uint32_t mode;
};

/* @mode as a kill @how leaves it (0: unchanged). */
uint32_t wb_killed_mode(uint32_t mode, int how);

/*
 * Clear @kill's set-ID bits of @fid in its write state, as wb_write()
 * does before its data: the mode is folded in (wb_setattr()'s way) and
 * saved in dirty.tdb before this returns. @return 0, -EPERM (the state
 * cannot take it: its last store is logged or being replayed, or the save
 * failed; send the mode as a setattr of its own first), or another
 * -errno.
 */
int wb_kill(struct wb *wb, const struct fid *fid, const struct wb_kill *kill);

/* The name of the file changed (rename): remember the new one. */
void wb_renamed(struct wb *wb, const struct fid *fid, const struct fid *parent,
		const char *name);

/*
 * Write @len bytes at @off. @kill (NULL: none): the set-ID bits it clears,
 * as wb_kill(), before any byte is written (never a state whose data is
 * saved without the mode). @return @len, or -EAGAIN with *@need set to a
 * chunk that must be fetched first (wb_fetch()), or -EPERM as wb_kill()
 * (nothing written), or -errno.
 */
ssize_t wb_write(struct wb *wb, const struct fid *fid, uint64_t off,
		 const void *buf, size_t len, uint64_t *need,
		 const struct wb_kill *kill);

/* Set the local size (ftruncate of a file with a write state); as
 * wb_write for -EAGAIN, @kill and -EPERM. */
int wb_truncate(struct wb *wb, const struct fid *fid, uint64_t size,
		uint64_t *need, const struct wb_kill *kill);

/* wb_write(), wb_truncate() with WB_IO_LOGGED: -EINPROGRESS, nothing
 * done, when the call would change bytes a STORE record of the file still
 * in the replay log has to send (wb_logged_size()); the caller waits for
 * the log (a FUSE thread: fmut_drain_first()) and calls again. */
#define WB_IO_LOGGED 1u
ssize_t wb_write_ex(struct wb *wb, const struct fid *fid, uint64_t off,
		    const void *buf, size_t len, uint64_t *need,
		    const struct wb_kill *kill, unsigned flags);
int wb_truncate_ex(struct wb *wb, const struct fid *fid, uint64_t size,
		   uint64_t *need, const struct wb_kill *kill, unsigned flags);

/*
 * Read from a file with a write state: @return bytes read (0 at EOF),
 * -EAGAIN + *@need, -ENOENT if @fid has no write state (read it the
 * normal way), or -errno.
 */
ssize_t wb_read(struct wb *wb, const struct fid *fid, uint64_t off, void *buf,
		size_t len, uint64_t *need);

/* Loop thread: fetch chunk @chunk of @fid at its base DV; @done(err). */
void wb_fetch(struct wb *wb, const struct fid *fid, uint64_t chunk,
	      wb_done_fn done, void *arg);

/* Loop thread: fetch every chunk of @fid (a write state) the chunk store
 * lacks at its base DV, then pin them all: the file is about to lose its
 * last name while open, and the server will not have it any more. */
void wb_fetch_all(struct wb *wb, const struct fid *fid, wb_done_fn done,
		  void *arg);

/* Store @fid's local changes if it has any; @done (loop thread) gets 0
 * once the server has them, or the error. Any thread. */
void wb_flush(struct wb *wb, const struct fid *fid, wb_done_fn done, void *arg);

/* Loop thread, from mut.c: a store of @op succeeded with @a. */
void wb_stored(struct wb *wb, const struct proto_op *op,
	       const struct proto_attr *a);

/*
 * Loop thread (replay.c, a replayed record of @fid other than a store was
 * acknowledged): a write state still "logged" whose store record is gone
 * from the log (acknowledged while a later record about the file was
 * still to go: the chunks stayed DIRTY at the local DV) and that no record
 * names any more takes the server's DV now, as wb_stored() does: its
 * chunks become clean at that DV and the write state goes. Without it the
 * file kept its local view for good and never showed another client's
 * later change.
 */
void wb_log_settle(struct wb *wb, const struct fid *fid);

/* Loop thread: the object is gone on the server (our unlink of its last
 * name): drop its local changes. */
void wb_gone(struct wb *wb, const struct fid *fid);

/* Loop thread, from mut_resume(): stage the chunks of a logged store
 * again and send it. Same contract as mut_send_logged(). */
int wb_resend_store(struct wb *wb, uint64_t seq, const struct proto_op *op,
		    mut_done_fn done, void *arg);

/* Disconnected (replay.c): a store op of @op's file was absorbed into the
 * replay log by a disconnect: its write state becomes "logged" (no longer
 * dirty; chunks stay DIRTY for the replay). Loop thread. */
void wb_absorbed(struct wb *wb, const struct proto_op *op);

/* Make the local changes of @fid's chunks durable (cs_sync_file): an
 * absorbed store is answered as logged (replay_absorb()), so its chunks
 * must survive a power cut like store_offline()'s. @return 0 or -errno.
 * Any thread (chunk I/O and fdatasyncs: the loop thread stalls meanwhile,
 * as for store_offline()). */
int wb_sync_chunks(struct wb *wb, const struct fid *fid);

/* Reintegration: stage and send logged store @seq whose chunks are tagged
 * @src_dv (op->base_dv may differ: our own earlier replayed changes moved
 * the DV). A refusal keeps the record (mut_send_replay()). Loop thread. */
int wb_replay_store(struct wb *wb, uint64_t seq, const struct proto_op *op,
		    uint64_t src_dv, mut_done_fn done, void *arg);

/* Replay in batches: as wb_replay_store(), but once the chunks are staged
 * the op is not sent: @staged(@staged_arg, 0, sop, op_done, op_arg) is
 * called and the caller sends it (in a batch) with op_done/op_arg as its
 * result callback, which ends the store and then calls @done(@arg, err, r)
 * as wb_replay_store() would. @sop is the store as it must go: a small
 * file's one chunk rides in it (sop->data, PROTO_V_INLINE) instead of a
 * stage PUT; the caller copies the bytes into the op it sends (valid until
 * op_done). A staging failure calls @staged with the error (sop and
 * op_done NULL) and nothing else. @return 0 or -errno (no call). Loop
 * thread. */
typedef void (*wb_staged_fn)(void *staged_arg, int err,
			     const struct proto_op *sop, mut_done_fn op_done,
			     void *op_arg);
int wb_stage_replay_store(struct wb *wb, uint64_t seq,
			  const struct proto_op *op, uint64_t src_dv,
			  wb_staged_fn staged, void *staged_arg,
			  mut_done_fn done, void *arg);

/*
 * Before replay records of @fids[0..@n) the server took leave the log:
 * the files among them whose logged store carried its bytes in the log,
 * chunk files unsynced (store_offline()), get those synced now, all at
 * once (cs_sync_files()), so that the chunk store holds them after a
 * power cut once the log no longer does. Other FIDs cost a lookup.
 * Any thread. @return 0 or the -errno of the sync (logged).
 */
int wb_data_durable(struct wb *wb, const struct fid *fids, size_t n);

/*
 * Loop thread, as a batch of replay records goes to the server: start
 * syncing the owed chunk files of @fids[0..@n) on a thread of their own,
 * so that the syncs overlap the round trip and leave the loop thread;
 * wb_data_durable() at the reply then waits for it (usually done) and
 * syncs what it did not. Nothing owed: no thread.
 */
void wb_data_durable_ahead(struct wb *wb, const struct fid *fids, size_t n);

/*
 * At start, before the mount answers: each live store record that
 * carries its bytes (format 3), the newest store of its file, is checked
 * against chunk 0 in the chunk store, which a power cut may have taken
 * back (the chunk was not synced): the same bytes, or a chunk written
 * since (a later generation of the same slot, readable), are kept and
 * synced; anything else (missing, torn, an older file) is written again
 * from the record and synced. @return the number of chunks restored, or
 * -errno (logged).
 */
int wb_restore_logged(struct wb *wb);

/* Loop thread: store every dirty file (the end of a reintegration). */
void wb_resume(struct wb *wb);
/* Loop thread, at start, after mut_resume(): store the files a crash
 * left dirty (loaded dirty from dirty.tdb), once; not those written
 * since, which their own closes store. */
void wb_resume_crashed(struct wb *wb);

/* Bytes of dirty data (for fs getcacheparms). */
uint64_t wb_dirty_files(struct wb *wb);

#endif /* CAIRN_CM_WB_H */
