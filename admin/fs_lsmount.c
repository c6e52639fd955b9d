/*
 * fs_lsmount.c - "fs lsmount DIR ...": which volume each mount point
 * names. DIR itself is looked at, not the volume behind it.
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
	printf("'%s' is a mount point for volume '%s'\n", fs_esc(path),
	       fs_esc(fs_str(res, "volume")));
}

int
fs_cmd_lsmount(struct fs_ctx *ctx)
{
	ctx->nofollow = 1; /* the mount point, not its volume's root */
	return fs_each_path(ctx, CTL_LSMOUNT, NULL, render, NULL);
}
