/* A bounded DER reader (X.690 10, the subset X.509 and OCSP use): every
 * length is checked against what remains before anything is read, so no
 * parser indexes a buffer by a length it read from the input. Private to
 * agent/revocation. */
#ifndef MTLS_DER_H
#define MTLS_DER_H

#include <stddef.h>
#include <stdint.h>

#define DER_DEPTH_MAX 24 /* X.509 needs ~8; a bound for hostile nesting */

/* Universal tags, and context-specific ones by number. */
#define DER_BOOLEAN 0x01
#define DER_INTEGER 0x02
#define DER_BIT_STRING 0x03
#define DER_OCTET_STRING 0x04
#define DER_NULL 0x05
#define DER_OID 0x06
#define DER_ENUMERATED 0x0a
#define DER_UTC_TIME 0x17
#define DER_GEN_TIME 0x18
#define DER_SEQUENCE 0x30
#define DER_SET 0x31
#define DER_CTX(n) (0x80 | (n))      /* [n] IMPLICIT, primitive */
#define DER_CTX_CONS(n) (0xa0 | (n)) /* [n] EXPLICIT or constructed */

struct der {
	const uint8_t *p; /* what is left to read */
	size_t len;
	unsigned depth;
};

/* One TLV read: its tag, the whole encoding and its contents. */
struct der_tlv {
	unsigned tag;
	const uint8_t *tlv;
	size_t tlv_len;
	const uint8_t *val;
	size_t len;
};

void der_init(struct der *d, const uint8_t *p, size_t len);
int der_empty(const struct der *d);
/* The next tag, or -1 at the end. */
int der_peek(const struct der *d);
/* Each returns 0, or -1 (malformed, or not the tag asked for). */
int der_next(struct der *d, struct der_tlv *t);
int der_expect(struct der *d, unsigned tag, struct der_tlv *t);
/* 1 and t filled if the next tag is tag, 0 if not (or at the end), -1 if
 * the next TLV is malformed. */
int der_optional(struct der *d, unsigned tag, struct der_tlv *t);
/* A cursor over the contents of the next TLV, which must have tag
 * (constructed); refused past DER_DEPTH_MAX. t may be NULL. */
int der_enter(struct der *d, unsigned tag, struct der *sub,
	      struct der_tlv *t);
/* A cursor over contents already read (an OCTET STRING holding DER). */
int der_sub(const struct der *parent, const struct der_tlv *t,
	    struct der *sub);

/* INTEGER contents (at least one octet). */
int der_integer(struct der *d, struct der_tlv *t);
/* A non-negative INTEGER or ENUMERATED (by tag) that fits in an int,
 * minimally encoded. */
int der_small_uint(struct der *d, unsigned tag, int *v);
int der_oid(struct der *d, struct der_tlv *t);
int der_octets(struct der *d, struct der_tlv *t);
/* BIT STRING with no unused bits (keys, signatures): val/len skip the
 * unused-bits octet. */
int der_bits(struct der *d, struct der_tlv *t);
/* DER BOOLEAN: 0x00 or 0xff only. */
int der_bool(struct der *d, int *v);
int der_null(struct der *d);
/* UTCTime or GeneralizedTime, whichever comes next. */
int der_time(struct der *d, int64_t *t);
/* RFC 5280 4.1.2.5: UTCTime YYMMDDHHMMSSZ (YY < 50 is 20YY) or
 * GeneralizedTime YYYYMMDDHHMMSSZ; seconds and 'Z' required, no fraction.
 * Seconds since 1970 UTC. */
int der_time_parse(unsigned tag, const uint8_t *p, size_t len, int64_t *t);

/* Whether t is an OID with these contents octets. */
int der_oid_is(const struct der_tlv *t, const uint8_t *oid, size_t len);
#define DER_OID_IS(t, o) der_oid_is((t), (o), sizeof(o))

#endif
