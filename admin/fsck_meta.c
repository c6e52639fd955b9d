/*
 * fsck_meta.c - cairn-fsck's check of cairnd's metadata caches: finds the
 * meta.tdb files of a cache folder and runs the record layer's own
 * checker, vc_check() (cm/vc.c), on each, so the format is parsed in one
 * place; and checks tdb's own structure of the write-state and replay-log
 * files (dirty.tdb, rlog.tdb) beside them, which it never rewrites. It is
 * not a check of the chunk store (cs_check() is).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/fsck_meta.h"
#include "cm/vc.h"
#include "common/tdbw.h"

/* An error that says nothing about the file (the process ran out of
 * memory or descriptors, or a check's copy of it out of space): never a
 * reason to remove it. */
static bool
transient(int rc)
{
	return rc == -ENOMEM || rc == -EMFILE || rc == -ENFILE ||
	       rc == -EINTR || rc == -EAGAIN || rc == -ENOSPC ||
	       rc == -EDQUOT;
}

static int
check_one(const char *path, int repair,
	  void (*report)(void *arg, int error, const char *msg), void *arg,
	  struct fsck_meta_result *res)
{
	struct vc_check_result r;
	int rc;

	rc = vc_check(path, repair, report, arg, &r);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0 && transient(rc)) {
		char msg[512];

		/* Nothing is known of the file, so it is kept. */
		res->errors++;
		snprintf(msg, sizeof(msg),
			 "cannot read metadata cache '%s': %s; not removed "
			 "(run cairn-fsck again)",
			 path, strerror(-rc));
		report(arg, 1, msg);
		return rc;
	}
	if (rc < 0) {
		char msg[512];

		/* Not a tdb, or one tdb cannot read: cairnd would recreate
		 * it empty (and fetch again), so --repair removes it. A file
		 * left in the middle of a store is not this: vc_check()
		 * checks a recovered copy of it (a note). */
		res->errors++;
		if (repair && rc != -EACCES && rc != -EPERM && rc != -EROFS &&
		    unlink(path) == 0) {
			res->fixed++;
			snprintf(msg, sizeof(msg),
				 "cannot read metadata cache '%s': %s; removed "
				 "(cairnd fetches again)",
				 path, strerror(-rc));
			report(arg, 1, msg);
			return 0;
		}
		snprintf(msg, sizeof(msg),
			 "cannot read metadata cache '%s': %s%s", path,
			 strerror(-rc), repair ? "" : "; would be removed");
		report(arg, 1, msg);
		return rc;
	}
	res->files++;
	res->records += r.records;
	res->errors += r.layout + r.bad + r.broken + r.orphans;
	res->fixed += r.fixed;
	return 0;
}

/* The keys a rebuild would lose, for the report: the first few in hex. */
struct lost_keys {
	char list[400];
	uint64_t n;
};

static void
lost_key(void *arg, const void *key, size_t klen)
{
	struct lost_keys *lk = arg;
	size_t len = strlen(lk->list);
	const uint8_t *k = key;

	if (lk->n++ >= 8 || len + 2 * klen + 3 >= sizeof(lk->list))
		return;
	if (len)
		lk->list[len++] = ' ';
	for (size_t i = 0; i < klen && i < 40; i++, len += 2)
		snprintf(lk->list + len, sizeof(lk->list) - len, "%02x", k[i]);
}

/*
 * tdb's structure of @path (dirty.tdb: write states of files not yet
 * stored; rlog.tdb: operations not yet acknowledged by the server). Never
 * written, also with @repair: a rebuild keeps only what tdb can still
 * find, and each record lost is a write cairnd acknowledged, so the
 * finding says what a rebuild would keep and lose (a dry run in memory)
 * and leaves the decision to the admin. The journal beside the file
 * (NAME.jnl) is not a tdb and is read by cairnd only.
 */
static void
check_state(const char *path, const char *what, int repair,
	    void (*report)(void *arg, int error, const char *msg), void *arg,
	    struct fsck_meta_result *res)
{
	struct tdbw_rebuild_result rr;
	struct lost_keys lk = {{0}, 0};
	struct tdb_context *tdb;
	char why[256], msg[2048];
	int rc, recovered;

	tdb = tdbw_open_ro(path, TDB_NOLOCK, &recovered);
	if (!tdb) {
		if (errno == ENOENT)
			return;
		res->errors++;
		snprintf(msg, sizeof(msg),
			 "cannot read %s '%s': %s; not %s (it holds writes "
			 "cairnd acknowledged: cairn-fsck(8), DAMAGED WRITE "
			 "STATE)",
			 what, path, strerror(errno ? errno : EIO),
			 repair ? "repaired" : "repairable by cairn-fsck");
		report(arg, 1, msg);
		return;
	}
	res->state_files++;
	if (recovered) {
		snprintf(msg, sizeof(msg),
			 "%s '%s' was left in the middle of a transaction (a "
			 "killed cairnd): the next cairnd start recovers it; "
			 "checked as recovered",
			 what, path);
		report(arg, 0, msg);
	}
	rc = tdbw_check(tdb, why, sizeof(why));
	if (rc == 0)
		goto out;
	res->errors++;
	if (rc != -EUCLEAN) {
		snprintf(msg, sizeof(msg), "cannot check %s '%s': %s", what,
			 path, strerror(-rc));
		report(arg, 1, msg);
		goto out;
	}
	rc = tdbw_rebuild(&tdb, NULL, 0, 0, lost_key, &lk, &rr);
	if (rc)
		snprintf(msg, sizeof(msg),
			 "%s '%s': tdb's structure is damaged (tdb_check: %s); "
			 "not %s: it holds writes cairnd acknowledged, and "
			 "even a dry run of a rebuild fails (%s): keep a copy "
			 "of the cache folder (cairn-fsck(8), DAMAGED WRITE "
			 "STATE)",
			 what, path, why, repair ? "repaired" : "repairable",
			 strerror(-rc));
	else
		snprintf(msg, sizeof(msg),
			 "%s '%s': tdb's structure is damaged (tdb_check: %s); "
			 "not %s: it holds writes cairnd acknowledged; a "
			 "rebuild would keep %llu records and drop %llu keys "
			 "found in two versions%s%s%s, and lose without a "
			 "trace any record tdb cannot find any more: keep a "
			 "copy of the cache folder (cairn-fsck(8), DAMAGED "
			 "WRITE STATE)",
			 what, path, why, repair ? "repaired" : "repairable",
			 (unsigned long long)rr.copied,
			 (unsigned long long)rr.dropped,
			 lk.n ? " (" : "", lk.list,
			 lk.n > 8 ? " ...)" : lk.n ? ")" : "");
	report(arg, 1, msg);
out:
	tdb_close(tdb);
}

/* The write-state and replay-log files of one cache (or volume) folder. */
static void
check_states(const char *dir, int repair,
	     void (*report)(void *arg, int error, const char *msg), void *arg,
	     struct fsck_meta_result *res)
{
	char path[4096];

	if (snprintf(path, sizeof(path), "%s/dirty.tdb", dir) <
	    (int)sizeof(path))
		check_state(path, "write-state file", repair, report, arg,
			    res);
	if (snprintf(path, sizeof(path), "%s/rlog.tdb", dir) <
	    (int)sizeof(path))
		check_state(path, "replay log", repair, report, arg, res);
}

int
fsck_meta(const char *dir, int repair,
	  void (*report)(void *arg, int error, const char *msg), void *arg,
	  struct fsck_meta_result *res)
{
	char path[4096];
	struct dirent *de;
	DIR *vd;
	int rc, first = 0;

	memset(res, 0, sizeof(*res));
	snprintf(path, sizeof(path), "%s/meta.tdb", dir);
	first = check_one(path, repair, report, arg, res);
	check_states(dir, repair, report, arg, res);
	snprintf(path, sizeof(path), "%s/vol", dir);
	vd = opendir(path);
	if (!vd)
		return first;
	while ((de = readdir(vd)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (snprintf(path, sizeof(path), "%s/vol/%s/meta.tdb", dir,
			     de->d_name) >= (int)sizeof(path))
			continue;
		rc = check_one(path, repair, report, arg, res);
		if (rc < 0 && first == 0)
			first = rc;
		snprintf(path, sizeof(path), "%s/vol/%s", dir, de->d_name);
		check_states(path, repair, report, arg, res);
	}
	closedir(vd);
	return first;
}
