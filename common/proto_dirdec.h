/*
 * proto_dirdec.h - the two decoders of directory listings, inside
 * libcairncommon. proto_dir_decode() and proto_dir_page_decode()
 * (proto.h) are the interface; these are for them and for the tests
 * that hold the two to the same answers.
 */
#ifndef CAIRN_PROTO_DIRDEC_H
#define CAIRN_PROTO_DIRDEC_H

#include <stdbool.h>
#include <stddef.h>

struct proto_dir;

/*
 * Decode a listing of at most @max entries from the @len bytes at @buf
 * into *d (released by proto_dir_release(); zeroed on failure). @next
 * (PROTO_CURSOR_MAX bytes) receives the "next" cursor, "" for none; NULL
 * ignores a "next" member (version 1). @return 0, -EINVAL (not a
 * listing: bad JSON, a duplicate key or name, a bad attribute, name or
 * cursor), -E2BIG (more than @max entries) or -ENOMEM.
 *
 * proto_dir_scan() reads the text in one pass (proto_dirdec.c);
 * proto_dir_decode_jansson() builds a jansson tree first (proto.c), the
 * reference the first must agree with, result for result.
 */
int proto_dir_scan(const char *buf, size_t len, size_t max, struct proto_dir *d,
		   char *next);
/* As proto_dir_scan(), but @names false leaves the names unchecked for
 * duplicates (proto_dir_page_decode_unchecked()). */
int proto_dir_scan_ex(const char *buf, size_t len, size_t max,
		      struct proto_dir *d, char *next, bool names);
int proto_dir_decode_jansson(const char *buf, size_t len, size_t max,
			     struct proto_dir *d, char *next);

#endif
