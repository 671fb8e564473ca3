#include <wolfssl/options.h>

#include "identity.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>

#define PEM_FILE_MAX (256 * 1024)

static mtls_err_t read_file(const char *path, uint8_t **buf, size_t *len,
			    size_t max, struct mtls_error *err)
{
	FILE *f = fopen(path, "re");
	size_t n;

	*buf = NULL;
	if (f == NULL)
		return mtls_error_set(err, MTLS_ERR_IO, "%s: %s", path,
				      strerror(errno));
	*buf = malloc(max + 1);
	if (*buf == NULL) {
		fclose(f);
		return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	}
	n = fread(*buf, 1, max + 1, f);
	if (ferror(f) || n > max) {
		fclose(f);
		free(*buf);
		*buf = NULL;
		return mtls_error_set(err, MTLS_ERR_IO, "%s: %s", path,
				      n > max ? "file too large" : "read error");
	}
	fclose(f);
	(*buf)[n] = '\0';
	*len = n;
	return MTLS_OK;
}

mtls_err_t pem_read_certs(const char *path, uint8_t **der, size_t *len,
			  unsigned max, unsigned *n, struct mtls_error *err)
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----";
	static const char end[] = "-----END CERTIFICATE-----";
	uint8_t *buf;
	size_t buf_len;
	const char *p;
	mtls_err_t r;

	*n = 0;
	r = read_file(path, &buf, &buf_len, PEM_FILE_MAX, err);
	if (r != MTLS_OK)
		return r;
	p = (const char *)buf;
	while ((p = strstr(p, begin)) != NULL) {
		const char *e = strstr(p, end);
		int sz;

		if (e == NULL)
			break;
		e += sizeof(end) - 1;
		if (*n >= max) {
			r = mtls_error_set(err, MTLS_ERR_CERT,
					   "%s: more than %u certificates",
					   path, max);
			goto fail;
		}
		der[*n] = malloc((size_t)(e - p));
		if (der[*n] == NULL) {
			r = mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
			goto fail;
		}
		sz = wc_CertPemToDer((const unsigned char *)p, (int)(e - p),
				     der[*n], (int)(e - p), CERT_TYPE);
		if (sz <= 0) {
			free(der[*n]);
			r = mtls_error_set(err, MTLS_ERR_CERT,
					   "%s: certificate %u is not valid "
					   "PEM (%d)", path, *n + 1, sz);
			goto fail;
		}
		len[*n] = (size_t)sz;
		(*n)++;
		p = e;
	}
	free(buf);
	if (*n == 0)
		return mtls_error_set(err, MTLS_ERR_CERT,
				      "%s: no PEM certificate", path);
	return MTLS_OK;
fail:
	while (*n > 0)
		free(der[--(*n)]);
	free(buf);
	return r;
}

/* Does a certificate's public key (SPKI DER) equal the token key's? */
static mtls_err_t spki_matches(struct identity *id, const uint8_t *spki,
			       size_t spki_len, struct mtls_error *err)
{
	struct p11_pubkey pub;
	mtls_err_t r;
	int ok = 0;

	r = p11_key_public(id->key, &pub, err);
	if (r != MTLS_OK)
		return r;
	if (pub.type == P11_KEY_EC) {
		ecc_key k;
		word32 idx = 0;
		uint8_t point[133];
		word32 point_len = sizeof(point);

		if (wc_ecc_init(&k) != 0)
			return mtls_error_set(err, MTLS_ERR_CRYPTO, "ecc init");
		if (wc_EccPublicKeyDecode(spki, &idx, &k, (word32)spki_len) == 0 &&
		    wc_ecc_export_x963(&k, point, &point_len) == 0)
			ok = point_len == pub.ec_point_len &&
			     memcmp(point, pub.ec_point, point_len) == 0;
		wc_ecc_free(&k);
	} else {
		RsaKey k;
		word32 idx = 0;
		uint8_t n[1024], e[8];
		word32 n_len = sizeof(n), e_len = sizeof(e);

		if (wc_InitRsaKey(&k, NULL) != 0)
			return mtls_error_set(err, MTLS_ERR_CRYPTO, "rsa init");
		if (wc_RsaPublicKeyDecode(spki, &idx, &k, (word32)spki_len) == 0 &&
		    wc_RsaFlattenPublicKey(&k, e, &e_len, n, &n_len) == 0)
			ok = n_len == pub.modulus_len &&
			     memcmp(n, pub.modulus, n_len) == 0;
		wc_FreeRsaKey(&k);
	}
	if (!ok)
		return mtls_error_set(err, MTLS_ERR_CERT,
				      "certificate of identity '%s' does not "
				      "belong to key %s", id->name,
				      p11_key_uri(id->key));
	return MTLS_OK;
}

static mtls_err_t cert_spki(const uint8_t *der, size_t len, uint8_t **spki,
			    int *spki_len)
{
	WOLFSSL_X509 *x = wolfSSL_X509_d2i(NULL, der, (int)len);
	int sz = 0;

	*spki = NULL;
	if (x != NULL &&
	    wolfSSL_X509_get_pubkey_buffer(x, NULL, &sz) == WOLFSSL_SUCCESS &&
	    sz > 0 && (*spki = malloc((size_t)sz)) != NULL &&
	    wolfSSL_X509_get_pubkey_buffer(x, *spki, &sz) != WOLFSSL_SUCCESS) {
		free(*spki);
		*spki = NULL;
	}
	*spki_len = sz;
	wolfSSL_X509_free(x);
	return *spki != NULL ? 0 : -1;
}

/* A YubiKey PIV attestation certificate (extensions under Yubico's arc
 * 1.3.6.1.4.1.41482.3: firmware, serial, PIN and touch policy): it
 * certifies that the card made the key, it is no identity. */
static int is_piv_attestation(const uint8_t *der, size_t len)
{
	static const char arc[] = "1.3.6.1.4.1.41482.3.";
	WOLFSSL_X509 *x = wolfSSL_X509_d2i(NULL, der, (int)len);
	int n, found = 0;

	if (x == NULL)
		return 0;
	n = wolfSSL_X509_get_ext_count(x);
	for (int i = 0; i < n && !found; i++) {
		WOLFSSL_X509_EXTENSION *e = wolfSSL_X509_get_ext(x, i);
		WOLFSSL_ASN1_OBJECT *o = e ? wolfSSL_X509_EXTENSION_get_object(e) :
					     NULL;
		char oid[64];

		if (o != NULL &&
		    wolfSSL_OBJ_obj2txt(oid, (int)sizeof(oid), o, 1) > 0)
			found = strncmp(oid, arc, sizeof(arc) - 1) == 0;
	}
	wolfSSL_X509_free(x);
	return found;
}

/* The certificate on the token that the URI names and that belongs to the
 * key. A URI by CKA_ID alone may name several: a PIV card (ykcs11) lists
 * the slot's attestation certificate under the same CKA_ID, for the same
 * public key. */
static mtls_err_t cert_for_key(struct identity *id, const char *uri,
			       struct mtls_error *err)
{
	uint8_t *der[P11_CERTS_MAX];
	size_t len[P11_CERTS_MAX];
	unsigned n, pick = 0, matches = 0;
	mtls_err_t r;

	r = p11_certs_read(id->token, uri, der, len, P11_CERTS_MAX, &n, err);
	if (r != MTLS_OK)
		return r;
	for (unsigned i = 0; n > 1 && i < n; i++) {
		struct mtls_error ignored;
		uint8_t *spki = NULL;
		int spki_len;

		if (!is_piv_attestation(der[i], len[i]) &&
		    cert_spki(der[i], len[i], &spki, &spki_len) == 0 &&
		    spki_matches(id, spki, (size_t)spki_len, &ignored) == MTLS_OK) {
			if (matches++ == 0)
				pick = i;
		}
		free(spki);
	}
	if (n > 1 && matches != 1) {
		r = mtls_error_set(err, matches == 0 ? MTLS_ERR_CERT :
						       MTLS_ERR_AMBIGUOUS,
				   "identity '%s': %u certificates match %s, "
				   "%u of them for its key (attestations "
				   "left out); name one with object=",
				   id->name, n, uri, matches);
		pick = n;
	}
	for (unsigned i = 0; i < n; i++)
		if (i != pick)
			free(der[i]);
	if (r != MTLS_OK)
		return r;
	id->chain_der[0] = der[pick];
	id->chain_len[0] = len[pick];
	id->n_chain = 1;
	return MTLS_OK;
}

mtls_err_t identity_load(const char *name, struct p11_token *token,
			 const char *key_uri, const char *cert,
			 const char *chain, struct identity **out,
			 struct mtls_error *err)
{
	struct identity *id;
	WOLFSSL_X509 *x = NULL;
	WOLFSSL_X509_NAME *subj;
	const WOLFSSL_ASN1_TIME *na;
	int sz;
	mtls_err_t r;

	*out = NULL;
	id = calloc(1, sizeof(*id));
	if (id == NULL)
		return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	snprintf(id->name, sizeof(id->name), "%s", name);
	id->token = token;
	r = p11_key_open(token, key_uri, &id->key, err);
	if (r != MTLS_OK)
		goto fail;
	/* Asked once here: a context built later for this identity keeps to
	 * what the token could do when the identity was loaded. */
	r = p11_key_sign_caps(id->key, &id->caps, err);
	if (r != MTLS_OK)
		goto fail;
	tls_sig_plan_make(p11_key_type(id->key), p11_key_bits(id->key),
			  id->caps.can, &id->plan);

	if (strncmp(cert, "pkcs11:", 7) == 0) {
		r = cert_for_key(id, cert, err);
		if (r != MTLS_OK)
			goto fail;
	} else {
		r = pem_read_certs(cert, id->chain_der, id->chain_len,
				   IDENTITY_CHAIN_MAX, &id->n_chain, err);
		if (r != MTLS_OK)
			goto fail;
	}
	if (chain != NULL) {
		unsigned more = 0;

		r = pem_read_certs(chain, id->chain_der + id->n_chain,
				   id->chain_len + id->n_chain,
				   IDENTITY_CHAIN_MAX - id->n_chain, &more, err);
		if (r != MTLS_OK)
			goto fail;
		id->n_chain += more;
	}

	x = wolfSSL_X509_d2i(NULL, id->chain_der[0], (int)id->chain_len[0]);
	if (x == NULL) {
		r = mtls_error_set(err, MTLS_ERR_CERT,
				   "identity '%s': certificate is not X.509",
				   name);
		goto fail;
	}
	sz = 0;
	if (wolfSSL_X509_get_pubkey_buffer(x, NULL, &sz) != WOLFSSL_SUCCESS ||
	    sz <= 0 || (id->spki = malloc((size_t)sz)) == NULL ||
	    wolfSSL_X509_get_pubkey_buffer(x, id->spki, &sz) != WOLFSSL_SUCCESS) {
		r = mtls_error_set(err, MTLS_ERR_CERT,
				   "identity '%s': no public key in certificate",
				   name);
		goto fail;
	}
	id->spki_len = (size_t)sz;
	subj = wolfSSL_X509_get_subject_name(x);
	if (subj != NULL)
		wolfSSL_X509_NAME_oneline(subj, id->subject,
					  (int)sizeof(id->subject));
	na = wolfSSL_X509_get_notAfter(x);
	if (na != NULL) {
		struct tm tm;

		if (wolfSSL_ASN1_TIME_to_tm(na, &tm) == WOLFSSL_SUCCESS)
			id->not_after = (long)timegm(&tm);
	}
	na = wolfSSL_X509_get_notBefore(x);
	if (na != NULL) {
		struct tm tm;

		if (wolfSSL_ASN1_TIME_to_tm(na, &tm) == WOLFSSL_SUCCESS)
			id->not_before = (long)timegm(&tm);
	}
	{
		WOLFSSL_X509_NAME *iss = wolfSSL_X509_get_issuer_name(x);

		if (iss != NULL)
			wolfSSL_X509_NAME_oneline(iss, id->issuer,
						  (int)sizeof(id->issuer));
	}
	r = spki_matches(id, id->spki, id->spki_len, err);
	if (r != MTLS_OK)
		goto fail;
	wolfSSL_X509_free(x);
	*out = id;
	return MTLS_OK;
fail:
	wolfSSL_X509_free(x);
	identity_free(id);
	return r;
}

const char *identity_who(const struct identity *id, char *buf, size_t len)
{
	snprintf(buf, len, "identity '%s' on token %s", id->name,
		 p11_token_uri(id->token));
	return buf;
}

void identity_free(struct identity *id)
{
	if (id == NULL)
		return;
	p11_key_close(id->key);
	for (unsigned i = 0; i < id->n_chain; i++)
		free(id->chain_der[i]);
	free(id->spki);
	free(id);
}
