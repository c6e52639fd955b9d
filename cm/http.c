/*
 * http.c - cairnd's HTTP client: libcurl's multi-socket interface driven by
 * a libevent loop, so many transfers share one thread and a pool of
 * keep-alive connections without blocking it.
 *
 * It is not a protocol layer: it knows nothing of volumes, chunks or JSON.
 * It moves bytes, applies limits and timeouts, turns curl's CURLcode into a
 * negative errno, and calls back on the loop thread.
 *
 * How a request travels. http_submit() (any thread) copies the request into
 * one allocation and appends it to the inbox under c->lock, then writes to an
 * eventfd if the loop has not been woken yet. The loop drains the inbox into
 * the pending FIFO; at most max_parallel "limited" transfers are handed to
 * curl at once (streams, i.e. no_timeout requests, are not limited: they live
 * for hours and must not eat a slot). curl tells us which sockets to watch
 * (sock_cb) and when to wake it (timer_cb); each socket gets one event, and
 * every event ends in curl_multi_socket_action() followed by draining
 * curl_multi_info_read(). A finished or cancelled request moves to the done
 * list, whose callbacks run from one place (run_done) so that a callback is
 * never entered from inside another of our functions' half-done state.
 * http_send_now() (loop thread) takes the inbox and runs curl's timeout at
 * once, so a request submitted from a done callback is on the wire before
 * that callback goes on with other work.
 *
 * curl forbids removing an easy handle from inside its own callbacks. While
 * we are inside curl (c->in_curl), http_cancel() only flags the request; the
 * write callback then aborts the transfer, and the kick event removes any
 * flagged transfer that did not get that far.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "cm/http.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/util.h"

#define HTTP_DEFAULT_PARALLEL 16
#define HTTP_MAX_PARALLEL 1024
#define HTTP_DEFAULT_CONNECT_MS 3000
#define HTTP_DEFAULT_MAX_BODY ((size_t)64 << 20)
/* Connections curl may open beyond max_parallel, for streams. */
#define HTTP_STREAM_HEADROOM 4
/* Probes (pings) in transfer at once, outside max_parallel: a server that
 * does not answer must not park its probes in the slots reads need, nor
 * probes wait behind a queue of reads to find out. */
#define HTTP_PROBE_PARALLEL 2
/* Bytes per recv() and per write callback. On loopback, 8 MiB streamed went
 * from ~1.0 GiB/s with curl's default 16 KiB to ~1.25 GiB/s with 128 KiB;
 * larger gained nothing. Pooled handles keep the buffer between requests. */
#define HTTP_RECV_BUFFER (128 * 1024)
/* Longest header value we keep (ETag, X-Cairn-SHA256, X-Cairn-Blocks);
 * longer is ignored. */
#define HTTP_MAX_HEADER_VALUE 1024
/* A Content-Length sizes the body buffer up front, but a server's word is
 * trusted only this far; a bigger body grows the buffer as it arrives. */
#define HTTP_MAX_PREALLOC ((size_t)16 << 20)
/* retry_ms: the first wait after a failed try, doubled up to the cap. */
#define HTTP_RETRY_FIRST_MS 50
#define HTTP_RETRY_MAX_MS 1000

#ifdef CURL_WRITEFUNC_ERROR
#define HTTP_WRITE_ABORT CURL_WRITEFUNC_ERROR
#else
#define HTTP_WRITE_ABORT 0
#endif

enum req_state {
	REQ_INBOX,   /* on c->inbox, owned by whoever holds c->lock */
	REQ_PENDING, /* on c->pending, waiting for a slot */
	REQ_ACTIVE,  /* on c->active, added to the multi handle */
	REQ_DONE,    /* on c->done, callback not run yet */
	REQ_RETRY,   /* on c->retry, its retry_ev armed (retry_ms) */
};

TAILQ_HEAD(req_list, http_req);

struct http_req {
	TAILQ_ENTRY(http_req) link; /* in exactly one list of its state */
	enum req_state state;
	int cancelled;	/* http_cancel() or http_free() asked for it */
	int limited;	/* counts against max_parallel */
	int probe;	/* a probe: counts against HTTP_PROBE_PARALLEL */
	int probe_first; /* a probe queued ahead of other probes */
	int abort_err;	/* why our callback stopped the transfer, or 0 */
	uint64_t retry_until; /* util_now_ms() bound of retries, 0: none */
	unsigned retry_wait;  /* ms before the next try */
	struct event *retry_ev;
	struct http_client *c;
	int err;	/* final result */
	CURL *easy;
	struct curl_slist *headers;

	/* The copied request; the strings live in the same allocation. */
	const char *method;
	const char *url;
	const char *path; /* points into url, for log lines */
	const char *content_type;
	const char *if_none_match;
	const char *body;
	size_t body_len;
	unsigned timeout_ms;
	int no_timeout;
	size_t max_body;
	http_head_fn on_head;
	http_data_fn on_data;
	http_done_fn on_done;
	void *arg;

	/* The response. */
	long status;
	char *buf; /* accumulated body, NUL-terminated */
	size_t len;
	size_t cap;
	char *etag;
	char *sha256;
	char *blocks;
	int64_t file_size;
	int head_seen;	/* on_head ran (before the first body byte) */
	char errbuf[CURL_ERROR_SIZE];
};

struct http_sock {
	LIST_ENTRY(http_sock) link;
	struct event *ev;
};

struct http_client {
	struct event_base *base;
	CURLM *multi;
	struct event *timer_ev; /* curl's timeout */
	struct event *wake_ev;	/* wake_fd readable: other threads submitted */
	struct event *kick_ev;	/* loop-thread work: cancels, deferred runs */
	int wake_fd;

	char *base_url;
	char *ca_file;
	char *proxy; /* or NULL: none */
	int insecure;
	unsigned max_parallel;
	unsigned connect_timeout_ms;
	unsigned timeout_ms;
	unsigned low_speed_ms;

	pthread_mutex_t lock;
	struct req_list inbox; /* protected by lock */
	int wake_pending;      /* protected by lock */
	int closing;	       /* protected by lock */
	char *token;	       /* protected by lock */

	/* Loop thread only. */
	struct req_list pending;
	struct req_list probes; /* probes waiting for a probe slot */
	struct req_list active;
	struct req_list done;
	struct req_list retry; /* waiting to be tried again (REQ_RETRY) */
	unsigned nlimited;   /* limited transfers on c->active */
	unsigned nprobes;    /* probes on c->active */
	int in_curl;	     /* depth of calls into curl that run callbacks */
	int cancel_deferred; /* a flagged transfer may sit on c->active */
	int running_done;
	LIST_HEAD(, http_sock) socks;
	CURL **pool; /* reset easy handles, kept for their buffers */
	unsigned npool;
	unsigned pool_max;

	/* Counters: atomics, written by the loop (and submitters), read by
	 * anyone through http_get_stats(). */
	http_gate_fn gate; /* set before use; read without the lock */
	void *gate_arg;
	_Atomic uint64_t st_requests;
	_Atomic uint64_t st_failures;
	_Atomic uint64_t st_bytes_in;
	_Atomic uint64_t st_bytes_out;
	_Atomic unsigned st_active;
	_Atomic unsigned st_queued;
};

static void process(struct http_client *c);
static void transfer_start(struct http_client *c, struct http_req *req);
static void drive(struct http_client *c, curl_socket_t fd, int flags);

static void
stat_add(_Atomic uint64_t *v, uint64_t n)
{
	atomic_fetch_add_explicit(v, n, memory_order_relaxed);
}

/* ---- validation and copying ------------------------------------------- */

/* True if @s is a header value we can send: no control characters, so no
 * header can be smuggled in through CR/LF. */
static int
header_value_ok(const char *s)
{
	size_t n = 0;

	for (; *s; s++, n++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return 0;
	}
	return n <= HTTP_MAX_HEADER_VALUE;
}

/* Paths must come percent-encoded: printable ASCII without space or '#'. */
static int
path_ok(const char *s)
{
	if (s[0] != '/')
		return 0;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch <= 0x20 || ch >= 0x7f || ch == '#')
			return 0;
	}
	return 1;
}

static int
method_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 16)
		return 0;
	for (; *s; s++)
		if (*s < 'A' || *s > 'Z')
			return 0;
	return 1;
}

/* Copy @src to @dst, advance @dst; returns where the copy starts. */
static const char *
put_str(char **dst, const char *src, size_t len)
{
	char *p = *dst;

	memcpy(p, src, len);
	p[len] = '\0';
	*dst += len + 1;
	return p;
}

static struct http_req *
req_new(struct http_client *c, const struct http_request *r)
{
	const char *method = r->method ? r->method : "GET";
	size_t blen = strlen(c->base_url), plen = strlen(r->path);
	size_t mlen = strlen(method);
	size_t clen = r->content_type ? strlen(r->content_type) : 0;
	size_t ilen = r->if_none_match ? strlen(r->if_none_match) : 0;
	struct http_req *req;
	char *p;

	req = calloc(1, sizeof(*req) + mlen + 1 + blen + plen + 1 + clen + 1 +
				ilen + 1 + r->body_len);
	if (!req)
		return NULL;
	p = (char *)(req + 1);
	req->method = put_str(&p, method, mlen);
	/* url is base_url followed by the path, one string. */
	req->url = p;
	memcpy(p, c->base_url, blen);
	p += blen;
	req->path = put_str(&p, r->path, plen);
	if (r->content_type)
		req->content_type = put_str(&p, r->content_type, clen);
	if (r->if_none_match)
		req->if_none_match = put_str(&p, r->if_none_match, ilen);
	if (r->body_len) {
		memcpy(p, r->body, r->body_len);
		req->body = p;
		req->body_len = r->body_len;
	}
	req->timeout_ms = r->timeout_ms ? r->timeout_ms : c->timeout_ms;
	req->no_timeout = r->no_timeout;
	req->probe = r->probe && !r->no_timeout;
	req->probe_first = req->probe && r->probe_first;
	req->limited = !r->no_timeout && !req->probe;
	req->max_body = r->max_body ? r->max_body : HTTP_DEFAULT_MAX_BODY;
	req->on_head = r->on_head;
	req->on_data = r->on_data;
	req->on_done = r->on_done;
	req->arg = r->arg;
	req->file_size = -1;
	req->c = c;
	if (r->retry_ms) {
		req->retry_until = util_now_ms() + r->retry_ms;
		req->retry_wait = HTTP_RETRY_FIRST_MS;
	}
	return req;
}

static void
pool_put(struct http_client *c, CURL *easy)
{
	if (!easy)
		return;
	if (c->npool < c->pool_max) {
		curl_easy_reset(easy);
		c->pool[c->npool++] = easy;
		return;
	}
	curl_easy_cleanup(easy);
}

static void
req_free(struct http_client *c, struct http_req *req)
{
	if (req->retry_ev)
		event_free(req->retry_ev);
	pool_put(c, req->easy);
	curl_slist_free_all(req->headers);
	free(req->buf);
	free(req->etag);
	free(req->sha256);
	free(req->blocks);
	free(req);
}

/* ---- finishing ----------------------------------------------------------- */

/* Move @req to the done list with @err; its callback runs from run_done(). */
static void
finish(struct http_client *c, struct http_req *req, int err)
{
	if (req->cancelled)
		err = -ECANCELED;
	req->err = err;
	req->state = REQ_DONE;
	TAILQ_INSERT_TAIL(&c->done, req, link);
	if (err && err != -ECANCELED)
		stat_add(&c->st_failures, 1);
}

/* Run the callbacks of finished requests, oldest first. A callback may
 * submit or cancel; whatever that finishes is picked up by this same loop,
 * never by a nested one. */
static void
run_done(struct http_client *c)
{
	struct http_result res;
	struct http_req *req;

	if (c->running_done)
		return;
	c->running_done = 1;
	while ((req = TAILQ_FIRST(&c->done))) {
		TAILQ_REMOVE(&c->done, req, link);
		memset(&res, 0, sizeof(res));
		res.err = req->err;
		res.status = req->status;
		/* A failed transfer's partial body is not handed out: it is
		 * too easy to mistake for the real thing. */
		if (!req->on_data && !req->err) {
			res.body = req->buf ? req->buf : "";
			res.body_len = req->len;
		}
		res.etag = req->etag;
		res.sha256 = req->sha256;
		res.blocks = req->blocks;
		res.file_size = req->file_size;
		req->on_done(req->arg, &res);
		req_free(c, req);
	}
	c->running_done = 0;
}

static int
map_curl_error(struct http_req *req, CURLcode rc)
{
	long oserr = 0;

	if (rc == CURLE_OK)
		return 0;
	if (req->abort_err)
		return req->abort_err;
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
		/* curl says "could not connect" for refusals and for
		 * unreachable networks alike; the socket's errno tells. */
		curl_easy_getinfo(req->easy, CURLINFO_OS_ERRNO, &oserr);
		if (oserr == EHOSTUNREACH || oserr == ENETUNREACH ||
		    oserr == ETIMEDOUT)
			return -(int)oserr;
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_ABORTED_BY_CALLBACK:
		return -ECANCELED;
	case CURLE_FILESIZE_EXCEEDED:
		return -E2BIG;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return -EINVAL;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_USE_SSL_FAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
#if LIBCURL_VERSION_NUM >= 0x074d00
	case CURLE_SSL_CLIENTCERT:
#endif
		return -EPROTO;
	default:
		return -EIO;
	}
}

/* ---- retries (http_request.retry_ms) ------------------------------------- */

static void retry_ev_cb(evutil_socket_t fd, short what, void *arg);

/* Is @err/@req->status a failure of the transport, which a request whose
 * result does not depend on how often it arrived may simply try again? */
static int
transport_failure(const struct http_req *req, int err)
{
	switch (err) {
	case 0:
		return req->status == 502 || req->status == 503 ||
		       req->status == 504;
	case -ECONNREFUSED:
	case -ECONNRESET:
	case -ETIMEDOUT:
	case -EHOSTUNREACH:
	case -ENETUNREACH:
	case -EIO: /* curl's send and receive errors, an empty reply */
		return 1;
	default:
		return 0;
	}
}

/*
 * After transfer_end() took @req out of curl: if it asked for retries and
 * failed in transport, and there is time left, park it on c->retry for
 * the next try (the response so far is dropped) and return 1. Not once
 * body bytes went to an on_data consumer (it cannot take them twice).
 */
static int
retry_later(struct http_client *c, struct http_req *req, int err)
{
	struct timeval tv;
	uint64_t now;

	if (!req->retry_until || req->cancelled || !transport_failure(req, err) ||
	    (req->on_data && req->head_seen))
		return 0;
	now = util_now_ms();
	if (now + req->retry_wait >= req->retry_until)
		return 0;
	pthread_mutex_lock(&c->lock);
	if (c->closing) {
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	pthread_mutex_unlock(&c->lock);
	if (!req->retry_ev &&
	    !(req->retry_ev = evtimer_new(c->base, retry_ev_cb, req)))
		return 0;
	tv.tv_sec = req->retry_wait / 1000;
	tv.tv_usec = (req->retry_wait % 1000) * 1000;
	if (evtimer_add(req->retry_ev, &tv) < 0)
		return 0;
	log_debug(LOG_HTTP, "%s '%s' again in %u ms", req->method, req->path,
		  req->retry_wait);
	req->retry_wait = req->retry_wait * 2 > HTTP_RETRY_MAX_MS
				  ? HTTP_RETRY_MAX_MS
				  : req->retry_wait * 2;
	/* A fresh start: transfer_start() makes the handle and headers. */
	pool_put(c, req->easy);
	req->easy = NULL;
	curl_slist_free_all(req->headers);
	req->headers = NULL;
	req->status = 0;
	req->len = 0;
	free(req->etag);
	free(req->sha256);
	free(req->blocks);
	req->etag = req->sha256 = req->blocks = NULL;
	req->file_size = -1;
	req->head_seen = 0;
	req->abort_err = 0;
	req->errbuf[0] = '\0';
	req->state = REQ_RETRY;
	TAILQ_INSERT_TAIL(&c->retry, req, link);
	return 1;
}

static void
retry_ev_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_req *req = arg;
	struct http_client *c = req->c;

	(void)fd;
	(void)what;
	if (req->state != REQ_RETRY)
		return;
	TAILQ_REMOVE(&c->retry, req, link);
	if (req->limited || req->probe) {
		req->state = REQ_PENDING;
		atomic_fetch_add_explicit(&c->st_queued, 1,
					  memory_order_relaxed);
		TAILQ_INSERT_TAIL(req->probe ? &c->probes : &c->pending, req,
				  link);
	} else {
		transfer_start(c, req);
	}
	process(c);
}

/* Take an active transfer out of curl and finish it. Not from inside a curl
 * callback. */
static void
transfer_end(struct http_client *c, struct http_req *req, CURLcode rc)
{
	curl_off_t up = 0;
	int err;

	curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &req->status);
	if (curl_easy_getinfo(req->easy, CURLINFO_SIZE_UPLOAD_T, &up) ==
		    CURLE_OK &&
	    up > 0)
		stat_add(&c->st_bytes_out, (uint64_t)up);
	err = map_curl_error(req, rc);
	curl_multi_remove_handle(c->multi, req->easy);
	TAILQ_REMOVE(&c->active, req, link);
	if (req->limited)
		c->nlimited--;
	if (req->probe)
		c->nprobes--;
	atomic_fetch_sub_explicit(&c->st_active, 1, memory_order_relaxed);
	if (err && !req->cancelled)
		log_debug(LOG_HTTP, "cannot %s '%s': %s (%s)", req->method,
			  req->path, strerror(-err),
			  req->errbuf[0] ? req->errbuf : curl_easy_strerror(rc));
	if (retry_later(c, req, err))
		return;
	finish(c, req, err);
}

/* ---- curl callbacks (run inside curl: c->in_curl > 0) ------------------- */

static int
buf_reserve(struct http_req *req, size_t need)
{
	size_t cap;
	char *p;

	if (need + 1 <= req->cap)
		return 0;
	cap = req->cap ? req->cap : 16384;
	while (cap < need + 1)
		cap *= 2;
	if (cap > req->max_body + 1)
		cap = req->max_body + 1;
	if (cap < need + 1)
		return -E2BIG;
	p = realloc(req->buf, cap);
	if (!p)
		return -ENOMEM;
	req->buf = p;
	req->cap = cap;
	return 0;
}

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct http_req *req = arg;
	size_t len = size * nmemb;
	int rc;

	if (req->cancelled)
		return HTTP_WRITE_ABORT;
	stat_add(&req->c->st_bytes_in, len);
	if (req->on_head && !req->head_seen) {
		/* The headers are complete once the body starts. */
		struct http_result res = {0};

		req->head_seen = 1;
		curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE,
				  &res.status);
		res.etag = req->etag;
		res.sha256 = req->sha256;
		res.blocks = req->blocks;
		res.file_size = req->file_size;
		if (req->on_head(req->arg, &res)) {
			req->abort_err = -ECANCELED;
			return HTTP_WRITE_ABORT;
		}
		if (req->cancelled)
			return HTTP_WRITE_ABORT;
	}
	if (req->on_data) {
		/* Streaming hands curl's own buffer through: no copy here. */
		if (req->on_data(req->arg, data, len)) {
			req->abort_err = -ECANCELED;
			return HTTP_WRITE_ABORT;
		}
		if (req->cancelled)
			return HTTP_WRITE_ABORT;
	} else {
		if (len > req->max_body - req->len) {
			req->abort_err = -E2BIG;
			return HTTP_WRITE_ABORT;
		}
		rc = buf_reserve(req, req->len + len);
		if (rc < 0) {
			req->abort_err = rc;
			return HTTP_WRITE_ABORT;
		}
		memcpy(req->buf + req->len, data, len);
		req->len += len;
		req->buf[req->len] = '\0';
	}
	return len;
}

/* Keep a copy of a header value; an over-long one counts as absent. */
static void
keep_value(char **dst, const char *v, size_t len)
{
	free(*dst);
	*dst = NULL;
	if (len > HTTP_MAX_HEADER_VALUE)
		return;
	*dst = strndup(v, len);
}

/* A strict non-negative decimal, or -1. */
static int64_t
parse_size(const char *v, size_t len)
{
	int64_t n = 0;
	size_t i;

	if (len == 0 || len > 19)
		return -1;
	for (i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		if (n > (INT64_MAX - (v[i] - '0')) / 10)
			return -1;
		n = n * 10 + (v[i] - '0');
	}
	return n;
}

static int
name_is(const char *name, size_t nlen, const char *want)
{
	return nlen == strlen(want) && !strncasecmp(name, want, nlen);
}

static size_t
header_cb(char *line, size_t size, size_t nmemb, void *arg)
{
	struct http_req *req = arg;
	size_t len = size * nmemb, nlen;
	const char *colon, *v, *end;
	int64_t n;

	if (len >= 5 && !memcmp(line, "HTTP/", 5)) {
		/* A new status line: forget what an interim reply said. */
		free(req->etag);
		free(req->sha256);
		free(req->blocks);
		req->etag = req->sha256 = req->blocks = NULL;
		req->file_size = -1;
		return len;
	}
	colon = memchr(line, ':', len);
	if (!colon)
		return len;
	nlen = colon - line;
	v = colon + 1;
	end = line + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' ||
			   end[-1] == ' ' || end[-1] == '\t'))
		end--;

	if (name_is(line, nlen, "ETag")) {
		keep_value(&req->etag, v, end - v);
	} else if (name_is(line, nlen, "X-Cairn-SHA256")) {
		keep_value(&req->sha256, v, end - v);
	} else if (name_is(line, nlen, "X-Cairn-Blocks")) {
		keep_value(&req->blocks, v, end - v);
	} else if (name_is(line, nlen, "X-Cairn-Size")) {
		req->file_size = parse_size(v, end - v);
	} else if (name_is(line, nlen, "Content-Length") && !req->on_data &&
		   strcmp(req->method, "HEAD")) {
		/* Refuse an oversized body before it arrives, and size the
		 * buffer once so the body is copied exactly once. */
		n = parse_size(v, end - v);
		if (n < 0)
			return len;
		if ((uint64_t)n > req->max_body) {
			req->abort_err = -E2BIG;
			return HTTP_WRITE_ABORT;
		}
		if ((uint64_t)n > HTTP_MAX_PREALLOC)
			n = HTTP_MAX_PREALLOC;
		if (buf_reserve(req, (size_t)n) < 0) {
			req->abort_err = -ENOMEM;
			return HTTP_WRITE_ABORT;
		}
	}
	return len;
}

static void
sock_ev_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_client *c = arg;
	int flags = 0;

	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	drive(c, fd, flags);
}

static void
sock_free(struct http_sock *hs)
{
	LIST_REMOVE(hs, link);
	event_free(hs->ev);
	free(hs);
}

static int
sock_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct http_client *c = userp;
	struct http_sock *hs = socketp;
	short kind = EV_PERSIST;

	if (what == CURL_POLL_REMOVE) {
		if (hs)
			sock_free(hs);
		curl_multi_assign(c->multi, s, NULL);
		return 0;
	}
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	if (!hs) {
		hs = calloc(1, sizeof(*hs));
		if (!hs)
			return -1;
		hs->ev = event_new(c->base, s, kind, sock_ev_cb, c);
		if (!hs->ev) {
			free(hs);
			return -1;
		}
		LIST_INSERT_HEAD(&c->socks, hs, link);
		curl_multi_assign(c->multi, s, hs);
	} else {
		event_del(hs->ev);
		event_assign(hs->ev, c->base, s, kind, sock_ev_cb, c);
	}
	if (event_add(hs->ev, NULL) < 0)
		return -1;
	return 0;
}

static int
timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct http_client *c = userp;
	struct timeval tv;

	/* curl forbids calling curl_multi_socket_action() from here, so even
	 * a zero timeout goes through the loop. */
	if (timeout_ms < 0) {
		evtimer_del(c->timer_ev);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	return evtimer_add(c->timer_ev, &tv) < 0 ? -1 : 0;
}

/* ---- the loop side -------------------------------------------------------- */

/* Move curl's finished transfers to the done list. */
static void
collect(struct http_client *c)
{
	struct http_req *req;
	CURLMsg *msg;
	CURLcode rc;
	CURL *easy;
	char *priv;
	int left;

	while ((msg = curl_multi_info_read(c->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		/* msg dies with curl_multi_remove_handle(): copy first. */
		easy = msg->easy_handle;
		rc = msg->data.result;
		priv = NULL;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
		req = (struct http_req *)priv;
		assert(req && req->easy == easy && req->state == REQ_ACTIVE);
		transfer_end(c, req, rc);
	}
}

/* Drain curl's finished transfers, fill the free slots, run callbacks. */
static void
reap(struct http_client *c)
{
	collect(c);
	process(c);
}

static void
drive(struct http_client *c, curl_socket_t fd, int flags)
{
	CURLMcode mc;
	int running;

	c->in_curl++;
	mc = curl_multi_socket_action(c->multi, fd, flags, &running);
	c->in_curl--;
	if (mc != CURLM_OK)
		log_warn(LOG_HTTP, "cannot drive transfers: %s",
			 curl_multi_strerror(mc));
	reap(c);
}

static void
timer_ev_cb(evutil_socket_t fd, short what, void *arg)
{
	drive(arg, CURL_SOCKET_TIMEOUT, 0);
}

/* Hand @req to curl. On failure it is finished with an error. */
static void
transfer_start(struct http_client *c, struct http_req *req)
{
	char auth[64 + HTTP_MAX_HEADER_VALUE], line[32 + HTTP_MAX_HEADER_VALUE];
	int post = req->body_len > 0 || !strcmp(req->method, "POST") ||
		   !strcmp(req->method, "PUT") || !strcmp(req->method, "PATCH");
	struct curl_slist *h;
	CURLcode cc = CURLE_OK;
	CURL *easy;
	int err = -ENOMEM;

#define SET(opt, val)                                                       \
	do {                                                                \
		if ((cc = curl_easy_setopt(easy, opt, val)) != CURLE_OK)    \
			goto out;                                           \
	} while (0)
#define ADD_HEADER(s)                                                       \
	do {                                                                \
		if (!(h = curl_slist_append(req->headers, (s))))            \
			goto out;                                           \
		req->headers = h;                                           \
	} while (0)

	easy = c->npool ? c->pool[--c->npool] : curl_easy_init();
	if (!easy)
		goto out;
	req->easy = easy;

	/* Headers first; "Expect:" stops curl from waiting for 100-continue
	 * before sending a body (one round trip per store otherwise). */
	ADD_HEADER("Expect:");
	/* This client knows sockets and device nodes (PROTO_V_SPECIAL): without
	 * the header a server shows them as empty files. */
	ADD_HEADER(PROTO_HDR_VERSION ": " PROTO_VERSION_STR);
	pthread_mutex_lock(&c->lock);
	if (c->token)
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
			 c->token);
	else
		auth[0] = '\0';
	pthread_mutex_unlock(&c->lock);
	if (auth[0])
		ADD_HEADER(auth);
	if (req->content_type || req->body_len) {
		snprintf(line, sizeof(line), "Content-Type: %s",
			 req->content_type ? req->content_type
					   : "application/json");
		ADD_HEADER(line);
	} else if (post) {
		/* Not curl's default x-www-form-urlencoded for an empty body. */
		ADD_HEADER("Content-Type:");
	}
	if (req->if_none_match) {
		snprintf(line, sizeof(line), "If-None-Match: %s",
			 req->if_none_match);
		ADD_HEADER(line);
	}

	SET(CURLOPT_PRIVATE, (char *)req);
	SET(CURLOPT_URL, req->url);
	SET(CURLOPT_HTTPHEADER, req->headers);
	SET(CURLOPT_ERRORBUFFER, req->errbuf);
	SET(CURLOPT_WRITEFUNCTION, write_cb);
	SET(CURLOPT_WRITEDATA, req);
	SET(CURLOPT_HEADERFUNCTION, header_cb);
	SET(CURLOPT_HEADERDATA, req);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_TCP_NODELAY, 1L);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_TCP_KEEPIDLE, 60L);
	SET(CURLOPT_TCP_KEEPINTVL, 15L);
	SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	SET(CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
	SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
	SET(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	SET(CURLOPT_USERAGENT, PACKAGE_NAME "d/" PACKAGE_VERSION);
	SET(CURLOPT_BUFFERSIZE, (long)HTTP_RECV_BUFFER);
	SET(CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_timeout_ms);
	if (req->no_timeout) {
		SET(CURLOPT_TIMEOUT_MS, 0L);
	} else {
		uint64_t to = req->timeout_ms;

		/* A try again (retry_ms) has what is left of the retry
		 * window, at least a second: the whole request stays within
		 * about one timeout plus that window, not a timeout a try. */
		if (req->retry_until && req->retry_wait > HTTP_RETRY_FIRST_MS) {
			uint64_t now = util_now_ms();
			uint64_t left = req->retry_until > now
						? req->retry_until - now
						: 0;

			if (left < 1000)
				left = 1000;
			if (!to || left < to)
				to = left;
		}
		SET(CURLOPT_TIMEOUT_MS, (long)to);
		if (c->low_speed_ms) {
			SET(CURLOPT_LOW_SPEED_LIMIT, 1024L);
			SET(CURLOPT_LOW_SPEED_TIME,
			    (long)((c->low_speed_ms + 999) / 1000));
		}
	}
	/* libcurl reads http_proxy, HTTPS_PROXY, ALL_PROXY and NO_PROXY from
	 * the environment unless told otherwise: whoever starts cairnd could
	 * then route its token through a host of their choosing. "" means
	 * no proxy, and an empty NOPROXY means no host bypasses ours. */
	SET(CURLOPT_PROXY, c->proxy ? c->proxy : "");
	SET(CURLOPT_NOPROXY, "");
	if (c->ca_file)
		SET(CURLOPT_CAINFO, c->ca_file);
	if (c->insecure) {
		SET(CURLOPT_SSL_VERIFYPEER, 0L);
		SET(CURLOPT_SSL_VERIFYHOST, 0L);
	}

	if (post) {
		SET(CURLOPT_POST, 1L);
		SET(CURLOPT_POSTFIELDS, req->body ? req->body : "");
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		if (strcmp(req->method, "POST"))
			SET(CURLOPT_CUSTOMREQUEST, req->method);
	} else if (!strcmp(req->method, "HEAD")) {
		SET(CURLOPT_NOBODY, 1L);
	} else if (!strcmp(req->method, "GET")) {
		SET(CURLOPT_HTTPGET, 1L);
	} else {
		SET(CURLOPT_CUSTOMREQUEST, req->method);
	}
#undef SET
#undef ADD_HEADER

	if (curl_multi_add_handle(c->multi, easy) != CURLM_OK)
		goto out;
	req->state = REQ_ACTIVE;
	TAILQ_INSERT_TAIL(&c->active, req, link);
	if (req->limited)
		c->nlimited++;
	if (req->probe)
		c->nprobes++;
	atomic_fetch_add_explicit(&c->st_active, 1, memory_order_relaxed);
	return;
out:
	if (cc == CURLE_UNKNOWN_OPTION || cc == CURLE_NOT_BUILT_IN)
		err = -ENOTSUP;
	log_warn(LOG_HTTP, "cannot start %s '%s': %s", req->method, req->path,
		 strerror(-err));
	finish(c, req, err);
}

/* Start pending requests while slots are free. */
static void
start_pending(struct http_client *c)
{
	struct http_req *req;

	while (c->nlimited < c->max_parallel &&
	       (req = TAILQ_FIRST(&c->pending))) {
		TAILQ_REMOVE(&c->pending, req, link);
		atomic_fetch_sub_explicit(&c->st_queued, 1,
					  memory_order_relaxed);
		transfer_start(c, req);
	}
	while (c->nprobes < HTTP_PROBE_PARALLEL &&
	       (req = TAILQ_FIRST(&c->probes))) {
		TAILQ_REMOVE(&c->probes, req, link);
		atomic_fetch_sub_explicit(&c->st_queued, 1,
					  memory_order_relaxed);
		transfer_start(c, req);
	}
}

/* Take submitted requests, remove cancelled transfers, fill slots: all
 * of process() but the callbacks. */
static void
admit(struct http_client *c)
{
	struct req_list in = TAILQ_HEAD_INITIALIZER(in);
	struct http_req *req, *next;

	assert(c->in_curl == 0);
	pthread_mutex_lock(&c->lock);
	TAILQ_CONCAT(&in, &c->inbox, link);
	c->wake_pending = 0;
	pthread_mutex_unlock(&c->lock);

	while ((req = TAILQ_FIRST(&in))) {
		TAILQ_REMOVE(&in, req, link);
		if (req->probe_first) {
			struct http_req *at;

			/* Behind the other probe_first ones, in front of
			 * everyone else's. */
			req->state = REQ_PENDING;
			TAILQ_FOREACH (at, &c->probes, link)
				if (!at->probe_first)
					break;
			if (at)
				TAILQ_INSERT_BEFORE(at, req, link);
			else
				TAILQ_INSERT_TAIL(&c->probes, req, link);
		} else if (req->limited || req->probe) {
			req->state = REQ_PENDING;
			TAILQ_INSERT_TAIL(req->probe ? &c->probes : &c->pending,
					  req, link);
		} else {
			atomic_fetch_sub_explicit(&c->st_queued, 1,
						  memory_order_relaxed);
			transfer_start(c, req);
		}
	}

	if (c->cancel_deferred) {
		c->cancel_deferred = 0;
		for (req = TAILQ_FIRST(&c->active); req; req = next) {
			next = TAILQ_NEXT(req, link);
			if (req->cancelled)
				transfer_end(c, req, CURLE_ABORTED_BY_CALLBACK);
		}
	}
	start_pending(c);
}

/* Everything that must happen outside curl's callbacks: take submitted
 * requests, remove cancelled transfers, fill slots, run callbacks. */
static void
process(struct http_client *c)
{
	admit(c);
	run_done(c);
}

static void
wake_ev_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t v;

	/* Reading before taking the inbox: a submit after the read either
	 * sees wake_pending still set and its request is taken below, or
	 * writes again and wakes us once more. */
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn(LOG_HTTP, "cannot read wake-up eventfd: %s",
			 strerror(errno));
	process(arg);
}

static void
kick_ev_cb(evutil_socket_t fd, short what, void *arg)
{
	process(arg);
}

/* ---- public ------------------------------------------------------------- */

struct http_client *
http_new(struct event_base *base, const struct http_config *cfg)
{
	struct http_client *c = NULL;
	size_t len;
	long conns;
	int err = EINVAL;

	if (!base || !cfg || !cfg->base_url)
		goto fail;
	if (strncasecmp(cfg->base_url, "http://", 7) &&
	    strncasecmp(cfg->base_url, "https://", 8))
		goto fail;
	if (!header_value_ok(cfg->base_url) || strchr(cfg->base_url, ' ') ||
	    strchr(cfg->base_url, '\t'))
		goto fail;
	if (cfg->token && !header_value_ok(cfg->token))
		goto fail;
	if (cfg->proxy && !header_value_ok(cfg->proxy))
		goto fail;
	if (cfg->max_parallel > HTTP_MAX_PARALLEL)
		goto fail;

	err = ENOMEM;
	c = calloc(1, sizeof(*c));
	if (!c)
		goto fail;
	c->wake_fd = -1;
	c->base = base;
	pthread_mutex_init(&c->lock, NULL);
	TAILQ_INIT(&c->inbox);
	TAILQ_INIT(&c->pending);
	TAILQ_INIT(&c->probes);
	TAILQ_INIT(&c->active);
	TAILQ_INIT(&c->done);
	TAILQ_INIT(&c->retry);
	LIST_INIT(&c->socks);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		err = EIO;
		free(c);
		c = NULL;
		goto fail;
	}

	c->base_url = strdup(cfg->base_url);
	if (!c->base_url)
		goto fail;
	len = strlen(c->base_url);
	while (len > 0 && c->base_url[len - 1] == '/')
		c->base_url[--len] = '\0';
	if (cfg->token && !(c->token = strdup(cfg->token)))
		goto fail;
	if (cfg->ca_file && !(c->ca_file = strdup(cfg->ca_file)))
		goto fail;
	if (cfg->proxy && *cfg->proxy && !(c->proxy = strdup(cfg->proxy)))
		goto fail;
	c->insecure = cfg->insecure;
	c->max_parallel =
		cfg->max_parallel ? cfg->max_parallel : HTTP_DEFAULT_PARALLEL;
	c->connect_timeout_ms = cfg->connect_timeout_ms
					? cfg->connect_timeout_ms
					: HTTP_DEFAULT_CONNECT_MS;
	c->timeout_ms = cfg->timeout_ms;
	c->low_speed_ms = cfg->low_speed_ms;
	c->pool_max = c->max_parallel;
	c->pool = calloc(c->pool_max, sizeof(*c->pool));
	if (!c->pool)
		goto fail;

	c->multi = curl_multi_init();
	if (!c->multi)
		goto fail;
	conns = (long)c->max_parallel + HTTP_STREAM_HEADROOM +
		HTTP_PROBE_PARALLEL;
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, conns);
	curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, conns);
	curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, conns);
	curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);

	c->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->wake_fd < 0) {
		err = errno;
		goto fail;
	}
	c->wake_ev = event_new(base, c->wake_fd, EV_READ | EV_PERSIST,
			       wake_ev_cb, c);
	c->kick_ev = event_new(base, -1, 0, kick_ev_cb, c);
	c->timer_ev = evtimer_new(base, timer_ev_cb, c);
	if (!c->wake_ev || !c->kick_ev || !c->timer_ev)
		goto fail;
	if (event_add(c->wake_ev, NULL) < 0) {
		err = EIO;
		goto fail;
	}
	return c;
fail:
	http_free(c);
	errno = err;
	return NULL;
}

void
http_free(struct http_client *c)
{
	struct req_list in = TAILQ_HEAD_INITIALIZER(in);
	struct http_req *req;
	struct http_sock *hs;

	if (!c)
		return;
	/* Freeing from a callback would pull the list out from under
	 * run_done(); that is a caller bug. */
	assert(!c->running_done && c->in_curl == 0);
	pthread_mutex_lock(&c->lock);
	c->closing = 1;
	TAILQ_CONCAT(&in, &c->inbox, link);
	pthread_mutex_unlock(&c->lock);

	while ((req = TAILQ_FIRST(&in))) {
		TAILQ_REMOVE(&in, req, link);
		req->cancelled = 1;
		finish(c, req, -ECANCELED);
	}
	while ((req = TAILQ_FIRST(&c->pending))) {
		TAILQ_REMOVE(&c->pending, req, link);
		req->cancelled = 1;
		finish(c, req, -ECANCELED);
	}
	while ((req = TAILQ_FIRST(&c->probes))) {
		TAILQ_REMOVE(&c->probes, req, link);
		req->cancelled = 1;
		finish(c, req, -ECANCELED);
	}
	while ((req = TAILQ_FIRST(&c->active))) {
		req->cancelled = 1;
		transfer_end(c, req, CURLE_ABORTED_BY_CALLBACK);
	}
	while ((req = TAILQ_FIRST(&c->retry))) {
		TAILQ_REMOVE(&c->retry, req, link);
		event_del(req->retry_ev);
		req->cancelled = 1;
		finish(c, req, -ECANCELED);
	}
	run_done(c);

	while (c->npool > 0)
		curl_easy_cleanup(c->pool[--c->npool]);
	free(c->pool);
	if (c->multi)
		curl_multi_cleanup(c->multi);
	/* curl may or may not announce CURL_POLL_REMOVE while it closes its
	 * cached connections; whatever it did not announce goes here. */
	while ((hs = LIST_FIRST(&c->socks)))
		sock_free(hs);
	if (c->timer_ev)
		event_free(c->timer_ev);
	if (c->kick_ev)
		event_free(c->kick_ev);
	if (c->wake_ev)
		event_free(c->wake_ev);
	if (c->wake_fd >= 0)
		close(c->wake_fd);
	curl_global_cleanup();
	free(c->base_url);
	free(c->ca_file);
	free(c->proxy);
	free(c->token);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void
http_set_gate(struct http_client *c, http_gate_fn fn, void *arg)
{
	c->gate = fn;
	c->gate_arg = arg;
}

struct http_req *
http_submit(struct http_client *c, const struct http_request *r)
{
	struct http_req *req;
	int wake;

	if (!c || !r || !r->on_done || !r->path || !path_ok(r->path) ||
	    (r->method && !method_ok(r->method)) ||
	    (r->content_type && !header_value_ok(r->content_type)) ||
	    (r->if_none_match && !header_value_ok(r->if_none_match)) ||
	    (r->body_len && !r->body)) {
		errno = EINVAL;
		return NULL;
	}
	if (c->gate && !r->ungated) {
		int g = c->gate(c->gate_arg, r);

		if (g < 0) {
			errno = -g;
			return NULL;
		}
	}
	req = req_new(c, r);
	if (!req) {
		errno = ENOMEM;
		return NULL;
	}
	req->state = REQ_INBOX;

	pthread_mutex_lock(&c->lock);
	if (c->closing) {
		pthread_mutex_unlock(&c->lock);
		free(req);
		errno = ESHUTDOWN;
		return NULL;
	}
	TAILQ_INSERT_TAIL(&c->inbox, req, link);
	wake = !c->wake_pending;
	c->wake_pending = 1;
	stat_add(&c->st_requests, 1);
	atomic_fetch_add_explicit(&c->st_queued, 1, memory_order_relaxed);
	pthread_mutex_unlock(&c->lock);

	/* From here on the loop may already have run and freed @req: only
	 * its address is returned. An eventfd write cannot fail short of a
	 * counter overflow, which would mean the loop is already due. */
	if (wake) {
		uint64_t one = 1;

		if (write(c->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			log_err(LOG_HTTP, "cannot wake the http loop: %s",
				strerror(errno));
	}
	return req;
}

void
http_send_now(struct http_client *c)
{
	CURLMcode mc;
	int running;

	if (!c || c->in_curl)
		return;
	admit(c);
	/* A request just handed to curl is due at once (its timer is 0):
	 * a socket action on the timeout runs it, which writes it to a kept
	 * connection or starts connecting. */
	c->in_curl++;
	mc = curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0,
				      &running);
	c->in_curl--;
	if (mc != CURLM_OK)
		log_warn(LOG_HTTP, "cannot drive transfers: %s",
			 curl_multi_strerror(mc));
	/* Transfers that ended meanwhile are called back from the loop (or
	 * from the run_done() we may be called from), never from here. */
	collect(c);
	if (!TAILQ_EMPTY(&c->done))
		event_active(c->kick_ev, EV_TIMEOUT, 0);
}

void
http_cancel(struct http_client *c, struct http_req *req)
{
	if (!c || !req || req->cancelled || req->state == REQ_DONE)
		return;
	req->cancelled = 1;
	switch (req->state) {
	case REQ_INBOX:
		pthread_mutex_lock(&c->lock);
		TAILQ_REMOVE(&c->inbox, req, link);
		pthread_mutex_unlock(&c->lock);
		atomic_fetch_sub_explicit(&c->st_queued, 1,
					  memory_order_relaxed);
		finish(c, req, -ECANCELED);
		break;
	case REQ_PENDING:
		TAILQ_REMOVE(req->probe ? &c->probes : &c->pending, req, link);
		atomic_fetch_sub_explicit(&c->st_queued, 1,
					  memory_order_relaxed);
		finish(c, req, -ECANCELED);
		break;
	case REQ_ACTIVE:
		if (c->in_curl)
			c->cancel_deferred = 1;
		else
			transfer_end(c, req, CURLE_ABORTED_BY_CALLBACK);
		break;
	case REQ_RETRY:
		TAILQ_REMOVE(&c->retry, req, link);
		event_del(req->retry_ev);
		finish(c, req, -ECANCELED);
		break;
	case REQ_DONE:
		break;
	}
	/* The callback runs from the loop, never from inside this call. */
	event_active(c->kick_ev, EV_TIMEOUT, 0);
}

int
http_set_token(struct http_client *c, const char *token)
{
	char *t = NULL;

	if (!c)
		return -EINVAL;
	if (token) {
		if (!header_value_ok(token))
			return -EINVAL;
		t = strdup(token);
		if (!t)
			return -ENOMEM;
	}
	pthread_mutex_lock(&c->lock);
	free(c->token);
	c->token = t;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

void
http_get_stats(struct http_client *c, struct http_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!c)
		return;
	st->requests =
		atomic_load_explicit(&c->st_requests, memory_order_relaxed);
	st->failures =
		atomic_load_explicit(&c->st_failures, memory_order_relaxed);
	st->bytes_in =
		atomic_load_explicit(&c->st_bytes_in, memory_order_relaxed);
	st->bytes_out =
		atomic_load_explicit(&c->st_bytes_out, memory_order_relaxed);
	st->active = atomic_load_explicit(&c->st_active, memory_order_relaxed);
	st->queued = atomic_load_explicit(&c->st_queued, memory_order_relaxed);
}
