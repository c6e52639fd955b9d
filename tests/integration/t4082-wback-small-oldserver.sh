#!/usr/bin/env bash
# t4082-wback-small-oldserver: stores logged with their bytes (doc/
# replay-log.md "Stores with their bytes") drained to a server before
# protocol 6 (a relay shows cairn-vold's "protocol" as 5), which takes no
# bytes inline: they are staged (a PUT per file) from the records. Small
# files are written in writeback mode, cairnd is killed (-9), the unsynced
# chunk files are emptied or removed (a power cut), and the mount starts
# with the server stopped: it reads every file; once the server is back
# the drain stages the bytes, and a fresh client reads them right. And a
# file written again after its logged close, still open during the
# drain: the server gets the record's bytes, then the next close's.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 200
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

vold_start || exit 99
vos init >/dev/null 2>&1
vos create wso >/dev/null || exit 99
make_token wso rw "$T_DIR/tok"
echo proto5 >"$T_DIR/mode"
cat >"$T_DIR/spoil.py" <<'PY'
def spoil(mode, status, headers, body):
    return headers, body, len(body), 0
PY
spoilproxy_start "$T_DIR/spoil.py" || exit 99
t_is "$(curl -sf "$VOLD_URL/v1/ping" | python3 -c 'import json,sys; print(json.load(sys.stdin)["protocol"])')" 5 \
	"the relay shows protocol 5"
A=$T_DIR/a
CA=$T_DIR/ca
C=$T_DIR/c
mnt() { cairnd_mount "$A" "$CA" wso "$T_DIR/tok" --write-mode writeback --writeback-delay 60s --fetch-timeout 2s "$@"; }
jst() { "$FS" status --json -m "$A" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }
sums() { (cd "$1" && for f in $(ls | sort); do echo "$f $(stat -c %s "$f") $(sha256sum <"$f" | cut -c1-16)"; done); }

mnt || exit 1
mkdir "$A/b" "$T_DIR/ref" || exit 1
for i in $(seq 0 9); do
	head -c $((100 + i * 6500)) /dev/urandom >"$T_DIR/ref/f$i"
	cp "$T_DIR/ref/f$i" "$A/b/f$i" || t_ok 1 "writing f$i"
done
t_is "$(sums "$A/b")" "$(sums "$T_DIR/ref")" "the mount shows the files"
cairnd_kill9 "$A"
vold_stop
n=0
for f in $(find "$CA/chunks" -type f -regextype egrep -regex '.*/[0-9a-f]{8}' -size -$((65536 + 64 + 1))c 2>/dev/null | sort); do
	if [ $((n % 2)) = 0 ]; then : >"$f"; else rm -f "$f"; fi
	n=$((n + 1))
done
t_ok "$([ "$n" -ge 10 ] && echo 0 || echo 1)" "small chunk files destroyed ($n)"
mnt || exit 1
t_is "$(sums "$A/b")" "$(sums "$T_DIR/ref")" "with the server stopped the mount reads every file"
: >"$T_DIR/proxy.req.puts"
vold_restart || exit 1
"$FS" sync -m "$A" >/dev/null 2>&1
t_is "$(jst backlog_records)|$(jst conflicts)" "0|0" "drained, no conflicts"
nput=$(grep -c '/stage' "$T_DIR/proxy.req.puts")
t_ok "$([ "$nput" -ge 10 ] && echo 0 || echo 1)" "the bytes were staged, not inline ($nput PUTs)"
t_is "$(sums "$A/b")" "$(sums "$T_DIR/ref")" "the mount after the drain"
cairnd_mount "$C" "$T_DIR/cc" wso "$T_DIR/tok" || exit 1
t_is "$(sums "$C/b")" "$(sums "$T_DIR/ref")" "a fresh client reads every file"
cairnd_umount "$C"

# Writes after a logged close, the file still open when the drain stages
# the record's store: the server gets the bytes of the close (the
# record's), not the chunk's newer ones; the next close stores those.
head -c 3000 /dev/urandom >"$T_DIR/g1"
head -c 5000 /dev/urandom >"$T_DIR/g2"
cp "$T_DIR/g1" "$A/b/g" || t_ok 1 "writing g"
python3 - "$A/b/g" "$T_DIR/g2" "$T_DIR/g.go" <<'PY' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY)
os.write(fd, open(sys.argv[2], "rb").read())
open(sys.argv[3] + ".written", "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.1)
os.close(fd)
PY
gpid=$!
wait_for 20 test -e "$T_DIR/g.go.written"
timeout 60 "$FS" sync -m "$A" >/dev/null 2>&1
cairnd_mount "$C" "$T_DIR/cc2" wso "$T_DIR/tok" || exit 1
t_is "$(sha256sum <"$C/b/g")" "$(sha256sum <"$T_DIR/g1")" "the server has the bytes of the close, not the open file's newer ones"
cairnd_umount "$C"
touch "$T_DIR/g.go"
wait "$gpid"
"$FS" sync -m "$A" >/dev/null 2>&1
cairnd_mount "$C" "$T_DIR/cc3" wso "$T_DIR/tok" || exit 1
t_is "$(sha256sum <"$C/b/g")" "$(sha256sum <"$T_DIR/g2")" "and after the second close its bytes"
cairnd_umount "$C"
cairnd_umount "$A"
"$FSCK" --check --quiet "$CA" >"$T_DIR/fsck.out" 2>&1
t_is "$?" 0 "cairn-fsck: the cache is clean"
t_done
