/*
 * proto_dirdec.c - the decoder of directory listings (GET dir/FID and its
 * pages), reading the JSON text in one pass without building a jansson
 * tree.
 *
 * A page of 4,096 entries is ~14 JSON values an entry; jansson made a
 * hash table for each of the 2 objects of an entry, copied every string
 * and number, and the decoder then copied them again: 56 % of cairnd's
 * CPU in a cold listing of 100,000 entries (doc/cm.md, "Listings at
 * scale"). This scanner accepts exactly what load() + dir_decode() with
 * jansson accept (JSON_REJECT_DUPLICATES, no NUL in strings, strict
 * UTF-8, integers within 64 bits, nesting within 2,048, nothing after the
 * object) and fails with the same code; the jansson decoder stays as the
 * reference, proto_dir_decode_jansson(), which the fuzz target and
 * test_proto compare it with. It is not a general JSON parser: values of
 * unknown members are checked and skipped.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/fid.h"
#include "common/proto.h"
#include "common/proto_dirdec.h"

#define JS_MAX_DEPTH 2048 /* jansson's JSON_PARSER_MAX_DEPTH */

struct js {
	const unsigned char *p, *end;
	int depth;
	bool nomem;    /* an allocation failed */
	char *scratch; /* decoded strings with escapes */
	size_t scap;
};

/* One scalar or skipped value of a member we know. */
enum jv_kind { JV_OTHER, JV_STR, JV_INT, JV_REAL };
struct jv {
	enum jv_kind kind;
	const char *s; /* JV_STR: decoded bytes (input or js->scratch) */
	size_t len;
	int64_t i; /* JV_INT */
};

static void
ws(struct js *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' ||
				 *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static bool
lit(struct js *j, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n))
		return false;
	j->p += n;
	return true;
}

static int
hex4(const unsigned char *p, uint32_t *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		unsigned c = p[i];

		*v <<= 4;
		if (c >= '0' && c <= '9')
			*v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			*v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			*v |= c - 'A' + 10;
		else
			return -1;
	}
	return 0;
}

static bool
scratch_put(struct js *j, size_t *n, const void *b, size_t len)
{
	if (*n + len + 1 > j->scap) {
		size_t cap = j->scap ? j->scap : 256;
		char *p;

		while (cap < *n + len + 1)
			cap *= 2;
		p = realloc(j->scratch, cap);
		if (!p) {
			j->nomem = true;
			return false;
		}
		j->scratch = p;
		j->scap = cap;
	}
	memcpy(j->scratch + *n, b, len);
	*n += len;
	j->scratch[*n] = 0;
	return true;
}

/*
 * A string at j->p (the opening quote): its decoded bytes in *s and *len,
 * pointing into the input when it has no escape, else into j->scratch
 * (valid until the next string). Fails on control characters, bad UTF-8,
 * bad escapes, \u0000 and unpaired surrogates, as jansson does.
 */
static bool
str(struct js *j, const char **s, size_t *len)
{
	const unsigned char *q, *run;
	size_t n = 0;
	bool esc = false;

	if (j->p >= j->end || *j->p != '"')
		return false;
	q = run = ++j->p;
	while (q < j->end && *q != '"') {
		if (*q < 0x20)
			return false;
		if (*q >= 0x80) {
			size_t l = proto_utf8_seq(q, (size_t)(j->end - q));

			if (!l)
				return false;
			q += l;
			continue;
		}
		if (*q != '\\') {
			q++;
			continue;
		}
		/* An escape: from here on the string is built in scratch. */
		if (!esc)
			n = 0;
		esc = true;
		if (!scratch_put(j, &n, run, (size_t)(q - run)))
			return false;
		if (q + 1 >= j->end)
			return false;
		switch (q[1]) {
		case '"':
		case '\\':
		case '/':
			scratch_put(j, &n, q + 1, 1);
			q += 2;
			break;
		case 'b':
		case 'f':
		case 'n':
		case 'r':
		case 't': {
			static const char from[] = "bfnrt", to[] = "\b\f\n\r\t";

			scratch_put(j, &n, &to[strchr(from, q[1]) - from], 1);
			q += 2;
			break;
		}
		case 'u': {
			uint32_t cp, lo;
			unsigned char u[4];
			size_t ul;

			if (j->end - q < 6 || hex4(q + 2, &cp))
				return false;
			q += 6;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return false;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (j->end - q < 6 || q[0] != '\\' ||
				    q[1] != 'u' || hex4(q + 2, &lo) ||
				    lo < 0xdc00 || lo > 0xdfff)
					return false;
				q += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				     (lo - 0xdc00);
			}
			if (cp == 0)
				return false;
			if (cp < 0x80) {
				u[0] = (unsigned char)cp;
				ul = 1;
			} else if (cp < 0x800) {
				u[0] = (unsigned char)(0xc0 | cp >> 6);
				u[1] = (unsigned char)(0x80 | (cp & 0x3f));
				ul = 2;
			} else if (cp < 0x10000) {
				u[0] = (unsigned char)(0xe0 | cp >> 12);
				u[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
				u[2] = (unsigned char)(0x80 | (cp & 0x3f));
				ul = 3;
			} else {
				u[0] = (unsigned char)(0xf0 | cp >> 18);
				u[1] = (unsigned char)(0x80 |
						       (cp >> 12 & 0x3f));
				u[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
				u[3] = (unsigned char)(0x80 | (cp & 0x3f));
				ul = 4;
			}
			scratch_put(j, &n, u, ul);
			break;
		}
		default:
			return false;
		}
		if (j->nomem)
			return false;
		run = q;
	}
	if (q >= j->end)
		return false;
	if (esc) {
		if (!scratch_put(j, &n, run, (size_t)(q - run)))
			return false;
		*s = j->scratch;
		*len = n;
	} else {
		*s = (const char *)run;
		*len = (size_t)(q - run);
	}
	j->p = q + 1;
	return true;
}

/* A number: JV_INT when it has no fraction or exponent (jansson fails on
 * one that does not fit in 64 bits), else JV_REAL (fails on overflow). */
static bool
num(struct js *j, struct jv *v)
{
	const unsigned char *q = j->p, *start = j->p;
	bool real = false, inf, neg = false;
	char tmp[64], *endp, *big;
	uint64_t u = 0;
	size_t nd = 0; /* integer digits */
	double d;
	size_t n;

	if (q < j->end && *q == '-') {
		neg = true;
		q++;
	}
	if (q >= j->end)
		return false;
	if (*q == '0') {
		q++;
		if (q < j->end && *q >= '0' && *q <= '9')
			return false;
	} else if (*q >= '1' && *q <= '9') {
		/* Converted as it is scanned: 19 digits cannot overflow 64
		 * bits, and more are out of range anyway (below). */
		for (; q < j->end && *q >= '0' && *q <= '9'; q++, nd++)
			if (nd < 19)
				u = u * 10 + (uint64_t)(*q - '0');
	} else {
		return false;
	}
	if (q < j->end && *q == '.') {
		real = true;
		q++;
		if (q >= j->end || *q < '0' || *q > '9')
			return false;
		while (q < j->end && *q >= '0' && *q <= '9')
			q++;
	}
	if (q < j->end && (*q == 'e' || *q == 'E')) {
		real = true;
		q++;
		if (q < j->end && (*q == '+' || *q == '-'))
			q++;
		if (q >= j->end || *q < '0' || *q > '9')
			return false;
		while (q < j->end && *q >= '0' && *q <= '9')
			q++;
	}
	n = (size_t)(q - start);
	j->p = q;
	if (!real) {
		/* 19 digits at most fit in 64 signed bits (JSON has no
		 * leading zeros): anything longer is out of range. */
		if (nd > 19)
			return false;
		if (neg ? u > (uint64_t)INT64_MAX + 1 : u > INT64_MAX)
			return false;
		v->kind = JV_INT;
		v->i = neg ? (int64_t)(0 - u) : (int64_t)u;
		return true;
	}
	/* jansson fails on a real that overflows to infinity. */
	big = n < sizeof(tmp) ? tmp : malloc(n + 1);
	if (!big) {
		j->nomem = true;
		return false;
	}
	memcpy(big, start, n);
	big[n] = 0;
	errno = 0;
	d = strtod(big, &endp);
	inf = errno == ERANGE && isinf(d);
	if (big != tmp)
		free(big);
	if (inf)
		return false;
	v->kind = JV_REAL;
	return true;
}

static bool skip_value(struct js *j, struct jv *v);

/* Names of the members of one object so far, to refuse a duplicate (an
 * object of ours has few; unknown names are copied). */
struct keys {
	unsigned known; /* bit per member the caller knows */
	char **other;
	size_t n, cap;
};

static void
keys_release(struct keys *k)
{
	for (size_t i = 0; i < k->n; i++)
		free(k->other[i]);
	free(k->other);
	memset(k, 0, sizeof(*k));
}

/* @return true when the key is new (and remembers it). */
static bool
keys_add_other(struct js *j, struct keys *k, const char *s, size_t len)
{
	char *c;

	for (size_t i = 0; i < k->n; i++)
		if (strlen(k->other[i]) == len && !memcmp(k->other[i], s, len))
			return false;
	if (k->n == k->cap) {
		size_t cap = k->cap ? k->cap * 2 : 4;
		char **p = realloc(k->other, cap * sizeof(*p));

		if (!p) {
			j->nomem = true;
			return false;
		}
		k->other = p;
		k->cap = cap;
	}
	c = malloc(len + 1);
	if (!c) {
		j->nomem = true;
		return false;
	}
	memcpy(c, s, len);
	c[len] = 0;
	k->other[k->n++] = c;
	return true;
}

/* Which of @names (NULL-terminated) the key @s is, or -1 for another one.
 * A key with a NUL byte cannot be decoded (str() refuses \u0000). */
static int
key_index(const char *const *names, const char *s, size_t len)
{
	/* The first byte first: an attribute has a dozen keys, each looked
	 * up among a dozen names, 100,000 times for a big listing. No name
	 * is empty. */
	if (!len)
		return -1;
	for (int i = 0; names[i]; i++)
		if (names[i][0] == s[0] && strlen(names[i]) == len &&
		    !memcmp(names[i], s, len))
			return i;
	return -1;
}

/*
 * Walk an object at j->p: for each member, the callback @member gets its
 * index in @names (or -1) and parses the value itself (skip_value() for
 * one it does not want). Duplicate keys fail.
 */
typedef bool (*member_fn)(struct js *j, int idx, void *arg);

static bool
object(struct js *j, const char *const *names, member_fn member, void *arg)
{
	struct keys k = {0};
	bool ok = false;

	if (j->p >= j->end || *j->p != '{')
		return false;
	j->p++;
	ws(j);
	if (j->p < j->end && *j->p == '}') {
		j->p++;
		return true;
	}
	for (;;) {
		const char *s;
		size_t len;
		int idx;

		ws(j);
		if (!str(j, &s, &len))
			goto out;
		idx = names ? key_index(names, s, len) : -1;
		if (idx >= 0) {
			if (k.known & (1u << idx))
				goto out;
			k.known |= 1u << idx;
		} else if (!keys_add_other(j, &k, s, len)) {
			goto out;
		}
		ws(j);
		if (j->p >= j->end || *j->p != ':')
			goto out;
		j->p++;
		ws(j);
		if (!member(j, idx, arg))
			goto out;
		ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == '}') {
			j->p++;
			ok = true;
		}
		goto out;
	}
out:
	keys_release(&k);
	return ok;
}

static bool
skip_member(struct js *j, int idx, void *arg)
{
	(void)idx;
	(void)arg;
	return skip_value(j, NULL);
}

/* Any JSON value; scalars are described in @v when not NULL. */
static bool
skip_value(struct js *j, struct jv *v)
{
	struct jv tmp;
	bool ok = false, bare = false;

	if (!v)
		v = &tmp;
	v->kind = JV_OTHER;
	if (++j->depth > JS_MAX_DEPTH)
		return false;
	if (j->p >= j->end)
		goto out;
	switch (*j->p) {
	case '{':
		ok = object(j, NULL, skip_member, NULL);
		break;
	case '[':
		j->p++;
		ws(j);
		if (j->p < j->end && *j->p == ']') {
			j->p++;
			ok = true;
			break;
		}
		for (;;) {
			ws(j);
			if (!skip_value(j, NULL))
				goto out;
			ws(j);
			if (j->p < j->end && *j->p == ',') {
				j->p++;
				continue;
			}
			if (j->p < j->end && *j->p == ']') {
				j->p++;
				ok = true;
			}
			break;
		}
		break;
	case '"':
		ok = str(j, &v->s, &v->len);
		if (ok)
			v->kind = JV_STR;
		break;
	case 't':
		ok = bare = lit(j, "true");
		break;
	case 'f':
		ok = bare = lit(j, "false");
		break;
	case 'n':
		ok = bare = lit(j, "null");
		break;
	default:
		ok = bare = num(j, v);
	}
	/* jansson reads one character past a number or a literal and puts
	 * it back; a NUL put back is lost (its stream buffer takes NUL for
	 * "empty"), so one NUL right after one is skipped. Do the same, or
	 * the two decoders would disagree on such input. */
	if (ok && bare && j->p < j->end && *j->p == 0)
		j->p++;
out:
	j->depth--;
	return ok;
}

/* --- the listing's objects --- */

enum {
	A_FID,
	A_TYPE,
	A_MODE,
	A_UID,
	A_GID,
	A_SIZE,
	A_NLINK,
	A_DV,
	A_ATIME,
	A_MTIME,
	A_CTIME,
	A_RDEV,
	A_N
};
static const char *const attr_names[] = {
	"fid", "type",	"mode",	 "uid",	  "gid",  "size", "nlink",
	"dv",  "atime", "mtime", "ctime", "rdev", NULL};

struct attr_scan {
	struct proto_attr *a;
	unsigned have;	  /* members present */
	struct jv v[A_N]; /* integers */
	bool type_ok, fid_ok;
};

/* Member @idx of an attribute object has the value @v. */
static void
attr_set(struct attr_scan *as, int idx, const struct jv *v)
{
	as->have |= 1u << idx;
	if (idx == A_FID) {
		as->fid_ok = v->kind == JV_STR &&
			     fid_parse_n(v->s, v->len, &as->a->fid) == 0 &&
			     !fid_is_null(&as->a->fid);
	} else if (idx == A_TYPE) {
		char t[16];

		as->type_ok = false;
		if (v->kind == JV_STR && v->len < sizeof(t) &&
		    !memchr(v->s, 0, v->len)) {
			memcpy(t, v->s, v->len);
			t[v->len] = 0;
			as->a->type = proto_type_parse(t);
			as->type_ok = as->a->type != PROTO_T_NONE;
		}
	} else {
		as->v[idx] = *v;
	}
}

static bool
attr_member(struct js *j, int idx, void *arg)
{
	struct attr_scan *as = arg;
	struct jv v;

	if (!skip_value(j, &v))
		return false;
	if (idx >= 0)
		attr_set(as, idx, &v);
	return true;
}

/*
 * The fast path: an attribute object exactly as cairn-vold writes it (no
 * space, every key once in attr_names' order, rdev last when present,
 * strings for fid and type, integers for the rest): each key is one
 * compare, no key table. The generic walk (object()) was most of the
 * decoder's CPU in a cold listing (doc/cm.md, "Listings at scale").
 * Whatever differs, and every error, leaves j->p where it was and
 * @return false: the caller walks the object the generic way, which
 * accepts or refuses it as before; what the fast path accepts the
 * generic walk accepts with the same members.
 */
static bool
attr_fast(struct js *j, struct attr_scan *as)
{
	static const char *const keys[A_N] = {
		"{\"fid\":",	 ",\"type\":",	",\"mode\":",	",\"uid\":",
		",\"gid\":",	 ",\"size\":",	",\"nlink\":", ",\"dv\":",
		",\"atime\":", ",\"mtime\":", ",\"ctime\":", ",\"rdev\":"};
	const unsigned char *save = j->p;

	for (int idx = 0; idx < A_N; idx++) {
		size_t kl = strlen(keys[idx]);
		struct jv v = {0};

		if (idx == A_RDEV && j->p < j->end && *j->p == '}')
			break;
		if ((size_t)(j->end - j->p) < kl ||
		    memcmp(j->p, keys[idx], kl))
			goto slow;
		j->p += kl;
		if (idx <= A_TYPE) {
			if (!str(j, &v.s, &v.len))
				goto slow;
			v.kind = JV_STR;
		} else if (!num(j, &v) || v.kind != JV_INT) {
			goto slow;
		}
		attr_set(as, idx, &v);
	}
	if (j->p >= j->end || *j->p != '}')
		goto slow;
	j->p++;
	return true;
slow:
	j->p = save;
	memset(as->a, 0, sizeof(*as->a));
	as->have = 0;
	as->fid_ok = as->type_ok = false;
	j->nomem = false;
	return false;
}

static bool
attr_uint(const struct attr_scan *as, int idx, uint64_t max, uint64_t *out)
{
	const struct jv *v = &as->v[idx];

	if (!(as->have & (1u << idx)) || v->kind != JV_INT || v->i < 0 ||
	    (uint64_t)v->i > max)
		return false;
	*out = (uint64_t)v->i;
	return true;
}

/*
 * An attribute object at j->p into *a. @return false on bad JSON; *valid
 * says whether the attributes are what attr_from_json() accepts (checked
 * in its order; every failure there is -EINVAL, so the order does not
 * show).
 */
static bool
attr(struct js *j, struct proto_attr *a, bool *valid)
{
	struct attr_scan as = {.a = a};
	uint64_t u;

	memset(a, 0, sizeof(*a));
	*valid = false;
	if (j->p >= j->end || *j->p != '{')
		return skip_value(j, NULL);
	if (++j->depth > JS_MAX_DEPTH)
		return false;
	if (!attr_fast(j, &as) && !object(j, attr_names, attr_member, &as)) {
		j->depth--;
		return false;
	}
	j->depth--;
	if (!as.fid_ok || !as.type_ok)
		return true;
	if (!attr_uint(&as, A_MODE, 07777, &u))
		return true;
	a->mode = (uint32_t)u;
	if (!attr_uint(&as, A_UID, UINT32_MAX, &u))
		return true;
	a->uid = (uint32_t)u;
	if (!attr_uint(&as, A_GID, UINT32_MAX, &u))
		return true;
	a->gid = (uint32_t)u;
	if (!attr_uint(&as, A_SIZE, INT64_MAX, &a->size) ||
	    !attr_uint(&as, A_NLINK, INT64_MAX, &a->nlink) ||
	    !attr_uint(&as, A_DV, INT64_MAX, &a->dv))
		return true;
	for (int i = A_ATIME; i <= A_CTIME; i++)
		if (!(as.have & (1u << i)) || as.v[i].kind != JV_INT)
			return true;
	a->atime_ns = as.v[A_ATIME].i;
	a->mtime_ns = as.v[A_MTIME].i;
	a->ctime_ns = as.v[A_CTIME].i;
	if (as.have & (1u << A_RDEV)) {
		if (!attr_uint(&as, A_RDEV, PROTO_RDEV_MAX, &u) ||
		    (u && !proto_type_has_rdev(a->type)))
			return true;
		a->rdev = (uint32_t)u;
	}
	*valid = true;
	return true;
}

/* One entry: {"name": ..., "attr": {...}} and anything else. */
enum { E_NAME, E_ATTR };
static const char *const ent_names[] = {"name", "attr", NULL};

struct ent_scan {
	struct proto_dirent *e; /* NULL: check only (past the maximum) */
	struct proto_attr attr;
	bool name_ok, attr_ok;
	int name_rc; /* proto_name_check() of a string name */
};

static bool
ent_member(struct js *j, int idx, void *arg)
{
	struct ent_scan *es = arg;

	if (idx == E_ATTR)
		return attr(j, &es->attr, &es->attr_ok);
	if (idx == E_NAME) {
		struct jv v;

		if (!skip_value(j, &v))
			return false;
		es->name_ok = false;
		if (v.kind != JV_STR) {
			es->name_rc = -EINVAL;
			return true;
		}
		es->name_rc = proto_name_check(v.s, v.len);
		if (es->name_rc)
			return true;
		if (es->e) {
			es->e->name = strndup(v.s, v.len);
			if (!es->e->name) {
				j->nomem = true;
				return false;
			}
		}
		es->name_ok = true;
		return true;
	}
	return skip_value(j, NULL);
}

/* The top object's members. */
enum { T_DIR, T_NEXT, T_ENTRIES };
static const char *const top_names[] = {"dir", "next", "entries", NULL};

struct top_scan {
	struct proto_dir *d;
	size_t max;
	char *next; /* NULL: "next" is not looked at */
	bool dir_ok, next_ok, ents_array;
	size_t n; /* entries seen */
	size_t cap;
	int ent_rc; /* the first failing entry's code, 0 */
};

static bool
entries(struct js *j, struct top_scan *ts)
{
	struct proto_dir *d = ts->d;

	ts->ents_array = true;
	j->p++; /* '[' */
	ws(j);
	if (j->p < j->end && *j->p == ']') {
		j->p++;
		return true;
	}
	for (;;) {
		struct ent_scan es = {.name_rc = -EINVAL};
		bool keep = ts->n < ts->max && ts->ent_rc == 0;

		ws(j);
		if (keep && d->n == ts->cap) {
			size_t cap = ts->cap ? ts->cap * 2 : 64;
			struct proto_dirent *p;

			if (cap > ts->max)
				cap = ts->max;
			p = realloc(d->ents, cap * sizeof(*p));
			if (!p) {
				j->nomem = true;
				return false;
			}
			d->ents = p;
			ts->cap = cap;
		}
		if (keep) {
			es.e = &d->ents[d->n];
			es.e->name = NULL;
		}
		if (++j->depth > JS_MAX_DEPTH)
			return false;
		if (j->p < j->end && *j->p == '{') {
			bool ok = object(j, ent_names, ent_member, &es);

			j->depth--;
			if (keep && es.e->name)
				d->n++; /* owned by d from here on */
			if (!ok)
				return false;
			if (ts->ent_rc == 0 && !es.name_ok)
				ts->ent_rc = es.name_rc == -ENAMETOOLONG
						     ? -EINVAL
						     : es.name_rc;
			else if (ts->ent_rc == 0 && !es.attr_ok)
				ts->ent_rc = -EINVAL;
			if (keep && es.e->name)
				es.e->attr = es.attr;
		} else {
			j->depth--;
			if (!skip_value(j, NULL))
				return false;
			if (ts->ent_rc == 0)
				ts->ent_rc = -EINVAL;
		}
		ts->n++;
		ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == ']') {
			j->p++;
			return true;
		}
		return false;
	}
}

static bool
top_member(struct js *j, int idx, void *arg)
{
	struct top_scan *ts = arg;

	if (idx == T_DIR) {
		bool ok = attr(j, &ts->d->dir, &ts->dir_ok);

		if (ts->dir_ok && ts->d->dir.type != PROTO_T_DIR)
			ts->dir_ok = false;
		return ok;
	}
	if (idx == T_NEXT && ts->next) {
		struct jv v;

		if (!skip_value(j, &v))
			return false;
		ts->next_ok = false;
		if (v.kind == JV_STR && proto_cursor_ok(v.s, v.len)) {
			memcpy(ts->next, v.s, v.len);
			ts->next[v.len] = 0;
			ts->next_ok = true;
		}
		return true;
	}
	if (idx == T_ENTRIES) {
		if (j->p < j->end && *j->p == '[') {
			bool ok;

			if (++j->depth > JS_MAX_DEPTH)
				return false;
			ok = entries(j, ts);
			j->depth--;
			return ok;
		}
		return skip_value(j, NULL);
	}
	return skip_value(j, NULL);
}

int
proto_dir_scan(const char *buf, size_t len, size_t max, struct proto_dir *d,
	       char *next)
{
	return proto_dir_scan_ex(buf, len, max, d, next, true);
}

int
proto_dir_scan_ex(const char *buf, size_t len, size_t max,
		  struct proto_dir *d, char *next, bool names)
{
	struct js j = {.p = (const unsigned char *)buf,
		       .end = (const unsigned char *)buf + len};
	struct top_scan ts = {
		.d = d, .max = max, .next = next, .next_ok = true};
	bool ok;
	int rc;

	memset(d, 0, sizeof(*d));
	if (next)
		next[0] = 0;
	if (!buf || len > PROTO_BODY_MAX)
		return -EINVAL;
	ws(&j);
	if (j.p >= j.end || *j.p != '{')
		return -EINVAL;
	j.depth = 1;
	ok = object(&j, top_names, top_member, &ts);
	ws(&j);
	if (ok && j.p != j.end)
		ok = false;
	free(j.scratch);
	if (j.nomem)
		rc = -ENOMEM;
	else if (!ok || !ts.dir_ok || !ts.next_ok || !ts.ents_array)
		rc = -EINVAL;
	else if (ts.n > max)
		rc = -E2BIG;
	else if (ts.ent_rc)
		rc = ts.ent_rc;
	else
		rc = names ? proto_dir_check_names(d) : 0;
	if (rc == 0 && !d->ents) {
		/* As the jansson decoder: an array even when empty. */
		d->ents = calloc(1, sizeof(*d->ents));
		if (!d->ents)
			rc = -ENOMEM;
	}
	if (rc) {
		proto_dir_release(d);
		if (next)
			next[0] = 0;
	}
	return rc;
}
