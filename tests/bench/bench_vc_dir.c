/*
 * bench_vc_dir.c - the cost of cached-listing work in cm/vc.c alone, in
 * process (no FUSE, no server): building a snapshot of N entries from a
 * listing's pages (vc_dirb_finish: the sort), edits of it kept in memory
 * (the online path: VC_E_NOSTORE), and edits stored each time (the
 * offline path), each timed per 2,000 operations so a cost that grows
 * with the run shows. doc/cm.md "Profiles of the big-directory rows".
 *
 * Usage: bench_vc_dir FILE.tdb [N [EDITS [PREFILL]]]
 * (defaults 100000, 10000, 0). Every edit also stores the new entry's and
 * the directory's attributes, as a create does. PREFILL > 0 first fills
 * the file like a cache of a volume of PREFILL files in directories of
 * 1,000 (their listings and attributes), then drops every 500th file's
 * attributes (small free records in tdb's free list, as a walk, a pin
 * and a revalidation leave them): the offline creates of
 * bench-scale-tree at 1,000,000 files. PER > 0: instead of the rows
 * above, EDITS stored creates in new directories of PER names each, as
 * bench-scale-tree's offline creates make them.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cm/vc.h"
#include "common/log.h"

static double
now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static struct fid
mkfid(unsigned k)
{
	struct fid f = {.vol = 7};

	memcpy(f.oid + 4, &k, sizeof(k));
	return f;
}

static struct proto_attr
mkattr(const struct fid *f, enum proto_type t, uint64_t dv)
{
	struct proto_attr a;

	memset(&a, 0, sizeof(a));
	a.fid = *f;
	a.type = t;
	a.mode = t == PROTO_T_DIR ? 0755 : 0644;
	a.nlink = t == PROTO_T_DIR ? 2 : 1;
	a.dv = dv;
	return a;
}

/* A snapshot of @n entries f0000000.. in a scrambled (hash-like) order,
 * stored with its directory's attributes @da. */
static struct vc_dir *
build(struct vc *vc, const struct proto_attr *da, unsigned n, double *secs)
{
	struct vc_dirb b = {0};
	struct vc_dir *d;
	char name[32];
	double t0;

	for (unsigned i = 0; i < n; i++) {
		unsigned k = (unsigned)(((unsigned long long)i * 7919u) % n);
		struct fid f = mkfid(k);

		snprintf(name, sizeof(name), "f%07u", k);
		if (vc_dirb_add(&b, name, PROTO_T_FILE, &f) < 0)
			return NULL;
	}
	t0 = now();
	d = vc_dirb_finish(&b, &da->fid, da->dv);
	*secs = now() - t0;
	if (d && vc_put_listing(vc, da, d) < 0) {
		vc_dir_put(d);
		return NULL;
	}
	return d;
}

/* PREFILL: @files files in directories of 1,000, listed and with their
 * attributes stored, then every 500th file's attributes dropped. */
static int
prefill(struct vc *vc, unsigned files)
{
	double t0 = now(), secs;

	for (unsigned d = 0; d * 1000 < files; d++) {
		struct vc_dirb b = {0};
		struct fid df = mkfid(0x80000000u + d);
		struct proto_attr da = mkattr(&df, PROTO_T_DIR, 1);
		struct vc_dir *dir;
		char name[32];

		for (unsigned i = 0; i < 1000; i++) {
			struct fid f = mkfid(0x40000000u + d * 1000 + i);
			struct proto_attr a = mkattr(&f, PROTO_T_FILE, 1);

			snprintf(name, sizeof(name), "file%04u", i);
			if (vc_dirb_add(&b, name, PROTO_T_FILE, &f) < 0 ||
			    vc_put_attr(vc, &a) < 0)
				return -1;
		}
		dir = vc_dirb_finish(&b, &df, 1);
		if (!dir || vc_put_listing(vc, &da, dir) < 0)
			return -1;
		vc_dir_put(dir);
	}
	for (unsigned i = 0; i < files; i += 500) {
		struct fid f = mkfid(0x40000000u + i);

		vc_del_attr(vc, &f);
	}
	secs = now() - t0;
	printf("prefilled %u files in %.1f s\n", files, secs);
	return 0;
}

/* @edits creates of names spread over the listing, each kept in memory
 * (@flags VC_E_NOSTORE) or stored. @return 0 or -1. */
static int
edits(struct vc *vc, struct vc_dir **cur, struct proto_attr *da,
      unsigned n, unsigned edits, unsigned flags, const char *label)
{
	double t0 = now();
	char name[32];

	for (unsigned i = 0; i < edits; i++) {
		unsigned k = (unsigned)(((unsigned long long)i * 2654435761u) % n);
		struct fid f = mkfid(n + i + (flags ? 0 : edits));
		struct proto_attr ea = mkattr(&f, PROTO_T_FILE, 1);
		struct vc_dir *nw;

		snprintf(name, sizeof(name), "f%07ux%s%u", k, label, i);
		da->dv++;
		if (vc_dir_edit_flags(vc, *cur, da, NULL, name, &ea, &nw,
				      flags) < 0)
			return -1;
		vc_put_attr(vc, &ea);
		vc_put_attr(vc, da);
		vc_dir_put(*cur);
		*cur = nw;
		if ((i + 1) % 2000 == 0) {
			double t1 = now();

			printf("%-28s %6u edits: %8.1f us an edit (%zu entries, "
			       "%zu segments)\n",
			       label, i + 1, (t1 - t0) * 1e6 / 2000, (*cur)->n,
			       (*cur)->nseg);
			t0 = t1;
		}
	}
	return 0;
}

/* PER > 0: @total creates, stored, in new directories of @per names each
 * (bench-scale-tree's offline creates: each directory made empty, its
 * listing stored, then filled). @return 0 or -1. */
static int
creates_in_dirs(struct vc *vc, unsigned total, unsigned per)
{
	double t0 = now();
	char name[32];

	for (unsigned i = 0, dn = 0; i < total; dn++) {
		struct fid df = mkfid(0xc0000000u + dn);
		struct proto_attr da = mkattr(&df, PROTO_T_DIR, 1);
		struct vc_dirb b = {0};
		struct vc_dir *cur = vc_dirb_finish(&b, &df, 1);

		if (!cur || vc_put_listing(vc, &da, cur) < 0)
			return -1;
		for (unsigned k = 0; k < per && i < total; k++, i++) {
			struct fid f = mkfid(0x20000000u + i);
			struct proto_attr ea = mkattr(&f, PROTO_T_FILE, 1);
			struct vc_dir *nw;

			snprintf(name, sizeof(name), "n%07u", i);
			da.dv++;
			if (vc_dir_edit_flags(vc, cur, &da, NULL, name, &ea,
					      &nw, 0) < 0)
				return -1;
			vc_put_attr(vc, &ea);
			vc_put_attr(vc, &da);
			vc_dir_put(cur);
			cur = nw;
			if ((i + 1) % 10000 == 0) {
				double t1 = now();

				printf("creates in directories of %u: %7u: "
				       "%8.1f us a create\n",
				       per, i + 1, (t1 - t0) * 1e6 / 10000);
				t0 = t1;
			}
		}
		vc_dir_put(cur);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	const char *path;
	unsigned n = 100000, ne = 10000, pre = 0, per = 0;
	struct fid df = mkfid(0xffffffffu);
	struct proto_attr da = mkattr(&df, PROTO_T_DIR, 1);
	struct vc *vc;
	struct vc_dir *cur;
	double secs;

	if (argc < 2) {
		fprintf(stderr, "usage: bench_vc_dir FILE.tdb [N [EDITS "
				"[PREFILL [PER]]]]\n");
		return 2;
	}
	path = argv[1];
	if (argc > 2)
		n = (unsigned)strtoul(argv[2], NULL, 10);
	if (argc > 3)
		ne = (unsigned)strtoul(argv[3], NULL, 10);
	if (argc > 4)
		pre = (unsigned)strtoul(argv[4], NULL, 10);
	if (argc > 5)
		per = (unsigned)strtoul(argv[5], NULL, 10);
	if (n == 0)
		n = 1;
	log_init("bench_vc_dir", 0, LOG_ERR);
	unlink(path);
	vc = vc_open(path, 7, 262144);
	if (!vc) {
		perror(path);
		return 1;
	}
	if (pre && prefill(vc, pre) < 0) {
		fprintf(stderr, "cannot prefill\n");
		return 1;
	}
	if (per) {
		int rc = creates_in_dirs(vc, ne, per);

		vc_close(vc);
		unlink(path);
		return rc ? 1 : 0;
	}
	cur = build(vc, &da, n, &secs);
	if (!cur) {
		fprintf(stderr, "cannot build the listing\n");
		return 1;
	}
	printf("snapshot of %u entries built (sorted) in %.1f ms\n", n,
	       secs * 1e3);
	if (edits(vc, &cur, &da, n, ne, VC_E_NOSTORE, "in memory") < 0 ||
	    edits(vc, &cur, &da, n, ne, 0, "stored") < 0) {
		fprintf(stderr, "an edit failed\n");
		return 1;
	}
	vc_dir_put(cur);
	vc_close(vc);
	unlink(path);
	return 0;
}
