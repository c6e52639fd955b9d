#!/bin/bash
# t2133-cm-forget-listing: a directory listing edit that cairnd kept in
# memory only (it writes a listing at most once a second) is written to
# the metadata cache when the kernel forgets the directory, and at a
# clean stop: a disconnect, or a start while the server is down, lists
# the directory as it was (before: EIO, the file's older listing is not
# served once the directory's attributes are newer). Found by the
# session-11 t5051 work (h-nsflake).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 120
vold_start || exit 99
vos create v >/dev/null 2>&1 || exit 99
make_token v rw "$T_DIR/tok"
A=$T_DIR/a
cairnd_mount "$A" "$T_DIR/ca" v "$T_DIR/tok" --fetch-timeout 2s || exit 99

# 1. Edits within a second of the listing's last write, then the kernel
# forgets the directory (drop_caches), then a disconnect.
mkdir "$A/d" && echo x >"$A/d/f0"
sleep 1.2
touch "$A/d/f1" "$A/d/f2"
t_is "$(ls "$A/d" | tr '\n' ' ')" "f0 f1 f2 " "online: the three names"
drop_caches
sleep 0.5
t_check "fs disconnect" "$FS" disconnect -m "$A"
t_is "$(ls "$A/d" 2>&1 | tr '\n' ' ')" "f0 f1 f2 " "disconnected after the kernel forgot the directory: the three names"
t_check "fs reconnect" "$FS" reconnect -m "$A"

# 2. The same edits, then a clean stop, and a start with the server gone.
mkdir "$A/e" && echo x >"$A/e/g0"
sleep 1.2
touch "$A/e/g1" "$A/e/g2"
t_is "$(ls "$A/e" | tr '\n' ' ')" "g0 g1 g2 " "online: e's three names"
cairnd_umount "$A"
vold_stop
cairnd_mount "$A" "$T_DIR/ca" v "$T_DIR/tok" --fetch-timeout 2s || exit 1
t_is "$(ls "$A/e" 2>&1 | tr '\n' ' ')" "g0 g1 g2 " "started with the server down: e's three names"
t_is "$(ls "$A/d" 2>&1 | tr '\n' ' ')" "f0 f1 f2 " "and d's"
cairnd_umount "$A"
t_done
