/*
 * fs_checkservers.c - "fs checkservers": cairnd probes its servers now and
 * reports each as reachable (with the round-trip time) or not. Exits 75
 * when any server is down, so scripts can test it.
 */
#include "config.h"

#include <stdio.h>

#include "admin/fs.h"

static int any_down;
static int want_json;

static void
render(struct fs_ctx *ctx, const struct fs_target *t, json_t *res)
{
	json_t *s;
	size_t i;

	json_array_foreach (json_object_get(res, "servers"), i, s) {
		if (!fs_bool(s, "up"))
			any_down = 1;
		if (want_json)
			continue;
		if (fs_bool(s, "up"))
			printf("%-40s up    %llu ms\n", fs_str(s, "url"),
			       (unsigned long long)fs_u64(s, "latency_ms",
							  NULL));
		else
			printf("%-40s DOWN  %s\n", fs_str(s, "url"),
			       fs_str(s, "error"));
	}
	if (want_json)
		fs_json_print(res);
}

int
fs_cmd_checkservers(struct fs_ctx *ctx)
{
	int rc;

	/* render() prints the JSON itself: it must also see the reply. */
	want_json = ctx->json;
	ctx->json = 0;
	rc = fs_simple(ctx, CTL_CHECKSERVERS, NULL, render);
	ctx->json = want_json;
	if (rc == EX_OK && any_down)
		rc = EX_TEMPFAIL;
	return rc;
}
