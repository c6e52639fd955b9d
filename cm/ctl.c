/*
 * ctl.c - cairnd's control socket: a libevent server for the framed
 * messages of common/ctl_proto.h, with peer credentials and per-connection
 * limits, dispatching to the cache manager's handler table.
 *
 * It is not the cache manager's policy: it never looks at a path, a chunk
 * or a pin. It checks frames, schemas and the root-only rule, and makes
 * sure that no client - malformed, hostile, slow or gone - can crash cairnd
 * or stall its loop: input is bounded by the frame limit (read high
 * watermark), output by max_pending final replies plus max_outbuf of lossy
 * progress, and a client that neither writes nor reads is timed out. No
 * one user can starve the others: connections are capped per uid, and the
 * last few are kept for root.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "cm/ctl.h"
#include "common/log.h"
#include "common/util.h"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

struct ctl_conn;

struct ctl_call {
	TAILQ_ENTRY(ctl_call) link;
	struct ctl_conn *conn; /* NULL once cancelled */
	uint32_t id;
	unsigned type;
	bool want_progress;
	void (*cancel_fn)(void *arg, struct ctl_call *call);
	void *cancel_arg;
	void (*filter_fn)(void *arg, json_t *result); /* ctl_call_set_filter */
	void *filter_arg;
	struct ctl_peer peer;
};

TAILQ_HEAD(ctl_call_list, ctl_call);

struct ctl_conn {
	LIST_ENTRY(ctl_conn) link;
	struct ctl_server *srv;
	struct bufferevent *bev;
	struct event *resume; /* re-reads input after reading was paused */
	struct ctl_peer peer;
	struct ctl_call_list calls;
	unsigned npending;
	bool closing; /* an error went out; free once it is written */
	bool paused;  /* reading stopped at max_pending */
	bool dying;   /* inside conn_free() */
};

struct ctl_server {
	struct event_base *base;
	struct evconnlistener *lis;
	struct event *rearm; /* re-enables accepting after EMFILE */
	char *path;
	dev_t dev;
	ino_t ino;
	struct ctl_handlers h;
	void *arg;
	struct ctl_limits lim;
	struct ctl_stats st;
	void (*peer_hook)(void *arg, struct ctl_peer *p);
	void *peer_hook_arg;
	LIST_HEAD(, ctl_conn) conns;
};

static void conn_process(struct ctl_conn *c);

static struct timeval
ms_tv(unsigned ms)
{
	struct timeval tv = {(time_t)(ms / 1000),
			     (suseconds_t)(ms % 1000) * 1000};

	return tv;
}

/* ------------------------------------------------------------------ */
/* Peers and permissions                                               */

int
ctl_peer_in_group(const struct ctl_peer *p, gid_t gid)
{
	size_t i;

	if (p->gid == gid)
		return 1;
	for (i = 0; i < p->ngroups; i++)
		if (p->groups[i] == gid)
			return 1;
	return 0;
}

int
ctl_peer_may(const struct ctl_peer *p, uint32_t mode, uint32_t uid,
	     uint32_t gid, int want)
{
	unsigned bits, need = 0;

	if (want & R_OK)
		need |= 4;
	if (want & W_OK)
		need |= 2;
	if (want & X_OK)
		need |= 1;
	if (p->uid == 0) {
		/* As the kernel: root searches any directory, but executes
		 * a file only if someone may. */
		if ((need & 1) && !S_ISDIR(mode) && !(mode & 0111))
			return -EACCES;
		return 0;
	}
	if (p->uid == (uid_t)uid)
		bits = (mode >> 6) & 7;
	else if (ctl_peer_in_group(p, (gid_t)gid))
		bits = (mode >> 3) & 7;
	else
		bits = mode & 7;
	return (bits & need) == need ? 0 : -EACCES;
}

/* Is the second field of a "Uid:"/"Gid:" line @s (the effective id,
 * the one SO_PEERCRED reported; the real one comes first) @want? */
static bool
ids_match(const char *s, unsigned long want)
{
	unsigned long v;
	char *end;

	for (int i = 0; i < 2; i++) {
		while (*s == ' ' || *s == '\t')
			s++;
		errno = 0;
		v = strtoul(s, &end, 10);
		if (errno || end == s || (i == 1 && v != want))
			return false;
		s = end;
	}
	return true;
}

int
ctl_peer_groups_parse(struct ctl_peer *p, FILE *f)
{
	char line[4096], *s, *end;
	gid_t g[CTL_PEER_GROUPS_MAX];
	size_t n = 0;
	bool uid_ok = false, gid_ok = false;
	unsigned long v;

	p->ngroups = 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "Uid:", 4)) {
			uid_ok = ids_match(line + 4, (unsigned long)p->uid);
		} else if (!strncmp(line, "Gid:", 4)) {
			gid_ok = ids_match(line + 4, (unsigned long)p->gid);
		} else if (!strncmp(line, "Groups:", 7)) {
			for (s = line + 7; n < CTL_PEER_GROUPS_MAX;) {
				while (*s == ' ' || *s == '\t')
					s++;
				if (*s < '0' || *s > '9')
					break;
				errno = 0;
				v = strtoul(s, &end, 10);
				if (errno || end == s || v > (gid_t)-1)
					break;
				g[n++] = (gid_t)v;
				s = end;
			}
		}
	}
	/* Another process now (the pid was reused, or it changed ids):
	 * its groups are not the peer's. */
	if (!uid_ok || !gid_ok)
		return -ESRCH;
	memcpy(p->groups, g, n * sizeof(g[0]));
	p->ngroups = n;
	return 0;
}

/* Supplementary groups from /proc/PID/status, for kernels before 4.13
 * (no SO_PEERGROUPS). Racy by nature: the pid may be gone or reused. The
 * groups are taken only when the process there still has the peer's
 * (effective) uid and gid, else none are: a peer then gets fewer rights
 * (or, through a mode that gives a group less than others, the others'
 * class, which any process of its uid without the group would have). */
static void
peer_groups_from_proc(struct ctl_peer *p)
{
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)p->pid);
	f = fopen(path, "re");
	if (!f)
		return;
	if (ctl_peer_groups_parse(p, f) < 0)
		log_info(LOG_CTL,
			 "pid %d is no longer uid %u gid %u: its groups are "
			 "not used",
			 (int)p->pid, (unsigned)p->uid, (unsigned)p->gid);
	fclose(f);
}

static int
peer_read(int fd, struct ctl_peer *p)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);
	gid_t *more;
	int err;

	memset(p, 0, sizeof(*p));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
		return -errno;
	p->uid = uc.uid;
	p->gid = uc.gid;
	p->pid = uc.pid;
	len = sizeof(p->groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, p->groups, &len) == 0) {
		p->ngroups = len / sizeof(gid_t);
		return 0;
	}
	err = errno;
	if (err == ERANGE && len > sizeof(p->groups) &&
	    len <= 65536 * sizeof(gid_t)) {
		/* More groups than we keep: the kernel said how many. Read
		 * them all and keep the first CTL_PEER_GROUPS_MAX, rather
		 * than guessing from /proc. */
		more = malloc(len);
		if (more && getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, more,
				       &len) == 0) {
			p->ngroups = len / sizeof(gid_t);
			if (p->ngroups > CTL_PEER_GROUPS_MAX)
				p->ngroups = CTL_PEER_GROUPS_MAX;
			memcpy(p->groups, more, p->ngroups * sizeof(gid_t));
		}
		free(more);
		return 0;
	}
	if (err == ENOPROTOOPT)
		peer_groups_from_proc(p);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Sending                                                              */

/* Queue one message on @c. On an encoding failure, try to say so with a
 * small ERROR instead; if even that fails, close the connection. */
static void
conn_send(struct ctl_conn *c, unsigned type, uint32_t id, const json_t *p)
{
	uint8_t *msg;
	size_t len;
	json_t *e;
	int err;

	msg = ctl_msg_encode(type, 0, id, p, &len);
	if (!msg) {
		err = errno;
		log_warn(LOG_CTL, "cannot encode %s reply for pid %d: %s",
			 ctl_type_name(type), (int)c->peer.pid, strerror(err));
		if (type == CTL_PROGRESS)
			return;
		e = ctl_error_new(err, err == EMSGSIZE ? "reply too large"
						       : "cannot encode reply");
		msg = e ? ctl_msg_encode(CTL_ERROR, 0, id, e, &len) : NULL;
		json_decref(e);
		if (!msg) {
			c->closing = true;
			bufferevent_disable(c->bev, EV_READ);
			return;
		}
	}
	if (bufferevent_write(c->bev, msg, len) < 0) {
		c->closing = true;
		bufferevent_disable(c->bev, EV_READ);
	}
	free(msg);
}

static void
conn_send_err(struct ctl_conn *c, uint32_t id, int err, const char *msg)
{
	json_t *e = ctl_error_new(err, msg);

	if (!e) {
		c->closing = true;
		return;
	}
	conn_send(c, CTL_ERROR, id, e);
	json_decref(e);
}

/* A frame we cannot trust: answer with id 0 and close once written. */
static void
conn_frame_error(struct ctl_conn *c, int rc, const struct ctl_hdr *h)
{
	char msg[160];

	switch (rc) {
	case -EBADMSG:
		snprintf(msg, sizeof(msg),
			 "bad magic: not a cairn control "
			 "message");
		break;
	case -EPROTONOSUPPORT:
		snprintf(msg, sizeof(msg),
			 "control protocol version %u is not supported "
			 "(this cairnd speaks %d)",
			 h->version, CTL_VERSION);
		break;
	case -EMSGSIZE:
		snprintf(msg, sizeof(msg),
			 "message of %u bytes is over the limit of %u",
			 h->length, CTL_PAYLOAD_MAX);
		break;
	case -EOPNOTSUPP:
		snprintf(msg, sizeof(msg), "message type %u is not a request",
			 h->type);
		break;
	default:
		snprintf(msg, sizeof(msg), "undefined flag bits 0x%x",
			 h->flags & ~CTL_FL_MASK);
		break;
	}
	log_info(LOG_CTL, "closing control connection of pid %d: %s",
		 (int)c->peer.pid, msg);
	c->srv->st.bad_frames++;
	conn_send_err(c, 0, rc, msg);
	c->closing = true;
	bufferevent_disable(c->bev, EV_READ);
}

/* ------------------------------------------------------------------ */
/* Connections                                                         */

static void
conn_set_timeouts(struct ctl_conn *c)
{
	struct timeval rt = ms_tv(c->srv->lim.idle_timeout_ms);
	struct timeval wt = ms_tv(c->srv->lim.write_timeout_ms);

	/* While a call is pending the client is waiting for us, possibly
	 * for hours (a big pin): only an idle connection times out. */
	bufferevent_set_timeouts(
		c->bev,
		c->npending || !c->srv->lim.idle_timeout_ms ? NULL : &rt,
		c->srv->lim.write_timeout_ms ? &wt : NULL);
}

static void
conn_free(struct ctl_conn *c)
{
	struct ctl_server *s = c->srv;
	struct ctl_call *call;
	void (*fn)(void *, struct ctl_call *);

	c->dying = true;
	/* Detach each call before its cancel callback runs: the callback may
	 * answer it (freeing it) or any other call of this connection. */
	while ((call = TAILQ_FIRST(&c->calls))) {
		TAILQ_REMOVE(&c->calls, call, link);
		call->conn = NULL;
		c->npending--;
		s->st.calls_pending--;
		fn = call->cancel_fn;
		call->cancel_fn = NULL;
		if (fn)
			fn(call->cancel_arg, call);
	}
	LIST_REMOVE(c, link);
	s->st.conns_open--;
	bufferevent_free(c->bev);
	event_free(c->resume);
	free(c);
}

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	conn_process(arg);
}

static void
conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct ctl_conn *c = arg;

	if (c->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		conn_free(c);
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct ctl_conn *c = arg;

	if (what & BEV_EVENT_TIMEOUT)
		log_info(LOG_CTL, "control connection of pid %d timed out (%s)",
			 (int)c->peer.pid,
			 what & BEV_EVENT_READING ? "idle" : "not reading");
	else if (what & BEV_EVENT_ERROR)
		log_debug(LOG_CTL, "control connection of pid %d: %s",
			  (int)c->peer.pid, strerror(errno));
	conn_free(c);
}

static void
conn_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ctl_conn *c = arg;

	if (c->closing || !c->paused || c->npending >= c->srv->lim.max_pending)
		return;
	c->paused = false;
	bufferevent_enable(c->bev, EV_READ);
	/* Whole messages may already wait in the input buffer; no new bytes
	 * will arrive to call the read callback for them. */
	conn_process(c);
}

static void
dispatch(struct ctl_conn *c, const struct ctl_hdr *h, json_t *args)
{
	struct ctl_server *s = c->srv;
	const char *name = ctl_type_name(h->type);
	char why[256];
	struct ctl_call *call;
	ctl_handler_fn fn;

	if ((ctl_type_flags(h->type) & CTL_TF_ROOT) && c->peer.uid != 0) {
		snprintf(why, sizeof(why),
			 "'%s' is a cache-wide operation: only root may do it",
			 name);
		s->st.bad_requests++;
		conn_send_err(c, h->id, EPERM, why);
		return;
	}
	if (ctl_args_check(h->type, args, why, sizeof(why)) < 0) {
		s->st.bad_requests++;
		conn_send_err(c, h->id, EINVAL, why);
		return;
	}
	fn = s->h.on[h->type];
	if (!fn) {
		snprintf(why, sizeof(why),
			 "'%s' is not implemented by this "
			 "cairnd",
			 name);
		s->st.bad_requests++;
		conn_send_err(c, h->id, ENOSYS, why);
		return;
	}
	call = calloc(1, sizeof(*call));
	if (!call) {
		conn_send_err(c, h->id, ENOMEM, NULL);
		return;
	}
	call->conn = c;
	call->id = h->id;
	call->type = h->type;
	call->want_progress = (h->flags & CTL_FL_PROGRESS) != 0;
	call->peer = c->peer;
	TAILQ_INSERT_TAIL(&c->calls, call, link);
	c->npending++;
	s->st.calls_pending++;
	s->st.calls++;
	conn_set_timeouts(c);
	log_debug(LOG_CTL, "request %s id %u from uid %u pid %d", name, h->id,
		  (unsigned)c->peer.uid, (int)c->peer.pid);
	fn(s->arg, call, &call->peer, args);
}

/* Handle every whole message in @c's input, within the pending limit. */
static void
conn_process(struct ctl_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	uint8_t hb[CTL_HDR_SIZE];
	struct ctl_hdr h;
	unsigned char *p;
	json_t *args;
	size_t len;
	int rc;

	while (!c->closing) {
		len = evbuffer_get_length(in);
		if (len < CTL_HDR_SIZE)
			return;
		if (c->npending >= c->srv->lim.max_pending) {
			/* Back-pressure: the kernel buffer fills and the
			 * client's writes block, cairnd's memory does not. */
			c->paused = true;
			bufferevent_disable(c->bev, EV_READ);
			return;
		}
		evbuffer_copyout(in, hb, CTL_HDR_SIZE);
		rc = ctl_hdr_decode(hb, CTL_HDR_SIZE, &h);
		if (rc == 0 && h.type > CTL_REQ_MAX)
			rc = -EOPNOTSUPP;
		if (rc < 0) {
			conn_frame_error(c, rc, &h);
			return;
		}
		if (len - CTL_HDR_SIZE < h.length)
			return; /* the rest is on its way (or times out) */
		p = evbuffer_pullup(in, CTL_HDR_SIZE + (ev_ssize_t)h.length);
		if (!p) {
			conn_send_err(c, 0, ENOMEM, NULL);
			c->closing = true;
			return;
		}
		rc = ctl_payload_decode(p + CTL_HDR_SIZE, h.length, &args);
		evbuffer_drain(in, CTL_HDR_SIZE + (size_t)h.length);
		if (rc < 0) {
			c->srv->st.bad_requests++;
			conn_send_err(c, h.id, EINVAL,
				      "payload is not one JSON object");
			continue;
		}
		if (h.id == 0) {
			c->srv->st.bad_requests++;
			conn_send_err(c, 0, EINVAL, "request id 0 is reserved");
			json_decref(args);
			continue;
		}
		dispatch(c, &h, args);
		json_decref(args);
	}
}

/* ------------------------------------------------------------------ */
/* Accepting                                                           */

static void
refuse(int fd, int err, const char *msg)
{
	json_t *e = ctl_error_new(err, msg);
	uint8_t *m;
	size_t len;

	m = e ? ctl_msg_encode(CTL_ERROR, 0, 0, e, &len) : NULL;
	/* Best effort: a fresh socket buffer takes a small message whole. */
	if (m && send(fd, m, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug(LOG_CTL, "cannot tell refused client: %s",
			  strerror(errno));
	free(m);
	json_decref(e);
	close(fd);
}

/* Open connections of @uid. The list holds at most max_conns entries, so
 * a walk is cheap next to an accept. */
static unsigned
conns_of_uid(const struct ctl_server *s, uid_t uid)
{
	const struct ctl_conn *c;
	unsigned n = 0;

	LIST_FOREACH(c, &s->conns, link)
	if (c->peer.uid == uid)
		n++;
	return n;
}

/* May a connection of @p open now? @return 0, or -EBUSY with the reason
 * in @why: the whole socket is full (max_conns), the users' share of it
 * is (all but CTL_ROOT_RESERVE), or @p's uid has its max_conns_per_uid. */
static int
admit(const struct ctl_server *s, const struct ctl_peer *p, char *why,
      size_t len)
{
	unsigned total = s->lim.max_conns, mine;

	if (s->st.conns_open >= total) {
		snprintf(why, len, "too many control connections (%u open)",
			 s->st.conns_open);
		return -EBUSY;
	}
	if (p->uid == 0)
		return 0;
	if (total > CTL_ROOT_RESERVE &&
	    s->st.conns_open >= total - CTL_ROOT_RESERVE) {
		snprintf(why, len,
			 "too many control connections (%u open; the last "
			 "%u are kept for root)",
			 s->st.conns_open, CTL_ROOT_RESERVE);
		return -EBUSY;
	}
	mine = conns_of_uid(s, p->uid);
	if (s->lim.max_conns_per_uid && mine >= s->lim.max_conns_per_uid) {
		snprintf(why, len,
			 "too many control connections of uid %u (%u open, "
			 "the limit is %u per user)",
			 (unsigned)p->uid, mine, s->lim.max_conns_per_uid);
		return -EBUSY;
	}
	return 0;
}

static void
accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
	  int salen, void *arg)
{
	struct ctl_server *s = arg;
	struct ctl_conn *c;
	char why[160];
	int rc;

	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	/* The credentials come first: the caps below are per uid. */
	rc = peer_read(fd, &c->peer);
	if (rc < 0) {
		log_warn(LOG_CTL, "cannot read control peer credentials: %s",
			 strerror(-rc));
		free(c);
		close(fd);
		return;
	}
	if (s->peer_hook)
		s->peer_hook(s->peer_hook_arg, &c->peer);
	if (admit(s, &c->peer, why, sizeof(why)) < 0) {
		s->st.conns_refused++;
		log_warn(LOG_CTL, "refusing control connection of uid %u pid "
				  "%d: %s",
			 (unsigned)c->peer.uid, (int)c->peer.pid, why);
		free(c);
		refuse(fd, EBUSY, why);
		return;
	}
	c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->resume = event_new(s->base, -1, 0, conn_resume_cb, c);
	if (!c->bev || !c->resume) {
		if (c->bev)
			bufferevent_free(c->bev);
		else
			close(fd);
		event_free(c->resume);
		free(c);
		return;
	}
	c->srv = s;
	TAILQ_INIT(&c->calls);
	LIST_INSERT_HEAD(&s->conns, c, link);
	s->st.conns_open++;
	s->st.conns_accepted++;
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb,
			  c);
	/* Never buffer more than one whole message of input. */
	bufferevent_setwatermark(c->bev, EV_READ, 0,
				 CTL_HDR_SIZE + CTL_PAYLOAD_MAX);
	conn_set_timeouts(c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	log_debug(LOG_CTL, "control connection from uid %u pid %d",
		  (unsigned)c->peer.uid, (int)c->peer.pid);
}

static void
rearm_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ctl_server *s = arg;

	evconnlistener_enable(s->lis);
}

static void
accept_error_cb(struct evconnlistener *lis, void *arg)
{
	struct ctl_server *s = arg;
	struct timeval tv = ms_tv(100);
	int err = EVUTIL_SOCKET_ERROR();

	log_warn(LOG_CTL, "cannot accept control connection: %s",
		 strerror(err));
	/* Out of descriptors: the listening socket stays readable, so pause
	 * instead of spinning the loop on accept(). */
	evconnlistener_disable(lis);
	evtimer_add(s->rearm, &tv);
}

/* ------------------------------------------------------------------ */
/* The listening socket                                                */

static int
remove_stale(const char *path, const struct sockaddr_un *sun)
{
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	if (rc == 0) {
		close(fd);
		return -EADDRINUSE;
	}
	rc = errno;
	close(fd);
	if (rc != ECONNREFUSED && rc != ENOENT)
		return -rc;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	log_info(LOG_CTL, "removed stale control socket '%s'", path);
	return 0;
}

static int
listen_on(struct ctl_server *s, const char *path, int *fdp)
{
	struct sockaddr_un sun;
	struct stat st;
	char *dir, *slash;
	int fd = -1, rc;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (!*path || strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);

	dir = strdup(path);
	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	rc = 0;
	if (slash && slash != dir) {
		*slash = '\0';
		rc = util_mkdir_p(dir, 0755);
	}
	free(dir);
	if (rc < 0)
		return rc;

	rc = remove_stale(path, &sun);
	if (rc < 0)
		return rc;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		goto fail;
	/* Anyone may connect; each request is checked against the peer. */
	if (chmod(path, 0666) < 0 || listen(fd, 64) < 0 || stat(path, &st) < 0)
		goto fail_unlink;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	*fdp = fd;
	return 0;

fail_unlink:
	rc = -errno;
	unlink(path);
	close(fd);
	return rc;
fail:
	rc = -errno;
	close(fd);
	return rc;
}

struct ctl_server *
ctl_server_new(struct event_base *base, const char *sockpath,
	       const struct ctl_handlers *h, void *arg, int *err)
{
	struct ctl_server *s;
	int fd = -1, rc;

	s = calloc(1, sizeof(*s));
	if (!s) {
		*err = -ENOMEM;
		return NULL;
	}
	s->base = base;
	s->h = *h;
	s->arg = arg;
	s->lim.max_conns = 64;
	s->lim.max_conns_per_uid = 8;
	s->lim.max_pending = 16;
	s->lim.max_outbuf = 256 * 1024;
	s->lim.idle_timeout_ms = 60000;
	s->lim.write_timeout_ms = 30000;
	LIST_INIT(&s->conns);
	s->path = strdup(sockpath);
	s->rearm = evtimer_new(base, rearm_cb, s);
	if (!s->path || !s->rearm) {
		rc = -ENOMEM;
		goto out;
	}
	rc = listen_on(s, sockpath, &fd);
	if (rc < 0)
		goto out;
	s->lis = evconnlistener_new(
		base, accept_cb, s,
		LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (!s->lis) {
		rc = -ENOMEM;
		close(fd);
		unlink(sockpath);
		goto out;
	}
	evconnlistener_set_error_cb(s->lis, accept_error_cb);
	log_info(LOG_CTL, "control socket at '%s'", sockpath);
	return s;
out:
	if (s->rearm)
		event_free(s->rearm);
	free(s->path);
	free(s);
	*err = rc;
	return NULL;
}

void
ctl_server_free(struct ctl_server *s)
{
	struct stat st;

	if (!s)
		return;
	while (!LIST_EMPTY(&s->conns))
		conn_free(LIST_FIRST(&s->conns));
	evconnlistener_free(s->lis);
	event_free(s->rearm);
	/* Another cairnd may have replaced the file since; leave it be. */
	if (stat(s->path, &st) == 0 && st.st_dev == s->dev &&
	    st.st_ino == s->ino)
		unlink(s->path);
	free(s->path);
	free(s);
}

void
ctl_server_get_limits(const struct ctl_server *s, struct ctl_limits *l)
{
	*l = s->lim;
}

void
ctl_server_set_limits(struct ctl_server *s, const struct ctl_limits *l)
{
	s->lim = *l;
	if (s->lim.max_pending == 0)
		s->lim.max_pending = 1;
}

void
ctl_server_get_stats(const struct ctl_server *s, struct ctl_stats *st)
{
	*st = s->st;
}

void
ctl_server_set_peer_hook(struct ctl_server *s,
			 void (*fn)(void *arg, struct ctl_peer *p), void *arg)
{
	s->peer_hook = fn;
	s->peer_hook_arg = arg;
}

unsigned
ctl_timeout_ms(const json_t *args, const char *key, unsigned dflt)
{
	json_t *v = json_object_get(args, key);
	json_int_t ms = json_is_integer(v) ? json_integer_value(v) : 0;

	if (dflt > CTL_TIMEOUT_MAX_MS)
		dflt = CTL_TIMEOUT_MAX_MS;
	if (ms <= 0)
		return dflt;
	return ms > (json_int_t)CTL_TIMEOUT_MAX_MS ? CTL_TIMEOUT_MAX_MS
						     : (unsigned)ms;
}

/* ------------------------------------------------------------------ */
/* Answering calls                                                     */

/* Send the final answer (if anyone listens), detach and free @call. */
static void
call_finish(struct ctl_call *call, unsigned type, json_t *payload)
{
	struct ctl_conn *c = call->conn;

	if (c) {
		if (!c->closing)
			conn_send(c, type, call->id, payload);
		TAILQ_REMOVE(&c->calls, call, link);
		c->npending--;
		c->srv->st.calls_pending--;
		if (!c->dying) {
			conn_set_timeouts(c);
			if (c->paused)
				event_active(c->resume, EV_TIMEOUT, 0);
		}
	}
	json_decref(payload);
	free(call);
}

void
ctl_reply_ok(struct ctl_call *call, json_t *result)
{
	if (!result)
		result = json_object();
	if (!json_is_object(result)) {
		json_decref(result);
		ctl_reply_err(call, EIO, "handler returned a non-object");
		return;
	}
	if (call->filter_fn)
		call->filter_fn(call->filter_arg, result);
	call_finish(call, CTL_OK, result);
}

void
ctl_call_set_filter(struct ctl_call *call,
		    void (*fn)(void *arg, json_t *result), void *arg)
{
	call->filter_fn = fn;
	call->filter_arg = arg;
}

void
ctl_reply_err_detail(struct ctl_call *call, int err, json_t *detail,
		     const char *msg)
{
	json_t *e = ctl_error_new(err, msg);
	const char *key;
	json_t *v;

	if (e && json_is_object(detail)) {
		json_object_foreach (detail, key, v) {
			if (!json_object_get(e, key))
				json_object_set(e, key, v);
		}
	}
	json_decref(detail);
	if (!e) {
		/* Out of memory: closing tells the client something broke. */
		if (call->conn)
			call->conn->closing = true;
		call_finish(call, CTL_ERROR, NULL);
		return;
	}
	call_finish(call, CTL_ERROR, e);
}

void
ctl_reply_err(struct ctl_call *call, int err, const char *msg)
{
	ctl_reply_err_detail(call, err, NULL, msg);
}

int
ctl_progress(struct ctl_call *call, json_t *p)
{
	struct ctl_conn *c = call->conn;
	int rc = 0;

	if (!c || c->closing)
		rc = -ECANCELED;
	else if (!call->want_progress || !json_is_object(p))
		rc = 0;
	else if (evbuffer_get_length(bufferevent_get_output(c->bev)) >
		 c->srv->lim.max_outbuf) {
		c->srv->st.progress_dropped++;
		rc = -ENOBUFS;
	} else
		conn_send(c, CTL_PROGRESS, call->id, p);
	json_decref(p);
	return rc;
}

int
ctl_call_cancelled(const struct ctl_call *call)
{
	return call->conn == NULL || call->conn->closing;
}

unsigned
ctl_call_type(const struct ctl_call *call)
{
	return call->type;
}

const struct ctl_peer *
ctl_call_peer(const struct ctl_call *call)
{
	return &call->peer;
}

void
ctl_call_on_cancel(struct ctl_call *call,
		   void (*fn)(void *arg, struct ctl_call *call), void *arg)
{
	call->cancel_fn = fn;
	call->cancel_arg = arg;
}
