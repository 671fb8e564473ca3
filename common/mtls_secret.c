#include "mtls_secret.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Each secret has pages of its own: mlock and munlock work on whole pages,
 * so two secrets sharing a page (as malloc would place them) would have
 * the first one freed unlock the other. */
static size_t secret_span(void)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t p = page > 0 ? (size_t)page : 4096;

	return (sizeof(struct mtls_secret) + p - 1) / p * p;
}

struct mtls_secret *mtls_secret_new(void)
{
	size_t span = secret_span();
	void *p = mmap(NULL, span, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	/* Best effort, each: RLIMIT_MEMLOCK may forbid locking; old kernels
	 * lack the advice. Kept out of core dumps, and a forked child (the
	 * exec enroller's helper before its exec) sees zeros. */
	(void)mlock(p, span);
	(void)madvise(p, span, MADV_DONTDUMP);
	(void)madvise(p, span, MADV_WIPEONFORK);
	return p; /* anonymous memory starts zeroed */
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
	/* Unmapping unlocks these pages, and only these. */
	(void)munmap(s, secret_span());
}
