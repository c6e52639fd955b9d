"""fwdproxy.py - a forward HTTP proxy on 127.0.0.1 that records what it is
asked (tests only).

    python3 fwdproxy.py LOG_FILE PORT_FILE

It listens on an ephemeral 127.0.0.1 port (written to PORT_FILE). Every
connection it accepts is logged to LOG_FILE as "conn", every request as
"METHOD TARGET", so a test can tell whether a client used it at all.

A request in absolute form ("GET http://127.0.0.1:7070/v1/... HTTP/1.1",
what a client sends to a proxy) is passed on in origin form to that host,
but only to 127.0.0.1, [::1] or localhost: anything else gets a 403 and
nothing is connected, so no test can send traffic off the machine through
it. Replies are relayed byte for byte, so long-lived event streams work.
Request bodies must come with a Content-Length (cairnd's do); CONNECT is
refused (HTTPS through a proxy is not what the tests need).
"""
import socket
import sys
import threading
import urllib.parse

LOOPBACK = ("127.0.0.1", "::1", "localhost")
HOP = ("proxy-connection", "proxy-authorization", "connection",
       "keep-alive")


def main():
    log_file, port_file = sys.argv[1:3]
    lock = threading.Lock()

    def log(line):
        with lock, open(log_file, "a") as f:
            f.write(line + "\n")

    def pump(src, dst):
        try:
            while True:
                b = src.recv(65536)
                if not b:
                    break
                dst.sendall(b)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def refuse(cs, status):
        cs.sendall(b"HTTP/1.1 %d refused\r\nContent-Length: 0\r\n"
                   b"Connection: close\r\n\r\n" % status)

    def serve(cs):
        rf = cs.makefile("rb")
        up = None
        where = None
        try:
            while True:
                line = rf.readline(65536)
                if not line:
                    break
                try:
                    method, target, version = line.decode().split()
                except ValueError:
                    refuse(cs, 400)
                    break
                log("%s %s" % (method, target))
                headers = []
                length = 0
                while True:
                    h = rf.readline(65536)
                    if h in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = h.decode().partition(":")
                    if name.strip().lower() in HOP:
                        continue
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                    headers.append(h)
                body = rf.read(length) if length else b""
                u = urllib.parse.urlsplit(target)
                if method == "CONNECT" or u.scheme != "http" or \
                        u.hostname not in LOOPBACK:
                    refuse(cs, 403)
                    break
                dest = (u.hostname, u.port or 80)
                if up is None or where != dest:
                    if up is not None:
                        up.close()
                    up = socket.create_connection(dest, timeout=30)
                    up.settimeout(None)
                    where = dest
                    threading.Thread(target=pump, args=(up, cs),
                                     daemon=True).start()
                path = u.path or "/"
                if u.query:
                    path += "?" + u.query
                up.sendall(("%s %s %s\r\n" % (method, path, version))
                           .encode() + b"".join(headers) + b"\r\n" + body)
        except OSError:
            pass
        finally:
            if up is not None:
                try:
                    up.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    with open(port_file, "w") as f:
        f.write(str(ls.getsockname()[1]))
    while True:
        cs, _ = ls.accept()
        log("conn")
        threading.Thread(target=serve, args=(cs,), daemon=True).start()


if __name__ == "__main__":
    main()
