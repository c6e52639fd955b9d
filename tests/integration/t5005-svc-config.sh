#!/usr/bin/env bash
# t5005-svc-config: the config files of both daemons without a mount:
# --show-config prints every effective setting and where it came from
# (default, FILE:LINE, command line); drop-ins (FILE.d/*.conf) are read
# after FILE in name order and the last wins, the command line over all;
# the old underscore keys of cairn-vold.conf still read; a bad line stops
# the daemon with exit 78 and names the file and line.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 120
mkdir -p "$T_DIR"
[ -x "$CAIRND" ] && [ -x "$VOLD" ] || { echo "# SKIP: not built"; exit 77; }

c=$T_DIR/cairnd.conf
cat >"$c" <<'CONF'
; the main file
[cairnd]
server = http://127.0.0.1:7070
volume = home
token = /etc/cairn/home.token
cache = /var/cache/cairn/home
mountpoint = /cairn/home
cache-size = 2G   ; overridden by a drop-in
threads = 4
CONF
mkdir -p "$c.d"
printf 'cache-size = 3G\nreadahead = 8\n' >"$c.d/10-site.conf"
printf '# later wins\ncache_size = 4G\n' >"$c.d/20-host.conf"
printf 'cache-size = 9G\n' >"$c.d/30-off.conf.disabled"
printf 'cache-size = 8G\n' >"$c.d/.hidden.conf"

show() { "$CAIRND" --config "$c" "$@" --show-config 2>"$T_DIR/show.err"; }
out=$(show)
t_ok $? "cairnd --show-config exits 0"
line() { echo "$out" | grep -E "^$1 = " ; }
t_is "$(line server)" "server = http://127.0.0.1:7070  ; $c:3" "server from the file, with its line"
t_is "$(line cache-size)" "cache-size = 4294967296  ; $c.d/20-host.conf:2" \
	"cache-size: the last drop-in wins (20 over 10 over the file; underscore key)"
t_is "$(line readahead)" "readahead = 8  ; $c.d/10-site.conf:2" "a key only in a drop-in"
t_is "$(line threads)" "threads = 4  ; $c:9" "a key the drop-ins leave alone"
t_is "$(line fetch-timeout)" "fetch-timeout = 5000ms  ; default" "a default says so"
t_is "$(line write-mode)" "write-mode = sync  ; default" "the write mode is shown (default sync)"
out2=$(show --write-mode writeback --writeback-delay 250ms)
t_is "$(echo "$out2" | grep -E '^write(-mode|back-delay) = ' | tr '\n' '|')" \
	"write-mode = writeback  ; command line|writeback-delay = 250ms  ; command line|" \
	"write-mode and writeback-delay from the command line"
t_check "an unset key says so" sh -c "echo '$out' | grep -qx '# ca-file is not set  (default)'"
t_check "the token file is named, never read" sh -c "echo '$out' | grep -qx 'token = /etc/cairn/home.token  ; $c:5'"
out=$(show --threads 12 --cache-size 1G)
t_is "$(line threads)" "threads = 12  ; command line" "the command line wins over the file"
t_is "$(line cache-size)" "cache-size = 1073741824  ; command line" "and over the drop-ins"
# What --show-config prints reads back (values and comments).
echo "$out" | grep -v '^#' >"$T_DIR/again.conf"
"$CAIRND" --config "$T_DIR/again.conf" --show-config >"$T_DIR/again.out" 2>&1
t_ok $? "--show-config output loads as a config file"
sed 's/  ;.*//' "$T_DIR/again.conf" >"$T_DIR/values1"
grep -v '^#' "$T_DIR/again.out" | sed 's/  ;.*//' >"$T_DIR/values2"
t_check "and gives the same values" diff "$T_DIR/values1" "$T_DIR/values2"
# An incomplete config is printed, then named as such (exit 64).
mv "$c" "$c.full"
printf 'volume = x\n' >"$c"
show >/dev/null
t_is "$?" 64 "--show-config of an incomplete config: exit 64"
t_check "and says what is missing" grep -q "no server given" "$T_DIR/show.err"
mv "$c.full" "$c"

# Bad lines: exit 78 with FILE:LINE and why; nothing else runs.
badc() { # DESC TEXT EXPECTED [FILE]
	local f=${4:-$c.d/50-bad.conf} out st
	printf '%b' "$2" >"$f"
	out=$("$CAIRND" --config "$c" --show-config 2>&1 >/dev/null)
	st=$?
	t_is "$st" 78 "$1: exit 78"
	case $out in
	*"$3"*) t_ok 0 "$1: '$3'" ;;
	*) t_ok 1 "$1: '$3'"; echo "#   got: $out" ;;
	esac
	rm -f "$f"
}
badc "unknown key" 'readahead = 2\ncolour = blue\n' "config '$c.d/50-bad.conf:2': unknown setting"
badc "bad value" '\nthreads = many\n' "config '$c.d/50-bad.conf:2': threads must be 1..256"
badc "not key = value" 'just words\n' "config '$c.d/50-bad.conf:1': expected 'key = value'"
badc "broken section" '[cairnd\n' "config '$c.d/50-bad.conf:1': malformed section header"
out=$("$CAIRND" --config "$T_DIR/nosuch.conf" --show-config 2>&1)
t_is "$?" 78 "a missing --config file: exit 78"
t_check "and says so" sh -c "echo \"$out\" | grep -q 'cannot read config .*nosuch.conf.*No such file'"
# Another program's section is skipped (one file for both daemons).
printf '[vold]\nworkers = 3\n' >"$c.d/60-vold.conf"
t_check "a [vold] section is skipped by cairnd" "$CAIRND" --config "$c" --show-config
rm -f "$c.d/60-vold.conf"

# cairn-vold: the same format, the same rules.
v=$T_DIR/cairn-vold.conf
printf '[vold]\nroot = /srv/cairn\nmax_conns = 100\nworkers = 2\n' >"$v"
mkdir -p "$v.d"
printf 'workers = 6\naccess-log = /var/log/cairn/access.log\n' >"$v.d/10-a.conf"
out=$("$VOLD" --config "$v" --show-config 2>"$T_DIR/show.err")
t_ok $? "cairn-vold --show-config exits 0"
t_is "$(line root)" "root = /srv/cairn  ; $v:2" "vold: root from the file"
t_is "$(line max-conns)" "max-conns = 100  ; $v:3" "vold: an old underscore key reads as max-conns"
t_is "$(line workers)" "workers = 6  ; $v.d/10-a.conf:1" "vold: the drop-in wins"
t_is "$(line access-log)" "access-log = /var/log/cairn/access.log  ; $v.d/10-a.conf:2" "vold: access-log"
t_is "$(line listen)" "listen = 127.0.0.1:7070  ; default" "vold: default listen address"
out=$("$VOLD" --config "$v" --workers 9 --show-config 2>/dev/null)
t_is "$(line workers)" "workers = 9  ; command line" "vold: the command line wins"
out=$(CAIRN_ROOT=/env/root "$VOLD" --show-config --config /dev/null 2>/dev/null)
t_is "$(line root)" "root = /env/root  ; environment CAIRN_ROOT" "vold: root from CAIRN_ROOT"
printf 'workers = 0\n' >"$v.d/20-bad.conf"
out=$("$VOLD" --config "$v" --show-config 2>&1 >/dev/null)
t_is "$?" 78 "vold: bad value in a drop-in: exit 78"
t_is "$out" "cairn-vold: config '$v.d/20-bad.conf:1': workers must be 1..256" "vold: names the file, line and why"
printf '[server]\nworkers = 2\n' >"$v.d/20-bad.conf"
out=$("$VOLD" --config "$v" --show-config 2>&1 >/dev/null)
t_is "$?" 78 "vold: unknown section: exit 78"
rm -f "$v.d/20-bad.conf"
out=$("$VOLD" --config "$v" --workers 0 2>&1 >/dev/null)
t_is "$?" 64 "vold: bad command-line value: exit 64"
t_check "vold: and says which" sh -c "echo \"$out\" | grep -q \"bad --workers '0': workers must be 1..256\""
t_done
