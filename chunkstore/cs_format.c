/*
 * cs_format.c - the chunk store's on-disk format: encoders, decoders, file
 * names and the fault-injectable I/O wrappers every write goes through.
 *
 * It holds no policy (that is cs_store.c, cs_txn.c, cs_cull.c,
 * cs_recover.c); it is the one place that knows byte offsets. The design essay below is the
 * reference for doc/cache-format.md and cairn-cache(5).
 *
 * chunk store design:
 *
 * - A cache folder holds "index", "chunks/00" .. "chunks/ff" and nothing
 *   else of ours. Chunk slot S lives in chunks/XX/SSSSSSSS where XX is
 *   S & 0xff and SSSSSSSS is S in 8 lower-case hex digits, so 1M slots make
 *   about 4096 files per folder. "SSSSSSSS.tmp" is a chunk being stored by
 *   cs_put, "SSSSSSSS.wip" a working copy of cs_write; neither is ever
 *   trusted after a crash: recovery deletes both.
 *
 * - The index (the OpenAFS CacheItems idea) is a 128-byte header followed by
 *   one 64-byte record per slot, all little-endian. The header carries the
 *   magic "CAIRNCSI", format version 1, chunk size, slot count, limits and
 *   thresholds, the clean-shutdown flag, the last-use clock and a CRC32C of
 *   its first 124 bytes. A record carries the tag (volume, 128-bit fid,
 *   chunk number, data version), length, flags (valid, dirty, pinned),
 *   last-use stamp, the content's CRC32C, the slot's generation and a
 *   CRC32C of its first 60 bytes. An all-zero record is a free slot (the
 *   index grows by appending records; a crash may leave zeros).
 *
 * - A chunk file is the content followed by a 64-byte trailer: magic
 *   "CSTR", the tag, length, content CRC32C, generation, its own slot
 *   number, dirty/pinned flags, log2 of the chunk size, trailer version and
 *   a CRC32C of the trailer's first 60 bytes. The file's size is always
 *   length + 64. The trailer makes every chunk file self-describing: the
 *   index is a cache of the trailers and can always be rebuilt from them.
 *
 * - Why CRC32C for content: the local checksum only has to catch torn
 *   writes and rot of local files (the wire's SHA-256 is verified by the
 *   cache manager when it fills a chunk, before cs_put). CRC32C detects all
 *   burst errors up to 32 bits and runs at several GB/s with the SSE4.2
 *   crc32 instruction (slice-by-8 tables elsewhere), so checking a 4 MiB
 *   chunk costs about a millisecond.
 *
 * - Every slot has a generation, bumped each time new content is renamed
 *   into its file. The trailer and the record both carry it: when they
 *   disagree, the file is newer (files are renamed before records are
 *   written) and the trailer wins; when they agree, the record wins for
 *   DV and flags (cs_mark_clean rewrites the trailer first, then the record,
 *   and either outcome of a crash between them is safe).
 *
 * - cs_put (whole chunk) order: write SSSSSSSS.tmp = content + trailer
 *   (gen + 1); if DIRTY, fsync it; rename it over SSSSSSSS; pwrite the
 *   record; if DIRTY, fsync the folder and fdatasync the index. A clean put
 *   is not synced at all: after a power cut it may be missing or torn, and
 *   that is caught (missing file, bad trailer, bad checksum) and refetched.
 *   Old content stays readable until the rename; readers holding an open fd
 *   keep reading the old inode, a consistent old chunk.
 *
 * - cs_write writes into SSSSSSSS.wip, a copy of the committed content
 *   made by the first write after a commit; it stays open (one fd, at
 *   most CS_WC_OPEN_MAX of them) and takes every write until the caller
 *   commits it, so N writes between two commits cost one copy and one new
 *   file, not N. It is never trusted: recovery deletes it, and the chunk
 *   is its last commit. cs_commit appends the trailer (gen + 1) to it, fsyncs it, renames it
 *   over SSSSSSSS, writes the record (dirty), fsyncs the folder and
 *   fdatasyncs the index. Three syncs, and they suffice: the content is
 *   durable before the name points at it (so the name never points at a
 *   torn file), the name is durable before commit returns, and the record
 *   saying "dirty, gen G" is durable before commit returns, so after any
 *   crash the index knows the chunk is dirty even if recovery trusts it
 *   without reading the file. cs_commit_file shares one index fdatasync.
 *
 * - A commit without sync (CS_C_NOSYNC) does the same steps with no sync,
 *   and marks the slot UNSYNCED (in memory only: its data may not be on
 *   disk). A rename is not ordered after the new file's data on every
 *   file system (ext4 without a journal), so when the content it replaces
 *   is DIRTY and may be durable (committed and not UNSYNCED: a synced
 *   commit, cs_sync_file with an unchanged generation, or unknown after
 *   an open or an adoption), the commit fdatasyncs the working copy
 *   before the rename: a power cut then leaves the old durable file or
 *   the new whole one, never the name on a torn file in place of bytes a
 *   close or fsync acknowledged. Over clean or UNSYNCED content it syncs
 *   nothing: a torn new file fails its CRC and is dropped, and what it
 *   replaced was either the server's (refetched) or never acknowledged.
 *
 * - Removing a chunk (cull, invalidate, checksum failure) unlinks the file
 *   first and frees the record after. A crash between leaves a record whose
 *   file is missing, which recovery (or the first read) drops.
 *
 * - Clean flag: cs_open writes clean = 0 and fdatasyncs the index before it
 *   changes anything else; cs_close writes pending records, syncfs()es the
 *   cache's file system and only then writes clean = 1. A clean open trusts
 *   the index as it stands (read it, check record CRCs, build the tables:
 *   no directory scan). An unclean open scans the 256 folders with readdir
 *   only, never reading contents: tmp and wip files are deleted, records
 *   whose file is missing are dropped, files without a record are adopted
 *   from their trailer (one 64-byte pread each), records that fail their
 *   CRC are redone from the trailer. A missing, truncated or torn index
 *   (bad header CRC) is rebuilt from every file's trailer, written as
 *   index.tmp, fsynced and renamed into place: never a cache wipe. A wrong
 *   magic or a newer version is refused (-EINVAL, -ENOTSUP), nothing
 *   changed: that file is not ours to rewrite.
 *
 * - Contents are verified lazily: the first cs_read of a chunk after
 *   cs_open reads the whole file and checks trailer and CRC (cs_verify_buf
 *   in cs_recover.c); a mismatch drops the chunk and returns -EIO. So a
 *   crash costs a folder scan, not a read of the whole cache.
 *
 * - What survives what: process death (kill -9) loses nothing committed
 *   and nothing put, since the page cache holds every write; uncommitted
 *   working copies (every write since the last commit) are lost by design. A power cut keeps committed dirty
 *   chunks and DIRTY puts (fsynced); clean chunks put since the last
 *   cs_close or cs_sync may vanish or fail their checksum and be refetched.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cs_i.h"

cs_fault_fn cs_fault_hook;

static void
put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void
put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static uint32_t
get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t
get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

/*
 * Header layout (128 bytes):
 *   0 magic[8] "CAIRNCSI"    8 version      12 header size (128)
 *  16 record size (64)       20 chunk size  24 slot count (u64)
 *  32 max bytes (u64)        40 max files (u64)
 *  48 cull pct (u8) 49 run pct (u8) 50 stop pct (u8) 51 zero
 *  52 clean flag (u32)       56 last-use clock (u64)
 *  64 creation time (u64, unix seconds)     72 open count (u64)
 *  80..123 zero              124 CRC32C of bytes 0..123
 */
void
cs_hdr_encode(const struct cs_hdr *h, uint8_t out[CS_HDR_SIZE])
{
	memset(out, 0, CS_HDR_SIZE);
	memcpy(out, CS_MAGIC, 8);
	put32(out + 8, h->version);
	put32(out + 12, CS_HDR_SIZE);
	put32(out + 16, CS_REC_SIZE);
	put32(out + 20, h->chunk_size);
	put64(out + 24, h->slot_count);
	put64(out + 32, h->max_bytes);
	put64(out + 40, h->max_files);
	out[48] = h->cull_pct;
	out[49] = h->run_pct;
	out[50] = h->stop_pct;
	put32(out + 52, h->clean);
	put64(out + 56, h->clock);
	put64(out + 64, h->create_time);
	put64(out + 72, h->open_count);
	put32(out + 124, crc32c(0, out, 124));
}

/*
 * @return 0; -ENODATA (too short or all zero: no header was ever written);
 * -EINVAL (not our magic); -ENOTSUP (a newer version); -EBADMSG (torn:
 * CRC or fields wrong).
 */
int
cs_hdr_decode(const uint8_t *in, size_t n, struct cs_hdr *h)
{
	static const uint8_t zero[8];

	if (n < CS_HDR_SIZE)
		return n < 8 || !memcmp(in, zero, 8) ? -ENODATA : -EBADMSG;
	if (!memcmp(in, zero, 8))
		return -ENODATA;
	if (memcmp(in, CS_MAGIC, 8))
		return -EINVAL;
	h->version = get32(in + 8);
	if (get32(in + 124) != crc32c(0, in, 124))
		return h->version > CS_VERSION ? -ENOTSUP : -EBADMSG;
	if (h->version > CS_VERSION)
		return -ENOTSUP;
	if (h->version != CS_VERSION || get32(in + 12) != CS_HDR_SIZE ||
	    get32(in + 16) != CS_REC_SIZE)
		return -EBADMSG;
	h->chunk_size = get32(in + 20);
	h->slot_count = get64(in + 24);
	h->max_bytes = get64(in + 32);
	h->max_files = get64(in + 40);
	h->cull_pct = in[48];
	h->run_pct = in[49];
	h->stop_pct = in[50];
	h->clean = get32(in + 52);
	h->clock = get64(in + 56);
	h->create_time = get64(in + 64);
	h->open_count = get64(in + 72);
	if (!cs_valid_chunk_size(h->chunk_size) || h->slot_count > CS_MAX_SLOTS)
		return -EBADMSG;
	return 0;
}

/*
 * Record layout (64 bytes):
 *   0 volume (u32)  4 fid[16]  20 length (u32)  24 chunk number (u64)
 *  32 data version (u64)       40 last-use stamp (u64)
 *  48 content CRC32C (u32)     52 generation (u32)
 *  56 flags (u16: 1 valid, 2 dirty, 4 pinned)   58 zero (u16)
 *  60 CRC32C of bytes 0..59
 */
void
cs_rec_encode(const struct cs_rec *r, uint8_t out[CS_REC_SIZE])
{
	memset(out, 0, CS_REC_SIZE);
	put32(out, r->key.vol);
	memcpy(out + 4, r->key.fid, 16);
	put32(out + 20, r->len);
	put64(out + 24, r->key.chunk);
	put64(out + 32, r->dv);
	put64(out + 40, r->last_use);
	put32(out + 48, r->crc);
	put32(out + 52, r->gen);
	out[56] = (uint8_t)(r->flags & CS_RF_MASK);
	put32(out + 60, crc32c(0, out, 60));
}

/* @return 0 a record (free or valid), 1 all zero (free), -EBADMSG torn. */
int
cs_rec_decode(const uint8_t in[CS_REC_SIZE], struct cs_rec *r)
{
	static const uint8_t zero[CS_REC_SIZE];

	memset(r, 0, sizeof(*r));
	if (!memcmp(in, zero, CS_REC_SIZE))
		return 1;
	if (get32(in + 60) != crc32c(0, in, 60))
		return -EBADMSG;
	r->key.vol = get32(in);
	memcpy(r->key.fid, in + 4, 16);
	r->len = get32(in + 20);
	r->key.chunk = get64(in + 24);
	r->dv = get64(in + 32);
	r->last_use = get64(in + 40);
	r->crc = get32(in + 48);
	r->gen = get32(in + 52);
	r->flags = in[56];
	if ((r->flags & ~CS_RF_MASK) || in[57] || in[58] || in[59] ||
	    r->len > CS_CHUNK_MAX)
		return -EBADMSG;
	return 0;
}

/*
 * Trailer layout (64 bytes at offset = length):
 *   0 magic "CSTR"  4 volume  8 fid[16]  24 chunk number (u64)
 *  32 data version (u64)      40 length  44 content CRC32C
 *  48 generation   52 slot    56 flags (u16: 2 dirty, 4 pinned)
 *  58 log2 chunk size (u8)    59 trailer version (1)
 *  60 CRC32C of bytes 0..59
 */
void
cs_trl_encode(const struct cs_trl *t, uint8_t out[CS_TRL_SIZE])
{
	memset(out, 0, CS_TRL_SIZE);
	put32(out, CS_TRL_MAGIC);
	put32(out + 4, t->key.vol);
	memcpy(out + 8, t->key.fid, 16);
	put64(out + 24, t->key.chunk);
	put64(out + 32, t->dv);
	put32(out + 40, t->len);
	put32(out + 44, t->crc);
	put32(out + 48, t->gen);
	put32(out + 52, t->slot);
	out[56] = (uint8_t)(t->flags & (CS_RF_DIRTY | CS_RF_PINNED));
	out[58] = t->shift;
	out[59] = CS_TRL_VERSION;
	put32(out + 60, crc32c(0, out, 60));
}

/* @return 0 or -EBADMSG. */
int
cs_trl_decode(const uint8_t in[CS_TRL_SIZE], struct cs_trl *t)
{
	memset(t, 0, sizeof(*t));
	if (get32(in) != CS_TRL_MAGIC || get32(in + 60) != crc32c(0, in, 60))
		return -EBADMSG;
	t->key.vol = get32(in + 4);
	memcpy(t->key.fid, in + 8, 16);
	t->key.chunk = get64(in + 24);
	t->dv = get64(in + 32);
	t->len = get32(in + 40);
	t->crc = get32(in + 44);
	t->gen = get32(in + 48);
	t->slot = get32(in + 52);
	t->flags = in[56];
	t->shift = in[58];
	if (in[59] != CS_TRL_VERSION ||
	    (t->flags & ~(CS_RF_DIRTY | CS_RF_PINNED)) || in[57] ||
	    t->shift < 16 || t->shift > 22 || t->len > (1u << t->shift))
		return -EBADMSG;
	return 0;
}

void
cs_chunk_path(char out[CS_PATH_MAX], uint32_t slot, const char *suffix)
{
	snprintf(out, CS_PATH_MAX, CS_CHUNKS_DIR "/%02x/%08x%s", slot & 0xff,
		 slot, suffix ? suffix : "");
}

/*
 * Parse a name found in chunks/XX/: 8 lower-case hex digits, optionally
 * followed by ".tmp" or ".wip" (returned in *suffix, "" for a chunk).
 * @return 0, or -EINVAL for a name that is not ours.
 */
int
cs_parse_chunk_name(const char *name, uint32_t *slot, const char **suffix)
{
	uint32_t v = 0;
	int i;

	for (i = 0; i < 8; i++) {
		char c = name[i];

		if (c >= '0' && c <= '9')
			v = v << 4 | (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v << 4 | (uint32_t)(c - 'a' + 10);
		else
			return -EINVAL;
	}
	if (name[8] && strcmp(name + 8, CS_TMP_SUFFIX) &&
	    strcmp(name + 8, CS_WIP_SUFFIX))
		return -EINVAL;
	if (v >= CS_MAX_SLOTS)
		return -EINVAL;
	*slot = v;
	*suffix = name + 8;
	return 0;
}

int
cs_valid_chunk_size(uint32_t sz)
{
	return sz >= CS_CHUNK_MIN && sz <= CS_CHUNK_MAX && !(sz & (sz - 1));
}

/* Thresholds must satisfy stop <= cull <= run < 100 (after defaults). */
int
cs_check_limits(const struct cs_limits *l)
{
	if (l->stop_pct > l->cull_pct || l->cull_pct > l->run_pct ||
	    l->run_pct >= 100 || l->max_bytes == 0 || l->max_files == 0)
		return -EINVAL;
	return 0;
}

void
cs_key_str(char *out, size_t n, const struct cs_key *k)
{
	char hex[33];

	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", k->fid[i]);
	snprintf(out, n, "vol %u, fid %s, chunk %llu", k->vol, hex,
		 (unsigned long long)k->chunk);
}

void
cs_logf(cs_log_fn fn, void *arg, int level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!fn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fn(arg, level, msg);
}

static int
fault(enum cs_fault_op op, const char *what)
{
	cs_fault_fn hook = cs_fault_hook;

	return hook ? hook(op, what) : 0;
}

int
cs_io_open(int dirfd, const char *path, int flags, mode_t mode)
{
	int fd, rc;

	if ((flags & O_CREAT) && (rc = fault(CS_FOP_OPEN, path)) < 0)
		return rc;
	fd = openat(dirfd, path, flags | O_CLOEXEC, mode);
	return fd < 0 ? -errno : fd;
}

/* Write all of @buf at @off; a write that makes no progress is -ENOSPC. */
int
cs_io_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	const char *p = buf;
	int rc;

	if ((rc = fault(CS_FOP_PWRITE, "pwrite")) < 0)
		return rc;
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -ENOSPC;
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

/* Read up to @n bytes at @off. @return bytes read (short only at EOF). */
ssize_t
cs_io_pread(int fd, void *buf, size_t n, off_t off)
{
	char *p = buf;
	size_t got = 0;

	while (got < n) {
		ssize_t r = pread(fd, p + got, n - got, off + (off_t)got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

int
cs_io_fsync(int fd)
{
	int rc = fault(CS_FOP_FSYNC, "fsync");

	if (rc < 0)
		return rc;
	return fsync(fd) < 0 ? -errno : 0;
}

int
cs_io_fdatasync(int fd)
{
	int rc = fault(CS_FOP_FSYNC, "fdatasync");

	if (rc < 0)
		return rc;
	return fdatasync(fd) < 0 ? -errno : 0;
}

void
cs_io_writeout(int fd)
{
	(void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}

int
cs_io_rename(int dirfd, const char *from, const char *to)
{
	int rc = fault(CS_FOP_RENAME, to);

	if (rc < 0)
		return rc;
	return renameat(dirfd, from, dirfd, to) < 0 ? -errno : 0;
}

int
cs_io_ftruncate(int fd, off_t len)
{
	int rc = fault(CS_FOP_FTRUNCATE, "ftruncate");

	if (rc < 0)
		return rc;
	return ftruncate(fd, len) < 0 ? -errno : 0;
}

/* Unlink @path; a file already gone is not an error. */
int
cs_io_unlink(int dirfd, const char *path)
{
	int rc = fault(CS_FOP_UNLINK, path);

	if (rc < 0)
		return rc;
	return unlinkat(dirfd, path, 0) < 0 && errno != ENOENT ? -errno : 0;
}

int
cs_io_mkdir(int dirfd, const char *path, mode_t mode)
{
	int rc = fault(CS_FOP_MKDIR, path);

	if (rc < 0)
		return rc;
	return mkdirat(dirfd, path, mode) < 0 ? -errno : 0;
}

/* fsync the folder @path (relative to @dirfd; "." for dirfd itself). */
int
cs_io_fsync_dir(int dirfd, const char *path)
{
	int fd, rc;

	fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = cs_io_fsync(fd);
	close(fd);
	return rc;
}
