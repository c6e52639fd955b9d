/*
 * fid.h - file identifiers, shared by the server, the cache manager and the
 * admin tools.
 *
 * A FID names an object for life: a 32-bit volume id and a 128-bit object
 * id. Object ids may be chosen by whoever creates the object (a client
 * creating a file offline picks one at random), so they are random, never
 * counters. Text form, used on the wire and in logs:
 *
 *     vvvvvvvv.oooooooooooooooooooooooooooooooo   (8 + 1 + 32 lower-case hex)
 */
#ifndef CAIRN_FID_H
#define CAIRN_FID_H

#include <stdbool.h>
#include <stdint.h>

#define FID_OID_LEN 16
#define FID_STRLEN 42 /* 8 + 1 + 32 + NUL */

struct fid {
	uint32_t vol;
	uint8_t oid[FID_OID_LEN];
};

/* Write the text form of @f into @buf (at least FID_STRLEN bytes); returns
 * @buf so it can be used inside a printf argument list. */
char *fid_fmt(const struct fid *f, char *buf);

/* Parse the text form; exactly 41 characters, lower- or upper-case hex.
 * @return 0, or -EINVAL for anything else (the input is never trusted). */
int fid_parse(const char *s, struct fid *f);

/* Same as fid_parse() for a string of @len bytes that need not end in NUL. */
int fid_parse_n(const char *s, size_t len, struct fid *f);

/* A fresh random object id in volume @vol. @return 0 or -errno. */
int fid_random(uint32_t vol, struct fid *f);

bool fid_eq(const struct fid *a, const struct fid *b);
/* A 64-bit hash of all 20 bytes of @f, every bit mixed (object ids are
 * random, but a test's or a client's may be a counter), for in-memory
 * tables keyed by FID: take its low bits, its high bits or all of it. */
uint64_t fid_hash(const struct fid *f);
bool fid_is_null(const struct fid *f);

#endif /* CAIRN_FID_H */
