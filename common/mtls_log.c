#include "mtls_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *log_ident = "mtls";
/* Set by a reload while connection threads log. */
static _Atomic int log_level = MTLS_LOG_INFO;
static int log_journal;

static const char *const level_names[8] = {
	[MTLS_LOG_ERR] = "err",       [MTLS_LOG_WARNING] = "warning",
	[MTLS_LOG_NOTICE] = "notice", [MTLS_LOG_INFO] = "info",
	[MTLS_LOG_DEBUG] = "debug",
};

/* systemd sets JOURNAL_STREAM=dev:ino of the stream it connected to stderr. */
static int stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
		return 0;
	if (fstat(STDERR_FILENO, &st) != 0)
		return 0;
	return (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

void mtls_log_init(const char *ident)
{
	log_ident = ident;
	log_journal = stderr_is_journal();
}

void mtls_log_set_level(enum mtls_log_level level)
{
	atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

int mtls_log_level_parse(const char *s, enum mtls_log_level *out)
{
	for (int i = MTLS_LOG_ERR; i <= MTLS_LOG_DEBUG; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum mtls_log_level)i;
			return 0;
		}
	}
	return -1;
}

int mtls_log_enabled(enum mtls_log_level level)
{
	return (int)level <= atomic_load_explicit(&log_level, memory_order_relaxed);
}

void mtls_log(enum mtls_log_level level, const char *fmt, ...)
{
	char line[1024];
	int n = 0;
	va_list ap;

	if (!mtls_log_enabled(level))
		return;
	if (log_journal) {
		n = snprintf(line, sizeof(line), "<%d>level=%s ", (int)level,
			     level_names[level]);
	} else {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = snprintf(line, sizeof(line),
			     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d] level=%s ",
			     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			     tm.tm_hour, tm.tm_min, tm.tm_sec,
			     ts.tv_nsec / 1000000, log_ident, (int)getpid(),
			     level_names[level]);
	}
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* One write per line so lines from threads never interleave. */
	size_t len = strnlen(line, sizeof(line) - 2);
	line[len++] = '\n';
	if (write(STDERR_FILENO, line, len) < 0) {
		/* nowhere left to report it */
	}
}
