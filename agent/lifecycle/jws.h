/* JSON Web Signatures for ACME (RFC 7515, RFC 8555 6.2) made on the token:
 * the account key (and, for revocation, a certificate's own key) never
 * leaves it. ES256 / ES384 for EC P-256 / P-384 (the token's raw r||s, or
 * a DER signature turned into it), RS256 for RSA (CKM_RSA_PKCS over a
 * DigestInfo). The JWK of the key (RFC 7517), its thumbprint (RFC 7638),
 * and the External Account Binding's HMAC signature (RFC 8555 7.3.4). */
#ifndef MTLS_JWS_H
#define MTLS_JWS_H

#include <stddef.h>
#include <stdint.h>

#include "mtls_err.h"
#include "p11.h"

#define JWS_JWK_MAX 1500
#define JWS_THUMB_MAX 48

struct jws_key {
	struct p11_key *key;       /* not owned */
	enum p11_key_type type;
	unsigned coord;            /* EC: bytes per coordinate */
	char alg[8];               /* "ES256", "ES384", "RS256" */
	char jwk[JWS_JWK_MAX];     /* members in RFC 7638's order */
	char thumbprint[JWS_THUMB_MAX]; /* base64url SHA-256 of jwk */
};

/* base64url without padding (RFC 7515 2): the length written (a NUL
 * follows), or -1 if out is too small. */
int b64url_encode(const uint8_t *in, size_t len, char *out, size_t cap);
/* Decodes base64url (padding tolerated); -1 if not base64url or too big. */
int b64url_decode(const char *in, size_t len, uint8_t *out, size_t *out_len);

mtls_err_t jws_key_init(struct jws_key *jk, struct p11_key *key,
			struct mtls_error *err);

/* Flattened JSON serialization: protected {alg, nonce, url, and kid if
 * given else jwk}, payload (JSON text; "" for POST-as-GET). *out is
 * malloc'd. */
mtls_err_t jws_sign(struct jws_key *jk, const char *kid, const char *nonce,
		    const char *url, const char *payload, char **out,
		    struct mtls_error *err);

/* The externalAccountBinding member's value: a JWS over the account key's
 * JWK with HS256, protected {alg, kid: eab_kid, url: newAccount URL}. */
mtls_err_t jws_eab(const char *eab_kid, const uint8_t *mac_key,
		   size_t mac_len, const char *url, const char *jwk,
		   char **out, struct mtls_error *err);

#endif
