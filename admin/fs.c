/*
 * fs.c - fs(1), the user's and admin's handle on cairnd: pin, flush,
 * examine, cache parameters, status. This file is the dispatcher: the
 * command table, option parsing, help and version. Each subcommand lives in
 * admin/fs_<cmd>.c; talking to cairnd is in fs_conn.c.
 *
 * fs holds no state and no privilege: it sends one request per path to the
 * control socket of the mount the path is on, and cairnd decides what the
 * caller (identified by SO_PEERCRED) may do.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/fs.h"

#define COMMON_OPTS "[-j] [-s socket] [-m mountpoint]"

/* Like git.c's commands[]: name, function, flags, synopsis (mirroring
 * man/fs.1), one-line help. Order is the order of "fs help". */
const struct fs_cmd fs_commands[] = {
	{"pin", fs_cmd_pin, FS_F_PATHS | FS_F_LONG | FS_F_RECURSIVE,
	 "[-r] [-q] " COMMON_OPTS " path ...",
	 "fetch files completely and keep them cached",
	 "Fetches every chunk and all metadata of each path, then pins it so\n"
	 "culling never evicts it. With -r, a directory's whole tree is "
	 "pinned,\n"
	 "including what appears in it later. Pins survive restarts. Refused "
	 "up\n"
	 "front if the cache cannot hold the pinned set."},
	{"unpin", fs_cmd_unpin, FS_F_PATHS | FS_F_RECURSIVE,
	 "[-r] " COMMON_OPTS " path ...",
	 "release pins (the data stays cached until culled)", NULL},
	{"pins", fs_cmd_pins, FS_F_OPTPATH, COMMON_OPTS " [path]",
	 "list pins with bytes pinned and bytes still missing", NULL},
	{"flush", fs_cmd_flush, FS_F_PATHS | FS_F_LONG, COMMON_OPTS " path ...",
	 "drop cached data of files (dirty data is stored first)",
	 "Drops the cached chunks of each path (a directory: the files in "
	 "it),\n"
	 "also from the kernel's page cache, so the next read goes to the\n"
	 "server. Changes not yet stored on the server are stored first and\n"
	 "never dropped: if that fails, the file keeps its data and fs exits\n"
	 "75 (server unreachable) or 1. A pinned file is fetched again."},
	{"flushvolume", fs_cmd_flushvolume, FS_F_ROOT | FS_F_LONG, COMMON_OPTS,
	 "drop all cached data of the mount's volume (root)",
	 "Stores changes first, as flush does; pinned files are fetched "
	 "again."},
	{"flushall", fs_cmd_flushall, FS_F_ROOT | FS_F_LONG, COMMON_OPTS,
	 "drop all cached data and metadata of the mount (root)",
	 "As flushvolume, then forgets cached metadata, except what pins and\n"
	 "files with local changes need."},
	{"flushmeta", fs_cmd_flushmeta, FS_F_PATHS, COMMON_OPTS " path ...",
	 "drop cached attributes and directory entries",
	 "The next stat or ls of each path asks the server; data is kept."},
	{"getcacheparms", fs_cmd_getcacheparms, 0, COMMON_OPTS,
	 "show cache size, use, pinned and dirty bytes, hit rate", NULL},
	{"setcachesize", fs_cmd_setcachesize, FS_F_SIZE | FS_F_ROOT | FS_F_LONG,
	 COMMON_OPTS " size", "change the cache size limit at once (root)",
	 "SIZE takes binary suffixes: 512M, 10G. Culls at once if the cache "
	 "is\n"
	 "now over the limit; refused below the pinned plus dirty bytes."},
	{"examine", fs_cmd_examine, FS_F_PATHS, COMMON_OPTS " path ...",
	 "show FID, data version, size, chunks cached, pinned, dirty", NULL},
	{"whereis", fs_cmd_whereis, FS_F_PATHS, COMMON_OPTS " path ...",
	 "show the volume and server of paths", NULL},
	{"listvol", fs_cmd_listvol, FS_F_ALLMOUNTS, COMMON_OPTS,
	 "list mounted cairn volumes", NULL},
	{"checkservers", fs_cmd_checkservers, 0, COMMON_OPTS,
	 "probe the servers: reachable or not, latency", NULL},
	{"status", fs_cmd_status, 0, COMMON_OPTS,
	 "show mode (connected or not), pending replay records, conflicts",
	 NULL},
	{"disconnect", fs_cmd_disconnect, FS_F_ROOT, COMMON_OPTS,
	 "stop talking to the server; work from the cache (root)", NULL},
	{"reconnect", fs_cmd_reconnect, FS_F_ROOT | FS_F_LONG, COMMON_OPTS,
	 "talk to the server again and replay changes (root)", NULL},
	{"conflicts", fs_cmd_conflicts, FS_F_OPTPATH, COMMON_OPTS " [path]",
	 "list changes the server refused at reintegration",
	 "Each conflict names its path, the change, why it was refused, the\n"
	 "local size and the data version it was based on. A refused store\n"
	 "saved its data as NAME.conflict-HOST-YYYYMMDD-HHMMSS beside the "
	 "file."},
	{"resolve", fs_cmd_resolve, FS_F_RESOLVE | FS_F_ARGS,
	 "--keep local|server|both " COMMON_OPTS
	 " (path ... | --all [--match GLOB])",
	 "settle conflicts",
	 "--keep server or both: the server's version stands and the record "
	 "goes\n"
	 "(both: any conflict copy stays). --all settles every conflict, or "
	 "those\n"
	 "whose path or name matches GLOB (e.g. --match '*.o')."},
	{"replaylog", fs_cmd_replaylog, 0, COMMON_OPTS,
	 "list the changes waiting to be replayed to the server", NULL},
	{"setpolicy", fs_cmd_setpolicy,
	 FS_F_ROOT | FS_F_ARGS | FS_F_POLICY | FS_F_LONG,
	 "[--write-mode sync|writeback] [--writeback-delay DURATION] "
	 COMMON_OPTS " [offline-miss=error|wait[:SECONDS] | log-sync=op|close]",
	 "set a policy of the mount (root)",
	 "--write-mode sync: a change is on the server when its call returns "
	 "(the\n"
	 "default). --write-mode writeback: it is in cairnd's local log and "
	 "goes to\n"
	 "the server within --writeback-delay (10ms..1h, default 1s); fsync "
	 "and\n"
	 "fs sync wait for the server. Switching to sync returns once the log "
	 "is\n"
	 "drained. NAME=VALUE sets one policy by name: write-mode, "
	 "writeback-delay,\n"
	 "log-sync, offline-miss. log-sync=op (the default): in writeback "
	 "each\n"
	 "metadata call is on local disk when it returns; log-sync=close: at "
	 "the\n"
	 "next close or fsync, within 0.25 s, or at a disconnect (a power cut "
	 "may\n"
	 "lose the calls of the last 0.25 s).\n"
	 "offline-miss=error: while disconnected, a read of what is not "
	 "cached\n"
	 "fails with EIO at once (the default). "
	 "offline-miss=wait[:SECONDS]: it\n"
	 "waits for the server up to SECONDS (default: cairnd's "
	 "fetch-timeout)."},
	{"metrics", fs_cmd_metrics, 0, COMMON_OPTS,
	 "print cairnd's counters in the Prometheus text format",
	 "Cache hits and misses, bytes fetched, fetch latency, evictions,\n"
	 "cache and dirty bytes, the replay log's backlog, the mode and FUSE\n"
	 "requests by kind, as a scraper reads them (cairnd(8) METRICS).\n"
	 "--json gives {\"content_type\", \"text\"}."},
	{"sync", fs_cmd_sync, FS_F_OPTPATH | FS_F_LONG, COMMON_OPTS " [path]",
	 "wait until the server has the changes of path, or of the mount",
	 "In writeback mode changes are logged by cairnd and sent later; "
	 "this waits\n"
	 "until they are on the server (fails with EIO if one was refused and "
	 "became\n"
	 "a conflict: see fs conflicts). In sync mode it returns at once."},
	{"mkmount", fs_cmd_mkmount, FS_F_ARGS, COMMON_OPTS " dir volume",
	 "make a mount point: DIR shows the root of VOLUME",
	 "DIR must not exist. VOLUME is a volume name, or ALIAS:VOLUME for a\n"
	 "volume of the server cairnd's configuration calls ALIAS. The mount\n"
	 "point is stored in the volume: every client sees it. Disconnected,\n"
	 "it is logged and replayed like any change. A cairnd that serves one\n"
	 "volume shows a mount point as an empty directory it cannot read."},
	{"lsmount", fs_cmd_lsmount, FS_F_PATHS, COMMON_OPTS " dir ...",
	 "show the volume a mount point names", NULL},
	{"rmmount", fs_cmd_rmmount, FS_F_PATHS, COMMON_OPTS " dir ...",
	 "remove mount points (nothing else)", NULL},
	{"help", fs_cmd_help, FS_F_LOCAL | FS_F_OPTPATH, "[command]",
	 "list commands, or show one command's help", NULL},
	{"version", fs_cmd_version, FS_F_LOCAL, "",
	 "print fs's version and control protocol version", NULL},
	{NULL, NULL, 0, NULL, NULL, NULL},
};

const struct fs_cmd *
fs_cmd_find(const char *name)
{
	const struct fs_cmd *c;

	for (c = fs_commands; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

void
fs_cmd_usage(const struct fs_cmd *c, FILE *f)
{
	fprintf(f, "usage: fs %s%s%s\n", c->name, *c->synopsis ? " " : "",
		c->synopsis);
}

static void
cmd_help_full(const struct fs_cmd *c)
{
	fs_cmd_usage(c, stdout);
	printf("\n%s.\n", c->help);
	if (c->description)
		printf("\n%s\n", c->description);
	if (c->flags & FS_F_LOCAL)
		return;
	printf("\noptions:\n");
	if (c->flags & FS_F_RECURSIVE)
		printf("  -r, --recursive        whole directory trees\n");
	if (c->name && !strcmp(c->name, "pin"))
		printf("  -q, --quiet            no progress display\n");
	printf("  -j, --json             print cairnd's reply as JSON\n"
	       "  -s, --socket SOCKET    cairnd's control socket "
	       "(default: from the mount)\n"
	       "  -m, --mountpoint DIR   the cairn mount to talk to\n");
	if (!(c->flags & FS_F_PATHS))
		printf("  -V, --volume DIR       on a mount of several volumes: "
		       "which one\n");
	printf("  -h, --help             this help\n");
	if (c->flags & FS_F_ROOT)
		printf("\nOnly root may do this (cairnd checks).\n");
}

static void
usage_all(FILE *f)
{
	const struct fs_cmd *c;

	fprintf(f, "usage: fs command [options] [arguments]\n"
		   "       fs help [command] | fs --version\n\ncommands:\n");
	for (c = fs_commands; c->name; c++)
		fprintf(f, "  %-14s %s\n", c->name, c->help);
	fprintf(f, "\nRun 'fs COMMAND --help' for a command's options; see "
		   "fs(1).\n");
}

int
fs_cmd_help(struct fs_ctx *ctx)
{
	const struct fs_cmd *c;

	if (ctx->argc == 0) {
		usage_all(stdout);
		return EX_OK;
	}
	c = fs_cmd_find(ctx->argv[0]);
	if (!c) {
		fprintf(stderr,
			"fs: '%s' is not an fs command; see 'fs help'\n",
			ctx->argv[0]);
		return EX_USAGE;
	}
	cmd_help_full(c);
	return EX_OK;
}

int
fs_cmd_version(struct fs_ctx *ctx)
{
	if (ctx->json) {
		json_t *j = json_pack("{s:s, s:i}", "version", PACKAGE_VERSION,
				      "protocol", CTL_VERSION);

		fs_json_print(j);
		json_decref(j);
		return EX_OK;
	}
	printf("fs (cairn) %s, control protocol %d\n", PACKAGE_VERSION,
	       CTL_VERSION);
	return EX_OK;
}

/* parse_opts() printed what was asked (--help): exit EX_OK. */
#define PARSE_DONE (-1)

/* Parse the options of subcommand @c from argv (argv[0] is its name).
 * @return 0 to run the command, PARSE_DONE, or the exit status of a
 * usage error (printed). */
static int
parse_opts(const struct fs_cmd *c, int argc, char **argv, struct fs_ctx *ctx)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"json", no_argument, NULL, 'j'},
		{"quiet", no_argument, NULL, 'q'},
		{"recursive", no_argument, NULL, 'r'},
		{"socket", required_argument, NULL, 's'},
		{"mountpoint", required_argument, NULL, 'm'},
		{"keep", required_argument, NULL, 'k'},
		{"all", no_argument, NULL, 'a'},
		{"match", required_argument, NULL, 'M'},
		{"write-mode", required_argument, NULL, 'W'},
		{"writeback-delay", required_argument, NULL, 'D'},
		{"volume", required_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	int ch;

	opterr = 0;
	optind = 1;
	while ((ch = getopt_long(argc, argv, ":hjqrs:m:V:", opts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			cmd_help_full(c);
			return PARSE_DONE;
		case 'j':
			ctx->json = 1;
			break;
		case 'q':
			if (strcmp(c->name, "pin"))
				goto notapply;
			ctx->quiet = 1;
			break;
		case 'r':
			if (!(c->flags & FS_F_RECURSIVE))
				goto notapply;
			ctx->recursive = 1;
			break;
		case 's':
			if (c->flags & FS_F_LOCAL)
				goto notapply;
			ctx->socket = optarg;
			break;
		case 'm':
			if (c->flags & FS_F_LOCAL)
				goto notapply;
			ctx->mount = optarg;
			break;
		case 'V':
			/* A path names its volume itself. */
			if (c->flags & (FS_F_LOCAL | FS_F_PATHS))
				goto notapply;
			ctx->volume = optarg;
			break;
		case 'k':
		case 'a':
		case 'M':
			if (!(c->flags & FS_F_RESOLVE))
				goto notapply;
			if (ch == 'k')
				ctx->keep = optarg;
			else if (ch == 'a')
				ctx->all = 1;
			else
				ctx->match = optarg;
			break;
		case 'W':
		case 'D':
			if (!(c->flags & FS_F_POLICY)) {
				fprintf(stderr,
					"fs %s: option '%s' does not apply to "
					"%s\n",
					c->name,
					ch == 'W' ? "--write-mode"
						  : "--writeback-delay",
					c->name);
				fs_cmd_usage(c, stderr);
				return EX_USAGE;
			}
			if (ch == 'W')
				ctx->write_mode = optarg;
			else
				ctx->wb_delay = optarg;
			break;
		case ':':
			fprintf(stderr,
				"fs %s: option '%s' needs an argument\n",
				c->name, argv[optind - 1]);
			fs_cmd_usage(c, stderr);
			return EX_USAGE;
		default:
			goto bad;
		}
	}
	ctx->argc = argc - optind;
	ctx->argv = argv + optind;
	if ((c->flags & FS_F_PATHS) && ctx->argc < 1) {
		fprintf(stderr, "fs %s: no path given\n", c->name);
		fs_cmd_usage(c, stderr);
		return EX_USAGE;
	}
	if ((c->flags & FS_F_SIZE) && ctx->argc != 1) {
		fprintf(stderr, "fs %s: give exactly one size\n", c->name);
		fs_cmd_usage(c, stderr);
		return EX_USAGE;
	}
	if (!(c->flags & (FS_F_PATHS | FS_F_SIZE | FS_F_OPTPATH | FS_F_ARGS)) &&
	    ctx->argc > 0) {
		fprintf(stderr, "fs %s: unexpected argument '%s'\n", c->name,
			ctx->argv[0]);
		fs_cmd_usage(c, stderr);
		return EX_USAGE;
	}
	if ((c->flags & FS_F_OPTPATH) && ctx->argc > 1) {
		fprintf(stderr, "fs %s: too many arguments\n", c->name);
		fs_cmd_usage(c, stderr);
		return EX_USAGE;
	}
	return 0;
notapply:
	fprintf(stderr, "fs %s: option '-%c' does not apply to %s\n", c->name,
		ch, c->name);
	fs_cmd_usage(c, stderr);
	return EX_USAGE;
bad:
	/* optopt is 0 for an unknown long option; name the word itself. */
	if (optopt && optopt != '?')
		fprintf(stderr, "fs %s: unknown option '-%c'\n", c->name,
			optopt);
	else
		fprintf(stderr, "fs %s: unknown option '%s'\n", c->name,
			argv[optind - 1]);
	fs_cmd_usage(c, stderr);
	return EX_USAGE;
}

int
main(int argc, char **argv)
{
	struct fs_ctx ctx;
	const struct fs_cmd *c;
	const char *name;
	int rc;

	/* A vanished cairnd must give an error, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		usage_all(stderr);
		return EX_USAGE;
	}
	name = argv[1];
	if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
		usage_all(stdout);
		return EX_OK;
	}
	if (!strcmp(name, "--version") || !strcmp(name, "-V"))
		name = "version";
	c = fs_cmd_find(name);
	if (!c) {
		fprintf(stderr,
			"fs: '%s' is not an fs command; see 'fs help'\n", name);
		return EX_USAGE;
	}
	memset(&ctx, 0, sizeof(ctx));
	ctx.cmd = c;
	ctx.socket = getenv("CAIRN_CTL_SOCKET");
	if (ctx.socket && !*ctx.socket)
		ctx.socket = NULL;
	ctx.timeout_ms = (c->flags & FS_F_LONG) ? 0 : 30000;
	rc = parse_opts(c, argc - 1, argv + 1, &ctx);
	if (rc == PARSE_DONE)
		return EX_OK;
	if (rc)
		return rc;
	rc = c->fn(&ctx);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "fs: cannot write output: %s\n",
			strerror(errno));
		return EXIT_FAILURE;
	}
	return rc;
}
