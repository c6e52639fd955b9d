#!/usr/bin/env bash
# t5040-svc-mount-late-fail: a cairnd that mounts and then fails while it
# builds what runs behind the mount (here the metrics listener on a port
# that is taken) makes mount.cairn fail: non-zero status, cairnd's message
# on its stderr, nothing mounted and no cairnd left. Before, cairnd's
# first process exited 0 right after the fork and the child unmounted a
# moment later with its message in /dev/null. The helper runs directly
# (as mount(8) would run /sbin/mount.cairn); cairnd started by hand in the
# background behaves the same, and the good case still mounts. Also:
# the options libmount passes for a user mount (user=NAME).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 180

HELPER=$top_builddir/admin/mount.cairn
export CAIRN_CAIRND=$CAIRND
# cairnd of mount point $1 (this test's own paths: an exact match).
cairnd_of() { pgrep -f -- "--mountpoint $1( |\$)" 2>/dev/null; }
mnt=$T_DIR/mnt
late_cleanup() {
	local rc=$?
	mountpoint -q "$mnt" 2>/dev/null && umount "$mnt" 2>/dev/null
	for p in $(cairnd_of "$mnt"); do kill -TERM "$p" 2>/dev/null; done
	(exit "$rc")
	_t_cleanup
}
trap late_cleanup EXIT

src=$T_DIR/src
mkdir -p "$src" "$mnt"
echo "hello" >"$src/hello.txt"
vold_start || exit 99
vos init >/dev/null 2>&1
vos import lab "$src" >/dev/null || exit 99
make_token lab rw "$T_DIR/lab.tok"
spec=127.0.0.1:$VOLD_PORT:/lab
# The server's own port is taken for sure.
taken=127.0.0.1:$VOLD_PORT
printf '[cairnd]\nmetrics-listen = %s\n' "$taken" >"$T_DIR/taken.conf"

late_fail() { # DESC CMD...: fails, says why, leaves nothing behind
	local desc=$1 st
	shift
	"$@" >"$T_DIR/out" 2>&1
	st=$?
	t_ok $((st == 0)) "$desc: fails (status $st)"
	t_check "$desc: says why" grep -q "cannot listen for metrics on '$taken'" "$T_DIR/out"
	[ "$st" != 0 ] || sed 's/^/#   /' "$T_DIR/out"
	sleep 1
	t_check "$desc: nothing mounted a second later" sh -c "! mountpoint -q '$mnt'"
	t_is "$(cairnd_of "$mnt" | wc -w)" 0 "$desc: no cairnd left"
}
late_fail "mount.cairn -o config= (metrics-listen taken)" \
	"$HELPER" "$spec" "$mnt" -o "http,token=$T_DIR/lab.tok,cache=$T_DIR/cache,config=$T_DIR/taken.conf"
late_fail "mount.cairn -o metrics-listen= (taken)" \
	"$HELPER" "$spec" "$mnt" -o "http,token=$T_DIR/lab.tok,cache=$T_DIR/cache,metrics-listen=$taken"
t_check "mount.cairn names the failure" grep -q "cairnd exited with status" "$T_DIR/out"
late_fail "cairnd in the background (metrics-listen taken)" \
	"$CAIRND" --server "$VOLD_URL" --volume lab --token "$T_DIR/lab.tok" \
	--cache "$T_DIR/cache" --mountpoint "$mnt" --metrics-listen "$taken"

# The good case: up when the helper returns, metrics answered.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$HELPER" "$spec" "$mnt" -o "http,token=$T_DIR/lab.tok,cache=$T_DIR/cache,metrics-listen=127.0.0.1:$port" \
	>"$T_DIR/out" 2>&1
t_ok $? "mount.cairn -o metrics-listen= (free port)"
t_check "mounted when it returned" mountpoint -q "$mnt"
t_is "$(cat "$mnt/hello.txt" 2>&1)" "hello" "reads through the mount"
t_check "metrics answered" sh -c "curl -sf http://127.0.0.1:$port/metrics | grep -q '^cairnd_'"
pid=$(cairnd_of "$mnt")
t_is "$(echo "$pid" | wc -w)" 1 "one cairnd in the background"
t_is "$(readlink /proc/${pid:-0}/fd/2)" /dev/null "it let go of the caller's stderr"
umount "$mnt"
t_ok $? "umount"
t_check "cairnd gone after umount" wait_for 10 sh -c "! kill -0 ${pid:-0} 2>/dev/null"

# A user mount from an fstab line with "user": libmount may pass
# user=NAME on to the helper (and "user" as such); both are for mount(8).
want="$CAIRND --token /t --cache /c --server https://h:7070 --volume v --mountpoint /m --syslog"
t_is "$("$HELPER" h:/v /m -f -o token=/t,cache=/c,user=alice 2>&1)" "$want" "user=NAME is accepted and ignored"
t_is "$("$HELPER" h:/v /m -f -o token=/t,cache=/c,user,users 2>&1)" "$want" "user and users too"
out=$("$HELPER" h:/v /m -f -o token=/t,cache=/c,user= 2>&1)
t_is "$?:$out" "1:mount.cairn: unknown option 'user=' (see mount.cairn(8))" "user= without a name is an error"
t_done
