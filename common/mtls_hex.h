/* One hexadecimal digit's value, for the parsers that read hex (RFC 4514
 * escapes, chunk sizes, Assuan's %XX, state files). */
#ifndef MTLS_HEX_H
#define MTLS_HEX_H

/* 0..15, or -1 when c is not a hex digit. */
static inline int mtls_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#endif
