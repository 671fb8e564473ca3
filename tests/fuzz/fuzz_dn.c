/* libFuzzer: RFC 4514 subjects (mtlsctl csr --subject, [identity] subject)
 * into DER Names: never past the output, and what comes out is one DER
 * SEQUENCE of exactly the length written. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char s[DN_STRING_MAX + 64];
	static uint8_t out[1536];
	struct mtls_error err = { 0 };
	size_t n = 0, len, hl;

	if (size >= sizeof(s))
		size = sizeof(s) - 1;
	memcpy(s, data, size);
	s[size] = '\0';
	if (dn_encode(s, out, sizeof(out), &n, &err) != MTLS_OK)
		return 0;
	if (n < 2 || n > sizeof(out) || out[0] != 0x30)
		__builtin_trap();
	if (out[1] < 0x80) {
		len = out[1];
		hl = 2;
	} else if (out[1] == 0x81) {
		len = out[2];
		hl = 3;
	} else {
		len = (size_t)out[2] << 8 | out[3];
		hl = 4;
	}
	if (hl + len != n)
		__builtin_trap();
	return 0;
}
