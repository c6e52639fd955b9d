/*
 * log.h - the one logging module of cairn's programs.
 *
 * Layer rule: common/ only. chunkstore/ must not include this header; it
 * logs through the callback its caller passes (see cs.h), and callers route
 * that callback here with log_cs_callback().
 *
 * Messages follow git's rules: lower-case, no full stop, what failed first,
 * the subject quoted, then strerror(). Levels are syslog's (LOG_ERR ...).
 */
#ifndef CAIRN_LOG_H
#define CAIRN_LOG_H

#include <syslog.h>

/* Subsystems, printed as a short tag so a log line says where it came from. */
enum log_subsys {
	LOG_MAIN,  /* program start-up, options, signals */
	LOG_CS,    /* chunk store */
	LOG_PROTO, /* wire encode/decode */
	LOG_VOL,   /* volume server storage */
	LOG_HTTP,  /* HTTP front ends (server and client) */
	LOG_FUSE,  /* FUSE handlers */
	LOG_FETCH, /* cache manager fetch engine */
	LOG_VC,    /* metadata cache */
	LOG_RLOG,  /* replay log */
	LOG_CTL,   /* control socket */
	LOG_EV,    /* event stream / callbacks */
	LOG_META,  /* cache manager metadata: cached answers, fetches, news */
	LOG_WB,    /* cache manager write states, stores, conflict copies */
	LOG_MUT,   /* cache manager op log: sending changes, their replies */
	LOG_PIN,   /* cache manager pins */
	LOG_OFF,   /* cache manager disconnected operation, reintegration */
	LOG_SUBSYS_MAX
};

/* Where log_init() sends lines. */
#define LOG_TO_STDERR 0
#define LOG_TO_SYSLOG 1
#define LOG_TO_SYSLOG_AND_STDERR 2 /* syslog, and warnings and errors on
				      stderr as well (a daemon before it
				      detaches) */

/*
 * Set up logging for this process. @progname prefixes each line (and is the
 * syslog ident); @use_syslog (LOG_TO_*) sends lines to syslog(3) instead
 * of, or as well as, stderr. When stderr is the systemd journal
 * (JOURNAL_STREAM names its device and inode), a line carries no time,
 * name or pid of ours, which the journal records itself, but a "<N>"
 * priority prefix it reads as the line's level;
 * @level is the most verbose priority printed (LOG_ERR .. LOG_DEBUG).
 * Call once from main() before any thread starts.
 */
void log_init(const char *progname, int use_syslog, int level);

/* Is stderr the systemd journal (JOURNAL_STREAM matches its device and
 * inode)? */
int log_stderr_is_journal(void);

/* Change the verbosity at run time (any thread). */
void log_set_level(int level);

/* Current verbosity. */
int log_get_level(void);

/* True if a message at @level would be printed; use it to skip costly
 * formatting of debug output. */
int log_enabled(int level);

/* Parse "err", "warn", "info", "debug" (or a syslog number); -EINVAL else. */
int log_parse_level(const char *s);

/* Log one line. Thread-safe; a line is written with one write(2). */
void log_msg(enum log_subsys sub, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_err(sub, ...) log_msg((sub), LOG_ERR, __VA_ARGS__)
#define log_warn(sub, ...) log_msg((sub), LOG_WARNING, __VA_ARGS__)
#define log_info(sub, ...) log_msg((sub), LOG_INFO, __VA_ARGS__)
#define log_debug(sub, ...)                                                 \
	do {                                                                \
		if (log_enabled(LOG_DEBUG))                                 \
			log_msg((sub), LOG_DEBUG, __VA_ARGS__);             \
	} while (0)

/*
 * A log callback with the shape chunkstore (cs.h) and other FUSE-free
 * libraries take: @arg is the subsystem cast to a pointer.
 */
void log_callback(void *arg, int level, const char *msg);

#endif /* CAIRN_LOG_H */
