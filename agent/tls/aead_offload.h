/* The bulk AES-GCM of every TLS connection through OpenSSL's libcrypto
 * (aead_openssl.c), by way of a wolfSSL crypto callback device: the
 * device does AES-GCM, hands P-256 key exchange and signature checks to
 * ec_offload.c, and answers CRYPTOCB_UNAVAILABLE to everything else
 * (hashes, other curves, RSA, the RNG stay wolfSSL's own). The token's
 * signatures do not go through it: they are PK callbacks. */
#ifndef MTLS_AEAD_OFFLOAD_H
#define MTLS_AEAD_OFFLOAD_H

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

/* "maeo"; any id but INVALID_DEVID and the key's (tls.c). */
#define AEAD_OFFLOAD_DEVID 0x6d61656f

/* After wolfSSL_Init (it registers the device). 0: available. */
int aead_offload_init(void);
void aead_offload_cleanup(void);

/* Whether new connections use it ([agent] bulk_crypto = openssl, the
 * default) or wolfSSL's portable C (bulk_crypto = wolfssl). */
void aead_offload_enable(int on);
/* The switch; and whether it is on and the device is there. */
int aead_offload_wanted(void);
int aead_offload_enabled(void);

/* AES-GCM operations the device did (records sealed and opened). */
unsigned long aead_offload_ops(void);

/* Puts a new connection on the device when enabled; 0 on success. */
int aead_offload_attach(WOLFSSL *ssl);

#endif
