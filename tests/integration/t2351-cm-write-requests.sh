#!/usr/bin/env bash
# t2351-cm-write-requests: the FUSE requests a written file costs, counted
# by opcode from /dev/fuse (cairn.stats fuse_op_*). With
# FUSE_HANDLE_KILLPRIV_V2 the kernel asks for security.capability once at
# a file's first write (then the inode is S_NOSEC) instead of at every
# write: 20 files of ten 10 KiB writes make 200 WRITE requests (the files
# are created write-only: direct writes, t2357) and at most about 20
# GETXATTR requests (one a WRITE before). An untar (GNU tar as root: writes,
# then futimens, fchown, fchmod) adds the one a chown always asks (the
# kernel's security_inode_need_killpriv()): about 2 a file. In writeback
# mode the same. The files are what was written.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 240
umask 022
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

vol_setup wr
A=$T_DIR/a
cairnd_mount "$A" "$T_DIR/ca" wr "$T_DIR/tok" || exit 1
t_ok "$(grep -q 'killpriv_v2 yes' "$T_DIR/cairnd-a.log" && echo 0 || echo 1)" \
	"cairnd negotiated FUSE_HANDLE_KILLPRIV_V2"

stats() { getfattr --only-values -n cairn.stats "$A" 2>/dev/null; }
op() { awk -v k="fuse_op_$1" '$1 == k { v = $2 } END { print v + 0 }' "$2"; }
# What reading the counters costs in getxattr requests (size query, read).
stats >"$T_DIR/z0"; stats >"$T_DIR/z1"
over=$(( $(op getxattr "$T_DIR/z1") - $(op getxattr "$T_DIR/z0") ))
t_ok "$([ "$over" -ge 1 ] && [ "$over" -le 3 ] && echo 0 || echo 1)" \
	"reading the counters costs $over getxattr requests"

# ten 10 KiB writes to each of 20 new files
writes() { # DIR
	local i
	mkdir -p "$1"
	for i in $(seq 1 20); do
		dd if="$T_DIR/src/t/f$i" of="$1/f$i" bs=10k count=10 status=none
	done
}
mkdir -p "$T_DIR/src/t"
for i in $(seq 1 20); do
	head -c 102400 /dev/urandom >"$T_DIR/src/t/f$i"
done
round() { # NAME
	local n=$1
	stats >"$T_DIR/$n.0"
	writes "$A/$n"
	stats >"$T_DIR/$n.1"
	w=$(( $(op write "$T_DIR/$n.1") - $(op write "$T_DIR/$n.0") ))
	g=$(( $(op getxattr "$T_DIR/$n.1") - $(op getxattr "$T_DIR/$n.0") - over ))
	echo "# $n: 20 files: $w write, $g getxattr requests"
	# (dd creates its files write-only: written past the page cache,
	# one WRITE a write(2); through the cache a 10 KiB write that
	# starts inside a page was two, t2357)
	t_is "$w" 200 "$n: one write request a write(2)"
	t_ok "$([ "$g" -ge 0 ] && [ "$g" -le 22 ] && echo 0 || echo 1)" \
		"$n: at most about one getxattr a file ($g for 20 files)"
	t_check "$n: the files are what was written" diff -r "$T_DIR/src/t" "$A/$n"
}
round sync

# GNU tar: 20 files of 1-60 KiB
mkdir -p "$T_DIR/tsrc/t"
for i in $(seq 1 20); do
	head -c $(( (i * 3331) % 60000 + 1000 )) /dev/urandom >"$T_DIR/tsrc/t/f$i"
done
tar -C "$T_DIR/tsrc" -cf "$T_DIR/t.tar" t
mkdir "$A/x"
stats >"$T_DIR/x.0"
tar -C "$A/x" -xf "$T_DIR/t.tar"
stats >"$T_DIR/x.1"
g=$(( $(op getxattr "$T_DIR/x.1") - $(op getxattr "$T_DIR/x.0") - over ))
w=$(( $(op write "$T_DIR/x.1") - $(op write "$T_DIR/x.0") ))
echo "# untar of 20 files: $w write, $g getxattr requests"
for k in lookup create write setattr getxattr getattr flush release; do
	echo "#   $k $(( $(op $k "$T_DIR/x.1") - $(op $k "$T_DIR/x.0") ))"
done
t_ok "$([ "$g" -ge 0 ] && [ "$g" -le 42 ] && echo 0 || echo 1)" \
	"untar: at most about two getxattr a file ($g for 20 files)"
t_check "untar: the files are what was written" diff -r "$T_DIR/tsrc/t" "$A/x/t"

# the same counters in fs metrics
"$FS" metrics -m "$A" >"$T_DIR/metrics" 2>&1
mw=$(awk '$1 ~ /^cairnd_fuse_opcode_requests_total\{.*op="write"/ { print $2 }' "$T_DIR/metrics")
t_ok "$([ -n "$mw" ] && [ "$mw" -ge "$(op write "$T_DIR/x.1")" ] && echo 0 || echo 1)" \
	"fs metrics: cairnd_fuse_opcode_requests_total by op ($mw writes)"
t_is "$(grep -c '^cairnd_fuse_opcode_requests_total{op="write"} ' "$T_DIR/metrics")|$(grep -c '^cairnd_fuse_opcode_requests_total{.*volume=' "$T_DIR/metrics")" \
	"1|0" "fs metrics: the opcode family is given once, without a volume label (the process's counts)"

t_check "fs setpolicy --write-mode writeback" "$FS" setpolicy -m "$A" --write-mode writeback
round wb
t_check "fs sync" "$FS" sync -m "$A"

t_done
