"""A one-file HTTP server for namespace tests: answers 'NAME saw CLIENT_IP' on every GET."""

import http.server
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{sys.argv[2]} saw {self.client_address[0]}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer((sys.argv[3] if len(sys.argv) > 3 else "0.0.0.0", int(sys.argv[1])), Handler).serve_forever()
