#!/bin/bash
# t1100-vol-format1: a volume written in format 1 (one data file per DV,
# tests/fixtures/vol-format1.tar.gz, made by the vos and cairn-vold of
# before issue #14 with tests/fixtures/make-vol-format1.sh) is refused by
# read-only vos commands with a message naming 'vos upgrade'; kill -9 of
# 'vos upgrade' at random points leaves format 1 or format 2 (3 once a small chunk is inline), never a
# mix; cairn-vold converts at open and then serves every file byte for
# byte at any chunk size with the right X-Cairn-SHA256; old data files
# are gone; stores, truncates and old-DV reads behave on the converted
# volume; vos export gives the tree of the manifest back.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 180
FX=$top_srcdir/tests/fixtures/vol-format1.tar.gz
SEED=${SEED:-$RANDOM}
echo "# seed $SEED"
RANDOM=$SEED

fresh() { # DIR: a server root holding the fixture
	rm -rf "$1"
	mkdir -p "$1" && chmod 700 "$1" && tar -C "$1" -xzf "$FX"
}
manifest() { # DIR: "SHA SIZE PATH" of every file under DIR
	(cd "$1" && find . -type f | sort | while read -r f; do
		echo "$(sha256sum <"$f" | cut -d' ' -f1) $(stat -c %s "$f") ${f#./}"
	done)
}
v1_files() { find "$1/volumes/old/data" -type f -regex '.*/[0-9a-f]*\.[0-9]*' | wc -l; }

# 1. Read-only commands show format 1, refuse its data and name the command.
fresh "$SRV_ROOT"
out=$(vos examine old 2>&1); rc=$?
t_is "$rc" 0 "vos examine of a format 1 volume works"
t_ok "$(echo "$out" | grep -q "format     1 (old: 'vos upgrade old' converts it)" && echo 0 || echo 1)" "and says it is format 1, naming 'vos upgrade old'"
out=$(vos export old "$T_DIR/x" 2>&1); rc=$?
t_is "$rc" 74 "vos export of a format 1 volume fails (74)"
t_ok "$(echo "$out" | grep -q "run 'vos upgrade old' first" && echo 0 || echo 1)" "and names 'vos upgrade old'"
t_is "$(v1_files "$SRV_ROOT")" 4 "the fixture has its 4 format 1 data files"

# 2. kill -9 of vos upgrade: format 1 or 2, never a mix.
rounds=0 bad=0 hit1=0 hit2=0
while [ $rounds -lt 25 ]; do
	fresh "$T_DIR/k"
	# vos starts and converts in a few ms; kill within the first 12.
	"$VOS_BIN" --root "$T_DIR/k" upgrade old >/dev/null 2>&1 &
	pid=$!
	sleep "0.00$(( RANDOM % 12 ))"
	kill -9 $pid 2>/dev/null
	wait $pid 2>/dev/null
	if "$VOS_BIN" --root "$T_DIR/k" examine old 2>/dev/null | grep -Eq 'format [23]'; then
		hit2=$((hit2 + 1))
	else
		hit1=$((hit1 + 1))
		# Still format 1: every old data file is there.
		[ "$(v1_files "$T_DIR/k")" = 4 ] || { echo "# round $rounds: format 1 lost data files"; bad=$((bad + 1)); }
	fi
	"$VOS_BIN" --root "$T_DIR/k" upgrade old >/dev/null 2>&1 || { echo "# round $rounds: upgrade after kill failed"; bad=$((bad + 1)); }
	rm -rf "$T_DIR/kout"
	"$VOS_BIN" --root "$T_DIR/k" export old "$T_DIR/kout" >/dev/null 2>&1 || bad=$((bad + 1))
	manifest "$T_DIR/kout" | cmp -s - "$T_DIR/k/old.manifest" || { echo "# round $rounds: export differs"; bad=$((bad + 1)); }
	rounds=$((rounds + 1))
done
echo "# $rounds kills: $hit1 left format 1, $hit2 format 2"
t_is "$bad" 0 "kill -9 of vos upgrade: old or new format, the same bytes after upgrade ($rounds rounds)"

# 3. cairn-vold converts at open and serves every byte.
vold_start || exit 99
export VC_URL=$VOLD_URL VC_VOL=old
make_token old rw "$T_DIR/rw.tok"
export VC_TOKEN=$(cat "$T_DIR/rw.tok")
R=$(vc root) || exit 99
t_is "$(v1_files "$SRV_ROOT")" 0 "no format 1 data file after cairn-vold opened it"
t_is "$(vos examine old --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["chunk_size"])')" 262144 "format 2, chunk size 256 KiB"

cat >"$T_DIR/readall.py" <<'PY'
# Read PATH of the volume at chunk size CS, check each chunk's
# X-Cairn-SHA256 and X-Cairn-Size, print "SHA SIZE PATH".
import hashlib, os, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
vc = __import__("vol-client")
path, cs = sys.argv[2], int(sys.argv[3])
fid = vc.root()
import json
for n in path.split("/"):
    st, body, _ = vc.request("GET", vc.vpath("/dir/" + fid))
    if st != 200: sys.exit("dir %s: %d" % (fid, st))
    fid = [e["attr"]["fid"] for e in json.loads(body)["entries"] if e["name"] == n][0]
at = vc.getattr_(fid)
data = b""; i = 0; c = vc.conn()
while True:
    st, body, h = vc.request("GET", vc.vpath("/data/%s/%d/%d?size=%d" % (fid, at["dv"], i, cs)), c=c)
    if st == 416: break
    if st != 200: sys.exit("GET chunk %d: %d" % (i, st))
    if h.get("x-cairn-sha256") != hashlib.sha256(body).hexdigest():
        sys.exit("chunk %d: X-Cairn-SHA256 does not match the body" % i)
    if int(h.get("x-cairn-size", -1)) != at["size"]:
        sys.exit("chunk %d: X-Cairn-Size %s" % (i, h.get("x-cairn-size")))
    data += body; i += 1
    if len(body) < cs: break
print(hashlib.sha256(data).hexdigest(), len(data), path)
PY
readall() { python3 "$T_DIR/readall.py" "$top_srcdir/tests/integration/vol-client.py" "$@"; }
for cs in 65536 262144 1048576 4194304; do
	for n in 1 2; do # the second pass is served from cairn-vold's cache
		while read -r sha size p; do readall "$p" $cs; done <"$SRV_ROOT/old.manifest" >"$T_DIR/got.$cs.$n" 2>&1
	done
	t_check "every file, chunk size $cs: bytes and SHA-256 as before" cmp "$T_DIR/got.$cs.1" "$SRV_ROOT/old.manifest"
	t_check "... again from the chunk cache" cmp "$T_DIR/got.$cs.2" "$SRV_ROOT/old.manifest"
done
# 3 + 1 + 1 + 1: the sparse file's hole has none, and its first chunk
# ("head", 4 bytes) is copied, not linked, so it is inline (format 3).
t_is "$(find "$SRV_ROOT/volumes/old/data" -type f | wc -l)" 6 "6 chunk objects (3 + 1 + 1 + 1: a hole and an inline chunk have none)"
t_is "$(vos examine old | grep -c 'format 3')" 1 "converted to format 3 (an inline chunk)"

# 4. Changes on the converted volume.
T=$(vc lookup "$R" text)
S=$(vc lookup "$R" sparse)
olddv=$(vc attr "$T" dv)
# A 64 KiB chunk inside a 256 KiB server chunk: merged into it.
vc cat "$T" 65536 >"$T_DIR/text" || exit 99
python3 -c 'import sys; d=bytearray(open(sys.argv[1],"rb").read()); d[3*65536:3*65536+5]=b"XXXXX"; open(sys.argv[1],"wb").write(d)' "$T_DIR/text"
cat >"$T_DIR/store1.py" <<'PY'
# Store chunk 3 (64 KiB chunks) of FILE into FID.
import os, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
vc = __import__("vol-client")
fid, data = sys.argv[2], open(sys.argv[3], "rb").read()
cs, i = 65536, 3
at = vc.getattr_(fid); txid = os.urandom(16).hex()
st, body, _ = vc.request("PUT", vc.vpath("/stage/%s/%s/%d?size=%d" % (fid, txid, i, cs)), data[i*cs:(i+1)*cs])
assert st == 204, st
st, body, _ = vc.do_op({"op": "store", "fid": fid, "base_dv": at["dv"], "txid": txid, "chunk_size": cs, "size": len(data), "chunks": [i]})
print(st)
PY
t_is "$(python3 "$T_DIR/store1.py" "$top_srcdir/tests/integration/vol-client.py" "$T" "$T_DIR/text")" 200 "store of one 64 KiB chunk into a converted file"
t_is "$(readall text 262144 | cut -d' ' -f1,2)" "$(sha256sum <"$T_DIR/text" | cut -d' ' -f1) $(stat -c %s "$T_DIR/text")" "the file has the new chunk and every old byte"
t_is "$(vc get "/v1/vol/old/data/$T/$olddv/0?size=65536" | head -n 1)" 410 "the old DV is 410 Gone"
# Truncate the sparse file into its data, then grow it: zeros, not old bytes.
dv=$(vc attr "$S" dv)
t_is "$(vc op "{\"op\":\"setattr\",\"fid\":\"$S\",\"base_dv\":$dv,\"mask\":[\"size\"],\"size\":700002}" | head -n 1)" 200 "truncate to 700002 (cuts 'tail')"
dv=$(vc attr "$S" dv)
t_is "$(vc op "{\"op\":\"setattr\",\"fid\":\"$S\",\"base_dv\":$dv,\"mask\":[\"size\"],\"size\":900000}" | head -n 1)" 200 "grow to 900000"
vc cat "$S" 1048576 >"$T_DIR/sparse"
python3 -c '
import sys; d = open(sys.argv[1], "rb").read()
want = b"head" + bytes(700000 - 4) + b"ta" + bytes(900000 - 700002)
sys.exit(0 if d == want else 1)' "$T_DIR/sparse"
t_is $? 0 "the cut chunk was trimmed: bytes past 700002 read as zeros"
# Reopen (cleanup at open): nothing stray.
vold_stop; vold_restart || exit 99
vc root >/dev/null
t_is "$(find "$SRV_ROOT/volumes/old/data" -type f | wc -l)" 6 "6 chunk objects after the changes and a restart"
vold_stop
rm -rf "$T_DIR/out"
t_check "vos export of the converted volume" "$VOS_BIN" --root "$SRV_ROOT" export old "$T_DIR/out"
t_is "$(sha256sum <"$T_DIR/out/text")" "$(sha256sum <"$T_DIR/text")" "export: text"
t_is "$(sha256sum <"$T_DIR/out/sparse")" "$(sha256sum <"$T_DIR/sparse")" "export: sparse"
t_is "$(manifest "$T_DIR/out" | grep -v ' text$\| sparse$')" "$(grep -v ' text$\| sparse$' "$SRV_ROOT/old.manifest")" "export: the other files unchanged"
t_done
