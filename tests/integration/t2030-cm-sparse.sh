#!/usr/bin/env bash
# t2030-cm-sparse: reading 4 KiB at offset 5 GiB of a 6 GiB sparse file
# fetches the chunk that holds it and at most a little readahead, not the
# file: counted by cairnd's chunks_fetched counter.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 120

src=$T_DIR/src
mkdir -p "$src"
truncate -s 6G "$src/sparse.img"
printf 'needle at five gib' | dd of="$src/sparse.img" bs=1 seek=$((5 << 30)) conv=notrunc 2>/dev/null
vold_start
vos init >/dev/null 2>&1
vos import sp "$src" >/dev/null || exit 99
make_token sp ro "$T_DIR/tok"
mnt=$T_DIR/mnt
cairnd_mount "$mnt" "$T_DIR/cache" sp "$T_DIR/tok" || exit 1

t_is "$(stat -c %s "$mnt/sparse.img")" $((6 << 30)) "size is 6 GiB"
got=$(dd if="$mnt/sparse.img" bs=4096 skip=$(((5 << 30) / 4096)) count=1 2>/dev/null | head -c 18)
t_is "$got" "needle at five gib" "4 KiB at 5 GiB read back"
zeros=$(dd if="$mnt/sparse.img" bs=4096 skip=$(((3 << 30) / 4096)) count=1 2>/dev/null | tr -d '\0' | wc -c)
t_is "$zeros" 0 "a hole reads as zeros"
n=$(getfattr --only-values -n cairn.stats "$mnt" 2>/dev/null | awk '$1 == "chunks_fetched" {print $2}')
t_ok "$([ "${n:-99}" -le 6 ] && echo 0 || echo 1)" "two reads fetched $n chunks (at most 3 each)"
used=$(getfattr --only-values -n cairn.stats "$mnt" 2>/dev/null | awk '$1 == "cache_bytes_used" {print $2}')
t_ok "$([ "${used:-0}" -le $((6 * 262144)) ] && echo 0 || echo 1)" "cache holds $used bytes"
cairnd_umount "$mnt"
t_done
