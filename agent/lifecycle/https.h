/* One HTTPS exchange for the enrollers (EST, ACME): a fresh TCP connection,
 * the agent's own wolfSSL client with the server checked like any other
 * (tls_ctx_new: trust anchors, RFC 6125 name, key sizes), optionally our
 * identity as client certificate, one request, one bounded answer read
 * under one deadline, and the answer's status and headers parsed. */
#ifndef MTLS_HTTPS_H
#define MTLS_HTTPS_H

#include <stddef.h>
#include <stdint.h>

#include "http_msg.h"
#include "identity.h"
#include "mtls_err.h"

#define HTTPS_TIMEOUT_SEC 30

struct https_target {
	const char *host;
	uint16_t port;
	const char *ca;            /* trust anchors for the server */
	struct identity *client;   /* client certificate, or NULL */
};

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
 * "/" at least). IPv6 as [ADDR]. 0 or -1 (also for http://). */
int https_url_split(const char *url, char **host, uint16_t *port,
		    char **path);

#endif
