#include "ec_offload.h"

#include <stdatomic.h>
#include <string.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include "ec_openssl.h"

static atomic_ulong ops[EC_OFF__N];

static int is_p256(const ecc_key *k)
{
	return k != NULL && k->dp != NULL && k->dp->id == ECC_SECP256R1;
}

static int done(enum ec_offload_op op)
{
	atomic_fetch_add_explicit(&ops[op], 1, memory_order_relaxed);
	return 0;
}

/* The new pair goes into the key as wolfSSL's own would (it exports the
 * public point for the key share from there); the key keeps its device,
 * so its ECDH comes here too. */
static int keygen(wc_CryptoInfo *info)
{
	uint8_t priv[EC_P256_SCALAR], pub[EC_P256_POINT];
	int rc;

	if (info->pk.eckg.curveId != ECC_SECP256R1 ||
	    info->pk.eckg.size != EC_P256_SCALAR)
		return CRYPTOCB_UNAVAILABLE;
	if (ec_openssl_p256_keygen(priv, pub) != 0)
		return CRYPTOCB_UNAVAILABLE;
	rc = wc_ecc_import_private_key_ex(priv, sizeof(priv), pub, sizeof(pub),
					  info->pk.eckg.key, ECC_SECP256R1);
	explicit_bzero(priv, sizeof(priv));
	return rc != 0 ? rc : done(EC_OFF_KEYGEN);
}

static int ecdh(wc_CryptoInfo *info)
{
	ecc_key *priv_key = info->pk.ecdh.private_key;
	ecc_key *pub_key = info->pk.ecdh.public_key;
	uint8_t priv[EC_P256_SCALAR], peer[EC_P256_POINT];
	word32 priv_len = sizeof(priv), peer_len = sizeof(peer);
	int rc;

	if (!is_p256(priv_key) || !is_p256(pub_key) ||
	    *info->pk.ecdh.outlen < EC_P256_SCALAR)
		return CRYPTOCB_UNAVAILABLE;
	if (wc_ecc_export_private_only(priv_key, priv, &priv_len) != 0 ||
	    priv_len != sizeof(priv) ||
	    wc_ecc_export_x963(pub_key, peer, &peer_len) != 0) {
		explicit_bzero(priv, sizeof(priv));
		return CRYPTOCB_UNAVAILABLE;
	}
	rc = ec_openssl_p256_ecdh(priv, peer, peer_len, info->pk.ecdh.out);
	explicit_bzero(priv, sizeof(priv));
	if (rc != 0)
		return ECC_BAD_ARG_E; /* the peer's point is not on the curve */
	*info->pk.ecdh.outlen = EC_P256_SCALAR;
	return done(EC_OFF_ECDH);
}

static int verify(wc_CryptoInfo *info)
{
	uint8_t pub[EC_P256_POINT];
	word32 pub_len = sizeof(pub);
	int ok;

	if (!is_p256(info->pk.eccverify.key) ||
	    wc_ecc_export_x963(info->pk.eccverify.key, pub, &pub_len) != 0 ||
	    ec_openssl_p256_verify(pub, pub_len, info->pk.eccverify.hash,
				   info->pk.eccverify.hashlen,
				   info->pk.eccverify.sig,
				   info->pk.eccverify.siglen, &ok) != 0)
		return CRYPTOCB_UNAVAILABLE;
	*info->pk.eccverify.res = ok;
	return done(EC_OFF_VERIFY);
}

int ec_offload_pk(wc_CryptoInfo *info)
{
	switch (info->pk.type) {
	case WC_PK_TYPE_EC_KEYGEN:
		return keygen(info);
	case WC_PK_TYPE_ECDH:
		return ecdh(info);
	case WC_PK_TYPE_ECDSA_VERIFY:
		return verify(info);
	default:
		return CRYPTOCB_UNAVAILABLE;
	}
}

int ec_offload_init(void)
{
	return ec_openssl_init();
}

void ec_offload_cleanup(void)
{
	ec_openssl_cleanup();
}

unsigned long ec_offload_ops(enum ec_offload_op op)
{
	return (unsigned)op < EC_OFF__N ? atomic_load(&ops[op]) : 0;
}
