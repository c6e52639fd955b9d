/*
 * inode.c - FUSE inode number <-> FID table with lookup counts.
 *
 * Two chained hash tables over the same entries (by number, by FID) that
 * grow by doubling. It does not load or fetch anything: callers fill the
 * per-entry state from the metadata cache.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cm/inode.h"
#include "cm/vc.h"
#include "common/memtrim.h"

/* The bucket arrays never shrink below this, and halve when the entries
 * drop under an eighth of the buckets (after the kernel forgot a walk):
 * 16 bytes a bucket, 16 MiB for a million inodes otherwise kept for good. */
#define INO_MIN_BUCKETS 1024

struct ino_table {
	pthread_mutex_t lock;
	struct ino_ent **by_ino; /* protected by lock */
	struct ino_ent **by_fid; /* protected by lock */
	size_t nbuckets;	 /* protected by lock; a power of two */
	size_t count;		 /* protected by lock */
	uint64_t next_ino;	 /* protected by lock */
	uint64_t frees;		 /* protected by lock; entries ever freed */
	uint64_t root_ino;	 /* set once: INO_ROOT, or base | INO_ROOT */
	/* ino_set_drop(): listings only an entry held (VC_E_NOSTORE edits)
	 * go to drop() when it is freed, outside the lock: held collects
	 * them under it (protected by lock). */
	void (*drop)(void *arg, struct vc_dir *d);
	void *drop_arg;
	struct vc_dir **held;
	size_t nheld, capheld;
};

static size_t
hash_ino(uint64_t ino)
{
	ino ^= ino >> 33;
	ino *= 0xff51afd7ed558ccdULL;
	ino ^= ino >> 33;
	return (size_t)ino;
}

static size_t
hash_fid(const struct fid *f)
{
	return (size_t)fid_hash(f);
}

/* Rehash every entry into @nb buckets. */
static int
table_resize(struct ino_table *t, size_t nb)
{
	struct ino_ent **bi = calloc(nb, sizeof(*bi));
	struct ino_ent **bf = calloc(nb, sizeof(*bf));

	if (!bi || !bf) {
		free(bi);
		free(bf);
		return -ENOMEM;
	}
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct ino_ent *e = t->by_ino[i], *nx;

		for (; e; e = nx) {
			size_t h = hash_ino(e->ino) & (nb - 1);

			nx = e->next_ino;
			e->next_ino = bi[h];
			bi[h] = e;
		}
		for (e = t->by_fid[i]; e; e = nx) {
			size_t h = hash_fid(&e->fid) & (nb - 1);

			nx = e->next_fid;
			e->next_fid = bf[h];
			bf[h] = e;
		}
	}
	free(t->by_ino);
	free(t->by_fid);
	t->by_ino = bi;
	t->by_fid = bf;
	t->nbuckets = nb;
	return 0;
}

static struct ino_ent *
insert(struct ino_table *t, const struct fid *fid, uint64_t ino)
{
	struct ino_ent *e;
	size_t h;

	if (t->count >= t->nbuckets && table_resize(t, t->nbuckets * 2) < 0)
		return NULL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->ino = ino;
	e->fid = *fid;
	h = hash_ino(ino) & (t->nbuckets - 1);
	e->next_ino = t->by_ino[h];
	t->by_ino[h] = e;
	h = hash_fid(fid) & (t->nbuckets - 1);
	e->next_fid = t->by_fid[h];
	t->by_fid[h] = e;
	t->count++;
	return e;
}

/* Keep @d for drop() if it is an edit the file does not have. @return
 * true if kept (the entry's reference moves to t->held). */
static bool
hold_unstored(struct ino_table *t, struct vc_dir *d)
{
	if (!d || !d->unstored || !t->drop)
		return false;
	if (t->nheld == t->capheld) {
		size_t cap = t->capheld ? 2 * t->capheld : 8;
		struct vc_dir **h = realloc(t->held, cap * sizeof(*h));

		if (!h)
			return false; /* a cache: fetched again online */
		t->held = h;
		t->capheld = cap;
	}
	t->held[t->nheld++] = d;
	return true;
}

/* Under the lock: take what hold_unstored() kept. */
static struct vc_dir **
take_held(struct ino_table *t, size_t *n)
{
	struct vc_dir **h = NULL;

	*n = t->nheld;
	if (!t->nheld)
		return NULL;
	h = t->held;
	t->held = NULL;
	t->nheld = t->capheld = 0;
	return h;
}

/* Outside the lock: hand them to drop() (which takes the references). */
static void
run_held(struct ino_table *t, struct vc_dir **h, size_t n)
{
	for (size_t i = 0; i < n; i++)
		t->drop(t->drop_arg, h[i]);
	free(h);
}

static void
unlink_free(struct ino_table *t, struct ino_ent *e)
{
	struct ino_ent **pp;

	pp = &t->by_ino[hash_ino(e->ino) & (t->nbuckets - 1)];
	while (*pp && *pp != e)
		pp = &(*pp)->next_ino;
	if (*pp)
		*pp = e->next_ino;
	pp = &t->by_fid[hash_fid(&e->fid) & (t->nbuckets - 1)];
	while (*pp && *pp != e)
		pp = &(*pp)->next_fid;
	if (*pp)
		*pp = e->next_fid;
	t->count--;
	t->frees++;
	if (!hold_unstored(t, e->dir))
		vc_dir_put(e->dir);
	memtrim_note(sizeof(*e) + (e->name ? strlen(e->name) + 1 : 0));
	free(e->name);
	free(e);
	/* Failing to shrink keeps the bigger arrays: still correct. */
	if (t->nbuckets > INO_MIN_BUCKETS && t->count < t->nbuckets / 8 &&
	    table_resize(t, t->nbuckets / 2) == 0)
		memtrim_note(t->nbuckets * 2 * sizeof(*t->by_ino));
}

void
ino_store_unstored(struct ino_table *t)
{
	struct vc_dir **h;
	size_t n;

	if (!t->drop)
		return;
	ino_lock(t);
	/* A reference of our own each, kept as a freed entry's is. */
	for (size_t i = 0; i < t->nbuckets; i++)
		for (struct ino_ent *e = t->by_ino[i]; e; e = e->next_ino) {
			struct vc_dir *d;

			if (!e->dir || !e->dir->unstored)
				continue;
			d = vc_dir_get(e->dir);
			if (!hold_unstored(t, d))
				vc_dir_put(d); /* no memory: at its forget */
		}
	h = take_held(t, &n);
	ino_unlock(t);
	run_held(t, h, n);
}

struct ino_table *
ino_new(const struct fid *root)
{
	return ino_new_at(root, 0);
}

struct ino_table *
ino_new_at(const struct fid *root, uint64_t base)
{
	struct ino_table *t = calloc(1, sizeof(*t));
	struct ino_ent *r;

	if (!t)
		return NULL;
	pthread_mutex_init(&t->lock, NULL);
	t->nbuckets = INO_MIN_BUCKETS;
	t->by_ino = calloc(t->nbuckets, sizeof(*t->by_ino));
	t->by_fid = calloc(t->nbuckets, sizeof(*t->by_fid));
	if (!t->by_ino || !t->by_fid)
		goto fail;
	t->root_ino = base | INO_ROOT;
	r = insert(t, root, t->root_ino);
	if (!r)
		goto fail;
	r->nlookup = 1; /* the kernel never forgets the root */
	t->next_ino = t->root_ino + 1;
	return t;
fail:
	ino_free(t);
	errno = ENOMEM;
	return NULL;
}

void
ino_free(struct ino_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; t->by_ino && i < t->nbuckets; i++) {
		struct ino_ent *e = t->by_ino[i], *nx;

		for (; e; e = nx) {
			nx = e->next_ino;
			/* At a clean stop the edits kept in memory go to the
			 * file: a start offline serves them. */
			if (t->drop && e->dir && e->dir->unstored)
				t->drop(t->drop_arg, e->dir);
			else
				vc_dir_put(e->dir);
			free(e->name);
			free(e);
		}
	}
	for (size_t i = 0; i < t->nheld; i++)
		t->drop(t->drop_arg, t->held[i]);
	free(t->held);
	free(t->by_ino);
	free(t->by_fid);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

void
ino_lock(struct ino_table *t)
{
	pthread_mutex_lock(&t->lock);
}

void
ino_unlock(struct ino_table *t)
{
	pthread_mutex_unlock(&t->lock);
}

struct ino_ent *
ino_get_locked(struct ino_table *t, uint64_t ino)
{
	struct ino_ent *e = t->by_ino[hash_ino(ino) & (t->nbuckets - 1)];

	while (e && e->ino != ino)
		e = e->next_ino;
	return e;
}

struct ino_ent *
ino_find_locked(struct ino_table *t, const struct fid *fid)
{
	struct ino_ent *e = t->by_fid[hash_fid(fid) & (t->nbuckets - 1)];

	while (e && !fid_eq(&e->fid, fid))
		e = e->next_fid;
	return e;
}

struct ino_ent *
ino_find_note_locked(struct ino_table *t, const struct fid *fid,
		     struct ino_absent *note)
{
	*note = (struct ino_absent){
		.nbuckets = t->nbuckets,
		.head = t->by_fid[hash_fid(fid) & (t->nbuckets - 1)],
		.frees = t->frees};
	return ino_find_locked(t, fid);
}

/*
 * An entry goes in at the head of its bucket, a resize changes the
 * bucket count, and no entry is freed without counting: the same head,
 * bucket count and free count mean no entry was made in the bucket since
 * (a new one at a freed one's address needs a free first).
 */
bool
ino_still_absent_locked(const struct ino_table *t, const struct fid *fid,
			const struct ino_absent *note)
{
	return t->nbuckets == note->nbuckets && t->frees == note->frees &&
	       t->by_fid[hash_fid(fid) & (t->nbuckets - 1)] == note->head;
}

struct ino_ent *
ino_add_locked(struct ino_table *t, const struct fid *fid)
{
	struct ino_ent *e = ino_find_locked(t, fid);

	if (e)
		return e;
	e = insert(t, fid, t->next_ino);
	if (e)
		t->next_ino++;
	return e;
}

static void
maybe_free(struct ino_table *t, struct ino_ent *e)
{
	if (e->nlookup == 0 && e->nopen == 0 && e->ino != t->root_ino)
		unlink_free(t, e);
}

void
ino_forget(struct ino_table *t, uint64_t ino, uint64_t n)
{
	struct ino_ent *e;
	struct vc_dir **h;
	size_t nh;

	pthread_mutex_lock(&t->lock);
	e = ino_get_locked(t, ino);
	if (e && e->ino != t->root_ino) {
		e->nlookup = n > e->nlookup ? 0 : e->nlookup - n;
		maybe_free(t, e);
	}
	h = take_held(t, &nh);
	pthread_mutex_unlock(&t->lock);
	run_held(t, h, nh);
}

void
ino_set_drop(struct ino_table *t, void (*drop)(void *arg, struct vc_dir *d),
	     void *arg)
{
	pthread_mutex_lock(&t->lock);
	t->drop = drop;
	t->drop_arg = arg;
	pthread_mutex_unlock(&t->lock);
}

static void
set_name(struct ino_ent *e, const struct fid *parent, const char *name,
	 bool listed)
{
	char *n;

	if (e->name && fid_eq(&e->parent, parent) && !strcmp(e->name, name)) {
		e->name_listed = e->name_listed && listed;
		return;
	}
	n = strdup(name);
	if (!n)
		return; /* keeps the old name: only used for conflict copies */
	free(e->name);
	e->name = n;
	e->parent = *parent;
	e->name_listed = listed;
}

void
ino_set_name_locked(struct ino_ent *e, const struct fid *parent,
		    const char *name)
{
	set_name(e, parent, name, false);
}

void
ino_set_listed_name_locked(struct ino_ent *e, const struct fid *parent,
			   const char *name)
{
	if (e->name && !e->name_listed)
		return;
	set_name(e, parent, name, true);
}

int
ino_name_of(struct ino_table *t, const struct fid *fid, struct fid *parent,
	    char *buf, size_t len)
{
	struct ino_ent *e;
	int rc = -ENOENT;

	pthread_mutex_lock(&t->lock);
	e = ino_find_locked(t, fid);
	if (e && e->name && strlen(e->name) < len) {
		strcpy(buf, e->name);
		*parent = e->parent;
		rc = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

bool
ino_close(struct ino_table *t, struct ino_ent *e, bool dio)
{
	bool release = false;
	struct vc_dir **h;
	size_t nh;

	pthread_mutex_lock(&t->lock);
	if (dio && e->dio_writers > 0 && e->dio_writers < UINT16_MAX)
		e->dio_writers--;
	if (e->nopen > 0)
		e->nopen--;
	if (e->nopen == 0 && e->orphan_hold) {
		e->orphan_hold = false;
		release = true;
	}
	maybe_free(t, e);
	h = take_held(t, &nh);
	pthread_mutex_unlock(&t->lock);
	run_held(t, h, nh);
	return release;
}

int
ino_fid(struct ino_table *t, uint64_t ino, struct fid *fid)
{
	struct ino_ent *e;
	int rc = -ENOENT;

	pthread_mutex_lock(&t->lock);
	e = ino_get_locked(t, ino);
	if (e) {
		*fid = e->fid;
		rc = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

uint64_t
ino_of(struct ino_table *t, const struct fid *fid)
{
	struct ino_ent *e;
	uint64_t ino = 0;

	pthread_mutex_lock(&t->lock);
	e = ino_find_locked(t, fid);
	if (e)
		ino = e->ino;
	pthread_mutex_unlock(&t->lock);
	return ino;
}

size_t
ino_count(struct ino_table *t)
{
	size_t n;

	pthread_mutex_lock(&t->lock);
	n = t->count;
	pthread_mutex_unlock(&t->lock);
	return n;
}
