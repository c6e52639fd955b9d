/*
 * conn.c - connected, disconnected, reintegrating (see conn.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "cm/conn.h"
#include "cm/http.h"
#include "common/log.h"
#include "common/util.h"

#define PROBE_FIRST_MS 1000
#define PROBE_MAX_MS   30000

struct conn {
	struct event_base *base;
	struct http_client *http; /* NULL after conn_stop() */
	char *mode_file;	  /* <cache>/mode, or NULL */
	struct conn_hooks h;
	atomic_int mode;	  /* enum cm_mode */
	atomic_bool miss_wait;	  /* offline-miss=wait: the gate lets
				     requests try */
	atomic_uint wait_ms;	  /* offline-miss=wait:SECONDS (0:
				     fetch-timeout) */
	atomic_bool writeback;	  /* write-mode writeback: mutations are
				     logged while connected too */
	bool manual;		  /* by fs disconnect: no probes */
	int64_t since_ms;	  /* wall clock of the last mode change */
	struct event *probe_ev;
	unsigned probe_ms;
	bool probe_inflight;
};

const char *
cm_mode_name(int mode)
{
	switch (mode) {
	case CM_CONNECTED:
		return "connected";
	case CM_DISCONNECTED:
		return "disconnected";
	case CM_REINTEGRATING:
		return "reintegrating";
	}
	return "unknown";
}

static int64_t
wall_ms(void)
{
	return util_wall_ns() / 1000000;
}

int
conn_mode(const struct conn *c)
{
	return atomic_load(&c->mode);
}

bool
conn_offline(const struct conn *c)
{
	return atomic_load(&c->mode) != CM_CONNECTED;
}

void
conn_set_writeback(struct conn *c, bool on)
{
	atomic_store(&c->writeback, on);
}

bool
conn_writeback(const struct conn *c)
{
	return atomic_load(&c->writeback);
}

bool
conn_logs_changes(const struct conn *c)
{
	return conn_offline(c) || atomic_load(&c->writeback);
}

bool
conn_manual(const struct conn *c)
{
	return c->manual;
}

int64_t
conn_since_ms(const struct conn *c)
{
	return c->since_ms;
}

void
conn_set_miss_policy(struct conn *c, bool wait, unsigned wait_ms)
{
	atomic_store(&c->wait_ms, wait_ms);
	atomic_store(&c->miss_wait, wait);
}

bool
conn_miss_policy(const struct conn *c, unsigned *wait_ms)
{
	*wait_ms = atomic_load(&c->wait_ms);
	return atomic_load(&c->miss_wait);
}

/* --- the mode file --- */

/* <cache>/mode: "disconnected manual|auto SINCE_MS\n" while not connected
 * (written atomically: temp file, fsync, rename, fsync of the folder);
 * absent when connected. */
static void
mode_save(struct conn *c)
{
	char tmp[4200], line[96];
	int fd, n;

	if (!c->mode_file)
		return;
	if (atomic_load(&c->mode) == CM_CONNECTED) {
		if (unlink(c->mode_file) == 0)
			util_fsync_parent(c->mode_file);
		return;
	}
	n = snprintf(line, sizeof(line), "disconnected %s %lld\n",
		     c->manual ? "manual" : "auto", (long long)c->since_ms);
	snprintf(tmp, sizeof(tmp), "%s.tmp", c->mode_file);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, line, (size_t)n) != n || fsync(fd) < 0 ||
	    close(fd) < 0 || rename(tmp, c->mode_file) < 0) {
		log_err(LOG_OFF, "cannot record the mode in '%s': %s",
			c->mode_file, strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	util_fsync_parent(c->mode_file);
}

static void
mode_load(struct conn *c)
{
	char line[96], how[16];
	long long since = 0;
	FILE *f;

	if (!c->mode_file)
		return;
	f = fopen(c->mode_file, "re");
	if (!f)
		return;
	if (fgets(line, sizeof(line), f) &&
	    sscanf(line, "disconnected %15s %lld", how, &since) == 2 &&
	    (!strcmp(how, "manual") || !strcmp(how, "auto"))) {
		c->manual = !strcmp(how, "manual");
		c->since_ms = since;
		atomic_store(&c->mode, CM_DISCONNECTED);
		log_info(LOG_OFF,
			 "starting disconnected (%s, as when "
			 "cairnd stopped)",
			 how);
	} else {
		log_warn(LOG_OFF, "'%s' is not a mode record: ignored",
			 c->mode_file);
	}
	fclose(f);
}

/* --- the network gate --- */

static int
gate(void *arg, const struct http_request *r)
{
	struct conn *c = arg;

	(void)r;
	if (atomic_load(&c->mode) != CM_DISCONNECTED)
		return 0;
	if (atomic_load(&c->miss_wait))
		return 0;
	return -EHOSTUNREACH;
}

/* --- transitions --- */

/* DISCONNECTED -> REINTEGRATING, then the hook. */
static void
begin_reintegration(struct conn *c)
{
	if (c->probe_ev)
		evtimer_del(c->probe_ev);
	c->since_ms = wall_ms();
	atomic_store(&c->mode, CM_REINTEGRATING);
	if (c->h.reintegrate)
		c->h.reintegrate(c->h.arg);
}

/* --- probes --- */

static void probe_arm(struct conn *c);

static bool
stopping(struct conn *c)
{
	return c->h.stopping && c->h.stopping(c->h.arg);
}

static void
probe_done(void *arg, const struct http_result *res)
{
	struct conn *c = arg;

	c->probe_inflight = false;
	if (atomic_load(&c->mode) != CM_DISCONNECTED || c->manual ||
	    stopping(c) || !c->http)
		return;
	if (!res->err && res->status == 200) {
		log_info(LOG_OFF, "the server answers again: reintegrating");
		begin_reintegration(c);
		return;
	}
	c->probe_ms =
		c->probe_ms * 2 > PROBE_MAX_MS ? PROBE_MAX_MS : c->probe_ms * 2;
	probe_arm(c);
}

static void
probe_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct http_request hr = {0};

	(void)fd;
	(void)what;
	if (!c->http || c->manual || atomic_load(&c->mode) != CM_DISCONNECTED)
		return;
	hr.path = "/v1/ping";
	hr.timeout_ms = 2000;
	hr.on_done = probe_done;
	hr.arg = c;
	hr.ungated = 1;
	hr.probe = 1; /* not in a slot that reads need */
	hr.probe_first = 1; /* nor behind users' checkservers pings */
	if (http_submit(c->http, &hr))
		c->probe_inflight = true;
	else
		probe_arm(c);
}

static void
probe_arm(struct conn *c)
{
	struct timeval tv;

	if (!c->base || !c->http)
		return;
	if (!c->probe_ev)
		c->probe_ev = evtimer_new(c->base, probe_cb, c);
	if (!c->probe_ev)
		return;
	tv.tv_sec = c->probe_ms / 1000;
	tv.tv_usec = (c->probe_ms % 1000) * 1000;
	evtimer_add(c->probe_ev, &tv);
}

int
conn_disconnect(struct conn *c, bool manual, const char *why)
{
	if (atomic_load(&c->mode) == CM_DISCONNECTED) {
		if (manual && !c->manual) {
			c->manual = true;
			mode_save(c);
		}
		return 1;
	}
	c->manual = manual;
	c->since_ms = wall_ms();
	atomic_store(&c->mode, CM_DISCONNECTED);
	mode_save(c);
	log_warn(LOG_OFF, "disconnected (%s): changes go to the replay log",
		 why);
	if (c->h.went_offline)
		c->h.went_offline(c->h.arg, manual, why);
	if (!manual) {
		c->probe_ms = PROBE_FIRST_MS;
		probe_arm(c);
	}
	return 0;
}

int
conn_reconnect(struct conn *c)
{
	int mode = atomic_load(&c->mode);

	if (mode == CM_CONNECTED)
		return 1;
	c->manual = false;
	if (mode == CM_REINTEGRATING)
		return -EINPROGRESS;
	begin_reintegration(c);
	return 0;
}

int
conn_reintegrated(struct conn *c)
{
	if (atomic_load(&c->mode) != CM_REINTEGRATING)
		return -EINVAL;
	atomic_store(&c->mode, CM_CONNECTED);
	c->since_ms = wall_ms();
	mode_save(c);
	return 0;
}

/* --- setup --- */

struct conn *
conn_new(struct event_base *base, struct http_client *http,
	 const char *cache_dir, const struct conn_hooks *h)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	if (cache_dir && asprintf(&c->mode_file, "%s/mode", cache_dir) < 0) {
		free(c);
		errno = ENOMEM;
		return NULL;
	}
	c->base = base;
	c->http = http;
	if (h)
		c->h = *h;
	c->since_ms = wall_ms();
	c->probe_ms = PROBE_FIRST_MS;
	atomic_init(&c->mode, CM_CONNECTED);
	atomic_init(&c->miss_wait, false);
	atomic_init(&c->writeback, false);
	atomic_init(&c->wait_ms, 0);
	mode_load(c);
	if (http)
		http_set_gate(http, gate, c);
	return c;
}

void
conn_start(struct conn *c)
{
	if (atomic_load(&c->mode) == CM_DISCONNECTED && !c->manual)
		probe_arm(c);
}

void
conn_stop(struct conn *c)
{
	if (!c)
		return;
	if (c->probe_ev)
		event_free(c->probe_ev);
	c->probe_ev = NULL;
	c->http = NULL;
	c->base = NULL;
}

void
conn_free(struct conn *c)
{
	if (!c)
		return;
	conn_stop(c);
	free(c->mode_file);
	free(c);
}
