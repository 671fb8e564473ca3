/* ACME client (RFC 8555): account (its key on the token; External Account
 * Binding once, to create it), orders with http-01 (served here) or
 * dns-01 (a hook), finalize with the request signed by the new key,
 * certificate download with the chain chosen by issuer_ca, revocation.
 * Every request is a JWS made on the token; every exchange a fresh HTTPS
 * connection with the server checked against acme_ca. */
#ifndef MTLS_ACME_H
#define MTLS_ACME_H

#include "csr.h"
#include "enroll.h"
#include "identity.h"
#include "renew.h"

/* RFC 5280 5.3.1 reason codes the CLI accepts by name. */
int acme_reason_code(const char *name);

/* names: the identifiers of the request (its DNS SANs). */
mtls_err_t enroll_acme(const struct renew_env *e, const char *csr_pem,
		       const struct csr_request *names,
		       struct enroll_result *res, struct mtls_error *err);

/* revokeCert for id's leaf, signed by its own key on the token. */
mtls_err_t acme_revoke(const struct renew_env *e, struct identity *id,
		       int reason, struct mtls_error *err);

/* The account file: STATE_DIR/NAME.acme-account ("directory URL\n
 * account URL\n"), 0600. */
#define ACME_ACCOUNT_SUFFIX "acme-account"

/* The account URL on record for identity name (for that directory, or
 * any with NULL) into url: 0, or -1 if none. */
int acme_account_read(const struct config *cfg, const char *name,
		      const char *directory, char *url, size_t cap);

#endif
