/*
 * notify.h - the systemd readiness protocol (sd_notify(3)) for both
 * daemons, cairn-vold and cairnd, whose units are Type=notify: READY=1,
 * RELOADING=1, STOPPING=1 and STATUS= lines.
 *
 * Layer rule: common/. notify.o calls libsystemd when configure found it
 * (HAVE_LIBSYSTEMD); a program that calls notify_systemd() links
 * $(SYSTEMD_LIBS) itself, the others never pull notify.o in.
 */
#ifndef CAIRN_COMMON_NOTIFY_H
#define CAIRN_COMMON_NOTIFY_H

/* Tell systemd about our state (@state: "KEY=value" lines). Nothing
 * without $NOTIFY_SOCKET, or when built without libsystemd. */
void notify_systemd(const char *state);

#endif
