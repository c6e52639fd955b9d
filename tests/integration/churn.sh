# churn.sh - sourced by t2372 and t2373 (after lib.sh): a directory that
# one mount (B) keeps changing faster than another mount's (A's) listing
# of it arrives.
#   churn_tree N     make $src/dir with N empty files s000000...
#   churn_start      serve $src as volume "big" (token $T_DIR/tok), mount
#                    it on B ($T_DIR/b), put the spoiling relay in front
#                    of cairn-vold (events, and each listing reply held
#                    50 ms: ~10 changes meanwhile), and start B's churner:
#                    c-names created in dir/, every other one unlinked
#                    again, until $T_DIR/stop exists. Sets A (not mounted
#                    yet: $T_DIR/a), B and churn (the churner's pid).

churn_tree() { # N
	mkdir -p "$src/dir"
	python3 - "$src/dir" "$1" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    os.close(os.open(os.path.join(d, "s%06d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
PY
}

churn_start() {
	vold_start || return 1
	vos import big "$src" >"$T_DIR/import.log" 2>&1 || { cat "$T_DIR/import.log"; return 1; }
	make_token big rw "$T_DIR/tok"
	A=$T_DIR/a
	B=$T_DIR/b
	cairnd_mount "$B" "$T_DIR/cb" big "$T_DIR/tok" || return 1
	ls -f "$B/dir" >/dev/null || return 1
	cat >"$T_DIR/spoil.py" <<'PY'
import time
def spoil(mode, status, headers, body):
    return headers, body, len(body), 0
def spoil_dir(mode, path, body):
    if "slowdir" in mode:
        time.sleep(0.05)
    return body
PY
	echo "events slowdir" >"$T_DIR/mode"
	spoilproxy_start "$T_DIR/spoil.py" || return 1
	cat >"$T_DIR/churn.py" <<'PY'
import os, sys, time
d, stop = sys.argv[1], sys.argv[2]
i = 0
while not os.path.exists(stop) and i < 100000:
    os.close(os.open(os.path.join(d, "c%06d" % i), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    if i % 2 == 1:
        os.unlink(os.path.join(d, "c%06d" % (i - 1)))
    i += 1
    time.sleep(0.005)
print(i)
PY
	python3 "$T_DIR/churn.py" "$B/dir" "$T_DIR/stop" >"$T_DIR/churn.out" 2>"$T_DIR/churn.err" &
	churn=$!
	t_track_pid "$churn"
	sleep 1
}
