"""W4 peer: the seed's gevent echo server (shared/seeds/001_*.txt, the server of
"协程实现服务端客户端通信"): monkey-patched blocking sockets, one greenlet per
connection, recv(1024) -> send(data.upper()) until the client closes.

usage: python gevent_echo_server.py PORT [MAX_SECONDS]   (PORT 0: any free port)
Prints "listening PORT" once listening, and exits by itself after MAX_SECONDS.
"""
from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402


def communicate(conn):
    while True:
        try:
            data = conn.recv(1024)
            if len(data) == 0:
                break
            conn.send(data.upper())
        except ConnectionResetError:
            break
    conn.close()


def server(port, backlog=500):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(backlog)
    print("listening %d" % s.getsockname()[1], flush=True)
    while True:
        conn, _ = s.accept()
        gevent.spawn(communicate, conn)


if __name__ == "__main__":
    gevent.spawn_later(float(sys.argv[2]) if len(sys.argv) > 2 else 3600, os._exit, 0)
    server(int(sys.argv[1]))
