#!/usr/bin/env bash
# t2370-cm-bigdir-two-clients: cold listings of a directory of several
# pages (protocol version 2 pages of 4,096 entries) while a second
# client, another cairnd mount, creates and unlinks names in it. Every
# listing on the first mount, each from an empty cache, and every paged
# and whole (version 1) listing asked of cairn-vold directly meanwhile,
# must hold each name that never changed exactly once, no name twice and
# no name that never existed; pages of one listing share one DV (a
# change between pages is 410 and a restart). Once the churn stops, both
# mounts and the server list exactly the same set: the stable names and
# the churner's survivors. cairn-vold encodes entries as it reads them
# (vs_readdir_scan, session 10): this checks what that path sends. An
# opendir whose listing events keep overtaking is served the overtaken
# listing (one DV's, asked for after the open), not EIO, and an ls -l
# there (READDIRPLUS, LOOKUP) finishes without a fetch per name, with
# no error but ENOENT of a churned (c) name: each other error is named
# in the log with its round, and a timed out ls -l counts once (session
# 11: CI's "2 errors" were one round of 150 s, every entry without
# attributes after a listing past the 1,024-event ring, each name
# looked up with a fetch of the whole directory).
# CAIRN_T2370_N sets the size (default 10,000).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
N=${CAIRN_T2370_N:-10000}
t_timeout $((720 + N / 200))

src=$T_DIR/src
mkdir -p "$src/dir"
python3 - "$src/dir" "$N" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    os.close(os.open(os.path.join(d, "s%06d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
PY
vold_start || exit 99
vos import big "$src" >"$T_DIR/import.log" 2>&1 || { cat "$T_DIR/import.log"; exit 99; }
make_token big rw "$T_DIR/tok"
tok=$(cat "$T_DIR/tok")
vol_url=$VOLD_URL/v1/vol/big
dirfid=$(vold_curl -H "Authorization: Bearer $tok" "$vol_url/dir/$(vold_curl -H "Authorization: Bearer $tok" "$vol_url" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["root"])')" |
	python3 -c 'import json,sys
d = json.load(sys.stdin)
print([e["attr"]["fid"] for e in d["entries"] if e["name"] == "dir"][0])')
[ -n "$dirfid" ] || { echo "# no fid for dir"; exit 99; }

A=$T_DIR/a
B=$T_DIR/b
cairnd_mount "$B" "$T_DIR/cb" big "$T_DIR/tok" || exit 1
ls -f "$B/dir" >/dev/null || exit 1

# The churner on B: creates c-names and unlinks every other one it made
# (and, once, some stable names: they are then expected gone at the end,
# and checked only as "at most once" meanwhile: up to 20 of them, in the
# first run's steps below 2,000; during A's rounds every s-name is
# stable). It runs from step START until told to stop (a file)
# or step CAP, notes its first step (OUT.started) and writes the names it
# removed. Two runs: while the server is paged directly, until the pager
# saw 200 restarts on 410 (a paged listing needs the churn to end to ever
# complete; a fixed 6,000 steps, later 2,000, were 60-90 s of the test on
# a loaded machine, where each step is slower, for no more power), then
# from there until A's rounds are over (a fixed count alone ended before
# them once creates got faster).
cat >"$T_DIR/churn.py" <<'PY'
import os, sys, time
d, stop, out, nstable = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
start, cap = int(sys.argv[5]), int(sys.argv[6])
gone, i = set(), start
while not os.path.exists(stop) and i < cap:
    n = "c%05d" % i
    os.close(os.open(os.path.join(d, n), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    if i % 2 == 1:
        os.unlink(os.path.join(d, "c%05d" % (i - 1)))
        gone.add("c%05d" % (i - 1))
    if i % 100 == 50 and i < 2000 and start == 0:
        s = "s%06d" % (nstable - 1 - i // 100)
        os.unlink(os.path.join(d, s))
        gone.add(s)
    if i == start:
        open(out + ".started", "w").close()
    i += 1
    time.sleep(0.005)
if i % 2 == 1:
    # an even count, so a second run's pairs line up
    n = "c%05d" % i
    os.close(os.open(os.path.join(d, n), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    os.unlink(os.path.join(d, "c%05d" % (i - 1)))
    gone.add("c%05d" % (i - 1))
    i += 1
with open(out, "w") as f:
    f.write("\n".join(sorted(gone)) + "\n")
print(i)
PY
# check.py LISTFILE N GONE_SO_FAR_OK: every stable name once (but those
# the churner may have removed, at most once), only s/c names, none twice.
cat >"$T_DIR/check.py" <<'PY'
import collections, sys
names = [l.rstrip("\n") for l in open(sys.argv[1]) if l.rstrip("\n") not in (".", "..")]
n = int(sys.argv[2])
c = collections.Counter(names)
twice = [k for k, v in c.items() if v > 1]
odd = [k for k in c if not (k.startswith("c") or k.startswith("s"))]
stable = {"s%06d" % i for i in range(n)}
# The churner removes stable names from the top only, at most 60.
missing = [s for s in stable if s not in c and int(s[1:]) < n - 70]
print("%d %d %d" % (len(twice), len(odd), len(missing)))
for what, l in (("twice", twice), ("odd", odd), ("missing", missing)):
    if l:
        sys.stderr.write("# %s: %s\n" % (what, " ".join(sorted(l)[:5])))
PY

# A reaches cairn-vold through a relay (spoilproxy.py, events relayed)
# that holds each listing reply 50 ms while the churn goes on (~one
# change every 4 ms): every listing A fetches meanwhile is overtaken by
# events, so the late-listing paths (and an ls -l after them) are taken
# every time, not only when the machine is loaded.
cat >"$T_DIR/spoil.py" <<'PY'
import time
def spoil(mode, status, headers, body):
    return headers, body, len(body), 0
def spoil_dir(mode, path, body):
    if "slowdir" in mode:
        time.sleep(0.05)
    return body
PY
echo "events slowdir" >"$T_DIR/mode"
spoilproxy_start "$T_DIR/spoil.py" || exit 99

python3 "$T_DIR/churn.py" "$B/dir" "$T_DIR/stop1" "$T_DIR/gone1" "$N" 0 2000 >"$T_DIR/churn1.out" 2>"$T_DIR/churn.err" &
churn=$!
t_track_pid "$churn"
wait_for 60 test -e "$T_DIR/gone1.started" || { echo "# the churner did not start"; exit 1; }

# Direct listings of the server meanwhile: paged (restarting on 410;
# after ENOUGH restarts the churner's first run is told to stop, so the
# paged listings complete) and whole (every 25th restart, while the churn
# goes on, and after each paged listing).
cat >"$T_DIR/pages.py" <<'PY'
import json, os, sys, urllib.request, urllib.error
url, tok, n, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
stop, enough = sys.argv[5], int(sys.argv[6])
def get(q):
    r = urllib.request.Request(url + q, headers={"Authorization": "Bearer " + tok})
    try:
        with urllib.request.urlopen(r) as f:
            return f.status, json.load(f)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)
bad, restarts, during = 0, 0, 0
stable_ok = lambda names: all(("s%06d" % i) in names for i in range(n - 70))
def whole_bad():
    st, w = get("")
    wn = [e["name"] for e in w.get("entries", [])]
    return st != 200 or "next" in w or len(wn) != len(set(wn)) or not stable_ok(set(wn))
for _ in range(rounds):
    while True:
        names, dvs, cur, stale = [], set(), None, False
        while True:
            st, d = get("?limit=4096" + ("&cursor=" + cur if cur else ""))
            if st == 410:
                stale = True
                if d.get("errno") != "ESTALE":
                    bad += 1
                break
            if st != 200:
                bad += 1
                break
            dvs.add(d["dir"]["dv"])
            names += [e["name"] for e in d["entries"]]
            cur = d.get("next")
            if not cur:
                break
        if stale:
            restarts += 1
            if restarts % 25 == 0 and not os.path.exists(stop):
                during += 1
                bad += whole_bad()
            if restarts >= enough:
                open(stop, "a").close()
            continue
        break
    if len(dvs) != 1 or len(names) != len(set(names)) or not stable_ok(set(names)):
        bad += 1
    bad += whole_bad()
open(stop, "a").close()
print(bad, restarts, during)
PY
read -r pbad prestarts pduring < <(python3 "$T_DIR/pages.py" "$vol_url/dir/$dirfid" "$tok" "$N" 4 "$T_DIR/stop1" 200)
t_is "$pbad" 0 "server pages and whole listings during the churn: one DV a listing, every name once"
echo "# $prestarts paged listings restarted on 410, $pduring whole listings during the churn (${SECONDS}s into the test)"
wait "$churn"
python3 "$T_DIR/churn.py" "$B/dir" "$T_DIR/stop" "$T_DIR/gone2" "$N" "$(cat "$T_DIR/churn1.out")" 40000 >"$T_DIR/churn.out" 2>>"$T_DIR/churn.err" &
churn=$!
t_track_pid "$churn"

# Cold listings on A, each from an empty cache, during the churn.
bad=0
during=0
eio=0
ok_lists=0
late=0
lsl_bad=0
lsl_n=0
held=0
lookups=0
fetch_bad=0
stat_of() { getfattr -n cairn.stats --only-values "$A" 2>/dev/null | awk -v k="$1" '$1 == k {print $2}'; }
for r in 1 2 3; do
	kill -0 "$churn" 2>/dev/null || break
	during=$((during + 1))
	rm -rf "$T_DIR/ca"
	cairnd_mount "$A" "$T_DIR/ca" big "$T_DIR/tok" || exit 1
	for k in 1 2 3; do
		# A listing that events keep overtaking before it arrives
		# used to fail the opendir with EIO after PARK_TRIES fetches;
		# it is now served (mfetch_late_dir(), counted in dir_late).
		if ! ls -f "$A/dir" >"$T_DIR/ls.out" 2>"$T_DIR/ls.err"; then
			eio=$((eio + 1))
			continue
		fi
		ok_lists=$((ok_lists + 1))
		res=$(python3 "$T_DIR/check.py" "$T_DIR/ls.out" "$N")
		[ "$res" = "0 0 0" ] || { bad=$((bad + 1)); echo "# round $r.$k: twice/odd/missing $res"; }
	done
	# ls -l on a fresh cold mount: after a late OPENDIR, the stats
	# (READDIRPLUS, LOOKUP) used to fetch the whole directory up to
	# PARK_TRIES times a name and then fail with EIO, for tens of
	# minutes. Now the entries no event touched keep their attributes
	# (dir_take()), a late handle's READDIRPLUS serves plain entries
	# without a fetch, and a LOOKUP is served from the late listing.
	# Only a churned name may be gone by its stat (ENOENT).
	if kill -0 "$churn" 2>/dev/null; then
		late=$((late + $(getfattr -n cairn.stats --only-values "$A" 2>/dev/null | awk '$1 == "dir_late" {print $2}')))
		cairnd_umount "$A"
		rm -rf "$T_DIR/ca"
		cairnd_mount "$A" "$T_DIR/ca" big "$T_DIR/tok" || exit 1
		t0=$SECONDS
		timeout 150 ls -l "$A/dir" >"$T_DIR/lsl.out" 2>"$T_DIR/lsl.err"
		lrc=$?
		lsl_secs=$((SECONDS - t0))
		# The LOOKUPs took their FIDs from the held listing
		# (lookup_held()), not a whole-directory fetch a name: a
		# fetch at the OPENDIR (a few tries), one per READDIRPLUS
		# try and one per 5 s the held listing aged out
		# (MF_HELD_MS, renewed) and a few more for names it no
		# longer shows. One a name was thousands.
		rh=$(stat_of dir_held)
		rf=$(stat_of dir_fetches)
		held=$((held + ${rh:-0}))
		rl=$(stat_of fuse_op_lookup)
		lookups=$((lookups + ${rl:-0}))
		cap=$((40 + lsl_secs / 2))
		if [ "${rf:-0}" -gt "$cap" ]; then
			fetch_bad=$((fetch_bad + 1))
			echo "# round $r ls -l: ${rf} listing fetches in ${lsl_secs}s (cap $cap)"
		fi
		echo "# round $r: ls -l took ${lsl_secs}s (exit $lrc;" \
			"$(getfattr -n cairn.stats --only-values "$A" 2>/dev/null |
				awk '$1 ~ /^(dir_fetches|dir_late|dir_held|dir_attrs_unkept|fuse_op_lookup|events)$/ {printf "%s %s ", $1, $2}'))"
		cp "$T_DIR/lsl.err" "$T_DIR/lsl.err.$r"
		cp "$T_DIR/lsl.out" "$T_DIR/lsl.out.$r"
		# Errors but ENOENT of a churned name (c*): each is named.
		grep -v "/c[0-9]*': No such file" "$T_DIR/lsl.err" >"$T_DIR/lsl.bad"
		if [ "$lrc" = 124 ]; then
			lsl_bad=$((lsl_bad + 1))
			echo "# round $r ls -l: timed out after 150 s"
		fi
		if [ -s "$T_DIR/lsl.bad" ]; then
			lsl_bad=$((lsl_bad + 1))
			echo "# round $r ls -l: exit $lrc, $(wc -l <"$T_DIR/lsl.bad") errors:"
			head -5 "$T_DIR/lsl.bad" | sed "s/^/# round $r: /"
		fi
		awk 'NF >= 9 {print $NF}' "$T_DIR/lsl.out" >"$T_DIR/lsl.names"
		# (a timed out ls printed nothing: counted once, above)
		res=$(python3 "$T_DIR/check.py" "$T_DIR/lsl.names" "$N")
		[ "$res" = "0 0 0" ] || [ "$lrc" = 124 ] ||
			{ lsl_bad=$((lsl_bad + 1)); echo "# round $r ls -l: twice/odd/missing $res"; }
		lsl_n=$((lsl_n + 1))
	fi
	late=$((late + $(getfattr -n cairn.stats --only-values "$A" 2>/dev/null | awk '$1 == "dir_late" {print $2}')))
	cairnd_umount "$A"
done
t_is "$bad" 0 "cold and refetched listings on A during the churn: stable names once, none twice"
t_ok "$([ "$during" -ge 1 ] && echo 0 || echo 1)" "($during cold mounts of A while B churned)"
echo "# $ok_lists listings on A completed during the churn ($late opendirs served an overtaken listing; ${SECONDS}s into the test)"
t_is "$eio" 0 "no listing on A failed while the directory changed"
# The churn overtakes every fetch the relay holds: without late
# listings this stays 0.
t_ok "$([ "$late" -ge 1 ] && echo 0 || echo 1)" "requests were served an overtaken listing (dir_late $late)"
if [ "$lsl_n" -ge 1 ]; then
	# Since session 21 the OPENDIR reads the listing as it comes
	# (dstream.h) and its READDIRPLUS gives the entries' attributes,
	# so ls -l's stats need few LOOKUPs, if any; those there are take
	# their FIDs from the held listing once it is whole.
	t_ok "$([ "$held" -ge 1 ] || [ "$lookups" -le $((20 * lsl_n)) ] && echo 0 || echo 1)" \
		"ls -l's LOOKUPs were few ($lookups in $lsl_n runs) or answered from the held listing (dir_held $held)"
	t_is "$fetch_bad" 0 "ls -l fetched the whole directory a bounded number of times, not once a name"
fi
t_is "$lsl_bad" 0 "ls -l on cold mounts during the churn: within 150 s, every stable name once, no error but ENOENT of a churned name ($lsl_n runs)"
: >"$T_DIR/stop"
wait "$churn"
echo events >"$T_DIR/mode"
t_is "$(wc -l <"$T_DIR/churn.err")" 0 "the churner on B saw no error"
made=$(cat "$T_DIR/churn.out")
cat "$T_DIR/gone1" "$T_DIR/gone2" >"$T_DIR/gone"
echo "# $made creates on B (half unlinked again)"

# The settled set: stable names minus the removed ones, plus survivors.
python3 - "$N" "$made" "$T_DIR/gone" >"$T_DIR/want" <<'PY'
import sys
n, made = int(sys.argv[1]), int(sys.argv[2])
gone = {l.strip() for l in open(sys.argv[3]) if l.strip()}
names = {"s%06d" % i for i in range(n)} | {"c%05d" % i for i in range(made)}
print("\n".join(sorted(names - gone)))
PY
rm -rf "$T_DIR/ca"
cairnd_mount "$A" "$T_DIR/ca" big "$T_DIR/tok" || exit 1
t_ok "$(wait_for 10 sh -c "ls -f '$A/dir' | grep -v '^\.\.*\$' | sort | cmp -s - '$T_DIR/want'" && echo 0 || echo 1)" \
	"a cold listing on A after the churn is exactly the settled set"
t_ok "$(wait_for 10 sh -c "ls -f '$B/dir' | grep -v '^\.\.*\$' | sort | cmp -s - '$T_DIR/want'" && echo 0 || echo 1)" \
	"B's listing is the same set"
vold_curl -H "Authorization: Bearer $tok" "$vol_url/dir/$dirfid" |
	python3 -c 'import json,sys; print("\n".join(sorted(e["name"] for e in json.load(sys.stdin)["entries"])))' >"$T_DIR/srv.ls"
t_check "the server's whole listing is the same set" cmp -s "$T_DIR/srv.ls" "$T_DIR/want"
t_check "cairnd logged no bad reply" bash -c "! grep -q 'bad directory reply' '$T_DIR'/cairnd-*.log"
cairnd_umount "$A"
cairnd_umount "$B"
t_done
