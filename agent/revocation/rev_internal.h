/* Helpers shared by the certificate, OCSP and CRL readers. Private to
 * agent/revocation. */
#ifndef MTLS_REV_INTERNAL_H
#define MTLS_REV_INTERNAL_H

#include "der.h"
#include "rev_cert.h"

/* An AlgorithmIdentifier (RFC 5280 4.1.1.2): SEQUENCE { OID, optional
 * NULL }; anything else in it is refused. 0 or -1; oid filled. */
int rev_alg_read(struct der *d, struct der_tlv *alg, struct der_tlv *oid);

/* One Extension (RFC 5280 4.1): extnID, critical (DEFAULT FALSE: an
 * explicit FALSE is not DER and refused), extnValue's contents. */
int rev_ext_next(struct der *exts, struct der_tlv *oid, int *critical,
		 struct der_tlv *value);

/* Two INTEGER contents denote the same serial (leading 0x00 octets
 * ignored on both sides). */
int rev_serial_eq(const uint8_t *a, size_t alen, const uint8_t *b,
		  size_t blen);

/* A CRLReason (RFC 5280 5.3.1) read from the next ENUMERATED. */
int rev_reason_read(struct der *d, int *reason);

struct rev_span rev_span_of(const struct der_tlv *t, int whole);

#endif
