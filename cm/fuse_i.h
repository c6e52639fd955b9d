/*
 * fuse_i.h - what the two halves of cairnd's FUSE front share: fuse_ops.c
 * (the operation table, lookups, reads, the notifier thread) and
 * fuse_mut.c (the handlers that change metadata or data); fuse_common.c
 * holds the helpers both use, so neither calls the other back. Private to
 * the front: nothing below it includes this.
 */
#ifndef CAIRN_CM_FUSE_I_H
#define CAIRN_CM_FUSE_I_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "cm/daemon_i.h"
#include "cm/fuse_ops.h"
#include "cm/wb.h"

struct ino_ent;

/* The virtual xattr of the root that prints the counters. */
#define STATS_XATTR "cairn.stats"

/* Per open file: what the read hot path needs without touching tdb. */
struct cm_file {
	struct ino_ent *e; /* held by an open count */
	struct fid fid;
	pthread_mutex_t mu;
	uint64_t next_off;   /* protected by mu: end of the last read */
	uint64_t last_chunk; /* protected by mu */
	uint64_t ra_next;    /* protected by mu: chunks before it were asked */
	uint64_t ra_dv;	     /* protected by mu */
	unsigned window;     /* protected by mu: readahead in chunks */
	bool writer;	     /* opened for writing: holds a wb write state */
	bool dio;	     /* a writer answered with direct_io: counted in
				e->dio_writers (fops_dio_grant_locked()) */
};

/* --- fuse_common.c --- */

/*
 * FUSE_HANDLE_KILLPRIV_V2 (fuse_common.c's /dev/fuse hooks, installed by
 * fops_session_io()): the kernel no longer clears set-user-ID and
 * set-group-ID bits itself on a write, a truncate, an O_TRUNC open or a
 * chown; it flags the request instead, when the caller lacks CAP_FSETID
 * (always for a chown), and cairnd clears them (fuse_mut.c, fuse_ops.c).
 */
enum fops_kill_op { FOPS_KILL_WRITE, FOPS_KILL_OPEN };

/* Did the request this thread is handling (an @op) come with the kill
 * flag, KILLPRIV_V2 being on (without it the kernel cleared the bits
 * itself, and sets the flag of an O_DIRECT write all the same)? Read it
 * in the handler, before the request is parked. */
bool fops_kill_suidgid(enum fops_kill_op op);
/* In op_init(): ask for KILLPRIV_V2 if @want and the kernel offers it.
 * @return whether it will be in the INIT reply. */
bool fops_init_killpriv(bool want);
/* Whether the INIT reply carried it (so the kernel flags requests). */
bool fops_killpriv_v2(void);
/* How a flagged request clears set-ID bits (the VFS's rule): FOPS_KILL
 * clears set-user-ID, and set-group-ID when group-executable (without
 * group execute it marks mandatory locking); FOPS_KILL_ALL set-group-ID
 * in any case (a caller outside the file's group). 0: nothing. */
enum { FOPS_KILL = WB_KILL, FOPS_KILL_ALL = WB_KILL_ALL };
/* How a flagged write, truncate or O_TRUNC open by the caller of @req
 * kills the bits of a file with attributes @a (NULL: not known, then
 * FOPS_KILL_ALL: the safe side). */
int fops_kill_how(fuse_req_t req, const struct proto_attr *a);
/* The kill of a flagged write to @fid by the caller of @req, for
 * wb_write() (how 0 when the file has no set-ID bits to clear). */
void fops_kill_of(struct cm *cm, fuse_req_t req, const struct fid *fid,
		  struct wb_kill *out);
/* Has the caller of @req CAP_FSETID (its /proc status; false if not
 * known)? For the requests the kernel does not flag (fallocate). */
bool fops_caller_fsetid(fuse_req_t req);

/* The volume a request is for: the one the namespace router set for this
 * thread (fops_set_req_cm()), else the session's userdata. */
struct cm *fops_req_cm(fuse_req_t req);
/* fuse_ns.c: make @cm the volume of this thread's requests (NULL: none).
 * @return the previous one. */
struct cm *fops_set_req_cm(struct cm *cm);
/* Count one request of kind @k. */
void fops_count(struct cm *cm, enum cm_req_kind k);
/* Did the server say our token only reads? */
bool fops_read_only(struct cm *cm);
/* st_ino of an object: from its FID, so it survives a forget; root is 1. */
uint64_t fops_st_ino(struct cm *cm, const struct fid *f);
/* The file type bits of a listing entry's type. */
mode_t fops_dirent_mode(int type);
/* Fill @st from @a for the kernel (inode number @ino). */
void fops_to_stat(struct cm *cm, const struct proto_attr *a, uint64_t ino,
		  struct stat *st);
/*
 * Mount points (doc/cm.md "Mount points"). What a directory operation on
 * @fid answers when mcache_dir() said -ENOTDIR: -EACCES for a mount point
 * (an uncrossed one reads as an unreadable directory), else -ENOTDIR.
 * Any thread.
 */
int fops_notdir_err(struct cm *cm, const struct fid *fid);
/*
 * A lookup found the mount point @mp: hand @req to the crossing hook
 * (struct cm's cross) with its target. @return 0: the hook answers @req;
 * 1: the target must be fetched first (NEED_LINK of @mp); -errno: not
 * crossed (no hook, or the hook refused): answer with the mount point
 * itself. Any thread.
 */
int fops_cross(struct cm *cm, fuse_req_t req, const struct fid *mp);
/* Drop the open count the handle @f holds on f->e (and its dio count);
 * the last close of a file unlinked while open lets its copy go. */
void fops_file_release(struct cm *cm, struct cm_file *f);
/*
 * Writes past the page cache (doc/cm.md "Direct writes of new files"). A
 * file created write-only (tar, cp, dd, a compiler's output) is answered
 * with direct_io: each write(2) is one WRITE request, where through the
 * page cache the kernel ends a request at every partial page it does not
 * hold, so a 10 KiB write that starts inside a page cost two (and the
 * kernel a copy into pages nobody reads). While such a handle is open,
 * every other open of the file gets direct_io too, so no handle fills
 * the page cache that those writes would leave stale; one opened
 * write-only or read-write is counted as well. With the ino lock held and
 * before the open is counted in e->nopen: @create_wronly (a CREATE,
 * O_WRONLY) grants when no other handle is open, any open grants while
 * e->dio_writers says a handle writes past the cache. @return whether the
 * open gets direct_io; a @writer is then counted in e->dio_writers (the
 * caller sets cm_file.dio).
 */
bool fops_dio_grant_locked(struct ino_ent *e, bool create_wronly,
			   bool writer);
/* Completion of fetch_read_park(): @req is the fuse_req_t. */
void fops_read_reply(void *req, const void *buf, size_t len, int err);
/* A per-thread buffer of at least @len bytes, or NULL. */
char *fops_tbuf_get(size_t len);

/*
 * Truncations and short reads (doc/cm.md "Pages of zeros"). The kernel
 * takes a READ answered short as the end of the file only if no
 * attributes of the file came in since it sent it; else it keeps the
 * size it had and the zeros it filled the rest of the pages with, which
 * its readers then read. A truncation here (an O_TRUNC open, a setattr
 * of the size) makes such answers until the kernel has taken the new
 * size, which it does after our answer. So a READ whose answer comes
 * back short while a truncation of its inode runs, or less than
 * FOPS_TRUNC_GRACE_MS after it was answered, is held (fops_read_hold())
 * and read again once that is over. Any thread.
 */
#define FOPS_TRUNC_GRACE_MS 200
/* ... and past it, for as long as the truncating thread is still
 * runnable (it has not run since the answer: /proc/TID/stat), up to
 * this long after the answer. */
#define FOPS_TRUNC_WAIT_MAX_MS 2000
/* A truncation of inode @ino by the caller of @req begins (before it
 * changes the size). */
void fops_trunc_begin(fuse_req_t req, uint64_t ino);
/* ... and was answered (or failed): the grace starts. It ends early when
 * the caller's thread makes another request (its truncation returned,
 * so the kernel has the size): the common case, a file truncated and
 * written, costs its readers no wait. */
void fops_trunc_end(uint64_t ino);
/* Must a short answer to a READ of @ino wait? */
bool fops_trunc_hold(uint64_t ino);
/* fuse_ops.c: answer the READ @req (@size bytes at @off of the open file
 * @f of @ino) once fops_trunc_hold() says no more (at most
 * FOPS_HOLD_MAX_MS), reading it again then. */
#define FOPS_HOLD_MAX_MS 2000
void fops_read_hold(struct cm *cm, fuse_req_t req, fuse_ino_t ino,
		    struct cm_file *f, uint64_t off, size_t size);

/* --- fuse_mut.c --- */

enum wio_kind { W_READ, W_WRITE, W_TRUNC };
/* FUSE threads only, before a write at @off, or a truncate to @off, of
 * @fid: while a STORE record of the file that logged more than @off
 * bytes is in the replay log and the mount is not disconnected, start a
 * drain pass and wait until the server has answered it (a refusal's
 * conflict copy made), at most 2 * fetch-timeout + 5 s. The record reads
 * the file's chunks when it goes; rewritten meanwhile, it sent the new
 * version's start and zeros, and a refusal's copy saved them. */
void fmut_drain_first(struct cm *cm, const struct fid *fid, uint64_t off);
/* Run @try(@arg, flags) once, with WB_IO_LOGGED in flags when @may_wait
 * (a FUSE thread: the loop must not wait for itself) and the mount is
 * connected; while it answers -EINPROGRESS (it would change bytes a
 * logged store of @fid still sends), fmut_drain_first(@fid, @off) and
 * try again, three times, then once without the flag. @return its
 * last answer. */
int fmut_logged_try(struct cm *cm, const struct fid *fid, uint64_t off,
		    bool may_wait, int (*try)(void *arg, unsigned flags),
		    void *arg);
/* Read, write or truncate a file that has a write state; parks on the
 * loop when a chunk must be fetched first. */
void fmut_wio_start(struct cm *cm, fuse_req_t req, enum wio_kind kind,
		    const struct fid *fid, uint64_t off, const void *buf,
		    size_t len);
/* The READ @req of @len bytes at @off of the open file @f (inode @ino),
 * which has a write state; @may_hold as read_file() (fuse_ops.c). */
void fmut_wio_read(struct cm *cm, fuse_req_t req, fuse_ino_t ino,
		   struct cm_file *f, uint64_t off, size_t len, bool may_hold);

/* An O_TRUNC open (@fi made, its file handle set) whose set-ID bits its
 * write state could not take (wb_truncate()'s -EPERM): clear them with a
 * setattr of their own, then truncate it if @trunc and answer the open
 * (an error, EIO if the setattr failed, undoes it). A truncation marks
 * @ino (fops_trunc_begin()) until the open is answered. */
void fmut_kill_open(struct cm *cm, fuse_req_t req, fuse_ino_t ino,
		    const struct fuse_file_info *fi, int how, bool trunc);
void fmut_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
		off_t off, struct fuse_file_info *fi);
void fmut_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		 mode_t mode, struct fuse_file_info *fi);
void fmut_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		mode_t mode, dev_t rdev);
void fmut_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		mode_t mode);
void fmut_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		  const char *name);
void fmut_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
	       const char *newname);
void fmut_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void fmut_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void fmut_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		 fuse_ino_t newparent, const char *newname, unsigned int flags);
void fmut_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		  struct fuse_file_info *fi);
void fmut_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		   const char *value, size_t size, int flags);
void fmut_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);
void fmut_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
		    off_t length, struct fuse_file_info *fi);

#endif /* CAIRN_CM_FUSE_I_H */
