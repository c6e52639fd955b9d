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
 *  1. Data a write returned survives kill -9 of cairnd: each write is
 *     committed to its chunk file (without fsync), and the write state is
 *     kept in <cache>/dirty.tdb (a tdb transaction, no fsync) whenever it
 *     changes. After a crash, wb_resume() stores what is dirty.
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

struct cm;

typedef void (*wb_done_fn)(struct cm *cm, void *arg, int err);

/* Open <cache>/dirty.tdb and load the write states it holds. */
int wb_new(struct cm *cm);
void wb_free(struct cm *cm);

/* If @a's object has a write state, replace size and times with the local
 * ones. */
void wb_overlay(struct cm *cm, struct proto_attr *a);

/* The attributes of an open file whose last name is gone (unlinked while
 * open): the ones it had, with nlink 0 and the local size and times.
 * @return 0, or -ENOENT if @fid is not such a file. */
int wb_orphan_attr(struct cm *cm, const struct fid *fid,
		   struct proto_attr *out);

/* The name and directory @fid's write state knows it by (its last
 * create, open by name or rename). @return 0 or -ENOENT. */
int wb_name_of(struct cm *cm, const struct fid *fid, struct fid *parent,
	       char *buf, size_t len);

/* Does @fid have local changes not stored yet? */
bool wb_dirty(struct cm *cm, const struct fid *fid);
/* Does @fid have a write state (open for writing, or dirty)? */
bool wb_active(struct cm *cm, const struct fid *fid);

/* A handle with write access was opened on @a's file / released. @parent
 * and @name (may be NULL) name it, for conflict copies. */
int wb_open_write(struct cm *cm, const struct proto_attr *a,
		  const struct fid *parent, const char *name);
void wb_release_write(struct cm *cm, const struct fid *fid);

/* The name of the file changed (rename): remember the new one. */
void wb_renamed(struct cm *cm, const struct fid *fid, const struct fid *parent,
		const char *name);

/*
 * Write @len bytes at @off. @return @len, or -EAGAIN with *@need set to a
 * chunk that must be fetched first (wb_fetch()), or -errno.
 */
ssize_t wb_write(struct cm *cm, const struct fid *fid, uint64_t off,
		 const void *buf, size_t len, uint64_t *need);

/* Set the local size (ftruncate of a file with a write state); as
 * wb_write for -EAGAIN. */
int wb_truncate(struct cm *cm, const struct fid *fid, uint64_t size,
		uint64_t *need);

/*
 * Read from a file with a write state: @return bytes read (0 at EOF),
 * -EAGAIN + *@need, -ENOENT if @fid has no write state (read it the
 * normal way), or -errno.
 */
ssize_t wb_read(struct cm *cm, const struct fid *fid, uint64_t off, void *buf,
		size_t len, uint64_t *need);

/* Loop thread: fetch chunk @chunk of @fid at its base DV; @done(err). */
void wb_fetch(struct cm *cm, const struct fid *fid, uint64_t chunk,
	      wb_done_fn done, void *arg);

/* Loop thread: fetch every chunk of @fid (a write state) the chunk store
 * lacks at its base DV, then pin them all: the file is about to lose its
 * last name while open, and the server will not have it any more. */
void wb_fetch_all(struct cm *cm, const struct fid *fid, wb_done_fn done,
		  void *arg);

/* Store @fid's local changes if it has any; @done (loop thread) gets 0
 * once the server has them, or the error. Any thread. */
void wb_flush(struct cm *cm, const struct fid *fid, wb_done_fn done,
	      void *arg);

/* Loop thread, from mut.c: a store of @op succeeded with @a. */
void wb_stored(struct cm *cm, const struct proto_op *op,
	       const struct proto_attr *a);

/* Loop thread: the object is gone on the server (our unlink of its last
 * name): drop its local changes. */
void wb_gone(struct cm *cm, const struct fid *fid);

/* Loop thread, from mut_resume(): stage the chunks of a logged store
 * again and send it. Same contract as mut_send_logged(). */
int wb_resend_store(struct cm *cm, uint64_t seq, const struct proto_op *op,
		    void (*done)(struct cm *, void *, int,
				 const struct proto_op_result *),
		    void *arg);

/* Disconnected (replay.c): a store op of @op's file was absorbed into the
 * replay log by a disconnect: its write state becomes "logged" (no longer
 * dirty; chunks stay DIRTY for the replay). Loop thread. */
void wb_absorbed(struct cm *cm, const struct proto_op *op);

/* Reintegration: stage and send logged store @seq whose chunks are tagged
 * @src_dv (op->base_dv may differ: our own earlier replayed changes moved
 * the DV). A refusal keeps the record (mut_send_replay()). Loop thread. */
int wb_replay_store(struct cm *cm, uint64_t seq, const struct proto_op *op,
		    uint64_t src_dv,
		    void (*done)(struct cm *, void *, int,
				 const struct proto_op_result *),
		    void *arg);

/* Loop thread, after mut_resume(): store what a crash left dirty. */
void wb_resume(struct cm *cm);

/* Bytes of dirty data (for fs getcacheparms). */
uint64_t wb_dirty_files(struct cm *cm);

#endif /* CAIRN_CM_WB_H */
