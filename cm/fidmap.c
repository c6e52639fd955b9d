/*
 * fidmap.c - FID -> u64 (see fidmap.h).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cm/fidmap.h"

static size_t
fidmap_hash(const struct fid *f)
{
	uint64_t h = 1469598103934665603ULL ^ f->vol;

	for (size_t i = 0; i < sizeof(f->oid); i++)
		h = (h ^ f->oid[i]) * 1099511628211ULL;
	return (size_t)h;
}

struct fidmap_slot *
fidmap_find(const struct fidmap *m, const struct fid *f)
{
	if (!m->cap)
		return NULL;
	for (size_t i = fidmap_hash(f) & (m->cap - 1);;
	     i = (i + 1) & (m->cap - 1)) {
		if (!m->slot[i].used)
			return NULL;
		if (fid_eq(&m->slot[i].fid, f))
			return &m->slot[i];
	}
}

struct fidmap_slot *
fidmap_put(struct fidmap *m, const struct fid *f, uint64_t dv)
{
	struct fidmap_slot *s = fidmap_find(m, f);
	size_t i;

	if (s) {
		s->dv = dv;
		return s;
	}
	if ((m->n + 1) * 2 > m->cap) {
		size_t nc = m->cap ? m->cap * 2 : 256;
		struct fidmap_slot *ns = calloc(nc, sizeof(*ns));
		struct fidmap grown = {ns, 0, nc};

		if (!ns)
			return NULL;
		for (i = 0; i < m->cap; i++)
			if (m->slot[i].used)
				fidmap_put(&grown, &m->slot[i].fid,
					   m->slot[i].dv);
		free(m->slot);
		*m = grown;
	}
	for (i = fidmap_hash(f) & (m->cap - 1); m->slot[i].used;
	     i = (i + 1) & (m->cap - 1))
		;
	m->slot[i].used = true;
	m->slot[i].fid = *f;
	m->slot[i].dv = dv;
	m->n++;
	return &m->slot[i];
}

void
fidmap_clear(struct fidmap *m)
{
	free(m->slot);
	memset(m, 0, sizeof(*m));
}

