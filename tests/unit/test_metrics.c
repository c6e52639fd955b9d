/*
 * test_metrics.c - the Prometheus text writer (common/metrics.h): HELP
 * and TYPE lines, label escaping, histogram buckets, names, and counters
 * and histograms updated from several threads at once.
 */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/metrics.h"
#include "tests/tap.h"

static char *
take(struct metrics_buf *b)
{
	size_t len = 12345;
	char *s = metrics_buf_steal(b, &len);

	if (s && len != strlen(s))
		diag("length %zu, strlen %zu", len, strlen(s));
	return s;
}

static void
test_head_and_samples(void)
{
	struct metrics_buf b;
	struct metrics_label l[2] = {{"route", "data"}, {"code", "200"}};
	char *s;

	metrics_buf_init(&b);
	metrics_head(&b, "x_requests_total", "counter",
		     "Requests, by \"route\"\\status\nsecond line");
	metrics_u64(&b, "x_requests_total", l, 2, 18446744073709551615ull);
	metrics_u64(&b, "x_requests_total", NULL, 0, 0);
	metrics_head(&b, "x_temp", "gauge", "A gauge.");
	metrics_i64(&b, "x_temp", NULL, 0, -5);
	metrics_double(&b, "x_temp", l, 1, 0.25);
	metrics_double(&b, "x_temp", NULL, 0, INFINITY);
	metrics_double(&b, "x_temp", NULL, 0, -INFINITY);
	metrics_double(&b, "x_temp", NULL, 0, NAN);
	s = take(&b);
	is_str(s,
	       "# HELP x_requests_total Requests, by \"route\"\\\\status\\n"
	       "second line\n"
	       "# TYPE x_requests_total counter\n"
	       "x_requests_total{route=\"data\",code=\"200\"} "
	       "18446744073709551615\n"
	       "x_requests_total 0\n"
	       "# HELP x_temp A gauge.\n"
	       "# TYPE x_temp gauge\n"
	       "x_temp -5\n"
	       "x_temp{route=\"data\"} 0.25\n"
	       "x_temp +Inf\n"
	       "x_temp -Inf\n"
	       "x_temp NaN\n",
	       "HELP escapes backslash and newline, keeps quotes; samples");
	free(s);
}

static void
test_label_escaping(void)
{
	struct metrics_buf b;
	struct metrics_label l[3] = {
		{"volume", "a\"b\\c\nd"}, {"empty", ""}, {"null", NULL}};
	char *s;

	metrics_buf_init(&b);
	metrics_u64(&b, "v", l, 3, 7);
	s = take(&b);
	is_str(s, "v{volume=\"a\\\"b\\\\c\\nd\",empty=\"\",null=\"\"} 7\n",
	       "label values escape \", \\ and newline; NULL is empty");
	free(s);

	/* Bytes that are not special pass unchanged (UTF-8 included). */
	l[0].value = "caf\xc3\xa9 {x=1} # y";
	metrics_buf_init(&b);
	metrics_u64(&b, "v", l, 1, 1);
	s = take(&b);
	is_str(s, "v{volume=\"caf\xc3\xa9 {x=1} # y\"} 1\n",
	       "braces, '=' and '#' in a value need no escape");
	free(s);
}

static const uint64_t bounds[] = {10, 100, 1000};

static void
test_hist(void)
{
	struct metrics_hist h;
	struct metrics_buf b;
	struct metrics_label l = {"route", "op"};
	char *s;

	metrics_hist_init(&h, bounds, 3, 1e-3);
	metrics_hist_observe(&h, 0);
	metrics_hist_observe(&h, 10); /* on a bound: in that bucket */
	metrics_hist_observe(&h, 11);
	metrics_hist_observe(&h, 5000); /* only +Inf */
	is_int(metrics_hist_count(&h), 4, "four observations");
	metrics_buf_init(&b);
	metrics_head(&b, "lat_seconds", "histogram", "Latency.");
	metrics_hist_write(&b, "lat_seconds", &l, 1, &h);
	s = take(&b);
	is_str(s,
	       "# HELP lat_seconds Latency.\n"
	       "# TYPE lat_seconds histogram\n"
	       "lat_seconds_bucket{route=\"op\",le=\"0.01\"} 2\n"
	       "lat_seconds_bucket{route=\"op\",le=\"0.1\"} 3\n"
	       "lat_seconds_bucket{route=\"op\",le=\"1\"} 3\n"
	       "lat_seconds_bucket{route=\"op\",le=\"+Inf\"} 4\n"
	       "lat_seconds_sum{route=\"op\"} 5.021\n"
	       "lat_seconds_count{route=\"op\"} 4\n",
	       "buckets cumulative, le ascending, +Inf last, sum scaled");
	free(s);

	metrics_hist_init(&h, bounds, 3, 1);
	metrics_buf_init(&b);
	metrics_hist_write(&b, "sz", NULL, 0, &h);
	s = take(&b);
	is_str(s,
	       "sz_bucket{le=\"10\"} 0\nsz_bucket{le=\"100\"} 0\n"
	       "sz_bucket{le=\"1000\"} 0\nsz_bucket{le=\"+Inf\"} 0\n"
	       "sz_sum 0\nsz_count 0\n",
	       "an empty histogram without labels");
	free(s);

	metrics_hist_init(&h, metrics_latency_us, metrics_latency_us_n, 1e-6);
	metrics_buf_init(&b);
	metrics_hist_write(&b, "l", NULL, 0, &h);
	s = take(&b);
	ok(s && strstr(s, "l_bucket{le=\"0.0001\"} 0\n") &&
		   strstr(s, "l_bucket{le=\"0.00025\"} 0\n") &&
		   strstr(s, "l_bucket{le=\"60\"} 0\n"),
	   "the latency table shows seconds from 0.0001 to 60");
	free(s);
}

static void
test_names(void)
{
	ok(metrics_name_ok("cairn_vold_requests_total"), "plain name");
	ok(metrics_name_ok("a:b_c9"), "colon allowed in metric names");
	ok(!metrics_name_ok("9a"), "no leading digit");
	ok(!metrics_name_ok("a-b"), "no dash");
	ok(!metrics_name_ok(""), "not empty");
	ok(metrics_label_name_ok("route"), "label name");
	ok(!metrics_label_name_ok("a:b"), "no colon in label names");
	ok(!metrics_label_name_ok("__name"), "reserved prefix");
}

static void
test_empty(void)
{
	struct metrics_buf b;
	size_t len = 99;
	char *s;

	metrics_buf_init(&b);
	s = metrics_buf_steal(&b, &len);
	ok(s && !*s && len == 0, "nothing written: an empty string");
	free(s);

	metrics_buf_init(&b);
	b.oom = true;
	s = metrics_buf_steal(&b, &len);
	ok(!s, "out of memory: NULL");
}

/* Large output grows the buffer past its first 4 KiB. */
static void
test_grow(void)
{
	struct metrics_buf b;
	struct metrics_label l = {"i", NULL};
	char v[16], *s;
	size_t len = 0;
	int lines = 0;

	metrics_buf_init(&b);
	for (int i = 0; i < 2000; i++) {
		snprintf(v, sizeof(v), "%d", i);
		l.value = v;
		metrics_u64(&b, "many", &l, 1, (uint64_t)i);
	}
	s = metrics_buf_steal(&b, &len);
	for (size_t i = 0; s && i < len; i++)
		lines += s[i] == '\n';
	is_int(lines, 2000, "2000 lines written");
	ok(s && strstr(s, "many{i=\"1999\"} 1999\n"), "the last one intact");
	free(s);
}

#define THREADS 4
#define ROUNDS	100000

static struct metrics_counter ctr;
static struct metrics_hist th;

static void *
hammer(void *arg)
{
	(void)arg;
	for (int i = 0; i < ROUNDS; i++) {
		metrics_counter_add(&ctr, 1);
		metrics_hist_observe(&th, (uint64_t)(i % 2000));
	}
	return NULL;
}

static void
test_threads(void)
{
	pthread_t t[THREADS];
	uint64_t want_sum = 0;

	metrics_hist_init(&th, bounds, 3, 1);
	for (int i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, hammer, NULL);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < ROUNDS; i++)
		want_sum += (uint64_t)(i % 2000);
	is_int(metrics_counter_get(&ctr), THREADS * ROUNDS,
	       "counter: no increment lost across threads");
	is_int(metrics_hist_count(&th), THREADS * ROUNDS,
	       "histogram: no observation lost");
	is_int(atomic_load(&th.sum), THREADS * want_sum, "histogram sum");
	is_int(atomic_load(&th.bucket[0]), THREADS * (ROUNDS / 2000) * 11,
	       "values 0..10 in the first bucket");
}

int
main(void)
{
	plan(0);
	test_head_and_samples();
	test_label_escaping();
	test_hist();
	test_names();
	test_empty();
	test_grow();
	test_threads();
	return done_testing();
}
