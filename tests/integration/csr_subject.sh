#!/bin/bash
# mtlsctl csr takes the subject as RFC 4514 writes it: the order kept
# (openssl's RFC 2253 form prints it back as written), escaped commas,
# DC=, UTF-8 by hex pairs; a malformed one is refused with the reason.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init csr_subject
softhsm_init ctoken 87654321 cPIN-3141xq
printf 'cPIN-3141xq\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "Corp CA"
conf=$T/agent.conf
agent_conf_token "$conf" ctoken "$T/pin"
agent_conf_identity "$conf" dev "$T/ca/ca.pem"
"$MTLSCTL" -c "$conf" keygen dev --type ec-p256 >/dev/null

for subj in 'CN=dev\, one,OU=Ops,O=Example Corp,DC=corp,DC=example' \
	'C=DE,O=Beispiel GmbH,CN=z' 'CN=dev-7,UID=u1,emailAddress=ops@corp.example' \
	'CN=a\+b\;c\<d\>e\"f\\g'; do
	"$MTLSCTL" -c "$conf" csr dev --subject "$subj" -o "$T/x.csr"
	openssl req -in "$T/x.csr" -noout -verify 2>/dev/null || t_fail "CSR for '$subj' does not verify"
	got=$(openssl req -in "$T/x.csr" -noout -subject -nameopt RFC2253)
	[ "$got" = "subject=$subj" ] || t_fail "subject '$subj' came out as '$got'"
done
"$MTLSCTL" -c "$conf" csr dev --subject 'CN=K\C3\B6ln' -o "$T/x.csr"
got=$(openssl req -in "$T/x.csr" -noout -subject -nameopt RFC2253,-esc_msb,utf8)
[ "$got" = "subject=CN=Köln" ] || t_fail "UTF-8 subject: $got"
# The issued certificate keeps the order too.
openssl x509 -req -in "$T/x.csr" -CA "$T/ca/ca.pem" -CAkey "$T/ca/ca.key" \
	-days 1 -out "$T/x.pem" 2>/dev/null
[ "$(openssl x509 -in "$T/x.pem" -noout -subject -nameopt RFC2253,-esc_msb,utf8)" = "subject=CN=Köln" ] ||
	t_fail "issued certificate's subject"

for bad in 'CN=a+O=b' 'CN=a\' 'O=only' 'CN=a,C=DEU' 'XX=1,CN=a' 'CN=a,'; do
	if "$MTLSCTL" -c "$conf" csr dev --subject "$bad" -o "$T/bad.csr" 2>"$T/err"; then
		t_fail "accepted subject '$bad'"
	fi
	grep -q 'subject' "$T/err" || t_fail "no reason for '$bad': $(cat "$T/err")"
done
echo "ok: order, escapes, DC=, UTF-8 kept; $(head -c 120 "$T/err")"
t_pass
