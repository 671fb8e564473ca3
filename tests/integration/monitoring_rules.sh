#!/bin/bash
# docs/monitoring: the alerting rules pass `promtool check rules` and their
# unit tests (`promtool test rules`); the dashboard's queries parse as PromQL.
# Then a real agent (SoftHSM token, an identity enrolled by the exec
# enroller, a tunnel to nginx and one to a closed port) is scraped: every
# metric name that the rules, their tests' input series and the dashboard
# use must be one it serves. The gauges the rules rely on carry the
# certificate's real dates, and a failed renewal counts in
# mtls_renewal_failures.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init monitoring_rules
mon=$(cd "$(dirname "$0")/../../docs/monitoring" && pwd)
names=$(cd "$(dirname "$0")/../lib" && pwd)/promql_names.py
rules=$mon/mtls-agent.rules.yml
dash=$mon/mtls-agent.dashboard.json

# 1. promtool on the rules and their unit tests; the dashboard's queries as
# recording rules, so that promtool parses each one.
promtool check rules "$rules" >"$T/check.out" 2>&1 || t_fail "promtool check rules: $(cat "$T/check.out")"
(cd "$mon/tests" && promtool test rules ./*.yml) >"$T/test.out" 2>&1 ||
	t_fail "promtool test rules: $(cat "$T/test.out")"
[ "$(grep -c SUCCESS "$T/test.out")" -eq "$(ls "$mon"/tests/*.yml | wc -l)" ] ||
	t_fail "not every rules test file passed: $(cat "$T/test.out")"
python3 "$names" as-rules "$dash" >"$T/dashboard.rules.yml"
promtool check rules "$T/dashboard.rules.yml" >"$T/dcheck.out" 2>&1 ||
	t_fail "a dashboard query does not parse: $(cat "$T/dcheck.out")"
echo "ok: promtool check/test rules; $(grep -c 'record:' "$T/dashboard.rules.yml") dashboard queries parse"

# 2. An agent with what the rules speak of: a token, an identity that renews
# (enroll = exec), tunnels.
softhsm_init itoken 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "Monitoring CA"
pki_server_cert "$T/ca" "$T/server" localhost "DNS:localhost"
port=$(t_free_port)
nginx_start "$T/ngx" "$port" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key"
closed=$(t_free_port) # claimed, never listened on
exec_ca=$(cd "$(dirname "$0")/../lib" && pwd)/exec_ca.sh

conf=$T/agent.conf
agent_conf_token "$conf" itoken "$T/pin"
sed -i "s#^\[agent\]\$#[agent]\ncontrol = $T/control.sock\nmetrics = $T/metrics.sock#" "$conf"
cat >>"$conf" <<-EOF

	[identity dev]
	token = soft
	key = pkcs11:object=dev-key;type=private
	cert = pkcs11:object=dev-cert;type=cert
	ca = $T/ca/ca.pem
	enroll = exec
	exec = $exec_ca $T/ca
	issuer_ca = $T/ca/ca.pem
	subject = CN=monitoring-device
	cert_file = $T/dev-chain.pem
	retry_min = 1h
	retry_max = 1h
	EOF
agent_conf_tunnel "$conf" web "$T/web.sock" "localhost:$port" dev
agent_conf_tunnel "$conf" down "$T/down.sock" "localhost:$closed" dev
"$MTLSCTL" -c "$conf" enroll dev >"$T/enroll.out"
agent_start "$conf"

out=$(curl -sS --max-time 30 --unix-socket "$T/web.sock" http://localhost/)
[[ $out == *"dn=CN=monitoring-device verify=SUCCESS"* ]] || t_fail "nginx saw: $out"
curl -sS --max-time 30 --unix-socket "$T/down.sock" http://localhost/ >/dev/null 2>&1 || true

scrape() { # FILE
	curl -sS --max-time 30 --unix-socket "$T/metrics.sock" http://localhost/metrics >"$1" ||
		t_fail "scrape failed"
}
handshakes_failed() { # a handshake failure counted (the closed port)
	scrape "$T/scrape.tmp"
	grep -q '^mtls_handshakes_total{result="fail",' "$T/scrape.tmp"
}
t_until 30 handshakes_failed || t_fail "the refused connection was not counted"
scrape "$T/metrics.txt"
promtool check metrics <"$T/metrics.txt" >"$T/promtool.log" 2>&1 ||
	t_fail "promtool check metrics: $(cat "$T/promtool.log")"

# 3. Every name used is served. Samples, or for a family with none yet
# (no token error so far) its # TYPE line; a histogram's series by suffix.
sed -n 's/^\([a-zA-Z_:][a-zA-Z0-9_:]*\)[{ ].*/\1/p' "$T/metrics.txt" | sort -u >"$T/samples"
awk '$1 == "#" && $2 == "TYPE" { print $3;
	if ($4 == "histogram") { print $3 "_bucket"; print $3 "_sum"; print $3 "_count" } }' \
	"$T/metrics.txt" | sort -u >"$T/families"
sort -u "$T/samples" "$T/families" >"$T/served"
python3 "$names" rules "$rules" >"$T/rules.names" || t_fail "rules: no names"
python3 "$names" series "$mon"/tests/*.yml >"$T/series.names" || t_fail "tests: no series"
python3 "$names" dashboard "$dash" >"$T/dashboard.names" || t_fail "dashboard: no names"
for f in rules series dashboard; do
	[ "$(wc -l <"$T/$f.names")" -ge 5 ] || t_fail "$f: too few names found: $(cat "$T/$f.names")"
done
# The rules' names all with samples now: an alert on a family the agent
# serves but has no series of would never fire.
missing=$(comm -23 "$T/rules.names" "$T/samples")
[ -z "$missing" ] || t_fail "rules use metrics the agent does not serve: $missing"
missing=$(comm -23 "$T/series.names" "$T/samples")
[ -z "$missing" ] || t_fail "rules tests use input series the agent does not serve: $missing"
missing=$(comm -23 "$T/dashboard.names" "$T/served")
[ -z "$missing" ] || t_fail "the dashboard uses metrics the agent does not serve: $missing"
echo "ok: $(wc -l <"$T/rules.names") metric names in the rules, $(wc -l <"$T/dashboard.names") in the dashboard, all served"

# 4. The gauges behind the certificate alerts: the certificate's own dates,
# renewal due between them, no failure yet.
value() { # NAME LABELS FILE: the sample's value
	awk -v s="$1{$2}" '$1 == s { print $2 }' "$3"
}
nb=$(date -d "$(openssl x509 -in "$T/dev-chain.pem" -noout -startdate | cut -d= -f2)" +%s)
na=$(date -d "$(openssl x509 -in "$T/dev-chain.pem" -noout -enddate | cut -d= -f2)" +%s)
[ "$(value mtls_certificate_not_before_seconds 'identity="dev"' "$T/metrics.txt")" = "$nb" ] ||
	t_fail "not_before is not the certificate's ($nb)"
[ "$(value mtls_certificate_not_after_seconds 'identity="dev"' "$T/metrics.txt")" = "$na" ] ||
	t_fail "not_after is not the certificate's ($na)"
due=$(value mtls_certificate_renewal_due_seconds 'identity="dev"' "$T/metrics.txt")
# renew_at's default (66.7%), without the jitter, to the second.
[ "$due" = $((nb + (na - nb) * 667 / 1000)) ] ||
	t_fail "renewal due $due, not 66.7% into [$nb, $na]"
[ "$(value mtls_renewal_failures 'identity="dev"' "$T/metrics.txt")" = 0 ] ||
	t_fail "mtls_renewal_failures not 0 before any renewal"

# A renewal asked for while the CA is down: one failure, counted (the next
# attempt is an hour away).
touch "$T/ca/down"
agent_log_mark
"$MTLSCTL" -c "$conf" renew dev --now >"$T/renew.out" 2>&1 || true
agent_log_wait 'event=renew_failed identity=dev .*failures=1 ' 60
failures_one() {
	scrape "$T/scrape.tmp"
	[ "$(value mtls_renewal_failures 'identity="dev"' "$T/scrape.tmp")" = 1 ]
}
t_until 30 failures_one || t_fail "mtls_renewal_failures did not count the failed renewal"
echo "ok: certificate dates, renewal due time and failures as the agent knows them"
agent_stop || t_fail "mtls-agent did not stop cleanly"
t_pass "the alerting rules and the dashboard use only metrics the agent serves"
