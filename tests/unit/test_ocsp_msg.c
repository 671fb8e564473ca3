/* OCSP messages and the certificate reader, against what openssl makes
 * (tests/unit/rev_fixtures.sh): our request is byte for byte openssl's
 * and openssl answers it; responses signed by the issuer and by its
 * delegate are taken, those signed by a sibling without id-kp-OCSPSigning,
 * by another CA's responder, by a look-alike CA, by a self-signed or an
 * expired responder are refused; revoked, unknown, SHA-256 CertIDs,
 * nonces; every truncation and malformed length refused. Also der.c's
 * lengths and times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/wc_port.h>

#include "der.h"
#include "ocsp_msg.h"
#include "rev_testlib.h"

struct pki {
	struct rev_cert ca1, ca2, evil, leaf, revoked, unknown, ocsp, sibling,
		ocsp_old, self, leaf2, ocsp2;
	struct ocsp_certid id_leaf, id_revoked, id_unknown;
};

static struct pki *pki;

static int setup(void **state)
{
	(void)state;
	pki = calloc(1, sizeof(*pki));
	if (pki == NULL)
		return -1;
	cert_fixture("ca1.der", &pki->ca1);
	cert_fixture("ca2.der", &pki->ca2);
	cert_fixture("evil.der", &pki->evil);
	cert_fixture("leaf.der", &pki->leaf);
	cert_fixture("revoked.der", &pki->revoked);
	cert_fixture("unknown.der", &pki->unknown);
	cert_fixture("ocsp.der", &pki->ocsp);
	cert_fixture("sibling.der", &pki->sibling);
	cert_fixture("ocsp_old.der", &pki->ocsp_old);
	cert_fixture("self.der", &pki->self);
	cert_fixture("leaf2.der", &pki->leaf2);
	cert_fixture("ocsp2.der", &pki->ocsp2);
	if (ocsp_certid_make(&pki->leaf, &pki->ca1, &pki->id_leaf) != 0 ||
	    ocsp_certid_make(&pki->revoked, &pki->ca1, &pki->id_revoked) != 0 ||
	    ocsp_certid_make(&pki->unknown, &pki->ca1, &pki->id_unknown) != 0)
		return -1;
	return 0;
}

/* ---- der.c ---- */

static int len_ok(const uint8_t *p, size_t n)
{
	struct der d;
	struct der_tlv t;

	der_init(&d, p, n);
	return der_next(&d, &t) == 0 && der_empty(&d) ? (int)t.len : -1;
}

static void der_lengths(void **state)
{
	uint8_t b[300] = { 0x04 };

	(void)state;
	b[1] = 0x00;
	assert_int_equal(len_ok(b, 2), 0);
	b[1] = 0x7f;
	assert_int_equal(len_ok(b, 2 + 0x7f), 0x7f);
	assert_int_equal(len_ok(b, 2 + 0x7e), -1); /* over the input */
	b[1] = 0x81, b[2] = 0x80;
	assert_int_equal(len_ok(b, 3 + 0x80), 0x80);
	b[1] = 0x81, b[2] = 0x05; /* long form for a short length */
	assert_int_equal(len_ok(b, 3 + 5), -1);
	b[1] = 0x82, b[2] = 0x00, b[3] = 0x90; /* a leading zero octet */
	assert_int_equal(len_ok(b, 4 + 0x90), -1);
	b[1] = 0x82, b[2] = 0x01, b[3] = 0x00;
	assert_int_equal(len_ok(b, 4 + 0x100), 0x100);
	b[1] = 0x80; /* indefinite */
	assert_int_equal(len_ok(b, 4), -1);
	b[1] = 0x85, b[2] = 1; /* five length octets */
	assert_int_equal(len_ok(b, 200), -1);
	b[1] = 0x84, b[2] = 0xff, b[3] = 0xff, b[4] = 0xff, b[5] = 0xff;
	assert_int_equal(len_ok(b, 200), -1);
	b[0] = 0x1f, b[1] = 0; /* high tag number form */
	assert_int_equal(len_ok(b, 2), -1);
	assert_int_equal(len_ok(b, 1), -1);
	assert_int_equal(len_ok(b, 0), -1);
}

static int64_t tm_of(const char *s, unsigned tag)
{
	int64_t t;

	return der_time_parse(tag, (const uint8_t *)s, strlen(s), &t) == 0 ?
		       t : -1;
}

static int64_t utc(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
			 .tm_hour = h, .tm_min = mi, .tm_sec = s };

	return (int64_t)timegm(&tm);
}

static void der_times(void **state)
{
	(void)state;
	assert_int_equal(tm_of("700101000000Z", DER_UTC_TIME), 0);
	assert_int_equal(tm_of("491231235959Z", DER_UTC_TIME),
			 utc(2049, 12, 31, 23, 59, 59));
	assert_int_equal(tm_of("500101000000Z", DER_UTC_TIME),
			 utc(1950, 1, 1, 0, 0, 0));
	assert_int_equal(tm_of("20240229120000Z", DER_GEN_TIME),
			 utc(2024, 2, 29, 12, 0, 0));
	assert_int_equal(tm_of("21000301000000Z", DER_GEN_TIME),
			 utc(2100, 3, 1, 0, 0, 0));
	assert_int_equal(tm_of("99991231235959Z", DER_GEN_TIME),
			 utc(9999, 12, 31, 23, 59, 59));
	assert_int_equal(tm_of("19000101000000Z", DER_GEN_TIME),
			 utc(1900, 1, 1, 0, 0, 0));
	/* Refused: no Z, no seconds, a fraction, an offset, bad dates. */
	assert_int_equal(tm_of("491231235959", DER_UTC_TIME), -1);
	assert_int_equal(tm_of("4912312359Z", DER_UTC_TIME), -1);
	assert_int_equal(tm_of("20240229120000.5Z", DER_GEN_TIME), -1);
	assert_int_equal(tm_of("491231235959+0100", DER_UTC_TIME), -1);
	assert_int_equal(tm_of("20230229000000Z", DER_GEN_TIME), -1);
	assert_int_equal(tm_of("21000229000000Z", DER_GEN_TIME), -1);
	assert_int_equal(tm_of("20231301000000Z", DER_GEN_TIME), -1);
	assert_int_equal(tm_of("20230431000000Z", DER_GEN_TIME), -1);
	assert_int_equal(tm_of("20230101240000Z", DER_GEN_TIME), -1);
	assert_int_equal(tm_of("20230101006000Z", DER_GEN_TIME), -1);
	assert_int_equal(tm_of("20230101000060Z", DER_GEN_TIME), -1);
	assert_int_equal(tm_of("2023010100000 Z", DER_GEN_TIME), -1);
	/* A UTCTime's length under the other tag, and the reverse. */
	assert_int_equal(tm_of("491231235959Z", DER_GEN_TIME), -1);
	assert_int_equal(tm_of("20240229120000Z", DER_UTC_TIME), -1);
}

static void der_nesting(void **state)
{
	struct blob b = nested(DER_DEPTH_MAX + 4);
	struct der d[DER_DEPTH_MAX + 4], top;
	unsigned i = 0;

	(void)state;
	der_init(&top, b.p, b.len);
	d[0] = top;
	while (i + 1 < DER_DEPTH_MAX + 4 &&
	       der_enter(&d[i], DER_SEQUENCE, &d[i + 1], NULL) == 0)
		i++;
	assert_int_equal(i, DER_DEPTH_MAX);
	free(b.p);
	/* The builder's output is well formed: depth levels, then empty. */
	b = nested(5);
	der_init(&d[0], b.p, b.len);
	for (i = 0; i < 5; i++)
		assert_int_equal(der_enter(&d[i], DER_SEQUENCE, &d[i + 1], NULL), 0);
	assert_true(der_empty(&d[5]) && der_empty(&d[0]));
	free(b.p);
	b = nested(100000);
	assert_int_equal(b.p[1], 0x83); /* over 64 KiB */
	free(b.p);
}

/* ---- rev_cert ---- */

static void cert_fields(void **state)
{
	const struct rev_cert *l = &pki->leaf;

	(void)state;
	assert_int_equal(l->serial.len, 2);
	assert_memory_equal(l->serial.p, "\x10\x00", 2);
	assert_int_equal(l->not_after - l->not_before, 30 * 86400);
	assert_false(l->is_ca);
	assert_false(l->eku_ocsp_signing);
	/* AIA: both OCSP URIs, not caIssuers; CDP: both fullName URIs. */
	assert_int_equal(l->n_ocsp, 2);
	assert_string_equal(l->ocsp_urls[0], "http://ocsp.example.test/ca1");
	assert_string_equal(l->ocsp_urls[1], "http://ocsp2.example.test:8080/");
	assert_int_equal(l->n_crl, 2);
	assert_string_equal(l->crl_urls[0], "http://crl.example.test/ca1.crl");
	assert_string_equal(l->crl_urls[1], "ldap://ldap.example.test/cn=ca1");
	assert_true(pki->ca1.is_ca);
	assert_int_equal(pki->ca1.n_ocsp, 0);
	assert_true(pki->ocsp.eku_ocsp_signing);
	assert_false(pki->ocsp.is_ca);
	assert_false(pki->sibling.eku_ocsp_signing);
	assert_true(pki->self.eku_ocsp_signing);
	assert_int_equal(pki->ocsp_old.not_before, utc(2020, 1, 1, 0, 0, 0));
	assert_int_equal(pki->ocsp_old.not_after, utc(2020, 2, 1, 0, 0, 0));
	/* -set_serial 0x00ab7777: the 0x00 stays, 0xab would be negative. */
	assert_int_equal(pki->unknown.serial.len, 4);
	assert_memory_equal(pki->unknown.serial.p, "\x00\xab\x77\x77", 4);
	assert_int_equal(l->key.len, 270); /* RSA-2048 RSAPublicKey */
	assert_true(l->tbs.p > l->der.p && l->tbs.len < l->der.len);
}

static void cert_refused(void **state)
{
	struct blob b = fixture("leaf.der");
	struct rev_cert c;
	uint8_t *t = malloc(b.len + 1);

	(void)state;
	assert_non_null(t);
	memcpy(t, b.p, b.len);
	t[b.len] = 0;
	assert_int_equal(rev_cert_parse(t, b.len + 1, &c), -1); /* trailing */
	for (size_t n = 0; n < b.len; n++)
		assert_int_equal(rev_cert_parse(t, n, &c), -1);
	assert_int_equal(rev_cert_parse(t, b.len, &c), 0);
	free(t);
	free(b.p);
}

static void cert_pem(void **state)
{
	struct blob pem = fixture("leaf.pem"), der = fixture("leaf.der");
	uint8_t *out;
	size_t n;

	(void)state;
	assert_int_equal(rev_pem_or_der(pem.p, pem.len, "CERTIFICATE", &out, &n), 0);
	assert_int_equal(n, der.len);
	assert_memory_equal(out, der.p, n);
	free(out);
	assert_int_equal(rev_pem_or_der(der.p, der.len, "CERTIFICATE", &out, &n), 0);
	assert_memory_equal(out, der.p, n);
	free(out);
	assert_int_equal(rev_pem_or_der(pem.p, pem.len, "X509 CRL", &out, &n), -1);
	assert_null(out);
	assert_int_equal(rev_pem_or_der(pem.p, pem.len / 2, "CERTIFICATE", &out,
					&n), -1);
	assert_int_equal(rev_pem_or_der((const uint8_t *)"  \n", 3, "CERTIFICATE",
					&out, &n), -1);
	free(pem.p);
	free(der.p);
}

static void issued_by(void **state)
{
	(void)state;
	assert_int_equal(rev_cert_issued_by(&pki->leaf, &pki->ca1), 0);
	assert_int_equal(rev_cert_issued_by(&pki->ca1, &pki->ca1), 0);
	assert_int_equal(rev_cert_issued_by(&pki->sibling, &pki->ca1), 0); /* ECDSA-SHA384 */
	assert_int_equal(rev_cert_issued_by(&pki->leaf2, &pki->ca2), 0); /* RSA-SHA384 */
	assert_int_equal(rev_cert_issued_by(&pki->ocsp2, &pki->ca2), 0);
	assert_int_equal(rev_cert_issued_by(&pki->leaf, &pki->ca2), -1);
	/* Same Name, another key. */
	assert_int_equal(rev_cert_issued_by(&pki->leaf, &pki->evil), -1);
	assert_int_equal(rev_cert_issued_by(&pki->leaf, &pki->leaf), -1);
	assert_int_equal(rev_cert_issued_by(&pki->self, &pki->self), 0);
}

static int self_signed(const char *name)
{
	struct rev_cert c;
	struct blob b = cert_fixture(name, &c);
	int r = rev_cert_issued_by(&c, &c);

	free(b.p);
	return r;
}

static void key_kinds(void **state)
{
	(void)state;
	assert_int_equal(self_signed("p384.der"), 0);    /* ECDSA-SHA384 */
	assert_int_equal(self_signed("p521.der"), 0);    /* ECDSA-SHA512 */
	assert_int_equal(self_signed("rsa4096.der"), 0); /* RSA-SHA512 */
	/* Too short an RSA key, a curve outside P-256/384/521. */
	assert_int_equal(self_signed("rsa1024.der"), -1);
	assert_int_equal(self_signed("k256.der"), -1);
}

static void sig_algorithms(void **state)
{
	const struct rev_cert *l = &pki->leaf;
	static const uint8_t md5rsa[] = { 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86,
					  0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01,
					  0x04, 0x05, 0x00 };
	struct rev_span alg = { md5rsa, sizeof(md5rsa) };

	(void)state;
	assert_int_equal(rev_sig_verify(l->sig_alg, l->tbs, l->sig,
					pki->ca1.spki), 0);
	/* Another algorithm named with the same bytes: refused. */
	assert_int_equal(rev_sig_verify(alg, l->tbs, l->sig, pki->ca1.spki), -1);
	/* An ECDSA signature checked with an RSA key. */
	assert_int_equal(rev_sig_verify(l->sig_alg, l->tbs, l->sig,
					pki->ca2.spki), -1);
	alg = l->tbs;
	alg.len--;
	assert_int_equal(rev_sig_verify(l->sig_alg, alg, l->sig, pki->ca1.spki),
			 -1);
}

/* ---- requests ---- */

static void certid_and_request_as_openssl(void **state)
{
	struct blob ref = fixture("req_leaf.der");
	struct blob refn = fixture("req_leaf_nonce.der");
	uint8_t out[OCSP_REQUEST_MAX];
	int n;

	(void)state;
	/* No nonce: openssl's -no_nonce request, byte for byte (so the
	 * CertID's hashes and serial are openssl's). */
	n = ocsp_request_encode(&pki->id_leaf, NULL, 0, out, sizeof(out));
	assert_int_equal(n, (int)ref.len);
	assert_memory_equal(out, ref.p, ref.len);
	/* With openssl's nonce (its last 16 octets): openssl's request. */
	n = ocsp_request_encode(&pki->id_leaf, refn.p + refn.len - 16, 16, out,
				sizeof(out));
	assert_int_equal(n, (int)refn.len);
	assert_memory_equal(out, refn.p, refn.len);
	/* The bound holds at every size. */
	for (size_t m = 0; m < refn.len; m++)
		assert_int_equal(ocsp_request_encode(&pki->id_leaf,
						     refn.p + refn.len - 16, 16,
						     out, m), -1);
	assert_int_equal(ocsp_request_encode(&pki->id_leaf, out, 0, out,
					     sizeof(out)), -1);
	free(ref.p);
	free(refn.p);
}

static void openssl_answers_our_request(void **state)
{
	static const uint8_t nonce[OCSP_NONCE_LEN] = "0123456789abcdef";
	uint8_t out[OCSP_REQUEST_MAX];
	struct ocsp_answer a;
	struct blob resp;
	int n;

	(void)state;
	n = ocsp_request_encode(&pki->id_leaf, nonce, sizeof(nonce), out,
				sizeof(out));
	assert_true(n > 0);
	fixture_write("ours.der", out, (size_t)n);
	assert_int_equal(fixture_sh("openssl ocsp -reqin ours.der -req_text "
				    ">ours.txt 2>&1 && grep -q 'Serial Number: "
				    "1000' ours.txt && grep -q 'OCSP Nonce' "
				    "ours.txt"), 0);
	assert_int_equal(fixture_sh("openssl ocsp -index ca1.db/index.txt -CA "
				    "ca1.pem -rsigner ca1.pem -rkey ca1.key "
				    "-reqin ours.der -respout ours_resp.der "
				    "-resp_no_certs >/dev/null 2>&1"), 0);
	resp = fixture("ours_resp.der");
	assert_int_equal(ocsp_response_check(resp.p, resp.len, &pki->id_leaf,
					     &pki->ca1, nonce, sizeof(nonce),
					     time(NULL), &a), OCSP_CHECK_OK);
	assert_int_equal(a.status, OCSP_STATUS_GOOD);
	assert_true(a.nonce_echoed);
	free(resp.p);
}

/* ---- responses ---- */

static enum ocsp_check check(const char *file, const struct ocsp_certid *id,
			     const struct rev_cert *issuer, const uint8_t *nonce,
			     size_t nonce_len, int64_t now, struct ocsp_answer *a)
{
	struct blob b = fixture(file);
	enum ocsp_check r;

	memset(a, 0x5a, sizeof(*a));
	r = ocsp_response_check(b.p, b.len, id, issuer, nonce, nonce_len, now, a);
	free(b.p);
	return r;
}

static void responders(void **state)
{
	static const struct {
		const char *file;
		enum ocsp_check want;
	} cases[] = {
		{ "resp_issuer.der", OCSP_CHECK_OK },
		{ "resp_issuer_nonext.der", OCSP_CHECK_OK },
		{ "resp_delegated.der", OCSP_CHECK_OK },
		{ "resp_delegated_bykey.der", OCSP_CHECK_OK },
		{ "resp_sha256.der", OCSP_CHECK_OK },
		/* The delegate's certificate left out: no key verifies. */
		{ "resp_delegated_nocerts.der", OCSP_CHECK_SIGNATURE },
		/* ca1's leaf without id-kp-OCSPSigning. */
		{ "resp_sibling.der", OCSP_CHECK_RESPONDER },
		/* ca2's responder, with OCSPSigning from ca2. */
		{ "resp_other_ca.der", OCSP_CHECK_RESPONDER },
		/* A responder from a CA with ca1's Name and another key. */
		{ "resp_evil.der", OCSP_CHECK_RESPONDER },
		{ "resp_self.der", OCSP_CHECK_RESPONDER },
		/* ca1's delegate, expired in 2020. */
		{ "resp_old.der", OCSP_CHECK_RESPONDER },
		/* For ca1's revoked certificate, not for leaf. */
		{ "resp_wrong_cert.der", OCSP_CHECK_NO_MATCH },
	};
	struct ocsp_answer a;
	int64_t now = time(NULL);

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum ocsp_check r = check(cases[i].file, &pki->id_leaf, &pki->ca1,
					  NULL, 0, now, &a);

		if (r != cases[i].want)
			fail_msg("%s: %s, want %s", cases[i].file,
				 ocsp_check_str(r), ocsp_check_str(cases[i].want));
		if (r == OCSP_CHECK_OK) {
			assert_int_equal(a.status, OCSP_STATUS_GOOD);
			assert_int_equal(a.reason, -1);
			assert_false(a.nonce_echoed);
			assert_true(a.this_update <= now + 5 &&
				    a.this_update > now - 3600);
			assert_true(a.produced_at >= a.this_update - 5);
		}
	}
	/* Checked against the wrong issuer: its key verifies nothing. */
	assert_int_equal(check("resp_issuer.der", &pki->id_leaf, &pki->ca2, NULL,
			       0, now, &a), OCSP_CHECK_SIGNATURE);
	/* The delegate, before it was valid. */
	assert_int_equal(check("resp_delegated.der", &pki->id_leaf, &pki->ca1,
			       NULL, 0, pki->ocsp.not_before - 1, &a),
			 OCSP_CHECK_RESPONDER);
	assert_int_equal(check("resp_delegated.der", &pki->id_leaf, &pki->ca1,
			       NULL, 0, pki->ocsp.not_after + 1, &a),
			 OCSP_CHECK_RESPONDER);
}

static void statuses_and_times(void **state)
{
	struct ocsp_answer a;
	int64_t now = time(NULL);

	(void)state;
	assert_int_equal(check("resp_issuer.der", &pki->id_leaf, &pki->ca1, NULL,
			       0, now, &a), OCSP_CHECK_OK);
	assert_int_equal(a.next_update - a.this_update, 86400);
	assert_int_equal(check("resp_delegated.der", &pki->id_leaf, &pki->ca1,
			       NULL, 0, now, &a), OCSP_CHECK_OK);
	assert_int_equal(a.next_update - a.this_update, 300);
	assert_int_equal(check("resp_issuer_nonext.der", &pki->id_leaf,
			       &pki->ca1, NULL, 0, now, &a), OCSP_CHECK_OK);
	assert_int_equal(a.next_update, 0);
	assert_int_equal(check("resp_revoked.der", &pki->id_revoked, &pki->ca1,
			       NULL, 0, now, &a), OCSP_CHECK_OK);
	assert_int_equal(a.status, OCSP_STATUS_REVOKED);
	assert_int_equal(a.reason, 1); /* keyCompromise */
	assert_true(a.revoked_at > now - 3600 && a.revoked_at <= now);
	assert_int_equal(check("resp_unknown.der", &pki->id_unknown, &pki->ca1,
			       NULL, 0, now, &a), OCSP_CHECK_OK);
	assert_int_equal(a.status, OCSP_STATUS_UNKNOWN);
	/* thisUpdate more than 5 minutes ahead of our clock. */
	assert_int_equal(check("resp_issuer.der", &pki->id_leaf, &pki->ca1, NULL,
			       0, now - 3600, &a), OCSP_CHECK_TIME);
	assert_int_equal(check("resp_issuer.der", &pki->id_leaf, &pki->ca1, NULL,
			       0, now - 200, &a), OCSP_CHECK_OK);
}

static void nonces(void **state)
{
	struct blob req = fixture("req_leaf_nonce.der");
	const uint8_t *nonce = req.p + req.len - 16;
	uint8_t other[16];
	struct ocsp_answer a;
	int64_t now = time(NULL);

	(void)state;
	assert_int_equal(check("resp_issuer_nonce.der", &pki->id_leaf, &pki->ca1,
			       nonce, 16, now, &a), OCSP_CHECK_OK);
	assert_true(a.nonce_echoed);
	memcpy(other, nonce, 16);
	other[3] ^= 1;
	assert_int_equal(check("resp_issuer_nonce.der", &pki->id_leaf, &pki->ca1,
			       other, 16, now, &a), OCSP_CHECK_NONCE);
	assert_int_equal(check("resp_issuer_nonce.der", &pki->id_leaf, &pki->ca1,
			       nonce, 15, now, &a), OCSP_CHECK_NONCE);
	/* The bare value is taken too (responders that do not wrap it):
	 * the response's OCTET STRING { OCTET STRING n } holds 04 10 n. */
	assert_int_equal(check("resp_issuer_nonce.der", &pki->id_leaf, &pki->ca1,
			       nonce - 2, 18, now, &a), OCSP_CHECK_OK);
	assert_true(a.nonce_echoed);
	/* We sent none: the response's is not looked at. */
	assert_int_equal(check("resp_issuer_nonce.der", &pki->id_leaf, &pki->ca1,
			       NULL, 0, now, &a), OCSP_CHECK_OK);
	assert_false(a.nonce_echoed);
	/* We sent one, the response has none: allowed, and said. */
	assert_int_equal(check("resp_issuer.der", &pki->id_leaf, &pki->ca1,
			       nonce, 16, now, &a), OCSP_CHECK_OK);
	assert_false(a.nonce_echoed);
	free(req.p);
}

static enum ocsp_check check_buf(const uint8_t *p, size_t n)
{
	struct ocsp_answer a;

	return ocsp_response_check(p, n, &pki->id_leaf, &pki->ca1, NULL, 0,
				   time(NULL), &a);
}

static void malformed(void **state)
{
	static const uint8_t unauthorized[] = { 0x30, 0x03, 0x0a, 0x01, 0x06 };
	static const uint8_t ok_nobytes[] = { 0x30, 0x03, 0x0a, 0x01, 0x00 };
	/* resp_issuer_nonce also holds ca1's certificate, unsigned and not
	 * needed (ca1's key verifies): a change there is rightly ignored. */
	static const struct {
		const char *name;
		int any_flip_refused;
	} files[] = { { "resp_delegated.der", 1 }, { "resp_revoked.der", 1 },
		      { "resp_issuer_nonce.der", 0 } };
	struct blob b, n;
	uint8_t *t;
	size_t at, hl;

	(void)state;
	assert_int_equal(check_buf(unauthorized, sizeof(unauthorized)),
			 OCSP_CHECK_STATUS);
	assert_int_equal(check_buf(ok_nobytes, sizeof(ok_nobytes)),
			 OCSP_CHECK_PARSE);
	assert_int_equal(check_buf(ok_nobytes, 0), OCSP_CHECK_PARSE);
	for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
		b = fixture(files[f].name);
		t = malloc(b.len + 4);
		assert_non_null(t);
		/* Every prefix, in a buffer of exactly that size (ASan sees
		 * any read past it). */
		for (size_t m = 0; m < b.len; m++) {
			uint8_t *c = malloc(m + 1);

			assert_non_null(c);
			memcpy(c, b.p, m);
			assert_int_not_equal(check_buf(c, m), OCSP_CHECK_OK);
			free(c);
		}
		/* Trailing bytes. */
		memcpy(t, b.p, b.len);
		t[b.len] = 0;
		assert_int_equal(check_buf(t, b.len + 1), OCSP_CHECK_PARSE);
		/* The outer length one more than the buffer holds. */
		hl = t[1] < 0x80 ? 2 : 2 + (size_t)(t[1] & 0x7f);
		assert_true(t[hl - 1] < 0xff);
		t[hl - 1]++;
		assert_int_equal(check_buf(t, b.len), OCSP_CHECK_PARSE);
		/* Indefinite length with end-of-contents. */
		memcpy(t, "\x30\x80", 2);
		memcpy(t + 2, b.p + hl, b.len - hl);
		memcpy(t + 2 + b.len - hl, "\x00\x00", 2);
		assert_int_equal(check_buf(t, 4 + b.len - hl), OCSP_CHECK_PARSE);
		/* Each bit 0 flipped, anywhere: never a crash, never OK (the
		 * wrapper is checked for form, the rest is signed, the
		 * signature and the delegate's certificate are checked). */
		for (at = 0; at < b.len; at++) {
			memcpy(t, b.p, b.len);
			t[at] ^= 0x01;
			if (check_buf(t, b.len) == OCSP_CHECK_OK &&
			    files[f].any_flip_refused)
				fail_msg("%s: byte %zu flipped, still OK",
					 files[f].name, at);
		}
		free(t);
		free(b.p);
	}
	/* A byte of the signed ResponseData changed: the signature fails. */
	b = fixture("resp_issuer.der");
	t = memmem(b.p, b.len, "Test CA 1", 9);
	assert_non_null(t);
	t[0] = 'X';
	assert_int_equal(check_buf(b.p, b.len), OCSP_CHECK_SIGNATURE);
	free(b.p);
	/* Deep nesting: refused, bounded stack. */
	n = nested(100000);
	assert_int_equal(check_buf(n.p, n.len), OCSP_CHECK_PARSE);
	free(n.p);
}

static int teardown(void **state)
{
	const struct rev_cert *all[] = {
		&pki->ca1, &pki->ca2, &pki->evil, &pki->leaf, &pki->revoked,
		&pki->unknown, &pki->ocsp, &pki->sibling, &pki->ocsp_old,
		&pki->self, &pki->leaf2, &pki->ocsp2,
	};

	(void)state;
	/* Each certificate's spans point into the buffer it was read into. */
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		free((void *)all[i]->der.p);
	free(pki);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(der_lengths),
		cmocka_unit_test(der_times),
		cmocka_unit_test(der_nesting),
		cmocka_unit_test(cert_fields),
		cmocka_unit_test(cert_refused),
		cmocka_unit_test(cert_pem),
		cmocka_unit_test(issued_by),
		cmocka_unit_test(key_kinds),
		cmocka_unit_test(sig_algorithms),
		cmocka_unit_test(certid_and_request_as_openssl),
		cmocka_unit_test(openssl_answers_our_request),
		cmocka_unit_test(responders),
		cmocka_unit_test(statuses_and_times),
		cmocka_unit_test(nonces),
		cmocka_unit_test(malformed),
	};
	int r;

	if (wolfCrypt_Init() != 0)
		return 1;
	r = cmocka_run_group_tests(tests, setup, teardown);
	wc_ecc_fp_free(); /* Debian's wolfSSL keeps FP_ECC tables per thread */
	wolfCrypt_Cleanup();
	return r;
}
