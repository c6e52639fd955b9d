#!/usr/bin/env bash
# t2372-cm-churn-mutate: rm, mv and stat on a cold mount (A) in a
# directory that another mount (B) keeps changing faster than A's
# listing of it arrives (a relay holds each listing reply 50 ms, ~10
# changes meanwhile). Such a directory never has a stored listing on A:
# every fetch is overtaken by events. An OPENDIR or LOOKUP is served the
# overtaken listing (t2370); an unlink or rename (fuse_mut.c name_fid())
# needed the stored one, so it fetched the directory MOP_TRIES times and
# failed with EIO. Now it names the FID from the overtaken listing asked
# for after it began (the server checks the name still names it), so
# each succeeds after one fetch, and the server has the result once the
# churn stops.
. "$top_srcdir/tests/integration/lib.sh"
. "$top_srcdir/tests/integration/churn.sh"
t_need_fuse
t_timeout 400
N=5000 # two pages of 4,096

src=$T_DIR/src
churn_tree "$N"
churn_start || exit 99
tok=$(cat "$T_DIR/tok")

cairnd_mount "$A" "$T_DIR/ca" big "$T_DIR/tok" || exit 1
stat_of() { getfattr -n cairn.stats --only-values "$A" 2>/dev/null | awk -v k="$1" '$1 == k {print $2}'; }
rm_bad=0
for i in 10 11 12 13 14; do
	rm "$A/dir/s$(printf %06d $i)" 2>>"$T_DIR/rm.err" || rm_bad=$((rm_bad + 1))
done
sed 's/^/# /' "$T_DIR/rm.err"
t_is "$rm_bad" 0 "rm of 5 names on a cold mount while the directory churns"
t_check "mv of a name there" mv "$A/dir/s000020" "$A/dir/m000020"
# (answered by the kernel's LOOKUP: the UNLINK never reaches cairnd)
t_check "rm of a name that is not there: ENOENT" \
	bash -c "rm '$A/dir/nosuch' 2>&1 | grep -q 'No such file'"
t_check "stat of a name there" stat "$A/dir/s000030"
# The kernel moved its dentry: a stat of the new name reaches no
# LOOKUP; the old name's does, and must not find the moved object.
t_check "stat of the name just moved away: ENOENT" \
	bash -c "stat '$A/dir/s000020' 2>&1 | grep -q 'No such file'"
late=$(stat_of dir_late)
mutl=$(stat_of dir_late_mut)
# The unlinks and the rename named their FIDs from an overtaken listing
# (name_fid(); the churn overtakes every fetch the relay holds: ~10
# changes in each 50 ms hold). At least one: a fetch the churn happens
# not to overtake (a stall under load) stores the listing, which then
# names the FID as it should.
t_ok "$([ "${mutl:-0}" -ge 1 ] && echo 0 || echo 1)" \
	"unlinks and renames were served overtaken listings (dir_late_mut ${mutl:-0}, dir_late ${late:-0})"
kill -0 "$churn" 2>/dev/null
t_is "$?" 0 "the churn was still going"
: >"$T_DIR/stop"
wait "$churn"
t_is "$(wc -l <"$T_DIR/churn.err")" 0 "the churner on B saw no error"
echo "# $(cat "$T_DIR/churn.out") creates on B"
echo events >"$T_DIR/mode"

# Once the churn stopped: the server has the result.
vold_curl -H "Authorization: Bearer $tok" "$real_url/v1/vol/big/dir/$(vold_curl -H "Authorization: Bearer $tok" "$real_url/v1/vol/big" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["root"])')" |
	python3 -c 'import json,sys
d = json.load(sys.stdin)
print([e["attr"]["fid"] for e in d["entries"] if e["name"] == "dir"][0])' >"$T_DIR/dirfid"
vold_curl -H "Authorization: Bearer $tok" "$real_url/v1/vol/big/dir/$(cat "$T_DIR/dirfid")" |
	python3 -c 'import json,sys; print("\n".join(sorted(e["name"] for e in json.load(sys.stdin)["entries"] if e["name"].startswith(("s", "m")))))' >"$T_DIR/srv.ls"
python3 - "$N" >"$T_DIR/want" <<'PY'
import sys
n = int(sys.argv[1])
names = {"s%06d" % i for i in range(n)} - {"s%06d" % i for i in (10, 11, 12, 13, 14, 20)}
print("\n".join(sorted(names | {"m000020"})))
PY
t_check "the server lists the removed names gone, the moved one moved" cmp -s "$T_DIR/srv.ls" "$T_DIR/want"
t_ok "$(wait_for 10 sh -c "ls -f '$A/dir' | grep '^[sm]' | sort | cmp -s - '$T_DIR/want'" && echo 0 || echo 1)" \
	"A lists the same"
cairnd_umount "$A"
cairnd_umount "$B"
t_done
