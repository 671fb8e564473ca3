# A bare ACME (RFC 8555) client in bash: curl for HTTP, openssl for the
# JWS signatures (RS256; HS256 for external account binding), coreutils'
# basenc for base64url. An independent tool to see what the server says
# where lego shows nothing (status codes, headers, problem documents), or
# to send what lego never would (a newAccount without EAB). Nothing here
# parses JSON beyond what sed can: the caller greps the bodies.
#
# Every function takes W, a work directory of one client (one account key):
#   W/key.pem      the account key (RSA 2048, made by acme_curl_init)
#   W/dir.json     the directory
#   W/account-url  the account's URL (kid), once newAccount answered
#   W/resp.hdr, W/resp.body   the last response
#
# acme_curl_init W DIR_URL CAFILE: makes W/key.pem if missing, fetches the
#   directory (trusting CAFILE).
# acme_curl_url W NAME: prints the directory's URL for NAME (newNonce,
#   newAccount, newOrder, revokeCert, keyChange).
# acme_curl_post W URL PAYLOAD [EAB_KID EAB_HMAC]: POSTs PAYLOAD (JSON text;
#   "" for POST-as-GET) as a flattened JWS with a fresh nonce; the header
#   holds the jwk for newAccount (and EAB_KID/EAB_HMAC, base64url, add an
#   externalAccountBinding to the payload), else the kid W/account-url.
#   Prints the HTTP status; a 200/201 from newAccount stores Location in
#   W/account-url.
# acme_curl_header W NAME: the values of header NAME in the last response,
#   one a line (case-insensitive name).
# acme_curl_field W NAME: the string value of "NAME": "..." in the last
#   body, first occurrence.
# acme_curl_thumbprint W: the key's JWK thumbprint (RFC 7638), base64url.

_acme_b64url() { basenc --base64url -w0 | tr -d '='; }

_acme_jwk() { # W: the public JWK, members in RFC 7638's order
	local n
	n=$(openssl rsa -in "$1/key.pem" -noout -modulus 2>/dev/null) || return 1
	n=${n#Modulus=}
	printf '{"e":"AQAB","kty":"RSA","n":"%s"}' "$(printf '%s' "$n" | basenc --base16 -d | _acme_b64url)"
}

acme_curl_init() {
	local w=$1 url=$2 ca=$3
	mkdir -p "$w"
	[ -s "$w/key.pem" ] ||
		openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
			-out "$w/key.pem" 2>/dev/null || return 1
	printf '%s\n' "$ca" >"$w/ca"
	curl -sS --max-time 30 --cacert "$ca" -o "$w/dir.json" "$url"
}

acme_curl_url() {
	sed -n "s/^ *\"$2\": *\"\\([^\"]*\\)\".*/\\1/p" "$1/dir.json" | head -n 1
}

acme_curl_header() {
	grep -i "^$2:" "$1/resp.hdr" | sed 's/^[^:]*: *//; s/\r$//'
}

acme_curl_field() {
	sed -n "s/^ *\"$2\": *\"\\([^\"]*\\)\".*/\\1/p" "$1/resp.body" | head -n 1
}

acme_curl_thumbprint() {
	_acme_jwk "$1" | openssl dgst -sha256 -binary | _acme_b64url
}

acme_curl_post() {
	local w=$1 url=$2 payload=$3 eab_kid=${4:-} eab_hmac=${5:-}
	local ca nonce jwk prot p64 pl64 sig key
	ca=$(cat "$w/ca")
	curl -sS --max-time 30 --cacert "$ca" -I -o "$w/nonce.hdr" \
		"$(acme_curl_url "$w" newNonce)" || return 1
	nonce=$(grep -i '^Replay-Nonce:' "$w/nonce.hdr" | sed 's/^[^:]*: *//; s/\r$//')
	[ -n "$nonce" ] || return 1
	if [ "$url" = "$(acme_curl_url "$w" newAccount)" ]; then
		jwk=$(_acme_jwk "$w") || return 1
		prot="{\"alg\":\"RS256\",\"jwk\":$jwk,\"nonce\":\"$nonce\",\"url\":\"$url\"}"
		if [ -n "$eab_kid" ]; then
			# RFC 8555 7.3.4: a JWS over the account's jwk, MACed with
			# the key the CA gave out of band.
			local ep epl esig hexkey
			ep=$(printf '{"alg":"HS256","kid":"%s","url":"%s"}' "$eab_kid" "$url" | _acme_b64url)
			epl=$(printf '%s' "$jwk" | _acme_b64url)
			key=$eab_hmac
			while ((${#key} % 4)); do key+="="; done
			hexkey=$(printf '%s' "$key" | basenc --base64url -d | basenc --base16 -w0)
			esig=$(printf '%s.%s' "$ep" "$epl" | openssl dgst -sha256 -mac HMAC \
				-macopt "hexkey:$hexkey" -binary | _acme_b64url)
			payload="${payload%\}},\"externalAccountBinding\":{\"protected\":\"$ep\",\"payload\":\"$epl\",\"signature\":\"$esig\"}}"
			[[ $payload == '{,'* ]] && payload="{${payload#\{,}"
		fi
	else
		[ -s "$w/account-url" ] || {
			echo "acme_curl_post: no account yet in $w" >&2
			return 1
		}
		prot="{\"alg\":\"RS256\",\"kid\":\"$(cat "$w/account-url")\",\"nonce\":\"$nonce\",\"url\":\"$url\"}"
	fi
	p64=$(printf '%s' "$prot" | _acme_b64url)
	pl64=$(printf '%s' "$payload" | _acme_b64url)
	sig=$(printf '%s.%s' "$p64" "$pl64" | openssl dgst -sha256 -sign "$w/key.pem" -binary |
		_acme_b64url) || return 1
	local code
	code=$(curl -sS --max-time 30 --cacert "$ca" -D "$w/resp.hdr" -o "$w/resp.body" \
		-w '%{http_code}' -H 'Content-Type: application/jose+json' \
		--data-binary "{\"protected\":\"$p64\",\"payload\":\"$pl64\",\"signature\":\"$sig\"}" \
		"$url") || return 1
	if [ "$url" = "$(acme_curl_url "$w" newAccount)" ] && [[ $code == 20[01] ]]; then
		acme_curl_header "$w" Location >"$w/account-url"
	fi
	echo "$code"
}
