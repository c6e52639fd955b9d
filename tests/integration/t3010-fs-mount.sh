#!/bin/sh
# t3010-fs-mount.sh - fs(1) against a real mount (cairn-vold + cairnd):
# getcacheparms, examine, whereis, pin/pins/unpin (including "does not
# fit" and pins surviving a restart), flush (pinned files come back),
# flushmeta, setcachesize (refused below the pinned bytes), status, listvol,
# checkservers, and permissions: uid 65534 may query and examine what it
# can read, but not pin a file it cannot read, nor change the cache size.
#
# Written against the handler contract in doc/control.md. Until cairnd
# serves the control socket and implements GETCACHEPARMS, it skips (77).
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
t_need_fuse
t_timeout 240
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

src=$T_DIR/src
mkdir -p "$src/data" "$src/other"
head -c $((600 * 1024)) /dev/urandom >"$src/data/a.bin"   # 3 chunks
head -c $((300 * 1024)) /dev/urandom >"$src/data/b.bin"   # 2 chunks
echo "small" >"$src/data/c.txt"
head -c $((20 * 1024 * 1024)) /dev/urandom >"$src/other/big.bin"
echo "for root only" >"$src/secret.txt"
chmod 0600 "$src/secret.txt"
chmod 0755 "$src/data" "$src/other"
chmod 0644 "$src/data/a.bin" "$src/data/b.bin" "$src/data/c.txt"

vold_start || exit 99
vos init >/dev/null 2>&1
vos import home "$src" >"$T_DIR/import.log" 2>&1 || { cat "$T_DIR/import.log"; exit 99; }
make_token home rw "$T_DIR/tok"
mnt=$T_DIR/mnt
cairnd_mount "$mnt" "$T_DIR/cache" home "$T_DIR/tok" --cache-size 16M || exit 1

# Skip until cairnd serves the socket and implements the handlers.
"$FS" getcacheparms -m "$mnt" --json >"$T_DIR/gcp.json" 2>"$T_DIR/gcp.err"
rc=$?
if [ "$rc" = 69 ]; then
	echo "# SKIP: cairnd's control socket does not answer GETCACHEPARMS yet: $(cat "$T_DIR/gcp.err")"
	exit 77
fi

# jq-free JSON field reader: jget FILE KEY [INDEX-KEY...]
jget() {
	python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    d = d[int(k)] if isinstance(d, list) else d.get(k)
    if d is None: break
print(json.dumps(d) if isinstance(d, (dict, list, bool)) or d is None else d)' "$@"
}
fsj() { # OUT-FILE ARGS...: fs --json into a file, return its exit code
	out=$1; shift
	"$FS" "$@" --json >"$T_DIR/$out" 2>"$T_DIR/$out.err"
}
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

t_is "$rc" 0 "getcacheparms answers"
t_is "$(jget "$T_DIR/gcp.json" bytes_limit)" $((16 * 1024 * 1024)) "the limit is --cache-size"
t_is "$(jget "$T_DIR/gcp.json" chunk_size)" 262144 "chunk size 256 KiB"
"$FS" getcacheparms -m "$mnt" >"$T_DIR/gcp.txt" 2>&1
t_check "human getcacheparms shows used and hit rate" grep -q "hit rate" "$T_DIR/gcp.txt"

fsj ex1 examine "$mnt/data/a.bin"
t_is "$?" 0 "examine a file"
t_is "$(jget "$T_DIR/ex1" 0 size)" $((600 * 1024)) "examine: size"
t_is "$(jget "$T_DIR/ex1" 0 chunks_total)" 3 "examine: 3 chunks"
t_is "$(jget "$T_DIR/ex1" 0 chunks_cached)" 0 "examine: none cached before a read"
t_is "$(jget "$T_DIR/ex1" 0 pinned)" false "examine: not pinned"
t_is "$(jget "$T_DIR/ex1" 0 volume)" home "examine: volume"
t_check "examine: a FID" test "$(jget "$T_DIR/ex1" 0 fid)" != null
fsj wh whereis "$mnt/data"
t_is "$?" 0 "whereis"
t_is "$(jget "$T_DIR/wh" 0 volume)" home "whereis: volume"
t_check "whereis: the server URL" grep -q "127.0.0.1:$VOLD_PORT" "$T_DIR/wh"

# --- pin -------------------------------------------------------------
# (t3020-fs-pin.sh tests pins in depth.)
"$FS" pin -r "$mnt/data" >"$T_DIR/pin.out" 2>"$T_DIR/pin.err"
t_is "$?" 0 "pin -r data"
t_check "pin prints a summary" grep -q "pinned $mnt/data" "$T_DIR/pin.out"
fsj ex2 examine "$mnt/data/a.bin" "$mnt/data/b.bin"
t_is "$(jget "$T_DIR/ex2" 0 chunks_cached)/$(jget "$T_DIR/ex2" 0 pinned)" "3/true" \
	"a.bin: every chunk cached, pinned"
t_is "$(jget "$T_DIR/ex2" 1 chunks_cached)/$(jget "$T_DIR/ex2" 1 pinned)" "2/true" \
	"b.bin: every chunk cached, pinned"
fsj pins pins -m "$mnt"
t_is "$?" 0 "pins"
t_is "$(jget "$T_DIR/pins" bytes_missing)" 0 "pins: nothing missing"
t_is "$(jget "$T_DIR/pins" pins 0 path)" data "pins: lists data"
t_is "$(jget "$T_DIR/pins" pins 0 recursive)" true "pins: recursive"
pinned=$(jget "$T_DIR/pins" bytes_pinned)
t_check "pins: bytes pinned cover a.bin and b.bin" test "$pinned" -ge $((900 * 1024))

# Pinned data is there without the server.
vold_stop
t_check "pinned file readable with the server down" cmp "$src/data/a.bin" "$mnt/data/a.bin"
vold_restart || exit 99

"$FS" pin "$mnt/other/big.bin" >/dev/null 2>"$T_DIR/big.err"
t_is "$?" 73 "pin that cannot fit is refused (exit 73)"
t_check "and says by how much" grep -q "short by" "$T_DIR/big.err"
fsj ex4 examine "$mnt/other/big.bin"
t_is "$(jget "$T_DIR/ex4" 0 pinned)" false "nothing was pinned"

# --- setcachesize --------------------------------------------------------
"$FS" setcachesize -m "$mnt" 512K >/dev/null 2>"$T_DIR/scs.err"
t_is "$?" 73 "setcachesize below the pinned bytes is refused"
"$FS" setcachesize -m "$mnt" 32M >/dev/null 2>&1
t_is "$?" 0 "setcachesize 32M"
fsj gcp2 getcacheparms -m "$mnt"
t_is "$(jget "$T_DIR/gcp2" bytes_limit)" $((32 * 1024 * 1024)) "applied at once"
"$FS" setcachesize -m "$mnt" 16M >/dev/null 2>&1

# --- flush ----------------------------------------------------------------
cat "$mnt/data/c.txt" >/dev/null
"$FS" unpin -r "$mnt/data" >/dev/null 2>&1
t_is "$?" 0 "unpin -r data"
fsj pins2 pins -m "$mnt"
t_is "$(jget "$T_DIR/pins2" pins)" "[]" "no pins left"
fsj ex5 examine "$mnt/data/a.bin"
t_is "$(jget "$T_DIR/ex5" 0 pinned)/$(jget "$T_DIR/ex5" 0 chunks_cached)" "false/3" \
	"unpinned data stays cached"
"$FS" flush "$mnt/data/a.bin" >/dev/null 2>&1
t_is "$?" 0 "flush a.bin"
fsj ex6 examine "$mnt/data/a.bin"
t_is "$(jget "$T_DIR/ex6" 0 chunks_cached)" 0 "flushed: no chunk cached"
t_check "flushed file reads back right" cmp "$src/data/a.bin" "$mnt/data/a.bin"

"$FS" pin "$mnt/data/b.bin" >/dev/null 2>&1
"$FS" flush "$mnt/data/b.bin" >/dev/null 2>&1
t_is "$?" 0 "flush a pinned file"
refetched() {
	"$FS" examine --json "$mnt/data/b.bin" >"$T_DIR/ex7" 2>/dev/null &&
		[ "$(jget "$T_DIR/ex7" 0 chunks_cached)" = 2 ]
}
t_check "a flushed pinned file is fetched again" wait_for 10 refetched
"$FS" flushmeta "$mnt/data" >/dev/null 2>&1
t_is "$?" 0 "flushmeta"
t_check "listing after flushmeta" ls "$mnt/data/c.txt"

cat "$mnt/data/a.bin" >/dev/null
"$FS" flushvolume -m "$mnt" >/dev/null 2>"$T_DIR/fv.err"
t_is "$?" 0 "flushvolume"
fsj ex9 examine "$mnt/data/a.bin"
t_is "$(jget "$T_DIR/ex9" 0 chunks_cached)" 0 "flushvolume: no chunk of a.bin cached"
t_check "a.bin reads back right after flushvolume" cmp "$src/data/a.bin" "$mnt/data/a.bin"
t_check "flushvolume: the pinned b.bin is fetched again" wait_for 10 refetched
t_check "b.bin reads back right after flushvolume" cmp "$src/data/b.bin" "$mnt/data/b.bin"

# --- status, listvol, checkservers ------------------------------------------
fsj st status -m "$mnt"
t_is "$?" 0 "status"
t_is "$(jget "$T_DIR/st" mode)" connected "status: connected"
t_is "$(jget "$T_DIR/st" replay_pending)" 0 "status: nothing to replay"
fsj lv listvol -m "$mnt"
t_is "$?" 0 "listvol"
t_is "$(jget "$T_DIR/lv" volumes 0 name)" home "listvol: home"
"$FS" listvol >"$T_DIR/lv.txt" 2>&1
t_check "listvol without -m finds the mount" grep -q "home" "$T_DIR/lv.txt"
fsj cs checkservers -m "$mnt"
t_is "$?" 0 "checkservers"
t_is "$(jget "$T_DIR/cs" servers 0 up)" true "checkservers: up"

# --- permissions -------------------------------------------------------------
if nobody test -x "$mnt/data"; then
	nobody "$FS" getcacheparms -m "$mnt" >/dev/null 2>&1
	t_is "$?" 0 "uid 65534 may query the cache"
	nobody "$FS" examine "$mnt/data/a.bin" >/dev/null 2>&1
	t_is "$?" 0 "uid 65534 may examine a readable file"
	nobody "$FS" setcachesize -m "$mnt" 64M >/dev/null 2>"$T_DIR/perm.err"
	t_is "$?" 77 "uid 65534 may not setcachesize"
	t_check "and is told so" grep -q "root" "$T_DIR/perm.err"
	nobody "$FS" flushall -m "$mnt" >/dev/null 2>&1
	t_is "$?" 77 "uid 65534 may not flushall"
	# realpath itself fails on an unreadable file? No: only search
	# permission on the directory is needed, which 65534 has.
	nobody "$FS" examine "$mnt/secret.txt" >/dev/null 2>&1
	t_is "$?" 77 "uid 65534 may not examine a file it cannot read"
	nobody "$FS" pin "$mnt/secret.txt" >/dev/null 2>"$T_DIR/perm2.err"
	t_is "$?" 77 "uid 65534 may not pin a file it cannot read"
	fsj ex8 examine "$mnt/secret.txt"
	t_is "$(jget "$T_DIR/ex8" 0 pinned)" false "and nothing was pinned"
else
	echo "# $mnt is not searchable by uid 65534: permission checks skipped"
fi

# --- pins survive a restart ----------------------------------------------------
"$FS" pin "$mnt/data/c.txt" >/dev/null 2>&1
t_is "$?" 0 "pin c.txt"
sock=$(sed -n "s/.*control socket at '\(.*\)'\$/\1/p" "$T_DIR/cairnd-mnt.log" | tail -n 1)
t_check "cairnd logs its control socket" test -S "$sock"
cairnd_umount "$mnt"
t_check "the control socket is removed at exit" test ! -S "$sock"
cairnd_mount "$mnt" "$T_DIR/cache" home "$T_DIR/tok" --cache-size 16M || exit 1
fsj pins3 pins -m "$mnt"
t_check "pins survive a restart" grep -q '"data/c.txt"' "$T_DIR/pins3"
fsj gcp3 getcacheparms -m "$mnt"
t_is "$?" 0 "the control socket answers again after a restart"

t_done
