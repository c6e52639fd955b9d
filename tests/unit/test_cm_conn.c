/*
 * test_cm_conn.c - the connection modes of cairnd (cm/conn.c): every
 * transition of conn.h's table from every mode, with its return code, the
 * mode after it, the mode file, and how often each hook ran; the network
 * gate; probes against an in-process HTTP server (a refused probe backs
 * off, an answered one starts reintegration exactly once, a manual
 * disconnection never probes, nothing starts while cairnd stops).
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>

#include "cm/conn.h"
#include "cm/http.h"
#include "common/log.h"
#include "common/util.h"
#include "tests/tap.h"

#define BAIL_OUT(...)                                                       \
	do {                                                                \
		printf("Bail out! ");                                       \
		printf(__VA_ARGS__);                                        \
		printf("\n");                                               \
		exit(1);                                                    \
	} while (0)

/* --- hooks: count the calls --- */

struct counts {
	int offline, reint;
	bool last_manual;
	bool stopping;
};

static void
h_offline(void *arg, bool manual, const char *why)
{
	struct counts *n = arg;

	(void)why;
	n->offline++;
	n->last_manual = manual;
}

static void
h_reint(void *arg)
{
	((struct counts *)arg)->reint++;
}

static bool
h_stopping(void *arg)
{
	return ((struct counts *)arg)->stopping;
}

static struct conn *
conn_open(struct event_base *b, struct http_client *h, const char *dir,
	  struct counts *n)
{
	struct conn_hooks hk = {
		.went_offline = h_offline,
		.reintegrate = h_reint,
		.stopping = h_stopping,
		.arg = n,
	};

	return conn_new(b, h, dir, &hk);
}

/* --- the mode file --- */

static char dir[] = "/tmp/test_cm_conn.XXXXXX";

/* "" when absent, else its first word after "disconnected " */
static const char *
mode_file(void)
{
	static char how[16];
	char path[256], line[96];
	FILE *f;

	snprintf(path, sizeof(path), "%s/mode", dir);
	f = fopen(path, "r");
	if (!f)
		return "";
	strcpy(how, "?");
	if (fgets(line, sizeof(line), f))
		sscanf(line, "disconnected %15s", how);
	fclose(f);
	return how;
}

/* --- the transition table --- */

enum from { F_CONN, F_AUTO, F_MANUAL, F_REINT };
enum act { A_FAIL, A_DISCONNECT, A_RECONNECT, A_DONE };

static const char *const from_name[] = { "connected", "disconnected (auto)",
					 "disconnected (manual)",
					 "reintegrating" };
static const char *const act_name[] = {
	"failed mutation/probe (auto disconnect)", "fs disconnect",
	"fs reconnect", "replay finished"
};

static const struct row {
	enum from from;
	enum act act;
	int rc;
	int mode;
	int offline, reint; /* hook calls */
	const char *file;   /* <cache>/mode after: "", "auto", "manual" */
} rows[] = {
	{ F_CONN, A_FAIL, 0, CM_DISCONNECTED, 1, 0, "auto" },
	{ F_CONN, A_DISCONNECT, 0, CM_DISCONNECTED, 1, 0, "manual" },
	{ F_CONN, A_RECONNECT, 1, CM_CONNECTED, 0, 0, "" },
	{ F_CONN, A_DONE, -EINVAL, CM_CONNECTED, 0, 0, "" },
	{ F_AUTO, A_FAIL, 1, CM_DISCONNECTED, 0, 0, "auto" },
	{ F_AUTO, A_DISCONNECT, 1, CM_DISCONNECTED, 0, 0, "manual" },
	{ F_AUTO, A_RECONNECT, 0, CM_REINTEGRATING, 0, 1, "auto" },
	{ F_AUTO, A_DONE, -EINVAL, CM_DISCONNECTED, 0, 0, "auto" },
	{ F_MANUAL, A_FAIL, 1, CM_DISCONNECTED, 0, 0, "manual" },
	{ F_MANUAL, A_DISCONNECT, 1, CM_DISCONNECTED, 0, 0, "manual" },
	{ F_MANUAL, A_RECONNECT, 0, CM_REINTEGRATING, 0, 1, "manual" },
	{ F_MANUAL, A_DONE, -EINVAL, CM_DISCONNECTED, 0, 0, "manual" },
	{ F_REINT, A_FAIL, 0, CM_DISCONNECTED, 1, 0, "auto" },
	{ F_REINT, A_DISCONNECT, 0, CM_DISCONNECTED, 1, 0, "manual" },
	{ F_REINT, A_RECONNECT, -EINPROGRESS, CM_REINTEGRATING, 0, 0,
	  "manual" },
	{ F_REINT, A_DONE, 0, CM_CONNECTED, 0, 0, "" },
};
#define NROWS (sizeof(rows) / sizeof(rows[0]))

static int
act(struct conn *c, enum act a)
{
	switch (a) {
	case A_FAIL:
		return conn_disconnect(c, false, "test: no answer");
	case A_DISCONNECT:
		return conn_disconnect(c, true, "test: fs disconnect");
	case A_RECONNECT:
		return conn_reconnect(c);
	case A_DONE:
		return conn_reintegrated(c);
	}
	return -1;
}

static void
test_table(void)
{
	for (size_t i = 0; i < NROWS; i++) {
		const struct row *r = &rows[i];
		struct counts n = {0};
		struct conn *c = conn_open(NULL, NULL, dir, &n);
		int rc;

		if (!c)
			BAIL_OUT("conn_new: %s", strerror(errno));
		/* reach the start mode (the mode file written on the way
		 * says how it was reached: the REINTEGRATING row keeps the
		 * manual disconnection's record) */
		if (r->from == F_AUTO)
			act(c, A_FAIL);
		if (r->from == F_MANUAL || r->from == F_REINT)
			act(c, A_DISCONNECT);
		if (r->from == F_REINT)
			act(c, A_RECONNECT);
		memset(&n, 0, sizeof(n));
		rc = act(c, r->act);
		ok(rc == r->rc && conn_mode(c) == r->mode &&
			   n.offline == r->offline && n.reint == r->reint &&
			   conn_offline(c) == (r->mode != CM_CONNECTED) &&
			   !strcmp(mode_file(), r->file),
		   "%s + %s -> %s (rc %d, hooks offline %d reintegrate %d, "
		   "mode file '%s'; got rc %d, %s, %d %d, '%s')",
		   from_name[r->from], act_name[r->act],
		   cm_mode_name(r->mode), r->rc, r->offline, r->reint,
		   r->file, rc, cm_mode_name(conn_mode(c)), n.offline,
		   n.reint, mode_file());
		if (r->offline)
			ok(n.last_manual == (r->act == A_DISCONNECT),
			   "  went_offline told manual=%d",
			   r->act == A_DISCONNECT);
		if (r->mode == CM_DISCONNECTED)
			ok(conn_manual(c) == !strcmp(r->file, "manual"),
			   "  disconnection is %s", r->file);
		conn_free(c);
		/* back to connected for the next row */
		c = conn_open(NULL, NULL, dir, &n);
		if (conn_mode(c) == CM_DISCONNECTED) {
			conn_reconnect(c);
			conn_reintegrated(c);
		}
		conn_free(c);
	}
}

/* A restart keeps the mode: manual and auto disconnections come back
 * from <cache>/mode without calling a hook. */
static void
test_restart(void)
{
	struct counts n = {0};
	struct conn *c = conn_open(NULL, NULL, dir, &n);
	int64_t since;

	conn_disconnect(c, true, "test");
	since = conn_since_ms(c);
	conn_free(c);
	memset(&n, 0, sizeof(n));
	c = conn_open(NULL, NULL, dir, &n);
	ok(conn_mode(c) == CM_DISCONNECTED && conn_manual(c) &&
		   conn_since_ms(c) == since && n.offline == 0,
	   "restart: still disconnected (manual, same since), no hook");
	conn_reconnect(c);
	conn_reintegrated(c);
	conn_free(c);
	c = conn_open(NULL, NULL, dir, &n);
	ok(conn_mode(c) == CM_CONNECTED && !strcmp(mode_file(), ""),
	   "restart after reintegration: connected, no mode file");
	conn_free(c);
}

/* --- an HTTP server for the gate and the probes --- */

static struct {
	struct event_base *base;
	struct evhttp *http;
	pthread_t thread;
	int port;
	atomic_int ping_status;
	atomic_int pings;
	atomic_int others;
} srv;

static void
h_ping(struct evhttp_request *req, void *arg)
{
	(void)arg;
	atomic_fetch_add(&srv.pings, 1);
	evhttp_send_reply(req, atomic_load(&srv.ping_status), "X", NULL);
}

static void
h_other(struct evhttp_request *req, void *arg)
{
	(void)arg;
	atomic_fetch_add(&srv.others, 1);
	evhttp_send_reply(req, 200, "OK", NULL);
}

static void *
srv_main(void *arg)
{
	(void)arg;
	event_base_dispatch(srv.base);
	return NULL;
}

static int
srv_start(void)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);

	srv.base = event_base_new();
	srv.http = srv.base ? evhttp_new(srv.base) : NULL;
	if (!srv.http)
		return -1;
	evhttp_set_cb(srv.http, "/v1/ping", h_ping, NULL);
	evhttp_set_gencb(srv.http, h_other, NULL);
	bs = evhttp_bind_socket_with_handle(srv.http, "127.0.0.1", 0);
	if (!bs || getsockname(evhttp_bound_socket_get_fd(bs),
			       (struct sockaddr *)&sin, &sl) < 0)
		return -1;
	srv.port = ntohs(sin.sin_port);
	return pthread_create(&srv.thread, NULL, srv_main, NULL) ? -1 : 0;
}

static void
srv_stop(void)
{
	event_base_loopbreak(srv.base);
	pthread_join(srv.thread, NULL);
	evhttp_free(srv.http);
	event_base_free(srv.base);
}

static struct event_base *base;
static struct http_client *hc;
static int ndone, last_err;
static long last_status;

static void
on_done(void *arg, const struct http_result *res)
{
	(void)arg;
	ndone++;
	last_err = res->err;
	last_status = res->status;
}

static void
run_for(unsigned ms)
{
	uint64_t end = util_now_ms() + ms;

	while (util_now_ms() < end)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK),
			usleep(2000);
}

/* Run until @pred or @ms passed. */
static bool
run_until(bool (*pred)(void *), void *arg, unsigned ms)
{
	uint64_t end = util_now_ms() + ms;

	while (!pred(arg) && util_now_ms() < end)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK),
			usleep(2000);
	return pred(arg);
}

static bool
one_done(void *arg)
{
	return ndone >= *(int *)arg;
}

/* Submit GET /x (gated unless @ungated). @return the errno http_submit()
 * failed with, or 0 after the reply came (status in last_status). */
static int
get(bool ungated)
{
	struct http_request r = {
		.path = "/x",
		.on_done = on_done,
		.ungated = ungated,
	};
	int want = ndone + 1;

	if (!http_submit(hc, &r))
		return errno;
	run_until(one_done, &want, 5000);
	return 0;
}

static void
test_gate(void)
{
	struct counts n = {0};
	struct conn *c = conn_open(base, hc, dir, &n);

	ok(get(false) == 0 && last_status == 200 && last_err == 0,
	   "gate: connected, a request goes out");
	conn_disconnect(c, true, "test");
	ok(get(false) == EHOSTUNREACH,
	   "gate: disconnected, a request fails at once with EHOSTUNREACH");
	ok(get(true) == 0 && last_status == 200,
	   "gate: an ungated request (probe, replay) still goes out");
	conn_set_miss_policy(c, true, 0);
	ok(get(false) == 0 && last_status == 200,
	   "gate: offline-miss=wait lets requests try");
	conn_set_miss_policy(c, false, 0);
	ok(get(false) == EHOSTUNREACH, "gate: offline-miss=error again");
	conn_reconnect(c);
	ok(get(false) == 0 && last_status == 200,
	   "gate: reintegrating, requests go out");
	conn_reintegrated(c);
	ok(get(false) == 0, "gate: connected again");
	conn_stop(c);
	conn_free(c);
}

static bool
reintegrating(void *arg)
{
	return conn_mode(arg) == CM_REINTEGRATING;
}

static void
test_probes(void)
{
	struct counts n = {0};
	struct conn *c = conn_open(base, hc, dir, &n);
	int p;

	/* manual: no probes */
	atomic_store(&srv.ping_status, 200);
	atomic_store(&srv.pings, 0);
	conn_disconnect(c, true, "test");
	run_for(1400);
	ok(atomic_load(&srv.pings) == 0 && conn_mode(c) == CM_DISCONNECTED &&
		   n.reint == 0,
	   "manual disconnection: no probe in 1.4 s, still disconnected");
	conn_reconnect(c);
	conn_reintegrated(c);

	/* auto: a refused probe backs off, an answered one reintegrates */
	memset(&n, 0, sizeof(n));
	atomic_store(&srv.ping_status, 503);
	conn_disconnect(c, false, "test");
	run_for(1500);
	p = atomic_load(&srv.pings);
	ok(p == 1 && conn_mode(c) == CM_DISCONNECTED && n.reint == 0,
	   "auto: first probe after 1 s answered 503: still disconnected "
	   "(%d probes)",
	   p);
	atomic_store(&srv.ping_status, 200);
	ok(run_until(reintegrating, c, 4000),
	   "auto: the next probe (2 s later) answered 200: reintegrating");
	ok(n.offline == 1 && n.reint == 1,
	   "hooks: went_offline once, reintegrate once (%d, %d)", n.offline,
	   n.reint);
	p = atomic_load(&srv.pings);
	run_for(1200);
	ok(atomic_load(&srv.pings) == p && n.reint == 1,
	   "no probe while reintegrating");
	ok(conn_reintegrated(c) == 0 && conn_mode(c) == CM_CONNECTED &&
		   n.offline == 1 && n.reint == 1,
	   "replay finished: connected, no further hook");

	/* stopping: an answered probe starts nothing */
	memset(&n, 0, sizeof(n));
	n.stopping = true;
	conn_disconnect(c, false, "test");
	run_for(1400);
	ok(conn_mode(c) == CM_DISCONNECTED && n.reint == 0,
	   "stopping: an answered probe does not reintegrate");
	conn_stop(c);
	conn_free(c);

	/* a restart auto-disconnected probes once conn_start() runs */
	memset(&n, 0, sizeof(n));
	c = conn_open(base, hc, dir, &n);
	ok(conn_mode(c) == CM_DISCONNECTED && !conn_manual(c),
	   "restart: auto-disconnected from the mode file");
	conn_start(c);
	ok(run_until(reintegrating, c, 3000) && n.reint == 1 &&
		   n.offline == 0,
	   "conn_start: probes, reintegrates once");
	conn_reintegrated(c);
	conn_stop(c);
	conn_free(c);
}

int
main(void)
{
	char url[64];
	struct http_config cfg = {0};

	log_init("test_cm_conn", 0, LOG_ERR);
	plan(0);
	if (!mkdtemp(dir))
		BAIL_OUT("mkdtemp: %s", strerror(errno));
	test_table();
	test_restart();

	evthread_use_pthreads();
	if (srv_start() < 0)
		BAIL_OUT("cannot start the test server");
	base = event_base_new();
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", srv.port);
	cfg.base_url = url;
	cfg.timeout_ms = 5000;
	hc = base ? http_new(base, &cfg) : NULL;
	if (!hc)
		BAIL_OUT("http_new: %s", strerror(errno));
	test_gate();
	test_probes();
	http_free(hc);
	event_base_free(base);
	srv_stop();

	{
		char path[256];

		snprintf(path, sizeof(path), "%s/mode", dir);
		unlink(path);
		rmdir(dir);
	}
	return done_testing();
}
