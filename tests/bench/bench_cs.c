/*
 * bench_cs.c - chunk store numbers at scale (make bench; not make check).
 *
 * Two caches under DIR:
 *  A "index": N records (default 1,000,000) entered with the bench-only
 *    cs_bench_insert() (records, no chunk files), to measure what depends
 *    on the index alone: bulk insert, clean close, clean reopen, lookups,
 *    one cull pass, peak RSS.
 *  B "files": F real chunks (default 1,000,000) of 16 bytes stored with
 *    cs_put, to measure what needs files: insert rate, warm reads, clean
 *    reopen, reopen after a crash (a child opens, stores one chunk and
 *    _exit()s without cs_close), and a rebuild with the index deleted.
 *    Reads there touch a different chunk each time (a cold fd cache).
 *  C "hot": 128 KiB reads of 64 chunks of 256 KiB, the FUSE read pattern.
 *  D "seq": a warm sequential read of a 256 MiB file (1024 cached chunks
 *    of 256 KiB) in 128 KiB cs_read calls, page cache dropped first, next
 *    to reading one plain 256 MiB file the same way. Caches are dropped
 *    with /proc/sys/vm/drop_caches when writable, else file by file with
 *    posix_fadvise(DONTNEED) after a sync (containers).
 *
 * usage: bench_cs [-s] [-R] [-n RECORDS] [-f FILES] DIR   (-s: D only)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chunkstore/cs.h"
#include "chunkstore/cs_i.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long
rss_kib(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static void
die(const char *what, int rc)
{
	fprintf(stderr, "bench_cs: %s: %s\n", what, strerror(-rc));
	exit(1);
}

static struct cs_key
key_a(uint32_t i)
{
	struct cs_key k = {.vol = 1, .chunk = 0};

	memcpy(k.fid, &i, sizeof(i)); /* what cs_bench_insert uses */
	return k;
}

static struct cs_key
key_b(uint32_t i)
{
	struct cs_key k = {.vol = 2, .chunk = i % 16};

	i /= 16;
	memcpy(k.fid, &i, sizeof(i));
	return k;
}

static struct cs_store *
open_timed(const char *dir, double *secs)
{
	struct cs_params p = {0};
	struct cs_store *cs;
	double t = now();
	int err;

	cs = cs_open(dir, &p, &err);
	*secs = now() - t;
	if (!cs)
		die("cs_open", err);
	return cs;
}

static void
bench_index(const char *top, uint32_t n)
{
	char dir[1024];
	struct cs_params p = {.chunk_size = CS_CHUNK_MIN};
	struct cs_limits l = {0};
	struct cs_stats st;
	struct cs_store *cs;
	struct cs_info info;
	double t, secs;
	uint64_t x = 88172645463325252ull;
	uint32_t found = 0, lookups = 4000000;
	int rc;

	snprintf(dir, sizeof(dir), "%s/index", top);
	p.limits.max_files = (uint64_t)n * 2;
	p.limits.max_bytes = 1ull << 40;
	t = now();
	if ((rc = cs_create(dir, &p)) < 0)
		die("cs_create", rc);
	printf("A  create (empty cache)                 %10.3f s\n", now() - t);
	cs = open_timed(dir, &secs);
	t = now();
	if ((rc = cs_bench_insert(cs, n)) < 0)
		die("cs_bench_insert", rc);
	secs = now() - t;
	printf("A  bulk insert of %u records (no files) %8.3f s  (%.0f/s)\n", n,
	       secs, n / secs);
	t = now();
	cs_close(cs);
	printf("A  clean close                          %10.3f s\n", now() - t);
	cs = open_timed(dir, &secs);
	printf("A  clean reopen, %u records        %10.3f s  (target < 0.2 "
	       "s)\n",
	       n, secs);
	t = now();
	for (uint32_t i = 0; i < lookups; i++) {
		struct cs_key k;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		k = key_a((uint32_t)(x % n));
		found += cs_lookup(cs, &k, &info) == 0;
	}
	secs = now() - t;
	printf("A  lookups, one thread                  %10.0f /s (target >= "
	       "2M/s; %u of %u hit)\n",
	       lookups / secs, found, lookups);
	cs_get_stats(cs, &st);
	/* 6% free: below cull (7%), cull to run (10%). */
	l.max_files = st.files_used * 100 / 94;
	t = now();
	rc = cs_set_limits(cs, &l);
	secs = now() - t;
	cs_get_stats(cs, &st);
	printf("A  one cull pass: %llu evicted            %10.3f s  (includes "
	       "%llu unlink calls)\n",
	       (unsigned long long)st.evictions, secs,
	       (unsigned long long)st.evictions);
	printf("A  peak RSS                             %10.1f MiB (target <= "
	       "%.1f MiB = 64 + 100 B x %u)\n",
	       rss_kib() / 1024.0, 64 + n * 100.0 / (1 << 20), n);
	cs_close(cs);
}

static void
bench_files(const char *top, uint32_t n)
{
	char dir[1024], idx[1100];
	struct cs_params p = {.chunk_size = CS_CHUNK_MIN};
	struct cs_store *cs;
	uint8_t buf[16];
	double t, secs;
	pid_t pid;
	int rc, st;

	snprintf(dir, sizeof(dir), "%s/files", top);
	p.limits.max_files = (uint64_t)n * 2;
	p.limits.max_bytes = 1ull << 40;
	if ((rc = cs_create(dir, &p)) < 0)
		die("cs_create", rc);
	cs = open_timed(dir, &secs);
	t = now();
	for (uint32_t i = 0; i < n; i++) {
		struct cs_key k = key_b(i);

		memcpy(buf, &i, sizeof(i));
		if ((rc = cs_put(cs, &k, 1, buf, sizeof(buf), 0)) < 0)
			die("cs_put", rc);
	}
	secs = now() - t;
	printf("B  insert %u chunks of 16 B (cs_put)    %8.3f s  (%.0f/s)\n", n,
	       secs, n / secs);
	t = now();
	for (uint32_t i = 0; i < n; i++) {
		struct cs_key k = key_b(i);

		if (cs_read(cs, &k, 1, 0, buf, sizeof(buf)) != sizeof(buf))
			die("cs_read", -EIO);
	}
	secs = now() - t;
	printf("B  warm reads (first read verifies)     %10.0f /s\n", n / secs);
	t = now();
	for (uint32_t i = 0; i < n; i++) {
		struct cs_key k = key_b(i);

		if (cs_read(cs, &k, 1, 0, buf, sizeof(buf)) != sizeof(buf))
			die("cs_read", -EIO);
	}
	secs = now() - t;
	printf("B  warm reads (verified)                %10.0f /s\n", n / secs);
	t = now();
	cs_close(cs);
	printf("B  clean close (syncfs included)        %10.3f s\n", now() - t);
	cs = open_timed(dir, &secs);
	printf("B  clean reopen, %u chunks         %10.3f s\n", n, secs);
	cs_close(cs);

	pid = fork();
	if (pid == 0) {
		struct cs_key k = key_b(n);
		int err;

		cs = cs_open(dir, &p, &err);
		if (!cs || cs_put(cs, &k, 1, buf, sizeof(buf), 0) < 0)
			_exit(1);
		_exit(0); /* crash: no cs_close, clean flag stays 0 */
	}
	waitpid(pid, &st, 0);
	cs = open_timed(dir, &secs);
	printf("B  reopen after a crash, %u chunks %10.3f s  (target < 2 s; "
	       "readdir scan, no content read)\n",
	       n + 1, secs);
	cs_close(cs);

	snprintf(idx, sizeof(idx), "%s/index", dir);
	unlink(idx);
	cs = open_timed(dir, &secs);
	printf("B  rebuild with the index deleted       %10.3f s  (reads every "
	       "trailer)\n",
	       secs);
	cs_close(cs);
}

/* C: the FUSE pattern: 128 KiB reads of a hot set of 256 KiB chunks. */
static void
bench_hot(const char *top)
{
	char dir[1024];
	struct cs_params p = {.chunk_size = CS_CHUNK_DEFAULT};
	static uint8_t buf[CS_CHUNK_DEFAULT];
	struct cs_store *cs;
	uint32_t reads = 200000;
	double t, secs;
	int rc;

	snprintf(dir, sizeof(dir), "%s/hot", top);
	if ((rc = cs_create(dir, &p)) < 0)
		die("cs_create", rc);
	cs = open_timed(dir, &secs);
	memset(buf, 7, sizeof(buf));
	for (uint32_t i = 0; i < 64; i++) {
		struct cs_key k = key_b(i);

		if ((rc = cs_put(cs, &k, 1, buf, sizeof(buf), 0)) < 0)
			die("cs_put", rc);
	}
	t = now();
	for (uint32_t i = 0; i < reads; i++) {
		struct cs_key k = key_b(i % 64);

		if (cs_read(cs, &k, 1, (i / 64) % 2 * (128u << 10), buf,
			    128u << 10) != 128 << 10)
			die("cs_read", -EIO);
	}
	secs = now() - t;
	printf("C  warm 128 KiB reads, 64 hot chunks    %10.0f /s  (%.2f "
	       "GB/s)\n",
	       reads / secs, reads * 131072.0 / secs / 1e9);
	cs_close(cs);
}

/* Evict the pages of every regular file under @dir (recursively). */
static void
fadvise_tree(const char *dir)
{
	char path[1024];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((de = readdir(d))) {
		int fd;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (de->d_type == DT_DIR) {
			fadvise_tree(path);
			continue;
		}
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
	closedir(d);
}

/* Drop the page cache; @return how, for the printout. */
static const char *
drop_caches(const char *top)
{
	int fd;

	sync();
	fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
	if (fd >= 0 && write(fd, "3\n", 2) == 2) {
		close(fd);
		return "drop_caches";
	}
	if (fd >= 0)
		close(fd);
	fadvise_tree(top);
	return "fadvise";
}

static int seq_readahead = 1;

static void
bench_seq(const char *top)
{
	enum { NCHUNK = 1024, RD = 128u << 10 };
	char dir[1024], plain[1024];
	struct cs_params p = {.chunk_size = CS_CHUNK_DEFAULT};
	static uint8_t buf[CS_CHUNK_DEFAULT];
	struct cs_store *cs;
	const char *how;
	double t, cs_secs[3], pl_secs[3];
	int rc, fd;

	snprintf(dir, sizeof(dir), "%s/seq", top);
	snprintf(plain, sizeof(plain), "%s/plain", top);
	if ((rc = cs_create(dir, &p)) < 0)
		die("cs_create", rc);
	cs = open_timed(dir, &t);
	cs->readahead = seq_readahead;
	fd = open(plain, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		die("open plain", -errno);
	for (uint32_t i = 0; i < NCHUNK; i++) {
		struct cs_key k = {.vol = 4, .chunk = i};

		memset(buf, (int)(i * 7 + 1), sizeof(buf));
		if ((rc = cs_put(cs, &k, 1, buf, sizeof(buf), 0)) < 0)
			die("cs_put", rc);
		if (pwrite(fd, buf, sizeof(buf), (off_t)i * sizeof(buf)) !=
		    (ssize_t)sizeof(buf))
			die("pwrite plain", -EIO);
	}
	/* First reads verify checksums: do them before timing. */
	for (uint32_t i = 0; i < NCHUNK; i++) {
		struct cs_key k = {.vol = 4, .chunk = i};

		if (cs_read(cs, &k, 1, 0, buf, 1) != 1)
			die("cs_read", -EIO);
	}
	fsync(fd);
	for (int rep = 0; rep < 3; rep++) {
		how = drop_caches(top);
		if (rep == 0)
			printf("D  next-chunk readahead %s, fd cache %d "
			       "entries\n",
			       seq_readahead ? "on" : "off",
			       CS_FD_CACHE_DEFAULT);
		t = now();
		for (uint64_t off = 0; off < (uint64_t)NCHUNK * sizeof(buf);
		     off += RD) {
			struct cs_key k = {.vol = 4,
					   .chunk = off / sizeof(buf)};

			if (cs_read(cs, &k, 1, (uint32_t)(off % sizeof(buf)),
				    buf, RD) != RD)
				die("cs_read", -EIO);
		}
		cs_secs[rep] = now() - t;
		drop_caches(top);
		t = now();
		for (uint64_t off = 0; off < (uint64_t)NCHUNK * sizeof(buf);
		     off += RD)
			if (pread(fd, buf, RD, (off_t)off) != RD)
				die("pread plain", -EIO);
		pl_secs[rep] = now() - t;
	}
	for (int rep = 0; rep < 3; rep++)
		printf("D  seq 256 MiB cold-page (%s) run %d: chunk store "
		       "%7.0f MB/s, plain file %7.0f MB/s, ratio %.2f\n",
		       how, rep, 256 * 1.048576 / cs_secs[rep],
		       256 * 1.048576 / pl_secs[rep],
		       pl_secs[rep] / cs_secs[rep]);
	/* Warm page cache: the per-call overhead alone (rep 0 warms it). */
	for (int rep = 0; rep < 5; rep++) {
		if (rep == 1)
			t = now();
		for (uint64_t off = 0; off < (uint64_t)NCHUNK * sizeof(buf);
		     off += RD) {
			struct cs_key k = {.vol = 4,
					   .chunk = off / sizeof(buf)};

			if (cs_read(cs, &k, 1, (uint32_t)(off % sizeof(buf)),
				    buf, RD) != RD)
				die("cs_read", -EIO);
		}
	}
	cs_secs[0] = now() - t;
	for (int rep = 0; rep < 5; rep++) {
		if (rep == 1)
			t = now();
		for (uint64_t off = 0; off < (uint64_t)NCHUNK * sizeof(buf);
		     off += RD)
			if (pread(fd, buf, RD, (off_t)off) != RD)
				die("pread plain", -EIO);
	}
	pl_secs[0] = now() - t;
	printf("D  seq 1 GiB in page cache: chunk store %7.0f MB/s, plain "
	       "file %7.0f MB/s, ratio %.2f\n",
	       1024 * 1.048576 / cs_secs[0], 1024 * 1.048576 / pl_secs[0],
	       pl_secs[0] / cs_secs[0]);
	close(fd);
	unlink(plain);
	cs_close(cs);
}

int
main(int argc, char **argv)
{
	uint32_t n = 1000000, f = 1000000;
	int c, seq_only = 0;

	while ((c = getopt(argc, argv, "n:f:sR")) != -1) {
		if (c == 'R')
			seq_readahead = 0;
		else if (c == 's')
			seq_only = 1;
		else if (c == 'n')
			n = (uint32_t)strtoul(optarg, NULL, 0);
		else if (c == 'f')
			f = (uint32_t)strtoul(optarg, NULL, 0);
		else
			goto usage;
	}
	if (optind != argc - 1 || !n)
		goto usage;
	printf("chunk store benchmark: %u index records (A), %u chunk files "
	       "(B), crc32c %s\n",
	       n, f, crc32c_hw_available() ? "sse4.2" : "table");
	if (seq_only) {
		bench_seq(argv[optind]);
		return 0;
	}
	bench_index(argv[optind], n);
	bench_hot(argv[optind]);
	bench_seq(argv[optind]);
	if (f)
		bench_files(argv[optind], f);
	return 0;
usage:
	fprintf(stderr,
		"usage: bench_cs [-s] [-R] [-n RECORDS] [-f FILES] DIR\n");
	return 2;
}
