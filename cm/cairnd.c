/*
 * cairnd.c - main() of the cache manager: options and config, opening the
 * cache, checking the volume with the server (or finding it in the cache
 * when the server is away), mounting, and an orderly stop.
 *
 * It holds no policy of its own: the read path lives in fetch.c and
 * meta.c, the FUSE handlers in fuse_ops.c.
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

#include "chunkstore/cs.h"
#include "cm/cm.h"
#include "cm/cm_ctl.h"
#include "cm/fuse_ops.h"
#include "cm/rlog.h"
#include "cm/wb.h"
#include "cm/http.h"
#include "cm/inode.h"
#include "cm/vc.h"
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

/* --- one blocking volinfo request, before any thread exists --- */

struct vi_req {
	struct event_base *base;
	int rc;
	struct proto_volinfo vi;
};

static void
vi_done(void *arg, const struct http_result *res)
{
	struct vi_req *r = arg;

	r->rc = cm_http_errno(res->err, res->status, res->body, res->body_len);
	if (res->err)
		r->rc = res->err;
	if (r->rc == 0) {
		r->rc = proto_volinfo_decode(res->body, res->body_len, &r->vi);
		if (r->rc < 0)
			log_err(LOG_MAIN, "bad volume information from the "
					  "server: %s",
				strerror(-r->rc));
	}
	event_base_loopbreak(r->base);
}

static int
fetch_volinfo(struct cm *cm, struct proto_volinfo *vi)
{
	struct http_config hc = {0};
	struct http_request rq = {0};
	struct http_client *h = NULL;
	struct vi_req r = {0};
	char path[128];

	r.rc = -EIO;
	r.base = event_base_new();
	if (!r.base)
		return -ENOMEM;
	hc.base_url = cm->cfg.server;
	hc.token = cm->token;
	hc.ca_file = cm->cfg.ca_file;
	hc.proxy = cm->cfg.proxy;
	hc.connect_timeout_ms = (unsigned)cm->cfg.fetch_timeout_ms;
	hc.timeout_ms = (unsigned)cm->cfg.fetch_timeout_ms;
	h = http_new(r.base, &hc);
	if (!h) {
		r.rc = -errno;
		goto out;
	}
	snprintf(path, sizeof(path), "/v1/vol/%s", cm->cfg.volume);
	rq.path = path;
	rq.on_done = vi_done;
	rq.arg = &r;
	if (!http_submit(h, &rq)) {
		r.rc = -errno;
		goto out;
	}
	event_base_dispatch(r.base);
	*vi = r.vi;
out:
	http_free(h);
	event_base_free(r.base);
	return r.rc;
}

/* --- the stores --- */

/*
 * Raise the soft RLIMIT_NOFILE to the hard limit and size the chunk
 * store's read fd cache from it: half the descriptors (the other half is
 * for FUSE, sockets, tdb and working copies), at least 64, at most 16384.
 * A warm sequential read of a 256 MiB file touches 1024 chunk files; with
 * the library's default of 256 it reopened every one of them.
 */
static uint32_t
fd_cache_size(void)
{
	struct rlimit rl;
	rlim_t soft;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_warn(LOG_MAIN, "cannot read the fd limit: %s",
			 strerror(errno));
		return CS_FD_CACHE_DEFAULT;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit want = {rl.rlim_max, rl.rlim_max};

		if (setrlimit(RLIMIT_NOFILE, &want) == 0)
			rl.rlim_cur = rl.rlim_max;
		else
			log_warn(LOG_MAIN,
				 "cannot raise the fd limit to %llu: "
				 "%s",
				 (unsigned long long)rl.rlim_max,
				 strerror(errno));
	}
	soft = rl.rlim_cur == RLIM_INFINITY ? (rlim_t)2 * CS_FD_CACHE_MAX
					    : rl.rlim_cur;
	soft /= 2;
	if (soft < 64)
		soft = 64;
	if (soft > CS_FD_CACHE_MAX)
		soft = CS_FD_CACHE_MAX;
	log_info(LOG_MAIN, "fd limit %llu: up to %u chunk files kept open",
		 (unsigned long long)rl.rlim_cur, (unsigned)soft);
	return (uint32_t)soft;
}

static int
open_cs(struct cm *cm)
{
	struct cs_params p = {0};
	int err = 0;

	p.chunk_size = cm->cfg.chunk_size;
	p.fd_cache = fd_cache_size();
	p.limits.max_bytes = cm->cfg.cache_size;
	p.log = log_callback;
	p.log_arg = (void *)(uintptr_t)LOG_CS;
	cm->cs = cs_open(cm->cfg.cache_dir, &p, &err);
	if (!cm->cs && err == -ENOENT) {
		err = cs_create(cm->cfg.cache_dir, &p);
		if (err < 0)
			return err;
		log_info(LOG_MAIN, "created cache in '%s'", cm->cfg.cache_dir);
		cm->cs = cs_open(cm->cfg.cache_dir, &p, &err);
	}
	if (!cm->cs)
		return err ? err : -EIO;
	cm->chunk_size = cs_chunk_size(cm->cs);
	if (cm->chunk_size != cm->cfg.chunk_size)
		log_info(LOG_MAIN, "the cache's chunk size is %u (fixed when "
				   "it was created)",
			 cm->chunk_size);
	return 0;
}

static char *
vc_path(struct cm *cm)
{
	size_t n = strlen(cm->cfg.cache_dir) + 16;
	char *p = malloc(n);

	if (p)
		snprintf(p, n, "%s/meta.tdb", cm->cfg.cache_dir);
	return p;
}

/*
 * Find the volume: ask the server, else take what the cache remembers.
 * On success cm->vi holds the volume and cm->vc is open for it.
 * @return 0 or -errno (message logged).
 */
static int
find_volume(struct cm *cm)
{
	struct proto_volinfo vi, cached;
	struct proto_attr root;
	char *path = vc_path(cm);
	uint64_t seq = 0;
	int rc;

	if (!path)
		return -ENOMEM;
	rc = fetch_volinfo(cm, &vi);
	if (rc == 0) {
		if (strcmp(vi.name, cm->cfg.volume)) {
			log_err(LOG_MAIN, "server answered for volume '%s', "
					  "not '%s'",
				vi.name, cm->cfg.volume);
			rc = -EPROTO;
			goto out;
		}
		atomic_store(&cm->online, 1);
		cm->vc = vc_open(path, vi.id, cm->chunk_size);
		if (!cm->vc) {
			rc = -errno;
			log_err(LOG_MAIN, "cannot open metadata cache '%s': %s",
				path, strerror(-rc));
			goto out;
		}
		if (vc_get_volinfo(cm->vc, &cached) == 0 &&
		    !fid_eq(&cached.root, &vi.root)) {
			/* Same id, other root: a recreated volume. */
			log_warn(LOG_MAIN, "volume '%s' was recreated on the "
					   "server; dropping cached metadata",
				 vi.name);
			vc_close(cm->vc);
			unlink(path);
			cm->vc = vc_open(path, vi.id, cm->chunk_size);
			if (!cm->vc) {
				rc = -errno;
				goto out;
			}
		}
		vc_get_seq(cm->vc, &seq);
		if (seq > vi.event_seq) {
			/* The server lost its event history: resume would
			 * miss changes. Start from now; the stream's first
			 * ping after a reset revalidates. */
			log_warn(LOG_MAIN, "server event sequence %llu is "
					   "behind ours (%llu); revalidating",
				 (unsigned long long)vi.event_seq,
				 (unsigned long long)seq);
			vc_put_seq(cm->vc, 0);
		}
		vc_put_volinfo(cm->vc, &vi);
	} else {
		log_warn(LOG_MAIN, "cannot reach server '%s' for volume '%s': "
				   "%s; trying the cache",
			 cm->cfg.server, cm->cfg.volume, strerror(-rc));
		cm->vc = vc_open(path, 0, cm->chunk_size);
		if (!cm->vc || vc_get_volinfo(cm->vc, &vi) < 0 ||
		    strcmp(vi.name, cm->cfg.volume) ||
		    vc_get_attr(cm->vc, &vi.root, &root) < 0) {
			log_err(LOG_MAIN, "cannot mount volume '%s': the server "
					  "is unreachable and the cache in '%s' "
					  "holds no copy of it",
				cm->cfg.volume, cm->cfg.cache_dir);
			rc = -EHOSTUNREACH;
			goto out;
		}
		log_info(LOG_MAIN, "mounting volume '%s' from the cache "
				   "(disconnected)",
			 vi.name);
	}
	pthread_mutex_lock(&cm->lock);
	cm->vi = vi;
	cm->have_vi = true;
	pthread_mutex_unlock(&cm->lock);
	rc = 0;
out:
	free(path);
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
 * The replay log and the write states, after the fork (tdb handles must
 * not cross it). A damaged replay log is never replaced here: cairnd
 * refuses to start, so nothing it holds is lost (cairn-fsck tells more).
 */
static int
open_write_state(struct cm *cm)
{
	char path[4096];
	int err = 0, rc;

	snprintf(path, sizeof(path), "%s/rlog.tdb", cm->cfg.cache_dir);
	cm->rlog = rlog_open(path, &err);
	if (!cm->rlog) {
		log_err(LOG_MAIN, "cannot open the replay log '%s': %s", path,
			strerror(-err));
		return err;
	}
	rc = wb_new(cm);
	if (rc < 0)
		log_err(LOG_MAIN, "cannot open the write-back state: %s",
			strerror(-rc));
	return rc;
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
	char stats[4096];
	static struct sigctl sc;
	bool mounted = false, vc_reopen = false;
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
	rc = open_cs(&cm);
	if (rc < 0) {
		log_err(LOG_MAIN, "cannot open cache '%s': %s",
			cm.cfg.cache_dir,
			rc == -EBUSY ? "in use by another process"
				     : strerror(-rc));
		goto out;
	}
	if (find_volume(&cm) < 0)
		goto out;
	cm.ino = ino_new(&cm.vi.root);
	if (!cm.ino) {
		log_err(LOG_MAIN, "out of memory");
		goto out;
	}

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
		/* tdb's fcntl locks do not survive fork(): reopen. The chunk
		 * store's flock does (it is on the shared open file). */
		char *p = vc_path(&cm);

		vc_close(cm.vc);
		cm.vc = NULL;
		fuse_daemonize(0);
		cm.vc = p ? vc_open(p, cm.vi.id, cm.chunk_size) : NULL;
		free(p);
		vc_reopen = true;
		if (!cm.vc) {
			log_err(LOG_MAIN, "cannot reopen the metadata cache");
			goto out;
		}
	}
	(void)vc_reopen;
	rc = open_write_state(&cm);
	if (rc < 0)
		goto out;
	rc = cm_loop_setup(&cm);
	if (rc < 0) {
		log_err(LOG_MAIN, "cannot set up the event loop: %s",
			strerror(-rc));
		goto out;
	}
	rc = cm_ctl_start(&cm);
	if (rc < 0)
		goto out;
	rc = fops_notifier_start(&cm, se);
	if (rc == 0)
		rc = cm_loop_start(&cm);
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
	cm_ctl_stop(&cm);
	cm_loop_stop(&cm);
	fops_notifier_stop(&cm);
	if (mounted)
		fuse_session_unmount(se);
	if (se)
		fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	free(opts);
	cm_stats_format(&cm, stats, sizeof(stats));
	for (char *l = strtok(stats, "\n"); l; l = strtok(NULL, "\n"))
		log_info(LOG_MAIN, "stat %s", l);
	ino_free(cm.ino);
	wb_free(&cm);
	rlog_close(cm.rlog);
	cm.rlog = NULL;
	vc_close(cm.vc);
	cs_close(cm.cs);
	cm_release(&cm);
	return ret;
}
