/* ACME's pure parts: base64url, the parsers of what a server sends (a URL
 * that is not https, a token that could walk a path, trailing bytes, an
 * oversized body: each refused whole), problem types, Link headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "acme_msg.h"
#include "https.h"
#include "jws.h"

static void b64url_round_trip(void **state)
{
	uint8_t in[64], out[64];
	char enc[100];
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 37 + 251);
	for (size_t len = 0; len <= sizeof(in); len++) {
		int w = b64url_encode(in, len, enc, sizeof(enc));

		assert_true(w >= 0);
		assert_null(strpbrk(enc, "+/="));
		n = sizeof(out);
		assert_int_equal(b64url_decode(enc, (size_t)w, out, &n), 0);
		assert_int_equal(n, len);
		assert_memory_equal(in, out, len);
	}
	/* RFC 7515 appendix C's example. */
	assert_int_equal(b64url_encode((const uint8_t *)"\x03\xec\xff\xe0", 4,
				       enc, sizeof(enc)), 6);
	assert_string_equal(enc, "A-z_4A");
	/* Standard base64's own letters are refused. */
	n = sizeof(out);
	assert_int_equal(b64url_decode("A+z/4A==", 8, out, &n), -1);
	/* The output bound holds. */
	assert_int_equal(b64url_encode(in, 64, enc, 10), -1);
}

#define DIR_OK "{\"newNonce\":\"https://a/n\",\"newAccount\":\"https://a/a\"," \
	       "\"newOrder\":\"https://a/o\",\"revokeCert\":\"https://a/r\"," \
	       "\"meta\":{\"externalAccountRequired\":true}}"

static int dir(const char *s)
{
	struct acme_directory d;

	return acme_parse_directory(s, strlen(s), &d);
}

static void directory_parsed(void **state)
{
	struct acme_directory d;

	(void)state;
	assert_int_equal(acme_parse_directory(DIR_OK, strlen(DIR_OK), &d), 0);
	assert_string_equal(d.new_order, "https://a/o");
	assert_int_equal(d.eab_required, 1);
	assert_int_equal(dir(DIR_OK "\n"), 0);
	/* Trailing bytes, a second object, not an object, plain http. */
	assert_int_equal(dir(DIR_OK "x"), -1);
	assert_int_equal(dir(DIR_OK DIR_OK), -1);
	assert_int_equal(dir("[1,2]"), -1);
	assert_int_equal(dir("{\"newNonce\":\"http://a/n\",\"newAccount\":"
			     "\"https://a/a\",\"newOrder\":\"https://a/o\"}"), -1);
	assert_int_equal(dir("{\"newNonce\":\"https://a/n\",\"newAccount\":"
			     "\"https://a/a\"}"), -1);
	/* A URL with a control byte or a quote cannot reach a request line. */
	assert_int_equal(dir("{\"newNonce\":\"https://a/n\\r\\nX: y\",\"newAccount\":"
			     "\"https://a/a\",\"newOrder\":\"https://a/o\"}"), -1);
	assert_int_equal(dir("{\"newNonce\":\"https://a/\\\"\",\"newAccount\":"
			     "\"https://a/a\",\"newOrder\":\"https://a/o\"}"), -1);
	assert_int_equal(dir("{\"newNonce\":\"https://a/n\\u0000x\",\"newAccount\":"
			     "\"https://a/a\",\"newOrder\":\"https://a/o\"}"), -1);
}

static void body_bounded(void **state)
{
	size_t n = ACME_BODY_MAX + 10;
	char *big = malloc(n + 1);

	(void)state;
	memset(big, ' ', n);
	memcpy(big, DIR_OK, strlen(DIR_OK));
	big[n] = '\0';
	assert_int_equal(dir(big), -1);
	/* Nesting past json-c's depth bound is no object either. */
	memset(big, '[', 100);
	big[100] = '\0';
	assert_int_equal(dir(big), -1);
	free(big);
}

static int authz(const char *token, struct acme_authz *a)
{
	char buf[1024];

	snprintf(buf, sizeof(buf),
		 "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\","
		 "\"value\":\"x.test\"},\"challenges\":[{\"type\":\"http-01\","
		 "\"url\":\"https://a/c/1\",\"token\":\"%s\",\"status\":"
		 "\"pending\"}]}", token);
	return acme_parse_authz(buf, strlen(buf), a);
}

static void tokens_checked(void **state)
{
	struct acme_authz a;

	(void)state;
	assert_int_equal(authz("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA", &a), 0);
	assert_string_equal(a.identifier, "x.test");
	assert_int_equal(a.n_chal, 1);
	/* A token names a file and a hook's argument: base64url only. */
	assert_int_equal(authz("../../etc/passwd", &a), -1);
	assert_int_equal(authz("a b", &a), -1);
	assert_int_equal(authz("a;rm -rf", &a), -1);
	assert_int_equal(authz("", &a), -1);
}

static void identifiers_checked(void **state)
{
	const char *bad = "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\","
			  "\"value\":\"x.test; rm\"},\"challenges\":[]}";
	const char *ip = "{\"status\":\"pending\",\"identifier\":{\"type\":\"ip\","
			 "\"value\":\"127.0.0.1\"},\"challenges\":[]}";
	struct acme_authz a;

	(void)state;
	assert_int_equal(acme_parse_authz(bad, strlen(bad), &a), -1);
	assert_int_equal(acme_parse_authz(ip, strlen(ip), &a), -1);
}

static void order_parsed(void **state)
{
	const char *ok = "{\"status\":\"invalid\",\"finalize\":\"https://a/f\","
			 "\"authorizations\":[\"https://a/z/1\",\"https://a/z/2\"],"
			 "\"error\":{\"type\":\"urn:ietf:params:acme:error:"
			 "rejectedIdentifier\",\"detail\":\"no\"}}";
	const char *none = "{\"status\":\"pending\",\"finalize\":\"https://a/f\","
			   "\"authorizations\":[]}";
	struct acme_order o;

	(void)state;
	assert_int_equal(acme_parse_order(ok, strlen(ok), &o), 0);
	assert_int_equal(o.n_authz, 2);
	assert_string_equal(o.error.type, "rejectedIdentifier");
	assert_int_equal(acme_parse_order(none, strlen(none), &o), -1);
}

static void problem_parsed(void **state)
{
	const char *p = "{\"type\":\"urn:ietf:params:acme:error:badNonce\","
			"\"detail\":\"bad\\nnonce\",\"status\":400}";
	const char *other = "{\"type\":\"about:blank\"}";
	struct acme_problem pr;

	(void)state;
	assert_int_equal(acme_parse_problem(p, strlen(p), 400, &pr), 0);
	assert_string_equal(pr.type, "badNonce");
	/* A control byte in the detail is shown as '?', never raw. */
	assert_string_equal(pr.detail, "bad?nonce");
	assert_int_equal(acme_parse_problem(other, strlen(other), 403, &pr), 0);
	assert_string_equal(pr.type, "about:blank");
	assert_int_equal(acme_parse_problem("<html>", 6, 500, &pr), -1);
	assert_int_equal(pr.status, 500);
	assert_string_equal(pr.type, "");
}

static void links_parsed(void **state)
{
	char buf[1024];
	struct http_answer a;

	(void)state;
	snprintf(buf, sizeof(buf),
		 "HTTP/1.1 200 OK\r\nLink: <https://a/dir>;rel=\"index\"\r\n"
		 "Link: <https://a/c/alt/1>;rel=\"alternate\", "
		 "<https://a/c/alt/2>; rel=alternate\r\nReplay-Nonce: n1\r\n"
		 "Location: https://a/o/1\r\nContent-Length: 2\r\n\r\n{}");
	assert_int_equal(http_answer_parse(buf, strlen(buf), &a), 0);
	assert_int_equal(a.n_alternate, 2);
	assert_string_equal(a.alternate[1], "https://a/c/alt/2");
	assert_string_equal(a.nonce, "n1");
	assert_string_equal(a.location, "https://a/o/1");
	assert_string_equal(a.body, "{}");
	/* A control byte in a kept header: refused. */
	snprintf(buf, sizeof(buf), "HTTP/1.1 201 Created\r\nLocation: https://a/\x1b[2J"
		 "\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(http_answer_parse(buf, strlen(buf), &a), -1);
	/* A Location longer than its field: the answer is refused, not cut. */
	{
		char *big = malloc(4096);

		memset(big, 0, 4096);
		strcpy(big, "HTTP/1.1 201 Created\r\nLocation: https://a/");
		memset(big + strlen(big), 'x', 2000);
		strcat(big, "\r\n\r\n");
		assert_int_equal(http_answer_parse(big, strlen(big), &a), -1);
		free(big);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(b64url_round_trip),
		cmocka_unit_test(directory_parsed),
		cmocka_unit_test(body_bounded),
		cmocka_unit_test(tokens_checked),
		cmocka_unit_test(identifiers_checked),
		cmocka_unit_test(order_parsed),
		cmocka_unit_test(problem_parsed),
		cmocka_unit_test(links_parsed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
