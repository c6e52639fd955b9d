#!/bin/bash
# t1181-vol-journal-batch-crash: t1125 (kill -9 of cairn-vold while 3
# clients send batches and group commits; every acknowledged op there,
# none applied twice) with cairn-vold journalling its commits and
# checkpointing whenever the journal passes 4 KiB.
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir/build}"
export top_srcdir top_builddir
export VOLD_ARGS="--journal yes --journal-checkpoint 4K"
export T_DIR=${T_DIR:-$top_builddir/tests/work/t1181-vol-journal-batch-crash}
exec bash "$top_srcdir/tests/integration/t1125-vol-batch-crash.sh"
