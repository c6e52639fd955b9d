/*
 * test_vol_journal.c - cairn-vold's commit journal and the volume lock
 * (vol/vs_jlock.c): a VS_JOURNAL handle commits into meta.journal and
 * marks the record (CVJ2/CVJ3, which code older than the journal refuses);
 * another process knocks and reads the current state once the journaller
 * steps aside (vs_vol_coord()); the journaller takes the lock back; a
 * journal a killed process left is read by a reader and replayed by a
 * writer; a damaged one is refused, and moved away it is given up.
 * Runs in a temporary server root; the other processes are this program
 * run again (tdb refuses a second open of a file in one process, and a
 * fork inherits the first).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tdb.h>

#include "common/fid.h"
#include "common/log.h"
#include "common/proto.h"
#include "tests/tap.h"
#include "vol/volstore.h"
#include "vol/volstore_i.h" /* white-box: the record's magic */

static char rootdir[256];
static const char *self;
static struct vs_root *root;
static unsigned opn;

static char *
vpath(const char *file)
{
	static char p[512];

	snprintf(p, sizeof(p), "%s/volumes/jv/%s", rootdir, file);
	return p;
}

static long
fsize(const char *file)
{
	struct stat st;

	return stat(vpath(file), &st) < 0 ? -1 : (long)st.st_size;
}

/* The magic of "V" as the tdb file holds it (what older code reads),
 * printed by "magic ROOT". */
static uint32_t
raw_magic_here(const char *path)
{
	TDB_DATA key = {.dptr = (unsigned char *)"V", .dsize = 1}, d;
	struct tdb_context *t = tdb_open(path, 0, TDB_DEFAULT, O_RDONLY, 0);
	uint32_t m = 0;

	if (!t)
		return 0;
	d = tdb_fetch(t, key);
	if (d.dptr && d.dsize >= 4)
		memcpy(&m, d.dptr, 4);
	free(d.dptr);
	tdb_close(t);
	return m;
}

/* Run this program as "MODE ROOT [NAMES...]" in a new process. */
static pid_t
spawn(const char *mode, const char *const *names, int n)
{
	pid_t pid = fork();

	if (!pid) {
		const char *argv[16] = {self, mode, rootdir};

		for (int i = 0; i < n && i < 12; i++)
			argv[3 + i] = names[i];
		execv(self, (char *const *)argv);
		_exit(127);
	}
	return pid;
}

static int
wait_st(pid_t pid)
{
	int st = 0;

	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 100;
}

static uint32_t
raw_magic(void)
{
	int p[2];
	uint32_t m = 0;
	pid_t pid;

	if (pipe(p))
		return 0;
	pid = fork();
	if (!pid) {
		close(p[0]);
		if (dup2(p[1], 1) < 0)
			_exit(1);
		execl(self, self, "magic", rootdir, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	if (read(p[0], &m, sizeof(m)) != sizeof(m))
		m = 0;
	close(p[0]);
	wait_st(pid);
	return m;
}

/* Apply @kind (CREATE of a file, UNLINK) of @name in the root. @return
 * 0, -errno, or -status of a refusal. */
static int
rootop(struct vs_vol *v, int kind, const char *name)
{
	struct vs_volinfo vi;
	struct proto_op op = {0};
	struct vs_reply rep;
	int rc;

	if ((rc = vs_vol_info(v, &vi)))
		return rc;
	op.kind = kind;
	op.parent = vi.root;
	op.name = (char *)name;
	op.type = PROTO_T_FILE;
	op.mode = 0644;
	if (kind == PROTO_OP_UNLINK) {
		if ((rc = vs_lookup(v, &vi.root, name, &op.fid)))
			return rc;
	}
	opn++;
	memcpy(op.opid, &opn, sizeof(opn));
	op.opid[15] = (uint8_t)getpid();
	op.opid[14] = 0x77;
	rc = vs_apply(v, &op, &rep);
	free(rep.body);
	return rc ? rc : rep.status == 200 ? 0 : -rep.status;
}

static bool
old_code_reads(uint32_t m)
{
	return m == VREC_MAGIC || m == VREC_MAGIC_V3 || m == VREC_MAGIC_V1;
}

static int
mkfile(struct vs_vol *v, const char *name)
{
	return rootop(v, PROTO_OP_CREATE, name);
}

static bool
has(struct vs_vol *v, const char *name)
{
	struct vs_volinfo vi;
	struct fid f;

	return !vs_vol_info(v, &vi) && !vs_lookup(v, &vi.root, name, &f);
}

/* "read ROOT NAMES" / "write ROOT NAMES": open read-only / for writing
 * (knocking), exit 0 if every name is there. */
static pid_t
reader(const char *const *names, int n, int flags)
{
	return spawn(flags & VS_RDONLY ? "read" : "write", names, n);
}

/* Serve @v (vs_vol_coord() every 5 ms) until @pid exits: its status. */
/* Is there a knock file in the volume's directory? */
static bool
knock_waits(void)
{
	char d[512];
	DIR *dir;
	struct dirent *e;
	bool found = false;

	snprintf(d, sizeof(d), "%s/volumes/jv", rootdir);
	dir = opendir(d);
	if (!dir)
		return false;
	while (!found && (e = readdir(dir)))
		found = !strncmp(e->d_name, "knock.", 6);
	closedir(dir);
	return found;
}

static int
serve_until(struct vs_vol *v, pid_t pid)
{
	struct timespec ts = {0, 5 * 1000 * 1000};
	int st = 0;

	for (int i = 0; i < 4000; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 100;
		/* Tick while a knock waits: a child that is done removed its
		 * knock, and may then take a while to exit (LeakSanitizer at
		 * exit under ASan); a tick in between would take the lock
		 * back before the checks that follow. */
		if (v && knock_waits())
			vs_vol_coord(v);
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return 101;
}

/* "crash ROOT FROM N": journal N creates (names cFROM..), then die
 * unclosed. */
static void
crash_child(int from, int n)
{
	char f[16], num[16];
	const char *const a[] = {f, num};

	snprintf(f, sizeof(f), "%d", from);
	snprintf(num, sizeof(num), "%d", n);
	is_int(wait_st(spawn("crash", a, 2)), 0,
	       "child journalled %d creates and died unclosed", n);
}

static int
child_main(int argc, char **argv)
{
	struct vs_root *r;
	struct vs_vol *v;
	const char *mode = argv[1];
	int bad = 0;

	snprintf(rootdir, sizeof(rootdir), "%s", argv[2]);
	if (!strcmp(mode, "magic")) {
		uint32_t m = raw_magic_here(vpath("meta.tdb"));

		return write(1, &m, sizeof(m)) == sizeof(m) ? 0 : 1;
	}
	if (!strcmp(mode, "setmark")) {
		/* What an unmark that failed at step-aside leaves. */
		TDB_DATA key = {.dptr = (unsigned char *)"V", .dsize = 1}, d;
		struct tdb_context *t = tdb_open(vpath("meta.tdb"), 0,
						 TDB_DEFAULT, O_RDWR, 0);
		uint32_t m;

		if (!t)
			return 1;
		d = tdb_fetch(t, key);
		if (!d.dptr || d.dsize < 4)
			return 1;
		memcpy(&m, d.dptr, 4);
		m = m == VREC_MAGIC_V3 ? VREC_MAGIC_J3 : VREC_MAGIC_J2;
		memcpy(d.dptr, &m, 4);
		if (tdb_store(t, key, d, TDB_REPLACE))
			return 1;
		free(d.dptr);
		tdb_close(t);
		return 0;
	}
	if (vs_root_open(rootdir, false, &r))
		return 2;
	if (!strcmp(mode, "remove")) {
		int rc = vs_vol_remove(r, "jv", 0) ? 1 : 0;

		/* closed: under LeakSanitizer a leak at exit is an abort */
		vs_root_close(r);
		return rc;
	}
	if (!strcmp(mode, "crash")) {
		char nm[16];
		int from = atoi(argv[3]), n = atoi(argv[4]);

		if (vs_vol_open(r, "jv", VS_CLEANUP | VS_JOURNAL, &v))
			return 2;
		for (int i = from; i < from + n; i++) {
			snprintf(nm, sizeof(nm), "c%d", i);
			if (mkfile(v, nm))
				return 3;
		}
		_exit(0);
	}
	if (!strcmp(mode, "journal2")) {
		int rc;

		if (vs_vol_open(r, "jv", VS_CLEANUP | VS_JOURNAL, &v))
			return 2;
		rc = v->jn ? 3 : has(v, "e") ? 0 : 4;
		vs_vol_close(v);
		vs_root_close(r);
		return rc;
	}
	if (vs_vol_open(r, "jv", !strcmp(mode, "read") ? VS_RDONLY : 0, &v))
		return 2;
	for (int i = 3; i < argc; i++)
		bad += !has(v, argv[i]);
	vs_vol_close(v);
	vs_root_close(r);
	return bad ? 1 : 0;
}

static void
test_journal_and_knock(void)
{
	static const char *const names[] = {"a", "b", "c"};
	struct vs_vol *v;
	uint32_t m;

	is_int(vs_vol_create(root, "jv", 0, 0, 0, NULL), 0, "create volume");
	is_int(vs_vol_open(root, "jv", VS_CLEANUP | VS_JOURNAL, &v), 0,
	       "open with VS_JOURNAL");
	if (!v)
		return;
	ok(v->jn && v->lockmode == F_WRLCK, "journalling, lock exclusive");
	for (int i = 0; i < 3; i++)
		is_int(mkfile(v, names[i]), 0, "create %s", names[i]);
	ok(fsize("meta.journal") > 40, "the commits are in meta.journal");
	m = raw_magic();
	ok(m == VREC_MAGIC_J2 || m == VREC_MAGIC_J3,
	   "the tdb file's record is marked journalled");
	ok(!old_code_reads(m), "which older code refuses");

	is_int(serve_until(v, reader(names, 3, VS_RDONLY)), 0,
	       "a read-only opener knocks and sees every change");
	ok(!v->jn && v->lockmode == F_RDLCK, "the journaller stepped aside");
	ok(old_code_reads(raw_magic()), "record unmarked");
	is_int(fsize("meta.journal"), 40, "journal checkpointed (header only)");
	is_int(mkfile(v, "d"), 0, "a create while not journalling");
	is_int(fsize("meta.journal"), 40, "goes to the tdb");

	vs_vol_coord(v);
	ok(v->jn && v->lockmode == F_WRLCK, "no knock: journalling again");
	is_int(mkfile(v, "e"), 0, "create e");
	is_int(serve_until(v, reader((const char *const[]){"d", "e"}, 2, 0)),
	       0, "a writer opener knocks too, sees d and e");
	vs_vol_coord(v);
	ok(v->jn, "journalling again");

	/* Another VS_JOURNAL open in another process: shared, no journal. */
	is_int(serve_until(v, spawn("journal2", NULL, 0)), 0,
	       "a second journaller gets the lock shared, no journal");
	vs_vol_close(v);
	ok(old_code_reads(raw_magic()), "close unmarks");
	is_int(fsize("meta.journal"), 40, "and checkpoints");
}

static void
test_crash(void)
{
	static const char *const names[] = {"c0", "c1", "c2", "c3", "c4"};
	struct vs_vol *v = NULL;
	uint32_t m;
	pid_t pid;

	crash_child(0, 5);
	m = raw_magic();
	ok(m == VREC_MAGIC_J2 || m == VREC_MAGIC_J3, "left marked");
	ok(fsize("meta.journal") > 40, "with its records");
	pid = reader(names, 5, VS_RDONLY);
	is_int(serve_until(NULL, pid), 0,
	       "a reader sees every acknowledged create (journal read-only)");
	ok(!old_code_reads(raw_magic()), "and left it as it was");
	is_int(vs_vol_open(root, "jv", 0, &v), 0, "a writer opens it");
	for (int i = 0; v && i < 5; i++)
		ok(has(v, names[i]), "%s there", names[i]);
	ok(old_code_reads(raw_magic()), "replayed and unmarked");
	is_int(fsize("meta.journal"), 40, "journal empty");
	vs_vol_close(v);
}

/* Wait (up to 10 s) for a knock file in the volume directory. */
static bool
wait_knock(void)
{
	struct timespec ts = {0, 2 * 1000 * 1000};

	for (int i = 0; i < 5000; i++) {
		DIR *d = opendir(vpath(""));
		struct dirent *de;
		bool found = false;

		while (d && (de = readdir(d)))
			found |= !strncmp(de->d_name, "knock.", 6);
		if (d)
			closedir(d);
		if (found)
			return true;
		nanosleep(&ts, NULL);
	}
	return false;
}

/* Two writers open a volume a crash left journalled at once (a restarted
 * cairn-vold and vos): each holds the lock shared, neither waits for the
 * upgrade; one replays, the other sees the mark gone. */
static void
test_crash_two_writers(void)
{
	pid_t a, b;

	crash_child(20, 2);
	ok(!old_code_reads(raw_magic()), "left marked");
	a = reader((const char *const[]){"c20", "c21"}, 2, 0);
	b = reader((const char *const[]){"c20", "c21"}, 2, 0);
	is_int(serve_until(NULL, a), 0, "writer 1 opens it, sees the creates");
	is_int(serve_until(NULL, b), 0, "writer 2 too (no EBUSY)");
	ok(old_code_reads(raw_magic()), "replayed and unmarked");
}

/* cairn-vold stepped aside but its unmark failed: the record stays marked
 * while it holds the lock shared. A writer that opens the volume knocks;
 * cairn-vold clears the mark (its journal is empty) and the writer gets
 * in, instead of -EBUSY after a minute. */
static void
test_stale_mark(void)
{
	struct vs_vol *v = NULL;
	pid_t pid;

	is_int(vs_vol_open(root, "jv", VS_CLEANUP | VS_JOURNAL, &v), 0,
	       "journal");
	if (!v)
		return;
	is_int(mkfile(v, "s1"), 0, "create s1");
	is_int(serve_until(v, reader((const char *const[]){"s1"}, 1,
				     VS_RDONLY)),
	       0, "a reader knocks, the journaller steps aside");
	ok(!v->jn && v->lockmode == F_RDLCK, "shared, not journalling");
	is_int(wait_st(spawn("setmark", NULL, 0)), 0,
	       "the record marked again (as a failed unmark leaves it)");
	ok(!old_code_reads(raw_magic()), "marked");
	/* No vs_vol_coord() before the writer knocks: it would take the
	 * lock back and journal (clearing the mark at the next step-aside). */
	pid = reader((const char *const[]){"s1"}, 1, 0);
	ok(wait_knock(), "the writer knocks");
	is_int(serve_until(v, pid), 0,
	       "a writer gets in: the journaller cleared the mark");
	ok(old_code_reads(raw_magic()), "unmarked");
	vs_vol_close(v);
}

/* Checkpoints that fail (a file size limit: the tdb cannot grow) are
 * reported, and once the journal is 4 times its bound cairn-vold stops
 * journalling: a checkpoint with room again, then plain tdb commits. */
static void
test_ckpt_fail(void)
{
	struct vs_vol *v = NULL;
	struct rlimit old, lim;
	char nm[96];
	int rc = 0, i;

	vs_root_set_journal_max(root, 2048);
	is_int(vs_vol_open(root, "jv", VS_CLEANUP | VS_JOURNAL, &v), 0,
	       "journal with a 2 KiB bound");
	if (!v)
		return;
	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &old);
	lim = old;
	lim.rlim_cur = (rlim_t)fsize("meta.tdb") + 8192;
	/* A name per create makes the tdb grow; the journal stays small */
	for (i = 0; i < 400 && !rc && fsize("meta.journal") < 8 * 1024; i++) {
		snprintf(nm, sizeof(nm), "f%03d-%s", i,
			 "padding-padding-padding-padding-padding-padding");
		if (i == 0)
			setrlimit(RLIMIT_FSIZE, &lim);
		rc = mkfile(v, nm);
	}
	is_int(rc, 0, "creates stand while checkpoints fail");
	ok(fsize("meta.journal") >= 8 * 1024, "the journal grew past 4 bounds "
	   "(%ld bytes, %d creates)", fsize("meta.journal"), i);
	vs_vol_coord(v);
	ok(v->jn, "still journalling: the checkpoint fails again");
	/* At 8 bounds (16 KiB) the journal stops taking changes. */
	for (; i < 800 && !rc; i++) {
		snprintf(nm, sizeof(nm), "f%03d-%s", i,
			 "padding-padding-padding-padding-padding-padding");
		rc = mkfile(v, nm);
	}
	ok(rc == -ENOSPC || rc == -507, "past 8 bounds a create is refused "
	   "with ENOSPC (%d, after %d creates)", rc, i - 1);
	ok(fsize("meta.journal") >= 16 * 1024 &&
	   fsize("meta.journal") < 20 * 1024,
	   "the journal stopped near 8 bounds (%ld bytes)",
	   fsize("meta.journal"));
	setrlimit(RLIMIT_FSIZE, &old);
	vs_vol_coord(v);
	ok(!v->jn && v->lockmode == F_RDLCK,
	   "with room, it checkpointed and stopped journalling (%d %d)",
	   v->jn, v->lockmode);
	ok(old_code_reads(raw_magic()), "unmarked");
	is_int(mkfile(v, "after-stop"), 0, "a create through tdb");
	vs_vol_coord(v);
	ok(!v->jn, "not journalling again at once");
	vs_vol_close(v);
	vs_root_set_journal_max(root, 0);
	signal(SIGXFSZ, SIG_DFL);
	is_int(wait_st(spawn("read", (const char *const[]){"after-stop",
		"f000-padding-padding-padding-padding-padding-padding"}, 2)),
	       0, "every create is there");
}

/* Near tdb's limit (CAIRN_TEST_TDB_LIMIT stands for the 4 GiB here),
 * cairn-vold refuses what adds records (507) and lets removals through;
 * under it again, everything goes. */
static void
test_meta_full(void)
{
	struct vs_vol *v = NULL;

	is_int(vs_vol_open(root, "jv", VS_CLEANUP | VS_JOURNAL, &v), 0,
	       "meta full: open, journalling");
	if (!v)
		return;
	is_int(mkfile(v, "mf-a"), 0, "meta full: a create before");
	vs_vol_coord(v);
	ok(!v->meta_full, "meta full: not at 4 GiB");
	setenv("CAIRN_TEST_TDB_LIMIT", "65536", 1);
	vs_vol_coord(v);
	ok(v->meta_full, "meta full: past 7/8 of a 64 KiB limit");
	is_int(mkfile(v, "mf-b"), -507, "meta full: a create is refused (507)");
	is_int(rootop(v, PROTO_OP_UNLINK, "mf-a"), 0,
	       "meta full: an unlink goes through");
	is_int(rootop(v, PROTO_OP_UNLINK, "mf-b"), -ENOENT,
	       "meta full: the refused create left nothing");
	unsetenv("CAIRN_TEST_TDB_LIMIT");
	vs_vol_coord(v);
	ok(!v->meta_full, "meta full: under the limit again");
	is_int(mkfile(v, "mf-b"), 0, "meta full: the create goes through now");
	vs_vol_close(v);
}

/* Root (sudo vos) creates the lock file and the journal with the owner
 * of the volume directory, so a cairn-vold running as that user can use
 * them. */
static void
test_owner(void)
{
	struct vs_vol *v = NULL;
	struct stat st;
	char dir[512];

	if (geteuid() != 0) {
		skip(4, "not root");
		return;
	}
	snprintf(dir, sizeof(dir), "%s/volumes/jv", rootdir);
	unlink(vpath("lock"));
	unlink(vpath("meta.journal"));
	ok(chown(dir, 65534, 65534) == 0, "volume directory owned by 65534");
	is_int(vs_vol_open(root, "jv", VS_CLEANUP | VS_JOURNAL, &v), 0,
	       "root opens it, journalling");
	ok(stat(vpath("lock"), &st) == 0 && st.st_uid == 65534 &&
	   st.st_gid == 65534, "the lock file it made is 65534's");
	ok(stat(vpath("meta.journal"), &st) == 0 && st.st_uid == 65534,
	   "so is the journal");
	vs_vol_close(v);
	if (chown(dir, 0, 0))
		diag("chown back: %s", strerror(errno));
}

/* A knock is live while its knocker holds an OFD lock on it, whatever
 * its pid says (pid reuse, another pid namespace); one without the lock
 * counts only while its pid lives and it is young. */
static void
test_knock_liveness(void)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	struct timespec old[2] = {{time(NULL) - 3600, 0},
				  {time(NULL) - 3600, 0}};
	char dir[512], k1[600], k2[600];
	int dfd, kfd;

	snprintf(dir, sizeof(dir), "%s/volumes/jv", rootdir);
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	ok(dfd >= 0, "open the volume directory");
	ok(!vlock_knocked(dfd), "no knock");
	/* A pid no process has (pid_max is at most 2^22). */
	snprintf(k1, sizeof(k1), "%s/knock.%d.0000abcd", dir, 4999999);
	kfd = open(k1, O_WRONLY | O_CREAT, 0600);
	ok(kfd >= 0 && fcntl(kfd, F_OFD_SETLK, &fl) == 0,
	   "a knock with a dead pid, locked");
	ok(vlock_knocked(dfd), "is live (the lock counts, not the pid)");
	ok(access(k1, F_OK) == 0, "and stays");
	close(kfd);
	ok(!vlock_knocked(dfd), "its lock gone: dead");
	ok(access(k1, F_OK) < 0, "and removed");
	/* Our own pid (live, maybe reused), no lock, an hour old. */
	snprintf(k2, sizeof(k2), "%s/knock.%d.0000beef", dir, (int)getpid());
	kfd = open(k2, O_WRONLY | O_CREAT, 0600);
	ok(kfd >= 0, "an unlocked knock with a live pid");
	close(kfd);
	ok(vlock_knocked(dfd), "young: live (a knocker before its lock)");
	ok(utimensat(AT_FDCWD, k2, old, 0) == 0, "an hour old");
	ok(!vlock_knocked(dfd), "then dead (a reused pid does not count)");
	ok(access(k2, F_OK) < 0, "and removed");
	close(dfd);
}

static void
test_damaged(void)
{
	struct vs_vol *v = NULL;
	char path[600];
	uint8_t b;
	int fd, rc;

	crash_child(5, 6);
	/* Flip a byte inside the first record: whole records follow it. */
	fd = open(vpath("meta.journal"), O_RDWR);
	ok(fd >= 0 && pread(fd, &b, 1, 60) == 1, "read a byte of record 1");
	b ^= 0x5a;
	ok(fd >= 0 && pwrite(fd, &b, 1, 60) == 1, "damage it");
	close(fd);
	rc = vs_vol_open(root, "jv", VS_RDONLY, &v);
	is_int(rc, -EUCLEAN, "a reader refuses the volume: -EUCLEAN");
	vs_vol_close(v);
	v = NULL;
	rc = vs_vol_open(root, "jv", VS_CLEANUP | VS_JOURNAL, &v);
	is_int(rc, -EUCLEAN, "so does cairn-vold");
	vs_vol_close(v);
	v = NULL;
	ok(!old_code_reads(raw_magic()), "the mark stays");
	snprintf(path, sizeof(path), "%s.bad", vpath("meta.journal"));
	ok(rename(vpath("meta.journal"), path) == 0,
	   "move the journal away (giving its changes up)");
	is_int(vs_vol_open(root, "jv", 0, &v), 0, "the volume opens");
	ok(v && has(v, "c4") && !has(v, "c5"),
	   "with the state of the last checkpoint");
	vs_vol_close(v);
	ok(old_code_reads(raw_magic()), "unmarked");
}

static void
test_remove(void)
{
	struct vs_vol *v = NULL;
	pid_t pid;

	is_int(vs_vol_open(root, "jv", VS_CLEANUP | VS_JOURNAL, &v), 0,
	       "journal again");
	if (!v)
		return;
	is_int(mkfile(v, "r1"), 0, "create r1");
	pid = spawn("remove", NULL, 0);
	is_int(serve_until(v, pid), 0, "vos remove knocks and removes it");
	ok(!v->jn, "the journaller stepped aside");
	is_int(mkfile(v, "r2"), -ENOENT, "a create after it: -ENOENT");
	vs_vol_coord(v);
	ok(!v->jn, "a removed volume is never journalled again");
	is_int(mkfile(v, "r3"), -ENOENT, "still -ENOENT");
	vs_vol_close(v);
}

int
main(int argc, char **argv)
{
	const char *tmp = getenv("TMPDIR");
	char cmd[600];

	self = argv[0];
	if (argc >= 3)
		return child_main(argc, argv);
	log_init("test_vol_journal", 0, LOG_ERR);
	snprintf(rootdir, sizeof(rootdir), "%s/test_vol_journal.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(rootdir)) {
		printf("Bail out! mkdtemp\n");
		return 1;
	}
	plan(0);
	is_int(vs_root_open(rootdir, true, &root), 0, "open root");
	test_journal_and_knock();
	test_crash();
	test_crash_two_writers();
	test_stale_mark();
	test_ckpt_fail();
	test_meta_full();
	test_owner();
	test_knock_liveness();
	test_damaged();
	test_remove();
	vs_root_close(root);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", rootdir);
	if (system(cmd))
		diag("cannot remove %s", rootdir);
	return done_testing();
}
