/* agent/tls/sig_plan.c: from what the token can sign with to the TLS
 * versions and signature schemes an identity's contexts allow, and the
 * refusals at load. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "sig_plan.h"

#define CAN(m) (1u << (m))
#define ALL_RSA (CAN(P11_SIGN_RSA_PKCS) | CAN(P11_SIGN_RSA_PSS))

static void test_rsa(void **state)
{
	struct tls_sig_plan p;
	char buf[256];

	(void)state;
	tls_sig_plan_make(P11_KEY_RSA, 2048, ALL_RSA, &p);
	assert_true(p.usable);
	assert_int_equal(p.min_tls, 12);
	assert_int_equal(p.max_tls, 13);
	assert_string_equal(p.missing, "");
	assert_string_equal(tls_schemes_text(p.schemes13, buf, sizeof(buf)),
			    "rsa_pss_rsae_sha256,rsa_pss_rsae_sha384,"
			    "rsa_pss_rsae_sha512");
	assert_string_equal(tls_schemes_text(p.schemes12, buf, sizeof(buf)),
			    "rsa_pkcs1_sha256,rsa_pkcs1_sha384,rsa_pkcs1_sha512");

	/* A card without PSS: TLS 1.2, PKCS#1 v1.5 (RFC 8446 4.2.3). */
	tls_sig_plan_make(P11_KEY_RSA, 2048, CAN(P11_SIGN_RSA_PKCS), &p);
	assert_true(p.usable);
	assert_int_equal(p.min_tls, 12);
	assert_int_equal(p.max_tls, 12);
	assert_int_equal(p.schemes13, 0);
	assert_string_equal(p.missing, "CKM_RSA_PKCS_PSS");
	assert_non_null(strstr(p.why, "RFC 8446 4.2.3"));
	assert_string_equal(tls_schemes_text(p.schemes13, buf, sizeof(buf)),
			    "none");

	/* PSS only: TLS 1.3 (wolfSSL signs RSA in TLS 1.2 with PKCS#1). */
	tls_sig_plan_make(P11_KEY_RSA, 3072, CAN(P11_SIGN_RSA_PSS), &p);
	assert_true(p.usable);
	assert_int_equal(p.min_tls, 13);
	assert_int_equal(p.max_tls, 13);
	assert_int_equal(p.schemes12, 0);
	assert_string_equal(p.missing, "CKM_RSA_PKCS");

	/* ECDSA does not help an RSA key. */
	tls_sig_plan_make(P11_KEY_RSA, 2048, CAN(P11_SIGN_ECDSA), &p);
	assert_false(p.usable);
	assert_int_equal(p.schemes12 | p.schemes13, 0);
}

static void test_ec(void **state)
{
	struct tls_sig_plan p;

	(void)state;
	tls_sig_plan_make(P11_KEY_EC, 256, CAN(P11_SIGN_ECDSA), &p);
	assert_true(p.usable);
	assert_int_equal(p.min_tls, 12);
	assert_int_equal(p.max_tls, 13);
	assert_int_equal(p.schemes13, TLS_ECDSA_SECP256R1_SHA256);
	assert_int_equal(p.schemes12, TLS_ECDSA_SECP256R1_SHA256);
	tls_sig_plan_make(P11_KEY_EC, 384, CAN(P11_SIGN_ECDSA), &p);
	assert_int_equal(p.schemes13, TLS_ECDSA_SECP384R1_SHA384);
	tls_sig_plan_make(P11_KEY_EC, 521, CAN(P11_SIGN_ECDSA), &p);
	assert_int_equal(p.schemes13, TLS_ECDSA_SECP521R1_SHA512);
	tls_sig_plan_make(P11_KEY_EC, 256, ALL_RSA, &p);
	assert_false(p.usable);
	assert_string_equal(p.missing, "CKM_ECDSA");
}

static void test_check(void **state)
{
	struct tls_sig_plan p;
	struct mtls_error err = { 0 };

	(void)state;
	tls_sig_plan_make(P11_KEY_RSA, 2048, CAN(P11_SIGN_RSA_PKCS), &p);
	assert_int_equal(tls_sig_plan_check(&p, 12, "t", "w", &err), MTLS_OK);
	assert_int_equal(tls_sig_plan_check(&p, 13, "a.conf:3: [tunnel x]",
					    "identity 'i' on token 'soft'",
					    &err), MTLS_ERR_MECHANISM);
	assert_string_equal(err.detail,
			    "a.conf:3: [tunnel x]: min_tls = 1.3 needs RSA-PSS "
			    "for an RSA key (RFC 8446 4.2.3), but identity 'i' "
			    "on token 'soft': its token has no usable "
			    "CKM_RSA_PKCS_PSS: set min_tls = 1.2, or use an EC "
			    "key or a token with CKM_RSA_PKCS_PSS");
	/* PSS only: a minimum of 1.2 is fine (the context starts at 1.3). */
	tls_sig_plan_make(P11_KEY_RSA, 2048, CAN(P11_SIGN_RSA_PSS), &p);
	assert_int_equal(tls_sig_plan_check(&p, 12, "t", "w", NULL), MTLS_OK);
	assert_int_equal(tls_sig_plan_check(&p, 13, "t", "w", NULL), MTLS_OK);
	/* Unusable: refused at any version, saying why. */
	tls_sig_plan_make(P11_KEY_EC, 256, 0, &p);
	assert_int_equal(tls_sig_plan_check(&p, 12, "[identity e]", "x", &err),
			 MTLS_ERR_MECHANISM);
	assert_non_null(strstr(err.detail, "[identity e]: x: the token cannot "
				"sign with this EC key (no usable CKM_ECDSA)"));
}

static void test_names(void **state)
{
	char small[8];

	(void)state;
	assert_string_equal(tls_scheme_name(TLS_RSA_PSS_RSAE_SHA384),
			    "rsa_pss_rsae_sha384");
	assert_null(tls_scheme_name(0));
	assert_null(tls_scheme_name(TLS_RSA_PKCS1_SHA256 | TLS_RSA_PKCS1_SHA384));
	/* Cut short, still terminated. */
	tls_schemes_text(TLS_RSA_PKCS1_SHA256, small, sizeof(small));
	assert_int_equal(strlen(small), sizeof(small) - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rsa),
		cmocka_unit_test(test_ec),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
