/*
 * dstream.c - a directory listing as its pages come (dstream.h).
 *
 * Each page's entries go in one block (one malloc: the entries, then
 * their names), so an entry never moves once added and the pointer array
 * of blocks is all that grows. Entry i is found by a binary search of
 * the blocks' first indexes (25 blocks for 100,000 entries).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cm/dstream.h"
#include "common/util.h"

struct dent {
	uint32_t off; /* of the name, in the block's names */
	uint8_t type;
	struct fid fid;
};

struct dblock {
	size_t first; /* index of e[0] in the stream */
	size_t n;
	char *names;
	struct dent e[];
};

struct dwaiter {
	size_t i;
	dstream_cb cb;
	void *arg;
	struct dwaiter *next;
};

/* A name given before a restart: its hash and index + 1 (0: empty). */
struct dgiven {
	uint64_t h;
	size_t idx1;
};

struct dstream {
	pthread_mutex_t lock;
	atomic_uint refs;
	struct fid fid;
	struct dblock **b;
	size_t nb, cap;
	size_t total;
	bool ended;
	int err;
	/* Once restarted, every name given so far (open addressing, at
	 * most half full), so a page after the restart skips them. */
	struct dgiven *given;
	size_t ngiven, given_cap;
	struct dwaiter *waiters; /* loop only */
	void *kept;
	void (*kept_release)(void *);
};

/* With the lock: the block holding entry @i (< s->total). */
static const struct dblock *
block_of(const struct dstream *s, size_t i)
{
	size_t lo = 0, hi = s->nb;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->b[mid]->first <= i)
			lo = mid;
		else
			hi = mid;
	}
	return s->b[lo];
}

static const char *
ent_name(const struct dstream *s, size_t i)
{
	const struct dblock *b = block_of(s, i);

	return b->names + b->e[i - b->first].off;
}

struct dstream *
dstream_new(const struct fid *dir)
{
	struct dstream *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	pthread_mutex_init(&s->lock, NULL);
	atomic_init(&s->refs, 1);
	s->fid = *dir;
	return s;
}

void
dstream_ref(struct dstream *s)
{
	atomic_fetch_add(&s->refs, 1);
}

void
dstream_put(struct dstream *s)
{
	if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	if (s->kept)
		s->kept_release(s->kept);
	for (size_t i = 0; i < s->nb; i++)
		free(s->b[i]);
	free(s->b);
	free(s->given);
	while (s->waiters) {
		struct dwaiter *w = s->waiters;

		s->waiters = w->next;
		free(w);
	}
	pthread_mutex_destroy(&s->lock);
	free(s);
}

const struct fid *
dstream_fid(const struct dstream *s)
{
	return &s->fid;
}

/* With the lock: is @name among the names given before the restart? */
static bool
given_has(const struct dstream *s, const char *name, size_t len, uint64_t h)
{
	size_t mask = s->given_cap - 1;

	for (size_t k = (size_t)h & mask; s->given[k].idx1;
	     k = (k + 1) & mask) {
		const char *o;

		if (s->given[k].h != h)
			continue;
		o = ent_name(s, s->given[k].idx1 - 1);
		if (strlen(o) == len && memcmp(o, name, len) == 0)
			return true;
	}
	return false;
}

/* With the lock: note entry @idx (hash @h) as given. @return 0, -ENOMEM. */
static int
given_add(struct dstream *s, size_t idx, uint64_t h)
{
	size_t mask;

	if ((s->ngiven + 1) * 2 > s->given_cap) {
		size_t cap = s->given_cap ? s->given_cap * 2 : 1024;
		struct dgiven *g = calloc(cap, sizeof(*g));

		if (!g)
			return -ENOMEM;
		for (size_t k = 0; k < s->given_cap; k++) {
			size_t j;

			if (!s->given[k].idx1)
				continue;
			for (j = (size_t)s->given[k].h & (cap - 1); g[j].idx1;
			     j = (j + 1) & (cap - 1))
				;
			g[j] = s->given[k];
		}
		free(s->given);
		s->given = g;
		s->given_cap = cap;
	}
	mask = s->given_cap - 1;
	for (size_t k = (size_t)h & mask;; k = (k + 1) & mask) {
		if (!s->given[k].idx1) {
			s->given[k].h = h;
			s->given[k].idx1 = idx + 1;
			s->ngiven++;
			return 0;
		}
	}
}

/* With the lock: fail the stream. */
static void
end_locked(struct dstream *s, int err)
{
	if (s->ended)
		return;
	s->ended = true;
	s->err = err;
}

int
dstream_add(struct dstream *s, const struct proto_dirent *ents, size_t n)
{
	size_t bytes = 0, k = 0, used = 0;
	struct dblock *b;
	int rc = 0;

	if (!n)
		return 0;
	for (size_t i = 0; i < n; i++)
		bytes += strlen(ents[i].name) + 1;
	b = malloc(sizeof(*b) + n * sizeof(b->e[0]) + bytes);
	pthread_mutex_lock(&s->lock);
	if (s->ended)
		goto out;
	if (b && s->nb == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct dblock **grown = reallocarray(s->b, cap, sizeof(*grown));

		if (grown) {
			s->b = grown;
			s->cap = cap;
		} else {
			free(b);
			b = NULL;
		}
	}
	if (!b) {
		rc = -ENOMEM;
		end_locked(s, rc);
		goto out;
	}
	b->names = (char *)&b->e[n];
	b->first = s->total;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(ents[i].name);

		if (s->given) {
			uint64_t h = util_fnv1a(ents[i].name, len);

			if (given_has(s, ents[i].name, len, h))
				continue;
		}
		b->e[k].off = (uint32_t)used;
		b->e[k].type = (uint8_t)ents[i].attr.type;
		b->e[k].fid = ents[i].attr.fid;
		memcpy(b->names + used, ents[i].name, len + 1);
		used += len + 1;
		k++;
	}
	b->n = k;
	if (!k)
		goto out;
	s->b[s->nb++] = b;
	s->total += k;
	/* Once restarted, new names are given too: after another restart
	 * they are skipped as well. */
	for (size_t i = 0; s->given && i < k; i++) {
		const char *nm = b->names + b->e[i].off;

		if ((rc = given_add(s, b->first + i,
				    util_fnv1a(nm, strlen(nm)))) < 0) {
			end_locked(s, rc);
			break;
		}
	}
	b = NULL;
out:
	pthread_mutex_unlock(&s->lock);
	free(b);
	return rc;
}

void
dstream_restart(struct dstream *s)
{
	pthread_mutex_lock(&s->lock);
	if (!s->given && !s->ended) {
		for (size_t i = 0; i < s->total; i++) {
			const char *nm = ent_name(s, i);
			int rc = given_add(s, i, util_fnv1a(nm, strlen(nm)));

			if (rc < 0) {
				end_locked(s, rc);
				break;
			}
		}
		if (!s->given && !s->ended) {
			/* Nothing given yet: an empty set still marks the
			 * restart (the next page's names go in it). */
			s->given = calloc(1024, sizeof(*s->given));
			s->given_cap = s->given ? 1024 : 0;
			if (!s->given)
				end_locked(s, -ENOMEM);
		}
	}
	pthread_mutex_unlock(&s->lock);
}

void
dstream_end(struct dstream *s, int err)
{
	pthread_mutex_lock(&s->lock);
	end_locked(s, err);
	pthread_mutex_unlock(&s->lock);
}

int
dstream_ent(struct dstream *s, size_t i, char *name, size_t cap,
	    struct fid *fid, uint8_t *type)
{
	int rc;

	pthread_mutex_lock(&s->lock);
	if (i < s->total) {
		const struct dblock *b = block_of(s, i);
		const struct dent *e = &b->e[i - b->first];
		size_t len = strlen(b->names + e->off);

		if (len >= cap) {
			rc = -ENAMETOOLONG;
		} else {
			memcpy(name, b->names + e->off, len + 1);
			*fid = e->fid;
			*type = e->type;
			rc = 1;
		}
	} else if (s->ended) {
		rc = s->err ? s->err : -1;
	} else {
		rc = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

void
dstream_keep(struct dstream *s, void *obj, void (*release)(void *))
{
	if (s->kept)
		s->kept_release(s->kept);
	s->kept = obj;
	s->kept_release = release;
}

size_t
dstream_count(struct dstream *s)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->total;
	pthread_mutex_unlock(&s->lock);
	return n;
}

int
dstream_wait(struct dstream *s, size_t i, dstream_cb cb, void *arg)
{
	struct dwaiter *w;
	bool ready;

	pthread_mutex_lock(&s->lock);
	ready = s->ended || i < s->total;
	pthread_mutex_unlock(&s->lock);
	if (ready)
		return 1;
	w = malloc(sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->i = i;
	w->cb = cb;
	w->arg = arg;
	w->next = s->waiters;
	s->waiters = w;
	return 0;
}

void
dstream_wake(struct dstream *s)
{
	struct dwaiter *run = NULL, **pp;
	size_t total;
	bool ended;

	pthread_mutex_lock(&s->lock);
	total = s->total;
	ended = s->ended;
	pthread_mutex_unlock(&s->lock);
	/* Take the ready ones off first: a callback may wait again. */
	for (pp = &s->waiters; *pp;) {
		struct dwaiter *w = *pp;

		if (ended || w->i < total) {
			*pp = w->next;
			w->next = run;
			run = w;
		} else {
			pp = &w->next;
		}
	}
	while (run) {
		struct dwaiter *w = run;

		run = w->next;
		w->cb(w->arg, 0);
		free(w);
	}
}
