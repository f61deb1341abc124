#!/usr/bin/env python3
"""webhook_recv.py — a webhook receiver for the black-box tests of awaitd's
completion notifications (standard library only).

    python3 webhook_recv.py [--port N] [--pidfile FILE] [--tls CERT KEY] LOGFILE [SECRET]

Binds 127.0.0.1 (port 0 unless --port names one, so a test can bring a
receiver back on the port a daemon was told about), writes its pid to
FILE (python3 may be a wrapper such as pyenv's shim that forks, so $! is
not the receiver), prints the port on stdout once it listens, and serves each connection in a thread of its own,
so a slow answer never delays another request. With --tls it speaks
HTTPS with CERT and KEY (PEM files).

Every request appends one JSON line to LOGFILE, written when the request
has been read and before it is answered:
  {"t": unix seconds (float), "method", "path", "headers": {lower-cased
   name: value}, "body": the body parsed as JSON (or the raw text when it is
   not JSON), "verified": true/false/null, "status": the status it gets,
   "active": requests being handled now (this one included),
   "active_same": those with this very path, "conns": connections open now}
"verified" is null without a SECRET; otherwise whether X-Awaitd-Signature
is "sha256=" + hex HMAC-SHA256(SECRET, "<X-Awaitd-Timestamp>.<raw body>"),
compared with hmac.compare_digest.

The path decides the answer (a query string is ignored):
  /ok            200
  /status/CODE   CODE
  /fail/N        500 to the first N requests that carry a given
                 X-Awaitd-Delivery value, then 200
  /slow/S        200 after S seconds
  /gate/NAME     503 while the file NAME beside LOGFILE does not exist,
                 then 200
  anything else  404

This is a test server, not a model of one: it trusts its client.
"""

import argparse
import hashlib
import hmac
import json
import os
import signal
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {"active": 0, "conns": 0, "by_path": {}, "fails": {}}


def read_body(handler):
    """The raw request body: Content-Length or chunked, else nothing."""
    length = handler.headers.get("Content-Length")
    if length is not None:
        return handler.rfile.read(int(length))
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        out = b""
        while True:
            line = handler.rfile.readline()
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                # Trailer lines until the empty one.
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return out
            out += handler.rfile.read(size)
            handler.rfile.readline()
    return b""


def verify(secret, headers, raw):
    if secret is None:
        return None
    ts = headers.get("x-awaitd-timestamp")
    sig = headers.get("x-awaitd-signature")
    if ts is None or sig is None:
        return False
    mac = hmac.new(secret.encode(), ts.encode() + b"." + raw, hashlib.sha256)
    return hmac.compare_digest("sha256=" + mac.hexdigest(), sig)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "webhook_recv"

    def setup(self):
        super().setup()
        with LOCK:
            STATE["conns"] += 1

    def finish(self):
        try:
            super().finish()
        finally:
            with LOCK:
                STATE["conns"] -= 1

    def log_message(self, format, *args):  # noqa: A002 - the base's name
        pass

    def decide(self, route, delivery):
        """(status, seconds to wait first) for the route."""
        parts = route.strip("/").split("/")
        try:
            if parts == ["ok"]:
                return 200, 0
            if len(parts) == 2 and parts[0] == "status":
                return int(parts[1]), 0
            if len(parts) == 2 and parts[0] == "fail":
                key = (route, delivery)
                with LOCK:
                    seen = STATE["fails"].get(key, 0)
                    STATE["fails"][key] = seen + 1
                return (500 if seen < int(parts[1]) else 200), 0
            if len(parts) == 2 and parts[0] == "slow":
                return 200, float(parts[1])
            if len(parts) == 2 and parts[0] == "gate":
                gate = os.path.join(self.server.gate_dir, os.path.basename(parts[1]))
                return (200 if os.path.exists(gate) else 503), 0
        except ValueError:
            pass
        return 404, 0

    def handle_any(self):
        raw = read_body(self)
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            body = raw.decode("utf-8", "replace")
        route = self.path.split("?", 1)[0]
        status, wait = self.decide(route, headers.get("x-awaitd-delivery"))
        with LOCK:
            STATE["active"] += 1
            same = STATE["by_path"].get(self.path, 0) + 1
            STATE["by_path"][self.path] = same
            entry = {
                "t": time.time(),
                "method": self.command,
                "path": self.path,
                "headers": headers,
                "body": body,
                "verified": verify(self.server.secret, headers, raw),
                "status": status,
                "active": STATE["active"],
                "active_same": same,
                "conns": STATE["conns"],
            }
            # One write of one line, appended: a reader sees whole lines.
            line = (json.dumps(entry, sort_keys=True) + "\n").encode()
            fd = os.open(self.server.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        try:
            if wait > 0:
                time.sleep(wait)
            reply = ("status %d\n" % status).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            if status >= 200 and status not in (204, 304):
                self.send_header("Content-Length", str(len(reply)))
            if 300 <= status < 400:
                self.send_header("Location", "/ok")
            self.end_headers()
            if status >= 200 and status not in (204, 304):
                self.wfile.write(reply)
        finally:
            with LOCK:
                STATE["active"] -= 1
                STATE["by_path"][self.path] -= 1

    do_POST = handle_any
    do_GET = handle_any
    do_PUT = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description="webhook receiver for the tests")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--pidfile")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("logfile")
    ap.add_argument("secret", nargs="?")
    a = ap.parse_args()
    srv = Server(("127.0.0.1", a.port), Handler)
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls[0], a.tls[1])
        # The handshake happens in the connection's own thread, at its
        # first read: a client that fails it does not stall the others.
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True,
                                     do_handshake_on_connect=False)
    srv.log_path = os.path.abspath(a.logfile)
    srv.gate_dir = os.path.dirname(srv.log_path)
    srv.secret = a.secret
    if a.pidfile:
        with open(a.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    # Say which signal ended it: a test that finds its receiver gone reads why.
    def on_signal(signum, frame):
        os.write(2, b"webhook_recv: ended by signal %d\n" % signum)
        os._exit(128 + signum)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, on_signal)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
