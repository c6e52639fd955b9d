/*
 * dstream.h - a directory listing as its pages come, for the READDIRs of
 * an OPENDIR that does not wait for the last page.
 *
 * A listing of 100,000 entries comes in 25 pages; the cached listing
 * (vc_dir) exists only once the last one is in, sorted and checked. Until
 * then an OPENDIR of a big directory would wait for all of it, and `ls`
 * could only start its own work (a third of the time of a cold `ls -f`)
 * after ours. A dstream holds the names, FIDs and types of the pages so
 * far in the order they came, and READDIR reads entry i of it as soon as
 * it is there: offsets are indexes in that order, so they stay valid for
 * the handle whatever happens next.
 *
 * When the directory changes mid-way, the listing starts over
 * (mfetch.c): the names already given stay, and a name of the new pages
 * that was given already is not given again (dstream_restart()), so a
 * reader sees every name that was there all along exactly once, as
 * readdir(3) asks; a name added or removed meanwhile may show or not.
 *
 * Threads: the loop appends (dstream_add(), dstream_restart(),
 * dstream_end()) and keeps the waiters (dstream_wait(), dstream_wake());
 * FUSE workers read (dstream_ent()) and drop references from any thread.
 * One mutex guards the entries.
 *
 * Layer rule: FUSE-free and network-free; includes common/ only.
 */
#ifndef CAIRN_CM_DSTREAM_H
#define CAIRN_CM_DSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/fid.h"
#include "common/proto.h"

struct dstream;

/* A new, empty stream of directory @dir's listing, one reference. NULL
 * without memory. */
struct dstream *dstream_new(const struct fid *dir);
void dstream_ref(struct dstream *s);
/* Drop a reference; the last frees it. NULL is fine. */
void dstream_put(struct dstream *s);
const struct fid *dstream_fid(const struct dstream *s);

/* Loop: @n entries of the next page, in order. After a restart, names
 * given before are skipped. @return 0 or -ENOMEM (then the stream has
 * failed: dstream_end(-ENOMEM) is done here). */
int dstream_add(struct dstream *s, const struct proto_dirent *ents,
		size_t n);
/* Loop: the listing starts over from its first page. */
void dstream_restart(struct dstream *s);
/* Loop: no more pages: @err 0 (every page is in) or -errno (the listing
 * failed; READDIRs past what came get it). Once only; later calls are
 * ignored. */
void dstream_end(struct dstream *s, int err);

/* Loop: keep @obj until the stream is freed, then @release(@obj) (a
 * listing that must live as long as a handle reads the stream). One at
 * a time: a second replaces (and releases) the first. */
void dstream_keep(struct dstream *s, void *obj, void (*release)(void *));

/* Any thread: entry @i. @return 1 with its name (NUL-terminated, into
 * @name of @cap bytes: NAME_MAX + 1 is always enough), FID and type; 0
 * when it has not come yet; -1 past the end of a complete listing; or
 * -errno of a failed one. */
int dstream_ent(struct dstream *s, size_t i, char *name, size_t cap,
		struct fid *fid, uint8_t *type);
/* Entries so far. */
size_t dstream_count(struct dstream *s);

typedef void (*dstream_cb)(void *arg, int err);
/* Loop: call @cb(@arg, 0) once entry @i has come or the stream ended
 * (from dstream_wake()). @return 0; 1 when it has already (not
 * registered: the caller goes on); -ENOMEM (not registered). Whoever
 * ends a stream wakes it after (no waiter outlives the end). */
int dstream_wait(struct dstream *s, size_t i, dstream_cb cb, void *arg);
/* Loop: run the waiters whose entry came (or all, once ended). */
void dstream_wake(struct dstream *s);

#endif /* CAIRN_CM_DSTREAM_H */
