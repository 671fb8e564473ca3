/* The pinentry Assuan client: escaping of the texts it sends, parsing and
 * percent-decoding of the answers, bounds, cancel; and a dialogue with a
 * scripted Assuan server that reports which fds and environment it got. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "pinentry.h"

static void test_escape(void **state)
{
	char out[32];

	(void)state;
	assert_int_equal(pinentry_escape("a%b\nc\rd", out, sizeof(out)), MTLS_OK);
	assert_string_equal(out, "a%25b%0Ac%0Dd");
	assert_int_equal(pinentry_escape("", out, sizeof(out)), MTLS_OK);
	assert_string_equal(out, "");
	/* 4 bytes and the NUL do not fit in 4. */
	assert_int_equal(pinentry_escape("abcd", out, 4), MTLS_ERR_LIMIT);
	assert_int_equal(pinentry_escape("a%", out, 4), MTLS_ERR_LIMIT);
	assert_int_equal(pinentry_escape("abc", out, 4), MTLS_OK);
}

static enum pinentry_reply parse(const char *l, struct mtls_secret *s)
{
	return pinentry_parse(l, strlen(l), s);
}

static void test_parse(void **state)
{
	struct mtls_secret *s = mtls_secret_new();
	char big[PINENTRY_LINE_MAX + 8];

	(void)state;
	assert_non_null(s);
	assert_int_equal(parse("OK", s), PINENTRY_R_OK);
	assert_int_equal(parse("OK Pleased to meet you", s), PINENTRY_R_OK);
	assert_int_equal(parse("OKAY", s), PINENTRY_R_BAD);
	assert_int_equal(parse("ERR 83886179 Operation cancelled <Pinentry>", s),
			 PINENTRY_R_CANCEL);
	assert_int_equal(parse("ERR 83886278 fully cancelled", s),
			 PINENTRY_R_CANCEL);
	assert_int_equal(parse("ERR 83886254 Not confirmed", s), PINENTRY_R_ERR);
	assert_int_equal(parse("S PASSWORD_FROM_CACHE", s), PINENTRY_R_SKIP);
	assert_int_equal(parse("# comment", s), PINENTRY_R_SKIP);
	assert_int_equal(parse("INQUIRE X", s), PINENTRY_R_BAD);
	assert_int_equal(parse("D 12%2534%0a", s), PINENTRY_R_DATA);
	assert_int_equal(s->len, 6);
	assert_memory_equal(s->buf, "12%34\n", 6);
	assert_int_equal(parse("D ab", s), PINENTRY_R_DATA); /* appended */
	assert_string_equal(s->buf, "12%34\nab");
	/* Truncated or bad escapes, a D line without a buffer. */
	assert_int_equal(parse("D %2", s), PINENTRY_R_BAD);
	assert_int_equal(parse("D %", s), PINENTRY_R_BAD);
	assert_int_equal(parse("D %zz", s), PINENTRY_R_BAD);
	assert_int_equal(parse("D 1", NULL), PINENTRY_R_BAD);
	/* A line longer than Assuan allows; a NUL inside. */
	memset(big, 'x', sizeof(big));
	big[0] = 'D';
	big[1] = ' ';
	assert_int_equal(pinentry_parse(big, PINENTRY_LINE_MAX, s), PINENTRY_R_BAD);
	assert_int_equal(pinentry_parse("OK\0x", 4, s), PINENTRY_R_BAD);
	/* More PIN than a secret holds. */
	mtls_secret_wipe(s);
	memset(big, 'x', MTLS_SECRET_MAX + 4);
	big[0] = 'D';
	big[1] = ' ';
	assert_int_equal(pinentry_parse(big, MTLS_SECRET_MAX + 4, s),
			 PINENTRY_R_BAD);
	mtls_secret_free(s);
}

/* An Assuan server in sh: records its fds and environment, answers GETPIN
 * with the PIN given as $1 of the script (baked in) or cancels. */
static char dir[] = "/tmp/test_pinentry.XXXXXX";
static char prog[256], report[256];

static void write_server(const char *getpin_answer)
{
	FILE *f = fopen(prog, "w");

	assert_non_null(f);
	fprintf(f,
		"#!/bin/sh\n"
		"ls -l /proc/$$/fd/ | grep -c /dev/null > %s.fds\n"
		"env > %s.env\n"
		": > %s\n"
		"echo 'OK Pleased to meet you'\n"
		"while read -r cmd rest; do\n"
		"  echo \"$cmd $rest\" >> %s\n"
		"  case $cmd in\n"
		"  GETPIN) printf '%%s\\n' '%s' ;;\n"
		"  BYE) echo OK; exit 0 ;;\n"
		"  *) echo OK ;;\n"
		"  esac\n"
		"done\n",
		report, report, report, report, getpin_answer);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(prog, 0700), 0);
}

static char *slurp(const char *path)
{
	static char buf[8192];
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void test_dialogue(void **state)
{
	struct mtls_secret *pin = mtls_secret_new();
	struct mtls_error err = {0};
	struct pinentry_req req = {
		.program = prog, .ttyname = "/dev/pts/77", .ttytype = "xterm",
		.title = "mtls-agent", .desc = "token \"a%b\"\nline 2",
		.prompt = "PIN:", .error = "wrong PIN (2 tries left)",
		.timeout_s = 60,
	};
	char fdsfile[300], envfile[300];
	int leak;

	(void)state;
	/* An fd of ours, not close-on-exec on purpose: it must not reach
	 * the pinentry anyway. */
	leak = open("/dev/null", O_RDONLY);
	assert_true(leak > 2);
	setenv("MTLS_SECRET_TEST", "must-not-leak", 1);
	write_server("D 12%2534\nOK");
	assert_int_equal(pinentry_ask(&req, pin, &err), MTLS_OK);
	assert_string_equal(pin->buf, "12%34");
	{
		char *r = slurp(report);

		assert_non_null(strstr(r, "OPTION ttyname=/dev/pts/77\n"));
		assert_non_null(strstr(r, "OPTION ttytype=xterm\n"));
		assert_non_null(strstr(r, "SETDESC token \"a%25b\"%0Aline 2\n"));
		assert_non_null(strstr(r, "SETERROR wrong PIN (2 tries left)\n"));
		assert_non_null(strstr(r, "GETPIN \n"));
	}
	snprintf(fdsfile, sizeof(fdsfile), "%s.fds", report);
	/* Only its stderr is /dev/null: our fd (leak) did not reach it. */
	assert_string_equal(slurp(fdsfile), "1\n");
	snprintf(envfile, sizeof(envfile), "%s.env", report);
	assert_null(strstr(slurp(envfile), "MTLS_SECRET_TEST"));
	assert_non_null(strstr(slurp(envfile), "TERM=xterm"));

	/* Cancel: pin_missing, nothing in the secret. */
	write_server("ERR 83886179 Operation cancelled <Pinentry>");
	assert_int_equal(pinentry_ask(&req, pin, &err), MTLS_ERR_PIN_MISSING);
	assert_int_equal(pin->len, 0);
	/* A server that hangs up in the middle. */
	write_server("' >/dev/null; exit 0; : '");
	assert_int_equal(pinentry_ask(&req, pin, &err), MTLS_ERR_PIN_MISSING);
	/* One that answers nonsense. */
	write_server("BLAH");
	assert_int_equal(pinentry_ask(&req, pin, &err), MTLS_ERR_IO);
	/* A program that is not there. */
	req.program = "/nonexistent/pinentry";
	assert_int_equal(pinentry_ask(&req, pin, &err), MTLS_ERR_IO);
	req.program = "pinentry";
	assert_int_equal(pinentry_ask(&req, pin, &err), MTLS_ERR_ARG);
	close(leak);
	mtls_secret_free(pin);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_dialogue),
	};
	int rc;

	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(prog, sizeof(prog), "%s/pinentry", dir);
	snprintf(report, sizeof(report), "%s/report", dir);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			rc = rc ? rc : 1;
	}
	return rc;
}
