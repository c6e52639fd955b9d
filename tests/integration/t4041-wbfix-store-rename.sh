#!/usr/bin/env bash
# writeback, store then rename of one file drained together; then a
# restart and another write.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 200
vold_start || exit 99
vos init >/dev/null 2>&1
vos create rv >/dev/null 2>&1 || exit 99
make_token rv rw "$T_DIR/tok"
A=$T_DIR/a
cairnd_mount "$A" "$T_DIR/ca" rv "$T_DIR/tok" --write-mode writeback --writeback-delay 2s || exit 1
mkdir "$A/D" && echo one >"$A/D/f"
"$FS" sync -m "$A"; echo "# fs sync rc=$?"
echo two >"$A/D/f"
mv "$A/D/f" "$A/D/g"
"$FS" sync -m "$A"; echo "# fs sync rc=$?"
t_is "$(cat "$A/D/g")" two "g reads two"
cairnd_umount "$A"
cairnd_mount "$A" "$T_DIR/ca" rv "$T_DIR/tok" --write-mode writeback --writeback-delay 2s || exit 1
t_is "$(cat "$A/D/g")" two "g reads two after a restart"
echo three >>"$A/D/g"
"$FS" sync -m "$A"; echo "# fs sync rc=$?"
t_is "$(ls "$A/D" | tr '\n' ' ')" "g " "no conflict copy"
"$FS" conflicts -m "$A" 2>&1 | sed 's/^/# /'
B=$T_DIR/b
cairnd_mount "$B" "$T_DIR/cb" rv "$T_DIR/tok" || exit 1
t_is "$(cat "$B/D/g" | tr '\n' ' ')" "two three " "the server has both lines"
cairnd_umount "$B"
cairnd_umount "$A"
t_done
