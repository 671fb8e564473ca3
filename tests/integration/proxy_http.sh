#!/bin/bash
# Plain HTTP proxying on the agent socket (http_proxy): curl, wget and
# Python's urllib reach an mTLS server with nothing but http_proxy set.
# The head goes on in origin-form with the URL's Host and no Proxy-*
# field; bodies (Content-Length, chunked) pass unchanged; a keep-alive
# request for another server gets its own route, in order, also when
# pipelined; a denied one a 403. uid 65534 borrows no identity, and
# spellings of a denied address stay denied.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init proxy_http
chmod 711 "$T"
softhsm_init htoken 87654321 hPIN-2231xq
printf 'hPIN-2231xq\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "Corp CA"
pki_server_cert "$T/ca" "$T/srv" localhost "DNS:localhost"
ca=$T/ca/ca.pem
pA=$(t_free_port); nginx_start "$T/ngxA" "$pA" "$ca" "$T/srv.pem" "$T/srv.key"
pB=$(t_free_port); nginx_start "$T/ngxB" "$pB" "$ca" "$T/srv.pem" "$T/srv.key"
pD=$(t_free_port); nginx_start "$T/ngxD" "$pD" "$ca" "$T/srv.pem" "$T/srv.key"
pp=$(t_free_port)

conf=$T/agent.conf
agent_conf_token "$conf" htoken "$T/pin"
agent_conf_identity "$conf" corp "$ca"
identity_provision "$conf" corp ec-p256 "$T/ca" "CN=corp-device"
sed -i '/^\[agent\]$/a request_timeout = 4s\nmax_connections_per_uid = 4' "$conf"
cat >>"$conf" <<-EOF

	[proxy tcp]
	listen = 127.0.0.1:$pp

	[profile corp]
	ca = $ca
	names = localhost

	[rule denied-port]
	hosts = localhost
	ports = $pD
	action = deny
	reason = port $pD is closed by the test policy

	[rule corp]
	uid = 0
	hosts = localhost
	ports = $pA, $pB
	action = allow
	identity = corp
	profile = corp
	EOF
agent_start "$conf"
export http_proxy=http://127.0.0.1:$pp
unset HTTP_PROXY https_proxy HTTPS_PROXY ALL_PROXY all_proxy no_proxy NO_PROXY

# 1. curl, with nothing but http_proxy: origin-form, the URL's Host, no
#    Proxy-Connection, and no Proxy-Authorization even when curl sends one.
out=$(curl -sS --max-time 30 -U user:secret "http://localhost:$pA/req?x=1")
want="method=GET uri=/req?x=1 host=localhost:$pA pc= pa= dn=CN=corp-device port=$pA"
[ "$out" = "$want" ] || t_fail "curl through http_proxy: '$out', wanted '$want'"
# A Host header naming another server does not reach it: the URL wins.
out=$(curl -sS --max-time 30 -H "Host: elsewhere.test" "http://localhost:$pA/req")
[[ $out == *"host=localhost:$pA "* ]] || t_fail "Host from the program passed on: $out"
# A body, counted by Content-Length.
out=$(curl -sS --max-time 30 --data-binary 'hello body' "http://localhost:$pA/echo")
[ "$out" = "hello body" ] || t_fail "POST through http_proxy: '$out'"

# 2. wget.
out=$(wget -q -O - --timeout=30 --tries=1 "http://localhost:$pB/req")
[[ $out == "method=GET uri=/req host=localhost:$pB pc= pa= dn=CN=corp-device port=$pB" ]] ||
	t_fail "wget through http_proxy: $out"

# 3. Python's urllib, a GET and a POST, from the environment alone.
python3 - "$pA" <<'EOF' || t_fail "urllib through http_proxy"
import sys, urllib.request
p = sys.argv[1]
r = urllib.request.urlopen(f"http://localhost:{p}/req", timeout=30).read().decode()
assert r.startswith(f"method=GET uri=/req host=localhost:{p} pc= pa= dn=CN=corp-device"), r
r = urllib.request.urlopen(f"http://localhost:{p}/echo", data=b"x" * 70000, timeout=30).read()
assert r == b"x" * 70000, len(r)
EOF

# 4. One connection, keep-alive: a chunked body and a Content-Length body
#    framed right, the next server routed anew, a denied one answered 403,
#    in that order; then two requests for two servers written at once
#    (pipelined): both answered, in order.
agent_log_mark
python3 - "$pp" "$pA" "$pB" "$pD" <<'EOF' || t_fail "keep-alive through the agent"
import http.client, socket, sys
pp, a, b, d = sys.argv[1:]
c = http.client.HTTPConnection("127.0.0.1", int(pp), timeout=30)
def ask(method, url, body=None, headers={}, **kw):
    c.request(method, url, body=body, headers=headers, **kw)
    r = c.getresponse()
    return r.status, r.getheader("X-Mtls-Reason"), r.read()
s, _, body = ask("POST", f"http://localhost:{a}/echo",
                 body=iter([b"first chunk|", b"second"]), encode_chunked=True)
assert (s, body) == (200, b"first chunk|second"), (s, body)
s, _, body = ask("GET", f"http://localhost:{a}/req")
assert s == 200 and body.startswith(f"method=GET uri=/req host=localhost:{a} ".encode()), body
s, _, body = ask("POST", f"http://localhost:{b}/echo", body=b"to B")
assert (s, body) == (200, b"to B"), (s, body)
s, _, body = ask("GET", f"http://localhost:{b}/req")
assert body.startswith(f"method=GET uri=/req host=localhost:{b} ".encode()), body
s, why, body = ask("GET", f"http://localhost:{d}/req")
assert s == 403 and why == "policy_denied" and b"closed by the test policy" in body, (s, why, body)
c.close()

def until_closed(sock):
    out = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return out
        out += chunk
sk = socket.create_connection(("127.0.0.1", int(pp)), timeout=30)
sk.sendall((f"GET http://localhost:{a}/req HTTP/1.1\r\nHost: x\r\n\r\n"
            f"GET http://localhost:{b}/req HTTP/1.1\r\nHost: x\r\n"
            f"Connection: close\r\n\r\n").encode())
got = until_closed(sk).decode()
ia, ib = got.find(f"port={a}\n"), got.find(f"port={b}\n")
assert got.count("HTTP/1.1 200") == 2 and 0 <= ia < ib, got
EOF
# Both keep-alive connections routed twice (A then B) under one conn id.
routes=$(tail -n "+$AGENT_LOG_FROM" "$T/agent.log" |
	grep -o 'event=route conn=[0-9]* ' | sort | uniq -c | awk '$1 >= 2' | wc -l)
[ "$routes" -ge 2 ] || t_fail "no connection was routed twice (keep-alive to another server): $routes"

# 5. Requests the agent cannot forward get a status and a reason.
ask_raw() { # REQUEST -> the answer, without CRs; the socket stays open
	# until the agent closes it (a client gone before the agent looks it
	# up is refused as unknown).
	python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
s.sendall(sys.argv[2].encode().decode("unicode_escape").encode("latin-1"))
out = b""
while True:
    c = s.recv(65536)
    if not c:
        break
    out += c
sys.stdout.write(out.decode("latin-1").replace("\r", ""))
' "$pp" "$1"
}
out=$(ask_raw 'GET /req HTTP/1.1\r\nHost: localhost\r\n\r\n')
[[ $out == "HTTP/1.1 400"*"absolute-form"* ]] || t_fail "origin-form to the proxy: $out"
out=$(ask_raw "GET https://localhost:$pA/ HTTP/1.1\r\n\r\n")
[[ $out == "HTTP/1.1 400"*"the agent does the TLS, use the http:// URL"* ]] ||
	t_fail "https:// in absolute-form: $out"
out=$(ask_raw "POST http://localhost:$pA/echo HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
[[ $out == "HTTP/1.1 400"*"both Content-Length and Transfer-Encoding"* ]] ||
	t_fail "request smuggling shape not refused: $out"
# A broken chunked body ends the connection; the server gets no second
# request out of it.
out=$(ask_raw "POST http://localhost:$pA/echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET /req HTTP/1.1\r\nHost: localhost\r\n\r\n")
[[ $out != *"method=GET"* ]] || t_fail "a second request smuggled in a broken chunked body: $out"

# A program running its own TLS through the agent (an https:// URL, by
# CONNECT or SOCKS5) gets a TLS alert, and the log says what to change;
# its ClientHello never reaches the server.
agent_log_mark
for px in "http://127.0.0.1:$pp" "socks5h://127.0.0.1:$pp"; do
	rc=0
	err=$(curl -sS --max-time 30 -x "$px" "https://localhost:$pA/req" 2>&1 >/dev/null) || rc=$?
	[ "$rc" = 35 ] && [[ $err == *"alert protocol version"* ]] ||
		t_fail "https:// through $px: curl $rc: $err"
done
agent_log_wait 'reason=tls_inside detail="the program sent a TLS ClientHello through the agent: the agent does the TLS, so the program must use http:// \(not https://\) URLs"'
[ "$(tail -n "+$AGENT_LOG_FROM" "$T/agent.log" | grep -c 'reason=tls_inside')" = 2 ] ||
	t_fail "not both inner-TLS attempts logged"
echo "ok: https:// through the proxy: curl says '$err'"

# 6. Another uid borrows no identity: the policy allows uid 0 only.
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups env http_proxy="$http_proxy" \
	curl -sS --max-time 30 -D - "http://localhost:$pA/req" | tr -d '\r') || true
[[ $out == "HTTP/1.1 403"*"X-Mtls-Reason: policy_denied"* ]] ||
	t_fail "uid 65534 through http_proxy: $out"
[[ $out != *"dn=CN=corp-device"* ]] || t_fail "uid 65534 got the identity"
# uid 65534 on a keep-alive connection: a denied first request ends it; it
# cannot ride a later one on an allowed route either.
setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 - "$pp" "$pA" <<'EOF' ||
import socket, sys
pp, a = sys.argv[1:]
s = socket.create_connection(("127.0.0.1", int(pp)), timeout=30)
s.sendall((f"GET http://localhost:{a}/req HTTP/1.1\r\n\r\n" * 2).encode())
out = b""
while True:
    c = s.recv(65536)
    if not c:
        break
    out += c
assert b"403" in out and b"dn=CN=corp-device" not in out, out
EOF
	t_fail "uid 65534 pipelined requests"
# uid 65534 over its per-uid limit (4) is answered, not reset: HTTP 503
# with the reason, SOCKS5 reply 1; and uid 0 is served meanwhile.
setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 - "$pp" "$pA" <<'EOF' ||
import socket, sys
pp, a = sys.argv[1:]
def conn():
    return socket.create_connection(("127.0.0.1", int(pp)), timeout=30)
def until_closed(s):
    out = b""
    while True:
        c = s.recv(65536)
        if not c:
            return out
        out += c
held = [conn() for _ in range(4)]  # silent: held until request_timeout
s = conn()
s.sendall(f"GET http://localhost:{a}/req HTTP/1.1\r\n\r\n".encode())
out = until_closed(s).decode()
assert out.startswith("HTTP/1.1 503"), out
assert "X-Mtls-Reason: limit" in out and "max_connections_per_uid = 4" in out, out
s = conn()
s.sendall(b"\x05\x01\x00")
assert s.recv(2) == b"\x05\x00"
s.sendall(b"\x05\x01\x00\x03\x09localhost" + int(a).to_bytes(2, "big"))
r = s.recv(10)
assert r[:2] == b"\x05\x01", r
EOF
	t_fail "uid 65534 over its limit was not answered"
out=$(curl -sS --max-time 30 "http://localhost:$pB/req")
[[ $out == *"port=$pB"* ]] || t_fail "uid 0 while uid 65534 is at its limit: $out"
agent_log_wait 'event=refused tunnel=tcp reason=limit uid=65534 max_connections_per_uid=4'

# The same server spelled otherwise: the rules name localhost, so the
# addresses are other destinations (no rule: denied), and the denied port
# stays denied in any case and with a trailing dot.
for url in "http://127.0.0.1:$pA/req" "http://[::ffff:127.0.0.1]:$pA/req" \
	"http://LOCALHOST:$pD/req" "http://localhost.:$pD/req" "http://LocalHost:0$pD/req"; do
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 "$url" || true)
	[ "$code" = 403 ] || t_fail "$url through the proxy: HTTP $code, wanted 403"
done
out=$(curl -sS --max-time 30 "http://LOCALHOST:$pA/req")
[[ $out == *"dn=CN=corp-device"* ]] || t_fail "host name case: $out"

# 7. A client that sends its head a byte a second is dropped at the
#    request timeout (4 s), and costs nobody else anything meanwhile.
python3 - "$pp" "$pA" >"$T/slow.out" <<'EOF' &
import select, socket, sys, time
pp, a = sys.argv[1:]
s = socket.create_connection(("127.0.0.1", int(pp)), timeout=120)
t0 = time.monotonic()
for ch in f"GET http://localhost:{a}/req HTTP/1.1\r\n" + "X" * 100:
    try:
        s.send(ch.encode())
    except OSError:
        break
    if select.select([s], [], [], 1.0)[0] and s.recv(4096) == b"":
        break
took = time.monotonic() - t0
print(f"dropped after {took:.1f}s")
sys.exit(0 if 3.5 <= took <= 60 else 1)
EOF
slow=$!
t_on_exit "kill $slow 2>/dev/null || true"
out=$(curl -sS --max-time 30 "http://localhost:$pB/req")
[[ $out == *"port=$pB"* ]] || t_fail "another client while one is slow: $out"
wait "$slow" || t_fail "the slow client: $(cat "$T/slow.out")"
echo "slow client: $(cat "$T/slow.out")"
t_pass
