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
#include <ini.h>

#include "common/log.h"
#include "common/token.h"
#include "common/util.h"
#include "vol/vold.h"
#include "vol/volstore.h"

#define DEFAULT_CONF SYSCONFDIR "/cairn/cairn-vold.conf"
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
	"                  [--metrics-listen [ADDR:]PORT] "
	"[--metrics-port-file FILE]\n"
	"                  [--syslog] [--help] [--version]\n"
	"\n"
	"Serve the volumes under DIR over HTTP(S) (see cairn-vold(8)).\n"
	"  --root DIR          server root (default " DEFAULT_ROOT ")\n"
	"  --listen ADDR:PORT  address to listen on (default 127.0.0.1:7070;\n"
	"                      port 0 picks a free port)\n"
	"  --port-file FILE    write the bound port to FILE\n"
	"  --cert PEM --key PEM  serve HTTPS with this certificate and key\n"
	"  --config FILE       config file (default " DEFAULT_CONF ")\n"
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
	free(c->metrics_listen);
	free(c->metrics_port_file);
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

/* inih callback: [vold] section keys. Unknown keys are errors so a typo
 * does not silently leave a default in place. */
static int
conf_line(void *arg, const char *section, const char *name, const char *value)
{
	struct vold_conf *c = arg;
	int rc = 0;

	if (strcmp(section, "vold")) {
		fprintf(stderr, "cairn-vold: unknown config section [%s]\n",
			section);
		return 0;
	}
	if (!strcmp(name, "root"))
		rc = set_str(&c->root, value);
	else if (!strcmp(name, "listen"))
		rc = set_str(&c->listen, value);
	else if (!strcmp(name, "cert"))
		rc = set_str(&c->cert, value);
	else if (!strcmp(name, "key"))
		rc = set_str(&c->key, value);
	else if (!strcmp(name, "pidfile"))
		rc = set_str(&c->pidfile, value);
	else if (!strcmp(name, "metrics_listen"))
		rc = set_str(&c->metrics_listen, value);
	else if (!strcmp(name, "metrics_port_file"))
		rc = set_str(&c->metrics_port_file, value);
	else if (!strcmp(name, "workers"))
		rc = parse_int(value, 1, 256, &c->workers);
	else if (!strcmp(name, "timeout"))
		rc = parse_int(value, 1, 86400, &c->timeout_s);
	else if (!strcmp(name, "cache_objects"))
		rc = parse_int(value, 16, 1000000, &c->cache_objects);
	else if (!strcmp(name, "max_conns"))
		rc = parse_int(value, 1, 1000000, &c->max_conns);
	else if (!strcmp(name, "max_conns_per_addr"))
		rc = parse_int(value, 1, 1000000, &c->max_conns_addr);
	else if (!strcmp(name, "request_deadline"))
		rc = parse_int(value, 1, 86400, &c->request_deadline_s);
	else if (!strcmp(name, "max_streams_per_token"))
		rc = parse_int(value, 1, 1000000, &c->max_streams_token);
	else if (!strcmp(name, "stage_max")) {
		rc = util_parse_size(value, &c->stage_max);
		c->has_stage_max = !rc;
	} else if (!strcmp(name, "stage_expire"))
		rc = parse_int(value, 1, 365 * 86400, &c->stage_expire_s);
	else if (!strcmp(name, "log_level")) {
		rc = log_parse_level(value);
		if (rc >= 0) {
			c->log_level = rc;
			rc = 0;
		}
	} else if (!strcmp(name, "syslog"))
		c->use_syslog = !strcmp(value, "yes") || !strcmp(value, "true") ||
				!strcmp(value, "1");
	else
		rc = -EINVAL;
	if (rc)
		fprintf(stderr, "cairn-vold: bad config line '%s = %s'\n", name,
			value);
	return rc == 0;
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

static void
on_stop(evutil_socket_t sig, short what, void *arg)
{
	log_info(LOG_MAIN, "signal %d: stopping", (int)sig);
	event_base_loopexit(arg, NULL);
}

static void
on_hup(evutil_socket_t sig, short what, void *arg)
{
	vold_rescan(arg);
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
	OPT_ROOT = 256,
	OPT_LISTEN,
	OPT_PORT_FILE,
	OPT_CERT,
	OPT_KEY,
	OPT_CONFIG,
	OPT_FOREGROUND,
	OPT_PIDFILE,
	OPT_LOG_LEVEL,
	OPT_SYSLOG,
	OPT_WORKERS,
	OPT_MAX_CONNS,
	OPT_MAX_CONNS_ADDR,
	OPT_DEADLINE,
	OPT_MAX_STREAMS,
	OPT_STAGE_MAX,
	OPT_STAGE_EXPIRE,
	OPT_METRICS_LISTEN,
	OPT_METRICS_PORT_FILE,
	OPT_HELP,
	OPT_VERSION,
};

static const struct option longopts[] = {
	{"root", required_argument, NULL, OPT_ROOT},
	{"listen", required_argument, NULL, OPT_LISTEN},
	{"port-file", required_argument, NULL, OPT_PORT_FILE},
	{"cert", required_argument, NULL, OPT_CERT},
	{"key", required_argument, NULL, OPT_KEY},
	{"config", required_argument, NULL, OPT_CONFIG},
	{"foreground", no_argument, NULL, OPT_FOREGROUND},
	{"pidfile", required_argument, NULL, OPT_PIDFILE},
	{"log-level", required_argument, NULL, OPT_LOG_LEVEL},
	{"syslog", no_argument, NULL, OPT_SYSLOG},
	{"workers", required_argument, NULL, OPT_WORKERS},
	{"max-conns", required_argument, NULL, OPT_MAX_CONNS},
	{"max-conns-per-addr", required_argument, NULL, OPT_MAX_CONNS_ADDR},
	{"request-deadline", required_argument, NULL, OPT_DEADLINE},
	{"max-streams-per-token", required_argument, NULL, OPT_MAX_STREAMS},
	{"stage-max", required_argument, NULL, OPT_STAGE_MAX},
	{"stage-expire", required_argument, NULL, OPT_STAGE_EXPIRE},
	{"metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN},
	{"metrics-port-file", required_argument, NULL, OPT_METRICS_PORT_FILE},
	{"help", no_argument, NULL, OPT_HELP},
	{"version", no_argument, NULL, OPT_VERSION},
	{NULL, 0, NULL, 0},
};

int
main(int argc, char **argv)
{
	struct vold_conf conf = {0}, cli = {0};
	const char *config = NULL;
	uint8_t key[TOKEN_KEY_MAX];
	size_t keylen = sizeof(key);
	struct event_base *base = NULL;
	struct event *sigs[3] = {NULL, NULL, NULL};
	struct vs_root *root = NULL;
	struct vold *vd = NULL;
	char buf[PATH_MAX];
	int c, rc, ex = EX_OK, lockfd = -1, startfd = -1;
	bool cli_syslog = false, cli_level = false;

	cli.log_level = LOG_INFO;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_ROOT: set_str(&cli.root, optarg); break;
		case OPT_LISTEN: set_str(&cli.listen, optarg); break;
		case OPT_PORT_FILE: set_str(&cli.port_file, optarg); break;
		case OPT_CERT: set_str(&cli.cert, optarg); break;
		case OPT_KEY: set_str(&cli.key, optarg); break;
		case OPT_CONFIG: config = optarg; break;
		case OPT_FOREGROUND: cli.foreground = true; break;
		case OPT_PIDFILE: set_str(&cli.pidfile, optarg); break;
		case OPT_METRICS_LISTEN:
			set_str(&cli.metrics_listen, optarg);
			break;
		case OPT_METRICS_PORT_FILE:
			set_str(&cli.metrics_port_file, optarg);
			break;
		case OPT_SYSLOG: cli_syslog = true; break;
		case OPT_WORKERS:
			if (parse_int(optarg, 1, 256, &cli.workers)) {
				fprintf(stderr, "cairn-vold: bad --workers '%s'\n",
					optarg);
				return EX_USAGE;
			}
			break;
		case OPT_MAX_CONNS:
		case OPT_MAX_CONNS_ADDR:
		case OPT_DEADLINE:
		case OPT_MAX_STREAMS: {
			int *dst = c == OPT_MAX_CONNS ? &cli.max_conns :
				   c == OPT_MAX_CONNS_ADDR ? &cli.max_conns_addr :
				   c == OPT_DEADLINE ? &cli.request_deadline_s :
							&cli.max_streams_token;

			if (parse_int(optarg, 1,
				      c == OPT_DEADLINE ? 86400 : 1000000,
				      dst)) {
				fprintf(stderr, "cairn-vold: bad value '%s'\n",
					optarg);
				fputs(usage, stderr);
				return EX_USAGE;
			}
			break;
		}
		case OPT_STAGE_MAX:
			if (util_parse_size(optarg, &cli.stage_max)) {
				fprintf(stderr,
					"cairn-vold: bad --stage-max '%s'\n",
					optarg);
				return EX_USAGE;
			}
			cli.has_stage_max = true;
			break;
		case OPT_STAGE_EXPIRE:
			if (parse_int(optarg, 1, 365 * 86400,
				      &cli.stage_expire_s)) {
				fprintf(stderr,
					"cairn-vold: bad --stage-expire '%s'\n",
					optarg);
				return EX_USAGE;
			}
			break;
		case OPT_LOG_LEVEL:
			rc = log_parse_level(optarg);
			if (rc < 0) {
				fprintf(stderr, "cairn-vold: bad --log-level '%s'\n",
					optarg);
				return EX_USAGE;
			}
			cli.log_level = rc;
			cli_level = true;
			break;
		case OPT_HELP:
			fputs(usage, stdout);
			return EX_OK;
		case OPT_VERSION:
			printf("cairn-vold %s (protocol %d)\n", PACKAGE_VERSION,
			       PROTO_VERSION);
			return EX_OK;
		default:
			fputs(usage, stderr);
			return EX_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "cairn-vold: unexpected argument '%s'\n",
			argv[optind]);
		fputs(usage, stderr);
		return EX_USAGE;
	}
	/* The config file first, then the command line over it. */
	conf.log_level = LOG_INFO;
	if (config || access(DEFAULT_CONF, R_OK) == 0) {
		const char *f = config ? config : DEFAULT_CONF;

		rc = ini_parse(f, conf_line, &conf);
		if (rc) {
			fprintf(stderr, "cairn-vold: cannot read config '%s'%s\n",
				f, rc < 0 ? "" : " (bad line)");
			ex = EX_CONFIG;
			goto out;
		}
	}
#define OVER(f)                                                             \
	if (cli.f) {                                                        \
		free(conf.f);                                               \
		conf.f = cli.f;                                             \
		cli.f = NULL;                                               \
	}
	OVER(root)
	OVER(listen)
	OVER(port_file)
	OVER(cert)
	OVER(key)
	OVER(pidfile)
	OVER(metrics_listen)
	OVER(metrics_port_file)
#undef OVER
	if (cli.workers)
		conf.workers = cli.workers;
	if (cli.max_conns)
		conf.max_conns = cli.max_conns;
	if (cli.max_conns_addr)
		conf.max_conns_addr = cli.max_conns_addr;
	if (cli.request_deadline_s)
		conf.request_deadline_s = cli.request_deadline_s;
	if (cli.max_streams_token)
		conf.max_streams_token = cli.max_streams_token;
	if (cli.has_stage_max)
		conf.stage_max = cli.stage_max;
	if (cli.stage_expire_s)
		conf.stage_expire_s = cli.stage_expire_s;
	if (cli_level)
		conf.log_level = cli.log_level;
	conf.foreground = cli.foreground;
	if (cli_syslog)
		conf.use_syslog = true;
	if (!conf.root) {
		const char *env = getenv("CAIRN_ROOT");

		set_str(&conf.root, env && *env ? env : DEFAULT_ROOT);
	}
	if (!conf.foreground) {
		if (make_abs(&conf.root) || make_abs(&conf.cert) ||
		    make_abs(&conf.key) || make_abs(&conf.port_file) ||
		    make_abs(&conf.pidfile) ||
		    make_abs(&conf.metrics_port_file)) {
			fprintf(stderr,
				"cairn-vold: cannot make paths absolute\n");
			ex = EX_OSERR;
			goto out;
		}
		startfd = daemonize();
		conf.use_syslog = true;
	}
	log_init("cairn-vold", conf.use_syslog, conf.log_level);
	signal(SIGPIPE, SIG_IGN);
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
	base = event_base_new();
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
	report_start(&startfd, 0);
	sigs[0] = evsignal_new(base, SIGTERM, on_stop, base);
	sigs[1] = evsignal_new(base, SIGINT, on_stop, base);
	sigs[2] = evsignal_new(base, SIGHUP, on_hup, vd);
	for (int i = 0; i < 3; i++)
		if (sigs[i])
			event_add(sigs[i], NULL);
	event_base_dispatch(base);
	log_info(LOG_MAIN, "shutting down");
out:
	report_start(&startfd, ex ? ex : EX_SOFTWARE);
	vold_stop(vd);
	for (int i = 0; i < 3; i++)
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
	vold_conf_release(&cli);
	return ex;
}
