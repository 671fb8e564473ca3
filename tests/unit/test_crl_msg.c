/* CRLs made by openssl ca -gencrl (tests/unit/rev_fixtures.sh): empty and
 * with entries, PEM and DER, signed by ECDSA and RSA-SHA512; one signed by
 * another CA and one by a CA with the same Name and another key (refused
 * by crl_verify), a changed byte (refused); delta CRLs, issuing
 * distribution points plain and indirect, an unknown critical extension,
 * an entry naming another issuer; every truncation refused. */
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

#include "crl_msg.h"
#include "rev_testlib.h"

static struct rev_cert ca1, ca2, evil, revoked, revoked2, leaf;

static int setup(void **state)
{
	(void)state;
	cert_fixture("ca1.der", &ca1);
	cert_fixture("ca2.der", &ca2);
	cert_fixture("evil.der", &evil);
	cert_fixture("revoked.der", &revoked);
	cert_fixture("revoked2.der", &revoked2);
	cert_fixture("leaf.der", &leaf);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free((void *)ca1.der.p);
	free((void *)ca2.der.p);
	free((void *)evil.der.p);
	free((void *)revoked.der.p);
	free((void *)revoked2.der.p);
	free((void *)leaf.der.p);
	return 0;
}

/* A CRL fixture, PEM or DER, through rev_pem_or_der and crl_parse. */
static struct blob crl_fixture(const char *name, struct crl_info *ci)
{
	struct blob f = fixture(name), d;

	assert_int_equal(rev_pem_or_der(f.p, f.len, "X509 CRL", &d.p, &d.len), 0);
	free(f.p);
	assert_int_equal(crl_parse(d.p, d.len, ci), 0);
	return d;
}

static int lookup(const struct crl_info *ci, const struct rev_cert *c,
		  int64_t *when, int *reason)
{
	return crl_lookup(ci, c->serial.p, c->serial.len, when, reason);
}

static void empty_crl(void **state)
{
	struct crl_info ci;
	struct blob b = crl_fixture("crl_empty.pem", &ci);
	int64_t when;
	int reason;

	(void)state;
	assert_int_equal(ci.revoked.len, 0);
	assert_int_equal(ci.next_update - ci.this_update, 7 * 86400);
	assert_false(ci.delta);
	assert_false(ci.unsupported_critical);
	assert_int_equal(crl_verify(&ci, &ca1), 0);
	assert_int_equal(lookup(&ci, &revoked, &when, &reason), 0);
	assert_int_equal(lookup(&ci, &leaf, &when, &reason), 0);
	free(b.p);
}

static void crl_with_entries(void **state)
{
	struct crl_info ci, cd;
	struct blob b = crl_fixture("crl.pem", &ci);
	struct blob d = crl_fixture("crl.der", &cd);
	static const uint8_t padded[] = { 0x00, 0x00, 0x10, 0x01 };
	int64_t when, now = time(NULL);
	int reason;

	(void)state;
	/* PEM and DER are the same CRL. */
	assert_int_equal(b.len, d.len);
	assert_memory_equal(b.p, d.p, d.len);
	assert_int_equal(crl_verify(&ci, &ca1), 0);
	assert_true(ci.revoked.len > 0);
	assert_false(ci.unsupported_critical);
	assert_int_equal(lookup(&ci, &revoked, &when, &reason), 1);
	assert_int_equal(reason, 1); /* keyCompromise */
	assert_true(when > now - 3600 && when <= now);
	assert_int_equal(lookup(&ci, &revoked2, &when, &reason), 1);
	assert_int_equal(reason, -1);
	assert_int_equal(lookup(&ci, &leaf, &when, &reason), 0);
	/* Leading zero octets do not change the serial. */
	assert_int_equal(crl_lookup(&ci, padded, sizeof(padded), &when,
				    &reason), 1);
	assert_int_equal(crl_lookup(&ci, padded + 2, 1, &when, &reason), 0);
	assert_int_equal(crl_lookup(&ci, padded, 0, &when, &reason), -1);
	free(b.p);
	free(d.p);
}

static void verify_refused(void **state)
{
	struct crl_info ci;
	struct blob b;
	uint8_t *t;

	(void)state;
	/* ca2's, RSA with SHA-512: verifies with ca2 only. */
	b = crl_fixture("crl_ca2.pem", &ci);
	assert_int_equal(crl_verify(&ci, &ca2), 0);
	assert_int_equal(crl_verify(&ci, &ca1), -1);
	free(b.p);
	/* The look-alike's: ca1's Name, another key. */
	b = crl_fixture("crl_evil.der", &ci);
	assert_int_equal(crl_verify(&ci, &ca1), -1);
	assert_int_equal(crl_verify(&ci, &evil), 0);
	free(b.p);
	/* A byte of the signed list changed (a revocation date's second). */
	b = crl_fixture("crl.der", &ci);
	t = memmem(b.p, b.len, "Z\x30", 2);
	assert_non_null(t);
	t[-1] = t[-1] == '0' ? '1' : '0';
	assert_int_equal(crl_parse(b.p, b.len, &ci), 0);
	assert_int_equal(crl_verify(&ci, &ca1), -1);
	/* And the signature's last byte. */
	b.p[b.len - 1] ^= 0xff;
	assert_int_equal(crl_parse(b.p, b.len, &ci), 0);
	assert_int_equal(crl_verify(&ci, &ca1), -1);
	free(b.p);
}

static void extensions(void **state)
{
	struct crl_info ci;
	struct blob b;

	(void)state;
	b = crl_fixture("crl_delta.der", &ci);
	assert_true(ci.delta);
	assert_false(ci.unsupported_critical);
	assert_int_equal(crl_verify(&ci, &ca1), 0);
	free(b.p);
	b = crl_fixture("crl_idp_plain.der", &ci);
	assert_false(ci.delta);
	assert_false(ci.unsupported_critical);
	/* Scopes are the caller's to check against the certificate. */
	assert_true(ci.only_user_certs);
	assert_false(ci.only_ca_certs);
	free(b.p);
	b = crl_fixture("crl_idp_ca.der", &ci);
	assert_false(ci.unsupported_critical);
	assert_true(ci.only_ca_certs);
	assert_false(ci.only_user_certs);
	free(b.p);
	b = crl_fixture("crl_idp_indirect.der", &ci);
	assert_true(ci.unsupported_critical);
	free(b.p);
	b = crl_fixture("crl_unknown_crit.der", &ci);
	assert_true(ci.unsupported_critical);
	free(b.p);
}

/* An unsigned CRL built here: openssl ca writes no certificateIssuer. */
static struct blob handmade(const uint8_t *ext_oid, size_t oid_len, int crit)
{
	static const uint8_t alg[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
				       0x3d, 0x04, 0x03, 0x02 };
	struct blob ext, entry, tbs;

	ext = cat(tlv(0x06, bytes(ext_oid, oid_len)),
		  crit ? bytes("\x01\x01\xff", 3) : bytes("", 0));
	ext = cat(ext, tlv(0x04, tlv(0x30, bytes("", 0))));
	entry = cat(tlv(0x02, bytes("\x05", 1)),
		    tlv(0x17, bytes("260101000000Z", 13)));
	entry = cat(entry, tlv(0x30, tlv(0x30, ext)));
	tbs = cat(tlv(0x02, bytes("\x01", 1)), tlv(0x30, bytes(alg, sizeof(alg))));
	tbs = cat(tbs, tlv(0x30, bytes("", 0)));
	tbs = cat(tbs, tlv(0x17, bytes("260101000000Z", 13)));
	tbs = cat(tbs, tlv(0x30, tlv(0x30, entry)));
	tbs = cat(tlv(0x30, tbs), tlv(0x30, bytes(alg, sizeof(alg))));
	tbs = cat(tbs, tlv(0x03, bytes("\x00", 1)));
	return tlv(0x30, tbs);
}

static void entry_extensions(void **state)
{
	static const uint8_t cert_issuer[] = { 0x55, 0x1d, 0x1d };
	static const uint8_t unknown[] = { 0x2a, 0x03, 0x04 };
	static const uint8_t five = 5;
	struct crl_info ci;
	struct blob b;
	int64_t when;
	int reason;

	(void)state;
	b = handmade(cert_issuer, sizeof(cert_issuer), 1);
	assert_int_equal(crl_parse(b.p, b.len, &ci), 0);
	assert_true(ci.unsupported_critical);
	assert_int_equal(ci.next_update, 0);
	assert_int_equal(crl_lookup(&ci, &five, 1, &when, &reason), 1);
	assert_int_equal(crl_verify(&ci, &ca1), -1);
	free(b.p);
	b = handmade(unknown, sizeof(unknown), 1);
	assert_int_equal(crl_parse(b.p, b.len, &ci), 0);
	assert_true(ci.unsupported_critical);
	free(b.p);
	b = handmade(unknown, sizeof(unknown), 0);
	assert_int_equal(crl_parse(b.p, b.len, &ci), 0);
	assert_false(ci.unsupported_critical);
	free(b.p);
}

static void malformed(void **state)
{
	struct crl_info ci, bad;
	struct blob b = crl_fixture("crl.der", &ci), n;
	int64_t when;
	int reason;

	(void)state;
	for (size_t m = 0; m < b.len; m++) {
		uint8_t *c = malloc(m + 1);

		assert_non_null(c);
		memcpy(c, b.p, m);
		assert_int_equal(crl_parse(c, m, &bad), -1);
		free(c);
	}
	b.p = realloc(b.p, b.len + 1);
	assert_non_null(b.p);
	b.p[b.len] = 0;
	assert_int_equal(crl_parse(b.p, b.len + 1, &bad), -1);
	/* Each byte changed anywhere: no crash, and what still parses
	 * does not verify (every byte is signed, or the signature). */
	for (size_t at = 0; at < b.len; at++) {
		b.p[at] ^= 0x80;
		if (crl_parse(b.p, b.len, &bad) == 0) {
			(void)lookup(&bad, &revoked, &when, &reason);
			if (crl_verify(&bad, &ca1) == 0)
				fail_msg("byte %zu changed, still verifies", at);
		}
		b.p[at] ^= 0x80;
	}
	/* A revoked list that is not one. */
	assert_int_equal(crl_parse(b.p, b.len, &ci), 0);
	bad = ci;
	bad.revoked.p = (const uint8_t *)"\x30\x05\x02\x01";
	bad.revoked.len = 4;
	assert_int_equal(lookup(&bad, &revoked, &when, &reason), -1);
	n = nested(100000);
	assert_int_equal(crl_parse(n.p, n.len, &bad), -1);
	free(n.p);
	free(b.p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(empty_crl),
		cmocka_unit_test(crl_with_entries),
		cmocka_unit_test(verify_refused),
		cmocka_unit_test(extensions),
		cmocka_unit_test(entry_extensions),
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
