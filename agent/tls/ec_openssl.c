#include "ec_openssl.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <string.h>

static EC_GROUP *p256;

int ec_openssl_init(void)
{
	if (p256 != NULL)
		return 0;
	p256 = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	return p256 != NULL ? 0 : -1;
}

void ec_openssl_cleanup(void)
{
	EC_GROUP_free(p256);
	p256 = NULL;
}

int ec_openssl_p256_keygen(uint8_t priv[EC_P256_SCALAR],
			   uint8_t pub[EC_P256_POINT])
{
	BIGNUM *k = BN_secure_new();
	EC_POINT *q = EC_POINT_new(p256);
	BN_CTX *bc = BN_CTX_secure_new();
	int rc = -1;

	if (k == NULL || q == NULL || bc == NULL)
		goto out;
	/* Uniform in [1, n-1]. */
	do {
		if (BN_priv_rand_range(k, EC_GROUP_get0_order(p256)) != 1)
			goto out;
	} while (BN_is_zero(k));
	if (EC_POINT_mul(p256, q, k, NULL, NULL, bc) != 1 ||
	    EC_POINT_point2oct(p256, q, POINT_CONVERSION_UNCOMPRESSED, pub,
			       EC_P256_POINT, bc) != EC_P256_POINT ||
	    BN_bn2binpad(k, priv, EC_P256_SCALAR) != EC_P256_SCALAR)
		goto out;
	rc = 0;
out:
	if (rc != 0)
		explicit_bzero(priv, EC_P256_SCALAR);
	BN_clear_free(k);
	EC_POINT_free(q);
	BN_CTX_free(bc);
	return rc;
}

int ec_openssl_p256_ecdh(const uint8_t priv[EC_P256_SCALAR],
			 const uint8_t *peer, size_t peer_len,
			 uint8_t out[EC_P256_SCALAR])
{
	BIGNUM *k = BN_secure_new(), *x = BN_secure_new();
	EC_POINT *p = EC_POINT_new(p256), *r = EC_POINT_new(p256);
	BN_CTX *bc = BN_CTX_secure_new();
	int rc = -1;

	if (k == NULL || x == NULL || p == NULL || r == NULL || bc == NULL ||
	    BN_bin2bn(priv, EC_P256_SCALAR, k) == NULL)
		goto out;
	/* oct2point refuses a point off the curve. */
	if (EC_POINT_oct2point(p256, p, peer, peer_len, bc) != 1 ||
	    EC_POINT_is_at_infinity(p256, p) ||
	    EC_POINT_mul(p256, r, NULL, p, k, bc) != 1 ||
	    EC_POINT_is_at_infinity(p256, r) ||
	    EC_POINT_get_affine_coordinates(p256, r, x, NULL, bc) != 1 ||
	    BN_bn2binpad(x, out, EC_P256_SCALAR) != EC_P256_SCALAR)
		goto out;
	rc = 0;
out:
	if (rc != 0)
		explicit_bzero(out, EC_P256_SCALAR);
	BN_clear_free(k);
	BN_clear_free(x);
	EC_POINT_clear_free(p);
	EC_POINT_clear_free(r);
	BN_CTX_free(bc);
	return rc;
}

/* pub as an EVP_PKEY: OpenSSL 3 checks ECDSA only through one. */
static EVP_PKEY *pub_key(const uint8_t *pub, size_t pub_len)
{
	OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *pc = NULL;
	EVP_PKEY *key = NULL;

	if (b == NULL ||
	    OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME,
					    "prime256v1", 0) != 1 ||
	    OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pub,
					     pub_len) != 1 ||
	    (params = OSSL_PARAM_BLD_to_param(b)) == NULL ||
	    (pc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(pc) != 1 ||
	    EVP_PKEY_fromdata(pc, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
		key = NULL;
	EVP_PKEY_CTX_free(pc);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(b);
	return key;
}

int ec_openssl_p256_verify(const uint8_t *pub, size_t pub_len,
			   const uint8_t *hash, size_t hash_len,
			   const uint8_t *sig, size_t sig_len, int *ok)
{
	EVP_PKEY *key;
	EVP_PKEY_CTX *vc = NULL;
	int rc = -1;

	*ok = 0;
	key = pub_key(pub, pub_len);
	if (key == NULL || (vc = EVP_PKEY_CTX_new(key, NULL)) == NULL ||
	    EVP_PKEY_verify_init(vc) != 1)
		goto out;
	/* 1 good; 0 or below: a bad or malformed signature, which is a
	 * verdict, not a failure to check. */
	*ok = EVP_PKEY_verify(vc, sig, sig_len, hash, hash_len) == 1;
	rc = 0;
out:
	EVP_PKEY_CTX_free(vc);
	EVP_PKEY_free(key);
	return rc;
}
