/*
 * fs_setcachesize.c - "fs setcachesize SIZE": change the cache's byte
 * limit at once (root only). cairnd culls down to the new limit before it
 * answers and refuses a limit below pinned plus dirty bytes.
 */
#include "config.h"

#include <stdio.h>

#include "admin/fs.h"
#include "common/util.h"

static void
render(struct fs_ctx *ctx, const struct fs_target *t, json_t *res)
{
	char a[32], b[32], c[32];

	printf("cache size set to %s (%s used, %s culled)\n",
	       fs_size(fs_u64(res, "bytes_limit", NULL), a, sizeof(a)),
	       fs_size(fs_u64(res, "bytes_used", NULL), b, sizeof(b)),
	       fs_size(fs_u64(res, "culled_bytes", NULL), c, sizeof(c)));
}

int
fs_cmd_setcachesize(struct fs_ctx *ctx)
{
	uint64_t bytes;
	json_t *args;
	int rc;

	if (util_parse_size(ctx->argv[0], &bytes) < 0 ||
	    bytes > (uint64_t)INT64_MAX) {
		fprintf(stderr,
			"fs setcachesize: '%s' is not a size "
			"(examples: 512M, 10G)\n",
			ctx->argv[0]);
		fs_cmd_usage(ctx->cmd, stderr);
		return EX_USAGE;
	}
	args = json_pack("{s:I}", "bytes", (json_int_t)bytes);
	rc = fs_simple(ctx, CTL_SETCACHESIZE, args, render);
	json_decref(args);
	return rc;
}
