#include "mtls_secret.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct mtls_secret *mtls_secret_new(void)
{
	struct mtls_secret *s = calloc(1, sizeof(*s));

	if (s != NULL)
		(void)mlock(s, sizeof(*s)); /* best effort: RLIMIT_MEMLOCK may forbid */
	return s;
}

int mtls_secret_set(struct mtls_secret *s, const char *data, size_t len)
{
	mtls_secret_wipe(s);
	if (len > MTLS_SECRET_MAX)
		return -1;
	memcpy(s->buf, data, len);
	s->buf[len] = '\0';
	s->len = len;
	return 0;
}

void mtls_secret_wipe(struct mtls_secret *s)
{
	explicit_bzero(s->buf, sizeof(s->buf));
	s->len = 0;
}

void mtls_secret_free(struct mtls_secret *s)
{
	if (s == NULL)
		return;
	mtls_secret_wipe(s);
	(void)munlock(s, sizeof(*s));
	free(s);
}
