/*
 * ctl_metrics.c - cairnd's counters in the Prometheus text format: the
 * answer to `fs metrics` (CTL_METRICS) and, when metrics-listen is set,
 * to GET /metrics on a loopback HTTP listener. It reads the counters the
 * modules keep (struct cm_stats, the chunk store's, the replay log's, the
 * HTTP client's, the mode); it keeps none of its own.
 *
 * Threads: the loop thread only (the control server and the listener are
 * both on it).
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <jansson.h>

#include "chunkstore/cs.h"
#include "cm/daemon_i.h"
#include "cm/cm_ctl.h"
#include "cm/ctl.h"
#include "cm/ctl_i.h"
#include "cm/http.h"
#include "cm/inode.h"
#include "cm/rlog.h"
#include "cm/wb.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/util.h"

/*
 * The listener of metrics-listen. Any local user can connect to it, so
 * it must not be a way to use up cairnd's descriptors (the chunk store
 * needs them): at most MSRV_MAX_CONNS connections are open at once (at
 * the cap the listener stops accepting; further clients wait in the
 * kernel's backlog, which costs cairnd nothing), a connection that says
 * nothing is closed after MSRV_TIMEOUT_S, and when accept() fails (out
 * of descriptors) the listener pauses for MSRV_PAUSE_MS instead of
 * spinning the loop on a socket that stays readable, logging once a
 * minute at most. A connection counts from evhttp_set_bevcb() until
 * its close callback. (A pass-through bufferevent filter would see every
 * free, but libevent 2.1's filter does not flush output that was added
 * while evhttp had writing disabled: replies hang.)
 *
 * cm_metrics_listen_stop() frees the struct once evhttp_free() has
 * closed every connection; should a close callback come later than
 * that, the last one frees it.
 */
#define MSRV_MAX_CONNS	 16
#define MSRV_TIMEOUT_S	 5
#define MSRV_PAUSE_MS	 1000
#define MSRV_LOG_EVERY_S 60

struct cm_metrics_srv {
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	struct event *resume; /* re-enables accept after an error */
	int nconns;	      /* connections open */
	bool full;	      /* at MSRV_MAX_CONNS: not accepting */
	bool paused;	      /* after an accept error, until resume */
	bool stopping;	      /* cm_metrics_listen_stop() ran */
	time_t log_full_at, log_err_at;
	LIST_HEAD(, msrv_new) fresh; /* accepted, close callback not set */
	LIST_ENTRY(cm_metrics_srv) all;
};

/* The listener's error callback gets the evhttp, not us: find us by it
 * (loop thread only, like everything here). */
static LIST_HEAD(, cm_metrics_srv) all_msrv = LIST_HEAD_INITIALIZER(all_msrv);

static void
lab(struct metrics_label *l, const char *name, const char *value)
{
	l->name = name;
	l->value = value;
}

/* A counter family of one sample, labelled with the volume. */
static void
counter(struct metrics_buf *b, const struct metrics_label *vl, const char *name,
	const char *help, uint64_t v)
{
	metrics_head(b, name, "counter", help);
	metrics_u64(b, name, vl, 1, v);
}

static void
gauge(struct metrics_buf *b, const struct metrics_label *vl, const char *name,
      const char *help, uint64_t v)
{
	metrics_head(b, name, "gauge", help);
	metrics_u64(b, name, vl, 1, v);
}

#define LD(f) atomic_load_explicit(&cm->st.f, memory_order_relaxed)

/* The text (doc/control.md "metrics" lists every name). Loop thread.
 * @return heap text (free()) or NULL + errno. */
static char *
vol_metrics_text(struct cm *cm, size_t *len)
{
	static const char *const kinds[CM_R_MAX] = {
		"lookup",   "getattr", "readdir", "open",  "read",
		"readlink", "xattr",   "statfs",  "other", "opendir",
		"release",  "flush",   "forget",  "access"};
	static const int modes[] = {CM_CONNECTED, CM_DISCONNECTED,
				    CM_REINTEGRATING};
	struct metrics_buf b;
	struct metrics_label vl, l[2];
	struct cs_stats cs = {0};
	struct rlog_stats rs = {0};
	struct http_stats hs = {0};
	int mode = cm->conn ? conn_mode(cm->conn) : CM_CONNECTED;
	int64_t age_ms = 0;

	if (cm->cs)
		cs_get_stats(cm->cs, &cs);
	if (cm->rlog && rlog_stats(cm->rlog, &rs) < 0)
		memset(&rs, 0, sizeof(rs));
	if (cm->http)
		http_get_stats(cm->http, &hs);
	if (rs.records && rs.oldest_ms) {
		age_ms = util_wall_ns() / 1000000 - rs.oldest_ms;
		if (age_ms < 0)
			age_ms = 0;
	}
	/* One cairnd serves one volume today; every sample carries its
	 * name so that scrapes of several cairnds, or of one serving
	 * several volumes later, stay apart. */
	lab(&vl, "volume", cm->cfg.volume ? cm->cfg.volume : "");
	metrics_buf_init(&b);

	metrics_head(&b, "cairnd_info", "gauge",
		     "This cairnd: its version and server (always 1).");
	lab(&l[0], "version", PACKAGE_VERSION);
	lab(&l[1], "server", cm->cfg.server ? cm->cfg.server : "");
	metrics_u64(&b, "cairnd_info", l, 2, 1);

	metrics_head(&b, "cairnd_mode", "gauge",
		     "The volume's mode: 1 for the current one, 0 for the "
		     "others.");
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		l[0] = vl;
		lab(&l[1], "mode", cm_mode_name(modes[i]));
		metrics_u64(&b, "cairnd_mode", l, 2, mode == modes[i]);
	}
	gauge(&b, &vl, "cairnd_online",
	      "Whether the last contact with the server worked (1) or not.",
	      (uint64_t)atomic_load(&cm->online));

	metrics_head(&b, "cairnd_fuse_requests_total", "counter",
		     "FUSE requests, by kind.");
	for (int i = 0; i < CM_R_MAX; i++) {
		l[0] = vl;
		lab(&l[1], "kind", kinds[i]);
		metrics_u64(&b, "cairnd_fuse_requests_total", l, 2,
			    LD(reqs[i]));
	}
	/* The process's counts, not the volume's: no volume label, so a
	 * namespace's exposition gives the series once (have_series()
	 * keeps the first volume's) and sum by (op) counts each request
	 * once. */
	metrics_head(&b, "cairnd_fuse_opcode_requests_total", "counter",
		     "FUSE requests read from /dev/fuse, by opcode (the "
		     "whole process: no volume label).");
	for (unsigned i = 0; i < CM_FUSE_OPC_MAX; i++) {
		uint64_t v = (uint64_t)atomic_load_explicit(
			&cm_fuse_opc[i], memory_order_relaxed);
		char num[16];

		if (!v)
			continue;
		snprintf(num, sizeof(num), "%u", i);
		lab(&l[0], "op",
		    cm_fuse_opc_name(i) ? cm_fuse_opc_name(i) : num);
		metrics_u64(&b, "cairnd_fuse_opcode_requests_total", l, 1, v);
	}
	counter(&b, &vl, "cairnd_parked_requests_total",
		"FUSE requests that had to wait for the network.", LD(parked));

	counter(&b, &vl, "cairnd_chunk_hits_total",
		"Chunk reads answered from the cache.", LD(chunk_hits));
	counter(&b, &vl, "cairnd_chunk_misses_total",
		"Chunk reads that had to wait for a fetch.", LD(chunk_misses));
	counter(&b, &vl, "cairnd_chunks_advised_total",
		"Chunk files the kernel was asked to read ahead.",
		LD(chunks_advised));
	counter(&b, &vl, "cairnd_open_pushes_total",
		"Small files stored in the page cache at their first open.",
		LD(open_pushes));
	counter(&b, &vl, "cairnd_reads_held_total",
		"Short reads held while a truncation of the file was answered.",
		LD(reads_held));
	counter(&b, &vl, "cairnd_chunks_fetched_total",
		"Chunks fetched, verified and stored.", LD(chunks_fetched));
	counter(&b, &vl, "cairnd_fetched_bytes_total",
		"Bytes of chunks fetched, verified and stored.",
		LD(bytes_fetched));
	metrics_head(&b, "cairnd_fetch_duration_seconds", "histogram",
		     "Chunk fetches, from the first request to the chunk "
		     "stored (retries included).");
	metrics_hist_write(&b, "cairnd_fetch_duration_seconds", &vl, 1,
			   &cm->st.fetch_lat);
	counter(&b, &vl, "cairnd_prefetches_total",
		"Chunk fetches started by readahead.", LD(prefetches));
	counter(&b, &vl, "cairnd_fetch_retries_total",
		"Chunk fetch attempts retried.", LD(fetch_retries));
	counter(&b, &vl, "cairnd_fetch_errors_total", "Chunk fetches given up.",
		LD(fetch_errors));
	counter(&b, &vl, "cairnd_bad_chunks_total",
		"Fetched chunks refused for their checksum or length.",
		LD(bad_chunks));
	counter(&b, &vl, "cairnd_stale_chunks_total",
		"Chunk fetches answered 410 (the data version moved on).",
		LD(stale_chunks));
	counter(&b, &vl, "cairnd_dir_fetches_total",
		"Directory listings fetched.", LD(dir_fetches));
	counter(&b, &vl, "cairnd_dir_prefetches_total",
		"Directory listings asked for ahead of a walker.",
		LD(dir_prefetches));
	counter(&b, &vl, "cairnd_getattr_requests_total",
		"Bulk getattr requests sent.", LD(getattr_reqs));
	counter(&b, &vl, "cairnd_events_total",
		"Change events received from the server.", LD(events));
	counter(&b, &vl, "cairnd_event_reconnects_total",
		"Times the event stream was opened again.", LD(ev_reconnects));
	counter(&b, &vl, "cairnd_invalidations_total",
		"Kernel cache invalidations queued.", LD(invalidations));
	counter(&b, &vl, "cairnd_stores_total",
		"File data stores the server took.", LD(stores));
	counter(&b, &vl, "cairnd_conflicts_total", "Conflict copies saved.",
		LD(conflicts));

	gauge(&b, &vl, "cairnd_cache_used_bytes",
	      "Bytes of chunks in the cache.", cs.bytes_used);
	gauge(&b, &vl, "cairnd_cache_limit_bytes",
	      "The cache's size limit in bytes.", cs.bytes_limit);
	gauge(&b, &vl, "cairnd_cache_files", "Chunk files in the cache.",
	      cs.files_used);
	gauge(&b, &vl, "cairnd_cache_pinned_bytes", "Bytes of pinned chunks.",
	      cs.pinned_bytes);
	gauge(&b, &vl, "cairnd_cache_dirty_bytes",
	      "Bytes of dirty chunks (written, not stored on the server).",
	      cs.dirty_bytes);
	gauge(&b, &vl, "cairnd_dirty_files",
	      "Files with changes not stored on the server yet.",
	      cm->wb ? wb_dirty_files(cm->wb) : 0);
	counter(&b, &vl, "cairnd_cache_evictions_total",
		"Chunks evicted from the cache.", cs.evictions);
	gauge(&b, &vl, "cairnd_inodes", "Inodes the kernel knows.",
	      cm->ino ? (uint64_t)ino_count(cm->ino) : 0);

	gauge(&b, &vl, "cairnd_replay_log_records",
	      "Records in the replay log (waiting, in flight, conflicts).",
	      rs.records);
	gauge(&b, &vl, "cairnd_replay_log_pending_records",
	      "Replay log records waiting to be sent.", rs.pending);
	gauge(&b, &vl, "cairnd_replay_log_bytes",
	      "Bytes of file data the replay log holds for the server.",
	      rs.data_bytes);
	metrics_head(&b, "cairnd_replay_log_oldest_age_seconds", "gauge",
		     "Age of the oldest replay log record (0: empty).");
	metrics_double(&b, "cairnd_replay_log_oldest_age_seconds", &vl, 1,
		       (double)age_ms / 1000.0);
	counter(&b, &vl, "cairnd_replay_log_commits_total",
		"Replay log transactions committed since start.", rs.commits);
	counter(&b, &vl, "cairnd_replay_log_syncs_total",
		"fdatasyncs of the replay log's journal since start (one "
		"covers every commit before it; log-sync=close: fewer than "
		"commits).",
		rs.syncs);

	counter(&b, &vl, "cairnd_http_requests_total",
		"HTTP requests to the server finished.", hs.requests);
	counter(&b, &vl, "cairnd_http_failures_total",
		"HTTP requests to the server that failed in transport.",
		hs.failures);
	counter(&b, &vl, "cairnd_http_received_bytes_total",
		"HTTP body bytes received from the server.", hs.bytes_in);
	counter(&b, &vl, "cairnd_http_sent_bytes_total",
		"HTTP body bytes sent to the server.", hs.bytes_out);
	gauge(&b, &vl, "cairnd_http_active_requests",
	      "HTTP requests to the server in flight.", hs.active);
	return metrics_buf_steal(&b, len);
}

#undef LD

/* ---- a namespace: every volume's figures in one exposition ----------- */

/* One family of an exposition: its "# HELP"/"# TYPE" lines and samples. */
struct fam {
	char *name;
	const char *head; /* into a volume's text */
	size_t head_len;
	const char **lines; /* sample lines, into the volumes' texts */
	size_t *lens;
	size_t n, cap;
};

/* Is the series (a sample line up to its value) of @l among @f's? */
static bool
have_series(const struct fam *f, const char *l, size_t len)
{
	const char *sp = memrchr(l, ' ', len);
	size_t k = sp ? (size_t)(sp - l) : len;

	for (size_t i = 0; i < f->n; i++)
		if (f->lens[i] > k && f->lines[i][k] == ' ' &&
		    !memcmp(f->lines[i], l, k))
			return true;
	return false;
}

static int
fam_add(struct fam *f, const char *l, size_t len)
{
	if (have_series(f, l, len))
		return 0;
	if (f->n == f->cap) {
		size_t nc = f->cap ? 2 * f->cap : 16;
		const char **nl = realloc(f->lines, nc * sizeof(*nl));
		size_t *nn;

		if (!nl)
			return -ENOMEM;
		f->lines = nl;
		nn = realloc(f->lens, nc * sizeof(*nn));
		if (!nn)
			return -ENOMEM;
		f->lens = nn;
		f->cap = nc;
	}
	f->lines[f->n] = l;
	f->lens[f->n++] = len;
	return 0;
}

/*
 * The exposition of a namespace: each volume's (vol_metrics_text(), its
 * samples labelled with its volume) merged so that every family has its
 * HELP and TYPE once and then the samples of all volumes; a series an
 * earlier volume already gave (cairnd_info of a shared server, the
 * shared chunk store's figures) is left out, as the format wants each
 * series once. Loop thread.
 */
/* The family named @nm (@nml bytes) of @fams, added (header at @head,
 * @hl bytes) when new. NULL on ENOMEM. */
static struct fam *
fam_get(struct fam **fams, size_t *nf, size_t *capf, const char *nm, size_t nml,
	const char *head, size_t hl)
{
	struct fam *f;

	for (size_t i = 0; i < *nf; i++)
		if (strlen((*fams)[i].name) == nml &&
		    !memcmp((*fams)[i].name, nm, nml))
			return &(*fams)[i];
	if (*nf == *capf) {
		size_t nc = *capf ? 2 * *capf : 64;
		struct fam *n = realloc(*fams, nc * sizeof(*n));

		if (!n)
			return NULL;
		*fams = n;
		*capf = nc;
	}
	f = &(*fams)[*nf];
	memset(f, 0, sizeof(*f));
	f->name = strndup(nm, nml);
	if (!f->name)
		return NULL;
	f->head = head;
	f->head_len = hl;
	(*nf)++;
	return f;
}

/*
 * The exposition of a namespace: each volume's (vol_metrics_text(), its
 * samples labelled with its volume) merged so that every family has its
 * HELP and TYPE once and then the samples of all volumes; a series an
 * earlier volume already gave (cairnd_info of a shared server, the
 * shared chunk store's figures) is left out, as the format wants each
 * series once. Loop thread.
 */
static char *
ns_metrics_text(struct cm_ns *ns, size_t *len)
{
	char **texts = calloc(ns->n ? ns->n : 1, sizeof(*texts));
	struct fam *fams = NULL, *cur;
	size_t nf = 0, capf = 0, tl, ll;
	struct metrics_buf b;
	const char *p, *end, *nl;
	char *out = NULL;

	metrics_buf_init(&b);
	if (!texts)
		return NULL;
	for (size_t v = 0; v < ns->n; v++) {
		if (ns->vols[v]->ns_failed)
			continue;
		texts[v] = vol_metrics_text(ns->vols[v], &tl);
		if (!texts[v])
			goto out;
		cur = NULL;
		for (p = texts[v], end = p + tl; p < end; p += ll) {
			nl = memchr(p, '\n', (size_t)(end - p));
			ll = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
			if (!strncmp(p, "# HELP ", 7)) {
				cur = fam_get(&fams, &nf, &capf, p + 7,
					      strcspn(p + 7, " \n"), p, ll);
				if (!cur)
					goto out;
			} else if (!strncmp(p, "# TYPE ", 7)) {
				/* After its HELP line: part of the head. */
				if (cur && cur->head + cur->head_len == p)
					cur->head_len += ll;
			} else if (cur && ll > 1 && fam_add(cur, p, ll) < 0) {
				goto out;
			}
		}
	}
	for (size_t i = 0; i < nf; i++) {
		metrics_buf_append(&b, fams[i].head, fams[i].head_len);
		for (size_t k = 0; k < fams[i].n; k++)
			metrics_buf_append(&b, fams[i].lines[k],
					   fams[i].lens[k]);
	}
	out = metrics_buf_steal(&b, len);
out:
	metrics_buf_release(&b);
	for (size_t i = 0; i < nf; i++) {
		free(fams[i].name);
		free(fams[i].lines);
		free(fams[i].lens);
	}
	free(fams);
	for (size_t v = 0; v < ns->n; v++)
		free(texts[v]);
	free(texts);
	return out;
}

/* The exposition a request on @cm answers: its volume's, or with
 * @whole_ns (the listener, or fs metrics without -V) its namespace's. */
static char *
metrics_text(struct cm *cm, size_t *len, bool whole_ns)
{
	if (cm->ns && whole_ns)
		return ns_metrics_text(cm->ns, len);
	return vol_metrics_text(cm, len);
}

/* Answer fs metrics with @text (freed here), or ENOMEM when NULL. */
static void
reply_metrics(struct ctl_call *call, char *text, size_t len)
{
	if (!text) {
		ctl_reply_err(call, ENOMEM, NULL);
		return;
	}
	ctl_reply_ok(call, json_pack("{s:s,s:s%}", "content_type",
				     METRICS_CONTENT_TYPE, "text", text, len));
	free(text);
}

void
cm_ns_ctl_h_metrics(struct cm_ns *ns, struct ctl_call *call)
{
	size_t len = 0;
	char *text = NULL;

	for (size_t i = 0; i < ns->n && !text; i++)
		if (!ns->vols[i]->ns_failed)
			text = metrics_text(ns->vols[i], &len, true);
	reply_metrics(call, text, len);
}

/* ---- fs metrics ----------------------------------------------------- */

void
cm_ctl_h_metrics(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
		 json_t *args)
{
	struct cm *cm = arg;
	size_t len = 0;
	char *text;

	(void)peer;
	(void)args;
	text = metrics_text(cm, &len, false);
	reply_metrics(call, text, len);
}

/* ---- the loopback listener ------------------------------------------ */

static void
reply_text(struct evhttp_request *req, int status, const char *reason,
	   const char *ctype, const char *text, size_t len)
{
	struct evbuffer *b = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", ctype);
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (b)
		evbuffer_add(b, text, len);
	evhttp_send_reply(req, status, reason, b);
	if (b)
		evbuffer_free(b);
}

static void
on_request(struct evhttp_request *req, void *arg)
{
	static const char nf[] = "no such route: GET /metrics only\n";
	static const char na[] = "method not allowed: GET /metrics only\n";
	struct cm *cm = arg;
	const char *uri = evhttp_request_get_uri(req);
	size_t len = 0;
	char *text;

	if (!uri || strcspn(uri, "?") != 8 || strncmp(uri, "/metrics", 8)) {
		reply_text(req, 404, "Not Found", "text/plain", nf,
			   sizeof(nf) - 1);
		return;
	}
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
				  "Allow", "GET");
		reply_text(req, 405, "Method Not Allowed", "text/plain", na,
			   sizeof(na) - 1);
		return;
	}
	text = metrics_text(cm, &len, true);
	if (!text) {
		reply_text(req, 503, "Service Unavailable", "text/plain",
			   "out of memory\n", 14);
		return;
	}
	reply_text(req, 200, "OK", METRICS_CONTENT_TYPE, text, len);
	free(text);
}

static bool
log_due(time_t *last)
{
	time_t now = time(NULL);

	if (*last && now - *last < MSRV_LOG_EVERY_S)
		return false;
	*last = now;
	return true;
}

/* Accept unless at the cap or paused after an error. */
static void
msrv_update(struct cm_metrics_srv *s)
{
	struct evconnlistener *l;
	bool full = s->nconns >= MSRV_MAX_CONNS;

	if (s->stopping || !s->bound)
		return;
	if (full && !s->full && log_due(&s->log_full_at))
		log_warn(LOG_CTL,
			 "%d metrics connections open (the maximum): "
			 "not accepting more until one closes",
			 s->nconns);
	s->full = full;
	l = evhttp_bound_socket_get_listener(s->bound);
	if (s->full || s->paused)
		evconnlistener_disable(l);
	else
		evconnlistener_enable(l);
}

static void
msrv_resume(evutil_socket_t fd, short what, void *arg)
{
	struct cm_metrics_srv *s = arg;

	(void)fd;
	(void)what;
	s->paused = false;
	msrv_update(s);
}

/* accept() failed for a reason libevent does not retry (out of
 * descriptors): the socket stays readable, so pause rather than spin. */
static void
msrv_accept_error(struct evconnlistener *l, void *arg)
{
	struct cm_metrics_srv *s;
	struct timeval tv = {0, MSRV_PAUSE_MS * 1000};
	int err = EVUTIL_SOCKET_ERROR();

	(void)l;
	LIST_FOREACH (s, &all_msrv, all)
		if (s->http == arg)
			break;
	if (!s)
		return;
	if (log_due(&s->log_err_at))
		log_warn(LOG_CTL,
			 "cannot accept a metrics connection: %s (%d "
			 "open); pausing accept for %d ms",
			 strerror(err), s->nconns, MSRV_PAUSE_MS);
	s->paused = true;
	msrv_update(s);
	evtimer_add(s->resume, &tv);
}

static void
msrv_free(struct cm_metrics_srv *s)
{
	if (s->resume)
		event_free(s->resume);
	free(s);
}

/* evhttp_connection_set_closecb(): one connection fewer. evhttp calls it
 * once, when it closes the socket (reset or free, whichever first). */
static void
msrv_conn_gone(struct evhttp_connection *evcon, void *arg)
{
	struct cm_metrics_srv *s = arg;

	(void)evcon;
	s->nconns--;
	if (s->stopping) {
		/* Inside evhttp_free() (s->http still set) the stop frees
		 * @s itself once that returns. */
		if (s->nconns == 0 && !s->http)
			msrv_free(s);
		return;
	}
	msrv_update(s);
}

/* A connection being set up: its bufferevent, and the event that runs
 * once evhttp has made the connection around it. */
struct msrv_new {
	struct cm_metrics_srv *s;
	struct bufferevent *bev;
	struct event *ev;
	LIST_ENTRY(msrv_new) link; /* in s->fresh */
};

/* Runs right after the accept callback, in the same loop turn (an active
 * event, not a timer), so before any read or timeout of the new
 * connection could free it. evhttp gave the bufferevent its connection
 * as callback argument (libevent 2.1's evhttp_get_request_connection()):
 * the close callback goes there. */
static void
msrv_new_conn(evutil_socket_t fd, short what, void *arg)
{
	struct msrv_new *n = arg;
	struct cm_metrics_srv *s = n->s;
	void *cbarg = NULL;

	(void)fd;
	(void)what;
	bufferevent_getcb(n->bev, NULL, NULL, NULL, &cbarg);
	LIST_REMOVE(n, link);
	event_free(n->ev);
	free(n);
	if (cbarg) {
		evhttp_connection_set_closecb(cbarg, msrv_conn_gone, s);
		return;
	}
	/* evhttp could not set the connection up: nothing will close it
	 * through us. */
	s->nconns--;
	msrv_update(s);
}

/* evhttp_set_bevcb(): the bufferevent of a new connection (after
 * accept(), before evhttp has its connection). Counted from here; on NULL
 * evhttp makes its own, uncounted, which only happens out of memory. */
static struct bufferevent *
msrv_bevcb(struct event_base *base, void *arg)
{
	struct cm_metrics_srv *s = arg;
	struct msrv_new *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->s = s;
	n->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	n->ev = event_new(base, -1, 0, msrv_new_conn, n);
	if (!n->bev || !n->ev) {
		if (n->bev)
			bufferevent_free(n->bev);
		if (n->ev)
			event_free(n->ev);
		free(n);
		return NULL;
	}
	event_active(n->ev, EV_TIMEOUT, 1);
	LIST_INSERT_HEAD(&s->fresh, n, link);
	s->nconns++;
	if (s->nconns >= MSRV_MAX_CONNS)
		msrv_update(s);
	return n->bev;
}

int
cm_metrics_listen_start(struct cm *cm)
{
	struct cm_metrics_srv *s;
	const char *spec = cm->cfg.metrics_listen;
	char addr[64];
	const char *colon;
	size_t n;
	int port;

	if (!spec)
		return 0;
	/* conf.c let only loopback through, as "A.B.C.D:P" or "[::1]:P". */
	colon = strrchr(spec, ':');
	if (!colon)
		return -EINVAL;
	n = (size_t)(colon - spec);
	if (spec[0] == '[') {
		spec++;
		n -= 2;
	}
	if (n >= sizeof(addr))
		return -EINVAL;
	memcpy(addr, spec, n);
	addr[n] = '\0';
	port = atoi(colon + 1);
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	LIST_INIT(&s->fresh);
	s->resume = evtimer_new(cm->loop.base, msrv_resume, s);
	s->http = s->resume ? evhttp_new(cm->loop.base) : NULL;
	if (!s->http) {
		msrv_free(s);
		return -ENOMEM;
	}
	evhttp_set_max_headers_size(s->http, 8192);
	evhttp_set_max_body_size(s->http, 0);
	evhttp_set_timeout(s->http, MSRV_TIMEOUT_S);
	evhttp_set_bevcb(s->http, msrv_bevcb, s);
	evhttp_set_allowed_methods(
		s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
				 EVHTTP_REQ_HEAD | EVHTTP_REQ_DELETE);
	evhttp_set_gencb(s->http, on_request, cm);
	s->bound = evhttp_bind_socket_with_handle(s->http, addr,
						  (ev_uint16_t)port);
	if (!s->bound) {
		int err = errno ? errno : EADDRINUSE;

		log_err(LOG_CTL, "cannot listen for metrics on '%s': %s",
			cm->cfg.metrics_listen, strerror(err));
		evhttp_free(s->http);
		msrv_free(s);
		return -err;
	}
	evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(s->bound),
				    msrv_accept_error);
	LIST_INSERT_HEAD(&all_msrv, s, all);
	cm->msrv = s;
	/* The port as bound (0 asks the kernel for one). */
	{
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);

		if (getsockname(evhttp_bound_socket_get_fd(s->bound),
				(struct sockaddr *)&ss, &sl) == 0)
			port = ntohs(ss.ss_family == AF_INET6
					     ? ((struct sockaddr_in6 *)&ss)
						       ->sin6_port
					     : ((struct sockaddr_in *)&ss)
						       ->sin_port);
	}
	log_info(LOG_CTL, "metrics on http://%s%s%s:%d/metrics",
		 strchr(addr, ':') ? "[" : "", addr,
		 strchr(addr, ':') ? "]" : "", port);
	return 0;
}

void
cm_metrics_listen_stop(struct cm *cm)
{
	struct cm_metrics_srv *s = cm->msrv;

	if (!s)
		return;
	cm->msrv = NULL;
	/* evhttp_free() frees the listener, then the connections: their
	 * close callbacks must not touch the listener (s->bound is gone)
	 * nor free @s (s->http is still set). */
	LIST_REMOVE(s, all);
	s->stopping = true;
	s->bound = NULL;
	event_del(s->resume);
	/* Connections accepted in this loop turn: evhttp_free() frees them
	 * without our close callback. */
	while (!LIST_EMPTY(&s->fresh)) {
		struct msrv_new *n = LIST_FIRST(&s->fresh);

		LIST_REMOVE(n, link);
		event_free(n->ev);
		free(n);
		s->nconns--;
	}
	evhttp_free(s->http);
	s->http = NULL;
	if (s->nconns == 0)
		msrv_free(s);
}
