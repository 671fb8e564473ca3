/* HTTP/1.1 messages as the agent's clients read them (RFC 9112): an
 * answer's status, the headers its users need and its body; URLs split
 * into their parts. No I/O. */
#ifndef MTLS_HTTP_MSG_H
#define MTLS_HTTP_MSG_H

#include <stddef.h>
#include <stdint.h>

/* What the parser keeps of a Retry-After: a day; more is no answer. */
#define HTTP_RETRY_AFTER_MAX 86400
#define HTTP_URL_MAX 1024
#define HTTP_LINKS_MAX 4

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

/* "http[s]://HOST[:PORT]/PATH" -> *tls (1 for https), host (malloc'd),
 * port (80 or 443 by default), path (malloc'd, "/" at least). IPv6 as
 * [ADDR]. No user info, no fragment. 0 or -1. */
int http_url_split(const char *url, int *tls, char **host, uint16_t *port,
		   char **path);

#endif
