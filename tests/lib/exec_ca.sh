#!/bin/bash
# An exec enroller for tests: the CSR (PEM) on stdin, the certificate (PEM)
# on stdout, issued by `openssl ca` from CADIR with client_ext.
# usage: exec_ca.sh CADIR [SECONDS]   (lifetime; default 30 days)
set -euo pipefail
ca=$1 secs=${2:-2592000}
# An operator's switch for tests: while CADIR/down exists the CA fails.
[ -e "$ca/down" ] && { echo "exec_ca: CA is down" >&2; exit 3; }
tmp=$(mktemp "$ca/req.XXXXXX")
trap 'rm -f "$tmp" "$tmp.pem"' EXIT
head -c 65536 >"$tmp"
start=$(date -u -d '-1 min' +%Y%m%d%H%M%SZ)
end=$(date -u -d "+$secs sec" +%Y%m%d%H%M%SZ)
# openssl ca serialises on its database; concurrent enrollers wait here.
exec 9>"$ca/.lock"
flock 9
openssl ca -batch -preserveDN -config "$ca/ca.cnf" -extensions client_ext \
	-startdate "$start" -enddate "$end" -in "$tmp" -out "$tmp.pem" \
	-notext 2>>"$ca/exec_ca.log"
cat "$tmp.pem"
