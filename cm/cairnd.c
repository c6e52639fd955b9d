/*
 * cairnd.c - main() of the cache manager: options and config, signals,
 * the FUSE session and the mount. What it mounts is built and stopped by
 * daemon.c (opening the cache, checking the volume with the server or
 * finding it in the cache when the server is away, the modules, recovery).
 *
 * It holds no policy of its own: the read path lives in fetch.c and
 * mcache.c and mfetch.c, the FUSE handlers in fuse_ops.c.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "cm/cm.h"
#include "cm/daemon.h"
#include "cm/fuse_ops.h"
#include "common/log.h"
#include "common/util.h"

#define DEFAULT_CONFIG SYSCONFDIR "/cairn/cairnd.conf"
#define ETC_CONFIG "/etc/cairn/cairnd.conf"

static const char usage_text[] =
	"usage: cairnd --server URL --volume NAME --token FILE --cache DIR\n"
	"              --mountpoint DIR [--cache-size SIZE] [--chunk-size SIZE]\n"
	"              [--config FILE] [--foreground] [--log-level LEVEL]\n"
	"              [--syslog] [--fetch-timeout DURATION]\n"
	"              [--entry-timeout DURATION] [--attr-timeout DURATION]\n"
	"              [--max-parallel N] [--readahead CHUNKS] [--threads N]\n"
	"              [--dirty-limit SIZE] [--ca-file FILE] [--ctl-socket PATH]\n"
	"              [--ctl-conns-per-uid N] [--proxy URL] [--allow-insecure-http]\n"
	"              [--write-mode sync|writeback] [--writeback-delay DURATION]\n"
	"              [-o FUSE-OPTIONS]\n"
	"              [--help] [--version]\n"
	"The token FILE must be a regular file of cairnd's user, mode 0600\n"
	"('vos token NAME --rw -o FILE' writes it so). The mount is\n"
	"nosuid,nodev unless -o suid,dev says otherwise.\n";

static const struct option long_opts[] = {
	{"server", required_argument, NULL, 's'},
	{"volume", required_argument, NULL, 'v'},
	{"token", required_argument, NULL, 't'},
	{"cache", required_argument, NULL, 'c'},
	{"mountpoint", required_argument, NULL, 'm'},
	{"cache-size", required_argument, NULL, 1},
	{"chunk-size", required_argument, NULL, 2},
	{"config", required_argument, NULL, 3},
	{"foreground", no_argument, NULL, 'f'},
	{"log-level", required_argument, NULL, 4},
	{"syslog", no_argument, NULL, 5},
	{"fetch-timeout", required_argument, NULL, 6},
	{"entry-timeout", required_argument, NULL, 7},
	{"attr-timeout", required_argument, NULL, 8},
	{"max-parallel", required_argument, NULL, 9},
	{"readahead", required_argument, NULL, 10},
	{"threads", required_argument, NULL, 11},
	{"ca-file", required_argument, NULL, 12},
	{"ctl-socket", required_argument, NULL, 13},
	{"dirty-limit", required_argument, NULL, 14},
	{"ctl-conns-per-uid", required_argument, NULL, 15},
	{"proxy", required_argument, NULL, 17},
	{"allow-insecure-http", no_argument, NULL, 16},
	{"write-mode", required_argument, NULL, 18},
	{"writeback-delay", required_argument, NULL, 19},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

/* A setting given on the command line, applied after the config file. */
struct kv {
	const char *key, *value;
};

static const char *
opt_key(int c)
{
	for (const struct option *o = long_opts; o->name; o++)
		if (o->val == c)
			return o->name;
	return c == 'o' ? "o" : NULL;
}

/* Parse argv. @return 0, PARSE_DONE (--help/--version printed: exit
 * EX_OK), or the sysexits(3) status of an error whose message is printed:
 * EX_USAGE for the command line, EX_CONFIG for the config file or a
 * server refused as insecure. */
#define PARSE_DONE (-1)
static int
parse_args(int argc, char **argv, struct cm_config *cfg)
{
	struct kv *kv = calloc((size_t)argc + 1, sizeof(*kv));
	const char **skip = calloc((size_t)argc + 1, sizeof(*skip));
	const char *config = NULL, *why;
	size_t n = 0;
	int c, chk, rc = 0, line;
	struct stat st;

	if (!kv || !skip) {
		fprintf(stderr, "cairnd: out of memory\n");
		rc = EX_OSERR;
		goto out;
	}
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":s:v:t:c:m:fo:hV", long_opts,
				NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(usage_text, stdout);
			rc = PARSE_DONE;
			goto out;
		case 'V':
			printf("cairnd %s\n", PACKAGE_VERSION);
			rc = PARSE_DONE;
			goto out;
		case 3:
			config = optarg;
			break;
		case 'f':
			kv[n].key = "foreground";
			kv[n++].value = "yes";
			break;
		case 5:
			kv[n].key = "syslog";
			kv[n++].value = "yes";
			break;
		case 16:
			kv[n].key = "allow-insecure-http";
			kv[n++].value = "yes";
			break;
		case ':':
			fprintf(stderr, "cairnd: option '%s' needs a value\n%s",
				argv[optind - 1], usage_text);
			rc = EX_USAGE;
			goto out;
		case '?':
			fprintf(stderr, "cairnd: unknown option '%s'\n%s",
				argv[optind - 1], usage_text);
			rc = EX_USAGE;
			goto out;
		default:
			kv[n].key = opt_key(c);
			kv[n++].value = optarg;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "cairnd: unexpected argument '%s'\n%s",
			argv[optind], usage_text);
		rc = EX_USAGE;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		skip[i] = kv[i].key;
	if (!config && stat(DEFAULT_CONFIG, &st) == 0)
		config = DEFAULT_CONFIG;
	else if (!config && stat(ETC_CONFIG, &st) == 0)
		config = ETC_CONFIG;
	if (config) {
		int r = cm_config_load(cfg, config, skip, &line);

		if (r < 0) {
			if (line)
				fprintf(stderr, "cairnd: config file '%s' "
						"line %d: bad setting\n",
					config, line);
			else
				fprintf(stderr, "cairnd: cannot read config "
						"file '%s': %s\n",
					config, strerror(-r));
			rc = EX_CONFIG;
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		int r = cm_config_set(cfg, kv[i].key, kv[i].value, &why);

		if (r < 0) {
			fprintf(stderr, "cairnd: --%s '%s': %s\n", kv[i].key,
				kv[i].value, why ? why : strerror(-r));
			rc = EX_USAGE;
			goto out;
		}
	}
	chk = cm_config_check(cfg, &why);
	if (chk == -EPERM) {
		/* Refused before anything is opened or connected. */
		fprintf(stderr, "cairnd: server '%s': %s\n", cfg->server, why);
		rc = EX_CONFIG;
	} else if (chk < 0) {
		fprintf(stderr, "cairnd: %s\n%s", why, usage_text);
		rc = EX_USAGE;
	}
out:
	free(kv);
	free(skip);
	return rc;
}

static char *
make_fuse_opts(struct cm *cm)
{
	size_t n = strlen(cm->cfg.volume) + 128 +
		   (cm->cfg.fuse_opts ? strlen(cm->cfg.fuse_opts) : 0);
	char *s = malloc(n);

	if (!s)
		return NULL;
	/* nosuid,nodev first, whatever libfuse's defaults are: a volume's
	 * set-id bits and device numbers come from whoever wrote them, and
	 * with allow_other any local user reaches them. "-o suid" or "-o dev"
	 * come later in the list and win (cairnd(8)). */
	snprintf(s, n,
		 "nosuid,nodev,allow_other,default_permissions,fsname=cairn:%s,"
		 "subtype=cairn%s%s",
		 cm->cfg.volume, cm->cfg.fuse_opts ? "," : "",
		 cm->cfg.fuse_opts ? cm->cfg.fuse_opts : "");
	return s;
}

static int
absolutize(char **p)
{
	char buf[PATH_MAX];

	if (!realpath(*p, buf))
		return -errno;
	free(*p);
	*p = strdup(buf);
	return *p ? 0 : -ENOMEM;
}

/*
 * Stop signals. SIGTERM, SIGINT and SIGHUP are blocked in every thread
 * (the mask is set before the first thread exists, so all inherit it) and
 * taken by one thread with sigwait(). libfuse's own handlers only set the
 * session's exit flag in whatever thread the signal lands on; when that
 * is one of our threads, nothing wakes the FUSE loop and cairnd stays up
 * (seen under a burst of SIGHUP). Here the signal thread sets the flag
 * and then kicks the main thread with SIGUSR1 (an empty handler, so
 * sem_wait() in fuse_session_loop_mt returns EINTR) every 100 ms until
 * the loop has returned: no lost wake-up. Signals after that stay blocked
 * and pending: a second SIGTERM cannot cut the clean close short.
 */
static const int stop_sigs[] = {SIGTERM, SIGINT, SIGHUP};

struct sigctl {
	sigset_t set;
	pthread_t main_thread, thread;
	struct fuse_session *se;
	atomic_bool loop_done;
	atomic_bool quit; /* signals_stop(): return at the next signal */
	bool started;
};

static void
kick_handler(int sig)
{
	(void)sig;
}

/* Before any thread: block the stop signals, set up the kick. */
static int
signals_block(struct sigctl *sc)
{
	struct sigaction sa;

	sigemptyset(&sc->set);
	for (size_t i = 0; i < sizeof(stop_sigs) / sizeof(stop_sigs[0]); i++)
		sigaddset(&sc->set, stop_sigs[i]);
	if (pthread_sigmask(SIG_BLOCK, &sc->set, NULL) != 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler; /* no SA_RESTART */
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) < 0)
		return -1;
	sa.sa_handler = SIG_IGN;
	return sigaction(SIGPIPE, &sa, NULL);
}

static void *
signal_main(void *arg)
{
	struct sigctl *sc = arg;
	bool stopping = false;
	int sig;

	for (;;) {
		if (sigwait(&sc->set, &sig) != 0)
			continue;
		if (atomic_load(&sc->quit))
			return NULL;
		if (stopping)
			continue; /* swallowed: shutdown is under way */
		stopping = true;
		log_info(LOG_MAIN, "signal %d: stopping", sig);
		fuse_session_exit(sc->se);
		while (!atomic_load(&sc->loop_done)) {
			struct timespec ts = {0, 100 * 1000 * 1000};

			pthread_kill(sc->main_thread, SIGUSR1);
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

/* After the fork: the thread that takes the stop signals. */
static int
signals_start(struct sigctl *sc, struct fuse_session *se)
{
	sc->se = se;
	sc->main_thread = pthread_self();
	atomic_store(&sc->loop_done, false);
	if (pthread_create(&sc->thread, NULL, signal_main, sc) != 0)
		return -1;
	sc->started = true;
	return 0;
}

/* The FUSE loop has returned: stop kicking, end the thread (woken by a
 * SIGTERM aimed at it, not cancelled: cancellation unwinds through
 * sigwait, which sanitizers report). The stop signals stay blocked until
 * exit. */
static void
signals_stop(struct sigctl *sc)
{
	atomic_store(&sc->loop_done, true);
	if (!sc->started)
		return;
	atomic_store(&sc->quit, true);
	pthread_kill(sc->thread, SIGTERM);
	pthread_join(sc->thread, NULL);
	sc->started = false;
}

int
main(int argc, char **argv)
{
	struct cm_config cfg;
	struct cm cm;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se = NULL;
	struct fuse_loop_config lc = {0};
	char *opts = NULL;
	static struct sigctl sc;
	bool mounted = false;
	int rc, ret = EX_UNAVAILABLE; /* could not mount: see the log */

	cm_config_init(&cfg);
	rc = parse_args(argc, argv, &cfg);
	if (rc) {
		cm_config_release(&cfg);
		return rc == PARSE_DONE ? EX_OK : rc;
	}
	if (signals_block(&sc) != 0) {
		fprintf(stderr, "cairnd: cannot set up signals: %s\n",
			strerror(errno));
		cm_config_release(&cfg);
		return EX_OSERR;
	}
	log_init("cairnd", cfg.use_syslog, cfg.log_level);
	if (cm_config_cleartext(&cfg))
		log_warn(LOG_MAIN,
			 "server '%s' is plain http:// %s, allowed by "
			 "allow-insecure-http: the token and file "
			 "data cross the network in clear text",
			 cfg.server,
			 cfg.proxy && !cm_url_loopback(cfg.proxy)
				 ? "through a proxy that is not on "
				   "this machine"
				 : "to a host that is not loopback");
	if (cfg.proxy)
		log_info(LOG_MAIN, "requests to the server go through the "
				   "configured proxy");
	cm_init(&cm, &cfg);
	if (evthread_use_pthreads() < 0) {
		log_err(LOG_MAIN, "cannot set up libevent threads");
		goto out;
	}
	cm.token = cm_read_token(cm.cfg.token_file);
	if (!cm.token) {
		log_err(LOG_MAIN, "cannot read token file '%s': %s",
			cm.cfg.token_file, strerror(errno));
		goto out;
	}
	rc = util_mkdir_p(cm.cfg.cache_dir, 0700);
	if (rc == 0)
		rc = absolutize(&cm.cfg.cache_dir);
	if (rc < 0) {
		log_err(LOG_MAIN, "cannot use cache directory '%s': %s",
			cm.cfg.cache_dir, strerror(-rc));
		goto out;
	}
	rc = absolutize(&cm.cfg.mountpoint);
	if (rc < 0) {
		log_err(LOG_MAIN, "cannot use mountpoint '%s': %s",
			cm.cfg.mountpoint, strerror(-rc));
		goto out;
	}
	if (cm_daemon_open(&cm) < 0)
		goto out;

	opts = make_fuse_opts(&cm);
	if (!opts || fuse_opt_add_arg(&args, argv[0]) ||
	    fuse_opt_add_arg(&args, "-o") || fuse_opt_add_arg(&args, opts)) {
		log_err(LOG_MAIN, "out of memory");
		goto out;
	}
	se = fuse_session_new(&args, &fops_ops, sizeof(fops_ops), &cm);
	if (!se) {
		log_err(LOG_MAIN, "cannot create the FUSE session (options "
				  "'%s')",
			opts);
		goto out;
	}
	if (fuse_session_mount(se, cm.cfg.mountpoint) != 0) {
		log_err(LOG_MAIN, "cannot mount on '%s'", cm.cfg.mountpoint);
		goto out;
	}
	mounted = true;
	log_info(LOG_MAIN, "mounted volume '%s' from %s on '%s'",
		 cm.cfg.volume, cm.cfg.server, cm.cfg.mountpoint);
	if (!cm.cfg.foreground) {
		cm_daemon_before_fork(&cm);
		fuse_daemonize(0);
		if (cm_daemon_after_fork(&cm) < 0)
			goto out;
	}
	if (cm_daemon_build(&cm) < 0)
		goto out;
	rc = fops_notifier_start(&cm, se);
	if (rc == 0)
		rc = cm_daemon_start(&cm);
	if (rc == 0 && signals_start(&sc, se) != 0)
		rc = -EAGAIN;
	if (rc < 0) {
		log_err(LOG_MAIN, "cannot start threads: %s", strerror(-rc));
		goto out;
	}
	lc.clone_fd = 0;
	lc.max_idle_threads = cm.cfg.threads;
	rc = fuse_session_loop_mt(se, &lc);
	ret = rc < 0 ? EX_SOFTWARE : EX_OK;
	log_info(LOG_MAIN, "stopping");
out:
	signals_stop(&sc);
	cm_daemon_stop(&cm);
	fops_notifier_stop(&cm);
	if (mounted)
		fuse_session_unmount(se);
	if (se)
		fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	free(opts);
	cm_daemon_close(&cm);
	cm_release(&cm);
	return ret;
}
