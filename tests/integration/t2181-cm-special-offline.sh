#!/usr/bin/env bash
# t2181-cm-special-offline: sockets and device nodes made while
# disconnected (issue #16) are shown at once, survive a restart of cairnd
# (replay-log records of format 2 carry the device number), and replay to
# the server: a fresh cache then lists the same types, modes, owners,
# links and device numbers.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 240
umask 022
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

vol_setup off
A=$T_DIR/a
cairnd_mount "$A" "$T_DIR/ca" off "$T_DIR/tok" || exit 1

fsj() { "$FS" "$@" --json -m "$A" 2>/dev/null; }
jget() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get(sys.argv[1], ""))' "$1"; }
status() { fsj status | jget "$1"; }
# name type mode nlink uid:gid major:minor, sorted, for one directory
list() {
	python3 - "$1" <<'EOF'
import os, stat, sys
d = sys.argv[1]
T = {stat.S_IFSOCK: "sock", stat.S_IFCHR: "chr", stat.S_IFBLK: "blk",
     stat.S_IFIFO: "fifo", stat.S_IFREG: "file", stat.S_IFDIR: "dir"}
for n in sorted(os.listdir(d)):
    st = os.lstat(os.path.join(d, n))
    dev = ""
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        dev = " %d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
    print("%s %s %04o %d %d:%d%s" % (n, T.get(stat.S_IFMT(st.st_mode), "?"),
          stat.S_IMODE(st.st_mode), st.st_nlink, st.st_uid, st.st_gid, dev))
EOF
}

mkdir "$A/d"
echo existing >"$A/d/old"
mknod "$A/d/online-chr" c 5 1
t_check "fs disconnect" "$FS" disconnect -m "$A"
t_is "$(status mode)" disconnected "disconnected"

t_check "offline: mknod a socket" python3 -c "import os,stat; os.mknod('$A/d/sock', stat.S_IFSOCK | 0o600)"
t_check "offline: mknod c 1 3" mknod -m 0640 "$A/d/null" c 1 3
t_check "offline: mknod b 8 17" mknod -m 0660 "$A/d/sdb1" b 8 17
t_check "offline: mknod b 4095:1048575 (the largest)" mknod -m 0600 "$A/d/big" b 4095 1048575
t_check "offline: mkfifo" mkfifo -m 0620 "$A/d/fifo"
t_check "offline: chown the char device" chown 1234:5678 "$A/d/null"
t_check "offline: link it" ln "$A/d/null" "$A/d/null2"
t_check "offline: rename the block device" mv "$A/d/sdb1" "$A/d/disk"
t_check "offline: chmod a device made online" chmod 0604 "$A/d/online-chr"
t_check "offline: unlink a socket made offline" sh -c "python3 -c \"import os,stat; os.mknod('$A/d/gone', stat.S_IFSOCK | 0o600)\" && rm '$A/d/gone'"
# A socket bound offline works as well: the kernel connects by inode.
python3 - "$A/d/live.sock" >"$T_DIR/live.out" 2>&1 <<'EOF'
import os, socket, sys
p = sys.argv[1]
s = socket.socket(socket.AF_UNIX)
s.bind(p)
s.listen(1)
if os.fork() == 0:
    c = socket.socket(socket.AF_UNIX)
    c.connect(p)
    c.sendall(b"offline hello")
    c.close()
    os._exit(0)
conn, _ = s.accept()
print(conn.recv(100).decode())
os.wait()
EOF
t_is "$(cat "$T_DIR/live.out")" "offline hello" "offline: a socket bound in the mount takes a connection"
cat >"$T_DIR/want" <<'EOF'
big blk 0600 1 0:0 4095:1048575
disk blk 0660 1 0:0 8:17
fifo fifo 0620 1 0:0
live.sock sock 0755 1 0:0
null chr 0640 2 1234:5678 1:3
null2 chr 0640 2 1234:5678 1:3
old file 0644 1 0:0
online-chr chr 0604 1 0:0 5:1
sock sock 0600 1 0:0
EOF
t_is "$(list "$A/d")" "$(cat "$T_DIR/want")" "offline: the listing shows every object as made"
n0=$(status replay_pending)
t_ok "$([ "${n0:-0}" -ge 10 ] && echo 0 || echo 1)" "offline: the changes are logged ($n0 records)"

cairnd_umount "$A"
cairnd_mount "$A" "$T_DIR/ca" off "$T_DIR/tok" || exit 1
t_is "$(status mode)" disconnected "after a restart: still disconnected"
t_is "$(status replay_pending)" "$n0" "after a restart: the log is intact"
t_is "$(list "$A/d")" "$(cat "$T_DIR/want")" "after a restart: the same listing"

"$FS" reconnect -m "$A" >"$T_DIR/reconnect.out" 2>&1
wait_for 30 sh -c "[ \"\$('$FS' status --json -m '$A' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"mode\"])')\" = connected ]"
t_is "$(status mode)" connected "reconnected"
t_is "$(status replay_pending)" 0 "the log is empty"
t_is "$(status conflicts)" 0 "no conflicts"
t_is "$(list "$A/d")" "$(cat "$T_DIR/want")" "after the replay: the same listing"

B=$T_DIR/b
cairnd_mount "$B" "$T_DIR/cb" off "$T_DIR/tok" || exit 1
t_is "$(list "$B/d")" "$(cat "$T_DIR/want")" "a fresh cache: the server has every object, owner, link and device number"
cairnd_umount "$B"
cairnd_umount "$A"
t_done
