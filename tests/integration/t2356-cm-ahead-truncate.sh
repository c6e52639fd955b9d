#!/usr/bin/env bash
# t2356-cm-ahead-truncate: writeback mode, a file whose store the server
# has answered while a later record of it (a chmod) is still on its way:
# the cached attributes stay on the DV the store was logged on, while
# its chunks moved to the store's answer's DV. A relay (slowop.py) holds
# the chmod 3 s. A truncate and a write of the file in that window
# worked on a write state made on the old DV, which found no chunk
# there, asked the server for that DV (gone) and failed with EIO (t2350
# under load). Now the write state starts on the answer's DV
# (wb_open_write(), "its store's answer" in the debug log); the truncate
# and the write succeed, read back right, and the server ends with the
# bytes and the mode (another cairnd, no relay).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 120
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

vol_setup at
slowop_start || exit 99
A=$T_DIR/a
CAIRND_LOG_LEVEL=debug cairnd_mount "$A" "$T_DIR/ca" at "$T_DIR/tok" \
	--write-mode writeback || exit 1

ok_file() { # NAME: made, then on the server (so the next store is a rewrite)
	printf 'first version\n' >"$A/$1" && "$FS" sync "$A/$1" >/dev/null 2>&1
}
for f in t w; do
	ok_file "$f" || { echo "# could not make $f"; exit 99; }
done
echo "setattr=3" >"$T_DIR/mode"
# Each: a store logged at close, a chmod logged after it. The drain
# sends the store first and the chmod in the next batch (a file changed
# in a batch is not changed again in it), which the relay holds.
printf xyz >"$A/t"; chmod 640 "$A/t"
printf abc >"$A/w"; chmod 604 "$A/w"
t_check "the relay holds a chmod" wait_for 10 grep -q '^setattr' "$T_DIR/proxy.req"
truncate -s 1 "$A/t" 2>"$T_DIR/trunc.err"
t_is "$?:$(cat "$T_DIR/trunc.err")" "0:" "a truncate while the chmod is held"
t_is "$(cat "$A/t")" x "... reads back"
printf Z 2>"$T_DIR/write.err" | dd of="$A/w" bs=1 seek=1 conv=notrunc status=none
t_is "$?:$(cat "$T_DIR/write.err")" "0:" "a write into the file while the chmod is held"
t_is "$(cat "$A/w")" aZc "... reads back"
t_check "the write states started on the server's DV" \
	grep -q "its store's answer; the cached attributes stay ahead" \
	"$T_DIR/cairnd-a.log"
: >"$T_DIR/mode"
"$FS" sync -m "$A" >"$T_DIR/sync.out" 2>&1
t_is "$?" 0 "fs sync once the relay lets everything through"
t_is "$(cairnd_stat_conflicts=$(getfattr -n cairn.stats --only-values "$A" 2>/dev/null |
	awk '$1 == "conflicts" { print $2 }'); echo "$cairnd_stat_conflicts")" 0 "no conflict"

VOLD_URL=$real_url
B=$T_DIR/b
cairnd_mount "$B" "$T_DIR/cb" at "$T_DIR/tok" || exit 1
t_is "$(cat "$B/t"; echo; stat -c %a "$B/t")" "x
640" "the server has the truncate and the chmod"
t_is "$(cat "$B/w"; echo; stat -c %a "$B/w")" "aZc
604" "the server has the write and the chmod"
t_done
