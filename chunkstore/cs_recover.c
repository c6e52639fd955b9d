/*
 * cs_recover.c - loading the index, recovery after a crash, and the
 * offline check and repair behind cairn-fsck.
 *
 * One pipeline serves both: load (header and records) -> scan (readdir of
 * the 256 chunk folders) -> reconcile (each slot's record against its file)
 * -> build (hash tables, free list, counters). cs_open runs it "fast" (only
 * files whose record cannot be trusted are opened, for their 64-byte
 * trailer) and only when the clean flag is missing; cs_check runs it "deep"
 * (every file read and checksummed) and changes nothing unless asked to
 * repair. The crash logic it relies on is described in cs_format.c.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "cs_i.h"

static void finding(struct cs_store *cs, struct cs_rctx *rc,
		    enum cs_finding kind, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
finding(struct cs_store *cs, struct cs_rctx *rc, enum cs_finding kind,
	const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (rc->res) {
		if (kind == CS_FIND_ERROR)
			rc->res->errors++;
		else
			rc->res->notes++;
	}
	if (rc->report)
		rc->report(rc->report_arg, kind, msg);
	else
		cs_log(cs, kind == CS_FIND_ERROR ? LOG_WARNING : LOG_INFO,
		       "cache '%s': %s", cs->dir, msg);
}

static void
set_chunk_size(struct cs_store *cs, uint32_t sz)
{
	cs->chunk_size = sz;
	cs->shift = 0;
	while ((1u << cs->shift) < sz)
		cs->shift++;
}

static int
grow_rctx(struct cs_rctx *rc, uint32_t n)
{
	uint32_t cap = rc->ncap ? rc->ncap : 1024;
	uint8_t *b, *p;

	if (n <= rc->ncap)
		return 0;
	while (cap < n)
		cap = cap > CS_MAX_SLOTS / 2 ? CS_MAX_SLOTS : cap * 2;
	b = realloc(rc->bad, cap);
	if (!b)
		return -ENOMEM;
	rc->bad = b;
	p = realloc(rc->present, cap);
	if (!p)
		return -ENOMEM;
	rc->present = p;
	memset(rc->bad + rc->ncap, 0, cap - rc->ncap);
	memset(rc->present + rc->ncap, 0, cap - rc->ncap);
	rc->ncap = cap;
	return 0;
}

void
cs_rctx_release(struct cs_rctx *rc)
{
	free(rc->bad);
	free(rc->present);
	rc->bad = rc->present = NULL;
	rc->ncap = 0;
}

static void
use_defaults(struct cs_store *cs, struct cs_rctx *rc)
{
	cs_default_limits(&cs->lim, NULL);
	set_chunk_size(cs, 0); /* decided by the first good trailer */
	rc->full = 1;
}

/*
 * Read the header and records of the index into cs->slots. Records are
 * not entered in the tables yet (cs_build does that after recovery).
 * @return 0 (rc->full / rc->unclean say what recovery is needed), or
 * -ENOENT (no cache), -EINVAL (not ours), -ENOTSUP, another -errno.
 */
int
cs_load(struct cs_store *cs, struct cs_rctx *rc, int oflags)
{
	uint8_t hb[CS_HDR_SIZE], *blk = NULL;
	struct cs_hdr h;
	struct stat st;
	uint64_t nrec;
	ssize_t got;
	int r;

	cs->idxfd = openat(cs->dirfd, CS_INDEX_NAME, oflags | O_CLOEXEC);
	if (cs->idxfd < 0) {
		struct stat cst;

		r = -errno;
		if (r != -ENOENT) {
			cs_log(cs, LOG_ERR,
			       "cannot open index of cache '%s': %s", cs->dir,
			       strerror(-r));
			return r;
		}
		if (fstatat(cs->dirfd, CS_CHUNKS_DIR, &cst, 0) < 0)
			return -ENOENT;
		finding(cs, rc, CS_FIND_ERROR,
			"index file missing; rebuilding it from the chunk "
			"files' tags");
		use_defaults(cs, rc);
		return 0;
	}
	rc->rdonly = (oflags & O_ACCMODE) == O_RDONLY;
	if (fstat(cs->idxfd, &st) < 0)
		return -errno;
	got = cs_io_pread(cs->idxfd, hb, sizeof(hb), 0);
	if (got < 0)
		return (int)got;
	r = cs_hdr_decode(hb, (size_t)got, &h);
	if (r == -EINVAL) {
		cs_log(cs, LOG_ERR,
		       "'%s/" CS_INDEX_NAME
		       "' is not a cairn cache index (bad magic)",
		       cs->dir);
		return r;
	}
	if (r == -ENOTSUP) {
		cs_log(cs, LOG_ERR,
		       "'%s/" CS_INDEX_NAME
		       "' has format version %u; this build reads version %u",
		       cs->dir, h.version, CS_VERSION);
		return r;
	}
	if (r < 0) {
		finding(cs, rc, CS_FIND_ERROR,
			"index header %s; rebuilding the index from the chunk "
			"files' tags",
			r == -ENODATA ? "missing or truncated" : "damaged");
		use_defaults(cs, rc);
		return 0;
	}
	set_chunk_size(cs, h.chunk_size);
	cs->lim.max_bytes = h.max_bytes;
	cs->lim.max_files = h.max_files;
	cs->lim.cull_pct = h.cull_pct;
	cs->lim.run_pct = h.run_pct;
	cs->lim.stop_pct = h.stop_pct;
	if (cs_check_limits(&cs->lim) < 0) {
		finding(cs, rc, CS_FIND_ERROR,
			"limits in the index header are out of order; using "
			"the defaults");
		cs_default_limits(&cs->lim, NULL);
		rc->unclean = 1;
	}
	cs->clock = h.clock;
	cs->create_time = h.create_time;
	cs->open_count = h.open_count;
	if (!h.clean) {
		finding(cs, rc, CS_FIND_NOTE,
			"cache was not shut down cleanly");
		rc->unclean = 1;
	}
	nrec = st.st_size > CS_HDR_SIZE
		       ? (uint64_t)(st.st_size - CS_HDR_SIZE) / CS_REC_SIZE
		       : 0;
	if (st.st_size > CS_HDR_SIZE &&
	    (st.st_size - CS_HDR_SIZE) % CS_REC_SIZE) {
		finding(cs, rc, CS_FIND_NOTE, "index ends in a partial record");
		rc->unclean = 1;
	}
	if (nrec < h.slot_count && !rc->unclean) {
		finding(cs, rc, CS_FIND_ERROR,
			"index is shorter than its header says (%llu of %llu "
			"records)",
			(unsigned long long)nrec,
			(unsigned long long)h.slot_count);
		rc->unclean = 1;
	}
	if (nrec > CS_MAX_SLOTS)
		nrec = CS_MAX_SLOTS;
	if ((r = cs_slot_grow(cs, (uint32_t)nrec)) < 0 ||
	    (r = grow_rctx(rc, (uint32_t)nrec)) < 0)
		return r;
	blk = malloc(1024 * CS_REC_SIZE);
	if (!blk)
		return -ENOMEM;
	for (uint64_t i = 0; i < nrec;) {
		uint64_t n = nrec - i < 1024 ? nrec - i : 1024;

		got = cs_io_pread(cs->idxfd, blk, n * CS_REC_SIZE,
				  CS_HDR_SIZE + (off_t)i * CS_REC_SIZE);
		if (got < 0) {
			free(blk);
			return (int)got;
		}
		n = (uint64_t)got / CS_REC_SIZE;
		if (!n)
			break;
		for (uint64_t j = 0; j < n; j++, i++) {
			struct cs_rec rec;
			struct cs_slot *s = &cs->slots[i];

			r = cs_rec_decode(blk + j * CS_REC_SIZE, &rec);
			if (r == 0 && (rec.flags & CS_RF_VALID) &&
			    rec.len > cs->chunk_size)
				r = -EBADMSG;
			if (r < 0) {
				rc->bad[i] = 1;
				rc->unclean = 1;
				continue;
			}
			cs_slot_from_rec(s, &rec);
		}
	}
	free(blk);
	return 0;
}

struct found {
	uint32_t slot;
	uint8_t kind; /* 1 chunk, 2 tmp, 4 wip */
};

/*
 * Scan chunks/00..ff with readdir only (no stat, no reads) and note in
 * rc->present which slots have a chunk, tmp or wip file. Names that are
 * not ours, or in the wrong folder, are reported and left alone.
 */
int
cs_scan(struct cs_store *cs, struct cs_rctx *rc)
{
	struct found *v = NULL;
	size_t n = 0, cap = 0;
	uint64_t bound;
	int r = 0;

	for (int d = 0; d < CS_NDIRS && !r; d++) {
		char sub[16];
		struct dirent *de;
		DIR *dir;
		int fd;

		snprintf(sub, sizeof(sub), CS_CHUNKS_DIR "/%02x", d);
		fd = openat(cs->dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT) {
			finding(cs, rc, CS_FIND_ERROR, "folder '%s' missing%s",
				sub, rc->apply ? "; recreated" : "");
			if (rc->apply) {
				r = cs_io_mkdir(cs->dirfd, CS_CHUNKS_DIR, 0700);
				if (r == 0 || r == -EEXIST)
					r = cs_io_mkdir(cs->dirfd, sub, 0700);
				if (r == -EEXIST)
					r = 0;
			}
			continue;
		}
		if (fd < 0 || !(dir = fdopendir(fd))) {
			r = -errno;
			if (fd >= 0)
				close(fd);
			cs_log(cs, LOG_ERR,
			       "cannot read folder '%s' of cache '%s': %s", sub,
			       cs->dir, strerror(-r));
			break;
		}
		while ((de = readdir(dir))) {
			const char *suffix;
			uint32_t slot;

			if (de->d_name[0] == '.' &&
			    (!de->d_name[1] ||
			     (de->d_name[1] == '.' && !de->d_name[2])))
				continue;
			if (cs_parse_chunk_name(de->d_name, &slot, &suffix) <
				    0 ||
			    (slot & 0xff) != (uint32_t)d) {
				finding(cs, rc, CS_FIND_NOTE,
					"unexpected file '%s/%s' ignored", sub,
					de->d_name);
				continue;
			}
			if (n == cap) {
				struct found *nv;

				cap = cap ? cap * 2 : 4096;
				nv = realloc(v, cap * sizeof(*nv));
				if (!nv) {
					r = -ENOMEM;
					break;
				}
				v = nv;
			}
			v[n].slot = slot;
			v[n].kind = !*suffix			     ? 1
				    : !strcmp(suffix, CS_TMP_SUFFIX) ? 2
								     : 4;
			n++;
		}
		closedir(dir);
	}
	/* Slot numbers come from names on disk: bound them by what this
	 * cache could plausibly have, so a hostile name cannot make us
	 * allocate gigabytes. */
	bound = (uint64_t)cs->nslots + 4 * (uint64_t)n + cs->lim.max_files +
		65536;
	for (size_t i = 0; i < n && !r; i++) {
		char path[CS_PATH_MAX];

		if (v[i].slot >= bound) {
			cs_chunk_path(path, v[i].slot, NULL);
			finding(cs, rc, CS_FIND_NOTE,
				"file '%s' has an implausible slot number; "
				"ignored",
				path);
			continue;
		}
		if (v[i].slot >= cs->nslots &&
		    ((r = cs_slot_grow(cs, v[i].slot + 1)) < 0))
			break;
		if ((r = grow_rctx(rc, cs->nslots)) < 0)
			break;
		rc->present[v[i].slot] |= v[i].kind;
	}
	free(v);
	if (!r)
		r = grow_rctx(rc, cs->nslots);
	return r;
}

/*
 * Judge a chunk file's bytes @file[0..@size) for slot @slot against its
 * record @rec (NULL if the record is free or damaged). @shift 0 accepts any
 * chunk size.
 * @return 0 good and the record stands (trailer in *out); 1 good, adopt
 * the trailer *out (no record, or the file is newer); 2 the trailer is torn
 * but the content matches the record (*out rebuilt from it); -EIO content
 * fails its checksum; -EBADMSG no usable tag.
 */
int
cs_verify_buf(const uint8_t *file, size_t size, uint32_t slot, uint8_t shift,
	      const struct cs_rec *rec, struct cs_trl *out)
{
	struct cs_trl t;

	if (size >= CS_TRL_SIZE &&
	    cs_trl_decode(file + size - CS_TRL_SIZE, &t) == 0 &&
	    t.slot == slot && (size_t)t.len + CS_TRL_SIZE == size &&
	    (!shift || t.shift == shift)) {
		if (crc32c(0, file, t.len) != t.crc)
			return -EIO;
		*out = t;
		if (rec && rec->gen == t.gen && rec->len == t.len &&
		    rec->crc == t.crc &&
		    !memcmp(&rec->key, &t.key, sizeof(t.key)))
			return 0;
		return 1;
	}
	if (rec && (size_t)rec->len + CS_TRL_SIZE == size &&
	    crc32c(0, file, rec->len) == rec->crc) {
		memset(out, 0, sizeof(*out));
		out->key = rec->key;
		out->dv = rec->dv;
		out->len = rec->len;
		out->crc = rec->crc;
		out->gen = rec->gen;
		out->slot = slot;
		out->flags = rec->flags & (CS_RF_DIRTY | CS_RF_PINNED);
		out->shift = shift;
		return 2;
	}
	return rec && size >= CS_TRL_SIZE ? -EIO : -EBADMSG;
}

/* Read just the trailer of chunk file @slot. @return 0 or -EBADMSG. */
static int
read_trailer(struct cs_store *cs, uint32_t slot, struct cs_trl *t)
{
	uint8_t buf[CS_TRL_SIZE];
	char path[CS_PATH_MAX];
	struct stat st;
	int fd, r = -EBADMSG;

	cs_chunk_path(path, slot, NULL);
	fd = openat(cs->dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) == 0 && st.st_size >= CS_TRL_SIZE &&
	    cs_io_pread(fd, buf, sizeof(buf), st.st_size - CS_TRL_SIZE) ==
		    CS_TRL_SIZE &&
	    cs_trl_decode(buf, t) == 0 && t->slot == slot &&
	    (off_t)t->len + CS_TRL_SIZE == st.st_size &&
	    (!cs->shift || t->shift == cs->shift))
		r = 0;
	close(fd);
	return r;
}

/* Read the whole chunk file of @slot into @buf (CS_CHUNK_MAX + trailer). */
static ssize_t
read_file(struct cs_store *cs, uint32_t slot, uint8_t *buf)
{
	char path[CS_PATH_MAX];
	struct stat st;
	ssize_t r;
	int fd;

	cs_chunk_path(path, slot, NULL);
	fd = openat(cs->dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
	} else if (st.st_size > (off_t)CS_CHUNK_MAX + CS_TRL_SIZE) {
		r = -EFBIG;
	} else {
		r = cs_io_pread(fd, buf, (size_t)st.st_size, 0);
	}
	close(fd);
	return r;
}

static void
describe(char *out, size_t n, const struct cs_slot *s, uint32_t slot)
{
	char path[CS_PATH_MAX], key[96];
	struct cs_key k;

	cs_chunk_path(path, slot, NULL);
	cs_slot_key(s, &k);
	cs_key_str(key, sizeof(key), &k);
	snprintf(out, n, "chunk %u (%s, %s)", slot, path, key);
}

static void
rm_file(struct cs_store *cs, struct cs_rctx *rc, uint32_t slot,
	const char *suffix)
{
	char path[CS_PATH_MAX];
	int r;

	if (!rc->apply)
		return;
	cs_chunk_path(path, slot, suffix);
	if ((r = cs_io_unlink(cs->dirfd, path)) < 0)
		cs_log(cs, LOG_WARNING, "cannot remove '%s/%s': %s", cs->dir,
		       path, strerror(-r));
}

static void
adopt(struct cs_store *cs, uint32_t slot, const struct cs_trl *t)
{
	struct cs_slot *s = &cs->slots[slot];

	s->vol = t->key.vol;
	memcpy(s->fid, t->key.fid, 16);
	s->chunk = t->key.chunk;
	s->dv = t->dv;
	s->len = t->len;
	s->crc = t->crc;
	s->gen = t->gen;
	s->flags = (uint16_t)(CS_SF_COMMITTED | CS_SF_RECDIRTY |
			      (t->flags & CS_RF_DIRTY ? CS_SF_DIRTY : 0) |
			      (t->flags & CS_RF_PINNED ? CS_SF_PINNED : 0));
	if (!cs->shift)
		set_chunk_size(cs, 1u << t->shift);
}

static void
free_slot_state(struct cs_slot *s)
{
	uint32_t gen = s->gen;

	memset(s, 0, sizeof(*s));
	s->gen = gen;
	s->fnext = s->fprev = CS_NONE;
	s->flags = CS_SF_RECDIRTY;
}

/*
 * Judge every slot: its record (if sound) against its file (if present).
 * Fast mode opens a file only when its record cannot be trusted; deep mode
 * reads and checksums every file.
 */
int
cs_reconcile(struct cs_store *cs, struct cs_rctx *rc)
{
	uint8_t *buf = NULL;
	char what[200], path[CS_PATH_MAX];
	int r = 0;

	if (rc->deep && !(buf = malloc(CS_CHUNK_MAX + CS_TRL_SIZE)))
		return -ENOMEM;
	for (uint32_t slot = 0; slot < cs->nslots; slot++) {
		struct cs_slot *s = &cs->slots[slot];
		uint8_t p = rc->present[slot];
		int bad = rc->bad[slot], committed = s->flags & CS_SF_COMMITTED;
		struct cs_rec rec;
		struct cs_trl t;
		int v;

		if (p & 2) {
			cs_chunk_path(path, slot, CS_TMP_SUFFIX);
			finding(cs, rc, CS_FIND_NOTE,
				"unfinished chunk file '%s'%s", path,
				rc->apply ? " removed" : "");
			rm_file(cs, rc, slot, CS_TMP_SUFFIX);
		}
		if (p & 4) {
			cs_chunk_path(path, slot, CS_WIP_SUFFIX);
			finding(cs, rc, CS_FIND_NOTE,
				"uncommitted working copy '%s'%s", path,
				rc->apply ? " discarded" : "");
			rm_file(cs, rc, slot, CS_WIP_SUFFIX);
		}
		if (!(p & 1)) {
			if (bad) {
				finding(cs, rc, CS_FIND_ERROR,
					"index record %u damaged (no chunk "
					"file); dropped",
					slot);
				free_slot_state(s);
			} else if (committed) {
				describe(what, sizeof(what), s, slot);
				if (s->flags & CS_SF_DIRTY)
					finding(cs, rc, CS_FIND_ERROR,
						"%s: dirty chunk's file "
						"missing, its data is lost; "
						"record dropped",
						what);
				else
					finding(cs, rc, CS_FIND_NOTE,
						"%s: file missing; record "
						"dropped",
						what);
				free_slot_state(s);
			}
			continue;
		}
		if (committed && !bad && !rc->deep)
			continue;
		if (rc->res)
			rc->res->files++;
		if (committed && !bad)
			cs_slot_rec(cs, slot, &rec);
		if (rc->deep) {
			ssize_t got = read_file(cs, slot, buf);

			if (got >= 0 && rc->res)
				rc->res->bytes += (uint64_t)got;
			v = got < 0 ? -EBADMSG
				    : cs_verify_buf(
					      buf, (size_t)got, slot, cs->shift,
					      committed && !bad ? &rec : NULL,
					      &t);
		} else {
			v = read_trailer(cs, slot, &t) == 0 ? 1 : -EBADMSG;
		}
		cs_chunk_path(path, slot, NULL);
		if (v < 0) {
			if (committed && !bad) {
				describe(what, sizeof(what), s, slot);
				finding(cs, rc, CS_FIND_ERROR, "%s: %s%s; %s",
					what,
					v == -EIO ? "checksum mismatch"
						  : "unreadable chunk file",
					s->flags & CS_SF_DIRTY
						? " (dirty data lost)"
						: "",
					rc->apply ? "dropped"
						  : "would be dropped");
			} else {
				finding(cs, rc, CS_FIND_ERROR,
					"chunk file '%s': %s; %s", path,
					v == -EIO ? "checksum mismatch"
						  : "no valid tag",
					rc->apply ? "removed"
						  : "would be removed");
			}
			rm_file(cs, rc, slot, NULL);
			free_slot_state(s);
			continue;
		}
		if (v == 0) {
			s->flags |= CS_SF_VERIFIED;
			continue;
		}
		if (v == 2) {
			describe(what, sizeof(what), s, slot);
			finding(cs, rc, CS_FIND_ERROR,
				"%s: damaged tag; %s from the index", what,
				rc->apply ? "rewritten" : "would be rewritten");
			if (rc->apply) {
				uint8_t tb[CS_TRL_SIZE];
				int fd = cs_io_open(cs->dirfd, path, O_WRONLY,
						    0);

				cs_trl_encode(&t, tb);
				if (fd < 0 ||
				    cs_io_pwrite(fd, tb, sizeof(tb), t.len) < 0)
					r = fd < 0 ? fd : -EIO;
				if (fd >= 0)
					close(fd);
				if (r < 0)
					break;
			}
			s->flags |= CS_SF_VERIFIED;
			continue;
		}
		/* v == 1: the trailer is the truth. */
		if (committed && !bad) {
			describe(what, sizeof(what), s, slot);
			finding(cs, rc, CS_FIND_NOTE,
				"%s: index record older than the file (gen %u, "
				"file gen %u); updated",
				what, s->gen, t.gen);
		} else if (bad) {
			finding(cs, rc, CS_FIND_ERROR,
				"index record %u damaged; rebuilt from the tag "
				"of '%s'",
				slot, path);
		} else if (!rc->full) {
			finding(cs, rc, CS_FIND_NOTE,
				"chunk file '%s' has no index record; adopted",
				path);
		}
		adopt(cs, slot, &t);
		if (rc->deep)
			s->flags |= CS_SF_VERIFIED;
	}
	free(buf);
	if (!cs->chunk_size)
		set_chunk_size(cs, rc->want_chunk_size &&
						   cs_valid_chunk_size(
							   rc->want_chunk_size)
					   ? rc->want_chunk_size
					   : CS_CHUNK_DEFAULT);
	return r;
}

/* Of two slots with one key, keep the dirty one, then the newer DV. */
static int
wins(const struct cs_slot *a, const struct cs_slot *b)
{
	if ((a->flags & CS_SF_DIRTY) != (b->flags & CS_SF_DIRTY))
		return !!(a->flags & CS_SF_DIRTY);
	return a->dv > b->dv;
}

/* Enter the committed slots in the tables; build the free list. */
int
cs_build(struct cs_store *cs, struct cs_rctx *rc)
{
	char what[200];
	int r;

	if ((r = cs_tables_init(cs, cs->nslots)) < 0)
		return r;
	for (uint32_t slot = 0; slot < cs->nslots; slot++) {
		struct cs_slot *s = &cs->slots[slot];
		uint32_t other = CS_NONE, loser;

		s->fnext = s->fprev = CS_NONE;
		s->wc = 0;
		if (!(s->flags & CS_SF_COMMITTED))
			continue;
		r = cs_key_insert_dup(cs, slot, &other);
		if (r == -EEXIST) {
			loser = wins(s, &cs->slots[other]) ? other : slot;
			describe(what, sizeof(what), &cs->slots[loser], loser);
			finding(cs, rc, CS_FIND_ERROR,
				"%s: same key as chunk %u; %s", what,
				loser == slot ? other : slot,
				rc->apply ? "dropped" : "would be dropped");
			rm_file(cs, rc, loser, NULL);
			if (loser == other) {
				cs_acct(cs, &cs->slots[other], -1);
				cs_key_remove(cs, other);
			}
			free_slot_state(&cs->slots[loser]);
			if (loser == slot)
				continue;
			r = cs_key_insert(cs, slot);
		}
		if (r < 0)
			return r;
		cs_acct(cs, s, 1);
		if (s->last_use > cs->clock)
			cs->clock = s->last_use;
	}
	for (uint32_t slot = cs->nslots; slot-- > 0;) {
		if (cs->slots[slot].flags & CS_SF_USED)
			continue;
		if (cs->nfree == cs->free_cap) {
			uint32_t cap = cs->free_cap ? cs->free_cap * 2 : 1024;
			uint32_t *n = realloc(cs->freel, cap * sizeof(*n));

			if (!n)
				return -ENOMEM;
			cs->freel = n;
			cs->free_cap = cap;
		}
		cs->freel[cs->nfree++] = slot;
	}
	cs->clock++;
	return 0;
}

/* Write every slot whose record on disk is out of date, in runs. */
int
cs_flush_recs(struct cs_store *cs)
{
	uint8_t *buf = NULL;
	uint32_t run = 0, start = 0;
	int r = 0;

	for (uint32_t i = 0; i <= cs->nslots && !r; i++) {
		int d = i < cs->nslots && (cs->slots[i].flags & CS_SF_RECDIRTY);

		if (d && run < 1024) {
			struct cs_rec rec;

			if (!buf && !(buf = malloc(1024 * CS_REC_SIZE)))
				return -ENOMEM;
			if (!run)
				start = i;
			cs_slot_rec(cs, i, &rec);
			cs_rec_encode(&rec, buf + run * CS_REC_SIZE);
			run++;
			continue;
		}
		if (run) {
			r = cs_io_pwrite(
				cs->idxfd, buf, (size_t)run * CS_REC_SIZE,
				CS_HDR_SIZE + (off_t)start * CS_REC_SIZE);
			if (!r)
				for (uint32_t j = start; j < start + run; j++)
					cs->slots[j].flags &=
						(uint16_t)~CS_SF_RECDIRTY;
			run = 0;
			if (d)
				i--; /* the run was full: take slot i again */
		}
	}
	free(buf);
	if (r < 0) {
		cs->io_error = 1;
		cs_log(cs, LOG_ERR,
		       "cannot write index records of cache '%s': %s", cs->dir,
		       strerror(-r));
	}
	return r;
}

/*
 * Write a whole new index as index.tmp, fsync it and rename it into place,
 * then use it as cs->idxfd. Used after a rebuild and by repair.
 */
int
cs_write_index_full(struct cs_store *cs, int clean)
{
	uint8_t *buf;
	int fd, r;

	buf = malloc(1024 * CS_REC_SIZE);
	if (!buf)
		return -ENOMEM;
	fd = cs_io_open(cs->dirfd, CS_INDEX_TMP, O_CREAT | O_TRUNC | O_RDWR,
			0600);
	if (fd < 0) {
		r = fd;
		goto out;
	}
	if (cs->idxfd >= 0)
		close(cs->idxfd);
	cs->idxfd = fd;
	if ((r = cs_write_hdr(cs, clean)) < 0)
		goto out_unlink;
	for (uint32_t i = 0; i < cs->nslots;) {
		uint32_t n = cs->nslots - i < 1024 ? cs->nslots - i : 1024;

		for (uint32_t j = 0; j < n; j++) {
			struct cs_rec rec;

			cs_slot_rec(cs, i + j, &rec);
			cs_rec_encode(&rec, buf + j * CS_REC_SIZE);
			cs->slots[i + j].flags &= (uint16_t)~CS_SF_RECDIRTY;
		}
		r = cs_io_pwrite(fd, buf, (size_t)n * CS_REC_SIZE,
				 CS_HDR_SIZE + (off_t)i * CS_REC_SIZE);
		if (r < 0)
			goto out_unlink;
		i += n;
	}
	if ((r = cs_io_fsync(fd)) < 0 ||
	    (r = cs_io_rename(cs->dirfd, CS_INDEX_TMP, CS_INDEX_NAME)) < 0 ||
	    (r = cs_io_fsync_dir(cs->dirfd, ".")) < 0)
		goto out_unlink;
	goto out;
out_unlink:
	unlinkat(cs->dirfd, CS_INDEX_TMP, 0);
out:
	if (r < 0) {
		cs->io_error = 1;
		cs_log(cs, LOG_ERR,
		       "cannot write a new index for cache '%s': %s", cs->dir,
		       strerror(-r));
	}
	free(buf);
	return r;
}

int
cs_check(const char *dir, unsigned flags, cs_report_fn report, void *arg,
	 struct cs_check_result *res, cs_log_fn log, void *log_arg)
{
	return cs_check_locked(dir, flags, report, arg, res, log, log_arg,
			       NULL, NULL);
}

int
cs_check_locked(const char *dir, unsigned flags, cs_report_fn report,
		void *arg, struct cs_check_result *res, cs_log_fn log,
		void *log_arg, void (*locked)(void *arg), void *locked_arg)
{
	struct cs_check_result dummy;
	struct cs_rctx rc = {0};
	struct cs_store *cs;
	int repair = !!(flags & CS_CHECK_REPAIR), r;

	if (!res)
		res = &dummy;
	memset(res, 0, sizeof(*res));
	if (!dir || (flags & ~(unsigned)CS_CHECK_REPAIR))
		return -EINVAL;
	cs = cs_store_new(dir, log, log_arg, 0);
	if (!cs)
		return -ENOMEM;
	rc.deep = 1;
	rc.apply = repair;
	rc.report = report;
	rc.report_arg = arg;
	rc.res = res;
	cs->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cs->dirfd < 0) {
		r = -errno;
		goto out;
	}
	if (flock(cs->dirfd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		cs_log(cs, LOG_ERR, "cache '%s' is in use by another process",
		       dir);
		goto out;
	}
	if ((r = cs_load(cs, &rc, repair ? O_RDWR : O_RDONLY)) < 0)
		goto out;
	res->clean = !rc.unclean && !rc.full;
	if ((r = cs_scan(cs, &rc)) < 0 || (r = cs_reconcile(cs, &rc)) < 0 ||
	    (r = cs_build(cs, &rc)) < 0)
		goto out;
	if (repair) {
		if ((r = cs_write_index_full(cs, 1)) < 0)
			goto out;
		res->fixed = res->errors;
	}
	res->records = cs->files_used;
	res->chunk_size = cs->chunk_size;
	/* Still under the flock of cs->dirfd (dropped by cs_store_free). */
	if (locked)
		locked(locked_arg);
out:
	cs_rctx_release(&rc);
	cs_store_free(cs);
	return r;
}
