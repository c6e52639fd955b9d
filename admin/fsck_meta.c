/*
 * fsck_meta.c - cairn-fsck's check of cairnd's metadata caches: finds the
 * meta.tdb files of a cache folder and runs the record layer's own
 * checker, vc_check() (cm/vc.c), on each, so the format is parsed in one
 * place; and checks tdb's own structure of the write-state and replay-log
 * files (dirty.tdb, rlog.tdb) beside them, and dirty.tdb's records against
 * their digest, rewriting one only when nothing can be lost
 * (check_state()). It is not a check of the chunk
 * store (cs_check() is).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/fsck_meta.h"
#include "cm/rlog.h"
#include "cm/vc.h"
#include "common/tdbj.h"
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

/* A rebuild of a write-state file: what the digest said. */
struct state_run {
	int digest; /* tdbj_digest_check() of the rebuilt records */
};

/* Keep the rebuild only when the records are those of the last
 * checkpoint (dirty.tdb's digest): then no write state is lost. */
static int
state_verify(void *arg, struct tdb_context *rebuilt)
{
	struct state_run *sr = arg;

	sr->digest = tdbj_digest_check(rebuilt);
	return sr->digest;
}

/*
 * tdb's structure of @path (dirty.tdb: write states of files not yet
 * stored; rlog.tdb: operations not yet acknowledged by the server). Each
 * record is a write cairnd acknowledged, and a rebuild keeps only what
 * tdb's hash chains still reach, which is not a proof that nothing was
 * lost. So a damaged file is rebuilt (with @repair) only when the
 * rebuilt records match the digest dirty.tdb keeps of them
 * (TDBJ_O_DIGEST, written at every checkpoint; nothing else writes the
 * file at rest): then every record is back as it was. Otherwise (a
 * record missing or changed, chains that loop, or no digest: rlog.tdb)
 * it is left as it is, and the finding says what a rebuild would keep
 * (a dry run in memory) or why it fails; the admin decides. The journal
 * beside it (NAME.jnl) is not a tdb and is read by cairnd only; a
 * rebuild keeps "\0tdbj" (database id and generation), so the pair
 * stays as it was. The rebuilt file is synced before it replaces the
 * old one (no TDB_NOSYNC), the folder after. A sound structure is not
 * the end of it: dirty.tdb's records are compared with the digest too
 * (rlog.tdb has none: -ENOENT), since a record changed in place passes
 * tdb_check().
 */
static void
check_state(const char *path, const char *what, int repair,
	    void (*report)(void *arg, int error, const char *msg), void *arg,
	    struct fsck_meta_result *res)
{
	struct tdbw_rebuild_result rr;
	struct state_run sr = {0};
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
	if (rc == 0) {
		/* Sound structure; are the records those of the last
		 * checkpoint? A record changed in place (a value, or a key
		 * within its own chain) passes tdb_check(). cairnd's start
		 * cannot tell such a file from one a cairnd that ignores
		 * the journal wrote (tdbj.h, TDBJ_O_DIGEST): it takes the
		 * records as they are, writes a new digest over them and
		 * drops what the journal holds as stale. */
		rc = tdbj_digest_check(tdb);
		if (rc == -ESTALE) {
			res->errors++;
			snprintf(msg, sizeof(msg),
				 "%s '%s': tdb's structure is sound, but its "
				 "records do not match the digest written at "
				 "its last checkpoint (a record changed in "
				 "place, or the file written by a cairnd that "
				 "does not keep the journal); not %s: it holds "
				 "writes cairnd acknowledged, and the next "
				 "cairnd start takes its records as they are "
				 "and drops what the journal '%s.jnl' holds as "
				 "stale: keep a copy of the cache folder before "
				 "cairnd starts (cairn-fsck(8), DAMAGED WRITE "
				 "STATE)",
				 what, path, repair ? "repaired" : "repairable",
				 path);
			report(arg, 1, msg);
		} else if (rc && rc != -ENOENT) {
			res->errors++;
			snprintf(msg, sizeof(msg),
				 "cannot read the records of %s '%s': %s", what,
				 path, strerror(-rc));
			report(arg, 1, msg);
		}
		goto out;
	}
	res->errors++;
	if (rc != -EUCLEAN) {
		snprintf(msg, sizeof(msg), "cannot check %s '%s': %s", what,
			 path, strerror(-rc));
		report(arg, 1, msg);
		goto out;
	}
	/* A dry run in memory first, kept only if the digest matches. */
	rc = tdbw_rebuild(&tdb, NULL, 0, 0, state_verify, &sr, &rr);
	if (rc == 0 && repair) {
		int hash;

		/* Read-write (which recovers a file left in a transaction,
		 * as cairnd's start would), and verified again. */
		tdb_close(tdb);
		errno = 0;
		tdb = tdbw_open(path, 0, TDB_NOLOCK, O_RDWR, 0600, NULL, NULL);
		if (!tdb) {
			rc = errno ? -errno : -EIO;
		} else {
			hash = tdb_hash_size(tdb);
			rc = tdbw_rebuild(&tdb, path, hash, TDB_NOLOCK,
					  state_verify, &sr, &rr);
		}
		if (rc == 0) {
			res->fixed++;
			snprintf(msg, sizeof(msg),
				 "%s '%s': tdb's structure was damaged "
				 "(tdb_check: %s); rebuilt: all %llu records "
				 "kept (they match the digest written at its "
				 "last checkpoint: no write state lost)",
				 what, path, why,
				 (unsigned long long)rr.copied);
			report(arg, 1, msg);
			goto out;
		}
	}
	if (rc == 0)
		snprintf(msg, sizeof(msg),
			 "%s '%s': tdb's structure is damaged (tdb_check: %s); "
			 "a rebuild keeps all %llu records (they match the "
			 "digest written at its last checkpoint: no write "
			 "state lost): --repair rebuilds it",
			 what, path, why, (unsigned long long)rr.copied);
	else if (rc == -ESTALE || rc == -ENOENT)
		snprintf(msg, sizeof(msg),
			 "%s '%s': tdb's structure is damaged (tdb_check: %s); "
			 "not %s: it holds writes cairnd acknowledged, and the "
			 "%llu records its hash chains still reach %s: keep a "
			 "copy of the cache folder (cairn-fsck(8), DAMAGED "
			 "WRITE STATE)",
			 what, path, why, repair ? "repaired" : "repairable",
			 (unsigned long long)rr.copied,
			 rc == -ESTALE ? "do not match the digest written at "
					 "its last checkpoint: records are "
					 "lost or changed"
				       : "carry no digest that could prove "
					 "them complete");
	else
		snprintf(msg, sizeof(msg),
			 "%s '%s': tdb's structure is damaged (tdb_check: %s); "
			 "not %s: it holds writes cairnd acknowledged, and it "
			 "cannot be rebuilt (%s: its hash chains loop or "
			 "cross, or name a record tdb cannot read): keep a "
			 "copy of the cache folder (cairn-fsck(8), DAMAGED "
			 "WRITE STATE)",
			 what, path, why, repair ? "repaired" : "repairable",
			 strerror(-rc));
	report(arg, 1, msg);
out:
	if (tdb)
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
		check_state(path, "write-state file", repair, report, arg, res);
	if (snprintf(path, sizeof(path), "%s/rlog.tdb", dir) <
	    (int)sizeof(path))
		check_state(path, "replay log", repair, report, arg, res);
}

/*
 * The replay log's records (read-only, journal included): each decoded
 * and checked (rlog_check(): CRC, format 1-3, lists); a store that
 * carries its bytes (format 3, doc/replay-log.md) is reported as a note
 * with the chunk it was read from: those bytes are the one copy a power
 * cut may leave until cairnd's next start restores the chunk from them.
 * A damaged record is an error, never repaired (it is an acknowledged
 * change).
 */
static void
check_records(const char *dir,
	      void (*report)(void *arg, int error, const char *msg), void *arg,
	      struct fsck_meta_result *res)
{
	char path[4096], msg[4096 + 512], why[256] = "";
	struct rlog_rec rec;
	struct rlog *l;
	uint64_t after = 0, n = 0, bytes = 0;
	int err = 0, rc;

	if (snprintf(path, sizeof(path), "%s/rlog.tdb", dir) >=
		    (int)sizeof(path) ||
	    access(path, F_OK) != 0)
		return;
	l = rlog_open_flags(path, RLOG_O_RDONLY, &err);
	if (!l) {
		if (err == -EBUSY || transient(err))
			return; /* cairnd runs, or no memory: not a finding */
		snprintf(msg, sizeof(msg),
			 "%s: cannot read the replay log's "
			 "records: %s",
			 path, strerror(-err));
		report(arg, 1, msg);
		res->errors++;
		return;
	}
	rc = rlog_check(l, 0, why, sizeof(why));
	if (rc < 0 && !transient(rc)) {
		snprintf(msg, sizeof(msg), "%s: replay log: %s (%s)", path,
			 why[0] ? why : "damaged", strerror(-rc));
		report(arg, 1, msg);
		res->errors++;
	}
	for (;;) {
		rc = rlog_next(l, after, RLOG_MASK_ALL, &rec);
		if (rc == -EUCLEAN && rec.seq > after) {
			after = rec.seq; /* rlog_check() reported it */
			continue;
		}
		if (rc < 0)
			break;
		after = rec.seq;
		if (rec.op.data) {
			n++;
			bytes += rec.op.dlen;
			snprintf(msg, sizeof(msg),
				 "%s: record %llu carries a store's %zu bytes "
				 "(chunk slot %u, generation %u, DV %llu)",
				 path, (unsigned long long)rec.seq, rec.op.dlen,
				 rec.op.data_slot, rec.op.data_gen,
				 (unsigned long long)rec.op.data_dv);
			report(arg, 0, msg);
		}
		rlog_rec_release(&rec);
	}
	if (n) {
		snprintf(msg, sizeof(msg),
			 "%s: %llu store records carry their bytes (%llu "
			 "bytes, format 3)",
			 path, (unsigned long long)n,
			 (unsigned long long)bytes);
		report(arg, 0, msg);
	}
	rlog_close(l);
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
	check_records(dir, report, arg, res);
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
