#!/usr/bin/env bash
# t4077-wback-journal-idle: dirty.tdb.jnl is checkpointed by the idle
# timer, not inside a save under the write-back lock (review 11, J2). An
# untar-like burst of 2,000 small files in writeback mode grows the
# journal past 256 KiB; once no save came for 200 ms the timer checkpoints
# it (the journal back to its 40-byte header; what a writer's pause left
# below 256 KiB stays) while cairnd runs. A kill -9
# after that loses nothing: the files and a file kept open read back.
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
mnt() { cairnd_mount "$A" "$CA" wbj "$T_DIR/tok" --write-mode writeback --writeback-delay 600s; }
jst() { "$FS" "$1" --json -m "$A" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$2"; }
N=2000

mnt || exit 1
mkdir "$A/d" || exit 1
python3 - "$A/d" "$N" <<'PY' || exit 1
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    sub = os.path.join(d, "s%02d" % (i % 20))
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, "f%04d" % i), "wb") as f:
        f.write(b"file %d\n" % i * 3)
PY
jsize() { stat -c %s "$CA/dirty.tdb.jnl" 2>/dev/null; }
# each file's write state saved at its create, dropped at its close (the
# store then in the replay log): ~700 KB of journal records
wait_for 20 grep -q 'checkpointed while idle' "$T_DIR/cairnd-a.log" ||
	t_ok 1 "the idle timer checkpointed dirty.tdb.jnl (size $(jsize))"
t_check "past 256 KiB: $(grep -o '[0-9]* bytes checkpointed while idle' "$T_DIR/cairnd-a.log" | head -1)" \
	test "$(grep -o '[0-9]* bytes checkpointed while idle' "$T_DIR/cairnd-a.log" | head -1 | cut -d' ' -f1)" -gt 262144
# (a pause of the writer over 200 ms under load checkpoints earlier: what
# follows may stay below the idle bound, which the timer leaves)
wait_eval 20 '[ "$(jsize)" -le 262144 ]'
t_check "dirty.tdb.jnl within the idle bound once idle ($(jsize) bytes)" test "$(jsize)" -le 262144
# a write state kept dirty (open, written) across the kill
exec 7>"$A/d/open" && printf 'kept\n' >&7 || exit 1
# committed by the checkpoint timer: due after WB_CKPT_MS (1 s), its tick
# at most WB_CKPT_MS later
sleep 3
cairnd_kill9 "$A"
exec 7>&-
mnt || exit 1
t_is "$(cat "$A/d/open" 2>&1)" "kept" "after kill -9 the open file's write survives"
"$FS" sync -m "$A" >/dev/null 2>&1
wait_eval 60 '[ "$(jst getcacheparms dirty_files)" = 0 ]' ||
	t_ok 1 "the restart stored everything ($(jst getcacheparms dirty_files) left)"
t_is "$(jst status backlog_records)|$(jst status conflicts)" "0|0" "drained, no conflicts"
bad=$(python3 - "$A/d" "$N" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
bad = 0
for i in range(n):
    p = os.path.join(d, "s%02d" % (i % 20), "f%04d" % i)
    try:
        if open(p, "rb").read() != b"file %d\n" % i * 3:
            bad += 1
    except OSError:
        bad += 1
print(bad)
PY
)
t_is "$bad" 0 "every file reads back whole"
t_is "$(grep -c 'cannot save a write state' "$T_DIR/cairnd-a.log")" 0 "no save refused"
t_done
