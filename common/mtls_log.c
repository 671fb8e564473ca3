#include "mtls_log.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 1024

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

/* The line being built; one byte is always left for the final newline. */
struct line {
	char buf[LOG_LINE_MAX];
	size_t len;
	int full;
};

static size_t room(const struct line *l)
{
	return l->full ? 0 : sizeof(l->buf) - 1 - l->len;
}

/* The program's own text (the format, numbers, padding): cut where full. */
static void put(struct line *l, const char *s, size_t n)
{
	if (n > room(l)) {
		n = room(l);
		l->full = 1;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

/* Escapes at most max bytes of in into out (cap bytes with the NUL): a
 * double quote, a backslash and every byte outside printable ASCII. Bytes
 * past ASCII too: a raw 0x9b is CSI on some terminals, and the journal
 * keeps a line that is not UTF-8 as a blob. Escapes are never cut. */
static size_t escape(const char *in, size_t max, char *out, size_t cap,
		     int *cut)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	*cut = 0;
	for (size_t i = 0; i < max && in[i] != '\0'; i++) {
		unsigned char c = (unsigned char)in[i];
		char e[4] = { '\\', 0, 0, 0 };
		size_t n = 2;

		if (c == '"' || c == '\\') {
			e[1] = (char)c;
		} else if (c == '\n') {
			e[1] = 'n';
		} else if (c == '\r') {
			e[1] = 'r';
		} else if (c == '\t') {
			e[1] = 't';
		} else if (c < 0x20 || c >= 0x7f) {
			e[1] = 'x';
			e[2] = hex[c >> 4];
			e[3] = hex[c & 15];
			n = 4;
		} else {
			e[0] = (char)c;
			n = 1;
		}
		if (o + n >= cap) {
			*cut = 1;
			break;
		}
		memcpy(out + o, e, n);
		o += n;
	}
	if (cap > 0)
		out[o] = '\0';
	return o;
}

/* A value (%s, %c, %m): escaped, then padded to the width asked. */
static void put_value(struct line *l, const char *s, size_t max, int width,
		      int left)
{
	char esc[LOG_LINE_MAX];
	size_t n;
	int cut;

	if (s == NULL)
		s = "(null)";
	n = escape(s, max, esc, sizeof(esc), &cut);
	for (int pad = width - (int)n; !left && pad > 0; pad--)
		put(l, " ", 1);
	if (n > room(l)) /* again, cut at a whole escape */
		n = escape(s, max, esc, room(l) + 1, &cut);
	put(l, esc, n);
	if (cut)
		l->full = 1;
	for (int pad = width - (int)n; left && pad > 0; pad--)
		put(l, " ", 1);
}

/* A number or pointer, formatted by the C library from the spec rebuilt
 * with explicit width and precision. The spec is not a literal, but it is
 * one conversion of the caller's format, whose argument types the compiler
 * checked there (mtls_log is declared format(printf)). */
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#define PUT_NUM(l, spec, type, ap)                                            \
	do {                                                                  \
		char num_[LOG_LINE_MAX];                                      \
		int n_ = snprintf(num_, sizeof(num_), spec, va_arg(ap, type)); \
		if (n_ > 0)                                                   \
			put(l, num_, (size_t)n_ < sizeof(num_) ?              \
					     (size_t)n_ : sizeof(num_) - 1);  \
	} while (0)

/* Walks the format: its text is copied, each %s, %c and %m argument is
 * escaped, other conversions are passed to snprintf one at a time. An
 * unknown conversion (or %n) ends the line there: the type of its
 * argument, and so of every later one, is unknown. */
static void vformat(struct line *l, const char *fmt, va_list ap,
		    int saved_errno)
{
	const char *p = fmt;

	while (*p != '\0' && !l->full) {
		char spec[48], mod[3] = "";
		size_t sn = 0;
		int width = -1, prec = -1, left = 0;
		char *end;

		if (*p != '%') {
			const char *q = strchr(p, '%');
			size_t n = q != NULL ? (size_t)(q - p) : strlen(p);

			put(l, p, n);
			p += n;
			continue;
		}
		if (p[1] == '%') {
			put(l, "%", 1);
			p += 2;
			continue;
		}
		spec[sn++] = *p++;
		while (*p != '\0' && strchr("-+ #0", *p) != NULL) {
			if (*p == '-')
				left = 1;
			if (sn < 8)
				spec[sn++] = *p;
			p++;
		}
		if (*p == '*') {
			width = va_arg(ap, int);
			if (width < 0) {
				width = width == INT_MIN ? 0 : -width;
				left = 1;
				spec[sn++] = '-';
			}
			p++;
		} else if (*p >= '0' && *p <= '9') {
			width = (int)strtol(p, &end, 10);
			p = end;
		}
		if (*p == '.') {
			p++;
			if (*p == '*') {
				prec = va_arg(ap, int);
				p++;
			} else {
				prec = (int)strtol(p, &end, 10);
				p = end;
			}
			if (prec < 0)
				prec = -1;
		}
		if (width > LOG_LINE_MAX || width < 0)
			width = width < 0 ? -1 : LOG_LINE_MAX;
		if (prec > LOG_LINE_MAX)
			prec = LOG_LINE_MAX;
		if (width >= 0)
			sn += (size_t)snprintf(spec + sn, sizeof(spec) - sn, "%d",
					       width);
		if (prec >= 0)
			sn += (size_t)snprintf(spec + sn, sizeof(spec) - sn,
					       ".%d", prec);
		if (*p != '\0' && strchr("hljztL", *p) != NULL) {
			mod[0] = *p++;
			if ((mod[0] == 'h' || mod[0] == 'l') && *p == mod[0])
				mod[1] = *p++;
		}
		if (*p == '\0')
			break;
		memcpy(spec + sn, mod, strlen(mod));
		sn += strlen(mod);
		spec[sn++] = *p;
		spec[sn] = '\0';

		switch (*p) {
		case 's':
			put_value(l, va_arg(ap, const char *),
				  prec >= 0 ? (size_t)prec : SIZE_MAX, width,
				  left);
			break;
		case 'm':
			put_value(l, strerror(saved_errno), SIZE_MAX, width, left);
			break;
		case 'c': {
			char c[2] = { (char)va_arg(ap, int), '\0' };

			if (c[0] == '\0') /* would end the value: show it */
				put(l, "\\x00", 4);
			else
				put_value(l, c, 1, width, left);
			break;
		}
		case 'd':
		case 'i':
			if (strcmp(mod, "ll") == 0)
				PUT_NUM(l, spec, long long, ap);
			else if (strcmp(mod, "l") == 0)
				PUT_NUM(l, spec, long, ap);
			else if (strcmp(mod, "j") == 0)
				PUT_NUM(l, spec, intmax_t, ap);
			else if (strcmp(mod, "z") == 0)
				PUT_NUM(l, spec, ssize_t, ap);
			else if (strcmp(mod, "t") == 0)
				PUT_NUM(l, spec, ptrdiff_t, ap);
			else /* hh and h arrive promoted to int */
				PUT_NUM(l, spec, int, ap);
			break;
		case 'u':
		case 'o':
		case 'x':
		case 'X':
			if (strcmp(mod, "ll") == 0)
				PUT_NUM(l, spec, unsigned long long, ap);
			else if (strcmp(mod, "l") == 0)
				PUT_NUM(l, spec, unsigned long, ap);
			else if (strcmp(mod, "j") == 0)
				PUT_NUM(l, spec, uintmax_t, ap);
			else if (strcmp(mod, "z") == 0)
				PUT_NUM(l, spec, size_t, ap);
			else if (strcmp(mod, "t") == 0)
				PUT_NUM(l, spec, ptrdiff_t, ap);
			else
				PUT_NUM(l, spec, unsigned, ap);
			break;
		case 'e':
		case 'E':
		case 'f':
		case 'F':
		case 'g':
		case 'G':
		case 'a':
		case 'A':
			if (strcmp(mod, "L") == 0)
				PUT_NUM(l, spec, long double, ap);
			else
				PUT_NUM(l, spec, double, ap);
			break;
		case 'p':
			PUT_NUM(l, spec, void *, ap);
			break;
		default:
			put(l, "?", 1);
			return;
		}
		p++;
	}
}

void mtls_log(enum mtls_log_level level, const char *fmt, ...)
{
	struct line l = { .len = 0, .full = 0 };
	int saved_errno = errno, n;
	va_list ap;

	if (!mtls_log_enabled(level))
		return;
	if (log_journal) {
		n = snprintf(l.buf, sizeof(l.buf), "<%d>level=%s ", (int)level,
			     level_names[level]);
	} else {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = snprintf(l.buf, sizeof(l.buf),
			     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d] level=%s ",
			     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			     tm.tm_hour, tm.tm_min, tm.tm_sec,
			     ts.tv_nsec / 1000000, log_ident, (int)getpid(),
			     level_names[level]);
	}
	l.len = n > 0 && (size_t)n < sizeof(l.buf) - 1 ? (size_t)n : 0;
	va_start(ap, fmt);
	vformat(&l, fmt, ap, saved_errno);
	va_end(ap);
	/* One write per line so lines from threads never interleave. */
	l.buf[l.len++] = '\n';
	if (write(STDERR_FILENO, l.buf, l.len) < 0) {
		/* nowhere left to report it */
	}
	errno = saved_errno;
}
