/*
 * fs_whereis.c - "fs whereis": which volume and server a path lives on.
 */
#include "config.h"

#include <stdio.h>

#include "admin/fs.h"

static void
render(struct fs_ctx *ctx, const char *path, const struct fs_target *t,
       json_t *res)
{
	printf("%s is on volume %s (fid %s) served by %s\n", fs_esc(path),
	       fs_esc(fs_str(res, "volume")), fs_esc(fs_str(res, "fid")),
	       fs_esc(fs_str(res, "server")));
}

int
fs_cmd_whereis(struct fs_ctx *ctx)
{
	return fs_each_path(ctx, CTL_WHEREIS, NULL, render, NULL);
}
