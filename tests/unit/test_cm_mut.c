/*
 * test_cm_mut.c - the op log (cm/mut.c) against an in-process server on
 * 127.0.0.1 port 0: an op is logged INFLIGHT before it is sent, sent once
 * under its opid and its reply applied to the real metadata cache (meta.c,
 * vc.c); refusals, transport failures, lost, truncated and malformed
 * replies; events held back while an op is in flight; resume after a
 * crash and reintegration sends; the order of two ops on one object;
 * replay in batches (POST /batch: per-op results in order, 404 from a
 * protocol 2 server, no answer, a refusal inside a batch).
 *
 * Everything mut.c uses is real (rlog, http, meta, vc, inode table, chunk
 * store) except what it takes as hooks (struct mut_hooks: write states and
 * disconnected operation), which are fakes that count their calls.
 *
 * The server runs on its own event_base in a second thread, as in
 * test_http.c. It keeps the opids it applied and answers a repeated one
 * with the first reply without applying it again, as doc/protocol.md
 * says cairn-vold does, so "applied" counts what the server really did.
 * The client's loop runs on this thread (cm_loop_run() is not used).
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>

#include "chunkstore/cs.h"
#include "cm/daemon_i.h"
#include "cm/http.h"
#include "cm/inode.h"
#include "cm/mcache.h"
#include "cm/mfetch.h"
#include "cm/mut.h"
#include "cm/rlog.h"
#include "cm/vc.h"
#include "common/log.h"
#include "common/util.h"
#include "tests/tap.h"

#define VOL_ID 0x2a
#define MAXREQ 64
#define OP_PATH "/v1/vol/v/op"

/* ---- the server ---------------------------------------------------------- */

enum act {
	ACT_APPLY = 0, /* apply (once per opid) and answer 200 */
	ACT_LOST,      /* apply, then hang up before the reply */
	ACT_TRUNC,     /* apply, then send half the reply and hang up */
	ACT_DROP,      /* hang up without applying */
	ACT_STATUS,    /* refuse: status and JSON error, nothing applied */
	ACT_RAW,       /* 200 with srv.raw as the body, nothing applied */
	ACT_DELAY,     /* apply, answer 200 after DELAY_MS */
};

#define DELAY_MS 300

struct delayed {
	struct evhttp_request *req;
	char *reply;
};

struct sreq {
	int path_ok;	 /* POST to /v1/vol/v/op */
	int decoded;	 /* proto_op_decode() took the body */
	int logged;	 /* the log held an INFLIGHT record with its opid */
	uint64_t seq;	 /* that record */
	enum proto_op_kind kind;
	uint8_t opid[16];
	uint64_t base_dv;
	uint32_t mask, mode;
	uint64_t size;
	int attached;	 /* the body held a NUL: an attachment */
	char ctype[40];	 /* its Content-Type */
	size_t dlen;	 /* a store's inline bytes: how many */
	char data[8];	 /* and the first of them */
};

struct srv {
	struct event_base *base;
	struct evhttp *http;
	pthread_t thread;
	int port;
	pthread_mutex_t mu; /* everything below */
	struct rlog *rlog;  /* the client's log, looked at on arrival */
	enum act act[MAXREQ];
	int status[MAXREQ]; /* ACT_STATUS: the status */
	int err[MAXREQ];    /* ACT_STATUS: the errno */
	enum act dflt;	    /* for requests past the script */
	const char *raw;
	struct sreq req[MAXREQ];
	int nreq;
	int applied;
	/* Replies of applied opids, for a repeated opid. */
	uint8_t seen[MAXREQ][16];
	char *seen_body[MAXREQ];
	int nseen;
	/* Reply of the next create; setattr replies come from fattr. */
	struct proto_op_result create_reply;
	/* If set, the replies of the next non-setattr ops, in order (then
	 * create_reply again). */
	struct proto_op_result replies[4];
	int nreplies, nextreply;
	struct proto_attr fattr;
	int64_t clock;
	/* /batch */
	bool batch_404;
	int batch_refuse; /* 1-based op refused with 412, 0: none */
	int nbatch;	  /* batch requests seen */
	int batch_logged; /* their ops found INFLIGHT in the log */
};

static struct srv srv;

static int
req_fd(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);

	return bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
}

static void
hang_up(struct evhttp_request *req)
{
	shutdown(req_fd(req), SHUT_RDWR);
	/* Lets libevent notice the dead socket and free the request. */
	evhttp_send_reply(req, 200, "OK", NULL);
}

/* With srv.mu held: is an INFLIGHT record with @opid in the log? */
static int
in_log(const uint8_t *opid, uint64_t *seq)
{
	struct rlog_rec rec;
	uint64_t after = 0;

	while (srv.rlog &&
	       rlog_next(srv.rlog, after, RLOG_MASK(RLOG_INFLIGHT), &rec) ==
		       0) {
		after = rec.seq;
		if (!memcmp(rec.op.opid, opid, 16)) {
			*seq = rec.seq;
			rlog_rec_release(&rec);
			return 1;
		}
		rlog_rec_release(&rec);
	}
	return 0;
}

/* With srv.mu held: apply @op (unless its opid was applied before) and
 * return the reply body (heap), the first one for a repeated opid. */
static char *
apply(const struct proto_op *op)
{
	struct proto_op_result r;
	size_t len;
	char *body;

	for (int i = 0; i < srv.nseen; i++)
		if (!memcmp(srv.seen[i], op->opid, 16))
			return strdup(srv.seen_body[i]);
	srv.applied++;
	if (op->kind == PROTO_OP_SETATTR) {
		memset(&r, 0, sizeof(r));
		if (op->mask & PROTO_SA_MODE)
			srv.fattr.mode = op->mode;
		if (op->mask & PROTO_SA_SIZE) {
			srv.fattr.size = op->size;
			srv.fattr.dv++;
		}
		srv.fattr.ctime_ns = ++srv.clock;
		r.has_attr = true;
		r.attr = srv.fattr;
		r.event_seq = (uint64_t)srv.clock;
	} else if (srv.nextreply < srv.nreplies) {
		r = srv.replies[srv.nextreply++];
	} else {
		r = srv.create_reply;
	}
	body = proto_op_result_encode(&r, &len);
	if (body && srv.nseen < MAXREQ) {
		memcpy(srv.seen[srv.nseen], op->opid, 16);
		srv.seen_body[srv.nseen++] = strdup(body);
	}
	return body;
}

static void
delayed_reply(evutil_socket_t fd, short what, void *arg)
{
	struct delayed *d = arg;
	struct evbuffer *out = evbuffer_new();

	(void)fd;
	(void)what;
	if (d->reply)
		evbuffer_add(out, d->reply, strlen(d->reply));
	evhttp_send_reply(d->req, d->reply ? 200 : 400, "OK", out);
	evbuffer_free(out);
	free(d->reply);
	free(d);
}

static void
h_op(struct evhttp_request *req, void *arg)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct evbuffer *out = evbuffer_new();
	size_t len = evbuffer_get_length(in);
	char *body = malloc(len + 1), *reply = NULL;
	const char *raw = NULL;
	struct proto_op op;
	struct sreq *s = NULL;
	enum act a = ACT_DROP;
	int n, status = 500, decoded;

	(void)arg;
	evbuffer_copyout(in, body, len);
	body[len] = 0;
	memset(&op, 0, sizeof(op));
	decoded = proto_op_decode(body, len, &op) == 0;
	pthread_mutex_lock(&srv.mu);
	n = srv.nreq++;
	if (n < MAXREQ) {
		s = &srv.req[n];
		s->path_ok = evhttp_request_get_command(req) ==
				     EVHTTP_REQ_POST &&
			     !strcmp(evhttp_request_get_uri(req), OP_PATH);
		s->decoded = decoded;
		s->kind = op.kind;
		memcpy(s->opid, op.opid, 16);
		s->base_dv = op.base_dv;
		s->mask = op.mask;
		s->mode = op.mode;
		s->size = op.size;
		s->attached = memchr(body, 0, len) != NULL;
		snprintf(s->ctype, sizeof(s->ctype), "%s",
			 evhttp_find_header(evhttp_request_get_input_headers(req),
					    "Content-Type")
				 ?: "");
		s->dlen = op.dlen;
		if (op.data)
			memcpy(s->data, op.data,
			       op.dlen < sizeof(s->data) ? op.dlen
							 : sizeof(s->data));
		s->logged = decoded && in_log(op.opid, &s->seq);
		a = srv.act[n];
		status = srv.status[n];
		raw = srv.raw;
		if (a == ACT_STATUS)
			reply = proto_error_encode(srv.err[n], NULL,
						   srv.fattr.dv, &len);
	}
	if (n >= MAXREQ)
		a = srv.dflt;
	if (decoded && (a == ACT_APPLY || a == ACT_LOST || a == ACT_TRUNC ||
			a == ACT_DELAY))
		reply = apply(&op);
	pthread_mutex_unlock(&srv.mu);
	proto_op_release(&op);

	switch (a) {
	case ACT_APPLY:
		if (reply) {
			evbuffer_add(out, reply, strlen(reply));
			evhttp_send_reply(req, 200, "OK", out);
		} else {
			evhttp_send_reply(req, 400, "Bad", NULL);
		}
		break;
	case ACT_TRUNC:
		if (reply) {
			char head[128];
			int fd = req_fd(req);
			int hl = snprintf(head, sizeof(head),
					  "HTTP/1.1 200 OK\r\nContent-Type: "
					  "application/json\r\nContent-Length: "
					  "%zu\r\n\r\n",
					  strlen(reply));

			if (write(fd, head, (size_t)hl) < 0 ||
			    write(fd, reply, strlen(reply) / 2) < 0)
				perror("write");
		}
		hang_up(req);
		break;
	case ACT_STATUS:
		evbuffer_add(out, reply, strlen(reply));
		evhttp_send_reply(req, status, "Refused", out);
		break;
	case ACT_DELAY: {
		struct delayed *d = malloc(sizeof(*d));
		struct timeval tv = {0, DELAY_MS * 1000};

		d->req = req;
		d->reply = reply;
		reply = NULL;
		event_base_once(srv.base, -1, EV_TIMEOUT, delayed_reply, d,
				&tv);
		break;
	}
	case ACT_RAW:
		evbuffer_add(out, raw, raw ? strlen(raw) : 0);
		evhttp_send_reply(req, 200, "OK", out);
		break;
	case ACT_LOST:
	case ACT_DROP:
	default:
		hang_up(req);
		break;
	}
	evbuffer_free(out);
	free(reply);
	free(body);
}

/* POST /v1/vol/v/batch: srv.batch_mode 404 (a protocol 2 server), or
 * each op applied in order (once per opid), op srv.batch_refuse (1-based,
 * 0: none) refused with 412; a whole-request action from the script as
 * for /op (ACT_DROP hangs up). */
static void
h_batch(struct evhttp_request *req, void *arg)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct evbuffer *out = evbuffer_new();
	size_t len = evbuffer_get_length(in);
	char *body = malloc(len + 1), *reply = NULL;
	struct proto_batch b;
	enum act a;
	int n;

	(void)arg;
	evbuffer_copyout(in, body, len);
	body[len] = 0;
	memset(&b, 0, sizeof(b));
	pthread_mutex_lock(&srv.mu);
	n = srv.nreq++;
	a = n < MAXREQ ? srv.act[n] : srv.dflt;
	srv.nbatch++;
	if (srv.batch_404 || a == ACT_DROP ||
	    proto_batch_decode(body, len, &b) < 0) {
		pthread_mutex_unlock(&srv.mu);
		if (a == ACT_DROP)
			hang_up(req);
		else
			evhttp_send_reply(req, srv.batch_404 ? 404 : 400,
					  "No", NULL);
		goto out;
	}
	{
		int st[PROTO_BATCH_MAX];
		char *bodies[PROTO_BATCH_MAX];
		size_t lens[PROTO_BATCH_MAX];

		for (size_t i = 0; i < b.n; i++) {
			srv.batch_logged +=
				in_log(b.ops[i].opid, &(uint64_t){0});
			if ((int)i + 1 == srv.batch_refuse) {
				st[i] = 412;
				bodies[i] = proto_error_encode(
					ECANCELED, NULL, srv.fattr.dv,
					&lens[i]);
				continue;
			}
			st[i] = 200;
			bodies[i] = apply(&b.ops[i]);
			lens[i] = bodies[i] ? strlen(bodies[i]) : 0;
		}
		reply = proto_batch_reply_encode(st, bodies, lens, b.n, &len);
		for (size_t i = 0; i < b.n; i++)
			free(bodies[i]);
	}
	pthread_mutex_unlock(&srv.mu);
	if (reply) {
		evbuffer_add(out, reply, strlen(reply));
		evhttp_send_reply(req, 200, "OK", out);
	} else {
		evhttp_send_reply(req, 500, "Bad", NULL);
	}
out:
	proto_batch_release(&b);
	evbuffer_free(out);
	free(reply);
	free(body);
}

static void *
srv_main(void *arg)
{
	(void)arg;
	event_base_dispatch(srv.base);
	return NULL;
}

static int
srv_start(void)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);

	pthread_mutex_init(&srv.mu, NULL);
	srv.base = event_base_new();
	srv.http = evhttp_new(srv.base);
	if (!srv.base || !srv.http)
		return -1;
	evhttp_set_allowed_methods(srv.http,
				   EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_cb(srv.http, OP_PATH, h_op, NULL);
	evhttp_set_cb(srv.http, "/v1/vol/v/batch", h_batch, NULL);
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
	event_base_loopbreak(srv.base);
	pthread_join(srv.thread, NULL);
	evhttp_free(srv.http);
	event_base_free(srv.base);
	for (int i = 0; i < srv.nseen; i++)
		free(srv.seen_body[i]);
	pthread_mutex_destroy(&srv.mu);
}

/* Forget the requests of the last case; @script: the actions of the
 * next requests, then @dflt for every later one. */
static void
srv_reset(const enum act *script, size_t n, enum act dflt)
{
	pthread_mutex_lock(&srv.mu);
	memset(srv.req, 0, sizeof(srv.req));
	memset(srv.act, 0, sizeof(srv.act));
	memset(srv.status, 0, sizeof(srv.status));
	memset(srv.err, 0, sizeof(srv.err));
	for (size_t i = 0; i < n; i++)
		srv.act[i] = script[i];
	for (size_t i = n; i < MAXREQ; i++)
		srv.act[i] = dflt;
	srv.dflt = dflt;
	srv.nreq = 0;
	srv.applied = 0;
	pthread_mutex_unlock(&srv.mu);
}

static void
srv_refuse(int status, int err)
{
	pthread_mutex_lock(&srv.mu);
	srv.act[0] = ACT_STATUS;
	srv.status[0] = status;
	srv.err[0] = err;
	pthread_mutex_unlock(&srv.mu);
}

static int
srv_nreq(void)
{
	int n;

	pthread_mutex_lock(&srv.mu);
	n = srv.nreq;
	pthread_mutex_unlock(&srv.mu);
	return n;
}

static int
srv_applied(void)
{
	int n;

	pthread_mutex_lock(&srv.mu);
	n = srv.applied;
	pthread_mutex_unlock(&srv.mu);
	return n;
}

/* ---- the client ---------------------------------------------------------- */

static struct cm cm;
static char dir[] = "/tmp/test_cm_mut.XXXXXX";
static struct fid root, pdir, ffile, gfile;

/* What the fake hooks saw. */
static struct {
	bool may_absorb;
	int absorbed, resumed, gone, stored, offline, acked, acked_logged;
	int lost;
	uint8_t absorbed_opid[16];
	/* The mcache ahead hook, as daemon.c answers it: a live record
	 * that is not the op log's own names the FID (replay_ahead()), or
	 * a replay batch's op not applied yet (off: false).
	 * Asked about @watch, it notes whether the listing of @watch_dir
	 * a reader would get then names "f"; about @watch_dir, its answer. */
	bool ahead_on;
	struct fid watch, watch_dir;
	int nobs, ndir;
	bool obs[8], dir_ahead[8];
} hk;

/* One done callback's result. */
struct res {
	int calls;
	int err;
	bool has_r;
	struct proto_op_result r;
	int order; /* its rank among the done calls of the case */
};

static int ndone;

static void
done_cb(void *arg, int err, const struct proto_op_result *r)
{
	struct res *res = arg;

	res->calls++;
	res->err = err;
	res->has_r = r != NULL;
	if (r)
		res->r = *r;
	res->order = ++ndone;
}

static void
h_gone(void *c, const struct fid *fid)
{
	(void)c;
	(void)fid;
	hk.gone++;
}

static void
h_stored(void *c, const struct proto_op *op, const struct proto_attr *a)
{
	(void)c;
	(void)op;
	(void)a;
	hk.stored++;
}

static void
h_resumed(void *c)
{
	(void)c;
	hk.resumed++;
}

static bool
h_may_absorb(void *c)
{
	(void)c;
	return hk.may_absorb;
}

/* replay_absorb() stand-in: take the op, answer the caller locally. */
static void
h_absorb(void *c, const struct proto_op *op, mut_done_fn done, void *arg)
{
	(void)c;
	hk.absorbed++;
	memcpy(hk.absorbed_opid, op->opid, 16);
	if (done)
		done(arg, 0, NULL);
}

/* replay_disconnect() stand-in: a resend at start got no answer. */
static void
h_lost(void *c, const char *why)
{
	(void)c;
	(void)why;
	hk.lost++;
}

static int
h_submit_offline(void *c, const struct proto_op *op, mut_done_fn done,
		 void *arg)
{
	(void)c;
	(void)op;
	(void)done;
	(void)arg;
	hk.offline++;
	return -EROFS;
}

/* The replay's acked hook: counts, and whether the record was still in
 * the log when it was called (it must be: the DV map learns first). */
static void
h_acked(void *c, uint64_t seq, const struct proto_op *op,
	const struct proto_op_result *r)
{
	struct rlog_rec rec;

	(void)c;
	(void)op;
	(void)r;
	hk.acked++;
	if (rlog_get(cm.rlog, seq, &rec) == 0) {
		hk.acked_logged++;
		rlog_rec_release(&rec);
	}
}

static struct mut *mu; /* the op log under test (below) */

static bool
h_ahead(void *c, const struct fid *fid)
{
	bool ahead;

	(void)c;
	if (!hk.ahead_on)
		return false;
	ahead = rlog_fid_find(cm.rlog, fid,
			      RLOG_MASK(RLOG_PENDING) |
				      RLOG_MASK(RLOG_INFLIGHT) |
				      RLOG_NOT_DIRECT,
			      UINT64_MAX, NULL) == 0 ||
		mut_batch_ahead(mu, fid);
	if (fid_eq(fid, &hk.watch) && hk.nobs < 8) {
		struct vc_dir *l = NULL;

		hk.obs[hk.nobs++] =
			mcache_dir(cm.mc, &hk.watch_dir, &l) == 0 &&
			vc_dir_find(l, "f", 1) >= 0;
		vc_dir_put(l);
	}
	if (fid_eq(fid, &hk.watch_dir) && hk.ndir < 8)
		hk.dir_ahead[hk.ndir++] = ahead;
	return ahead;
}

static const struct mcache_hooks mchooks = {
	.ahead = h_ahead,
};

static const struct mut_hooks hooks = {
	.acked = h_acked,
	.file_gone = h_gone,
	.file_stored = h_stored,
	.log_resumed = h_resumed,
	.may_absorb = h_may_absorb,
	.absorb = h_absorb,
	.submit_offline = h_submit_offline,
	.lost = h_lost,
};

/* The op log under test (a second one with other settings replaces it
 * for a while), and what it was built with. */
static struct mut *mu;
static struct mut_deps mdeps;

/* mfetch.c holds events back through mut, as daemon.c wires it. */
static bool
h_defer_event(void *arg, const struct proto_event *ev)
{
	(void)arg;
	return mut_defer_event(mu, ev);
}

static const struct mfetch_hooks mhooks = {
	.defer_event = h_defer_event,
	.arg = &cm,
};

static void
tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* Run the loop until @n done callbacks came or @ms passed. */
static void
run_until(int n, unsigned ms)
{
	uint64_t end = util_now_ms() + ms;

	while (ndone < n && util_now_ms() < end)
		event_base_loop(cm.loop.base, EVLOOP_ONCE);
}

/* Run the loop for @ms (to see that nothing more happens). */
static void
run_for(unsigned ms)
{
	uint64_t end = util_now_ms() + ms;

	while (util_now_ms() < end)
		event_base_loop(cm.loop.base, EVLOOP_ONCE);
}

static int
log_count(void)
{
	struct rlog_rec rec;
	uint64_t after = 0;
	int n = 0;

	while (rlog_next(cm.rlog, after, RLOG_MASK_ALL, &rec) == 0) {
		after = rec.seq;
		rlog_rec_release(&rec);
		n++;
	}
	return n;
}

static struct fid
mkfid(uint8_t b)
{
	struct fid f;

	memset(&f, 0, sizeof(f));
	f.vol = VOL_ID;
	for (size_t i = 0; i < sizeof(f.oid); i++)
		f.oid[i] = (uint8_t)(b + i);
	return f;
}

static struct proto_attr
mkattr(const struct fid *fid, enum proto_type t, uint64_t dv)
{
	struct proto_attr a;

	memset(&a, 0, sizeof(a));
	a.fid = *fid;
	a.type = t;
	a.mode = t == PROTO_T_DIR ? 0755 : 0644;
	a.uid = a.gid = 1000;
	a.nlink = t == PROTO_T_DIR ? 2 : 1;
	a.dv = dv;
	a.mtime_ns = a.ctime_ns = a.atime_ns = 1700000000000000000ll;
	return a;
}

/* Is @name in the cached listing of @d, naming @f, at DV @dv? */
static int
listed(const struct fid *d, const char *name, const struct fid *f,
       uint64_t dv)
{
	struct vc_dir *l = NULL;
	long i;
	int yes;

	if (vc_get_dir(cm.vc, d, &l) < 0)
		return -1;
	i = vc_dir_find(l, name, strlen(name));
	yes = l->dv == dv && i >= 0 && fid_eq(&vc_dir_ent(l, i)->fid, f);
	vc_dir_put(l);
	return yes;
}

static uint64_t
dir_dv(const struct fid *d)
{
	struct vc_dir *l = NULL;
	uint64_t dv;

	if (vc_get_dir(cm.vc, d, &l) < 0)
		return 0;
	dv = l->dv;
	vc_dir_put(l);
	return dv;
}

static struct proto_attr
cached(const struct fid *f, int *rc)
{
	struct proto_attr a;

	memset(&a, 0, sizeof(a));
	*rc = mcache_attr(cm.mc, f, &a);
	return a;
}

static struct proto_op
setattr_op(uint64_t base_dv, uint32_t mask, uint32_t mode, uint64_t size)
{
	struct proto_op op;

	memset(&op, 0, sizeof(op));
	op.kind = PROTO_OP_SETATTR;
	op.fid = ffile;
	op.base_dv = base_dv;
	op.mask = mask;
	op.mode = mode;
	op.size = size;
	return op;
}

static struct proto_op
create_op(const struct fid *fid, const char *name)
{
	struct proto_op op;

	memset(&op, 0, sizeof(op));
	op.kind = PROTO_OP_CREATE;
	op.parent = pdir;
	op.name = (char *)name;
	op.fid = *fid;
	op.type = PROTO_T_FILE;
	op.mode = 0644;
	op.uid = op.gid = 1000;
	return op;
}

static bool
zero16(const uint8_t *b)
{
	static const uint8_t z[16];

	return !memcmp(b, z, 16);
}

/* ---- the cases ----------------------------------------------------------- */

/* A create: logged before it leaves, sent once, the reply applied. */
static void
test_create(void)
{
	struct proto_op op = create_op(&ffile, "a");
	struct proto_attr pa = mkattr(&pdir, PROTO_T_DIR, 6);
	struct proto_attr got;
	struct res res = {0};
	int rc;

	srv_reset(NULL, 0, ACT_APPLY);
	pthread_mutex_lock(&srv.mu);
	memset(&srv.create_reply, 0, sizeof(srv.create_reply));
	srv.create_reply.has_attr = true;
	srv.create_reply.attr = srv.fattr;
	srv.create_reply.has_parent = true;
	srv.create_reply.parent = pa;
	srv.create_reply.event_seq = 10;
	pthread_mutex_unlock(&srv.mu);
	ndone = 0;

	is_int(mut_submit(mu, &op, done_cb, &res), 0, "create: submitted");
	is_int(log_count(), 1, "create: in the log before the loop ran");
	is_int(srv_nreq(), 0, "create: nothing sent before the loop ran");
	run_until(1, 5000);
	run_for(100);
	is_int(res.calls, 1, "create: done called once");
	is_int(res.err, 0, "create: no error");
	ok(res.has_r && res.r.has_attr && fid_eq(&res.r.attr.fid, &ffile),
	   "create: the caller gets the server's reply");
	is_int(srv_nreq(), 1, "create: one request");
	ok(srv.req[0].path_ok, "create: POST " OP_PATH);
	ok(srv.req[0].decoded && srv.req[0].kind == PROTO_OP_CREATE,
	   "create: the body is a create op");
	ok(!zero16(srv.req[0].opid), "create: a zero opid got a random one");
	ok(srv.req[0].logged,
	   "create: INFLIGHT in the log under that opid when it arrived");
	is_int(srv_applied(), 1, "create: applied once");
	got = cached(&ffile, &rc);
	ok(rc == 0 && got.dv == 1 && got.mode == 0644 &&
	   got.type == PROTO_T_FILE,
	   "create: the object's attributes are cached from the reply");
	is_int(listed(&pdir, "a", &ffile, 6), 1,
	       "create: the parent's listing edited in place, at DV 6");
	got = cached(&pdir, &rc);
	is_int(rc == 0 ? (long long)got.dv : -1, 6,
	       "create: the parent's DV is the reply's");
	is_int(log_count(), 0, "create: the record is gone after the reply");
}

/* A store's inline bytes: base64 in the JSON for a server of protocol 6,
 * after the JSON and a NUL for one of PROTO_V_ATTACH (protocol 7), with
 * the attachment's Content-Type; the server decodes the same bytes. */
static void
test_attach_body(void)
{
	static const int vers[] = {6, PROTO_V_ATTACH};
	uint64_t one = 0;

	for (int k = 0; k < 2; k++) {
		struct proto_op op;
		struct res res = {0};

		srv_reset(NULL, 0, ACT_APPLY);
		pthread_mutex_lock(&srv.mu);
		memset(&srv.create_reply, 0, sizeof(srv.create_reply));
		srv.create_reply.has_attr = true;
		srv.create_reply.attr = srv.fattr;
		srv.create_reply.attr.dv++;
		srv.create_reply.attr.size = 5;
		pthread_mutex_unlock(&srv.mu);
		memset(&op, 0, sizeof(op));
		op.kind = PROTO_OP_STORE;
		op.fid = ffile;
		op.base_dv = srv.fattr.dv;
		op.chunk_size = 65536;
		op.size = 5;
		op.chunks = &one;
		op.nchunks = 1;
		op.data = "hello";
		op.dlen = 5;
		mut_set_server_version(mu, vers[k]);
		ndone = 0;
		is_int(mut_submit(mu, &op, done_cb, &res), 0,
		       "protocol %d store: submitted", vers[k]);
		run_until(1, 5000);
		is_int(srv_nreq(), 1, "protocol %d store: one request", vers[k]);
		ok(srv.req[0].decoded && srv.req[0].kind == PROTO_OP_STORE &&
			   srv.req[0].dlen == 5 &&
			   !memcmp(srv.req[0].data, "hello", 5),
		   "protocol %d store: the server decodes its 5 bytes", vers[k]);
		is_int(srv.req[0].attached, k,
		       "protocol %d store: %s", vers[k],
		       k ? "the bytes after a NUL" : "no attachment");
		is_str(srv.req[0].ctype,
		       k ? PROTO_ATTACH_TYPE : "application/json",
		       "protocol %d store: its Content-Type", vers[k]);
		is_int(res.err, 0, "protocol %d store: no error", vers[k]);
	}
	mut_set_server_version(mu, PROTO_VERSION);
}

/* A setattr carries its base DV and the caller's opid; the reply is
 * applied. */
static void
test_setattr(void)
{
	struct proto_op op = setattr_op(1, PROTO_SA_SIZE, 0, 100);
	struct proto_attr got;
	struct res res = {0};
	int rc;

	for (int i = 0; i < 16; i++)
		op.opid[i] = (uint8_t)(0xa0 + i);
	srv_reset(NULL, 0, ACT_APPLY);
	ndone = 0;
	is_int(mut_submit(mu, &op, done_cb, &res), 0, "setattr: submitted");
	run_until(1, 5000);
	is_int(res.err, 0, "setattr: no error");
	is_int(srv_nreq(), 1, "setattr: one request");
	ok(srv.req[0].kind == PROTO_OP_SETATTR && srv.req[0].base_dv == 1 &&
	   srv.req[0].mask == PROTO_SA_SIZE && srv.req[0].size == 100,
	   "setattr: base_dv 1, mask and size in the body");
	ok(!memcmp(srv.req[0].opid, op.opid, 16),
	   "setattr: sent under the caller's opid");
	got = cached(&ffile, &rc);
	ok(rc == 0 && got.dv == 2 && got.size == 100,
	   "setattr: the cache has the reply's DV 2 and size");
	is_int(log_count(), 0, "setattr: log empty");
}

/* Refusals: the documented errno, nothing applied, nothing left. */
static void
test_refused(void)
{
	static const struct {
		int status, err, want;
		const char *what;
	} t[] = {
		{409, EEXIST, -EEXIST, "409 EEXIST"},
		{412, ECANCELED, -ESTALE, "412 stale DV"},
		{410, ESTALE, -ESTALE, "410 stale"},
		{404, ENOENT, -ENOENT, "404 ENOENT"},
	};
	struct proto_attr before, got;
	int rc;

	before = cached(&ffile, &rc);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct proto_op op = i == 0 ? create_op(&gfile, "b")
					    : setattr_op(1, PROTO_SA_SIZE, 0,
							 7);
		struct res res = {0};

		srv_reset(NULL, 0, ACT_APPLY);
		srv_refuse(t[i].status, t[i].err);
		ndone = 0;
		is_int(mut_submit(mu, &op, done_cb, &res), 0, "%s: submitted",
		       t[i].what);
		run_until(1, 5000);
		run_for(100);
		is_int(res.calls, 1, "%s: done called once", t[i].what);
		is_int(res.err, t[i].want, "%s: %s", t[i].what,
		       strerror(-t[i].want));
		ok(!res.has_r, "%s: no reply given", t[i].what);
		is_int(srv_nreq(), 1, "%s: not retried", t[i].what);
		is_int(log_count(), 0,
		       "%s: the record is dropped (connected mode)",
		       t[i].what);
		got = cached(&ffile, &rc);
		ok(rc == 0 && got.dv == before.dv && got.size == before.size,
		   "%s: the cached attributes did not change", t[i].what);
	}
	got = cached(&gfile, &rc);
	is_int(rc, -ENOENT, "409: the refused create left no attributes");
	is_int(listed(&pdir, "b", &gfile, dir_dv(&pdir)), 0,
	       "409: and no name in the listing");
}

/* Submissions mut.c made (an observer on http.c's gate that passes
 * everything): curl itself resends a request once when a kept-alive
 * connection dies before any reply, so the server's count alone does not
 * tell mut's retries from curl's. */
static int nsubmits;

static int
count_gate(void *arg, const struct http_request *r)
{
	(void)arg;
	(void)r;
	nsubmits++;
	return 0;
}

/* A transport failure, twice: resent by mut under the same opid, its
 * record INFLIGHT in the log at every try, applied once. */
static void
test_transport(void)
{
	static const struct {
		enum act fail;
		int status, err;
		const char *what;
	} t[] = {
		{ACT_DROP, 0, 0, "connection closed"},
		{ACT_LOST, 0, 0, "reply lost after apply"},
		{ACT_TRUNC, 0, 0, "reply truncated after apply"},
		{ACT_STATUS, 503, EAGAIN, "503"},
	};
	uint32_t mode = 0600;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++, mode++) {
		struct proto_op op = setattr_op(2, PROTO_SA_MODE, mode, 0);
		enum act script[2] = {t[i].fail, t[i].fail};
		struct proto_attr got;
		struct res res = {0};
		bool same = true, logged = true;
		int rc, n;

		srv_reset(script, 2, ACT_APPLY);
		if (t[i].status) {
			pthread_mutex_lock(&srv.mu);
			for (int j = 0; j < 2; j++) {
				srv.status[j] = t[i].status;
				srv.err[j] = t[i].err;
			}
			pthread_mutex_unlock(&srv.mu);
		}
		ndone = 0;
		nsubmits = 0;
		is_int(mut_submit(mu, &op, done_cb, &res), 0, "%s: submitted",
		       t[i].what);
		run_until(1, 5000);
		run_for(100);
		n = srv_nreq();
		is_int(res.calls, 1, "%s: done called once", t[i].what);
		is_int(res.err, 0, "%s: a retry succeeded", t[i].what);
		ok(nsubmits >= 2, "%s: mut sent it again (%d times, %d "
				  "requests)",
		   t[i].what, nsubmits, n);
		for (int j = 1; j < n && j < MAXREQ; j++) {
			same = same &&
			       !memcmp(srv.req[j].opid, srv.req[0].opid, 16);
			logged = logged && srv.req[j].logged &&
				 srv.req[j].seq == srv.req[0].seq;
		}
		ok(n >= 3 && same, "%s: every try under the same opid",
		   t[i].what);
		ok(srv.req[0].logged && logged,
		   "%s: the same record INFLIGHT at every try", t[i].what);
		is_int(srv_applied(), 1, "%s: applied once on the server",
		       t[i].what);
		got = cached(&ffile, &rc);
		ok(rc == 0 && got.mode == mode,
		   "%s: the cache has the reply's mode", t[i].what);
		is_int(log_count(), 0, "%s: log empty after the reply",
		       t[i].what);
	}
}

/*
 * Promise 3 of mut.h: an event about an object with an op in flight is
 * held back and looked at again once the reply was applied. Our own
 * change's event (seq covered by the reply's event_seq) then needs no
 * refetch; another client's later one is not missed (the attributes are
 * dropped). An event about another object goes through at once.
 */
static void
test_deferred(void)
{
	enum act delay = ACT_DELAY;
	struct proto_event ev, other;
	struct proto_attr got;
	uint64_t events, own, seq;
	int rc;

	for (int round = 0; round < 2; round++) {
		struct proto_op op = setattr_op(2, PROTO_SA_MODE, 0766 - round,
						0);
		struct res res = {0};
		uint64_t end = util_now_ms() + 5000;
		const char *who = round ? "another's event" : "own event";

		srv_reset(&delay, 1, ACT_APPLY);
		ndone = 0;
		is_int(mut_submit(mu, &op, done_cb, &res), 0, "%s: submitted",
		       who);
		while (srv_nreq() < 1 && util_now_ms() < end)
			event_base_loop(cm.loop.base, EVLOOP_ONCE);
		pthread_mutex_lock(&srv.mu);
		seq = (uint64_t)srv.clock; /* the reply's event_seq */
		pthread_mutex_unlock(&srv.mu);
		events = atomic_load(&cm.st.events);
		own = atomic_load(&cm.st.own_events);

		memset(&ev, 0, sizeof(ev));
		ev.kind = PROTO_EV_ATTR;
		ev.fid = ffile;
		ev.seq = round ? seq + 1 : seq;
		other = ev;
		other.fid = pdir;
		other.kind = PROTO_EV_DIR;
		other.dv = dir_dv(&pdir);
		mfetch_event(cm.mf, &ev);
		mfetch_event(cm.mf, &other);
		is_int(res.calls, 0, "%s: the op is still in flight", who);
		is_int(atomic_load(&cm.st.events) - events, 1,
		       "%s: held back; the other object's went through", who);
		got = cached(&ffile, &rc);
		ok(rc == 0, "%s: nothing dropped meanwhile", who);

		run_until(1, 5000);
		run_for(50);
		is_int(res.err, 0, "%s: the op succeeded", who);
		is_int(atomic_load(&cm.st.events) - events, 2,
		       "%s: looked at again after the reply", who);
		got = cached(&ffile, &rc);
		if (!round) {
			is_int(atomic_load(&cm.st.own_events) - own, 1,
			       "own event: known as ours, no refetch");
			ok(rc == 0 && got.mode == 0766,
			   "own event: the reply's attributes stay");
		} else {
			is_int(atomic_load(&cm.st.own_events) - own, 0,
			       "another's event: not taken for ours");
			is_int(rc, -ENOENT,
			       "another's event: the attributes are dropped");
		}
	}
	/* Many events about one object while its op is in flight (a replay
	 * batch's creates in one directory): the newest of a kind is held,
	 * one event is looked at after the reply, and the cache is not
	 * revalidated as a whole (before: more than 256 overflowed the held
	 * set, and every batch ended in a revalidation of everything). */
	{
		struct proto_op op = setattr_op(2, PROTO_SA_MODE, 0711, 0);
		struct res res = {0};
		uint64_t end = util_now_ms() + 5000, reval;

		srv_reset(&delay, 1, ACT_APPLY);
		ndone = 0;
		is_int(mut_submit(mu, &op, done_cb, &res), 0,
		       "many events: submitted");
		while (srv_nreq() < 1 && util_now_ms() < end)
			event_base_loop(cm.loop.base, EVLOOP_ONCE);
		pthread_mutex_lock(&srv.mu);
		seq = (uint64_t)srv.clock;
		pthread_mutex_unlock(&srv.mu);
		events = atomic_load(&cm.st.events);
		reval = atomic_load(&cm.st.revalidations);
		memset(&ev, 0, sizeof(ev));
		ev.kind = PROTO_EV_ATTR;
		ev.fid = ffile;
		for (int i = 1; i <= 600; i++) {
			ev.seq = seq + (uint64_t)i;
			mfetch_event(cm.mf, &ev);
		}
		is_int(atomic_load(&cm.st.events) - events, 0,
		       "many events: all held back");
		run_until(1, 5000);
		run_for(50);
		is_int(res.err, 0, "many events: the op succeeded");
		is_int(atomic_load(&cm.st.events) - events, 1,
		       "many events: the newest one looked at after the reply");
		is_int(atomic_load(&cm.st.revalidations) - reval, 0,
		       "many events: no revalidation of the whole cache");
		got = cached(&ffile, &rc);
		is_int(rc, -ENOENT,
		       "many events: another's change: attributes dropped");
	}
	/* Cache F again as the server has it, for the cases that follow. */
	pthread_mutex_lock(&srv.mu);
	got = srv.fattr;
	pthread_mutex_unlock(&srv.mu);
	mcache_local_attr(cm.mc, &got);
}

/* 500 is the server's own failure (EIO), not a transport one: not
 * retried, the record dropped, nothing applied locally. */
static void
test_500(void)
{
	struct proto_op op = setattr_op(2, PROTO_SA_MODE, 0700, 0);
	struct proto_attr before, got;
	struct res res = {0};
	int rc;

	before = cached(&ffile, &rc);
	srv_reset(NULL, 0, ACT_APPLY);
	srv_refuse(500, EIO);
	ndone = 0;
	is_int(mut_submit(mu, &op, done_cb, &res), 0, "500: submitted");
	run_until(1, 5000);
	run_for(100);
	is_int(res.calls, 1, "500: done called once");
	is_int(res.err, -EIO, "500: EIO");
	is_int(srv_nreq(), 1, "500: not retried");
	is_int(log_count(), 0, "500: the record is dropped");
	got = cached(&ffile, &rc);
	ok(rc == 0 && got.mode == before.mode && got.ctime_ns == before.ctime_ns,
	   "500: the cache did not change");
}

/* Replies that do not parse: EIO, nothing applied. */
static void
test_malformed(void)
{
	static const char *const raw[] = {
		"this is not json",
		"{\"attr\": {\"fid\": \"0000002a.",
		"{\"attr\": {\"fid\": \"nonsense\", \"type\": \"file\"}}",
		"[]",
	};
	struct proto_attr before, got;
	int rc;

	before = cached(&ffile, &rc);
	for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
		struct proto_op op = setattr_op(2, PROTO_SA_MODE, 0711, 0);
		enum act a = ACT_RAW;
		struct res res = {0};

		srv_reset(&a, 1, ACT_APPLY);
		pthread_mutex_lock(&srv.mu);
		srv.raw = raw[i];
		pthread_mutex_unlock(&srv.mu);
		ndone = 0;
		is_int(mut_submit(mu, &op, done_cb, &res), 0,
		       "malformed %zu: submitted", i);
		run_until(1, 5000);
		run_for(50);
		is_int(res.calls, 1, "malformed %zu: done called once", i);
		is_int(res.err, -EIO, "malformed %zu: EIO", i);
		is_int(srv_nreq(), 1, "malformed %zu: not resent", i);
		got = cached(&ffile, &rc);
		ok(rc == 0 && got.mode == before.mode &&
		   got.ctime_ns == before.ctime_ns && got.dv == before.dv,
		   "malformed %zu: the cache did not change", i);
		is_int(log_count(), 0, "malformed %zu: record dropped", i);
	}
}

/* The server stops answering past the deadline: without a disconnect
 * hook the caller gets EIO and the record goes; with one, the op is
 * absorbed and stays INFLIGHT, and mut_resume() resends it under the same
 * opid: the server, which had applied it, does not apply it again. */
static void
test_deadline(void)
{
	struct mut_deps d = mdeps;
	struct mut *saved = mu;
	struct proto_attr got;
	struct rlog_rec rec;
	int rc, n;

	d.timeout_ms = 300;
	mu = mut_new(&d, &hooks);
	{
		struct proto_op op = setattr_op(2, PROTO_SA_MODE, 0720, 0);
		struct res res = {0};
		bool same = true;

		hk.may_absorb = false;
		srv_reset(NULL, 0, ACT_DROP);
		ndone = 0;
		is_int(mut_submit(mu, &op, done_cb, &res), 0,
		       "deadline: submitted");
		run_until(1, 5000);
		run_for(50);
		n = srv_nreq();
		is_int(res.calls, 1, "deadline: done called once");
		is_int(res.err, -EIO, "deadline: EIO");
		ok(n >= 2, "deadline: retried until the deadline (%d tries)",
		   n);
		for (int i = 1; i < n && i < MAXREQ; i++)
			same = same && !memcmp(srv.req[i].opid,
					       srv.req[0].opid, 16);
		ok(same, "deadline: every try under one opid");
		is_int(log_count(), 0, "deadline: the record is dropped");
		is_int(atomic_load(&cm.online), 0,
		       "deadline: the server is marked unreachable");
	}
	{
		struct proto_op op = setattr_op(2, PROTO_SA_MODE, 0730, 0);
		enum act lost = ACT_LOST;
		struct res res = {0};

		hk.may_absorb = true;
		hk.absorbed = hk.resumed = 0;
		srv_reset(&lost, 1, ACT_DROP);
		ndone = 0;
		is_int(mut_submit(mu, &op, done_cb, &res), 0,
		       "absorb: submitted");
		run_until(1, 5000);
		run_for(50);
		is_int(hk.absorbed, 1, "absorb: the op went to the "
				       "disconnect hook");
		is_int(res.calls, 1, "absorb: the caller answered once");
		ok(srv.req[0].logged && !memcmp(hk.absorbed_opid,
						srv.req[0].opid, 16),
		   "absorb: with the opid it was sent under");
		is_int(srv_applied(), 1, "absorb: the server had applied it");
		got = cached(&ffile, &rc);
		ok(rc == 0 && got.mode != 0730,
		   "absorb: the cache did not take what no reply said");
		rc = rlog_next(cm.rlog, 0, RLOG_MASK_ALL, &rec);
		ok(rc == 0 && rec.state == RLOG_INFLIGHT &&
		   !memcmp(rec.op.opid, srv.req[0].opid, 16) &&
		   log_count() == 1,
		   "absorb: the record stays INFLIGHT for replay");
		if (rc == 0)
			rlog_rec_release(&rec);

		/* The server is back: the resend uses the same opid. */
		srv_reset(NULL, 0, ACT_APPLY);
		mut_resume(mu);
		run_for(300);
		is_int(srv_nreq(), 1, "resume: sent once");
		ok(!memcmp(srv.req[0].opid, hk.absorbed_opid, 16),
		   "resume: under the logged opid");
		is_int(srv_applied(), 0,
		       "resume: not applied again (the server knew the opid)");
		is_int(hk.resumed, 1, "resume: log_resumed hook called once");
		is_int(log_count(), 0, "resume: the record is gone");
		got = cached(&ffile, &rc);
		ok(rc == 0 && got.mode == 0730,
		   "resume: the first reply applied to the cache");
	}
	{
		/* The same, but the cache moved on (a later op of ours was
		 * answered before the crash): the resent op's answer, from
		 * the opid table, is older and must not replace it. */
		struct proto_op op = setattr_op(2, PROTO_SA_MODE, 0740, 0);
		enum act lost = ACT_LOST;
		struct res res = {0};
		struct proto_attr newer;

		hk.absorbed = hk.resumed = 0;
		srv_reset(&lost, 1, ACT_DROP);
		ndone = 0;
		is_int(mut_submit(mu, &op, done_cb, &res), 0,
		       "old answer: submitted");
		run_until(1, 5000);
		run_for(50);
		is_int(hk.absorbed, 1, "old answer: left INFLIGHT");
		got = cached(&ffile, &rc);
		newer = got;
		newer.dv = srv.fattr.dv + 5;
		newer.mode = 0700;
		mcache_local_attr(cm.mc, &newer);
		srv_reset(NULL, 0, ACT_APPLY);
		mut_resume(mu);
		run_for(300);
		is_int(srv_nreq(), 1, "old answer: resent once");
		is_int(log_count(), 0, "old answer: the record is gone");
		got = cached(&ffile, &rc);
		ok(rc == 0 && got.dv == newer.dv && got.mode == 0700,
		   "old answer: the newer cached attributes stay (DV %llu, "
		   "mode %o)",
		   (unsigned long long)got.dv, got.mode);
	}
	mut_free(mu);
	mu = saved;
	hk.may_absorb = false;
}

/*
 * Two ops on one object. mut.c sends every op at once, so two submitted
 * back to back are in flight together and the wire does not order them
 * (see the report of issue #13); what it does keep: the records are in
 * submission order, each is applied once, and the cache follows the
 * replies in the order they came. One after the other (a caller waits for
 * its reply, as a FUSE request does) the server sees them in order; a
 * resume after a crash sends them oldest first, one at a time.
 */
static void
test_order(void)
{
	struct proto_op a = setattr_op(2, PROTO_SA_MODE, 0741, 0);
	struct proto_op b = setattr_op(2, PROTO_SA_MODE, 0742, 0);
	struct res ra = {0}, rb = {0};
	struct proto_attr got;
	struct rlog_effect ea = {0}, eb = {0};
	int rc, ia, ib;

	srv_reset(NULL, 0, ACT_APPLY);
	ndone = 0;
	is_int(mut_submit(mu, &a, done_cb, &ra), 0, "order: first submitted");
	is_int(mut_submit(mu, &b, done_cb, &rb), 0, "order: second submitted");
	run_until(2, 5000);
	run_for(50);
	ok(ra.calls == 1 && rb.calls == 1 && !ra.err && !rb.err,
	   "order: both done once, no error");
	is_int(srv_nreq(), 2, "order: two requests");
	ia = srv.req[0].mode == 0741 ? 0 : 1;
	ib = 1 - ia;
	ok(srv.req[ia].mode == 0741 && srv.req[ib].mode == 0742,
	   "order: one request each");
	ok(srv.req[ia].logged && srv.req[ib].logged &&
	   srv.req[ia].seq < srv.req[ib].seq,
	   "order: the first op's record is the older one");
	is_int(srv_applied(), 2, "order: both applied once");
	if ((ia == 0) != (ra.order == 1))
		diag("the replies came in another order than the requests");
	got = cached(&ffile, &rc);
	ok(rc == 0 && got.mode == (rb.order == 2 ? 0742u : 0741u),
	   "order: the cache holds the reply applied last");

	a.mode = 0743;
	b.mode = 0744;
	memset(&ra, 0, sizeof(ra));
	memset(&rb, 0, sizeof(rb));
	srv_reset(NULL, 0, ACT_APPLY);
	ndone = 0;
	is_int(mut_submit(mu, &a, done_cb, &ra), 0, "in turn: first submitted");
	run_until(1, 5000);
	is_int(mut_submit(mu, &b, done_cb, &rb), 0,
	       "in turn: second submitted after the first's reply");
	run_until(2, 5000);
	ok(!ra.err && !rb.err && srv_nreq() == 2 &&
	   srv.req[0].mode == 0743 && srv.req[1].mode == 0744,
	   "in turn: the server got them in order");
	got = cached(&ffile, &rc);
	ok(rc == 0 && got.mode == 0744, "in turn: the cache holds the second");

	/* After a crash: two INFLIGHT records resent one after the other,
	 * oldest first, each under its own opid. */
	a.mode = 0751;
	b.mode = 0752;
	rc = rlog_append_ex(cm.rlog, &a, RLOG_A_INFLIGHT | RLOG_A_NOSYNC,
			    &ea);
	rc = rc ? rc : rlog_append_ex(cm.rlog, &b,
				      RLOG_A_INFLIGHT | RLOG_A_NOSYNC, &eb);
	is_int(rc, 0, "order: two records left INFLIGHT");
	srv_reset(NULL, 0, ACT_APPLY);
	hk.resumed = 0;
	mut_resume(mu);
	run_for(300);
	is_int(srv_nreq(), 2, "resume order: two requests");
	ok(!memcmp(srv.req[0].opid, ea.opid, 16) &&
	   !memcmp(srv.req[1].opid, eb.opid, 16),
	   "resume order: oldest first, each under its logged opid");
	is_int(hk.resumed, 1, "resume order: log_resumed once, at the end");
	got = cached(&ffile, &rc);
	ok(rc == 0 && got.mode == 0752, "resume order: the cache holds the "
					"second");
	is_int(log_count(), 0, "resume order: log empty");
	rlog_effect_release(&ea);
	rlog_effect_release(&eb);
}

/*
 * The server down at start. A resume whose first resend gets no answer:
 * the record goes to the disconnect hook (applied locally, as a live op
 * without an answer) but is not dropped, the lost hook is called (no
 * connection module here: still connected), the resume ends there
 * (log_resumed once; the second record is not tried), and every record
 * is still in the log for the reintegration. And a record
 * appended after mut_show_lates() (a change made since the start: the
 * op log's own) is not the resume's: before, a create held for its
 * close was resent beside its batch, and dropped when that failed.
 */
static void
test_resume_lost(void)
{
	struct mut_deps d = mdeps;
	struct mut *saved = mu;
	struct proto_op a = setattr_op(2, PROTO_SA_MODE, 0761, 0);
	struct proto_op b = setattr_op(2, PROTO_SA_MODE, 0762, 0);
	struct proto_op c = setattr_op(2, PROTO_SA_MODE, 0763, 0);
	struct rlog_effect ea = {0}, eb = {0}, ec = {0};
	struct rlog_rec rec;
	bool same = true;
	int rc, n;

	d.timeout_ms = 300;
	mu = mut_new(&d, &hooks);
	rc = rlog_append_ex(cm.rlog, &a, RLOG_A_INFLIGHT | RLOG_A_NOSYNC,
			    &ea);
	rc = rc ? rc : rlog_append_ex(cm.rlog, &b,
				      RLOG_A_INFLIGHT | RLOG_A_NOSYNC, &eb);
	is_int(rc, 0, "resume lost: two records left INFLIGHT");
	hk.may_absorb = true;
	hk.absorbed = hk.resumed = hk.lost = 0;
	srv_reset(NULL, 0, ACT_DROP);
	mut_show_lates(mu);
	mut_resume(mu);
	run_for(1500);
	n = srv_nreq();
	for (int i = 0; i < n && i < MAXREQ; i++)
		same = same && !memcmp(srv.req[i].opid, ea.opid, 16);
	ok(n >= 1 && same,
	   "resume lost: only the first record tried (%d tries)", n);
	is_int(hk.absorbed, 1, "resume lost: to the disconnect hook once");
	ok(!memcmp(hk.absorbed_opid, ea.opid, 16),
	   "resume lost: the first record");
	is_int(hk.lost, 1, "resume lost: the lost hook called once");
	is_int(hk.resumed, 1, "resume lost: log_resumed once");
	is_int(log_count(), 2, "resume lost: both records stay");
	rc = rlog_next(cm.rlog, 0, RLOG_MASK_ALL, &rec);
	ok(rc == 0 && rec.state == RLOG_INFLIGHT && rec.seq == ea.seq,
	   "resume lost: the first still INFLIGHT, first in line");
	if (rc == 0)
		rlog_rec_release(&rec);

	/* The server answers. Noted at start: a and b; c comes after (a
	 * change made meanwhile). */
	srv_reset(NULL, 0, ACT_APPLY);
	hk.resumed = hk.lost = 0;
	mut_show_lates(mu);
	rc = rlog_append_ex(cm.rlog, &c, RLOG_A_INFLIGHT | RLOG_A_NOSYNC,
			    &ec);
	is_int(rc, 0, "resume bound: a record appended after the start");
	mut_resume(mu);
	run_for(300);
	is_int(srv_nreq(), 2, "resume bound: two requests");
	ok(!memcmp(srv.req[0].opid, ea.opid, 16) &&
	   !memcmp(srv.req[1].opid, eb.opid, 16),
	   "resume bound: the two left by the crash, in order");
	is_int(hk.resumed, 1, "resume bound: log_resumed once");
	rc = rlog_next(cm.rlog, 0, RLOG_MASK_ALL, &rec);
	ok(rc == 0 && rec.seq == ec.seq && log_count() == 1,
	   "resume bound: the later record is left to its owner");
	if (rc == 0)
		rlog_rec_release(&rec);
	rlog_remove_flags(cm.rlog, ec.seq, RLOG_A_NOSYNC);
	rlog_effect_release(&ea);
	rlog_effect_release(&eb);
	rlog_effect_release(&ec);
	mut_free(mu);
	mu = saved;
	hk.may_absorb = false;
}

/*
 * Late creates and batches (issue #14). This server has no /batch (404,
 * as an older cairn-vold): the batch goes one op at a time, in order, and
 * a base DV 0 takes the DV the op before it gave the file. A held create
 * is not sent until a batch takes it, or until another op about the file
 * needs it first (then it goes alone, and that op after it).
 */
static void
test_late(void)
{
	struct proto_op c = create_op(&ffile, "late");
	struct proto_op st, sa = setattr_op(0, PROTO_SA_MODE, 0640, 0);
	struct proto_op after = setattr_op(0, PROTO_SA_MODE, 0600, 0);
	struct res rc_ = {0}, rs = {0}, ra = {0}, r2 = {0};
	struct rlog_effect e[2];
	struct mut_batch *b;
	uint64_t dv;
	int rc;

	memset(&st, 0, sizeof(st));
	st.kind = PROTO_OP_STORE;
	st.fid = ffile;
	st.base_dv = 0;
	st.chunk_size = 65536;
	st.size = 0;
	srv_reset(NULL, 0, ACT_APPLY);
	pthread_mutex_lock(&srv.mu);
	dv = srv.create_reply.attr.dv;
	pthread_mutex_unlock(&srv.mu);
	ndone = 0;

	is_int(mut_hold_create(mu, &c, done_cb, &rc_), 0, "late: held");
	is_int(log_count(), 1, "late: in the log at once");
	run_for(100);
	is_int(srv_nreq(), 0, "late: not sent");
	is_int(mut_late_state(mu, &ffile), MUT_LATE_HELD, "late: state held");
	memset(e, 0, sizeof(e));
	{
		struct proto_op ops[2] = {st, sa};

		rc = rlog_append_batch(cm.rlog, ops, 2,
				       RLOG_A_INFLIGHT | RLOG_A_NOSYNC, e);
	}
	is_int(rc, 0, "late: store and setattr logged");
	memcpy(st.opid, e[0].opid, 16);
	memcpy(sa.opid, e[1].opid, 16);
	b = mut_batch_new(mu, 0);
	ok(b && mut_batch_add_held(b, &ffile) == 0 &&
		   mut_batch_add(b, e[0].seq, &st, done_cb, &rs) == 0 &&
		   mut_batch_add(b, e[1].seq, &sa, done_cb, &ra) == 0 &&
		   mut_batch_len(b) == 3,
	   "late: a batch of the held create, a store and a setattr");
	is_int(mut_late_state(mu, &ffile), MUT_LATE_SENT,
	       "late: taken by the batch");
	/* This server answers /batch with 404 (a server of protocol 2):
	 * the ops go one at a time, in order. */
	srv.batch_404 = true;
	is_int(mut_batch_send(b), 0, "late: batch sent");
	run_until(3, 5000);
	run_for(50);
	ok(rc_.calls == 1 && rs.calls == 1 && ra.calls == 1 && !rc_.err &&
		   !rs.err && !ra.err,
	   "late: each op answered once, no error");
	ok(rc_.order == 1 && rs.order == 2 && ra.order == 3,
	   "late: answered in the batch's order");
	is_int(srv_nreq(), 4,
	       "late: no /batch here: the batch refused, three single requests");
	/* srv.req[0] is the refused /batch request. */
	ok(srv.req[1].kind == PROTO_OP_CREATE &&
		   srv.req[2].kind == PROTO_OP_STORE &&
		   srv.req[3].kind == PROTO_OP_SETATTR,
	   "late: in order: create, store, setattr");
	ok(srv.req[1].logged && srv.req[2].logged && srv.req[3].logged &&
		   !memcmp(srv.req[2].opid, e[0].opid, 16) &&
		   !memcmp(srv.req[3].opid, e[1].opid, 16),
	   "late: each under its logged opid");
	ok(srv.req[2].base_dv == dv && srv.req[3].base_dv == dv,
	   "late: base DV 0 took the DV the op before gave");
	srv.batch_404 = false;
	is_int(log_count(), 0, "late: log empty");
	is_int(mut_late_state(mu, &ffile), MUT_LATE_NONE, "late: none left");
	rlog_effect_release(&e[0]);
	rlog_effect_release(&e[1]);

	/* Held, then another op about the file: the create goes first,
	 * alone, and the op after its answer. */
	memset(&rc_, 0, sizeof(rc_));
	srv_reset(NULL, 0, ACT_APPLY);
	ndone = 0;
	c.name = "late2";
	is_int(mut_hold_create(mu, &c, done_cb, &rc_), 0, "late2: held");
	run_for(50);
	is_int(srv_nreq(), 0, "late2: not sent");
	after.base_dv = dv;
	is_int(mut_submit(mu, &after, done_cb, &r2), 0,
	       "late2: a setattr of the file");
	run_until(2, 5000);
	ok(rc_.calls == 1 && r2.calls == 1 && !rc_.err && !r2.err &&
		   rc_.order == 1 && r2.order == 2,
	   "late2: the create answered first, then the setattr");
	ok(srv_nreq() == 2 && srv.req[0].kind == PROTO_OP_CREATE &&
		   srv.req[1].kind == PROTO_OP_SETATTR,
	   "late2: the server got the create first");
	is_int(log_count(), 0, "late2: log empty");
}

/*
 * Reintegration (mut_send_replay()): a refusal keeps the record (it
 * becomes a conflict, replay.c's business), a transport failure reports
 * EHOSTUNREACH at once and keeps it too; sent again and answered, under
 * the record's opid, it goes.
 */
static void
test_replay(void)
{
	struct proto_op op = setattr_op(1, PROTO_SA_SIZE, 0, 55);
	struct rlog_effect eff = {0};
	struct proto_attr before, got;
	int rc;

	before = cached(&ffile, &rc);
	rc = rlog_append_ex(cm.rlog, &op, RLOG_A_INFLIGHT | RLOG_A_NOSYNC,
			    &eff);
	is_int(rc, 0, "replay: a logged record");
	memcpy(op.opid, eff.opid, 16);
	{
		struct res res = {0};

		srv_reset(NULL, 0, ACT_APPLY);
		srv_refuse(412, ECANCELED);
		ndone = 0;
		is_int(mut_send_replay(mu, eff.seq, &op, done_cb, &res), 0,
		       "replay refused: sent");
		run_until(1, 5000);
		run_for(50);
		ok(res.calls == 1 && res.err == -ESTALE,
		   "replay refused: ESTALE");
		is_int(log_count(), 1, "replay refused: the record stays");
		got = cached(&ffile, &rc);
		ok(rc == 0 && got.dv == before.dv && got.size == before.size,
		   "replay refused: the cache did not change");
	}
	{
		struct res res = {0};

		srv_reset(NULL, 0, ACT_DROP);
		ndone = 0;
		is_int(mut_send_replay(mu, eff.seq, &op, done_cb, &res), 0,
		       "replay unanswered: sent");
		run_until(1, 5000);
		run_for(50);
		/* Not -EIO after the retries up to the deadline (3 s): the
		 * first failure ends it. curl may have resent it once on a
		 * fresh connection, which mut cannot see. */
		ok(res.calls == 1 && res.err == -EHOSTUNREACH,
		   "replay unanswered: EHOSTUNREACH at the first failure");
		is_int(log_count(), 1, "replay unanswered: the record stays");
	}
	{
		struct res res = {0};

		srv_reset(NULL, 0, ACT_APPLY);
		ndone = 0;
		is_int(mut_send_replay(mu, eff.seq, &op, done_cb, &res), 0,
		       "replay answered: sent");
		run_until(1, 5000);
		run_for(50);
		is_int(res.err, 0, "replay answered: no error");
		ok(srv_nreq() == 1 && !memcmp(srv.req[0].opid, eff.opid, 16),
		   "replay answered: under the record's opid");
		is_int(log_count(), 0, "replay answered: the record is gone");
		got = cached(&ffile, &rc);
		ok(rc == 0 && got.size == 55, "replay answered: the cache "
					      "has the reply");
	}
	rlog_effect_release(&eff);
}

/* Replay in batches: logged records go out in one POST /batch, each
 * done called in order with its own result; the acked hook comes while
 * the record is still in the log; 404 (protocol 2), a hang-up and a
 * refusal of one op keep the records concerned. */
struct bres {
	int calls, err;
};

static void
ball_cb(void *arg, int err)
{
	struct bres *b = arg;

	b->calls++;
	b->err = err;
}

static void
test_batch(void)
{
	struct proto_op ops[2] = {setattr_op(1, PROTO_SA_MODE, 0701, 0),
				  setattr_op(1, PROTO_SA_MODE, 0702, 0)};
	struct mut_batch_op bo[2];
	struct rlog_effect eff[2];
	struct res res[2];
	struct bres all;
	struct proto_attr got;
	int rc;

	for (int i = 0; i < 2; i++) {
		memset(&eff[i], 0, sizeof(eff[i]));
		rc = rlog_append_ex(cm.rlog, &ops[i],
				    RLOG_A_INFLIGHT | RLOG_A_NOSYNC, &eff[i]);
		memcpy(ops[i].opid, eff[i].opid, 16);
		bo[i].seq = eff[i].seq;
		bo[i].op = &ops[i];
		bo[i].done = done_cb;
		bo[i].arg = &res[i];
	}
	is_int(rc, 0, "batch: two logged records");

	/* A server of protocol 2: -ENOSYS, nothing lost. */
	memset(res, 0, sizeof(res));
	memset(&all, 0, sizeof(all));
	srv_reset(NULL, 0, ACT_APPLY);
	pthread_mutex_lock(&srv.mu);
	srv.batch_404 = true;
	pthread_mutex_unlock(&srv.mu);
	ndone = 0;
	is_int(mut_send_replay_batch(mu, bo, 2, ball_cb, &all), 0,
	       "batch 404: sent");
	run_until(2, 5000);
	run_for(50);
	ok(res[0].err == -ENOSYS && res[1].err == -ENOSYS && all.calls == 1 &&
		   all.err == -ENOSYS,
	   "batch 404: each op and the batch hear ENOSYS");
	is_int(log_count(), 2, "batch 404: both records stay");
	is_int(srv_applied(), 0, "batch 404: nothing applied");
	pthread_mutex_lock(&srv.mu);
	srv.batch_404 = false;
	pthread_mutex_unlock(&srv.mu);

	/* No answer: -EHOSTUNREACH, the records stay. */
	memset(res, 0, sizeof(res));
	memset(&all, 0, sizeof(all));
	srv_reset(NULL, 0, ACT_DROP);
	ndone = 0;
	is_int(mut_send_replay_batch(mu, bo, 2, ball_cb, &all), 0,
	       "batch unanswered: sent");
	run_until(2, 5000);
	run_for(50);
	ok(res[0].err == -EHOSTUNREACH && res[1].err == -EHOSTUNREACH &&
		   all.err == -EHOSTUNREACH,
	   "batch unanswered: EHOSTUNREACH");
	is_int(log_count(), 2, "batch unanswered: both records stay");

	/* The first op refused (412), the second applied. */
	memset(res, 0, sizeof(res));
	memset(&all, 0, sizeof(all));
	srv_reset(NULL, 0, ACT_APPLY);
	pthread_mutex_lock(&srv.mu);
	srv.batch_refuse = 1;
	srv.nbatch = srv.batch_logged = 0;
	pthread_mutex_unlock(&srv.mu);
	hk.acked = hk.acked_logged = 0;
	ndone = 0;
	is_int(mut_send_replay_batch(mu, bo, 2, ball_cb, &all), 0,
	       "batch: sent");
	run_until(2, 5000);
	run_for(50);
	pthread_mutex_lock(&srv.mu);
	ok(srv.nbatch == 1 && srv.nreq == 1,
	   "batch: one request for both records");
	is_int(srv.batch_logged, 2, "batch: both INFLIGHT in the log when "
				    "they arrived");
	pthread_mutex_unlock(&srv.mu);
	ok(res[0].calls == 1 && res[0].err == -ESTALE && res[1].calls == 1 &&
		   res[1].err == 0 && res[0].order == 1 && res[1].order == 2,
	   "batch: each result in order (refused, applied)");
	ok(all.calls == 1 && all.err == 0, "batch: then the batch's call");
	ok(hk.acked == 1 && hk.acked_logged == 1,
	   "batch: the acked hook saw the applied record still logged");
	is_int(log_count(), 1, "batch: the refused record stays, the other "
			       "is gone");
	got = cached(&ffile, &rc);
	ok(rc == 0 && got.mode == 0702, "batch: the applied reply is cached");
	pthread_mutex_lock(&srv.mu);
	srv.batch_refuse = 0;
	pthread_mutex_unlock(&srv.mu);
	rlog_remove(cm.rlog, eff[0].seq);
	for (int i = 0; i < 2; i++)
		rlog_effect_release(&eff[i]);
	is_int(mut_send_replay_batch(mu, bo, 0, ball_cb, &all), -EINVAL,
	       "batch: no ops: EINVAL, nothing sent");
}

static struct proto_op
mkdir_op(const struct fid *fid, const struct fid *parent, const char *name)
{
	struct proto_op op;

	memset(&op, 0, sizeof(op));
	op.kind = PROTO_OP_MKDIR;
	op.parent = *parent;
	op.name = (char *)name;
	op.fid = *fid;
	op.type = PROTO_T_DIR;
	op.mode = 0755;
	op.uid = op.gid = 1000;
	return op;
}

/* A reply naming @a as the object, @parent at @pdv, made by event @seq. */
static struct proto_op_result
reply_of(struct proto_attr a, const struct fid *parent, uint64_t pdv,
	 uint64_t seq)
{
	struct proto_op_result r;

	memset(&r, 0, sizeof(r));
	r.has_attr = true;
	r.attr = a;
	r.has_parent = true;
	r.parent = mkattr(parent, PROTO_T_DIR, pdv);
	r.event_seq = seq;
	return r;
}

/* Log @n records PENDING, then INFLIGHT in one commit, as a replay's
 * scan does (not the op log's own: rlog_is_direct() names none). */
static int
log_replay(struct proto_op *ops, struct rlog_effect *eff,
	   struct mut_batch_op *bo, struct res *res, size_t n)
{
	size_t moved = 0;
	int rc = 0;

	for (size_t i = 0; i < n && !rc; i++) {
		memset(&eff[i], 0, sizeof(eff[i]));
		rc = rlog_append_ex(cm.rlog, &ops[i], RLOG_A_NOSYNC, &eff[i]);
		memcpy(ops[i].opid, eff[i].opid, 16);
		bo[i].seq = eff[i].seq;
		bo[i].op = &ops[i];
		bo[i].done = done_cb;
		bo[i].arg = &res[i];
	}
	if (!rc)
		rc = rlog_set_inflight_run(cm.rlog, eff[0].seq, n, &moved);
	return rc ? rc : (int)moved;
}

/* Does a reader get a listing of @d (at its cached DV)? */
static bool
has_listing(const struct fid *d)
{
	struct vc_dir *l = NULL;
	bool yes = mcache_dir(cm.mc, d, &l) == 0;

	vc_dir_put(l);
	return yes;
}

/*
 * `mkdir D; echo data > D/f` made offline, replayed in one batch: while
 * its replies are applied one after the other, what a later member
 * names stays ahead (its local view stands) until its own reply is
 * applied. A reader looking at D between the mkdir's reply and the
 * create's sees D's offline listing (f in it), not an empty listing at
 * the mkdir reply's DV: before, every record of the batch left the log
 * before the first reply was applied, and D showed empty (and f 0 bytes)
 * until the last reply. The records still leave in one transaction,
 * after the replies.
 */
static void
test_batch_ahead(void)
{
	struct fid dfid = mkfid(0x50), f2 = mkfid(0x60);
	struct proto_op ops[2];
	struct mut_batch_op bo[2];
	struct rlog_effect eff[2];
	struct res res[2];
	struct bres all;
	struct proto_attr da, fa, got;
	struct proto_dir ld;
	struct proto_dirent ent;
	int rc;

	/* The local view the offline ops made: D lists f, f has 5 bytes. */
	da = mkattr(&dfid, PROTO_T_DIR, CM_DV_LOCAL | 1);
	fa = mkattr(&f2, PROTO_T_FILE, CM_DV_LOCAL | 2);
	fa.size = 5;
	vc_put_attr(cm.vc, &da);
	vc_put_attr(cm.vc, &fa);
	memset(&ld, 0, sizeof(ld));
	ld.dir = da;
	ld.n = 1;
	ent.name = "f";
	ent.attr = fa;
	ld.ents = &ent;
	vc_put_dir(cm.vc, &ld);
	ok(has_listing(&dfid), "batch ahead: D's offline listing is cached");

	ops[0] = mkdir_op(&dfid, &pdir, "D");
	ops[1] = create_op(&f2, "f");
	ops[1].parent = dfid;
	memset(res, 0, sizeof(res));
	memset(&all, 0, sizeof(all));
	is_int(log_replay(ops, eff, bo, res, 2), 2,
	       "batch ahead: two records INFLIGHT");
	srv_reset(NULL, 0, ACT_APPLY);
	pthread_mutex_lock(&srv.mu);
	srv.replies[0] =
		reply_of(mkattr(&dfid, PROTO_T_DIR, 1), &pdir, 70, 150);
	srv.replies[1] =
		reply_of(mkattr(&f2, PROTO_T_FILE, 1), &dfid, 2, 151);
	srv.nreplies = 2;
	srv.nextreply = 0;
	pthread_mutex_unlock(&srv.mu);
	hk.watch = f2;
	hk.watch_dir = dfid;
	hk.nobs = hk.ndir = 0;
	hk.ahead_on = true;
	ndone = 0;
	is_int(mut_send_replay_batch(mu, bo, 2, ball_cb, &all), 0,
	       "batch ahead: sent");
	run_until(2, 5000);
	run_for(50);
	hk.ahead_on = false;
	ok(res[0].err == 0 && res[1].err == 0 && all.calls == 1 &&
		   all.err == 0,
	   "batch ahead: both applied");
	ok(hk.ndir >= 1 && hk.dir_ahead[0],
	   "batch ahead: at the mkdir's reply D is still ahead (the "
	   "create's record names it)");
	ok(hk.nobs >= 1 && hk.obs[0],
	   "batch ahead: between the replies a reader sees f in D (not an "
	   "empty listing at the mkdir reply's DV)");
	is_int(log_count(), 0, "batch ahead: both records gone");
	ok(!mut_batch_ahead(mu, &dfid) && !mut_batch_ahead(mu, &f2),
	   "batch ahead: nothing ahead once the batch is through");
	got = cached(&dfid, &rc);
	ok(rc == 0 && got.dv == 2, "batch ahead: D at the create reply's DV");
	got = cached(&f2, &rc);
	ok(rc == 0 && got.dv == 1, "batch ahead: f at its reply's DV");
	pthread_mutex_lock(&srv.mu);
	srv.nreplies = srv.nextreply = 0;
	pthread_mutex_unlock(&srv.mu);
	for (int i = 0; i < 2; i++)
		rlog_effect_release(&eff[i]);
}

/*
 * The empty listing of a directory we made is cached only from a fresh
 * reply. A sync-mode mkdir the server committed (DV 1) before cairnd was
 * killed; while it was down another client made D/x (D at DV 2, event
 * 251); the restarted cairnd saw that event while D was not cached, then
 * resent the record: the server answers from its opid table, at DV 1.
 * An empty listing at DV 1 would show D empty (maybe for good): the
 * listing is left to be fetched. Also a reply to a retry (the first
 * attempt may have been applied), and a replay batch's reply older than
 * an event about the directory seen before it came.
 */
static void
test_mkdir_listing(void)
{
	struct fid d2 = mkfid(0x70), d3 = mkfid(0x80), d4 = mkfid(0x90),
		   d5 = mkfid(0xa0);
	struct proto_op op = mkdir_op(&d2, &pdir, "R");
	struct proto_event ev;
	struct rlog_effect eff = {0};
	struct mut_batch_op bo[1];
	struct proto_op bops[1];
	struct rlog_effect beff[1];
	struct res res[1];
	struct bres all;
	struct proto_attr got;
	char *body;
	int rc;

	rc = rlog_append_ex(cm.rlog, &op, RLOG_A_INFLIGHT | RLOG_A_NOSYNC,
			    &eff);
	memcpy(op.opid, eff.opid, 16);
	rlog_undirect(cm.rlog, eff.seq); /* a restart: nothing is direct */
	is_int(rc, 0, "recorded mkdir: an INFLIGHT record left by a crash");
	pthread_mutex_lock(&srv.mu);
	srv.create_reply =
		reply_of(mkattr(&d2, PROTO_T_DIR, 1), &pdir, 80, 250);
	body = apply(&op); /* the server committed it before the crash */
	free(body);
	pthread_mutex_unlock(&srv.mu);
	memset(&ev, 0, sizeof(ev));
	ev.kind = PROTO_EV_DIR;
	ev.fid = d2;
	ev.dv = 2;
	ev.seq = 251;
	mfetch_event(cm.mf, &ev); /* D not cached: nothing to drop */
	srv_reset(NULL, 0, ACT_APPLY);
	hk.resumed = 0;
	mut_resume(mu);
	run_for(300);
	is_int(hk.resumed, 1, "recorded mkdir: resent at start");
	is_int(srv_applied(), 0,
	       "recorded mkdir: answered from the opid table");
	got = cached(&d2, &rc);
	ok(rc == 0 && got.dv == 1, "recorded mkdir: the recorded reply's "
				   "attributes are cached");
	ok(!has_listing(&d2), "recorded mkdir: no empty listing cached at "
			      "its DV (fetched when needed)");
	is_int(log_count(), 0, "recorded mkdir: the record is gone");
	rlog_effect_release(&eff);

	/* A fresh sync-mode mkdir: its empty listing is cached. */
	{
		struct proto_op op3 = mkdir_op(&d3, &pdir, "S");
		struct res r3 = {0};

		srv_reset(NULL, 0, ACT_APPLY);
		pthread_mutex_lock(&srv.mu);
		srv.create_reply =
			reply_of(mkattr(&d3, PROTO_T_DIR, 1), &pdir, 81, 300);
		pthread_mutex_unlock(&srv.mu);
		ndone = 0;
		is_int(mut_submit(mu, &op3, done_cb, &r3), 0,
		       "fresh mkdir: submitted");
		run_until(1, 5000);
		run_for(50);
		is_int(r3.err, 0, "fresh mkdir: applied");
		ok(has_listing(&d3), "fresh mkdir: its empty listing is cached");
	}
	/* The first attempts applied but their replies lost: mut's retry
	 * is answered from the opid table; no listing from it. */
	{
		struct proto_op op4 = mkdir_op(&d4, &pdir, "T");
		struct res r4 = {0};
		enum act script[] = {ACT_LOST, ACT_LOST};

		/* twice: an HTTP client may resend once by itself */
		srv_reset(script, 2, ACT_APPLY);
		pthread_mutex_lock(&srv.mu);
		srv.create_reply =
			reply_of(mkattr(&d4, PROTO_T_DIR, 1), &pdir, 82, 310);
		pthread_mutex_unlock(&srv.mu);
		ndone = 0;
		is_int(mut_submit(mu, &op4, done_cb, &r4), 0,
		       "retried mkdir: submitted");
		run_until(1, 5000);
		run_for(50);
		ok(r4.err == 0 && srv_nreq() >= 3 && srv_applied() == 1,
		   "retried mkdir: applied once, answered again");
		ok(!has_listing(&d4), "retried mkdir: no listing from the "
				      "retry's answer");
	}
	/* A replay batch's mkdir whose answer is older than an event about
	 * the directory seen before it (a record sent before, answered from
	 * the opid table): no listing. */
	bops[0] = mkdir_op(&d5, &pdir, "U");
	memset(res, 0, sizeof(res));
	memset(&all, 0, sizeof(all));
	is_int(log_replay(bops, beff, bo, res, 1), 1,
	       "old batch mkdir: one record INFLIGHT");
	srv_reset(NULL, 0, ACT_APPLY);
	pthread_mutex_lock(&srv.mu);
	srv.create_reply =
		reply_of(mkattr(&d5, PROTO_T_DIR, 1), &pdir, 83, 320);
	pthread_mutex_unlock(&srv.mu);
	ev.fid = d5;
	ev.seq = 321;
	mfetch_event(cm.mf, &ev);
	ndone = 0;
	is_int(mut_send_replay_batch(mu, bo, 1, ball_cb, &all), 0,
	       "old batch mkdir: sent");
	run_until(1, 5000);
	run_for(50);
	is_int(res[0].err, 0, "old batch mkdir: applied");
	got = cached(&d5, &rc);
	ok(rc == 0 && got.dv == 1, "old batch mkdir: attributes cached");
	ok(!has_listing(&d5), "old batch mkdir: no listing at a DV older "
			      "than news of it");
	rlog_effect_release(&beff[0]);

	/* Restarted after event 500 (the seq saved by the run before): a
	 * batch's mkdir answered at 450 may miss what that run saw: no
	 * listing. One made after it (event 600) gets its listing. */
	mut_events_from(mu, 500);
	for (int k = 0; k < 2; k++) {
		struct fid dk = mkfid((uint8_t)(0xb0 + 0x10 * k));

		bops[0] = mkdir_op(&dk, &pdir, k ? "W" : "V");
		memset(res, 0, sizeof(res));
		memset(&all, 0, sizeof(all));
		is_int(log_replay(bops, beff, bo, res, 1), 1,
		       "restart floor: record %d INFLIGHT", k);
		srv_reset(NULL, 0, ACT_APPLY);
		pthread_mutex_lock(&srv.mu);
		srv.create_reply = reply_of(mkattr(&dk, PROTO_T_DIR, 1), &pdir,
					    (uint64_t)(84 + k),
					    k ? 600 : 450);
		pthread_mutex_unlock(&srv.mu);
		ndone = 0;
		is_int(mut_send_replay_batch(mu, bo, 1, ball_cb, &all), 0,
		       "restart floor: batch %d sent", k);
		run_until(1, 5000);
		run_for(50);
		is_int(res[0].err, 0, "restart floor: batch %d applied", k);
		ok(has_listing(&dk) == (k == 1),
		   k ? "restart floor: a mkdir answered after the saved seq "
		       "gets its empty listing"
		     : "restart floor: a mkdir answered before the saved seq "
		       "gets none");
		rlog_effect_release(&beff[0]);
	}
}

/* Disconnected: mut_submit() hands the op to the offline hook, nothing is
 * logged by mut or sent. */
static void
test_offline(void)
{
	struct proto_op op = setattr_op(2, PROTO_SA_MODE, 0760, 0);
	struct res res = {0};
	struct mut_deps d = mdeps;
	struct mut *saved = mu;

	/* A conn of its own, no gate and no probes, put in the manual
	 * disconnected mode, and an op log that reads it. */
	static const struct conn_hooks none = {0};
	struct conn *c = conn_new(cm.loop.base, NULL, NULL, &none);

	ok(c && conn_disconnect(c, true, "test") == 0 && conn_offline(c),
	   "offline: a disconnected conn");
	d.conn = c;
	mu = mut_new(&d, &hooks);
	srv_reset(NULL, 0, ACT_APPLY);
	hk.offline = 0;
	is_int(mut_submit(mu, &op, done_cb, &res), -EROFS,
	       "offline: the hook's answer is returned");
	is_int(hk.offline, 1, "offline: submit_offline called");
	run_for(50);
	is_int(srv_nreq(), 0, "offline: nothing sent");
	is_int(log_count(), 0, "offline: nothing logged by mut");
	is_int(res.calls, 0, "offline: no done call");
	mut_free(mu);
	mu = saved;
	conn_free(c);
}

/* ---- setup --------------------------------------------------------------- */

static int
setup(void)
{
	struct cm_config cfg;
	struct cs_params p = {0};
	struct http_config hc = {0};
	struct proto_dir d;
	struct proto_dirent ent;
	struct proto_attr ra, pa;
	char path[256], url[64];
	int err = 0;

	cm_config_init(&cfg);
	cfg.volume = strdup("v");
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", srv.port);
	cfg.server = strdup(url);
	cfg.cache_dir = strdup(dir);
	cfg.fetch_timeout_ms = 3000;
	cm_init(&cm, &cfg);
	if (cm_loop_new(&cm.loop) < 0)
		return -1;

	snprintf(path, sizeof(path), "%s/cs", dir);
	p.chunk_size = 65536;
	if (mkdir(path, 0700) < 0 || cs_create(path, &p) < 0)
		return -1;
	cm.cs = cs_open(path, &p, &err);
	if (!cm.cs)
		return -1;
	cm.chunk_size = cs_chunk_size(cm.cs);
	snprintf(path, sizeof(path), "%s/meta.tdb", dir);
	cm.vc = vc_open(path, VOL_ID, cm.chunk_size);
	cm.ino = ino_new(&root);
	snprintf(path, sizeof(path), "%s/rlog.tdb", dir);
	cm.rlog = rlog_open_flags(path, RLOG_O_NOSYNC, &err);
	srv.rlog = cm.rlog;
	hc.base_url = cm.cfg.server;
	hc.token = "t";
	hc.max_parallel = 4;
	hc.connect_timeout_ms = 1000;
	hc.timeout_ms = 2000;
	cm.http = http_new(cm.loop.base, &hc);
	if (!cm.vc || !cm.ino || !cm.rlog || !cm.http)
		return -1;
	cm.mc = mcache_new(cm.ino, cm.vc, cm.cs, &cm.loop, &cm.st, &mchooks);
	if (!cm.mc)
		return -1;
	{
		const struct mfetch_deps md = {
			.loop = &cm.loop,
			.http = cm.http,
			.mc = cm.mc,
			.ino = cm.ino,
			.vc = cm.vc,
			.cs = cm.cs,
			.st = &cm.st,
			.online = &cm.online,
			.volume = cm.cfg.volume,
			.server = cm.cfg.server,
			.timeout_ms = (unsigned)cm.cfg.fetch_timeout_ms,
		};

		cm.mf = mfetch_new(&md, &mhooks);
	}
	if (!cm.mf)
		return -1;
	mdeps.loop = &cm.loop;
	mdeps.http = cm.http;
	mdeps.rlog = cm.rlog;
	mdeps.mc = cm.mc;
	mdeps.mf = cm.mf;
	mdeps.online = &cm.online;
	mdeps.volume = cm.cfg.volume;
	mdeps.timeout_ms = cm.cfg.fetch_timeout_ms;
	mu = mut_new(&mdeps, &hooks);
	if (!mu)
		return -1;

	/* The cache: root, directory P (DV 5, one entry), file F's
	 * attributes come with its create. */
	ra = mkattr(&root, PROTO_T_DIR, 1);
	pa = mkattr(&pdir, PROTO_T_DIR, 5);
	vc_put_attr(cm.vc, &ra);
	vc_put_attr(cm.vc, &pa);
	memset(&d, 0, sizeof(d));
	d.dir = pa;
	d.n = 1;
	ent.name = "old";
	ent.attr = mkattr(&gfile, PROTO_T_FILE, 3);
	ent.attr.fid.oid[0] ^= 0xff;
	d.ents = &ent;
	return vc_put_dir(cm.vc, &d);
}

static void
teardown(void)
{
	mut_free(mu);
	mu = NULL;
	mfetch_free(cm.mf);
	cm.mf = NULL;
	http_free(cm.http);
	rlog_close(cm.rlog);
	srv.rlog = NULL;
	mcache_free(cm.mc);
	cm.mc = NULL;
	ino_free(cm.ino);
	vc_close(cm.vc);
	cs_close(cm.cs);
	cm_loop_stop(&cm.loop, NULL, NULL);
	cm_release(&cm);
}

int
main(void)
{
	struct timeval tv = {0, 20000};
	struct event *tk;
	char cmd[300];

	log_init("test_cm_mut", 0, LOG_CRIT);
	/* Small caches, quickly made (vc_set_new_hash_size()). */
	vc_set_new_hash_size(131071);
	/* The server writes to connections the test cut (as cairnd does). */
	signal(SIGPIPE, SIG_IGN);
	evthread_use_pthreads();
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 99;
	}
	root = mkfid(0x10);
	pdir = mkfid(0x20);
	ffile = mkfid(0x30);
	gfile = mkfid(0x40);
	srv.fattr = mkattr(&ffile, PROTO_T_FILE, 1);
	srv.clock = 100; /* event seqs above the create's (10) */

	plan(0);
	if (srv_start() < 0 || setup() < 0) {
		ok(0, "server and client set up");
		return done_testing();
	}
	tk = event_new(cm.loop.base, -1, EV_PERSIST, tick, NULL);
	event_add(tk, &tv);

	http_set_gate(cm.http, count_gate, NULL);
	test_create();
	test_attach_body();
	test_setattr();
	test_refused();
	test_transport();
	test_deferred();
	test_500();
	test_malformed();
	test_deadline();
	test_order();
	test_resume_lost();
	test_late();
	test_replay();
	test_batch();
	test_batch_ahead();
	test_mkdir_listing();
	test_offline();

	event_free(tk);
	teardown();
	srv_stop();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		diag("cannot remove %s", dir);
	libevent_global_shutdown();
	return done_testing();
}
