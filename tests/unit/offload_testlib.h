/* What the crypto callback device's tests share (test_aead_offload.c,
 * test_ec_offload.c): wolfSSL and the device up, an RNG. */
#ifndef MTLS_OFFLOAD_TESTLIB_H
#define MTLS_OFFLOAD_TESTLIB_H

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/random.h>

#include "aead_offload.h"

static WC_RNG rng;

static int setup(void **state)
{
	(void)state;
	if (wolfSSL_Init() != WOLFSSL_SUCCESS || wc_InitRng(&rng) != 0)
		return -1;
	return aead_offload_init();
}

static int teardown(void **state)
{
	(void)state;
	aead_offload_cleanup();
	wc_FreeRng(&rng);
	wolfSSL_Cleanup();
	return 0;
}

#endif
