#!/usr/bin/env python3
"""A hostile TLS 1.3 server on loopback for tests: after each handshake it
sends a CertificateRequest the client never offered post_handshake_auth for
(RFC 8446 4.6.2 forbids it; OpenSSL will not send one, so the record is
built here from the traffic secrets OpenSSL's key log gives), then reads
what the client answers and decrypts it to name the handshake messages.
    hostile_tls.py PORT CERT KEY CA WORKDIR
Connections take turns: the odd ones ask for no certificate in the
handshake, the even ones ask for one (CA: what it must chain to). Prints
"listening" when ready; for each connection one line
    "client answered: certificate certificate_verify finished"
(or "client answered: nothing")."""
import os
import select
import socket
import ssl
import struct
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

SUITES = {  # IANA name: (hash, key length, AEAD)
    "TLS_AES_128_GCM_SHA256": (hashes.SHA256, 16, AESGCM),
    "TLS_AES_256_GCM_SHA384": (hashes.SHA384, 32, AESGCM),
    "TLS_CHACHA20_POLY1305_SHA256": (hashes.SHA256, 32, ChaCha20Poly1305),
}
NAMES = {11: "certificate", 15: "certificate_verify", 20: "finished",
         24: "key_update"}


def expand_label(h, secret, label, length):
    info = struct.pack(">H", length) + bytes([6 + len(label)]) + \
        b"tls13 " + label + b"\x00"
    return HKDFExpand(algorithm=h(), length=length, info=info).derive(secret)


class Direction:
    def __init__(self, suite, secret):
        h, klen, aead = SUITES[suite]
        self.aead = aead(expand_label(h, secret, b"key", klen))
        self.iv = expand_label(h, secret, b"iv", 12)
        self.seq = 0

    def nonce(self):
        n = bytes(4) + struct.pack(">Q", self.seq)
        self.seq += 1
        return bytes(a ^ b for a, b in zip(self.iv, n))

    def seal(self, content_type, data):
        inner = data + bytes([content_type])
        head = b"\x17\x03\x03" + struct.pack(">H", len(inner) + 16)
        return head + self.aead.encrypt(self.nonce(), inner, head)

    def open(self, head, body):
        inner = self.aead.decrypt(self.nonce(), body, head).rstrip(b"\x00")
        return inner[-1], inner[:-1]


def secrets(keylog, client_random):
    out = {}
    with open(keylog) as f:
        for line in f:
            p = line.split()
            if len(p) == 3 and p[1] == client_random:
                out[p[0]] = bytes.fromhex(p[2])
    return out


def read_exact(fd, n):
    b = b""
    while len(b) < n:
        # The socket is non-blocking under Python's timeout: wait here.
        if not select.select([fd], [], [], 30)[0]:
            return None
        c = os.read(fd, n - len(b))
        if not c:
            return None
        b += c
    return b


def certificate_request():
    algs = struct.pack(">HHH", 0x0403, 0x0804, 0x0401)
    ext = struct.pack(">HHH", 13, len(algs) + 2, len(algs)) + algs
    body = b"\x01\x2a" + struct.pack(">H", len(ext)) + ext
    return bytes([13]) + struct.pack(">I", len(body))[1:] + body


def serve(conn, ctx, keylog):
    conn.settimeout(30)
    try:
        s = ctx.wrap_socket(conn, server_side=True)
    except (OSError, ssl.SSLError) as e:
        print("handshake failed: %s" % e, flush=True)
        return
    suite = s.cipher()[0]
    # Python has no accessor for the client random; the key log has one
    # connection's lines per handshake, the last ones are this one's.
    with open(keylog) as f:
        lines = [l.split() for l in f if l.startswith("SERVER_TRAFFIC_SECRET_0")]
    sec = secrets(keylog, lines[-1][1])
    out = Direction(suite, sec["SERVER_TRAFFIC_SECRET_0"])
    inp = Direction(suite, sec["CLIENT_TRAFFIC_SECRET_0"])
    fd = s.fileno()
    os.write(fd, out.seal(22, certificate_request()))
    got = []
    try:
        while True:
            head = read_exact(fd, 5)
            if head is None:
                break
            body = read_exact(fd, struct.unpack(">H", head[3:5])[0])
            if body is None:
                break
            if head[0] != 23:
                got.append("plain-%d" % head[0])
                continue
            ctype, data = inp.open(head, body)
            if ctype == 21:
                got.append("alert-%d" % data[1])
                break
            if ctype == 23:
                got.append("application_data")
                continue
            i = 0
            while i + 4 <= len(data):
                n = struct.unpack(">I", b"\x00" + data[i + 1:i + 4])[0]
                got.append(NAMES.get(data[i], "type-%d" % data[i]))
                i += 4 + n
    except Exception as e:  # a broken record ends the report
        got.append("error %s" % type(e).__name__)
    print("client answered: %s" % (" ".join(got) or "nothing"), flush=True)
    s.close()


def main():
    port, cert, key, ca, work = (int(sys.argv[1]), sys.argv[2], sys.argv[3],
                                 sys.argv[4], sys.argv[5])
    keylog = os.path.join(work, "keylog")
    ctxs = []
    for verify in (ssl.CERT_NONE, ssl.CERT_REQUIRED):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(cert, key)
        ctx.verify_mode = verify
        if verify != ssl.CERT_NONE:
            ctx.load_verify_locations(ca)
        # The CertificateRequest is the server's first record after the
        # handshake.
        ctx.num_tickets = 0
        ctx.keylog_filename = keylog
        ctxs.append(ctx)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(8)
    print("listening", flush=True)
    n = 0
    while True:
        conn, _ = ls.accept()
        # One at a time: the key log's last lines are this connection's.
        serve(conn, ctxs[n % 2], keylog)
        n += 1


if __name__ == "__main__":
    main()
