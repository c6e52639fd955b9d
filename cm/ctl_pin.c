/*
 * ctl_pin.c - fs pin, unpin and pins: the path is resolved here, the
 * pinning is pin.c's; this file turns pin.c's answers into the replies
 * and PROGRESS frames of doc/control.md.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cm/access.h"
#include "cm/cm.h"
#include "cm/ctl.h"
#include "cm/ctl_i.h"
#include "cm/pin.h"
#include "common/ctl_proto.h"
#include "common/fid.h"
#include "common/log.h"
#include "common/util.h"

/* --- fs pin --- */

static void
pin_progress_cb(void *arg, const struct pin_progress *pr)
{
	struct ctl_call *call = arg;

	ctl_progress(call, json_pack("{s:I,s:I,s:I,s:I}", "bytes_done",
				     (json_int_t)pr->bytes_done, "bytes_total",
				     (json_int_t)pr->bytes_total, "files_done",
				     (json_int_t)pr->files_done, "files_total",
				     (json_int_t)pr->files_total));
}

static void
pin_done_cb(void *arg, const struct pin_result *res)
{
	struct ctl_call *call = arg;
	char a[32], b[32], c[32], msg[256];

	switch (res->kind) {
	case PIN_DONE:
		ctl_reply_ok(call,
			     json_pack("{s:I,s:I,s:I,s:I}", "bytes",
				       (json_int_t)res->bytes_total, "files",
				       (json_int_t)res->files, "bytes_fetched",
				       (json_int_t)res->bytes_fetched,
				       "files_skipped",
				       (json_int_t)res->files_skipped));
		break;
	case PIN_CHUNKS_MISSING:
		snprintf(msg, sizeof(msg),
			 "pinned, but %llu chunks could not be fetched (%s); "
			 "'fs pins' shows what is missing",
			 (unsigned long long)res->chunks_failed,
			 strerror(-res->fetch_err));
		ctl_reply_err_detail(call, res->err,
				     json_pack("{s:I,s:I}", "bytes_missing",
					       (json_int_t)(res->bytes_total -
							    res->bytes_done),
					       "chunks_failed",
					       (json_int_t)res->chunks_failed),
				     msg);
		break;
	case PIN_NO_SPACE:
		util_fmt_size(res->need, a, sizeof(a));
		util_fmt_size(res->avail, b, sizeof(b));
		util_fmt_size(res->need - res->avail, c, sizeof(c));
		snprintf(msg, sizeof(msg),
			 "the pinned set needs %s more, the cache can hold %s "
			 "more: short by %s",
			 a, b, c);
		ctl_reply_err_detail(
			call, ENOSPC,
			json_pack("{s:I,s:I,s:I}", "bytes_needed",
				  (json_int_t)res->need, "bytes_available",
				  (json_int_t)res->avail, "bytes_short",
				  (json_int_t)(res->need - res->avail)),
			msg);
		break;
	case PIN_NO_FILES:
		snprintf(msg, sizeof(msg),
			 "the pinned set needs %llu more chunk files, the "
			 "cache can hold %llu more (its file limit is %llu): "
			 "short by %llu",
			 (unsigned long long)res->need,
			 (unsigned long long)res->avail,
			 (unsigned long long)res->limit,
			 (unsigned long long)(res->need - res->avail));
		ctl_reply_err_detail(
			call, ENOSPC,
			json_pack("{s:I,s:I,s:I}", "files_needed",
				  (json_int_t)res->need, "files_available",
				  (json_int_t)res->avail, "files_short",
				  (json_int_t)(res->need - res->avail)),
			msg);
		break;
	case PIN_NO_SERVER:
		ctl_reply_err(call, EHOSTUNREACH,
			      "the volume server does not answer");
		break;
	case PIN_STOPPING:
		ctl_reply_err(call, ECANCELED, "cairnd is stopping");
		break;
	case PIN_FAILED:
	default:
		ctl_reply_err(call, -res->err, NULL);
		break;
	}
}

static void
pin_done(struct resolve *r, const struct proto_attr *a)
{
	const struct pin_watch w = {
		.progress = pin_progress_cb,
		.done = pin_done_cb,
		.arg = r->call,
	};
	int rc = pin_add(r->cm->pin, &r->peer, a, r->path, r->recursive, &w);

	if (rc < 0)
		ctl_reply_err(r->call, -rc, NULL);
	cm_ctl_resolve_free(r);
}

void
cm_ctl_h_pin(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	     json_t *args)
{
	cm_ctl_resolve(arg, call, peer, args, R_OK, pin_done);
}

/* --- fs unpin --- */

static void
unpin_done(struct resolve *r, const struct proto_attr *a)
{
	struct pin_removed out;
	char msg[CTL_PATH_MAX + 128];
	int rc = pin_remove(r->cm->pin, &r->peer, &a->fid, r->path,
			    r->recursive, &out);

	if (rc == -EPERM) {
		snprintf(msg, sizeof(msg),
			 "the pin of '%s' is uid %u's: only its owner or "
			 "root may remove it",
			 out.path, (unsigned)out.owner);
		ctl_reply_err(r->call, EPERM, msg);
	} else {
		ctl_reply_ok(r->call,
			     json_pack("{s:I,s:I,s:I}", "pins_removed",
				       (json_int_t)out.removed, "bytes",
				       (json_int_t)out.bytes, "pins_kept",
				       (json_int_t)out.kept));
	}
	cm_ctl_resolve_free(r);
}

void
cm_ctl_h_unpin(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	       json_t *args)
{
	cm_ctl_resolve(arg, call, peer, args, R_OK, unpin_done);
}

/* --- fs pins --- */

struct pins_list {
	struct cm *cm;
	const struct ctl_peer *peer;
	const char *under; /* NULL: all */
	json_t *arr;
};

/* Its own pins always; others' if the mount would show their path. */
static bool
pins_sees(void *arg, const char *path, uid_t owner)
{
	struct pins_list *l = arg;

	if (l->under && !pin_path_under(path, l->under))
		return false;
	return acc_sees(l->cm->acc, l->peer, path, NULL, owner);
}

static int
pins_each(void *arg, const struct pin_info *pi)
{
	struct pins_list *l = arg;

	json_array_append_new(
		l->arr, json_pack("{s:s,s:b,s:I,s:I,s:I}", "path", pi->path,
				  "recursive", pi->recursive, "bytes",
				  (json_int_t)pi->bytes, "bytes_missing",
				  (json_int_t)pi->missing, "files",
				  (json_int_t)pi->files));
	return 0;
}

void
cm_ctl_h_pins(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	      json_t *args)
{
	struct pins_list l = {
		.cm = arg,
		.peer = peer,
		.under = json_string_value(json_object_get(args, "path")),
		.arr = json_array(),
	};
	const struct pin_lister lister = {
		.sees = pins_sees,
		.each = pins_each,
		.arg = &l,
	};
	uint64_t tb, tm;
	json_t *res;

	if (!l.arr) {
		ctl_reply_err(call, ENOMEM, NULL);
		return;
	}
	pin_list(l.cm->pin, &lister, !l.under && peer->uid == 0, &tb, &tm);
	res = json_pack("{s:o,s:I,s:I}", "pins", l.arr, "bytes_pinned",
			(json_int_t)tb, "bytes_missing", (json_int_t)tm);
	if (!res)
		ctl_reply_err(call, ENOMEM, NULL);
	else
		ctl_reply_ok(call, res);
}
