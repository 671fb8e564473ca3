#include "mtls_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const err_names[] = {
#define MTLS_ERR_NAME(code, name, msg) [code] = name,
	MTLS_ERRORS(MTLS_ERR_NAME)
#undef MTLS_ERR_NAME
};

static const char *const err_msgs[] = {
#define MTLS_ERR_MSG(code, name, msg) [code] = msg,
	MTLS_ERRORS(MTLS_ERR_MSG)
#undef MTLS_ERR_MSG
};

const char *mtls_err_name(mtls_err_t code)
{
	if ((unsigned)code >= MTLS_ERR__COUNT)
		return "unknown";
	return err_names[code];
}

const char *mtls_err_msg(mtls_err_t code)
{
	if ((unsigned)code >= MTLS_ERR__COUNT)
		return "unknown error";
	return err_msgs[code];
}

mtls_err_t mtls_error_set(struct mtls_error *err, mtls_err_t code,
			  const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return code;
	err->code = code;
	err->detail[0] = '\0';
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
		va_end(ap);
	}
	return code;
}

void mtls_error_clear(struct mtls_error *err)
{
	if (err == NULL)
		return;
	err->code = MTLS_OK;
	err->detail[0] = '\0';
}

const char *mtls_error_str(const struct mtls_error *err, char *buf, size_t len)
{
	if (len == 0)
		return buf;
	if (err->detail[0] != '\0')
		snprintf(buf, len, "%s: %s", mtls_err_msg(err->code), err->detail);
	else
		snprintf(buf, len, "%s", mtls_err_msg(err->code));
	return buf;
}

mtls_err_t mtls_error_where(struct mtls_error *err, const char *fmt, ...)
{
	char where[256], old[MTLS_ERR_DETAIL_MAX];
	va_list ap;

	if (err == NULL)
		return MTLS_OK;
	va_start(ap, fmt);
	vsnprintf(where, sizeof(where), fmt, ap);
	va_end(ap);
	memcpy(old, err->detail, sizeof(old));
	old[sizeof(old) - 1] = '\0';
	/* Cut at the end when both do not fit: the place comes first. */
	{
		size_t wl = strlen(where), ol = strlen(old);

		if (wl > sizeof(err->detail) - 3)
			wl = sizeof(err->detail) - 3;
		memcpy(err->detail, where, wl);
		memcpy(err->detail + wl, ": ", 2);
		if (ol > sizeof(err->detail) - wl - 3)
			ol = sizeof(err->detail) - wl - 3;
		memcpy(err->detail + wl + 2, old, ol);
		err->detail[wl + 2 + ol] = '\0';
	}
	return err->code;
}
