#!/usr/bin/env bash
# t2226-cm-late-overlap: sync mode, files created while another new file
# of the same directory is still open (its create held for the batch at
# its close). The second create then waits for the first one's answer;
# its store must wait for its own create too, never reach the server
# first with base DV 0 (that was a conflict copy and EIO at close: git
# clone's pack and index files, make -j2's objects and the assembler's
# temporaries). Each pattern: close returns 0, no conflict copy, and a
# fresh client sees the bytes; then git clone and make -j2 on the mount.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 300

vold_start || exit 99
vos init >/dev/null 2>&1
vos create lo >/dev/null || exit 99
make_token lo rw "$T_DIR/tok"
A=$T_DIR/a
cairnd_mount "$A" "$T_DIR/ca" lo "$T_DIR/tok" || exit 1
mkdir -p "$A/d" "$T_DIR/ref"

# The same calls on the mount and on a local directory.
cat >"$T_DIR/overlap.py" <<'PY'
import os, sys
d = sys.argv[1]
j = lambda n: os.path.join(d, n)
rc = 0
def step(name, fn):
    global rc
    try:
        fn()
    except OSError as e:
        print("%s: %s" % (name, e))
        rc = 1
def p1():
    # A open; B created, written, closed; A written, closed.
    a = os.open(j("a1"), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    with open(j("b1"), "wb") as f:
        f.write(b"b1" * 100)
    os.write(a, b"a1" * 100)
    os.close(a)
def p2():
    # Three open at once, closed in reverse order.
    fds = [os.open(j("c%d" % i), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
           for i in range(3)]
    for i, fd in enumerate(fds):
        os.write(fd, (b"c%d" % i) * 500)
    for fd in reversed(fds):
        os.close(fd)
def p3():
    # B created while A is open, B fsynced, renamed, chmodded; then A.
    a = os.open(j("a3"), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(a, b"first")
    b = os.open(j("tmp_b3"), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(b, b"b3" * 4000)
    os.fsync(b)
    os.fchmod(b, 0o444)
    os.close(b)
    os.rename(j("tmp_b3"), j("b3"))
    os.write(a, b" and more")
    os.fsync(a)
    os.close(a)
def p4():
    # B created and unlinked while A is open.
    a = os.open(j("a4"), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    with open(j("gone4"), "wb") as f:
        f.write(b"x")
    os.unlink(j("gone4"))
    os.write(a, b"a4")
    os.close(a)
for n, f in (("p1", p1), ("p2", p2), ("p3", p3), ("p4", p4)):
    step(n, f)
sys.exit(rc)
PY
python3 "$T_DIR/overlap.py" "$T_DIR/ref" || exit 99
python3 "$T_DIR/overlap.py" "$A/d"
t_ok $? "overlapping new files: every call returns 0"
t_is "$(ls "$A/d" | grep -c conflict)" 0 "no conflict copy"
t_is "$(grep -c 'conflict:' "$T_DIR/cairnd-a.log")" 0 "no conflict in the log"

# Four threads creating into one directory, each keeping up to three
# new files open, some fsynced, chmodded or renamed while open. (A rename
# used to get ENOENT: the events of the creates sent before it, replayed
# after their answers, made cairnd fetch the listing again, which lacked
# the names of the files still held.)
mkdir -p "$A/d/many" "$T_DIR/ref/many"
python3 - "$A/d/many" "$T_DIR/ref/many" <<'PY' >"$T_DIR/many.out" 2>&1
import os, random, sys, threading
root, ref = sys.argv[1], sys.argv[2]
errs = []
def worker(w):
    rnd = random.Random(2226 + w)
    fds = []
    for i in range(25):
        name = "w%d-%03d" % (w, i)
        data = os.urandom(rnd.randint(1, 70000))
        mode = 0o600 if rnd.random() < 0.3 else 0o644
        with open(os.path.join(ref, name), "wb") as f:
            f.write(data)
        os.chmod(os.path.join(ref, name), mode)
        try:
            fd = os.open(os.path.join(root, name),
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, data)
            if rnd.random() < 0.3:
                os.fsync(fd)
            os.fchmod(fd, mode)
            fds.append(fd)
            while len(fds) > rnd.randint(0, 3):
                os.close(fds.pop(0))
            if rnd.random() < 0.15:
                os.rename(os.path.join(root, name),
                          os.path.join(root, name + ".r"))
                os.rename(os.path.join(ref, name),
                          os.path.join(ref, name + ".r"))
        except OSError as e:
            errs.append("%s: %s" % (name, e))
    for fd in fds:
        try:
            os.close(fd)
        except OSError as e:
            errs.append("close: %s" % e)
ts = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print("\n".join(errs))
sys.exit(1 if errs else 0)
PY
t_ok $? "four threads, overlapping new files in one directory: every call returns 0 ($(head -c 200 "$T_DIR/many.out"))"

C=$T_DIR/c
cairnd_mount "$C" "$T_DIR/cc" lo "$T_DIR/tok" || exit 1
t_check "fresh client: the same names and bytes" diff -r "$T_DIR/ref" "$C/d"
lst() { (cd "$1" && find . -type f -printf '%P %m %s\n' | sort); }
t_is "$(lst "$C/d")" "$(lst "$T_DIR/ref")" "fresh client: the same modes and sizes"
cairnd_umount "$C"

# git clone (pack and index written side by side) and make -j2.
if command -v git >/dev/null 2>&1; then
	mkdir -p "$T_DIR/repo"
	for i in $(seq 1 60); do echo "file $i" >"$T_DIR/repo/f$i"; done
	(cd "$T_DIR/repo" && git init -q && git add -A &&
		git -c user.name=t -c user.email=t@localhost commit -q -m t) || exit 99
	git clone -q --no-local "$T_DIR/repo" "$A/clone" 2>"$T_DIR/clone.err"
	t_ok $? "git clone onto the mount"
	git -C "$A/clone" fsck --no-progress >"$T_DIR/fsck.out" 2>&1
	t_ok $? "git fsck of the clone: $(head -c 300 "$T_DIR/fsck.out")"
	t_check "the clone has the files" diff -r -x .git "$T_DIR/repo" "$A/clone"
else
	echo "# SKIP git: not installed"
fi
if command -v make >/dev/null 2>&1 && command -v cc >/dev/null 2>&1; then
	mkdir -p "$A/proj"
	for i in $(seq 1 8); do
		echo "int u$i(int x) { return x + $i; }" >"$A/proj/u$i.c"
	done
	printf '%s\n' '#include <stdio.h>' \
		"$(for i in $(seq 1 8); do echo "int u$i(int);"; done)" \
		"int main(void) { printf(\"%d\\n\", $(for i in $(seq 1 8); do printf 'u%s(0) + ' "$i"; done)0); return 0; }" \
		>"$A/proj/main.c"
	printf 'OBJS = main.o %s\nprog: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n' \
		"$(for i in $(seq 1 8); do printf 'u%s.o ' "$i"; done)" >"$A/proj/Makefile"
	make -s -j2 -C "$A/proj" >"$T_DIR/make.out" 2>&1
	t_ok $? "make -j2 on the mount"
	t_is "$("$A/proj/prog" 2>&1)" 36 "the program it built runs"
	t_is "$(ls "$A/proj" | grep -c conflict)" 0 "no conflict copy after make"
fi
t_is "$(grep -c 'conflict:' "$T_DIR/cairnd-a.log")" 0 "still no conflict in the log"
t_done
