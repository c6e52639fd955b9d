# lib-ns.sh - verbs shared by the tests of a cairnd serving several
# volumes under one mount root (t5050-t5058). Sourced after lib.sh:
#
#   . "$top_srcdir/tests/integration/lib.sh"
#   . "$top_srcdir/tests/integration/lib-ns.sh"
#
# Sourcing it sets mnt=$T_DIR/mnt (made), conf=$T_DIR/cairnd.conf and
# log=$T_DIR/cairnd-mnt.log, the names every one of these tests uses.
#
# Verbs (each exits 99 when a server-side step fails):
#   ns_src DIR TAG COUNT   make DIR with files f1.txt..fCOUNT.txt holding
#                          "TAG 1".."TAG COUNT"
#   ns_vold [NAME]         start a cairn-vold with its root in
#                          $T_DIR/srvNAME (SRV_ROOT stays set to it, so
#                          vos goes there) and vos init it; with NAME, also
#                          sets URL_NAME PID_NAME PORT_NAME SRV_NAME
#   ns_vold_restart SRV URL    restart the server of root SRV on URL's port
#   ns_import VOL SRC [TOKFILE]  vos import SRC as VOL, and a read-write
#                          token in TOKFILE (default $T_DIR/VOL.tok)
#   ns_create VOL [TOKFILE]      the same for an empty volume
#   ns_conf_head [LINE...] the [cairnd] section (cache $T_DIR/cache,
#                          mountpoint $mnt, fetch-timeout 2s so that a
#                          server down is seen soon, then each LINE) on
#                          stdout
#   ns_vol DIR [VOL [SERVER [TOKFILE]]]   a [volume DIR] section on stdout;
#                          "volume =" only when VOL differs from DIR,
#                          "server =" only when SERVER is given, the token
#                          default $T_DIR/VOL.tok
#   ns_start               start cairnd --config $conf in the background
#                          (output to $log, pid in $pid and $T_DIR/mnt.pid,
#                          cleaned up by lib.sh) and wait for the mount
#   ns_wait_exit           wait up to 10 s for $pid to end
#   ns_stop                SIGTERM $pid and ns_wait_exit
#   ns_kill9               SIGKILL $pid and lazy-unmount $mnt
#   ns_onsrv URL VOL TOKFILE FILE   FILE's content in the root of VOL on
#                          the server at URL (vol-client.py), empty if none
#   ns_listvol [-o]        fs listvol as "DIR=STATE ..." (-o: "DIR=STATE/ONLINE")

mnt=$T_DIR/mnt
conf=$T_DIR/cairnd.conf
log=$T_DIR/cairnd-mnt.log
mkdir -p "$mnt"

ns_src() { # DIR TAG COUNT
	local f
	mkdir -p "$1"
	for f in $(seq 1 "$3"); do echo "$2 $f" >"$1/f$f.txt"; done
}

ns_vold() { # [NAME]
	SRV_ROOT=$T_DIR/srv${1:-}
	vold_start || exit 99
	vos init >/dev/null 2>&1
	[ -n "${1:-}" ] || return 0
	printf -v "URL_$1" %s "$VOLD_URL"
	printf -v "PID_$1" %s "$VOLD_PID"
	printf -v "PORT_$1" %s "$VOLD_PORT"
	printf -v "SRV_$1" %s "$SRV_ROOT"
}

ns_vold_restart() { # SRV URL
	SRV_ROOT=$1 VOLD_URL=$2 VOLD_PORT=${2##*:} vold_restart
}

ns_import() { # VOL SRC [TOKFILE]
	vos import "$1" "$2" >/dev/null || exit 99
	make_token "$1" rw "${3:-$T_DIR/$1.tok}" || exit 99
}

ns_create() { # VOL [TOKFILE]
	vos create "$1" >/dev/null || exit 99
	make_token "$1" rw "${2:-$T_DIR/$1.tok}" || exit 99
}

ns_conf_head() { # [LINE...]
	printf '[cairnd]\ncache = %s\nmountpoint = %s\nfetch-timeout = 2s\n' "$T_DIR/cache" "$mnt"
	[ $# -eq 0 ] || printf '%s\n' "$@"
}

ns_vol() { # DIR [VOL [SERVER [TOKFILE]]]
	local vol=${2:-$1}
	printf '[volume %s]\n' "$1"
	[ "$vol" = "$1" ] || printf 'volume = %s\n' "$vol"
	[ -z "${3:-}" ] || printf 'server = %s\n' "$3"
	printf 'token = %s\n' "${4:-$T_DIR/$vol.tok}"
}

ns_start() {
	"$CAIRND" --config "$conf" --foreground >>"$log" 2>&1 &
	pid=$!
	t_track_pid "$pid"
	echo "$pid" >"$T_DIR/mnt.pid"
	_T_MOUNTS="$_T_MOUNTS $mnt"
	wait_for 15 mountpoint -q "$mnt" || { echo "# cairnd did not mount"; tail -20 "$log"; exit 1; }
}

ns_wait_exit() {
	for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
}

ns_stop() {
	kill -TERM "$pid"
	ns_wait_exit
}

ns_kill9() {
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null
	fusermount3 -uz "$mnt" 2>/dev/null
}

ns_onsrv() { # URL VOL TOKFILE FILE
	local tok
	tok=$(cat "$3")
	VC_URL=$1 VC_VOL=$2 VC_TOKEN=$tok vc cat \
		"$(VC_URL=$1 VC_VOL=$2 VC_TOKEN=$tok vc lookup \
			"$(VC_URL=$1 VC_VOL=$2 VC_TOKEN=$tok vc root)" "$4")" 2>/dev/null
}

ns_listvol() { # [-o]
	"$FS" listvol -m "$mnt" --json | python3 -c 'import json,sys
o=len(sys.argv) > 1
print(" ".join(v["dir"]+"="+v["state"]+("/"+str(v["online"]) if o else "") for v in json.load(sys.stdin)["volumes"]))' "$@"
}
