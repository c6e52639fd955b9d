#!/usr/bin/env bash
# sync mode (cairnd(8) "Write modes"): once tar -xf on the mount exits,
# the server holds the whole tree. A vos export taken right after tar
# (a snapshot of the volume) must equal a local untar of the same tar:
# names, types, sizes, bytes, modes, mtimes of files and directories,
# and vos examine must count every object and byte. While tar runs, vos
# examine is called in a loop: it must never fail (it used to fail with
# EUCLEAN when it opened the volume during one of cairn-vold's commits,
# and bench-write-sync.sh counted that as files missing on the server).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 600
N=${T2292_FILES:-300}
ROUNDS=${T2292_ROUNDS:-2}
vold_start || exit 99
vos init >/dev/null 2>&1
python3 - "$T_DIR/src" "$N" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "d%02d" % (i // 50))
    os.makedirs(d, exist_ok=True)
    size = 1024 + (i * 7919) % (63 * 1024 + 1)
    if i % 37 == 0:
        size = 0                       # empty files too
    elif i % 41 == 0:
        size = 256 * 1024 + i          # past one chunk and the inline limit
    line = ("small file %d\n" % i).encode()
    p = os.path.join(d, "f%05d.txt" % i)
    with open(p, "wb") as f:
        f.write((line * (size // len(line) + 1))[:size])
    os.chmod(p, (0o640, 0o600, 0o755, 0o644)[i % 4])
    os.utime(p, (1500000000 + i, 1500000000 + i))
for j in range((n + 49) // 50):
    d = os.path.join(root, "d%02d" % j)
    os.chmod(d, (0o755, 0o750)[j % 2])
    os.utime(d, (1400000000 + j, 1400000000 + j))
os.chmod(root, 0o751)
os.utime(root, (1300000000, 1300000000))
PY
tar -C "$T_DIR/src" -cf "$T_DIR/src.tar" . || exit 99
mkdir -p "$T_DIR/ref" && tar -C "$T_DIR/ref" -xf "$T_DIR/src.tar" || exit 99
want_objs=$(( $(find "$T_DIR/ref" | wc -l) + 1 )) # and the volume's root
want_bytes=$(find "$T_DIR/ref" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
for r in $(seq 1 "$ROUNDS"); do
	vos create "v$r" >/dev/null 2>&1 || exit 99
	make_token "v$r" rw "$T_DIR/tok$r"
	M=$T_DIR/m$r
	cairnd_mount "$M" "$T_DIR/c$r" "v$r" "$T_DIR/tok$r" || exit 1
	mkdir "$M/untar"
	tar -C "$M/untar" -xf "$T_DIR/src.tar" 2>"$T_DIR/tar$r.err" &
	tp=$!
	ex_ok=0 ex_bad=0
	while kill -0 "$tp" 2>/dev/null; do
		if vos examine "v$r" --json >"$T_DIR/loop$r.out" 2>&1; then
			ex_ok=$((ex_ok + 1))
		else
			ex_bad=$((ex_bad + 1))
			echo "# examine during tar: $(cat "$T_DIR/loop$r.out")"
		fi
	done
	wait "$tp"
	rc=$?
	sed 's/^/# tar: /' "$T_DIR/tar$r.err" | head -n 5
	t_is "$rc" 0 "round $r: tar -xf on the mount"
	# what the server holds the moment tar exited
	vos examine "v$r" --json >"$T_DIR/exam$r.json" 2>&1
	t_is "$?" 0 "round $r: vos examine after tar"
	vos export "v$r" "$T_DIR/exp$r" >/dev/null 2>"$T_DIR/exp$r.err"
	t_is "$?" 0 "round $r: vos export after tar"
	python3 "$top_srcdir/tests/integration/t2292-cmp.py" "$T_DIR/ref" \
		"$T_DIR/exp$r/untar" >"$T_DIR/cmp$r.out" 2>&1
	rc=$?
	sed 's/^/# /' "$T_DIR/cmp$r.out" | tail -n 20
	t_is "$rc" 0 "round $r: the server's tree is the tar's when tar exited"
	if [ "$r" = 1 ]; then
		# the comparison sees a change (one mtime, then one byte)
		touch -d @1600000000 "$T_DIR/exp1/untar/d00/f00001.txt"
		python3 "$top_srcdir/tests/integration/t2292-cmp.py" "$T_DIR/ref" \
			"$T_DIR/exp1/untar" >/dev/null 2>&1
		t_is "$?" 1 "the comparison sees a changed mtime"
		printf 'X' | dd of="$T_DIR/exp1/untar/d00/f00002.txt" bs=1 seek=5 \
			conv=notrunc 2>/dev/null
		touch -r "$T_DIR/ref/d00/f00001.txt" "$T_DIR/exp1/untar/d00/f00001.txt"
		touch -r "$T_DIR/ref/d00/f00002.txt" "$T_DIR/exp1/untar/d00/f00002.txt"
		t_is "$(python3 "$top_srcdir/tests/integration/t2292-cmp.py" \
			"$T_DIR/ref" "$T_DIR/exp1/untar" 2>&1 | head -n 1)" \
			"d00/f00002.txt: bytes" "the comparison sees a changed byte"
	fi
	t_is "$(python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d["files"], d["bytes"])' "$T_DIR/exam$r.json" 2>&1)" \
		"$want_objs $want_bytes" "round $r: vos examine counts every object and byte"
	echo "# round $r: vos examine during tar: $ex_ok ok, $ex_bad failed"
	t_is "$ex_bad $((ex_ok > 0))" "0 1" "round $r: vos examine never failed while tar ran"
	cairnd_umount "$M"
done
t_done
