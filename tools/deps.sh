# tools/deps.sh - sourced by tools/check and tools/demo: install the Debian
# packages cairn needs to build and test, only those that are missing.

CAIRN_DEPS="gcc make autoconf automake libtool pkg-config
libfuse3-dev fuse3 libevent-dev libcurl4-openssl-dev libssl-dev libtdb-dev
libinih-dev libjansson-dev libsystemd-dev systemd curl attr rsync git python3 tar psmisc procps
gdb strace tdb-tools
clang libclang-rt-14-dev"

install_deps() {
	local missing="" p
	for p in $CAIRN_DEPS; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	echo "== installing:$missing"
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing packages:$missing (run as root, or apt-get install them)"
		return 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null 2>&1 || apt-get update
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/tmp/cairn-apt.log 2>&1 ||
		{ tail -n 20 /tmp/cairn-apt.log; return 1; }
}
