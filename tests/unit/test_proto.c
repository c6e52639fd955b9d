/*
 * test_proto.c - unit tests of the wire protocol codecs (common/proto.c):
 * round trips of every encoder/decoder pair, then a table of hostile inputs
 * per decoder, then the checked-in files tests/data/proto-*.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/crc32c.h"
#include "common/proto.h"
#include "common/proto_dirdec.h"
#include "common/util.h"
#include "tests/tap.h"

#define F1   "0000002a.00112233445566778899aabbccddeeff"
#define F2   "0000002a.ffeeddccbbaa99887766554433221100"
#define F3   "0000002a.0123456789abcdef0123456789abcdef"
#define OPID "9f8e7d6c5b4a39281706f5e4d3c2b1a0"

static void
mkattr(struct proto_attr *a, const char *fid, enum proto_type t)
{
	memset(a, 0, sizeof(*a));
	fid_parse(fid, &a->fid);
	a->type = t;
	a->mode = 0644;
	a->uid = 1000;
	a->gid = 4294967295u;
	a->size = 1234;
	a->nlink = 2;
	a->dv = 7;
	a->atime_ns = 1700000000123456789LL;
	a->mtime_ns = -5; /* before the epoch */
	a->ctime_ns = 0;
}

static int
attr_eq(const struct proto_attr *a, const struct proto_attr *b)
{
	return fid_eq(&a->fid, &b->fid) && a->type == b->type &&
	       a->mode == b->mode && a->uid == b->uid && a->gid == b->gid &&
	       a->size == b->size && a->nlink == b->nlink && a->dv == b->dv &&
	       a->atime_ns == b->atime_ns && a->mtime_ns == b->mtime_ns &&
	       a->ctime_ns == b->ctime_ns && a->rdev == b->rdev;
}

static void
test_names(void)
{
	char big[300];

	is_int(proto_name_check("a.txt", 5), 0, "plain name");
	is_int(proto_name_check("\xc3\xa9t\xc3\xa9", 5), 0, "utf-8 name");
	is_int(proto_name_check("\xf0\x9f\x98\x80", 4), 0, "4-byte utf-8");
	is_int(proto_name_check("...", 3), 0, "'...' is a name");
	is_int(proto_name_check("", 0), -EINVAL, "empty name");
	is_int(proto_name_check(".", 1), -EINVAL, "'.'");
	is_int(proto_name_check("..", 2), -EINVAL, "'..'");
	is_int(proto_name_check("a/b", 3), -EINVAL, "slash");
	is_int(proto_name_check("a\0b", 3), -EINVAL, "embedded NUL");
	is_int(proto_name_check("\xc0\xaf", 2), -EINVAL, "overlong '/'");
	is_int(proto_name_check("\xe0\x80\xaf", 3), -EINVAL, "3-byte overlong");
	is_int(proto_name_check("\xf0\x80\x80\xaf", 4), -EINVAL,
	       "4-byte overlong");
	is_int(proto_name_check("\xed\xa0\x80", 3), -EINVAL, "surrogate");
	is_int(proto_name_check("\xf4\x90\x80\x80", 4), -EINVAL,
	       "above U+10FFFF");
	is_int(proto_name_check("\xf5\x80\x80\x80", 4), -EINVAL, "0xf5 lead");
	is_int(proto_name_check("a\x80", 2), -EINVAL, "stray continuation");
	is_int(proto_name_check("\xc3", 1), -EINVAL, "truncated sequence");
	is_int(proto_name_check("\xe2\x82", 2), -EINVAL, "truncated 3-byte");
	is_int(proto_name_check("\xff", 1), -EINVAL, "0xff");
	memset(big, 'x', sizeof(big));
	is_int(proto_name_check(big, 255), 0, "255 bytes");
	is_int(proto_name_check(big, 256), -ENAMETOOLONG, "256 bytes");

	is_int(proto_volname_check("home"), 0, "volname home");
	is_int(proto_volname_check("a.b_c-D9"), 0, "volname punctuation");
	is_int(proto_volname_check(".hidden"), -EINVAL, "volname leading dot");
	is_int(proto_volname_check(""), -EINVAL, "volname empty");
	is_int(proto_volname_check("a/b"), -EINVAL, "volname slash");
	is_int(proto_volname_check("a b"), -EINVAL, "volname space");
	is_int(proto_volname_check(NULL), -EINVAL, "volname NULL");
	big[64] = 0;
	is_int(proto_volname_check(big), 0, "volname 64 bytes");
	big[64] = 'x';
	big[65] = 0;
	is_int(proto_volname_check(big), -EINVAL, "volname 65 bytes");

	is_str(proto_type_name(PROTO_T_SYMLINK), "symlink", "type name");
	is_int(proto_type_parse("fifo"), PROTO_T_FIFO, "type parse");
	is_int(proto_type_parse("door"), PROTO_T_NONE, "type unknown");
	is_str(proto_op_name(PROTO_OP_REMOVEXATTR), "removexattr", "op name");
	is_int(proto_op_parse("store"), PROTO_OP_STORE, "op parse");
	is_int(proto_op_parse("Store"), PROTO_OP_NONE, "op parse is exact");
	is_str(proto_ev_name(PROTO_EV_RESET), "reset", "event name");
}

static void
test_errnos(void)
{
	static const struct {
		int err, status;
	} t[] = {
		{EINVAL, 400},	{ENAMETOOLONG, 400}, {EISDIR, 400},
		{ENOTDIR, 400}, {ENOTSUP, 400},	     {EACCES, 403},
		{EPERM, 403},	{EROFS, 403},	     {ENOENT, 404},
		{EEXIST, 409},	{ENOTEMPTY, 409},    {EXDEV, 409},
		{EBUSY, 409},	{ESTALE, 410},	     {ECANCELED, 412},
		{E2BIG, 413},	{EFBIG, 413},	     {ERANGE, 416},
		{ENOSPC, 507},	{EDQUOT, 507},	     {EIO, 500},
		{ENOMEM, 500},	{ENODATA, 500},
	};
	static const int names[] = {
		EINVAL,	   ENAMETOOLONG, EISDIR, ENOTDIR,   ENOTSUP,
		EACCES,	   EPERM,	 EROFS,	 ENOENT,    EEXIST,
		ENOTEMPTY, EXDEV,	 EBUSY,	 ESTALE,    ECANCELED,
		E2BIG,	   EFBIG,	 ERANGE, ENOSPC,    EDQUOT,
		EIO,	   ENODATA,	 ENOSYS, ETIMEDOUT, ECONNREFUSED,
		EAGAIN};
	size_t i;
	int bad = 0;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (proto_errno_to_status(t[i].err) != t[i].status) {
			diag("errno %d -> %d", t[i].err,
			     proto_errno_to_status(t[i].err));
			bad++;
		}
	is_int(bad, 0, "errno -> status table");
	is_int(proto_errno_to_status(-ENOENT), 404, "negative errno accepted");
	bad = 0;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (proto_errno_parse(proto_errno_name(names[i])) != names[i]) {
			diag("errno %d name %s", names[i],
			     proto_errno_name(names[i]));
			bad++;
		}
	is_int(bad, 0, "errno names round trip");
	is_str(proto_errno_name(ENOENT), "ENOENT", "ENOENT name");
	is_str(proto_errno_name(99999), "EIO", "unknown errno name is EIO");
	is_int(proto_errno_parse("EWHATEVER"), 0, "unknown name parses to 0");
	is_int(proto_errno_parse("enoent"), 0, "names are case-sensitive");
	is_int(proto_errno_parse(NULL), 0, "NULL name");
	is_int(proto_errno_parse("EOPNOTSUPP"), ENOTSUP, "EOPNOTSUPP alias");

	is_int(proto_status_to_errno(400), EINVAL, "400");
	is_int(proto_status_to_errno(401), EACCES, "401");
	is_int(proto_status_to_errno(403), EACCES, "403");
	is_int(proto_status_to_errno(404), ENOENT, "404");
	is_int(proto_status_to_errno(409), EEXIST, "409");
	is_int(proto_status_to_errno(410), ESTALE, "410");
	is_int(proto_status_to_errno(412), ECANCELED, "412");
	is_int(proto_status_to_errno(413), E2BIG, "413");
	is_int(proto_status_to_errno(416), ERANGE, "416");
	is_int(proto_status_to_errno(431), E2BIG, "431");
	is_int(proto_status_to_errno(507), ENOSPC, "507");
	is_int(proto_status_to_errno(500), EIO, "500");
	is_int(proto_status_to_errno(502), EIO, "502");
}

static void
test_volinfo(void)
{
	struct proto_volinfo v = {0}, w;
	size_t len;
	char *s;

	v.version = 1;
	strcpy(v.name, "home");
	v.id = 42;
	fid_parse(F1, &v.root);
	v.event_seq = 1234;
	v.bytes_used = 1ull << 40;
	v.bytes_limit = 0;
	v.files_used = 1;
	v.files_limit = 99;
	v.readonly = true;
	s = proto_volinfo_encode(&v, &len);
	ok(s && len == strlen(s), "volinfo encodes");
	is_int(proto_volinfo_decode(s, len, &w), 0, "volinfo decodes");
	ok(w.version == 1 && !strcmp(w.name, "home") && w.id == 42 &&
		   fid_eq(&w.root, &v.root) && w.event_seq == 1234 &&
		   w.bytes_used == 1ull << 40 && w.files_limit == 99 &&
		   w.readonly,
	   "volinfo round trip");
	free(s);
	strcpy(v.name, ".bad");
	s = proto_volinfo_encode(&v, &len);
	ok(!s && errno == EINVAL, "volinfo with a bad name is not encoded");
	free(s);
	strcpy(v.name, "home");
	v.event_seq = UINT64_MAX;
	s = proto_volinfo_encode(&v, &len);
	ok(!s && errno == ERANGE, "uint64 above INT64_MAX is not encoded");
	free(s);
}

static void
test_attrs(void)
{
	struct proto_attr a[3], *got;
	int errs[3] = {0, ENOENT, 0}, *gerr;
	struct fid fids[2], *gf;
	size_t n, len;
	char *s;

	mkattr(&a[0], F1, PROTO_T_FILE);
	mkattr(&a[1], F2, PROTO_T_DIR);
	mkattr(&a[2], F3, PROTO_T_FIFO);
	a[2].mode = 07777;
	s = proto_attrs_encode(a, errs, 3, &len);
	ok(s != NULL, "attrs encode");
	is_int(proto_attrs_decode(s, len, &got, &gerr, &n), 0, "attrs decode");
	is_int(n, 3, "three entries");
	ok(n == 3 && attr_eq(&got[0], &a[0]) && attr_eq(&got[2], &a[2]),
	   "attrs round trip");
	ok(n == 3 && gerr[0] == 0 && gerr[1] == ENOENT && gerr[2] == 0 &&
		   fid_eq(&got[1].fid, &a[1].fid),
	   "error entries keep fid and errno");
	free(s);
	free(got);
	free(gerr);

	s = proto_attrs_encode(a, NULL, 0, &len);
	is_int(proto_attrs_decode(s, len, &got, &gerr, &n), 0,
	       "empty attrs list");
	ok(n == 0 && got && gerr, "empty list gives non-NULL arrays");
	free(s);
	free(got);
	free(gerr);

	a[0].mode = 010644;
	s = proto_attrs_encode(a, NULL, 1, &len);
	ok(!s && errno == EINVAL, "mode with type bits is not encoded");
	a[0].mode = 0644;
	a[0].type = PROTO_T_NONE;
	s = proto_attrs_encode(a, NULL, 1, &len);
	ok(!s && errno == EINVAL, "type none is not encoded");

	fid_parse(F1, &fids[0]);
	fid_parse(F2, &fids[1]);
	s = proto_getattr_req_encode(fids, 2, &len);
	is_int(proto_getattr_req_decode(s, len, &gf, &n), 0, "getattr req");
	ok(n == 2 && fid_eq(&gf[0], &fids[0]) && fid_eq(&gf[1], &fids[1]),
	   "getattr req round trip");
	free(s);
	free(gf);
	s = proto_getattr_req_encode(fids, PROTO_GETATTR_MAX + 1, &len);
	ok(!s && errno == E2BIG, "getattr req over the limit not encoded");
}

static void
test_dir(void)
{
	struct proto_dir d = {0}, g;
	struct proto_dirent e[2];
	size_t len;
	char *s;

	mkattr(&d.dir, F1, PROTO_T_DIR);
	e[0].name = "a.txt";
	mkattr(&e[0].attr, F2, PROTO_T_FILE);
	e[1].name = "\xc3\xa9t\xc3\xa9";
	mkattr(&e[1].attr, F3, PROTO_T_SYMLINK);
	d.n = 2;
	d.ents = e;
	s = proto_dir_encode(&d, &len);
	ok(s != NULL, "dir encodes");
	is_int(proto_dir_decode(s, len, &g), 0, "dir decodes");
	ok(g.n == 2 && attr_eq(&g.dir, &d.dir) &&
		   !strcmp(g.ents[0].name, "a.txt") &&
		   !strcmp(g.ents[1].name, e[1].name) &&
		   attr_eq(&g.ents[1].attr, &e[1].attr),
	   "dir round trip");
	proto_dir_release(&g);
	ok(g.n == 0 && g.ents == NULL, "dir release zeroes");
	proto_dir_release(NULL);
	free(s);
	e[1].name = "..";
	s = proto_dir_encode(&d, &len);
	ok(!s && errno == EINVAL, "dir with '..' entry is not encoded");
	d.n = 0;
	s = proto_dir_encode(&d, &len);
	is_int(proto_dir_decode(s, len, &g), 0, "empty dir");
	ok(g.n == 0, "no entries");
	proto_dir_release(&g);
	free(s);
}

/* A name twice in a listing is refused, wherever the names differ from
 * each other: in their first 8 bytes (the sort's integer key), after
 * them, or in length only; the two decoders agree. */
static void
test_dir_dups(void)
{
	static const struct {
		const char *a, *b;
		int rc;
		const char *what;
	} c[] = {
		{"a", "a", -EINVAL, "one-byte name twice"},
		{"abcdefgh", "abcdefgh", -EINVAL, "8-byte name twice"},
		{"abcdefgh1", "abcdefgh1", -EINVAL, "9-byte name twice"},
		{"abcdefgh-long-tail", "abcdefgh-long-tail", -EINVAL,
		 "long name twice"},
		{"abcdefgh1", "abcdefgh2", 0, "same 8 bytes, then different"},
		{"abcdefgh", "abcdefghX", 0, "one name the other's prefix"},
		{"abc", "abcd", 0, "a short prefix"},
		{"\xc3\xa9t\xc3\xa9", "\xc3\xa9t\xc3\xa9", -EINVAL,
		 "non-ASCII name twice"},
		{"\xc3\xa9-not", "\x7f-not", 0, "bytes above 0x7f sort apart"},
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct proto_dirent e[5];
		struct proto_dir d = {0}, g;
		const char *names[5] = {"zz", c[i].a, "mm", c[i].b, "00"};
		char next[PROTO_CURSOR_MAX];
		char *s;
		size_t len;

		mkattr(&d.dir, F1, PROTO_T_DIR);
		for (int k = 0; k < 5; k++) {
			e[k].name = (char *)names[k];
			mkattr(&e[k].attr, k % 2 ? F2 : F3, PROTO_T_FILE);
		}
		d.ents = e;
		d.n = 5;
		s = proto_dir_encode(&d, &len);
		is_int(proto_dir_decode(s, len, &g), c[i].rc, "%s", c[i].what);
		if (c[i].rc == 0)
			ok(g.n == 5, "  all five entries");
		proto_dir_release(&g);
		is_int(proto_dir_decode_jansson(s, len, PROTO_DIR_MAX, &g,
						NULL),
		       c[i].rc, "  the jansson decoder agrees");
		proto_dir_release(&g);
		free(s);
		/* As a page: the unchecked decoder takes it (cairnd checks
		 * the whole listing), and proto_dir_check_names() of what
		 * it gave says what the checked one did. */
		s = proto_dir_page_encode(&d, "1.0.1", &len);
		is_int(proto_dir_page_decode(s, len, true, &g, next), c[i].rc,
		       "  as a page too");
		proto_dir_release(&g);
		is_int(proto_dir_page_decode_unchecked(s, len, true, &g, next),
		       0, "  unchecked: decoded");
		ok(g.n == 5 && !strcmp(next, "1.0.1"),
		   "  unchecked: five entries and the cursor");
		is_int(proto_dir_check_names(&g), c[i].rc,
		       "  unchecked: its names checked after");
		proto_dir_release(&g);
		free(s);
	}
}

/* The listing encoder's numbers (two digits a step): every length from 1
 * to 19 digits and its neighbours, and the signed extremes, as printf
 * writes them. */
static void
test_dir_numbers(void)
{
	struct proto_dirent e;
	struct proto_dir d = {0};
	char want[96], *s;
	size_t len;
	unsigned bad = 0, n = 0;
	uint64_t p = 1;

	mkattr(&d.dir, F1, PROTO_T_DIR);
	mkattr(&e.attr, F2, PROTO_T_FILE);
	e.name = "n";
	d.ents = &e;
	d.n = 1;
	for (int k = 0; k <= 19; k++, p *= 10) {
		uint64_t v[3] = {p - 1, p, p + 1};

		for (int i = 0; i < 3; i++) {
			int64_t t = i == 1 ? -(int64_t)(v[i] & INT64_MAX)
					   : (int64_t)(v[i] & INT64_MAX);

			if (v[i] > INT64_MAX)
				continue;
			e.attr.size = v[i];
			e.attr.atime_ns = t;
			s = proto_dir_page_encode(&d, NULL, &len);
			snprintf(want, sizeof(want),
				 ",\"size\":%llu,\"nlink\":", (unsigned long long)v[i]);
			bad += !s || !strstr(s, want);
			snprintf(want, sizeof(want), ",\"atime\":%lld,",
				 (long long)t);
			bad += !s || !strstr(s, want);
			free(s);
			n++;
		}
	}
	e.attr.size = INT64_MAX;
	e.attr.atime_ns = INT64_MIN;
	s = proto_dir_page_encode(&d, NULL, &len);
	bad += !s || !strstr(s, ",\"size\":9223372036854775807,") ||
	       !strstr(s, ",\"atime\":-9223372036854775808,");
	free(s);
	ok(!bad && n > 50, "listing numbers as printf writes them (%u values, %u wrong)",
	   n, bad);
}

/* The listing encoder writes JSON itself (no jansson tree): the output is
 * what jansson would dump for the same document, byte for byte, names with
 * every kind of escape round-trip, and a listing written in pieces is the
 * listing written at once. */
static void
test_dir_stream(void)
{
	static const char *names[] = {
		"plain", "q\"uote", "back\\slash", "tab\there", "nl\nx",
		"cr\rx", "bs\bx", "ff\fx", "ctl\x01\x1f", "\xc3\xa9t\xc3\xa9",
		"\xf0\x9f\x98\x80 emoji", "sl<ash>&'", "\x7f" "del"};
	size_t n = sizeof(names) / sizeof(names[0]), len, len2;
	struct proto_dirent e[sizeof(names) / sizeof(names[0])];
	struct proto_dir d = {0}, g;
	struct proto_sbuf b = {0};
	char next[PROTO_CURSOR_MAX], *s, *s2, *re;
	json_t *j;
	bool same = true;

	mkattr(&d.dir, F1, PROTO_T_DIR);
	for (size_t i = 0; i < n; i++) {
		e[i].name = (char *)names[i];
		static const enum proto_type types[] = {
			PROTO_T_FIFO, PROTO_T_FILE, PROTO_T_SOCK,
			PROTO_T_CHR,  PROTO_T_FILE, PROTO_T_BLK};

		mkattr(&e[i].attr, i % 2 ? F2 : F3, types[i % 6]);
		/* Devices with their numbers (the largest one too): rdev
		 * goes after ctime, as jansson's encoder puts it. */
		if (proto_type_has_rdev(types[i % 6]))
			e[i].attr.rdev = i == 3 ? UINT32_MAX : 0x801;
		e[i].attr.size = i == 1 ? (uint64_t)INT64_MAX : i;
		e[i].attr.mtime_ns = i == 2 ? INT64_MIN : -(int64_t)i;
	}
	d.ents = e;
	d.n = n;
	s = proto_dir_page_encode(&d, "7.3.12", &len);
	ok(s && len == strlen(s), "streamed page encodes");
	j = s ? json_loads(s, 0, NULL) : NULL;
	re = j ? json_dumps(j, JSON_COMPACT) : NULL;
	ok(re && !strcmp(re, s), "byte for byte what jansson dumps");
	json_decref(j);
	free(re);
	is_int(proto_dir_page_decode(s, len, true, &g, next), 0,
	       "and decodes");
	for (size_t i = 0; i < n && g.n == n; i++)
		same = same && !strcmp(g.ents[i].name, names[i]) &&
		       attr_eq(&g.ents[i].attr, &e[i].attr);
	ok(g.n == n && same && attr_eq(&g.dir, &d.dir) &&
		   !strcmp(next, "7.3.12"),
	   "every name and attribute round-trips");
	proto_dir_release(&g);

	/* In pieces: one entry, then the rest, then none. */
	proto_dir_enc_begin(&b, &d.dir, "7.3.12");
	proto_dir_enc_ents(&b, e, 1);
	proto_dir_enc_ents(&b, e + 1, n - 1);
	proto_dir_enc_ents(&b, e, 0);
	s2 = proto_dir_enc_end(&b, &len2);
	ok(s2 && len2 == len && !memcmp(s, s2, len), "in pieces: the same");
	ok(b.p == NULL && b.len == 0, "the buffer is handed over");
	free(s2);

	/* As cairn-vold writes a page: entries first (names as stored,
	 * not NUL-terminated), the head with "next" put before them at the
	 * end; and a whole listing appended page by page. */
	{
		struct proto_sbuf pg = {0}, w = {0}, part = {0};
		char nm[300];

		proto_dir_enc_reserve(&pg);
		for (size_t i = 0; i < n; i++) {
			size_t l = strlen(names[i]);

			memcpy(nm, names[i], l);
			memset(nm + l, 'Z', 8); /* not part of the name */
			proto_dir_enc_ent(&pg, nm, l, &e[i].attr);
		}
		s2 = proto_dir_enc_page_end(&pg, &d.dir, "7.3.12", &len2);
		ok(s2 && len2 == len && !memcmp(s, s2, len),
		   "entries first, head last: the same page");
		ok(pg.p == NULL && pg.len == 0, "that buffer is handed over");
		free(s2);

		proto_dir_enc_begin(&w, &d.dir, "7.3.12");
		proto_dir_enc_ents(&part, e, 2);
		proto_dir_enc_append(&w, &part);
		proto_sbuf_release(&part);
		proto_dir_enc_append(&w, &part); /* empty: nothing */
		proto_dir_enc_ents(&part, e + 2, n - 2);
		proto_dir_enc_append(&w, &part);
		proto_sbuf_release(&part);
		s2 = proto_dir_enc_end(&w, &len2);
		ok(s2 && len2 == len && !memcmp(s, s2, len),
		   "pages appended: the same listing");
		free(s2);

		/* An empty page, and the longest head (cursor of 63). */
		memset(&pg, 0, sizeof(pg));
		memset(nm, '9', PROTO_CURSOR_MAX - 1);
		nm[PROTO_CURSOR_MAX - 1] = 0;
		d.dir.size = (uint64_t)INT64_MAX;
		d.dir.atime_ns = d.dir.mtime_ns = d.dir.ctime_ns = INT64_MIN;
		s2 = proto_dir_enc_page_end(&pg, &d.dir, nm, &len2);
		ok(s2 && proto_dir_page_decode(s2, len2, true, &g, next) == 0 &&
			   g.n == 0 && !strcmp(next, nm) &&
			   attr_eq(&g.dir, &d.dir),
		   "an empty page with the longest head decodes");
		proto_dir_release(&g);
		free(s2);
		mkattr(&d.dir, F1, PROTO_T_DIR);

		/* A stored name with a NUL or a slash: EINVAL, nothing. */
		memset(&pg, 0, sizeof(pg));
		proto_dir_enc_reserve(&pg);
		proto_dir_enc_ent(&pg, "a\0b", 3, &e[0].attr);
		s2 = proto_dir_enc_page_end(&pg, &d.dir, NULL, &len2);
		ok(!s2 && errno == EINVAL, "a name with a NUL byte: EINVAL");
		memset(&pg, 0, sizeof(pg));
		proto_dir_enc_ent(&pg, "a/b", 3, &e[0].attr);
		s2 = proto_dir_enc_page_end(&pg, &d.dir, NULL, &len2);
		ok(!s2 && errno == EINVAL, "a name with '/': EINVAL");
		/* Entries past the head's room written without the
		 * reserve: EINVAL, not the head written over them. */
		memset(&pg, 0, sizeof(pg));
		for (size_t i = 0; i < 20; i++)
			proto_dir_enc_ent(&pg, names[i % n],
					  strlen(names[i % n]), &e[i % n].attr);
		ok(!pg.err && pg.len > PROTO_DIR_HEAD_MAX,
		   "entries written without the reserve");
		s2 = proto_dir_enc_page_end(&pg, &d.dir, NULL, &len2);
		ok(!s2 && errno == EINVAL,
		   "page end without the reserve: EINVAL");
	}
	free(s);

	/* Bad input: the first failure wins, nothing is returned. */
	e[3].name = "..";
	s = proto_dir_page_encode(&d, NULL, &len);
	ok(!s && errno == EINVAL, "a '..' entry: EINVAL");
	e[3].name = "a/b";
	s = proto_dir_page_encode(&d, NULL, &len);
	ok(!s && errno == EINVAL, "a name with '/': EINVAL");
	e[3].name = "bad\xff utf8";
	s = proto_dir_page_encode(&d, NULL, &len);
	ok(!s && errno == EINVAL, "a name that is not UTF-8: EINVAL");
	e[3].name = (char *)names[3];
	e[4].attr.size = (uint64_t)INT64_MAX + 1;
	s = proto_dir_page_encode(&d, NULL, &len);
	ok(!s && errno == ERANGE, "a size past INT64_MAX: ERANGE");
	e[4].attr.size = 4;
	e[5].attr.mode = 010000;
	s = proto_dir_page_encode(&d, NULL, &len);
	ok(!s && errno == EINVAL, "a mode past 07777: EINVAL");
	e[5].attr.mode = 0644;
	e[4].attr.rdev = 0x801;
	s = proto_dir_page_encode(&d, NULL, &len);
	ok(!s && errno == EINVAL, "a device number on a file: EINVAL");
	e[4].attr.rdev = 0;
	s = proto_dir_page_encode(&d, "bad\"cursor", &len);
	ok(!s && errno == EINVAL, "a bad cursor: EINVAL");
	d.dir.type = PROTO_T_NONE;
	s = proto_dir_page_encode(&d, NULL, &len);
	ok(!s && errno == EINVAL, "a directory without a type: EINVAL");
}

/* Paged listings (protocol version 2): the page codec, the cursor in the
 * path, and assembling pages. */
static void
test_dir_pages(void)
{
	struct proto_dir d = {0}, g, acc;
	struct proto_dirent e[3];
	struct proto_dir_cursor c = {12, 3, 40};
	struct proto_path pp;
	char next[PROTO_CURSOR_MAX], cur[PROTO_CURSOR_MAX], *s, *b, *p;
	size_t len, i;

	mkattr(&d.dir, F1, PROTO_T_DIR);
	e[0].name = "a";
	mkattr(&e[0].attr, F2, PROTO_T_FILE);
	e[1].name = "b";
	mkattr(&e[1].attr, F3, PROTO_T_FILE);
	e[2].name = "a";
	mkattr(&e[2].attr, F3, PROTO_T_FILE);
	d.ents = e;
	d.n = 1;

	is_int(proto_cursor_format(cur, sizeof(cur), &c), 7, "cursor format");
	is_str(cur, "12.3.40", "cursor text");
	is_int(proto_cursor_format(cur, 4, &c), -ENAMETOOLONG,
	       "cursor format into a short buffer");
	proto_cursor_format(cur, sizeof(cur), &c);
	s = proto_dir_page_encode(&d, cur, &len);
	ok(s && strstr(s, "\"next\":\"12.3.40\""), "page carries next");
	is_int(proto_dir_page_decode(s, len, false, &g, next), 0,
	       "page decodes");
	ok(g.n == 1 && !strcmp(next, "12.3.40"), "page round trip");
	proto_dir_release(&g);
	/* A version 1 decoder ignores "next": old clients still parse. */
	is_int(proto_dir_decode(s, len, &g), 0, "v1 decoder takes a page");
	proto_dir_release(&g);
	free(s);
	s = proto_dir_page_encode(&d, NULL, &len);
	is_int(proto_dir_page_decode(s, len, false, &g, next), 0,
	       "last page decodes");
	ok(next[0] == 0 && !strstr(s, "next"), "last page has no next");
	proto_dir_release(&g);
	free(s);
	s = proto_dir_page_encode(&d, "a b", &len);
	ok(!s && errno == EINVAL, "a cursor with a blank is not encoded");

	/* Malformed cursors and truncated pages are refused whole. */
	{
		static const char *bad[] = {
			"\"\"",
			"\"a/b\"",
			"\"a%20b\"",
			"\"a\\u00e9\"",
			"7",
			"null",
			"\"1234567890123456789012345678901234567890"
			"123456789012345678901234\"",
		};
		char *attr, buf[1024];
		size_t alen;

		d.n = 0;
		s = proto_dir_encode(&d, &len);
		attr = strstr(s, "\"dir\":") + 6;
		alen = (size_t)(strstr(attr, "}") - attr) + 1;
		attr = strndup(attr, alen);
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			snprintf(buf, sizeof(buf),
				 "{\"next\":%s,\"dir\":%s,\"entries\":[]}",
				 bad[i], attr);
			strcpy(next, "junk");
			is_int(proto_dir_page_decode(buf, strlen(buf), true, &g,
						     next),
			       -EINVAL, "malformed cursor %zu refused", i);
			ok(next[0] == 0 && g.n == 0 && !g.ents,
			   "nothing left after refusal %zu", i);
		}
		free(attr);
		free(s);
		d.n = 2;
		s = proto_dir_page_encode(&d, "5.0.2", &len);
		for (i = 1; i < len; i += 7)
			if (proto_dir_page_decode(s, i, false, &g, next) !=
			    -EINVAL)
				break;
		ok(i >= len, "every truncation of a page is refused");
		free(s);
	}

	/* Page size: a page with "next" holds at most PROTO_DIR_PAGE_MAX
	 * entries; only a last page (a version 1 whole listing) may hold
	 * more, and only as the first reply. */
	len = 200 + (PROTO_DIR_PAGE_MAX + 1) * 300;
	b = malloc(len);
	for (int withnext = 1; withnext >= 0; withnext--) {
		char fs[FID_STRLEN];

		p = b + sprintf(b,
				"{%s\"dir\":{\"fid\":\"%s\","
				"\"type\":\"dir\",\"mode\":493,\"uid\":0,"
				"\"gid\":0,\"size\":0,\"nlink\":2,\"dv\":3,"
				"\"atime\":0,\"mtime\":0,\"ctime\":0},"
				"\"entries\":[",
				withnext ? "\"next\":\"1.2.3\"," : "", F1);
		fid_fmt(&e[0].attr.fid, fs);
		for (i = 0; i <= PROTO_DIR_PAGE_MAX; i++)
			p += sprintf(p,
				     "%s{\"name\":\"n%zu\",\"attr\":"
				     "{\"fid\":\"%s\",\"type\":\"file\","
				     "\"mode\":420,\"uid\":0,\"gid\":0,"
				     "\"size\":0,\"nlink\":1,\"dv\":1,"
				     "\"atime\":0,\"mtime\":0,\"ctime\":0}}",
				     i ? "," : "", i, fs);
		p += sprintf(p, "]}");
		if (withnext) {
			is_int(proto_dir_page_decode(b, (size_t)(p - b), false,
						     &g, next),
			       -E2BIG, "oversized page refused");
			is_int(proto_dir_page_decode(b, (size_t)(p - b), true,
						     &g, next),
			       -E2BIG,
			       "oversized page with next refused "
			       "even first");
			continue;
		}
		/* Without "next" it is a whole (version 1) listing. */
		is_int(proto_dir_page_decode(b, (size_t)(p - b), true, &g,
					     next),
		       0, "a whole listing as the first reply");
		ok(g.n == PROTO_DIR_PAGE_MAX + 1 && next[0] == 0,
		   "all of it, no next");
		proto_dir_release(&g);
		is_int(proto_dir_page_decode(b, (size_t)(p - b), false, &g,
					     next),
		       -E2BIG, "but not as a later page");
	}
	free(b);

	/* Assembling pages: same directory and DV, names across pages. */
	d.n = 1;
	d.ents = &e[0];
	s = proto_dir_page_encode(&d, "1.0.1", &len);
	proto_dir_page_decode(s, len, true, &acc, next);
	free(s);
	d.ents = &e[1];
	s = proto_dir_page_encode(&d, NULL, &len);
	proto_dir_page_decode(s, len, false, &g, next);
	is_int(proto_dir_append(&acc, &g), 0, "append a page");
	ok(acc.n == 2 && g.n == 0 && !g.ents, "entries moved");
	is_int(proto_dir_check_names(&acc), 0, "names unique");
	d.ents = &e[2];
	proto_dir_page_decode(s, len, false, &g, next); /* "b" again */
	is_int(proto_dir_append(&acc, &g), 0, "append the same page again");
	is_int(proto_dir_check_names(&acc), -EINVAL,
	       "a name on two pages is refused");
	free(s);
	s = proto_dir_page_encode(&d, NULL, &len);
	proto_dir_page_decode(s, len, false, &g, next);
	g.dir.dv++;
	is_int(proto_dir_append(&acc, &g), -EINVAL, "a page of another DV");
	ok(acc.n == 3 && g.n == 0, "accumulator unchanged, page released");
	proto_dir_page_decode(s, len, false, &g, next);
	g.dir.fid.oid[3] ^= 1;
	is_int(proto_dir_append(&acc, &g), -EINVAL,
	       "a page of another directory");
	free(s);
	proto_dir_release(&acc);

	/* The query of the directory route. */
	is_int(proto_parse_path("/v1/vol/v/dir/" F1 "?limit=4096", &pp), 0,
	       "limit at the maximum");
	ok(pp.kind == PROTO_P_DIR && pp.limit == 4096 && !pp.has_cursor,
	   "limit parsed");
	is_int(proto_parse_path("/v1/vol/v/dir/" F1 "?limit=4097", &pp),
	       -EINVAL, "oversized limit refused");
	is_int(proto_parse_path("/v1/vol/v/dir/" F1 "?limit=0", &pp), -EINVAL,
	       "limit 0 refused");
	is_int(proto_parse_path("/v1/vol/v/dir/" F1
				"?limit=99999999999999999999999",
				&pp),
	       -EINVAL, "limit overflow refused");
	is_int(proto_parse_path("/v1/vol/v/dir/" F1 "?limit=1&limit=2", &pp),
	       -EINVAL, "limit twice refused");
	is_int(proto_parse_path("/v1/vol/v/dir/" F1 "?limit=10&cursor=7.1.2",
				&pp),
	       0, "cursor parsed");
	ok(pp.has_cursor && pp.cursor.dv == 7 && pp.cursor.bucket == 1 &&
		   pp.cursor.index == 2 && pp.limit == 10,
	   "cursor fields");
	{
		static const char *badc[] = {
			"7.1",	 "7.1.2.3",
			"7..2",	 ".1.2",
			"7.1.",	 "07.1.2",
			"a.b.c", "7.1.2x",
			"",	 "18446744073709551616.0.0",
		};
		char url[200];

		for (i = 0; i < sizeof(badc) / sizeof(badc[0]); i++) {
			snprintf(url, sizeof(url),
				 "/v1/vol/v/dir/" F1 "?limit=5&cursor=%s",
				 badc[i]);
			is_int(proto_parse_path(url, &pp), -EINVAL,
			       "malformed cursor '%s' refused", badc[i]);
		}
	}
	is_int(proto_parse_path("/v1/vol/v/dir/" F1 "?cursor=7.1.2", &pp),
	       -EINVAL, "cursor without limit refused");
	is_int(proto_parse_path("/v1/vol/v/link/" F1 "?limit=5", &pp), -EINVAL,
	       "limit on another route refused");
}

static void
test_link(void)
{
	char big[PROTO_PATH_MAX + 1], *s, *t;
	size_t len;

	s = proto_link_encode("../x/y", &len);
	is_int(proto_link_decode(s, len, &t), 0, "link decodes");
	is_str(t, "../x/y", "link round trip");
	free(s);
	free(t);
	memset(big, 'a', sizeof(big));
	big[PROTO_PATH_MAX - 1] = 0;
	s = proto_link_encode(big, &len);
	is_int(proto_link_decode(s, len, &t), 0, "4095-byte target");
	free(s);
	free(t);
	big[PROTO_PATH_MAX - 1] = 'a';
	big[PROTO_PATH_MAX] = 0;
	s = proto_link_encode(big, &len);
	ok(!s && errno == EINVAL, "4096-byte target not encoded");
	s = proto_link_encode("", &len);
	ok(!s, "empty target not encoded");
}

static void
test_xattrs(void)
{
	struct proto_xattr x[4], *g;
	unsigned char bin[256];
	struct fid f;
	uint64_t dv;
	size_t n, len, i;
	char *s;
	int good = 1;

	for (i = 0; i < sizeof(bin); i++)
		bin[i] = (unsigned char)i;
	fid_parse(F1, &f);
	x[0] = (struct proto_xattr){"user.color", "red", 3};
	x[1] = (struct proto_xattr){"user.empty", "", 0};
	x[2] = (struct proto_xattr){"user.bin", bin, sizeof(bin)};
	x[3] = (struct proto_xattr){"user.two", "ab", 2};
	s = proto_xattrs_encode(&f, 3, x, 4, &len);
	ok(s && strstr(s, "\"cmVk\""), "red is cmVk");
	is_int(proto_xattrs_decode(s, len, &dv, &g, &n), 0, "xattrs decode");
	is_int(n, 4, "four xattrs");
	is_int(dv, 3, "dv");
	for (i = 0; i < n && i < 4; i++)
		if (strcmp(g[i].name, x[i].name) || g[i].len != x[i].len ||
		    memcmp(g[i].value, x[i].value, x[i].len))
			good = 0;
	ok(good && n == 4, "xattrs round trip, in order, all byte values");
	proto_xattrs_free(g, n);
	proto_xattrs_free(NULL, 0);
	free(s);
	/* Every length mod 3 round trips. */
	good = 1;
	for (i = 0; i < 7; i++) {
		x[0] = (struct proto_xattr){"user.a", bin + 100, i};
		s = proto_xattrs_encode(&f, 1, x, 1, &len);
		if (!s || proto_xattrs_decode(s, len, &dv, &g, &n) || n != 1 ||
		    g[0].len != i || memcmp(g[0].value, bin + 100, i))
			good = 0;
		else
			proto_xattrs_free(g, n);
		free(s);
	}
	ok(good, "base64 of 0..6 bytes round trips");
	x[0] = (struct proto_xattr){"", "a", 1};
	s = proto_xattrs_encode(&f, 1, x, 1, &len);
	ok(!s, "empty xattr name not encoded");
	x[0] = (struct proto_xattr){"user.x", bin, PROTO_XATTR_VALUE_MAX + 1};
	s = proto_xattrs_encode(&f, 1, x, 1, &len);
	ok(!s, "oversize xattr value not encoded");
}

static void
test_events(void)
{
	struct proto_event e = {0}, g;
	size_t len;
	char *s;

	e.seq = 1235;
	e.kind = PROTO_EV_DATA;
	fid_parse(F1, &e.fid);
	e.dv = 8;
	s = proto_event_encode(&e, &len);
	ok(s && len == strlen(s) && s[len - 1] == '\n' && !strchr(s, '\n')[1],
	   "event is one line ending in newline");
	is_int(proto_event_decode(s, len, &g), 0, "event decodes with newline");
	ok(g.seq == 1235 && g.kind == PROTO_EV_DATA && fid_eq(&g.fid, &e.fid) &&
		   g.dv == 8,
	   "event round trip");
	free(s);
	e.kind = PROTO_EV_PING;
	s = proto_event_encode(&e, &len);
	ok(s && !strstr(s, "fid"), "ping carries no fid");
	is_int(proto_event_decode(s, len, &g), 0, "ping decodes");
	ok(g.kind == PROTO_EV_PING && fid_is_null(&g.fid) && g.dv == 0,
	   "ping round trip");
	free(s);
	e.kind = 0;
	s = proto_event_encode(&e, &len);
	ok(!s && errno == EINVAL, "kind 0 not encoded");
}

static void
op_round_trip(struct proto_op *op, const char *what)
{
	struct proto_op g;
	size_t len;
	char *s;
	int same;

	s = proto_op_encode(op, &len);
	if (!ok(s != NULL, "%s encodes", what)) {
		diag("errno %d", errno);
		skip(2, "no encoding");
		return;
	}
	is_int(proto_op_decode(s, len, &g), 0, "%s decodes", what);
	same = g.kind == op->kind && !memcmp(g.opid, op->opid, 16) &&
	       fid_eq(&g.parent, &op->parent) && fid_eq(&g.fid, &op->fid) &&
	       fid_eq(&g.newparent, &op->newparent) &&
	       fid_eq(&g.victim, &op->victim) &&
	       !(op->name ? !g.name || strcmp(g.name, op->name) : !!g.name) &&
	       !(op->newname ? !g.newname || strcmp(g.newname, op->newname)
			     : !!g.newname) &&
	       !(op->target ? !g.target || strcmp(g.target, op->target)
			    : !!g.target) &&
	       !(op->xname ? !g.xname || strcmp(g.xname, op->xname)
			   : !!g.xname) &&
	       g.mode == op->mode && g.uid == op->uid && g.gid == op->gid &&
	       g.type == op->type && g.rdev == op->rdev &&
	       g.base_dv == op->base_dv && g.mask == op->mask &&
	       g.size == op->size && g.atime_ns == op->atime_ns &&
	       g.mtime_ns == op->mtime_ns && g.flags == op->flags &&
	       g.xlen == op->xlen &&
	       (!op->xlen || !memcmp(g.xvalue, op->xvalue, op->xlen)) &&
	       !memcmp(g.txid, op->txid, 16) &&
	       g.chunk_size == op->chunk_size && g.nchunks == op->nchunks &&
	       (!op->nchunks ||
		!memcmp(g.chunks, op->chunks, op->nchunks * sizeof(uint64_t))) &&
	       g.dlen == op->dlen && !g.data == !op->data &&
	       (!op->dlen || !memcmp(g.data, op->data, op->dlen));
	if (!ok(same, "%s round trip", what))
		diag("%s", s);
	proto_op_release(&g);
	free(s);
}

static void
test_ops(void)
{
	struct proto_op op;
	uint64_t chunks[3] = {0, 5, 2};
	struct proto_op g;
	size_t len;
	char *s;

	memset(&op, 0, sizeof(op));
	op.kind = PROTO_OP_CREATE;
	memcpy(op.opid, "0123456789abcdef", 16);
	fid_parse(F1, &op.parent);
	op.name = "a.txt";
	fid_parse(F2, &op.fid);
	op.type = PROTO_T_FILE;
	op.mode = 0644;
	op.uid = 1000;
	op.gid = 100;
	op_round_trip(&op, "create");
	op.type = PROTO_T_FIFO;
	memset(&op.fid, 0, sizeof(op.fid));
	op_round_trip(&op, "create fifo, server picks fid");

	op.kind = PROTO_OP_MKDIR;
	op.type = PROTO_T_DIR;
	op.mode = 01777;
	op_round_trip(&op, "mkdir");

	op.kind = PROTO_OP_SYMLINK;
	op.type = PROTO_T_SYMLINK;
	op.mode = 0;
	op.target = "/etc/passwd";
	op_round_trip(&op, "symlink");
	op.target = NULL;

	memset(&op, 0, sizeof(op));
	memcpy(op.opid, "fedcba9876543210", 16);
	fid_parse(F1, &op.parent);
	fid_parse(F2, &op.fid);
	op.name = "b";
	op.kind = PROTO_OP_LINK;
	op_round_trip(&op, "link");
	op.kind = PROTO_OP_UNLINK;
	op_round_trip(&op, "unlink");
	op.kind = PROTO_OP_RMDIR;
	op_round_trip(&op, "rmdir");
	op.kind = PROTO_OP_RENAME;
	fid_parse(F3, &op.newparent);
	op.newname = "c";
	op_round_trip(&op, "rename");
	op.flags = PROTO_RENAME_NOREPLACE;
	op_round_trip(&op, "rename noreplace");
	op.flags = PROTO_RENAME_EXCHANGE;
	fid_parse(F3, &op.victim);
	op_round_trip(&op, "rename exchange");

	memset(&op, 0, sizeof(op));
	op.kind = PROTO_OP_SETATTR;
	fid_parse(F2, &op.fid);
	op.base_dv = 9;
	op.mask = PROTO_SA_MODE | PROTO_SA_SIZE | PROTO_SA_MTIME;
	op.mode = 0600;
	op.size = 1ull << 50;
	op.mtime_ns = 1700000000000000001LL;
	op_round_trip(&op, "setattr");
	op.mask = PROTO_SA_UID | PROTO_SA_GID | PROTO_SA_ATIME;
	op.mode = 0;
	op.size = 0;
	op.mtime_ns = 0;
	op.uid = 0;
	op.gid = 4294967295u;
	op.atime_ns = -1;
	op_round_trip(&op, "setattr uid gid atime");
	op.mask = 0;
	op.uid = op.gid = 0;
	op.atime_ns = 0;
	op_round_trip(&op, "setattr empty mask");

	memset(&op, 0, sizeof(op));
	op.kind = PROTO_OP_SETXATTR;
	fid_parse(F2, &op.fid);
	op.xname = "user.color";
	op.xvalue = "blue\0green";
	op.xlen = 10;
	op.flags = PROTO_XATTR_CREATE;
	op_round_trip(&op, "setxattr");
	op.xvalue = NULL;
	op.xlen = 0;
	op.flags = PROTO_XATTR_REPLACE;
	op_round_trip(&op, "setxattr empty value");
	op.kind = PROTO_OP_REMOVEXATTR;
	op.flags = 0;
	op_round_trip(&op, "removexattr");

	memset(&op, 0, sizeof(op));
	op.kind = PROTO_OP_STORE;
	fid_parse(F2, &op.fid);
	op.base_dv = 3;
	memcpy(op.txid, "txid-0123456789a", 16);
	op.chunk_size = 262144;
	op.size = 5 * 262144 + 17;
	op.chunks = chunks;
	op.nchunks = 3;
	op_round_trip(&op, "store");
	op.nchunks = 0;
	op_round_trip(&op, "store without chunks (truncate)");

	memset(&op, 0, sizeof(op));
	s = proto_op_encode(&op, &len);
	ok(!s && errno == EINVAL, "op kind none not encoded");
	op.kind = PROTO_OP_UNLINK;
	op.name = "a/b";
	s = proto_op_encode(&op, &len);
	ok(!s && errno == EINVAL, "op with bad name not encoded");

	/* Unknown members are ignored; required ones are not optional. */
	s = "{\"op\":\"unlink\",\"opid\":\"" OPID "\",\"parent\":\"" F1
	    "\",\"name\":\"x\",\"fid\":\"" F2 "\",\"future\":[1,{\"a\":2}]}";
	is_int(proto_op_decode(s, strlen(s), &g), 0, "unknown member ignored");
	proto_op_release(&g);
	proto_op_release(NULL);
}

static void
test_result_error(void)
{
	struct proto_op_result r = {0}, g;
	struct proto_error e;
	size_t len;
	char *s, msg[600];

	r.has_attr = r.has_parent = r.has_victim = true;
	mkattr(&r.attr, F1, PROTO_T_FILE);
	mkattr(&r.parent, F2, PROTO_T_DIR);
	mkattr(&r.victim, F3, PROTO_T_FILE);
	r.victim.nlink = 0;
	r.event_seq = 12345678901ull;
	s = proto_op_result_encode(&r, &len);
	is_int(proto_op_result_decode(s, len, &g), 0, "op result decodes");
	ok(g.has_attr && g.has_parent && !g.has_newparent && g.has_victim &&
		   attr_eq(&g.attr, &r.attr) && attr_eq(&g.victim, &r.victim) &&
		   attr_eq(&g.parent, &r.parent) &&
		   g.event_seq == 12345678901ull,
	   "op result round trip, event_seq included");
	free(s);
	/* event_seq is optional (older servers); a bad one fails the reply */
	{
		static const char *const bad[] = {
			"{\"event_seq\":-1}",
			"{\"event_seq\":\"7\"}",
			"{\"event_seq\":1.5}",
			"{\"event_seq\":null}",
			"{\"event_seq\":18446744073709551615}",
		};

		ok(proto_op_result_decode("{}", 2, &g) == 0 &&
			   g.event_seq == 0,
		   "no event_seq: 0");
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			ok(proto_op_result_decode(bad[i], strlen(bad[i]), &g) ==
					   -EINVAL &&
				   g.event_seq == 0,
			   "bad event_seq %s: -EINVAL, nothing kept", bad[i]);
	}
	memset(&r, 0, sizeof(r));
	s = proto_op_result_encode(&r, &len);
	is_str(s, "{}", "empty op result");
	is_int(proto_op_result_decode(s, len, &g), 0, "empty result decodes");
	free(s);

	s = proto_error_encode(EEXIST, "name exists", 9, &len);
	is_str(s, "{\"error\":\"name exists\",\"errno\":\"EEXIST\"}",
	       "error body without dv for 409");
	is_int(proto_error_decode(s, len, &e), 0, "error decodes");
	ok(e.err == EEXIST && !strcmp(e.msg, "name exists") && e.cur_dv == 0,
	   "error round trip");
	free(s);
	s = proto_error_encode(-ESTALE, NULL, 0, &len);
	ok(s && strstr(s, "\"dv\":0") && strstr(s, "ESTALE"),
	   "410 error carries dv, even 0");
	free(s);
	s = proto_error_encode(ECANCELED, "stale", 12, &len);
	is_int(proto_error_decode(s, len, &e), 0, "412 decodes");
	ok(e.err == ECANCELED && e.cur_dv == 12, "412 carries the current dv");
	free(s);
	s = "{\"errno\":\"EWEIRD\"}";
	is_int(proto_error_decode(s, strlen(s), &e), 0, "unknown errno");
	ok(e.err == EIO && e.msg[0] == 0, "unknown errno reads as EIO");
	/* A long message is cut at a character boundary. */
	strcpy(msg, "{\"errno\":\"EIO\",\"error\":\"");
	len = strlen(msg);
	while (len < 20 + 300) {
		memcpy(msg + len, "\xc3\xa9", 2);
		len += 2;
	}
	strcpy(msg + len, "\"}");
	is_int(proto_error_decode(msg, strlen(msg), &e), 0, "long message");
	ok(strlen(e.msg) <= 255 && strlen(e.msg) % 2 == 0 &&
		   strlen(e.msg) >= 250 &&
		   proto_name_check(e.msg, strlen(e.msg)) == 0,
	   "message truncated on a UTF-8 boundary");
}

static void
test_paths(void)
{
	struct proto_path p;
	struct fid f;
	uint8_t txid[16];
	char buf[200];
	int n;

	fid_parse(F1, &f);
	n = proto_chunk_path(buf, sizeof(buf), "home", &f, 7, 3, 262144);
	is_str(buf, "/v1/vol/home/data/" F1 "/7/3?size=262144", "chunk path");
	is_int(n, (int)strlen(buf), "returns its length");
	is_int(proto_chunk_path(buf, 20, "home", &f, 7, 3, 262144),
	       -ENAMETOOLONG, "chunk path buffer too small");
	is_int(proto_chunk_path(buf, sizeof(buf), "ho/me", &f, 7, 3, 262144),
	       -EINVAL, "chunk path with bad volume");
	is_int(proto_chunk_path(buf, sizeof(buf), "home", &f, 7, 3, 1000),
	       -EINVAL, "chunk path with bad chunk size");
	is_int(proto_parse_path("/v1/vol/home/data/" F1 "/7/3?size=262144", &p),
	       0, "parse chunk path");
	ok(p.kind == PROTO_P_DATA && !strcmp(p.vol, "home") &&
		   fid_eq(&p.fid, &f) && p.dv == 7 && p.chunk == 3 &&
		   p.chunk_size == 262144,
	   "chunk path parts");
	memcpy(txid,
	       "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c"
	       "\x0d\x0e\xff",
	       16);
	proto_stage_path(buf, sizeof(buf), "v.1", &f, txid, 2199023255551ull,
			 4194304);
	is_str(buf,
	       "/v1/vol/v.1/stage/" F1 "/000102030405060708090a0b0c0d0eff/"
	       "2199023255551?size=4194304",
	       "stage path");
	is_int(proto_parse_path(buf, &p), 0, "parse stage path");
	ok(p.kind == PROTO_P_STAGE && !memcmp(p.txid, txid, 16) &&
		   p.chunk == 2199023255551ull && p.chunk_size == 4194304,
	   "stage path parts");

	is_int(proto_parse_path("/v1/ping", &p), 0, "ping");
	is_int(p.kind, PROTO_P_PING, "ping kind");
	is_int(proto_parse_path("/v1/vol/home", &p), 0, "volume");
	is_int(p.kind, PROTO_P_VOL, "volume kind");
	is_int(proto_parse_path("/v1/vol/home/getattr", &p), 0, "getattr");
	is_int(proto_parse_path("/v1/vol/home/op", &p), 0, "op");
	is_int(p.kind, PROTO_P_OP, "op kind");
	is_int(proto_parse_path("/v1/vol/home/batch", &p), 0, "batch");
	is_int(p.kind, PROTO_P_BATCH, "batch kind");
	ok(proto_parse_path("/v1/vol/home/batch/", &p) < 0,
	   "batch with a trailing slash");
	is_int(proto_parse_path("/v1/vol/home/dir/" F1, &p), 0, "dir");
	is_int(p.kind, PROTO_P_DIR, "dir kind");
	is_int(proto_parse_path("/v1/vol/home/link/" F1, &p), 0, "link");
	is_int(proto_parse_path("/v1/vol/home/xattr/" F1, &p), 0, "xattr");
	is_int(p.kind, PROTO_P_XATTR, "xattr kind");
	is_int(proto_parse_path("/v1/vol/home/events", &p), 0, "events");
	ok(p.kind == PROTO_P_EVENTS && !p.has_since, "events without since");
	is_int(proto_parse_path("/v1/vol/home/events?since=0", &p), 0,
	       "events since 0");
	ok(p.has_since && p.since == 0, "since 0");
	is_int(proto_parse_path(
		       "/v1/vol/home/events?x=1&since=18446744073709551615",
		       &p),
	       0, "events since max, unknown parameter");
	ok(p.since == UINT64_MAX, "since max");
	is_int(proto_parse_path("/v1/vol/home/data/" F1
				"/0/9223372036854775807?size=65536",
				&p),
	       -ERANGE, "chunk offset overflows off_t");
}

/* Which decoder a malformed case targets. */
enum dec {
	D_VOLINFO,
	D_ATTRS,
	D_GETATTR,
	D_DIR,
	D_LINK,
	D_XATTRS,
	D_EVENT,
	D_OP,
	D_RESULT,
	D_ERROR,
	D_PATH,
};

static const char *const dec_names[] = {
	"volinfo", "attrs", "getattr_req", "dir",   "link", "xattrs",
	"event",   "op",    "op_result",   "error", "path"};

/* Run decoder @d on @buf; on success release what it returned. */
static int
decode_any(enum dec d, const char *buf, size_t len)
{
	struct proto_volinfo v;
	struct proto_attr *a;
	struct proto_dir dir;
	struct proto_xattr *x;
	struct proto_event ev;
	struct proto_op op;
	struct proto_op_result r;
	struct proto_error e;
	struct proto_path p;
	struct fid *f;
	uint64_t dv;
	size_t n;
	char *t, *z;
	int *errs, rc = -EINVAL;

	switch (d) {
	case D_VOLINFO:
		return proto_volinfo_decode(buf, len, &v);
	case D_ATTRS:
		rc = proto_attrs_decode(buf, len, &a, &errs, &n);
		if (!rc) {
			free(a);
			free(errs);
		} else if (a || errs || n) {
			rc = 1000; /* outputs not released */
		}
		return rc;
	case D_GETATTR:
		rc = proto_getattr_req_decode(buf, len, &f, &n);
		if (!rc)
			free(f);
		else if (f || n)
			rc = 1000;
		return rc;
	case D_DIR:
		rc = proto_dir_decode(buf, len, &dir);
		if (!rc)
			proto_dir_release(&dir);
		else if (dir.n || dir.ents)
			rc = 1000;
		return rc;
	case D_LINK:
		rc = proto_link_decode(buf, len, &t);
		if (!rc)
			free(t);
		else if (t)
			rc = 1000;
		return rc;
	case D_XATTRS:
		rc = proto_xattrs_decode(buf, len, &dv, &x, &n);
		if (!rc)
			proto_xattrs_free(x, n);
		else if (x || n)
			rc = 1000;
		return rc;
	case D_EVENT:
		return proto_event_decode(buf, len, &ev);
	case D_OP:
		rc = proto_op_decode(buf, len, &op);
		if (!rc)
			proto_op_release(&op);
		else if (op.name || op.newname || op.target || op.xname ||
			 op.xvalue || op.chunks)
			rc = 1000;
		return rc;
	case D_RESULT:
		return proto_op_result_decode(buf, len, &r);
	case D_ERROR:
		return proto_error_decode(buf, len, &e);
	case D_PATH:
		/* The path parser takes a C string. */
		z = strndup(buf, len);
		if (!z)
			return -ENOMEM;
		rc = proto_parse_path(z, &p);
		free(z);
		return rc;
	}
	return rc;
}

#define ATTR_F(fid, type)                                                      \
	"{\"fid\":\"" fid "\",\"type\":\"" type "\",\"mode\":420,\"uid\":1,"   \
	"\"gid\":2,\"size\":3,\"nlink\":1,\"dv\":1,\"atime\":0,\"mtime\":0,"   \
	"\"ctime\":0}"
#define ATTR ATTR_F(F1, "file")
#define DIRA ATTR_F(F1, "dir")
#define VOLINFO_HEAD                                                           \
	"{\"protocol\":1,\"volume\":\"home\",\"id\":42,\"root\":\"" F1 "\","   \
	"\"event_seq\":1,\"bytes_used\":0,\"bytes_limit\":0,"                  \
	"\"files_used\":1,\"files_limit\":0,"
#define OPHEAD(kind) "{\"op\":\"" kind "\",\"opid\":\"" OPID "\","
#define UNLINK_OK    OPHEAD("unlink") "\"parent\":\"" F2 "\",\"fid\":\"" F3 "\","
#define STORE_HEAD                                                             \
	OPHEAD("store")                                                        \
	"\"fid\":\"" F2 "\",\"base_dv\":1,\"txid\":\"" OPID "\",\"size\":10,"
#define XA_HEAD "{\"fid\":\"" F1 "\",\"dv\":1,\"xattrs\":"

static const struct {
	enum dec d;
	const char *in;
	int want;
} cases[] = {
	/* volinfo */
	{D_VOLINFO, VOLINFO_HEAD "\"readonly\":false}", 0},
	{D_VOLINFO, VOLINFO_HEAD "\"readonly\":0}", -EINVAL},
	{D_VOLINFO, VOLINFO_HEAD "\"readonly\":false", -EINVAL},
	{D_VOLINFO, VOLINFO_HEAD "}", -EINVAL},
	{D_VOLINFO, "", -EINVAL},
	{D_VOLINFO, "[]", -EINVAL},
	{D_VOLINFO, "null", -EINVAL},
	{D_VOLINFO, "\"str\"", -EINVAL},
	{D_VOLINFO, "{} {}", -EINVAL},
	{D_VOLINFO, "{\"protocol\":1,\"protocol\":1}", -EINVAL},
	{D_VOLINFO,
	 "{\"protocol\":1,\"volume\":\"../etc\",\"id\":42,\"root\":\"" F1
	 "\",\"event_seq\":1,\"bytes_used\":0,\"bytes_limit\":0,"
	 "\"files_used\":1,\"files_limit\":0,\"readonly\":true}",
	 -EINVAL},
	{D_VOLINFO,
	 "{\"protocol\":1,\"volume\":\"home\",\"id\":43,\"root\":\"" F1
	 "\",\"event_seq\":1,\"bytes_used\":0,\"bytes_limit\":0,"
	 "\"files_used\":1,\"files_limit\":0,\"readonly\":true}",
	 -EINVAL}, /* root in another volume */
	{D_VOLINFO,
	 "{\"protocol\":1,\"volume\":\"home\",\"id\":42,\"root\":\"" F1
	 "\",\"event_seq\":-1,\"bytes_used\":0,\"bytes_limit\":0,"
	 "\"files_used\":1,\"files_limit\":0,\"readonly\":true}",
	 -EINVAL},
	{D_VOLINFO,
	 "{\"protocol\":1,\"volume\":\"home\",\"id\":42,\"root\":\"" F1
	 "\",\"event_seq\":18446744073709551615,\"bytes_used\":0,"
	 "\"bytes_limit\":0,\"files_used\":1,\"files_limit\":0,"
	 "\"readonly\":true}",
	 -EINVAL},
	{D_VOLINFO,
	 "{\"protocol\":1,\"volume\":\"home\",\"id\":42,\"root\":\"" F1
	 "\",\"event_seq\":1.5,\"bytes_used\":0,\"bytes_limit\":0,"
	 "\"files_used\":1,\"files_limit\":0,\"readonly\":true}",
	 -EINVAL},
	{D_VOLINFO,
	 "{\"protocol\":1,\"volume\":\"home\",\"id\":4294967296,\"root\":\"" F1
	 "\",\"event_seq\":1,\"bytes_used\":0,\"bytes_limit\":0,"
	 "\"files_used\":1,\"files_limit\":0,\"readonly\":true}",
	 -EINVAL},

	/* attrs */
	{D_ATTRS, "{\"attrs\":[" ATTR "]}", 0},
	{D_ATTRS, "{\"attrs\":[" ATTR "," ATTR_F(F2, "symlink") "]}", 0},
	{D_ATTRS, "{\"attrs\":[{\"fid\":\"" F1 "\",\"errno\":\"ENOENT\"}]}", 0},
	{D_ATTRS, "{\"attrs\":[{\"fid\":\"" F1 "\",\"errno\":5}]}", -EINVAL},
	{D_ATTRS, "{\"attrs\":[{\"errno\":\"ENOENT\"}]}", -EINVAL},
	{D_ATTRS, "{\"attrs\":{}}", -EINVAL},
	{D_ATTRS, "{\"attrs\":[1]}", -EINVAL},
	{D_ATTRS, "{\"attrs\":[" ATTR "," ATTR_F(F2, "door") "]}", -EINVAL},
	{D_ATTRS, "{\"attrs\":[" ATTR_F("0000002a.0011", "file") "]}", -EINVAL},
	{D_ATTRS,
	 "{\"attrs\":[" ATTR_F("0000002a.0011223344556677889900aabbccddeg",
			       "file") "]}",
	 -EINVAL},
	{D_ATTRS,
	 "{\"attrs\":[" ATTR_F("00000000.00000000000000000000000000000000",
			       "file") "]}",
	 -EINVAL},
	{D_ATTRS,
	 "{\"attrs\":[{\"fid\":\"" F1 "\",\"type\":\"file\",\"mode\":4096,"
	 "\"uid\":1,\"gid\":2,\"size\":3,\"nlink\":1,\"dv\":1,\"atime\":0,"
	 "\"mtime\":0,\"ctime\":0}]}",
	 -EINVAL},
	{D_ATTRS,
	 "{\"attrs\":[{\"fid\":\"" F1 "\",\"type\":\"file\",\"mode\":420,"
	 "\"uid\":-1,\"gid\":2,\"size\":3,\"nlink\":1,\"dv\":1,\"atime\":0,"
	 "\"mtime\":0,\"ctime\":0}]}",
	 -EINVAL},
	{D_ATTRS,
	 "{\"attrs\":[{\"fid\":\"" F1 "\",\"type\":\"file\",\"mode\":420,"
	 "\"uid\":1,\"gid\":2,\"size\":-3,\"nlink\":1,\"dv\":1,\"atime\":0,"
	 "\"mtime\":0,\"ctime\":0}]}",
	 -EINVAL},
	{D_ATTRS,
	 "{\"attrs\":[{\"fid\":\"" F1 "\",\"type\":\"file\",\"mode\":420,"
	 "\"uid\":1,\"gid\":2,\"size\":3,\"nlink\":1,\"dv\":1,\"atime\":0,"
	 "\"mtime\":0}]}",
	 -EINVAL},
	{D_ATTRS,
	 "{\"attrs\":[{\"fid\":\"" F1 "\",\"type\":\"file\",\"mode\":420,"
	 "\"uid\":1,\"gid\":2,\"size\":3,\"nlink\":1,\"dv\":1,\"atime\":0,"
	 "\"mtime\":\"0\",\"ctime\":0}]}",
	 -EINVAL},
	{D_ATTRS,
	 "{\"attrs\":[{\"fid\":\"" F1 "\",\"type\":\"file\",\"mode\":420,"
	 "\"uid\":1,\"gid\":2,\"size\":99999999999999999999,\"nlink\":1,"
	 "\"dv\":1,\"atime\":0,\"mtime\":0,\"ctime\":0}]}",
	 -EINVAL},
	{D_ATTRS,
	 "{\"attrs\":[{\"fid\":\"" F1
	 "\",\"type\":\"fi\\u0000le\",\"mode\":420,"
	 "\"uid\":1,\"gid\":2,\"size\":3,\"nlink\":1,\"dv\":1,\"atime\":0,"
	 "\"mtime\":0,\"ctime\":0}]}",
	 -EINVAL},

	/* getattr request */
	{D_GETATTR, "{\"fids\":[\"" F1 "\",\"" F2 "\"]}", 0},
	{D_GETATTR, "{\"fids\":[]}", 0},
	{D_GETATTR, "{\"fids\":[\"" F1 "\",3]}", -EINVAL},
	{D_GETATTR, "{\"fids\":\"" F1 "\"}", -EINVAL},
	{D_GETATTR, "{\"fids\":[\"" F1 "x\"]}", -EINVAL},
	{D_GETATTR, "{\"fids\":[\"" F1 "\"]", -EINVAL},
	{D_GETATTR, "{}", -EINVAL},

	/* dir */
	{D_DIR,
	 "{\"dir\":" DIRA ",\"entries\":[{\"name\":\"a\",\"attr\":" ATTR "}]}",
	 0},
	{D_DIR, "{\"dir\":" ATTR ",\"entries\":[]}", -EINVAL}, /* not dir */
	{D_DIR, "{\"dir\":" DIRA "}", -EINVAL},
	{D_DIR, "{\"dir\":" DIRA ",\"entries\":[{\"name\":\"a\"}]}", -EINVAL},
	{D_DIR,
	 "{\"dir\":" DIRA ",\"entries\":[{\"name\":\"a\",\"attr\":" ATTR
	 "},{\"name\":\"a\",\"attr\":" ATTR "}]}",
	 -EINVAL},
	{D_DIR,
	 "{\"dir\":" DIRA ",\"entries\":[{\"name\":\"a/b\",\"attr\":" ATTR
	 "}]}",
	 -EINVAL},
	{D_DIR,
	 "{\"dir\":" DIRA ",\"entries\":[{\"name\":\".\",\"attr\":" ATTR "}]}",
	 -EINVAL},
	{D_DIR,
	 "{\"dir\":" DIRA ",\"entries\":[{\"name\":\"..\",\"attr\":" ATTR "}]}",
	 -EINVAL},
	{D_DIR,
	 "{\"dir\":" DIRA ",\"entries\":[{\"name\":\"\",\"attr\":" ATTR "}]}",
	 -EINVAL},
	{D_DIR,
	 "{\"dir\":" DIRA ",\"entries\":[{\"name\":\"a\\u0000b\","
	 "\"attr\":" ATTR "}]}",
	 -EINVAL},
	{D_DIR,
	 "{\"dir\":" DIRA ",\"entries\":[{\"name\":\"\\ud800\","
	 "\"attr\":" ATTR "}]}",
	 -EINVAL},
	{D_DIR,
	 "{\"dir\":" DIRA ",\"entries\":[{\"name\":\"\xc0\xaf\","
	 "\"attr\":" ATTR "}]}",
	 -EINVAL},
	{D_DIR,
	 "{\"dir\":" DIRA ",\"entries\":[{\"name\":\"\xed\xa0\x80\","
	 "\"attr\":" ATTR "}]}",
	 -EINVAL},
	{D_DIR,
	 "{\"dir\":" DIRA ",\"entries\":[{\"name\":7,\"attr\":" ATTR "}]}",
	 -EINVAL},
	{D_DIR, "{\"dir\":" DIRA ",\"entries\":[\"a\"]}", -EINVAL},

	/* link */
	{D_LINK, "{\"target\":\"a\"}", 0},
	{D_LINK, "{\"target\":\"\"}", -EINVAL},
	{D_LINK, "{\"target\":null}", -EINVAL},
	{D_LINK, "{\"target\":\"a\\u0000b\"}", -EINVAL},
	{D_LINK, "{\"targ\":\"a\"}", -EINVAL},
	{D_LINK, "{\"target\":\"\xff\"}", -EINVAL},

	/* xattrs */
	{D_XATTRS, XA_HEAD "{\"user.a\":\"cmVk\",\"user.b\":\"\"}}", 0},
	{D_XATTRS, XA_HEAD "{}}", 0},
	{D_XATTRS, XA_HEAD "{\"user.a\":\"cmV\"}}", -EINVAL},
	{D_XATTRS, XA_HEAD "{\"user.a\":\"cmVk=\"}}", -EINVAL},
	{D_XATTRS, XA_HEAD "{\"user.a\":\"cm=k\"}}", -EINVAL},
	{D_XATTRS, XA_HEAD "{\"user.a\":\"cmV!\"}}", -EINVAL},
	{D_XATTRS, XA_HEAD "{\"user.a\":\"cm Vk\"}}", -EINVAL},
	{D_XATTRS, XA_HEAD "{\"user.a\":\"cmVk\\n\"}}", -EINVAL},
	{D_XATTRS, XA_HEAD "{\"user.a\":\"cmW=\"}}", -EINVAL}, /* bits */
	{D_XATTRS, XA_HEAD "{\"user.a\":\"cn==\"}}", -EINVAL}, /* bits */
	{D_XATTRS, XA_HEAD "{\"user.a\":\"====\"}}", -EINVAL},
	{D_XATTRS, XA_HEAD "{\"user.a\":\"Y===\"}}", -EINVAL},
	{D_XATTRS, XA_HEAD "{\"user.a\":\"Y2==Y2==\"}}", -EINVAL},
	{D_XATTRS, XA_HEAD "{\"user.a\":1}}", -EINVAL},
	{D_XATTRS, XA_HEAD "{\"\":\"cmVk\"}}", -EINVAL},
	{D_XATTRS, XA_HEAD "{\"user.a\":\"cmVk\",\"user.a\":\"cmVk\"}}",
	 -EINVAL},
	{D_XATTRS, XA_HEAD "[]}", -EINVAL},
	{D_XATTRS, "{\"dv\":1,\"xattrs\":{}}", -EINVAL},
	{D_XATTRS, "{\"fid\":\"" F1 "\",\"xattrs\":{}}", -EINVAL},

	/* events */
	{D_EVENT, "{\"seq\":1,\"kind\":\"dir\",\"fid\":\"" F1 "\",\"dv\":2}\n",
	 0},
	{D_EVENT, "{\"seq\":1,\"kind\":\"reset\"}", 0},
	{D_EVENT, "{\"seq\":1,\"kind\":\"gone\",\"fid\":\"" F1 "\",\"dv\":0}",
	 0},
	{D_EVENT, "{\"seq\":1,\"kind\":\"data\",\"fid\":\"" F1 "\"}", -EINVAL},
	{D_EVENT, "{\"seq\":1,\"kind\":\"data\",\"dv\":1}", -EINVAL},
	{D_EVENT, "{\"seq\":1,\"kind\":\"boom\"}", -EINVAL},
	{D_EVENT, "{\"kind\":\"ping\"}", -EINVAL},
	{D_EVENT, "{\"seq\":-1,\"kind\":\"ping\"}", -EINVAL},
	{D_EVENT,
	 "{\"seq\":1,\"kind\":\"ping\"}\n{\"seq\":2,\"kind\":\"ping\"}",
	 -EINVAL},
	{D_EVENT, "{\"seq\":1,\"kind\":\"pi", -EINVAL},

	/* ops */
	{D_OP, UNLINK_OK "\"name\":\"x\"}", 0},
	{D_OP, UNLINK_OK "\"name\":\"x/y\"}", -EINVAL},
	{D_OP, UNLINK_OK "\"name\":\"..\"}", -EINVAL},
	{D_OP, UNLINK_OK "\"name\":\"\"}", -EINVAL},
	{D_OP, UNLINK_OK "\"name\":\"x\\u0000\"}", -EINVAL},
	{D_OP, UNLINK_OK "\"name\":\"\xfe\"}", -EINVAL},
	{D_OP,
	 UNLINK_OK
	 "\"name\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
	 -ENAMETOOLONG}, /* 256 bytes */
	{D_OP, UNLINK_OK "\"name\":1}", -EINVAL},
	{D_OP, UNLINK_OK "\"name\":\"x\",\"name\":\"y\"}", -EINVAL},
	{D_OP, OPHEAD("unlink") "\"parent\":\"" F2 "\",\"name\":\"x\"}",
	 -EINVAL},
	{D_OP,
	 "{\"op\":\"unlink\",\"parent\":\"" F2 "\",\"name\":\"x\","
	 "\"fid\":\"" F3 "\"}",
	 -EINVAL}, /* no opid */
	{D_OP,
	 "{\"op\":\"unlink\",\"opid\":\"9f\",\"parent\":\"" F2
	 "\",\"name\":\"x\",\"fid\":\"" F3 "\"}",
	 -EINVAL},
	{D_OP,
	 "{\"op\":\"unlink\",\"opid\":\"zz8e7d6c5b4a39281706f5e4d3c2b1a0\","
	 "\"parent\":\"" F2 "\",\"name\":\"x\",\"fid\":\"" F3 "\"}",
	 -EINVAL},
	{D_OP, OPHEAD("explode") "\"fid\":\"" F3 "\"}", -EINVAL},
	{D_OP,
	 OPHEAD("create") "\"parent\":\"" F2 "\",\"name\":\"x\","
			  "\"type\":\"file\",\"mode\":420,\"uid\":0,"
			  "\"gid\":0}",
	 0},
	{D_OP,
	 OPHEAD("create") "\"parent\":\"" F2 "\",\"name\":\"x\","
			  "\"type\":\"dir\",\"mode\":420,\"uid\":0,"
			  "\"gid\":0}",
	 -EINVAL},
	{D_OP,
	 OPHEAD("create") "\"parent\":\"" F2 "\",\"name\":\"x\","
			  "\"type\":\"file\",\"mode\":4096,\"uid\":0,"
			  "\"gid\":0}",
	 -EINVAL},
	{D_OP,
	 OPHEAD("create") "\"parent\":\"" F2 "\",\"name\":\"x\","
			  "\"type\":\"file\",\"mode\":420,\"uid\":0}",
	 -EINVAL},
	{D_OP,
	 OPHEAD("create") "\"parent\":\"" F2 "\",\"name\":\"x\","
			  "\"fid\":\"bad\",\"type\":\"file\","
			  "\"mode\":420,\"uid\":0,\"gid\":0}",
	 -EINVAL},
	{D_OP,
	 OPHEAD("symlink") "\"parent\":\"" F2 "\",\"name\":\"x\","
			   "\"target\":\"\",\"uid\":0,\"gid\":0}",
	 -EINVAL},
	{D_OP,
	 OPHEAD("rename") "\"parent\":\"" F2 "\",\"name\":\"x\","
			  "\"fid\":\"" F3 "\",\"newparent\":\"" F2
			  "\",\"newname\":\"y\",\"flags\":[\"exchange\"]}",
	 -EINVAL}, /* exchange without victim */
	{D_OP,
	 OPHEAD("rename") "\"parent\":\"" F2 "\",\"name\":\"x\","
			  "\"fid\":\"" F3 "\",\"newparent\":\"" F2
			  "\",\"newname\":\"y\",\"victim\":\"" F1
			  "\",\"flags\":[\"exchange\",\"noreplace\"]}",
	 -EINVAL},
	{D_OP,
	 OPHEAD("rename") "\"parent\":\"" F2 "\",\"name\":\"x\","
			  "\"fid\":\"" F3 "\",\"newparent\":\"" F2
			  "\",\"newname\":\"y\",\"flags\":[\"sideways\"]}",
	 -EINVAL},
	{D_OP,
	 OPHEAD("rename") "\"parent\":\"" F2 "\",\"name\":\"x\","
			  "\"fid\":\"" F3 "\",\"newparent\":\"" F2
			  "\",\"newname\":\"y\",\"flags\":\"noreplace\"}",
	 -EINVAL},
	{D_OP,
	 OPHEAD("rename") "\"parent\":\"" F2 "\",\"name\":\"x\","
			  "\"fid\":\"" F3 "\",\"newparent\":\"" F2
			  "\",\"newname\":\"..\"}",
	 -EINVAL},
	{D_OP,
	 OPHEAD("setattr") "\"fid\":\"" F3 "\",\"base_dv\":1,"
			   "\"mask\":[\"mode\"],\"mode\":511}",
	 0},
	{D_OP,
	 OPHEAD("setattr") "\"fid\":\"" F3 "\",\"base_dv\":1,"
			   "\"mask\":[\"mode\"]}",
	 -EINVAL},
	{D_OP,
	 OPHEAD("setattr") "\"fid\":\"" F3 "\",\"base_dv\":1,"
			   "\"mask\":[\"colour\"]}",
	 -EINVAL},
	{D_OP,
	 OPHEAD("setattr") "\"fid\":\"" F3 "\",\"base_dv\":1,"
			   "\"mask\":[\"size\"],\"size\":-1}",
	 -EINVAL},
	{D_OP,
	 OPHEAD("setattr") "\"fid\":\"" F3 "\",\"base_dv\":1,"
			   "\"mask\":[\"mode\",\"mode\"],\"mode\":1}",
	 -EINVAL},
	{D_OP, OPHEAD("setattr") "\"fid\":\"" F3 "\",\"mask\":[]}", -EINVAL},
	{D_OP,
	 OPHEAD("setxattr") "\"fid\":\"" F3 "\",\"xname\":\"user.a\","
			    "\"xvalue\":\"cmVk\"}",
	 0},
	{D_OP,
	 OPHEAD("setxattr") "\"fid\":\"" F3 "\",\"xname\":\"user.a\","
			    "\"xvalue\":\"cmVk===\"}",
	 -EINVAL},
	{D_OP,
	 OPHEAD("setxattr") "\"fid\":\"" F3 "\",\"xname\":\"\","
			    "\"xvalue\":\"cmVk\"}",
	 -EINVAL},
	{D_OP, OPHEAD("setxattr") "\"fid\":\"" F3 "\",\"xname\":\"user.a\"}",
	 -EINVAL},
	{D_OP,
	 OPHEAD("setxattr") "\"fid\":\"" F3 "\",\"xname\":\"user.a\","
			    "\"xvalue\":\"cmVk\",\"flags\":[\"create\","
			    "\"replace\"]}",
	 -EINVAL},
	{D_OP, STORE_HEAD "\"chunk_size\":65536,\"chunks\":[0,1]}", 0},
	{D_OP, STORE_HEAD "\"chunk_size\":65536,\"chunks\":[1,1]}", -EINVAL},
	{D_OP, STORE_HEAD "\"chunk_size\":65537,\"chunks\":[]}", -EINVAL},
	{D_OP, STORE_HEAD "\"chunk_size\":32768,\"chunks\":[]}", -EINVAL},
	{D_OP, STORE_HEAD "\"chunk_size\":8388608,\"chunks\":[]}", -EINVAL},
	{D_OP, STORE_HEAD "\"chunk_size\":65536,\"chunks\":[-1]}", -EINVAL},
	{D_OP, STORE_HEAD "\"chunk_size\":65536,\"chunks\":[1.0]}", -EINVAL},
	{D_OP,
	 STORE_HEAD "\"chunk_size\":65536,"
		    "\"chunks\":[9223372036854775807]}",
	 -EINVAL},
	{D_OP, STORE_HEAD "\"chunk_size\":65536}", -EINVAL},

	/* op results */
	{D_RESULT, "{\"attr\":" ATTR ",\"parent\":" DIRA "}", 0},
	{D_RESULT, "{\"attr\":" ATTR ",\"parent\":" ATTR "}", -EINVAL},
	{D_RESULT, "{\"attr\":{}}", -EINVAL},
	{D_RESULT, "{\"victim\":null}", -EINVAL},

	/* errors */
	{D_ERROR, "{\"error\":\"x\",\"errno\":\"ENOENT\"}", 0},
	{D_ERROR, "{\"error\":\"x\"}", -EINVAL},
	{D_ERROR, "{\"error\":3,\"errno\":\"ENOENT\"}", -EINVAL},
	{D_ERROR, "{\"errno\":\"ESTALE\",\"dv\":-2}", -EINVAL},
	{D_ERROR, "{\"errno\":\"ESTALE\",\"dv\":\"2\"}", -EINVAL},
	{D_ERROR, "<html><body>502 Bad Gateway</body></html>", -EINVAL},

	/* request paths */
	{D_PATH, "/v1/vol/home/data/" F1 "/7/0?size=65536", 0},
	{D_PATH, "/v1/vol/home/data/" F1 "/7/0?size=65536&size=65536", -EINVAL},
	{D_PATH, "/v1/vol/home/data/" F1 "/7/0", -EINVAL},
	{D_PATH, "/v1/vol/home/data/" F1 "/7/0?size=", -EINVAL},
	{D_PATH, "/v1/vol/home/data/" F1 "/7/0?size", -EINVAL},
	{D_PATH, "/v1/vol/home/data/" F1 "/7/0?size=100000", -EINVAL},
	{D_PATH, "/v1/vol/home/data/" F1 "/7/0?size=8388608", -EINVAL},
	{D_PATH, "/v1/vol/home/data/" F1 "/7/0?size=0065536", -EINVAL},
	{D_PATH, "/v1/vol/home/data/" F1 "/07/0?size=65536", -EINVAL},
	{D_PATH, "/v1/vol/home/data/" F1 "/+7/0?size=65536", -EINVAL},
	{D_PATH, "/v1/vol/home/data/" F1 "/-7/0?size=65536", -EINVAL},
	{D_PATH, "/v1/vol/home/data/" F1 "/ 7/0?size=65536", -EINVAL},
	{D_PATH, "/v1/vol/home/data/" F1 "/18446744073709551616/0?size=65536",
	 -EINVAL},
	{D_PATH, "/v1/vol/home/data/" F1 "/18446744073709551615/0?size=65536",
	 0},
	{D_PATH, "/v1/vol/home/data/" F1 "/7/0?size=65536#frag", -EINVAL},
	{D_PATH,
	 "/v1/vol/home/data/0000002A.00112233445566778899AABBCCDDEEFF"
	 "/7/0?size=65536",
	 -EINVAL},
	{D_PATH,
	 "/v1/vol/home/data/00000000.00000000000000000000000000000000"
	 "/7/0?size=65536",
	 -EINVAL},
	{D_PATH, "/v1/vol/home/data/" F1 "/7?size=65536", -ENOENT},
	{D_PATH, "/v1/vol/home/data/" F1 "/7/0/1?size=65536", -ENOENT},
	{D_PATH, "/v1/vol/home/stage/" F1 "/" OPID "/0?size=65536", 0},
	{D_PATH, "/v1/vol/home/stage/" F1 "/" OPID "0/0?size=65536", -EINVAL},
	{D_PATH,
	 "/v1/vol/home/stage/" F1 "/9F8E7D6C5B4A39281706F5E4D3C2B1A0"
	 "/0?size=65536",
	 -EINVAL},
	{D_PATH, "/v1/vol/h%6fme", -EINVAL},
	{D_PATH, "/v1/vol/.home", -EINVAL},
	{D_PATH, "/v1/vol/..", -EINVAL},
	{D_PATH, "/v1/vol/home/", -ENOENT},
	{D_PATH, "/v1/vol//getattr", -ENOENT},
	{D_PATH, "/v1/vol", -ENOENT},
	{D_PATH, "/v1/vol/home/dir", -ENOENT},
	{D_PATH, "/v1/vol/home/dir/" F1 "/x", -ENOENT},
	{D_PATH, "/v1/vol/home/dir/../../etc", -ENOENT},
	{D_PATH, "/v1/vol/home/link/../../etc", -ENOENT},
	{D_PATH, "/v1/vol/home/link/..", -EINVAL},
	{D_PATH, "/v1/vol/home/data/" F1 "/0/2199023255552?size=4194304",
	 -ERANGE},
	{D_PATH, "/v1/vol/home/bogus", -ENOENT},
	{D_PATH, "/v2/ping", -ENOENT},
	{D_PATH, "v1/ping", -ENOENT},
	{D_PATH, "", -ENOENT},
	{D_PATH, "/", -ENOENT},
	{D_PATH, "/v1/ping?since=1", -EINVAL}, /* not a ping parameter */
	{D_PATH, "/v1/ping?cachebust=1", 0},   /* unknown: ignored */
	{D_PATH, "/v1/vol/home?size=65536", -EINVAL},
	{D_PATH, "/v1/vol/home/events?since=-1", -EINVAL},
	{D_PATH, "/v1/vol/home/events?since=1&since=2", -EINVAL},
	{D_PATH, "/v1/vol/home/events?&&since=5&", 0},
	{D_PATH,
	 "/v1/vol/"
	 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	 -EINVAL}, /* 65-byte volume name */
};

static void
test_malformed(void)
{
	size_t i;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rc = decode_any(cases[i].d, cases[i].in, strlen(cases[i].in));
		if (!ok(rc == cases[i].want, "%s case %zu -> %d",
			dec_names[cases[i].d], i, cases[i].want))
			diag("got %d for: %.300s", rc, cases[i].in);
	}
}

/* Inputs too big to write as literals: built at run time. */
/* Batches (version 3): a round trip of a compound create + store +
 * setattr, the reply codec, then malformed, truncated, oversized and
 * hostile requests. */
#define BOP(kind, opid) "{\"op\":\"" kind "\",\"opid\":\"" opid "\""
#define OPID2 "00000000000000000000000000000002"

static void
test_batch(void)
{
	struct proto_op ops[3];
	struct proto_batch b;
	struct proto_batch_result *res;
	uint64_t chunks[2] = {0, 1};
	size_t len, i, cap;
	char *s, *p;
	int st[3];
	char *bodies[3];
	size_t blens[3];

	memset(ops, 0, sizeof(ops));
	ops[0].kind = PROTO_OP_CREATE;
	memcpy(ops[0].opid, "aaaaaaaaaaaaaaaa", 16);
	fid_parse(F1, &ops[0].parent);
	ops[0].name = "new.c";
	fid_parse(F2, &ops[0].fid);
	ops[0].type = PROTO_T_FILE;
	ops[0].mode = 0644;
	ops[1].kind = PROTO_OP_STORE;
	memcpy(ops[1].opid, "bbbbbbbbbbbbbbbb", 16);
	fid_parse(F2, &ops[1].fid);
	ops[1].base_dv = 0;
	memcpy(ops[1].txid, "tttttttttttttttt", 16);
	ops[1].chunk_size = 65536;
	ops[1].size = 70000;
	ops[1].chunks = chunks;
	ops[1].nchunks = 2;
	ops[2].kind = PROTO_OP_SETATTR;
	memcpy(ops[2].opid, "cccccccccccccccc", 16);
	fid_parse(F2, &ops[2].fid);
	ops[2].base_dv = 1;
	ops[2].mask = PROTO_SA_MODE | PROTO_SA_MTIME;
	ops[2].mode = 0600;
	ops[2].mtime_ns = 1700000000000000001LL;

	s = proto_batch_encode(ops, 3, true, &len);
	ok(s != NULL, "compound batch encodes");
	is_int(proto_batch_decode(s, len, &b), 0, "compound batch decodes");
	is_int((int)b.n, 3, "three ops");
	ok(b.stop, "stop_on_error kept");
	ok(b.n == 3 && b.ops[0].kind == PROTO_OP_CREATE &&
		   !strcmp(b.ops[0].name, "new.c") &&
		   fid_eq(&b.ops[0].fid, &ops[0].fid) &&
		   b.ops[1].kind == PROTO_OP_STORE && b.ops[1].nchunks == 2 &&
		   b.ops[1].chunks[1] == 1 && b.ops[1].size == 70000 &&
		   b.ops[2].kind == PROTO_OP_SETATTR &&
		   b.ops[2].mask == (PROTO_SA_MODE | PROTO_SA_MTIME) &&
		   b.ops[2].mtime_ns == 1700000000000000001LL &&
		   !memcmp(b.ops[2].opid, "cccccccccccccccc", 16),
	   "ops come back in order with their fields");
	proto_batch_release(&b);
	is_int((int)b.n, 0, "release zeroes");
	proto_batch_release(NULL);
	/* Every cut of the body is refused cleanly (and frees what it had). */
	{
		int bad = 0;

		for (i = 0; i < len; i++)
			if (proto_batch_decode(s, i, &b) != -EINVAL || b.ops)
				bad++;
		is_int(bad, 0, "every truncation of a batch is EINVAL");
	}
	free(s);
	s = proto_batch_encode(ops, 1, false, &len);
	ok(s && !strstr(s, "stop_on_error"), "no stop flag when not asked");
	free(s);
	errno = 0;
	ok(!proto_batch_encode(ops, 0, false, &len) && errno == EINVAL,
	   "empty batch does not encode");
	ok(!proto_batch_encode(ops, PROTO_BATCH_MAX + 1, false, &len) &&
		   errno == E2BIG,
	   "too many ops do not encode");
	ops[0].name = "a/b";
	ok(!proto_batch_encode(ops, 3, false, &len) && errno == EINVAL,
	   "a bad op makes the whole batch fail to encode");
	ops[0].name = "new.c";

	/* Replies: spliced bodies, decoded per status. */
	bodies[0] = "{\"attr\":{\"fid\":\"" F2 "\",\"type\":\"file\",\"mode\":"
		    "420,\"uid\":0,\"gid\":0,\"size\":0,\"nlink\":1,\"dv\":1,"
		    "\"atime\":1,\"mtime\":1,\"ctime\":1},\"event_seq\":9}";
	bodies[1] = "{\"error\":\"data version changed\",\"errno\":"
		    "\"ECANCELED\",\"dv\":4}";
	bodies[2] = "{\"error\":\"not applied\",\"errno\":\"EAGAIN\"}";
	st[0] = 200;
	st[1] = 412;
	st[2] = 424;
	for (i = 0; i < 3; i++)
		blens[i] = strlen(bodies[i]);
	s = proto_batch_reply_encode(st, bodies, blens, 3, &len);
	ok(s != NULL, "batch reply encodes");
	is_int(proto_batch_reply_decode(s, len, 3, &res), 0,
	       "batch reply decodes");
	ok(res && res[0].status == 200 && res[0].res.has_attr &&
		   res[0].res.attr.dv == 1 && res[0].res.event_seq == 9 &&
		   res[1].status == 412 && res[1].err.err == ECANCELED &&
		   res[1].err.cur_dv == 4 && res[2].status == 424 &&
		   res[2].err.err == EAGAIN,
	   "each result has its status and body");
	free(res);
	is_int(proto_batch_reply_decode(s, len, 2, &res), -EINVAL,
	       "reply with more results than ops sent");
	is_int(proto_batch_reply_decode(s, len, 4, &res), -EINVAL,
	       "reply with fewer results than ops sent");
	ok(res == NULL, "no results on error");
	free(s);
	st[1] = 302;
	errno = 0;
	ok(!proto_batch_reply_encode(st, bodies, blens, 3, &len) &&
		   errno == EINVAL,
	   "a status out of range does not encode");
	is_int(proto_status_to_errno(424), EAGAIN, "424 reads as EAGAIN");
	{
		static const char *bad_replies[] = {
			"{\"results\":[{\"status\":200,\"body\":{}},"
			"{\"status\":200,\"body\":{}}]",
			"{\"results\":{}}",
			"{\"results\":[{\"status\":\"200\",\"body\":{}},1]}",
			"{\"results\":[{\"status\":200,\"body\":{}},"
			"{\"status\":204,\"body\":{}}]}",
			"{\"results\":[{\"status\":200,\"body\":{}},"
			"{\"status\":404,\"body\":{}}]}",
			"{\"results\":[{\"status\":200},{\"status\":404,"
			"\"body\":{\"errno\":\"ENOENT\"}}]}",
			"{\"results\":[{\"status\":200,\"body\":{\"parent\":"
			"{\"fid\":\"" F1 "\",\"type\":\"file\",\"mode\":420,"
			"\"uid\":0,\"gid\":0,\"size\":0,\"nlink\":1,\"dv\":1,"
			"\"atime\":1,\"mtime\":1,\"ctime\":1}}},"
			"{\"status\":404,\"body\":{\"errno\":\"ENOENT\"}}]}",
			"{\"results\":[{\"status\":200,\"body\":{}},"
			"{\"status\":600,\"body\":{\"errno\":\"ENOENT\"}}]}",
		};

		for (i = 0; i < sizeof(bad_replies) / sizeof(*bad_replies);
		     i++) {
			res = (void *)1;
			is_int(proto_batch_reply_decode(
				       bad_replies[i], strlen(bad_replies[i]),
				       2, &res),
			       -EINVAL, "bad batch reply %zu refused", i);
			ok(res == NULL, "(and nothing returned)");
		}
	}

	/* Hostile and malformed requests. */
	{
		static const struct {
			const char *body;
			int rc;
			const char *what;
		} bcases[] = {
			{"", -EINVAL, "empty body"},
			{"[]", -EINVAL, "an array, not an object"},
			{"{}", -EINVAL, "no ops"},
			{"{\"ops\":[]}", -EINVAL, "zero ops"},
			{"{\"ops\":{}}", -EINVAL, "ops not an array"},
			{"{\"ops\":[1]}", -EINVAL, "an op that is a number"},
			{"{\"ops\":[[]]}", -EINVAL, "an op that is an array"},
			{"{\"ops\":[null]}", -EINVAL, "a null op"},
			{"{\"ops\":[" BOP("unlink", OPID) "}]}", -EINVAL,
			 "an op missing its members"},
			{"{\"ops\":[" BOP("frob", OPID) "}]}", -EINVAL,
			 "an unknown op kind"},
			{"{\"ops\":[" BOP("setattr", "xyz") ",\"fid\":\"" F1
			 "\",\"base_dv\":1,\"mask\":[]}]}",
			 -EINVAL, "a bad opid"},
			{"{\"ops\":[" BOP("setattr", OPID) ",\"fid\":\"" F1
			 "\",\"base_dv\":1,\"mask\":[]}],\"stop_on_error\":1}",
			 -EINVAL, "stop_on_error not a boolean"},
			{"{\"ops\":[" BOP("setattr", OPID) ",\"fid\":\"" F1
			 "\",\"base_dv\":1,\"mask\":[]}],\"ops\":[]}",
			 -EINVAL, "ops given twice"},
			{"{\"ops\":[" BOP("setattr", OPID) ",\"fid\":\"" F1
			 "\",\"base_dv\":1,\"mask\":[],\"mask\":[]}]}",
			 -EINVAL, "a duplicate key inside an op"},
			{"{\"ops\":[" BOP("setattr", OPID) ",\"fid\":\"" F1
			 "\",\"base_dv\":1,\"mask\":[]}," BOP("create", OPID2)
			 ",\"parent\":\"" F1 "\",\"name\":\"..\",\"type\":"
			 "\"file\",\"mode\":420,\"uid\":0,\"gid\":0}]}",
			 -EINVAL, "a good op then one with a bad name"},
			{"{\"ops\":[" BOP("setattr", OPID) ",\"fid\":\"" F1
			 "\",\"base_dv\":1,\"mask\":[]}]} x",
			 -EINVAL, "trailing garbage"},
			{"{\"ops\":[" BOP("setattr", OPID) ",\"fid\":\"" F1
			 "\",\"base_dv\":1,\"mask\":[]}," BOP("setattr", OPID)
			 ",\"fid\":\"" F1 "\",\"base_dv\":1,\"mask\":[]}],"
			 "\"unknown\":[1,2]}",
			 0, "a repeated opid and an unknown member are fine"},
		};

		for (i = 0; i < sizeof(bcases) / sizeof(*bcases); i++) {
			memset(&b, 0x5a, sizeof(b));
			is_int(proto_batch_decode(bcases[i].body,
						  strlen(bcases[i].body), &b),
			       bcases[i].rc, "batch: %s", bcases[i].what);
			if (bcases[i].rc)
				ok(b.ops == NULL && b.n == 0,
				   "(nothing left to release)");
			proto_batch_release(&b);
		}
	}

	/* Count: PROTO_BATCH_MAX ops decode, one more is E2BIG. */
	cap = 64 + (PROTO_BATCH_MAX + 1) * 200;
	s = malloc(cap);
	for (int extra = 0; extra < 2; extra++) {
		p = s + sprintf(s, "{\"ops\":[");
		for (i = 0; i < PROTO_BATCH_MAX + (size_t)extra; i++)
			p += sprintf(p,
				     "%s{\"op\":\"setattr\",\"opid\":\"%032zx\","
				     "\"fid\":\"" F1 "\",\"base_dv\":%zu,"
				     "\"mask\":[]}",
				     i ? "," : "", i, i);
		p += sprintf(p, "]}");
		is_int(proto_batch_decode(s, (size_t)(p - s), &b),
		       extra ? -E2BIG : 0, "%d ops in a batch",
		       PROTO_BATCH_MAX + extra);
		if (!extra)
			ok(b.n == PROTO_BATCH_MAX &&
				   b.ops[PROTO_BATCH_MAX - 1].base_dv ==
					   PROTO_BATCH_MAX - 1,
			   "the last op is there");
		proto_batch_release(&b);
	}
	free(s);

	/* Bytes: one over PROTO_BATCH_BODY_MAX is E2BIG before parsing,
	 * even as valid JSON (blanks); the same within the limit parses. */
	len = (size_t)PROTO_BATCH_BODY_MAX + 1;
	s = malloc(len);
	memset(s, ' ', len);
	p = s + sprintf(s, "{\"ops\":[" BOP("setattr", OPID) ",\"fid\":\"" F1
			   "\",\"base_dv\":1,\"mask\":[]}]");
	*p = ' ';
	s[len - 1] = '}';
	is_int(proto_batch_decode(s, len, &b), -E2BIG,
	       "batch body over its limit");
	s[len - 2] = '}';
	is_int(proto_batch_decode(s, len - 1, &b), 0,
	       "(one byte less is a batch)");
	proto_batch_release(&b);
	free(s);

	/* 256 stores, each with 2^12 chunks: within the body limit, the
	 * chunks of every op are checked (one op has a repeated chunk). */
	cap = 64 + 256 * (300 + 4096 * 8);
	s = malloc(cap);
	p = s + sprintf(s, "{\"ops\":[");
	for (i = 0; i < 256; i++) {
		p += sprintf(p, "%s{\"op\":\"store\",\"opid\":\"%032zx\","
				"\"fid\":\"" F1 "\",\"base_dv\":1,\"txid\":\""
				OPID "\",\"chunk_size\":65536,\"size\":1,"
				"\"chunks\":[",
			     i ? "," : "", i);
		for (size_t c = 0; c < 4096; c++)
			p += sprintf(p, "%s%zu", c ? "," : "",
				     i == 255 && c == 4095 ? (size_t)7 : c);
		p += sprintf(p, "]}");
	}
	p += sprintf(p, "]}");
	ok((size_t)(p - s) < PROTO_BATCH_BODY_MAX, "(within the batch limit)");
	is_int(proto_batch_decode(s, (size_t)(p - s), &b), -EINVAL,
	       "a repeated chunk in the last of 256 big stores");
	ok(b.ops == NULL, "(all 255 decoded ops released)");
	free(s);
}

static void
test_big(void)
{
	size_t len, i, cap;
	char *b, *p;
	int rc;

	/* 2000 nested arrays: jansson's depth limit must refuse it cleanly. */
	cap = 10000;
	b = malloc(cap);
	p = b;
	p += sprintf(p, "{\"fids\":");
	for (i = 0; i < 3000; i++)
		*p++ = '[';
	for (i = 0; i < 3000; i++)
		*p++ = ']';
	*p++ = '}';
	is_int(decode_any(D_GETATTR, b, (size_t)(p - b)), -EINVAL,
	       "3000-deep nesting refused");
	free(b);

	/* 1025 FIDs: over the getattr limit. */
	cap = 20 + (PROTO_GETATTR_MAX + 1) * 45;
	b = malloc(cap);
	p = b + sprintf(b, "{\"fids\":[");
	for (i = 0; i <= PROTO_GETATTR_MAX; i++)
		p += sprintf(p, "%s\"%s\"", i ? "," : "", F1);
	p += sprintf(p, "]}");
	is_int(decode_any(D_GETATTR, b, (size_t)(p - b)), -E2BIG,
	       "1025 fids is E2BIG");
	/* Exactly 1024 is fine. */
	p = b + sprintf(b, "{\"fids\":[");
	for (i = 0; i < PROTO_GETATTR_MAX; i++)
		p += sprintf(p, "%s\"%s\"", i ? "," : "", F1);
	p += sprintf(p, "]}");
	is_int(decode_any(D_GETATTR, b, (size_t)(p - b)), 0, "1024 fids ok");
	free(b);

	/* Per-route limits come before parsing: a getattr body past
	 * PROTO_GETATTR_BODY_MAX is E2BIG even when it is valid JSON (here
	 * one FID and blanks), and so is an op past PROTO_OP_BODY_MAX. */
	len = PROTO_GETATTR_BODY_MAX + 1;
	b = malloc(len);
	memset(b, ' ', len);
	memcpy(b, "{\"fids\":[\"" F1 "\"]", 11 + strlen(F1));
	b[len - 1] = '}';
	is_int(decode_any(D_GETATTR, b, len), -E2BIG,
	       "getattr body over its route limit");
	is_int(decode_any(D_GETATTR, b, len - 1000), -EINVAL,
	       "(the same cut short is only malformed)");
	free(b);
	len = (size_t)PROTO_OP_BODY_MAX + 1;
	b = malloc(len);
	memset(b, ' ', len);
	b[0] = '{';
	b[len - 1] = '}';
	is_int(decode_any(D_OP, b, len), -E2BIG, "op body over its limit");
	free(b);
	/* A store of more than PROTO_STORE_CHUNKS_MAX chunks. */
	cap = 300 + (PROTO_STORE_CHUNKS_MAX + 1) * 9;
	b = malloc(cap);
	p = b + sprintf(b, "{\"op\":\"store\",\"opid\":\"" OPID "\","
			   "\"fid\":\"" F1 "\",\"base_dv\":1,\"txid\":\"" OPID
			   "\",\"chunk_size\":65536,\"size\":1,\"chunks\":[");
	for (i = 0; i <= PROTO_STORE_CHUNKS_MAX; i++)
		p += sprintf(p, "%s%zu", i ? "," : "", i);
	p += sprintf(p, "]}");
	ok((size_t)(p - b) < PROTO_OP_BODY_MAX, "(that body is within the op "
						"limit)");
	is_int(decode_any(D_OP, b, (size_t)(p - b)), -E2BIG,
	       "store of 2^20 + 1 chunks");
	free(b);

	/* A body over PROTO_BODY_MAX is refused before parsing. */
	len = (size_t)PROTO_BODY_MAX + 1;
	b = malloc(len);
	memset(b, ' ', len);
	b[0] = '{';
	b[len - 1] = '}';
	is_int(decode_any(D_LINK, b, len), -EINVAL, "body over 64 MiB");
	free(b);

	/* Xattr value of 64 KiB + 1 byte (base64 of 65537 bytes). */
	len = (PROTO_XATTR_VALUE_MAX + 1 + 2) / 3 * 4;
	b = malloc(len + 200);
	p = b + sprintf(b, "{\"fid\":\"%s\",\"dv\":1,\"xattrs\":{\"user.a\":\"",
			F1);
	for (i = 0; i < len - 4; i++)
		*p++ = 'A';
	p += sprintf(p, "AAA=\"}}");
	rc = decode_any(D_XATTRS, b, (size_t)(p - b));
	is_int(rc, -E2BIG, "xattr value over 64 KiB");
	free(b);

	/* Xattr names totalling more than 64 KiB. */
	cap = 300 * 300 + 100;
	b = malloc(cap);
	p = b + sprintf(b, "{\"fid\":\"%s\",\"dv\":1,\"xattrs\":{", F1);
	for (i = 0; i < 300; i++)
		p += sprintf(p, "%s\"user.%0245zu\":\"\"", i ? "," : "", i);
	p += sprintf(p, "}}");
	is_int(decode_any(D_XATTRS, b, (size_t)(p - b)), -E2BIG,
	       "xattr names over 64 KiB in all");
	free(b);

	/* Xattr name of 256 bytes. */
	b = malloc(600);
	p = b + sprintf(b,
			"{\"fid\":\"%s\",\"dv\":1,\"xattrs\":{\"user.%0251d\""
			":\"\"}}",
			F1, 0);
	rc = decode_any(D_XATTRS, b, (size_t)(p - b));
	ok(rc < 0, "256-byte xattr name refused (%d)", rc);
	free(b);

	/* A setxattr naming a 256-byte xattr: 400 ENAMETOOLONG, not ERANGE
	 * (which would be 416 on the wire). */
	b = malloc(600);
	p = b + sprintf(b,
			"{\"op\":\"setxattr\",\"opid\":\"%s\",\"fid\":\"%s\","
			"\"xname\":\"user.%0251d\",\"xvalue\":\"\"}",
			OPID, F1, 0);
	is_int(decode_any(D_OP, b, (size_t)(p - b)), -ENAMETOOLONG,
	       "256-byte xattr name in setxattr");
	free(b);

	/* Symlink target of 4096 bytes. */
	b = malloc(4200);
	p = b + sprintf(b, "{\"target\":\"");
	memset(p, 'x', 4096);
	p += 4096;
	p += sprintf(p, "\"}");
	is_int(decode_any(D_LINK, b, (size_t)(p - b)), -ENAMETOOLONG,
	       "4096-byte target");
	free(b);

	/* Truncations of a valid op at every length are refused, never
	 * crash, never leak. */
	{
		const char *op =
			OPHEAD("rename") "\"parent\":\"" F2
					 "\",\"name\":\"x\",\"fid\":\"" F3
					 "\",\"newparent\":\"" F2
					 "\",\"newname\":\"y\"}";
		int bad = 0;

		for (i = 0; i < strlen(op); i++)
			if (decode_any(D_OP, op, i) != -EINVAL)
				bad++;
		is_int(bad, 0, "every truncation of an op is -EINVAL");
		is_int(decode_any(D_OP, op, strlen(op)), 0, "whole op decodes");
	}
}

/* Checked-in hostile inputs: tests/data/proto-DECODER-*.json must all be
 * refused by that decoder (and proto-DECODER-ok-* accepted). */
static void
test_files(void)
{
	const char *top = getenv("top_srcdir");
	char dirpath[4096], path[4352], buf[1 << 16];
	struct dirent *de;
	size_t i, len;
	FILE *f;
	DIR *d;
	int rc, n = 0;

	snprintf(dirpath, sizeof(dirpath), "%s/tests/data", top ? top : ".");
	d = opendir(dirpath);
	if (!d) {
		skip(1, "no tests/data (top_srcdir not set)");
		return;
	}
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "proto-", 6))
			continue;
		for (i = 0; i < sizeof(dec_names) / sizeof(dec_names[0]); i++) {
			size_t l = strlen(dec_names[i]);

			if (!strncmp(de->d_name + 6, dec_names[i], l) &&
			    de->d_name[6 + l] == '-')
				break;
		}
		if (i == sizeof(dec_names) / sizeof(dec_names[0])) {
			ok(0, "unknown decoder in file name %s", de->d_name);
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", dirpath, de->d_name);
		f = fopen(path, "rb");
		if (!f) {
			ok(0, "open %s", path);
			continue;
		}
		len = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		rc = decode_any((enum dec)i, buf, len);
		if (strstr(de->d_name, "-ok-"))
			ok(rc == 0, "%s accepted (%d)", de->d_name, rc);
		else
			ok(rc < 0 && rc != 1000, "%s refused (%d)", de->d_name,
			   rc);
		n++;
	}
	closedir(d);
	ok(n > 0, "%d data files checked", n);
}

/* X-Cairn-Blocks: CRC32C, format/parse round trip, hostile values, and the
 * incremental verification that gates early replies in cairnd. */
static void
test_blocks(void)
{
	static uint8_t body[262144];
	struct proto_blocks pb, got;
	char hdr[PROTO_BLOCKS_STRLEN], bad[PROTO_BLOCKS_STRLEN + 64];
	uint32_t cs = 262144, bs;
	ssize_t v;
	size_t mark;
	int n;

	is_int(crc32c(0, "123456789", 9), 0xe3069283u, "crc32c check value");
	is_int(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xe3069283u,
	       "crc32c chains");
	is_int(crc32c(0, "", 0), 0, "crc32c of nothing");
	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (uint8_t)(i * 7 + (i >> 9));

	/* Combining: the CRC of A||B from those of A and B. */
	is_int(crc32c_combine(crc32c(0, "1234", 4), crc32c(0, "56789", 5), 5),
	       0xe3069283u, "crc32c_combine check value");
	is_int(crc32c_combine(0xdeadbeefu, 0, 0), 0xdeadbeefu,
	       "combine with nothing appended");
	is_int(crc32c_combine(0, crc32c(0, body, 1000), 1000),
	       crc32c(0, body, 1000), "combine after nothing");
	{
		static const size_t cut[] = {1,	   7,	  8,	  4095,
					     4096, 65537, 131072, 262143};
		int good = 0;

		for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++)
			good += crc32c_combine(crc32c(0, body, cut[i]),
					       crc32c(0, body + cut[i],
						      sizeof(body) - cut[i]),
					       sizeof(body) - cut[i]) ==
				crc32c(0, body, sizeof(body));
		is_int(good, 8, "combine at 8 cuts of 256 KiB equals one pass");
	}
	{
		/* A length with high bits: 5 MiB + 3 bytes. */
		size_t zl = (5u << 20) + 3;
		uint8_t *z = calloc(1, zl + 9);

		if (z) {
			memcpy(z, "123456789", 9);
			is_int(crc32c_combine(crc32c(0, z, 9),
					      crc32c(0, z + 9, zl), zl),
			       crc32c(0, z, zl + 9),
			       "combine over 5 MiB equals one pass");
		} else {
			ok(0, "calloc");
		}
		free(z);
	}

	is_int(proto_block_size(65536), 16384, "block size of 64 KiB chunks");
	is_int(proto_block_size(262144), 16384, "block size of 256 KiB chunks");
	is_int(proto_block_size(4u << 20), 262144, "block size of 4 MiB chunks");
	bs = proto_block_size(cs);

	/* A short last block: 100000 bytes = 6 blocks of 16 KiB + 1696. */
	ok(proto_blocks_compute(&pb, bs, body, 100000) == 0, "compute");
	is_int(pb.n, 7, "7 blocks for 100000 bytes");
	n = proto_blocks_format(hdr, sizeof(hdr), &pb);
	ok(n > 0 && (size_t)n == strlen(hdr), "format: %s", hdr);
	ok(!strncmp(hdr, "crc32c 16384 ", 13), "format starts with the size");
	ok(proto_blocks_parse(hdr, cs, 100000, &got) == 0 && got.n == 7 &&
		   got.bsize == bs && got.len == 100000 &&
		   !memcmp(got.crc, pb.crc, 7 * sizeof(uint32_t)),
	   "parse round trip");
	is_int(proto_blocks_crc(&pb), crc32c(0, body, 100000),
	       "blocks_crc: the body's CRC32C from its 7 sums");
	ok(proto_blocks_compute(&got, bs, body, cs) == 0 &&
		   proto_blocks_crc(&got) == crc32c(0, body, cs),
	   "blocks_crc of a whole chunk");
	ok(proto_blocks_compute(&got, bs, body, 0) == 0 &&
		   proto_blocks_crc(&got) == 0,
	   "blocks_crc of an empty body");
	ok(proto_blocks_format(hdr, 20, &pb) == -ERANGE, "format: short buffer");
	ok(proto_blocks_compute(&pb, 1000, body, 100) == -EINVAL,
	   "compute: block size not a power of two");
	ok(proto_blocks_compute(&pb, 4096, body, 65 * 4096) == -EINVAL,
	   "compute: more than 64 blocks");

	/* The largest header fits its buffer and the client's header limit. */
	ok(proto_blocks_compute(&pb, 4096, body, 64 * 4096) == 0,
	   "compute 64 blocks");
	n = proto_blocks_format(hdr, sizeof(hdr), &pb);
	ok(n > 0 && n < 1024, "64 sums take %d bytes", n);
	ok(proto_blocks_parse(hdr, cs, 64 * 4096, &got) == 0 && got.n == 64,
	   "parse 64 sums");

	/* Hostile or mismatched values. */
	ok(proto_blocks_compute(&pb, bs, body, 100000) == 0, "compute again");
	proto_blocks_format(hdr, sizeof(hdr), &pb);
	/* One byte more still needs 7 sums: it parses, but the last block
	 * can never verify. */
	ok(proto_blocks_parse(hdr, cs, 100001, &got) == 0 &&
		   proto_blocks_verify(&got, body, 0, 100001) == -EIO,
	   "a body one byte longer than summed is refused at its last block");
	ok(proto_blocks_parse(hdr, cs, 120000, &got) == -EINVAL,
	   "too few sums for the body");
	ok(proto_blocks_parse(hdr, cs, 90000, &got) == -EINVAL,
	   "too many sums for the body");
	ok(proto_blocks_parse("sha1 16384 00000000", cs, 10, &got) == -ENOTSUP,
	   "unknown algorithm: ignored");
	ok(proto_blocks_parse(NULL, cs, 10, &got) == -EINVAL, "NULL");
	ok(proto_blocks_parse("", cs, 10, &got) == -EINVAL, "empty");
	ok(proto_blocks_parse("crc32c", cs, 10, &got) == -EINVAL, "no size");
	ok(proto_blocks_parse("crc32c 16384", cs, 0, &got) == 0 && got.n == 0,
	   "empty body, no sums");
	ok(proto_blocks_parse("crc32c 16384 ", cs, 0, &got) == -EINVAL,
	   "trailing space");
	ok(proto_blocks_parse("crc32c 16384 0000000A", cs, 10, &got) == -EINVAL,
	   "upper-case hex");
	ok(proto_blocks_parse("crc32c 16384 0000000", cs, 10, &got) == -EINVAL,
	   "7 hex digits");
	ok(proto_blocks_parse("crc32c 16384 000000000", cs, 10, &got) ==
		   -EINVAL,
	   "9 hex digits");
	ok(proto_blocks_parse("crc32c 16384  00000000", cs, 10, &got) ==
		   -EINVAL,
	   "double space");
	ok(proto_blocks_parse("crc32c 016384 00000000", cs, 10, &got) ==
		   -EINVAL,
	   "leading zero");
	ok(proto_blocks_parse("crc32c 1000 00000000", cs, 10, &got) == -EINVAL,
	   "block size not a power of two");
	ok(proto_blocks_parse("crc32c 2048 00000000", cs, 10, &got) == -EINVAL,
	   "block size below the minimum");
	ok(proto_blocks_parse("crc32c 524288 00000000", cs, 10, &got) ==
		   -EINVAL,
	   "block size above the chunk size");
	ok(proto_blocks_parse("crc32c 99999999999999999999999 00000000", cs, 10,
			      &got) == -EINVAL,
	   "huge block size");
	snprintf(bad, sizeof(bad), "crc32c 4096");
	for (int i = 0; i < 65; i++)
		strcat(bad, " 00000000");
	ok(proto_blocks_parse(bad, cs, 65 * 4096, &got) == -EINVAL,
	   "65 sums");

	/* Incremental verification: the mark moves by whole blocks, the last
	 * block counts only when complete, a bad block stops it. */
	ok(proto_blocks_compute(&pb, bs, body, 100000) == 0, "compute for verify");
	is_int(proto_blocks_verify(&pb, body, 0, 0), 0, "nothing yet");
	is_int(proto_blocks_verify(&pb, body, 0, 16383), 0, "one byte short");
	is_int(proto_blocks_verify(&pb, body, 0, 16384), 16384, "first block");
	is_int(proto_blocks_verify(&pb, body, 16384, 50000), 49152,
	       "two more blocks");
	is_int(proto_blocks_verify(&pb, body, 49152, 99999), 98304,
	   "the short last block waits for its last byte");
	is_int(proto_blocks_verify(&pb, body, 98304, 100000), 100000,
	       "the whole body");
	is_int(proto_blocks_verify(&pb, body, 100000, 100000), 100000,
	       "done stays done");
	mark = 0;
	for (size_t have = 0; have <= 100000; have += 777) {
		v = proto_blocks_verify(&pb, body, mark, have);
		if (v < 0 || (size_t)v > have || (size_t)v < mark)
			break;
		mark = (size_t)v;
	}
	v = proto_blocks_verify(&pb, body, mark, 100000);
	is_int(v, 100000, "arbitrary arrival sizes reach the end");

	body[40000] ^= 0x20; /* in block 2 */
	is_int(proto_blocks_verify(&pb, body, 0, 32768), 32768,
	       "blocks before the damage verify");
	is_int(proto_blocks_verify(&pb, body, 32768, 49152), -EIO,
	       "the damaged block is refused");
	is_int(proto_blocks_verify(&pb, body, 0, 100000), -EIO,
	       "a whole body with damage is refused");
	body[40000] ^= 0x20;
	pb.crc[6] ^= 1; /* a wrong sum for the short last block */
	is_int(proto_blocks_verify(&pb, body, 0, 100000), -EIO,
	       "a wrong last sum is refused");
}

/* Sockets and device nodes (protocol PROTO_V_SPECIAL): names, rdev, bad input, and
 * what an older client is shown. */
static void
test_types(void)
{
	static const char *const tn[] = {"socket", "chr", "blk"};
	static const enum proto_type tt[] = {PROTO_T_SOCK, PROTO_T_CHR,
					     PROTO_T_BLK};
	struct proto_attr a, *got;
	struct proto_op op, g;
	struct proto_op_result r, gr;
	int *gerr;
	size_t n, len;
	char *s, b[1024];

	for (int i = 0; i < 3; i++) {
		is_int(proto_type_parse(tn[i]), tt[i], "type %s parses", tn[i]);
		is_str(proto_type_name(tt[i]), tn[i], "type %s names", tn[i]);
		ok(proto_type_creatable(tt[i]), "%s is made by create", tn[i]);
	}
	ok(!proto_type_creatable(PROTO_T_DIR) &&
		   !proto_type_creatable(PROTO_T_SYMLINK) &&
		   !proto_type_creatable(PROTO_T_NONE),
	   "dir, symlink, none are not made by create");
	is_int(proto_type_parse("door"), PROTO_T_NONE, "unknown type: none");
	is_str(proto_type_name((enum proto_type)(PROTO_T_MAX + 1)), "none",
	       "a type past the last names none");

	/* Round trips, with and without rdev. */
	mkattr(&a, F1, PROTO_T_CHR);
	a.size = 0;
	a.rdev = 0x10305; /* makedev(259, 5) */
	s = proto_attrs_encode(&a, NULL, 1, &len);
	ok(s && strstr(s, "\"rdev\":66309") && strstr(s, "\"type\":\"chr\""),
	   "chr encodes type and rdev");
	is_int(proto_attrs_decode(s, len, &got, &gerr, &n), 0, "chr decodes");
	ok(n == 1 && attr_eq(got, &a), "chr round trip keeps rdev");
	free(s);
	free(got);
	free(gerr);
	a.type = PROTO_T_BLK;
	a.rdev = PROTO_RDEV_MAX;
	s = proto_attrs_encode(&a, NULL, 1, &len);
	is_int(proto_attrs_decode(s, len, &got, &gerr, &n), 0,
	       "blk with the largest rdev decodes");
	ok(n == 1 && attr_eq(got, &a), "blk round trip");
	free(s);
	free(got);
	free(gerr);
	mkattr(&a, F1, PROTO_T_SOCK);
	a.size = 0;
	s = proto_attrs_encode(&a, NULL, 1, &len);
	ok(s && !strstr(s, "rdev"), "a socket has no rdev member");
	is_int(proto_attrs_decode(s, len, &got, &gerr, &n), 0,
	       "socket decodes");
	ok(n == 1 && attr_eq(got, &a), "socket round trip");
	free(s);
	free(got);
	free(gerr);
	a.rdev = 5;
	s = proto_attrs_encode(&a, NULL, 1, &len);
	ok(!s && errno == EINVAL, "rdev on a socket is not encoded");

	/* Hostile attribute objects. */
#define ATTR_JSON(type, extra)                                                \
	"{\"attrs\":[{\"fid\":\"" F1 "\",\"type\":\"" type "\",\"mode\":420,"   \
	"\"uid\":0,\"gid\":0,\"size\":0,\"nlink\":1,\"dv\":1,\"atime\":0,"     \
	"\"mtime\":0,\"ctime\":0" extra "}]}"
	static const struct {
		const char *json;
		int rc;
		uint32_t rdev;
		const char *what;
	} tcases[] = {
		{ATTR_JSON("chr", ",\"rdev\":4294967295"), 0, 4294967295u,
		 "rdev 2^32-1"},
		{ATTR_JSON("chr", ",\"rdev\":4294967296"), -EINVAL, 0,
		 "rdev 2^32: out of range"},
		{ATTR_JSON("blk", ",\"rdev\":-1"), -EINVAL, 0, "negative rdev"},
		{ATTR_JSON("blk", ",\"rdev\":1.5"), -EINVAL, 0, "rdev not an integer"},
		{ATTR_JSON("blk", ",\"rdev\":\"8:1\""), -EINVAL, 0,
		 "rdev as a string"},
		{ATTR_JSON("blk", ",\"rdev\":9223372036854775807"), -EINVAL, 0,
		 "rdev 2^63-1"},
		{ATTR_JSON("blk", ""), 0, 0, "device without rdev: 0"},
		{ATTR_JSON("file", ",\"rdev\":1"), -EINVAL, 0, "rdev on a file"},
		{ATTR_JSON("socket", ",\"rdev\":1"), -EINVAL, 0,
		 "rdev on a socket"},
		{ATTR_JSON("fifo", ",\"rdev\":0"), 0, 0, "rdev 0 on a fifo"},
		{ATTR_JSON("door", ""), -EINVAL, 0, "unknown type door"},
		{ATTR_JSON("Socket", ""), -EINVAL, 0, "type names are exact"},
		{ATTR_JSON("", ""), -EINVAL, 0, "empty type"},
		{ATTR_JSON("none", ""), -EINVAL, 0, "type none"},
	};
	for (size_t i = 0; i < sizeof(tcases) / sizeof(tcases[0]); i++) {
		int rc = proto_attrs_decode(tcases[i].json,
					    strlen(tcases[i].json), &got, &gerr,
					    &n);

		is_int(rc, tcases[i].rc, "attr decode: %s", tcases[i].what);
		if (!rc) {
			ok(n == 1 && got[0].rdev == tcases[i].rdev,
			   "attr decode: %s: rdev", tcases[i].what);
			free(got);
			free(gerr);
		}
	}
	/* One unknown type refuses the whole listing: what a client of
	 * protocol 2 would do with a socket, and why the server shows
	 * sockets and devices to such clients as files. */
	snprintf(b, sizeof(b),
		 "{\"dir\":{\"fid\":\"%s\",\"type\":\"dir\",\"mode\":493,"
		 "\"uid\":0,\"gid\":0,\"size\":0,\"nlink\":2,\"dv\":3,"
		 "\"atime\":0,\"mtime\":0,\"ctime\":0},\"entries\":[{\"name\":"
		 "\"s\",\"attr\":{\"fid\":\"%s\",\"type\":\"whiteout\","
		 "\"mode\":420,\"uid\":0,\"gid\":0,\"size\":0,\"nlink\":1,"
		 "\"dv\":1,\"atime\":0,\"mtime\":0,\"ctime\":0}}]}",
		 F1, F2);
	{
		struct proto_dir d;

		is_int(proto_dir_decode(b, strlen(b), &d), -EINVAL,
		       "a listing with an unknown type is refused whole");
	}

	/* Compatibility for older clients. */
	mkattr(&a, F1, PROTO_T_BLK);
	a.rdev = 0x801;
	a.size = 77;
	proto_attr_compat(&a, PROTO_V_SPECIAL);
	ok(a.type == PROTO_T_BLK && a.rdev == 0x801 && a.size == 77,
	   "PROTO_V_SPECIAL sees a device as it is");
	proto_attr_compat(&a, PROTO_V_SPECIAL - 1);
	ok(a.type == PROTO_T_FILE && a.rdev == 0 && a.size == 0 &&
		   a.mode == 0644 && a.nlink == 2,
	   "an older protocol sees a device as an empty file, mode and links kept");
	mkattr(&a, F1, PROTO_T_FIFO);
	proto_attr_compat(&a, 1);
	ok(a.type == PROTO_T_FIFO && a.size == 1234,
	   "protocol 1 sees a fifo as a fifo");
	is_int(proto_version_parse(NULL), 2, "no header: protocol 2");
	is_int(proto_version_parse("3"), 3, "header 3");
	is_int(proto_version_parse("17"), 17, "header 17");
	is_int(proto_version_parse("3 "), 2, "header with a blank: 2");
	is_int(proto_version_parse("-3"), 2, "negative header: 2");
	is_int(proto_version_parse("0"), 2, "header 0: 2");
	is_int(proto_version_parse("99999999999999999999"), 2,
	       "huge header: 2");
	is_int(proto_version_parse(""), 2, "empty header: 2");

	memset(&r, 0, sizeof(r));
	r.has_attr = r.has_parent = true;
	mkattr(&r.attr, F1, PROTO_T_SOCK);
	r.attr.size = 0;
	mkattr(&r.parent, F2, PROTO_T_DIR);
	r.event_seq = 9;
	s = proto_op_result_encode(&r, &len);
	ok(s != NULL, "op result with a socket encodes");
	ok(proto_op_result_compat(s, len, PROTO_V_SPECIAL, &n) == NULL,
	   "PROTO_V_SPECIAL: op result unchanged");
	{
		char *c = proto_op_result_compat(s, len, PROTO_V_SPECIAL - 1,
						 &n);

		ok(c && proto_op_result_decode(c, n, &gr) == 0 &&
			   gr.attr.type == PROTO_T_FILE &&
			   gr.parent.type == PROTO_T_DIR && gr.event_seq == 9,
		   "an older protocol: op result shows the socket as a file");
		free(c);
	}
	free(s);
	r.attr.type = PROTO_T_FILE;
	s = proto_op_result_encode(&r, &len);
	ok(proto_op_result_compat(s, len, PROTO_V_SPECIAL - 1, &n) == NULL,
	   "an older protocol: an op result without new types is unchanged");
	free(s);

	/* create ops */
	memset(&op, 0, sizeof(op));
	op.kind = PROTO_OP_CREATE;
	memcpy(op.opid, "0123456789abcdef", 16);
	fid_parse(F1, &op.parent);
	op.name = "dev";
	op.mode = 0660;
	op.type = PROTO_T_SOCK;
	op_round_trip(&op, "create socket");
	op.type = PROTO_T_CHR;
	op.rdev = 0x103; /* 1:3, /dev/null */
	op_round_trip(&op, "create chr 1:3");
	op.type = PROTO_T_BLK;
	op.rdev = PROTO_RDEV_MAX;
	op_round_trip(&op, "create blk, largest rdev");
	op.type = PROTO_T_SOCK;
	op.rdev = 1;
	s = proto_op_encode(&op, &len);
	ok(!s && errno == EINVAL, "create socket with rdev is not encoded");
	op.type = PROTO_T_DIR;
	op.rdev = 0;
	s = proto_op_encode(&op, &len);
	ok(!s && errno == EINVAL, "create of a dir is not encoded");
#define OP_JSON(type, extra)                                                  \
	"{\"op\":\"create\",\"opid\":\"" OPID "\",\"parent\":\"" F1            \
	"\",\"name\":\"n\",\"type\":\"" type "\",\"mode\":384,\"uid\":1,"       \
	"\"gid\":1" extra "}"
	static const struct {
		const char *json;
		int rc;
		const char *what;
	} ocases[] = {
		{OP_JSON("chr", ",\"rdev\":259"), 0, "create chr"},
		{OP_JSON("chr", ",\"rdev\":4294967296"), -EINVAL,
		 "create chr, rdev out of range"},
		{OP_JSON("socket", ",\"rdev\":1"), -EINVAL,
		 "create socket with rdev"},
		{OP_JSON("file", ",\"rdev\":1"), -EINVAL, "create file with rdev"},
		{OP_JSON("symlink", ""), -EINVAL, "create of type symlink"},
		{OP_JSON("dir", ""), -EINVAL, "create of type dir"},
		{OP_JSON("door", ""), -EINVAL, "create of an unknown type"},
	};
	for (size_t i = 0; i < sizeof(ocases) / sizeof(ocases[0]); i++) {
		int rc = proto_op_decode(ocases[i].json, strlen(ocases[i].json),
					 &g);

		is_int(rc, ocases[i].rc, "op decode: %s", ocases[i].what);
		proto_op_release(&g);
	}
}

/* Mount points (protocol 5): the target rules, the op, what an older
 * client is shown. */
static void
test_mount(void)
{
	static const struct {
		const char *t;
		int rc;
		const char *what;
	} tcases[] = {
		{"home", 0, "a volume"},
		{"proj.data_2-x", 0, "punctuation of volume names"},
		{"lab:home", 0, "alias:volume"},
		{"", -EINVAL, "empty"},
		{":home", -EINVAL, "empty alias"},
		{"lab:", -EINVAL, "empty volume"},
		{"a:b:c", -EINVAL, "two colons"},
		{"..", -EINVAL, "'..'"},
		{".home", -EINVAL, "leading dot"},
		{"lab:..", -EINVAL, "alias:'..'"},
		{"a/b", -EINVAL, "a slash"},
		{"../home", -EINVAL, "a relative path"},
		{"/home", -EINVAL, "an absolute path"},
		{"ho me", -EINVAL, "a blank"},
		{"#home", -EINVAL, "the compat prefix"},
		{"h\xc3\xa9", -EINVAL, "not ASCII"},
	};
	char big[300], name[80];
	struct proto_op op, g;
	struct proto_attr a;
	size_t len;
	char *s, *c;

	for (size_t i = 0; i < sizeof(tcases) / sizeof(tcases[0]); i++)
		is_int(proto_mount_target_check(tcases[i].t,
						strlen(tcases[i].t)),
		       tcases[i].rc, "mount target: %s", tcases[i].what);
	is_int(proto_mount_target_check("ho\0me", 5), -EINVAL,
	       "mount target: a NUL inside");
	is_int(proto_mount_target_check(NULL, 0), -EINVAL,
	       "mount target: NULL");
	memset(name, 'v', 64);
	name[64] = 0;
	is_int(proto_mount_target_check(name, 64), 0,
	       "mount target: a 64-byte volume");
	snprintf(big, sizeof(big), "%s:%s", name, name);
	is_int(proto_mount_target_check(big, strlen(big)), 0,
	       "mount target: 64:64 bytes (the longest)");
	name[64] = 'v';
	name[65] = 0;
	is_int(proto_mount_target_check(name, 65), -EINVAL,
	       "mount target: a 65-byte volume");
	memset(big, 'v', 200);
	big[200] = 0;
	is_int(proto_mount_target_check(big, 200), -ENAMETOOLONG,
	       "mount target: 200 bytes");

	is_str(proto_type_name(PROTO_T_MOUNT), "mount", "type mount names");
	ok(proto_type_parse("mount") == PROTO_T_MOUNT, "type mount parses");
	ok(!proto_type_creatable(PROTO_T_MOUNT), "create does not make one");
	is_str(proto_op_name(PROTO_OP_MKMOUNT), "mkmount", "op mkmount names");
	ok(proto_op_parse("mkmount") == PROTO_OP_MKMOUNT, "op mkmount parses");

	memset(&op, 0, sizeof(op));
	op.kind = PROTO_OP_MKMOUNT;
	memcpy(op.opid, "0123456789abcdef", 16);
	fid_parse(F1, &op.parent);
	op.name = "proj";
	op.target = "proj";
	op.type = PROTO_T_MOUNT;
	op.uid = 1000;
	op.gid = 100;
	op_round_trip(&op, "mkmount");
	fid_parse(F2, &op.fid);
	op.target = "lab:proj";
	op_round_trip(&op, "mkmount alias:volume, chosen fid");
	for (size_t i = 0; i < sizeof(tcases) / sizeof(tcases[0]); i++) {
		if (!tcases[i].rc)
			continue;
		op.target = (char *)tcases[i].t;
		s = proto_op_encode(&op, &len);
		ok(!s && errno == EINVAL, "mkmount to %s is not encoded",
		   tcases[i].what);
		free(s);
	}
#define MK_JSON(target)                                                        \
	"{\"op\":\"mkmount\",\"opid\":\"" OPID "\",\"parent\":\"" F1           \
	"\",\"name\":\"n\",\"target\":" target ",\"uid\":1,\"gid\":1}"
	static const struct {
		const char *json;
		int rc;
		const char *what;
	} ocases[] = {
		{MK_JSON("\"home\""), 0, "a volume"},
		{MK_JSON("\"\""), -EINVAL, "an empty target"},
		{MK_JSON("\"..\""), -EINVAL, "'..'"},
		{MK_JSON("\"a/b\""), -EINVAL, "a slash"},
		{MK_JSON("\"a\\u0000b\""), -EINVAL, "a NUL"},
		{MK_JSON("7"), -EINVAL, "a number"},
		{"{\"op\":\"mkmount\",\"opid\":\"" OPID "\",\"parent\":\"" F1
		 "\",\"name\":\"n\",\"uid\":1,\"gid\":1}",
		 -EINVAL, "no target"},
		{"{\"op\":\"mkmount\",\"opid\":\"" OPID "\",\"parent\":\"" F1
		 "\",\"name\":\"..\",\"target\":\"v\",\"uid\":1,\"gid\":1}",
		 -EINVAL, "name '..'"},
	};
	for (size_t i = 0; i < sizeof(ocases) / sizeof(ocases[0]); i++) {
		int rc = proto_op_decode(ocases[i].json, strlen(ocases[i].json),
					 &g);

		is_int(rc, ocases[i].rc, "mkmount decode: %s", ocases[i].what);
		if (!rc)
			ok(g.type == PROTO_T_MOUNT && !strcmp(g.target, "home"),
			   "mkmount decode: type mount, target kept");
		proto_op_release(&g);
	}
	{
		char js[8000];

		memset(big, 'v', 200);
		big[200] = 0;
		snprintf(js, sizeof(js), MK_JSON("\"%s\""), big);
		is_int(proto_op_decode(js, strlen(js), &g), -ENAMETOOLONG,
		       "mkmount decode: a 200-byte target");
		proto_op_release(&g);
	}

	/* What each client is shown. */
	mkattr(&a, F1, PROTO_T_MOUNT);
	a.size = 4;
	a.mode = 0755;
	proto_attr_compat(&a, PROTO_V_MOUNT);
	ok(a.type == PROTO_T_MOUNT && a.size == 4,
	   "PROTO_V_MOUNT sees a mount point as it is");
	proto_attr_compat(&a, PROTO_V_MOUNT - 1);
	ok(a.type == PROTO_T_SYMLINK && a.size == 5 && a.mode == 0755,
	   "protocol 4 sees a symlink one byte longer");
	mkattr(&a, F1, PROTO_T_MOUNT);
	a.size = 4;
	proto_attr_compat(&a, 2);
	ok(a.type == PROTO_T_SYMLINK && a.size == 5,
	   "protocol 2 sees the symlink too");
	c = proto_link_compat(PROTO_T_MOUNT, "proj", PROTO_V_MOUNT - 1);
	is_str(c, "#proj", "protocol 4 reads the target '#proj'");
	free(c);
	ok(proto_link_compat(PROTO_T_MOUNT, "proj", PROTO_V_MOUNT) == NULL &&
		   errno == 0,
	   "PROTO_V_MOUNT reads the stored target");
	ok(proto_link_compat(PROTO_T_SYMLINK, "proj", 2) == NULL && errno == 0,
	   "a symlink's target is never changed");
	{
		struct proto_op_result r, gr;

		memset(&r, 0, sizeof(r));
		r.has_attr = r.has_parent = true;
		mkattr(&r.attr, F1, PROTO_T_MOUNT);
		r.attr.size = 4;
		mkattr(&r.parent, F2, PROTO_T_DIR);
		s = proto_op_result_encode(&r, &len);
		ok(s != NULL, "op result with a mount point encodes");
		ok(proto_op_result_compat(s, len, PROTO_V_MOUNT, &len) == NULL,
		   "PROTO_V_MOUNT: op result unchanged");
		c = proto_op_result_compat(s, strlen(s), PROTO_V_MOUNT - 1,
					   &len);
		ok(c && proto_op_result_decode(c, len, &gr) == 0 &&
			   gr.attr.type == PROTO_T_SYMLINK &&
			   gr.attr.size == 5 && gr.parent.type == PROTO_T_DIR,
		   "protocol 4: op result shows a symlink");
		free(c);
		free(s);
	}
}

/* A small store's bytes inline (PROTO_V_INLINE): one chunk, at most
 * PROTO_INLINE_MAX and the chunk size, never empty. */
static void
test_inline(void)
{
	static uint8_t big[PROTO_INLINE_MAX + 1];
	uint64_t one = 0, two[2] = {0, 1};
	char hello[] = "hello";
	struct proto_op op, g;
	size_t len;
	char *s;

	memset(&op, 0, sizeof(op));
	op.kind = PROTO_OP_STORE;
	fid_parse(F2, &op.fid);
	memcpy(op.txid, "txid-0123456789a", 16);
	op.chunk_size = 262144;
	op.size = 5;
	op.chunks = &one;
	op.nchunks = 1;
	op.data = hello;
	op.dlen = 5;
	op_round_trip(&op, "store with inline data");
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	op.data = big;
	op.dlen = PROTO_INLINE_MAX;
	op.size = PROTO_INLINE_MAX;
	op_round_trip(&op, "store with PROTO_INLINE_MAX bytes inline");
	op.dlen = PROTO_INLINE_MAX + 1;
	s = proto_op_encode(&op, &len);
	ok(!s && errno == EINVAL, "inline data past PROTO_INLINE_MAX not encoded");
	free(s);
	op.dlen = 5;
	op.chunks = two;
	op.nchunks = 2;
	s = proto_op_encode(&op, &len);
	ok(!s && errno == EINVAL, "inline data with two chunks not encoded");
	free(s);
	op.nchunks = 1;
	op.dlen = 0;
	s = proto_op_encode(&op, &len);
	ok(!s && errno == EINVAL, "empty inline data not encoded");
	free(s);
	/* The bytes are spliced into the text as the last key, not built
	 * through jansson: the text is still what jansson's compact dump
	 * gave, for every padding of the base64, alone and in a batch. */
	memcpy(op.opid, "0123456789abcdef", 16);
	op.size = 5;
	op.chunk_size = 65536;
	op.data = hello;
	op.dlen = 5;
	s = proto_op_encode(&op, &len);
	is_str(s ? s : "", "{\"op\":\"store\",\"opid\":\"30313233343536373839616263646566\",\"fid\":\"" F2
	       "\",\"base_dv\":0,\"txid\":\"747869642d30313233343536373839"
	       "61\",\"chunk_size\":65536,\"size\":5,\"chunks\":[0],"
	       "\"data\":\"aGVsbG8=\"}",
	       "inline store: the text jansson gave");
	ok(s && len == strlen(s), "inline store: its length");
	free(s);
	{
		struct proto_op bops[3];
		struct proto_batch bb;
		char *txt[3], *want, *got;
		size_t wl = 0, gl = 0;
		int same = 1;

		for (int k = 0; k < 3; k++) {
			bops[k] = op;
			bops[k].dlen = (size_t)k + 1; /* "==", "=", no padding */
			bops[k].size = (uint64_t)k + 1;
			txt[k] = proto_op_encode(&bops[k], NULL);
			same = same && txt[k];
		}
		want = same ? malloc(strlen(txt[0]) + strlen(txt[1]) +
				     strlen(txt[2]) + 64)
			    : NULL;
		if (want)
			wl = (size_t)sprintf(want, "{\"ops\":[%s,%s,%s],"
					     "\"stop_on_error\":true}",
					     txt[0], txt[1], txt[2]);
		got = proto_batch_encode(bops, 3, true, &gl);
		ok(want && got && gl == wl && !strcmp(got, want),
		   "batch of inline stores: the ops' texts in order");
		is_int(got ? proto_batch_decode(got, gl, &bb) : -1, 0,
		       "batch of inline stores decodes");
		for (int k = 0; got && k < 3; k++)
			ok(bb.n == 3 && bb.ops[k].dlen == (size_t)k + 1 &&
				   !memcmp(bb.ops[k].data, "hel", (size_t)k + 1),
			   "batch of inline stores: %d bytes back", k + 1);
		if (got)
			proto_batch_release(&bb);
		for (int k = 0; k < 3; k++)
			free(txt[k]);
		free(want);
		free(got);
	}

#define STORE_JSON(chunks, cs, data)                                           \
	"{\"op\":\"store\",\"opid\":\"" OPID "\",\"fid\":\"" F2             \
	"\",\"base_dv\":0,\"txid\":\"" OPID "\",\"chunk_size\":" cs            \
	",\"size\":5,\"chunks\":" chunks ",\"data\":" data "}"
	static const struct {
		const char *json;
		int rc;
		const char *what;
	} icases[] = {
		{STORE_JSON("[0]", "65536", "\"aGVsbG8=\""), 0, "one chunk"},
		{STORE_JSON("[3]", "65536", "\"aGVsbG8=\""), 0,
		 "any one chunk number"},
		{STORE_JSON("[0,1]", "65536", "\"aGVsbG8=\""), -EINVAL,
		 "two chunks"},
		{STORE_JSON("[]", "65536", "\"aGVsbG8=\""), -EINVAL, "no chunk"},
		{STORE_JSON("[0]", "65536", "\"\""), -EINVAL, "empty"},
		{STORE_JSON("[0]", "65536", "\"aGVsbG8\""), -EINVAL,
		 "bad base64"},
		{STORE_JSON("[0]", "65536", "5"), -EINVAL, "not a string"},
		{STORE_JSON("[0]", "65536", "null"), -EINVAL, "null"},
	};
	for (size_t i = 0; i < sizeof(icases) / sizeof(icases[0]); i++) {
		int rc = proto_op_decode(icases[i].json, strlen(icases[i].json),
					 &g);

		is_int(rc, icases[i].rc, "inline decode: %s", icases[i].what);
		if (!rc)
			ok(g.dlen == 5 && !memcmp(g.data, "hello", 5),
			   "inline decode: %s: the bytes", icases[i].what);
		proto_op_release(&g);
	}
	/* (The smallest chunk, PROTO_CHUNK_MIN, is PROTO_INLINE_MAX: the
	 * chunk size never binds before the inline limit.) */
	/* Encoded by hand past the limit: the decoder says E2BIG. */
	{
		char *bj = malloc(2 * PROTO_INLINE_MAX + 512), *p;

		if (bj) {
			p = bj + sprintf(bj, "{\"op\":\"store\",\"opid\":\"" OPID
					     "\",\"fid\":\"" F2
					     "\",\"base_dv\":0,\"txid\":\"" OPID
					     "\",\"chunk_size\":262144,\"size\":1,"
					     "\"chunks\":[0],\"data\":\"");
			/* (PROTO_INLINE_MAX + 3) / 3 * 4 'A's: 65,538 bytes */
			for (size_t i = 0; i < (PROTO_INLINE_MAX + 3) / 3; i++)
				p += sprintf(p, "AAAA");
			p += sprintf(p, "\"}");
			is_int(proto_op_decode(bj, (size_t)(p - bj), &g), -E2BIG,
			       "inline data past PROTO_INLINE_MAX refused");
			proto_op_release(&g);
			free(bj);
		}
	}
#undef STORE_JSON
}

/* Stores' bytes in the body's attachment (PROTO_V_ATTACH): after the
 * JSON text and a NUL, named by "data_off" and "data_len". */
static void
test_attach(void)
{
	static uint8_t big[PROTO_INLINE_MAX];
	uint64_t one = 0;
	struct proto_op op, ops[4], g;
	struct proto_batch b;
	size_t len, jl;
	char *s;
	int bad;

	memset(&op, 0, sizeof(op));
	op.kind = PROTO_OP_STORE;
	fid_parse(F2, &op.fid);
	memcpy(op.opid, "0123456789abcdef", 16);
	memcpy(op.txid, "txid-0123456789a", 16);
	op.chunk_size = 65536;
	op.size = 5;
	op.chunks = &one;
	op.nchunks = 1;
	op.data = "hello";
	op.dlen = 5;
	s = proto_op_encode_ex(&op, PROTO_ENC_ATTACH, &len);
	jl = s ? strlen(s) : 0;
	is_str(s ? s : "", "{\"op\":\"store\",\"opid\":\"30313233343536373839616263646566\",\"fid\":\"" F2
	       "\",\"base_dv\":0,\"txid\":\"747869642d30313233343536373839"
	       "61\",\"chunk_size\":65536,\"size\":5,\"chunks\":[0],"
	       "\"data_off\":0,\"data_len\":5}",
	       "attached store: its JSON text");
	ok(s && len == jl + 1 + 5 && !memcmp(s + jl + 1, "hello", 5),
	   "attached store: a NUL, then the bytes");
	is_int(s ? proto_op_decode(s, len, &g) : -1, 0, "attached store decodes");
	ok(g.dlen == 5 && g.data && !memcmp(g.data, "hello", 5),
	   "attached store: the bytes back");
	proto_op_release(&g);
	/* Every proper prefix is refused: a cut in the JSON text, the text
	 * alone (a range and no attachment), a cut in the bytes. */
	bad = 0;
	for (size_t i = 0; s && i < len; i++) {
		if (proto_op_decode(s, i, &g) != -EINVAL || g.data)
			bad++;
		proto_op_release(&g);
	}
	is_int(bad, 0, "attached store: every truncation refused");
	free(s);

	/* Without bytes, the body is the plain JSON of proto_op_encode(). */
	op.data = NULL;
	op.dlen = 0;
	s = proto_op_encode_ex(&op, PROTO_ENC_ATTACH, &len);
	ok(s && len == strlen(s) && !strstr(s, "data"),
	   "store without bytes: no attachment");
	free(s);

	/* A batch: the attachment holds the stores' bytes in op order. */
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 13 + 1);
	for (int k = 0; k < 4; k++) {
		ops[k] = op;
		ops[k].data = big + k;
		ops[k].dlen = (size_t)k + 1;
		ops[k].size = (uint64_t)k + 1;
	}
	ops[1].kind = PROTO_OP_SETXATTR; /* no bytes of its own */
	ops[1].data = NULL;
	ops[1].dlen = 0;
	ops[1].xname = "user.a";
	ops[1].xvalue = "v";
	ops[1].xlen = 1;
	ops[3].data = big;
	ops[3].dlen = PROTO_INLINE_MAX;
	ops[3].size = PROTO_INLINE_MAX;
	s = proto_batch_encode_ex(ops, 4, false, PROTO_ENC_ATTACH, &len);
	jl = s ? strlen(s) : 0;
	ok(s && len == jl + 1 + 1 + 3 + PROTO_INLINE_MAX,
	   "attached batch: the text, a NUL and 1 + 3 + 65,536 bytes");
	ok(s && strstr(s, "\"data_off\":0,\"data_len\":1}") &&
		   strstr(s, "\"data_off\":1,\"data_len\":3}") &&
		   strstr(s, "\"data_off\":4,\"data_len\":65536}"),
	   "attached batch: the ranges follow each other");
	is_int(s ? proto_batch_decode(s, len, &b) : -1, 0,
	       "attached batch decodes");
	ok(b.n == 4 && b.ops[0].dlen == 1 && !memcmp(b.ops[0].data, big, 1) &&
		   !b.ops[1].data && b.ops[2].dlen == 3 &&
		   !memcmp(b.ops[2].data, big + 2, 3) &&
		   b.ops[3].dlen == PROTO_INLINE_MAX &&
		   !memcmp(b.ops[3].data, big, PROTO_INLINE_MAX),
	   "attached batch: each store its bytes");
	proto_batch_release(&b);
	bad = 0;
	for (size_t i = 0; s && i < len; i += i < jl + 8 ? 1 : 4093) {
		if (proto_batch_decode(s, i, &b) >= 0 || b.ops)
			bad++;
		proto_batch_release(&b);
	}
	is_int(bad, 0, "attached batch: truncations refused");
	free(s);

#define ASTORE(extra) \
	"{\"op\":\"store\",\"opid\":\"" OPID "\",\"fid\":\"" F2             \
	"\",\"base_dv\":0,\"txid\":\"" OPID "\",\"chunk_size\":65536"        \
	",\"size\":5,\"chunks\":[0]" extra "}"
	static const struct {
		const char *body; /* "|" stands for the NUL */
		int rc;
		const char *what;
	} acases[] = {
		{ASTORE(",\"data_off\":0,\"data_len\":5") "|hello", 0, "a range"},
		{ASTORE(",\"data_len\":5,\"data_off\":0") "|hello", 0,
		 "keys in any order"},
		{ASTORE(",\"data_off\":2,\"data_len\":5") "|xxhello", -EINVAL,
		 "bytes before the range that nothing names"},
		{ASTORE(",\"data_off\":0,\"data_len\":5") "|hellox", -EINVAL,
		 "bytes after the range that nothing names"},
		{ASTORE(",\"data_off\":1,\"data_len\":5") "|hello", -EINVAL,
		 "a range past the end"},
		{ASTORE(",\"data_off\":6,\"data_len\":1") "|hello", -EINVAL,
		 "an offset past the end"},
		{ASTORE(",\"data_off\":18446744073709551615,\"data_len\":5")
		 "|hello", -EINVAL, "an offset that would wrap"},
		{ASTORE(",\"data_off\":0,\"data_len\":0") "|hello", -EINVAL,
		 "no bytes"},
		{ASTORE(",\"data_off\":0,\"data_len\":65537") "|hello", -E2BIG,
		 "more than PROTO_INLINE_MAX"},
		{ASTORE(",\"data_off\":0") "|hello", -EINVAL, "an offset alone"},
		{ASTORE(",\"data_len\":5") "|hello", -EINVAL, "a length alone"},
		{ASTORE(",\"data_off\":-1,\"data_len\":5") "|hello", -EINVAL,
		 "a negative offset"},
		{ASTORE(",\"data_off\":\"0\",\"data_len\":5") "|hello", -EINVAL,
		 "an offset that is a string"},
		{ASTORE(",\"data\":\"aGVsbG8=\",\"data_off\":0,\"data_len\":5")
		 "|hello", -EINVAL, "base64 and a range"},
		{ASTORE(",\"data_off\":0,\"data_len\":5"), -EINVAL,
		 "a range and no attachment"},
		{ASTORE("") "|hello", -EINVAL, "an attachment nothing names"},
		{ASTORE("") "|", -EINVAL, "an empty attachment"},
		{ASTORE(",\"data\":\"aGVsbG8=\"") "|hello", -EINVAL,
		 "base64, and an attachment nothing names"},
		{"{\"op\":\"store\"|" ASTORE(",\"data_off\":0,\"data_len\":5}")
		 "|hello", -EINVAL, "a NUL inside the JSON text"},
	};
	for (size_t i = 0; i < sizeof(acases) / sizeof(acases[0]); i++) {
		char buf[1024];
		size_t n = strlen(acases[i].body);
		int rc;

		memcpy(buf, acases[i].body, n);
		for (size_t j = 0; j < n; j++)
			if (buf[j] == '|')
				buf[j] = 0;
		rc = proto_op_decode(buf, n, &g);
		is_int(rc, acases[i].rc, "attach decode: %s", acases[i].what);
		if (!rc)
			ok(g.dlen == 5 && !memcmp(g.data, "hello", 5),
			   "attach decode: %s: the bytes", acases[i].what);
		proto_op_release(&g);
	}
	{
		/* Two stores may not name the same bytes (no byte is copied
		 * out twice), nor out of op order; a batch whose attachment
		 * nothing names is refused as a single op is. */
		static const char b2[] = "{\"ops\":[" ASTORE(
			",\"data_off\":0,\"data_len\":5") "," ASTORE(
			",\"data_off\":0,\"data_len\":5") "]}|hello";
		static const char b4[] = "{\"ops\":[" ASTORE(
			",\"data_off\":5,\"data_len\":5") "," ASTORE(
			",\"data_off\":0,\"data_len\":5") "]}|helloworld";
		static const char b5[] = "{\"ops\":[" ASTORE(
			",\"data_off\":0,\"data_len\":5") "," ASTORE(
			",\"data_off\":5,\"data_len\":5") "]}|helloworld";
		static const char b3[] = "{\"ops\":[" ASTORE("") "]}|hello";
		char buf[1024];

		memcpy(buf, b2, sizeof(b2) - 1);
		*strchr(buf, '|') = 0;
		is_int(proto_batch_decode(buf, sizeof(b2) - 1, &b), -EINVAL,
		       "attached batch: two stores, one range");
		ok(!b.ops, "... nothing kept");
		memcpy(buf, b4, sizeof(b4) - 1);
		*strchr(buf, '|') = 0;
		is_int(proto_batch_decode(buf, sizeof(b4) - 1, &b), -EINVAL,
		       "attached batch: ranges out of op order");
		memcpy(buf, b5, sizeof(b5) - 1);
		*strchr(buf, '|') = 0;
		is_int(proto_batch_decode(buf, sizeof(b5) - 1, &b), 0,
		       "attached batch: ranges in op order");
		ok(b.n == 2 && b.ops[1].dlen == 5 &&
			   !memcmp(b.ops[1].data, "world", 5),
		   "... each store its bytes");
		proto_batch_release(&b);
		memcpy(buf, b3, sizeof(b3) - 1);
		*strchr(buf, '|') = 0;
		is_int(proto_batch_decode(buf, sizeof(b3) - 1, &b), -EINVAL,
		       "attached batch: an attachment nothing names");
		ok(!b.ops, "... nothing kept");
	}
#undef ASTORE
}

/* A binary page (protocol 8) of @n entries named bN, as cairn-vold
 * writes one. */
static char *
dirb_page(size_t n, const char *next, size_t *lenp)
{
	struct proto_sbuf b = {0};
	struct proto_attr dir, a;
	char nm[32];

	mkattr(&dir, F1, PROTO_T_DIR);
	proto_dirb_reserve(&b);
	for (size_t i = 0; i < n; i++) {
		mkattr(&a, i % 2 ? F2 : F3,
		       i % 3 == 0 ? PROTO_T_FILE : PROTO_T_CHR);
		a.rdev = i % 3 == 0 ? 0 : (uint32_t)i;
		a.size = i * 1000003u;
		snprintf(nm, sizeof(nm), "b%zu", i);
		proto_dirb_ent(&b, nm, strlen(nm), &a);
	}
	return proto_dirb_page_end(&b, &dir, next, lenp);
}

static void
test_dir_binary(void)
{
	struct proto_attr a;
	struct proto_dir d = {0}, j = {0}, g = {0};
	struct proto_dirent e[5];
	const char *names[5] = {"a.txt", "caf\xc3\xa9", "sub dir", "dev",
				"x\"y"};
	char next[PROTO_CURSOR_MAX], jnext[PROTO_CURSOR_MAX], nm[300];
	char *s, *js;
	size_t len, jlen, bad = 0, same = 0;
	int rc;

	/* The same page both ways decodes to the same listing. */
	mkattr(&d.dir, F1, PROTO_T_DIR);
	for (int i = 0; i < 5; i++) {
		e[i].name = (char *)names[i];
		mkattr(&e[i].attr, i % 2 ? F2 : F3,
		       i == 3	? PROTO_T_BLK
		       : i == 2 ? PROTO_T_DIR
				: PROTO_T_FILE);
	}
	e[3].attr.rdev = 0x0801;
	e[4].attr.size = (uint64_t)INT64_MAX;
	e[4].attr.atime_ns = INT64_MIN;
	e[4].attr.mode = 07777;
	d.ents = e;
	d.n = 5;
	js = proto_dir_page_encode(&d, "7.3.12", &jlen);
	{
		struct proto_sbuf b = {0};

		for (int i = 0; i < 5; i++) {
			if (i == 0)
				proto_dirb_reserve(&b);
			/* names as stored: not NUL-ended */
			memcpy(nm, names[i], strlen(names[i]));
			memset(nm + strlen(names[i]), 'Z', 4);
			proto_dirb_ent(&b, nm, strlen(names[i]), &e[i].attr);
		}
		s = proto_dirb_page_end(&b, &d.dir, "7.3.12", &len);
		ok(b.p == NULL && b.len == 0,
		   "binary: the buffer is handed over");
	}
	ok(s && js && proto_dirb_is(s, len) && !proto_dirb_is(js, jlen),
	   "binary: a page starts with its magic, a JSON one does not");
	ok(s && len == PROTO_DIRB_HEAD_LEN + 5 * (1 + PROTO_DIRB_ATTR_LEN) +
				   strlen("a.txtcaf\xc3\xa9sub dirdevx\"y"),
	   "binary: head, then a length, a name and %d bytes an entry",
	   PROTO_DIRB_ATTR_LEN);
	rc = s ? proto_dir_page_decode(s, len, false, &g, next) : -1;
	is_int(rc, 0, "binary: the page decodes (proto_dir_page_decode)");
	is_int(proto_dir_page_decode(js, jlen, false, &j, jnext), 0,
	       "and its JSON twin");
	ok(!strcmp(next, "7.3.12") && !strcmp(jnext, next),
	   "binary: the same cursor");
	ok(g.n == 5 && j.n == 5 && attr_eq(&g.dir, &j.dir),
	   "binary: the same directory and count");
	for (size_t i = 0; i < g.n && i < j.n; i++)
		if (!strcmp(g.ents[i].name, j.ents[i].name) &&
		    attr_eq(&g.ents[i].attr, &j.ents[i].attr))
			same++;
	is_int((int)same, 5, "binary: every entry as JSON gives it");
	proto_dir_release(&j);
	proto_dir_release(&g);
	memset(next, 'q', sizeof(next));
	is_int(proto_dirb_peek_next(s, len, next), 0, "binary: peek at next");
	is_str(next, "7.3.12", "binary: peeked cursor");
	/* Re-encoding what was decoded gives the same bytes: one page, one
	 * encoding (the fuzz target checks this on every input). */
	{
		struct proto_sbuf b = {0};
		char *s2;
		size_t len2;

		is_int(proto_dirb_decode(s, len, PROTO_DIR_PAGE_MAX, &g, NULL),
		       0, "binary: proto_dirb_decode, no cursor wanted");
		proto_dirb_reserve(&b);
		for (size_t i = 0; i < g.n; i++)
			proto_dirb_ent(&b, g.ents[i].name,
				       strlen(g.ents[i].name), &g.ents[i].attr);
		s2 = proto_dirb_page_end(&b, &g.dir, "7.3.12", &len2);
		ok(s2 && len2 == len && !memcmp(s, s2, len),
		   "binary: decoded and encoded again, the same bytes");
		free(s2);
		proto_dir_release(&g);
	}

	/* Every truncation and every trailing byte: EINVAL, nothing kept. */
	for (size_t cut = 0; cut < len; cut++) {
		memset(&g, 0x5a, sizeof(g));
		if (proto_dir_page_decode(s, cut, false, &g, next) == -EINVAL &&
		    g.n == 0 && g.ents == NULL && next[0] == 0)
			bad++;
	}
	is_int((int)bad, (int)len, "binary: each of %zu truncations: EINVAL",
	       len);
	{
		char *t = malloc(len + 1);

		memcpy(t, s, len);
		t[len] = 0;
		is_int(proto_dir_page_decode(t, len + 1, false, &g, next),
		       -EINVAL, "binary: a byte past the last entry: EINVAL");
		free(t);
	}

	/* Each field out of its range, one at a time, in a copy. */
	{
		const size_t dir = PROTO_DIRB_HEAD_LEN - PROTO_DIRB_ATTR_LEN;
		const size_t e0 = PROTO_DIRB_HEAD_LEN; /* "a.txt" */
		const size_t a0 = e0 + 1 + 5;	       /* its attributes */
		struct {
			size_t off;
			unsigned char v;
			int rc;
			const char *what;
		} bcases[] = {
			{0, 'X', -EINVAL, "bad magic"},
			{4, 6, -EINVAL, "a count one past the entries"},
			{4, 4, -EINVAL, "a count one short (trailing bytes)"},
			{7, 0x40, -EINVAL, "a count of a billion, 1 KB body"},
			{8, 64, -EINVAL, "a cursor length of 64"},
			{8, 7, -EINVAL, "a cursor longer than its text"},
			{9, '/', -EINVAL, "a '/' in the cursor"},
			{9 + 62, 1, -EINVAL, "a nonzero byte in the padding"},
			{dir + 20, PROTO_T_FILE, -EINVAL, "the dir a file"},
			{dir, 0, 0, "the dir's volume 0 (a FID still)"},
			{e0, 0, -EINVAL, "a name of 0 bytes"},
			{e0, 200, -EINVAL, "a name run into the attributes"},
			{e0, 255, -EINVAL, "a name of 255 run into them"},
			{e0 + 1, '/', -EINVAL, "a '/' in a name"},
			{e0 + 1, 0, -EINVAL, "a NUL in a name"},
			{e0 + 1, 0xff, -EINVAL, "a name not UTF-8"},
			{a0 + 20, 0, -EINVAL, "type 0"},
			{a0 + 20, 9, -EINVAL, "type 9"},
			{a0 + 20, PROTO_T_MOUNT, 0, "type mount"},
			{a0 + 22, 0x10, -EINVAL, "mode above 07777"},
			{a0 + 33, 1, -EINVAL, "rdev on a file"},
			{a0 + 37 + 7, 0x80, -EINVAL, "size 2^63"},
			{a0 + 45 + 7, 0x80, -EINVAL, "nlink 2^63"},
			{a0 + 53 + 7, 0x80, -EINVAL, "dv 2^63"},
			{a0 + 61 + 7, 0x80, 0, "atime before 1970"},
		};

		for (size_t i = 0; i < sizeof(bcases) / sizeof(bcases[0]);
		     i++) {
			char *t = malloc(len);

			memcpy(t, s, len);
			t[bcases[i].off] = (char)bcases[i].v;
			rc = proto_dir_page_decode(t, len, false, &g, next);
			is_int(rc, bcases[i].rc, "binary: %s", bcases[i].what);
			if (!rc)
				ok(g.n == 5, "binary: and all five entries");
			else
				ok(g.n == 0 && !g.ents && !next[0],
				   "binary: and nothing decoded");
			proto_dir_release(&g);
			free(t);
		}
		/* A null FID, and a name "..": refused. */
		{
			char *t = malloc(len);

			memcpy(t, s, len);
			memset(t + a0, 0, 4 + FID_OID_LEN);
			is_int(proto_dir_page_decode(t, len, false, &g, next),
			       -EINVAL, "binary: a null FID");
			memcpy(t, s, len);
			memcpy(t + e0, "\x02..", 3);
			memcpy(t + e0 + 3, s + e0 + 6, len - e0 - 6);
			is_int(proto_dir_page_decode(t, len - 3, false, &g,
						     next),
			       -EINVAL, "binary: a name '..'");
			free(t);
		}
	}
	free(s);
	free(js);

	/* Names given twice: the checked decoder refuses them, the unchecked
	 * one leaves them to the snapshot's sort (vc_dirb_finish()). */
	{
		struct proto_sbuf b = {0};

		mkattr(&a, F2, PROTO_T_FILE);
		proto_dirb_reserve(&b);
		proto_dirb_ent(&b, "twice", 5, &a);
		proto_dirb_ent(&b, "twice", 5, &a);
		s = proto_dirb_page_end(&b, &d.dir, NULL, &len);
		is_int(proto_dir_page_decode(s, len, false, &g, next), -EINVAL,
		       "binary: a name twice, checked: EINVAL");
		is_int(proto_dir_page_decode_unchecked(s, len, false, &g, next),
		       0, "binary: unchecked: decoded");
		ok(g.n == 2 && next[0] == 0, "binary: both, and no cursor");
		proto_dir_release(&g);
		free(s);
	}

	/* Limits: 4,096 entries a page; more is E2BIG, even for a first
	 * reply (a whole listing is JSON only). */
	s = dirb_page(PROTO_DIR_PAGE_MAX, "1.2.3", &len);
	ok(s != NULL, "binary: a full page encodes");
	rc = proto_dir_page_decode(s, len, true, &g, next);
	ok(rc == 0 && g.n == PROTO_DIR_PAGE_MAX &&
		   g.ents[4095].attr.rdev == 0 &&
		   g.ents[4094].attr.rdev == 4094 &&
		   !strcmp(g.ents[4094].name, "b4094"),
	   "binary: a full page decodes");
	proto_dir_release(&g);
	free(s);
	{
		struct proto_sbuf b = {0};
		struct proto_attr dir;

		mkattr(&dir, F1, PROTO_T_DIR);
		mkattr(&a, F2, PROTO_T_FILE);
		proto_dirb_reserve(&b);
		for (size_t i = 0; i <= PROTO_DIR_PAGE_MAX; i++) {
			snprintf(nm, sizeof(nm), "n%zu", i);
			proto_dirb_ent(&b, nm, strlen(nm), &a);
		}
		s = proto_dirb_page_end(&b, &dir, NULL, &len);
		ok(!s && errno == EINVAL,
		   "binary: 4,097 entries are not written");
	}
	s = dirb_page(10, NULL, &len);
	is_int(proto_dirb_decode(s, len, 9, &g, next), -E2BIG,
	       "binary: 10 entries where 9 are allowed: E2BIG");
	ok(g.n == 0 && !g.ents, "binary: and nothing kept");
	is_int(proto_dirb_peek_next(s, len, next), 0,
	       "binary: peek at a last page");
	is_str(next, "", "binary: no cursor");
	free(s);

	/* What the encoder refuses, as the JSON encoder does. */
	{
		struct {
			enum proto_type t;
			uint32_t mode, rdev;
			uint64_t size;
			const char *name;
			int err;
			const char *what;
		} bads[] = {
			{PROTO_T_NONE, 0644, 0, 0, "x", EINVAL, "type none"},
			{PROTO_T_FILE, 010000, 0, 0, "x", EINVAL,
			 "mode 010000"},
			{PROTO_T_FILE, 0644, 5, 0, "x", EINVAL,
			 "rdev on a file"},
			{PROTO_T_FILE, 0644, 0, (uint64_t)INT64_MAX + 1, "x",
			 ERANGE, "size 2^63"},
			{PROTO_T_FILE, 0644, 0, 0, "..", EINVAL, "name '..'"},
			{PROTO_T_FILE, 0644, 0, 0, "", EINVAL, "empty name"},
		};

		for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
			struct proto_sbuf b = {0};

			mkattr(&a, F2, bads[i].t);
			a.mode = bads[i].mode;
			a.rdev = bads[i].rdev;
			a.size = bads[i].size;
			proto_dirb_reserve(&b);
			proto_dirb_ent(&b, bads[i].name, strlen(bads[i].name),
				       &a);
			s = proto_dirb_page_end(&b, &d.dir, NULL, &len);
			ok(!s && errno == bads[i].err,
			   "binary encoder: %s refused", bads[i].what);
		}
		memset(&a, 0, sizeof(a));
		{
			struct proto_sbuf b = {0};

			proto_dirb_ent(&b, "x", 1, &e[0].attr);
			s = proto_dirb_page_end(&b, &d.dir, NULL, &len);
			ok(!s && errno == EINVAL,
			   "binary encoder: an entry before the reserve");
			proto_dirb_reserve(&b);
			s = proto_dirb_page_end(&b, &d.dir, "bad/cursor", &len);
			ok(!s && errno == EINVAL,
			   "binary encoder: a bad cursor refused");
			d.dir.type = PROTO_T_FILE;
			s = proto_dirb_page_end(&b, &d.dir, NULL, &len);
			ok(!s && errno == EINVAL,
			   "binary encoder: a head that is not a directory");
			mkattr(&d.dir, F1, PROTO_T_DIR);
		}
	}

	/* The query that asks for it. */
	{
		struct proto_path pp;

		is_int(proto_parse_path(
			       "/v1/vol/home/dir/" F1 "?limit=10&enc=bin", &pp),
		       0, "path: enc=bin with limit");
		ok(pp.bin && pp.has_enc, "path: binary asked for");
		is_int(proto_parse_path("/v1/vol/home/dir/" F1
					"?limit=10&enc=json",
					&pp),
		       0, "path: enc=json");
		ok(!pp.bin && pp.has_enc, "path: JSON asked for");
		is_int(proto_parse_path("/v1/vol/home/dir/" F1 "?enc=bin", &pp),
		       -EINVAL, "path: enc=bin without limit: EINVAL");
		is_int(proto_parse_path(
			       "/v1/vol/home/dir/" F1 "?limit=1&enc=xml", &pp),
		       -EINVAL, "path: enc=xml: EINVAL");
		is_int(proto_parse_path("/v1/vol/home/dir/" F1
					"?limit=1&enc=bin&enc=bin",
					&pp),
		       -EINVAL, "path: enc twice: EINVAL");
		is_int(proto_parse_path("/v1/vol/home/dir/" F1 "?limit=1&enc",
					&pp),
		       -EINVAL, "path: enc without a value: EINVAL");
		is_int(proto_parse_path("/v1/vol/home/link/" F1 "?enc=bin",
					&pp),
		       -EINVAL, "path: enc on another route: EINVAL");
	}
}

int
main(void)
{
	test_names();
	test_attach();
	test_errnos();
	test_volinfo();
	test_attrs();
	test_dir();
	test_dir_pages();
	test_dir_binary();
	test_dir_dups();
	test_dir_stream();
	test_dir_numbers();
	test_link();
	test_xattrs();
	test_events();
	test_ops();
	test_types();
	test_mount();
	test_result_error();
	test_paths();
	test_malformed();
	test_big();
	test_batch();
	test_files();
	test_blocks();
	test_inline();
	return done_testing();
}
