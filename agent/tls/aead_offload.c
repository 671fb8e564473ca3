#include "aead_offload.h"

#include <stdatomic.h>
#include <string.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/cryptocb.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include "aead_openssl.h"
#include "ec_offload.h"


/* wc_CryptoInfo's layout has its unions only when wolfSSL was built with
 * anonymous aggregates (C11, as Debian's build is, and this one). */
_Static_assert(HAVE_ANONYMOUS_INLINE_AGGREGATES,
	       "wc_CryptoInfo layout differs from libwolfssl's");

static int registered;
static atomic_int enabled = 1;
static atomic_ulong ops;

static int map(enum aead_result r)
{
	switch (r) {
	case AEAD_OK:
		atomic_fetch_add_explicit(&ops, 1, memory_order_relaxed);
		return 0;
	case AEAD_AUTH_FAILED:
		return AES_GCM_AUTH_E;
	case AEAD_UNSUPPORTED:
		return CRYPTOCB_UNAVAILABLE; /* wolfSSL does it in C */
	default:
		return BAD_STATE_E;
	}
}

static int device(int devId, wc_CryptoInfo *info, void *ctx)
{
	uint8_t tag[16];
	enum aead_result r;

	(void)devId;
	(void)ctx;
	if (info->algo_type == WC_ALGO_TYPE_PK)
		return ec_offload_pk(info);
	if (info->algo_type != WC_ALGO_TYPE_CIPHER ||
	    info->cipher.type != WC_CIPHER_AES_GCM)
		return CRYPTOCB_UNAVAILABLE;
	if (info->cipher.enc) {
		const Aes *aes = info->cipher.aesgcm_enc.aes;

		r = aead_openssl_gcm(1, (const uint8_t *)aes->devKey,
				     (size_t)aes->keylen,
				     info->cipher.aesgcm_enc.iv,
				     info->cipher.aesgcm_enc.ivSz,
				     info->cipher.aesgcm_enc.authIn,
				     info->cipher.aesgcm_enc.authInSz,
				     info->cipher.aesgcm_enc.in,
				     info->cipher.aesgcm_enc.out,
				     info->cipher.aesgcm_enc.sz,
				     info->cipher.aesgcm_enc.authTag,
				     info->cipher.aesgcm_enc.authTagSz);
		return map(r);
	}
	{
		const Aes *aes = info->cipher.aesgcm_dec.aes;

		if (info->cipher.aesgcm_dec.authTagSz > sizeof(tag))
			return CRYPTOCB_UNAVAILABLE;
		memcpy(tag, info->cipher.aesgcm_dec.authTag,
		       info->cipher.aesgcm_dec.authTagSz);
		r = aead_openssl_gcm(0, (const uint8_t *)aes->devKey,
				     (size_t)aes->keylen,
				     info->cipher.aesgcm_dec.iv,
				     info->cipher.aesgcm_dec.ivSz,
				     info->cipher.aesgcm_dec.authIn,
				     info->cipher.aesgcm_dec.authInSz,
				     info->cipher.aesgcm_dec.in,
				     info->cipher.aesgcm_dec.out,
				     info->cipher.aesgcm_dec.sz, tag,
				     info->cipher.aesgcm_dec.authTagSz);
		return map(r);
	}
}

int aead_offload_init(void)
{
	if (registered)
		return 0;
	if (aead_openssl_init() != 0)
		return -1;
	if (ec_offload_init() != 0 ||
	    wc_CryptoCb_RegisterDevice(AEAD_OFFLOAD_DEVID, device, NULL) != 0) {
		ec_offload_cleanup();
		aead_openssl_cleanup();
		return -1;
	}
	registered = 1;
	return 0;
}

void aead_offload_cleanup(void)
{
	if (!registered)
		return;
	wc_CryptoCb_UnRegisterDevice(AEAD_OFFLOAD_DEVID);
	ec_offload_cleanup();
	aead_openssl_cleanup();
	registered = 0;
}

void aead_offload_enable(int on)
{
	atomic_store(&enabled, on);
}

unsigned long aead_offload_ops(void)
{
	return atomic_load(&ops);
}

int aead_offload_wanted(void)
{
	return atomic_load(&enabled);
}

int aead_offload_enabled(void)
{
	return registered && atomic_load(&enabled);
}

int aead_offload_attach(WOLFSSL *ssl)
{
	if (!aead_offload_enabled())
		return 0;
	return wolfSSL_SetDevId(ssl, AEAD_OFFLOAD_DEVID) == WOLFSSL_SUCCESS ? 0 : -1;
}
