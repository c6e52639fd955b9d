/*
 * log.c - line-oriented logging to stderr or syslog for cairn's programs.
 *
 * It is deliberately small: no files, no rotation (syslog or the service
 * manager do that). Each line is formatted into one buffer and written with
 * one write(2), so lines from several threads never interleave. The message
 * goes through util_escape(): names in a volume may hold newlines and
 * terminal escapes, and a log line must stay one line that says what it
 * says (a name cannot forge a second line or recolour a terminal).
 */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

static const char *log_progname = "cairn";
static int log_syslog;
static int log_journal; /* stderr is the journal: "<N>" prefix, no time */
static int log_copy;	/* syslog, and warnings and errors on stderr */
/* Set by SIGHUP's reload on the signal thread, read by every thread:
 * an atomic, relaxed (a log line more or less around the change is
 * fine). */
static atomic_int log_level = LOG_INFO;

static const char *const subsys_names[LOG_SUBSYS_MAX] = {
	[LOG_MAIN] = "main", [LOG_CS] = "cs",	  [LOG_PROTO] = "proto",
	[LOG_VOL] = "vol",   [LOG_HTTP] = "http", [LOG_FUSE] = "fuse",
	[LOG_FETCH] = "fetch", [LOG_VC] = "vc",	  [LOG_RLOG] = "rlog",
	[LOG_CTL] = "ctl",   [LOG_EV] = "ev",
	[LOG_META] = "meta", [LOG_WB] = "wb",     [LOG_MUT] = "mut",
	[LOG_PIN] = "pin",   [LOG_OFF] = "offline",
};

static const char *
level_name(int level)
{
	switch (level) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT:
	case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warning";
	case LOG_NOTICE:
	case LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

int
log_stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char end;

	/* "DEV:INO" of the stream systemd connected; a child that inherited
	 * the variable but not the descriptor must not match. */
	if (!js || sscanf(js, "%llu:%llu%c", &dev, &ino, &end) != 2)
		return 0;
	if (fstat(STDERR_FILENO, &st) < 0)
		return 0;
	return (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

void
log_init(const char *progname, int use_syslog, int level)
{
	const char *slash;

	if (progname) {
		slash = strrchr(progname, '/');
		log_progname = slash ? slash + 1 : progname;
	}
	log_syslog = use_syslog != LOG_TO_STDERR;
	log_copy = use_syslog == LOG_TO_SYSLOG_AND_STDERR;
	atomic_store_explicit(&log_level, level, memory_order_relaxed);
	log_journal = !log_syslog && log_stderr_is_journal();
	if (log_syslog)
		openlog(log_progname, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
log_set_level(int level)
{
	atomic_store_explicit(&log_level, level, memory_order_relaxed);
}

int
log_get_level(void)
{
	return atomic_load_explicit(&log_level, memory_order_relaxed);
}

int
log_enabled(int level)
{
	return level <= atomic_load_explicit(&log_level, memory_order_relaxed);
}

int
log_parse_level(const char *s)
{
	static const struct {
		const char *name;
		int level;
	} names[] = {
		{ "err", LOG_ERR },	    { "error", LOG_ERR },
		{ "warn", LOG_WARNING },    { "warning", LOG_WARNING },
		{ "notice", LOG_NOTICE },   { "info", LOG_INFO },
		{ "debug", LOG_DEBUG },
	};
	char *end;
	long v;
	size_t i;

	if (!s || !*s)
		return -EINVAL;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcasecmp(s, names[i].name))
			return names[i].level;
	v = strtol(s, &end, 10);
	if (*end || v < LOG_EMERG || v > LOG_DEBUG)
		return -EINVAL;
	return (int)v;
}

void
log_msg(enum log_subsys sub, int level, const char *fmt, ...)
{
	char line[2048], msg[2048];
	const char *tag;
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int saved = errno;
	int n, m;

	if (!log_enabled(level))
		return;
	tag = (unsigned)sub < LOG_SUBSYS_MAX ? subsys_names[sub] : "?";
	if (log_syslog) {
		n = snprintf(line, sizeof(line), "%s: ", tag);
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		util_escape(msg, strlen(msg), line + n, sizeof(line) - n);
		syslog(level, "%s", line);
		if (log_copy && level <= LOG_WARNING) {
			/* What the person who ran us must read, once. */
			char out[2100];
			int k = snprintf(out, sizeof(out), "%s: %s\n",
					 log_progname, line + n);

			if (k > (int)sizeof(out) - 1)
				k = sizeof(out) - 1;
			if (write(STDERR_FILENO, out, (size_t)k) < 0) {
				/* nothing sensible to do */
			}
		}
		errno = saved;
		return;
	}
	if (log_journal) {
		n = snprintf(line, sizeof(line), "<%d>%s %s: ",
			     level < 0 ? 0 : level > 7 ? 7 : level,
			     level_name(level), tag);
		goto body;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
		     "%04d-%02d-%02d %02d:%02d:%02d.%03ld %s[%d] %s %s: ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, log_progname,
		     (int)getpid(), level_name(level), tag);
body:
	va_start(ap, fmt);
	m = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (m < 0)
		msg[0] = 0;
	util_escape(msg, strlen(msg), line + n, sizeof(line) - n - 1);
	n += (int)strlen(line + n);
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* One write per line keeps concurrent lines whole; a short write to a
	 * dead terminal is not worth handling. */
	if (write(STDERR_FILENO, line, n) < 0) {
		/* nothing sensible to do */
	}
	errno = saved;
}

void
log_callback(void *arg, int level, const char *msg)
{
	log_msg((enum log_subsys)(long)arg, level, "%s", msg);
}
