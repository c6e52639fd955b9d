/*
 * tdb_damage.h - damage a tdb file the way a torn write or a bad disk
 * would, for the tests of every tdb user (test_tdbw, test_rlog,
 * test_cm_vc, test_vol_store): all of them must report it with the errno
 * common/tdbw.h documents.
 */
#ifndef CAIRN_TESTS_TDB_DAMAGE_H
#define CAIRN_TESTS_TDB_DAMAGE_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tdb.h>

/* tdb's record header (struct tdb_record in its tdb_private.h): next,
 * rec_len, key_len, data_len, full_hash, magic, all 32-bit in host order,
 * then the key. A live record's magic is TDB_MAGIC. */
#define TDB_DAMAGE_MAGIC 0x26011999u

static inline uint32_t
tdb_damage_u32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

/*
 * Zero the magic of the live record whose key is the @klen bytes at @key,
 * so tdb reports TDB_ERR_CORRUPT for every lookup that walks that hash
 * chain. @return 0 if the record was found and smashed, -1 if not.
 */
static inline int
tdb_damage_record(const char *path, const void *key, size_t klen)
{
	struct stat st;
	uint8_t *buf = NULL;
	int fd = open(path, O_RDWR), rc = -1;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || st.st_size < 32)
		goto out;
	buf = malloc((size_t)st.st_size);
	if (!buf || pread(fd, buf, (size_t)st.st_size, 0) != st.st_size)
		goto out;
	for (off_t i = 24; i + (off_t)klen <= st.st_size; i++) {
		if (memcmp(buf + i, key, klen) ||
		    tdb_damage_u32(buf + i - 4) != TDB_DAMAGE_MAGIC ||
		    tdb_damage_u32(buf + i - 16) != klen)
			continue;
		rc = pwrite(fd, "\0\0\0\0", 4, i - 4) == 4 ? 0 : -1;
		break;
	}
out:
	free(buf);
	close(fd);
	return rc;
}

/*
 * Structural damage (tdb's layout rather than one record's header), as a
 * killed tdb_allocate() or a hostile file leaves it. tdb's layout, from
 * its tdb_private.h: a 168-byte header (the hash size at offset 36), the
 * free-list head and one u32 chain head per hash bucket, then records one
 * after the other, each 24 bytes of header (next, rec_len, key_len,
 * data_len, full_hash, magic), key, value, padding and a u32 tailer (the
 * record's whole length) in its last 4 bytes.
 */
#define TDB_DAMAGE_FREE_MAGIC 0xd9fee666u

static inline void
tdb_damage_put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static inline uint8_t *
tdb_damage_load(const char *path, size_t *n)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || st.st_size < 200 ||
	    !(buf = malloc((size_t)st.st_size))) {
		close(fd);
		return NULL;
	}
	if (pread(fd, buf, (size_t)st.st_size, 0) != st.st_size) {
		free(buf);
		buf = NULL;
	}
	close(fd);
	*n = (size_t)st.st_size;
	return buf;
}

static inline int
tdb_damage_save(const char *path, uint8_t *buf, size_t n)
{
	int fd = open(path, O_WRONLY), rc;

	if (fd < 0) {
		free(buf);
		return -1;
	}
	rc = pwrite(fd, buf, n, 0) == (ssize_t)n ? 0 : -1;
	close(fd);
	free(buf);
	return rc;
}

/* The offset of the first record. */
static inline size_t
tdb_damage_first(const uint8_t *buf)
{
	return 168 + 4 * (size_t)tdb_damage_u32(buf + 36) + 4;
}

static inline int
tdb_damage_live(const uint8_t *buf, size_t n, size_t off)
{
	return off >= tdb_damage_first(buf) && off + 24 <= n &&
	       tdb_damage_u32(buf + off + 20) == TDB_DAMAGE_MAGIC;
}

/*
 * The damage @kind at the first place it fits, walking the records in
 * file order:
 *   'l' a loop: the first two live records X and Y name each other as
 *       next, so a walk of either's hash chain runs X, Y, X, Y ... for
 *       ever (X's old successors are out of reach)
 *   'd' a dead loop: as 'l', and both records marked dead
 *       (TDB_DEAD_MAGIC, which tdb's walks skip without a call back)
 *   'o' an overlap: live A, followed by live B, grows over B (length and
 *       tailer), while B stays in its hash chain: two records share B's
 *       bytes, as after a killed free-list merge
 *   'p' a length past the end: the first live record's rec_len
 *       0x7fff0000
 *   'k' what a kill inside tdb 1.4's deletes leaves: the first record
 *       a bucket names is unlinked from its chain but neither freed nor
 *       marked (a kill between the two steps; tdb_check() then finds
 *       "Hashes do not match records"), and the first other live record
 *       in file order is marked dead in its chain (a delete marks it,
 *       then tdb_trim_dead() unlinks it: a kill in between)
 * @return 0, or -1 when the file has no place for it.
 */
static inline int
tdb_damage_layout(const char *path, int kind)
{
	size_t n, off, x = 0;
	uint8_t *buf = tdb_damage_load(path, &n);

	if (!buf)
		return -1;
	if (kind == 'k') {
		uint32_t hs = tdb_damage_u32(buf + 36);

		for (uint32_t b = 0; b < hs && !x; b++) {
			size_t h = 168 + 4 * ((size_t)b + 1);
			uint32_t y = tdb_damage_u32(buf + h);

			if (y && tdb_damage_live(buf, n, y)) {
				tdb_damage_put32(buf + h,
						 tdb_damage_u32(buf + y));
				x = y;
			}
		}
		for (off = tdb_damage_first(buf); x && off + 24 <= n;
		     off += 24 + tdb_damage_u32(buf + off + 4)) {
			if (off != x && tdb_damage_live(buf, n, off)) {
				tdb_damage_put32(buf + off + 20, 0xfee1deadu);
				return tdb_damage_save(path, buf, n);
			}
		}
		free(buf);
		return -1;
	}
	for (off = tdb_damage_first(buf); off + 24 <= n;
	     off += 24 + tdb_damage_u32(buf + off + 4)) {
		uint32_t len = tdb_damage_u32(buf + off + 4);
		size_t b = off + 24 + len;

		if (!tdb_damage_live(buf, n, off))
			continue;
		if ((kind == 'l' || kind == 'd') && !x) {
			x = off;
		} else if (kind == 'l' || kind == 'd') {
			tdb_damage_put32(buf + x, (uint32_t)off);
			tdb_damage_put32(buf + off, (uint32_t)x);
			if (kind == 'd') {
				tdb_damage_put32(buf + x + 20, 0xfee1deadu);
				tdb_damage_put32(buf + off + 20, 0xfee1deadu);
			}
			return tdb_damage_save(path, buf, n);
		}
		if (kind == 'o' && tdb_damage_live(buf, n, b)) {
			uint32_t grown = len + 24 + tdb_damage_u32(buf + b + 4);

			tdb_damage_put32(buf + off + 4, grown);
			tdb_damage_put32(buf + off + 24 + grown - 4,
					 grown + 24);
			return tdb_damage_save(path, buf, n);
		}
		if (kind == 'p') {
			tdb_damage_put32(buf + off + 4, 0x7fff0000u);
			return tdb_damage_save(path, buf, n);
		}
	}
	free(buf);
	return -1;
}

/*
 * Make the live record of key @b (same length @klen as @a) a second
 * version of key @a: its key bytes and full hash become @a's, its value
 * stays. @return 0, or -1 when either record is not found.
 */
static inline int
tdb_damage_twin(const char *path, const void *a, const void *b, size_t klen)
{
	size_t n, off, oa = 0, ob = 0;
	uint8_t *buf = tdb_damage_load(path, &n);

	if (!buf)
		return -1;
	for (off = tdb_damage_first(buf); off + 24 <= n;
	     off += 24 + tdb_damage_u32(buf + off + 4)) {
		if (!tdb_damage_live(buf, n, off) ||
		    tdb_damage_u32(buf + off + 8) != klen ||
		    off + 24 + klen > n)
			continue;
		if (!memcmp(buf + off + 24, a, klen))
			oa = off;
		if (!memcmp(buf + off + 24, b, klen))
			ob = off;
	}
	if (!oa || !ob) {
		free(buf);
		return -1;
	}
	memcpy(buf + ob + 24, a, klen);
	memcpy(buf + ob + 16, buf + oa + 16, 4);
	return tdb_damage_save(path, buf, n);
}

/*
 * Not damage, but a state tests of tdb's space need: a file whose free
 * list is used up, so the next store that does not fit grows it. The
 * largest free record (tdb_summary(), a walk of the whole file) or -1.
 */
static inline long
tdb_damage_largest_free(struct tdb_context *t)
{
	static const char tag[] = "Smallest/average/largest free records: ";
	char *s = tdb_summary(t), *p;
	long a, b, c = -1;

	if (!s)
		return -1;
	p = strstr(s, tag);
	if (!p || sscanf(p + sizeof(tag) - 1, "%ld/%ld/%ld", &a, &b, &c) != 3)
		c = -1;
	free(s);
	return c;
}

/* Store records (keys @prefix and a number) each sized to take the
 * largest free record of @t (tdb asks 1.25 x (key + value) + 28 bytes),
 * without growing the file, until no free record is @below bytes or
 * more. @return how many were stored, -1 on error (or if it grew). */
static inline int
tdb_damage_use_free(struct tdb_context *t, const char *prefix, long below)
{
	struct stat st0, st;
	char k[64];

	if (fstat(tdb_fd(t), &st0))
		return -1;
	for (int i = 0; i < 10000; i++) {
		long l = tdb_damage_largest_free(t);
		size_t klen, vlen;
		uint8_t *v;
		TDB_DATA kd, vd;
		int rc;

		if (l < 0)
			return -1;
		if (l < below) {
			if (fstat(tdb_fd(t), &st) || st.st_size != st0.st_size)
				return -1;
			return i;
		}
		/* A NUL first: a key meta.tdb's sweep ignores. */
		k[0] = '\0';
		klen = 1 + (size_t)snprintf(k + 1, sizeof(k) - 1, "%s%d",
					    prefix, i);
		vlen = (size_t)l * 4 / 5;
		vlen = vlen > klen + 64 ? vlen - klen - 64 : 1;
		v = calloc(1, vlen);
		if (!v)
			return -1;
		kd = (TDB_DATA){(unsigned char *)k, klen};
		vd = (TDB_DATA){v, vlen};
		rc = tdb_store(t, kd, vd, TDB_INSERT);
		free(v);
		if (rc)
			return -1;
	}
	return -1;
}

#endif /* CAIRN_TESTS_TDB_DAMAGE_H */
