/* The agent socket's two request protocols, SOCKS5 (RFC 1928, CONNECT,
 * no authentication) and HTTP/1.1 CONNECT: parsers over a bounded buffer
 * and the replies, including the reason for a refusal. Pure functions; the
 * connection code does the reading and writing. */
#ifndef MTLS_PROXY_PROTO_H
#define MTLS_PROXY_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "mtls_err.h"

#define PROXY_HOST_MAX 256
#define PROXY_REQUEST_MAX 8192 /* the largest request we read */

enum proxy_parse {
	PROXY_NEED_MORE = 0, /* read more bytes and call again */
	PROXY_DONE = 1,
	PROXY_ERROR = -1,
};

enum proxy_kind { PROXY_SOCKS5, PROXY_HTTP };

struct proxy_request {
	enum proxy_kind kind;
	char host[PROXY_HOST_MAX]; /* a name or an address literal */
	uint16_t port;
	size_t consumed; /* bytes of the request; the rest is early data */
	uint8_t socks_reply; /* for PROXY_ERROR on SOCKS: the reply code */
	int http_status;     /* for PROXY_ERROR on HTTP: the status */
	char error[128];
};

/* SOCKS5 replies (RFC 1928, 6) */
enum {
	SOCKS5_OK = 0x00,
	SOCKS5_GENERAL_FAILURE = 0x01,
	SOCKS5_NOT_ALLOWED = 0x02,
	SOCKS5_NETWORK_UNREACHABLE = 0x03,
	SOCKS5_HOST_UNREACHABLE = 0x04,
	SOCKS5_CONNECTION_REFUSED = 0x05,
	SOCKS5_TTL_EXPIRED = 0x06,
	SOCKS5_COMMAND_NOT_SUPPORTED = 0x07,
	SOCKS5_ADDRESS_NOT_SUPPORTED = 0x08,
};

/* Greeting: VER NMETHODS METHODS. Sets *method_ok when "no
 * authentication" is offered; consumed says how much was used. */
enum proxy_parse socks5_parse_greeting(const uint8_t *buf, size_t len,
				       int *method_ok, size_t *consumed);
/* Request: VER CMD RSV ATYP DST.ADDR DST.PORT, from buf (after the
 * greeting). */
enum proxy_parse socks5_parse_request(const uint8_t *buf, size_t len,
				      struct proxy_request *req);
/* A reply with BND.ADDR 0.0.0.0:0; returns its length (10). */
size_t socks5_reply(uint8_t code, uint8_t out[10]);

/* "CONNECT host:port HTTP/1.1" and headers up to the blank line. */
enum proxy_parse http_parse_connect(const uint8_t *buf, size_t len,
				    struct proxy_request *req);
/* "HTTP/1.1 200 Connection established" or an error status with the
 * reason as a header and a one-line body. Returns the length written. */
size_t http_reply(int status, const char *reason, const char *detail,
		  char *out, size_t cap);

/* What each error means to the program. */
uint8_t proxy_socks_code(mtls_err_t e);
int proxy_http_status(mtls_err_t e);

#endif
