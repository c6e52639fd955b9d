/*
 * fs_offline.c - the disconnected-operation commands besides disconnect,
 * reconnect and status: "fs conflicts", "fs resolve", "fs replaylog",
 * "fs setpolicy".
 */
#include "config.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "admin/fs.h"

static void
when(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!ms || !localtime_r(&t, &tm)) {
		snprintf(buf, len, "-");
		return;
	}
	strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}

/* --- fs conflicts [path] --- */

static void
render_conflicts(struct fs_ctx *ctx, const struct fs_target *t, json_t *res)
{
	json_t *list = json_object_get(res, "conflicts"), *c;
	char path[PATH_MAX * 4 + 16], tm[32];
	size_t i;

	(void)ctx;
	if (!json_array_size(list)) {
		printf("no conflicts\n");
		return;
	}
	json_array_foreach (list, i, c) {
		fs_display_path(t, fs_str(c, "path"), path, sizeof(path));
		when((int64_t)fs_u64(c, "time_ms", NULL), tm, sizeof(tm));
		printf("%s\n  %s refused: %s (%s) at %s\n  local:  size "
		       "%llu, based on DV %llu\n",
		       path, fs_str(c, "op"), fs_str(c, "kind"),
		       fs_esc(fs_str(c, "message")), tm,
		       (unsigned long long)fs_u64(c, "local_size", NULL),
		       (unsigned long long)fs_u64(c, "base_dv", NULL));
		if (json_object_get(c, "server_dv")) {
			when((int64_t)fs_u64(c, "server_mtime_ns", NULL) /
				     1000000,
			     tm, sizeof(tm));
			printf("  server: size %llu, DV %llu, modified %s\n",
			       (unsigned long long)fs_u64(c, "server_size",
							  NULL),
			       (unsigned long long)fs_u64(c, "server_dv", NULL),
			       tm);
		}
	}
	printf("%zu conflict%s: settle with fs resolve --keep "
	       "local|server|both PATH\n",
	       json_array_size(list), json_array_size(list) == 1 ? "" : "s");
}

/* Call CTL_CONFLICTS (all of them, or those at @path's target). */
static int
get_conflicts(struct fs_ctx *ctx, const char *path, struct fs_target *t,
	      struct fs_result *r)
{
	json_t *args = NULL;
	int rc;

	memset(r, 0, sizeof(*r));
	rc = path ? fs_target_path(ctx, path, t, r)
		  : fs_target_default(ctx, t, r);
	if (rc < 0)
		return rc;
	if (path)
		args = json_pack("{s:s}", "path", t->rel);
	rc = fs_call(ctx, t, CTL_CONFLICTS, args, NULL, NULL, r);
	json_decref(args);
	return rc;
}

int
fs_cmd_conflicts(struct fs_ctx *ctx)
{
	ctx->nofollow = 1;
	const char *path = ctx->argc ? ctx->argv[0] : NULL;
	struct fs_target t;
	struct fs_result r;
	int code = EX_OK;

	if (get_conflicts(ctx, path, &t, &r) < 0) {
		fs_print_error(ctx, path ? path : "", &r);
		code = fs_exit_code(r.err, r.local);
	} else if (ctx->json) {
		fs_json_print(r.json);
	} else {
		render_conflicts(ctx, &t, r.json);
	}
	fs_result_release(&r);
	return code;
}

/* --- fs resolve --keep local|server|both (PATH... | --all [--match G]) */

static const char *
how_of(const char *keep)
{
	if (!keep)
		return NULL;
	if (!strcmp(keep, "local"))
		return "keep-local";
	if (!strcmp(keep, "server") || !strcmp(keep, "remote"))
		return "keep-remote";
	if (!strcmp(keep, "both"))
		return "keep-both";
	return NULL;
}

static void
render_resolved(struct fs_ctx *ctx, const char *path,
		const struct fs_target *t, json_t *res)
{
	(void)ctx;
	(void)t;
	printf("%s: settled (%s)\n", fs_esc(path), fs_str(res, "how"));
}

static bool
matches(const char *glob, const char *path)
{
	const char *base = strrchr(path, '/');

	if (!glob)
		return true;
	return fnmatch(glob, path, 0) == 0 ||
	       fnmatch(glob, base ? base + 1 : path, 0) == 0;
}

/*
 * --keep local of a refused store: the local data is in the conflict copy;
 * rename it over the file through the mount (an ordinary change, replayed
 * like any other), then settle the record with keep-both. @return the
 * exit status.
 */
static int
keep_local(struct fs_ctx *ctx, const char *path)
{
	struct fs_target t;
	struct fs_result r, r2;
	const char *copy = NULL, *how = "keep-local";
	char from[PATH_MAX * 2], to[PATH_MAX * 2];
	json_t *list, *c, *args;
	size_t i, n;
	int code = EX_OK;

	if (get_conflicts(ctx, path, &t, &r) < 0) {
		fs_print_error(ctx, path, &r);
		code = fs_exit_code(r.err, r.local);
		fs_result_release(&r);
		return code;
	}
	list = json_object_get(r.json, "conflicts");
	n = json_array_size(list);
	/* None listed: none there, or one the caller may not see (another
	 * user's, in a directory it cannot search). cairnd tells which:
	 * ENOENT or EACCES. */
	if (!n)
		n = 1;
	/* One path may have several records (a create whose name was
	 * taken, then its store): a conflict copy holds the local data. */
	json_array_foreach (list, i, c)
		if (!copy || !*copy)
			copy = json_string_value(json_object_get(c, "copy"));
	if (copy && *copy) {
		snprintf(from, sizeof(from), "%s/%s", t.mount, copy);
		snprintf(to, sizeof(to), "%s/%s", t.mount, t.rel);
		if (rename(from, to) < 0) {
			fprintf(stderr,
				"fs resolve: cannot move '%s' over '%s': %s\n",
				fs_esc(from), fs_esc(to), strerror(errno));
			fs_result_release(&r);
			return EXIT_FAILURE;
		}
		how = "keep-both"; /* the records only need to go now */
	}
	/* Else a refused metadata change: cairnd redoes it. */
	for (i = 0; i < n && code == EX_OK; i++) {
		args = json_pack("{s:s,s:s}", "path", t.rel, "how", how);
		memset(&r2, 0, sizeof(r2));
		if (fs_call(ctx, &t, CTL_RESOLVE, args, NULL, NULL, &r2) < 0) {
			fs_print_error(ctx, path, &r2);
			code = fs_exit_code(r2.err, r2.local);
		}
		json_decref(args);
		fs_result_release(&r2);
	}
	if (code == EX_OK) {
		if (ctx->json) {
			/* Through jansson: a name may hold '"' or '\n'. */
			json_t *o = json_pack("{s:s,s:s}", "path", t.rel, "how",
					      "keep-local");

			if (o)
				fs_json_print(o);
			json_decref(o);
		} else
			printf("%s: settled (keep-local: %s)\n", fs_esc(path),
			       copy && *copy ? "the local version replaced "
					       "the server's"
					     : "redone on the server");
	}
	fs_result_release(&r);
	return code;
}

/* --all: every conflict whose path matches --match. */
static int
resolve_all(struct fs_ctx *ctx, const char *how)
{
	struct fs_target t;
	struct fs_result r, r2;
	json_t *c;
	size_t i, n = 0, bad = 0;
	int code = EX_OK;

	if (get_conflicts(ctx, NULL, &t, &r) < 0) {
		fs_print_error(ctx, "", &r);
		code = fs_exit_code(r.err, r.local);
		fs_result_release(&r);
		return code;
	}
	json_array_foreach (json_object_get(r.json, "conflicts"), i, c) {
		const char *p = fs_str(c, "path");
		json_t *args;

		if (!matches(ctx->match, p))
			continue;
		if (!strcmp(how, "keep-local")) {
			char full[PATH_MAX * 2];
			int c2;

			snprintf(full, sizeof(full), "%s/%s", t.mount, p);
			c2 = keep_local(ctx, full);
			if (c2 != EX_OK) {
				code = c2;
				bad++;
			} else {
				n++;
			}
			continue;
		}
		args = json_pack("{s:s,s:s}", "path", p, "how", how);
		memset(&r2, 0, sizeof(r2));
		if (fs_call(ctx, &t, CTL_RESOLVE, args, NULL, NULL, &r2) < 0) {
			fs_print_error(ctx, p, &r2);
			code = fs_exit_code(r2.err, r2.local);
			bad++;
		} else {
			n++;
			if (!ctx->json)
				printf("%s: settled (%s)\n", fs_esc(p), how);
		}
		fs_result_release(&r2);
		json_decref(args);
	}
	if (ctx->json)
		printf("{\"settled\": %zu, \"failed\": %zu}\n", n, bad);
	else
		printf("%zu conflict%s settled\n", n, n == 1 ? "" : "s");
	fs_result_release(&r);
	return bad ? code : EX_OK;
}

int
fs_cmd_resolve(struct fs_ctx *ctx)
{
	const char *how = how_of(ctx->keep);
	json_t *extra;
	int rc;

	ctx->nofollow = 1; /* the name itself, whatever it is now */
	if (!how) {
		fprintf(stderr, "fs resolve: --keep local, server or both is "
				"needed\n");
		fs_cmd_usage(ctx->cmd, stderr);
		return EX_USAGE;
	}
	if (ctx->all == (ctx->argc > 0)) {
		fprintf(stderr, "fs resolve: give paths, or --all\n");
		fs_cmd_usage(ctx->cmd, stderr);
		return EX_USAGE;
	}
	if (ctx->match && !ctx->all) {
		fprintf(stderr, "fs resolve: --match goes with --all\n");
		return EX_USAGE;
	}
	if (ctx->all)
		return resolve_all(ctx, how);
	if (!strcmp(how, "keep-local")) {
		int code = EX_OK, c;

		for (int i = 0; i < ctx->argc; i++)
			if ((c = keep_local(ctx, ctx->argv[i])) != EX_OK)
				code = c;
		return code;
	}
	extra = json_pack("{s:s}", "how", how);
	rc = fs_each_path(ctx, CTL_RESOLVE, extra, render_resolved, NULL);
	json_decref(extra);
	return rc;
}

/* --- fs replaylog --- */

static void
render_log(struct fs_ctx *ctx, const struct fs_target *t, json_t *res)
{
	json_t *recs = json_object_get(res, "records"), *r;
	char tm[32];
	size_t i;

	(void)ctx;
	(void)t;
	printf("%-8s %-12s %-9s %-10s %-19s %s\n", "SEQ", "OP", "STATE",
	       "BYTES", "SINCE", "FID / NAME");
	json_array_foreach (recs, i, r) {
		when((int64_t)fs_u64(r, "time_ms", NULL), tm, sizeof(tm));
		printf("%-8llu %-12s %-9s %-10llu %-19s %s%s%s\n",
		       (unsigned long long)fs_u64(r, "seq", NULL),
		       fs_str(r, "op"), fs_str(r, "state"),
		       (unsigned long long)fs_u64(r, "bytes", NULL), tm,
		       fs_str(r, "fid"), *fs_str(r, "name") ? " " : "",
		       fs_esc(fs_str(r, "name")));
	}
	printf("%llu record%s waiting\n",
	       (unsigned long long)fs_u64(res, "pending", NULL),
	       fs_u64(res, "pending", NULL) == 1 ? "" : "s");
}

int
fs_cmd_replaylog(struct fs_ctx *ctx)
{
	return fs_simple(ctx, CTL_REPLAYLOG, NULL, render_log);
}

/* --- fs setpolicy [--write-mode M] [--writeback-delay D] [NAME=VALUE] --- */

static void
render_policy(struct fs_ctx *ctx, const struct fs_target *t, json_t *res)
{
	(void)ctx;
	(void)t;
	printf("%s=%s\n", fs_str(res, "name"), fs_str(res, "value"));
}

static int
set_one(struct fs_ctx *ctx, const char *name, const char *value)
{
	json_t *args = json_pack("{s:s,s:s}", "name", name, "value", value);
	int rc;

	if (!args)
		return EX_OSERR;
	rc = fs_simple(ctx, CTL_SETPOLICY, args, render_policy);
	json_decref(args);
	return rc;
}

int
fs_cmd_setpolicy(struct fs_ctx *ctx)
{
	char name[64];
	const char *eq = NULL;
	int rc;

	if (ctx->argc > 1 ||
	    (ctx->argc == 1 &&
	     (!(eq = strchr(ctx->argv[0], '=')) || eq == ctx->argv[0] ||
	      (size_t)(eq - ctx->argv[0]) >= sizeof(name))) ||
	    (ctx->argc == 0 && !ctx->write_mode && !ctx->wb_delay)) {
		fprintf(stderr, "fs setpolicy: give --write-mode, "
				"--writeback-delay or one NAME=VALUE\n");
		fs_cmd_usage(ctx->cmd, stderr);
		return EX_USAGE;
	}
	/* The delay first: switching to writeback then uses it. */
	if (ctx->wb_delay &&
	    (rc = set_one(ctx, "writeback-delay", ctx->wb_delay)) != EX_OK)
		return rc;
	if (ctx->write_mode &&
	    (rc = set_one(ctx, "write-mode", ctx->write_mode)) != EX_OK)
		return rc;
	if (!eq)
		return EX_OK;
	snprintf(name, sizeof(name), "%.*s", (int)(eq - ctx->argv[0]),
		 ctx->argv[0]);
	return set_one(ctx, name, eq + 1);
}
