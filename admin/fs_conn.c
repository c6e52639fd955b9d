/*
 * fs_conn.c - how fs finds cairnd and talks to it: the cairn mount that
 * holds a path (from /proc/self/mountinfo), the mount's control socket,
 * and one blocking request/reply exchange with a bounded wait.
 *
 * Replies come from a local daemon but are still checked like any input:
 * frame limits, the request id, the reply's type; a malformed reply is an
 * error (exit 70), never a crash.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "admin/fs.h"
#include "common/util.h"

#define FSTYPE	   "fuse.cairn"
#define MOUNTS_MAX 4096

struct mnt {
	char *dir;
	char *fstype;
	char *source;
};

struct mnt_table {
	struct mnt *m;
	size_t n;
};

void
fs_result_release(struct fs_result *r)
{
	json_decref(r->json);
	r->json = NULL;
}

static int set_err(struct fs_result *r, int err, int local, const char *fmt,
		   ...) __attribute__((format(printf, 4, 5)));
static int
set_err(struct fs_result *r, int err, int local, const char *fmt, ...)
{
	va_list ap;

	r->err = err;
	r->local = local;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
	va_end(ap);
	return -err;
}

/* ------------------------------------------------------------------ */
/* Mounts                                                              */

/* Undo mountinfo's octal escapes (\040 for a space) in place. */
static void
unescape(char *s)
{
	char *d = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				      (s[3] - '0'));
			s += 4;
		} else
			*d++ = *s++;
	}
	*d = '\0';
}

static void
mnt_free(struct mnt_table *t)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		free(t->m[i].dir);
		free(t->m[i].fstype);
		free(t->m[i].source);
	}
	free(t->m);
	t->m = NULL;
	t->n = 0;
}

/*
 * Read the mount table. A mountinfo line is
 *   ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE
 * SUPER Lines we cannot parse are skipped: they cannot be cairn mounts we know.
 */
static int
mnt_load(struct mnt_table *t)
{
	const char *path = getenv("CAIRN_MOUNTINFO");
	char *line = NULL, *f[6], *sep, *save, *fst, *src;
	size_t cap = 0;
	struct mnt *m;
	FILE *fp;
	int i, rc = 0;

	t->m = NULL;
	t->n = 0;
	fp = fopen(path && *path ? path : "/proc/self/mountinfo", "re");
	if (!fp)
		return -errno;
	while (getline(&line, &cap, fp) > 0 && t->n < MOUNTS_MAX) {
		line[strcspn(line, "\n")] = '\0';
		sep = strstr(line, " - ");
		if (!sep)
			continue;
		*sep = '\0';
		fst = strtok_r(sep + 3, " ", &save);
		src = fst ? strtok_r(NULL, " ", &save) : NULL;
		for (i = 0; i < 6; i++)
			f[i] = strtok_r(i ? NULL : line, " ", &save);
		if (!fst || !f[4] || f[4][0] != '/')
			continue;
		m = realloc(t->m, (t->n + 1) * sizeof(*m));
		if (!m) {
			rc = -ENOMEM;
			break;
		}
		t->m = m;
		m = &t->m[t->n];
		unescape(f[4]);
		unescape(fst);
		if (src)
			unescape(src);
		m->dir = strdup(f[4]);
		m->fstype = strdup(fst);
		m->source = strdup(src ? src : "");
		t->n++;
		if (!m->dir || !m->fstype || !m->source) {
			rc = -ENOMEM;
			break;
		}
	}
	free(line);
	fclose(fp);
	if (rc < 0)
		mnt_free(t);
	return rc;
}

/* Length of @dir if it is @path or a parent of it, else 0. */
static size_t
prefix_len(const char *dir, const char *path)
{
	size_t n = strlen(dir);

	if (n == 1 && dir[0] == '/')
		return 1;
	if (strncmp(dir, path, n) || (path[n] != '\0' && path[n] != '/'))
		return 0;
	return n;
}

/* The mount that holds canonical @path: the last, longest match (a later
 * mount over the same directory hides an earlier one). */
static const struct mnt *
mnt_find(const struct mnt_table *t, const char *path)
{
	const struct mnt *best = NULL;
	size_t i, n, bestn = 0;

	for (i = 0; i < t->n; i++) {
		n = prefix_len(t->m[i].dir, path);
		if (n && n >= bestn) {
			best = &t->m[i];
			bestn = n;
		}
	}
	return best;
}

static int
is_cairn(const struct mnt *m)
{
	return m && !strcmp(m->fstype, FSTYPE);
}

static void
target_fill(struct fs_target *t, const char *dir, const char *source)
{
	snprintf(t->mount, sizeof(t->mount), "%s", dir);
	t->volume[0] = '\0';
	if (source && !strncmp(source, "cairn:", 6))
		snprintf(t->volume, sizeof(t->volume), "%s", source + 6);
}

static int
target_socket(const struct fs_ctx *ctx, struct fs_target *t,
	      struct fs_result *r)
{
	int rc;

	if (ctx->socket) {
		if (strlen(ctx->socket) >= sizeof(t->sock))
			return set_err(r, ENAMETOOLONG, 1,
				       "socket path '%s' is too long",
				       ctx->socket);
		strcpy(t->sock, ctx->socket);
		return 0;
	}
	rc = ctl_socket_path(t->mount, t->sock, sizeof(t->sock));
	if (rc < 0)
		return set_err(r, -rc, 1,
			       "cannot name the control socket of "
			       "%s: %s",
			       t->mount, strerror(-rc));
	return 0;
}

/* realpath() with errors worth reading. */
static int
canon(const char *path, char *out, struct fs_result *r)
{
	char *p = realpath(path, NULL);
	int err;

	if (!p) {
		err = errno;
		if (err == ENOTCONN)
			return set_err(r, err, 1,
				       "%s: the mount's cairnd is gone "
				       "(transport endpoint is not connected)",
				       path);
		return set_err(r, err, 1, "%s: %s", path, strerror(err));
	}
	if (strlen(p) >= PATH_MAX) {
		free(p);
		return set_err(r, ENAMETOOLONG, 1, "%s: %s", path,
			       strerror(ENAMETOOLONG));
	}
	strcpy(out, p);
	free(p);
	return 0;
}

/* As canon(), but the last component is taken as it is, not followed:
 * the name a conflict is about may be a dangling symlink, or gone. */
static int
canon_parent(const char *path, char *out, struct fs_result *r)
{
	char dir[PATH_MAX], real[PATH_MAX];
	const char *slash = strrchr(path, '/'), *base;
	int rc;

	base = slash ? slash + 1 : path;
	if (!*base || !strcmp(base, ".") || !strcmp(base, "..") ||
	    strlen(path) >= sizeof(dir))
		return canon(path, out, r);
	if (!slash)
		strcpy(dir, ".");
	else if (slash == path)
		strcpy(dir, "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	rc = canon(dir, real, r);
	if (rc < 0)
		return rc;
	if (strlen(real) + 1 + strlen(base) >= PATH_MAX)
		return set_err(r, ENAMETOOLONG, 1, "%s: %s", path,
			       strerror(ENAMETOOLONG));
	if (snprintf(out, PATH_MAX, "%s%s%s", real,
		     real[strlen(real) - 1] == '/' ? "" : "/",
		     base) >= PATH_MAX)
		return set_err(r, ENAMETOOLONG, 1, "%s: %s", path,
			       strerror(ENAMETOOLONG));
	return 0;
}

int
fs_target_path(const struct fs_ctx *ctx, const char *path, struct fs_target *t,
	       struct fs_result *r)
{
	struct mnt_table tab;
	const struct mnt *m;
	char real[PATH_MAX], mdir[PATH_MAX];
	const char *rest;
	size_t n;
	int rc;

	memset(t, 0, sizeof(*t));
	rc = ctx->nofollow ? canon_parent(path, real, r) : canon(path, real, r);
	if (rc < 0)
		return rc;
	rc = mnt_load(&tab);
	if (rc < 0)
		return set_err(r, -rc, 1, "cannot read the mount table: %s",
			       strerror(-rc));
	if (ctx->mount) {
		rc = canon(ctx->mount, mdir, r);
		if (rc < 0)
			goto out;
		m = mnt_find(&tab, mdir);
		if (!ctx->socket &&
		    (!is_cairn(m) || strcmp(m->dir, mdir) != 0)) {
			rc = set_err(r, EINVAL, 1, "%s is not a cairn mount",
				     ctx->mount);
			goto out;
		}
		if (!prefix_len(mdir, real)) {
			rc = set_err(r, EINVAL, 1, "%s is not under %s", path,
				     mdir);
			goto out;
		}
		target_fill(t, mdir, is_cairn(m) ? m->source : NULL);
	} else {
		m = mnt_find(&tab, real);
		if (!is_cairn(m)) {
			rc = set_err(r, EINVAL, 1, "%s is not on a cairn mount",
				     path);
			goto out;
		}
		target_fill(t, m->dir, m->source);
	}
	n = strlen(t->mount);
	rest = real + (n == 1 ? 0 : n);
	while (*rest == '/')
		rest++;
	snprintf(t->rel, sizeof(t->rel), "%s", *rest ? rest : ".");
	rc = target_socket(ctx, t, r);
out:
	mnt_free(&tab);
	return rc;
}

int
fs_target_default(const struct fs_ctx *ctx, struct fs_target *t,
		  struct fs_result *r)
{
	struct mnt_table tab;
	const struct mnt *m, *only = NULL;
	char mdir[PATH_MAX], list[768];
	size_t i, ncairn = 0, used = 0;
	int rc;

	memset(t, 0, sizeof(*t));
	if (ctx->socket && !ctx->mount)
		return target_socket(ctx, t, r);
	rc = mnt_load(&tab);
	if (rc < 0)
		return set_err(r, -rc, 1, "cannot read the mount table: %s",
			       strerror(-rc));
	if (ctx->mount) {
		rc = canon(ctx->mount, mdir, r);
		if (rc < 0)
			goto out;
		m = mnt_find(&tab, mdir);
		if (!ctx->socket &&
		    (!is_cairn(m) || strcmp(m->dir, mdir) != 0)) {
			rc = set_err(r, EINVAL, 1, "%s is not a cairn mount",
				     ctx->mount);
			goto out;
		}
		target_fill(t, mdir, is_cairn(m) ? m->source : NULL);
		rc = target_socket(ctx, t, r);
		goto out;
	}
	list[0] = '\0';
	for (i = 0; i < tab.n; i++) {
		if (!is_cairn(&tab.m[i]))
			continue;
		ncairn++;
		only = &tab.m[i];
		if (used < sizeof(list))
			used += (size_t)snprintf(list + used,
						 sizeof(list) - used,
						 "%s%s (%s)", used ? ", " : "",
						 tab.m[i].dir, tab.m[i].source);
	}
	if (ncairn == 0) {
		/* ESRCH: exit 69 (unavailable), not 66 (no such file). */
		rc = set_err(r, ESRCH, 1,
			     "no cairn mount found (is cairnd running? "
			     "name one with -m MOUNTPOINT or -s SOCKET)");
		goto out;
	}
	if (ncairn > 1) {
		rc = set_err(r, EDOM, 1,
			     "several cairn mounts: %s; choose one with "
			     "-m MOUNTPOINT",
			     list);
		goto out;
	}
	target_fill(t, only->dir, only->source);
	rc = target_socket(ctx, t, r);
out:
	mnt_free(&tab);
	return rc;
}

int
fs_each_mount(void (*fn)(void *arg, const struct fs_target *t), void *arg)
{
	struct mnt_table tab;
	struct fs_target t;
	size_t i;
	int n = 0;

	if (mnt_load(&tab) < 0)
		return 0;
	for (i = 0; i < tab.n; i++) {
		if (!is_cairn(&tab.m[i]))
			continue;
		memset(&t, 0, sizeof(t));
		target_fill(&t, tab.m[i].dir, tab.m[i].source);
		if (ctl_socket_path(t.mount, t.sock, sizeof(t.sock)) < 0)
			continue;
		fn(arg, &t);
		n++;
	}
	mnt_free(&tab);
	return n;
}

/* ------------------------------------------------------------------ */
/* One exchange                                                        */

/* " for /mnt/x" after "cairnd", or nothing when only -s named it. */
static const char *
who(const struct fs_target *t, char *buf, size_t len)
{
	if (t->mount[0])
		snprintf(buf, len, " for %s", t->mount);
	else
		buf[0] = '\0';
	return buf;
}

static int
connect_to(const struct fs_target *t, struct fs_result *r)
{
	char wb[PATH_MAX + 8];
	struct sockaddr_un sun;
	int fd, err;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", t->sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return set_err(r, errno, 1, "cannot create a socket: %s",
			       strerror(errno));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		return fd;
	err = errno;
	close(fd);
	switch (err) {
	case ENOENT:
	case ENOTDIR:
		return set_err(r, ESRCH, 1,
			       "cannot reach cairnd%s: no control socket "
			       "at %s (is cairnd running?)",
			       who(t, wb, sizeof(wb)), t->sock);
	case ECONNREFUSED:
		return set_err(r, ESRCH, 1,
			       "cannot reach cairnd%s: nobody listens on "
			       "%s (is cairnd running?)",
			       who(t, wb, sizeof(wb)), t->sock);
	case EACCES:
	case EPERM:
		return set_err(r, EACCES, 1,
			       "cannot reach cairnd%s: permission denied "
			       "on %s",
			       who(t, wb, sizeof(wb)), t->sock);
	default:
		return set_err(r, err, 1, "cannot reach cairnd%s at %s: %s",
			       who(t, wb, sizeof(wb)), t->sock, strerror(err));
	}
}

/* Read exactly @len bytes, waiting at most @timeout_ms for each piece
 * (0 = forever). @return 0, -ETIMEDOUT, -ECONNRESET (EOF) or -errno. */
static int
read_full(int fd, void *buf, size_t len, unsigned timeout_ms)
{
	struct pollfd pfd = {fd, POLLIN, 0};
	size_t got = 0;
	ssize_t n;
	int prc;

	while (got < len) {
		prc = poll(&pfd, 1, timeout_ms ? (int)timeout_ms : -1);
		if (prc < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (prc == 0)
			return -ETIMEDOUT;
		n = read(fd, (char *)buf + got, len - got);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ECONNRESET;
		got += (size_t)n;
	}
	return 0;
}

static int
send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
read_fail(const struct fs_target *t, struct fs_result *r, int rc)
{
	char wb[PATH_MAX + 8];
	if (rc == -ETIMEDOUT)
		return set_err(r, ETIMEDOUT, 1,
			       "cairnd%s did not answer in time",
			       who(t, wb, sizeof(wb)));
	if (rc == -ECONNRESET)
		return set_err(r, ECONNRESET, 1,
			       "cairnd%s closed the connection without "
			       "an answer",
			       who(t, wb, sizeof(wb)));
	return set_err(r, -rc, 1, "cannot read from cairnd%s: %s",
		       who(t, wb, sizeof(wb)), strerror(-rc));
}

int
fs_call(const struct fs_ctx *ctx, const struct fs_target *t, unsigned type,
	json_t *args, void (*progress)(void *arg, const json_t *p), void *parg,
	struct fs_result *r)
{
	static uint32_t next_id;
	char wb[PATH_MAX + 8];
	uint8_t hb[CTL_HDR_SIZE], *msg;
	char *payload = NULL;
	struct ctl_hdr h;
	json_t *j = NULL;
	uint32_t id;
	size_t len;
	int fd, rc, err;
	const char *emsg;

	memset(r, 0, sizeof(*r));
	id = ++next_id ? next_id : ++next_id;
	/* -V: on a cairnd serving several volumes, the volume a request
	 * without a path is about (a path names its own). */
	if (ctx->volume && !json_object_get(args, "path") &&
	    !json_object_get(args, "volume")) {
		j = args ? json_copy(args) : json_object();
		if (!j || json_object_set_new(j, "volume",
					      json_string(ctx->volume)) < 0) {
			json_decref(j);
			return set_err(r, ENOMEM, 1, "out of memory");
		}
	}
	msg = ctl_msg_encode(type, progress ? CTL_FL_PROGRESS : 0, id,
			     j ? j : args, &len);
	json_decref(j);
	j = NULL;
	if (!msg)
		return set_err(r, errno, 1, "cannot encode the request: %s",
			       strerror(errno));
	fd = connect_to(t, r);
	if (fd < 0) {
		free(msg);
		return fd;
	}
	rc = send_all(fd, msg, len);
	free(msg);
	if (rc < 0) {
		rc = set_err(r, -rc == EPIPE ? ECONNRESET : -rc, 1,
			     "cannot send to cairnd%s: %s",
			     who(t, wb, sizeof(wb)), strerror(-rc));
		goto out;
	}
	for (;;) {
		rc = read_full(fd, hb, sizeof(hb), ctx->timeout_ms);
		if (rc < 0) {
			rc = read_fail(t, r, rc);
			goto out;
		}
		rc = ctl_hdr_decode(hb, sizeof(hb), &h);
		if (rc < 0 || h.type <= CTL_REQ_MAX ||
		    (h.id != id && h.id != 0)) {
			rc = set_err(r, EPROTO, 1,
				     "cairnd%s sent a malformed reply",
				     who(t, wb, sizeof(wb)));
			goto out;
		}
		payload = malloc(h.length ? h.length : 1);
		if (!payload) {
			rc = set_err(r, ENOMEM, 1, "%s", strerror(ENOMEM));
			goto out;
		}
		rc = read_full(fd, payload, h.length, ctx->timeout_ms);
		if (rc < 0) {
			rc = read_fail(t, r, rc);
			goto out;
		}
		rc = ctl_payload_decode(payload, h.length, &j);
		free(payload);
		payload = NULL;
		if (rc < 0) {
			rc = set_err(r, EPROTO, 1,
				     "cairnd%s sent a reply that is not "
				     "JSON",
				     who(t, wb, sizeof(wb)));
			goto out;
		}
		if (h.type == CTL_PROGRESS) {
			if (progress)
				progress(parg, j);
			json_decref(j);
			j = NULL;
			continue;
		}
		break;
	}
	if (h.type == CTL_OK) {
		r->json = j;
		rc = 0;
		goto out;
	}
	if (ctl_error_decode(j, &err, &emsg) < 0) {
		json_decref(j);
		rc = set_err(r, EPROTO, 1, "cairnd%s sent a malformed error",
			     who(t, wb, sizeof(wb)));
		goto out;
	}
	rc = set_err(r, err, 0, "%s", emsg);
	r->json = j;
out:
	free(payload);
	close(fd);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Exit codes and messages                                             */

int
fs_exit_code(int err, int local)
{
	switch (err) {
	case 0:
		return EX_OK;
	case EDOM: /* several mounts, none chosen */
		return EX_USAGE;
	case EINVAL:
		return EX_DATAERR;
	case ENOENT:
	case ENOTDIR:
	case ELOOP:
	case ENAMETOOLONG:
		return EX_NOINPUT;
	case ESRCH:
	case ENOSYS:
	case ENOTCONN:
		return EX_UNAVAILABLE;
	case EACCES:
	case EPERM:
		return EX_NOPERM;
	case ENOSPC:
	case EDQUOT:
		return EX_CANTCREAT;
	case ETIMEDOUT:
	case ECONNRESET:
	case ECONNREFUSED:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case EAGAIN:
	case EBUSY:
	case ESHUTDOWN:
		return EX_TEMPFAIL;
	case EPROTO:
	case EBADMSG:
	case EPROTONOSUPPORT:
	case EOPNOTSUPP:
	case EMSGSIZE:
	case ENOMEM:
		return EX_SOFTWARE;
	default:
		return local ? EX_SOFTWARE : EXIT_FAILURE;
	}
}

void
fs_print_error(const struct fs_ctx *ctx, const char *what,
	       const struct fs_result *r)
{
	char need[32], avail[32], shortby[32], extra[160] = "";
	int f1 = 0, f2 = 0;
	uint64_t n, a;

	if (r->local) {
		fprintf(stderr, "fs: %s\n", fs_esc(r->msg));
		return;
	}
	/* A pin or size change that does not fit says by how much. */
	if (r->err == ENOSPC && r->json) {
		n = fs_u64(r->json, "bytes_needed", &f1);
		a = fs_u64(r->json, "bytes_available", &f2);
		if (f1 && f2 && n > a)
			snprintf(extra, sizeof(extra),
				 " (needs %s, %s available: short by %s)",
				 fs_size(n, need, sizeof(need)),
				 fs_size(a, avail, sizeof(avail)),
				 fs_size(n - a, shortby, sizeof(shortby)));
	}
	if (what)
		fprintf(stderr, "fs: %s %s: %s%s\n", ctx->cmd->name,
			fs_esc(what), fs_esc(r->msg), extra);
	else
		fprintf(stderr, "fs: %s: %s%s\n", ctx->cmd->name,
			fs_esc(r->msg), extra);
}

/* The --json element for one path. */
static json_t *
path_json(const char *path, const struct fs_result *r)
{
	json_t *o;

	if (!r->err) {
		o = json_is_object(r->json) ? json_deep_copy(r->json)
					    : json_object();
		json_object_set_new(o, "ok", json_true());
	} else {
		o = ctl_error_new(r->err, r->msg);
		if (json_is_object(r->json) && o)
			json_object_update_missing(o, r->json);
		json_object_set_new(o, "ok", json_false());
	}
	json_object_set_new(o, "path", json_string(path));
	return o;
}

int
fs_each_path(struct fs_ctx *ctx, unsigned type, json_t *extra,
	     void (*render)(struct fs_ctx *ctx, const char *path,
			    const struct fs_target *t, json_t *res),
	     struct fs_progress *prog)
{
	char label[PATH_MAX + 32];
	struct fs_target t;
	struct fs_result r;
	json_t *arr = ctx->json ? json_array() : NULL, *args;
	int i, code, first = -1, nok = 0, mixed = 0;

	for (i = 0; i < ctx->argc; i++) {
		memset(&r, 0, sizeof(r));
		if (fs_target_path(ctx, ctx->argv[i], &t, &r) == 0) {
			args = extra ? json_deep_copy(extra) : json_object();
			json_object_set_new(args, "path", json_string(t.rel));
			if (prog) {
				snprintf(label, sizeof(label), "%s %s",
					 ctx->cmd->name, fs_esc(ctx->argv[i]));
				fs_progress_reset(prog, label);
			}
			fs_call(ctx, &t, type, args,
				prog && prog->active ? fs_progress_update
						     : NULL,
				prog, &r);
			if (prog)
				fs_progress_end(prog);
			json_decref(args);
		}
		if (r.err) {
			fs_print_error(ctx, ctx->argv[i], &r);
			code = fs_exit_code(r.err, r.local);
			if (first < 0)
				first = code;
			else if (code != first)
				mixed = 1;
		} else {
			nok++;
			if (!ctx->json && render)
				render(ctx, ctx->argv[i], &t, r.json);
		}
		if (arr)
			json_array_append_new(arr, path_json(ctx->argv[i], &r));
		fs_result_release(&r);
	}
	if (arr) {
		fs_json_print(arr);
		json_decref(arr);
	}
	if (first < 0)
		return EX_OK;
	if (nok || mixed)
		return EXIT_FAILURE;
	return first;
}

int
fs_simple(struct fs_ctx *ctx, unsigned type, json_t *args,
	  void (*render)(struct fs_ctx *ctx, const struct fs_target *t,
			 json_t *res))
{
	struct fs_target t;
	struct fs_result r;
	int code;

	memset(&r, 0, sizeof(r));
	if (fs_target_default(ctx, &t, &r) == 0)
		fs_call(ctx, &t, type, args, NULL, NULL, &r);
	if (r.err) {
		fs_print_error(ctx, NULL, &r);
		if (ctx->json && r.json)
			fs_json_print(r.json);
		code = fs_exit_code(r.err, r.local);
		fs_result_release(&r);
		return code;
	}
	if (ctx->json)
		fs_json_print(r.json);
	else if (render)
		render(ctx, &t, r.json);
	fs_result_release(&r);
	return EX_OK;
}
