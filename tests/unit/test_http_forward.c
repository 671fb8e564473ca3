/* Plain HTTP proxying: the head rewritten to origin-form, bodies framed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "http_forward.h"

static uint8_t out[HTTP_FORWARD_HEAD_MAX];

static enum proxy_parse parse(const char *in, struct http_forward_head *h,
			      size_t *olen)
{
	return http_forward_parse((const uint8_t *)in, strlen(in), h, out,
				  sizeof(out), olen);
}

static void expect(const char *in, const char *want, const char *host,
		   unsigned port)
{
	struct http_forward_head h;
	size_t n;

	assert_int_equal(parse(in, &h, &n), PROXY_DONE);
	assert_int_equal(h.consumed, strlen(in));
	out[n] = '\0';
	assert_string_equal((char *)out, want);
	assert_string_equal(h.host, host);
	assert_int_equal(h.port, port);
}

static void expect_error(const char *in, int status)
{
	struct http_forward_head h;
	size_t n;

	assert_int_equal(parse(in, &h, &n), PROXY_ERROR);
	assert_int_equal(h.status, status);
	assert_true(h.error[0] != '\0');
}

static void test_rewrite(void **state)
{
	(void)state;
	/* curl's request, Proxy-Connection and the old Host gone. */
	expect("GET http://srv.test:8443/a/b?c=d HTTP/1.1\r\n"
	       "Host: srv.test:8443\r\nUser-Agent: curl/7.88.1\r\n"
	       "Accept: */*\r\nProxy-Connection: Keep-Alive\r\n\r\n",
	       "GET /a/b?c=d HTTP/1.1\r\nHost: srv.test:8443\r\n"
	       "User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
	       "srv.test", 8443);
	/* No path, a query only, no port (the mTLS port), bare LFs. */
	expect("GET http://srv.test HTTP/1.0\n\n",
	       "GET / HTTP/1.0\r\nHost: srv.test\r\n\r\n", "srv.test", 443);
	expect("HEAD http://srv.test?x=1 HTTP/1.1\r\n\r\n",
	       "HEAD /?x=1 HTTP/1.1\r\nHost: srv.test\r\n\r\n", "srv.test", 443);
	/* The URL's host wins over a Host that names another (RFC 9112
	 * 3.2.2); Proxy-Authorization never leaves. */
	expect("POST HTTP://[::1]:9/p HTTP/1.1\r\nHOST: evil.test\r\n"
	       "proxy-authorization: Basic eA==\r\nContent-Length: 3\r\n\r\n",
	       "POST /p HTTP/1.1\r\nHost: [::1]:9\r\nContent-Length: 3\r\n\r\n",
	       "::1", 9);
}

static void test_refused(void **state)
{
	(void)state;
	expect_error("GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	expect_error("GET https://srv.test/ HTTP/1.1\r\n\r\n", 400);
	expect_error("GET http://u:p@srv.test/ HTTP/1.1\r\n\r\n", 400);
	expect_error("GET http://srv.test:0/ HTTP/1.1\r\n\r\n", 400);
	expect_error("GET http://srv.test:65536/ HTTP/1.1\r\n\r\n", 400);
	expect_error("GET http://srv.test:44x/ HTTP/1.1\r\n\r\n", 400);
	expect_error("GET http:///x HTTP/1.1\r\n\r\n", 400);
	expect_error("GET http://sr\"v/ HTTP/1.1\r\n\r\n", 400);
	expect_error("GET http://srv.test/ HTTP/2.0\r\n\r\n", 400);
	expect_error("G(T http://srv.test/ HTTP/1.1\r\n\r\n", 400);
	expect_error("GET http://srv.test/ HTTP/1.1\r\n folded\r\n\r\n", 400);
	expect_error("GET http://srv.test/ HTTP/1.1\r\nBad Name: x\r\n\r\n", 400);
	expect_error("GET http://srv.test/ HTTP/1.1\r\nA: \x01\r\n\r\n", 400);
	/* Smuggling: two framings, two lengths, an unknown coding. */
	expect_error("POST http://s/ HTTP/1.1\r\nContent-Length: 1\r\n"
		     "Transfer-Encoding: chunked\r\n\r\n", 400);
	expect_error("POST http://s/ HTTP/1.1\r\nContent-Length: 1\r\n"
		     "Content-Length: 2\r\n\r\n", 400);
	expect_error("POST http://s/ HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400);
	expect_error("POST http://s/ HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", 400);
	expect_error("POST http://s/ HTTP/1.1\r\nTransfer-Encoding: gzip, "
		     "chunked\r\n\r\n", 501);
	expect_error("CONNECT http://s/ HTTP/1.1\r\n\r\n", 400);
	expect_error("GET http://s/ws HTTP/1.1\r\nConnection: Upgrade\r\n"
		     "Upgrade: websocket\r\n\r\n", 501);
}

static void test_bounds(void **state)
{
	static uint8_t big[PROXY_REQUEST_MAX + 64];
	struct http_forward_head h;
	size_t n, hl;
	const char *start = "GET http://s/ HTTP/1.1\r\n";

	(void)state;
	/* Every prefix of a good head asks for more. */
	{
		const char *in = "GET http://s:1/ HTTP/1.1\r\nA: b\r\n\r\n";

		for (size_t i = 0; i < strlen(in); i++)
			assert_int_equal(http_forward_parse((const uint8_t *)in, i,
							    &h, out, sizeof(out), &n),
					 PROXY_NEED_MORE);
	}
	/* A head that never ends within the bound is refused, not waited
	 * for; and one that ends just past it too. */
	memset(big, 'a', sizeof(big));
	memcpy(big, start, strlen(start));
	assert_int_equal(http_forward_parse(big, PROXY_REQUEST_MAX, &h, out,
					    sizeof(out), &n), PROXY_ERROR);
	assert_int_equal(h.status, 431);
	memcpy(big + PROXY_REQUEST_MAX - 1, ":\r\n\r\n", 5);
	assert_int_equal(http_forward_parse(big, PROXY_REQUEST_MAX + 4, &h, out,
					    sizeof(out), &n), PROXY_ERROR);
	assert_int_equal(h.status, 431);
	/* The worst growth: "a:\n" lines, each gaining a CR. */
	hl = strlen(start);
	memcpy(big, start, hl);
	while (hl + 3 + 1 < PROXY_REQUEST_MAX) {
		memcpy(big + hl, "a:\n", 3);
		hl += 3;
	}
	big[hl++] = '\n';
	assert_int_equal(http_forward_parse(big, hl, &h, out, sizeof(out), &n),
			 PROXY_DONE);
	assert_true(n <= sizeof(out));
	assert_int_equal(h.consumed, hl);
	/* A NUL inside the head. */
	assert_int_equal(http_forward_parse((const uint8_t *)"GET http://s/ HTTP/1.1\r\nA: \0\r\n\r\n",
					    32, &h, out, sizeof(out), &n),
			 PROXY_ERROR);
}

static void test_origin(void **state)
{
	struct http_forward_head h;
	size_t n;

	(void)state;
	assert_int_equal(parse("GET http://Srv.Test:8443/ HTTP/1.1\r\n\r\n", &h, &n),
			 PROXY_DONE);
	assert_true(http_forward_same_origin(&h, "srv.test", 8443));
	assert_false(http_forward_same_origin(&h, "srv.test", 443));
	assert_false(http_forward_same_origin(&h, "srv.test.", 8443));
	assert_false(http_forward_same_origin(&h, "other.test", 8443));
}

/* Feeds a body byte by byte, then whole: both find the same end. */
static size_t body_end(const struct http_forward_head *h, const char *in,
		       size_t len, int whole)
{
	struct http_body b;
	size_t used, off = 0;
	int r = 0;

	http_body_start(&b, h);
	while (off < len && r == 0) {
		size_t step = whole ? len - off : 1;

		r = http_body_step(&b, (const uint8_t *)in + off, step, &used);
		if (r < 0)
			return (size_t)-1;
		off += used;
	}
	return r == 1 ? off : 0;
}

static void test_bodies(void **state)
{
	struct http_forward_head h;
	size_t n;
	const char *chunked = "4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nT: x\r\n\r\nNEXT";
	const char *bare = "3\nabc\n0\n\nNEXT";

	(void)state;
	assert_int_equal(parse("POST http://s/ HTTP/1.1\r\nTransfer-Encoding: "
			       "chunked\r\n\r\n", &h, &n), PROXY_DONE);
	assert_int_equal(h.body, HTTP_BODY_CHUNKED);
	for (int whole = 0; whole < 2; whole++) {
		assert_int_equal(body_end(&h, chunked, strlen(chunked), whole),
				 strlen(chunked) - 4);
		assert_int_equal(body_end(&h, bare, strlen(bare), whole),
				 strlen(bare) - 4);
		/* Cut: not ended. Broken: refused. */
		assert_int_equal(body_end(&h, chunked, 12, whole), 0);
		assert_int_equal(body_end(&h, "x\r\n", 3, whole), (size_t)-1);
		assert_int_equal(body_end(&h, "4\r\nWikiXY", 9, whole), (size_t)-1);
		assert_int_equal(body_end(&h, "1000000000000000\r\n", 18, whole),
				 (size_t)-1);
	}
	assert_int_equal(parse("POST http://s/ HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
			       &h, &n), PROXY_DONE);
	assert_int_equal(h.body, HTTP_BODY_LENGTH);
	assert_int_equal(body_end(&h, "helloNEXT", 9, 1), 5);
	assert_int_equal(body_end(&h, "helloNEXT", 9, 0), 5);
	assert_int_equal(parse("GET http://s/ HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
			       &h, &n), PROXY_DONE);
	assert_int_equal(h.body, HTTP_BODY_NONE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rewrite), cmocka_unit_test(test_refused),
		cmocka_unit_test(test_bounds), cmocka_unit_test(test_origin),
		cmocka_unit_test(test_bodies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
