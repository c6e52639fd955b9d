/*
 * fuzz_ctl_req.c - fuzz target for the control socket's request decoder:
 * ctl_msg_parse() (header, then payload) over a byte stream as cairnd's
 * cm/ctl.c reads it from a local user, and ctl_args_check() on what it
 * accepts. Any local user can write these bytes to cairnd.
 *
 * Property: a message accepted (header and payload, a request type, an id
 * other than 0, arguments that pass the schema) re-encodes with
 * ctl_msg_encode(), and that encoding parses back to the same header
 * fields and an equal payload, which passes the schema again; encoding it
 * once more gives the same bytes.
 */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/ctl_proto.h"
#include "tests/fuzz/fuzz.h"

/* One accepted request: the round trip must hold. */
static void
check_request(const struct ctl_hdr *h, const json_t *args)
{
	struct ctl_hdr h2;
	json_t *back = NULL;
	uint8_t *m, *m2;
	size_t len, len2, used;
	const char *p;

	FUZZ_ASSERT(ctl_type_name(h->type) != NULL);
	m = ctl_msg_encode(h->type, h->flags, h->id, args, &len);
	/* A payload the decoder took fits once re-encoded compactly. */
	FUZZ_ASSERT(m != NULL);
	FUZZ_ASSERT(ctl_msg_parse(m, len, &h2, &back, &used) == 0);
	FUZZ_ASSERT(used == len);
	FUZZ_ASSERT(h2.type == h->type && h2.flags == h->flags &&
		    h2.id == h->id && h2.version == CTL_VERSION);
	FUZZ_ASSERT(json_equal((json_t *)args, back));
	FUZZ_ASSERT(ctl_args_check(h2.type, back, NULL, 0) == 0);
	p = json_string_value(json_object_get(back, "path"));
	if (p)
		FUZZ_ASSERT(ctl_path_check(p) == 0);
	m2 = ctl_msg_encode(h2.type, h2.flags, h2.id, back, &len2);
	FUZZ_ASSERT(fuzz_same((const char *)m, len, (const char *)m2, len2));
	free(m2);
	json_decref(back);
	free(m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data;
	size_t left = size, used;
	struct ctl_hdr h;
	json_t *args;
	char why[256];
	int rc, n = 0;

	/* A stream of messages, as a connection delivers them; stop where
	 * the server would close (a bad frame) or wait (-EAGAIN). */
	while (left && n++ < 64) {
		rc = ctl_msg_parse(p, left, &h, &args, &used);
		if (rc == -EINVAL && used) {
			/* A bad payload: the server answers and reads on. */
			FUZZ_ASSERT(args == NULL && used <= left);
			p += used;
			left -= used;
			continue;
		}
		if (rc < 0) {
			FUZZ_ASSERT(args == NULL);
			break;
		}
		FUZZ_ASSERT(args && json_is_object(args));
		FUZZ_ASSERT(used >= CTL_HDR_SIZE && used <= left);
		FUZZ_ASSERT(used - CTL_HDR_SIZE == h.length);
		if (h.type >= 1 && h.type <= CTL_REQ_MAX && h.id != 0 &&
		    ctl_args_check(h.type, args, why, sizeof(why)) == 0)
			check_request(&h, args);
		else if (h.type >= 1 && h.type <= CTL_REQ_MAX)
			FUZZ_ASSERT(h.id == 0 || why[0] != '\0');
		json_decref(args);
		p += used;
		left -= used;
	}
	return 0;
}
