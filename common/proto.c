/*
 * proto.c - encoders and decoders of the cairn wire protocol, version 3
 * (doc/protocol.md is normative, proto.h is the interface).
 *
 * It turns structs into JSON text and JSON text into structs, with jansson,
 * and builds and parses request paths. It does no I/O and keeps no state.
 * Every decoder treats its input as hostile: sizes, list lengths, integer
 * ranges, names and encodings are checked here so that vol/ and cm/ can
 * trust a struct that a decoder returned with 0.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/crc32c.h"
#include "common/proto.h"
#include "common/proto_dirdec.h"
#include "common/util.h"

/* --- names, types, errors --- */

/*
 * Length of the UTF-8 sequence at @p (at most @n bytes available), or 0 if
 * it is not a valid, shortest-form encoding of a scalar value (no overlongs,
 * no surrogates, nothing above U+10FFFF).
 */
size_t
proto_utf8_seq(const unsigned char *p, size_t n)
{
	uint32_t cp;
	size_t len, i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0; /* continuation byte, 0xc0/0xc1 overlong, 0xf5.. */
	}
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
		return 0;
	if (cp >= 0xd800 && cp <= 0xdfff)
		return 0;
	if (cp > 0x10ffff)
		return 0;
	return len;
}

static int
utf8_check(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, l;

	while (i < len) {
		if (p[i] == 0)
			return -EINVAL;
		l = proto_utf8_seq(p + i, len - i);
		if (!l)
			return -EINVAL;
		i += l;
	}
	return 0;
}

int
proto_name_check(const char *name, size_t len)
{
	if (!name || len == 0)
		return -EINVAL;
	if (len > PROTO_NAME_MAX)
		return -ENAMETOOLONG;
	if (memchr(name, '/', len))
		return -EINVAL;
	if ((len == 1 && name[0] == '.') ||
	    (len == 2 && name[0] == '.' && name[1] == '.'))
		return -EINVAL;
	return utf8_check(name, len);
}

int
proto_volname_check(const char *name)
{
	size_t i;

	if (!name || !name[0] || name[0] == '.')
		return -EINVAL;
	for (i = 0; name[i]; i++) {
		char c = name[i];

		if (i >= 64)
			return -EINVAL;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return -EINVAL;
	}
	return 0;
}

static const char *const type_names[] = {
	[PROTO_T_FILE] = "file",
	[PROTO_T_DIR] = "dir",
	[PROTO_T_SYMLINK] = "symlink",
	[PROTO_T_FIFO] = "fifo",
	[PROTO_T_SOCK] = "socket",
	[PROTO_T_CHR] = "chr",
	[PROTO_T_BLK] = "blk",
	[PROTO_T_MOUNT] = "mount",
};

const char *
proto_type_name(enum proto_type t)
{
	if (t <= PROTO_T_NONE || t > PROTO_T_MAX)
		return "none";
	return type_names[t];
}

enum proto_type
proto_type_parse(const char *s)
{
	int t;

	for (t = PROTO_T_FILE; s && t <= PROTO_T_MAX; t++)
		if (!strcmp(s, type_names[t]))
			return (enum proto_type)t;
	return PROTO_T_NONE;
}

bool
proto_type_creatable(enum proto_type t)
{
	return t == PROTO_T_FILE || t == PROTO_T_FIFO || t == PROTO_T_SOCK ||
	       t == PROTO_T_CHR || t == PROTO_T_BLK;
}

bool
proto_type_has_rdev(enum proto_type t)
{
	return t == PROTO_T_CHR || t == PROTO_T_BLK;
}

int
proto_mount_target_check(const char *t, size_t len)
{
	char part[65];
	const char *colon;
	size_t alen;

	if (!t || len == 0 || strlen(t) != len)
		return -EINVAL;
	if (len > PROTO_MOUNT_TARGET_MAX)
		return -ENAMETOOLONG;
	colon = memchr(t, ':', len);
	if (!colon)
		return len < sizeof(part) ? proto_volname_check(t) : -EINVAL;
	alen = (size_t)(colon - t);
	if (alen == 0 || alen >= sizeof(part) || len - alen - 1 >= sizeof(part))
		return -EINVAL;
	memcpy(part, t, alen);
	part[alen] = 0;
	if (proto_volname_check(part))
		return -EINVAL;
	/* The volume part: a second ':' fails its check. */
	return proto_volname_check(colon + 1);
}

void
proto_attr_compat(struct proto_attr *a, int version)
{
	if (a->type == PROTO_T_MOUNT) {
		if (version >= PROTO_V_MOUNT)
			return;
		/* As a symlink to "#" + the target. */
		a->type = PROTO_T_SYMLINK;
		a->size++;
		return;
	}
	if (version >= PROTO_V_SPECIAL || a->type <= PROTO_T_MAX_V2)
		return;
	a->type = PROTO_T_FILE;
	a->size = 0;
	a->rdev = 0;
}

char *
proto_link_compat(enum proto_type type, const char *target, int version)
{
	size_t n;
	char *s;

	errno = 0;
	if (type != PROTO_T_MOUNT || version >= PROTO_V_MOUNT || !target)
		return NULL;
	n = strlen(target);
	s = malloc(n + 2);
	if (!s) {
		errno = ENOMEM;
		return NULL;
	}
	s[0] = PROTO_MOUNT_COMPAT_PREFIX;
	memcpy(s + 1, target, n + 1);
	return s;
}

int
proto_version_parse(const char *s)
{
	int v = 0;

	if (!s || !*s)
		return 2;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > 100)
			return 2;
		v = v * 10 + (*s - '0');
	}
	return v >= 1 && v <= 1000 ? v : 2;
}

static const char *const op_names[] = {
	[PROTO_OP_CREATE] = "create",
	[PROTO_OP_MKDIR] = "mkdir",
	[PROTO_OP_SYMLINK] = "symlink",
	[PROTO_OP_LINK] = "link",
	[PROTO_OP_UNLINK] = "unlink",
	[PROTO_OP_RMDIR] = "rmdir",
	[PROTO_OP_RENAME] = "rename",
	[PROTO_OP_SETATTR] = "setattr",
	[PROTO_OP_SETXATTR] = "setxattr",
	[PROTO_OP_REMOVEXATTR] = "removexattr",
	[PROTO_OP_STORE] = "store",
	[PROTO_OP_MKMOUNT] = "mkmount",
};

const char *
proto_op_name(enum proto_op_kind k)
{
	if (k <= PROTO_OP_NONE || k > PROTO_OP_MAX)
		return "none";
	return op_names[k];
}

enum proto_op_kind
proto_op_parse(const char *s)
{
	int k;

	for (k = PROTO_OP_CREATE; s && k <= PROTO_OP_MAX; k++)
		if (!strcmp(s, op_names[k]))
			return (enum proto_op_kind)k;
	return PROTO_OP_NONE;
}

static const char *const ev_names[] = {
	[PROTO_EV_DATA] = "data", [PROTO_EV_ATTR] = "attr",
	[PROTO_EV_DIR] = "dir",	  [PROTO_EV_GONE] = "gone",
	[PROTO_EV_PING] = "ping", [PROTO_EV_RESET] = "reset",
};

const char *
proto_ev_name(enum proto_ev_kind k)
{
	if (k < PROTO_EV_DATA || k > PROTO_EV_RESET)
		return "none";
	return ev_names[k];
}

static enum proto_ev_kind
ev_parse(const char *s)
{
	int k;

	for (k = PROTO_EV_DATA; k <= PROTO_EV_RESET; k++)
		if (!strcmp(s, ev_names[k]))
			return (enum proto_ev_kind)k;
	return 0;
}

/* The one errno <-> status table of doc/protocol.md. The first errno of each
 * status is what proto_status_to_errno() gives back. */
static const struct {
	int err;
	int status;
} status_table[] = {
	{EINVAL, 400},	{ENAMETOOLONG, 400}, {EISDIR, 400},    {ENOTDIR, 400},
	{ENOTSUP, 400}, {EACCES, 403},	     {EPERM, 403},     {EROFS, 403},
	{ENOENT, 404},	{EEXIST, 409},	     {ENOTEMPTY, 409}, {EXDEV, 409},
	{EBUSY, 409},	{ESTALE, 410},	     {ECANCELED, 412}, {E2BIG, 413},
	{EFBIG, 413},	{ERANGE, 416},	     {ENOSPC, 507},    {EDQUOT, 507},
};

int
proto_errno_to_status(int err)
{
	size_t i;

	if (err < 0)
		err = -err;
	for (i = 0; i < sizeof(status_table) / sizeof(status_table[0]); i++)
		if (status_table[i].err == err)
			return status_table[i].status;
	return 500;
}

int
proto_status_to_errno(int status)
{
	size_t i;

	if (status == 401)
		return EACCES;
	if (status == 431)
		return E2BIG;
	/* A batch entry that was not applied (doc/protocol.md). */
	if (status == 424)
		return EAGAIN;
	for (i = 0; i < sizeof(status_table) / sizeof(status_table[0]); i++)
		if (status_table[i].status == status)
			return status_table[i].err;
	return EIO;
}

#define E(x)                                                                   \
	{                                                                      \
		x, #x                                                          \
	}
static const struct {
	int err;
	const char *name;
} errno_names[] = {
	E(EPERM),	 E(ENOENT),	 E(ESRCH),	  E(EINTR),
	E(EIO),		 E(ENXIO),	 E(E2BIG),	  E(EBADF),
	E(EAGAIN),	 E(ENOMEM),	 E(EACCES),	  E(EFAULT),
	E(EBUSY),	 E(EEXIST),	 E(EXDEV),	  E(ENODEV),
	E(ENOTDIR),	 E(EISDIR),	 E(EINVAL),	  E(ENFILE),
	E(EMFILE),	 E(ETXTBSY),	 E(EFBIG),	  E(ENOSPC),
	E(ESPIPE),	 E(EROFS),	 E(EMLINK),	  E(EPIPE),
	E(ERANGE),	 E(EDEADLK),	 E(ENAMETOOLONG), E(ENOLCK),
	E(ENOSYS),	 E(ENOTEMPTY),	 E(ELOOP),	  E(ENODATA),
	E(EPROTO),	 E(EBADMSG),	 E(EOVERFLOW),	  E(EILSEQ),
	E(ENOTSUP),	 E(ENOTCONN),	 E(ESHUTDOWN),	  E(ETIMEDOUT),
	E(ECONNREFUSED), E(ECONNRESET),	 E(EHOSTUNREACH), E(ENETUNREACH),
	E(EALREADY),	 E(EINPROGRESS), E(ESTALE),	  E(EDQUOT),
	E(ECANCELED),
};
#undef E

const char *
proto_errno_name(int err)
{
	size_t i;

	if (err < 0)
		err = -err;
	for (i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++)
		if (errno_names[i].err == err)
			return errno_names[i].name;
	return "EIO";
}

int
proto_errno_parse(const char *name)
{
	size_t i;

	if (!name)
		return 0;
	/* EOPNOTSUPP is ENOTSUP on Linux; accept the other spelling too. */
	if (!strcmp(name, "EOPNOTSUPP"))
		return ENOTSUP;
	for (i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++)
		if (!strcmp(errno_names[i].name, name))
			return errno_names[i].err;
	return 0;
}

/* --- base64 (RFC 4648, standard alphabet, padded, strict) --- */

static const char b64_chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Encode @len bytes into @out, which has room for (len + 2) / 3 * 4
 * characters; no NUL is written. */
static void
b64_encode_to(char *out, const void *in, size_t len)
{
	const unsigned char *p = in;
	size_t i, o = 0;
	uint32_t v;

	for (i = 0; i + 2 < len; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = b64_chars[v >> 18 & 63];
		out[o++] = b64_chars[v >> 12 & 63];
		out[o++] = b64_chars[v >> 6 & 63];
		out[o++] = b64_chars[v & 63];
	}
	if (len - i == 1) {
		v = (uint32_t)p[i] << 16;
		out[o++] = b64_chars[v >> 18 & 63];
		out[o++] = b64_chars[v >> 12 & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (len - i == 2) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		out[o++] = b64_chars[v >> 18 & 63];
		out[o++] = b64_chars[v >> 12 & 63];
		out[o++] = b64_chars[v >> 6 & 63];
		out[o++] = '=';
	}
}

/* Encode @len bytes; returns a heap string or NULL (errno ENOMEM). */
static char *
b64_encode(const void *in, size_t len)
{
	char *out;

	if (len > (SIZE_MAX - 1) / 4 * 3 - 3) {
		errno = ENOMEM;
		return NULL;
	}
	out = malloc((len + 2) / 3 * 4 + 1);
	if (!out)
		return NULL;
	b64_encode_to(out, in, len);
	out[(len + 2) / 3 * 4] = 0;
	return out;
}

static int
b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Decode @len characters of padded base64 into a heap buffer of at most
 * @max bytes. Refuses whitespace, missing or misplaced padding and nonzero
 * bits after the last byte, so every value has exactly one encoding.
 * @return 0 with *out (never NULL) and *outlen, -EINVAL, -E2BIG or -ENOMEM.
 */
static int
b64_decode(const char *in, size_t len, size_t max, void **out, size_t *outlen)
{
	const unsigned char *p = (const unsigned char *)in;
	unsigned char *buf;
	size_t i, o = 0, pad = 0, n;
	int v[4], k;

	if (len % 4)
		return -EINVAL;
	if (len >= 1 && p[len - 1] == '=')
		pad++;
	if (len >= 2 && p[len - 2] == '=')
		pad++;
	n = len / 4 * 3 - pad;
	if (n > max)
		return -E2BIG;
	buf = malloc(n ? n : 1);
	if (!buf)
		return -ENOMEM;
	for (i = 0; i < len; i += 4) {
		for (k = 0; k < 4; k++) {
			if (i + 4 == len && k >= 4 - (int)pad)
				v[k] = 0;
			else if ((v[k] = b64_val(p[i + k])) < 0)
				goto bad;
		}
		buf[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		if (i + 4 < len || pad < 2)
			buf[o++] =
				(unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
		else if (v[1] & 15)
			goto bad;
		if (i + 4 < len || pad < 1)
			buf[o++] = (unsigned char)((v[2] & 3) << 6 | v[3]);
		else if (pad == 1 && (v[2] & 3))
			goto bad;
	}
	*out = buf;
	*outlen = o;
	return 0;
bad:
	free(buf);
	return -EINVAL;
}

/* --- decoding helpers --- */

/* Parse a JSON body: an object, no duplicate keys, nothing after it. */
static json_t *
load(const char *buf, size_t len)
{
	json_error_t jerr;
	json_t *j;

	if (!buf || len > PROTO_BODY_MAX)
		return NULL;
	j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (j && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* Unsigned integer member @key no larger than @max. A missing member is
 * -ENOENT so callers can tell optional from malformed. */
static int
get_uint(json_t *o, const char *key, uint64_t max, uint64_t *out)
{
	json_t *v = json_object_get(o, key);
	json_int_t i;

	if (!v)
		return -ENOENT;
	if (!json_is_integer(v))
		return -EINVAL;
	i = json_integer_value(v);
	if (i < 0 || (uint64_t)i > max)
		return -EINVAL;
	*out = (uint64_t)i;
	return 0;
}

static int
need_u64(json_t *o, const char *key, uint64_t *out)
{
	return get_uint(o, key, INT64_MAX, out) ? -EINVAL : 0;
}

static int
need_u32(json_t *o, const char *key, uint64_t max, uint32_t *out)
{
	uint64_t v;

	if (get_uint(o, key, max, &v))
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static int
need_i64(json_t *o, const char *key, int64_t *out)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v))
		return -EINVAL;
	*out = json_integer_value(v);
	return 0;
}

/* String member: -ENOENT if missing, -EINVAL if not a string. */
static int
get_str(json_t *o, const char *key, const char **s, size_t *len)
{
	json_t *v = json_object_get(o, key);

	if (!v)
		return -ENOENT;
	if (!json_is_string(v))
		return -EINVAL;
	*s = json_string_value(v);
	*len = json_string_length(v);
	return 0;
}

static int
get_fid(json_t *o, const char *key, struct fid *f)
{
	const char *s;
	size_t len;
	int rc;

	rc = get_str(o, key, &s, &len);
	if (rc)
		return rc;
	return fid_parse_n(s, len, f) ? -EINVAL : 0;
}

/* A FID that must be present and not null. */
static int
need_fid(json_t *o, const char *key, struct fid *f)
{
	if (get_fid(o, key, f) || fid_is_null(f))
		return -EINVAL;
	return 0;
}

static int
get_hex16(json_t *o, const char *key, uint8_t out[16])
{
	const char *s;
	size_t len;

	if (get_str(o, key, &s, &len) || len != 32)
		return -EINVAL;
	return util_hex_decode(s, len, out, 16) == 16 ? 0 : -EINVAL;
}

/* A validated path component, copied to the heap. */
static int
get_name(json_t *o, const char *key, char **out)
{
	const char *s;
	size_t len;
	int rc;

	if (get_str(o, key, &s, &len))
		return -EINVAL;
	rc = proto_name_check(s, len);
	if (rc)
		return rc;
	*out = strndup(s, len);
	return *out ? 0 : -ENOMEM;
}

/* The optional "rdev" of an object of type @t: 0 when absent, at most
 * PROTO_RDEV_MAX, and not other than 0 for a type without a device. */
static int
get_rdev(json_t *o, enum proto_type t, uint32_t *rdev)
{
	uint64_t v = 0;
	int rc = get_uint(o, "rdev", PROTO_RDEV_MAX, &v);

	*rdev = 0;
	if (rc == -ENOENT)
		return 0;
	if (rc || (v && !proto_type_has_rdev(t)))
		return -EINVAL;
	*rdev = (uint32_t)v;
	return 0;
}

static int
attr_from_json(json_t *o, struct proto_attr *a)
{
	const char *s;
	size_t len;

	memset(a, 0, sizeof(*a));
	if (!json_is_object(o))
		return -EINVAL;
	if (need_fid(o, "fid", &a->fid))
		return -EINVAL;
	if (get_str(o, "type", &s, &len) || strlen(s) != len)
		return -EINVAL;
	a->type = proto_type_parse(s);
	if (a->type == PROTO_T_NONE)
		return -EINVAL;
	if (need_u32(o, "mode", 07777, &a->mode) ||
	    need_u32(o, "uid", UINT32_MAX, &a->uid) ||
	    need_u32(o, "gid", UINT32_MAX, &a->gid) ||
	    need_u64(o, "size", &a->size) || need_u64(o, "nlink", &a->nlink) ||
	    need_u64(o, "dv", &a->dv) || need_i64(o, "atime", &a->atime_ns) ||
	    need_i64(o, "mtime", &a->mtime_ns) ||
	    need_i64(o, "ctime", &a->ctime_ns))
		return -EINVAL;
	return get_rdev(o, a->type, &a->rdev);
}

/* --- encoding helpers --- */

/*
 * Encoders build a jansson tree; any failure while building sets enc->err
 * (the first one wins) and the final dump turns it into NULL + errno.
 */
struct enc {
	int err; /* positive errno, 0 = fine */
};

static void
enc_fail(struct enc *e, int err)
{
	if (!e->err)
		e->err = err;
}

static void
put(struct enc *e, json_t *o, const char *key, json_t *v)
{
	if (!v) {
		enc_fail(e, ENOMEM);
		return;
	}
	if (json_object_set_new(o, key, v))
		enc_fail(e, ENOMEM);
}

static void
put_u64(struct enc *e, json_t *o, const char *key, uint64_t v)
{
	if (v > INT64_MAX) {
		enc_fail(e, ERANGE);
		return;
	}
	put(e, o, key, json_integer((json_int_t)v));
}

static void
put_i64(struct enc *e, json_t *o, const char *key, int64_t v)
{
	put(e, o, key, json_integer(v));
}

/* A string that must be valid UTF-8 without NUL (jansson checks UTF-8). */
static void
put_str(struct enc *e, json_t *o, const char *key, const char *s)
{
	json_t *v;

	if (!s) {
		enc_fail(e, EINVAL);
		return;
	}
	v = json_string(s);
	if (!v) {
		enc_fail(e, EINVAL);
		return;
	}
	put(e, o, key, v);
}

static void
put_name(struct enc *e, json_t *o, const char *key, const char *s)
{
	if (!s || proto_name_check(s, strlen(s))) {
		enc_fail(e, EINVAL);
		return;
	}
	put_str(e, o, key, s);
}

static void
put_fid(struct enc *e, json_t *o, const char *key, const struct fid *f)
{
	char buf[FID_STRLEN];

	put(e, o, key, json_string(fid_fmt(f, buf)));
}

static void
put_hex16(struct enc *e, json_t *o, const char *key, const uint8_t v[16])
{
	char buf[33];

	util_hex_encode(v, 16, buf);
	put(e, o, key, json_string(buf));
}

static json_t *
attr_to_json(struct enc *e, const struct proto_attr *a)
{
	json_t *o = json_object();

	if (!o) {
		enc_fail(e, ENOMEM);
		return NULL;
	}
	if (a->type <= PROTO_T_NONE || a->type > PROTO_T_MAX ||
	    a->mode > 07777 || (a->rdev && !proto_type_has_rdev(a->type)))
		enc_fail(e, EINVAL);
	put_fid(e, o, "fid", &a->fid);
	put(e, o, "type", json_string(proto_type_name(a->type)));
	put_u64(e, o, "mode", a->mode);
	put_u64(e, o, "uid", a->uid);
	put_u64(e, o, "gid", a->gid);
	put_u64(e, o, "size", a->size);
	put_u64(e, o, "nlink", a->nlink);
	put_u64(e, o, "dv", a->dv);
	put_i64(e, o, "atime", a->atime_ns);
	put_i64(e, o, "mtime", a->mtime_ns);
	put_i64(e, o, "ctime", a->ctime_ns);
	if (a->rdev)
		put_u64(e, o, "rdev", a->rdev);
	return o;
}

static void
append(struct enc *e, json_t *arr, json_t *v)
{
	if (!v) {
		enc_fail(e, ENOMEM);
		return;
	}
	if (json_array_append_new(arr, v))
		enc_fail(e, ENOMEM);
}

/* Serialize @root (consumed) unless building failed. */
static char *
finish(struct enc *e, json_t *root, size_t *lenp)
{
	char *s = NULL;

	if (!root)
		enc_fail(e, ENOMEM);
	if (!e->err) {
		s = json_dumps(root, JSON_COMPACT);
		if (!s)
			enc_fail(e, ENOMEM);
	}
	json_decref(root);
	if (e->err) {
		errno = e->err;
		return NULL;
	}
	if (lenp)
		*lenp = strlen(s);
	return s;
}

/* --- volinfo --- */

char *
proto_volinfo_encode(const struct proto_volinfo *v, size_t *lenp)
{
	struct enc e = {0};
	json_t *o = json_object();

	if (o) {
		if (proto_volname_check(v->name))
			enc_fail(&e, EINVAL);
		put_u64(&e, o, "protocol",
			v->version > 0 ? (uint64_t)v->version : 0);
		put_str(&e, o, "volume", v->name);
		put_u64(&e, o, "id", v->id);
		put_fid(&e, o, "root", &v->root);
		put_u64(&e, o, "event_seq", v->event_seq);
		put_u64(&e, o, "bytes_used", v->bytes_used);
		put_u64(&e, o, "bytes_limit", v->bytes_limit);
		put_u64(&e, o, "files_used", v->files_used);
		put_u64(&e, o, "files_limit", v->files_limit);
		put(&e, o, "readonly", json_boolean(v->readonly));
	}
	return finish(&e, o, lenp);
}

int
proto_volinfo_decode(const char *buf, size_t len, struct proto_volinfo *v)
{
	json_t *o = load(buf, len), *ro;
	const char *s;
	size_t slen;
	uint64_t ver;
	int rc = -EINVAL;

	memset(v, 0, sizeof(*v));
	if (!o)
		return -EINVAL;
	if (get_uint(o, "protocol", INT_MAX, &ver) || ver < 1)
		goto out;
	v->version = (int)ver;
	if (get_str(o, "volume", &s, &slen) || slen >= sizeof(v->name) ||
	    strlen(s) != slen || proto_volname_check(s))
		goto out;
	memcpy(v->name, s, slen + 1);
	ro = json_object_get(o, "readonly");
	if (!json_is_boolean(ro))
		goto out;
	v->readonly = json_is_true(ro);
	if (need_u32(o, "id", UINT32_MAX, &v->id) ||
	    need_fid(o, "root", &v->root) || v->root.vol != v->id ||
	    need_u64(o, "event_seq", &v->event_seq) ||
	    need_u64(o, "bytes_used", &v->bytes_used) ||
	    need_u64(o, "bytes_limit", &v->bytes_limit) ||
	    need_u64(o, "files_used", &v->files_used) ||
	    need_u64(o, "files_limit", &v->files_limit))
		goto out;
	rc = 0;
out:
	json_decref(o);
	if (rc)
		memset(v, 0, sizeof(*v));
	return rc;
}

/* --- getattr --- */

char *
proto_attrs_encode(const struct proto_attr *a, const int *errs, size_t n,
		   size_t *lenp)
{
	struct enc e = {0};
	json_t *o = json_object(), *arr = json_array(), *x;
	size_t i;

	if (!o || !arr) {
		json_decref(arr);
		arr = NULL;
		enc_fail(&e, ENOMEM);
	}
	for (i = 0; arr && i < n && !e.err; i++) {
		if (errs && errs[i]) {
			x = json_object();
			if (x) {
				put_fid(&e, x, "fid", &a[i].fid);
				put(&e, x, "errno",
				    json_string(proto_errno_name(errs[i])));
			}
		} else {
			x = attr_to_json(&e, &a[i]);
		}
		append(&e, arr, x);
	}
	if (o)
		put(&e, o, "attrs", arr);
	return finish(&e, o, lenp);
}

int
proto_attrs_decode(const char *buf, size_t len, struct proto_attr **attrs,
		   int **errs, size_t *np)
{
	json_t *o = load(buf, len), *arr, *x;
	struct proto_attr *a = NULL;
	int *er = NULL, rc = -EINVAL, en;
	const char *s;
	size_t i, n, slen;

	*attrs = NULL;
	*errs = NULL;
	*np = 0;
	if (!o)
		return -EINVAL;
	arr = json_object_get(o, "attrs");
	if (!json_is_array(arr))
		goto out;
	n = json_array_size(arr);
	if (n > PROTO_GETATTR_MAX) {
		rc = -E2BIG;
		goto out;
	}
	a = calloc(n ? n : 1, sizeof(*a));
	er = calloc(n ? n : 1, sizeof(*er));
	if (!a || !er) {
		rc = -ENOMEM;
		goto out;
	}
	json_array_foreach(arr, i, x)
	{
		if (json_is_object(x) && json_object_get(x, "errno")) {
			if (need_fid(x, "fid", &a[i].fid) ||
			    get_str(x, "errno", &s, &slen) || strlen(s) != slen)
				goto out;
			en = proto_errno_parse(s);
			er[i] = en ? en : EIO;
		} else if (attr_from_json(x, &a[i])) {
			goto out;
		}
	}
	*attrs = a;
	*errs = er;
	*np = n;
	a = NULL;
	er = NULL;
	rc = 0;
out:
	free(a);
	free(er);
	json_decref(o);
	return rc;
}

char *
proto_getattr_req_encode(const struct fid *fids, size_t n, size_t *lenp)
{
	struct enc e = {0};
	json_t *o = json_object(), *arr = json_array();
	char buf[FID_STRLEN];
	size_t i;

	if (!arr)
		enc_fail(&e, ENOMEM);
	if (n > PROTO_GETATTR_MAX)
		enc_fail(&e, E2BIG);
	for (i = 0; arr && i < n && !e.err; i++)
		append(&e, arr, json_string(fid_fmt(&fids[i], buf)));
	if (o)
		put(&e, o, "fids", arr);
	else
		json_decref(arr);
	return finish(&e, o, lenp);
}

int
proto_getattr_req_decode(const char *buf, size_t len, struct fid **fids,
			 size_t *np)
{
	json_t *o, *arr, *x;
	struct fid *f = NULL;
	int rc = -EINVAL;
	size_t i, n;

	*fids = NULL;
	*np = 0;
	/* Refuse before parsing: a parse tree costs several times its
	 * text, and no list of PROTO_GETATTR_MAX FIDs is this long. */
	if (len > PROTO_GETATTR_BODY_MAX)
		return -E2BIG;
	o = load(buf, len);
	if (!o)
		return -EINVAL;
	arr = json_object_get(o, "fids");
	if (!json_is_array(arr))
		goto out;
	n = json_array_size(arr);
	if (n > PROTO_GETATTR_MAX) {
		rc = -E2BIG;
		goto out;
	}
	f = calloc(n ? n : 1, sizeof(*f));
	if (!f) {
		rc = -ENOMEM;
		goto out;
	}
	json_array_foreach(arr, i, x)
	{
		if (!json_is_string(x) ||
		    fid_parse_n(json_string_value(x), json_string_length(x),
				&f[i]) ||
		    fid_is_null(&f[i]))
			goto out;
	}
	*fids = f;
	*np = n;
	f = NULL;
	rc = 0;
out:
	free(f);
	json_decref(o);
	return rc;
}

/* --- directories --- */

bool
proto_cursor_ok(const char *s, size_t len)
{
	if (len == 0 || len >= PROTO_CURSOR_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '.' ||
		      s[i] == '_' || s[i] == '-'))
			return false;
	return true;
}

int
proto_cursor_format(char *buf, size_t len, const struct proto_dir_cursor *c)
{
	int n = snprintf(buf, len, "%" PRIu64 ".%" PRIu64 ".%" PRIu64, c->dv,
			 c->bucket, c->index);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : n;
}

char *
proto_dir_encode(const struct proto_dir *d, size_t *lenp)
{
	return proto_dir_page_encode(d, NULL, lenp);
}

/*
 * Listings are written straight into a string, not built as a jansson tree
 * first: a tree of a 4,096-entry page is about 14 objects an entry (some
 * 5 MB), and a whole listing of 100,000 entries was 300 MB of cairn-vold
 * (doc/protocol.md, "Profile"). The output is what json_dumps(JSON_COMPACT)
 * of the tree gave, key for key.
 */
void
proto_sbuf_grow(struct proto_sbuf *b, size_t more)
{
	char *p;
	size_t cap;

	if (b->err || b->len + more + 1 <= b->cap)
		return;
	cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more + 1)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->err = ENOMEM;
		return;
	}
	b->p = p;
	b->cap = cap;
}

static void
sb_put(struct proto_sbuf *b, const char *s, size_t n)
{
	proto_sbuf_grow(b, n);
	if (b->err)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

static void
sb_str(struct proto_sbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

/* A JSON string of @s (valid UTF-8, checked by the caller), escaped as
 * jansson escapes it. */
static void
sb_jstr_n(struct proto_sbuf *b, const char *s, size_t n)
{
	const char *run = s, *end = s + n;

	sb_put(b, "\"", 1);
	for (; s < end; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[8];

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		sb_put(b, run, (size_t)(s - run));
		run = s + 1;
		switch (c) {
		case '"':
			sb_put(b, "\\\"", 2);
			break;
		case '\\':
			sb_put(b, "\\\\", 2);
			break;
		case '\b':
			sb_put(b, "\\b", 2);
			break;
		case '\f':
			sb_put(b, "\\f", 2);
			break;
		case '\n':
			sb_put(b, "\\n", 2);
			break;
		case '\r':
			sb_put(b, "\\r", 2);
			break;
		case '\t':
			sb_put(b, "\\t", 2);
			break;
		default:
			snprintf(esc, sizeof(esc), "\\u%04X", c);
			sb_put(b, esc, 6);
		}
	}
	sb_put(b, run, (size_t)(s - run));
	sb_put(b, "\"", 1);
}

static void
sb_jstr(struct proto_sbuf *b, const char *s)
{
	sb_jstr_n(b, s, strlen(s));
}

/* Append @lit (a string literal) at @q. */
#define SB_LIT(q, lit) (memcpy((q), (lit), sizeof(lit) - 1), (q) + sizeof(lit) - 1)

/* "00" to "99": two digits a division (a listing's attributes are
 * mostly 19-digit times; one digit a division was a fifth of
 * cairn-vold's instructions in a listing, session 14). */
static const char sb_pairs[201] =
	"00010203040506070809101112131415161718192021222324252627282930313233"
	"34353637383940414243444546474849505152535455565758596061626364656667"
	"6869707172737475767778798081828384858687888990919293949596979899";

/* Write @v in decimal at @q; @return the end. */
static char *
sb_u64(char *q, uint64_t v)
{
	static const uint64_t p10[20] = {
		1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull,
		10000000ull, 100000000ull, 1000000000ull, 10000000000ull,
		100000000000ull, 1000000000000ull, 10000000000000ull,
		100000000000000ull, 1000000000000000ull,
		10000000000000000ull, 100000000000000000ull,
		1000000000000000000ull, 10000000000000000000ull};
	unsigned t, len;
	char *p;

	if (v < 10) {
		*q = (char)('0' + v);
		return q + 1;
	}
	/* Its digits from its bits (log10(2) ~ 1233 / 4096), then written
	 * from the end in place. */
	t = (unsigned)((64 - __builtin_clzll(v)) * 1233) >> 12;
	len = t + 1 - (v < p10[t]);
	p = q + len;
	while (v >= 100) {
		unsigned r = (unsigned)(v % 100);

		v /= 100;
		p -= 2;
		memcpy(p, sb_pairs + 2 * r, 2);
	}
	if (v >= 10)
		memcpy(p - 2, sb_pairs + 2 * v, 2);
	else
		p[-1] = (char)('0' + v);
	return q + len;
}

static char *
sb_i64(char *q, int64_t v)
{
	if (v >= 0)
		return sb_u64(q, (uint64_t)v);
	*q++ = '-';
	return sb_u64(q, 0 - (uint64_t)v);
}

/* The longest attribute object sb_attr() writes: the keys and
 * punctuation (< 160 bytes), the FID (41), the type name (< 16), 3
 * numbers of 32 bits (10 digits each), 3 of 63 bits (19) and 3 signed
 * 64-bit ones (20), rdev (10). */
#define SB_ATTR_MAX 384

/* The attributes as one JSON object, written straight into the buffer:
 * vsnprintf was a third of cairn-vold's CPU in a listing (doc/protocol.md,
 * "Listing pages, session 10"). Same bytes as before. */
static void
sb_attr(struct proto_sbuf *b, const struct proto_attr *a)
{
	const char *tn;
	size_t tl;
	char *q;

	bool bad = a->type <= PROTO_T_NONE || a->type > PROTO_T_MAX ||
		   a->mode > 07777 ||
		   (a->rdev && !proto_type_has_rdev(a->type));

	if (bad || a->size > INT64_MAX || a->nlink > INT64_MAX ||
	    a->dv > INT64_MAX) {
		if (!b->err)
			b->err = bad ? EINVAL : ERANGE;
		return;
	}
	proto_sbuf_grow(b, SB_ATTR_MAX);
	if (b->err)
		return;
	tn = proto_type_name(a->type);
	tl = strlen(tn);
	q = b->p + b->len;
	q = SB_LIT(q, "{\"fid\":\"");
	fid_fmt(&a->fid, q);
	q += FID_STRLEN - 1;
	q = SB_LIT(q, "\",\"type\":\"");
	memcpy(q, tn, tl);
	q += tl;
	q = SB_LIT(q, "\",\"mode\":");
	q = sb_u64(q, a->mode);
	q = SB_LIT(q, ",\"uid\":");
	q = sb_u64(q, a->uid);
	q = SB_LIT(q, ",\"gid\":");
	q = sb_u64(q, a->gid);
	q = SB_LIT(q, ",\"size\":");
	q = sb_u64(q, a->size);
	q = SB_LIT(q, ",\"nlink\":");
	q = sb_u64(q, a->nlink);
	q = SB_LIT(q, ",\"dv\":");
	q = sb_u64(q, a->dv);
	q = SB_LIT(q, ",\"atime\":");
	q = sb_i64(q, a->atime_ns);
	q = SB_LIT(q, ",\"mtime\":");
	q = sb_i64(q, a->mtime_ns);
	q = SB_LIT(q, ",\"ctime\":");
	q = sb_i64(q, a->ctime_ns);
	/* After ctime, as attr_to_json() adds it: the two encoders agree
	 * byte for byte. */
	if (a->rdev) {
		q = SB_LIT(q, ",\"rdev\":");
		q = sb_u64(q, a->rdev);
	}
	*q++ = '}';
	*q = 0;
	b->len = (size_t)(q - b->p);
}

void
proto_dir_enc_begin(struct proto_sbuf *b, const struct proto_attr *dir,
		    const char *next)
{
	if (next && *next && !proto_cursor_ok(next, strlen(next)) && !b->err)
		b->err = EINVAL;
	sb_put(b, "{", 1);
	if (next && *next) {
		sb_str(b, "\"next\":");
		sb_jstr(b, next);
		sb_put(b, ",", 1);
	}
	sb_str(b, "\"dir\":");
	sb_attr(b, dir);
	sb_str(b, ",\"entries\":[");
	b->nents = 0;
}

void
proto_dir_enc_ents(struct proto_sbuf *b, const struct proto_dirent *e, size_t n)
{
	for (size_t i = 0; i < n && !b->err; i++)
		proto_dir_enc_ent(b, e[i].name,
				  e[i].name ? strlen(e[i].name) : 0, &e[i].attr);
}

void
proto_dir_enc_ent(struct proto_sbuf *b, const char *name, size_t len,
		  const struct proto_attr *a)
{
	if (b->err)
		return;
	if (!name || proto_name_check(name, len)) {
		b->err = EINVAL;
		return;
	}
	sb_str(b, b->nents++ ? ",{\"name\":" : "{\"name\":");
	sb_jstr_n(b, name, len);
	sb_str(b, ",\"attr\":");
	sb_attr(b, a);
	sb_put(b, "}", 1);
}

void
proto_dir_enc_reserve(struct proto_sbuf *b)
{
	proto_sbuf_grow(b, PROTO_DIR_HEAD_MAX);
	if (b->err)
		return;
	memset(b->p, ' ', PROTO_DIR_HEAD_MAX);
	b->len = PROTO_DIR_HEAD_MAX;
	b->p[b->len] = 0;
	b->nents = 0;
	b->reserved = true;
}

char *
proto_dir_enc_page_end(struct proto_sbuf *b, const struct proto_attr *dir,
		       const char *next, size_t *lenp)
{
	struct proto_sbuf h = {0};
	size_t body;

	if (!b->p && !b->err)
		proto_dir_enc_reserve(b); /* no entry came */
	proto_dir_enc_begin(&h, dir, next);
	/* Entries written without the reserve would be overwritten. */
	if (!h.err && (!b->reserved || b->len < PROTO_DIR_HEAD_MAX ||
		       h.len > PROTO_DIR_HEAD_MAX))
		h.err = EINVAL;
	if (h.err && !b->err)
		b->err = h.err;
	if (!b->err) {
		/* The head where the reserve was, the entries moved up to
		 * follow it: no second buffer of the page's size. */
		body = b->len - PROTO_DIR_HEAD_MAX;
		memmove(b->p + h.len, b->p + PROTO_DIR_HEAD_MAX, body);
		memcpy(b->p, h.p, h.len);
		b->len = h.len + body;
		b->p[b->len] = 0;
	}
	proto_sbuf_release(&h);
	return proto_dir_enc_end(b, lenp);
}

void
proto_dir_enc_append(struct proto_sbuf *b, const struct proto_sbuf *ents)
{
	if (ents->err && !b->err)
		b->err = ents->err;
	if (b->err || !ents->nents)
		return;
	if (b->nents)
		sb_put(b, ",", 1);
	sb_put(b, ents->p, ents->len);
	b->nents += ents->nents;
}

char *
proto_dir_enc_end(struct proto_sbuf *b, size_t *lenp)
{
	char *s;

	sb_str(b, "]}");
	if (b->err) {
		errno = b->err;
		proto_sbuf_release(b);
		return NULL;
	}
	s = b->p;
	if (lenp)
		*lenp = b->len;
	memset(b, 0, sizeof(*b));
	return s;
}

void
proto_sbuf_release(struct proto_sbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

char *
proto_dir_page_encode(const struct proto_dir *d, const char *next, size_t *lenp)
{
	struct proto_sbuf b = {0};

	proto_dir_enc_begin(&b, &d->dir, next);
	proto_dir_enc_ents(&b, d->ents, d->n);
	return proto_dir_enc_end(&b, lenp);
}

/* A name to sort, with its first 8 bytes as a big-endian number
 * (zero-padded: names hold no NUL), so most comparisons are one integer
 * compare and the sort moves 16 bytes, not a whole entry (the duplicate
 * check of each page was 6 % of a cold listing's CPU). */
struct name_key {
	uint64_t key;
	const char *name;
};

static int
cmp_name_key(const void *a, const void *b)
{
	const struct name_key *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return strcmp(x->name, y->name);
}

void
proto_dir_release(struct proto_dir *d)
{
	size_t i;

	if (!d)
		return;
	for (i = 0; i < d->n; i++)
		free(d->ents[i].name);
	free(d->ents);
	memset(d, 0, sizeof(*d));
}

/* A name listed twice would make two caches disagree on what it means.
 * @return 0, -EINVAL (a duplicate) or -ENOMEM. */
static int
dir_names_unique(const struct proto_dir *d)
{
	struct name_key *sorted;
	size_t i;

	if (d->n < 2)
		return 0;
	sorted = malloc(d->n * sizeof(*sorted));
	if (!sorted)
		return -ENOMEM;
	for (i = 0; i < d->n; i++) {
		const unsigned char *n = (const unsigned char *)d->ents[i].name;
		uint64_t k = 0;
		int j;

		for (j = 0; j < 8 && n[j]; j++)
			k |= (uint64_t)n[j] << (56 - 8 * j);
		sorted[i].key = k;
		sorted[i].name = d->ents[i].name;
	}
	qsort(sorted, d->n, sizeof(*sorted), cmp_name_key);
	for (i = 1; i < d->n; i++)
		if (sorted[i - 1].key == sorted[i].key &&
		    !strcmp(sorted[i - 1].name, sorted[i].name))
			break;
	free(sorted);
	return i < d->n ? -EINVAL : 0;
}

/* The jansson decoder of listings, kept as the reference of
 * proto_dir_scan() (proto_dirdec.h): at most @max entries; @next NULL
 * means a "next" member is ignored (version 1 decoding). */
int
proto_dir_decode_jansson(const char *buf, size_t len, size_t max,
			 struct proto_dir *d, char *next)
{
	json_t *o = load(buf, len), *arr, *x, *nx;
	int rc = -EINVAL;
	size_t i, n;

	memset(d, 0, sizeof(*d));
	if (next)
		next[0] = 0;
	if (!o)
		return -EINVAL;
	if (attr_from_json(json_object_get(o, "dir"), &d->dir) ||
	    d->dir.type != PROTO_T_DIR)
		goto out;
	nx = next ? json_object_get(o, "next") : NULL;
	if (nx) {
		if (!json_is_string(nx) ||
		    !proto_cursor_ok(json_string_value(nx), json_string_length(nx)))
			goto out;
		memcpy(next, json_string_value(nx), json_string_length(nx) + 1);
	}
	arr = json_object_get(o, "entries");
	if (!json_is_array(arr))
		goto out;
	n = json_array_size(arr);
	if (n > max) {
		rc = -E2BIG;
		goto out;
	}
	d->ents = calloc(n ? n : 1, sizeof(*d->ents));
	if (!d->ents) {
		rc = -ENOMEM;
		goto out;
	}
	json_array_foreach(arr, i, x)
	{
		if (!json_is_object(x))
			goto out;
		rc = get_name(x, "name", &d->ents[i].name);
		if (rc) {
			if (rc == -ENAMETOOLONG)
				rc = -EINVAL;
			goto out;
		}
		d->n = i + 1;
		rc = -EINVAL;
		if (attr_from_json(json_object_get(x, "attr"),
				   &d->ents[i].attr))
			goto out;
	}
	rc = dir_names_unique(d);
out:
	json_decref(o);
	if (rc) {
		proto_dir_release(d);
		if (next)
			next[0] = 0;
	}
	return rc;
}

int
proto_dir_decode(const char *buf, size_t len, struct proto_dir *d)
{
	return proto_dir_scan(buf, len, PROTO_DIR_MAX, d, NULL);
}

static int
page_decode(const char *buf, size_t len, bool allow_whole,
	    struct proto_dir *d, char *next, bool names)
{
	int rc;

	if (proto_dirb_is(buf, len)) {
		/* A binary page (protocol 8) is never a whole listing. */
		rc = proto_dirb_decode(buf, len, PROTO_DIR_PAGE_MAX, d, next);
		if (!rc && names && (rc = dir_names_unique(d)) != 0) {
			proto_dir_release(d);
			next[0] = 0;
		}
		return rc;
	}
	rc = proto_dir_scan_ex(buf, len,
				   allow_whole ? PROTO_DIR_MAX
					       : PROTO_DIR_PAGE_MAX,
				   d, next, names);

	/* Only a last page (no "next") may be a whole version 1 listing. */
	if (!rc && next[0] && d->n > PROTO_DIR_PAGE_MAX) {
		proto_dir_release(d);
		next[0] = 0;
		rc = -E2BIG;
	}
	return rc;
}

int
proto_dir_page_decode(const char *buf, size_t len, bool allow_whole,
		      struct proto_dir *d, char *next)
{
	return page_decode(buf, len, allow_whole, d, next, true);
}

int
proto_dir_page_decode_unchecked(const char *buf, size_t len,
				bool allow_whole, struct proto_dir *d,
				char *next)
{
	return page_decode(buf, len, allow_whole, d, next, false);
}

int
proto_dir_check_names(const struct proto_dir *d)
{
	return dir_names_unique(d);
}

int
proto_dir_append(struct proto_dir *acc, struct proto_dir *page)
{
	struct proto_dirent *ne;
	int rc;

	if (!fid_eq(&acc->dir.fid, &page->dir.fid) ||
	    acc->dir.dv != page->dir.dv) {
		rc = -EINVAL;
		goto out;
	}
	if (page->n > PROTO_DIR_MAX - acc->n) {
		rc = -E2BIG;
		goto out;
	}
	if (!page->n) {
		rc = 0;
		goto out;
	}
	ne = realloc(acc->ents, (acc->n + page->n) * sizeof(*ne));
	if (!ne) {
		rc = -ENOMEM;
		goto out;
	}
	acc->ents = ne;
	memcpy(acc->ents + acc->n, page->ents, page->n * sizeof(*ne));
	acc->n += page->n;
	/* The names now belong to @acc. */
	free(page->ents);
	memset(page, 0, sizeof(*page));
	return 0;
out:
	proto_dir_release(page);
	return rc;
}

/* --- symlinks --- */

char *
proto_link_encode(const char *target, size_t *lenp)
{
	struct enc e = {0};
	json_t *o = json_object();

	if (!target || !target[0] || strlen(target) >= PROTO_PATH_MAX)
		enc_fail(&e, EINVAL);
	if (o)
		put_str(&e, o, "target", target);
	return finish(&e, o, lenp);
}

/* A symlink target: 1..PROTO_PATH_MAX-1 bytes (as Linux), no NUL. */
static int
get_target(json_t *o, const char *key, char **target)
{
	const char *s;
	size_t len;

	if (get_str(o, key, &s, &len) || len == 0 || strlen(s) != len)
		return -EINVAL;
	if (len >= PROTO_PATH_MAX)
		return -ENAMETOOLONG;
	*target = strndup(s, len);
	return *target ? 0 : -ENOMEM;
}

int
proto_link_decode(const char *buf, size_t len, char **target)
{
	json_t *o = load(buf, len);
	int rc;

	*target = NULL;
	if (!o)
		return -EINVAL;
	rc = get_target(o, "target", target);
	json_decref(o);
	return rc;
}

/* --- xattrs --- */

static int
xname_check(const char *s, size_t len)
{
	if (len == 0 || strlen(s) != len)
		return -EINVAL;
	/* Not ERANGE as setxattr(2) says: that errno means 416 on the wire. */
	if (len > PROTO_XATTR_NAME_MAX)
		return -ENAMETOOLONG;
	return utf8_check(s, len);
}

char *
proto_xattrs_encode(const struct fid *fid, uint64_t dv,
		    const struct proto_xattr *x, size_t n, size_t *lenp)
{
	struct enc e = {0};
	json_t *o = json_object(), *xo = json_object();
	size_t i, total = 0;
	char *b;

	if (!xo)
		enc_fail(&e, ENOMEM);
	if (o) {
		put_fid(&e, o, "fid", fid);
		put_u64(&e, o, "dv", dv);
	}
	for (i = 0; xo && i < n && !e.err; i++) {
		total += strlen(x[i].name) + 1;
		if (xname_check(x[i].name, strlen(x[i].name)) ||
		    x[i].len > PROTO_XATTR_VALUE_MAX ||
		    total > PROTO_XATTR_LIST_MAX) {
			enc_fail(&e, EINVAL);
			break;
		}
		b = b64_encode(x[i].value, x[i].len);
		if (!b) {
			enc_fail(&e, ENOMEM);
			break;
		}
		if (json_object_get(xo, x[i].name))
			enc_fail(&e, EINVAL);
		put(&e, xo, x[i].name, json_string(b));
		free(b);
	}
	if (o)
		put(&e, o, "xattrs", xo);
	else
		json_decref(xo);
	return finish(&e, o, lenp);
}

void
proto_xattrs_free(struct proto_xattr *x, size_t n)
{
	size_t i;

	if (!x)
		return;
	for (i = 0; i < n; i++) {
		free(x[i].name);
		free(x[i].value);
	}
	free(x);
}

int
proto_xattrs_decode(const char *buf, size_t len, uint64_t *dv,
		    struct proto_xattr **xp, size_t *np)
{
	json_t *o = load(buf, len), *xo, *v;
	struct proto_xattr *x = NULL;
	struct fid fid;
	size_t n = 0, i = 0, klen, total = 0;
	const char *key;
	int rc = -EINVAL;

	*dv = 0;
	*xp = NULL;
	*np = 0;
	if (!o)
		return -EINVAL;
	if (need_fid(o, "fid", &fid) || need_u64(o, "dv", dv))
		goto out;
	xo = json_object_get(o, "xattrs");
	if (!json_is_object(xo))
		goto out;
	n = json_object_size(xo);
	if (n > PROTO_XATTR_LIST_MAX / 2) {
		rc = -E2BIG;
		goto out;
	}
	x = calloc(n ? n : 1, sizeof(*x));
	if (!x) {
		rc = -ENOMEM;
		goto out;
	}
	json_object_keylen_foreach(xo, key, klen, v)
	{
		if (i >= n || xname_check(key, klen) || !json_is_string(v))
			goto out;
		total += klen + 1;
		if (total > PROTO_XATTR_LIST_MAX) {
			rc = -E2BIG;
			goto out;
		}
		x[i].name = strndup(key, klen);
		if (!x[i].name) {
			rc = -ENOMEM;
			goto out;
		}
		rc = b64_decode(json_string_value(v), json_string_length(v),
				PROTO_XATTR_VALUE_MAX, &x[i].value, &x[i].len);
		i++;
		if (rc)
			goto out;
		rc = -EINVAL;
	}
	*xp = x;
	*np = i;
	x = NULL;
	rc = 0;
out:
	proto_xattrs_free(x, n);
	json_decref(o);
	if (rc)
		*dv = 0;
	return rc;
}

/* --- events --- */

static bool
ev_has_object(enum proto_ev_kind k)
{
	return k == PROTO_EV_DATA || k == PROTO_EV_ATTR || k == PROTO_EV_DIR ||
	       k == PROTO_EV_GONE;
}

char *
proto_event_encode(const struct proto_event *ev, size_t *lenp)
{
	struct enc e = {0};
	json_t *o = json_object();
	size_t len;
	char *s, *t;

	if (ev->kind < PROTO_EV_DATA || ev->kind > PROTO_EV_RESET)
		enc_fail(&e, EINVAL);
	if (o) {
		put_u64(&e, o, "seq", ev->seq);
		put(&e, o, "kind", json_string(proto_ev_name(ev->kind)));
		if (ev_has_object(ev->kind)) {
			put_fid(&e, o, "fid", &ev->fid);
			put_u64(&e, o, "dv", ev->dv);
		}
	}
	s = finish(&e, o, &len);
	if (!s)
		return NULL;
	t = realloc(s, len + 2);
	if (!t) {
		free(s);
		errno = ENOMEM;
		return NULL;
	}
	t[len] = '\n';
	t[len + 1] = 0;
	if (lenp)
		*lenp = len + 1;
	return t;
}

int
proto_event_decode(const char *line, size_t len, struct proto_event *ev)
{
	json_t *o;
	const char *s;
	size_t slen;
	int rc = -EINVAL;

	memset(ev, 0, sizeof(*ev));
	o = load(line, len);
	if (!o)
		return -EINVAL;
	if (need_u64(o, "seq", &ev->seq) || get_str(o, "kind", &s, &slen) ||
	    strlen(s) != slen)
		goto out;
	ev->kind = ev_parse(s);
	if (!ev->kind)
		goto out;
	if (ev_has_object(ev->kind) &&
	    (need_fid(o, "fid", &ev->fid) || need_u64(o, "dv", &ev->dv)))
		goto out;
	rc = 0;
out:
	json_decref(o);
	if (rc)
		memset(ev, 0, sizeof(*ev));
	return rc;
}

/* --- operations --- */

static const char *const sa_names[] = {"mode", "uid",	"gid",
				       "size", "atime", "mtime"};
#define SA_COUNT (sizeof(sa_names) / sizeof(sa_names[0]))

static void
put_flags(struct enc *e, json_t *o, uint32_t flags, const char *f1,
	  const char *f2)
{
	json_t *arr = json_array();

	if (flags & ~3u)
		enc_fail(e, EINVAL);
	if (arr && (flags & 1))
		append(e, arr, json_string(f1));
	if (arr && (flags & 2))
		append(e, arr, json_string(f2));
	put(e, o, "flags", arr);
}

/* The JSON object of one op (NULL after enc_fail() when it cannot be
 * built), without a store's inline "data" (checked, not put): op_encode_sb()
 * adds it to the text. */
static json_t *
op_to_json(struct enc *ep, const struct proto_op *op)
{
	struct enc e = {0};
	json_t *o = json_object(), *arr;
	char *b;
	size_t i;

	if (op->kind <= PROTO_OP_NONE || op->kind > PROTO_OP_MAX)
		enc_fail(&e, EINVAL);
	if (!o || e.err)
		goto done;
	put(&e, o, "op", json_string(proto_op_name(op->kind)));
	put_hex16(&e, o, "opid", op->opid);
	switch (op->kind) {
	case PROTO_OP_CREATE:
	case PROTO_OP_MKDIR:
	case PROTO_OP_SYMLINK:
	case PROTO_OP_MKMOUNT:
		put_fid(&e, o, "parent", &op->parent);
		put_name(&e, o, "name", op->name);
		if (!fid_is_null(&op->fid))
			put_fid(&e, o, "fid", &op->fid);
		if (op->kind == PROTO_OP_CREATE) {
			if (!proto_type_creatable(op->type) ||
			    (op->rdev && !proto_type_has_rdev(op->type)))
				enc_fail(&e, EINVAL);
			put(&e, o, "type",
			    json_string(proto_type_name(op->type)));
			if (op->rdev)
				put_u64(&e, o, "rdev", op->rdev);
		}
		if (op->kind == PROTO_OP_SYMLINK) {
			if (!op->target || !op->target[0] ||
			    strlen(op->target) >= PROTO_PATH_MAX)
				enc_fail(&e, EINVAL);
			put_str(&e, o, "target", op->target);
		} else if (op->kind == PROTO_OP_MKMOUNT) {
			if (!op->target ||
			    proto_mount_target_check(op->target,
						     strlen(op->target)))
				enc_fail(&e, EINVAL);
			else
				put_str(&e, o, "target", op->target);
		} else {
			if (op->mode > 07777)
				enc_fail(&e, EINVAL);
			put_u64(&e, o, "mode", op->mode);
		}
		put_u64(&e, o, "uid", op->uid);
		put_u64(&e, o, "gid", op->gid);
		break;
	case PROTO_OP_LINK:
	case PROTO_OP_UNLINK:
	case PROTO_OP_RMDIR:
		put_fid(&e, o, "parent", &op->parent);
		put_name(&e, o, "name", op->name);
		put_fid(&e, o, "fid", &op->fid);
		break;
	case PROTO_OP_RENAME:
		put_fid(&e, o, "parent", &op->parent);
		put_name(&e, o, "name", op->name);
		put_fid(&e, o, "fid", &op->fid);
		put_fid(&e, o, "newparent", &op->newparent);
		put_name(&e, o, "newname", op->newname);
		put_flags(&e, o, op->flags, "noreplace", "exchange");
		if (!fid_is_null(&op->victim))
			put_fid(&e, o, "victim", &op->victim);
		break;
	case PROTO_OP_SETATTR:
		put_fid(&e, o, "fid", &op->fid);
		put_u64(&e, o, "base_dv", op->base_dv);
		if (op->mask & ~((1u << SA_COUNT) - 1))
			enc_fail(&e, EINVAL);
		arr = json_array();
		for (i = 0; arr && i < SA_COUNT; i++)
			if (op->mask & (1u << i))
				append(&e, arr, json_string(sa_names[i]));
		put(&e, o, "mask", arr);
		if (op->mask & PROTO_SA_MODE) {
			if (op->mode > 07777)
				enc_fail(&e, EINVAL);
			put_u64(&e, o, "mode", op->mode);
		}
		if (op->mask & PROTO_SA_UID)
			put_u64(&e, o, "uid", op->uid);
		if (op->mask & PROTO_SA_GID)
			put_u64(&e, o, "gid", op->gid);
		if (op->mask & PROTO_SA_SIZE)
			put_u64(&e, o, "size", op->size);
		if (op->mask & PROTO_SA_ATIME)
			put_i64(&e, o, "atime", op->atime_ns);
		if (op->mask & PROTO_SA_MTIME)
			put_i64(&e, o, "mtime", op->mtime_ns);
		break;
	case PROTO_OP_SETXATTR:
	case PROTO_OP_REMOVEXATTR:
		put_fid(&e, o, "fid", &op->fid);
		if (!op->xname || xname_check(op->xname, strlen(op->xname)))
			enc_fail(&e, EINVAL);
		else
			put_str(&e, o, "xname", op->xname);
		if (op->kind == PROTO_OP_REMOVEXATTR)
			break;
		if (op->xlen > PROTO_XATTR_VALUE_MAX ||
		    (op->xlen && !op->xvalue)) {
			enc_fail(&e, EINVAL);
			break;
		}
		b = b64_encode(op->xvalue, op->xlen);
		if (!b) {
			enc_fail(&e, ENOMEM);
			break;
		}
		put(&e, o, "xvalue", json_string(b));
		free(b);
		put_flags(&e, o, op->flags, "create", "replace");
		break;
	case PROTO_OP_STORE:
		put_fid(&e, o, "fid", &op->fid);
		put_u64(&e, o, "base_dv", op->base_dv);
		put_hex16(&e, o, "txid", op->txid);
		put_u64(&e, o, "chunk_size", op->chunk_size);
		put_u64(&e, o, "size", op->size);
		arr = json_array();
		for (i = 0; arr && i < op->nchunks && !e.err; i++) {
			if (op->chunks[i] > INT64_MAX)
				enc_fail(&e, ERANGE);
			else
				append(&e, arr,
				       json_integer((json_int_t)op->chunks[i]));
		}
		put(&e, o, "chunks", arr);
		if (!op->data)
			break;
		if (op->nchunks != 1 || !op->dlen ||
		    op->dlen > PROTO_INLINE_MAX || op->dlen > op->chunk_size)
			enc_fail(&e, EINVAL);
		break;
	default:
		break;
	}
done:
	if (!o)
		enc_fail(&e, ENOMEM);
	if (e.err) {
		enc_fail(ep, e.err);
		json_decref(o);
		return NULL;
	}
	return o;
}

/*
 * Append the JSON text of @op to @sb: jansson's compact text of
 * op_to_json(), then a store's inline bytes, its last keys. Without
 * @att: as "data", base64 written straight into the buffer; the text is
 * the one json_dumps(JSON_COMPACT) gave of the whole object. Not through
 * jansson: json_string() checks a string's UTF-8 and json_dumps() walks
 * it again code point by code point, which for the 64 KiB inline stores
 * of a writeback drain was 10-15 % of cairnd's CPU during an untar. With
 * @att (PROTO_V_ATTACH): as "data_off" (*@att, then moved past them) and
 * "data_len"; sb_attach() puts the bytes after the text.
 */
static void
op_encode_sb(struct enc *e, struct proto_sbuf *sb, const struct proto_op *op,
	     size_t *att)
{
	json_t *o = op_to_json(e, op);
	char *s, num[64];
	size_t len, blen;

	if (!o) {
		enc_fail(e, ENOMEM);
		return;
	}
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s) {
		enc_fail(e, ENOMEM);
		return;
	}
	len = strlen(s);
	if (op->kind != PROTO_OP_STORE || !op->data) {
		sb_put(sb, s, len);
		free(s);
		return;
	}
	/* op_to_json() checked dlen <= PROTO_INLINE_MAX. */
	sb_put(sb, s, len - 1); /* all but the closing brace */
	free(s);
	if (att) {
		snprintf(num, sizeof(num), ",\"data_off\":%zu,\"data_len\":%zu}",
			 *att, op->dlen);
		sb_str(sb, num);
		*att += op->dlen;
		return;
	}
	blen = (op->dlen + 2) / 3 * 4;
	sb_put(sb, ",\"data\":\"", 9);
	proto_sbuf_grow(sb, blen + 2);
	if (sb->err)
		return;
	b64_encode_to(sb->p + sb->len, op->data, op->dlen);
	sb->len += blen;
	sb_put(sb, "\"}", 2);
}

/* After @sb's text, a NUL and the inline bytes of the stores of @ops
 * (@attlen in all, what op_encode_sb() counted), in op order: the body of
 * a request whose stores name them with "data_off". Nothing when there
 * are none: the body is then plain JSON. */
static void
sb_attach(struct proto_sbuf *sb, const struct proto_op *ops, size_t n,
	  size_t attlen)
{
	if (!attlen || sb->err)
		return;
	proto_sbuf_grow(sb, 1 + attlen);
	if (sb->err)
		return;
	sb->p[sb->len++] = 0;
	for (size_t i = 0; i < n; i++)
		if (ops[i].kind == PROTO_OP_STORE && ops[i].data)
			sb_put(sb, ops[i].data, ops[i].dlen);
}

/* @sb's text, or NULL + errno after a failure of @e or @sb (released). */
static char *
sb_finish(struct enc *e, struct proto_sbuf *sb, size_t *lenp)
{
	if (!e->err && sb->err)
		e->err = sb->err;
	if (e->err) {
		free(sb->p);
		errno = e->err;
		return NULL;
	}
	if (lenp)
		*lenp = sb->len;
	return sb->p;
}

char *
proto_op_encode_ex(const struct proto_op *op, unsigned flags, size_t *lenp)
{
	struct enc e = {0};
	struct proto_sbuf sb = {0};
	size_t att = 0;

	op_encode_sb(&e, &sb, op, flags & PROTO_ENC_ATTACH ? &att : NULL);
	sb_attach(&sb, op, 1, att);
	return sb_finish(&e, &sb, lenp);
}

char *
proto_op_encode(const struct proto_op *op, size_t *lenp)
{
	return proto_op_encode_ex(op, 0, lenp);
}

void
proto_op_release(struct proto_op *op)
{
	if (!op)
		return;
	free(op->name);
	free(op->newname);
	free(op->target);
	free(op->xname);
	free(op->xvalue);
	free(op->chunks);
	free(op->data);
	memset(op, 0, sizeof(*op));
}

/* An optional FID: absent (or the null FID) means "none". */
static int
opt_fid(json_t *o, const char *key, struct fid *f)
{
	int rc = get_fid(o, key, f);

	if (rc == -ENOENT) {
		memset(f, 0, sizeof(*f));
		return 0;
	}
	return rc;
}

/* "flags": an optional list of the two names @f1 (bit 1) and @f2 (bit 2);
 * not both. */
static int
get_flags(json_t *o, const char *f1, const char *f2, uint32_t *flags)
{
	json_t *arr = json_object_get(o, "flags"), *x;
	const char *s;
	size_t i;

	*flags = 0;
	if (!arr)
		return 0;
	if (!json_is_array(arr) || json_array_size(arr) > 2)
		return -EINVAL;
	json_array_foreach(arr, i, x)
	{
		if (!json_is_string(x))
			return -EINVAL;
		s = json_string_value(x);
		if (!strcmp(s, f1) && strlen(s) == json_string_length(x))
			*flags |= 1;
		else if (!strcmp(s, f2) && strlen(s) == json_string_length(x))
			*flags |= 2;
		else
			return -EINVAL;
	}
	return *flags == 3 ? -EINVAL : 0;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The bytes after a body's JSON text and a NUL (PROTO_V_ATTACH): what
 * the stores of the body name with "data_off" and "data_len". */
struct attach {
	const char *p;
	size_t len;
	bool nul;    /* the body had one */
	size_t next; /* where the next store's range must start */
};

/* Split a request body at its first NUL: the JSON text before it (its
 * length the return), the attachment after it into @att (empty without
 * a NUL). JSON text holds no NUL byte, in a string or outside one. */
static size_t
split_attach(const char *buf, size_t len, struct attach *att)
{
	const char *nul = buf ? memchr(buf, 0, len) : NULL;

	memset(att, 0, sizeof(*att));
	if (!nul)
		return len;
	att->nul = true;
	att->p = nul + 1;
	att->len = len - (size_t)(nul - buf) - 1;
	return (size_t)(nul - buf);
}

/* A store's one chunk's bytes, inline: "data" (base64) or "data_off" and
 * "data_len" (a range of the attachment @att), not both; at most
 * PROTO_INLINE_MAX and the chunk size, at least one byte. */
/* After the ops: a body without a NUL, or whose stores named all of the
 * attachment (and there was one). */
static bool
attach_whole(const struct attach *att)
{
	return !att->nul || (att->len && att->next == att->len);
}

static int
decode_inline(json_t *o, struct proto_op *op, struct attach *att)
{
	size_t max = PROTO_INLINE_MAX < op->chunk_size ? PROTO_INLINE_MAX
						       : op->chunk_size;
	bool b64 = json_object_get(o, "data") != NULL;
	bool off = json_object_get(o, "data_off") != NULL;
	bool dl = json_object_get(o, "data_len") != NULL;
	uint64_t at, n;
	const char *s;
	size_t len;
	int rc;

	if (!b64 && !off && !dl)
		return 0;
	if (op->nchunks != 1 || (b64 && (off || dl)) || off != dl)
		return -EINVAL;
	if (b64) {
		if (get_str(o, "data", &s, &len))
			return -EINVAL;
		rc = b64_decode(s, len, max, &op->data, &op->dlen);
		if (rc)
			return rc;
		return op->dlen ? 0 : -EINVAL;
	}
	if (need_u64(o, "data_off", &at) || need_u64(o, "data_len", &n) ||
	    n == 0)
		return -EINVAL;
	if (n > max)
		return -E2BIG; /* as b64_decode() says */
	/* The ranges follow each other in op order, as the encoder puts
	 * them: no byte is copied out twice (decoded bytes stay under the
	 * body's size, which the server's admission budget counts). */
	if (at != att->next || at > att->len || n > att->len - at)
		return -EINVAL;
	op->data = malloc(n);
	if (!op->data)
		return -ENOMEM;
	memcpy(op->data, att->p + at, n);
	op->dlen = n;
	att->next = at + n;
	return 0;
}

static int
decode_store(json_t *o, struct proto_op *op, struct attach *att)
{
	int rc;
	json_t *arr, *x;
	uint64_t *sorted;
	json_int_t v;
	size_t i, n;

	if (need_fid(o, "fid", &op->fid) ||
	    need_u64(o, "base_dv", &op->base_dv) ||
	    get_hex16(o, "txid", op->txid) ||
	    need_u32(o, "chunk_size", PROTO_CHUNK_MAX, &op->chunk_size) ||
	    op->chunk_size < PROTO_CHUNK_MIN ||
	    (op->chunk_size & (op->chunk_size - 1)) ||
	    need_u64(o, "size", &op->size))
		return -EINVAL;
	arr = json_object_get(o, "chunks");
	if (!json_is_array(arr))
		return -EINVAL;
	n = json_array_size(arr);
	if (n > PROTO_STORE_CHUNKS_MAX)
		return -E2BIG;
	op->chunks = calloc(n ? n : 1, sizeof(*op->chunks));
	if (!op->chunks)
		return -ENOMEM;
	json_array_foreach(arr, i, x)
	{
		if (!json_is_integer(x))
			return -EINVAL;
		v = json_integer_value(x);
		/* The chunk's offset must fit in an off_t. */
		if (v < 0 || (uint64_t)v > INT64_MAX / op->chunk_size)
			return -EINVAL;
		op->chunks[i] = (uint64_t)v;
	}
	op->nchunks = n;
	rc = decode_inline(o, op, att);
	if (rc)
		return rc;
	if (n < 2)
		return 0;
	sorted = malloc(n * sizeof(*sorted));
	if (!sorted)
		return -ENOMEM;
	memcpy(sorted, op->chunks, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_u64);
	for (i = 1; i < n; i++)
		if (sorted[i - 1] == sorted[i])
			break;
	free(sorted);
	return i < n ? -EINVAL : 0;
}

static int
decode_setattr(json_t *o, struct proto_op *op)
{
	json_t *arr, *x;
	const char *s;
	size_t i, k;
	uint64_t sz;

	if (need_fid(o, "fid", &op->fid) ||
	    need_u64(o, "base_dv", &op->base_dv))
		return -EINVAL;
	arr = json_object_get(o, "mask");
	if (!json_is_array(arr) || json_array_size(arr) > SA_COUNT)
		return -EINVAL;
	json_array_foreach(arr, i, x)
	{
		if (!json_is_string(x))
			return -EINVAL;
		s = json_string_value(x);
		for (k = 0; k < SA_COUNT; k++)
			if (!strcmp(s, sa_names[k]))
				break;
		if (k == SA_COUNT || strlen(s) != json_string_length(x) ||
		    (op->mask & (1u << k)))
			return -EINVAL;
		op->mask |= 1u << k;
	}
	if ((op->mask & PROTO_SA_MODE) && need_u32(o, "mode", 07777, &op->mode))
		return -EINVAL;
	if ((op->mask & PROTO_SA_UID) &&
	    need_u32(o, "uid", UINT32_MAX, &op->uid))
		return -EINVAL;
	if ((op->mask & PROTO_SA_GID) &&
	    need_u32(o, "gid", UINT32_MAX, &op->gid))
		return -EINVAL;
	if (op->mask & PROTO_SA_SIZE) {
		if (need_u64(o, "size", &sz))
			return -EINVAL;
		op->size = sz;
	}
	if ((op->mask & PROTO_SA_ATIME) && need_i64(o, "atime", &op->atime_ns))
		return -EINVAL;
	if ((op->mask & PROTO_SA_MTIME) && need_i64(o, "mtime", &op->mtime_ns))
		return -EINVAL;
	return 0;
}

static int
decode_xattr(json_t *o, struct proto_op *op)
{
	const char *s;
	size_t len;
	int rc;

	if (need_fid(o, "fid", &op->fid) || get_str(o, "xname", &s, &len))
		return -EINVAL;
	rc = xname_check(s, len);
	if (rc)
		return rc;
	op->xname = strndup(s, len);
	if (!op->xname)
		return -ENOMEM;
	if (op->kind == PROTO_OP_REMOVEXATTR)
		return 0;
	if (get_str(o, "xvalue", &s, &len))
		return -EINVAL;
	rc = b64_decode(s, len, PROTO_XATTR_VALUE_MAX, &op->xvalue, &op->xlen);
	if (rc)
		return rc;
	return get_flags(o, "create", "replace", &op->flags);
}

/* One op from its JSON object @o (not consumed). @return as
 * proto_op_decode(); on error @op is released. */
static int
op_from_json(json_t *o, struct proto_op *op, struct attach *att)
{
	const char *s;
	size_t slen;
	int rc = -EINVAL;

	memset(op, 0, sizeof(*op));
	if (!json_is_object(o))
		return -EINVAL;
	if (get_str(o, "op", &s, &slen) || strlen(s) != slen)
		goto out;
	op->kind = proto_op_parse(s);
	if (op->kind == PROTO_OP_NONE || get_hex16(o, "opid", op->opid))
		goto out;
	switch (op->kind) {
	case PROTO_OP_CREATE:
	case PROTO_OP_MKDIR:
	case PROTO_OP_SYMLINK:
	case PROTO_OP_MKMOUNT:
		if (need_fid(o, "parent", &op->parent))
			goto out;
		rc = get_name(o, "name", &op->name);
		if (rc)
			goto out;
		rc = -EINVAL;
		if (opt_fid(o, "fid", &op->fid) ||
		    need_u32(o, "uid", UINT32_MAX, &op->uid) ||
		    need_u32(o, "gid", UINT32_MAX, &op->gid))
			goto out;
		if (op->kind == PROTO_OP_SYMLINK) {
			op->type = PROTO_T_SYMLINK;
			rc = get_target(o, "target", &op->target);
			if (rc)
				goto out;
			rc = -EINVAL;
			break;
		}
		if (op->kind == PROTO_OP_MKMOUNT) {
			op->type = PROTO_T_MOUNT;
			rc = get_target(o, "target", &op->target);
			if (!rc)
				rc = proto_mount_target_check(
					op->target, strlen(op->target));
			if (rc)
				goto out;
			rc = -EINVAL;
			break;
		}
		if (need_u32(o, "mode", 07777, &op->mode))
			goto out;
		if (op->kind == PROTO_OP_MKDIR) {
			op->type = PROTO_T_DIR;
			break;
		}
		if (get_str(o, "type", &s, &slen) || strlen(s) != slen)
			goto out;
		op->type = proto_type_parse(s);
		if (!proto_type_creatable(op->type) ||
		    get_rdev(o, op->type, &op->rdev))
			goto out;
		break;
	case PROTO_OP_LINK:
	case PROTO_OP_UNLINK:
	case PROTO_OP_RMDIR:
	case PROTO_OP_RENAME:
		if (need_fid(o, "parent", &op->parent))
			goto out;
		rc = get_name(o, "name", &op->name);
		if (rc)
			goto out;
		rc = -EINVAL;
		if (need_fid(o, "fid", &op->fid))
			goto out;
		if (op->kind != PROTO_OP_RENAME)
			break;
		if (need_fid(o, "newparent", &op->newparent))
			goto out;
		rc = get_name(o, "newname", &op->newname);
		if (rc)
			goto out;
		rc = -EINVAL;
		if (opt_fid(o, "victim", &op->victim) ||
		    get_flags(o, "noreplace", "exchange", &op->flags))
			goto out;
		/* An exchange swaps two objects: the client must name both. */
		if ((op->flags & PROTO_RENAME_EXCHANGE) &&
		    fid_is_null(&op->victim))
			goto out;
		break;
	case PROTO_OP_SETATTR:
		if (decode_setattr(o, op))
			goto out;
		break;
	case PROTO_OP_SETXATTR:
	case PROTO_OP_REMOVEXATTR:
		rc = decode_xattr(o, op);
		if (rc)
			goto out;
		rc = -EINVAL;
		break;
	case PROTO_OP_STORE:
		rc = decode_store(o, op, att);
		if (rc)
			goto out;
		rc = -EINVAL;
		break;
	default:
		goto out;
	}
	rc = 0;
out:
	if (rc)
		proto_op_release(op);
	return rc;
}

int
proto_op_decode(const char *buf, size_t len, struct proto_op *op)
{
	struct attach att;
	json_t *o;
	int rc;

	memset(op, 0, sizeof(*op));
	/* Refuse before parsing what no single op can need. */
	if (len > PROTO_OP_BODY_MAX)
		return -E2BIG;
	o = load(buf, split_attach(buf, len, &att));
	if (!o)
		return -EINVAL;
	rc = op_from_json(o, op, &att);
	json_decref(o);
	if (!rc && !attach_whole(&att)) {
		/* Bytes after a NUL that no store names (or none at all):
		 * not a body a client of ours sends. */
		proto_op_release(op);
		rc = -EINVAL;
	}
	return rc;
}

/* --- operation results --- */

char *
proto_op_result_encode(const struct proto_op_result *r, size_t *lenp)
{
	struct enc e = {0};
	json_t *o = json_object();

	if (o && r->has_attr)
		put(&e, o, "attr", attr_to_json(&e, &r->attr));
	if (o && r->has_parent)
		put(&e, o, "parent", attr_to_json(&e, &r->parent));
	if (o && r->has_newparent)
		put(&e, o, "newparent", attr_to_json(&e, &r->newparent));
	if (o && r->has_victim)
		put(&e, o, "victim", attr_to_json(&e, &r->victim));
	if (o && r->event_seq)
		put_u64(&e, o, "event_seq", r->event_seq);
	return finish(&e, o, lenp);
}

static int
opt_attr(json_t *o, const char *key, bool *has, struct proto_attr *a)
{
	json_t *v = json_object_get(o, key);

	*has = false;
	if (!v)
		return 0;
	if (attr_from_json(v, a))
		return -EINVAL;
	*has = true;
	return 0;
}

static int
op_result_from_json(json_t *o, struct proto_op_result *r)
{
	int rc = -EINVAL;

	memset(r, 0, sizeof(*r));
	if (!json_is_object(o))
		return -EINVAL;
	if (opt_attr(o, "attr", &r->has_attr, &r->attr) ||
	    opt_attr(o, "parent", &r->has_parent, &r->parent) ||
	    opt_attr(o, "newparent", &r->has_newparent, &r->newparent) ||
	    opt_attr(o, "victim", &r->has_victim, &r->victim))
		goto out;
	if ((r->has_parent && r->parent.type != PROTO_T_DIR) ||
	    (r->has_newparent && r->newparent.type != PROTO_T_DIR))
		goto out;
	if (json_object_get(o, "event_seq") &&
	    get_uint(o, "event_seq", INT64_MAX, &r->event_seq))
		goto out;
	rc = 0;
out:
	if (rc)
		memset(r, 0, sizeof(*r));
	return rc;
}

int
proto_op_result_decode(const char *buf, size_t len, struct proto_op_result *r)
{
	json_t *o = load(buf, len);
	int rc;

	memset(r, 0, sizeof(*r));
	if (!o)
		return -EINVAL;
	rc = op_result_from_json(o, r);
	json_decref(o);
	return rc;
}

char *
proto_op_result_compat(const char *buf, size_t len, int version, size_t *lenp)
{
	struct proto_op_result r;
	struct proto_attr *a[4];
	bool change = false;
	char *out;

	if (version >= PROTO_V_MOUNT || !buf ||
	    (!memmem(buf, len, "\"socket\"", 8) &&
	     !memmem(buf, len, "\"chr\"", 5) &&
	     !memmem(buf, len, "\"blk\"", 5) &&
	     !memmem(buf, len, "\"mount\"", 7)))
		return NULL; /* nothing to change: not worth a decode */
	if (proto_op_result_decode(buf, len, &r))
		return NULL;
	a[0] = r.has_attr ? &r.attr : NULL;
	a[1] = r.has_parent ? &r.parent : NULL;
	a[2] = r.has_newparent ? &r.newparent : NULL;
	a[3] = r.has_victim ? &r.victim : NULL;
	for (int i = 0; i < 4; i++) {
		if (a[i] && ((a[i]->type > PROTO_T_MAX_V2 &&
			      version < PROTO_V_SPECIAL) ||
			     a[i]->type == PROTO_T_MOUNT)) {
			proto_attr_compat(a[i], version);
			change = true;
		}
	}
	if (!change)
		return NULL;
	out = proto_op_result_encode(&r, lenp);
	return out;
}

/* --- errors --- */

char *
proto_error_encode(int err, const char *msg, uint64_t cur_dv, size_t *lenp)
{
	struct enc e = {0};
	json_t *o = json_object();
	int status;

	if (err < 0)
		err = -err;
	status = proto_errno_to_status(err);
	if (o) {
		put_str(&e, o, "error", msg ? msg : strerror(err));
		put(&e, o, "errno", json_string(proto_errno_name(err)));
		/* The current DV goes with exactly the statuses that mean
		 * "your version is stale" (410, 412). */
		if (status == 410 || status == 412)
			put_u64(&e, o, "dv", cur_dv);
	}
	return finish(&e, o, lenp);
}

static int
error_from_json(json_t *o, struct proto_error *er)
{
	const char *s;
	size_t slen, n;
	int rc = -EINVAL, en;

	memset(er, 0, sizeof(*er));
	if (!json_is_object(o))
		return -EINVAL;
	if (get_str(o, "errno", &s, &slen) || strlen(s) != slen)
		goto out;
	en = proto_errno_parse(s);
	er->err = en ? en : EIO;
	switch (get_str(o, "error", &s, &slen)) {
	case 0:
		n = slen < sizeof(er->msg) - 1 ? slen : sizeof(er->msg) - 1;
		/* Cut at a character boundary, not inside a UTF-8 sequence. */
		if (n < slen)
			while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
				n--;
		memcpy(er->msg, s, n);
		er->msg[n] = 0;
		break;
	case -ENOENT:
		break;
	default:
		goto out;
	}
	switch (get_uint(o, "dv", INT64_MAX, &er->cur_dv)) {
	case 0:
	case -ENOENT:
		break;
	default:
		goto out;
	}
	rc = 0;
out:
	if (rc)
		memset(er, 0, sizeof(*er));
	return rc;
}

int
proto_error_decode(const char *buf, size_t len, struct proto_error *er)
{
	json_t *o = load(buf, len);
	int rc;

	memset(er, 0, sizeof(*er));
	if (!o)
		return -EINVAL;
	rc = error_from_json(o, er);
	json_decref(o);
	return rc;
}

/* --- batches (version 3) --- */

int
proto_batch_decode(const char *buf, size_t len, struct proto_batch *b)
{
	struct attach att;
	json_t *o, *arr, *v;
	size_t n;
	int rc = -EINVAL;

	memset(b, 0, sizeof(*b));
	/* The size is the first check, before a byte is parsed. */
	if (len > PROTO_BATCH_BODY_MAX)
		return -E2BIG;
	o = load(buf, split_attach(buf, len, &att));
	if (!o)
		return -EINVAL;
	arr = json_object_get(o, "ops");
	if (!json_is_array(arr))
		goto out;
	n = json_array_size(arr);
	if (n == 0)
		goto out;
	if (n > PROTO_BATCH_MAX) {
		rc = -E2BIG;
		goto out;
	}
	v = json_object_get(o, "stop_on_error");
	if (v && !json_is_boolean(v))
		goto out;
	b->stop = v && json_is_true(v);
	b->ops = calloc(n, sizeof(*b->ops));
	if (!b->ops) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		rc = op_from_json(json_array_get(arr, i), &b->ops[i], &att);
		if (rc)
			goto out;
		b->n = i + 1;
	}
	rc = attach_whole(&att) ? 0 : -EINVAL;
out:
	json_decref(o);
	if (rc)
		proto_batch_release(b);
	return rc;
}

void
proto_batch_release(struct proto_batch *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++)
		proto_op_release(&b->ops[i]);
	free(b->ops);
	memset(b, 0, sizeof(*b));
}

char *
proto_batch_encode(const struct proto_op *ops, size_t n, bool stop,
		   size_t *lenp)
{
	return proto_batch_encode_ex(ops, n, stop, 0, lenp);
}

char *
proto_batch_encode_ex(const struct proto_op *ops, size_t n, bool stop,
		      unsigned flags, size_t *lenp)
{
	struct enc e = {0};
	struct proto_sbuf sb = {0};
	size_t att = 0;
	char *s;
	size_t len = 0;

	/* The text json_dumps(JSON_COMPACT) gave of {"ops": [...],
	 * "stop_on_error": true}, each op through op_encode_sb(). */
	if (n == 0 || n > PROTO_BATCH_MAX)
		enc_fail(&e, n ? E2BIG : EINVAL);
	sb_str(&sb, "{\"ops\":[");
	for (size_t i = 0; i < n && !e.err && !sb.err; i++) {
		if (i)
			sb_put(&sb, ",", 1);
		op_encode_sb(&e, &sb, &ops[i],
			     flags & PROTO_ENC_ATTACH ? &att : NULL);
	}
	sb_str(&sb, stop ? "],\"stop_on_error\":true}" : "]}");
	sb_attach(&sb, ops, n, att);
	s = sb_finish(&e, &sb, &len);
	if (s && len > PROTO_BATCH_BODY_MAX) {
		free(s);
		errno = E2BIG;
		return NULL;
	}
	if (s && lenp)
		*lenp = len;
	return s;
}

/* Append @n bytes to the growing buffer *@b (*@len used, *@cap held). */
static int
grow_put(char **b, size_t *len, size_t *cap, const char *p, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t c = *cap ? *cap : 256;
		char *nb;

		while (c < *len + n + 1)
			c *= 2;
		nb = realloc(*b, c);
		if (!nb)
			return -ENOMEM;
		*b = nb;
		*cap = c;
	}
	memcpy(*b + *len, p, n);
	*len += n;
	(*b)[*len] = 0;
	return 0;
}

char *
proto_batch_reply_encode(const int *status, char *const *body,
			 const size_t *blen, size_t n, size_t *lenp)
{
	char *b = NULL, num[48];
	size_t len = 0, cap = 0;
	int rc;

	rc = grow_put(&b, &len, &cap, "{\"results\":[", 12);
	for (size_t i = 0; !rc && i < n; i++) {
		if ((status[i] != 200 &&
		     (status[i] < 400 || status[i] > 599)) || !body[i] ||
		    !blen[i] || body[i][0] != '{') {
			rc = -EINVAL;
			break;
		}
		snprintf(num, sizeof(num), "%s{\"status\":%d,\"body\":",
			 i ? "," : "", status[i]);
		rc = grow_put(&b, &len, &cap, num, strlen(num));
		if (!rc)
			rc = grow_put(&b, &len, &cap, body[i], blen[i]);
		if (!rc)
			rc = grow_put(&b, &len, &cap, "}", 1);
	}
	if (!rc)
		rc = grow_put(&b, &len, &cap, "]}", 2);
	if (rc) {
		free(b);
		errno = -rc;
		return NULL;
	}
	if (lenp)
		*lenp = len;
	return b;
}

int
proto_batch_reply_decode(const char *buf, size_t len, size_t nops,
			 struct proto_batch_result **out)
{
	json_t *o = load(buf, len), *arr;
	struct proto_batch_result *r = NULL;
	int rc = -EINVAL;

	*out = NULL;
	if (!o)
		return -EINVAL;
	arr = json_object_get(o, "results");
	if (!json_is_array(arr) || nops == 0 || nops > PROTO_BATCH_MAX ||
	    json_array_size(arr) != nops)
		goto out;
	r = calloc(nops, sizeof(*r));
	if (!r) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nops; i++) {
		json_t *it = json_array_get(arr, i), *bo;
		uint64_t st;

		if (!json_is_object(it) || get_uint(it, "status", 599, &st) ||
		    st < 200 || (st > 200 && st < 400))
			goto out;
		bo = json_object_get(it, "body");
		r[i].status = (int)st;
		if (st == 200 ? op_result_from_json(bo, &r[i].res)
			      : error_from_json(bo, &r[i].err))
			goto out;
	}
	rc = 0;
out:
	json_decref(o);
	if (rc)
		free(r);
	else
		*out = r;
	return rc;
}

/* --- URLs --- */

static int
path_result(int n, size_t len)
{
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= len)
		return -ENAMETOOLONG;
	return n;
}

static bool
chunk_size_ok(uint64_t cs)
{
	return cs >= PROTO_CHUNK_MIN && cs <= PROTO_CHUNK_MAX &&
	       !(cs & (cs - 1));
}

int
proto_chunk_path(char *buf, size_t len, const char *vol, const struct fid *fid,
		 uint64_t dv, uint64_t chunk, uint32_t chunk_size)
{
	char f[FID_STRLEN];

	if (proto_volname_check(vol) || !chunk_size_ok(chunk_size))
		return -EINVAL;
	return path_result(snprintf(buf, len,
				    "/v1/vol/%s/data/%s/%" PRIu64 "/%" PRIu64
				    "?size=%" PRIu32,
				    vol, fid_fmt(fid, f), dv, chunk,
				    chunk_size),
			   len);
}

int
proto_stage_path(char *buf, size_t len, const char *vol, const struct fid *fid,
		 const uint8_t txid[16], uint64_t chunk, uint32_t chunk_size)
{
	char f[FID_STRLEN], t[33];

	if (proto_volname_check(vol) || !chunk_size_ok(chunk_size))
		return -EINVAL;
	util_hex_encode(txid, 16, t);
	return path_result(snprintf(buf, len,
				    "/v1/vol/%s/stage/%s/%s/%" PRIu64
				    "?size=%" PRIu32,
				    vol, fid_fmt(fid, f), t, chunk, chunk_size),
			   len);
}

/* Strict decimal: 1..20 digits, no sign, no leading zero, no overflow. */
static int
parse_dec(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
		return -EINVAL;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* Lower-case hex only, so every object has one URL. */
static bool
lower_hex(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static int
parse_fid_seg(const char *s, size_t len, struct fid *f)
{
	if (len != FID_STRLEN - 1 || !lower_hex(s, 8) || !lower_hex(s + 9, 32))
		return -EINVAL;
	if (fid_parse_n(s, len, f) || fid_is_null(f))
		return -EINVAL;
	return 0;
}

/* "DV.BUCKET.INDEX", each as parse_dec(). */
static int
parse_cursor(const char *s, size_t len, struct proto_dir_cursor *c)
{
	uint64_t *part[3] = {&c->dv, &c->bucket, &c->index};
	const char *end = s + len, *dot;

	for (int i = 0; i < 3; i++) {
		dot = memchr(s, '.', (size_t)(end - s));
		if ((i < 2) != (dot != NULL))
			return -EINVAL;
		if (!dot)
			dot = end;
		if (parse_dec(s, (size_t)(dot - s), part[i]))
			return -EINVAL;
		s = dot + 1;
	}
	return 0;
}

#define PATH_SEGS_MAX 8

int
proto_parse_path(const char *target, struct proto_path *out)
{
	const char *seg[PATH_SEGS_MAX], *q, *p, *amp, *eq;
	size_t seglen[PATH_SEGS_MAX], plen, qlen, n = 0, k, vlen;
	bool has_size = false;
	uint64_t v, size = 0;
	int rc = -ENOENT;

	memset(out, 0, sizeof(*out));
	if (!target || target[0] != '/')
		return -ENOENT;
	if (strlen(target) > 1024)
		return -EINVAL;
	if (strchr(target, '%') || strchr(target, '#'))
		return -EINVAL;
	q = strchr(target, '?');
	plen = q ? (size_t)(q - target) : strlen(target);

	/* Split the path into segments; an empty one (// or a trailing /)
	 * is not a route. */
	p = target + 1;
	while (p <= target + plen) {
		const char *slash = memchr(p, '/', plen - (size_t)(p - target));
		size_t l = slash ? (size_t)(slash - p)
				 : plen - (size_t)(p - target);

		if (l == 0 || n == PATH_SEGS_MAX)
			return -ENOENT;
		seg[n] = p;
		seglen[n++] = l;
		p += l + 1;
	}
#define SEG(i, lit)                                                            \
	(seglen[i] == strlen(lit) && !memcmp(seg[i], lit, seglen[i]))
	if (n < 2 || !SEG(0, "v1"))
		return -ENOENT;
	if (n == 2 && SEG(1, "ping")) {
		out->kind = PROTO_P_PING;
	} else if (SEG(1, "vol") && n >= 3) {
		if (n == 3)
			out->kind = PROTO_P_VOL;
		else if (n == 4 && SEG(3, "getattr"))
			out->kind = PROTO_P_GETATTR;
		else if (n == 4 && SEG(3, "events"))
			out->kind = PROTO_P_EVENTS;
		else if (n == 4 && SEG(3, "op"))
			out->kind = PROTO_P_OP;
		else if (n == 4 && SEG(3, "batch"))
			out->kind = PROTO_P_BATCH;
		else if (n == 5 && SEG(3, "dir"))
			out->kind = PROTO_P_DIR;
		else if (n == 5 && SEG(3, "link"))
			out->kind = PROTO_P_LINK;
		else if (n == 5 && SEG(3, "xattr"))
			out->kind = PROTO_P_XATTR;
		else if (n == 7 && SEG(3, "data"))
			out->kind = PROTO_P_DATA;
		else if (n == 7 && SEG(3, "stage"))
			out->kind = PROTO_P_STAGE;
		else
			return -ENOENT;
	} else {
		return -ENOENT;
	}
#undef SEG
	rc = -EINVAL;
	if (out->kind != PROTO_P_PING) {
		if (seglen[2] >= sizeof(out->vol))
			goto out;
		memcpy(out->vol, seg[2], seglen[2]);
		out->vol[seglen[2]] = 0;
		if (proto_volname_check(out->vol))
			goto out;
	}
	if (n >= 5 && parse_fid_seg(seg[4], seglen[4], &out->fid))
		goto out;
	if (out->kind == PROTO_P_DATA && parse_dec(seg[5], seglen[5], &out->dv))
		goto out;
	if (out->kind == PROTO_P_STAGE &&
	    (seglen[5] != 32 || !lower_hex(seg[5], 32) ||
	     util_hex_decode(seg[5], 32, out->txid, 16) != 16))
		goto out;
	if (n == 7 && parse_dec(seg[6], seglen[6], &out->chunk))
		goto out;

	/* Query: name=value pairs joined by '&'. */
	for (p = q ? q + 1 : NULL; p && *p; p = amp ? amp + 1 : NULL) {
		amp = strchr(p, '&');
		qlen = amp ? (size_t)(amp - p) : strlen(p);
		eq = memchr(p, '=', qlen);
		k = eq ? (size_t)(eq - p) : qlen;
		vlen = eq ? qlen - k - 1 : 0;
		if (k == 4 && !memcmp(p, "size", 4)) {
			if ((out->kind != PROTO_P_DATA &&
			     out->kind != PROTO_P_STAGE) ||
			    has_size || !eq || parse_dec(eq + 1, vlen, &size))
				goto out;
			has_size = true;
		} else if (k == 5 && !memcmp(p, "since", 5)) {
			if (out->kind != PROTO_P_EVENTS || out->has_since ||
			    !eq || parse_dec(eq + 1, vlen, &v))
				goto out;
			out->has_since = true;
			out->since = v;
		} else if (k == 5 && !memcmp(p, "limit", 5)) {
			if (out->kind != PROTO_P_DIR || out->limit || !eq ||
			    parse_dec(eq + 1, vlen, &v) || v == 0 ||
			    v > PROTO_DIR_PAGE_MAX)
				goto out;
			out->limit = (uint32_t)v;
		} else if (k == 6 && !memcmp(p, "cursor", 6)) {
			if (out->kind != PROTO_P_DIR || out->has_cursor ||
			    !eq || parse_cursor(eq + 1, vlen, &out->cursor))
				goto out;
			out->has_cursor = true;
		} else if (k == 3 && !memcmp(p, "enc", 3)) {
			/* Protocol 8: "bin" asks for binary pages. */
			if (out->kind != PROTO_P_DIR || out->has_enc || !eq ||
			    !((vlen == 3 && !memcmp(eq + 1, "bin", 3)) ||
			      (vlen == 4 && !memcmp(eq + 1, "json", 4))))
				goto out;
			out->has_enc = true;
			out->bin = vlen == 3;
		}
	}
	if ((out->has_cursor || out->bin) && !out->limit)
		goto out;
	if (out->kind == PROTO_P_DATA || out->kind == PROTO_P_STAGE) {
		if (!has_size || !chunk_size_ok(size))
			goto out;
		out->chunk_size = (uint32_t)size;
		if (out->chunk > INT64_MAX / size) {
			rc = -ERANGE;
			goto out;
		}
	}
	rc = 0;
out:
	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

/* --- per-block checksums (X-Cairn-Blocks) --- */

static bool
block_size_ok(uint32_t b)
{
	return b >= PROTO_BLOCK_MIN && (b & (b - 1)) == 0;
}

uint32_t
proto_block_size(uint32_t chunk_size)
{
	uint32_t b = chunk_size / 16;

	return b > 16384 ? b : 16384;
}

int
proto_blocks_compute(struct proto_blocks *pb, uint32_t bsize,
		     const void *body, size_t len)
{
	const uint8_t *p = body;
	uint64_t n;

	if (!block_size_ok(bsize) || len > UINT32_MAX)
		return -EINVAL;
	n = (len + bsize - 1) / bsize;
	if (n > PROTO_BLOCKS_MAX)
		return -EINVAL;
	pb->bsize = bsize;
	pb->len = (uint32_t)len;
	pb->n = (uint32_t)n;
	for (uint32_t i = 0; i < pb->n; i++) {
		size_t off = (size_t)i * bsize;
		size_t l = len - off < bsize ? len - off : bsize;

		pb->crc[i] = crc32c(0, p + off, l);
	}
	return 0;
}

int
proto_blocks_format(char *buf, size_t len, const struct proto_blocks *pb)
{
	size_t at;
	int n;

	if (!block_size_ok(pb->bsize) || pb->n > PROTO_BLOCKS_MAX)
		return -EINVAL;
	n = snprintf(buf, len, "crc32c %" PRIu32, pb->bsize);
	if (n < 0 || (size_t)n >= len)
		return -ERANGE;
	at = (size_t)n;
	for (uint32_t i = 0; i < pb->n; i++) {
		n = snprintf(buf + at, len - at, " %08" PRIx32, pb->crc[i]);
		if (n < 0 || (size_t)n >= len - at)
			return -ERANGE;
		at += (size_t)n;
	}
	return (int)at;
}

int
proto_blocks_parse(const char *value, uint32_t chunk_size, uint32_t body_len,
		   struct proto_blocks *pb)
{
	const char *p = value, *sp;
	uint64_t b = 0, n;

	memset(pb, 0, sizeof(*pb));
	if (!value)
		return -EINVAL;
	sp = strchr(p, ' ');
	if (!sp || sp == p)
		return -EINVAL;
	if ((size_t)(sp - p) != 6 || memcmp(p, "crc32c", 6))
		return -ENOTSUP;
	p = sp + 1;
	/* The block size: plain decimal, no leading zero. */
	if (*p < '1' || *p > '9')
		return -EINVAL;
	while (*p >= '0' && *p <= '9') {
		b = b * 10 + (uint64_t)(*p++ - '0');
		if (b > chunk_size)
			return -EINVAL;
	}
	if (!block_size_ok((uint32_t)b) || b > chunk_size ||
	    body_len > chunk_size)
		return -EINVAL;
	n = (body_len + b - 1) / b;
	if (n > PROTO_BLOCKS_MAX)
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t v = 0;

		if (*p++ != ' ')
			return -EINVAL;
		for (int d = 0; d < 8; d++, p++) {
			if (*p >= '0' && *p <= '9')
				v = v << 4 | (uint32_t)(*p - '0');
			else if (*p >= 'a' && *p <= 'f')
				v = v << 4 | (uint32_t)(*p - 'a' + 10);
			else
				return -EINVAL;
		}
		pb->crc[i] = v;
	}
	if (*p != '\0')
		return -EINVAL;
	pb->bsize = (uint32_t)b;
	pb->len = body_len;
	pb->n = (uint32_t)n;
	return 0;
}

ssize_t
proto_blocks_verify(const struct proto_blocks *pb, const void *buf,
		    size_t verified, size_t have)
{
	const uint8_t *p = buf;

	if (have > pb->len)
		have = pb->len;
	while (verified < have) {
		size_t i = verified / pb->bsize;
		size_t end = verified + pb->bsize;

		if (end > pb->len)
			end = pb->len;
		if (end > have || i >= pb->n)
			break;
		if (crc32c(0, p + verified, end - verified) != pb->crc[i])
			return -EIO;
		verified = end;
	}
	return (ssize_t)verified;
}

uint32_t
proto_blocks_crc(const struct proto_blocks *pb)
{
	uint32_t crc = 0, i;

	for (i = 0; i < pb->n; i++) {
		uint32_t blen =
			i + 1 < pb->n ? pb->bsize : pb->len - i * pb->bsize;

		crc = i ? crc32c_combine(crc, pb->crc[i], blen) : pb->crc[i];
	}
	return crc;
}
