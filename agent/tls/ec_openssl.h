/* P-256 from OpenSSL's libcrypto, whose nistz256 code (x86-64 assembly,
 * constant time) does in microseconds what Debian's wolfSSL 5.5.4 does in
 * generic C (WOLFSSL_SP_MATH_ALL without its P-256 code): a handshake's
 * key share, its ECDH, and the checks of the server's signatures. Like
 * aead_openssl.c, the only file with OpenSSL's headers. Keys are raw:
 * a 32-byte big-endian scalar, an uncompressed point (0x04 || X || Y). */
#ifndef MTLS_EC_OPENSSL_H
#define MTLS_EC_OPENSSL_H

#include <stddef.h>
#include <stdint.h>

#define EC_P256_SCALAR 32
#define EC_P256_POINT 65

/* Builds the group once; 0 on success. */
int ec_openssl_init(void);
void ec_openssl_cleanup(void);

/* A new key pair from OpenSSL's DRBG. 0, or -1 (nothing usable). */
int ec_openssl_p256_keygen(uint8_t priv[EC_P256_SCALAR],
			   uint8_t pub[EC_P256_POINT]);

/* The X coordinate of priv * peer (RFC 8446 7.4.2); the peer's point is
 * checked to be on the curve and not infinity. 0, or -1. */
int ec_openssl_p256_ecdh(const uint8_t priv[EC_P256_SCALAR],
			 const uint8_t *peer, size_t peer_len,
			 uint8_t out[EC_P256_SCALAR]);

/* ECDSA: *ok 1 when sig (DER) is pub's over hash, else 0. -1 when the
 * check could not be made at all (pub not on the curve, no memory). */
int ec_openssl_p256_verify(const uint8_t *pub, size_t pub_len,
			   const uint8_t *hash, size_t hash_len,
			   const uint8_t *sig, size_t sig_len, int *ok);

#endif
