/* Logging: one line per event, key=value fields, to stderr. When stderr is
 * the journal (JOURNAL_STREAM matches), lines carry <N> priority prefixes so
 * journald files them at the right level. Never pass a secret here.
 *
 * The format is the program's own text; every %s, %c and %m argument is a
 * value, escaped by the logger (\" \\ \n \r \t, \xNN for any other byte
 * outside printable ASCII), so that a value from a peer can neither start
 * a line of its own nor end a quoted field. Quote a value that may hold
 * spaces in the format: exe=\"%s\". Structure (" key=value" suffixes) may
 * be passed with %s: it holds none of the escaped bytes. */
#ifndef MTLS_LOG_H
#define MTLS_LOG_H

enum mtls_log_level {
	MTLS_LOG_ERR = 3,
	MTLS_LOG_WARNING = 4,
	MTLS_LOG_NOTICE = 5,
	MTLS_LOG_INFO = 6,
	MTLS_LOG_DEBUG = 7,
};

void mtls_log_init(const char *ident);
void mtls_log_set_level(enum mtls_log_level level);
int mtls_log_level_parse(const char *s, enum mtls_log_level *out);
int mtls_log_enabled(enum mtls_log_level level);

/* fmt holds the event's key=value fields, e.g. "event=handshake conn=%lu". */
void mtls_log(enum mtls_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_err(...) mtls_log(MTLS_LOG_ERR, __VA_ARGS__)
#define log_warn(...) mtls_log(MTLS_LOG_WARNING, __VA_ARGS__)
#define log_notice(...) mtls_log(MTLS_LOG_NOTICE, __VA_ARGS__)
#define log_info(...) mtls_log(MTLS_LOG_INFO, __VA_ARGS__)
#define log_debug(...) mtls_log(MTLS_LOG_DEBUG, __VA_ARGS__)

#endif
