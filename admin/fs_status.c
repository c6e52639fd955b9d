/*
 * fs_status.c - "fs status": is the mount connected, how many changes
 * wait to be replayed, how many conflicts wait to be resolved.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "admin/fs.h"

/* A cairnd of several volumes, asked without -V: one line each. */
static void
render_all(const struct fs_target *t, json_t *res)
{
	json_t *v;
	size_t i;

	if (t->mount[0])
		fs_kv("mount", "%s", t->mount);
	fs_kv("mode", "%s", fs_str(res, "mode"));
	fs_kv("replay pending", "%llu records",
	      (unsigned long long)fs_u64(res, "replay_pending", NULL));
	fs_kv("conflicts", "%llu",
	      (unsigned long long)fs_u64(res, "conflicts", NULL));
	if (json_object_get(res, "version"))
		fs_kv("cairnd", "%s", fs_str(res, "version"));
	printf("\n%-20s %-14s %-7s %-8s %-9s %s\n", "DIR", "MODE", "ONLINE",
	       "PENDING", "CONFLICTS", "SERVER");
	json_array_foreach (json_object_get(res, "volumes"), i, v)
		printf("%-20s %-14s %-7s %-8llu %-9llu %s\n", fs_str(v, "dir"),
		       fs_str(v, "mode"), fs_bool(v, "online") ? "yes" : "no",
		       (unsigned long long)fs_u64(v, "replay_pending", NULL),
		       (unsigned long long)fs_u64(v, "conflicts", NULL),
		       fs_str(v, "server"));
}

static void
render(struct fs_ctx *ctx, const struct fs_target *t, json_t *res)
{
	if (json_is_array(json_object_get(res, "volumes"))) {
		render_all(t, res);
		return;
	}
	if (t->mount[0])
		fs_kv("mount", "%s", t->mount);
	fs_kv("volume", "%s", fs_str(res, "volume"));
	fs_kv("server", "%s", fs_str(res, "server"));
	{
		int64_t since = (int64_t)fs_u64(res, "since_ms", NULL);
		time_t secs = (time_t)(since / 1000);
		struct tm tm;
		char when[32] = "";

		if (since && localtime_r(&secs, &tm))
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
		fs_kv("mode", "%s%s%s%s", fs_str(res, "mode"),
		      fs_bool(res, "manual") ? " (by hand)" : "",
		      when[0] ? " since " : "", when);
	}
	fs_kv("replay pending", "%llu records, %llu bytes",
	      (unsigned long long)fs_u64(res, "replay_pending", NULL),
	      (unsigned long long)fs_u64(res, "replay_bytes", NULL));
	if (json_object_get(res, "replay_total"))
		fs_kv("reintegration", "%llu of %llu records, %llu of %llu "
				       "bytes",
		      (unsigned long long)fs_u64(res, "replay_done", NULL),
		      (unsigned long long)fs_u64(res, "replay_total", NULL),
		      (unsigned long long)fs_u64(res, "replay_bytes_done", NULL),
		      (unsigned long long)fs_u64(res, "replay_bytes_total",
						 NULL));
	if (json_object_get(res, "write_mode")) {
		uint64_t d = fs_u64(res, "writeback_delay_ms", NULL);

		if (!strcmp(fs_str(res, "write_mode"), "writeback"))
			fs_kv("write mode",
			      "writeback (delay %llu ms, log-sync %s)%s",
			      (unsigned long long)d,
			      json_object_get(res, "log_sync")
				      ? fs_str(res, "log_sync")
				      : "op",
			      fs_bool(res, "draining") ? ", draining" : "");
		else
			fs_kv("write mode", "%s%s", fs_str(res, "write_mode"),
			      fs_bool(res, "draining")
				      ? " (draining the log first)"
				      : "");
		fs_kv("backlog", "%llu records, %llu bytes, oldest %.1f s",
		      (unsigned long long)fs_u64(res, "backlog_records", NULL),
		      (unsigned long long)fs_u64(res, "backlog_bytes", NULL),
		      (double)fs_u64(res, "backlog_oldest_ms", NULL) / 1000.0);
	}
	if (json_object_get(res, "offline_miss"))
		fs_kv("offline-miss", "%s", fs_str(res, "offline_miss"));
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
