#include "proxy_proto.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

static enum proxy_parse socks_error(struct proxy_request *req, uint8_t code,
				    const char *msg)
{
	req->socks_reply = code;
	snprintf(req->error, sizeof(req->error), "%s", msg);
	return PROXY_ERROR;
}

enum proxy_parse socks5_parse_greeting(const uint8_t *buf, size_t len,
				       int *method_ok, size_t *consumed)
{
	struct cursor c = { buf, len, 0 };
	uint8_t ver, n, m = 0xff;

	*method_ok = 0;
	if (cursor_u8(&c, &ver) != 0 || cursor_u8(&c, &n) != 0)
		return PROXY_NEED_MORE;
	if (ver != 5 || n == 0)
		return PROXY_ERROR;
	if (cursor_left(&c) < n)
		return PROXY_NEED_MORE;
	for (unsigned i = 0; i < n; i++) {
		if (cursor_u8(&c, &m) != 0)
			return PROXY_NEED_MORE;
		if (m == 0x00)
			*method_ok = 1;
	}
	*consumed = c.off;
	return PROXY_DONE;
}

enum proxy_parse socks5_parse_request(const uint8_t *buf, size_t len,
				      struct proxy_request *req)
{
	struct cursor c = { buf, len, 0 };
	uint8_t ver, cmd, rsv, atyp, n, addr[16];

	memset(req, 0, sizeof(*req));
	req->kind = PROXY_SOCKS5;
	if (cursor_u8(&c, &ver) != 0 || cursor_u8(&c, &cmd) != 0 ||
	    cursor_u8(&c, &rsv) != 0 || cursor_u8(&c, &atyp) != 0)
		return PROXY_NEED_MORE;
	if (ver != 5)
		return socks_error(req, SOCKS5_GENERAL_FAILURE, "not SOCKS5");
	if (cmd != 1)
		return socks_error(req, SOCKS5_COMMAND_NOT_SUPPORTED,
				   "only CONNECT is supported");
	switch (atyp) {
	case 1:
		if (cursor_bytes(&c, addr, 4) != 0)
			return PROXY_NEED_MORE;
		inet_ntop(AF_INET, addr, req->host, sizeof(req->host));
		break;
	case 3:
		if (cursor_u8(&c, &n) != 0)
			return PROXY_NEED_MORE;
		if (n == 0)
			return socks_error(req, SOCKS5_HOST_UNREACHABLE,
					   "empty host name");
		if (cursor_bytes(&c, req->host, n) != 0)
			return PROXY_NEED_MORE;
		req->host[n] = '\0';
		for (unsigned i = 0; i < n; i++) {
			unsigned char ch = (unsigned char)req->host[i];

			if (!isalnum(ch) && ch != '-' && ch != '.' && ch != '_')
				return socks_error(req, SOCKS5_HOST_UNREACHABLE,
						   "host name has invalid "
						   "characters");
		}
		break;
	case 4:
		if (cursor_bytes(&c, addr, 16) != 0)
			return PROXY_NEED_MORE;
		inet_ntop(AF_INET6, addr, req->host, sizeof(req->host));
		break;
	default:
		return socks_error(req, SOCKS5_ADDRESS_NOT_SUPPORTED,
				   "unknown address type");
	}
	if (cursor_u16(&c, &req->port) != 0)
		return PROXY_NEED_MORE;
	if (req->port == 0)
		return socks_error(req, SOCKS5_GENERAL_FAILURE, "port 0");
	req->consumed = c.off;
	return PROXY_DONE;
}

size_t socks5_reply(uint8_t code, uint8_t out[10])
{
	static const uint8_t tail[7] = { 0x00, 0x01, 0, 0, 0, 0, 0 };

	out[0] = 5;
	out[1] = code;
	memcpy(out + 2, tail, 6);
	out[8] = out[9] = 0;
	return 10;
}

static enum proxy_parse http_error(struct proxy_request *req, int status,
				   const char *msg)
{
	req->http_status = status;
	snprintf(req->error, sizeof(req->error), "%s", msg);
	return PROXY_ERROR;
}

/* Finds "\r\n\r\n" (or "\n\n") within len; returns the offset after it or
 * 0 when absent. */
static size_t header_end(const uint8_t *b, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (b[i] == '\n' && b[i + 1] == '\n')
			return i + 2;
		if (i + 3 < len && b[i] == '\r' && b[i + 1] == '\n' &&
		    b[i + 2] == '\r' && b[i + 3] == '\n')
			return i + 4;
	}
	return 0;
}

enum proxy_parse http_parse_connect(const uint8_t *buf, size_t len,
				    struct proxy_request *req)
{
	size_t end, line_len, auth_len;
	const char *line = (const char *)buf, *sp1, *sp2, *colon, *host;
	char port[8];
	unsigned long p;
	char *e;

	memset(req, 0, sizeof(*req));
	req->kind = PROXY_HTTP;
	end = header_end(buf, len);
	if (end == 0) {
		if (len >= PROXY_REQUEST_MAX)
			return http_error(req, 431, "request header too large");
		return PROXY_NEED_MORE;
	}
	for (size_t i = 0; i < end; i++)
		if (buf[i] == '\0')
			return http_error(req, 400, "NUL in request");
	/* Bounded by end (buf is not a C string); a '\n' lies before it. */
	for (line_len = 0; line_len < end && line[line_len] != '\r' &&
			   line[line_len] != '\n';
	     line_len++)
		;
	/* CONNECT SP authority SP HTTP/1.x */
	if (line_len < 8 || memcmp(line, "CONNECT ", 8) != 0)
		return http_error(req, 405, "only CONNECT is supported");
	sp1 = line + 7;
	sp2 = memchr(sp1 + 1, ' ', line_len - 8);
	if (sp2 == NULL || (size_t)(line + line_len - sp2) != 9 ||
	    (memcmp(sp2 + 1, "HTTP/1.1", 8) != 0 &&
	     memcmp(sp2 + 1, "HTTP/1.0", 8) != 0))
		return http_error(req, 400, "bad request line");
	host = sp1 + 1;
	auth_len = (size_t)(sp2 - host);
	if (auth_len == 0 || auth_len >= PROXY_HOST_MAX + 8)
		return http_error(req, 400, "bad authority");
	if (host[0] == '[') {
		const char *close = memchr(host, ']', auth_len);

		if (close == NULL || close + 1 >= sp2 || close[1] != ':')
			return http_error(req, 400, "bad authority");
		colon = close + 1;
		host++;
	} else {
		colon = NULL;
		for (const char *q = host; q < sp2; q++)
			if (*q == ':')
				colon = q;
		if (colon == NULL)
			return http_error(req, 400, "authority needs a port");
	}
	{
		size_t hl = (size_t)(colon - host) - (host[-1] == '[' ? 1 : 0);
		size_t pl = (size_t)(sp2 - colon - 1);

		if (hl == 0 || hl >= sizeof(req->host) || pl == 0 ||
		    pl >= sizeof(port))
			return http_error(req, 400, "bad authority");
		memcpy(req->host, host, hl);
		req->host[hl] = '\0';
		memcpy(port, colon + 1, pl);
		port[pl] = '\0';
	}
	for (const char *q = req->host; *q; q++)
		if (!isalnum((unsigned char)*q) && !strchr("-._:", *q))
			return http_error(req, 400, "bad host");
	if (!isdigit((unsigned char)port[0]))
		return http_error(req, 400, "bad port");
	p = strtoul(port, &e, 10);
	if (*e != '\0' || p == 0 || p > 65535)
		return http_error(req, 400, "bad port");
	req->port = (uint16_t)p;
	req->consumed = end;
	return PROXY_DONE;
}

static const char *status_text(int status)
{
	switch (status) {
	case 200: return "Connection established";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 405: return "Method Not Allowed";
	case 431: return "Request Header Fields Too Large";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Error";
	}
}

size_t http_reply(int status, const char *reason, const char *detail,
		  char *out, size_t cap)
{
	char body[512];
	int n;

	if (status == 200)
		n = snprintf(out, cap, "HTTP/1.1 200 %s\r\n\r\n",
			     status_text(200));
	else {
		snprintf(body, sizeof(body), "%s: %s\n", reason,
			 detail ? detail : "");
		/* CR or LF in the detail would split the response. */
		for (char *c = body; *c && c[1]; c++)
			if (*c == '\r' || *c == '\n')
				*c = ' ';
		n = snprintf(out, cap,
			     "HTTP/1.1 %d %s\r\n"
			     "Content-Type: text/plain\r\n"
			     "Content-Length: %zu\r\n"
			     "X-Mtls-Reason: %s\r\n"
			     "Connection: close\r\n\r\n%s",
			     status, status_text(status), strlen(body), reason,
			     body);
	}
	if (n < 0)
		return 0;
	return (size_t)n < cap ? (size_t)n : cap - 1;
}

uint8_t proxy_socks_code(mtls_err_t e)
{
	switch (e) {
	case MTLS_ERR_POLICY_DENIED:
		return SOCKS5_NOT_ALLOWED;
	case MTLS_ERR_UNREACHABLE:
		return SOCKS5_HOST_UNREACHABLE;
	case MTLS_ERR_REFUSED:
	case MTLS_ERR_CONNECT:
		return SOCKS5_CONNECTION_REFUSED;
	case MTLS_ERR_TIMEOUT:
		return SOCKS5_TTL_EXPIRED;
	case MTLS_ERR_BAD_REQUEST:
		return SOCKS5_GENERAL_FAILURE;
	default:
		/* TLS verification and token failures: the server was reached
		 * but the connection could not be made safe. */
		return SOCKS5_GENERAL_FAILURE;
	}
}

int proxy_http_status(mtls_err_t e)
{
	switch (e) {
	case MTLS_ERR_POLICY_DENIED:
		return 403;
	case MTLS_ERR_BAD_REQUEST:
		return 400;
	case MTLS_ERR_TIMEOUT:
		return 504;
	case MTLS_ERR_LIMIT:
		return 503;
	default:
		return 502;
	}
}
