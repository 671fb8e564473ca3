/* pkcs11/mech.c: mechanism names and flags, the key-size check with its
 * units, and what a key can sign with, against a mock module that answers
 * C_GetMechanismList, C_GetMechanismInfo and C_SignInit (a token already
 * found, a key handle already cached; the integration test token_mech
 * uses a real token). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11_internal.h"

static void test_names(void **state)
{
	char buf[128];

	(void)state;
	assert_string_equal(p11_mech_name(CKM_RSA_PKCS_PSS), "CKM_RSA_PKCS_PSS");
	assert_string_equal(p11_mech_name(CKM_ECDSA), "CKM_ECDSA");
	assert_string_equal(p11_mech_name(CKM_RSA_PKCS_KEY_PAIR_GEN),
			    "CKM_RSA_PKCS_KEY_PAIR_GEN");
	assert_string_equal(p11_mech_name(0x80000123UL), "CKM_0x80000123");
	assert_string_equal(p11_sign_mech_name(P11_SIGN_ECDSA), "CKM_ECDSA");
	assert_string_equal(p11_sign_mech_name(P11_SIGN_RSA_PKCS),
			    "CKM_RSA_PKCS");
	assert_string_equal(p11_sign_mech_name(P11_SIGN_RSA_PSS),
			    "CKM_RSA_PKCS_PSS");
	p11_mech_flags_text(CKF_SIGN | CKF_VERIFY | CKF_HW, buf, sizeof(buf));
	assert_string_equal(buf, "hw sign verify");
	p11_mech_flags_text(0, buf, sizeof(buf));
	assert_string_equal(buf, "");
	p11_mech_flags_text(CKF_SIGN | (1UL << 30), buf, sizeof(buf));
	assert_string_equal(buf, "sign 0x40000000");
	/* Cut short, marked, terminated. */
	p11_mech_flags_text(CKF_ENCRYPT | CKF_DECRYPT | CKF_SIGN | CKF_VERIFY,
			    buf, 12);
	assert_int_equal(strlen(buf), 11);
	assert_string_equal(buf + 8, "...");
}

static void test_key_size_units(void **state)
{
	(void)state;
	/* Bits, as PKCS#11 2.40 says (SoftHSM: RSA 512..16384, EC 112..521). */
	assert_true(p11_mech_key_size_ok(P11_KEY_RSA, 2048, 512, 16384));
	assert_true(p11_mech_key_size_ok(P11_KEY_EC, 256, 112, 521));
	assert_true(p11_mech_key_size_ok(P11_KEY_EC, 521, 112, 521));
	assert_false(p11_mech_key_size_ok(P11_KEY_RSA, 4096, 1024, 2048));
	assert_false(p11_mech_key_size_ok(P11_KEY_RSA, 2048, 3072, 4096));
	assert_false(p11_mech_key_size_ok(P11_KEY_EC, 521, 256, 384));
	/* Bytes, as some tokens give it: a range in bits could hold no
	 * key we sign with, so bytes it is. */
	assert_true(p11_mech_key_size_ok(P11_KEY_RSA, 2048, 128, 512));
	assert_true(p11_mech_key_size_ok(P11_KEY_RSA, 4096, 64, 512));
	assert_false(p11_mech_key_size_ok(P11_KEY_RSA, 8192, 64, 512));
	assert_true(p11_mech_key_size_ok(P11_KEY_EC, 256, 32, 66));
	assert_true(p11_mech_key_size_ok(P11_KEY_EC, 521, 32, 66));
	assert_false(p11_mech_key_size_ok(P11_KEY_EC, 384, 20, 32));
	/* A range that says nothing, or no upper bound. */
	assert_true(p11_mech_key_size_ok(P11_KEY_RSA, 2048, 0, 0));
	assert_true(p11_mech_key_size_ok(P11_KEY_EC, 384, 0, 0));
	assert_true(p11_mech_key_size_ok(P11_KEY_RSA, 3072, 1024, 0));
	assert_false(p11_mech_key_size_ok(P11_KEY_RSA, 2048, 4096, 0));
}

/* The mock module. */
static struct {
	CK_RV list_rv;
	CK_MECHANISM_TYPE types[8];
	CK_MECHANISM_INFO info[8];
	CK_RV info_rv[8];
	CK_ULONG n;
	unsigned list_calls;
	CK_RV sign_init_rv;       /* what C_SignInit answers */
	CK_MECHANISM_TYPE probed[4];
	unsigned n_probed, opened, closed;
} mock;

static CK_RV mock_sign_init(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m,
			    CK_OBJECT_HANDLE key)
{
	assert_int_equal(key, 5);
	(void)s;
	if (m->mechanism == CKM_RSA_PKCS_PSS) {
		CK_RSA_PKCS_PSS_PARAMS *p = m->pParameter;

		assert_int_equal(m->ulParameterLen, sizeof(*p));
		assert_int_equal(p->hashAlg, CKM_SHA256);
		assert_int_equal(p->mgf, CKG_MGF1_SHA256);
		assert_int_equal(p->sLen, 32);
	}
	if (mock.n_probed < 4)
		mock.probed[mock.n_probed++] = m->mechanism;
	return mock.sign_init_rv;
}

static CK_RV mock_open(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app,
		       CK_NOTIFY notify, CK_SESSION_HANDLE_PTR s)
{
	(void)flags;
	(void)app;
	(void)notify;
	assert_int_equal(slot, 7);
	*s = 100 + ++mock.opened;
	return CKR_OK;
}

static CK_RV mock_close(CK_SESSION_HANDLE s)
{
	(void)s;
	mock.closed++;
	return CKR_OK;
}

/* A probe must not log the token out: no C_Login follows it. */
static CK_RV mock_login(CK_SESSION_HANDLE s, CK_USER_TYPE u, CK_UTF8CHAR_PTR pin,
			CK_ULONG len)
{
	(void)s;
	(void)u;
	(void)pin;
	(void)len;
	fail_msg("C_Login: the token was logged out");
	return CKR_GENERAL_ERROR;
}

static CK_RV mock_list(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list,
		       CK_ULONG_PTR n)
{
	assert_int_equal(slot, 7);
	mock.list_calls++;
	if (mock.list_rv != CKR_OK)
		return mock.list_rv;
	if (list != NULL) {
		if (*n < mock.n) {
			*n = mock.n;
			return CKR_BUFFER_TOO_SMALL;
		}
		memcpy(list, mock.types, mock.n * sizeof(*list));
	}
	*n = mock.n;
	return CKR_OK;
}

static CK_RV mock_info(CK_SLOT_ID slot, CK_MECHANISM_TYPE type,
		       CK_MECHANISM_INFO_PTR info)
{
	assert_int_equal(slot, 7);
	for (CK_ULONG i = 0; i < mock.n; i++)
		if (mock.types[i] == type) {
			*info = mock.info[i];
			return mock.info_rv[i];
		}
	return CKR_MECHANISM_INVALID;
}

static void mock_add(CK_MECHANISM_TYPE type, CK_ULONG min, CK_ULONG max,
		     CK_FLAGS flags, CK_RV rv)
{
	mock.types[mock.n] = type;
	mock.info[mock.n] = (CK_MECHANISM_INFO){ min, max, flags };
	mock.info_rv[mock.n] = rv;
	mock.n++;
}

static CK_FUNCTION_LIST mock_fn;
static struct p11_module mock_module;

/* A token found in slot 7, logged in, with one idle session of two, and a
 * key of that token with its handle found. */
static void mock_token(struct p11_token *t, struct p11_key *k,
		       enum p11_key_type type, unsigned bits)
{
	memset(&mock_fn, 0, sizeof(mock_fn));
	mock_fn.C_GetMechanismList = mock_list;
	mock_fn.C_GetMechanismInfo = mock_info;
	mock_fn.C_SignInit = mock_sign_init;
	mock_fn.C_OpenSession = mock_open;
	mock_fn.C_CloseSession = mock_close;
	mock_fn.C_Login = mock_login;
	mock_module.fn = &mock_fn;
	memset(t, 0, sizeof(*t));
	t->m = &mock_module;
	snprintf(t->uri, sizeof(t->uri), "pkcs11:token=mock");
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->idle_cv, NULL);
	t->present = 1;
	t->slot = 7;
	t->logged_in = 1;
	t->idle[0] = 1;
	t->n_idle = t->n_open = 1;
	t->max_sessions = 2;
	memset(k, 0, sizeof(*k));
	k->t = t;
	k->type = type;
	k->bits = bits;
	k->handle = 5;
	k->handle_gen = t->generation;
	pthread_mutex_init(&k->lock, NULL);
}

static void mock_done(struct p11_token *t, struct p11_key *k)
{
	pthread_mutex_destroy(&k->lock);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->idle_cv);
	memset(&mock, 0, sizeof(mock));
}

#define CAN(m) (1u << (m))

static void test_caps_rsa(void **state)
{
	struct p11_token t;
	struct p11_key k;
	struct p11_sign_caps c;
	struct p11_mech list[8];
	size_t n;

	(void)state;
	mock_add(CKM_SHA256, 0, 0, CKF_DIGEST, CKR_OK);
	mock_add(CKM_RSA_PKCS, 512, 16384, CKF_SIGN | CKF_VERIFY, CKR_OK);
	mock_add(CKM_RSA_PKCS_PSS, 512, 16384, CKF_SIGN | CKF_VERIFY, CKR_OK);
	mock_add(CKM_ECDSA, 112, 521, CKF_SIGN, CKR_OK);
	mock_token(&t, &k, P11_KEY_RSA, 2048);
	assert_int_equal(p11_key_sign_caps(&k, &c, NULL), MTLS_OK);
	assert_true(c.listed);
	assert_int_equal(c.can, CAN(P11_SIGN_RSA_PKCS) | CAN(P11_SIGN_RSA_PSS));
	assert_string_equal(c.why[P11_SIGN_ECDSA], "not for RSA keys");
	assert_int_equal(p11_token_mechanisms(&t, list, 8, &n, NULL), MTLS_OK);
	assert_int_equal(n, 4);
	assert_int_equal(list[2].type, CKM_RSA_PKCS_PSS);
	assert_int_equal(list[2].min_key, 512);
	assert_int_equal(list[2].max_key, 16384);
	assert_int_equal(list[2].flags, CKF_SIGN | CKF_VERIFY);
	/* Read once per token generation. */
	assert_int_equal(mock.list_calls, 2);
	assert_int_equal(p11_key_sign_caps(&k, &c, NULL), MTLS_OK);
	assert_int_equal(mock.list_calls, 2);
	assert_int_equal(mock.n_probed, 0); /* the list said yes */
	/* The token was reset (removed, found again): read again, and this
	 * one has no PSS, and its C_SignInit says so too. */
	mock.n = 2;
	mock.sign_init_rv = CKR_MECHANISM_INVALID;
	t.generation++;
	k.handle_gen = t.generation;
	assert_int_equal(p11_key_sign_caps(&k, &c, NULL), MTLS_OK);
	assert_int_equal(mock.list_calls, 4);
	assert_int_equal(c.can, CAN(P11_SIGN_RSA_PKCS));
	assert_string_equal(c.why[P11_SIGN_RSA_PSS],
			    "not in the token's mechanism list; C_SignInit: "
			    "CKR_MECHANISM_INVALID");
	assert_int_equal(mock.n_probed, 1);
	assert_int_equal(mock.probed[0], CKM_RSA_PKCS_PSS);
	/* The probe's own session was closed, not pooled with an operation
	 * active in it; the pooled one stayed, and with it the login. */
	assert_int_equal(mock.opened, 1);
	assert_int_equal(mock.closed, 1);
	assert_int_equal(t.n_idle, 1);
	assert_int_equal(t.n_open, 1);
	assert_true(t.logged_in);
	/* Fewer copied than the token has. */
	assert_int_equal(p11_token_mechanisms(&t, list, 1, &n, NULL), MTLS_OK);
	assert_int_equal(n, 2);
	assert_int_equal(list[0].type, CKM_SHA256);
	mock_done(&t, &k);
}

static void test_caps_refusals(void **state)
{
	struct p11_token t;
	struct p11_key k;
	struct p11_sign_caps c;

	(void)state;
	/* Listed but: no CKF_SIGN; info refused; key too large. */
	mock_add(CKM_RSA_PKCS, 512, 4096, CKF_ENCRYPT | CKF_DECRYPT, CKR_OK);
	mock_add(CKM_RSA_PKCS_PSS, 0, 0, 0, CKR_MECHANISM_INVALID);
	mock_add(CKM_ECDSA, 256, 384, CKF_SIGN, CKR_OK);
	mock_token(&t, &k, P11_KEY_RSA, 2048);
	mock.sign_init_rv = CKR_KEY_FUNCTION_NOT_PERMITTED;
	assert_int_equal(p11_key_sign_caps(&k, &c, NULL), MTLS_OK);
	assert_int_equal(c.can, 0);
	assert_string_equal(c.why[P11_SIGN_RSA_PKCS],
			    "listed without CKF_SIGN; C_SignInit: "
			    "CKR_KEY_FUNCTION_NOT_PERMITTED");
	assert_string_equal(c.why[P11_SIGN_RSA_PSS],
			    "C_GetMechanismInfo: CKR_MECHANISM_INVALID; "
			    "C_SignInit: CKR_KEY_FUNCTION_NOT_PERMITTED");
	/* Each probe opened a session of its own and closed it. */
	assert_int_equal(mock.n_probed, 2);
	assert_int_equal(mock.opened, 2);
	assert_int_equal(mock.closed, 2);
	assert_int_equal(t.n_open, 1);
	mock_done(&t, &k);

	mock_add(CKM_ECDSA, 256, 384, CKF_SIGN, CKR_OK);
	mock_token(&t, &k, P11_KEY_EC, 521);
	mock.sign_init_rv = CKR_KEY_SIZE_RANGE;
	assert_int_equal(p11_key_sign_caps(&k, &c, NULL), MTLS_OK);
	assert_int_equal(c.can, 0);
	assert_string_equal(c.why[P11_SIGN_ECDSA],
			    "key of 521 bits outside the token's 256..384; "
			    "C_SignInit: CKR_KEY_SIZE_RANGE");
	assert_string_equal(c.why[P11_SIGN_RSA_PKCS], "not for EC keys");
	mock_done(&t, &k);
}

static void test_caps_unlisted_but_accepted(void **state)
{
	struct p11_token t;
	struct p11_key k;
	struct p11_sign_caps c;

	(void)state;
	/* tpm2-pkcs11 1.9: RSA-PSS works but is not in the list. */
	mock_add(CKM_RSA_PKCS, 1024, 3072, CKF_HW | CKF_SIGN, CKR_OK);
	mock_add(CKM_ECDSA, 192, 638, CKF_HW | CKF_SIGN, CKR_OK);
	mock_token(&t, &k, P11_KEY_RSA, 2048);
	mock.sign_init_rv = CKR_OK;
	assert_int_equal(p11_key_sign_caps(&k, &c, NULL), MTLS_OK);
	assert_int_equal(c.can, CAN(P11_SIGN_RSA_PKCS) | CAN(P11_SIGN_RSA_PSS));
	assert_string_equal(c.why[P11_SIGN_RSA_PSS],
			    "not in the token's mechanism list, but C_SignInit "
			    "accepts it");
	assert_string_equal(c.why[P11_SIGN_RSA_PKCS], "");
	assert_int_equal(mock.n_probed, 1);
	/* Accepted: the operation it began ended with its session. */
	assert_int_equal(mock.closed, 1);
	assert_int_equal(t.n_idle, 1);
	mock_done(&t, &k);
}

static void test_probe_full_pool(void **state)
{
	struct p11_token t;
	struct p11_key k;
	struct p11_sign_caps c;

	(void)state;
	/* No room for a second session: the pooled one asks and goes. */
	mock_add(CKM_RSA_PKCS, 1024, 3072, CKF_SIGN, CKR_OK);
	mock_token(&t, &k, P11_KEY_RSA, 2048);
	t.max_sessions = 1;
	assert_int_equal(p11_key_sign_caps(&k, &c, NULL), MTLS_OK);
	assert_int_equal(c.can, CAN(P11_SIGN_RSA_PKCS) | CAN(P11_SIGN_RSA_PSS));
	assert_int_equal(mock.opened, 0);
	assert_int_equal(mock.closed, 1);
	assert_int_equal(t.n_open, 0);
	assert_false(t.logged_in);
	mock_done(&t, &k);
}

static void test_caps_no_list(void **state)
{
	struct p11_token t;
	struct p11_key k;
	struct p11_sign_caps c;
	size_t n = 99;
	struct p11_mech list[1];

	(void)state;
	/* A token without a mechanism list: every mechanism of the key's
	 * type is assumed, as before the list was read. */
	mock.list_rv = CKR_FUNCTION_NOT_SUPPORTED;
	mock_token(&t, &k, P11_KEY_RSA, 3072);
	assert_int_equal(p11_key_sign_caps(&k, &c, NULL), MTLS_OK);
	assert_false(c.listed);
	assert_int_equal(c.list_rv, CKR_FUNCTION_NOT_SUPPORTED);
	assert_int_equal(c.can, CAN(P11_SIGN_RSA_PKCS) | CAN(P11_SIGN_RSA_PSS));
	assert_int_equal(p11_token_mechanisms(&t, list, 1, &n, NULL), MTLS_OK);
	assert_int_equal(n, 0);
	mock_done(&t, &k);

	/* A token that went away: an error with the CK_RV, not a guess. */
	mock.list_rv = CKR_DEVICE_REMOVED;
	mock_token(&t, &k, P11_KEY_EC, 256);
	{
		struct mtls_error err = { 0 };

		assert_int_equal(p11_key_sign_caps(&k, &c, &err),
				 MTLS_ERR_TOKEN_ABSENT);
		assert_non_null(strstr(err.detail, "C_GetMechanismList: "
					"CKR_DEVICE_REMOVED"));
	}
	mock_done(&t, &k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_key_size_units),
		cmocka_unit_test(test_caps_rsa),
		cmocka_unit_test(test_caps_refusals),
		cmocka_unit_test(test_caps_unlisted_but_accepted),
		cmocka_unit_test(test_probe_full_pool),
		cmocka_unit_test(test_caps_no_list),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
