/*
 * fs_reconnect.c - "fs reconnect": talk to the server again and replay
 * the changes made while disconnected (root only).
 */
#include "config.h"

#include <stdio.h>

#include "admin/fs.h"

static void
render(struct fs_ctx *ctx, const struct fs_target *t, json_t *res)
{
	printf("mode: %s (%llu records replayed, %llu conflicts)\n",
	       fs_str(res, "mode"),
	       (unsigned long long)fs_u64(res, "replayed", NULL),
	       (unsigned long long)fs_u64(res, "conflicts", NULL));
}

int
fs_cmd_reconnect(struct fs_ctx *ctx)
{
	return fs_simple(ctx, CTL_RECONNECT, NULL, render);
}
