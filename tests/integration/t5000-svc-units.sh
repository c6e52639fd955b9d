#!/usr/bin/env bash
# t5000-svc-units: the systemd units, the tmpfiles.d entry and the sample
# configs that make install puts in place: systemd-analyze verify accepts
# both units (Type=notify, ExecReload, the hardening options) with their
# programs present, the tmpfiles entry makes /run/cairn with mode 0755,
# and a DESTDIR install has every file where the docs say.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 180
mkdir -p "$T_DIR"
command -v systemd-analyze >/dev/null ||
	{ echo "# SKIP: systemd-analyze missing (apt-get install systemd)"; exit 77; }

# The units with @sbindir@ pointing at the built programs, so verify can
# check that ExecStart= names an executable.
sb=$T_DIR/sbin
units=$T_DIR/units
mkdir -p "$sb" "$units"
ln -sf "$CAIRND" "$sb/cairnd"
ln -sf "$VOLD" "$sb/cairn-vold"
for u in cairn-vold.service cairnd@.service; do
	sed "s|@sbindir@|$sb|g" "$top_srcdir/systemd/$u.in" >"$units/$u"
done
verify() { # UNIT: exit status and every message (warnings count)
	(cd "$units" && SYSTEMD_LOG_LEVEL=notice timeout 60 systemd-analyze verify --man=no "$1" >"$T_DIR/verify-$1.log" 2>&1)
}
# systemd-analyze verify needs no running systemd; if it cannot run here
# at all, a unit we know is fine fails too: then skip, and say so.
printf '[Unit]\nDescription=probe\n[Service]\nType=oneshot\nExecStart=/bin/true\n' >"$units/probe.service"
if ! verify probe.service; then
	cat "$T_DIR/verify-probe.service.log"
	echo "# SKIP: systemd-analyze verify cannot run in this container"
	exit 77
fi
rm -f "$units/probe.service"

t_check "cairn-vold.service: systemd-analyze verify" verify cairn-vold.service
t_is "$(cat "$T_DIR/verify-cairn-vold.service.log")" "" "cairn-vold.service: no warning"
t_check "cairnd@home.service: systemd-analyze verify" verify cairnd@home.service
t_is "$(cat "$T_DIR/verify-cairnd@home.service.log")" "" "cairnd@home.service: no warning"
for u in cairn-vold.service cairnd@.service; do
	t_check "$u: Type=notify" grep -qx 'Type=notify' "$units/$u"
	t_check "$u: ExecReload sends SIGHUP" grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$units/$u"
done
t_check "cairnd@.service: the instance names the config" \
	grep -q "^ExecStart=$sb/cairnd --config /etc/cairn/cairnd-%i.conf --foreground\$" "$units/cairnd@.service"
t_check "cairnd@.service: /dev/fuse allowed" grep -qx 'DeviceAllow=/dev/fuse rw' "$units/cairnd@.service"
# A mount namespace of its own would hide the FUSE mount from the machine.
t_is "$(grep -cE '^(ProtectSystem|ProtectHome|PrivateTmp|PrivateDevices|ReadOnlyPaths|ReadWritePaths|InaccessiblePaths|TemporaryFileSystem|ProtectKernelModules|ProtectKernelTunables|ProtectKernelLogs|ProtectControlGroups|MountFlags|PrivateMounts)=' "$units/cairnd@.service")" 0 \
	"cairnd@.service: no option that makes a mount namespace"
# A unit that is wrong must fail the same check (the check can fail).
sed 's/^Type=notify/Type=notfy/' "$units/cairn-vold.service" >"$units/bad.service"
verify bad.service
t_check "a misspelt Type= is reported" grep -qi "service type" "$T_DIR/verify-bad.service.log"
rm -f "$units/bad.service"

# The tmpfiles entry, applied under a scratch root.
if command -v systemd-tmpfiles >/dev/null; then
	mkdir -p "$T_DIR/root"
	t_check "tmpfiles entry applies" systemd-tmpfiles --root="$T_DIR/root" --create "$top_srcdir/systemd/tmpfiles.d/cairn.conf"
	t_is "$(stat -c %a "$T_DIR/root/run/cairn" 2>/dev/null)" 755 "/run/cairn made 0755"
fi

# make install into a scratch DESTDIR: units, tmpfiles, mount helper,
# sample configs, man pages.
dest=$T_DIR/dest
make -s -C "$top_builddir" install DESTDIR="$dest" >"$T_DIR/install.log" 2>&1
t_ok $? "make install DESTDIR=..."
prefix=$(sed -n 's/^prefix = //p' "$top_builddir/Makefile")
sysconf=$(sed -n 's/^sysconfdir = //p' "$top_builddir/Makefile" | sed "s|\${prefix}|$prefix|")
sbin=$(sed -n 's/^sbindir = //p' "$top_builddir/Makefile" | sed "s|\${exec_prefix}|$prefix|")
unitdir=$(sed -n 's/^systemdsystemunitdir = //p' "$top_builddir/Makefile" | sed "s|\${prefix}|$prefix|")
tmpdir=$(sed -n 's/^tmpfilesdir = //p' "$top_builddir/Makefile" | sed "s|\${prefix}|$prefix|")
helperdir=$(sed -n 's/^mounthelperdir = //p' "$top_builddir/Makefile" | sed "s|\${exec_prefix}|$prefix|; s|\${sbindir}|$sbin|")
for f in "$unitdir/cairn-vold.service" "$unitdir/cairnd@.service" \
	"$tmpdir/cairn.conf" "$helperdir/mount.cairn" \
	"$sysconf/cairn/cairnd.conf.sample" "$sysconf/cairn/cairn-vold.conf.sample"; do
	t_check "installed: $f" test -s "$dest$f"
done
t_check "installed unit names the installed cairnd" \
	grep -q "^ExecStart=$sbin/cairnd " "$dest$unitdir/cairnd@.service"
for m in mount.cairn.8 cairnd.8 cairn-vold.8 cairn.conf.5 cairn-vold.conf.5; do
	t_check "man page $m installed" sh -c "find '$dest' -name '$m*' | grep -q ."
done
# The samples parse: --show-config reads them (the token file need not
# exist for that).
t_check "cairnd.conf.sample loads" "$CAIRND" --config "$top_srcdir/etc/cairnd.conf.sample" --show-config
t_check "cairn-vold.conf.sample loads" "$VOLD" --config "$top_srcdir/etc/cairn-vold.conf.sample" --show-config
t_done
