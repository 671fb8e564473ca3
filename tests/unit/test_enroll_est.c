/* agent/lifecycle/enroll_est.c, built here under AddressSanitizer: HTTP
 * Basic credentials of every length around the size of their buffers
 * (user:password of 382-384 bytes overran a stack buffer by one byte), and
 * Retry-After numbers from the wire, parsed and bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "enroll.h"
#include "mtls_secret.h"

#define CSR "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n" \
	    "-----END CERTIFICATE REQUEST-----\n"

/* The longest user:password read_basic takes (its plain buffer). */
#define PLAIN_MAX (MTLS_SECRET_MAX + 129)

static void basic_credentials_at_the_boundary(void **state)
{
	char dir[] = "/tmp/test_enroll_est.XXXXXX", pwfile[64];
	char user[512], pw[MTLS_SECRET_MAX + 1];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(pwfile, sizeof(pwfile), "%s/pw", dir);
	for (size_t total = PLAIN_MAX - 20; total <= PLAIN_MAX + 20; total++) {
		/* Longest password a secret holds; the user makes up the rest. */
		size_t pw_len = MTLS_SECRET_MAX, user_len = total - 1 - pw_len;
		struct cfg_renew r = { 0 };
		struct enroll_result res;
		struct mtls_error err = { 0 };
		mtls_err_t ret;
		FILE *f;

		memset(user, 'u', user_len);
		user[user_len] = '\0';
		memset(pw, 'p', pw_len);
		pw[pw_len] = '\0';
		f = fopen(pwfile, "w");
		assert_non_null(f);
		assert_int_equal(fputs(pw, f) >= 0, 1);
		assert_int_equal(fclose(f), 0);
		assert_int_equal(chmod(pwfile, 0600), 0);
		r.est_user = user;
		r.est_password_file = pwfile;
		/* No CA to load: the exchange stops before any connection. */
		r.est_ca = "/nonexistent/ca.pem";
		r.est_host = (char *)"127.0.0.1";
		r.est_port = 9;
		r.est_path = (char *)"/.well-known/est";
		ret = enroll_est(&r, NULL, NULL, CSR, &res, &err);
		if (total <= PLAIN_MAX) {
			if (ret != MTLS_ERR_CONFIG)
				fail_msg("user:password of %zu bytes: %s (%s)", total,
					 mtls_err_name(ret), err.detail);
		} else {
			if (ret != MTLS_ERR_ARG)
				fail_msg("user:password of %zu bytes: %s (%s), "
					 "not refused as too long", total,
					 mtls_err_name(ret), err.detail);
		}
	}
	unlink(pwfile);
	rmdir(dir);
}

/* A first enrollment without credentials names both ways to get them. */
static void first_enrollment_needs_credentials(void **state)
{
	struct cfg_renew r = { 0 };
	struct enroll_result res;
	struct mtls_error err = { 0 };

	(void)state;
	r.est_ca = "/nonexistent/ca.pem";
	r.est_host = (char *)"127.0.0.1";
	r.est_port = 9;
	r.est_path = (char *)"/.well-known/est";
	assert_int_equal(enroll_est(&r, NULL, NULL, CSR, &res, &err),
			 MTLS_ERR_CONFIG);
	assert_non_null(strstr(err.detail, "est_user= and est_password_file="));
	assert_non_null(strstr(err.detail, "or est_bootstrap_key="));
	/* Half of the Basic pair is none. */
	r.est_user = (char *)"dev";
	assert_int_equal(enroll_est(&r, NULL, NULL, CSR, &res, &err),
			 MTLS_ERR_CONFIG);
	assert_non_null(strstr(err.detail, "or est_bootstrap_key="));
	/* A bootstrap identity needs the identity's token. */
	r.est_bootstrap_key = (char *)"pkcs11:object=mfg;type=private";
	r.est_bootstrap_cert = (char *)"pkcs11:object=mfg;type=cert";
	assert_int_equal(enroll_est(&r, NULL, NULL, CSR, &res, &err),
			 MTLS_ERR_ARG);
	assert_non_null(strstr(err.detail, "est_bootstrap_key"));
}

static int retry_after(const char *value)
{
	char buf[512];
	struct http_answer a;

	snprintf(buf, sizeof(buf), "HTTP/1.1 202 Accepted\r\nRetry-After:%s\r\n"
		 "Content-Length: 0\r\n\r\n", value);
	assert_int_equal(http_answer_parse(buf, strlen(buf), &a), 0);
	assert_int_equal(a.status, 202);
	return a.retry_after;
}

/* delta-seconds only; anything else is no number; never past a day. */
static void retry_after_parsed(void **state)
{
	(void)state;
	assert_int_equal(retry_after(" 120"), 120);
	assert_int_equal(retry_after("  7  "), 7);
	assert_int_equal(retry_after(" 0"), 0);
	assert_int_equal(retry_after(" -5"), 0);
	assert_int_equal(retry_after(" +5"), 0);
	assert_int_equal(retry_after(" 12abc"), 0);
	assert_int_equal(retry_after(" Fri, 31 Dec 1999 23:59:59 GMT"), 0);
	assert_int_equal(retry_after(" 86400"), 86400);
	assert_int_equal(retry_after(" 86401"), 86400);
	assert_int_equal(retry_after(" 2147483648"), 86400);
	assert_int_equal(retry_after(" 99999999999999999999999"), 86400);
}

/* After a 202: at most the identity's retry_max. */
static void retry_after_bounded_by_retry_max(void **state)
{
	struct cfg_renew r = { 0 };

	(void)state;
	r.sched.retry_max = 4;
	assert_int_equal(est_retry_after(&r, 99999), 4);
	assert_int_equal(est_retry_after(&r, 0), 4);
	assert_int_equal(est_retry_after(&r, 2), 2);
	r.sched.retry_max = 3600;
	assert_int_equal(est_retry_after(&r, 0), 60);
	assert_int_equal(est_retry_after(&r, 120), 120);
	assert_int_equal(est_retry_after(&r, 86400), 3600);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(basic_credentials_at_the_boundary),
		cmocka_unit_test(first_enrollment_needs_credentials),
		cmocka_unit_test(retry_after_parsed),
		cmocka_unit_test(retry_after_bounded_by_retry_max),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
