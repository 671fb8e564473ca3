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
