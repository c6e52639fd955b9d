/*
 * ctl_ns.c - the control socket of a namespace (daemon_i.h struct
 * cm_ns): one socket for the whole mount root, each request routed to
 * the volume it concerns, answered by that volume's handler (cm_ctl.c's
 * table, with the volume's struct cm). Every volume runs on the
 * namespace's one loop thread, so a handler of any volume may run here.
 *
 * Routing: a request's "path" is relative to the mount root, so its
 * first component names the volume, and the handler gets the rest
 * ("." for the volume's root); the path alone picks the volume then,
 * whatever else the request holds. A request without a path names its volume
 * with the "volume" member (fs -V DIR); without one, listvol, status,
 * getcacheparms and metrics answer for every volume, and the others are
 * refused
 * (EINVAL: which volume?). The namespace root itself holds no files.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "chunkstore/cs.h"
#include "cm/cm_ctl.h"
#include "cm/ctl_i.h"
#include "cm/daemon_i.h"
#include "cm/wb.h"
#include "common/log.h"

/*
 * The volume's handler answers with paths relative to the volume's root
 * ("path" of conflicts, pins, whereis ...; a conflict's "copy"): put the
 * volume's directory in front, so fs gets mount-relative paths as from
 * a one-volume cairnd. The top level and the objects of the result's
 * arrays are looked at; @arg is the volume (a struct cm, lives as long
 * as the namespace).
 */
static void
prefix_one(json_t *o, const char *key, const char *dir)
{
	const char *p = json_string_value(json_object_get(o, key));
	char *full;

	if (!p || !*p)
		return;
	if (!strcmp(p, ".")) {
		json_object_set_new(o, key, json_string(dir));
		return;
	}
	if (asprintf(&full, "%s/%s", dir, p) < 0)
		return;
	json_object_set_new(o, key, json_string(full));
	free(full);
}

static void
prefix_paths(void *arg, json_t *result)
{
	const char *dir = ((struct cm *)arg)->ns_dir;
	const char *key;
	json_t *v, *e;
	size_t i;

	prefix_one(result, "path", dir);
	prefix_one(result, "copy", dir);
	json_object_foreach (result, key, v) {
		if (!json_is_array(v))
			continue;
		json_array_foreach (v, i, e) {
			if (!json_is_object(e))
				continue;
			prefix_one(e, "path", dir);
			prefix_one(e, "copy", dir);
		}
	}
}

/* Find the volume of @call's request and call its handler. */
static void
route(struct cm_ns *ns, struct ctl_call *call, const struct ctl_peer *peer,
      json_t *args)
{
	unsigned type = ctl_call_type(call);
	const char *path = json_string_value(json_object_get(args, "path"));
	const char *vname = json_string_value(json_object_get(args, "volume"));
	ctl_handler_fn fn =
		type <= CTL_REQ_MAX ? cm_ctl_handlers.on[type] : NULL;
	struct cm *cm = NULL;

	if (!fn) {
		ctl_reply_err(call, ENOSYS, NULL);
		return;
	}
	if (path) {
		const char *slash = strchr(path, '/');
		size_t len = slash ? (size_t)(slash - path) : strlen(path);

		if (!strcmp(path, ".") || !*path) {
			ctl_reply_err(call, EINVAL,
				      "the mount root holds no files (name a "
				      "path inside one of its volumes)");
			return;
		}
		cm = cm_ns_find(ns, path, len);
		if (!cm) {
			ctl_reply_err(call, ENOENT, "no such volume here");
			return;
		}
		/* The volume's handler sees a path from its own root. */
		if (json_object_set_new(args, "path",
					json_string(slash ? slash + 1 : ".")) <
		    0) {
			ctl_reply_err(call, ENOMEM, NULL);
			return;
		}
	} else if (vname) {
		cm = cm_ns_find(ns, vname, strlen(vname));
		if (!cm) {
			ctl_reply_err(call, ENOENT, "no such volume here");
			return;
		}
	} else {
		ctl_reply_err(call, EINVAL,
			      "this cairnd serves several volumes: name one "
			      "(fs -V NAME, see fs listvol)");
		return;
	}
	if (cm->ns_failed) {
		ctl_reply_err(call, EIO,
			      "the volume could not be opened yet "
			      "(see the log)");
		return;
	}
	/* Without a path "volume" was ours (the selector); with one it was
	 * not looked at (no path request takes one today) and stays. */
	if (!path)
		json_object_del(args, "volume");
	ctl_call_set_filter(call, prefix_paths, cm);
	fn(cm, call, peer, args);
}

static void
h_route(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	json_t *args)
{
	route(arg, call, peer, args);
}

/* listvol: every volume, with its directory. */
static void
h_listvol(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	  json_t *args)
{
	struct cm_ns *ns = arg;
	json_t *a = json_array(), *res;
	const char *vname = json_string_value(json_object_get(args, "volume"));

	(void)peer;
	if (!a) {
		ctl_reply_err(call, ENOMEM, NULL);
		return;
	}
	for (size_t i = 0; i < ns->n; i++) {
		struct cm *cm = ns->vols[i];
		struct proto_volinfo vi;
		bool have = !cm->ns_failed && cm_volinfo(cm, &vi) == 0;
		char mp[4200];

		if (vname && strcmp(vname, cm->ns_dir))
			continue;
		snprintf(mp, sizeof(mp), "%s/%s", ns->cfg.mountpoint,
			 cm->ns_dir);
		json_array_append_new(
			a,
			json_pack("{s:s,s:I,s:s,s:s,s:s,s:s,s:s,s:b}", "name",
				  cm->cfg.volume ? cm->cfg.volume : cm->ns_dir,
				  "id", (json_int_t)(have ? vi.id : 0), "mode",
				  have && vi.readonly ? "ro" : "rw", "server",
				  cm->cfg.server ? cm->cfg.server : "",
				  "mountpoint", mp, "dir", cm->ns_dir, "state",
				  cm_ns_hidden(cm) ? "removed"
				  : cm->ns_failed  ? "failed"
				  : cm_offline(cm) ? "disconnected"
						   : "connected",
				  "online",
				  !cm->ns_failed && atomic_load(&cm->online)));
	}
	res = json_pack("{s:o}", "volumes", a);
	ctl_reply_ok(call, res);
}

/* getcacheparms: the shared store's figures, and one entry per volume
 * with what its chunks take (one pass over the index; NEEDSWORK: keep
 * per-volume sums in the store for very large caches). */
struct vol_sum {
	uint32_t id;
	uint64_t bytes, chunks, dirty, pinned;
};

struct sums {
	struct vol_sum *v;
	size_t n;
	uint64_t other;
};

static int
sum_chunk(const struct cs_info *ci, void *arg)
{
	struct sums *s = arg;

	for (size_t i = 0; i < s->n; i++) {
		if (s->v[i].id != ci->key.vol)
			continue;
		s->v[i].bytes += ci->len;
		s->v[i].chunks++;
		if (ci->flags & CS_F_DIRTY)
			s->v[i].dirty += ci->len;
		if (ci->flags & CS_F_PINNED)
			s->v[i].pinned += ci->len;
		return 0;
	}
	s->other += ci->len;
	return 0;
}

static void
h_getcacheparms(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
		json_t *args)
{
	struct cm_ns *ns = arg;
	const char *vname = json_string_value(json_object_get(args, "volume"));
	struct sums s = {0};
	struct cs_stats st;
	json_t *a, *res;
	uint64_t dirty_files = 0;

	(void)peer;
	if (vname && !cm_ns_find(ns, vname, strlen(vname))) {
		ctl_reply_err(call, ENOENT, "no such volume here");
		return;
	}
	s.v = calloc(ns->n ? ns->n : 1, sizeof(*s.v));
	a = json_array();
	if (!s.v || !a) {
		free(s.v);
		json_decref(a);
		ctl_reply_err(call, ENOMEM, NULL);
		return;
	}
	s.n = ns->n;
	for (size_t i = 0; i < ns->n; i++)
		s.v[i].id = ns->vols[i]->ns_failed ? 0 : ns->vols[i]->vi.id;
	cs_iterate(ns->cs, sum_chunk, &s);
	for (size_t i = 0; i < ns->n; i++) {
		struct cm *cm = ns->vols[i];
		uint64_t df = cm->wb ? wb_dirty_files(cm->wb) : 0;

		dirty_files += df;
		if (vname && strcmp(vname, cm->ns_dir))
			continue;
		json_array_append_new(
			a, json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I}", "dir",
				     cm->ns_dir, "name",
				     cm->cfg.volume ? cm->cfg.volume : "", "id",
				     (json_int_t)s.v[i].id, "bytes_used",
				     (json_int_t)s.v[i].bytes, "chunks",
				     (json_int_t)s.v[i].chunks, "dirty_bytes",
				     (json_int_t)s.v[i].dirty, "pinned_bytes",
				     (json_int_t)s.v[i].pinned, "dirty_files",
				     (json_int_t)df));
	}
	free(s.v);
	cs_get_stats(ns->cs, &st);
	res = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s,"
			"s:o}",
			"dirty_files", (json_int_t)dirty_files, "bytes_used",
			(json_int_t)st.bytes_used, "bytes_limit",
			(json_int_t)st.bytes_limit, "files_used",
			(json_int_t)st.files_used, "files_limit",
			(json_int_t)st.files_limit, "chunk_size",
			(json_int_t)st.chunk_size, "pinned_bytes",
			(json_int_t)st.pinned_bytes, "dirty_bytes",
			(json_int_t)st.dirty_bytes, "hits", (json_int_t)st.hits,
			"misses", (json_int_t)st.misses, "evictions",
			(json_int_t)st.evictions, "cache_dir",
			ns->cfg.cache_dir, "volumes", a);
	ctl_reply_ok(call, res);
}

/* status without a volume: each volume's, in "volumes", and a summary:
 * "mode" is the volumes' common mode, or "mixed". */
static void
h_status(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	 json_t *args)
{
	struct cm_ns *ns = arg;
	json_t *a, *res;
	const char *mode = NULL;
	uint64_t pending = 0, conflicts = 0;

	if (json_object_get(args, "volume")) {
		route(ns, call, peer, args);
		return;
	}
	a = json_array();
	if (!a) {
		ctl_reply_err(call, ENOMEM, NULL);
		return;
	}
	for (size_t i = 0; i < ns->n; i++) {
		struct cm *cm = ns->vols[i];
		json_t *o = json_pack(
			"{s:s,s:s,s:s,s:b}", "dir", cm->ns_dir, "volume",
			cm->cfg.volume ? cm->cfg.volume : "", "server",
			cm->cfg.server ? cm->cfg.server : "", "online",
			!cm->ns_failed && atomic_load(&cm->online));
		const char *m;

		if (!o)
			continue;
		if (cm->ns_failed)
			json_object_set_new(o, "mode", json_string("failed"));
		else
			cm_ctl_offline_status(cm, o);
		m = json_string_value(json_object_get(o, "mode"));
		if (m && (!mode || strcmp(mode, m)))
			mode = mode ? "mixed" : m;
		pending += json_integer_value(
			json_object_get(o, "replay_pending"));
		conflicts +=
			json_integer_value(json_object_get(o, "conflicts"));
		json_array_append_new(a, o);
	}
	res = json_pack("{s:s,s:s,s:I,s:I,s:o}", "mode", mode ? mode : "mixed",
			"version", PACKAGE_VERSION, "replay_pending",
			(json_int_t)pending, "conflicts", (json_int_t)conflicts,
			"volumes", a);
	ctl_reply_ok(call, res);
}

/* metrics without a volume: every volume's, one exposition. */
static void
h_metrics(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	  json_t *args)
{
	struct cm_ns *ns = arg;

	if (json_object_get(args, "volume")) {
		route(ns, call, peer, args);
		return;
	}
	cm_ns_ctl_h_metrics(ns, call);
}

/* setcachesize concerns the shared store: any served volume's handler
 * does it (the store is the same). */
static void
h_store(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	json_t *args)
{
	struct cm_ns *ns = arg;
	unsigned type = ctl_call_type(call);

	for (size_t i = 0; i < ns->n; i++)
		if (!ns->vols[i]->ns_failed) {
			cm_ctl_handlers.on[type](ns->vols[i], call, peer, args);
			return;
		}
	ctl_reply_err(call, EIO, NULL);
}

static struct ctl_handlers ns_handlers;

int
cm_ns_ctl_start(struct cm_ns *ns)
{
	char sock[108];
	const char *p = ns->cfg.ctl_socket;
	struct ctl_limits lim;
	int rc, err = 0;

	for (unsigned t = 1; t <= CTL_REQ_MAX; t++)
		ns_handlers.on[t] = cm_ctl_handlers.on[t] ? h_route : NULL;
	ns_handlers.on[CTL_LISTVOL] = h_listvol;
	ns_handlers.on[CTL_GETCACHEPARMS] = h_getcacheparms;
	ns_handlers.on[CTL_SETCACHESIZE] = h_store;
	ns_handlers.on[CTL_STATUS] = h_status;
	ns_handlers.on[CTL_METRICS] = h_metrics;
	if (!p) {
		rc = ctl_socket_path(ns->cfg.mountpoint, sock, sizeof(sock));
		if (rc < 0) {
			log_err(LOG_CTL,
				"cannot name the control socket for "
				"'%s': %s",
				ns->cfg.mountpoint, strerror(-rc));
			return rc;
		}
		p = sock;
	}
	ns->ctl = ctl_server_new(ns->loop.base, p, &ns_handlers, ns, &err);
	if (!ns->ctl) {
		log_err(LOG_CTL, "cannot listen on control socket '%s': %s", p,
			strerror(-err));
		return err < 0 ? err : -EIO;
	}
	ctl_server_get_limits(ns->ctl, &lim);
	lim.max_conns_per_uid = ns->cfg.ctl_conns_per_uid;
	ctl_server_set_limits(ns->ctl, &lim);
	/* metrics-listen: one listener for the namespace, kept by its first
	 * served volume; it answers with every volume's figures. */
	for (size_t i = 0; ns->cfg.metrics_listen && i < ns->n; i++)
		if (!ns->vols[i]->ns_failed) {
			ns->metrics_vol = ns->vols[i];
			return cm_metrics_listen_start(ns->metrics_vol);
		}
	return 0;
}

struct ns_stop_job {
	struct cm_job job;
	struct cm_ns *ns;
};

static void
ns_stop_job(struct cm_loop *loop, struct cm_job *job)
{
	struct ns_stop_job *sj = container_of(job, struct ns_stop_job, job);

	(void)loop;
	if (sj->ns->metrics_vol)
		cm_metrics_listen_stop(sj->ns->metrics_vol);
	ctl_server_free(sj->ns->ctl);
	sj->ns->ctl = NULL;
	free(sj);
}

void
cm_ns_ctl_stop(struct cm_ns *ns)
{
	struct ns_stop_job *j;

	if (!ns->ctl)
		return;
	/* The server belongs to the loop thread: free it there. */
	j = ns->loop.running ? calloc(1, sizeof(*j)) : NULL;
	if (!j) {
		if (ns->metrics_vol)
			cm_metrics_listen_stop(ns->metrics_vol);
		ctl_server_free(ns->ctl);
		ns->ctl = NULL;
		return;
	}
	j->job.run = ns_stop_job;
	j->ns = ns;
	cm_post(&ns->loop, &j->job);
}
