/*
 * vold_admit.c - the request head parser and body-limit table of
 * cairn-vold's admission filter (vold_admit.h). It reads only what the
 * decision needs; libevent parses the head again for real afterwards, so
 * anything this parser lets through that libevent refuses still gets
 * libevent's 400.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "vol/vold_admit.h"

/* Length of the line starting at @p (without its LF or CRLF), or -1 if no
 * LF follows before @end. *@next is set to the start of the next line. */
static long
line_len(const char *p, const char *end, const char **next)
{
	const char *lf = memchr(p, '\n', (size_t)(end - p));
	long n;

	if (!lf)
		return -1;
	*next = lf + 1;
	n = lf - p;
	if (n > 0 && p[n - 1] == '\r')
		n--;
	return n;
}

static enum vold_method
method_of(const char *m, size_t n)
{
	static const struct {
		const char *name;
		enum vold_method m;
	} tab[] = {
		{"GET", VOLD_M_GET},	  {"POST", VOLD_M_POST},
		{"PUT", VOLD_M_PUT},	  {"HEAD", VOLD_M_HEAD},
		{"PATCH", VOLD_M_BODY},	  {"DELETE", VOLD_M_BODY},
		{"OPTIONS", VOLD_M_BODY}, {"CONNECT", VOLD_M_BODY},
	};

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (strlen(tab[i].name) == n && !memcmp(tab[i].name, m, n))
			return tab[i].m;
	return VOLD_M_OTHER;
}

/* Header @name (lower-case) matches the @n bytes at @p, case-blind. */
static int
is_header(const char *p, size_t n, const char *name)
{
	return strlen(name) == n && !strncasecmp(p, name, n);
}

/* Strip blanks from both ends of [*p, *p + *n). */
static void
trim(const char **p, size_t *n)
{
	while (*n && (**p == ' ' || **p == '\t')) {
		(*p)++;
		(*n)--;
	}
	while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
		(*n)--;
}

/* A Content-Length as libevent takes it: plain decimal digits, no sign.
 * Values past INT64_MAX are refused (libevent's strtoll would clamp). */
static int
parse_length(const char *p, size_t n, int64_t *out)
{
	uint64_t v = 0;

	if (!n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -EINVAL;
		if (v > ((uint64_t)INT64_MAX - (uint64_t)(p[i] - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*out = (int64_t)v;
	return 0;
}

int
vold_head_parse(const char *buf, size_t len, struct vold_head *h)
{
	const char *end = buf + len, *p = buf, *next, *sp1, *sp2;
	long n;

	memset(h, 0, sizeof(*h));
	h->content_length = -1;
	/* Blank lines before a request line are skipped, as libevent does. */
	while ((n = line_len(p, end, &next)) == 0)
		p = next;
	if (n < 0)
		return 0;
	sp1 = memchr(p, ' ', (size_t)n);
	sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(p + n - sp1 - 1)) : NULL;
	if (!sp1 || !sp2 || sp1 == p || sp2 == sp1 + 1)
		return -EINVAL;
	h->method = method_of(p, (size_t)(sp1 - p));
	h->target = sp1 + 1;
	h->target_len = (size_t)(sp2 - sp1 - 1);
	p = next;
	for (;;) {
		const char *colon, *v;
		size_t vn;

		n = line_len(p, end, &next);
		if (n < 0)
			return 0;
		if (n == 0)
			return (int)(next - buf);
		colon = memchr(p, ':', (size_t)n);
		if (colon && p[0] != ' ' && p[0] != '\t') {
			v = colon + 1;
			vn = (size_t)(p + n - v);
			trim(&v, &vn);
			if (is_header(p, (size_t)(colon - p),
				      "content-length")) {
				h->n_content_length++;
				if (parse_length(v, vn, &h->content_length))
					return -EINVAL;
			} else if (is_header(p, (size_t)(colon - p),
					     "transfer-encoding")) {
				h->chunked = 1;
			} else if (is_header(p, (size_t)(colon - p),
					     "authorization")) {
				h->auth = v;
				h->auth_len = vn;
			}
		}
		p = next;
	}
}

size_t
vold_head_end(const char *buf, size_t len, size_t from)
{
	/* Step back over what a match may have begun with. */
	size_t i = from > 2 ? from - 2 : 0;

	for (; i < len; i++) {
		size_t end = 0;

		if (buf[i] != '\n')
			continue;
		if (i + 1 < len && buf[i + 1] == '\n')
			end = i + 2;
		else if (i + 2 < len && buf[i + 1] == '\r' &&
			 buf[i + 2] == '\n')
			end = i + 3;
		if (end > from)
			return end;
	}
	return 0;
}

uint64_t
vold_body_limit(enum vold_method method, const struct proto_path *p)
{
	if (method == VOLD_M_HEAD || method == VOLD_M_OTHER)
		return 0;
	switch (p->kind) {
	case PROTO_P_GETATTR:
		return method == VOLD_M_POST ? PROTO_GETATTR_BODY_MAX : 0;
	case PROTO_P_OP:
		return method == VOLD_M_POST ? PROTO_OP_BODY_MAX : 0;
	case PROTO_P_BATCH:
		return method == VOLD_M_POST ? PROTO_BATCH_BODY_MAX : 0;
	case PROTO_P_STAGE:
		return method == VOLD_M_PUT ? p->chunk_size : 0;
	default:
		return 0;
	}
}
