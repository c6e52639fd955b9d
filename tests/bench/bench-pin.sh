#!/usr/bin/env bash
# bench-pin.sh - fs pin -r benchmark (make bench; not part of check).
#
# Wall time of "fs pin -r" of a tree on a fresh cairnd (metadata and every
# chunk fetched), against a baseline measured in the same run: curl
# fetching the same bytes sequentially (each file's chunk GETs over one
# keep-alive connection). Sizes: BENCH_PIN_FILES (default 10000) files of
# BENCH_PIN_MB (default 1024) MiB in all, 100 files per directory (the
# issue's 10,000-file, 1 GiB tree). The cache is sized to hold the tree
# with room to spare (the pin is refused otherwise).
set -u
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 1800
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }
NFILES=${BENCH_PIN_FILES:-10000}
MB=${BENCH_PIN_MB:-1024}
# Pinned data may fill the limit up to the stop level (3 %), and every
# chunk file takes at least one slot: leave a quarter free.
CACHE_MB=$((MB + MB / 4 + 64))

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l; }
ratio() { echo "scale=2; $1 / $2" | bc -l; }
command -v bc >/dev/null || apt-get install -y -qq bc >/dev/null 2>&1

src=$T_DIR/src
echo "# preparing: $NFILES files, $MB MiB"
python3 - "$src/tree" "$NFILES" "$MB" <<'PY'
import os, sys
root, n, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
size = mb * 1024 * 1024 // n
for i in range(n):
    d = os.path.join(root, "d%03d" % (i // 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d.bin" % i), "wb") as f:
        f.write(os.urandom(size))
PY
vold_start
vos init >/dev/null 2>&1
vos import bench "$src" >/dev/null || { echo "vos import failed"; exit 1; }
make_token bench ro "$T_DIR/tok"

# The curl baseline: every chunk URL of every file, fetched in one curl.
python3 - "$VOLD_URL" "$(cat "$T_DIR/tok")" >"$T_DIR/urls.txt" <<'PY'
import json, sys, urllib.request
url, tok = sys.argv[1], sys.argv[2]
def get(p):
    r = urllib.request.Request(url + p)
    r.add_header("Authorization", "Bearer " + tok)
    return json.load(urllib.request.urlopen(r))
def walk(fid):
    for e in get("/v1/vol/bench/dir/%s" % fid)["entries"]:
        a = e["attr"]
        if a["type"] == "dir":
            walk(a["fid"])
        elif a["type"] == "file":
            for c in range(max(1, (a["size"] + 262143) // 262144)):
                print('url = "%s/v1/vol/bench/data/%s/%d/%d?size=262144"' % (url, a["fid"], a["dv"], c))
                print('output = "/dev/null"')
walk(get("/v1/vol/bench")["root"])
PY
nurls=$(grep -c '^url' "$T_DIR/urls.txt")
t0=$(now)
curl -sf -H "Authorization: Bearer $(cat "$T_DIR/tok")" -K "$T_DIR/urls.txt" || { echo "curl failed"; exit 1; }
t1=$(now)
base=$(secs "$t0" "$t1")

mnt=$T_DIR/mnt
cairnd_mount "$mnt" "$T_DIR/cache" bench "$T_DIR/tok" --cache-size "${CACHE_MB}M" || exit 1
t0=$(now)
"$FS" pin -r -q "$mnt/tree" >"$T_DIR/pin.out" 2>&1 || { cat "$T_DIR/pin.out"; exit 1; }
t1=$(now)
pin=$(secs "$t0" "$t1")
"$FS" pins --json -m "$mnt" >"$T_DIR/pins.json"
missing=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes_missing"])' "$T_DIR/pins.json")
cat "$T_DIR/pin.out"
printf '# curl, %d chunk GETs in sequence: %.2f s\n' "$nurls" "$base"
printf '# fs pin -r, fresh cairnd:        %.2f s (%sx curl), bytes missing after: %s\n' \
	"$pin" "$(ratio "$pin" "$base")" "$missing"
cairnd_umount "$mnt"
[ "$missing" = 0 ]
