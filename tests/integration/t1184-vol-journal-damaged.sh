#!/bin/bash
# t1184-vol-journal-damaged: a journal left by kill -9 of cairn-vold,
# then damaged. A torn tail (a record cut short: a commit that never
# returned) is cut off at the next open and the volume served. A damaged
# byte in a record that whole records follow is refused by cairn-vold
# (the volume's requests fail, the journal is left as it is) and by vos;
# moved away by hand, the volume opens with the state of its last
# checkpoint (here: vos examine's).
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 120
VC="$top_srcdir/tests/integration/vol-client.py"

vold_start --journal yes || exit 99
vos create dj >/dev/null || exit 99
export VC_URL=$VOLD_URL VC_VOL=dj
make_token dj rw "$T_DIR/rw.tok"
export VC_TOKEN=$(cat "$T_DIR/rw.tok")
R=$(vc root) || exit 99
J=$SRV_ROOT/volumes/dj/meta.journal
# Where the journal's records end: cairn-vold writes zeros ahead of
# them (TDBJ_O_PREALLOC), so the file's size is not that. Follows the
# length fields of the records (doc/cache-format.md) up to the first
# that is not one.
jend() {
	python3 - "$J" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
off = 40
while off + 40 <= len(b) and struct.unpack_from("<I", b, off)[0] == 0x524a4454:
    n = 40 + struct.unpack_from("<I", b, off + 4)[0]
    if off + n > len(b):
        break
    off += n
print(off)
PY
}

for i in $(seq 1 10); do vc create "$R" "a$i" >/dev/null || exit 99; done
vold_kill9
t_ok "$([ "$(stat -c %s "$J")" -gt 40 ] && echo 0 || echo 1)" "kill -9 left a journal with records"
size=$(jend)
t_ok "$([ "$size" -gt 40 ] && echo 0 || echo 1)" "its records end at $size"
truncate -s $((size - 7)) "$J"
vold_restart || exit 99
miss=0
for i in $(seq 1 9); do vc lookup "$R" "a$i" >/dev/null || miss=$((miss + 1)); done
t_is "$miss" 0 "torn tail: every earlier create there"
t_ok "$(vc lookup "$R" a10 >/dev/null 2>&1 && echo 1 || echo 0)" "the cut record's create is not"
vc create "$R" a10 >/dev/null
t_ok $? "and the volume takes new changes"
t_ok "$([ "$(stat -c %s "$J")" -gt 40 ] && echo 0 || echo 1)" "journalled"

# A checkpoint (vos knocks), then more creates, then the damage.
vos examine dj >/dev/null
t_ok $? "vos examine (cairn-vold checkpoints)"
# It journals again at a tick that finds no knock: the lock file names it.
wait_for 5 test -s "$SRV_ROOT/volumes/dj/lock"
t_ok $? "cairn-vold takes the lock back"
for i in $(seq 1 6); do vc create "$R" "b$i" >/dev/null || exit 99; done
vold_kill9
t_ok "$([ "$(jend)" -gt 200 ] && echo 0 || echo 1)" "kill -9 left records of b1..b6"
printf '\xff' | dd of="$J" bs=1 seek=60 conv=notrunc status=none
sum0=$(md5sum <"$J")
vold_restart || exit 99
st=$(vc get /v1/vol/dj 2>/dev/null | head -n1)
t_ok "$([ "$st" != 200 ] && echo 0 || echo 1)" "cairn-vold refuses the volume ($st)"
t_ok "$(grep -q "dj.*journal.*Structure needs cleaning" "$T_DIR/vold.log" && echo 0 || echo 1)" "and logs why"
vos examine dj >"$T_DIR/examine.out" 2>&1
t_ok "$([ $? -ne 0 ] && echo 0 || echo 1)" "vos examine refuses it too"
t_is "$(md5sum <"$J")" "$sum0" "the journal is left as it was"
mv "$J" "$J.bad"
vos examine dj >/dev/null
t_ok $? "moved away: vos examine opens it"
t_ok "$(vc lookup "$R" a10 >/dev/null && echo 0 || echo 1)" "the checkpointed state is there"
t_ok "$(vc lookup "$R" b1 >/dev/null 2>&1 && echo 1 || echo 0)" "the changes of the damaged journal are not"
vc create "$R" c1 >/dev/null
t_ok $? "cairn-vold serves it again"
t_done
