#!/usr/bin/env bash
# t2170-cm-events-resume: changes made on the server while cairnd's event
# stream is down reach the mount as soon as the stream is back, also when
# the stream went down before it ever delivered an event (a fresh cache of
# a volume with no events yet: the client has no sequence to resume from).
# cairnd is frozen with SIGSTOP so that the changes surely land in the gap,
# then thawed; the server's 15 s ping must not be what brings them.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 90

src=$T_DIR/src
mkdir -p "$src/d"
echo one >"$src/d/a.txt"
vold_start
vos init >/dev/null 2>&1
vos import evr "$src" >/dev/null || exit 99
make_token evr ro "$T_DIR/tok"
make_token evr rw "$T_DIR/rwtok"
mnt=$T_DIR/mnt
cairnd_mount "$mnt" "$T_DIR/cache" evr "$T_DIR/tok" || exit 99

vc() { VC_URL=$VOLD_URL VC_TOKEN=$(cat "$T_DIR/rwtok") VC_VOL=evr \
	python3 "$top_srcdir/tests/integration/vol-client.py" "$@"; }
dfid=$(vc lookup "$(vc root)" d) || exit 99

# One round: freeze cairnd, restart the server, create NAME in d/, thaw.
gap_round() { # NAME
	local pid
	pid=$(cairnd_pid "$mnt")
	ls "$mnt/d" >/dev/null
	kill -STOP "$pid"
	vold_stop
	vold_restart || { kill -CONT "$pid"; return 1; }
	vc create "$dfid" "$1" >/dev/null || { kill -CONT "$pid"; return 1; }
	kill -CONT "$pid"
}

t_is "$(ls "$mnt/d")" "a.txt" "the directory as imported"
gap_round first || exit 99
t_check "no event seen yet: a name made while the stream was down shows within 4 s" \
	wait_for 4 test -e "$mnt/d/first"
gap_round second || exit 99
t_check "after events: a name made while the stream was down shows within 4 s" \
	wait_for 4 test -e "$mnt/d/second"
t_is "$(ls "$mnt/d" | tr '\n' ' ')" "a.txt first second " "and the listing has both"
t_done
