/*
 * daemon_i.c - struct cm's own functions (daemon_i.h, level 7): set up
 * and release the context, read the volume information and the counters.
 * The front ends call these; daemon.c (level 8) builds the modules. They
 * live apart from daemon.c so that no front end calls into the level
 * that calls it.
 */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunkstore/cs.h"
#include "cm/daemon_i.h"
#include "cm/inode.h"
#include "cm/vc.h"
#include "common/metrics.h"

int
cm_init(struct cm *cm, struct cm_config *cfg)
{
	memset(cm, 0, sizeof(*cm));
	cm->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	pthread_mutex_init(&cm->lock, NULL);
	cm_loop_init(&cm->loop);
	atomic_init(&cm->online, 0);
	metrics_hist_init(&cm->st.fetch_lat, metrics_latency_us,
			  metrics_latency_us_n, 1e-6);
	return 0;
}

void
cm_release(struct cm *cm)
{
	cm_config_release(&cm->cfg);
	free(cm->token);
	cm->token = NULL;
	pthread_mutex_destroy(&cm->lock);
	cm_loop_release(&cm->loop);
}

int
cm_volinfo(struct cm *cm, struct proto_volinfo *vi)
{
	int rc = -ENOENT;

	pthread_mutex_lock(&cm->lock);
	if (cm->have_vi) {
		*vi = cm->vi;
		rc = 0;
	}
	pthread_mutex_unlock(&cm->lock);
	return rc;
}

size_t
cm_stats_format(struct cm *cm, char *buf, size_t len)
{
	struct cs_stats cs = {0};
	size_t off = 0;
	int n;

	if (cm->cs)
		cs_get_stats(cm->cs, &cs);
#define P(...)                                                               \
	do {                                                                 \
		n = snprintf(buf + off, len - off, __VA_ARGS__);             \
		if (n < 0 || (size_t)n >= len - off)                         \
			return off;                                          \
		off += (size_t)n;                                            \
	} while (0)
	if (len == 0)
		return 0;
	buf[0] = '\0';
	P("online %d\n", atomic_load(&cm->online));
	off = cm_stats_format_counters(&cm->st, buf, len, off);
	P("inodes %zu\n", cm->ino ? ino_count(cm->ino) : (size_t)0);
	/* Metadata records dropped as damaged (a bad CRC, a torn listing)
	 * and orphan listing pages swept at open (cm/vc.c). */
	P("meta_damaged %llu\n", (unsigned long long)vc_damaged(cm->vc));
	P("meta_swept %llu\n", (unsigned long long)vc_swept(cm->vc));
	P("cache_bytes_used %llu\n", (unsigned long long)cs.bytes_used);
	P("cache_bytes_limit %llu\n", (unsigned long long)cs.bytes_limit);
	P("cache_files_used %llu\n", (unsigned long long)cs.files_used);
	P("cache_evictions %llu\n", (unsigned long long)cs.evictions);
	/* Working copies (copy on write) made since start, and open now. */
	P("cache_copies %llu\n", (unsigned long long)cs.wc_made);
	P("cache_copies_open %llu\n", (unsigned long long)cs.wc_open);
	P("chunk_size %u\n", cm->chunk_size);
#undef P
	return off;
}

struct cm *
cm_ns_find(struct cm_ns *ns, const char *dir, size_t len)
{
	for (size_t i = 0, n = ns ? cm_ns_count(ns) : 0; i < n; i++) {
		struct cm *cm = cm_ns_vol(ns, i);

		if (strlen(cm->ns_dir) == len && !memcmp(cm->ns_dir, dir, len))
			return cm;
	}
	return NULL;
}

struct cm *
cm_ns_of_ino(struct cm_ns *ns, uint64_t ino)
{
	unsigned slot = CM_NS_SLOT(ino);

	if (!ns || slot == 0 || slot > cm_ns_count(ns))
		return NULL;
	return cm_ns_vol(ns, slot - 1);
}
