/*
 * http.h - cairnd's HTTP client: libcurl's multi interface driven by the
 * libevent loop (curl_multi_socket_action), so any number of transfers run
 * at once on the loop thread without blocking it or a FUSE worker.
 *
 * It knows nothing of FUSE, the chunk store or the protocol's meaning: it
 * moves bytes, keeps connections alive, applies timeouts, and calls back.
 *
 * Threads. "The loop thread" is the thread running the event_base given to
 * http_new().
 *  - http_submit(), http_set_token(), http_get_stats(): any thread. A
 *    submission is handed to the loop through a mutex-guarded queue and an
 *    eventfd, so the program need NOT call evthread_use_pthreads() for this
 *    module's sake.
 *  - http_cancel(): loop thread only (a handle may be freed by the loop at
 *    any moment once its callback ran, so no other thread can use it safely).
 *  - http_new()/http_free(): the loop thread, or any thread while the loop
 *    is not running. Stop the threads that submit before http_free().
 *  - Every callback runs on the loop thread, never from inside
 *    http_submit() or http_cancel().
 *
 * Callback rules: a done or data callback may call http_submit() and
 * http_cancel() (on any request, its own included); it must not call
 * http_free() on its client, nor run the event loop recursively.
 *
 * Limits: at most max_parallel requests are in transfer at once; the rest
 * wait in FIFO order (http_stats.queued). Requests with no_timeout (event
 * streams) bypass that limit, so a stream never eats a chunk fetch's slot.
 * Probes (http_request.probe: pings of a server that may be down) do not
 * count against it either: at most 2 run at once, in slots of their own,
 * so probes waiting on a dead server never hold up reads and reads never
 * hold up the probe that would find the server back. Probes wait in FIFO
 * order too, except those marked probe_first, which go ahead of the rest:
 * users cannot queue pings in front of the one that reconnects the mount.
 * curl keeps up to max_parallel + 6 connections open (keep-alive).
 *
 * Errors in http_result.err (0 means a reply came; check status then):
 *   -ECONNREFUSED  nobody listens (curl COULDNT_CONNECT; -EHOSTUNREACH,
 *                  -ENETUNREACH when the socket said so)
 *   -ETIMEDOUT     connect, whole-request or low-speed timeout
 *   -EHOSTUNREACH  the host name did not resolve
 *   -EIO           the connection broke: reply missing, truncated, garbled
 *   -EPROTO        TLS failed: handshake, certificate, CA file
 *   -ECANCELED     http_cancel(), http_free(), or on_data returned nonzero
 *   -E2BIG         the body would pass max_body (Content-Length says so, or
 *                  the bytes did)
 *   -ENOMEM        out of memory; -EINVAL a URL curl refused
 */
#ifndef CAIRN_CM_HTTP_H
#define CAIRN_CM_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct http_client;
struct http_req;

struct http_config {
	const char *base_url;	  /* "http://127.0.0.1:7070" */
	const char *token;	  /* bearer token, or NULL */
	const char *ca_file;	  /* HTTPS: CA bundle, NULL = system default */
	int insecure;		  /* HTTPS: skip verification (tests only) */
	const char *proxy;	  /* proxy URL, or NULL: connect directly. The
				     environment (http_proxy, HTTPS_PROXY,
				     ALL_PROXY, NO_PROXY) is never read */
	unsigned max_parallel;	  /* concurrent transfers (default 16) */
	unsigned connect_timeout_ms; /* default 3000 */
	unsigned timeout_ms;	  /* whole transfer, 0 = none (streams) */
	unsigned low_speed_ms;	  /* abort if < 1 KiB/s for this long, 0 = off */
};

/* What a finished transfer reports. @status is the HTTP status (0 when no
 * reply came; it may be set even when @err is not 0, e.g. a truncated 200);
 * @err is 0 or a negative errno for transport failures (table above). @body
 * is the whole body when the request did not ask for streaming and @err is
 * 0: NUL-terminated (the NUL is not counted in @body_len), "" when empty,
 * NULL when streaming or on error. @body and the header strings are owned
 * by the library and valid only during the callback: copy what you keep. */
struct http_result {
	int err;
	long status;
	const char *body;
	size_t body_len;
	const char *etag;	/* response header or NULL */
	const char *sha256;	/* X-Cairn-SHA256 or NULL */
	const char *blocks;	/* X-Cairn-Blocks or NULL */
	int64_t file_size;	/* X-Cairn-Size, -1 if absent */
};

/* Called on the loop thread exactly once per accepted request, also on
 * failure and cancel. The request (and its handle) is freed right after it
 * returns. */
typedef void (*http_done_fn)(void *arg, const struct http_result *res);

/* Streaming: called on the loop thread as body bytes arrive (before done),
 * in order, with curl's own buffer (valid during the call only; no copy is
 * made). Return 0 to go on, nonzero to abort the transfer (done gets
 * -ECANCELED). With a data callback the body is not accumulated (res->body
 * is NULL) and max_body does not apply. Response headers (etag, sha256,
 * blocks, file_size) reach the done callback, and on_head (below) before
 * the body when the caller asks. */
typedef int (*http_data_fn)(void *arg, const void *data, size_t len);

/* Headers before the body: called on the loop thread once the response
 * headers are complete, right before the first body byte is handed to
 * on_data (never for a reply without a body: the done callback has the
 * headers then). @res carries status, etag, sha256, blocks and file_size
 * only (err 0, no body), valid during the call. Return 0 to go on,
 * nonzero to abort (done gets -ECANCELED). */
typedef int (*http_head_fn)(void *arg, const struct http_result *res);

/* All pointers are copied by http_submit(); the struct may be on the stack.
 * Bad input (a path not starting with '/', not percent-encoded printable
 * ASCII, or holding '#'; a method not of capitals; a header value with
 * control characters; body_len without body) makes http_submit() fail with
 * EINVAL and never reaches the wire. */
struct http_request {
	const char *method;	 /* "GET" (NULL), "POST", "PUT", "DELETE",
				    "HEAD"... capitals only */
	const char *path;	 /* "/v1/vol/home/dir/..." (copied) */
	const void *body;	 /* request body or NULL (copied) */
	size_t body_len;
	const char *content_type; /* default application/json if body */
	const char *if_none_match; /* or NULL */
	unsigned timeout_ms;	 /* overrides config when nonzero; counts from
				    when the transfer starts, not queue time */
	int no_timeout;		 /* long-lived streams (events): no timeout, no
				    low-speed abort, not limited by
				    max_parallel */
	size_t max_body;	 /* abort with -E2BIG past this (0 = 64 MiB) */
	http_head_fn on_head;	 /* or NULL */
	http_data_fn on_data;	 /* or NULL to accumulate the body */
	http_done_fn on_done;	 /* required */
	void *arg;
	int ungated;		 /* not subject to http_set_gate()'s gate */
	int probe;		 /* a small liveness request (ping): runs in
				    one of 2 probe slots, not one of
				    max_parallel (ignored with no_timeout) */
	int probe_first;	 /* with probe: queued ahead of every probe
				    without it (cairnd's own reconnect
				    pings ahead of users' checkservers) */
	unsigned retry_ms;	 /* nonzero: only for a request whose effect
				    does not depend on how often it arrives
				    (a PUT of a staged chunk): a failure of
				    the transport (refused or reset
				    connection, no reply, a timeout,
				    502/503/504) is tried again, 50 ms then
				    doubling up to 1 s apart, until this long
				    after http_submit(); done sees the last
				    try. Not once on_data had bytes. */
};

/*
 * A gate every submission passes first (unless marked ungated): @fn
 * returns 0 to let it through or a negative errno, and http_submit() then
 * fails with that errno. cairnd uses it to keep a disconnected mount off
 * the network. Set it before the client is used from other threads.
 */
typedef int (*http_gate_fn)(void *arg, const struct http_request *r);
void http_set_gate(struct http_client *c, http_gate_fn fn, void *arg);

/*
 * Create a client on @base. @cfg strings are copied; base_url must start
 * with http:// or https:// (a trailing '/' is dropped), max_parallel is at
 * most 1024, low_speed_ms is rounded up to whole seconds (curl's unit).
 * The client keeps one persistent event on @base (its wake-up eventfd), so
 * event_base_dispatch() does not return for lack of events while it lives.
 * Calls curl_global_init() itself.
 * @return the client, or NULL and errno (EINVAL for a bad @cfg, ENOMEM).
 */
struct http_client *http_new(struct event_base *base,
			     const struct http_config *cfg);

/* Cancel all transfers (their done callbacks run from inside this call,
 * with -ECANCELED unless they had finished already; a submit from such a
 * callback fails with ESHUTDOWN), close connections, free. Call on the loop
 * thread but not from a callback, or after the loop ended. NULL is fine. */
void http_free(struct http_client *c);

/*
 * Queue a request; any thread. The request struct and its strings/body are
 * copied before return. @return a handle usable with http_cancel() until the
 * done callback has run (the loop may run it before this returns), or NULL
 * and errno (EINVAL for bad input, ENOMEM, or ESHUTDOWN after http_free
 * started). A NULL return means no callback will come.
 */
struct http_req *http_submit(struct http_client *c,
			     const struct http_request *r);

/* Abort a request, queued or in transfer; loop thread only. Its done
 * callback runs later from the loop (never from inside this call) with
 * -ECANCELED, unless it had finished already; calling this for a request whose
 * callback is still due is harmless, twice too. Inside a data callback the
 * transfer stops before the next byte is delivered. */
void http_cancel(struct http_client *c, struct http_req *req);

/* Hand the requests submitted so far to curl now and let it write them
 * (to a kept connection, or start connecting), instead of when the loop
 * next turns: a done callback that asks for the next piece of a chain
 * and then works a while on the last one (a listing's pages, mfetch.c)
 * lets the server work meanwhile. Loop thread only, from a callback or
 * outside one. No done callback runs from inside it (transfers it ends
 * are called back from the loop), but curl's timeout action may deliver
 * data that is due on other transfers: their on_head/on_data callbacks
 * (the event stream: mfetch_event()) can run inside it, as they could
 * have run just before the caller's callback. The caller must not hold
 * state across the call that such a callback invalidates (mfetch.c's
 * dir_page holds its dir_req, which only its own done callback frees). */
void http_send_now(struct http_client *c);

/* Change the bearer token (e.g. re-read from file), NULL for none; any
 * thread. Requests that have not started yet use the new one.
 * @return 0, -EINVAL (control characters), -ENOMEM. */
int http_set_token(struct http_client *c, const char *token);

/* Counters for fs getcacheparms / the benchmarks; any thread. @requests
 * counts accepted submissions; @failures finished ones with an err other
 * than -ECANCELED (an HTTP 404 is not a failure here); @bytes_in body bytes
 * received; @bytes_out request body bytes sent; @active transfers in curl. */
struct http_stats {
	uint64_t requests, failures, bytes_in, bytes_out;
	unsigned active;
	unsigned queued; /* submitted, not yet handed to curl */
};
void http_get_stats(struct http_client *c, struct http_stats *st);

#endif /* CAIRN_CM_HTTP_H */
