/* The initialised tokens p11-kit can reach, for a first configuration
 * (mtlsctl init): every registered module, or one named or given by path. */
#include "p11_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void list_module(CK_FUNCTION_LIST *fn, const char *module,
			struct p11_token_info *out, size_t cap, size_t *n)
{
	CK_SLOT_ID slots[64];
	CK_ULONG ns = sizeof(slots) / sizeof(slots[0]);

	if (fn->C_GetSlotList(CK_TRUE, slots, &ns) != CKR_OK)
		return;
	for (CK_ULONG i = 0; i < ns && *n < cap; i++) {
		CK_TOKEN_INFO ti;
		struct p11_token_info *o = &out[*n];

		if (fn->C_GetTokenInfo(slots[i], &ti) != CKR_OK ||
		    !(ti.flags & CKF_TOKEN_INITIALIZED))
			continue;
		memset(o, 0, sizeof(*o));
		snprintf(o->module, sizeof(o->module), "%s", module);
		p11_info_text(o->label, sizeof(o->label), ti.label,
			      sizeof(ti.label));
		p11_info_text(o->serial, sizeof(o->serial), ti.serialNumber,
			      sizeof(ti.serialNumber));
		p11_info_text(o->model, sizeof(o->model), ti.model,
			      sizeof(ti.model));
		p11_info_text(o->manufacturer, sizeof(o->manufacturer),
			      ti.manufacturerID, sizeof(ti.manufacturerID));
		o->login_required = (ti.flags & CKF_LOGIN_REQUIRED) != 0;
		(*n)++;
	}
}

mtls_err_t p11_tokens_list(const char *module, struct p11_token_info *out,
			   size_t cap, size_t *n, struct mtls_error *err)
{
	*n = 0;
	if (module != NULL) {
		struct p11_module *m;
		mtls_err_t r = p11_module_open(module, &m, err);

		if (r != MTLS_OK)
			return r;
		list_module(m->fn, module, out, cap, n);
		p11_module_close(m);
		return MTLS_OK;
	}
	{
		CK_FUNCTION_LIST **mods = p11_kit_modules_load_and_initialize(0);

		if (mods == NULL)
			return mtls_error_set(err, MTLS_ERR_MODULE,
					      "p11-kit registry: %s",
					      p11_kit_message());
		for (size_t i = 0; mods[i] != NULL; i++) {
			char *name = p11_kit_module_get_name(mods[i]);

			/* Only registered modules have a name to write in a
			 * configuration. */
			if (name != NULL)
				list_module(mods[i], name, out, cap, n);
			free(name);
		}
		p11_kit_modules_finalize_and_release(mods);
	}
	return MTLS_OK;
}
