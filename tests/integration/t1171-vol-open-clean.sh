#!/bin/bash
# t1171-vol-open-clean: the clean-close marker. A volume vos import made,
# or one cairn-vold closed cleanly, carries volumes/NAME/clean; cairn-vold's
# next open takes it away and skips the scan of every chunk object (an
# orphan planted while it was closed stays), so that open costs the same at
# any size. After kill -9 there is no marker: the open scans and removes
# orphans, never a live object. A removed volume gets no marker back.
# Prints the open times (clean vs. after kill -9) of a 20,000-file volume
# (2,000 chunk objects: vos import keeps the rest inline).
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 300
now() { date +%s.%N; }
python3 - "$T_DIR/src" <<'PY'
import os, sys
for d in range(20):
    p = os.path.join(sys.argv[1], "d%02d" % d)
    os.makedirs(p)
    for f in range(1000):
        with open(os.path.join(p, "f%04d" % f), "wb") as fh:
            fh.write(b"%d" % (d * 1000 + f))
            # Every tenth file past the inline size (16 KiB), so the
            # volume has chunk objects for the scan to look at.
            if f % 10 == 0:
                fh.write(b"x" * 17000)
PY
vos init >/dev/null
t_check "vos import of 20,000 files" "$VOS_BIN" --root "$SRV_ROOT" import big "$T_DIR/src"
vd=$SRV_ROOT/volumes/big
t_ok "$([ -e "$vd/clean" ] && echo 0 || echo 1)" "the imported volume carries the marker"
make_token big rw "$T_DIR/tok"
first() { # seconds of the first request, which opens the volume
	local t0; t0=$(now)
	vold_curl --max-time 120 -H "Authorization: Bearer $(cat "$T_DIR/tok")" "$VOLD_URL/v1/vol/big" >/dev/null || echo FAIL
	echo "$(now) - $t0" | bc -l
}
vold_start || exit 99
t1=$(first)
t_ok "$([ ! -e "$vd/clean" ] && echo 0 || echo 1)" "cairn-vold's open takes the marker away"
t_is "$(grep -c 'stale data files' "$T_DIR/vold.log")" 0 "and removes nothing"
vold_stop
t_ok "$([ -e "$vd/clean" ] && echo 0 || echo 1)" "a clean stop writes it again"

# An orphan planted while the volume is closed: a clean open does not look.
orphan=$vd/data/00/00112233445566778899aabbccddeeff.0.999999
live=$(find "$vd/data" -type f -name '*.0.*' | head -n 1)
mkdir -p "$vd/data/00" && : >"$orphan"
vold_start || exit 99
t2=$(first)
t_ok "$([ -e "$orphan" ] && echo 0 || echo 1)" "open after a clean stop: no scan (the planted orphan stays)"
t_ok "$([ ! -e "$vd/clean" ] && echo 0 || echo 1)" "marker taken"
# A store in flight dies with the server: no marker, the next open scans.
vold_kill9
t_ok "$([ ! -e "$vd/clean" ] && echo 0 || echo 1)" "kill -9: no marker left"
vold_start || exit 99
t3=$(first)
t_ok "$([ ! -e "$orphan" ] && echo 0 || echo 1)" "open after kill -9: the scan removes the orphan"
t_ok "$([ -e "$live" ] && echo 0 || echo 1)" "and keeps a live object"
t_is "$(grep -c 'removed 1 stale data files' "$T_DIR/vold.log")" 1 "(logged)"
export VC_URL=$VOLD_URL VC_VOL=big VC_TOKEN=$(cat "$T_DIR/tok")
d00=$(python3 "$top_srcdir/tests/integration/vol-client.py" lookup "$(python3 "$top_srcdir/tests/integration/vol-client.py" root)" d00)
f=$(python3 "$top_srcdir/tests/integration/vol-client.py" lookup "$d00" f0007)
t_is "$(python3 "$top_srcdir/tests/integration/vol-client.py" cat "$f" 2>/dev/null)" 7 "a file reads back after the scan"
echo "# first open of 20,000 files: after import $t1 s, after a clean stop $t2 s, after kill -9 (scan) $t3 s"

# A volume removed while cairn-vold has it open gets no marker back (the
# removal's directory goes away whole).
vos remove big --force >/dev/null 2>&1
sleep 2.5 # cairn-vold notices within a second and drops its handle
vold_stop
t_is "$(ls -A "$SRV_ROOT/volumes" | wc -l)" 0 "vos remove under cairn-vold: nothing left, no marker"
t_done
