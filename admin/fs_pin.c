/*
 * fs_pin.c - "fs pin": fetch paths completely and pin them so culling
 * never evicts them. cairnd records the pin before fetching, so an
 * interrupted fs leaves the pin in place and cairnd finishes the fetch in
 * the background (as it does after a restart).
 */
#include "config.h"

#include <stdio.h>

#include "admin/fs.h"

static void
render(struct fs_ctx *ctx, const char *path, const struct fs_target *t,
       json_t *res)
{
	char b[32], f[32];

	printf("pinned %s%s: %s in %llu files (%s fetched)\n", fs_esc(path),
	       ctx->recursive ? " (recursive)" : "",
	       fs_size(fs_u64(res, "bytes", NULL), b, sizeof(b)),
	       (unsigned long long)fs_u64(res, "files", NULL),
	       fs_size(fs_u64(res, "bytes_fetched", NULL), f, sizeof(f)));
}

int
fs_cmd_pin(struct fs_ctx *ctx)
{
	struct fs_progress prog;
	json_t *extra;
	int rc;

	extra = json_pack("{s:b}", "recursive", ctx->recursive);
	fs_progress_init(&prog, "pin", !ctx->json && !ctx->quiet);
	rc = fs_each_path(ctx, CTL_PIN, extra, render, &prog);
	json_decref(extra);
	return rc;
}
