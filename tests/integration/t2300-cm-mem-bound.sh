#!/usr/bin/env bash
# t2300-cm-mem-bound: issue #17's memory rows, against the bound doc/cm.md
# ("Memory") states:
#   peak <= 64 MiB + 400 B an inode the kernel holds + 100 B a listed entry
#           (anonymous) + 2 x 300 B a cached object (the mapped meta.tdb,
#           file-backed: page cache, reclaimable; doubled while tdb remaps
#           it)
# - cairnd lists a directory of N entries (ls -f, ls -l) and walks a tree
#   of M files (find -ls): VmHWM over the start stays under the bound, and
#   so does the anonymous part alone under its own;
# - once the kernel forgot the inodes (drop_caches 2, then FORGETs: the
#   cairnd_inodes gauge falls), the anonymous memory returns to within
#   6 MiB of the start (malloc_trim after the frees, memtrim.h; before,
#   it stayed at its peak);
# - cairn-vold serves the listing in pages: its peak grows by less than a
#   few pages' worth, not by the whole directory.
# CAIRN_MEM_N and CAIRN_MEM_M set N (default 50,000) and M (30,000).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
N=${CAIRN_MEM_N:-50000}
M=${CAIRN_MEM_M:-30000}
t_timeout $((180 + (N + M) / 200))
kb() { awk -v k="$2:" '$1 == k {print $2}' /proc/"$1"/status; }
[ -w /proc/sys/vm/drop_caches ] || { echo "# SKIP: cannot drop the kernel's caches"; exit 77; }

src=$T_DIR/src
python3 - "$src" "$N" "$M" <<'PY'
import os, sys
root, n, m = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(root + "/big")
for i in range(n):
    os.close(os.open(os.path.join(root, "big", "f%06d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
for j in range(m // 1000):
    d = os.path.join(root, "tree", "d%03d" % j)
    os.makedirs(d)
    for i in range(1000):
        os.close(os.open(os.path.join(d, "g%04d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
PY
M=$(( M / 1000 * 1000 ))
mkdir -p "$SRV_ROOT"
vos init >/dev/null 2>&1
vos import mem "$src" >/dev/null || exit 99
rm -rf "$src"
vold_start
make_token mem ro "$T_DIR/tok"
mnt=$T_DIR/m.mnt
cairnd_mount "$mnt" "$T_DIR/cache" mem "$T_DIR/tok" || exit 99
cm=$(cairnd_pid "$mnt")
inodes() { "$FS" metrics -m "$mnt" 2>/dev/null | awk '$1 ~ /^cairnd_inodes/ {print $2}'; }
# The largest RssAnon and RssAnon + RssFile seen while CMD runs.
peak() {
	local pf=$T_DIR/poll p
	: >"$pf"
	( while :; do awk '/^RssAnon:/ {a = $2} /^RssFile:/ {f = $2} END {print a, a + f}' \
		/proc/"$cm"/status >>"$pf" 2>/dev/null; sleep 0.05; done ) &
	p=$!
	"$@" >/dev/null
	kill "$p"; wait "$p" 2>/dev/null
	awk -v a="$panon" -v t="$ptot" '{if ($1 > a) a = $1; if ($2 > t) t = $2} END {print a, t}' "$pf"
}

ls "$mnt" >/dev/null
hwm0=$(kb "$cm" VmHWM)
anon0=$(kb "$cm" RssAnon)
vh0=$(kb "$VOLD_PID" VmHWM)
panon=0 ptot=0
read -r panon ptot < <(peak ls -f "$mnt/big")
vh1=$(kb "$VOLD_PID" VmHWM)
t_is "$(ls -f "$mnt/big" | wc -l)" $((N + 2)) "the big directory lists"
read -r panon ptot < <(peak ls -l "$mnt/big")
# (Not asserted: another test's drop_caches may have made the kernel
# forget some already.)
echo "# after ls -l cairnd holds $(inodes) inodes"
read -r panon ptot < <(peak find "$mnt/tree" -ls)
t_is "$(find "$mnt/tree" -type f | wc -l)" "$M" "the tree walks"
hwm1=$(kb "$cm" VmHWM)
objs=$((N + M + M / 1000 + 3))
echo "# cairnd kB: VmHWM $hwm0 -> $hwm1, RssAnon $anon0 -> peak $panon, anon + file peak $ptot; $objs objects"
echo "# cairn-vold kB: VmHWM $vh0 -> $vh1 for the listing of $N"
# The bound, in kB: 64 MiB, anonymous 400 B an inode + 100 B an entry
# (both for every object here), 2 x 300 B of mapped cache an object.
anon_bound=$(( 65536 + objs * 500 / 1024 ))
bound=$(( anon_bound + objs * 600 / 1024 ))
t_ok "$([ $((hwm1 - hwm0)) -lt "$bound" ] && echo 0 || echo 1)" \
	"cairnd's peak grew by $((hwm1 - hwm0)) kB, under the bound $bound kB"
t_ok "$([ $((panon - anon0)) -lt "$anon_bound" ] && echo 0 || echo 1)" \
	"  its anonymous memory by $((panon - anon0)) kB, under $anon_bound kB"
t_ok "$([ $((vh1 - vh0)) -lt 16384 ] && echo 0 || echo 1)" \
	"cairn-vold's peak grew by $((vh1 - vh0)) kB for $N entries: pages, not the whole listing"

# The kernel forgets the inodes: cairnd frees them and gives the memory
# back.
left=$(inodes)
for _ in $(seq 1 30); do
	sync
	echo 2 >/proc/sys/vm/drop_caches
	sleep 1
	left=$(inodes)
	[ "${left:-999999}" -le 10 ] && break
done
t_ok "$([ "${left:-999999}" -le 10 ] && echo 0 || echo 1)" \
	"after drop_caches the kernel forgot the inodes (cairnd holds $left)"
anon2=$(kb "$cm" RssAnon)
for _ in $(seq 1 40); do
	[ $((anon2 - anon0)) -lt 6144 ] && break
	sleep 0.25
	anon2=$(kb "$cm" RssAnon)
done
echo "# cairnd kB after the forgets: RssAnon $anon2 (start $anon0), RssFile $(kb "$cm" RssFile), VmRSS $(kb "$cm" VmRSS)"
t_ok "$([ $((anon2 - anon0)) -lt 6144 ] && echo 0 || echo 1)" \
	"its anonymous memory returned to within 6 MiB of the start ($((anon2 - anon0)) kB over)"
# Still serves the tree after that.
t_is "$(ls "$mnt/tree/d000" | wc -l)" 1000 "the tree lists again"
t_is "$(stat -c %s "$mnt/big/f000042")" 0 "a file stats again"
cairnd_umount "$mnt"
t_done
