/*
 * http.h - cairnd's HTTP client: libcurl's multi interface driven by the
 * libevent loop (curl_multi_socket_action), so any number of transfers run
 * at once on the loop thread without blocking it or a FUSE worker.
 *
 * It knows nothing of FUSE, the chunk store or the protocol's meaning: it
 * moves bytes, keeps connections alive, applies timeouts, and calls back.
 *
 * Threads: http_submit() and http_cancel() may be called from ANY thread
 * (the request is handed to the loop thread through a queue); every
 * callback runs on the loop thread. http_new()/http_free() on the loop
 * thread's owner before/after the loop runs.
 */
#ifndef CAIRN_CM_HTTP_H
#define CAIRN_CM_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct http_client;
struct http_req;

struct http_config {
	const char *base_url;	  /* "http://127.0.0.1:7070" (no trailing /) */
	const char *token;	  /* bearer token, or NULL */
	const char *ca_file;	  /* HTTPS: CA bundle, NULL = system default */
	int insecure;		  /* HTTPS: skip verification (tests only) */
	unsigned max_parallel;	  /* concurrent transfers (default 16) */
	unsigned connect_timeout_ms; /* default 3000 */
	unsigned timeout_ms;	  /* whole transfer, 0 = none (streams) */
	unsigned low_speed_ms;	  /* abort if < 1 KiB/s for this long, 0 = off */
};

/* What a finished transfer reports. @status is the HTTP status (0 when no
 * reply came); @err is 0 or a negative errno for transport failures
 * (-ETIMEDOUT, -ECONNREFUSED, -EHOSTUNREACH, -EIO, -ECANCELED). @body is the
 * whole body when the request did not ask for streaming; it is owned by the
 * library and valid only during the callback. */
struct http_result {
	int err;
	long status;
	const char *body;
	size_t body_len;
	const char *etag;	/* response header or NULL */
	const char *sha256;	/* X-Cairn-SHA256 or NULL */
	int64_t file_size;	/* X-Cairn-Size, -1 if absent */
};

/* Called on the loop thread once per request, also on failure and cancel.
 * The request is freed right after it returns. */
typedef void (*http_done_fn)(void *arg, const struct http_result *res);

/* Streaming: called on the loop thread as body bytes arrive (before done).
 * Return 0 to go on, nonzero to abort the transfer (done gets -ECANCELED).
 * With a data callback the body is not accumulated (res->body is NULL). */
typedef int (*http_data_fn)(void *arg, const void *data, size_t len);

struct http_request {
	const char *method;	 /* "GET", "POST", "PUT" */
	const char *path;	 /* "/v1/vol/home/dir/..." (copied) */
	const void *body;	 /* request body or NULL (copied) */
	size_t body_len;
	const char *content_type; /* default application/json if body */
	const char *if_none_match; /* or NULL */
	unsigned timeout_ms;	 /* overrides config when nonzero */
	int no_timeout;		 /* long-lived streams (events) */
	size_t max_body;	 /* abort with -E2BIG past this (0 = 64 MiB) */
	http_data_fn on_data;	 /* or NULL to accumulate the body */
	http_done_fn on_done;	 /* required */
	void *arg;
};

/*
 * Create a client on @base. @cfg strings are copied.
 * @return the client, or NULL and errno.
 */
struct http_client *http_new(struct event_base *base,
			     const struct http_config *cfg);

/* Cancel all transfers (their done callbacks run with -ECANCELED), close
 * connections, free. Call on the loop thread or after the loop ended. */
void http_free(struct http_client *c);

/*
 * Queue a request; any thread. The request struct and its strings/body are
 * copied before return. @return a handle usable with http_cancel() until the
 * done callback has run, or NULL and errno (ENOMEM, or ESHUTDOWN after
 * http_free started).
 */
struct http_req *http_submit(struct http_client *c,
			     const struct http_request *r);

/* Abort a request; loop thread only. Its done callback runs with
 * -ECANCELED (unless it already ran). */
void http_cancel(struct http_client *c, struct http_req *req);

/* Change the bearer token (e.g. re-read from file); any thread. */
int http_set_token(struct http_client *c, const char *token);

/* Counters for fs getcacheparms / the benchmarks. */
struct http_stats {
	uint64_t requests, failures, bytes_in, bytes_out;
	unsigned active;
};
void http_get_stats(struct http_client *c, struct http_stats *st);

#endif /* CAIRN_CM_HTTP_H */
