/* libFuzzer: what an ACME server sends back: the HTTP answer (headers:
 * Location, Replay-Nonce, Link rel=alternate, Retry-After; chunked or
 * not), and its body as a directory, an order, an authorization, a
 * challenge and a problem document; base64url as the EAB key file holds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "acme_msg.h"
#include "https.h"
#include "jws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void bodies(const char *b, size_t n)
{
	struct acme_directory d;
	struct acme_order o;
	struct acme_authz a;
	struct acme_challenge c;
	struct acme_problem p;

	(void)acme_parse_directory(b, n, &d);
	(void)acme_parse_order(b, n, &o);
	(void)acme_parse_authz(b, n, &a);
	(void)acme_parse_challenge(b, n, &c);
	(void)acme_parse_problem(b, n, 400, &p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1);
	struct http_answer ans;
	uint8_t out[1024];
	size_t out_len = sizeof(out);

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	bodies(buf, size);
	(void)b64url_decode(buf, size, out, &out_len);
	if (http_answer_parse(buf, size, &ans) == 0)
		bodies(ans.body, ans.body_len);
	free(buf);
	return 0;
}
