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
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

#endif /* CAIRN_TESTS_TDB_DAMAGE_H */
