/*
 * test_cm_dstream.c - a listing read as its pages come (cm/dstream.c):
 * entries in the order they came, "not yet" until the end, the end or
 * the failure after it; a restart gives no name twice (also after a
 * second one); waiters run once their entry came or the stream ended;
 * what the stream keeps is released with it.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm/dstream.h"
#include "common/log.h"
#include "tests/tap.h"

/* @n entries named @pfx and a number of @width digits from @from. */
static struct proto_dirent *
page(const char *pfx, int width, size_t from, size_t n)
{
	struct proto_dirent *e = calloc(n, sizeof(*e));

	for (size_t i = 0; e && i < n; i++) {
		char b[64];

		snprintf(b, sizeof(b), "%s%0*zu", pfx, width, from + i);
		e[i].name = strdup(b);
		e[i].attr.type = (i % 2) ? PROTO_T_FILE : PROTO_T_DIR;
		e[i].attr.fid.vol = 9;
		e[i].attr.fid.oid[0] = (uint8_t)(from + i);
		e[i].attr.fid.oid[1] = (uint8_t)((from + i) >> 8);
	}
	return e;
}

static void
page_free(struct proto_dirent *e, size_t n)
{
	for (size_t i = 0; e && i < n; i++)
		free(e[i].name);
	free(e);
}

static int woken;
static void
wake_cb(void *arg, int err)
{
	(void)err;
	woken += *(int *)arg;
}

static int released;
static void
release_cb(void *p)
{
	released++;
	free(p);
}

static int
cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every name of @s once? @return the count, or -1 on a repeat. */
static long
distinct(struct dstream *s)
{
	size_t n = dstream_count(s);
	char **names = calloc(n ? n : 1, sizeof(*names));
	long rc = (long)n;

	for (size_t i = 0; i < n; i++) {
		char nm[256];
		struct fid f;
		uint8_t t;

		if (dstream_ent(s, i, nm, sizeof(nm), &f, &t) != 1) {
			rc = -1;
			n = i;
			break;
		}
		names[i] = strdup(nm);
	}
	/* Sorted, a name given twice sits next to itself. */
	if (rc >= 0)
		qsort(names, n, sizeof(*names), cmp_name);
	for (size_t i = 1; i < n && rc >= 0; i++)
		if (!strcmp(names[i - 1], names[i]))
			rc = -1;
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

int
main(void)
{
	struct fid dir = {.vol = 9}, f;
	struct proto_dirent *p1, *p2;
	struct dstream *s;
	char nm[256], tiny[4];
	uint8_t t;
	int one = 1, ten = 10;

	log_init("test_cm_dstream", 0, LOG_CRIT);
	dir.oid[15] = 1;
	s = dstream_new(&dir);
	ok(s != NULL, "dstream_new");
	if (!s)
		return done_testing();
	ok(fid_eq(dstream_fid(s), &dir), "its directory");
	is_int(dstream_ent(s, 0, nm, sizeof(nm), &f, &t), 0,
	       "nothing yet: entry 0 has not come");

	/* Waiters: one for entry 0, one for entry 150. */
	is_int(dstream_wait(s, 0, wake_cb, &one), 0, "wait for entry 0");
	is_int(dstream_wait(s, 150, wake_cb, &ten), 0, "wait for entry 150");
	p1 = page("a", 4, 0, 100);
	is_int(dstream_add(s, p1, 100), 0, "a page of 100");
	dstream_wake(s);
	is_int(woken, 1, "the waiter of entry 0 ran, not the one of 150");
	is_int(dstream_wait(s, 99, wake_cb, &one), 1,
	       "waiting for an entry that came: at once");
	is_int((int)dstream_count(s), 100, "100 entries");
	is_int(dstream_ent(s, 42, nm, sizeof(nm), &f, &t), 1, "entry 42");
	is_str(nm, "a0042", "its name");
	ok(f.vol == 9 && f.oid[0] == 42 && t == PROTO_T_DIR,
	   "its FID and type");
	is_int(dstream_ent(s, 43, tiny, sizeof(tiny), &f, &t), -ENAMETOOLONG,
	       "a buffer too small: -ENAMETOOLONG");
	is_int(dstream_ent(s, 100, nm, sizeof(nm), &f, &t), 0,
	       "entry 100: not yet");

	/* The directory changed: start over. The new first page repeats
	 * a0050..a0149 (a0000..a0049 were removed): only a0100..a0149 are
	 * new to the reader. */
	dstream_restart(s);
	p2 = page("a", 4, 50, 100);
	is_int(dstream_add(s, p2, 100), 0, "after a restart, a page");
	dstream_wake(s);
	is_int((int)dstream_count(s), 150, "only the names not given before");
	is_int(woken, 1, "entries 0-149: the waiter of entry 150 still waits");
	page_free(p2, 100);
	p2 = page("b", 4, 0, 10);
	dstream_add(s, p2, 10);
	dstream_wake(s);
	is_int(woken, 11, "entry 150 came: its waiter ran (once)");
	is_int(dstream_ent(s, 100, nm, sizeof(nm), &f, &t), 1, "entry 100");
	is_str(nm, "a0100", "is the first new name after the restart");
	/* Again: everything so far comes once more, plus one. */
	dstream_restart(s);
	dstream_add(s, p1, 100);
	dstream_add(s, p2, 10);
	page_free(p2, 10);
	p2 = page("a", 4, 50, 101);
	dstream_add(s, p2, 101);
	is_int((int)dstream_count(s), 161,
	       "a second restart: names given after the first one are not given again either");
	is_int((int)distinct(s), 161, "no name twice");
	page_free(p2, 101);

	dstream_end(s, 0);
	is_int(dstream_ent(s, 161, nm, sizeof(nm), &f, &t), -1,
	       "past the end of a complete listing: -1");
	is_int(dstream_wait(s, 500, wake_cb, &one), 1,
	       "waiting on an ended stream: at once");
	dstream_end(s, -EIO);
	is_int(dstream_ent(s, 161, nm, sizeof(nm), &f, &t), -1,
	       "a second end changes nothing");
	is_int(dstream_add(s, p1, 100), 0, "a page after the end...");
	is_int((int)dstream_count(s), 161, "...is not taken");
	dstream_keep(s, malloc(16), release_cb);
	dstream_ref(s);
	dstream_put(s);
	is_int(released, 0, "kept while a reference is left");
	dstream_put(s);
	is_int(released, 1, "released with the stream");

	/* A failed listing: readers past what came get its error; the
	 * waiters run at the end. */
	s = dstream_new(&dir);
	dstream_add(s, p1, 100);
	woken = 0;
	dstream_wait(s, 100, wake_cb, &one);
	dstream_end(s, -EIO);
	dstream_wake(s);
	is_int(woken, 1, "a failed end runs the waiters");
	is_int(dstream_ent(s, 99, nm, sizeof(nm), &f, &t), 1,
	       "what came before the failure is still there");
	is_int(dstream_ent(s, 100, nm, sizeof(nm), &f, &t), -EIO,
	       "past it: the failure");
	dstream_put(s);
	page_free(p1, 100);

	/* Big: 20,000 entries in 5 pages, a restart, all of them again
	 * and 7 more. */
	s = dstream_new(&dir);
	for (size_t k = 0; k < 5; k++) {
		p1 = page("f", 6, k * 4000, 4000);
		dstream_add(s, p1, 4000);
		page_free(p1, 4000);
	}
	dstream_restart(s);
	for (size_t k = 0; k < 5; k++) {
		p1 = page("f", 6, k * 4000 + (k == 4 ? 7 : 0), 4000);
		dstream_add(s, p1, 4000);
		page_free(p1, 4000);
	}
	is_int((int)distinct(s), 20007, "20,007 names, each once");
	dstream_put(s);
	dstream_put(NULL);
	ok(1, "dstream_put(NULL) is fine");
	return done_testing();
}
