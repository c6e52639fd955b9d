#!/usr/bin/env bash
# t2240-cm-scale: issue #17's bounds, with generous margins so a loaded
# machine does not fail them.
# - vos import of many files (one big directory and many small ones):
#   every object in, a progress line on a terminal and none without one,
#   and an interrupted import leaves nothing visible.
# - cairnd's memory while listing and walking: VmHWM grows by less than
#   64 MiB + 1 KiB an entry, the anonymous memory after the listing stays
#   under 1 KiB an entry over the start (what it keeps: the listing and
#   the inodes the kernel holds), and does not grow when listed again.
# - cairn-vold's memory for a whole (version 1) listing: under 64 MiB + 1
#   KiB an entry over its start, and its anonymous memory drops back.
# - hostile listing requests: limits 0, 4097, huge, not decimal; cursors
#   of garbage, too long, past the end, of another DV, without a limit.
# CAIRN_SCALE_N sets the size of the big directory (default 20,000).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
N=${CAIRN_SCALE_N:-20000}
t_timeout $((120 + N / 200))
kb() { awk -v k="$2:" '$1 == k {print $2}' /proc/"$1"/status; }

src=$T_DIR/src
mkdir -p "$src/big" "$src/many"
python3 - "$src" "$N" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    os.close(os.open(os.path.join(root, "big", "f%06d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
for d in range(50):
    os.makedirs(os.path.join(root, "many", "d%02d" % d))
    for i in range(40):
        with open(os.path.join(root, "many", "d%02d" % d, "g%03d" % i), "w") as f:
            f.write("x" * i)
PY
total=$((N + 1 + 1 + 50 + 50 * 40))

mkdir -p "$SRV_ROOT"
vos init >/dev/null 2>&1
# On a terminal (script(1) gives vos one): a progress line on stderr.
t_check "import on a terminal" script -qefc \
	"'$VOS_BIN' --root '$SRV_ROOT' import tty '$src'" "$T_DIR/tty.log"
t_check "  prints a progress line" grep -aq "vos: imported [0-9]* of $total objects" "$T_DIR/tty.log"
t_check "  and says how many at the end" grep -aq "$total objects, " "$T_DIR/tty.log"
t0=$(date +%s.%N)
vos import big "$src" >"$T_DIR/imp.out" 2>"$T_DIR/imp.err"
t_is "$?" 0 "import without a terminal"
t1=$(date +%s.%N)
echo "# import of $total objects: $(echo "$t1 - $t0" | bc) s"
t_is "$(cat "$T_DIR/imp.err")" "" "  no progress line"
t_check "  every object counted" grep -q "$total objects, $((50 * 39 * 20)) bytes" "$T_DIR/imp.out"
t_check "examine shows them" bash -c "'$VOS_BIN' --root '$SRV_ROOT' examine big | grep -q 'objects *$((total + 1))'"
# A kill -9 in the middle leaves no volume, and the name can be used once
# the leftover is removed.
python3 - "$src/big2" 60000 <<'PY'
import os, sys
os.makedirs(sys.argv[1])
for i in range(int(sys.argv[2])):
    os.close(os.open(os.path.join(sys.argv[1], "h%06d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
PY
"$VOS_BIN" --root "$SRV_ROOT" import killed "$src/big2" >/dev/null 2>&1 &
kpid=$!
sleep 0.3
kill -9 "$kpid" 2>/dev/null
wait "$kpid" 2>/dev/null
t_check "a killed import is not a volume" bash -c "! '$VOS_BIN' --root '$SRV_ROOT' list | grep -qx killed"
vos remove --staged killed >/dev/null 2>&1
t_check "  and after 'vos remove --staged' the name imports" \
	"$VOS_BIN" --root "$SRV_ROOT" import killed "$src/many"
rm -rf "$src/big2"

vold_start
make_token big ro "$T_DIR/tok"
tok=$(cat "$T_DIR/tok")
vol_url=$VOLD_URL/v1/vol/big
root=$(vold_curl -H "Authorization: Bearer $tok" "$vol_url" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["root"])')
bigfid=$(VC_URL=$VOLD_URL VC_TOKEN=$tok VC_VOL=big python3 "$top_srcdir/tests/integration/vol-client.py" lookup "$root" big)

# cairnd: memory while listing and walking.
cairnd_mount "$T_DIR/m.mnt" "$T_DIR/cache" big "$T_DIR/tok" || exit 99
cm=$(cairnd_pid "$T_DIR/m.mnt")
ls "$T_DIR/m.mnt" >/dev/null
hwm0=$(kb "$cm" VmHWM)
anon0=$(kb "$cm" RssAnon)
t_is "$(ls -f "$T_DIR/m.mnt/big" | wc -l)" $((N + 2)) "the big directory lists"
t_is "$(find "$T_DIR/m.mnt/many" -type f | wc -l)" 2000 "the small ones walk"
t_is "$(cat "$T_DIR/m.mnt/many/d07/g012")" xxxxxxxxxxxx "a file reads"
hwm1=$(kb "$cm" VmHWM)
anon1=$(kb "$cm" RssAnon)
ls -l "$T_DIR/m.mnt/big" >/dev/null
ls -f "$T_DIR/m.mnt/big" >/dev/null
sleep 2
anon2=$(kb "$cm" RssAnon)
echo "# cairnd kB: VmHWM $hwm0 -> $hwm1; RssAnon $anon0 -> $anon1 after the listing, $anon2 after ls -l and again"
t_ok "$([ $((hwm1 - hwm0)) -lt $((65536 + N)) ] && echo 0 || echo 1)" \
	"cairnd's peak grew by less than 64 MiB + 1 KiB an entry ($((hwm1 - hwm0)) kB)"
t_ok "$([ $((anon1 - anon0)) -lt "$N" ] && echo 0 || echo 1)" \
	"what it keeps after the listing: under 1 KiB an entry ($((anon1 - anon0)) kB)"
t_ok "$([ $((anon2 - anon0)) -lt $((2 * N)) ] && echo 0 || echo 1)" \
	"with an inode for every entry: under 2 KiB an entry ($((anon2 - anon0)) kB)"
cairnd_umount "$T_DIR/m.mnt"

# cairn-vold: a whole listing (version 1) is written page by page.
vh0=$(kb "$VOLD_PID" VmHWM)
va0=$(kb "$VOLD_PID" RssAnon)
t_is "$(vold_curl -H "Authorization: Bearer $tok" "$vol_url/dir/$bigfid" |
	python3 -c 'import json,sys; print(len(json.load(sys.stdin)["entries"]))')" "$N" \
	"a whole listing holds every entry"
vh1=$(kb "$VOLD_PID" VmHWM)
sleep 1
va1=$(kb "$VOLD_PID" RssAnon)
echo "# cairn-vold kB: VmHWM $vh0 -> $vh1, RssAnon $va0 -> $va1"
t_ok "$([ $((vh1 - vh0)) -lt $((65536 + N)) ] && echo 0 || echo 1)" \
	"cairn-vold's peak grew by less than 64 MiB + 1 KiB an entry ($((vh1 - vh0)) kB)"
t_ok "$([ $((va1 - va0)) -lt $((16384 + N / 4)) ] && echo 0 || echo 1)" \
	"and it does not keep the listing ($((va1 - va0)) kB)"

# Hostile listing requests.
code() { curl -s ${VOLD_CA:+--cacert "$VOLD_CA"} -o "$T_DIR/body" -w '%{http_code}' \
	-H "Authorization: Bearer $tok" "$vol_url/dir/$bigfid$1"; }
errno() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("errno"))' "$T_DIR/body"; }
dv=$(VC_URL=$VOLD_URL VC_TOKEN=$tok VC_VOL=big python3 "$top_srcdir/tests/integration/vol-client.py" attr "$bigfid" dv)
for q in "?limit=0" "?limit=4097" "?limit=99999999999999999999999" "?limit=12x" \
	"?limit=-1" "?limit=" "?cursor=$dv.0.0" "?limit=10&cursor=garbage" \
	"?limit=10&cursor=$(head -c 200 /dev/zero | tr '\0' 1)" \
	"?limit=10&cursor=$dv.0" "?limit=10&cursor=$dv.-1.0" \
	"?limit=10&cursor=%2e%2e%2f"; do
	t_is "$(code "$q")/$(errno)" 400/EINVAL "$q is refused"
done
t_is "$(code "?limit=10&cursor=$((dv - 1)).0.0")/$(errno)" 410/ESTALE "a cursor of an older DV: 410"
t_is "$(code "?limit=10&cursor=$((dv + 5)).0.0")/$(errno)" 410/ESTALE "a cursor of a DV to come: 410"
t_is "$(code "?limit=10&cursor=$dv.4294967295.0")" 200 "a cursor past the last bucket: a page"
t_is "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["entries"]), "next" in d)' "$T_DIR/body")" \
	"0 False" "  empty and the last"
t_is "$(code "?limit=10&cursor=$dv.0.99999999999")" 200 "a cursor past a bucket's end: a page"
t_is "$(code "?limit=4096")" 200 "the largest page"
t_is "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["entries"]), "next" in d)' "$T_DIR/body")" \
	"$([ "$N" -gt 4096 ] && echo 4096 True || echo "$N False")" "  is full and has a next"
t_check "cairn-vold still answers" vold_curl "$VOLD_URL/v1/ping"
t_done
