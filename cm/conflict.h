/*
 * conflict.h - conflicts of the write half, part of the write-back module
 * (wb.h; level 5 of doc/cm.md "Levels").
 *
 * Conflict records: what a refused change of reintegration is kept with
 * in the replay log (rlog_conflict_add()), for fs conflicts and fs
 * resolve. While disconnected, the server's attributes of an object before
 * our first change of it are noted in <cache>/replay-base, and the path a
 * logged change is about in <cache>/replay-paths (the names may be gone by
 * the time it is refused); both files are removed once a reintegration
 * leaves no conflict.
 *
 * Conflict copies: a store refused because the file changed on the server
 * keeps both versions: the server's under the name, ours beside it as
 * NAME.conflict-HOST-YYYYMMDD-HHMMSS (conflict.c says more).
 *
 * Layer rule: FUSE-free (libcm). Loop thread.
 */
#ifndef CAIRN_CM_CONFLICT_H
#define CAIRN_CM_CONFLICT_H

#include <stddef.h>
#include <stdint.h>

#include "cm/rlog.h"
#include "common/fid.h"
#include "common/proto.h"

struct wb;

/* Remember what the server had of @fid before its first offline change
 * (@known, or the cached attributes; once per FID). */
void conflict_note_base(struct wb *wb, const struct fid *fid,
			const struct proto_attr *known);
/* What was noted of @fid. @return 0 or -ENOENT. */
int conflict_base_find(struct wb *wb, const struct fid *fid,
		       struct proto_attr *out);
/* Remember the path record @seq (just appended, @op) is about. */
void conflict_note_path(struct wb *wb, uint64_t seq, const struct proto_op *op);
/* The path noted for record @seq. @return 0 or -ENOENT. */
int conflict_path_noted(struct wb *wb, uint64_t seq, char *buf, size_t len);
/* The path @op is about (the object, or the name it makes), from the
 * names the inode table and the write states know. @return 0, or -ENOENT
 * when @buf holds a FID or a cut path rather than a whole mount path. */
int conflict_op_path(struct wb *wb, const struct proto_op *op, char *buf,
		     size_t len);
/* The kind of conflict a refusal @err of @op is. */
enum rlog_conflict_kind conflict_kind(const struct proto_op *op, int err);
/* The log holds no conflict any more: forget the noted bases and paths. */
void conflict_records_clear(struct wb *wb);

/* Reintegration: a logged store of @fid was refused (stale or gone):
 * save the local version as a conflict copy beside the file (as for a
 * connected conflict), drop the local changes, and call @done with 0 and
 * the copy's name, or an error. */
void wb_conflict_copy(struct wb *wb, const struct fid *fid,
		      void (*done)(void *, int, const char *), void *arg);

#endif /* CAIRN_CM_CONFLICT_H */
