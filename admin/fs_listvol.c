/*
 * fs_listvol.c - "fs listvol": the volumes of every cairn mount (or of the
 * one named with -m / -s), asking each mount's cairnd.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "admin/fs.h"

struct lv {
	struct fs_ctx *ctx;
	json_t *all; /* --json: merged "volumes" */
	int header;
	int code;
};

static void
row(struct lv *lv, const struct fs_target *t, json_t *v)
{
	const char *mnt = fs_str(v, "mountpoint");

	if (!lv->header) {
		printf("%-20s %-4s %-28s %s\n", "VOLUME", "MODE", "MOUNTPOINT",
		       "SERVER");
		lv->header = 1;
	}
	printf("%-20s %-4s %-28s %s\n", fs_str(v, "name"), fs_str(v, "mode"),
	       strcmp(mnt, "-") ? mnt : (t->mount[0] ? t->mount : "-"),
	       fs_str(v, "server"));
}

static void
one(void *arg, const struct fs_target *t)
{
	struct lv *lv = arg;
	struct fs_result r;
	json_t *vols, *v;
	size_t i;

	fs_call(lv->ctx, t, CTL_LISTVOL, NULL, NULL, NULL, &r);
	if (r.err) {
		fs_print_error(lv->ctx, t->mount, &r);
		lv->code = EXIT_FAILURE;
		fs_result_release(&r);
		return;
	}
	vols = json_object_get(r.json, "volumes");
	json_array_foreach (vols, i, v) {
		if (lv->all)
			json_array_append(lv->all, v);
		else
			row(lv, t, v);
	}
	fs_result_release(&r);
}

static void
render(struct fs_ctx *ctx, const struct fs_target *t, json_t *res)
{
	struct lv lv = {ctx, NULL, 0, 0};
	json_t *v;
	size_t i;

	json_array_foreach (json_object_get(res, "volumes"), i, v)
		row(&lv, t, v);
	if (!lv.header)
		printf("no volumes\n");
}

int
fs_cmd_listvol(struct fs_ctx *ctx)
{
	struct lv lv = {ctx, NULL, 0, EX_OK};
	json_t *out;
	int n;

	if (ctx->mount || ctx->socket)
		return fs_simple(ctx, CTL_LISTVOL, NULL, render);
	if (ctx->json)
		lv.all = json_array();
	n = fs_each_mount(one, &lv);
	if (ctx->json) {
		out = json_pack("{s:o}", "volumes", lv.all);
		fs_json_print(out);
		json_decref(out);
	} else if (n == 0)
		printf("no cairn mounts\n");
	return lv.code;
}
