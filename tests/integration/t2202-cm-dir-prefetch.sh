#!/usr/bin/env bash
# t2202-cm-dir-prefetch: the first open of a directory asks for the
# listings of its subdirectories at once (one level), so a cold walker
# (ls -lR, find) does not wait for each subdirectory's listing in turn.
# Counted with cairnd's counters: which listings were fetched, and which
# requests had to wait (parked).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 120

src=$T_DIR/src
for i in $(seq -w 0 9); do
	mkdir -p "$src/top/s$i/deep"
	for j in 1 2 3; do echo "s$i f$j" >"$src/top/s$i/f$j"; done
	echo "deep $i" >"$src/top/s$i/deep/g"
done
echo plain >"$src/top/file"
vold_start
vos init >/dev/null 2>&1
vos import pf "$src" >/dev/null || exit 99
make_token pf ro "$T_DIR/tok"
mnt=$T_DIR/mnt
cairnd_mount "$mnt" "$T_DIR/cache" pf "$T_DIR/tok" || exit 1
stat_of() { getfattr -n cairn.stats --only-values "$mnt" 2>/dev/null | awk -v k="$1" '$1 == k {print $2}'; }

stat "$mnt/top" >/dev/null # the root's listing
f0=$(stat_of dir_fetches)
ls "$mnt/top" >/dev/null
# top's listing, then its 10 subdirectories' listings, not deep/ ones.
wait_for 10 sh -c "[ \$(getfattr -n cairn.stats --only-values '$mnt' 2>/dev/null | awk '\$1 == \"dir_fetches\" {print \$2}') -ge $((f0 + 11)) ]"
t_ok $? "listing top fetched its 10 subdirectories' listings"
sleep 0.5
t_is "$(( $(stat_of dir_fetches) - f0 ))" 11 "one level only: no deep/ listing"
t_is "$(stat_of dir_prefetches)" 10 "10 prefetches counted"

p0=$(stat_of parked)
t_is "$(ls "$mnt/top/s3" | tr '\n' ' ')" "deep f1 f2 f3 " "a prefetched listing is right"
t_is "$(( $(stat_of parked) - p0 ))" 0 "and opening it waited for nothing"

# The whole walk: names and contents as on the server.
t_is "$(cd "$mnt/top" && find . | sort | md5sum)" "$(cd "$src/top" && find . | sort | md5sum)" "find lists the tree"
t_is "$(cat "$mnt"/top/s*/deep/g | md5sum)" "$(cat "$src"/top/s*/deep/g | md5sum)" "deep files read right"
# A directory opened again prefetches nothing more.
f1=$(stat_of dir_prefetches)
ls "$mnt/top" >/dev/null
ls -R "$mnt/top" >/dev/null
t_is "$(stat_of dir_prefetches)" "$f1" "nothing asked again once cached"
cairnd_umount "$mnt"
t_done
