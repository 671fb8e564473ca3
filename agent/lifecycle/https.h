/* One HTTPS exchange for the enrollers (EST, ACME): a fresh TCP connection,
 * the agent's own wolfSSL client with the server checked like any other
 * (tls_ctx_new: trust anchors, RFC 6125 name, key sizes), optionally our
 * identity as client certificate, one request, one bounded answer read
 * under one deadline, and the answer's status and headers parsed. */
#ifndef MTLS_HTTPS_H
#define MTLS_HTTPS_H

#include <stddef.h>
#include <stdint.h>

#include "identity.h"
#include "mtls_err.h"

/* What the parser keeps of a Retry-After: a day; more is no answer. */
#define HTTP_RETRY_AFTER_MAX 86400
#define HTTP_URL_MAX 1024
#define HTTP_LINKS_MAX 4
#define HTTPS_TIMEOUT_SEC 30

struct https_target {
	const char *host;
	uint16_t port;
	const char *ca;            /* trust anchors for the server */
	struct identity *client;   /* client certificate, or NULL */
};

/* The parts of an answer an enroller reads. Header values longer than
 * their field make the answer unreadable rather than cut. */
struct http_answer {
	int status;
	int retry_after;  /* delta-seconds, 0 if absent or not a number */
	char location[HTTP_URL_MAX];
	char nonce[256];  /* Replay-Nonce (RFC 8555 6.5.1) */
	char content_type[128];
	/* Link: <URL>;rel="alternate" (RFC 8555 7.4.2), in order */
	char alternate[HTTP_LINKS_MAX][HTTP_URL_MAX];
	unsigned n_alternate;
	char *body;       /* into the buffer given to http_answer_parse */
	size_t body_len;
};

/* Parses an HTTP/1.x response in buf, which has a byte of room after len
 * (the body is NUL-terminated there; the header is cut in place; a
 * chunked body is decoded in place). 0, or -1 if it is not one. */
int http_answer_parse(char *buf, size_t len, struct http_answer *a);

/* method, path (from the first '/'), extra header lines ("Name: value\r\n",
 * or NULL), body (or NULL) with its Content-Type. At most max bytes of
 * answer are read; *raw (malloc'd, NUL-terminated) holds what a->body
 * points into. The extra headers may hold a credential: wiped after use. */
mtls_err_t https_request(const struct https_target *t, const char *method,
			 const char *path, const char *extra_headers,
			 const char *content_type, const void *body,
			 size_t body_len, size_t max, char **raw,
			 struct http_answer *a, struct mtls_error *err);

/* "https://HOST[:PORT]/PATH" -> host (malloc'd), port, path (malloc'd,
 * "/" at least). IPv6 as [ADDR]. 0 or -1. */
int https_url_split(const char *url, char **host, uint16_t *port,
		    char **path);

#endif
