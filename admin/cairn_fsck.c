/*
 * cairn_fsck.c - cairn-fsck(8): check and repair a cairnd cache folder
 * offline.
 *
 * A thin front over cs_check_locked() in libchunkstore and, for cairnd's
 * metadata caches (meta.tdb), fsck_meta(), run by its hook under the same
 * cache lock: it parses options, prints findings in plain words (or JSON)
 * and maps the result to fsck(8) exit codes. This file sees libchunkstore only, no libfuse and nothing of
 * common/, which proves the chunk store stands alone (STYLE.md section
 * 1); fsck_meta.c reaches the FUSE-free record layer (cm/vc.c).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "admin/fsck_meta.h"
#include "chunkstore/cs.h"

/* fsck(8) exit codes, deliberately not sysexits(3) like the other cairn
 * programs: fsck -A, boot scripts and monitoring read a checker's status
 * as a bit mask (man/cairn-fsck.8 EXIT STATUS). */
enum {
	EXIT_CLEAN = 0,
	EXIT_CORRECTED = 1,
	EXIT_UNCORRECTED = 4,
	EXIT_OPERATIONAL = 8,
	EXIT_USAGE = 16,
};

struct opts {
	int repair;
	int quiet;
	int json;
	int json_first;
	unsigned long long meta_notes; /* notes of fsck_meta() */
};

static const char usage_text[] =
	"usage: cairn-fsck [--check | --repair] [--quiet] [--json] CACHEDIR\n"
	"       cairn-fsck --help | --version\n"
	"\n"
	"Check a cairnd cache folder offline: index, chunk files, checksums;\n"
	"tdb's structure of meta.tdb, dirty.tdb and rlog.tdb, and dirty.tdb's\n"
	"records against their digest; the metadata caches' records and\n"
	"listing pages.\n"
	"  -n, --check    only check, change nothing (the default)\n"
	"  -r, --repair   fix what is found: drop bad records and chunk "
	"files,\n"
	"                 adopt orphan chunk files, remove temporary files,\n"
	"                 rewrite the index; drop damaged metadata records,\n"
	"                 broken listings and orphan listing pages; rebuild\n"
	"                 a meta.tdb whose tdb structure is damaged, and a\n"
	"                 dirty.tdb only when its digest proves no write\n"
	"                 is lost (rlog.tdb never: it is reported)\n"
	"  -q, --quiet    print errors only, no notes or summary\n"
	"  -j, --json     print one JSON object instead of text\n"
	"  -h, --help     print this help\n"
	"  -V, --version  print the version\n"
	"\n"
	"Exit status: 0 clean, 1 errors corrected, 4 errors left uncorrected,\n"
	"8 operational error, 16 usage error.\n";

static void
json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void
report(void *arg, enum cs_finding kind, const char *msg)
{
	struct opts *o = arg;

	if (o->json) {
		printf("%s\n    {\"kind\": \"%s\", \"message\": ",
		       o->json_first ? "" : ",",
		       kind == CS_FIND_ERROR ? "error" : "note");
		json_str(stdout, msg);
		fputc('}', stdout);
		o->json_first = 0;
		return;
	}
	if (kind == CS_FIND_NOTE && o->quiet)
		return;
	printf("%s: %s\n", kind == CS_FIND_ERROR ? "error" : "note", msg);
}

/* A finding of fsck_meta() (a metadata cache), as one of cs_check(). */
static void
meta_report(void *arg, int error, const char *msg)
{
	struct opts *o = arg;

	if (!error)
		o->meta_notes++;
	report(arg, error ? CS_FIND_ERROR : CS_FIND_NOTE, msg);
}

struct meta_run {
	const char *dir;
	struct opts *o;
	struct fsck_meta_result res;
};

/* The metadata caches, run by cs_check_locked() while it still holds the
 * cache folder's lock, so no cairnd opens (and sweeps or writes) a
 * meta.tdb that is being checked or repaired. */
static void
meta_locked(void *arg)
{
	struct meta_run *m = arg;

	fsck_meta(m->dir, m->o->repair, meta_report, m->o, &m->res);
}

static void
log_cb(void *arg, int level, const char *msg)
{
	if (level <= LOG_WARNING)
		fprintf(stderr, "cairn-fsck: %s\n", msg);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"check", no_argument, NULL, 'n'},
		{"repair", no_argument, NULL, 'r'},
		{"quiet", no_argument, NULL, 'q'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct opts o = {.json_first = 1};
	struct cs_check_result res;
	struct fsck_meta_result mres = {0};
	struct meta_run meta = {0};
	const char *dir;
	int c, rc, status;

	while ((c = getopt_long(argc, argv, "nrqjhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			o.repair = 0;
			break;
		case 'r':
			o.repair = 1;
			break;
		case 'q':
			o.quiet = 1;
			break;
		case 'j':
			o.json = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return EXIT_CLEAN;
		case 'V':
			printf("cairn-fsck (%s) %s\n", PACKAGE_NAME,
			       PACKAGE_VERSION);
			return EXIT_CLEAN;
		default:
			fputs(usage_text, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	dir = argv[optind];
	if (o.json)
		fputs("{\n  \"findings\": [", stdout);
	/* The metadata caches are checked under the chunk store's lock,
	 * once its check ran (EBUSY when a cairnd holds the folder). A file
	 * that cannot be read is an uncorrected error, not an operational
	 * one: the chunks were checked. */
	meta.dir = dir;
	meta.o = &o;
	rc = cs_check_locked(dir, o.repair ? CS_CHECK_REPAIR : 0, report, &o,
			     &res, log_cb, NULL, meta_locked, &meta);
	mres = meta.res;
	if (rc >= 0) {
		res.errors += mres.errors;
		res.fixed += mres.fixed;
		res.notes += o.meta_notes;
	}
	if (rc < 0)
		status = EXIT_OPERATIONAL;
	else if (!res.errors)
		status = EXIT_CLEAN;
	else if (res.fixed == res.errors)
		status = EXIT_CORRECTED;
	else
		status = EXIT_UNCORRECTED;
	if (o.json) {
		printf("\n  ],\n  \"cache\": ");
		json_str(stdout, dir);
		printf(",\n  \"status\": %d,\n", status);
		if (rc < 0) {
			printf("  \"error\": ");
			json_str(stdout, strerror(-rc));
			printf("\n}\n");
		} else {
			printf("  \"chunk_size\": %u,\n  \"chunks\": %llu,\n"
			       "  \"files_checked\": %llu,\n  "
			       "\"bytes_checked\": %llu,\n"
			       "  \"meta_files\": %llu,\n"
			       "  \"meta_records\": %llu,\n"
			       "  \"state_files\": %llu,\n"
			       "  \"errors\": %llu,\n  \"corrected\": %llu,\n"
			       "  \"notes\": %llu,\n  \"was_clean\": %s\n}\n",
			       res.chunk_size, (unsigned long long)res.records,
			       (unsigned long long)res.files,
			       (unsigned long long)res.bytes,
			       (unsigned long long)mres.files,
			       (unsigned long long)mres.records,
			       (unsigned long long)mres.state_files,
			       (unsigned long long)res.errors,
			       (unsigned long long)res.fixed,
			       (unsigned long long)res.notes,
			       res.clean ? "true" : "false");
		}
		return status;
	}
	if (rc < 0) {
		fprintf(stderr, "cairn-fsck: cannot check '%s': %s\n", dir,
			strerror(-rc));
		return status;
	}
	if (!o.quiet)
		printf("%s: %llu chunks, %llu files and %llu bytes checked, "
		       "%llu metadata records in %llu files; "
		       "%llu errors (%llu corrected), %llu notes\n",
		       dir, (unsigned long long)res.records,
		       (unsigned long long)res.files,
		       (unsigned long long)res.bytes,
		       (unsigned long long)mres.records,
		       (unsigned long long)mres.files,
		       (unsigned long long)res.errors,
		       (unsigned long long)res.fixed,
		       (unsigned long long)res.notes);
	return status;
}
