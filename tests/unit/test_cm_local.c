/*
 * test_cm_local.c - applying an op to the caches without the server
 * (cm/local.c), on its own: a real metadata cache (mcache over vc, the
 * inode table and a chunk store), fake hooks for the write states, no
 * daemon, no server.
 *
 * A table of op (create, mkdir, symlink, link, unlink, rmdir, rename with
 * and without RENAME_NOREPLACE / RENAME_EXCHANGE, setattr and truncate,
 * setxattr, removexattr, store) x cached state (the parent's listing
 * cached or not, the target's attributes cached or not, the name there or
 * not). Every row starts from a fresh cache and checks:
 *  - the check (commit false) decides the row's result and changes
 *    nothing;
 *  - DESIGN.md Invariant 3 as it applies here: a refused change leaves
 *    the caches exactly as they were (nothing half applied, nothing
 *    lost), and an applied one is applied at most once: checking the same
 *    op again is refused the way the server would refuse a replay of it
 *    (EEXIST, ENOENT, ENODATA);
 *  - what an applied op left in the cached attributes and listings
 *    (names, nlink, type, size, mode, local DVs, symlink target, xattrs)
 *    and which write-state hooks it called.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunkstore/cs.h"
#include "cm/inode.h"
#include "cm/local.h"
#include "cm/loop.h"
#include "cm/mcache.h"
#include "cm/stats.h"
#include "cm/vc.h"
#include "common/log.h"
#include "tests/tap.h"

#define VOL 9
#define T0  1700000000000000000ll

static char dir[] = "/tmp/test_cm_local.XXXXXX";

/* The objects of the fixture. R is the root; P and Q directories in it;
 * in P: f (F, a file), d (D, an empty directory), e (E, holding x: X),
 * s (S, a symlink); in Q: g (G, a file). N is the FID a create makes. */
enum obj { R, P, Q, F, D, E, X, S, G, N, NOBJ };
static const char *const oname[NOBJ] = {"R", "P", "Q", "F", "D",
					"E", "X", "S", "G", "N"};

static struct fid
fid_of(enum obj o)
{
	struct fid f;

	memset(&f, 0, sizeof(f));
	f.vol = VOL;
	for (size_t i = 0; i < sizeof(f.oid); i++)
		f.oid[i] = (uint8_t)(0x10 * (o + 1) + i);
	return f;
}

/* Cached state a row starts from (flags). */
enum {
	P_UNLISTED = 1,	 /* P's listing not cached */
	F_UNCACHED = 2,	 /* F's attributes not cached */
	F_TWO_LINKS = 4, /* F has nlink 2 */
	E_UNLISTED = 8,	 /* E's listing not cached */
	F_NO_XATTRS = 16 /* F's xattrs not cached */
};

/* What the hooks were told. */
static struct {
	unsigned gone, absorbed;
	struct fid gone_fid;
	void *arg;
} hk;

static void
h_gone(void *arg, const struct fid *fid)
{
	hk.arg = arg;
	hk.gone++;
	hk.gone_fid = *fid;
}

static void
h_absorbed(void *arg, const struct proto_op *op)
{
	(void)op;
	hk.arg = arg;
	hk.absorbed++;
}

/* One fresh cache per row. */
static struct {
	struct cs_store *cs;
	struct vc *vc;
	struct ino_table *ino;
	struct cm_loop loop;
	struct cm_stats st;
	struct mcache *mc;
	struct local *l;
} fx;
static int nfx;

static struct proto_attr
mkattr(enum obj o, enum proto_type t, uint64_t dv)
{
	struct proto_attr a;

	memset(&a, 0, sizeof(a));
	a.fid = fid_of(o);
	a.type = t;
	a.mode = t == PROTO_T_DIR ? 0755 : 0644;
	a.uid = a.gid = 1000;
	a.nlink = t == PROTO_T_DIR ? 2 : 1;
	a.dv = dv;
	a.size = t == PROTO_T_SYMLINK ? 3 : t == PROTO_T_FILE ? 100 : 0;
	a.mtime_ns = a.ctime_ns = a.atime_ns = T0;
	return a;
}

static int
put_dir(const struct proto_attr *d, const char *const *names,
	const struct proto_attr *attrs, size_t n)
{
	struct proto_dirent ents[4];
	struct proto_dir pd;

	memset(&pd, 0, sizeof(pd));
	pd.dir = *d;
	pd.n = n;
	pd.ents = ents;
	for (size_t i = 0; i < n; i++) {
		ents[i].name = (char *)names[i];
		ents[i].attr = attrs[i];
	}
	return vc_put_dir(fx.vc, &pd);
}

static int
fixture(unsigned flags)
{
	struct cs_params p = {.chunk_size = 65536};
	struct proto_attr a[NOBJ];
	struct proto_xattr x = {"user.a", "1", 1};
	char path[300];
	struct fid root = fid_of(R);
	int err = 0, rc = 0;
	const struct local_hooks lh = {
		.file_gone = h_gone,
		.store_absorbed = h_absorbed,
		.arg = &hk,
	};
	struct local_deps ld;

	nfx++;
	snprintf(path, sizeof(path), "%s/cs%d", dir, nfx);
	if (mkdir(path, 0700) < 0 || cs_create(path, &p) < 0)
		return -1;
	fx.cs = cs_open(path, &p, &err);
	snprintf(path, sizeof(path), "%s/meta%d.tdb", dir, nfx);
	fx.vc = fx.cs ? vc_open(path, VOL, cs_chunk_size(fx.cs)) : NULL;
	fx.ino = ino_new(&root);
	memset(&fx.st, 0, sizeof(fx.st));
	cm_loop_init(&fx.loop);
	fx.mc = fx.vc && fx.ino ? mcache_new(fx.ino, fx.vc, fx.cs, &fx.loop,
					     &fx.st, NULL)
				: NULL;
	ld.mc = fx.mc;
	ld.vc = fx.vc;
	fx.l = fx.mc ? local_new(&ld, &lh) : NULL;
	if (!fx.l)
		return -1;

	a[R] = mkattr(R, PROTO_T_DIR, 1);
	a[P] = mkattr(P, PROTO_T_DIR, 5);
	a[P].nlink = 4; /* d and e */
	a[Q] = mkattr(Q, PROTO_T_DIR, 6);
	a[F] = mkattr(F, PROTO_T_FILE, 7);
	if (flags & F_TWO_LINKS)
		a[F].nlink = 2;
	a[D] = mkattr(D, PROTO_T_DIR, 8);
	a[E] = mkattr(E, PROTO_T_DIR, 9);
	a[X] = mkattr(X, PROTO_T_FILE, 10);
	a[S] = mkattr(S, PROTO_T_SYMLINK, 11);
	a[G] = mkattr(G, PROTO_T_FILE, 12);
	{
		const char *rn[] = {"p", "q"}, *pn[] = {"f", "d", "e", "s"},
			   *qn[] = {"g"}, *en[] = {"x"};
		struct proto_attr ra[] = {a[P], a[Q]},
				  pa[] = {a[F], a[D], a[E], a[S]},
				  qa[] = {a[G]}, ea[] = {a[X]};

		rc |= put_dir(&a[R], rn, ra, 2);
		if (!(flags & P_UNLISTED))
			rc |= put_dir(&a[P], pn, pa, 4);
		rc |= put_dir(&a[Q], qn, qa, 1);
		rc |= put_dir(&a[D], NULL, NULL, 0);
		if (!(flags & E_UNLISTED))
			rc |= put_dir(&a[E], en, ea, 1);
	}
	for (int o = R; o < N; o++)
		rc |= vc_put_attr(fx.vc, &a[o]);
	if (flags & F_UNCACHED)
		rc |= vc_del_attr(fx.vc, &a[F].fid);
	rc |= vc_put_link(fx.vc, &a[S].fid, "tgt");
	if (!(flags & F_NO_XATTRS))
		rc |= vc_put_xattrs(fx.vc, &a[F].fid, a[F].ctime_ns, &x, 1);
	memset(&hk, 0, sizeof(hk));
	return rc ? -1 : 0;
}

static void
fixture_free(void)
{
	local_free(fx.l);
	mcache_free(fx.mc);
	ino_free(fx.ino);
	vc_close(fx.vc);
	cs_close(fx.cs);
	cm_loop_release(&fx.loop);
	memset(&fx, 0, sizeof(fx));
}

/* --- what the caches hold, as text --- */

struct sbuf {
	char b[8192];
	size_t n;
};

static void
sb_add(struct sbuf *s, const char *fmt, ...)
{
	va_list ap;
	int k;

	va_start(ap, fmt);
	k = vsnprintf(s->b + s->n, sizeof(s->b) - s->n, fmt, ap);
	va_end(ap);
	if (k > 0)
		s->n += (size_t)k < sizeof(s->b) - s->n
				? (size_t)k
				: sizeof(s->b) - s->n - 1;
}

/* Every attribute, listing, link target and xattr set of the fixture's
 * objects. */
static void
snapshot(struct sbuf *s)
{
	s->n = 0;
	s->b[0] = '\0';
	for (int o = R; o < NOBJ; o++) {
		struct fid f = fid_of((enum obj)o);
		struct proto_attr a;
		struct vc_dir *d;
		struct proto_xattr *x = NULL;
		size_t nx = 0;
		int64_t stamp;
		char *t = NULL;

		if (mcache_attr(fx.mc, &f, &a) == 0)
			sb_add(s,
			       "%s: t%d m%o n%u sz%llu dv%llx u%u g%u %lld "
			       "%lld\n",
			       oname[o], (int)a.type, (unsigned)a.mode,
			       (unsigned)a.nlink, (unsigned long long)a.size,
			       (unsigned long long)a.dv, (unsigned)a.uid,
			       (unsigned)a.gid, (long long)a.mtime_ns,
			       (long long)a.ctime_ns);
		if (mcache_dir(fx.mc, &f, &d) == 0) {
			sb_add(s, "%s/ dv%llx:", oname[o],
			       (unsigned long long)d->dv);
			for (size_t i = 0; i < d->n; i++) {
				char fs[FID_STRLEN];

				sb_add(s, " %.*s=%s", (int)vc_dir_ent(d, i)->namelen,
				       vc_dir_ent(d, i)->name,
				       fid_fmt(&vc_dir_ent(d, i)->fid, fs));
			}
			sb_add(s, "\n");
			vc_dir_put(d);
		}
		if (vc_get_link(fx.vc, &f, &t) == 0)
			sb_add(s, "%s -> %s\n", oname[o], t);
		free(t);
		if (vc_get_xattrs(fx.vc, &f, &stamp, &x, &nx) == 0) {
			sb_add(s, "%s xattrs @%lld:", oname[o],
			       (long long)stamp);
			for (size_t i = 0; i < nx; i++)
				sb_add(s, " %s=%.*s", x[i].name, (int)x[i].len,
				       (const char *)x[i].value);
			sb_add(s, "\n");
			proto_xattrs_free(x, nx);
		}
	}
}

/* --- the table --- */

enum exk {
	X_END = 0,
	X_LISTED,   /* dir @o has @name naming object @v */
	X_UNLISTED, /* dir @o has no @name */
	X_NLINK,    /* @o's nlink is @v */
	X_TYPE,	    /* @o's type is @v */
	X_SIZE,	    /* @o's size is @v */
	X_MODE,	    /* @o's mode is @v */
	X_LOCALDV,  /* @o's DV is a local one */
	X_SAMEDV,   /* @o's DV is still the fixture's */
	X_EMPTY,    /* @o's listing is cached and empty */
	X_LINK,	    /* @o's symlink target is @name */
	X_XATTR,    /* @o has xattr @name */
	X_NOXATTR,  /* @o has no xattr @name */
	X_GONE,	    /* the file_gone hook was called @v times (for @o) */
	X_ABSORBED, /* the store_absorbed hook was called @v times */
	X_HAS_ATTR, /* the result carries @o's attributes */
};

struct expect {
	enum exk k;
	enum obj o;
	const char *name;
	long long v;
};

struct row {
	const char *what;
	unsigned flags;
	struct proto_op op;
	int rc;	   /* of the check, and of the commit */
	int again; /* the check of the same op once applied (0: skip) */
	struct expect ex[8];
};

static struct proto_op
mkop(enum proto_op_kind k, enum obj fid, enum obj parent, const char *name,
     enum obj np, const char *newname)
{
	struct proto_op op;

	memset(&op, 0, sizeof(op));
	op.kind = k;
	op.fid = fid_of(fid);
	op.parent = fid_of(parent);
	op.name = (char *)name;
	op.newparent = fid_of(np);
	op.newname = (char *)newname;
	op.mode = 0640;
	op.uid = op.gid = 1000;
	op.type = PROTO_T_FILE;
	return op;
}

#define CREATE(n)	 mkop(PROTO_OP_CREATE, N, P, n, R, NULL)
#define MKDIR(n)	 mkop(PROTO_OP_MKDIR, N, P, n, R, NULL)
#define LINK(o, d, n)	 mkop(PROTO_OP_LINK, o, d, n, R, NULL)
#define UNLINK(n)	 mkop(PROTO_OP_UNLINK, F, P, n, R, NULL)
#define RMDIR(n)	 mkop(PROTO_OP_RMDIR, D, P, n, R, NULL)
#define RENAME(n, d, nn) mkop(PROTO_OP_RENAME, F, P, n, d, nn)

static struct row rows[64];
static size_t nrows;

#define BAIL_OUT_ROWS()                                                        \
	do {                                                                   \
		diag("more rows than rows[] holds");                           \
		exit(1);                                                       \
	} while (0)

static struct row *
add(const char *what, unsigned flags, struct proto_op op, int rc, int again)
{
	struct row *r;

	if (nrows == sizeof(rows) / sizeof(rows[0]))
		BAIL_OUT_ROWS();
	r = &rows[nrows++];

	memset(r, 0, sizeof(*r));
	r->what = what;
	r->flags = flags;
	r->op = op;
	r->rc = rc;
	r->again = again;
	return r;
}

static void
ex(struct row *r, enum exk k, enum obj o, const char *name, long long v)
{
	size_t i = 0;

	while (r->ex[i].k != X_END)
		i++;
	r->ex[i] = (struct expect){k, o, name, v};
}

static void
build_table(void)
{
	struct row *r;
	struct proto_op op;

	/* create, mkdir, symlink */
	r = add("create new name", 0, CREATE("n"), 0, -EEXIST);
	ex(r, X_LISTED, P, "n", N);
	ex(r, X_TYPE, N, NULL, PROTO_T_FILE);
	ex(r, X_NLINK, N, NULL, 1);
	ex(r, X_MODE, N, NULL, 0640);
	ex(r, X_LOCALDV, N, NULL, 0);
	ex(r, X_LOCALDV, P, NULL, 0);
	ex(r, X_NLINK, P, NULL, 4);
	ex(r, X_HAS_ATTR, N, NULL, 0);
	add("create over an existing name", 0, CREATE("f"), -EEXIST, 0);
	add("create, parent not listed", P_UNLISTED, CREATE("n"), -EIO, 0);
	add("create over a name, parent not listed", P_UNLISTED, CREATE("f"),
	    -EIO, 0);
	r = add("mkdir new name", 0, MKDIR("n"), 0, -EEXIST);
	ex(r, X_LISTED, P, "n", N);
	ex(r, X_TYPE, N, NULL, PROTO_T_DIR);
	ex(r, X_NLINK, N, NULL, 2);
	ex(r, X_EMPTY, N, NULL, 0);
	ex(r, X_NLINK, P, NULL, 5);
	ex(r, X_LOCALDV, N, NULL, 0);
	add("mkdir over an existing name", 0, MKDIR("d"), -EEXIST, 0);
	add("mkdir, parent not listed", P_UNLISTED, MKDIR("n"), -EIO, 0);
	op = mkop(PROTO_OP_SYMLINK, N, P, "n", R, NULL);
	op.target = "dest";
	r = add("symlink new name", 0, op, 0, -EEXIST);
	ex(r, X_LISTED, P, "n", N);
	ex(r, X_TYPE, N, NULL, PROTO_T_SYMLINK);
	ex(r, X_SIZE, N, NULL, 4);
	ex(r, X_LINK, N, "dest", 0);
	op.name = "s";
	add("symlink over an existing name", 0, op, -EEXIST, 0);
	/* mkmount (fs mkmount): a symlink-like object of type mount. */
	op = mkop(PROTO_OP_MKMOUNT, N, P, "n", R, NULL);
	op.type = PROTO_T_MOUNT;
	op.mode = 0755;
	op.target = "proj";
	r = add("mkmount new name", 0, op, 0, -EEXIST);
	ex(r, X_LISTED, P, "n", N);
	ex(r, X_TYPE, N, NULL, PROTO_T_MOUNT);
	ex(r, X_SIZE, N, NULL, 4);
	ex(r, X_MODE, N, NULL, 0755);
	ex(r, X_NLINK, N, NULL, 1);
	ex(r, X_NLINK, P, NULL, 4);
	ex(r, X_LINK, N, "proj", 0);
	ex(r, X_LOCALDV, N, NULL, 0);
	op.name = "d";
	add("mkmount over an existing name", 0, op, -EEXIST, 0);
	op.name = "n";
	add("mkmount, parent not listed", P_UNLISTED, op, -EIO, 0);

	/* link */
	r = add("link a file into Q", 0, LINK(F, Q, "n"), 0, -EEXIST);
	ex(r, X_LISTED, Q, "n", F);
	ex(r, X_LISTED, P, "f", F);
	ex(r, X_NLINK, F, NULL, 2);
	ex(r, X_LOCALDV, Q, NULL, 0);
	ex(r, X_SAMEDV, F, NULL, 7);
	add("link over an existing name", 0, LINK(F, Q, "g"), -EEXIST, 0);
	add("link, target not cached", F_UNCACHED, LINK(F, Q, "n"), -EIO, 0);
	add("link a directory", 0, LINK(D, Q, "n"), -EPERM, 0);
	add("link into an unlisted parent", P_UNLISTED, LINK(G, P, "n"), -EIO,
	    0);

	/* unlink */
	r = add("unlink the last name", 0, UNLINK("f"), 0, -ENOENT);
	ex(r, X_UNLISTED, P, "f", 0);
	ex(r, X_GONE, F, NULL, 1);
	ex(r, X_LOCALDV, P, NULL, 0);
	ex(r, X_NLINK, P, NULL, 4);
	r = add("unlink one of two names", F_TWO_LINKS, UNLINK("f"), 0,
		-ENOENT);
	ex(r, X_UNLISTED, P, "f", 0);
	ex(r, X_NLINK, F, NULL, 1);
	ex(r, X_GONE, F, NULL, 0);
	r = add("unlink, target not cached", F_UNCACHED, UNLINK("f"), 0,
		-ENOENT);
	ex(r, X_UNLISTED, P, "f", 0);
	ex(r, X_GONE, F, NULL, 1);
	add("unlink a name not there", 0, UNLINK("n"), -ENOENT, 0);
	add("unlink a directory", 0, UNLINK("d"), -EISDIR, 0);
	add("unlink, parent not listed", P_UNLISTED, UNLINK("f"), -EIO, 0);

	/* rmdir */
	r = add("rmdir an empty directory", 0, RMDIR("d"), 0, -ENOENT);
	ex(r, X_UNLISTED, P, "d", 0);
	ex(r, X_NLINK, P, NULL, 3);
	ex(r, X_GONE, D, NULL, 1);
	add("rmdir a directory with a name in it", 0, RMDIR("e"), -ENOTEMPTY,
	    0);
	add("rmdir a directory not listed", E_UNLISTED, RMDIR("e"), -EIO, 0);
	add("rmdir a file", 0, RMDIR("f"), -ENOTDIR, 0);
	add("rmdir a name not there", 0, RMDIR("n"), -ENOENT, 0);
	add("rmdir, parent not listed", P_UNLISTED, RMDIR("d"), -EIO, 0);

	/* rename */
	r = add("rename within a directory", 0, RENAME("f", P, "n"), 0,
		-ENOENT);
	ex(r, X_LISTED, P, "n", F);
	ex(r, X_UNLISTED, P, "f", 0);
	ex(r, X_NLINK, F, NULL, 1);
	ex(r, X_LOCALDV, P, NULL, 0);
	r = add("rename into another directory", 0, RENAME("f", Q, "n"), 0,
		-ENOENT);
	ex(r, X_LISTED, Q, "n", F);
	ex(r, X_UNLISTED, P, "f", 0);
	ex(r, X_LOCALDV, Q, NULL, 0);
	ex(r, X_GONE, F, NULL, 0);
	r = add("rename a directory across", 0, RENAME("d", Q, "n"), 0,
		-ENOENT);
	ex(r, X_LISTED, Q, "n", D);
	ex(r, X_NLINK, P, NULL, 3);
	ex(r, X_NLINK, Q, NULL, 3);
	r = add("rename over a file", 0, RENAME("f", Q, "g"), 0, -ENOENT);
	ex(r, X_LISTED, Q, "g", F);
	ex(r, X_UNLISTED, P, "f", 0);
	ex(r, X_GONE, G, NULL, 1);
	op = RENAME("f", Q, "g");
	op.flags = PROTO_RENAME_NOREPLACE;
	add("rename noreplace over a file", 0, op, -EEXIST, 0);
	op = RENAME("f", Q, "n");
	op.flags = PROTO_RENAME_NOREPLACE;
	r = add("rename noreplace to a free name", 0, op, 0, -ENOENT);
	ex(r, X_LISTED, Q, "n", F);
	ex(r, X_UNLISTED, P, "f", 0);
	op = RENAME("f", Q, "g");
	op.flags = PROTO_RENAME_EXCHANGE;
	r = add("rename exchange", 0, op, 0, 0);
	ex(r, X_LISTED, P, "f", G);
	ex(r, X_LISTED, Q, "g", F);
	ex(r, X_GONE, F, NULL, 0);
	ex(r, X_NLINK, F, NULL, 1);
	ex(r, X_NLINK, G, NULL, 1);
	op = RENAME("f", Q, "n");
	op.flags = PROTO_RENAME_EXCHANGE;
	add("rename exchange with a name not there", 0, op, -ENOENT, 0);
	add("rename a file over a directory", 0, RENAME("f", P, "d"), -EISDIR,
	    0);
	add("rename a directory over a file", 0, RENAME("d", P, "f"), -ENOTDIR,
	    0);
	add("rename over a directory with a name in it", 0, RENAME("d", P, "e"),
	    -ENOTEMPTY, 0);
	r = add("rename over an empty directory", 0, RENAME("e", P, "d"), 0,
		-ENOENT);
	ex(r, X_LISTED, P, "d", E);
	ex(r, X_UNLISTED, P, "e", 0);
	ex(r, X_GONE, D, NULL, 1);
	ex(r, X_NLINK, P, NULL, 3);
	add("rename a name not there", 0, RENAME("n", Q, "m"), -ENOENT, 0);
	add("rename, source not cached", F_UNCACHED, RENAME("f", P, "n"), -EIO,
	    0);
	add("rename, parent not listed", P_UNLISTED, RENAME("f", Q, "n"), -EIO,
	    0);
	add("rename into an unlisted directory", P_UNLISTED,
	    mkop(PROTO_OP_RENAME, G, Q, "g", P, "n"), -EIO, 0);
	r = add("rename onto its own name", 0, RENAME("f", P, "f"), 0, 0);
	ex(r, X_LISTED, P, "f", F);
	ex(r, X_SAMEDV, P, NULL, 5);
	ex(r, X_GONE, F, NULL, 0);

	/* setattr, truncate */
	op = mkop(PROTO_OP_SETATTR, F, R, NULL, R, NULL);
	op.mask = PROTO_SA_MODE | PROTO_SA_UID;
	op.mode = 0600;
	op.uid = 42;
	r = add("setattr mode and owner", 0, op, 0, 0);
	ex(r, X_MODE, F, NULL, 0600);
	ex(r, X_SIZE, F, NULL, 100);
	ex(r, X_SAMEDV, F, NULL, 7);
	ex(r, X_HAS_ATTR, F, NULL, 0);
	op = mkop(PROTO_OP_SETATTR, F, R, NULL, R, NULL);
	op.mask = PROTO_SA_SIZE;
	op.size = 10;
	r = add("truncate", 0, op, 0, 0);
	ex(r, X_SIZE, F, NULL, 10);
	ex(r, X_MODE, F, NULL, 0644);
	add("setattr, target not cached", F_UNCACHED, op, -EIO, 0);

	/* xattrs */
	op = mkop(PROTO_OP_SETXATTR, F, R, NULL, R, NULL);
	op.xname = "user.b";
	op.xvalue = "2";
	op.xlen = 1;
	op.flags = PROTO_XATTR_CREATE;
	r = add("setxattr create a new one", 0, op, 0, -EEXIST);
	ex(r, X_XATTR, F, "user.b", 0);
	ex(r, X_XATTR, F, "user.a", 0);
	op.xname = "user.a";
	add("setxattr create an existing one", 0, op, -EEXIST, 0);
	op.xname = "user.z";
	op.flags = PROTO_XATTR_REPLACE;
	add("setxattr replace one not there", 0, op, -ENODATA, 0);
	op.xname = "user.a";
	r = add("setxattr replace", 0, op, 0, 0);
	ex(r, X_XATTR, F, "user.a", 0);
	op.flags = 0;
	add("setxattr, xattrs not cached", F_NO_XATTRS, op, -EIO, 0);
	add("setxattr, target not cached", F_UNCACHED, op, -EIO, 0);
	op = mkop(PROTO_OP_REMOVEXATTR, F, R, NULL, R, NULL);
	op.xname = "user.a";
	r = add("removexattr", 0, op, 0, -ENODATA);
	ex(r, X_NOXATTR, F, "user.a", 0);
	op.xname = "user.z";
	add("removexattr one not there", 0, op, -ENODATA, 0);

	/* store: the write states log it; local application marks it */
	op = mkop(PROTO_OP_STORE, F, R, NULL, R, NULL);
	r = add("store", 0, op, 0, 0);
	ex(r, X_ABSORBED, F, NULL, 1);
	ex(r, X_SAMEDV, F, NULL, 7);
	ex(r, X_HAS_ATTR, F, NULL, 0);
}

/* --- checking a row --- */

static int
get_attr(enum obj o, struct proto_attr *a)
{
	struct fid f = fid_of(o);

	return mcache_attr(fx.mc, &f, a);
}

/* The FID @name has in the cached listing of @d: 1 found, 0 not there,
 * -1 no listing. */
static int
lookup(enum obj d, const char *name, struct fid *out)
{
	struct fid f = fid_of(d);
	struct vc_dir *vd;
	long i;

	if (mcache_dir(fx.mc, &f, &vd) < 0)
		return -1;
	i = vc_dir_find(vd, name, strlen(name));
	if (i >= 0)
		*out = vc_dir_ent(vd, i)->fid;
	vc_dir_put(vd);
	return i >= 0;
}

static bool
has_xattr(enum obj o, const char *name)
{
	struct fid f = fid_of(o);
	struct proto_xattr *x = NULL;
	size_t n = 0;
	int64_t stamp;
	bool found = false;

	if (vc_get_xattrs(fx.vc, &f, &stamp, &x, &n) < 0)
		return false;
	for (size_t i = 0; i < n; i++)
		found = found || !strcmp(x[i].name, name);
	proto_xattrs_free(x, n);
	return found;
}

static void
check_expect(const struct row *row, const struct expect *e,
	     const struct proto_op_result *res)
{
	struct proto_attr a;
	struct fid got, want = fid_of((enum obj)e->v);
	int rc;

	switch (e->k) {
	case X_LISTED:
		rc = lookup(e->o, e->name, &got);
		ok(rc == 1 && fid_eq(&got, &want), "%s: %s lists '%s' as %s",
		   row->what, oname[e->o], e->name, oname[e->v]);
		break;
	case X_UNLISTED:
		ok(lookup(e->o, e->name, &got) == 0, "%s: %s has no '%s'",
		   row->what, oname[e->o], e->name);
		break;
	case X_NLINK:
		rc = get_attr(e->o, &a);
		ok(rc == 0 && (long long)a.nlink == e->v,
		   "%s: %s nlink %lld (got %d/%u)", row->what, oname[e->o],
		   e->v, rc, rc ? 0 : (unsigned)a.nlink);
		break;
	case X_TYPE:
		rc = get_attr(e->o, &a);
		ok(rc == 0 && (long long)a.type == e->v, "%s: %s type %lld",
		   row->what, oname[e->o], e->v);
		break;
	case X_SIZE:
		rc = get_attr(e->o, &a);
		ok(rc == 0 && (long long)a.size == e->v, "%s: %s size %lld",
		   row->what, oname[e->o], e->v);
		break;
	case X_MODE:
		rc = get_attr(e->o, &a);
		ok(rc == 0 && (long long)(a.mode & 07777) == e->v,
		   "%s: %s mode %llo", row->what, oname[e->o], e->v);
		break;
	case X_LOCALDV:
		rc = get_attr(e->o, &a);
		ok(rc == 0 && (a.dv & CM_DV_LOCAL), "%s: %s has a local DV",
		   row->what, oname[e->o]);
		break;
	case X_SAMEDV:
		rc = get_attr(e->o, &a);
		ok(rc == 0 && (long long)a.dv == e->v, "%s: %s keeps DV %lld",
		   row->what, oname[e->o], e->v);
		break;
	case X_EMPTY: {
		struct fid f = fid_of(e->o);
		struct vc_dir *d;

		rc = mcache_dir(fx.mc, &f, &d);
		ok(rc == 0 && d->n == 0, "%s: %s listed, empty", row->what,
		   oname[e->o]);
		if (rc == 0)
			vc_dir_put(d);
		break;
	}
	case X_LINK: {
		struct fid f = fid_of(e->o);
		char *t = NULL;

		rc = vc_get_link(fx.vc, &f, &t);
		ok(rc == 0 && t && !strcmp(t, e->name), "%s: %s -> %s",
		   row->what, oname[e->o], e->name);
		free(t);
		break;
	}
	case X_XATTR:
		ok(has_xattr(e->o, e->name), "%s: %s has %s", row->what,
		   oname[e->o], e->name);
		break;
	case X_NOXATTR:
		ok(!has_xattr(e->o, e->name), "%s: %s has no %s", row->what,
		   oname[e->o], e->name);
		break;
	case X_GONE:
		want = fid_of(e->o);
		ok(hk.gone == e->v && (!e->v || fid_eq(&hk.gone_fid, &want)),
		   "%s: file_gone called %lld time(s)%s%s (got %u)", row->what,
		   e->v, e->v ? " for " : "", e->v ? oname[e->o] : "", hk.gone);
		break;
	case X_ABSORBED:
		is_int(hk.absorbed, e->v,
		       "%s: store_absorbed called %lld time(s)", row->what,
		       e->v);
		break;
	case X_HAS_ATTR:
		want = fid_of(e->o);
		ok(res->has_attr && fid_eq(&res->attr.fid, &want),
		   "%s: the result has %s's attributes", row->what,
		   oname[e->o]);
		break;
	case X_END:
		break;
	}
}

static void
run_row(const struct row *row)
{
	struct sbuf before, after;
	struct proto_op_result res;
	int rc;

	if (fixture(row->flags) < 0) {
		ok(0, "%s: cannot set up the fixture", row->what);
		fixture_free();
		return;
	}
	snapshot(&before);

	rc = local_apply(fx.l, &row->op, false, &res);
	is_int(rc, row->rc, "%s: the check says %s", row->what,
	       row->rc ? strerror(-row->rc) : "yes");
	snapshot(&after);
	ok(before.n == after.n && !memcmp(before.b, after.b, before.n) &&
		   hk.gone == 0 && hk.absorbed == 0,
	   "%s: the check changes nothing", row->what);

	rc = local_apply(fx.l, &row->op, true, &res);
	is_int(rc, row->rc, "%s: applied: %s", row->what,
	       row->rc ? strerror(-row->rc) : "done");
	if (row->rc) {
		/* Invariant 3: refused leaves nothing behind. */
		snapshot(&after);
		ok(before.n == after.n &&
			   !memcmp(before.b, after.b, before.n) &&
			   hk.gone == 0 && hk.absorbed == 0,
		   "%s: refused, the caches are as they were", row->what);
		if (before.n != after.n || memcmp(before.b, after.b, before.n))
			diag("before:\n%s\nafter:\n%s", before.b, after.b);
	} else {
		for (size_t i = 0; row->ex[i].k != X_END; i++)
			check_expect(row, &row->ex[i], &res);
		ok(hk.arg == NULL || hk.arg == &hk,
		   "%s: hooks get their own argument", row->what);
		if (row->again) {
			/* Invariant 3: at most once. */
			snapshot(&before);
			rc = local_apply(fx.l, &row->op, false, &res);
			is_int(rc, row->again,
			       "%s: applying it again is refused (%s)",
			       row->what, strerror(-row->again));
			snapshot(&after);
			ok(before.n == after.n &&
				   !memcmp(before.b, after.b, before.n),
			   "%s: and that changes nothing", row->what);
		}
	}
	fixture_free();
}

int
main(void)
{
	char cmd[300];

	log_init("test_cm_local", 0, LOG_CRIT);
	/* Small caches, quickly made (vc_set_new_hash_size()). */
	vc_set_new_hash_size(131071);
	if (!mkdtemp(dir))
		return 1;
	build_table();
	for (size_t i = 0; i < nrows; i++)
		run_row(&rows[i]);

	/* A bad op kind changes nothing either. */
	if (fixture(0) == 0) {
		struct proto_op op =
			mkop((enum proto_op_kind)99, F, P, "f", R, NULL);
		struct proto_op_result res;

		is_int(local_apply(fx.l, &op, true, &res), -EINVAL,
		       "an unknown op kind: -EINVAL");
		is_int(local_lookup_name(fx.l, &op.parent, "f", NULL, NULL), 0,
		       "lookup_name finds a cached name");
		{
			struct fid pf = fid_of(P), ff = fid_of(F), got;
			enum proto_type t = PROTO_T_NONE;

			ok(local_lookup_name(fx.l, &pf, "f", &got, &t) == 0 &&
				   fid_eq(&got, &ff) && t == PROTO_T_FILE,
			   "lookup_name gives the FID and type");
			is_int(local_lookup_name(fx.l, &pf, "zz", NULL, NULL),
			       -ENOENT, "lookup_name of a name not there");
			ff = fid_of(F);
			is_int(local_lookup_name(fx.l, &ff, "x", NULL, NULL),
			       -ENOTDIR, "lookup_name in a file: -ENOTDIR");
		}
	}
	fixture_free();

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		diag("cannot remove %s", dir);
	return done_testing();
}
