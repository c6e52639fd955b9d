/*
 * fs_mkmount.c - "fs mkmount DIR VOLUME": make a mount point, an entry DIR
 * that every client shows as the root of volume VOLUME (doc/cm.md "Mount
 * points"). DIR must not exist; its parent must be on a cairn mount.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "admin/fs.h"

int
fs_cmd_mkmount(struct fs_ctx *ctx)
{
	struct fs_target t;
	struct fs_result r;
	json_t *args;
	int code = EX_OK, rc;

	if (ctx->argc != 2) {
		fprintf(stderr, "fs mkmount: give a directory to make and a "
				"volume\n");
		fs_cmd_usage(ctx->cmd, stderr);
		return EX_USAGE;
	}
	ctx->nofollow = 1; /* DIR does not exist yet */
	memset(&r, 0, sizeof(r));
	rc = fs_target_path(ctx, ctx->argv[0], &t, &r);
	if (rc == 0) {
		args = json_pack("{s:s,s:s}", "path", t.rel, "target",
				 ctx->argv[1]);
		rc = fs_call(ctx, &t, CTL_MKMOUNT, args, NULL, NULL, &r);
		json_decref(args);
	}
	if (rc < 0) {
		fs_print_error(ctx, ctx->argv[0], &r);
		code = fs_exit_code(r.err, r.local);
	} else if (ctx->json) {
		fs_json_print(r.json);
	} else {
		printf("'%s' is now a mount point for volume '%s'\n",
		       fs_esc(ctx->argv[0]), fs_esc(fs_str(r.json, "volume")));
	}
	fs_result_release(&r);
	return code;
}
