/*
 * test_cm_inode.c - cairnd's inode table (cm/inode.c): entries keep the
 * last name they were looked up by, and ino_free() releases everything,
 * names included (under --enable-sanitizers LeakSanitizer fails this test
 * when it does not; that leak showed at every unmount).
 */
#include "config.h"

#include <errno.h>

#include <stdio.h>
#include <string.h>

#include "cm/inode.h"
#include "common/log.h"
#include "tests/tap.h"

int
main(void)
{
	struct fid root = {.vol = 7}, a = {.vol = 7}, b = {.vol = 7},
		   c = {.vol = 7};
	struct ino_table *t;
	struct ino_ent *e;
	struct fid parent;
	char buf[64];

	log_init("test_cm_inode", 0, LOG_CRIT);
	root.oid[15] = 1;
	a.oid[15] = 2;
	b.oid[15] = 3;
	c.oid[15] = 4;
	t = ino_new(&root);
	ok(t != NULL, "ino_new");
	if (!t)
		return done_testing();
	ino_lock(t);
	e = ino_add_locked(t, &a);
	ok(e != NULL, "add an entry");
	if (e) {
		ino_set_name_locked(e, &root, "first");
		ino_set_name_locked(e, &root, "second");
	}
	e = ino_add_locked(t, &b);
	if (e)
		ino_set_name_locked(e, &a, "inner");
	ino_unlock(t);
	is_int(ino_name_of(t, &a, &parent, buf, sizeof(buf)), 0, "name of a");
	is_str(buf, "second", "the last name wins");
	ok(fid_eq(&parent, &root), "its parent");
	is_int(ino_count(t), 3, "three entries with the root");
	{
		/* mcache_apply_fetched(): a FID found missing stays missing
		 * while its bucket is unchanged; an entry made for it (or
		 * any free) sends the caller to look again. */
		struct ino_absent note;
		struct fid x = {0}, y = {0};

		x.oid[15] = 40;
		y.oid[15] = 41;
		ino_lock(t);
		ok(ino_find_note_locked(t, &x, &note) == NULL,
		   "note: the FID is missing");
		ok(ino_still_absent_locked(t, &x, &note),
		   "note: nothing changed, still missing");
		ok(ino_add_locked(t, &x) != NULL, "note: an entry is made");
		ok(!ino_still_absent_locked(t, &x, &note),
		   "note: the bucket changed, look again");
		ok(ino_find_note_locked(t, &y, &note) == NULL,
		   "note: another FID missing");
		ino_unlock(t);
		ino_lock(t);
		ok(ino_find_locked(t, &x) != NULL, "note: the made one found");
		ino_unlock(t);
		ino_forget(t, ino_of(t, &x), 0);
		ino_lock(t);
		ok(ino_find_locked(t, &x) == NULL, "note: forgotten, freed");
		ok(!ino_still_absent_locked(t, &y, &note),
		   "note: a free anywhere sends the caller to look again");
		ino_unlock(t);
	}

	/* readdirplus from an opendir snapshot taken before a rename must
	 * not bring the old name back over the lookup's new one. */
	ino_lock(t);
	e = ino_find_locked(t, &a);
	if (e) {
		ino_set_name_locked(e, &root, "renamed");
		ino_set_listed_name_locked(e, &root, "second");
	}
	ino_unlock(t);
	ino_name_of(t, &a, &parent, buf, sizeof(buf));
	is_str(buf, "renamed", "a listing does not override a lookup's name");
	ino_lock(t);
	e = ino_add_locked(t, &c);
	if (e)
		ino_set_listed_name_locked(e, &root, "listed");
	ino_unlock(t);
	is_int(ino_name_of(t, &c, &parent, buf, sizeof(buf)), 0,
	       "a listing names an entry without a name");
	is_str(buf, "listed", "with the listed name");
	ino_lock(t);
	e = ino_find_locked(t, &c);
	if (e)
		ino_set_listed_name_locked(e, &root, "listed2");
	ino_unlock(t);
	ino_name_of(t, &c, &parent, buf, sizeof(buf));
	is_str(buf, "listed2", "a newer listing replaces a listed name");
	ino_lock(t);
	e = ino_find_locked(t, &c);
	if (e) {
		ino_set_name_locked(e, &root, "looked-up");
		ino_set_listed_name_locked(e, &root, "listed3");
	}
	ino_unlock(t);
	ino_name_of(t, &c, &parent, buf, sizeof(buf));
	is_str(buf, "looked-up", "then a lookup's name stays");
	/* Entries still in the table at the end are freed with their names. */
	ino_free(t);

	/* A namespace's volume: every number carries the table's base, the
	 * root is base | 1 and is never forgotten, others are. */
	{
		const uint64_t base = (uint64_t)3 << 48;
		uint64_t na;

		t = ino_new_at(&root, base);
		ok(t != NULL, "ino_new_at");
		if (!t)
			return done_testing();
		is_int(ino_of(t, &root) == (base | INO_ROOT), 1,
		       "the root is base | 1");
		ino_lock(t);
		e = ino_add_locked(t, &a);
		na = e ? e->ino : 0;
		if (e)
			e->nlookup = 1;
		ino_unlock(t);
		is_int(na >> 48, 3, "a new number carries the base");
		is_int(na > (base | INO_ROOT), 1, "after the root");
		ino_forget(t, base | INO_ROOT, 5);
		is_int(ino_fid(t, base | INO_ROOT, &parent), 0,
		       "the root survives a forget");
		ino_forget(t, na, 1);
		is_int(ino_fid(t, na, &parent), -ENOENT,
		       "another entry goes with its last forget");
		is_int(ino_fid(t, INO_ROOT, &parent), -ENOENT,
		       "inode 1 is not this table's");
		ino_free(t);
	}

	/* A walk the kernel forgets: 100,000 entries come and go; the table
	 * shrinks back while the ones still held stay found, both ways. */
	{
		enum { NW = 100000, KEEP = 50 };
		uint64_t *nums = calloc(NW, sizeof(*nums));
		struct fid f = a, got;
		int bad = 0;

		t = ino_new(&root);
		ok(t && nums, "a table for a walk");
		if (!t || !nums) {
			free(nums);
			ino_free(t);
			return done_testing();
		}
		ino_lock(t);
		for (uint32_t i = 0; i < NW; i++) {
			memcpy(f.oid, &i, sizeof(i));
			e = ino_add_locked(t, &f);
			if (!e)
				break;
			e->nlookup = 1;
			ino_set_listed_name_locked(e, &root, "some-name");
			nums[i] = e->ino;
		}
		ino_unlock(t);
		is_int((int)ino_count(t), NW + 1, "every inode of the walk");
		for (uint32_t i = KEEP; i < NW; i++)
			ino_forget(t, nums[i], 1);
		is_int((int)ino_count(t), KEEP + 1, "forgotten ones are freed");
		for (uint32_t i = 0; i < NW; i++) {
			memcpy(f.oid, &i, sizeof(i));
			if (i < KEEP && (ino_fid(t, nums[i], &got) != 0 ||
					 !fid_eq(&got, &f) ||
					 ino_of(t, &f) != nums[i]))
				bad++;
			if (i >= KEEP && (ino_fid(t, nums[i], &got) !=
						  -ENOENT ||
					  ino_of(t, &f) != 0))
				bad++;
		}
		is_int(bad, 0, "after the table shrank, held ones are found "
			       "and forgotten ones are not");
		/* It grows again. */
		ino_lock(t);
		for (uint32_t i = NW; i < 2 * NW; i++) {
			memcpy(f.oid, &i, sizeof(i));
			e = ino_add_locked(t, &f);
			if (e)
				e->nlookup = 1;
		}
		ino_unlock(t);
		is_int((int)ino_count(t), NW + KEEP + 1, "and grows again");
		ino_free(t);
		free(nums);
	}
	return done_testing();
}
