/*
 * fsck_meta.c - cairn-fsck's check of cairnd's metadata caches: finds the
 * meta.tdb files of a cache folder and runs the record layer's own
 * checker, vc_check() (cm/vc.c), on each, so the format is parsed in one
 * place. It is not a check of the chunk store (cs_check() is).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/fsck_meta.h"
#include "cm/vc.h"

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
	if (rc < 0) {
		char msg[512];

		/* Not a tdb, or one tdb cannot read: cairnd would recreate
		 * it empty (and fetch again), so --repair removes it. */
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
	res->errors += r.bad + r.broken + r.orphans;
	res->fixed += r.fixed;
	return 0;
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
	}
	closedir(vd);
	return first;
}
