#!/usr/bin/env python3
"""https_target.py: an HTTPS server on loopback for the black-box tests of
the http kind's TLS verification (test_http.sh). Standard library only.

    python3 https_target.py CERT KEY

Listens on 127.0.0.1, port 0; prints the port on stdout once it listens.
Every GET is answered 200 with the body "tls ok". Each connection gets its
own thread, and the TLS handshake runs there, so a client that refuses the
certificate (the handshake fails) ends only its own connection; the failure
goes to stderr, one line.
"""
import http.server
import ssl
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        self.request.do_handshake()
        super().setup()

    def do_GET(self):
        body = b"tls ok"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("request: " + (fmt % args) + "\n")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, ctx):
        self.ctx = ctx
        super().__init__(("127.0.0.1", 0), Handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        return self.ctx.wrap_socket(sock, server_side=True,
                                    do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address):
        sys.stderr.write("connection error: %r\n" % (sys.exc_info()[1],))


def main():
    if len(sys.argv) != 3:
        sys.stderr.write("usage: https_target.py CERT KEY\n")
        return 2
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    srv = Server(ctx)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
