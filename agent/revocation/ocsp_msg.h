/* OCSP (RFC 6960) messages: one request for one certificate, and the
 * check of a response against it. Nothing here does I/O or reads the
 * clock: the time is an argument. */
#ifndef MTLS_OCSP_MSG_H
#define MTLS_OCSP_MSG_H

#include "rev_cert.h"

#define OCSP_NONCE_LEN 16
#define OCSP_REQUEST_MAX 512

/* CertID with SHA-1 (RFC 6960 4.1.1; what responders index by). */
struct ocsp_certid {
	uint8_t name_hash[20]; /* SHA-1 of the issuer's subject Name TLV */
	uint8_t key_hash[20];  /* SHA-1 of the issuer's subjectPublicKey */
	uint8_t serial[REV_SERIAL_MAX];
	size_t serial_len;     /* INTEGER contents, as in the certificate */
};

/* 0, or -1 if the serial is too long. */
int ocsp_certid_make(const struct rev_cert *leaf, const struct rev_cert *issuer,
		     struct ocsp_certid *id);

/* A DER OCSPRequest for id, with an id-pkix-ocsp-nonce extension holding
 * nonce (an OCTET STRING of nonce_len bytes) when nonce is not NULL.
 * Returns its length, or -1 if out_max is too small. */
int ocsp_request_encode(const struct ocsp_certid *id, const uint8_t *nonce,
			size_t nonce_len, uint8_t *out, size_t out_max);

enum ocsp_cert_status { OCSP_STATUS_GOOD, OCSP_STATUS_REVOKED,
			OCSP_STATUS_UNKNOWN };

enum ocsp_check {
	OCSP_CHECK_OK = 0,
	OCSP_CHECK_PARSE,     /* not an OCSPResponse, or trailing bytes */
	OCSP_CHECK_STATUS,    /* responseStatus other than successful */
	OCSP_CHECK_NO_MATCH,  /* no SingleResponse for this CertID */
	OCSP_CHECK_SIGNATURE, /* signature does not verify with the signer */
	OCSP_CHECK_RESPONDER, /* signer is neither the issuer nor a
				 certificate the issuer gave id-kp-OCSPSigning,
				 valid at now */
	OCSP_CHECK_NONCE,     /* a nonce in the response differs from ours */
	OCSP_CHECK_TIME,      /* thisUpdate after now (+5 min skew), or
				 nextUpdate before thisUpdate */
};

struct ocsp_answer {
	enum ocsp_cert_status status;
	int64_t produced_at;
	int64_t this_update;
	int64_t next_update; /* 0: absent */
	int64_t revoked_at;  /* when status is REVOKED */
	int reason;          /* CRLReason, -1 if absent */
	int nonce_echoed;    /* the response carried our nonce */
};

/* Checks a DER OCSPResponse for id, issued for issuer's certificates:
 * structure, responseStatus, the SingleResponse whose CertID is id (hash
 * algorithm SHA-1 or SHA-256 with the hashes recomputed from issuer),
 * the signature over tbsResponseData by the issuer's key or by a
 * certificate in the response that issuer issued, that carries
 * id-kp-OCSPSigning and is valid at now; the nonce if nonce != NULL and
 * the response has one. Fills a on OCSP_CHECK_OK. Freshness against
 * nextUpdate is the caller's. */
enum ocsp_check ocsp_response_check(const uint8_t *der, size_t len,
				    const struct ocsp_certid *id,
				    const struct rev_cert *issuer,
				    const uint8_t *nonce, size_t nonce_len,
				    int64_t now, struct ocsp_answer *a);

const char *ocsp_check_str(enum ocsp_check c);

#endif
