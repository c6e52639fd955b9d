/*
 * mfetch.h - metadata fetches of cairnd (level 3 of doc/cm.md "Levels"):
 * the asynchronous requests that fill the cached metadata (mcache.h) on
 * the loop thread: volume info, whole directory listings (readdirplus),
 * bulk getattr, symlink targets, xattrs; and the one place where news
 * about an object (an event, a bulk revalidation) turns into dropped cache
 * entries and kernel invalidations.
 *
 * Layer rule: FUSE-free (libcm).
 *
 * Requests for the same thing are shared: one transfer per (kind, FID),
 * and attribute requests of one loop iteration go out as one POST getattr
 * of up to PROTO_GETATTR_MAX FIDs.
 *
 * Threads: loop thread only; every function accepts a NULL handle (the
 * module is gone at shutdown): a want then completes with -ECANCELED.
 */
#ifndef CAIRN_CM_MFETCH_H
#define CAIRN_CM_MFETCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/fid.h"
#include "common/proto.h"

struct cm_loop;
struct cm_stats;
struct cs_store;
struct http_client;
struct ino_table;
struct mcache;
struct vc;
struct mfetch;

/* Completion of a want: @err is 0 (the cache now holds it) or a negative
 * errno (-ENOENT: the object is gone; -EIO, -ETIMEDOUT: no answer;
 * -ECANCELED: shutting down). Runs on the loop thread. */
typedef void (*mfetch_cb)(void *arg, int err);

/*
 * Upward hooks: what the op log and pins do with an event, given by
 * daemon.c so this module includes neither. NULL-safe.
 */
struct mfetch_hooks {
	/* Op log (mut): true if @ev is about an object with an op in flight
	 * (it is held back and applied after the reply). */
	bool (*defer_event)(void *arg, const struct proto_event *ev);
	/* Pins: after @ev was applied to the caches. */
	void (*applied_event)(void *arg, const struct proto_event *ev);
	/* Writeback: @ev was not applied, our view of its object being
	 * ahead of the server (mcache_ahead()); replay.c refreshes it once
	 * it is not, whatever ends that (an ack, a cancellation). */
	void (*ahead_event)(void *arg, const struct proto_event *ev);
	void *arg;
};

/* What mfetch_new() works with; the pointers must outlive the module. */
struct mfetch_deps {
	struct cm_loop *loop; /* its base */
	struct http_client *http;
	struct mcache *mc; /* what the fetches fill */
	struct ino_table *ino;
	struct vc *vc;
	struct cs_store *cs;
	struct cm_stats *st;
	atomic_int *online;  /* set to whether the server answered */
	const char *volume;  /* volume name, for the URLs */
	const char *server;  /* for log lines */
	unsigned timeout_ms; /* per request */
};

/* Loop thread: set up / tear down (pending wants get -ECANCELED).
 * @hooks (may be NULL) is copied. @return the handle or NULL + errno. */
struct mfetch *mfetch_new(const struct mfetch_deps *deps,
			  const struct mfetch_hooks *hooks);
void mfetch_free(struct mfetch *mf);

/* Loop thread: fetch into the caches, then call @cb (may be NULL). */
void mfetch_want_attr(struct mfetch *mf, const struct fid *fid, mfetch_cb cb,
		      void *arg);
void mfetch_want_dir(struct mfetch *mf, const struct fid *fid, mfetch_cb cb,
		     void *arg);
/*
 * The same for an OPENDIR, which may read a big listing as it comes:
 * @cb(@arg, 0) runs as soon as the first of several pages is in, and
 * mfetch_stream_get() then gives the listing so far (dstream.h); a
 * listing of one page, or one read while local changes are ahead of the
 * server, calls @cb at its end as mfetch_want_dir() does.
 */
void mfetch_want_dir_stream(struct mfetch *mf, const struct fid *fid,
			    mfetch_cb cb, void *arg);
/* The listing of @fid being fetched as it comes, a reference (the
 * caller drops it with dstream_put()), or NULL when none streams. */
struct dstream;
struct dstream *mfetch_stream_get(struct mfetch *mf, const struct fid *fid);
/*
 * A complete listing of @fid that events overtook while it came: it is
 * not stored (a reply older than an event, doc/cm.md "Freshness") and is
 * fetched again, but it is a listing of one DV of the directory, whose
 * first page was asked for after mfetch_send_seq() returned @since_seq
 * (a counter, not a clock: a request sent in the same millisecond as
 * the caller parked, and read by the server before the user's own
 * change was answered, never qualifies), and read while no local change
 * of @fid was ahead of the server (mcache_ahead()); kept only when a
 * waiter with a callback needs it. An OPENDIR or LOOKUP
 * that waited for a listing serves it rather than fail when the
 * directory changes faster than its listing arrives (fuse_ops.c). Kept
 * only while the waiters of that fetch run (from its mfetch_cb). Loop
 * thread. @return 0 and a reference in *@out, or
 * -ENOENT.
 */
struct vc_dir;
int mfetch_late_dir(struct mfetch *mf, const struct fid *fid,
		    uint64_t since_seq, struct vc_dir **out);
/* A late listing an OPENDIR was served (@d, a reference is taken):
 * kept while an open handle still holds it (its reference count), so
 * a LOOKUP of a name it shows (ls -l's stat after the readdir) takes
 * the FID from it instead of fetching the whole directory again, which
 * the churn would overtake again (fuse_ops.c). Dropped once a listing
 * of the directory is stored, when this client changes the directory
 * (mfetch_dir_mutated()), when events were missed, and once the handle
 * is released (mfetch_held_release()). Loop thread. */
void mfetch_hold_late(struct mfetch *mf, struct vc_dir *d);
/* This client changed directory @fid (or the server refused a change
 * of it): the held and late listings of @fid were taken before and
 * still show the old names, so they go. Local changes ahead must win
 * over an older listing, also once they are acknowledged (then
 * mcache_ahead() is false again). Loop thread. */
void mfetch_dir_mutated(struct mfetch *mf, const struct fid *fid);
/* A late listing @d, asked for after a LOOKUP began, answers it: if it
 * is of the held directory, it answers that handle's next LOOKUPs for
 * another few seconds (the held one aged out, mfetch_held_dir()).
 * Loop thread. */
void mfetch_held_renew(struct mfetch *mf, struct vc_dir *d);
/* A directory handle was released: free the held listing if no handle
 * holds it any more (a big one is megabytes). Loop thread. */
void mfetch_held_release(struct mfetch *mf);
/* Forget the held listing whatever holds it (events missed, a
 * disconnect, fs flush). Loop thread. */
void mfetch_drop_held(struct mfetch *mf);
/* The listing held for @fid (mfetch_hold_late()), for a few seconds
 * after it came: -ESTALE when older (fetch the directory: its late
 * listing renews it, mfetch_held_renew()): 0 and a reference in
 * *@out, or -ENOENT. Loop thread. */
int mfetch_held_dir(struct mfetch *mf, const struct fid *fid,
		    struct vc_dir **out);
/* Listing requests sent so far (any thread; 0 without @mf): read when a
 * FUSE request parks, for mfetch_late_dir(). */
uint64_t mfetch_send_seq(struct mfetch *mf);
void mfetch_want_link(struct mfetch *mf, const struct fid *fid, mfetch_cb cb,
		      void *arg);
void mfetch_want_xattrs(struct mfetch *mf, const struct fid *fid, mfetch_cb cb,
			void *arg);

/* Loop thread: bulk getattr of every FID in the metadata cache, applying
 * what changed (after a reset or a broken event stream). */
void mfetch_revalidate_all(struct mfetch *mf);

/* Loop thread: apply one event of the stream. */
void mfetch_event(struct mfetch *mf, const struct proto_event *e);

/* The reply to our change of @fid covered every event up to @event_seq
 * (proto_op_result.event_seq): an attr event about @fid at or below it
 * needs no refetch. Loop thread. */
void mfetch_own_change(struct mfetch *mf, const struct fid *fid,
		       uint64_t event_seq);
/* A directory changed in a way no local edit describes: store @a and
 * fetch the listing again. */
void mfetch_dir_changed(struct mfetch *mf, const struct proto_attr *a);
/* mcache_local_dir(), and the refetch it may ask for. */
void mfetch_local_dir(struct mfetch *mf, const struct proto_attr *dir_after,
		      const char *del, const char *add,
		      const struct proto_attr *add_attr);

#endif /* CAIRN_CM_MFETCH_H */
