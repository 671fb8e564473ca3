/* libFuzzer: what an EST server sends back: the HTTP response (chunked or
 * not) and the base64 certs-only PKCS#7 in it. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "enroll.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mtls_error err;
	char *buf = malloc(size + 1), *pem = NULL;
	struct http_answer a;

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	if (http_answer_parse(buf, size, &a) == 0 &&
	    est_certs_to_pem(a.body, a.body_len, &pem, &err) == MTLS_OK)
		free(pem);
	/* The body alone, as a base64 certs-only answer. */
	memcpy(buf, data, size);
	if (est_certs_to_pem(buf, size, &pem, &err) == MTLS_OK)
		free(pem);
	free(buf);
	return 0;
}
