#!/usr/bin/env bash
# t2203-cm-sibling-prefetch: a read that misses at the start of a small
# file (one chunk at most) also fetches the next 16 small files of its
# directory in listing order, so a cold cat of a directory of small files
# starts the fetch of most files before it reads them. Large
# files are not fetched that way; every byte read is the server's.
# Counted with cairnd's counters (parked: reads that had to wait).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 120

src=$T_DIR/src
mkdir -p "$src/d" "$src/one"
for i in $(seq -w 0 49); do head -c $((1000 + 100 * 10#$i)) /dev/urandom >"$src/d/f$i"; done
head -c $((600 * 1024)) /dev/urandom >"$src/one/big"
for i in 1 2 3; do head -c 5000 /dev/urandom >"$src/one/s$i"; done
vold_start
vos init >/dev/null 2>&1
vos import sp "$src" >/dev/null || exit 99
make_token sp ro "$T_DIR/tok"
mnt=$T_DIR/mnt
cairnd_mount "$mnt" "$T_DIR/cache" sp "$T_DIR/tok" || exit 1
stat_of() { getfattr -n cairn.stats --only-values "$mnt" 2>/dev/null | awk -v k="$1" '$1 == k {print $2}'; }

ls -l "$mnt/d" "$mnt/one" >/dev/null # the listings: attributes cached
p0=$(stat_of parked)
c0=$(stat_of chunks_fetched)
t_check "50 small files read right, in listing order" \
	bash -c "cd '$mnt/d' && ls -U | xargs cat | cmp - <(cd '$src/d' && ls -U '$mnt/d' | xargs cat)"
parked=$(( $(stat_of parked) - p0 ))
# How many reads still waited depends on the load (a read joins a
# transfer still in flight); what does not is how many started ahead.
t_ok "$([ "$parked" -le 50 ] && echo 0 || echo 1)" "reads that waited: $parked of 50 (all 50 before)"
# chunks_fetched counts stored chunks: the last stores may finish after
# the reader was answered from the verified bytes.
wait_for 5 sh -c "[ \$(getfattr -n cairn.stats --only-values '$mnt' 2>/dev/null | awk '\$1 == \"chunks_fetched\" {print \$2}') -ge $((c0 + 50)) ]"
sleep 0.3
t_is "$(( $(stat_of chunks_fetched) - c0 ))" 50 "each file fetched once"
t_ok "$([ "$(stat_of prefetches)" -ge 40 ] && echo 0 || echo 1)" "fetched ahead of the reader: $(stat_of prefetches) of 50 (>= 40; none before)"

# A small file read alone fetches its small siblings, not the big one.
first=$(ls -U "$mnt/one" | grep '^s' | head -1)
# $first and the small files after it in listing order.
want=$(ls -U "$mnt/one" | sed -n "/^$first\$/,\$p" | grep -c '^s')
c0=$(stat_of chunks_fetched)
t_check "a small file reads right" cmp "$mnt/one/$first" "$src/one/$first"
wait_for 5 sh -c "[ \$(getfattr -n cairn.stats --only-values '$mnt' 2>/dev/null | awk '\$1 == \"chunks_fetched\" {print \$2}') -ge $((c0 + want)) ]"
sleep 0.3
t_is "$(( $(stat_of chunks_fetched) - c0 ))" "$want" "$first and the small siblings after it, not big"
t_check "the big file reads right" cmp "$mnt/one/big" "$src/one/big"
cairnd_umount "$mnt"
t_done
