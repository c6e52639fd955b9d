#!/usr/bin/env bash
# t2202-cm-dir-prefetch: the first open of a directory asks at once for
# the listings of up to 32 of its subdirectories and of the 32
# directories after it in its parent's listing (unless the first 4 are
# cached), so a cold walker (ls -lR, find) does not wait for each
# directory's listing in turn; a prefetched listing prefetches nothing by
# itself. Counted with cairnd's counters:
# which listings were fetched, and which requests had to wait (parked).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 120

src=$T_DIR/src
for i in $(seq -w 0 39); do
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
stat_of() { getfattr -n cairn.stats --only-values "$mnt" 2>/dev/null | awk -v k="$1" '$1 == k {print $2}'; }
fetches_reach() { # N: wait until dir_fetches >= N
	wait_for 10 sh -c "[ \$(getfattr -n cairn.stats --only-values '$mnt' 2>/dev/null | awk '\$1 == \"dir_fetches\" {print \$2}') -ge $1 ]"
}

# The counts below are exact, so they hold only if nothing but this test
# opens the mount's directories: a walk of the whole mount by another
# process (a CI run once showed one: 82 more opendirs, one per directory
# of the mount, and with them the 38 deep/ listings fetched early, so
# "nothing else" saw 82 fetches, not 43; the counters' totals were those
# of a clean run). The window below opens 4 directories (ls, ls -U and
# the 4th's and the 32nd's ls); when fuse_op_opendir says more, another
# process walked in: say so, and do it again on a fresh mount and cache
# (up to 3 times) rather than judge cairnd by another process's walk.
R=() # the window's checks, reported once a run was ours alone
chk_is() { R+=("$1"$'\x1f'"$2"$'\x1f'"$3"); }
chk_ok() { chk_is "$1" 0 "$2"; }
window() { # ATTEMPT: mount a fresh cache and walk the window
	R=()
	cairnd_mount "$mnt" "$T_DIR/cache$1" pf "$T_DIR/tok" || exit 1
	stat "$mnt/top" >/dev/null # the root's listing
	f0=$(stat_of dir_fetches)
	o0=$(stat_of fuse_op_opendir)
	ls "$mnt/top" >/dev/null
	fetches_reach $((f0 + 33))
	chk_ok $? "listing top fetched 32 of its 40 subdirectories' listings"
	sleep 0.5
	chk_is "$(( $(stat_of dir_fetches) - f0 ))" 33 "no more: no deep/ listing, not all 40"
	chk_is "$(stat_of dir_prefetches)" 32 "32 prefetches counted"

	# "After" is in listing order (the server's, what readdir gives).
	dirs=($(ls -U "$mnt/top" | grep '^s'))
	d3=${dirs[3]}
	p0=$(stat_of parked)
	chk_is "$(ls "$mnt/top/$d3" | tr '\n' ' ')" "deep f1 f2 f3 " "a prefetched listing is right"
	chk_is "$(( $(stat_of parked) - p0 ))" 0 "and opening it waited for nothing"
	# Opening the 4th asked for its deep/; the directories after it are
	# all cached, so no more.
	fetches_reach $((f0 + 34))
	chk_ok $? "opening the 4th directory fetched its deep/"
	sleep 0.5
	chk_is "$(( $(stat_of dir_fetches) - f0 ))" 34 "and nothing beside it (all cached)"
	# Opening the 32nd moves the window: its deep/ and the 8 after it.
	p0=$(stat_of parked)
	ls "$mnt/top/${dirs[31]}" >/dev/null
	chk_is "$(( $(stat_of parked) - p0 ))" 0 "the 32nd opens without waiting"
	fetches_reach $((f0 + 34 + 9))
	chk_ok $? "and asks for its deep/ and the 33rd to 40th"
	sleep 0.5
	chk_is "$(( $(stat_of dir_fetches) - f0 ))" 43 "nothing else"
	foreign=$(( $(stat_of fuse_op_opendir) - o0 - 4 ))
}
for attempt in 1 2 3; do
	window $attempt
	[ "$foreign" -gt 0 ] && [ $attempt -lt 3 ] || break
	echo "# attempt $attempt: $foreign directories opened by another process meanwhile; again on a fresh mount"
	getfattr -n cairn.stats --only-values "$mnt" 2>&1 | grep -E '^(dir_|parked|fuse_op_opendir|fuse_op_readdir)' | sed 's/^/#   /'
	cairnd_umount "$mnt"
done
for r in "${R[@]}"; do
	IFS=$'\x1f' read -r got want desc <<<"$r"
	t_is "$got" "$want" "$desc"
done
t_is "$foreign" 0 "no other process opened the mount's directories meanwhile"
p0=$(stat_of parked)
ls "$mnt/top/${dirs[39]}" "$mnt/top/$d3/deep" >/dev/null
t_is "$(( $(stat_of parked) - p0 ))" 0 "the 40th and the 4th's deep/ open without waiting"

# The whole walk: names and contents as on the server.
t_is "$(cd "$mnt/top" && find . | sort | md5sum)" "$(cd "$src/top" && find . | sort | md5sum)" "find lists the tree"
t_is "$(cat "$mnt"/top/s*/deep/g | md5sum)" "$(cat "$src"/top/s*/deep/g | md5sum)" "deep files read right"
# Directories opened again prefetch nothing more.
f1=$(stat_of dir_prefetches)
ls "$mnt/top" >/dev/null
ls -R "$mnt/top" >/dev/null
t_is "$(stat_of dir_prefetches)" "$f1" "nothing asked again once cached"
cairnd_umount "$mnt"
t_done
