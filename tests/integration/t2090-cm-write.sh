#!/usr/bin/env bash
# t2090-cm-write: a read-write mount. Each mutation works and reaches the
# server (checked through a second mount with its own empty cache);
# partial writes into chunks not cached yet keep the server's other
# bytes; a read-only token gets EROFS; kill -9 of cairnd before close
# keeps what fsync acknowledged and what the idle checkpoint committed (a
# write left 1 s), drops or keeps whole what only write returned, and
# stores the kept bytes at restart; a change made
# on one client is seen on another within a second.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 180

src=$T_DIR/src
mkdir -p "$src/d"
echo hello >"$src/d/a.txt"
head -c $((3 * 256 * 1024 + 1000)) /dev/urandom >"$src/big"
vold_start
vos init >/dev/null 2>&1
vos import wv "$src" >/dev/null || exit 99
make_token wv rw "$T_DIR/tok"
make_token wv ro "$T_DIR/rotok"
A=$T_DIR/a
B=$T_DIR/b
cairnd_mount "$A" "$T_DIR/ca" wv "$T_DIR/tok" || exit 1

exp=$T_DIR/exp
mkdir -p "$exp"
cp "$src/big" "$exp/big"

# --- each call ---
echo new >"$A/new.txt"
t_is "$(cat "$A/new.txt")" "new" "create + write + read back"
t_check "mkdir" mkdir "$A/nd"
t_check "rename across directories" mv "$A/new.txt" "$A/nd/moved.txt"
t_is "$(ls "$A/nd")" "moved.txt" "listing after rename"
t_check "symlink" ln -s nd/moved.txt "$A/sl"
t_is "$(readlink "$A/sl")" "nd/moved.txt" "readlink"
t_check "hard link" ln "$A/nd/moved.txt" "$A/hard"
t_is "$(stat -c %h "$A/hard")" 2 "nlink 2 after link"
t_check "chmod" chmod 640 "$A/hard"
t_is "$(stat -c %a "$A/nd/moved.txt")" 640 "mode seen through the other name"
t_check "setxattr" setfattr -n user.k -v v1 "$A/hard"
t_is "$(getfattr -n user.k --only-values "$A/hard" 2>/dev/null)" "v1" "getxattr after set"
t_check "removexattr" setfattr -x user.k "$A/hard"
getfattr -n user.k "$A/hard" >/dev/null 2>"$T_DIR/err"
t_ok "$(grep -q 'No such attribute' "$T_DIR/err" && echo 0 || echo 1)" "removed xattr: ENODATA"
# A write into the middle of a chunk that was never read: the rest of
# the chunk must come from the server, not read as zeros.
printf 'XY' | dd of="$A/big" bs=1 seek=300000 conv=notrunc 2>/dev/null
printf 'XY' | dd of="$exp/big" bs=1 seek=300000 conv=notrunc 2>/dev/null
t_check "partial write into an uncached chunk" cmp "$A/big" "$exp/big"
truncate -s 1000 "$A/big"
truncate -s 1000 "$exp/big"
t_is "$(stat -c %s "$A/big")" 1000 "truncate"
truncate -s 600000 "$A/big"
truncate -s 600000 "$exp/big"
t_check "truncate down then up reads zeros" cmp "$A/big" "$exp/big"
rmdir "$A/nd" 2>"$T_DIR/err"
t_ok "$(grep -q 'not empty' "$T_DIR/err" && echo 0 || echo 1)" "rmdir of a non-empty dir: ENOTEMPTY"
mkdir "$A/nd" 2>"$T_DIR/err"
t_ok "$(grep -q 'File exists' "$T_DIR/err" && echo 0 || echo 1)" "mkdir of an existing name: EEXIST"
t_check "unlink" rm "$A/hard"
t_is "$(stat -c %h "$A/nd/moved.txt")" 1 "nlink back to 1"
t_check "rmdir" sh -c "rm '$A/nd/moved.txt' && rmdir '$A/nd'"
t_ok "$([ ! -e "$A/nd" ] && echo 0 || echo 1)" "directory gone"
long=$(printf 'x%.0s' $(seq 1 256))
touch "$A/$long" 2>"$T_DIR/err"
t_ok "$(grep -q 'too long' "$T_DIR/err" && echo 0 || echo 1)" "256-byte name: ENAMETOOLONG"
mkfifo "$A/fifo"
t_is "$(stat -c %F "$A/fifo")" "fifo" "mkfifo"
seq 1 20000 >"$A/seq.txt"
seq 1 20000 >"$exp/seq.txt"
t_check "a bigger file written sequentially" cmp "$A/seq.txt" "$exp/seq.txt"

# --- the server has all of it: a second client with an empty cache ---
cairnd_mount "$B" "$T_DIR/cb" wv "$T_DIR/tok" || exit 1
t_check "other client: big matches" cmp "$B/big" "$exp/big"
t_check "other client: seq.txt matches" cmp "$B/seq.txt" "$exp/seq.txt"
t_is "$(readlink "$B/sl")" "nd/moved.txt" "other client: symlink"
t_is "$(stat -c %F "$B/fifo")" "fifo" "other client: fifo"

# --- changes from one client show on the other within a second ---
cat "$B/d/a.txt" >/dev/null
echo changed >"$A/d/a.txt"
wait_for 1 sh -c "[ \"\$(cat '$B/d/a.txt')\" = changed ]"
t_ok $? "write+close on A read on B within 1 s"
mkdir "$A/fresh"
wait_for 1 test -d "$B/fresh"
t_ok $? "mkdir on A seen on B within 1 s"
cairnd_umount "$B"

# --- a read-only token ---
cairnd_mount "$B" "$T_DIR/cro" wv "$T_DIR/rotok" || exit 1
echo x 2>"$T_DIR/err" >"$B/ro.txt"
t_ok "$(grep -q 'Read-only' "$T_DIR/err" && echo 0 || echo 1)" "create with a read-only token: EROFS"
cairnd_umount "$B"

# --- kill -9 after writes returned, before close: what fsync acknowledged
# is kept; what only write returned is lost unless the idle checkpoint (a
# write uncommitted for 1 s, doc/cm.md "Data") committed it first: then
# all of it is kept, never a part or zeros (doc/cm.md "Data") ---
# (not a shell's printf >&3: the shell closes a dup of the descriptor,
# a flush, and that stores the file as a close does)
python3 -c 'import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"lost in the crash")
time.sleep(60)' "$A/k.txt" &
wpid=$!
python3 - "$A/s.txt" "$T_DIR/synced" <<'PY' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"fsynced ")
os.write(fd, b"part")
os.fsync(fd)
os.write(fd, b" and a tail only written")
open(sys.argv[2], "w").close()
time.sleep(60)
PY
spid=$!
# written once, then left open for 2.5 s: the idle checkpoint commits it
python3 - "$A/idle.txt" "$T_DIR/idle" <<'PY' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"committed while idle")
open(sys.argv[2], "w").close()
time.sleep(60)
PY
ipid=$!
wait_for 5 sh -c "[ \"\$(cat '$A/k.txt' 2>/dev/null)\" = 'lost in the crash' ]"
t_ok $? "write visible before close"
wait_for 10 test -e "$T_DIR/synced"
t_is "$(cat "$A/s.txt")" "fsynced part and a tail only written" "all of it visible before close"
wait_for 10 test -e "$T_DIR/idle"
sleep 2.5
cairnd_kill9 "$A"
kill "$wpid" "$spid" "$ipid" 2>/dev/null
wait "$wpid" "$spid" "$ipid" 2>/dev/null
cairnd_mount "$A" "$T_DIR/ca" wv "$T_DIR/tok" || exit 1
k=$(cat "$A/k.txt" 2>&1)
t_ok "$([ -z "$k" ] || [ "$k" = "lost in the crash" ]; echo $?)" "a write nothing acknowledged: the file as its create left it, or all of the write (got '$k')"
s_=$(cat "$A/s.txt" 2>&1)
t_ok "$([ "$s_" = "fsynced part" ] || [ "$s_" = "fsynced part and a tail only written" ]; echo $?)" "fsynced bytes kept, the later write all or nothing (got '$s_')"
t_is "$(cat "$A/idle.txt" 2>&1)" "committed while idle" "a write left idle for 2.5 s was checkpointed: kept"
cairnd_mount "$B" "$T_DIR/cb2" wv "$T_DIR/tok" || exit 1
wait_for 10 sh -c "[ \"\$(cat '$B/s.txt' 2>/dev/null)\" = '$s_' ]"
t_ok $? "the server has the bytes kept"
wait_for 10 sh -c "[ \"\$(cat '$B/k.txt' 2>/dev/null)\" = '$k' ]"
t_ok $? "and the unacknowledged file as kept"
wait_for 10 sh -c "[ \"\$(cat '$B/idle.txt' 2>/dev/null)\" = 'committed while idle' ]"
t_ok $? "and the idle one"
cairnd_umount "$B"

# --- kill -9 after close returned: the server has it ---
head -c 700000 /dev/urandom >"$exp/after"
cp "$exp/after" "$A/after"
cairnd_kill9 "$A"
cairnd_mount "$B" "$T_DIR/cb3" wv "$T_DIR/tok" || exit 1
t_check "closed file on the server after kill -9" cmp "$B/after" "$exp/after"
cairnd_umount "$B"

# --- a file bigger than the cache: the dirty limit stores it while it is
# written (else the cache fills with dirty chunks and the write fails
# with ENOSPC), and what the server gets is the whole file ---
stat_of() { getfattr --absolute-names --only-values -n cairn.stats "$1" | awk -v k="$2" '$1 == k {print $2}'; }
cairnd_mount "$A" "$T_DIR/csmall" wv "$T_DIR/tok" --cache-size 32M --dirty-limit 8M || exit 1
head -c $((80 * 1024 * 1024)) /dev/urandom >"$exp/huge"
dd if="$exp/huge" of="$A/huge" bs=1M 2>"$T_DIR/dd.err"
t_is "$?" 0 "write 80 MiB through a 32 MiB cache (dirty limit 8 MiB)"
[ -s "$T_DIR/dd.err" ] && grep -v records "$T_DIR/dd.err" | sed 's/^/#   /'
wb=$(stat_of "$A" writebacks)
t_ok "$([ "${wb:-0}" -ge 5 ] && echo 0 || echo 1)" "stored before close, more than once ($wb write-backs)"
used=$(stat_of "$A" cache_bytes_used)
t_ok "$([ "${used:-999999999}" -le $((32 * 1024 * 1024)) ] && echo 0 || echo 1)" \
	"the cache stayed within its limit ($used bytes)"
cairnd_mount "$B" "$T_DIR/cb4" wv "$T_DIR/tok" || exit 1
t_check "the server has all 80 MiB" cmp "$B/huge" "$exp/huge"
cairnd_umount "$B"
cairnd_umount "$A"

# --- a volume quota: a store past it fails with EDQUOT at close, one
# within it works ---
vos create wq --quota 1M >/dev/null 2>&1 || exit 99
make_token wq rw "$T_DIR/qtok"
cairnd_mount "$A" "$T_DIR/cq" wq "$T_DIR/qtok" || exit 1
t_check "within the quota: 100 KiB" sh -c "head -c 102400 /dev/zero >'$A/small'"
head -c $((2 * 1024 * 1024)) /dev/zero 2>/dev/null | dd of="$A/big" bs=1M conv=fsync 2>"$T_DIR/q.err"
t_ok "$(grep -q 'quota' "$T_DIR/q.err" && echo 0 || echo 1)" "past the quota: EDQUOT ($(grep -o 'Disk quota exceeded' "$T_DIR/q.err" | head -n 1))"
cairnd_umount "$A"
t_done
