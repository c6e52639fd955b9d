/*
 * vold.c - cairn-vold, the volume server program: options and the config
 * file, daemon start-up, the root lock, signals. The HTTP front is
 * vold_http.c and the storage volstore.c; this file only wires them.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "common/conf.h"
#include "common/log.h"
#include "common/notify.h"
#include "common/tdbj.h"
#include "common/token.h"
#include "common/util.h"
#include "vol/vold.h"
#include "vol/volstore.h"

#define DEFAULT_CONF SYSCONFDIR "/cairn/cairn-vold.conf"
/* Read when the built-in path (a --prefix build) has neither the file nor
 * its drop-ins: the path cairn-vold.conf(5) names. */
#define ETC_CONF "/etc/cairn/cairn-vold.conf"
/* Fixed, not under --prefix: the one place admins and docs expect. */
#define DEFAULT_ROOT "/var/lib/cairn"

static const char usage[] =
	"usage: cairn-vold --root DIR [--listen ADDR:PORT] [--port-file FILE]\n"
	"                  [--cert PEM --key PEM] [--config FILE] "
	"[--foreground]\n"
	"                  [--pidfile FILE] [--workers N] [--log-level LEVEL]\n"
	"                  [--max-conns N] [--max-conns-per-addr N]\n"
	"                  [--request-deadline SECONDS]\n"
	"                  [--max-streams-per-token N]\n"
	"                  [--stage-max SIZE] [--stage-expire SECONDS]\n"
	"                  [--syslog] [--access-log FILE]\n"
	"                  [--metrics-listen [ADDR:]PORT] "
	"[--metrics-port-file FILE]\n"
	"       cairn-vold [options] --show-config\n"
	"       cairn-vold --help | --version\n"
	"\n"
	"Serve the volumes under DIR over HTTP(S) (see cairn-vold(8)).\n"
	"  --root DIR          server root (default " DEFAULT_ROOT ")\n"
	"  --listen ADDR:PORT  address to listen on (default 127.0.0.1:7070;\n"
	"                      port 0 picks a free port)\n"
	"  --port-file FILE    write the bound port to FILE\n"
	"  --cert PEM --key PEM  serve HTTPS with this certificate and key\n"
	"  --config FILE       config file (default " DEFAULT_CONF "),\n"
	"                      then FILE.d/*.conf in name order\n"
	"  --show-config       print the effective settings and where each\n"
	"                      came from, and exit\n"
	"  --access-log FILE   one line per request (time, peer, method,\n"
	"                      path, status, bytes, duration); '-': stderr\n"
	"  --foreground        do not daemonize\n"
	"  --pidfile FILE      write the process id to FILE\n"
	"  --workers N         disk worker threads (default 4)\n"
	"  --stage-max SIZE    bytes staged per volume at most (K, M, G, T;\n"
	"                      default 0: only the volume's quota)\n"
	"  --stage-expire SECONDS  remove staged uploads this long after "
	"their\n"
	"                      creation (default 86400)\n"
	"  --log-level LEVEL   err, warn, info or debug (default info)\n"
	"  --max-conns N       connections open at once, in all (default 1024)\n"
	"  --max-conns-per-addr N  connections from one client address\n"
	"                      (default 64; loopback too)\n"
	"  --request-deadline SECONDS  time to receive a whole request, head\n"
	"                      and body (default 30)\n"
	"  --max-streams-per-token N  event streams open with one token\n"
	"                      (default 8)\n"
	"  --metrics-listen [ADDR:]PORT  serve GET /metrics (Prometheus text)\n"
	"                      on this address, plain HTTP (a port alone:\n"
	"                      127.0.0.1; default: no metrics)\n"
	"  --metrics-port-file FILE  write the bound metrics port to FILE\n"
	"  --syslog            log to syslog instead of stderr\n";

void
vold_conf_release(struct vold_conf *c)
{
	free(c->root);
	free(c->listen);
	free(c->port_file);
	free(c->cert);
	free(c->key);
	free(c->pidfile);
	free(c->access_log);
	free(c->metrics_listen);
	free(c->metrics_port_file);
	conf_origins_release(&c->origins);
	memset(c, 0, sizeof(*c));
}

static int
set_str(char **dst, const char *v)
{
	char *n = strdup(v);

	if (!n)
		return -ENOMEM;
	free(*dst);
	*dst = n;
	return 0;
}

static int
parse_int(const char *v, int min, int max, int *out)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || *end || end == v || n < min || n > max)
		return -EINVAL;
	*out = (int)n;
	return 0;
}

/*
 * One setter for the command line and the config file, by key (the long
 * option's name; common/conf.h turns '_' into '-', so the keys of older
 * files, max_conns and the like, still work). @return 0, -ENOENT for an
 * unknown key, -EINVAL (*why says what is expected) or -ENOMEM.
 */
static int
vold_conf_set(struct vold_conf *c, const char *key, const char *v,
	      const char **why)
{
	static const struct {
		const char *key;
		size_t off;
		int min, max;
		const char *why;
	} ints[] = {
		{"workers", offsetof(struct vold_conf, workers), 1, 256,
		 "workers must be 1..256"},
		{"timeout", offsetof(struct vold_conf, timeout_s), 1, 86400,
		 "timeout must be 1..86400 seconds"},
		{"cache-objects", offsetof(struct vold_conf, cache_objects), 16,
		 1000000, "cache-objects must be 16..1000000"},
		{"max-conns", offsetof(struct vold_conf, max_conns), 1, 1000000,
		 "max-conns must be 1..1000000"},
		{"max-conns-per-addr", offsetof(struct vold_conf, max_conns_addr),
		 1, 1000000, "max-conns-per-addr must be 1..1000000"},
		{"request-deadline",
		 offsetof(struct vold_conf, request_deadline_s), 1, 86400,
		 "request-deadline must be 1..86400 seconds"},
		{"max-streams-per-token",
		 offsetof(struct vold_conf, max_streams_token), 1, 1000000,
		 "max-streams-per-token must be 1..1000000"},
		{"stage-expire", offsetof(struct vold_conf, stage_expire_s), 1,
		 365 * 86400, "stage-expire must be 1 second to a year"},
	};
	static const struct {
		const char *key;
		size_t off;
	} strs[] = {
		{"root", offsetof(struct vold_conf, root)},
		{"listen", offsetof(struct vold_conf, listen)},
		{"port-file", offsetof(struct vold_conf, port_file)},
		{"cert", offsetof(struct vold_conf, cert)},
		{"key", offsetof(struct vold_conf, key)},
		{"pidfile", offsetof(struct vold_conf, pidfile)},
		{"access-log", offsetof(struct vold_conf, access_log)},
		{"metrics-listen", offsetof(struct vold_conf, metrics_listen)},
		{"metrics-port-file",
		 offsetof(struct vold_conf, metrics_port_file)},
	};
	int rc;

	*why = NULL;
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		if (!strcmp(key, strs[i].key)) {
			char **dst = (char **)((char *)c + strs[i].off);

			/* Empty: back to the default (or none). */
			if (!*v) {
				free(*dst);
				*dst = NULL;
				return 0;
			}
			return set_str(dst, v);
		}
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
		if (!strcmp(key, ints[i].key)) {
			if (parse_int(v, ints[i].min, ints[i].max,
				      (int *)((char *)c + ints[i].off))) {
				*why = ints[i].why;
				return -EINVAL;
			}
			return 0;
		}
	if (!strcmp(key, "stage-max")) {
		if (util_parse_size(v, &c->stage_max)) {
			*why = "stage-max must be a size (K, M, G, T)";
			return -EINVAL;
		}
		return 0;
	}
	if (!strcmp(key, "journal")) {
		bool on;

		if (conf_parse_bool(v, &on)) {
			*why = "journal must be yes or no";
			return -EINVAL;
		}
		c->no_journal = !on;
		return 0;
	}
	if (!strcmp(key, "journal-checkpoint")) {
		if (util_parse_size(v, &c->journal_max) ||
		    (c->journal_max && c->journal_max < 4096) ||
		    c->journal_max > (1ull << 30)) {
			*why = "journal-checkpoint must be a size from 4K to "
			       "1G (0: the default)";
			return -EINVAL;
		}
		return 0;
	}
	if (!strcmp(key, "log-level")) {
		rc = log_parse_level(v);
		if (rc < 0) {
			*why = "log-level must be err, warn, info or debug";
			return -EINVAL;
		}
		c->log_level = rc;
		return 0;
	}
	if (!strcmp(key, "syslog") || !strcmp(key, "foreground")) {
		if (conf_parse_bool(v, key[0] == 's' ? &c->use_syslog
						     : &c->foreground)) {
			*why = "expected yes or no";
			return -EINVAL;
		}
		return 0;
	}
	return -ENOENT;
}

/* What --show-config prints, in this order. */
static const char *const show_keys[] = {
	"root", "listen", "port-file", "cert", "key", "pidfile",
	"access-log", "metrics-listen", "metrics-port-file", "workers",
	"timeout", "cache-objects", "max-conns",
	"max-conns-per-addr", "request-deadline", "max-streams-per-token",
	"stage-max", "stage-expire", "journal", "journal-checkpoint",
	"log-level", "syslog", "foreground",
};

/* The effective value of @key (defaults filled in) into @buf. @return 1,
 * or 0 when a string setting is not set. */
static int
conf_value(const struct vold_conf *c, const char *key, char *buf, size_t len)
{
	const char *str = NULL;
	long n = -1;

	buf[0] = '\0';
	if (!strcmp(key, "root")) str = c->root;
	else if (!strcmp(key, "listen"))
		str = c->listen ? c->listen : "127.0.0.1:7070";
	else if (!strcmp(key, "port-file")) str = c->port_file;
	else if (!strcmp(key, "cert")) str = c->cert;
	else if (!strcmp(key, "key")) str = c->key;
	else if (!strcmp(key, "pidfile")) str = c->pidfile;
	else if (!strcmp(key, "access-log")) str = c->access_log;
	else if (!strcmp(key, "metrics-listen")) str = c->metrics_listen;
	else if (!strcmp(key, "metrics-port-file"))
		str = c->metrics_port_file;
	else if (!strcmp(key, "workers")) n = c->workers ? c->workers : 4;
	else if (!strcmp(key, "timeout")) n = c->timeout_s ? c->timeout_s : 60;
	else if (!strcmp(key, "cache-objects"))
		n = c->cache_objects ? c->cache_objects : 1024;
	else if (!strcmp(key, "max-conns"))
		n = c->max_conns ? c->max_conns : VOLD_DEFAULT_MAX_CONNS;
	else if (!strcmp(key, "max-conns-per-addr"))
		n = c->max_conns_addr ? c->max_conns_addr
				      : VOLD_DEFAULT_MAX_CONNS_ADDR;
	else if (!strcmp(key, "request-deadline"))
		n = c->request_deadline_s ? c->request_deadline_s
					  : VOLD_DEFAULT_REQUEST_DEADLINE;
	else if (!strcmp(key, "max-streams-per-token"))
		n = c->max_streams_token ? c->max_streams_token
					 : VOLD_DEFAULT_MAX_STREAMS_TOKEN;
	else if (!strcmp(key, "stage-max")) n = (long)c->stage_max;
	else if (!strcmp(key, "stage-expire"))
		n = c->stage_expire_s ? c->stage_expire_s : VS_STAGE_AGE_S;
	else if (!strcmp(key, "journal"))
		str = c->no_journal ? "no" : "yes";
	else if (!strcmp(key, "journal-checkpoint"))
		n = c->journal_max ? (long)c->journal_max
				   : (long)TDBJ_MAX_BYTES_DEFAULT;
	else if (!strcmp(key, "log-level"))
		str = c->log_level <= LOG_ERR ? "err" :
		      c->log_level == LOG_WARNING ? "warn" :
		      c->log_level == LOG_NOTICE ? "notice" :
		      c->log_level == LOG_INFO ? "info" : "debug";
	else if (!strcmp(key, "syslog")) str = c->use_syslog ? "yes" : "no";
	else if (!strcmp(key, "foreground"))
		str = c->foreground ? "yes" : "no";
	if (n >= 0) {
		snprintf(buf, len, "%ld", n);
		return 1;
	}
	if (!str)
		return 0;
	snprintf(buf, len, "%s", str);
	return 1;
}

/* The file's keys: before any section or in [vold]; another section is
 * an error (a typo there would silently leave defaults in place). */
static int
conf_cb(void *arg, const char *section, const char *key, const char *value,
	const char *origin, const char **why)
{
	struct vold_conf *c = arg;
	const char *const *skip = c->skip;
	int rc;

	if (section[0] && strcmp(section, "vold")) {
		*why = "unknown section (keys go before any section or in "
		       "[vold])";
		return -EINVAL;
	}
	for (; skip && *skip; skip++)
		if (!strcmp(*skip, key))
			return 1;
	rc = vold_conf_set(c, key, value, why);
	if (rc == -ENOENT) {
		*why = "unknown setting";
		return -EINVAL;
	}
	if (rc < 0)
		return rc;
	return conf_origin_set(&c->origins, key, origin);
}

/* What the command line said, kept for SIGHUP (strings point into argv). */
struct cli {
	const char **keys, **values, **skip;
	size_t n;
	const char *config;
	bool must, show;
};

/*
 * Settings from defaults, the config file and its drop-ins, then the
 * command line. Messages go to @err. @return 0 or a sysexits(3) status:
 * EX_CONFIG for the file, EX_USAGE for the command line.
 */
static int
load_conf(const struct cli *cl, struct vold_conf *c, FILE *err)
{
	char where[4200];
	const char *why;
	int rc;

	memset(c, 0, sizeof(*c));
	c->log_level = LOG_INFO;
	c->skip = cl->skip;
	if (cl->config) {
		rc = conf_load(cl->config, cl->must, conf_cb, c, where,
			       sizeof(where), &why);
		if (rc < 0) {
			if (why)
				fprintf(err, "cairn-vold: config '%s': %s\n",
					where, why);
			else
				fprintf(err, "cairn-vold: cannot read config "
					     "'%s': %s\n",
					where, strerror(-rc));
			return EX_CONFIG;
		}
	}
	c->skip = NULL;
	for (size_t i = 0; i < cl->n; i++) {
		rc = vold_conf_set(c, cl->keys[i], cl->values[i], &why);
		if (rc == 0)
			rc = conf_origin_set(&c->origins, cl->keys[i],
					     "command line");
		if (rc < 0) {
			fprintf(err, "cairn-vold: bad --%s '%s': %s\n",
				cl->keys[i], cl->values[i],
				why ? why : strerror(-rc));
			return EX_USAGE;
		}
	}
	if (!c->root) {
		const char *env = getenv("CAIRN_ROOT");

		if (set_str(&c->root, env && *env ? env : DEFAULT_ROOT) ||
		    (env && *env &&
		     conf_origin_set(&c->origins, "root", "environment "
							  "CAIRN_ROOT"))) {
			fprintf(err, "cairn-vold: out of memory\n");
			return EX_OSERR;
		}
	}
	return 0;
}

static void
show_conf(const struct cli *cl, const struct vold_conf *c)
{
	char val[4200];

	if (cl->config)
		printf("# config file: %s (drop-ins: %s.d/*.conf)\n",
		       cl->config, cl->config);
	else
		printf("# config file: none (" ETC_CONF " is absent)\n");
	printf("# cairn-vold %s: effective settings and where each came "
	       "from\n",
	       PACKAGE_VERSION);
	for (size_t i = 0; i < sizeof(show_keys) / sizeof(show_keys[0]);
	     i++) {
		const char *k = show_keys[i];

		if (conf_value(c, k, val, sizeof(val)))
			printf("%s = %s  ; %s\n", k, val,
			       conf_origin_get(&c->origins, k));
		else
			printf("# %s is not set  (%s)\n", k,
			       conf_origin_get(&c->origins, k));
	}
}

static int
write_file_atomic(const char *path, const char *text)
{
	char tmp[PATH_MAX];
	int fd, rc;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path,
			     (int)getpid()) >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	rc = util_write_all(fd, text, strlen(text));
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path) < 0)
		rc = -errno;
	if (rc)
		unlink(tmp);
	return rc;
}

/*
 * Detach, but let the parent exit with the start-up result: the daemon
 * writes one status byte on the returned pipe (0 once it listens, else
 * its exit code) and the parent exits with it, so a bad certificate or
 * root fails the command that started the server, not only syslog.
 * @return the write end of the status pipe (the daemon's to write).
 */
static int
daemonize(void)
{
	int pfd[2], fd;
	unsigned char st = EX_SOFTWARE;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0) {
		perror("cairn-vold: pipe");
		exit(EX_OSERR);
	}
	pid = fork();
	if (pid < 0) {
		perror("cairn-vold: fork");
		exit(EX_OSERR);
	}
	if (pid > 0) {
		close(pfd[1]);
		while (read(pfd[0], &st, 1) < 0 && errno == EINTR)
			;
		if (st)
			fprintf(stderr,
				"cairn-vold: start-up failed (exit %d), "
				"see syslog\n",
				st);
		_exit(st);
	}
	close(pfd[0]);
	setsid();
	pid = fork();
	if (pid < 0)
		_exit(EX_OSERR);
	if (pid > 0)
		_exit(EX_OK);
	if (chdir("/") < 0)
		_exit(EX_OSERR);
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	return pfd[1];
}

/* Tell the waiting parent (if any) how start-up ended; once only. */
static void
report_start(int *fd, int ex)
{
	unsigned char st = (unsigned char)ex;

	if (*fd < 0)
		return;
	if (write(*fd, &st, 1) < 0)
		log_warn(LOG_MAIN, "cannot report start-up: %s",
			 strerror(errno));
	close(*fd);
	*fd = -1;
}

/* A daemon runs in /, so paths given relative to where it was started
 * are made absolute first. */
static int
make_abs(char **p)
{
	char cwd[PATH_MAX], *n;

	if (!*p || (*p)[0] == '/')
		return 0;
	if (!getcwd(cwd, sizeof(cwd)))
		return -errno;
	if (asprintf(&n, "%s/%s", cwd, *p) < 0)
		return -ENOMEM;
	free(*p);
	*p = n;
	return 0;
}

/* SIGUSR2: vos knocks on a volume we journal (vs_jlock.c). */
static void
on_knock(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	vold_knock(arg);
}

static void
on_stop(evutil_socket_t sig, short what, void *arg)
{
	log_info(LOG_MAIN, "signal %d: stopping", (int)sig);
	notify_systemd("STOPPING=1");
	event_base_loopexit(arg, NULL);
}

/* Open the access log named by @c (NULL: none, "-": stderr). @return the
 * descriptor, -1 for none, or -2 (logged) when it cannot be opened. */
static int
open_access_log(const struct vold_conf *c)
{
	int fd;

	if (!c->access_log)
		return -1;
	if (!strcmp(c->access_log, "-"))
		return fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	fd = open(c->access_log,
		  O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	if (fd < 0) {
		log_err(LOG_MAIN, "cannot open access log '%s': %s",
			c->access_log, strerror(errno));
		return -2;
	}
	return fd;
}

struct hup_ctx {
	struct vold *vd;
	const struct cli *cli;
	struct vold_conf *conf; /* the running settings */
};

/*
 * SIGHUP: forget the volumes not in use (vos made or removed some), read
 * the config again (file, drop-ins, the same command line), apply what can
 * change while serving (log-level, access-log, which is also reopened for
 * log rotation), and name in the log what needs a restart. A config that
 * does not load changes nothing.
 */
static void
on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct hup_ctx *h = arg;
	struct vold_conf nc;
	char *msg = NULL, a[4200], b[4200];
	size_t mlen = 0;
	FILE *mf;
	int rc, fd;

	notify_systemd("RELOADING=1");
	vold_rescan(h->vd);
	mf = open_memstream(&msg, &mlen);
	rc = load_conf(h->cli, &nc, mf ? mf : stderr);
	if (mf)
		fclose(mf);
	if (rc) {
		if (msg && mlen && msg[mlen - 1] == '\n')
			msg[mlen - 1] = '\0';
		log_err(LOG_MAIN, "reload failed, the running settings stay: "
				  "%s",
			msg && !strncmp(msg, "cairn-vold: ", 12) ? msg + 12
			: msg ? msg : "?");
		goto out;
	}
	nc.foreground = h->conf->foreground;
	nc.use_syslog = h->conf->use_syslog;
	for (size_t i = 0; i < sizeof(show_keys) / sizeof(show_keys[0]);
	     i++) {
		const char *k = show_keys[i];
		int ra = conf_value(h->conf, k, a, sizeof(a));
		int rb = conf_value(&nc, k, b, sizeof(b));

		if (ra == rb && (!ra || !strcmp(a, b)))
			continue;
		if (!strcmp(k, "log-level") || !strcmp(k, "access-log")) {
			log_info(LOG_MAIN, "reload: %s is now '%s'", k,
				 rb ? b : "");
			continue;
		}
		log_warn(LOG_MAIN, "reload: %s changed to '%s' (%s): '%s' "
				   "stays until cairn-vold restarts",
			 k, rb ? b : "", conf_origin_get(&nc.origins, k),
			 ra ? a : "");
	}
	log_set_level(nc.log_level);
	h->conf->log_level = nc.log_level;
	fd = open_access_log(&nc);
	if (fd != -2) {
		vold_set_access_log(h->vd, fd);
		free(h->conf->access_log);
		h->conf->access_log = nc.access_log;
		nc.access_log = NULL;
	}
	log_info(LOG_MAIN, "reload done");
out:
	vold_conf_release(&nc);
	free(msg);
	notify_systemd("READY=1");
}

static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

enum {
	OPT_CONFIG = 256,
	OPT_SHOW,
	OPT_HELP,
	OPT_VERSION,
	OPT_SET, /* the rest: a setting named like the option */
};

static const struct option longopts[] = {
	{"root", required_argument, NULL, OPT_SET},
	{"listen", required_argument, NULL, OPT_SET},
	{"port-file", required_argument, NULL, OPT_SET},
	{"cert", required_argument, NULL, OPT_SET},
	{"key", required_argument, NULL, OPT_SET},
	{"config", required_argument, NULL, OPT_CONFIG},
	{"foreground", no_argument, NULL, OPT_SET},
	{"pidfile", required_argument, NULL, OPT_SET},
	{"log-level", required_argument, NULL, OPT_SET},
	{"syslog", no_argument, NULL, OPT_SET},
	{"workers", required_argument, NULL, OPT_SET},
	{"max-conns", required_argument, NULL, OPT_SET},
	{"max-conns-per-addr", required_argument, NULL, OPT_SET},
	{"request-deadline", required_argument, NULL, OPT_SET},
	{"max-streams-per-token", required_argument, NULL, OPT_SET},
	{"stage-max", required_argument, NULL, OPT_SET},
	{"stage-expire", required_argument, NULL, OPT_SET},
	{"journal", required_argument, NULL, OPT_SET},
	{"journal-checkpoint", required_argument, NULL, OPT_SET},
	{"access-log", required_argument, NULL, OPT_SET},
	{"metrics-listen", required_argument, NULL, OPT_SET},
	{"metrics-port-file", required_argument, NULL, OPT_SET},
	{"show-config", no_argument, NULL, OPT_SHOW},
	{"help", no_argument, NULL, OPT_HELP},
	{"version", no_argument, NULL, OPT_VERSION},
	{NULL, 0, NULL, 0},
};

int
main(int argc, char **argv)
{
	struct vold_conf conf = {0};
	static struct cli cli;
	static struct hup_ctx hup;
	uint8_t key[TOKEN_KEY_MAX];
	size_t keylen = sizeof(key);
	struct event_base *base = NULL;
	struct event_config *cfg;
	struct event *sigs[4] = {NULL, NULL, NULL, NULL};
	struct vs_root *root = NULL;
	struct vold *vd = NULL;
	char buf[PATH_MAX];
	struct stat st;
	int c, idx, rc, ex = EX_OK, lockfd = -1, startfd = -1, alog = -1;

	cli.keys = calloc((size_t)argc + 1, sizeof(*cli.keys));
	cli.values = calloc((size_t)argc + 1, sizeof(*cli.values));
	cli.skip = calloc((size_t)argc + 1, sizeof(*cli.skip));
	if (!cli.keys || !cli.values || !cli.skip) {
		fprintf(stderr, "cairn-vold: out of memory\n");
		ex = EX_OSERR;
		goto out;
	}
	while ((c = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
		switch (c) {
		case OPT_SET:
			cli.keys[cli.n] = longopts[idx].name;
			cli.values[cli.n] = longopts[idx].has_arg ? optarg
								  : "yes";
			cli.skip[cli.n] = cli.keys[cli.n];
			cli.n++;
			break;
		case OPT_CONFIG:
			cli.config = optarg;
			cli.must = true;
			break;
		case OPT_SHOW:
			cli.show = true;
			break;
		case OPT_HELP:
			fputs(usage, stdout);
			goto out;
		case OPT_VERSION:
			printf("cairn-vold %s (protocol %d)\n", PACKAGE_VERSION,
			       PROTO_VERSION);
			goto out;
		default:
			fputs(usage, stderr);
			ex = EX_USAGE;
			goto out;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "cairn-vold: unexpected argument '%s'\n",
			argv[optind]);
		fputs(usage, stderr);
		ex = EX_USAGE;
		goto out;
	}
	/* The default file or its drop-ins: the built-in path (a --prefix
	 * build) first, then /etc/cairn. */
	if (!cli.config) {
		if (stat(DEFAULT_CONF, &st) == 0 ||
		    stat(DEFAULT_CONF ".d", &st) == 0)
			cli.config = DEFAULT_CONF;
		else if (stat(ETC_CONF, &st) == 0 ||
			 stat(ETC_CONF ".d", &st) == 0)
			cli.config = ETC_CONF;
	}
	/* The config file first, then the command line over it. */
	ex = load_conf(&cli, &conf, stderr);
	if (ex) {
		if (ex == EX_USAGE)
			fputs(usage, stderr);
		goto out;
	}
	if (cli.show) {
		show_conf(&cli, &conf);
		goto out;
	}
	/* SIGHUP reads the file again, from / once detached. */
	if (cli.config && cli.config[0] != '/' && !conf.foreground) {
		static char abs_config[PATH_MAX];

		if (!realpath(cli.config, abs_config)) {
			fprintf(stderr, "cairn-vold: config '%s': %s\n",
				cli.config, strerror(errno));
			ex = EX_CONFIG;
			goto out;
		}
		cli.config = abs_config;
	}
	if (!conf.foreground) {
		if (make_abs(&conf.root) || make_abs(&conf.cert) ||
		    make_abs(&conf.key) || make_abs(&conf.port_file) ||
		    make_abs(&conf.pidfile) ||
		    make_abs(&conf.metrics_port_file) ||
		    (conf.access_log && strcmp(conf.access_log, "-") &&
		     make_abs(&conf.access_log))) {
			fprintf(stderr,
				"cairn-vold: cannot make paths absolute\n");
			ex = EX_OSERR;
			goto out;
		}
		startfd = daemonize();
		conf.use_syslog = true;
	}
	log_init("cairn-vold", conf.use_syslog, conf.log_level);
	/* A journal checkpoint is a tdb transaction that holds every page
	 * it writes in 4 KiB blocks on the heap until it commits. With
	 * glibc's defaults the freed blocks went back to the kernel after
	 * each checkpoint and were faulted in and zeroed again at the next
	 * (doc/vol-format.md, "A checkpoint's memory"). Keep up to 64 MiB
	 * of freed heap per arena instead, and big buffers off mmap. */
	mallopt(M_MMAP_THRESHOLD, 8 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGUSR2, SIG_IGN); /* a knock before the loop runs */
	raise_nofile();

	rc = vs_root_open(conf.root, true, &root);
	if (rc) {
		log_err(LOG_MAIN, "cannot open root '%s': %s", conf.root,
			strerror(-rc));
		ex = EX_CANTCREAT;
		goto out;
	}
	snprintf(buf, sizeof(buf), "%s/vold.lock", conf.root);
	lockfd = open(buf, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB) < 0) {
		log_err(LOG_MAIN, "cannot lock '%s': %s (another cairn-vold "
			"serves this root?)", buf, strerror(errno));
		ex = EX_TEMPFAIL;
		goto out;
	}
	rc = vs_root_key(root, true, key, &keylen);
	if (rc) {
		log_err(LOG_MAIN, "cannot load the key of '%s': %s", conf.root,
			strerror(-rc));
		ex = EX_NOPERM;
		goto out;
	}
	/* Volumes made by an older vos have no token state yet; the loop
	 * thread checks tokens against it without opening the volume. */
	{
		char **names = NULL;
		size_t n = 0;

		if (vs_vol_list(root, &names, &n) == 0)
			for (size_t i = 0; i < n; i++) {
				rc = vs_tokstate_ensure(root, names[i]);
				if (rc)
					log_warn(LOG_MAIN,
						 "cannot set up the "
						 "token state of volume '%s': "
						 "%s",
						 names[i], strerror(-rc));
			}
		vs_names_free(names, n);
	}
	if (evthread_use_pthreads() != 0) {
		log_err(LOG_MAIN, "cannot set up libevent threads");
		ex = EX_OSERR;
		goto out;
	}
	/* epoll's changelist: the read and write interest a request turns
	 * on and off (4 epoll_ctl a request otherwise) is folded into one
	 * change per fd at the next epoll_wait. libevent warns against it
	 * for fds that are dup()ed; cairn-vold registers none. */
	cfg = event_config_new();
	if (cfg)
		event_config_set_flag(cfg,
				      EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = cfg ? event_base_new_with_config(cfg) : NULL;
	if (cfg)
		event_config_free(cfg);
	if (!base) {
		ex = EX_OSERR;
		goto out;
	}
	rc = vold_start(&conf, base, root, key, keylen, &vd);
	memset(key, 0, sizeof(key));
	if (rc) {
		ex = rc == -EINVAL ? EX_CONFIG : EX_UNAVAILABLE;
		goto out;
	}
	log_info(LOG_MAIN, "listening on %s%s", vold_addr(vd),
		 conf.cert ? " (https)" : "");
	if (conf.port_file) {
		snprintf(buf, sizeof(buf), "%d\n", vold_port(vd));
		rc = write_file_atomic(conf.port_file, buf);
		if (rc)
			log_err(LOG_MAIN, "cannot write port file '%s': %s",
				conf.port_file, strerror(-rc));
	}
	if (conf.metrics_port_file && vold_metrics_port(vd)) {
		snprintf(buf, sizeof(buf), "%d\n", vold_metrics_port(vd));
		rc = write_file_atomic(conf.metrics_port_file, buf);
		if (rc)
			log_err(LOG_MAIN, "cannot write port file '%s': %s",
				conf.metrics_port_file, strerror(-rc));
	}
	if (conf.pidfile) {
		snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
		rc = write_file_atomic(conf.pidfile, buf);
		if (rc)
			log_err(LOG_MAIN, "cannot write pid file '%s': %s",
				conf.pidfile, strerror(-rc));
	}
	alog = open_access_log(&conf);
	if (alog == -2) {
		ex = EX_CANTCREAT;
		goto out;
	}
	vold_set_access_log(vd, alog);
	report_start(&startfd, 0);
	{
		char stt[200];

		snprintf(stt, sizeof(stt), "READY=1\nSTATUS=listening on %s",
			 vold_addr(vd));
		notify_systemd(stt);
	}
	hup.vd = vd;
	hup.cli = &cli;
	hup.conf = &conf;
	sigs[0] = evsignal_new(base, SIGTERM, on_stop, base);
	sigs[1] = evsignal_new(base, SIGINT, on_stop, base);
	sigs[2] = evsignal_new(base, SIGHUP, on_hup, &hup);
	sigs[3] = evsignal_new(base, SIGUSR2, on_knock, vd);
	for (int i = 0; i < 4; i++)
		if (sigs[i])
			event_add(sigs[i], NULL);
	event_base_dispatch(base);
	log_info(LOG_MAIN, "shutting down");
out:
	report_start(&startfd, ex ? ex : EX_SOFTWARE);
	vold_stop(vd);
	for (int i = 0; i < 4; i++)
		if (sigs[i])
			event_free(sigs[i]);
	if (base)
		event_base_free(base);
	vs_root_close(root);
	if (conf.pidfile && ex == EX_OK)
		unlink(conf.pidfile);
	if (lockfd >= 0)
		close(lockfd);
	vold_conf_release(&conf);
	free(cli.keys);
	free(cli.values);
	free(cli.skip);
	return ex;
}
