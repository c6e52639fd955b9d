/*
 * fs_examine.c - "fs examine": what cairnd knows of one object: FID, data
 * version, volume, size, how many of its chunks are cached, pinned, dirty,
 * when it was last fetched.
 */
#include "config.h"

#include <stdio.h>
#include <time.h>

#include "admin/fs.h"

static void
render(struct fs_ctx *ctx, const char *path, const struct fs_target *t,
       json_t *res)
{
	char a[32], when[64];
	uint64_t size = fs_u64(res, "size", NULL);
	uint64_t lf = fs_u64(res, "last_fetched", NULL);
	time_t tt = (time_t)lf;
	struct tm tm;

	if (lf && localtime_r(&tt, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %z", &tm);
	else
		snprintf(when, sizeof(when), "never");
	if (ctx->argc > 1)
		printf("%s:\n", fs_esc(path));
	fs_kv("fid", "%s", fs_str(res, "fid"));
	fs_kv("volume", "%s", fs_str(res, "volume"));
	fs_kv("type", "%s", fs_str(res, "type"));
	fs_kv("data version", "%llu",
	      (unsigned long long)fs_u64(res, "dv", NULL));
	fs_kv("size", "%s (%llu bytes)", fs_size(size, a, sizeof(a)),
	      (unsigned long long)size);
	fs_kv("chunks cached", "%llu of %llu",
	      (unsigned long long)fs_u64(res, "chunks_cached", NULL),
	      (unsigned long long)fs_u64(res, "chunks_total", NULL));
	fs_kv("pinned", "%s", fs_bool(res, "pinned") ? "yes" : "no");
	fs_kv("dirty", "%s", fs_bool(res, "dirty") ? "yes" : "no");
	fs_kv("last fetched", "%s", when);
}

int
fs_cmd_examine(struct fs_ctx *ctx)
{
	return fs_each_path(ctx, CTL_EXAMINE, NULL, render, NULL);
}
