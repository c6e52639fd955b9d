/*
 * fs_flushvolume.c - "fs flushvolume": drop every cached chunk of the
 * mount's volume (root only; dirty data is stored first).
 */
#include "config.h"

#include <stdio.h>

#include "admin/fs.h"

static void
render(struct fs_ctx *ctx, const struct fs_target *t, json_t *res)
{
	char d[32], s[32];

	printf("flushed volume %s: %s dropped, %s stored first\n",
	       t->volume[0] ? t->volume : fs_str(res, "volume"),
	       fs_size(fs_u64(res, "bytes_dropped", NULL), d, sizeof(d)),
	       fs_size(fs_u64(res, "bytes_stored", NULL), s, sizeof(s)));
}

int
fs_cmd_flushvolume(struct fs_ctx *ctx)
{
	return fs_simple(ctx, CTL_FLUSHVOLUME, NULL, render);
}
