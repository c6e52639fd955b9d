/*
 * fs_getcacheparms.c - "fs getcacheparms": the cache's size and use,
 * pinned and dirty bytes, hit rate and evictions.
 */
#include "config.h"

#include <stdio.h>

#include "admin/fs.h"

static void
render(struct fs_ctx *ctx, const struct fs_target *t, json_t *res)
{
	char a[32], b[32], c[32];
	uint64_t used = fs_u64(res, "bytes_used", NULL);
	uint64_t limit = fs_u64(res, "bytes_limit", NULL);
	uint64_t hits = fs_u64(res, "hits", NULL);
	uint64_t misses = fs_u64(res, "misses", NULL);
	uint64_t n;
	int found;

	if (json_is_string(json_object_get(res, "cache_dir")))
		fs_kv("cache", "%s", fs_str(res, "cache_dir"));
	fs_kv("used", "%s of %s (%.0f%%)", fs_size(used, a, sizeof(a)),
	      fs_size(limit, b, sizeof(b)),
	      limit ? 100.0 * (double)used / (double)limit : 0.0);
	fs_kv("files", "%llu of %llu",
	      (unsigned long long)fs_u64(res, "files_used", NULL),
	      (unsigned long long)fs_u64(res, "files_limit", NULL));
	fs_kv("chunk size", "%s",
	      fs_size(fs_u64(res, "chunk_size", NULL), a, sizeof(a)));
	fs_kv("pinned", "%s",
	      fs_size(fs_u64(res, "pinned_bytes", NULL), a, sizeof(a)));
	n = fs_u64(res, "dirty_files", &found);
	if (found)
		fs_kv("dirty", "%s in %llu file%s (not stored yet)",
		      fs_size(fs_u64(res, "dirty_bytes", NULL), a, sizeof(a)),
		      (unsigned long long)n, n == 1 ? "" : "s");
	else
		fs_kv("dirty", "%s",
		      fs_size(fs_u64(res, "dirty_bytes", NULL), a,
			      sizeof(a)));
	if (hits + misses)
		fs_kv("hit rate", "%.1f%% (%llu hits, %llu misses)",
		      100.0 * (double)hits / (double)(hits + misses),
		      (unsigned long long)hits, (unsigned long long)misses);
	else
		fs_kv("hit rate", "- (no reads yet)");
	fs_kv("evictions", "%llu",
	      (unsigned long long)fs_u64(res, "evictions", NULL));
	/* A namespace: what each volume's chunks take of the one cache. */
	{
		json_t *vols = json_object_get(res, "volumes"), *v;
		size_t i;

		json_array_foreach (vols, i, v) {
			char key[300];

			snprintf(key, sizeof(key), "volume %s",
				 fs_str(v, "dir"));
			fs_kv(key, "%s in %llu chunks, %s pinned, %s dirty",
			      fs_size(fs_u64(v, "bytes_used", NULL), a,
				      sizeof(a)),
			      (unsigned long long)fs_u64(v, "chunks", NULL),
			      fs_size(fs_u64(v, "pinned_bytes", NULL), b,
				      sizeof(b)),
			      fs_size(fs_u64(v, "dirty_bytes", NULL), c,
				      sizeof(c)));
		}
	}
	fs_u64(res, "evicted_bytes", &found);
	if (found)
		fs_kv("evicted", "%s",
		      fs_size(fs_u64(res, "evicted_bytes", NULL), a,
			      sizeof(a)));
}

int
fs_cmd_getcacheparms(struct fs_ctx *ctx)
{
	return fs_simple(ctx, CTL_GETCACHEPARMS, NULL, render);
}
