#!/bin/bash
# t2361-cm-wcopy-crash-wb: t2360 (kill -9 of cairnd at random points
# while small files are rewritten in 10 KiB writes and read; each file
# one acknowledged or in-flight version afterwards, cairn-fsck clean) on
# a mount in write-mode writeback, where close returns once the store is
# in the local replay log and its chunks are synced.
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir/build}"
export top_srcdir top_builddir
export WCOPY_MODE=writeback
export T_DIR=${T_DIR:-$top_builddir/tests/work/t2361-cm-wcopy-crash-wb}
exec bash "$top_srcdir/tests/integration/t2360-cm-wcopy-crash.sh"
