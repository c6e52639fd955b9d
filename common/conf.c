/*
 * conf.c - the shared config file reader (conf.h): inih's ini parser fed
 * line by line so that each setting knows its line, the drop-in
 * directory, and the record of where each setting came from. What a key means is the daemons' business
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

#include <ini.h>

#include "common/conf.h"

/* inih's line buffer (INI_MAX_LINE of Debian's build), newline included. */
#define CONF_LINE_MAX_S "199"

/*
 * The lines are split by inih (libinih, Debian's package), the ini reader
 * cairn has always used. It is fed through our own reader so that we know
 * the number of the line each setting is on (Debian's build calls the
 * handler without it) and can refuse a line longer than inih's buffer
 * instead of letting inih cut it.
 */
struct conf_rd {
	FILE *f;
	const char *path;
	conf_set_fn set;
	void *arg;
	char *buf;	  /* getline() buffer */
	size_t cap;
	int line;	  /* number of the line last handed to inih */
	bool too_long;	  /* stopped at a line longer than inih takes */
	int rc;		  /* what @set refused with, or 0 */
	int rc_line;
	const char *why;
};

static char *
rd_line(char *str, int num, void *stream)
{
	struct conf_rd *r = stream;
	ssize_t n;

	if (r->rc || r->too_long)
		return NULL; /* stop at the first refusal */
	n = getline(&r->buf, &r->cap, r->f);
	if (n < 0)
		return NULL;
	r->line++;
	if (n >= num) {
		r->too_long = true;
		return NULL;
	}
	memcpy(str, r->buf, (size_t)n + 1);
	return str;
}

static int
rd_setting(void *user, const char *section, const char *name,
	   const char *value)
{
	struct conf_rd *r = user;
	char key[128], origin[4200];
	const char *w = NULL;
	size_t i;
	int rc;

	if (r->rc)
		return 1;
	for (i = 0; name[i] && i + 1 < sizeof(key); i++)
		key[i] = name[i] == '_' ? '-' : name[i];
	key[i] = '\0';
	snprintf(origin, sizeof(origin), "%s:%d", r->path, r->line);
	rc = r->set(r->arg, section, key, value, origin, &w);
	if (rc < 0) {
		r->rc = rc;
		r->rc_line = r->line;
		r->why = w;
	}
	return 1;
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

/* What inih refuses: tell a broken section header from the rest. */
static const char *
syntax_why(const char *path, int line)
{
	char *buf = NULL;
	size_t cap = 0;
	const char *why = "expected 'key = value'";
	FILE *f = fopen(path, "re");

	for (int i = 0; f && i < line; i++)
		if (getline(&buf, &cap, f) < 0)
			break;
	if (buf) {
		const char *s = buf + strspn(buf, " \t");

		if (*s == '[')
			why = "malformed section header";
	}
	free(buf);
	if (f)
		fclose(f);
	return why;
}

int
conf_load_file(const char *path, conf_set_fn set, void *arg, char *where,
	       size_t wlen, const char **why)
{
	struct conf_rd r = {.path = path, .set = set, .arg = arg};
	int bad, rc = 0;

	*why = NULL;
	set_where(where, wlen, path, 0);
	r.f = fopen(path, "re");
	if (!r.f)
		return -errno;
	bad = ini_parse_stream(rd_line, &r, rd_setting, &r);
	if (r.rc) {
		/* inih goes on to the end of its line; ours stopped there */
		set_where(where, wlen, path, r.rc_line);
		*why = r.why;
		rc = r.rc;
	} else if (r.too_long) {
		set_where(where, wlen, path, r.line);
		*why = "line too long (at most " CONF_LINE_MAX_S " bytes)";
		rc = -EINVAL;
	} else if (ferror(r.f)) {
		rc = -EIO;
	} else if (bad > 0) {
		set_where(where, wlen, path, bad);
		*why = syntax_why(path, bad);
		rc = -EINVAL;
	} else if (bad < 0) {
		rc = -ENOMEM;
	}
	free(r.buf);
	fclose(r.f);
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
