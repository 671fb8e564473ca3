#!/usr/bin/env python3
"""A man in the middle on loopback for tests: relays TCP between the agent
and a TLS server, and in the server's direction flips one byte in the body
of the Nth TLS record (counted from the first record, handshake included).
    tamper_proxy.py LISTEN_PORT TARGET_PORT N
Prints "listening" when ready; each connection is tampered once."""
import socket
import sys
import threading


def read_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            return None
        b += c
    return b


def client_to_server(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def server_to_client(b, a, n):
    count = 0
    try:
        while True:
            head = read_exact(b, 5)
            if head is None:
                break
            body = read_exact(b, int.from_bytes(head[3:5], "big"))
            if body is None:
                break
            count += 1
            if count == n and len(body) > 32:
                i = len(body) // 2
                body = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1:]
                print("tampered record", count, flush=True)
            a.sendall(head + body)
        a.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def serve(conn, port, n):
    up = socket.create_connection(("127.0.0.1", port))
    t = threading.Thread(target=client_to_server, args=(conn, up), daemon=True)
    t.start()
    server_to_client(up, conn, n)
    t.join(30)
    conn.close()
    up.close()


def main():
    listen, port, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", listen))
    ls.listen(16)
    print("listening", flush=True)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c, port, n), daemon=True).start()


main()
