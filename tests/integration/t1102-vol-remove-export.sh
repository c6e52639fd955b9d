#!/bin/bash
# t1102-vol-remove-export: vos export of a volume cairn-vold is changing
# reads one instant (a snapshot): while a writer bumps a counter in file
# A, then in file B, over and over, every export succeeds (no ESTALE half
# way) and holds A = B or A = B + 1; the snapshot directory is gone
# afterwards. vos remove marks the volume under tdb's transaction lock
# before it renames it away: between the two (held open with strace's
# syscall delay) a change or a staged chunk is refused with 404, never
# acknowledged; afterwards the volume made again under the name is served.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 200
VC="$top_srcdir/tests/integration/vol-client.py"

vold_start || exit 99
vos create live >/dev/null || exit 99
export VC_URL=$VOLD_URL VC_VOL=live
make_token live rw "$T_DIR/rw.tok"
export VC_TOKEN=$(cat "$T_DIR/rw.tok")
R=$(vc root)
A=$(vc create "$R" A) && B=$(vc create "$R" B) || exit 99
head -c $((8 << 20)) /dev/urandom >"$T_DIR/big"
for f in "$A" "$B"; do vc store "$f" "$T_DIR/big" 1048576 | head -n 1 | grep -qx 200 || exit 99; done
D=$(vc mkdir "$R" many)
for i in $(seq 1 40); do
	F=$(vc create "$D" "f$i") && head -c $((i * 5000)) /dev/urandom >"$T_DIR/s" && vc store "$F" "$T_DIR/s" >/dev/null || exit 99
done

cat >"$T_DIR/writer.py" <<'PY'
# Bump the counter (the first 8 bytes) in A, then in B, until killed;
# print the last generation acknowledged in both.
import os, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
vc = __import__("vol-client")
a, b = sys.argv[2], sys.argv[3]
n = 0
def bump(fid, n):
    at = vc.getattr_(fid); txid = os.urandom(16).hex()
    st, _, _ = vc.request("PUT", vc.vpath("/stage/%s/%s/0?size=65536" % (fid, txid)), b"%08d" % n)
    assert st == 204, st
    st, body, _ = vc.do_op({"op": "store", "fid": fid, "base_dv": at["dv"], "txid": txid,
                            "chunk_size": 65536, "size": at["size"], "chunks": [0]})
    assert st == 200, (st, body)
while True:
    n += 1
    bump(a, n); bump(b, n)
    open(sys.argv[4], "w").write("%d\n" % n)
PY
python3 "$T_DIR/writer.py" "$VC" "$A" "$B" "$T_DIR/gen" 2>"$T_DIR/writer.err" &
wpid=$!
t_track_pid $wpid
wait_for 20 test -s "$T_DIR/gen" || exit 99
bad=0 fails=0
for i in $(seq 1 8); do
	rm -rf "$T_DIR/out"
	if ! "$VOS_BIN" --root "$SRV_ROOT" export live "$T_DIR/out" >"$T_DIR/export.log" 2>&1; then
		fails=$((fails + 1)); sed 's/^/#   /' "$T_DIR/export.log"; continue
	fi
	ga=$(head -c 8 "$T_DIR/out/A"); gb=$(head -c 8 "$T_DIR/out/B")
	ga=$((10#${ga:-0})); gb=$((10#${gb:-0}))
	echo "# export $i: A=$ga B=$gb"
	[ $ga -eq $gb ] || [ $ga -eq $((gb + 1)) ] || bad=$((bad + 1))
	cmp -s -i 65536 "$T_DIR/out/A" "$T_DIR/big" || bad=$((bad + 1))
done
g0=$(cat "$T_DIR/gen")
kill $wpid; wait $wpid 2>/dev/null
t_is "$fails" 0 "8 exports of the volume being written all succeed"
t_is "$bad" 0 "each export is one instant: A = B or A = B + 1, the rest of A intact"
t_ok "$([ "$g0" -ge 8 ] && echo 0 || echo 1)" "the writer kept going meanwhile ($g0 generations)"
t_is "$(ls -a "$SRV_ROOT/volumes" | grep -c '^\.snap-')" 0 "no snapshot left behind"

# vos remove: marked, then (delayed) renamed.
if ! strace -o /dev/null -e trace=none -e inject=renameat,renameat2:delay_enter=1 true 2>/dev/null; then
	echo "# strace cannot delay syscalls here: remove-lock checks skipped"
	t_done
fi
strace -f -o /dev/null -e trace=renameat,renameat2 \
	-e inject=renameat,renameat2:delay_enter=3000000 \
	"$VOS_BIN" --root "$SRV_ROOT" remove --force live >"$T_DIR/remove.log" 2>&1 &
rpid=$!
t_track_pid $rpid
# Marked: the volume record says so (examine cannot read it), and the
# directory is still there under its name.
wait_for 10 sh -c "! '$VOS_BIN' --root '$SRV_ROOT' examine live >/dev/null 2>&1"
t_ok "$([ -d "$SRV_ROOT/volumes/live" ] && echo 0 || echo 1)" "vos remove has marked the volume, not yet renamed it"
t_is "$(vc op "{\"op\":\"create\",\"parent\":\"$R\",\"name\":\"late\",\"type\":\"file\",\"mode\":420,\"uid\":0,\"gid\":0}" | jerr)" "404 ENOENT" "a create into the volume being removed: 404, not acknowledged"
echo x >"$T_DIR/x"
t_is "$(vc req PUT "/v1/vol/live/stage/$A/00112233445566778899aabbccddeeff/0?size=65536" "@$T_DIR/x" | head -n 1)" 404 "a staged chunk into it: 404"
wait $rpid
t_is $? 0 "vos remove finishes"
t_is "$(vc get /v1/vol/live | head -n 1)" 404 "the volume is gone"
# kill -9 of vos remove between mark and rename: the volume stays marked
# (every change refused) until vos remove runs again.
vos create doomed >/dev/null || exit 99
make_token doomed rw "$T_DIR/doomed.tok"
DR=$(VC_VOL=doomed VC_TOKEN=$(cat "$T_DIR/doomed.tok") vc root)
strace -f -o /dev/null -e trace=renameat,renameat2 \
	-e inject=renameat,renameat2:delay_enter=3000000 \
	"$VOS_BIN" --root "$SRV_ROOT" remove doomed >/dev/null 2>&1 &
rpid=$!
t_track_pid $rpid
wait_for 10 sh -c "! '$VOS_BIN' --root '$SRV_ROOT' examine doomed >/dev/null 2>&1"
pkill -9 -P $rpid 2>/dev/null; kill -9 $rpid 2>/dev/null; wait $rpid 2>/dev/null
sleep 0.2
t_ok "$([ -d "$SRV_ROOT/volumes/doomed" ] && echo 0 || echo 1)" "vos remove killed after the mark: the volume is still there"
t_is "$(VC_VOL=doomed VC_TOKEN=$(cat "$T_DIR/doomed.tok") vc op "{\"op\":\"create\",\"parent\":\"$DR\",\"name\":\"z\",\"type\":\"file\",\"mode\":420,\"uid\":0,\"gid\":0}" | jerr)" "404 ENOENT" "and refuses changes"
t_check "vos remove again finishes it" "$VOS_BIN" --root "$SRV_ROOT" remove doomed
t_ok "$([ ! -e "$SRV_ROOT/volumes/doomed" ] && echo 0 || echo 1)" "the volume is gone"

vos create live >/dev/null || exit 99
make_token live rw "$T_DIR/new.tok"
t_is "$(VC_TOKEN=$(cat "$T_DIR/new.tok") vc op "{\"op\":\"create\",\"parent\":\"$(VC_TOKEN=$(cat "$T_DIR/new.tok") vc root)\",\"name\":\"x\",\"type\":\"file\",\"mode\":420,\"uid\":0,\"gid\":0}" | head -n 1)" 200 "the volume made again under the name takes changes at once"
t_done
