/* RFC 7512 URIs through p11-kit, and the text form shown in logs (with any
 * pin-value hidden). */
#include <stdio.h>
#include <string.h>

#include "p11_internal.h"

mtls_err_t p11_uri_parse(const char *text, P11KitUri **out,
			 struct mtls_error *err)
{
	P11KitUri *u;
	int r;

	*out = NULL;
	if (text == NULL || strlen(text) >= P11_URI_MAX)
		return mtls_error_set(err, MTLS_ERR_URI, "URI missing or "
				      "longer than %d bytes", P11_URI_MAX - 1);
	u = p11_kit_uri_new();
	if (u == NULL)
		return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	r = p11_kit_uri_parse(text, P11_KIT_URI_FOR_ANY, u);
	if (r != P11_KIT_URI_OK) {
		char shown[P11_URI_MAX];

		p11_uri_redact(text, shown, sizeof(shown));
		p11_kit_uri_free(u);
		return mtls_error_set(err, MTLS_ERR_URI, "%s: %s", shown,
				      p11_kit_uri_message(r));
	}
	/* p11-kit keeps going past an attribute it does not know
	 * ("tokne=acc") or a value it cannot read ("type=bogus"), and the
	 * URI then matches more than was meant, or nothing: "token
	 * absent" for a typo. Refused here, where the URI is read. */
	if (p11_kit_uri_any_unrecognized(u)) {
		char shown[P11_URI_MAX];

		p11_uri_redact(text, shown, sizeof(shown));
		p11_kit_uri_free(u);
		return mtls_error_set(err, MTLS_ERR_URI, "%s: an attribute or "
				      "value RFC 7512 does not define (known: "
				      "token, manufacturer, serial, model, "
				      "object, id, type=private|public|cert|"
				      "secret-key|data, slot-*, library-*)",
				      shown);
	}
	*out = u;
	return MTLS_OK;
}

void p11_uri_redact(const char *in, char *out, size_t len)
{
	const char *p = strstr(in, "pin-value=");
	size_t head;

	if (len == 0)
		return;
	if (p == NULL) {
		snprintf(out, len, "%s", in);
		return;
	}
	head = (size_t)(p - in) + strlen("pin-value=");
	const char *rest = p + strlen("pin-value=");
	rest += strcspn(rest, ";?&");
	snprintf(out, len, "%.*s***%s", (int)head, in, rest);
}

mtls_err_t p11_uri_check(const char *text, struct mtls_error *err)
{
	P11KitUri *u;
	mtls_err_t r = p11_uri_parse(text, &u, err);

	if (r == MTLS_OK)
		p11_kit_uri_free(u);
	return r;
}
