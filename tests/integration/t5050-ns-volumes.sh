#!/usr/bin/env bash
# t5050-ns-volumes: one cairnd, three volumes from two cairn-vold
# instances, under one mount root (cairnd.conf(5) "[volume DIR]").
#  - the root is a read-only directory listing the configured volumes
#    only; each volume reads and writes (checked on the server through a
#    separate single-volume mount); st_ino differs across volumes;
#  - rename and link between volumes fail with EXDEV (mv copies);
#  - a conflict made while one volume is disconnected: fs conflicts and
#    fs resolve through the namespace, with mount-relative paths;
#  - fs listvol and getcacheparms show each volume, the cache accounting
#    per volume; fs status/disconnect pick a volume with -V, a path picks
#    it by its first component;
#  - one server stopped: its volume goes offline (cached reads still
#    work, uncached ones fail with EIO), the other server's volumes stay
#    connected and writable; the server back, the volume reconnects;
#  - bad configs are refused with a message.
. "$top_srcdir/tests/integration/lib.sh"
. "$top_srcdir/tests/integration/lib-ns.sh"
t_need_fuse
t_timeout 360

mk_tree() { # DIR TAG
	mkdir -p "$1/sub"
	echo "$2 hello" >"$1/hello.txt"
	head -c $((600 * 1024)) /dev/urandom >"$1/sub/big.bin"
	head -c $((300 * 1024)) /dev/urandom >"$1/sub/other.bin"
}
mk_tree "$T_DIR/src-alpha" alpha
mk_tree "$T_DIR/src-beta" beta
mk_tree "$T_DIR/src-gamma" gamma

# Server A: alpha and beta. Server B: gamma (and one more volume the
# config does not list).
ns_vold A
ns_import alpha "$T_DIR/src-alpha"
ns_import beta "$T_DIR/src-beta"
ns_vold B
ns_import gamma "$T_DIR/src-gamma"
vos create hidden >/dev/null || exit 99

mkdir -p "$T_DIR/cairnd.conf.d"
{ ns_conf_head "server = $URL_A" "metrics-listen = 0"; ns_vol alpha; ns_vol beta; } >"$conf"
# The third volume from a drop-in, under another name than the server's.
ns_vol proj gamma "$URL_B" >"$T_DIR/cairnd.conf.d/10-proj.conf"

t_check "--show-config lists the volumes" sh -c \
	"'$CAIRND' --config '$conf' --show-config | grep -q '^\[volume proj\]'"

ns_start
export CAIRN_CTL_SOCKET=
unset CAIRN_CTL_SOCKET

# --- the namespace root ---
t_is "$(ls "$mnt" | tr '\n' ' ')" "alpha beta proj " "root lists the configured volumes only"
t_is "$(stat -c '%a %F' "$mnt")" "555 directory" "root is a read-only directory"
t_check "an unlisted volume is not visible" sh -c "! test -e '$mnt/hidden'"
err=$(mkdir "$mnt/new" 2>&1)
t_is "${err##*: }" "Permission denied" "mkdir in the root: EACCES"

# --- reads in each volume ---
for v in alpha beta; do
	t_is "$(cat "$mnt/$v/hello.txt")" "$v hello" "read in $v"
	t_check "big file of $v" cmp "$T_DIR/src-$v/sub/big.bin" "$mnt/$v/sub/big.bin"
done
t_is "$(cat "$mnt/proj/hello.txt")" "gamma hello" "read in proj (gamma on server B)"
t_check "big file of proj" cmp "$T_DIR/src-gamma/sub/big.bin" "$mnt/proj/sub/big.bin"
inos=$(stat -c %i "$mnt" "$mnt/alpha" "$mnt/beta" "$mnt/proj" \
	"$mnt/alpha/hello.txt" "$mnt/beta/hello.txt" "$mnt/proj/hello.txt" | sort -u | wc -l)
t_is "$inos" 7 "st_ino differs across volumes and roots"
t_is "$(find "$mnt" -name hello.txt | sort | tr '\n' ' ')" \
	"$mnt/alpha/hello.txt $mnt/beta/hello.txt $mnt/proj/hello.txt " "find walks every volume"

# --- writes in each volume ---
for v in alpha beta proj; do
	echo "written in $v" >"$mnt/$v/new.txt" || t_ok 1 "write in $v"
	mkdir "$mnt/$v/newdir" && echo x >"$mnt/$v/newdir/x"
done
t_is "$(cat "$mnt/alpha/new.txt" "$mnt/beta/new.txt" "$mnt/proj/new.txt" | tr '\n' ' ')" \
	"written in alpha written in beta written in proj " "writes read back"
# On the servers, through single-volume mounts of their own.
VOLD_URL=$URL_A cairnd_mount "$T_DIR/chkA" "$T_DIR/cacheA" beta "$T_DIR/beta.tok" || exit 1
t_is "$(cat "$T_DIR/chkA/new.txt")" "written in beta" "beta's write is on server A"
cairnd_umount "$T_DIR/chkA"
VOLD_URL=$URL_B cairnd_mount "$T_DIR/chkB" "$T_DIR/cacheB" gamma "$T_DIR/gamma.tok" || exit 1
t_is "$(cat "$T_DIR/chkB/new.txt")" "written in proj" "proj's write is on server B (volume gamma)"
t_is "$(cat "$T_DIR/chkB/newdir/x")" "x" "with its directory"
cairnd_umount "$T_DIR/chkB"

# --- between volumes ---
xdev() { python3 -c 'import os,sys,errno
try:
    getattr(os, sys.argv[1])(sys.argv[2], sys.argv[3]); print("ok")
except OSError as e: print(errno.errorcode[e.errno])' "$@"; }
t_is "$(xdev rename "$mnt/alpha/new.txt" "$mnt/beta/moved.txt")" EXDEV "rename across volumes: EXDEV"
t_is "$(xdev link "$mnt/alpha/new.txt" "$mnt/proj/linked.txt")" EXDEV "link across volumes: EXDEV"
t_is "$(xdev rename "$mnt/alpha/new.txt" "$mnt/alpha/renamed.txt")" ok "rename inside a volume works"
t_is "$(xdev rename "$mnt/alpha" "$mnt/alpha2")" EACCES "renaming a volume's directory: EACCES"
mv "$mnt/alpha/renamed.txt" "$mnt/beta/moved.txt"
t_is "$(cat "$mnt/beta/moved.txt" 2>&1)" "written in alpha" "mv across volumes copies"
t_check "and removes the source" sh -c "! test -e '$mnt/alpha/renamed.txt'"

# --- the control socket ---
lv=$("$FS" listvol -m "$mnt" --json)
t_is "$(echo "$lv" | python3 -c 'import json,sys
print(" ".join(sorted(v["dir"]+"="+v["name"]+"@"+v["state"] for v in json.load(sys.stdin)["volumes"])))')" \
	"alpha=alpha@connected beta=beta@connected proj=gamma@connected" "fs listvol shows each volume"
t_is "$("$FS" whereis "$mnt/proj/hello.txt" --json | python3 -c 'import json,sys
r=json.load(sys.stdin)[0]; print(r["volume"], r["server"])')" "gamma $URL_B" "fs whereis routes by path"
t_is "$("$FS" whereis "$mnt/proj" --json | python3 -c 'import json,sys
r=json.load(sys.stdin)[0]; print(r["volume"], r["path"])')" "gamma $mnt/proj" "fs whereis of a volume's root"
t_is "$("$FS" examine "$mnt/beta/sub/big.bin" --json | python3 -c 'import json,sys
r=json.load(sys.stdin)[0]; print(r["volume"], r["chunks_cached"])')" "beta 3" "fs examine in a volume"
gc=$("$FS" getcacheparms -m "$mnt" --json)
t_is "$(echo "$gc" | python3 -c 'import json,sys
r=json.load(sys.stdin); v={x["dir"]:x for x in r["volumes"]}
print(all(v[d]["bytes_used"] >= 600*1024 for d in ("alpha","beta","proj")),
      sum(x["bytes_used"] for x in r["volumes"]) <= r["bytes_used"])')" "True True" \
	"fs getcacheparms: per-volume accounting within the shared cache"
t_check "getcacheparms text shows the volumes" sh -c "'$FS' getcacheparms -m '$mnt' | grep -q 'volume proj'"
"$FS" flush "$mnt/beta/sub/big.bin" >/dev/null
gc2=$("$FS" getcacheparms -m "$mnt" -V beta --json)
t_is "$(echo "$gc" "$gc2" | python3 -c 'import json,sys
d=json.JSONDecoder(); s=sys.stdin.read(); a,i=d.raw_decode(s); b,_=d.raw_decode(s[i:].lstrip())
old={x["dir"]:x["bytes_used"] for x in a["volumes"]}; new={x["dir"]:x["bytes_used"] for x in b["volumes"]}
print(list(new), old["beta"]-new["beta"] >= 600*1024)')" "['beta'] True" "fs flush in beta drops beta's bytes (-V beta)"
t_is "$("$FS" examine "$mnt" 2>&1 | sed 's/.*: //')" \
	"the mount root holds no files (name a path inside one of its volumes)" "fs examine of the mount root"
t_check "statfs of the root (the shared cache)" stat -f "$mnt"
t_check "statfs in a volume" stat -f "$mnt/beta/sub"
err=$("$FS" disconnect -m "$mnt" 2>&1)
t_check "fs disconnect without -V names the problem" sh -c "echo '$err' | grep -q 'several volumes'"
t_is "$("$FS" status -m "$mnt" --json | python3 -c 'import json,sys; r=json.load(sys.stdin)
print(r["mode"], " ".join(v["dir"]+"="+v["mode"] for v in r["volumes"]))')" \
	"connected alpha=connected beta=connected proj=connected" "fs status without -V: every volume"
t_check "fs status text: one line per volume" sh -c "'$FS' status -m '$mnt' | grep -q '^proj  *connected  *yes'"
t_is "$("$FS" status -m "$mnt" -V proj --json | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["volume"], r["mode"])')" \
	"gamma connected" "fs status -V proj"
t_is "$("$FS" status -m "$mnt" -V nosuch 2>&1 | sed 's/.*: //')" "no such volume here" "fs status -V unknown"
t_check "fs sync -V alpha" "$FS" sync -m "$mnt" -V alpha
t_is "$("$FS" conflicts -m "$mnt" -V proj --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["conflicts"]))')" 0 \
	"fs conflicts -V proj"
t_check "fs metrics -V beta names beta" sh -c "'$FS' metrics -m '$mnt' -V beta | grep -q 'volume=\"beta\"'"
PC="python3 $top_srcdir/tests/integration/promcheck.py"
"$FS" metrics -m "$mnt" >"$T_DIR/m-all.txt"
t_check "fs metrics without -V: one valid exposition" $PC "$T_DIR/m-all.txt"
t_is "$(for v in alpha beta gamma; do $PC "$T_DIR/m-all.txt" get cairnd_online volume=$v; done | tr '\n' ' ')" \
	"1 1 1 " "with every volume's samples"
port=$(sed -n 's|.*metrics on http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' "$log" | tail -1)
curl -s "http://127.0.0.1:$port/metrics" >"$T_DIR/m-http.txt"
t_check "metrics-listen serves the namespace" $PC "$T_DIR/m-http.txt"
t_is "$($PC "$T_DIR/m-http.txt" get cairnd_online volume=gamma)" 1 "with every volume"
t_check "fs pin in proj" "$FS" pin "$mnt/proj/new.txt"
t_is "$("$FS" pins -m "$mnt" -V proj --json | python3 -c 'import json,sys; print([p["path"] for p in json.load(sys.stdin)["pins"]])')" \
	"['proj/new.txt']" "fs pins -V proj lists it (mount-relative)"
"$FS" unpin "$mnt/proj/new.txt" >/dev/null

# --- one volume disconnected by hand, the others not ---
"$FS" disconnect -m "$mnt" -V beta >/dev/null
st() { "$FS" status -m "$mnt" -V "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["mode"])'; }
t_is "$(st beta) $(st alpha) $(st proj)" "disconnected connected connected" "fs disconnect -V beta: only beta"
echo offline-change >"$mnt/beta/offline.txt"
printf 'offline side\n' >"$mnt/beta/hello.txt"
# Meanwhile another client changes the same file on server A.
VOLD_URL=$URL_A cairnd_mount "$T_DIR/chkA" "$T_DIR/cacheA" beta "$T_DIR/beta.tok" || exit 1
printf 'server side\n' >"$T_DIR/chkA/hello.txt"
cairnd_umount "$T_DIR/chkA"
"$FS" reconnect -m "$mnt" -V beta >/dev/null
t_is "$(st beta)" connected "fs reconnect -V beta"
cj=$("$FS" conflicts -m "$mnt" -V beta --json)
t_is "$(echo "$cj" | python3 -c 'import json,sys
c=json.load(sys.stdin)["conflicts"][0]; print(c["path"], c["kind"], c.get("copy","").startswith("beta/hello.txt.conflict-"))')" \
	"beta/hello.txt stale-dv True" "the conflict in beta, with mount-relative path and copy"
copy=$(echo "$cj" | python3 -c 'import json,sys; print(json.load(sys.stdin)["conflicts"][0]["copy"])')
t_is "$(cat "$mnt/$copy" 2>&1)" "offline side" "the copy is where the path says"
t_check "fs resolve --keep local through the namespace" "$FS" resolve -m "$mnt" --keep local "$mnt/beta/hello.txt"
t_is "$(cat "$mnt/beta/hello.txt")" "offline side" "the local version kept"
t_is "$("$FS" conflicts -m "$mnt" -V beta --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["conflicts"]))')" 0 \
	"no conflict left"

# --- server B stops: proj goes offline, alpha and beta do not ---
kill -KILL "$PID_B"; wait "$PID_B" 2>/dev/null
t_check "proj: cached file still reads" cmp "$T_DIR/src-gamma/sub/big.bin" "$mnt/proj/sub/big.bin"
err=$(cat "$mnt/proj/sub/other.bin" 2>&1 >/dev/null)
t_is "${err##*: }" "Input/output error" "proj: uncached read fails with EIO"
wait_for 10 sh -c "[ \"\$('$FS' status -m '$mnt' -V proj --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"online\"])')\" = False ]"
t_ok $? "proj is seen offline"
echo "still writable" >"$mnt/alpha/while-b-down.txt"
t_is "$(cat "$mnt/alpha/while-b-down.txt")" "still writable" "alpha writes while server B is down"
t_check "alpha: uncached read works" cmp "$T_DIR/src-alpha/sub/other.bin" "$mnt/alpha/sub/other.bin"
t_is "$(st alpha) $(st beta)" "connected connected" "alpha and beta stay connected"
ns_vold_restart "$SRV_B" "$URL_B" || exit 99
wait_for 15 cmp -s "$T_DIR/src-gamma/sub/other.bin" "$mnt/proj/sub/other.bin"
t_ok $? "server B back: proj reads again without a remount"

# --- stop: one clean stop for all ---
fusermount3 -u "$mnt"
ns_wait_exit
t_check "cairnd exits after the unmount" sh -c "! kill -0 $pid 2>/dev/null"
t_check "per-volume state under CACHE/vol/DIR" test -f "$T_DIR/cache/vol/proj/meta.tdb"

# --- bad configs ---
bad() { # DESC CONF-TEXT WANT
	printf '%s\n' "$2" >"$T_DIR/bad.conf"
	out=$("$CAIRND" --config "$T_DIR/bad.conf" --show-config 2>&1 >/dev/null
		timeout 10 "$CAIRND" --config "$T_DIR/bad.conf" --foreground 2>&1)
	echo "$out" | grep -q "$3"
	t_ok $? "$1"
}
bad "a [volume] without a token is refused" \
	"$(printf '[cairnd]\ncache=%s\nmountpoint=%s\nserver=%s\n[volume alpha]\nvolume=alpha\n' "$T_DIR/c2" "$mnt" "$URL_A")" "has no token"
bad "volume with [volume] sections is refused" \
	"$(printf '[cairnd]\ncache=%s\nmountpoint=%s\nserver=%s\nvolume=alpha\n[volume alpha]\ntoken=%s\n' "$T_DIR/c2" "$mnt" "$URL_A" "$T_DIR/alpha.tok")" "list every volume"
bad "a bad volume directory name is refused" \
	"$(printf '[volume a/b]\nserver=%s\n' "$URL_A")" "bad name in"
bad "an unknown key in [volume] is refused" \
	"$(printf '[volume alpha]\ncolour=red\n')" "unknown setting"
t_done
