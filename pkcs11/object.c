/* Object lookup: exactly one object of a class matching a URI. */
#include <string.h>

#include "p11_internal.h"

#define FIND_MAX 4

mtls_err_t p11_find_one(struct p11_token *t, CK_SESSION_HANDLE s,
			P11KitUri *uri, const char *uri_text,
			CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE *out,
			struct mtls_error *err)
{
	CK_ATTRIBUTE tmpl[3];
	CK_ULONG n_tmpl = 0, n_found = 0;
	CK_OBJECT_HANDLE found[FIND_MAX];
	CK_ATTRIBUTE *a;
	CK_RV rv, rv2;

	tmpl[n_tmpl++] = (CK_ATTRIBUTE){ CKA_CLASS, &cls, sizeof(cls) };
	a = p11_kit_uri_get_attribute(uri, CKA_LABEL);
	if (a != NULL)
		tmpl[n_tmpl++] = *a;
	a = p11_kit_uri_get_attribute(uri, CKA_ID);
	if (a != NULL)
		tmpl[n_tmpl++] = *a;
	if (n_tmpl == 1)
		return mtls_error_set(err, MTLS_ERR_URI,
				      "%s names no object (object= or id=)",
				      uri_text);

	rv = t->m->fn->C_FindObjectsInit(s, tmpl, n_tmpl);
	if (rv != CKR_OK)
		return p11_rv_error(err, rv, "C_FindObjectsInit", uri_text);
	rv = t->m->fn->C_FindObjects(s, found, FIND_MAX, &n_found);
	rv2 = t->m->fn->C_FindObjectsFinal(s);
	if (rv != CKR_OK)
		return p11_rv_error(err, rv, "C_FindObjects", uri_text);
	if (rv2 != CKR_OK)
		return p11_rv_error(err, rv2, "C_FindObjectsFinal", uri_text);
	if (n_found == 0)
		return mtls_error_set(err, cls == CKO_CERTIFICATE ?
					   MTLS_ERR_CERT_NOT_FOUND :
					   MTLS_ERR_KEY_NOT_FOUND,
				      "no %s matches %s",
				      cls == CKO_CERTIFICATE ? "certificate" :
				      cls == CKO_PUBLIC_KEY  ? "public key" :
							       "private key",
				      uri_text);
	if (n_found > 1)
		return mtls_error_set(err, MTLS_ERR_AMBIGUOUS,
				      "%lu objects match %s; add id=",
				      (unsigned long)n_found, uri_text);
	*out = found[0];
	return MTLS_OK;
}

mtls_err_t p11_objects_destroy(struct p11_token *t, const uint8_t *id,
			       size_t id_len, unsigned *n,
			       struct mtls_error *err)
{
	CK_ATTRIBUTE tmpl = { CKA_ID, (void *)id, id_len };
	CK_OBJECT_HANDLE found[8];
	CK_ULONG count = 0;
	struct p11_session s;
	mtls_err_t r;
	CK_RV rv;

	*n = 0;
	if (id_len == 0)
		return mtls_error_set(err, MTLS_ERR_ARG, "empty CKA_ID");
	r = p11_session_get(t, &s, err);
	if (r != MTLS_OK)
		return r;
	rv = t->m->fn->C_FindObjectsInit(s.h, &tmpl, 1);
	if (rv == CKR_OK) {
		rv = t->m->fn->C_FindObjects(s.h, found, 8, &count);
		(void)t->m->fn->C_FindObjectsFinal(s.h);
	}
	for (CK_ULONG i = 0; rv == CKR_OK && i < count; i++) {
		rv = t->m->fn->C_DestroyObject(s.h, found[i]);
		if (rv == CKR_OK)
			(*n)++;
	}
	p11_session_put(t, &s, rv);
	if (rv != CKR_OK)
		return p11_rv_error(err, rv, "C_DestroyObject", t->uri);
	return MTLS_OK;
}
