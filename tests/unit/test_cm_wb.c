/*
 * test_cm_wb.c - the dirty.tdb record (cm/wb_rec.c) and its migration in
 * wb_new() (cm/wb.c): explicit little-endian bytes, a CRC32C that refuses
 * a flipped bit, a version byte that refuses the future, and a record of
 * the old host-order format (version 1) read once and rewritten.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tdb.h>
#include <unistd.h>

#include "cm/cm.h"
#include "cm/wb.h"
#include "cm/wb_rec.h"
#include "common/log.h"
#include "tests/tap.h"

static char dir[] = "/tmp/test_cm_wb.XXXXXX";

/* The version-1 record exactly as wb.c wrote it before issue #13. */
struct wrec_v1 {
	uint8_t version;
	uint8_t flags;
	uint8_t pad[2];
	uint32_t namelen;
	uint64_t base_dv, srv_size, size, zero_from;
	int64_t mtime_ns, ctime_ns;
	struct fid parent;
} __attribute__((packed));

static struct fid
mkfid(uint32_t vol, uint8_t b)
{
	struct fid f;

	memset(&f, 0, sizeof(f));
	f.vol = vol;
	for (size_t i = 0; i < sizeof(f.oid); i++)
		f.oid[i] = (uint8_t)(b + i);
	return f;
}

static struct wb_rec
sample(void)
{
	struct wb_rec r;

	memset(&r, 0, sizeof(r));
	r.flags = WB_REC_LOGGED;
	r.base_dv = 0x0102030405060708ull;
	r.srv_size = 300000;
	r.size = 1234567;
	r.zero_from = 299999;
	r.mtime_ns = -1500000001; /* before 1970: two's complement */
	r.ctime_ns = 1700000000123456789ll;
	r.parent = mkfid(0xa1b2c3d4, 0x40);
	r.name = "notes.txt";
	r.namelen = strlen(r.name);
	return r;
}

static int
same(const struct wb_rec *a, const struct wb_rec *b)
{
	return a->flags == b->flags && a->base_dv == b->base_dv &&
	       a->srv_size == b->srv_size && a->size == b->size &&
	       a->zero_from == b->zero_from && a->mtime_ns == b->mtime_ns &&
	       a->ctime_ns == b->ctime_ns && fid_eq(&a->parent, &b->parent) &&
	       a->namelen == b->namelen &&
	       (!a->namelen || !memcmp(a->name, b->name, a->namelen));
}

static void
test_codec(void)
{
	struct wb_rec r = sample(), d;
	uint8_t *buf;
	size_t len = 0;

	buf = wb_rec_encode(&r, &len);
	ok(buf != NULL, "encode");
	is_int((int)len, 76 + 9, "76 bytes plus the name");
	is_int(buf[0], 2, "version byte 2");
	is_int(buf[4], 0x08, "base_dv little-endian, low byte first");
	is_int(buf[11], 0x01, "base_dv high byte last");
	is_int(buf[52], 0xd4, "parent volume little-endian");
	is_int(wb_rec_decode(buf, len, &d), 0, "decode");
	ok(same(&r, &d), "every field round trips, negative time too");

	buf[40] ^= 0x10;
	is_int(wb_rec_decode(buf, len, &d), -EUCLEAN,
	       "a flipped bit: -EUCLEAN");
	buf[40] ^= 0x10;
	is_int(wb_rec_decode(buf, len - 1, &d), -EUCLEAN,
	       "one byte short: -EUCLEAN");
	is_int(wb_rec_decode(buf, 3, &d), -EUCLEAN, "three bytes: -EUCLEAN");
	buf[0] = 3;
	is_int(wb_rec_decode(buf, len, &d), -EPROTONOSUPPORT,
	       "version 3: -EPROTONOSUPPORT");
	buf[0] = 0;
	is_int(wb_rec_decode(buf, len, &d), -EUCLEAN, "version 0: -EUCLEAN");
	free(buf);

	r.name = NULL;
	r.namelen = 0;
	buf = wb_rec_encode(&r, &len);
	is_int(wb_rec_decode(buf, len, &d), 0, "no name");
	ok(d.namelen == 0 && d.name == NULL, "no name read back");
	free(buf);

	r.namelen = 256;
	r.name = "x";
	errno = 0;
	ok(wb_rec_encode(&r, &len) == NULL && errno == EINVAL,
	   "a name over 255 bytes is refused");
}

/* A version-1 record (host order, no checksum) for @r, in @buf. */
static size_t
old_record(const struct wb_rec *r, uint8_t *buf)
{
	struct wrec_v1 o;

	memset(&o, 0, sizeof(o));
	o.version = 1;
	o.flags = r->flags;
	o.namelen = (uint32_t)r->namelen;
	o.base_dv = r->base_dv;
	o.srv_size = r->srv_size;
	o.size = r->size;
	o.zero_from = r->zero_from;
	o.mtime_ns = r->mtime_ns;
	o.ctime_ns = r->ctime_ns;
	o.parent = r->parent;
	memcpy(buf, &o, sizeof(o));
	memcpy(buf + sizeof(o), r->name, r->namelen);
	return sizeof(o) + r->namelen;
}

static void
test_old_format(void)
{
	struct wb_rec r = sample(), d;
	uint8_t buf[512];
	size_t len = old_record(&r, buf);

	is_int(wb_rec_decode(buf, len, &d), 1,
	       "a version-1 record reads, as old");
	ok(same(&r, &d), "with every field");
	is_int(wb_rec_decode(buf, len - 1, &d), -EUCLEAN,
	       "a version-1 record of the wrong length: -EUCLEAN");
}

/* wb_new() on a dirty.tdb holding a version-1 record: the write state is
 * loaded, and the record is version 2 afterwards. */
static void
test_migration(void)
{
	struct wb_deps wd = {0};
	struct wb *wb;
	struct wb_rec r = sample(), d;
	struct fid fid = mkfid(7, 0x10);
	struct tdb_context *tdb;
	uint8_t buf[512];
	char path[256];
	TDB_DATA k = {(unsigned char *)&fid, sizeof(fid)}, v;
	struct proto_attr a;

	r.flags = 0; /* dirty, not logged */
	snprintf(path, sizeof(path), "%s/dirty.tdb", dir);
	tdb = tdb_open(path, 0, TDB_NOLOCK, O_RDWR | O_CREAT, 0600);
	ok(tdb != NULL, "create dirty.tdb");
	v.dptr = buf;
	v.dsize = old_record(&r, buf);
	ok(tdb && tdb_store(tdb, k, v, TDB_REPLACE) == 0,
	   "store a version-1 record");
	if (tdb)
		tdb_close(tdb);

	wd.cache_dir = dir;
	wb = wb_new(&wd);
	ok(wb != NULL, "wb_new reads it");
	ok(wb_active(wb, &fid), "the write state is there");
	ok(wb_dirty(wb, &fid), "and dirty");
	memset(&a, 0, sizeof(a));
	a.fid = fid;
	a.type = PROTO_T_FILE;
	a.size = 1;
	wb_overlay(wb, &a);
	ok(a.size == r.size && a.mtime_ns == r.mtime_ns,
	   "its local size and mtime overlay the server's");
	wb_free(wb);

	tdb = tdb_open(path, 0, TDB_NOLOCK, O_RDONLY, 0600);
	v = tdb ? tdb_fetch(tdb, k) : (TDB_DATA){0};
	ok(v.dptr && v.dsize > 0 && v.dptr[0] == 2,
	   "the record was rewritten as version 2");
	is_int(v.dptr ? wb_rec_decode(v.dptr, v.dsize, &d) : -1, 0,
	       "and decodes as current");
	ok(same(&r, &d), "with the same fields");
	free(v.dptr);
	if (tdb)
		tdb_close(tdb);
	unlink(path);
}

int
main(void)
{
	log_init("test_cm_wb", 0, LOG_ERR);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 99;
	}
	plan(0);
	test_codec();
	test_old_format();
	test_migration();
	rmdir(dir);
	return done_testing();
}
