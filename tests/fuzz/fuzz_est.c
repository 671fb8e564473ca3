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
	char *buf = malloc(size + 1), *body, *pem = NULL;
	size_t body_len;
	int status, retry;

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	if (http_response_parse(buf, size, &status, &retry, &body, &body_len) == 0 &&
	    est_certs_to_pem(body, body_len, &pem, &err) == MTLS_OK)
		free(pem);
	/* The body alone, as a base64 certs-only answer. */
	memcpy(buf, data, size);
	if (est_certs_to_pem(buf, size, &pem, &err) == MTLS_OK)
		free(pem);
	free(buf);
	return 0;
}
