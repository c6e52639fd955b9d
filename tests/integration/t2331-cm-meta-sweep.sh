#!/usr/bin/env bash
# t2331-cm-meta-sweep: damaged and orphan records of cairnd's metadata
# cache (meta.tdb, cm/vc.c; issue #17):
#   - orphan listing pages (pages no listing names, as a kill between the
#     steps of a store leaves them) are reported by cairn-fsck and swept
#     by the next cairnd start after an unclean stop; cairn-fsck is then
#     clean;
#   - listing, page and attribute records with a flipped byte (torn in
#     place, or rotten) are dropped and fetched again: the listing equals
#     the server's, the attributes are right, cairn-fsck finds and
#     repairs them.
# CAIRN_SWEEP_N sets the directory's size (default 5,000).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
N=${CAIRN_SWEEP_N:-5000}
t_timeout $((180 + N / 100))
META=$top_srcdir/tests/integration/t2331-meta.py

src=$T_DIR/src
mkdir -p "$src/big"
python3 - "$src/big" "$N" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(d, "f%06d" % i), "w") as f:
        f.write("x" * (i % 7))
PY
vos init >/dev/null 2>&1
vos import sw "$src" >/dev/null || exit 99
vold_start
make_token sw rw "$T_DIR/tok"
mnt=$T_DIR/mnt
cache=$T_DIR/cache
log=$T_DIR/cairnd-mnt.log
listing() { ls -f "$mnt/big" | grep -v '^\.\.\?$' | sort; }
fsck_status() { "$FSCK" --check "$@" "$cache" >"$T_DIR/fsck.out" 2>&1; echo $?; }

cairnd_mount "$mnt" "$cache" sw "$T_DIR/tok" || exit 1
listing >"$T_DIR/want"
t_is "$(wc -l <"$T_DIR/want")" "$N" "the listing has $N names"
ls -l "$mnt/big" >"$T_DIR/want-l"
cairnd_umount "$mnt"
t_is "$(fsck_status)" 0 "cairn-fsck: clean after a clean stop"
grep -q "metadata records in 1 files" "$T_DIR/fsck.out"
t_ok $? "cairn-fsck checked the metadata cache"
read -r counts <<<"$(python3 "$META" count "$cache/meta.tdb")"
echo "# meta.tdb: $counts"

# --- orphans after an unclean stop: swept at the next start ---
cairnd_mount "$mnt" "$cache" sw "$T_DIR/tok" || exit 1
listing >/dev/null
cairnd_kill9 "$mnt"
t_is "$(python3 "$META" orphans "$cache/meta.tdb" 40)" 40 "40 orphan pages added after a kill -9"
t_is "$(fsck_status)" 4 "cairn-fsck: orphans are uncorrected errors"
t_is "$(grep -c 'orphan' "$T_DIR/fsck.out")" 40 "cairn-fsck names each orphan page"
: >"$log"
cairnd_mount "$mnt" "$cache" sw "$T_DIR/tok" || exit 1
grep -q "swept 40 orphan listing pages" "$log"
t_ok $? "the start after the kill swept the 40 orphans"
t_is "$(getfattr -n cairn.stats --only-values "$mnt" | awk '$1 == "meta_swept" {print $2}')" 40 \
	"cairn.stats: meta_swept 40"
listing >"$T_DIR/got"
cmp -s "$T_DIR/got" "$T_DIR/want"
t_ok $? "the listing is kept and equals the server's"
cairnd_umount "$mnt"
t_is "$(fsck_status)" 0 "cairn-fsck: clean after the sweep"

# --- torn records: dropped, fetched again, never wrong ---
for tag in D G A; do
	python3 "$META" flip "$cache/meta.tdb" $tag 3 >/dev/null
done
t_is "$(fsck_status)" 4 "cairn-fsck: flipped D, G and A records are errors"
grep -q "damaged metadata record 'A'" "$T_DIR/fsck.out"
t_ok $? "cairn-fsck: a damaged attribute record"
grep -Eq "names a missing or damaged page|damaged metadata record 'D'" "$T_DIR/fsck.out"
t_ok $? "cairn-fsck: a broken listing"
: >"$log"
cairnd_mount "$mnt" "$cache" sw "$T_DIR/tok" || exit 1
listing >"$T_DIR/got"
cmp -s "$T_DIR/got" "$T_DIR/want"
t_ok $? "with torn records the listing still equals the server's"
ls -l "$mnt/big" >"$T_DIR/got-l"
cmp -s "$T_DIR/got-l" "$T_DIR/want-l"
t_ok $? "... and every entry's attributes (ls -l)"
grep -q "dropping damaged metadata record" "$log"
t_ok $? "cairnd logged a damaged record"
t_is "$(grep -c "dropping damaged metadata record" "$log")" 1 "... once"
dmg=$(getfattr -n cairn.stats --only-values "$mnt" | awk '$1 == "meta_damaged" {print $2}')
t_ok $(( dmg >= 3 ? 0 : 1 )) "cairn.stats: meta_damaged counts them ($dmg)"
cairnd_umount "$mnt"
t_is "$(fsck_status)" 0 "cairn-fsck: clean after cairnd fetched them again"

# --- cairn-fsck --repair of a cleanly closed file ---
python3 "$META" orphans "$cache/meta.tdb" 5 >/dev/null
python3 "$META" flip "$cache/meta.tdb" A 2 >/dev/null
t_is "$(fsck_status)" 4 "cairn-fsck --check: 5 orphans and 2 bad records"
"$FSCK" --repair --json "$cache" >"$T_DIR/repair.json" 2>&1
t_is "$?" 1 "cairn-fsck --repair: all corrected (exit 1)"
t_is "$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["meta_files"], j["corrected"])' "$T_DIR/repair.json")" \
	"1 7" "cairn-fsck --repair: one metadata file, 7 corrections"
t_is "$(fsck_status)" 0 "cairn-fsck: clean after the repair"
cairnd_mount "$mnt" "$cache" sw "$T_DIR/tok" || exit 1
listing >"$T_DIR/got"
cmp -s "$T_DIR/got" "$T_DIR/want"
t_ok $? "after the repair the listing equals the server's"
cairnd_umount "$mnt"

# --- a meta.tdb that is not a tdb at all ---
cp "$cache/meta.tdb" "$T_DIR/meta.save"
head -c 4096 /dev/urandom >"$cache/meta.tdb"
t_is "$(fsck_status)" 4 "cairn-fsck: a meta.tdb that is not a tdb is an error"
grep -q "cannot read metadata cache" "$T_DIR/fsck.out"
t_ok $? "cairn-fsck says it cannot read it"
"$FSCK" --repair --quiet "$cache" >"$T_DIR/fsck.out" 2>&1
t_is "$?" 1 "cairn-fsck --repair removes it (exit 1)"
t_ok "$([ ! -e "$cache/meta.tdb" ] && echo 0 || echo 1)" "... the file is gone"
cairnd_mount "$mnt" "$cache" sw "$T_DIR/tok" || exit 1
listing >"$T_DIR/got"
cmp -s "$T_DIR/got" "$T_DIR/want"
t_ok $? "cairnd starts on it and lists what the server has"
cairnd_umount "$mnt"
t_is "$(fsck_status)" 0 "cairn-fsck: clean again"
t_done
