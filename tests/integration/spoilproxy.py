"""spoilproxy.py - an HTTP relay between cairnd and cairn-vold on 127.0.0.1
that spoils chunk replies on demand (tests only).

    python3 spoilproxy.py UP_PORT MODE_FILE LOG_FILE PORT_FILE SPOILER

It listens on an ephemeral 127.0.0.1 port (written to PORT_FILE) and relays
every request to 127.0.0.1:UP_PORT, except the event stream, which gets a
500 (cairnd retries it), unless MODE_FILE has the word "events": then the
stream is relayed as it comes, and held back (buffered) while MODE_FILE
also has the word "holdev". MODE_FILE holds the current mode, read again for
every request, so a test changes the proxy's behaviour by rewriting it.

SPOILER is a python file defining

    spoil(mode, status, headers, body) -> (headers, body, first, stall)

called for every 200 reply to a GET of chunk data (".../data/..."), with
mode = MODE_FILE's words, headers = [(name, value)] of the upstream reply
(without Content-Length, Transfer-Encoding and Connection), body = bytes.
The proxy sends the returned headers and body, stopping after the first
`first` bytes for `stall` seconds. Each such request is logged to LOG_FILE
as "MODE PATH BLOCKS" (BLOCKS: whether upstream sent X-Cairn-Blocks).
When SPOILER also defines spoil_dir(mode, path, body) -> body, it is
called for every 200 reply to a GET of a listing (".../dir/...", its
pages too), each logged to LOG_FILE.dir as "MODE PATH". When it defines
upstream_path(mode, path) -> path, the request goes upstream with that path
(t2371 takes "enc=bin" out of listings: the server answers JSON, as one
before protocol 8 does).
Every POST's path is appended to LOG_FILE.posts; with the word "postbody"
in MODE_FILE, "STATUS PATH BODY" (the body on one line) to LOG_FILE.bodies
once the server answered; with the word "nobatch"
in MODE_FILE, POST .../batch gets a 404, as from a server of protocol 2.
With the word "holdop", the answer to a POST .../op or .../batch (which
the server has applied) is held back until MODE_FILE loses the word (60 s
at most); each one held is logged to LOG_FILE.held as "STATUS PATH".
The word "holdattr" does the same to the answer of a POST .../getattr.
"""
import http.client
import http.server
import queue
import sys
import threading
import time

HOP = ("content-length", "transfer-encoding", "connection")
# x-cairn-protocol: without it the server takes cairnd for an old client
# and shows device nodes and sockets as empty files (mknod c gave EIO).
FORWARD = ("authorization", "content-type", "if-none-match",
           "x-cairn-protocol")


def main():
    up_port, mode_file, log_file, port_file, spoiler = sys.argv[1:6]
    up_port = int(up_port)
    env = {}
    with open(spoiler) as f:
        exec(compile(f.read(), spoiler, "exec"), env)
    spoil = env["spoil"]
    lock = threading.Lock()

    class Relay(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def reply(self, status, headers, body, first, stall):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:first])
            self.wfile.flush()
            if first < len(body):
                time.sleep(stall)
                self.wfile.write(body[first:])

        def events(self):
            c = http.client.HTTPConnection("127.0.0.1", up_port)
            hdrs = {k: v for k, v in self.headers.items()
                    if k.lower() in FORWARD}
            c.request("GET", self.path, headers=hdrs)
            r = c.getresponse()
            if r.status != 200:
                body = r.read()
                c.close()
                self.reply(r.status, [], body, len(body), 0)
                return
            q = queue.Queue()

            def pump():
                try:
                    while True:
                        b = r.read1(65536)
                        q.put(b)
                        if not b:
                            return
                except Exception:
                    q.put(b"")

            threading.Thread(target=pump, daemon=True).start()
            self.send_response(200)
            for k, v in r.getheaders():
                if k.lower() not in HOP:
                    self.send_header(k, v)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            held, eof = b"", False
            try:
                while not eof:
                    try:
                        b = q.get(timeout=0.1)
                        held += b
                        eof = not b
                    except queue.Empty:
                        pass
                    with open(mode_file) as f:
                        if "holdev" in f.read().split() and not eof:
                            continue
                    if held:
                        self.wfile.write(b"%x\r\n" % len(held) + held +
                                         b"\r\n")
                        self.wfile.flush()
                        held = b""
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except OSError:
                pass
            c.close()
            self.close_connection = True

        def relay(self):
            with open(mode_file) as f:
                mode = f.read().split()
            if "/events" in self.path and "events" in mode:
                self.events()
                return
            if "/events" in self.path:
                body = b'{"error": "no events here", "errno": "EIO"}'
                self.reply(500, [], body, len(body), 0)
                return
            n = int(self.headers.get("Content-Length") or 0)
            req_body = self.rfile.read(n) if n else None
            if self.command == "POST":
                with lock, open(log_file + ".posts", "a") as f:
                    f.write("%s\n" % self.path)
                if "nobatch" in mode and self.path.endswith("/batch"):
                    # a server of protocol 2: no such route
                    body = b'{"error": "no such route", "errno": "ENOENT"}'
                    self.reply(404, [], body, len(body), 0)
                    return
            c = http.client.HTTPConnection("127.0.0.1", up_port, timeout=10)
            hdrs = {k: v for k, v in self.headers.items()
                    if k.lower() in FORWARD}
            up = self.path
            if "upstream_path" in env:
                up = env["upstream_path"](mode, up)
            c.request(self.command, up, body=req_body, headers=hdrs)
            r = c.getresponse()
            body = r.read()
            c.close()
            if self.command == "POST" and "postbody" in mode:
                # in the order the server answered them (t2353)
                with lock, open(log_file + ".bodies", "ab") as f:
                    f.write(b"%d %s %s\n" % (r.status,
                            self.path.encode(),
                            (req_body or b"").replace(b"\n", b" ")))
            hold = None
            if self.command == "POST" and self.path.endswith(("/op",
                                                              "/batch")):
                hold = "holdop"
            elif self.command == "POST" and self.path.endswith("/getattr"):
                hold = "holdattr"
            if hold and hold in mode:
                # the server answered; its answer waits while MODE_FILE
                # has the word (at most 60 s)
                with lock, open(log_file + ".held", "a") as f:
                    f.write("%d %s\n" % (r.status, self.path))
                end = time.time() + 60
                while time.time() < end:
                    with open(mode_file) as f:
                        if hold not in f.read().split():
                            break
                    time.sleep(0.02)
            headers = [(k, v) for k, v in r.getheaders()
                       if k.lower() not in HOP]
            first, stall = len(body), 0
            if ("/dir/" in self.path and r.status == 200 and
                    "spoil_dir" in env):
                with lock, open(log_file + ".dir", "a") as f:
                    f.write("%s %s\n" % (mode[0] if mode else "-",
                                         self.path))
                body = env["spoil_dir"](mode, self.path, body)
            if "/data/" in self.path and r.status == 200:
                with lock, open(log_file, "a") as f:
                    f.write("%s %s %s\n" % (mode[0] if mode else "-",
                            self.path,
                            r.getheader("X-Cairn-Blocks") is not None))
                headers, body, first, stall = spoil(mode, r.status,
                                                    headers, body)
            self.reply(r.status, headers, body, first, stall)

        do_GET = do_POST = do_PUT = relay

    s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Relay)
    s.daemon_threads = True
    with open(port_file, "w") as f:
        f.write(str(s.server_address[1]))
    s.serve_forever()


if __name__ == "__main__":
    main()
