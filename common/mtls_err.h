/* One error type for the whole project: a code with a name and a message,
 * plus a detail string (CK_RV name, URI, file:line, peer) filled where the
 * failure happened and logged once, at the edge. */
#ifndef MTLS_ERR_H
#define MTLS_ERR_H

#include <stddef.h>

#define MTLS_ERRORS(X)                                                        \
	X(MTLS_OK, "ok", "success")                                           \
	X(MTLS_ERR_NOMEM, "nomem", "out of memory")                           \
	X(MTLS_ERR_ARG, "invalid_argument", "invalid argument")              \
	X(MTLS_ERR_IO, "io", "input/output error")                            \
	X(MTLS_ERR_CONFIG, "config", "invalid configuration")                 \
	X(MTLS_ERR_PERMISSION, "permission", "unsafe file permissions")      \
	X(MTLS_ERR_URI, "bad_uri", "invalid PKCS#11 URI")                     \
	X(MTLS_ERR_MODULE, "module", "PKCS#11 module could not be loaded")   \
	X(MTLS_ERR_TOKEN_ABSENT, "token_absent", "token absent")              \
	X(MTLS_ERR_PIN_MISSING, "pin_missing", "no PIN available")            \
	X(MTLS_ERR_PIN_INCORRECT, "pin_incorrect", "PIN incorrect")           \
	X(MTLS_ERR_PIN_LOCKED, "pin_locked", "PIN locked")                    \
	X(MTLS_ERR_KEY_NOT_FOUND, "key_not_found", "key not found on token") \
	X(MTLS_ERR_CERT_NOT_FOUND, "cert_not_found", "certificate not found") \
	X(MTLS_ERR_AMBIGUOUS, "ambiguous", "URI matches more than one object") \
	X(MTLS_ERR_MECHANISM, "mechanism", "mechanism not supported")         \
	X(MTLS_ERR_TOKEN, "token_error", "token operation failed")            \
	X(MTLS_ERR_CERT, "bad_certificate", "unusable certificate")           \
	X(MTLS_ERR_CONNECT, "connect_failed", "connection to server failed")  \
	X(MTLS_ERR_TIMEOUT, "timeout", "timed out")                           \
	X(MTLS_ERR_LIMIT, "limit", "limit reached")                           \
	X(MTLS_ERR_TLS, "tls_error", "TLS handshake failed")                  \
	X(MTLS_ERR_UNKNOWN_CA, "unknown_ca", "server certificate from an unknown CA") \
	X(MTLS_ERR_NAME_MISMATCH, "name_mismatch", "server name does not match its certificate") \
	X(MTLS_ERR_EXPIRED, "expired", "server certificate expired or not yet valid") \
	X(MTLS_ERR_CERT_REFUSED, "client_cert_refused", "server refused our certificate") \
	X(MTLS_ERR_CRYPTO, "crypto", "cryptographic operation failed")       \
	X(MTLS_ERR_POLICY_DENIED, "policy_denied", "denied by policy")        \
	X(MTLS_ERR_PIN_MISMATCH, "pin_mismatch", "server key matches no configured pin") \
	X(MTLS_ERR_ATTRIBUTE_MISMATCH, "attribute_mismatch", "server certificate attributes differ from the profile") \
	X(MTLS_ERR_REVOKED, "revoked", "server certificate revoked")          \
	X(MTLS_ERR_REVOCATION_UNKNOWN, "revocation_unknown", "server certificate revocation status unknown") \
	X(MTLS_ERR_BAD_REQUEST, "bad_request", "malformed request")           \
	X(MTLS_ERR_UNREACHABLE, "host_unreachable", "host unreachable")       \
	X(MTLS_ERR_REFUSED, "connection_refused", "connection refused")      \
	X(MTLS_ERR_IDENTITY_REVOKED, "identity_revoked", "our certificate was revoked")

typedef enum {
#define MTLS_ERR_ENUM(code, name, msg) code,
	MTLS_ERRORS(MTLS_ERR_ENUM)
#undef MTLS_ERR_ENUM
	MTLS_ERR__COUNT
} mtls_err_t;

#define MTLS_ERR_DETAIL_MAX 384

struct mtls_error {
	mtls_err_t code;
	char detail[MTLS_ERR_DETAIL_MAX];
};

/* Short stable identifier, usable as a log field or metric label. */
const char *mtls_err_name(mtls_err_t code);
/* One-line human message. */
const char *mtls_err_msg(mtls_err_t code);

/* Records code and a printf-style detail in err (which may be NULL) and
 * returns code, so that `return mtls_error_set(err, X, ...)` reads as one step. */
mtls_err_t mtls_error_set(struct mtls_error *err, mtls_err_t code,
			  const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Puts where the error comes from ("file:line: key") before its detail;
 * the code stays. Returns it. */
mtls_err_t mtls_error_where(struct mtls_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void mtls_error_clear(struct mtls_error *err);

/* "message: detail" into buf; returns buf. */
const char *mtls_error_str(const struct mtls_error *err, char *buf, size_t len);

#endif
