/*
 * fuse_common.c - what both halves of cairnd's FUSE front use (fuse_i.h):
 * attribute conversion, the request counters, the per-thread read buffer,
 * the close of an open file. It calls neither fuse_ops.c nor fuse_mut.c,
 * so the two do not call each other in a circle.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h> /* splice */
#include <linux/fuse.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cm/fuse_i.h"
#include "cm/inode.h"
#include "cm/mcache.h"
#include "cm/stats.h"
#include "cm/vc.h"
#include "cm/wb.h"
#include "common/util.h"

#define READ_BUF_MAX (8u << 20)

/* Did the server say our token only reads? */
bool
fops_read_only(struct cm *cm)
{
	bool ro;

	pthread_mutex_lock(&cm->lock);
	ro = cm->have_vi && cm->vi.readonly;
	pthread_mutex_unlock(&cm->lock);
	return ro;
}

/* The volume of the request this worker thread is running, set by a
 * namespace's router (fuse_ns.c) around each handler it calls; NULL when
 * cairnd serves one volume (the session's userdata is then the cm). */
static __thread struct cm *cur_cm;

struct cm *
fops_req_cm(fuse_req_t req)
{
	return cur_cm ? cur_cm : fuse_req_userdata(req);
}

struct cm *
fops_set_req_cm(struct cm *cm)
{
	struct cm *old = cur_cm;

	cur_cm = cm;
	return old;
}

void
fops_count(struct cm *cm, enum cm_req_kind k)
{
	atomic_fetch_add_explicit(&cm->st.reqs[k], 1, memory_order_relaxed);
}

/* --- attribute conversion --- */

/* The file type bits of a listing entry's type. */
mode_t
fops_dirent_mode(int type)
{
	switch (type) {
	case PROTO_T_DIR:
	case PROTO_T_MOUNT: /* doc/cm.md "Mount points" */
		return S_IFDIR;
	case PROTO_T_SYMLINK:
		return S_IFLNK;
	case PROTO_T_FIFO:
		return S_IFIFO;
	case PROTO_T_SOCK:
		return S_IFSOCK;
	case PROTO_T_CHR:
		return S_IFCHR;
	case PROTO_T_BLK:
		return S_IFBLK;
	default:
		return S_IFREG;
	}
}

/*
 * st_ino and d_ino of an object: from its FID, so it stays the same when
 * the kernel forgets the inode and looks it up again under a new node id
 * (tar compares st_ino of a directory before and after extracting into
 * it). The root is 1.
 */
uint64_t
fops_st_ino(struct cm *cm, const struct fid *f)
{
	uint64_t h = 1469598103934665603ULL;

	/* cm->vi is set before the mount and never changes after it. In a
	 * namespace the root is 1 and each volume's root its slot's first
	 * number; the volume id goes into the hash, so numbers differ
	 * across volumes (find and tar compare st_ino). */
	if (fid_eq(f, &cm->vi.root))
		return cm->ino_base | 1;
	if (cm->ino_base)
		h ^= f->vol;

	for (int i = 0; i < FID_OID_LEN; i++)
		h = (h ^ f->oid[i]) * 1099511628211ULL;
	return h | (1ULL << 63);
}


void
fops_to_stat(struct cm *cm, const struct proto_attr *a, uint64_t ino,
	     struct stat *st)
{
	(void)ino;
	memset(st, 0, sizeof(*st));
	st->st_ino = fops_st_ino(cm, &a->fid);
	st->st_mode = fops_dirent_mode(a->type) | (a->mode & 07777);
	/* The kernel opens a device node itself (on a mount with -o dev)
	 * from this number; glibc's makedev() packs it as the kernel does
	 * for majors below 4096 and minors below 2^20. */
	if (a->type == PROTO_T_CHR || a->type == PROTO_T_BLK)
		st->st_rdev = (dev_t)a->rdev;
	st->st_nlink = (nlink_t)a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_size = (off_t)a->size;
	st->st_blksize = (blksize_t)cm->chunk_size;
	st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
	st->st_atim.tv_sec = a->atime_ns / 1000000000;
	st->st_atim.tv_nsec = a->atime_ns % 1000000000;
	st->st_mtim.tv_sec = a->mtime_ns / 1000000000;
	st->st_mtim.tv_nsec = a->mtime_ns % 1000000000;
	st->st_ctim.tv_sec = a->ctime_ns / 1000000000;
	st->st_ctim.tv_nsec = a->ctime_ns % 1000000000;
	if (a->atime_ns < 0 && st->st_atim.tv_nsec) {
		st->st_atim.tv_sec--;
		st->st_atim.tv_nsec += 1000000000;
	}
	if (a->mtime_ns < 0 && st->st_mtim.tv_nsec) {
		st->st_mtim.tv_sec--;
		st->st_mtim.tv_nsec += 1000000000;
	}
	if (a->ctime_ns < 0 && st->st_ctim.tv_nsec) {
		st->st_ctim.tv_sec--;
		st->st_ctim.tv_nsec += 1000000000;
	}
}

int
fops_notdir_err(struct cm *cm, const struct fid *fid)
{
	struct proto_attr a;

	if (mcache_attr(cm->mc, fid, &a) == 0 && a.type == PROTO_T_MOUNT)
		return -EACCES;
	return -ENOTDIR;
}

int
fops_cross(struct cm *cm, fuse_req_t req, const struct fid *mp)
{
	char *target;
	int rc;

	if (!cm->cross)
		return -ENOSYS;
	if (vc_get_link(cm->vc, mp, &target) < 0)
		return 1;
	/* The server checks a target when it stores one; a cached one is
	 * checked again before the namespace parses it, as any reply is. */
	if (proto_mount_target_check(target, strlen(target)) < 0) {
		free(target);
		return -EACCES;
	}
	rc = cm->cross(cm->cross_arg, target, req);
	free(target);
	return rc < 0 ? rc : 0;
}

/* Drop @f's open count of its entry; the last close of a file unlinked
 * while open lets its local copy go. */
void
fops_file_release(struct cm *cm, struct cm_file *f)
{
	if (ino_close(cm->ino, f->e, f->dio))
		wb_release_write(cm->wb, &f->fid);
}

bool
fops_dio_grant_locked(struct ino_ent *e, bool create_wronly, bool writer)
{
	if (!(create_wronly && e->nopen == 0) && e->dio_writers == 0)
		return false;
	if (writer && e->dio_writers < UINT16_MAX)
		e->dio_writers++;
	return true;
}

/* --- truncations and short reads (fuse_i.h) --- */

/* A mark older than this is a leak (a path that never ended it): it holds
 * no read any more. */
#define TRUNC_STALE_MS 10000

/* One per inode being truncated or truncated just now. Inode numbers are
 * the process's (a namespace mount's volumes have their own ranges), so
 * one table serves every volume; io_read() sees every request. */
struct trunc_mark {
	uint64_t ino;
	uint32_t pid;	   /* the thread of the last truncation */
	unsigned running;  /* truncations begun, not yet answered */
	uint64_t begun_ms; /* util_now_ms() of the last begin */
	uint64_t ended_ms; /* ... and of the last end; 0: its thread
			      made another request since (the kernel has
			      the size) */
};

static pthread_mutex_t trunc_lock = PTHREAD_MUTEX_INITIALIZER;
static struct trunc_mark *truncs;  /* protected by trunc_lock */
static size_t ntruncs, cap_truncs; /* protected by trunc_lock */
static atomic_size_t ntruncs_hint; /* ntruncs, for io_read() */

static struct trunc_mark *
trunc_find_locked(uint64_t ino)
{
	for (size_t i = 0; i < ntruncs; i++)
		if (truncs[i].ino == ino)
			return &truncs[i];
	return NULL;
}

/* Whether a READ answered short may still have to wait for @t: while
 * it runs, and after its answer for the grace, or until
 * FOPS_TRUNC_WAIT_MAX_MS if its thread can be watched (fops_trunc_hold()
 * then looks whether it ran). */
static bool
trunc_live(const struct trunc_mark *t, uint64_t now)
{
	if (t->running)
		return now - t->begun_ms < TRUNC_STALE_MS;
	if (!t->ended_ms)
		return false;
	return now - t->ended_ms <
	       (t->pid ? FOPS_TRUNC_WAIT_MAX_MS : FOPS_TRUNC_GRACE_MS);
}

/* Is thread @tid runnable (state R in /proc/TID/stat: running, or woken
 * and waiting for a CPU)? False if it cannot be read (gone, another pid
 * namespace's /proc, no /proc). */
static bool
thread_runnable(uint32_t tid)
{
	char path[40], buf[512];
	const char *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%u/stat", (unsigned)tid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	/* "tid (comm) S ...": the name may hold spaces and parentheses */
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] == 'R';
}

void
fops_trunc_begin(fuse_req_t req, uint64_t ino)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	uint64_t now = util_now_ms();
	struct trunc_mark *t;

	pthread_mutex_lock(&trunc_lock);
	/* The marks over drop out here: few files are truncated at once. */
	for (size_t i = 0; i < ntruncs;) {
		if (truncs[i].ino != ino && !trunc_live(&truncs[i], now))
			truncs[i] = truncs[--ntruncs];
		else
			i++;
	}
	t = trunc_find_locked(ino);
	if (!t && ntruncs == cap_truncs) {
		size_t nc = cap_truncs ? cap_truncs * 2 : 8;
		struct trunc_mark *n = realloc(truncs, nc * sizeof(*n));

		if (n) {
			truncs = n;
			cap_truncs = nc;
		}
	}
	if (!t && ntruncs < cap_truncs) {
		t = &truncs[ntruncs++];
		memset(t, 0, sizeof(*t));
		t->ino = ino;
	}
	/* Out of memory: no mark, the reads are answered as before. */
	if (t) {
		if (t->running && now - t->begun_ms >= TRUNC_STALE_MS)
			t->running = 0;
		t->running++;
		t->begun_ms = now;
		t->pid = ctx ? (uint32_t)ctx->pid : 0;
	}
	atomic_store(&ntruncs_hint, ntruncs);
	pthread_mutex_unlock(&trunc_lock);
}

void
fops_trunc_end(uint64_t ino)
{
	struct trunc_mark *t;

	pthread_mutex_lock(&trunc_lock);
	t = trunc_find_locked(ino);
	if (t) {
		if (t->running)
			t->running--;
		t->ended_ms = util_now_ms();
		if (!t->ended_ms)
			t->ended_ms = 1;
	}
	pthread_mutex_unlock(&trunc_lock);
}

bool
fops_trunc_hold(uint64_t ino)
{
	struct trunc_mark *t;
	uint64_t now, ended = 0;
	uint32_t pid = 0;
	bool hold = false;

	if (!atomic_load(&ntruncs_hint))
		return false;
	pthread_mutex_lock(&trunc_lock);
	now = util_now_ms();
	if ((t = trunc_find_locked(ino)) && trunc_live(t, now)) {
		hold = true;
		if (!t->running && now - t->ended_ms >= FOPS_TRUNC_GRACE_MS) {
			pid = t->pid;
			ended = t->ended_ms;
		}
	}
	pthread_mutex_unlock(&trunc_lock);
	/* Past the grace: the truncating thread has not made a request
	 * since its answer. Still runnable, it may not have run at all
	 * (a loaded machine): the kernel has not taken the size yet. Any
	 * other state, it ran: it took the size, and if it sleeps in
	 * truncate_pagecache(), that waits for this READ's pages. */
	if (!pid || thread_runnable(pid))
		return hold;
	pthread_mutex_lock(&trunc_lock);
	if ((t = trunc_find_locked(ino)) && !t->running &&
	    t->ended_ms == ended)
		t->ended_ms = 0;
	pthread_mutex_unlock(&trunc_lock);
	return false;
}

/* io_read(): a request of thread @pid came in. One that the thread can
 * only have made after its truncation returned (it waits for the answer
 * of each of these) shows that the kernel has the new size: the grace
 * of that truncation is over. Not READ (readahead runs ahead of the
 * thread), RELEASE or FORGET (sent in the background). */
static void
trunc_seen(uint32_t pid, uint32_t opcode)
{
	uint64_t now;

	switch (opcode) {
	case FUSE_READ:
	case FUSE_RELEASE:
	case FUSE_RELEASEDIR:
	case FUSE_FORGET:
	case FUSE_BATCH_FORGET:
	case FUSE_INTERRUPT:
	case FUSE_INIT:
	case FUSE_DESTROY:
		return;
	default:
		break;
	}
	pthread_mutex_lock(&trunc_lock);
	now = util_now_ms();
	for (size_t i = 0; i < ntruncs;) {
		if (truncs[i].pid == pid && !truncs[i].running)
			truncs[i].ended_ms = 0;
		/* Marks that hold nothing any more go now, so that requests
		 * after the last truncation's grace skip this lock again. */
		if (!trunc_live(&truncs[i], now))
			truncs[i] = truncs[--ntruncs];
		else
			i++;
	}
	atomic_store(&ntruncs_hint, ntruncs);
	pthread_mutex_unlock(&trunc_lock);
}

void
fops_read_reply(void *req, const void *buf, size_t len, int err)
{
	if (err)
		fuse_reply_err(req, -err);
	else
		fuse_reply_buf(req, buf, len);
}

/* Per worker thread read buffer, freed by the key's destructor when
 * libfuse retires an idle worker. */
struct tbuf {
	char *p;
	size_t len;
};
static pthread_key_t tbuf_key;
static pthread_once_t tbuf_once = PTHREAD_ONCE_INIT;

static void
tbuf_free(void *arg)
{
	struct tbuf *t = arg;

	free(t->p);
	free(t);
}

static void
tbuf_init(void)
{
	pthread_key_create(&tbuf_key, tbuf_free);
}

/* The calling thread's buffer of at least @len bytes, or NULL. */
char *
fops_tbuf_get(size_t len)
{
	struct tbuf *t;

	pthread_once(&tbuf_once, tbuf_init);
	t = pthread_getspecific(tbuf_key);
	if (!t) {
		t = calloc(1, sizeof(*t));
		if (!t || pthread_setspecific(tbuf_key, t) != 0) {
			free(t);
			return NULL;
		}
	}
	if (len > t->len) {
		char *nb;

		if (len > READ_BUF_MAX)
			return NULL;
		nb = realloc(t->p, len);
		if (!nb)
			return NULL;
		t->p = nb;
		t->len = len;
	}
	return t->p;
}

/* --- what cairnd reads from and writes to /dev/fuse --- */

/*
 * libfuse 3.14 (Debian 12) neither negotiates FUSE_HANDLE_KILLPRIV_V2 nor
 * passes on two of the kill flags the kernel then sets
 * (FUSE_WRITE_KILL_SUIDGID in a write's write_flags,
 * FUSE_OPEN_KILL_SUIDGID in an open's open_flags; a setattr's
 * FATTR_KILL_SUIDGID does reach the handler, as
 * FUSE_SET_ATTR_KILL_SUID). Its custom I/O (fuse_session_custom_io(),
 * public since 3.14) lets cairnd read the requests and write the replies
 * itself, so it sees the raw request before libfuse parses it (the same
 * thread then runs the handler: libfuse's workers read a request and
 * process it in turn, and splice reads stay off because no
 * splice_receive is given), and can add the flag to the INIT reply. The
 * kernel's ABI (linux/fuse.h) fixes the layouts; nothing of libfuse's
 * private state is touched.
 */

/* The request this worker thread read last: its opcode and whether the
 * kernel asked for set-ID bits to be killed with it. */
static __thread uint32_t in_opcode;
static __thread bool in_kill;

/* FUSE_INIT: what the kernel offered, the request's unique (its reply
 * gets the flag), and whether op_init() asked for KILLPRIV_V2. Written
 * while the INIT is processed, before any other request is read; atomic
 * (relaxed) because io_writev() reads init_want_v2 for every reply of
 * every thread, the notifier's too, which may run meanwhile. */
static _Atomic uint32_t init_flags;
static _Atomic uint64_t init_unique;
static atomic_bool init_want_v2;
static atomic_bool killpriv_v2;

static ssize_t
io_read(int fd, void *buf, size_t len, void *userdata)
{
	const struct fuse_in_header *h = buf;
	ssize_t n;

	(void)userdata;
	n = read(fd, buf, len);
	in_opcode = 0;
	in_kill = false;
	if (n < (ssize_t)sizeof(*h))
		return n;
	atomic_fetch_add_explicit(
		&cm_fuse_opc[h->opcode < CM_FUSE_OPC_MAX ? h->opcode : 0], 1,
		memory_order_relaxed);
	in_opcode = h->opcode;
	if (atomic_load_explicit(&ntruncs_hint, memory_order_relaxed))
		trunc_seen(h->pid, h->opcode);
	switch (h->opcode) {
	case FUSE_WRITE:
		if ((size_t)n >= sizeof(*h) + sizeof(struct fuse_write_in)) {
			const struct fuse_write_in *w =
				(const void *)((const char *)buf + sizeof(*h));

			in_kill = w->write_flags & FUSE_WRITE_KILL_SUIDGID;
		}
		break;
	case FUSE_OPEN:
		if ((size_t)n >= sizeof(*h) + sizeof(struct fuse_open_in)) {
			const struct fuse_open_in *o =
				(const void *)((const char *)buf + sizeof(*h));

			in_kill = o->open_flags & FUSE_OPEN_KILL_SUIDGID;
		}
		break;
	case FUSE_INIT:
		/* major, minor, max_readahead, flags: the start of every
		 * version's fuse_init_in. */
		if ((size_t)n >= sizeof(*h) + 4 * sizeof(uint32_t)) {
			const uint32_t *i =
				(const void *)((const char *)buf + sizeof(*h));

			atomic_store_explicit(&init_flags, i[3],
					      memory_order_relaxed);
			atomic_store_explicit(&init_unique, h->unique,
					      memory_order_relaxed);
		}
		break;
	default:
		break;
	}
	return n;
}

static ssize_t
io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	(void)userdata;
	if (atomic_load_explicit(&init_want_v2, memory_order_relaxed) &&
	    count >= 2 &&
	    iov[0].iov_len >= sizeof(struct fuse_out_header) &&
	    iov[1].iov_len >= 4 * sizeof(uint32_t)) {
		const struct fuse_out_header *o = iov[0].iov_base;

		if (o->unique == atomic_load_explicit(&init_unique,
						      memory_order_relaxed) &&
		    o->error == 0) {
			/* struct fuse_init_out: major, minor,
			 * max_readahead, flags. */
			uint32_t *flags = (uint32_t *)iov[1].iov_base + 3;

			*flags |= FUSE_HANDLE_KILLPRIV_V2;
			*flags &= ~(uint32_t)FUSE_HANDLE_KILLPRIV;
			atomic_store_explicit(&init_want_v2, false,
					      memory_order_relaxed);
			atomic_store(&killpriv_v2, true);
		}
	}
	return writev(fd, iov, count);
}

static ssize_t
io_splice_send(int fdin, off_t *offin, int fdout, off_t *offout, size_t len,
	       unsigned int flags, void *userdata)
{
	(void)userdata;
	return splice(fdin, offin, fdout, offout, len, flags);
}

int
fops_session_io(struct fuse_session *se)
{
	/* splice_send keeps FUSE_CAP_SPLICE_WRITE; no splice_receive, so
	 * every request comes through io_read(). That costs nothing:
	 * splice reads were never on for cairnd (it has no write_buf op,
	 * so libfuse never puts FUSE_CAP_SPLICE_READ in want). Checked
	 * against libfuse 3.14 (Debian 12); a newer one (3.17's want_ext,
	 * 3.18's io_uring) may read requests without read() or negotiate
	 * KILLPRIV_V2 itself: configure.ac requires 3.14 and says so. */
	static const struct fuse_custom_io io = {
		.read = io_read,
		.writev = io_writev,
		.splice_send = io_splice_send,
	};

	return fuse_session_custom_io(se, &io, fuse_session_fd(se));
}

bool
fops_kill_suidgid(enum fops_kill_op op)
{
	static const uint32_t opc[] = {[FOPS_KILL_WRITE] = FUSE_WRITE,
				       [FOPS_KILL_OPEN] = FUSE_OPEN};

	return in_kill && in_opcode == opc[op] && fops_killpriv_v2();
}

bool
fops_killpriv_v2(void)
{
	return atomic_load(&killpriv_v2);
}

bool
fops_init_killpriv(bool want)
{
	bool v2 = want && (atomic_load_explicit(&init_flags,
						memory_order_relaxed) &
			   FUSE_HANDLE_KILLPRIV_V2);

	atomic_store_explicit(&init_want_v2, v2, memory_order_relaxed);
	return v2;
}

int
fops_kill_how(fuse_req_t req, const struct proto_attr *a)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	gid_t list[64], *g = list;
	int n, cap = 64;
	int how = FOPS_KILL_ALL;

	/* Not known: everything cleared, the safe side. */
	if (!a)
		return FOPS_KILL_ALL;
	/* The caller's groups matter only for a set-group-ID bit without
	 * group execute (rare): only then read them (/proc). */
	if (!(a->mode & S_ISGID) || (a->mode & S_IXGRP) ||
	    c->gid == (gid_t)a->gid)
		return FOPS_KILL;
	n = fuse_req_getgroups(req, cap, list);
	if (n > cap) {
		cap = n;
		g = malloc((size_t)cap * sizeof(*g));
		n = g ? fuse_req_getgroups(req, cap, g) : -ENOMEM;
	}
	/* The count is the caller's now, which may exceed what was
	 * allocated: read no further than that. Not known (the process
	 * went): FOPS_KILL_ALL, the safe side. */
	if (n > cap)
		n = cap;
	for (int i = 0; i < n; i++)
		if (g[i] == (gid_t)a->gid)
			how = FOPS_KILL;
	if (g != list)
		free(g);
	return how;
}

void
fops_kill_of(struct cm *cm, fuse_req_t req, const struct fid *fid,
	     struct wb_kill *out)
{
	struct proto_attr a;

	out->how = 0;
	out->mode = WB_MODE_UNKNOWN;
	if (mcache_attr(cm->mc, fid, &a) < 0) {
		/* Not cached: the write state's mode is taken. */
		out->how = FOPS_KILL_ALL;
		return;
	}
	out->mode = a.mode & 07777;
	if (out->mode & (S_ISUID | S_ISGID))
		out->how = fops_kill_how(req, &a);
}

bool
fops_caller_fsetid(fuse_req_t req)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	char path[64], line[256];
	bool cap = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)c->pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long eff;

		if (sscanf(line, "CapEff: %llx", &eff) == 1) {
			cap = eff & (1ull << 4); /* CAP_FSETID */
			break;
		}
	}
	fclose(f);
	return cap;
}
