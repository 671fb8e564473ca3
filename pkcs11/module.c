/* Module loading through p11-kit: by registered name or by path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11_internal.h"

static CK_FUNCTION_LIST *load_by_name(const char *name,
				      struct mtls_error *err)
{
	CK_FUNCTION_LIST **mods, *found = NULL;

	/* Load the registry without initialising it, keep the one module we
	 * want and release the others: initialising every registered module
	 * (tpm2, opensc) costs time and prints their errors. */
	mods = p11_kit_modules_load(NULL, 0);
	if (mods == NULL) {
		mtls_error_set(err, MTLS_ERR_MODULE,
			       "p11-kit registry: %s", p11_kit_message());
		return NULL;
	}
	for (size_t i = 0; mods[i] != NULL; i++) {
		char *n = p11_kit_module_get_name(mods[i]);

		if (found == NULL && n != NULL && strcmp(n, name) == 0)
			found = mods[i];
		else
			p11_kit_module_release(mods[i]);
		free(n);
	}
	free(mods);
	if (found == NULL)
		mtls_error_set(err, MTLS_ERR_MODULE,
			       "no p11-kit module named '%s' is registered",
			       name);
	return found;
}

mtls_err_t p11_module_open(const char *name_or_path, struct p11_module **out,
			   struct mtls_error *err)
{
	struct p11_module *m;
	CK_RV rv;

	*out = NULL;
	if (name_or_path == NULL || *name_or_path == '\0')
		return mtls_error_set(err, MTLS_ERR_ARG, "empty module name");
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	snprintf(m->name, sizeof(m->name), "%s", name_or_path);

	if (strchr(name_or_path, '/') != NULL) {
		m->fn = p11_kit_module_load(name_or_path, 0);
		if (m->fn == NULL) {
			mtls_error_set(err, MTLS_ERR_MODULE, "%s: %s",
				       name_or_path, p11_kit_message());
			free(m);
			return MTLS_ERR_MODULE;
		}
	} else {
		m->fn = load_by_name(name_or_path, err);
		if (m->fn == NULL) {
			free(m);
			return MTLS_ERR_MODULE;
		}
	}
	rv = p11_kit_module_initialize(m->fn);
	if (rv != CKR_OK) {
		mtls_error_set(err, MTLS_ERR_MODULE, "%s: C_Initialize: %s",
			       name_or_path, p11_rv_name(rv));
		p11_kit_module_release(m->fn);
		free(m);
		return MTLS_ERR_MODULE;
	}
	{
		static const char tpm2[] = "tpm2-software.github.io";
		CK_INFO info;

		if (m->fn->C_GetInfo(&info) == CKR_OK)
			m->rsa_signs_by_decrypt =
				memcmp(info.manufacturerID, tpm2,
				       sizeof(tpm2) - 1) == 0;
	}
	*out = m;
	return MTLS_OK;
}

void p11_module_close(struct p11_module *m)
{
	if (m == NULL)
		return;
	p11_kit_module_finalize(m->fn);
	p11_kit_module_release(m->fn);
	free(m);
}
