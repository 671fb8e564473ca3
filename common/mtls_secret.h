/* Secrets (PINs) live in one kind of buffer: pages of its own (mmap),
 * locked in memory where the system allows it, left out of core dumps and
 * of forked children, wiped with explicit_bzero before it is freed. Only
 * mtls_secret_new makes one. */
#ifndef MTLS_SECRET_H
#define MTLS_SECRET_H

#include <stddef.h>

#define MTLS_SECRET_MAX 256

struct mtls_secret {
	size_t len;
	char buf[MTLS_SECRET_MAX + 1]; /* NUL-terminated for APIs that need it */
};

struct mtls_secret *mtls_secret_new(void);
/* Copies len bytes; returns -1 if too long. */
int mtls_secret_set(struct mtls_secret *s, const char *data, size_t len);
void mtls_secret_wipe(struct mtls_secret *s);
void mtls_secret_free(struct mtls_secret *s);

#endif
