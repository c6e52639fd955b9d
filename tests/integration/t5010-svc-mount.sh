#!/usr/bin/env bash
# t5010-svc-mount: mount.cairn(8) under a real mount(8). The test links
# /sbin/mount.cairn to the built helper (mount(8) runs helpers from /sbin
# only) and removes the link at the end; CAIRN_CAIRND points the helper
# at the built cairnd. Checked: mount -t cairn SPEC DIR -o ... returns
# with the mount up and cairnd in the background; reads and writes; umount
# stops cairnd; an /etc/fstab-style line (mount -T FILE DIR) with _netdev
# and nofail; bad options and bad values fail with a clear message and
# leave nothing mounted and no cairnd behind.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 240
command -v mount >/dev/null || { echo "# SKIP: no mount(8)"; exit 77; }

HELPER=$top_builddir/admin/mount.cairn
LINK=/sbin/mount.cairn
if [ -e "$LINK" ] || [ -L "$LINK" ]; then
	if [ "$(readlink "$LINK")" != "$HELPER" ]; then
		echo "# SKIP: $LINK exists and is not this build's helper"
		exit 77
	fi
fi
ln -sf "$HELPER" "$LINK" || { echo "# SKIP: cannot link $LINK"; exit 77; }
# Our own cleanup first, then lib.sh's.
svc_cleanup() {
	local rc=$?
	for m in "$mnt" "$mnt2"; do
		mountpoint -q "$m" 2>/dev/null && umount "$m" 2>/dev/null
	done
	for p in $(cairnd_of "$mnt") $(cairnd_of "$mnt2"); do
		kill -TERM "$p" 2>/dev/null
	done
	[ "$(readlink "$LINK")" = "$HELPER" ] && rm -f "$LINK"
	(exit "$rc")
	_t_cleanup
}
trap svc_cleanup EXIT
export CAIRN_CAIRND=$CAIRND

# cairnd started by mount.cairn for mount point $1 (the paths are this
# test's own, so the match is exact and names no one else's process).
cairnd_of() { pgrep -f -- "--mountpoint $1( |\$)" 2>/dev/null; }

src=$T_DIR/src
mkdir -p "$src/d"
echo "hello from the server" >"$src/hello.txt"
head -c 300000 /dev/urandom >"$src/d/blob"
vold_start || exit 99
vos init >/dev/null 2>&1
vos import lab "$src" >/dev/null || exit 99
make_token lab rw "$T_DIR/lab.tok"
mnt=$T_DIR/mnt
mnt2=$T_DIR/mnt2
mkdir -p "$mnt" "$mnt2"
spec=127.0.0.1:$VOLD_PORT:/lab

# mount -t cairn, then the mount is up when mount returns.
mount -t cairn "$spec" "$mnt" -o "http,token=$T_DIR/lab.tok,cache=$T_DIR/cache,cache-size=64M" \
	>"$T_DIR/mount1.out" 2>&1
t_ok $? "mount -t cairn HOST:PORT:/VOL DIR -o http,token=,cache=,cache-size="
t_check "mounted when mount returned" mountpoint -q "$mnt"
t_is "$(awk -v m="$mnt" '$2 == m {print $1, $3}' /proc/mounts)" "cairn:lab fuse.cairn" \
	"/proc/mounts: cairn:lab of type fuse.cairn"
t_check "nosuid,nodev by default" sh -c "awk -v m='$mnt' '\$2 == m {print \$4}' /proc/mounts | grep -q 'nosuid,nodev'"
pid=$(cairnd_of "$mnt")
t_is "$(echo "$pid" | wc -w)" 1 "one cairnd in the background"
t_is "$(cat "$mnt/hello.txt")" "hello from the server" "read through the mount"
t_check "read a larger file" cmp "$mnt/d/blob" "$src/d/blob"
echo "written on the client" >"$mnt/new.txt"
t_ok $? "write through the mount"
umount "$mnt"
t_ok $? "umount"
t_check "not mounted after umount" sh -c "! mountpoint -q '$mnt'"
t_check "cairnd gone after umount" wait_for 10 sh -c "! kill -0 $pid 2>/dev/null"

# The write reached the server: a fresh cairnd with an empty cache sees it.
cairnd_mount "$mnt2" "$T_DIR/cache2" lab "$T_DIR/lab.tok" || exit 99
t_is "$(cat "$mnt2/new.txt" 2>/dev/null)" "written on the client" "the server has the write"
cairnd_umount "$mnt2"

# An fstab line, as a lab machine has it (-T: this file instead of
# /etc/fstab; mount DIR finds the line by its mount point).
cat >"$T_DIR/fstab" <<FSTAB
# cairn volume, started by mount.cairn
http://127.0.0.1:$VOLD_PORT/lab  $mnt  cairn  token=$T_DIR/lab.tok,cache=$T_DIR/cache,_netdev,nofail,noatime,x-systemd.automount,comment=lab  0 0
FSTAB
mount -T "$T_DIR/fstab" "$mnt" >"$T_DIR/mount2.out" 2>&1
t_ok $? "mount DIR from an fstab line with _netdev,nofail,noatime,x-*"
t_check "mounted from fstab" mountpoint -q "$mnt"
t_check "noatime passed on to the mount" sh -c "awk -v m='$mnt' '\$2 == m {print \$4}' /proc/mounts | grep -q noatime"
t_is "$(cat "$mnt/new.txt" 2>/dev/null)" "written on the client" "reads after an fstab mount"
pid=$(cairnd_of "$mnt")
umount "$mnt"
t_ok $? "umount of the fstab mount"
t_check "its cairnd gone" wait_for 10 sh -c "! kill -0 ${pid:-0} 2>/dev/null"

# cairnd killed: its mount is left dead (ENOTCONN). Mounting again, as
# systemd's Restart= or a second mount does, detaches it first.
mount -t cairn "$spec" "$mnt" -o "http,token=$T_DIR/lab.tok,cache=$T_DIR/cache" >"$T_DIR/mount4.out" 2>&1
pid=$(cairnd_of "$mnt")
kill -KILL "$pid"
wait_for 5 sh -c "! kill -0 $pid 2>/dev/null"
t_check "a killed cairnd leaves a dead mount" sh -c "stat '$mnt' 2>&1 | grep -q 'not connected'"
mount -t cairn "$spec" "$mnt" -o "http,token=$T_DIR/lab.tok,cache=$T_DIR/cache" >"$T_DIR/mount5.out" 2>&1
t_ok $? "mount again over the dead mount"
t_check "the dead mount is named" grep -q "is the mount of a cairnd that is gone" "$T_DIR/mount5.out"
t_is "$(cat "$mnt/hello.txt" 2>&1)" "hello from the server" "reads after the remount"
t_is "$(awk -v m="$mnt" '$2 == m' /proc/mounts | wc -l)" 1 "one mount on the mount point"
pid=$(cairnd_of "$mnt")
umount "$mnt"
t_check "that cairnd gone after umount" wait_for 10 sh -c "! kill -0 ${pid:-0} 2>/dev/null"

# Bad options: a clear message, exit status non-zero, nothing mounted,
# no cairnd left.
bad() { # DESC EXPECTED-MESSAGE OPTIONS [SPEC]
	local out st
	out=$(mount -t cairn "${4:-$spec}" "$mnt" -o "$3" 2>&1)
	st=$?
	t_ok $((st == 0)) "$1: mount fails (status $st)"
	case $out in
	*"$2"*) t_ok 0 "$1: says '$2'" ;;
	*) t_ok 1 "$1: says '$2'"; echo "#   got: $out" ;;
	esac
	t_check "$1: nothing mounted" sh -c "! mountpoint -q '$mnt'"
	t_is "$(cairnd_of "$mnt" | wc -w)" 0 "$1: no cairnd left"
}
bad "unknown option" "unknown option 'colour=blue'" "http,token=$T_DIR/lab.tok,cache=$T_DIR/cache,colour=blue"
bad "no token" "no token=FILE" "http,cache=$T_DIR/cache"
bad "empty value" "option 'cache' needs a value" "http,token=$T_DIR/lab.tok,cache="
bad "bad spec" "expected HOST[:PORT]:/VOLUME" "http,token=$T_DIR/lab.tok,cache=$T_DIR/cache" "127.0.0.1/lab"
bad "bad value (cairnd's check)" "cache-size must be a size" "http,token=$T_DIR/lab.tok,cache=$T_DIR/cache,cache-size=lots"
bad "missing token file" "cannot read token file" "http,token=$T_DIR/nosuch.tok,cache=$T_DIR/cache"
bad "volume the server lacks" "nosuch" "http,token=$T_DIR/lab.tok,cache=$T_DIR/cache3" "127.0.0.1:$VOLD_PORT:/nosuch"
chmod 644 "$T_DIR/lab.tok"
bad "token readable by others" "chmod 600" "http,token=$T_DIR/lab.tok,cache=$T_DIR/cache"
chmod 600 "$T_DIR/lab.tok"
# -s (sloppy) lets an unknown option through.
mount -s -t cairn "$spec" "$mnt" -o "http,token=$T_DIR/lab.tok,cache=$T_DIR/cache,colour=blue" >"$T_DIR/mount3.out" 2>&1
t_ok $? "mount -s ignores an unknown option"
t_check "mounted with -s" mountpoint -q "$mnt"
pid=$(cairnd_of "$mnt")
umount "$mnt"
wait_for 10 sh -c "! kill -0 ${pid:-0} 2>/dev/null"
# -f: nothing runs.
out=$("$HELPER" "$spec" "$mnt" -f -o "http,token=/t,cache=/c,ro")
t_is "$out" "$CAIRND --token /t --cache /c --server http://127.0.0.1:$VOLD_PORT --volume lab --mountpoint $mnt --syslog -o ro" \
	"mount.cairn -f prints the cairnd command"
# How SPEC becomes the server URL and the volume.
spec_of() { "$HELPER" "$1" /m -f -o "token=/t,cache=/c${2:+,$2}" | sed 's/.* --server \([^ ]*\) --volume \([^ ]*\) .*/\1 \2/'; }
t_is "$(spec_of fs1:/home)" "https://fs1:7070 home" "HOST:/VOL: https, port 7070"
t_is "$(spec_of fs1:7443:/home)" "https://fs1:7443 home" "HOST:PORT:/VOL"
t_is "$(spec_of '[::1]:/v')" "https://[::1]:7070 v" "[IPv6]:/VOL"
t_is "$(spec_of '[::1]:8080:/v' http)" "http://[::1]:8080 v" "[IPv6]:PORT:/VOL with http"
t_is "$(spec_of https://fs1.example.org/home)" "https://fs1.example.org home" "a URL"
for bad in fs1 fs1:/ fs1:/a/b :/home http://fs1 http://fs1/ http:///home; do
	"$HELPER" "$bad" /m -f -o token=/t,cache=/c >/dev/null 2>&1
	t_is "$?" 1 "bad spec '$bad': exit 1"
done
t_done
