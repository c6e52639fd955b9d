#!/usr/bin/env bash
# t4050-wback-journal: the replay log's journal (rlog.tdb.jnl, common/tdbj.h)
# in writeback mode. Changes made with a long writeback-delay are in the
# journal, not yet in rlog.tdb; cairnd is killed with kill -9; the restart
# must read them back from the journal (the mount shows them at once, the
# log counts them) and drain them to the server. A clean stop checkpoints:
# the journal is left as its 40-byte header. Then a journal damaged before
# a record that a later one proves synced, and one of another log, keep
# cairnd from starting (and are left as they are), and the log and its
# journal moved back in place start it again with nothing lost.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 300
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

vold_start || exit 99
vos init >/dev/null 2>&1
vos create wbj >/dev/null || exit 99
make_token wbj rw "$T_DIR/tok"
A=$T_DIR/a
CA=$T_DIR/ca
mnt() { cairnd_mount "$A" "$CA" wbj "$T_DIR/tok" --write-mode writeback --writeback-delay 600s "$@"; }
jst() { "$FS" status --json -m "$A" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }
srv_files() { vos examine wbj --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["files"])'; }
fsize() { stat -c %s "$1" 2>/dev/null || echo -1; }

s0=$(srv_files) # the root
mnt || exit 1
t_is "$(fsize "$CA/rlog.tdb.jnl")" 40 "a new log has an empty journal (its header)"
mkdir "$A/d" || exit 1
for i in $(seq 1 40); do
	printf 'file %s\n' "$i" >"$A/d/f$i" || break
done
chmod 600 "$A/d/f7"
mv "$A/d/f8" "$A/d/g8"
rm "$A/d/f9"
back=$(jst backlog_records)
t_ok "$([ "${back:-0}" -ge 40 ] && echo 0 || echo 1)" "the backlog holds the changes ($back records)"
t_ok "$([ "$(fsize "$CA/rlog.tdb.jnl")" -gt 40 ] && echo 0 || echo 1)" \
	"they are in the journal ($(fsize "$CA/rlog.tdb.jnl") bytes)"
t_is "$(srv_files)" "$s0" "the server has none of them yet"
cairnd_kill9 "$A"
t_ok "$([ "$(fsize "$CA/rlog.tdb.jnl")" -gt 40 ] && echo 0 || echo 1)" \
	"after kill -9 the journal still holds them"

mnt || exit 1
# A restart with records in the log sends them at once (whatever the
# writeback delay), so they are either still in the log or on the server.
b1=$(jst backlog_records) s1=$(srv_files)
t_ok "$([ "$b1" = "$back" ] || [ "$s1" != "$s0" ] && echo 0 || echo 1)" \
	"the restart read the backlog back from the journal ($b1 of $back left, server $s0 -> $s1)"
t_is "$(cat "$A/d/f40" 2>&1)" "file 40" "the mount shows the last file at once"
t_is "$(stat -c %a "$A/d/f7" 2>&1)" 600 "and the chmod"
t_ok "$([ -e "$A/d/g8" ] && [ ! -e "$A/d/f8" ] && [ ! -e "$A/d/f9" ] && echo 0 || echo 1)" \
	"and the rename and the unlink"
"$FS" sync -m "$A" >/dev/null 2>&1
t_is "$(jst backlog_records)" 0 "fs sync drained the log"
t_is "$(srv_files)" $((s0 + 40)) "the server has the directory and its 39 files"

# A clean stop checkpoints into rlog.tdb.
echo more >"$A/d/late"
cairnd_umount "$A"
t_is "$(fsize "$CA/rlog.tdb.jnl")" 40 "a clean stop leaves the journal as its header"

# Damage: kill -9 with records in the journal, then flip a byte in the
# first record (later records were written after it was synced).
mnt || exit 1
# The clean stop left 'late' in the log: the restart's first pass sends
# it at once and would take the h files along if they came meanwhile.
"$FS" sync -m "$A" >/dev/null 2>&1
for i in 1 2 3 4 5; do echo "x$i" >"$A/d/h$i"; done
back=$(jst backlog_records)
cairnd_kill9 "$A"
cp "$CA/rlog.tdb" "$T_DIR/rlog.save"
cp "$CA/rlog.tdb.jnl" "$T_DIR/jnl.save"
python3 - "$CA/rlog.tdb.jnl" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[40 + 45] ^= 0x5a  # inside the first record's body
open(p, "wb").write(b)
PY
sum_before=$(md5sum <"$CA/rlog.tdb.jnl")
mkdir -p "$A"
"$CAIRND" --server "$VOLD_URL" --volume wbj --token "$T_DIR/tok" --cache "$CA" \
	--mountpoint "$A" --foreground --write-mode writeback >"$T_DIR/bad.log" 2>&1 &
bpid=$!
t_track_pid "$bpid"
for _ in $(seq 1 100); do kill -0 "$bpid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$bpid" 2>/dev/null; then
	t_ok 1 "cairnd refuses a damaged journal"
	fusermount3 -uz "$A" 2>/dev/null; kill -KILL "$bpid" 2>/dev/null
else
	t_ok 0 "cairnd refuses a damaged journal"
fi
wait "$bpid" 2>/dev/null
t_ok "$(grep -q "journal" "$T_DIR/bad.log" && echo 0 || echo 1)" "and says it is the journal"
t_is "$(md5sum <"$CA/rlog.tdb.jnl")" "$sum_before" "and leaves it as it is"

# The saved pair back in place: everything is there.
cp "$T_DIR/rlog.save" "$CA/rlog.tdb"
cp "$T_DIR/jnl.save" "$CA/rlog.tdb.jnl"
# The h files can reach the server only from the restored journal (the
# restart's first pass sends them at once: the backlog is not counted).
t_is "$(srv_files)" $((s0 + 41)) "before the restart the server has none of the h files ($back records)"
mnt || exit 1
t_is "$(cat "$A/d/h5" 2>&1)" "x5" "and the files"
"$FS" sync -m "$A" >/dev/null 2>&1
t_is "$(jst backlog_records)|$(jst conflicts)" "0|0" "drained, no conflicts"
t_is "$(srv_files)" $((s0 + 46)) "the server has the directory and all 45 files"
cairnd_umount "$A"
t_done
