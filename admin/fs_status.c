/*
 * fs_status.c - "fs status": is the mount connected, how many changes
 * wait to be replayed, how many conflicts wait to be resolved.
 */
#include "config.h"

#include <stdio.h>

#include "admin/fs.h"

static void
render(struct fs_ctx *ctx, const struct fs_target *t, json_t *res)
{
	if (t->mount[0])
		fs_kv("mount", "%s", t->mount);
	fs_kv("volume", "%s", fs_str(res, "volume"));
	fs_kv("server", "%s", fs_str(res, "server"));
	fs_kv("mode", "%s", fs_str(res, "mode"));
	fs_kv("replay pending", "%llu",
	      (unsigned long long)fs_u64(res, "replay_pending", NULL));
	fs_kv("conflicts", "%llu",
	      (unsigned long long)fs_u64(res, "conflicts", NULL));
	if (json_object_get(res, "version"))
		fs_kv("cairnd", "%s", fs_str(res, "version"));
}

int
fs_cmd_status(struct fs_ctx *ctx)
{
	return fs_simple(ctx, CTL_STATUS, NULL, render);
}
