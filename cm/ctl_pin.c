/*
 * ctl_pin.c - fs pin, unpin and pins: the path is resolved here, the
 * pinning is pin.c's.
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

#include "chunkstore/cs.h"
#include "cm/cm.h"
#include "cm/ctl.h"
#include "cm/ctl_i.h"
#include "cm/http.h"
#include "cm/inode.h"
#include "cm/mcache.h"
#include "cm/mfetch.h"
#include "cm/replay.h"
#include "cm/pin.h"
#include "cm/vc.h"
#include "cm/wb.h"
#include "common/ctl_proto.h"
#include "common/fid.h"
#include "common/log.h"
#include "common/util.h"


static void
pin_done(struct resolve *r, const struct proto_attr *a)
{
	pin_ctl_pin(r->cm, r->call, &r->peer, a, r->path, r->recursive);
	cm_ctl_resolve_free(r);
}

void
cm_ctl_h_pin(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
      json_t *args)
{
	cm_ctl_resolve(arg, call, peer, args, R_OK, pin_done);
}

static void
unpin_done(struct resolve *r, const struct proto_attr *a)
{
	pin_ctl_unpin(r->cm, r->call, &r->peer, a, r->path, r->recursive);
	cm_ctl_resolve_free(r);
}

void
cm_ctl_h_unpin(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
	json_t *args)
{
	cm_ctl_resolve(arg, call, peer, args, R_OK, unpin_done);
}

void
cm_ctl_h_pins(void *arg, struct ctl_call *call, const struct ctl_peer *peer,
       json_t *args)
{
	pin_ctl_pins(arg, call, peer,
		     json_string_value(json_object_get(args, "path")));
}

