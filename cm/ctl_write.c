/*
 * ctl_write.c - control requests of the write modes (doc/cm.md "Write
 * modes"): fs setpolicy write-mode, writeback-delay and log-sync (the rest of
 * setpolicy is ctl_offline.c's), fs sync, and the write-mode part of fs
 * status. The work is replay.c's; this only checks and answers.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm/cm.h"
#include "cm/ctl.h"
#include "cm/ctl_i.h"
#include "cm/replay.h"
#include "common/ctl_proto.h"
#include "common/log.h"

struct policy_call {
	struct ctl_call *call;
	char value[32];
};

static void
switched(void *arg, int err, uint64_t records)
{
	struct policy_call *pc = arg;

	(void)records;
	if (err == -EHOSTUNREACH)
		ctl_reply_err(pc->call, err,
			      "the server was lost before the log was sent: "
			      "still writeback");
	else if (err)
		ctl_reply_err(pc->call, err, NULL);
	else
		ctl_reply_ok(pc->call, json_pack("{s:s,s:s}", "name",
						 "write-mode", "value",
						 pc->value));
	free(pc);
}

bool
cm_ctl_setpolicy_write(struct cm *cm, struct ctl_call *call,
		       const struct ctl_peer *peer, const char *name,
		       const char *value)
{
	struct policy_call *pc;
	uint64_t ms;
	bool wb;
	int rc;

	if (!strcmp(name, "writeback-delay")) {
		if (!value || cm_writeback_delay_parse(value, &ms) < 0) {
			ctl_reply_err(call, -EINVAL,
				      "writeback-delay is a duration from "
				      "10ms to 1h");
			return true;
		}
		replay_set_writeback_delay(cm->replay, ms);
		log_info(LOG_CTL, "writeback-delay %llu ms, set by uid %u",
			 (unsigned long long)ms, (unsigned)peer->uid);
		ctl_reply_ok(call, json_pack("{s:s,s:s}", "name", name,
					     "value", value));
		return true;
	}
	if (!strcmp(name, "log-sync")) {
		bool close;

		if (!value || cm_log_sync_parse(value, &close) < 0) {
			ctl_reply_err(call, -EINVAL,
				      "log-sync is op or close");
			return true;
		}
		replay_set_log_sync(cm->replay, close);
		log_info(LOG_CTL, "log-sync %s, set by uid %u", value,
			 (unsigned)peer->uid);
		ctl_reply_ok(call, json_pack("{s:s,s:s}", "name", name,
					     "value", value));
		return true;
	}
	if (strcmp(name, "write-mode"))
		return false;
	if (!value || cm_write_mode_parse(value, &wb) < 0) {
		ctl_reply_err(call, -EINVAL,
			      "write-mode is sync or writeback");
		return true;
	}
	pc = calloc(1, sizeof(*pc));
	if (!pc) {
		ctl_reply_err(call, -ENOMEM, NULL);
		return true;
	}
	pc->call = call;
	snprintf(pc->value, sizeof(pc->value), "%s", value);
	log_info(LOG_CTL, "write-mode %s, set by uid %u", value,
		 (unsigned)peer->uid);
	rc = replay_set_writeback(cm->replay, wb, switched, pc);
	if (rc == 0)
		return true; /* answered by switched() */
	if (rc < 0)
		ctl_reply_err(call, rc, NULL);
	else
		ctl_reply_ok(call, json_pack("{s:s,s:s}", "name", name,
					     "value", value));
	free(pc);
	return true;
}

void
cm_ctl_write_status(struct cm *cm, json_t *o)
{
	struct replay_wb_state s;

	if (!replay_wb_state(cm->replay, &s))
		return;
	json_object_set_new(o, "write_mode",
			    json_string(s.writeback ? "writeback" : "sync"));
	json_object_set_new(o, "writeback_delay_ms",
			    json_integer((json_int_t)s.delay_ms));
	json_object_set_new(o, "log_sync",
			    json_string(s.log_close ? "close" : "op"));
	json_object_set_new(o, "draining", json_boolean(s.draining));
	json_object_set_new(o, "backlog_records",
			    json_integer((json_int_t)s.records));
	json_object_set_new(o, "backlog_bytes",
			    json_integer((json_int_t)s.bytes));
	json_object_set_new(o, "backlog_oldest_ms",
			    json_integer((json_int_t)s.oldest_ms));
}

/* --- fs sync [PATH] --- */

static void
synced(void *arg, int err, uint64_t records)
{
	struct ctl_call *call = arg;

	if (err == -EIO)
		ctl_reply_err(call, err,
			      "a change was refused by the server and became "
			      "a conflict (see fs conflicts)");
	else if (err == -ESHUTDOWN)
		ctl_reply_err(call, err, "cairnd is stopping");
	else if (err)
		ctl_reply_err(call, err, NULL);
	else
		ctl_reply_ok(call, json_pack("{s:I}", "records",
					     (json_int_t)records));
}

static void
sync_resolved(struct resolve *r, const struct proto_attr *a)
{
	int rc = replay_sync(r->cm->replay, &a->fid, synced, r->call);

	if (rc < 0) {
		cm_ctl_resolve_fail(r, rc, NULL);
		return;
	}
	cm_ctl_resolve_free(r);
}

void
cm_ctl_h_sync(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	      json_t *args)
{
	struct cm *cm = arg;
	int rc;

	if (json_object_get(args, "path")) {
		/* Search permission on the way; the target only has to be
		 * there (waiting tells nothing stat would not). */
		cm_ctl_resolve(cm, call, peer, args, 0, sync_resolved);
		return;
	}
	rc = replay_sync(cm->replay, NULL, synced, call);
	if (rc < 0)
		ctl_reply_err(call, rc, NULL);
}
