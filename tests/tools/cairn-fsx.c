/*
 * cairn-fsx - a randomized exerciser of one file, checked against a model.
 *
 * In the spirit of the classic fsx (written anew for cairn): on one path it
 * runs random pwrites (some across 256 KiB chunk boundaries, some past EOF
 * so holes appear), ftruncates up and down, preads of random ranges and of
 * the whole file, close+reopen (sometimes with O_TRUNC, sometimes O_APPEND
 * so the next writes append), fsync and stat size checks, and compares
 * every result with an in-memory copy of what the file must hold. It knows
 * nothing of cairn: it runs on any file system, which is how it is tested
 * (tests/unit/fsx-local.sh) before it is pointed at a cairnd mount.
 *
 * The run is a pure function of the seed and the options, so the "seed N"
 * line printed first replays a failure exactly. Exit status: 0 all good,
 * 1 the file differs from the model, 2 a system call failed (or bad usage).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define FSX_CHUNK (256 * 1024) /* cairn's default chunk size */
#define FSX_LOG 20	       /* ops kept for the failure report */

enum fsx_op {
	OP_WRITE,
	OP_APPEND,
	OP_TRUNCATE,
	OP_READ,
	OP_READALL,
	OP_REOPEN,
	OP_REOPEN_TRUNC,
	OP_REOPEN_APPEND,
	OP_FSYNC,
	OP_STAT,
};

static const char *const op_names[] = {
	[OP_WRITE] = "write",
	[OP_APPEND] = "append",
	[OP_TRUNCATE] = "truncate",
	[OP_READ] = "read",
	[OP_READALL] = "readall",
	[OP_REOPEN] = "reopen",
	[OP_REOPEN_TRUNC] = "reopen+O_TRUNC",
	[OP_REOPEN_APPEND] = "reopen+O_APPEND",
	[OP_FSYNC] = "fsync",
	[OP_STAT] = "stat",
};

struct fsx_logent {
	long n;
	enum fsx_op op;
	uint64_t off, len;
	uint64_t size_before, size_after;
};

static const char *path;
static unsigned char *model;	/* what the file must hold */
static uint64_t model_size;
static unsigned char *buf;	/* scratch for data written and read */
static uint64_t max_len = 4 * 1024 * 1024;
static uint64_t max_op = 128 * 1024;
static long nops = 20000;
static int quiet;
static int verbose;
static int fd = -1;
static int append_mode;
static long cur_op;
static struct fsx_logent oplog[FSX_LOG];
static long oplog_n;
static uint64_t rng_state;

/* xorshift64*: fast, and the same sequence for the same seed everywhere. */
static uint64_t
rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

/* A uniform number in [0, n); n > 0. The tiny modulo bias is harmless. */
static uint64_t
rnd_below(uint64_t n)
{
	return rnd() % n;
}

static void
fill_random(unsigned char *p, uint64_t len)
{
	uint64_t i, v;

	for (i = 0; i + 8 <= len; i += 8) {
		v = rnd();
		memcpy(p + i, &v, 8);
	}
	if (i < len) {
		v = rnd();
		memcpy(p + i, &v, len - i);
	}
}

static void
log_op(enum fsx_op op, uint64_t off, uint64_t len, uint64_t before)
{
	struct fsx_logent *e = &oplog[oplog_n % FSX_LOG];

	e->n = cur_op;
	e->op = op;
	e->off = off;
	e->len = len;
	e->size_before = before;
	e->size_after = model_size;
	oplog_n++;
	if (verbose)
		printf("%ld %s off %" PRIu64 " len %" PRIu64 " size %" PRIu64
		       " -> %" PRIu64 "%s\n",
		       cur_op, op_names[op], off, len, before, model_size,
		       append_mode ? " (append fd)" : "");
}

static void
dump_log(void)
{
	long i, first = oplog_n > FSX_LOG ? oplog_n - FSX_LOG : 0;

	fprintf(stderr, "last %ld ops (op, offset, length, size before -> after):\n",
		oplog_n - first);
	for (i = first; i < oplog_n; i++) {
		const struct fsx_logent *e = &oplog[i % FSX_LOG];

		fprintf(stderr, "  %6ld %-16s off %9" PRIu64 " (0x%" PRIx64
			") len %8" PRIu64 " size %9" PRIu64 " -> %9" PRIu64 "\n",
			e->n, op_names[e->op], e->off, e->off, e->len,
			e->size_before, e->size_after);
	}
}

static void
sys_fail(const char *what, ...)
{
	int err = errno;
	va_list ap;

	fprintf(stderr, "cairn-fsx: op %ld: ", cur_op);
	va_start(ap, what);
	vfprintf(stderr, what, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", strerror(err));
	dump_log();
	exit(2);
}

static void
hexdump(const char *label, const unsigned char *p, uint64_t n, uint64_t base)
{
	uint64_t i;

	fprintf(stderr, "%s at 0x%" PRIx64 ":", label, base);
	for (i = 0; i < n; i++)
		fprintf(stderr, " %02x", p[i]);
	fprintf(stderr, "\n");
}

/*
 * Report a content mismatch: the first differing offset (absolute, in the
 * file), then up to 16 expected and found bytes from there. Exits 1.
 */
static void
data_fail(const char *what, uint64_t file_off, const unsigned char *want,
	  const unsigned char *got, uint64_t len)
{
	uint64_t i = 0, n;

	while (i < len && want[i] == got[i])
		i++;
	n = len - i < 16 ? len - i : 16;
	fprintf(stderr, "cairn-fsx: op %ld: %s: data differs at offset %" PRIu64
		" (0x%" PRIx64 "), chunk %" PRIu64 " +%" PRIu64 "\n",
		cur_op, what, file_off + i, file_off + i,
		(file_off + i) / FSX_CHUNK, (file_off + i) % FSX_CHUNK);
	hexdump("expected", want + i, n, file_off + i);
	hexdump("got     ", got + i, n, file_off + i);
	dump_log();
	exit(1);
}

static void
size_fail(const char *what, uint64_t want, uint64_t got)
{
	fprintf(stderr, "cairn-fsx: op %ld: %s: size %" PRIu64
		", expected %" PRIu64 "\n", cur_op, what, got, want);
	dump_log();
	exit(1);
}

static void
do_open(int flags)
{
	fd = open(path, O_RDWR | flags, 0644);
	if (fd < 0)
		sys_fail("open '%s'", path);
	append_mode = !!(flags & O_APPEND);
}

static void
do_close(void)
{
	if (close(fd) < 0)
		sys_fail("close '%s'", path);
	fd = -1;
}

/* pwrite/pread all of it, or fail: a short transfer on a regular file is
 * only legitimate at EOF for reads, handled by the callers. */
static void
write_all(const unsigned char *p, uint64_t len, uint64_t off, int at_end)
{
	while (len > 0) {
		ssize_t n = at_end ? write(fd, p, len)
				   : pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			sys_fail("%s %" PRIu64 " bytes at %" PRIu64,
				 at_end ? "write (O_APPEND)" : "pwrite", len, off);
		if (n == 0) {
			errno = EIO;
			sys_fail("write returned 0");
		}
		p += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
}

static uint64_t
read_upto(unsigned char *p, uint64_t len, uint64_t off)
{
	uint64_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, p + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			sys_fail("pread %" PRIu64 " bytes at %" PRIu64, len - done,
				 off + done);
		if (n == 0)
			break;
		done += (uint64_t)n;
	}
	return done;
}

/* A length for a data op: mostly small, sometimes up to max_op. */
static uint64_t
pick_len(void)
{
	uint64_t lim = rnd_below(4) == 0 ? max_op : (max_op < 4096 ? max_op : 4096);

	return 1 + rnd_below(lim);
}

static void
model_set_size(uint64_t size)
{
	if (size > model_size)
		memset(model + model_size, 0, size - model_size);
	model_size = size;
}

static void
op_write(void)
{
	uint64_t len = pick_len(), off, before = model_size;
	uint64_t nchunks = max_len / FSX_CHUNK;

	if (len > max_len)
		len = max_len;
	switch (rnd_below(8)) {
	case 0:
	case 1:
		/* Across a chunk boundary, when the file may be that long. */
		if (nchunks >= 1 && max_len > FSX_CHUNK) {
			uint64_t b = FSX_CHUNK * (1 + rnd_below(nchunks));

			if (b >= max_len)
				b = FSX_CHUNK * nchunks;
			if (b >= max_len)
				b -= FSX_CHUNK;
			if (len < 2)
				len = 2;
			off = b > len - 1 ? b - 1 - rnd_below(len - 1) : 0;
			break;
		}
		/* fall through */
	case 2:
		/* Overwrite inside what is there (or at 0 for an empty file). */
		off = model_size > 0 ? rnd_below(model_size) : 0;
		break;
	default:
		/* Anywhere: past EOF this leaves a hole. */
		off = rnd_below(max_len - len + 1);
		break;
	}
	if (off + len > max_len)
		len = max_len - off;
	if (len == 0)
		return;
	fill_random(buf, len);
	write_all(buf, len, off, 0);
	if (off > model_size)
		model_set_size(off);
	memcpy(model + off, buf, len);
	if (off + len > model_size)
		model_size = off + len;
	log_op(OP_WRITE, off, len, before);
}

static void
op_append(void)
{
	uint64_t len = pick_len(), before = model_size;

	if (model_size + len > max_len)
		len = max_len - model_size;
	if (len == 0) {
		/* Full: make room the way a program would. */
		if (ftruncate(fd, (off_t)(max_len / 2)) < 0)
			sys_fail("ftruncate to %" PRIu64, max_len / 2);
		model_set_size(max_len / 2);
		log_op(OP_TRUNCATE, max_len / 2, 0, before);
		return;
	}
	fill_random(buf, len);
	write_all(buf, len, model_size, 1);
	memcpy(model + model_size, buf, len);
	model_size += len;
	log_op(OP_APPEND, before, len, before);
}

static void
op_truncate(void)
{
	uint64_t before = model_size, size;

	switch (rnd_below(4)) {
	case 0:
		size = 0;
		break;
	case 1: /* down a little, often into the middle of a chunk */
		size = model_size > 0 ? rnd_below(model_size) : 0;
		break;
	case 2: /* on a chunk boundary */
		size = FSX_CHUNK * rnd_below(max_len / FSX_CHUNK + 1);
		break;
	default:
		size = rnd_below(max_len + 1);
		break;
	}
	if (size > max_len)
		size = max_len;
	if (ftruncate(fd, (off_t)size) < 0)
		sys_fail("ftruncate to %" PRIu64, size);
	model_set_size(size);
	log_op(OP_TRUNCATE, size, 0, before);
}

static void
op_read(void)
{
	/* Up to a little past EOF, so short reads at the end get checked too. */
	uint64_t span = model_size + 4096, off, len, got, want;

	if (span > max_len + 4096)
		span = max_len + 4096;
	off = rnd_below(span);
	len = pick_len();
	want = off >= model_size ? 0 : (model_size - off < len ? model_size - off : len);
	got = read_upto(buf, len, off);
	log_op(OP_READ, off, len, model_size);
	if (got != want) {
		fprintf(stderr, "cairn-fsx: op %ld: read of %" PRIu64 " at %" PRIu64
			" returned %" PRIu64 " bytes, expected %" PRIu64 "\n",
			cur_op, len, off, got, want);
		dump_log();
		exit(1);
	}
	if (memcmp(buf, model + off, got) != 0)
		data_fail("read", off, model + off, buf, got);
}

static void
check_whole(const char *what)
{
	uint64_t got = read_upto(buf, max_len + 1, 0);

	if (got != model_size) {
		if (memcmp(buf, model, got < model_size ? got : model_size) != 0)
			data_fail(what, 0, model, buf,
				  got < model_size ? got : model_size);
		size_fail(what, model_size, got);
	}
	if (memcmp(buf, model, got) != 0)
		data_fail(what, 0, model, buf, got);
}

static void
op_stat(void)
{
	struct stat st;

	log_op(OP_STAT, 0, 0, model_size);
	if (fstat(fd, &st) < 0)
		sys_fail("fstat");
	if ((uint64_t)st.st_size != model_size)
		size_fail("fstat", model_size, (uint64_t)st.st_size);
	if (stat(path, &st) < 0)
		sys_fail("stat '%s'", path);
	if ((uint64_t)st.st_size != model_size)
		size_fail("stat", model_size, (uint64_t)st.st_size);
}

static void
op_reopen(enum fsx_op kind)
{
	uint64_t before = model_size;
	int flags = 0;

	do_close();
	if (kind == OP_REOPEN_TRUNC)
		flags = O_TRUNC;
	else if (kind == OP_REOPEN_APPEND)
		flags = O_APPEND;
	do_open(flags);
	if (kind == OP_REOPEN_TRUNC)
		model_size = 0;
	log_op(kind, 0, 0, before);
}

/*
 * One random op. The mix keeps the slow ones (reopen = a store on close on
 * cairn, fsync, whole-file reads) rare enough that 20,000 ops take seconds.
 */
static void
one_op(void)
{
	uint64_t r = rnd_below(1000);

	if (r < 400)
		append_mode ? op_append() : op_write();
	else if (r < 500)
		op_truncate();
	else if (r < 830)
		op_read();
	else if (r < 850) {
		log_op(OP_READALL, 0, model_size, model_size);
		check_whole("whole-file read");
	} else if (r < 920)
		op_stat();
	else if (r < 930) {
		log_op(OP_FSYNC, 0, 0, model_size);
		if (fsync(fd) < 0)
			sys_fail("fsync");
	} else if (r < 938)
		op_reopen(OP_REOPEN);
	else if (r < 941)
		op_reopen(OP_REOPEN_TRUNC);
	else if (r < 945)
		op_reopen(OP_REOPEN_APPEND);
	else
		append_mode ? op_append() : op_write();
}

static int
parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	default: break;
	}
	if (*end != '\0')
		return -1;
	*out = v;
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: cairn-fsx [-q] [-v] [-N OPS] [-S SEED] [-l MAXLEN] [-o MAXOP]\n"
		"                 [--save-model FILE] FILE\n"
		"       cairn-fsx --check-model SAVED FILE\n"
		"Run random writes, truncates, reads, reopens, fsyncs and stats on\n"
		"FILE and check every result against an in-memory model.\n"
		"  -N OPS       number of operations (default 20000)\n"
		"  -S SEED      random seed (default: from the clock); printed first\n"
		"  -l MAXLEN    maximum file length (default 4M; k/M/G suffixes)\n"
		"  -o MAXOP     maximum length of one write or read (default 128k)\n"
		"  -q           print only the seed line and errors\n"
		"  -v           print every operation\n"
		"  --save-model FILE   write the model's bytes to FILE at the end\n"
		"  --check-model SAVED only compare FILE with SAVED, then exit\n"
		"Exit status: 0 ok, 1 content or size mismatch, 2 system call error\n"
		"or usage.\n");
}

static int
check_model(const char *saved)
{
	FILE *f = fopen(saved, "rb");
	struct stat st;

	if (f == NULL || fstat(fileno(f), &st) < 0)
		sys_fail("open saved model '%s'", saved);
	max_len = (uint64_t)st.st_size;
	model = malloc(max_len + 1);
	buf = malloc(max_len + 1);
	if (model == NULL || buf == NULL)
		sys_fail("malloc");
	if (max_len > 0 && fread(model, 1, max_len, f) != max_len)
		sys_fail("read saved model '%s'", saved);
	fclose(f);
	model_size = max_len;
	do_open(0);
	check_whole("check against saved model");
	if (fstat(fd, &st) < 0)
		sys_fail("fstat");
	if ((uint64_t)st.st_size != model_size)
		size_fail("fstat", model_size, (uint64_t)st.st_size);
	do_close();
	printf("ok: '%s' matches '%s' (%" PRIu64 " bytes)\n", path, saved,
	       model_size);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "save-model", required_argument, NULL, 'M' },
		{ "check-model", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *save = NULL, *check = NULL;
	unsigned long long seed;
	struct timeval tv;
	int c;
	char *end;
	long i;

	gettimeofday(&tv, NULL);
	seed = ((unsigned long long)tv.tv_sec * 1000000 + (unsigned long long)tv.tv_usec) ^
	       ((unsigned long long)getpid() << 20);
	seed %= 1000000000ULL;
	while ((c = getopt_long(argc, argv, "N:S:l:o:qvh", longopts, NULL)) != -1) {
		switch (c) {
		case 'N':
			errno = 0;
			nops = strtol(optarg, &end, 10);
			if (errno || *end || nops < 0) {
				fprintf(stderr, "cairn-fsx: bad -N '%s'\n", optarg);
				return 2;
			}
			break;
		case 'S':
			errno = 0;
			seed = strtoull(optarg, &end, 10);
			if (errno || *end || *optarg == '-' || *optarg == '\0') {
				fprintf(stderr, "cairn-fsx: bad -S '%s'\n", optarg);
				return 2;
			}
			break;
		case 'l':
			if (parse_size(optarg, &max_len) < 0 || max_len == 0 ||
			    max_len > ((uint64_t)1 << 32)) {
				fprintf(stderr, "cairn-fsx: bad -l '%s' (1..4G)\n", optarg);
				return 2;
			}
			break;
		case 'o':
			if (parse_size(optarg, &max_op) < 0 || max_op == 0 ||
			    max_op > ((uint64_t)1 << 30)) {
				fprintf(stderr, "cairn-fsx: bad -o '%s' (1..1G)\n", optarg);
				return 2;
			}
			break;
		case 'q':
			quiet = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'M':
			save = optarg;
			break;
		case 'C':
			check = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	path = argv[optind];
	if (check != NULL)
		return check_model(check);

	/* The seed line comes first, whatever happens next. */
	printf("seed %llu\n", seed);
	fflush(stdout);
	rng_state = seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
	if (rng_state == 0)
		rng_state = 1;
	if (max_op > max_len)
		max_op = max_len;
	model = calloc(1, max_len + 1);
	buf = malloc((max_op > max_len ? max_op : max_len) + 4097);
	if (model == NULL || buf == NULL)
		sys_fail("malloc");

	do_open(O_CREAT | O_TRUNC);
	for (i = 1; i <= nops; i++) {
		cur_op = i;
		one_op();
		if (!quiet && !verbose && i % 5000 == 0)
			printf("%ld ops, size %" PRIu64 "\n", i, model_size);
	}
	cur_op = nops + 1;
	log_op(OP_READALL, 0, model_size, model_size);
	check_whole("final whole-file read");
	op_stat();
	/* Close, then read it back through a new descriptor: what close
	 * stored is what the next open must see. */
	op_reopen(OP_REOPEN);
	check_whole("whole-file read after the last close");
	do_close();
	if (save != NULL) {
		FILE *f = fopen(save, "wb");

		if (f == NULL)
			sys_fail("create '%s'", save);
		if ((model_size > 0 && fwrite(model, 1, model_size, f) != model_size) ||
		    fclose(f) != 0)
			sys_fail("write '%s'", save);
	}
	if (!quiet)
		printf("ok: %ld ops, final size %" PRIu64 "\n", nops, model_size);
	free(model);
	free(buf);
	return 0;
}
