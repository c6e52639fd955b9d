/*
 * cs_cull.c - culling: which clean chunks to evict, and when.
 *
 * Thresholds work as cachefilesd's brun/bcull/bstop, in percent of the
 * configured LIMIT that is free, for bytes and files separately. An
 * allocation that would leave less than cull_pct free evicts clean,
 * unpinned, idle chunks in least-recently-used order until run_pct would be
 * free; if less than stop_pct would still be free, it fails with -ENOSPC.
 * Dirty and pinned chunks, working copies and busy slots are never evicted.
 * It does not schedule passes: the caller's timer calls cs_cull.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "cs_i.h"

/* Would less than @pct percent of @limit be free with @used in use? */
static int
below(uint64_t used, uint64_t limit, unsigned pct)
{
	uint64_t avail = used >= limit ? 0 : limit - used;

	return (unsigned __int128)avail * 100 < (unsigned __int128)limit * pct;
}

static int
below_any(const struct cs_store *cs, uint64_t add_bytes, uint64_t add_files,
	  unsigned pct)
{
	return below(cs->bytes_used + add_bytes, cs->lim.max_bytes, pct) ||
	       below(cs->files_used + add_files, cs->lim.max_files, pct);
}

struct cand {
	uint64_t last_use;
	uint32_t slot;
};

/*
 * Sort by last_use, then slot: LSD radix sort in 16-bit digits, as many
 * passes as the largest stamp needs (two for the first 4G uses). A cull
 * pass over 1M chunks is then a few linear sweeps instead of an n log n
 * sort under the lock. Candidates are gathered in slot order and the sort
 * is stable, so equal stamps stay in slot order.
 */
static int
sort_cands(struct cand *v, size_t n)
{
	struct cand *tmp;
	uint64_t max = 0;
	size_t *count;

	for (size_t i = 0; i < n; i++)
		if (v[i].last_use > max)
			max = v[i].last_use;
	tmp = malloc(n * sizeof(*tmp));
	count = malloc(65536 * sizeof(*count));
	if (!tmp || !count) {
		free(tmp);
		free(count);
		return -ENOMEM;
	}
	for (unsigned shift = 0; shift < 64 && (max >> shift); shift += 16) {
		size_t sum = 0;

		memset(count, 0, 65536 * sizeof(*count));
		for (size_t i = 0; i < n; i++)
			count[(v[i].last_use >> shift) & 0xffff]++;
		for (size_t d = 0; d < 65536; d++) {
			size_t c = count[d];

			count[d] = sum;
			sum += c;
		}
		for (size_t i = 0; i < n; i++)
			tmp[count[(v[i].last_use >> shift) & 0xffff]++] = v[i];
		memcpy(v, tmp, n * sizeof(*v));
	}
	free(tmp);
	free(count);
	return 0;
}

/*
 * One cull pass, counting @add_bytes/@add_files about to be allocated:
 * nothing unless below the cull level, then evict until the run level.
 * @return chunks evicted (>= 0) or -ENOMEM.
 */
int
cs_cull_locked(struct cs_store *cs, uint64_t add_bytes, uint64_t add_files)
{
	struct cand *v;
	size_t n = 0;
	int evicted = 0;

	if (!below_any(cs, add_bytes, add_files, cs->lim.cull_pct))
		return 0;
	v = malloc((cs->nslots ? cs->nslots : 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; i < cs->nslots; i++) {
		const struct cs_slot *s = &cs->slots[i];

		if ((s->flags & (CS_SF_USED | CS_SF_COMMITTED | CS_SF_DIRTY |
				 CS_SF_PINNED | CS_SF_BUSY)) !=
			    (CS_SF_USED | CS_SF_COMMITTED) ||
		    s->wc)
			continue;
		v[n].last_use = s->last_use;
		v[n].slot = i;
		n++;
	}
	if (sort_cands(v, n) < 0) {
		free(v);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		if (!below_any(cs, add_bytes, add_files, cs->lim.run_pct))
			break;
		cs_drop_slot(cs, v[i].slot, "culled");
		cs->evictions++;
		evicted++;
	}
	free(v);
	if (evicted)
		cs_log(cs, LOG_DEBUG, "culled %d chunks from '%s'", evicted,
		       cs->dir);
	return evicted;
}

/*
 * Make room for @add_bytes and @add_files (lock held): cull if the
 * allocation crosses the cull level, refuse it if it would cross the stop
 * level anyway. @return 0 or -ENOSPC.
 */
int
cs_reserve(struct cs_store *cs, uint64_t add_bytes, uint64_t add_files)
{
	cs_cull_locked(cs, add_bytes, add_files);
	if (below_any(cs, add_bytes, add_files, cs->lim.stop_pct)) {
		cs_log(cs, LOG_WARNING,
		       "cache '%s' full: %llu of %llu bytes, %llu of %llu "
		       "files "
		       "in use, the rest dirty or pinned",
		       cs->dir, (unsigned long long)cs->bytes_used,
		       (unsigned long long)cs->lim.max_bytes,
		       (unsigned long long)cs->files_used,
		       (unsigned long long)cs->lim.max_files);
		return -ENOSPC;
	}
	return 0;
}
