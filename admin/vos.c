/*
 * vos.c - administer the volumes of a cairn-vold server root: create, list,
 * examine, remove, import a tree, export it back, mint tokens. It works on
 * the files directly through vol/'s storage library (volstore.h), so it
 * runs on the server host, with or without cairn-vold running; it never
 * talks HTTP.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "common/fid.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/token.h"
#include "common/util.h"
#include "vol/volstore.h"

/* Fixed, not under --prefix: the one place admins and docs expect. */
#define DEFAULT_ROOT "/var/lib/cairn"

static const char *root_path;
static bool opt_json;

struct cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *usage;
};

/* The sysexits(3) status for -errno @rc; man/vos.8 EXIT STATUS lists them. */
static int
ex_of(int rc)
{
	switch (-rc) {
	case 0: return EX_OK;
	case ENOENT: return EX_NOINPUT;
	case EEXIST: return EX_CANTCREAT;
	case EINVAL: case ENAMETOOLONG: return EX_DATAERR;
	case EACCES: case EPERM: return EX_NOPERM;
	case EAGAIN: case EBUSY: return EX_TEMPFAIL;
	case ENOMEM: return EX_SOFTWARE;
	default: return EX_IOERR;
	}
}

/* @s escaped for a terminal (util_escape()) in one of 4 buffers reused
 * in turn, so one printf() may hold up to 4. Names in a volume may hold
 * any byte but '/' and NUL: a newline or an escape sequence in one must
 * not forge lines or move the cursor. */
static const char *
esc(const char *s)
{
	static char *ring[4];
	static unsigned next;
	char **slot = &ring[next++ % 4];

	free(*slot);
	*slot = util_escape_dup(s ? s : "");
	return *slot ? *slot : "?";
}

/* A progress line (progress()) is on the terminal: a message clears it
 * first, or it would land at the end of that line (the next update
 * draws the line again). Set and cleared under stderr's lock. */
static bool prog_up;

/* Print "vos: MESSAGE: strerror" and return @rc (a negative errno). The
 * message is escaped as a whole: its arguments are often paths. */
static int
report(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int
report(int rc, const char *fmt, ...)
{
	char msg[PATH_MAX * 2];
	va_list ap;
	char *e;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Not esc(): import and export workers report too. */
	e = util_escape_dup(msg);
	flockfile(stderr);
	if (prog_up) {
		fputs("\r\033[K", stderr);
		prog_up = false;
	}
	fprintf(stderr, "vos: %s", e ? e : "?");
	if (rc)
		fprintf(stderr, ": %s", strerror(-rc));
	fputc('\n', stderr);
	funlockfile(stderr);
	free(e);
	return rc;
}

/* report() for a command's last word: returns the sysexits code. */
#define fail(...) ex_of(report(__VA_ARGS__))

static int
open_root(bool create, struct vs_root **r)
{
	int rc = vs_root_open(root_path, create, r);

	if (rc)
		fprintf(stderr, "vos: cannot open server root '%s': %s%s\n",
			root_path, strerror(-rc),
			rc == -ENOENT ? " (run 'vos init')" : "");
	return rc;
}

/* A getopt_long loop shared by the commands: returns the option or -1;
 * "--help" prints @usage and exits 0. */
static int
getopt_cmd_s(int argc, char **argv, const char *shortopts,
	     const struct option *lo, const char *usage)
{
	int c = getopt_long(argc, argv, shortopts, lo, NULL);

	if (c == 'h') {
		fputs(usage, stdout);
		exit(EX_OK);
	}
	if (c == '?') {
		fputs(usage, stderr);
		exit(EX_USAGE);
	}
	return c;
}

static int
getopt_cmd(int argc, char **argv, const struct option *lo, const char *usage)
{
	return getopt_cmd_s(argc, argv, "h", lo, usage);
}

/* ---- init, create, list, examine, remove ---- */

static const char usage_init[] =
	"usage: vos [--root DIR] init\n"
	"Create the server root and its secret key (if missing).\n";

static int
cmd_init(int argc, char **argv)
{
	static const struct option lo[] = {{"help", no_argument, NULL, 'h'},
					   {NULL, 0, NULL, 0}};
	uint8_t key[TOKEN_KEY_MAX];
	size_t klen = sizeof(key);
	struct vs_root *r;
	int rc;

	while (getopt_cmd(argc, argv, lo, usage_init) != -1)
		;
	if (optind != argc)
		return fprintf(stderr, "%s", usage_init), EX_USAGE;
	rc = open_root(true, &r);
	if (rc)
		return ex_of(rc);
	rc = vs_root_key(r, true, key, &klen);
	memset(key, 0, sizeof(key));
	vs_root_close(r);
	if (rc)
		return fail(rc, "cannot create the secret key in '%s'", root_path);
	printf("server root %s ready\n", root_path);
	return EX_OK;
}

static const char usage_create[] =
	"usage: vos [--root DIR] create NAME [--quota SIZE] [--files N]\n"
	"Create an empty volume. SIZE like 10G; 0 = no limit.\n";

static int
parse_limits(int c, uint64_t *bytes, uint64_t *files)
{
	char *end;

	if (c == 'q') {
		if (util_parse_size(optarg, bytes))
			return fail(-EINVAL, "bad --quota '%s'", optarg);
	} else if (c == 'f') {
		errno = 0;
		*files = strtoull(optarg, &end, 10);
		if (errno || *end || end == optarg)
			return fail(-EINVAL, "bad --files '%s'", optarg);
	}
	return 0;
}

static int
cmd_create(int argc, char **argv)
{
	static const struct option lo[] = {{"quota", required_argument, NULL, 'q'},
					   {"files", required_argument, NULL, 'f'},
					   {"help", no_argument, NULL, 'h'},
					   {NULL, 0, NULL, 0}};
	uint8_t key[TOKEN_KEY_MAX];
	size_t klen = sizeof(key);
	uint64_t bytes = 0, files = 0;
	struct vs_root *r;
	uint32_t id;
	int c, rc;

	while ((c = getopt_cmd(argc, argv, lo, usage_create)) != -1)
		if ((rc = parse_limits(c, &bytes, &files)))
			return rc;
	if (optind + 1 != argc)
		return fprintf(stderr, "%s", usage_create), EX_USAGE;
	if (proto_volname_check(argv[optind]))
		return fail(-EINVAL, "bad volume name '%s' (1-64 of "
			    "[A-Za-z0-9._-], not starting with '.')",
			    argv[optind]);
	rc = open_root(true, &r);
	if (rc)
		return ex_of(rc);
	rc = vs_root_key(r, true, key, &klen);
	memset(key, 0, sizeof(key));
	if (rc) {
		vs_root_close(r);
		return fail(rc, "cannot create the secret key");
	}
	rc = vs_vol_create(r, argv[optind], bytes, files, 0, &id);
	vs_root_close(r);
	if (rc)
		return fail(rc, "cannot create volume '%s'", argv[optind]);
	printf("created volume %s (id %08x)\n", argv[optind], id);
	return EX_OK;
}

static void
json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void
print_info(const struct vs_volinfo *vi, bool long_form)
{
	char fid[FID_STRLEN], b1[32], b2[32];

	fid_fmt(&vi->root, fid);
	if (opt_json) {
		printf("{\"name\": ");
		json_str(vi->name);
		printf(", \"id\": %u, \"root\": \"%s\", \"files\": %" PRIu64
		       ", \"bytes\": %" PRIu64 ", \"bytes_limit\": %" PRIu64
		       ", \"files_limit\": %" PRIu64 ", \"dv_max\": %" PRIu64
		       ", \"event_seq\": %" PRIu64 ", \"created\": %" PRId64
		       ", \"chunk_size\": %u, \"format\": %u, \"public\": %s}",
		       vi->id, fid, vi->files_used, vi->bytes_used,
		       vi->bytes_limit, vi->files_limit, vi->dv_max,
		       vi->event_seq, vi->created_ns, vi->chunk_size,
		       vi->format, vi->public ? "true" : "false");
		return;
	}
	if (!long_form) {
		printf("%-24s %08x %10" PRIu64 " %12s %12s\n", vi->name, vi->id,
		       vi->files_used, util_fmt_size(vi->bytes_used, b1, sizeof(b1)),
		       vi->bytes_limit ? util_fmt_size(vi->bytes_limit, b2,
						       sizeof(b2)) : "-");
		return;
	}
	printf("volume     %s\n", vi->name);
	printf("id         %08x (%u)\n", vi->id, vi->id);
	printf("root       %s\n", fid);
	printf("objects    %" PRIu64 "%s\n", vi->files_used,
	       vi->files_limit ? "" : " (no limit)");
	if (vi->files_limit)
		printf("obj limit  %" PRIu64 "\n", vi->files_limit);
	printf("bytes      %" PRIu64 " (%s)\n", vi->bytes_used,
	       util_fmt_size(vi->bytes_used, b1, sizeof(b1)));
	printf("quota      %s\n", vi->bytes_limit ?
	       util_fmt_size(vi->bytes_limit, b2, sizeof(b2)) : "none");
	printf("dv max     %" PRIu64 "\n", vi->dv_max);
	printf("event seq  %" PRIu64 "\n", vi->event_seq);
	if (vi->chunk_size)
		printf("chunk size %s (format %u)\n",
		       util_fmt_size(vi->chunk_size, b1, sizeof(b1)),
		       vi->format);
	else
		printf("format     1 (old: 'vos upgrade %s' converts it)\n",
		       esc(vi->name));
	printf("public     %s\n", vi->public ? "yes (shared HTTP caches may "
					       "keep its chunks)"
					     : "no");
	{
		time_t t = (time_t)(vi->created_ns / 1000000000);
		char tb[64];

		strftime(tb, sizeof(tb), "%Y-%m-%d %H:%M:%S %z", localtime(&t));
		printf("created    %s\n", tb);
	}
}

/*
 * tdb refuses to open a database read-only while a writer's commit has
 * its recovery area live (it would have to run the recovery itself), so
 * opening a volume cairn-vold is committing to fails with EUCLEAN for
 * the few milliseconds of the commit: about one examine in ten during an
 * untar onto a mount. That is not damage. Try again for up to a second
 * (a commit lasts milliseconds) before calling the volume damaged.
 */
#define INFO_TRIES 50

static int
info_of(struct vs_root *r, const char *name, struct vs_volinfo *vi)
{
	const struct timespec pause = {.tv_nsec = 20 * 1000 * 1000};
	struct vs_vol *v;
	int rc, tries = 0;

	for (;;) {
		rc = vs_vol_open(r, name, VS_RDONLY, &v);
		if (!rc) {
			rc = vs_vol_info(v, vi);
			vs_vol_close(v);
		}
		if (rc != -EUCLEAN || ++tries == INFO_TRIES)
			return rc;
		nanosleep(&pause, NULL);
	}
}

static const char usage_list[] =
	"usage: vos [--root DIR] list [--json]\n"
	"List the volumes: name, id, objects, bytes, quota.\n";

static int
cmd_list(int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'},
					   {"help", no_argument, NULL, 'h'},
					   {NULL, 0, NULL, 0}};
	struct vs_root *r;
	char **names;
	size_t n;
	int c, rc, ex = EX_OK;

	while ((c = getopt_cmd(argc, argv, lo, usage_list)) != -1)
		if (c == 'j')
			opt_json = true;
	if (optind != argc)
		return fprintf(stderr, "%s", usage_list), EX_USAGE;
	rc = open_root(false, &r);
	if (rc)
		return ex_of(rc);
	rc = vs_vol_list(r, &names, &n);
	if (rc) {
		vs_root_close(r);
		return fail(rc, "cannot list volumes");
	}
	if (opt_json)
		printf("[");
	else
		printf("%-24s %-8s %10s %12s %12s\n", "NAME", "ID", "OBJECTS",
		       "BYTES", "QUOTA");
	for (size_t i = 0; i < n; i++) {
		struct vs_volinfo vi;

		rc = info_of(r, names[i], &vi);
		if (rc) {
			fprintf(stderr, "vos: cannot read volume '%s': %s\n",
				names[i], strerror(-rc));
			ex = EX_IOERR;
			continue;
		}
		if (opt_json && i)
			printf(", ");
		print_info(&vi, false);
	}
	if (opt_json)
		printf("]\n");
	vs_names_free(names, n);
	vs_root_close(r);
	return ex;
}

static const char usage_examine[] =
	"usage: vos [--root DIR] examine NAME [--json]\n"
	"Show a volume: id, root FID, objects, bytes, quota, DV high-water.\n";

static int
cmd_examine(int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'},
					   {"help", no_argument, NULL, 'h'},
					   {NULL, 0, NULL, 0}};
	struct vs_volinfo vi;
	struct vs_root *r;
	int c, rc;

	while ((c = getopt_cmd(argc, argv, lo, usage_examine)) != -1)
		if (c == 'j')
			opt_json = true;
	if (optind + 1 != argc)
		return fprintf(stderr, "%s", usage_examine), EX_USAGE;
	rc = open_root(false, &r);
	if (rc)
		return ex_of(rc);
	rc = info_of(r, argv[optind], &vi);
	vs_root_close(r);
	if (rc)
		return fail(rc, "cannot examine volume '%s'", argv[optind]);
	print_info(&vi, true);
	if (opt_json)
		printf("\n");
	return EX_OK;
}

static const char usage_remove[] =
	"usage: vos [--root DIR] remove NAME [--force] [--staged]\n"
	"Remove a volume. A volume holding anything but its empty root needs\n"
	"--force. --staged removes the leftover of an interrupted import.\n";

static int
cmd_remove(int argc, char **argv)
{
	static const struct option lo[] = {{"force", no_argument, NULL, 'f'},
					   {"staged", no_argument, NULL, 's'},
					   {"help", no_argument, NULL, 'h'},
					   {NULL, 0, NULL, 0}};
	bool force = false, staged = false;
	struct vs_volinfo vi;
	struct vs_root *r;
	int c, rc;

	while ((c = getopt_cmd(argc, argv, lo, usage_remove)) != -1) {
		if (c == 'f')
			force = true;
		else if (c == 's')
			staged = true;
	}
	if (optind + 1 != argc)
		return fprintf(stderr, "%s", usage_remove), EX_USAGE;
	rc = open_root(false, &r);
	if (rc)
		return ex_of(rc);
	if (!staged && !force) {
		rc = info_of(r, argv[optind], &vi);
		/* A volume a vos remove that died already marked reads as
		 * gone: finish removing it (vs_vol_remove() says -ENOENT if
		 * there is really nothing). */
		if (rc == -ENOENT)
			goto remove;
		if (rc) {
			vs_root_close(r);
			return fail(rc, "cannot remove volume '%s'", argv[optind]);
		}
		if (vi.files_used > 1) {
			vs_root_close(r);
			fprintf(stderr, "vos: volume '%s' holds %" PRIu64
				" objects; use --force to remove it\n",
				argv[optind], vi.files_used - 1);
			return EX_TEMPFAIL;
		}
	}
remove:
	rc = vs_vol_remove(r, argv[optind], staged ? VS_STAGED : 0);
	vs_root_close(r);
	if (rc)
		return fail(rc, "cannot remove volume '%s'", argv[optind]);
	printf("removed volume %s\n", argv[optind]);
	return EX_OK;
}

static const char usage_upgrade[] =
	"usage: vos [--root DIR] upgrade NAME\n"
	"Convert a volume of the old format 1 (one data file per version) to\n"
	"format 2 (chunk objects), in one transaction; cairn-vold does the same\n"
	"when it opens one. A volume already in format 2 is left as it is.\n";

static int
cmd_upgrade(int argc, char **argv)
{
	static const struct option lo[] = {{"help", no_argument, NULL, 'h'},
					   {NULL, 0, NULL, 0}};
	struct vs_volinfo vi;
	struct vs_root *r;
	struct vs_vol *v;
	bool old;
	int rc;

	while (getopt_cmd(argc, argv, lo, usage_upgrade) != -1)
		;
	if (optind + 1 != argc)
		return fprintf(stderr, "%s", usage_upgrade), EX_USAGE;
	rc = open_root(false, &r);
	if (rc)
		return ex_of(rc);
	rc = info_of(r, argv[optind], &vi);
	old = !rc && !vi.chunk_size;
	/* Opening for writing converts (vs_vol_open()); it also runs tdb's
	 * recovery after a writer died in a commit, which a read-only open
	 * cannot (that one says -EUCLEAN then). */
	if (old || (rc && rc != -ENOENT)) {
		old = true;
		rc = vs_vol_open(r, argv[optind], 0, &v);
		if (!rc) {
			rc = vs_vol_info(v, &vi);
			vs_vol_close(v);
		}
	}
	vs_root_close(r);
	if (rc)
		return fail(rc, "cannot upgrade volume '%s'", argv[optind]);
	printf("volume %s: %s format %u (chunk size %u)\n", esc(argv[optind]),
	       old ? "converted to" : "already in", vi.format, vi.chunk_size);
	return EX_OK;
}

static const char usage_setpublic[] =
	"usage: vos [--root DIR] setpublic NAME on|off\n"
	"Let shared HTTP caches keep the volume's chunks (on), or not (off,\n"
	"the default). Anyone who can reach such a cache can read what it\n"
	"holds, token or not: turn it on only for content that is public.\n";

static int
cmd_setpublic(int argc, char **argv)
{
	static const struct option lo[] = {{"help", no_argument, NULL, 'h'},
					   {NULL, 0, NULL, 0}};
	struct vs_root *r;
	struct vs_vol *v;
	bool pub;
	int rc;

	while (getopt_cmd(argc, argv, lo, usage_setpublic) != -1)
		;
	if (optind + 2 != argc)
		return fprintf(stderr, "%s", usage_setpublic), EX_USAGE;
	if (!strcmp(argv[optind + 1], "on"))
		pub = true;
	else if (!strcmp(argv[optind + 1], "off"))
		pub = false;
	else
		return fprintf(stderr, "%s", usage_setpublic), EX_USAGE;
	rc = open_root(false, &r);
	if (rc)
		return ex_of(rc);
	rc = vs_vol_open(r, argv[optind], 0, &v);
	if (!rc) {
		rc = vs_vol_set_public(v, pub);
		vs_vol_close(v);
	}
	vs_root_close(r);
	if (rc)
		return fail(rc, "cannot change volume '%s'", argv[optind]);
	/* A running cairn-vold looks at the flag every second. */
	printf("volume %s is %s\n", argv[optind],
	       pub ? "public: shared HTTP caches may keep its chunks"
		   : "private: chunk replies say Cache-Control: private");
	return EX_OK;
}

/* ---- token ---- */

static const char usage_token[] =
	"usage: vos [--root DIR] token NAME --rw|--ro [--expires DURATION]"
	" [-o FILE]\n"
	"Print a bearer token for volume NAME (DURATION like 30d, 12h, 90m;\n"
	"default: never expires). With -o FILE, write it to FILE instead,\n"
	"created with mode 0600 (replaced atomically if it exists): cairnd\n"
	"refuses a token file that others can read. The token names the\n"
	"volume's id and token epoch: 'vos revoke NAME' voids it.\n";

/* Write @tok and a newline to @path with mode 0600 from the first byte:
 * a temporary file made by mkstemp() (always 0600) beside it, fsynced,
 * renamed over @path. @return 0 or -errno. */
static int
write_token_file(const char *path, const char *tok)
{
	char tmp[PATH_MAX];
	int fd, rc = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, 0600) < 0)
		rc = -errno;
	if (!rc)
		rc = util_write_all(fd, tok, strlen(tok));
	if (!rc)
		rc = util_write_all(fd, "\n", 1);
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path) < 0)
		rc = -errno;
	if (rc)
		unlink(tmp);
	else
		util_fsync_parent(path);
	return rc;
}

static int
cmd_token(int argc, char **argv)
{
	static const struct option lo[] = {
		{"rw", no_argument, NULL, 'w'},
		{"ro", no_argument, NULL, 'r'},
		{"expires", required_argument, NULL, 'e'},
		{"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	uint8_t key[TOKEN_KEY_MAX];
	size_t klen = sizeof(key);
	char tok[TOKEN_MAX];
	const char *out = NULL;
	struct token_info ti = {0};
	struct vs_tokstate ts = {0};
	struct vs_volinfo vi;
	struct vs_root *r;
	uint64_t expiry = 0, ms;
	int c, rc, rw = -1;

	while ((c = getopt_cmd_s(argc, argv, "ho:", lo, usage_token)) != -1) {
		if (c == 'w')
			rw = rw == 0 ? -2 : 1;
		else if (c == 'r')
			rw = rw == 1 ? -2 : 0;
		else if (c == 'o')
			out = optarg;
		else if (c == 'e') {
			size_t l = strlen(optarg);
			char buf[64];

			/* "30d" is the natural way to say it; util knows h. */
			if (l && l < sizeof(buf) && optarg[l - 1] == 'd') {
				char *end;
				unsigned long long d;

				errno = 0;
				d = strtoull(optarg, &end, 10);
				if (errno || *end != 'd' || end == optarg ||
				    d > 100000)
					return fail(-EINVAL, "bad --expires '%s'",
						    optarg);
				snprintf(buf, sizeof(buf), "%lluh", d * 24);
				rc = util_parse_duration_ms(buf, &ms);
			} else {
				rc = util_parse_duration_ms(optarg, &ms);
			}
			if (rc || ms < 1000)
				return fail(-EINVAL, "bad --expires '%s'", optarg);
			expiry = (uint64_t)time(NULL) + ms / 1000;
		}
	}
	if (optind + 1 != argc || rw < 0 || (out && !*out)) {
		if (rw == -2)
			fprintf(stderr, "vos: give one of --rw and --ro\n");
		fputs(usage_token, stderr);
		return EX_USAGE;
	}
	rc = open_root(false, &r);
	if (rc)
		return ex_of(rc);
	rc = info_of(r, argv[optind], &vi);
	if (rc) {
		vs_root_close(r);
		return fail(rc, "no volume '%s'", argv[optind]);
	}
	rc = vs_tokstate_ensure(r, argv[optind]);
	if (!rc)
		rc = vs_tokstate_get(r, argv[optind], true, &ts);
	if (!rc && ts.id != vi.id)
		rc = -EINVAL;
	if (rc) {
		vs_root_close(r);
		return fail(rc, "cannot read the token state of '%s'",
			    argv[optind]);
	}
	rc = vs_root_key(r, false, key, &klen);
	vs_root_close(r);
	if (rc)
		return fail(rc, "cannot read the secret key");
	snprintf(ti.vol, sizeof(ti.vol), "%s", argv[optind]);
	ti.volid = ts.id;
	ti.epoch = ts.epoch;
	ti.rw = rw;
	ti.expiry = expiry;
	rc = token_mint(key, klen, &ti, tok, sizeof(tok));
	memset(key, 0, sizeof(key));
	if (rc < 0)
		return fail(rc, "cannot mint a token");
	if (out) {
		rc = write_token_file(out, tok);
		memset(tok, 0, sizeof(tok));
		if (rc)
			return fail(rc, "cannot write '%s'", out);
		return EX_OK;
	}
	printf("%s\n", tok);
	return EX_OK;
}

static const char usage_revoke[] =
	"usage: vos [--root DIR] revoke NAME\n"
	"Void every token minted so far for volume NAME (its token epoch\n"
	"moves on; the server key stays); mint new ones with 'vos token'.\n";

static int
cmd_revoke(int argc, char **argv)
{
	static const struct option lo[] = {{"help", no_argument, NULL, 'h'},
					   {NULL, 0, NULL, 0}};
	struct vs_root *r;
	uint64_t epoch = 0;
	int rc;

	while (getopt_cmd(argc, argv, lo, usage_revoke) != -1)
		;
	if (optind + 1 != argc) {
		fputs(usage_revoke, stderr);
		return EX_USAGE;
	}
	rc = open_root(false, &r);
	if (rc)
		return ex_of(rc);
	rc = vs_vol_revoke(r, argv[optind], &epoch);
	vs_root_close(r);
	if (rc == -ENOENT)
		return fail(rc, "no volume '%s'", argv[optind]);
	if (rc)
		return fail(rc, "cannot revoke the tokens of '%s'",
			    argv[optind]);
	printf("tokens of '%s' revoked (token epoch %" PRIu64 ")\n",
	       argv[optind], epoch);
	return EX_OK;
}

/* ---- import ---- */

struct hl {
	dev_t dev;
	ino_t ino;
	struct fid fid;
	char *path; /* export: where the first link was written */
	dev_t wdev; /* export: and the inode it got */
	ino_t wino;
};

struct hlmap {
	struct hl *v;
	size_t n, cap; /* open addressing, cap a power of two */
};

static size_t
hl_slot(const struct hlmap *m, dev_t dev, ino_t ino)
{
	size_t h = (size_t)(ino * 0x9e3779b97f4a7c15ull ^ dev) & (m->cap - 1);

	while (m->v[h].ino && !(m->v[h].ino == ino && m->v[h].dev == dev))
		h = (h + 1) & (m->cap - 1);
	return h;
}

static struct hl *
hl_find(struct hlmap *m, dev_t dev, ino_t ino)
{
	size_t h;

	if (!m->cap)
		return NULL;
	h = hl_slot(m, dev, ino);
	return m->v[h].ino ? &m->v[h] : NULL;
}

static struct hl *
hl_add(struct hlmap *m, dev_t dev, ino_t ino)
{
	size_t h;

	if ((m->n + 1) * 2 > m->cap) {
		struct hlmap nm = {0};

		nm.cap = m->cap ? m->cap * 2 : 64;
		nm.v = calloc(nm.cap, sizeof(*nm.v));
		if (!nm.v)
			return NULL;
		for (size_t i = 0; i < m->cap; i++)
			if (m->v[i].ino)
				nm.v[hl_slot(&nm, m->v[i].dev, m->v[i].ino)] =
					m->v[i];
		nm.n = m->n;
		free(m->v);
		*m = nm;
	}
	h = hl_slot(m, dev, ino);
	m->v[h].dev = dev;
	m->v[h].ino = ino ? ino : 1;
	m->n++;
	return &m->v[h];
}

static void
hl_free(struct hlmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->v[i].path);
	free(m->v);
}

/*
 * Import workers: the chunk objects of files are written by a few
 * threads (vs_import_write(), file system calls only) while the main
 * thread walks the source and owns the tdb: a create costs an inode
 * allocation in data/XX, and ext4 serializes creates within a directory
 * but not across them (objects land in 256 directories by oid). The
 * main thread records each finished file (vs_import_done()) in whatever
 * order they finish; the volume is the same whatever that order is.
 */
struct exp;

struct ijob {
	struct ijob *next;
	int fd; /* import: the source file, closed by the worker */
	struct fid fid;
	uint64_t dv, size;
	int64_t at, mt, ct;
	char *path;
	int rc;
	struct vs_ichunk *c;
	size_t n;
	/* export: write file @name in directory @dfd (open until every
	 * job is done) with @attr (mode already without set-id bits) and
	 * xattrs @x */
	struct exp *ex;
	int dfd;
	const char *name; /* in @path */
	struct proto_attr attr;
	struct proto_xattr *x;
	size_t nx;
	uint32_t cs; /* the volume's chunk size */
	int worker;  /* its queue */
};

#define IMPORT_JOBS_MAX 8    /* --jobs above this is refused */
#define IMPORT_INFLIGHT 256 /* jobs queued or not yet recorded */
#define EXPORT_INFLIGHT 8192

/* One worker's queue: each job goes to one worker (ijob.worker). */
struct iq {
	pthread_cond_t work;
	struct ijob *head, *tail;
	bool sleeping; /* its worker waits on @work */
};

struct ipool {
	pthread_mutex_t lock;
	pthread_cond_t done_cv;
	struct iq q[IMPORT_JOBS_MAX];
	struct ijob *done;	  /* written (or failed), not recorded */
	size_t inflight;	  /* queued + being written + done */
	size_t max;		  /* of them before the main thread waits */
	size_t ndone;		  /* jobs on @done */
	size_t wake_at;		  /* wake the main thread at this @ndone */
	bool mwait;		  /* it waits on @done_cv */
	bool stop;		  /* no more jobs: workers exit when idle */
	bool cancel;		  /* a failure: skip the queued jobs */
	bool reported;		  /* a worker's failure was (main thread) */
	struct vs_vol *v;
	uint32_t cs;
	int n;
	unsigned next; /* round robin of import jobs */
	int64_t waited_ms; /* the main thread waited for workers (debug) */
	pthread_t th[IMPORT_JOBS_MAX];
	struct iwarg {
		struct ipool *p;
		int i;
	} wa[IMPORT_JOBS_MAX];
};

struct imp {
	struct ipool *pool; /* NULL: data written by the main thread */
	struct vs_vol *v;
	struct hlmap hl;
	uint64_t files, bytes;
	uint64_t mounts; /* "#VOLUME." symlinks made mount points */
	int warned;
	uint64_t total; /* objects counted before (0: not counted) */
	bool progress;	/* stderr is a terminal: a progress line */
	int64_t shown;	/* when the progress line was last written (ms) */
	uint32_t volid;
	uint8_t *ibuf; /* the main thread's chunk buffer (small files) */
	/* Reading ahead (import_ahead()): on while the source is not in
	 * the page cache, judged over windows of AHEAD_WINDOW files. */
	bool ahead;
	unsigned awin, acount; /* files looked at, misses among them */
	uint64_t asked;	       /* files asked for ahead (CAIRN_VOS_DEBUG) */
	struct ahq *aq;	       /* the thread that reads ahead, or NULL */
	uint32_t cs;
	/* random bytes for the oids of new objects, drawn 4 KiB at a
	 * time rather than one getrandom() a file */
	uint8_t rnd[4096];
	size_t rndpos;
};

/* A random FID in the new volume for the next object: vs_apply_raw()
 * takes it as a client's choice (refused, as any, if it exists). */
static int
import_fid(struct imp *im, struct fid *f)
{
	if (im->rndpos + FID_OID_LEN > sizeof(im->rnd)) {
		size_t got = 0;

		while (got < sizeof(im->rnd)) {
			ssize_t n = getrandom(im->rnd + got,
					      sizeof(im->rnd) - got, 0);

			if (n < 0 && errno != EINTR)
				return -errno;
			if (n > 0)
				got += (size_t)n;
		}
		im->rndpos = 0;
	}
	f->vol = im->volid;
	memcpy(f->oid, im->rnd + im->rndpos, FID_OID_LEN);
	im->rndpos += FID_OID_LEN;
	return 0;
}

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The progress line on a terminal: rewritten in place at most 4 times a
 * second, cleared with @done. */
static void
progress(struct imp *im, const char *verb, bool done)
{
	int64_t now;

	if (!im->progress)
		return;
	if (done) {
		flockfile(stderr);
		fprintf(stderr, "\r\033[K");
		prog_up = false;
		funlockfile(stderr);
		return;
	}
	if (im->files & 255)
		return;
	now = mono_ms();
	if (now - im->shown < 250)
		return;
	im->shown = now;
	flockfile(stderr);
	prog_up = true;
	if (im->total)
		fprintf(stderr,
			"\rvos: %s %" PRIu64 " of %" PRIu64 " objects (%" PRIu64
			" %%), %" PRIu64 " MB\033[K",
			verb, im->files, im->total, im->files * 100 / im->total,
			im->bytes >> 20);
	else
		fprintf(stderr,
			"\rvos: %s %" PRIu64 " objects, %" PRIu64 " MB\033[K",
			verb, im->files, im->bytes >> 20);
	funlockfile(stderr);
}

/* Count the entries under directory @dfd (not following symlinks), to
 * size the volume's hash table and the progress line. Errors are not
 * reported here: the import itself meets them. */
static uint64_t
count_tree(int dfd, int depth)
{
	/* A new open file description: a dup() would share (and move) the
	 * read position the import's own walk starts from. */
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	struct dirent *de;
	uint64_t n = 0;

	if (fd < 0)
		return 0;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return 0;
	}
	while ((de = readdir(d))) {
		struct stat st;
		bool dir = de->d_type == DT_DIR;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		n++;
		if (de->d_type == DT_UNKNOWN &&
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) ==
			    0)
			dir = S_ISDIR(st.st_mode);
		if (dir && depth < 4096) {
			int cfd = openat(dirfd(d), de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
						 O_CLOEXEC);

			if (cfd >= 0) {
				n += count_tree(cfd, depth + 1);
				close(cfd);
			}
		}
	}
	closedir(d);
	return n;
}

static int export_job(struct ijob *j, struct vs_vol *v);

static void *
ipool_worker(void *arg)
{
	struct iwarg *wa = arg;
	struct ipool *p = wa->p;
	struct iq *q = &p->q[wa->i];
	uint8_t *buf = malloc(p->cs);

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct ijob *j = q->head;

		if (!j) {
			if (p->stop)
				break;
			q->sleeping = true;
			pthread_cond_wait(&q->work, &p->lock);
			q->sleeping = false;
			continue;
		}
		q->head = j->next;
		if (!q->head)
			q->tail = NULL;
		pthread_mutex_unlock(&p->lock);
		if (__atomic_load_n(&p->cancel, __ATOMIC_RELAXED))
			j->rc = -ECANCELED;
		else if (j->ex)
			j->rc = export_job(j, p->v);
		else if (!buf)
			j->rc = -ENOMEM;
		else
			j->rc = vs_import_write(p->v, &j->fid, j->dv, j->fd,
						j->size, buf, &j->c, &j->n);
		if (j->fd >= 0)
			close(j->fd);
		j->fd = -1;
		pthread_mutex_lock(&p->lock);
		j->next = p->done;
		p->done = j;
		if (++p->ndone >= p->wake_at && p->mwait)
			pthread_cond_signal(&p->done_cv);
	}
	pthread_mutex_unlock(&p->lock);
	free(buf);
	return NULL;
}

static void
ijob_free(struct ijob *j)
{
	if (j->fd >= 0)
		close(j->fd);
	vs_ichunk_free(j->c, j->n);
	free(j->path);
	if (j->x)
		proto_xattrs_free(j->x, j->nx);
	free(j);
}

/* Record the files the workers have finished (main thread). With @wait,
 * first wait for at least one. @return 0 or the first failure (reported;
 * the pool is then cancelled). */
static int
ipool_collect(struct ipool *p, size_t want)
{
	struct ijob *list;
	size_t n = 0;
	int rc = 0;

	pthread_mutex_lock(&p->lock);
	/* Woken once @want are done, not at every job: a main thread
	 * that waited for each would switch with the workers twice a
	 * file. */
	p->wake_at = want < p->inflight ? want : p->inflight;
	if (p->ndone < p->wake_at) {
		int64_t t0 = mono_ms();

		while (p->ndone < p->wake_at) {
			p->mwait = true;
			pthread_cond_wait(&p->done_cv, &p->lock);
		}
		p->waited_ms += mono_ms() - t0;
	}
	p->mwait = false;
	list = p->done;
	p->done = NULL;
	p->ndone = 0;
	pthread_mutex_unlock(&p->lock);
	while (list) {
		struct ijob *j = list;

		list = j->next;
		/* The first failure of a worker is reported (an export
		 * worker did) and cancels the rest; later ones only stop. */
		if (!rc && j->rc && j->rc != -ECANCELED)
			rc = j->ex || p->reported
				     ? j->rc
				     : report(j->rc,
					      "cannot import the data of '%s'",
					      j->path);
		if (rc)
			p->reported = true;
		if (!rc && !j->rc && !j->ex &&
		    !__atomic_load_n(&p->cancel, __ATOMIC_RELAXED)) {
			rc = vs_import_done(p->v, &j->fid, j->dv, j->size,
					    j->c, j->n, j->at, j->mt, j->ct);
			if (rc && !p->reported)
				report(rc, "cannot import the data of '%s'",
				       j->path);
		}
		ijob_free(j);
		n++;
	}
	pthread_mutex_lock(&p->lock);
	p->inflight -= n;
	pthread_mutex_unlock(&p->lock);
	if (rc)
		__atomic_store_n(&p->cancel, true, __ATOMIC_RELAXED);
	return rc;
}

/* Hand job @j to the workers, recording finished ones while too many are
 * in flight. The pool owns @j from here, also on failure. */
static int
ipool_submit(struct ipool *p, struct ijob *j)
{
	struct iq *q;
	int rc;

	for (;;) {
		pthread_mutex_lock(&p->lock);
		if (p->inflight < p->max)
			break;
		pthread_mutex_unlock(&p->lock);
		rc = ipool_collect(p, p->max / 4);
		if (rc) {
			ijob_free(j);
			return rc;
		}
	}
	/* Import: any worker (objects land in 256 directories by oid).
	 * Export: the caller chose one per directory. */
	if (!j->ex)
		j->worker = (int)(p->next++ % (unsigned)p->n);
	q = &p->q[j->worker % p->n];
	j->next = NULL;
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	p->inflight++;
	if (q->sleeping)
		pthread_cond_signal(&q->work);
	pthread_mutex_unlock(&p->lock);
	/* Record what is done now and then, so finished jobs do not pile
	 * up while the walk goes on. */
	return ipool_collect(p, 0);
}

/* Wait until every job handed over so far is done and recorded.
 * @return 0 or the first failure. */
static int
ipool_drain(struct ipool *p)
{
	int rc = 0;

	for (;;) {
		int r;

		pthread_mutex_lock(&p->lock);
		if (!p->inflight) {
			pthread_mutex_unlock(&p->lock);
			return rc;
		}
		pthread_mutex_unlock(&p->lock);
		r = ipool_collect(p, SIZE_MAX);
		if (!rc)
			rc = r;
	}
}

/* Wait for every job (recording them unless @rc is a failure already)
 * and stop the workers. @return @rc or the first failure. */
static int
ipool_finish(struct ipool **pp, int rc)
{
	struct ipool *p = *pp;
	int r;

	if (!p)
		return rc;
	if (rc) {
		/* The caller's failure was reported: the workers' that
		 * follow from it (a full disk) are not. */
		p->reported = true;
		__atomic_store_n(&p->cancel, true, __ATOMIC_RELAXED);
	}
	r = ipool_drain(p);
	if (!rc)
		rc = r;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	for (int i = 0; i < p->n; i++)
		pthread_cond_signal(&p->q[i].work);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->n; i++)
		pthread_join(p->th[i], NULL);
	pthread_mutex_destroy(&p->lock);
	for (int i = 0; i < IMPORT_JOBS_MAX; i++)
		pthread_cond_destroy(&p->q[i].work);
	pthread_cond_destroy(&p->done_cv);
	free(p);
	*pp = NULL;
	return rc;
}

/* @max: jobs in flight before the main thread waits (an import job holds
 * an fd; export jobs of one directory go to one worker, so they must span
 * several directories to keep the workers busy). */
static int
ipool_start(struct ipool **pp, struct vs_vol *v, int n, uint32_t cs,
	    size_t max)
{
	if (!n)
		return 0;
	struct ipool *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	for (int i = 0; i < IMPORT_JOBS_MAX; i++)
		pthread_cond_init(&p->q[i].work, NULL);
	pthread_cond_init(&p->done_cv, NULL);
	p->v = v;
	p->cs = cs;
	p->max = max;
	*pp = p;
	for (int i = 0; i < n; i++) {
		int rc;

		p->wa[i].p = p;
		p->wa[i].i = i;
		rc = pthread_create(&p->th[i], NULL, ipool_worker, &p->wa[i]);

		if (rc) {
			ipool_finish(pp, -rc);
			return -rc;
		}
		p->n++;
	}
	return 0;
}

static int
ts_ns(const struct timespec *t, int64_t *out)
{
	*out = (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
	return 0;
}

/* Copy the user.* xattrs of open file @fd to @fid. */
static int
import_xattrs(struct imp *im, int fd, const struct fid *fid, const char *path)
{
	char *names = NULL, *val = NULL;
	ssize_t n;
	int rc = 0;

	n = flistxattr(fd, NULL, 0);
	if (n <= 0)
		return n < 0 && errno != ENOTSUP ? -errno : 0;
	names = malloc((size_t)n);
	val = malloc(PROTO_XATTR_VALUE_MAX);
	if (!names || !val) {
		rc = -ENOMEM;
		goto out;
	}
	n = flistxattr(fd, names, (size_t)n);
	if (n < 0) {
		rc = -errno;
		goto out;
	}
	for (char *p = names; p < names + n; p += strlen(p) + 1) {
		struct proto_op op = {0};
		ssize_t vl;

		if (strncmp(p, "user.", 5))
			continue;
		vl = fgetxattr(fd, p, val, PROTO_XATTR_VALUE_MAX);
		if (vl < 0) {
			rc = -errno;
			goto out;
		}
		op.kind = PROTO_OP_SETXATTR;
		op.fid = *fid;
		op.xname = p;
		op.xvalue = val;
		op.xlen = (size_t)vl;
		rc = vs_apply_raw(im->v, &op, NULL);
		if (rc) {
			report(rc, "cannot import xattr '%s' of '%s'", p, path);
			goto out;
		}
	}
out:
	free(names);
	free(val);
	return rc;
}

static void ahead_judge(struct imp *im, int fd);
static int import_dir(struct imp *im, int dfd, const struct fid *dir,
		      const char *path, int depth);

/* Open @name in @dfd for the import: O_NONBLOCK so that a FIFO put
 * there since the readdir or stat does not block vos for good. */
static int
import_open(int dfd, const char *name, bool dir)
{
	return openat(dfd, name,
		      O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY |
			      (dir ? O_DIRECTORY : 0));
}

static int
import_entry(struct imp *im, int dfd, const struct fid *dir, const char *name,
	     unsigned char type, const char *dpath, int depth)
{
	char path[PATH_MAX];
	struct proto_op op = {0};
	struct proto_op_result res;
	struct stat st;
	struct hl *h = NULL;
	int64_t at, mt, ct;
	int rc, fd = -1;

	snprintf(path, sizeof(path), "%s/%s", dpath, name);
	rc = proto_name_check(name, strlen(name));
	if (rc)
		return report(rc, "cannot import '%s': the name is not valid in a "
			    "volume", path);
	/* A regular file or a directory by readdir's d_type (most of a
	 * tree) is opened first and its attributes taken from the open
	 * file: one path lookup instead of two (fstatat, then openat), and
	 * the file recorded is the one read by construction. Opening
	 * either has no effect on it. Other types (and DT_UNKNOWN) are
	 * stat'ed first, as is a name whose open fails or that is no
	 * longer of readdir's type (swapped since: imported as what it is
	 * now, or refused as before): opening a device can have effects. */
	if (type == DT_REG || type == DT_DIR) {
		fd = import_open(dfd, name, type == DT_DIR);
		if (fd >= 0 && (fstat(fd, &st) < 0 ||
				(type == DT_REG ? !S_ISREG(st.st_mode)
						: !S_ISDIR(st.st_mode)))) {
			close(fd);
			fd = -1;
		}
	}
	if (fd < 0 && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return report(-errno, "cannot stat '%s'", path);
	ts_ns(&st.st_atim, &at);
	ts_ns(&st.st_mtim, &mt);
	ts_ns(&st.st_ctim, &ct);
	op.parent = *dir;
	op.name = (char *)name;
	op.uid = st.st_uid;
	op.gid = st.st_gid;
	op.mode = st.st_mode & 07777;
	if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
		h = hl_find(&im->hl, st.st_dev, st.st_ino);
		if (h) {
			op.kind = PROTO_OP_LINK;
			op.fid = h->fid;
			rc = vs_apply_raw(im->v, &op, NULL);
			if (rc)
				fail(rc, "cannot link '%s'", path);
			if (fd >= 0)
				close(fd);
			return rc;
		}
	}
	if (S_ISREG(st.st_mode) || S_ISFIFO(st.st_mode) ||
	    S_ISSOCK(st.st_mode) || S_ISCHR(st.st_mode) ||
	    S_ISBLK(st.st_mode)) {
		op.kind = PROTO_OP_CREATE;
		op.type = S_ISREG(st.st_mode)	 ? PROTO_T_FILE
			  : S_ISFIFO(st.st_mode) ? PROTO_T_FIFO
			  : S_ISSOCK(st.st_mode) ? PROTO_T_SOCK
			  : S_ISCHR(st.st_mode)	 ? PROTO_T_CHR
						 : PROTO_T_BLK;
		if (proto_type_has_rdev(op.type)) {
			if ((uint64_t)st.st_rdev > PROTO_RDEV_MAX)
				return report(-ERANGE,
					      "cannot import '%s': device "
					      "number %u:%u out of range",
					      path, major(st.st_rdev),
					      minor(st.st_rdev));
			op.rdev = (uint32_t)st.st_rdev;
		}
	} else if (S_ISDIR(st.st_mode)) {
		op.kind = PROTO_OP_MKDIR;
		op.type = PROTO_T_DIR;
	} else if (S_ISLNK(st.st_mode)) {
		char *t = malloc(PROTO_PATH_MAX + 1);
		ssize_t n;

		if (!t)
			return -ENOMEM;
		n = readlinkat(dfd, name, t, PROTO_PATH_MAX);
		if (n <= 0 || n >= PROTO_PATH_MAX) {
			free(t);
			return report(n < 0 ? -errno : -ENAMETOOLONG,
				    "cannot read symlink '%s'", path);
		}
		t[n] = 0;
		op.kind = PROTO_OP_SYMLINK;
		op.type = PROTO_T_SYMLINK;
		op.target = t;
		/* "#VOLUME.", as vos export (and AFS) writes a mount point. */
		if (n >= 3 && t[0] == '#' && t[n - 1] == '.') {
			t[n - 1] = '\0';
			if (!proto_mount_target_check(t + 1, (size_t)n - 2)) {
				memmove(t, t + 1, (size_t)n - 1);
				op.kind = PROTO_OP_MKMOUNT;
				op.type = PROTO_T_MOUNT;
				im->mounts++;
			} else {
				t[n - 1] = '.';
			}
		}
	} else {
		report(0, "skipping '%s': unknown file type", path);
		return 0;
	}
	rc = import_fid(im, &op.fid);
	if (!rc)
		rc = vs_apply_raw(im->v, &op, &res);
	free(op.target);
	if (rc) {
		if (fd >= 0)
			close(fd);
		return report(rc, "cannot import '%s'", path);
	}
	im->files++;
	progress(im, "imported", false);
	if (h == NULL && !S_ISDIR(st.st_mode) && st.st_nlink > 1) {
		h = hl_add(&im->hl, st.st_dev, st.st_ino);
		if (!h) {
			if (fd >= 0)
				close(fd);
			return -ENOMEM;
		}
		h->fid = res.attr.fid;
	}
	if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
		struct stat ost;

		/* Stat'ed first (DT_UNKNOWN): the name may have been
		 * swapped since (a source others can write), so the open
		 * file must be the inode stat'ed (whose attributes are
		 * recorded). */
		if (fd < 0) {
			fd = import_open(dfd, name, S_ISDIR(st.st_mode));
			if (fd < 0)
				return report(-errno, "cannot open '%s'", path);
			if (fstat(fd, &ost) < 0 || ost.st_dev != st.st_dev ||
			    ost.st_ino != st.st_ino ||
			    (ost.st_mode & S_IFMT) != (st.st_mode & S_IFMT)) {
				close(fd);
				return report(-ESTALE,
					      "'%s' changed while importing",
					      path);
			}
		}
		/* O_NONBLOCK off (reads of a regular file ignore it on
		 * Linux, but a FUSE or network source sees the flag); the
		 * open sets no other flag F_SETFL changes. */
		if (S_ISREG(st.st_mode) && fcntl(fd, F_SETFL, 0) < 0) {
			rc = -errno;
			close(fd);
			return report(rc, "cannot open '%s'", path);
		}
		rc = import_xattrs(im, fd, &res.attr.fid, path);
		if (!rc && S_ISREG(st.st_mode) && st.st_size > 0 &&
		    !__atomic_load_n(&im->ahead, __ATOMIC_RELAXED))
			ahead_judge(im, fd);
		/* The data by a worker, which records the times with it.
		 * Not a file with other links: a link made before the
		 * worker is done would get its ctime overwritten. */
		/* A file that goes inline whole is read here: handing it
		 * to a worker would cost more (two thread switches) than
		 * the one read. */
		if (!rc && S_ISREG(st.st_mode) && st.st_size > 0 && im->pool &&
		    st.st_nlink == 1 &&
		    vs_import_inlines(im->v, (uint64_t)st.st_size)) {
			struct vs_ichunk *c = NULL;
			size_t nc = 0;

			rc = vs_import_write(im->v, &res.attr.fid, res.attr.dv,
					     fd, (uint64_t)st.st_size, im->ibuf,
					     &c, &nc);
			close(fd);
			if (!rc)
				rc = vs_import_done(im->v, &res.attr.fid,
						    res.attr.dv,
						    (uint64_t)st.st_size, c, nc,
						    at, mt, ct);
			vs_ichunk_free(c, nc);
			if (rc)
				return report(rc,
					      "cannot import the data of '%s'",
					      path);
			im->bytes += (uint64_t)st.st_size;
			return 0;
		}
		if (!rc && S_ISREG(st.st_mode) && st.st_size > 0 &&
		    im->pool && st.st_nlink == 1) {
			struct ijob *j = calloc(1, sizeof(*j));

			if (!j || !(j->path = strdup(path))) {
				free(j);
				close(fd);
				return -ENOMEM;
			}
			j->fd = fd;
			j->fid = res.attr.fid;
			j->dv = res.attr.dv;
			j->size = (uint64_t)st.st_size;
			j->at = at;
			j->mt = mt;
			j->ct = ct;
			im->bytes += (uint64_t)st.st_size;
			return ipool_submit(im->pool, j);
		}
		if (!rc && S_ISREG(st.st_mode) && st.st_size > 0) {
			rc = vs_import_data(im->v, &res.attr.fid, fd,
					    (uint64_t)st.st_size);
			if (rc)
				fail(rc, "cannot import the data of '%s'", path);
			im->bytes += (uint64_t)st.st_size;
		}
		if (!rc && S_ISDIR(st.st_mode)) {
			if (depth > 4096)
				rc = report(-ELOOP, "'%s' is too deep", path);
			else
				rc = import_dir(im, fd, &res.attr.fid, path,
						depth + 1);
		}
		close(fd);
		if (rc)
			return rc;
	}
	rc = vs_import_times(im->v, &res.attr.fid, at, mt, ct);
	if (rc)
		fail(rc, "cannot set the times of '%s'", path);
	return rc;
}

/* A name of a directory being imported: its inode, its offset in the
 * directory's arena of names. */
struct dname {
	ino_t ino;
	size_t off;
	unsigned char type; /* readdir's d_type */
};

/* Files of a directory whose data vos asks the kernel for ahead of the
 * walk (import_ahead()). */
#define IMPORT_AHEAD 32
/* Reading ahead costs an open, an fadvise and a close a file (~15 % more
 * CPU when the tree is in the page cache), and saves a synchronous disk
 * read a file when it is not (a 100,000-file tree out of the cache: 3x
 * faster). So it is on only while the source misses the cache: off, it
 * is turned on when AHEAD_ON of AHEAD_WINDOW files the walk opens were
 * not in the page cache; on, it stays on for the next AHEAD_WINDOW files
 * only if at least AHEAD_ON of these were not either. A file that cannot
 * tell (empty; not vos's to open with O_NOATIME, so not probed) counts
 * as neither: a window of those turns reading ahead off, and the walk's
 * own probes (ahead_judge()) judge again. */
#define AHEAD_WINDOW 256
#define AHEAD_ON     16

/* Is the first byte of @fd in the page cache? 1 yes, 0 no, -1 cannot
 * tell (a kernel or file system without RWF_NOWAIT reads: never read
 * ahead; an empty file, which has nothing to cache). The byte is read,
 * but not waited for. */
static int
page_cached(int fd)
{
	char b;
	struct iovec iov = {&b, 1};
	ssize_t got = preadv2(fd, &iov, 1, 0, RWF_NOWAIT);

	if (got >= 0)
		return got > 0 ? 1 : -1;
	return errno == EAGAIN ? 0 : -1;
}

/*
 * The thread that reads ahead (one, beside the import's workers): the
 * opens, probes and fadvises of reading ahead cost the walk as much CPU
 * as its own work when the source is cold (a 100,000-file tree out of
 * the page cache: the main thread's CPU 18 -> 47 us a file, most of it
 * system time in those opens, inode reads and block requests), and the
 * walk is the serial part of an import. The main thread keeps a stack
 * of the directories it is walking (struct alist: the sorted names,
 * shared, and a dup of the directory's fd); the thread asks for the
 * files of the deepest one, up to IMPORT_AHEAD past the walk's position,
 * and sleeps when it is that far ahead, or while reading ahead is off.
 */
struct alist {
	struct alist *below;
	int dfd;
	const char *arena;
	const struct dname *ents;
	size_t n, next; /* @next: the next to ask for */
	size_t pos;	/* the walk's position (atomic) */
	int users;	/* the thread is asking for one of them */
	bool dead;	/* popped: freed when @users is 0 */
};

struct ahq {
	pthread_mutex_t lock;
	pthread_cond_t work, idle;
	struct alist *top;
	bool sleeping, stop;
	pthread_t th;
};

/* Count one probe (1 cached, 0 not, -1 cannot tell), judging the window
 * (under the ahq's lock when the thread runs). */
static void
ahead_count(struct imp *im, int c, bool asked)
{
	if (asked)
		im->asked++;
	if (c < 0)
		return;
	im->acount += !c;
	if (++im->awin < AHEAD_WINDOW && (im->ahead || im->acount < AHEAD_ON))
		return;
	__atomic_store_n(&im->ahead, im->acount >= AHEAD_ON, __ATOMIC_RELAXED);
	im->awin = im->acount = 0;
}

/* One file opened by the walk, ahead off: count the misses. */
static void
ahead_judge(struct imp *im, int fd)
{
	int c = page_cached(fd);

	if (c < 0)
		return;
	if (im->aq)
		pthread_mutex_lock(&im->aq->lock);
	ahead_count(im, c, false);
	if (im->aq)
		pthread_mutex_unlock(&im->aq->lock);
}

/* Ask for the first chunk of regular file @name in @dfd to be read into
 * the page cache now, without waiting: the walk reaches it IMPORT_AHEAD
 * files later, and a tree that is not in the page cache (a big one, or
 * one written long ago) is then read with that many requests in flight
 * instead of one synchronous read a file. Best effort, errors ignored
 * (the import's own open reports them). Only regular files (DT_REG, or
 * DT_UNKNOWN and an lstat): opening a device or a FIFO can have effects;
 * O_NONBLOCK so that a file swapped for a FIFO since the readdir does not
 * block. Reading ahead changes no atime. */
static int
import_ahead(uint32_t cs, int dfd, const char *name, unsigned char type,
	     bool *asked)
{
	const int fl =
		O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
	int fd, c = -1;

	*asked = false;

	/* A file system that gives no d_type (DT_UNKNOWN: XFS without
	 * ftype, some NFS and FUSE ones, often the cold, remote sources
	 * reading ahead helps most): one lstat tells. */
	if (type == DT_UNKNOWN) {
		struct stat st;

		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			return -1;
	} else if (type != DT_REG)
		return -1;
	/* O_NOATIME: the probe reads a byte, and the walk has not yet
	 * recorded the file's atime (its fstatat comes later). Only the
	 * owner or root may: otherwise no probe (assumed not cached). */
	fd = openat(dfd, name, fl | O_NOATIME);
	if (fd >= 0)
		c = page_cached(fd);
	else if (errno == EPERM)
		fd = openat(dfd, name, fl);
	if (fd < 0)
		return -1;
	/* Not known to be cached (unknown included: it costs nothing when
	 * it is): asked for. */
	if (c != 1) {
		(void)posix_fadvise(fd, 0, cs, POSIX_FADV_WILLNEED);
		*asked = true;
	}
	close(fd);
	/* Counted as before: a file that cannot tell counts as a hit in
	 * the window (a window of them turns reading ahead off). */
	return c < 0 ? 1 : c;
}

/* Inline (no thread): the files up to IMPORT_AHEAD past the walk. */
static void
import_ahead_inline(struct imp *im, int dfd, const char *name,
		    unsigned char type)
{
	bool asked;
	int c = import_ahead(im->cs, dfd, name, type, &asked);

	ahead_count(im, c, asked);
}

static void *
ahead_main(void *arg)
{
	struct imp *im = arg;
	struct ahq *q = im->aq;

	pthread_mutex_lock(&q->lock);
	while (!q->stop) {
		struct alist *l = q->top;
		size_t pos, i;
		bool asked;
		int c;

		pos = l ? __atomic_load_n(&l->pos, __ATOMIC_RELAXED) : 0;
		/* @next is read by the walk without the lock (ahead_at()) */
		if (l && l->next <= pos)
			__atomic_store_n(&l->next, pos + 1, __ATOMIC_RELAXED);
		if (!l || !__atomic_load_n(&im->ahead, __ATOMIC_RELAXED) ||
		    l->next >= l->n || l->next > pos + IMPORT_AHEAD) {
			__atomic_store_n(&q->sleeping, true, __ATOMIC_RELAXED);
			pthread_cond_wait(&q->work, &q->lock);
			__atomic_store_n(&q->sleeping, false, __ATOMIC_RELAXED);
			continue;
		}
		i = l->next;
		__atomic_store_n(&l->next, i + 1, __ATOMIC_RELAXED);
		l->users++;
		pthread_mutex_unlock(&q->lock);
		c = import_ahead(im->cs, l->dfd, l->arena + l->ents[i].off,
				 l->ents[i].type, &asked);
		pthread_mutex_lock(&q->lock);
		ahead_count(im, c, asked);
		if (!--l->users && l->dead)
			pthread_cond_broadcast(&q->idle);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

/* Start the thread; without it (it could not start) the walk reads
 * ahead itself. */
static void
ahead_start(struct imp *im)
{
	struct ahq *q = calloc(1, sizeof(*q));

	if (!q)
		return;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->work, NULL);
	pthread_cond_init(&q->idle, NULL);
	im->aq = q;
	if (pthread_create(&q->th, NULL, ahead_main, im)) {
		im->aq = NULL;
		free(q);
	}
}

static void
ahead_stop(struct imp *im)
{
	struct ahq *q = im->aq;

	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->stop = true;
	pthread_cond_signal(&q->work);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->th, NULL);
	im->aq = NULL;
	free(q);
}

/* The walk enters a directory (@dfd: dup'ed, owned by the list). */
static struct alist *
ahead_push(struct imp *im, int dfd, const char *arena,
	   const struct dname *ents, size_t n)
{
	struct ahq *q = im->aq;
	struct alist *l = calloc(1, sizeof(*l));

	if (!l) {
		close(dfd);
		return NULL;
	}
	l->dfd = dfd;
	l->arena = arena;
	l->ents = ents;
	l->n = n;
	pthread_mutex_lock(&q->lock);
	l->below = q->top;
	q->top = l;
	pthread_cond_signal(&q->work);
	pthread_mutex_unlock(&q->lock);
	return l;
}

/* The walk is at entry @i of @l: wake the thread when it is asleep and
 * less than half of IMPORT_AHEAD ahead (not at every file: a thread
 * switch a file would cost more than the reading ahead saves). */
static void
ahead_at(struct imp *im, struct alist *l, size_t i)
{
	struct ahq *q = im->aq;

	__atomic_store_n(&l->pos, i, __ATOMIC_RELAXED);
	if (!__atomic_load_n(&q->sleeping, __ATOMIC_RELAXED) ||
	    !__atomic_load_n(&im->ahead, __ATOMIC_RELAXED) ||
	    i + IMPORT_AHEAD / 2 < __atomic_load_n(&l->next, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&q->lock);
	pthread_cond_signal(&q->work);
	pthread_mutex_unlock(&q->lock);
}

/* The walk leaves the directory: once the thread no longer uses it. */
static void
ahead_pop(struct imp *im, struct alist *l)
{
	struct ahq *q = im->aq;
	struct alist **pp;

	pthread_mutex_lock(&q->lock);
	for (pp = &q->top; *pp && *pp != l; pp = &(*pp)->below)
		;
	if (*pp)
		*pp = l->below;
	l->dead = true;
	while (l->users)
		pthread_cond_wait(&q->idle, &q->lock);
	pthread_mutex_unlock(&q->lock);
	close(l->dfd);
	free(l);
}

static int
dname_cmp(const void *a, const void *b)
{
	const struct dname *x = a, *y = b;

	/* Names of one inode (hard links) in readdir's order. */
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

static int
import_dir(struct imp *im, int dfd, const struct fid *dir, const char *path,
	   int depth)
{
	int fd = dup(dfd);
	DIR *d;
	struct dirent *de;
	struct dname *ents = NULL;
	struct alist *al = NULL;
	char *arena = NULL;
	size_t n = 0, cap = 0, alen = 0, acap = 0;
	int rc = 0;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	/* The names first, then in inode order: the stats and opens of
	 * a tree not in the cache read the inode table in order rather
	 * than at random (readdir's order is the name hash's), as tar's
	 * --sort=inode does. */
	while ((errno = 0, de = readdir(d))) {
		size_t l = strlen(de->d_name) + 1;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			struct dname *ne = realloc(ents, nc * sizeof(*ents));

			if (!ne) {
				rc = -ENOMEM;
				break;
			}
			ents = ne;
			cap = nc;
		}
		if (alen + l > acap) {
			size_t nc = acap ? acap * 2 : 4096;
			char *na;

			while (nc < alen + l)
				nc *= 2;
			if (!(na = realloc(arena, nc))) {
				rc = -ENOMEM;
				break;
			}
			arena = na;
			acap = nc;
		}
		memcpy(arena + alen, de->d_name, l);
		ents[n].ino = de->d_ino;
		ents[n].off = alen;
		ents[n].type = de->d_type;
		alen += l;
		n++;
	}
	if (!rc && errno)
		rc = -errno;
	if (!rc && n)
		qsort(ents, n, sizeof(*ents), dname_cmp);
	/* The thread reading ahead gets the directory (a dup of its fd:
	 * the thread may still use it while the DIR closes), or, without
	 * it, the walk asks for the files up to IMPORT_AHEAD past it (@sent:
	 * those asked for so far; turned on mid-directory, it starts from
	 * the walk's position). */
	if (!rc && n && im->aq) {
		int afd = dup(dirfd(d));

		if (afd >= 0)
			al = ahead_push(im, afd, arena, ents, n);
	}
	for (size_t i = 0, sent = 0; i < n && !rc; i++) {
		if (al) {
			ahead_at(im, al, i);
		} else if (!im->aq) {
			if (sent <= i)
				sent = i + 1;
			while (im->ahead && sent < n &&
			       sent <= i + IMPORT_AHEAD) {
				import_ahead_inline(im, dirfd(d),
						    arena + ents[sent].off,
						    ents[sent].type);
				sent++;
			}
		}
		rc = import_entry(im, dirfd(d), dir, arena + ents[i].off,
				  ents[i].type, path, depth);
	}
	if (al)
		ahead_pop(im, al);
	free(ents);
	free(arena);
	closedir(d);
	return rc;
}

/* Default --jobs of import and export: threads that write files. */
#define IMPORT_JOBS_DEFAULT 4

static int
parse_jobs(const char *arg, int *jobs)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(arg, &end, 10);
	if (errno || *end || end == arg || n < 0 || n > IMPORT_JOBS_MAX)
		return fail(-EINVAL, "bad --jobs '%s' (0 to %d)", arg,
			    IMPORT_JOBS_MAX);
	*jobs = (int)n;
	return 0;
}

static const char usage_import[] =
	"usage: vos [--root DIR] import NAME SRCDIR [--quota SIZE] [--files N] "
	"[--jobs N]\n"
	"Make a new volume NAME from the tree SRCDIR, keeping modes, owners,\n"
	"times, symlinks, hard links, user.* xattrs, FIFOs, sockets, device\n"
	"nodes and holes. The volume appears only when the whole tree is\n"
	"in. On a terminal, a progress line on stderr. --jobs N: threads\n"
	"writing the data of files over 16 KiB (default 4, 0 = none, at\n"
	"most 8); smaller files go into the volume's metadata.\n";

static int
cmd_import(int argc, char **argv)
{
	static const struct option lo[] = {{"quota", required_argument, NULL, 'q'},
					   {"files", required_argument, NULL, 'f'},
					   {"jobs", required_argument, NULL, 'j'},
					   {"help", no_argument, NULL, 'h'},
					   {NULL, 0, NULL, 0}};
	uint8_t key[TOKEN_KEY_MAX];
	size_t klen = sizeof(key);
	uint64_t bytes = 0, files = 0;
	int jobs = IMPORT_JOBS_DEFAULT;
	struct imp im = {0};
	struct vs_import_budget budget = {0};
	struct vs_root *r = NULL;
	struct vs_volinfo vi;
	struct proto_op op = {0};
	struct proto_attr ra;
	struct stat st;
	const char *name, *src;
	int c, rc, sfd = -1;
	int64_t at, mt, ct, t_walk, t_sync, t_end, waited = 0;
	FILE *fsched;
	bool made = false;

	while ((c = getopt_cmd_s(argc, argv, "hj:", lo, usage_import)) != -1)
		if (c == 'j') {
			if ((rc = parse_jobs(optarg, &jobs)))
				return rc;
		} else if ((rc = parse_limits(c, &bytes, &files)))
			return rc;
	if (optind + 2 != argc)
		return fprintf(stderr, "%s", usage_import), EX_USAGE;
	name = argv[optind];
	src = argv[optind + 1];
	if (proto_volname_check(name))
		return fail(-EINVAL, "bad volume name '%s'", name);
	sfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0 || fstat(sfd, &st) < 0)
		return fail(-errno, "cannot open '%s'", src);
	rc = open_root(true, &r);
	if (rc)
		goto out;
	rc = vs_root_key(r, true, key, &klen);
	memset(key, 0, sizeof(key));
	if (rc) {
		fail(rc, "cannot create the secret key");
		goto out;
	}
	im.progress = isatty(STDERR_FILENO);
	im.total = count_tree(sfd, 0);
	/* meta.tdb cannot pass tdb's 4 GiB: a tree whose metadata alone
	 * would not fit (with the reserve cairn-vold needs) is refused
	 * before anything is written, rather than failing hours later. */
	rc = vs_import_plan(im.total + 1, &budget);
	if (rc) {
		char b1[32], b2[32], b3[32];

		fail(rc,
		     "cannot import '%s': its %" PRIu64 " objects need "
		     "~%s of metadata in meta.tdb, more than tdb's %s limit "
		     "less %s kept free for cairn-vold; import it as several "
		     "volumes",
		     src, im.total + 1,
		     util_fmt_size(budget.meta, b1, sizeof(b1)),
		     util_fmt_size(budget.limit, b2, sizeof(b2)),
		     util_fmt_size(budget.reserve, b3, sizeof(b3)));
		goto out;
	}
	rc = vs_vol_create_sized(r, name, bytes, files, VS_STAGED,
				 im.total + 1, NULL);
	if (rc == -EEXIST) {
		fail(rc, "cannot import into '%s' (a volume of that name, or "
		     "an interrupted import: 'vos remove --staged %s')", name,
		     name);
		goto out;
	}
	if (rc) {
		fail(rc, "cannot create volume '%s'", name);
		goto out;
	}
	made = true;
	rc = vs_vol_open(r, name, VS_STAGED | VS_NOSYNC | VS_BULK, &im.v);
	if (rc) {
		fail(rc, "cannot open the new volume");
		goto out;
	}
	vs_import_budget(im.v, &budget);
	rc = vs_vol_info(im.v, &vi);
	if (!rc)
		rc = vs_getattr(im.v, &vi.root, &ra);
	im.volid = vi.id;
	im.rndpos = sizeof(im.rnd);
	im.cs = vi.chunk_size;
	if (!rc && !(im.ibuf = malloc(vi.chunk_size)))
		rc = -ENOMEM;
	if (!rc && jobs)
		rc = ipool_start(&im.pool, im.v, jobs, vi.chunk_size,
				 IMPORT_INFLIGHT);
	if (rc)
		goto out;
	/* The root directory takes SRCDIR's owner, mode, xattrs, times. */
	op.kind = PROTO_OP_SETATTR;
	op.fid = vi.root;
	op.base_dv = ra.dv;
	op.mask = PROTO_SA_MODE | PROTO_SA_UID | PROTO_SA_GID;
	op.mode = st.st_mode & 07777;
	op.uid = st.st_uid;
	op.gid = st.st_gid;
	rc = vs_apply_raw(im.v, &op, NULL);
	if (!rc)
		rc = import_xattrs(&im, sfd, &vi.root, src);
	t_walk = mono_ms();
	ahead_start(&im);
	if (!rc)
		rc = import_dir(&im, sfd, &vi.root, src, 0);
	ahead_stop(&im);
	if (im.pool)
		waited = im.pool->waited_ms;
	/* Every file's data written and recorded, or the workers stopped. */
	rc = ipool_finish(&im.pool, rc);
	if (rc)
		goto out;
	ts_ns(&st.st_atim, &at);
	ts_ns(&st.st_mtim, &mt);
	ts_ns(&st.st_ctim, &ct);
	rc = vs_import_times(im.v, &vi.root, at, mt, ct);
	progress(&im, NULL, true);
	t_sync = mono_ms();
	if (!rc)
		rc = vs_vol_sync(im.v);
	t_end = mono_ms();
	if (rc) {
		fail(rc, "cannot finish the import");
		goto out;
	}
	vs_vol_close(im.v);
	im.v = NULL;
	rc = vs_vol_publish(r, name);
	if (rc) {
		fail(rc, "cannot publish volume '%s'", name);
		goto out;
	}
	made = false;
	/* For tests (t1191, t1192): did reading ahead run? */
	if (getenv("CAIRN_VOS_DEBUG")) {
		struct rusage ru;

		fprintf(stderr, "vos: debug: read ahead %" PRIu64 " files\n",
			im.asked);
		fprintf(stderr,
			"vos: debug: walk %" PRId64 " ms, sync %" PRId64
			" ms, waited for workers %" PRId64 " ms\n",
			t_sync - t_walk, t_end - t_sync, waited);
		/* on CPU, waiting for a CPU (ns), timeslices */
		fsched = fopen("/proc/thread-self/schedstat", "r");
		if (fsched) {
			char l[128];

			if (fgets(l, sizeof(l), fsched))
				fprintf(stderr, "vos: debug: main thread "
					"schedstat %s", l);
			fclose(fsched);
		}
		/* The walk is one thread (tdb, source reads of small
		 * files): its CPU bounds an import's rate (the benches). */
		if (getrusage(RUSAGE_THREAD, &ru) == 0)
			fprintf(stderr,
				"vos: debug: main thread CPU %ld.%06ld s "
				"user, %ld.%06ld s system\n",
				(long)ru.ru_utime.tv_sec,
				(long)ru.ru_utime.tv_usec,
				(long)ru.ru_stime.tv_sec,
				(long)ru.ru_stime.tv_usec);
	}
	printf("imported %s into volume %s (id %08x): %" PRIu64 " objects, "
	       "%" PRIu64 " bytes\n",
	       esc(src), name, vi.id, im.files, im.bytes);
	if (im.mounts)
		printf("%" PRIu64 " symlink%s to '#VOLUME.' made mount "
		       "point%s\n",
		       im.mounts, im.mounts == 1 ? "" : "s",
		       im.mounts == 1 ? "" : "s");
out:
	rc = ipool_finish(&im.pool, rc); /* before the handle goes */
	if (rc)
		progress(&im, NULL, true);
	if (rc && im.v && vs_import_full(im.v)) {
		char b1[32], b2[32];

		report(0,
		       "stopped: meta.tdb passed %s, near tdb's %s limit "
		       "(more metadata than estimated); import the tree as "
		       "several volumes",
		       util_fmt_size(budget.hard, b1, sizeof(b1)),
		       util_fmt_size(budget.limit, b2, sizeof(b2)));
	}
	vs_vol_close(im.v);
	if (made)
		vs_vol_remove(r, name, VS_STAGED);
	hl_free(&im.hl);
	free(im.ibuf);
	vs_root_close(r);
	if (sfd >= 0)
		close(sfd);
	return ex_of(rc);
}

/* ---- export ---- */

/* A directory written whose owner, mode and times wait until every
 * file in it is (export_flush()). */
struct pdir {
	int fd;
	char *path;
	struct proto_attr attr;
};

#define EXPORT_PENDING_DIRS 256

struct exp {
	struct vs_vol *v;
	struct ipool *pool; /* NULL: files written by the main thread */
	struct pdir *pend;  /* EXPORT_PENDING_DIRS of them, in post-order */
	size_t npend;
	struct imp pr;	 /* the progress line's counters */
	uint32_t cs;	 /* the volume's chunk size */
	bool failed;	 /* a worker reported a failure */
	int dworker;	 /* the worker writing the files of this directory */
	unsigned ndirs;	 /* directories begun */
	struct hlmap hl; /* keyed by the first 8 bytes of the oid */
	bool chown_ok;
	int top;	  /* fd of DESTDIR */
	bool keep_setid;  /* --keep-setid */
	uint64_t dropped; /* objects whose set-id bits were dropped */
	uint64_t mounts;  /* mount points written as "#VOLUME." symlinks */
	uint64_t nodev;	  /* device nodes left out (no CAP_MKNOD) */
	int warned;
};

/*
 * The export is written through directory fds, never through paths: run
 * as root into a tree that other users come to own piece by piece (each
 * directory gets its recorded owner once its contents are written), a
 * path would follow whatever symlink such a user put in place of a
 * directory. Every object is made with *at() relative to an fd of its
 * parent, which is a directory vos made and still owns (0700, not yet
 * given away), and set up through its own fd where it has one.
 */
/* Objects exported as symlinks: no mode, no xattrs of their own. */
static bool
is_link(const struct proto_attr *a)
{
	return a->type == PROTO_T_SYMLINK || a->type == PROTO_T_MOUNT;
}

/* The mode @a is written with: set-id bits are what any client with a
 * rw token chose; written as they are, with the owners a client chose
 * too, they would hand whoever runs the file the rights of that owner on
 * this machine. The sticky bit grants nothing and stays. Main thread. */
static uint32_t
export_mode(struct exp *ex, const struct proto_attr *a)
{
	uint32_t mode = a->mode;

	if (!ex->keep_setid && !is_link(a) && (mode & (S_ISUID | S_ISGID))) {
		mode &= ~(uint32_t)(S_ISUID | S_ISGID);
		ex->dropped++;
	}
	return mode;
}

/* Owner, mode (as it is: export_mode() has been applied), xattrs @x and
 * times of the object written as @name in @dfd (or open as @fd). Any
 * thread. */
static int
export_meta_x(struct exp *ex, int dfd, const char *name, int fd,
	      const char *path, const struct proto_attr *a,
	      const struct proto_xattr *x, size_t n, bool moded)
{
	struct timespec ts[2];
	char at[64 + NAME_MAX];
	uint32_t mode = a->mode;
	int rc;

	/* Objects without an fd of their own (symlinks, FIFOs) are named
	 * relative to their parent's fd; xattr calls take a path only, so
	 * they go through /proc's link to that fd. */
	snprintf(at, sizeof(at), "/proc/self/fd/%d/%s", dfd, name);
	if ((fd >= 0 ? fchown(fd, a->uid, a->gid)
		     : fchownat(dfd, name, a->uid, a->gid,
				AT_SYMLINK_NOFOLLOW)) < 0 &&
	    !__atomic_fetch_add(&ex->warned, 1, __ATOMIC_RELAXED))
		report(0, "cannot set the owner of '%s': %s (owners are not "
		       "kept)", path, strerror(errno));
	/* @moded: created with its mode, which a chown does not change
	 * (no set-id bits). */
	if (!is_link(a) && !moded &&
	    (fd >= 0 ? fchmod(fd, mode) : fchmodat(dfd, name, mode, 0)) < 0)
		return report(-errno, "cannot chmod '%s'", path);
	for (size_t i = 0; i < n && !is_link(a); i++)
		if ((fd >= 0 ? fsetxattr(fd, x[i].name, x[i].value, x[i].len,
					 0)
			     : lsetxattr(at, x[i].name, x[i].value, x[i].len,
					 0)) < 0) {
			rc = -errno;
			return report(rc, "cannot set xattr '%s' on '%s'",
				      x[i].name, path);
		}
	ts[0].tv_sec = a->atime_ns / 1000000000;
	ts[0].tv_nsec = a->atime_ns % 1000000000;
	ts[1].tv_sec = a->mtime_ns / 1000000000;
	ts[1].tv_nsec = a->mtime_ns % 1000000000;
	if ((fd >= 0 ? futimens(fd, ts)
		     : utimensat(dfd, name, ts, AT_SYMLINK_NOFOLLOW)) < 0)
		return report(-errno, "cannot set the times of '%s'", path);
	return 0;
}

/* export_meta_x() with the xattrs read here (main thread). */
static int
export_meta(struct exp *ex, int dfd, const char *name, int fd, const char *path,
	    const struct proto_attr *a)
{
	struct proto_attr m = *a;
	struct proto_xattr *x = NULL;
	size_t n = 0;
	uint64_t dv;
	int rc;

	m.mode = export_mode(ex, a);
	if (!is_link(a)) {
		rc = vs_xattrs(ex->v, &a->fid, &dv, &x, &n);
		if (rc)
			return report(rc, "cannot read the xattrs of '%s'", path);
	}
	rc = export_meta_x(ex, dfd, name, fd, path, &m, x, n, false);
	if (x)
		proto_xattrs_free(x, n);
	return rc;
}

/* An export worker's failure: reported unless another one was (the
 * first cancels the rest). */
#define ejob_fail(j, rc, ...)                                                 \
	(__atomic_exchange_n(&(j)->ex->failed, true, __ATOMIC_RELAXED)        \
		 ? (rc)                                                       \
		 : report((rc), __VA_ARGS__))

/* Worker: write the file of job @j (export). Failures are reported. */
static int
export_job(struct ijob *j, struct vs_vol *v)
{
	/* Made with its mode unless that has bits beyond rwx (a chown
	 * would clear set-id bits): one fchmod less a file. vos export
	 * runs with umask 0; no one else can reach the file yet (its
	 * directories are vos's, 0700, until they are finished). */
	bool moded = !(j->attr.mode & ~0777u);
	uint64_t end = 0;
	int out, rc;

	out = openat(j->dfd, j->name,
		     O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		     moded ? (mode_t)j->attr.mode : 0600);
	if (out < 0)
		return ejob_fail(j, -errno, "cannot write '%s'", j->path);
	rc = vs_export_write(v, &j->attr.fid, j->c, j->n, out);
	if (rc) {
		close(out);
		unlinkat(j->dfd, j->name, 0);
		return ejob_fail(j, rc, "cannot read the data of '%s'",
				 j->path);
	}
	/* Extend to the size only past the last stored byte (a hole or
	 * trailing zeros): most files end with their data. */
	if (j->n)
		end = j->c[j->n - 1].chunk * j->cs + j->c[j->n - 1].len;
	if (j->attr.size > end && ftruncate(out, (off_t)j->attr.size) < 0)
		rc = ejob_fail(j, -errno, "cannot write '%s'", j->path);
	if (!rc)
		rc = export_meta_x(j->ex, j->dfd, j->name, out, j->path,
				   &j->attr, j->x, j->nx, moded);
	if (close(out) < 0 && !rc)
		rc = ejob_fail(j, -errno, "cannot write '%s'", j->path);
	return rc;
}

/* Main thread: hand regular file @a (no other links) to the workers. */
static int
export_submit(struct exp *ex, int dfd, const char *name, const char *path,
	      const struct proto_attr *a)
{
	struct ijob *j = calloc(1, sizeof(*j));
	uint64_t dv;
	int rc;

	if (!j || !(j->path = strdup(path))) {
		free(j);
		return report(-ENOMEM, "cannot write '%s'", path);
	}
	j->fd = -1;
	j->ex = ex;
	j->dfd = dfd;
	j->name = strrchr(j->path, '/') ? strrchr(j->path, '/') + 1 : j->path;
	j->attr = *a;
	j->attr.mode = export_mode(ex, a);
	rc = vs_xattrs(ex->v, &a->fid, &dv, &j->x, &j->nx);
	if (rc) {
		ijob_free(j);
		return report(rc, "cannot read the xattrs of '%s'", path);
	}
	j->cs = ex->cs;
	/* ext4 makes the files of one directory one at a time: threads
	 * creating in the same one only wait for each other. */
	j->worker = ex->dworker;
	rc = vs_export_map(ex->v, &a->fid, a->size, &j->c, &j->n);
	if (rc) {
		ijob_free(j);
		return report(rc, "cannot read the data of '%s'", path);
	}
	return ipool_submit(ex->pool, j);
}

/* Wait for every file written so far, then give the pending directories
 * their owner, mode and times, children before parents. With @rc (a
 * failure already) only close them. @return @rc or the first failure. */
static int
export_flush(struct exp *ex, int rc)
{
	if (ex->pool) {
		int r = ipool_drain(ex->pool);

		if (!rc)
			rc = r;
	}
	for (size_t i = 0; i < ex->npend; i++) {
		struct pdir *d = &ex->pend[i];

		if (!rc)
			rc = export_meta(ex, -1, "", d->fd, d->path, &d->attr);
		close(d->fd);
		free(d->path);
	}
	ex->npend = 0;
	return rc;
}

static int
export_file(struct exp *ex, int dfd, const char *name, const char *path,
	    const struct proto_attr *a, struct stat *st)
{
	uint64_t size = 0, cur;
	int out, rc;

	out = openat(dfd, name,
		     O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		     0600);
	if (out < 0) {
		rc = -errno;
		goto out;
	}
	rc = vs_data_copy(ex->v, &a->fid, a->dv, out, &size, &cur);
	if (rc) {
		close(out);
		unlinkat(dfd, name, 0);
		return report(rc, "cannot read the data of '%s'", path);
	}
	/* A new file is empty: an empty one needs no truncate, and the
	 * inode is only wanted for the hard-link map (about a fifth of the
	 * system calls of exporting a tree of small files). */
	if (size && ftruncate(out, (off_t)size) < 0)
		rc = -errno;
	if (!rc && a->nlink > 1 && fstat(out, st) < 0)
		rc = -errno;
	if (!rc) {
		rc = export_meta(ex, dfd, name, out, path, a);
		if (close(out) < 0 && !rc)
			rc = -errno;
		return rc;
	}
	close(out);
out:
	if (rc)
		fail(rc, "cannot write '%s'", path);
	return rc;
}

/* An fd of directory @rel (relative to the export's top, "" for the top
 * itself), opened one component at a time without following symlinks. */
static int
open_under(int top, const char *rel)
{
	char buf[PATH_MAX], *comp, *save = NULL;
	int fd, nfd;

	if ((size_t)snprintf(buf, sizeof(buf), "%s", rel) >= sizeof(buf))
		return -ENAMETOOLONG;
	fd = openat(top, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (comp = strtok_r(buf, "/", &save); comp;
	     comp = strtok_r(NULL, "/", &save)) {
		nfd = openat(fd, comp,
			     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		if (nfd < 0)
			return -errno;
		fd = nfd;
	}
	return fd;
}

/* Link @name in @dfd to the file first written as @h (relative to the
 * export's top): the very file vos wrote (same inode), found through
 * directories, never through a symlink. */
static int
export_link(struct exp *ex, const struct hl *h, int dfd, const char *name)
{
	const char *slash = strrchr(h->path, '/');
	const char *leaf = slash ? slash + 1 : h->path;
	char dir[PATH_MAX];
	struct stat st;
	int pfd, rc = 0;

	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - h->path) : 0,
		 h->path);
	pfd = open_under(ex->top, dir);
	if (pfd < 0)
		return pfd;
	if (fstatat(pfd, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0)
		rc = -errno;
	else if (st.st_dev != h->wdev || st.st_ino != h->wino)
		rc = -ESTALE; /* replaced since vos wrote it */
	else if (linkat(pfd, leaf, dfd, name, 0) < 0)
		rc = -errno;
	close(pfd);
	return rc;
}

static int
export_dir(struct exp *ex, const struct fid *dir, int dfd, const char *rel,
	   int depth)
{
	struct proto_dir d;
	int mine = (int)ex->ndirs++; /* the worker for its files */
	int rc;

	if (depth > 4096)
		return report(-ELOOP, "'%s' is too deep", rel);
	rc = vs_readdir(ex->v, dir, &d);
	if (rc)
		return report(rc, "cannot read directory '%s'", rel);
	for (size_t i = 0; i < d.n && !rc; i++) {
		const struct proto_attr *a = &d.ents[i].attr;
		const char *name = d.ents[i].name;
		char path[PATH_MAX];
		struct stat st;
		struct hl *h = NULL;
		bool done = false;
		dev_t k1;
		ino_t k2;
		int fd;

		/* @path: for messages and the hard-link map, relative to
		 * the top. */
		if ((size_t)snprintf(path, sizeof(path), "%s%s%s", rel,
				     *rel ? "/" : "", name) >= sizeof(path)) {
			rc = report(-ENAMETOOLONG, "path too long under '%s'",
				    rel);
			break;
		}
		memcpy(&k1, a->fid.oid, sizeof(k1));
		memcpy(&k2, a->fid.oid + 8, sizeof(k2));
		if (a->type != PROTO_T_DIR && a->nlink > 1) {
			h = hl_find(&ex->hl, k1, k2 ? k2 : 1);
			if (h) {
				rc = export_link(ex, h, dfd, name);
				if (rc)
					report(rc, "cannot link '%s'", path);
				continue;
			}
		}
		memset(&st, 0, sizeof(st));
		ex->pr.files++;
		progress(&ex->pr, "exported", false);
		switch (a->type) {
		case PROTO_T_FILE:
			/* Not a file with other links: they are linked to
			 * the first one written, which must be there. */
			if (ex->pool && a->nlink <= 1) {
				ex->dworker = mine;
				rc = export_submit(ex, dfd, name, path, a);
				ex->pr.bytes += a->size;
				continue;
			}
			rc = export_file(ex, dfd, name, path, a, &st);
			ex->pr.bytes += a->size;
			done = true;
			break;
		case PROTO_T_DIR:
			if (mkdirat(dfd, name, 0700) < 0) {
				rc = report(-errno, "cannot mkdir '%s'", path);
				break;
			}
			fd = openat(dfd, name,
				    O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					    O_CLOEXEC);
			if (fd < 0) {
				rc = report(-errno, "cannot open '%s'", path);
				break;
			}
			rc = export_dir(ex, &a->fid, fd, path, depth + 1);
			done = true;
			if (ex->pool) {
				/* Its files may still be written: owner,
				 * mode and times once they are. */
				struct pdir *pd;

				if (!rc && ex->npend == EXPORT_PENDING_DIRS)
					rc = export_flush(ex, 0);
				pd = &ex->pend[ex->npend];
				if (!rc && !(pd->path = strdup(path)))
					rc = report(-ENOMEM, "cannot write '%s'",
						    path);
				if (!rc) {
					pd->fd = fd;
					pd->attr = *a;
					ex->npend++;
					break;
				}
				/* No worker may use @fd once it is closed
				 * (its number could name another file). */
				__atomic_store_n(&ex->pool->cancel, true,
						 __ATOMIC_RELAXED);
				ipool_drain(ex->pool);
				close(fd);
				break;
			}
			if (!rc)
				rc = export_meta(ex, dfd, name, fd, path, a);
			close(fd);
			break;
		case PROTO_T_SYMLINK: {
			char *t = NULL;

			rc = vs_readlink(ex->v, &a->fid, &t);
			if (!rc && symlinkat(t, dfd, name) < 0)
				rc = -errno;
			if (rc)
				fail(rc, "cannot make symlink '%s'", path);
			free(t);
			break;
		}
		case PROTO_T_MOUNT: {
			char *t = NULL, *s = NULL;

			/* As AFS writes one: a symlink to "#VOLUME.", which
			 * vos import turns back into a mount point. */
			rc = vs_readlink(ex->v, &a->fid, &t);
			if (!rc && asprintf(&s, "#%s.", t) < 0) {
				s = NULL;
				rc = -ENOMEM;
			}
			if (!rc && symlinkat(s, dfd, name) < 0)
				rc = -errno;
			if (rc)
				fail(rc, "cannot write mount point '%s'", path);
			else
				ex->mounts++;
			free(s);
			free(t);
			break;
		}
		case PROTO_T_FIFO:
			if (mkfifoat(dfd, name, 0600) < 0)
				rc = report(-errno, "cannot make FIFO '%s'", path);
			break;
		case PROTO_T_SOCK:
			/* A socket file with nobody listening, as tar and
			 * cp -a leave one; needs no privilege. */
			if (mknodat(dfd, name, S_IFSOCK | 0600, 0) < 0)
				rc = report(-errno, "cannot make socket '%s'",
					    path);
			break;
		case PROTO_T_CHR:
		case PROTO_T_BLK:
			if (mknodat(dfd, name,
				    (a->type == PROTO_T_CHR ? S_IFCHR
							    : S_IFBLK) |
					    0600,
				    (dev_t)a->rdev) == 0)
				break;
			if (errno != EPERM) {
				rc = report(-errno,
					    "cannot make device node '%s'",
					    path);
				break;
			}
			/* Without CAP_MKNOD: left out, named, counted and
			 * reported at the end (vos(8)). */
			report(0,
			       "skipping device node '%s' (%s %u:%u): "
			       "making it needs CAP_MKNOD",
			       path,
			       a->type == PROTO_T_CHR ? "character" : "block",
			       major((dev_t)a->rdev), minor((dev_t)a->rdev));
			ex->nodev++;
			continue;
		default:
			break;
		}
		if (!rc && !done)
			rc = export_meta(ex, dfd, name, -1, path, a);
		if (!rc && !done && a->nlink > 1 &&
		    fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			rc = report(-errno, "cannot stat '%s'", path);
		if (!rc && a->type != PROTO_T_DIR && a->nlink > 1) {
			h = hl_add(&ex->hl, k1, k2 ? k2 : 1);
			if (!h || !(h->path = strdup(path)))
				rc = -ENOMEM;
			else {
				h->wdev = st.st_dev;
				h->wino = st.st_ino;
			}
		}
	}
	proto_dir_release(&d);
	return rc;
}

/* Open the export's top @dst, made by vos (0700) or already there. An
 * existing one must be a real directory of the user running vos that
 * nobody else may write into: root writing a tree below a directory that
 * another user controls follows whatever symlinks that user swaps in.
 * @return an fd, or a negative errno (reported). */
static int
export_top(const char *dst)
{
	struct stat l, st;
	uid_t me = geteuid();
	bool made;
	DIR *d;
	int fd, dfd;

	made = mkdir(dst, 0700) == 0;
	if (!made && errno != EEXIST)
		return report(-errno, "cannot make '%s'", dst);
	if (lstat(dst, &l) < 0)
		return report(-errno, "cannot stat '%s'", dst);
	if (S_ISLNK(l.st_mode))
		return report(-EPERM,
			      "will not export into '%s': it is a symbolic "
			      "link; give the directory it points to, or a "
			      "new path (vos makes it)",
			      dst);
	if (!S_ISDIR(l.st_mode))
		return report(-ENOTDIR, "cannot export into '%s'", dst);
	if (l.st_uid != me || (l.st_mode & (S_IWGRP | S_IWOTH)))
		return report(-EPERM,
			      "will not export into '%s': it is owned by uid "
			      "%u with mode %04o, and must be owned by uid %u "
			      "(who runs vos) and writable by nobody else; "
			      "give a new path (vos makes it 0700) or chown "
			      "%u and chmod go-w it",
			      dst, (unsigned)l.st_uid,
			      (unsigned)(l.st_mode & 07777), (unsigned)me,
			      (unsigned)me);
	fd = open(dst, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return report(-errno, "cannot open '%s'", dst);
	if (fstat(fd, &st) < 0 || st.st_dev != l.st_dev ||
	    st.st_ino != l.st_ino) {
		close(fd);
		return report(-EAGAIN, "'%s' changed while vos looked at it",
			      dst);
	}
	dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = dfd < 0 ? NULL : fdopendir(dfd);
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		close(fd);
		return report(-errno, "cannot read '%s'", dst);
	}
	for (struct dirent *de; (de = readdir(d));)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			closedir(d);
			close(fd);
			return report(-ENOTEMPTY, "cannot export into '%s'",
				      dst);
		}
	closedir(d);
	return fd;
}

static const char usage_export[] =
	"usage: vos [--root DIR] export NAME DESTDIR [--keep-setid] [--jobs N]\n"
	"Write the tree of volume NAME into DESTDIR (made if missing; must be\n"
	"empty), byte for byte with modes, owners, times, links and xattrs.\n"
	"An existing DESTDIR must be a directory (not a symlink) owned by the\n"
	"user running vos and not writable by group or other.\n"
	"Set-user-id and set-group-id bits are dropped (a client chose them)\n"
	"unless --keep-setid is given; the sticky bit is kept. Sockets are\n"
	"made as socket files; device nodes need CAP_MKNOD (root): without\n"
	"it they are left out, named on stderr, and the exit status is 77.\n"
	"--jobs N: threads writing files (default 4, 0 = none, at most 8).\n"
	"On a terminal, a progress line on stderr.\n";

static int
cmd_export(int argc, char **argv)
{
	static const struct option lo[] = {
		{"keep-setid", no_argument, NULL, 'k'},
		{"jobs", required_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	struct exp ex = {.top = -1};
	int jobs = IMPORT_JOBS_DEFAULT;
	struct vs_root *r = NULL;
	struct vs_volinfo vi;
	struct proto_attr ra;
	const char *name, *dst;
	int c, rc;

	while ((c = getopt_cmd_s(argc, argv, "hj:", lo, usage_export)) != -1)
		if (c == 'k')
			ex.keep_setid = true;
		else if (c == 'j' && (rc = parse_jobs(optarg, &jobs)))
			return rc;
	if (optind + 2 != argc)
		return fprintf(stderr, "%s", usage_export), EX_USAGE;
	name = argv[optind];
	dst = argv[optind + 1];
	ex.top = export_top(dst);
	if (ex.top < 0)
		return ex_of(ex.top);
	rc = open_root(false, &r);
	if (rc)
		goto out;
	/* A snapshot: one consistent instant of a volume cairn-vold may be
	 * changing all along (vs_vol_open()). */
	rc = vs_vol_open(r, name, VS_RDONLY | VS_SNAPSHOT, &ex.v);
	if (rc == -EPROTO) {
		fprintf(stderr, "vos: volume '%s' is in the old format 1: run "
			"'vos upgrade %s' first\n", esc(name), esc(name));
		goto out;
	}
	if (rc) {
		fail(rc, "cannot open volume '%s'", name);
		goto out;
	}
	rc = vs_vol_info(ex.v, &vi);
	if (!rc && !vi.chunk_size) {
		fprintf(stderr, "vos: volume '%s' is in the old format 1: run "
			"'vos upgrade %s' first\n", esc(name), esc(name));
		rc = -EPROTO;
		goto out;
	}
	if (!rc)
		rc = vs_getattr(ex.v, &vi.root, &ra);
	ex.pr.progress = isatty(STDERR_FILENO);
	ex.cs = vi.chunk_size;
	/* Workers make files with their modes (export_job()). */
	umask(0);
	ex.pr.total = vi.files_used;
	if (!rc && jobs) {
		ex.pend = calloc(EXPORT_PENDING_DIRS, sizeof(*ex.pend));
		rc = ex.pend ? ipool_start(&ex.pool, ex.v, jobs, vi.chunk_size,
					   EXPORT_INFLIGHT)
			     : -ENOMEM;
	}
	if (!rc)
		rc = export_dir(&ex, &vi.root, ex.top, "", 0);
	/* Every file written, the directories' owners, modes and times. */
	rc = export_flush(&ex, rc);
	rc = ipool_finish(&ex.pool, rc);
	progress(&ex.pr, NULL, true);
	if (!rc)
		rc = export_meta(&ex, ex.top, ".", ex.top, dst, &ra);
	if (ex.mounts)
		fprintf(stderr,
			"vos: wrote %" PRIu64 " mount point%s as symlinks to "
			"'#VOLUME.' (vos import makes them mount points)\n",
			ex.mounts, ex.mounts == 1 ? "" : "s");
	if (ex.dropped)
		fprintf(stderr,
			"vos: dropped the set-user-id/set-group-id bits "
			"of %" PRIu64 " object%s (--keep-setid keeps them)\n",
			ex.dropped, ex.dropped == 1 ? "" : "s");
	if (ex.nodev) {
		fprintf(stderr,
			"vos: left out %" PRIu64 " device node%s: making "
			"them needs CAP_MKNOD (run vos export as root)\n",
			ex.nodev, ex.nodev == 1 ? "" : "s");
		/* The rest of the tree is complete, but not a faithful
		 * copy: say so in the exit status, as tar does. */
		if (!rc)
			rc = -EPERM;
	}
out:
	rc = export_flush(&ex, rc);
	rc = ipool_finish(&ex.pool, rc); /* before the handle goes */
	free(ex.pend);
	vs_vol_close(ex.v);
	hl_free(&ex.hl);
	vs_root_close(r);
	close(ex.top);
	return ex_of(rc);
}

/* ---- main ---- */

static const struct cmd cmds[] = {
	{"init", cmd_init, usage_init},
	{"create", cmd_create, usage_create},
	{"list", cmd_list, usage_list},
	{"examine", cmd_examine, usage_examine},
	{"remove", cmd_remove, usage_remove},
	{"setpublic", cmd_setpublic, usage_setpublic},
	{"upgrade", cmd_upgrade, usage_upgrade},
	{"import", cmd_import, usage_import},
	{"export", cmd_export, usage_export},
	{"token", cmd_token, usage_token},
	{"revoke", cmd_revoke, usage_revoke},
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: vos [--root DIR] COMMAND [ARGS]\n"
		   "       vos --help | --version | COMMAND --help\n"
		   "Administer the volumes of a cairn-vold server root (default\n"
		   "$CAIRN_ROOT or " DEFAULT_ROOT ").\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		const char *s = strchr(cmds[i].usage, ']') + 2;

		fprintf(f, "  %.*s\n", (int)strcspn(s, "\n"), s);
	}
}

int
main(int argc, char **argv)
{
	const char *env = getenv("CAIRN_ROOT");
	int i = 1;

	log_init("vos", 0, LOG_WARNING);
	root_path = env && *env ? env : DEFAULT_ROOT;
	while (i < argc && argv[i][0] == '-') {
		if (!strcmp(argv[i], "--root") && i + 1 < argc) {
			root_path = argv[i + 1];
			i += 2;
		} else if (!strncmp(argv[i], "--root=", 7)) {
			root_path = argv[i] + 7;
			i++;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return EX_OK;
		} else if (!strcmp(argv[i], "--version")) {
			printf("vos (cairn) %s\n", PACKAGE_VERSION);
			return EX_OK;
		} else {
			fprintf(stderr, "vos: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return EX_USAGE;
	}
	for (size_t k = 0; k < sizeof(cmds) / sizeof(cmds[0]); k++)
		if (!strcmp(argv[i], cmds[k].name)) {
			optind = 1;
			return cmds[k].fn(argc - i, argv + i);
		}
	fprintf(stderr, "vos: unknown command '%s'\n", argv[i]);
	usage(stderr);
	return EX_USAGE;
}
