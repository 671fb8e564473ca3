/* Rotation on the token: a new key pair generated on the token, a request
 * signed by it, the answer checked (same public key, chain to issuer_ca,
 * EKU clientAuth, sane validity), the certificate stored beside the key,
 * then the switch; the generation before the previous one is destroyed.
 * Each step is recorded (renew_state) before it acts. */
#ifndef MTLS_RENEW_H
#define MTLS_RENEW_H

#include "config.h"
#include "identity.h"
#include "renew_state.h"

struct renew_env {
	const struct config *cfg;
	unsigned index;            /* of the identity in cfg */
	struct p11_token *token;
	struct identity *current;  /* in service; NULL for a first enrollment */
};

/* Test hook: MTLS_AGENT_TEST_CRASH_AT=STEP kills the process when it
 * passes that step (as a power cut would). */
void renew_crash_point(const char *step);

/* Runs or resumes one renewal. On MTLS_OK, *switched says a new generation
 * is in service (reload to use it) and *retry_after > 0 says the CA
 * accepted the request but has not issued yet. */
mtls_err_t renew_run(struct renew_env *e, struct renew_state *st,
		     int *switched, int *retry_after, struct mtls_error *err);

/* At start-up: abandons a generation whose key was being made, finishes
 * one whose certificate was received, retires what is due. Never touches
 * the key in service. */
mtls_err_t renew_recover(struct renew_env *e, struct renew_state *st,
			 int *switched, struct mtls_error *err);

/* runtime_recover_fn for runtime_new_recover: renew_recover on the
 * identity just loaded. */
mtls_err_t renew_recover_at_load(const struct config *cfg, unsigned index,
				 struct p11_token *token,
				 struct identity *current,
				 struct renew_state *st, int *switched,
				 struct mtls_error *err);

#endif
