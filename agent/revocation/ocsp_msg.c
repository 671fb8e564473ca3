#include <wolfssl/options.h>

#include "ocsp_msg.h"

#include "der.h"
#include "rev_internal.h"
#include "rev_oid.h"

#include <string.h>
#include <wolfssl/wolfcrypt/hash.h>

#define OCSP_SKEW 300      /* seconds a responder's clock may run ahead */
#define OCSP_CERTS_MAX 8   /* certificates in a response we look at */
#define OCSP_NONCE_MAX 32  /* RFC 8954 2.1: 1 to 32 octets */

int ocsp_certid_make(const struct rev_cert *leaf, const struct rev_cert *issuer,
		     struct ocsp_certid *id)
{
	memset(id, 0, sizeof(*id));
	if (leaf->serial.len == 0 || leaf->serial.len > REV_SERIAL_MAX)
		return -1;
	/* RFC 6960 4.1.1: the hash of the issuer's DER Name and of the value
	 * of its subjectPublicKey BIT STRING (without tag, length and the
	 * unused-bits octet). */
	if (wc_ShaHash(issuer->subject.p, (word32)issuer->subject.len,
		       id->name_hash) != 0 ||
	    wc_ShaHash(issuer->key.p, (word32)issuer->key.len,
		       id->key_hash) != 0)
		return -1;
	memcpy(id->serial, leaf->serial.p, leaf->serial.len);
	id->serial_len = leaf->serial.len;
	return 0;
}

/* A DER writer that fills its buffer from the end backwards, so each
 * TLV's length is known when its header is written. */
struct wr {
	uint8_t *buf;
	size_t pos; /* first byte written */
	int err;
};

static void put(struct wr *w, const void *p, size_t n)
{
	if (w->err || n > w->pos) {
		w->err = 1;
		return;
	}
	w->pos -= n;
	memcpy(w->buf + w->pos, p, n);
}

/* The header of a TLV whose contents are everything after mark. */
static void put_hdr(struct wr *w, uint8_t tag, size_t mark)
{
	size_t n = mark - w->pos;
	uint8_t h[4];
	size_t hl;

	if (w->err || n > 0xffff) {
		w->err = 1;
		return;
	}
	if (n < 0x80) {
		h[0] = tag;
		h[1] = (uint8_t)n;
		hl = 2;
	} else if (n <= 0xff) {
		h[0] = tag;
		h[1] = 0x81;
		h[2] = (uint8_t)n;
		hl = 3;
	} else {
		h[0] = tag;
		h[1] = 0x82;
		h[2] = (uint8_t)(n >> 8);
		h[3] = (uint8_t)n;
		hl = 4;
	}
	put(w, h, hl);
}

static void put_tlv(struct wr *w, uint8_t tag, const void *p, size_t n)
{
	size_t mark = w->pos;

	put(w, p, n);
	put_hdr(w, tag, mark);
}

/* requestExtensions [2] EXPLICIT Extensions { Extension { id-pkix-ocsp-
 * nonce, extnValue OCTET STRING { OCTET STRING nonce } } } (RFC 6960
 * 4.4.1, RFC 8954 2.1). */
static void put_nonce(struct wr *w, const uint8_t *nonce, size_t len)
{
	size_t m_exts = w->pos, m_ext, m_val;

	m_ext = w->pos;
	m_val = w->pos;
	put_tlv(w, DER_OCTET_STRING, nonce, len);
	put_hdr(w, DER_OCTET_STRING, m_val);
	put_tlv(w, DER_OID, OID_OCSP_NONCE, sizeof(OID_OCSP_NONCE));
	put_hdr(w, DER_SEQUENCE, m_ext);
	put_hdr(w, DER_SEQUENCE, m_exts);
	put_hdr(w, DER_CTX_CONS(2), m_exts);
}

/* CertID { AlgorithmIdentifier { sha1, NULL }, issuerNameHash,
 * issuerKeyHash, serialNumber } (RFC 6960 4.1.1). */
static void put_certid(struct wr *w, const struct ocsp_certid *id)
{
	static const uint8_t null[2] = { DER_NULL, 0 };
	size_t m_id = w->pos, m_alg;

	put_tlv(w, DER_INTEGER, id->serial, id->serial_len);
	put_tlv(w, DER_OCTET_STRING, id->key_hash, sizeof(id->key_hash));
	put_tlv(w, DER_OCTET_STRING, id->name_hash, sizeof(id->name_hash));
	m_alg = w->pos;
	put(w, null, sizeof(null));
	put_tlv(w, DER_OID, OID_SHA1, sizeof(OID_SHA1));
	put_hdr(w, DER_SEQUENCE, m_alg);
	put_hdr(w, DER_SEQUENCE, m_id);
}

int ocsp_request_encode(const struct ocsp_certid *id, const uint8_t *nonce,
			size_t nonce_len, uint8_t *out, size_t out_max)
{
	struct wr w = { out, out_max, 0 };
	size_t end = out_max, m_tbs, m_list, len;

	if (out == NULL || id->serial_len == 0 || id->serial_len > REV_SERIAL_MAX)
		return -1;
	if (nonce != NULL && (nonce_len == 0 || nonce_len > OCSP_NONCE_MAX))
		return -1;
	/* OCSPRequest { TBSRequest { requestList { Request { CertID } },
	 * requestExtensions } }: version v1 is DEFAULT and so absent. */
	m_tbs = w.pos;
	if (nonce != NULL)
		put_nonce(&w, nonce, nonce_len);
	m_list = w.pos;
	put_certid(&w, id);
	put_hdr(&w, DER_SEQUENCE, m_list);  /* Request */
	put_hdr(&w, DER_SEQUENCE, m_list);  /* requestList */
	put_hdr(&w, DER_SEQUENCE, m_tbs);   /* TBSRequest */
	put_hdr(&w, DER_SEQUENCE, end);     /* OCSPRequest */
	if (w.err)
		return -1;
	len = end - w.pos;
	memmove(out, out + w.pos, len);
	return (int)len;
}

/* What a BasicOCSPResponse holds, as spans into the response. */
struct basic {
	struct der_tlv tbs;     /* ResponseData TLV: what is signed */
	struct der_tlv sig_alg;
	struct der_tlv sig;
	struct der responses;   /* SEQUENCE OF SingleResponse contents */
	struct der_tlv exts;    /* responseExtensions' Extensions, or len 0 */
	struct der certs;       /* SEQUENCE OF Certificate contents, or empty */
	int64_t produced_at;
};

/* RFC 6960 4.2.1: ResponseData { version [0] EXPLICIT DEFAULT v1,
 * responderID, producedAt, responses, responseExtensions [1] EXPLICIT }. */
static int response_data(struct der *bd, struct basic *b)
{
	struct der rd, ver, ext;
	struct der_tlv t;
	int v, r;

	if (der_enter(bd, DER_SEQUENCE, &rd, &b->tbs) != 0)
		return -1;
	if (der_peek(&rd) == DER_CTX_CONS(0) &&
	    (der_enter(&rd, DER_CTX_CONS(0), &ver, NULL) != 0 ||
	     der_small_uint(&ver, DER_INTEGER, &v) != 0 || v != 0 ||
	     !der_empty(&ver)))
		return -1;
	/* ResponderID: byName [1] Name or byKey [2] KeyHash. The signer is
	 * found by its key below, so the identifier is only checked for form. */
	if (der_expect(&rd, DER_CTX_CONS(1), &t) != 0 &&
	    der_expect(&rd, DER_CTX_CONS(2), &t) != 0)
		return -1;
	if (der_peek(&rd) != DER_GEN_TIME || der_time(&rd, &b->produced_at) != 0)
		return -1;
	if (der_enter(&rd, DER_SEQUENCE, &b->responses, NULL) != 0)
		return -1;
	memset(&b->exts, 0, sizeof(b->exts));
	r = der_optional(&rd, DER_CTX_CONS(1), &t);
	if (r < 0)
		return -1;
	if (r == 1 && (der_sub(&rd, &t, &ext) != 0 ||
		       der_expect(&ext, DER_SEQUENCE, &b->exts) != 0 ||
		       !der_empty(&ext)))
		return -1;
	return der_empty(&rd) ? 0 : -1;
}

/* OCSPResponse { responseStatus, responseBytes [0] EXPLICIT { responseType,
 * response OCTET STRING { BasicOCSPResponse { tbsResponseData,
 * signatureAlgorithm, signature, certs [0] EXPLICIT SEQUENCE OF
 * Certificate } } } } (RFC 6960 4.2.1). */
static enum ocsp_check response_parse(const uint8_t *der, size_t len,
				      struct basic *b)
{
	struct der top, resp, rbw, rb, basic_der, bd, certs_w;
	struct der_tlv type, octets, oid;
	int status, r;

	der_init(&top, der, len);
	if (der_enter(&top, DER_SEQUENCE, &resp, NULL) != 0 || !der_empty(&top))
		return OCSP_CHECK_PARSE;
	if (der_small_uint(&resp, DER_ENUMERATED, &status) != 0)
		return OCSP_CHECK_PARSE;
	if (status != 0) /* successful(0); the others carry no responseBytes */
		return der_empty(&resp) ? OCSP_CHECK_STATUS : OCSP_CHECK_PARSE;
	if (der_enter(&resp, DER_CTX_CONS(0), &rbw, NULL) != 0 ||
	    !der_empty(&resp) ||
	    der_enter(&rbw, DER_SEQUENCE, &rb, NULL) != 0 || !der_empty(&rbw) ||
	    der_oid(&rb, &type) != 0 || der_octets(&rb, &octets) != 0 ||
	    !der_empty(&rb))
		return OCSP_CHECK_PARSE;
	if (!DER_OID_IS(&type, OID_OCSP_BASIC))
		return OCSP_CHECK_PARSE;
	if (der_sub(&rb, &octets, &basic_der) != 0 ||
	    der_enter(&basic_der, DER_SEQUENCE, &bd, NULL) != 0 ||
	    !der_empty(&basic_der))
		return OCSP_CHECK_PARSE;
	if (response_data(&bd, b) != 0 ||
	    rev_alg_read(&bd, &b->sig_alg, &oid) != 0 ||
	    der_bits(&bd, &b->sig) != 0)
		return OCSP_CHECK_PARSE;
	der_init(&b->certs, NULL, 0);
	r = der_peek(&bd) == DER_CTX_CONS(0) ?
		    (der_enter(&bd, DER_CTX_CONS(0), &certs_w, NULL) != 0 ||
		     der_enter(&certs_w, DER_SEQUENCE, &b->certs, NULL) != 0 ||
		     !der_empty(&certs_w)) :
		    0;
	if (r != 0 || !der_empty(&bd))
		return OCSP_CHECK_PARSE;
	return OCSP_CHECK_OK;
}

static int span_eq(struct rev_span a, struct rev_span b)
{
	return a.len == b.len && a.len != 0 && memcmp(a.p, b.p, a.len) == 0;
}

/* RFC 6960 4.2.2.2: the issuer itself signed, or a certificate in the
 * response that the issuer issued, with id-kp-OCSPSigning, valid now.
 * Only keys whose signature verifies are judged; any other signer (a
 * sibling without the EKU, another CA's certificate, a self-signed one)
 * ends as RESPONDER, no verifying key at all as SIGNATURE. */
static enum ocsp_check responder(const struct basic *b,
				 const struct rev_cert *issuer, int64_t now)
{
	struct rev_span alg = rev_span_of(&b->sig_alg, 1);
	struct rev_span tbs = rev_span_of(&b->tbs, 1);
	struct rev_span sig = rev_span_of(&b->sig, 0);
	enum ocsp_check verdict = OCSP_CHECK_SIGNATURE;
	struct der certs = b->certs;
	struct der_tlv t;
	struct rev_cert rc;

	if (rev_sig_verify(alg, tbs, sig, issuer->spki) == 0)
		return OCSP_CHECK_OK;
	for (unsigned i = 0; i < OCSP_CERTS_MAX && !der_empty(&certs); i++) {
		if (der_expect(&certs, DER_SEQUENCE, &t) != 0)
			return OCSP_CHECK_PARSE;
		if (rev_cert_parse(t.tlv, t.tlv_len, &rc) != 0)
			continue;
		/* The issuer's own certificate, included: its key was tried. */
		if (span_eq(rc.spki, issuer->spki))
			continue;
		if (rev_sig_verify(alg, tbs, sig, rc.spki) != 0)
			continue;
		if (rev_cert_issued_by(&rc, issuer) == 0 && rc.eku_ocsp_signing &&
		    rc.not_before <= now && now <= rc.not_after)
			return OCSP_CHECK_OK;
		verdict = OCSP_CHECK_RESPONDER;
	}
	return verdict;
}

/* CertID { hashAlgorithm, issuerNameHash, issuerKeyHash, serialNumber }
 * names our certificate: SHA-1 compared with id, SHA-256 recomputed. */
static int certid_matches(struct der *cid, const struct ocsp_certid *id,
			  const struct rev_cert *issuer)
{
	struct der_tlv alg, oid, nh, kh, serial;
	uint8_t name256[32], key256[32];
	const uint8_t *want_n, *want_k;
	size_t hl;

	if (rev_alg_read(cid, &alg, &oid) != 0 || der_octets(cid, &nh) != 0 ||
	    der_octets(cid, &kh) != 0 || der_integer(cid, &serial) != 0 ||
	    !der_empty(cid))
		return -1;
	if (DER_OID_IS(&oid, OID_SHA1)) {
		want_n = id->name_hash;
		want_k = id->key_hash;
		hl = 20;
	} else if (DER_OID_IS(&oid, OID_SHA256)) {
		if (wc_Sha256Hash(issuer->subject.p, (word32)issuer->subject.len,
				  name256) != 0 ||
		    wc_Sha256Hash(issuer->key.p, (word32)issuer->key.len,
				  key256) != 0)
			return 0;
		want_n = name256;
		want_k = key256;
		hl = 32;
	} else {
		return 0; /* a hash we do not compute: not ours */
	}
	return nh.len == hl && kh.len == hl && memcmp(nh.val, want_n, hl) == 0 &&
	       memcmp(kh.val, want_k, hl) == 0 &&
	       rev_serial_eq(serial.val, serial.len, id->serial, id->serial_len);
}

/* CertStatus: good [0] IMPLICIT NULL, revoked [1] IMPLICIT RevokedInfo {
 * revocationTime, revocationReason [0] EXPLICIT CRLReason }, unknown [2]
 * IMPLICIT NULL (RFC 6960 4.2.1). */
static int cert_status(struct der *sr, struct ocsp_answer *a)
{
	struct der ri, rw;
	struct der_tlv t;

	a->reason = -1;
	a->revoked_at = 0;
	switch (der_peek(sr)) {
	case DER_CTX(0):
	case DER_CTX(2):
		if (der_next(sr, &t) != 0 || t.len != 0)
			return -1;
		a->status = t.tag == DER_CTX(0) ? OCSP_STATUS_GOOD :
						  OCSP_STATUS_UNKNOWN;
		return 0;
	case DER_CTX_CONS(1):
		if (der_enter(sr, DER_CTX_CONS(1), &ri, NULL) != 0 ||
		    der_peek(&ri) != DER_GEN_TIME ||
		    der_time(&ri, &a->revoked_at) != 0)
			return -1;
		if (der_peek(&ri) == DER_CTX_CONS(0) &&
		    (der_enter(&ri, DER_CTX_CONS(0), &rw, NULL) != 0 ||
		     rev_reason_read(&rw, &a->reason) != 0 || !der_empty(&rw)))
			return -1;
		a->status = OCSP_STATUS_REVOKED;
		return der_empty(&ri) ? 0 : -1;
	default:
		return -1;
	}
}

/* SingleResponse { certID, certStatus, thisUpdate, nextUpdate [0]
 * EXPLICIT, singleExtensions [1] EXPLICIT }. 1 if it is for id (a
 * filled), 0 if for another certificate, -1 if malformed. */
static int single_response(struct der *list, const struct ocsp_certid *id,
			   const struct rev_cert *issuer, struct ocsp_answer *a)
{
	struct der sr, cid, nu;
	struct der_tlv t;
	int m;

	if (der_enter(list, DER_SEQUENCE, &sr, NULL) != 0 ||
	    der_enter(&sr, DER_SEQUENCE, &cid, NULL) != 0)
		return -1;
	m = certid_matches(&cid, id, issuer);
	if (m < 0 || cert_status(&sr, a) != 0 || der_peek(&sr) != DER_GEN_TIME ||
	    der_time(&sr, &a->this_update) != 0)
		return -1;
	a->next_update = 0;
	if (der_peek(&sr) == DER_CTX_CONS(0) &&
	    (der_enter(&sr, DER_CTX_CONS(0), &nu, NULL) != 0 ||
	     der_peek(&nu) != DER_GEN_TIME || der_time(&nu, &a->next_update) != 0 ||
	     !der_empty(&nu)))
		return -1;
	if (der_optional(&sr, DER_CTX_CONS(1), &t) < 0 || !der_empty(&sr))
		return -1;
	return m;
}

/* RFC 8954 2.1 says the nonce extension's value is an OCTET STRING of
 * the nonce; some responders echo the bare octets instead. Either is
 * taken as ours if it equals ours. The extensions are read for form even
 * when we sent no nonce. 1 echoed, 0 absent or not asked, -1 differs,
 * -2 malformed. */
static int nonce_check(const struct der_tlv *exts_tlv, const struct der *parent,
		       const uint8_t *nonce, size_t nonce_len)
{
	struct der exts, v;
	struct der_tlv oid, val, inner;
	int crit, r = 0;

	if (exts_tlv->tlv == NULL)
		return 0;
	if (der_sub(parent, exts_tlv, &exts) != 0)
		return -2;
	while (!der_empty(&exts)) {
		if (rev_ext_next(&exts, &oid, &crit, &val) != 0)
			return -2;
		if (!DER_OID_IS(&oid, OID_OCSP_NONCE) || nonce == NULL || r != 0)
			continue;
		r = -1;
		if (val.len == nonce_len && memcmp(val.val, nonce, nonce_len) == 0)
			r = 1;
		if (der_sub(&exts, &val, &v) == 0 &&
		    der_expect(&v, DER_OCTET_STRING, &inner) == 0 &&
		    der_empty(&v) && inner.len == nonce_len &&
		    memcmp(inner.val, nonce, nonce_len) == 0)
			r = 1;
	}
	return r;
}

enum ocsp_check ocsp_response_check(const uint8_t *der, size_t len,
				    const struct ocsp_certid *id,
				    const struct rev_cert *issuer,
				    const uint8_t *nonce, size_t nonce_len,
				    int64_t now, struct ocsp_answer *out)
{
	struct basic b;
	struct ocsp_answer a, found;
	struct der list, top;
	enum ocsp_check r;
	int m, matched = 0, n;

	memset(&found, 0, sizeof(found));
	if (der == NULL || id == NULL || issuer == NULL || out == NULL)
		return OCSP_CHECK_PARSE;
	r = response_parse(der, len, &b);
	if (r != OCSP_CHECK_OK)
		return r;
	/* Every SingleResponse is read, so a malformed one anywhere is a
	 * parse error whatever the order; the first for id is the answer. */
	list = b.responses;
	while (!der_empty(&list)) {
		memset(&a, 0, sizeof(a));
		m = single_response(&list, id, issuer, &a);
		if (m < 0)
			return OCSP_CHECK_PARSE;
		if (m == 1 && !matched) {
			found = a;
			matched = 1;
		}
	}
	der_init(&top, der, len);
	n = nonce_check(&b.exts, &top, nonce, nonce_len);
	if (n == -2)
		return OCSP_CHECK_PARSE;
	/* The signature first: nothing else in the response is believed
	 * before it verifies (RFC 6960 3.2). */
	r = responder(&b, issuer, now);
	if (r != OCSP_CHECK_OK)
		return r;
	if (!matched)
		return OCSP_CHECK_NO_MATCH;
	if (n < 0)
		return OCSP_CHECK_NONCE;
	if (found.this_update > now + OCSP_SKEW ||
	    (found.next_update != 0 && found.next_update < found.this_update))
		return OCSP_CHECK_TIME;
	found.produced_at = b.produced_at;
	found.nonce_echoed = n == 1;
	*out = found;
	return OCSP_CHECK_OK;
}

const char *ocsp_check_str(enum ocsp_check c)
{
	switch (c) {
	case OCSP_CHECK_OK:
		return "ok";
	case OCSP_CHECK_PARSE:
		return "not a well-formed OCSP response";
	case OCSP_CHECK_STATUS:
		return "OCSP responseStatus is not successful";
	case OCSP_CHECK_NO_MATCH:
		return "no OCSP SingleResponse for this certificate";
	case OCSP_CHECK_SIGNATURE:
		return "OCSP response signature does not verify";
	case OCSP_CHECK_RESPONDER:
		return "OCSP response signed by an unauthorised responder";
	case OCSP_CHECK_NONCE:
		return "OCSP nonce differs from the request's";
	case OCSP_CHECK_TIME:
		return "OCSP thisUpdate in the future or after nextUpdate";
	}
	return "unknown OCSP check result";
}
