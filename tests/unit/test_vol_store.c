/*
 * test_vol_store.c - unit tests of the volume storage (vol/volstore.c and
 * vol/vs_*.c): chunk objects (format 2),
 * every mutation and its refusals (409/412/4xx), opid replay, hard links,
 * atomic multi-chunk stores, events, crash leftovers removed at open, a
 * large directory (4,000 entries). Runs in a temporary server root.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <tdb.h>

#include "common/fid.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/util.h"
#include "tests/tap.h"
#include "tests/unit/tdb_damage.h"
#include "vol/volstore.h"
#include "vol/volstore_i.h" /* white-box: the undo log of group commits */

static char rootdir[256];
static struct vs_root *root;
static struct vs_vol *vol;
static struct fid rootfid;
static unsigned opcount;

/* Entries of the big directory: enough for several bucket splits (the
 * 10,000-entry case is timed by tests/bench/bench-vol.sh). */
#define BIGDIR_N 4000

static void
opid(struct proto_op *op)
{
	memset(op->opid, 0, 16);
	opcount++;
	memcpy(op->opid, &opcount, sizeof(opcount));
	op->opid[15] = 0x5a;
}

/* Apply @op with a fresh opid; return the status, *res filled on 200. */
static int
apply(struct proto_op *op, struct proto_op_result *res, struct vs_reply *keep)
{
	struct vs_reply rep;
	int rc;

	opid(op);
	rc = vs_apply(vol, op, &rep);
	if (rc) {
		diag("vs_apply: %s", strerror(-rc));
		return -1;
	}
	if (res) {
		memset(res, 0, sizeof(*res));
		if (rep.status == 200 &&
		    proto_op_result_decode(rep.body, rep.len, res))
			diag("cannot decode result");
	}
	rc = rep.status;
	if (keep)
		*keep = rep;
	else
		free(rep.body);
	return rc;
}

static int
err_of(const struct vs_reply *rep)
{
	struct proto_error e;

	if (proto_error_decode(rep->body, rep->len, &e))
		return -1;
	return e.err;
}

static int
mk(enum proto_op_kind k, const struct fid *parent, const char *name,
   struct fid *out)
{
	struct proto_op op = {0};
	struct proto_op_result res;
	int st;

	op.kind = k;
	op.parent = *parent;
	op.name = (char *)name;
	op.type = k == PROTO_OP_MKDIR ? PROTO_T_DIR : PROTO_T_FILE;
	op.mode = 0644;
	op.uid = 1000;
	op.gid = 1000;
	if (k == PROTO_OP_SYMLINK)
		op.target = (char *)"target/of/link";
	st = apply(&op, &res, NULL);
	if (st == 200 && out)
		*out = res.attr.fid;
	return st;
}

static int
rm(enum proto_op_kind k, const struct fid *parent, const char *name,
   const struct fid *fid, struct vs_reply *rep)
{
	struct proto_op op = {0};

	op.kind = k;
	op.parent = *parent;
	op.name = (char *)name;
	op.fid = *fid;
	return apply(&op, NULL, rep);
}

static int
stage(const struct fid *f, const uint8_t txid[16], uint64_t chunk,
      uint32_t cs, char fill, size_t len)
{
	char *buf = malloc(len ? len : 1);
	int rc;

	memset(buf, fill, len);
	rc = vs_stage_put(vol, f, txid, chunk, cs, buf, len);
	free(buf);
	return rc;
}

/* Read the current data of @f into a heap buffer. */
static char *
slurp(const struct fid *f, uint64_t *size)
{
	struct vs_extent ext[VS_EXTENTS_MAX];
	struct proto_attr a;
	uint64_t cur, off = 0;
	size_t n;
	char *buf;

	/* Read it the way cairn-vold does: ranges of extents, some at
	 * offsets that do not fall on a chunk boundary. */
	if (vs_getattr(vol, f, &a) ||
	    vs_data_open(vol, f, a.dv, 0, 0, ext, &n, size, &cur))
		return NULL;
	buf = calloc(1, *size + 1);
	while (buf && off < *size) {
		uint64_t len = off ? PROTO_CHUNK_MAX : 100000;

		if (vs_data_open(vol, f, a.dv, off, len, ext, &n, size, &cur)) {
			free(buf);
			return NULL;
		}
		for (size_t i = 0; i < n; i++) {
			if (ext[i].fd >= 0) {
				util_pread_all(ext[i].fd, buf + off,
					       ext[i].len, (off_t)ext[i].off);
				close(ext[i].fd);
			}
			off += ext[i].len;
		}
		if (!n)
			break;
	}
	return buf;
}

/* The public flag: off by default, persistent, refused read-only, and
 * gone with the volume (a re-created one starts private). */
static void
test_public(uint32_t *id)
{
	struct vs_vol *ro = NULL;
	struct tdb_context *tdb;
	struct vs_volinfo vi;
	char path[4096];
	bool pub = true;

	is_int(vs_vol_public(vol, &pub), 0, "read the public flag");
	ok(!pub, "a new volume is private");
	is_int(vs_vol_set_public(vol, true), 0, "make it public");
	is_int(vs_vol_public(vol, &pub), 0, "read it again");
	ok(pub, "now public");
	/* One handle per volume per process (tdb): reopen read-only. */
	vs_vol_close(vol);
	is_int(vs_vol_open(root, "home", VS_RDONLY, &ro), 0,
	       "reopen read-only");
	pub = false;
	is_int(vs_vol_public(ro, &pub), 0, "read through the new handle");
	ok(pub, "the flag is on disk");
	is_int(vs_vol_set_public(ro, false), -EROFS,
	       "read-only handle cannot change it");
	vs_vol_close(ro);
	vol = NULL;
	if (vs_vol_open(root, "home", VS_CLEANUP, &vol))
		return;
	is_int(vs_vol_set_public(vol, false), 0, "make it private");
	vs_vol_public(vol, &pub);
	ok(!pub, "private again");

	/* A damaged flag record: an error, read as private, and the volume
	 * stays usable. */
	vs_vol_close(vol);
	vol = NULL;
	if (vs_vol_meta_path(root, "home", path, sizeof(path)) == 0 &&
	    (tdb = tdb_open(path, 0, 0, O_RDWR, 0600))) {
		TDB_DATA k = {.dptr = (unsigned char *)"F", .dsize = 1};
		TDB_DATA d = {.dptr = (unsigned char *)"\1\0\0", .dsize = 3};

		tdb_store(tdb, k, d, TDB_REPLACE);
		tdb_close(tdb);
	}
	if (vs_vol_open(root, "home", VS_CLEANUP, &vol))
		return;
	pub = true;
	is_int(vs_vol_public(vol, &pub), -EINVAL, "a damaged flag: EINVAL");
	ok(!pub, "and read as private");
	is_int(vs_vol_info(vol, &vi), 0, "the volume info still reads");
	ok(!vi.public, "showing it private");
	is_int(vs_vol_set_public(vol, false), 0, "setting repairs it");
	is_int(vs_vol_public(vol, &pub), 0, "the flag reads again");
	ok(!pub, "private");

	vs_vol_set_public(vol, true);
	vs_vol_close(vol);
	vol = NULL;
	is_int(vs_vol_remove(root, "home", 0), 0, "remove the public volume");
	is_int(vs_vol_create(root, "home", 0, 0, 0, id), 0,
	       "re-create it under the same name");
	is_int(vs_vol_open(root, "home", VS_CLEANUP, &vol), 0, "open it");
	vs_vol_public(vol, &pub);
	ok(!pub, "the re-created volume is private");
}

static void
test_volumes(void)
{
	char **names;
	size_t n;
	uint32_t id, id2;
	struct vs_volinfo vi;

	is_int(vs_vol_create(root, "home", 0, 0, 0, &id), 0, "create volume");
	is_int(vs_vol_create(root, "home", 0, 0, 0, NULL), -EEXIST,
	       "create twice is EEXIST");
	is_int(vs_vol_create(root, "../x", 0, 0, 0, NULL), -EINVAL,
	       "a path as a volume name is refused");
	is_int(vs_vol_create(root, ".hidden", 0, 0, 0, NULL), -EINVAL,
	       "a leading dot is refused");
	is_int(vs_vol_create(root, "other", 0, 0, 0, &id2), 0, "second volume");
	ok(id != id2 && id && id2, "volume ids differ and are not 0");
	is_int(vs_vol_list(root, &names, &n), 0, "list");
	ok(n == 2 && !strcmp(names[0], "home") && !strcmp(names[1], "other"),
	   "list is sorted: home, other");
	vs_names_free(names, n);
	is_int(vs_vol_remove(root, "other", 0), 0, "remove");
	is_int(vs_vol_remove(root, "other", 0), -ENOENT, "remove twice");
	is_int(vs_vol_open(root, "nope", 0, &vol), -ENOENT, "open missing");
	is_int(vs_vol_open(root, "home", VS_CLEANUP, &vol), 0, "open home");
	if (vol)
		test_public(&id);
	is_int(vs_vol_info(vol, &vi), 0, "info");
	is_int((int)vi.format, 2, "a new volume is format 2 (no inline chunk yet)");
	is_int(vi.id, id, "info id");
	is_int(vi.files_used, 1, "one object: the root");
	rootfid = vi.root;
}

static void
test_create(void)
{
	struct fid f, d, s, g;
	struct proto_attr a;
	struct proto_dir dir;
	struct proto_op op = {0};
	struct vs_reply rep;
	char *t;

	is_int(mk(PROTO_OP_CREATE, &rootfid, "a.txt", &f), 200, "create file");
	is_int(mk(PROTO_OP_CREATE, &rootfid, "a.txt", NULL), 409,
	       "create existing name is 409");
	is_int(mk(PROTO_OP_MKDIR, &rootfid, "d", &d), 200, "mkdir");
	is_int(mk(PROTO_OP_SYMLINK, &d, "s", &s), 200, "symlink in d");
	is_int(mk(PROTO_OP_CREATE, &f, "x", NULL), 400,
	       "create in a file is 400 ENOTDIR");
	is_int(vs_readlink(vol, &s, &t), 0, "readlink");
	is_str(t, "target/of/link", "symlink target");
	free(t);
	is_int(vs_readlink(vol, &f, &t), -EINVAL, "readlink of a file");
	is_int(vs_getattr(vol, &s, &a), 0, "getattr symlink");
	is_int(a.size, 14, "symlink size is the target length");
	is_int(vs_getattr(vol, &rootfid, &a), 0, "getattr root");
	is_int(a.nlink, 3, "root nlink counts the subdirectory");
	is_int(vs_readdir(vol, &rootfid, &dir), 0, "readdir");
	is_int(dir.n, 2, "two entries");
	proto_dir_release(&dir);
	is_int(vs_readdir(vol, &f, &dir), -ENOTDIR, "readdir of a file");

	/* A client-chosen FID. */
	fid_random(vs_vol_info(vol, &(struct vs_volinfo){0}) == 0 ? rootfid.vol : 0,
		   &g);
	op.kind = PROTO_OP_CREATE;
	op.parent = rootfid;
	op.name = (char *)"chosen";
	op.fid = g;
	op.type = PROTO_T_FIFO;
	op.mode = 0600;
	is_int(apply(&op, NULL, NULL), 200, "create with a chosen FID");
	is_int(vs_getattr(vol, &g, &a), 0, "chosen FID exists");
	is_int(a.type, PROTO_T_FIFO, "it is a FIFO");
	op.name = (char *)"chosen2";
	is_int(apply(&op, NULL, &rep), 409, "a chosen FID that exists is 409");
	is_int(err_of(&rep), EEXIST, "... EEXIST");
	free(rep.body);
	op.fid.vol ^= 1;
	is_int(apply(&op, NULL, NULL), 400, "a FID of another volume is 400");
}

static void
test_link_unlink(void)
{
	struct fid f, d, h, x;
	struct proto_op op = {0};
	struct proto_attr a;
	struct vs_reply rep;
	struct vs_volinfo vi;
	uint64_t files;

	vs_vol_info(vol, &vi);
	files = vi.files_used;
	vs_lookup(vol, &rootfid, "a.txt", &f);
	vs_lookup(vol, &rootfid, "d", &d);
	op.kind = PROTO_OP_LINK;
	op.parent = d;
	op.name = (char *)"hard";
	op.fid = f;
	is_int(apply(&op, NULL, NULL), 200, "link");
	is_int(vs_getattr(vol, &f, &a), 0, "getattr linked");
	is_int(a.nlink, 2, "nlink 2");
	is_int(vs_lookup(vol, &d, "hard", &h), 0, "lookup the link");
	ok(fid_eq(&h, &f), "same FID under both names");
	op.name = (char *)"dirlink";
	op.fid = d;
	is_int(apply(&op, NULL, &rep), 403, "link of a directory is 403");
	is_int(err_of(&rep), EPERM, "... EPERM");
	free(rep.body);

	is_int(rm(PROTO_OP_UNLINK, &rootfid, "a.txt", &d, &rep), 412,
	       "unlink with the wrong FID is 412");
	free(rep.body);
	is_int(rm(PROTO_OP_UNLINK, &rootfid, "nope", &f, NULL), 404,
	       "unlink of a missing name is 404");
	is_int(rm(PROTO_OP_UNLINK, &rootfid, "d", &d, &rep), 400,
	       "unlink of a directory is 400");
	is_int(err_of(&rep), EISDIR, "... EISDIR");
	free(rep.body);
	is_int(rm(PROTO_OP_RMDIR, &rootfid, "d", &d, &rep), 409,
	       "rmdir of a non-empty directory is 409");
	is_int(err_of(&rep), ENOTEMPTY, "... ENOTEMPTY");
	free(rep.body);
	is_int(rm(PROTO_OP_RMDIR, &rootfid, "a.txt", &f, NULL), 400,
	       "rmdir of a file is 400");
	is_int(rm(PROTO_OP_UNLINK, &rootfid, "a.txt", &f, NULL), 200,
	       "unlink one name");
	is_int(vs_getattr(vol, &f, &a), 0, "object still there");
	is_int(a.nlink, 1, "nlink 1");
	is_int(rm(PROTO_OP_UNLINK, &d, "hard", &f, NULL), 200,
	       "unlink the last name");
	is_int(vs_getattr(vol, &f, &a), -ENOENT, "object gone");
	vs_vol_info(vol, &vi);
	is_int(vi.files_used, files - 1, "files_used went down by one");
	is_int(mk(PROTO_OP_MKDIR, &d, "sub", &x), 200, "mkdir d/sub");
	is_int(rm(PROTO_OP_RMDIR, &d, "sub", &x, NULL), 200, "rmdir d/sub");
	is_int(vs_getattr(vol, &x, &a), -ENOENT, "d/sub gone");
}

static void
test_rename(void)
{
	struct fid d, e, a, b, c, sub;
	struct proto_op op = {0};
	struct proto_attr at;
	struct vs_reply rep;

	vs_lookup(vol, &rootfid, "d", &d);
	mk(PROTO_OP_MKDIR, &rootfid, "e", &e);
	mk(PROTO_OP_CREATE, &d, "a", &a);
	mk(PROTO_OP_CREATE, &d, "b", &b);
	mk(PROTO_OP_CREATE, &e, "c", &c);
	op.kind = PROTO_OP_RENAME;
	op.parent = d;
	op.name = (char *)"a";
	op.fid = a;
	op.newparent = d;
	op.newname = (char *)"b";
	is_int(apply(&op, NULL, &rep), 412,
	       "rename onto an existing name without victim is 412");
	free(rep.body);
	op.flags = PROTO_RENAME_NOREPLACE;
	is_int(apply(&op, NULL, &rep), 409, "noreplace onto a name is 409");
	free(rep.body);
	op.flags = 0;
	op.victim = c;
	is_int(apply(&op, NULL, NULL), 412, "victim not the one there is 412");
	op.fid = b;
	op.victim = (struct fid){0};
	is_int(apply(&op, NULL, NULL), 412, "name points to another FID: 412");
	op.fid = a;
	op.victim = b;
	is_int(apply(&op, NULL, NULL), 200, "rename a over b with victim b");
	is_int(vs_getattr(vol, &b, &at), -ENOENT, "b is gone");
	is_int(vs_lookup(vol, &d, "b", &sub), 0, "name b exists");
	ok(fid_eq(&sub, &a), "and points at a");
	is_int(vs_lookup(vol, &d, "a", &sub), -ENOENT, "name a gone");

	/* exchange across directories */
	op.parent = d;
	op.name = (char *)"b";
	op.fid = a;
	op.newparent = e;
	op.newname = (char *)"c";
	op.victim = c;
	op.flags = PROTO_RENAME_EXCHANGE;
	is_int(apply(&op, NULL, NULL), 200, "exchange d/b and e/c");
	vs_lookup(vol, &d, "b", &sub);
	ok(fid_eq(&sub, &c), "d/b is now c");
	vs_lookup(vol, &e, "c", &sub);
	ok(fid_eq(&sub, &a), "e/c is now a");

	/* a directory into itself */
	mk(PROTO_OP_MKDIR, &e, "inner", &sub);
	memset(&op, 0, sizeof(op));
	op.kind = PROTO_OP_RENAME;
	op.parent = rootfid;
	op.name = (char *)"e";
	op.fid = e;
	op.newparent = sub;
	op.newname = (char *)"loop";
	is_int(apply(&op, NULL, &rep), 400,
	       "moving a directory into its own subtree is 400");
	is_int(err_of(&rep), EINVAL, "... EINVAL");
	free(rep.body);
	op.newparent = d;
	op.newname = (char *)"e-moved";
	is_int(apply(&op, NULL, NULL), 200, "move directory e into d");
	is_int(vs_getattr(vol, &d, &at), 0, "getattr d");
	is_int(at.nlink, 3, "d nlink counts e");
}

static void
test_setattr_xattr(void)
{
	struct fid f;
	struct proto_op op = {0};
	struct proto_attr a;
	struct proto_xattr *x;
	struct vs_reply rep;
	uint64_t dv, size;
	size_t n;
	char *data;

	mk(PROTO_OP_CREATE, &rootfid, "sa", &f);
	vs_getattr(vol, &f, &a);
	op.kind = PROTO_OP_SETATTR;
	op.fid = f;
	op.base_dv = a.dv + 5;
	op.mask = PROTO_SA_MODE;
	op.mode = 0600;
	is_int(apply(&op, NULL, &rep), 412, "setattr on a stale dv is 412");
	{
		struct proto_error e;

		proto_error_decode(rep.body, rep.len, &e);
		is_int(e.cur_dv, a.dv, "412 carries the current dv");
	}
	free(rep.body);
	op.base_dv = a.dv;
	is_int(apply(&op, NULL, NULL), 200, "chmod");
	vs_getattr(vol, &f, &a);
	is_int(a.mode, 0600, "mode set");
	dv = a.dv;
	is_int(dv, op.base_dv, "chmod keeps the dv");
	op.mask = PROTO_SA_SIZE | PROTO_SA_MTIME;
	op.size = 100000;
	op.mtime_ns = 1234567890123456789LL;
	op.base_dv = dv;
	is_int(apply(&op, NULL, NULL), 200, "truncate up");
	vs_getattr(vol, &f, &a);
	is_int(a.dv, dv + 1, "truncate bumps the dv");
	is_int(a.size, 100000, "size set");
	is_int(a.mtime_ns, 1234567890123456789LL, "mtime set");
	data = slurp(&f, &size);
	ok(data && size == 100000 && data[0] == 0 && data[99999] == 0,
	   "grown file reads as zeros");
	free(data);

	memset(&op, 0, sizeof(op));
	op.kind = PROTO_OP_SETXATTR;
	op.fid = f;
	op.xname = (char *)"user.color";
	op.xvalue = (void *)"red";
	op.xlen = 3;
	op.flags = PROTO_XATTR_REPLACE;
	is_int(apply(&op, NULL, NULL), 404, "replace of a missing xattr: 404");
	op.flags = PROTO_XATTR_CREATE;
	is_int(apply(&op, NULL, NULL), 200, "setxattr create");
	is_int(apply(&op, NULL, NULL), 409, "create again: 409");
	op.flags = 0;
	op.xvalue = (void *)"blue";
	op.xlen = 4;
	is_int(apply(&op, NULL, NULL), 200, "setxattr overwrite");
	op.xname = (char *)"trusted.x";
	is_int(apply(&op, NULL, &rep), 400, "non-user xattr is 400");
	is_int(err_of(&rep), ENOTSUP, "... ENOTSUP");
	free(rep.body);
	is_int(vs_xattrs(vol, &f, &dv, &x, &n), 0, "list xattrs");
	ok(n == 1 && !strcmp(x[0].name, "user.color") && x[0].len == 4 &&
	   !memcmp(x[0].value, "blue", 4), "one xattr user.color=blue");
	proto_xattrs_free(x, n);
	op.kind = PROTO_OP_REMOVEXATTR;
	op.xname = (char *)"user.color";
	is_int(apply(&op, NULL, NULL), 200, "removexattr");
	is_int(apply(&op, NULL, NULL), 404, "removexattr again: 404");
	/* XATTR_LIST_MAX: names add up to at most 64 KiB. */
	{
		char name[256];
		int st = 200, i;

		op.kind = PROTO_OP_SETXATTR;
		op.xvalue = (void *)"";
		op.xlen = 0;
		for (i = 0; i < 400 && st == 200; i++) {
			snprintf(name, sizeof(name), "user.%0240d", i);
			op.xname = name;
			st = apply(&op, NULL, NULL);
		}
		is_int(st, 413, "xattr names beyond 64 KiB in all: 413");
	}
}

static void
test_opid(void)
{
	struct proto_op op = {0};
	struct vs_reply r1, r2;
	struct vs_volinfo v1, v2;

	op.kind = PROTO_OP_CREATE;
	op.parent = rootfid;
	op.name = (char *)"once";
	op.type = PROTO_T_FILE;
	op.mode = 0644;
	memset(op.opid, 0xab, 16);
	is_int(vs_apply(vol, &op, &r1), 0, "first apply");
	is_int(r1.status, 200, "first reply 200");
	vs_vol_info(vol, &v1);
	{
		struct proto_op_result res;

		ok(r1.nev > 0 &&
			   proto_op_result_decode(r1.body, r1.len, &res) == 0 &&
			   res.event_seq == r1.ev[r1.nev - 1].seq &&
			   res.event_seq == v1.event_seq,
		   "the reply names the op's last event (event_seq)");
	}
	is_int(vs_apply(vol, &op, &r2), 0, "replay");
	is_int(r2.status, 200, "replay is 200 again, not 409");
	ok(r2.replayed, "marked as replayed");
	ok(r1.len == r2.len && !memcmp(r1.body, r2.body, r1.len),
	   "replay body is the first body");
	is_int(r2.nev, 0, "replay makes no events");
	vs_vol_info(vol, &v2);
	is_int(v2.files_used, v1.files_used, "replay changed nothing");
	is_int(v2.event_seq, v1.event_seq, "no new event seq");
	free(r1.body);
	free(r2.body);
	/* A refusal is remembered too. */
	op.name = (char *)"d";
	memset(op.opid, 0xcd, 16);
	vs_apply(vol, &op, &r1);
	is_int(r1.status, 409, "create over d: 409");
	free(r1.body);
	vs_apply(vol, &op, &r1);
	ok(r1.status == 409 && r1.replayed, "its replay: the same 409");
	free(r1.body);
}

static void
test_store(void)
{
	struct fid f;
	struct proto_op op = {0};
	struct proto_attr a;
	uint8_t txid[16];
	uint64_t chunks[3] = {0, 1, 3}, size, cur;
	struct vs_reply rep;
	char *data;
	struct vs_extent ext[VS_EXTENTS_MAX];
	size_t next;
	bool good = true;

	mk(PROTO_OP_CREATE, &rootfid, "st", &f);
	vs_getattr(vol, &f, &a);
	memset(txid, 7, 16);
	is_int(stage(&f, txid, 0, 65536, 'A', 65536), 0, "stage chunk 0");
	is_int(stage(&f, txid, 1, 65536, 'B', 65536), 0, "stage chunk 1");
	is_int(stage(&f, txid, 3, 65536, 'D', 1000), 0, "stage short chunk 3");
	is_int(stage(&f, txid, 2, 65536, 'C', 65537), -E2BIG,
	       "a chunk above its size is refused");
	is_int(stage(&rootfid, txid, 0, 65536, 'x', 10), -EISDIR,
	       "staging into a directory is refused");
	op.kind = PROTO_OP_STORE;
	op.fid = f;
	op.base_dv = a.dv;
	memcpy(op.txid, txid, 16);
	op.chunk_size = 65536;
	op.size = 3 * 65536 + 1000;
	op.chunks = chunks;
	op.nchunks = 3;
	op.base_dv = a.dv + 1;
	is_int(apply(&op, NULL, NULL), 412, "store on a stale dv is 412");
	op.base_dv = a.dv;
	chunks[2] = 2;
	is_int(apply(&op, NULL, &rep), 400, "store of an unstaged chunk: 400");
	free(rep.body);
	chunks[2] = 3;
	is_int(apply(&op, NULL, NULL), 200, "store three chunks");
	is_int(vs_data_open(vol, &f, a.dv, 0, 1, ext, &next, &size, &cur),
	       -ESTALE,
	       "the old dv is stale now");
	is_int(cur, a.dv + 1, "new dv = base + 1");
	data = slurp(&f, &size);
	is_int(size, 3 * 65536 + 1000, "size");
	for (uint64_t i = 0; data && i < size; i++) {
		char want = i < 65536 ? 'A' : i < 131072 ? 'B' :
			    i < 196608 ? 0 : 'D';

		if (data[i] != want) {
			diag("byte %" PRIu64 " is %d", i, data[i]);
			good = false;
			break;
		}
	}
	ok(data && good, "content: A, B, hole, D");
	free(data);

	/* A second store changes one chunk; the rest keeps its bytes. */
	memset(txid, 8, 16);
	stage(&f, txid, 1, 65536, 'Z', 65536);
	vs_getattr(vol, &f, &a);
	memcpy(op.txid, txid, 16);
	op.base_dv = a.dv;
	chunks[0] = 1;
	op.nchunks = 1;
	is_int(apply(&op, NULL, NULL), 200, "store one chunk");
	data = slurp(&f, &size);
	ok(data && data[0] == 'A' && data[65536] == 'Z' &&
	   data[size - 1] == 'D', "unlisted chunks keep their bytes");
	free(data);
	/* Shrink with a store of no chunks. */
	vs_getattr(vol, &f, &a);
	op.base_dv = a.dv;
	op.nchunks = 0;
	op.size = 10;
	is_int(apply(&op, NULL, NULL), 200, "store to 10 bytes, no chunks");
	data = slurp(&f, &size);
	ok(data && size == 10 && data[9] == 'A', "shrunk to 10 bytes of A");
	free(data);
}

static int
count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void
test_events(void)
{
	struct proto_event ev[VS_MAX_EVENTS * 4];
	struct vs_volinfo vi;
	struct fid f;
	size_t n;
	bool mono = true;

	vs_vol_info(vol, &vi);
	mk(PROTO_OP_CREATE, &rootfid, "evt", &f);
	rm(PROTO_OP_UNLINK, &rootfid, "evt", &f, NULL);
	is_int(vs_events_read(vol, vi.event_seq + 1, ev, 16, &n), 0,
	       "read events");
	is_int(n, 3, "create: dir; unlink: dir + gone");
	for (size_t i = 0; i < n; i++)
		if (ev[i].seq != vi.event_seq + 1 + i)
			mono = false;
	ok(mono, "sequence numbers increase by one");
	ok(n == 3 && ev[0].kind == PROTO_EV_DIR && fid_eq(&ev[0].fid, &rootfid),
	   "first: dir event of the root");
	ok(n == 3 && ev[2].kind == PROTO_EV_GONE && fid_eq(&ev[2].fid, &f),
	   "last: the file is gone");
}

/* Batches and group commits (vs_apply_group): a compound create +
 * store + setattr, partial failure with rollback of the failed op alone,
 * opid replay (also within a group), stop_on_error, and events in order
 * across the requests of a group. */
static int
group(struct vs_group_req *reqs, size_t n)
{
	int rc = vs_apply_group(vol, reqs, n);

	if (rc)
		diag("vs_apply_group: %s", strerror(-rc));
	return rc;
}

static void
reps_free(struct vs_reply *reps, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(reps[i].body);
	memset(reps, 0, n * sizeof(*reps));
}

/* The undo log under a group commit: inside an open transaction, puts,
 * replacements and deletes recorded while v->undo is set are all put
 * back by undo_rollback(), a key written twice included; nothing is
 * recorded without v->undo. */
static int
kv_is(const char *k, const char *want)
{
	uint8_t *val = NULL;
	size_t len = 0;
	int rc = kv_get(vol, k, strlen(k), &val, &len);
	int same;

	if (!want)
		return rc == -ENOENT;
	same = rc == 0 && len == strlen(want) && !memcmp(val, want, len);
	free(val);
	return same;
}

static void
test_undo(void)
{
	struct vs_undo *u = undo_new();

	ok(u != NULL, "undo log");
	is_int(tdbw_txn_start(vol->tdb), 0, "transaction");
	kv_put(vol, "Zkeep", 5, "old", 3);
	kv_put(vol, "Zgone", 5, "there", 5);
	vol->undo = u;
	is_int(kv_put(vol, "Zkeep", 5, "new", 3), 0, "replace");
	is_int(kv_put(vol, "Znew", 4, "fresh", 5), 0, "insert");
	is_int(kv_del(vol, "Zgone", 5), 0, "delete");
	is_int(kv_put(vol, "Zkeep", 5, "newer", 5), 0, "replace again");
	is_int(kv_del(vol, "Zabsent", 7), 0, "delete of a key not there");
	vol->undo = NULL;
	ok(kv_is("Zkeep", "newer") && kv_is("Znew", "fresh") &&
		   kv_is("Zgone", NULL),
	   "the writes are there before the rollback");
	is_int(undo_rollback(vol, u), 0, "rollback");
	ok(kv_is("Zkeep", "old"), "replaced key has its first value back");
	ok(kv_is("Znew", NULL), "inserted key is gone");
	ok(kv_is("Zgone", "there"), "deleted key is back");
	ok(kv_is("Zabsent", NULL), "a key that was never there still is not");
	/* The log is empty after a rollback: a second one changes nothing. */
	kv_put(vol, "Zkeep", 5, "later", 5);
	is_int(undo_rollback(vol, u), 0, "rollback of an empty log");
	ok(kv_is("Zkeep", "later"), "writes without v->undo are not recorded");
	tdbw_txn_cancel(vol->tdb);
	ok(kv_is("Zkeep", NULL) && kv_is("Zgone", NULL),
	   "(the test's transaction cancelled)");
	undo_free(u);
	undo_free(NULL);
}

/*
 * A batch whose sender died is applied after the restarted client resent
 * its creates alone (the server still held the first request): the
 * store that follows a create answered from the opid table goes on the
 * DV that create's recorded reply named, if the file is still there;
 * if the file changed since, it is stale (t4024's failure: every such
 * store was refused, and the refusal recorded for the resend to find).
 */
static void
race_case(const char *name, uint8_t seed, bool changed)
{
	struct proto_op ops[3], single, other;
	struct vs_reply reps[3], rep1;
	struct vs_group_req req = {.ops = ops, .reps = reps, .n = 3};
	struct vs_group_req one = {.ops = &single, .reps = &rep1, .n = 1};
	struct proto_op_result res;
	struct proto_attr a;
	uint8_t txid[16], txid2[16];
	uint64_t chunks[1] = {0}, size, created_dv;
	struct fid nf;
	char *data;

	memset(ops, 0, sizeof(ops));
	memset(reps, 0, sizeof(reps));
	memset(&rep1, 0, sizeof(rep1));
	fid_parse("00000000.0102030405060708090a0b0c0d0e0f77", &nf);
	nf.vol = rootfid.vol;
	nf.oid[15] = seed;
	ops[0].kind = PROTO_OP_CREATE;
	ops[0].parent = rootfid;
	ops[0].name = (char *)name;
	ops[0].fid = nf;
	ops[0].type = PROTO_T_FILE;
	ops[0].mode = 0644;
	memset(txid, seed, 16);
	ops[1].kind = PROTO_OP_STORE;
	ops[1].fid = nf;
	ops[1].base_dv = 0;
	memcpy(ops[1].txid, txid, 16);
	ops[1].chunk_size = 65536;
	ops[1].size = 100;
	ops[1].chunks = chunks;
	ops[1].nchunks = 1;
	ops[2].kind = PROTO_OP_SETATTR;
	ops[2].fid = nf;
	ops[2].base_dv = 0;
	ops[2].mask = PROTO_SA_MODE;
	ops[2].mode = 0600;
	for (int i = 0; i < 3; i++)
		opid(&ops[i]);
	is_int(stage(&nf, txid, 0, 65536, 'R', 100), 0, "%s: staged", name);
	/* The restarted client's resend: the create alone, same opid. */
	single = ops[0];
	is_int(group(&one, 1), 0, "%s: the create resent alone", name);
	is_int(rep1.status, 200, "%s: (applied)", name);
	proto_op_result_decode(rep1.body, rep1.len, &res);
	created_dv = res.attr.dv;
	reps_free(&rep1, 1);
	if (changed) {
		/* Someone else's store after the create. */
		memset(&other, 0, sizeof(other));
		memset(txid2, seed ^ 0xff, 16);
		is_int(stage(&nf, txid2, 0, 65536, 'O', 10), 0,
		       "%s: other staged", name);
		other.kind = PROTO_OP_STORE;
		other.fid = nf;
		other.base_dv = created_dv;
		memcpy(other.txid, txid2, 16);
		other.chunk_size = 65536;
		other.size = 10;
		other.chunks = chunks;
		other.nchunks = 1;
		is_int(apply(&other, NULL, NULL), 200,
		       "%s: another client's store", name);
	}
	/* The dead sender's batch, applied now. */
	is_int(group(&req, 1), 0, "%s: the first batch applied late", name);
	ok(reps[0].replayed && reps[0].status == 200,
	   "%s: its create answered from the opid table", name);
	vs_getattr(vol, &nf, &a);
	data = slurp(&nf, &size);
	if (!changed) {
		ok(reps[1].status == 200 && reps[2].status == 200,
		   "%s: store and setattr applied (%d %d)", name,
		   reps[1].status, reps[2].status);
		ok(a.size == 100 && a.mode == 0600 && data && size == 100 &&
			   data[0] == 'R' && data[99] == 'R',
		   "%s: the batch's bytes and mode", name);
	} else {
		is_int(reps[1].status, 412,
		       "%s: store on a file changed since: stale", name);
		ok(a.size == 10 && data && size == 10 && data[0] == 'O',
		   "%s: the other client's bytes stay", name);
	}
	free(data);
	reps_free(reps, 3);
	/* The restarted client's store (same opid): the same answer. */
	single = ops[1];
	single.base_dv = created_dv;
	is_int(group(&one, 1), 0, "%s: the store resent", name);
	ok(rep1.replayed && rep1.status == (changed ? 412 : 200),
	   "%s: answered from the opid table (%d)", name, rep1.status);
	reps_free(&rep1, 1);
}

static void
test_batch_resend_race(void)
{
	race_case("race-a", 0x61, false);
	race_case("race-b", 0x62, true);
}

static void
test_batch(void)
{
	struct proto_op ops[6];
	struct vs_reply reps[6], again[6];
	struct vs_group_req req = {.ops = ops, .reps = reps};
	struct vs_group_req reqs[3];
	struct proto_op_result res;
	struct proto_attr a, d0, d1;
	struct vs_volinfo vi0, vi1;
	struct proto_event ev[32];
	uint8_t txid[16];
	uint64_t chunks[2] = {0, 1}, size;
	struct fid nf, x;
	size_t n;
	char *data, path[700];
	bool same, mono;

	/* A new file at close: create with the client's fid, store of
	 * staged chunks, setattr, in one commit. */
	memset(ops, 0, sizeof(ops));
	fid_parse("00000000.0102030405060708090a0b0c0d0e0f10", &nf);
	nf.vol = rootfid.vol;
	ops[0].kind = PROTO_OP_CREATE;
	ops[0].parent = rootfid;
	ops[0].name = (char *)"compound.c";
	ops[0].fid = nf;
	ops[0].type = PROTO_T_FILE;
	ops[0].mode = 0644;
	ops[0].uid = ops[0].gid = 1000;
	/* Staged before the object exists, as cairnd does at close. */
	memset(txid, 0x42, 16);
	is_int(stage(&nf, txid, 0, 65536, 'P', 65536), 0,
	       "stage into a fid that does not exist yet");
	is_int(stage(&nf, txid, 1, 65536, 'Q', 100), 0, "(second chunk)");
	{
		struct fid other = nf;

		other.vol ^= 1;
		is_int(stage(&other, txid, 0, 65536, 'x', 10), -ENOENT,
		       "a fid of another volume is still refused");
	}
	x = nf;
	a.dv = 0;
	ops[1].kind = PROTO_OP_STORE;
	ops[1].fid = x;
	ops[1].base_dv = a.dv;
	memcpy(ops[1].txid, txid, 16);
	ops[1].chunk_size = 65536;
	ops[1].size = 65636;
	ops[1].chunks = chunks;
	ops[1].nchunks = 2;
	ops[2].kind = PROTO_OP_SETATTR;
	ops[2].fid = x;
	ops[2].base_dv = 0; /* the client cannot know the new file's dv */
	ops[2].mask = PROTO_SA_MODE | PROTO_SA_MTIME;
	ops[2].mode = 0600;
	ops[2].mtime_ns = 1234567890;
	ops[3].kind = PROTO_OP_SETATTR;
	ops[3].fid = rootfid;
	ops[3].base_dv = 0;
	ops[3].mask = PROTO_SA_MODE;
	ops[3].mode = 0750;
	for (int i = 0; i < 4; i++)
		opid(&ops[i]);
	vs_vol_info(vol, &vi0);
	req.n = 4;
	is_int(group(&req, 1), 0, "compound batch applied");
	ok(reps[0].status == 200 && reps[1].status == 200 &&
		   reps[2].status == 200,
	   "create, store, setattr: 200 each");
	is_int(proto_op_result_decode(reps[0].body, reps[0].len, &res), 0,
	       "create reply decodes");
	ok(fid_eq(&res.attr.fid, &nf), "the client's fid");
	/* base_dv 0 means "as this batch left it" only for a file the
	 * batch created: on the root it is stale, 412, and only it. */
	is_int(reps[3].status, 412, "setattr of another object on dv 0: 412");
	is_int(err_of(&reps[3]), ECANCELED, "(ECANCELED)");
	vs_getattr(vol, &x, &a);
	ok(a.size == 65636 && a.mode == 0600 && a.mtime_ns == 1234567890,
	   "store and setattr of one batch both there");
	/* Each change moves the ctime on (clients order two answers at one
	 * DV by it; vs_ops.c touch_ctime()). */
	ok(a.ctime_ns > res.attr.ctime_ns,
	   "the store and setattr after the create moved the ctime on");
	data = slurp(&x, &size);
	ok(data && size == 65636 && data[0] == 'P' && data[65535] == 'P' &&
		   data[65536] == 'Q' && data[65635] == 'Q',
	   "staged bytes in place");
	free(data);
	vs_vol_info(vol, &vi1);
	is_int(vi1.files_used, vi0.files_used + 1, "one file more");
	is_int(vs_events_read(vol, vi0.event_seq + 1, ev, 32, &n), 0,
	       "events of the batch");
	mono = n > 0;
	for (size_t i = 0; i < n; i++)
		if (ev[i].seq != vi0.event_seq + 1 + i)
			mono = false;
	ok(mono && vi1.event_seq == vi0.event_seq + n,
	   "event seqs consecutive across the ops");
	ok(reps[0].nev >= 1 && reps[1].nev >= 1 &&
		   reps[0].ev[reps[0].nev - 1].seq < reps[1].ev[0].seq,
	   "each op's events in its reply, in order");

	/* Retried after a lost reply: the same replies, nothing changes. */
	reps_free(reps, 4);
	is_int(group(&req, 1), 0, "the same batch again");
	memcpy(again, reps, sizeof(reps));
	same = true;
	for (int i = 0; i < 4; i++)
		if (!again[i].replayed)
			same = false;
	ok(same, "every op answered from the opid table");
	vs_vol_info(vol, &vi0);
	is_int(vi0.event_seq, vi1.event_seq, "no new events");
	vs_getattr(vol, &x, &d0);
	is_int(d0.dv, a.dv, "dv unchanged");
	reps_free(reps, 4);

	/* Partial failure: each op gets its own status; the failed ones
	 * are rolled back alone, the others stay. */
	vs_getattr(vol, &rootfid, &d0);
	vs_vol_info(vol, &vi0);
	memset(ops, 0, sizeof(ops));
	for (int i = 0; i < 6; i++) {
		ops[i].parent = rootfid;
		ops[i].mode = 0644;
		ops[i].type = PROTO_T_FILE;
		opid(&ops[i]);
	}
	ops[0].kind = PROTO_OP_CREATE;
	ops[0].name = (char *)"pf1";
	ops[1].kind = PROTO_OP_CREATE;
	ops[1].name = (char *)"pf1"; /* exists now: 409 */
	ops[2].kind = PROTO_OP_MKDIR;
	ops[2].type = PROTO_T_DIR;
	ops[2].name = (char *)"pf2";
	ops[3].kind = PROTO_OP_UNLINK;
	ops[3].name = (char *)"nosuch"; /* 404 */
	ops[3].fid = x;
	ops[4].kind = PROTO_OP_CREATE;
	ops[4].name = (char *)"pf3";
	ops[4].fid = nf; /* a fid that exists: 409 */
	ops[5].kind = PROTO_OP_CREATE;
	ops[5].name = (char *)"pf4";
	memcpy(ops[5].opid, ops[0].opid, 16); /* opid of op 0 again */
	req.n = 6;
	req.stop = false;
	is_int(group(&req, 1), 0, "batch with failures applied");
	ok(reps[0].status == 200 && reps[1].status == 409 &&
		   reps[2].status == 200 && reps[3].status == 404 &&
		   reps[4].status == 409 && reps[5].status == 200,
	   "statuses 200 409 200 404 409 200");
	ok(reps[5].replayed && reps[5].len == reps[0].len &&
		   !memcmp(reps[5].body, reps[0].body, reps[0].len),
	   "an opid repeated inside the batch gets the first reply");
	is_int(vs_lookup(vol, &rootfid, "pf4", &x), -ENOENT,
	       "and changes nothing");
	is_int(vs_lookup(vol, &rootfid, "pf3", &x), -ENOENT,
	       "the failed create left no name");
	vs_vol_info(vol, &vi1);
	is_int(vi1.files_used, vi0.files_used + 2, "two objects more");
	vs_getattr(vol, &rootfid, &d1);
	is_int(d1.nlink, d0.nlink + 1, "root nlink: one new subdirectory");
	is_int(d1.dv, d0.dv + 2, "root dv: two changes");
	is_int(vs_events_read(vol, vi0.event_seq + 1, ev, 32, &n), 0,
	       "events");
	is_int((int)n, 2, "one dir event per applied op, none of failures");
	memcpy(again, reps, sizeof(reps));
	memset(reps, 0, sizeof(reps));
	is_int(group(&req, 1), 0, "the batch with failures again");
	same = true;
	for (int i = 0; i < 6; i++)
		if (!reps[i].replayed || reps[i].status != again[i].status ||
		    reps[i].len != again[i].len ||
		    memcmp(reps[i].body, again[i].body, reps[i].len))
			same = false;
	ok(same, "refusals replay too, byte for byte");
	vs_vol_info(vol, &vi0);
	is_int(vi0.event_seq, vi1.event_seq, "nothing changed");
	reps_free(reps, 6);
	reps_free(again, 6);

	/* stop_on_error: the ops after the first failure are not applied
	 * (424) and not recorded. */
	memset(ops, 0, sizeof(ops));
	for (int i = 0; i < 3; i++) {
		ops[i].kind = PROTO_OP_CREATE;
		ops[i].parent = rootfid;
		ops[i].type = PROTO_T_FILE;
		opid(&ops[i]);
	}
	ops[0].name = (char *)"so1";
	ops[1].name = (char *)"pf1"; /* 409 */
	ops[2].name = (char *)"so2";
	req.n = 3;
	req.stop = true;
	is_int(group(&req, 1), 0, "stop_on_error batch");
	ok(reps[0].status == 200 && reps[1].status == 409 &&
		   reps[2].status == 424,
	   "200 409 424");
	is_int(err_of(&reps[2]), EAGAIN, "424 carries EAGAIN");
	is_int(vs_lookup(vol, &rootfid, "so2", &x), -ENOENT,
	       "the op after the failure did not run");
	reps_free(reps, 3);
	is_int(group(&req, 1), 0, "stop_on_error batch again");
	ok(reps[0].replayed && reps[1].replayed && !reps[2].replayed &&
		   reps[2].status == 424,
	   "replayed, replayed, not applied again");
	reps_free(reps, 3);
	req.ops = &ops[2];
	req.n = 1;
	is_int(group(&req, 1), 0, "the op not applied, alone");
	is_int(reps[0].status, 200, "runs now: it was never recorded");
	reps_free(reps, 1);
	req.ops = ops;

	/* A group of three requests: one commit, events in request
	 * order; two stores of one file in one group (dv + 1, dv + 2) leave
	 * one data file. */
	mk(PROTO_OP_CREATE, &rootfid, "two-stores", &x);
	vs_getattr(vol, &x, &a);
	memset(ops, 0, sizeof(ops));
	memset(txid, 0x43, 16);
	stage(&x, txid, 0, 65536, 'R', 5000);
	ops[0].kind = PROTO_OP_STORE;
	ops[0].fid = x;
	ops[0].base_dv = a.dv;
	memcpy(ops[0].txid, txid, 16);
	ops[0].chunk_size = 65536;
	ops[0].size = 5000;
	ops[0].chunks = chunks;
	ops[0].nchunks = 1;
	ops[1].kind = PROTO_OP_SETATTR;
	ops[1].fid = x;
	ops[1].base_dv = a.dv + 1;
	ops[1].mask = PROTO_SA_SIZE;
	ops[1].size = 3000;
	ops[2].kind = PROTO_OP_MKDIR;
	ops[2].parent = rootfid;
	ops[2].name = (char *)"grp";
	ops[2].type = PROTO_T_DIR;
	ops[2].mode = 0755;
	for (int i = 0; i < 3; i++) {
		opid(&ops[i]);
		reqs[i].ops = &ops[i];
		reqs[i].n = 1;
		reqs[i].stop = false;
		reqs[i].reps = &reps[i];
	}
	vs_vol_info(vol, &vi0);
	is_int(group(reqs, 3), 0, "a group of three requests");
	ok(reps[0].status == 200 && reps[1].status == 200 &&
		   reps[2].status == 200,
	   "all three applied");
	ok(reps[0].nev && reps[1].nev && reps[2].nev &&
		   reps[0].ev[0].seq < reps[1].ev[0].seq &&
		   reps[1].ev[0].seq < reps[2].ev[0].seq,
	   "events in request order");
	data = slurp(&x, &size);
	ok(data && size == 3000 && data[0] == 'R' && data[2999] == 'R',
	   "store then truncate in one commit");
	free(data);
	snprintf(path, sizeof(path), "%s/volumes/home/data/%02x", rootdir,
		 x.oid[0]);
	{
		DIR *dd = opendir(path);
		struct dirent *de;
		char hex[33];
		int nfiles = 0;

		util_hex_encode(x.oid, 16, hex);
		while (dd && (de = readdir(dd)))
			if (!strncmp(de->d_name, hex, 32))
				nfiles++;
		if (dd)
			closedir(dd);
		/* 3,000 bytes: an inline chunk (format 3), no object. */
		is_int(nfiles, 0, "no data file left: the chunk is inline");
	}
	reps_free(reps, 3);
}

static void
test_cleanup(void)
{
	char path[700], sub[300];
	struct fid f;
	struct proto_attr a;
	uint64_t size;
	char *data;
	int fd;

	vs_lookup(vol, &rootfid, "st", &f);
	vs_getattr(vol, &f, &a);
	/* What a crash leaves: a chunk object of a DV never committed, a
	 * torn staged chunk, a replaced chunk object not yet unlinked, a
	 * format 1 data file of a converted volume. */
	snprintf(sub, sizeof(sub), "%s/volumes/home/data/%02x", rootdir,
		 f.oid[0]);
	{
		char hex[33];

		util_hex_encode(f.oid, 16, hex);
		snprintf(path, sizeof(path), "%s/%s.0.%" PRIu64, sub, hex,
			 a.dv + 1);
		fd = open(path, O_CREAT | O_WRONLY, 0600);
		close(fd);
		snprintf(path, sizeof(path), "%s/%s.0.%" PRIu64, sub, hex,
			 a.dv - 1);
		fd = open(path, O_CREAT | O_WRONLY, 0600);
		close(fd);
		snprintf(path, sizeof(path), "%s/%s.%" PRIu64, sub, hex, a.dv);
		fd = open(path, O_CREAT | O_WRONLY, 0600);
		close(fd);
		/* The file's 10 bytes are inline: an object of the same
		 * name (a try that was never committed) is a leftover too. */
		snprintf(path, sizeof(path), "%s/%s.0.%" PRIu64, sub, hex,
			 a.dv);
		fd = open(path, O_CREAT | O_WRONLY, 0600);
		close(fd);
	}
	snprintf(path, sizeof(path), "%s/volumes/home/stage/abc", rootdir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/volumes/home/stage/abc/x.1.0.99.tmp",
		 rootdir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	close(fd);
	is_int(count_files(sub) >= 4, 1, "leftovers in place");
	vs_vol_close(vol);
	{
		char mark[400];

		/* A clean close leaves the marker that lets the next open
		 * skip the scan; a crash leaves none. */
		snprintf(mark, sizeof(mark), "%s/volumes/home/clean", rootdir);
		is_int(access(mark, F_OK), 0, "a clean close writes the marker");
		is_int(vs_vol_open(root, "home", VS_CLEANUP, &vol), 0,
		       "open with the marker");
		is_int(access(mark, F_OK), -1, "the open takes it away");
		is_int(count_files(sub) >= 4, 1, "and skips the scan");
		vs_vol_close(vol);
		is_int(unlink(mark), 0, "remove the marker (a crash)");
	}
	is_int(vs_vol_open(root, "home", VS_CLEANUP, &vol), 0,
	       "reopen with cleanup");
	is_int(access(path, F_OK), -1, "staged temp file removed");
	data = slurp(&f, &size);
	ok(data && size == 10, "the current data survives");
	free(data);
	{
		char hex[33];

		util_hex_encode(f.oid, 16, hex);
		snprintf(path, sizeof(path), "%s/%s.0.%" PRIu64, sub, hex,
			 a.dv + 1);
		is_int(access(path, F_OK), -1,
		       "uncommitted chunk object removed");
		snprintf(path, sizeof(path), "%s/%s.0.%" PRIu64, sub, hex,
			 a.dv - 1);
		is_int(access(path, F_OK), -1, "replaced chunk object removed");
		snprintf(path, sizeof(path), "%s/%s.%" PRIu64, sub, hex, a.dv);
		is_int(access(path, F_OK), -1, "format 1 data file removed");
		snprintf(path, sizeof(path), "%s/%s.0.%" PRIu64, sub, hex,
			 a.dv);
		is_int(access(path, F_OK), -1,
		       "an object shadowing the inline chunk removed");
	}
}

/* Snapshot directories in the root. */
static int
snaps(void)
{
	char path[300];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/volumes", rootdir);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, ".snap-", 6))
			n++;
	closedir(d);
	return n;
}

/* Chunk objects of file @f in the volume "home". */
static int
count_objs(const struct fid *f)
{
	char sub[300], hex[33];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(sub, sizeof(sub), "%s/volumes/home/data/%02x", rootdir,
		 f->oid[0]);
	util_hex_encode(f->oid, 16, hex);
	d = opendir(sub);
	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, hex, 32) && de->d_name[32] == '.')
			n++;
	closedir(d);
	return n;
}

/* Store @nchunks chunks of size @cs (staged as runs of @fill) into @f at
 * its current DV with new size @size; @return the status. */
static int
store_fill(const struct fid *f, uint32_t cs, const uint64_t *chunks,
	   size_t nchunks, uint64_t size, char fill)
{
	struct proto_op op = {0};
	struct proto_attr a;

	vs_getattr(vol, f, &a);
	op.kind = PROTO_OP_STORE;
	op.fid = *f;
	op.base_dv = a.dv;
	memset(op.txid, fill, 16);
	op.txid[0] = (uint8_t)opcount;
	for (size_t i = 0; i < nchunks; i++) {
		uint64_t len = size - chunks[i] * cs < cs ? size - chunks[i] * cs
							  : cs;

		if (stage(f, op.txid, chunks[i], cs, fill, (size_t)len))
			return -1;
	}
	op.chunk_size = cs;
	op.size = size;
	op.chunks = (uint64_t *)chunks;
	op.nchunks = nchunks;
	return apply(&op, NULL, NULL);
}

/* @data (@size bytes) is @want bytes of @c from @from on. */
static bool
run_is(const char *data, uint64_t from, uint64_t len, char c)
{
	for (uint64_t i = from; i < from + len; i++)
		if (data[i] != c) {
			diag("byte %" PRIu64 " is %d, not %d", i, data[i], c);
			return false;
		}
	return true;
}

static unsigned
vol_format(void)
{
	struct vs_volinfo vi;

	return vs_vol_info(vol, &vi) ? 0 : vi.format;
}

/* Format 3: chunks of at most 64 KiB written by the server are kept in
 * their map entry (inline): no object, durable with the commit alone.
 * A chunk moves between inline and object as it shrinks and grows. */
static void
test_inline(void)
{
	const uint64_t K = 1024;
	struct proto_op op = {0};
	struct proto_attr a;
	struct fid f;
	uint64_t size, c0[] = {0}, c1[] = {1};
	char *data, small[1000];

	mk(PROTO_OP_CREATE, &rootfid, "inl", &f);
	memset(small, 'A', sizeof(small));
	vs_getattr(vol, &f, &a);
	op.kind = PROTO_OP_STORE;
	op.fid = f;
	op.base_dv = a.dv;
	memset(op.txid, 7, 16);
	op.chunk_size = 65536;
	op.size = sizeof(small);
	op.chunks = c0;
	op.nchunks = 1;
	op.data = (uint8_t *)small;
	op.dlen = sizeof(small);
	is_int(apply(&op, NULL, NULL), 200, "inline store of 1,000 bytes");
	is_int(count_objs(&f), 0, "no chunk object for it");
	is_int((int)vol_format(), 3, "the volume is format 3 now");
	data = slurp(&f, &size);
	ok(data && size == 1000 && run_is(data, 0, 1000, 'A'),
	   "its bytes read back");
	free(data);
	is_int(store_fill(&f, 262144, c0, 1, 200 * K, 'B'), 200,
	       "a 200 KiB store over it");
	is_int(count_objs(&f), 1, "now a chunk object");
	data = slurp(&f, &size);
	ok(data && size == 200 * K && run_is(data, 0, 200 * K, 'B'),
	   "200 KiB of B");
	free(data);
	memset(&op, 0, sizeof(op));
	vs_getattr(vol, &f, &a);
	op.kind = PROTO_OP_SETATTR;
	op.fid = f;
	op.base_dv = a.dv;
	op.mask = PROTO_SA_SIZE;
	op.size = 50;
	is_int(apply(&op, NULL, NULL), 200, "truncate to 50 bytes");
	is_int(count_objs(&f), 0, "trimmed into an inline chunk, object gone");
	is_int(store_fill(&f, 65536, c1, 1, 128 * K, 'C'), 200,
	       "a 64 KiB client chunk merged into the inline server chunk");
	is_int(count_objs(&f), 1, "128 KiB: an object again");
	data = slurp(&f, &size);
	ok(data && size == 128 * K && run_is(data, 0, 50, 'B') &&
		   run_is(data, 50, 64 * K - 50, 0) &&
		   run_is(data, 64 * K, 64 * K, 'C'),
	   "50 B, zeros, 64 KiB of C");
	free(data);
	is_int(store_fill(&f, 65536, c0, 1, 10 * K, 'D'), 200,
	       "shrink by a store of 10 KiB");
	is_int(count_objs(&f), 0, "inline again");
	data = slurp(&f, &size);
	ok(data && size == 10 * K && run_is(data, 0, 10 * K, 'D'),
	   "10 KiB of D");
	free(data);
	is_int(rm(PROTO_OP_UNLINK, &rootfid, "inl", &f, NULL), 200,
	       "unlink it");
	{
		struct proto_attr ga;

		is_int(vs_getattr(vol, &f, &ga), -ENOENT, "gone");
	}
}

/* Format 2 (issue #14): a store writes the server chunks it covers and
 * nothing else, small client chunks are merged into their server chunk,
 * a truncate drops and trims, a snapshot keeps its instant, an unlink
 * frees every object. */
static void
test_chunks(void)
{
	const uint64_t M = 1u << 20, K = 1024;
	struct vs_volinfo vi;
	struct vs_vol *snap = NULL;
	struct proto_op op = {0};
	struct proto_attr a, sa;
	struct fid f;
	uint64_t size, c1[] = {1}, c20[] = {20}, c0[] = {0};
	char *data;

	is_int(vs_vol_info(vol, &vi), 0, "info");
	is_int(vi.chunk_size, VS_CHUNK_DEFAULT, "a new volume has 256 KiB chunks");
	is_int((int)vi.format, 3, "format 3 since the small stores before");
	mk(PROTO_OP_CREATE, &rootfid, "chunky", &f);
	is_int(store_fill(&f, 1 << 20, c1, 1, 3 * M, 'X'), 200,
	       "store chunk 1 of 1 MiB into a 3 MiB file");
	is_int(count_objs(&f), 4, "four 256 KiB objects, holes have none");
	data = slurp(&f, &size);
	ok(data && size == 3 * M && run_is(data, 0, M, 0) &&
		   run_is(data, M, M, 'X') && run_is(data, 2 * M, M, 0),
	   "holes, 1 MiB of X, holes");
	free(data);
	is_int(store_fill(&f, 65536, c20, 1, 3 * M, 'Y'), 200,
	       "a 64 KiB chunk inside a 256 KiB server chunk");
	is_int(count_objs(&f), 4, "merged: still four objects, the old one gone");
	data = slurp(&f, &size);
	ok(data && run_is(data, M, 256 * K, 'X') &&
		   run_is(data, M + 256 * K, 64 * K, 'Y') &&
		   run_is(data, M + 320 * K, 704 * K, 'X'),
	   "X, the 64 KiB of Y, X");
	free(data);

	/* A snapshot keeps this instant whatever comes next. tdb opens a
	 * file once per process: our handle steps aside meanwhile. */
	vs_vol_close(vol);
	is_int(vs_vol_open(root, "home", VS_SNAPSHOT, &snap), 0,
	       "snapshot of the volume");
	is_int(snaps(), 1, "a hidden snapshot directory");
	is_int(vs_vol_open(root, "home", 0, &vol), 0, "reopen the volume");
	vs_getattr(vol, &f, &sa);

	memset(&op, 0, sizeof(op));
	op.kind = PROTO_OP_SETATTR;
	op.fid = f;
	op.base_dv = sa.dv;
	op.mask = PROTO_SA_SIZE;
	op.size = M + 100;
	is_int(apply(&op, NULL, NULL), 200, "truncate to 1 MiB + 100");
	is_int(count_objs(&f), 0,
	       "no object left: the 100 bytes kept are an inline chunk");
	vs_getattr(vol, &f, &a);
	op.base_dv = a.dv;
	op.size = 2 * M;
	is_int(apply(&op, NULL, NULL), 200, "grow to 2 MiB");
	data = slurp(&f, &size);
	ok(data && size == 2 * M && run_is(data, M, 100, 'X') &&
		   run_is(data, M + 100, M - 100, 0),
	   "the bytes past the cut read as zeros after growing");
	free(data);
	is_int(store_fill(&f, 1 << 20, c0, 1, 2 * M, 'Z'), 200,
	       "store chunk 0");
	if (snap) {
		struct vs_extent ext[VS_EXTENTS_MAX];
		uint64_t cur, ssz;
		size_t n;
		char buf[4];
		int rc = vs_data_open(snap, &f, sa.dv, M + 256 * K, 4, ext, &n,
				      &ssz, &cur);

		ok(rc == 0 && n == 1 && ext[0].fd >= 0 &&
			   pread(ext[0].fd, buf, 4, (off_t)ext[0].off) == 4 &&
			   !memcmp(buf, "YYYY", 4) && ssz == 3 * M,
		   "the snapshot still reads the old DV's bytes");
		for (size_t i = 0; i < n; i++)
			if (ext[i].fd >= 0)
				close(ext[i].fd);
		vs_vol_close(snap);
	}
	is_int(snaps(), 0, "the snapshot directory went at close");

	is_int(rm(PROTO_OP_UNLINK, &rootfid, "chunky", &f, NULL), 200,
	       "unlink the file");
	is_int(count_objs(&f), 0, "every chunk object freed");
}

/* Staged bytes count against the quota and the staging cap, refusals
 * change nothing, and staging expires by creation time (issue #12). */
/* A damaged meta.tdb gives the errno common/tdbw.h documents, -EUCLEAN,
 * as the replay log and the metadata cache do (it was -EIO here). */
/* Rewrite the chunk map entry of chunk 0 of @f in volume @name (closed)
 * as @len bytes of @val. */
static int
cmap_poke(const char *name, const struct fid *f, const void *val, size_t len)
{
	char path[512];
	uint8_t k[25];
	struct tdb_context *tdb;
	int rc;

	snprintf(path, sizeof(path), "%s/volumes/%s/meta.tdb", rootdir, name);
	tdb = tdb_open(path, 0, TDB_DEFAULT, O_RDWR, 0600);
	if (!tdb)
		return -1;
	k[0] = 'C';
	memcpy(k + 1, f->oid, 16);
	memset(k + 17, 0, 8);
	rc = tdbw_store(tdb, k, sizeof(k), val, len, TDB_MODIFY);
	tdb_close(tdb);
	return rc;
}

/* Damaged inline entries (format 3) read as -EUCLEAN, never as other
 * bytes: a length that does not match the value, the inline flag missing
 * on a long value, a length past 64 KiB. */
static void
test_damaged_inline(void)
{
	struct vs_vol *saved = vol;
	struct vs_extent ext[VS_EXTENTS_MAX];
	struct vs_volinfo vi;
	struct proto_op op = {0};
	struct proto_attr a;
	struct fid f;
	uint64_t c0[] = {0}, size, cur;
	uint8_t val[16 + 100];
	uint32_t u32;
	size_t n;
	char small[100];

	vs_vol_create(root, "dmg3", 0, 0, 0, NULL);
	if (vs_vol_open(root, "dmg3", VS_NOSYNC, &vol)) {
		vol = saved;
		ok(0, "open dmg3");
		return;
	}
	vs_vol_info(vol, &vi);
	mk(PROTO_OP_CREATE, &vi.root, "f", &f);
	memset(small, 'q', sizeof(small));
	vs_getattr(vol, &f, &a);
	op.kind = PROTO_OP_STORE;
	op.fid = f;
	op.base_dv = a.dv;
	op.chunk_size = 65536;
	op.size = sizeof(small);
	op.chunks = c0;
	op.nchunks = 1;
	op.data = small;
	op.dlen = sizeof(small);
	is_int(apply(&op, NULL, NULL), 200, "an inline store of 100 bytes");
	vs_getattr(vol, &f, &a);
	vs_vol_close(vol);
	/* The good entry, to damage copies of it. */
	memset(val, 0, sizeof(val));
	memcpy(val, &a.dv, 8);
	u32 = 100;
	memcpy(val + 8, &u32, 4);
	u32 = 1;
	memcpy(val + 12, &u32, 4);
	memset(val + 16, 'q', 100);
	for (int i = 0; i < 4; i++) {
		static const char *what[] = {
			"a value shorter than its length says",
			"a long value without the inline flag",
			"a length past 64 KiB",
			"the intact entry",
		};
		uint8_t bad[sizeof(val)];
		size_t blen = sizeof(val);
		int want = i == 3 ? 0 : -EUCLEAN;

		memcpy(bad, val, sizeof(val));
		if (i == 0)
			blen -= 10;
		if (i == 1)
			bad[12] = 0;
		if (i == 2) {
			u32 = 70000;
			memcpy(bad + 8, &u32, 4);
		}
		is_int(cmap_poke("dmg3", &f, bad, blen), 0, "poke the entry");
		vol = NULL;
		if (vs_vol_open(root, "dmg3", VS_NOSYNC, &vol)) {
			ok(0, "reopen dmg3");
			break;
		}
		n = 0;
		is_int(vs_data_open(vol, &f, a.dv, 0, 65536, ext, &n, &size,
				    &cur),
		       want, "%s", what[i]);
		if (i == 3) {
			char got[100] = {0};

			ok(n == 1 && ext[0].fd >= 0 &&
				   pread(ext[0].fd, got, 100, 0) == 100 &&
				   !memcmp(got, small, 100),
			   "and it reads its 100 bytes");
		}
		for (size_t j = 0; j < n; j++)
			if (ext[j].fd >= 0)
				close(ext[j].fd);
		vs_vol_close(vol);
	}
	vol = saved;
}

static void
test_damaged_meta(void)
{
	struct vs_vol *v = NULL;
	char path[512];
	int fd;

	is_int(vs_vol_create(root, "dmg1", 0, 0, 0, NULL), 0,
	       "create a volume to damage");
	snprintf(path, sizeof(path), "%s/volumes/dmg1/meta.tdb", rootdir);
	fd = open(path, O_WRONLY | O_TRUNC);
	ok(fd >= 0 && write(fd, "not a tdb file at all, none", 27) == 27,
	   "overwrite its meta.tdb with garbage");
	if (fd >= 0)
		close(fd);
	is_int(vs_vol_open(root, "dmg1", VS_NOSYNC, &v), -EUCLEAN,
	       "open of a garbage meta.tdb: -EUCLEAN");
	ok(v == NULL, "no handle");

	is_int(vs_vol_create(root, "dmg2", 0, 0, 0, NULL), 0,
	       "create another");
	snprintf(path, sizeof(path), "%s/volumes/dmg2/meta.tdb", rootdir);
	is_int(tdb_damage_record(path, "V", 1), 0,
	       "smash the volume record's tdb header");
	v = NULL;
	is_int(vs_vol_open(root, "dmg2", VS_NOSYNC, &v), -EUCLEAN,
	       "open with a corrupt volume record: -EUCLEAN");
	vs_vol_close(v);
	test_damaged_inline();
}

static void
test_stage_limits(void)
{
	struct vs_vol *saved = vol;
	struct vs_volinfo vi;
	struct proto_op op = {0};
	struct fid f;
	uint8_t txid[16], txid2[16];
	uint64_t chunks[3] = {0, 1, 2};
	char path[512], hex[33];
	struct timespec old[2];
	struct stat st;

	vs_vol_create(root, "quota", 200 << 10, 0, 0, NULL);
	if (vs_vol_open(root, "quota", VS_NOSYNC, &vol)) {
		vol = saved;
		ok(0, "open quota");
		return;
	}
	vs_vol_info(vol, &vi);
	is_int(mk(PROTO_OP_CREATE, &vi.root, "f", &f), 200, "create f");
	memset(txid, 0x31, 16);
	is_int(stage(&f, txid, 0, 65536, 'a', 65536), 0, "stage 64 KiB");
	is_int(stage(&f, txid, 1, 65536, 'b', 65536), 0, "stage 128 KiB");
	is_int(stage(&f, txid, 2, 65536, 'c', 65536), 0, "stage 192 KiB");
	is_int((int)vs_staged_bytes(vol), 3 * 65536, "192 KiB staged");
	is_int(stage(&f, txid, 3, 65536, 'd', 65536), -EDQUOT,
	       "a chunk past the 200 KiB quota is EDQUOT");
	util_hex_encode(txid, 16, hex);
	snprintf(path, sizeof(path), "%s/volumes/quota/stage/%s", rootdir, hex);
	{
		DIR *d = opendir(path);
		struct dirent *de;
		int n = 0;

		while (d && (de = readdir(d)))
			if (de->d_name[0] != '.')
				n++;
		if (d)
			closedir(d);
		is_int(n, 3, "the refused chunk left no file");
	}
	is_int((int)vs_staged_bytes(vol), 3 * 65536, "nor counts");
	is_int(stage(&f, txid, 1, 65536, 'B', 65536), 0,
	       "writing a staged chunk again counts once");
	op.kind = PROTO_OP_STORE;
	op.fid = f;
	op.base_dv = 0;
	{
		struct proto_attr a;

		vs_getattr(vol, &f, &a);
		op.base_dv = a.dv;
	}
	memcpy(op.txid, txid, 16);
	op.chunk_size = 65536;
	op.size = 3 * 65536;
	op.chunks = chunks;
	op.nchunks = 3;
	is_int(apply(&op, NULL, NULL), 200, "store the three");
	is_int((int)vs_staged_bytes(vol), 0, "the store used up the stage");
	is_int(access(path, F_OK), -1, "and removed its directory");
	vs_vol_info(vol, &vi);
	is_int((int)vi.bytes_used, 3 * 65536, "192 KiB used");
	{
		struct proto_op sa = {0};
		struct proto_attr a;
		struct vs_reply rep;

		vs_getattr(vol, &f, &a);
		sa.kind = PROTO_OP_SETATTR;
		sa.fid = f;
		sa.base_dv = a.dv;
		sa.mask = PROTO_SA_SIZE;
		sa.size = 256 << 10;
		is_int(apply(&sa, NULL, &rep), 507,
		       "truncate up past the 200 KiB quota is 507");
		is_int(err_of(&rep), EDQUOT, "... EDQUOT");
		free(rep.body);
		vs_getattr(vol, &f, &a);
		ok(a.size == 3 * 65536 && a.dv == sa.base_dv,
		   "the refused truncate changed neither size nor DV");
		sa.size = 100 << 10;
		is_int(apply(&sa, NULL, NULL), 200, "truncate down to 100 KiB");
		vs_getattr(vol, &f, &a);
		ok(a.size == 100 << 10 && a.dv == sa.base_dv + 1,
		   "size set, DV moved on by one");
		vs_vol_info(vol, &vi);
		is_int((int)vi.bytes_used, 100 << 10, "100 KiB used");
		sa.base_dv++;
		sa.size = 3 * 65536;
		is_int(apply(&sa, NULL, NULL), 200,
		       "truncate up to 192 KiB again, within the quota");
		vs_vol_info(vol, &vi);
		is_int((int)vi.bytes_used, 3 * 65536, "192 KiB used again");
	}
	is_int(stage(&f, txid, 3, 65536, 'd', 65536), -EDQUOT,
	       "used + staged past the quota is EDQUOT");
	is_int(stage(&f, txid, 3, 65536, 'd', 8192), 0,
	       "what still fits is fine");

	/* The staging cap, for volumes without a quota. */
	vs_vol_set_limits(vol, 0, 0);
	vs_vol_set_stage_max(vol, 100 << 10);
	memset(txid2, 0x32, 16);
	is_int(stage(&f, txid2, 0, 65536, 'x', 65536), 0,
	       "64 KiB more under a 100 KiB cap");
	is_int(stage(&f, txid2, 1, 65536, 'y', 65536), -EDQUOT,
	       "past the staging cap is EDQUOT");
	vs_vol_set_stage_max(vol, 0);

	/* Expiry goes by creation: txid2 was created long ago (its marker
	 * says so) but written just now; txid is as old but untouched;
	 * a third one is new. */
	is_int(stage(&f, txid2, 1, 65536, 'y', 65536), 0,
	       "a write into the old transaction");
	old[0].tv_sec = old[1].tv_sec = time(NULL) - 1000;
	old[0].tv_nsec = old[1].tv_nsec = 0;
	util_hex_encode(txid2, 16, hex);
	snprintf(path, sizeof(path), "%s/volumes/quota/stage/%s/.born", rootdir,
		 hex);
	is_int(utimensat(AT_FDCWD, path, old, 0), 0,
	       "age its creation to 1000 s ago");
	snprintf(path, sizeof(path), "%s/volumes/quota/stage/%s", rootdir, hex);
	is_int(stage(&f, txid2, 2, 65536, 'z', 100), 0,
	       "and write into it once more");
	memset(txid, 0x33, 16);
	is_int(stage(&f, txid, 0, 65536, 'n', 100), 0, "a new transaction");
	is_int(vs_stage_gc(vol, 500), 1, "gc at 500 s removes one");
	is_int(stat(path, &st), -1, "the old one, written to recently");
	util_hex_encode(txid, 16, hex);
	snprintf(path, sizeof(path), "%s/volumes/quota/stage/%s", rootdir, hex);
	is_int(stat(path, &st), 0, "the new one stays");
	is_int((int)vs_staged_bytes(vol), 8192 + 100,
	       "the count follows (the 8 KiB chunk and the new one)");
	vs_vol_close(vol);
	is_int(vs_vol_open(root, "quota", VS_NOSYNC, &vol), 0, "reopen");
	is_int((int)vs_staged_bytes(vol), 8192 + 100,
	       "staged bytes are counted again at open");
	vs_vol_close(vol);
	vol = saved;
}

static void
test_bigdir(void)
{
	struct vs_vol *saved = vol;
	struct proto_dir d;
	struct fid dir, f;
	uint64_t t0, t1, t2;
	char name[32];
	int bad = 0;

	/* No fsync here: this checks the directory structure, not the disk. */
	vs_vol_create(root, "big", 0, 0, 0, NULL);
	if (vs_vol_open(root, "big", VS_NOSYNC, &vol)) {
		vol = saved;
		ok(0, "open big");
		return;
	}
	{
		struct vs_volinfo vi;

		vs_vol_info(vol, &vi);
		dir = vi.root;
	}
	t0 = util_now_ms();
	for (int i = 0; i < BIGDIR_N; i++) {
		snprintf(name, sizeof(name), "file-%05d", i);
		if (mk(PROTO_OP_CREATE, &dir, name, &f) != 200)
			bad++;
	}
	t1 = util_now_ms();
	is_int(bad, 0, "%d creates", BIGDIR_N);
	is_int(vs_readdir(vol, &dir, &d), 0, "readdir of %d", BIGDIR_N);
	t2 = util_now_ms();
	is_int(d.n, BIGDIR_N, "all entries listed");
	{
		char *seen = calloc(BIGDIR_N, 1);
		int dup = 0;

		for (size_t i = 0; i < d.n; i++) {
			int k = atoi(d.ents[i].name + 5);

			if (seen[k]++)
				dup++;
		}
		is_int(dup, 0, "no name twice");
		free(seen);
	}
	proto_dir_release(&d);
	diag("%d creates: %" PRIu64 " ms, readdirplus: %" PRIu64 " ms",
	     BIGDIR_N, t1 - t0, t2 - t1);
	ok(t2 - t1 < 2000, "readdirplus under 2 s");
	/* The same directory in pages: every entry once, on pages of at
	 * most the limit, all tied to one DV. */
	{
		char *seen = calloc(BIGDIR_N, 1);
		struct proto_dir_cursor cur, nx;
		struct proto_dir pg;
		size_t total = 0, pages = 0, over = 0;
		bool more = true, first = true;
		int dup = 0, rc = 0;

		while (more && pages < 1000) {
			rc = vs_readdir_page(vol, &dir, first ? NULL : &cur,
					     333, &pg, &nx, &more);
			if (rc)
				break;
			first = false;
			pages++;
			if (pg.n > 333)
				over++;
			for (size_t i = 0; i < pg.n; i++)
				if (seen[atoi(pg.ents[i].name + 5)]++)
					dup++;
			total += pg.n;
			if (more && nx.dv != pg.dir.dv)
				over++;
			proto_dir_release(&pg);
			cur = nx;
		}
		is_int(rc, 0, "paged readdir");
		is_int((int)total, BIGDIR_N, "pages hold every entry");
		is_int(dup, 0, "no entry on two pages");
		is_int((int)over, 0,
		       "no page over the limit, cursors carry "
		       "the DV");
		is_int((int)pages, (BIGDIR_N + 332) / 333, "fewest pages");
		free(seen);

		/* A cursor from the first page, then a change: stale. */
		is_int(vs_readdir_page(vol, &dir, NULL, 10, &pg, &cur, &more),
		       0, "first page of 10");
		ok(more && pg.n == 10, "more to come");
		proto_dir_release(&pg);
		is_int(mk(PROTO_OP_CREATE, &dir, "late", &f), 200,
		       "a create between pages");
		is_int(vs_readdir_page(vol, &dir, &cur, 10, &pg, &nx, &more),
		       -ESTALE, "the old cursor is stale");
		ok(pg.dir.dv == cur.dv + 1 && pg.n == 0 && !more,
		   "stale reply names the new DV, no entries");
		proto_dir_release(&pg);
		is_int(rm(PROTO_OP_UNLINK, &dir, "late", &f, NULL), 200,
		       "unlink it again");
		cur.bucket = 1u << 30;
		cur.dv += 2; /* the create and the unlink */
		is_int(vs_readdir_page(vol, &dir, &cur, 10, &pg, &nx, &more), 0,
		       "a cursor past the last bucket");
		ok(pg.n == 0 && !more, "is an empty last page");
		proto_dir_release(&pg);
		is_int(vs_readdir_page(vol, &f, NULL, 10, &pg, &nx, &more),
		       -ENOENT, "paging a removed object");
	}
	is_int(vs_lookup(vol, &dir, "file-02424", &f), 0, "lookup one");
	is_int(rm(PROTO_OP_UNLINK, &dir, "file-02424", &f, NULL), 200,
	       "unlink one");
	is_int(vs_readdir(vol, &dir, &d), 0, "readdir again");
	is_int(d.n, BIGDIR_N - 1, "one fewer left");
	proto_dir_release(&d);
	vs_vol_close(vol);
	vol = saved;
}

/* Write @text as volume @name's token state file. */
static void
put_tokens(const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/volumes/%s/tokens", rootdir, name);
	f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* The token state is parsed strictly, and a revoke never wraps the epoch
 * back to 0 (which would make every old token valid again). */
static void
test_tokstate(void)
{
	struct vs_tokstate ts = {0};
	uint64_t e = 0;

	is_int(vs_vol_create(root, "tk", 0, 0, 0, NULL), 0, "volume tk");
	put_tokens("tk", "0000abcd 5\n");
	is_int(vs_tokstate_get(root, "tk", true, &ts), 0, "token state read");
	ok(ts.id == 0xabcd && ts.epoch == 5, "id and epoch (%" PRIu64 ")",
	   ts.epoch);
	put_tokens("tk", "0000abcd 5\n0000abcd 0\n");
	is_int(vs_tokstate_get(root, "tk", true, &ts), -EINVAL,
	       "a trailing line: EINVAL");
	put_tokens("tk", "0000abcd 5\n\n");
	is_int(vs_tokstate_get(root, "tk", true, &ts), -EINVAL,
	       "a trailing empty line: EINVAL");
	put_tokens("tk", "0000abcd 18446744073709551615\n");
	is_int(vs_vol_revoke(root, "tk", &e), -EOVERFLOW,
	       "revoke at the largest epoch: EOVERFLOW, not a wrap to 0");
	memset(&ts, 0, sizeof(ts));
	is_int(vs_tokstate_get(root, "tk", true, &ts), 0, "state still read");
	ok(ts.epoch == UINT64_MAX, "and unchanged");
	put_tokens("tk", "0000abcd 5\n");
	is_int(vs_vol_revoke(root, "tk", &e), 0, "a normal revoke");
	ok(e > 5, "moves the epoch on (%" PRIu64 ")", e);
	is_int(vs_vol_remove(root, "tk", 0), 0, "remove tk");
}

/* VS_BULK (vos import): no transactions, buckets in memory until
 * vs_vol_sync(), a failure breaks the handle; buckets stored padded; the
 * hash table sized to the tree. */
static int
bulk_create(struct vs_vol *v, const struct fid *dir, const char *name,
	    enum proto_op_kind k, struct fid *out)
{
	struct proto_op op = {0};
	struct proto_op_result res;
	int rc;

	op.kind = k;
	op.parent = *dir;
	op.name = (char *)name;
	op.type = k == PROTO_OP_MKDIR ? PROTO_T_DIR : PROTO_T_FILE;
	op.mode = 0644;
	opid(&op);
	rc = vs_apply_raw(v, &op, &res);
	if (!rc && out)
		*out = res.attr.fid;
	return rc;
}

static int
count_names(struct vs_vol *v, const struct fid *dir, const char *prefix,
	    int n, int *dups)
{
	struct proto_dir d;
	char *seen = calloc((size_t)n, 1);
	int found = 0;

	*dups = 0;
	if (!seen || vs_readdir(v, dir, &d)) {
		free(seen);
		return -1;
	}
	for (size_t i = 0; i < d.n; i++) {
		size_t pl = strlen(prefix);
		int k;

		if (strncmp(d.ents[i].name, prefix, pl))
			continue;
		k = atoi(d.ents[i].name + pl);
		if (k < 0 || k >= n)
			continue;
		if (seen[k]++)
			(*dups)++;
		else
			found++;
	}
	proto_dir_release(&d);
	free(seen);
	return found;
}

static void
test_bulk(void)
{
	struct vs_vol *v = NULL;
	struct vs_volinfo vi;
	struct fid dir, sub, f;
	uint8_t k[21], *val;
	size_t len;
	char name[32];
	int bad = 0, dups, n = 3000;

	is_int((int)vs_hash_size(0), 10007, "hash size: default");
	is_int((int)vs_hash_size(2501), 10007, "  up to 2,501 objects");
	is_int((int)vs_hash_size(2502), 10009, "  four chains an object, odd");
	is_int((int)vs_hash_size(100000), 400001, "  ...at 100,000");
	is_int((int)vs_hash_size(1ull << 40), (1 << 24) | 1,
	       "  at most 2^24 chains");
	vs_vol_create(root, "bulkx", 0, 0, 0, NULL);
	is_int(vs_vol_open(root, "bulkx", VS_BULK, &v), -EINVAL,
	       "VS_BULK on a published volume: EINVAL");
	vs_vol_remove(root, "bulkx", 0);
	is_int(vs_vol_create_sized(root, "bulk", 0, 0, VS_STAGED, 50000, NULL),
	       0, "a staged volume sized for 50,000 objects");
	is_int(vs_vol_open(root, "bulk", VS_STAGED | VS_BULK | VS_RDONLY, &v),
	       -EINVAL, "VS_BULK read-only: EINVAL");
	is_int(vs_vol_open(root, "bulk", VS_STAGED | VS_NOSYNC | VS_BULK, &v),
	       0, "open it for bulk writes");
	if (!v)
		return;
	ok(tdb_hash_size(v->tdb) == 200001, "its tdb has 200,001 chains");
	vs_vol_info(v, &vi);
	dir = vi.root;
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "e%05d", i);
		if (bulk_create(v, &dir, name, PROTO_OP_CREATE, &f))
			bad++;
	}
	is_int(bad, 0, "%d creates without transactions", n);
	is_int(bulk_create(v, &dir, "sub", PROTO_OP_MKDIR, &sub), 0, "mkdir");
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "s%03d", i);
		if (bulk_create(v, &sub, name, PROTO_OP_CREATE, NULL))
			bad++;
	}
	is_int(bad, 0, "100 creates in the subdirectory");
	key_bucket(k, dir.oid, 0);
	ok(!kv_exists(v, k, sizeof(k)), "the buckets are not written yet");
	is_int(count_names(v, &dir, "e", n, &dups), n,
	       "yet the handle lists every name (from memory)");
	is_int(dups, 0, "  once each");
	is_int(bulk_create(v, &dir, "e00007", PROTO_OP_CREATE, NULL), -EEXIST,
	       "a name twice fails");
	is_int(bulk_create(v, &dir, "after", PROTO_OP_CREATE, NULL), -EIO,
	       "and every later change is refused (nothing to roll back)");
	/* A fresh handle for the rest (the broken one still syncs). */
	is_int(vs_vol_sync(v), 0, "sync writes the buckets");
	ok(kv_exists(v, k, sizeof(k)), "now they are in meta.tdb");
	is_int(tdbw_fetch(v->tdb, k, sizeof(k), &val, &len), 0,
	       "read a bucket");
	ok(len >= 128 && !(len & (len - 1)) && !val[len - 1],
	   "stored padded to a power of two (%zu bytes)", len);
	free(val);
	vs_vol_close(v);
	v = NULL;
	is_int(vs_vol_publish(root, "bulk"), 0, "publish");
	is_int(vs_vol_open(root, "bulk", 0, &v), 0, "open it normally");
	if (!v)
		return;
	is_int(count_names(v, &dir, "e", n, &dups), n, "every name is there");
	is_int(dups, 0, "  once each");
	is_int(count_names(v, &sub, "s", 100, &dups), 100,
	       "and in the subdirectory");
	/* Transactions on the padded buckets: creates and unlinks. */
	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "t%03d", i);
		if (bulk_create(v, &dir, name, PROTO_OP_CREATE, &f))
			bad++;
		if (i % 2) {
			struct proto_op op = {0};

			op.kind = PROTO_OP_UNLINK;
			op.parent = dir;
			op.name = name;
			op.fid = f;
			opid(&op);
			if (vs_apply_raw(v, &op, NULL))
				bad++;
		}
	}
	is_int(bad, 0, "200 creates and 100 unlinks in transactions");
	is_int(count_names(v, &dir, "t", 200, &dups), 100,
	       "the 100 left are listed");
	is_int(count_names(v, &dir, "e", n, &dups), n, "  and the others");
	vs_vol_close(v);
	vs_vol_remove(root, "bulk", 0);
}

/* vos import's data (vs_import.c): a file of one chunk of at most 16 KiB
 * goes inline (no object, the bytes in the map entry, format 3); a larger
 * chunk is an object; trailing zeros are cut and a chunk of zeros is a
 * hole. The volume reads back the same after publish. */
static int
bulk_file(struct vs_vol *v, const struct fid *dir, const char *name,
	  const uint8_t *data, size_t len, size_t *nobj, size_t *ninl)
{
	char path[300];
	struct proto_op op = {0};
	struct proto_op_result res;
	struct vs_ichunk *c = NULL;
	size_t n = 0;
	uint8_t *buf = malloc(v->cs);
	int fd, rc;

	snprintf(path, sizeof(path), "%s/src.%s", rootdir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || !buf || util_pwrite_all(fd, data, len, 0)) {
		rc = -EIO;
		goto out;
	}
	op.kind = PROTO_OP_CREATE;
	op.parent = *dir;
	op.name = (char *)name;
	op.type = PROTO_T_FILE;
	op.mode = 0644;
	rc = vs_apply_raw(v, &op, &res);
	if (!rc)
		rc = vs_import_write(v, &res.attr.fid, res.attr.dv, fd, len,
				     buf, &c, &n);
	for (size_t i = 0; i < n; i++) {
		if (c[i].data)
			(*ninl)++;
		else
			(*nobj)++;
	}
	if (!rc)
		rc = vs_import_done(v, &res.attr.fid, res.attr.dv, len, c, n, 1,
				    2, 3);
out:
	vs_ichunk_free(c, n);
	free(buf);
	if (fd >= 0)
		close(fd);
	unlink(path);
	return rc;
}

/* vs_import_plan(): the tdb budget of a bulk import (volstore_i.h). */
static void
test_import_plan(void)
{
	struct vs_import_budget b;
	const uint64_t G = 1ull << 30, M = 1ull << 20;

	unsetenv("CAIRN_TEST_TDB_LIMIT");
	unsetenv("CAIRN_TEST_TDB_META_FILE");
	is_int(vs_import_plan(1000, &b), 0, "plan: 1,000 objects fit");
	ok(b.limit == 4 * G && b.reserve == G && b.per_file == 1024 &&
		   b.hard == 3840 * M && b.maxcap == 3 * G,
	   "plan: 4 GiB limit, 1 GiB reserve, 1 KiB an object, 3.75 GiB hard");
	ok(b.cap == 3 * G - 1000 * 1024ull,
	   "plan: cap 3 GiB less the metadata");
	is_int(vs_import_plan(1000000, &b), 0, "plan: 1,000,000 objects fit");
	ok(b.cap == 3 * G - 1000000 * 1024ull, "plan: their cap (~2 GiB)");
	is_int(vs_import_plan(3 * G / 1024, &b), -EFBIG,
	       "plan: metadata of exactly the room: EFBIG");
	is_int(vs_import_plan(3 * G / 1024 - 1, &b), 0,
	       "plan: one object fewer fits");
	ok(b.cap == 1024, "plan: with a cap of 1 KiB");
	is_int(vs_import_plan(UINT64_MAX, &b), -EFBIG,
	       "plan: a count that would overflow: EFBIG");
	setenv("CAIRN_TEST_TDB_LIMIT", "8388608", 1);
	is_int(vs_import_plan(1000, &b), 0, "plan: test limit of 8 MiB");
	ok(b.limit == 8 * M && b.reserve == 2 * M && b.hard == 7 * M + M / 2 &&
		   b.maxcap == 6 * M && b.cap == 6 * M - 1000 * 1024ull,
	   "plan: reserve a quarter, cap three quarters, hard 15/16");
	is_int(vs_import_plan(6144, &b), -EFBIG,
	       "plan: 6 MiB of metadata refused");
	setenv("CAIRN_TEST_TDB_META_FILE", "1", 1);
	is_int(vs_import_plan(6144, &b), 0,
	       "plan: at 1 byte an object it fits");
	setenv("CAIRN_TEST_TDB_LIMIT", "x", 1);
	unsetenv("CAIRN_TEST_TDB_META_FILE");
	is_int(vs_import_plan(1000, &b), 0,
	       "plan: a bad test limit is ignored");
	ok(b.limit == 4 * G, "plan: ... the real limit");
	unsetenv("CAIRN_TEST_TDB_LIMIT");
}

static void
test_bulk_inline(void)
{
	static const size_t sizes[] = {100, 16384, 16385, 300000, 8192};
	const char *names[] = {"small", "edge", "over", "two", "zeros"};
	struct vs_vol *v = NULL, *save = vol;
	struct vs_volinfo vi;
	uint8_t *data = malloc(300000);
	size_t nobj[5] = {0}, ninl[5] = {0};
	int bad = 0;

	if (!data)
		return;
	for (size_t i = 0; i < 300000; i++)
		data[i] = (uint8_t)(i * 7 + 1);
	is_int(vs_vol_create_sized(root, "bi", 0, 0, VS_STAGED, 100, NULL), 0,
	       "a staged volume for the import's data");
	is_int(vs_vol_open(root, "bi", VS_STAGED | VS_NOSYNC | VS_BULK, &v), 0,
	       "open it for bulk writes");
	if (!v) {
		free(data);
		return;
	}
	vs_vol_info(v, &vi);
	ok(vs_import_inlines(v, 1) && vs_import_inlines(v, 16384) &&
		   !vs_import_inlines(v, 16385) &&
		   !vs_import_inlines(v, 300000),
	   "vs_import_inlines: up to 16 KiB");
	for (int i = 0; i < 4; i++)
		if (bulk_file(v, &vi.root, names[i], data, sizes[i], &nobj[i],
			      &ninl[i]))
			bad++;
	/* "zeros": 100 bytes then zeros: one inline chunk of 100. */
	memset(data + 100, 0, sizes[4] - 100);
	if (bulk_file(v, &vi.root, names[4], data, sizes[4], &nobj[4],
		      &ninl[4]))
		bad++;
	is_int(bad, 0, "five files written and recorded");
	ok(ninl[0] == 1 && nobj[0] == 0, "100 B: inline");
	ok(ninl[1] == 1 && nobj[1] == 0, "16 KiB: inline");
	ok(ninl[2] == 0 && nobj[2] == 1, "16 KiB + 1: an object");
	ok(ninl[3] == 0 && nobj[3] == 2, "300,000 B: two objects");
	ok(ninl[4] == 1 && nobj[4] == 0, "8 KiB ending in zeros: inline, cut");
	is_int(vs_vol_sync(v), 0, "sync");
	vs_vol_close(v);
	v = NULL;
	is_int(vs_vol_publish(root, "bi"), 0, "publish");
	is_int(vs_vol_open(root, "bi", 0, &v), 0, "open it normally");
	if (!v) {
		free(data);
		return;
	}
	vs_vol_info(v, &vi);
	is_int(vi.format, 3, "format 3 (inline chunks)");
	vol = v;
	for (size_t i = 0; i < 300000; i++)
		data[i] = (uint8_t)(i * 7 + 1);
	for (int i = 0; i < 5; i++) {
		if (i == 4)
			memset(data + 100, 0, sizes[4] - 100);
		struct fid f;
		uint64_t size = 0;
		char *got = NULL;

		if (vs_lookup(v, &vi.root, names[i], &f) ||
		    !(got = slurp(&f, &size)) || size != sizes[i] ||
		    memcmp(got, data, sizes[i]))
			bad++;
		free(got);
	}
	vol = save;
	is_int(bad, 0, "every file reads back byte for byte");
	vs_vol_close(v);
	vs_vol_remove(root, "bi", 0);
	free(data);
}

/* Mount points (issue #15): mkmount makes an object of type mount with
 * its target, mode 0755, in a COB2 record; the server checks the target
 * itself (vos builds ops without the decoder); nothing goes inside one,
 * it cannot be hard-linked or rmdir'ed, and unlink removes it. */
static void
test_mount(void)
{
	struct fid md, m;
	struct proto_op op = {0};
	struct proto_op_result res;
	struct proto_attr a;
	struct vs_reply rep;
	enum proto_type t = PROTO_T_NONE;
	char *target = NULL, path[512];
	struct tdb_context *tdb;

	is_int(mk(PROTO_OP_MKDIR, &rootfid, "mounts", &md), 200,
	       "mkdir mounts");
	op.kind = PROTO_OP_MKMOUNT;
	op.parent = md;
	op.name = (char *)"proj";
	op.target = (char *)"lab:proj";
	op.uid = 7;
	op.gid = 8;
	op.mode = 0700; /* not on the wire: the server makes 0755 */
	is_int(apply(&op, &res, NULL), 200, "mkmount proj");
	m = res.attr.fid;
	ok(res.attr.type == PROTO_T_MOUNT && res.attr.mode == 0755 &&
		   res.attr.size == 8 && res.attr.nlink == 1 &&
		   res.attr.uid == 7 && res.attr.gid == 8,
	   "the reply: type mount, mode 0755, size 8, owner kept");
	is_int(vs_readlink_type(vol, &m, &target, &t), 0, "read its target");
	ok(target && !strcmp(target, "lab:proj") && t == PROTO_T_MOUNT,
	   "target lab:proj, type mount");
	free(target);
	target = NULL;
	is_int(vs_readlink(vol, &m, &target), 0, "vs_readlink reads it too");
	free(target);
	for (size_t i = 0; i < 4; i++) {
		static const char *const bad[] = {"", "..", "a/b", "x:y:z"};

		op.name = (char *)"bad";
		op.target = (char *)bad[i];
		is_int(apply(&op, NULL, &rep), 400, "mkmount to '%s': 400",
		       bad[i]);
		is_int(err_of(&rep), EINVAL, "... EINVAL");
		free(rep.body);
	}
	op.target = NULL;
	is_int(apply(&op, NULL, NULL), 400, "mkmount without a target: 400");
	is_int(vs_getattr(vol, &md, &a), 0, "getattr mounts");
	is_int((int)a.nlink, 2,
	       "the directory's nlink is unchanged (not a dir)");
	memset(&op, 0, sizeof(op));
	op.kind = PROTO_OP_MKMOUNT;
	op.parent = m;
	op.name = (char *)"in";
	op.target = (char *)"x";
	is_int(apply(&op, NULL, &rep), 400,
	       "mkmount inside a mount point: 400");
	is_int(err_of(&rep), ENOTDIR, "... ENOTDIR");
	free(rep.body);
	memset(&op, 0, sizeof(op));
	op.kind = PROTO_OP_LINK;
	op.parent = md;
	op.name = (char *)"hard";
	op.fid = m;
	is_int(apply(&op, NULL, &rep), 403, "link of a mount point: 403");
	is_int(err_of(&rep), EPERM, "... EPERM");
	free(rep.body);
	op.kind = PROTO_OP_RMDIR;
	op.name = (char *)"proj";
	is_int(apply(&op, NULL, &rep), 400, "rmdir of a mount point: 400");
	is_int(err_of(&rep), ENOTDIR, "... ENOTDIR");
	free(rep.body);

	/* The record: COB2, the 8-byte extension, then the target. */
	vs_vol_close(vol);
	vol = NULL;
	if (vs_vol_meta_path(root, "home", path, sizeof(path)) ||
	    !(tdb = tdb_open(path, 0, 0, O_RDONLY, 0600))) {
		ok(0, "open meta.tdb");
		return;
	}
	{
		uint8_t kb[17];
		TDB_DATA k = {.dptr = kb, .dsize = 17}, d;
		uint32_t magic = 0;

		kb[0] = 'O';
		memcpy(kb + 1, m.oid, 16);
		d = tdb_fetch(tdb, k);
		if (d.dptr && d.dsize >= 4)
			memcpy(&magic, d.dptr, 4);
		is_int(magic, 0x434f4232, "mount point: record magic COB2");
		is_int(d.dsize, 112 + 8, "record length: 104 + 8 + the target");
		ok(d.dptr && d.dsize == 120 &&
			   !memcmp(d.dptr + 112, "lab:proj", 8),
		   "the target follows the extension");
		free(d.dptr);
	}
	tdb_close(tdb);
	if (vs_vol_open(root, "home", VS_CLEANUP, &vol)) {
		ok(0, "reopen");
		return;
	}
	is_int(vs_getattr(vol, &m, &a), 0, "reopened: the mount point reads");
	ok(a.type == PROTO_T_MOUNT && a.size == 8, "... as a mount point");
	memset(&op, 0, sizeof(op));
	op.kind = PROTO_OP_UNLINK;
	op.parent = md;
	op.name = (char *)"proj";
	op.fid = m;
	is_int(apply(&op, NULL, NULL), 200,
	       "unlink of the mount point (rmmount)");
	is_int(vs_getattr(vol, &m, &a), -ENOENT, "it is gone");
}

/* Sockets and device nodes (issue #16): created with their device
 * number, kept in the longer COB2 record (every other type stays COB1),
 * a longer extension read by its length, a bad one refused. Last, since
 * it damages a record of its own directory. */
static void
test_special(void)
{
	static const enum proto_type tt[] = {PROTO_T_SOCK, PROTO_T_CHR,
					     PROTO_T_BLK, PROTO_T_FIFO};
	static const char *const tn[] = {"sock", "chr", "blk", "fifo"};
	struct fid sd, f[4];
	struct proto_op op = {0};
	struct proto_op_result res;
	struct proto_attr a;
	struct vs_reply rep;
	char path[512];
	struct tdb_context *tdb;

	is_int(mk(PROTO_OP_MKDIR, &rootfid, "special", &sd), 200, "mkdir special");
	for (int i = 0; i < 4; i++) {
		memset(&op, 0, sizeof(op));
		op.kind = PROTO_OP_CREATE;
		op.parent = sd;
		op.name = (char *)tn[i];
		op.type = tt[i];
		op.mode = 0640;
		op.uid = 7;
		op.gid = 8;
		op.rdev = proto_type_has_rdev(tt[i]) ? 0x10305u + (uint32_t)i : 0;
		is_int(apply(&op, &res, NULL), 200, "create %s", tn[i]);
		f[i] = res.attr.fid;
		ok(res.attr.type == tt[i] && res.attr.rdev == op.rdev &&
			   res.attr.size == 0 && res.attr.nlink == 1,
		   "the reply has the %s's type and rdev", tn[i]);
		is_int(vs_getattr(vol, &f[i], &a), 0, "getattr %s", tn[i]);
		ok(a.type == tt[i] && a.rdev == op.rdev && a.mode == 0640 &&
			   a.uid == 7 && a.gid == 8,
		   "%s: type, rdev, mode, owner stored", tn[i]);
	}
	memset(&op, 0, sizeof(op));
	op.kind = PROTO_OP_CREATE;
	op.parent = sd;
	op.name = (char *)"bad";
	op.type = PROTO_T_SOCK;
	op.rdev = 1;
	is_int(apply(&op, NULL, &rep), 400, "a socket with an rdev is 400");
	is_int(err_of(&rep), EINVAL, "... EINVAL");
	free(rep.body);
	op.type = PROTO_T_SYMLINK;
	op.rdev = 0;
	is_int(apply(&op, NULL, NULL), 400, "create of type symlink is 400");
	/* Data operations on a device stay refused. */
	memset(&op, 0, sizeof(op));
	op.kind = PROTO_OP_SETATTR;
	op.fid = f[1];
	op.base_dv = a.dv;
	vs_getattr(vol, &f[1], &a);
	op.base_dv = a.dv;
	op.mask = PROTO_SA_SIZE;
	op.size = 10;
	is_int(apply(&op, NULL, NULL), 400, "truncate of a device is 400");
	op.mask = PROTO_SA_MODE | PROTO_SA_UID;
	op.mode = 0600;
	op.uid = 9;
	is_int(apply(&op, NULL, NULL), 200, "chmod+chown of a device");
	is_int(vs_getattr(vol, &f[1], &a), 0, "getattr after setattr");
	ok(a.mode == 0600 && a.uid == 9 && a.rdev == 0x10306u,
	   "setattr kept the device number");

	/* The records themselves. */
	vs_vol_close(vol);
	vol = NULL;
	if (vs_vol_meta_path(root, "home", path, sizeof(path)) ||
	    !(tdb = tdb_open(path, 0, 0, O_RDWR, 0600))) {
		ok(0, "open meta.tdb");
		return;
	}
	for (int i = 0; i < 4; i++) {
		uint8_t kb[17];
		TDB_DATA k = {.dptr = kb, .dsize = 17}, d;
		uint32_t magic = 0;

		kb[0] = 'O';
		memcpy(kb + 1, f[i].oid, 16);
		d = tdb_fetch(tdb, k);
		if (d.dptr && d.dsize >= 4)
			memcpy(&magic, d.dptr, 4);
		is_int(magic, i == 3 ? 0x434f4231 : 0x434f4232,
		       "%s: record magic %s", tn[i], i == 3 ? "COB1" : "COB2");
		is_int(d.dsize, i == 3 ? 104 : 112, "%s: record length", tn[i]);
		if (i == 1 && d.dptr && d.dsize == 112) {
			/* A longer extension (from a later server): 24 bytes,
			 * rdev where it is, the rest ignored. */
			uint8_t big[128] = {0};
			uint32_t elen = 24;
			TDB_DATA nd = {.dptr = big, .dsize = 128};

			memcpy(big, d.dptr, 112);
			memcpy(big + 104, &elen, 4);
			tdb_store(tdb, k, nd, TDB_REPLACE);
		}
		if (i == 2 && d.dptr && d.dsize == 112) {
			uint32_t elen = 200; /* past the record's end */

			memcpy(d.dptr + 104, &elen, 4);
			tdb_store(tdb, k, d, TDB_REPLACE);
		}
		free(d.dptr);
	}
	tdb_close(tdb);
	if (vs_vol_open(root, "home", VS_CLEANUP, &vol)) {
		ok(0, "reopen");
		return;
	}
	is_int(vs_getattr(vol, &f[1], &a), 0, "a longer extension reads");
	ok(a.type == PROTO_T_CHR && a.rdev == 0x10306u && a.mode == 0600,
	   "... with the device number and mode");
	is_int(vs_getattr(vol, &f[2], &a), -EIO,
	       "an extension longer than its record is EIO");
	is_int(vs_getattr(vol, &f[0], &a), 0, "the socket still reads");
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR");
	char cmd[600];

	log_init("test_vol_store", 0, LOG_WARNING);
	snprintf(rootdir, sizeof(rootdir), "%s/test_vol_store.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(rootdir)) {
		printf("Bail out! mkdtemp\n");
		return 1;
	}
	plan(0);
	is_int(vs_root_open(rootdir, true, &root), 0, "open root");
	test_volumes();
	test_tokstate();
	if (vol) {
		test_create();
		test_link_unlink();
		test_rename();
		test_setattr_xattr();
		test_opid();
		test_store();
		test_chunks();
		test_inline();
		test_events();
		test_undo();
		test_batch();
		test_batch_resend_race();
		test_cleanup();
		test_bigdir();
		test_bulk();
		test_bulk_inline();
		test_import_plan();
		test_damaged_meta();
		test_stage_limits();
		test_mount();
		test_special();
		vs_vol_close(vol);
	}
	vs_root_close(root);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", rootdir);
	if (system(cmd) != 0)
		diag("cannot remove %s", rootdir);
	done_testing();
	return tap_failed ? 1 : 0;
}
