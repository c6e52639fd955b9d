#!/usr/bin/env bash
# t5058-ns-reload-storm: SIGHUPs that add and remove a volume again and
# again while other processes list the mount root, look names up in it
# and read and write in a volume that stays: cairnd stays up, nothing
# the readers see is wrong (a name is there or ENOENT, never EIO or
# garbage), and the final config's volumes are what is served.
. "$top_srcdir/tests/integration/lib.sh"
. "$top_srcdir/tests/integration/lib-ns.sh"
t_need_fuse
t_timeout 240

ns_src "$T_DIR/src" file 1
ns_vold
for v in alpha beta gamma; do ns_import $v "$T_DIR/src"; done

writeconf() { # VOLUMES...: replaces the file at once (readers run meanwhile)
	{
		ns_conf_head
		for v in "$@"; do ns_vol "$v" "" "$VOLD_URL"; done
	} >"$conf.new"
	mv "$conf.new" "$conf"
}
writeconf alpha
ns_start

bad=$T_DIR/bad
: >"$bad"
stop=$T_DIR/stop
(
	while [ ! -e "$stop" ]; do
		l=$(ls "$mnt" 2>&1) || echo "ls root: $l" >>"$bad"
		case " $(echo $l) " in *" alpha "*) ;; *) echo "alpha not listed: $l" >>"$bad" ;; esac
		for v in beta gamma; do
			out=$(cat "$mnt/$v/f1.txt" 2>&1)
			case $out in
			"file 1" | *"No such file or directory" | *"Input/output error") ;;
			*) echo "$v: $out" >>"$bad" ;;
			esac
		done
	done
) &
rpid=$!
(
	n=0
	while [ ! -e "$stop" ]; do
		n=$((n + 1))
		echo "w $n" >"$mnt/alpha/w.txt" || echo "write alpha failed" >>"$bad"
		[ "$(cat "$mnt/alpha/w.txt")" = "w $n" ] || echo "alpha read back wrong" >>"$bad"
	done
) &
wpid=$!
for i in $(seq 1 15); do
	case $((i % 3)) in
	0) writeconf alpha ;;
	1) writeconf alpha beta ;;
	2) writeconf alpha beta gamma ;;
	esac
	kill -HUP "$pid"
	sleep 0.2
done
writeconf alpha gamma
kill -HUP "$pid"
sleep 1
touch "$stop"
wait "$rpid" "$wpid"
t_check "cairnd is still up" kill -0 "$pid"
t_is "$(cat "$bad")" "" "the readers and the writer saw nothing wrong"
final() { [ "$(ls "$mnt" | tr '\n' ' ')" = "alpha gamma " ] && [ "$(cat "$mnt/gamma/f1.txt" 2>/dev/null)" = "file 1" ]; }
wait_for 15 final
t_ok $? "the last config's volumes are served: $(ls "$mnt" | tr '\n' ' ')"
t_is "$(ls "$mnt/beta" 2>&1 | sed 's/.*: //')" "No such file or directory" "beta removed: ENOENT"
t_is "$(grep -c "reload: volume 'beta' is new" "$log")" 1 "beta got one slot, shown and hidden again since"
t_check "no reload was refused" sh -c "! grep -q 'reload refused\|reload failed' '$log'"
ns_stop
t_check "SIGTERM stops it" sh -c "! kill -0 $pid 2>/dev/null"
t_check "and unmounts" sh -c "! mountpoint -q '$mnt'"
t_check "cairn-fsck finds the shared cache clean" "$FSCK" --check --quiet "$T_DIR/cache"
t_done
