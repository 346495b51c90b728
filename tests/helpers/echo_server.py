"""A TCP echo server for connection-survival checks: `python echo_server.py PORT`, every
connection echoed on its own thread until the peer closes it."""

import socket
import sys
import threading


def echo(conn: socket.socket) -> None:
    while data := conn.recv(4096):
        conn.sendall(data)


srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", int(sys.argv[1])))
srv.listen(8)
while True:
    threading.Thread(target=echo, args=(srv.accept()[0],), daemon=True).start()
