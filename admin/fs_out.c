/*
 * fs_out.c - how fs prints: stable JSON for scripts, aligned key/value
 * lines and sizes for people, and the progress display of long operations.
 *
 * Progress goes to stderr so stdout stays the result alone; on a terminal
 * it is one redrawn line (at most 10 redraws a second), elsewhere a plain
 * line at most once a second, so logs of a scripted pin stay readable.
 */
#include "config.h"

#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "admin/fs.h"
#include "common/util.h"

void
fs_json_print(const json_t *j)
{
	/* Sorted keys: the same reply always prints the same way. */
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
	fputc('\n', stdout);
}

uint64_t
fs_u64(const json_t *o, const char *key, int *found)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		if (found)
			*found = 0;
		return 0;
	}
	if (found)
		*found = 1;
	return (uint64_t)json_integer_value(v);
}

const char *
fs_str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "-";
}

int
fs_bool(const json_t *o, const char *key)
{
	return json_is_true(json_object_get(o, key));
}

char *
fs_size(uint64_t bytes, char *buf, size_t len)
{
	return util_fmt_size(bytes, buf, len);
}

void
fs_kv(const char *key, const char *fmt, ...)
{
	va_list ap;

	printf("%-16s", key);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

const char *
fs_esc(const char *s)
{
	static char *ring[8];
	static unsigned next;
	char **slot = &ring[next++ % 8];

	if (!s)
		return "-";
	free(*slot);
	*slot = util_escape_dup(s);
	return *slot ? *slot : "?";
}

const char *
fs_display_path(const struct fs_target *t, const char *rel, char *buf,
		size_t len)
{
	char raw[PATH_MAX * 2];

	if (!t->mount[0])
		snprintf(raw, sizeof(raw), "%s", rel);
	else if (!strcmp(rel, "."))
		snprintf(raw, sizeof(raw), "%s", t->mount);
	else
		snprintf(raw, sizeof(raw), "%s%s%s", t->mount,
			 strcmp(t->mount, "/") ? "/" : "", rel);
	util_escape(raw, strlen(raw), buf, len);
	return buf;
}

/* ------------------------------------------------------------------ */
/* Progress                                                            */

void
fs_progress_init(struct fs_progress *p, const char *label, int enabled)
{
	memset(p, 0, sizeof(*p));
	p->active = enabled;
	p->tty = enabled && isatty(STDERR_FILENO);
	fs_progress_reset(p, label);
}

void
fs_progress_reset(struct fs_progress *p, const char *label)
{
	snprintf(p->label, sizeof(p->label), "%s", label);
	p->start_ms = util_now_ms();
	p->last_ms = 0;
	p->bytes_done = p->bytes_total = p->files_done = p->files_total = 0;
}

static void
fmt_eta(uint64_t secs, char *buf, size_t len)
{
	if (secs >= 100 * 3600)
		snprintf(buf, len, ">99h");
	else if (secs >= 3600)
		snprintf(buf, len, "%uh%02um", (unsigned)(secs / 3600),
			 (unsigned)(secs % 3600 / 60));
	else
		snprintf(buf, len, "%u:%02u", (unsigned)(secs / 60),
			 (unsigned)(secs % 60));
}

static void
draw(struct fs_progress *p, uint64_t now)
{
	char done[32], total[32], rate[32], eta[32], bar[64];
	uint64_t el = now - p->start_ms, bps = 0;
	unsigned width = 80, barw, fill, i;
	struct winsize ws;

	if (el > 0)
		bps = p->bytes_done * 1000 / el;
	fs_size(p->bytes_done, done, sizeof(done));
	fs_size(p->bytes_total, total, sizeof(total));
	fs_size(bps, rate, sizeof(rate));
	if (bps && p->bytes_total > p->bytes_done)
		fmt_eta((p->bytes_total - p->bytes_done) / bps, eta,
			sizeof(eta));
	else
		snprintf(eta, sizeof(eta), "%s",
			 p->bytes_total && p->bytes_done >= p->bytes_total
				 ? "0:00"
				 : "--:--");
	if (!p->tty) {
		fprintf(stderr,
			"%s: %s of %s, %llu of %llu files, %s/s, eta %s\n",
			p->label, done, total,
			(unsigned long long)p->files_done,
			(unsigned long long)p->files_total, rate, eta);
		return;
	}
	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40)
		width = ws.ws_col;
	barw = width >= 100 ? 30 : 12;
	fill = p->bytes_total
		       ? (unsigned)(p->bytes_done * barw / p->bytes_total)
		       : 0;
	if (fill > barw)
		fill = barw;
	for (i = 0; i < barw; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[barw] = '\0';
	/* \r + erase-to-end: one line, redrawn in place. */
	fprintf(stderr, "\r\033[K[%s] %s/%s  %llu/%llu files  %s/s  ETA %s",
		bar, done, total, (unsigned long long)p->files_done,
		(unsigned long long)p->files_total, rate, eta);
	fflush(stderr);
}

void
fs_progress_update(void *arg, const json_t *msg)
{
	struct fs_progress *p = arg;
	uint64_t now = util_now_ms();

	p->bytes_done = fs_u64(msg, "bytes_done", NULL);
	p->bytes_total = fs_u64(msg, "bytes_total", NULL);
	p->files_done = fs_u64(msg, "files_done", NULL);
	p->files_total = fs_u64(msg, "files_total", NULL);
	if (!p->active)
		return;
	if (p->last_ms && now - p->last_ms < (p->tty ? 100u : 1000u))
		return;
	p->last_ms = now;
	draw(p, now);
}

void
fs_progress_end(struct fs_progress *p)
{
	if (p->active && p->tty && p->last_ms) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
	p->last_ms = 0;
}
