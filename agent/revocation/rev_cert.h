/* What revocation checking needs of an X.509 certificate, read with a
 * bounded DER cursor (der.c), and signatures checked with wolfSSL's
 * public-key code. The certificates come from a server's chain (already
 * verified by the handshake) or from an OCSP response (not verified:
 * ocsp_msg.c checks them). Every pointer points into the caller's buffer. */
#ifndef MTLS_REV_CERT_H
#define MTLS_REV_CERT_H

#include <stddef.h>
#include <stdint.h>

#define REV_URLS_MAX 4
#define REV_URL_MAX 512
#define REV_SERIAL_MAX 32 /* RFC 5280 4.1.2.2: at most 20 octets */

struct rev_span {
	const uint8_t *p;
	size_t len;
};

struct rev_cert {
	struct rev_span der;     /* the whole Certificate TLV */
	struct rev_span tbs;     /* TBSCertificate TLV (what is signed) */
	struct rev_span serial;  /* INTEGER contents (may start with 0x00) */
	struct rev_span issuer;  /* Name TLV */
	struct rev_span subject; /* Name TLV */
	struct rev_span spki;    /* SubjectPublicKeyInfo TLV */
	struct rev_span key;     /* subjectPublicKey BIT STRING, without the
				    unused-bits octet (what RFC 6960 hashes) */
	struct rev_span sig_alg; /* signatureAlgorithm TLV */
	struct rev_span sig;     /* signature BIT STRING, without that octet */
	int64_t not_before, not_after; /* seconds since 1970, UTC */
	int is_ca;               /* basicConstraints cA */
	int eku_ocsp_signing;    /* extKeyUsage has id-kp-OCSPSigning */
	/* AIA id-ad-ocsp accessLocation URIs, CDP distributionPoint fullName
	 * URIs, as written (any scheme: the caller decides), NUL-terminated;
	 * a URI longer than REV_URL_MAX-1 or with bytes outside printable
	 * ASCII is skipped. */
	char ocsp_urls[REV_URLS_MAX][REV_URL_MAX];
	unsigned n_ocsp;
	char crl_urls[REV_URLS_MAX][REV_URL_MAX];
	unsigned n_crl;
};

/* Parses a DER certificate. 0, or -1 if it is not one (trailing bytes
 * after the Certificate are refused; an unknown critical extension is not:
 * the handshake judged the certificate, this only reads it). */
int rev_cert_parse(const uint8_t *der, size_t len, struct rev_cert *c);

/* 0 if sig is a valid signature over data by the key in spki with the
 * algorithm in alg (an AlgorithmIdentifier TLV): sha256/384/512 with RSA
 * PKCS#1 v1.5, ECDSA with SHA-256/384/512 (P-256, P-384, P-521); -1
 * otherwise, including any other algorithm. */
int rev_sig_verify(struct rev_span alg, struct rev_span data,
		   struct rev_span sig, struct rev_span spki);

/* 0 if issuer issued child: child's issuer Name equals issuer's subject
 * Name byte for byte and child's signature verifies with issuer's key;
 * -1 otherwise. */
int rev_cert_issued_by(const struct rev_cert *child,
		       const struct rev_cert *issuer);

/* A PEM block with the given label ("X509 CRL", "CERTIFICATE") at the
 * start of buf (after whitespace) decoded into out (malloc'd). DER given
 * as is is copied. 0 or -1. */
int rev_pem_or_der(const uint8_t *buf, size_t len, const char *label,
		   uint8_t **out, size_t *out_len);

#endif
