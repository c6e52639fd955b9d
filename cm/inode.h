/*
 * inode.h - the table between FUSE inode numbers and FIDs, with the kernel's
 * lookup counts, and the in-memory state cairnd keeps per known inode (the
 * attributes last seen, the current listing snapshot of a directory).
 *
 * Layer rule: FUSE-free (libcm); inode numbers are plain uint64_t.
 *
 * Invariants:
 *  1. One FID has at most one inode number and the other way round, so hard
 *     links show one inode. Numbers are never reused while cairnd runs.
 *  2. Inode 1 (FUSE_ROOT_ID), or base | 1 (ino_new_at()), is the volume
 *     root and is never forgotten.
 *  3. An entry lives while the kernel holds a lookup on it (nlookup > 0) or
 *     a file handle is open on it (nopen > 0); then it is freed, and with it
 *     its reference to a listing snapshot.
 *
 * Threads: one mutex guards the table and every field of every entry.
 * Functions named *_locked need it held (ino_lock()); others take it. An
 * entry pointer stays valid while the lock is held, or while the caller
 * holds an open count on it (ino_open()/ino_close()).
 */
#ifndef CAIRN_CM_INODE_H
#define CAIRN_CM_INODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/fid.h"
#include "common/proto.h"

#define INO_ROOT 1

struct vc_dir;

struct ino_ent {
	/* Ordered so no padding is wasted: 208 bytes, a 224-byte malloc
	 * chunk (doc/cm.md, "Memory"). */
	uint64_t ino;
	struct fid fid;
	unsigned nopen;		   /* open file/dir handles */
	uint64_t nlookup;	   /* kernel lookups not yet forgotten */
	struct proto_attr attr;	   /* valid when @have_attr */
	struct vc_dir *dir;	   /* current listing (a reference), or NULL */
	uint64_t open_dv;	   /* DV at the last open (keep_cache) */
	struct fid parent;	   /* the directory @name is in */
	bool have_attr;		   /* @attr is the current known state */
	bool opened;		   /* opened before: @open_dv is meaningful */
	bool pages_dropped;	   /* news dropped its pages once: the kernel
				      may hold some of an older DV until the
				      notifier's invalidation lands (no
				      open-time push, fuse_ops.c) */
	bool orphan_hold;	   /* unlinked while open: wb.c holds its
				      write state until the last close */
	bool name_listed;	   /* @name came from a listing (readdirplus),
				      not a lookup, create or rename */
	bool attr_server;	   /* @attr is the server's own (its ctime
				      is the server's clock): mcache.c;
				      kept in meta.tdb too (VC_ATTR_SERVER) */
	uint16_t dio_writers;	   /* open handles that write past the
				      page cache (FOPEN_DIRECT_IO,
				      fuse_i.h cm_file.dio); sticks at
				      UINT16_MAX */
	char *name;		   /* the last name the kernel looked it up
				      by (for conflict copies), or NULL */
	struct ino_ent *next_ino;  /* hash chains */
	struct ino_ent *next_fid;
};

struct ino_table;

/* A table whose root (inode 1) is @root. NULL + errno on failure. */
struct ino_table *ino_new(const struct fid *root);
/* The same with every number it hands out offset by @base (whose low 48
 * bits are zero): the root is @base | INO_ROOT. One cairnd serving many
 * volumes gives each volume's table its own @base, so the numbers of all
 * volumes share the kernel's one inode space (daemon_i.h, CM_NS_SLOT). */
struct ino_table *ino_new_at(const struct fid *root, uint64_t base);
/* Free every entry; NULL ok. */
void ino_free(struct ino_table *t);

void ino_lock(struct ino_table *t);
void ino_unlock(struct ino_table *t);

/* The entry of inode @ino, or NULL. */
struct ino_ent *ino_get_locked(struct ino_table *t, uint64_t ino);
/* The entry of @fid, or NULL. */
struct ino_ent *ino_find_locked(struct ino_table *t, const struct fid *fid);
/* What ino_find_note_locked() saw of @fid's bucket. */
struct ino_absent {
	size_t nbuckets;
	const void *head;
	uint64_t frees;
};
/* ino_find_locked(), noting the bucket in *@note. */
struct ino_ent *ino_find_note_locked(struct ino_table *t,
				     const struct fid *fid,
				     struct ino_absent *note);
/* For a @fid that ino_find_note_locked() did not find, under a later
 * hold of the lock: true when no entry can have been made for it since
 * (its bucket unchanged), so a second walk of the bucket (a cache miss a
 * node in a table of a million entries) is not needed; false means look
 * again. */
bool ino_still_absent_locked(const struct ino_table *t, const struct fid *fid,
			     const struct ino_absent *note);
/* The entry of @fid, created with nlookup 0 if missing; NULL on ENOMEM. */
struct ino_ent *ino_add_locked(struct ino_table *t, const struct fid *fid);

/* Remember @parent/@name as the last name of @e (best effort): a
 * lookup, create or rename named it. */
void ino_set_name_locked(struct ino_ent *e, const struct fid *parent,
			 const char *name);
/* The same for a name from a directory listing (readdirplus). A listing
 * is a snapshot taken at opendir, possibly older than a lookup or rename
 * since: it names @e only when @e has no name yet or its name came from
 * a listing too, never over a lookup's. */
void ino_set_listed_name_locked(struct ino_ent *e, const struct fid *parent,
				const char *name);
/* Copy the last name of @fid into @buf. @return 0, or -ENOENT (unknown
 * or too long). */
int ino_name_of(struct ino_table *t, const struct fid *fid, struct fid *parent,
		char *buf, size_t len);

/* Drop @n lookups of @ino (FUSE forget); frees the entry when unused. */
void ino_forget(struct ino_table *t, uint64_t ino, uint64_t n);
/* A freed entry's listing that only it held (an edit kept in memory,
 * vc_dir->unstored) goes to @drop (outside the table's lock, with the
 * entry's reference), and so do those of every entry at ino_free(). */
void ino_set_drop(struct ino_table *t, void (*drop)(void *arg, struct vc_dir *d),
		  void *arg);
/* Hand every entry's listing that the file does not have (an edit kept
 * in memory) to @drop as ino_set_drop() set it, with a new reference;
 * the entries keep theirs. Going offline. */
void ino_store_unstored(struct ino_table *t);
/* Drop one open count taken by the caller (entry->nopen++ under the lock),
 * and with @dio (a handle that wrote past the page cache, cm_file.dio)
 * its count in @e->dio_writers; frees the entry when unused. @return true
 * when this was the last open of an entry with orphan_hold (cleared): the
 * caller releases the hold. */
bool ino_close(struct ino_table *t, struct ino_ent *e, bool dio);

/* The FID of @ino. @return 0 or -ENOENT (the kernel used a forgotten or
 * unknown number: a bug, or a hostile /dev/fuse client). */
int ino_fid(struct ino_table *t, uint64_t ino, struct fid *fid);
/* The inode number of @fid, 0 if unknown. */
uint64_t ino_of(struct ino_table *t, const struct fid *fid);
/* Number of entries. */
size_t ino_count(struct ino_table *t);

#endif /* CAIRN_CM_INODE_H */
