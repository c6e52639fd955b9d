/*
 * pin.h - pins for cairnd (fs pin, unpin, pins): objects whose metadata and
 * every chunk are fetched ahead and never culled, so a user can go offline
 * with them.
 *
 * Layer rule: FUSE-free (libcm). It drives mfetch.c and fetch.c; fetch.c
 * asks it (pin_covers()) whether a chunk it stores must be stored pinned.
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
 *    the pin, then fetches every missing chunk with at most cfg.max_parallel
 *    transfers. Background jobs (restart, events, flush) do the same
 *    without a caller and without the space check.
 *
 * Threads: everything here runs on the loop thread; the state has no lock.
 */
#ifndef CAIRN_CM_PIN_H
#define CAIRN_CM_PIN_H

#include <stdbool.h>

#include "cm/cm.h"

struct ctl_call;
struct ctl_peer;
struct proto_event;

/* Is @fid in the pinned set? Loop thread; false before pin_restore(). */
bool pin_covers(struct cm *cm, const struct fid *fid);

/* Load the pin records from the vc tdb and start a background job per
 * record (fetching what is missing, pinning what is cached). Loop thread,
 * once, after cm->vc is open. @return 0 or -errno (logged). */
int pin_restore(struct cm *cm);

/* Free the pin state and every job left. Loop thread, at shutdown, after
 * fetch_stop() and mfetch_free() (so no callback into a job can follow). */
void pin_free(struct cm *cm);

/* An event from the server (after mfetch.c applied it): a changed pinned
 * file is fetched again, a changed pinned directory rescanned, a gone
 * object leaves the set. Loop thread. */
void pin_event(struct cm *cm, const struct proto_event *ev);

/* Metadata learnt outside the event stream (a bulk revalidation after the
 * stream broke, a listing) says pinned @a's data version changed: fetch
 * it again (a file) or rescan it (a directory) in the background, as for
 * an event. Loop thread; the job starts on the next loop turn. */
void pin_changed(struct cm *cm, const struct proto_attr *a);

/* If @fid is pinned, fetch its missing chunks again in the background
 * (after fs flush). @return true if it is pinned. Loop thread. */
bool pin_refetch(struct cm *cm, const struct fid *fid);

/*
 * Control handlers (cm_ctl.c resolved the path and checked R_OK):
 * pin_ctl_pin() answers @call when the pin is fetched (or refused);
 * @attr is the object's, @path its mount-relative path. The others answer
 * at once. All take over @call.
 * A pin belongs to the user who made it (root for records written before
 * owners were kept): pin_ctl_unpin() removes only @peer's pins unless
 * @peer is root; naming another user's pin without recursive is EPERM,
 * with recursive others' pins stay (counted as "pins_kept").
 */
void pin_ctl_pin(struct cm *cm, struct ctl_call *call,
		 const struct ctl_peer *peer, const struct proto_attr *attr,
		 const char *path, bool recursive);
void pin_ctl_unpin(struct cm *cm, struct ctl_call *call,
		   const struct ctl_peer *peer, const struct proto_attr *attr,
		   const char *path, bool recursive);
/* @under: only pins at or under this path (NULL or "." = all). @peer sees
 * its own pins and those whose path the mount would show it. */
void pin_ctl_pins(struct cm *cm, struct ctl_call *call,
		  const struct ctl_peer *peer, const char *under);

#endif /* CAIRN_CM_PIN_H */
