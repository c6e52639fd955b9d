/*
 * test_cm_conf.c - cairnd's settings (cm/conf.c): the setter shared by the
 * command line and the config file, bad values, the ini loader, and the
 * rule that the command line wins.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* A namespace: [volume DIR] and [server ALIAS] sections, their defaults
 * from the top level, the checks, and one volume's settings. */
static void
test_namespace(void)
{
	struct cm_config c, v;
	const char *path = "test_cm_conf_ns.conf", *why;
	char where[4200], buf[4200];
	FILE *f, *out;
	size_t len = 0;
	char *shown = NULL;

	cm_config_init(&c);
	f = fopen(path, "w");
	fprintf(f, "[cairnd]\ncache = /c\nmountpoint = /cairn\n"
		   "server = http://127.0.0.1:1\ntoken = /t/top\n"
		   "[server b]\nurl = https://fs2:7070\n"
		   "[volume home]\ntoken = /t/home\n"
		   "[volume proj]\nvolume = gamma\nserver = b\n"
		   "[volume other]\nserver = https://fs3\ntoken = /t/o\n");
	fclose(f);
	is_int(cm_config_load(&c, path, true, NULL, where, sizeof(where), &why),
	       0, "namespace config loads");
	is_int((int)c.nvols, 3, "three volumes");
	is_int((int)c.nsrvs, 1, "one server alias");
	is_int(cm_config_check(&c, &why), 0, "and checks");
	is_int(cm_config_for_vol(&c, 1, &v), 0, "settings of volume proj");
	is_str(v.volume, "gamma", "its name on the server");
	is_str(v.server, "https://fs2:7070", "its server through the alias");
	is_str(v.token_file, "/t/top", "the top-level token by default");
	is_str(v.cache_dir, "/c", "the shared cache");
	is_int((int)v.nvols, 0, "no volume list of its own");
	cm_config_release(&v);
	cm_config_for_vol(&c, 0, &v);
	is_str(v.volume, "home", "the section's name by default");
	is_str(v.server, "http://127.0.0.1:1", "the top-level server");
	is_str(v.token_file, "/t/home", "its own token");
	cm_config_release(&v);
	out = open_memstream(&shown, &len);
	cm_config_show(&c, out);
	fclose(out);
	ok(shown && strstr(shown, "[volume proj]") &&
		   strstr(shown, "volume = gamma") &&
		   strstr(shown, "[server b]"),
	   "--show-config prints the sections");
	free(shown);
	(void)buf;
	/* The checks. */
	is_int(set(&c, "volume", "x"), 0, "a top-level volume as well");
	is_int(cm_config_check(&c, &why), -EINVAL, "is refused");
	ok(why && strstr(why, "[volume]"), "naming the sections");
	cm_config_release(&c);

	cm_config_init(&c);
	set(&c, "cache", "/c");
	set(&c, "mountpoint", "/m");
	is_int(cm_config_set_vol(&c, "a", "volume", "a", "x:1", &why), 0,
	       "a section without server or token");
	is_int(cm_config_check(&c, &why), -EINVAL, "is refused");
	ok(why && strstr(why, "no server"), "for its server first");
	is_int(cm_config_set_vol(&c, "a", "server", "nosuch", "x:2", &why), 0,
	       "a server alias");
	set(&c, "token", "/t");
	is_int(cm_config_check(&c, &why), -EINVAL,
	       "no [server] defines it: refused");
	is_int(cm_config_set_vol(&c, "a/b", "volume", "a", "x:3", &why),
	       -EINVAL, "a slash in a section name");
	is_int(cm_config_set_vol(&c, "..", "volume", "a", "x:3", &why),
	       -EINVAL, "'..' as a section name (it names CACHE/vol/DIR)");
	is_int(cm_config_set_srv(&c, "b c", "url", "http://127.0.0.1", "x:3",
				 &why),
	       -EINVAL, "a blank in a [server] name");
	is_int(cm_config_set_vol(&c, "a", "colour", "red", "x:4", &why),
	       -ENOENT, "an unknown key in a section");
	is_int(cm_config_set_vol(&c, "a", "server", "ftp://x", "x:5", &why),
	       -EINVAL, "a server that is neither URL nor alias");
	is_int(cm_config_set_srv(&c, "b", "url", "ftp://x", "x:6", &why),
	       -EINVAL, "a [server] url that is not http(s)");
	is_int(cm_config_set_srv(&c, "b", "url", "http://192.0.2.1", "x:7",
				 &why),
	       0, "a remote plain-http server");
	cm_config_set_vol(&c, "a", "server", "b", "x:8", &why);
	is_int(cm_config_check(&c, &why), -EPERM,
	       "the transport rule holds for each volume's server");
	cm_config_release(&c);
	unlink(path);
}

/* Which server URLs count as loopback: literal names only, and doubt
 * (a name to resolve, odd numeric forms, user info tricks) refuses. */
static void
test_url_loopback(void)
{
	static const struct {
		const char *url;
		bool loopback;
	} cases[] = {
		{"http://127.0.0.1:7070", true},
		{"http://127.0.0.1", true},
		{"http://127.0.0.1/", true},
		{"http://127.0.0.1:7070/v1/ping", true},
		{"http://127.255.3.4:1", true},
		{"HTTP://LOCALHOST:7070", true},
		{"http://localhost.:7070", false},
		{"https://localhost", true},
		{"http://[::1]:7070", true},
		{"http://[::1]", true},
		{"http://[0:0:0:0:0:0:0:1]:80/", true},
		{"http://[::ffff:127.0.0.1]:7070", true},
		{"http://user:pw@127.0.0.1:7070", true},
		{"http://192.0.2.1:7070", false},
		{"http://192.0.2.1", false},
		{"http://10.0.0.1:1", false},
		{"http://128.0.0.1:7070", false},
		{"http://server.example:7070", false},
		{"http://localhost.example:7070", false},
		{"http://localhostx:7070", false},
		{"http://[::2]:7070", false},
		{"http://[::ffff:192.0.2.1]:7070", false},
		{"http://[::1%lo]:7070", false},
		{"http://[::1:7070", false},
		{"http://127.1:7070", false},
		{"http://2130706433:7070", false},
		{"http://0x7f.0.0.1:7070", false},
		{"http://127.0.0.1@192.0.2.1:7070", false},
		{"http://a@127.0.0.1@192.0.2.1/", false},
		{"http://127.0.0.1:7070x", false},
		{"http://127.0.0.1:70:70", false},
		{"http://127.0.0.1.example/", false},
		{"http://", false},
		{"http:///v1", false},
		{"ftp://127.0.0.1", false},
		{"127.0.0.1:7070", false},
		{NULL, false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ok(cm_url_loopback(cases[i].url) == cases[i].loopback,
		   "%s is %sloopback", cases[i].url ? cases[i].url : "NULL",
		   cases[i].loopback ? "" : "not ");
}

/* The transport rule of cm_config_check(): plain http:// leaves the
 * machine only with allow-insecure-http. */
static void
test_transport(void)
{
	struct cm_config c;
	const char *why;

	cm_config_init(&c);
	ok(!c.allow_insecure_http && !c.proxy, "default: no proxy, no "
					       "insecure http");
	set(&c, "volume", "home");
	set(&c, "token", "/tmp/tok");
	set(&c, "cache", "/tmp/cache");
	set(&c, "mountpoint", "/mnt");

	set(&c, "server", "http://127.0.0.1:7070");
	is_int(cm_config_check(&c, &why), 0, "http:// to loopback accepted");
	ok(!cm_config_cleartext(&c), "loopback is not clear text on a wire");
	set(&c, "server", "https://192.0.2.1:7070");
	is_int(cm_config_check(&c, &why), 0, "https:// anywhere accepted");
	set(&c, "server", "http://192.0.2.1:7070");
	ok(cm_config_cleartext(&c), "http:// to 192.0.2.1 is clear text");
	is_int(cm_config_check(&c, &why), -EPERM,
	       "http:// to a non-loopback host refused");
	ok(why && strstr(why, "allow-insecure-http"),
	   "the refusal names the option");
	is_int(set(&c, "allow-insecure-http", "perhaps"), -EINVAL,
	       "allow-insecure-http takes yes or no");
	is_int(set(&c, "allow-insecure-http", "yes"), 0, "allow-insecure-http");
	is_int(cm_config_check(&c, &why), 0, "accepted with the option");
	ok(cm_config_cleartext(&c), "and still reported as clear text "
				    "(for the warning)");
	set(&c, "allow-insecure-http", "no");

	/* The proxy: a setting, not the environment. */
	setenv("http_proxy", "http://192.0.2.9:3128", 1);
	set(&c, "server", "http://127.0.0.1:7070");
	ok(c.proxy == NULL, "http_proxy in the environment sets no proxy");
	is_int(cm_config_check(&c, &why), 0, "and changes nothing");
	unsetenv("http_proxy");
	is_int(set(&c, "proxy", "socks5://127.0.0.1:1080"), -EINVAL,
	       "non-http proxy refused");
	is_int(set(&c, "proxy", "http://127.0.0.1:3128"), 0, "proxy");
	is_str(c.proxy, "http://127.0.0.1:3128", "proxy kept");
	is_int(cm_config_check(&c, &why), 0,
	       "http:// to loopback through a loopback proxy accepted");
	is_int(set(&c, "proxy", "http://192.0.2.9:3128"), 0, "remote proxy");
	is_int(cm_config_check(&c, &why), -EPERM,
	       "http:// through a remote proxy refused");
	ok(why && strstr(why, "proxy") && strstr(why, "allow-insecure-http"),
	   "that refusal names the proxy and the option");
	set(&c, "server", "https://192.0.2.1:7070");
	is_int(cm_config_check(&c, &why), 0,
	       "https:// through a remote proxy accepted (tunnelled)");
	is_int(set(&c, "proxy", ""), 0, "empty proxy");
	ok(c.proxy == NULL, "empty proxy means none");
	cm_config_release(&c);
}

/* metrics-listen: loopback only, kept in one canonical form. */
static void
test_metrics_listen(void)
{
	static const struct {
		const char *v, *kept; /* kept NULL: refused */
	} cases[] = {
		{"9100", "127.0.0.1:9100"},
		{"0", "127.0.0.1:0"},
		{"127.0.0.1:9100", "127.0.0.1:9100"},
		{"127.3.2.1:1", "127.3.2.1:1"},
		{"localhost:9100", "127.0.0.1:9100"},
		{"[::1]:9100", "[::1]:9100"},
		{"[0:0:0:0:0:0:0:1]:9", "[0:0:0:0:0:0:0:1]:9"},
		{"0.0.0.0:9100", NULL},
		{"10.0.0.1:9100", NULL},
		{"128.0.0.1:9100", NULL},
		{"[::]:9100", NULL},
		{"[::2]:9100", NULL},
		{"[::ffff:10.0.0.1]:9100", NULL},
		{"example.com:9100", NULL},
		{"localhost.:9100", NULL},
		{"127.1:9100", NULL},
		{":9100", NULL},
		{"127.0.0.1:", NULL},
		{"127.0.0.1:65536", NULL},
		{"127.0.0.1:-1", NULL},
		{"127.0.0.1:9x", NULL},
		{"[::1:9100", NULL},
		{"::1:9100", NULL},
		{"x", NULL},
	};
	struct cm_config c;
	const char *why;

	cm_config_init(&c);
	ok(c.metrics_listen == NULL, "metrics-listen: none by default");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = cm_config_set(&c, "metrics-listen", cases[i].v, &why);

		if (cases[i].kept) {
			is_int(rc, 0, "metrics-listen %s accepted", cases[i].v);
			is_str(c.metrics_listen, cases[i].kept, "kept as %s",
			       cases[i].kept);
		} else {
			is_int(rc, -EINVAL, "metrics-listen %s refused",
			       cases[i].v);
			ok(why && strstr(why, "metrics-listen"),
			   "and the reason names the key");
		}
	}
	is_int(cm_config_set(&c, "metrics-listen", "10.0.0.1:1", &why), -EINVAL,
	       "a refusal keeps the value before it");
	ok(c.metrics_listen != NULL, "(still set)");
	is_int(cm_config_set(&c, "metrics-listen", "", &why), 0, "empty");
	ok(c.metrics_listen == NULL, "empty means none");
	cm_config_release(&c);
}

int
main(void)
{
	struct cm_config c;
	const char *why;
	char path[] = "/tmp/test_cm_conf.XXXXXX";
	const char *skip[] = {"volume", NULL};
	char where[4200], exp[4200], dir[256], p2[512], val[256];
	int fd;
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
	is_int(set(&c, "dirty-limit", "0"), 0, "dirty-limit 0: the default");
	is_int(set(&c, "dirty-limit", "64M"), 0, "dirty-limit 64M again");
	is_int(c.writeback, 0, "write-mode sync by default");
	is_int(c.writeback_delay_ms, 1000, "writeback-delay 1 s by default");
	is_int(set(&c, "write-mode", "writeback"), 0, "write-mode writeback");
	is_int(c.writeback, 1, "writeback parsed");
	is_int(set(&c, "write-mode", "sync"), 0, "write-mode sync");
	is_int(c.writeback, 0, "sync parsed");
	is_int(set(&c, "write-mode", "later"), -EINVAL, "write-mode later");
	is_int(set(&c, "write-mode", ""), -EINVAL, "empty write-mode");
	is_int(set(&c, "writeback-delay", "250ms"), 0, "writeback-delay 250ms");
	is_int(c.writeback_delay_ms, 250, "250ms parsed");
	is_int(set(&c, "writeback-delay", "5ms"), -EINVAL, "below 10ms");
	is_int(set(&c, "writeback-delay", "2h"), -EINVAL, "above 1h");
	is_int(set(&c, "writeback-delay", "soon"), -EINVAL, "not a duration");
	is_int(c.writeback_delay_ms, 250, "a refused value changes nothing");
	is_int(c.log_sync_close, 0, "log-sync op by default");
	is_int(set(&c, "log-sync", "close"), 0, "log-sync close");
	is_int(c.log_sync_close, 1, "close parsed");
	is_int(set(&c, "log-sync", "never"), -EINVAL, "log-sync never");
	is_int(set(&c, "log-sync", ""), -EINVAL, "empty log-sync");
	is_int(set(&c, "log-sync", "Close"), -EINVAL, "log-sync is exact");
	is_int(c.log_sync_close, 1, "a refused log-sync changes nothing");
	is_int(set(&c, "log-sync", "op"), 0, "log-sync op");
	is_int(c.log_sync_close, 0, "op parsed");
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
		   "volume = other\ncache_size = 4G  ; inline comment\n"
		   "[vold]\nport = 9\n");
	fclose(f);
	is_int(cm_config_load(&c, path, true, skip, where, sizeof(where),
			      &why),
	       0, "load ini");
	is_str(c.server, "http://10.0.0.1:1", "top-level key read");
	is_str(c.volume, "home", "skipped key keeps the command line value");
	is_int(c.cache_size, 4ull << 30,
	       "section key read (underscore is a dash, comment cut)");
	snprintf(exp, sizeof(exp), "%s:5", path);
	is_str(conf_origin_get(&c.origins, "cache-size"), exp,
	       "origin of cache-size is FILE:LINE");
	is_str(conf_origin_get(&c.origins, "threads"), "default",
	       "origin of an unset key is default");

	/* Drop-ins: FILE.d/\*.conf in name order after FILE; the last wins;
	 * other names and dot files are not read. */
	snprintf(dir, sizeof(dir), "%s.d", path);
	ok(mkdir(dir, 0700) == 0, "drop-in dir made");
	snprintf(p2, sizeof(p2), "%s/20-b.conf", dir);
	f = fopen(p2, "w");
	fprintf(f, "threads = 7\nreadahead = 3\n");
	fclose(f);
	snprintf(p2, sizeof(p2), "%s/10-a.conf", dir);
	f = fopen(p2, "w");
	fprintf(f, "threads = 5\ncache-size = 2G\n");
	fclose(f);
	snprintf(p2, sizeof(p2), "%s/30-c.conf.off", dir);
	f = fopen(p2, "w");
	fprintf(f, "threads = 99\n");
	fclose(f);
	snprintf(p2, sizeof(p2), "%s/.40-d.conf", dir);
	f = fopen(p2, "w");
	fprintf(f, "threads = 98\n");
	fclose(f);
	is_int(cm_config_load(&c, path, true, skip, where, sizeof(where),
			      &why),
	       0, "load with drop-ins");
	is_int(c.threads, 7, "20-b.conf wins over 10-a.conf");
	is_int(c.cache_size, 2ull << 30, "a drop-in wins over the file");
	is_int(c.readahead_max, 3, "drop-in key read");
	snprintf(exp, sizeof(exp), "%s/20-b.conf:1", dir);
	is_str(conf_origin_get(&c.origins, "threads"), exp,
	       "origin names the drop-in and its line");
	ok(cm_config_value(&c, "threads", val, sizeof(val)) == 1 &&
		   !strcmp(val, "7"),
	   "value of threads is 7");
	is_int(cm_config_value(&c, "ca-file", val, sizeof(val)), 0,
	       "unset ca-file has no value");
	is_int(cm_config_value(&c, "colour", val, sizeof(val)), -ENOENT,
	       "unknown key has no value");
	/* A bad line in a drop-in: its file and line. */
	snprintf(p2, sizeof(p2), "%s/50-bad.conf", dir);
	f = fopen(p2, "w");
	fprintf(f, "\n\nthreads = 0\n");
	fclose(f);
	ok(cm_config_load(&c, path, true, NULL, where, sizeof(where), &why) ==
		   -EINVAL,
	   "bad drop-in refused");
	snprintf(exp, sizeof(exp), "%s:3", p2);
	is_str(where, exp, "the bad drop-in's line is named");
	ok(why && strstr(why, "threads"), "and why: %s", why ? why : "-");
	unlink(p2);
	for (const char *n = "10-a.conf"; n; n = NULL) {
		snprintf(p2, sizeof(p2), "%s/%s", dir, n);
		unlink(p2);
	}
	snprintf(p2, sizeof(p2), "%s/20-b.conf", dir);
	unlink(p2);
	snprintf(p2, sizeof(p2), "%s/30-c.conf.off", dir);
	unlink(p2);
	snprintf(p2, sizeof(p2), "%s/.40-d.conf", dir);
	unlink(p2);
	ok(rmdir(dir) == 0, "drop-in dir empty again");

	f = fopen(path, "w");
	fprintf(f, "[cairnd]\ncache-size = lots\n");
	fclose(f);
	ok(cm_config_load(&c, path, true, NULL, where, sizeof(where), &why) <
		   0,
	   "bad value refused");
	snprintf(exp, sizeof(exp), "%s:2", path);
	is_str(where, exp, "line number of the bad value");
	f = fopen(path, "w");
	fprintf(f, "[cairnd]\nspeed = 11\n");
	fclose(f);
	ok(cm_config_load(&c, path, true, NULL, where, sizeof(where), &why) <
		   0,
	   "unknown key refused");
	ok(why && !strcmp(why, "unknown setting"), "unknown setting said");
	f = fopen(path, "w");
	fprintf(f, "[cairnd]\njust some words\n");
	fclose(f);
	is_int(cm_config_load(&c, path, true, NULL, where, sizeof(where),
			      &why),
	       -EINVAL, "line without '=' refused");
	f = fopen(path, "w");
	fprintf(f, "[cairnd\nthreads = 2\n");
	fclose(f);
	is_int(cm_config_load(&c, path, true, NULL, where, sizeof(where),
			      &why),
	       -EINVAL, "unclosed section refused");
	ok(why && !strcmp(why, "malformed section header"),
	   "and said so");
	/* A line longer than inih's buffer is refused with its number,
	 * never cut into a shorter value. */
	f = fopen(path, "w");
	fprintf(f, "threads = 3\nca-file = /%0300d\nthreads = 4\n", 0);
	fclose(f);
	c.threads = 1;
	is_int(cm_config_load(&c, path, true, NULL, where, sizeof(where),
			      &why),
	       -EINVAL, "overlong line refused");
	snprintf(exp, sizeof(exp), "%s:2", path);
	is_str(where, exp, "its line is named");
	ok(why && strstr(why, "too long"), "and why");
	is_int(c.threads, 3, "nothing after it was read");
	unlink(path);
	ok(cm_config_load(&c, path, true, NULL, where, sizeof(where), &why) ==
		   -ENOENT,
	   "missing file");
	is_int(cm_config_load(&c, path, false, NULL, where, sizeof(where),
			      &why),
	       0, "missing file without must: nothing read");
	cm_config_release(&c);
	test_namespace();
	test_url_loopback();
	test_transport();
	test_metrics_listen();
	return done_testing();
}
