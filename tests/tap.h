/*
 * tap.h - a tiny Test Anything Protocol emitter for cairn's unit tests.
 *
 * Header-only on purpose: every tests/unit/test_<module>.c includes it and
 * links nothing extra. Output is read by automake's tap-driver.sh. It is not
 * a framework: no fixtures, no forking, just numbered "ok"/"not ok" lines.
 */
#ifndef CAIRN_TAP_H
#define CAIRN_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_planned;
static int tap_run;
static int tap_failed;

/* Declare how many tests will run; 0 means "plan at the end" (done_testing). */
static inline void
plan(int n)
{
	tap_planned = n;
	if (n > 0)
		printf("1..%d\n", n);
	fflush(stdout);
}

static inline void
diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void
diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

static inline int
ok_at(int cond, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static inline int
ok_at(int cond, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	tap_run++;
	printf("%sok %d - ", cond ? "" : "not ", tap_run);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	if (!cond) {
		tap_failed++;
		printf("#   failed at %s:%d\n", file, line);
	}
	fflush(stdout);
	return cond;
}

#define ok(cond, ...) ok_at(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

#define is_int(got, want, ...)                                              \
	do {                                                                \
		long long tap_g_ = (long long)(got);                        \
		long long tap_w_ = (long long)(want);                       \
		if (!ok_at(tap_g_ == tap_w_, __FILE__, __LINE__, __VA_ARGS__)) \
			diag("    got: %lld, expected: %lld", tap_g_, tap_w_); \
	} while (0)

#define is_str(got, want, ...)                                              \
	do {                                                                \
		const char *tap_g_ = (got), *tap_w_ = (want);               \
		int tap_eq_ = tap_g_ && tap_w_ ? !strcmp(tap_g_, tap_w_)    \
					       : tap_g_ == tap_w_;          \
		if (!ok_at(tap_eq_, __FILE__, __LINE__, __VA_ARGS__))       \
			diag("    got: '%s', expected: '%s'",                   \
			     tap_g_ ? tap_g_ : "(null)",                    \
			     tap_w_ ? tap_w_ : "(null)");                   \
	} while (0)

/* Record @n skipped tests with a reason. */
static inline void
skip(int n, const char *why)
{
	while (n-- > 0) {
		tap_run++;
		printf("ok %d # SKIP %s\n", tap_run, why);
	}
	fflush(stdout);
}

/* Print the plan if none was given; return the process exit status. */
static inline int
done_testing(void)
{
	if (tap_planned <= 0)
		printf("1..%d\n", tap_run);
	else if (tap_run != tap_planned)
		diag("planned %d tests but ran %d", tap_planned, tap_run);
	fflush(stdout);
	return tap_failed || (tap_planned > 0 && tap_run != tap_planned);
}

#endif /* CAIRN_TAP_H */
