/* The http-01 responder (RFC 8555 8.3): while an order is being
 * authorized, answers GET /.well-known/acme-challenge/TOKEN with the key
 * authorization, on the address the CA's validation reaches. Nothing
 * else: other paths 404, each request bounded in size and time, clients
 * served side by side so that a slow one delays nobody. */
#ifndef MTLS_ACME_HTTP01_H
#define MTLS_ACME_HTTP01_H

#include <stdint.h>

#include "mtls_err.h"

#define ACME_HTTP01_TOKENS 16

struct acme_http01;

mtls_err_t acme_http01_start(const char *host, uint16_t port,
			     struct acme_http01 **out, struct mtls_error *err);
/* token: base64url (checked by the parser); key_authz: token.thumbprint */
mtls_err_t acme_http01_add(struct acme_http01 *h, const char *token,
			   const char *key_authz, struct mtls_error *err);
/* Stops and frees; NULL is fine. */
void acme_http01_stop(struct acme_http01 *h);

#endif
