/*
 * conf.h - the config file format both daemons share (cairn.conf(5),
 * cairn-vold.conf(5)): an ini file plus a drop-in directory, read in one
 * pass that remembers where each setting came from, for --show-config.
 *
 * The format is inih's (libinih): "key = value" (or "key: value")
 * lines and "[section]" lines; a line whose first non-blank character is
 * ';' or '#' is a comment, and so is the rest of a line from a ';' that
 * follows a blank. Keys use dashes as the long options do ("cache-size");
 * an underscore in a key is read as a dash ("max_conns" is "max-conns"),
 * so older files keep working. Blanks around keys and values are dropped;
 * a value may be empty. A line is at most 199 bytes (inih's buffer): a
 * longer one is refused, never cut. An indented line right after a
 * setting continues it (inih's multi-line values): the key is set again
 * to the indented text.
 *
 * The drop-in directory of FILE is "FILE.d": its regular files whose name
 * ends in ".conf" (and does not start with '.') are read after FILE, in
 * byte order of their names, so a later file wins, as systemd's drop-ins
 * do. A missing directory is not an error.
 *
 * Pure parsing: nothing here logs; errors come back as -errno with the
 * place ("FILE:LINE") for the caller's message. Any thread.
 */
#ifndef CAIRN_CONF_H
#define CAIRN_CONF_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Called for each setting: @section is "" before any section header,
 * @key is normalised (dashes), @origin is "FILE:LINE". Return 0 to go
 * on, 1 to ignore the line (another program's section), or a negative
 * errno to stop: conf_load() then returns it with that line as the place.
 * @why (may be left NULL) points to a static message for the caller.
 */
typedef int (*conf_set_fn)(void *arg, const char *section, const char *key,
			   const char *value, const char *origin,
			   const char **why);

/*
 * Read @path and then its drop-in directory "@path.d" (see above). When
 * @path does not exist and @must is false, only the drop-ins are read
 * (none is fine too). @return 0, or -errno: -ENOENT (a missing @path with
 * @must), another error of open/read, -EINVAL for a line that is not
 * "key = value" nor a section (syntax), or what @set returned. On error
 * @where (@wlen bytes) gets "FILE:LINE" or "FILE" and *why a message when
 * known (else NULL).
 */
int conf_load(const char *path, bool must, conf_set_fn set, void *arg,
	      char *where, size_t wlen, const char **why);

/* The same for one file only (no drop-ins). */
int conf_load_file(const char *path, conf_set_fn set, void *arg, char *where,
		   size_t wlen, const char **why);

/*
 * Where each setting came from, for --show-config: "default" until
 * something sets it, then the last origin ("FILE:LINE", "command line").
 * Keys are copied; conf_origins_release() frees them (NULL-safe).
 */
struct conf_origins {
	size_t n;
	struct conf_origin {
		char *key, *origin;
	} *v;
};

/* @return 0 or -ENOMEM. */
int conf_origin_set(struct conf_origins *o, const char *key,
		    const char *origin);
/* The origin of @key, "default" when never set. */
const char *conf_origin_get(const struct conf_origins *o, const char *key);
void conf_origins_release(struct conf_origins *o);

/* Is @v a yes/no word (yes, true, on, 1 / no, false, off, 0; any case)?
 * @return 0 and *out, or -EINVAL. */
int conf_parse_bool(const char *v, bool *out);

#endif /* CAIRN_CONF_H */
