#!/usr/bin/env bash
# t2290-cm-bigdir-edits: a big directory's cached listing (segments of up
# to 512 entries, stored as pages in meta.tdb, cm/vc.c) stays right under
# edits through the mount, across a restart of cairnd and after a kill -9
# of cairnd in the middle of edits (issue #17):
#   - creates (names that sort first, last, and a run of 1,500 names that
#     all fall in one segment, so it splits), unlinks (a run that empties
#     whole segments), renames within the directory and a file written
#     with content, each done on a local reference directory too: the
#     mount's `ls -f | sort` equals the reference's, lookups and stat
#     agree;
#   - after a restart on the same cache the listing is read back from its
#     pages (no listing fetched) and still equals the reference;
#   - kill -9 of cairnd while a writer creates and unlinks in the
#     directory: after a remount every acknowledged create is there, every
#     acknowledged unlink is gone (the one op in flight may be either),
#     and nothing else changed.
# CAIRN_BIGDIR_N sets the size (default 20,000).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
N=${CAIRN_BIGDIR_N:-20000}
t_timeout $((240 + N / 100))

src=$T_DIR/src
ref=$T_DIR/ref
mkdir -p "$src/big"
python3 - "$src/big" "$N" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    os.close(os.open(os.path.join(d, "f%06d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
PY
cp -a "$src/big" "$ref"
vos init >/dev/null 2>&1
vos import bd "$src" >/dev/null || exit 99
vold_start
make_token bd rw "$T_DIR/tok"
mnt=$T_DIR/mnt
cache=$T_DIR/cache
cairnd_mount "$mnt" "$cache" bd "$T_DIR/tok" || exit 1
stats() { getfattr -n cairn.stats --only-values "$mnt" 2>/dev/null; }
stat_of() { echo "$1" | awk -v k="$2" '$1 == k {print $2}'; }
same() { # LABEL: the mount's listing equals the reference's
	ls -f "$mnt/big" | grep -v '^\.\.\?$' | sort >"$T_DIR/got"
	ls -f "$ref" | grep -v '^\.\.\?$' | sort >"$T_DIR/want"
	if cmp -s "$T_DIR/got" "$T_DIR/want"; then
		t_ok 0 "$1: the listing equals the reference ($(wc -l <"$T_DIR/want") names)"
	else
		t_ok 1 "$1: the listing equals the reference"
		diff "$T_DIR/got" "$T_DIR/want" | head -5 | sed 's/^/# /'
	fi
}

ls -f "$mnt/big" >/dev/null
same "cold listing"

# The edits, on the mount and on the reference alike.
edits() { # DIR
	python3 - "$1" "$N" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
def create(name, data=b""):
    fd = os.open(os.path.join(d, name), os.O_CREAT | os.O_WRONLY, 0o644)
    if data:
        os.write(fd, data)
    os.close(fd)
for name in ["!first", "0000", "zzzz-last", "~tilde"]:
    create(name)
# 1,500 names between f010000 and f010001: one segment grows and splits.
for i in range(1500):
    create("f010000x%04d" % i)
# Unlinks: a run that empties whole segments, and every 97th entry.
for i in range(2000, 3600):
    os.unlink(os.path.join(d, "f%06d" % i))
for i in range(5000, n, 97):
    os.unlink(os.path.join(d, "f%06d" % i))
# Renames: to a name in another segment, within one, over an existing one.
for i in range(4000, 4200, 2):
    os.rename(os.path.join(d, "f%06d" % i), os.path.join(d, "r%06d" % i))
os.rename(os.path.join(d, "f004501"), os.path.join(d, "f004501-b"))
os.rename(os.path.join(d, "f004503"), os.path.join(d, "f004505"))
create("with-data", b"hello big directory\n")
PY
}
edits "$mnt/big" || t_ok 1 "edits through the mount"
edits "$ref"
same "after the edits"
ok=0
for f in with-data f004505 r004100 f010000x0750 '!first' zzzz-last; do
	[ "$(stat -c %s "$mnt/big/$f" 2>/dev/null)" = "$(stat -c %s "$ref/$f")" ] || ok=1
done
for f in f004503 f004100 f002500 f005000; do
	[ -e "$mnt/big/$f" ] && ok=1
done
t_ok $ok "lookups: renamed, created and split-segment names found, removed ones gone"
t_is "$(cat "$mnt/big/with-data")" "hello big directory" "a file written in the big directory reads back"

# A second later, one more edit: the listing is stored (at most once a
# second), so the restart below reads it back from its pages.
sleep 1.2
touch "$mnt/big/after-a-second" "$ref/after-a-second"
same "after a stored edit"
cairnd_umount "$mnt"
cairnd_mount "$mnt" "$cache" bd "$T_DIR/tok" || exit 1
s0=$(stats)
same "after a restart on the same cache"
s1=$(stats)
t_is "$(( $(stat_of "$s1" dir_fetches) - $(stat_of "$s0" dir_fetches) ))" 0 \
	"the restarted cairnd read the listing from its pages (no fetch)"
grep -q "dropping damaged" "$T_DIR"/cairnd-mnt.log &&
	t_ok 1 "no listing was found damaged" || t_ok 0 "no listing was found damaged"

# kill -9 of cairnd while a writer creates and unlinks in the directory.
python3 - "$mnt/big" "$T_DIR/acked" <<'PY' &
import os, sys
d, log = sys.argv[1], open(sys.argv[2], "w", buffering=1)
i = 0
try:
    while i < 100000:
        name = "k%06d" % i
        log.write("try c %s\n" % name)
        os.close(os.open(os.path.join(d, name), os.O_CREAT | os.O_WRONLY, 0o644))
        log.write("ok c %s\n" % name)
        # Victims: f010000.. f018999 not removed by the edits above.
        if i % 3 == 0 and i < 9000 and (10000 + i - 5000) % 97:
            victim = "f%06d" % (10000 + i)
            log.write("try u %s\n" % victim)
            os.unlink(os.path.join(d, victim))
            log.write("ok u %s\n" % victim)
        i += 1
except OSError:
    pass
PY
writer=$!
wait_for 30 sh -c "[ \$(grep -c '^ok c' '$T_DIR/acked' 2>/dev/null || echo 0) -ge 300 ]"
sleep 1.5 # past a listing store (once a second)
cairnd_kill9 "$mnt"
wait "$writer" 2>/dev/null
t_ok $(( $(grep -c '^ok c' "$T_DIR/acked") < 300 ? 1 : 0 )) "the writer made $(grep -c '^ok c' "$T_DIR/acked") creates before the kill"
# Apply the acknowledged ops to the reference; the op in flight is the
# last "try" line without its "ok".
inflight=$(tail -1 "$T_DIR/acked" | awk '$1 == "try" {print $3}')
awk '$1 == "ok" && $2 == "c" {print $3}' "$T_DIR/acked" | (cd "$ref" && xargs -r touch)
awk '$1 == "ok" && $2 == "u" {print $3}' "$T_DIR/acked" | (cd "$ref" && xargs -r rm -f)
cairnd_mount "$mnt" "$cache" bd "$T_DIR/tok" || exit 1
ls -f "$mnt/big" | grep -v '^\.\.\?$' | sort >"$T_DIR/got"
ls -f "$ref" | grep -v '^\.\.\?$' | sort >"$T_DIR/want"
if [ -n "$inflight" ]; then
	grep -vxF -- "$inflight" "$T_DIR/got" >"$T_DIR/got2"
	grep -vxF -- "$inflight" "$T_DIR/want" >"$T_DIR/want2"
else
	cp "$T_DIR/got" "$T_DIR/got2"; cp "$T_DIR/want" "$T_DIR/want2"
fi
cmp -s "$T_DIR/got2" "$T_DIR/want2"
t_ok $? "after kill -9 and a remount: every acknowledged op is in the listing, nothing else changed (in flight: ${inflight:-none})"
diff "$T_DIR/got2" "$T_DIR/want2" | head -5 | sed 's/^/# /'
# And what the cache serves is what the server has: a remount on an
# empty cache lists the same.
cairnd_umount "$mnt"
cairnd_mount "$mnt" "$T_DIR/cache2" bd "$T_DIR/tok" || exit 1
ls -f "$mnt/big" | grep -v '^\.\.\?$' | sort >"$T_DIR/fresh"
cmp -s "$T_DIR/got" "$T_DIR/fresh"
t_ok $? "the listing kept by the cache equals a fresh one from the server"
cairnd_umount "$mnt"
t_done
