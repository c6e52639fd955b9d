#!/bin/sh
# check-layers.sh - fail when a source file includes a header its layer may
# not see (STYLE.md section 1). Reads only #include lines, so it is cheap and
# runs in make check.
#
#   base/        -> libc only: the lowest level, which everything may use
#                   (one CRC32C for chunkstore/ and common/ alike)
#   chunkstore/  -> libc and base/ (no other cairn header, no
#                   fuse/event/curl/tdb)
#   common/      -> common/, base/; <tdb.h> in common/tdbw.* only
#   vol/         -> base/, common/, vol/ (never cm/ or chunkstore/)
#   cm/          -> base/, common/, chunkstore/, cm/ (never vol/)
#   admin/fs*    -> common/ctl_proto.h and generic common helpers; never
#                   chunkstore/ or cm/ internals
#   admin/cairn_fsck.c -> chunkstore/, base/ only (no fuse, no common/)
#   admin/vos*   -> common/, vol/ storage library
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
cd "$top_srcdir" || exit 99
fail=0
n=0

check() { # label, files, forbidden-regex
	label=$1 pattern=$3
	for f in $2; do
		[ -f "$f" ] || continue
		n=$((n + 1))
		bad=$(grep -nE '^[[:space:]]*#[[:space:]]*include' "$f" | grep -E "$pattern")
		if [ -n "$bad" ]; then
			echo "layer violation ($label) in $f:"
			echo "$bad" | sed 's/^/    /'
			fail=1
		fi
	done
}

check base "base/*.c base/*.h" \
	'"(common|chunkstore|cm|vol|admin)/|<fuse|<event2?/|<curl/|<tdb\.h>|<jansson|<openssl/'
check chunkstore "chunkstore/*.c chunkstore/*.h" \
	'"(common|cm|vol|admin)/|<fuse|<event2?/|<curl/|<tdb\.h>|<jansson|<openssl/'
check common "$(ls common/*.c common/*.h | grep -v '^common/tdbw\.')" \
	'"(chunkstore|cm|vol|admin)/|<fuse|<tdb\.h>|<curl/'
# ... except the tdb wrapper: it is the one place tdb's errors become errnos
# for the replay log, the metadata cache (cm/) and the volume store (vol/),
# and common/ is the only folder both may include. Nothing else in common/
# may reach tdb.
check common-tdbw "common/tdbw.c common/tdbw.h" '"(chunkstore|cm|vol|admin)/|<fuse|<curl/'
check vol "vol/*.c vol/*.h" '"(cm|chunkstore)/|<fuse|<curl/'
check cm "cm/*.c cm/*.h" '"vol/'
check fs "admin/fs.c admin/fs_*.c admin/fs*.h" '"(chunkstore|cm|vol)/|<fuse|<tdb\.h>'
check fsck "admin/cairn_fsck.c" '"(common|cm|vol)/|<fuse|<event2?/|<curl/|<tdb\.h>'
check vos "admin/vos*.c" '"(cm|chunkstore)/|<fuse|<curl/'

echo "checked $n files"
[ "$n" -gt 0 ] || { echo "no source files found under $top_srcdir"; exit 99; }
exit $fail
