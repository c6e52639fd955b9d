#!/usr/bin/env bash
# t2180-cm-special: sockets, character and block devices and FIFOs (issue
# #16) on a cairnd mount and on a local directory: special-ops.py makes,
# stats, chmods, chowns, links, renames, opens and unlinks each type, binds
# a Unix socket in the directory and connects to it from another process,
# and tries mknod as uid 65534; the two transcripts must be equal. The
# local side runs on a nodev tmpfs (in a private mount namespace) because
# cairnd mounts nodev. Then: a fresh cache lists the same objects with
# the same device numbers (the server has them), a socket bound through
# one mount is not connectable through another (another client), a mount
# with -o dev opens a character device through the kernel (1:3 is
# /dev/null), and a client that does not announce protocol 4 sees sockets
# and devices as empty regular files.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 300
OPS=$top_srcdir/tests/integration/special-ops.py

show() { head -n "${2:-60}" "$1" | sed 's/^/#   /'; }

unshare -m true 2>/dev/null || { echo "# SKIP: unshare -m (a private mount namespace) is not allowed"; exit 77; }
local_dir=$T_DIR/local
mkdir -p "$local_dir"
unshare -m sh -c "mount -t tmpfs -o nodev,size=16m tmpfs '$local_dir' &&
	python3 '$OPS' '$local_dir'" >"$T_DIR/local.out" 2>"$T_DIR/local.err"
rc=$?
t_is "$rc" 0 "special-ops.py on a local nodev tmpfs"
[ "$rc" = 0 ] || show "$T_DIR/local.err"

vol_setup spec
mnt=$T_DIR/mnt
cairnd_mount "$mnt" "$T_DIR/cache" spec "$T_DIR/tok" || exit 1

python3 "$OPS" "$mnt" >"$T_DIR/mnt.out" 2>"$T_DIR/mnt.err"
rc=$?
t_is "$rc" 0 "special-ops.py on the cairnd mount"
[ "$rc" = 0 ] || show "$T_DIR/mnt.err" 20
diff -u "$T_DIR/local.out" "$T_DIR/mnt.out" >"$T_DIR/special.diff"
t_is "$(head -n 120 "$T_DIR/special.diff")" "" "the mount's transcript equals the local one"
t_ok "$(grep -q '^== listing' "$T_DIR/mnt.out" && echo 0 || echo 1)" "the transcript ran to the listing"
t_is "$(grep -c '^the other process.s connect, send, recv: 0$' "$T_DIR/mnt.out")" 1 \
	"a Unix socket bound in the mount took a connection from another process"
t_is "$(grep '^nobody: mknod(pub/c' "$T_DIR/mnt.out")" "nobody: mknod(pub/c, chr 1:3): EPERM" \
	"uid 65534 may not make a device node (EPERM)"
t_is "$(grep '^open(chr, O_RDONLY' "$T_DIR/mnt.out")" "open(chr, O_RDONLY|O_NONBLOCK): EACCES" \
	"opening a device on the nodev mount is EACCES"
t_is "$(grep '^open(sock, O_RDONLY' "$T_DIR/mnt.out")" "open(sock, O_RDONLY|O_NONBLOCK): ENXIO" \
	"opening a socket file is ENXIO"

# A fresh cache: everything comes from the server.
sed -n '/^== listing$/,$p' "$T_DIR/mnt.out" | sed 1d >"$T_DIR/listing1"
mnt2=$T_DIR/mnt2
cairnd_mount "$mnt2" "$T_DIR/cache2" spec "$T_DIR/tok" || exit 1
python3 "$OPS" --list-only "$mnt2" >"$T_DIR/listing2" 2>"$T_DIR/listing2.err"
t_is "$?" 0 "listing through a second mount with an empty cache"
diff -u "$T_DIR/listing1" "$T_DIR/listing2" >"$T_DIR/listing.diff"
t_is "$(head -n 60 "$T_DIR/listing.diff")" "" "the second mount sees the same types, modes and device numbers"
t_is "$(ls -l "$mnt2/s" | awk '$NF=="chr.keep" {print substr($1,1,1), $5, $6}')" "c 1, 3" \
	"ls -l shows the character device and its numbers"
t_is "$(find "$mnt2/s" -maxdepth 1 -name '*.keep' -printf '%y %f\n' | sort | tr '\n' ' ')" \
	"b blk.keep c chr.keep p fifo.keep s sock.keep " "find -printf %y names each type"
# A second mount is another client (another superblock): the socket file
# is there, but the listening socket is on the first; as on NFS.
python3 - "$mnt/s/two.sock" "$mnt2/s/two.sock" >"$T_DIR/two.out" 2>&1 <<'EOF'
import errno, os, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(1)
for _ in range(100):
    if os.path.exists(sys.argv[2]):
        break
    time.sleep(0.05)
c = socket.socket(socket.AF_UNIX)
try:
    c.connect(sys.argv[2])
    print("connected")
except OSError as e:
    print(errno.errorcode[e.errno])
c = socket.socket(socket.AF_UNIX)
c.connect(sys.argv[1])
print("same client: connected")
os.unlink(sys.argv[1])
EOF
t_is "$(tr '\n' ' ' <"$T_DIR/two.out")" "ECONNREFUSED same client: connected " \
	"a socket bound through one mount is not connectable through another"
cairnd_umount "$mnt2"

# A restarted cairnd serves them from its metadata cache (meta.tdb 'A'
# records of version 2 carry the device number).
cairnd_umount "$mnt"
cairnd_mount "$mnt" "$T_DIR/cache" spec "$T_DIR/tok" || exit 1
python3 "$OPS" --list-only "$mnt" >"$T_DIR/listing3" 2>&1
t_is "$(diff "$T_DIR/listing1" "$T_DIR/listing3" | head -n 20)" "" \
	"after a restart of cairnd the cached listing is the same"

# With -o dev the kernel opens device nodes itself: 1:3 is /dev/null.
mnt3=$T_DIR/mnt3
cairnd_mount "$mnt3" "$T_DIR/cache3" spec "$T_DIR/tok" -o dev || exit 1
t_check "-o dev: writing to the chr 1:3 node works (/dev/null)" sh -c "echo x >'$mnt3/s/chr.keep'"
t_is "$(head -c 4 "$mnt3/s/chr.keep" | wc -c)" 0 "-o dev: reading it gives nothing, as /dev/null"
cairnd_umount "$mnt3"

# What a client of protocol 2 is shown: the server cannot know whether a
# request without X-Cairn-Protocol comes from an old cairnd, so it shows
# sockets and devices as empty regular files, which that decoder takes.
pv=$(vold_curl "$VOLD_URL/v1/ping" | python3 -c 'import json,sys; print(json.load(sys.stdin)["protocol"])')
root=$(vold_curl -H "Authorization: Bearer $(cat "$T_DIR/tok")" "$VOLD_URL/v1/vol/spec" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["root"])')
sdir=$(vold_curl -H "Authorization: Bearer $(cat "$T_DIR/tok")" "$VOLD_URL/v1/vol/spec/dir/$root" |
	python3 -c 'import json,sys; print([e["attr"]["fid"] for e in json.load(sys.stdin)["entries"] if e["name"]=="s"][0])')
types() { # ARGS: curl args; prints name:type:rdev of the .keep entries
	vold_curl -H "Authorization: Bearer $(cat "$T_DIR/tok")" "$@" "$VOLD_URL/v1/vol/spec/dir/$sdir" |
		python3 -c 'import json,sys
d=json.load(sys.stdin)
print(" ".join("%s:%s:%s:%s" % (e["name"], e["attr"]["type"], e["attr"].get("rdev", "-"), e["attr"]["size"])
	for e in sorted(d["entries"], key=lambda e: e["name"]) if e["name"].endswith(".keep")))'
}
t_is "$(types -H "X-Cairn-Protocol: $pv")" \
	"blk.keep:blk:1992:0 chr.keep:chr:259:0 fifo.keep:fifo:-:0 sock.keep:socket:-:0" \
	"protocol $pv: the listing has the types and device numbers"
t_is "$(types)" "blk.keep:file:-:0 chr.keep:file:-:0 fifo.keep:fifo:-:0 sock.keep:file:-:0" \
	"no protocol header: sockets and devices are empty files"
t_is "$(types -H 'X-Cairn-Protocol: 2')" "blk.keep:file:-:0 chr.keep:file:-:0 fifo.keep:fifo:-:0 sock.keep:file:-:0" \
	"protocol 2: the same"
chr=$(vold_curl -H "Authorization: Bearer $(cat "$T_DIR/tok")" -H "X-Cairn-Protocol: $pv" "$VOLD_URL/v1/vol/spec/dir/$sdir" |
	python3 -c 'import json,sys; print([e["attr"]["fid"] for e in json.load(sys.stdin)["entries"] if e["name"]=="chr.keep"][0])')
t_is "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat "$T_DIR/tok")" \
	"$VOLD_URL/v1/vol/spec/data/$chr/1/0?size=262144")" 400 \
	"a data read of a device node is refused (400), whatever the client thinks it is"
t_is "$(vold_curl -X POST -H "Authorization: Bearer $(cat "$T_DIR/tok")" -d "{\"fids\":[\"$chr\"]}" \
	"$VOLD_URL/v1/vol/spec/getattr" | python3 -c 'import json,sys; print(json.load(sys.stdin)["attrs"][0]["type"])')" \
	file "getattr without the header: the device is a file"
# A batch (protocol 3) from a client that does not announce sockets and
# devices: each op's reply shows them as files too.
dv=$(vold_curl -X POST -H "Authorization: Bearer $(cat "$T_DIR/tok")" -H "X-Cairn-Protocol: $pv" \
	-d "{\"fids\":[\"$chr\"]}" "$VOLD_URL/v1/vol/spec/getattr" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["attrs"][0]["dv"])')
batch() { # OPID-DIGIT MODE [curl args]
	local d=$1 m=$2
	shift 2
	vold_curl -X POST -H "Authorization: Bearer $(cat "$T_DIR/tok")" "$@" \
		-d "{\"ops\":[{\"op\":\"setattr\",\"opid\":\"$(printf '%032d' "$d")\",\"fid\":\"$chr\",\"base_dv\":$dv,\"mask\":[\"mode\"],\"mode\":$m}]}" \
		"$VOLD_URL/v1/vol/spec/batch" |
		python3 -c 'import json,sys; r=json.load(sys.stdin)["results"][0]; print(r["status"], r["body"]["attr"]["type"], r["body"]["attr"].get("rdev", "-"))'
}
t_is "$(batch 7 384 -H 'X-Cairn-Protocol: 3')" "200 file -" "a batch of a protocol 3 client: the device is a file in the reply"
t_is "$(batch 8 416 -H "X-Cairn-Protocol: $pv")" "200 chr 259" "the same batch announcing protocol $pv: chr 1:3"
t_is "$(batch 7 384 -H "X-Cairn-Protocol: $pv")" "200 chr 259" "the first batch's opid again, announcing $pv: the stored reply, as this client may see it"

# With CAIRN_OLD_CAIRND=PATH (a cairnd of protocol 3 or earlier, e.g. a build of an
# older release), a real old client is mounted on the same volume: it
# lists sockets and devices as empty regular files, reads nothing, its
# write fails at close (the server refuses the store), and it can rename
# and remove them.
if [ -n "${CAIRN_OLD_CAIRND:-}" ] && [ -x "$CAIRN_OLD_CAIRND" ]; then
	old=$T_DIR/old
	CAIRND=$CAIRN_OLD_CAIRND cairnd_mount "$old" "$T_DIR/cache-old" spec "$T_DIR/tok" || exit 1
	t_is "$(stat -c '%F %s' "$old/s/chr.keep" "$old/s/sock.keep" "$old/s/fifo.keep" | tr '\n' ' ')" \
		"regular empty file 0 regular empty file 0 fifo 0 " "old client: devices and sockets are empty files"
	t_is "$(head -c 10 "$old/s/blk.keep" | wc -c)" 0 "old client: reading one gives nothing"
	t_is "$(python3 -c "import os
fd = os.open('$old/s/blk.keep', os.O_WRONLY)
os.write(fd, b'x')
try:
    os.close(fd)
    print('ok')
except OSError as e:
    print(e.strerror)")" "Invalid argument" "old client: a write fails at close"
	t_check "old client: rename a socket" mv "$old/s/sock.keep" "$old/s/sock.old"
	wait_for 5 test -S "$mnt/s/sock.old"
	t_is "$(stat -c %F "$mnt/s/sock.old" 2>&1)" socket "new client: it is still a socket"
	cairnd_umount "$old"
else
	echo "# old client checks skipped (set CAIRN_OLD_CAIRND to a cairnd of protocol 3 or earlier)"
fi
t_done
