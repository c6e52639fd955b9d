/*
 * fs_pins.c - "fs pins": what is pinned, how much of it is cached and how
 * much is still missing - the answer to "is my pinned set complete?".
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "admin/fs.h"

static void
render(struct fs_ctx *ctx, const struct fs_target *t, json_t *res)
{
	json_t *pins = json_object_get(res, "pins"), *p;
	char a[32], b[32], path[PATH_MAX * 4 + 16];
	size_t i;

	if (!json_array_size(pins)) {
		printf("nothing pinned\n");
		return;
	}
	printf("%-11s %-11s %8s  %s\n", "PINNED", "MISSING", "FILES", "PATH");
	json_array_foreach (pins, i, p) {
		fs_display_path(t, fs_str(p, "path"), path, sizeof(path));
		printf("%-11s %-11s %8llu  %s%s\n",
		       fs_size(fs_u64(p, "bytes", NULL), a, sizeof(a)),
		       fs_size(fs_u64(p, "bytes_missing", NULL), b, sizeof(b)),
		       (unsigned long long)fs_u64(p, "files", NULL), path,
		       fs_bool(p, "recursive") ? " (recursive)" : "");
	}
	printf("total: %s pinned, %s missing\n",
	       fs_size(fs_u64(res, "bytes_pinned", NULL), a, sizeof(a)),
	       fs_size(fs_u64(res, "bytes_missing", NULL), b, sizeof(b)));
}

int
fs_cmd_pins(struct fs_ctx *ctx)
{
	struct fs_target t;
	struct fs_result r;
	json_t *args;
	int code;

	if (ctx->argc == 0)
		return fs_simple(ctx, CTL_PINS, NULL, render);
	memset(&r, 0, sizeof(r));
	if (fs_target_path(ctx, ctx->argv[0], &t, &r) == 0) {
		args = json_pack("{s:s}", "path", t.rel);
		fs_call(ctx, &t, CTL_PINS, args, NULL, NULL, &r);
		json_decref(args);
	}
	if (r.err) {
		fs_print_error(ctx, ctx->argv[0], &r);
		code = fs_exit_code(r.err, r.local);
	} else {
		if (ctx->json)
			fs_json_print(r.json);
		else
			render(ctx, &t, r.json);
		code = EX_OK;
	}
	fs_result_release(&r);
	return code;
}
