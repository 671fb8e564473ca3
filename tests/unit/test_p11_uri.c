/* pkcs11/: URIs, PIN sources, error mapping and CK_RV names. No token is
 * needed; the integration tests cover the token paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "p11_internal.h"

static void test_rv_names(void **state)
{
	(void)state;
	assert_string_equal(p11_rv_name(CKR_OK), "CKR_OK");
	assert_string_equal(p11_rv_name(CKR_PIN_INCORRECT), "CKR_PIN_INCORRECT");
	assert_string_equal(p11_rv_name(CKR_DEVICE_REMOVED), "CKR_DEVICE_REMOVED");
	assert_string_equal(p11_rv_name(CKR_TOKEN_NOT_PRESENT),
			    "CKR_TOKEN_NOT_PRESENT");
	assert_string_equal(p11_rv_name(0x80001234UL), "CKR_0x80001234");
}

static void test_rv_error_mapping(void **state)
{
	static const struct {
		CK_RV rv;
		mtls_err_t code;
	} map[] = {
		{ CKR_DEVICE_REMOVED, MTLS_ERR_TOKEN_ABSENT },
		{ CKR_TOKEN_NOT_PRESENT, MTLS_ERR_TOKEN_ABSENT },
		{ CKR_PIN_INCORRECT, MTLS_ERR_PIN_INCORRECT },
		{ CKR_PIN_LOCKED, MTLS_ERR_PIN_LOCKED },
		{ CKR_MECHANISM_INVALID, MTLS_ERR_MECHANISM },
		{ CKR_FUNCTION_FAILED, MTLS_ERR_TOKEN },
		{ CKR_GENERAL_ERROR, MTLS_ERR_TOKEN },
	};
	struct mtls_error err;

	(void)state;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		assert_int_equal(p11_rv_error(&err, map[i].rv, "C_Sign",
					      "pkcs11:token=t"),
				 map[i].code);
		assert_int_equal(err.code, map[i].code);
		/* Every failure carries its CK_RV name and the URI. */
		assert_non_null(strstr(err.detail, p11_rv_name(map[i].rv)));
		assert_non_null(strstr(err.detail, "pkcs11:token=t"));
		assert_non_null(strstr(err.detail, "C_Sign"));
	}
	assert_true(p11_rv_token_lost(CKR_DEVICE_REMOVED));
	assert_true(p11_rv_token_lost(CKR_SESSION_HANDLE_INVALID));
	assert_false(p11_rv_token_lost(CKR_PIN_INCORRECT));
	assert_false(p11_rv_token_lost(CKR_OK));
}

static void test_error_names_complete(void **state)
{
	(void)state;
	for (int i = 0; i < MTLS_ERR__COUNT; i++) {
		assert_non_null(mtls_err_name((mtls_err_t)i));
		assert_non_null(mtls_err_msg((mtls_err_t)i));
		assert_string_not_equal(mtls_err_name((mtls_err_t)i), "unknown");
	}
	assert_string_equal(mtls_err_name(MTLS_ERR__COUNT), "unknown");
}

static void test_uri_parse(void **state)
{
	struct mtls_error err = { 0 };
	P11KitUri *u;
	CK_ATTRIBUTE *a;
	CK_TOKEN_INFO ti;

	(void)state;
	assert_int_equal(p11_uri_parse("pkcs11:token=My%20Token;object=k1;"
				       "id=%01%02;type=private;serial=42;"
				       "model=SoftHSM%20v2;manufacturer=SoftHSM"
				       "?pin-source=file:/p", &u, &err),
			 MTLS_OK);
	a = p11_kit_uri_get_attribute(u, CKA_LABEL);
	assert_non_null(a);
	assert_int_equal(a->ulValueLen, 2);
	assert_memory_equal(a->pValue, "k1", 2);
	a = p11_kit_uri_get_attribute(u, CKA_ID);
	assert_non_null(a);
	assert_int_equal(a->ulValueLen, 2);
	assert_memory_equal(a->pValue, "\x01\x02", 2);
	a = p11_kit_uri_get_attribute(u, CKA_CLASS);
	assert_non_null(a);
	assert_int_equal(*(CK_OBJECT_CLASS *)a->pValue, CKO_PRIVATE_KEY);
	assert_string_equal(p11_kit_uri_get_pin_source(u), "file:/p");

	memset(&ti, ' ', sizeof(ti));
	memcpy(ti.label, "My Token", 8);
	memcpy(ti.serialNumber, "42", 2);
	memcpy(ti.model, "SoftHSM v2", 10);
	memcpy(ti.manufacturerID, "SoftHSM", 7);
	assert_true(p11_kit_uri_match_token_info(u, &ti));
	memcpy(ti.serialNumber, "43", 2);
	assert_false(p11_kit_uri_match_token_info(u, &ti));
	p11_kit_uri_free(u);

	assert_int_equal(p11_uri_parse("pkcs11:slot-id=7", &u, &err), MTLS_OK);
	assert_int_equal(p11_kit_uri_get_slot_id(u), 7);
	p11_kit_uri_free(u);

	assert_int_equal(p11_uri_parse("http://x", &u, &err), MTLS_ERR_URI);
	assert_int_equal(p11_uri_parse("pkcs11:id=%zz", &u, &err), MTLS_ERR_URI);
	assert_int_equal(p11_uri_parse(NULL, &u, &err), MTLS_ERR_URI);
}

static void test_uri_redact(void **state)
{
	char out[256];

	(void)state;
	p11_uri_redact("pkcs11:token=t?pin-value=1234", out, sizeof(out));
	assert_string_equal(out, "pkcs11:token=t?pin-value=***");
	p11_uri_redact("pkcs11:token=t?pin-value=1234&module-name=x", out,
		       sizeof(out));
	assert_string_equal(out, "pkcs11:token=t?pin-value=***&module-name=x");
	p11_uri_redact("pkcs11:token=t", out, sizeof(out));
	assert_string_equal(out, "pkcs11:token=t");
}

static void write_file(const char *path, const char *data, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(data, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_pin_sources(void **state)
{
	char dir[] = "/tmp/test_p11_pin.XXXXXX", path[128], src[160];
	struct mtls_secret *pin = mtls_secret_new();
	struct mtls_error err = { 0 };

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/pin", dir);
	snprintf(src, sizeof(src), "file:%s", path);

	write_file(path, "123456\n", 0600);
	assert_int_equal(p11_pin_from_source(src, pin, &err), MTLS_OK);
	assert_string_equal(pin->buf, "123456");
	assert_int_equal(pin->len, 6);

	/* Group- or world-readable PIN files are refused. */
	write_file(path, "123456\n", 0640);
	assert_int_equal(p11_pin_from_source(src, pin, &err),
			 MTLS_ERR_PERMISSION);
	assert_non_null(strstr(err.detail, "0640"));
	write_file(path, "123456\n", 0604);
	assert_int_equal(p11_pin_from_source(src, pin, &err),
			 MTLS_ERR_PERMISSION);

	write_file(path, "\n", 0600);
	assert_int_equal(p11_pin_from_source(src, pin, &err),
			 MTLS_ERR_PIN_MISSING);

	/* systemd credentials: $CREDENTIALS_DIRECTORY/NAME. */
	snprintf(path, sizeof(path), "%s/token-pin", dir);
	write_file(path, "654321", 0440);
	setenv("CREDENTIALS_DIRECTORY", dir, 1);
	assert_int_equal(p11_pin_from_source("credential:token-pin", pin, &err),
			 MTLS_OK);
	assert_string_equal(pin->buf, "654321");
	assert_int_equal(p11_pin_from_source("credential:../x", pin, &err),
			 MTLS_ERR_CONFIG);
	unsetenv("CREDENTIALS_DIRECTORY");
	assert_int_equal(p11_pin_from_source("credential:token-pin", pin, &err),
			 MTLS_ERR_PIN_MISSING);

	setenv("TEST_P11_PIN", "777777", 1);
	assert_int_equal(p11_pin_from_source("env:TEST_P11_PIN", pin, &err),
			 MTLS_OK);
	assert_string_equal(pin->buf, "777777");
	assert_int_equal(p11_pin_from_source("env:TEST_P11_UNSET", pin, &err),
			 MTLS_ERR_PIN_MISSING);
	assert_int_equal(p11_pin_from_source("ftp:x", pin, &err),
			 MTLS_ERR_CONFIG);

	/* Wiping leaves nothing behind. */
	mtls_secret_wipe(pin);
	for (size_t i = 0; i < sizeof(pin->buf); i++)
		assert_int_equal(pin->buf[i], 0);
	mtls_secret_free(pin);

	unlink(path);
	snprintf(path, sizeof(path), "%s/pin", dir);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rv_names),
		cmocka_unit_test(test_rv_error_mapping),
		cmocka_unit_test(test_error_names_complete),
		cmocka_unit_test(test_uri_parse),
		cmocka_unit_test(test_uri_redact),
		cmocka_unit_test(test_pin_sources),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
