/* What a token key can sign in TLS, from what its token can do: the TLS
 * versions and signature schemes (RFC 8446 4.2.3) an identity's contexts
 * allow. Pure logic: no token, no wolfSSL. */
#ifndef MTLS_SIG_PLAN_H
#define MTLS_SIG_PLAN_H

#include <stddef.h>

#include "mtls_err.h"
#include "p11.h"

/* TLS SignatureScheme values a token key may sign with, as bits. */
enum tls_scheme {
	TLS_ECDSA_SECP256R1_SHA256 = 1u << 0,
	TLS_ECDSA_SECP384R1_SHA384 = 1u << 1,
	TLS_ECDSA_SECP521R1_SHA512 = 1u << 2,
	TLS_RSA_PKCS1_SHA256 = 1u << 3,
	TLS_RSA_PKCS1_SHA384 = 1u << 4,
	TLS_RSA_PKCS1_SHA512 = 1u << 5,
	TLS_RSA_PSS_RSAE_SHA256 = 1u << 6,
	TLS_RSA_PSS_RSAE_SHA384 = 1u << 7,
	TLS_RSA_PSS_RSAE_SHA512 = 1u << 8,
};

struct tls_sig_plan {
	int usable;           /* the key can sign in some TLS version */
	int min_tls, max_tls; /* 12 or 13, when usable */
	unsigned schemes12;   /* enum tls_scheme bits, per version */
	unsigned schemes13;
	/* The mechanism whose absence cost a version or the key ("" when
	 * none did), and why, in a sentence. */
	const char *missing;
	char why[192];
};

/* type and bits of the key; can: p11_sign_caps.can (1u << P11_SIGN_x). */
void tls_sig_plan_make(enum p11_key_type type, unsigned bits, unsigned can,
		       struct tls_sig_plan *plan);

/* Whether contexts with this minimum version (12, 13) can use the key.
 * what: the tunnel or rule asking ("agent.conf:12: [tunnel api]"); who:
 * the identity and its token ("identity 'laptop' on token 'corp'"). The
 * error says what is missing and what to do. */
mtls_err_t tls_sig_plan_check(const struct tls_sig_plan *plan, int min_tls,
			      const char *what, const char *who,
			      struct mtls_error *err);

/* "rsa_pss_rsae_sha256" for one bit; NULL for none. */
const char *tls_scheme_name(unsigned scheme);
/* The schemes as "a,b,c" ("none" for 0); returns buf. */
const char *tls_schemes_text(unsigned schemes, char *buf, size_t len);

#endif
