/*
 * wb_i.h - what the files of the write-back module share: the write
 * states (wb.c), the stores (wb_store.c) and the conflict copies
 * (conflict.c). Not for anything outside them; wb.h is the module's face.
 *
 * Locking as wb.c says: wb->lock guards the table and every field of a
 * write state; the *_locked functions are called with it held.
 */
#ifndef CAIRN_CM_WB_I_H
#define CAIRN_CM_WB_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "cm/fidmap.h"
#include "cm/loop.h"
#include "cm/mut.h"
#include "cm/wb.h"

#define WB_BUCKETS	  256
/* A file written without a close is checkpointed at least this often
 * (ms, at its next write): the most a kill -9 loses of its writes. */
#define WB_CKPT_MS	  1000
/* dirty.tdb.jnl is checkpointed into dirty.tdb by the idle timer once
 * past WB_JOURNAL_IDLE bytes and no save came for WB_JOURNAL_IDLE_MS;
 * inside the save that passes WB_JOURNAL_MAX (under wb->lock: 8-60 ms
 * on a loaded 2-core VM, doc/cm.md) only if it was never idle. */
#define WB_JOURNAL_MAX	   (4u << 20)
#define WB_JOURNAL_IDLE	   (256u << 10)
#define WB_JOURNAL_IDLE_MS 200
#define WB_STAGE_PARALLEL 8

/* Who waits for the store of a write state (wb_flush() callers), in the
 * order they are told: the last to join first. */
struct flush_waiter {
	SLIST_ENTRY(flush_waiter) link;
	wb_done_fn done;
	void *arg;
};
SLIST_HEAD(flush_waiters, flush_waiter);

struct wstate {
	SLIST_ENTRY(wstate) link; /* in its bucket of wb->tab */
	struct fid fid;
	uint64_t base_dv, srv_size, size, zero_from;
	int64_t mtime_ns, ctime_ns;
	struct fid parent;
	char *name;
	struct proto_attr attr; /* the server's, at the first open */
	unsigned writers;
	unsigned writing;
	/* Writes and truncates running (begin_io() to end_io()): each works
	 * from a copy of this state taken at its start, its base DV too. A
	 * replay's retag (stored()) waits for them, retagging set so that
	 * no new one begins meanwhile: else a write still on the old DV
	 * made a chunk at it after the retag, which readers at the new DV
	 * took for a hole (a page of zeros, doc/cm.md "A reader during a
	 * rewrite"). */
	unsigned io;
	bool retagging;
	bool dirty, storing, gone, saved;
	/* Loaded dirty from dirty.tdb at start: what wb_resume_crashed()
	 * stores (a file made dirty since is its writer's to store). */
	bool crash_left;
	bool conflicted; /* its changes went to a conflict copy */
	bool writeback;	 /* a store above the dirty limit is queued */
	/* Disconnected: the changes are in the replay log as a STORE record
	 * (their chunks stay DIRTY until it is replayed). */
	bool logged;
	/* While logged: the largest size a STORE record of it logged (the
	 * bytes below it are what such a record sends, read from the
	 * chunks when it goes; wb_logged_size()). */
	uint64_t logged_size;
	/* A logged store is being replayed with base DV replay_to standing
	 * for replay_from (our own earlier changes moved the DV). */
	bool replaying;
	uint64_t replay_from, replay_to;
	/* Created late (mut_hold_create()): base_dv is 0 and the chunks
	 * are tagged 0 until a store tells the file's DV. */
	bool created;
	/* Attributes set while the file was being written (chmod, utimes,
	 * chown: PROTO_SA_* bits), sent as a setattr after its store, in
	 * the same batch. */
	uint32_t sa_mask, sa_mode, sa_uid, sa_gid;
	int64_t sa_atime_ns, sa_mtime_ns;
	/* Stage-ahead (connected): a chunk a write filled to its end is
	 * PUT to the server's staging area under ahead_txid while the file
	 * is still being written; the next store uses that txid and does
	 * not send the chunk again if no write touched it since (cgen[c],
	 * bumped by every write of chunk c, equals sgen[c], the cgen its
	 * staged bytes were read at). Nothing in the log refers to it: a
	 * txid no store names is dropped by the server after a while. */
	bool ahead, no_ahead;
	uint8_t ahead_txid[16];
	uint32_t *cgen, *sgen;
	size_t ngen;
	unsigned ahead_inflight;
	struct store *ahead_waiter; /* a store waiting for them (loop) */
	/* Writes since the last checkpoint sit in open working copies of
	 * the chunk store (not committed: a kill -9 discards them). The
	 * record in dirty.tdb then names the size of the last checkpoint,
	 * ck_size, not the live one: what the committed chunks hold. A
	 * checkpoint (wb_checkpoint_locked()) commits them and clears it. */
	bool uncommitted;
	/* A checkpoint commits the working copies outside wb->lock: set
	 * (and the state pinned through writing) meanwhile, uncommitted
	 * being clear already; a save then names ck_size too. */
	bool checkpointing;
	uint64_t ck_size;
	uint64_t ck_ms; /* when uncommitted was set (util_now_ms()) */
	/* A truncate that shrinks the file cuts its chunks before it sets
	 * the new size: ncut counts the truncates between their first cut
	 * and the size set (end_io()), cut_to is the smallest size they
	 * cut to, and tgen moves at each one's start and end. A reader
	 * (wb_read()) takes a state being cut as cut to cut_to already,
	 * and reads again when tgen moved during its read: else it read a
	 * cut chunk under the old size, as zeros never written (doc/cm.md
	 * "A reader during a rewrite"). A save meanwhile names at most
	 * cut_to: what a kill -9 during the cuts leaves (doc/cm.md "A
	 * truncate and a kill -9"). */
	unsigned ncut;
	uint64_t tgen, cut_to;
	uint64_t id; /* this write state among all (stage-ahead replies) */
	uint64_t last_end; /* where the last write ended: a stream? */
	struct flush_waiters waiters; /* loop thread */
};

struct wb {
	struct wb_deps d;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	SLIST_HEAD(wstate_list, wstate) tab[WB_BUCKETS];
	struct tdbj *dj; /* dirty.tdb and its journal; under lock */
	/* A save or drop failed (dj_save_failed()): reported once, mended
	 * by dj_mend_locked() at the next save or tick; under lock. */
	bool dj_failing;
	uint64_t dj_mend_ms; /* last try to mend (util_now_ms()) */
	uint64_t dj_save_ms; /* the last save or drop (util_now_ms()) */
	/* FIDs whose record a failed drop left in dirty.tdb (value 1; 0
	 * once a save replaced it): deleted when the journal is mended,
	 * else a restart would bring the stored state back dirty. */
	struct fidmap undropped;
	/* FIDs whose newest logged store carries its bytes in the replay
	 * log (record format 3) while its chunk files are not synced
	 * (value 1; 0 once wb_data_durable() synced them): under lock. */
	struct fidmap owed;
	uint64_t nowed;
	unsigned nsyncers; /* wb_data_durable_ahead() threads running */
	uint64_t ndirty;
	unsigned nold; /* version-1 records found at load */
	/* stored() moved a file's chunks from the DV its store was logged
	 * on (moved_src) to the answer's (moved_dst) while a later record
	 * kept the cached attributes on the old one (mcache_ahead()); a
	 * write state made from those attributes starts on the answer's
	 * DV, where the chunks are (wb_open_write()). Value 0: none. Under
	 * lock. */
	struct fidmap moved_src, moved_dst;
	/* conflict.c, loop thread: FIDs whose base is in replay-base */
	struct fidmap based;
	bool based_loaded;
	uint64_t next_id; /* wstate ids */
	/* The server takes a small store's bytes inline (PROTO_V_INLINE):
	 * wb_set_server_version(), read by the loop. */
	_Atomic bool inline_ok;
	/* The idle checkpoint timer (ckpt_tick(), loop thread): armed while
	 * some state is uncommitted; under lock. */
	struct cm_job ckpt_job;
	bool ckpt_armed;
};



struct store {
	struct wb *wb;
	struct fid fid;
	struct proto_op op;
	uint64_t seq;
	bool *dirty; /* per op.chunks[i]: send its data (else empty) */
	size_t next; /* next chunk to stage */
	unsigned inflight;
	int err;
	bool noanswer;	   /* @err: a staging PUT got no answer */
	bool owns_state;   /* set ws->storing: clear it at the end */
	mut_done_fn mdone; /* resend at resume: report here */
	void *marg;
	/* A store a crash left INFLIGHT, resent at start (wb_resend_store()):
	 * staged and sent only while connected; no answer (a PUT or the
	 * op) ends it with -EHOSTUNREACH and its record stays. */
	bool resent;
	/* Where the data comes from: the file itself, or for a conflict
	 * copy the refused file's chunks at its base DV (clean ones only
	 * below src_valid_to, the refused state's zero_from). */
	struct fid src_fid;
	uint64_t src_dv, src_valid_to;
	struct conflict *cf; /* set: this store writes a conflict copy */
	bool replay;	     /* reintegration: mut_send_replay, ungated */
	/* The batch of a store at close: the file's late create (held),
	 * the store, the attributes set meanwhile (sa; kind 0: none) as
	 * record sa_seq. The store's own answer waits in part_* for the
	 * setattr's, which ends the store. */
	bool held;
	struct mut_batch *batch; /* until sent: the held create is in it */
	struct proto_op sa;
	uint64_t sa_seq;
	int part_err;
	struct proto_op_result part_r;
	bool have_part_r;
	bool *skip;	 /* per op.chunks[i]: staged ahead, not sent */
	bool wait_ahead; /* stage-ahead PUTs of its txid still running */
	/* A replayed store sent in a batch (replay.c): once staged, handed
	 * back to staged() instead of sent; mdone hears the result. */
	wb_staged_fn staged;
	void *staged_arg;
};


struct collect {
	struct store *st;
	uint64_t size;
	uint64_t *chunks;
	bool *dirty;
	size_t n, cap;
	int err;
};


/* wb.c: the table of write states (lock held). */
struct wstate *wb_find_locked(struct wb *wb, const struct fid *f);
void wb_unlink_free_locked(struct wb *wb, struct wstate *ws);
int wb_save_locked(struct wb *wb, struct wstate *ws);
void wb_forget_locked(struct wb *wb, struct wstate *ws);
void wb_mark_clean_locked(struct wb *wb, struct wstate *ws);
/* wb.c: commit @ws's open working copies (no fsync: they survive kill -9,
 * a power cut only after cs_sync_file()) so that its chunks hold what its
 * live sizes say, and clear ws->uncommitted. The stores, truncates, the
 * last writer's release and, for a file written for a while, a write
 * call it. @return 0 or -errno (the working copies stay open). */
int wb_checkpoint_locked(struct wb *wb, struct wstate *ws);

/* Tests only (test_cm_wb's die-at-step-N, like chunkstore's
 * cs_fault_hook): called after each committed wb_save_locked(); it may
 * _exit() to "die" there. NULL (the default) costs a load and a branch. */
extern void (*wb_saved_hook)(void);
/* Tests only (test_cm_wb's truncate race): called by wb_truncate() once
 * it has cut the chunks of @fid, before it sets the size; and by
 * wb_read() between its copy of the write state and its first pass. */
extern void (*wb_cut_hook)(const struct fid *fid);
extern void (*wb_read_hook)(const struct fid *fid);
/* wb.c: the name and directory @fid's write state knows it by (its last
 * create, open by name or rename), for conflict paths. @return 0 or
 * -ENOENT. */
int wb_name_of(struct wb *wb, const struct fid *fid, struct fid *parent,
	       char *buf, size_t len);
/* wb.c: drop the DIRTY chunks of @fid from the chunk store. */
void wb_drop_chunks(struct wb *wb, const struct fid *fid);

/* wb.c: stage-ahead bookkeeping (lock held). */
void wb_ahead_reset_locked(struct wstate *ws);

/* wb_store.c: stage chunk @chunk of @fid ahead (loop thread). */
void wb_stage_ahead(struct wb *wb, const struct fid *fid, uint64_t chunk);

/* wb_store.c: stores. */
void wb_store_start(struct wb *wb, const struct fid *fid, wb_done_fn done,
		    void *arg);
void wb_store_send(struct store *st);
void wb_store_end(struct store *st, int err, const struct proto_op_result *r);
void wb_store_free(struct store *st);
int wb_collect_add(struct collect *c, uint64_t chunk, bool dirty);

/* conflict.c: a store of @st was refused as stale: 0 = a conflict copy is
 * under way and will end @st; else end @st with the error as usual. */
int wb_conflict_start(struct store *st);

#endif /* CAIRN_CM_WB_I_H */
