/*
 * events.c - follow the server's event stream.
 *
 * One long-lived GET streams newline-delimited JSON events; lines are cut
 * from the byte stream here, decoded with proto_event_decode() and applied
 * with mfetch_event(). It does no invalidation of its own and keeps no state
 * beyond the sequence number and the connection's health.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "cm/cm.h"
#include "cm/events.h"
#include "cm/http.h"
#include "cm/loop.h"
#include "cm/mfetch.h"
#include "cm/stats.h"
#include "cm/vc.h"
#include "common/log.h"
#include "common/util.h"

#define EV_LINE_MAX 4096	 /* an event line is far shorter */
#define EV_DEAD_MS 40000	 /* no byte (not even a ping) for this long */
#define EV_BACKOFF_MIN_MS 250
#define EV_BACKOFF_MAX_MS 4000

struct evstream {
	struct cm_loop *loop;
	struct http_client *http;
	struct vc *vc;
	struct mfetch *mf;
	struct cm_stats *st;
	atomic_int *online; /* or NULL */
	char *volume;
	struct http_req *req;	/* the stream, or NULL while waiting */
	char line[EV_LINE_MAX];
	size_t len;
	bool overlong;		/* skipping the rest of a too-long line */
	uint64_t seq;		/* last applied */
	uint64_t saved_seq;	/* last persisted */
	bool up;		/* this stream delivered bytes */
	bool need_reval;	/* revalidate once the next stream is up */
	bool resume;		/* a stream was asked for before: ask with
				   since=, even since=0 */
	uint64_t last_data;	/* util_now_ms() of the last byte */
	unsigned backoff;
	struct event *timer;	/* reconnect / dead-stream watchdog */
	bool stopping;
};

static void ev_connect(struct evstream *es);

static void
ev_apply_line(struct evstream *es, const char *line, size_t len)
{
	struct proto_event e;
	int rc;

	if (len == 0)
		return;
	rc = proto_event_decode(line, len, &e);
	if (rc < 0) {
		log_warn(LOG_EV, "ignoring malformed event line: %s",
			 strerror(-rc));
		return;
	}
	switch (e.kind) {
	case PROTO_EV_PING:
		if (e.seq > es->seq && es->seq != 0) {
			/* The server is ahead of what we applied without
			 * telling us why: do not trust the cache blindly. */
			log_info(LOG_EV, "event stream skipped from %llu to "
					 "%llu; revalidating",
				 (unsigned long long)es->seq,
				 (unsigned long long)e.seq);
			mfetch_revalidate_all(es->mf);
		}
		es->seq = e.seq;
		return;
	case PROTO_EV_RESET:
		log_info(LOG_EV, "event stream reset at %llu; revalidating",
			 (unsigned long long)e.seq);
		es->seq = e.seq;
		mfetch_revalidate_all(es->mf);
		return;
	default:
		if (e.seq <= es->seq && es->seq != 0)
			return; /* a replay of something applied */
		es->seq = e.seq;
		mfetch_event(es->mf, &e);
	}
}

static int
ev_data(void *arg, const void *data, size_t n)
{
	struct evstream *es = arg;
	const char *p = data, *end = p + n;

	es->last_data = util_now_ms();
	if (!es->up) {
		es->up = true;
		es->backoff = EV_BACKOFF_MIN_MS;
		if (es->need_reval) {
			es->need_reval = false;
			mfetch_revalidate_all(es->mf);
		}
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t take = (size_t)((nl ? nl : end) - p);

		if (!es->overlong) {
			if (es->len + take > sizeof(es->line)) {
				log_warn(LOG_EV, "skipping an event line "
						 "longer than %d bytes",
					 EV_LINE_MAX);
				es->overlong = true;
				es->len = 0;
			} else {
				memcpy(es->line + es->len, p, take);
				es->len += take;
			}
		}
		p += take;
		if (!nl)
			break;
		p++; /* the newline */
		if (!es->overlong)
			ev_apply_line(es, es->line, es->len);
		es->overlong = false;
		es->len = 0;
	}
	if (es->seq != es->saved_seq && vc_put_seq(es->vc, es->seq) == 0)
		es->saved_seq = es->seq;
	return es->stopping ? 1 : 0;
}

static void
ev_arm(struct evstream *es, unsigned ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	evtimer_add(es->timer, &tv);
}

static void
ev_done(void *arg, const struct http_result *res)
{
	struct evstream *es = arg;
	unsigned delay;

	es->req = NULL;
	es->len = 0;
	es->overlong = false;
	if (es->stopping)
		return;
	/* A refused reconnection: the server is away. Readers that miss
	 * now fail at once instead of retrying (fetch.c, xfer_done). */
	if (es->online && cm_server_refused(res->err) &&
	    atomic_exchange(es->online, 0))
		log_warn(LOG_EV, "server unreachable: %s", strerror(-res->err));
	if (es->up) {
		log_warn(LOG_EV, "event stream ended (%s); reconnecting",
			 res->err ? strerror(-res->err) : "closed by server");
		es->need_reval = true;
	} else if (res->err == 0 && res->status != 200) {
		log_warn(LOG_EV, "event stream refused: HTTP %ld",
			 res->status);
	}
	es->up = false;
	delay = es->backoff;
	es->backoff = es->backoff * 2 > EV_BACKOFF_MAX_MS ? EV_BACKOFF_MAX_MS
							  : es->backoff * 2;
	ev_arm(es, delay);
}

static void
ev_timer(evutil_socket_t fd, short what, void *arg)
{
	struct evstream *es = arg;

	(void)fd;
	(void)what;
	if (es->stopping)
		return;
	if (!es->req) {
		ev_connect(es);
		return;
	}
	/* Watchdog: the server pings every 15 s; silence means the
	 * connection died without a reset reaching us. */
	if (util_now_ms() - es->last_data > EV_DEAD_MS) {
		log_warn(LOG_EV, "event stream silent; reconnecting");
		http_cancel(es->http, es->req);
		return; /* ev_done() re-arms */
	}
	ev_arm(es, 5000);
}

static void
ev_connect(struct evstream *es)
{
	struct http_request r = {0};
	char path[160];

	/* Only the very first stream of a cache that never saw an event may
	 * start at the server's current sequence. Every later one asks from
	 * the last applied event, 0 included: without since= a reconnect
	 * would silently skip what happened while the stream was down (the
	 * first stream may have ended before it delivered a byte, so 'up'
	 * and need_reval cannot tell), and with it the server replays those
	 * events or answers reset. */
	if (es->seq || es->resume)
		snprintf(path, sizeof(path), "/v1/vol/%s/events?since=%llu",
			 es->volume, (unsigned long long)es->seq);
	else
		snprintf(path, sizeof(path), "/v1/vol/%s/events", es->volume);
	r.method = "GET";
	r.path = path;
	r.no_timeout = 1;
	r.on_data = ev_data;
	r.on_done = ev_done;
	r.arg = es;
	es->up = false;
	es->resume = true;
	es->last_data = util_now_ms();
	if (es->need_reval)
		CM_STAT_INC(es->st, ev_reconnects);
	es->req = http_submit(es->http, &r);
	if (!es->req) {
		/* Disconnected (the gate): wait quietly for the mode. */
		if (errno != EHOSTUNREACH)
			log_err(LOG_EV, "cannot start event stream: %s",
				strerror(errno));
		es->need_reval = true;
		ev_arm(es, EV_BACKOFF_MAX_MS);
		return;
	}
	ev_arm(es, 5000);
}

struct evstream *
ev_new(const struct ev_deps *d)
{
	struct evstream *es = calloc(1, sizeof(*es));

	if (!es)
		return NULL;
	es->loop = d->loop;
	es->http = d->http;
	es->vc = d->vc;
	es->mf = d->mf;
	es->st = d->st;
	es->online = d->online;
	es->backoff = EV_BACKOFF_MIN_MS;
	es->volume = strdup(d->volume ? d->volume : "");
	es->timer = evtimer_new(d->loop->base, ev_timer, es);
	if (!es->volume || !es->timer) {
		if (es->timer)
			event_free(es->timer);
		free(es->volume);
		free(es);
		errno = ENOMEM;
		return NULL;
	}
	return es;
}

int
ev_start(struct evstream *es, uint64_t since)
{
	if (!es)
		return -ENOMEM;
	es->seq = since;
	es->saved_seq = since;
	ev_connect(es);
	return 0;
}

void
ev_restart(struct evstream *es)
{
	if (!es || es->stopping)
		return;
	es->backoff = EV_BACKOFF_MIN_MS;
	if (es->req) {
		/* ev_done() re-arms with the backoff just reset. */
		http_cancel(es->http, es->req);
		return;
	}
	evtimer_del(es->timer);
	ev_arm(es, 0);
}

void
ev_stop(struct evstream *es)
{
	if (!es)
		return;
	es->stopping = true;
	if (es->req)
		http_cancel(es->http, es->req);
	if (es->seq != es->saved_seq)
		vc_put_seq(es->vc, es->seq);
	evtimer_del(es->timer);
}

void
ev_free(struct evstream *es)
{
	if (!es)
		return;
	event_free(es->timer);
	free(es->volume);
	free(es);
}
