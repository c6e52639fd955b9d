/*
 * test_cm_conf.c - cairnd's settings (cm/conf.c): the setter shared by the
 * command line and the config file, bad values, the ini loader, and the
 * rule that the command line wins.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm/cm.h"
#include "common/log.h"
#include "tests/tap.h"

static int
set(struct cm_config *c, const char *k, const char *v)
{
	const char *why;

	return cm_config_set(c, k, v, &why);
}

int
main(void)
{
	struct cm_config c;
	const char *why;
	char path[] = "/tmp/test_cm_conf.XXXXXX";
	const char *skip[] = {"volume", NULL};
	int fd, line;
	FILE *f;

	log_init("test_cm_conf", 0, LOG_CRIT);
	cm_config_init(&c);
	is_int(c.fetch_timeout_ms, 5000, "default fetch timeout 5s");
	is_int(c.chunk_size, 262144, "default chunk 256K");
	is_int(cm_config_check(&c, &why), -EINVAL, "empty config is incomplete");
	is_int(set(&c, "server", "http://127.0.0.1:7070"), 0, "server");
	is_int(set(&c, "server", "ftp://x"), -EINVAL, "non-http server refused");
	is_int(set(&c, "volume", "home"), 0, "volume");
	is_int(set(&c, "volume", ".hidden"), -EINVAL, "bad volume name");
	is_int(set(&c, "volume", "a/b"), -EINVAL, "slash in volume name");
	is_int(set(&c, "cache-size", "2G"), 0, "cache-size");
	is_int(c.cache_size, 2ull << 30, "2G parsed");
	is_int(set(&c, "cache-size", "1K"), -EINVAL, "tiny cache refused");
	is_int(set(&c, "dirty-limit", "64M"), 0, "dirty-limit");
	is_int(c.dirty_limit, 64ull << 20, "64M parsed");
	is_int(set(&c, "dirty-limit", "512K"), -EINVAL, "dirty-limit below 1M");
	is_int(set(&c, "dirty-limit", "-1"), -EINVAL, "negative dirty-limit");
	is_int(set(&c, "dirty-limit", ""), -EINVAL, "empty dirty-limit");
	is_int(set(&c, "chunk-size", "1M"), 0, "chunk-size 1M");
	is_int(set(&c, "chunk-size", "300K"), -EINVAL, "not a power of two");
	is_int(set(&c, "chunk-size", "32K"), -EINVAL, "below 64K");
	is_int(set(&c, "chunk-size", "8M"), -EINVAL, "above 4M");
	is_int(set(&c, "fetch-timeout", "2s"), 0, "fetch-timeout 2s");
	is_int(c.fetch_timeout_ms, 2000, "2s parsed");
	is_int(set(&c, "fetch-timeout", "5"), 0, "plain seconds");
	is_int(c.fetch_timeout_ms, 5000, "5 parsed as seconds");
	is_int(set(&c, "fetch-timeout", "soon"), -EINVAL, "bad duration");
	is_int(set(&c, "entry-timeout", "1m"), 0, "entry-timeout");
	ok(c.entry_timeout == 60.0, "1m is 60 s");
	is_int(set(&c, "max-parallel", "0"), -EINVAL, "max-parallel 0");
	is_int(set(&c, "max-parallel", "12x"), -EINVAL, "max-parallel junk");
	is_int(c.ctl_conns_per_uid, 8, "default: 8 control connections per uid");
	is_int(set(&c, "ctl-conns-per-uid", "3"), 0, "ctl-conns-per-uid 3");
	is_int(c.ctl_conns_per_uid, 3, "3 parsed");
	is_int(set(&c, "ctl-conns-per-uid", "0"), 0, "ctl-conns-per-uid 0 (no cap)");
	is_int(set(&c, "ctl-conns-per-uid", "5000"), -EINVAL,
	       "ctl-conns-per-uid above 1024");
	is_int(set(&c, "ctl-conns-per-uid", "many"), -EINVAL,
	       "ctl-conns-per-uid junk");
	is_int(set(&c, "log-level", "debug"), 0, "log-level");
	is_int(set(&c, "log-level", "loud"), -EINVAL, "bad log-level");
	is_int(set(&c, "foreground", "yes"), 0, "foreground");
	ok(c.foreground, "foreground set");
	is_int(set(&c, "foreground", "maybe"), -EINVAL, "bad bool");
	is_int(set(&c, "o", "ro"), 0, "-o");
	is_int(set(&c, "o", "noatime"), 0, "-o twice");
	is_str(c.fuse_opts, "ro,noatime", "-o options joined");
	is_int(set(&c, "colour", "blue"), -ENOENT, "unknown key");
	is_int(set(&c, "token", "/tmp/tok"), 0, "token");
	is_int(set(&c, "cache", "/tmp/cache"), 0, "cache");
	is_int(cm_config_check(&c, &why), -EINVAL, "no mountpoint yet");
	ok(why && strstr(why, "mountpoint"), "message names the mountpoint");
	is_int(set(&c, "mountpoint", "/mnt"), 0, "mountpoint");
	is_int(cm_config_check(&c, &why), 0, "complete");

	/* The ini file: [cairnd] and top-level keys; volume is skipped
	 * because the command line gave it. */
	fd = mkstemp(path);
	f = fdopen(fd, "w");
	fprintf(f, "; comment\nserver = http://10.0.0.1:1\n[cairnd]\n"
		   "volume = other\ncache-size = 4G\n[vold]\nport = 9\n");
	fclose(f);
	is_int(cm_config_load(&c, path, skip, &line), 0, "load ini");
	is_str(c.server, "http://10.0.0.1:1", "top-level key read");
	is_str(c.volume, "home", "skipped key keeps the command line value");
	is_int(c.cache_size, 4ull << 30, "section key read");
	f = fopen(path, "w");
	fprintf(f, "[cairnd]\ncache-size = lots\n");
	fclose(f);
	ok(cm_config_load(&c, path, NULL, &line) < 0, "bad value refused");
	is_int(line, 2, "line number of the bad value");
	f = fopen(path, "w");
	fprintf(f, "[cairnd]\nspeed = 11\n");
	fclose(f);
	ok(cm_config_load(&c, path, NULL, &line) < 0, "unknown key refused");
	unlink(path);
	ok(cm_config_load(&c, path, NULL, &line) == -ENOENT, "missing file");
	cm_config_release(&c);
	return done_testing();
}
