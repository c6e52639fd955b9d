/*
 * fs_flushmeta.c - "fs flushmeta": forget cached attributes, directory
 * entries, symlink targets and xattrs of paths; the next access asks the
 * server again. Data chunks are kept (they are tagged by data version).
 */
#include "config.h"

#include <stdio.h>

#include "admin/fs.h"

static void
render(struct fs_ctx *ctx, const char *path, const struct fs_target *t,
       json_t *res)
{
	printf("flushed metadata of %s\n", fs_esc(path));
}

int
fs_cmd_flushmeta(struct fs_ctx *ctx)
{
	return fs_each_path(ctx, CTL_FLUSHMETA, NULL, render, NULL);
}
