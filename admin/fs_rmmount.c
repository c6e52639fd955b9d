/*
 * fs_rmmount.c - "fs rmmount DIR ...": remove mount points. Only a mount
 * point is removed (anything else is refused); the volume it names is
 * not touched.
 */
#include "config.h"

#include <stdio.h>

#include "admin/fs.h"

static void
render(struct fs_ctx *ctx, const char *path, const struct fs_target *t,
       json_t *res)
{
	(void)ctx;
	(void)t;
	(void)res;
	printf("mount point '%s' removed\n", fs_esc(path));
}

int
fs_cmd_rmmount(struct fs_ctx *ctx)
{
	ctx->nofollow = 1; /* the mount point, not its volume's root */
	return fs_each_path(ctx, CTL_RMMOUNT, NULL, render, NULL);
}
