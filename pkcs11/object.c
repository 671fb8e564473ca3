/* Object lookup: exactly one object of a class matching a URI. */
#include <string.h>

#include "p11_internal.h"

#define FIND_MAX 4

mtls_err_t p11_find_all(struct p11_token *t, CK_SESSION_HANDLE s,
			P11KitUri *uri, const char *uri_text,
			CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE *out,
			CK_ULONG max, CK_ULONG *n_found,
			struct mtls_error *err)
{
	CK_ATTRIBUTE tmpl[3];
	CK_ULONG n_tmpl = 0;
	CK_ATTRIBUTE *a;
	CK_RV rv, rv2;

	*n_found = 0;
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
	rv = t->m->fn->C_FindObjects(s, out, max, n_found);
	rv2 = t->m->fn->C_FindObjectsFinal(s);
	if (rv != CKR_OK)
		return p11_rv_error(err, rv, "C_FindObjects", uri_text);
	if (rv2 != CKR_OK)
		return p11_rv_error(err, rv2, "C_FindObjectsFinal", uri_text);
	if (*n_found == 0)
		return mtls_error_set(err, cls == CKO_CERTIFICATE ?
					   MTLS_ERR_CERT_NOT_FOUND :
					   MTLS_ERR_KEY_NOT_FOUND,
				      "no %s matches %s",
				      cls == CKO_CERTIFICATE ? "certificate" :
				      cls == CKO_PUBLIC_KEY  ? "public key" :
							       "private key",
				      uri_text);
	return MTLS_OK;
}

mtls_err_t p11_find_one(struct p11_token *t, CK_SESSION_HANDLE s,
			P11KitUri *uri, const char *uri_text,
			CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE *out,
			struct mtls_error *err)
{
	CK_OBJECT_HANDLE found[FIND_MAX];
	CK_ULONG n_found;
	mtls_err_t r;

	r = p11_find_all(t, s, uri, uri_text, cls, found, FIND_MAX, &n_found,
			 err);
	if (r != MTLS_OK)
		return r;
	if (n_found > 1)
		return mtls_error_set(err, MTLS_ERR_AMBIGUOUS,
				      "%lu objects match %s; add id=",
				      (unsigned long)n_found, uri_text);
	*out = found[0];
	return MTLS_OK;
}

struct destroy_call {
	CK_ATTRIBUTE tmpl;
	unsigned n;
};

static CK_RV destroy_on(struct p11_token *t, CK_SESSION_HANDLE s, void *ctx)
{
	struct destroy_call *c = ctx;
	CK_OBJECT_HANDLE found[8];
	CK_ULONG count = 0;
	CK_RV rv;

	rv = t->m->fn->C_FindObjectsInit(s, &c->tmpl, 1);
	if (rv == CKR_OK) {
		rv = t->m->fn->C_FindObjects(s, found, 8, &count);
		(void)t->m->fn->C_FindObjectsFinal(s);
	}
	for (CK_ULONG i = 0; rv == CKR_OK && i < count; i++) {
		rv = t->m->fn->C_DestroyObject(s, found[i]);
		if (rv == CKR_OK)
			c->n++;
	}
	return rv;
}

mtls_err_t p11_objects_destroy(struct p11_token *t, const uint8_t *id,
			       size_t id_len, unsigned *n,
			       struct mtls_error *err)
{
	struct destroy_call call = { { CKA_ID, (void *)id, id_len }, 0 };
	mtls_err_t r;

	*n = 0;
	if (id_len == 0)
		return mtls_error_set(err, MTLS_ERR_ARG, "empty CKA_ID");
	r = p11_token_as_so(t, destroy_on, &call, "C_DestroyObject", err);
	*n = call.n;
	return r;
}
