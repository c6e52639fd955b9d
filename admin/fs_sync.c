/*
 * fs_sync.c - "fs sync [PATH]": wait until the server has every change
 * made through the mount (writeback mode logs them first), of PATH's
 * object or of the whole mount. In sync mode there is nothing to wait
 * for and it answers at once.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "admin/fs.h"

static void
render(struct fs_ctx *ctx, const struct fs_target *t, const char *path,
       json_t *res)
{
	(void)ctx;
	(void)t;
	printf("%s%son the server (%llu record%s sent)\n",
	       path ? fs_esc(path) : "", path ? ": " : "every change ",
	       (unsigned long long)fs_u64(res, "records", NULL),
	       fs_u64(res, "records", NULL) == 1 ? "" : "s");
}

int
fs_cmd_sync(struct fs_ctx *ctx)
{
	const char *path = ctx->argc ? ctx->argv[0] : NULL;
	struct fs_target t;
	struct fs_result r;
	json_t *args = NULL;
	int code = EX_OK, rc;

	memset(&r, 0, sizeof(r));
	rc = path ? fs_target_path(ctx, path, &t, &r)
		  : fs_target_default(ctx, &t, &r);
	if (rc == 0) {
		if (path)
			args = json_pack("{s:s}", "path", t.rel);
		rc = fs_call(ctx, &t, CTL_SYNC, args, NULL, NULL, &r);
		json_decref(args);
	}
	if (rc < 0) {
		fs_print_error(ctx, path ? path : "", &r);
		code = fs_exit_code(r.err, r.local);
	} else if (ctx->json) {
		fs_json_print(r.json);
	} else {
		render(ctx, &t, path, r.json);
	}
	fs_result_release(&r);
	return code;
}
