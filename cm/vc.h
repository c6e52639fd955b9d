/*
 * vc.h - cairnd's persistent metadata cache: attributes, whole directory
 * listings, symlink targets, extended attributes and a few volume-wide
 * values, kept in one tdb file in the cache directory so that a restarted
 * cairnd serves them without asking the server.
 *
 * Layer rule: FUSE-free and network-free (libcm). It includes common/ only.
 *
 * Invariants:
 *  1. Everything is keyed by FID; a record says nothing about whether it is
 *     current. Freshness is the caller's business (the event stream and bulk
 *     getattr revalidation, doc/cm.md "Freshness").
 *  2. Every record starts with a format byte (VC_REC_VERSION); a record of
 *     another version, or one that does not parse, reads as a miss
 *     (-ENOENT) and is deleted, never trusted. 'A', 'D' and 'G' records
 *     carry a CRC32C of their payload (vc.c, "Checksummed records"), so
 *     one torn by a kill during an overwrite in place is caught.
 *  3. A directory listing is stored as a 'D' record and pages of up to
 *     512 entries: the new pages first, then the record naming them, then
 *     the removal of the pages it no longer names, so a process killed
 *     half-way leaves either the old listing or the new one. A listing
 *     whose record names a missing or damaged page is dropped whole.
 *  4. The file belongs to one volume: vc_open() with another volume id
 *     empties it.
 *
 * Threads: every function may be called from any thread. One mutex guards
 * the tdb handle (tdb is not thread-safe within a process).
 *
 * Errors: 0 or a negative errno; -ENOENT for a miss.
 */
#ifndef CAIRN_CM_VC_H
#define CAIRN_CM_VC_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/fid.h"
#include "common/proto.h"

/* tdb hash chains of a new file (an existing one keeps its own; tdb never
 * rehashes): about one chain per cached object up to 1,048,573, 4 MiB of
 * table. A miss walks its whole chain and a hit half of it, each record a
 * cache miss in a file of ~250 B an object: at 131,071 chains (sessions
 * 8-12) a cache of 1,000,000 objects had chains of ~8, and the lookups and
 * stores of a cold walk's attributes took 38 % of cairnd's CPU (doc/cm.md,
 * "Whole-volume rows at 1,000,000"). */
#define VC_HASH_SIZE 1048573
/* The hash chains of metadata files made (or rebuilt) from now on by this
 * process, 0 for VC_HASH_SIZE. For the unit tests, which make hundreds
 * of small caches: a 4 MiB table each tripled their time (ThreadSanitizer
 * included). */
void vc_set_new_hash_size(unsigned n);

#define VC_REC_VERSION 1
/* 'A' records of sockets and devices: version 1 plus the rdev (vc.c);
 * written by older cairnd, still read. */
#define VC_ATTR_VERSION 2
/* 'A' records as written now: a CRC32C, the attributes and the rdev. */
#define VC_ATTR_CRC_VERSION 3
/* 'D' records of listings stored in pages, without a CRC (older cairnd;
 * read, as is version 1, the whole listing in one record). */
#define VC_DIR_VERSION 2
/* 'D' records as written now: version 2 with a CRC32C. */
#define VC_DIR_CRC_VERSION 3
/* 'G' pages as written now: a CRC32C, then as version 1 (still read). */
#define VC_PAGE_VERSION 2
/* 'X' records as written now: a CRC32C, then as version 1 (still read). */
#define VC_XATTR_CRC_VERSION 2

struct vc;

/* One entry of a cached directory listing. */
struct vc_dirent {
	const char *name; /* points into the listing's name blob */
	uint16_t namelen;
	uint8_t type;	  /* enum proto_type */
	struct fid fid;
};

struct vc_seg; /* vc.c: a run of up to 512 entries in name order */

/*
 * An immutable snapshot of one directory listing, shared by reference:
 * readdir serves from the snapshot an opendir took, so a concurrent
 * refresh never changes offsets under a reader. Entries are in name
 * order (entry i is vc_dir_ent(d, i)), held in segments that snapshots
 * share: an edit copies one segment, not the listing (vc.c, "Listing
 * design"). Get a reference with vc_dir_get(), drop it with vc_dir_put().
 */
struct vc_dir {
	atomic_uint refcnt;
	struct fid fid;
	uint64_t dv;
	size_t n;	   /* entries */
	int64_t stored_ms; /* when it was last written to the tdb (edits) */
	bool unstored;	   /* made by a VC_E_NOSTORE edit: newer than the
			      file's listing (set before it is shared) */
	size_t nseg;	   /* vc.c: the segments, none of them empty */
	struct vc_seg **seg;
	size_t *first; /* index of each segment's first entry; [nseg] = n */
};
/* Entry @i (< d->n) of @d, in name order: O(log(n / 256)). The pointer
 * lives as long as the caller's reference on @d. */
const struct vc_dirent *vc_dir_ent(const struct vc_dir *d, size_t i);

/*
 * Open (creating if needed) the metadata cache file @path for volume
 * @vol_id with chunk size @chunk_size. A file made for another volume or
 * chunk size, or of another format, is emptied (it is a cache). @vol_id 0
 * means "whatever volume the file holds" (a disconnected start): a file
 * without a header then fails with ENOENT.
 * @return the handle, or NULL and errno.
 */
struct vc *vc_open(const char *path, uint32_t vol_id, uint32_t chunk_size);
/* Close; NULL is fine. */
void vc_close(struct vc *vc);

/* Attributes of @fid into *out. @return 0, -ENOENT. */
int vc_get_attr(struct vc *vc, const struct fid *fid, struct proto_attr *out);
int vc_put_attr(struct vc *vc, const struct proto_attr *a);
/* Store many attributes under one lock, each record alone (no
 * transaction: a killed process leaves some stored, each whole). */
int vc_put_attrs(struct vc *vc, const struct proto_attr *a, size_t n);

/* What an 'A' record says of its attributes besides them (a byte after
 * the rdev; vc.c). VC_ATTR_SERVER: they are the server's own, as it sent
 * them (an answer, a fetch, a listing), so their ctime is the server's
 * clock and orders them against other attributes of the server at the
 * same DV (mcache.c, fetched_older()). Without it nothing is known (our
 * own making, or a record of an older cairnd). */
#define VC_ATTR_SERVER 0x01u
/* vc_get_attr() that also gives the record's flags (0 for a record
 * without them) in *@flags. */
int vc_get_attr_flags(struct vc *vc, const struct fid *fid,
		      struct proto_attr *out, unsigned *flags);
/* vc_put_attrs() with @flags in every record; vc_put_attr(),
 * vc_put_attrs(), vc_put_dir() and vc_put_listing() write 0. */
int vc_put_attrs_flags(struct vc *vc, const struct proto_attr *a, size_t n,
		       unsigned flags);

/* Drop every record of @fid (attributes, listing, link, xattrs). */
int vc_forget(struct vc *vc, const struct fid *fid);
/* Drop only the listing / only the xattrs / only the attributes. */
int vc_del_dir(struct vc *vc, const struct fid *fid);
int vc_del_xattrs(struct vc *vc, const struct fid *fid);
int vc_del_attr(struct vc *vc, const struct fid *fid);

/*
 * Store a directory listing as the server sent it: the listing, the
 * directory's attributes and every entry's attributes, in one transaction.
 * @return 0 or -errno.
 */
int vc_put_dir(struct vc *vc, const struct proto_dir *d);
/*
 * Load the listing of @fid as a new snapshot (refcount 1) into *out; the
 * caller drops it with vc_dir_put(). @return 0, -ENOENT, -ENOMEM.
 */
int vc_get_dir(struct vc *vc, const struct fid *fid, struct vc_dir **out);
/*
 * A local change to a listing (our own create, unlink, rename ...): the
 * listing @old with entry @del removed and entry @add (of @add_attr's type
 * and FID) added or replaced, either may be NULL, stored as the listing of
 * DV @dir_after->dv (only the listing record: attributes are stored
 * apart). *@out is the new snapshot (a reference). @return 0 or -errno.
 */
int vc_dir_edit(struct vc *vc, const struct vc_dir *old,
		const struct proto_attr *dir_after, const char *del,
		const char *add, const struct proto_attr *add_attr,
		struct vc_dir **out);
/* As vc_dir_edit(); with VC_E_NOSTORE the new snapshot is not written
 * to the file (a cache: a listing record older than its directory's
 * attributes is fetched again). The edit copies the one or two segments
 * it touches and the snapshot's segment array; storing writes those
 * segments' pages and the listing record, not the listing. */
enum { VC_E_NOSTORE = 1 };
int vc_dir_edit_flags(struct vc *vc, const struct vc_dir *old,
		      const struct proto_attr *dir_after, const char *del,
		      const char *add, const struct proto_attr *add_attr,
		      struct vc_dir **out, unsigned flags);
/* Write @d, a snapshot a VC_E_NOSTORE edit made, unless the file holds
 * a listing of a later DV: the holder of the only copy of an edit
 * is dropping it (the directory's inode is forgotten). Offline the file's
 * listing is the only one, and a record older than the directory's
 * attributes is not served. @return 0 or -errno. */
int vc_dir_store_unstored(struct vc *vc, const struct vc_dir *d);
/* Build a snapshot from a decoded reply (refcount 1); NULL + errno. */
struct vc_dir *vc_dir_from_proto(const struct proto_dir *d);
struct vc_dir *vc_dir_get(struct vc_dir *d); /* +1 ref, returns @d */
void vc_dir_put(struct vc_dir *d);	     /* -1 ref, frees at 0; NULL ok */
/*
 * Build a snapshot entry by entry (a listing that arrives in pages): only
 * name, type and FID are kept, about 40 bytes plus the name an entry, so
 * a listing is never held decoded whole. Zero the builder first.
 * vc_dirb_finish() sorts the entries into segments and refuses a name
 * given twice
 * (NULL, errno EINVAL; ENOMEM); the builder is released either way.
 */
struct vc_dirb {
	struct vc_dirent *ents;
	size_t *off; /* name offsets in names until finished */
	size_t n, cap;
	char *names;
	size_t blen, bcap;
};
int vc_dirb_add(struct vc_dirb *b, const char *name, enum proto_type type,
		const struct fid *fid);
struct vc_dir *vc_dirb_finish(struct vc_dirb *b, const struct fid *fid,
			      uint64_t dv);
void vc_dirb_release(struct vc_dirb *b);
/* Store the listing of snapshot @d (its new pages, its record, then the
 * directory's attributes @dir; no transaction, invariant 3): the
 * entries' attributes are stored apart (vc_put_attrs()). */
int vc_put_listing(struct vc *vc, const struct proto_attr *dir,
		   const struct vc_dir *d);
/* Index of the entry called @name (@len bytes) or -1. */
long vc_dir_find(const struct vc_dir *d, const char *name, size_t len);

/* Symlink target: *out is a heap string the caller frees. */
int vc_get_link(struct vc *vc, const struct fid *fid, char **out);
int vc_put_link(struct vc *vc, const struct fid *fid, const char *target);

/* Extended attributes: the whole set of @fid at once, with the @stamp
 * (the object's ctime when they were fetched: an xattr change moves ctime,
 * so a set whose stamp differs from the current ctime is stale). *x is
 * freed with proto_xattrs_free(*x, *n). */
int vc_get_xattrs(struct vc *vc, const struct fid *fid, int64_t *stamp,
		  struct proto_xattr **x, size_t *n);
int vc_put_xattrs(struct vc *vc, const struct fid *fid, int64_t stamp,
		  const struct proto_xattr *x, size_t n);

/* The last event sequence number applied (0 if none). */
int vc_get_seq(struct vc *vc, uint64_t *seq);
int vc_put_seq(struct vc *vc, uint64_t seq);

/*
 * Damaged records dropped since vc_open() (a bad CRC32C, a record that
 * does not parse, a listing naming a missing or bad page): each read as a
 * miss and fetched again; the first is logged. Any thread.
 */
uint64_t vc_damaged(struct vc *vc);

/*
 * Tests only: @fn(@arg) runs when a reader has found a damaged 'A', 'D' or
 * 'X' record, before it takes the lock to drop it (where an editor may
 * store a fresh record meanwhile), without vc's lock held.
 */
void vc_set_drop_hook(struct vc *vc, void (*fn)(void *arg), void *arg);

/*
 * Listing pages swept by vc_open() (pages no 'D' record names, left by a
 * process killed between the steps of a listing's store, or by an older
 * cairnd). vc_open() sweeps when the file was not closed by vc_close()
 * (its 'I' record says so, or is missing). Any thread.
 */
uint64_t vc_swept(struct vc *vc);

/*
 * 1 if vc_open() rebuilt the file: it was not closed cleanly and tdb's
 * own structure failed tdb_check() (a process killed in the middle of a
 * store leaks space, or leaves tdb's free list naming space twice), so
 * its records were copied into a new file. Any thread.
 */
uint64_t vc_rebuilt(struct vc *vc);

/* The attribute filter (vc.c, "Misses"): fingerprints of the 'A' keys it
 * holds, the bytes of memory they take, the lookups it answered without
 * the file since vc_open(), and whether it is on (off: every lookup asks
 * the file, after a failed pass at open or a failed growth). */
struct vc_filter_stats {
	uint64_t held, bytes, skipped;
	bool on;
};
void vc_filter_stats(struct vc *vc, struct vc_filter_stats *st);

/* What vc_check() found (counts of records). */
struct vc_check_result {
	uint64_t records; /* records read */
	uint64_t bad;	  /* damaged records (CRC, format) */
	uint64_t orphans; /* pages no 'D' record names */
	uint64_t broken;  /* 'D' records naming a missing or bad page */
	uint64_t fixed;	  /* of those, removed (@repair) */
	uint64_t layout;  /* 1 when tdb's own structure was damaged */
	uint64_t kept;	  /* ... records a rebuild kept (or would keep) */
	int recover;	  /* the file needs tdb's recovery (check only) */
};

/*
 * Check the metadata cache file @path offline (cairn-fsck(8)): every
 * 'A', 'D', 'G', 'I' and 'X' record's version and CRC32C, every listing's
 * pages (present, whole, the count its 'D' names), and pages no 'D'
 * names; first of all tdb's own structure (tdbw_check(): chains, free
 * list, record lengths, in one bounded pass). A file whose structure is
 * damaged is not read record by record on a check (a chain that loops
 * would hang the walk): the check reports it (@res->layout, with what a
 * rebuild would keep, a dry run) and stops there; a repair rebuilds it
 * as cairnd does at an unclean open (tdbw_rebuild()) and checks the
 * result, or returns the rebuild's error (cairn-fsck then removes the
 * file, as cairnd would empty it). With @repair, damaged records,
 * broken listings (their 'D' and pages) and orphan pages are deleted;
 * everything in the file may be fetched again, so that loses nothing.
 * @report is called for each finding (@error 1) or note (0) with a
 * message. The caller must make sure no cairnd has the file open
 * (cairn-fsck holds the cache directory's lock). A file left in the
 * middle of a transaction is recovered by a repair; a check reports it
 * (@res->recover) and checks a recovered copy. @return 0 or a negative
 * errno (-ENOENT: no file).
 */
int vc_check(const char *path, int repair,
	     void (*report)(void *arg, int error, const char *msg), void *arg,
	     struct vc_check_result *res);

/* The volume information of the last successful connect. */
int vc_get_volinfo(struct vc *vc, struct proto_volinfo *vi);
int vc_put_volinfo(struct vc *vc, const struct proto_volinfo *vi);

/*
 * Call @cb for the FID of every cached attribute record. The list is
 * collected first and @cb runs without the lock held, so it may call any
 * vc function. A nonzero return from @cb stops the walk and is returned.
 */
int vc_iterate_fids(struct vc *vc,
		    int (*cb)(void *arg, const struct fid *fid), void *arg);

/*
 * Pins (fs pin): one record per pinned object, keyed by its FID, with the
 * recursive flag, the mount-relative path it was pinned by (display
 * only; the FID is what counts) and, optionally, who pinned it. vc_forget() keeps them: a pin outlives
 * its object's cached metadata. vc_iterate_pins() collects the records
 * first and calls @cb without the lock; a record that does not parse is
 * skipped. @return 0, -errno, or the first nonzero value of @cb.
 */
/* Who made a pin: background pin jobs read the tree as this user. */
#define VC_PIN_GROUPS_MAX 64
struct vc_pin_owner {
	uint32_t uid, gid;
	uint32_t ngroups;
	uint32_t groups[VC_PIN_GROUPS_MAX];
};
/* @owner NULL: no owner recorded (the record reads back with NULL, as
 * records written before owners were). */
int vc_put_pin(struct vc *vc, const struct fid *fid, int recursive,
	       const char *path, const struct vc_pin_owner *owner);
int vc_del_pin(struct vc *vc, const struct fid *fid);
int vc_iterate_pins(struct vc *vc,
		    int (*cb)(void *arg, const struct fid *fid, int recursive,
			      const char *path,
			      const struct vc_pin_owner *owner),
		    void *arg);

/* Number of attribute records (for stats). */
size_t vc_count(struct vc *vc);

#endif /* CAIRN_CM_VC_H */
