/*
 * test_cm_inode.c - cairnd's inode table (cm/inode.c): entries keep the
 * last name they were looked up by, and ino_free() releases everything,
 * names included (under --enable-sanitizers LeakSanitizer fails this test
 * when it does not; that leak showed at every unmount).
 */
#include "config.h"

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
	return done_testing();
}
