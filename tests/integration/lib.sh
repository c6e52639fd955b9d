# lib.sh - shared verbs for cairn's integration tests (sourced, not run).
#
# Environment contract: make check sets top_srcdir and top_builddir; run by
# hand, they default to this checkout and ./build. Each test gets its own
# work directory $T_DIR (logs, server root, caches, mountpoints) that is
# removed when the test passes and kept when it fails. A trap on EXIT
# unmounts every mount and kills every process the test started, whatever
# happened, so a failed test never wedges the next one.
#
# Verbs:
#   t_need_fuse            exit 77 unless root with /dev/fuse and fusermount3
#   t_timeout SECONDS      kill the whole test after SECONDS (default 300)
#   vold_start [ARGS]      start cairn-vold on 127.0.0.1 (port picked by the
#                          server); sets VOLD_PID VOLD_PORT VOLD_URL SRV_ROOT.
#                          With "--cert PEM --key PEM" in ARGS the URL is
#                          https:// and VOLD_CA=PEM (a self-signed cert is
#                          its own CA): vold_curl and cairnd_mount use it
#                          $VOLD_ARGS (word-split) is added to every start
#                          and restart (t1180: a small journal bound)
#   vold_curl ARGS         curl -sf, with --cacert $VOLD_CA when it is set
#   vold_stop / vold_kill9 stop it with SIGTERM / SIGKILL
#   vos ARGS               run vos on $SRV_ROOT
#   make_token VOL rw|ro FILE   mint a token into FILE (vos token -o: 0600)
#   vol_setup VOL          vold_start, vos init, vos create VOL and a rw
#                          token in $T_DIR/tok (exit 99 on failure)
#   vc CMD ARGS            run vol-client.py, the protocol client; it reads
#                          VC_URL, VC_TOKEN and VC_VOL from the environment
#   jerr                   filter a vc reply (status line, JSON error body)
#                          down to "STATUS ERRNO", or "STATUS NOJSON"
#   cairnd_mount MNT CACHE VOL TOKENFILE [ARGS]   mount and wait until ready
#   cairnd_umount MNT      unmount (fusermount3 -u) and wait for exit
#   cairnd_kill9 MNT       SIGKILL the cairnd serving MNT, lazy-unmount
#   t_ok COND-STATUS DESC  (use: t_ok "$(cmd && echo 0 || echo 1)" desc) or
#   t_check DESC CMD...    run CMD; pass if it exits 0
#   t_is GOT WANT DESC     string equality
#   t_done                 print the summary, exit 0 if all passed, else 1
#   wait_for SECONDS CMD.. poll CMD every 0.05 s until it succeeds

set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir/build}"
export top_srcdir top_builddir

VOLD=$top_builddir/vol/cairn-vold
VOS_BIN=$top_builddir/admin/vos
CAIRND=$top_builddir/cm/cairnd
FS=$top_builddir/admin/fs
FSCK=$top_builddir/admin/cairn-fsck

T_NAME=$(basename "$0" .sh)
T_DIR=${T_DIR:-$top_builddir/tests/work/$T_NAME}
rm -rf "$T_DIR" 2>/dev/null || { fusermount3 -uz "$T_DIR"/*.mnt 2>/dev/null; rm -rf "$T_DIR"; }
mkdir -p "$T_DIR"
T_PASS=0
T_FAIL=0
T_N=0
_T_PIDS=""
_T_MOUNTS=""
_T_WATCHDOG=""

_t_cleanup() {
	local rc=$? m p
	for m in $_T_MOUNTS; do
		mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null; }
	done
	for p in $_T_PIDS; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in $_T_PIDS; do
		for _ in $(seq 1 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
		kill -KILL "$p" 2>/dev/null
	done
	if [ -n "$_T_WATCHDOG" ]; then
		pkill -P "$_T_WATCHDOG" 2>/dev/null
		kill "$_T_WATCHDOG" 2>/dev/null
	fi
	if [ "$rc" -eq 0 ] && [ "$T_FAIL" -eq 0 ] && [ -z "${T_KEEP:-}" ]; then
		rm -rf "$T_DIR"
	else
		echo "# logs kept in $T_DIR"
		echo "# repro: top_srcdir=$top_srcdir top_builddir=$top_builddir bash $0"
		for f in "$T_DIR"/*.log; do
			[ -f "$f" ] || continue
			# (a daemon's counters at exit are not what tells)
			echo "# --- last lines of $f"
			grep -v ' info main: stat ' "$f" | tail -n 15 | sed 's/^/#   /'
			if grep -q ' \(warning\|error\) ' "$f"; then
				echo "# --- last warnings and errors of $f"
				grep ' \(warning\|error\) ' "$f" | tail -n 8 | sed 's/^/#   /'
			fi
		done
	fi
	exit "$rc"
}
trap _t_cleanup EXIT
trap 'exit 99' INT TERM

t_need_fuse() {
	[ "$(id -u)" -eq 0 ] || { echo "# SKIP: needs root"; exit 77; }
	[ -c /dev/fuse ] || { echo "# SKIP: no /dev/fuse"; exit 77; }
	command -v fusermount3 >/dev/null || { echo "# SKIP: no fusermount3"; exit 77; }
}

t_timeout() {
	local secs=${1:-300} me=$$
	# The watchdog must not hold the test's stdout open, or "test | grep"
	# would wait for the whole timeout.
	# "&&": when cleanup kills the sleep, the watchdog must not fire.
	( sleep "$secs" && { echo "# TIMEOUT after ${secs}s" >>"$T_DIR/timeout.log"
	  kill -TERM "$me"; } ) >/dev/null 2>&1 </dev/null &
	_T_WATCHDOG=$!
}

_t_report() { # ok|fail desc
	T_N=$((T_N + 1))
	if [ "$1" = ok ]; then
		T_PASS=$((T_PASS + 1)); echo "ok $T_N - $2"
	else
		T_FAIL=$((T_FAIL + 1)); echo "not ok $T_N - $2"
	fi
}

t_ok() { if [ "$1" = 0 ]; then _t_report ok "$2"; else _t_report fail "$2"; fi; }
t_check() {
	local desc=$1; shift
	if "$@" >>"$T_DIR/check.log" 2>&1; then _t_report ok "$desc"; else
		_t_report fail "$desc"; echo "#   command: $*"; fi
}
t_is() {
	if [ "$1" = "$2" ]; then _t_report ok "$3"; else
		_t_report fail "$3"; echo "#   got:      '$1'"; echo "#   expected: '$2'"; fi
}
t_done() {
	echo "# $T_NAME: $T_PASS passed, $T_FAIL failed"
	[ "$T_N" -gt 0 ] || { echo "# no checks ran"; exit 99; }
	[ "$T_FAIL" -eq 0 ] && exit 0
	exit 1
}
# t_crash_seconds DEFAULT: how long a kill -9 loop goes on past its
# minimum rounds (each loop runs at least its minimum, then until this
# many seconds have passed, then stops at its maximum). $CAIRN_CRASH_SECONDS
# overrides DEFAULT: tools/check sets 15 (the suite shares two cores, and
# more rounds there only delay the rest); a soak run sets it high.
t_crash_seconds() {
	case ${CAIRN_CRASH_SECONDS:-} in
	'' | *[!0-9]*) echo "$1" ;;
	*) echo "$CAIRN_CRASH_SECONDS" ;;
	esac
}

# t_mkfiles DIR N PREFIX: N files DIR/PREFIX00000..., file i holding
# i % 7 bytes ("x"): a big directory of small files, made in one process.
t_mkfiles() {
	mkdir -p "$1" && python3 - "$1" "$2" "$3" <<'PY'
import os, sys
d, n, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for i in range(n):
    with open(os.path.join(d, "%s%05d" % (prefix, i)), "w") as f:
        f.write("x" * (i % 7))
PY
}

wait_for() {
	local secs=$1 i n; shift
	n=$((secs * 20))
	for i in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
	return 1
}

# wait_eval SECS 'CODE': as wait_for, for a condition that reads a value
# each time. CODE (one word, usually in single quotes) is eval'ed every
# 50 ms, so its $(...) run again at each try. (wait_for 10 test "$(x)" = y
# expands $(x) once, before the wait: it then sleeps the whole 10 s unless
# the first value already matched.) Locals are named so that CODE's
# variables are the caller's; $1, $2 ... in CODE are wait_eval's own
# arguments, not the caller's: copy them to variables first.
wait_eval() {
	local _we_secs=$1 _we_i _we_n
	_we_n=$((_we_secs * 20))
	for _we_i in $(seq 1 "$_we_n"); do
		eval "$2" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	return 1
}

t_track_pid() { _T_PIDS="$_T_PIDS $1"; }

# t_evict DIR: written back, then out of the page cache; prints "CACHED N"
# (evict.py: non-empty files still cached, non-empty files).
t_evict() {
	sync -f "$1" || return 1
	python3 "$top_srcdir/tests/integration/evict.py" "$1"
}

SRV_ROOT=$T_DIR/srv
vos() { "$VOS_BIN" --root "$SRV_ROOT" "$@"; }

vold_curl() { curl -sf ${VOLD_CA:+--cacert "$VOLD_CA"} "$@"; }

# Sets VOLD_CA and VOLD_SCHEME from the server's arguments.
_vold_tls_args() {
	VOLD_CA=""
	VOLD_SCHEME=http
	while [ $# -gt 0 ]; do
		case $1 in
		--cert) [ $# -gt 1 ] && VOLD_CA=$2 && VOLD_SCHEME=https; shift ;;
		--cert=*) VOLD_CA=${1#--cert=}; VOLD_SCHEME=https ;;
		esac
		shift
	done
	export VOLD_CA VOLD_SCHEME
}

vold_start() {
	[ -x "$VOLD" ] || { echo "# SKIP: $VOLD not built"; exit 77; }
	mkdir -p "$SRV_ROOT"
	rm -f "$T_DIR/vold.port"
	_vold_tls_args "$@"
	"$VOLD" --root "$SRV_ROOT" --listen 127.0.0.1:0 --port-file "$T_DIR/vold.port" \
		--foreground --log-level "${VOLD_LOG_LEVEL:-info}" ${VOLD_ARGS:-} "$@" >>"$T_DIR/vold.log" 2>&1 &
	VOLD_PID=$!
	t_track_pid "$VOLD_PID"
	wait_for 10 test -s "$T_DIR/vold.port" || { echo "# vold did not start"; return 1; }
	VOLD_PORT=$(cat "$T_DIR/vold.port")
	VOLD_URL=$VOLD_SCHEME://127.0.0.1:$VOLD_PORT
	wait_for 10 vold_curl "$VOLD_URL/v1/ping" || { echo "# vold does not answer"; return 1; }
	export VOLD_PID VOLD_PORT VOLD_URL
}

# Restart on the same port (clients keep their URL; pass the same
# --cert/--key again for HTTPS).
vold_restart() {
	"$VOLD" --root "$SRV_ROOT" --listen "127.0.0.1:$VOLD_PORT" --foreground \
		--log-level "${VOLD_LOG_LEVEL:-info}" ${VOLD_ARGS:-} "$@" >>"$T_DIR/vold.log" 2>&1 &
	VOLD_PID=$!
	t_track_pid "$VOLD_PID"
	wait_for 10 vold_curl "$VOLD_URL/v1/ping"
}

vold_stop() {
	[ -n "${VOLD_PID:-}" ] || return 0
	kill -TERM "$VOLD_PID" 2>/dev/null
	for _ in $(seq 1 100); do kill -0 "$VOLD_PID" 2>/dev/null || break; sleep 0.05; done
	kill -KILL "$VOLD_PID" 2>/dev/null
	wait "$VOLD_PID" 2>/dev/null
	VOLD_PID=""
}

vold_kill9() {
	[ -n "${VOLD_PID:-}" ] || return 0
	kill -KILL "$VOLD_PID" 2>/dev/null
	wait "$VOLD_PID" 2>/dev/null
	VOLD_PID=""
}

make_token() { # VOL rw|ro FILE
	vos token "$1" "--$2" -o "$3"
}

vc() { python3 "$top_srcdir/tests/integration/vol-client.py" "$@"; }

# The start of the tests of one volume: start cairn-vold (vos init), create
# volume VOL (vos's output shown if it fails) and a read-write token in
# $T_DIR/tok. Exits 99 when any of it fails.
vol_setup() { # VOL
	vold_start || exit 99
	vos init >/dev/null 2>&1
	vos create "$1" >"$T_DIR/create.log" 2>&1 || { cat "$T_DIR/create.log"; exit 99; }
	make_token "$1" rw "$T_DIR/tok" || exit 99
}

# The start of the kill -9 tests of cairn-vold (t1050, t1101, t1125):
# seed $RANDOM from $SEED (or a random one, printed for replay), start
# cairn-vold, create volume VOL and a read-write token for
# vol-client.py ($VC, exported VC_URL, VC_VOL, VC_TOKEN), and set $R to
# the root's FID. Exits 99 when any of it fails.
crash_setup() { # VOL
	VC="$top_srcdir/tests/integration/vol-client.py"
	SEED=${SEED:-$RANDOM}
	echo "# seed $SEED"
	RANDOM=$SEED
	vold_start || exit 99
	vos create "$1" >/dev/null || exit 99
	export VC_URL=$VOLD_URL VC_VOL=$1
	make_token "$1" rw "$T_DIR/rw.tok" || exit 99
	export VC_TOKEN=$(cat "$T_DIR/rw.tok")
	R=$(python3 "$VC" root) || exit 99
}

jerr() {
	python3 -c 'import json,sys
t=sys.stdin.read().split("\n",1)
try: print(t[0], json.loads(t[1])["errno"])
except Exception: print(t[0], "NOJSON")'
}

cairnd_mount() { # MNT CACHE VOL TOKENFILE [ARGS]
	local mnt=$1 cache=$2 vol=$3 tok=$4 log pid
	shift 4
	[ -x "$CAIRND" ] || { echo "# SKIP: $CAIRND not built"; exit 77; }
	mkdir -p "$mnt"
	log=$T_DIR/cairnd-$(basename "$mnt").log
	"$CAIRND" --server "$VOLD_URL" --volume "$vol" --token "$tok" \
		--cache "$cache" --mountpoint "$mnt" --foreground \
		${VOLD_CA:+--ca-file "$VOLD_CA"} \
		--log-level "${CAIRND_LOG_LEVEL:-info}" "$@" >>"$log" 2>&1 &
	pid=$!
	t_track_pid "$pid"
	_T_MOUNTS="$_T_MOUNTS $mnt"
	echo "$pid" >"$T_DIR/$(basename "$mnt").pid"
	if ! wait_for 15 mountpoint -q "$mnt"; then
		echo "# cairnd did not mount $mnt (stat: $(stat -c %F "$mnt" 2>&1 | head -n 1))"
		return 1
	fi
	# The control socket comes a moment after the mount: a test's first
	# "fs status" must not race it (t4022 read an empty answer under
	# load). Not required: a cairnd may run without one.
	[ -x "${FS:-}" ] && wait_for 5 "$FS" status -m "$mnt" >/dev/null 2>&1
	return 0
}

# vol_data_events VOL TOKENFILE MNT PATH: how many "data" events the
# server's stream of VOL holds about the object at PATH under the mount
# MNT (one per store it applied: "applied once" checks of resends).
vol_data_events() {
	local fid
	fid=$("$FS" examine -m "$3" "$3/$4" 2>/dev/null | awk '$1 == "fid" { print $2 }')
	curl -s -N --max-time 3 -H "Authorization: Bearer $(cat "$2")" \
		"$VOLD_URL/v1/vol/$1/events?since=0" 2>/dev/null |
		python3 -c 'import json, sys
n = 0
for l in sys.stdin:
    try:
        e = json.loads(l)
    except ValueError:
        continue
    n += e.get("kind") == "data" and e.get("fid") == sys.argv[1]
print(n)' "$fid"
}

cairnd_pid() { cat "$T_DIR/$(basename "$1").pid" 2>/dev/null; }

cairnd_umount() { # MNT
	local pid
	pid=$(cairnd_pid "$1")
	fusermount3 -u "$1" 2>/dev/null || fusermount3 -uz "$1" 2>/dev/null
	[ -n "$pid" ] || return 0
	for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
	kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid"; return 1; }
	wait "$pid" 2>/dev/null
	return 0
}

cairnd_kill9() { # MNT
	local pid
	pid=$(cairnd_pid "$1")
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	[ -n "$pid" ] && wait "$pid" 2>/dev/null
	fusermount3 -uz "$1" 2>/dev/null
	return 0
}

# spoilproxy_start [SPOILER]: start tests/integration/spoilproxy.py between
# cairnd and cairn-vold (mode in $T_DIR/mode, data requests logged to
# $T_DIR/proxy.req); sets real_url (the server) and points VOLD_URL at the
# proxy, so mounts made next go through it. No SPOILER: one that changes
# nothing (a relay for the mode's hold words only).
spoilproxy_start() {
	local spoiler=${1:-}
	if [ -z "$spoiler" ]; then
		spoiler=$T_DIR/spoil-none.py
		echo 'def spoil(mode, status, headers, body): return headers, body, len(body), 0' \
			>"$spoiler"
	fi
	: >"$T_DIR/proxy.req"
	python3 "$top_srcdir/tests/integration/spoilproxy.py" "$VOLD_PORT" "$T_DIR/mode" \
		"$T_DIR/proxy.req" "$T_DIR/proxy.port" "$spoiler" >"$T_DIR/proxy.log" 2>&1 &
	t_track_pid $!
	wait_for 10 test -s "$T_DIR/proxy.port" || { echo "# proxy did not start"; return 1; }
	real_url=$VOLD_URL
	VOLD_URL=http://127.0.0.1:$(cat "$T_DIR/proxy.port")
}
# slowop_start: a relay (slowop.py) between cairnd and cairn-vold that
# holds the ops of the kinds $T_DIR/mode names ("store=3"; empty now),
# each hold logged to $T_DIR/proxy.req; sets real_url and points
# VOLD_URL at the relay, as spoilproxy_start does.
slowop_start() {
	: >"$T_DIR/mode"
	: >"$T_DIR/proxy.req"
	python3 "$top_srcdir/tests/integration/slowop.py" "$VOLD_PORT" "$T_DIR/mode" \
		"$T_DIR/proxy.port" "$T_DIR/proxy.req" >"$T_DIR/proxy.log" 2>&1 &
	t_track_pid $!
	wait_for 10 test -s "$T_DIR/proxy.port" || { echo "# relay did not start"; return 1; }
	real_url=$VOLD_URL
	VOLD_URL=http://127.0.0.1:$(cat "$T_DIR/proxy.port")
}
# cm_stat MOUNT NAME: the counter NAME of cairnd's stats (the cairn.stats
# xattr of the mount's root), or nothing.
# t_version F V SIZE: version V of file F (verlines.py: numbered lines,
# no NUL byte), SIZE bytes, to stdout.
t_version() { python3 "$top_srcdir/tests/integration/verlines.py" "$@"; }
cm_stat() {
	getfattr -n cairn.stats --only-values "$1" 2>/dev/null |
		awk -v k="$2" '$1 == k { print $2 }'
}
# median NUMBERS...: the middle one (the lower of the two middle ones
# for an even count), for the benchmarks' medians of runs.
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# cm_stat_more MOUNT NAME N: is that counter above N? (for wait_for)
cm_stat_more() { [ "$(cm_stat "$1" "$2")" -gt "$3" ] 2>/dev/null; }
# spoil_mode WORDS...: set the relay's mode in one rename. It reads the
# file at every step, and "echo WORDS >mode" shows it an empty mode for a
# moment: no hold word then, so everything held would go at once.
spoil_mode() { echo "$*" >"$T_DIR/mode.new" && mv "$T_DIR/mode.new" "$T_DIR/mode"; }
# t_tree DIR: one line per name under DIR, in a stable order: path, "d"
# and mode for a directory; "f", mode, size, mtime (s) and SHA-256 of the
# bytes for anything else (what a crash test compares with a reference).
t_tree() {
	python3 - "$1" <<'PY'
import hashlib, os, stat, sys
root = sys.argv[1]
for dp, dns, fns in os.walk(root):
    dns.sort()
    for name in sorted(dns + fns):
        p = os.path.join(dp, name)
        st = os.lstat(p)
        rel = os.path.relpath(p, root)
        if stat.S_ISDIR(st.st_mode):
            print(rel, "d", oct(st.st_mode & 0o7777))
        else:
            h = hashlib.sha256(open(p, "rb").read()).hexdigest()
            print(rel, "f", oct(st.st_mode & 0o7777), st.st_size,
                  int(st.st_mtime), h)
PY
}

# rlog_kinds MNT: the replay log's records that are not waiting, counted by
# kind ("create=2 store=1 "), from fs replaylog.
rlog_kinds() {
	"$FS" replaylog -m "$1" 2>/dev/null | awk 'NR > 1 && $3 != "waiting" { print $2 }' |
		sort | uniq -c | awk '{ printf "%s=%s ", $2, $1 }'
}

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
