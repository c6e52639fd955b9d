/*
 * stats.c - formatting the counters (stats.h).
 */
#include "config.h"

#include <stdio.h>

#include "cm/stats.h"

#define LD(x)                                                                  \
	((unsigned long long)atomic_load_explicit(&st->x, memory_order_relaxed))

size_t
cm_stats_format_counters(const struct cm_stats *st, char *buf, size_t len,
			 size_t off)
{
	static const char *const kinds[CM_R_MAX] = {
		"lookup",   "getattr", "readdir", "open",  "read",
		"readlink", "xattr",   "statfs",  "other", "opendir",
		"release",  "flush",   "forget",  "access"};
	int n;

#define P(...)                                                                 \
	do {                                                                   \
		n = snprintf(buf + off, len - off, __VA_ARGS__);               \
		if (n < 0 || (size_t)n >= len - off)                           \
			return off;                                            \
		off += (size_t)n;                                              \
	} while (0)
	if (off >= len)
		return off;
	for (int i = 0; i < CM_R_MAX; i++)
		P("req_%s %llu\n", kinds[i], LD(reqs[i]));
	P("parked %llu\n", LD(parked));
	P("chunk_hits %llu\n", LD(chunk_hits));
	P("chunk_misses %llu\n", LD(chunk_misses));
	P("chunks_fetched %llu\n", LD(chunks_fetched));
	P("bytes_fetched %llu\n", LD(bytes_fetched));
	P("prefetches %llu\n", LD(prefetches));
	P("fetch_retries %llu\n", LD(fetch_retries));
	P("fetch_errors %llu\n", LD(fetch_errors));
	P("bad_chunks %llu\n", LD(bad_chunks));
	P("early_reads %llu\n", LD(early_reads));
	P("flushed_in_flight %llu\n", LD(flushed_in_flight));
	P("open_pushes %llu\n", LD(open_pushes));
	P("chunks_advised %llu\n", LD(chunks_advised));
	P("stale_chunks %llu\n", LD(stale_chunks));
	P("dir_fetches %llu\n", LD(dir_fetches));
	P("dir_pages %llu\n", LD(dir_pages));
	P("dir_prefetches %llu\n", LD(dir_prefetches));
	P("dir_late %llu\n", LD(dir_late));
	P("getattr_requests %llu\n", LD(getattr_reqs));
	P("getattr_fids %llu\n", LD(getattr_fids));
	P("link_fetches %llu\n", LD(link_fetches));
	P("xattr_fetches %llu\n", LD(xattr_fetches));
	P("events %llu\n", LD(events));
	P("own_events %llu\n", LD(own_events));
	P("event_reconnects %llu\n", LD(ev_reconnects));
	P("revalidations %llu\n", LD(revalidations));
	P("invalidations %llu\n", LD(invalidations));
	P("stores %llu\n", LD(stores));
	P("writebacks %llu\n", LD(writebacks));
	P("checkpoints %llu\n", LD(wb_checkpoints));
	P("conflicts %llu\n", LD(conflicts));
	P("replay_batches %llu\n", LD(replay_batches));
	P("replay_batch_ops %llu\n", LD(replay_batch_ops));
	P("replay_singles %llu\n", LD(replay_singles));
#undef P
	return off;
}
