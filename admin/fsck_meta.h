/*
 * fsck_meta.h - cairn-fsck's check of cairnd's metadata caches
 * (meta.tdb files), apart from the chunk store's check.
 *
 * Layer rule: this header includes nothing of cairn, so cairn_fsck.c
 * (which may see chunkstore/ only) can call it; fsck_meta.c alone
 * reaches the record layer (cm/vc.h, FUSE-free and network-free) and
 * the tdb wrapper (common/tdbw.h) for the structure of dirty.tdb and
 * rlog.tdb.
 */
#ifndef CAIRN_ADMIN_FSCK_META_H
#define CAIRN_ADMIN_FSCK_META_H

#include <stdint.h>

struct fsck_meta_result {
	uint64_t files;	  /* meta.tdb files checked */
	uint64_t records; /* records read */
	uint64_t errors;  /* damaged records, broken listings, orphan pages */
	uint64_t fixed;	  /* of those, removed (@repair) */
	uint64_t state_files; /* dirty.tdb and rlog.tdb files checked */
};

/*
 * Check CACHEDIR/meta.tdb and every CACHEDIR/vol/NAME/meta.tdb (cairnd
 * (8) "SEVERAL VOLUMES"): each 'A', 'D', 'G', 'I' and 'X' record's version
 * and CRC32C, each listing's pages, and pages no listing names (orphans).
 * With @repair, remove what is found (everything there may be fetched
 * again). Then the structure of every dirty.tdb and rlog.tdb beside
 * them (tdb_check(), read-only; a file left in a transaction is checked
 * as recovered, on a copy): these hold writes cairnd acknowledged, so a
 * damaged one is rebuilt (@repair) only when dirty.tdb's digest proves
 * the rebuild complete; otherwise (and rlog.tdb always) it is reported
 * with what a rebuild would keep and lose and left as it is (an
 * uncorrected error: the admin decides, cairn-fsck(8) "DAMAGED WRITE
 * STATE"). @report hears each finding (@error 1) and note (0). The caller
 * holds the cache directory's lock (cairn-fsck runs this from the hook of
 * cs_check_locked()), so no cairnd opens the files meanwhile.
 * @return 0 or a negative errno (a file that cannot be opened).
 */
int fsck_meta(const char *dir, int repair,
	      void (*report)(void *arg, int error, const char *msg), void *arg,
	      struct fsck_meta_result *res);

#endif
