#!/usr/bin/env bash
# t2374-cm-list-binary: listings in binary pages (protocol 8, ?enc=bin;
# doc/protocol.md "Binary pages"). cairnd asks every page in binary; a
# relay (spoilproxy.py) between it and cairn-vold shows what went over
# the wire, lets the same directories be listed from JSON pages (the
# relay takes enc=bin out, as a server before protocol 8 ignores it),
# and spoils binary pages on their way: truncated, a byte too many, a
# count one too high, a name with '/', an unknown type, another
# directory's FID, a name given twice within a page and across pages,
# a page of more than 4,096 entries, a bad cursor, and a later page of
# another DV without a 410. Each spoiled listing fails the reader with
# EIO and "bad directory reply" in the log (another DV restarts the
# listing instead), nothing of it is kept, and the cached directory
# still serves; both encodings give the same `ls -l` and `stat`.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 240

src=$T_DIR/src
mkdir -p "$src/small"
t_mkfiles "$src/big" 5000 f || exit 99
t_mkfiles "$src/three" 8200 t || exit 99
python3 - "$src" <<'PY'
import os, sys
d = sys.argv[1]
for i in range(5000):
    os.chmod(os.path.join(d, "big", "f%05d" % i), 0o600 + (i % 64))
os.symlink("f00001", os.path.join(d, "big", "link"))
os.mkfifo(os.path.join(d, "big", "fifo"))
os.mkdir(os.path.join(d, "big", "sub"))
PY
echo hi >"$src/small/a"
vold_start || exit 99
vos init >/dev/null 2>&1
vos import lb "$src" >/dev/null || exit 99
make_token lb ro "$T_DIR/tok"

echo good >"$T_DIR/mode"
cat >"$T_DIR/spoil.py" <<'PY'
import struct
SEEN = "@SEEN@"
HEAD, ATTR = 157, 85   # PROTO_DIRB_HEAD_LEN, PROTO_DIRB_ATTR_LEN
seen = {}
def spoil(mode, status, headers, body):
    return headers, body, len(body), 0
def upstream_path(mode, path):
    return path.replace("&enc=bin", "") if "json" in mode else path
def ents(body):
    """(offset, name length) of every entry of a binary page"""
    out, p = [], HEAD
    for _ in range(struct.unpack_from("<I", body, 4)[0]):
        out.append((p, body[p]))
        p += 1 + body[p] + ATTR
    return out
def spoil_dir(mode, path, body):
    m = mode[0] if mode else "good"
    first = "cursor=" not in path
    if not body.startswith(b"CDP1"):
        return body
    with open(SEEN, "a") as f:
        # every word of the mode: a request of the mode before a switch
        # may end after it (a prefetch of the mount before)
        f.write("%s %d %d\n" % ("+".join(mode) or "good", len(body),
                                struct.unpack_from("<I", body, 4)[0]))
    e = ents(body)
    if first and e:
        seen["first"] = body[e[0][0]:e[0][0] + 1 + e[0][1]]
    b = bytearray(body)
    if m == "trunc":
        return body[:len(body) // 2]
    if m == "trail":
        return body + b"\0"
    if m == "count":
        struct.pack_into("<I", b, 4, len(e) + 1)
    elif m == "slash" and e:
        b[e[0][0] + 1] = ord("/")
    elif m == "badtype" and e:
        b[e[0][0] + 1 + e[0][1] + 20] = 0
    elif m == "otherdir":
        b[72 + 4] ^= 1
    elif m == "dupin" and len(e) > 1 and e[0][1] == e[1][1]:
        b[e[1][0]:e[1][0] + 1 + e[1][1]] = body[e[0][0]:e[0][0] + 1 + e[0][1]]
    elif m == "dupacross" and not first and e and seen.get("first"):
        if len(seen["first"]) == 1 + e[0][1]:
            b[e[0][0]:e[0][0] + 1 + e[0][1]] = seen["first"]
    elif m == "oversize" and len(e) > 1:
        b += body[HEAD:]
        struct.pack_into("<I", b, 4, 2 * len(e))
    elif m == "badcursor" and body[8]:
        b[9] = ord("/")
    elif m == "otherdv" and not first:
        dv = struct.unpack_from("<Q", body, 72 + 53)[0]
        struct.pack_into("<Q", b, 72 + 53, dv + 1)
    return bytes(b)
PY
sed -i "s|@SEEN@|$T_DIR/seen|" "$T_DIR/spoil.py"
: >"$T_DIR/seen"
spoilproxy_start "$T_DIR/spoil.py" || exit 99
mnt=$T_DIR/mnt
log=$T_DIR/cairnd-mnt.log
remount() { # a fresh cache: every listing asked again
	cairnd_umount "$mnt" 2>/dev/null
	rm -rf "$T_DIR/cache"
	cairnd_mount "$mnt" "$T_DIR/cache" lb "$T_DIR/tok" --fetch-timeout 5s
}
remount || exit 1

# The same directory listed from binary pages and from JSON pages.
ls -l --time-style=full-iso "$mnt/big" >"$T_DIR/ls.bin" 2>&1
stat -c '%n %F %a %s %Y %i' "$mnt/big/f00013" "$mnt/big/link" "$mnt/big/fifo" \
	"$mnt/big/sub" >"$T_DIR/stat.bin" 2>&1
# big's 5,003 entries are a page of 4,096 and one of 907.
t_ok "$(grep -q '^good [0-9]* 4096$' "$T_DIR/seen" && grep -q '^good [0-9]* 907$' "$T_DIR/seen" &&
	echo 0 || echo 1)" "binary: the two pages of big came as binary pages"
t_ok "$(grep -q 'enc=bin' "$T_DIR/proxy.req.dir" && echo 0 || echo 1)" "cairnd asked with enc=bin"
echo "good json" >"$T_DIR/mode"
: >"$T_DIR/seen"
remount || exit 1
ls -l --time-style=full-iso "$mnt/big" >"$T_DIR/ls.json" 2>&1
stat -c '%n %F %a %s %Y %i' "$mnt/big/f00013" "$mnt/big/link" "$mnt/big/fifo" \
	"$mnt/big/sub" >"$T_DIR/stat.json" 2>&1
t_is "$(grep -c '^good+json ' "$T_DIR/seen")" 0 "json: no binary page came"
t_is "$(grep -c '^-' "$T_DIR/ls.bin")/$(grep -c '^[lpd]' "$T_DIR/ls.bin")" 5000/3 \
	"binary: ls -l shows 5,000 files, a symlink, a fifo and a directory"
t_ok "$(cmp -s "$T_DIR/ls.bin" "$T_DIR/ls.json" && echo 0 || echo 1)" \
	"ls -l from binary pages = from JSON pages"
t_ok "$(cmp -s "$T_DIR/stat.bin" "$T_DIR/stat.json" && echo 0 || echo 1)" \
	"stat of a file, a symlink, a fifo, a directory: the same"
t_is "$(stat -c '%a %s' "$mnt/big/f00013")" "615 6" \
	"and right (mode 0615, 6 bytes)"
t_is "$(readlink "$mnt/big/link")" f00001 "the symlink reads"

echo good >"$T_DIR/mode"
remount || exit 1
t_is "$(ls "$mnt/small" | tr '\n' ' ')" "a " "a small directory lists (cached now)"
for mode in trunc trail count slash badtype otherdir dupin dupacross oversize badcursor; do
	echo "$mode" >"$T_DIR/mode"
	before=$(grep -c "bad directory reply" "$log")
	out=$(ls -f "$mnt/big" 2>&1 >/dev/null)
	rc=$?
	t_ok "$([ "$rc" != 0 ] && echo "$out" | grep -q "Input/output error" && echo 0 || echo 1)" \
		"$mode: ls gets EIO"
	t_ok "$([ "$(grep -c "bad directory reply" "$log")" -gt "$before" ] && echo 0 || echo 1)" \
		"$mode: cairnd logs a bad directory reply"
	t_is "$(cat "$mnt/small/a")" hi "$mode: the cached directory still serves"
done

# A later page of another DV with a 200: the listing starts over (after
# DIR_RESTARTS, the whole listing in one JSON reply) and lists.
echo otherdv >"$T_DIR/mode"
remount || exit 1
before=$(grep -c "bad directory reply" "$log")
t_is "$(ls -f "$mnt/three" | grep -c '^t')" 8200 "otherdv: restarted; every entry"
t_is "$(grep -c "bad directory reply" "$log")" "$before" "otherdv: not taken for a bad reply"

# Good again: every entry, once.
echo good >"$T_DIR/mode"
remount || exit 1
ls -f "$mnt/three" >"$T_DIR/three.out"
t_is "$(grep -c '^t' "$T_DIR/three.out")/$(grep '^t' "$T_DIR/three.out" | sort -u | wc -l)" 8200/8200 \
	"after the relay behaves: three pages, every entry once"
cairnd_umount "$mnt"
t_done
