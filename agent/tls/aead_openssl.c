#include "aead_openssl.h"

#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>

static EVP_CIPHER *gcm128, *gcm256;

/* One cipher context per thread, re-keyed for each record: a context's
 * allocation costs more than AES-NI's key schedule. Freed (OpenSSL
 * clears the key schedule) when the thread ends. */
static pthread_key_t ctx_key;
static int ctx_key_made;

static void ctx_free(void *p)
{
	EVP_CIPHER_CTX_free(p);
}

int aead_openssl_init(void)
{
	if (gcm128 != NULL)
		return 0;
	if (!ctx_key_made) {
		if (pthread_key_create(&ctx_key, ctx_free) != 0)
			return -1;
		ctx_key_made = 1;
	}
	gcm128 = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
	gcm256 = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
	if (gcm128 == NULL || gcm256 == NULL) {
		aead_openssl_cleanup();
		return -1;
	}
	return 0;
}

void aead_openssl_cleanup(void)
{
	EVP_CIPHER_free(gcm128);
	EVP_CIPHER_free(gcm256);
	gcm128 = gcm256 = NULL;
}

static EVP_CIPHER_CTX *thread_ctx(void)
{
	EVP_CIPHER_CTX *c = pthread_getspecific(ctx_key);

	if (c == NULL) {
		c = EVP_CIPHER_CTX_new();
		if (c != NULL && pthread_setspecific(ctx_key, c) != 0) {
			EVP_CIPHER_CTX_free(c);
			c = NULL;
		}
	}
	return c;
}

enum aead_result aead_openssl_gcm(int encrypt, const uint8_t *key,
				  size_t key_len, const uint8_t *iv,
				  size_t iv_len, const uint8_t *aad,
				  size_t aad_len, const uint8_t *in,
				  uint8_t *out, size_t len, uint8_t *tag,
				  size_t tag_len)
{
	const EVP_CIPHER *cipher = key_len == 16 ? gcm128 :
				   key_len == 32 ? gcm256 : NULL;
	EVP_CIPHER_CTX *c;
	int n, fin;

	/* Partly overlapping buffers are undefined for EVP; lengths are
	 * ints there. */
	if (cipher == NULL || len > INT_MAX || aad_len > INT_MAX ||
	    iv_len == 0 || iv_len > 16 || tag_len < 4 || tag_len > 16 ||
	    (out != in && out < in + len && in < out + len))
		return AEAD_UNSUPPORTED;
	c = thread_ctx();
	if (c == NULL)
		return AEAD_UNSUPPORTED;
	if (EVP_CipherInit_ex2(c, cipher, NULL, NULL, encrypt, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, (int)iv_len,
				NULL) != 1 ||
	    EVP_CipherInit_ex2(c, NULL, key, iv, encrypt, NULL) != 1)
		return AEAD_UNSUPPORTED;
	if (aad_len > 0 && EVP_CipherUpdate(c, NULL, &n, aad, (int)aad_len) != 1)
		return AEAD_UNSUPPORTED;
	if (len > 0 && EVP_CipherUpdate(c, out, &n, in, (int)len) != 1)
		return AEAD_FAILED;
	if (encrypt) {
		if (EVP_CipherFinal_ex(c, out + len, &n) != 1 ||
		    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, (int)tag_len,
					tag) != 1)
			return AEAD_FAILED;
		return AEAD_OK;
	}
	if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, (int)tag_len,
				tag) != 1)
		return AEAD_FAILED;
	fin = EVP_CipherFinal_ex(c, out + len, &n);
	if (fin != 1) {
		/* Nothing of a forged record is ever read. */
		explicit_bzero(out, len);
		return AEAD_AUTH_FAILED;
	}
	return AEAD_OK;
}
