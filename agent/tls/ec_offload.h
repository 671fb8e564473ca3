/* The P-256 work of a handshake, answered for the crypto callback device
 * (aead_offload.c) by OpenSSL's libcrypto (ec_openssl.c): the key share's
 * key pair, its ECDH, and ECDSA checks (the server's CertificateVerify,
 * the signatures along its chain). Other curves, RSA and everything else
 * stay wolfSSL's (CRYPTOCB_UNAVAILABLE). */
#ifndef MTLS_EC_OFFLOAD_H
#define MTLS_EC_OFFLOAD_H

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/cryptocb.h>

int ec_offload_init(void);
void ec_offload_cleanup(void);

/* A WC_ALGO_TYPE_PK request: 0 done, CRYPTOCB_UNAVAILABLE for wolfSSL to
 * do, or a wolfCrypt error (an invalid peer point: never done in C then). */
int ec_offload_pk(wc_CryptoInfo *info);

enum ec_offload_op { EC_OFF_KEYGEN, EC_OFF_ECDH, EC_OFF_VERIFY, EC_OFF__N };

/* Operations done here, by kind. */
unsigned long ec_offload_ops(enum ec_offload_op op);

#endif
