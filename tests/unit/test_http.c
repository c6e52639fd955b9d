/*
 * test_http.c - unit tests for cm/http.c, cairnd's libcurl-on-libevent
 * client, against an in-process evhttp server on 127.0.0.1 port 0.
 *
 * The server runs on its own event_base in a second thread, so the client's
 * loop (this thread) and the server never share a base. Its handlers echo,
 * serve a big body with cairn's headers, trickle chunks, hang, delay, fail
 * with JSON, and cut connections, and it counts connections and requests in
 * flight so the tests can check keep-alive and the parallel limit.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <openssl/evp.h>

#include "cm/http.h"
#include "common/log.h"
#include "common/util.h"
#include "tests/tap.h"

#define BIG_SIZE (8u << 20)
#define SLOW_CHUNKS 20
#define SLOW_CHUNK 1000
#define DELAY_MS 20
#define TOKEN "sekrit"

static unsigned char *big;	/* BIG_SIZE bytes of pattern */
static char big_sha[65];	/* its SHA-256 in hex */

/* ---- the server ---------------------------------------------------------- */

struct srv {
	struct event_base *base;
	struct evhttp *http;
	pthread_t thread;
	int port;
	atomic_int conns;	 /* connections accepted */
	atomic_int inflight;	 /* /delay requests not answered yet */
	atomic_int max_inflight; /* most /delay requests at once */
	atomic_int seen;	 /* /seen requests received */
	/* Server thread while it runs, main thread after the join. */
	struct evhttp_request *hung[256];
	int nhung;
};

static struct srv srv;

static void
sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	util_hex_encode(md, mdlen, out);
}

static int
req_fd(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);

	return bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
}

/* Without TCP_NODELAY the last partial segment of a reply waits for the
 * client's delayed ACK: sequential 256 KiB GETs crawl at ~30 MiB/s instead
 * of ~900. A server must set it; this one does for its bulk replies. */
static void
nodelay(struct evhttp_request *req)
{
	int one = 1;

	setsockopt(req_fd(req), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static const char *
hdr(struct evhttp_request *req, const char *name)
{
	const char *v = evhttp_find_header(evhttp_request_get_input_headers(req),
					   name);
	return v ? v : "-";
}

static const char *
cmd_name(enum evhttp_cmd_type t)
{
	switch (t) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	default:
		return "?";
	}
}

/* Body: "M:<method>|A:<authorization>|C:<content-type>|X:<expect>|" and
 * the request body; "If-None-Match: \"v1\"" gets a 304. */
static void
h_echo(struct evhttp_request *req, void *arg)
{
	struct evbuffer *out = evbuffer_new();
	struct evkeyvalq *oh = evhttp_request_get_output_headers(req);

	evhttp_add_header(oh, "ETag", "\"v1\"");
	if (!strcmp(hdr(req, "If-None-Match"), "\"v1\"")) {
		evhttp_send_reply(req, 304, "Not Modified", NULL);
		evbuffer_free(out);
		return;
	}
	evbuffer_add_printf(out, "M:%s|A:%s|C:%s|X:%s|",
			    cmd_name(evhttp_request_get_command(req)),
			    hdr(req, "Authorization"), hdr(req, "Content-Type"),
			    hdr(req, "Expect"));
	evbuffer_add_buffer(out, evhttp_request_get_input_buffer(req));
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}

static void
h_big(struct evhttp_request *req, void *arg)
{
	struct evbuffer *out = evbuffer_new();
	struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
	char n[32];

	nodelay(req);
	/* Odd header spellings: the client must match names in any case. */
	evhttp_add_header(oh, "x-cairn-sha256", big_sha);
	snprintf(n, sizeof(n), "%u", BIG_SIZE);
	evhttp_add_header(oh, "X-CAIRN-SIZE", n);
	evhttp_add_header(oh, "etag", "\"big-1\"");
	evhttp_add_header(oh, "x-cairn-blocks", "crc32c 4096 0000abcd");
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		/* libevent 2.1 would send a body after a HEAD reply and
		 * poison the kept-alive connection: the handler must not. */
		evhttp_add_header(oh, "Content-Length", n);
		evhttp_send_reply(req, 200, "OK", NULL);
		evbuffer_free(out);
		return;
	}
	evbuffer_add_reference(out, big, BIG_SIZE, NULL, NULL);
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}

/* /uri: the request target as it came, so a test tells a direct request
 * ("/uri") from one sent through a proxy ("http://host:port/uri"). */
static void
h_uri(struct evhttp_request *req, void *arg)
{
	struct evbuffer *out = evbuffer_new();

	evbuffer_add_printf(out, "%s", evhttp_request_get_uri(req));
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}

/* /blob/N: the first N bytes of the pattern. */
static void
h_gen(struct evhttp_request *req, void *arg)
{
	const char *uri = evhttp_request_get_uri(req);
	struct evbuffer *out;
	unsigned long n;
	char *end;

	if (strncmp(uri, "/blob/", 6)) {
		evhttp_send_error(req, 404, "Not Found");
		return;
	}
	n = strtoul(uri + 6, &end, 10);
	if (*end || n > BIG_SIZE) {
		evhttp_send_error(req, 400, "Bad Request");
		return;
	}
	nodelay(req);
	out = evbuffer_new();
	evbuffer_add_reference(out, big, n, NULL, NULL);
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}

static void
h_status(struct evhttp_request *req, void *arg)
{
	int code = (int)(intptr_t)arg;
	struct evbuffer *out = evbuffer_new();

	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Content-Type", "application/json");
	evbuffer_add_printf(out, "{\"error\":%d}", code);
	evhttp_send_reply(req, code, code == 404 ? "Not Found"
						 : "Precondition Failed",
			  out);
	evbuffer_free(out);
}

struct slow {
	LIST_ENTRY(slow) link;
	struct evhttp_request *req;
	struct event *ev;
	int i;
};

/* Trickles in progress: server thread, then main thread after the join. */
static LIST_HEAD(, slow) slows = LIST_HEAD_INITIALIZER(slows);

static void
slow_end(struct slow *s)
{
	/* With the client gone the request is ours: this frees it. */
	evhttp_send_reply_end(s->req);
	LIST_REMOVE(s, link);
	event_free(s->ev);
	free(s);
}

static void
slow_tick(evutil_socket_t fd, short what, void *arg)
{
	struct slow *s = arg;
	struct timeval tv = { 0, 5000 };
	struct evbuffer *out;

	if (s->i == SLOW_CHUNKS) {
		slow_end(s);
		return;
	}
	out = evbuffer_new();
	evbuffer_add(out, big + s->i * SLOW_CHUNK, SLOW_CHUNK);
	evhttp_send_reply_chunk(s->req, out);
	evbuffer_free(out);
	s->i++;
	evtimer_add(s->ev, &tv);
}

/* SLOW_CHUNKS chunks of SLOW_CHUNK bytes, 5 ms apart, chunked encoding. */
static void
h_slow(struct evhttp_request *req, void *arg)
{
	struct slow *s = calloc(1, sizeof(*s));
	struct timeval tv = { 0, 5000 };

	s->req = req;
	s->ev = evtimer_new(srv.base, slow_tick, s);
	LIST_INSERT_HEAD(&slows, s, link);
	evhttp_send_reply_start(req, 200, "OK");
	evtimer_add(s->ev, &tv);
}

static void
h_hang(struct evhttp_request *req, void *arg)
{
	if (srv.nhung < (int)(sizeof(srv.hung) / sizeof(srv.hung[0])))
		srv.hung[srv.nhung++] = req;
	else
		evhttp_send_error(req, 503, "Too Many Hung");
}

static void
delay_done(evutil_socket_t fd, short what, void *arg)
{
	struct evhttp_request *req = arg;
	struct evbuffer *out = evbuffer_new();

	atomic_fetch_sub(&srv.inflight, 1);
	evbuffer_add(out, "ok", 2);
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}

static void
h_delay(struct evhttp_request *req, void *arg)
{
	struct timeval tv = { 0, DELAY_MS * 1000 };
	int now = atomic_fetch_add(&srv.inflight, 1) + 1;
	int max = atomic_load(&srv.max_inflight);

	while (now > max &&
	       !atomic_compare_exchange_weak(&srv.max_inflight, &max, now))
		;
	event_base_once(srv.base, -1, EV_TIMEOUT, delay_done, req, &tv);
}

/* Counts its requests as they arrive, then answers "ok". */
static void
h_seen(struct evhttp_request *req, void *arg)
{
	struct evbuffer *out = evbuffer_new();

	atomic_fetch_add(&srv.seen, 1);
	evbuffer_add(out, "ok", 2);
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}

/* Promise 100000 bytes, send 5, hang up. */
static void
h_trunc(struct evhttp_request *req, void *arg)
{
	static const char head[] =
		"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nshort";
	int fd = req_fd(req);

	if (write(fd, head, sizeof(head) - 1) < 0)
		perror("write");
	shutdown(fd, SHUT_RDWR);
	/* Lets libevent notice the dead socket and free the request. */
	evhttp_send_reply(req, 200, "OK", NULL);
}

/* 503 for the first flaky_left requests, then "ok": a server coming back
 * (the retry_ms test). */
static atomic_int flaky_left, flaky_seen;

static void
h_flaky(struct evhttp_request *req, void *arg)
{
	struct evbuffer *out = evbuffer_new();

	(void)arg;
	atomic_fetch_add(&flaky_seen, 1);
	if (atomic_fetch_sub(&flaky_left, 1) > 0) {
		evhttp_send_reply(req, 503, "Service Unavailable", NULL);
	} else {
		evbuffer_add_printf(out, "ok");
		evhttp_send_reply(req, 200, "OK", out);
	}
	evbuffer_free(out);
}

/* Hang up without a word. */
static void
h_drop(struct evhttp_request *req, void *arg)
{
	shutdown(req_fd(req), SHUT_RDWR);
	evhttp_send_reply(req, 200, "OK", NULL);
}

static struct bufferevent *
srv_bevcb(struct event_base *base, void *arg)
{
	atomic_fetch_add(&srv.conns, 1);
	return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
}

static void *
srv_main(void *arg)
{
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
	srv.http = evhttp_new(srv.base);
	if (!srv.base || !srv.http)
		return -1;
	evhttp_set_allowed_methods(srv.http,
				   EVHTTP_REQ_GET | EVHTTP_REQ_POST |
					   EVHTTP_REQ_PUT | EVHTTP_REQ_HEAD |
					   EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH);
	evhttp_set_bevcb(srv.http, srv_bevcb, NULL);
	evhttp_set_cb(srv.http, "/echo", h_echo, NULL);
	evhttp_set_cb(srv.http, "/big", h_big, NULL);
	evhttp_set_cb(srv.http, "/slow", h_slow, NULL);
	evhttp_set_cb(srv.http, "/hang", h_hang, NULL);
	evhttp_set_cb(srv.http, "/delay", h_delay, NULL);
	evhttp_set_cb(srv.http, "/trunc", h_trunc, NULL);
	evhttp_set_cb(srv.http, "/drop", h_drop, NULL);
	evhttp_set_cb(srv.http, "/flaky", h_flaky, NULL);
	evhttp_set_cb(srv.http, "/uri", h_uri, NULL);
	evhttp_set_cb(srv.http, "/seen", h_seen, NULL);
	evhttp_set_cb(srv.http, "/status/404", h_status, (void *)404);
	evhttp_set_cb(srv.http, "/status/412", h_status, (void *)412);
	evhttp_set_gencb(srv.http, h_gen, NULL);
	bs = evhttp_bind_socket_with_handle(srv.http, "127.0.0.1", 0);
	if (!bs)
		return -1;
	if (getsockname(evhttp_bound_socket_get_fd(bs),
			(struct sockaddr *)&sin, &sl) < 0)
		return -1;
	srv.port = ntohs(sin.sin_port);
	return pthread_create(&srv.thread, NULL, srv_main, NULL) ? -1 : 0;
}

static void
srv_stop(void)
{
	int i;

	event_base_loopbreak(srv.base);
	pthread_join(srv.thread, NULL);
	/* Answering a hung request frees it, whether or not its client is
	 * still there; evhttp_free() then frees the connections. */
	for (i = 0; i < srv.nhung; i++)
		evhttp_send_reply(srv.hung[i], 200, "OK", NULL);
	while (!LIST_EMPTY(&slows))
		slow_end(LIST_FIRST(&slows));
	evhttp_free(srv.http);
	event_base_free(srv.base);
}

/* ---- the client side ------------------------------------------------------ */

static struct event_base *base;
static int ndone; /* done callbacks seen by the current case */
static char base_url[64];

struct res {
	int done;
	int err;
	long status;
	char *body; /* NULL when the result had none */
	size_t len;
	char *etag;
	char *sha256;
	int64_t size;
	uint64_t t_done;
	/* streaming */
	size_t got;
	int calls;
	int order_ok;
	int stop_after; /* on_data returns nonzero on this call (1-based) */
	int cancel_self_after;
	struct http_client *c;
	struct http_req *handle;
	/* for chaining and shutdown tests */
	int chain_left;
	int submit_errno;
	int early; /* test_send_now: requests the server saw at once */
};

static void
res_clear(struct res *r)
{
	free(r->body);
	free(r->etag);
	free(r->sha256);
	memset(r, 0, sizeof(*r));
}

static void
on_done(void *arg, const struct http_result *hr)
{
	struct res *r = arg;

	r->done++;
	r->err = hr->err;
	r->status = hr->status;
	if (hr->body) {
		r->body = malloc(hr->body_len + 1);
		memcpy(r->body, hr->body, hr->body_len);
		r->body[hr->body_len] = '\0';
	}
	r->len = hr->body_len;
	r->etag = hr->etag ? strdup(hr->etag) : NULL;
	r->sha256 = hr->sha256 ? strdup(hr->sha256) : NULL;
	r->size = hr->file_size;
	r->t_done = util_now_ms();
	ndone++;
}

/* Checks every streamed byte against the pattern at its offset. */
static int
on_data(void *arg, const void *data, size_t len)
{
	struct res *r = arg;

	r->calls++;
	if (r->got + len > BIG_SIZE || memcmp(big + r->got, data, len))
		r->order_ok = 0;
	r->got += len;
	if (r->cancel_self_after && r->calls == r->cancel_self_after)
		http_cancel(r->c, r->handle);
	return r->stop_after && r->calls >= r->stop_after;
}

static void
tick(evutil_socket_t fd, short what, void *arg)
{
}

/* Run the client loop until @target done callbacks or @ms passed. */
static int
run_until(int target, unsigned ms)
{
	uint64_t end = util_now_ms() + ms;

	while (ndone < target && util_now_ms() < end)
		event_base_loop(base, EVLOOP_ONCE);
	return ndone >= target ? 0 : -1;
}

/* Run the loop for @ms whatever happens. */
static void
run_for(unsigned ms)
{
	uint64_t end = util_now_ms() + ms;

	while (util_now_ms() < end)
		event_base_loop(base, EVLOOP_ONCE);
}

static struct http_req *
submit(struct http_client *c, const char *method, const char *path,
       const char *body, struct res *r)
{
	struct http_request rq = {
		.method = method,
		.path = path,
		.body = body,
		.body_len = body ? strlen(body) : 0,
		.on_done = on_done,
		.arg = r,
	};

	return http_submit(c, &rq);
}

static struct http_client *
client(unsigned max_parallel, const char *url)
{
	struct http_config cfg = {
		.base_url = url ? url : base_url,
		.token = TOKEN,
		.max_parallel = max_parallel,
		.connect_timeout_ms = 2000,
		.timeout_ms = 10000,
	};

	return http_new(base, &cfg);
}

/* ---- cases ----------------------------------------------------------------- */

static void
test_new_bad(void)
{
	struct http_config cfg = { .base_url = "ftp://127.0.0.1:1" };
	struct http_client *c;

	c = http_new(base, &cfg);
	ok(!c && errno == EINVAL, "http_new refuses a non-http url");
	cfg.base_url = NULL;
	c = http_new(base, &cfg);
	ok(!c && errno == EINVAL, "http_new refuses a missing url");
	cfg.base_url = base_url;
	cfg.token = "a\r\nX-Evil: 1";
	c = http_new(base, &cfg);
	ok(!c && errno == EINVAL, "http_new refuses a token with CR/LF");
	cfg.token = NULL;
	cfg.max_parallel = 100000;
	c = http_new(base, &cfg);
	ok(!c && errno == EINVAL, "http_new refuses an absurd max_parallel");
	http_free(NULL);
}

/*
 * Proxies: only the configured one. The environment names this very
 * server as proxy for everything; a client without a proxy must connect
 * directly all the same (the target arrives as "/uri", not as an absolute
 * URL). A client told to use the server as proxy must, even for a host
 * NO_PROXY exempts, send the absolute URL of a loopback address nothing
 * listens on (127.0.0.2: if the proxy were skipped, the connection would
 * be refused; no packet leaves the machine either way).
 */
static void
test_proxy(void)
{
	static const char *const vars[] = {"http_proxy", "HTTP_PROXY",
					   "https_proxy", "HTTPS_PROXY",
					   "all_proxy", "ALL_PROXY"};
	struct http_config cfg = {
		.base_url = base_url,
		.token = TOKEN,
		.connect_timeout_ms = 2000,
		.timeout_ms = 5000,
	};
	struct res d = { 0 }, p = { 0 };
	struct http_client *c;
	char proxy[64], target[64], want[80];

	snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%d", srv.port);
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		setenv(vars[i], proxy, 1);

	c = http_new(base, &cfg);
	ndone = 0;
	submit(c, NULL, "/uri", NULL, &d);
	ok(run_until(1, 5000) == 0, "direct request with *_proxy set ends");
	is_int(d.status, 200, "direct request: 200");
	is_str(d.body, "/uri", "the environment's proxy is not used");
	http_free(c);

	setenv("NO_PROXY", "*", 1);
	setenv("no_proxy", "*", 1);
	snprintf(target, sizeof(target), "http://127.0.0.2:%d", srv.port);
	snprintf(want, sizeof(want), "%s/uri", target);
	cfg.base_url = target;
	cfg.proxy = proxy;
	c = http_new(base, &cfg);
	ndone = 0;
	submit(c, NULL, "/uri", NULL, &p);
	ok(run_until(1, 5000) == 0,
	   "request through the configured proxy ends");
	is_int(p.err, 0, "proxied request: no transport error");
	is_str(p.body, want, "the configured proxy is used, NO_PROXY or not");
	http_free(c);

	cfg.proxy = "http://127.0.0.1:1\r\nX-Evil: 1";
	c = http_new(base, &cfg);
	ok(!c && errno == EINVAL, "http_new refuses a proxy with CR/LF");

	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
	unsetenv("NO_PROXY");
	unsetenv("no_proxy");
	res_clear(&d);
	res_clear(&p);
}

static void
test_submit_bad(struct http_client *c)
{
	struct http_request rq = { .path = "/echo", .on_done = on_done };
	struct res r = { 0 };

	rq.arg = &r;
	rq.path = "echo";
	ok(!http_submit(c, &rq) && errno == EINVAL, "relative path refused");
	rq.path = "/echo\r\nX-Evil: 1";
	ok(!http_submit(c, &rq) && errno == EINVAL, "path with CR/LF refused");
	rq.path = "/echo";
	rq.method = "get";
	ok(!http_submit(c, &rq) && errno == EINVAL, "bad method refused");
	rq.method = NULL;
	rq.if_none_match = "\"x\"\r\nX-Evil: 1";
	ok(!http_submit(c, &rq) && errno == EINVAL,
	   "If-None-Match with CR/LF refused");
	rq.if_none_match = NULL;
	rq.on_done = NULL;
	ok(!http_submit(c, &rq) && errno == EINVAL, "missing on_done refused");
	rq.on_done = on_done;
	rq.body_len = 3;
	ok(!http_submit(c, &rq) && errno == EINVAL, "body_len without body");
	ok(r.done == 0, "no callback for refused submissions");
}

static void
test_roundtrips(struct http_client *c)
{
	struct res g = { 0 }, p = { 0 }, u = { 0 }, n = { 0 }, t = { 0 };
	struct http_request rq = {
		.method = "PUT",
		.path = "/echo",
		.body = "abc\0def",
		.body_len = 7,
		.content_type = "application/octet-stream",
		.on_done = on_done,
		.arg = &u,
	};

	ndone = 0;
	submit(c, NULL, "/echo", NULL, &g);
	submit(c, "POST", "/echo", "{\"a\":1}", &p);
	http_submit(c, &rq);
	rq = (struct http_request){ .path = "/echo",
				    .if_none_match = "\"v1\"",
				    .on_done = on_done,
				    .arg = &n };
	http_submit(c, &rq);
	ok(run_until(4, 5000) == 0, "GET, POST, PUT, conditional GET finish");

	is_int(g.err, 0, "GET: no transport error");
	is_int(g.status, 200, "GET: status 200");
	is_str(g.body, "M:GET|A:Bearer " TOKEN "|C:-|X:-|",
	       "GET: method, bearer token, no content type, no Expect");
	is_str(g.etag, "\"v1\"", "GET: ETag captured");
	ok(g.sha256 == NULL && g.size == -1, "GET: absent cairn headers");

	is_int(p.status, 200, "POST: status 200");
	is_str(p.body, "M:POST|A:Bearer " TOKEN "|C:application/json|X:-|{\"a\":1}",
	       "POST: body and default JSON content type, no Expect");

	is_int(u.status, 200, "PUT: status 200");
	ok(u.len == sizeof("M:PUT|A:Bearer " TOKEN
			   "|C:application/octet-stream|X:-|") - 1 + 7 &&
		   !memcmp(u.body + u.len - 7, "abc\0def", 7),
	   "PUT: binary body with NUL and its content type");

	is_int(n.err, 0, "If-None-Match: no error");
	is_int(n.status, 304, "If-None-Match: 304");
	ok(n.body && n.len == 0, "If-None-Match: empty body");

	ok(http_set_token(c, "a\nb") == -EINVAL, "set_token refuses LF");
	ok(http_set_token(c, "fresh") == 0, "set_token");
	ndone = 0;
	submit(c, NULL, "/echo", NULL, &t);
	run_until(1, 5000);
	is_str(t.body, "M:GET|A:Bearer fresh|C:-|X:-|", "new token is sent");
	res_clear(&t);
	http_set_token(c, NULL);
	ndone = 0;
	submit(c, NULL, "/echo", NULL, &t);
	run_until(1, 5000);
	is_str(t.body, "M:GET|A:-|C:-|X:-|", "no token, no Authorization");
	http_set_token(c, TOKEN);

	res_clear(&g);
	res_clear(&p);
	res_clear(&u);
	res_clear(&n);
	res_clear(&t);
}

static void
test_status(struct http_client *c)
{
	struct http_request rq = { .method = "HEAD", .path = "/big",
				   .max_body = 10, .on_done = on_done };
	struct res a = { 0 }, b = { 0 }, h = { 0 }, d = { 0 };
	struct http_stats st;

	ndone = 0;
	submit(c, NULL, "/status/404", NULL, &a);
	submit(c, "POST", "/status/412", "{}", &b);
	rq.arg = &h;
	http_submit(c, &rq);
	submit(c, "DELETE", "/echo", NULL, &d);
	run_until(4, 5000);
	ok(h.err == 0 && h.status == 200 && h.len == 0,
	   "HEAD: 200, no body, max_body not applied to Content-Length");
	is_int(h.size, BIG_SIZE, "HEAD: X-Cairn-Size");
	is_str(d.body, "M:DELETE|A:Bearer " TOKEN "|C:-|X:-|", "DELETE");
	http_get_stats(c, &st);
	ok(st.bytes_out >= 7 + 7 + 2, "stats: request bodies counted (%" PRIu64
	   ")", st.bytes_out);
	res_clear(&h);
	res_clear(&d);
	ok(a.err == 0 && a.status == 404, "404 is a status, not an error");
	is_str(a.body, "{\"error\":404}", "404 JSON body delivered");
	ok(b.err == 0 && b.status == 412, "412 on POST");
	is_str(b.body, "{\"error\":412}", "412 JSON body delivered");
	res_clear(&a);
	res_clear(&b);
}

/* retry_ms: transport failures and 503 are tried again until the bound;
 * without it, once. */
static void
test_retry(struct http_client *c)
{
	struct http_request rq = { .method = "PUT", .path = "/flaky",
				   .body = "x", .body_len = 1,
				   .on_done = on_done, .retry_ms = 5000 };
	struct res a = { 0 }, b = { 0 }, z = { 0 }, k = { 0 };
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	struct http_client *rc;
	struct http_req *h;
	char url[64];
	uint64_t t0;
	int fd;

	ndone = 0;
	atomic_store(&flaky_left, 2);
	atomic_store(&flaky_seen, 0);
	rq.arg = &a;
	http_submit(c, &rq);
	run_until(1, 10000);
	ok(a.err == 0 && a.status == 200, "retry_ms: 503 twice, then 200 (%d %ld)",
	   a.err, (long)a.status);
	is_str(a.body, "ok", "retry_ms: the body of the last try only");
	is_int(atomic_load(&flaky_seen), 3, "retry_ms: three tries");

	ndone = 0;
	atomic_store(&flaky_left, 1);
	atomic_store(&flaky_seen, 0);
	submit(c, "PUT", "/flaky", "x", &b);
	run_until(1, 5000);
	ok(b.err == 0 && b.status == 503, "no retry_ms: the 503 is the answer");
	is_int(atomic_load(&flaky_seen), 1, "no retry_ms: one try");

	/* A closed port refuses each try until the bound, then the caller
	 * sees the refusal. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(fd, (struct sockaddr *)&sin, sizeof(sin));
	getsockname(fd, (struct sockaddr *)&sin, &sl);
	close(fd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(sin.sin_port));
	rc = client(2, url);
	ndone = 0;
	rq.arg = &z;
	rq.retry_ms = 400;
	t0 = util_now_ms();
	http_submit(rc, &rq);
	run_until(1, 5000);
	is_int(z.err, -ECONNREFUSED, "retry_ms on a closed port: -ECONNREFUSED");
	ok(util_now_ms() - t0 >= 150 && util_now_ms() - t0 < 3000,
	   "retry_ms: tried again for a while (%" PRIu64 " ms for 400)",
	   util_now_ms() - t0);

	/* A request waiting for its next try can be cancelled. */
	ndone = 0;
	rq.arg = &k;
	rq.retry_ms = 5000;
	h = http_submit(rc, &rq);
	run_for(100);
	http_cancel(rc, h);
	run_until(1, 2000);
	is_int(k.err, -ECANCELED, "retry_ms: cancelled between tries");
	http_free(rc);
	res_clear(&a);
	res_clear(&b);
	res_clear(&z);
	res_clear(&k);
}

static void
test_big(struct http_client *c)
{
	struct res r = { 0 };
	uint64_t t0;
	char sha[65];

	ndone = 0;
	t0 = util_now_ms();
	submit(c, NULL, "/big", NULL, &r);
	run_until(1, 20000);
	is_int(r.err, 0, "big: no error");
	is_int(r.status, 200, "big: 200");
	is_int(r.len, BIG_SIZE, "big: 8 MiB accumulated");
	ok(r.body && !memcmp(r.body, big, BIG_SIZE), "big: body intact");
	is_str(r.sha256, big_sha, "big: X-Cairn-SHA256 (lower-case name)");
	is_int(r.size, BIG_SIZE, "big: X-Cairn-Size (upper-case name)");
	is_str(r.etag, "\"big-1\"", "big: etag (lower-case name)");
	if (r.body) {
		sha256_hex(r.body, r.len, sha);
		is_str(sha, r.sha256, "big: body matches its SHA-256 header");
	} else {
		ok(0, "big: body matches its SHA-256 header");
	}
	diag("8 MiB accumulated in %" PRIu64 " ms", r.t_done - t0);
	res_clear(&r);
}

static void
test_stream(struct http_client *c)
{
	struct http_request rq = { .path = "/big", .on_data = on_data,
				   .on_done = on_done };
	struct res r = { .order_ok = 1 }, s = { .order_ok = 1 };

	ndone = 0;
	rq.arg = &r;
	http_submit(c, &rq);
	rq.path = "/slow";
	rq.arg = &s;
	rq.max_body = 100; /* does not apply to streams */
	http_submit(c, &rq);
	run_until(2, 20000);
	ok(r.err == 0 && r.status == 200, "stream big: ok");
	is_int(r.got, BIG_SIZE, "stream big: every byte");
	ok(r.order_ok, "stream big: bytes in order");
	ok(r.body == NULL && r.len == 0, "stream big: no accumulated body");
	is_str(r.sha256, big_sha, "stream big: headers still captured");
	ok(s.err == 0 && s.status == 200, "stream chunked: ok");
	is_int(s.got, SLOW_CHUNKS * SLOW_CHUNK, "stream chunked: every byte");
	ok(s.order_ok && s.calls >= 2, "stream chunked: in order, in pieces");
	diag("chunked stream came in %d calls", s.calls);
	res_clear(&r);
	res_clear(&s);
}

/* on_head: headers before the first body byte, once; nonzero aborts. */
struct head {
	int calls, data_before, abort;
	long status;
	char blocks[64], sha[65];
	int64_t size;
	struct res *r;
};

static int
on_head(void *arg, const struct http_result *hr)
{
	struct head *h = arg;

	h->calls++;
	h->data_before = h->r->calls;
	h->status = hr->status;
	h->size = hr->file_size;
	snprintf(h->blocks, sizeof(h->blocks), "%s",
		 hr->blocks ? hr->blocks : "(none)");
	snprintf(h->sha, sizeof(h->sha), "%s", hr->sha256 ? hr->sha256 : "");
	return h->abort;
}

static int
on_data_h(void *arg, const void *data, size_t len)
{
	return on_data(((struct head *)arg)->r, data, len);
}

static void
on_done_h(void *arg, const struct http_result *hr)
{
	struct head *h = arg;

	on_done(h->r, hr);
	is_str(hr->blocks, "crc32c 4096 0000abcd",
	       "head: X-Cairn-Blocks reaches the done callback too");
}

static void
test_head(struct http_client *c)
{
	struct res r = { .order_ok = 1 };
	struct head h = { .r = &r };
	struct http_request rq = { .path = "/big", .on_head = on_head,
				   .on_data = on_data_h, .on_done = on_done_h,
				   .arg = &h };

	ndone = 0;
	http_submit(c, &rq);
	run_until(1, 20000);
	ok(r.err == 0 && r.status == 200, "head: ok");
	is_int(h.calls, 1, "head: on_head called once");
	is_int(h.data_before, 0, "head: before any body byte");
	is_int(h.status, 200, "head: status known");
	is_str(h.blocks, "crc32c 4096 0000abcd", "head: X-Cairn-Blocks");
	is_str(h.sha, big_sha, "head: X-Cairn-SHA256");
	is_int(h.size, BIG_SIZE, "head: X-Cairn-Size");
	is_int(r.got, BIG_SIZE, "head: then every byte");
	res_clear(&r);

	ndone = 0;
	memset(&h, 0, sizeof(h));
	h.r = &r;
	h.abort = 1;
	r.order_ok = 1;
	http_submit(c, &rq);
	run_until(1, 20000);
	is_int(r.err, -ECANCELED, "head nonzero: -ECANCELED");
	ok(h.calls == 1 && r.calls == 0, "head nonzero: no data delivered");
	res_clear(&r);
}

static void
test_abort(struct http_client *c)
{
	struct http_request rq = { .path = "/big", .on_data = on_data,
				   .on_done = on_done };
	struct res a = { .order_ok = 1, .stop_after = 1 };
	struct res b = { .order_ok = 1 }, d = { 0 }, e = { 0 };
	struct res f = { .order_ok = 1, .cancel_self_after = 1 };

	ndone = 0;
	rq.arg = &a;
	http_submit(c, &rq);
	rq = (struct http_request){ .path = "/big", .max_body = 1 << 20,
				    .on_done = on_done, .arg = &b };
	http_submit(c, &rq);
	rq.path = "/slow";
	rq.max_body = 2500;
	rq.arg = &d;
	http_submit(c, &rq);
	rq = (struct http_request){ .path = "/big", .on_data = on_data,
				    .on_done = on_done, .arg = &f };
	f.c = c;
	f.handle = http_submit(c, &rq);
	submit(c, NULL, "/echo", NULL, &e);
	run_until(5, 10000);
	is_int(a.err, -ECANCELED, "on_data nonzero: -ECANCELED");
	ok(a.calls == 1 && a.got < BIG_SIZE, "on_data nonzero: no more data");
	is_int(b.err, -E2BIG, "max_body below Content-Length: -E2BIG");
	ok(b.body == NULL || b.len == 0, "max_body: nothing delivered");
	is_int(d.err, -E2BIG, "max_body on chunked body: -E2BIG");
	is_int(f.err, -ECANCELED, "http_cancel from own on_data: -ECANCELED");
	ok(f.calls == 1, "http_cancel from own on_data: no more data");
	ok(e.err == 0 && e.status == 200, "other transfers unaffected");
	res_clear(&a);
	res_clear(&b);
	res_clear(&d);
	res_clear(&e);
	res_clear(&f);
}

static void
test_errors(struct http_client *c)
{
	struct http_request rq = { .path = "/hang", .timeout_ms = 300,
				   .on_done = on_done };
	struct res t = { 0 }, x = { 0 }, y = { 0 }, z = { 0 }, s = { 0 };
	struct http_client *rc, *tls;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	char url[64];
	uint64_t t0;
	int fd;

	ndone = 0;
	rq.arg = &t;
	t0 = util_now_ms();
	http_submit(c, &rq);
	submit(c, NULL, "/trunc", NULL, &x);
	submit(c, NULL, "/drop", NULL, &y);
	run_until(3, 10000);
	is_int(t.err, -ETIMEDOUT, "per-request timeout: -ETIMEDOUT");
	ok(t.t_done - t0 >= 250 && t.t_done - t0 < 3000,
	   "timeout fired on time (%" PRIu64 " ms for 300)", t.t_done - t0);
	is_int(x.err, -EIO, "truncated body: -EIO");
	is_int(y.err, -EIO, "connection closed without reply: -EIO");

	/* A port that was just ours and is now closed refuses. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(fd, (struct sockaddr *)&sin, sizeof(sin));
	getsockname(fd, (struct sockaddr *)&sin, &sl);
	close(fd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(sin.sin_port));
	rc = client(2, url);
	ndone = 0;
	submit(rc, NULL, "/echo", NULL, &z);
	run_until(1, 5000);
	is_int(z.err, -ECONNREFUSED, "closed port: -ECONNREFUSED");
	is_int(z.status, 0, "closed port: status 0");
	http_free(rc);

	/* TLS to a plain-HTTP server fails in the handshake. */
	snprintf(url, sizeof(url), "https://127.0.0.1:%d", srv.port);
	tls = client(2, url);
	ndone = 0;
	submit(tls, NULL, "/echo", NULL, &s);
	run_until(1, 5000);
	is_int(s.err, -EPROTO, "TLS handshake failure: -EPROTO");
	http_free(tls);

	res_clear(&t);
	res_clear(&x);
	res_clear(&y);
	res_clear(&z);
	res_clear(&s);
}

static void
test_cancel(void)
{
	struct http_client *c = client(1, NULL);
	struct res a = { 0 }, b = { 0 }, d = { 0 }, e = { 0 };
	struct http_req *ha, *hb, *hd;
	struct http_stats st;

	ndone = 0;
	ha = submit(c, NULL, "/hang", NULL, &a);
	hb = submit(c, NULL, "/hang", NULL, &b);
	hd = submit(c, NULL, "/hang", NULL, &d);
	http_cancel(c, hd); /* still in the inbox */
	run_for(150);
	http_get_stats(c, &st);
	ok(st.active == 1 && st.queued == 1,
	   "max_parallel 1: one active, one queued (%u, %u)", st.active,
	   st.queued);
	ok(a.done == 0 && b.done == 0, "hung requests not done yet");
	is_int(d.err, -ECANCELED, "cancel before the loop saw it");
	http_cancel(c, hb); /* pending */
	http_cancel(c, hb); /* twice is harmless */
	ok(b.done == 0, "cancel does not call back from inside http_cancel");
	run_until(2, 2000);
	is_int(b.err, -ECANCELED, "cancel a queued request");
	http_cancel(c, ha); /* active */
	run_until(3, 2000);
	is_int(a.err, -ECANCELED, "cancel an active transfer");
	ok(a.done == 1 && b.done == 1 && d.done == 1, "each called back once");
	/* The slot is free again. */
	submit(c, NULL, "/echo", NULL, &e);
	run_until(4, 5000);
	ok(e.err == 0 && e.status == 200, "slot reused after cancel");
	http_free(c);
	res_clear(&a);
	res_clear(&b);
	res_clear(&d);
	res_clear(&e);
}

/* A probe marked probe_first (cairnd's reconnect ping) goes ahead of
 * probes queued before it (users' checkservers): with both probe slots
 * hung and two more user probes waiting, it runs as soon as a slot frees. */
static void
test_probe_first(void)
{
	struct http_client *c = client(1, NULL);
	struct res u[4] = { 0 }, f = { 0 };
	struct http_request rq = { .path = "/hang", .on_done = on_done,
				   .probe = 1 };
	struct http_req *h[4];
	struct http_stats st;

	ndone = 0;
	for (int i = 0; i < 4; i++) {
		rq.arg = &u[i];
		h[i] = http_submit(c, &rq);
	}
	run_for(150);
	rq.path = "/echo";
	rq.probe_first = 1;
	rq.arg = &f;
	ok(http_submit(c, &rq) != NULL, "a probe_first probe is accepted");
	run_for(100);
	http_get_stats(c, &st);
	ok(st.active == 2 && st.queued == 3 && f.done == 0,
	   "both probe slots hung, it waits with two user probes (%u, %u)",
	   st.active, st.queued);
	http_cancel(c, h[0]);
	run_until(2, 3000);
	ok(f.done == 1 && f.err == 0 && f.status == 200,
	   "it runs first once a slot frees (err %d)", f.err);
	ok(u[2].done == 0 && u[3].done == 0,
	   "the user probes queued before it still wait");
	for (int i = 1; i < 4; i++)
		http_cancel(c, h[i]);
	run_until(5, 3000);
	ok(u[1].err == -ECANCELED && u[2].err == -ECANCELED &&
		   u[3].err == -ECANCELED,
	   "the rest cancel cleanly");
	http_free(c);
	for (int i = 0; i < 4; i++)
		res_clear(&u[i]);
	res_clear(&f);
}

/* Probes (issue #12, Medium 5): with every read slot taken by transfers
 * to a server that does not answer, a probe still goes out at once, and
 * probes that hang themselves do not take the read slots. */
static void
test_probe_slot(void)
{
	struct http_client *c = client(1, NULL);
	struct res a = { 0 }, q = { 0 }, p1 = { 0 }, p2 = { 0 }, p3 = { 0 };
	struct res e = { 0 };
	struct http_request rq = { .path = "/echo", .on_done = on_done,
				   .probe = 1 };
	struct http_req *ha, *h1, *h2, *h3;
	struct http_stats st;

	ndone = 0;
	ha = submit(c, NULL, "/hang", NULL, &a); /* takes the one slot */
	submit(c, NULL, "/echo", NULL, &q);	 /* waits behind it */
	run_for(100);
	rq.arg = &p1;
	ok(http_submit(c, &rq) != NULL, "a probe is accepted");
	run_until(1, 3000);
	ok(p1.done == 1 && p1.err == 0 && p1.status == 200,
	   "the probe is answered while the read slot is taken (err %d)",
	   p1.err);
	ok(a.done == 0 && q.done == 0,
	   "the read still holds its slot, the queued one still waits");

	/* Probes that hang stay in their own slots: 2 at once, a third
	 * waits for one of them, reads are not held up by them. */
	http_cancel(c, ha);
	run_until(3, 3000);
	ok(q.done == 1 && q.err == 0, "the queued read ran once the slot freed");
	rq.path = "/hang";
	rq.arg = &p1;
	res_clear(&p1);
	h1 = http_submit(c, &rq);
	rq.arg = &p2;
	h2 = http_submit(c, &rq);
	rq.arg = &p3;
	h3 = http_submit(c, &rq);
	run_for(150);
	http_get_stats(c, &st);
	ok(st.active == 2 && st.queued == 1,
	   "two probes in transfer, the third queued (%u, %u)", st.active,
	   st.queued);
	ndone = 0;
	submit(c, NULL, "/echo", NULL, &e);
	run_until(1, 3000);
	ok(e.done == 1 && e.err == 0 && e.status == 200,
	   "a read goes through while probes hang");
	http_cancel(c, h3);
	http_cancel(c, h2);
	http_cancel(c, h1);
	run_until(4, 3000);
	ok(p1.err == -ECANCELED && p2.err == -ECANCELED &&
		   p3.err == -ECANCELED,
	   "hung and queued probes cancel cleanly");
	http_free(c);
	res_clear(&a);
	res_clear(&q);
	res_clear(&p1);
	res_clear(&p2);
	res_clear(&p3);
	res_clear(&e);
}

static void
test_parallel(void)
{
	enum { N = 64, P = 4 };
	struct http_client *c = client(P, NULL);
	struct res r[N];
	int i, good = 0, conns0 = atomic_load(&srv.conns);
	uint64_t t0 = util_now_ms();

	memset(r, 0, sizeof(r));
	atomic_store(&srv.max_inflight, 0);
	ndone = 0;
	for (i = 0; i < N; i++)
		submit(c, NULL, "/delay", NULL, &r[i]);
	ok(run_until(N, 20000) == 0, "%d parallel requests complete", N);
	for (i = 0; i < N; i++)
		good += r[i].err == 0 && r[i].status == 200 && r[i].done == 1 &&
			r[i].body && !strcmp(r[i].body, "ok");
	is_int(good, N, "all %d answered 200 once", N);
	ok(atomic_load(&srv.max_inflight) <= P &&
		   atomic_load(&srv.max_inflight) >= 2,
	   "server saw at most %d at once (%d)", P,
	   atomic_load(&srv.max_inflight));
	ok(atomic_load(&srv.conns) - conns0 <= P,
	   "at most %d connections for %d requests (%d)", P, N,
	   atomic_load(&srv.conns) - conns0);
	diag("%d x %d ms requests, %d wide: %" PRIu64 " ms", N, DELAY_MS, P,
	     util_now_ms() - t0);
	http_free(c);
	for (i = 0; i < N; i++)
		res_clear(&r[i]);
}

/* Each done callback submits the next request: sequential, keep-alive. */
static void
on_chain(void *arg, const struct http_result *hr)
{
	struct res *r = arg;
	struct http_request rq = { .path = "/blob/262144",
				   .on_done = on_chain, .arg = r };

	r->done++;
	if (hr->err || hr->status != 200 || hr->body_len != 262144 ||
	    memcmp(hr->body, big, 262144))
		r->err = hr->err ? hr->err : -EIO;
	if (--r->chain_left > 0 && !http_submit(r->c, &rq))
		r->err = -errno;
	ndone++;
}

static void
test_keepalive(void)
{
	enum { N = 40 };
	struct http_client *c = client(4, NULL);
	struct http_request rq = { .path = "/blob/262144",
				   .on_done = on_chain };
	struct res r = { .chain_left = N };
	int conns0 = atomic_load(&srv.conns), conns;
	uint64_t t0 = util_now_ms(), ms;

	r.c = c;
	rq.arg = &r;
	ndone = 0;
	http_submit(c, &rq);
	run_until(N, 20000);
	ms = util_now_ms() - t0;
	is_int(r.done, N, "%d sequential chunk GETs, each from the last callback", N);
	is_int(r.err, 0, "every chunk intact");
	conns = atomic_load(&srv.conns) - conns0;
	ok(conns >= 1 && conns <= 1, "keep-alive: %d connection(s) for %d requests",
	   conns, N);
	diag("sequential 256 KiB GETs: %.1f MiB/s",
	     ms ? N * 0.25 * 1000.0 / (double)ms : 0.0);
	http_free(c);
}

/* Wait (without running the client's loop) up to 10 s for the server to
 * have seen more than @before /seen requests: it runs on its own thread,
 * so only a loaded machine (CI, sanitizers) makes it take more than a
 * moment, and the wait ends as soon as it does. */
static bool
server_saw(int before)
{
	uint64_t end = util_now_ms() + 10000;

	while (atomic_load(&srv.seen) <= before && util_now_ms() < end)
		usleep(500);
	return atomic_load(&srv.seen) > before;
}

/* Each done callback submits the next request, sends it now, and waits
 * for the server to see it before it returns (mfetch.c's listing pages:
 * the server reads page k+1 while the client takes page k). */
static void
on_chain_now(void *arg, const struct http_result *hr)
{
	struct res *r = arg;
	struct http_request rq = {
		.path = "/seen", .on_done = on_chain_now, .arg = r};
	int before, done;

	r->done++;
	if (hr->err || hr->status != 200 || hr->body_len != 2 ||
	    memcmp(hr->body, "ok", 2))
		r->err = hr->err ? hr->err : -EIO;
	if (--r->chain_left > 0) {
		before = atomic_load(&srv.seen);
		if (!http_submit(r->c, &rq))
			r->err = -errno;
		done = r->done;
		http_send_now(r->c);
		/* No callback runs from inside it. */
		if (r->done != done)
			r->err = -EDEADLK;
		r->early += server_saw(before);
	}
	ndone++;
}

static void
test_send_now(void)
{
	enum { N = 6 };
	struct http_client *c = client(4, NULL);
	struct http_request rq = {.path = "/seen", .on_done = on_chain_now};
	struct res r = {.chain_left = N}, z;
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);
	char url[64];
	int before, fd;

	/* Outside a callback: out before the loop runs, called back after
	 * (on the connection the first request left open; a new one is only
	 * begun). */
	http_send_now(NULL);
	http_send_now(c);
	memset(&z, 0, sizeof(z));
	ndone = 0;
	submit(c, NULL, "/seen", NULL, &z);
	ok(run_until(1, 5000) == 0 && z.err == 0, "http_send_now: a first "
						  "request opens a connection");
	res_clear(&z);
	ndone = 0;
	before = atomic_load(&srv.seen);
	submit(c, NULL, "/seen", NULL, &z);
	http_send_now(c);
	ok(server_saw(before), "http_send_now: the server has the request "
			       "before the loop ran");
	is_int(z.done, 0, "http_send_now: no callback from inside it");
	ok(run_until(1, 5000) == 0 && z.done == 1 && z.err == 0 &&
		   z.status == 200,
	   "http_send_now: the reply comes through the loop, once");
	res_clear(&z);

	/* From done callbacks, a chain. */
	r.c = c;
	rq.arg = &r;
	ndone = 0;
	http_submit(c, &rq);
	run_until(N, 20000);
	is_int(r.done, N,
	       "%d chained requests, each sent now from the last "
	       "callback",
	       N);
	is_int(r.err, 0,
	       "every reply intact, no callback run from inside "
	       "http_send_now");
	is_int(r.early, N - 1,
	       "each next request reached the server before "
	       "the callback that sent it returned");
	http_free(c);

	/* A transfer that fails at once is still called back from the
	 * loop: a closed port. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(fd, (struct sockaddr *)&sin, sizeof(sin));
	getsockname(fd, (struct sockaddr *)&sin, &sl);
	close(fd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(sin.sin_port));
	c = client(2, url);
	memset(&z, 0, sizeof(z));
	ndone = 0;
	submit(c, NULL, "/seen", NULL, &z);
	http_send_now(c);
	is_int(z.done, 0, "http_send_now on a closed port: no callback yet");
	ok(run_until(1, 5000) == 0 && z.done == 1 && z.err == -ECONNREFUSED,
	   "http_send_now on a closed port: -ECONNREFUSED from the loop");
	http_free(c);
	res_clear(&z);
}

struct thr {
	pthread_t tid;
	struct http_client *c;
	int id;
	struct res r[50];
	char path[50][32];
	int submit_fail;
};

static void *
thr_main(void *arg)
{
	struct thr *t = arg;
	int i;

	for (i = 0; i < 50; i++) {
		snprintf(t->path[i], sizeof(t->path[i]), "/blob/%d",
			 1000 + t->id * 100 + i);
		if (!submit(t->c, NULL, t->path[i], NULL, &t->r[i]))
			t->submit_fail++;
		if (i % 7 == 0)
			usleep(1000);
	}
	return NULL;
}

/* Four threads submit while this one runs the loop. */
static void
test_threads(void)
{
	struct http_client *c = client(8, NULL);
	struct thr *t = calloc(4, sizeof(*t));
	int i, j, good = 0, fails = 0, started = 0;
	struct http_stats st;

	ndone = 0;
	for (i = 0; i < 4; i++) {
		t[i].c = c;
		t[i].id = i;
		started += !pthread_create(&t[i].tid, NULL, thr_main, &t[i]);
	}
	is_int(started, 4, "4 submitting threads started");
	ok(run_until(200, 20000) == 0, "200 requests from 4 threads complete");
	for (i = 0; i < 4; i++)
		pthread_join(t[i].tid, NULL);
	for (i = 0; i < 4; i++) {
		fails += t[i].submit_fail;
		for (j = 0; j < 50; j++) {
			size_t n = 1000 + i * 100 + j;

			good += t[i].r[j].done == 1 && t[i].r[j].err == 0 &&
				t[i].r[j].len == n &&
				!memcmp(t[i].r[j].body, big, n);
			res_clear(&t[i].r[j]);
		}
	}
	is_int(fails, 0, "no submission refused");
	is_int(good, 200, "each thread's requests got their own answers");
	http_get_stats(c, &st);
	ok(st.requests == 200 && st.failures == 0 && st.active == 0 &&
		   st.queued == 0,
	   "stats: 200 requests, 0 failures, idle");
	ok(st.bytes_in >= 200 * 1000, "stats: bytes in counted (%" PRIu64 ")",
	   st.bytes_in);
	http_free(c);
	free(t);
}

/* A done callback run by http_free() tries to submit again. */
static void
on_done_resubmit(void *arg, const struct http_result *hr)
{
	struct res *r = arg;
	struct http_request rq = { .path = "/echo", .on_done = on_done,
				   .arg = r };

	on_done(arg, hr);
	if (hr->err != -ECANCELED)
		return;
	if (http_submit(r->c, &rq))
		r->submit_errno = -1;
	else
		r->submit_errno = errno;
}

static void
test_free_in_flight(void)
{
	enum { N = 18 };
	struct http_client *c = client(4, NULL);
	struct http_request rq = { .on_done = on_done_resubmit };
	static const char *paths[] = { "/hang", "/big", "/slow" };
	struct res r[N];
	int i, once = 0, cancelled = 0, resub = 0;

	memset(r, 0, sizeof(r));
	ndone = 0;
	for (i = 0; i < 15; i++) {
		r[i].c = c;
		rq.path = paths[i % 3];
		rq.arg = &r[i];
		http_submit(c, &rq);
	}
	run_for(30);
	for (; i < N; i++) {
		r[i].c = c;
		rq.path = "/echo";
		rq.arg = &r[i];
		http_submit(c, &rq);
	}
	http_free(c);
	for (i = 0; i < N; i++) {
		once += r[i].done == 1;
		cancelled += r[i].err == -ECANCELED;
		resub += r[i].submit_errno == ESHUTDOWN;
		res_clear(&r[i]);
	}
	is_int(once, N, "http_free: every request called back once");
	ok(cancelled >= 8, "http_free: unfinished ones got -ECANCELED (%d)",
	   cancelled);
	is_int(resub, cancelled,
	       "http_free: submit from a callback gets ESHUTDOWN");
}

int
main(void)
{
	struct event *tk;
	struct timeval tv = { 0, 10000 };
	struct http_client *c;
	size_t i;
	const char *dbg = getenv("CAIRN_TEST_DEBUG");

	signal(SIGPIPE, SIG_IGN);
	log_init("test_http", 0, dbg ? LOG_DEBUG : LOG_WARNING);
	/* Needed for the server thread; the client does not require it. */
	evthread_use_pthreads();

	big = malloc(BIG_SIZE);
	for (i = 0; i < BIG_SIZE; i++)
		big[i] = (unsigned char)(i * 2654435761u >> 13);
	sha256_hex(big, BIG_SIZE, big_sha);

	plan(0);
	if (srv_start() < 0) {
		diag("cannot start the test server");
		ok(0, "server started");
		return done_testing();
	}
	snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%d/", srv.port);
	base = event_base_new();
	tk = event_new(base, -1, EV_PERSIST, tick, NULL);
	event_add(tk, &tv);

	test_new_bad();
	c = client(4, NULL);
	ok(c != NULL, "http_new");
	test_submit_bad(c);
	test_roundtrips(c);
	test_status(c);
	test_big(c);
	test_stream(c);
	test_head(c);
	test_abort(c);
	test_errors(c);
	test_retry(c);
	http_free(c);
	test_cancel();
	test_probe_slot();
	test_probe_first();
	test_parallel();
	test_keepalive();
	test_send_now();
	test_threads();
	test_free_in_flight();
	test_proxy();

	event_free(tk);
	event_base_free(base);
	srv_stop();
	free(big);
	libevent_global_shutdown();
	return done_testing();
}
