/*
 * proto.h - the cairn wire protocol, version 2: types, encoders, decoders.
 *
 * Layer rule: this header is where vol/ (cairn-vold) and cm/ (cairnd) meet;
 * neither includes the other. It does no I/O: every function turns structs
 * into bytes or bytes into structs. doc/protocol.md is the normative text;
 * this header and that page change together.
 *
 * Decoders take untrusted bytes (a response from the network, a request from
 * a client): they never abort, never read past @len, and return -EINVAL (or
 * -E2BIG for oversized lists) on anything malformed, leaving *out released.
 * Encoders return a NUL-terminated heap buffer the caller frees with free(),
 * and its length in *lenp; NULL + errno=ENOMEM on allocation failure, and
 * NULL + errno=EINVAL (ERANGE for a uint64 above INT64_MAX) for a value the
 * protocol cannot carry: unknown type or kind, mode above 07777, a name
 * that fails proto_name_check(), a string that is not UTF-8.
 *
 * Decoders check everything doc/protocol.md states (types, ranges, names,
 * list limits, base64) and also: required members are present, FIDs that
 * must name an object are not the null FID, a directory reply lists no name
 * twice, a store lists no chunk twice. Unknown members are ignored; JSON
 * with a duplicate key is -EINVAL.
 *
 * All functions are thread-safe (no shared state).
 */
#ifndef CAIRN_PROTO_H
#define CAIRN_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/fid.h"

/* 2: paged directory listings (?limit=, ?cursor=, "next"); a version 1
 * server ignores the query and sends the whole listing without "next".
 * 3: POST /v1/vol/NAME/batch (an older server answers it 404).
 * 4: object types socket, chr, blk and the attribute "rdev"; a client says
 * it knows them with the request header PROTO_HDR_VERSION, and a server
 * shows them to a client that does not as empty regular files
 * (proto_attr_compat()).
 * 5: mount points, the object type "mount" and the op "mkmount"; a server
 * shows a mount point to a client that does not announce 5 as a symlink
 * whose target is "#VOLUME" (proto_attr_compat(), proto_link_compat()).
 * 6: a store may carry its one chunk's bytes inline ("data"); a client
 * sends them only to a server whose volume information says 6.
 * 7: a body of /op or /batch may end in an attachment, after its JSON
 * text and a NUL byte, which stores name with "data_off" and
 * "data_len" instead of base64 "data" (PROTO_V_ATTACH).
 * 8: listing pages in binary for a client that asks ?enc=bin
 * (PROTO_V_DIRB); an older server ignores the parameter. */
#define PROTO_VERSION 8
#define PROTO_VERSION_STR "8" /* the same, for headers */
/* The protocol that added sockets and devices: the version a client must
 * announce to be shown them, and a server must speak to keep them. */
#define PROTO_V_SPECIAL 4
/* The protocol that added mount points (the same two rules). */
#define PROTO_V_MOUNT 5
/* What a client before PROTO_V_MOUNT reads as a mount point's symlink
 * target: this character, then the stored target (as AFS shows one). */
#define PROTO_MOUNT_COMPAT_PREFIX '#'
/* The longest mount-point target: "ALIAS:VOLUME", two volume names. */
#define PROTO_MOUNT_TARGET_MAX (64 + 1 + 64)
/* The protocol that added a small store's bytes inline ("data"): a client
 * sends them only to a server of this version or later. */
#define PROTO_V_INLINE 6
/* The protocol that added the attachment of a request body: a client
 * sends one only to a server of this version or later. */
#define PROTO_V_ATTACH 7
/* proto_op_encode_ex() and proto_batch_encode_ex(): stores' inline bytes
 * in an attachment (PROTO_V_ATTACH), not as base64. */
#define PROTO_ENC_ATTACH 1u
/* The Content-Type of a body with an attachment. */
#define PROTO_ATTACH_TYPE "application/vnd.cairn.ops"
/* The most bytes a store carries inline (one chunk, a small file's). */
#define PROTO_INLINE_MAX 65536
#define PROTO_HDR_VERSION "X-Cairn-Protocol"
/* The largest device number: Linux's dev_t (major < 4096, minor < 2^20)
 * as glibc's makedev() packs it (doc/protocol.md). */
#define PROTO_RDEV_MAX UINT32_MAX
#define PROTO_NAME_MAX 255         /* bytes in one path component */
#define PROTO_PATH_MAX 4096        /* bytes in a symlink target */
#define PROTO_XATTR_NAME_MAX 255
#define PROTO_XATTR_VALUE_MAX 65536
#define PROTO_XATTR_LIST_MAX 65536 /* sum of (name length + 1) per object,
				      as Linux's XATTR_LIST_MAX */
#define PROTO_GETATTR_MAX 1024     /* FIDs in one getattr request */
#define PROTO_BODY_MAX (64u << 20) /* largest JSON body either side accepts */
/*
 * Per-route request bodies: the one table (doc/protocol.md, "Limits").
 * cairn-vold's admission filter refuses a larger Content-Length from the
 * request head, before reading the body, and the decoders refuse a larger
 * body before parsing it; both use these constants, so a body the head
 * admits is never one the decoder refuses for its size.
 * - getattr: PROTO_GETATTR_MAX FIDs of 41 characters, quoted and
 *   separated, are 46,080 bytes; 128 KiB leaves room for any white space.
 * - op: every op but store is under 128 KiB (setxattr's value is at most
 *   87,384 base64 characters; a symlink target and two names escaped as
 *   JSON \u sequences stay under 32 KiB). A store lists at most
 *   PROTO_STORE_CHUNKS_MAX chunk numbers, each at most 19 digits and a
 *   ", " separator (cairnd merges stores up to that many chunks and sends
 *   numbers of at most 15 digits without blanks: 16 bytes each), so 24
 *   bytes a chunk plus 256 KiB covers the largest store any client sends.
 * - batch: what one op may carry, shared by its ops: one store of the
 *   largest size, or up to PROTO_BATCH_MAX small ops (a create, store and
 *   setattr of a new file take under 2 KiB together), so the budget of
 *   admitted bodies means the same for both routes. A batch of more
 *   than PROTO_BATCH_MAX ops is refused with -E2BIG after parsing.
 * - stage: the chunk size given in ?size= (PROTO_CHUNK_MIN..MAX).
 */
#define PROTO_GETATTR_BODY_MAX (128u << 10)
#define PROTO_STORE_CHUNKS_MAX (1u << 20)
#define PROTO_OP_BODY_MAX (PROTO_STORE_CHUNKS_MAX * 24u + (256u << 10))
#define PROTO_BATCH_MAX 256        /* ops in one batch request */
#define PROTO_BATCH_BODY_MAX PROTO_OP_BODY_MAX
#define PROTO_DIR_MAX 1000000      /* entries in one whole listing */
#define PROTO_DIR_PAGE_MAX 4096    /* entries in one page of a listing */
#define PROTO_CURSOR_MAX 64        /* bytes of a page cursor, with the NUL */
#define PROTO_CHUNK_MIN (64u * 1024)
#define PROTO_CHUNK_MAX (4u * 1024 * 1024)

enum proto_type {
	PROTO_T_NONE = 0,
	PROTO_T_FILE,
	PROTO_T_DIR,
	PROTO_T_SYMLINK,
	PROTO_T_FIFO,
	/* PROTO_V_SPECIAL */
	PROTO_T_SOCK,
	PROTO_T_CHR,
	PROTO_T_BLK,
	/* PROTO_V_MOUNT: a mount point; its "target" (the symlink target
	 * field) names a volume, proto_mount_target_check(). */
	PROTO_T_MOUNT,
};
#define PROTO_T_MAX PROTO_T_MOUNT
/* The last type a client before PROTO_V_SPECIAL knows. */
#define PROTO_T_MAX_V2 PROTO_T_FIFO
/* The last type a client before PROTO_V_MOUNT knows. */
#define PROTO_T_MAX_V4 PROTO_T_BLK

/* An object's attributes as the server holds them. Times in ns since the
 * epoch. @mode holds permission bits only (07777); the type is @type. */
struct proto_attr {
	struct fid fid;
	enum proto_type type;
	uint32_t mode;
	uint32_t uid, gid;
	uint64_t size;
	uint64_t nlink;
	uint64_t dv; /* data version: bumped by every content change */
	int64_t atime_ns, mtime_ns, ctime_ns;
	uint32_t rdev; /* CHR and BLK: the device number (makedev()); else 0 */
};

struct proto_dirent {
	char *name; /* heap, NUL-terminated, validated with proto_name_check() */
	struct proto_attr attr;
};

/* GET /v1/vol/NAME/dir/FID: a directory and every entry's attributes. */
struct proto_dir {
	struct proto_attr dir;
	size_t n;
	struct proto_dirent *ents; /* heap array of n */
};

/* GET /v1/vol/NAME: volume information. */
struct proto_volinfo {
	int version;	       /* protocol version the server speaks */
	char name[65];	       /* volume name */
	uint32_t id;	       /* volume id (the vol part of every FID) */
	struct fid root;       /* root directory */
	uint64_t event_seq;    /* last event sequence number */
	uint64_t bytes_used;   /* data bytes in the volume */
	uint64_t bytes_limit;  /* quota, 0 = none */
	uint64_t files_used;   /* objects in the volume */
	uint64_t files_limit;  /* 0 = none */
	bool readonly;	       /* the token used only allows reads */
};

struct proto_xattr {
	char *name;	/* heap, NUL-terminated */
	void *value;	/* heap, @len bytes (decoded from base64) */
	size_t len;
};

enum proto_ev_kind {
	PROTO_EV_DATA = 1, /* content changed: new DV */
	PROTO_EV_ATTR,	   /* attributes or xattrs changed */
	PROTO_EV_DIR,	   /* directory entries changed */
	PROTO_EV_GONE,	   /* object removed (last link gone) */
	PROTO_EV_PING,	   /* heartbeat: no object, carries the current seq */
	PROTO_EV_RESET,	   /* events were lost: revalidate everything */
};

/* One line of the event stream. */
struct proto_event {
	uint64_t seq;
	enum proto_ev_kind kind;
	struct fid fid; /* null for PING and RESET */
	uint64_t dv;
};

/* Mutations: POST /v1/vol/NAME/op. Which fields count depends on @op;
 * doc/protocol.md has the table. Strings are heap, NUL-terminated. */
enum proto_op_kind {
	PROTO_OP_NONE = 0,
	PROTO_OP_CREATE,      /* parent, name, fid (optional), mode, uid, gid, type */
	PROTO_OP_MKDIR,       /* parent, name, fid (optional), mode, uid, gid */
	PROTO_OP_SYMLINK,     /* parent, name, fid (optional), target, uid, gid */
	PROTO_OP_LINK,	      /* parent, name, fid (existing object) */
	PROTO_OP_UNLINK,      /* parent, name, fid (expected) */
	PROTO_OP_RMDIR,	      /* parent, name, fid (expected) */
	PROTO_OP_RENAME,      /* parent, name, fid, newparent, newname, flags, victim */
	PROTO_OP_SETATTR,     /* fid, base_dv, mask + values */
	PROTO_OP_SETXATTR,    /* fid, xname, xvalue, flags */
	PROTO_OP_REMOVEXATTR, /* fid, xname */
	PROTO_OP_STORE,	      /* fid, base_dv, txid, chunk_size, size, chunks */
	/* PROTO_V_MOUNT */
	PROTO_OP_MKMOUNT,     /* parent, name, fid (optional), target, uid, gid */
};
#define PROTO_OP_MAX PROTO_OP_MKMOUNT

/* setattr mask bits */
enum {
	PROTO_SA_MODE = 1,
	PROTO_SA_UID = 2,
	PROTO_SA_GID = 4,
	PROTO_SA_SIZE = 8,
	PROTO_SA_ATIME = 16,
	PROTO_SA_MTIME = 32,
};

/* rename flags (as renameat2) and setxattr flags (as setxattr(2)) */
enum {
	PROTO_RENAME_NOREPLACE = 1,
	PROTO_RENAME_EXCHANGE = 2,
	PROTO_XATTR_CREATE = 1,
	PROTO_XATTR_REPLACE = 2,
};

struct proto_op {
	enum proto_op_kind kind;
	uint8_t opid[16];	/* client-chosen operation id, never reused */
	struct fid parent;
	char *name;
	struct fid fid;		/* object (or chosen FID of a new one; null = server picks) */
	struct fid newparent;
	char *newname;
	struct fid victim;	/* rename: the FID expected at newname, null = none */
	enum proto_type type;	/* create: FILE, FIFO, SOCK, CHR or BLK;
				   mkdir, symlink, mkmount: set by the decoder */
	uint32_t rdev;		/* create of CHR or BLK: the device number */
	uint32_t mode, uid, gid;
	char *target;		/* symlink; mkmount: the volume */
	uint64_t base_dv;	/* setattr, store: DV this change was based on */
	uint32_t mask;		/* setattr: PROTO_SA_* */
	uint64_t size;		/* setattr size, store final size */
	int64_t atime_ns, mtime_ns;
	uint32_t flags;		/* rename / setxattr flags */
	char *xname;
	void *xvalue;
	size_t xlen;
	uint8_t txid[16];	/* store: the staging transaction */
	uint32_t chunk_size;	/* store: chunk size of the staged chunks */
	uint64_t *chunks;	/* store: chunk numbers staged in txid */
	size_t nchunks;
	/* store (PROTO_V_INLINE): the bytes of chunk chunks[0], given in the
	 * request instead of staged (nchunks is then 1; at most
	 * PROTO_INLINE_MAX and chunk_size bytes); NULL: staged */
	void *data;
	size_t dlen;
	/* Local only, never on the wire: the replay log keeps a small
	 * store's bytes (record format 3, doc/replay-log.md) with the
	 * chunk store's version of chunk 0 they were read from (its DV tag,
	 * index slot and generation), so that a restart can tell the
	 * chunk a power cut took back from one written since. */
	uint64_t data_dv;
	uint32_t data_slot, data_gen;
};

/* The reply to a mutation: the objects it touched, after the change. */
struct proto_op_result {
	bool has_attr, has_parent, has_newparent, has_victim;
	struct proto_attr attr;	     /* the object created / changed */
	struct proto_attr parent;    /* the directory changed */
	struct proto_attr newparent; /* rename: the target directory */
	struct proto_attr victim;    /* unlink/rename: what was removed/replaced
					(nlink 0 = gone) */
	uint64_t event_seq;	     /* the last event the op made; the attrs
					above include every event up to it
					(0: not sent, as from older servers) */
};

/* POST /v1/vol/NAME/batch (version 3): ops applied in order in one
 * durable commit, each with its own opid and its own reply. */
struct proto_batch {
	size_t n;
	struct proto_op *ops; /* heap array of n (1..PROTO_BATCH_MAX) */
	bool stop;	      /* "stop_on_error": after the first op that
				 fails, the rest are not applied (424) */
};

/* An error reply body: {"error": "...", "errno": "ENOENT"}. */
struct proto_error {
	int err;	   /* positive errno parsed from "errno", EIO if unknown */
	char msg[256];	   /* the human message, truncated */
	uint64_t cur_dv;   /* 410/412: the server's current DV, if sent */
};

/* --- names, types, errors --- */

/* Check one path component: 1..255 bytes, valid UTF-8, no '/', no NUL,
 * not "." or "..". @return 0, -EINVAL, or -ENAMETOOLONG. */
int proto_name_check(const char *name, size_t len);

const char *proto_type_name(enum proto_type t);	 /* "file", "dir", ... */
/* A type that create makes (FILE, FIFO, SOCK, CHR, BLK). */
bool proto_type_creatable(enum proto_type t);
/* Whether @t carries a device number (CHR, BLK). */
bool proto_type_has_rdev(enum proto_type t);
/*
 * A mount point's target (the op mkmount, a mount point's link): "VOLUME"
 * or "ALIAS:VOLUME", each part passing proto_volname_check() (so no '/',
 * no "..", nothing but [A-Za-z0-9._-], not starting with '.'), at most
 * PROTO_MOUNT_TARGET_MAX bytes. @len is strlen(@t) (a NUL inside is
 * refused). @return 0, -EINVAL, or -ENAMETOOLONG (longer than that).
 */
int proto_mount_target_check(const char *t, size_t len);
/*
 * Length of the UTF-8 sequence at @p (@n bytes available), or 0 if it is
 * not a valid shortest-form encoding of a scalar value (no overlongs, no
 * surrogates, nothing above U+10FFFF). Names and listings share it.
 */
size_t proto_utf8_seq(const unsigned char *p, size_t n);
/*
 * What a client of protocol @version may be shown of @a: below 4 a socket
 * or device is an empty regular file (size 0, rdev 0), since that client's
 * decoder refuses a type it does not know, and with it the whole listing
 * the object is in. The server keeps refusing data operations on it (its
 * own type is unchanged), so such a client reads it as empty and cannot
 * write it. Below 5 a mount point is a symlink (size one more, for the
 * prefix proto_link_compat() adds); the server refuses what it refuses for
 * a mount point (it is not a directory either). Other attributes are left
 * alone.
 */
void proto_attr_compat(struct proto_attr *a, int version);
/* The target a client of protocol @version reads of the object of type
 * @type whose stored target is @target: for a mount point and a client
 * before PROTO_V_MOUNT, a heap string "#" + @target (NULL + ENOMEM), else
 * NULL and errno 0 (use @target as it is). */
char *proto_link_compat(enum proto_type type, const char *target, int version);
/* The protocol version a request header value announces: 2 when @s is
 * NULL or not a plain decimal number from 1 to 1000. */
int proto_version_parse(const char *s);
enum proto_type proto_type_parse(const char *s); /* PROTO_T_NONE if unknown */
const char *proto_op_name(enum proto_op_kind k); /* "create", ... */
enum proto_op_kind proto_op_parse(const char *s);
const char *proto_ev_name(enum proto_ev_kind k);

/* The one table between errno values and HTTP statuses (doc/protocol.md).
 * @err is positive. */
int proto_errno_to_status(int err);
const char *proto_errno_name(int err); /* "ENOENT"; "EIO" for unknown */
int proto_errno_parse(const char *name); /* positive errno, 0 if unknown */
/* For a reply without a usable body: the errno that best fits @status. */
int proto_status_to_errno(int status);

/* --- encoders (server side and client side) --- */

char *proto_volinfo_encode(const struct proto_volinfo *v, size_t *lenp);
/* @errs may be NULL (all ok); entry i with errs[i] != 0 is written as
 * {"fid", "errno"}, using only a[i].fid. */
char *proto_attrs_encode(const struct proto_attr *a, const int *errs,
			 size_t n, size_t *lenp);
char *proto_getattr_req_encode(const struct fid *fids, size_t n, size_t *lenp);
char *proto_dir_encode(const struct proto_dir *d, size_t *lenp);
/*
 * A listing written piece by piece (cairn-vold: a whole listing page by
 * page, never all decoded at once): begin with the directory's attributes
 * (and "next" when @next is not NULL/""), then any number of
 * proto_dir_enc_ents(), then proto_dir_enc_end(), which returns the JSON
 * (heap, NUL-terminated, *lenp bytes) or NULL + errno (EINVAL: a bad name,
 * type or mode; ERANGE; ENOMEM) and releases @b either way. Same output
 * as the jansson encoders give. Zero @b first.
 */
struct proto_sbuf {
	char *p;
	size_t len, cap;
	size_t nents;
	int err;       /* positive errno, the first failure */
	bool reserved; /* proto_dir_enc_reserve() kept the head's room */
};
void proto_dir_enc_begin(struct proto_sbuf *b, const struct proto_attr *dir,
			 const char *next);
void proto_dir_enc_ents(struct proto_sbuf *b, const struct proto_dirent *e,
			size_t n);
/* One entry, its name @len bytes (checked here: EINVAL in @b). */
void proto_dir_enc_ent(struct proto_sbuf *b, const char *name, size_t len,
		       const struct proto_attr *a);
/* The entries written into @ents (zeroed, then only proto_dir_enc_ent():
 * no begin) appended to @b after its begin: a page's entries can be
 * encoded before its "next" is known. @ents is not changed. */
void proto_dir_enc_append(struct proto_sbuf *b, const struct proto_sbuf *ents);
/* A page whose head (it holds "next") is known only after its entries:
 * proto_dir_enc_reserve() on a zeroed @b keeps PROTO_DIR_HEAD_MAX bytes
 * for it, then proto_dir_enc_ent()s, then proto_dir_enc_page_end() writes
 * the head there, moves the entries up to it, and ends as
 * proto_dir_enc_end(). Without the reserve (entries written into @b
 * first) it fails with EINVAL rather than write the head over them. */
#define PROTO_DIR_HEAD_MAX 640
void proto_dir_enc_reserve(struct proto_sbuf *b);
char *proto_dir_enc_page_end(struct proto_sbuf *b, const struct proto_attr *dir,
			     const char *next, size_t *lenp);
char *proto_dir_enc_end(struct proto_sbuf *b, size_t *lenp);
void proto_sbuf_release(struct proto_sbuf *b);
/* Room for @more bytes (and a NUL) past b->len, or ENOMEM in b->err. */
void proto_sbuf_grow(struct proto_sbuf *b, size_t more);
/* A page: as proto_dir_encode() plus "next": @next when not NULL/"". */
char *proto_dir_page_encode(const struct proto_dir *d, const char *next,
			    size_t *lenp);
char *proto_link_encode(const char *target, size_t *lenp);
/*
 * Binary listing pages (protocol 8, PROTO_V_DIRB; doc/protocol.md,
 * "Binary pages"): what a client that asks a page with ?enc=bin gets
 * from a server that knows it (an older one ignores the parameter and
 * sends JSON, which the client tells by the first bytes,
 * proto_dirb_is()). Written as the JSON page is: proto_dirb_reserve() on
 * a zeroed @b keeps the fixed head's room, proto_dirb_ent() for each
 * entry (the name and attributes checked as proto_dir_enc_ent() checks
 * them: EINVAL or ERANGE in @b), then proto_dirb_page_end() writes the
 * head (the directory's attributes, which must be a directory's, the
 * entry count and @next, "" or NULL for none) and returns the page
 * (heap, *lenp bytes) or NULL + errno, releasing @b either way.
 */
#define PROTO_V_DIRB 8
#define PROTO_DIRB_MAGIC "CDP1"	/* no JSON text starts with 'C' */
#define PROTO_DIRB_TYPE "application/vnd.cairn.dirpage" /* Content-Type */
#define PROTO_DIRB_ATTR_LEN 85	/* bytes of an attribute record */
#define PROTO_DIRB_HEAD_LEN (9 + PROTO_CURSOR_MAX - 1 + PROTO_DIRB_ATTR_LEN)
void proto_dirb_reserve(struct proto_sbuf *b);
void proto_dirb_ent(struct proto_sbuf *b, const char *name, size_t len,
		    const struct proto_attr *a);
char *proto_dirb_page_end(struct proto_sbuf *b, const struct proto_attr *dir,
			  const char *next, size_t *lenp);
/* Whether the @len bytes at @buf start as a binary page. */
bool proto_dirb_is(const void *buf, size_t len);
/* The "next" cursor of a binary page into @next (PROTO_CURSOR_MAX bytes,
 * "" on the last page) without decoding the rest. @return 0 or -EINVAL. */
int proto_dirb_peek_next(const void *buf, size_t len, char *next);
/* Decode a binary page of at most @max entries: as
 * proto_dir_page_decode_unchecked() does a JSON page (names are not
 * compared with each other; every other check is made), into *d (zeroed
 * on failure) and @next (NULL: not wanted). @return 0, -EINVAL (not
 * such a page, or anything in it out of bounds or refused, trailing
 * bytes included), -E2BIG (more than @max entries) or -ENOMEM. */
int proto_dirb_decode(const void *buf, size_t len, size_t max,
		      struct proto_dir *d, char *next);

char *proto_xattrs_encode(const struct fid *fid, uint64_t dv,
			  const struct proto_xattr *x, size_t n, size_t *lenp);
char *proto_event_encode(const struct proto_event *e, size_t *lenp); /* one line, ends in '\n' */
char *proto_op_encode(const struct proto_op *op, size_t *lenp);
/* As proto_op_encode(); with PROTO_ENC_ATTACH in @flags a store's inline
 * bytes go into the body's attachment (after the JSON text and a NUL;
 * none when the op has no inline bytes) instead of base64 "data". */
char *proto_op_encode_ex(const struct proto_op *op, unsigned flags,
			 size_t *lenp);
char *proto_op_result_encode(const struct proto_op_result *r, size_t *lenp);
/* @err positive or negative; @msg NULL = strerror(err). "dv" (= @cur_dv)
 * is written exactly when @err maps to 410 or 412. */
char *proto_error_encode(int err, const char *msg, uint64_t cur_dv,
			 size_t *lenp);

/* A batch request of @n ops (1..PROTO_BATCH_MAX: EINVAL for 0, E2BIG
 * beyond), with "stop_on_error" when @stop. Each op is checked as by
 * proto_op_encode(); a body over PROTO_BATCH_BODY_MAX is E2BIG (send
 * fewer ops at once). */
char *proto_batch_encode(const struct proto_op *ops, size_t n, bool stop,
			 size_t *lenp);
/* The same, with @flags as proto_op_encode_ex()'s: the stores' bytes in
 * one attachment, in the order of the ops. */
char *proto_batch_encode_ex(const struct proto_op *ops, size_t n, bool stop,
			    unsigned flags, size_t *lenp);
/* Server side: the batch reply {"results": [{"status": S, "body": B},
 * ...]} from @n statuses (200 or 400..599) and bodies, each body a JSON object
 * of @blen[i] bytes as vs_apply() stores it (spliced in as it is, not
 * parsed again). NULL + EINVAL for a status out of range or a body that
 * is not an object. */
char *proto_batch_reply_encode(const int *status, char *const *body,
			       const size_t *blen, size_t n, size_t *lenp);

/* --- decoders (untrusted input) --- */

/* Every decoder: @buf of @len bytes (no NUL needed, at most PROTO_BODY_MAX)
 * holding one JSON object. @return 0, -EINVAL (malformed, a required member
 * missing or of the wrong type, a value out of range), -E2BIG (a list over
 * its limit), -ENAMETOOLONG where said, or -ENOMEM. On any error the
 * outputs are zeroed / NULL and nothing needs releasing. */

/* "protocol" >= 1, a valid "volume" name, "root" in volume "id". */
int proto_volinfo_decode(const char *buf, size_t len, struct proto_volinfo *v);
/* @attrs and @errs (positive errno per entry, 0 = ok) are heap arrays of
 * *np entries (never NULL on success, even for 0); free both with free().
 * An error entry has only @attrs[i].fid set; an errno name this side does
 * not know reads as EIO. At most PROTO_GETATTR_MAX entries (-E2BIG). */
int proto_attrs_decode(const char *buf, size_t len, struct proto_attr **attrs,
		       int **errs, size_t *np);
/* *fids: heap array of *np non-null FIDs (never NULL on success); free()
 * it. At most PROTO_GETATTR_MAX (-E2BIG). */
int proto_getattr_req_decode(const char *buf, size_t len, struct fid **fids,
			     size_t *np);
/* "dir" must be of type dir; at most 1,000,000 entries (-E2BIG); every
 * name passes proto_name_check() and none appears twice. Release with
 * proto_dir_release(), which zeroes @d and accepts NULL. */
int proto_dir_decode(const char *buf, size_t len, struct proto_dir *d);
void proto_dir_release(struct proto_dir *d);
/* One page of a paged listing (version 2): as proto_dir_decode(), but at
 * most PROTO_DIR_PAGE_MAX entries (-E2BIG), and @next (PROTO_CURSOR_MAX
 * bytes) receives the optional "next" cursor, "" when this is the last
 * page. A cursor is opaque to clients: 1..PROTO_CURSOR_MAX-1 bytes of
 * [0-9A-Za-z._-] (-EINVAL otherwise). A reply from a version 1 server (no
 * "next", any number of entries up to PROTO_DIR_MAX) decodes as a last
 * page: @allow_whole says it may be one (the first request). */
int proto_dir_page_decode(const char *buf, size_t len, bool allow_whole,
			  struct proto_dir *d, char *next);
/* The same without comparing the page's names with each other (a sort of
 * 4,096 names, a twentieth of a cold listing's CPU in cairnd): only for a
 * caller that checks the whole listing's names itself before it uses it
 * as one (cairnd: vc_dirb_finish(), whose sort puts a name given twice
 * side by side anyway). */
int proto_dir_page_decode_unchecked(const char *buf, size_t len,
				    bool allow_whole, struct proto_dir *d,
				    char *next);
/* Move the entries of @page (released and zeroed after, whatever the
 * result) to the end of @acc. -E2BIG past PROTO_DIR_MAX entries in all,
 * -EINVAL if the pages disagree on the directory (FID or DV); -ENOMEM. On
 * error @acc is left as it was. Names are not compared across pages here
 * (that is O(n log n)): call proto_dir_check_names() on the whole. */
int proto_dir_append(struct proto_dir *acc, struct proto_dir *page);
/* 0 if no name appears twice in @d, else -EINVAL; -ENOMEM. */
int proto_dir_check_names(const struct proto_dir *d);
/* *target: heap string of 1..PROTO_PATH_MAX-1 bytes (-ENAMETOOLONG
 * beyond); free() it. */
int proto_link_decode(const char *buf, size_t len, char **target);
/* *x: heap array of *np xattrs in the order sent, values decoded from
 * strict base64 (at most PROTO_XATTR_VALUE_MAX bytes, -E2BIG beyond; names
 * 1..PROTO_XATTR_NAME_MAX bytes of UTF-8, PROTO_XATTR_LIST_MAX in all);
 * @value is never NULL, even for an empty value. Free with
 * proto_xattrs_free(x, n), which accepts NULL. The "fid" member is checked
 * but not returned. */
int proto_xattrs_decode(const char *buf, size_t len, uint64_t *dv,
			struct proto_xattr **x, size_t *np);
void proto_xattrs_free(struct proto_xattr *x, size_t n);
/* One line, with or without its '\n'. data/attr/dir/gone need "fid" and
 * "dv"; ping/reset leave @fid null and @dv 0. An unknown kind is -EINVAL. */
int proto_event_decode(const char *line, size_t len, struct proto_event *e);
/* Checks the members the op table of doc/protocol.md lists for the kind
 * (names with proto_name_check(), which may give -ENAMETOOLONG; setattr
 * values only for mask bits; store chunk sizes and offsets); @type is set
 * to DIR for mkdir and SYMLINK for symlink. Release with
 * proto_op_release(), which zeroes @op and accepts NULL. A body may end
 * in an attachment (PROTO_V_ATTACH): the JSON text ends at the first NUL,
 * the bytes after it are what the stores' "data_off" and "data_len" name,
 * in op order, one range after the other and all of them (-EINVAL
 * otherwise). */
int proto_op_decode(const char *buf, size_t len, struct proto_op *op);
void proto_op_release(struct proto_op *op);
/* A batch request: -E2BIG before parsing for a body over
 * PROTO_BATCH_BODY_MAX, and for more than PROTO_BATCH_MAX ops; -EINVAL
 * for no ops, a "stop_on_error" that is not a boolean, or any op that
 * proto_op_decode() would refuse (its error is returned: -E2BIG,
 * -ENAMETOOLONG, -EINVAL). Opids may repeat (the server answers the
 * later ones from the first). Release with proto_batch_release(), which
 * zeroes @b and accepts NULL. */
int proto_batch_decode(const char *buf, size_t len, struct proto_batch *b);
void proto_batch_release(struct proto_batch *b);

/* One entry of a batch reply: @status 200 with @res, or 400..599 with
 * @err (424: not applied, see doc/protocol.md). */
struct proto_batch_result {
	int status;
	struct proto_op_result res;
	struct proto_error err;
};

/* Client side: a batch reply for a request of @nops ops. It must hold
 * exactly @nops results, each a status of 200 or 400..599 and a body
 * that decodes as proto_op_result_decode() (200) or proto_error_decode()
 * (the others) would. *out: heap array of @nops, free() it. */
int proto_batch_reply_decode(const char *buf, size_t len, size_t nops,
			     struct proto_batch_result **out);

/* Any of the four attribute objects may be absent; "parent" and
 * "newparent" must be directories. Nothing to release. */
int proto_op_result_decode(const char *buf, size_t len,
			   struct proto_op_result *r);
/* An encoded op reply as a client of protocol @version may see it
 * (proto_attr_compat() on each attribute object). @return a heap buffer the
 * caller frees, with its length in *lenp, or NULL: @buf needs no change
 * (@version is PROTO_V_MOUNT or later, or nothing in it to change) or
 * does not decode. A body that names none of the new types is not
 * decoded at all (a substring check), so the common case costs nothing. */
char *proto_op_result_compat(const char *buf, size_t len, int version,
			     size_t *lenp);
/* "errno" is required (an unknown name gives EIO); "error" and "dv" are
 * optional. A body that is not such JSON (an HTML page from a proxy) is
 * -EINVAL: use proto_status_to_errno() then. */
int proto_error_decode(const char *buf, size_t len, struct proto_error *e);

/* --- URLs (both sides build/parse the same paths) --- */

/* Path of a chunk GET: /v1/vol/NAME/data/FID/DV/CHUNK?size=CS, into @buf.
 * @return bytes written, -ENAMETOOLONG if @len is too small, -EINVAL for
 * a bad volume name or a chunk size that is not a power of two from
 * PROTO_CHUNK_MIN to PROTO_CHUNK_MAX. */
int proto_chunk_path(char *buf, size_t len, const char *vol,
		     const struct fid *fid, uint64_t dv, uint64_t chunk,
		     uint32_t chunk_size);

/* Path of a staged chunk PUT: /v1/vol/NAME/stage/FID/TXID/CHUNK?size=CS;
 * returns as proto_chunk_path(). */
int proto_stage_path(char *buf, size_t len, const char *vol,
		     const struct fid *fid, const uint8_t txid[16],
		     uint64_t chunk, uint32_t chunk_size);

/* Check a volume name: 1..64 bytes of [A-Za-z0-9._-], not starting with
 * '.'. @return 0 or -EINVAL. */
int proto_volname_check(const char *name);

/* What a request path names (server side: route before anything else). */
enum proto_path_kind {
	PROTO_P_NONE = 0,
	PROTO_P_PING,	 /* /v1/ping */
	PROTO_P_VOL,	 /* /v1/vol/NAME */
	PROTO_P_GETATTR, /* /v1/vol/NAME/getattr */
	PROTO_P_DIR,	 /* /v1/vol/NAME/dir/FID */
	PROTO_P_LINK,	 /* /v1/vol/NAME/link/FID */
	PROTO_P_XATTR,	 /* /v1/vol/NAME/xattr/FID */
	PROTO_P_DATA,	 /* /v1/vol/NAME/data/FID/DV/CHUNK?size=CS */
	PROTO_P_EVENTS,	 /* /v1/vol/NAME/events[?since=SEQ] */
	PROTO_P_OP,	 /* /v1/vol/NAME/op */
	PROTO_P_BATCH,	 /* /v1/vol/NAME/batch (version 3) */
	PROTO_P_STAGE,	 /* /v1/vol/NAME/stage/FID/TXID/CHUNK?size=CS */
};

/* Where the next page of a listing starts, as cairn-vold writes it in a
 * "next" cursor: "DV.BUCKET.INDEX" in decimal (clients pass it back as an
 * opaque string). @dv ties every page to one state of the directory. */
struct proto_dir_cursor {
	uint64_t dv;
	uint64_t bucket;
	uint64_t index;
};

/* A parsed request path; which fields are set depends on @kind, the rest
 * are zero. */
struct proto_path {
	enum proto_path_kind kind;
	char vol[65];	     /* all but PING; passed proto_volname_check() */
	struct fid fid;	     /* DIR, LINK, XATTR, DATA, STAGE */
	uint64_t dv;	     /* DATA */
	uint8_t txid[16];    /* STAGE */
	uint64_t chunk;	     /* DATA, STAGE */
	uint32_t chunk_size; /* DATA, STAGE: power of two, CHUNK_MIN..MAX */
	bool has_since;	     /* EVENTS: "since" was given */
	uint64_t since;	     /* EVENTS */
	uint32_t limit;	     /* DIR: "limit" (1..PROTO_DIR_PAGE_MAX), 0 =
				not given: the whole listing */
	bool has_cursor;     /* DIR: "cursor" was given (needs "limit") */
	struct proto_dir_cursor cursor; /* DIR */
	bool has_enc;	     /* DIR: "enc" was given (protocol 8) */
	bool bin;	     /* DIR: enc=bin, binary pages (needs "limit") */
};

/* Whether the @len bytes at @s are a page cursor as clients see one:
 * 1..PROTO_CURSOR_MAX-1 bytes of [0-9A-Za-z._-] (opaque, URL-safe). */
bool proto_cursor_ok(const char *s, size_t len);
/* Format @c in cairn-vold's form into @buf (PROTO_CURSOR_MAX bytes is
 * enough). @return the length, or -ENAMETOOLONG if @len is too small. */
int proto_cursor_format(char *buf, size_t len,
			const struct proto_dir_cursor *c);

/*
 * Split and validate a request target (path plus optional query string) as
 * received in the HTTP request line, e.g. "/v1/vol/home/data/FID/7/0?size=
 * 262144". Strict, because these URLs name immutable cacheable content and
 * one content must have exactly one URL: FIDs and TXIDs in lower-case hex
 * only; DV, CHUNK, SIZE and SEQ plain decimal without sign, blanks or
 * leading zeros ("0" itself is fine) and without uint64 overflow; no '%'
 * escapes, no empty segments, no trailing '/', no fragment. Query
 * parameters: "size" is required for DATA and STAGE, "since" is optional
 * for EVENTS; "limit" (1..PROTO_DIR_PAGE_MAX) and "cursor" (DV.BUCKET.INDEX,
 * needs "limit") are optional for DIR, and so is "enc" ("bin" for binary
 * pages, needs "limit"; "json"; protocol 8); a known parameter given twice, one
 * given to a route that does not take it, or a limit out of its range is
 * -EINVAL; unknown parameters are ignored.
 * The HTTP method is not checked here.
 *
 * @return 0 and *out filled in;
 *   -ENOENT  the path is not a route of the protocol (404),
 *   -EINVAL  a route, but a part is malformed: volume name, FID, TXID, a
 *            number, a chunk size that is not a power of two from
 *            PROTO_CHUNK_MIN to PROTO_CHUNK_MAX (400),
 *   -ERANGE  CHUNK * CS does not fit in an off_t: certainly past the end of
 *            any file (416).
 * On error *out is zeroed. Thread-safe.
 */
int proto_parse_path(const char *target, struct proto_path *out);

/*
 * Per-block checksums of a chunk body, the optional X-Cairn-Blocks reply
 * header of a chunk GET (doc/protocol.md): "crc32c B C0 C1 ...", B the
 * block size (a power of two from PROTO_BLOCK_MIN to the chunk size), then
 * one CRC32C (base/crc32c.h) per B bytes of the body in 8 lower-case hex
 * digits; the last block may be shorter. They let a client serve a prefix
 * of a chunk before the rest (and the whole-body SHA-256) has arrived.
 */
#define PROTO_BLOCKS_HEADER "X-Cairn-Blocks"
#define PROTO_BLOCK_MIN 4096u
#define PROTO_BLOCKS_MAX 64u
/* Longest header value proto_blocks_format() writes, with the NUL. */
#define PROTO_BLOCKS_STRLEN (7 + 11 + 9 * PROTO_BLOCKS_MAX + 1)

struct proto_blocks {
	uint32_t bsize;			/* block size */
	uint32_t len;			/* body length the sums cover */
	uint32_t n;			/* blocks: ceil(len / bsize) */
	uint32_t crc[PROTO_BLOCKS_MAX];
};

/* The block size cairn-vold uses for chunks of @chunk_size: 16 KiB, or a
 * sixteenth of the chunk when that is more (at most 16 blocks). */
uint32_t proto_block_size(uint32_t chunk_size);

/* Fill @pb with the sums of @len bytes at @body in blocks of @bsize.
 * @return 0, or -EINVAL (@bsize not a power of two >= PROTO_BLOCK_MIN, or
 * more than PROTO_BLOCKS_MAX blocks). Thread-safe. */
int proto_blocks_compute(struct proto_blocks *pb, uint32_t bsize,
			 const void *body, size_t len);

/* Format @pb as the header value into @buf (PROTO_BLOCKS_STRLEN is
 * enough). @return the length, or -ERANGE / -EINVAL. */
int proto_blocks_format(char *buf, size_t len, const struct proto_blocks *pb);

/*
 * Parse an X-Cairn-Blocks value for a body of @body_len bytes of a chunk of
 * @chunk_size. Strict: single spaces, lower-case hex, exactly
 * ceil(@body_len / B) sums.
 * @return 0 and *pb; -ENOTSUP when the first word names an algorithm we do
 * not know (the client then ignores the header); -EINVAL when it is
 * malformed or does not fit the body (a bad reply). Thread-safe.
 */
int proto_blocks_parse(const char *value, uint32_t chunk_size,
		       uint32_t body_len, struct proto_blocks *pb);

/*
 * Verify a body as it grows: @buf holds @have bytes, the first @verified
 * of them already verified (0 at the start, else a value this function
 * returned). Checks every block that is now complete (the last one once
 * @have reaches pb->len).
 * @return the new verified mark (a multiple of pb->bsize, or pb->len), or
 * -EIO when a block does not match its sum (nothing after the previous
 * mark may be used). Thread-safe.
 */
ssize_t proto_blocks_verify(const struct proto_blocks *pb, const void *buf,
			    size_t verified, size_t have);

/* The CRC32C of the whole body the sums of @pb cover (crc32c(0, body,
 * pb->len)), combined from them without reading the body: once every block
 * verified, the body's own CRC32C for free (the chunk store's). */
uint32_t proto_blocks_crc(const struct proto_blocks *pb);

#endif /* CAIRN_PROTO_H */
