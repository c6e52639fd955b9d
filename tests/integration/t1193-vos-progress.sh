#!/bin/bash
# t1193-vos-progress: vos import and export write a progress line on
# stderr when it is a terminal (man vos): "vos: imported N of M objects
# (P %), B MB", rewritten in place (\r ... ESC[K) at most 4 times a
# second, counting up to at most the total, and cleared at the end; none
# when stderr is a pipe or a file, where import prints only its summary
# and export nothing; a message while the line is up clears it first.
# script(1) gives vos a terminal.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 300
command -v script >/dev/null || { echo "# no script(1)"; exit 77; }
src=$T_DIR/src
python3 "$top_srcdir/tests/bench/mktree.py" "$src" 6000 --per 500 || exit 99
total=$(($(find "$src" | wc -l) - 1))
vos init >/dev/null || exit 99

# Under a terminal. A slow source is not needed: the first line comes at
# the 256th object (the clock starts at 0).
script -q -e -c "'$VOS_BIN' --root '$SRV_ROOT' import tty '$src'" /dev/null >"$T_DIR/tty.out" 2>&1
t_ok $? "vos import under a terminal"
python3 - "$T_DIR/tty.out" "$total" imported >"$T_DIR/tty.chk" <<'PY'
import re, sys
out = open(sys.argv[1], "rb").read().decode()
total, verb = int(sys.argv[2]), sys.argv[3]
lines = re.findall(r"\rvos: %s (\d+) of (\d+) objects \((\d+) %%\), (\d+) MB\x1b\[K" % verb, out)
bad = []
if not lines:
    bad.append("no progress line")
prev = 0
for n, m, p, mb in lines:
    n, m, p = int(n), int(m), int(p)
    if m != total:
        bad.append("total %d, not %d" % (m, total))
    if n < prev or n > m or p != n * 100 // m:
        bad.append("line %s %s %s" % (n, m, p))
    prev = n
# cleared before the summary, which is on a line of its own
if not re.search(r"\r\x1b\[K(\r\n|\n)?%s " % verb, out) and "\r\x1b[K" not in out:
    bad.append("not cleared")
if verb + " " not in out.replace("\r\x1b[K", ""):
    bad.append("no summary")
print(len(lines), " / ".join(bad) or "ok")
PY
read -r nl verdict <"$T_DIR/tty.chk"
echo "# import: $nl progress lines"
t_is "$verdict" ok "the progress line of import: counts up to the total, percent, cleared"

script -q -e -c "'$VOS_BIN' --root '$SRV_ROOT' export tty '$T_DIR/out'" /dev/null >"$T_DIR/etty.out" 2>&1
t_ok $? "vos export under a terminal"
python3 - "$T_DIR/etty.out" "$total" exported >"$T_DIR/etty.chk" <<'PY'
import re, sys
out = open(sys.argv[1], "rb").read().decode()
total, verb = int(sys.argv[2]), sys.argv[3]
lines = re.findall(r"\rvos: %s (\d+)(?: of (\d+))? objects(?: \((\d+) %%\))?, (\d+) MB\x1b\[K" % verb, out)
bad = [] if lines else ["no progress line"]
prev = 0
for n, m, p, mb in lines:
    n = int(n)
    if n < prev or (m and n > int(m)):
        bad.append("line %s of %s" % (n, m))
    prev = n
if "\r\x1b[K" not in out:
    bad.append("not cleared")
print(len(lines), " / ".join(bad) or "ok")
PY
read -r nl verdict <"$T_DIR/etty.chk"
echo "# export: $nl progress lines"
t_is "$verdict" ok "the progress line of export"
t_check "the export is whole" diff -r "$src" "$T_DIR/out"

# A message while the line is up (review 10, finding 6): the import
# fails past its --files limit after the first progress line; the error
# must start on a cleared line, not at the end of the progress line.
script -q -e -c "'$VOS_BIN' --root '$SRV_ROOT' import --files 700 quota '$src'" /dev/null >"$T_DIR/q.out" 2>&1
t_ok "$([ $? -ne 0 ] && echo 0 || echo 1)" "vos import past its --files limit fails"
python3 - "$T_DIR/q.out" >"$T_DIR/q.chk" <<'PY'
import re, sys
out = open(sys.argv[1], "rb").read().decode()
bad = []
if not re.search(r"\rvos: imported \d+ of \d+ objects", out):
    bad.append("no progress line before the error")
if not re.search(r"\r\x1b\[Kvos: cannot import '[^']*': Disk quota exceeded", out):
    bad.append("the error is not on a cleared line")
if re.search(r"MB(\x1b\[K)?vos: ", out):
    bad.append("the error follows the progress line")
print(" / ".join(bad) or "ok")
PY
t_is "$(cat "$T_DIR/q.chk")" ok "an error while the progress line is up starts on a cleared line"
t_is "$(ls -A "$SRV_ROOT/volumes" | grep -c quota)" 0 "the failed import left nothing"

# stderr not a terminal (a file; stdout still the terminal): no line.
script -q -e -c "'$VOS_BIN' --root '$SRV_ROOT' import piped '$src' 2>'$T_DIR/piped.err'" /dev/null >"$T_DIR/piped.out" 2>&1
t_ok $? "vos import with stderr to a file"
t_is "$(wc -c <"$T_DIR/piped.err")" 0 "nothing on stderr"
t_ok "$(grep -c $'\r'"vos: imported" "$T_DIR/piped.out" | awk '{print ($1 == 0) ? 0 : 1}')" "no progress line on the terminal either"
"$VOS_BIN" --root "$SRV_ROOT" export piped "$T_DIR/out2" 2>&1 | cat >"$T_DIR/piped2.out"
t_ok "$(grep -c "vos: exported" "$T_DIR/piped2.out" | awk '{print ($1 == 0) ? 0 : 1}')" "export into a pipe: no progress line"
t_ok "$(grep -c $'\033' "$T_DIR/piped2.out" | awk '{print ($1 == 0) ? 0 : 1}')" "and no escape sequence"
t_is "$(wc -c <"$T_DIR/piped2.out")" 0 "export says nothing on success"
t_done
