/* RFC 6125 name matching of server certificates (cert_names.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "cert_names.h"

/* Does the certificate name presented match the expected name ref? */
static int m(const char *ref, const char *presented)
{
	return cert_dns_id_match(ref, presented, strlen(presented));
}

static void test_exact(void **state)
{
	(void)state;
	assert_true(m("api.corp.example", "api.corp.example"));
	assert_true(m("localhost", "localhost"));
	/* Case and one trailing dot do not matter, on either side. */
	assert_true(m("API.Corp.Example", "api.CORP.example"));
	assert_true(m("api.corp.example.", "api.corp.example"));
	assert_true(m("api.corp.example", "api.corp.example."));
	/* IDNA A-labels compare as ASCII. */
	assert_true(m("xn--bcher-kva.example", "XN--BCHER-KVA.example"));
	assert_false(m("xn--bcher-kva.example", "xn--bcher-kvb.example"));
	assert_false(m("api.corp.example", "api.corp.example.org"));
	assert_false(m("api.corp.example", "corp.example"));
	assert_false(m("corp.example", "api.corp.example"));
	assert_false(m("api.corp.example", ""));
	assert_false(m("", "api.corp.example"));
	assert_false(m("api..example", "api..example"));
	assert_false(m(".example", ".example"));
	assert_false(m("a.example..", "a.example.."));
}

static void test_certificate_wildcards(void **state)
{
	(void)state;
	/* The whole left-most label, exactly one label. */
	assert_true(m("api.corp.example", "*.corp.example"));
	assert_true(m("API.corp.example.", "*.CORP.example"));
	assert_true(m("xn--bcher-kva.corp.example", "*.corp.example"));
	assert_false(m("corp.example", "*.corp.example"));
	assert_false(m("a.api.corp.example", "*.corp.example"));
	assert_false(m(".corp.example", "*.corp.example"));
	/* Never alone, never partial, never twice, never deeper. */
	assert_false(m("localhost", "*"));
	assert_false(m("evil.example", "*"));
	assert_false(m("evil.example", "*.*"));
	assert_false(m("a.b.example", "*.*.example"));
	assert_false(m("api.corp.example", "*.*.example"));
	assert_false(m("api.corp.example", "a*.corp.example"));
	assert_false(m("api.corp.example", "*i.corp.example"));
	assert_false(m("api.corp.example", "a*i.corp.example"));
	assert_false(m("api.corp.example", "api.*.example"));
	assert_false(m("api.corp.example", "api.corp.*"));
	assert_false(m("api.corp.example", "?pi.corp.example"));
	/* Not over a single remaining label (a top-level domain). */
	assert_false(m("example.com", "*.com"));
	assert_false(m("corp.example", "*.example"));
	assert_false(m("a.example.", "*.example."));
}

static void test_profile_patterns(void **state)
{
	(void)state;
	/* A profile may expect any name of one zone... */
	assert_true(m("*.corp.example", "api.corp.example"));
	/* ...which a wildcard certificate for that zone covers... */
	assert_true(m("*.corp.example", "*.CORP.example"));
	assert_false(m("*.corp.example", "*.other.example"));
	/* ...and nothing wider, deeper or looser. */
	assert_false(m("*.corp.example", "corp.example"));
	assert_false(m("*.corp.example", "a.b.corp.example"));
	assert_false(m("*.corp.example", "*.example"));
	assert_false(m("*", "localhost"));
	assert_false(m("*", "*"));
	assert_false(m("*.*", "evil.example"));
	assert_false(m("*.*.*", "a.b.c"));
	assert_false(m("a*", "api"));
	assert_false(m("a*.corp.example", "api.corp.example"));
	assert_false(m("*.com", "example.com"));
	assert_false(m("?pi.corp.example", "api.corp.example"));
}

static void test_presented_bytes(void **state)
{
	(void)state;
	/* A NUL inside a certificate's name ends nothing: no match. */
	assert_false(cert_dns_id_match("api.corp.example",
				       "api.corp.example\0.evil", 23));
	/* Only the len bytes count. */
	assert_true(cert_dns_id_match("api.corp.example",
				      "api.corp.exampleXYZ", 16));
	{
		char longname[300];

		memset(longname, 'a', sizeof(longname));
		longname[sizeof(longname) - 1] = '\0';
		assert_false(m(longname, longname));
	}
}

static void test_addresses(void **state)
{
	uint8_t a[16], v4[16] = { 127, 0, 0, 1 }; /* addr is 16 bytes wide */
	uint8_t v6[16] = { [15] = 1 };
	uint8_t mapped[16] = { [10] = 0xff, [11] = 0xff, 127, 0, 0, 1 };

	(void)state;
	assert_int_equal(cert_ip_literal("127.0.0.1", a), 4);
	assert_memory_equal(a, v4, 4);
	assert_int_equal(cert_ip_literal("::1", a), 6);
	assert_memory_equal(a, v6, 16);
	assert_int_equal(cert_ip_literal("[::1]", a), 6);
	assert_int_equal(cert_ip_literal("::ffff:127.0.0.1", a), 4);
	assert_memory_equal(a, v4, 4);
	assert_int_equal(cert_ip_literal("localhost", a), 0);
	assert_int_equal(cert_ip_literal("127.1", a), 0);
	assert_int_equal(cert_ip_literal("2130706433", a), 0);

	assert_true(cert_ip_id_match(4, v4, v4, 4));
	assert_true(cert_ip_id_match(6, v6, v6, 16));
	/* A certificate may write an IPv4 address as ::ffff:a.b.c.d. */
	assert_true(cert_ip_id_match(4, v4, mapped, 16));
	assert_false(cert_ip_id_match(6, v6, v4, 4));
	assert_false(cert_ip_id_match(4, v4, v6, 16));
	assert_false(cert_ip_id_match(4, v4, (const uint8_t *)"\x7f\0\0\x02", 4));
	assert_false(cert_ip_id_match(4, v4, v4, 3));
	assert_false(cert_ip_id_match(0, v4, v4, 4));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact),
		cmocka_unit_test(test_certificate_wildcards),
		cmocka_unit_test(test_profile_patterns),
		cmocka_unit_test(test_presented_bytes),
		cmocka_unit_test(test_addresses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
