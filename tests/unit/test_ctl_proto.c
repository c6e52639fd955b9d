/*
 * test_ctl_proto.c - unit tests of common/ctl_proto: header and message
 * round trips, streaming parse, every malformed header and payload case,
 * argument schemas, error payloads and the socket name.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/ctl_proto.h"
#include "tests/tap.h"

static void
raw_hdr(uint8_t *b, uint32_t magic, uint16_t ver, uint16_t type, uint32_t flags,
	uint32_t len, uint32_t id)
{
	struct ctl_hdr h = {magic, ver, type, flags, len, id};

	ctl_hdr_encode(&h, b);
}

static void
test_types(void)
{
	unsigned t;
	int names_ok = 1;

	for (t = 1; t <= CTL_REQ_MAX; t++)
		if (!ctl_type_name(t) || ctl_type_parse(ctl_type_name(t)) != t)
			names_ok = 0;
	ok(names_ok, "every request type has a name that parses back");
	is_str(ctl_type_name(CTL_OK), "ok", "OK is named");
	is_str(ctl_type_name(CTL_PROGRESS), "progress", "PROGRESS is named");
	ok(ctl_type_name(0) == NULL && ctl_type_name(CTL_REQ_MAX + 1) == NULL &&
		   ctl_type_name(0x8004) == NULL,
	   "unknown types have no name");
	is_int(ctl_type_parse("ok"), CTL_NONE, "replies are not parsed");
	is_int(ctl_type_parse("PIN"), CTL_NONE, "names are lower-case");
	ok(ctl_type_flags(CTL_SETCACHESIZE) & CTL_TF_ROOT,
	   "setcachesize is root");
	ok((ctl_type_flags(CTL_FLUSHALL) & CTL_TF_ROOT) &&
		   (ctl_type_flags(CTL_DISCONNECT) & CTL_TF_ROOT) &&
		   (ctl_type_flags(CTL_RECONNECT) & CTL_TF_ROOT) &&
		   (ctl_type_flags(CTL_SETPOLICY) & CTL_TF_ROOT) &&
		   (ctl_type_flags(CTL_FLUSHVOLUME) & CTL_TF_ROOT),
	   "cache-wide operations are root-only");
	ok(!(ctl_type_flags(CTL_PIN) & CTL_TF_ROOT) &&
		   !(ctl_type_flags(CTL_FLUSH) & CTL_TF_ROOT) &&
		   !(ctl_type_flags(CTL_GETCACHEPARMS) & CTL_TF_ROOT),
	   "pin, flush, getcacheparms are for everyone");
	ok((ctl_type_flags(CTL_PIN) & CTL_TF_PATH) &&
		   (ctl_type_flags(CTL_EXAMINE) & CTL_TF_PATH) &&
		   !(ctl_type_flags(CTL_STATUS) & CTL_TF_PATH),
	   "path flags");
}

static void
test_hdr(void)
{
	struct ctl_hdr h = {CTL_MAGIC,	     CTL_VERSION, CTL_PIN,
			    CTL_FL_PROGRESS, 1234,	  0xdeadbeef},
		       g;
	uint8_t b[CTL_HDR_SIZE];

	ctl_hdr_encode(&h, b);
	ok(b[0] == 'C' && b[1] == 'R' && b[2] == 'N' && b[3] == 'C',
	   "magic reads CRNC on the wire");
	ok(b[4] == 0 && b[5] == 1, "version is big-endian");
	is_int(ctl_hdr_decode(b, sizeof(b), &g), 0, "header decodes");
	ok(g.type == CTL_PIN && g.flags == CTL_FL_PROGRESS &&
		   g.length == 1234 && g.id == 0xdeadbeef,
	   "header round trip");
	is_int(ctl_hdr_decode(b, CTL_HDR_SIZE - 1, &g), -EAGAIN,
	       "short header: need more");
	is_int(ctl_hdr_decode(b, 0, &g), -EAGAIN, "empty: need more");

	raw_hdr(b, 0x47455420, 1, CTL_PIN, 0, 0, 1); /* "GET " */
	is_int(ctl_hdr_decode(b, sizeof(b), &g), -EBADMSG, "bad magic");
	raw_hdr(b, CTL_MAGIC, 2, CTL_PIN, 0, 0, 7);
	is_int(ctl_hdr_decode(b, sizeof(b), &g), -EPROTONOSUPPORT,
	       "version 2 refused");
	is_int(g.id, 7, "id filled even for a bad version");
	raw_hdr(b, CTL_MAGIC, 0, CTL_PIN, 0, 0, 7);
	is_int(ctl_hdr_decode(b, sizeof(b), &g), -EPROTONOSUPPORT,
	       "version 0 refused");
	raw_hdr(b, CTL_MAGIC, 2, 999, 0xff, 0, 7);
	is_int(ctl_hdr_decode(b, sizeof(b), &g), -EPROTONOSUPPORT,
	       "bad version reported before bad type and flags");
	raw_hdr(b, CTL_MAGIC, 1, CTL_PIN, 0, CTL_PAYLOAD_MAX + 1, 1);
	is_int(ctl_hdr_decode(b, sizeof(b), &g), -EMSGSIZE,
	       "1 MiB + 1 refused");
	raw_hdr(b, CTL_MAGIC, 1, CTL_PIN, 0, 0xffffffffu, 1);
	is_int(ctl_hdr_decode(b, sizeof(b), &g), -EMSGSIZE, "4 GiB refused");
	raw_hdr(b, CTL_MAGIC, 1, CTL_PIN, 0, CTL_PAYLOAD_MAX, 1);
	is_int(ctl_hdr_decode(b, sizeof(b), &g), 0, "exactly 1 MiB accepted");
	raw_hdr(b, CTL_MAGIC, 1, 0, 0, 0, 1);
	is_int(ctl_hdr_decode(b, sizeof(b), &g), -EOPNOTSUPP, "type 0");
	raw_hdr(b, CTL_MAGIC, 1, CTL_REQ_MAX + 1, 0, 0, 1);
	is_int(ctl_hdr_decode(b, sizeof(b), &g), -EOPNOTSUPP,
	       "type after the last request");
	raw_hdr(b, CTL_MAGIC, 1, 0x8004, 0, 0, 1);
	is_int(ctl_hdr_decode(b, sizeof(b), &g), -EOPNOTSUPP,
	       "unknown reply type");
	raw_hdr(b, CTL_MAGIC, 1, 0xffff, 0, 0, 1);
	is_int(ctl_hdr_decode(b, sizeof(b), &g), -EOPNOTSUPP, "type 0xffff");
	raw_hdr(b, CTL_MAGIC, 1, CTL_PIN, 0x2, 0, 1);
	is_int(ctl_hdr_decode(b, sizeof(b), &g), -EINVAL, "undefined flag bit");
	raw_hdr(b, CTL_MAGIC, 1, CTL_PIN, 0x80000000u, 0, 1);
	is_int(ctl_hdr_decode(b, sizeof(b), &g), -EINVAL, "high flag bit");
}

static void
test_msg(void)
{
	json_t *p = json_pack("{s:s, s:b}", "path", "a/b", "recursive", 1);
	json_t *out = NULL;
	struct ctl_hdr h;
	uint8_t *m, *two;
	size_t len, used, i;
	int rc, again = 1;

	m = ctl_msg_encode(CTL_PIN, CTL_FL_PROGRESS, 42, p, &len);
	ok(m != NULL, "pin message encodes");
	ok(len > CTL_HDR_SIZE, "it has a payload");
	ok(!memcmp(m + CTL_HDR_SIZE, "{\"path\":\"a/b\",\"recursive\":true}",
		   len - CTL_HDR_SIZE),
	   "payload is compact JSON with sorted keys");
	rc = ctl_msg_parse(m, len, &h, &out, &used);
	is_int(rc, 0, "message parses");
	is_int(used, len, "whole message consumed");
	ok(h.type == CTL_PIN && h.id == 42 && h.flags == CTL_FL_PROGRESS,
	   "header fields survive");
	ok(out && json_equal(out, p), "payload survives");
	json_decref(out);
	for (i = 0; i < len; i++) {
		if (ctl_msg_parse(m, i, &h, &out, &used) != -EAGAIN || out)
			again = 0;
	}
	ok(again, "every prefix of a message asks for more bytes");

	/* Two messages back to back: parse takes the first only. */
	two = malloc(2 * len);
	memcpy(two, m, len);
	memcpy(two + len, m, len);
	rc = ctl_msg_parse(two, 2 * len, &h, &out, &used);
	ok(rc == 0 && used == len, "pipelined: first message alone");
	json_decref(out);
	free(two);
	free(m);

	m = ctl_msg_encode(CTL_STATUS, 0, 1, NULL, &len);
	is_int(len, CTL_HDR_SIZE, "no payload: header only");
	rc = ctl_msg_parse(m, len, &h, &out, &used);
	ok(rc == 0 && json_is_object(out) && json_object_size(out) == 0,
	   "empty payload decodes as {}");
	json_decref(out);
	free(m);

	errno = 0;
	ok(!ctl_msg_encode(CTL_PIN, 0, 0, p, &len) && errno == EINVAL,
	   "request id 0 refused");
	m = ctl_msg_encode(CTL_ERROR, 0, 0, NULL, &len);
	ok(m != NULL, "reply id 0 allowed (connection errors)");
	free(m);
	errno = 0;
	ok(!ctl_msg_encode(77, 0, 1, NULL, &len) && errno == EINVAL,
	   "unknown type refused");
	errno = 0;
	ok(!ctl_msg_encode(CTL_PIN, 4, 1, NULL, &len) && errno == EINVAL,
	   "undefined flag refused");
	json_decref(p);
	p = json_array();
	errno = 0;
	ok(!ctl_msg_encode(CTL_OK, 0, 1, p, &len) && errno == EINVAL,
	   "array payload refused");
	json_decref(p);
	{
		char *big = malloc(CTL_PAYLOAD_MAX + 1);

		memset(big, 'x', CTL_PAYLOAD_MAX);
		big[CTL_PAYLOAD_MAX] = '\0';
		p = json_pack("{s:s}", "s", big);
		errno = 0;
		ok(!ctl_msg_encode(CTL_OK, 0, 1, p, &len) && errno == EMSGSIZE,
		   "payload over 1 MiB refused");
		json_decref(p);
		free(big);
	}
}

static int
payload_rc(const char *s, size_t len)
{
	json_t *j = NULL;
	int rc = ctl_payload_decode(s, len, &j);

	if (rc == 0)
		json_decref(j);
	else if (j)
		rc = -999; /* *out must stay NULL on error */
	return rc;
}

#define PL(s) payload_rc((s), sizeof(s) - 1)

static void
test_payload(void)
{
	char *deep;
	size_t i;

	is_int(PL("{}"), 0, "{} ok");
	is_int(PL(" \n{\"a\":1}\t\n"), 0, "white space around ok");
	is_int(PL("[]"), -EINVAL, "array refused");
	is_int(PL("\"str\""), -EINVAL, "string refused");
	is_int(PL("42"), -EINVAL, "number refused");
	is_int(PL("null"), -EINVAL, "null refused");
	is_int(PL("{"), -EINVAL, "truncated object");
	is_int(PL("{\"a\":"), -EINVAL, "truncated member");
	is_int(PL("{\"a\":\"b"), -EINVAL, "truncated string");
	is_int(PL("{}x"), -EINVAL, "trailing garbage");
	is_int(PL("{}{}"), -EINVAL, "two objects");
	is_int(PL("{\"a\":1,\"a\":2}"), -EINVAL, "duplicate key");
	is_int(PL("{\"a\":\"x\0y\"}"), -EINVAL, "raw NUL inside a string");
	is_int(PL("{}\0"), -EINVAL, "NUL after the object");
	is_int(PL("{\"a\":\"\\u0000\"}"), -EINVAL, "escaped NUL");
	is_int(PL("{\"a\":\"\xff\xfe\"}"), -EINVAL, "invalid UTF-8");
	is_int(PL("{\"a\":\"\xc0\xaf\"}"), -EINVAL, "overlong UTF-8");
	is_int(PL("\xef\xbb\xbf{}"), -EINVAL, "byte-order mark");
	is_int(PL("{'a':1}"), -EINVAL, "single quotes");
	is_int(payload_rc("", 0), 0, "empty payload is {}");
	is_int(payload_rc("{}", CTL_PAYLOAD_MAX + 1), -EINVAL,
	       "over-long length refused before parsing");
	deep = malloc(200001);
	for (i = 0; i < 100000; i++)
		deep[i] = '[';
	for (; i < 200000; i++)
		deep[i] = ']';
	deep[i] = '\0';
	deep[0] = '{';
	is_int(payload_rc(deep, 200000), -EINVAL,
	       "100000-deep nesting refused without a crash");
	free(deep);
}

static int
args_rc(unsigned type, const char *js)
{
	json_t *j = json_loads(js, 0, NULL);
	char why[256];
	int rc;

	if (!j)
		return -999;
	rc = ctl_args_check(type, j, why, sizeof(why));
	if (rc < 0 && !why[0])
		rc = -998; /* a refusal must say why */
	json_decref(j);
	return rc;
}

static void
test_args(void)
{
	char why[256], name[300], *longp;
	json_t *j;
	size_t i;

	is_int(args_rc(CTL_PIN, "{\"path\":\"a/b\"}"), 0, "pin a/b");
	is_int(args_rc(CTL_PIN, "{\"path\":\".\",\"recursive\":true}"), 0,
	       "pin -r of the root");
	is_int(args_rc(CTL_PIN, "{}"), -EINVAL, "pin without path");
	is_int(args_rc(CTL_PIN, "{\"path\":7}"), -EINVAL, "path a number");
	is_int(args_rc(CTL_PIN, "{\"path\":\"/etc/passwd\"}"), -EINVAL,
	       "absolute path");
	is_int(args_rc(CTL_PIN, "{\"path\":\"a/../../etc\"}"), -EINVAL,
	       "dot-dot");
	is_int(args_rc(CTL_PIN, "{\"path\":\"..\"}"), -EINVAL, "bare dot-dot");
	is_int(args_rc(CTL_PIN, "{\"path\":\"a/./b\"}"), -EINVAL, "dot inside");
	is_int(args_rc(CTL_PIN, "{\"path\":\"a//b\"}"), -EINVAL,
	       "double slash");
	is_int(args_rc(CTL_PIN, "{\"path\":\"a/\"}"), -EINVAL,
	       "trailing slash");
	is_int(args_rc(CTL_PIN, "{\"path\":\"\"}"), -EINVAL, "empty path");
	is_int(args_rc(CTL_PIN, "{\"path\":\"a\",\"recursive\":\"yes\"}"),
	       -EINVAL, "recursive not a boolean");
	is_int(args_rc(CTL_PIN, "{\"path\":\"a\",\"force\":true}"), -EINVAL,
	       "unknown argument");
	j = json_pack("{s:s}", "path", "a");
	json_object_set_new(j, "bogus", json_true());
	ctl_args_check(CTL_PIN, j, why, sizeof(why));
	ok(strstr(why, "bogus") != NULL, "the reason names the argument");
	json_decref(j);
	j = json_object();
	json_object_set_new(j, "path", json_stringn("a\0b", 3));
	is_int(ctl_args_check(CTL_PIN, j, NULL, 0), -EINVAL, "NUL inside path");
	json_decref(j);
	memset(name, 'n', 256);
	name[256] = '\0';
	j = json_pack("{s:s}", "path", name);
	is_int(ctl_args_check(CTL_EXAMINE, j, NULL, 0), -EINVAL,
	       "256-byte component");
	json_decref(j);
	is_int(ctl_path_check(name), -ENAMETOOLONG, "component too long");
	name[255] = '\0';
	is_int(ctl_path_check(name), 0, "255-byte component ok");
	longp = malloc(CTL_PATH_MAX + 2);
	for (i = 0; i < CTL_PATH_MAX + 1; i++)
		longp[i] = i % 2 ? '/' : 'a';
	longp[CTL_PATH_MAX + 1] = '\0';
	is_int(ctl_path_check(longp), -ENAMETOOLONG, "path over 4096 bytes");
	free(longp);
	is_int(ctl_path_check(NULL), -EINVAL, "NULL path");
	is_int(ctl_path_check("..a/b..c/.d"), 0, "dots inside names are fine");

	is_int(args_rc(CTL_GETCACHEPARMS, "{}"), 0, "getcacheparms {}");
	is_int(args_rc(CTL_GETCACHEPARMS, "{\"x\":1}"), -EINVAL,
	       "getcacheparms with an argument");
	/* A namespace: requests without a path may name their volume. */
	is_int(args_rc(CTL_STATUS, "{\"volume\":\"proj\"}"), 0,
	       "status with a volume");
	is_int(args_rc(CTL_DISCONNECT, "{\"volume\":\"proj\"}"), 0,
	       "disconnect with a volume");
	is_int(args_rc(CTL_GETCACHEPARMS, "{\"volume\":\"proj\"}"), 0,
	       "getcacheparms with a volume");
	is_int(args_rc(CTL_STATUS, "{\"volume\":\"\"}"), -EINVAL,
	       "an empty volume");
	is_int(args_rc(CTL_STATUS, "{\"volume\":7}"), -EINVAL,
	       "a volume that is not a string");
	is_int(args_rc(CTL_FLUSH, "{\"path\":\"a\",\"volume\":\"x\"}"),
	       -EINVAL, "a path request takes no volume (its path names it)");
	is_int(args_rc(CTL_METRICS, "{}"), 0, "metrics {}");
	is_int(args_rc(CTL_METRICS, "{\"format\":\"json\"}"), -EINVAL,
	       "metrics takes no argument");
	is_int(ctl_type_parse("metrics"), CTL_METRICS, "metrics by name");
	ok(!(ctl_type_flags(CTL_METRICS) & (CTL_TF_ROOT | CTL_TF_PATH)),
	   "metrics: for everyone, no path");
	is_int(args_rc(CTL_SETCACHESIZE, "{\"bytes\":1073741824}"), 0,
	       "setcachesize 1 GiB");
	is_int(args_rc(CTL_SETCACHESIZE, "{}"), -EINVAL,
	       "setcachesize no bytes");
	is_int(args_rc(CTL_SETCACHESIZE, "{\"bytes\":-1}"), -EINVAL,
	       "negative size");
	is_int(args_rc(CTL_SETCACHESIZE, "{\"bytes\":1.5}"), -EINVAL,
	       "fractional size");
	is_int(args_rc(CTL_SETCACHESIZE, "{\"bytes\":\"1G\"}"), -EINVAL,
	       "size as a string");
	is_int(args_rc(CTL_CHECKSERVERS, "{\"timeout_ms\":4294967296}"),
	       -EINVAL, "u32 overflow");
	is_int(args_rc(CTL_CHECKSERVERS, "{\"timeout_ms\":4294967295}"), 0,
	       "u32 max");
	is_int(args_rc(CTL_SETPOLICY, "{\"name\":\"\",\"value\":\"x\"}"),
	       -EINVAL, "empty policy name");
	is_int(args_rc(CTL_SETPOLICY, "{\"name\":\"n\",\"value\":\"v\"}"), 0,
	       "setpolicy");
	is_int(args_rc(CTL_RESOLVE, "{\"path\":\"f\"}"), -EINVAL,
	       "resolve without how");
	is_int(args_rc(CTL_SYNC, "{}"), 0, "sync without path");
	is_int(args_rc(CTL_SYNC, "{\"path\":\"d/f\"}"), 0, "sync with path");
	is_int(args_rc(CTL_SYNC, "{\"path\":\"/d\"}"), -EINVAL,
	       "sync with an absolute path");
	is_int(args_rc(CTL_SYNC, "{\"path\":1}"), -EINVAL,
	       "sync with a number for a path");
	is_int(args_rc(CTL_SYNC, "{\"all\":true}"), -EINVAL,
	       "sync with an unknown member");
	ok(ctl_type_flags(CTL_SYNC) == CTL_TF_LONG,
	   "sync: anyone, may run long, path optional");
	is_int(args_rc(CTL_MKMOUNT,
		       "{\"path\":\"d/proj\",\"target\":\"proj\"}"),
	       0, "mkmount");
	is_int(args_rc(CTL_MKMOUNT, "{\"path\":\"d/proj\"}"), -EINVAL,
	       "mkmount without a target");
	is_int(args_rc(CTL_MKMOUNT, "{\"target\":\"proj\"}"), -EINVAL,
	       "mkmount without a path");
	is_int(args_rc(CTL_MKMOUNT, "{\"path\":\"p\",\"target\":\"\"}"),
	       -EINVAL, "mkmount with an empty target");
	is_int(args_rc(CTL_MKMOUNT, "{\"path\":\"p\",\"target\":7}"), -EINVAL,
	       "mkmount with a number for a target");
	is_int(args_rc(CTL_MKMOUNT, "{\"path\":\"../p\",\"target\":\"v\"}"),
	       -EINVAL, "mkmount with '..' in the path");
	is_int(args_rc(CTL_LSMOUNT, "{\"path\":\"d/proj\"}"), 0, "lsmount");
	is_int(args_rc(CTL_LSMOUNT, "{}"), -EINVAL, "lsmount without a path");
	is_int(args_rc(CTL_RMMOUNT, "{\"path\":\"d/proj\"}"), 0, "rmmount");
	is_int(args_rc(CTL_RMMOUNT, "{\"path\":\"p\",\"recursive\":true}"),
	       -EINVAL, "rmmount -r is not a thing");
	ok(ctl_type_flags(CTL_MKMOUNT) == CTL_TF_PATH &&
		   ctl_type_flags(CTL_LSMOUNT) == CTL_TF_PATH &&
		   ctl_type_flags(CTL_RMMOUNT) == CTL_TF_PATH,
	   "mount-point requests: anyone, a path each");
	is_str(ctl_type_name(CTL_MKMOUNT), "mkmount", "type 23 is mkmount");
	is_int(args_rc(CTL_PINS, "{}"), 0, "pins without path");
	is_int(args_rc(CTL_PINS, "{\"path\":\"d\"}"), 0, "pins with path");
	j = json_array();
	is_int(ctl_args_check(CTL_PIN, j, NULL, 0), -EINVAL, "args an array");
	json_decref(j);
	j = json_object();
	is_int(ctl_args_check(CTL_OK, j, NULL, 0), -EINVAL, "reply type");
	json_decref(j);
}

static void
test_error(void)
{
	json_t *e = ctl_error_new(-ENOENT, "no such pin"), *bad;
	const char *msg;
	int err;

	ok(e != NULL, "error payload built");
	is_str(json_string_value(json_object_get(e, "error")), "ENOENT",
	       "symbolic name");
	is_int(ctl_error_decode(e, &err, &msg), 0, "error decodes");
	is_int(err, ENOENT, "errno positive");
	is_str(msg, "no such pin", "message kept");
	json_decref(e);
	e = ctl_error_new(EACCES, NULL);
	ctl_error_decode(e, &err, &msg);
	is_str(msg, strerror(EACCES), "NULL message = strerror");
	json_decref(e);
	e = ctl_error_new(0, NULL);
	ctl_error_decode(e, &err, &msg);
	is_int(err, EIO, "errno 0 becomes EIO");
	json_decref(e);

	bad = json_pack("{s:s, s:s}", "errno", "ENOENT", "message", "m");
	is_int(ctl_error_decode(bad, &err, &msg), -EINVAL, "errno a string");
	json_decref(bad);
	bad = json_pack("{s:i, s:s}", "errno", 0, "message", "m");
	is_int(ctl_error_decode(bad, &err, &msg), -EINVAL, "errno 0");
	json_decref(bad);
	bad = json_pack("{s:i, s:s}", "errno", 5000, "message", "m");
	is_int(ctl_error_decode(bad, &err, &msg), -EINVAL, "errno 5000");
	json_decref(bad);
	bad = json_pack("{s:i}", "errno", 2);
	is_int(ctl_error_decode(bad, &err, &msg), -EINVAL, "no message");
	json_decref(bad);
}

static void
test_socket_path(void)
{
	char a[108], b[108];

	is_int(ctl_socket_path("/mnt/x", a, sizeof(a)), 0, "socket path");
	is_str(a, CTL_SOCKET_DIR "/ctl-c10865fc00f31eff.sock",
	       "first 16 hex of SHA-256(\"/mnt/x\")");
	ctl_socket_path("/mnt/vol", b, sizeof(b));
	is_str(b, CTL_SOCKET_DIR "/ctl-9bbffa0eba37045f.sock",
	       "another mount, another socket");
	is_int(ctl_socket_path("mnt/x", a, sizeof(a)), -EINVAL,
	       "relative mountpoint refused");
	is_int(ctl_socket_path(NULL, a, sizeof(a)), -EINVAL, "NULL refused");
	is_int(ctl_socket_path("/mnt/x", a, 20), -ENAMETOOLONG,
	       "small buffer refused");
}

int
main(void)
{
	test_types();
	test_hdr();
	test_msg();
	test_payload();
	test_args();
	test_error();
	test_socket_path();
	return done_testing();
}
