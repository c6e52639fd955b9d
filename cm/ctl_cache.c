/*
 * ctl_cache.c - control requests about the cache and the server (fs
 * getcacheparms, setcachesize, listvol, checkservers, whereis, examine)
 * and fs status.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "chunkstore/cs.h"
#include "cm/cm.h"
#include "cm/ctl.h"
#include "cm/ctl_i.h"
#include "cm/http.h"
#include "cm/inode.h"
#include "cm/mcache.h"
#include "cm/mfetch.h"
#include "cm/replay.h"
#include "cm/pin.h"
#include "cm/vc.h"
#include "cm/wb.h"
#include "common/ctl_proto.h"
#include "common/fid.h"
#include "common/log.h"
#include "common/util.h"

/* ---- chunk accounting ----------------------------------------------- */

struct chunk_count {
	uint64_t dv;
	uint64_t cached, bytes, any;
	bool pinned, dirty;
};

static int
count_chunk(const struct cs_info *ci, void *arg)
{
	struct chunk_count *c = arg;

	c->any++;
	c->bytes += ci->len;
	if (ci->flags & CS_F_DIRTY)
		c->dirty = true;
	if (ci->dv != c->dv)
		return 0;
	c->cached++;
	if (ci->flags & CS_F_PINNED)
		c->pinned = true;
	return 0;
}

static uint64_t
chunks_total(struct cm *cm, uint64_t size)
{
	return cm->chunk_size ? (size + cm->chunk_size - 1) / cm->chunk_size
			      : 0;
}

/* ---- handlers ------------------------------------------------------- */

void
cm_ctl_h_getcacheparms(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
		json_t *args)
{
	struct cm *cm = arg;
	struct cs_stats st;

	(void)peer;
	(void)args;
	cs_get_stats(cm->cs, &st);
	/* dirty_bytes: the chunk store's dirty chunks (whole chunks, as they
	 * take cache space); dirty_files: files with unstored changes. */
	ctl_reply_ok(
		call,
		json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
			  "s:s}",
			  "dirty_files", (json_int_t)wb_dirty_files(cm->wb),
			  "bytes_used", (json_int_t)st.bytes_used,
			  "bytes_limit", (json_int_t)st.bytes_limit,
			  "files_used", (json_int_t)st.files_used,
			  "files_limit", (json_int_t)st.files_limit,
			  "chunk_size", (json_int_t)st.chunk_size,
			  "pinned_bytes", (json_int_t)st.pinned_bytes,
			  "dirty_bytes", (json_int_t)st.dirty_bytes, "hits",
			  (json_int_t)st.hits, "misses", (json_int_t)st.misses,
			  "evictions", (json_int_t)st.evictions, "cache_dir",
			  cm->cfg.cache_dir));
}

void
cm_ctl_h_setcachesize(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	       json_t *args)
{
	struct cm *cm = arg;
	uint64_t want = (uint64_t)json_integer_value(
		json_object_get(args, "bytes"));
	struct cs_limits l = {0};
	struct cs_stats st;
	char msg[160], a[32], b[32];
	uint64_t before;
	int rc;

	(void)peer;
	if (want == 0) {
		ctl_reply_err(call, EINVAL, "a cache size of 0 bytes");
		return;
	}
	cs_get_stats(cm->cs, &st);
	if (want < st.pinned_bytes + st.dirty_bytes) {
		util_fmt_size(st.pinned_bytes + st.dirty_bytes, a, sizeof(a));
		util_fmt_size(want, b, sizeof(b));
		snprintf(msg, sizeof(msg),
			 "pinned and dirty data need %s, more than %s", a, b);
		ctl_reply_err_detail(
			call, ENOSPC,
			json_pack("{s:I,s:I}", "bytes_needed",
				  (json_int_t)(st.pinned_bytes +
					       st.dirty_bytes),
				  "bytes_available", (json_int_t)want),
			msg);
		return;
	}
	before = st.bytes_used;
	l.max_bytes = want;
	rc = cs_set_limits(cm->cs, &l);
	if (rc < 0) {
		ctl_reply_err(call, rc, NULL);
		return;
	}
	cs_get_stats(cm->cs, &st);
	log_info(LOG_CTL, "cache limit set to %llu bytes by uid %u",
		 (unsigned long long)want, (unsigned)peer->uid);
	ctl_reply_ok(call, json_pack("{s:I,s:I,s:I}", "bytes_limit",
				     (json_int_t)st.bytes_limit, "bytes_used",
				     (json_int_t)st.bytes_used, "culled_bytes",
				     (json_int_t)(before > st.bytes_used
							  ? before - st.bytes_used
							  : 0)));
}

void
cm_ctl_h_status(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	 json_t *args)
{
	struct cm *cm = arg;

	(void)peer;
	(void)args;
	json_t *o = json_pack("{s:s,s:s,s:s,s:b}", "volume", cm->cfg.volume,
			      "server", cm->cfg.server, "version",
			      PACKAGE_VERSION, "online",
			      atomic_load(&cm->online) ? 1 : 0);

	/* "online": whether the last server contact worked; mode, replay
	 * log and conflicts from replay.c. */
	if (o)
		cm_ctl_offline_status(cm, o);
	ctl_reply_ok(call, o);
}

void
cm_ctl_h_listvol(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	  json_t *args)
{
	struct cm *cm = arg;
	struct proto_volinfo vi;
	bool have = cm_volinfo(cm, &vi) == 0;

	(void)peer;
	(void)args;
	ctl_reply_ok(call,
		     json_pack("{s:[{s:s,s:I,s:s,s:s,s:s}]}", "volumes", "name",
			       cm->cfg.volume, "id",
			       (json_int_t)(have ? vi.id : 0), "mode",
			       have && vi.readonly ? "ro" : "rw", "server",
			       cm->cfg.server, "mountpoint",
			       cm->cfg.mountpoint));
}

struct ping {
	struct ctl_call *call;
	struct cm *cm;
	uint64_t start_ms;
};

static void
ping_done(void *arg, const struct http_result *res)
{
	struct ping *p = arg;
	uint64_t ms = util_now_ms() - p->start_ms;
	int err = res->err;
	json_t *s;

	if (!err && (res->status < 200 || res->status > 299))
		err = cm_http_errno(0, res->status, res->body, res->body_len);
	if (!err)
		s = json_pack("{s:s,s:b,s:I}", "url", p->cm->cfg.server, "up",
			      1, "latency_ms", (json_int_t)ms);
	else
		s = json_pack("{s:s,s:b,s:s}", "url", p->cm->cfg.server, "up",
			      0, "error", strerror(err < 0 ? -err : err));
	ctl_reply_ok(p->call, json_pack("{s:[o]}", "servers", s));
	free(p);
}

void
cm_ctl_h_checkservers(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	       json_t *args)
{
	struct cm *cm = arg;
	struct http_request req = {0};
	struct ping *p = calloc(1, sizeof(*p));

	(void)peer;
	if (!p) {
		ctl_reply_err(call, ENOMEM, NULL);
		return;
	}
	p->call = call;
	p->cm = cm;
	p->start_ms = util_now_ms();
	req.method = "GET";
	req.path = "/v1/ping";
	/* Clamped: the call holds the caller's connection meanwhile. */
	req.timeout_ms = ctl_timeout_ms(args, "timeout_ms", 5000);
	req.max_body = 65536;
	req.probe = 1; /* its own slot: a user cannot fill the read slots */
	req.on_done = ping_done;
	req.arg = p;
	if (!http_submit(cm->http, &req)) {
		int e = errno;

		free(p);
		ctl_reply_err(call, e, "cannot send the ping");
	}
}

static void
whereis_done(struct resolve *r, const struct proto_attr *a)
{
	char f[FID_STRLEN];

	ctl_reply_ok(r->call,
		     json_pack("{s:s,s:s,s:s,s:s}", "volume", r->cm->cfg.volume,
			       "fid", fid_fmt(&a->fid, f), "server",
			       r->cm->cfg.server, "path", r->path));
	cm_ctl_resolve_free(r);
}

void
cm_ctl_h_whereis(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	  json_t *args)
{
	cm_ctl_resolve(arg, call, peer, args, R_OK, whereis_done);
}

static void
examine_done(struct resolve *r, const struct proto_attr *a)
{
	struct chunk_count c = {.dv = a->dv};
	char f[FID_STRLEN];
	bool file = a->type == PROTO_T_FILE;

	if (file)
		cs_iterate_file(r->cm->cs, a->fid.vol, a->fid.oid, count_chunk,
				&c);
	ctl_reply_ok(r->call,
		     json_pack("{s:s,s:I,s:s,s:s,s:I,s:I,s:I,s:b,s:b,s:I,s:s}",
			       "fid", fid_fmt(&a->fid, f), "dv",
			       (json_int_t)a->dv, "volume", r->cm->cfg.volume,
			       "type", proto_type_name(a->type), "size",
			       (json_int_t)a->size, "chunks_cached",
			       (json_int_t)c.cached, "chunks_total",
			       (json_int_t)(file ? chunks_total(r->cm, a->size)
						 : 0),
			       "pinned", c.pinned, "dirty", c.dirty,
			       "last_fetched", (json_int_t)0, "path", r->path));
	cm_ctl_resolve_free(r);
}

void
cm_ctl_h_examine(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	  json_t *args)
{
	cm_ctl_resolve(arg, call, peer, args, R_OK, examine_done);
}

