/*
 * fs_metrics.c - "fs metrics": cairnd's counters in the Prometheus text
 * format (doc/control.md "metrics"), as they are, for node_exporter's
 * textfile collector or a look by hand.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "admin/fs.h"

/* The text is printed as cairnd wrote it: it is the exposition format,
 * which escapes its own label values, and a consumer parses it as such
 * (no fs_esc(), which would change what a parser reads). */
static void
render(struct fs_ctx *ctx, const struct fs_target *t, json_t *res)
{
	json_t *text = json_object_get(res, "text");

	(void)ctx;
	(void)t;
	if (!json_is_string(text))
		return;
	fwrite(json_string_value(text), 1, json_string_length(text), stdout);
}

int
fs_cmd_metrics(struct fs_ctx *ctx)
{
	return fs_simple(ctx, CTL_METRICS, NULL, render);
}
