#!/usr/bin/env bash
# t2140-cm-secure-mount: cairnd refuses, before it mounts anything, a token
# file that group or others may read, one owned by another user, and a
# symbolic link, each with a message naming the file, its mode, its owner
# and the fix; a 0600 token made by `vos token -o` mounts. The mount is
# nosuid,nodev unless "-o suid,dev" says otherwise.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 60

vold_start || exit 99
vos create home >/dev/null || exit 99
(umask 022; vos token home --rw) >"$T_DIR/loose.tok" || exit 99
t_is "$(stat -c %a "$T_DIR/loose.tok")" 644 "a token written by redirection under umask 022 is 0644"
(umask 000; vos token home --rw -o "$T_DIR/good.tok") || exit 99
t_is "$(stat -c %a "$T_DIR/good.tok")" 600 "vos token -o writes 0600"

mnt=$T_DIR/m.mnt
mkdir -p "$mnt"
# try TOKENFILE NAME: run cairnd, which must exit non-zero without mounting.
try() {
	local log=$T_DIR/cairnd-$2.log rc
	timeout 20 "$CAIRND" --server "$VOLD_URL" --volume home --token "$1" \
		--cache "$T_DIR/cache-$2" --mountpoint "$mnt" --foreground \
		>"$log" 2>&1
	rc=$?
	t_ok "$([ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && echo 0 || echo 1)" "$2: cairnd exits non-zero ($rc)"
	t_ok "$(mountpoint -q "$mnt" && echo 1 || echo 0)" "$2: nothing mounted"
	t_ok "$(grep -q 'token file' "$log" && grep -qF "$1" "$log" && echo 0 || echo 1)" "$2: the message names the token file"
}

try "$T_DIR/loose.tok" mode-0644
t_ok "$(grep -q 'mode 0644' "$T_DIR/cairnd-mode-0644.log" && grep -q 'owner root' "$T_DIR/cairnd-mode-0644.log" && grep -q "chmod 600 '$T_DIR/loose.tok'" "$T_DIR/cairnd-mode-0644.log" && echo 0 || echo 1)" "mode-0644: message says mode, owner and chmod 600"
cp "$T_DIR/good.tok" "$T_DIR/group.tok"; chmod 640 "$T_DIR/group.tok"
try "$T_DIR/group.tok" mode-0640
ln -s "$T_DIR/good.tok" "$T_DIR/link.tok"
try "$T_DIR/link.tok" symlink
t_ok "$(grep -q 'symbolic link' "$T_DIR/cairnd-symlink.log" && echo 0 || echo 1)" "symlink: the message says so"
cp "$T_DIR/good.tok" "$T_DIR/nobody.tok"; chmod 600 "$T_DIR/nobody.tok"; chown nobody "$T_DIR/nobody.tok"
try "$T_DIR/nobody.tok" other-owner
t_ok "$(grep -q 'owned by another user' "$T_DIR/cairnd-other-owner.log" && grep -q "chown root '$T_DIR/nobody.tok'" "$T_DIR/cairnd-other-owner.log" && echo 0 || echo 1)" "other-owner: message says owner and chown"

cairnd_mount "$mnt" "$T_DIR/cache" home "$T_DIR/good.tok" || exit 1
t_ok "$(mountpoint -q "$mnt" && echo 0 || echo 1)" "a 0600 token of our own mounts"
opts=$(awk -v m="$mnt" '$2 == m { print $4 }' /proc/mounts)
t_ok "$(echo ",$opts," | grep -q ',nosuid,' && echo 0 || echo 1)" "mounted nosuid ($opts)"
t_ok "$(echo ",$opts," | grep -q ',nodev,' && echo 0 || echo 1)" "mounted nodev ($opts)"
# A set-uid file on the mount: the kernel ignores the bit (nosuid).
cp /usr/bin/id "$mnt/suid-id" && chmod 4755 "$mnt/suid-id"
t_is "$(stat -c %a "$mnt/suid-id" 2>/dev/null)" 4755 "the set-uid bit is stored"
t_is "$(setpriv --reuid=65534 --regid=65534 --clear-groups "$mnt/suid-id" -u 2>/dev/null)" 65534 "running it as nobody does not gain root"
cairnd_umount "$mnt"

cairnd_mount "$mnt" "$T_DIR/cache" home "$T_DIR/good.tok" -o suid,dev || exit 1
opts=$(awk -v m="$mnt" '$2 == m { print $4 }' /proc/mounts)
t_ok "$(echo ",$opts," | grep -qE ',nosuid,|,nodev,' && echo 1 || echo 0)" "-o suid,dev mounts without nosuid,nodev ($opts)"
cairnd_umount "$mnt"
t_done
