/*
 * test_cs_wc.c - working copies kept open across writes (chunkstore/
 * cs_txn.c): one copy and one commit per checkpoint however many writes,
 * readers see every write at once, kill -9 before a commit keeps the
 * chunk's last commit and after it the new content, a death at every step
 * of a commit leaves each chunk old or new (cs_check clean), the bound on
 * open working copies, and readers racing a writer that commits.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "chunkstore/cs_i.h"
#include "tests/unit/cs_test_util.h"

#include "tests/tap.h"

#define CHUNK (256u * 1024)
#define DIED  42

static struct cs_store *
open_store(const char *dir)
{
	struct cs_params p = t_params(CHUNK);
	int err = 0;
	struct cs_store *cs = cs_open(dir, &p, &err);

	if (!cs && err == -ENOENT && cs_create(dir, &p) == 0)
		cs = cs_open(dir, &p, &err);
	return cs;
}

/* Files under @dir whose names end in @suffix ("" for chunk files). */
static int
count_files(const char *dir, const char *suffix)
{
	char cmd[4300];
	FILE *f;
	int n = -1;

	if (*suffix)
		snprintf(cmd, sizeof(cmd),
			 "find '%.4096s/chunks' -type f -name '*%s' | wc -l",
			 dir, suffix);
	else
		snprintf(cmd, sizeof(cmd),
			 "find '%.4096s/chunks' -type f ! -name '*.*' | wc -l",
			 dir);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%d", &n) != 1)
		n = -1;
	pclose(f);
	return n;
}

/* Byte @i of version @v of a chunk of file @f. */
static uint8_t
pat(unsigned f, unsigned v, uint32_t i)
{
	return (uint8_t)t_mix((uint64_t)f << 40 ^ (uint64_t)v << 32 ^ i);
}

static void
fill(uint8_t *buf, unsigned f, unsigned v, uint32_t off, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		buf[i] = pat(f, v, off + i);
}

/* Chunk @k (file @f) reads as exactly @len bytes of version @v. */
static int
holds(struct cs_store *cs, const struct cs_key *k, uint64_t dv, unsigned f,
      unsigned v, uint32_t len)
{
	static uint8_t buf[CHUNK];
	ssize_t n = cs_read(cs, k, dv, 0, buf, sizeof(buf));

	if (n != (ssize_t)len)
		return 0;
	for (uint32_t i = 0; i < len; i++)
		if (buf[i] != pat(f, v, i))
			return 0;
	return 1;
}

/* Write version @v of @len bytes as tar does: 10 KiB at a time. */
static int
write_version(struct cs_store *cs, const struct cs_key *k, uint64_t dv,
	      unsigned f, unsigned v, uint32_t len)
{
	static uint8_t buf[10240];

	for (uint32_t off = 0; off < len; off += sizeof(buf)) {
		uint32_t n = len - off < sizeof(buf) ? len - off : sizeof(buf);
		int rc;

		fill(buf, f, v, off, n);
		if ((rc = cs_write(cs, k, dv, off, buf, n)) < 0)
			return rc;
	}
	return 0;
}

static void
test_one_copy(void)
{
	char d[512];
	struct cs_store *cs = open_store(t_mkdtemp(d, sizeof(d), "wc1"));
	struct cs_key k = t_key(1, 1, 0);
	struct cs_stats st;
	struct cs_info info;

	if (!cs) {
		ok(0, "open a store");
		return;
	}
	is_int(write_version(cs, &k, 5, 1, 1, 70000), 0,
	       "seven 10 KiB writes into a new chunk");
	cs_get_stats(cs, &st);
	ok(st.wc_made == 1 && st.wc_open == 1,
	   "one working copy for all of them (made %llu, open %llu)",
	   (unsigned long long)st.wc_made, (unsigned long long)st.wc_open);
	ok(holds(cs, &k, 5, 1, 1, 70000), "a reader sees every write");
	is_int(count_files(d, ".wip"), 1, "one .wip file");
	is_int(count_files(d, ""), 0, "no chunk file before the commit");
	is_int(cs_commit_file_flags(cs, 1, k.fid, 99), -EINVAL,
	       "commit_file: bad flags");
	is_int(cs_commit_file_flags(cs, 1, k.fid, CS_C_NOSYNC), 1,
	       "commit_file without sync commits 1");
	cs_get_stats(cs, &st);
	is_int(st.wc_open, 0, "none open after the commit");
	is_int(cs_lookup(cs, &k, &info), 0, "lookup");
	ok(info.flags == (CS_F_VALID | CS_F_DIRTY) && info.len == 70000,
	   "committed dirty, 70000 bytes");
	ok(count_files(d, ".wip") == 0 && count_files(d, "") == 1,
	   "the .wip became the chunk file");
	is_int(cs_commit_file_flags(cs, 1, k.fid, CS_C_NOSYNC), 0,
	       "commit_file again: nothing to do");
	/* The next session: one copy of the committed chunk, then writes
	 * in place. */
	is_int(write_version(cs, &k, 5, 1, 2, 70000), 0, "rewrite it");
	cs_get_stats(cs, &st);
	is_int(st.wc_made, 2, "one more working copy (copy on write once)");
	ok(holds(cs, &k, 5, 1, 2, 70000), "readers see the new version");
	is_int(cs_sync_file(cs, 1, k.fid), 0, "sync_file commits and syncs");
	cs_get_stats(cs, &st);
	ok(st.wc_made == 2 && st.wc_open == 0, "no copy made by the sync");
	cs_close(cs);
	cs = open_store(d);
	ok(cs && holds(cs, &k, 5, 1, 2, 70000),
	   "the synced version after close");
	cs_close(cs);
	t_rm_rf(d);
}

/*
 * kill -9 with a working copy open: the chunk is its last commit. @commit:
 * the second version is committed (no sync) before the kill.
 */
static void
test_kill(int commit)
{
	char d[512];
	struct cs_store *cs = open_store(t_mkdtemp(d, sizeof(d), "wckill"));
	struct cs_key k = t_key(2, 3, 0), kn = t_key(2, 3, 1);
	const char *fsck = t_fsck_path();
	pid_t pid;
	int st = 0;

	cs_close(cs);
	pid = fork();
	if (pid == 0) {
		struct cs_store *c = open_store(d);

		if (!c || write_version(c, &k, 7, 3, 1, 50000) < 0 ||
		    cs_commit_flags(c, &k, CS_C_NOSYNC) < 0 ||
		    write_version(c, &k, 7, 3, 2, 60000) < 0 ||
		    write_version(c, &kn, 7, 3, 2, 20000) < 0)
			_exit(1);
		if (commit &&
		    cs_commit_file_flags(c, 2, k.fid, CS_C_NOSYNC) != 2)
			_exit(1);
		raise(SIGKILL);
		_exit(2);
	}
	waitpid(pid, &st, 0);
	ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "%s: child killed",
	   commit ? "committed" : "open");
	if (fsck)
		is_int(t_run_fsck(fsck, "--check", d, 1), 0,
		       "%s: cairn-fsck --check after the kill: no errors",
		       commit ? "committed" : "open");
	cs = open_store(d);
	ok(cs != NULL, "reopen after the kill");
	if (commit) {
		ok(holds(cs, &k, 7, 3, 2, 60000),
		   "committed: the new version survived the kill");
		ok(holds(cs, &kn, 7, 3, 2, 20000),
		   "committed: the new chunk too");
	} else {
		struct cs_info info;

		ok(holds(cs, &k, 7, 3, 1, 50000),
		   "open: the chunk is its last commit");
		is_int(cs_lookup(cs, &kn, &info), -ENOENT,
		       "open: a chunk never committed is absent");
		is_int(count_files(d, ".wip"), 0, "recovery removed the .wip");
	}
	cs_close(cs);
	t_rm_rf(d);
}

/* ---- a death at every write-side step of a commit ---- */

static int fault_step, fault_count;

static int
die_hook(enum cs_fault_op op, const char *what)
{
	(void)op;
	(void)what;
	if (++fault_count == fault_step)
		_exit(DIED);
	return 0;
}

#define NK 4

static void
test_commit_cuts(void)
{
	char d[512], dir[600];
	const char *fsck = t_fsck_path();
	int step, bad = 0, died = 0, ran = 0;

	t_mkdtemp(d, sizeof(d), "wccut");
	snprintf(dir, sizeof(dir), "%s/c", d);
	for (step = 1; step < 200; step++) {
		struct cs_key k[NK];
		struct cs_store *cs;
		struct cs_check_result res;
		int st = 0, pfd[2], fs;
		char c = 0;
		pid_t pid;

		t_rm_rf(dir);
		cs = open_store(dir);
		for (int i = 0; i < NK; i++)
			k[i] = t_key(3, 4, (uint64_t)i);
		/* Chunks 0 and 1 have a committed version 1 (one synced,
		 * one not); 2 and 3 are new. */
		if (!cs || write_version(cs, &k[0], 9, 4, 1, 30000) < 0 ||
		    write_version(cs, &k[1], 9, 4, 1, 40000) < 0 ||
		    cs_commit(cs, &k[0]) < 0 ||
		    cs_commit_flags(cs, &k[1], CS_C_NOSYNC) < 0) {
			ok(0, "set up step %d", step);
			break;
		}
		cs_close(cs);
		if (pipe(pfd) < 0)
			break;
		pid = fork();
		if (pid == 0) {
			struct cs_store *w;

			close(pfd[0]);
			w = open_store(dir);
			if (!w)
				_exit(1);
			for (int i = 0; i < NK; i++)
				if (write_version(w, &k[i], 9, 4, 2,
						  45000 + 5000 * (uint32_t)i) <
				    0)
					_exit(1);
			fault_count = 0;
			fault_step = step;
			cs_fault_hook = die_hook;
			if (cs_commit_file_flags(w, 3, k[0].fid, CS_C_NOSYNC) ==
			    NK) {
				if (write(pfd[1], "c", 1) != 1)
					_exit(98);
			}
			cs_fault_hook = NULL;
			raise(SIGKILL);
			_exit(2);
		}
		close(pfd[1]);
		if (read(pfd[0], &c, 1) != 1)
			c = 0;
		close(pfd[0]);
		waitpid(pid, &st, 0);
		ran++;
		if (WIFEXITED(st) && WEXITSTATUS(st) == DIED)
			died++;
		else if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)) {
			diag("step %d: child status %d", step, st);
			bad++;
			break;
		}
		if (fsck && (fs = t_run_fsck(fsck, "--check", dir, 1)) != 0) {
			diag("step %d: cairn-fsck --check exited %d", step, fs);
			bad++;
		}
		cs = open_store(dir);
		if (!cs) {
			diag("step %d: cannot reopen", step);
			bad++;
			break;
		}
		for (int i = 0; i < NK; i++) {
			uint32_t nl = 45000 + 5000 * (uint32_t)i;
			struct cs_info info;
			int isnew = holds(cs, &k[i], 9, 4, 2, nl);
			int isold =
				i < 2 ? holds(cs, &k[i], 9, 4, 1,
					      30000 + 10000 * (uint32_t)i)
				      : cs_lookup(cs, &k[i], &info) == -ENOENT;

			if (!isnew && !isold) {
				diag("step %d: chunk %d neither old nor new",
				     step, i);
				bad++;
			}
			if (c == 'c' && !isnew) {
				diag("step %d: commit returned, chunk %d old",
				     step, i);
				bad++;
			}
		}
		cs_close(cs);
		if (cs_check(dir, 0, NULL, NULL, &res, NULL, NULL) < 0 ||
		    res.errors) {
			diag("step %d: cs_check found errors", step);
			bad++;
		}
		if (c == 'c' && !(WIFEXITED(st) && WEXITSTATUS(st) == DIED))
			break; /* the commit ran to its end: every step done */
	}
	ok(died >= NK * 2, "died at %d of %d steps of a 4-chunk commit", died,
	   ran);
	is_int(bad, 0,
	       "each chunk old or new, new once the commit returned, "
	       "cache checks clean");
	t_rm_rf(d);
}

static void
test_open_bound(void)
{
	char d[512];
	struct cs_store *cs = open_store(t_mkdtemp(d, sizeof(d), "wcmax"));
	struct cs_stats st;
	unsigned n = CS_WC_OPEN_MAX + 6, bad = 0;
	struct cs_info info;

	if (!cs) {
		ok(0, "open a store");
		return;
	}
	for (unsigned f = 0; f < n; f++) {
		struct cs_key k = t_key(4, 100 + f, 0);

		if (write_version(cs, &k, 1, 100 + f, 1, 5000) < 0)
			bad++;
	}
	is_int(bad, 0, "%u working copies written", n);
	cs_get_stats(cs, &st);
	ok(st.wc_open == CS_WC_OPEN_MAX && st.wc_evicts == 6,
	   "at most %u open (open %llu, committed to make room %llu)",
	   CS_WC_OPEN_MAX, (unsigned long long)st.wc_open,
	   (unsigned long long)st.wc_evicts);
	{
		struct cs_key k0 = t_key(4, 100, 0), k9 = t_key(4, 106, 0);
		struct cs_info i9;

		ok(cs_lookup(cs, &k0, &info) == 0 &&
			   info.flags == (CS_F_VALID | CS_F_DIRTY) &&
			   cs->slots[info.slot].wc == 0,
		   "the least recently written was committed");
		ok(cs_lookup(cs, &k9, &i9) == 0 && cs->slots[i9.slot].wc != 0,
		   "a later one is still open");
	}
	bad = 0;
	for (unsigned f = 0; f < n; f++) {
		struct cs_key k = t_key(4, 100 + f, 0);

		bad += !holds(cs, &k, 1, 100 + f, 1, 5000);
	}
	is_int(bad, 0, "every chunk reads back");
	/* a write into an open one makes no room */
	{
		struct cs_key k = t_key(4, 100 + n - 1, 0);

		is_int(write_version(cs, &k, 1, 100 + n - 1, 1, 5000), 0,
		       "write into an open working copy");
		cs_get_stats(cs, &st);
		is_int(st.wc_evicts, 6, "committed nothing for it");
	}
	cs_close(cs);
	cs = open_store(d);
	{
		struct cs_key k0 = t_key(4, 100, 0),
			      kl = t_key(4, 100 + n - 1, 0);

		ok(cs && holds(cs, &k0, 1, 100, 1, 5000),
		   "a committed one survives close");
		is_int(cs ? cs_lookup(cs, &kl, &info) : -1, -ENOENT,
		       "an open one is discarded by close");
	}
	cs_close(cs);
	t_rm_rf(d);
}

/* ---- a commit without sync over content that may be durable ---- */

static int nsyncs;

static int
count_hook(enum cs_fault_op op, const char *what)
{
	(void)what;
	if (op == CS_FOP_FSYNC)
		nsyncs++;
	return 0;
}

/* fsyncs of one write + commit without sync of @k */
static int
commit_syncs(struct cs_store *cs, const struct cs_key *k, unsigned v)
{
	nsyncs = 0;
	cs_fault_hook = count_hook;
	if (write_version(cs, k, 2, 6, v, 30000) < 0 ||
	    cs_commit_flags(cs, k, CS_C_NOSYNC) < 0)
		nsyncs = -1;
	cs_fault_hook = NULL;
	return nsyncs;
}

static void
test_keep_durable(void)
{
	char d[512];
	struct cs_store *cs = open_store(t_mkdtemp(d, sizeof(d), "wcdur"));
	struct cs_key k = t_key(6, 6, 0);
	uint8_t buf[100];

	if (!cs) {
		ok(0, "open a store");
		return;
	}
	memset(buf, 1, sizeof(buf));
	is_int(cs_put(cs, &k, 2, buf, sizeof(buf), 0), 0, "a clean chunk");
	is_int(commit_syncs(cs, &k, 1), 0, "over a clean chunk: no fsync");
	is_int(commit_syncs(cs, &k, 2), 0,
	       "over a dirty one never synced: no fsync");
	is_int(cs_sync_file(cs, 6, k.fid), 0, "sync the file (a close)");
	is_int(commit_syncs(cs, &k, 3), 1,
	       "over a synced dirty one: its data is synced first");
	is_int(commit_syncs(cs, &k, 4), 1,
	       "and over that one too (it replaced durable content)");
	is_int(cs_mark_clean(cs, &k, 2), 0, "stored: clean");
	is_int(commit_syncs(cs, &k, 5), 0, "over a clean one again: none");
	cs_close(cs);
	cs = open_store(d);
	ok(cs && holds(cs, &k, 2, 6, 5, 30000), "reopened");
	is_int(cs ? commit_syncs(cs, &k, 6) : -1, 1,
	       "over a dirty one after an open (unknown: synced): synced");
	ok(holds(cs, &k, 2, 6, 6, 30000), "reads the last version");
	cs_close(cs);
	t_rm_rf(d);
}

/* ---- readers racing a writer that commits now and then ---- */

struct race {
	struct cs_store *cs;
	struct cs_key k;
	atomic_int done;
};

/* One reader's own: its buffer and counts (no state shared but *r). */
struct rd {
	struct race *r;
	uint8_t *buf;
	int errors;
	unsigned reads;
};

static void *
reader(void *arg)
{
	struct rd *me = arg;
	struct race *r = me->r;
	uint8_t *buf = me->buf;
	ssize_t last = 0;

	while (!atomic_load(&r->done)) {
		ssize_t n = cs_read(r->cs, &r->k, 3, 0, buf, CHUNK);

		if (n == -ENOENT && last == 0)
			continue;
		if (n < last) {
			me->errors++;
			diag("read %zd bytes after %zd", n, last);
			break;
		}
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != pat(5, 1, (uint32_t)i)) {
				me->errors++;
				diag("byte %zd of %zd wrong", i, n);
				break;
			}
		}
		last = n;
		me->reads++;
	}
	return NULL;
}

static void
test_readers(void)
{
	char d[512];
	struct race r = {0};
	struct rd rd[2];
	pthread_t th[2];
	uint8_t buf[1000];
	int werr = 0, errors = 0;
	unsigned reads = 0;

	r.cs = open_store(t_mkdtemp(d, sizeof(d), "wcrace"));
	r.k = t_key(5, 5, 0);
	if (!r.cs) {
		ok(0, "open a store");
		return;
	}
	for (int i = 0; i < 2; i++) {
		static uint8_t bufs[2][CHUNK];

		rd[i] = (struct rd){.r = &r, .buf = bufs[i]};
		pthread_create(&th[i], NULL, reader, &rd[i]);
	}
	for (uint32_t off = 0; off + sizeof(buf) <= CHUNK; off += sizeof(buf)) {
		fill(buf, 5, 1, off, sizeof(buf));
		if (cs_write(r.cs, &r.k, 3, off, buf, sizeof(buf)) < 0)
			werr++;
		if ((off / sizeof(buf)) % 16 == 15 &&
		    cs_commit_file_flags(r.cs, 5, r.k.fid, CS_C_NOSYNC) < 0)
			werr++;
		if ((off / sizeof(buf)) % 64 == 63 &&
		    cs_mark_clean(r.cs, &r.k, 3) < 0)
			werr++;
	}
	atomic_store(&r.done, 1);
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		errors += rd[i].errors;
		reads += rd[i].reads;
	}
	is_int(werr, 0, "writes, commits and mark-cleans succeeded");
	ok(errors == 0 && reads > 0,
	   "%u reads racing them saw only written bytes, never fewer", reads);
	cs_close(r.cs);
	t_rm_rf(d);
}

/*
 * A store's reply while a working copy is open (review 10, finding 1):
 * the store may have staged the copy's bytes (cs_read prefers it), so
 * cs_mark_clean must not call the committed file, which holds older
 * bytes, clean at the new DV. It retags and keeps DIRTY; a kill -9 (here
 * a close, which discards the copy) then leaves the old bytes DIRTY, never
 * CLEAN at a DV whose content on the server is the copy's.
 */
static void
test_mark_clean_open(void)
{
	char d[512];
	struct cs_store *cs = open_store(t_mkdtemp(d, sizeof(d), "wcmc"));
	struct cs_key k = t_key(1, 4, 0);
	struct cs_info info = {0};

	if (!cs) {
		ok(0, "open a store");
		return;
	}
	is_int(write_version(cs, &k, 5, 4, 1, 30000), 0, "write A");
	is_int(cs_commit_file_flags(cs, 1, k.fid, CS_C_NOSYNC), 1,
	       "commit A");
	is_int(write_version(cs, &k, 5, 4, 2, 30000), 0,
	       "write B into a working copy");
	ok(holds(cs, &k, 5, 4, 2, 30000), "a store would stage B");
	is_int(cs_mark_clean(cs, &k, 6), 0, "mark clean at DV 6");
	is_int(cs_lookup(cs, &k, &info), 0, "lookup");
	ok(info.dv == 6 && (info.flags & CS_F_DIRTY),
	   "retagged, still DIRTY while the copy is open (flags %#x)",
	   info.flags);
	ok(holds(cs, &k, 6, 4, 2, 30000), "B at DV 6");
	cs_close(cs); /* discards the working copy, like a kill -9 */
	cs = open_store(d);
	ok(cs && cs_lookup(cs, &k, &info) == 0, "reopened, A still there");
	ok(cs && !(info.dv == 6 && !(info.flags & CS_F_DIRTY)),
	   "A is not CLEAN at DV 6 (dv %llu flags %#x)",
	   (unsigned long long)info.dv, info.flags);
	/* With no copy open, mark clean does clear DIRTY. */
	ok(cs && cs_mark_clean(cs, &k, 7) == 0 &&
		   cs_lookup(cs, &k, &info) == 0 && info.dv == 7 &&
		   !(info.flags & CS_F_DIRTY) && holds(cs, &k, 7, 4, 1, 30000),
	   "no copy open: A clean at DV 7");
	cs_close(cs);
	t_rm_rf(d);
}

/*
 * Space (review 10, finding 6): a dirty chunk's open working copy is its
 * next version, so dirty_bytes counts the larger of the two, not both;
 * and a write that finds the cache full commits idle working copies of
 * other chunks (freeing their old committed files) before failing.
 */
static void
test_space(void)
{
	char d[512];
	struct cs_params p = t_params(CHUNK);
	struct cs_store *cs;
	struct cs_key k0 = t_key(1, 5, 0), k1 = t_key(1, 5, 1),
		      k2 = t_key(1, 5, 2);
	struct cs_stats st;
	int err = 0;

	t_mkdtemp(d, sizeof(d), "wcsp");
	p.limits.max_bytes = 1000000;
	if (cs_create(d, &p) < 0 || !(cs = cs_open(d, &p, &err))) {
		ok(0, "open a store with a 1 MB limit");
		return;
	}
	ok(write_version(cs, &k0, 5, 5, 1, 200000) == 0 &&
		   write_version(cs, &k1, 5, 6, 1, 200000) == 0 &&
		   cs_commit_file_flags(cs, 1, k0.fid, CS_C_NOSYNC) == 2,
	   "two dirty chunks of 200000 bytes committed");
	ok(write_version(cs, &k0, 5, 5, 2, 200000) == 0 &&
		   write_version(cs, &k1, 5, 6, 2, 250000) == 0,
	   "both rewritten into working copies");
	cs_get_stats(cs, &st);
	is_int((long long)st.dirty_bytes, 450000,
	       "dirty bytes: the larger of chunk and copy, not both");
	is_int((long long)st.bytes_used, 850000, "bytes used: both");
	is_int(write_version(cs, &k2, 5, 7, 1, 200000), 0,
	       "a third chunk in a full cache: written");
	cs_get_stats(cs, &st);
	ok(st.wc_space_commits >= 1 && st.bytes_used <= 850000,
	   "by committing an idle copy first (%llu, %llu bytes used)",
	   (unsigned long long)st.wc_space_commits,
	   (unsigned long long)st.bytes_used);
	ok(holds(cs, &k0, 5, 5, 2, 200000) && holds(cs, &k1, 5, 6, 2, 250000) &&
		   holds(cs, &k2, 5, 7, 1, 200000),
	   "every chunk reads its last version");
	is_int(cs_commit_file_flags(cs, 1, k0.fid, CS_C_NOSYNC) >= 1, 1,
	       "commit the rest");
	cs_get_stats(cs, &st);
	is_int((long long)st.dirty_bytes, 650000, "dirty bytes after");
	cs_close(cs);
	t_rm_rf(d);
}

int
main(void)
{
	plan(0);
	test_one_copy();
	test_kill(0);
	test_kill(1);
	test_commit_cuts();
	test_open_bound();
	test_keep_durable();
	test_readers();
	test_mark_clean_open();
	test_space();
	done_testing();
	return 0;
}
