/*
 * ctl_proto.c - encode, decode and check cairn control-socket messages.
 *
 * This is the whole vocabulary of fs(1) and cairnd's control socket: one
 * table of request types with their argument schemas, the fixed header, and
 * the socket's default name. It does no I/O and keeps no state; both ends
 * (admin/fs.c, cm/ctl.c) call it, so a message accepted by one is accepted
 * by the other.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <openssl/evp.h>

#include "common/ctl_proto.h"
#include "common/util.h"

/* Argument kinds of the schemas below. */
enum arg_kind {
	A_END = 0,
	A_PATH, /* string, ctl_path_check() */
	A_BOOL,
	A_U64, /* integer 0 .. INT64_MAX (jansson's range) */
	A_U32, /* integer 0 .. UINT32_MAX */
	A_STR, /* string of 1 .. CTL_STR_MAX bytes */
};

struct arg_spec {
	const char *name;
	enum arg_kind kind;
	bool required;
};

#define ARGS_MAX 4

struct type_info {
	const char *name;
	unsigned flags;
	struct arg_spec args[ARGS_MAX];
};

#define PATH_ARG                                                               \
	{                                                                      \
		"path", A_PATH, true                                           \
	}
#define OPT_PATH_ARG                                                           \
	{                                                                      \
		"path", A_PATH, false                                          \
	}
/* A namespace (one cairnd, several volumes): which one a request
 * without a path is about (doc/control.md). */
#define VOLUME_ARG                                                             \
	{                                                                      \
		"volume", A_STR, false                                         \
	}
#define RECURSIVE_ARG                                                          \
	{                                                                      \
		"recursive", A_BOOL, false                                     \
	}

/* The request vocabulary; doc/control.md lists the same. */
static const struct type_info req_types[CTL_REQ_MAX + 1] = {
	[CTL_PIN] = {"pin",
		     CTL_TF_PATH | CTL_TF_LONG,
		     {PATH_ARG, RECURSIVE_ARG}},
	[CTL_UNPIN] = {"unpin", CTL_TF_PATH, {PATH_ARG, RECURSIVE_ARG}},
	[CTL_PINS] = {"pins", 0, {OPT_PATH_ARG, VOLUME_ARG}},
	[CTL_FLUSH] = {"flush", CTL_TF_PATH | CTL_TF_LONG, {PATH_ARG}},
	[CTL_FLUSHVOLUME] = {"flushvolume",
			     CTL_TF_ROOT | CTL_TF_LONG,
			     {VOLUME_ARG}},
	[CTL_FLUSHMETA] = {"flushmeta", CTL_TF_PATH, {PATH_ARG}},
	[CTL_GETCACHEPARMS] = {"getcacheparms", 0, {VOLUME_ARG}},
	[CTL_SETCACHESIZE] = {"setcachesize",
			      CTL_TF_ROOT | CTL_TF_LONG,
			      {{"bytes", A_U64, true}}},
	[CTL_EXAMINE] = {"examine", CTL_TF_PATH, {PATH_ARG}},
	[CTL_WHEREIS] = {"whereis", CTL_TF_PATH, {PATH_ARG}},
	[CTL_LISTVOL] = {"listvol", 0, {VOLUME_ARG}},
	[CTL_CHECKSERVERS] = {"checkservers",
			      0,
			      {{"timeout_ms", A_U32, false}, VOLUME_ARG}},
	[CTL_STATUS] = {"status", 0, {VOLUME_ARG}},
	[CTL_DISCONNECT] = {"disconnect", CTL_TF_ROOT, {VOLUME_ARG}},
	[CTL_RECONNECT] = {"reconnect",
			   CTL_TF_ROOT | CTL_TF_LONG,
			   {VOLUME_ARG}},
	[CTL_SETPOLICY] = {"setpolicy",
			   CTL_TF_ROOT | CTL_TF_LONG,
			   {{"name", A_STR, true},
			    {"value", A_STR, true},
			    VOLUME_ARG}},
	[CTL_CONFLICTS] = {"conflicts", 0, {OPT_PATH_ARG, VOLUME_ARG}},
	[CTL_RESOLVE] = {"resolve",
			 CTL_TF_PATH,
			 {PATH_ARG, {"how", A_STR, true}}},
	[CTL_REPLAYLOG] = {"replaylog",
			   0,
			   {{"limit", A_U32, false}, VOLUME_ARG}},
	[CTL_FLUSHALL] = {"flushall",
			  CTL_TF_ROOT | CTL_TF_LONG,
			  {VOLUME_ARG}},
	[CTL_METRICS] = {"metrics", 0, {VOLUME_ARG}},
	[CTL_SYNC] = {"sync", CTL_TF_LONG, {OPT_PATH_ARG, VOLUME_ARG}},
	[CTL_MKMOUNT] = {"mkmount",
			 CTL_TF_PATH,
			 {PATH_ARG, {"target", A_STR, true}}},
	[CTL_LSMOUNT] = {"lsmount", CTL_TF_PATH, {PATH_ARG}},
	[CTL_RMMOUNT] = {"rmmount", CTL_TF_PATH, {PATH_ARG}},
};

const char *
ctl_type_name(unsigned type)
{
	switch (type) {
	case CTL_OK:
		return "ok";
	case CTL_ERROR:
		return "error";
	case CTL_PROGRESS:
		return "progress";
	default:
		if (type >= 1 && type <= CTL_REQ_MAX)
			return req_types[type].name;
		return NULL;
	}
}

enum ctl_type
ctl_type_parse(const char *name)
{
	unsigned t;

	if (!name)
		return CTL_NONE;
	for (t = 1; t <= CTL_REQ_MAX; t++)
		if (req_types[t].name && !strcmp(req_types[t].name, name))
			return (enum ctl_type)t;
	return CTL_NONE;
}

unsigned
ctl_type_flags(unsigned type)
{
	if (type >= 1 && type <= CTL_REQ_MAX)
		return req_types[type].flags;
	return 0;
}

int
ctl_type_known(unsigned type)
{
	return ctl_type_name(type) != NULL;
}

static void
put16(uint8_t *p, uint16_t v)
{
	v = htons(v);
	memcpy(p, &v, 2);
}

static void
put32(uint8_t *p, uint32_t v)
{
	v = htonl(v);
	memcpy(p, &v, 4);
}

static uint16_t
get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return ntohs(v);
}

static uint32_t
get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return ntohl(v);
}

void
ctl_hdr_encode(const struct ctl_hdr *h, uint8_t out[CTL_HDR_SIZE])
{
	put32(out, h->magic);
	put16(out + 4, h->version);
	put16(out + 6, h->type);
	put32(out + 8, h->flags);
	put32(out + 12, h->length);
	put32(out + 16, h->id);
}

int
ctl_hdr_decode(const void *buf, size_t len, struct ctl_hdr *h)
{
	const uint8_t *p = buf;

	if (len < CTL_HDR_SIZE)
		return -EAGAIN;
	h->magic = get32(p);
	if (h->magic != CTL_MAGIC)
		return -EBADMSG;
	h->version = get16(p + 4);
	h->type = get16(p + 6);
	h->flags = get32(p + 8);
	h->length = get32(p + 12);
	h->id = get32(p + 16);
	/* Order matters: a peer of another version may use types or flags we
	 * do not know, and should hear about the version, the real cause. */
	if (h->version != CTL_VERSION)
		return -EPROTONOSUPPORT;
	if (h->length > CTL_PAYLOAD_MAX)
		return -EMSGSIZE;
	if (!ctl_type_known(h->type))
		return -EOPNOTSUPP;
	if (h->flags & ~CTL_FL_MASK)
		return -EINVAL;
	return 0;
}

uint8_t *
ctl_msg_encode(unsigned type, uint32_t flags, uint32_t id,
	       const json_t *payload, size_t *lenp)
{
	struct ctl_hdr h = {CTL_MAGIC, CTL_VERSION, 0, 0, 0, 0};
	char *js = NULL;
	size_t jlen = 0;
	uint8_t *msg;

	if (!ctl_type_known(type) || (flags & ~CTL_FL_MASK) ||
	    (type <= CTL_REQ_MAX && id == 0) ||
	    (payload && !json_is_object(payload))) {
		errno = EINVAL;
		return NULL;
	}
	if (payload) {
		js = json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS);
		if (!js) {
			errno = ENOMEM;
			return NULL;
		}
		jlen = strlen(js);
		if (jlen > CTL_PAYLOAD_MAX) {
			free(js);
			errno = EMSGSIZE;
			return NULL;
		}
	}
	msg = malloc(CTL_HDR_SIZE + jlen + 1);
	if (!msg) {
		free(js);
		errno = ENOMEM;
		return NULL;
	}
	h.type = (uint16_t)type;
	h.flags = flags;
	h.length = (uint32_t)jlen;
	h.id = id;
	ctl_hdr_encode(&h, msg);
	if (jlen)
		memcpy(msg + CTL_HDR_SIZE, js, jlen);
	msg[CTL_HDR_SIZE + jlen] = '\0';
	free(js);
	*lenp = CTL_HDR_SIZE + jlen;
	return msg;
}

int
ctl_payload_decode(const void *buf, size_t len, json_t **out)
{
	json_error_t jerr;
	json_t *j;

	*out = NULL;
	if (len > CTL_PAYLOAD_MAX)
		return -EINVAL;
	if (len == 0) {
		*out = json_object();
		return *out ? 0 : -ENOMEM;
	}
	/* json_loadb() stops at no NUL and rejects one inside the text, and
	 * without JSON_DISABLE_EOF_CHECK it rejects anything after the value.
	 */
	j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j)
		return -EINVAL;
	if (!json_is_object(j)) {
		json_decref(j);
		return -EINVAL;
	}
	*out = j;
	return 0;
}

int
ctl_msg_parse(const void *buf, size_t len, struct ctl_hdr *h, json_t **payload,
	      size_t *consumed)
{
	int rc;

	*payload = NULL;
	*consumed = 0;
	rc = ctl_hdr_decode(buf, len, h);
	if (rc < 0)
		return rc;
	if (len - CTL_HDR_SIZE < h->length)
		return -EAGAIN;
	*consumed = CTL_HDR_SIZE + (size_t)h->length;
	return ctl_payload_decode((const uint8_t *)buf + CTL_HDR_SIZE,
				  h->length, payload);
}

int
ctl_path_check(const char *p)
{
	const char *c, *slash;
	size_t n, total;

	if (!p || !*p)
		return -EINVAL;
	total = strlen(p);
	if (total > CTL_PATH_MAX)
		return -ENAMETOOLONG;
	if (!strcmp(p, "."))
		return 0;
	for (c = p;; c = slash + 1) {
		slash = strchr(c, '/');
		n = slash ? (size_t)(slash - c) : strlen(c);
		if (n == 0)
			return -EINVAL; /* leading, trailing or double '/' */
		if (n > 255)
			return -ENAMETOOLONG;
		if ((n == 1 && c[0] == '.') ||
		    (n == 2 && c[0] == '.' && c[1] == '.'))
			return -EINVAL;
		if (!slash)
			break;
	}
	return 0;
}

static int why_set(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int
why_set(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int
check_one(const struct arg_spec *a, const json_t *v, char *why, size_t whylen)
{
	json_int_t i;
	size_t n;

	switch (a->kind) {
	case A_PATH:
		if (!json_is_string(v))
			return why_set(why, whylen, "'%s' must be a string",
				       a->name);
		if (strlen(json_string_value(v)) != json_string_length(v))
			return why_set(why, whylen, "'%s' contains a NUL byte",
				       a->name);
		if (ctl_path_check(json_string_value(v)) < 0)
			return why_set(
				why, whylen,
				"'%s' must be relative to the mount root "
				"(\".\" for the root), without \".\" or "
				"\"..\" components",
				a->name);
		return 0;
	case A_BOOL:
		if (!json_is_boolean(v))
			return why_set(why, whylen,
				       "'%s' must be true or false", a->name);
		return 0;
	case A_U64:
	case A_U32:
		if (!json_is_integer(v))
			return why_set(why, whylen, "'%s' must be an integer",
				       a->name);
		i = json_integer_value(v);
		if (i < 0 || (a->kind == A_U32 && i > (json_int_t)UINT32_MAX))
			return why_set(why, whylen, "'%s' is out of range",
				       a->name);
		return 0;
	case A_STR:
		if (!json_is_string(v))
			return why_set(why, whylen, "'%s' must be a string",
				       a->name);
		n = json_string_length(v);
		if (n == 0 || n > CTL_STR_MAX ||
		    strlen(json_string_value(v)) != n)
			return why_set(
				why, whylen,
				"'%s' must be 1 to 4096 bytes without NUL",
				a->name);
		return 0;
	case A_END:
		break;
	}
	return why_set(why, whylen, "'%s' has no schema", a->name);
}

int
ctl_args_check(unsigned type, const json_t *args, char *why, size_t whylen)
{
	const struct type_info *ti;
	const struct arg_spec *a;
	const char *key;
	json_t *v;
	int rc;

	if (why && whylen)
		why[0] = '\0';
	if (type < 1 || type > CTL_REQ_MAX)
		return why_set(why, whylen, "%s", "not a request type");
	ti = &req_types[type];
	if (!json_is_object(args))
		return why_set(why, whylen, "%s",
			       "arguments must be an object");
	for (a = ti->args; a < ti->args + ARGS_MAX && a->name; a++) {
		v = json_object_get(args, a->name);
		if (!v) {
			if (a->required)
				return why_set(why, whylen,
					       "missing argument '%s'",
					       a->name);
			continue;
		}
		rc = check_one(a, v, why, whylen);
		if (rc < 0)
			return rc;
	}
	/* json_object_foreach wants a non-const object; we only read it. */
	json_object_foreach ((json_t *)args, key, v) {
		for (a = ti->args; a < ti->args + ARGS_MAX && a->name; a++)
			if (!strcmp(a->name, key))
				break;
		if (a == ti->args + ARGS_MAX || !a->name)
			return why_set(why, whylen, "unknown argument '%.64s'",
				       key);
	}
	return 0;
}

json_t *
ctl_error_new(int err, const char *msg)
{
	const char *name;

	if (err < 0)
		err = -err;
	if (err <= 0 || err > 4095)
		err = EIO;
	name = strerrorname_np(err);
	return json_pack("{s:i, s:s, s:s}", "errno", err, "error",
			 name ? name : "EUNKNOWN", "message",
			 msg && *msg ? msg : strerror(err));
}

int
ctl_error_decode(const json_t *payload, int *err, const char **msg)
{
	json_t *e, *m;
	json_int_t v;

	e = json_object_get(payload, "errno");
	m = json_object_get(payload, "message");
	if (!json_is_integer(e) || !json_is_string(m))
		return -EINVAL;
	v = json_integer_value(e);
	if (v <= 0 || v > 4095)
		return -EINVAL;
	*err = (int)v;
	*msg = json_string_value(m);
	return 0;
}

int
ctl_socket_path(const char *mountpoint, char *buf, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char hex[2 * 8 + 1];
	int n;

	if (!mountpoint || mountpoint[0] != '/')
		return -EINVAL;
	if (!EVP_Digest(mountpoint, strlen(mountpoint), md, &mdlen,
			EVP_sha256(), NULL) ||
	    mdlen < 8)
		return -EIO;
	util_hex_encode(md, 8, hex);
	n = snprintf(buf, len, "%s/ctl-%s.sock", CTL_SOCKET_DIR, hex);
	if (n < 0 || (size_t)n >= len ||
	    (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return -ENAMETOOLONG;
	return 0;
}
