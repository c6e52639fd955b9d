/*
 * stats.c - formatting the counters (stats.h).
 */
#include "config.h"

#include <stdio.h>

#include "cm/stats.h"

atomic_uint_fast64_t cm_fuse_opc[CM_FUSE_OPC_MAX];

const char *
cm_fuse_opc_name(unsigned opc)
{
	/* The numbers of enum fuse_opcode (linux/fuse.h), which is the
	 * kernel's ABI: they do not change. */
	static const char *const names[CM_FUSE_OPC_MAX] = {
		[0] = "other",	       [1] = "lookup",
		[2] = "forget",	       [3] = "getattr",
		[4] = "setattr",       [5] = "readlink",
		[6] = "symlink",       [8] = "mknod",
		[9] = "mkdir",	       [10] = "unlink",
		[11] = "rmdir",	       [12] = "rename",
		[13] = "link",	       [14] = "open",
		[15] = "read",	       [16] = "write",
		[17] = "statfs",       [18] = "release",
		[20] = "fsync",	       [21] = "setxattr",
		[22] = "getxattr",     [23] = "listxattr",
		[24] = "removexattr",  [25] = "flush",
		[26] = "init",	       [27] = "opendir",
		[28] = "readdir",      [29] = "releasedir",
		[30] = "fsyncdir",     [31] = "getlk",
		[32] = "setlk",	       [33] = "setlkw",
		[34] = "access",       [35] = "create",
		[36] = "interrupt",    [37] = "bmap",
		[38] = "destroy",      [39] = "ioctl",
		[40] = "poll",	       [41] = "notify_reply",
		[42] = "batch_forget", [43] = "fallocate",
		[44] = "readdirplus",  [45] = "rename2",
		[46] = "lseek",	       [47] = "copy_file_range",
		[48] = "setupmapping", [49] = "removemapping",
		[50] = "syncfs",       [51] = "tmpfile",
		[52] = "statx",
	};

	return opc < CM_FUSE_OPC_MAX ? names[opc] : NULL;
}

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
	P("reads_held %llu\n", LD(reads_held));
	P("chunks_advised %llu\n", LD(chunks_advised));
	P("stale_chunks %llu\n", LD(stale_chunks));
	P("dir_fetches %llu\n", LD(dir_fetches));
	P("dir_pages %llu\n", LD(dir_pages));
	P("dir_prefetches %llu\n", LD(dir_prefetches));
	P("dir_streamed %llu\n", LD(dir_streamed));
	P("dir_stream_held %llu\n", LD(dir_stream_held));
	P("dir_late %llu\n", LD(dir_late));
	P("dir_late_mut %llu\n", LD(dir_late_mut));
	P("dir_held %llu\n", LD(dir_held));
	P("dir_attrs_unkept %llu\n", LD(dir_attrs_unkept));
	P("dir_torn %llu\n", LD(dir_torn));
	P("dir_stale_offline %llu\n", LD(dir_stale_offline));
	P("fetched_old %llu\n", LD(fetched_old));
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
	P("log_bytes %llu\n", LD(wb_log_bytes));
	P("log_bytes_synced %llu\n", LD(wb_data_synced));
	P("log_bytes_restored %llu\n", LD(wb_data_restored));
	P("read_retries %llu\n", LD(wb_read_retries));
	P("conflicts %llu\n", LD(conflicts));
	P("rewrite_waits %llu\n", LD(rewrite_waits));
	P("wb_save_errors %llu\n", LD(wb_save_errors));
	P("wb_journal_repairs %llu\n", LD(wb_journal_repairs));
	P("replay_batches %llu\n", LD(replay_batches));
	P("replay_batch_ops %llu\n", LD(replay_batch_ops));
	P("replay_singles %llu\n", LD(replay_singles));
	for (unsigned i = 0; i < CM_FUSE_OPC_MAX; i++) {
		unsigned long long v = (unsigned long long)atomic_load_explicit(
			&cm_fuse_opc[i], memory_order_relaxed);
		const char *nm = cm_fuse_opc_name(i);

		if (v && nm)
			P("fuse_op_%s %llu\n", nm, v);
		else if (v)
			P("fuse_op_%u %llu\n", i, v);
	}
#undef P
	return off;
}
