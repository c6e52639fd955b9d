/*
 * fs_disconnect.c - "fs disconnect": stop talking to the server and work
 * from the cache alone (root only); changes queue in the replay log.
 */
#include "config.h"

#include <stdio.h>

#include "admin/fs.h"

static void
render(struct fs_ctx *ctx, const struct fs_target *t, json_t *res)
{
	printf("mode: %s\n", fs_str(res, "mode"));
}

int
fs_cmd_disconnect(struct fs_ctx *ctx)
{
	return fs_simple(ctx, CTL_DISCONNECT, NULL, render);
}
