/* agent/lifecycle/enroll_exec.c: exec_timeout holds whatever the helper
 * does with its stdout, and nothing of the helper's process group outlives
 * the exchange. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "enroll.h"
#include "mtls_clock.h"

#define CSR "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n" \
	    "-----END CERTIFICATE REQUEST-----\n"
#define PEM "-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	/* Orphaned grandchildren come to us, so that we can see them die. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
		return -1;
	snprintf(dir, sizeof(dir), "/tmp/test_enroll_exec.XXXXXX");
	return mkdtemp(dir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static mtls_err_t run(const char *script, unsigned timeout_ms,
		      uint64_t *elapsed_ms, struct enroll_result *res)
{
	struct cfg_renew r = { 0 };
	struct mtls_error err = { 0 };
	char cmd[512];
	uint64_t t0 = mtls_now_ms();
	mtls_err_t ret;

	snprintf(cmd, sizeof(cmd), "cd %s && { %s; }", dir, script);
	r.exec = cmd;
	r.exec_timeout_ms = timeout_ms;
	ret = enroll_exec(&r, CSR, res, &err);
	*elapsed_ms = mtls_now_ms() - t0;
	return ret;
}

static pid_t pid_from(const char *name)
{
	char path[128];
	FILE *f;
	long pid = -1;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%ld", &pid), 1);
	fclose(f);
	unlink(path);
	return (pid_t)pid;
}

/* Gone, or a zombie (ours to reap, as subreaper): waits up to 10 s for
 * the SIGKILL to land. */
static int dead(pid_t pid)
{
	uint64_t until = mtls_now_ms() + 10000;

	do {
		char path[64], st[256], *p;
		FILE *f;
		size_t n;

		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
		f = fopen(path, "r");
		if (f == NULL)
			return 1;
		n = fread(st, 1, sizeof(st) - 1, f);
		fclose(f);
		st[n] = '\0';
		p = strrchr(st, ')');
		if (p != NULL && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'))
			return 1;
		poll(NULL, 0, 20);
	} while (mtls_now_ms() < until);
	return 0;
}

static void normal_helper(void **state)
{
	struct enroll_result res;
	uint64_t ms;

	(void)state;
	assert_int_equal(run("cat >/dev/null; printf -- '" PEM "'", 10000, &ms, &res),
			 MTLS_OK);
	assert_non_null(strstr(res.chain_pem, "BEGIN CERTIFICATE"));
	free(res.chain_pem);
}

/* It closed stdout and runs on: the timeout still holds, and it is killed. */
static void closes_stdout_then_sleeps(void **state)
{
	struct enroll_result res;
	uint64_t ms;

	(void)state;
	assert_int_equal(run("exec >&-; echo $$ >pid; exec sleep 60", 1000, &ms,
			     &res),
			 MTLS_ERR_TIMEOUT);
	assert_true(ms < 15000);
	assert_true(dead(pid_from("pid")));
}

/* It printed its answer and exited; a child it left holds stdout open:
 * the helper's exit ends the exchange, the child is killed. */
static void grandchild_holds_stdout(void **state)
{
	struct enroll_result res;
	uint64_t ms;

	(void)state;
	assert_int_equal(run("cat >/dev/null; sleep 60 & echo $! >pid; "
			     "printf -- '" PEM "'; exit 0",
			     20000, &ms, &res),
			 MTLS_OK);
	assert_true(ms < 15000);
	free(res.chain_pem);
	assert_true(dead(pid_from("pid")));
}

/* It closed stdout, left a child running and exited: the child goes too. */
static void grandchild_outlives_helper(void **state)
{
	struct enroll_result res;
	uint64_t ms;

	(void)state;
	assert_int_equal(run("exec >&-; sleep 60 & echo $! >pid; exit 0", 20000,
			     &ms, &res),
			 MTLS_ERR_CERT);
	assert_true(ms < 15000);
	assert_true(dead(pid_from("pid")));
}

/* stdout open, nothing printed: killed at the timeout, group and all. */
static void silent_helper_with_child(void **state)
{
	struct enroll_result res;
	uint64_t ms;

	(void)state;
	assert_int_equal(run("sleep 60 & echo $! >pid; wait", 1000, &ms, &res),
			 MTLS_ERR_TIMEOUT);
	assert_true(ms < 15000);
	assert_true(dead(pid_from("pid")));
}

/* A helper that never reads a request larger than the pipe holds, with
 * SIGPIPE's default action (mtlsctl's): the write fails with EPIPE, and
 * the caller lives. Killed by SIGPIPE before exec_run blocked it. */
static void helper_ignores_large_input(void **state)
{
	struct cfg_renew r = { 0 };
	struct mtls_error err = { 0 };
	struct enroll_result res = { 0 };
	size_t big = 256 * 1024;
	char *csr = malloc(big + 1), cmd[512];
	mtls_err_t ret;

	(void)state;
	assert_non_null(csr);
	memset(csr, 'A', big);
	csr[big] = '\0';
	snprintf(cmd, sizeof(cmd), "exec 0<&-; sleep 0.2; printf -- '" PEM "'");
	r.exec = cmd;
	r.exec_timeout_ms = 20000;
	signal(SIGPIPE, SIG_DFL);
	ret = enroll_exec(&r, csr, &res, &err);
	signal(SIGPIPE, SIG_IGN);
	free(csr);
	/* The answer still counts: the helper did not need its input. */
	assert_int_equal(ret, MTLS_OK);
	assert_non_null(strstr(res.chain_pem, "BEGIN CERTIFICATE"));
	free(res.chain_pem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(normal_helper),
		cmocka_unit_test(closes_stdout_then_sleeps),
		cmocka_unit_test(grandchild_holds_stdout),
		cmocka_unit_test(grandchild_outlives_helper),
		cmocka_unit_test(silent_helper_with_child),
		cmocka_unit_test(helper_ignores_large_input),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
