/*
 * wb_rec.h - the record of one write state in dirty.tdb (wb.c): explicit
 * little-endian fields, a version byte and a CRC32C, like the records of
 * rlog.tdb, so a record written on one machine reads the same on another
 * and a damaged one is refused instead of believed.
 *
 * Version 2 (written now), 76 + namelen bytes:
 *   0  u8     version (2)
 *   1  u8     flags (WB_REC_LOGGED)
 *   2  le16   namelen (<= PROTO_NAME_MAX)
 *   4  le64   base_dv, srv_size, size, zero_from
 *   36 le64   mtime_ns, ctime_ns (two's complement)
 *   52 le32   parent.vol
 *   56 16     parent.oid
 *   72 namelen  name (no NUL)
 *   .. le32   CRC32C of every byte before it
 * Version 3 (written when a field below is in use; else version 2, so an
 * older cairnd still reads what it knows), 108 + namelen bytes: version 2's
 * fields to offset 72, then
 *   72 le32   sa_mask (PROTO_SA_MODE|UID|GID|ATIME|MTIME: attributes set
 *             while the file was being written, sent with its store)
 *   76 le32   sa_mode, sa_uid, sa_gid
 *   88 le64   sa_atime_ns, sa_mtime_ns
 *   104 namelen name, then the CRC32C
 *   and flag WB_REC_CREATED: the file's create is a late one (mut.h):
 *   base_dv 0 until the server answered it.
 * Version 1 (before issue #13) was the host-order packed struct of
 * wb_rec.c; it is still read, and wb.c rewrites it as version 2 at once.
 *
 * Pure functions; no tdb, no lock (level 0 of doc/cm.md).
 */
#ifndef CAIRN_CM_WB_REC_H
#define CAIRN_CM_WB_REC_H

#include <stddef.h>
#include <stdint.h>

#include "common/fid.h"

#define WB_REC_VERSION 3
#define WB_REC_LOGGED  1 /* the changes are a STORE record of the log */
#define WB_REC_CREATED 2 /* created late: base_dv 0 stands for its DV */

struct wb_rec {
	uint8_t flags;
	uint64_t base_dv, srv_size, size, zero_from;
	int64_t mtime_ns, ctime_ns;
	struct fid parent;
	const char *name; /* decode: points into the buffer; not NUL-ended */
	size_t namelen;
	uint32_t sa_mask, sa_mode, sa_uid, sa_gid;
	int64_t sa_atime_ns, sa_mtime_ns;
};

/* Encode @r into a new buffer (free() it); its length in *@len. @return
 * NULL with errno ENOMEM, or EINVAL for a name longer than
 * PROTO_NAME_MAX. */
void *wb_rec_encode(const struct wb_rec *r, size_t *len);

/*
 * Decode @len bytes at @v into @r (r->name points into @v). @return 0 (a
 * current record), 1 (a version-1 record: right, but to be rewritten),
 * -EUCLEAN (damaged: bad length, checksum or field) or -EPROTONOSUPPORT
 * (a version this cairnd does not know).
 */
int wb_rec_decode(const void *v, size_t len, struct wb_rec *r);

#endif /* CAIRN_CM_WB_REC_H */
