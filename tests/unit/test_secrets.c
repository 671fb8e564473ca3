/* Secrets: freeing one never unlocks another's memory; an env: PIN source
 * leaves the environment at its first read, and the exec enroller's helper
 * gets a clean environment of its own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "enroll.h"
#include "mtls_secret.h"
#include "p11.h"

/* kB locked in the mapping that holds addr (/proc/self/smaps), -1 if none. */
static long locked_kb(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	int in = 0;
	long kb = -1;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
		} else if (in && sscanf(line, "Locked: %ld kB", &kb) == 1) {
			break;
		}
	}
	fclose(f);
	return in ? kb : -1;
}

/* Every page of s is still locked. */
static int all_locked(const struct mtls_secret *s)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t first = (uintptr_t)s / page, last =
		((uintptr_t)s + sizeof(*s) - 1) / page;

	return locked_kb(s) >= (long)((last - first + 1) * page / 1024);
}

/* Secrets made one after another (as malloc would place them, several to a
 * page); every other one freed: the ones left stay locked. */
static void free_keeps_neighbours_locked(void **state)
{
	struct mtls_secret *s[8];

	(void)state;
	for (int i = 0; i < 8; i++) {
		s[i] = mtls_secret_new();
		assert_non_null(s[i]);
		assert_int_equal(mtls_secret_set(s[i], "123456", 6), 0);
	}
	if (!all_locked(s[0]))
		skip(); /* mlock not allowed here (RLIMIT_MEMLOCK) */
	for (int i = 0; i < 8; i += 2)
		mtls_secret_free(s[i]);
	for (int i = 1; i < 8; i += 2) {
		assert_true(all_locked(s[i]));
		assert_string_equal(s[i]->buf, "123456");
		mtls_secret_free(s[i]);
	}
}

/* env: read once, then gone from the environment (and from the bytes
 * /proc/self/environ shows); read again from the agent's own copy. */
static void env_source_leaves_environment(void **state)
{
	struct mtls_secret *pin = mtls_secret_new();
	struct mtls_error err = { 0 };
	char buf[8192];
	FILE *f;
	size_t n;

	(void)state;
	/* ctest passes it in the environment; by hand, set here. */
	if (getenv("TEST_SECRET_PIN") == NULL)
		setenv("TEST_SECRET_PIN", "s3cret-4711", 1);
	assert_string_equal(getenv("TEST_SECRET_PIN"), "s3cret-4711");
	assert_int_equal(p11_pin_source_read("env:TEST_SECRET_PIN", pin, &err),
			 MTLS_OK);
	assert_string_equal(pin->buf, "s3cret-4711");
	assert_null(getenv("TEST_SECRET_PIN"));
	mtls_secret_wipe(pin);
	assert_int_equal(p11_pin_source_read("env:TEST_SECRET_PIN", pin, &err),
			 MTLS_OK);
	assert_string_equal(pin->buf, "s3cret-4711");
	mtls_secret_free(pin);

	f = fopen("/proc/self/environ", "r");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	assert_null(memmem(buf, n, "s3cret", 6));
}

/* The helper prints its environment: PATH, none of the agent's. */
static void helper_environment_is_clean(void **state)
{
	struct mtls_error err = { 0 };
	char envfile[64], buf[8192];
	FILE *f;
	size_t n;

	(void)state;
	setenv("TEST_HELPER_PIN", "s3cret-0815", 1);
	{
		struct cfg_renew r = { 0 };
		struct enroll_result res;
		char cmd[256];
		int fd;

		snprintf(envfile, sizeof(envfile), "/tmp/test_secrets.XXXXXX");
		fd = mkstemp(envfile);
		assert_true(fd >= 0);
		close(fd);
		setenv("TEST_OTHER_VAR", "visible-to-the-agent", 1);
		snprintf(cmd, sizeof(cmd),
			 "env >%s; printf -- '-----BEGIN CERTIFICATE-----\\n'",
			 envfile);
		r.exec = cmd;
		r.exec_timeout_ms = 20000;
		assert_int_equal(enroll_exec(&r, "csr", &res, &err), MTLS_OK);
		free(res.chain_pem);
	}
	f = fopen(envfile, "r");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	unlink(envfile);
	buf[n] = '\0';
	assert_null(strstr(buf, "s3cret"));
	assert_null(strstr(buf, "TEST_SECRET_PIN"));
	assert_null(strstr(buf, "TEST_HELPER_PIN"));
	assert_null(strstr(buf, "TEST_OTHER_VAR"));
	assert_non_null(strstr(buf, "PATH=/usr/local/sbin:/usr/local/bin:"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(free_keeps_neighbours_locked),
		cmocka_unit_test(env_source_leaves_environment),
		cmocka_unit_test(helper_environment_is_clean),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
