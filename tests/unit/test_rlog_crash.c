/*
 * test_rlog_crash.c - the replay log survives SIGKILL at any instant.
 *
 * Each round, a child process appends a deterministic stream of ops (a
 * mix that triggers every cancellation rule) and reports the index of
 * each op whose rlog_append() returned, through a pipe. The parent kills
 * it with SIGKILL after a random delay, reopens the log (tdb rolls back an
 * interrupted commit), checks it with rlog_check(), and compares it with
 * two reference logs built from the same stream without crashing: the
 * first k ops (k = appends reported) and the first k+1 (the one in flight
 * may have committed). The crashed log must equal one of them exactly:
 * every returned append is there with its cancellations, nothing is half
 * there, seqs are the same. Odd rounds start from a 150-op log.
 *
 * RLOG_CRASH_SEED=N replays a run; RLOG_CRASH_ROUNDS=N changes the count.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/crc32c.h"
#include "cm/rlog.h"
#include "common/log.h"
#include "tests/tap.h"

#define TEMPLATE_OPS   150
#define MAX_OPS	       100000
#define TIME_BUDGET_MS 27000

static char dir[256];

static uint64_t
mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static struct fid
fidn(unsigned n)
{
	struct fid f = {.vol = 3};

	f.oid[0] = 1;
	f.oid[15] = (uint8_t)n;
	return f;
}

static const char *const names[] = {"a", "b", "c", "d", "e"};

/* Op @i of stream @seed; buffers live in @chunks/@val. Deterministic. */
static struct proto_op
gen(uint64_t seed, uint64_t i, uint64_t chunks[4], char val[16])
{
	struct proto_op op;
	uint64_t r = mix(seed * 0x9e3779b97f4a7c15ULL + i + 1);
	unsigned f = 2 + (unsigned)(r % 6), kind = (unsigned)(r >> 8) % 11;
	const char *n1 = names[(r >> 16) % 5], *n2 = names[(r >> 24) % 5];

	memset(&op, 0, sizeof(op));
	for (int k = 0; k < 16; k++)
		op.opid[k] = (uint8_t)(mix(r + (uint64_t)k) | 1);
	op.parent = fidn(1);
	op.name = (char *)n1;
	op.fid = fidn(f);
	switch (kind) {
	case 0:
	case 1:
		op.kind = PROTO_OP_CREATE;
		op.type = PROTO_T_FILE;
		op.mode = 0644;
		break;
	case 2:
		op.kind = PROTO_OP_UNLINK;
		break;
	case 3:
	case 4:
		op.kind = PROTO_OP_RENAME;
		op.newparent = fidn(1);
		op.newname = (char *)n2;
		if ((r >> 32) % 3 == 0)
			op.victim = fidn(2 + (unsigned)((r >> 40) % 6));
		break;
	case 5:
	case 6:
		op.kind = PROTO_OP_STORE;
		op.name = NULL;
		memset(&op.parent, 0, sizeof(op.parent));
		op.chunk_size = 65536;
		op.base_dv = (r >> 20) % 4;
		op.size = (r >> 28) % (5 * 65536);
		op.nchunks = (r >> 36) % 3;
		for (size_t k = 0; k < op.nchunks; k++)
			chunks[k] = k * 2 + ((r >> 44) & 1);
		op.chunks = chunks;
		if ((r >> 48) & 1) {
			/* a small file's store with its bytes (format 3) */
			static uint8_t dbuf[65536];

			op.size = 1 + (r >> 28) % 65536;
			op.nchunks = 1;
			chunks[0] = 0;
			for (size_t k = 0; k < op.size; k++)
				dbuf[k] = (uint8_t)(i + k * 7);
			op.data = dbuf;
			op.dlen = op.size;
			op.data_dv = op.base_dv;
			op.data_slot = (uint32_t)(r >> 52);
			op.data_gen = (uint32_t)i;
		}
		break;
	case 7:
		op.kind = PROTO_OP_SETATTR;
		op.name = NULL;
		memset(&op.parent, 0, sizeof(op.parent));
		op.mask = (uint32_t)(1u << ((r >> 20) % 6));
		op.size = (r >> 28) % 1000;
		op.mode = 0600;
		op.base_dv = (r >> 40) % 4;
		break;
	case 8:
	case 9:
		op.kind = (r >> 20) % 3 ? PROTO_OP_SETXATTR
					: PROTO_OP_REMOVEXATTR;
		op.name = NULL;
		memset(&op.parent, 0, sizeof(op.parent));
		op.xname = (char *)n2;
		if (op.kind == PROTO_OP_SETXATTR) {
			snprintf(val, 16, "v%llu",
				 (unsigned long long)(i % 1000));
			op.xvalue = val;
			op.xlen = strlen(val);
			op.flags = (uint32_t)((r >> 30) % 3);
		}
		break;
	default:
		op.kind = PROTO_OP_LINK;
		op.name = (char *)n2;
		break;
	}
	return op;
}

static int
append_range(struct rlog *l, uint64_t seed, uint64_t from, uint64_t to,
	     int report_fd)
{
	uint64_t chunks[4];
	char val[16];

	for (uint64_t i = from; i < to; i++) {
		struct proto_op op = gen(seed, i, chunks, val);
		uint32_t idx = (uint32_t)i;
		int rc = rlog_append(l, &op, NULL);

		if (rc)
			return rc;
		if (report_fd >= 0 &&
		    write(report_fd, &idx, sizeof(idx)) != sizeof(idx))
			return -EIO;
	}
	return 0;
}

static int
copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY), out;
	ssize_t n;

	if (in < 0)
		return -errno;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (out < 0) {
		close(in);
		return -errno;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			break;
	close(in);
	close(out);
	return 0;
}

/* A log as comparable text: one line per record, all but the time. */
struct snap {
	char *text;
	size_t len, cap;
	unsigned nrec;
};

static void
snap_add(struct snap *s, const char *line)
{
	size_t n = strlen(line);

	if (s->len + n + 1 > s->cap) {
		s->cap = (s->len + n + 1) * 2;
		s->text = realloc(s->text, s->cap);
	}
	memcpy(s->text + s->len, line, n + 1);
	s->len += n;
}

static void
hex(char *out, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

static int
snap_fn(const struct rlog_rec *r, void *arg)
{
	struct snap *s = arg;
	const struct proto_op *op = &r->op;
	char line[1024], opid[33], f1[FID_STRLEN], f2[FID_STRLEN],
		f3[FID_STRLEN], f4[FID_STRLEN], ch[256] = "";
	size_t off = 0;

	hex(opid, op->opid, 16);
	for (size_t i = 0; i < op->nchunks && off < sizeof(ch) - 24; i++)
		off += (size_t)snprintf(ch + off, sizeof(ch) - off, "%llu,",
					(unsigned long long)op->chunks[i]);
	snprintf(line, sizeof(line),
		 "%llu %d %d %s %s %s %s %s %s %s %llu %u %llu %u %u %s %s "
		 "%.*s %llu %zu/%08x/%u/%u\n",
		 (unsigned long long)r->seq, r->state, op->kind, opid,
		 fid_fmt(&op->parent, f1), op->name ? op->name : "-",
		 fid_fmt(&op->fid, f2), fid_fmt(&op->newparent, f3),
		 op->newname ? op->newname : "-", fid_fmt(&op->victim, f4),
		 (unsigned long long)op->base_dv, op->mask,
		 (unsigned long long)op->size, op->flags, op->mode, ch,
		 op->xname ? op->xname : "-", (int)op->xlen,
		 op->xvalue ? (const char *)op->xvalue : "",
		 (unsigned long long)r->nbytes, op->data ? op->dlen : 0,
		 op->data ? crc32c(0, op->data, op->dlen) : 0, op->data_slot,
		 op->data_gen);
	snap_add(s, line);
	s->nrec++;
	return 0;
}

static int
snap_take(struct rlog *l, struct snap *s)
{
	memset(s, 0, sizeof(*s));
	snap_add(s, "");
	return rlog_iterate(l, snap_fn, s);
}

/* Remove a log and its journal (PATH.jnl): a log copied over another
 * must not meet the other's journal, which it would refuse. */
static void
unlink_log(const char *path)
{
	char j[600];

	snprintf(j, sizeof(j), "%s.jnl", path);
	unlink(path);
	unlink(j);
}

/* Reference logs: (template or empty) + ops [from, to) into @a, then the
 * one more op that may have been in flight into @b. One log, two looks. */
static int
reference(const char *tmpl, uint64_t seed, uint64_t from, uint64_t to,
	  struct snap *a, struct snap *b)
{
	char p[512];
	struct rlog *l;
	int err, rc;

	snprintf(p, sizeof(p), "%s/ref.tdb", dir);
	unlink_log(p);
	if (tmpl && copy_file(tmpl, p))
		return -EIO;
	l = rlog_open_flags(p, RLOG_O_NOSYNC, &err);
	if (!l)
		return err;
	rc = append_range(l, seed, from, to, -1);
	if (!rc)
		rc = snap_take(l, a);
	if (!rc)
		rc = append_range(l, seed, to, to + 1, -1);
	if (!rc)
		rc = snap_take(l, b);
	rlog_close(l);
	return rc;
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR"), *env;
	char tmpl[512], path[512], cmd[600], why[200];
	uint64_t seed, t0;
	unsigned rounds = 200, done = 0, eq_k = 0, eq_k1 = 0, bad = 0,
		 recovered_nonempty = 0;
	unsigned long long total_k = 0;
	struct rlog *l;
	int err;

	log_init("test_rlog_crash", 0, LOG_CRIT);
	env = getenv("RLOG_CRASH_SEED");
	seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
	env = getenv("RLOG_CRASH_ROUNDS");
	if (env)
		rounds = (unsigned)strtoul(env, NULL, 0);
	snprintf(dir, sizeof(dir), "%s/test_rlog_crash.XXXXXX",
		 tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 99;
	}
	plan(0);
	diag("seed %llu (replay with RLOG_CRASH_SEED=%llu)",
	     (unsigned long long)seed, (unsigned long long)seed);
	srand((unsigned)seed);

	snprintf(tmpl, sizeof(tmpl), "%s/template.tdb", dir);
	l = rlog_open_flags(tmpl, RLOG_O_NOSYNC, &err);
	ok(l && !append_range(l, seed, 0, TEMPLATE_OPS, -1),
	   "template log of %d ops", TEMPLATE_OPS);
	if (l) {
		struct rlog_stats st;

		rlog_stats(l, &st);
		diag("template: %llu records left of %d ops, %llu older "
		     "records cancelled by the rules",
		     (unsigned long long)st.records, TEMPLATE_OPS,
		     (unsigned long long)st.cancelled);
	}
	rlog_close(l);

	t0 = now_ms();
	for (unsigned round = 0; round < rounds; round++) {
		bool from_tmpl = round & 1;
		uint64_t base = from_tmpl ? TEMPLATE_OPS : 0;
		uint64_t rseed = seed * 1000003 + round;
		struct snap got, a, b;
		const uint32_t opened = 0xffffffffu;
		bool was_opened = false;
		uint32_t idx;
		unsigned k = 0;
		int fds[2], st, delay_us;
		pid_t pid;

		if (now_ms() - t0 > TIME_BUDGET_MS) {
			diag("time budget spent after %u rounds", round);
			break;
		}
		snprintf(path, sizeof(path), "%s/crash.tdb", dir);
		unlink_log(path);
		if (from_tmpl)
			copy_file(tmpl, path);
		if (pipe(fds))
			return 99;
		/* Kill anywhere from before open to a few dozen appends. */
		delay_us = rand() % 30000;
		fflush(stdout);
		pid = fork();
		if (pid == 0) {
			close(fds[0]);
			l = rlog_open(path, &err);
			if (!l)
				_exit(3);
			if (write(fds[1], &opened, sizeof(opened)) !=
			    sizeof(opened))
				_exit(5);
			append_range(l, rseed, base, base + MAX_OPS, fds[1]);
			_exit(4);
		}
		close(fds[1]);
		/* Most rounds time the kill from the child's open, so it lands
		 * among the appends even on a slow (sanitizer) build; one in
		 * eight times it from the fork, to hit the open itself. */
		if (round % 8) {
			struct pollfd pfd = {.fd = fds[0], .events = POLLIN};

			if (poll(&pfd, 1, 5000) == 1 &&
			    read(fds[0], &idx, sizeof(idx)) == sizeof(idx) &&
			    idx == opened)
				was_opened = true;
		}
		usleep((useconds_t)delay_us);
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		while (read(fds[0], &idx, sizeof(idx)) == sizeof(idx)) {
			if (idx == opened && !was_opened) {
				was_opened = true;
				continue;
			}
			if (idx != base + k)
				bad++;
			k++;
		}
		close(fds[0]);
		if (!WIFSIGNALED(st)) {
			diag("round %u: child exited %d", round,
			     WEXITSTATUS(st));
			bad++;
		}
		total_k += k;

		l = rlog_open(path, &err);
		if (!l) {
			diag("round %u: reopen after kill: %s", round,
			     strerror(-err));
			bad++;
			continue;
		}
		if (rlog_check(l, round % 25 ? 0 : RLOG_CHECK_KEYS, why,
			       sizeof(why))) {
			diag("round %u: check: %s", round, why);
			bad++;
		}
		if (snap_take(l, &got)) {
			bad++;
		}
		rlog_close(l);
		if (got.nrec)
			recovered_nonempty++;
		if (reference(from_tmpl ? tmpl : NULL, rseed, base, base + k,
			      &a, &b)) {
			bad++;
			continue;
		}
		if (!strcmp(got.text, a.text)) {
			eq_k++;
		} else if (!strcmp(got.text, b.text)) {
			eq_k1++;
		} else {
			bad++;
			diag("round %u (k=%u, delay %d us): log matches "
			     "neither "
			     "reference",
			     round, k, delay_us);
			diag("got:\n%s", got.text);
			diag("want (k):\n%s", a.text);
		}
		free(got.text);
		free(a.text);
		free(b.text);
		done++;
	}
	diag("%u rounds in %llu ms, %llu appends returned before the kills; "
	     "log = first k ops: %u, = first k+1 (in-flight op committed): %u",
	     done, (unsigned long long)(now_ms() - t0), total_k, eq_k, eq_k1);
	is_int(bad, 0,
	       "every round: the log is exactly the returned appends "
	       "(+ at most the one in flight), consistent, in order");
	ok(done >= (rounds < 200 ? rounds : 200) ||
		   now_ms() - t0 > TIME_BUDGET_MS,
	   "%u rounds run", done);
	ok(recovered_nonempty > 0 && eq_k1 + eq_k == done,
	   "kills landed while records were being written");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		diag("cannot remove %s", dir);
	return done_testing();
}
