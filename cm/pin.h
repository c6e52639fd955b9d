/*
 * pin.h - pins for cairnd (fs pin, unpin, pins): objects whose metadata and
 * every chunk are fetched ahead and never culled, so a user can go offline
 * with them.
 *
 * Layer rule: FUSE-free (libcm), level 5. It drives mfetch.c and fetch.c;
 * fetch.c asks it (pin_covers(), through struct fetch_hooks) whether a
 * chunk it stores must be stored pinned. It answers in C structs; the
 * control handlers (ctl_pin.c) turn them into JSON.
 *
 * Model:
 *  - A pin record ("a pin") names one object by FID, recursive or not, with
 *    the mount-relative path it was pinned by. Records live in the vc tdb
 *    ('P' + FID, cm/vc.c) and are re-applied when cairnd starts.
 *  - The pinned set is the objects the records cover: the object itself;
 *    for a directory its listing; with recursive, its whole tree, including
 *    entries that appear later (a DIR event rescans it). Every file in the
 *    set has its chunks pinned in the chunk store (cs_pin_file, and
 *    CS_F_PINNED on cs_put for chunks fetched later by anyone).
 *  - A pin job walks the tree (asynchronously: metadata missing from the
 *    cache is fetched through mfetch.c), checks that the set fits, records
 *    the pin, then fetches every missing chunk with at most max_parallel
 *    transfers. Background jobs (restart, events, flush) do the same
 *    without a caller and without the space check.
 *
 * Threads: everything here runs on the loop thread; the state has no lock.
 */
#ifndef CAIRN_CM_PIN_H
#define CAIRN_CM_PIN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cm/ctl.h"
#include "common/fid.h"
#include "common/proto.h"

struct cm_loop;
struct cs_store;
struct fetch;
struct mcache;
struct mfetch;
struct vc;
struct pin;

/* What pin_new() works with; the pointers must outlive the pin state
 * (@mf and @fetch until shutdown begins: jobs stop asking then). */
struct pin_deps {
	struct cm_loop *loop; /* its base; cm_stopping() */
	struct cs_store *cs;
	struct vc *vc; /* the pin records */
	struct mcache *mc;
	struct mfetch *mf;
	struct fetch *fetch;
	atomic_int *online; /* tells "no server" from other errors */
	uint32_t chunk_size;
	unsigned max_parallel; /* chunk fetches of one job; 0: 8 */
};

/* Loop thread. @return the (empty) pin state or NULL + errno. */
struct pin *pin_new(const struct pin_deps *deps);

/* Is @fid in the pinned set? Loop thread; false before pin_restore()
 * and for a NULL @pin. */
bool pin_covers(struct pin *pin, const struct fid *fid);

/* Load the pin records from the vc tdb and start a background job per
 * record (fetching what is missing, pinning what is cached). Loop thread,
 * once, after the vc is open. @return 0 or -errno (logged). */
int pin_restore(struct pin *pin);

/* Free the pin state and every job left (a waiting caller hears
 * PIN_STOPPING). Loop thread, at shutdown, after fetch_stop() and
 * mfetch_free() (so no callback into a job can follow). NULL-safe. */
void pin_free(struct pin *pin);

/* An event from the server (after mfetch.c applied it): a changed pinned
 * file is fetched again, a changed pinned directory rescanned, a gone
 * object leaves the set. Loop thread. */
void pin_event(struct pin *pin, const struct proto_event *ev);

/* Metadata learnt outside the event stream (a bulk revalidation after the
 * stream broke, a listing) says pinned @a's data version changed: fetch
 * it again (a file) or rescan it (a directory) in the background, as for
 * an event. Loop thread; the job starts on the next loop turn. */
void pin_changed(struct pin *pin, const struct proto_attr *a);

/* If @fid is pinned, fetch its missing chunks again in the background
 * (after fs flush). @return true if it is pinned. Loop thread. */
bool pin_refetch(struct pin *pin, const struct fid *fid);

/* --- what a caller asks (fs pin, unpin, pins; ctl_pin.c) --- */

/* How a foreground pin went. */
enum pin_outcome {
	PIN_DONE,	    /* pinned, every chunk cached (err 0) */
	PIN_CHUNKS_MISSING, /* pinned, chunks_failed could not be fetched
			       (err: -EHOSTUNREACH when the server does
			       not answer, else the first fetch error) */
	PIN_NO_SPACE,	    /* -ENOSPC: need bytes, avail bytes */
	PIN_NO_FILES,	    /* -ENOSPC: need chunk files, avail, limit */
	PIN_NO_SERVER,	    /* the scan failed, the server does not answer */
	PIN_FAILED,	    /* the scan failed with err */
	PIN_STOPPING,	    /* -ECANCELED: cairnd is stopping */
};

struct pin_result {
	int err; /* 0 or -errno */
	enum pin_outcome kind;
	uint64_t need, avail, limit; /* PIN_NO_SPACE, PIN_NO_FILES */
	uint64_t bytes_total, bytes_done, bytes_fetched, files;
	uint64_t files_skipped; /* unreadable to the caller, left out */
	uint64_t chunks_failed;
	int fetch_err;
};

struct pin_progress {
	uint64_t bytes_done, bytes_total, files_done, files_total;
};

/* The caller of pin_add(): @progress (may be NULL) at most ten times a
 * second while chunks are fetched, then @done exactly once. Loop thread. */
struct pin_watch {
	void (*progress)(void *arg, const struct pin_progress *pr);
	void (*done)(void *arg, const struct pin_result *res);
	void *arg;
};

/*
 * Pin @attr's object (path @path, mount-relative; the caller resolved it
 * and checked R_OK) for @peer, its whole tree with @recursive: scan, check
 * the space, record, fetch. Pinning again refreshes the pin (and may widen
 * it). A pin belongs to the user who made it (root for records written
 * before owners were kept). @return 0 (@watch->done will be called), or
 * -errno and it never is.
 */
int pin_add(struct pin *pin, const struct ctl_peer *peer,
	    const struct proto_attr *attr, const char *path, bool recursive,
	    const struct pin_watch *watch);

/* What pin_remove() did. */
struct pin_removed {
	uint64_t removed, bytes, kept;
	/* -EPERM: the pin of the object itself and its owner */
	char path[CTL_PATH_MAX];
	uid_t owner;
};

/*
 * Remove the pin of @fid and, with @recursive, every pin at or under
 * @path. Only @peer's pins unless @peer is root: naming another user's
 * pin without @recursive is -EPERM (out->path, out->owner say whose) and
 * removes nothing; with @recursive others' pins stay (out->kept). @return
 * 0 or -EPERM. Loop thread.
 */
int pin_remove(struct pin *pin, const struct ctl_peer *peer,
	       const struct fid *fid, const char *path, bool recursive,
	       struct pin_removed *out);

/* One pin record as pin_list() shows it. */
struct pin_info {
	const char *path;
	bool recursive;
	uid_t owner;
	uint64_t bytes, missing, files; /* of the files it covers */
};

struct pin_lister {
	/* Does the caller see the pin of @path made by @owner? */
	bool (*sees)(void *arg, const char *path, uid_t owner);
	/* One record it sees; a negative return stops the list. */
	int (*each)(void *arg, const struct pin_info *pi);
	void *arg;
};

/*
 * Every pin record the lister sees, then the totals: bytes pinned and
 * missing, each file once however many pins cover it; only files covered
 * by a record it sees, unless @all. @return 0 or what @each returned.
 * Loop thread.
 */
int pin_list(struct pin *pin, const struct pin_lister *l, bool all,
	     uint64_t *bytes_pinned, uint64_t *bytes_missing);

/* Is mount-relative @p at or under @top ("." is everything)? */
bool pin_path_under(const char *p, const char *top);

#endif /* CAIRN_CM_PIN_H */
