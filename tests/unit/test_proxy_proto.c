/* SOCKS5 and HTTP CONNECT parsers and replies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "proxy_proto.h"

static void test_socks_greeting(void **state)
{
	size_t used = 0;
	int ok;

	(void)state;
	assert_int_equal(socks5_parse_greeting((const uint8_t *)"", 0, &ok, &used),
			 PROXY_NEED_MORE);
	assert_int_equal(socks5_parse_greeting((const uint8_t *)"\x05", 1, &ok, &used),
			 PROXY_NEED_MORE);
	assert_int_equal(socks5_parse_greeting((const uint8_t *)"\x05\x02\x00", 3,
					       &ok, &used),
			 PROXY_NEED_MORE);
	assert_int_equal(socks5_parse_greeting((const uint8_t *)"\x05\x02\x02\x00", 4,
					       &ok, &used),
			 PROXY_DONE);
	assert_true(ok);
	assert_int_equal(used, 4);
	/* Only user/password offered: no acceptable method. */
	assert_int_equal(socks5_parse_greeting((const uint8_t *)"\x05\x01\x02", 3,
					       &ok, &used),
			 PROXY_DONE);
	assert_false(ok);
	assert_int_equal(socks5_parse_greeting((const uint8_t *)"\x04\x01\x00", 3,
					       &ok, &used),
			 PROXY_ERROR);
	assert_int_equal(socks5_parse_greeting((const uint8_t *)"\x05\x00", 2, &ok,
					       &used),
			 PROXY_ERROR);
}

static void test_socks_request(void **state)
{
	struct proxy_request r;
	static const uint8_t name[] = "\x05\x01\x00\x03\x0b" "example.com" "\x01\xbb";
	static const uint8_t v4[] = { 5, 1, 0, 1, 127, 0, 0, 1, 0x1f, 0x90 };
	static const uint8_t v6[] = { 5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0,
				      0, 0, 0, 0, 0, 0, 0, 1, 0, 22 };

	(void)state;
	assert_int_equal(socks5_parse_request(name, sizeof(name) - 1, &r), PROXY_DONE);
	assert_string_equal(r.host, "example.com");
	assert_int_equal(r.port, 443);
	assert_int_equal(r.consumed, sizeof(name) - 1);
	/* Every prefix asks for more. */
	for (size_t i = 0; i < sizeof(name) - 1; i++)
		assert_int_equal(socks5_parse_request(name, i, &r), PROXY_NEED_MORE);
	assert_int_equal(socks5_parse_request(v4, sizeof(v4), &r), PROXY_DONE);
	assert_string_equal(r.host, "127.0.0.1");
	assert_int_equal(r.port, 8080);
	assert_int_equal(socks5_parse_request(v6, sizeof(v6), &r), PROXY_DONE);
	assert_string_equal(r.host, "::1");
	assert_int_equal(r.port, 22);
}

static void test_socks_request_errors(void **state)
{
	struct proxy_request r;

	(void)state;
	/* BIND and UDP ASSOCIATE: command not supported. */
	assert_int_equal(socks5_parse_request((const uint8_t *)"\x05\x02\x00\x01", 4, &r),
			 PROXY_ERROR);
	assert_int_equal(r.socks_reply, SOCKS5_COMMAND_NOT_SUPPORTED);
	assert_int_equal(socks5_parse_request((const uint8_t *)"\x05\x01\x00\x09", 4, &r),
			 PROXY_ERROR);
	assert_int_equal(r.socks_reply, SOCKS5_ADDRESS_NOT_SUPPORTED);
	assert_int_equal(socks5_parse_request((const uint8_t *)"\x05\x01\x00\x03\x00", 5, &r),
			 PROXY_ERROR);
	/* Bytes that could smuggle into logs or headers. */
	assert_int_equal(socks5_parse_request((const uint8_t *)"\x05\x01\x00\x03\x03" "a\nb"
							       "\x00\x50", 10, &r),
			 PROXY_ERROR);
	assert_int_equal(socks5_parse_request((const uint8_t *)"\x05\x01\x00\x01\x7f\x00\x00\x01"
							       "\x00\x00", 10, &r),
			 PROXY_ERROR);
}

static void test_socks_reply(void **state)
{
	uint8_t out[10];

	(void)state;
	assert_int_equal(socks5_reply(SOCKS5_NOT_ALLOWED, out), 10);
	assert_memory_equal(out, "\x05\x02\x00\x01\x00\x00\x00\x00\x00\x00", 10);
	assert_int_equal(proxy_socks_code(MTLS_ERR_POLICY_DENIED), 2);
	assert_int_equal(proxy_socks_code(MTLS_ERR_UNREACHABLE), 4);
	assert_int_equal(proxy_socks_code(MTLS_ERR_REFUSED), 5);
	assert_int_equal(proxy_socks_code(MTLS_ERR_TIMEOUT), 6);
	assert_int_equal(proxy_socks_code(MTLS_ERR_UNKNOWN_CA), 1);
}

static enum proxy_parse http(const char *s, struct proxy_request *r)
{
	return http_parse_connect((const uint8_t *)s, strlen(s), r);
}

static void test_http_connect(void **state)
{
	struct proxy_request r;
	const char *req = "CONNECT api.example:443 HTTP/1.1\r\nHost: api.example:443\r\n"
			  "User-Agent: t\r\n\r\nEARLY";

	(void)state;
	assert_int_equal(http(req, &r), PROXY_DONE);
	assert_string_equal(r.host, "api.example");
	assert_int_equal(r.port, 443);
	assert_int_equal(r.consumed, strlen(req) - 5);
	assert_int_equal(http("CONNECT [::1]:8443 HTTP/1.0\r\n\r\n", &r), PROXY_DONE);
	assert_string_equal(r.host, "::1");
	assert_int_equal(r.port, 8443);
	assert_int_equal(http("CONNECT 10.0.0.1:22 HTTP/1.1\n\n", &r), PROXY_DONE);
	assert_string_equal(r.host, "10.0.0.1");
	assert_int_equal(http("CONNECT a:1 HTTP/1.1\r\nHost: a\r\n", &r), PROXY_NEED_MORE);
}

static void test_http_connect_errors(void **state)
{
	struct proxy_request r;
	char big[PROXY_REQUEST_MAX + 16];

	(void)state;
	assert_int_equal(http("GET http://a/ HTTP/1.1\r\n\r\n", &r), PROXY_ERROR);
	assert_int_equal(r.http_status, 405);
	assert_int_equal(http("CONNECT a HTTP/1.1\r\n\r\n", &r), PROXY_ERROR);
	assert_int_equal(r.http_status, 400);
	assert_int_equal(http("CONNECT a:0 HTTP/1.1\r\n\r\n", &r), PROXY_ERROR);
	assert_int_equal(http("CONNECT a:65536 HTTP/1.1\r\n\r\n", &r), PROXY_ERROR);
	assert_int_equal(http("CONNECT a:x HTTP/1.1\r\n\r\n", &r), PROXY_ERROR);
	assert_int_equal(http("CONNECT :80 HTTP/1.1\r\n\r\n", &r), PROXY_ERROR);
	assert_int_equal(http("CONNECT a:80 HTTP/2\r\n\r\n", &r), PROXY_ERROR);
	assert_int_equal(http("CONNECT a b:80 HTTP/1.1\r\n\r\n", &r), PROXY_ERROR);
	assert_int_equal(http("CONNECT [::1:80 HTTP/1.1\r\n\r\n", &r), PROXY_ERROR);
	assert_int_equal(http("CONNECT a%0d:80 HTTP/1.1\r\n\r\n", &r), PROXY_ERROR);
	/* A header that never ends is refused once the buffer is full. */
	memset(big, 'a', sizeof(big));
	memcpy(big, "CONNECT a:1 HTTP/1.1\r\nX: ", 25);
	assert_int_equal(http_parse_connect((uint8_t *)big, PROXY_REQUEST_MAX, &r),
			 PROXY_ERROR);
	assert_int_equal(r.http_status, 431);
	assert_int_equal(http_parse_connect((uint8_t *)big, PROXY_REQUEST_MAX - 1, &r),
			 PROXY_NEED_MORE);
}

static void test_http_reply(void **state)
{
	char out[1024];
	size_t n;

	(void)state;
	n = http_reply(200, "ok", NULL, out, sizeof(out));
	assert_int_equal(n, strlen("HTTP/1.1 200 Connection established\r\n\r\n"));
	n = http_reply(502, "unknown_ca", "detail\r\nInjected: yes", out, sizeof(out));
	assert_true(n > 0);
	assert_non_null(strstr(out, "HTTP/1.1 502 Bad Gateway\r\n"));
	assert_non_null(strstr(out, "X-Mtls-Reason: unknown_ca\r\n"));
	/* The detail cannot add a header. */
	assert_null(strstr(out, "\r\nInjected"));
	assert_int_equal(proxy_http_status(MTLS_ERR_POLICY_DENIED), 403);
	assert_int_equal(proxy_http_status(MTLS_ERR_PIN_MISMATCH), 502);
	assert_int_equal(proxy_http_status(MTLS_ERR_TIMEOUT), 504);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_socks_greeting),
		cmocka_unit_test(test_socks_request),
		cmocka_unit_test(test_socks_request_errors),
		cmocka_unit_test(test_socks_reply),
		cmocka_unit_test(test_http_connect),
		cmocka_unit_test(test_http_connect_errors),
		cmocka_unit_test(test_http_reply),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
