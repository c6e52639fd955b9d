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

int
main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 100;
	struct proto_dir d = {0};
	size_t n = PROTO_DIR_PAGE_MAX, len = 0;
	char next[PROTO_CURSOR_MAX], *s = NULL;
	double t0, t1, t2;

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
	t0 = cpu_now();
	for (int r = 0; r < rounds; r++) {
		free(s);
		s = proto_dir_page_encode(&d, "7.3.12", &len);
		if (!s)
			return 1;
	}
	t1 = cpu_now();
	for (int r = 0; r < rounds; r++) {
		struct proto_dir g;

		if (proto_dir_page_decode_unchecked(s, len, true, &g, next)) {
			fprintf(stderr, "decode failed\n");
			return 1;
		}
		proto_dir_release(&g);
	}
	t2 = cpu_now();
	printf("JSON page of %zu entries, %zu bytes: encode %.0f ns an entry, "
	       "decode %.0f ns an entry\n",
	       n, len, (t1 - t0) / rounds / (double)n * 1e9,
	       (t2 - t1) / rounds / (double)n * 1e9);
	free(s);
	s = NULL;
	t0 = cpu_now();
	for (int r = 0; r < rounds; r++) {
		struct proto_sbuf b = {0};

		free(s);
		proto_dirb_reserve(&b);
		for (size_t i = 0; i < n; i++)
			proto_dirb_ent(&b, d.ents[i].name,
				       strlen(d.ents[i].name), &d.ents[i].attr);
		s = proto_dirb_page_end(&b, &d.dir, "7.3.12", &len);
		if (!s)
			return 1;
	}
	t1 = cpu_now();
	for (int r = 0; r < rounds; r++) {
		struct proto_dir g;

		if (proto_dir_page_decode_unchecked(s, len, true, &g, next)) {
			fprintf(stderr, "binary decode failed\n");
			return 1;
		}
		proto_dir_release(&g);
	}
	t2 = cpu_now();
	printf("binary page of %zu entries, %zu bytes: encode %.0f ns an "
	       "entry, decode %.0f ns an entry\n",
	       n, len, (t1 - t0) / rounds / (double)n * 1e9,
	       (t2 - t1) / rounds / (double)n * 1e9);
	free(s);
	proto_dir_release(&d);
	return 0;
}
