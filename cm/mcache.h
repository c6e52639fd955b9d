/*
 * mcache.h - the cached metadata of cairnd (level 2 of doc/cm.md
 * "Levels"): attributes and listings as the inode table and the metadata
 * cache (vc) hold them, the edits our own changes and disconnected
 * operation make to them, and the kernel notifications a change calls
 * for. It fetches nothing (mfetch.h does): a miss is -ENOENT.
 *
 * Layer rule: FUSE-free (libcm); includes only level 0-1 headers.
 *
 * Freshness rules (doc/cm.md "Freshness"):
 *  - a listing is current iff its DV equals the directory's cached DV;
 *  - chunks are current iff tagged with the file's cached DV;
 *  - xattrs are current iff stamped with the object's cached ctime;
 *  - symlink targets never change;
 *  - cached attributes are trusted until an event, a 410, or a bulk
 *    revalidation says otherwise.
 *
 * Lifetime: built after the stores are open, freed after the FUSE
 * threads are gone (cm_daemon_close()), since they read through it.
 * Threads: the lookups (mcache_attr(), mcache_dir()) run on any thread;
 * everything that changes the caches on the loop thread.
 */
#ifndef CAIRN_CM_MCACHE_H
#define CAIRN_CM_MCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/fid.h"
#include "common/proto.h"

struct cm_loop;
struct cm_stats;
struct cs_store;
struct ino_table;
struct vc;
struct vc_dir;
struct mcache;

/* DVs made while disconnected have this bit; server DVs never do. */
#define CM_DV_LOCAL (1ull << 63)

/*
 * What the modules above (write states, pins) add to the cached
 * metadata, given to mcache_new() by daemon.c, so this module includes
 * none of them. Never cleared: FUSE threads may still read while the
 * loop's modules are torn down. NULL-safe: a NULL hook is skipped (no
 * overlay, false).
 */
struct mcache_hooks {
	/* Write state (wb): put the local size and times of a file being
	 * written over @a; attributes of an orphan (open, unlinked) @fid
	 * (0 or -ENOENT); does @fid have a write state (its chunks stay). */
	void (*overlay)(void *arg, struct proto_attr *a);
	int (*orphan_attr)(void *arg, const struct fid *fid,
			   struct proto_attr *out);
	bool (*active)(void *arg, const struct fid *fid);
	/* Pins: an object's DV changed without an event (a bulk
	 * revalidation, a listing). */
	void (*dv_changed)(void *arg, const struct proto_attr *a);
	/* Writeback and reintegration (replay): is what we cache of @fid
	 * ahead of the server (changes of it logged, not yet acknowledged)?
	 * Then the server's news about it does not replace it (see
	 * mcache_ahead()). */
	bool (*ahead)(void *arg, const struct fid *fid);
	/* Disconnected (the mode): nothing is fetched, the cache is all
	 * there is (mcache_dir() serves a stored listing older or newer
	 * than its directory's attributes). */
	bool (*disconnected)(void *arg);
	void *arg;
};

/* The cached metadata over @ino, @vc and @cs; kernel notifications go
 * through @loop's kernel ops (read at each call: the FUSE front plugs
 * them in later), counters to @st. @hooks is copied (may be NULL).
 * @return the handle, or NULL + errno. */
struct mcache *mcache_new(struct ino_table *ino, struct vc *vc,
			  struct cs_store *cs, struct cm_loop *loop,
			  struct cm_stats *st,
			  const struct mcache_hooks *hooks);
void mcache_free(struct mcache *mc);

/*
 * Any thread: the cached attributes of @fid (inode entry first, then the
 * tdb; a tdb hit is copied into the entry). @return 0 or -ENOENT.
 */
int mcache_attr(struct mcache *mc, const struct fid *fid,
		struct proto_attr *out);
/*
 * Any thread: mcache_attr(), and in *@server whether *@out is the
 * server's own as it sent it (ino_ent.attr_server: from the entry, or
 * from the tdb record's VC_ATTR_SERVER; not when a write state overlaid
 * it). For a caller that puts *@out into an inode entry itself (a
 * LOOKUP), so the entry says what the cache knows of it.
 */
int mcache_attr_src(struct mcache *mc, const struct fid *fid,
		    struct proto_attr *out, bool *server);
/*
 * Any thread: a reference to the current listing of directory @fid (drop
 * it with vc_dir_put()). @return 0, -ENOENT (not cached, or stale: its DV
 * is not the directory's), -ENOTDIR.
 */
int mcache_dir(struct mcache *mc, const struct fid *fid, struct vc_dir **out);

/*
 * Is the cached state of @fid ahead of the server (the ahead hook)? Then
 * the server's news about it is held back: mcache_apply() (when
 * attributes are cached), mcache_local_attr(), mcache_stored_attr(),
 * mcache_local_dir(), mcache_gone() and mcache_put_listing() (when a
 * listing is cached) leave the cache as it is, and mfetch drops events
 * about it. replay.c refreshes the object from the server once its last
 * logged change is acknowledged (doc/cm.md "Write modes"). Loop thread.
 */
bool mcache_ahead(struct mcache *mc, const struct fid *fid);

/* Loop thread: tell the kernel to drop the attributes (@off < 0) or the
 * attributes and pages from @off (@len 0: to the end) of inode @ino
 * (counted as an invalidation; nothing for @ino 0). */
void mcache_inval_inode(struct mcache *mc, uint64_t ino, int64_t off,
			int64_t len);

/*
 * Loop thread: a fresh attribute from the server. Compare with what we
 * held and drop what it makes stale: chunks below the new DV, the
 * kernel's page cache and attributes. With @store it goes to the tdb.
 * @return true when @a is a directory the kernel knows whose DV moved and
 * the news did not come with its listing (@from_listing): the caller
 * fetches the listing (mfetch), so entry invalidations go out within the
 * second.
 */
bool mcache_apply(struct mcache *mc, const struct proto_attr *a, bool store,
		  bool from_listing);
/* The same for attributes the server built some time before they came
 * (a listing's entries, a getattr's answer): when the cached server DV of
 * the object is already past @a's (our own store was answered
 * meanwhile), @a is old and nothing is changed; *@taken says which. */
bool mcache_apply_fetched(struct mcache *mc, const struct proto_attr *a,
			  bool store, bool from_listing, bool *taken);
/* Is @a, fetched, older than what is cached of its object (the test of
 * mcache_apply_fetched(), nothing changed)? A listing whose directory
 * is older than an answer of ours is not stored (mfetch.c dir_done()). */
bool mcache_fetched_older(struct mcache *mc, const struct proto_attr *a);
/* A listing's page of @n entries is about to be applied entry by entry
 * (mcache_apply_fetched(), then mcache_store_attrs()): bring the places
 * where their pending attributes are looked for into the CPU's cache,
 * many misses at once instead of one an entry (mcache.c "Pending
 * attributes"). Changes nothing. */
void mcache_prefetch_ents(struct mcache *mc, const struct proto_dirent *ents,
			  size_t n);
/* Loop thread: the object is gone from the server: drop everything about
 * it (its chunks too, unless it has a write state). */
void mcache_gone(struct mcache *mc, const struct fid *fid);
/* Loop thread: a fetched listing @nw (our reference, kept; its entries'
 * attributes applied and kept page by page, mcache_store_attrs()) of
 * the directory with attributes @dir becomes the cached one; the kernel
 * hears which names changed. */
void mcache_put_listing(struct mcache *mc, const struct proto_attr *dir,
			struct vc_dir *nw);
/* Store @n attributes (one page of a listing): kept pending in memory
 * (lookups see them) until mcache_sync_attrs() writes them to the cache
 * file (mcache.c "Pending attributes"). */
void mcache_store_attrs(struct mcache *mc, const struct proto_attr *a,
			size_t n);
/* Write up to @max pending attributes to the cache file (SIZE_MAX: all;
 * before iterating the file's records, and at mcache_free()). Any
 * thread. @return how many are still pending. */
size_t mcache_sync_attrs(struct mcache *mc, size_t max);
/* Write @fid's pending attributes, if any, to the cache file now: news
 * found already applied by them (an event skipped) is only marked as
 * applied (the saved event sequence) once what it says is durable. Any
 * thread. */
void mcache_sync_attr(struct mcache *mc, const struct fid *fid);

/* Our idea of @fid's content was wrong (a conflict dropped local
 * changes): drop its attributes and the kernel's pages of it. */
void mcache_drop_file(struct mcache *mc, const struct fid *fid);
/* Loop thread: the server said @fid's chunk at DV is stale (410): forget
 * the cached attributes so the next use fetches them. */
void mcache_drop_attr(struct mcache *mc, const struct fid *fid);
/* Forget every cached record of @fid: attributes, listing, symlink
 * target, xattrs (pins stay). The next access fetches them. Loop thread. */
void mcache_forget(struct mcache *mc, const struct fid *fid);

/*
 * Our own changes, as the server's reply to them says (loop thread):
 * mcache_local_attr() stores an object's new attributes (dropping chunks
 * of older DVs, telling the kernel what changed); mcache_stored_attr():
 * our own store made @a current: the data we hold (chunks, the kernel's
 * pages) is that of @a, so only attributes are refreshed.
 * mcache_local_dir() edits the cached listing of a directory the server
 * changed from DV d-1 to @dir_after->dv = d (entry @del removed, @add of
 * @add_attr added or replaced; either may be NULL) without fetching it.
 * If the listing we hold is not at d-1 (someone else changed it too) the
 * attributes are applied as mcache_apply() does and its return says
 * whether to fetch the listing again (mfetch_local_dir() does).
 */
void mcache_local_attr(struct mcache *mc, const struct proto_attr *a);
void mcache_stored_attr(struct mcache *mc, const struct proto_attr *a);
/* The same, for a caller that asked mcache_ahead() for @a's FID already
 * on this thread (@ahead its answer): not asked again. */
void mcache_stored_attr_known(struct mcache *mc, const struct proto_attr *a,
			      bool ahead);
bool mcache_local_dir(struct mcache *mc, const struct proto_attr *dir_after,
		      const char *del, const char *add,
		      const struct proto_attr *add_attr);

/*
 * A change of @fid the server took (its record left the replay log, the
 * DV map kept the @dv it gave) whose reply never reached the caches: a
 * kill -9 between the record's removal and the reply's application
 * (replay.c, at the start: the map of <cache>/replay-dv). If the cached
 * attributes (as stored, no write-state overlay) still carry a local DV,
 * they move to @dv, the server's, as the reply would have moved them;
 * the rest of the local view stays until the server's is fetched (a
 * directory's listing at the local DV is then not current: fetched).
 * Loop thread. @return whether they moved.
 */
bool mcache_settle_local_dv(struct mcache *mc, const struct fid *fid,
			    uint64_t dv);

/* Any thread: a late create (mut_hold_create()): add @add (@add_attr)
 * to the cached listing of @dir, keeping its DV, so the server's answer
 * (DV + 1) edits it as usual. @return 0, -ENOENT (listing not cached or
 * not current), -EAGAIN (a local DV: disconnected changes). */
int mcache_late_dir(struct mcache *mc, const struct fid *dir, const char *add,
		    const struct proto_attr *add_attr);

/* Tell the kernel to forget what it knows of @name in directory @dir
 * (a negative entry too). Any thread. */
void mcache_inval_name(struct mcache *mc, const struct fid *dir,
		       const char *name);

/*
 * Disconnected changes (local.c). A change made without the server gets
 * a *local* DV (CM_DV_LOCAL set: never a server DV, so nothing cached with
 * one is ever taken for the server's; after reintegration a bulk
 * revalidation replaces them).
 * mcache_local_dv(): a fresh local DV. mcache_offline_attr(): store @a as
 * the cached attributes (kernel told). mcache_offline_dir(): edit the
 * cached listing of @dir (entry @del removed, @add of @add_attr added or
 * replaced), give the directory a local DV and now as mtime, its nlink
 * moved by @nlink_delta; *@dir_after its new attributes. @return 0, or
 * -ENOENT when the listing is not cached (nothing changed).
 * mcache_offline_newdir(): an empty listing for a directory made offline.
 */
uint64_t mcache_local_dv(struct mcache *mc);
void mcache_offline_attr(struct mcache *mc, const struct proto_attr *a);
int mcache_offline_dir(struct mcache *mc, const struct fid *dir,
		       const char *del, const char *add,
		       const struct proto_attr *add_attr, int nlink_delta,
		       struct proto_attr *dir_after);
int mcache_offline_newdir(struct mcache *mc, const struct proto_attr *a);

#endif /* CAIRN_CM_MCACHE_H */
