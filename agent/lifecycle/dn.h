/* A subject written as RFC 4514 says ("CN=dev\, one,OU=Ops,DC=corp,
 * DC=example") made into the DER Name a CSR carries. The string's first
 * RDN is the Name's last (RFC 4514 2.1), so `openssl req -subject -nameopt
 * RFC2253` prints the string back as written. Pure: no I/O. */
#ifndef MTLS_DN_H
#define MTLS_DN_H

#include <stddef.h>
#include <stdint.h>

#include "mtls_err.h"

#define DN_RDN_MAX 16     /* attributes in one subject */
#define DN_VALUE_MAX 128  /* bytes of one value, after unescaping */
#define DN_STRING_MAX 1024

/* Writes the DER of subject into out (cap bytes), *out_len its length.
 * Refused with the reason in err: an unknown attribute type, a bad or
 * unterminated escape, an unescaped special character, a multi-valued
 * RDN (+), a #-hex value, an empty value, a value or subject too long,
 * a C= that is not two letters, no CN. */
mtls_err_t dn_encode(const char *subject, uint8_t *out, size_t cap,
		     size_t *out_len, struct mtls_error *err);

#endif
