/* Plain HTTP proxying on the agent socket, for programs that know only
 * http_proxy: a request in absolute-form ("GET http://host:port/path
 * HTTP/1.1") names its server; the head is rewritten to origin-form with
 * the Host taken from the URL (RFC 9112 3.2.2) and the Proxy-* fields
 * removed, then sent over mTLS. The body is passed on unchanged, framed
 * by Content-Length or chunked so that the next request's head is found
 * and rewritten too. Pure functions; the connection does the I/O. */
#ifndef MTLS_HTTP_FORWARD_H
#define MTLS_HTTP_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "proxy_proto.h"

/* Without a port the URL means the server's mTLS port: the agent never
 * speaks plain HTTP to a server. */
#define HTTP_FORWARD_DEFAULT_PORT 443
/* Room for a rewritten head: a head of PROXY_REQUEST_MAX grows by the
 * Host line and by a CR for each bare LF (at most a third of it). */
#define HTTP_FORWARD_HEAD_MAX 16384

enum http_body_kind { HTTP_BODY_NONE, HTTP_BODY_LENGTH, HTTP_BODY_CHUNKED };

struct http_forward_head {
	char host[PROXY_HOST_MAX]; /* from the URL */
	uint16_t port;
	size_t consumed; /* bytes of the head in the input */
	enum http_body_kind body;
	uint64_t length; /* HTTP_BODY_LENGTH */
	int status;      /* PROXY_ERROR: the status to answer */
	char error[128];
};

/* Parses one request head from buf and writes it rewritten into out
 * (cap >= HTTP_FORWARD_HEAD_MAX), setting *out_len. */
enum proxy_parse http_forward_parse(const uint8_t *buf, size_t len,
				    struct http_forward_head *h, uint8_t *out,
				    size_t cap, size_t *out_len);

/* Same server (host compared without case, port equal)? */
int http_forward_same_origin(const struct http_forward_head *a,
			     const char *host, uint16_t port);

/* Where a body ends, found while its bytes pass through unchanged. */
struct http_body {
	enum http_body_kind kind;
	uint64_t left; /* bytes of the current length or chunk */
	int state;     /* the chunked decoder's */
	size_t line;   /* bytes of the current size or trailer line */
};

void http_body_start(struct http_body *b, const struct http_forward_head *h);
/* Looks at up to len bytes; *used says how many belong to the body.
 * Returns 1 when the body ended there, 0 when more is to come, -1 when
 * the chunked framing is broken. */
int http_body_step(struct http_body *b, const uint8_t *buf, size_t len,
		   size_t *used);

#endif
