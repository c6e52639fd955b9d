#!/usr/bin/env bash
# tar x in writeback mode.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 200
vold_start || exit 99
vos init >/dev/null 2>&1
vos create rv >/dev/null 2>&1 || exit 99
make_token rv rw "$T_DIR/tok"
A=$T_DIR/a
src=$T_DIR/src; mkdir -p "$src/t/d1" "$src/t/d2/d3"
for d in t t/d1 t/d2 t/d2/d3; do echo x >"$src/$d/file"; done
touch -d 2001-01-01 "$src/t/d1" "$src/t/d2/d3" "$src/t/d2" "$src/t"
tar -C "$src" -cf "$T_DIR/t.tar" t
cairnd_mount "$A" "$T_DIR/ca" rv "$T_DIR/tok" --write-mode writeback || exit 1
tar -C "$A" -xf "$T_DIR/t.tar"; echo "# tar rc=$?"
"$FS" sync -m "$A"; echo "# fs sync rc=$?"
"$FS" conflicts -m "$A" 2>&1 | grep -c "refused" | sed 's/^/# conflicts: /'
t_is "$("$FS" status --json -m "$A" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get("conflicts", ""))')" 0 "no conflicts after tar x"
cairnd_umount "$A"
t_done
