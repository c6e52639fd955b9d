/*
 * conf.c - cairnd's settings: defaults, one setter shared by the command
 * line and cairn.conf(5), the file loader (common/conf.h: the file and its
 * drop-ins), --show-config and the final check.
 *
 * It only parses; it opens nothing but the config file, so the unit test
 * (tests/unit/test_cm_conf.c) runs it without a server or a mount.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cm/cm.h"
#include "common/conf.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/util.h"

void
cm_config_init(struct cm_config *c)
{
	memset(c, 0, sizeof(*c));
	c->cache_size = 1ull << 30;
	c->chunk_size = 256u * 1024;
	c->fetch_timeout_ms = 5000;
	c->writeback_delay_ms = 1000;
	c->entry_timeout = 86400;
	c->attr_timeout = 86400;
	c->max_parallel = 16;
	c->readahead_max = 32;
	c->threads = 16;
	c->ctl_conns_per_uid = 8;
	c->log_level = LOG_INFO;
}

void
cm_config_release(struct cm_config *c)
{
	if (!c)
		return;
	free(c->server);
	free(c->volume);
	free(c->token_file);
	free(c->cache_dir);
	free(c->mountpoint);
	free(c->config_file);
	free(c->fuse_opts);
	free(c->ca_file);
	free(c->ctl_socket);
	free(c->proxy);
	free(c->metrics_listen);
	for (size_t i = 0; i < c->nvols; i++) {
		free(c->vols[i].dir);
		free(c->vols[i].volume);
		free(c->vols[i].server);
		free(c->vols[i].token_file);
		free(c->vols[i].origin);
	}
	free(c->vols);
	for (size_t i = 0; i < c->nsrvs; i++) {
		free(c->srvs[i].alias);
		free(c->srvs[i].url);
	}
	free(c->srvs);
	conf_origins_release(&c->origins);
	memset(c, 0, sizeof(*c));
}

static int
set_str(char **dst, const char *v)
{
	char *s = strdup(v);

	if (!s)
		return -ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

/*
 * metrics-listen: "PORT" (127.0.0.1), "ADDR:PORT" or "[ADDR]:PORT" where
 * ADDR is loopback (127.0.0.0/8, ::1, localhost), "" for none. Anything
 * else is refused: the listener has no authentication, so it must not be
 * reachable from another machine. Kept as "ADDR:PORT" / "[::1]:PORT".
 */
static int
set_metrics_listen(struct cm_config *c, const char *v, const char **why)
{
	char host[64], norm[80];
	const char *colon, *h = v;
	size_t hl;
	struct in_addr a4;
	struct in6_addr a6;
	char *end;
	long port;
	bool v6 = false;

	if (!*v) {
		free(c->metrics_listen);
		c->metrics_listen = NULL;
		return 0;
	}
	colon = strrchr(v, ':');
	if (!colon) {
		h = "127.0.0.1";
		hl = strlen(h);
		colon = v - 1;
	} else if (v[0] == '[') {
		if (colon == v || colon[-1] != ']')
			goto bad;
		h = v + 1;
		hl = (size_t)(colon - 1 - h);
		v6 = true;
	} else {
		hl = (size_t)(colon - v);
	}
	if (hl == 0 || hl >= sizeof(host))
		goto bad;
	memcpy(host, h, hl);
	host[hl] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port < 0 || port > 65535)
		goto bad;
	if (!strcmp(host, "localhost"))
		snprintf(host, sizeof(host), "127.0.0.1");
	if (v6 ? inet_pton(AF_INET6, host, &a6) != 1 ||
			 !IN6_IS_ADDR_LOOPBACK(&a6)
	       : inet_pton(AF_INET, host, &a4) != 1 ||
			 (ntohl(a4.s_addr) >> 24) != 127) {
		*why = "metrics-listen must be a loopback address (127.0.0.1, "
		       "[::1] or localhost): the metrics listener has no "
		       "authentication";
		return -EINVAL;
	}
	snprintf(norm, sizeof(norm), v6 ? "[%s]:%ld" : "%s:%ld", host, port);
	return set_str(&c->metrics_listen, norm);
bad:
	*why = "metrics-listen must be PORT, ADDR:PORT or [ADDR]:PORT";
	return -EINVAL;
}

static int
parse_uint(const char *v, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	unsigned long n;

	if (*v < '0' || *v > '9')
		return -EINVAL;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || *end || n < lo || n > hi)
		return -EINVAL;
	*out = (unsigned)n;
	return 0;
}

static int
parse_seconds(const char *v, double *out)
{
	uint64_t ms;

	if (util_parse_duration_ms(v, &ms) < 0 || ms > 365ull * 86400000)
		return -EINVAL;
	*out = (double)ms / 1000.0;
	return 0;
}

int
cm_write_mode_parse(const char *v, bool *writeback)
{
	if (!strcmp(v, "sync"))
		*writeback = false;
	else if (!strcmp(v, "writeback"))
		*writeback = true;
	else
		return -EINVAL;
	return 0;
}

int
cm_writeback_delay_parse(const char *v, uint64_t *ms)
{
	uint64_t u;

	if (util_parse_duration_ms(v, &u) < 0 || u < CM_WB_DELAY_MIN_MS ||
	    u > CM_WB_DELAY_MAX_MS)
		return -EINVAL;
	*ms = u;
	return 0;
}

int
cm_log_sync_parse(const char *v, bool *close)
{
	if (!strcmp(v, "op"))
		*close = false;
	else if (!strcmp(v, "close"))
		*close = true;
	else
		return -EINVAL;
	return 0;
}

int
cm_config_set(struct cm_config *c, const char *key, const char *v,
	      const char **why)
{
	uint64_t u;
	int lvl;

	*why = NULL;
	if (!strcmp(key, "server")) {
		if (strncmp(v, "http://", 7) && strncmp(v, "https://", 8)) {
			*why = "server must be an http:// or https:// URL";
			return -EINVAL;
		}
		return set_str(&c->server, v);
	}
	if (!strcmp(key, "volume")) {
		if (proto_volname_check(v) < 0) {
			*why = "bad volume name";
			return -EINVAL;
		}
		return set_str(&c->volume, v);
	}
	if (!strcmp(key, "token"))
		return set_str(&c->token_file, v);
	if (!strcmp(key, "cache"))
		return set_str(&c->cache_dir, v);
	if (!strcmp(key, "mountpoint"))
		return set_str(&c->mountpoint, v);
	if (!strcmp(key, "ctl-socket"))
		return set_str(&c->ctl_socket, v);
	if (!strcmp(key, "metrics-listen"))
		return set_metrics_listen(c, v, why);
	if (!strcmp(key, "ca-file"))
		return set_str(&c->ca_file, v);
	if (!strcmp(key, "proxy")) {
		/* Empty means none, so a command line can undo the file. */
		if (!*v) {
			free(c->proxy);
			c->proxy = NULL;
			return 0;
		}
		if (strncasecmp(v, "http://", 7) &&
		    strncasecmp(v, "https://", 8)) {
			*why = "proxy must be an http:// or https:// URL";
			return -EINVAL;
		}
		return set_str(&c->proxy, v);
	}
	if (!strcmp(key, "fuse-options") || !strcmp(key, "o")) {
		if (c->fuse_opts && !strcmp(key, "o")) {
			size_t n = strlen(c->fuse_opts) + strlen(v) + 2;
			char *s = malloc(n);

			if (!s)
				return -ENOMEM;
			snprintf(s, n, "%s,%s", c->fuse_opts, v);
			free(c->fuse_opts);
			c->fuse_opts = s;
			return 0;
		}
		return set_str(&c->fuse_opts, v);
	}
	if (!strcmp(key, "cache-size")) {
		if (util_parse_size(v, &u) < 0 || u < (16u << 20)) {
			*why = "cache-size must be a size of at least 16M";
			return -EINVAL;
		}
		c->cache_size = u;
		return 0;
	}
	if (!strcmp(key, "dirty-limit")) {
		/* 0: the default, a quarter of cache-size (at most 256M). */
		if (util_parse_size(v, &u) < 0 || (u && u < (1u << 20))) {
			*why = "dirty-limit must be a size of at least 1M "
			       "(0: the default)";
			return -EINVAL;
		}
		c->dirty_limit = u;
		return 0;
	}
	if (!strcmp(key, "chunk-size")) {
		if (util_parse_size(v, &u) < 0 || u < PROTO_CHUNK_MIN ||
		    u > PROTO_CHUNK_MAX || (u & (u - 1))) {
			*why = "chunk-size must be a power of two from 64K "
			       "to 4M";
			return -EINVAL;
		}
		c->chunk_size = (uint32_t)u;
		return 0;
	}
	if (!strcmp(key, "fetch-timeout")) {
		if (util_parse_duration_ms(v, &u) < 0 || u < 100 ||
		    u > 3600000) {
			*why = "fetch-timeout must be a duration from 100ms "
			       "to 1h";
			return -EINVAL;
		}
		c->fetch_timeout_ms = u;
		return 0;
	}
	if (!strcmp(key, "write-mode")) {
		if (cm_write_mode_parse(v, &c->writeback) < 0) {
			*why = "write-mode must be sync or writeback";
			return -EINVAL;
		}
		return 0;
	}
	if (!strcmp(key, "writeback-delay")) {
		if (cm_writeback_delay_parse(v, &c->writeback_delay_ms) < 0) {
			*why = "writeback-delay must be a duration from 10ms "
			       "to 1h";
			return -EINVAL;
		}
		return 0;
	}
	if (!strcmp(key, "log-sync")) {
		if (cm_log_sync_parse(v, &c->log_sync_close) < 0) {
			*why = "log-sync must be op or close";
			return -EINVAL;
		}
		return 0;
	}
	if (!strcmp(key, "entry-timeout") || !strcmp(key, "attr-timeout")) {
		double *d = key[0] == 'e' ? &c->entry_timeout
					  : &c->attr_timeout;

		if (parse_seconds(v, d) < 0) {
			*why = "a timeout must be a duration";
			return -EINVAL;
		}
		return 0;
	}
	if (!strcmp(key, "max-parallel")) {
		if (parse_uint(v, 1, 1024, &c->max_parallel) < 0) {
			*why = "max-parallel must be 1..1024";
			return -EINVAL;
		}
		return 0;
	}
	if (!strcmp(key, "ctl-conns-per-uid")) {
		if (parse_uint(v, 0, 1024, &c->ctl_conns_per_uid) < 0) {
			*why = "ctl-conns-per-uid must be 0..1024 (0: no cap)";
			return -EINVAL;
		}
		return 0;
	}
	if (!strcmp(key, "readahead")) {
		if (parse_uint(v, 0, 1024, &c->readahead_max) < 0) {
			*why = "readahead must be 0..1024 chunks";
			return -EINVAL;
		}
		return 0;
	}
	if (!strcmp(key, "threads")) {
		if (parse_uint(v, 1, 256, &c->threads) < 0) {
			*why = "threads must be 1..256";
			return -EINVAL;
		}
		return 0;
	}
	if (!strcmp(key, "log-level")) {
		lvl = log_parse_level(v);
		if (lvl < 0) {
			*why = "log-level must be err, warn, info or debug";
			return -EINVAL;
		}
		c->log_level = lvl;
		return 0;
	}
	if (!strcmp(key, "foreground") || !strcmp(key, "syslog")) {
		if (conf_parse_bool(v, key[0] == 'f' ? &c->foreground
						: &c->use_syslog) < 0) {
			*why = "expected yes or no";
			return -EINVAL;
		}
		return 0;
	}
	if (!strcmp(key, "allow-insecure-http")) {
		if (conf_parse_bool(v, &c->allow_insecure_http) < 0) {
			*why = "expected yes or no";
			return -EINVAL;
		}
		return 0;
	}
	return -ENOENT;
}

struct load_ctx {
	struct cm_config *c;
	const char *const *skip;
};

static int
load_cb(void *user, const char *section, const char *name, const char *value,
	const char *origin, const char **why)
{
	struct load_ctx *lc = user;
	int rc;

	if (!strncmp(section, "server ", 7)) {
		const char *alias = section + 7;

		while (*alias == ' ')
			alias++;
		rc = cm_config_set_srv(lc->c, alias, name, value, origin, why);
		if (rc == -ENOENT) {
			*why = "unknown setting in a [server] section (url)";
			return -EINVAL;
		}
		if (rc < 0 && !*why)
			*why = strerror(-rc);
		return rc;
	}
	if (!strncmp(section, "volume ", 7)) {
		const char *dir = section + 7;

		while (*dir == ' ')
			dir++;
		rc = cm_config_set_vol(lc->c, dir, name, value, origin, why);
		if (rc == -ENOENT) {
			*why = "unknown setting in a [volume] section (volume, "
			       "server, token)";
			return -EINVAL;
		}
		if (rc < 0 && !*why)
			*why = strerror(-rc);
		return rc;
	}
	if (section[0] && strcmp(section, "cairnd"))
		return 1; /* other programs' sections */
	/* Not fuse-options for a -o: those add to the file's list. */
	for (const char *const *s = lc->skip; s && *s; s++)
		if (!strcmp(*s, name))
			return 1;
	rc = cm_config_set_from(lc->c, name, value, origin, why);
	if (rc == -ENOENT) {
		*why = "unknown setting";
		return -EINVAL;
	}
	if (rc < 0 && !*why)
		*why = strerror(-rc);
	return rc;
}

int
cm_config_set_vol(struct cm_config *c, const char *dir, const char *key,
		  const char *value, const char *origin, const char **why)
{
	struct cm_volconf *v = NULL;
	int rc;

	*why = NULL;
	if (proto_volname_check(dir) < 0) {
		*why = "bad name in [volume NAME] (the name of a directory "
		       "under the mount root: a volume name)";
		return -EINVAL;
	}
	for (size_t i = 0; i < c->nvols; i++)
		if (!strcmp(c->vols[i].dir, dir))
			v = &c->vols[i];
	if (!v) {
		struct cm_volconf *nv;

		if (c->nvols >= CM_NS_MAX_VOLUMES) {
			*why = "too many [volume] sections";
			return -E2BIG;
		}
		nv = realloc(c->vols, (c->nvols + 1) * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		c->vols = nv;
		v = &c->vols[c->nvols];
		memset(v, 0, sizeof(*v));
		v->dir = strdup(dir);
		v->origin = strdup(origin ? origin : "");
		if (!v->dir || !v->origin) {
			free(v->dir);
			free(v->origin);
			return -ENOMEM;
		}
		c->nvols++;
	}
	if (!strcmp(key, "volume")) {
		if (proto_volname_check(value) < 0) {
			*why = "bad volume name";
			return -EINVAL;
		}
		rc = set_str(&v->volume, value);
	} else if (!strcmp(key, "server")) {
		/* A URL, or the alias of a [server] section (checked by
		 * cm_config_check(), when every section is read). */
		if (strncmp(value, "http://", 7) &&
		    strncmp(value, "https://", 8) &&
		    proto_volname_check(value) < 0) {
			*why = "server must be an http:// or https:// URL or "
			       "the name of a [server] section";
			return -EINVAL;
		}
		rc = set_str(&v->server, value);
	} else if (!strcmp(key, "token")) {
		rc = set_str(&v->token_file, value);
	} else {
		return -ENOENT;
	}
	return rc;
}

int
cm_config_set_srv(struct cm_config *c, const char *alias, const char *key,
		  const char *value, const char *origin, const char **why)
{
	struct cm_srvconf *sv = NULL;

	(void)origin;
	*why = NULL;
	if (proto_volname_check(alias) < 0) {
		*why = "bad name in [server NAME] (letters, digits, '.', '_', "
		       "'-')";
		return -EINVAL;
	}
	if (strcmp(key, "url"))
		return -ENOENT;
	if (strncmp(value, "http://", 7) && strncmp(value, "https://", 8)) {
		*why = "url must be an http:// or https:// URL";
		return -EINVAL;
	}
	for (size_t i = 0; i < c->nsrvs; i++)
		if (!strcmp(c->srvs[i].alias, alias))
			sv = &c->srvs[i];
	if (!sv) {
		struct cm_srvconf *ns;

		if (c->nsrvs >= CM_NS_MAX_VOLUMES) {
			*why = "too many [server] sections";
			return -E2BIG;
		}
		ns = realloc(c->srvs, (c->nsrvs + 1) * sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		c->srvs = ns;
		sv = &c->srvs[c->nsrvs];
		memset(sv, 0, sizeof(*sv));
		sv->alias = strdup(alias);
		if (!sv->alias)
			return -ENOMEM;
		c->nsrvs++;
	}
	return set_str(&sv->url, value);
}

const char *
cm_config_srv_url(const struct cm_config *c, const char *alias)
{
	for (size_t i = 0; alias && i < c->nsrvs; i++)
		if (!strcmp(c->srvs[i].alias, alias))
			return c->srvs[i].url;
	return NULL;
}

/* The URL of volume @v: its server (a URL or an alias), else the
 * top-level one. NULL: an alias no [server] section defines. */
static const char *
vol_url(const struct cm_config *c, const struct cm_volconf *v)
{
	if (!v->server)
		return c->server;
	if (!strncmp(v->server, "http://", 7) ||
	    !strncmp(v->server, "https://", 8))
		return v->server;
	return cm_config_srv_url(c, v->server);
}

static int
dup_str(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

int
cm_config_for_vol(const struct cm_config *c, size_t i, struct cm_config *out)
{
	const struct cm_volconf *v = &c->vols[i];
	int rc = 0;

	*out = *c;
	memset(&out->origins, 0, sizeof(out->origins));
	out->vols = NULL;
	out->nvols = 0;
	out->srvs = NULL;
	out->nsrvs = 0;
	rc |= dup_str(&out->server, vol_url(c, v));
	rc |= dup_str(&out->volume, v->volume ? v->volume : v->dir);
	rc |= dup_str(&out->token_file,
		      v->token_file ? v->token_file : c->token_file);
	rc |= dup_str(&out->cache_dir, c->cache_dir);
	rc |= dup_str(&out->mountpoint, c->mountpoint);
	rc |= dup_str(&out->config_file, c->config_file);
	rc |= dup_str(&out->fuse_opts, c->fuse_opts);
	rc |= dup_str(&out->ca_file, c->ca_file);
	rc |= dup_str(&out->ctl_socket, c->ctl_socket);
	rc |= dup_str(&out->proxy, c->proxy);
	rc |= dup_str(&out->metrics_listen, c->metrics_listen);
	if (rc) {
		cm_config_release(out);
		return -ENOMEM;
	}
	return 0;
}

int
cm_config_load(struct cm_config *c, const char *path, bool must,
	       const char *const *skip, char *where, size_t wlen,
	       const char **why)
{
	struct load_ctx lc = {.c = c, .skip = skip};
	int rc;

	rc = conf_load(path, must, load_cb, &lc, where, wlen, why);
	if (rc < 0)
		return rc;
	return set_str(&c->config_file, path);
}

int
cm_config_set_from(struct cm_config *c, const char *key, const char *value,
		   const char *origin, const char **why)
{
	int rc = cm_config_set(c, key, value, why);

	if (rc < 0)
		return rc;
	if (!strcmp(key, "o"))
		key = "fuse-options";
	return conf_origin_set(&c->origins, key, origin);
}

/* What --show-config prints, in this order: every key cm_config_set()
 * takes, with its current value. */
static const char *const show_keys[] = {
	"server", "volume", "token", "cache", "mountpoint", "cache-size",
	"dirty-limit", "chunk-size", "fetch-timeout", "entry-timeout",
	"attr-timeout", "max-parallel", "readahead", "threads",
	"ctl-socket", "ctl-conns-per-uid", "ca-file", "proxy",
	"metrics-listen", "allow-insecure-http", "fuse-options", "log-level", "foreground",
	"syslog", "write-mode", "writeback-delay", "log-sync",
};

const char *
cm_config_key(size_t i)
{
	return i < sizeof(show_keys) / sizeof(show_keys[0]) ? show_keys[i]
							    : NULL;
}

static const char *
level_word(int lvl)
{
	switch (lvl) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT:
	case LOG_ERR:
		return "err";
	case LOG_WARNING:
		return "warn";
	case LOG_NOTICE:
		return "notice";
	case LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

int
cm_config_value(const struct cm_config *c, const char *key, char *buf,
		size_t len)
{
	const char *s = NULL;

	buf[0] = '\0';
#define STR(k, f)                                                           \
	if (!strcmp(key, k)) {                                              \
		s = c->f;                                                   \
		goto str;                                                   \
	}
	STR("server", server)
	STR("volume", volume)
	STR("token", token_file)
	STR("cache", cache_dir)
	STR("mountpoint", mountpoint)
	STR("ctl-socket", ctl_socket)
	STR("ca-file", ca_file)
	STR("proxy", proxy)
	STR("metrics-listen", metrics_listen)
	STR("fuse-options", fuse_opts)
#undef STR
	if (!strcmp(key, "cache-size"))
		snprintf(buf, len, "%llu", (unsigned long long)c->cache_size);
	else if (!strcmp(key, "dirty-limit"))
		snprintf(buf, len, "%llu", (unsigned long long)c->dirty_limit);
	else if (!strcmp(key, "chunk-size"))
		snprintf(buf, len, "%u", (unsigned)c->chunk_size);
	else if (!strcmp(key, "fetch-timeout"))
		snprintf(buf, len, "%llums",
			 (unsigned long long)c->fetch_timeout_ms);
	else if (!strcmp(key, "entry-timeout"))
		snprintf(buf, len, "%llums",
			 (unsigned long long)(c->entry_timeout * 1000 + 0.5));
	else if (!strcmp(key, "attr-timeout"))
		snprintf(buf, len, "%llums",
			 (unsigned long long)(c->attr_timeout * 1000 + 0.5));
	else if (!strcmp(key, "max-parallel"))
		snprintf(buf, len, "%u", c->max_parallel);
	else if (!strcmp(key, "readahead"))
		snprintf(buf, len, "%u", c->readahead_max);
	else if (!strcmp(key, "threads"))
		snprintf(buf, len, "%u", c->threads);
	else if (!strcmp(key, "ctl-conns-per-uid"))
		snprintf(buf, len, "%u", c->ctl_conns_per_uid);
	else if (!strcmp(key, "allow-insecure-http"))
		snprintf(buf, len, "%s", c->allow_insecure_http ? "yes" : "no");
	else if (!strcmp(key, "foreground"))
		snprintf(buf, len, "%s", c->foreground ? "yes" : "no");
	else if (!strcmp(key, "syslog"))
		snprintf(buf, len, "%s", c->use_syslog ? "yes" : "no");
	else if (!strcmp(key, "log-level"))
		snprintf(buf, len, "%s", level_word(c->log_level));
	else if (!strcmp(key, "write-mode"))
		snprintf(buf, len, "%s", c->writeback ? "writeback" : "sync");
	else if (!strcmp(key, "writeback-delay"))
		snprintf(buf, len, "%llums",
			 (unsigned long long)c->writeback_delay_ms);
	else if (!strcmp(key, "log-sync"))
		snprintf(buf, len, "%s", c->log_sync_close ? "close" : "op");
	else
		return -ENOENT;
	return 1;
str:
	if (!s)
		return 0;
	snprintf(buf, len, "%s", s);
	return 1;
}

void
cm_config_show(const struct cm_config *c, FILE *out)
{
	char val[4096];

	fprintf(out, "# cairnd %s: effective settings and where each came "
		     "from\n",
		PACKAGE_VERSION);
	for (size_t i = 0; i < sizeof(show_keys) / sizeof(show_keys[0]);
	     i++) {
		const char *k = show_keys[i];
		const char *from = conf_origin_get(&c->origins, k);

		if (cm_config_value(c, k, val, sizeof(val)) > 0)
			fprintf(out, "%s = %s  ; %s\n", k, val, from);
		else
			fprintf(out, "# %s is not set  (%s)\n", k, from);
	}
	for (size_t i = 0; i < c->nsrvs; i++)
		fprintf(out, "[server %s]\nurl = %s\n", c->srvs[i].alias,
			c->srvs[i].url ? c->srvs[i].url : "");
	for (size_t i = 0; i < c->nvols; i++) {
		const struct cm_volconf *v = &c->vols[i];

		fprintf(out, "[volume %s]  ; %s\n", v->dir, v->origin);
		fprintf(out, "volume = %s%s\n", v->volume ? v->volume : v->dir,
			v->volume ? "" : "  ; the section's name");
		if (v->server || c->server)
			fprintf(out, "server = %s%s%s\n",
				v->server ? v->server : c->server,
				v->server ? "" : "  ; the top-level server",
				v->server && vol_url(c, v) &&
						strcmp(v->server, vol_url(c, v))
					? "  ; a [server] alias"
					: "");
		if (v->token_file || c->token_file)
			fprintf(out, "token = %s%s\n",
				v->token_file ? v->token_file : c->token_file,
				v->token_file ? "" : "  ; the top-level token");
	}
}

/* The transport rule for one server URL (cm_config_check()). */
static int check_cleartext(const struct cm_config *c, const char *server,
			   const char **why);

/* A namespace: every volume needs a server and a token file, from its
 * section or the top level; the names under the mount root differ (they
 * are the section names, unique by construction). */
static int
check_ns(const struct cm_config *c, const char **why)
{
	*why = NULL;
	if (c->volume)
		*why = "volume is set and the config has [volume] sections: "
		       "list every volume in a section";
	else if (!c->cache_dir)
		*why = "no cache directory given (--cache DIR)";
	else if (!c->mountpoint)
		*why = "no mountpoint given (--mountpoint DIR)";
	for (size_t i = 0; !*why && i < c->nvols; i++) {
		if (!c->vols[i].server && !c->server)
			*why = "a [volume] section has no server (and there is "
			       "no top-level server)";
		else if (!vol_url(c, &c->vols[i]))
			*why = "a [volume] section names a server no [server] "
			       "section defines";
		else if (!c->vols[i].token_file && !c->token_file)
			*why = "a [volume] section has no token (and there is "
			       "no top-level token)";
	}
	if (*why)
		return -EINVAL;
	for (size_t i = 0; i < c->nvols; i++) {
		int rc = check_cleartext(c, vol_url(c, &c->vols[i]), why);

		if (rc < 0)
			return rc;
	}
	return 0;
}

int
cm_config_check(const struct cm_config *c, const char **why)
{
	*why = NULL;
	if (c->nvols)
		return check_ns(c, why);
	if (!c->server)
		*why = "no server given (--server URL)";
	else if (!c->volume)
		*why = "no volume given (--volume NAME)";
	else if (!c->token_file)
		*why = "no token file given (--token FILE)";
	else if (!c->cache_dir)
		*why = "no cache directory given (--cache DIR)";
	else if (!c->mountpoint)
		*why = "no mountpoint given (--mountpoint DIR)";
	if (*why)
		return -EINVAL;
	return check_cleartext(c, c->server, why);
}

static int
check_cleartext(const struct cm_config *c, const char *server, const char **why)
{
	struct cm_config one = *c;

	one.server = (char *)server;
	if (cm_config_cleartext(&one) && !c->allow_insecure_http) {
		*why = c->proxy && !cm_url_loopback(c->proxy)
			       ? "refusing plain http:// through a proxy that "
				 "is not on this machine: the token and the "
				 "data would cross the network in clear "
				 "text; use an https:// server, or set "
				 "allow-insecure-http (--allow-insecure-http) "
				 "to accept that"
			       : "refusing plain http:// to a server that is "
				 "not on this machine: the token and the data "
				 "would cross the network in clear text; use "
				 "https://, or set allow-insecure-http "
				 "(--allow-insecure-http) to accept that";
		return -EPERM;
	}
	return 0;
}

/* Is the host (@h, @n bytes, brackets already removed for IPv6) a
 * loopback name written literally? */
static bool
host_loopback(const char *h, size_t n, bool v6)
{
	char buf[INET6_ADDRSTRLEN];
	struct in6_addr a6;
	struct in_addr a4;

	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, h, n);
	buf[n] = '\0';
	if (v6) {
		/* A zone ("%eth0") is refused by inet_pton: not loopback. */
		if (inet_pton(AF_INET6, buf, &a6) != 1)
			return false;
		if (IN6_IS_ADDR_LOOPBACK(&a6))
			return true;
		/* ::ffff:127.x.y.z is the IPv4 loopback net in IPv6 form. */
		return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
	}
	/* Not "localhost.": the trailing dot makes it a fully qualified
	 * name, which glibc asks DNS about instead of /etc/hosts. */
	if (!strcasecmp(buf, "localhost"))
		return true;
	/* inet_pton takes only the dotted quad, not "127.1" or "0x7f.1". */
	if (inet_pton(AF_INET, buf, &a4) != 1)
		return false;
	return ((const uint8_t *)&a4.s_addr)[0] == 127;
}

bool
cm_url_loopback(const char *url)
{
	const char *auth, *end, *at, *host, *hend, *p;
	bool v6 = false;

	if (!url)
		return false;
	if (!strncasecmp(url, "http://", 7))
		auth = url + 7;
	else if (!strncasecmp(url, "https://", 8))
		auth = url + 8;
	else
		return false;
	end = auth + strcspn(auth, "/?#");
	/* user:password@host: the host is after the '@'. Two of them is a
	 * URL parsers disagree on; doubt means no. */
	at = memchr(auth, '@', (size_t)(end - auth));
	if (at && memchr(at + 1, '@', (size_t)(end - at - 1)))
		return false;
	host = at ? at + 1 : auth;
	if (*host == '[') {
		v6 = true;
		host++;
		hend = memchr(host, ']', (size_t)(end - host));
		if (!hend)
			return false;
		p = hend + 1;
	} else {
		hend = memchr(host, ':', (size_t)(end - host));
		if (!hend)
			hend = end;
		p = hend;
	}
	/* Nothing but an optional ":digits" may follow the host. */
	if (p < end) {
		if (*p++ != ':')
			return false;
		for (; p < end; p++)
			if (*p < '0' || *p > '9')
				return false;
	}
	return host_loopback(host, (size_t)(hend - host), v6);
}

bool
cm_config_cleartext(const struct cm_config *c)
{
	if (!c->server || strncasecmp(c->server, "http://", 7))
		return false;
	/* Through a proxy the request, token included, goes to the proxy
	 * first: both hops must stay on this machine. */
	if (c->proxy && !cm_url_loopback(c->proxy))
		return true;
	return !cm_url_loopback(c->server);
}
