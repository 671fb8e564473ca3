#!/usr/bin/python3
"""A hostile local client of the agent's loopback proxy port, run as
another uid (setpriv) by tests/integration/attack_callers.sh.

  attacker.py race HOST PORT DEST N      N times: CONNECT DEST + GET, close at once
  attacker.py flood HOST PORT DEST N     N listening sockets on 127.0.0.3 first,
                                         then one CONNECT DEST; prints the status line
  attacker.py ask HOST PORT DEST         one CONNECT DEST; prints the status line
  attacker.py hold HOST PORT N SECS      N connections that say nothing; prints how
                                         many the agent closed within SECS
  attacker.py connect HOST PORT DEST N SECS
                                         N CONNECTs to DEST held open for SECS
Python's standard library only, so that it runs as any user.
"""
import socket
import sys
import time


def connect(host, port):
    s = socket.create_connection((host, int(port)), timeout=30)
    return s


def race(host, port, dest, n):
    req = ("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n"
           "GET /attack HTTP/1.1\r\nHost: x\r\n\r\n" % (dest, dest)).encode()
    for _ in range(int(n)):
        s = connect(host, port)
        s.sendall(req)
        s.close()


def flood(host, port, dest, n):
    held = []
    for _ in range(int(n)):
        l = socket.socket()
        l.bind(("127.0.0.3", 0))
        l.listen(1)
        held.append(l)
    s = connect(host, port)
    s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (dest, dest)).encode())
    line = s.makefile("rb").readline().decode(errors="replace").strip()
    print(line)


def ask(host, port, dest):
    s = connect(host, port)
    s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (dest, dest)).encode())
    print(s.makefile("rb").readline().decode(errors="replace").strip())


def hold(host, port, n, secs):
    socks = [connect(host, port) for _ in range(int(n))]
    end = time.monotonic() + float(secs)
    closed = set()
    while time.monotonic() < end and len(closed) < len(socks):
        for i, s in enumerate(socks):
            if i in closed:
                continue
            s.settimeout(0.05)
            try:
                if s.recv(1) == b"":
                    closed.add(i)
            except socket.timeout:
                pass
            except OSError:
                closed.add(i)
    print(len(closed))


def hold_connect(host, port, dest, n, secs):
    socks = []
    for _ in range(int(n)):
        s = connect(host, port)
        s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (dest, dest)).encode())
        socks.append(s)
    print("held", len(socks), flush=True)
    time.sleep(float(secs))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"race": race, "flood": flood, "ask": ask, "hold": hold,
     "connect": hold_connect}[cmd](*args)
