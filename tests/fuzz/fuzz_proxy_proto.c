/* libFuzzer: the agent socket's request parsers, fed as the agent feeds
 * them: growing prefixes of one input. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http_forward.h"
#include "proxy_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_request req;
	size_t used = 0;
	int ok;
	char out[1024];
	static uint8_t head[HTTP_FORWARD_HEAD_MAX];
	struct http_forward_head h;
	struct http_body b;
	size_t hl;

	if (size > PROXY_REQUEST_MAX)
		size = PROXY_REQUEST_MAX;
	for (size_t n = 0; n <= size; n++) {
		enum proxy_parse g = socks5_parse_greeting(data, n, &ok, &used);

		if (g == PROXY_DONE && used <= n)
			(void)socks5_parse_request(data + used, n - used, &req);
		if (http_parse_connect(data, n, &req) == PROXY_ERROR)
			(void)http_reply(req.http_status, "bad_request", req.error,
					 out, sizeof(out));
		if (http_forward_parse(data, n, &h, head, sizeof(head), &hl) ==
		    PROXY_DONE) {
			/* The rest as a body, byte by byte from where the
			 * head ended. */
			size_t off = h.consumed, u;

			if (hl > sizeof(head))
				__builtin_trap();
			http_body_start(&b, &h);
			while (off < n && http_body_step(&b, data + off, 1, &u) == 0)
				off += u;
		}
		if (n > 64)
			n += n / 8; /* keep long inputs fast */
	}
	return 0;
}
