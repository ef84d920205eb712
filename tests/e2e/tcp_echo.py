"""A byte-echo server for the TCP tests and bench: echoes every byte until the client's EOF, then
shuts down its write side (so a half-closing client still receives everything). Threads, stdlib.

usage: python tcp_echo.py ADDRESS PORT
"""

import socket
import socketserver
import sys


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock = self.request
        while True:
            data = sock.recv(262144)
            if not data:
                break
            sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 512


if __name__ == "__main__":
    with Server((sys.argv[1], int(sys.argv[2])), Echo) as server:
        print(f"echo on {sys.argv[1]}:{sys.argv[2]}", flush=True)
        server.serve_forever()
