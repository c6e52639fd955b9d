/*
 * fs_flush.c - "fs flush": drop the cached data of files. Dirty data is
 * stored on the server first and never dropped; a pinned file is fetched
 * again in the background.
 */
#include "config.h"

#include <stdio.h>

#include "admin/fs.h"

static void
render(struct fs_ctx *ctx, const char *path, const struct fs_target *t,
       json_t *res)
{
	char d[32], s[32];

	printf("flushed %s: %s dropped, %s stored first%s\n", fs_esc(path),
	       fs_size(fs_u64(res, "bytes_dropped", NULL), d, sizeof(d)),
	       fs_size(fs_u64(res, "bytes_stored", NULL), s, sizeof(s)),
	       fs_bool(res, "refetching") ? " (pinned: fetching again)" : "");
}

int
fs_cmd_flush(struct fs_ctx *ctx)
{
	return fs_each_path(ctx, CTL_FLUSH, NULL, render, NULL);
}
