#!/usr/bin/env bash
# t2371-cm-list-badreply: listing replies spoiled on their way (a relay,
# spoilproxy.py's spoil_dir, between cairnd and cairn-vold): a truncated
# page, bytes that are not JSON, an entry whose FID or type is wrong, an
# attribute object out of cairn-vold's layout but valid (the decoder's
# generic path: it must list), a name given twice within a page and
# across pages, a page of more than 4,096 entries, a bad cursor, a reply
# past the 64 MiB bound. Each spoiled listing fails the reader with EIO,
# cairnd says why in its log ("bad directory reply"), nothing of it is
# kept (a listing cached before still lists, the next good listing is
# whole and right), and cairnd goes on serving. A later page of another
# DV without a 410 restarts the listing on either decoding path
# (otherdv lists a directory of three pages, so the spoiled middle page
# takes the early path; otherdvgen is out of cairn-vold's layout).
# The relay asks for JSON pages (without enc=bin): t2374 does the same
# to binary pages (protocol 8).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 240

src=$T_DIR/src
mkdir -p "$src/small"
t_mkfiles "$src/big" 5000 f || exit 99
# Three pages: a later page that names a next one (the early path).
t_mkfiles "$src/three" 8200 t || exit 99
echo hi >"$src/small/a"
echo there >"$src/small/b"
vold_start || exit 99
vos init >/dev/null 2>&1
vos import lb "$src" >/dev/null || exit 99
make_token lb ro "$T_DIR/tok"

echo good >"$T_DIR/mode"
cat >"$T_DIR/spoil.py" <<'PY'
import json
seen = {}
def upstream_path(mode, path):
    # JSON pages, as a server before protocol 8 sends (t2374 spoils the
    # binary ones)
    return path.replace("&enc=bin", "")
def spoil(mode, status, headers, body):
    return headers, body, len(body), 0
def nth(body, what, n):
    i = -1
    for _ in range(n):
        i = body.find(what, i + 1)
        if i < 0:
            return -1
    return i
def spoil_dir(mode, path, body):
    m = mode[0] if mode else "good"
    first = "cursor=" not in path
    if "/dir/" in path and "limit=" in path and first:
        try:
            seen["names"] = [e["name"] for e in json.loads(body)["entries"]][:5]
        except Exception:
            pass
    if m == "trunc":
        return body[:len(body) // 2]
    if m == "garbage":
        return b"\x00\xffnot json at all" * 50
    if m == "badfid":
        i = nth(body, b'"fid":"', 3)
        return body if i < 0 else body[:i + 7] + b"zz" + body[i + 9:]
    if m == "badtype":
        return body.replace(b'"type":"file"', b'"type":"blob"', 1)
    if m == "layout":
        d = json.loads(body)
        for e in d["entries"]:
            e["attr"] = dict(reversed(list(e["attr"].items())))
        return json.dumps(d, indent=1).encode()
    if m == "dupin":
        d = json.loads(body)
        if len(d["entries"]) > 1:
            d["entries"][1]["name"] = d["entries"][0]["name"]
        return json.dumps(d, separators=(",", ":")).encode()
    if m == "dupacross" and not first and seen.get("names"):
        d = json.loads(body)
        d["entries"][0]["name"] = seen["names"][0]
        return json.dumps(d, separators=(",", ":")).encode()
    if m == "oversize":
        d = json.loads(body)
        e = d["entries"]
        while e and len(e) <= 4096:
            e += [dict(x, name=x["name"] + "~%d" % len(e)) for x in e[:4097 - len(e)]]
        return json.dumps(d, separators=(",", ":")).encode()
    if m == "badcursor" and b'"next":"' in body:
        return body.replace(b'"next":"', b'"next":"bad cursor/', 1)
    if m in ("otherdv", "otherdvgen") and not first and (
            m == "otherdvgen" or body.startswith(b'{"next":"')):
        # A later page of another DV with a 200, not a 410: a middle
        # page in cairn-vold's layout (cairnd asks for the next page
        # before decoding it), or any later page in another layout
        # (decoded first).
        d = json.loads(body)
        d["dir"]["dv"] += 1
        if m == "otherdv":
            return json.dumps(d, separators=(",", ":")).encode()
        return json.dumps(d, indent=1).encode()
    if m == "huge":
        return body + b" " * (65 << 20)
    return body
PY
spoilproxy_start "$T_DIR/spoil.py" || exit 99
mnt=$T_DIR/mnt
cairnd_mount "$mnt" "$T_DIR/cache" lb "$T_DIR/tok" --fetch-timeout 5s || exit 1
log=$T_DIR/cairnd-mnt.log
t_is "$(ls "$mnt/small" | tr '\n' ' ')" "a b " "a small directory lists through the relay (cached now)"

# Each spoiled mode: a fresh mount of an empty cache could also be used,
# but the listing of big is never cached while spoiled, so each ls asks.
for mode in trunc garbage badfid badtype dupin dupacross oversize badcursor huge; do
	echo "$mode" >"$T_DIR/mode"
	before=$(grep -c "bad directory reply" "$log")
	out=$(ls -f "$mnt/big" 2>&1 >/dev/null)
	rc=$?
	t_ok "$([ "$rc" != 0 ] && echo "$out" | grep -q "Input/output error" && echo 0 || echo 1)" \
		"$mode: ls gets EIO"
	after=$(grep -c "bad directory reply" "$log")
	if [ "$mode" = huge ]; then
		# Refused by the transfer's bound before any decoding.
		t_ok "$(grep -q "bad reply: larger than its bound" "$log" && echo 0 || echo 1)" \
			"$mode: cairnd refused the reply"
		t_check "$mode: and did not take the server for unreachable" \
			bash -c "! grep -q 'unreachable' '$log'"
	else
		t_ok "$([ "$after" -gt "$before" ] && echo 0 || echo 1)" \
			"$mode: cairnd logs a bad directory reply"
	fi
	t_is "$(cat "$mnt/small/a")" hi "$mode: the cached directory still serves"
done

# Valid JSON out of cairn-vold's layout (keys reversed, spaces): the
# decoder's generic path lists it.
echo layout >"$T_DIR/mode"
t_is "$(ls -f "$mnt/big" | grep -c '^f')" 5000 "keys in another order, with spaces: every entry"
t_is "$(stat -c %s "$mnt/big/f00013")" 6 "and its attributes"

# A later page of another DV without a 410 (a relay or a server that
# is not cairn-vold): both decoding paths start the listing over, and
# after DIR_RESTARTS the whole listing in one reply (no cursor, so the
# relay leaves it alone) lists. h-coldls3's early path failed it with
# EIO while the generic path restarted.
# Each on a fresh mount, in a directory of three pages (the middle one
# names the next: the early path for otherdv).
for mode in otherdv otherdvgen; do
	echo "$mode" >"$T_DIR/mode"
	cairnd_umount "$mnt"
	rm -rf "$T_DIR/cache"
	cairnd_mount "$mnt" "$T_DIR/cache" lb "$T_DIR/tok" --fetch-timeout 5s || exit 1
	before=$(grep -c "bad directory reply" "$log")
	t_is "$(ls -f "$mnt/three" | grep -c '^t')" 8200 "$mode: a page of another DV restarts; every entry"
	t_is "$(grep -c "bad directory reply" "$log")" "$before" "$mode: not taken for a bad reply"
done

# Good again: a fresh mount (so the layout listing above is not what is
# served) lists everything, each name once.
echo good >"$T_DIR/mode"
cairnd_umount "$mnt"
rm -rf "$T_DIR/cache"
cairnd_mount "$mnt" "$T_DIR/cache" lb "$T_DIR/tok" || exit 1
ls -f "$mnt/big" >"$T_DIR/ls.out"
t_is "$(grep -c '^f' "$T_DIR/ls.out")/$(grep '^f' "$T_DIR/ls.out" | sort -u | wc -l)" 5000/5000 \
	"after the relay behaves: every entry, once"
t_is "$(stat -c %s "$mnt/big/f04999")" $((4999 % 7)) "with its attributes"
cairnd_umount "$mnt"
t_done
