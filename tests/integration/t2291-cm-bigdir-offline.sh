#!/usr/bin/env bash
# t2291-cm-bigdir-offline: offline edits of a big directory's cached
# listing (issue #17). Disconnected, each create, unlink or rename
# stores the listing's changed pages and record in meta.tdb (cm/vc.c;
# the listing cannot be fetched again until reconnected), so:
#   - after creates (a run of 1,200 names into one segment, which splits),
#     unlinks and renames, `ls -f | sort` equals a local reference;
#   - after kill -9 of cairnd and a disconnected start (the server down
#     too) the listing is read back from its pages and still equals it;
#   - after the server is back and the replay log has drained, the mount
#     and a fresh mount on an empty cache both list exactly the reference.
# CAIRN_BIGDIR_N sets the size (default 20,000).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
N=${CAIRN_BIGDIR_N:-20000}
t_timeout $((300 + N / 100))

src=$T_DIR/src
ref=$T_DIR/ref
mkdir -p "$src/big"
python3 - "$src/big" "$N" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    os.close(os.open(os.path.join(d, "f%06d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
PY
cp -a "$src/big" "$ref"
vos init >/dev/null 2>&1
vos import bo "$src" >/dev/null || exit 99
vold_start
make_token bo rw "$T_DIR/tok"
mnt=$T_DIR/mnt
cache=$T_DIR/cache
cairnd_mount "$mnt" "$cache" bo "$T_DIR/tok" --fetch-timeout 2s || exit 1
jget() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get(sys.argv[1], ""))' "$1"; }
same() { # LABEL [MNT]
	ls -f "${2:-$mnt}/big" | grep -v '^\.\.\?$' | sort >"$T_DIR/got"
	ls -f "$ref" | grep -v '^\.\.\?$' | sort >"$T_DIR/want"
	if cmp -s "$T_DIR/got" "$T_DIR/want"; then
		t_ok 0 "$1: the listing equals the reference ($(wc -l <"$T_DIR/want") names)"
	else
		t_ok 1 "$1: the listing equals the reference"
		diff "$T_DIR/got" "$T_DIR/want" | head -5 | sed 's/^/# /'
	fi
}
ls -f "$mnt/big" >/dev/null
stat "$mnt/big" >/dev/null
"$FS" disconnect -m "$mnt" >/dev/null || { echo "# fs disconnect failed"; exit 1; }

edits() { # DIR
	python3 - "$1" <<'PY'
import os, sys
d = sys.argv[1]
def create(name):
    os.close(os.open(os.path.join(d, name), os.O_CREAT | os.O_WRONLY, 0o644))
for name in ["!first", "zzzz-last"]:
    create(name)
for i in range(1200):  # all between f005000 and f005001: one segment
    create("f005000x%04d" % i)
for i in range(7000, 7300):
    os.unlink(os.path.join(d, "f%06d" % i))
for i in range(9000, 9100, 2):
    os.rename(os.path.join(d, "f%06d" % i), os.path.join(d, "r%06d" % i))
os.rename(os.path.join(d, "f009501"), os.path.join(d, "f009503"))
PY
}
edits "$mnt/big" || t_ok 1 "offline edits through the mount"
edits "$ref"
same "offline, after the edits"
t_ok $([ -e "$mnt/big/f005000x0600" ] && [ ! -e "$mnt/big/f007100" ] && [ -e "$mnt/big/r009050" ] && echo 0 || echo 1) \
	"offline lookups: a created, an unlinked and a renamed name"

# kill -9 of cairnd and of the server, then a disconnected start.
cairnd_kill9 "$mnt"
vold_kill9
cairnd_mount "$mnt" "$cache" bo "$T_DIR/tok" --fetch-timeout 1s ||
	{ t_ok 1 "a disconnected start after kill -9"; t_done; }
same "after kill -9 and a disconnected start (the listing from its pages)"
grep -q "dropping damaged" "$T_DIR"/cairnd-mnt.log &&
	t_ok 1 "no listing was found damaged" || t_ok 0 "no listing was found damaged"

# The server back: reconnect, replay, and the server has it all.
vold_restart || exit 99
"$FS" reconnect -m "$mnt" >/dev/null 2>&1
ok=1
for _ in $(seq 1 600); do
	st=$("$FS" status --json -m "$mnt" 2>/dev/null)
	if [ "$(echo "$st" | jget mode)" = connected ] &&
		[ "$(echo "$st" | jget replay_pending)" = 0 ]; then
		ok=0
		break
	fi
	sleep 0.2
done
t_ok $ok "reconnected and the replay log drained"
same "after the replay"
cairnd_umount "$mnt"
cairnd_mount "$mnt" "$T_DIR/cache2" bo "$T_DIR/tok" || exit 1
same "a fresh mount on an empty cache"
cairnd_umount "$mnt"
t_done
