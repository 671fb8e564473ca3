# A virtual PIV smartcard for the test (../shared/tools/virtual-piv: PivApplet
# on jcardsim behind a private pcscd), used through ykcs11 or OpenSC.
# Sourced after common.sh.
#
# Every card_up gives a blank card (PIN 123456, 5 tries; management key
# 0102..08 three times) that lives until the test ends.

: "${VPIV_KIT:=}"
if [ -z "$VPIV_KIT" ]; then
	for _d in "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/../shared/tools/virtual-piv" \
		/work/shared/tools/virtual-piv; do
		[ -x "$_d/up.sh" ] && VPIV_KIT=$(cd "$_d" && pwd) && break
	done
	unset _d
fi
CARD_PIN=123456
CARD_MGMT_KEY=010203040506070801020304050607080102030405060708
CARD_YKCS11=/usr/lib/x86_64-linux-gnu/libykcs11.so
CARD_OPENSC=/usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so
# RFC 7512 URIs of the one card as each module shows it.
CARD_YKCS11_URI='pkcs11:manufacturer=Yubico%20(www.yubico.com);model=YubiKey%20YK4'
CARD_OPENSC_URI='pkcs11:manufacturer=piv_II;model=PKCS%2315%20emulated'

# card_up DIR: a fresh card; its pcscd socket and OpenSC's configuration in
# this shell's environment (and so in every agent and tool it starts).
card_up() {
	local dir=$1
	[ -n "$VPIV_KIT" ] || t_fail "virtual-piv kit not found (../shared/tools/virtual-piv; set VPIV_KIT)"
	for f in /usr/sbin/pcscd /usr/lib/pcsc/drivers/serial/libifdvpcd.so "$CARD_YKCS11" "$CARD_OPENSC"; do
		[ -e "$f" ] || t_fail "$f missing: run scripts/deps.sh"
	done
	mkdir -p "$(dirname "$dir")"
	t_on_exit "'$VPIV_KIT/down.sh' '$dir'"
	VPIV_QUIET=${VPIV_QUIET:-1} "$VPIV_KIT/up.sh" "$dir" >"$dir.env" 2>"$dir.up.log" ||
		t_fail "virtual-piv up.sh failed: $(tail -3 "$dir.up.log")"
	set -a
	. "$dir.env"
	set +a
	CARD_DIR=$dir
	printf '%s\n' "$CARD_PIN" >"$T/card.pin"
	printf '%s\n' "$CARD_MGMT_KEY" >"$T/card.mgmt"
	chmod 600 "$T/card.pin" "$T/card.mgmt"
}

# card_remove / card_insert: the same card pulled and put back (keys,
# certificates and the PIN counter kept).
card_remove() { "$VPIV_KIT/card.sh" "$CARD_DIR" remove >/dev/null || t_fail "card.sh remove"; }
card_insert() { "$VPIV_KIT/card.sh" "$CARD_DIR" insert >/dev/null || t_fail "card.sh insert"; }

# card_pin_tries: what the card says is left, without spending a try
# (VERIFY with no PIN). yubico-piv-tool fails now and then while another
# process holds the card in a transaction: asked again, for up to 30 s.
card_pin_tries() {
	local out i
	for ((i = 0; i < 150; i++)); do
		out=$(yubico-piv-tool -a status 2>/dev/null | sed -n 's/^PIN tries left:[[:space:]]*//p')
		[[ $out =~ ^[0-9]+$ ]] && { echo "$out"; return 0; }
		sleep 0.2
	done
	echo "unknown"
}

# card_conf FILE NAME MODULE URI: [agent] (state_dir $T/state) on first use
# and a [token NAME] for the card, PIN and management key from 0600 files.
card_conf() {
	local file=$1 name=$2 module=$3 uri=$4
	if [ ! -s "$file" ]; then
		cat >"$file" <<-EOF
		[agent]
		log_level = debug
		state_dir = $T/state
		control = $T/control.sock
		handshake_timeout = 20s
		shutdown_grace = 3s
		resume = no
		EOF
	fi
	cat >>"$file" <<-EOF

	[token $name]
	module = $module
	uri = $uri
	pin_source = file:$T/card.pin
	so_pin_source = file:$T/card.mgmt
	EOF
}

# card_conf_identity FILE NAME TOKEN ID CA: key and certificate in the PIV
# slot whose CKA_ID is ID (01 = 9a, 02 = 9c, 03 = 9d, 04 = 9e, 05.. retired).
card_conf_identity() {
	cat >>"$1" <<-EOF

	[identity $2]
	token = $3
	key = pkcs11:id=%$4;type=private
	cert = pkcs11:id=%$4;type=cert
	ca = $5
	EOF
}

# card_check_slots CN_PREFIX: through the tunnels $T/{ec,rsa,sig}{13,12}.sock
# (9a EC, 9e RSA, 9c EC) to s_server, TLS 1.3 and 1.2: the client
# CN_PREFIX-ec/-rsa/-sig and the signature each key makes (servers.sh).
card_check_slots() {
	s_server_check "$T/ec13.sock" "$1-ec" TLSv1.3 ECDSA
	s_server_check "$T/ec12.sock" "$1-ec" TLSv1.2 ECDSA
	s_server_check "$T/rsa13.sock" "$1-rsa" TLSv1.3 RSA-PSS
	s_server_check "$T/rsa12.sock" "$1-rsa" TLSv1.2 RSA
	s_server_check "$T/sig13.sock" "$1-sig" TLSv1.3 ECDSA
	s_server_check "$T/sig12.sock" "$1-sig" TLSv1.2 ECDSA
}
