#!/usr/bin/env bash
# t4070-replay-reader-view: a process keeps looking at what it made offline
# while the replay brings it to the server. `mkdir D` and N small files in
# it made offline go as one batch [mkdir, create, store, create, store,
# ...]; its replies are applied one after the other, and an object a
# later record names keeps its local view until that record's reply is
# applied. A reader listing D and stat'ing every file the whole time
# (A mounted with no kernel caching: each look asks cairnd) must never see
# D with fewer than N names, a file missing or a file of 0 bytes (before
# the fix: every record of the batch left the log before the first reply
# was applied, the mkdir reply gave D an empty listing and each create's
# reply a size of 0 until the last reply; the reader found files missing
# in 2 runs of 2). The same
# again with a connected mkdir and offline files in it (its listing
# cached empty from the fresh mkdir reply). At the end everything is on
# the server with its content, seen by a second client.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 300
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }
N=${N:-100}
vold_start || exit 99
vos init >/dev/null 2>&1
vos create rv >/dev/null 2>&1 || exit 99
make_token rv rw "$T_DIR/tok"
A=$T_DIR/a B=$T_DIR/b
# No kernel caching on A: the reader sees what cairnd holds at each look.
cairnd_mount "$A" "$T_DIR/ca" rv "$T_DIR/tok" --entry-timeout 0 --attr-timeout 0 || exit 1
cairnd_mount "$B" "$T_DIR/cb" rv "$T_DIR/tok" || exit 1
jst() { "$FS" status --json -m "$A" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }

# reader DIR N STOPFILE OUT: list DIR and stat every file until STOPFILE
# exists; OUT gets "looks bad-listings bad-sizes" and the first anomalies.
reader() {
	python3 - "$@" <<'PY' &
import os, sys, time
d, n, stop, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
looks = short = zero = 0
first = []
while not os.path.exists(stop):
    looks += 1
    try:
        names = os.listdir(d)
    except OSError as e:
        names = []
        first.append("listdir: %s" % e)
    if len(names) < n:
        short += 1
        if len(first) < 5:
            first.append("listing of %d names" % len(names))
    for i in range(n):
        try:
            sz = os.stat(os.path.join(d, "f%03d" % i)).st_size
        except OSError as e:
            sz = -1
        if sz <= 0:
            zero += 1
            if len(first) < 5:
                first.append("f%03d: size %d" % (i, sz))
with open(out, "w") as f:
    f.write("%d %d %d\n" % (looks, short, zero))
    f.write("\n".join(first) + "\n")
PY
	t_track_pid $!
	READER=$!
}

# replay_watched NAME DIR: reconnect with a reader on DIR, check it.
replay_watched() {
	local name=$1 dir=$2 res
	rm -f "$T_DIR/stop-$name"
	reader "$dir" "$N" "$T_DIR/stop-$name" "$T_DIR/reader-$name.out"
	sleep 0.3
	t_check "$name: reconnect" "$FS" reconnect -m "$A"
	wait_for 60 sh -c "[ \"\$(\"$FS\" status --json -m \"$A\" | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"replay_pending\"])')\" = 0 ]"
	sleep 0.5
	touch "$T_DIR/stop-$name"
	wait "$READER"
	res=$(head -n1 "$T_DIR/reader-$name.out")
	echo "# $name reader: looks, short listings, bad sizes: $res"
	sed -n '2,$p' "$T_DIR/reader-$name.out" | sed 's/^/#   /'
	t_ok "$([ "${res%% *}" -gt 1 ] && echo 0 || echo 1)" "$name: the reader looked during the replay"
	t_is "${res#* }" "0 0" "$name: it never saw the directory short of a name, a file missing or empty"
	t_is "$(jst replay_pending)" 0 "$name: the log is empty"
	t_is "$(jst conflicts)" 0 "$name: no conflicts"
}

mkfiles() { # DIR
	python3 - "$1" "$N" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(d, "f%03d" % i), "w") as f:
        f.write("file %d of %s\n" % (i, os.path.basename(d)))
PY
}

check_server() { # NAME DIR-on-B
	local name=$1 d=$2 bad=0 i
	t_is "$(ls "$d" | wc -l)" "$N" "$name: the server lists every file"
	for i in $(seq 0 $((N - 1))); do
		f=$(printf '%s/f%03d' "$d" "$i")
		[ "$(cat "$f" 2>/dev/null)" = "file $i of $(basename "$d")" ] || bad=$((bad + 1))
	done
	t_is "$bad" 0 "$name: every file has its content on the server"
}

ls "$A" >/dev/null
t_check "disconnect" "$FS" disconnect -m "$A"
mkdir "$A/D" && mkfiles "$A/D"
t_is "$(ls "$A/D" | wc -l)" "$N" "offline: D lists $N files"
t_is "$(jst replay_pending)" $((2 * N + 1)) "offline: mkdir, $N creates and $N stores logged"
replay_watched offline-mkdir "$A/D"
check_server offline-mkdir "$B/D"

# A directory made connected (its listing cached empty from the mkdir
# reply), filled offline.
mkdir "$A/E"
t_check "disconnect again" "$FS" disconnect -m "$A"
mkfiles "$A/E"
t_is "$(ls "$A/E" | wc -l)" "$N" "offline: E lists $N files"
replay_watched connected-mkdir "$A/E"
check_server connected-mkdir "$B/E"

cairnd_umount "$B"
cairnd_umount "$A"
t_done
