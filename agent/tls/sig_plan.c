/* From what the token can sign to what TLS may ask of it.
 *
 * TLS 1.3 signs with an RSA key only by RSA-PSS (RFC 8446 4.2.3: the
 * rsa_pkcs1 schemes are for certificates, never for CertificateVerify).
 * In TLS 1.2 wolfSSL 5.5.4's client signs RSA with PKCS#1 v1.5 only
 * (measured against openssl s_server: rsa_pkcs1_sha256 even when the
 * server asks for RSA-PSS alone, and whatever wolfSSL_set1_sigalgs_list
 * says). So the version decides the mechanism: CKM_RSA_PKCS_PSS for TLS
 * 1.3, CKM_RSA_PKCS for TLS 1.2, CKM_ECDSA for both with an EC key. */
#include "sig_plan.h"

#include <stdio.h>
#include <string.h>

static const struct {
	unsigned bit;
	const char *name;
} scheme_names[] = {
	{ TLS_ECDSA_SECP256R1_SHA256, "ecdsa_secp256r1_sha256" },
	{ TLS_ECDSA_SECP384R1_SHA384, "ecdsa_secp384r1_sha384" },
	{ TLS_ECDSA_SECP521R1_SHA512, "ecdsa_secp521r1_sha512" },
	{ TLS_RSA_PKCS1_SHA256, "rsa_pkcs1_sha256" },
	{ TLS_RSA_PKCS1_SHA384, "rsa_pkcs1_sha384" },
	{ TLS_RSA_PKCS1_SHA512, "rsa_pkcs1_sha512" },
	{ TLS_RSA_PSS_RSAE_SHA256, "rsa_pss_rsae_sha256" },
	{ TLS_RSA_PSS_RSAE_SHA384, "rsa_pss_rsae_sha384" },
	{ TLS_RSA_PSS_RSAE_SHA512, "rsa_pss_rsae_sha512" },
};

const char *tls_scheme_name(unsigned scheme)
{
	for (size_t i = 0; i < sizeof(scheme_names) / sizeof(scheme_names[0]);
	     i++)
		if (scheme_names[i].bit == scheme)
			return scheme_names[i].name;
	return NULL;
}

const char *tls_schemes_text(unsigned schemes, char *buf, size_t len)
{
	size_t used = 0;

	if (len == 0)
		return buf;
	snprintf(buf, len, "none");
	for (size_t i = 0; i < sizeof(scheme_names) / sizeof(scheme_names[0]);
	     i++) {
		if (!(schemes & scheme_names[i].bit))
			continue;
		used += (size_t)snprintf(buf + used,
					 used < len ? len - used : 0, "%s%s",
					 used ? "," : "", scheme_names[i].name);
	}
	return buf;
}

#define RSA_PKCS1_ALL                                                        \
	(TLS_RSA_PKCS1_SHA256 | TLS_RSA_PKCS1_SHA384 | TLS_RSA_PKCS1_SHA512)
#define RSA_PSS_ALL                                                          \
	(TLS_RSA_PSS_RSAE_SHA256 | TLS_RSA_PSS_RSAE_SHA384 |                 \
	 TLS_RSA_PSS_RSAE_SHA512)

void tls_sig_plan_make(enum p11_key_type type, unsigned bits, unsigned can,
		       struct tls_sig_plan *plan)
{
	int pkcs1 = (can >> P11_SIGN_RSA_PKCS) & 1;
	int pss = (can >> P11_SIGN_RSA_PSS) & 1;

	memset(plan, 0, sizeof(*plan));
	plan->missing = "";
	if (type == P11_KEY_EC) {
		unsigned s = bits == 384 ? TLS_ECDSA_SECP384R1_SHA384 :
			     bits == 521 ? TLS_ECDSA_SECP521R1_SHA512 :
					   TLS_ECDSA_SECP256R1_SHA256;

		if (!((can >> P11_SIGN_ECDSA) & 1)) {
			plan->missing = "CKM_ECDSA";
			snprintf(plan->why, sizeof(plan->why),
				 "the token cannot sign with this EC key "
				 "(no usable CKM_ECDSA)");
			return;
		}
		plan->usable = 1;
		plan->min_tls = 12;
		plan->max_tls = 13;
		plan->schemes12 = plan->schemes13 = s;
		return;
	}
	if (!pkcs1 && !pss) {
		plan->missing = "CKM_RSA_PKCS and CKM_RSA_PKCS_PSS";
		snprintf(plan->why, sizeof(plan->why),
			 "the token cannot sign with this RSA key (neither "
			 "CKM_RSA_PKCS nor CKM_RSA_PKCS_PSS is usable)");
		return;
	}
	plan->usable = 1;
	plan->min_tls = pkcs1 ? 12 : 13;
	plan->max_tls = pss ? 13 : 12;
	plan->schemes12 = pkcs1 ? RSA_PKCS1_ALL : 0;
	plan->schemes13 = pss ? RSA_PSS_ALL : 0;
	if (!pss) {
		plan->missing = "CKM_RSA_PKCS_PSS";
		snprintf(plan->why, sizeof(plan->why),
			 "no CKM_RSA_PKCS_PSS: TLS 1.3 signs with RSA keys "
			 "only by RSA-PSS (RFC 8446 4.2.3), so TLS 1.2 with "
			 "PKCS#1 v1.5 only");
	} else if (!pkcs1) {
		plan->missing = "CKM_RSA_PKCS";
		snprintf(plan->why, sizeof(plan->why),
			 "no CKM_RSA_PKCS: TLS 1.2 signs with RSA keys by "
			 "PKCS#1 v1.5 here, so TLS 1.3 with RSA-PSS only");
	}
}

mtls_err_t tls_sig_plan_check(const struct tls_sig_plan *plan, int min_tls,
			      const char *what, const char *who,
			      struct mtls_error *err)
{
	if (!plan->usable)
		return mtls_error_set(err, MTLS_ERR_MECHANISM,
				      "%s: %s: %s; use a key the token can "
				      "sign with (mtlsctl key-info shows its "
				      "mechanisms)", what, who, plan->why);
	if (min_tls > plan->max_tls)
		return mtls_error_set(err, MTLS_ERR_MECHANISM,
				      "%s: min_tls = 1.3 needs RSA-PSS for an "
				      "RSA key (RFC 8446 4.2.3), but %s: its "
				      "token has no usable %s: set min_tls = "
				      "1.2, or use an EC key or a token with "
				      "%s", what, who, plan->missing,
				      plan->missing);
	return MTLS_OK;
}
