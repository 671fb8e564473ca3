/* PKCS#10 certificate requests whose signature is made on the token: wolfSSL
 * encodes the request body from the token key's public half; the token
 * signs its hash; the signed request is assembled here (RFC 2986). */
#ifndef MTLS_CSR_H
#define MTLS_CSR_H

#include <stddef.h>
#include <stdint.h>

#include "mtls_err.h"
#include "p11.h"

#define CSR_MAX_SANS 16

struct csr_request {
	/* RFC 4514, kept in its order: "CN=dev\\, one,OU=Ops,DC=corp" */
	const char *subject;
	/* Or the subject of this certificate (DER), byte for byte: a renewal
	 * asks for the name in service, whatever its order or types. */
	const uint8_t *subject_of_cert;
	size_t subject_of_cert_len;
	const char *sans[CSR_MAX_SANS]; /* "DNS:name", "URI:spiffe://..", "email:a@b" */
	unsigned n_sans;
};

/* Writes the PEM request (malloc'd, NUL-terminated) to *pem. */
mtls_err_t csr_make(struct p11_key *key, const struct csr_request *req,
		    char **pem, struct mtls_error *err);

#endif
