#!/usr/bin/env bash
# t2010-cm-invalidate: a change made on the server through the protocol
# (store, create, unlink, setattr, setxattr) shows on a cairnd mount within
# one second, also for a file that is open and whose pages are cached.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 120

src=$T_DIR/src
mkdir -p "$src/sub"
echo "version one" >"$src/a.txt"
head -c $((600 * 1024)) /dev/urandom >"$src/big.bin"
echo "doomed" >"$src/sub/doomed.txt"
vold_start
vos init >/dev/null 2>&1
vos import inv "$src" >/dev/null || exit 99
make_token inv ro "$T_DIR/tok"
make_token inv rw "$T_DIR/rwtok"

# Server-side changes, by path, through the protocol (stage + op).
cat >"$T_DIR/srv.py" <<'PY'
import base64, json, os, sys, urllib.request, urllib.error
url, tok, vol = os.environ["VOLD_URL"], open(sys.argv[1]).read().strip(), sys.argv[2]
def req(method, path, body=None, ctype="application/json"):
    r = urllib.request.Request(url + path, data=body, method=method)
    r.add_header("Authorization", "Bearer " + tok)
    if body is not None:
        r.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(r, timeout=10) as f:
            return f.status, f.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
def root():
    return json.loads(req("GET", "/v1/vol/%s" % vol)[1])["root"]
def lookup(path):
    fid, attr = root(), None
    for comp in [c for c in path.split("/") if c]:
        d = json.loads(req("GET", "/v1/vol/%s/dir/%s" % (vol, fid))[1])
        e = [e for e in d["entries"] if e["name"] == comp][0]
        fid, attr = e["attr"]["fid"], e["attr"]
    return fid, attr
def op(o):
    o["opid"] = os.urandom(16).hex()
    st, b = req("POST", "/v1/vol/%s/op" % vol, json.dumps(o).encode())
    if st != 200:
        sys.exit("op %s: %d %s" % (o["op"], st, b))
a = sys.argv[3:]
if a[0] == "store":                       # PATH FILE
    fid, attr = lookup(a[1]); data = open(a[2], "rb").read()
    cs, tx, chunks = 262144, os.urandom(16).hex(), []
    for i in range(0, max(len(data), 1), cs):
        st, b = req("PUT", "/v1/vol/%s/stage/%s/%s/%d?size=%d" % (vol, fid, tx, i // cs, cs),
                    data[i:i + cs], "application/octet-stream")
        if st != 204:
            sys.exit("stage: %d %s" % (st, b))
        chunks.append(i // cs)
    op({"op": "store", "fid": fid, "base_dv": attr["dv"], "txid": tx,
        "chunk_size": cs, "size": len(data), "chunks": chunks})
elif a[0] == "create":                    # DIR NAME
    op({"op": "create", "parent": lookup(a[1])[0], "name": a[2], "type": "file",
        "mode": 0o644, "uid": 0, "gid": 0})
elif a[0] == "unlink":                    # DIR NAME
    op({"op": "unlink", "parent": lookup(a[1])[0], "name": a[2],
        "fid": lookup(a[1] + "/" + a[2])[0]})
elif a[0] == "chmod":                     # PATH OCTAL
    fid, attr = lookup(a[1])
    op({"op": "setattr", "fid": fid, "base_dv": attr["dv"], "mask": ["mode"],
        "mode": int(a[2], 8)})
elif a[0] == "setxattr":                  # PATH NAME VALUE
    fid, attr = lookup(a[1])
    op({"op": "setxattr", "fid": fid, "xname": a[2],
        "xvalue": base64.b64encode(a[3].encode()).decode(), "flags": []})
else:
    sys.exit("unknown command " + a[0])
PY
srv() { python3 "$T_DIR/srv.py" "$T_DIR/rwtok" inv "$@"; }

mnt=$T_DIR/mnt
cairnd_mount "$mnt" "$T_DIR/cache" inv "$T_DIR/tok" || exit 1
t_is "$(cat "$mnt/a.txt")" "version one" "initial content"
cmp -s "$src/big.bin" "$mnt/big.bin"
ls "$mnt/sub" >/dev/null

# A reader holds a.txt open with its pages cached; the server changes it.
mkfifo "$T_DIR/cmd"
python3 - "$mnt/a.txt" "$T_DIR/cmd" >"$T_DIR/holder.out" 2>&1 <<'PY' &
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
print("first:" + os.pread(fd, 100, 0).decode().strip(), flush=True)
with open(sys.argv[2]) as c:
    for line in c:
        print("again:" + os.pread(fd, 100, 0).decode().strip(), flush=True)
PY
holder=$!
t_track_pid "$holder"
exec 9>"$T_DIR/cmd"
wait_for 5 grep -q "first:version one" "$T_DIR/holder.out"
echo "version two, longer than one" >"$T_DIR/v2"
srv store /a.txt "$T_DIR/v2" || exit 99
t0=$(date +%s%N)
wait_for 1 sh -c "[ \"\$(cat '$mnt/a.txt')\" = 'version two, longer than one' ]"
t_ok $? "new content on a new open within 1 s"
echo go >&9
wait_for 1 grep -q "again:version two, longer than one" "$T_DIR/holder.out"
t_ok $? "new content through the fd held open within 1 s"
t1=$(date +%s%N)
echo "# store to visible: $(( (t1 - t0) / 1000000 )) ms"
exec 9>&-

head -c $((700 * 1024)) /dev/urandom >"$T_DIR/big2"
srv store /big.bin "$T_DIR/big2" || exit 99
wait_for 1 cmp -s "$T_DIR/big2" "$mnt/big.bin"
t_ok $? "a multi-chunk file changed and grew: new bytes within 1 s"

srv create /sub fresh.txt || exit 99
wait_for 1 test -e "$mnt/sub/fresh.txt"
t_ok $? "a created name appears within 1 s (negative entry dropped)"
wait_for 1 sh -c "ls '$mnt/sub' | grep -qx fresh.txt"
t_ok $? "and in the listing"

srv unlink /sub doomed.txt || exit 99
wait_for 1 sh -c "! test -e '$mnt/sub/doomed.txt'"
t_ok $? "an unlinked name disappears within 1 s"
wait_for 1 sh -c "! ls '$mnt/sub' | grep -q doomed"
t_ok $? "and from the listing"

srv chmod /a.txt 600 || exit 99
wait_for 1 sh -c "[ \"\$(stat -c %a '$mnt/a.txt')\" = 600 ]"
t_ok $? "a mode change shows within 1 s"

getfattr -d "$mnt/a.txt" >/dev/null 2>&1
srv setxattr /a.txt user.tag blue || exit 99
wait_for 1 sh -c "getfattr --only-values -n user.tag '$mnt/a.txt' 2>/dev/null | grep -qx blue"
t_ok $? "a new xattr shows within 1 s"

stats=$(getfattr --only-values -n cairn.stats "$mnt" 2>/dev/null)
ev=$(echo "$stats" | awk '$1 == "events" {print $2}')
t_ok "$([ "${ev:-0}" -ge 5 ] && echo 0 || echo 1)" "changes came as events ($ev)"
cairnd_umount "$mnt"
t_done
