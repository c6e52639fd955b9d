/*
 * metrics.h - counters, histograms with fixed buckets, and a writer of the
 * Prometheus text exposition format, version 0.0.4, for cairn-vold's
 * GET /metrics and cairnd's `fs metrics` (doc/protocol.md "Metrics",
 * doc/control.md). Debian packages no C client library for the format,
 * and the part we need is small: this is it.
 *
 * Layer rule: common/, libc only. No I/O: the writer fills a heap buffer
 * the caller sends wherever it likes.
 *
 * Threads: a counter or a histogram may be updated by any thread at any
 * time (relaxed atomics, no lock); a reader sees each number as of some
 * moment, so a histogram's buckets, sum and count read during an update
 * may disagree by that one observation (Prometheus tolerates it: _count
 * is written as the +Inf bucket, so those two always agree). A struct
 * metrics_buf belongs to one thread.
 *
 * The format, as written here:
 *   # HELP name text        (backslash and newline escaped)
 *   # TYPE name counter|gauge|histogram
 *   name{label="value",...} number
 * Label values escape backslash, double quote and newline; counters end
 * in _total; a histogram is name_bucket{le="..."} lines (cumulative,
 * ascending, the last le="+Inf"), name_sum and name_count. Metric and
 * label names are ours, not input: a bad one is a bug (assert).
 */
#ifndef CAIRN_COMMON_METRICS_H
#define CAIRN_COMMON_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* The Content-Type of the text format. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Buckets a histogram may have at most, besides +Inf. */
#define METRICS_BUCKETS_MAX 24

/* Microseconds of CLOCK_MONOTONIC, for durations. Any thread. */
static inline uint64_t
metrics_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* A label: name (ours, [a-zA-Z_][a-zA-Z0-9_]*) and value (any bytes). */
struct metrics_label {
	const char *name;
	const char *value;
};

/* A monotonic counter; zero-initialised is zero. */
struct metrics_counter {
	atomic_uint_fast64_t v;
};

static inline void
metrics_counter_add(struct metrics_counter *c, uint64_t n)
{
	atomic_fetch_add_explicit(&c->v, n, memory_order_relaxed);
}

static inline uint64_t
metrics_counter_get(const struct metrics_counter *c)
{
	return atomic_load_explicit(&c->v, memory_order_relaxed);
}

/*
 * A histogram of unsigned integer observations (durations in
 * microseconds, sizes in bytes). @bounds are the buckets' upper bounds in
 * those units, ascending, at most METRICS_BUCKETS_MAX, and must outlive
 * the histogram (a static table); @scale turns units into what the
 * exposition shows (1e-6: microseconds shown as seconds, as Prometheus
 * names durations). The sum is kept in units (an integer, so an atomic
 * add suffices); 2^64 microseconds is half a million years.
 */
struct metrics_hist {
	const uint64_t *bounds;
	unsigned n;
	double scale;
	atomic_uint_fast64_t bucket[METRICS_BUCKETS_MAX + 1]; /* not cumulative;
								 [n] is +Inf */
	atomic_uint_fast64_t sum;
};

/* Set up @h (all zero). @n above METRICS_BUCKETS_MAX or unsorted
 * bounds are a bug (assert). */
void metrics_hist_init(struct metrics_hist *h, const uint64_t *bounds,
		       unsigned n, double scale);
/* Count one observation of @v units. Any thread. */
void metrics_hist_observe(struct metrics_hist *h, uint64_t v);
/* Observations so far (the +Inf bucket). Any thread. */
uint64_t metrics_hist_count(const struct metrics_hist *h);

/* The bucket table for durations in microseconds: 100 us .. 60 s. */
extern const uint64_t metrics_latency_us[];
extern const unsigned metrics_latency_us_n;

/*
 * The text being written. Appends never fail on their own: out of memory
 * sets @oom, later appends do nothing, and metrics_buf_steal() returns
 * NULL, so a writer checks once at the end.
 */
struct metrics_buf {
	char *p;
	size_t len, cap;
	bool oom;
};

void metrics_buf_init(struct metrics_buf *b);
void metrics_buf_release(struct metrics_buf *b);
/* The text (NUL-terminated, @len without the NUL), which the caller frees
 * with free(); NULL + ENOMEM if an append ran out of memory. @b is empty
 * afterwards. */
char *metrics_buf_steal(struct metrics_buf *b, size_t *len);
/* Append @n bytes of ready-made text (lines of another exposition). */
void metrics_buf_append(struct metrics_buf *b, const char *s, size_t n);

/* "# HELP @name @help\n# TYPE @name @type\n". @type is "counter",
 * "gauge" or "histogram"; a counter's @name ends in "_total". */
void metrics_head(struct metrics_buf *b, const char *name, const char *type,
		  const char *help);
/* One sample: "@name{labels} value\n", @nl labels (0: no braces). */
void metrics_u64(struct metrics_buf *b, const char *name,
		 const struct metrics_label *l, unsigned nl, uint64_t v);
void metrics_i64(struct metrics_buf *b, const char *name,
		 const struct metrics_label *l, unsigned nl, int64_t v);
void metrics_double(struct metrics_buf *b, const char *name,
		    const struct metrics_label *l, unsigned nl, double v);
/* A histogram's samples under @name (the family name, without
 * _bucket): its _bucket lines with @l plus le, _sum and _count. */
void metrics_hist_write(struct metrics_buf *b, const char *name,
			const struct metrics_label *l, unsigned nl,
			const struct metrics_hist *h);

/* Is @s a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) or label name
 * ([a-zA-Z_][a-zA-Z0-9_]*, not starting with "__")? For tests. */
bool metrics_name_ok(const char *s);
bool metrics_label_name_ok(const char *s);

#endif /* CAIRN_COMMON_METRICS_H */
