"""A one-file HTTP server for namespace tests: answers 'NAME saw CLIENT_IP' on every GET.
`httpd.py PORT NAME [ADDRESS]`: ADDRESS 0.0.0.0 by default; an IPv6 one (`::`) serves IPv6 and,
on `::`, IPv4-mapped clients too."""

import http.server
import socket
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


address = sys.argv[3] if len(sys.argv) > 3 else "0.0.0.0"
server = type("Server", (http.server.ThreadingHTTPServer,),
              {"address_family": socket.AF_INET6 if ":" in address else socket.AF_INET})
server((address, int(sys.argv[1])), Handler).serve_forever()
