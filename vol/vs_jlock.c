/*
 * vs_jlock.c - who may write a volume's meta.tdb, and cairn-vold's commit
 * journal (doc/vol-format.md, "The commit journal" is the long form).
 *
 * Every process that opens a published volume holds an OFD lock on the
 * volume's file "lock" for as long as its handle is open:
 *
 *   shared     the tdb is used the ordinary way (tdb's own locks and
 *              synced transactions); any number of processes at once;
 *   exclusive  the holder may keep committed changes in a redo journal
 *              ("meta.journal", common/tdbj.h) and in its memory: only
 *              cairn-vold (VS_JOURNAL) does so, and whoever finds the
 *              volume's record marked "journalled" replays the journal
 *              under this lock before using the tdb (crash recovery).
 *
 * A process that cannot get its lock because cairn-vold journals the
 * volume knocks: it makes a file "knock.PID.RND" in the volume directory,
 * sends cairn-vold (its pid is in the lock file) SIGUSR2, and waits.
 * cairn-vold, at the signal or at its next tick, sees a live knock,
 * checkpoints the journal into the tdb, clears the mark, and turns its
 * lock shared (atomically: OFD locks convert in place); the knocker gets
 * its shared lock and removes its knock. cairn-vold takes the exclusive
 * lock back (again in place) at a tick that finds no knock and no other
 * holder. A knock whose process is gone is removed by whoever sees it.
 *
 * The mark: while a journal may hold changes, the volume record "V" in
 * the tdb file carries the magic CVJ2/CVJ3 instead of CVO2/CVO3, which
 * code older than the journal refuses (unknown magic), so it never
 * serves a tdb that lacks acknowledged changes.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/tdbj.h"
#include "common/tdbw.h"
#include "common/util.h"
#include "vol/volstore.h"
#include "vol/volstore_i.h"

#define LOCK_FILE    "lock"
#define JOURNAL_FILE "meta.journal"
#define KNOCK_PFX    "knock."
#define LOCK_WAIT_MS (60 * 1000) /* a knock unanswered this long: -EBUSY */
#define JSTOP_MUL    4		   /* journal this many bounds: stop it */
#define JREFUSE_MUL  8		   /* and this many while checkpoints fail:
				      refuse changes (tdbj_set_stop()) */
#define JRETRY_MS    (10 * 60 * 1000) /* then, or a journal that failed:
					 not again for this long */

/* Run as root (sudo vos), give the file @name in @dirfd the owner of
 * the volume directory: the lock file and journal that the first opener
 * creates must stay usable by a cairn-vold running as that owner. */
static void
own_like_dir(int dirfd, const char *name)
{
	struct stat d, f;

	if (geteuid() != 0 || fstat(dirfd, &d) < 0 ||
	    fstatat(dirfd, name, &f, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISREG(f.st_mode) ||
	    (f.st_uid == d.st_uid && f.st_gid == d.st_gid))
		return;
	if (fchownat(dirfd, name, d.st_uid, d.st_gid, AT_SYMLINK_NOFOLLOW) < 0)
		log_warn(LOG_VOL, "cannot give %s the owner of its volume "
			 "directory: %s", name, strerror(errno));
}

int
vlock_open(int dirfd)
{
	int fd = openat(dirfd, LOCK_FILE,
			O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0 && (errno == EACCES || errno == EROFS))
		fd = openat(dirfd, LOCK_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0)
		own_like_dir(dirfd, LOCK_FILE);
	return fd < 0 ? -errno : fd;
}

/* Set the OFD lock of @fd to @type (F_RDLCK, F_WRLCK, F_UNLCK) without
 * waiting. A conversion is atomic: when it fails the old lock stays.
 * @return 0, -EAGAIN (held by another) or -errno. */
int
vlock_set(int fd, short type)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	for (;;) {
		if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		return errno == EACCES ? -EAGAIN : -errno;
	}
}

/* Is the knock @name in @dirfd live? Its knocker holds an OFD lock on
 * it while it waits (robust against pid reuse and pid namespaces). A
 * knock without that lock (just made, or by a vos older than the lock)
 * counts while its pid lives and it is younger than the longest wait. */
static bool
knock_live(int dirfd, const char *name)
{
	struct flock fl;
	struct stat st;
	long pid;
	char *end;
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return errno == EACCES; /* cannot tell: do not remove */
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	if (fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) {
		close(fd);
		return true;
	}
	if (fstat(fd, &st) < 0)
		st.st_mtime = 0;
	close(fd);
	pid = strtol(name + strlen(KNOCK_PFX), &end, 10);
	return pid > 0 && *end == '.' &&
	       (kill((pid_t)pid, 0) == 0 || errno == EPERM) &&
	       time(NULL) - st.st_mtime < LOCK_WAIT_MS / 1000 + 10;
}

/* Is a knock of a live process in @dirfd? Knocks of dead processes are
 * removed on the way. */
bool
vlock_knocked(int dfd)
{
	DIR *d = util_opendirat(dfd, ".", 0);
	struct dirent *de;
	bool live = false;

	if (!d)
		return false;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, KNOCK_PFX, strlen(KNOCK_PFX)))
			continue;
		if (knock_live(dirfd(d), de->d_name)) {
			live = true;
			continue;
		}
		unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
	return live;
}

/* Tell the journalling cairn-vold whose pid the lock file @fd holds to
 * look at its knocks now (SIGUSR2), if that process is a cairn-vold. */
static void
knock_signal(int fd)
{
	char buf[32], path[64], comm[64];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	long pid;
	FILE *f;

	if (n <= 0)
		return;
	buf[n] = 0;
	pid = strtol(buf, NULL, 10);
	if (pid <= 0 || pid == (long)getpid())
		return;
	snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
	f = fopen(path, "re");
	if (!f)
		return;
	if (!fgets(comm, sizeof(comm), f))
		comm[0] = 0;
	fclose(f);
	/* SIGUSR2 kills a process that does not expect it. */
	if (strstr(comm, "cairn-vold"))
		kill((pid_t)pid, SIGUSR2);
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Make a knock file "knock.PID.RND" in @dirfd, its name into @knock,
 * and hold an OFD lock on it (its liveness: knock_live()). @return its
 * descriptor (-1: none; the wait goes on all the same). */
static int
knock_make(int dirfd, char *knock, size_t len)
{
	struct flock fl;
	uint32_t rnd = 0;
	int kfd;

	if (getrandom(&rnd, sizeof(rnd), 0) < 0)
		rnd = (uint32_t)time(NULL);
	snprintf(knock, len, KNOCK_PFX "%d.%08x", (int)getpid(), rnd);
	kfd = openat(dirfd, knock, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
		     0600);
	if (kfd < 0) {
		log_warn(LOG_VOL, "cannot make the knock file %s: %s "
			 "(waiting for the lock all the same)", knock,
			 strerror(errno));
		return -1;
	}
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	(void)fcntl(kfd, F_OFD_SETLK, &fl);
	own_like_dir(dirfd, knock);
	return kfd;
}

static void
knock_drop(int dirfd, const char *knock, int kfd)
{
	unlinkat(dirfd, knock, 0);
	if (kfd >= 0)
		close(kfd);
}

static void
busy_msg(const char *name)
{
	log_err(LOG_VOL, "volume '%s': still in use by another process after "
		"%u s (its lock file names the cairn-vold that journals it)",
		name, LOCK_WAIT_MS / 1000);
}

/*
 * Take the lock of @fd as @type, knocking (in directory @dirfd) while
 * cairn-vold holds it exclusively. @name is for the message. @return 0,
 * -EBUSY after LOCK_WAIT_MS (by the clock), or -errno.
 */
int
vlock_take(int dirfd, int fd, short type, const char *name)
{
	char knock[64];
	uint64_t t0, last_sig;
	unsigned step = 1;
	int kfd, rc = vlock_set(fd, type);

	if (rc != -EAGAIN)
		return rc;
	kfd = knock_make(dirfd, knock, sizeof(knock));
	knock_signal(fd);
	t0 = last_sig = util_now_ms();
	for (;;) {
		uint64_t now;

		rc = vlock_set(fd, type);
		if (rc != -EAGAIN)
			break;
		now = util_now_ms();
		if (now - t0 >= LOCK_WAIT_MS) {
			busy_msg(name);
			rc = -EBUSY;
			break;
		}
		sleep_ms(step);
		if (step < 20)
			step *= 2;
		if (now - last_sig >= 1000) {
			last_sig = now;
			knock_signal(fd);
		}
	}
	knock_drop(dirfd, knock, kfd);
	return rc;
}

/* ---- the mark in the volume record ---- */

static uint32_t
magic_marked(uint32_t m, bool journalled)
{
	if (journalled)
		return m == VREC_MAGIC ? VREC_MAGIC_J2
		       : m == VREC_MAGIC_V3 ? VREC_MAGIC_J3
					    : m;
	return m == VREC_MAGIC_J2 ? VREC_MAGIC : m == VREC_MAGIC_J3 ? VREC_MAGIC_V3
								    : m;
}

/* Is the record in @tdb (read directly) marked journalled? */
static bool
vj_marked(struct tdb_context *tdb)
{
	uint32_t m = 0;
	uint8_t *val = NULL;
	size_t len = 0;

	if (tdbw_fetch(tdb, "V", 1, &val, &len) || len < 4) {
		free(val);
		return false;
	}
	memcpy(&m, val, 4);
	free(val);
	return m == VREC_MAGIC_J2 || m == VREC_MAGIC_J3;
}

/* Mark (or unmark) the record in the tdb file of @tdb, in a transaction
 * of its own. -ENOENT when vos marked it removed; 0 and nothing written
 * for a record of another format (format 1, damaged: the open refuses
 * or converts it). */
static int
vj_mark(struct tdb_context *tdb, bool journalled)
{
	uint8_t *val = NULL;
	size_t len = 0;
	uint32_t m, nm;
	int rc = tdbw_txn_start(tdb);

	if (rc)
		return rc;
	rc = tdbw_fetch(tdb, "V", 1, &val, &len);
	if (rc || len < 4)
		goto cancel;
	memcpy(&m, val, 4);
	if (m == VREC_MAGIC_GONE) {
		rc = -ENOENT;
		goto cancel;
	}
	nm = magic_marked(m, journalled);
	if (nm == m)
		goto cancel;
	memcpy(val, &nm, 4);
	rc = tdbw_store(tdb, "V", 1, val, len, TDB_REPLACE);
	if (rc)
		goto cancel;
	free(val);
	return tdbw_txn_commit(tdb);
cancel:
	free(val);
	tdbw_txn_cancel(tdb);
	return rc == -ENOENT && !val ? 0 : rc;
}

static void
jpath_of(const struct vs_vol *v, char *buf, size_t len)
{
	/* Through the directory we opened, not its name: vos may have
	 * renamed it away (remove) and made another under the name. */
	snprintf(buf, len, "/proc/self/fd/%d/" JOURNAL_FILE, v->dirfd);
}

/* Write our pid into the lock file (we hold it exclusively): knockers
 * signal it. */
static void
lock_pid_write(int fd)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());

	if (ftruncate(fd, 0) == 0)
		(void)!pwrite(fd, buf, (size_t)n, 0);
}

/*
 * The lock is exclusive: replay a journal a crash left and attach it
 * (journal) or fold it into the tdb and go on without one. v->tdb is
 * open, v->j is NULL. @return 0 or -errno (v->tdb still open, v->j NULL).
 */
static int
vj_open_excl(struct vs_vol *v, bool journal)
{
	char jpath[PATH_MAX];
	unsigned jf = (v->flags & VS_NOSYNC) ? TDBJ_O_NOSYNC : 0;
	bool marked = vj_marked(v->tdb);
	struct tdb_context *tdb;
	int rc = 0;

	jpath_of(v, jpath, sizeof(jpath));
	if (journal) {
		uint32_t m = 0;
		uint8_t *val = NULL;
		size_t len = 0;

		/* Only a record of format 2 or 3 is journalled (format 1 is
		 * converted first, in plain transactions). */
		if (!tdbw_fetch(v->tdb, "V", 1, &val, &len) && len >= 4)
			memcpy(&m, val, 4);
		free(val);
		if (m != VREC_MAGIC && m != VREC_MAGIC_V3 &&
		    m != VREC_MAGIC_J2 && m != VREC_MAGIC_J3)
			return vj_open_excl(v, false);
		/* The mark first: no record reaches the journal before
		 * older code would refuse the volume. */
		rc = vj_mark(v->tdb, true);
		if (rc)
			return rc;
		v->j = tdbj_open(v->tdb, jpath,
				 jf | TDBJ_O_EXCL | TDBJ_O_PREALLOC,
				 v->root->jmax, &rc);
		if (!v->j) {
			log_err(LOG_VOL, "volume '%s': cannot open its journal "
				"(%s/volumes/%s/" JOURNAL_FILE "): %s%s", v->name,
				v->root->path, v->dirname, strerror(-rc),
				marked ? "" : "; going on without it");
			/* Marked before us: a crash's journal may hold
			 * changes, the mark stays. Otherwise ours is the
			 * mark: take it back, commit without a journal. */
			if (marked || vj_mark(v->tdb, false))
				return rc;
			return 0;
		}
		if (marked) {
			struct tdbj_stats st;

			tdbj_stats(v->j, &st);
			if (st.keys)
				log_info(LOG_VOL, "volume '%s': %" PRIu64
					 " keys from the journal a crash left",
					 v->name, st.keys);
		}
		tdbj_set_stop(v->j, JREFUSE_MUL *
					    (v->root->jmax ? v->root->jmax
							   : TDBJ_MAX_BYTES_DEFAULT));
		own_like_dir(v->dirfd, JOURNAL_FILE);
		v->jn = true;
		v->jfail_seen = 0; /* a new handle counts from 0 */
		lock_pid_write(v->lockfd);
		return 0;
	}
	if (!marked)
		return 0;
	/* Recovery: what the journal holds goes into the tdb. */
	v->j = tdbj_open(v->tdb, jpath, jf, v->root->jmax, &rc);
	if (!v->j) {
		log_err(LOG_VOL, "volume '%s': cannot replay its journal "
			"(%s/volumes/%s/" JOURNAL_FILE "): %s", v->name,
			v->root->path, v->dirname, strerror(-rc));
		return rc;
	}
	own_like_dir(v->dirfd, JOURNAL_FILE);
	tdb = tdbj_detach(v->j, &rc);
	if (!tdb) {
		/* Still the journal's: close it (another checkpoint try). */
		tdbj_close(v->j);
		v->j = NULL;
		v->tdb = NULL;
		return rc;
	}
	v->j = NULL;
	rc = vj_mark(v->tdb, false);
	if (!rc)
		log_info(LOG_VOL, "volume '%s': replayed the journal a crash "
			 "left", v->name);
	return rc;
}

/*
 * We hold the lock shared, the record is marked: a writer replays the
 * journal first, which needs the lock exclusive. Others may hold it
 * shared for the same reason (cairn-vold restarting while vos opens), or
 * a cairn-vold that stepped aside but could not clear the mark: never
 * wait for the upgrade while holding our share (two would wait for each
 * other). Try it in place without waiting; failing that, knock (so a
 * cairn-vold replays or clears the mark: vs_vol_coord()), let go, sleep
 * a little (with some randomness), take the lock shared again and look at
 * the mark again: a replay by another ends the wait. Returns with the
 * lock shared: 0, -EBUSY after LOCK_WAIT_MS, or -errno.
 */
static int
vj_replay_shared(struct vs_vol *v)
{
	char knock[64] = "";
	uint64_t t0 = util_now_ms(), last_sig = 0;
	unsigned step = 1;
	int rc, kfd = -1;

	for (;;) {
		uint32_t jit = 0;
		uint64_t now;

		if (v->lockmode != F_RDLCK) {
			rc = vlock_take(v->dirfd, v->lockfd, F_RDLCK, v->name);
			if (rc)
				break;
			v->lockmode = F_RDLCK;
		}
		if (!vj_marked(v->tdb)) {
			rc = 0;
			break;
		}
		rc = vlock_set(v->lockfd, F_WRLCK);
		if (!rc) {
			v->lockmode = F_WRLCK;
			rc = vj_open_excl(v, false);
			if (vlock_set(v->lockfd, F_RDLCK) == 0)
				v->lockmode = F_RDLCK;
			else if (!rc)
				rc = -EIO;
			break;
		}
		if (rc != -EAGAIN)
			break;
		now = util_now_ms();
		if (now - t0 >= LOCK_WAIT_MS) {
			busy_msg(v->name);
			rc = -EBUSY;
			break;
		}
		if (!knock[0])
			kfd = knock_make(v->dirfd, knock, sizeof(knock));
		if (now - last_sig >= 1000) {
			last_sig = now;
			knock_signal(v->lockfd);
		}
		vlock_set(v->lockfd, F_UNLCK);
		v->lockmode = 0;
		if (getrandom(&jit, sizeof(jit), 0) < 0)
			jit = (uint32_t)now;
		sleep_ms(step + jit % (step + 1));
		if (step < 20)
			step *= 2;
	}
	if (knock[0])
		knock_drop(v->dirfd, knock, kfd);
	return rc;
}

/*
 * Is meta.tdb near tdb's 4 GiB (vs_meta_hard())? Its size plus what the
 * journal holds (a checkpoint writes it there) against the hard limit;
 * past it do_op() refuses the operations that add records (-ENOSPC, 507)
 * and lets the ones that remove or change them through. Said in the log
 * when it turns on and off.
 */
static void
meta_watch(struct vs_vol *v)
{
	struct tdbj_stats st;
	struct stat sb;
	uint64_t hard = vs_meta_hard(), used;
	bool full;

	if (!v->j || !v->tdb || (v->flags & VS_RDONLY) ||
	    fstat(tdb_fd(v->tdb), &sb) < 0)
		return;
	tdbj_stats(v->j, &st);
	used = (uint64_t)sb.st_size + st.bytes;
	full = used >= hard;
	if (full != v->meta_full)
		log_err(LOG_VOL, full ?
			"volume '%s': meta.tdb and its journal hold %" PRIu64
			" bytes, past %" PRIu64 " (tdb cannot pass 4 GiB): "
			"refusing creates, links, stores and xattrs (ENOSPC; "
			"removals go through) until the volume is rewritten "
			"(vos export, vos import: tdb files do not shrink)" :
			"volume '%s': meta.tdb and its journal hold %" PRIu64
			" bytes, under %" PRIu64 " again: accepting every "
			"change", v->name, used, hard);
	v->meta_full = full;
}

int
vj_open(struct vs_vol *v)
{
	int rc;

	if (v->lockfd < 0) {
		/* Not a shared volume (staged, a snapshot's copy). */
		v->j = tdbj_open(v->tdb, NULL, 0, 0, &rc);
		return v->j ? 0 : rc;
	}
	if (v->lockmode == F_WRLCK) {
		rc = vj_open_excl(v, (v->flags & VS_JOURNAL) != 0);
		if (rc)
			return rc;
		/* Not journalling (format 1 to convert first): no reason to
		 * keep others out; vs_vol_coord() tries again. */
		if (!v->jn) {
			rc = vlock_set(v->lockfd, F_RDLCK);
			if (rc)
				return rc;
			v->lockmode = F_RDLCK;
		}
	} else if (vj_marked(v->tdb)) {
		char jpath[PATH_MAX];

		if (v->flags & VS_RDONLY) {
			/* Nobody journals while we hold the lock shared: the
			 * journal is what a crash left, and stays put. */
			jpath_of(v, jpath, sizeof(jpath));
			v->j = tdbj_open(v->tdb, jpath, TDBJ_O_RDONLY, 0,
					 &rc);
			if (!v->j)
				log_err(LOG_VOL, "volume '%s': cannot read "
					"its journal (%s/volumes/%s/"
					JOURNAL_FILE "): %s", v->name,
					v->root->path, v->dirname,
					strerror(-rc));
			return v->j ? 0 : rc;
		}
		rc = vj_replay_shared(v);
		if (rc)
			return rc;
	}
	if (!v->j)
		v->j = tdbj_open(v->tdb, NULL, 0, 0, &rc);
	if (v->j && (v->flags & VS_JOURNAL))
		meta_watch(v); /* before the first op, not at the first tick */
	return v->j ? 0 : rc;
}

/* Journalled: checkpoint, go on without the journal, clear the mark.
 * The lock stays exclusive (the caller turns it). */
static int
vj_detach(struct vs_vol *v)
{
	struct tdb_context *tdb;
	struct tdbj *pt;
	int rc;

	/* The pass-through handle first: out of memory, nothing changed. */
	pt = tdbj_open(v->tdb, NULL, 0, 0, &rc);
	if (!pt)
		return rc;
	tdb = tdbj_detach(v->j, &rc);
	if (!tdb) {
		tdbj_detach(pt, NULL); /* frees it, not the tdb */
		log_err(LOG_VOL, "volume '%s': checkpoint failed: %s", v->name,
			strerror(-rc));
		return rc;
	}
	v->jn = false;
	v->j = pt;
	return vj_mark(tdb, false);
}

int
vj_close(struct vs_vol *v)
{
	int rc = 0;

	if (v->jn)
		rc = vj_detach(v);
	if (v->j)
		tdbj_close(v->j);
	else if (v->tdb)
		tdb_close(v->tdb);
	v->j = NULL;
	v->tdb = NULL;
	if (v->lockfd >= 0) {
		if (v->lockmode == F_WRLCK && !rc)
			(void)!ftruncate(v->lockfd, 0);
		close(v->lockfd); /* drops the OFD lock */
	}
	v->lockfd = -1;
	v->lockmode = 0;
	return rc;
}

/* Exclusive now, v->j a pass-through handle: vj_open_excl(@journal),
 * keeping the pass-through handle for when no journal is attached (no
 * allocation that could leave v->j NULL behind). */
static int
vj_swap(struct vs_vol *v, bool journal)
{
	struct tdbj *pt = v->j;
	int rc;

	v->j = NULL;
	rc = vj_open_excl(v, journal);
	if (v->j || !v->tdb)
		tdbj_detach(pt, NULL); /* frees it, not the tdb */
	else
		v->j = pt;
	return rc;
}

/* Exclusive now, v->j a pass-through handle: attach the journal. */
static int
vj_reattach(struct vs_vol *v)
{
	return vj_swap(v, true);
}

/* Exclusive now, v->j a pass-through handle, the record marked: replay
 * the journal into the tdb and clear the mark, keeping a pass-through
 * handle. */
static int
vj_replay_held(struct vs_vol *v)
{
	return vj_swap(v, false);
}

/*
 * Journalling: report checkpoints that failed (tdbj retries them as the
 * journal grows), at most once a minute; once the journal is JSTOP_MUL
 * times its bound, stop journalling (checkpoint, go on through tdb
 * transactions, not again for JRETRY_MS). @return true if it stopped.
 */
static bool
vj_watch(struct vs_vol *v)
{
	struct tdbj_stats st;
	uint64_t now, jmax;
	int rc;

	tdbj_stats(v->j, &st);
	if (!st.ckpt_fails)
		return false;
	now = util_now_ms();
	jmax = v->root->jmax ? v->root->jmax : TDBJ_MAX_BYTES_DEFAULT;
	if (st.ckpt_fails > v->jfail_seen &&
	    (!v->jfail_logged || now - v->jfail_logged >= 60 * 1000)) {
		log_err(LOG_VOL, "volume '%s': %" PRIu64 " checkpoints of its "
			"journal failed (the last: %s); the journal holds %"
			PRIu64 " bytes", v->name, st.ckpt_fails - v->jfail_seen,
			strerror(-st.ckpt_err), st.bytes);
		v->jfail_logged = now;
		v->jfail_seen = st.ckpt_fails;
	}
	if (st.bytes < JSTOP_MUL * jmax)
		return false;
	rc = vj_detach(v);
	if (v->jn || !v->tdb)
		return false; /* the checkpoint failed again: next tick */
	v->jfail_seen = 0;
	v->jretry_at = now + JRETRY_MS;
	(void)!ftruncate(v->lockfd, 0);
	if (vlock_set(v->lockfd, F_RDLCK) == 0)
		v->lockmode = F_RDLCK;
	log_err(LOG_VOL, "volume '%s': journal past %" PRIu64 " bytes after "
		"failed checkpoints: checkpointed it and commits through tdb "
		"transactions now%s; journalling again in %d s", v->name,
		JSTOP_MUL * jmax, rc ? " (the mark stays)" : "",
		JRETRY_MS / 1000);
	return true;
}

int
vs_vol_coord(struct vs_vol *v)
{
	bool knocked;
	int rc;

	meta_watch(v);
	if (!(v->flags & VS_JOURNAL) || v->lockfd < 0 || !v->tdb)
		return 0;
	if (v->jn && vj_watch(v))
		return 0;
	knocked = vlock_knocked(v->dirfd);
	if (v->jn && knocked) {
		/* A failed checkpoint keeps the journal (and the lock: the
		 * knocker gives up after a minute); a failed unmark only
		 * makes the next opener replay an empty journal. */
		rc = vj_detach(v);
		if (v->jn || !v->tdb)
			return rc;
		(void)!ftruncate(v->lockfd, 0);
		if (vlock_set(v->lockfd, F_RDLCK) == 0)
			v->lockmode = F_RDLCK;
		log_debug(LOG_VOL, "volume '%s': journal checkpointed, lock "
			  "shared for another process", v->name);
		return 0;
	}
	if (!v->jn && v->lockmode == F_WRLCK) {
		/* Exclusive without a journal: no reason to keep it. */
		if (vlock_set(v->lockfd, F_RDLCK) == 0)
			v->lockmode = F_RDLCK;
		return 0;
	}
	if (!v->jn && knocked && v->lockmode == F_RDLCK && vj_marked(v->tdb)) {
		/* A writer waits for the mark to go (ours, left by an unmark
		 * that failed at step-aside, or a crash's): replay what the
		 * journal holds and clear it, if we get the lock alone (in
		 * place; the writer lets go of its share while it waits). */
		if (vlock_set(v->lockfd, F_WRLCK))
			return 0;
		v->lockmode = F_WRLCK;
		rc = vj_replay_held(v);
		if (vlock_set(v->lockfd, F_RDLCK) == 0)
			v->lockmode = F_RDLCK;
		if (rc)
			log_err(LOG_VOL, "volume '%s': cannot clear the journal "
				"mark for another process: %s", v->name,
				strerror(-rc));
		return rc;
	}
	if (v->jn || knocked || v->lockmode != F_RDLCK ||
	    util_now_ms() < v->jretry_at)
		return 0;
	/* In place: on failure (someone else holds it) it stays shared. */
	if (vlock_set(v->lockfd, F_WRLCK))
		return 0;
	v->lockmode = F_WRLCK;
	rc = vj_reattach(v);
	if (rc || !v->jn)
		v->jretry_at = util_now_ms() + JRETRY_MS;
	if (rc || !v->jn) {
		/* Removed meanwhile, a record not to journal (format 1), a
		 * journal that cannot be opened: others may have it. */
		vlock_set(v->lockfd, F_RDLCK);
		v->lockmode = F_RDLCK;
		return rc;
	}
	log_debug(LOG_VOL, "volume '%s': journalling again", v->name);
	return 0;
}
