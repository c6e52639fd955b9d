/*
 * test_cs_cull.c - culling: exactly which chunks go, in LRU order, at the
 * cachefilesd-style levels, for files and for bytes; pinned and dirty
 * chunks stay; -ENOSPC when only they are left. Last-use stamps must
 * survive a close and open.
 */
#include "tests/unit/cs_test_util.h"

#include "tests/tap.h"

#define CHUNK CS_CHUNK_MIN

static char base[256];

static struct cs_key
K(unsigned i) {
	return t_key(1, i, 0);
}

static int
has(struct cs_store *cs, unsigned i)
{
	struct cs_key k = K(i);
	struct cs_info info;

	return cs_lookup(cs, &k, &info) == 0;
}

/* Are exactly chunks [lo, hi] absent among [from, to]? */
static int
absent_exactly(struct cs_store *cs, unsigned from, unsigned to, unsigned lo,
	       unsigned hi)
{
	int good = 1;

	for (unsigned i = from; i <= to; i++) {
		int want_absent = i >= lo && i <= hi;

		if (has(cs, i) == want_absent) {
			diag("chunk %u is %s", i,
			     has(cs, i) ? "present" : "absent");
			good = 0;
		}
	}
	return good;
}

static int
put_n(struct cs_store *cs, unsigned i, uint32_t len, unsigned flags)
{
	static uint8_t buf[CHUNK];
	struct cs_key k = K(i);

	memset(buf, (int)i, len);
	return cs_put(cs, &k, 1, buf, len, flags);
}

static void
test_files(void)
{
	char d[512];
	struct cs_params p = t_params(CHUNK);
	struct cs_limits l = {0};
	struct cs_stats st;
	struct cs_store *cs;
	uint8_t buf[16];
	int err, rc = 0;

	snprintf(d, sizeof(d), "%s/files", base);
	p.limits.max_files = 100;
	p.limits.max_bytes = 1ull << 30;
	is_int(cs_create(d, &p), 0, "create: 100 files, cull 7 run 10 stop 3");
	cs = cs_open(d, &p, &err);
	for (unsigned i = 0; i < 93 && !rc; i++)
		rc = put_n(cs, i, 100,
			   i < 5    ? CS_F_PINNED
			   : i < 10 ? CS_F_DIRTY
				    : 0);
	is_int(rc, 0, "93 chunks: 5 pinned, 5 dirty, 83 clean");
	{
		struct cs_key k10 = K(10), k11 = K(11);

		ok(cs_read(cs, &k10, 1, 0, buf, 16) == 16 &&
			   cs_read(cs, &k11, 1, 0, buf, 16) == 16,
		   "read chunks 10 and 11 (now most recent)");
	}
	cs_get_stats(cs, &st);
	ok(st.files_used == 93 && st.evictions == 0,
	   "93 files, no eviction at 7%% free");
	is_int(cs_cull(cs), 0, "cull pass at exactly the cull level: nothing");
	is_int(put_n(cs, 93, 100, 0), 0, "94th chunk crosses the cull level");
	cs_get_stats(cs, &st);
	ok(st.evictions == 4 && st.files_used == 90,
	   "4 evicted down to the run level (%llu, %llu)",
	   (unsigned long long)st.evictions, (unsigned long long)st.files_used);
	ok(absent_exactly(cs, 0, 93, 12, 15),
	   "evicted exactly 12..15 (LRU, skipping pinned, dirty, recently "
	   "read)");
	cs_close(cs);

	/* Stamps survive a clean close; unpinning counts as a use. */
	cs = cs_open(d, &p, &err);
	{
		struct cs_key k0 = K(0);

		is_int(cs_pin_file(cs, 1, k0.fid, 0), 1, "unpin chunk 0");
	}
	l.max_files = 50;
	is_int(cs_set_limits(cs, &l), 0, "limit down to 50 files");
	cs_get_stats(cs, &st);
	is_int(st.files_used, 45, "culled to the run level: 45 files");
	ok(absent_exactly(cs, 0, 93, 12, 60),
	   "evicted 16..60 in LRU order after reopen");
	ok(has(cs, 10) && has(cs, 11) && has(cs, 93) && has(cs, 0),
	   "recent ones and the unpinned one kept");

	l.max_files = 10;
	is_int(cs_set_limits(cs, &l), 0, "limit down to 10 files");
	cs_get_stats(cs, &st);
	is_int(st.files_used, 9, "only the 9 pinned or dirty chunks left");
	{
		int left = 1;

		for (unsigned i = 1; i < 10; i++)
			left &= has(cs, i);
		ok(left, "pinned 1..4 and dirty 5..9 never evicted");
	}
	is_int(put_n(cs, 200, 100, 0), -ENOSPC,
	       "put with only pinned/dirty left: -ENOSPC");
	is_int(put_n(cs, 201, 100, CS_F_PINNED), -ENOSPC,
	       "pinned put too: -ENOSPC");
	{
		struct cs_key kw = K(202);

		is_int(cs_write(cs, &kw, 1, 0, "x", 1), -ENOSPC,
		       "new working copy: -ENOSPC");
	}
	cs_get_stats(cs, &st);
	is_int(st.files_used, 9, "failed allocations changed nothing");
	cs_close(cs);
}

static void
test_bytes(void)
{
	char d[512];
	struct cs_params p = t_params(CHUNK);
	struct cs_stats st;
	struct cs_store *cs;
	int err, rc = 0;

	snprintf(d, sizeof(d), "%s/bytes", base);
	p.limits.max_bytes = 100000;
	p.limits.max_files = 100000;
	cs_create(d, &p);
	cs = cs_open(d, &p, &err);
	for (unsigned i = 0; i < 93 && !rc; i++)
		rc = put_n(cs, i, 1000, i == 0 ? CS_F_DIRTY : 0);
	is_int(rc, 0, "93 chunks of 1000 bytes under a 100000-byte limit");
	is_int(put_n(cs, 93, 1000, 0), 0, "94th crosses the cull level");
	cs_get_stats(cs, &st);
	ok(st.bytes_used == 90000 && st.evictions == 4,
	   "culled to 90000 bytes (%llu)", (unsigned long long)st.bytes_used);
	ok(absent_exactly(cs, 0, 93, 1, 4), "evicted 1..4, dirty 0 kept");
	{
		struct cs_key k = K(300);
		char big[5000];

		memset(big, 1, sizeof(big));
		is_int(cs_write(cs, &k, 1, 0, big, sizeof(big)), 0,
		       "5000-byte working copy culls too");
		cs_get_stats(cs, &st);
		ok(st.bytes_used <= 90000 && st.dirty_bytes == 6000,
		   "bytes %llu, dirty %llu (committed dirty + working copy)",
		   (unsigned long long)st.bytes_used,
		   (unsigned long long)st.dirty_bytes);
		ok(absent_exactly(cs, 0, 93, 1, 9), "evicted 5..9 next");
	}
	cs_close(cs);
}

int
main(void)
{
	t_mkdtemp(base, sizeof(base), "cull");
	plan(0);
	test_files();
	test_bytes();
	t_rm_rf(base);
	return done_testing();
}
