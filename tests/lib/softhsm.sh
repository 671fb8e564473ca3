# SoftHSM2 tokens under $T (common.sh's t_init sets SOFTHSM2_CONF).
SOFTHSM_MODULE=/usr/lib/softhsm/libsofthsm2.so
export SOFTHSM_MODULE

# softhsm_init LABEL SO_PIN PIN: a fresh token in $T/tokens. Remembers
# SOFTHSM_LABEL and SOFTHSM_PIN for the helpers below.
softhsm_init() {
	: "${SOFTHSM2_CONF:=$T/softhsm2.conf}"
	export SOFTHSM2_CONF
	mkdir -p "$T/tokens"
	cat >"$SOFTHSM2_CONF" <<-EOF
	directories.tokendir = $T/tokens
	objectstore.backend = file
	log.level = ERROR
	slots.removable = false
	EOF
	softhsm2-util --init-token --free --label "$1" --so-pin "$2" \
		--pin "$3" >/dev/null || t_fail "softhsm2-util could not init token $1"
	SOFTHSM_LABEL=$1 SOFTHSM_PIN=$3
}

# softhsm_keygen_tool TYPE ID LABEL [PIN]: a key pair made on the token by an
# independent tool (pkcs11-tool). TYPE: EC:prime256v1 or rsa:2048; ID in hex.
softhsm_keygen_tool() {
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "${SOFTHSM_LABEL:?softhsm_init first}" \
		--login --pin "${4:-$SOFTHSM_PIN}" --keypairgen --key-type "$1" \
		--id "$2" --label "$3" >>"$T/pkcs11-tool.log" 2>&1 ||
		t_fail "pkcs11-tool could not make $1 key $3"
}
