/*
 * vold_http.c - cairn-vold's HTTP front: routes every request of
 * doc/protocol.md, checks tokens, hands disk work to the worker pool and
 * sends the replies; keeps the event streams and a cache of open data
 * chunk objects with chunk SHA-256s so repeated chunk GETs are served from
 * the loop with sendfile. It does not know the on-disk format (volstore.c does).
 * Between the sockets and evhttp sits the admission layer (struct vconn):
 * connection caps, the receive deadline, and the decision about each
 * request from its head before any body is read (doc/protocol.md,
 * "Limits").
 *
 * Threads: the loop thread owns every evhttp object, the volume registry,
 * the chunk cache and the subscribers. Workers touch a volume only through
 * vvol->lock (its vs_vol handle: tdb is not thread-safe), vvol->evlock
 * (the in-memory event ring, which workers append to in commit order while
 * holding vvol->lock) and vvol->gclock (the queue of mutations waiting for
 * a group commit).
 *
 * Group commits. A mutation (POST /op or /batch) is queued on vvol->gcq
 * by the loop as it is submitted to the pool. Its worker decodes the body
 * outside every lock (GC_DECODING: leaders leave it alone), marks it
 * GC_READY and takes vvol->lock. Whoever gets the lock first takes every
 * queued mutation that is not being decoded (up to GC_MAX_OPS ops),
 * decodes those no worker got to yet (GC_RAW: they would wait for this
 * commit anyway), and applies them with vs_apply_group(): one tdb
 * transaction, one durable commit for all. A worker that gets the lock
 * and finds its job done (gc_done) just goes on to encode its reply. The
 * leader writes a job's results before it sets gc_done under gclock and
 * never touches the job after that. So a commit costs one fsync sequence
 * however many requests were waiting, also more than there are workers.
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
#include <event2/listener.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "base/crc32c.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/proto.h"
#include "common/token.h"
#include "common/util.h"
#include "vol/vold.h"
#include "vol/vold_admit.h"
#include "vol/vold_pool.h"
#include "vol/volstore.h"

#define EVQ_MAX (4u << 20)	/* queued stream bytes before a drop */
#define GC_MAX_OPS 1024		/* ops in one group commit */
#define PING_MS 15000
#define OC_HASH 1024
/* Block sums per chunk: proto_block_size() makes at most 16 blocks. */
#define VOLD_BLOCKS 16
/* Sums outlive the open objects (cache-objects fds of them): a chunk reply
 * whose objects were let go keeps its sums, up to this many replies (~200
 * bytes each), so a GET of a chunk hashed before costs a worker an open,
 * not another pass over the chunk. */
#define OC_SUM_ENTRIES 65536
#define STAGE_GC_S 3600 /* staging expiry checked at least this often */
#define VCONN_HASH 256
/* Read high-water mark below the admission filter: what one connection
 * may hold unparsed (a request head being looked at, or a pipelined
 * request waiting for the reply before it). Above VOLD_HEAD_MAX so a
 * whole head always fits. */
#define VCONN_UNDER_WM (64u * 1024)
/* Bytes libevent may write to a connection's socket in one call. */
#define VCONN_MAX_WRITE (1024 * 1024)
#define EMFILE_PAUSE_MS 250
#define LOG_EVERY_MS 10000
/* Requests the admission filter refused reach on_request() under this
 * path, followed by the refusal's index; any client may send it and get
 * that refusal, which tells it nothing. */
#define VOLD_REFUSED_PATH "/.cairn-refused/"

struct vold;
struct vvol;

/*
 * Metrics (doc/protocol.md "Metrics"): what GET /metrics on the metrics
 * listener shows. A request is counted when its reply has gone out
 * (on_req_done), under its route and status; its duration runs from its
 * complete head to then. Counters of the loop thread are plain integers;
 * the commit counters are updated by workers, so they are atomic.
 */
enum vroute {
	VR_PING,
	VR_VOL,
	VR_GETATTR,
	VR_DIR,
	VR_LINK,
	VR_XATTR,
	VR_DATA,
	VR_EVENTS,
	VR_OP,
	VR_BATCH,
	VR_STAGE,
	VR_METRICS,
	VR_UNKNOWN, /* no such route, a malformed path */
	VR_REFUSED, /* refused by the admission filter from its head */
	VR_COUNT
};

static const char *const vroute_names[VR_COUNT] = {
	"ping",	 "volinfo", "getattr", "dir",	  "link",
	"xattr", "data",    "events",  "op",	  "batch",
	"stage", "metrics", "unknown", "refused",
};

/* The statuses cairn-vold answers with (reason()); anything else is
 * counted as code="other". */
static const int vstatus[] = {200, 204, 304, 400, 401, 403, 404,
			      405, 409, 410, 411, 412, 413, 416,
			      429, 431, 500, 501, 503, 507};
#define VSTATUS_N (sizeof(vstatus) / sizeof(vstatus[0]) + 1)

/* Why the admission layer turned something away. */
enum vrefusal {
	VREF_CONN_ADDR,	   /* a connection: its address has too many */
	VREF_CONN_MAX,	   /* accepting paused: max_conns reached */
	VREF_DESCRIPTORS,  /* accepting paused: out of descriptors */
	VREF_DEADLINE,	   /* a request not received within the deadline */
	VREF_TOKEN,	   /* a request body refused for its token */
	VREF_TOO_LARGE,	   /* ... for its size */
	VREF_CHUNKED,	   /* ... without a Content-Length */
	VREF_BAD_HEAD,	   /* a malformed head */
	VREF_BODY_BUDGET,  /* too many bodies held at once */
	VREF_STREAMS,	   /* an event stream past max_streams_per_token */
	VREF_COUNT
};

static const char *const vrefusal_names[VREF_COUNT] = {
	"connections_per_address", "max_connections", "descriptors",
	"request_deadline", "token", "body_too_large", "chunked",
	"bad_head", "body_budget", "streams_per_token",
};

struct vold_stats {
	uint64_t req[VR_COUNT][VSTATUS_N]; /* loop thread */
	struct metrics_hist lat[VR_COUNT]; /* loop thread (microseconds) */
	uint64_t bytes_in, bytes_out;	   /* loop thread */
	uint64_t refused[VREF_COUNT];	   /* loop thread */
	struct metrics_counter commits[2]; /* workers: ops committed,
					      [0] applied, [1] refused */
	struct metrics_hist commit_lat;	   /* workers: one group commit's
					      time (vs_apply_group()) */
	struct metrics_counter hashes;	   /* workers: chunks hashed */
};

/* What a chunk GET reply carries about its body: the SHA-256 of the whole
 * (X-Cairn-SHA256) and the CRC32C of each block (X-Cairn-Blocks). */
struct csum {
	uint8_t sha[32];
	uint32_t crc[VOLD_BLOCKS];
};

/* One piece of a chunk reply: an open chunk object's bytes, or zeros. */
struct oseg {
	struct evbuffer_file_segment *seg; /* NULL: @len zeros */
	uint64_t len;
};

/* One chunk reply of (fid, dv, chunk size, chunk) ready to send: its sums
 * and the open pieces of chunk objects that hold its bytes (loop thread).
 * The objects never change, so the entry stays right for that URL; it is
 * dropped when the DV stops being current (job_done). Every entry is on
 * vd->lru; the open ones also on vd->olru. A closed entry let its pieces
 * go (fds are what cache-objects bounds) and keeps only its sums, for the
 * worker that opens the objects again (it still checks the DV). */
struct ocache {
	TAILQ_ENTRY(ocache) lru;
	TAILQ_ENTRY(ocache) olru; /* while !closed */
	LIST_ENTRY(ocache) hlink;
	bool closed;
	struct vvol *vol;
	uint8_t oid[16];
	uint64_t dv, size, chunk, off, len;
	uint32_t cs;
	struct csum sum;
	size_t weight; /* what it counts in vd->ncache: its fds, at least 1 */
	size_t nseg;
	struct oseg seg[];
};

/* An event stream client (loop thread). */
struct sub {
	TAILQ_ENTRY(sub) link;
	struct vvol *vol;
	struct evhttp_request *req;
	struct evhttp_connection *evcon;
	uint64_t next;	  /* next seq to send */
	uint64_t last_ms; /* last write (for pings) */
	char *token;	  /* the bearer token it was opened with */
	uint64_t expiry;  /* the token's expiry (Unix s), 0 = never */
	uint32_t volid;	  /* the volume id and token epoch the token */
	uint64_t epoch;	  /* names: the stream ends when either moves */
};

/*
 * One accepted connection, as the admission filter sees it (loop thread).
 * libevent 2.1 has neither evhttp_set_newreqcb() nor a way to hand an
 * accepted socket to evhttp ourselves (evhttp_get_request() is static),
 * so the one place to stand between the socket and evhttp's parser is the
 * bufferevent evhttp_set_bevcb() lets us make: a filter over the socket
 * (or TLS) bufferevent. It holds each request head until it is complete,
 * decides from it alone (route, Content-Length, token), and then passes
 * exactly that head and at most Content-Length body bytes, so evhttp never
 * buffers a byte we did not admit. Its lifetime is the filter's: the
 * filter's free_context (vconn_free) is the one close callback that runs
 * for every connection however it ends, which is why the counts live
 * here and not in evhttp_connection_set_closecb() (that one is evhttp's to
 * call only once the connection is "connected", and the event streams
 * already use it).
 */
enum vconn_state {
	VC_HEAD,    /* waiting for a complete request head */
	VC_BODY,    /* passing the admitted body (body_left bytes to go) */
	VC_BUSY,    /* request passed; evhttp has not replied yet */
	VC_DISCARD, /* refused or cut off: input is dropped until the close */
};

struct vconn {
	TAILQ_ENTRY(vconn) link;
	LIST_ENTRY(vconn) hlink; /* vd->conn_hash, by bev */
	struct vold *vd;	 /* NULL once vold_stop() let go */
	struct bufferevent *bev;   /* the filter, which evhttp owns */
	struct bufferevent *under; /* the socket or TLS bufferevent */
	struct event *kick;	   /* admission of the peer; resume */
	struct event *deadline;	   /* the request's receive deadline */
	struct event *wdone;	   /* all output handed to the kernel */
	struct event *flush;	   /* a mutation's reply: write it now */
	bool tls;		   /* @under speaks TLS */
	bool flush_pending;	   /* @flush is active */
	struct evbuffer_cb_entry *fout_cb, *uout_cb;
	struct sockaddr_storage peer;
	socklen_t peerlen;
	bool admit_pending; /* peer address not checked yet */
	bool timing;	    /* deadline armed */
	enum vconn_state state;
	enum vroute route;  /* of the request being answered */
	uint64_t t0_us;	    /* its head was complete (metrics_now_us()) */
	struct evbuffer_cb_entry *uin_cb;
	uint64_t body_left;
	uint64_t body_held; /* its share of vd->body_held */
	size_t scanned;	    /* head bytes searched for its end so far */
};

struct rjob;

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
	/* The id of the volume the handle opened (0: not yet); set by a
	 * worker at open, read by the loop: atomic. */
	uint32_t vid;

	pthread_mutex_t evlock;
	struct proto_event *ring;	/* protected by evlock */
	uint64_t ring_first, ring_last; /* protected by evlock */

	pthread_mutex_t gclock;
	TAILQ_HEAD(, rjob) gcq;	/* protected by gclock: mutations waiting
				   for a group commit */
};

/* Slots of the verified-token cache (a power of two). */
#define TOKC_SLOTS 32

struct vold {
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	struct vold_pool *pool;
	struct vs_root *root;
	SSL_CTX *ssl;
	uint8_t key[TOKEN_KEY_MAX];
	size_t keylen;
	/* Tokens whose MAC verified (token_verified()), loop thread. */
	struct tok_seen {
		size_t len; /* 0: empty */
		char tok[TOKEN_MAX + 1];
		struct token_info ti;
	} tokc[TOKC_SLOTS];
	int port;
	char addr[80];
	int cache_max;
	int ncache;
	uint64_t stage_max;	/* bytes staged per volume, 0 = quota only */
	bool journal;		/* open volumes with VS_JOURNAL */
	int64_t stage_expire_s; /* staged uploads live this long */
	uint64_t gc_every_ms;	/* how often each volume's staging is swept */
	TAILQ_HEAD(oc_lru, ocache) lru;
	TAILQ_HEAD(oc_olru, ocache) olru;
	int nentries; /* on lru: open and closed */
	TAILQ_HEAD(, vvol) vols;
	struct event *tick;
	LIST_ENTRY(vold) all; /* all_volds */

	/* Connection admission (loop thread). */
	TAILQ_HEAD(, vconn) conns;
	LIST_HEAD(, vconn) conn_hash[VCONN_HASH];
	int nconns;
	int max_conns, max_conns_addr, max_streams_token;
	int deadline_s;
	int timeout_s; /* evhttp's inactivity timeout */
	uint64_t body_held; /* admitted bodies of requests not yet answered */
	bool accept_full;   /* not accepting: max_conns reached */
	bool accept_emfile; /* not accepting: out of descriptors */
	struct event *resume; /* ends the descriptor pause */
	uint64_t log_full_ms, log_emfile_ms, log_addr_ms, log_deadline_ms;
	uint64_t log_stream_ms;
	int alog_fd; /* access log (vold_set_access_log), -1: none */

	/* The metrics listener (conf->metrics_listen), or NULL: plain HTTP,
	 * GET /metrics only, through the same admission filter. */
	struct evhttp *mhttp;
	struct evhttp_bound_socket *mbound;
	int mport;
	char maddr[80];
	struct vold_stats st;
};

/* Every running server, to find ours from the listener's error callback
 * (evhttp gives the listener its own argument). Loop thread. */
static LIST_HEAD(, vold) all_volds = LIST_HEAD_INITIALIZER(all_volds);

enum jkind {
	J_VOLINFO,
	J_GETATTR,
	J_DIR,
	J_LINK,
	J_XATTR,
	J_DATA,
	J_EVENTS,
	J_OP,
	J_BATCH,
	J_STAGE,
	J_GC,
	J_FLAGS,
	J_STAT, /* a volume's usage and quota, for a scrape */
};

struct scrape;

/* Where a mutation is on its way to a group commit (vvol->gcq). */
enum gc_state {
	GC_RAW = 0,  /* queued by the loop, body not decoded */
	GC_DECODING, /* its worker decodes it (outside the locks) */
	GC_READY,    /* decoded, waiting for a leader */
	GC_TAKEN,    /* off the queue: in a group, or refused */
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
	int proto;		/* the client's protocol (PROTO_HDR_VERSION) */
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
	struct proto_batch batch; /* batch */
	struct vs_reply *reps;	  /* batch: one per op */
	TAILQ_ENTRY(rjob) gclink; /* in vol->gcq, protected by gclock */
	enum gc_state gc_state;	  /* protected by gclock */
	bool decoded;		  /* decode_body() succeeded */
	bool gc_done;		  /* protected by gclock: results are in */
	struct proto_attr pdir;	 /* dir: the directory, as its page says */
	struct proto_sbuf ents;	 /* dir: the page's entries, encoded as read */
	bool toobig;		 /* dir: a whole listing past PROTO_DIR_MAX */
	struct proto_sbuf whole; /* dir without ?limit: the listing so far,
				    encoded page by page */
	size_t whole_n;		 /* its entries */
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
	struct vs_extent *ext; /* VS_EXTENTS_MAX, fds closed by rjob_free */
	size_t next_n;
	uint64_t size, off, len;
	struct csum sum;
	bool sum_known; /* J_DATA: @sum came from the loop's cache */
	/* stat */
	struct scrape *scrape;
	size_t idx;
	bool stat_idle; /* the volume was not open: a read-only look */
};

static void vvol_put(struct vvol *vol);
static void reply_compat(const struct rjob *r, struct vs_reply *rep);
static void sub_drop(struct sub *s, bool close_conn);
static bool log_due(uint64_t *last, uint64_t period);
static void scrape_put(struct scrape *sc);

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
	case 411: return "Length Required";
	case 416: return "Range Not Satisfiable";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 503: return "Service Unavailable";
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
	pthread_mutex_init(&vol->gclock, NULL);
	TAILQ_INIT(&vol->gcq);
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
	if (!oc->closed) {
		TAILQ_REMOVE(&vd->olru, oc, olru);
		vd->ncache -= (int)oc->weight;
	}
	LIST_REMOVE(oc, hlink);
	vd->nentries--;
	for (size_t i = 0; i < oc->nseg; i++)
		if (oc->seg[i].seg)
			evbuffer_file_segment_free(oc->seg[i].seg);
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
	pthread_mutex_destroy(&vol->gclock);
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
	rc = vs_vol_open(vol->vd->root, vol->name,
			 VS_CLEANUP | (vol->vd->journal ? VS_JOURNAL : 0),
			 &vol->vs);
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
	__atomic_store_n(&vol->vid, vi.id, __ATOMIC_RELEASE);
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

static unsigned
oc_hash(const uint8_t oid[16], uint64_t chunk)
{
	return (unsigned)(((uint64_t)oid[0] << 8 | oid[1]) ^ chunk) % OC_HASH;
}

static struct ocache *
oc_find(struct vvol *vol, const uint8_t oid[16], uint64_t dv, uint32_t cs,
	uint64_t chunk)
{
	struct ocache *oc;

	LIST_FOREACH(oc, &vol->oc[oc_hash(oid, chunk)], hlink)
		if (oc->chunk == chunk && oc->dv == dv && oc->cs == cs &&
		    !memcmp(oc->oid, oid, 16))
			return oc;
	return NULL;
}

/* Forget every open cached chunk of @oid in @vol (at most the cache's
 * size: the walk is over the open entries). Closed ones, sums only, are
 * left to age out: they name their DV, which no GET of a current DV
 * matches, and the worker refuses a DV that is not current. */
static void
oc_drop(struct vvol *vol, const uint8_t oid[16])
{
	struct vold *vd = vol->vd;
	struct ocache *oc, *next;

	for (oc = TAILQ_FIRST(&vd->olru); oc; oc = next) {
		next = TAILQ_NEXT(oc, olru);
		if (oc->vol == vol && !memcmp(oc->oid, oid, 16))
			oc_free(oc);
	}
}

/* Let the least recently used open entry's objects go; it keeps its sums. */
static void
oc_close_lru(struct vold *vd)
{
	struct ocache *oc = TAILQ_LAST(&vd->olru, oc_olru);

	TAILQ_REMOVE(&vd->olru, oc, olru);
	vd->ncache -= (int)oc->weight;
	for (size_t i = 0; i < oc->nseg; i++)
		if (oc->seg[i].seg)
			evbuffer_file_segment_free(oc->seg[i].seg);
	oc->nseg = 0;
	oc->weight = 0;
	oc->closed = true;
}

/* Make @oc the most recently used. */
static void
oc_touch(struct vold *vd, struct ocache *oc)
{
	TAILQ_REMOVE(&vd->lru, oc, lru);
	TAILQ_INSERT_HEAD(&vd->lru, oc, lru);
	if (!oc->closed) {
		TAILQ_REMOVE(&vd->olru, oc, olru);
		TAILQ_INSERT_HEAD(&vd->olru, oc, olru);
	}
}

/* Make the pieces of a chunk reply from the extents of @r (their fds are
 * taken over). @return 0 or -ENOMEM (then the pieces made are freed). */
static int
oseg_make(struct vold *vd, struct rjob *r, struct oseg *seg)
{
	unsigned flags = EVBUF_FS_CLOSE_ON_FREE;

	/* TLS cannot use sendfile: let libevent map or read it. */
	if (vd->ssl)
		flags |= EVBUF_FS_DISABLE_SENDFILE;
	for (size_t i = 0; i < r->next_n; i++) {
		struct vs_extent *e = &r->ext[i];

		seg[i].len = e->len;
		seg[i].seg = NULL;
		if (e->fd < 0)
			continue;
		seg[i].seg = evbuffer_file_segment_new(e->fd, (ev_off_t)e->off,
						       (ev_off_t)e->len, flags);
		if (!seg[i].seg) {
			while (i-- > 0)
				if (seg[i].seg)
					evbuffer_file_segment_free(seg[i].seg);
			return -ENOMEM;
		}
		e->fd = -1;
	}
	return 0;
}

/* Remember the reply of @r (its extents are taken over). Returns the
 * entry, or NULL (then @r keeps its extents). */
static struct ocache *
oc_insert(struct vvol *vol, struct rjob *r)
{
	struct vold *vd = vol->vd;
	const struct proto_path *p = &r->path;
	struct ocache *oc = oc_find(vol, p->fid.oid, p->dv, p->chunk_size,
				    p->chunk);
	size_t weight = 0;

	if (oc)
		oc_free(oc);
	/* The cache is bounded by the fds it holds: a reply of a 4 MiB
	 * client chunk may hold 16 open objects. */
	for (size_t i = 0; i < r->next_n; i++)
		weight += r->ext[i].fd >= 0;
	if (!weight)
		weight = 1;
	while (vd->ncache + (int)weight > vd->cache_max &&
	       !TAILQ_EMPTY(&vd->olru))
		oc_close_lru(vd);
	while (vd->nentries >= OC_SUM_ENTRIES && !TAILQ_EMPTY(&vd->lru))
		oc_free(TAILQ_LAST(&vd->lru, oc_lru));
	oc = calloc(1, sizeof(*oc) + r->next_n * sizeof(oc->seg[0]));
	if (!oc)
		return NULL;
	oc->weight = weight;
	if (oseg_make(vd, r, oc->seg)) {
		free(oc);
		return NULL;
	}
	oc->nseg = r->next_n;
	oc->vol = vol;
	memcpy(oc->oid, p->fid.oid, 16);
	oc->dv = p->dv;
	oc->cs = p->chunk_size;
	oc->chunk = p->chunk;
	oc->size = r->size;
	oc->off = r->off;
	oc->len = r->len;
	oc->sum = r->sum;
	LIST_INSERT_HEAD(&vol->oc[oc_hash(oc->oid, oc->chunk)], oc, hlink);
	TAILQ_INSERT_HEAD(&vd->lru, oc, lru);
	TAILQ_INSERT_HEAD(&vd->olru, oc, olru);
	vd->ncache += (int)weight;
	vd->nentries++;
	return oc;
}

/* Reply to a chunk GET from what we know: @len bytes in the @nseg
 * pieces of @seg. */
static void
send_chunk(struct vold *vd, struct evhttp_request *req, bool pub,
	   const struct proto_path *p, uint64_t size, uint64_t len,
	   const struct csum *sum, const struct oseg *seg, size_t nseg)
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
	/* libevent makes a sendfile chain only in a buffer that says it
	 * drains to a socket; in any other it maps the file and the reply is
	 * copied from the mapping into the socket (a third of the loop's CPU
	 * on a cold client read). The chain keeps its kind as evhttp moves it
	 * on to the connection's socket (on_fout); TLS segments never
	 * sendfile. */
	evbuffer_set_flags(b, EVBUFFER_FLAG_DRAINS_TO_FD);
	for (size_t i = 0; i < nseg; i++) {
		if (seg[i].seg) {
			if (evbuffer_add_file_segment(b, seg[i].seg, 0,
						      (ev_off_t)seg[i].len) !=
			    0) {
				evbuffer_free(b);
				reply_err(req, EIO, 0, "cannot send chunk", 0);
				return;
			}
		} else if (seg[i].len) {
			/* A hole: zeros. */
			struct evbuffer_iovec iov;

			if (evbuffer_reserve_space(b, (ev_ssize_t)seg[i].len,
						   &iov, 1) < 1) {
				evbuffer_free(b);
				reply_err(req, ENOMEM, 0, NULL, 0);
				return;
			}
			memset(iov.iov_base, 0, seg[i].len);
			iov.iov_len = seg[i].len;
			evbuffer_commit_space(b, &iov, 1);
		}
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
	struct ocache *oc = oc_find(vol, p->fid.oid, p->dv, p->chunk_size,
				    p->chunk);

	if (!oc || oc->closed)
		return false;
	oc_touch(vd, oc);
	send_chunk(vd, req, vol->public, p, oc->size, oc->len, &oc->sum,
		   oc->seg, oc->nseg);
	return true;
}

/* A chunk GET going to a worker: hand it the chunk's sums if a closed
 * entry still has them, so the worker opens the objects (and checks the
 * DV is current) but does not hash the chunk again: a (fid, dv, chunk
 * size, chunk) names one content forever. */
static bool
chunk_sum_cached(struct vold *vd, struct vvol *vol, const struct proto_path *p,
		 struct csum *out)
{
	struct ocache *oc =
		oc_find(vol, p->fid.oid, p->dv, p->chunk_size, p->chunk);

	if (!oc)
		return false;
	*out = oc->sum;
	oc_touch(vd, oc);
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
	free(s->token);
	free(s);
	vvol_put(vol);
}

/* Bytes written to @evcon but not yet sent: its own output and, through
 * the admission filter, the output of every bufferevent below it. */
static size_t
conn_queued(struct evhttp_connection *evcon)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
	size_t n = 0;

	for (; bev; bev = bufferevent_get_underlying(bev))
		n += evbuffer_get_length(bufferevent_get_output(bev));
	return n;
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
	struct evbuffer *b = evbuffer_new();
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
	queued = conn_queued(s->evcon);
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
	const char *auth = evhttp_find_header(
		evhttp_request_get_input_headers(r->req), "Authorization");
	struct vold *vd = r->vd;
	struct sub *s;
	struct vvol *v;
	uint64_t first, last;
	int n = 0;

	/* check_token() let it in, so it is "Bearer " and a token. A token
	 * may hold only so many streams (each pins a connection and up to
	 * EVQ_MAX of queue), and a stream lives no longer than its token. */
	auth = auth && !strncmp(auth, "Bearer ", 7) ? auth + 7 : "";
	TAILQ_FOREACH(v, &vd->vols, link)
		TAILQ_FOREACH(s, &v->subs, link)
			n += s->token && !strcmp(s->token, auth);
	if (n >= vd->max_streams_token) {
		if (log_due(&vd->log_stream_ms, LOG_EVERY_MS))
			log_info(LOG_EV, "refusing event stream on '%s': its "
				 "token has %d open (max %d)", vol->name, n,
				 vd->max_streams_token);
		vd->st.refused[VREF_STREAMS]++;
		reply_err(r->req, EAGAIN, 429,
			  "too many event streams for this token", 0);
		return;
	}
	s = calloc(1, sizeof(*s));
	if (!s || !(s->token = strdup(auth))) {
		free(s);
		reply_err(r->req, ENOMEM, 0, NULL, 0);
		return;
	}
	{
		/* check_token() verified it and matched volid and epoch to
		 * the volume's; on_tick() ends the stream when they no
		 * longer match (vos revoke, volume made again). */
		struct token_info ti;

		if (token_parse(auth, &ti) == 0) {
			s->expiry = ti.expiry;
			s->volid = ti.volid;
			s->epoch = ti.epoch;
		}
	}
	pthread_mutex_lock(&vol->evlock);
	first = vol->ring_first;
	last = vol->ring_last;
	pthread_mutex_unlock(&vol->evlock);
	s->vol = vol;
	s->req = r->req;
	s->evcon = evhttp_request_get_connection(r->req);
	if (!s->evcon) {
		free(s->token);
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

/* SHA-256 of the bytes of the @n extents @ext (zeros where fd is -1) and
 * CRC32C of each @bsize block of them (they are at most one chunk, so
 * VOLD_BLOCKS blocks), in one pass. */
static int
sum_extents(const struct vs_extent *ext, size_t n, uint32_t bsize,
	    struct csum *out)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	char *buf = malloc(1u << 18);
	unsigned int olen = 0;
	uint64_t total = 0, pos = 0;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < n; i++)
		total += ext[i].len;
	if ((total + bsize - 1) / bsize > VOLD_BLOCKS) {
		rc = -EINVAL;
		goto out;
	}
	if (!ctx || !buf || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		for (uint64_t done = 0; done < ext[i].len;) {
			size_t want = ext[i].len - done > (1u << 18) ?
					      (1u << 18) :
					      (size_t)(ext[i].len - done);
			ssize_t got = 0;

			if (ext[i].fd >= 0) {
				got = util_pread_all(ext[i].fd, buf, want,
						     (off_t)(ext[i].off + done));
				if (got < 0) {
					rc = (int)got;
					goto out;
				}
			}
			/* A hole, or an object shorter than its entry says
			 * (it cannot be: fsynced before the entry): zeros,
			 * which is what the reply will carry too. */
			if ((size_t)got < want)
				memset(buf + got, 0, want - (size_t)got);
			EVP_DigestUpdate(ctx, buf, want);
			for (size_t at = 0; at < want;) {
				uint64_t p = pos + at;
				size_t b = (size_t)(p / bsize);
				size_t l = bsize - (size_t)(p % bsize);

				if (l > want - at)
					l = want - at;
				out->crc[b] = crc32c(out->crc[b], buf + at, l);
				at += l;
			}
			done += want;
			pos += want;
		}
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
		enum proto_type type = PROTO_T_SYMLINK;
		char *t = NULL, *c;

		rc = vs_readlink_type(vs, &r->path.fid, &t, &type);
		if (rc == -EINVAL)
			r->msg = "not a symlink or mount point";
		if (rc)
			break;
		/* An older client reads a mount point as a symlink to
		 * "#VOLUME" (proto_attr_compat() gave it that type). */
		c = proto_link_compat(type, t, r->proto);
		if (!c && errno) {
			free(t);
			rc = -errno;
			break;
		}
		if (c) {
			free(t);
			t = c;
		}
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
		r->ext = calloc(VS_EXTENTS_MAX, sizeof(*r->ext));
		if (!r->ext) {
			rc = -ENOMEM;
			break;
		}
		rc = vs_data_open(vs, &r->path.fid, r->path.dv,
				  r->path.chunk * r->path.chunk_size,
				  r->path.chunk_size, r->ext, &r->next_n,
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
	case J_BATCH:
		/* job_run sends these through run_mutation(). */
		rc = -EINVAL;
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
		/* Every tick: step aside for a knocking process, or take the
		 * journal back (vs_vol_coord()). */
		vs_vol_coord(vs);
		rc = vs_vol_public(vs, &r->pub);
		break;
	case J_STAT:
		/* job_run() runs it through stat_run(). */
		rc = -EINVAL;
		break;
	}
	/* vos remove marks a volume before it deletes it: from then on every
	 * change is refused, and the volume is dropped (job_done) so the
	 * next request finds what has the name now. */
	if (rc == -ENOENT && (r->kind == J_OP || r->kind == J_STAGE)) {
		struct vs_volinfo vi;

		if (vs_vol_info(vs, &vi) == -ENOENT)
			r->msg = "no such volume";
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
		     : r->kind == J_BATCH ? PROTO_BATCH_BODY_MAX
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
			r->msg = rc == -E2BIG ? "too many chunks, or inline bytes "
						"past 64 KiB"
					      : "malformed operation";
	} else if (r->kind == J_BATCH) {
		rc = proto_batch_decode(body, blen, &r->batch);
		if (rc)
			r->msg = rc == -E2BIG ? "too many operations or chunks, "
						"or inline bytes past 64 KiB"
					      : "malformed batch";
		if (!rc) {
			r->reps = calloc(r->batch.n, sizeof(*r->reps));
			if (!r->reps)
				rc = -ENOMEM;
		}
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
	r->decoded = !rc;
	return rc;
}

/* An entry of a listing, under the volume's lock: encoded at once
 * (vs_readdir_scan()), so a request holds the reply's text, never its
 * entries decoded. */
static int
dir_ent(void *arg, const char *name, size_t len, const struct proto_attr *a)
{
	struct rjob *r = arg;
	struct proto_attr c = *a;

	if (!r->path.limit && r->ents.nents >= PROTO_DIR_MAX - r->whole_n) {
		r->toobig = true;
		return -E2BIG;
	}
	/* An older client sees sockets and devices as files. */
	proto_attr_compat(&c, r->proto);
	if (r->path.bin) {
		/* enc=bin (protocol 8) comes only with limit=. */
		if (!r->ents.p)
			proto_dirb_reserve(&r->ents);
		proto_dirb_ent(&r->ents, name, len, &c);
		return r->ents.err ? -r->ents.err : 0;
	}
	if (r->path.limit && !r->ents.p)
		proto_dir_enc_reserve(&r->ents);
	proto_dir_enc_ent(&r->ents, name, len, &c);
	return r->ents.err ? -r->ents.err : 0;
}

/*
 * Worker: a listing. With ?limit=, one page under the lock. Without (a
 * version 1 client wants the whole directory), the same pages one after
 * the other, the lock released between them so writers and other readers
 * get in; if the directory changes meanwhile, start over, and after
 * DIR_RESTARTS such tries read all pages in one hold of the lock. The
 * entries are encoded as they are read (dir_ent()); the page's head,
 * which holds its "next", after the lock is released (job_run).
 */
#define DIR_RESTARTS 8

static void
run_dir(struct rjob *r)
{
	const struct proto_dir_cursor *from =
		r->path.has_cursor ? &r->path.cursor : NULL;
	size_t limit = r->path.limit ? r->path.limit : PROTO_DIR_PAGE_MAX;
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
		size_t n = 0;

		if (!rc)
			rc = vs_readdir_scan(r->vol->vs, &r->path.fid, from,
					     limit, &r->pdir, dir_ent, r,
					     &r->next, &r->more, &n);
		if (!hold || rc || r->path.limit || !r->more) {
			pthread_mutex_unlock(&r->vol->lock);
			locked = false;
		}
		if (rc == -ESTALE)
			r->cur_dv = r->pdir.dv;
		if (rc == -ESTALE && r->path.limit) {
			/* The client's cursor is for an older DV. */
			r->msg = "directory changed since the first page";
			break;
		}
		if (rc == -ESTALE && tries++ < DIR_RESTARTS) {
			proto_sbuf_release(&r->ents);
			proto_sbuf_release(&r->whole);
			r->whole_n = 0;
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
		if (rc == -E2BIG && r->toobig)
			r->msg = "directory too large for one reply: "
				 "ask for pages (?limit=)";
		if (rc)
			break;
		if (r->path.limit) {
			r->etag_dv = r->pdir.dv;
			break;
		}
		/* A whole listing: each page's text is appended as it comes
		 * and dropped. */
		proto_attr_compat(&r->pdir, r->proto);
		if (!r->whole.p)
			proto_dir_enc_begin(&r->whole, &r->pdir, NULL);
		proto_dir_enc_append(&r->whole, &r->ents);
		proto_sbuf_release(&r->ents);
		r->whole_n += n;
		r->etag_dv = r->pdir.dv;
		if (r->whole.err) {
			rc = -r->whole.err;
			break;
		}
		if (!r->more)
			break;
		/* A copy: vs_readdir_scan() writes r->next first. */
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
		proto_sbuf_release(&r->ents);
		proto_sbuf_release(&r->whole);
	}
}

/*
 * One GET /metrics. Each volume's usage is read by a worker (J_STAT: its
 * tdb belongs to whoever holds its lock, and opening it may take a while),
 * then the loop writes the text once the last one is back (scrape_put).
 */
struct scrape {
	struct vold *vd;
	struct evhttp_request *req;
	size_t pending;	 /* J_STAT jobs out, plus one for the starter */
	char **names;	 /* vs_vol_list() */
	size_t nnames;
	struct vs_volinfo *vi; /* [nnames], valid where ok[i] */
	bool *ok;
};

/*
 * Worker: the usage and quota of one volume. One in use is asked through
 * its handle. One that is not gets a read-only look, not the open of a
 * first request: that one loads the event ring (megabytes), and a scrape
 * must not cost that for every volume of the server. vol->lock keeps any
 * request from opening it meanwhile (tdb takes one handle per file in a
 * process). One that cannot be opened is left out of the text; why is
 * logged by the requests that need it, not by every scrape.
 */
static void
stat_run(struct rjob *r)
{
	struct vvol *vol = r->vol;
	struct vs_vol *v = NULL;
	int rc;

	pthread_mutex_lock(&vol->lock);
	if (vol->vs) {
		rc = vs_vol_info(vol->vs, &r->scrape->vi[r->idx]);
	} else {
		r->stat_idle = true;
		rc = vs_vol_open(vol->vd->root, vol->name, VS_RDONLY, &v);
		if (!rc)
			rc = vs_vol_info(v, &r->scrape->vi[r->idx]);
		vs_vol_close(v);
	}
	pthread_mutex_unlock(&vol->lock);
	r->scrape->ok[r->idx] = rc == 0;
	if (rc)
		r->err = -rc;
}

/* The ops of a queued mutation as vs_apply_group() takes them. */
static size_t
gc_nops(const struct rjob *r)
{
	if (r->kind != J_BATCH)
		return 1;
	/* Not decoded yet: count it as the largest batch. */
	return r->batch.n ? r->batch.n : PROTO_BATCH_MAX;
}

/*
 * Worker, vol->lock held: apply the mutations @grp (taken off vol->gcq)
 * in one group commit, put their events into the ring in commit order,
 * and set each job's results. Nothing here touches a job after its
 * gc_done is set.
 */
static void
run_group(struct vvol *vol, struct rjob **grp, size_t n)
{
	struct vs_group_req *reqs = calloc(n, sizeof(*reqs));
	int rc = reqs ? vvol_open_locked(vol) : -ENOMEM;

	for (size_t i = 0; !rc && i < n; i++) {
		struct rjob *r = grp[i];

		if (r->kind == J_BATCH) {
			reqs[i].ops = r->batch.ops;
			reqs[i].n = r->batch.n;
			reqs[i].stop = r->batch.stop;
			reqs[i].reps = r->reps;
		} else {
			reqs[i].ops = &r->op;
			reqs[i].n = 1;
			reqs[i].reps = &r->rep;
		}
	}
	uint64_t t0 = metrics_now_us();

	if (!rc)
		rc = vs_apply_group(vol->vs, reqs, n);
	if (!rc)
		metrics_hist_observe(&vol->vd->st.commit_lat,
				     metrics_now_us() - t0);
	for (size_t i = 0; i < n; i++) {
		struct rjob *r = grp[i];

		if (rc) {
			r->err = -rc;
			if (rc == -ENOENT)
				r->msg = "no such volume";
			continue;
		}
		for (size_t k = 0; k < reqs[i].n; k++) {
			const struct vs_reply *rp = &reqs[i].reps[k];

			if (rp->nev)
				ring_append(vol, rp->ev, rp->nev);
			/* A refusal is committed too (under its opid); a
			 * replayed answer, a server failure and an op a
			 * batch did not reach (424) commit nothing. */
			if (!rp->replayed && !rp->err && rp->status != 424)
				metrics_counter_add(
					&vol->vd->st.commits[rp->status != 200],
					1);
		}
		/* A single op's server failure is the request's error. */
		if (r->kind == J_OP && r->rep.err) {
			r->err = -r->rep.err;
			free(r->rep.body);
			memset(&r->rep, 0, sizeof(r->rep));
		}
	}
	if (rc && rc != -ENOENT)
		log_err(LOG_VOL, "cannot apply %zu request(s) to volume '%s': %s",
			n, vol->name, strerror(-rc));
	free(reqs);
	pthread_mutex_lock(&vol->gclock);
	for (size_t i = 0; i < n; i++)
		grp[i]->gc_done = true;
	pthread_mutex_unlock(&vol->gclock);
}

/* Worker, vol->lock held: take the group off vol->gcq (gclock held):
 * oldest first, at least one, up to GC_MAX_OPS ops, skipping the jobs
 * whose own worker is decoding them. *@grp grows as needed. */
static size_t
gc_take(struct vvol *vol, struct rjob ***grp, size_t *cap)
{
	struct rjob *q, *next;
	size_t n = 0, ops = 0;

	for (q = TAILQ_FIRST(&vol->gcq); q; q = next) {
		next = TAILQ_NEXT(q, gclink);
		if (q->gc_state == GC_DECODING)
			continue;
		if (n && ops + gc_nops(q) > GC_MAX_OPS)
			break;
		if (n == *cap) {
			size_t c = *cap ? *cap * 2 : 16;
			struct rjob **g = realloc(*grp, c * sizeof(*g));

			if (!g)
				break;
			*grp = g;
			*cap = c;
		}
		TAILQ_REMOVE(&vol->gcq, q, gclink);
		q->gc_state = GC_TAKEN;
		(*grp)[n++] = q;
		ops += gc_nops(q);
	}
	return n;
}

/*
 * Worker: a mutation (queued on vol->gcq by the loop), through a group
 * commit (see the top). Its body is decoded here, outside every lock,
 * unless a leader took the job first and decoded it under vol->lock.
 */
static void
run_mutation(struct rjob *r)
{
	struct vvol *vol = r->vol;
	struct rjob **grp = NULL;
	size_t cap = 0;
	bool raw;

	pthread_mutex_lock(&vol->gclock);
	raw = r->gc_state == GC_RAW;
	if (raw)
		r->gc_state = GC_DECODING;
	pthread_mutex_unlock(&vol->gclock);
	if (raw) {
		int rc = decode_body(r);

		pthread_mutex_lock(&vol->gclock);
		if (rc) {
			TAILQ_REMOVE(&vol->gcq, r, gclink);
			r->gc_state = GC_TAKEN;
			r->gc_done = true;
		} else {
			r->gc_state = GC_READY;
		}
		pthread_mutex_unlock(&vol->gclock);
		if (rc)
			return;
	}
	pthread_mutex_lock(&vol->lock);
	for (;;) {
		size_t n, m = 0;

		pthread_mutex_lock(&vol->gclock);
		if (r->gc_done) {
			pthread_mutex_unlock(&vol->gclock);
			break;
		}
		n = gc_take(vol, &grp, &cap);
		pthread_mutex_unlock(&vol->gclock);
		if (!n) {
			/* No memory for a group: run ours alone, decoded. */
			struct rjob *one = r;

			pthread_mutex_lock(&vol->gclock);
			if (!r->gc_done && r->gc_state == GC_READY) {
				TAILQ_REMOVE(&vol->gcq, r, gclink);
				r->gc_state = GC_TAKEN;
			} else {
				one = NULL;
			}
			pthread_mutex_unlock(&vol->gclock);
			if (one)
				run_group(vol, &one, 1);
			else if (!r->gc_done)
				r->err = EIO; /* a broken invariant: not ours */
			break;
		}
		/* Jobs no worker got to yet are decoded by the leader: they
		 * would wait for this commit anyway. One that does not
		 * decode is answered on its own. */
		for (size_t i = 0; i < n; i++) {
			struct rjob *q = grp[i];

			if (q->decoded || decode_body(q) == 0) {
				grp[m++] = q;
			} else {
				pthread_mutex_lock(&vol->gclock);
				q->gc_done = true;
				pthread_mutex_unlock(&vol->gclock);
			}
		}
		if (m)
			run_group(vol, grp, m);
	}
	pthread_mutex_unlock(&vol->lock);
	free(grp);
	/* Encoded after the lock: only this worker touches @r now. */
	if (r->kind == J_OP && !r->err)
		reply_compat(r, &r->rep);
	for (size_t i = 0; r->kind == J_BATCH && !r->err && r->reps &&
			   i < r->batch.n;
	     i++)
		reply_compat(r, &r->reps[i]);
	if (r->kind == J_BATCH && !r->err) {
		int *st = calloc(r->batch.n, sizeof(*st));
		char **bodies = calloc(r->batch.n, sizeof(*bodies));
		size_t *lens = calloc(r->batch.n, sizeof(*lens));

		if (st && bodies && lens) {
			for (size_t i = 0; i < r->batch.n; i++) {
				st[i] = r->reps[i].status;
				bodies[i] = r->reps[i].body;
				lens[i] = r->reps[i].len;
			}
			r->out = proto_batch_reply_encode(st, bodies, lens,
							  r->batch.n,
							  &r->outlen);
		}
		if (!r->out)
			r->err = EIO;
		free(st);
		free(bodies);
		free(lens);
	}
}

/* What an older client may see of an op's reply: sockets and devices
 * as empty files, mount points as symlinks (proto_attr_compat()). A
 * reply that names none is left as it is, undecoded. The opid table
 * keeps the server's own reply. */
static void
reply_compat(const struct rjob *r, struct vs_reply *rep)
{
	size_t clen;
	char *c;

	if (r->proto >= PROTO_V_MOUNT || rep->status != 200 || !rep->body)
		return;
	c = proto_op_result_compat(rep->body, rep->len, r->proto, &clen);
	if (c) {
		free(rep->body);
		rep->body = c;
		rep->len = clen;
	}
}

static void
job_run(struct vold_job *j)
{
	struct rjob *r = (struct rjob *)j;
	struct vvol *vol = r->vol;
	int rc;

	if (r->kind == J_OP || r->kind == J_BATCH) {
		run_mutation(r);
		return;
	}
	if (r->kind == J_GETATTR && decode_body(r))
		return;
	if (r->kind == J_STAT) {
		stat_run(r);
		return;
	}
	if (r->kind == J_DIR) {
		run_dir(r);
		if (!r->err && r->status != 304) {
			char cur[PROTO_CURSOR_MAX] = "";

			if (r->more)
				proto_cursor_format(cur, sizeof(cur), &r->next);
			if (r->path.limit) {
				/* The head before the entries encoded under
				 * the lock, in the room kept for it. */
				proto_attr_compat(&r->pdir, r->proto);
				r->out = r->path.bin
						 ? proto_dirb_page_end(
							   &r->ents, &r->pdir,
							   cur, &r->outlen)
						 : proto_dir_enc_page_end(
							   &r->ents, &r->pdir,
							   cur, &r->outlen);
			} else {
				r->out = proto_dir_enc_end(&r->whole,
							   &r->outlen);
			}
			if (!r->out)
				r->err = errno ? errno : ENOMEM;
			proto_sbuf_release(&r->ents);
		}
		return;
	}
	if (lock_open(r))
		return;
	run_locked(r);
	pthread_mutex_unlock(&vol->lock);
	if (r->kind == J_GETATTR && !r->err) {
		for (size_t i = 0; i < r->nfids; i++)
			proto_attr_compat(&r->attrs[i], r->proto);
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
		if (!r->err && !r->sum_known) {
			metrics_counter_add(&vol->vd->st.hashes, 1);
			rc = sum_extents(r->ext, r->next_n,
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
	for (size_t i = 0; r->ext && i < r->next_n; i++)
		if (r->ext[i].fd >= 0)
			close(r->ext[i].fd);
	free(r->ext);
	free(r->out);
	free(r->rep.body);
	free(r->fids);
	free(r->attrs);
	free(r->errs);
	proto_op_release(&r->op);
	for (size_t i = 0; r->reps && i < r->batch.n; i++)
		free(r->reps[i].body);
	free(r->reps);
	proto_batch_release(&r->batch);
	proto_sbuf_release(&r->ents);
	proto_sbuf_release(&r->whole);
	vvol_put(r->vol);
	free(r);
}

static void
done_data(struct rjob *r)
{
	struct vvol *vol = r->vol;
	struct ocache *oc = NULL;
	struct oseg *seg;

	if (vol->gen == r->gen && !vol->dead)
		oc = oc_insert(vol, r);
	if (oc) {
		send_chunk(vol->vd, r->req, vol->public, &r->path, r->size,
			   r->len, &r->sum, oc->seg, oc->nseg);
		return;
	}
	seg = calloc(r->next_n + 1, sizeof(*seg));
	if (!seg || oseg_make(vol->vd, r, seg)) {
		free(seg);
		reply_err(r->req, ENOMEM, 0, NULL, 0);
		return;
	}
	send_chunk(vol->vd, r->req, vol->public, &r->path, r->size, r->len,
		   &r->sum, seg, r->next_n);
	for (size_t i = 0; i < r->next_n; i++)
		if (seg[i].seg)
			evbuffer_file_segment_free(seg[i].seg);
	free(seg);
}

static void
job_done(struct vold_job *j)
{
	struct rjob *r = (struct rjob *)j;
	struct vvol *vol = r->vol;
	char etag[32];

	if (r->kind == J_GC)
		goto out;
	if (r->kind == J_STAT) {
		/* Removed meanwhile, or registered only for this look and
		 * used by nobody else (the registry's reference and ours):
		 * forget it, so scrapes do not fill the registry. */
		if (r->err == ENOENT ||
		    (r->stat_idle && vol->refs == 2 && !vol->opened &&
		     TAILQ_EMPTY(&vol->subs)))
			vvol_unlist(vol);
		scrape_put(r->scrape);
		goto out;
	}
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
	if ((r->kind == J_OP || r->kind == J_BATCH) && !r->err) {
		size_t nrep = r->kind == J_BATCH ? r->batch.n : 1;
		struct vs_reply *reps = r->kind == J_BATCH ? r->reps : &r->rep;
		bool flush = false;

		/* A new DV or a gone object: cached chunk SHAs of the old
		 * one must not be served, and fills in flight are stale. */
		for (size_t k = 0; k < nrep; k++) {
			for (int i = 0; i < reps[k].nev; i++)
				if (reps[k].ev[i].kind == PROTO_EV_DATA ||
				    reps[k].ev[i].kind == PROTO_EV_GONE) {
					oc_drop(vol, reps[k].ev[i].fid.oid);
					vol->gen++;
				}
			if (reps[k].nev)
				flush = true;
		}
		if (flush)
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
	case J_BATCH:
		evhttp_add_header(evhttp_request_get_output_headers(r->req),
				  "Cache-Control", "no-store");
		reply_body(r->req, 200, "application/json", r->out,
			   r->outlen);
		r->out = NULL;
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
		if (r->path.bin && r->out) {
			evhttp_add_header(
				evhttp_request_get_output_headers(r->req),
				"Cache-Control", "no-cache");
			reply_body(r->req, 200, PROTO_DIRB_TYPE, r->out,
				   r->outlen);
		} else
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
	r->proto = proto_version_parse(
		req ? evhttp_find_header(evhttp_request_get_input_headers(req),
					 PROTO_HDR_VERSION)
		    : NULL);
	if (p)
		r->path = *p;
	r->gen = vol->gen;
	return r;
}

/* ---- routing ---- */

/* Bring @vv's cached id and token epoch (vv->ts) up to date: one
 * fstatat() while the file is unchanged. Loop thread only. @return 0,
 * -ENOENT (no such volume), -EINVAL (corrupt), -errno. */
static int
vvol_tokstate(struct vold *vd, struct vvol *vv)
{
	uint64_t now_ms = util_now_ms();
	int rc;

	/* Re-read at least once a second even if the file looks the same:
	 * an inode number may be reused within one mtime tick. */
	rc = vs_tokstate_get(vd->root, vv->name, now_ms - vv->ts_ms >= 1000,
			     &vv->ts);
	if (!rc && now_ms - vv->ts_ms >= 1000)
		vv->ts_ms = now_ms;
	return rc;
}

/*
 * The one token check, for on_request() (check_token()) and for the
 * admission filter (head_token()), so the two cannot drift apart: a
 * request the filter lets send its body is one on_request() then serves,
 * and one the filter refuses gets the same reply on_request() would give.
 */
enum tok_verdict {
	TV_OK = 0,
	TV_MISSING,  /* no "Bearer " Authorization */
	TV_INVALID,  /* malformed, bad MAC or expired */
	TV_OLD,	     /* a cairn1 token: never honoured */
	TV_OTHER,    /* names another volume */
	TV_PERM,     /* read-only token on a mutation */
	TV_STALE,    /* another volume id or epoch: re-made or revoked */
	TV_NO_VOL,   /* the volume does not exist */
	TV_IO,	     /* its token state cannot be read */
	TV_COUNT
};

static const struct {
	int status, err;
	const char *msg;
} tok_replies[TV_COUNT] = {
	[TV_MISSING] = {401, EACCES, "missing bearer token"},
	[TV_INVALID] = {401, EACCES, "invalid or expired token"},
	[TV_OLD] = {401, EACCES,
		    "old-format token: mint a new one with vos token"},
	[TV_OTHER] = {403, EPERM, "token is for another volume"},
	[TV_PERM] = {403, EPERM, "token does not allow this on this volume"},
	[TV_STALE] = {401, EACCES,
		      "token revoked, or the volume was made again"},
	[TV_NO_VOL] = {404, ENOENT, "no such volume"},
	[TV_IO] = {500, EIO, "cannot read the volume's token state"},
};

/*
 * token_verify() of @tok (@n bytes, NUL-terminated) at the time now,
 * through vd->tokc: a client sends the same token with every request, and
 * its HMAC was most of the CPU of judging it (each request is judged twice:
 * head and body). A slot holds a token whose MAC verified with our key
 * (which never changes while we run) and what it says; a hit is compared
 * in constant time (CRYPTO_memcmp: the time tells nothing of how much of
 * a guess matches a cached token) and its expiry checked again at every
 * use, so the answer is token_verify()'s. Only verified tokens are
 * cached: a bad one costs its HMAC every time, as before. @return 0 or
 * -EACCES.
 */
static int
token_verified(struct vold *vd, const char *tok, size_t n,
	       struct token_info *ti)
{
	uint64_t now = (uint64_t)time(NULL);
	struct tok_seen *s =
		&vd->tokc[crc32c(0, tok, n) & (TOKC_SLOTS - 1)];
	int rc;

	if (s->len == n && !CRYPTO_memcmp(s->tok, tok, n)) {
		if (s->ti.expiry != 0 && s->ti.expiry <= now) {
			s->len = 0;
			return -EACCES;
		}
		*ti = s->ti;
		return 0;
	}
	rc = token_verify(vd->key, vd->keylen, tok, now, ti);
	if (!rc && n < sizeof(s->tok)) {
		memcpy(s->tok, tok, n + 1);
		s->len = n;
		s->ti = *ti;
	}
	return rc;
}

/*
 * Judge the Authorization header value @auth (@auth_len bytes, need not be
 * NUL-terminated; NULL if absent) for a request on volume @vol that needs
 * write access if @need_rw. The token must verify (form, MAC, expiry; old
 * cairn1 tokens never do) and name the volume as it is now: its id and
 * its token epoch (vs_tokstate_get(), one fstatat() while nothing
 * changed), so a token of a removed and re-made volume, or one minted
 * before `vos revoke`, is refused like an expired one. Loop thread only
 * (it updates the vvol's cached token state). On TV_OK, @ti (may be NULL)
 * holds what the token says.
 */
static enum tok_verdict
token_judge(struct vold *vd, const char *auth, size_t auth_len,
	    const char *vol, bool need_rw, struct token_info *ti)
{
	char tok[TOKEN_MAX + 1];
	struct token_info t, old;
	struct vvol *vv;
	size_t n;
	int rc;

	if (!auth || auth_len < 7 || strncmp(auth, "Bearer ", 7))
		return TV_MISSING;
	n = auth_len - 7;
	if (n >= sizeof(tok))
		return TV_INVALID;
	memcpy(tok, auth + 7, n);
	tok[n] = 0;
	if (token_verified(vd, tok, n, &t))
		return token_parse(tok, &old) == 0 && old.version == 1
			       ? TV_OLD
			       : TV_INVALID;
	if (strcmp(t.vol, vol))
		return TV_OTHER;
	vv = vvol_get(vd, vol);
	if (!vv)
		return TV_IO;
	rc = vvol_tokstate(vd, vv);
	/* The name holds another volume than the one we have open (vos
	 * removed and made it again within the second on_tick() takes to
	 * notice): forget ours, so this request opens the new one. */
	if (rc == 0 && __atomic_load_n(&vv->vid, __ATOMIC_ACQUIRE) &&
	    __atomic_load_n(&vv->vid, __ATOMIC_ACQUIRE) != vv->ts.id) {
		log_info(LOG_VOL, "volume '%s' was made again", vv->name);
		vvol_unlist(vv);
	}
	if (rc == 0)
		rc = token_allows(&t, vol, vv->ts.id, vv->ts.epoch, need_rw);
	vvol_put(vv);
	switch (rc) {
	case 0:
		break;
	case -ESTALE:
		return TV_STALE;
	case -EPERM:
		return TV_PERM;
	case -ENOENT:
		return TV_NO_VOL;
	default:
		log_err(LOG_VOL, "cannot read the token state of '%s': %s", vol,
			strerror(-rc));
		return TV_IO;
	}
	if (ti)
		*ti = t;
	return TV_OK;
}

/* Check the bearer token of @req for @vol (token_judge()). @return 0, or
 * replies and returns -1. */
static int
check_token(struct vold *vd, struct evhttp_request *req, const char *vol,
	    bool need_rw, bool *readonly)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req),
					   "Authorization");
	struct token_info ti;
	enum tok_verdict v;

	v = token_judge(vd, h, h ? strlen(h) : 0, vol, need_rw, &ti);
	if (v != TV_OK) {
		reply_err(req, tok_replies[v].err, tok_replies[v].status,
			  tok_replies[v].msg, 0);
		return -1;
	}
	*readonly = !ti.rw;
	return 0;
}

/* ---- admission: connections and request heads (loop thread) ---- */

/* True once every @period ms per *@last: for log lines an attacker could
 * otherwise repeat at will. */
static bool
log_due(uint64_t *last, uint64_t period)
{
	uint64_t now = util_now_ms();

	if (*last && now - *last < period)
		return false;
	*last = now;
	return true;
}

static void
peer_str(const struct vconn *c, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (c->peer.ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)&c->peer)->sin_addr,
			  host, sizeof(host));
	else if (c->peer.ss_family == AF_INET6)
		inet_ntop(AF_INET6,
			  &((const struct sockaddr_in6 *)&c->peer)->sin6_addr,
			  host, sizeof(host));
	snprintf(buf, len, "%s", host);
}

static bool
same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	if (a->ss_family == AF_INET6)
		return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
			       &((const struct sockaddr_in6 *)b)->sin6_addr, 16);
	return false;
}

static unsigned
vconn_hash(const struct bufferevent *bev)
{
	return (unsigned)(((uintptr_t)bev >> 4) % VCONN_HASH);
}

static struct vconn *
vconn_find(struct vold *vd, const struct bufferevent *bev)
{
	struct vconn *c;

	LIST_FOREACH(c, &vd->conn_hash[vconn_hash(bev)], hlink)
		if (c->bev == bev)
			return c;
	return NULL;
}

/* Accept new connections unless at the cap or out of descriptors. */
static void
accept_update(struct vold *vd)
{
	struct evconnlistener *l;
	bool full = vd->nconns >= vd->max_conns;

	if (full && !vd->accept_full) {
		vd->st.refused[VREF_CONN_MAX]++;
		if (log_due(&vd->log_full_ms, LOG_EVERY_MS))
			log_warn(LOG_HTTP, "%d connections open (the maximum): "
				 "not accepting more until one closes",
				 vd->nconns);
	}
	vd->accept_full = full;
	/* The metrics listener shares the caps: it is one more way in. */
	for (int i = 0; i < 2; i++) {
		struct evhttp_bound_socket *bs = i ? vd->mbound : vd->bound;

		if (!bs)
			continue;
		l = evhttp_bound_socket_get_listener(bs);
		if (vd->accept_full || vd->accept_emfile)
			evconnlistener_disable(l);
		else
			evconnlistener_enable(l);
	}
}

static void
on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct vold *vd = arg;

	vd->accept_emfile = false;
	accept_update(vd);
}

/* accept() failed for another reason than a retriable one. Out of
 * descriptors the listening socket stays readable, so without a pause the
 * loop would spin on it; existing connections go on being served. */
static void
on_accept_error(struct evconnlistener *l, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval tv = {0, EMFILE_PAUSE_MS * 1000};
	struct vold *vd;

	LIST_FOREACH(vd, &all_volds, all)
		if (vd->http == arg || (vd->mhttp && vd->mhttp == arg))
			break;
	if (!vd)
		return;
	vd->st.refused[VREF_DESCRIPTORS]++;
	if (log_due(&vd->log_emfile_ms, LOG_EVERY_MS))
		log_warn(LOG_HTTP, "cannot accept a connection: %s (%d open); "
			 "pausing accept for %d ms", strerror(err), vd->nconns,
			 EMFILE_PAUSE_MS);
	vd->accept_emfile = true;
	accept_update(vd);
	evtimer_add(vd->resume, &tv);
}

/* Make evhttp drop the connection of @c, as if the client had gone: its
 * error path frees the connection and with it our filter. */
static void
vconn_close(struct vconn *c)
{
	bufferevent_event_cb ecb = NULL;

	c->state = VC_DISCARD;
	bufferevent_getcb(c->bev, NULL, NULL, &ecb, NULL);
	if (ecb)
		bufferevent_trigger_event(c->bev,
					  BEV_EVENT_ERROR | BEV_EVENT_READING, 0);
}

static void
vconn_arm(struct vconn *c)
{
	struct timeval tv = {c->vd ? c->vd->deadline_s : 30, 0};

	if (c->timing)
		return;
	c->timing = true;
	evtimer_add(c->deadline, &tv);
}

static void
vconn_disarm(struct vconn *c)
{
	c->timing = false;
	evtimer_del(c->deadline);
}

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct vconn *c = arg;
	char host[INET6_ADDRSTRLEN];

	c->timing = false;
	if (!c->vd || c->state == VC_DISCARD)
		return;
	c->vd->st.refused[VREF_DEADLINE]++;
	peer_str(c, host, sizeof(host));
	if (log_due(&c->vd->log_deadline_ms, LOG_EVERY_MS))
		log_info(LOG_HTTP, "request from %s not received within %d s: "
			 "closing the connection", host, c->vd->deadline_s);
	vconn_close(c);
}

/* Right after accept: the peer's address is known only now (the filter
 * is made before evhttp sets its socket). @return false if it holds too
 * many connections already. */
static bool
vconn_admit_peer(struct vconn *c)
{
	struct vold *vd = c->vd;
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	char host[INET6_ADDRSTRLEN];
	struct vconn *o;
	int n = 0;

	c->peerlen = sizeof(c->peer);
	if (fd < 0 ||
	    getpeername(fd, (struct sockaddr *)&c->peer, &c->peerlen) < 0) {
		memset(&c->peer, 0, sizeof(c->peer));
		return true;
	}
	/* Linear, but bounded by max_conns and only once a connection. */
	TAILQ_FOREACH(o, &vd->conns, link)
		n += !o->admit_pending && o != c && same_host(&o->peer, &c->peer);
	if (n < vd->max_conns_addr)
		return true;
	vd->st.refused[VREF_CONN_ADDR]++;
	peer_str(c, host, sizeof(host));
	if (log_due(&vd->log_addr_ms, LOG_EVERY_MS))
		log_warn(LOG_HTTP, "refusing a connection from %s: it has %d "
			 "open (the maximum)", host, n);
	return false;
}

enum refusal {
	RF_NONE = 0,
	RF_TOKEN,     /* + a tok_verdict: as token_judge() said */
	RF_TOO_LARGE = RF_TOKEN + TV_COUNT,
	RF_CHUNKED,
	RF_BAD,
	RF_BUSY,
	RF_COUNT
};

static const struct {
	int status, err;
	const char *msg;
} refusals[RF_COUNT] = {
	[RF_TOO_LARGE] = {413, E2BIG, "body too large for this request"},
	[RF_CHUNKED] = {411, EINVAL, "a request body needs a Content-Length"},
	[RF_BAD] = {400, EINVAL, "malformed request head"},
	[RF_BUSY] = {503, EAGAIN, "too many request bodies in flight, retry"},
};

/* The token of a request with a body: token_judge(), as on_request()
 * will judge it again once the body is in. */
static enum refusal
head_token(struct vold *vd, const struct vold_head *h,
	   const struct proto_path *p)
{
	enum tok_verdict v;

	v = token_judge(vd, h->auth, h->auth_len, p->vol,
			p->kind == PROTO_P_OP || p->kind == PROTO_P_BATCH ||
				p->kind == PROTO_P_STAGE,
			NULL);
	return v == TV_OK ? RF_NONE : (enum refusal)(RF_TOKEN + v);
}

/* Decide about a complete head: *@body is how many body bytes follow. */
static enum refusal
head_decide(struct vold *vd, const struct vold_head *h, uint64_t *body)
{
	struct proto_path p;
	char target[2048];
	uint64_t limit;
	enum refusal rf;

	*body = 0;
	if (h->chunked)
		return RF_CHUNKED;
	if (h->n_content_length > 1)
		return RF_BAD;
	/* libevent reads no body for these, whatever the headers say. */
	if (h->method == VOLD_M_HEAD || h->method == VOLD_M_OTHER ||
	    h->content_length <= 0)
		return RF_NONE;
	memset(&p, 0, sizeof(p));
	if (h->target_len < sizeof(target)) {
		memcpy(target, h->target, h->target_len);
		target[h->target_len] = 0;
		if (proto_parse_path(target, &p))
			p.kind = PROTO_P_NONE;
	}
	limit = vold_body_limit(h->method, &p);
	if (limit) {
		rf = head_token(vd, h, &p);
		if (rf)
			return rf;
	}
	if ((uint64_t)h->content_length > limit)
		return RF_TOO_LARGE;
	/* Each body is bounded by its route, their sum by the budget: even
	 * token holders cannot make us hold more than that at once. */
	if (vd->body_held + (uint64_t)h->content_length > VOLD_BODY_BUDGET)
		return RF_BUSY;
	*body = (uint64_t)h->content_length;
	return RF_NONE;
}

/* The body of @c's request was answered (or the connection is gone). */
static void
vconn_release(struct vconn *c)
{
	if (c->vd)
		c->vd->body_held -= c->body_held;
	c->body_held = 0;
}

/* The filter at VC_HEAD: wait for a whole head, then pass or refuse it. */
static enum bufferevent_filter_result
vconn_head(struct vconn *c, struct evbuffer *src, struct evbuffer *dst)
{
	size_t have = evbuffer_get_length(src);
	size_t look = have < VOLD_HEAD_MAX ? have : VOLD_HEAD_MAX;
	struct vold_head h;
	enum refusal rf;
	uint64_t body;
	int n;

	const char *buf;
	size_t end;

	if (!have)
		return BEV_NEED_MORE;
	vconn_arm(c);
	buf = (const char *)evbuffer_pullup(src, (ev_ssize_t)look);
	/* Parse only once a possible end has come, and search each byte for
	 * it once: a head trickled a byte at a time costs linear time. */
	n = 0;
	while (buf && (end = vold_head_end(buf, look, c->scanned))) {
		c->scanned = end;
		n = vold_head_parse(buf, look, &h);
		if (n)
			break;
	}
	if (n == 0)
		c->scanned = look;
	if (n == 0 && look < VOLD_HEAD_MAX)
		return BEV_NEED_MORE;
	c->scanned = 0;
	c->t0_us = metrics_now_us();
	c->route = VR_UNKNOWN;
	if (n == 0) {
		/* No end in sight: evhttp's own header limit (lower than
		 * ours) answers it with its 400 and closes. */
		evbuffer_remove_buffer(src, dst, look);
		c->state = VC_DISCARD;
		vconn_disarm(c);
		return BEV_OK;
	}
	rf = n < 0 ? RF_BAD : head_decide(c->vd, &h, &body);
	if (rf) {
		c->route = VR_REFUSED;
		c->vd->st.refused[rf < RF_TOO_LARGE ? VREF_TOKEN :
				  rf == RF_TOO_LARGE ? VREF_TOO_LARGE :
				  rf == RF_CHUNKED ? VREF_CHUNKED :
				  rf == RF_BUSY ? VREF_BODY_BUDGET :
						 VREF_BAD_HEAD]++;
		/* Not one byte of the body is read: what came with the head
		 * is dropped, and evhttp gets a stand-in request it answers
		 * through on_request() (JSON error, Connection: close). */
		evbuffer_drain(src, have);
		evbuffer_add_printf(dst, "GET " VOLD_REFUSED_PATH "%d HTTP/1.1\r\n"
				    "Connection: close\r\n\r\n", (int)rf);
		c->state = VC_DISCARD;
		vconn_disarm(c);
		return BEV_OK;
	}
	evbuffer_remove_buffer(src, dst, (size_t)n);
	c->body_left = body;
	c->body_held = body;
	c->vd->body_held += body;
	if (body) {
		c->state = VC_BODY;
	} else {
		c->state = VC_BUSY;
		vconn_disarm(c);
	}
	return BEV_OK;
}

/*
 * The admission filter's input side: between the socket (@src) and evhttp
 * (@dst). It passes one request at a time: after a complete request it
 * holds the next one in @src (bounded by VCONN_UNDER_WM) until evhttp has
 * replied (on_req_done), so pipelining cannot pile requests up in evhttp's
 * buffers, and evhttp never sees input while it is not reading.
 */
static enum bufferevent_filter_result
vconn_filter_in(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t lim,
		enum bufferevent_flush_mode mode, void *arg)
{
	struct vconn *c = arg;
	size_t have = evbuffer_get_length(src), n;

	if (!c->vd)
		c->state = VC_DISCARD;
	switch (c->state) {
	case VC_HEAD:
		return vconn_head(c, src, dst);
	case VC_BODY:
		n = have < c->body_left ? have : (size_t)c->body_left;
		if (!n)
			return BEV_NEED_MORE;
		evbuffer_remove_buffer(src, dst, n);
		c->body_left -= n;
		if (!c->body_left) {
			c->state = VC_BUSY;
			vconn_disarm(c);
		}
		return BEV_OK;
	case VC_BUSY:
		/* The next request's clock starts with its first byte. */
		if (have)
			vconn_arm(c);
		return BEV_NEED_MORE;
	case VC_DISCARD:
	default:
		evbuffer_drain(src, have);
		return BEV_NEED_MORE;
	}
}

/* After accept: check the peer. After a reply: pass on what the client
 * pipelined meanwhile (no new bytes may come to wake the filter). */
static void
on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct vconn *c = arg;
	bufferevent_data_cb rcb = NULL;
	bufferevent_event_cb ecb = NULL;
	struct evbuffer *src, *dst;

	/* A freed bufferevent has no callbacks left: evhttp let go of it
	 * and vconn_free() is on its way. */
	bufferevent_getcb(c->bev, &rcb, NULL, &ecb, NULL);
	if (!ecb || !c->vd)
		return;
	if (c->admit_pending) {
		c->admit_pending = false;
		if (!vconn_admit_peer(c)) {
			vconn_close(c);
			return;
		}
	}
	if (c->state != VC_HEAD)
		return;
	src = bufferevent_get_input(c->under);
	dst = bufferevent_get_input(c->bev);
	while (evbuffer_get_length(src) &&
	       vconn_filter_in(src, dst, -1, BEV_NORMAL, c) == BEV_OK)
		;
	if (evbuffer_get_length(dst) && rcb &&
	    (bufferevent_get_enabled(c->bev) & EV_READ))
		bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS);
}

/*
 * The output side. libevent's filter would pass evhttp's output down as it
 * comes and then tell evhttp "written" as soon as its own buffer is empty,
 * while the bytes still sit in the bufferevent below: evhttp then frees a
 * connection it closes after the reply (and shuts its socket down) with
 * the reply unsent. So the filter itself passes nothing (vconn_filter_out);
 * on_fout() moves evhttp's output down at once, and evhttp hears "written"
 * (on_wdone) only when the bufferevent below has handed everything to the
 * kernel (or to TLS).
 */
static enum bufferevent_filter_result
vconn_filter_out(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t lim,
		 enum bufferevent_flush_mode mode, void *arg)
{
	return BEV_NEED_MORE;
}

/*
 * The reply to a mutation (POST /op, /batch: a few hundred bytes of JSON
 * in memory, never a file segment) is written to the socket at once by
 * on_flush() instead of going through the bufferevent below, which would
 * turn on write interest and wait for epoll to say "writable" (an
 * epoll_ctl, an epoll_wait and a loop turn more for each small op, and
 * another epoll_ctl to turn it off). evhttp adds the head line by line,
 * then the body, so the write waits for @flush, which runs in the same
 * loop turn once evhttp is done. What the socket does not take goes the
 * usual way. Not over TLS (the bytes must go through OpenSSL).
 */
static bool
vconn_direct(const struct vconn *c)
{
	return !c->tls && c->flush && (c->route == VR_OP || c->route == VR_BATCH);
}

static void
on_fout(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct vconn *c = arg;

	if (!info->n_added || !evbuffer_get_length(buf))
		return;
	if (vconn_direct(c)) {
		if (!c->flush_pending) {
			c->flush_pending = true;
			event_active(c->flush, EV_TIMEOUT, 1);
		}
		return;
	}
	evbuffer_add_buffer(bufferevent_get_output(c->under), buf);
}

static void
on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct vconn *c = arg;
	struct evbuffer *buf = bufferevent_get_output(c->bev);
	struct evbuffer *uout = bufferevent_get_output(c->under);
	evutil_socket_t s = bufferevent_getfd(c->under);
	bufferevent_event_cb ecb = NULL;
	int n;

	c->flush_pending = false;
	/* As on_kick(): evhttp may have let go of the connection in this
	 * turn (a deadline, an error); vconn_free() is on its way. */
	bufferevent_getcb(c->bev, NULL, NULL, &ecb, NULL);
	if (!ecb || !c->vd || !evbuffer_get_length(buf))
		return;
	/* Only behind nothing: bytes queued below go first. */
	if (s >= 0 && !evbuffer_get_length(uout)) {
		n = evbuffer_write(buf, s);
		if (n > 0) {
			if (c->vd)
				c->vd->st.bytes_out += (uint64_t)n;
			/* As on_uout(): evhttp hears "written" once both
			 * buffers are empty. */
			event_active(c->wdone, EV_TIMEOUT, 1);
		}
	}
	/* The rest (the socket was full, or an error, which the bufferevent
	 * below then meets and reports as usual). */
	if (evbuffer_get_length(buf))
		evbuffer_add_buffer(uout, buf);
}

/* Bytes read from the client (after TLS), for the metrics. */
static void
on_uin(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct vconn *c = arg;

	if (c->vd)
		c->vd->st.bytes_in += info->n_added;
}

static void
on_uout(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct vconn *c = arg;

	if (c->vd)
		c->vd->st.bytes_out += info->n_deleted;
	if (info->n_deleted)
		event_active(c->wdone, EV_TIMEOUT, 1);
}

static void
on_wdone(evutil_socket_t fd, short what, void *arg)
{
	struct vconn *c = arg;
	bufferevent_event_cb ecb = NULL;
	struct timeval tv;

	bufferevent_getcb(c->bev, NULL, NULL, &ecb, NULL);
	if (!ecb || !c->vd)
		return;
	/* Progress: evhttp's timeouts count idleness, as on a socket. */
	tv.tv_sec = c->vd->timeout_s;
	tv.tv_usec = 0;
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	if (!evbuffer_get_length(bufferevent_get_output(c->under)) &&
	    !evbuffer_get_length(bufferevent_get_output(c->bev)) &&
	    (bufferevent_get_enabled(c->bev) & EV_WRITE))
		bufferevent_trigger(c->bev, EV_WRITE, 0);
}

/* The filter is being freed (libevent's finalizer): the connection is
 * gone for good. The bufferevent below outlives this call a little. */
static void
vconn_free(void *arg)
{
	struct vconn *c = arg;
	struct vold *vd = c->vd;

	if (c->uout_cb)
		evbuffer_remove_cb_entry(bufferevent_get_output(c->under),
					 c->uout_cb);
	if (c->uin_cb)
		evbuffer_remove_cb_entry(bufferevent_get_input(c->under),
					 c->uin_cb);
	if (c->fout_cb)
		evbuffer_remove_cb_entry(bufferevent_get_output(c->bev),
					 c->fout_cb);
	if (c->kick)
		event_free(c->kick);
	if (c->deadline)
		event_free(c->deadline);
	if (c->wdone)
		event_free(c->wdone);
	if (c->flush)
		event_free(c->flush);
	if (vd) {
		vconn_release(c);
		TAILQ_REMOVE(&vd->conns, c, link);
		LIST_REMOVE(c, hlink);
		vd->nconns--;
		accept_update(vd);
	}
	free(c);
}

/* A filter for a new connection: over TLS if @tls. */
static struct bufferevent *
vconn_make(struct event_base *base, struct vold *vd, bool tls)
{
	struct vconn *c = calloc(1, sizeof(*c));
	struct bufferevent *under = NULL;
	SSL *ssl;

	/* On failure evhttp makes a plain bufferevent of its own: that
	 * connection goes unfiltered, which only happens out of memory. */
	if (!c)
		return NULL;
	c->kick = event_new(base, -1, 0, on_kick, c);
	c->deadline = evtimer_new(base, on_deadline, c);
	c->wdone = event_new(base, -1, 0, on_wdone, c);
	c->flush = event_new(base, -1, 0, on_flush, c);
	c->tls = tls;
	if (tls) {
		ssl = SSL_new(vd->ssl);
		if (ssl)
			under = bufferevent_openssl_socket_new(
				base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
				BEV_OPT_CLOSE_ON_FREE);
	} else {
		under = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	}
	/* libevent writes at most 16 KiB a turn of the loop by default: a
	 * listing page of ~1 MB was ~60 writev and as many turns
	 * (strace, doc/vol-format.md "Listing pages, session 10"). The
	 * socket's buffer still bounds each write. */
	if (under)
		bufferevent_set_max_single_write(under, VCONN_MAX_WRITE);
	if (under)
		c->bev = bufferevent_filter_new(under, vconn_filter_in,
						vconn_filter_out,
						BEV_OPT_CLOSE_ON_FREE,
						vconn_free, c);
	if (c->bev) {
		c->under = under;
		c->fout_cb = evbuffer_add_cb(bufferevent_get_output(c->bev),
					     on_fout, c);
		c->uout_cb = evbuffer_add_cb(bufferevent_get_output(under),
					     on_uout, c);
		c->uin_cb = evbuffer_add_cb(bufferevent_get_input(under),
					    on_uin, c);
	}
	if (!c->kick || !c->deadline || !c->wdone || !c->flush || !c->bev ||
	    !c->fout_cb || !c->uout_cb || !c->uin_cb) {
		if (c->kick)
			event_free(c->kick);
		if (c->deadline)
			event_free(c->deadline);
		if (c->wdone)
			event_free(c->wdone);
		if (c->flush)
			event_free(c->flush);
		c->kick = c->deadline = c->wdone = c->flush = NULL;
		if (c->bev) {
			/* Frees @under and, through vconn_free(), @c. */
			bufferevent_free(c->bev);
		} else {
			if (under)
				bufferevent_free(under);
			free(c);
		}
		return NULL;
	}
	c->vd = vd;
	c->state = VC_HEAD;
	c->admit_pending = true;
	bufferevent_setwatermark(under, EV_READ, 0, VCONN_UNDER_WM);
	TAILQ_INSERT_TAIL(&vd->conns, c, link);
	LIST_INSERT_HEAD(&vd->conn_hash[vconn_hash(c->bev)], c, hlink);
	vd->nconns++;
	/* The first request's clock starts at accept: a client that
	 * connects and says nothing holds a slot no longer than that. */
	vconn_arm(c);
	event_active(c->kick, EV_TIMEOUT, 1);
	if (vd->nconns >= vd->max_conns)
		accept_update(vd);
	return c->bev;
}

/* evhttp_set_bevcb(): called for each accepted connection before evhttp
 * sets its socket. */
static struct bufferevent *
vconn_bevcb(struct event_base *base, void *arg)
{
	struct vold *vd = arg;

	return vconn_make(base, vd, vd->ssl != NULL);
}

/* The same for the metrics listener, which speaks plain HTTP. */
static struct bufferevent *
vconn_bevcb_plain(struct event_base *base, void *arg)
{
	return vconn_make(base, arg, false);
}

/* Count the request of @c, whose reply went out. An event stream that
 * was opened ends here too: its duration is no latency, so only its
 * count is kept. */
static void
count_request(struct vold *vd, struct vconn *c, struct evhttp_request *req)
{
	int code = evhttp_request_get_response_code(req);
	size_t k = 0;

	while (k < VSTATUS_N - 1 && vstatus[k] != code)
		k++;
	vd->st.req[c->route][k]++;
	if (c->t0_us && !(c->route == VR_EVENTS && code == 200))
		metrics_hist_observe(&vd->st.lat[c->route],
				     metrics_now_us() - c->t0_us);
	c->t0_us = 0;
	c->route = VR_UNKNOWN;
}

/* The route of @req, for count_request(). */
static void
req_route(struct vold *vd, struct evhttp_request *req, enum vroute r)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct vconn *c;

	if (!evcon)
		return;
	c = vconn_find(vd, evhttp_connection_get_bufferevent(evcon));
	if (c)
		c->route = r;
}

static enum vroute
vroute_of(enum proto_path_kind k)
{
	switch (k) {
	case PROTO_P_PING: return VR_PING;
	case PROTO_P_VOL: return VR_VOL;
	case PROTO_P_GETATTR: return VR_GETATTR;
	case PROTO_P_DIR: return VR_DIR;
	case PROTO_P_LINK: return VR_LINK;
	case PROTO_P_XATTR: return VR_XATTR;
	case PROTO_P_DATA: return VR_DATA;
	case PROTO_P_EVENTS: return VR_EVENTS;
	case PROTO_P_OP: return VR_OP;
	case PROTO_P_BATCH: return VR_BATCH;
	case PROTO_P_STAGE: return VR_STAGE;
	default: return VR_UNKNOWN;
	}
}

/* One access log line for @req (vold_set_access_log() has the format);
 * @start_us 0: unknown (a refused request: no duration). */
static void
access_log(struct vold *vd, struct evhttp_request *req, uint64_t start_us)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	const char *uri = evhttp_request_get_uri(req), *len, *meth;
	char line[1400], path[1024], t[40], dur[32];
	char *host = NULL;
	ev_uint16_t port = 0;
	struct timespec ts;
	struct tm tm;
	int n;

	if (vd->alog_fd < 0)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%S", &tm);
	if (evcon)
		evhttp_connection_get_peer(evcon, &host, &port);
	util_escape(uri ? uri : "-", uri ? strlen(uri) : 1, path,
		    sizeof(path));
	switch (evhttp_request_get_command(req)) {
	case EVHTTP_REQ_GET: meth = "GET"; break;
	case EVHTTP_REQ_POST: meth = "POST"; break;
	case EVHTTP_REQ_PUT: meth = "PUT"; break;
	case EVHTTP_REQ_HEAD: meth = "HEAD"; break;
	case EVHTTP_REQ_DELETE: meth = "DELETE"; break;
	default: meth = "OTHER"; break;
	}
	len = evhttp_find_header(evhttp_request_get_output_headers(req),
				 "Content-Length");
	if (start_us)
		snprintf(dur, sizeof(dur), "%.3f",
			 (double)(metrics_now_us() - start_us) / 1e6);
	else
		snprintf(dur, sizeof(dur), "-");
	n = snprintf(line, sizeof(line), "%s.%03ldZ %s%s%s:%u %s %s %d %s %s\n",
		     t, ts.tv_nsec / 1000000,
		     host && strchr(host, ':') ? "[" : "", host ? host : "-",
		     host && strchr(host, ':') ? "]" : "", (unsigned)port,
		     meth, path, evhttp_request_get_response_code(req),
		     len ? len : "-", dur);
	if (n >= (int)sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	/* One write per line (O_APPEND): a short write to a full disk is
	 * not worth retrying on the loop. */
	if (write(vd->alog_fd, line, (size_t)n) < 0) {
		/* nothing sensible to do */
	}
}

void
vold_set_access_log(struct vold *vd, int fd)
{
	if (vd->alog_fd >= 0 && vd->alog_fd != fd)
		close(vd->alog_fd);
	vd->alog_fd = fd;
}

/* The reply to a request went out (evhttp_request_set_on_complete_cb):
 * evhttp reads the next request now; let the filter give it one. */
static void
on_req_done(struct evhttp_request *req, void *arg)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct vconn *c;

	if (!evcon)
		return;
	c = vconn_find(arg, evhttp_connection_get_bufferevent(evcon));
	/* Before count_request(), which resets the clock. A refused
	 * request has no duration: it was never read. */
	if (((struct vold *)arg)->alog_fd >= 0)
		access_log(arg, req,
			   c && c->route != VR_REFUSED ? c->t0_us : 0);
	if (!c)
		return;
	count_request(arg, c, req);
	vconn_release(c);
	if (c->state != VC_BUSY)
		return;
	c->state = VC_HEAD;
	if (evbuffer_get_length(bufferevent_get_input(c->under)))
		event_active(c->kick, EV_TIMEOUT, 1);
}

/* The reply to a request the filter refused (VOLD_REFUSED_PATH). */
static void
reply_refused(struct evhttp_request *req, const char *uri)
{
	int i = atoi(uri + strlen(VOLD_REFUSED_PATH));

	if (i <= RF_NONE || i >= RF_COUNT || i == RF_TOKEN + TV_OK)
		i = RF_BAD;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Connection",
			  "close");
	if (i < RF_TOKEN + TV_COUNT)
		reply_err(req, tok_replies[i - RF_TOKEN].err,
			  tok_replies[i - RF_TOKEN].status,
			  tok_replies[i - RF_TOKEN].msg, 0);
	else
		reply_err(req, refusals[i].err, refusals[i].status,
			  refusals[i].msg, 0);
}

static bool
method_ok(enum proto_path_kind k, enum evhttp_cmd_type m)
{
	switch (k) {
	case PROTO_P_GETATTR:
	case PROTO_P_OP:
	case PROTO_P_BATCH:
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

	evhttp_request_set_on_complete_cb(req, on_req_done, vd);
	if (uri && !strncmp(uri, VOLD_REFUSED_PATH, strlen(VOLD_REFUSED_PATH))) {
		reply_refused(req, uri);
		return;
	}
	rc = uri ? proto_parse_path(uri, &p) : -EINVAL;
	if (rc) {
		reply_err(req, -rc, 0, rc == -ENOENT ? "no such route" :
				       rc == -ERANGE ? "chunk beyond end of file" :
						       "malformed request path", 0);
		return;
	}
	req_route(vd, req, vroute_of(p.kind));
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
			p.kind == PROTO_P_OP || p.kind == PROTO_P_BATCH ||
				p.kind == PROTO_P_STAGE,
			&ro))
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
	case PROTO_P_BATCH: kind = J_BATCH; break;
	case PROTO_P_STAGE: kind = J_STAGE; break;
	default:
		reply_err(req, ENOENT, 0, "no such route", 0);
		return;
	}
	if ((kind == J_GETATTR || kind == J_OP || kind == J_BATCH) &&
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
	if (kind == J_DATA)
		r->sum_known = chunk_sum_cached(vd, vol, &p, &r->sum);
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
	if (kind == J_OP || kind == J_BATCH) {
		/* Queued for a group commit from here, so a leader takes
		 * it even before a worker gets to it. */
		pthread_mutex_lock(&vol->gclock);
		TAILQ_INSERT_TAIL(&vol->gcq, r, gclink);
		pthread_mutex_unlock(&vol->gclock);
	}
	vold_pool_submit(vd->pool, &r->job);
}

/* ---- metrics (the metrics listener, loop thread) ---- */

static void
lab(struct metrics_label *l, const char *name, const char *value)
{
	l->name = name;
	l->value = value;
}

/* The text of GET /metrics (doc/protocol.md "Metrics" lists every name).
 * @return heap text (free()) or NULL + errno. */
static char *
metrics_text(struct vold *vd, const struct scrape *sc, size_t *len)
{
	struct vold_stats *st = &vd->st;
	struct metrics_buf b;
	struct metrics_label l[2];
	struct vvol *vol;
	struct sub *sub;
	char num[16];

	metrics_buf_init(&b);
	metrics_head(&b, "cairn_vold_info", "gauge",
		     "This cairn-vold: its version and protocol (always 1).");
	snprintf(num, sizeof(num), "%d", PROTO_VERSION);
	lab(&l[0], "version", PACKAGE_VERSION);
	lab(&l[1], "protocol", num);
	metrics_u64(&b, "cairn_vold_info", l, 2, 1);

	metrics_head(&b, "cairn_vold_requests_total", "counter",
		     "HTTP requests answered, by route and status code.");
	for (int r = 0; r < VR_COUNT; r++)
		for (size_t k = 0; k < VSTATUS_N; k++) {
			if (!st->req[r][k])
				continue;
			if (k < VSTATUS_N - 1)
				snprintf(num, sizeof(num), "%d", vstatus[k]);
			else
				snprintf(num, sizeof(num), "other");
			lab(&l[0], "route", vroute_names[r]);
			lab(&l[1], "code", num);
			metrics_u64(&b, "cairn_vold_requests_total", l, 2,
				    st->req[r][k]);
		}
	metrics_head(&b, "cairn_vold_request_duration_seconds", "histogram",
		     "From a request's complete head to its whole reply "
		     "handed to the kernel, by route (not opened event "
		     "streams).");
	for (int r = 0; r < VR_COUNT; r++) {
		if (!metrics_hist_count(&st->lat[r]))
			continue;
		lab(&l[0], "route", vroute_names[r]);
		metrics_hist_write(&b, "cairn_vold_request_duration_seconds",
				   l, 1, &st->lat[r]);
	}
	metrics_head(&b, "cairn_vold_received_bytes_total", "counter",
		     "HTTP bytes read from clients (after TLS).");
	metrics_u64(&b, "cairn_vold_received_bytes_total", NULL, 0,
		    st->bytes_in);
	metrics_head(&b, "cairn_vold_sent_bytes_total", "counter",
		     "HTTP bytes handed to the kernel or to TLS for clients.");
	metrics_u64(&b, "cairn_vold_sent_bytes_total", NULL, 0,
		    st->bytes_out);
	metrics_head(&b, "cairn_vold_connections", "gauge",
		     "Client connections open, on both listeners.");
	metrics_u64(&b, "cairn_vold_connections", NULL, 0,
		    (uint64_t)vd->nconns);
	metrics_head(&b, "cairn_vold_admission_refusals_total", "counter",
		     "Connections, requests and event streams the admission "
		     "limits turned away, by reason.");
	for (int i = 0; i < VREF_COUNT; i++) {
		lab(&l[0], "reason", vrefusal_names[i]);
		metrics_u64(&b, "cairn_vold_admission_refusals_total", l, 1,
			    st->refused[i]);
	}
	metrics_head(&b, "cairn_vold_op_commits_total", "counter",
		     "Mutations committed to a volume (one fsynced "
		     "transaction each): applied, or refused and recorded "
		     "under their opid.");
	lab(&l[0], "result", "applied");
	metrics_u64(&b, "cairn_vold_op_commits_total", l, 1,
		    metrics_counter_get(&st->commits[0]));
	lab(&l[0], "result", "refused");
	metrics_u64(&b, "cairn_vold_op_commits_total", l, 1,
		    metrics_counter_get(&st->commits[1]));
	metrics_head(&b, "cairn_vold_op_commit_duration_seconds", "histogram",
		     "Time to check, apply and commit (fsync) one group of "
		     "mutations (one request alone, or the ones that "
		     "arrived together).");
	metrics_hist_write(&b, "cairn_vold_op_commit_duration_seconds", NULL,
			   0, &st->commit_lat);
	metrics_head(&b, "cairn_vold_open_data_files", "gauge",
		     "Data files kept open for chunk GETs.");
	metrics_u64(&b, "cairn_vold_open_data_files", NULL, 0,
		    (uint64_t)vd->ncache);
	metrics_head(&b, "cairn_vold_chunk_sums", "gauge",
		     "Chunk replies whose sums are kept, open or not.");
	metrics_u64(&b, "cairn_vold_chunk_sums", NULL, 0,
		    (uint64_t)vd->nentries);
	metrics_head(&b, "cairn_vold_chunk_hashes_total", "counter",
		     "Chunks read and hashed (SHA-256, block CRC32Cs) for a "
		     "chunk GET whose sums were not kept.");
	metrics_u64(&b, "cairn_vold_chunk_hashes_total", NULL, 0,
		    metrics_counter_get(&st->hashes));
	metrics_head(&b, "cairn_vold_event_streams", "gauge",
		     "Event streams open, by volume.");
	TAILQ_FOREACH(vol, &vd->vols, link) {
		uint64_t n = 0;

		TAILQ_FOREACH(sub, &vol->subs, link)
			n++;
		lab(&l[0], "volume", vol->name);
		metrics_u64(&b, "cairn_vold_event_streams", l, 1, n);
	}

#define VOLS(name, help, field)                                            \
	metrics_head(&b, name, "gauge", help);                             \
	for (size_t i = 0; i < sc->nnames; i++) {                          \
		if (!sc->ok[i])                                            \
			continue;                                          \
		lab(&l[0], "volume", sc->names[i]);                        \
		metrics_u64(&b, name, l, 1, sc->vi[i].field);              \
	}
	VOLS("cairn_vold_volume_used_bytes", "Data bytes in the volume.",
	     bytes_used)
	VOLS("cairn_vold_volume_quota_bytes",
	     "The volume's quota in bytes (0: none).", bytes_limit)
	VOLS("cairn_vold_volume_objects", "Objects in the volume.",
	     files_used)
	VOLS("cairn_vold_volume_quota_objects",
	     "The volume's quota in objects (0: none).", files_limit)
	VOLS("cairn_vold_volume_event_seq",
	     "The volume's last event sequence number.", event_seq)
#undef VOLS
	return metrics_buf_steal(&b, len);
}

/* The starter's or a J_STAT job's share of @sc is done; the last one
 * writes the text and answers. */
static void
scrape_put(struct scrape *sc)
{
	size_t len = 0;
	char *text;

	if (--sc->pending)
		return;
	text = metrics_text(sc->vd, sc, &len);
	if (!text) {
		reply_err(sc->req, ENOMEM, 0, NULL, 0);
	} else {
		evhttp_add_header(evhttp_request_get_output_headers(sc->req),
				  "Cache-Control", "no-store");
		reply_body(sc->req, 200, METRICS_CONTENT_TYPE, text, len);
	}
	vs_names_free(sc->names, sc->nnames);
	free(sc->vi);
	free(sc->ok);
	free(sc);
}

/* GET /metrics: read every volume's usage on the workers, then answer. */
static void
scrape_start(struct vold *vd, struct evhttp_request *req)
{
	struct scrape *sc = calloc(1, sizeof(*sc));

	if (!sc) {
		reply_err(req, ENOMEM, 0, NULL, 0);
		return;
	}
	sc->vd = vd;
	sc->req = req;
	sc->pending = 1;
	if (vs_vol_list(vd->root, &sc->names, &sc->nnames) == 0 &&
	    sc->nnames) {
		sc->vi = calloc(sc->nnames, sizeof(*sc->vi));
		sc->ok = calloc(sc->nnames, sizeof(*sc->ok));
	}
	for (size_t i = 0; sc->vi && sc->ok && i < sc->nnames; i++) {
		struct vvol *vol = vvol_get(vd, sc->names[i]);
		struct rjob *r =
			vol ? rjob_new(vd, vol, J_STAT, NULL, NULL) : NULL;

		if (!r) {
			vvol_put(vol);
			continue;
		}
		r->scrape = sc;
		r->idx = i;
		sc->pending++;
		vold_pool_submit(vd->pool, &r->job);
	}
	if (!sc->vi || !sc->ok) {
		/* Out of memory: the text without volumes. */
		free(sc->vi);
		free(sc->ok);
		sc->vi = NULL;
		sc->ok = NULL;
		vs_names_free(sc->names, sc->nnames);
		sc->names = NULL;
		sc->nnames = 0;
	}
	scrape_put(sc);
}

/* The metrics listener: GET /metrics and nothing else. */
static void
on_metrics_request(struct evhttp_request *req, void *arg)
{
	struct vold *vd = arg;
	const char *uri = evhttp_request_get_uri(req);

	evhttp_request_set_on_complete_cb(req, on_req_done, vd);
	if (uri && !strncmp(uri, VOLD_REFUSED_PATH, strlen(VOLD_REFUSED_PATH))) {
		reply_refused(req, uri);
		return;
	}
	if (!uri || strcspn(uri, "?") != 8 || strncmp(uri, "/metrics", 8)) {
		reply_err(req, ENOENT, 404,
			  "no such route: this listener serves GET /metrics", 0);
		return;
	}
	req_route(vd, req, VR_METRICS);
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
				  "Allow", "GET");
		reply_err(req, EINVAL, 405, "method not allowed", 0);
		return;
	}
	scrape_start(vd, req);
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
		int ts_rc;

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
		/* A stream lives no longer than its token: not past its
		 * expiry, nor past `vos revoke` (a new epoch) or the volume
		 * being made again (a new id). A token state that cannot be
		 * read now (say EMFILE) keeps the streams until the next
		 * tick; one that is gone or corrupt ends them, as
		 * check_token() would refuse them. */
		ts_rc = TAILQ_EMPTY(&vol->subs) ? 0 : vvol_tokstate(vd, vol);
		for (s = TAILQ_FIRST(&vol->subs); s; s = ns) {
			const char *why = NULL;

			ns = TAILQ_NEXT(s, link);
			if (s->expiry && (uint64_t)time(NULL) >= s->expiry)
				why = "its token expired";
			else if (ts_rc == -ENOENT || ts_rc == -EINVAL)
				why = "the volume's token state is gone";
			else if (!ts_rc && (s->volid != vol->ts.id ||
					    s->epoch != vol->ts.epoch))
				why = "its token was revoked, or the volume "
				      "made again";
			if (why) {
				/* The client reconnects and learns from the
				 * 401 that it needs a new token. */
				log_info(LOG_EV, "event stream on '%s' ended: %s",
					 vol->name, why);
				sub_drop(s, false);
				continue;
			}
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
vold_knock(struct vold *vd)
{
	struct vvol *vol;

	TAILQ_FOREACH(vol, &vd->vols, link) {
		struct rjob *r;

		if (!vol->opened || vol->flags_pending)
			continue;
		r = rjob_new(vd, vol, J_FLAGS, NULL, NULL);
		if (r) {
			vol->flags_pending = true;
			vol->refs++;
			vold_pool_submit(vd->pool, &r->job);
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

/* The address and port of a bound listener, as "ADDR:PORT"/"[V6]:PORT". */
static int
bound_port(struct evhttp_bound_socket *bs, const char *addr, int port,
	   char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss,
			&sl) == 0) {
		if (ss.ss_family == AF_INET6)
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		else
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	snprintf(out, len, strchr(addr, ':') ? "[%s]:%d" : "%s:%d", addr,
		 port);
	return port;
}

/*
 * The metrics listener on @spec: "ADDR:PORT", "[V6]:PORT", or a port
 * alone for 127.0.0.1. Plain HTTP through the same admission filter and
 * caps as the volume listener; any address is allowed (Prometheus may
 * scrape from another host), the man page says what that exposes.
 */
static int
metrics_start(struct vold *vd, const char *spec)
{
	char addr[64], buf[80];
	int port, rc;

	if (spec[strspn(spec, "0123456789")] == '\0' && *spec) {
		snprintf(buf, sizeof(buf), "127.0.0.1:%s", spec);
		spec = buf;
	}
	rc = parse_listen(spec, addr, sizeof(addr), &port);
	if (rc) {
		log_err(LOG_MAIN, "bad metrics listen address '%s'", spec);
		return rc;
	}
	vd->mhttp = evhttp_new(vd->base);
	if (!vd->mhttp)
		return -ENOMEM;
	evhttp_set_max_headers_size(vd->mhttp, 16384);
	evhttp_set_max_body_size(vd->mhttp, 0); /* no route takes a body */
	evhttp_set_bevcb(vd->mhttp, vconn_bevcb_plain, vd);
	evhttp_set_timeout(vd->mhttp, vd->timeout_s);
	evhttp_set_allowed_methods(vd->mhttp, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
						      EVHTTP_REQ_PUT |
						      EVHTTP_REQ_HEAD |
						      EVHTTP_REQ_DELETE |
						      EVHTTP_REQ_OPTIONS |
						      EVHTTP_REQ_PATCH);
	evhttp_set_gencb(vd->mhttp, on_metrics_request, vd);
	vd->mbound = evhttp_bind_socket_with_handle(vd->mhttp, addr,
						    (ev_uint16_t)port);
	if (!vd->mbound) {
		rc = errno ? -errno : -EADDRINUSE;
		log_err(LOG_MAIN, "cannot listen for metrics on '%s': %s", spec,
			strerror(-rc));
		return rc;
	}
	evconnlistener_set_error_cb(
		evhttp_bound_socket_get_listener(vd->mbound), on_accept_error);
	vd->mport = bound_port(vd->mbound, addr, port, vd->maddr,
			       sizeof(vd->maddr));
	log_info(LOG_MAIN, "metrics on http://%s/metrics", vd->maddr);
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
	vd->alog_fd = -1;
	memcpy(vd->key, key, keylen);
	vd->keylen = keylen;
	vd->cache_max = conf->cache_objects > 0 ? conf->cache_objects : 1024;
	vd->max_conns = conf->max_conns > 0 ? conf->max_conns :
					      VOLD_DEFAULT_MAX_CONNS;
	vd->max_conns_addr = conf->max_conns_addr > 0 ?
				     conf->max_conns_addr :
				     VOLD_DEFAULT_MAX_CONNS_ADDR;
	vd->deadline_s = conf->request_deadline_s > 0 ?
				 conf->request_deadline_s :
				 VOLD_DEFAULT_REQUEST_DEADLINE;
	vd->max_streams_token = conf->max_streams_token > 0 ?
					conf->max_streams_token :
					VOLD_DEFAULT_MAX_STREAMS_TOKEN;
	vd->stage_max = conf->stage_max;
	vd->journal = !conf->no_journal;
	vs_root_set_journal_max(root, (size_t)conf->journal_max);
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
	TAILQ_INIT(&vd->olru);
	TAILQ_INIT(&vd->vols);
	TAILQ_INIT(&vd->conns);
	for (int i = 0; i < VR_COUNT; i++)
		metrics_hist_init(&vd->st.lat[i], metrics_latency_us,
				  metrics_latency_us_n, 1e-6);
	metrics_hist_init(&vd->st.commit_lat, metrics_latency_us,
			  metrics_latency_us_n, 1e-6);
	for (int i = 0; i < VCONN_HASH; i++)
		LIST_INIT(&vd->conn_hash[i]);
	LIST_INSERT_HEAD(&all_volds, vd, all);
	rc = parse_listen(conf->listen ? conf->listen : "127.0.0.1:7070", addr,
			  sizeof(addr), &port);
	if (rc) {
		log_err(LOG_MAIN, "bad listen address '%s'", conf->listen);
		goto fail;
	}
	vd->http = evhttp_new(base);
	vd->pool = vold_pool_new(base, conf->workers > 0 ? conf->workers : 4);
	vd->tick = event_new(base, -1, EV_PERSIST, on_tick, vd);
	vd->resume = evtimer_new(base, on_resume, vd);
	if (!vd->http || !vd->pool || !vd->tick || !vd->resume) {
		rc = -ENOMEM;
		goto fail;
	}
	evhttp_set_max_headers_size(vd->http, 16384);
	/* The admission filter (vconn_filter_in) holds each body to its
	 * route's limit before evhttp reads a byte; this is a backstop at the
	 * largest of those limits (an op). */
	evhttp_set_max_body_size(vd->http, (ev_ssize_t)PROTO_OP_BODY_MAX);
	evhttp_set_bevcb(vd->http, vconn_bevcb, vd);
	vd->timeout_s = conf->timeout_s > 0 ? conf->timeout_s : 60;
	evhttp_set_timeout(vd->http, vd->timeout_s);
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
	evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(vd->bound),
				    on_accept_error);
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
	if (conf->metrics_listen) {
		rc = metrics_start(vd, conf->metrics_listen);
		if (rc)
			goto fail;
	}
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

int
vold_metrics_port(const struct vold *vd)
{
	return vd->mbound ? vd->mport : 0;
}

void
vold_stop(struct vold *vd)
{
	struct vconn *c;
	struct vvol *vol;

	if (!vd)
		return;
	if (vd->bound)
		evhttp_del_accept_socket(vd->http, vd->bound);
	vd->bound = NULL;
	if (vd->mbound)
		evhttp_del_accept_socket(vd->mhttp, vd->mbound);
	vd->mbound = NULL;
	if (vd->tick)
		event_free(vd->tick);
	vd->tick = NULL;
	if (vd->resume)
		event_free(vd->resume);
	vd->resume = NULL;
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
	if (vd->mhttp)
		evhttp_free(vd->mhttp);
	/* Filters whose finalizers have not run yet outlive us: they must
	 * not touch @vd or the events of a base about to go. */
	while ((c = TAILQ_FIRST(&vd->conns))) {
		TAILQ_REMOVE(&vd->conns, c, link);
		LIST_REMOVE(c, hlink);
		event_free(c->kick);
		event_free(c->deadline);
		event_free(c->wdone);
		if (c->flush)
			event_free(c->flush);
		c->kick = c->deadline = c->wdone = c->flush = NULL;
		c->vd = NULL;
	}
	LIST_REMOVE(vd, all);
	vold_pool_free(vd->pool);
	while ((vol = TAILQ_FIRST(&vd->vols)))
		vvol_unlist(vol);
	if (vd->ssl)
		SSL_CTX_free(vd->ssl);
	memset(vd->key, 0, sizeof(vd->key));
	memset(vd->tokc, 0, sizeof(vd->tokc));
	if (vd->alog_fd >= 0)
		close(vd->alog_fd);
	free(vd);
}
