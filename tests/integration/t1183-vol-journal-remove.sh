#!/bin/bash
# t1183-vol-journal-remove: vos remove --force of a volume cairn-vold
# journals while a client keeps creating files in it: no create sent
# after vos remove returned is acknowledged (cairn-vold checkpointed and
# went on without the journal before the volume was marked removed, and
# never journals a removed one); the client gets 404 from then on; a
# volume made again under the name is a new, empty one that cairn-vold
# journals.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 120
VC="$top_srcdir/tests/integration/vol-client.py"

vold_start --journal yes || exit 99
vos create gone >/dev/null || exit 99
export VC_URL=$VOLD_URL VC_VOL=gone
make_token gone rw "$T_DIR/rw.tok"
export VC_TOKEN=$(cat "$T_DIR/rw.tok")
R=$(vc root) || exit 99

cat >"$T_DIR/writer.py" <<'PY'
# Create n1, n2, ...; before each send note whether FLAG exists (vos
# remove returned); log "sent N after|before" and "status N ST".
import json, os, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
vc = __import__("vol-client")
root, flag, log = sys.argv[2], sys.argv[3], open(sys.argv[4], "a", buffering=1)
n = 0
fails = 0
while fails < 20:
    n += 1
    after = os.path.exists(flag)
    log.write("sent %d %s\n" % (n, "after" if after else "before"))
    try:
        c = vc.conn()
        st, rep, _ = vc.request("POST", vc.vpath("/op"), json.dumps(
            {"op": "create", "opid": os.urandom(16).hex(), "parent": root,
             "name": "n%d" % n, "type": "file", "mode": 0o644, "uid": 0, "gid": 0}), c=c)
        c.close()
    except (OSError, ConnectionError) as e:
        st = 0
    log.write("status %d %d %s\n" % (n, st, "after" if after else "before"))
    if after:
        fails += 1
PY
python3 "$T_DIR/writer.py" "$VC" "$R" "$T_DIR/removed" "$T_DIR/log" 2>>"$T_DIR/writer.err" &
wpid=$!
t_track_pid "$wpid"
wait_for 20 sh -c "[ \$(grep -c 'status .* 200 ' '$T_DIR/log') -ge 30 ]" || { echo "# the writer did not get going"; exit 99; }
t_ok "$([ "$(stat -c %s "$SRV_ROOT/volumes/gone/meta.journal")" -gt 40 ] && echo 0 || echo 1)" "the volume is journalled"
vos remove gone --force >"$T_DIR/remove.log" 2>&1
t_ok $? "vos remove --force of the journalled volume"
touch "$T_DIR/removed"
wait "$wpid" 2>/dev/null
acked_after=$(grep -c '^status [0-9]* 200 after' "$T_DIR/log")
t_is "$acked_after" 0 "no create sent after the remove returned was acknowledged"
t_ok "$(grep -q '^status [0-9]* 404 after' "$T_DIR/log" && echo 0 || echo 1)" "they get 404"
echo "# $(grep -c '^status [0-9]* 200' "$T_DIR/log") creates acknowledged before"
t_ok "$([ ! -e "$SRV_ROOT/volumes/gone" ] && echo 0 || echo 1)" "the volume directory is gone"

vos create gone >/dev/null
t_ok $? "make a volume of the same name again"
make_token gone rw "$T_DIR/rw2.tok"
export VC_TOKEN=$(cat "$T_DIR/rw2.tok")
R2=$(vc root)
t_ok "$([ -n "$R2" ] && [ "$R2" != "$R" ] && echo 0 || echo 1)" "a new root"
F=$(vc create "$R2" fresh)
t_ok $? "create in the new volume"
t_ok "$(vc lookup "$R2" n1 >/dev/null 2>&1 && echo 1 || echo 0)" "none of the old files there"
t_ok "$([ "$(stat -c %s "$SRV_ROOT/volumes/gone/meta.journal" 2>/dev/null || echo 0)" -gt 40 ] && echo 0 || echo 1)" "the new volume is journalled"
t_done
