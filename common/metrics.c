/*
 * metrics.c - the Prometheus text format writer and the atomic counters
 * and histograms behind it (metrics.h). It formats; it does not serve:
 * cairn-vold and cairnd decide who may read the text and how.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/metrics.h"

const uint64_t metrics_latency_us[] = {
	100,	 250,	  500,	   1000,     2500,     5000,
	10000,	 25000,	  50000,   100000,   250000,   500000,
	1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
};
const unsigned metrics_latency_us_n =
	sizeof(metrics_latency_us) / sizeof(metrics_latency_us[0]);

void
metrics_hist_init(struct metrics_hist *h, const uint64_t *bounds, unsigned n,
		  double scale)
{
	assert(n <= METRICS_BUCKETS_MAX);
	for (unsigned i = 1; i < n; i++)
		assert(bounds[i - 1] < bounds[i]);
	memset(h, 0, sizeof(*h));
	h->bounds = bounds;
	h->n = n;
	h->scale = scale;
}

void
metrics_hist_observe(struct metrics_hist *h, uint64_t v)
{
	unsigned i = 0;

	/* Linear: at most METRICS_BUCKETS_MAX compares, and short
	 * observations (the common case) stop early. */
	while (i < h->n && v > h->bounds[i])
		i++;
	atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
}

uint64_t
metrics_hist_count(const struct metrics_hist *h)
{
	uint64_t n = 0;

	for (unsigned i = 0; i <= h->n; i++)
		n += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
	return n;
}

/* ---- the buffer ---- */

void
metrics_buf_init(struct metrics_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void
metrics_buf_release(struct metrics_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

char *
metrics_buf_steal(struct metrics_buf *b, size_t *len)
{
	char *p;

	if (b->oom || !b->p) {
		bool oom = b->oom;

		metrics_buf_release(b);
		if (oom) {
			errno = ENOMEM;
			return NULL;
		}
		p = strdup("");
		if (p && len)
			*len = 0;
		return p;
	}
	p = b->p;
	if (len)
		*len = b->len;
	memset(b, 0, sizeof(*b));
	return p;
}

static bool
reserve(struct metrics_buf *b, size_t more)
{
	size_t cap;
	char *n;

	if (b->oom)
		return false;
	if (b->len + more + 1 <= b->cap)
		return true;
	cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more + 1)
		cap *= 2;
	n = realloc(b->p, cap);
	if (!n) {
		b->oom = true;
		return false;
	}
	b->p = n;
	b->cap = cap;
	return true;
}

static void
put(struct metrics_buf *b, const char *s, size_t n)
{
	if (!reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
metrics_buf_append(struct metrics_buf *b, const char *s, size_t n)
{
	put(b, s, n);
}

static void
puts_(struct metrics_buf *b, const char *s)
{
	put(b, s, strlen(s));
}

static void printf_(struct metrics_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void
printf_(struct metrics_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* Escape @s: backslash and newline always, the double quote too in a
 * label value (@quote); HELP text keeps its quotes (the format says so). */
static void
put_escaped(struct metrics_buf *b, const char *s, bool quote)
{
	const char *run = s;

	for (; *s; s++) {
		const char *rep = NULL;

		if (*s == '\\')
			rep = "\\\\";
		else if (*s == '\n')
			rep = "\\n";
		else if (*s == '"' && quote)
			rep = "\\\"";
		if (!rep)
			continue;
		put(b, run, (size_t)(s - run));
		puts_(b, rep);
		run = s + 1;
	}
	put(b, run, (size_t)(s - run));
}

/* ---- names ---- */

static bool
name_char(char c, bool first, bool colon)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
		return true;
	if (c == ':')
		return colon;
	return !first && c >= '0' && c <= '9';
}

bool
metrics_name_ok(const char *s)
{
	if (!s || !*s)
		return false;
	for (const char *p = s; *p; p++)
		if (!name_char(*p, p == s, true))
			return false;
	return true;
}

bool
metrics_label_name_ok(const char *s)
{
	if (!s || !*s || !strncmp(s, "__", 2))
		return false;
	for (const char *p = s; *p; p++)
		if (!name_char(*p, p == s, false))
			return false;
	return true;
}

/* ---- samples ---- */

void
metrics_head(struct metrics_buf *b, const char *name, const char *type,
	     const char *help)
{
	assert(metrics_name_ok(name));
	assert(!strcmp(type, "counter") || !strcmp(type, "gauge") ||
	       !strcmp(type, "histogram"));
	assert(strcmp(type, "counter") ||
	       (strlen(name) > 6 &&
		!strcmp(name + strlen(name) - 6, "_total")));
	printf_(b, "# HELP %s ", name);
	put_escaped(b, help, false);
	printf_(b, "\n# TYPE %s %s\n", name, type);
}

/* "name{a="x",b="y"" and, with @le, ",le="@le"", then "} " or " ". */
static void
sample_start(struct metrics_buf *b, const char *name, const char *suffix,
	     const struct metrics_label *l, unsigned nl, const char *le)
{
	assert(metrics_name_ok(name));
	puts_(b, name);
	if (suffix)
		puts_(b, suffix);
	if (!nl && !le) {
		puts_(b, " ");
		return;
	}
	puts_(b, "{");
	for (unsigned i = 0; i < nl; i++) {
		assert(metrics_label_name_ok(l[i].name) &&
		       strcmp(l[i].name, "le"));
		printf_(b, "%s%s=\"", i ? "," : "", l[i].name);
		put_escaped(b, l[i].value ? l[i].value : "", true);
		puts_(b, "\"");
	}
	if (le)
		printf_(b, "%sle=\"%s\"", nl ? "," : "", le);
	puts_(b, "} ");
}

/* A float as the format spells it: NaN, +Inf, -Inf, or Go-parsable. */
static void
fmt_double(char *buf, size_t len, double v)
{
	if (isnan(v))
		snprintf(buf, len, "NaN");
	else if (isinf(v))
		snprintf(buf, len, "%sInf", v > 0 ? "+" : "-");
	else
		snprintf(buf, len, "%.17g", v);
}

void
metrics_u64(struct metrics_buf *b, const char *name,
	    const struct metrics_label *l, unsigned nl, uint64_t v)
{
	sample_start(b, name, NULL, l, nl, NULL);
	printf_(b, "%" PRIu64 "\n", v);
}

void
metrics_i64(struct metrics_buf *b, const char *name,
	    const struct metrics_label *l, unsigned nl, int64_t v)
{
	sample_start(b, name, NULL, l, nl, NULL);
	printf_(b, "%" PRId64 "\n", v);
}

void
metrics_double(struct metrics_buf *b, const char *name,
	       const struct metrics_label *l, unsigned nl, double v)
{
	char num[40];

	fmt_double(num, sizeof(num), v);
	sample_start(b, name, NULL, l, nl, NULL);
	printf_(b, "%s\n", num);
}

void
metrics_hist_write(struct metrics_buf *b, const char *name,
		   const struct metrics_label *l, unsigned nl,
		   const struct metrics_hist *h)
{
	uint64_t cum = 0, sum;
	char le[40];

	for (unsigned i = 0; i <= h->n; i++) {
		cum += atomic_load_explicit(&h->bucket[i],
					    memory_order_relaxed);
		if (i < h->n)
			/* %g: 1e-4 shows as "0.0001", 2.5 as "2.5";
			 * both parse the same in every client. */
			snprintf(le, sizeof(le), "%.6g",
				 (double)h->bounds[i] * h->scale);
		else
			snprintf(le, sizeof(le), "+Inf");
		sample_start(b, name, "_bucket", l, nl, le);
		printf_(b, "%" PRIu64 "\n", cum);
	}
	sum = atomic_load_explicit(&h->sum, memory_order_relaxed);
	/* 15 digits: a sum of microseconds as seconds reads 0.000215, not
	 * 0.00021499999999999999 (binary fractions). */
	sample_start(b, name, "_sum", l, nl, NULL);
	printf_(b, "%.15g\n", (double)sum * h->scale);
	sample_start(b, name, "_count", l, nl, NULL);
	printf_(b, "%" PRIu64 "\n", cum);
}
