#!/bin/sh
# check-layers.sh - fail when a source file includes a header its layer may
# not see (STYLE.md section 1). Reads only #include lines, so it is cheap and
# runs in make check.
#
#   base/        -> libc only: the lowest level, which everything may use
#                   (one CRC32C for chunkstore/ and common/ alike)
#   chunkstore/  -> libc and base/ (no other cairn header, no
#                   fuse/event/curl/tdb)
#   common/      -> common/, base/; <tdb.h> in common/tdbw.*, tdbj.* only
#   vol/         -> base/, common/, vol/ (never cm/ or chunkstore/)
#   cm/          -> base/, common/, chunkstore/, cm/ (never vol/)
#   admin/fs*    -> common/ctl_proto.h and generic common helpers; never
#                   chunkstore/ or cm/ internals
#   admin/cairn_fsck.c -> chunkstore/, base/, admin/fsck_meta.h only (no
#                   fuse, no common/)
#   admin/fsck_meta.* -> cm/vc.h (the FUSE-free record layer), cm/rlog.h
#                   (the replay log, FUSE- and network-free: its records),
#                   common/tdbw.h and tdbj.h (tdb's structure of dirty.tdb
#                   and rlog.tdb, dirty.tdb's digest)
#                   and libc; no fuse, event, curl, chunkstore
#   admin/vos*   -> common/, vol/ storage library
#   admin/mount_cairn.c -> libc only (it runs cairnd, links nothing of ours)
#
# Inside cm/ every file has a level (cm_level below, doc/cm.md "Levels"): a
# file may include the cm/ headers of lower levels, its own header(s)
# (cm_own) and nothing else of cm/, so an upward include, and with it an
# include circle, fails. A cm/ file missing from the table fails too, so
# a new module is placed on purpose.
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
check common "$(ls common/*.c common/*.h | grep -v '^common/tdb[wj]\.')" \
	'"(chunkstore|cm|vol|admin)/|<fuse|<tdb\.h>|<curl/'
# ... except the tdb wrapper: it is the one place tdb's errors become errnos
# for the replay log, the metadata cache (cm/) and the volume store (vol/),
# and common/ is the only folder both may include. Nothing else in common/
# may reach tdb.
check common-tdbw "common/tdbw.c common/tdbw.h common/tdbj.c common/tdbj.h" '"(chunkstore|cm|vol|admin)/|<fuse|<curl/'
check vol "vol/*.c vol/*.h" '"(cm|chunkstore)/|<fuse|<curl/'
check cm "cm/*.c cm/*.h" '"vol/'
check fs "admin/fs.c admin/fs_*.c admin/fs*.h" '"(chunkstore|cm|vol)/|<fuse|<tdb\.h>'
check fsck "admin/cairn_fsck.c" '"(common|cm|vol)/|<fuse|<event2?/|<curl/|<tdb\.h>'
check fsck-meta "admin/fsck_meta.c admin/fsck_meta.h" \
	'"common/([^t]|t[^d]|td[^b]|tdb[^wj])|"(vol|chunkstore)/|"cm/([^vr]|r[^l]|rl[^o]|rlo[^g])|<fuse|<event2?/|<curl/|<tdb\.h>'
check vos "admin/vos*.c" '"(cm|chunkstore)/|<fuse|<curl/'
check mount-helper "admin/mount_cairn.c" \
	'"(base|common|chunkstore|cm|vol|admin)/|<fuse|<event2?/|<curl/|<tdb\.h>|<jansson|<openssl/'

# The level of a cm/ file (empty: not in the table).
cm_level() {
	case ${1#cm/} in
	http.[ch] | vc.[ch] | rlog.[ch] | rlog_*.c | rlog_i.h | ctl.[ch] | dstream.[ch] | \
		wb_rec.[ch] | fidmap.[ch]) echo 0 ;;
	inode.[ch]) echo 1 ;; # the inode table holds vc listings
	conn.[ch]) echo 1 ;;  # modes, gate, probes: over http only
	loop.[ch] | stats.[ch]) echo 1 ;; # the loop runtime, the counters
	cm.[ch] | conf.c) echo 2 ;; # settings and helpers every level shares
	mcache.[ch]) echo 2 ;; # cached attributes and listings, kernel hooks
	mfetch.[ch] | access.[ch]) echo 3 ;; # metadata fetches; rights
	local.[ch]) echo 3 ;; # applying an op to the caches, no server
	fetch.[ch] | events.[ch] | mut.[ch]) echo 4 ;;
	wb.[ch] | wb_i.h | wb_store.c | conflict.[ch] | pin.[ch]) echo 5 ;;
	replay.[ch]) echo 6 ;;
	# struct cm (daemon_i.h) is level 7: only the front ends, daemon.c
	# and cairnd.c see it.
	daemon_i.[ch] | fuse_i.h | fuse_ops.[ch] | fuse_mut.c | fuse_common.c | \
		fuse_ns.[ch] | cm_ctl.[ch] | ctl_i.h | ctl_*.c) echo 7 ;;
	daemon.[ch] | daemon_ns.c | cairnd.c) echo 8 ;;
	esac
}

# Headers of its own level a cm/ file may include: its own, and the
# private header of the front end it belongs to.
cm_own() {
	b=${1#cm/}
	case $b in
	conf.c) echo cm.h ;;
	fuse_i.h) echo fuse_ops.h daemon_i.h ;;
	fuse_ops.c | fuse_mut.c | fuse_common.c) echo fuse_ops.h fuse_i.h daemon_i.h ;;
	fuse_ns.c) echo fuse_ns.h fuse_ops.h fuse_i.h daemon_i.h ;;
	fuse_ns.h) echo fuse_ops.h ;;
	daemon_ns.c) echo daemon.h ;;
	ctl_i.h) echo daemon_i.h ;;
	cm_ctl.c | ctl_*.c) echo cm_ctl.h ctl_i.h daemon_i.h ;;
	daemon_i.c) echo daemon_i.h ;;
	cairnd.c) echo daemon.h fuse_ns.h ;;
	rlog.c | rlog_*.c) echo rlog.h rlog_i.h ;;
	rlog_i.h) echo rlog.h ;;
	wb.c | wb_store.c | conflict.c) echo wb.h wb_i.h conflict.h ;;
	wb_i.h) echo wb.h ;;
	*.c) echo "${b%.c}.h" ;;
	esac
}

for f in cm/*.c cm/*.h; do
	[ -f "$f" ] || continue
	n=$((n + 1))
	lf=$(cm_level "$f")
	if [ -z "$lf" ]; then
		echo "cm level: $f is not in the table of tests/check-layers.sh"
		fail=1
		continue
	fi
	own=" $(cm_own "$f") "
	for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"cm\/\([^"]*\)".*/\1/p' "$f"); do
		li=$(cm_level "cm/$inc")
		[ -n "$li" ] || li=99
		[ "$li" -lt "$lf" ] && continue
		case $own in *" $inc "*) continue ;; esac
		echo "cm level: $f (level $lf) includes cm/$inc (level $li)"
		fail=1
	done
done

echo "checked $n files"
[ "$n" -gt 0 ] || { echo "no source files found under $top_srcdir"; exit 99; }
exit $fail
