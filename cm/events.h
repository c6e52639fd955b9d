/*
 * events.h - cairnd's follower of the server's event stream
 * (GET /v1/vol/NAME/events?since=SEQ, doc/protocol.md): it applies each
 * change to the caches through mfetch_event(), persists the last sequence
 * number in the metadata cache, and reconnects with backoff.
 *
 * Layer rule: FUSE-free (libcm).
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

#include <stdint.h>

#include "cm/cm.h"

/* Start following from @since (the persisted seq; 0 = from now).
 * @return 0 or -errno. */
int ev_start(struct cm *cm, uint64_t since);
/* Stop: cancel the stream and the timers, persist the seq; call before
 * http_free(). NULL-safe on cm->evs. */
void ev_stop(struct cm *cm);
/* Free the follower; after http_free() (its callback may still run). */
void ev_free(struct cm *cm);

#endif /* CAIRN_CM_EVENTS_H */
