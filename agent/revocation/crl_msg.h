/* X.509 CRLs (RFC 5280 5): structure, signature, and whether a serial is
 * listed. No I/O, no clock. */
#ifndef MTLS_CRL_MSG_H
#define MTLS_CRL_MSG_H

#include "rev_cert.h"

struct crl_info {
	struct rev_span der;
	struct rev_span tbs;
	struct rev_span sig_alg;
	struct rev_span sig;
	struct rev_span issuer;   /* Name TLV */
	struct rev_span revoked;  /* revokedCertificates SEQUENCE contents,
				     or empty */
	int64_t this_update;
	int64_t next_update;      /* 0: absent */
	int delta;                /* a deltaCRLIndicator: not a full CRL */
	int only_user_certs;      /* IDP: covers end-entity certificates */
	int only_ca_certs;        /* IDP: covers CA certificates only */
	int unsupported_critical; /* a critical CRL or entry extension
				     this code does not understand (an
				     indirect CRL's certificateIssuer...) */
};

/* 0, or -1 if der is not one CRL (trailing bytes refused). */
int crl_parse(const uint8_t *der, size_t len, struct crl_info *ci);

/* 0 if issuer signed the CRL (its subject Name equals the CRL's issuer,
 * byte for byte, and the signature verifies); -1 otherwise. */
int crl_verify(const struct crl_info *ci, const struct rev_cert *issuer);

/* 1 if serial is listed (revocation time and CRLReason, -1 if absent,
 * filled), 0 if not, -1 if the list is malformed. */
int crl_lookup(const struct crl_info *ci, const uint8_t *serial,
	       size_t serial_len, int64_t *revoked_at, int *reason);

#endif
