/*
 * daemon_ns.c - building and stopping a namespace: one cairnd serving
 * several volumes, from one or more servers, under one mount root
 * (daemon_i.h struct cm_ns, cairnd.conf(5) "[volume DIR]"). It opens the
 * one chunk store, builds a struct cm per volume with daemon.c (each on
 * its own CACHE/vol/DIR for meta.tdb, the replay log, the write states
 * and the mode, and attached to the namespace's one loop thread), and
 * tears them down in reverse. The FUSE routing is fuse_ns.c, the control
 * routing ctl_ns.c.
 *
 * What one volume's trouble does to the others: nothing. A volume whose
 * server cannot be reached at start and which the cache holds no copy
 * of is left out (its directory answers EIO, the log says why); a server
 * lost later takes only its volume offline (each volume has its own
 * connection, struct conn). A volume id seen twice (two servers that
 * drew the same random id) would mix chunks and accounting in the shared
 * chunk store: the second volume is left out, with a message.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunkstore/cs.h"
#include "cm/cm_ctl.h"
#include "cm/daemon.h"
#include "cm/daemon_i.h"
#include "common/log.h"
#include "common/util.h"

/* Mirrors open_cs() of daemon.c for the shared store. */
static int
ns_open_cs(struct cm_ns *ns)
{
	struct cs_params p = {0};
	int err = 0;

	p.chunk_size = ns->cfg.chunk_size;
	p.fd_cache = CS_FD_CACHE_DEFAULT * 4;
	p.limits.max_bytes = ns->cfg.cache_size;
	p.log = log_callback;
	p.log_arg = (void *)(uintptr_t)LOG_CS;
	ns->cs = cs_open(ns->cfg.cache_dir, &p, &err);
	if (!ns->cs && err == -ENOENT) {
		err = cs_create(ns->cfg.cache_dir, &p);
		if (err < 0)
			return err;
		log_info(LOG_MAIN, "created cache in '%s'", ns->cfg.cache_dir);
		ns->cs = cs_open(ns->cfg.cache_dir, &p, &err);
	}
	if (!ns->cs)
		return err ? err : -EIO;
	ns->chunk_size = cs_chunk_size(ns->cs);
	return 0;
}

/* Volume @i: its settings, its directory under the cache, its token,
 * then daemon.c's open (the server's volume information, or the
 * cache's). @return 0, or -errno: the volume is left out (logged). */
static int
open_vol(struct cm_ns *ns, size_t i)
{
	struct cm *cm = ns->vols[i];
	struct cm_config vc;
	char *dir = NULL;
	int rc;

	rc = cm_config_for_vol(&ns->cfg, i, &vc);
	if (rc < 0)
		return rc;
	cm_init(cm, &vc);
	cm->ns = ns;
	cm->slot = (unsigned)i + 1;
	cm->ino_base = (uint64_t)cm->slot << CM_NS_SLOT_SHIFT;
	cm->ns_dir = ns->cfg.vols[i].dir;
	cm->cs = ns->cs;
	cm->cs_shared = true;
	if (asprintf(&dir, "%s/vol/%s", ns->cfg.cache_dir, cm->ns_dir) < 0)
		return -ENOMEM;
	rc = util_mkdir_p(dir, 0700);
	if (rc < 0) {
		log_err(LOG_MAIN, "volume '%s': cannot use '%s': %s",
			cm->ns_dir, dir, strerror(-rc));
		free(dir);
		return rc;
	}
	free(cm->cfg.cache_dir);
	cm->cfg.cache_dir = dir;
	cm->token = cm_read_token(cm->cfg.token_file);
	if (!cm->token) {
		rc = -errno;
		log_err(LOG_MAIN,
			"volume '%s': cannot read token file '%s': "
			"%s",
			cm->ns_dir, cm->cfg.token_file, strerror(-rc));
		return rc;
	}
	rc = cm_daemon_open(cm);
	if (rc < 0)
		return rc;
	for (size_t k = 0; k < i; k++) {
		struct cm *o = ns->vols[k];

		if (!o->ns_failed && o->vi.id == cm->vi.id) {
			log_err(LOG_MAIN,
				"volume '%s' (%s) has the id %u of "
				"volume '%s' (%s): one cache cannot "
				"hold both; '%s' is left out",
				cm->ns_dir, cm->cfg.server, cm->vi.id,
				o->ns_dir, o->cfg.server, cm->ns_dir);
			return -EEXIST;
		}
	}
	log_info(LOG_MAIN, "volume '%s' is '%s' from %s (id %u)", cm->ns_dir,
		 cm->cfg.volume, cm->cfg.server, cm->vi.id);
	return 0;
}

int
cm_ns_open(struct cm_ns *ns, struct cm_config *cfg)
{
	size_t ok = 0;
	int rc;

	memset(ns, 0, sizeof(*ns));
	ns->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	cm_loop_init(&ns->loop);
	ns->root_ctime_ns = util_wall_ns();
	rc = ns_open_cs(ns);
	if (rc < 0) {
		log_err(LOG_MAIN, "cannot open cache '%s': %s",
			ns->cfg.cache_dir,
			rc == -EBUSY ? "in use by another process"
				     : strerror(-rc));
		return rc;
	}
	ns->vols = calloc(ns->cfg.nvols, sizeof(*ns->vols));
	if (!ns->vols)
		return -ENOMEM;
	for (size_t i = 0; i < ns->cfg.nvols; i++) {
		ns->vols[i] = calloc(1, sizeof(struct cm));
		if (!ns->vols[i])
			return -ENOMEM;
		ns->n = i + 1;
		if (open_vol(ns, i) < 0) {
			ns->vols[i]->ns_failed = true;
			log_warn(LOG_MAIN,
				 "volume '%s' is not served: its "
				 "directory answers EIO",
				 ns->cfg.vols[i].dir);
		} else {
			ok++;
		}
	}
	if (!ok) {
		log_err(LOG_MAIN,
			"none of the %zu configured volumes can be "
			"served",
			ns->n);
		return -EHOSTUNREACH;
	}
	return 0;
}

void
cm_ns_before_fork(struct cm_ns *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		if (!ns->vols[i]->ns_failed)
			cm_daemon_before_fork(ns->vols[i]);
}

int
cm_ns_after_fork(struct cm_ns *ns)
{
	for (size_t i = 0; i < ns->n; i++) {
		int rc;

		if (ns->vols[i]->ns_failed)
			continue;
		rc = cm_daemon_after_fork(ns->vols[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int
cm_ns_build(struct cm_ns *ns)
{
	int rc = cm_loop_new(&ns->loop);

	if (rc < 0) {
		log_err(LOG_MAIN, "cannot set up the event loop: %s",
			strerror(-rc));
		return rc;
	}
	for (size_t i = 0; i < ns->n; i++) {
		if (ns->vols[i]->ns_failed)
			continue;
		rc = cm_daemon_build(ns->vols[i]);
		if (rc < 0)
			return rc;
	}
	return cm_ns_ctl_start(ns);
}

int
cm_ns_start(struct cm_ns *ns)
{
	int rc = cm_loop_run(&ns->loop);

	for (size_t i = 0; rc == 0 && i < ns->n; i++)
		if (!ns->vols[i]->ns_failed)
			rc = cm_daemon_start(ns->vols[i]);
	return rc;
}

/* On the loop thread, its last job: every volume's loop modules. */
static void
ns_teardown(void *arg)
{
	struct cm_ns *ns = arg;

	for (size_t i = ns->n; i-- > 0;)
		if (ns->vols[i]->loop.owner)
			cm_daemon_teardown(ns->vols[i]);
}

void
cm_ns_stop(struct cm_ns *ns)
{
	cm_ns_ctl_stop(ns);
	cm_loop_stop(&ns->loop, ns_teardown, ns);
	for (size_t i = ns->n; i-- > 0;)
		cm_daemon_stop(ns->vols[i]);
}

void
cm_ns_close(struct cm_ns *ns)
{
	for (size_t i = ns->n; i-- > 0;) {
		struct cm *cm = ns->vols[i];

		if (cm->cfg.volume)
			log_info(LOG_MAIN, "volume '%s':", cm->ns_dir);
		cm_daemon_close(cm);
		cm_release(cm);
		free(cm);
	}
	free(ns->vols);
	ns->vols = NULL;
	ns->n = 0;
	cs_close(ns->cs);
	ns->cs = NULL;
	cm_loop_release(&ns->loop);
	cm_config_release(&ns->cfg);
}
