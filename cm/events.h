/*
 * events.h - cairnd's follower of the server's event stream
 * (GET /v1/vol/NAME/events?since=SEQ, doc/protocol.md): it applies each
 * change to the caches through mfetch_event(), persists the last sequence
 * number in the metadata cache, and reconnects with backoff.
 *
 * Layer rule: FUSE-free (libcm), level 4: over mfetch (level 3).
 *
 * Freshness contract (doc/cm.md "Freshness"): while the stream is up, every
 * change on the server reaches the caches within one round trip. When the
 * server says "reset", or a stream that was up breaks and comes back,
 * everything cached is revalidated with bulk getattr before the next
 * change is trusted.
 *
 * Threads: loop thread only.
 */
#ifndef CAIRN_CM_EVENTS_H
#define CAIRN_CM_EVENTS_H

#include <stdatomic.h>
#include <stdint.h>

struct cm_loop;
struct cm_stats;
struct http_client;
struct mfetch;
struct vc;
struct evstream;

/* What ev_new() works with; the pointers must outlive the follower. */
struct ev_deps {
	struct cm_loop *loop; /* its base */
	struct http_client *http;
	struct vc *vc;	   /* where the last sequence number is kept */
	struct mfetch *mf; /* applies each event */
	struct cm_stats *st;
	const char *volume;
	/* Cleared when a reconnection is refused: the server is away, and
	 * a read that misses then fails at once (fetch.c). May be NULL. */
	atomic_int *online;
};

/* Set up a follower; nothing is asked yet. @return the handle, or NULL +
 * errno. */
struct evstream *ev_new(const struct ev_deps *deps);
/* Start following from @since (the persisted seq; 0 = from now).
 * @return 0 or -errno. */
int ev_start(struct evstream *es, uint64_t since);
/* Reconnect now (SIGHUP gave a new token): end the current stream, or
 * cut a reconnect's backoff short; the next request carries the HTTP
 * client's current token. Events are not lost: it asks since= the last
 * one applied. NULL-safe. */
void ev_restart(struct evstream *es);
/* Stop: cancel the stream and the timers, persist the seq; call before
 * http_free(). NULL-safe. */
void ev_stop(struct evstream *es);
/* Free the follower; after http_free() (its callback may still run). */
void ev_free(struct evstream *es);

#endif /* CAIRN_CM_EVENTS_H */
