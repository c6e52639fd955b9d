#!/bin/sh
# t3020-fs-pin.sh - fs pin / unpin / pins end to end: a recursive pin makes
# a tree readable with the server stopped; a pin that cannot fit is refused
# up front and fetches nothing; pinned data survives a cull; a directory
# pin takes in entries created later and a pinned file changed on the
# server is fetched again; pins survive a cairnd restart (also a start with
# the server down); unpin hands the data back to culling; bad input and a
# user without read permission get the documented exit codes.
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
t_need_fuse
t_timeout 300
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

src=$T_DIR/src
mkdir -p "$src/tree/d1/d2" "$src/tree/empty" "$src/fill" "$src/fill2" "$src/big"
head -c $((600 * 1024)) /dev/urandom >"$src/tree/a.bin"    # 3 chunks
head -c $((300 * 1024)) /dev/urandom >"$src/tree/b.bin"    # 2 chunks
head -c $((1024 * 1024)) /dev/urandom >"$src/tree/d1/c.bin" # 4 chunks
head -c $((100 * 1024)) /dev/urandom >"$src/tree/d1/d2/e.bin"
: >"$src/tree/zero.txt"
for i in 1 2 3 4 5 6 7 8; do echo "small $i" >"$src/tree/d1/s$i.txt"; done
ln -s d1/c.bin "$src/tree/link"
for i in 1 2 3 4 5; do head -c $((4 * 1024 * 1024)) /dev/urandom >"$src/fill/f$i"; done
for i in 1 2 3 4 5; do head -c $((4 * 1024 * 1024)) /dev/urandom >"$src/fill2/f$i"; done
head -c $((24 * 1024 * 1024)) /dev/urandom >"$src/big/huge.bin"
echo "for root only" >"$src/secret.txt"
chmod 0600 "$src/secret.txt"
mkdir -p "$src/mixed" "$src/many"
# 16 MiB of cache has 256 chunk slots: 300 small files fit by bytes only.
for i in $(seq 1 300); do echo "$i" >"$src/many/f$i"; done
echo "for all" >"$src/mixed/open.txt"
echo "for root only" >"$src/mixed/secret.txt"
chmod -R a+rX "$src/tree" "$src/fill" "$src/fill2" "$src/big" "$src/mixed" "$src/many"
chmod 0600 "$src/mixed/secret.txt"

vold_start || exit 99
vos init >/dev/null 2>&1
vos import pins "$src" >"$T_DIR/import.log" 2>&1 || { cat "$T_DIR/import.log"; exit 99; }
make_token pins ro "$T_DIR/tok"
make_token pins rw "$T_DIR/rwtok"
mnt=$T_DIR/mnt
cairnd_mount "$mnt" "$T_DIR/cache" pins "$T_DIR/tok" --cache-size 16M || exit 1

jget() {
	python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    d = d[int(k)] if isinstance(d, list) else d.get(k)
    if d is None: break
print(json.dumps(d) if isinstance(d, (dict, list, bool)) or d is None else d)' "$@"
}
# A member of the pin of PATH in a "fs pins --json" reply: pinget FILE PATH KEY
pinget() {
	python3 -c '
import json, sys
d = [p for p in json.load(open(sys.argv[1]))["pins"] if p["path"] == sys.argv[2]]
print(json.dumps(d[0][sys.argv[3]]) if d else "none")' "$@"
}
stat_of() { getfattr -n cairn.stats --only-values "$mnt" 2>/dev/null | sed -n "s/^$1 //p"; }
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
# Every file of the tree reads back right and the listing matches.
tree_ok() {
	for f in a.bin b.bin d1/c.bin d1/d2/e.bin zero.txt d1/s1.txt d1/s8.txt; do
		cmp -s "$src/tree/$f" "$mnt/tree/$f" || { echo "# $f differs"; return 1; }
	done
	[ "$(readlink "$mnt/tree/link")" = d1/c.bin ] || { echo "# link"; return 1; }
	(cd "$src/tree" && ls -R) >"$T_DIR/ls.src"
	(cd "$mnt/tree" && ls -lR) >"$T_DIR/ls-l.mnt" || return 1
	(cd "$mnt/tree" && ls -R) >"$T_DIR/ls.mnt" || return 1
	cmp -s "$T_DIR/ls.src" "$T_DIR/ls.mnt" || { echo "# listings differ"; return 1; }
}
# Chunks cached of a file, per fs examine.
cached() { "$FS" examine --json "$1" >"$T_DIR/ex.json" 2>/dev/null && jget "$T_DIR/ex.json" 0 chunks_cached; }
pinned() { "$FS" examine --json "$1" >"$T_DIR/ex.json" 2>/dev/null && jget "$T_DIR/ex.json" 0 pinned; }

# --- bad input -------------------------------------------------------------
"$FS" pin /tmp >/dev/null 2>"$T_DIR/e1"
t_is "$?" 65 "pin of a path outside any cairn mount: exit 65"
t_check "and says so" grep -q "not on a cairn mount\|not a cairn" "$T_DIR/e1"
"$FS" pin "$mnt/tree/missing" >/dev/null 2>"$T_DIR/e2"
t_is "$?" 66 "pin of a missing file: exit 66"
t_check "and names it" grep -q "missing" "$T_DIR/e2"
"$FS" pin --bogus "$mnt/tree" >/dev/null 2>"$T_DIR/e3"
t_is "$?" 64 "pin with an unknown option: exit 64"
t_check "and names the option" grep -q "unknown option '--bogus'" "$T_DIR/e3"
"$FS" unpin "$mnt/tree/missing" >/dev/null 2>&1
t_is "$?" 66 "unpin of a missing file: exit 66"

# --- too big: refused before fetching anything ------------------------------
ls -lR "$mnt/big" >/dev/null
before=$(stat_of chunks_fetched)
"$FS" pin "$mnt/big/huge.bin" >/dev/null 2>"$T_DIR/big.err"
t_is "$?" 73 "a pin larger than the cache is refused (exit 73)"
t_check "with the shortfall" grep -q "short by" "$T_DIR/big.err"
"$FS" pin --json "$mnt/big" -r >"$T_DIR/big.json" 2>/dev/null
t_is "$(jget "$T_DIR/big.json" 0 errno)" 28 "--json: ENOSPC"
short=$(jget "$T_DIR/big.json" 0 bytes_short)
t_check "--json: bytes_short is about 4 MiB ($short)" test "$short" -gt $((3 * 1024 * 1024))
t_is "$(stat_of chunks_fetched)" "$before" "no chunk was fetched"
t_is "$(pinned "$mnt/big/huge.bin")" false "nothing was pinned"
"$FS" pin -r "$mnt/many" >/dev/null 2>"$T_DIR/many.err"
t_is "$?" 73 "a pin of more files than the cache's file limit is refused (exit 73)"
t_check "and says so" grep -q "chunk files.*file limit is 256" "$T_DIR/many.err"
t_is "$(stat_of chunks_fetched)" "$before" "still no chunk fetched"
"$FS" pins --json -m "$mnt" >"$T_DIR/pins0.json"
t_is "$(jget "$T_DIR/pins0.json" pins)" "[]" "no pin recorded"

# --- pin -r a tree -------------------------------------------------------------
"$FS" pin -r "$mnt/tree" >"$T_DIR/pin.out" 2>"$T_DIR/pin.err"
t_is "$?" 0 "pin -r tree"
t_check "summary line" grep -q "pinned $mnt/tree (recursive): .* in 13 files" "$T_DIR/pin.out"
"$FS" pins --json -m "$mnt" >"$T_DIR/pins1.json"
t_is "$(jget "$T_DIR/pins1.json" pins 0 path)/$(jget "$T_DIR/pins1.json" pins 0 recursive)" \
	"tree/true" "pins: tree, recursive"
t_is "$(jget "$T_DIR/pins1.json" pins 0 files)" 13 "pins: 13 files"
t_is "$(jget "$T_DIR/pins1.json" bytes_missing)" 0 "pins: nothing missing"
t_is "$(jget "$T_DIR/pins1.json" bytes_pinned)" $(( (600 + 300 + 1024 + 100) * 1024 + 8 * 8 )) \
	"pins: bytes pinned = the tree's bytes"
"$FS" pins -m "$mnt" >"$T_DIR/pins1.txt"
t_check "pins, plain: one line per pin and a total" grep -q "total: .* pinned, 0 B missing" "$T_DIR/pins1.txt"
"$FS" pin --json "$mnt/tree/a.bin" >"$T_DIR/pin2.json" 2>/dev/null
t_is "$?" 0 "pin a file of the tree again"
t_is "$(jget "$T_DIR/pin2.json" 0 bytes_fetched)" 0 "--json: nothing left to fetch"
t_is "$(jget "$T_DIR/pin2.json" 0 bytes)" $((600 * 1024)) "--json: its bytes"

# Fill the cache past its limit with other files: the pinned tree stays.
ev0=$(stat_of cache_evictions)
cat "$mnt"/fill/* >/dev/null
t_check "the fill was culled (evictions $ev0 -> $(stat_of cache_evictions))" \
	test "$(stat_of cache_evictions)" -gt "$ev0"
t_is "$(cached "$mnt/tree/d1/c.bin")" 4 "pinned c.bin survived the cull"

vold_stop
drop_caches
t_check "server stopped: the pinned tree reads back right, ls -lR works" tree_ok
vold_restart || exit 99

# --- the tree changes on the server -----------------------------------------------
cat >"$T_DIR/srv.py" <<'PY'
import json, os, sys, urllib.request, urllib.error
url, tok, vol = os.environ["VOLD_URL"], open(sys.argv[1]).read().strip(), sys.argv[2]
def req(method, path, body=None, ctype="application/json"):
    r = urllib.request.Request(url + path, data=body, method=method)
    r.add_header("Authorization", "Bearer " + tok)
    if body is not None:
        r.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(r, timeout=10) as f:
            return f.status, f.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
def lookup(path):
    fid, attr = json.loads(req("GET", "/v1/vol/%s" % vol)[1])["root"], None
    for comp in [c for c in path.split("/") if c]:
        d = json.loads(req("GET", "/v1/vol/%s/dir/%s" % (vol, fid))[1])
        e = [e for e in d["entries"] if e["name"] == comp][0]
        fid, attr = e["attr"]["fid"], e["attr"]
    return fid, attr
def op(o):
    o["opid"] = os.urandom(16).hex()
    st, b = req("POST", "/v1/vol/%s/op" % vol, json.dumps(o).encode())
    if st != 200:
        sys.exit("op %s: %d %s" % (o["op"], st, b))
a = sys.argv[3:]
if a[0] == "store":                       # PATH FILE
    fid, attr = lookup(a[1]); data = open(a[2], "rb").read()
    cs, tx, chunks = 262144, os.urandom(16).hex(), []
    for i in range(0, max(len(data), 1), cs):
        st, b = req("PUT", "/v1/vol/%s/stage/%s/%s/%d?size=%d" % (vol, fid, tx, i // cs, cs),
                    data[i:i + cs], "application/octet-stream")
        if st != 204:
            sys.exit("stage: %d %s" % (st, b))
        chunks.append(i // cs)
    op({"op": "store", "fid": fid, "base_dv": attr["dv"], "txid": tx,
        "chunk_size": cs, "size": len(data), "chunks": chunks})
elif a[0] == "create":                    # DIR NAME
    op({"op": "create", "parent": lookup(a[1])[0], "name": a[2], "type": "file",
        "mode": 0o644, "uid": 0, "gid": 0})
PY
srv() { python3 "$T_DIR/srv.py" "$T_DIR/rwtok" pins "$@"; }

head -c $((500 * 1024)) /dev/urandom >"$T_DIR/new.bin"
srv create /tree/d1/d2 new.bin && srv store /tree/d1/d2/new.bin "$T_DIR/new.bin" || exit 99
cp "$T_DIR/new.bin" "$src/tree/d1/d2/new.bin"
new_in() { [ "$(cached "$mnt/tree/d1/d2/new.bin")" = 2 ] && [ "$(pinned "$mnt/tree/d1/d2/new.bin")" = true ]; }
t_check "a file created in a pinned directory is pinned and fetched" wait_for 15 new_in
head -c $((700 * 1024)) /dev/urandom >"$T_DIR/a2.bin"
cp "$T_DIR/a2.bin" "$src/tree/a.bin"
fetched0=$(stat_of chunks_fetched)
srv store /tree/a.bin "$T_DIR/a2.bin" || exit 99
a_in() {
	"$FS" examine --json "$mnt/tree/a.bin" >"$T_DIR/exa.json" 2>/dev/null &&
		[ "$(jget "$T_DIR/exa.json" 0 size)" = $((700 * 1024)) ] &&
		[ "$(jget "$T_DIR/exa.json" 0 chunks_cached)" = 3 ] &&
		[ "$(jget "$T_DIR/exa.json" 0 pinned)" = true ]
}
t_check "a pinned file changed on the server is fetched again" wait_for 15 a_in
t_check "in the background (chunks fetched: $fetched0 -> $(stat_of chunks_fetched))" \
	test "$(stat_of chunks_fetched)" -ge $((fetched0 + 3))

# A change made while cairnd's event stream is down: through a second
# server on another port. When the stream comes back cairnd revalidates
# and the server replays the event it kept; either way the pinned file is
# fetched again. (A revalidation that finds a new DV with no event, as
# after a stream RESET, takes pin_changed(); the server keeps 65536 events,
# too many to make it forget one here.)
head -c $((400 * 1024)) /dev/urandom >"$T_DIR/e2.bin"
reval0=$(stat_of revalidations)
vold_stop
"$VOLD" --root "$SRV_ROOT" --listen 127.0.0.1:0 --port-file "$T_DIR/vold2.port" \
	--foreground >>"$T_DIR/vold2.log" 2>&1 &
v2=$!
t_track_pid "$v2"
wait_for 10 test -s "$T_DIR/vold2.port"
VOLD_URL=http://127.0.0.1:$(cat "$T_DIR/vold2.port") wait_for 10 \
	vold_curl "http://127.0.0.1:$(cat "$T_DIR/vold2.port")/v1/ping"
VOLD_URL=http://127.0.0.1:$(cat "$T_DIR/vold2.port") srv store /tree/d1/d2/e.bin "$T_DIR/e2.bin"
t_is "$?" 0 "e.bin changed behind cairnd's back"
kill "$v2"; wait "$v2" 2>/dev/null
cp "$T_DIR/e2.bin" "$src/tree/d1/d2/e.bin"
vold_restart || exit 99
e_in() {
	"$FS" examine --json "$mnt/tree/d1/d2/e.bin" >"$T_DIR/exe.json" 2>/dev/null &&
		[ "$(jget "$T_DIR/exe.json" 0 size)" = $((400 * 1024)) ] &&
		[ "$(jget "$T_DIR/exe.json" 0 chunks_cached)" = 2 ] &&
		[ "$(jget "$T_DIR/exe.json" 0 pinned)" = true ]
}
t_check "a pinned file changed while the stream was down is fetched again" wait_for 20 e_in
t_check "(cairnd revalidated: $reval0 -> $(stat_of revalidations))" test "$(stat_of revalidations)" -gt "$reval0"

# --- restart ---------------------------------------------------------------------
cairnd_umount "$mnt"
cairnd_mount "$mnt" "$T_DIR/cache" pins "$T_DIR/tok" --cache-size 16M || exit 1
"$FS" pins --json -m "$mnt" >"$T_DIR/pins2.json"
t_is "$(pinget "$T_DIR/pins2.json" tree recursive)" true "pins survive a restart"
missing_zero() { "$FS" pins --json -m "$mnt" >"$T_DIR/pins3.json" && [ "$(jget "$T_DIR/pins3.json" bytes_missing)" = 0 ] &&
	[ "$(pinget "$T_DIR/pins3.json" tree files)" = 14 ]; }
t_check "and are re-applied: 14 files, nothing missing" wait_for 15 missing_zero
"$FS" flush "$mnt/tree/b.bin" >"$T_DIR/flush.out" 2>&1
t_check "flush of a pinned file says it is fetched again" grep -q "fetching again" "$T_DIR/flush.out"
b_back() { [ "$(cached "$mnt/tree/b.bin")" = 2 ] && [ "$(pinned "$mnt/tree/b.bin")" = true ]; }
t_check "chunks fetched after the restart are pinned" wait_for 15 b_back
cat "$mnt"/fill2/* >/dev/null
t_is "$(cached "$mnt/tree/b.bin")" 2 "and survive a cull"

cairnd_umount "$mnt"
vold_stop
cairnd_mount "$mnt" "$T_DIR/cache" pins "$T_DIR/tok" --cache-size 16M --fetch-timeout 1s || exit 1
"$FS" pins --json -m "$mnt" >"$T_DIR/pins4.json"
t_is "$(pinget "$T_DIR/pins4.json" tree recursive)" true "pins listed after a start with the server down"
drop_caches
t_check "and the tree reads back right from the cache" tree_ok
t_check "with the file created later" cmp "$T_DIR/new.bin" "$mnt/tree/d1/d2/new.bin"
cairnd_umount "$mnt"
vold_restart || exit 99
cairnd_mount "$mnt" "$T_DIR/cache" pins "$T_DIR/tok" --cache-size 16M || exit 1

# --- permissions --------------------------------------------------------------------
nobody "$FS" pin "$mnt/secret.txt" >/dev/null 2>"$T_DIR/perm.err"
t_is "$?" 77 "uid 65534 may not pin a mode-0600 root file"
t_check "and is told so" grep -qi "permission denied" "$T_DIR/perm.err"
t_is "$(pinned "$mnt/secret.txt")" false "and nothing was pinned"
nobody "$FS" pin "$mnt/tree/d1/s1.txt" >/dev/null 2>&1
t_is "$?" 0 "uid 65534 may pin a file it can read"
nobody "$FS" unpin "$mnt/tree/d1/s1.txt" >/dev/null 2>&1
t_is "$?" 0 "and unpin it"
nobody "$FS" pin -r --json "$mnt/mixed" >"$T_DIR/mixed.json" 2>/dev/null
t_is "$?" 0 "uid 65534 may pin -r a directory with a file it cannot read"
t_is "$(jget "$T_DIR/mixed.json" 0 files_skipped)" 1 "that file is skipped"
t_is "$(pinned "$mnt/mixed/secret.txt")/$(pinned "$mnt/mixed/open.txt")" "false/true" \
	"and not pinned; the readable one is"
# At start, pins are re-applied in the background as the user who made
# them: the unreadable file stays out.
cairnd_umount "$mnt"
cairnd_mount "$mnt" "$T_DIR/cache" pins "$T_DIR/tok" --cache-size 16M || exit 1
open_back() { [ "$(pinned "$mnt/mixed/open.txt")" = true ]; }
t_check "the pin of uid 65534 is re-applied at start" wait_for 15 open_back
sleep 0.5
t_is "$(pinned "$mnt/mixed/secret.txt")" false \
	"as uid 65534: the file it cannot read is still not pinned"
nobody "$FS" unpin -r "$mnt/mixed" >/dev/null 2>&1
t_is "$?" 0 "and uid 65534 unpins it"

# --- unpin ------------------------------------------------------------------------------
"$FS" unpin --json -r "$mnt/tree" >"$T_DIR/unpin.json" 2>&1
t_is "$?" 0 "unpin -r tree"
t_is "$(jget "$T_DIR/unpin.json" 0 pins_removed)" 2 "removes the tree's pin and a.bin's"
"$FS" pins --json -m "$mnt" >"$T_DIR/pins5.json"
t_is "$(jget "$T_DIR/pins5.json" pins)" "[]" "no pins left"
t_is "$(pinned "$mnt/tree/d1/c.bin")/$(cached "$mnt/tree/d1/c.bin")" "false/4" "unpinned data stays cached"
"$FS" getcacheparms --json -m "$mnt" >"$T_DIR/gcp.json"
t_is "$(jget "$T_DIR/gcp.json" pinned_bytes)" 0 "no pinned bytes left"
cat "$mnt"/fill/* >/dev/null
cat "$mnt"/fill2/* >/dev/null
left=0
for f in a.bin b.bin d1/c.bin d1/d2/new.bin; do left=$((left + $(cached "$mnt/tree/$f"))); done
t_check "after unpin, a cull evicts the tree's chunks ($left of 11 left)" test "$left" -lt 11
cairnd_umount "$mnt"
cairnd_mount "$mnt" "$T_DIR/cache" pins "$T_DIR/tok" --cache-size 16M || exit 1
"$FS" pins --json -m "$mnt" >"$T_DIR/pins6.json"
t_is "$(jget "$T_DIR/pins6.json" pins)" "[]" "unpin lasts across a restart"
t_done
