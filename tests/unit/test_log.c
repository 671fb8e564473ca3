/* common/mtls_log.c: every value is escaped, so that a value from a peer
 * (an executable's path, a host name, a subject) can never forge a line of
 * its own nor end a quoted field; numbers still format as printf does. */
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

#include "mtls_log.h"

static int saved_stderr = -1, rd = -1;
static char got[8192];

static int setup(void **state)
{
	int p[2];

	(void)state;
	if (pipe(p) != 0)
		return -1;
	saved_stderr = dup(STDERR_FILENO);
	if (saved_stderr < 0 || dup2(p[1], STDERR_FILENO) < 0)
		return -1;
	close(p[1]);
	rd = p[0];
	/* cmocka reports on stderr (the FILE): keep that on the real one. */
	stderr = fdopen(saved_stderr, "w");
	if (stderr == NULL)
		return -1;
	setvbuf(stderr, NULL, _IONBF, 0);
	unsetenv("JOURNAL_STREAM");
	mtls_log_init("test");
	mtls_log_set_level(MTLS_LOG_DEBUG);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	dup2(saved_stderr, STDERR_FILENO);
	close(rd);
	return 0;
}

/* What the logger wrote since the last call: one write per line, so one
 * read gets it whole. */
static const char *drain(void)
{
	ssize_t n = read(rd, got, sizeof(got) - 1);

	assert_true(n > 0);
	got[n] = '\0';
	return got;
}

/* The part after "level=LEVEL ", checking there is exactly one line. */
static const char *fields(const char *line)
{
	const char *nl = strchr(line, '\n'), *f = strstr(line, " level=");

	assert_non_null(nl);
	assert_int_equal(nl[1], '\0'); /* nothing after the one newline */
	assert_non_null(f);
	f = strchr(f + 1, ' ');
	assert_non_null(f);
	return f + 1;
}

static void forged_line_is_escaped(void **state)
{
	const char *exe = "/tmp/a\"\nlevel=notice event=token_unlocked "
			  "token=soft by_uid=0 x=\"";
	const char *f;

	(void)state;
	log_warn("event=control_refused uid=%lld pid=%lld exe=\"%s\"",
		 65534LL, 42LL, exe);
	f = fields(drain());
	assert_string_equal(f, "event=control_refused uid=65534 pid=42 "
			       "exe=\"/tmp/a\\\"\\nlevel=notice "
			       "event=token_unlocked token=soft by_uid=0 "
			       "x=\\\"\"\n");
}

static void control_bytes_quotes_backslashes(void **state)
{
	(void)state;
	log_info("a=\"%s\" b=%s", "q\"b\\s\r\t\x1b[31m\x7f", "\xc3\xa9\x9b");
	assert_string_equal(fields(drain()),
			    "a=\"q\\\"b\\\\s\\r\\t\\x1b[31m\\x7f\" "
			    "b=\\xc3\\xa9\\x9b\n");
	log_info("c=%c d=%c", 'x', '\n');
	assert_string_equal(fields(drain()), "c=x d=\\n\n");
}

static void numbers_format_as_printf(void **state)
{
	char want[512];

	(void)state;
	snprintf(want, sizeof(want),
		 "%d %5d %-5d| %ld %lld %llu %zu %x %#X %05.1f %.3s %*s "
		 "%-*s| %.*s %u%s%.0u %p %% %hhu %g\n",
		 -7, 42, 42, -1L, (long long)INT64_MIN,
		 (unsigned long long)UINT64_MAX, (size_t)123, 255u, 255u, 3.14159,
		 "abcdef", 6, "ab", 4, "cd", 2, "xyz", 9u, "", 0u,
		 (void *)&want, 300, 1e-3);
	log_debug("%d %5d %-5d| %ld %lld %llu %zu %x %#X %05.1f %.3s %*s "
		  "%-*s| %.*s %u%s%.0u %p %% %hhu %g",
		  -7, 42, 42, -1L, (long long)INT64_MIN,
		  (unsigned long long)UINT64_MAX, (size_t)123, 255u, 255u,
		  3.14159, "abcdef", 6, "ab", 4, "cd", 2, "xyz", 9u, "", 0u,
		  (void *)&want, 300, 1e-3);
	assert_string_equal(fields(drain()), want);
}

/* A precision counts the value's bytes, not the escaped ones. */
static void precision_and_width_of_values(void **state)
{
	(void)state;
	log_info("v=%.3s| w=%6s| l=%-6s|", "\n\n\nmore", "\"", "a\n");
	assert_string_equal(fields(drain()),
			    "v=\\n\\n\\n| w=    \\\"| l=a\\n   |\n");
}

/* A value too long for a line is cut at a whole escape; the line still
 * ends in the one newline. */
static void long_value_one_line(void **state)
{
	char big[3000];
	const char *line, *f;
	size_t n;

	(void)state;
	memset(big, '\n', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_notice("event=x v=\"%s\" after=1", big);
	line = drain();
	f = fields(line);
	n = strlen(line);
	assert_true(n <= 1024);
	assert_null(strstr(f, "after=1"));
	/* only whole "\n" escapes: an even run of characters after v=" */
	f = strstr(f, "v=\"") + 3;
	assert_int_equal(strspn(f, "\\n") % 2, 0);
	assert_int_equal(f[strspn(f, "\\n")], '\n');
}

/* Under the journal (JOURNAL_STREAM names stderr), the same. */
static void journal_stream_escaped(void **state)
{
	struct stat st;
	char js[64];
	const char *line;

	(void)state;
	assert_int_equal(fstat(STDERR_FILENO, &st), 0);
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", js, 1);
	mtls_log_init("test");
	log_notice("event=accept exe=\"%s\"", "/x\n<3>level=err event=forged");
	line = drain();
	assert_string_equal(line, "<5>level=notice event=accept "
				  "exe=\"/x\\n<3>level=err event=forged\"\n");
	unsetenv("JOURNAL_STREAM");
	mtls_log_init("test");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(forged_line_is_escaped),
		cmocka_unit_test(control_bytes_quotes_backslashes),
		cmocka_unit_test(numbers_format_as_printf),
		cmocka_unit_test(precision_and_width_of_values),
		cmocka_unit_test(long_value_one_line),
		cmocka_unit_test(journal_stream_escaped),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
