/*
 * test_vold_admit.c - unit tests of cairn-vold's admission decisions from a
 * request head (vol/vold_admit.c): the head parser and the body limit of
 * every route.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/proto.h"
#include "tests/tap.h"
#include "vol/vold_admit.h"

#define FID "0000002a.00112233445566778899aabbccddeeff"
#define TX  "00112233445566778899aabbccddeeff"

static void
test_parse(void)
{
	struct vold_head h;
	const char *r;
	int n;

	r = "POST /v1/vol/home/op HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 12\r\nAuthorization:  Bearer abc \r\n\r\nBODY";
	n = vold_head_parse(r, strlen(r), &h);
	is_int(n, (int)(strlen(r) - 4), "head length excludes the body");
	is_int(h.method, VOLD_M_POST, "POST");
	ok(h.target_len == 15 && !memcmp(h.target, "/v1/vol/home/op", 15),
	   "target");
	ok(h.content_length == 12 && h.n_content_length == 1, "length 12");
	ok(h.auth_len == 10 && !memcmp(h.auth, "Bearer abc", 10),
	   "authorization value trimmed");
	ok(!h.chunked, "not chunked");

	r = "GET /v1/ping HTTP/1.1\nHost: x\n\n";
	n = vold_head_parse(r, strlen(r), &h);
	is_int(n, (int)strlen(r), "bare LF lines");
	ok(h.method == VOLD_M_GET && h.content_length == -1 && !h.auth,
	   "GET without length or token");

	r = "\r\nGET /v1/ping HTTP/1.1\r\n\r\n";
	is_int(vold_head_parse(r, strlen(r), &h), (int)strlen(r),
	       "a blank line before the request line is skipped");

	for (size_t cut = 0; cut < 40; cut++) {
		r = "PUT /v1/x HTTP/1.1\r\nContent-Length: 5\r\n\r\n";
		if (cut >= strlen(r))
			break;
		if (vold_head_parse(r, cut, &h) != 0) {
			ok(0, "a head cut at %zu is incomplete", cut);
			return;
		}
	}
	ok(1, "every prefix of a head is incomplete");

	r = "PUT /x HTTP/1.1\r\ncontent-LENGTH: 7\r\nTransfer-Encoding: "
	    "chunked\r\n\r\n";
	n = vold_head_parse(r, strlen(r), &h);
	ok(n > 0 && h.method == VOLD_M_PUT && h.content_length == 7 &&
		   h.chunked,
	   "header names are case-blind; Transfer-Encoding seen");
	r = "POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: "
	    "2\r\n\r\n";
	n = vold_head_parse(r, strlen(r), &h);
	ok(n > 0 && h.n_content_length == 2,
	   "two Content-Length headers counted");

	is_int(vold_head_parse("POST /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
			       41, &h),
	       -EINVAL, "negative length refused");
	r = "POST /x HTTP/1.1\r\nContent-Length: 1x\r\n\r\n";
	is_int(vold_head_parse(r, strlen(r), &h), -EINVAL,
	       "length with junk refused");
	r = "POST /x HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n";
	is_int(vold_head_parse(r, strlen(r), &h), -EINVAL,
	       "length past INT64_MAX refused");
	r = "POST /x HTTP/1.1\r\nContent-Length: 9223372036854775807\r\n\r\n";
	ok(vold_head_parse(r, strlen(r), &h) > 0 &&
		   h.content_length == INT64_MAX,
	   "INT64_MAX itself parses");
	r = "GARBAGE\r\n\r\n";
	is_int(vold_head_parse(r, strlen(r), &h), -EINVAL,
	       "request line without spaces refused");
	r = "FROB /x HTTP/1.1\r\n\r\n";
	ok(vold_head_parse(r, strlen(r), &h) > 0 && h.method == VOLD_M_OTHER,
	   "unknown method parses as OTHER");
	r = "DELETE /x HTTP/1.1\r\n\r\n";
	ok(vold_head_parse(r, strlen(r), &h) > 0 && h.method == VOLD_M_BODY,
	   "DELETE may carry a body");
}

static void
test_head_end(void)
{
	const char *r = "GET / HTTP/1.1\r\nA: b\r\n\r\nbody";
	size_t len = strlen(r), at = 0, hits = 0;

	is_int((int)vold_head_end(r, len, 0), (int)(len - 4), "CRLF end found");
	is_int((int)vold_head_end("a\n\nb", 4, 0), 3, "LF end found");
	is_int((int)vold_head_end(r, len - 6, 0), 0, "no end yet");
	/* Fed a byte at a time, the end is found once, at its last byte. */
	for (size_t n = 1; n <= len; n++) {
		size_t e = vold_head_end(r, n, at);

		if (e) {
			hits++;
			ok(e == len - 4 && n == len - 4, "end at byte %zu", n);
		}
		at = e ? e : n;
	}
	is_int((int)hits, 1, "one hit in a byte-by-byte feed");
	r = "\r\n\r\nGET / HTTP/1.1\r\n\r\n";
	at = vold_head_end(r, strlen(r), 0);
	ok(at == 4, "leading blank lines give an early candidate");
	is_int((int)vold_head_end(r, strlen(r), at), (int)strlen(r),
	       "searching on from it finds the real end");
}

/* The limit for METHOD on TARGET, or UINT64_MAX if TARGET is no route. */
static uint64_t
limit(enum vold_method m, const char *target)
{
	struct proto_path p;

	if (proto_parse_path(target, &p))
		return UINT64_MAX;
	return vold_body_limit(m, &p);
}

static void
test_limits(void)
{
	struct proto_path none = {0};

	/* The numbers doc/protocol.md states, and the same ones the
	 * decoders enforce: a head the filter admits carries a body the
	 * decoder does not refuse for its size, and vice versa. */
	is_int((int)PROTO_GETATTR_BODY_MAX, 131072, "getattr limit 131,072");
	is_int((int)PROTO_OP_BODY_MAX, 25427968, "op limit 25,427,968");
	ok(limit(VOLD_M_POST, "/v1/vol/home/getattr") == PROTO_GETATTR_BODY_MAX,
	   "POST getattr: the decoder's limit");
	ok(limit(VOLD_M_POST, "/v1/vol/home/op") == PROTO_OP_BODY_MAX,
	   "POST op: the decoder's limit");
	ok(limit(VOLD_M_POST, "/v1/vol/home/batch") == PROTO_BATCH_BODY_MAX,
	   "POST batch: the decoder's limit");
	is_int((int)limit(VOLD_M_GET, "/v1/vol/home/batch"), 0,
	       "GET batch: no body");
	is_int((int)limit(VOLD_M_PUT, "/v1/vol/home/batch"), 0,
	       "PUT batch: no body");
	is_int((int)limit(VOLD_M_PUT,
			  "/v1/vol/home/stage/" FID "/" TX "/3?size=65536"),
	       65536, "PUT stage of 64 KiB chunks: the chunk size");
	is_int((int)limit(VOLD_M_PUT,
			  "/v1/vol/home/stage/" FID "/" TX "/0?size=4194304"),
	       4194304, "PUT stage of 4 MiB chunks: the chunk size");
	is_int((int)limit(VOLD_M_GET, "/v1/vol/home/op"), 0, "GET op: no body");
	is_int((int)limit(VOLD_M_PUT, "/v1/vol/home/getattr"), 0,
	       "PUT getattr: no body");
	is_int((int)limit(VOLD_M_POST,
			  "/v1/vol/home/stage/" FID "/" TX "/0?size=65536"),
	       0, "POST stage: no body");
	is_int((int)limit(VOLD_M_HEAD, "/v1/vol/home/op"), 0, "HEAD: no body");
	static const char *const gets[] = {
		"/v1/ping",
		"/v1/vol/home",
		"/v1/vol/home/dir/" FID,
		"/v1/vol/home/link/" FID,
		"/v1/vol/home/xattr/" FID,
		"/v1/vol/home/data/" FID "/7/0?size=65536",
		"/v1/vol/home/events?since=3",
	};
	for (size_t i = 0; i < sizeof(gets) / sizeof(gets[0]); i++) {
		is_int((int)limit(VOLD_M_GET, gets[i]), 0, "GET %s: no body",
		       gets[i]);
		is_int((int)limit(VOLD_M_POST, gets[i]), 0, "POST %s: no body",
		       gets[i]);
	}
	is_int((int)vold_body_limit(VOLD_M_POST, &none), 0,
	       "no route: no body");
	ok(VOLD_HEAD_MAX < 64 * 1024, "a whole head fits below the socket's "
				      "read mark");
}

/* The largest store cairnd can send (its merges stop at 2^20 chunks;
 * chunk numbers are at most INT64_MAX / 64 KiB) must pass the head check
 * and decode; one chunk more is refused by the decoder, not for size. */
static void
test_largest_store(void)
{
	struct proto_op op = {0}, back = {0};
	size_t len = 0, i;
	char *b;

	op.kind = PROTO_OP_STORE;
	fid_parse(FID, &op.fid);
	op.chunk_size = PROTO_CHUNK_MIN;
	op.size = (uint64_t)INT64_MAX;
	op.base_dv = UINT64_MAX >> 1;
	op.nchunks = PROTO_STORE_CHUNKS_MAX;
	op.chunks = calloc(op.nchunks, sizeof(*op.chunks));
	if (!op.chunks) {
		ok(0, "out of memory");
		return;
	}
	for (i = 0; i < op.nchunks; i++)
		op.chunks[i] = INT64_MAX / PROTO_CHUNK_MIN - i;
	b = proto_op_encode(&op, &len);
	ok(b != NULL, "the largest store encodes");
	diag("largest store: %zu bytes", len);
	ok(b && len <= limit(VOLD_M_POST, "/v1/vol/home/op"),
	   "and is admitted from its head");
	is_int(b ? proto_op_decode(b, len, &back) : -1, 0,
	       "and decodes (not E2BIG)");
	proto_op_release(&back);
	free(b);
	free(op.chunks);
}

int
main(void)
{
	test_parse();
	test_head_end();
	test_limits();
	test_largest_store();
	return done_testing();
}
