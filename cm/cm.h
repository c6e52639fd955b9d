/*
 * cm.h - what every level of cairnd shares: the settings (struct
 * cm_config, conf.c), the chunk store's key of a chunk, an HTTP result as
 * an errno, the bearer token file. The daemon's own context, struct cm,
 * is cm/daemon_i.h, which only the front ends and daemon.c see; every
 * module below them gets what it uses through its constructor.
 *
 * Layer rule: FUSE-free (this header is part of libcm), level 2 of
 * doc/cm.md "Levels": it includes no other cm/ header.
 *
 * Locks. The only nesting is ino table lock (inode.h) > vc lock (vc.h) >
 * cs lock (chunkstore, internal): a thread holding one may take those to
 * its right, never to its left. Every other lock is a leaf: nothing else
 * is locked and no other module is called while it is held.
 *   wb->lock (wb.c: write states; only its own dirty.tdb under it)
 *   rlog's l->lock (the tdb) and l->qlock (group-commit queue): rlog.c
 *     drops qlock before it takes l->lock, so they do not nest either
 *   struct cm's lock (volinfo, daemon_i.h), loop.c's qlock (the job
 *     queue)
 *   fetch.c's slock (store thread queue), http.c's submit lock
 *   fuse_ops.c: the notifier's mu, and struct cm_file's mu (readahead
 *     state; fetch_prefetch() is called after it is dropped)
 * The loop's stopping flag is an atomic, read without a lock
 * (cm_stopping(), loop.h).
 */
#ifndef CAIRN_CM_CM_H
#define CAIRN_CM_CM_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "chunkstore/cs.h"
#include "common/conf.h"
#include "common/fid.h"
#include "common/proto.h"

/*
 * One volume of a namespace (cairnd.conf(5) "[volume DIR]" sections):
 * served as MOUNTPOINT/DIR. @volume is the name on the server (default
 * DIR); @server and @token_file default to the top-level settings.
 */
struct cm_volconf {
	char *dir;	  /* the name under the mount root (the section's) */
	char *volume;	  /* the volume's name on the server, or NULL: dir */
	char *server;	  /* or NULL: the top-level server */
	char *token_file; /* or NULL: the top-level token */
	char *origin;	  /* "FILE:LINE" of the section header's first key */
};

/* A server named once (cairnd.conf(5) "[server ALIAS]"): a volume's
 * "server = ALIAS" and a mount point's "ALIAS:VOLUME" target name it. */
struct cm_srvconf {
	char *alias;
	char *url;
};

/* At most this many volumes in one namespace (inode slots, daemon_i.h). */
#define CM_NS_MAX_VOLUMES 1024

/* Settings of one cairnd, from the command line and cairn.conf(5). */
struct cm_config {
	char *server;	    /* base URL of cairn-vold */
	char *volume;	    /* volume name */
	char *token_file;   /* file holding the bearer token */
	char *cache_dir;    /* chunk store + metadata cache */
	char *mountpoint;
	char *config_file;  /* what was loaded, or NULL */
	char *fuse_opts;    /* extra -o options, comma-separated, or NULL */
	char *ca_file;	    /* HTTPS CA bundle, or NULL */
	char *ctl_socket;   /* control socket path, or NULL: the default */
	char *proxy;	    /* HTTP proxy URL, or NULL: none (never the
			       environment's http_proxy) */
	char *metrics_listen; /* loopback ADDR:PORT for GET /metrics, or
				 NULL: none (ctl_metrics.c) */
	uint64_t cache_size;	   /* bytes (cs limit) */
	uint64_t dirty_limit;	   /* bytes; 0: a quarter of cache_size, at
				      most 256 MiB (wb.c) */
	uint32_t chunk_size;	   /* bytes, for a new cache only */
	uint64_t fetch_timeout_ms; /* bound on a miss */
	bool writeback;		   /* write-mode: false sync, true writeback
				      (the mode at start; fs setpolicy
				      changes the running one, replay.c) */
	uint64_t writeback_delay_ms; /* longest wait of a logged change
					before its drain starts */
	bool log_sync_close;	   /* log-sync: false op (each writeback op
				      durable in the log when it returns),
				      true close (a metadata op's record
				      durable at the next close/fsync, tick
				      or disconnect; replay.c) */
	double entry_timeout;	   /* seconds the kernel keeps names */
	double attr_timeout;	   /* seconds the kernel keeps attributes */
	unsigned max_parallel;	   /* HTTP transfers at once */
	unsigned readahead_max;	   /* chunks of readahead per open file */
	unsigned threads;	   /* FUSE worker threads (max idle) */
	unsigned ctl_conns_per_uid; /* control connections of one non-root
				       uid; 0 = no per-uid cap */
	int log_level;
	bool foreground;
	bool use_syslog;
	bool allow_insecure_http; /* http:// to a host not on this machine */
	struct conf_origins origins; /* where each setting came from */
	struct cm_volconf *vols;     /* "[volume DIR]" sections: a namespace
					of several volumes (cairnd(8)); none:
					the one volume of --volume */
	size_t nvols;
	struct cm_srvconf *srvs; /* "[server ALIAS]" sections */
	size_t nsrvs;
};

/* Default values (doc'd in cairnd(8)); fields not set stay NULL/0. */
void cm_config_init(struct cm_config *c);
void cm_config_release(struct cm_config *c);
/*
 * Set one setting by its long-option / ini key name ("server", "cache-size",
 * "fetch-timeout", ...). @return 0, -ENOENT for an unknown key, -EINVAL for
 * a bad value (a message goes to *why, a static string).
 */
int cm_config_set(struct cm_config *c, const char *key, const char *value,
		  const char **why);
/* cm_config_set(), and note @origin ("FILE:LINE", "command line") as
 * where @key came from, for cm_config_show(). */
int cm_config_set_from(struct cm_config *c, const char *key,
		       const char *value, const char *origin, const char **why);
/* The write modes' settings, shared by the config and fs setpolicy:
 * "sync" or "writeback"; a duration from 10 ms to 1 h. @return 0 or
 * -EINVAL (nothing changed). */
#define CM_WB_DELAY_MIN_MS 10
#define CM_WB_DELAY_MAX_MS 3600000
int cm_write_mode_parse(const char *v, bool *writeback);
int cm_writeback_delay_parse(const char *v, uint64_t *ms);
/* log-sync: "op" (the default) or "close". @return 0 or -EINVAL. */
int cm_log_sync_parse(const char *v, bool *close);
/*
 * Load the config file @path and its drop-ins ("@path.d/\*.conf", in name
 * order; common/conf.h has the format): keys as cm_config_set(), before
 * any section or in [cairnd]; other sections are skipped. Keys in @skip
 * (NULL-terminated list, may be NULL) are ignored, so the command line
 * wins. A missing @path is an error only with @must. @return 0 or
 * -errno; then @where says "FILE:LINE" (or the file) and *why what was
 * wrong when known.
 */
int cm_config_load(struct cm_config *c, const char *path, bool must,
		   const char *const *skip, char *where, size_t wlen,
		   const char **why);
/* The value of setting @key as text that cm_config_set() takes back
 * (sizes in bytes, durations in ms). @return 1, 0 when not set (NULL),
 * -ENOENT for an unknown key. */
int cm_config_value(const struct cm_config *c, const char *key, char *buf,
		    size_t len);
/* The @i-th setting's key (0, 1, ...), NULL past the last: every key
 * cm_config_value() knows, in --show-config's order. */
const char *cm_config_key(size_t i);
/* --show-config: every setting, its value and where it came from
 * ("default", "FILE:LINE", "command line"), one "key = value  # origin"
 * line each; the token file's name, never the token. */
void cm_config_show(const struct cm_config *c, FILE *out);
/* Set @key of the volume section "[volume @dir]" (created on first
 * use): "volume", "server" or "token". @return 0, -ENOENT unknown key,
 * -EINVAL bad value or name (*why), -E2BIG too many volumes. */
int cm_config_set_vol(struct cm_config *c, const char *dir, const char *key,
		      const char *value, const char *origin, const char **why);
/* Set @key ("url") of "[server @alias]". @return as cm_config_set_vol(). */
int cm_config_set_srv(struct cm_config *c, const char *alias, const char *key,
		      const char *value, const char *origin, const char **why);
/* The URL of server alias @alias, or NULL. */
const char *cm_config_srv_url(const struct cm_config *c, const char *alias);
/* The settings of volume @i of a namespace as a single-volume config
 * @out (a deep copy of @c with server, volume and token of the volume;
 * no volume list). @return 0 or -ENOMEM. */
int cm_config_for_vol(const struct cm_config *c, size_t i,
		      struct cm_config *out);
/* Check that the required settings are present, and the transport rule
 * below. @return 0 or -EINVAL with *why naming the first missing one, or
 * -EPERM when plain http:// would leave the machine without
 * allow-insecure-http (*why names the option). */
int cm_config_check(const struct cm_config *c, const char **why);

/*
 * The transport rule. The bearer token goes with every request, so plain
 * http:// is accepted only where nobody else can read it: a loopback
 * server (127.0.0.0/8, ::1, "localhost"), reached directly or through a
 * loopback proxy. Anything else needs https:// or allow-insecure-http.
 *
 * cm_url_loopback(): whether the host of the http(s) URL @url is one of
 * those loopback names, written literally; a host name other than
 * "localhost", a numeric form inet_pton() does not take ("127.1"), user
 * information with several '@' or a malformed port count as not loopback,
 * so doubt always falls on the refusing side.
 * cm_config_cleartext(): whether @c's requests cross the network in clear
 * text (the case allow-insecure-http allows, and cairnd then warns about).
 * Both are pure: no name is resolved, nothing is connected.
 */
bool cm_url_loopback(const char *url);
bool cm_config_cleartext(const struct cm_config *c);

/* The chunk store's key of chunk @chunk of @fid. */
static inline void
cm_chunk_key(struct cs_key *k, const struct fid *fid, uint64_t chunk)
{
	memset(k, 0, sizeof(*k));
	k->vol = fid->vol;
	memcpy(k->fid, fid->oid, sizeof(k->fid));
	k->chunk = chunk;
}

/* Map an HTTP result (transport errno or status + error body) to a
 * negative errno: what a FUSE request should see. */
int cm_http_errno(int err, long status, const char *body, size_t len);

/* Does the transport errno @err (negative) say that no server is there
 * (refused, unreachable), as opposed to a connection broken mid-way? */
static inline bool
cm_server_refused(int err)
{
	return err == -ECONNREFUSED || err == -EHOSTUNREACH ||
	       err == -ENETUNREACH;
}

/* Bearer token from a file: first line, trimmed. The file is opened with
 * O_NOFOLLOW and must pass util_check_secret_file() (a regular file owned
 * by our user, mode 0600 or stricter): anyone who can read the token can
 * read the volume past every file mode (Invariant 6). A refusal is logged
 * with the mode, the owner and the fix. @return heap string or NULL +
 * errno (EPERM refused, ELOOP a symbolic link, EINVAL an empty or binary
 * file). */
char *cm_read_token(const char *path);

#endif /* CAIRN_CM_CM_H */
