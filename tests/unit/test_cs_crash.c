/*
 * test_cs_crash.c - the chunk store survives dying at any step.
 *
 * (a) Fault injection, as tdb's run-die-during-transaction.c: a child runs
 * a fixed sequence (open, puts, write + commit, mark clean, dirty put,
 * invalidate, close) with cs_fault_hook armed to "die" (_exit) or to fail
 * (-EIO) at step N of its writes, fsyncs, renames, truncates and unlinks,
 * for N = 1, 2, ... until the sequence runs through. After each death a
 * separate process, cairn-fsck --check, must find the cache consistent
 * (exit 0; after an injected failure the same check runs in-process), and
 * reopening it must return only good content and every chunk whose
 * durable call returned 0.
 *
 * (b) SIGKILL at random instants: a child stores clean and dirty chunks,
 * commits working copies and marks chunks clean, reporting each call that
 * returned through a pipe, and is killed after a random delay; 200 rounds
 * (fewer only if a 60 s budget runs out first, as on slow sanitizer runs),
 * cairn-fsck --check after every fourth.
 * Content is derived from each chunk's tag, so every read is verified.
 *
 * CS_CRASH_SEED=N replays (b); CS_CRASH_ROUNDS=N changes its round count.
 */
#include "tests/unit/cs_test_util.h"

#include <signal.h>
#include <sys/time.h>
#include <time.h>

#include "chunkstore/cs_i.h"
#include "tests/tap.h"

#define CHUNK	       CS_CHUNK_MIN
#define MAXLEN	       3000
#define DIED	       77
#define TIME_BUDGET_MS 60000 /* sanitizer builds on a loaded 2-core machine need it */

static char base[256];
static const char *fsck;

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- (a) fault injection ---- */

enum { MODE_DIE, MODE_FAIL };
static int fault_mode, fault_step, fault_count, fault_pipe = -1;

static int
fault_hook(enum cs_fault_op op, const char *what)
{
	(void)op;
	(void)what;
	if (++fault_count != fault_step)
		return 0;
	if (fault_mode == MODE_DIE)
		_exit(DIED);
	if (write(fault_pipe, "F", 1) != 1)
		_exit(98);
	return -EIO;
}

static void
note(int fd, char c)
{
	if (write(fd, &c, 1) != 1)
		_exit(98);
}

static struct cs_key
KA(unsigned f) {
	return t_key(1, f, 0);
}

/* The fixed sequence; notes which calls returned 0. */
static void
sequence(const char *dir, int pfd)
{
	struct cs_params p = t_params(0);
	struct cs_key k1 = KA(1), k2 = KA(2), k3 = KA(3);
	uint8_t buf[MAXLEN];
	struct cs_store *cs;
	uint32_t len;
	int err;

	fault_pipe = pfd;
	cs_fault_hook = fault_hook;
	cs = cs_open(dir, &p, &err);
	if (!cs)
		_exit(0);
	if (t_put(cs, &k1, 2, MAXLEN, 0) == 0)
		note(pfd, 'a');
	if (t_put(cs, &k3, 2, MAXLEN, 0) == 0)
		note(pfd, 'b');
	len = t_len(&k2, 2, MAXLEN);
	t_fill(buf, len, &k2, 2);
	if (cs_write(cs, &k2, 2, 0, buf, len / 2) == 0 &&
	    cs_write(cs, &k2, 2, len / 2, buf + len / 2, len - len / 2) == 0 &&
	    cs_commit(cs, &k2) == 0)
		note(pfd, 'c');
	if (cs_mark_clean(cs, &k2, 3) == 0)
		note(pfd, 'm');
	if (t_put(cs, &k1, 4, MAXLEN, CS_F_DIRTY) == 0)
		note(pfd, 'd');
	if (cs_invalidate(cs, 1, k3.fid, UINT64_MAX) == 1)
		note(pfd, 'i');
	cs_close(cs);
	note(pfd, 'z');
	_exit(0);
}

/* Even DVs carry their own content; odd ones (after cs_mark_clean to
 * dv + 1) carry the content of dv - 1. */
static int
content_ok(struct cs_store *cs, const struct cs_key *k, uint64_t dv, int *eio)
{
	uint8_t buf[CHUNK];
	ssize_t n = cs_read(cs, k, dv, 0, buf, sizeof(buf));
	struct cs_info info;

	/* The first read after a crash may find the file newer than its
	 * record (killed between rename and record write): the tag is
	 * adopted and the read says -ESTALE. Look the chunk up again. */
	if (n == -ESTALE && cs_lookup(cs, k, &info) == 0 && info.dv != dv) {
		dv = info.dv;
		n = cs_read(cs, k, dv, 0, buf, sizeof(buf));
	}
	if (n == -EIO)
		(*eio)++;
	if (n < 0)
		diag("read of dv %llu: %s", (unsigned long long)dv,
		     strerror((int)-n));
	return n >= 0 && t_check(buf, (size_t)n, k, dv & ~1ull, MAXLEN);
}

struct verify {
	struct cs_store *cs;
	int bad, eio, n;
};

static int
verify_cb(const struct cs_info *i, void *arg)
{
	struct verify *v = arg;

	v->n++;
	if (!content_ok(v->cs, &i->key, i->dv, &v->eio)) {
		diag("chunk (vol %u, file %u, chunk %llu) dv %llu: bad content",
		     i->key.vol, i->key.fid[0],
		     (unsigned long long)i->key.chunk,
		     (unsigned long long)i->dv);
		v->bad++;
	}
	return 0;
}

/* Reopen @dir and check every chunk's content. @return bad count. */
static int
verify_all(struct cs_store *cs)
{
	struct verify v = {.cs = cs};

	cs_iterate(cs, verify_cb, &v);
	return v.bad + v.eio;
}

static int
run_fault(int mode, int step, char *notes, size_t nsz, int *fired)
{
	char dir[512];
	int pfd[2], st;
	ssize_t n;
	pid_t pid;

	snprintf(dir, sizeof(dir), "%s/fault", base);
	t_rm_rf(dir);
	{
		struct cs_params p = t_params(CHUNK);

		if (cs_create(dir, &p) < 0)
			return -1;
	}
	if (pipe(pfd) < 0)
		return -1;
	fault_mode = mode;
	fault_step = step;
	fault_count = 0;
	pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		sequence(dir, pfd[1]);
	}
	close(pfd[1]);
	n = 0;
	for (ssize_t r; (size_t)n < nsz - 1 &&
			(r = read(pfd[0], notes + n, nsz - 1 - (size_t)n)) > 0;)
		n += r;
	notes[n] = 0;
	close(pfd[0]);
	waitpid(pid, &st, 0);
	*fired = strchr(notes, 'F') != NULL ||
		 (WIFEXITED(st) && WEXITSTATUS(st) == DIED);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int
check_fault_state(int mode, int step, const char *notes)
{
	char dir[512];
	struct cs_params p = t_params(0);
	struct cs_key k1 = KA(1), k2 = KA(2), k3 = KA(3);
	struct cs_info i1, i2, i3;
	struct cs_store *cs;
	int err, bad = 0, fs;
	int h1, h2, h3;

	snprintf(dir, sizeof(dir), "%s/fault", base);
	/* A death is checked by another process, as tdb's external agent;
	 * a failed call left a live process behind, and the same check runs
	 * in-process (cs_check is what cairn-fsck runs) to save an exec. */
	if (mode == MODE_DIE && fsck) {
		fs = t_run_fsck(fsck, "--check", dir, 1);
		if (fs != 0) {
			diag("mode die step %d: cairn-fsck --check exited %d",
			     step, fs);
			t_run_fsck(fsck, "--check", dir, 0);
			bad++;
		}
	} else {
		struct cs_check_result res;

		fs = cs_check(dir, 0, NULL, NULL, &res, NULL, NULL);
		if (fs < 0 || res.errors) {
			diag("mode %s step %d: cs_check: %d, %llu errors",
			     mode ? "fail" : "die", step, fs,
			     (unsigned long long)res.errors);
			bad++;
		}
	}
	cs = cs_open(dir, &p, &err);
	if (!cs) {
		diag("mode %s step %d: reopen failed: %s",
		     mode ? "fail" : "die", step, strerror(-err));
		return bad + 1;
	}
	bad += verify_all(cs);
	h1 = cs_lookup(cs, &k1, &i1) == 0;
	h2 = cs_lookup(cs, &k2, &i2) == 0;
	h3 = cs_lookup(cs, &k3, &i3) == 0;
	if (strchr(notes, 'd') &&
	    !(h1 && i1.dv == 4 && (i1.flags & CS_F_DIRTY)))
		bad++, diag("step %d: durable dirty put lost", step);
	if (mode == MODE_DIE && strchr(notes, 'a') && !h1)
		bad++, diag("step %d: put chunk lost by process death", step);
	if (strchr(notes, 'c') && !h2)
		bad++, diag("step %d: committed chunk lost", step);
	if (strchr(notes, 'c') && h2 && !strchr(notes, 'm') &&
	    !((i2.dv == 2 && (i2.flags & CS_F_DIRTY)) || i2.dv == 3))
		bad++, diag("step %d: committed chunk neither dirty nor "
			    "cleaned",
			    step);
	if (strchr(notes, 'm') && h2 &&
	    !(i2.dv == 3 && !(i2.flags & CS_F_DIRTY)) && mode == MODE_DIE)
		bad++, diag("step %d: mark clean lost by process death", step);
	if (strchr(notes, 'i') && h3)
		bad++, diag("step %d: invalidated chunk back", step);
	cs_close(cs);
	return bad;
}

static void
test_fault_injection(void)
{
	for (int mode = MODE_DIE; mode <= MODE_FAIL; mode++) {
		int step, fired = 1, bad = 0, runs = 0;
		char notes[64];

		for (step = 1; fired && step < 1000; step++) {
			int st = run_fault(mode, step, notes, sizeof(notes),
					   &fired);

			if (st < 0 || (st != 0 && st != DIED)) {
				diag("mode %d step %d: child exit %d", mode,
				     step, st);
				bad++;
				break;
			}
			bad += check_fault_state(mode, step, notes);
			runs++;
		}
		ok(bad == 0 && !fired,
		   "%s at each of %d steps: cache consistent (%s), "
		   "nothing durable lost",
		   mode == MODE_DIE ? "die" : "fail", runs - 1,
		   mode == MODE_FAIL ? "cs_check in-process"
		   : fsck	     ? "cairn-fsck --check"
				     : "cs_check, cairn-fsck not found");
		ok(strchr(notes, 'z') && strchr(notes, 'd') &&
			   strchr(notes, 'i'),
		   "%s: the sequence ran through unharmed at the end (notes "
		   "'%s')",
		   mode == MODE_DIE ? "die" : "fail", notes);
	}
}

/* ---- (b) SIGKILL at random points ---- */

enum { R_READY = 0, R_DIRTY = 1, R_CLEAN = 2 };

struct report {
	uint8_t kind;
	uint8_t cls; /* 3: dirty-put keys, 4: working-copy keys */
	uint8_t j;
	uint8_t pad;
	uint32_t pad2;
	uint64_t dv;
};

#define NJ 6

static void
report(int fd, uint8_t kind, uint8_t cls, unsigned j, uint64_t dv)
{
	struct report r = {.kind = kind, .cls = cls, .j = (uint8_t)j, .dv = dv};

	if (write(fd, &r, sizeof(r)) != sizeof(r))
		_exit(98);
}

static void
writer(const char *dir, uint64_t seed, unsigned round, int pfd)
{
	struct cs_params p = t_params(0);
	struct cs_store *cs;
	uint8_t buf[MAXLEN];
	int err;

	cs = cs_open(dir, &p, &err);
	if (!cs)
		_exit(3);
	report(pfd, R_READY, 3, 0, 0);
	for (uint64_t i = 0;; i++) {
		uint64_t r = t_mix(seed ^ (i * 0x9e3779b97f4a7c15ull));
		uint64_t dv = 2 * ((uint64_t)round * 1000000 + i + 1);
		unsigned j = (unsigned)(r >> 8) % NJ;

		switch (r % 8) {
		case 0:
		case 1:
		case 2: {
			struct cs_key k = t_key(2, (unsigned)(r >> 16) % 8,
						(r >> 24) % 4);

			t_put(cs, &k, dv, MAXLEN, 0);
			break;
		}
		case 3: {
			struct cs_key k = t_key(3, j, 0);

			if (t_put(cs, &k, dv, MAXLEN, CS_F_DIRTY) == 0)
				report(pfd, R_DIRTY, 3, j, dv);
			break;
		}
		case 4:
		case 5: {
			struct cs_key k = t_key(4, j, 0);
			struct cs_info info;
			uint64_t wdv =
				cs_lookup(cs, &k, &info) == 0 ? info.dv : dv;
			uint32_t len = t_len(&k, wdv & ~1ull, MAXLEN);

			/* Rewrite the content the DV calls for, in two writes.
			 */
			t_fill(buf, len, &k, wdv & ~1ull);
			if (cs_truncate(cs, &k, wdv, 0) == 0 &&
			    cs_write(cs, &k, wdv, len / 3, buf + len / 3,
				     len - len / 3) == 0 &&
			    cs_write(cs, &k, wdv, 0, buf, len / 3) == 0 &&
			    cs_commit(cs, &k) == 0)
				report(pfd, R_DIRTY, 4, j, wdv);
			break;
		}
		case 6: {
			uint8_t cls = (r >> 20) & 1 ? 3 : 4;
			struct cs_key k = t_key(cls, j, 0);
			struct cs_info info;

			if (cs_lookup(cs, &k, &info) == 0 && !(info.dv & 1) &&
			    cs_mark_clean(cs, &k, info.dv + 1) == 0)
				report(pfd, R_CLEAN, cls, j, info.dv + 1);
			break;
		}
		default: {
			struct cs_key k = t_key(2, (unsigned)(r >> 16) % 8, 0);

			cs_invalidate(cs, 2, k.fid, UINT64_MAX);
			break;
		}
		}
	}
}

struct model {
	uint64_t dv; /* last reported dv, 0 none */
	int dirty;   /* last report made it dirty */
};

static void
test_kill_rounds(void)
{
	const char *env = getenv("CS_CRASH_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
	unsigned rounds = 200, done = 0;
	struct model m[2][NJ];
	char dir[512];
	long long t0 = now_ms();
	int bad = 0, fsck_bad = 0, lost = 0, eio = 0, reports = 0;

	env = getenv("CS_CRASH_ROUNDS");
	if (env)
		rounds = (unsigned)strtoul(env, NULL, 0);
	diag("kill rounds: seed %llu (replay with CS_CRASH_SEED=%llu)",
	     (unsigned long long)seed, (unsigned long long)seed);
	memset(m, 0, sizeof(m));
	snprintf(dir, sizeof(dir), "%s/kill", base);
	{
		struct cs_params p = t_params(CHUNK);

		cs_create(dir, &p);
	}
	for (unsigned round = 0; round < rounds; round++) {
		uint64_t rs = t_mix(seed + round);
		int pfd[2], st;
		struct report r;
		pid_t pid;

		if (now_ms() - t0 > TIME_BUDGET_MS) {
			diag("time budget reached after %u rounds", round);
			break;
		}
		if (pipe(pfd) < 0)
			break;
		pid = fork();
		if (pid == 0) {
			close(pfd[0]);
			writer(dir, rs, round, pfd[1]);
			_exit(0);
		}
		close(pfd[1]);
		/* Even rounds count the delay from the end of cs_open (so slow
		 * sanitizer start-ups still leave time for work), odd ones from
		 * the fork (so some kills land in open and recovery). */
		if (!(round % 2) && read(pfd[0], &r, sizeof(r)) != sizeof(r))
			diag("round %u: writer died before it was ready",
			     round);
		usleep((useconds_t)(1000 + rs % 25000));
		kill(pid, SIGKILL);
		while (read(pfd[0], &r, sizeof(r)) == sizeof(r)) {
			struct model *e = &m[r.cls - 3][r.j % NJ];

			if (r.kind == R_READY)
				continue;
			reports++;
			e->dv = r.dv;
			e->dirty = r.kind == R_DIRTY;
		}
		close(pfd[0]);
		waitpid(pid, &st, 0);
		done++;
		/* The external check costs an exec (slow under ASan): every
		 * fourth round and the last; the reopen checks every other. */
		if (fsck && (round % 4 == 0 || round == rounds - 1) &&
		    t_run_fsck(fsck, "--check", dir, 1) != 0) {
			diag("round %u (seed %llu): cairn-fsck --check failed",
			     round, (unsigned long long)seed);
			t_run_fsck(fsck, "--check", dir, 0);
			fsck_bad++;
		}
		/* Odd rounds leave recovery to the next writer's open. */
		if (round % 2 && round != rounds - 1)
			continue;
		{
			struct cs_params p = t_params(0);
			struct cs_store *cs = cs_open(dir, &p, &st);
			struct verify v;

			if (!cs) {
				diag("round %u: reopen failed: %s", round,
				     strerror(-st));
				bad++;
				break;
			}
			v = (struct verify){.cs = cs};
			cs_iterate(cs, verify_cb, &v);
			bad += v.bad;
			eio += v.eio;
			for (int c = 0; c < 2; c++) {
				for (unsigned j = 0; j < NJ; j++) {
					struct cs_key k =
						t_key(3 + (uint32_t)c, j, 0);
					struct cs_info info;

					if (!m[c][j].dv)
						continue;
					if (cs_lookup(cs, &k, &info) < 0 ||
					    info.dv < m[c][j].dv ||
					    (info.dv == m[c][j].dv &&
					     m[c][j].dirty &&
					     !(info.flags & CS_F_DIRTY))) {
						diag("round %u: class %d key "
						     "%u: reported dv %llu%s, "
						     "found %s dv %llu",
						     round, 3 + c, j,
						     (unsigned long long)m[c][j]
							     .dv,
						     m[c][j].dirty ? " dirty"
								   : "",
						     info.flags & CS_F_DIRTY
							     ? "dirty"
							     : "clean",
						     (unsigned long long)
							     info.dv);
						lost++;
					}
				}
			}
			cs_close(cs);
		}
	}
	ok(done >= 100 && (done >= rounds || now_ms() - t0 > TIME_BUDGET_MS),
	   "%u kill rounds in %lld ms (%d calls reported)", done, now_ms() - t0,
	   reports);
	is_int(fsck_bad, 0,
	       "cairn-fsck --check passed after the kills it checked");
	is_int(bad, 0, "every chunk read back matches its tag");
	is_int(eio, 0, "no checksum failures after process death");
	is_int(lost, 0, "every committed or durable dirty chunk survived");
}

int
main(void)
{
	t_mkdtemp(base, sizeof(base), "crash");
	plan(0);
	fsck = t_fsck_path();
	if (!fsck)
		diag("cairn-fsck not found (set CAIRN_FSCK): external checks "
		     "skipped");
	ok(fsck != NULL, "cairn-fsck found for external checks: %s",
	   fsck ? fsck : "no");
	test_fault_injection();
	test_kill_rounds();
	t_rm_rf(base);
	return done_testing();
}
