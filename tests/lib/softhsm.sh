# SoftHSM2 tokens under $T.
SOFTHSM_MODULE=/usr/lib/softhsm/libsofthsm2.so
export SOFTHSM_MODULE

# softhsm_init LABEL SO_PIN PIN
softhsm_init() {
	mkdir -p "$T/tokens"
	cat >"$SOFTHSM2_CONF" <<-EOF
	directories.tokendir = $T/tokens
	objectstore.backend = file
	log.level = ERROR
	slots.removable = false
	EOF
	softhsm2-util --init-token --free --label "$1" --so-pin "$2" \
		--pin "$3" >/dev/null
}

# softhsm_keygen_tool TYPE ID LABEL PIN: a key made by an independent tool.
softhsm_keygen_tool() {
	pkcs11-tool --module "$SOFTHSM_MODULE" --login --pin "$4" \
		--keypairgen --key-type "$1" --id "$2" --label "$3" >/dev/null 2>&1
}
