#!/usr/bin/env bash
# t2322-cm-spares-busy: cairnd's store threads make spare chunk files
# when idle and postpone them while cairnd is busy with other work
# (t2320), but a mount touched at least once a second must not starve
# them: a batch (16) is made at least every 5 s once no chunk was stored
# for a second (cm/fetch.c SPARE_BUSY_MS):
#   - FUSE requests every 0.2 s for 14 s: at least two batches made;
#   - and no more than the bound allows (not the idle rate);
#   - a read afterwards is right (a spare's inode reused).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 180

src=$T_DIR/src
mkdir -p "$src/d"
head -c 300000 /dev/urandom >"$src/d/file"
vos init >/dev/null 2>&1
vos import sb "$src" >/dev/null || exit 99
vold_start
make_token sb rw "$T_DIR/tok"
mnt=$T_DIR/a.mnt
cache=$T_DIR/cache-a
cairnd_mount "$mnt" "$cache" sb "$T_DIR/tok" || exit 1
stats() { getfattr -n cairn.stats --only-values "$1" 2>/dev/null; }
spares() { find "$cache" -name '*.tmp' 2>/dev/null | wc -l; }

stats "$mnt" >/dev/null
sp0=$(spares)
start=$(date +%s)
while [ $(( $(date +%s) - start )) -lt 14 ]; do
	stats "$mnt" >/dev/null
	sleep 0.2
done
sp1=$(spares)
el=$(( $(date +%s) - start ))
t_ok "$([ $((sp1 - sp0)) -ge 32 ] && echo 0 || echo 1)" \
	"busy for ${el} s: spare files still made ($sp0 before, $sp1 after)"
# A batch per 5 s, plus one late should a request come late under load.
t_ok "$([ $((sp1 - sp0)) -le $(( (el / 5 + 2) * 16 )) ] && echo 0 || echo 1)" \
	"  at most a batch every 5 s while busy"
t_check "a cold read afterwards is right" cmp "$mnt/d/file" "$src/d/file"
cairnd_umount "$mnt"
t_done
