/* A bounded read cursor: every parser of bytes from a socket reads through
 * it, so no parser indexes a buffer by a length it read from the wire. */
#ifndef MTLS_WIRE_H
#define MTLS_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct cursor {
	const uint8_t *p;
	size_t len, off;
};

static inline size_t cursor_left(const struct cursor *c)
{
	return c->len - c->off;
}

/* Each returns 0, or -1 (and moves nothing) when the bytes are not there. */
static inline int cursor_u8(struct cursor *c, uint8_t *v)
{
	if (cursor_left(c) < 1)
		return -1;
	*v = c->p[c->off++];
	return 0;
}

static inline int cursor_u16(struct cursor *c, uint16_t *v)
{
	if (cursor_left(c) < 2)
		return -1;
	*v = (uint16_t)((c->p[c->off] << 8) | c->p[c->off + 1]);
	c->off += 2;
	return 0;
}

static inline int cursor_bytes(struct cursor *c, void *out, size_t n)
{
	if (cursor_left(c) < n)
		return -1;
	memcpy(out, c->p + c->off, n);
	c->off += n;
	return 0;
}

#endif
