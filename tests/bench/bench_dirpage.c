/*
 * bench_dirpage - CPU time of encoding and decoding one listing page of
 * 4,096 entries (proto_dir_page_encode / proto_dir_page_decode), per
 * entry: the wire's share of a cold listing on each side (doc/cm.md,
 * "Listings at scale", session 10), in JSON and in binary (protocol 8,
 * session 24); both decoded as cairnd takes a page (names unchecked). Built by
 * make bench, run by hand: bench_dirpage [ROUNDS]
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/proto.h"

static double
cpu_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The page of @d with cursor "7.3.12", as cairn-vold writes it. */
typedef char *(*encode_fn)(const struct proto_dir *d, size_t *lenp);

static char *
json_page(const struct proto_dir *d, size_t *lenp)
{
	return proto_dir_page_encode(d, "7.3.12", lenp);
}

static char *
binary_page(const struct proto_dir *d, size_t *lenp)
{
	struct proto_sbuf b = {0};

	proto_dirb_reserve(&b);
	for (size_t i = 0; i < d->n; i++)
		proto_dirb_ent(&b, d->ents[i].name, strlen(d->ents[i].name),
			       &d->ents[i].attr);
	return proto_dirb_page_end(&b, &d->dir, "7.3.12", lenp);
}

/* Encode @d @rounds times, decode it as cairnd takes a page @rounds times,
 * print the CPU of each an entry. @return 0, or 1 when either fails. */
static int
timed(const char *what, encode_fn enc, const struct proto_dir *d, int rounds)
{
	char next[PROTO_CURSOR_MAX], *s = NULL;
	size_t len = 0;
	double t0, t1, t2;

	t0 = cpu_now();
	for (int r = 0; r < rounds; r++) {
		free(s);
		s = enc(d, &len);
		if (!s)
			return 1;
	}
	t1 = cpu_now();
	for (int r = 0; r < rounds; r++) {
		struct proto_dir g;

		if (proto_dir_page_decode_unchecked(s, len, true, &g, next)) {
			fprintf(stderr, "%s: decode failed\n", what);
			free(s);
			return 1;
		}
		proto_dir_release(&g);
	}
	t2 = cpu_now();
	printf("%s page of %zu entries, %zu bytes: encode %.0f ns an entry, "
	       "decode %.0f ns an entry\n",
	       what, d->n, len, (t1 - t0) / rounds / (double)d->n * 1e9,
	       (t2 - t1) / rounds / (double)d->n * 1e9);
	free(s);
	return 0;
}

int
main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 100;
	struct proto_dir d = {0};
	size_t n = PROTO_DIR_PAGE_MAX;

	if (rounds < 1)
		rounds = 1;
	d.dir.type = PROTO_T_DIR;
	d.dir.mode = 0755;
	d.dir.fid.vol = 1;
	d.dir.fid.oid[0] = 1;
	d.dir.nlink = 2;
	d.dir.dv = 7;
	d.ents = calloc(n, sizeof(*d.ents));
	if (!d.ents)
		return 1;
	d.n = n;
	for (size_t i = 0; i < n; i++) {
		struct proto_attr *a = &d.ents[i].attr;
		char b[32];

		snprintf(b, sizeof(b), "f%07zu", i);
		d.ents[i].name = strdup(b);
		if (!d.ents[i].name)
			return 1;
		a->type = PROTO_T_FILE;
		a->mode = 0644;
		a->uid = a->gid = 1000;
		a->nlink = 1;
		a->dv = 1;
		a->fid.vol = 0x0bcd91b3;
		for (int k = 0; k < FID_OID_LEN; k++)
			a->fid.oid[k] = (unsigned char)(i * 7 + k * 13 + 1);
		a->atime_ns = a->mtime_ns = a->ctime_ns = 1764950000123456789LL;
	}
	if (timed("JSON", json_page, &d, rounds) ||
	    timed("binary", binary_page, &d, rounds))
		return 1;
	proto_dir_release(&d);
	return 0;
}
