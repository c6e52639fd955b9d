/*
 * conf.c - the shared config file reader (conf.h): one ini parser that
 * knows line numbers, the drop-in directory, and the record of where each
 * setting came from. What a key means is the daemons' business
 * (cm/conf.c, vol/vold.c); this file only splits lines.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "common/conf.h"

/* Longest line read; a longer one is a syntax error, not a silent cut. */
#define CONF_LINE_MAX 4096

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' ||
			 e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* Cut an inline comment: ';' or '#' after a blank. */
static void
cut_comment(char *s)
{
	for (char *p = s; *p; p++)
		if ((*p == ';' || *p == '#') && p > s &&
		    (p[-1] == ' ' || p[-1] == '\t')) {
			*p = '\0';
			return;
		}
}

static void
set_where(char *where, size_t wlen, const char *path, int line)
{
	if (!where || !wlen)
		return;
	if (line > 0)
		snprintf(where, wlen, "%s:%d", path, line);
	else
		snprintf(where, wlen, "%s", path);
}

int
conf_load_file(const char *path, conf_set_fn set, void *arg, char *where,
	       size_t wlen, const char **why)
{
	char buf[CONF_LINE_MAX + 2], section[128] = "", origin[4200];
	FILE *f;
	int line = 0, rc = 0;

	*why = NULL;
	set_where(where, wlen, path, 0);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(buf, sizeof(buf), f)) {
		char *s, *eq, *key, *val;
		const char *w = NULL;
		int r;

		line++;
		set_where(where, wlen, path, line);
		if (!strchr(buf, '\n') && !feof(f)) {
			*why = "line too long";
			rc = -EINVAL;
			goto out;
		}
		s = trim(buf);
		/* A UTF-8 byte order mark on the first line is not a key. */
		if (line == 1 && !strncmp(s, "\xef\xbb\xbf", 3))
			s = trim(s + 3);
		if (!*s || *s == ';' || *s == '#')
			continue;
		if (*s == '[') {
			char *end = strchr(s, ']');

			if (!end || end - s - 1 >= (long)sizeof(section)) {
				*why = "malformed section header";
				rc = -EINVAL;
				goto out;
			}
			*end = '\0';
			cut_comment(end + 1);
			if (*trim(end + 1)) {
				*why = "text after a section header";
				rc = -EINVAL;
				goto out;
			}
			snprintf(section, sizeof(section), "%s", trim(s + 1));
			continue;
		}
		eq = strchr(s, '=');
		if (!eq) {
			*why = "expected 'key = value'";
			rc = -EINVAL;
			goto out;
		}
		*eq = '\0';
		key = trim(s);
		val = eq + 1;
		cut_comment(val);
		val = trim(val);
		if (!*key) {
			*why = "expected 'key = value'";
			rc = -EINVAL;
			goto out;
		}
		for (char *p = key; *p; p++)
			if (*p == '_')
				*p = '-';
		snprintf(origin, sizeof(origin), "%s:%d", path, line);
		r = set(arg, section, key, val, origin, &w);
		if (r < 0) {
			*why = w;
			rc = r;
			goto out;
		}
	}
	if (ferror(f)) {
		rc = -EIO;
		goto out;
	}
	set_where(where, wlen, path, 0);
out:
	fclose(f);
	return rc;
}

static int
dropin_filter(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return d->d_name[0] != '.' && n > 5 &&
	       !strcmp(d->d_name + n - 5, ".conf");
}

static int
byte_order(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

int
conf_load(const char *path, bool must, conf_set_fn set, void *arg, char *where,
	  size_t wlen, const char **why)
{
	struct dirent **ents = NULL;
	char dir[4096], file[4400];
	int n, rc;

	*why = NULL;
	rc = conf_load_file(path, set, arg, where, wlen, why);
	if (rc == -ENOENT && !must)
		rc = 0;
	if (rc < 0)
		return rc;
	if ((size_t)snprintf(dir, sizeof(dir), "%s.d", path) >= sizeof(dir))
		return -ENAMETOOLONG;
	n = scandir(dir, &ents, dropin_filter, byte_order);
	if (n < 0) {
		if (errno == ENOENT)
			return 0;
		rc = -errno;
		set_where(where, wlen, dir, 0);
		return rc;
	}
	for (int i = 0; i < n; i++) {
		struct stat st;

		if (rc == 0) {
			snprintf(file, sizeof(file), "%s/%s", dir,
				 ents[i]->d_name);
			/* Only regular files (a link to one is fine): a
			 * stray directory named x.conf is skipped. */
			if (stat(file, &st) == 0 && S_ISREG(st.st_mode))
				rc = conf_load_file(file, set, arg, where, wlen,
						    why);
		}
		free(ents[i]);
	}
	free(ents);
	return rc;
}

int
conf_origin_set(struct conf_origins *o, const char *key, const char *origin)
{
	char *k = NULL, *s;

	for (size_t i = 0; i < o->n; i++)
		if (!strcmp(o->v[i].key, key)) {
			s = strdup(origin);
			if (!s)
				return -ENOMEM;
			free(o->v[i].origin);
			o->v[i].origin = s;
			return 0;
		}
	{
		struct conf_origin *nv =
			realloc(o->v, (o->n + 1) * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		o->v = nv;
	}
	k = strdup(key);
	s = strdup(origin);
	if (!k || !s) {
		free(k);
		free(s);
		return -ENOMEM;
	}
	o->v[o->n].key = k;
	o->v[o->n].origin = s;
	o->n++;
	return 0;
}

const char *
conf_origin_get(const struct conf_origins *o, const char *key)
{
	for (size_t i = 0; o && i < o->n; i++)
		if (!strcmp(o->v[i].key, key))
			return o->v[i].origin;
	return "default";
}

void
conf_origins_release(struct conf_origins *o)
{
	if (!o)
		return;
	for (size_t i = 0; i < o->n; i++) {
		free(o->v[i].key);
		free(o->v[i].origin);
	}
	free(o->v);
	o->v = NULL;
	o->n = 0;
}

int
conf_parse_bool(const char *v, bool *out)
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
