/* The object identifiers revocation checking reads, as DER contents
 * octets. Private to agent/revocation. */
#ifndef MTLS_REV_OID_H
#define MTLS_REV_OID_H

#include <stdint.h>

/* 1.2.840.113549.1.1.1, .11, .12, .13 */
static const uint8_t OID_RSA[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 1, 1 };
static const uint8_t OID_RSA_SHA256[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d,
					  1, 1, 11 };
static const uint8_t OID_RSA_SHA384[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d,
					  1, 1, 12 };
static const uint8_t OID_RSA_SHA512[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d,
					  1, 1, 13 };
/* 1.2.840.10045.2.1; 1.2.840.10045.4.3.2, .3, .4 */
static const uint8_t OID_EC[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 2, 1 };
static const uint8_t OID_ECDSA_SHA256[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d,
					    4, 3, 2 };
static const uint8_t OID_ECDSA_SHA384[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d,
					    4, 3, 3 };
static const uint8_t OID_ECDSA_SHA512[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d,
					    4, 3, 4 };
/* 1.3.14.3.2.26; 2.16.840.1.101.3.4.2.1 */
static const uint8_t OID_SHA1[] = { 0x2b, 0x0e, 3, 2, 26 };
static const uint8_t OID_SHA256[] = { 0x60, 0x86, 0x48, 1, 0x65, 3, 4, 2, 1 };

/* Certificate and CRL extensions, 2.5.29.x */
static const uint8_t OID_BASIC_CONSTRAINTS[] = { 0x55, 0x1d, 19 };
static const uint8_t OID_EXT_KEY_USAGE[] = { 0x55, 0x1d, 37 };
static const uint8_t OID_CRL_DP[] = { 0x55, 0x1d, 31 };
static const uint8_t OID_CRL_NUMBER[] = { 0x55, 0x1d, 20 };
static const uint8_t OID_REASON_CODE[] = { 0x55, 0x1d, 21 };
static const uint8_t OID_INVALIDITY_DATE[] = { 0x55, 0x1d, 24 };
static const uint8_t OID_DELTA_CRL[] = { 0x55, 0x1d, 27 };
static const uint8_t OID_IDP[] = { 0x55, 0x1d, 28 };
static const uint8_t OID_CERT_ISSUER[] = { 0x55, 0x1d, 29 };
static const uint8_t OID_AKI[] = { 0x55, 0x1d, 35 };

/* PKIX: 1.3.6.1.5.5.7.1.1 (AIA), .3.9 (OCSPSigning), .48.1 (id-ad-ocsp),
 * .48.1.1 (basic response), .48.1.2 (nonce) */
static const uint8_t OID_AIA[] = { 0x2b, 6, 1, 5, 5, 7, 1, 1 };
static const uint8_t OID_KP_OCSP_SIGNING[] = { 0x2b, 6, 1, 5, 5, 7, 3, 9 };
static const uint8_t OID_AD_OCSP[] = { 0x2b, 6, 1, 5, 5, 7, 48, 1 };
static const uint8_t OID_OCSP_BASIC[] = { 0x2b, 6, 1, 5, 5, 7, 48, 1, 1 };
static const uint8_t OID_OCSP_NONCE[] = { 0x2b, 6, 1, 5, 5, 7, 48, 1, 2 };

#endif
