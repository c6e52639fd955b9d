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

/*
 * Body limits per route. A getattr body is {"fids": [...]} with at most
 * PROTO_GETATTR_MAX FIDs of FID_STRLEN-1 characters, each quoted and
 * followed by ", ": 45 bytes a FID, 46,080 in all, plus 4 KiB for the key
 * and whatever white space a client adds.
 */
#define VOLD_GETATTR_BODY_MAX                                                  \
	((uint64_t)PROTO_GETATTR_MAX * (FID_STRLEN + 3) + 4096)
/*
 * One op: every op but `store` is under 128 KiB (the largest, setxattr,
 * carries PROTO_XATTR_VALUE_MAX bytes as base64, 87,384 characters, and
 * a symlink target of PROTO_PATH_MAX bytes is at most 6 times that as JSON
 * \u escapes). A `store` lists its chunk numbers; cairnd merges at most
 * 2^20 chunks into one store, each a number of at most 19 digits plus a
 * separator: 20 bytes a chunk.
 */
#define VOLD_OP_SMALL_MAX     (128u * 1024)
#define VOLD_STORE_CHUNKS_MAX (1u << 20)
#define VOLD_OP_BODY_MAX                                                       \
	(VOLD_OP_SMALL_MAX + (uint64_t)VOLD_STORE_CHUNKS_MAX * 20)
/* A staged chunk: at most its chunk size (?size=CS); the slack only lets
 * the request reach the handler, which names the real limit in its 413. */
#define VOLD_STAGE_SLACK 4096u
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
