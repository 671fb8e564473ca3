#include <wolfssl/options.h>

#include "csr.h"
#include "dn.h"

#include <stdlib.h>
#include <string.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/sha256.h>

#define CSR_DER_MAX 8192

/* AlgorithmIdentifier DER for the two signatures we make. */
static const uint8_t alg_ecdsa_sha256[] = { 0x30, 0x0a, 0x06, 0x08, 0x2a,
					    0x86, 0x48, 0xce, 0x3d, 0x04,
					    0x03, 0x02 };
static const uint8_t alg_rsa_sha256[] = { 0x30, 0x0d, 0x06, 0x09, 0x2a,
					  0x86, 0x48, 0x86, 0xf7, 0x0d,
					  0x01, 0x01, 0x0b, 0x05, 0x00 };

/* A bounded DER writer: every put checks room first. */
struct der {
	uint8_t *p;
	size_t len, cap;
	int overflow;
};

static void der_put(struct der *d, const void *data, size_t n)
{
	if (d->overflow || n > d->cap - d->len) {
		d->overflow = 1;
		return;
	}
	memcpy(d->p + d->len, data, n);
	d->len += n;
}

static void der_put_header(struct der *d, uint8_t tag, size_t n)
{
	uint8_t h[4] = { tag };
	size_t hl;

	if (n < 0x80) {
		h[1] = (uint8_t)n;
		hl = 2;
	} else if (n < 0x100) {
		h[1] = 0x81;
		h[2] = (uint8_t)n;
		hl = 3;
	} else if (n < 0x10000) {
		h[1] = 0x82;
		h[2] = (uint8_t)(n >> 8);
		h[3] = (uint8_t)n;
		hl = 4;
	} else {
		d->overflow = 1;
		return;
	}
	der_put(d, h, hl);
}

static size_t der_header_len(size_t n)
{
	return n < 0x80 ? 2 : n < 0x100 ? 3 : 4;
}

/* The contents of a Name as wolfSSL keeps it in sbjRaw: a run of whole
 * SETs, up to its strlen (5.5.4 reads the raw subject by strlen and adds
 * the SEQUENCE header itself). A NUL inside the Name would have cut it:
 * refused rather than sent short. */
static int raw_name_ok(const uint8_t *p, size_t n)
{
	size_t i = 0;

	if (n == 0)
		return 0;
	while (i < n) {
		size_t len;

		if (p[i] != 0x31 || i + 1 >= n)
			return 0;
		if (p[i + 1] < 0x80) {
			len = p[i + 1];
			i += 2;
		} else if (p[i + 1] == 0x81 && i + 2 < n) {
			len = p[i + 2];
			i += 3;
		} else if (p[i + 1] == 0x82 && i + 3 < n) {
			len = (size_t)p[i + 2] << 8 | p[i + 3];
			i += 4;
		} else {
			return 0;
		}
		if (len > n - i)
			return 0;
		i += len;
	}
	return 1;
}

/* The subject as written (RFC 4514), in its order: wolfSSL's CertName
 * has one field per attribute type and an order of its own, so the Name
 * is encoded here and handed in raw. A renewal takes the certificate's
 * own (wc_SetSubjectRaw copies it from a certificate). */
static mtls_err_t set_subject(Cert *c, const struct csr_request *req,
			      struct mtls_error *err)
{
	uint8_t der[sizeof(c->sbjRaw)];
	size_t len, hl;
	mtls_err_t r;

	memset(c->sbjRaw, 0, sizeof(c->sbjRaw));
	if (req->subject_of_cert != NULL) {
		if (req->subject_of_cert_len > INT32_MAX ||
		    wc_SetSubjectRaw(c, req->subject_of_cert,
				     (int)req->subject_of_cert_len) != 0)
			return mtls_error_set(err, MTLS_ERR_CERT, "the subject of "
					      "the certificate in service cannot "
					      "be read");
		len = strnlen((const char *)c->sbjRaw, sizeof(c->sbjRaw));
		if (len >= sizeof(c->sbjRaw) || !raw_name_ok(c->sbjRaw, len))
			return mtls_error_set(err, MTLS_ERR_CERT, "the subject of "
					      "the certificate in service cannot "
					      "be asked for again (too long, or a "
					      "NUL in it)");
		return MTLS_OK;
	}
	if (req->subject == NULL)
		return mtls_error_set(err, MTLS_ERR_ARG, "no subject");
	r = dn_encode(req->subject, der, sizeof(der), &len, err);
	if (r != MTLS_OK)
		return r;
	hl = der[1] < 0x80 ? 2 : 2 + (der[1] & 0x7f);
	if (len <= hl || len - hl >= sizeof(c->sbjRaw))
		return mtls_error_set(err, MTLS_ERR_ARG, "subject too long");
	memcpy(c->sbjRaw, der + hl, len - hl);
	if (!raw_name_ok(c->sbjRaw, strnlen((const char *)c->sbjRaw,
					    sizeof(c->sbjRaw))) ||
	    strnlen((const char *)c->sbjRaw, sizeof(c->sbjRaw)) != len - hl)
		return mtls_error_set(err, MTLS_ERR_ARG, "subject too long");
	return MTLS_OK;
}

/* GeneralNames for the subjectAltName extension. */
static mtls_err_t set_sans(Cert *c, const struct csr_request *req,
			   struct mtls_error *err)
{
	struct der d = { c->altNames, 0, sizeof(c->altNames), 0 };
	size_t body = 0;

	for (unsigned i = 0; i < req->n_sans; i++) {
		const char *v = strchr(req->sans[i], ':');

		if (v == NULL)
			return mtls_error_set(err, MTLS_ERR_ARG,
					      "SAN '%s': DNS:, URI: or email:",
					      req->sans[i]);
		body += der_header_len(strlen(v + 1)) + strlen(v + 1);
	}
	if (req->n_sans == 0)
		return MTLS_OK;
	der_put_header(&d, 0x30, body);
	for (unsigned i = 0; i < req->n_sans; i++) {
		const char *s = req->sans[i];
		const char *v = strchr(s, ':') + 1;
		uint8_t tag;

		if (strncmp(s, "DNS:", 4) == 0)
			tag = 0x82; /* [2] dNSName */
		else if (strncmp(s, "URI:", 4) == 0)
			tag = 0x86; /* [6] uniformResourceIdentifier */
		else if (strncmp(s, "email:", 6) == 0)
			tag = 0x81; /* [1] rfc822Name */
		else
			return mtls_error_set(err, MTLS_ERR_ARG,
					      "SAN '%s': DNS:, URI: or email:",
					      s);
		der_put_header(&d, tag, strlen(v));
		der_put(&d, v, strlen(v));
	}
	if (d.overflow)
		return mtls_error_set(err, MTLS_ERR_ARG, "SANs too long");
	c->altNamesSz = (int)d.len;
	return MTLS_OK;
}

mtls_err_t csr_make(struct p11_key *key, const struct csr_request *req,
		    char **pem, struct mtls_error *err)
{
	struct p11_pubkey pub;
	Cert c;
	ecc_key ek;
	RsaKey rk;
	int have_ec = 0, have_rsa = 0;
	uint8_t *body = NULL, *csr = NULL, hash[WC_SHA256_DIGEST_SIZE];
	uint8_t sig[P11_SIG_MAX + 16], sig_der[P11_SIG_MAX + 16];
	uint8_t digest_info[64];
	size_t sig_len = P11_SIG_MAX;
	word32 sig_der_len = sizeof(sig_der);
	const uint8_t *alg;
	size_t alg_len, seq_body;
	int body_len, pem_len;
	struct der d;
	mtls_err_t r;

	*pem = NULL;
	r = p11_key_public(key, &pub, err);
	if (r != MTLS_OK)
		return r;
	if (wc_InitCert(&c) != 0)
		return mtls_error_set(err, MTLS_ERR_CRYPTO, "wc_InitCert");
	c.version = 0; /* PKCS#10 v1 */
	r = set_subject(&c, req, err);
	if (r == MTLS_OK)
		r = set_sans(&c, req, err);
	if (r != MTLS_OK)
		return r;
	body = malloc(CSR_DER_MAX);
	csr = malloc(CSR_DER_MAX);
	if (body == NULL || csr == NULL) {
		r = mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
		goto out;
	}

	if (pub.type == P11_KEY_EC) {
		if (wc_ecc_init(&ek) != 0) {
			r = mtls_error_set(err, MTLS_ERR_CRYPTO, "ecc init");
			goto out;
		}
		have_ec = 1;
		if (wc_ecc_import_x963(pub.ec_point, (word32)pub.ec_point_len,
				       &ek) != 0) {
			r = mtls_error_set(err, MTLS_ERR_CRYPTO,
					   "token EC point not importable");
			goto out;
		}
		c.sigType = CTC_SHA256wECDSA;
		body_len = wc_MakeCertReq_ex(&c, body, CSR_DER_MAX, ECC_TYPE, &ek);
		alg = alg_ecdsa_sha256;
		alg_len = sizeof(alg_ecdsa_sha256);
	} else {
		if (wc_InitRsaKey(&rk, NULL) != 0) {
			r = mtls_error_set(err, MTLS_ERR_CRYPTO, "rsa init");
			goto out;
		}
		have_rsa = 1;
		if (wc_RsaPublicKeyDecodeRaw(pub.modulus, (word32)pub.modulus_len,
					     pub.exponent,
					     (word32)pub.exponent_len, &rk) != 0) {
			r = mtls_error_set(err, MTLS_ERR_CRYPTO,
					   "token RSA key not importable");
			goto out;
		}
		c.sigType = CTC_SHA256wRSA;
		body_len = wc_MakeCertReq_ex(&c, body, CSR_DER_MAX, RSA_TYPE, &rk);
		alg = alg_rsa_sha256;
		alg_len = sizeof(alg_rsa_sha256);
	}
	if (body_len <= 0) {
		r = mtls_error_set(err, MTLS_ERR_CRYPTO,
				   "wc_MakeCertReq_ex: %d", body_len);
		goto out;
	}
	if (wc_Sha256Hash(body, (word32)body_len, hash) != 0) {
		r = mtls_error_set(err, MTLS_ERR_CRYPTO, "sha256");
		goto out;
	}
	if (pub.type == P11_KEY_EC) {
		r = p11_key_sign(key, P11_SIGN_ECDSA, P11_HASH_SHA256, hash,
				 sizeof(hash), sig, &sig_len, err);
		if (r != MTLS_OK)
			goto out;
		if (wc_ecc_rs_raw_to_sig(sig, (word32)sig_len / 2,
					 sig + sig_len / 2, (word32)sig_len / 2,
					 sig_der, &sig_der_len) != 0) {
			r = mtls_error_set(err, MTLS_ERR_CRYPTO,
					   "ECDSA signature encoding");
			goto out;
		}
	} else {
		word32 di_len = wc_EncodeSignature(digest_info, hash,
						   sizeof(hash), SHA256h);

		r = p11_key_sign(key, P11_SIGN_RSA_PKCS, P11_HASH_SHA256,
				 digest_info, di_len, sig, &sig_len, err);
		if (r != MTLS_OK)
			goto out;
		memcpy(sig_der, sig, sig_len);
		sig_der_len = (word32)sig_len;
	}

	/* CertificationRequest ::= SEQUENCE { info, algorithm, BIT STRING } */
	seq_body = (size_t)body_len + alg_len +
		   der_header_len(sig_der_len + 1) + sig_der_len + 1;
	d = (struct der){ csr, 0, CSR_DER_MAX, 0 };
	der_put_header(&d, 0x30, seq_body);
	der_put(&d, body, (size_t)body_len);
	der_put(&d, alg, alg_len);
	der_put_header(&d, 0x03, sig_der_len + 1);
	der_put(&d, "", 1); /* no unused bits */
	der_put(&d, sig_der, sig_der_len);
	if (d.overflow) {
		r = mtls_error_set(err, MTLS_ERR_CRYPTO, "CSR too large");
		goto out;
	}
	*pem = malloc(d.len * 2 + 128);
	if (*pem == NULL) {
		r = mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
		goto out;
	}
	pem_len = wc_DerToPem(csr, (word32)d.len, (byte *)*pem,
			      (word32)(d.len * 2 + 127), CERTREQ_TYPE);
	if (pem_len <= 0) {
		free(*pem);
		*pem = NULL;
		r = mtls_error_set(err, MTLS_ERR_CRYPTO, "PEM encoding: %d",
				   pem_len);
		goto out;
	}
	(*pem)[pem_len] = '\0';
	r = MTLS_OK;
out:
	if (have_ec)
		wc_ecc_free(&ek);
	if (have_rsa)
		wc_FreeRsaKey(&rk);
	free(body);
	free(csr);
	return r;
}
