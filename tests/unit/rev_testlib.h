/* What test_ocsp_msg and test_crl_msg share: the fixture folder that
 * rev_fixtures.sh filled (REV_FIXTURES), its files read whole, and a small
 * DER builder for the inputs openssl will not write. */
#ifndef MTLS_REV_TESTLIB_H
#define MTLS_REV_TESTLIB_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rev_cert.h"

struct blob {
	uint8_t *p;
	size_t len;
};

static inline const char *fixture_dir(void)
{
	const char *d = getenv("REV_FIXTURES");

	if (d == NULL || d[0] == '\0') {
		fprintf(stderr, "REV_FIXTURES is not set (run through ctest)\n");
		exit(1);
	}
	return d;
}

static inline struct blob fixture(const char *name)
{
	char path[4096];
	struct blob b = { NULL, 0 };
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/%s", fixture_dir(), name);
	f = fopen(path, "rb");
	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) <= 0 ||
	    fseek(f, 0, SEEK_SET) != 0) {
		fprintf(stderr, "cannot read fixture %s\n", path);
		exit(1);
	}
	b.p = malloc((size_t)n);
	if (b.p == NULL || fread(b.p, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "cannot read fixture %s\n", path);
		exit(1);
	}
	b.len = (size_t)n;
	fclose(f);
	return b;
}

static inline void fixture_write(const char *name, const uint8_t *p, size_t n)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", fixture_dir(), name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
		fprintf(stderr, "cannot write %s\n", path);
		exit(1);
	}
}

/* A shell command run in the fixture folder; its exit status. */
__attribute__((format(printf, 1, 2)))
static inline int fixture_sh(const char *fmt, ...)
{
	char cmd[8192];
	int n;
	va_list ap;

	n = snprintf(cmd, sizeof(cmd), "cd '%s' && ", fixture_dir());
	va_start(ap, fmt);
	vsnprintf(cmd + n, sizeof(cmd) - (size_t)n, fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* A certificate fixture (DER), parsed; the buffer stays allocated for
 * the life of the test (the spans point into it). */
static inline struct blob cert_fixture(const char *name, struct rev_cert *c)
{
	struct blob b = fixture(name);

	if (rev_cert_parse(b.p, b.len, c) != 0) {
		fprintf(stderr, "fixture %s does not parse\n", name);
		exit(1);
	}
	return b;
}

static inline size_t hdr_len(size_t n)
{
	return n < 0x80 ? 2 : n < 0x100 ? 3 : n < 0x10000 ? 4 : 5;
}

/* DER builder: tlv() wraps contents in a tag and a definite length. */
static inline struct blob tlv(uint8_t tag, struct blob v)
{
	struct blob b;
	size_t h = hdr_len(v.len);

	b.p = malloc(h + v.len + 1);
	if (b.p == NULL)
		exit(1);
	b.p[0] = tag;
	if (h == 2) {
		b.p[1] = (uint8_t)v.len;
	} else {
		b.p[1] = (uint8_t)(0x80 | (h - 2));
		for (size_t i = 0; i < h - 2; i++)
			b.p[2 + i] = (uint8_t)(v.len >> (8 * (h - 3 - i)));
	}
	if (v.len > 0)
		memcpy(b.p + h, v.p, v.len);
	b.len = h + v.len;
	free(v.p);
	return b;
}

static inline struct blob bytes(const void *p, size_t n)
{
	struct blob b;

	b.p = malloc(n + 1);
	if (b.p == NULL)
		exit(1);
	if (n > 0)
		memcpy(b.p, p, n);
	b.len = n;
	return b;
}

static inline struct blob cat(struct blob a, struct blob b)
{
	struct blob c;

	c.p = malloc(a.len + b.len + 1);
	if (c.p == NULL)
		exit(1);
	if (a.len > 0)
		memcpy(c.p, a.p, a.len);
	if (b.len > 0)
		memcpy(c.p + a.len, b.p, b.len);
	c.len = a.len + b.len;
	free(a.p);
	free(b.p);
	return c;
}

/* depth SEQUENCEs, each holding the next, around an empty one: the
 * lengths from the inside out, then the headers written outside in. */
static inline struct blob nested(unsigned depth)
{
	size_t *inner = malloc((depth + 1) * sizeof(*inner));
	struct blob b;
	size_t at = 0;

	if (inner == NULL)
		exit(1);
	inner[depth] = 0; /* contents of the innermost */
	for (unsigned i = depth; i > 0; i--)
		inner[i - 1] = hdr_len(inner[i]) + inner[i];
	b.len = inner[0];
	b.p = malloc(b.len + 1);
	if (b.p == NULL)
		exit(1);
	for (unsigned i = 1; i <= depth; i++) {
		size_t n = inner[i], h = hdr_len(n);

		b.p[at] = 0x30;
		if (h == 2) {
			b.p[at + 1] = (uint8_t)n;
		} else {
			b.p[at + 1] = (uint8_t)(0x80 | (h - 2));
			for (size_t k = 0; k < h - 2; k++)
				b.p[at + 2 + k] = (uint8_t)(n >> (8 * (h - 3 - k)));
		}
		at += h;
	}
	free(inner);
	return b;
}

#endif
