/* Certificate objects on the token. */
#include <stdlib.h>
#include <string.h>

#include "p11_internal.h"

mtls_err_t p11_cert_read(struct p11_token *t, const char *uri, uint8_t **der,
			 size_t *der_len, struct mtls_error *err)
{
	char shown[P11_URI_MAX];
	CK_ATTRIBUTE a = { CKA_VALUE, NULL, 0 };
	CK_ATTRIBUTE *cls;
	struct p11_session s;
	CK_OBJECT_HANDLE h;
	P11KitUri *u;
	mtls_err_t r;
	CK_RV rv = CKR_OK;

	*der = NULL;
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
	r = p11_find_one(t, s.h, u, shown, CKO_CERTIFICATE, &h, err);
	if (r != MTLS_OK)
		goto out;
	rv = t->m->fn->C_GetAttributeValue(s.h, h, &a, 1);
	if (rv != CKR_OK) {
		r = p11_rv_error(err, rv, "C_GetAttributeValue(CKA_VALUE)",
				 shown);
		goto out;
	}
	if (a.ulValueLen == 0 || a.ulValueLen > P11_CERT_MAX) {
		r = mtls_error_set(err, MTLS_ERR_CERT,
				   "certificate of %lu bytes (%s)",
				   (unsigned long)a.ulValueLen, shown);
		goto out;
	}
	a.pValue = malloc(a.ulValueLen);
	if (a.pValue == NULL) {
		r = mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
		goto out;
	}
	rv = t->m->fn->C_GetAttributeValue(s.h, h, &a, 1);
	if (rv != CKR_OK) {
		free(a.pValue);
		r = p11_rv_error(err, rv, "C_GetAttributeValue(CKA_VALUE)",
				 shown);
		goto out;
	}
	*der = a.pValue;
	*der_len = a.ulValueLen;
out:
	p11_session_put(t, &s, rv);
	p11_kit_uri_free(u);
	return r;
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
	CK_OBJECT_HANDLE h;
	struct p11_session s;
	mtls_err_t r;
	CK_RV rv;

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
	r = p11_session_get(t, &s, err);
	if (r != MTLS_OK) {
		p11_kit_uri_free(u);
		return r;
	}
	rv = t->m->fn->C_CreateObject(s.h, a, n, &h);
	p11_session_put(t, &s, rv);
	p11_kit_uri_free(u);
	if (rv != CKR_OK)
		return p11_rv_error(err, rv, "C_CreateObject(certificate)",
				    t->uri);
	return MTLS_OK;
}
