/*
 * ctl_proto.h - the control-socket protocol between fs(1) and cairnd:
 * framing, message types, argument schemas, the socket's location.
 *
 * Layer rule: this is everything fs knows about cairnd. It does no I/O
 * except ctl_socket_path() (none at all, in fact: it only hashes a string);
 * the server side lives in cm/ctl.c, the client side in admin/fs.c.
 * doc/control.md is the normative text; this header and that page change
 * together.
 *
 * Invariants, before any prototype:
 *  - A message is a fixed CTL_HDR_SIZE-byte header in network byte order
 *    followed by exactly hdr.length bytes of payload, hdr.length at most
 *    CTL_PAYLOAD_MAX. The payload is empty or one UTF-8 JSON object.
 *  - Decoders take untrusted bytes: they never read past @len, never abort,
 *    and say what was wrong with a negative errno (table at ctl_msg_parse()).
 *  - Request ids are chosen by the client and never 0; every reply and
 *    progress message echoes its request's id. Id 0 marks an error about the
 *    connection itself (bad framing), after which the server closes.
 *  - Paths in requests are relative to the mount root: components joined by
 *    single '/', no leading or trailing '/', no "." or ".." component, no
 *    NUL; the mount root itself is ".". ctl_path_check() is the definition.
 *
 * Every function is thread-safe (no shared state).
 */
#ifndef CAIRN_CTL_PROTO_H
#define CAIRN_CTL_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define CTL_MAGIC	0x43524e43u /* "CRNC" */
#define CTL_VERSION	1
#define CTL_HDR_SIZE	20
#define CTL_PAYLOAD_MAX (1u << 20) /* 1 MiB, either direction */
#define CTL_PATH_MAX	4096	   /* bytes in a request's "path" */
#define CTL_STR_MAX	4096	   /* bytes in any other string argument */

/* Where cairnd listens unless told otherwise (--ctl-socket). */
#define CTL_SOCKET_DIR "/run/cairn"

/* Header flags. Bits not defined here must be 0 (else -EINVAL). */
#define CTL_FL_PROGRESS 0x1u /* request: send PROGRESS messages */
#define CTL_FL_MASK	0x1u

/*
 * Message types. Requests are 1..CTL_REQ_MAX; replies have the high bit set.
 * Numbers are part of the wire format: append, never renumber.
 */
enum ctl_type {
	CTL_NONE = 0,
	CTL_PIN = 1,	     /* path, recursive */
	CTL_UNPIN = 2,	     /* path, recursive */
	CTL_PINS = 3,	     /* [path] */
	CTL_FLUSH = 4,	     /* path */
	CTL_FLUSHVOLUME = 5, /* root */
	CTL_FLUSHMETA = 6,   /* path */
	CTL_GETCACHEPARMS = 7,
	CTL_SETCACHESIZE = 8, /* root: bytes */
	CTL_EXAMINE = 9,      /* path */
	CTL_WHEREIS = 10,     /* path */
	CTL_LISTVOL = 11,
	CTL_CHECKSERVERS = 12,
	CTL_STATUS = 13,
	CTL_DISCONNECT = 14, /* root */
	CTL_RECONNECT = 15,  /* root */
	CTL_SETPOLICY = 16,  /* root: name, value */
	CTL_CONFLICTS = 17,  /* [path] */
	CTL_RESOLVE = 18,    /* path, how */
	CTL_REPLAYLOG = 19,  /* [limit] */
	CTL_FLUSHALL = 20,   /* root */
	CTL_METRICS = 21,    /* the counters, Prometheus text */
	CTL_SYNC = 22,	     /* [path]: wait until the server has it */
	CTL_MKMOUNT = 23,    /* path (not followed), volume */
	CTL_LSMOUNT = 24,    /* path (not followed) */
	CTL_RMMOUNT = 25,    /* path (not followed) */
	CTL_REQ_MAX = 25,

	CTL_REPLY = 0x8000,
	CTL_OK = 0x8001,       /* final: the result object */
	CTL_ERROR = 0x8002,    /* final: {errno, error, message, ...} */
	CTL_PROGRESS = 0x8003, /* not final: a progress object */
};

/* Properties of a request type (ctl_type_flags()). */
#define CTL_TF_ROOT 0x1u /* cache-wide: only uid 0 may ask */
#define CTL_TF_PATH 0x2u /* carries a required mount-relative "path" */
#define CTL_TF_LONG 0x4u /* may run long and send PROGRESS */

struct ctl_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint32_t flags;
	uint32_t length; /* payload bytes */
	uint32_t id;
};

/* Lower-case name of a type ("pin", "ok", ...), NULL if unknown. */
const char *ctl_type_name(unsigned type);

/* The request type called @name, or CTL_NONE. Replies are not parsed. */
enum ctl_type ctl_type_parse(const char *name);

/* CTL_TF_* bits of request @type; 0 for replies and unknown types. */
unsigned ctl_type_flags(unsigned type);

/* 1 if @type is a request or reply this version knows, else 0. */
int ctl_type_known(unsigned type);

/* Write @h into @out (CTL_HDR_SIZE bytes), network byte order. */
void ctl_hdr_encode(const struct ctl_hdr *h, uint8_t out[CTL_HDR_SIZE]);

/*
 * Decode and check a header. @return 0, or:
 *   -EAGAIN           @len < CTL_HDR_SIZE (need more bytes)
 *   -EBADMSG          wrong magic: not our protocol
 *   -EPROTONOSUPPORT  version is not CTL_VERSION (*h is filled anyway)
 *   -EMSGSIZE         length above CTL_PAYLOAD_MAX (*h filled)
 *   -EOPNOTSUPP       unknown type (*h filled)
 *   -EINVAL           undefined flag bits set (*h filled)
 * *h is filled whenever the magic matched, so a server can echo h->id.
 */
int ctl_hdr_decode(const void *buf, size_t len, struct ctl_hdr *h);

/*
 * Encode one message: header + compact JSON of @payload (keys sorted; NULL
 * means an empty payload). @return a heap buffer the caller frees with
 * free(), its size in *lenp; NULL + errno: ENOMEM, EMSGSIZE (payload above
 * CTL_PAYLOAD_MAX), EINVAL (@payload not an object, unknown @type, flag
 * bits undefined, or id 0 on a request).
 */
uint8_t *ctl_msg_encode(unsigned type, uint32_t flags, uint32_t id,
			const json_t *payload, size_t *lenp);

/*
 * Decode a payload: empty means {}; otherwise one JSON object, UTF-8, no
 * duplicate keys, nothing after it but white space. @return 0 and a new
 * reference in *out (caller json_decref()s), or -EINVAL (*out NULL).
 */
int ctl_payload_decode(const void *buf, size_t len, json_t **out);

/*
 * Parse the first message of a byte stream @buf/@len. @return 0 with *h,
 * *payload (new reference) and *consumed (bytes to drop) set, -EAGAIN when
 * more bytes are needed, or an error from ctl_hdr_decode() or
 * ctl_payload_decode(). On -EINVAL from the payload, *h and *consumed are
 * set, so the stream stays in step and the caller may answer h->id.
 */
int ctl_msg_parse(const void *buf, size_t len, struct ctl_hdr *h,
		  json_t **payload, size_t *consumed);

/*
 * Check the arguments of request @type against its schema (doc/control.md):
 * required members present, each of the right JSON type and range, no
 * unknown member, "path" valid per ctl_path_check(). @return 0, or -EINVAL
 * with a one-line reason in @why (may be NULL).
 */
int ctl_args_check(unsigned type, const json_t *args, char *why, size_t whylen);

/* 0 if @p is a valid mount-relative path (see the invariants), else
 * -EINVAL (-ENAMETOOLONG above CTL_PATH_MAX or a component above 255). */
int ctl_path_check(const char *p);

/*
 * Build an ERROR payload {"errno": N, "error": "ENOENT", "message": MSG}
 * (@msg NULL = strerror). @err may be given positive or negative.
 * @return a new reference, NULL on ENOMEM.
 */
json_t *ctl_error_new(int err, const char *msg);

/*
 * Read an ERROR payload. @return 0 with *err (positive, 1..4095) and *msg
 * (borrowed from @payload; never NULL), or -EINVAL if it is malformed.
 */
int ctl_error_decode(const json_t *payload, int *err, const char **msg);

/*
 * The default control socket of the mount at @mountpoint (an absolute,
 * canonical path): CTL_SOCKET_DIR "/ctl-" + the first 16 hex digits of
 * SHA-256(@mountpoint) + ".sock". Used by cairnd to listen and by fs to
 * connect, so both must see the same mountpoint string.
 * @return 0, -EINVAL (@mountpoint not absolute), -ENAMETOOLONG (@len too
 * small for the path or for a sockaddr_un).
 */
int ctl_socket_path(const char *mountpoint, char *buf, size_t len);

#endif /* CAIRN_CTL_PROTO_H */
