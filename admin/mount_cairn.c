/*
 * mount_cairn.c - mount.cairn(8), the helper mount(8) runs for
 * "mount -t cairn SPEC DIR -o OPTIONS" and for /etc/fstab lines of type
 * cairn. It turns the mount syntax into a cairnd(8) command line, checks
 * every option before anything runs (a bad one is an error and nothing is
 * mounted), starts cairnd in the background and returns once cairnd's
 * start-up parent exits: 0 when the mount is up, else cairnd's status,
 * with cairnd's own message on stderr.
 *
 * It is not a second configuration system: values are cairnd's (checked
 * by cairnd), and config=FILE lets a file hold the rest. It links nothing
 * of ours: the rules it knows are the SPEC forms and which options are
 * cairnd's, which mount(8)'s and which FUSE's.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SBINDIR
#define SBINDIR "/usr/sbin"
#endif

/* mount(8)'s helper exit codes (mount(8) "RETURN CODES"). */
#define MNT_EX_USAGE  1	 /* incorrect invocation */
#define MNT_EX_SYSERR 2	 /* system error (out of memory, cannot fork) */
#define MNT_EX_FAIL   32 /* mount failure */

static const char usage_text[] =
	"usage: mount.cairn SPEC DIR [-fnsv] [-o OPTIONS]\n"
	"SPEC is HOST[:PORT]:/VOLUME (https, port 7070 by default) or\n"
	"http[s]://HOST[:PORT]/VOLUME. OPTIONS (comma-separated):\n"
	"  token=FILE cache=DIR        the volume's token, the cache "
	"directory\n"
	"  config=FILE                 a cairnd config file for the rest\n"
	"  http                        plain http:// for HOST:/VOLUME\n"
	"  cache-size= dirty-limit= chunk-size= fetch-timeout= entry-timeout=\n"
	"  attr-timeout= max-parallel= readahead= threads= ca-file= proxy=\n"
	"  ctl-socket= ctl-conns-per-uid= log-level= allow-insecure-http\n"
	"                              cairnd's settings (cairnd(8))\n"
	"  ro rw nosuid suid nodev dev noexec exec noatime atime ...\n"
	"                              mount flags, passed on to FUSE\n"
	"  _netdev nofail auto noauto defaults x-* comment=\n"
	"                              for mount(8) and systemd: ignored\n"
	"  -f: check and print the cairnd command, start nothing; -v: print\n"
	"  it too; -s: ignore unknown options; -n: accepted (no mtab).\n";

/* cairnd settings a mount option may give: name=VALUE becomes
 * --name VALUE (cairnd checks the value). */
static const char *const cairnd_keys[] = {
	"token",	"cache",	"config",	 "cache-size",
	"dirty-limit",	"chunk-size",	"fetch-timeout", "entry-timeout",
	"attr-timeout", "max-parallel", "readahead",	 "threads",
	"ca-file",	"proxy",	"ctl-socket",	 "ctl-conns-per-uid",
	"log-level",	NULL,
};

/* Mount flags FUSE takes in its -o list. */
static const char *const fuse_flags[] = {
	"ro",	    "rw",	  "nosuid",	 "suid",       "nodev",
	"dev",	    "noexec",	  "exec",	 "noatime",    "atime",
	"relatime", "norelatime", "strictatime", "nodiratime", "diratime",
	"lazytime", "nolazytime", "sync",	 "async",      "dirsync",
	NULL,
};

/* Options for mount(8), fstab and systemd, not for cairnd. */
static const char *const ignored[] = {
	"_netdev", "nofail", "auto",  "noauto", "defaults", "user", "nouser",
	"users",   "owner",  "group", "loop",	"bg",	    "fg",   NULL,
};

static bool
in_list(const char *const *l, const char *s, size_t n)
{
	for (; *l; l++)
		if (strlen(*l) == n && !strncmp(*l, s, n))
			return true;
	return false;
}

struct argv_buf {
	char **v;
	size_t n, cap;
};

static int
push(struct argv_buf *a, const char *s)
{
	if (a->n + 2 > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 32;
		char **v = realloc(a->v, cap * sizeof(*v));

		if (!v)
			return -1;
		a->v = v;
		a->cap = cap;
	}
	if (!(a->v[a->n] = strdup(s)))
		return -1;
	a->n++;
	a->v[a->n] = NULL;
	return 0;
}

/*
 * Turn SPEC into a server URL and a volume. @http: HOST:/VOLUME means
 * http:// (the "http" option). @return 0, or -1 with a message printed.
 */
static int
parse_spec(const char *spec, bool http, char **url, char **vol)
{
	const char *p, *slash;

	*url = *vol = NULL;
	if (!strncmp(spec, "http://", 7) || !strncmp(spec, "https://", 8)) {
		p = spec + (spec[4] == 's' ? 8 : 7);
		slash = strchr(p, '/');
		if (!slash || slash == p || !slash[1] ||
		    strchr(slash + 1, '/')) {
			fprintf(stderr,
				"mount.cairn: '%s': expected "
				"http[s]://HOST[:PORT]/VOLUME\n",
				spec);
			return -1;
		}
		*url = strndup(spec, (size_t)(slash - spec));
		*vol = strdup(slash + 1);
	} else {
		/* HOST[:PORT]:/VOLUME; HOST may be [IPv6]. */
		const char *sep = strstr(spec, ":/");
		bool has_port = false;

		if (spec[0] == '[') {
			/* [ADDR]:/VOLUME or [ADDR]:PORT:/VOLUME */
			const char *rb = strchr(spec, ']');

			sep = rb ? strstr(rb, ":/") : NULL;
			has_port = sep && rb + 1 < sep && rb[1] == ':';
		} else if (sep) {
			has_port =
				memchr(spec, ':', (size_t)(sep - spec)) != NULL;
		}
		if (!sep || sep == spec || !sep[2] || strchr(sep + 2, '/')) {
			fprintf(stderr,
				"mount.cairn: '%s': expected "
				"HOST[:PORT]:/VOLUME or "
				"http[s]://HOST[:PORT]/VOLUME\n",
				spec);
			return -1;
		}
		if (asprintf(url, "%s://%.*s%s", http ? "http" : "https",
			     (int)(sep - spec), spec,
			     has_port ? "" : ":7070") < 0)
			*url = NULL;
		*vol = strdup(sep + 2);
	}
	if (!*url || !*vol) {
		fprintf(stderr, "mount.cairn: out of memory\n");
		return -1;
	}
	return 0;
}

/* The cairnd to run: $CAIRN_CAIRND when the caller is not set-id (the
 * tests run the built one), else the installed one. */
static const char *
cairnd_path(void)
{
	const char *e = getenv("CAIRN_CAIRND");

	if (e && *e && getuid() == geteuid() && getgid() == getegid())
		return e;
	return SBINDIR "/cairnd";
}

int
main(int argc, char **argv)
{
	struct argv_buf a = {0};
	char *opts = NULL, *url = NULL, *vol = NULL, *fuse = NULL;
	const char *spec, *dir;
	bool fake = false, verbose = false, sloppy = false, http = false;
	bool have_token = false, have_cache = false, have_config = false;
	size_t fuse_len = 0;
	int c, ret = MNT_EX_USAGE, st;
	pid_t pid;

	if (argc >= 2 &&
	    (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(usage_text, stdout);
		return 0;
	}
	/* mount(8) puts SPEC and DIR first; getopt would permute anyway. */
	while ((c = getopt(argc, argv, "fnsvo:t:N:h")) != -1) {
		switch (c) {
		case 'f':
			fake = true;
			break;
		case 'v':
			verbose = true;
			break;
		case 's':
			sloppy = true;
			break;
		case 'n':
			break;
		case 't':
			break; /* "cairn" or "cairn.SUBTYPE" */
		case 'o':
			if (opts) {
				char *n;

				if (asprintf(&n, "%s,%s", opts, optarg) < 0)
					goto oom;
				free(opts);
				opts = n;
			} else if (!(opts = strdup(optarg))) {
				goto oom;
			}
			break;
		case 'N':
			fprintf(stderr, "mount.cairn: -N (another mount "
					"namespace) is not supported\n");
			goto out;
		case 'h':
			fputs(usage_text, stdout);
			ret = 0;
			goto out;
		default:
			fputs(usage_text, stderr);
			goto out;
		}
	}
	if (argc - optind != 2) {
		fprintf(stderr, "mount.cairn: expected SPEC and DIR\n%s",
			usage_text);
		goto out;
	}
	spec = argv[optind];
	dir = argv[optind + 1];

	if (push(&a, cairnd_path()))
		goto oom;
	/* First pass over the options: "http" changes how SPEC reads. */
	for (char *o = opts ? opts : (char *)""; *o;) {
		size_t n = strcspn(o, ",");

		if (n == 4 && !strncmp(o, "http", 4))
			http = true;
		o += n;
		if (*o)
			o++;
	}
	for (char *o = opts ? opts : (char *)""; *o;) {
		size_t n = strcspn(o, ","), kl;
		const char *eq = memchr(o, '=', n);
		char key[64], *val = NULL;

		kl = eq ? (size_t)(eq - o) : n;
		if (n == 0)
			goto next;
		if (kl >= sizeof(key)) {
			fprintf(stderr, "mount.cairn: unknown option '%.*s'\n",
				(int)n, o);
			goto out;
		}
		memcpy(key, o, kl);
		key[kl] = '\0';
		/* fstab writes cache_size as well as cache-size. */
		for (char *k = key; *k; k++)
			if (*k == '_' && k != key)
				*k = '-';
		if (eq && !(val = strndup(eq + 1, n - kl - 1)))
			goto oom;
		if (!strcmp(key, "http") && !eq) {
			/* done in the first pass */
		} else if (!strcmp(key, "allow-insecure-http") && !eq) {
			if (push(&a, "--allow-insecure-http"))
				goto oom;
		} else if (in_list(cairnd_keys, key, kl)) {
			char flag[80];

			if (!eq || !*val) {
				fprintf(stderr,
					"mount.cairn: option '%s' "
					"needs a value (%s=...)\n",
					key, key);
				free(val);
				goto out;
			}
			have_token |= !strcmp(key, "token");
			have_cache |= !strcmp(key, "cache");
			have_config |= !strcmp(key, "config");
			snprintf(flag, sizeof(flag), "--%s", key);
			if (push(&a, flag) || push(&a, val)) {
				free(val);
				goto oom;
			}
		} else if (!eq && in_list(fuse_flags, key, kl)) {
			char *n2;

			if (asprintf(&n2, "%s%s%s", fuse ? fuse : "",
				     fuse ? "," : "", key) < 0) {
				free(val);
				goto oom;
			}
			free(fuse);
			fuse = n2;
			fuse_len++;
		} else if ((!eq && in_list(ignored, key, kl)) ||
			   !strncmp(key, "x-", 2) || !strcmp(key, "comment")) {
			/* for mount(8), fstab and systemd */
		} else if (sloppy) {
			if (verbose)
				fprintf(stderr,
					"mount.cairn: ignoring "
					"unknown option '%.*s' (-s)\n",
					(int)n, o);
		} else {
			fprintf(stderr,
				"mount.cairn: unknown option '%.*s' "
				"(see mount.cairn(8))\n",
				(int)n, o);
			free(val);
			goto out;
		}
		free(val);
	next:
		o += n;
		if (*o)
			o++;
	}
	if (!have_config && (!have_token || !have_cache)) {
		fprintf(stderr,
			"mount.cairn: %s: give token=FILE and "
			"cache=DIR (or config=FILE)\n",
			!have_token ? "no token=FILE" : "no cache=DIR");
		goto out;
	}
	if (parse_spec(spec, http, &url, &vol) < 0)
		goto out;
	if (push(&a, "--server") || push(&a, url) || push(&a, "--volume") ||
	    push(&a, vol) || push(&a, "--mountpoint") || push(&a, dir) ||
	    push(&a, "--syslog"))
		goto oom;
	if (fuse_len && (push(&a, "-o") || push(&a, fuse)))
		goto oom;
	if (fake || verbose) {
		for (size_t i = 0; i < a.n; i++)
			printf("%s%s", i ? " " : "", a.v[i]);
		printf("\n");
		fflush(stdout);
	}
	if (fake) {
		ret = 0;
		goto out;
	}
	/* cairnd mounts, then forks: its first process exits 0 once the
	 * mount is up, or with its status (its message already on our
	 * stderr) when it is not. */
	pid = fork();
	if (pid < 0) {
		perror("mount.cairn: fork");
		ret = MNT_EX_SYSERR;
		goto out;
	}
	if (pid == 0) {
		execv(a.v[0], a.v);
		fprintf(stderr, "mount.cairn: cannot run '%s': %s\n", a.v[0],
			strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR) {
			perror("mount.cairn: waitpid");
			ret = MNT_EX_SYSERR;
			goto out;
		}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		ret = 0;
	} else {
		if (WIFEXITED(st))
			fprintf(stderr,
				"mount.cairn: cairnd exited with "
				"status %d; nothing mounted on '%s'\n",
				WEXITSTATUS(st), dir);
		else
			fprintf(stderr,
				"mount.cairn: cairnd died (signal "
				"%d); nothing mounted on '%s'\n",
				WTERMSIG(st), dir);
		ret = MNT_EX_FAIL;
	}
	goto out;
oom:
	fprintf(stderr, "mount.cairn: out of memory\n");
	ret = MNT_EX_SYSERR;
out:
	for (size_t i = 0; i < a.n; i++)
		free(a.v[i]);
	free(a.v);
	free(opts);
	free(fuse);
	free(url);
	free(vol);
	return ret;
}
