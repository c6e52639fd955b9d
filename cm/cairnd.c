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
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "cm/daemon_i.h"
#include "cm/daemon.h"
#include "cm/events.h"
#include "cm/fuse_ns.h"
#include "cm/fuse_ops.h"
#include "cm/http.h"
#include "cm/replay.h"
#include "cm/rlog.h"
#include "cm/wb.h"
#include "common/log.h"
#include "common/memtrim.h"
#include "common/notify.h"
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
	"              [--metrics-listen [ADDR:]PORT]\n"
	"              [--write-mode sync|writeback] [--writeback-delay DURATION]\n"
	"              [--log-sync op|close]\n"
	"              [-o FUSE-OPTIONS]\n"
	"       cairnd --config FILE [options]   (FILE with [volume DIR]\n"
	"              sections: several volumes under --mountpoint)\n"
	"       cairnd [options] --show-config\n"
	"              [--help] [--version]\n"
	"The config file (default " DEFAULT_CONFIG ") is read first,\n"
	"then FILE.d/*.conf in name order, then the command line.\n"
	"--show-config prints the effective settings and where each came\n"
	"from, and exits. SIGHUP re-reads the config and the token file.\n"
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
	{"show-config", no_argument, NULL, 18},
	{"metrics-listen", required_argument, NULL, 19},
	{"write-mode", required_argument, NULL, 20},
	{"writeback-delay", required_argument, NULL, 21},
	{"log-sync", required_argument, NULL, 22},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

/* A setting given on the command line, applied after the config file. */
struct kv {
	const char *key, *value;
};

/*
 * What the command line said, kept for the life of the process: SIGHUP
 * loads the same config file again and puts the same command-line
 * settings over it (the strings point into argv).
 */
struct cli {
	struct kv *kv;
	const char **skip; /* the keys of kv, NULL-terminated */
	size_t n;
	const char *config; /* the file to read, or NULL: none */
	char *config_abs;   /* config made absolute (freed by cli_release) */
	bool must;	    /* --config given: the file must exist */
	bool show;	    /* --show-config */
	char cwd[PATH_MAX]; /* where we started: relative paths in the
			       settings are from here, also after the
			       fork has moved us to / */
};

static const char *
opt_key(int c)
{
	for (const struct option *o = long_opts; o->name; o++)
		if (o->val == c)
			return o->name;
	return c == 'o' ? "o" : NULL;
}

static void
cli_release(struct cli *cl)
{
	free(cl->kv);
	free(cl->skip);
	free(cl->config_abs);
	memset(cl, 0, sizeof(*cl));
}

/* Make the path in *@p absolute, relative to @cwd; with @real, resolve
 * it too when it exists (as the start does for the cache and the mount
 * point). @return 0 or -ENOMEM. */
static int
abs_from(const char *cwd, char **p, bool real)
{
	char buf[PATH_MAX], *n;

	if (!*p)
		return 0;
	if ((*p)[0] != '/' && cwd[0]) {
		if (asprintf(&n, "%s/%s", cwd, *p) < 0)
			return -ENOMEM;
		free(*p);
		*p = n;
	}
	if (real && realpath(*p, buf)) {
		if (!(n = strdup(buf)))
			return -ENOMEM;
		free(*p);
		*p = n;
	}
	return 0;
}

/* Parse argv into @cl. @return 0, PARSE_DONE (--help/--version printed:
 * exit EX_OK), or EX_USAGE / EX_OSERR with the message printed. */
#define PARSE_DONE (-1)
static int
parse_cmdline(int argc, char **argv, struct cli *cl)
{
	struct stat st;
	int c;

	memset(cl, 0, sizeof(*cl));
	cl->kv = calloc((size_t)argc + 1, sizeof(*cl->kv));
	cl->skip = calloc((size_t)argc + 1, sizeof(*cl->skip));
	if (!cl->kv || !cl->skip) {
		fprintf(stderr, "cairnd: out of memory\n");
		return EX_OSERR;
	}
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":s:v:t:c:m:fo:hV", long_opts,
				NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(usage_text, stdout);
			return PARSE_DONE;
		case 'V':
			printf("cairnd %s\n", PACKAGE_VERSION);
			return PARSE_DONE;
		case 3:
			cl->config = optarg;
			cl->must = true;
			break;
		case 18:
			cl->show = true;
			break;
		case 'f':
			cl->kv[cl->n].key = "foreground";
			cl->kv[cl->n++].value = "yes";
			break;
		case 5:
			cl->kv[cl->n].key = "syslog";
			cl->kv[cl->n++].value = "yes";
			break;
		case 16:
			cl->kv[cl->n].key = "allow-insecure-http";
			cl->kv[cl->n++].value = "yes";
			break;
		case ':':
			fprintf(stderr, "cairnd: option '%s' needs a value\n%s",
				argv[optind - 1], usage_text);
			return EX_USAGE;
		case '?':
			fprintf(stderr, "cairnd: unknown option '%s'\n%s",
				argv[optind - 1], usage_text);
			return EX_USAGE;
		default:
			cl->kv[cl->n].key = opt_key(c);
			cl->kv[cl->n++].value = optarg;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "cairnd: unexpected argument '%s'\n%s",
			argv[optind], usage_text);
		return EX_USAGE;
	}
	for (size_t i = 0; i < cl->n; i++)
		cl->skip[i] = cl->kv[i].key;
	if (!getcwd(cl->cwd, sizeof(cl->cwd)))
		cl->cwd[0] = '\0';
	/* The default file, or its drop-ins alone; the built-in path first
	 * (a --prefix build), then /etc/cairn. */
	if (!cl->config) {
		if (stat(DEFAULT_CONFIG, &st) == 0 ||
		    stat(DEFAULT_CONFIG ".d", &st) == 0)
			cl->config = DEFAULT_CONFIG;
		else if (stat(ETC_CONFIG, &st) == 0 ||
			 stat(ETC_CONFIG ".d", &st) == 0)
			cl->config = ETC_CONFIG;
	}
	/* SIGHUP reads it again, maybe from / after the fork. */
	if (cl->config && cl->config[0] != '/' && cl->cwd[0]) {
		if (asprintf(&cl->config_abs, "%s/%s", cl->cwd, cl->config) < 0) {
			fprintf(stderr, "cairnd: out of memory\n");
			return EX_OSERR;
		}
		cl->config = cl->config_abs;
	}
	return 0;
}

/*
 * Build the settings from defaults, the config file and its drop-ins, and
 * the command line, in that order. Messages go to @err (stderr at start;
 * on SIGHUP, @reload, a memstream for the log). @return 0 or the
 * sysexits(3) status: EX_CONFIG for the config file or a server refused
 * as insecure, EX_USAGE for the command line or a missing setting.
 */
static int
load_settings(const struct cli *cl, struct cm_config *cfg, FILE *err,
	      bool reload)
{
	const char *why;
	char where[4200];
	int r, chk;

	cm_config_init(cfg);
	if (cl->config) {
		r = cm_config_load(cfg, cl->config, cl->must, cl->skip, where,
				   sizeof(where), &why);
		if (r < 0) {
			if (why)
				fprintf(err, "cairnd: config '%s': %s\n", where,
					why);
			else
				fprintf(err, "cairnd: cannot read config "
					     "'%s': %s\n",
					where, strerror(-r));
			return EX_CONFIG;
		}
	}
	for (size_t i = 0; i < cl->n; i++) {
		r = cm_config_set_from(cfg, cl->kv[i].key, cl->kv[i].value,
				       "command line", &why);
		if (r < 0) {
			fprintf(err, "cairnd: --%s '%s': %s\n", cl->kv[i].key,
				cl->kv[i].value, why ? why : strerror(-r));
			return EX_USAGE;
		}
	}
	if (cl->show)
		return 0;
	/* Relative file names are from where cairnd started (a reload runs
	 * after the fork moved it to /). The cache and the mount point are
	 * resolved as the start resolves them, so a reload compares like
	 * with like. */
	if (abs_from(cl->cwd, &cfg->token_file, false) ||
	    abs_from(cl->cwd, &cfg->ca_file, false) ||
	    abs_from(cl->cwd, &cfg->ctl_socket, false) ||
	    (reload && (abs_from(cl->cwd, &cfg->cache_dir, true) ||
			       abs_from(cl->cwd, &cfg->mountpoint, true)))) {
		fprintf(err, "cairnd: out of memory\n");
		return EX_OSERR;
	}
	/* A volume's own token file too: the retrier and a reload open a
	 * volume after the fork. */
	for (size_t i = 0; i < cfg->nvols; i++)
		if (abs_from(cl->cwd, &cfg->vols[i].token_file, false)) {
			fprintf(err, "cairnd: out of memory\n");
			return EX_OSERR;
		}
	chk = cm_config_check(cfg, &why);
	if (chk == -EPERM) {
		/* Refused before anything is opened or connected. */
		fprintf(err, "cairnd: server '%s': %s\n", cfg->server, why);
		return EX_CONFIG;
	} else if (chk < 0) {
		fprintf(err, "cairnd: %s\n%s", why, reload ? "" : usage_text);
		return EX_USAGE;
	}
	return 0;
}

/* --show-config: print, then say what a start would refuse. */
static int
show_config(const struct cli *cl, struct cm_config *cfg)
{
	const char *why;
	int chk;

	if (cl->config)
		printf("# config file: %s (drop-ins: %s.d/*.conf)\n",
		       cl->config, cl->config);
	else
		printf("# config file: none (" DEFAULT_CONFIG " is absent)\n");
	cm_config_show(cfg, stdout);
	fflush(stdout);
	chk = cm_config_check(cfg, &why);
	if (chk < 0) {
		fprintf(stderr, "cairnd: %s\n", why);
		return chk == -EPERM ? EX_CONFIG : EX_USAGE;
	}
	return EX_OK;
}

/* The mount options, fsname cairn:@fsname (a volume's name, or
 * "namespace"), then the config's fuse-options. NULL: out of memory. */
static char *
make_fuse_opts(const char *fsname, const char *extra)
{
	char *s;

	/* nosuid,nodev first, whatever libfuse's defaults are: a volume's
	 * set-id bits and device numbers come from whoever wrote them, and
	 * with allow_other any local user reaches them. "-o suid" or "-o dev"
	 * come later in the list and win (cairnd(8)). */
	if (asprintf(&s,
		     "nosuid,nodev,allow_other,default_permissions,"
		     "fsname=cairn:%s,subtype=cairn%s%s",
		     fsname, extra ? "," : "", extra ? extra : "") < 0)
		return NULL;
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
 * A cairnd that died (kill -9, a crash) leaves its mount behind: every
 * access to it fails with ENOTCONN, so a restart (systemd's
 * Restart=on-failure, mount.cairn again) could not even resolve the
 * mount point. If @mp is such a dead mount and /proc/self/mounts says it
 * is one of ours (fuse.cairn) at exactly that path, detach it (without
 * following a symlink at the path), say so, and go on. Anything else is
 * left alone. @return 0 (nothing to do, or done) or -errno.
 */
static int
clear_dead_mount(const char *mp)
{
	char abs[PATH_MAX * 2 + 2], line[PATH_MAX * 2 + 64], dev[PATH_MAX],
		dir[PATH_MAX], type[64];
	struct stat st;
	bool ours = false;
	FILE *f;

	if (stat(mp, &st) == 0 || errno != ENOTCONN)
		return 0;
	if (mp[0] == '/') {
		snprintf(abs, sizeof(abs), "%s", mp);
	} else {
		char cwd[PATH_MAX];

		if (!getcwd(cwd, sizeof(cwd)))
			return -errno;
		snprintf(abs, sizeof(abs), "%s/%s", cwd, mp);
	}
	f = fopen("/proc/self/mounts", "re");
	if (!f)
		return -errno;
	/* Mount points with blanks come as \040; a name that does not match
	 * byte for byte is simply not ours to touch. */
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%4095s %4095s %63s", dev, dir, type) == 3 &&
		    !strcmp(dir, abs) && !strcmp(type, "fuse.cairn"))
			ours = true;
	fclose(f);
	if (!ours)
		return -ENOTCONN;
	log_warn(LOG_MAIN, "'%s' is the mount of a cairnd that is gone "
			   "(transport endpoint not connected): detaching it",
		 abs);
	/* The path was checked as a string against the mount table, not
	 * resolved: UMOUNT_NOFOLLOW keeps a symlink put in its place since
	 * (cairnd may run as root under mount.cairn) from turning this into
	 * the detach of whatever it points to. */
	if (umount2(abs, MNT_DETACH | UMOUNT_NOFOLLOW) < 0) {
		/* Not root: the set-uid helper may do it. As root the helper
		 * could do no more than umount2() did, and it resolves the
		 * path itself. */
		int e = errno;
		pid_t pid;
		int wst;

		if (geteuid() == 0) {
			log_err(LOG_MAIN, "cannot detach '%s': %s", abs,
				strerror(e));
			return -e;
		}
		pid = fork();

		if (pid == 0) {
			execlp("fusermount3", "fusermount3", "-uz", abs,
			       (char *)NULL);
			_exit(127);
		}
		if (pid < 0 || waitpid(pid, &wst, 0) < 0 || !WIFEXITED(wst) ||
		    WEXITSTATUS(wst) != 0)
			return -EBUSY;
	}
	return 0;
}

/*
 * Signals. SIGTERM, SIGINT and SIGHUP are blocked in every thread (the
 * mask is set before the first thread exists, so all inherit it) and
 * taken by one thread with sigwait().
 *
 * SIGHUP reloads (reload() below): the config file, its drop-ins and the
 * command line again, and the token file; the mount stays.
 *
 * SIGTERM and SIGINT stop. First, while connected, the thread waits up to
 * DRAIN_MS for the replay log to empty (writeback mode keeps changes
 * there for up to a second), so a clean stop leaves nothing behind that
 * could have been sent; what is left stays in the cache and the log says
 * so (main(), at the end). Then it stops the FUSE loop. libfuse's own
 * handlers only set the session's exit flag in whatever thread the
 * signal lands on; when that is one of our threads, nothing wakes the
 * FUSE loop and cairnd stays up (seen under a burst of SIGHUP). Here the
 * signal thread sets the flag and then kicks the main thread with SIGUSR1
 * (an empty handler, so sem_wait() in fuse_session_loop_mt returns EINTR)
 * every 100 ms until the loop has returned: no lost wake-up. Signals
 * after that stay blocked and pending: a second SIGTERM cannot cut the
 * clean close short.
 */
static const int stop_sigs[] = {SIGTERM, SIGINT, SIGHUP};

#define DRAIN_MS 10000

struct sigctl {
	sigset_t set;
	pthread_t main_thread, thread;
	struct fuse_session *se;
	struct cm *cm;	  /* one volume, or NULL in a namespace */
	struct cm_ns *ns; /* a namespace, or NULL */
	const struct cli *cli;
	char *token; /* the token the HTTP client has (signal thread) */
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

/*
 * Going to the background. fuse_daemonize() lets the first process exit 0
 * right after the fork, before the control socket, the replay log, the
 * write-back state and the metrics listener exist: a failure there
 * unmounted again while mount.cairn, mount(8) or systemd had already
 * seen success, and its message went to /dev/null. Here the first
 * process waits on a pipe: one byte from the child, written once
 * everything runs (where READY=1 goes to systemd), means success; end of
 * file means the child gave up, and the first process exits with the
 * child's status once the child has unmounted and gone. The child keeps
 * the caller's stderr until it is ready, so its messages reach the
 * caller.
 */
static int bg_ready_fd = -1; /* the child's end of the pipe, until ready */

static int
bg_fork(void)
{
	int p[2], st;
	char c;
	ssize_t n;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		int e = errno;

		close(p[0]);
		close(p[1]);
		return -e;
	}
	if (pid > 0) {
		close(p[1]);
		do
			n = read(p[0], &c, 1);
		while (n < 0 && errno == EINTR);
		if (n == 1)
			_exit(EX_OK);
		while (waitpid(pid, &st, 0) < 0)
			if (errno != EINTR)
				_exit(EX_SOFTWARE);
		if (WIFEXITED(st))
			_exit(WEXITSTATUS(st) ? WEXITSTATUS(st) : EX_SOFTWARE);
		_exit(EX_SOFTWARE);
	}
	close(p[0]);
	bg_ready_fd = p[1];
	if (setsid() < 0)
		log_warn(LOG_MAIN, "cannot start a new session: %s",
			 strerror(errno));
	if (chdir("/") < 0)
		log_warn(LOG_MAIN, "cannot change to '/': %s", strerror(errno));
	return 0;
}

/* Tell the waiting first process that the mount is up, and let go of the
 * caller's terminal (stdin, stdout and stderr become /dev/null). */
static void
bg_ready(void)
{
	int fd;

	if (bg_ready_fd < 0)
		return;
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	if (write(bg_ready_fd, "", 1) != 1)
		log_warn(LOG_MAIN,
			 "cannot tell the starting process that the "
			 "mount is up: %s",
			 strerror(errno));
	close(bg_ready_fd);
	bg_ready_fd = -1;
}

static void
restart_events(struct cm_loop *loop, struct cm_job *job)
{
	struct cm *cm = cm_of_loop(loop);

	free(job);
	if (!cm_stopping(loop))
		ev_restart(cm->evs);
}

/* Settings that take effect at once on SIGHUP; the others are kept and
 * reported (they shape the cache, the mount or the loop). */
static bool
reloadable(const char *key)
{
	return !strcmp(key, "token") || !strcmp(key, "log-level") ||
	       !strcmp(key, "write-mode") || !strcmp(key, "writeback-delay") ||
	       !strcmp(key, "log-sync");
}

/*
 * The write policy a reload changed (write-mode, writeback-delay,
 * log-sync), applied on the loop thread as `fs setpolicy` applies it. Only
 * the settings whose value in the config file changed are applied, so a
 * SIGHUP with an unchanged file keeps what `fs setpolicy` set since.
 */
struct policy_job {
	struct cm_job job;
	struct cm *cm;
	bool set_mode, writeback;
	bool set_delay;
	uint64_t delay_ms;
	bool set_sync, sync_close;
};

static void
policy_switched(void *arg, int err, uint64_t records)
{
	(void)arg;
	if (err)
		log_warn(LOG_MAIN, "reload: write-mode sync waits: %s",
			 err == -EHOSTUNREACH
				 ? "the server was lost before the log was "
				   "sent (still writeback)"
				 : strerror(-err));
	else
		log_info(LOG_MAIN, "reload: write-mode is sync (%llu logged "
				   "records sent first)",
			 (unsigned long long)records);
}

static void
policy_run(struct cm_loop *loop, struct cm_job *job)
{
	struct policy_job *pj = container_of(job, struct policy_job, job);
	struct cm *cm = pj->cm;
	int rc;

	if (cm_stopping(loop) || !cm->replay) {
		free(pj);
		return;
	}
	if (pj->set_delay)
		replay_set_writeback_delay(cm->replay, pj->delay_ms);
	if (pj->set_sync)
		replay_set_log_sync(cm->replay, pj->sync_close);
	if (pj->set_mode) {
		rc = replay_set_writeback(cm->replay, pj->writeback,
					  policy_switched, NULL);
		if (rc < 0)
			log_err(LOG_MAIN, "reload: cannot set write-mode %s: %s",
				pj->writeback ? "writeback" : "sync",
				strerror(-rc));
	}
	free(pj);
}

/* Post the write-policy changes of @nc against @cur (the settings @cm was
 * started or last reloaded with, updated here). Signal thread. */
static void
reload_write_policy(struct cm *cm, struct cm_config *cur,
		    const struct cm_config *nc)
{
	struct policy_job *pj;

	if (cur->writeback == nc->writeback &&
	    cur->writeback_delay_ms == nc->writeback_delay_ms &&
	    cur->log_sync_close == nc->log_sync_close)
		return;
	pj = calloc(1, sizeof(*pj));
	if (!pj) {
		log_err(LOG_MAIN, "reload: out of memory: the write policy "
				  "stays");
		return;
	}
	pj->job.run = policy_run;
	pj->cm = cm;
	pj->set_mode = cur->writeback != nc->writeback;
	pj->writeback = nc->writeback;
	pj->set_delay = cur->writeback_delay_ms != nc->writeback_delay_ms;
	pj->delay_ms = nc->writeback_delay_ms;
	pj->set_sync = cur->log_sync_close != nc->log_sync_close;
	pj->sync_close = nc->log_sync_close;
	cur->writeback = nc->writeback;
	cur->writeback_delay_ms = nc->writeback_delay_ms;
	cur->log_sync_close = nc->log_sync_close;
	cm_post(&cm->loop, &pj->job);
}

/*
 * SIGHUP, on the signal thread: build the settings again as at start; on
 * any error keep all of the running ones. Apply the log level, read the
 * token file (the new one if its name changed) and hand the token to the
 * HTTP client, so the next request carries it; the event stream
 * reconnects with it at once. A changed setting that cannot change at run
 * time is named in the log and kept until the next start.
 */
static void reload_ns(struct sigctl *sc);

static void
reload(struct sigctl *sc)
{
	struct cm *cm = sc->cm;

	if (sc->ns) {
		reload_ns(sc);
		return;
	}
	struct cm_config nc;
	char *msg = NULL, *tok = NULL;
	char a[4096], b[4096];
	size_t mlen = 0;
	FILE *mf;
	int rc;
	unsigned kept = 0;

	notify_systemd("RELOADING=1");
	log_info(LOG_MAIN, "SIGHUP: reloading the config%s%s and the token "
			   "file",
		 sc->cli->config ? " " : "",
		 sc->cli->config ? sc->cli->config : "");
	mf = open_memstream(&msg, &mlen);
	rc = load_settings(sc->cli, &nc, mf ? mf : stderr, true);
	if (mf)
		fclose(mf);
	if (rc) {
		if (msg && mlen && msg[mlen - 1] == '\n')
			msg[mlen - 1] = '\0';
		log_err(LOG_MAIN, "reload failed, the running settings stay: "
				  "%s",
			msg && !strncmp(msg, "cairnd: ", 8) ? msg + 8
			: msg				     ? msg
							     : "?");
		goto out;
	}
	for (size_t i = 0; cm_config_key(i); i++) {
		const char *k = cm_config_key(i);
		int ra = cm_config_value(&cm->cfg, k, a, sizeof(a));
		int rb = cm_config_value(&nc, k, b, sizeof(b));

		if (ra == rb && (ra <= 0 || !strcmp(a, b)))
			continue;
		if (reloadable(k)) {
			log_info(LOG_MAIN, "reload: %s is now '%s'", k,
				 rb > 0 ? b : "");
			continue;
		}
		/* foreground and syslog differ between a mount.cairn start
		 * and a config file that does not say: not worth a line. */
		if (!strcmp(k, "foreground"))
			continue;
		kept++;
		log_warn(LOG_MAIN, "reload: %s changed to '%s' (%s): it cannot "
				   "change while mounted; '%s' stays until "
				   "cairnd restarts",
			 k, rb > 0 ? b : "", conf_origin_get(&nc.origins, k),
			 ra > 0 ? a : "");
	}
	log_set_level(nc.log_level);
	reload_write_policy(cm, &cm->cfg, &nc);
	tok = cm_read_token(nc.token_file);
	if (tok && sc->token && !strcmp(tok, sc->token)) {
		log_info(LOG_MAIN, "reload: token in '%s' unchanged",
			 nc.token_file);
	} else if (!tok) {
		log_err(LOG_MAIN, "reload: cannot read token file '%s': %s; "
				  "the old token stays",
			nc.token_file, strerror(errno));
	} else if ((rc = http_set_token(cm->http, tok)) < 0) {
		log_err(LOG_MAIN, "reload: token from '%s' refused: %s; the "
				  "old token stays",
			nc.token_file, strerror(-rc));
	} else {
		struct cm_job *job = calloc(1, sizeof(*job));

		log_info(LOG_MAIN, "reload: new token read from '%s'; the "
				   "next requests use it",
			 nc.token_file);
		free(sc->token);
		sc->token = tok;
		tok = NULL;
		if (job) {
			job->run = restart_events;
			cm_post(&cm->loop, job);
		}
	}
	if (tok) {
		memset(tok, 0, strlen(tok));
		free(tok);
	}
	log_info(LOG_MAIN, "reload done%s",
		 kept ? " (some settings wait for a restart, see above)" : "");
out:
	cm_config_release(&nc);
	free(msg);
	notify_systemd("READY=1");
}

/* Before stopping: let the replay log reach the server (DRAIN_MS at
 * most, and only while connected). */
static void
drain(struct cm *cm)
{
	uint64_t t0 = util_now_ms(), left, said = 0;
	struct rlog_stats st;

	for (;;) {
		if (!cm->rlog || rlog_stats(cm->rlog, &st) < 0)
			return;
		left = st.pending + st.inflight;
		if (!left || cm_offline(cm) || util_now_ms() - t0 >= DRAIN_MS)
			return;
		if (!said) {
			log_info(LOG_MAIN, "waiting up to %d s for %llu logged "
					   "changes to reach the server",
				 DRAIN_MS / 1000, (unsigned long long)left);
			said = left;
		}
		{
			struct timespec ts = {0, 50 * 1000 * 1000};

			nanosleep(&ts, NULL);
		}
	}
}

/* Give volume @cm the token in @path if it changed. */
static void
reload_vol_token(struct cm *cm, const char *path)
{
	char *tok = cm_read_token(path);
	int rc;

	if (!tok) {
		log_err(LOG_MAIN, "reload: volume '%s': cannot read token "
				  "file '%s': %s; the old token stays",
			cm->ns_dir, path, strerror(errno));
		return;
	}
	if (cm->token && !strcmp(tok, cm->token)) {
		log_info(LOG_MAIN, "reload: volume '%s': token in '%s' "
				   "unchanged",
			 cm->ns_dir, path);
	} else if ((rc = http_set_token(cm->http, tok)) < 0) {
		log_err(LOG_MAIN, "reload: volume '%s': token from '%s' "
				  "refused: %s; the old token stays",
			cm->ns_dir, path, strerror(-rc));
	} else {
		struct cm_job *job = calloc(1, sizeof(*job));

		log_info(LOG_MAIN, "reload: volume '%s': new token read from "
				   "'%s'; the next requests use it",
			 cm->ns_dir, path);
		/* cm->token is read by the signal thread only after the
		 * start. */
		free(cm->token);
		cm->token = tok;
		tok = NULL;
		if (job) {
			job->run = restart_events;
			cm_post(&cm->loop, job);
		}
	}
	if (tok) {
		memset(tok, 0, strlen(tok));
		free(tok);
	}
}

/* cm_ns_reload_apply()'s @changed: tell the kernel. */
static void
root_changed(void *arg, const char *dir)
{
	fns_root_changed(arg, dir);
}

/* SIGHUP in a namespace: the log level, each volume's token file and the
 * volume list (daemon_ns.c: volumes added, removed, listed again; a
 * changed server or volume of a running one refuses the reload). The
 * rest waits for a restart. */
static void
reload_ns(struct sigctl *sc)
{
	struct cm_ns *ns = sc->ns;
	struct cm_config nc;
	char *msg = NULL;
	size_t mlen = 0;
	FILE *mf;
	int rc;

	notify_systemd("RELOADING=1");
	log_info(LOG_MAIN, "SIGHUP: reloading the config and the token files");
	mf = open_memstream(&msg, &mlen);
	rc = load_settings(sc->cli, &nc, mf ? mf : stderr, true);
	if (mf)
		fclose(mf);
	if (rc || !nc.nvols) {
		log_err(LOG_MAIN, "reload failed, the running settings stay: "
				  "%s",
			rc && msg ? msg : "the config lists no [volume] any more");
		goto out;
	}
	if (cm_ns_reload_check(ns, &nc) < 0) {
		log_err(LOG_MAIN, "reload refused, the running settings stay");
		goto out;
	}
	log_set_level(nc.log_level);
	for (size_t i = 0; i < cm_ns_count(ns); i++) {
		struct cm *cm = cm_ns_vol(ns, i);
		struct cm_config vc;
		size_t k;

		if (cm->ns_failed || !cm->http)
			continue;
		for (k = 0; k < nc.nvols; k++)
			if (!strcmp(nc.vols[k].dir, cm->ns_dir))
				break;
		if (k == nc.nvols)
			continue; /* removed: below */
		if (cm_config_for_vol(&nc, k, &vc) < 0)
			continue;
		if (abs_from(sc->cli->cwd, &vc.token_file, false) == 0)
			reload_vol_token(cm, vc.token_file);
		reload_write_policy(cm, &cm->cfg, &vc);
		cm_config_release(&vc);
	}
	cm_ns_reload_apply(ns, &nc, root_changed, sc->se);
	log_info(LOG_MAIN, "reload done");
out:
	cm_config_release(&nc);
	free(msg);
	notify_systemd("READY=1");
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
		if (sig == SIGHUP) {
			reload(sc);
			continue;
		}
		stopping = true;
		log_info(LOG_MAIN, "signal %d: stopping", sig);
		notify_systemd("STOPPING=1");
		if (sc->ns)
			for (size_t i = 0; i < cm_ns_count(sc->ns); i++)
				drain(cm_ns_vol(sc->ns, i));
		else
			drain(sc->cm);
		fuse_session_exit(sc->se);
		while (!atomic_load(&sc->loop_done)) {
			struct timespec ts = {0, 100 * 1000 * 1000};

			pthread_kill(sc->main_thread, SIGUSR1);
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

/* After the fork: the thread that takes the signals. */
static int
signals_start(struct sigctl *sc, struct fuse_session *se, struct cm *cm,
	      const struct cli *cl)
{
	sc->se = se;
	sc->cm = cm;
	sc->cli = cl;
	sc->token = cm && cm->token ? strdup(cm->token) : NULL;
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
	if (sc->token) {
		memset(sc->token, 0, strlen(sc->token));
		free(sc->token);
		sc->token = NULL;
	}
}

/* At the end: say what stays in the cache for the next start. */
static void
report_left(struct cm *cm)
{
	struct rlog_stats st = {0};
	uint64_t files = wb_dirty_files(cm->wb);

	if (cm->rlog)
		rlog_stats(cm->rlog, &st);
	if (!files && !st.pending && !st.inflight)
		log_info(LOG_MAIN, "stopped with every change stored on the "
				   "server%s",
			 st.conflicts ? " (conflicts stay: fs conflicts)" : "");
	else
		log_warn(LOG_MAIN, "stopped with %llu files not stored and "
				   "%llu changes in the replay log: they stay "
				   "in '%s' and go to the server at the next "
				   "start",
			 (unsigned long long)files,
			 (unsigned long long)(st.pending + st.inflight),
			 cm->cfg.cache_dir);
}

/* What a volume needs from the front end: its notifier thread. */
struct ns_front {
	struct fuse_session *se;
	struct fops_notifier **nts; /* [ns->n] */
};

/* Logging as @cfg says. Started in the background with syslog
 * (mount.cairn): errors before the fork go to the terminal as well. */
static void
start_log(const struct cm_config *cfg)
{
	log_init("cairnd",
		 cfg->use_syslog ? (cfg->foreground ? LOG_TO_SYSLOG
						    : LOG_TO_SYSLOG_AND_STDERR)
				 : LOG_TO_STDERR,
		 cfg->log_level);
}

/* The cache directory made and the mount point cleared of a dead mount
 * of ours (clear_dead_mount), both made absolute in @cfg. @return 0, or
 * -1 with the reason logged. */
static int
prepare_paths(struct cm_config *cfg)
{
	int rc;

	rc = util_mkdir_p(cfg->cache_dir, 0700);
	if (rc == 0)
		rc = absolutize(&cfg->cache_dir);
	if (rc < 0) {
		log_err(LOG_MAIN, "cannot use cache directory '%s': %s",
			cfg->cache_dir, strerror(-rc));
		return -1;
	}
	rc = clear_dead_mount(cfg->mountpoint);
	if (rc == 0)
		rc = absolutize(&cfg->mountpoint);
	if (rc < 0) {
		log_err(LOG_MAIN, "cannot use mountpoint '%s': %s",
			cfg->mountpoint, strerror(-rc));
		return -1;
	}
	return 0;
}

/* The FUSE session of a cairnd, one volume's (fuse_ops.c) or a
 * namespace's (fuse_ns.c), and what it was made from. */
struct front_se {
	struct fuse_args args;
	struct fuse_session *se;
	char *opts;
	bool mounted;
};

/* Create the session with @ops and @data and mount it on
 * @cfg->mountpoint, fsname cairn:@fsname. @return 0, or -1 logged (then
 * front_se_close() frees what was made). */
static int
front_se_mount(struct front_se *f, const char *argv0, const char *fsname,
	       const struct cm_config *cfg, const struct fuse_lowlevel_ops *ops,
	       void *data)
{
	f->opts = make_fuse_opts(fsname, cfg->fuse_opts);
	if (!f->opts || fuse_opt_add_arg(&f->args, argv0) ||
	    fuse_opt_add_arg(&f->args, "-o") ||
	    fuse_opt_add_arg(&f->args, f->opts)) {
		log_err(LOG_MAIN, "out of memory");
		return -1;
	}
	f->se = fuse_session_new(&f->args, ops, sizeof(*ops), data);
	if (!f->se) {
		log_err(LOG_MAIN, "cannot create the FUSE session (options "
				  "'%s')",
			f->opts);
		return -1;
	}
	if (fuse_session_mount(f->se, cfg->mountpoint) != 0) {
		log_err(LOG_MAIN, "cannot mount on '%s'", cfg->mountpoint);
		return -1;
	}
	f->mounted = true;
	if (fops_session_io(f->se) < 0) {
		log_err(LOG_MAIN, "cannot set the FUSE session's I/O hooks");
		return -1;
	}
	return 0;
}

/* Tell systemd (and the parent, when in the background) that the mount
 * is ready, with @status, and serve it with up to @threads idle workers
 * until it is unmounted or a signal ends the session. @return the exit
 * code. */
static int
front_se_run(struct front_se *f, unsigned threads, const char *status)
{
	struct fuse_loop_config lc = {0};
	char msg[512 + 16];
	int rc;

	lc.clone_fd = 0;
	lc.max_idle_threads = threads;
	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", status);
	notify_systemd(msg);
	bg_ready();
	rc = fuse_session_loop_mt(f->se, &lc);
	log_info(LOG_MAIN, "stopping");
	return rc < 0 ? EX_SOFTWARE : EX_OK;
}

static void
front_se_close(struct front_se *f)
{
	if (f->mounted)
		fuse_session_unmount(f->se);
	if (f->se)
		fuse_session_destroy(f->se);
	fuse_opt_free_args(&f->args);
	free(f->opts);
}

/* A namespace's volume @cm, at start or when the retrier attaches it:
 * mount points in it cross through fuse_ns.c, and a served volume on
 * plain http:// is warned about. */
static void
ns_vol_front(struct cm *cm)
{
	cm->cross = fns_cross;
	cm->cross_arg = cm;
	if (!cm->ns_failed && cm_config_cleartext(&cm->cfg))
		log_warn(LOG_MAIN, "volume '%s': server '%s' is plain "
				   "http://, allowed by allow-insecure-http",
			 cm->ns_dir, cm->cfg.server);
}

/* ns->on_attach, on the loop thread: a volume left out at start is about
 * to be served (daemon_ns.c's retrier). */
static int
ns_attach(void *arg, struct cm *cm)
{
	struct ns_front *fr = arg;
	size_t i = cm->slot - 1;

	ns_vol_front(cm);
	fr->nts[i] = fops_notifier_start(&cm->loop, fr->se);
	return fr->nts[i] ? 0 : -errno;
}

/*
 * A namespace (cairnd.conf(5) "[volume DIR]" sections): the steps of
 * main() below for every volume at once (daemon_ns.c), with the session
 * of fuse_ns.c and one notifier thread per volume.
 */
static int
main_ns(const char *argv0, const struct cli *cl, struct cm_config *cfg,
	struct sigctl *sc)
{
	static struct cm_ns ns;
	static struct ns_front front;
	struct front_se fe = {.args = FUSE_ARGS_INIT(0, NULL)};
	struct fops_notifier **nts = NULL;
	char st[512];
	bool built = false;
	int rc, ret = EX_UNAVAILABLE;

	start_log(cfg);
	if (evthread_use_pthreads() < 0) {
		log_err(LOG_MAIN, "cannot set up libevent threads");
		cm_config_release(cfg);
		return ret;
	}
	if (prepare_paths(cfg) < 0) {
		cm_config_release(cfg);
		return ret;
	}
	if (cm_ns_open(&ns, cfg) < 0)
		goto out;
	for (size_t i = 0; i < ns.n; i++)
		ns_vol_front(ns.vols[i]);
	nts = calloc(ns.cap, sizeof(*nts)); /* reloads add volumes */
	if (!nts) {
		log_err(LOG_MAIN, "out of memory");
		goto out;
	}
	if (front_se_mount(&fe, argv0, "namespace", &ns.cfg, &fns_ops, &ns) < 0)
		goto out;
	log_info(LOG_MAIN, "mounted %zu volumes on '%s'", ns.n,
		 ns.cfg.mountpoint);
	if (!ns.cfg.foreground) {
		cm_ns_before_fork(&ns);
		rc = bg_fork();
		if (rc < 0) {
			log_err(LOG_MAIN, "cannot go to the background: %s",
				strerror(-rc));
			goto out;
		}
		if (cm_ns_after_fork(&ns) < 0)
			goto out;
	}
	if (cm_ns_build(&ns) < 0)
		goto out;
	built = true;
	rc = 0;
	for (size_t i = 0; rc == 0 && i < ns.n; i++) {
		if (ns.vols[i]->ns_failed)
			continue;
		nts[i] = fops_notifier_start(&ns.vols[i]->loop, fe.se);
		rc = nts[i] ? 0 : -errno;
	}
	front.se = fe.se;
	front.nts = nts;
	ns.on_attach = ns_attach;
	ns.on_attach_arg = &front;
	if (rc == 0)
		rc = cm_ns_start(&ns);
	sc->ns = &ns;
	if (rc == 0 && signals_start(sc, fe.se, NULL, cl) != 0)
		rc = -EAGAIN;
	if (rc < 0) {
		log_err(LOG_MAIN, "cannot start threads: %s", strerror(-rc));
		goto out;
	}
	snprintf(st, sizeof(st), "%zu volumes on %s", ns.n, ns.cfg.mountpoint);
	ret = front_se_run(&fe, ns.cfg.threads, st);
out:
	signals_stop(sc);
	cm_ns_stop(&ns);
	for (size_t i = 0; nts && i < ns.n; i++)
		fops_notifier_stop(nts[i]);
	free(nts);
	if (built)
		for (size_t i = 0; i < ns.n; i++)
			if (!ns.vols[i]->ns_failed) {
				/* a volume attached by the retrier too */
				log_info(LOG_MAIN, "volume '%s':",
					 ns.vols[i]->ns_dir);
				report_left(ns.vols[i]);
			}
	front_se_close(&fe);
	cm_ns_close(&ns);
	return ret;
}

int
main(int argc, char **argv)
{
	struct cm_config cfg;
	struct cm cm;
	struct front_se fe = {.args = FUSE_ARGS_INIT(0, NULL)};
	struct fops_notifier *nt = NULL;
	char st[512];
	static struct sigctl sc;
	static struct cli cl;
	bool built = false;
	int rc, ret = EX_UNAVAILABLE; /* could not mount: see the log */

	/* One heap for every thread: what the FUSE workers free after a
	 * walk can be handed back (doc/cm.md, "Memory"). */
	memtrim_single_arena();
	rc = parse_cmdline(argc, argv, &cl);
	if (rc == 0)
		rc = load_settings(&cl, &cfg, stderr, false);
	else
		cm_config_init(&cfg);
	if (rc == 0 && cl.show)
		rc = show_config(&cl, &cfg);
	if (rc || cl.show) {
		cm_config_release(&cfg);
		cli_release(&cl);
		return rc == PARSE_DONE ? EX_OK : rc;
	}
	if (signals_block(&sc) != 0) {
		fprintf(stderr, "cairnd: cannot set up signals: %s\n",
			strerror(errno));
		cm_config_release(&cfg);
		cli_release(&cl);
		return EX_OSERR;
	}
	if (cfg.nvols) {
		ret = main_ns(argv[0], &cl, &cfg, &sc);
		cli_release(&cl);
		return ret;
	}
	start_log(&cfg);
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
	if (prepare_paths(&cm.cfg) < 0)
		goto out;
	if (cm_daemon_open(&cm) < 0)
		goto out;

	if (front_se_mount(&fe, argv[0], cm.cfg.volume, &cm.cfg, &fops_ops,
			   &cm) < 0)
		goto out;
	log_info(LOG_MAIN, "mounted volume '%s' from %s on '%s'",
		 cm.cfg.volume, cm.cfg.server, cm.cfg.mountpoint);
	if (!cm.cfg.foreground) {
		cm_daemon_before_fork(&cm);
		rc = bg_fork();
		if (rc < 0) {
			log_err(LOG_MAIN, "cannot go to the background: %s",
				strerror(-rc));
			goto out;
		}
		if (cm_daemon_after_fork(&cm) < 0)
			goto out;
	}
	if (cm_daemon_build(&cm) < 0)
		goto out;
	built = true;
	nt = fops_notifier_start(&cm.loop, fe.se);
	rc = nt ? 0 : -errno;
	if (rc == 0)
		rc = cm_daemon_start(&cm);
	if (rc == 0 && signals_start(&sc, fe.se, &cm, &cl) != 0)
		rc = -EAGAIN;
	if (rc < 0) {
		log_err(LOG_MAIN, "cannot start threads: %s", strerror(-rc));
		goto out;
	}
	snprintf(st, sizeof(st), "volume %s from %s on %s", cm.cfg.volume,
		 cm.cfg.server, cm.cfg.mountpoint);
	ret = front_se_run(&fe, cm.cfg.threads, st);
out:
	signals_stop(&sc);
	cm_daemon_stop(&cm);
	fops_notifier_stop(nt);
	if (built)
		report_left(&cm);
	front_se_close(&fe);
	cm_daemon_close(&cm);
	cm_release(&cm);
	cli_release(&cl);
	return ret;
}
