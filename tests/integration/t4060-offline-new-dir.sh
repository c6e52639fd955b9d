#!/usr/bin/env bash
# Offline creates in directories whose listing the client can know
# without having fetched it: made by this client just before `fs
# disconnect` (mkdir, and mkdir -p of a chain), or made offline. Before,
# a create in a directory made connected and never listed failed with
# EIO offline ("no cached listing"). The replay brings every name to the
# server; a directory made by another client and never listed here still
# refuses offline changes (EIO: its listing is unknown).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 200
vold_start || exit 99
vos init >/dev/null 2>&1
vos create nd >/dev/null 2>&1 || exit 99
make_token nd rw "$T_DIR/tok"
A=$T_DIR/a B=$T_DIR/b
cairnd_mount "$A" "$T_DIR/ca" nd "$T_DIR/tok" || exit 1
cairnd_mount "$B" "$T_DIR/cb" nd "$T_DIR/tok" || exit 1
jst() { "$FS" status --json -m "$A" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }
ls "$A" >/dev/null
mkdir "$B/other"
sleep 1
mkdir "$A/D" && mkdir -p "$A/P/Q/R"
# A's opens of the root may prefetch B's directory's listing (t2202):
# forget it, so that the listing is surely unknown offline.
ls "$A" >/dev/null
"$FS" flushmeta "$A/other" >/dev/null 2>&1
t_check "disconnect" "$FS" disconnect -m "$A"
echo one >"$A/D/f1"; t_is "$?" 0 "create in a directory made just before fs disconnect"
echo two >"$A/P/Q/R/f2"; t_is "$?" 0 "create at the end of a mkdir -p chain"
mkdir "$A/P/Q/S"; t_is "$?" 0 "mkdir in a directory of the chain"
t_is "$(ls "$A/D" | tr '\n' ' ')" "f1 " "the new directory lists its file offline"
t_is "$(ls "$A/P/Q" | tr '\n' ' ')" "R S " "the chain's directory lists both offline"
mkdir "$A/off" && echo three >"$A/off/f3"; t_is "$?" 0 "create in a directory made offline"
# Made by another client, never listed here: the listing is unknown.
t_is "$(ls "$A" | tr '\n' ' ')" "D P off other " "root lists B's directory (cached)"
err=$(touch "$A/other/x" 2>&1); t_is "$?" 1 "create in B's unlisted directory fails offline"
t_is "$(echo "$err" | grep -c "Input/output error")" 1 "with EIO"
t_is "$(jst replay_pending)" 8 "8 records logged (3 creates and their stores, 2 mkdirs)"
t_check "reconnect" "$FS" reconnect -m "$A"
t_is "$(jst conflicts)" 0 "no conflicts"
t_is "$(cat "$B/D/f1")" one "D/f1 on the server"
t_is "$(cat "$B/P/Q/R/f2")" two "P/Q/R/f2 on the server"
t_is "$(ls "$B/P/Q" | tr '\n' ' ')" "R S " "P/Q on the server"
t_is "$(cat "$B/off/f3")" three "off/f3 on the server"
# After the replay: offline again, the same directories still take creates
# (made connected, made offline, and the replayed mkdir -p chain).
sleep 1
t_check "disconnect again" "$FS" disconnect -m "$A"
for d in D off P/Q/R P/Q/S; do
	echo "again $d" >"$A/$d/g"; t_is "$?" 0 "after the replay, offline create in $d"
done
t_check "reconnect again" "$FS" reconnect -m "$A"
t_is "$(jst conflicts)" 0 "no conflicts after the second replay"
for d in D off P/Q/R P/Q/S; do
	t_is "$(cat "$B/$d/g" 2>&1)" "again $d" "$d/g on the server"
done
cairnd_umount "$B"
cairnd_umount "$A"
t_done
