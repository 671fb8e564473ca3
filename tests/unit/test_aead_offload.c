/* AES-GCM through the crypto callback device (aead_offload.c, OpenSSL's
 * libcrypto) against wolfSSL's own C, on the same keys, nonces and data:
 * the same ciphertext and tag; a flipped byte of ciphertext, tag or AAD is
 * refused with AES_GCM_AUTH_E and no plaintext; what the device does not
 * take falls back to wolfSSL and stays right. */
#include <wolfssl/options.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>

#include "offload_testlib.h"

#define REC_MAX 16384

static void aes_on(Aes *a, int devid, const uint8_t *key, size_t key_len)
{
	assert_int_equal(wc_AesInit(a, NULL, devid), 0);
	assert_int_equal(wc_AesGcmSetKey(a, key, (word32)key_len), 0);
}

static void rand_bytes(uint8_t *p, size_t n)
{
	if (n > 0)
		assert_int_equal(wc_RNG_GenerateBlock(&rng, p, (word32)n), 0);
}

/* One key size and length: both implementations agree both ways. */
static void one(size_t key_len, size_t len)
{
	static uint8_t pt[REC_MAX], ref[REC_MAX], ct[REC_MAX], back[REC_MAX];
	uint8_t key[32], iv[12], aad[13], tag_ref[16], tag[16];
	unsigned long before = aead_offload_ops();
	Aes sw, dev;

	rand_bytes(key, key_len);
	rand_bytes(iv, sizeof(iv));
	rand_bytes(aad, sizeof(aad));
	rand_bytes(pt, len);
	aes_on(&sw, INVALID_DEVID, key, key_len);
	aes_on(&dev, AEAD_OFFLOAD_DEVID, key, key_len);

	assert_int_equal(wc_AesGcmEncrypt(&sw, ref, pt, (word32)len, iv, 12,
					  tag_ref, 16, aad, 13), 0);
	assert_int_equal(wc_AesGcmEncrypt(&dev, ct, pt, (word32)len, iv, 12,
					  tag, 16, aad, 13), 0);
	assert_memory_equal(ct, ref, len);
	assert_memory_equal(tag, tag_ref, 16);
	assert_true(aead_offload_ops() == before + 1); /* the device did it */

	/* Open in place, as TLS does. */
	memcpy(back, ref, len);
	assert_int_equal(wc_AesGcmDecrypt(&dev, back, back, (word32)len, iv,
					  12, tag_ref, 16, aad, 13), 0);
	assert_memory_equal(back, pt, len);

	/* Forgeries: ciphertext, tag, AAD. */
	if (len > 0) {
		memcpy(back, ref, len);
		back[len / 2] ^= 0x01;
		assert_int_equal(wc_AesGcmDecrypt(&dev, back, back, (word32)len,
						  iv, 12, tag_ref, 16, aad, 13),
				 AES_GCM_AUTH_E);
		for (size_t i = 0; i < len; i++)
			assert_true(back[i] == 0); /* nothing readable */
	}
	tag[15] ^= 0x80;
	assert_int_equal(wc_AesGcmDecrypt(&dev, back, ref, (word32)len, iv, 12,
					  tag, 16, aad, 13), AES_GCM_AUTH_E);
	aad[0] ^= 0x01;
	assert_int_equal(wc_AesGcmDecrypt(&dev, back, ref, (word32)len, iv, 12,
					  tag_ref, 16, aad, 13), AES_GCM_AUTH_E);
	wc_AesFree(&sw);
	wc_AesFree(&dev);
}

static void test_agrees_with_wolfssl(void **state)
{
	static const size_t lens[] = { 0, 1, 15, 16, 17, 255, 1000, 4096,
				       16383, REC_MAX };

	(void)state;
	for (size_t k = 0; k < 2; k++)
		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
			one(k == 0 ? 16 : 32, lens[i]);
}

/* A key the device does not take (AES-192: no TLS suite uses it): wolfSSL
 * does it in C, and it is still right. */
static void test_unsupported_falls_back(void **state)
{
	static uint8_t pt[4096], ct[4096], ref[4096];
	uint8_t key[24], iv[12], tag[16], tag_ref[16];
	unsigned long before;
	Aes sw, dev;

	(void)state;
	rand_bytes(key, sizeof(key));
	rand_bytes(iv, sizeof(iv));
	rand_bytes(pt, sizeof(pt));
	aes_on(&sw, INVALID_DEVID, key, sizeof(key));
	aes_on(&dev, AEAD_OFFLOAD_DEVID, key, sizeof(key));
	assert_int_equal(wc_AesGcmEncrypt(&sw, ref, pt, sizeof(pt), iv, 12,
					  tag_ref, 16, NULL, 0), 0);
	before = aead_offload_ops();
	assert_int_equal(wc_AesGcmEncrypt(&dev, ct, pt, sizeof(pt), iv, 12,
					  tag, 16, NULL, 0), 0);
	assert_true(aead_offload_ops() == before);
	assert_memory_equal(ct, ref, sizeof(ct));
	assert_memory_equal(tag, tag_ref, 16);
	wc_AesFree(&sw);
	wc_AesFree(&dev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_agrees_with_wolfssl),
		cmocka_unit_test(test_unsupported_falls_back),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
