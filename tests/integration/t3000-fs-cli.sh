#!/bin/sh
# t3000-fs-cli.sh - fs(1) without a mount: help, usage errors, paths that
# are not on a cairn mount, a missing or dead control socket, and - against
# a tiny mock cairnd in Python, when python3 is there - what fs sends
# (mount-relative paths, progress flag) and how it renders replies and
# errors into exit codes (man/fs.1 EXIT STATUS).
#
# Needs no root and no /dev/fuse: mounts are faked with $CAIRN_MOUNTINFO.
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
t_timeout 120

[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

# fs_rc EXPECTED-RC DESC ARGS...: run fs, keep stdout/stderr, check the rc.
fs_rc() {
	want=$1 desc=$2
	shift 2
	"$FS" "$@" >"$T_DIR/out" 2>"$T_DIR/err"
	got=$?
	t_is "$got" "$want" "$desc (exit $want)"
	[ "$got" = "$want" ] || { echo "#   stdout: $(head -c 300 "$T_DIR/out")"; echo "#   stderr: $(head -c 300 "$T_DIR/err")"; }
}
err_has() { # TEXT DESC
	if grep -qF -- "$1" "$T_DIR/err"; then t_ok 0 "$2"; else
		t_ok 1 "$2"; echo "#   want in stderr: $1"; echo "#   stderr: $(cat "$T_DIR/err")"; fi
}
out_has() {
	if grep -qF -- "$1" "$T_DIR/out"; then t_ok 0 "$2"; else
		t_ok 1 "$2"; echo "#   want in stdout: $1"; echo "#   stdout: $(cat "$T_DIR/out")"; fi
}
sock_for() { # MOUNTPOINT -> default socket path
	printf '/run/cairn/ctl-%s.sock' "$(printf %s "$1" | sha256sum | cut -c1-16)"
}

CMDS="pin unpin pins flush flushvolume flushall flushmeta getcacheparms
setcachesize examine whereis listvol checkservers status disconnect reconnect
metrics sync mkmount lsmount rmmount help version"

# --- help and usage ---------------------------------------------------
fs_rc 0 "fs --help" --help
missing=
for c in $CMDS; do
	grep -q "^  $c " "$T_DIR/out" || missing="$missing $c"
done
t_is "$missing" "" "fs --help lists every command"
fs_rc 0 "fs help" help
out_has "checkservers" "fs help lists commands"
fs_rc 64 "fs without a command"
fs_rc 0 "fs --version" --version
out_has "fs (cairn) " "version line"
fs_rc 0 "fs version --json" version --json
out_has '"protocol": 1' "version JSON names the protocol"
for c in $CMDS; do
	fs_rc 0 "fs $c --help" "$c" --help
	t_is "$(head -1 "$T_DIR/out" | cut -d' ' -f1-3)" "usage: fs $c" \
		"fs $c --help starts with its usage"
done
fs_rc 0 "fs help pin" help pin
out_has "usage: fs pin [-r]" "fs help pin shows pin's synopsis"
fs_rc 64 "unknown subcommand" frobnicate
err_has "fs: 'frobnicate' is not an fs command; see 'fs help'" "unknown subcommand message"
fs_rc 64 "fs help of an unknown command" help frobnicate
fs_rc 64 "unknown option" pin --frob /tmp
err_has "unknown option '--frob'" "unknown option named"
fs_rc 64 "pin without a path" pin
err_has "no path given" "pin without a path says so"
fs_rc 64 "-r where it means nothing" flush -r /tmp
fs_rc 64 "mkmount without a volume" mkmount /tmp/x
err_has "give a directory to make and a volume" "mkmount without a volume says so"
fs_rc 64 "mkmount with three arguments" mkmount /tmp/x v w
fs_rc 64 "lsmount without a path" lsmount
fs_rc 64 "rmmount without a path" rmmount
fs_rc 64 "setcachesize without a size" setcachesize
fs_rc 64 "setcachesize with a bad size" setcachesize 12Q
err_has "'12Q' is not a size" "bad size named"
fs_rc 64 "status with an argument" status /tmp
fs_rc 64 "-s without its argument" status -s
fs_rc 64 "pins with two paths" pins /a /b
fs_rc 64 "sync with two paths" sync /a /b
fs_rc 64 "setpolicy with nothing to set" setpolicy
fs_rc 64 "--write-mode needs a value" setpolicy --write-mode
fs_rc 64 "--write-mode only for setpolicy" status --write-mode sync
err_has "option '--write-mode' does not apply to status" "the option is named"
fs_rc 64 "--writeback-delay only for setpolicy" sync --writeback-delay 1s

# --- paths that are not on a cairn mount --------------------------------
fs_rc 65 "a path outside any cairn mount" pin /tmp
err_has "fs: /tmp is not on a cairn mount" "not-on-a-cairn-mount message"
mkdir -p "$T_DIR/plain"
fs_rc 65 "examine outside any cairn mount" examine "$T_DIR/plain"
fs_rc 66 "a path that does not exist" pin "$T_DIR/nope"
err_has "$T_DIR/nope: No such file or directory" "missing path message"

# A fake mount table: / is ext4, $T_DIR/my mnt (with a space) is cairn.
MNT="$T_DIR/my mnt"
mkdir -p "$MNT/sub"
echo data >"$MNT/sub/file"
ln -s "$MNT/sub" "$T_DIR/link"
ESC=$(printf %s "$MNT" | sed 's/ /\\040/g')
MI=$T_DIR/mountinfo
printf '%s\n' "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw" \
	"90 22 0:50 / $ESC rw,nosuid,nodev - fuse.cairn cairn:home rw,user_id=0" >"$MI"
export CAIRN_MOUNTINFO="$MI"
SOCK=$(sock_for "$MNT")

fs_rc 69 "socket missing" examine "$MNT/sub/file"
err_has "fs: cannot reach cairnd for $MNT: no control socket at $SOCK (is cairnd running?)" \
	"socket-missing message names the mount and the socket"
fs_rc 69 "socket missing, pathless command uses the only mount" getcacheparms
err_has "no control socket at $SOCK" "getcacheparms found the mount"
fs_rc 69 "-s names a missing socket" status -s "$T_DIR/none.sock"
err_has "fs: cannot reach cairnd: no control socket at $T_DIR/none.sock (is cairnd running?)" "-s message"
CAIRN_CTL_SOCKET="$T_DIR/env.sock" "$FS" status >/dev/null 2>"$T_DIR/err"
t_is "$?" 69 "\$CAIRN_CTL_SOCKET is used (exit 69)"
err_has "$T_DIR/env.sock" "\$CAIRN_CTL_SOCKET named in the message"
fs_rc 65 "-m that is not a cairn mount" status -m "$T_DIR/plain"
err_has "is not a cairn mount" "-m message"
fs_rc 65 "a plain dir next to the mount" pin "$T_DIR/plain"

printf '%s\n' "22 1 8:1 / / rw - ext4 /dev/sda1 rw" >"$T_DIR/mi-none"
CAIRN_MOUNTINFO="$T_DIR/mi-none" "$FS" getcacheparms >/dev/null 2>"$T_DIR/err"
t_is "$?" 69 "no cairn mount at all (exit 69)"
err_has "no cairn mount found" "no-mount message"
CAIRN_MOUNTINFO="$T_DIR/mi-none" "$FS" listvol >"$T_DIR/out" 2>&1
t_is "$?" 0 "listvol with no mounts is not an error"
out_has "no cairn mounts" "listvol says there are none"
mkdir -p "$T_DIR/b"
cp "$MI" "$T_DIR/mi-two"
echo "91 22 0:51 / $T_DIR/b rw - fuse.cairn cairn:work rw" >>"$T_DIR/mi-two"
CAIRN_MOUNTINFO="$T_DIR/mi-two" "$FS" status >/dev/null 2>"$T_DIR/err"
t_is "$?" 64 "several mounts and no -m (exit 64)"
err_has "several cairn mounts" "several-mounts message"
err_has "(cairn:work)" "the message lists the mounts"
# A non-cairn mount on top of a cairn directory hides it.
printf "%s\n" "92 90 0:52 / $ESC/sub rw - tmpfs tmpfs rw" >"$T_DIR/mi-over"
cat "$MI" "$T_DIR/mi-over" >"$T_DIR/mi-over2"
CAIRN_MOUNTINFO="$T_DIR/mi-over2" "$FS" examine "$MNT/sub/file" >/dev/null 2>"$T_DIR/err"
t_is "$?" 65 "a tmpfs mounted inside the cairn mount is not cairn"

# Nobody listens on a stale socket file.
if command -v python3 >/dev/null; then
	STALE=$T_DIR/stale.sock
	python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.close()' "$STALE"
	fs_rc 69 "stale socket" status -s "$STALE"
	err_has "nobody listens on $STALE" "stale-socket message"
fi

# --- against a mock cairnd ---------------------------------------------
if ! command -v python3 >/dev/null; then
	echo "# python3 missing: mock-cairnd checks skipped"
	t_done
fi
MOCK=$T_DIR/mock.sock
cat >"$T_DIR/mock.py" <<'EOF'
import json, os, socket, struct, sys
path, modef, log = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX)
s.bind(path)
s.listen(8)
H = '!IHHIII'
def send(c, t, obj, rid):
    b = json.dumps(obj).encode()
    c.sendall(struct.pack(H, 0x43524e43, 1, t, 0, len(b), rid) + b)
def err(c, rid, e, name, msg, **kw):
    d = {"errno": e, "error": name, "message": msg}
    d.update(kw)
    send(c, 0x8002, d, rid)
while True:
    c, _ = s.accept()
    try:
        h = c.recv(20, socket.MSG_WAITALL)
        magic, ver, typ, flags, ln, rid = struct.unpack(H, h)
        body = c.recv(ln, socket.MSG_WAITALL) if ln else b'{}'
        with open(log, 'a') as f:
            f.write(json.dumps({"type": typ, "flags": flags,
                                "args": json.loads(body)}, sort_keys=True) + "\n")
        mode = open(modef).read().strip()
        if mode == 'ok':
            if typ == 1:
                for i in range(3):
                    send(c, 0x8003, {"bytes_done": i * 100, "bytes_total": 300,
                                     "files_done": i, "files_total": 3}, rid)
                send(c, 0x8001, {"bytes": 300, "files": 3, "bytes_fetched": 300}, rid)
            elif typ == 7:
                send(c, 0x8001, {"bytes_used": 1 << 30, "bytes_limit": 4 << 30,
                                 "files_used": 10, "files_limit": 1000,
                                 "chunk_size": 262144, "pinned_bytes": 0,
                                 "dirty_bytes": 0, "hits": 9, "misses": 1,
                                 "evictions": 2}, rid)
            else:
                send(c, 0x8001, {"fid": "1.00", "volume": "home", "dv": 3,
                                 "size": 5, "chunks_cached": 1,
                                 "chunks_total": 1, "type": "file"}, rid)
        elif mode == 'enosys':
            err(c, rid, 38, "ENOSYS", "'x' is not implemented by this cairnd")
        elif mode == 'eacces':
            err(c, rid, 13, "EACCES", "permission denied")
        elif mode == 'eperm':
            err(c, rid, 1, "EPERM", "'setcachesize' is a cache-wide operation: only root may do it")
        elif mode == 'enoent':
            err(c, rid, 2, "ENOENT", "no such file or directory")
        elif mode == 'enospc':
            err(c, rid, 28, "ENOSPC", "the pinned set does not fit in the cache",
                bytes_needed=3 << 30, bytes_available=1 << 30)
        elif mode == 'eio':
            err(c, rid, 5, "EIO", "input/output error")
        elif mode == 'garbage':
            c.sendall(b'HTTP/1.1 400 Bad Request\r\n\r\n' + b'x' * 100)
        elif mode == 'wrongid':
            send(c, 0x8001, {}, rid + 1)
        elif mode == 'huge':
            c.sendall(struct.pack(H, 0x43524e43, 1, 0x8001, 0, (1 << 20) + 1, rid))
        elif mode == 'notjson':
            c.sendall(struct.pack(H, 0x43524e43, 1, 0x8001, 0, 3, rid) + b'{x}')
        # mode 'close': say nothing
    except Exception as e:
        print(e, file=sys.stderr)
    c.close()
EOF
echo ok >"$T_DIR/mode"
python3 "$T_DIR/mock.py" "$MOCK" "$T_DIR/mode" "$T_DIR/req.log" 2>>"$T_DIR/mock.log" &
t_track_pid $!
wait_for 10 test -S "$MOCK" || { echo "# mock cairnd did not start"; exit 99; }
export CAIRN_CTL_SOCKET="$MOCK"
mode() { echo "$1" >"$T_DIR/mode"; : >"$T_DIR/req.log"; }

mode ok
fs_rc 0 "examine through the mock" examine "$MNT/sub/file"
out_has "chunks cached   1 of 1" "examine renders aligned fields"
t_is "$(cat "$T_DIR/req.log")" '{"args": {"path": "sub/file"}, "flags": 0, "type": 9}' \
	"fs sends the mount-relative path"
mode ok
fs_rc 0 "a path through a symlink" examine "$T_DIR/link/file"
t_is "$(cat "$T_DIR/req.log")" '{"args": {"path": "sub/file"}, "flags": 0, "type": 9}' \
	"symlinks are resolved before the mount is found"
mode ok
fs_rc 0 "the mount root" examine "$MNT"
t_is "$(cat "$T_DIR/req.log")" '{"args": {"path": "."}, "flags": 0, "type": 9}' \
	"the mount root is \".\""
mode ok
(cd "$MNT/sub" && "$FS" examine file >/dev/null 2>&1)
t_is "$(cat "$T_DIR/req.log")" '{"args": {"path": "sub/file"}, "flags": 0, "type": 9}' \
	"a relative path is taken from the current directory"
mode ok
fs_rc 0 "pin -r" pin -r "$MNT/sub"
t_is "$(cat "$T_DIR/req.log")" '{"args": {"path": "sub", "recursive": true}, "flags": 1, "type": 1}' \
	"pin -r asks for progress, sends recursive"
out_has "pinned $MNT/sub (recursive): 300 B in 3 files" "pin result line"
err_has "pin $MNT/sub: " "progress lines on a non-terminal stderr"
mode ok
fs_rc 0 "pin -q" pin -q "$MNT/sub"
t_is "$(cat "$T_DIR/req.log")" '{"args": {"path": "sub", "recursive": false}, "flags": 0, "type": 1}' \
	"pin -q asks for no progress"
mode ok
fs_rc 0 "pin --json" pin --json "$MNT/sub"
out_has '"ok": true' "JSON result marks success"
out_has "\"path\": \"$MNT/sub\"" "JSON result names the path"
out_has '"bytes_fetched": 300' "JSON result carries the reply"
t_ok "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if isinstance(d,list) and len(d)==1 else 1)' "$T_DIR/out" && echo 0 || echo 1)" \
	"pin --json prints a JSON array"
mode ok
fs_rc 0 "getcacheparms" getcacheparms
out_has "used            1.0 GiB of 4.0 GiB (25%)" "getcacheparms: used of limit"
out_has "hit rate        90.0% (9 hits, 1 misses)" "getcacheparms: hit rate"
mode ok
fs_rc 0 "getcacheparms --json" getcacheparms --json
out_has '"chunk_size": 262144' "getcacheparms JSON"
mode ok
fs_rc 0 "setcachesize 2G" setcachesize 2G
t_is "$(cat "$T_DIR/req.log")" '{"args": {"bytes": 2147483648}, "flags": 0, "type": 8}' \
	"setcachesize sends bytes"

mode enosys
fs_rc 69 "cairnd without the handler" getcacheparms
err_has "fs: getcacheparms: 'x' is not implemented by this cairnd" "ENOSYS message"
mode eacces
fs_rc 77 "permission denied" pin "$MNT/sub/file"
err_has "fs: pin $MNT/sub/file: permission denied" "EACCES message names the path"
mode eperm
fs_rc 77 "root-only refused" setcachesize 1G
err_has "only root may do it" "EPERM message"
mode enoent
fs_rc 66 "cairnd says no such file" examine "$MNT/sub/file"
mode enospc
fs_rc 73 "pin does not fit" pin "$MNT/sub"
err_has "(needs 3.0 GiB, 1.0 GiB available: short by 2.0 GiB)" "says by how much"
mode eio
fs_rc 1 "other errors" flush "$MNT/sub/file"
mode enoent
"$FS" examine --json "$MNT/sub/file" >"$T_DIR/out" 2>/dev/null
out_has '"error": "ENOENT"' "JSON error element"
out_has '"ok": false' "JSON error marked"
mode garbage
fs_rc 70 "garbage reply" status
err_has "sent a malformed reply" "garbage message"
mode wrongid
fs_rc 70 "reply to another id" status
mode huge
fs_rc 70 "oversized reply" status
mode notjson
fs_rc 70 "reply that is not JSON" status
mode close
fs_rc 75 "cairnd closes without answering" status
err_has "closed the connection without an answer" "close message"
mode ok
fs_rc 1 "some paths fail" examine "$MNT/sub/file" "$T_DIR/nope"
mode ok
fs_rc 66 "all paths fail alike" examine "$T_DIR/nope" "$T_DIR/nope2"

t_done
