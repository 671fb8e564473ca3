/* Enrollers: take a PKCS#10 request (PEM) and return the issued chain
 * (PEM, leaf first or in any order), or ask to be called again later.
 *   EST (RFC 7030): /cacerts, /simpleenroll with HTTP Basic over
 *     server-authenticated TLS, or over mutual TLS with a bootstrap
 *     certificate already on the token (est_bootstrap_key/_cert, 3.3.2),
 *     or both (first enrollment), /simplereenroll over mutual TLS with
 *     the current identity; certs-only PKCS#7 answers; 202 + Retry-After.
 *   exec: /bin/sh -c COMMAND, in its own process group with only PATH in
 *     its environment, the request on stdin and the chain on stdout;
 *     exec_timeout holds until it exits, then its group is killed. */
#ifndef MTLS_ENROLL_H
#define MTLS_ENROLL_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "csr.h"
#include "https.h"
#include "identity.h"
#include "mtls_err.h"
#include "renew.h"

#define ENROLL_ANSWER_MAX (256 * 1024)

struct enroll_result {
	char *chain_pem;  /* malloc'd */
	int retry_after;  /* > 0: accepted, not issued yet; seconds */
};

/* e->current: the identity in service (for EST re-enrollment over mTLS),
 * or NULL for a first enrollment; e->token holds the identity's keys. */
/* names: what the request asks for (ACME orders these identifiers). */
mtls_err_t enroll_submit(const struct renew_env *e, const char *csr_pem,
			 const struct csr_request *names,
			 struct enroll_result *res, struct mtls_error *err);

/* EST /cacerts: the CA certificates as PEM (malloc'd). */
mtls_err_t est_cacerts(const struct cfg_renew *r, char **pem,
		       struct mtls_error *err);

mtls_err_t enroll_exec(const struct cfg_renew *r, const char *csr_pem,
		       struct enroll_result *res, struct mtls_error *err);
mtls_err_t enroll_est(const struct cfg_renew *r, struct p11_token *token,
		      struct identity *current,
		      const char *csr_pem, struct enroll_result *res,
		      struct mtls_error *err);

/* Parsers, exposed for tests and fuzzing. */
/* Base64 (line breaks allowed) certs-only PKCS#7 -> PEM chain. */
mtls_err_t est_certs_to_pem(const char *b64, size_t len, char **pem,
			    struct mtls_error *err);
/* The wait after a 202 that asked for `asked` seconds (0: said nothing):
 * 60 s if it said nothing, never more than the identity's retry_max. */
int est_retry_after(const struct cfg_renew *r, int asked);

#endif
