#!/usr/bin/env bash
# t2358-cm-listing-stream: a big directory is read as its listing comes
# (cm/dstream.h): an OPENDIR that fetches a listing of several pages
# answers at the first page, and READDIR gives each page's entries as
# they come, so a reader has its first entries long before the last page
# is in. A relay (spoilproxy.py) holds each later page 0.8 s:
#   - a cold ls -f gives every name once, as on the source tree, and is
#     counted as a streamed open (dir_streamed);
#   - the first entry comes before the listing is complete (first entry
#     < 2.5 s, whole listing > 2.5 s with four held pages);
#   - telldir/seekdir in the middle of a stream give the same names
#     again (offsets are positions in the order the pages came);
#   - READDIRPLUS of a stream (ls -l, cold): every name with its size;
#   - the directory changes mid-way (another client unlinks 100 names
#     and makes 100): the listing starts over, and the reader still gets
#     every name that was there all along exactly once and no name twice;
#   - a page that breaks mid-way: the reader gets the entries before it,
#     then EIO; cairnd goes on, and the next listing is whole;
#   - a directory of one page is not streamed.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 300

N=20000 # five pages of 4,096
src=$T_DIR/src
python3 - "$src" "$N" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
os.makedirs(root + "/d")
os.makedirs(root + "/small")
for i in range(n):
    with open("%s/d/f%05d" % (root, i), "w") as f:
        f.write("x" * (i % 7))
for i in range(50):
    os.close(os.open("%s/small/s%02d" % (root, i), os.O_CREAT | os.O_WRONLY, 0o644))
PY
vold_start || exit 99
vos init >/dev/null 2>&1
vos import ls "$src" >/dev/null || exit 99
make_token ls rw "$T_DIR/tok"
# B goes straight to cairn-vold; A through the relay.
B=$T_DIR/b
cairnd_mount "$B" "$T_DIR/cb" ls "$T_DIR/tok" || exit 1
echo good >"$T_DIR/mode"
cat >"$T_DIR/spoil.py" <<'PY'
import time
def spoil(mode, status, headers, body):
    return headers, body, len(body), 0
def spoil_dir(mode, path, body):
    later = "cursor=" in path
    if "slow" in mode and later:
        time.sleep(0.8)
    if "break" in mode and later:
        return body[: len(body) // 2]
    return body
PY
spoilproxy_start "$T_DIR/spoil.py" || exit 99
A=$T_DIR/a
C=$T_DIR/cache-a
fresh() { # a fresh cairnd on an empty cache for A
	cairnd_umount "$A" 2>/dev/null
	rm -rf "$C"
	cairnd_mount "$A" "$C" ls "$T_DIR/tok" || exit 1
	stat "$A/d" >/dev/null
}
stat1() { getfattr -n cairn.stats --only-values "$A" 2>/dev/null | awk -v k="$1" '$1 == k {print $2}'; }
(cd "$src/d" && ls -f | sort) >"$T_DIR/want"

# Cold ls -f, no delay.
fresh
s0=$(stat1 dir_streamed)
(cd "$A/d" && ls -f | sort) >"$T_DIR/got"
t_check "cold ls -f: every name once ($N and . ..)" cmp "$T_DIR/got" "$T_DIR/want"
t_is "$(( $(stat1 dir_streamed) - s0 ))" 1 "the open read the listing as it came (dir_streamed)"
(cd "$A/d" && ls -f | sort) >"$T_DIR/got"
t_check "warm ls -f: the same (the stored listing)" cmp "$T_DIR/got" "$T_DIR/want"

# The first entry before the last page.
fresh
echo slow >"$T_DIR/mode"
python3 - "$A/d" >"$T_DIR/timing" <<'PY'
import os, sys, time
t0 = time.monotonic()
it = os.scandir(sys.argv[1])
first = next(it).name
t1 = time.monotonic()
names = [first] + [e.name for e in it]
t2 = time.monotonic()
print("%.3f %.3f %d %d" % (t1 - t0, t2 - t0, len(names), len(set(names))))
PY
echo good >"$T_DIR/mode"
read -r tf ta nn nd <"$T_DIR/timing"
echo "# first entry after ${tf}s, all $nn after ${ta}s"
t_ok "$(echo "$tf < 2.5 && $ta > 2.5" | bc -l | grep -q 1 && echo 0 || echo 1)" \
	"the first entry came before the listing was whole (${tf}s, whole ${ta}s)"
t_is "$nn $nd" "$N $N" "and every name came, each once"

# telldir/seekdir in the middle of a stream.
fresh
echo slow >"$T_DIR/mode"
perl -e '
	opendir(my $d, $ARGV[0]) or die "opendir: $!";
	my (@a, @b, $n);
	for (1 .. 5000) { defined(readdir($d)) or die "short"; }
	my $pos = telldir($d);
	push @a, scalar readdir($d) for 1 .. 10;
	seekdir($d, $pos);
	push @b, scalar readdir($d) for 1 .. 10;
	$n = 5010;
	$n++ while defined(readdir($d));
	print join(",", @a), "\n", join(",", @b), "\n", $n, "\n";
' "$A/d" >"$T_DIR/seek" 2>&1
echo good >"$T_DIR/mode"
t_is "$(sed -n 1p "$T_DIR/seek")" "$(sed -n 2p "$T_DIR/seek")" \
	"seekdir to a telldir mid-stream gives the same names again"
t_is "$(sed -n 3p "$T_DIR/seek")" "$((N + 2))" "and the rest of the listing after them"

# READDIRPLUS: ls -l of a cold directory.
fresh
echo slow >"$T_DIR/mode"
ls -l "$A/d" | awk 'NR > 1 {print $9, $5}' | sort >"$T_DIR/got"
echo good >"$T_DIR/mode"
ls -l "$src/d" | awk 'NR > 1 {print $9, $5}' | sort >"$T_DIR/want-l"
t_check "cold ls -l (READDIRPLUS of a stream): every name with its size" \
	cmp "$T_DIR/got" "$T_DIR/want-l"

# The directory changes mid-way: B unlinks f00000..f00099 and makes
# n00000..n00099 once A's reader has its first entry.
fresh
firsts() { grep -v 'cursor=' "$T_DIR/proxy.req.dir" 2>/dev/null | grep -c '/dir/'; }
f0=$(firsts)
echo slow >"$T_DIR/mode"
python3 - "$A/d" "$T_DIR/first" >"$T_DIR/churn" <<'PY' &
import os, sys
it = os.scandir(sys.argv[1])
names = [next(it).name]
open(sys.argv[2], "w").close()
names += [e.name for e in it]
print("\n".join(names))
PY
reader=$!
wait_for 20 test -e "$T_DIR/first"
for i in $(seq -f %05g 0 99); do rm -f "$B/d/f$i"; : >"$B/d/n$i"; done
wait "$reader"
t_ok $? "the reader of a listing that changed mid-way ended without error"
echo good >"$T_DIR/mode"
t_ok "$([ "$(firsts)" -ge $((f0 + 2)) ] && echo 0 || echo 1)" \
	"the listing was asked for from its first page again ($((f0)) -> $(firsts))"
t_is "$(sort "$T_DIR/churn" | uniq -d | wc -l)" 0 "no name given twice"
seq -f 'f%05g' 100 $((N - 1)) >"$T_DIR/stable"
t_is "$(sort "$T_DIR/churn" | comm -13 - "$T_DIR/stable" | wc -l)" 0 \
	"every name that was there all along was given"
t_is "$(grep -cv '^[fn][0-9]\{5\}$' "$T_DIR/churn")" 0 "and no other name"
wait_eval 30 '[ "$(ls "$A/d" | grep -c "^n")" = 100 ]'
t_is "$(ls "$A/d" | wc -l)" "$N" "then A lists the directory as it is now"

# A page that breaks mid-way.
fresh
echo break >"$T_DIR/mode"
python3 - "$A/d" >"$T_DIR/broken" 2>&1 <<'PY'
import errno, os, sys
n = 0
try:
    for e in os.scandir(sys.argv[1]):
        n += 1
    print("no error", n)
except OSError as ex:
    print(errno.errorcode.get(ex.errno, ex.errno), n)
PY
echo good >"$T_DIR/mode"
read -r err got <"$T_DIR/broken"
t_is "$err" EIO "a listing broken mid-way: the reader gets EIO"
t_ok "$([ "$got" -ge 4096 ] && [ "$got" -lt "$N" ] && echo 0 || echo 1)" \
	"after the entries before it ($got)"
grep -q "bad directory reply" "$T_DIR/cairnd-a.log"
t_ok $? "cairnd says why in its log"
(cd "$A/d" && ls -f | grep -c .) >"$T_DIR/count"
t_is "$(cat "$T_DIR/count")" "$((N + 2))" "the next listing is whole"

# One page: no stream.
s0=$(stat1 dir_streamed)
t_is "$(ls "$A/small" | wc -l)" 50 "a directory of one page lists"
t_is "$(( $(stat1 dir_streamed) - s0 ))" 0 "without a stream"
cairnd_umount "$A"
cairnd_umount "$B"
t_done
