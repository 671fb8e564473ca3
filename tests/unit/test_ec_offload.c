/* P-256 through the crypto callback device (ec_offload.c, OpenSSL's
 * libcrypto) against wolfSSL's own C: a key pair made by the device
 * agrees with a software key on the ECDH secret, both ways; the device's
 * ECDSA check accepts wolfSSL's signatures and refuses a changed hash or
 * signature; a peer point off the curve is refused, not multiplied; and
 * P-384 is left to wolfSSL. */
#include <wolfssl/options.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>

#include "offload_testlib.h"
#include "ec_offload.h"

static void make_key(ecc_key *k, int devid, int curve, int size)
{
	assert_int_equal(wc_ecc_init_ex(k, NULL, devid), 0);
	assert_int_equal(wc_ecc_make_key_ex(&rng, size, k, curve), 0);
	/* ECC_TIMING_RESISTANT: wolfSSL blinds its ECDH (TLS sets it too). */
	assert_int_equal(wc_ecc_set_rng(k, &rng), 0);
}

/* pub's public point in a key of its own on devid. */
static void public_of(const ecc_key *from, ecc_key *to, int devid)
{
	uint8_t pt[133];
	word32 n = sizeof(pt);

	assert_int_equal(wc_ecc_export_x963((ecc_key *)from, pt, &n), 0);
	assert_int_equal(wc_ecc_init_ex(to, NULL, devid), 0);
	assert_int_equal(wc_ecc_import_x963_ex(pt, n, to, from->dp->id), 0);
}

/* A key pair on the device and one in wolfSSL's C: the same ECDH secret
 * both ways (the device's key with the other's point, and the reverse). */
static void ecdh_both_ways(int curve, int size)
{
	ecc_key dev, sw, dev_pub, sw_pub;
	uint8_t a[48], b[48];
	word32 al = (word32)size, bl = (word32)size;

	make_key(&dev, AEAD_OFFLOAD_DEVID, curve, size);
	make_key(&sw, INVALID_DEVID, curve, size);
	public_of(&sw, &sw_pub, AEAD_OFFLOAD_DEVID);
	public_of(&dev, &dev_pub, INVALID_DEVID);
	assert_int_equal(wc_ecc_shared_secret(&dev, &sw_pub, a, &al), 0);
	assert_int_equal(wc_ecc_shared_secret(&sw, &dev_pub, b, &bl), 0);
	assert_int_equal(al, size);
	assert_int_equal(bl, size);
	assert_memory_equal(a, b, (size_t)size);
	wc_ecc_free(&dev);
	wc_ecc_free(&sw);
	wc_ecc_free(&dev_pub);
	wc_ecc_free(&sw_pub);
}

static void test_ecdh_agrees(void **state)
{
	unsigned long kg = ec_offload_ops(EC_OFF_KEYGEN);
	unsigned long dh = ec_offload_ops(EC_OFF_ECDH);

	(void)state;
	for (int i = 0; i < 20; i++)
		ecdh_both_ways(ECC_SECP256R1, 32);
	assert_int_equal(ec_offload_ops(EC_OFF_KEYGEN), kg + 20);
	assert_int_equal(ec_offload_ops(EC_OFF_ECDH), dh + 20);
}

static void test_verify(void **state)
{
	unsigned long vf = ec_offload_ops(EC_OFF_VERIFY);
	uint8_t hash[32], sig[80];
	word32 sl = sizeof(sig);
	ecc_key sw, dev_pub;
	int res = -1;

	(void)state;
	make_key(&sw, INVALID_DEVID, ECC_SECP256R1, 32);
	public_of(&sw, &dev_pub, AEAD_OFFLOAD_DEVID);
	assert_int_equal(wc_RNG_GenerateBlock(&rng, hash, sizeof(hash)), 0);
	assert_int_equal(wc_ecc_sign_hash(hash, sizeof(hash), sig, &sl, &rng,
					  &sw), 0);
	assert_int_equal(wc_ecc_verify_hash(sig, sl, hash, sizeof(hash), &res,
					    &dev_pub), 0);
	assert_int_equal(res, 1);
	hash[5] ^= 1;
	res = -1;
	assert_int_equal(wc_ecc_verify_hash(sig, sl, hash, sizeof(hash), &res,
					    &dev_pub), 0);
	assert_int_equal(res, 0);
	hash[5] ^= 1;
	sig[sl - 3] ^= 0x40;
	res = -1;
	(void)wc_ecc_verify_hash(sig, sl, hash, sizeof(hash), &res, &dev_pub);
	assert_int_equal(res, 0);
	assert_int_equal(ec_offload_ops(EC_OFF_VERIFY), vf + 3);
	wc_ecc_free(&sw);
	wc_ecc_free(&dev_pub);
}

static void test_off_curve_refused(void **state)
{
	unsigned long dh = ec_offload_ops(EC_OFF_ECDH);
	ecc_key dev, bad;
	uint8_t pt[65], out[32];
	word32 n = sizeof(pt), ol = sizeof(out);

	(void)state;
	make_key(&dev, AEAD_OFFLOAD_DEVID, ECC_SECP256R1, 32);
	assert_int_equal(wc_ecc_export_x963(&dev, pt, &n), 0);
	pt[64] ^= 1; /* y no longer matches x */
	assert_int_equal(wc_ecc_init_ex(&bad, NULL, AEAD_OFFLOAD_DEVID), 0);
	/* Debian's build does not check an imported point (no
	 * WOLFSSL_VALIDATE_ECC_IMPORT): the device must. */
	assert_int_equal(wc_ecc_import_x963_ex(pt, n, &bad, ECC_SECP256R1), 0);
	assert_int_equal(wc_ecc_shared_secret(&dev, &bad, out, &ol),
			 ECC_BAD_ARG_E);
	assert_int_equal(ec_offload_ops(EC_OFF_ECDH), dh);
	wc_ecc_free(&dev);
	wc_ecc_free(&bad);
}

static void test_p384_left_to_wolfssl(void **state)
{
	unsigned long kg = ec_offload_ops(EC_OFF_KEYGEN);
	unsigned long dh = ec_offload_ops(EC_OFF_ECDH);

	(void)state;
	ecdh_both_ways(ECC_SECP384R1, 48);
	assert_int_equal(ec_offload_ops(EC_OFF_KEYGEN), kg);
	assert_int_equal(ec_offload_ops(EC_OFF_ECDH), dh);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ecdh_agrees),
		cmocka_unit_test(test_verify),
		cmocka_unit_test(test_off_curve_refused),
		cmocka_unit_test(test_p384_left_to_wolfssl),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
