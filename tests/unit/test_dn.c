/* RFC 4514 subjects made into DER Names: order kept, escapes, refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "dn.h"

static uint8_t out[2048];
static size_t n;

static mtls_err_t enc(const char *s)
{
	struct mtls_error err = { 0 };

	return dn_encode(s, out, sizeof(out), &n, &err);
}

static void test_order(void **state)
{
	/* The string's first RDN is the Name's last (RFC 4514 2.1). */
	static const uint8_t want[] = {
		0x30, 0x18,
		0x31, 0x0a, 0x30, 0x08, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x01, 'b',
		0x31, 0x0a, 0x30, 0x08, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x01, 'a',
	};

	(void)state;
	assert_int_equal(enc("CN=a,O=b"), MTLS_OK);
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
	/* Type names without case; a space after the comma is skipped. */
	assert_int_equal(enc("cn=a, o=b"), MTLS_OK);
	assert_memory_equal(out, want, sizeof(want));
}

static int has(const char *needle, size_t len)
{
	for (size_t i = 0; i + len <= n; i++)
		if (memcmp(out + i, needle, len) == 0)
			return 1;
	return 0;
}

static void test_values(void **state)
{
	static const uint8_t dc[] = { 0x06, 0x0a, 0x09, 0x92, 0x26, 0x89, 0x93,
				      0xf2, 0x2c, 0x64, 0x01, 0x19, 0x16, 0x03,
				      'c', 'o', 'm' };
	static const uint8_t c[] = { 0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02,
				     'D', 'E' };

	(void)state;
	assert_int_equal(enc("CN=dev\\, one,DC=corp,DC=com"), MTLS_OK);
	assert_true(has("\x0c\x08" "dev, one", 10));
	assert_true(has((const char *)dc, sizeof(dc))); /* IA5String */
	assert_int_equal(enc("CN=x,C=DE"), MTLS_OK);
	assert_true(has((const char *)c, sizeof(c))); /* PrintableString */
	/* Every special character escaped, and hex pairs (UTF-8). */
	assert_int_equal(enc("CN=\\\"\\+\\,\\;\\<\\=\\>\\\\\\#\\ "), MTLS_OK);
	assert_true(has("\x0c\x0a\"+,;<=>\\# ", 12));
	assert_int_equal(enc("CN=caf\\C3\\A9"), MTLS_OK);
	assert_true(has("\x0c\x05" "caf\xc3\xa9", 7));
	assert_int_equal(enc("CN=a,OU=x,OU=y,L=K,ST=S,STREET=1 Main,UID=u,"
			     "serialNumber=42,emailAddress=a@b.c,O=o"), MTLS_OK);
}

static void test_refused(void **state)
{
	static const char *bad[] = {
		"", "O=x", "CN", "CN=", "CN=a,", ",CN=a", "XX=a", "CN=a+O=b",
		"CN=a\\", "CN=a\\q", "CN=a\\4", "CN=a\\zz", "CN=#04024869",
		"CN=a\"b", "CN=a<b", "CN=a>b", "CN=a;b", "CN=\\01", "CN=\\7f",
		"CN=\\C3", "CN=\\C0\\80", "CN=\\ED\\A0\\80", "CN=\\F4\\90\\80\\80",
		"CN=a,C=D", "CN=a,C=D1", "CN=a,C=DEU", "CN=a,DC=\\C3\\A9",
		"CN=a,serialNumber=a_b",
	};
	char big[DN_STRING_MAX + 8];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (enc(bad[i]) == MTLS_OK)
			fail_msg("accepted: %s", bad[i]);
	}
	/* Bounds: a value over its type's limit, over DN_VALUE_MAX, too many
	 * RDNs, a string over DN_STRING_MAX. */
	memset(big, 'a', sizeof(big));
	memcpy(big, "CN=", 3);
	big[3 + 65] = '\0';
	assert_int_not_equal(enc(big), MTLS_OK);
	big[3 + 64] = '\0';
	assert_int_equal(enc(big), MTLS_OK);
	big[3 + 64] = 'a';
	big[DN_STRING_MAX + 1] = '\0';
	assert_int_not_equal(enc(big), MTLS_OK);
	{
		char many[512] = "CN=a";

		for (int i = 0; i < DN_RDN_MAX; i++)
			strcat(many, ",OU=b");
		assert_int_not_equal(enc(many), MTLS_OK);
	}
	/* The output buffer is a bound too. */
	{
		struct mtls_error err = { 0 };

		assert_int_not_equal(dn_encode("CN=abc", out, 10, &n, &err), MTLS_OK);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
