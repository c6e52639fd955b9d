#!/bin/bash
# t2362-cm-wcopy-crash-chunks: t2360 (kill -9 of cairnd at random points
# while files are rewritten in 10 KiB writes and read) with files of 1 to
# 3 chunks, some versions written after an O_TRUNC: the fill-to-end
# commits, the truncate checkpoints and the idle checkpoint under kill -9.
# Each file afterwards is an acknowledged or in-flight version, or a
# prefix of one under way over the acknowledged version (or over nothing
# after its truncate); cairn-fsck clean; a fresh client agrees.
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir/build}"
export top_srcdir top_builddir
export WCOPY_BIG=1
export T_DIR=${T_DIR:-$top_builddir/tests/work/t2362-cm-wcopy-crash-chunks}
exec bash "$top_srcdir/tests/integration/t2360-cm-wcopy-crash.sh"
