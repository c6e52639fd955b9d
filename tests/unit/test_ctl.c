/*
 * test_ctl.c - unit tests of cm/ctl: an in-process control server on a
 * temporary socket with a mock handler table. The client is a plain
 * blocking-style socket in the same thread; helpers "pump" the event loop
 * while they wait, so every step is deterministic and needs no threads.
 *
 * Covers: dispatch, peer credentials, ENOSYS, schema errors, async replies,
 * progress, root-only enforcement (test hook, and a real setuid child when
 * run as root), malformed, oversized and truncated frames (error, close,
 * others keep being served), client gone during an async call, server freed
 * with calls pending, limits, per-uid connection caps and the root
 * reserve, timeout clamping, and ctl_peer_may().
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "cm/ctl.h"
#include "common/log.h"
#include "tests/tap.h"

static struct event_base *base;
static char tmpdir[64];
static char sockpath[100];

/* ------------------------------------------------------------------ */
/* Mock handlers                                                       */

#define PARKED_MAX 8
static struct ctl_call *parked[PARKED_MAX];
static int nparked;
static int handler_calls;
static int cancelled_seen;
static int fake_uid = -1;

static void
park(struct ctl_call *call)
{
	if (nparked < PARKED_MAX)
		parked[nparked++] = call;
	else
		ctl_reply_err(call, EBUSY, "test: too many parked");
}

static struct ctl_call *
unpark(int i)
{
	struct ctl_call *c = parked[i];

	memmove(&parked[i], &parked[i + 1],
		(size_t)(nparked - i - 1) * sizeof(parked[0]));
	nparked--;
	return c;
}

static void
h_status(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	 json_t *args)
{
	handler_calls++;
	ctl_reply_ok(call, json_pack("{s:s}", "mode", "connected"));
}

static void
h_getcacheparms(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
		json_t *args)
{
	handler_calls++;
	ctl_reply_ok(call, json_pack("{s:I, s:I, s:I, s:I}", "uid",
				     (json_int_t)peer->uid, "gid",
				     (json_int_t)peer->gid, "pid",
				     (json_int_t)peer->pid, "ngroups",
				     (json_int_t)peer->ngroups));
}

static void
h_pin(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
      json_t *args)
{
	handler_calls++;
	park(call);
}

static void
on_cancel(void *arg, struct ctl_call *call)
{
	cancelled_seen++;
}

static void
h_flush(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	json_t *args)
{
	handler_calls++;
	ctl_call_on_cancel(call, on_cancel, NULL);
	park(call);
}

static void
h_setcachesize(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	       json_t *args)
{
	handler_calls++;
	ctl_reply_ok(call, json_pack("{s:O}", "bytes_limit",
				     json_object_get(args, "bytes")));
}

static void
h_examine(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	  json_t *args)
{
	char *big = malloc(CTL_PAYLOAD_MAX + 10);
	json_t *r;

	handler_calls++;
	memset(big, 'x', CTL_PAYLOAD_MAX + 9);
	big[CTL_PAYLOAD_MAX + 9] = '\0';
	r = json_pack("{s:s}", "blob", big);
	free(big);
	ctl_reply_ok(call, r);
}

static void
h_whereis(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	  json_t *args)
{
	handler_calls++;
	ctl_reply_err_detail(call, -ENOSPC,
			     json_pack("{s:I, s:i}", "bytes_short",
				       (json_int_t)12345, "errno", 1),
			     "does not fit");
}

static const struct ctl_handlers handlers = {
	.on = {
		[CTL_STATUS] = h_status,
		[CTL_GETCACHEPARMS] = h_getcacheparms,
		[CTL_PIN] = h_pin,
		[CTL_FLUSH] = h_flush,
		[CTL_SETCACHESIZE] = h_setcachesize,
		[CTL_FLUSHALL] = h_status,
		[CTL_EXAMINE] = h_examine,
		[CTL_WHEREIS] = h_whereis,
	}};

static void
peer_hook(void *arg, struct ctl_peer *p)
{
	if (fake_uid >= 0) {
		p->uid = (uid_t)fake_uid;
		p->gid = (gid_t)fake_uid;
		p->ngroups = 0;
	}
}

/* ------------------------------------------------------------------ */
/* Client helpers                                                      */

static void
pump(int ms)
{
	struct pollfd none;
	int i;

	for (i = 0; i < (ms > 0 ? ms : 1); i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		if (ms > 0)
			poll(&none, 0, 1);
	}
}

static int
cli_connect(const char *path)
{
	struct sockaddr_un sun;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		close(fd);
		return -errno;
	}
	pump(5); /* let the server accept */
	return fd;
}

static void
cli_raw(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;
	int tries = 0;

	while (len && tries < 100000) {
		n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno != EAGAIN)
				return;
			pump(0);
			tries++;
			continue;
		}
		p += n;
		len -= (size_t)n;
	}
}

static void
cli_send(int fd, unsigned type, uint32_t flags, uint32_t id, json_t *p)
{
	size_t len;
	uint8_t *m = ctl_msg_encode(type, flags, id, p, &len);

	if (m)
		cli_raw(fd, m, len);
	free(m);
	json_decref(p);
}

/* Read @len bytes, pumping the loop; -ECONNRESET on EOF, -ETIMEDOUT. */
static int
cli_read(int fd, void *buf, size_t len, int timeout_ms)
{
	size_t got = 0;
	ssize_t n;
	int waited = 0;

	while (got < len) {
		n = recv(fd, (char *)buf + got, len - got, MSG_DONTWAIT);
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		if (waited++ >= timeout_ms)
			return -ETIMEDOUT;
		pump(1);
	}
	return 0;
}

static int
cli_recv(int fd, struct ctl_hdr *h, json_t **p, int timeout_ms)
{
	uint8_t hb[CTL_HDR_SIZE];
	char *pl;
	int rc;

	*p = NULL;
	rc = cli_read(fd, hb, sizeof(hb), timeout_ms);
	if (rc < 0)
		return rc;
	rc = ctl_hdr_decode(hb, sizeof(hb), h);
	if (rc < 0)
		return rc;
	pl = malloc(h->length + 1);
	rc = cli_read(fd, pl, h->length, timeout_ms);
	if (rc == 0)
		rc = ctl_payload_decode(pl, h->length, p);
	free(pl);
	return rc;
}

/* Expect the server to close @fd (after any messages). */
static int
cli_closed(int fd, int timeout_ms)
{
	char b[4096];
	int rc;

	for (;;) {
		rc = cli_read(fd, b, sizeof(b), timeout_ms);
		if (rc == -ECONNRESET)
			return 1;
		if (rc < 0 && rc != 0) {
			/* Partial reads of the last messages: keep going
			 * until EOF or a real timeout. */
			if (rc == -ETIMEDOUT)
				return 0;
			return 1;
		}
	}
}

static int
err_of(const json_t *p)
{
	const char *m;
	int e;

	return ctl_error_decode(p, &e, &m) == 0 ? e : -1;
}

/* Send @type and expect a final reply; return its type (payload in *p). */
static unsigned
call(int fd, unsigned type, uint32_t id, json_t *args, json_t **p)
{
	struct ctl_hdr h;

	cli_send(fd, type, 0, id, args);
	if (cli_recv(fd, &h, p, 2000) < 0 || h.id != id)
		return 0;
	return h.type;
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */

static struct ctl_server *
start(void)
{
	int err = 0;
	struct ctl_server *s =
		ctl_server_new(base, sockpath, &handlers, NULL, &err);

	if (s)
		ctl_server_set_peer_hook(s, peer_hook, NULL);
	return s;
}

static void
test_listen(void)
{
	struct ctl_server *s, *s2;
	char sub[200], longp[200];
	struct stat st;
	int err = 0, fd;
	struct sockaddr_un sun;

	/* A stale socket: bound, then its owner died. */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sockpath);
	bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	close(fd);
	ok(stat(sockpath, &st) == 0 && S_ISSOCK(st.st_mode),
	   "a stale socket file exists");
	s = start();
	ok(s != NULL, "server replaces a stale socket");
	ok(stat(sockpath, &st) == 0 && (st.st_mode & 0777) == 0666,
	   "socket is mode 0666");
	s2 = ctl_server_new(base, sockpath, &handlers, NULL, &err);
	ok(!s2 && err == -EADDRINUSE, "a live socket is not stolen");
	ctl_server_free(s);
	ok(stat(sockpath, &st) < 0 && errno == ENOENT,
	   "ctl_server_free removes the socket");

	fd = open(sockpath, O_CREAT | O_WRONLY, 0600);
	close(fd);
	s = ctl_server_new(base, sockpath, &handlers, NULL, &err);
	ok(!s && err == -EEXIST, "a regular file is not removed");
	ok(stat(sockpath, &st) == 0 && S_ISREG(st.st_mode),
	   "the file is intact");
	unlink(sockpath);

	snprintf(sub, sizeof(sub), "%s/run/cairn/ctl.sock", tmpdir);
	s = ctl_server_new(base, sub, &handlers, NULL, &err);
	ok(s != NULL, "missing directories are created");
	snprintf(sub, sizeof(sub), "%s/run/cairn", tmpdir);
	{
		mode_t um = umask(0);

		umask(um);
		ok(stat(sub, &st) == 0 && (st.st_mode & 0777) == (0755 & ~um),
		   "directory is 0755 (less the umask)");
	}
	ctl_server_free(s);

	memset(longp, 'a', 150);
	longp[0] = '/';
	longp[150] = '\0';
	s = ctl_server_new(base, longp, &handlers, NULL, &err);
	ok(!s && err == -ENAMETOOLONG, "over-long socket path refused");
}

static void
test_dispatch(struct ctl_server *s)
{
	struct ctl_stats st;
	struct ctl_hdr h;
	json_t *p = NULL;
	uint8_t two[2 * (CTL_HDR_SIZE + 8)];
	size_t l1, l2;
	uint8_t *m;
	int fd = cli_connect(sockpath);

	ok(fd >= 0, "client connects");
	is_int(call(fd, CTL_STATUS, 7, NULL, &p), CTL_OK, "status answered OK");
	is_str(json_string_value(json_object_get(p, "mode")), "connected",
	       "with the handler's result");
	json_decref(p);

	is_int(call(fd, CTL_GETCACHEPARMS, 8, NULL, &p), CTL_OK,
	       "getcacheparms");
	ok(json_integer_value(json_object_get(p, "uid")) ==
			   (json_int_t)getuid() &&
		   json_integer_value(json_object_get(p, "pid")) ==
			   (json_int_t)getpid(),
	   "handler sees the peer's uid and pid (SO_PEERCRED)");
	ok(json_integer_value(json_object_get(p, "ngroups")) ==
		   (json_int_t)getgroups(0, NULL),
	   "and its supplementary groups");
	json_decref(p);

	is_int(call(fd, CTL_LISTVOL, 9, NULL, &p), CTL_ERROR,
	       "no handler: error");
	is_int(err_of(p), ENOSYS, "ENOSYS");
	json_decref(p);

	handler_calls = 0;
	is_int(call(fd, CTL_PIN, 10, json_pack("{s:s}", "path", "/etc"), &p),
	       CTL_ERROR, "absolute path refused");
	is_int(err_of(p), EINVAL, "EINVAL");
	ok(strstr(json_string_value(json_object_get(p, "message")),
		  "relative") != NULL,
	   "message says why");
	json_decref(p);
	is_int(call(fd, CTL_PIN, 11,
		    json_pack("{s:s, s:i}", "path", "a", "depth", 3), &p),
	       CTL_ERROR, "unknown argument refused");
	json_decref(p);
	is_int(handler_calls, 0, "the handler never saw bad arguments");

	/* A frame that is fine around a payload that is not JSON. */
	{
		struct ctl_hdr bh = {CTL_MAGIC, CTL_VERSION, CTL_STATUS,
				     0,		5,	     12};
		uint8_t b[CTL_HDR_SIZE + 5];

		ctl_hdr_encode(&bh, b);
		memcpy(b + CTL_HDR_SIZE, "{nope", 5);
		cli_raw(fd, b, sizeof(b));
		ok(cli_recv(fd, &h, &p, 2000) == 0 && h.type == CTL_ERROR &&
			   h.id == 12 && err_of(p) == EINVAL,
		   "bad JSON: EINVAL for that id");
		json_decref(p);
		bh.id = 0;
		bh.length = 0;
		ctl_hdr_encode(&bh, b);
		cli_raw(fd, b, CTL_HDR_SIZE);
		ok(cli_recv(fd, &h, &p, 2000) == 0 && h.type == CTL_ERROR &&
			   h.id == 0 && err_of(p) == EINVAL,
		   "request id 0: EINVAL");
		json_decref(p);
	}
	is_int(call(fd, CTL_STATUS, 13, NULL, &p), CTL_OK,
	       "connection still serves after bad requests");
	json_decref(p);

	/* Two requests in one write. */
	m = ctl_msg_encode(CTL_STATUS, 0, 20, NULL, &l1);
	memcpy(two, m, l1);
	free(m);
	m = ctl_msg_encode(CTL_STATUS, 0, 21, NULL, &l2);
	memcpy(two + l1, m, l2);
	free(m);
	cli_raw(fd, two, l1 + l2);
	ok(cli_recv(fd, &h, &p, 2000) == 0 && h.id == 20, "pipelined 1");
	json_decref(p);
	ok(cli_recv(fd, &h, &p, 2000) == 0 && h.id == 21, "pipelined 2");
	json_decref(p);

	is_int(call(fd, CTL_EXAMINE, 22, json_pack("{s:s}", "path", "f"), &p),
	       CTL_ERROR, "reply over 1 MiB becomes an error");
	is_int(err_of(p), EMSGSIZE, "EMSGSIZE");
	json_decref(p);

	is_int(call(fd, CTL_WHEREIS, 23, json_pack("{s:s}", "path", "f"), &p),
	       CTL_ERROR, "error with detail");
	ok(err_of(p) == ENOSPC && json_integer_value(json_object_get(
					  p, "bytes_short")) == 12345,
	   "detail members added, errno not overridden");
	json_decref(p);

	ctl_server_get_stats(s, &st);
	ok(st.calls >= 6 && st.bad_requests >= 5 && st.conns_open == 1,
	   "stats count calls and bad requests");
	close(fd);
	pump(20);
}

static void
test_async(struct ctl_server *s)
{
	struct ctl_hdr h;
	json_t *p = NULL;
	int fd = cli_connect(sockpath), rc;

	nparked = 0;
	cli_send(fd, CTL_PIN, CTL_FL_PROGRESS, 30,
		 json_pack("{s:s, s:b}", "path", "d", "recursive", 1));
	pump(20);
	is_int(nparked, 1, "pin parked by its handler");
	rc = ctl_progress(parked[0], json_pack("{s:i, s:i}", "bytes_done", 10,
					       "bytes_total", 100));
	is_int(rc, 0, "progress queued");
	ctl_progress(parked[0], json_pack("{s:i, s:i}", "bytes_done", 50,
					  "bytes_total", 100));
	ok(cli_recv(fd, &h, &p, 2000) == 0 && h.type == CTL_PROGRESS &&
		   h.id == 30 &&
		   json_integer_value(json_object_get(p, "bytes_done")) == 10,
	   "first progress arrives with the request id");
	json_decref(p);
	ok(cli_recv(fd, &h, &p, 2000) == 0 && h.type == CTL_PROGRESS &&
		   json_integer_value(json_object_get(p, "bytes_done")) == 50,
	   "second progress");
	json_decref(p);
	ok(!ctl_call_cancelled(parked[0]) &&
		   ctl_call_type(parked[0]) == CTL_PIN &&
		   ctl_call_peer(parked[0])->pid == getpid(),
	   "call accessors");
	ctl_reply_ok(unpark(0), json_pack("{s:i}", "files", 3));
	ok(cli_recv(fd, &h, &p, 2000) == 0 && h.type == CTL_OK && h.id == 30 &&
		   json_integer_value(json_object_get(p, "files")) == 3,
	   "async final reply");
	json_decref(p);

	/* Without CTL_FL_PROGRESS, progress is silently not sent. */
	cli_send(fd, CTL_PIN, 0, 31, json_pack("{s:s}", "path", "d"));
	pump(20);
	is_int(ctl_progress(parked[0], json_pack("{s:i}", "bytes_done", 1)), 0,
	       "unwanted progress is not an error");
	/* Answer two calls out of order. */
	cli_send(fd, CTL_PIN, 0, 32, json_pack("{s:s}", "path", "e"));
	pump(20);
	is_int(nparked, 2, "two calls pending on one connection");
	ctl_reply_err(unpark(1), ENOENT, "no such file");
	ctl_reply_ok(unpark(0), NULL);
	ok(cli_recv(fd, &h, &p, 2000) == 0 && h.id == 32 &&
		   h.type == CTL_ERROR && err_of(p) == ENOENT,
	   "second call answered first");
	json_decref(p);
	ok(cli_recv(fd, &h, &p, 2000) == 0 && h.id == 31 && h.type == CTL_OK &&
		   json_object_size(p) == 0,
	   "then the first, no progress before it; NULL result is {}");
	json_decref(p);
	close(fd);
	pump(20);
}

static void
test_root(struct ctl_server *s)
{
	json_t *p = NULL;
	pid_t pid;
	int fd, status;

	fake_uid = 65534;
	fd = cli_connect(sockpath);
	handler_calls = 0;
	is_int(call(fd, CTL_SETCACHESIZE, 40,
		    json_pack("{s:I}", "bytes", (json_int_t)1 << 30), &p),
	       CTL_ERROR, "non-root setcachesize refused");
	is_int(err_of(p), EPERM, "EPERM");
	json_decref(p);
	is_int(call(fd, CTL_FLUSHALL, 41, NULL, &p), CTL_ERROR,
	       "non-root flushall refused");
	json_decref(p);
	is_int(call(fd, CTL_DISCONNECT, 42, NULL, &p), CTL_ERROR,
	       "non-root disconnect refused (before ENOSYS)");
	is_int(err_of(p), EPERM, "EPERM, not ENOSYS");
	json_decref(p);
	is_int(handler_calls, 0, "no root-only handler ran");
	is_int(call(fd, CTL_STATUS, 43, NULL, &p), CTL_OK,
	       "non-root may ask for status");
	json_decref(p);
	close(fd);
	fake_uid = -1;

	if (getuid() == 0) {
		fd = cli_connect(sockpath);
		is_int(call(fd, CTL_SETCACHESIZE, 44,
			    json_pack("{s:I}", "bytes", (json_int_t)1 << 30),
			    &p),
		       CTL_OK, "root may setcachesize");
		json_decref(p);
		close(fd);
	} else
		skip(1, "not root");

	/* The real thing: a child that is really uid 65534. */
	if (getuid() != 0) {
		skip(1, "setuid child needs root");
		return;
	}
	pid = fork();
	if (pid == 0) {
		struct ctl_hdr h;
		uint8_t hb[CTL_HDR_SIZE], pl[4096];
		json_t *j = NULL;
		size_t len;
		uint8_t *m;
		int cfd, e = -1;
		struct sockaddr_un sun;
		const char *msg;

		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(2);
		cfd = socket(AF_UNIX, SOCK_STREAM, 0);
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sockpath);
		if (connect(cfd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
			_exit(3);
		j = json_pack("{s:I}", "bytes", (json_int_t)1 << 20);
		m = ctl_msg_encode(CTL_SETCACHESIZE, 0, 1, j, &len);
		if (write(cfd, m, len) != (ssize_t)len)
			_exit(4);
		if (read(cfd, hb, sizeof(hb)) != sizeof(hb) ||
		    ctl_hdr_decode(hb, sizeof(hb), &h) < 0 ||
		    h.length > sizeof(pl) ||
		    read(cfd, pl, h.length) != (ssize_t)h.length)
			_exit(5);
		json_decref(j);
		if (ctl_payload_decode(pl, h.length, &j) < 0 ||
		    ctl_error_decode(j, &e, &msg) < 0)
			_exit(6);
		_exit(h.type == CTL_ERROR && e == EPERM ? 0 : 7);
	}
	status = -1;
	for (int i = 0; i < 5000; i++) {
		pump(1);
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
	}
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	   "a real uid-65534 client gets EPERM for setcachesize (status %d)",
	   status);
}

static void
bad_frame(const char *what, uint32_t magic, uint16_t ver, uint16_t type,
	  uint32_t flags, uint32_t len, int want_err)
{
	struct ctl_hdr h = {magic, ver, type, flags, len, 5}, g;
	uint8_t b[CTL_HDR_SIZE];
	json_t *p = NULL;
	int fd = cli_connect(sockpath);

	ctl_hdr_encode(&h, b);
	cli_raw(fd, b, sizeof(b));
	ok(cli_recv(fd, &g, &p, 2000) == 0 && g.type == CTL_ERROR &&
		   g.id == 0 && err_of(p) == want_err,
	   "%s: error reply, id 0", what);
	json_decref(p);
	ok(cli_closed(fd, 2000), "%s: then closed", what);
	close(fd);
}

static void
test_malformed(struct ctl_server *s)
{
	struct ctl_stats st;
	json_t *p = NULL;
	int good, fd;
	char junk[65536];
	size_t i;

	good = cli_connect(sockpath);
	bad_frame("bad magic", 0x48545450, 1, CTL_STATUS, 0, 0, EBADMSG);
	bad_frame("version 9", CTL_MAGIC, 9, CTL_STATUS, 0, 0, EPROTONOSUPPORT);
	bad_frame("oversized", CTL_MAGIC, 1, CTL_PIN, 0, CTL_PAYLOAD_MAX + 1,
		  EMSGSIZE);
	bad_frame("4 GiB length", CTL_MAGIC, 1, CTL_PIN, 0, 0xffffffffu,
		  EMSGSIZE);
	bad_frame("unknown type", CTL_MAGIC, 1, 999, 0, 0, EOPNOTSUPP);
	bad_frame("reply type as request", CTL_MAGIC, 1, CTL_OK, 0, 0,
		  EOPNOTSUPP);
	bad_frame("bad flags", CTL_MAGIC, 1, CTL_STATUS, 0x10, 0, EINVAL);

	/* Garbage: "GET / HTTP/1.1" and 64 KiB of noise. */
	fd = cli_connect(sockpath);
	for (i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 7 + 3);
	memcpy(junk, "GET / HTTP/1.1\r\n", 16);
	cli_raw(fd, junk, sizeof(junk));
	ok(cli_closed(fd, 2000), "garbage: closed");
	close(fd);

	/* Truncated: a header promising 100 bytes, 10 sent, then gone. */
	fd = cli_connect(sockpath);
	{
		struct ctl_hdr h = {CTL_MAGIC, 1, CTL_STATUS, 0, 100, 6};
		uint8_t b[CTL_HDR_SIZE + 10];

		ctl_hdr_encode(&h, b);
		memcpy(b + CTL_HDR_SIZE, "{\"a\":\"bbbb", 10);
		handler_calls = 0;
		cli_raw(fd, b, sizeof(b));
		pump(20);
		close(fd);
		pump(20);
		is_int(handler_calls, 0, "truncated payload: no handler ran");
	}
	/* A truncated header alone, client gone. */
	fd = cli_connect(sockpath);
	cli_raw(fd, "CRN", 3);
	pump(10);
	close(fd);
	pump(20);

	is_int(call(good, CTL_STATUS, 50, NULL, &p), CTL_OK,
	       "a connection opened before the bad ones still works");
	json_decref(p);
	fd = cli_connect(sockpath);
	is_int(call(fd, CTL_STATUS, 51, NULL, &p), CTL_OK,
	       "and new connections are served");
	json_decref(p);
	close(fd);
	close(good);
	pump(20);
	ctl_server_get_stats(s, &st);
	ok(st.bad_frames >= 8, "bad frames counted (%llu)",
	   (unsigned long long)st.bad_frames);
	is_int(st.conns_open, 0, "every connection was freed");
}

static void
test_disconnect(struct ctl_server *s)
{
	struct ctl_call *c;
	struct ctl_stats st;
	int fd = cli_connect(sockpath);

	nparked = 0;
	cancelled_seen = 0;
	cli_send(fd, CTL_FLUSH, CTL_FL_PROGRESS, 60,
		 json_pack("{s:s}", "path", "f"));
	pump(20);
	is_int(nparked, 1, "flush parked");
	ctl_server_get_stats(s, &st);
	is_int(st.calls_pending, 1, "one call pending");
	close(fd);
	pump(30);
	is_int(cancelled_seen, 1, "client gone: cancel callback ran once");
	c = unpark(0);
	ok(ctl_call_cancelled(c), "call reports cancelled");
	is_int(ctl_progress(c, json_pack("{s:i}", "bytes_done", 1)), -ECANCELED,
	       "progress on a cancelled call: -ECANCELED");
	ctl_reply_ok(c, json_pack("{s:i}", "x", 1));
	ok(1, "answering a cancelled call is safe");
	ctl_server_get_stats(s, &st);
	is_int(st.calls_pending, 0, "nothing pending");
	is_int(st.conns_open, 0, "connection freed");
}

static void
test_limits(struct ctl_server *s)
{
	struct ctl_limits lim, saved;
	struct ctl_hdr h;
	json_t *p = NULL;
	int fd, fd2, i;

	ctl_server_get_limits(s, &saved);
	lim = saved;
	lim.max_pending = 2;
	ctl_server_set_limits(s, &lim);
	nparked = 0;
	fd = cli_connect(sockpath);
	for (i = 0; i < 3; i++)
		cli_send(fd, CTL_PIN, 0, (uint32_t)(70 + i),
			 json_pack("{s:s}", "path", "p"));
	pump(30);
	is_int(nparked, 2, "reading pauses at max_pending");
	ctl_reply_ok(unpark(0), NULL);
	pump(30);
	is_int(nparked, 2, "answering one lets the third in");
	ok(cli_recv(fd, &h, &p, 2000) == 0 && h.id == 70, "first answered");
	json_decref(p);
	while (nparked)
		ctl_reply_ok(unpark(0), NULL);
	for (i = 0; i < 2; i++) {
		cli_recv(fd, &h, &p, 2000);
		json_decref(p);
	}
	close(fd);
	pump(20);

	lim = saved;
	lim.max_conns = 1;
	ctl_server_set_limits(s, &lim);
	fd = cli_connect(sockpath);
	fd2 = cli_connect(sockpath);
	ok(cli_recv(fd2, &h, &p, 2000) == 0 && h.type == CTL_ERROR &&
		   err_of(p) == EBUSY,
	   "over max_conns: EBUSY");
	json_decref(p);
	ok(cli_closed(fd2, 2000), "and closed");
	close(fd2);
	is_int(call(fd, CTL_STATUS, 80, NULL, &p), CTL_OK,
	       "the first connection is unaffected");
	json_decref(p);
	close(fd);
	pump(20);

	lim = saved;
	lim.idle_timeout_ms = 100;
	ctl_server_set_limits(s, &lim);
	fd = cli_connect(sockpath);
	cli_raw(fd, "CRNC", 4); /* half a header, then silence */
	ok(cli_closed(fd, 3000), "an idle half-sent request times out");
	close(fd);

	/* A pending call suspends the idle timeout. */
	nparked = 0;
	fd = cli_connect(sockpath);
	cli_send(fd, CTL_PIN, 0, 90, json_pack("{s:s}", "path", "slow"));
	pump(300);
	ok(nparked == 1 && !ctl_call_cancelled(parked[0]),
	   "a long call is not timed out");
	ctl_reply_ok(unpark(0), NULL);
	ok(cli_recv(fd, &h, &p, 2000) == 0 && h.id == 90, "its answer arrives");
	json_decref(p);
	close(fd);
	ctl_server_set_limits(s, &saved);
	pump(20);
}

/* Per-uid caps (issue #12, Medium 5): one user cannot take the socket. */
static void
test_uid_caps(struct ctl_server *s)
{
	struct ctl_limits lim, saved;
	struct ctl_hdr h;
	json_t *p = NULL;
	const char *msg = "";
	int fds[16], extra, other, rootfd, e = 0, i;

	ctl_server_get_limits(s, &saved);
	is_int(saved.max_conns_per_uid, 8, "default: 8 connections per uid");

	fake_uid = 1000;
	for (i = 0; i < 8; i++)
		fds[i] = cli_connect(sockpath);
	is_int(call(fds[7], CTL_STATUS, 100, NULL, &p), CTL_OK,
	       "the 8th connection of uid 1000 is served");
	json_decref(p);
	extra = cli_connect(sockpath);
	ok(cli_recv(extra, &h, &p, 2000) == 0 && h.type == CTL_ERROR &&
		   h.id == 0 && ctl_error_decode(p, &e, &msg) == 0 &&
		   e == EBUSY,
	   "the 9th connection of uid 1000: EBUSY");
	ok(strstr(msg, "uid 1000") && strstr(msg, "per user"),
	   "with a message naming the uid and the cap ('%s')", msg);
	json_decref(p);
	ok(cli_closed(extra, 2000), "and closed");
	close(extra);

	fake_uid = 1001;
	other = cli_connect(sockpath);
	is_int(call(other, CTL_STATUS, 101, NULL, &p), CTL_OK,
	       "uid 1001 still gets through");
	json_decref(p);
	fake_uid = -1;
	rootfd = cli_connect(sockpath);
	is_int(call(rootfd, CTL_STATUS, 102, NULL, &p), CTL_OK,
	       "root still gets through");
	json_decref(p);
	is_int(call(fds[0], CTL_STATUS, 103, NULL, &p), CTL_OK,
	       "uid 1000's open connections are unaffected");
	json_decref(p);

	/* Closing one lets uid 1000 in again. */
	close(fds[0]);
	pump(20);
	fake_uid = 1000;
	fds[0] = cli_connect(sockpath);
	is_int(call(fds[0], CTL_STATUS, 104, NULL, &p), CTL_OK,
	       "after closing one, uid 1000 connects again");
	json_decref(p);
	for (i = 0; i < 8; i++)
		close(fds[i]);
	close(other);
	close(rootfd);
	pump(20);

	/* Many users together may not take the root reserve. */
	lim = saved;
	lim.max_conns = CTL_ROOT_RESERVE + 3;
	lim.max_conns_per_uid = 0;
	ctl_server_set_limits(s, &lim);
	for (i = 0; i < 3; i++) {
		fake_uid = 2000 + i;
		fds[i] = cli_connect(sockpath);
	}
	fake_uid = 2010;
	extra = cli_connect(sockpath);
	ok(cli_recv(extra, &h, &p, 2000) == 0 && h.type == CTL_ERROR &&
		   err_of(p) == EBUSY,
	   "users cannot take the connections kept for root");
	json_decref(p);
	close(extra);
	fake_uid = -1;
	rootfd = cli_connect(sockpath);
	is_int(call(rootfd, CTL_STATUS, 105, NULL, &p), CTL_OK,
	       "root gets one of the reserved connections");
	json_decref(p);
	close(rootfd);
	for (i = 0; i < 3; i++)
		close(fds[i]);
	ctl_server_set_limits(s, &saved);
	pump(20);
}

static void
test_timeout_clamp(void)
{
	json_t *a;

	a = json_object();
	is_int(ctl_timeout_ms(a, "timeout_ms", 5000), 5000,
	       "timeout absent: the default");
	json_decref(a);
	a = json_pack("{s:I}", "timeout_ms", (json_int_t)0);
	is_int(ctl_timeout_ms(a, "timeout_ms", 5000), 5000, "0: the default");
	json_decref(a);
	a = json_pack("{s:I}", "timeout_ms", (json_int_t)1500);
	is_int(ctl_timeout_ms(a, "timeout_ms", 5000), 1500,
	       "a small timeout is kept");
	json_decref(a);
	a = json_pack("{s:I}", "timeout_ms", (json_int_t)UINT32_MAX);
	is_int(ctl_timeout_ms(a, "timeout_ms", 5000), CTL_TIMEOUT_MAX_MS,
	       "4294967295 ms is clamped to %u", CTL_TIMEOUT_MAX_MS);
	json_decref(a);
	a = json_pack("{s:I}", "timeout_ms", (json_int_t)CTL_TIMEOUT_MAX_MS);
	is_int(ctl_timeout_ms(a, "timeout_ms", 5000), CTL_TIMEOUT_MAX_MS,
	       "the maximum itself is allowed");
	json_decref(a);
	a = json_pack("{s:s}", "timeout_ms", "forever");
	is_int(ctl_timeout_ms(a, "timeout_ms", 5000), 5000,
	       "not an integer: the default");
	json_decref(a);
	is_int(ctl_timeout_ms(NULL, "timeout_ms", 999999), CTL_TIMEOUT_MAX_MS,
	       "a default above the maximum is clamped too");
}

static void
test_free_pending(void)
{
	struct ctl_server *s = start();
	int fd = cli_connect(sockpath);

	nparked = 0;
	cancelled_seen = 0;
	cli_send(fd, CTL_FLUSH, 0, 99, json_pack("{s:s}", "path", "f"));
	pump(20);
	is_int(nparked, 1, "call pending at server free");
	ctl_server_free(s);
	is_int(cancelled_seen, 1, "freeing the server cancels it");
	ctl_reply_ok(unpark(0), NULL);
	ok(1, "answering after ctl_server_free is safe");
	ok(cli_closed(fd, 500), "client sees the close");
	close(fd);
}

/* The /proc/PID/status fallback (no SO_PEERGROUPS): the groups count
 * only when the process there still has the peer's effective ids. */
static void
test_peer_groups_parse(void)
{
	static const char same[] = "Name:\tx\nUid:\t1000\t1000\t1000\t1000\n"
				   "Gid:\t100\t100\t100\t100\n"
				   "Groups:\t100 200 300 \n";
	static const char other[] = "Name:\tx\nUid:\t2000\t2000\t2000\t2000\n"
				    "Gid:\t100\t100\t100\t100\n"
				    "Groups:\t0 10 27 \n";
	static const char othergid[] = "Uid:\t1000\t1000\t1000\t1000\n"
				       "Gid:\t100\t500\t500\t500\n"
				       "Groups:\t500 \n";
	static const char noids[] = "Groups:\t0 10\n";
	struct ctl_peer u = {.uid = 1000, .gid = 100, .pid = 1};
	FILE *f;

	f = fmemopen((void *)same, sizeof(same) - 1, "r");
	is_int(ctl_peer_groups_parse(&u, f), 0, "status of the peer's ids");
	fclose(f);
	ok(u.ngroups == 3 && u.groups[0] == 100 && u.groups[2] == 300,
	   "its groups are taken (%zu)", u.ngroups);
	f = fmemopen((void *)other, sizeof(other) - 1, "r");
	is_int(ctl_peer_groups_parse(&u, f), -ESRCH,
	       "a reused pid of another uid: ESRCH");
	fclose(f);
	ok(u.ngroups == 0, "and no groups at all (not root's 0, 10, 27)");
	f = fmemopen((void *)othergid, sizeof(othergid) - 1, "r");
	is_int(ctl_peer_groups_parse(&u, f), -ESRCH,
	       "another effective gid: ESRCH");
	fclose(f);
	ok(u.ngroups == 0, "no groups");
	f = fmemopen((void *)noids, sizeof(noids) - 1, "r");
	is_int(ctl_peer_groups_parse(&u, f), -ESRCH,
	       "no Uid:/Gid: lines: ESRCH");
	fclose(f);
}

static void
test_peer_may(void)
{
	struct ctl_peer u = {.uid = 1000,
			     .gid = 100,
			     .pid = 1,
			     .ngroups = 1,
			     .groups = {200}};
	struct ctl_peer root = {.uid = 0, .gid = 0};

	is_int(ctl_peer_may(&u, 0400, 1000, 5, R_OK), 0, "owner may read 0400");
	is_int(ctl_peer_may(&u, 0200, 1000, 5, R_OK), -EACCES,
	       "owner may not read 0200");
	is_int(ctl_peer_may(&u, 0044, 1000, 100, R_OK), -EACCES,
	       "owner class wins over group and other");
	is_int(ctl_peer_may(&u, 0040, 7, 100, R_OK), 0, "primary group");
	is_int(ctl_peer_may(&u, 0040, 7, 200, R_OK), 0, "supplementary group");
	is_int(ctl_peer_may(&u, 0040, 7, 300, R_OK), -EACCES, "other group");
	is_int(ctl_peer_may(&u, 0004, 7, 300, R_OK), 0, "other may read");
	is_int(ctl_peer_may(&u, 0005, 7, 300, R_OK | X_OK), 0, "r+x");
	is_int(ctl_peer_may(&u, 0004, 7, 300, R_OK | W_OK), -EACCES,
	       "r but not w");
	is_int(ctl_peer_may(&root, 0000, 7, 7, R_OK | W_OK), 0,
	       "root reads and writes mode 0");
	is_int(ctl_peer_may(&root, S_IFREG | 0600, 7, 7, X_OK), -EACCES,
	       "root may not execute a file with no x bit");
	is_int(ctl_peer_may(&root, S_IFREG | 0100, 7, 7, X_OK), 0,
	       "root executes if any x bit");
	is_int(ctl_peer_may(&root, S_IFDIR | 0700, 7, 7, X_OK), 0,
	       "root searches any directory");
}

int
main(void)
{
	struct ctl_server *s;

	signal(SIGPIPE, SIG_IGN);
	log_init("test_ctl", 0, LOG_ERR);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/cairn-test-ctl-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	/* Searchable, so the setuid child can reach the socket. */
	chmod(tmpdir, 0755);
	snprintf(sockpath, sizeof(sockpath), "%s/ctl.sock", tmpdir);
	base = event_base_new();

	test_listen();
	s = start();
	ok(s != NULL, "server starts");
	if (!s)
		return done_testing();
	test_dispatch(s);
	test_async(s);
	test_root(s);
	test_malformed(s);
	test_disconnect(s);
	test_limits(s);
	test_uid_caps(s);
	ctl_server_free(s);
	test_free_pending();
	test_peer_may();
	test_peer_groups_parse();
	test_timeout_clamp();

	event_base_free(base);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			diag("cannot remove %s", tmpdir);
	}
	return done_testing();
}
