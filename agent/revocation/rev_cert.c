#include <wolfssl/options.h>

#include "rev_cert.h"

#include "der.h"
#include "rev_internal.h"
#include "rev_oid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/signature.h>

#define REV_PEM_MAX (1u << 20) /* a CRL of ~30,000 entries */
/* Signers of revocation answers: RSA of 2048 bits or more (NIST SP
 * 800-131A), ECDSA on the NIST curves the contract names only (Debian's
 * wolfSSL also knows Brainpool and secp256k1). */
#define REV_MIN_RSA_BYTES 256

struct rev_span rev_span_of(const struct der_tlv *t, int whole)
{
	struct rev_span s;

	s.p = whole ? t->tlv : t->val;
	s.len = whole ? t->tlv_len : t->len;
	return s;
}

int rev_alg_read(struct der *d, struct der_tlv *alg, struct der_tlv *oid)
{
	struct der a;

	if (der_enter(d, DER_SEQUENCE, &a, alg) != 0 || der_oid(&a, oid) != 0)
		return -1;
	if (!der_empty(&a) && der_null(&a) != 0)
		return -1;
	return der_empty(&a) ? 0 : -1;
}

int rev_ext_next(struct der *exts, struct der_tlv *oid, int *critical,
		 struct der_tlv *value)
{
	struct der e;

	*critical = 0;
	if (der_enter(exts, DER_SEQUENCE, &e, NULL) != 0 ||
	    der_oid(&e, oid) != 0)
		return -1;
	/* An explicit FALSE is not DER, but some CAs wrote it and the
	 * handshake has accepted the certificate: read, not judged. */
	if (der_peek(&e) == DER_BOOLEAN && der_bool(&e, critical) != 0)
		return -1;
	if (der_octets(&e, value) != 0 || !der_empty(&e))
		return -1;
	return 0;
}

int rev_serial_eq(const uint8_t *a, size_t alen, const uint8_t *b,
		  size_t blen)
{
	while (alen > 1 && a[0] == 0) {
		a++;
		alen--;
	}
	while (blen > 1 && b[0] == 0) {
		b++;
		blen--;
	}
	return alen == blen && memcmp(a, b, alen) == 0;
}

int rev_reason_read(struct der *d, int *reason)
{
	/* 0..10, 7 unused; 8 (removeFromCRL) only in delta CRLs. */
	if (der_small_uint(d, DER_ENUMERATED, reason) != 0 || *reason > 10 ||
	    *reason == 7)
		return -1;
	return 0;
}

/* A URI GeneralName ([6] IA5String) kept if it fits and is printable. */
static void keep_uri(const struct der_tlv *gn, char urls[][REV_URL_MAX],
		     unsigned *n)
{
	if (gn->tag != DER_CTX(6) || *n >= REV_URLS_MAX ||
	    gn->len == 0 || gn->len >= REV_URL_MAX)
		return;
	for (size_t i = 0; i < gn->len; i++)
		if (gn->val[i] < 0x21 || gn->val[i] > 0x7e)
			return;
	memcpy(urls[*n], gn->val, gn->len);
	urls[*n][gn->len] = '\0';
	(*n)++;
}

/* RFC 5280 4.2.1.9: SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLen }. */
static int ext_basic_constraints(struct der *v, struct rev_cert *c)
{
	struct der bc;
	int pathlen;

	if (der_enter(v, DER_SEQUENCE, &bc, NULL) != 0)
		return -1;
	if (der_peek(&bc) == DER_BOOLEAN && der_bool(&bc, &c->is_ca) != 0)
		return -1;
	if (!der_empty(&bc) && der_small_uint(&bc, DER_INTEGER, &pathlen) != 0)
		return -1;
	return der_empty(&bc) ? 0 : -1;
}

/* RFC 5280 4.2.1.12: SEQUENCE SIZE (1..MAX) OF KeyPurposeId. */
static int ext_eku(struct der *v, struct rev_cert *c)
{
	struct der seq;
	struct der_tlv oid;

	if (der_enter(v, DER_SEQUENCE, &seq, NULL) != 0 || der_empty(&seq))
		return -1;
	while (!der_empty(&seq)) {
		if (der_oid(&seq, &oid) != 0)
			return -1;
		if (DER_OID_IS(&oid, OID_KP_OCSP_SIGNING))
			c->eku_ocsp_signing = 1;
	}
	return 0;
}

/* RFC 5280 4.2.2.1: SEQUENCE OF { accessMethod, accessLocation }. */
static int ext_aia(struct der *v, struct rev_cert *c)
{
	struct der seq, ad;
	struct der_tlv oid, gn;

	if (der_enter(v, DER_SEQUENCE, &seq, NULL) != 0)
		return -1;
	while (!der_empty(&seq)) {
		if (der_enter(&seq, DER_SEQUENCE, &ad, NULL) != 0 ||
		    der_oid(&ad, &oid) != 0 || der_next(&ad, &gn) != 0 ||
		    !der_empty(&ad))
			return -1;
		if (DER_OID_IS(&oid, OID_AD_OCSP))
			keep_uri(&gn, c->ocsp_urls, &c->n_ocsp);
	}
	return 0;
}

/* RFC 5280 4.2.1.13: SEQUENCE OF DistributionPoint { distributionPoint
 * [0] (a CHOICE, so explicit) { fullName [0] GeneralNames | [1] }, reasons
 * [1], cRLIssuer [2] }. Only fullName URIs are kept. */
static int ext_cdp(struct der *v, struct rev_cert *c)
{
	struct der seq, dp, dpn, names;
	struct der_tlv t, gn;
	int r;

	if (der_enter(v, DER_SEQUENCE, &seq, NULL) != 0)
		return -1;
	while (!der_empty(&seq)) {
		if (der_enter(&seq, DER_SEQUENCE, &dp, NULL) != 0)
			return -1;
		if (der_peek(&dp) == DER_CTX_CONS(0)) {
			if (der_enter(&dp, DER_CTX_CONS(0), &dpn, NULL) != 0)
				return -1;
			r = der_optional(&dpn, DER_CTX_CONS(0), &t);
			if (r < 0)
				return -1;
			if (r == 1) {
				if (der_sub(&dpn, &t, &names) != 0)
					return -1;
				while (!der_empty(&names)) {
					if (der_next(&names, &gn) != 0)
						return -1;
					keep_uri(&gn, c->crl_urls, &c->n_crl);
				}
			}
		}
		/* reasons and cRLIssuer: read past, well formed. */
		while (!der_empty(&dp))
			if (der_next(&dp, &t) != 0)
				return -1;
	}
	return 0;
}

#define SEEN_BC 1u
#define SEEN_EKU 2u
#define SEEN_AIA 4u
#define SEEN_CDP 8u

/* RFC 5280 4.2: a certificate must not hold an extension twice; a second
 * extKeyUsage could otherwise add a purpose a reader of the first missed. */
static int ext_once(unsigned *seen, unsigned bit)
{
	if (*seen & bit)
		return -1;
	*seen |= bit;
	return 0;
}

static int extensions(struct der *tbs, struct rev_cert *c)
{
	struct der outer, exts, v;
	struct der_tlv oid, val;
	unsigned seen = 0;
	int crit, r = 0;

	if (der_enter(tbs, DER_CTX_CONS(3), &outer, NULL) != 0 ||
	    der_enter(&outer, DER_SEQUENCE, &exts, NULL) != 0 ||
	    !der_empty(&outer) || der_empty(&exts))
		return -1;
	while (!der_empty(&exts) && r == 0) {
		if (rev_ext_next(&exts, &oid, &crit, &val) != 0 ||
		    der_sub(&exts, &val, &v) != 0)
			return -1;
		if (DER_OID_IS(&oid, OID_BASIC_CONSTRAINTS))
			r = ext_once(&seen, SEEN_BC) != 0 ? -1 :
							ext_basic_constraints(&v, c);
		else if (DER_OID_IS(&oid, OID_EXT_KEY_USAGE))
			r = ext_once(&seen, SEEN_EKU) != 0 ? -1 :
							ext_eku(&v, c);
		else if (DER_OID_IS(&oid, OID_AIA))
			r = ext_once(&seen, SEEN_AIA) != 0 ? -1 :
							ext_aia(&v, c);
		else if (DER_OID_IS(&oid, OID_CRL_DP))
			r = ext_once(&seen, SEEN_CDP) != 0 ? -1 :
							ext_cdp(&v, c);
		else
			continue;
		if (r == 0 && !der_empty(&v))
			r = -1;
	}
	return r;
}

/* SubjectPublicKeyInfo: SEQUENCE { AlgorithmIdentifier, BIT STRING }.
 * The algorithm's parameters (a curve OID) are left to wolfSSL. */
static int spki(struct der *tbs, struct rev_cert *c)
{
	struct der s, alg;
	struct der_tlv t, oid, key;

	if (der_enter(tbs, DER_SEQUENCE, &s, &t) != 0 ||
	    der_enter(&s, DER_SEQUENCE, &alg, NULL) != 0 ||
	    der_oid(&alg, &oid) != 0 || der_bits(&s, &key) != 0 ||
	    !der_empty(&s))
		return -1;
	c->spki = rev_span_of(&t, 1);
	c->key = rev_span_of(&key, 0);
	return 0;
}

/* RFC 5280 4.1.2: TBSCertificate, in order. */
static int tbs_fields(struct der *tbs, struct rev_cert *c,
		      struct der_tlv *inner_alg)
{
	struct der ver, val;
	struct der_tlv t, oid;
	int v = 0;

	if (der_peek(tbs) == DER_CTX_CONS(0)) {
		if (der_enter(tbs, DER_CTX_CONS(0), &ver, NULL) != 0 ||
		    der_small_uint(&ver, DER_INTEGER, &v) != 0 ||
		    !der_empty(&ver) || v > 2)
			return -1;
	}
	/* A serial longer than REV_SERIAL_MAX is read; ocsp_certid_make
	 * refuses it. */
	if (der_integer(tbs, &t) != 0)
		return -1;
	c->serial = rev_span_of(&t, 0);
	if (rev_alg_read(tbs, inner_alg, &oid) != 0)
		return -1;
	if (der_expect(tbs, DER_SEQUENCE, &t) != 0)
		return -1;
	c->issuer = rev_span_of(&t, 1);
	if (der_enter(tbs, DER_SEQUENCE, &val, NULL) != 0 ||
	    der_time(&val, &c->not_before) != 0 ||
	    der_time(&val, &c->not_after) != 0 || !der_empty(&val))
		return -1;
	if (der_expect(tbs, DER_SEQUENCE, &t) != 0)
		return -1;
	c->subject = rev_span_of(&t, 1);
	if (spki(tbs, c) != 0)
		return -1;
	/* issuerUniqueID [1], subjectUniqueID [2]: IMPLICIT BIT STRING. */
	if (der_optional(tbs, DER_CTX(1), &t) < 0 ||
	    der_optional(tbs, DER_CTX(2), &t) < 0)
		return -1;
	if (der_peek(tbs) == DER_CTX_CONS(3) && extensions(tbs, c) != 0)
		return -1;
	return der_empty(tbs) ? 0 : -1;
}

int rev_cert_parse(const uint8_t *der, size_t len, struct rev_cert *c)
{
	struct der top, cert, tbs;
	struct der_tlv t, inner_alg, alg, oid, sig;

	memset(c, 0, sizeof(*c));
	der_init(&top, der, len);
	if (der_enter(&top, DER_SEQUENCE, &cert, &t) != 0 || !der_empty(&top))
		goto bad;
	c->der = rev_span_of(&t, 1);
	if (der_enter(&cert, DER_SEQUENCE, &tbs, &t) != 0)
		goto bad;
	c->tbs = rev_span_of(&t, 1);
	if (tbs_fields(&tbs, c, &inner_alg) != 0)
		goto bad;
	if (rev_alg_read(&cert, &alg, &oid) != 0 || der_bits(&cert, &sig) != 0 ||
	    !der_empty(&cert))
		goto bad;
	/* RFC 5280 4.1.1.2: the signed and the outer algorithm are the same. */
	if (alg.tlv_len != inner_alg.tlv_len ||
	    memcmp(alg.tlv, inner_alg.tlv, alg.tlv_len) != 0)
		goto bad;
	c->sig_alg = rev_span_of(&alg, 1);
	c->sig = rev_span_of(&sig, 0);
	return 0;
bad:
	memset(c, 0, sizeof(*c));
	return -1;
}

/* The hash and key type a signature AlgorithmIdentifier names. */
static int sig_alg(struct rev_span alg, enum wc_HashType *h, int *ecc)
{
	struct der d;
	struct der_tlv a, oid;

	der_init(&d, alg.p, alg.len);
	if (rev_alg_read(&d, &a, &oid) != 0 || !der_empty(&d))
		return -1;
	*ecc = 0;
	if (DER_OID_IS(&oid, OID_RSA_SHA256))
		*h = WC_HASH_TYPE_SHA256;
	else if (DER_OID_IS(&oid, OID_RSA_SHA384))
		*h = WC_HASH_TYPE_SHA384;
	else if (DER_OID_IS(&oid, OID_RSA_SHA512))
		*h = WC_HASH_TYPE_SHA512;
	else {
		*ecc = 1;
		if (DER_OID_IS(&oid, OID_ECDSA_SHA256))
			*h = WC_HASH_TYPE_SHA256;
		else if (DER_OID_IS(&oid, OID_ECDSA_SHA384))
			*h = WC_HASH_TYPE_SHA384;
		else if (DER_OID_IS(&oid, OID_ECDSA_SHA512))
			*h = WC_HASH_TYPE_SHA512;
		else
			return -1;
	}
	/* RFC 5758 3.2: ECDSA's identifiers have no parameters at all. */
	if (*ecc && a.len != oid.tlv_len)
		return -1;
	return 0;
}

/* The key algorithm an SPKI holds: 0 RSA, 1 EC, -1 other. */
static int spki_kind(struct rev_span spki)
{
	struct der d, s, alg;
	struct der_tlv oid;

	der_init(&d, spki.p, spki.len);
	if (der_enter(&d, DER_SEQUENCE, &s, NULL) != 0 ||
	    der_enter(&s, DER_SEQUENCE, &alg, NULL) != 0 ||
	    der_oid(&alg, &oid) != 0)
		return -1;
	if (DER_OID_IS(&oid, OID_RSA))
		return 0;
	if (DER_OID_IS(&oid, OID_EC))
		return 1;
	return -1;
}

static int verify_rsa(enum wc_HashType h, struct rev_span data,
		      struct rev_span sig, struct rev_span spki)
{
	RsaKey k;
	word32 idx = 0;
	int r = -1;

	if (wc_InitRsaKey(&k, NULL) != 0)
		return -1;
	if (wc_RsaPublicKeyDecode(spki.p, &idx, &k, (word32)spki.len) != 0 ||
	    idx != spki.len || wc_RsaEncryptSize(&k) < REV_MIN_RSA_BYTES)
		goto out;
	if (wc_SignatureVerify(h, WC_SIGNATURE_TYPE_RSA_W_ENC, data.p,
			       (word32)data.len, sig.p, (word32)sig.len, &k,
			       sizeof(k)) == 0)
		r = 0;
out:
	wc_FreeRsaKey(&k);
	return r;
}

static int verify_ecc(enum wc_HashType h, struct rev_span data,
		      struct rev_span sig, struct rev_span spki)
{
	ecc_key k;
	word32 idx = 0;
	int r = -1;

	if (wc_ecc_init(&k) != 0)
		return -1;
	if (wc_EccPublicKeyDecode(spki.p, &idx, &k, (word32)spki.len) != 0 ||
	    idx != spki.len || k.dp == NULL ||
	    (k.dp->id != ECC_SECP256R1 && k.dp->id != ECC_SECP384R1 &&
	     k.dp->id != ECC_SECP521R1))
		goto out;
	if (wc_SignatureVerify(h, WC_SIGNATURE_TYPE_ECC, data.p,
			       (word32)data.len, sig.p, (word32)sig.len, &k,
			       sizeof(k)) == 0)
		r = 0;
out:
	wc_ecc_free(&k);
	return r;
}

int rev_sig_verify(struct rev_span alg, struct rev_span data,
		   struct rev_span sig, struct rev_span spki)
{
	enum wc_HashType h;
	int ecc;

	if (data.p == NULL || data.len == 0 || data.len > UINT32_MAX ||
	    sig.p == NULL || sig.len == 0 || sig.len > UINT32_MAX ||
	    spki.p == NULL || spki.len == 0 || spki.len > UINT32_MAX)
		return -1;
	if (sig_alg(alg, &h, &ecc) != 0 || spki_kind(spki) != ecc)
		return -1;
	return ecc ? verify_ecc(h, data, sig, spki) :
		     verify_rsa(h, data, sig, spki);
}

int rev_cert_issued_by(const struct rev_cert *child,
		       const struct rev_cert *issuer)
{
	if (child->issuer.len == 0 || child->issuer.len != issuer->subject.len ||
	    memcmp(child->issuer.p, issuer->subject.p, child->issuer.len) != 0)
		return -1;
	return rev_sig_verify(child->sig_alg, child->tbs, child->sig,
			      issuer->spki);
}

static const uint8_t *find(const uint8_t *p, size_t len, const char *s)
{
	size_t n = strlen(s);

	for (size_t i = 0; n <= len && i <= len - n; i++)
		if (memcmp(p + i, s, n) == 0)
			return p + i;
	return NULL;
}

static int is_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* RFC 7468: "-----BEGIN label-----", base64 lines, "-----END label-----". */
static int pem_decode(const uint8_t *p, size_t len, const char *label,
		      uint8_t **out, size_t *out_len)
{
	char begin[64], end[64];
	const uint8_t *b, *e;
	uint8_t *text = NULL, *bin = NULL;
	size_t n = 0;
	word32 bin_len;
	int r = -1;

	if (strlen(label) > 40)
		return -1;
	snprintf(begin, sizeof(begin), "-----BEGIN %s-----", label);
	snprintf(end, sizeof(end), "-----END %s-----", label);
	if (len < strlen(begin) || memcmp(p, begin, strlen(begin)) != 0)
		return -1;
	b = p + strlen(begin);
	e = find(b, len - (size_t)(b - p), end);
	if (e == NULL || (size_t)(e - b) > REV_PEM_MAX)
		return -1;
	text = malloc((size_t)(e - b) + 1);
	if (text == NULL)
		goto out;
	/* Only base64 letters go to the decoder; white space is dropped. */
	for (const uint8_t *q = b; q < e; q++)
		if (!is_space(*q))
			text[n++] = *q;
	if (n == 0 || n % 4 != 0)
		goto out;
	bin_len = (word32)(n / 4 * 3);
	bin = malloc(bin_len);
	if (bin == NULL || Base64_Decode(text, (word32)n, bin, &bin_len) != 0 ||
	    bin_len == 0)
		goto out;
	*out = bin;
	*out_len = bin_len;
	bin = NULL;
	r = 0;
out:
	free(bin);
	free(text);
	return r;
}

int rev_pem_or_der(const uint8_t *buf, size_t len, const char *label,
		   uint8_t **out, size_t *out_len)
{
	size_t i = 0;

	*out = NULL;
	*out_len = 0;
	if (buf == NULL || len == 0)
		return -1;
	if (buf[0] == DER_SEQUENCE) {
		*out = malloc(len);
		if (*out == NULL)
			return -1;
		memcpy(*out, buf, len);
		*out_len = len;
		return 0;
	}
	while (i < len && is_space(buf[i]))
		i++;
	return pem_decode(buf + i, len - i, label, out, out_len);
}
