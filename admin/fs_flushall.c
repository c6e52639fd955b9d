/*
 * fs_flushall.c - "fs flushall": drop all cached data and metadata of the
 * mount (root only; dirty data is stored first, pins are fetched again).
 */
#include "config.h"

#include <stdio.h>

#include "admin/fs.h"

static void
render(struct fs_ctx *ctx, const struct fs_target *t, json_t *res)
{
	char d[32], s[32];

	printf("flushed everything: %s dropped, %s stored first\n",
	       fs_size(fs_u64(res, "bytes_dropped", NULL), d, sizeof(d)),
	       fs_size(fs_u64(res, "bytes_stored", NULL), s, sizeof(s)));
}

int
fs_cmd_flushall(struct fs_ctx *ctx)
{
	return fs_simple(ctx, CTL_FLUSHALL, NULL, render);
}
