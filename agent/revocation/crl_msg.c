#include "crl_msg.h"

#include "der.h"
#include "rev_internal.h"
#include "rev_oid.h"

#include <string.h>

/* RFC 5280 5.2.5: IssuingDistributionPoint { distributionPoint [0],
 * onlyContainsUserCerts [1], onlyContainsCACerts [2], onlySomeReasons [3],
 * indirectCRL [4], onlyContainsAttributeCerts [5] }. An indirect CRL
 * lists other issuers' certificates and a partial one not every reason:
 * neither is a full answer for one issuer, so both are unsupported. */
static int ext_idp(struct der *v, struct crl_info *ci)
{
	struct der idp;
	struct der_tlv t;

	if (der_enter(v, DER_SEQUENCE, &idp, NULL) != 0)
		return -1;
	while (!der_empty(&idp)) {
		if (der_next(&idp, &t) != 0)
			return -1;
		switch (t.tag) {
		case DER_CTX_CONS(0):
			break;
		case DER_CTX(1):
		case DER_CTX(2):
		case DER_CTX(4):
		case DER_CTX(5):
			/* IMPLICIT BOOLEAN DEFAULT FALSE: only TRUE is DER. */
			if (t.len != 1 || t.val[0] != 0xff)
				return -1;
			if (t.tag == DER_CTX(4) || t.tag == DER_CTX(5))
				ci->unsupported_critical = 1;
			/* A scope: the caller checks it against the
			 * certificate (RFC 5280 6.3.3 b.2). */
			if (t.tag == DER_CTX(1))
				ci->only_user_certs = 1;
			if (t.tag == DER_CTX(2))
				ci->only_ca_certs = 1;
			break;
		case DER_CTX(3):
			ci->unsupported_critical = 1;
			break;
		default:
			return -1;
		}
	}
	return 0;
}

/* crlExtensions [0] EXPLICIT Extensions (RFC 5280 5.2). */
static int crl_extensions(struct der *tbs, struct crl_info *ci)
{
	struct der w, exts, v;
	struct der_tlv oid, val;
	int crit;

	if (der_enter(tbs, DER_CTX_CONS(0), &w, NULL) != 0 ||
	    der_enter(&w, DER_SEQUENCE, &exts, NULL) != 0 || !der_empty(&w))
		return -1;
	while (!der_empty(&exts)) {
		if (rev_ext_next(&exts, &oid, &crit, &val) != 0 ||
		    der_sub(&exts, &val, &v) != 0)
			return -1;
		if (DER_OID_IS(&oid, OID_DELTA_CRL)) {
			/* BaseCRLNumber: an INTEGER */
			if (der_integer(&v, &val) != 0 || !der_empty(&v))
				return -1;
			ci->delta = 1;
		} else if (DER_OID_IS(&oid, OID_IDP)) {
			if (ext_idp(&v, ci) != 0 || !der_empty(&v))
				return -1;
		} else if (DER_OID_IS(&oid, OID_CRL_NUMBER)) {
			if (der_integer(&v, &val) != 0 || !der_empty(&v))
				return -1;
		} else if (!DER_OID_IS(&oid, OID_AKI) && crit) {
			ci->unsupported_critical = 1;
		}
	}
	return 0;
}

/* crlEntryExtensions (RFC 5280 5.3): reasonCode and invalidityDate are
 * read; certificateIssuer (an indirect CRL's entries name another
 * issuer) and any other critical one are unsupported. */
static int entry_extensions(struct der *ent, struct crl_info *ci, int *reason)
{
	struct der exts, v;
	struct der_tlv oid, val;
	int crit;
	int64_t t;

	if (der_enter(ent, DER_SEQUENCE, &exts, NULL) != 0)
		return -1;
	while (!der_empty(&exts)) {
		if (rev_ext_next(&exts, &oid, &crit, &val) != 0 ||
		    der_sub(&exts, &val, &v) != 0)
			return -1;
		if (DER_OID_IS(&oid, OID_REASON_CODE)) {
			if (rev_reason_read(&v, reason) != 0 || !der_empty(&v))
				return -1;
		} else if (DER_OID_IS(&oid, OID_INVALIDITY_DATE)) {
			if (der_peek(&v) != DER_GEN_TIME || der_time(&v, &t) != 0 ||
			    !der_empty(&v))
				return -1;
		} else if (DER_OID_IS(&oid, OID_CERT_ISSUER) || crit) {
			if (ci != NULL)
				ci->unsupported_critical = 1;
		}
	}
	return 0;
}

/* One revokedCertificates entry: { userCertificate, revocationDate,
 * crlEntryExtensions OPTIONAL }. ci NULL: only read. */
static int entry(struct der *list, struct crl_info *ci, struct der_tlv *serial,
		 int64_t *when, int *reason)
{
	struct der ent;

	*reason = -1;
	if (der_enter(list, DER_SEQUENCE, &ent, NULL) != 0 ||
	    der_integer(&ent, serial) != 0 || der_time(&ent, when) != 0)
		return -1;
	if (!der_empty(&ent) && entry_extensions(&ent, ci, reason) != 0)
		return -1;
	return der_empty(&ent) ? 0 : -1;
}

/* RFC 5280 5.1.2: TBSCertList, in order. */
static int tbs_fields(struct der *tbs, struct crl_info *ci,
		      struct der_tlv *inner_alg)
{
	struct der list;
	struct der_tlv t, oid, serial;
	int v, reason, tag;
	int64_t when;

	if (der_peek(tbs) == DER_INTEGER &&
	    (der_small_uint(tbs, DER_INTEGER, &v) != 0 || v != 1))
		return -1; /* v2 is the only version written */
	if (rev_alg_read(tbs, inner_alg, &oid) != 0 ||
	    der_expect(tbs, DER_SEQUENCE, &t) != 0)
		return -1;
	ci->issuer = rev_span_of(&t, 1);
	if (der_time(tbs, &ci->this_update) != 0)
		return -1;
	tag = der_peek(tbs);
	if ((tag == DER_UTC_TIME || tag == DER_GEN_TIME) &&
	    der_time(tbs, &ci->next_update) != 0)
		return -1;
	if (der_peek(tbs) == DER_SEQUENCE) {
		if (der_enter(tbs, DER_SEQUENCE, &list, &t) != 0)
			return -1;
		ci->revoked = rev_span_of(&t, 0);
		while (!der_empty(&list))
			if (entry(&list, ci, &serial, &when, &reason) != 0)
				return -1;
	}
	if (der_peek(tbs) == DER_CTX_CONS(0) && crl_extensions(tbs, ci) != 0)
		return -1;
	return der_empty(tbs) ? 0 : -1;
}

int crl_parse(const uint8_t *der, size_t len, struct crl_info *ci)
{
	struct der top, cl, tbs;
	struct der_tlv t, inner_alg, alg, oid, sig;

	memset(ci, 0, sizeof(*ci));
	der_init(&top, der, len);
	if (der_enter(&top, DER_SEQUENCE, &cl, &t) != 0 || !der_empty(&top))
		goto bad;
	ci->der = rev_span_of(&t, 1);
	if (der_enter(&cl, DER_SEQUENCE, &tbs, &t) != 0)
		goto bad;
	ci->tbs = rev_span_of(&t, 1);
	if (tbs_fields(&tbs, ci, &inner_alg) != 0)
		goto bad;
	if (rev_alg_read(&cl, &alg, &oid) != 0 || der_bits(&cl, &sig) != 0 ||
	    !der_empty(&cl))
		goto bad;
	/* RFC 5280 5.1.1.2: the same algorithm inside and outside. */
	if (alg.tlv_len != inner_alg.tlv_len ||
	    memcmp(alg.tlv, inner_alg.tlv, alg.tlv_len) != 0)
		goto bad;
	ci->sig_alg = rev_span_of(&alg, 1);
	ci->sig = rev_span_of(&sig, 0);
	return 0;
bad:
	memset(ci, 0, sizeof(*ci));
	return -1;
}

int crl_verify(const struct crl_info *ci, const struct rev_cert *issuer)
{
	if (ci->issuer.len == 0 || ci->issuer.len != issuer->subject.len ||
	    memcmp(ci->issuer.p, issuer->subject.p, ci->issuer.len) != 0)
		return -1;
	return rev_sig_verify(ci->sig_alg, ci->tbs, ci->sig, issuer->spki);
}

int crl_lookup(const struct crl_info *ci, const uint8_t *serial,
	       size_t serial_len, int64_t *revoked_at, int *reason)
{
	struct der list;
	struct der_tlv s;
	int64_t when;
	int why;

	if (serial == NULL || serial_len == 0)
		return -1;
	der_init(&list, ci->revoked.p, ci->revoked.len);
	while (!der_empty(&list)) {
		if (entry(&list, NULL, &s, &when, &why) != 0)
			return -1;
		if (rev_serial_eq(s.val, s.len, serial, serial_len)) {
			*revoked_at = when;
			*reason = why;
			return 1;
		}
	}
	return 0;
}
