/*
 * fs_unpin.c - "fs unpin": release pins. The data stays cached and becomes
 * ordinary culling material; nothing is dropped at once.
 */
#include "config.h"

#include <stdio.h>

#include "admin/fs.h"

static void
render(struct fs_ctx *ctx, const char *path, const struct fs_target *t,
       json_t *res)
{
	char b[32];

	printf("unpinned %s%s: %llu pins removed, %s no longer pinned\n", path,
	       ctx->recursive ? " (recursive)" : "",
	       (unsigned long long)fs_u64(res, "pins_removed", NULL),
	       fs_size(fs_u64(res, "bytes", NULL), b, sizeof(b)));
}

int
fs_cmd_unpin(struct fs_ctx *ctx)
{
	json_t *extra = json_pack("{s:b}", "recursive", ctx->recursive);
	int rc;

	rc = fs_each_path(ctx, CTL_UNPIN, extra, render, NULL);
	json_decref(extra);
	return rc;
}
