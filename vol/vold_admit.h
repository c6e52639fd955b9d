/*
 * vold_admit.h - what cairn-vold decides about a request from its head
 * alone, before any byte of the body is read: the parsed request line and
 * the few headers that matter (Content-Length, Transfer-Encoding,
 * Authorization), and the largest body each route may carry
 * (doc/protocol.md, "Limits").
 *
 * Pure functions, no I/O, no libevent: vold_http.c's admission filter
 * calls them and tests/unit/test_vold_admit.c checks them. Thread-safe.
 */
#ifndef CAIRN_VOLD_ADMIT_H
#define CAIRN_VOLD_ADMIT_H

#include <stddef.h>
#include <stdint.h>

#include "common/fid.h"
#include "common/proto.h"

/* Body limits per route: common/proto.h's PROTO_GETATTR_BODY_MAX,
 * PROTO_OP_BODY_MAX, PROTO_BATCH_BODY_MAX and a staged chunk's ?size=, the same numbers the
 * decoders and the stage handler enforce (vold_body_limit()). */
/* The sum of admitted request bodies not yet answered, over all
 * connections; a body beyond it is refused with 503 until others end. */
#define VOLD_BODY_BUDGET ((uint64_t)256 << 20)
/* Bytes of request line and headers the filter looks at before it gives
 * up looking for their end; libevent's own limit (16 KiB) is lower and
 * answers first. */
#define VOLD_HEAD_MAX (32u * 1024)

enum vold_method {
	VOLD_M_OTHER = 0, /* a method we do not route: no body expected */
	VOLD_M_GET,
	VOLD_M_POST,
	VOLD_M_PUT,
	VOLD_M_HEAD,
	VOLD_M_BODY, /* another method libevent reads a body for */
};

/* A request head. Pointers point into the buffer given to
 * vold_head_parse(); strings there are not NUL-terminated. */
struct vold_head {
	enum vold_method method;
	const char *target; /* request target (path and query) */
	size_t target_len;
	const char *auth; /* value of Authorization, or NULL */
	size_t auth_len;
	int64_t content_length; /* -1: none given */
	int n_content_length;	/* how many Content-Length headers */
	int chunked;		/* a Transfer-Encoding header was given */
};

/*
 * Find the end of the request head in @buf (@len bytes; lines end in LF or
 * CRLF, the head in an empty line) and parse it into @h.
 * @return the length of the head including its empty line, 0 if the head
 * is not complete yet, -EINVAL if it is malformed (bad request line, a
 * Content-Length that is not a plain decimal number). Never reads beyond
 * @len.
 */
int vold_head_parse(const char *buf, size_t len, struct vold_head *h);

/*
 * Where the head in @buf (@len bytes) may end: the offset just past the
 * first empty line ("\n\n" or "\n\r\n") that ends after @from (pass the
 * previous @len, or the previous hit, so each byte is looked at about once
 * however slowly the head arrives), or 0 if there is none yet. A hit is a
 * candidate only: blank lines before the request line look the same, so the
 * caller parses with vold_head_parse() and, if that says incomplete, searches
 * on from the hit.
 */
size_t vold_head_end(const char *buf, size_t len, size_t from);

/*
 * The largest body a request of @method on route @p may carry (bytes);
 * 0 for every route that takes no body. HEAD requests never have one.
 */
uint64_t vold_body_limit(enum vold_method method, const struct proto_path *p);

#endif /* CAIRN_VOLD_ADMIT_H */
