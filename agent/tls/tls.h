/* wolfSSL client side: one context per tunnel (identity + trust anchors +
 * minimum version), private-key operations on the token through wolfSSL's
 * PK callbacks, and handshake failures turned into the project's reasons. */
#ifndef MTLS_TLS_H
#define MTLS_TLS_H

#include "identity.h"
#include "mtls_err.h"
#include "policy.h"
#include "tls_io.h"

typedef struct WOLFSSL_CTX WOLFSSL_CTX;
typedef struct WOLFSSL WOLFSSL;

/* Per-connection state the callbacks see. */
struct tls_conn {
	struct identity *id;
	const struct policy_profile *profile; /* may be NULL */
	struct mtls_error sign_err;   /* set when the token refused to sign */
	struct mtls_error verify_err; /* set when the profile refused the server */
	int revocation_skipped;       /* fail-open let an unknown status pass */
	/* Set by tls_new: the server name checked (without a trailing dot),
	 * and 4 or 6 when it is an address literal. */
	char server_name[256];
	int server_ip;
	unsigned long sign_count;
	double sign_seconds;
	struct tls_io io; /* how tls_new's connection reads its socket */
};

mtls_err_t tls_global_init(struct mtls_error *err);

/* Called with the duration of every token signature (the daemon's
 * counters; NULL: none). */
typedef void (*tls_sign_observer)(double seconds);
void tls_set_sign_observer(tls_sign_observer fn);
void tls_global_cleanup(void);

/* id: the client identity, or NULL for a server-authenticated channel
 * (enrollment before there is an identity: the same server checks, no
 * client certificate). ca: PEM file or folder of trust anchors. min_tls:
 * 12 or 13. A profile, when given, replaces both and adds revocation (CRLs, OCSP stapling),
 * pins, expected names and organisation. Server verification is always
 * on; there is no way to turn it off. */
mtls_err_t tls_ctx_new(struct identity *id, const char *ca, int min_tls,
		       const struct policy_profile *profile, WOLFSSL_CTX **out,
		       struct mtls_error *err);
void tls_ctx_free(WOLFSSL_CTX *ctx);

/* Every context tls_ctx_new built has its own serial, unique in the
 * process and never reused (a reload, a CRL change or a new identity
 * makes a new context, hence a new serial): what a session may be
 * resumed under. 0 for NULL or a context tls_ctx_new did not build. */
unsigned long tls_ctx_serial(WOLFSSL_CTX *ctx);
/* Gives ctx the next serial and makes it safe to share between threads
 * (wolfSSL 5.5.4's unlocked free of ctx->srp: see tls.c); call it on a
 * fresh context no other thread holds yet. tls_ctx_new does it. Public
 * for tests. */
mtls_err_t tls_ctx_tag(WOLFSSL_CTX *ctx, struct mtls_error *err);

/* A client object on fd for the server name (a host name, or an IPv4 or
 * IPv6 address literal). A host name goes out as SNI and must match a
 * dNSName SAN of the server's certificate (RFC 6125; the CN only without
 * SANs); an address is not sent and must match an iPAddress SAN. The
 * profile's names, when it has some, replace the name as what must match.
 * alpn: comma-separated or NULL. */
mtls_err_t tls_new(WOLFSSL_CTX *ctx, struct tls_conn *tc, int fd,
		   const char *name, const char *alpn, WOLFSSL **out,
		   struct mtls_error *err);
/* Frees what tls_new made (ssl, and tc's read buffer). */
void tls_free(WOLFSSL *ssl, struct tls_conn *tc);

/* Maps a failed wolfSSL_connect/read (ret, with ssl's error state) to a
 * reason: unknown CA, name mismatch, expired, our certificate refused,
 * token errors, ... */
mtls_err_t tls_error(WOLFSSL *ssl, struct tls_conn *tc, int ret,
		     struct mtls_error *err);

const char *tls_version_name(WOLFSSL *ssl);

#endif
