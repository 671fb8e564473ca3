/* An identity: a private key on a token, its certificate chain (from the
 * token or PEM files), and the public key of its certificate (for checking
 * that the two belong together and for wolfSSL's post-signature check). */
#ifndef MTLS_IDENTITY_H
#define MTLS_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "mtls_err.h"
#include "p11.h"
#include "sig_plan.h"

#define IDENTITY_CHAIN_MAX 8

struct identity {
	char name[64];
	struct p11_token *token; /* not owned */
	struct p11_key *key;
	uint8_t *chain_der[IDENTITY_CHAIN_MAX]; /* [0] is the leaf */
	size_t chain_len[IDENTITY_CHAIN_MAX];
	unsigned n_chain;
	uint8_t *spki; /* SubjectPublicKeyInfo of the leaf, DER */
	size_t spki_len;
	char subject[256];
	char issuer[256];
	long not_before, not_after; /* seconds since the epoch */
	/* What the token can sign with this key, asked at load, and the TLS
	 * versions and schemes that leaves (tls_ctx_new keeps to them). */
	struct p11_sign_caps caps;
	struct tls_sig_plan plan;
};

/* cert: a pkcs11: URI or a PEM file; chain: optional PEM file. */
mtls_err_t identity_load(const char *name, struct p11_token *token,
			 const char *key_uri, const char *cert,
			 const char *chain, struct identity **out,
			 struct mtls_error *err);
void identity_free(struct identity *id);

/* "identity 'NAME' on token pkcs11:token=...", for messages. */
#define IDENTITY_WHO_MAX 256
const char *identity_who(const struct identity *id, char *buf, size_t len);

/* Reads every certificate of a PEM file as DER (malloc'd), at most max. */
mtls_err_t pem_read_certs(const char *path, uint8_t **der, size_t *len,
			  unsigned max, unsigned *n, struct mtls_error *err);

#endif
