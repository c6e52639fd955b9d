#!/usr/bin/env bash
# t3050-fs-escape: names may hold newlines, terminal escapes and bytes that
# are not UTF-8; they are stored as they are, but fs and vos print them as
# C escapes (\n, \x1b, \xff), one line per name, and never the raw byte.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 60
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }
ESC=$(printf '\033')
evil=$(printf 'evil\nname\033[31m')     # newline + ESC; valid UTF-8
# has_raw FILE: does FILE hold a raw ESC byte?
has_raw() { grep -q "$ESC" "$1" && echo 1 || echo 0; }

vold_start || exit 99
vos create home >/dev/null || exit 99
make_token home rw "$T_DIR/tok"
mnt=$T_DIR/m.mnt
cairnd_mount "$mnt" "$T_DIR/cache" home "$T_DIR/tok" || exit 1
echo data >"$mnt/$evil" || exit 99
t_is "$(ls "$mnt" | od -c | grep -c '033')" 1 "the name is stored as it is (ESC in ls)"

"$FS" whereis "$mnt/$evil" >"$T_DIR/whereis.out" 2>&1
t_is "$?" 0 "fs whereis on the name works"
t_is "$(wc -l <"$T_DIR/whereis.out")" 1 "fs whereis: one line"
t_ok "$(grep -qF 'evil\nname\x1b[31m is on volume home' "$T_DIR/whereis.out" && echo 0 || echo 1)" "fs whereis prints \\n and \\x1b"
t_is "$(has_raw "$T_DIR/whereis.out")" 0 "fs whereis: no raw ESC"
"$FS" examine "$mnt/$evil" "$mnt" >"$T_DIR/examine.out" 2>&1
t_ok "$(grep -qxF "$mnt/evil\\nname\\x1b[31m:" "$T_DIR/examine.out" && echo 0 || echo 1)" "fs examine heads the file escaped"
t_is "$(has_raw "$T_DIR/examine.out")" 0 "fs examine: no raw ESC"
"$FS" flushmeta "$mnt/$evil" >"$T_DIR/flushmeta.out" 2>&1
t_ok "$(grep -qF 'flushed metadata of' "$T_DIR/flushmeta.out" && [ "$(wc -l <"$T_DIR/flushmeta.out")" = 1 ] && echo 0 || echo 1)" "fs flushmeta: one escaped line"
t_is "$(has_raw "$T_DIR/flushmeta.out")" 0 "fs flushmeta: no raw ESC"
"$FS" pin -q "$mnt/$evil" >"$T_DIR/pin.out" 2>&1
t_ok "$(grep -qF 'pinned '"$mnt"'/evil\nname\x1b[31m' "$T_DIR/pin.out" && echo 0 || echo 1)" "fs pin names the file escaped"
"$FS" pins -m "$mnt" >"$T_DIR/pins.out" 2>&1
t_ok "$(grep -qF "$mnt/evil\\nname\\x1b[31m" "$T_DIR/pins.out" && [ "$(wc -l <"$T_DIR/pins.out")" = 3 ] && echo 0 || echo 1)" "fs pins lists it escaped, on one line"
t_is "$(has_raw "$T_DIR/pins.out")" 0 "fs pins: no raw ESC"
"$FS" examine "$mnt/$evil" --json >"$T_DIR/examine.json" 2>&1
t_is "$(has_raw "$T_DIR/examine.json")" 0 "fs --json: JSON escapes it"
"$FS" whereis "$mnt/$(printf 'no\033such')" >"$T_DIR/err.out" 2>&1
t_ok "$(grep -qF 'no\x1bsuch' "$T_DIR/err.out" && echo 0 || echo 1)" "an error message names the path escaped"
t_is "$(has_raw "$T_DIR/err.out")" 0 "error message: no raw ESC"
t_is "$(has_raw "$T_DIR/cairnd-m.mnt.log")" 0 "cairnd's log: no raw ESC"
cairnd_umount "$mnt"

# vos: a device node export cannot make (no CAP_MKNOD) is skipped with a
# warning naming it escaped, on one line; a name that is not UTF-8 stops
# an import with an error naming it. (Sockets were the skipped type until
# volumes could hold them.)
src=$T_DIR/src
mkdir -p "$src/ok" "$src/bad"
mknod "$src/ok/$(printf 'de\nv\033')" c 1 3 || exit 99
: >"$src/bad/$(printf 'x\377\033y')"
vos import ok "$src/ok" >"$T_DIR/vos-ok.out" 2>"$T_DIR/vos-ok.err"
t_is "$?" 0 "vos import of a device node with such a name"
if command -v setpriv >/dev/null; then
	setpriv --inh-caps=-mknod --bounding-set=-mknod -- "$VOS_BIN" \
		--root "$SRV_ROOT" export ok "$T_DIR/out-ok" \
		>"$T_DIR/vos-ok.out" 2>"$T_DIR/vos-ok.err"
	t_ok "$(grep -F 'skipping device node' "$T_DIR/vos-ok.err" | grep -qF 'de\nv\x1b' && [ "$(grep -c 'skipping device node' "$T_DIR/vos-ok.err")" = 1 ] && echo 0 || echo 1)" "vos export: the skipped device node is named escaped, on one line"
	t_is "$(has_raw "$T_DIR/vos-ok.err")" 0 "vos export warning: no raw ESC"
else
	echo "# no setpriv: export without CAP_MKNOD not tried"
fi
vos import bad "$src/bad" >"$T_DIR/vos-bad.out" 2>"$T_DIR/vos-bad.err"
t_ok "$(grep -qF 'x\xff\x1by' "$T_DIR/vos-bad.err" && echo 0 || echo 1)" "vos import error: the name is escaped (\\xff, \\x1b)"
t_is "$(has_raw "$T_DIR/vos-bad.err")" 0 "vos import error: no raw ESC"
t_done
