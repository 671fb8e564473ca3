/* AES-GCM from OpenSSL's libcrypto, which has vector code (AES-NI and
 * PCLMULQDQ, or SSSE3) where Debian's wolfSSL 5.5.4 has portable C only.
 * This file alone includes OpenSSL's headers: its names and wolfSSL's
 * compatibility layer's collide in one translation unit. */
#ifndef MTLS_AEAD_OPENSSL_H
#define MTLS_AEAD_OPENSSL_H

#include <stddef.h>
#include <stdint.h>

/* Fetches the ciphers once; 0 on success. */
int aead_openssl_init(void);
void aead_openssl_cleanup(void);

enum aead_result {
	AEAD_OK = 0,
	AEAD_AUTH_FAILED = 1, /* decrypt: the tag does not match; out wiped */
	AEAD_UNSUPPORTED = 2, /* nothing touched: the caller may do it */
	AEAD_FAILED = 3,      /* OpenSSL failed midway: out is not usable */
};

/* One AES-GCM operation, in place (out == in) or between disjoint
 * buffers. key_len 16 or 32; tag_len 4..16. */
enum aead_result aead_openssl_gcm(int encrypt, const uint8_t *key,
				  size_t key_len, const uint8_t *iv,
				  size_t iv_len, const uint8_t *aad,
				  size_t aad_len, const uint8_t *in,
				  uint8_t *out, size_t len, uint8_t *tag,
				  size_t tag_len);

#endif
