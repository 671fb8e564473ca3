/* One plain-HTTP exchange (RFC 9112) for data that carries its own
 * signature (OCSP answers, CRLs): the URL's name resolved by net_resolve,
 * local addresses skipped unless allowed, one request, one bounded answer
 * read under one deadline for the whole exchange. */
#ifndef MTLS_HTTP_FETCH_H
#define MTLS_HTTP_FETCH_H

#include <stddef.h>

#include "http_msg.h"
#include "mtls_err.h"

struct http_fetch_opts {
	int allow_local;     /* loopback, link-local, ... (net_addr_local) */
	unsigned timeout_ms; /* connect + request + whole answer */
	size_t max;          /* answer bytes, head included */
};

/* GET url, or POST body with content_type when body is not NULL. Only
 * http:// URLs. *raw (malloc'd) holds what a->body points into. An
 * answer that is not complete at the deadline, or larger than max, is an
 * error (MTLS_ERR_TIMEOUT, MTLS_ERR_LIMIT). */
mtls_err_t http_fetch(const char *url, const char *content_type,
		      const void *body, size_t body_len,
		      const struct http_fetch_opts *o, char **raw,
		      struct http_answer *a, struct mtls_error *err);

#endif
