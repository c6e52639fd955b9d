/*
 * bench_rlog.c - replay log throughput and open time (make bench).
 *
 * Prints one line per measurement. The baseline is the disk itself: one
 * 4 KiB pwrite + fsync per operation in the same directory, which is what
 * "one fsync per append" can at best reach. Then:
 *   - appends/s, one thread, durable (one commit per append)
 *   - appends/s, rlog_append_batch() of 64 (one commit per batch)
 *   - appends/s, 8 threads appending at once (group commit)
 *   - connected-mode cycles/s: append born INFLIGHT, then remove
 *   - the untar pattern: 2,000 files x (create, store, setattr) = 6,000
 *     records, with 8 threads (group commit) and with batches
 *   - appends/s with RLOG_O_NOSYNC (the CPU cost alone)
 *   - a 10,000-record log: open time, first(), stats(), a full iterate
 *     and rlog_check()
 * Usage: bench_rlog [DIR] (default $TMPDIR or /tmp). BENCH_RLOG_N scales
 * the durable single-thread run (default 500).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cm/rlog.h"
#include "common/log.h"

static char dir[256];
static int npath;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *
newpath(void)
{
	static char p[512];

	snprintf(p, sizeof(p), "%s/bench%d.tdb", dir, ++npath);
	unlink(p);
	return p;
}

static struct fid
fidn(unsigned n)
{
	struct fid f = {.vol = 1};

	f.oid[0] = 0xbe;
	f.oid[12] = (uint8_t)(n >> 24);
	f.oid[13] = (uint8_t)(n >> 16);
	f.oid[14] = (uint8_t)(n >> 8);
	f.oid[15] = (uint8_t)n;
	return f;
}

/* Operation @i of an untar: create file i/3, store it, set its mtime. */
static struct proto_op
untar_op(unsigned i, char name[32], uint64_t *chunk)
{
	struct proto_op op;
	unsigned f = i / 3;

	memset(&op, 0, sizeof(op));
	op.fid = fidn(100 + f);
	switch (i % 3) {
	case 0:
		snprintf(name, 32, "file%05u.c", f);
		op.kind = PROTO_OP_CREATE;
		op.parent = fidn(1 + f / 500);
		op.name = name;
		op.type = PROTO_T_FILE;
		op.mode = 0644;
		break;
	case 1:
		op.kind = PROTO_OP_STORE;
		op.chunk_size = 262144;
		op.size = 5000;
		*chunk = 0;
		op.chunks = chunk;
		op.nchunks = 1;
		break;
	default:
		op.kind = PROTO_OP_SETATTR;
		op.mask = PROTO_SA_MTIME | PROTO_SA_MODE;
		op.mode = 0644;
		op.mtime_ns = 1700000000000000000LL;
		op.base_dv = 1;
		break;
	}
	return op;
}

static double
baseline_fsync(unsigned n)
{
	char p[512], buf[4096];
	double t0, t;
	int fd;

	memset(buf, 'x', sizeof(buf));
	snprintf(p, sizeof(p), "%s/fsync.bin", dir);
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return 0;
	t0 = now();
	for (unsigned i = 0; i < n; i++)
		if (pwrite(fd, buf, sizeof(buf), (off_t)(i % 64) * 4096) < 0 ||
		    fsync(fd))
			break;
	t = now() - t0;
	close(fd);
	unlink(p);
	return n / t;
}

static double
single(unsigned n, unsigned flags, const char *what)
{
	struct rlog *l = rlog_open_flags(newpath(), flags, NULL);
	char name[32];
	uint64_t chunk;
	double t0, t;

	if (!l)
		return 0;
	t0 = now();
	for (unsigned i = 0; i < n; i++) {
		struct proto_op op = untar_op(i, name, &chunk);

		if (rlog_append(l, &op, NULL))
			break;
	}
	t = now() - t0;
	printf("%-52s %9.0f appends/s (%u in %.2f s)\n", what, n / t, n, t);
	rlog_close(l);
	return n / t;
}

static double
batched(unsigned n, unsigned per, const char *what)
{
	struct rlog *l = rlog_open(newpath(), NULL);
	struct proto_op *ops = calloc(per, sizeof(*ops));
	char(*names)[32] = calloc(per, 32);
	uint64_t *chunks = calloc(per, sizeof(*chunks));
	double t0, t;
	unsigned i = 0;

	if (!l || !ops || !names || !chunks)
		return 0;
	t0 = now();
	while (i < n) {
		unsigned k;

		for (k = 0; k < per && i < n; k++, i++)
			ops[k] = untar_op(i, names[k], &chunks[k]);
		if (rlog_append_batch(l, ops, k, 0, NULL))
			break;
	}
	t = now() - t0;
	printf("%-52s %9.0f appends/s (%u in %.2f s)\n", what, n / t, n, t);
	rlog_close(l);
	free(ops);
	free(names);
	free(chunks);
	return n / t;
}

struct thr {
	struct rlog *l;
	unsigned from, to, step;
};

static void *
thr_main(void *arg)
{
	struct thr *t = arg;
	char name[32];
	uint64_t chunk;

	for (unsigned i = t->from; i < t->to; i += t->step) {
		struct proto_op op = untar_op(i, name, &chunk);

		if (rlog_append(t->l, &op, NULL))
			break;
	}
	return NULL;
}

/* @nthr threads; thread k takes files k, k+nthr, ... (all three ops of a
 * file in order, as one process writing one file would). */
static double
threaded(unsigned n, unsigned nthr, const char *what)
{
	struct rlog *l = rlog_open(newpath(), NULL);
	struct rlog_stats st;
	pthread_t th[64];
	struct thr t[64];
	double t0, el;

	if (!l || nthr > 64)
		return 0;
	t0 = now();
	for (unsigned k = 0; k < nthr; k++) {
		t[k] = (struct thr){l, k, n, nthr};
		pthread_create(&th[k], NULL, thr_main, &t[k]);
	}
	for (unsigned k = 0; k < nthr; k++)
		pthread_join(th[k], NULL);
	el = now() - t0;
	rlog_stats(l, &st);
	printf("%-52s %9.0f appends/s (%llu in %.2f s, %llu commits)\n", what,
	       st.appends / el, (unsigned long long)st.appends, el,
	       (unsigned long long)st.commits);
	rlog_close(l);
	return st.appends / el;
}

/* Thread k appends ops k, k+nthr, ... of the untar stream one at a time. */
static void *
thr_ops(void *arg)
{
	struct thr *t = arg;
	char name[32];
	uint64_t chunk;

	for (unsigned i = t->from; i < t->to; i += t->step) {
		for (unsigned j = 0; j < 3; j++) {
			struct proto_op op = untar_op(i * 3 + j, name, &chunk);

			if (rlog_append(t->l, &op, NULL))
				return NULL;
		}
	}
	return NULL;
}

static void
untar(unsigned files, unsigned nthr)
{
	struct rlog *l = rlog_open(newpath(), NULL);
	struct rlog_stats st;
	pthread_t th[64];
	struct thr t[64];
	double t0, el;

	if (!l)
		return;
	t0 = now();
	for (unsigned k = 0; k < nthr; k++) {
		t[k] = (struct thr){l, k, files, nthr};
		pthread_create(&th[k], NULL, thr_ops, &t[k]);
	}
	for (unsigned k = 0; k < nthr; k++)
		pthread_join(th[k], NULL);
	el = now() - t0;
	rlog_stats(l, &st);
	printf("untar %u files (%llu records), %u threads:%*s %9.2f s "
	       "(%.0f appends/s, %llu commits)\n",
	       files, (unsigned long long)st.records, nthr, nthr < 10 ? 11 : 10,
	       "", el, st.appends / el, (unsigned long long)st.commits);
	rlog_close(l);
}

static void
connected(unsigned n)
{
	struct rlog *l = rlog_open(newpath(), NULL);
	struct rlog_effect eff;
	char name[32];
	uint64_t chunk;
	double t0, t;

	if (!l)
		return;
	t0 = now();
	for (unsigned i = 0; i < n; i++) {
		struct proto_op op = untar_op(i, name, &chunk);

		if (rlog_append_ex(l, &op, RLOG_A_INFLIGHT, &eff) ||
		    rlog_remove(l, eff.seq))
			break;
		rlog_effect_release(&eff);
	}
	t = now() - t0;
	printf("%-52s %9.0f cycles/s (%u in %.2f s)\n",
	       "connected mode: append(INFLIGHT) + remove", n / t, n, t);
	rlog_close(l);
}

static int
count_fn(const struct rlog_rec *r, void *arg)
{
	(void)r;
	(*(unsigned *)arg)++;
	return 0;
}

static void
big_log(unsigned n)
{
	const char *p = newpath();
	struct rlog *l = rlog_open_flags(p, RLOG_O_NOSYNC, NULL);
	struct proto_op ops[100];
	char names[100][32];
	uint64_t chunks[100];
	struct rlog_rec rec;
	struct rlog_stats st;
	unsigned i = 0, cnt = 0;
	double t0, t1, t2, t3, t4, t5;

	if (!l)
		return;
	while (i < n) {
		unsigned k;

		for (k = 0; k < 100 && i < n; k++, i++)
			ops[k] = untar_op(i * 3 % (n * 3), names[k],
					  &chunks[k]); /* creates only */
		if (rlog_append_batch(l, ops, k, 0, NULL))
			break;
	}
	rlog_close(l);
	t0 = now();
	l = rlog_open(p, NULL);
	t1 = now();
	if (!l)
		return;
	rlog_first(l, &rec);
	rlog_rec_release(&rec);
	t2 = now();
	rlog_stats(l, &st);
	t3 = now();
	rlog_iterate(l, count_fn, &cnt);
	t4 = now();
	rlog_check(l, RLOG_CHECK_KEYS, NULL, 0);
	t5 = now();
	printf("%u-record log (%.1f MiB): open %.3f ms, first %.3f ms, "
	       "stats %.3f ms, iterate %.1f ms, check %.1f ms\n",
	       (unsigned)st.records, st.file_bytes / 1048576.0, (t1 - t0) * 1e3,
	       (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t4 - t3) * 1e3,
	       (t5 - t4) * 1e3);
	rlog_close(l);
}

int
main(int argc, char **argv)
{
	const char *base = argc > 1 ? argv[1] : getenv("TMPDIR");
	const char *env = getenv("BENCH_RLOG_N");
	unsigned n = env ? (unsigned)atoi(env) : 500;
	double fs, one;
	char cmd[300];

	if (argc > 1 && (!strcmp(argv[1], "--help") || argv[1][0] == '-')) {
		printf("usage: bench_rlog [DIR]\n");
		return 0;
	}
	log_init("bench_rlog", 0, LOG_ERR);
	snprintf(dir, sizeof(dir), "%s/bench_rlog.XXXXXX",
		 base ? base : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	printf("# replay log benchmark in %s\n", dir);
	fs = baseline_fsync(n);
	printf("%-52s %9.0f ops/s\n", "baseline: 4 KiB pwrite + fsync", fs);
	one = single(n, 0, "append, 1 thread, one commit each");
	printf("%-52s %9.2f\n", "  ratio to the fsync baseline", one / fs);
	batched(6000, 64, "append_batch of 64");
	threaded(3000, 8, "append, 8 threads (group commit)");
	threaded(6000, 32, "append, 32 threads (group commit)");
	connected(n);
	untar(2000, 1);
	untar(2000, 16);
	single(20000, RLOG_O_NOSYNC, "append, 1 thread, NOSYNC (CPU only)");
	big_log(10000);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		return 1;
	return 0;
}
