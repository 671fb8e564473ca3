#!/usr/bin/python3
# A TCP forwarder for tests/lib/revocation.sh: listens on 127.0.0.1:PORT and
# relays each connection to TARGET (HOST:PORT, or a Unix socket path). Each
# connection that sends at least one byte appends one line to COUNTFILE at
# once ("conn N <first request line>"), before the optional DELAY (seconds)
# that it waits before forwarding that first byte. Counts connections, not
# requests: a client that sent two requests on one kept-alive connection
# counts once (openssl's responder closes after each answer).
# Usage: rev_fwd.py PORT TARGET DELAY COUNTFILE
import os
import select
import socket
import socketserver
import sys
import threading
import time

port, target, delay, countfile = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
lock = threading.Lock()
seq = [0]


def upstream():
    if target.startswith("/"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(target)
    else:
        host, p = target.rsplit(":", 1)
        s = socket.create_connection((host, int(p)), timeout=30)
        s.settimeout(None)
    return s


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        c = self.request
        first = c.recv(65536)
        if not first:
            return
        with lock:
            seq[0] += 1
            line = first.split(b"\r\n", 1)[0][:200].decode("latin-1")
            with open(countfile, "a") as f:
                f.write("conn %d %s\n" % (seq[0], line))
                f.flush()
                os.fsync(f.fileno())
        if delay > 0:
            time.sleep(delay)
        try:
            u = upstream()
        except OSError:
            return  # the client sees a closed connection
        u.sendall(first)
        socks, open_ = [c, u], {c: True, u: True}
        peer = {c: u, u: c}
        while open_[c] or open_[u]:
            r, _, _ = select.select([s for s in socks if open_[s]], [], [], 120)
            if not r:
                break
            for s in r:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if data:
                    try:
                        peer[s].sendall(data)
                    except OSError:
                        open_[s] = False
                else:
                    open_[s] = False
                    try:
                        peer[s].shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    if s is u:  # the server is done: so are we
                        open_[c] = False
        u.close()


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 64


open(countfile, "a").close()
Server(("127.0.0.1", port), Handler).serve_forever()
