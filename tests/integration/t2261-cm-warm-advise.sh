#!/usr/bin/env bash
# t2261-cm-warm-advise: a warm sequential reader (chunks cached, their
# files not in the page cache) has the chunk files ahead of it read by
# the kernel (POSIX_FADV_WILLNEED over cairnd's readahead window), not
# one chunk file at a time as its READs reach them (issue #16, warm
# sequential read). Checked by what is resident: after the first 2 MiB of
# a 32 MiB file, the chunk files hold far more than the kernel's own
# FUSE readahead asked for; and the bytes read are the server's. The
# same for a walker of small files: opening the first file of a
# directory has the chunk files of the next 32 small files read ahead.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 120
command -v fincore >/dev/null || { echo "# SKIP: no fincore"; exit 77; }

src=$T_DIR/src
mkdir -p "$src"
head -c $((32 << 20)) /dev/urandom >"$src/big"
mkdir -p "$src/d"
for i in $(seq -w 1 64); do head -c 20000 /dev/urandom >"$src/d/f$i"; done
vold_start
vos init >/dev/null 2>&1
vos import wa "$src" >/dev/null || exit 99
make_token wa ro "$T_DIR/tok"
mnt=$T_DIR/mnt
cache=$T_DIR/cache
cairnd_mount "$mnt" "$cache" wa "$T_DIR/tok" || exit 1
stat_of() { getfattr -n cairn.stats --only-values "$mnt" 2>/dev/null | awk -v k="$1" '$1 == k {print $2}'; }
t_check "cold read right" cmp "$mnt/big" "$src/big"
t_check "cold: 64 small files right" diff -r "$mnt/d" "$src/d"
wait_for 10 sh -c "[ \$(getfattr -n cairn.stats --only-values '$mnt' 2>/dev/null | awk '\$1 == \"chunks_fetched\" {print \$2}') -ge 192 ]"
cairnd_umount "$mnt"
# Warm: a fresh mount (no pages of the file) and no chunk file in the
# page cache.
cairnd_mount "$mnt" "$cache" wa "$T_DIR/tok" || exit 1
evict() { python3 -c '
import os, sys
for root, ds, fs in os.walk(sys.argv[1]):
    for f in fs:
        fd = os.open(os.path.join(root, f), os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)' "$cache/chunks"; }
resident() { find "$cache/chunks" -type f -print0 | xargs -0 fincore --bytes --noheadings --output RES | awk '{s += $1} END {print s + 0}'; }

# Small files: the first one's open advises the next 32.
ls -l "$mnt/d" >/dev/null
evict
first=$(ls -U "$mnt/d" | head -1)
t_check "the first small file reads right" cmp "$mnt/d/$first" "$src/d/$first"
if wait_for 5 sh -c "[ \$(find '$cache/chunks' -type f -print0 | xargs -0 fincore --bytes --noheadings --output RES | awk '{s += \$1} END {print s + 0}') -ge $((16 * 20000)) ]"; then r=0; else r=1; fi
t_ok "$r" "small siblings read ahead: $(resident) bytes resident (>= 16 files' worth)"
t_check "64 small files still right" diff -r "$mnt/d" "$src/d"

evict
r0=$(resident)
t_ok "$([ "$r0" -lt $((1 << 20)) ] && echo 0 || echo 1)" "chunk files evicted ($r0 bytes resident)"
a0=$(stat_of chunks_advised)
t_check "the first 2 MiB read right" cmp <(dd if="$mnt/big" bs=256k count=8 2>/dev/null) <(head -c $((2 << 20)) "$src/big")
# The kernel's FUSE readahead (4 MiB) brings at most ~6 MiB of chunks;
# cairnd's window advises up to 32 chunks (8 MiB) past the reader.
if wait_for 5 sh -c "[ \$(find '$cache/chunks' -type f -print0 | xargs -0 fincore --bytes --noheadings --output RES | awk '{s += \$1} END {print s + 0}') -ge $((11 << 20)) ]"; then r=0; else r=1; fi
t_ok "$r" "chunk files read ahead: $(resident) bytes resident (>= 11 MiB)"
t_ok "$([ $(( $(stat_of chunks_advised) - a0 )) -ge 32 ] && echo 0 || echo 1)" \
	"chunks advised: $(( $(stat_of chunks_advised) - a0 )) (>= 32)"
t_check "the rest reads right" cmp "$mnt/big" "$src/big"
cairnd_umount "$mnt"
t_done
