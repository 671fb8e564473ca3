#include <wolfssl/options.h>

#include "jws.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/sha256.h>
#include <wolfssl/wolfcrypt/sha512.h>

/* P-256 and P-384 as DER OIDs (CKA_EC_PARAMS). */
static const uint8_t oid_p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
				    0x3d, 0x03, 0x01, 0x07 };
static const uint8_t oid_p384[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00,
				    0x22 };

int b64url_encode(const uint8_t *in, size_t len, char *out, size_t cap)
{
	word32 n = cap > 0 ? (word32)(cap - 1) : 0;

	if (cap == 0 || len > (cap / 4) * 3 + 3)
		return -1;
	if (len == 0) {
		out[0] = '\0';
		return 0;
	}
	if (Base64_Encode_NoNl(in, (word32)len, (byte *)out, &n) != 0 || n >= cap)
		return -1;
	while (n > 0 && out[n - 1] == '=')
		n--;
	for (word32 i = 0; i < n; i++)
		out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
	out[n] = '\0';
	return (int)n;
}

int b64url_decode(const char *in, size_t len, uint8_t *out, size_t *out_len)
{
	char *tmp;
	uint8_t *plain;
	word32 n;
	size_t m = 0;
	int rc = -1;

	if (len > 1 << 20)
		return -1;
	while (len > 0 && in[len - 1] == '=')
		len--;
	tmp = malloc(len + 4);
	/* wolfSSL wants room for what the padded length could hold. */
	plain = malloc(len + 4);
	if (tmp == NULL || plain == NULL)
		goto out;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];

		/* Standard base64 spelled as such is not base64url. */
		if (c == '+' || c == '/' || c == '=')
			goto out;
		tmp[m++] = c == '-' ? '+' : c == '_' ? '/' : c;
	}
	while (m % 4 != 0)
		tmp[m++] = '=';
	n = (word32)(len + 4);
	if (m > 0 && Base64_Decode((byte *)tmp, (word32)m, plain, &n) != 0)
		goto out;
	if (m == 0)
		n = 0;
	if (n > *out_len)
		goto out;
	memcpy(out, plain, n);
	*out_len = n;
	rc = 0;
out:
	if (tmp != NULL)
		explicit_bzero(tmp, len + 4);
	free(tmp);
	if (plain != NULL)
		explicit_bzero(plain, len + 4); /* may be a MAC key */
	free(plain);
	return rc;
}

mtls_err_t jws_key_init(struct jws_key *jk, struct p11_key *key,
			struct mtls_error *err)
{
	struct p11_pubkey pub;
	uint8_t hash[WC_SHA256_DIGEST_SIZE];
	char a[200], b[1400];
	mtls_err_t r;
	int n;

	memset(jk, 0, sizeof(*jk));
	jk->key = key;
	r = p11_key_public(key, &pub, err);
	if (r != MTLS_OK)
		return r;
	jk->type = pub.type;
	if (pub.type == P11_KEY_EC) {
		const char *crv;

		if (pub.ec_params_len == sizeof(oid_p256) &&
		    memcmp(pub.ec_params, oid_p256, sizeof(oid_p256)) == 0) {
			crv = "P-256";
			jk->coord = 32;
			snprintf(jk->alg, sizeof(jk->alg), "ES256");
		} else if (pub.ec_params_len == sizeof(oid_p384) &&
			   memcmp(pub.ec_params, oid_p384, sizeof(oid_p384)) == 0) {
			crv = "P-384";
			jk->coord = 48;
			snprintf(jk->alg, sizeof(jk->alg), "ES384");
		} else
			return mtls_error_set(err, MTLS_ERR_MECHANISM, "ACME: an EC "
					      "key on P-256 or P-384 only");
		if (pub.ec_point_len != 1 + 2 * jk->coord || pub.ec_point[0] != 4)
			return mtls_error_set(err, MTLS_ERR_TOKEN, "EC point not "
					      "uncompressed");
		if (b64url_encode(pub.ec_point + 1, jk->coord, a, sizeof(a)) < 0 ||
		    b64url_encode(pub.ec_point + 1 + jk->coord, jk->coord, b,
				  sizeof(b)) < 0)
			return mtls_error_set(err, MTLS_ERR_LIMIT, "JWK");
		/* RFC 7638 3.2: the required members, lexicographic order,
		 * no white space. */
		n = snprintf(jk->jwk, sizeof(jk->jwk),
			     "{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
			     crv, a, b);
	} else {
		snprintf(jk->alg, sizeof(jk->alg), "RS256");
		if (b64url_encode(pub.exponent, pub.exponent_len, a, sizeof(a)) < 0 ||
		    b64url_encode(pub.modulus, pub.modulus_len, b, sizeof(b)) < 0)
			return mtls_error_set(err, MTLS_ERR_LIMIT, "JWK");
		n = snprintf(jk->jwk, sizeof(jk->jwk),
			     "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", a, b);
	}
	if (n < 0 || (size_t)n >= sizeof(jk->jwk))
		return mtls_error_set(err, MTLS_ERR_LIMIT, "JWK too long");
	if (wc_Sha256Hash((const byte *)jk->jwk, (word32)n, hash) != 0 ||
	    b64url_encode(hash, sizeof(hash), jk->thumbprint,
			  sizeof(jk->thumbprint)) < 0)
		return mtls_error_set(err, MTLS_ERR_CRYPTO, "JWK thumbprint");
	return MTLS_OK;
}

/* The token's ECDSA signature as JWS wants it: r||s, each coord bytes
 * (RFC 7518 3.4). PKCS#11 gives r||s; a DER signature is converted. */
static int ecdsa_raw(const uint8_t *sig, size_t len, unsigned coord,
		     uint8_t *out)
{
	byte r[72], s[72];
	word32 rl = sizeof(r), sl = sizeof(s);

	if (len == 2 * coord) {
		memcpy(out, sig, len);
		return 0;
	}
	if (len < 8 || sig[0] != 0x30 ||
	    wc_ecc_sig_to_rs(sig, (word32)len, r, &rl, s, &sl) != 0 ||
	    rl > coord || sl > coord)
		return -1;
	memset(out, 0, 2 * coord);
	memcpy(out + coord - rl, r, rl);
	memcpy(out + 2 * coord - sl, s, sl);
	return 0;
}

/* "b64(protected).b64(payload)" signed, as the "signature" member. */
static mtls_err_t sign_input(struct jws_key *jk, const char *input,
			     char *sig_b64, size_t cap, struct mtls_error *err)
{
	uint8_t hash[WC_SHA384_DIGEST_SIZE], sig[P11_SIG_MAX], raw[P11_SIG_MAX];
	uint8_t di[MAX_ENCODED_SIG_SZ];
	size_t sig_len = sizeof(sig), hlen;
	mtls_err_t r;

	if (jk->type == P11_KEY_EC && jk->coord == 48) {
		hlen = WC_SHA384_DIGEST_SIZE;
		if (wc_Sha384Hash((const byte *)input, (word32)strlen(input),
				  hash) != 0)
			return mtls_error_set(err, MTLS_ERR_CRYPTO, "sha384");
	} else {
		hlen = WC_SHA256_DIGEST_SIZE;
		if (wc_Sha256Hash((const byte *)input, (word32)strlen(input),
				  hash) != 0)
			return mtls_error_set(err, MTLS_ERR_CRYPTO, "sha256");
	}
	if (jk->type == P11_KEY_EC) {
		r = p11_key_sign(jk->key, P11_SIGN_ECDSA,
				 hlen == 48 ? P11_HASH_SHA384 : P11_HASH_SHA256,
				 hash, hlen, sig, &sig_len, err);
		if (r != MTLS_OK)
			return r;
		if (ecdsa_raw(sig, sig_len, jk->coord, raw) != 0)
			return mtls_error_set(err, MTLS_ERR_TOKEN, "ECDSA "
					      "signature of %zu bytes", sig_len);
		memcpy(sig, raw, 2 * jk->coord);
		sig_len = 2 * jk->coord;
	} else {
		word32 di_len = wc_EncodeSignature(di, hash, (word32)hlen, SHA256h);

		r = p11_key_sign(jk->key, P11_SIGN_RSA_PKCS, P11_HASH_SHA256, di,
				 di_len, sig, &sig_len, err);
		if (r != MTLS_OK)
			return r;
	}
	if (b64url_encode(sig, sig_len, sig_b64, cap) < 0)
		return mtls_error_set(err, MTLS_ERR_LIMIT, "signature");
	return MTLS_OK;
}

/* {"protected":..,"payload":..,"signature":..} around an input already
 * made of the two base64url parts. */
static mtls_err_t flatten(const char *prot_b64, const char *pay_b64,
			  const char *sig_b64, char **out,
			  struct mtls_error *err)
{
	size_t n = strlen(prot_b64) + strlen(pay_b64) + strlen(sig_b64) + 64;

	*out = malloc(n);
	if (*out == NULL)
		return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	snprintf(*out, n,
		 "{\"protected\":\"%s\",\"payload\":\"%s\",\"signature\":\"%s\"}",
		 prot_b64, pay_b64, sig_b64);
	return MTLS_OK;
}

/* base64url of a string, malloc'd. */
static char *b64url_str(const char *s)
{
	size_t len = strlen(s), cap = 4 * (len / 3 + 2) + 1;
	char *out = malloc(cap);

	if (out != NULL && b64url_encode((const uint8_t *)s, len, out, cap) < 0) {
		free(out);
		out = NULL;
	}
	return out;
}

/* "prot.pay": what a JWS signs (RFC 7515 5.1), malloc'd. */
static char *signing_input(const char *prot, const char *pay)
{
	char *input = NULL;

	if (asprintf(&input, "%s.%s", prot, pay) < 0)
		return NULL;
	return input;
}

static char *protected_header(const char *alg, const char *kid,
			      const char *jwk, const char *nonce,
			      const char *url)
{
	json_object *o = json_object_new_object(), *k = NULL;
	char *out = NULL;

	if (o == NULL)
		return NULL;
	json_object_object_add(o, "alg", json_object_new_string(alg));
	if (kid != NULL)
		json_object_object_add(o, "kid", json_object_new_string(kid));
	else if ((k = json_tokener_parse(jwk)) != NULL)
		json_object_object_add(o, "jwk", k);
	else
		goto out;
	if (nonce != NULL)
		json_object_object_add(o, "nonce", json_object_new_string(nonce));
	json_object_object_add(o, "url", json_object_new_string(url));
	out = b64url_str(json_object_to_json_string_ext(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
out:
	json_object_put(o);
	return out;
}

mtls_err_t jws_sign(struct jws_key *jk, const char *kid, const char *nonce,
		    const char *url, const char *payload, char **out,
		    struct mtls_error *err)
{
	char *prot = NULL, *pay = NULL, *input = NULL, sig[P11_SIG_MAX * 2];
	mtls_err_t r;

	*out = NULL;
	prot = protected_header(jk->alg, kid, jk->jwk, nonce, url);
	pay = b64url_str(payload);
	input = prot && pay ? signing_input(prot, pay) : NULL;
	if (input == NULL) {
		r = mtls_error_set(err, MTLS_ERR_NOMEM, "JWS");
		goto out;
	}
	r = sign_input(jk, input, sig, sizeof(sig), err);
	if (r == MTLS_OK)
		r = flatten(prot, pay, sig, out, err);
out:
	free(prot);
	free(pay);
	free(input);
	return r;
}

mtls_err_t jws_eab(const char *eab_kid, const uint8_t *mac_key,
		   size_t mac_len, const char *url, const char *jwk,
		   char **out, struct mtls_error *err)
{
	char *prot = NULL, *pay = NULL, *input = NULL, sig[64];
	uint8_t mac[WC_SHA256_DIGEST_SIZE];
	Hmac h;
	mtls_err_t r = MTLS_OK;

	*out = NULL;
	prot = protected_header("HS256", eab_kid, NULL, NULL, url);
	pay = b64url_str(jwk);
	input = prot && pay ? signing_input(prot, pay) : NULL;
	if (input == NULL) {
		r = mtls_error_set(err, MTLS_ERR_NOMEM, "EAB");
		goto out;
	}
	if (wc_HmacInit(&h, NULL, INVALID_DEVID) != 0) {
		r = mtls_error_set(err, MTLS_ERR_CRYPTO, "HMAC");
		goto out;
	}
	if (wc_HmacSetKey(&h, WC_SHA256, mac_key, (word32)mac_len) != 0 ||
	    wc_HmacUpdate(&h, (const byte *)input, (word32)strlen(input)) != 0 ||
	    wc_HmacFinal(&h, mac) != 0 ||
	    b64url_encode(mac, sizeof(mac), sig, sizeof(sig)) < 0)
		r = mtls_error_set(err, MTLS_ERR_CRYPTO, "EAB HMAC");
	wc_HmacFree(&h);
	explicit_bzero(&h, sizeof(h)); /* holds the MAC key's pads */
	if (r == MTLS_OK)
		r = flatten(prot, pay, sig, out, err);
out:
	explicit_bzero(mac, sizeof(mac));
	free(prot);
	free(pay);
	free(input);
	return r;
}
