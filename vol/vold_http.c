/*
 * vold_http.c - cairn-vold's HTTP front: routes every request of
 * doc/protocol.md, checks tokens, hands disk work to the worker pool and
 * sends the replies; keeps the event streams and a cache of open data
 * files with chunk SHA-256s so repeated chunk GETs are served from the loop
 * with sendfile. It does not know the on-disk format (volstore.c does).
 *
 * Threads: the loop thread owns every evhttp object, the volume registry,
 * the chunk cache and the subscribers. Workers touch a volume only through
 * vvol->lock (its vs_vol handle: tdb is not thread-safe) and vvol->evlock
 * (the in-memory event ring, which workers append to in commit order while
 * holding vvol->lock).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "base/crc32c.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/token.h"
#include "common/util.h"
#include "vol/vold.h"
#include "vol/vold_pool.h"
#include "vol/volstore.h"

#define EVQ_MAX (4u << 20)	/* queued stream bytes before a drop */
#define PING_MS 15000
#define OC_HASH 1024
#define OC_SHA_MAX 65536	/* chunks per object whose sums we keep */
/* Block sums per chunk: proto_block_size() makes at most 16 blocks. */
#define VOLD_BLOCKS 16
#define STAGE_GC_S  3600 /* staging expiry checked at least this often */

struct vold;
struct vvol;

/* What a chunk GET reply carries about its body: the SHA-256 of the whole
 * (X-Cairn-SHA256) and the CRC32C of each block (X-Cairn-Blocks). */
struct csum {
	uint8_t sha[32];
	uint32_t crc[VOLD_BLOCKS];
};

/* One open data file and the sums of its chunks (loop thread). */
struct ocache {
	TAILQ_ENTRY(ocache) lru;
	LIST_ENTRY(ocache) hlink;
	struct vvol *vol;
	uint8_t oid[16];
	uint64_t dv, size;
	struct evbuffer_file_segment *seg; /* NULL: no bytes on disk */
	uint32_t cs;
	uint64_t nchunks;
	struct csum *sum;
	uint8_t *have;
};

/* An event stream client (loop thread). */
struct sub {
	TAILQ_ENTRY(sub) link;
	struct vvol *vol;
	struct evhttp_request *req;
	struct evhttp_connection *evcon;
	uint64_t next;	  /* next seq to send */
	uint64_t last_ms; /* last write (for pings) */
};

struct vvol {
	TAILQ_ENTRY(vvol) link;
	struct vold *vd;
	char name[65];
	int refs;	 /* loop thread: registry + jobs + subs */
	bool dead;	 /* loop thread: removed from the registry */
	bool listed;	 /* loop thread: in vd->vols */
	bool opened;	 /* loop thread: a job saw it open */
	uint64_t gen;	 /* loop thread: bumped by data-changing mutations */
	struct vs_tokstate ts; /* loop thread: id and token epoch */
	uint64_t ts_ms;	       /* loop thread: when ts was last re-read */
	uint64_t last_gc_ms;
	bool public;	 /* loop thread: chunk replies may be shared-cached */
	bool flags_pending; /* loop thread: a J_FLAGS job is out */
	TAILQ_HEAD(, sub) subs;
	LIST_HEAD(, ocache) oc[OC_HASH];

	pthread_mutex_t lock;
	struct vs_vol *vs;	/* protected by lock */
	dev_t dev;		/* protected by lock (set at open) */
	ino_t ino;		/* protected by lock (set at open) */

	pthread_mutex_t evlock;
	struct proto_event *ring;	/* protected by evlock */
	uint64_t ring_first, ring_last; /* protected by evlock */
};

struct vold {
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	struct vold_pool *pool;
	struct vs_root *root;
	SSL_CTX *ssl;
	uint8_t key[TOKEN_KEY_MAX];
	size_t keylen;
	int port;
	char addr[80];
	int cache_max;
	int ncache;
	uint64_t stage_max;	/* bytes staged per volume, 0 = quota only */
	int64_t stage_expire_s; /* staged uploads live this long */
	uint64_t gc_every_ms;	/* how often each volume's staging is swept */
	TAILQ_HEAD(oc_lru, ocache) lru;
	TAILQ_HEAD(, vvol) vols;
	struct event *tick;
};

enum jkind {
	J_VOLINFO,
	J_GETATTR,
	J_DIR,
	J_LINK,
	J_XATTR,
	J_DATA,
	J_EVENTS,
	J_OP,
	J_STAGE,
	J_GC,
	J_FLAGS,
};

/* One request's trip to a worker and back. */
struct rjob {
	struct vold_job job;
	enum jkind kind;
	struct vold *vd;
	struct vvol *vol;
	struct evhttp_request *req;
	struct proto_path path;
	bool readonly;
	bool has_inm;		/* If-None-Match given (dir) */
	uint64_t inm_dv;
	struct evbuffer *in;	/* request body (moved from evhttp) */
	uint64_t gen;
	/* decoded outside vvol->lock, before it is taken */
	struct fid *fids; /* getattr */
	size_t nfids;
	struct proto_attr *attrs; /* getattr results, encoded after unlock */
	int *errs;
	struct proto_op op;   /* op */
	struct proto_dir dir; /* dir: the page (or listing) to encode */
	struct proto_dir_cursor next;
	bool more;
	/* results */
	int err;		/* positive errno: reply with an error */
	const char *msg;
	uint64_t cur_dv;
	int status;
	char *out;
	size_t outlen;
	uint64_t etag_dv;
	struct vs_reply rep;
	bool pub;		/* J_DATA, J_FLAGS: vs_vol_public() */
	/* data */
	int fd;
	uint64_t size, off, len;
	struct csum sum;
};

static void vvol_put(struct vvol *vol);
static void sub_drop(struct sub *s, bool close_conn);

/* ---- replies ---- */

static const char *
reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 204: return "No Content";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 412: return "Precondition Failed";
	case 413: return "Payload Too Large";
	case 416: return "Range Not Satisfiable";
	case 431: return "Request Header Fields Too Large";
	case 507: return "Insufficient Storage";
	default: return status >= 500 ? "Internal Server Error" : "Error";
	}
}

static void
free_cb(const void *data, size_t len, void *arg)
{
	free((void *)data);
}

/* Send @body (heap, taken over) with @status. */
static void
reply_body(struct evhttp_request *req, int status, const char *ctype,
	   char *body, size_t len)
{
	struct evbuffer *b = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	if (ctype)
		evhttp_add_header(h, "Content-Type", ctype);
	if (b && body && len)
		evbuffer_add_reference(b, body, len, free_cb, NULL);
	else
		free(body);
	evhttp_send_reply(req, status, reason(status), b);
	if (b)
		evbuffer_free(b);
}

/* An error reply: @err positive errno; @status 0 = from the errno table. */
static void
reply_err(struct evhttp_request *req, int err, int status, const char *msg,
	  uint64_t cur_dv)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	size_t len = 0;
	char *body;

	if (!status)
		status = proto_errno_to_status(err);
	body = proto_error_encode(err, msg, cur_dv, &len);
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (status == 401)
		evhttp_add_header(h, "WWW-Authenticate", "Bearer");
	if (status >= 500)
		log_warn(LOG_HTTP, "%s %s: %d %s",
			 evhttp_request_get_command(req) == EVHTTP_REQ_GET ?
				 "GET" : "request",
			 evhttp_request_get_uri(req), status,
			 msg ? msg : strerror(err));
	reply_body(req, status, "application/json", body, body ? len : 0);
}

static void
reply_json(struct evhttp_request *req, char *body, size_t len)
{
	if (!body) {
		reply_err(req, errno ? errno : ENOMEM, 0, NULL, 0);
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Cache-Control", "no-cache");
	reply_body(req, 200, "application/json", body, len);
}

/* ---- volumes (loop thread) ---- */

static struct vvol *
vvol_get(struct vold *vd, const char *name)
{
	struct vvol *vol;

	TAILQ_FOREACH(vol, &vd->vols, link)
		if (!strcmp(vol->name, name)) {
			vol->refs++;
			return vol;
		}
	vol = calloc(1, sizeof(*vol));
	if (!vol)
		return NULL;
	vol->vd = vd;
	snprintf(vol->name, sizeof(vol->name), "%s", name);
	pthread_mutex_init(&vol->lock, NULL);
	pthread_mutex_init(&vol->evlock, NULL);
	TAILQ_INIT(&vol->subs);
	for (int i = 0; i < OC_HASH; i++)
		LIST_INIT(&vol->oc[i]);
	vol->ring_first = 1;
	vol->last_gc_ms = util_now_ms();
	vol->refs = 2; /* the registry's and the caller's */
	vol->listed = true;
	TAILQ_INSERT_TAIL(&vd->vols, vol, link);
	return vol;
}

static void
oc_free(struct ocache *oc)
{
	struct vold *vd = oc->vol->vd;

	TAILQ_REMOVE(&vd->lru, oc, lru);
	LIST_REMOVE(oc, hlink);
	vd->ncache--;
	if (oc->seg)
		evbuffer_file_segment_free(oc->seg);
	free(oc->sum);
	free(oc->have);
	free(oc);
}

static void
oc_drop_all(struct vvol *vol)
{
	for (int i = 0; i < OC_HASH; i++)
		while (!LIST_EMPTY(&vol->oc[i]))
			oc_free(LIST_FIRST(&vol->oc[i]));
}

/* Take @vol out of the registry: the next request opens it afresh. */
static void
vvol_unlist(struct vvol *vol)
{
	struct sub *s;

	if (!vol->listed)
		return;
	vol->listed = false;
	vol->dead = true;
	TAILQ_REMOVE(&vol->vd->vols, vol, link);
	while ((s = TAILQ_FIRST(&vol->subs)))
		sub_drop(s, false);
	oc_drop_all(vol);
	vvol_put(vol);
}

static void
vvol_put(struct vvol *vol)
{
	if (!vol || --vol->refs > 0)
		return;
	oc_drop_all(vol);
	/* No job holds a reference: no worker can be inside the lock. */
	vs_vol_close(vol->vs);
	free(vol->ring);
	pthread_mutex_destroy(&vol->lock);
	pthread_mutex_destroy(&vol->evlock);
	free(vol);
}

/* Worker, vol->lock held: open the volume if it is not. */
static int
vvol_open_locked(struct vvol *vol)
{
	struct vs_volinfo vi;
	struct proto_event *evs = NULL;
	char path[4096];
	struct stat st;
	size_t n = 0;
	uint64_t from;
	int rc;

	if (vol->vs)
		return 0;
	rc = vs_vol_open(vol->vd->root, vol->name, VS_CLEANUP, &vol->vs);
	if (rc)
		return rc;
	rc = vs_vol_info(vol->vs, &vi);
	if (rc)
		goto fail;
	if (vs_vol_meta_path(vol->vd->root, vol->name, path, sizeof(path)) ==
		    0 &&
	    stat(path, &st) == 0) {
		vol->dev = st.st_dev;
		vol->ino = st.st_ino;
	}
	from = vi.event_seq >= VS_EVENT_RING ? vi.event_seq - VS_EVENT_RING + 1
					     : 1;
	evs = malloc(VS_EVENT_RING * sizeof(*evs));
	if (!evs) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = vs_events_read(vol->vs, from, evs, VS_EVENT_RING, &n);
	if (rc)
		goto fail;
	pthread_mutex_lock(&vol->evlock);
	vol->ring = calloc(VS_EVENT_RING, sizeof(*vol->ring));
	if (!vol->ring) {
		pthread_mutex_unlock(&vol->evlock);
		rc = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < n; i++)
		vol->ring[evs[i].seq % VS_EVENT_RING] = evs[i];
	vol->ring_last = vi.event_seq;
	vol->ring_first = n ? evs[0].seq : vi.event_seq + 1;
	pthread_mutex_unlock(&vol->evlock);
	free(evs);
	vs_vol_set_stage_max(vol->vs, vol->vd->stage_max);
	log_info(LOG_VOL,
		 "volume '%s' (id %08x) opened: %" PRIu64
		 " objects, event seq %" PRIu64 ", %" PRIu64 " bytes staged",
		 vol->name, vi.id, vi.files_used, vi.event_seq,
		 vs_staged_bytes(vol->vs));
	return 0;
fail:
	free(evs);
	vs_vol_close(vol->vs);
	vol->vs = NULL;
	return rc;
}

/* Worker, vol->lock held: events of a committed mutation into the ring. */
static void
ring_append(struct vvol *vol, const struct proto_event *ev, int n)
{
	pthread_mutex_lock(&vol->evlock);
	for (int i = 0; i < n && vol->ring; i++) {
		vol->ring[ev[i].seq % VS_EVENT_RING] = ev[i];
		vol->ring_last = ev[i].seq;
		if (vol->ring_last - vol->ring_first + 1 > VS_EVENT_RING)
			vol->ring_first = vol->ring_last - VS_EVENT_RING + 1;
	}
	pthread_mutex_unlock(&vol->evlock);
}

/* ---- the chunk cache (loop thread) ---- */

static struct ocache *
oc_find(struct vvol *vol, const uint8_t oid[16])
{
	struct ocache *oc;

	LIST_FOREACH(oc, &vol->oc[(oid[0] << 2 | oid[1] >> 6) % OC_HASH],
		     hlink)
		if (!memcmp(oc->oid, oid, 16))
			return oc;
	return NULL;
}

static void
oc_drop(struct vvol *vol, const uint8_t oid[16])
{
	struct ocache *oc = oc_find(vol, oid);

	if (oc)
		oc_free(oc);
}

/* Remember (fid, dv)'s open file @fd (taken over) for chunk size @cs.
 * Returns the entry, or NULL (then @fd was closed). */
static struct ocache *
oc_insert(struct vvol *vol, const uint8_t oid[16], uint64_t dv, uint64_t size,
	  int fd, uint32_t cs)
{
	struct vold *vd = vol->vd;
	struct ocache *oc = oc_find(vol, oid);
	unsigned flags = EVBUF_FS_CLOSE_ON_FREE;

	if (oc && (oc->dv != dv || oc->cs != cs)) {
		oc_free(oc);
		oc = NULL;
	}
	if (oc) {
		if (fd >= 0)
			close(fd);
		TAILQ_REMOVE(&vd->lru, oc, lru);
		TAILQ_INSERT_HEAD(&vd->lru, oc, lru);
		return oc;
	}
	while (vd->ncache >= vd->cache_max && !TAILQ_EMPTY(&vd->lru))
		oc_free(TAILQ_LAST(&vd->lru, oc_lru));
	oc = calloc(1, sizeof(*oc));
	if (!oc)
		goto fail;
	oc->vol = vol;
	memcpy(oc->oid, oid, 16);
	oc->dv = dv;
	oc->size = size;
	oc->cs = cs;
	oc->nchunks = (size + cs - 1) / cs;
	if (oc->nchunks <= OC_SHA_MAX && oc->nchunks) {
		oc->sum = malloc(oc->nchunks * sizeof(*oc->sum));
		oc->have = calloc(oc->nchunks, 1);
		if (!oc->sum || !oc->have)
			goto fail;
	}
	if (fd >= 0) {
		/* TLS cannot use sendfile: let libevent map or read it. */
		if (vd->ssl)
			flags |= EVBUF_FS_DISABLE_SENDFILE;
		oc->seg = evbuffer_file_segment_new(fd, 0, (ev_off_t)size,
						    flags);
		if (!oc->seg)
			goto fail;
		fd = -1;
	}
	LIST_INSERT_HEAD(&vol->oc[(oid[0] << 2 | oid[1] >> 6) % OC_HASH], oc,
			 hlink);
	TAILQ_INSERT_HEAD(&vd->lru, oc, lru);
	vd->ncache++;
	return oc;
fail:
	if (oc) {
		free(oc->sum);
		free(oc->have);
		free(oc);
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* Reply to a chunk GET from what we know; @seg NULL means zeros. */
static void
send_chunk(struct vold *vd, struct evhttp_request *req, bool pub,
	   const struct proto_path *p, uint64_t size, uint64_t off,
	   uint64_t len, const struct csum *sum,
	   struct evbuffer_file_segment *seg)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	char fid[FID_STRLEN], etag[128], hex[65], num[32];
	char blocks[PROTO_BLOCKS_STRLEN];
	struct proto_blocks pb = {0};
	const char *inm;
	struct evbuffer *b;

	fid_fmt(&p->fid, fid);
	snprintf(etag, sizeof(etag), "\"%s-%" PRIu64 "-%u-%" PRIu64 "\"", fid,
		 p->dv, p->chunk_size, p->chunk);
	util_hex_encode(sum->sha, 32, hex);
	snprintf(num, sizeof(num), "%" PRIu64, size);
	evhttp_add_header(h, "Content-Type", "application/octet-stream");
	/* The URL names one content forever, so every cache may keep it
	 * for good; but a shared cache hands what it keeps to anyone who
	 * asks, token or not (RFC 9111 3.5 lets it store a reply to an
	 * authorized request only when told "public"). So "public" only for
	 * a volume vos made public; "private" keeps it in the client. */
	evhttp_add_header(h, "Cache-Control",
			  pub ? "public, max-age=31536000, immutable"
			      : "private, max-age=31536000, immutable");
	evhttp_add_header(h, "ETag", etag);
	evhttp_add_header(h, "X-Cairn-SHA256", hex);
	evhttp_add_header(h, "X-Cairn-Size", num);
	/* Block sums let a client serve the front of the chunk before the
	 * rest has arrived; an empty body has none. */
	pb.bsize = proto_block_size(p->chunk_size);
	pb.len = (uint32_t)len;
	pb.n = (uint32_t)((len + pb.bsize - 1) / pb.bsize);
	if (len && pb.n <= VOLD_BLOCKS) {
		memcpy(pb.crc, sum->crc, pb.n * sizeof(pb.crc[0]));
		if (proto_blocks_format(blocks, sizeof(blocks), &pb) > 0)
			evhttp_add_header(h, PROTO_BLOCKS_HEADER, blocks);
	}
	inm = evhttp_find_header(evhttp_request_get_input_headers(req),
				 "If-None-Match");
	if (inm && !strcmp(inm, etag)) {
		evhttp_send_reply(req, 304, reason(304), NULL);
		return;
	}
	b = evbuffer_new();
	if (!b) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	if (len && seg) {
		if (evbuffer_add_file_segment(b, seg, (ev_off_t)off,
					      (ev_off_t)len) != 0) {
			evbuffer_free(b);
			reply_err(req, EIO, 0, "cannot send chunk", 0);
			return;
		}
	} else if (len) {
		/* All holes: zeros. */
		struct evbuffer_iovec iov;

		if (evbuffer_reserve_space(b, (ev_ssize_t)len, &iov, 1) < 1) {
			evbuffer_free(b);
			reply_err(req, ENOMEM, 0, NULL, 0);
			return;
		}
		memset(iov.iov_base, 0, len);
		iov.iov_len = len;
		evbuffer_commit_space(b, &iov, 1);
	}
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

/* The fast path: a chunk GET answered on the loop, no disk wait (sendfile
 * of an already open file). @return true if it replied. */
static bool
chunk_from_cache(struct vold *vd, struct vvol *vol, struct evhttp_request *req,
		 const struct proto_path *p)
{
	struct ocache *oc = oc_find(vol, p->fid.oid);
	uint64_t off, len;

	if (!oc || oc->dv != p->dv || oc->cs != p->chunk_size)
		return false;
	if (p->chunk >= oc->nchunks && !(p->chunk == 0 && oc->size == 0)) {
		reply_err(req, ERANGE, 0, "chunk beyond end of file", 0);
		return true;
	}
	if (oc->size == 0) {
		static const struct csum empty = {{
			0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14,
			0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
			0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c,
			0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55}, {0}};

		send_chunk(vd, req, vol->public, p, 0, 0, 0, &empty, NULL);
		return true;
	}
	if (!oc->have || !oc->have[p->chunk])
		return false;
	off = p->chunk * oc->cs;
	len = oc->size - off < oc->cs ? oc->size - off : oc->cs;
	TAILQ_REMOVE(&vd->lru, oc, lru);
	TAILQ_INSERT_HEAD(&vd->lru, oc, lru);
	send_chunk(vd, req, vol->public, p, oc->size, off, len,
		   &oc->sum[p->chunk], oc->seg);
	return true;
}

/* ---- event streams (loop thread) ---- */

static void
sub_closed(struct evhttp_connection *evcon, void *arg)
{
	struct sub *s = arg;

	/* The connection is going away. A request libevent detached from it
	 * (client EOF) is ours to free; an attached one libevent frees. */
	if (evhttp_request_get_connection(s->req) == NULL)
		evhttp_send_reply_end(s->req);
	s->req = NULL;
	s->evcon = NULL;
	sub_drop(s, false);
}

/* Forget @s; with @close_conn, also close its connection (a client that
 * does not read). */
static void
sub_drop(struct sub *s, bool close_conn)
{
	struct vvol *vol = s->vol;

	TAILQ_REMOVE(&vol->subs, s, link);
	if (s->evcon) {
		evhttp_connection_set_closecb(s->evcon, NULL, NULL);
		if (close_conn)
			evhttp_connection_free(s->evcon);
		else if (s->req)
			evhttp_send_reply_end(s->req);
	}
	log_debug(LOG_EV, "event stream on '%s' ended", vol->name);
	free(s);
	vvol_put(vol);
}

static int
add_event_line(struct evbuffer *b, const struct proto_event *e)
{
	size_t len;
	char *line = proto_event_encode(e, &len);

	if (!line)
		return -ENOMEM;
	evbuffer_add_reference(b, line, len, free_cb, NULL);
	return 0;
}

/* Send what @s has not seen yet; @ping sends a heartbeat if nothing else.
 * May drop @s. */
static void
sub_flush(struct sub *s, bool ping)
{
	struct vvol *vol = s->vol;
	struct evbuffer *b = evbuffer_new(), *q;
	struct proto_event e;
	size_t queued;

	if (!b)
		return;
	pthread_mutex_lock(&vol->evlock);
	if (s->next < vol->ring_first && s->next <= vol->ring_last) {
		/* What it missed is gone from the ring: tell it to
		 * revalidate everything, then carry on from now. */
		memset(&e, 0, sizeof(e));
		e.kind = PROTO_EV_RESET;
		e.seq = vol->ring_last;
		add_event_line(b, &e);
		s->next = vol->ring_last + 1;
	}
	while (s->next <= vol->ring_last)
		add_event_line(b, &vol->ring[s->next++ % VS_EVENT_RING]);
	if (ping && evbuffer_get_length(b) == 0) {
		memset(&e, 0, sizeof(e));
		e.kind = PROTO_EV_PING;
		e.seq = vol->ring_last;
		add_event_line(b, &e);
	}
	pthread_mutex_unlock(&vol->evlock);
	if (evbuffer_get_length(b) == 0) {
		evbuffer_free(b);
		return;
	}
	q = bufferevent_get_output(evhttp_connection_get_bufferevent(s->evcon));
	queued = evbuffer_get_length(q);
	if (queued + evbuffer_get_length(b) > EVQ_MAX) {
		log_info(LOG_EV, "dropping event stream client of '%s': %zu "
			 "bytes unread", vol->name, queued);
		evbuffer_free(b);
		sub_drop(s, true);
		return;
	}
	evhttp_send_reply_chunk(s->req, b);
	evbuffer_free(b);
	s->last_ms = util_now_ms();
}

static void
vol_flush_subs(struct vvol *vol)
{
	struct sub *s, *n;

	for (s = TAILQ_FIRST(&vol->subs); s; s = n) {
		n = TAILQ_NEXT(s, link);
		sub_flush(s, false);
	}
}

/* The volume is open (ring loaded): start the stream of @r. */
static void
events_start(struct rjob *r)
{
	struct vvol *vol = r->vol;
	struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
	struct sub *s = calloc(1, sizeof(*s));
	uint64_t first, last;

	if (!s) {
		reply_err(r->req, ENOMEM, 0, NULL, 0);
		return;
	}
	pthread_mutex_lock(&vol->evlock);
	first = vol->ring_first;
	last = vol->ring_last;
	pthread_mutex_unlock(&vol->evlock);
	s->vol = vol;
	s->req = r->req;
	s->evcon = evhttp_request_get_connection(r->req);
	if (!s->evcon) {
		free(s);
		evhttp_send_reply(r->req, 200, "OK", NULL); /* frees it */
		return;
	}
	if (!r->path.has_since) {
		s->next = last + 1;
	} else if (r->path.since > last) {
		/* A sequence we never gave out (the server was restored from
		 * an older copy): the client's cache cannot be trusted. */
		s->next = 0;
	} else {
		s->next = r->path.since + 1;
		if (s->next < first && s->next <= last)
			s->next = 0;
	}
	evhttp_add_header(h, "Content-Type", "application/x-ndjson");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_send_reply_start(r->req, 200, "OK");
	vol->refs++;
	TAILQ_INSERT_TAIL(&vol->subs, s, link);
	evhttp_connection_set_closecb(s->evcon, sub_closed, s);
	s->last_ms = util_now_ms();
	if (s->next == 0) {
		struct evbuffer *b = evbuffer_new();
		struct proto_event e = {.kind = PROTO_EV_RESET, .seq = last};

		if (b) {
			add_event_line(b, &e);
			evhttp_send_reply_chunk(s->req, b);
			evbuffer_free(b);
		}
		s->next = last + 1;
	}
	sub_flush(s, false);
}

/* ---- jobs (worker side) ---- */

/* SHA-256 of [@off, @off+@len) of @fd and CRC32C of each @bsize block of
 * it (the range is at most one chunk, so VOLD_BLOCKS blocks), in one pass.
 * Bytes past the end of the file read as zeros. */
static int
sum_range(int fd, uint64_t off, uint64_t len, uint32_t bsize,
	  struct csum *out)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	char *buf = malloc(1u << 18);
	unsigned int olen = 0;
	uint64_t done = 0;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if ((len + bsize - 1) / bsize > VOLD_BLOCKS) {
		rc = -EINVAL;
		goto out;
	}
	if (!ctx || !buf || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		rc = -ENOMEM;
		goto out;
	}
	while (done < len) {
		size_t want = len - done > (1u << 18) ? (1u << 18)
						      : (size_t)(len - done);
		ssize_t n = fd >= 0 ? util_pread_all(fd, buf, want,
						     (off_t)(off + done))
				    : 0;

		if (n < 0) {
			rc = (int)n;
			goto out;
		}
		/* A short read (holes at the end never stored) is zeros. */
		if ((size_t)n < want)
			memset(buf + n, 0, want - (size_t)n);
		EVP_DigestUpdate(ctx, buf, want);
		for (size_t at = 0; at < want;) {
			uint64_t pos = done + at;
			size_t b = (size_t)(pos / bsize);
			size_t l = bsize - (size_t)(pos % bsize);

			if (l > want - at)
				l = want - at;
			out->crc[b] = crc32c(out->crc[b], buf + at, l);
			at += l;
		}
		done += want;
	}
	if (EVP_DigestFinal_ex(ctx, out->sha, &olen) != 1)
		rc = -EIO;
out:
	free(buf);
	EVP_MD_CTX_free(ctx);
	return rc;
}

static const char *
body_of(struct rjob *r, size_t *len)
{
	*len = r->in ? evbuffer_get_length(r->in) : 0;
	if (!*len)
		return "";
	return (const char *)evbuffer_pullup(r->in, -1);
}

static void
run_locked(struct rjob *r)
{
	struct vvol *vol = r->vol;
	struct vs_vol *vs = vol->vs;
	const char *body;
	size_t blen;
	int rc = 0;

	switch (r->kind) {
	case J_VOLINFO: {
		struct vs_volinfo vi;
		struct proto_volinfo pv;

		rc = vs_vol_info(vs, &vi);
		if (rc)
			break;
		memset(&pv, 0, sizeof(pv));
		pv.version = PROTO_VERSION;
		snprintf(pv.name, sizeof(pv.name), "%s", vi.name);
		pv.id = vi.id;
		pv.root = vi.root;
		pv.event_seq = vi.event_seq;
		pv.bytes_used = vi.bytes_used;
		pv.bytes_limit = vi.bytes_limit;
		pv.files_used = vi.files_used;
		pv.files_limit = vi.files_limit;
		pv.readonly = r->readonly;
		r->out = proto_volinfo_encode(&pv, &r->outlen);
		if (!r->out)
			rc = -errno;
		break;
	}
	case J_GETATTR:
		/* Decoded before the lock (job_run); only the lookups here. */
		for (size_t i = 0; i < r->nfids; i++)
			r->errs[i] = -vs_getattr(vs, &r->fids[i], &r->attrs[i]);
		break;
	case J_DIR:
		/* job_run pages through run_dir_locked(). */
		rc = -EINVAL;
		break;
	case J_LINK: {
		char *t = NULL;

		rc = vs_readlink(vs, &r->path.fid, &t);
		if (rc == -EINVAL)
			r->msg = "not a symlink";
		if (rc)
			break;
		r->out = proto_link_encode(t, &r->outlen);
		if (!r->out)
			rc = -errno;
		free(t);
		break;
	}
	case J_XATTR: {
		struct proto_xattr *x = NULL;
		size_t n = 0;
		uint64_t dv = 0;

		rc = vs_xattrs(vs, &r->path.fid, &dv, &x, &n);
		if (rc)
			break;
		r->out = proto_xattrs_encode(&r->path.fid, dv, x, n,
					     &r->outlen);
		if (!r->out)
			rc = -errno;
		proto_xattrs_free(x, n);
		break;
	}
	case J_DATA:
		rc = vs_data_open(vs, &r->path.fid, r->path.dv, &r->fd,
				  &r->size, &r->cur_dv);
		if (rc == -ESTALE)
			r->msg = "data version is not current";
		/* A flag that cannot be read is no flag: private. */
		if (!rc)
			vs_vol_public(vs, &r->pub);
		break;
	case J_EVENTS:
		break;
	case J_OP:
		rc = vs_apply(vs, &r->op, &r->rep);
		if (!rc && r->rep.nev)
			ring_append(vol, r->rep.ev, r->rep.nev);
		break;
	case J_STAGE:
		body = body_of(r, &blen);
		rc = vs_stage_put(vs, &r->path.fid, r->path.txid, r->path.chunk,
				  r->path.chunk_size, body, blen);
		if (rc == -E2BIG)
			r->msg = "staged chunk larger than the chunk size";
		if (rc == -EDQUOT)
			r->msg = "staged bytes would pass the volume quota or "
				 "the staging cap";
		if (!rc)
			r->status = 204;
		break;
	case J_GC:
		vs_stage_gc(vs, vol->vd->stage_expire_s);
		break;
	case J_FLAGS:
		rc = vs_vol_public(vs, &r->pub);
		break;
	}
	if (rc)
		r->err = -rc;
}

/* Worker: take vol->lock and open the volume. @return 0 with the lock
 * held, or -errno (r->err set) without it. */
static int
lock_open(struct rjob *r)
{
	struct vvol *vol = r->vol;
	int rc;

	pthread_mutex_lock(&vol->lock);
	rc = vvol_open_locked(vol);
	if (rc) {
		pthread_mutex_unlock(&vol->lock);
		r->err = -rc;
		if (rc == -ENOENT)
			r->msg = "no such volume";
		else
			log_err(LOG_VOL, "cannot open volume '%s': %s",
				vol->name, strerror(-rc));
	}
	return rc;
}

/* Worker, before the lock: check the size of a getattr or op body
 * against its route's limit, then parse it, so a big or malformed body
 * costs the volume's other clients nothing. @return 0 or sets r->err. */
static int
decode_body(struct rjob *r)
{
	size_t max = r->kind == J_GETATTR ? PROTO_GETATTR_BODY_MAX
					  : PROTO_OP_BODY_MAX;
	size_t blen = r->in ? evbuffer_get_length(r->in) : 0;
	const char *body;
	int rc;

	if (blen > max) {
		r->err = E2BIG;
		r->msg = "body too large for this route";
		return -E2BIG;
	}
	body = body_of(r, &blen);
	if (!body) {
		r->err = ENOMEM;
		return -ENOMEM;
	}
	if (r->kind == J_OP) {
		rc = proto_op_decode(body, blen, &r->op);
		if (rc)
			r->msg = rc == -E2BIG ? "too many chunks"
					      : "malformed operation";
	} else {
		rc = proto_getattr_req_decode(body, blen, &r->fids, &r->nfids);
		if (rc)
			r->msg = rc == -E2BIG ? "too many fids"
					      : "malformed getattr request";
		if (!rc) {
			r->attrs = calloc(r->nfids ? r->nfids : 1,
					  sizeof(*r->attrs));
			r->errs = calloc(r->nfids ? r->nfids : 1,
					 sizeof(*r->errs));
			if (!r->attrs || !r->errs)
				rc = -ENOMEM;
		}
	}
	/* The body is parsed: give its memory back before we queue on the
	 * lock. */
	if (r->in)
		evbuffer_free(r->in);
	r->in = NULL;
	if (rc)
		r->err = -rc;
	return rc;
}

/*
 * Worker: a listing. With ?limit=, one page under the lock. Without (a
 * version 1 client wants the whole directory), the same pages one after
 * the other, the lock released between them so writers and other readers
 * get in; if the directory changes meanwhile, start over, and after
 * DIR_RESTARTS such tries read all pages in one hold of the lock. The
 * reply is encoded after the lock is released (job_run).
 */
#define DIR_RESTARTS 8

static void
run_dir(struct rjob *r)
{
	const struct proto_dir_cursor *from =
		r->path.has_cursor ? &r->path.cursor : NULL;
	size_t limit = r->path.limit ? r->path.limit : PROTO_DIR_PAGE_MAX;
	struct proto_dir page = {0};
	struct proto_dir_cursor at;
	struct proto_attr a;
	bool hold = false, locked = true;
	int rc, tries = 0;

	if (lock_open(r))
		return;
	rc = vs_getattr(r->vol->vs, &r->path.fid, &a);
	if (!rc && a.type != PROTO_T_DIR)
		rc = -ENOTDIR;
	if (!rc) {
		r->etag_dv = a.dv;
		/* A revalidation names the DV of the whole listing: only a
		 * first page can be "not modified". */
		if (r->has_inm && r->inm_dv == a.dv && !from) {
			r->status = 304;
			pthread_mutex_unlock(&r->vol->lock);
			return;
		}
	}
	for (;;) {
		if (!rc)
			rc = vs_readdir_page(r->vol->vs, &r->path.fid, from,
					     limit, &page, &r->next, &r->more);
		if (!hold || rc || r->path.limit || !r->more) {
			pthread_mutex_unlock(&r->vol->lock);
			locked = false;
		}
		if (rc == -ESTALE)
			r->cur_dv = page.dir.dv;
		if (rc == -ESTALE && r->path.limit) {
			/* The client's cursor is for an older DV. */
			r->msg = "directory changed since the first page";
			break;
		}
		if (rc == -ESTALE && tries++ < DIR_RESTARTS) {
			proto_dir_release(&r->dir);
			from = NULL;
			/* The last try keeps the lock across its pages, so a
			 * directory that changes faster than it can be read
			 * page by page still lists (as it did before pages). */
			hold = tries == DIR_RESTARTS;
			rc = lock_open(r);
			if (rc)
				return;
			locked = true;
			continue;
		}
		if (rc)
			break;
		if (!r->dir.ents && !r->dir.n) {
			r->dir = page;
		} else {
			rc = proto_dir_append(&r->dir, &page);
			if (rc == -E2BIG)
				r->msg = "directory too large for one reply: "
					 "ask for pages (?limit=)";
			if (rc)
				break;
		}
		r->etag_dv = r->dir.dir.dv;
		if (r->path.limit || !r->more)
			break;
		/* A copy: vs_readdir_page() writes r->next first. */
		at = r->next;
		from = &at;
		if (!locked) {
			rc = lock_open(r);
			if (rc)
				return;
			locked = true;
		}
	}
	if (locked)
		pthread_mutex_unlock(&r->vol->lock);
	if (rc == -ESTALE && !r->msg)
		r->msg = "directory kept changing while it was listed";
	if (rc) {
		r->err = -rc;
		proto_dir_release(&r->dir);
	}
}

static void
job_run(struct vold_job *j)
{
	struct rjob *r = (struct rjob *)j;
	struct vvol *vol = r->vol;
	int rc;

	if ((r->kind == J_GETATTR || r->kind == J_OP) && decode_body(r))
		return;
	if (r->kind == J_DIR) {
		run_dir(r);
		if (!r->err && r->status != 304) {
			char cur[PROTO_CURSOR_MAX] = "";

			if (r->more)
				proto_cursor_format(cur, sizeof(cur), &r->next);
			r->out =
				proto_dir_page_encode(&r->dir, cur, &r->outlen);
			if (!r->out)
				r->err = errno ? errno : ENOMEM;
			proto_dir_release(&r->dir);
		}
		return;
	}
	if (lock_open(r))
		return;
	run_locked(r);
	pthread_mutex_unlock(&vol->lock);
	if (r->kind == J_GETATTR && !r->err) {
		r->out = proto_attrs_encode(r->attrs, r->errs, r->nfids,
					    &r->outlen);
		if (!r->out)
			r->err = errno ? errno : ENOMEM;
	}
	/* Hash outside the lock: the file never changes under us. */
	if (r->kind == J_DATA && !r->err) {
		uint64_t cs = r->path.chunk_size;

		r->off = r->path.chunk * cs;
		if (r->off >= r->size) {
			if (!(r->path.chunk == 0 && r->size == 0)) {
				r->err = ERANGE;
				r->msg = "chunk beyond end of file";
			}
			r->len = 0;
		} else {
			r->len = r->size - r->off < cs ? r->size - r->off : cs;
		}
		if (!r->err) {
			rc = sum_range(r->fd, r->off, r->len,
				       proto_block_size(cs), &r->sum);
			if (rc)
				r->err = -rc;
		}
	}
}

/* ---- jobs (loop side) ---- */

static void
rjob_free(struct rjob *r)
{
	if (r->in)
		evbuffer_free(r->in);
	if (r->fd >= 0)
		close(r->fd);
	free(r->out);
	free(r->rep.body);
	free(r->fids);
	free(r->attrs);
	free(r->errs);
	proto_op_release(&r->op);
	proto_dir_release(&r->dir);
	vvol_put(r->vol);
	free(r);
}

static void
done_data(struct rjob *r)
{
	struct vvol *vol = r->vol;
	struct ocache *oc = NULL;
	struct evbuffer_file_segment *seg = NULL;

	if (vol->gen == r->gen && !vol->dead) {
		oc = oc_insert(vol, r->path.fid.oid, r->path.dv, r->size, r->fd,
			       r->path.chunk_size);
		r->fd = -1;
		if (oc && oc->have && r->path.chunk < oc->nchunks) {
			oc->sum[r->path.chunk] = r->sum;
			oc->have[r->path.chunk] = 1;
		}
	}
	if (oc) {
		send_chunk(vol->vd, r->req, vol->public, &r->path, r->size,
			   r->off, r->len, &r->sum, oc->seg);
		return;
	}
	if (r->fd >= 0) {
		seg = evbuffer_file_segment_new(r->fd, 0, (ev_off_t)r->size,
						EVBUF_FS_CLOSE_ON_FREE |
							(vol->vd->ssl ?
								 EVBUF_FS_DISABLE_SENDFILE :
								 0));
		if (seg)
			r->fd = -1;
		else {
			reply_err(r->req, ENOMEM, 0, NULL, 0);
			return;
		}
	}
	send_chunk(vol->vd, r->req, vol->public, &r->path, r->size, r->off,
		   r->len, &r->sum, seg);
	if (seg)
		evbuffer_file_segment_free(seg);
}

static void
job_done(struct vold_job *j)
{
	struct rjob *r = (struct rjob *)j;
	struct vvol *vol = r->vol;
	char etag[32];

	if (r->kind == J_GC)
		goto out;
	if (r->kind == J_FLAGS) {
		vol->flags_pending = false;
		/* An unreadable flag makes the volume private, not stuck. */
		vol->public = !r->err && r->pub;
		goto out;
	}
	if (r->err == ENOENT && r->msg && !strcmp(r->msg, "no such volume")) {
		vvol_unlist(vol);
	} else if (!r->err) {
		vol->opened = true;
	}
	if (r->kind == J_OP && !r->err) {
		/* A new DV or a gone object: cached chunk SHAs of the old
		 * one must not be served, and fills in flight are stale. */
		for (int i = 0; i < r->rep.nev; i++)
			if (r->rep.ev[i].kind == PROTO_EV_DATA ||
			    r->rep.ev[i].kind == PROTO_EV_GONE) {
				oc_drop(vol, r->rep.ev[i].fid.oid);
				vol->gen++;
			}
		if (r->rep.nev)
			vol_flush_subs(vol);
	}
	if (r->err) {
		reply_err(r->req, r->err, 0, r->msg, r->cur_dv);
		goto out;
	}
	switch (r->kind) {
	case J_DATA:
		vol->public = r->pub;
		done_data(r);
		break;
	case J_EVENTS:
		events_start(r);
		break;
	case J_OP:
		evhttp_add_header(evhttp_request_get_output_headers(r->req),
				  "Cache-Control", "no-store");
		reply_body(r->req, r->rep.status, "application/json",
			   r->rep.body, r->rep.len);
		r->rep.body = NULL;
		break;
	case J_STAGE:
		evhttp_send_reply(r->req, 204, reason(204), NULL);
		break;
	case J_DIR:
		snprintf(etag, sizeof(etag), "\"%" PRIu64 "\"", r->etag_dv);
		evhttp_add_header(evhttp_request_get_output_headers(r->req),
				  "ETag", etag);
		if (r->status == 304) {
			evhttp_send_reply(r->req, 304, reason(304), NULL);
			break;
		}
		reply_json(r->req, r->out, r->outlen);
		r->out = NULL;
		break;
	default:
		reply_json(r->req, r->out, r->outlen);
		r->out = NULL;
		break;
	}
out:
	rjob_free(r);
}

static struct rjob *
rjob_new(struct vold *vd, struct vvol *vol, enum jkind kind,
	 struct evhttp_request *req, const struct proto_path *p)
{
	struct rjob *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->job.run = job_run;
	r->job.done = job_done;
	r->kind = kind;
	r->vd = vd;
	r->vol = vol;
	r->req = req;
	r->fd = -1;
	if (p)
		r->path = *p;
	r->gen = vol->gen;
	return r;
}

/* ---- routing ---- */

/*
 * Check the bearer token of @req for @vol. @return 0, or replies. The
 * token must name the volume as it is now: its id and its token epoch
 * (vs_tokstate_get(), one fstatat() while nothing changed), so a token
 * of a removed and re-made volume, or one minted before `vos revoke`,
 * gets 401 like an expired one.
 */
static int
check_token(struct vold *vd, struct evhttp_request *req, const char *vol,
	    bool need_rw, bool *readonly)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req),
					   "Authorization");
	uint64_t now_ms = util_now_ms();
	struct token_info ti;
	struct vvol *vv;
	int rc;

	if (!h || strncmp(h, "Bearer ", 7)) {
		reply_err(req, EACCES, 401, "missing bearer token", 0);
		return -1;
	}
	h += 7;
	rc = token_verify(vd->key, vd->keylen, h, (uint64_t)time(NULL), &ti);
	if (rc) {
		struct token_info old;
		const char *why = "invalid or expired token";

		if (token_parse(h, &old) == 0 && old.version == 1)
			why = "old-format token: mint a new one with vos token";
		reply_err(req, EACCES, 401, why, 0);
		return -1;
	}
	if (strcmp(ti.vol, vol)) {
		reply_err(req, EPERM, 403, "token is for another volume", 0);
		return -1;
	}
	vv = vvol_get(vd, vol);
	if (!vv) {
		reply_err(req, ENOMEM, 0, NULL, 0);
		return -1;
	}
	/* Re-read at least once a second even if the file looks the same:
	 * an inode number may be reused within one mtime tick. */
	rc = vs_tokstate_get(vd->root, vol, now_ms - vv->ts_ms >= 1000,
			     &vv->ts);
	if (!rc && now_ms - vv->ts_ms >= 1000)
		vv->ts_ms = now_ms;
	if (rc == 0)
		rc = token_allows(&ti, vol, vv->ts.id, vv->ts.epoch, need_rw);
	vvol_put(vv);
	if (rc == -ESTALE) {
		reply_err(req, EACCES, 401,
			  "token revoked, or the volume was made again", 0);
		return -1;
	}
	if (rc == -EPERM) {
		reply_err(req, EPERM, 403,
			  "token does not allow this on this volume", 0);
		return -1;
	}
	if (rc == -ENOENT) {
		reply_err(req, ENOENT, 0, "no such volume", 0);
		return -1;
	}
	if (rc) {
		log_err(LOG_VOL, "cannot read the token state of '%s': %s", vol,
			strerror(-rc));
		reply_err(req, EIO, 0, "cannot read the volume's token state",
			  0);
		return -1;
	}
	*readonly = !ti.rw;
	return 0;
}

static bool
method_ok(enum proto_path_kind k, enum evhttp_cmd_type m)
{
	switch (k) {
	case PROTO_P_GETATTR:
	case PROTO_P_OP:
		return m == EVHTTP_REQ_POST;
	case PROTO_P_STAGE:
		return m == EVHTTP_REQ_PUT;
	default:
		return m == EVHTTP_REQ_GET;
	}
}

static void
on_request(struct evhttp_request *req, void *arg)
{
	struct vold *vd = arg;
	struct proto_path p;
	struct vvol *vol;
	struct rjob *r;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	const char *uri = evhttp_request_get_uri(req);
	bool ro = true;
	enum jkind kind;
	int rc;

	rc = uri ? proto_parse_path(uri, &p) : -EINVAL;
	if (rc) {
		reply_err(req, -rc, 0, rc == -ENOENT ? "no such route" :
				       rc == -ERANGE ? "chunk beyond end of file" :
						       "malformed request path", 0);
		return;
	}
	if (!method_ok(p.kind, evhttp_request_get_command(req))) {
		reply_err(req, EINVAL, 405, "method not allowed", 0);
		return;
	}
	if (p.kind == PROTO_P_PING) {
		char buf[128];
		int n = snprintf(buf, sizeof(buf),
				 "{\"protocol\": %d, \"server\": \"cairn-vold %s\"}",
				 PROTO_VERSION, PACKAGE_VERSION);

		reply_json(req, strndup(buf, (size_t)n), (size_t)n);
		return;
	}
	if (check_token(vd, req, p.vol,
			p.kind == PROTO_P_OP || p.kind == PROTO_P_STAGE, &ro))
		return;
	switch (p.kind) {
	case PROTO_P_VOL: kind = J_VOLINFO; break;
	case PROTO_P_GETATTR: kind = J_GETATTR; break;
	case PROTO_P_DIR: kind = J_DIR; break;
	case PROTO_P_LINK: kind = J_LINK; break;
	case PROTO_P_XATTR: kind = J_XATTR; break;
	case PROTO_P_DATA: kind = J_DATA; break;
	case PROTO_P_EVENTS: kind = J_EVENTS; break;
	case PROTO_P_OP: kind = J_OP; break;
	case PROTO_P_STAGE: kind = J_STAGE; break;
	default:
		reply_err(req, ENOENT, 0, "no such route", 0);
		return;
	}
	if ((kind == J_GETATTR || kind == J_OP) &&
	    evbuffer_get_length(in) > PROTO_BODY_MAX) {
		reply_err(req, E2BIG, 0, "body too large", 0);
		return;
	}
	if (kind == J_STAGE && evbuffer_get_length(in) > p.chunk_size) {
		reply_err(req, E2BIG, 0, "staged chunk larger than chunk size",
			  0);
		return;
	}
	vol = vvol_get(vd, p.vol);
	if (!vol) {
		reply_err(req, ENOMEM, 0, NULL, 0);
		return;
	}
	if (kind == J_DATA && chunk_from_cache(vd, vol, req, &p)) {
		vvol_put(vol);
		return;
	}
	r = rjob_new(vd, vol, kind, req, &p);
	if (!r) {
		vvol_put(vol);
		reply_err(req, ENOMEM, 0, NULL, 0);
		return;
	}
	r->readonly = ro;
	if (kind == J_DIR) {
		const char *inm = evhttp_find_header(
			evhttp_request_get_input_headers(req), "If-None-Match");
		char *end;

		if (inm && inm[0] == '"' && inm[1] >= '0' && inm[1] <= '9') {
			errno = 0;
			r->inm_dv = strtoull(inm + 1, &end, 10);
			r->has_inm = !errno && end[0] == '"' && !end[1];
		}
	}
	if (evbuffer_get_length(in)) {
		r->in = evbuffer_new();
		if (!r->in || evbuffer_add_buffer(r->in, in)) {
			rjob_free(r);
			reply_err(req, ENOMEM, 0, NULL, 0);
			return;
		}
	}
	vold_pool_submit(vd->pool, &r->job);
}

/* ---- housekeeping ---- */

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct vold *vd = arg;
	struct vvol *vol, *nv;
	uint64_t now = util_now_ms();

	for (vol = TAILQ_FIRST(&vd->vols); vol; vol = nv) {
		struct sub *s, *ns;
		char path[4096];
		struct stat st;
		dev_t dev;
		ino_t ino;

		nv = TAILQ_NEXT(vol, link);
		if (!vol->opened)
			continue;
		/* vos may remove (or remove and recreate) a volume while we
		 * serve it: then forget our handle. */
		pthread_mutex_lock(&vol->lock);
		dev = vol->dev;
		ino = vol->ino;
		pthread_mutex_unlock(&vol->lock);
		if (vs_vol_meta_path(vd->root, vol->name, path, sizeof(path)) ==
			    0 &&
		    (stat(path, &st) < 0 || st.st_ino != ino ||
		     st.st_dev != dev)) {
			log_info(LOG_VOL, "volume '%s' was removed", vol->name);
			vvol_unlist(vol);
			continue;
		}
		for (s = TAILQ_FIRST(&vol->subs); s; s = ns) {
			ns = TAILQ_NEXT(s, link);
			if (now - s->last_ms >= PING_MS)
				sub_flush(s, true);
		}
		/* vos setpublic changes the flag on disk: look every tick,
		 * so turning it off takes effect within a second, also for
		 * chunks answered from the cache on this thread. */
		if (!vol->flags_pending) {
			struct rjob *r = rjob_new(vd, vol, J_FLAGS, NULL, NULL);

			if (r) {
				vol->flags_pending = true;
				vol->refs++;
				vold_pool_submit(vd->pool, &r->job);
			}
		}
		if (now - vol->last_gc_ms >= vd->gc_every_ms) {
			struct rjob *r = rjob_new(vd, vol, J_GC, NULL, NULL);

			vol->last_gc_ms = now;
			if (r) {
				vol->refs++;
				vold_pool_submit(vd->pool, &r->job);
			}
		}
	}
}

void
vold_rescan(struct vold *vd)
{
	struct vvol *vol, *nv;

	for (vol = TAILQ_FIRST(&vd->vols); vol; vol = nv) {
		nv = TAILQ_NEXT(vol, link);
		if (TAILQ_EMPTY(&vol->subs))
			vvol_unlist(vol);
	}
	log_info(LOG_MAIN, "volumes will be reopened on next use");
}

/* ---- set-up ---- */

static struct bufferevent *
ssl_bevcb(struct event_base *base, void *arg)
{
	SSL *ssl = SSL_new(arg);

	if (!ssl)
		return NULL;
	return bufferevent_openssl_socket_new(base, -1, ssl,
					      BUFFEREVENT_SSL_ACCEPTING,
					      BEV_OPT_CLOSE_ON_FREE);
}

/* Log the oldest OpenSSL error (the queue is then cleared): what failed
 * and on which file, so a wrong path or a mismatched pair is plain. */
static void
ssl_log_err(const char *what, const char *file)
{
	unsigned long e = ERR_get_error();
	char msg[256];

	ERR_error_string_n(e, msg, sizeof(msg));
	ERR_clear_error();
	log_err(LOG_MAIN, "cannot %s '%s': %s", what, file,
		e ? msg : "unknown error");
}

static int
ssl_setup(struct vold *vd, const char *cert, const char *key)
{
	vd->ssl = SSL_CTX_new(TLS_server_method());
	if (!vd->ssl)
		return -ENOMEM;
	SSL_CTX_set_min_proto_version(vd->ssl, TLS1_2_VERSION);
	if (SSL_CTX_use_certificate_chain_file(vd->ssl, cert) != 1) {
		ssl_log_err("load certificate", cert);
		return -EINVAL;
	}
	if (SSL_CTX_use_PrivateKey_file(vd->ssl, key, SSL_FILETYPE_PEM) != 1) {
		ssl_log_err("load key", key);
		return -EINVAL;
	}
	if (SSL_CTX_check_private_key(vd->ssl) != 1) {
		ssl_log_err("use key (it does not match the certificate)", key);
		return -EINVAL;
	}
	evhttp_set_bevcb(vd->http, ssl_bevcb, vd->ssl);
	return 0;
}

/* Split "ADDR:PORT" / "[V6]:PORT". */
static int
parse_listen(const char *s, char *addr, size_t alen, int *port)
{
	const char *colon;
	char *end;
	long v;
	size_t n;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':')
			return -EINVAL;
		n = (size_t)(rb - s - 1);
		if (n >= alen)
			return -EINVAL;
		memcpy(addr, s + 1, n);
		addr[n] = 0;
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		n = (size_t)(colon - s);
		if (n >= alen || n == 0)
			return -EINVAL;
		memcpy(addr, s, n);
		addr[n] = 0;
	}
	errno = 0;
	v = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || v < 0 || v > 65535)
		return -EINVAL;
	*port = (int)v;
	return 0;
}

int
vold_start(const struct vold_conf *conf, struct event_base *base,
	   struct vs_root *root, const uint8_t *key, size_t keylen,
	   struct vold **out)
{
	struct vold *vd = calloc(1, sizeof(*vd));
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char addr[64];
	int port, rc;
	struct timeval tv = {1, 0};

	*out = NULL;
	if (!vd)
		return -ENOMEM;
	vd->base = base;
	vd->root = root;
	memcpy(vd->key, key, keylen);
	vd->keylen = keylen;
	vd->cache_max = conf->cache_objects > 0 ? conf->cache_objects : 1024;
	vd->stage_max = conf->stage_max;
	vd->stage_expire_s = conf->stage_expire_s > 0 ? conf->stage_expire_s
						      : VS_STAGE_AGE_S;
	/* Sweep often enough that an upload lives at most about 1.5 times
	 * its expiry, at least once an hour, at most once a second. */
	vd->gc_every_ms = (uint64_t)vd->stage_expire_s * 500;
	if (vd->gc_every_ms > STAGE_GC_S * 1000ull)
		vd->gc_every_ms = STAGE_GC_S * 1000ull;
	if (vd->gc_every_ms < 1000)
		vd->gc_every_ms = 1000;
	TAILQ_INIT(&vd->lru);
	TAILQ_INIT(&vd->vols);
	rc = parse_listen(conf->listen ? conf->listen : "127.0.0.1:7070", addr,
			  sizeof(addr), &port);
	if (rc) {
		log_err(LOG_MAIN, "bad listen address '%s'", conf->listen);
		goto fail;
	}
	vd->http = evhttp_new(base);
	vd->pool = vold_pool_new(base, conf->workers > 0 ? conf->workers : 4);
	vd->tick = event_new(base, -1, EV_PERSIST, on_tick, vd);
	if (!vd->http || !vd->pool || !vd->tick) {
		rc = -ENOMEM;
		goto fail;
	}
	evhttp_set_max_headers_size(vd->http, 16384);
	/* The largest body is a 64 MiB JSON op/getattr; a staged chunk is at
	 * most 4 MiB and checked per request against its ?size=. */
	evhttp_set_max_body_size(vd->http, PROTO_BODY_MAX + 65536);
	evhttp_set_timeout(vd->http, conf->timeout_s > 0 ? conf->timeout_s : 60);
	/* Let every method we can name reach on_request, so a wrong one
	 * gets our 405 with a JSON body instead of evhttp's bare 501. */
	evhttp_set_allowed_methods(vd->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
						     EVHTTP_REQ_PUT |
						     EVHTTP_REQ_HEAD |
						     EVHTTP_REQ_DELETE |
						     EVHTTP_REQ_OPTIONS |
						     EVHTTP_REQ_PATCH);
	evhttp_set_gencb(vd->http, on_request, vd);
	if (conf->cert && conf->key) {
		rc = ssl_setup(vd, conf->cert, conf->key);
		if (rc)
			goto fail;
	} else if (conf->cert || conf->key) {
		log_err(LOG_MAIN, "HTTPS needs both a certificate and a key");
		rc = -EINVAL;
		goto fail;
	}
	vd->bound = evhttp_bind_socket_with_handle(vd->http, addr,
						   (ev_uint16_t)port);
	if (!vd->bound) {
		rc = errno ? -errno : -EADDRINUSE;
		log_err(LOG_MAIN, "cannot listen on '%s': %s", conf->listen,
			strerror(-rc));
		goto fail;
	}
	/* Replies are a header write then a body (sendfile): without
	 * TCP_NODELAY, Nagle holds the tail until the client's delayed ACK,
	 * 40 ms per request. Accepted sockets inherit it on Linux. */
	{
		int one = 1;

		setsockopt(evhttp_bound_socket_get_fd(vd->bound), IPPROTO_TCP,
			   TCP_NODELAY, &one, sizeof(one));
	}
	if (getsockname(evhttp_bound_socket_get_fd(vd->bound),
			(struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET6)
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		else
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	vd->port = port;
	snprintf(vd->addr, sizeof(vd->addr), strchr(addr, ':') ? "[%s]:%d" :
								    "%s:%d",
		 addr, port);
	event_add(vd->tick, &tv);
	*out = vd;
	return 0;
fail:
	vold_stop(vd);
	return rc;
}

int
vold_port(const struct vold *vd)
{
	return vd->port;
}

const char *
vold_addr(const struct vold *vd)
{
	return vd->addr;
}

void
vold_stop(struct vold *vd)
{
	struct vvol *vol;

	if (!vd)
		return;
	if (vd->bound)
		evhttp_del_accept_socket(vd->http, vd->bound);
	vd->bound = NULL;
	if (vd->tick)
		event_free(vd->tick);
	vd->tick = NULL;
	while ((vol = TAILQ_FIRST(&vd->vols))) {
		while (!TAILQ_EMPTY(&vol->subs))
			sub_drop(TAILQ_FIRST(&vol->subs), false);
		vvol_unlist(vol);
	}
	/* Let the jobs in flight finish and answer (bounded): their
	 * requests belong to connections evhttp_free() would free. */
	if (vd->pool) {
		uint64_t until = util_now_ms() + 30000;

		while (vold_pool_pending(vd->pool) && util_now_ms() < until)
			event_base_loop(vd->base, EVLOOP_ONCE);
	}
	if (vd->http)
		evhttp_free(vd->http);
	vold_pool_free(vd->pool);
	while ((vol = TAILQ_FIRST(&vd->vols)))
		vvol_unlist(vol);
	if (vd->ssl)
		SSL_CTX_free(vd->ssl);
	memset(vd->key, 0, sizeof(vd->key));
	free(vd);
}
