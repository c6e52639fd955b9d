#!/bin/bash
# t1180-vol-journal-crash: t1050 (kill -9 of cairn-vold at random points
# while a client stores; every acknowledged store there, never a mix)
# with cairn-vold journalling its commits and checkpointing whenever the
# journal passes 4 KiB, so that the kills land in journalled commits, in
# checkpoints, and in the replay of the journal the last kill left.
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir/build}"
export top_srcdir top_builddir
export VOLD_ARGS="--journal yes --journal-checkpoint 4K"
export T_DIR=${T_DIR:-$top_builddir/tests/work/t1180-vol-journal-crash}
exec bash "$top_srcdir/tests/integration/t1050-vol-crash.sh"
