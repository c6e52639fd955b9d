/*
 * meta.h - metadata for cairnd: what the caches hold (any thread) and the
 * asynchronous fetches that fill them (loop thread): volume info, whole
 * directory listings (readdirplus), bulk getattr, symlink targets, xattrs;
 * plus the one place where news about an object (a fresh attribute, an
 * event) turns into dropped cache entries and kernel invalidations.
 *
 * Layer rule: FUSE-free (libcm).
 *
 * Freshness rules (doc/cm.md "Freshness"):
 *  - a listing is current iff its DV equals the directory's cached DV;
 *  - chunks are current iff tagged with the file's cached DV;
 *  - xattrs are current iff stamped with the object's cached ctime;
 *  - symlink targets never change;
 *  - cached attributes are trusted until an event, a 410, or a bulk
 *    revalidation says otherwise.
 *
 * Requests for the same thing are shared: one transfer per (kind, FID),
 * and attribute requests of one loop iteration go out as one POST getattr
 * of up to PROTO_GETATTR_MAX FIDs.
 */
#ifndef CAIRN_CM_META_H
#define CAIRN_CM_META_H

#include <stdint.h>

#include "cm/cm.h"

struct vc_dir;
struct proto_event;

/* Completion of a want: @err is 0 (the cache now holds it) or a negative
 * errno (-ENOENT: the object is gone; -EIO, -ETIMEDOUT: no answer).
 * Runs on the loop thread. */
typedef void (*meta_cb)(struct cm *cm, void *arg, int err);

/* Loop thread: set up / tear down (pending wants get -ECANCELED).
 * @hooks (may be NULL) is what the modules above add to a read (cm.h). */
int meta_new(struct cm *cm, const struct cm_meta_hooks *hooks);
void meta_free(struct cm *cm);

/* Loop thread: fetch into the caches, then call @cb (may be NULL). */
void meta_want_attr(struct cm *cm, const struct fid *fid, meta_cb cb,
		    void *arg);
void meta_want_dir(struct cm *cm, const struct fid *fid, meta_cb cb,
		   void *arg);
void meta_want_link(struct cm *cm, const struct fid *fid, meta_cb cb,
		    void *arg);
void meta_want_xattrs(struct cm *cm, const struct fid *fid, meta_cb cb,
		      void *arg);

/* Loop thread: bulk getattr of every FID in the metadata cache, applying
 * what changed (after a reset or a broken event stream). */
void meta_revalidate_all(struct cm *cm);

/* Loop thread: apply one event of the stream. */
void meta_event(struct cm *cm, const struct proto_event *e);

/*
 * Disconnected changes (local.c). A change made without the server gets
 * a *local* DV (CM_DV_LOCAL set: never a server DV, so nothing cached with
 * one is ever taken for the server's; after reintegration a bulk
 * revalidation replaces them).
 * meta_local_dv(): a fresh local DV. meta_offline_attr(): store @a as the
 * cached attributes (kernel told). meta_offline_dir(): edit the cached
 * listing of @dir (entry @del removed, @add of @add_attr added or
 * replaced), give the directory a local DV and now as mtime, its nlink
 * moved by @nlink_delta; *@dir_after its new attributes. @return 0, or
 * -ENOENT when the listing is not cached (nothing changed).
 * meta_offline_newdir(): an empty listing for a directory made offline.
 */
uint64_t meta_local_dv(void);
void meta_offline_attr(struct cm *cm, const struct proto_attr *a);
int meta_offline_dir(struct cm *cm, const struct fid *dir, const char *del,
		     const char *add, const struct proto_attr *add_attr,
		     int nlink_delta, struct proto_attr *dir_after);
int meta_offline_newdir(struct cm *cm, const struct proto_attr *a);

/* Our idea of @fid's content was wrong (a conflict dropped local
 * changes): drop its attributes and the kernel's pages of it. */
void meta_drop_file(struct cm *cm, const struct fid *fid);

/* Loop thread: the server said @fid's chunk at DV is stale (410): forget
 * the cached attributes so the next use fetches them. */
void meta_drop_attr(struct cm *cm, const struct fid *fid);
/* Forget every cached record of @fid: attributes, listing, symlink
 * target, xattrs (pins stay). The next access fetches them. Loop thread. */
void meta_forget(struct cm *cm, const struct fid *fid);

/*
 * Our own changes, as the server's reply to them says (loop thread):
 * meta_local_attr() stores an object's new attributes (dropping chunks of
 * older DVs, telling the kernel what changed); meta_local_dir() edits the
 * cached listing of a directory the server changed from DV d-1 to
 * @dir_after->dv = d (entry @del removed, @add of @add_attr added or
 * replaced; either may be NULL) without fetching it. If the listing we
 * hold is not at d-1 (someone else changed it too) it is fetched again.
 */
void meta_local_attr(struct cm *cm, const struct proto_attr *a);

/* The reply to our change of @fid covered every event up to @event_seq
 * (proto_op_result.event_seq): an attr event about @fid at or below it
 * needs no refetch. Loop thread. */
void meta_own_change(struct cm *cm, const struct fid *fid,
		     uint64_t event_seq);
/* A directory changed in a way no local edit describes: store @a and
 * fetch the listing again. */
void meta_dir_changed(struct cm *cm, const struct proto_attr *a);
/* Our own store made @a current: the data we hold (chunks, the kernel's
 * pages) is that of @a, so only attributes are refreshed. */
void meta_stored_attr(struct cm *cm, const struct proto_attr *a);
void meta_local_dir(struct cm *cm, const struct proto_attr *dir_after,
		    const char *del, const char *add,
		    const struct proto_attr *add_attr);

/*
 * Any thread: the cached attributes of @fid (inode entry first, then the
 * tdb; a tdb hit is copied into the entry). @return 0 or -ENOENT.
 */
int meta_cached_attr(struct cm *cm, const struct fid *fid,
		     struct proto_attr *out);
/*
 * Any thread: a reference to the current listing of directory @fid (drop
 * it with vc_dir_put()). @return 0, -ENOENT (not cached, or stale: its DV
 * is not the directory's), -ENOTDIR.
 */
int meta_cached_dir(struct cm *cm, const struct fid *fid, struct vc_dir **out);

#endif /* CAIRN_CM_META_H */
