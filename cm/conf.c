/*
 * conf.c - cairnd's settings: defaults, one setter shared by the command
 * line and cairn.conf(5), the ini loader (inih) and the final check.
 *
 * It only parses; it opens nothing but the config file, so the unit test
 * (tests/unit/test_cm_conf.c) runs it without a server or a mount.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cm/cm.h"
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

static int
parse_bool(const char *v, bool *out)
{
	if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") ||
	    !strcmp(v, "1") || !strcasecmp(v, "on"))
		*out = true;
	else if (!strcasecmp(v, "no") || !strcasecmp(v, "false") ||
		 !strcmp(v, "0") || !strcasecmp(v, "off"))
		*out = false;
	else
		return -EINVAL;
	return 0;
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
		if (util_parse_size(v, &u) < 0 || u < (1u << 20)) {
			*why = "dirty-limit must be a size of at least 1M";
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
		if (parse_bool(v, key[0] == 'f' ? &c->foreground
						: &c->use_syslog) < 0) {
			*why = "expected yes or no";
			return -EINVAL;
		}
		return 0;
	}
	if (!strcmp(key, "allow-insecure-http")) {
		if (parse_bool(v, &c->allow_insecure_http) < 0) {
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
	int err;
	int line;
	int n;
};

static int
ini_cb(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *lc = user;
	const char *why;
	int rc;

	lc->n++;
	if (section[0] && strcmp(section, "cairnd"))
		return 1; /* other programs' sections */
	for (const char *const *s = lc->skip; s && *s; s++)
		if (!strcmp(*s, name))
			return 1;
	rc = cm_config_set(lc->c, name, value, &why);
	if (rc < 0) {
		log_err(LOG_MAIN, "config: %s '%s': %s", name, value,
			rc == -ENOENT ? "unknown setting"
				      : why ? why : strerror(-rc));
		if (!lc->err)
			lc->err = rc == -ENOENT ? -EINVAL : rc;
		return 0;
	}
	return 1;
}

int
cm_config_load(struct cm_config *c, const char *path, const char *const *skip,
	       int *line)
{
	struct load_ctx lc = {.c = c, .skip = skip};
	int rc;

	*line = 0;
	rc = ini_parse(path, ini_cb, &lc);
	if (rc == -1)
		return errno ? -errno : -ENOENT;
	if (rc == -2)
		return -ENOMEM;
	if (rc > 0) {
		*line = rc;
		return lc.err ? lc.err : -EINVAL;
	}
	if (lc.err)
		return lc.err;
	return set_str(&c->config_file, path);
}

int
cm_config_check(const struct cm_config *c, const char **why)
{
	*why = NULL;
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
	if (cm_config_cleartext(c) && !c->allow_insecure_http) {
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
