"""httpd.py on IPv6 (and IPv4-mapped): answers 'NAME saw CLIENT_IP' on every GET on [::]:PORT."""

import http.server
import socket
import sys


class Server6(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{sys.argv[2]} saw {self.client_address[0]}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


Server6(("::", int(sys.argv[1])), Handler).serve_forever()
