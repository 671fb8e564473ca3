/* Certificate objects on the token. */
#include <stdlib.h>
#include <string.h>

#include "p11_internal.h"

mtls_err_t p11_certs_read(struct p11_token *t, const char *uri,
			  uint8_t **der, size_t *der_len, unsigned max,
			  unsigned *n, struct mtls_error *err)
{
	char shown[P11_URI_MAX];
	CK_OBJECT_HANDLE h[P11_CERTS_MAX];
	CK_ULONG found = 0;
	CK_ATTRIBUTE *cls;
	struct p11_session s;
	P11KitUri *u;
	mtls_err_t r;
	CK_RV rv = CKR_OK;

	*n = 0;
	if (max > P11_CERTS_MAX)
		max = P11_CERTS_MAX;
	r = p11_uri_parse(uri, &u, err);
	if (r != MTLS_OK)
		return r;
	p11_uri_redact(uri, shown, sizeof(shown));
	cls = p11_kit_uri_get_attribute(u, CKA_CLASS);
	if (cls != NULL && (cls->ulValueLen != sizeof(CK_OBJECT_CLASS) ||
			    *(CK_OBJECT_CLASS *)cls->pValue != CKO_CERTIFICATE)) {
		p11_kit_uri_free(u);
		return mtls_error_set(err, MTLS_ERR_URI,
				      "%s: type= must be cert", shown);
	}
	r = p11_session_get(t, &s, err);
	if (r != MTLS_OK) {
		p11_kit_uri_free(u);
		return r;
	}
	r = p11_find_all(t, s.h, u, shown, CKO_CERTIFICATE, h, max, &found,
			 err);
	for (CK_ULONG i = 0; r == MTLS_OK && i < found; i++) {
		CK_ATTRIBUTE a = { CKA_VALUE, NULL, 0 };

		rv = t->m->fn->C_GetAttributeValue(s.h, h[i], &a, 1);
		if (rv != CKR_OK) {
			r = p11_rv_error(err, rv,
					 "C_GetAttributeValue(CKA_VALUE)",
					 shown);
			break;
		}
		if (a.ulValueLen == 0 || a.ulValueLen > P11_CERT_MAX) {
			r = mtls_error_set(err, MTLS_ERR_CERT,
					   "certificate of %lu bytes (%s)",
					   (unsigned long)a.ulValueLen, shown);
			break;
		}
		a.pValue = malloc(a.ulValueLen);
		if (a.pValue == NULL) {
			r = mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
			break;
		}
		rv = t->m->fn->C_GetAttributeValue(s.h, h[i], &a, 1);
		if (rv != CKR_OK) {
			free(a.pValue);
			r = p11_rv_error(err, rv,
					 "C_GetAttributeValue(CKA_VALUE)",
					 shown);
			break;
		}
		der[*n] = a.pValue;
		der_len[*n] = a.ulValueLen;
		(*n)++;
	}
	p11_session_put(t, &s, rv);
	p11_kit_uri_free(u);
	if (r != MTLS_OK) {
		for (unsigned i = 0; i < *n; i++)
			free(der[i]);
		*n = 0;
	}
	return r;
}

struct create_call {
	CK_ATTRIBUTE *a;
	CK_ULONG n;
};

static CK_RV create_on(struct p11_token *t, CK_SESSION_HANDLE s, void *ctx)
{
	struct create_call *c = ctx;
	CK_OBJECT_HANDLE h;

	return t->m->fn->C_CreateObject(s, c->a, c->n, &h);
}

mtls_err_t p11_cert_store(struct p11_token *t, const uint8_t *der,
			  size_t der_len, const uint8_t *subject,
			  size_t subject_len, const char *label_uri,
			  const uint8_t *id, size_t id_len,
			  struct mtls_error *err)
{
	P11KitUri *u = NULL;
	CK_ATTRIBUTE *label = NULL;
	CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	CK_CERTIFICATE_TYPE ct = CKC_X_509;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE a[8];
	CK_ULONG n = 0;
	struct create_call call;
	mtls_err_t r;

	a[n++] = (CK_ATTRIBUTE){ CKA_CLASS, &cls, sizeof(cls) };
	a[n++] = (CK_ATTRIBUTE){ CKA_CERTIFICATE_TYPE, &ct, sizeof(ct) };
	a[n++] = (CK_ATTRIBUTE){ CKA_TOKEN, &yes, sizeof(yes) };
	a[n++] = (CK_ATTRIBUTE){ CKA_PRIVATE, &no, sizeof(no) };
	a[n++] = (CK_ATTRIBUTE){ CKA_VALUE, (void *)der, der_len };
	a[n++] = (CK_ATTRIBUTE){ CKA_SUBJECT, (void *)subject, subject_len };
	a[n++] = (CK_ATTRIBUTE){ CKA_ID, (void *)id, id_len };
	if (label_uri != NULL) {
		r = p11_uri_parse(label_uri, &u, err);
		if (r != MTLS_OK)
			return r;
		label = p11_kit_uri_get_attribute(u, CKA_LABEL);
		if (label != NULL)
			a[n++] = *label;
	}
	call.a = a;
	call.n = n;
	/* PIV cards (ykcs11) write objects only for their SO. */
	r = p11_token_as_so(t, create_on, &call, "C_CreateObject(certificate)",
			    err);
	p11_kit_uri_free(u);
	return r;
}
