"""slowop.py - a TCP relay between cairnd and cairn-vold on 127.0.0.1 that
holds back the ops of chosen kinds (tests only).

    python3 slowop.py UP_PORT MODE_FILE PORT_FILE LOG_FILE

It listens on an ephemeral 127.0.0.1 port (written to PORT_FILE) and
relays bytes both ways, unparsed (the event stream included). MODE_FILE
holds words "KIND=SECONDS" (e.g. "store=3 create=1"), read again for
every piece of data cairnd sends: a piece holding an op of such a kind
("op": "KIND" in a POST body) is held that long before it goes on, so
the op's reply comes that much later. Each hold is logged to LOG_FILE as
"KIND SECONDS".
"""
import re
import socket
import sys
import threading
import time

KIND = re.compile(rb'"op"\s*:\s*"([a-z]+)"')


def main():
    up_port, mode_file, port_file, log_file = sys.argv[1:5]
    up_port = int(up_port)
    lock = threading.Lock()

    def delays():
        try:
            with open(mode_file) as f:
                words = f.read().split()
        except OSError:
            return {}
        out = {}
        for w in words:
            k, _, v = w.partition("=")
            try:
                out[k] = float(v)
            except ValueError:
                pass
        return out

    def pump(src, dst, up):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if up:
                    d = delays()
                    hold = max([d.get(k.decode(), 0)
                                for k in KIND.findall(data)] or [0])
                    if hold > 0:
                        with lock, open(log_file, "a") as f:
                            f.write("%s %s\n" % (
                                b",".join(KIND.findall(data)).decode(),
                                hold))
                        time.sleep(hold)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def serve(c):
        try:
            u = socket.create_connection(("127.0.0.1", up_port))
        except OSError:
            c.close()
            return
        threading.Thread(target=pump, args=(u, c, False),
                         daemon=True).start()
        pump(c, u, True)

    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    with open(port_file, "w") as f:
        f.write(str(s.getsockname()[1]))
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


if __name__ == "__main__":
    main()
