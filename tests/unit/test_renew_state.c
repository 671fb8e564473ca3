/* agent/runtime/renew_state.c: the state file's write never goes through
 * what someone planted at NAME.state.tmp (a symlink, a hard link, a FIFO),
 * and a state folder others may write to is refused. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "renew_state.h"

static char base[64], dir[96], victim[96], tmp[128];

static int setup(void **state)
{
	FILE *f;

	(void)state;
	snprintf(base, sizeof(base), "/tmp/test_renew_state.XXXXXX");
	if (mkdtemp(base) == NULL)
		return -1;
	snprintf(dir, sizeof(dir), "%s/state", base);
	snprintf(victim, sizeof(victim), "%s/victim", base);
	snprintf(tmp, sizeof(tmp), "%s/id.state.tmp", dir);
	if (mkdir(dir, 0700) != 0 || (f = fopen(victim, "w")) == NULL)
		return -1;
	fputs("precious\n", f);
	return fclose(f);
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
	return system(cmd) == 0 ? 0 : -1;
}

static void victim_untouched(void)
{
	char buf[64] = "";
	FILE *f = fopen(victim, "r");

	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_string_equal(buf, "precious\n");
}

/* Saves generation gen and reads it back. */
static void save_and_load(unsigned gen)
{
	struct renew_state st = { 0 }, back;
	struct mtls_error err = { 0 };

	st.generation = gen;
	snprintf(st.last_result, sizeof(st.last_result), "ok");
	if (renew_state_save(dir, "id", &st, &err) != MTLS_OK)
		fail_msg("save: %s", err.detail);
	assert_int_equal(renew_state_load(dir, "id", &back, &err), MTLS_OK);
	assert_int_equal(back.generation, gen);
	assert_int_equal(access(tmp, F_OK), -1);
}

static void symlink_at_tmp(void **state)
{
	(void)state;
	unlink(tmp);
	assert_int_equal(symlink(victim, tmp), 0);
	save_and_load(3);
	victim_untouched();
}

static void hard_link_at_tmp(void **state)
{
	(void)state;
	unlink(tmp); /* each test plants its own */
	assert_int_equal(link(victim, tmp), 0);
	save_and_load(4);
	victim_untouched();
}

/* A FIFO would block the open for ever (no reader): the test ends by
 * SIGALRM if it does. */
static void fifo_at_tmp(void **state)
{
	(void)state;
	unlink(tmp);
	assert_int_equal(mkfifo(tmp, 0600), 0);
	alarm(30);
	save_and_load(5);
	alarm(0);
}

static void folder_others_may_write(void **state)
{
	struct renew_state st = { 0 };
	struct mtls_error err = { 0 };

	(void)state;
	assert_int_equal(chmod(dir, 0777), 0);
	assert_int_equal(renew_state_save(dir, "id", &st, &err),
			 MTLS_ERR_PERMISSION);
	assert_int_equal(renew_state_load(dir, "id", &st, &err),
			 MTLS_ERR_PERMISSION);
	assert_int_equal(chmod(dir, 0700), 0);
	save_and_load(6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(symlink_at_tmp),
		cmocka_unit_test(hard_link_at_tmp),
		cmocka_unit_test(fifo_at_tmp),
		cmocka_unit_test(folder_others_may_write),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
