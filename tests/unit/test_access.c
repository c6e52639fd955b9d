/*
 * test_access.c - cm/access.c, the rules a control-socket caller is held
 * to (fs resolve, the conflict/replay/pin lists): a small tree of cached
 * metadata served by stand-ins for meta.c's cache reads, and a table of
 * who may do what in it. Links access.c and ctl.c (ctl_peer_may) only.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cm/access.h"
#include "cm/ctl.h"
#include "cm/mcache.h"
#include "cm/vc.h"
#include "common/log.h"
#include "common/proto.h"
#include "tests/tap.h"

/* ---- the tree ------------------------------------------------------- */

enum {
	ROOT = 1,
	SECRET, /* /secret 0700 root */
	SF,	/* /secret/f */
	TMP,	/* /tmp 1777 root */
	TM,	/* /tmp/mine, uid 1000 */
	TT,	/* /tmp/theirs, uid 2000 */
	HOME,	/* /home 0755 uid 1000 gid 300 */
	HD,	/* /home/doc 0640 uid 1000 gid 100 */
	PUB,	/* /pub 0775 root gid 100 */
	PF,	/* /pub/f 0664 root gid 100 */
	GONE,	/* attributes not cached */
	HIDE,	/* /hide 0711 root: reachable, not listable */
	HIDF,	/* /hide/f 0644 root */
	HIDS,	/* /hide/sub 0755 root */
	HIDSF,	/* /hide/sub/f 0644 root */
	MG,	/* /home/mg 0644 uid 1000 gid 300 (not one of 1000's) */
	SGD,	/* /sgd 02777 root gid 300: set-gid */
	NOBJ
};

struct node {
	int parent;
	const char *name;
	enum proto_type type;
	uint32_t mode, uid, gid;
};

static const struct node tree[NOBJ] = {
	[ROOT] = {0, "", PROTO_T_DIR, 0755, 0, 0},
	[SECRET] = {ROOT, "secret", PROTO_T_DIR, 0700, 0, 0},
	[SF] = {SECRET, "f", PROTO_T_FILE, 0644, 0, 0},
	[TMP] = {ROOT, "tmp", PROTO_T_DIR, 01777, 0, 0},
	[TM] = {TMP, "mine", PROTO_T_FILE, 0644, 1000, 100},
	[TT] = {TMP, "theirs", PROTO_T_FILE, 0666, 2000, 200},
	[HOME] = {ROOT, "home", PROTO_T_DIR, 0755, 1000, 300},
	[HD] = {HOME, "doc", PROTO_T_FILE, 0640, 1000, 100},
	[PUB] = {ROOT, "pub", PROTO_T_DIR, 0775, 0, 100},
	[PF] = {PUB, "f", PROTO_T_FILE, 0664, 0, 100},
	[GONE] = {HOME, "gone", PROTO_T_FILE, 0600, 2000, 200},
	[HIDE] = {ROOT, "hide", PROTO_T_DIR, 0711, 0, 0},
	[HIDF] = {HIDE, "f", PROTO_T_FILE, 0644, 0, 0},
	[HIDS] = {HIDE, "sub", PROTO_T_DIR, 0755, 0, 0},
	[HIDSF] = {HIDS, "f", PROTO_T_FILE, 0644, 0, 0},
	[MG] = {HOME, "mg", PROTO_T_FILE, 0644, 1000, 300},
	[SGD] = {ROOT, "sgd", PROTO_T_DIR, 02777, 0, 300},
};

static struct fid
F(int i)
{
	struct fid f;

	memset(&f, 0, sizeof(f));
	f.vol = 7;
	f.oid[0] = (uint8_t)i;
	return f;
}

static int
idx(const struct fid *f)
{
	return f->vol == 7 && f->oid[0] < NOBJ ? f->oid[0] : 0;
}

/* Stand-ins for mcache.c / vc.c: the cache holds the tree. */
int
mcache_attr(struct mcache *mc, const struct fid *fid, struct proto_attr *out)
{
	int i = idx(fid);

	(void)mc;
	if (!i || i == GONE)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	out->fid = *fid;
	out->type = tree[i].type;
	out->mode = tree[i].mode;
	out->uid = tree[i].uid;
	out->gid = tree[i].gid;
	return 0;
}

static struct vc_dir dirs[NOBJ];
static struct vc_dirent ents[NOBJ][NOBJ];

int
mcache_dir(struct mcache *mc, const struct fid *fid, struct vc_dir **out)
{
	int i = idx(fid), n = 0;

	(void)mc;
	if (!i || tree[i].type != PROTO_T_DIR)
		return i ? -ENOTDIR : -ENOENT;
	for (int k = 1; k < NOBJ; k++) {
		if (tree[k].parent != i)
			continue;
		ents[i][n].name = tree[k].name;
		ents[i][n].namelen = (uint16_t)strlen(tree[k].name);
		ents[i][n].type = (uint8_t)tree[k].type;
		ents[i][n].fid = F(k);
		n++;
	}
	dirs[i].fid = *fid;
	dirs[i].n = (size_t)n;
	*out = &dirs[i];
	return 0;
}

const struct vc_dirent *
vc_dir_ent(const struct vc_dir *d, size_t i)
{
	return &ents[d - dirs][i];
}

long
vc_dir_find(const struct vc_dir *d, const char *name, size_t len)
{
	for (size_t i = 0; i < d->n; i++)
		if (vc_dir_ent(d, i)->namelen == len &&
		    !memcmp(vc_dir_ent(d, i)->name, name, len))
			return (long)i;
	return -1;
}

void
vc_dir_put(struct vc_dir *d)
{
	(void)d;
}

/* The module under test, over the stand-ins above (no real cache). */
static struct access *acc;

/* ---- cases ---------------------------------------------------------- */

static const struct ctl_peer u1000 = {.uid = 1000, .gid = 100};
static const struct ctl_peer u2000 = {.uid = 2000, .gid = 200};
static const struct ctl_peer root = {.uid = 0, .gid = 0};

static struct proto_op
op_name(enum proto_op_kind k, int parent, const char *name, int obj)
{
	struct proto_op op;

	memset(&op, 0, sizeof(op));
	op.kind = k;
	op.parent = F(parent);
	op.name = (char *)name;
	if (obj)
		op.fid = F(obj);
	return op;
}

static struct proto_op
op_obj(enum proto_op_kind k, int obj)
{
	struct proto_op op;

	memset(&op, 0, sizeof(op));
	op.kind = k;
	op.fid = F(obj);
	return op;
}

static void
test_reach(void)
{
	struct acc_need need;

	is_int(acc_reach(acc, &u1000, "secret/f", NULL), -EACCES,
	       "a user cannot reach into a 0700 root directory");
	is_int(acc_reach(acc, &u1000, "secret", NULL), 0,
	       "but reaches the directory itself");
	is_int(acc_reach(acc, &root, "secret/f", NULL), 0, "root can");
	is_int(acc_reach(acc, &u2000, "home/doc", NULL), 0,
	       "a 0755 directory is searchable");
	is_int(acc_reach(acc, &u1000, ".", NULL), 0, "the root itself");
	is_int(acc_reach(acc, &u1000, "nope/x", NULL), -ENOENT,
	       "a directory gone on the way: ENOENT");
	is_int(acc_reach(acc, &u1000, "home/doc/x", NULL), -ENOENT,
	       "a file on the way is not a directory");
	is_int(acc_reach(acc, &u1000, "home/gone/x", &need), -EAGAIN,
	       "attributes not cached: EAGAIN");
	ok(idx(&need.fid) == GONE && !need.dir, "and says which");

	ok(!acc_sees(acc, &u1000, "secret/f", NULL, 0),
	   "a user does not see a record under secret/");
	ok(acc_sees(acc, &root, "secret/f", NULL, 1000), "root does");
	ok(acc_sees(acc, &u1000, "secret/f", NULL, 1000),
	   "nor does its owner need to reach it: its own record");
	ok(acc_sees(acc, &u1000, "pub/f", NULL, 0), "anyone sees pub/f");
	ok(acc_sees(acc, &u1000, "hide", NULL, 0),
	   "a 0711 directory itself is seen (its parent is listable)");
	ok(!acc_sees(acc, &u1000, "hide/f", NULL, 0),
	   "a record in a 0711 directory of root's is hidden: no listing");
	ok(!acc_sees(acc, &u1000, "hide/sub/.", NULL, 0),
	   "hide/sub/. names sub, which is in hide: hidden");
	ok(acc_sees(acc, &u1000, "hide/sub/f", NULL, 0),
	   "but a listable directory reached through it is listed");
	ok(acc_sees(acc, &u1000, "hide/f", NULL, 1000),
	   "the user's own record in it is seen");
	ok(acc_sees(acc, &root, "hide/f", NULL, 0), "root sees it");
	ok(acc_sees(acc, &u1000, "home/doc", NULL, 0),
	   "a 0755 directory's records are seen");
	{
		struct fid s = F(SECRET), p = F(PUB), h = F(HIDE);

		ok(!acc_sees(acc, &u1000, "pub/f", &h, 0),
		   "the change's directory not listable: hidden");
		ok(!acc_sees(acc, &u1000, "was-here/x", &s, 0),
		   "a gone path in a directory the user cannot search: hidden");
		ok(!acc_sees(acc, &u1000, "was-here/x", &p, 0),
		   "a gone path in one it can list: hidden all the same");
		ok(acc_sees(acc, &u1000, "was-here/x", &s, 1000),
		   "a gone path is seen by the record's owner");
		ok(!acc_sees(acc, &u1000, "was-here/x", NULL, 0),
		   "a gone path and no directory known: hidden");
	}
}

static void
test_names(void)
{
	struct proto_op op;

	op = op_name(PROTO_OP_CREATE, SECRET, "new", 0);
	op.uid = 1000;
	op.gid = 100;
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), -EACCES,
	       "create in a 0700 root directory: EACCES");
	is_int(acc_may_change(acc, &root, &op, NULL, NULL, NULL), 0,
	       "root may");
	op.parent = F(HOME);
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), 0,
	       "create in one's own directory");
	op.uid = 0;
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), -EPERM,
	       "but not an object owned by root");
	op.uid = 1000;
	op.gid = 999;
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), -EPERM,
	       "nor of a group not one's own");
	op.gid = 100;
	op.type = PROTO_T_CHR;
	op.rdev = 0x103;
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), -EPERM,
	       "a device node in one's own directory needs CAP_MKNOD");
	is_int(acc_may_change(acc, &root, &op, NULL, NULL, NULL), 0,
	       "root may make it");
	op.type = PROTO_T_SOCK;
	op.rdev = 0;
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), 0,
	       "a socket needs no privilege");
	op.type = PROTO_T_FILE;
	op.gid = 300;
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), -EPERM,
	       "the parent's group, the parent not set-gid: EPERM");
	op.parent = F(SGD);
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), 0,
	       "the parent's group under a set-gid parent is fine");
	op.parent = F(PUB);
	op.gid = 100;
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), 0,
	       "group-writable directory of one's group");
	is_int(acc_may_change(acc, &u2000, &op, NULL, NULL, NULL), -EACCES,
	       "not for others");

	op = op_name(PROTO_OP_UNLINK, TMP, "theirs", TT);
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), -EACCES,
	       "sticky /tmp: no removing another user's file");
	op = op_name(PROTO_OP_UNLINK, TMP, "mine", TM);
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), 0,
	       "sticky /tmp: one's own file may go");
	{
		struct fid v = F(TT);

		is_int(acc_may_change(acc, &u1000, &op, &v, NULL, NULL),
		       -EACCES,
		       "judged by what has the name now (another's file)");
	}

	op = op_name(PROTO_OP_RENAME, TMP, "mine", TM);
	op.newparent = F(HOME);
	op.newname = "x";
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), 0,
	       "rename of one's file from /tmp home");
	op.newparent = F(SECRET);
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), -EACCES,
	       "rename into secret/: EACCES");
	op = op_name(PROTO_OP_RENAME, HOME, "doc", HD);
	op.newparent = F(TMP);
	op.newname = "theirs";
	op.victim = F(TT);
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), -EACCES,
	       "rename over another's file in sticky /tmp: EACCES");

	op = op_name(PROTO_OP_LINK, HOME, "l", TT);
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), 0,
	       "link to a file one may read and write");
	op = op_name(PROTO_OP_LINK, HOME, "l", SF);
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), -EPERM,
	       "no link to root's read-only file");
}

static void
test_objects(void)
{
	struct proto_op op = op_obj(PROTO_OP_SETATTR, HD);
	struct acc_need need;
	struct proto_attr known;

	op.mask = PROTO_SA_MODE;
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), 0,
	       "chmod of one's own file");
	is_int(acc_may_change(acc, &u2000, &op, NULL, NULL, NULL), -EPERM,
	       "chmod of another's: EPERM");
	op.mode = 02644;
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), 0,
	       "chmod g+s of one's own file of one's group");
	op.fid = F(MG);
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), -EPERM,
	       "chmod g+s of one's file of a group not one's own: EPERM");
	is_int(acc_may_change(acc, &root, &op, NULL, NULL, NULL), 0,
	       "root may");
	op.mode = 0644;
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), 0,
	       "a chmod without S_ISGID of it is fine");
	op.fid = F(HD);
	op.mode = 0;
	op.mask = PROTO_SA_UID;
	op.uid = 2000;
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), -EPERM,
	       "chown to another user: root only");
	is_int(acc_may_change(acc, &root, &op, NULL, NULL, NULL), 0,
	       "root may chown");
	op.uid = 1000;
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), 0,
	       "chown to oneself, unchanged");
	op.mask = PROTO_SA_GID;
	op.gid = 100;
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), 0,
	       "chgrp to one's own group");
	op.gid = 999;
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), -EPERM,
	       "chgrp to another group");
	op.mask = PROTO_SA_SIZE;
	is_int(acc_may_change(acc, &u2000, &op, NULL, NULL, NULL), -EACCES,
	       "truncate without write permission");
	op = op_obj(PROTO_OP_SETATTR, TT);
	op.mask = PROTO_SA_MTIME;
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), 0,
	       "times of a file one may write");
	op = op_obj(PROTO_OP_SETATTR, PF);
	op.mask = PROTO_SA_MTIME;
	is_int(acc_may_change(acc, &u2000, &op, NULL, NULL, NULL), -EPERM,
	       "times of a file one may not write nor owns");

	op = op_obj(PROTO_OP_SETXATTR, HD);
	op.xname = "user.tag";
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), 0,
	       "user. xattr with write permission");
	is_int(acc_may_change(acc, &u2000, &op, NULL, NULL, NULL), -EACCES,
	       "user. xattr without");
	op.xname = "trusted.x";
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), -EPERM,
	       "trusted. xattr: root only");
	op.xname = "system.posix_acl_access";
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), 0,
	       "system. xattr: the owner");

	op = op_obj(PROTO_OP_STORE, PF);
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), 0,
	       "store into a group-writable file");
	is_int(acc_may_change(acc, &u2000, &op, NULL, NULL, NULL), -EACCES,
	       "store without write permission");
	op = op_obj(PROTO_OP_STORE, GONE);
	is_int(acc_may_change(acc, &u2000, &op, NULL, NULL, &need), -EAGAIN,
	       "store into an object whose attributes are not cached: EAGAIN");
	ok(idx(&need.fid) == GONE && !need.dir, "and says which");
	memset(&known, 0, sizeof(known));
	known.fid = F(GONE);
	known.type = PROTO_T_FILE;
	known.mode = 0600;
	known.uid = 2000;
	known.gid = 200;
	is_int(acc_may_change(acc, &u2000, &op, NULL, &known, NULL), 0,
	       "recorded attributes decide for a gone object: its owner may");
	is_int(acc_may_change(acc, &u1000, &op, NULL, &known, NULL), -EACCES,
	       "another user may not");
	is_int(acc_may_change(acc, &u1000, &op, NULL, NULL, NULL), -EAGAIN,
	       "the recorded attributes were used for that call only");
}

/* acc_proc_has_cap() on /proc/PID/status texts, and on this process. */
static int
cap_of(const char *text, uid_t uid, int cap)
{
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	int rc = acc_proc_has_cap(f, uid, cap);

	fclose(f);
	return rc;
}

static void
test_caps(void)
{
	static const char root_all[] =
		"Name:\tmknod\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n"
		"CapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\n"
		"CapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\n";
	static const char root_nomknod[] =
		"Uid:\t0\t0\t0\t0\nCapEff:\t000001fff7ffffff\n";
	static const char user_mknod[] =
		"Uid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000008000000\n";
	static const char setuid_prog[] =
		"Uid:\t1000\t0\t0\t0\nCapEff:\t000001ffffffffff\n";
	FILE *f;
	int rc;

	is_int(cap_of(root_all, 0, 27), 1, "root with every capability: CAP_MKNOD");
	is_int(cap_of(root_nomknod, 0, 27), 0, "root without CAP_MKNOD: no");
	is_int(cap_of(root_nomknod, 0, 26), 1, "... while bit 26 (CAP_SYS_TTY_CONFIG) is there");
	is_int(cap_of(user_mknod, 1000, 27), 1, "a user given CAP_MKNOD: yes");
	is_int(cap_of(user_mknod, 1001, 27), 0,
	       "another user's process (a reused pid): no");
	is_int(cap_of(setuid_prog, 0, 27), 1,
	       "the effective uid counts (a set-user-id program)");
	is_int(cap_of(setuid_prog, 1000, 27), 0, "not the real uid");
	is_int(cap_of("Uid:\t0\t0\t0\t0\n", 0, 27), -EINVAL, "no CapEff line");
	is_int(cap_of("CapEff:\tffffffffffffffff\n", 0, 27), -EINVAL,
	       "no Uid line");
	is_int(cap_of("Uid:\t0\t0\t0\t0\nCapEff:\tzz\n", 0, 27), -EINVAL,
	       "CapEff not hex");
	is_int(cap_of("Uid:\t0\t0\t0\t0\nCapEff:\t1ffffffffffffffffff\n", 0, 27),
	       -EINVAL, "CapEff too long");
	is_int(cap_of("Uid:\tx\nCapEff:\t1\n", 0, 0), -EINVAL, "Uid not a number");
	is_int(cap_of(root_all, 0, 64), -EINVAL, "capability 64: -EINVAL");
	is_int(cap_of("", 0, 27), -EINVAL, "empty file");
	/* This very process, through /proc. */
	f = fopen("/proc/self/status", "re");
	rc = f ? acc_proc_has_cap(f, geteuid(), 27) : -1;
	if (f)
		fclose(f);
	ok(rc == 0 || rc == 1, "our own /proc/self/status parses (%d)", rc);
	if (geteuid() == 0)
		ok(acc_may_mknod_dev(getpid(), 0) == (rc == 1),
		   "acc_may_mknod_dev() agrees for this process");
	else
		ok(!acc_may_mknod_dev(getpid(), geteuid()) || rc == 1,
		   "acc_may_mknod_dev() agrees for this process");
	ok(acc_may_mknod_dev(0, 0), "pid 0 (another pid namespace): root may");
	ok(!acc_may_mknod_dev(0, 1000), "pid 0: anyone else may not");
	ok(!acc_may_mknod_dev(getpid(), geteuid() + 1),
	   "our pid with another uid: no");
}

int
main(void)
{
	struct fid rootfid = F(ROOT);

	log_init("test_access", 0, LOG_CRIT);
	acc = acc_new(NULL, &rootfid);
	if (!acc)
		return 1;
	test_reach();
	test_names();
	test_objects();
	test_caps();
	acc_free(acc);
	return done_testing();
}
