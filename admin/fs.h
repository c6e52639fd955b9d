/*
 * fs.h - internals shared by fs(1)'s files: the command table, the context
 * a subcommand runs in, finding a path's mount and control socket, one
 * request/reply exchange with cairnd, and output helpers.
 *
 * Layer rule: fs speaks to cairnd only through common/ctl_proto.h; it never
 * links libchunkstore or cm/, and never reads a cache directory
 * (tests/check-layers.sh enforces the includes).
 *
 * Adding a subcommand, in four steps (git's builtin.h): write
 * admin/fs_<cmd>.c with fs_cmd_<cmd>(); declare it below; add a row to
 * commands[] in fs.c; document it in man/fs.1 (same synopsis) and add the
 * file to admin/include.am. HACKING.md walks the whole way, the request
 * type in ctl_proto and cairnd's handler included.
 *
 * Errors: functions return 0 or a negative errno like the rest of cairn;
 * fs_exit_code() turns the outcome into the exit status, once, at the edge.
 */
#ifndef CAIRN_ADMIN_FS_H
#define CAIRN_ADMIN_FS_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/un.h>
#include <sysexits.h>

#include <jansson.h>

#include "common/ctl_proto.h"

/*
 * Exit statuses: <sysexits.h> names, and EXIT_FAILURE for "failed for
 * another reason, or some paths failed". man/fs.1 EXIT STATUS lists the
 * same; fs_exit_code() is the one place an errno becomes one of them.
 *   EX_USAGE 64        bad command line; several mounts and no -m
 *   EX_DATAERR 65      not on a cairn mount; cairnd refused an argument
 *   EX_NOINPUT 66      no such file or directory
 *   EX_UNAVAILABLE 69  cairnd not running, or it lacks the command
 *   EX_SOFTWARE 70     internal or protocol error
 *   EX_CANTCREAT 73    the cache cannot hold it
 *   EX_TEMPFAIL 75     server unreachable, timed out, busy
 *   EX_NOPERM 77       permission denied
 */

/* Command flags. */
#define FS_F_PATHS     0x01 /* one or more PATH arguments */
#define FS_F_OPTPATH   0x02 /* at most one PATH argument */
#define FS_F_SIZE      0x04 /* exactly one SIZE argument */
#define FS_F_ROOT      0x08 /* cache-wide: cairnd lets only root do it */
#define FS_F_LONG      0x10 /* may run long: no reply timeout, progress */
#define FS_F_RECURSIVE 0x20 /* accepts -r */
#define FS_F_LOCAL     0x40 /* talks to no cairnd (help, version) */
#define FS_F_ALLMOUNTS 0x80 /* without -m/-s: every cairn mount */
#define FS_F_RESOLVE   0x100 /* accepts --keep, --all, --match */
#define FS_F_ARGS      0x200 /* free-form arguments (checked by the command) */
#define FS_F_POLICY    0x400 /* accepts --write-mode, --writeback-delay */

struct fs_ctx;

struct fs_cmd {
	const char *name;
	int (*fn)(struct fs_ctx *ctx);
	unsigned flags;
	const char *synopsis;	 /* after "fs NAME ", as in the man page */
	const char *help;	 /* one line */
	const char *description; /* a few lines for --help, or NULL */
};

/* What a subcommand runs with: its options and positional arguments. */
struct fs_ctx {
	const struct fs_cmd *cmd;
	int json;
	int quiet;
	int recursive;
	const char *socket; /* -s, else $CAIRN_CTL_SOCKET, else NULL */
	const char *mount;  /* -m, or NULL */
	int argc;	    /* positional arguments */
	char **argv;
	unsigned timeout_ms; /* per reply for short commands; 0 = none */
	const char *keep;    /* resolve --keep local|server|both */
	const char *match;   /* resolve --match GLOB */
	int all;	     /* resolve --all */
	int nofollow;	     /* paths: do not follow the last component */
	const char *write_mode; /* setpolicy --write-mode */
	const char *wb_delay;	/* setpolicy --writeback-delay */
	const char *volume;	/* -V: the volume of a namespace a command
				   without a path is about, or NULL */
};

/* Where to send a request, and the path to name in it. */
struct fs_target {
	char mount[PATH_MAX]; /* mountpoint, "" when only -s was given */
	char volume[256];     /* from the fsname "cairn:VOLUME", or "" */
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char rel[PATH_MAX]; /* mount-relative path ("." = root), or "" */
};

/* The outcome of one exchange. */
struct fs_result {
	int err;	/* 0, or a positive errno */
	int local;	/* 1: failed on our side (socket, reply format) */
	char msg[1024]; /* what to print after "fs: " when err != 0 */
	json_t *json;	/* OK: the result; ERROR from cairnd: its payload */
};

void fs_result_release(struct fs_result *r);

/* The command table (fs.c). */
extern const struct fs_cmd fs_commands[];
const struct fs_cmd *fs_cmd_find(const char *name);
void fs_cmd_usage(const struct fs_cmd *c, FILE *f);

/*
 * Resolve @path (realpath) to its cairn mount, mount-relative path and
 * control socket. -m and -s in @ctx override what /proc/self/mountinfo
 * (or $CAIRN_MOUNTINFO, for tests) says. On failure r->err/msg say why.
 * @return 0 or -errno.
 */
int fs_target_path(const struct fs_ctx *ctx, const char *path,
		   struct fs_target *t, struct fs_result *r);

/* The target of a command without a path: -s, -m, or the only cairn
 * mount. @return 0 or -errno (r filled). */
int fs_target_default(const struct fs_ctx *ctx, struct fs_target *t,
		      struct fs_result *r);

/* Every cairn mount, for listvol. Calls @fn for each; @return how many. */
int fs_each_mount(void (*fn)(void *arg, const struct fs_target *t), void *arg);

/*
 * Send request @type with @args (borrowed; NULL = {}) to @t's socket and
 * wait for the final answer; PROGRESS messages go to @progress when it is
 * not NULL (and are not asked for otherwise). @return 0 with r->json the
 * result, or -errno with r filled (r->json the ERROR payload if cairnd
 * sent one). Release @r with fs_result_release().
 */
int fs_call(const struct fs_ctx *ctx, const struct fs_target *t, unsigned type,
	    json_t *args, void (*progress)(void *arg, const json_t *p),
	    void *parg, struct fs_result *r);

/*
 * The common loop of path commands: for each positional PATH, resolve it,
 * send @type with {"path": REL} plus @extra's members (borrowed, may be
 * NULL), then call @render(ctx, path, t, result) on success. Errors print
 * "fs: ..." on stderr. With --json, prints one array of per-path objects
 * {"path": PATH, "ok": true, ...result} / {"path", "ok": false, "errno",
 * "error", "message"}. @prog (may be NULL) shows PROGRESS messages.
 * @return the exit status for all paths: a path's own status if all
 * failed alike, 1 if some failed, else 0.
 */
struct fs_progress;
int fs_each_path(struct fs_ctx *ctx, unsigned type, json_t *extra,
		 void (*render)(struct fs_ctx *ctx, const char *path,
				const struct fs_target *t, json_t *res),
		 struct fs_progress *prog);

/* Send a pathless request to fs_target_default(), print the result with
 * @render (or as JSON), errors on stderr. @return the exit status. */
int fs_simple(struct fs_ctx *ctx, unsigned type, json_t *args,
	      void (*render)(struct fs_ctx *ctx, const struct fs_target *t,
			     json_t *res));

/* Exit status for an error (positive errno); @local as in fs_result. */
int fs_exit_code(int err, int local);

/* Print "fs: CMD TARGET: MESSAGE" for a failed result. */
void fs_print_error(const struct fs_ctx *ctx, const char *what,
		    const struct fs_result *r);

/* Output helpers (fs_out.c). */
void fs_json_print(const json_t *j);
uint64_t fs_u64(const json_t *o, const char *key, int *found);
const char *fs_str(const json_t *o, const char *key);
int fs_bool(const json_t *o, const char *key);
char *fs_size(uint64_t bytes, char *buf, size_t len); /* "1.5 GiB" */
void fs_kv(const char *key, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/*
 * @s escaped for a terminal (util_escape(): C escapes for control
 * characters, DEL and bytes that are not UTF-8), in one of 8 buffers
 * that fs_esc() reuses in turn: valid until the 8th call after this one,
 * so one printf() may hold up to 8. NULL gives "-". Names may hold any
 * byte but '/' and NUL; fs prints every name and path through this (the
 * --json output is escaped by JSON itself).
 */
const char *fs_esc(const char *s);

/* The absolute path of mount-relative @rel on @t, escaped for display
 * like fs_esc(). */
const char *fs_display_path(const struct fs_target *t, const char *rel,
			    char *buf, size_t len);

/* A progress display for long operations: a redrawn bar on a terminal
 * (at most 10 per second), a plain line per second otherwise. */
struct fs_progress {
	char label[PATH_MAX + 32];
	int tty;
	int active;
	uint64_t start_ms, last_ms;
	uint64_t bytes_done, bytes_total, files_done, files_total;
};
void fs_progress_init(struct fs_progress *p, const char *label, int enabled);
void fs_progress_reset(struct fs_progress *p, const char *label);
void fs_progress_update(void *arg, const json_t *msg);
void fs_progress_end(struct fs_progress *p);

/* The subcommands. */
int fs_cmd_pin(struct fs_ctx *ctx);
int fs_cmd_unpin(struct fs_ctx *ctx);
int fs_cmd_pins(struct fs_ctx *ctx);
int fs_cmd_flush(struct fs_ctx *ctx);
int fs_cmd_flushvolume(struct fs_ctx *ctx);
int fs_cmd_flushall(struct fs_ctx *ctx);
int fs_cmd_flushmeta(struct fs_ctx *ctx);
int fs_cmd_getcacheparms(struct fs_ctx *ctx);
int fs_cmd_setcachesize(struct fs_ctx *ctx);
int fs_cmd_examine(struct fs_ctx *ctx);
int fs_cmd_whereis(struct fs_ctx *ctx);
int fs_cmd_listvol(struct fs_ctx *ctx);
int fs_cmd_checkservers(struct fs_ctx *ctx);
int fs_cmd_status(struct fs_ctx *ctx);
int fs_cmd_disconnect(struct fs_ctx *ctx);
int fs_cmd_reconnect(struct fs_ctx *ctx);
int fs_cmd_conflicts(struct fs_ctx *ctx);
int fs_cmd_resolve(struct fs_ctx *ctx);
int fs_cmd_replaylog(struct fs_ctx *ctx);
int fs_cmd_setpolicy(struct fs_ctx *ctx);
int fs_cmd_metrics(struct fs_ctx *ctx);
int fs_cmd_sync(struct fs_ctx *ctx);
int fs_cmd_mkmount(struct fs_ctx *ctx);
int fs_cmd_lsmount(struct fs_ctx *ctx);
int fs_cmd_rmmount(struct fs_ctx *ctx);
int fs_cmd_help(struct fs_ctx *ctx);
int fs_cmd_version(struct fs_ctx *ctx);

#endif /* CAIRN_ADMIN_FS_H */
