#include "http_forward.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mtls_hex.h"

/* RFC 9110 5.6.2 */
static int is_tchar(unsigned char c)
{
	return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static enum proxy_parse fail(struct http_forward_head *h, int status,
			     const char *msg)
{
	h->status = status;
	snprintf(h->error, sizeof(h->error), "%s", msg);
	return PROXY_ERROR;
}

/* A bounded writer: a write that does not fit marks it full. */
struct out {
	uint8_t *p;
	size_t cap, len;
	int full;
};

static void put(struct out *o, const void *b, size_t n)
{
	if (o->full || n > o->cap - o->len) {
		o->full = 1;
		return;
	}
	memcpy(o->p + o->len, b, n);
	o->len += n;
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

/* The next line of [*pos, end): its length without CR LF; *pos moves past
 * its LF. -1 when no LF is left (cannot happen inside a found head). */
static long next_line(const uint8_t *b, size_t end, size_t *pos)
{
	size_t s = *pos, i = s;

	while (i < end && b[i] != '\n')
		i++;
	if (i >= end)
		return -1;
	*pos = i + 1;
	if (i > s && b[i - 1] == '\r')
		i--;
	return (long)(i - s);
}

/* Where the head ends ("\r\n\r\n" or "\n\n"), 0 when not yet. */
static size_t head_end(const uint8_t *b, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (b[i] != '\n')
			continue;
		if (b[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && b[i + 1] == '\r' && b[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* http://authority[/path-and-query]: host, port, the origin-form target
 * (into target, cap bytes) and the authority as written (for Host). */
static enum proxy_parse split_url(struct http_forward_head *h, const char *u,
				  size_t n, char *target, size_t tcap,
				  char *auth, size_t acap)
{
	const char *a, *path, *colon = NULL, *host;
	size_t alen, hlen;

	if (n >= 8 && strncasecmp(u, "https://", 8) == 0)
		return fail(h, 400, "https:// through the agent: the agent "
			    "does the TLS, use the http:// URL");
	if (n < 7 || strncasecmp(u, "http://", 7) != 0)
		return fail(h, 400, "the request needs an http:// URL "
			    "(absolute-form): this is a proxy");
	a = u + 7;
	path = memchr(a, '/', n - 7);
	{
		const char *q = memchr(a, '?', n - 7);

		if (q != NULL && (path == NULL || q < path))
			path = q;
	}
	alen = path != NULL ? (size_t)(path - a) : n - 7;
	if (alen == 0 || alen >= acap)
		return fail(h, 400, "bad authority in the URL");
	if (memchr(a, '@', alen) != NULL)
		return fail(h, 400, "user information in the URL is not "
			    "passed on");
	if (memchr(a, '#', n - 7) != NULL)
		return fail(h, 400, "a fragment in the request target");
	memcpy(auth, a, alen);
	auth[alen] = '\0';
	host = auth;
	if (auth[0] == '[') {
		char *close = strchr(auth, ']');

		if (close == NULL || (close[1] != '\0' && close[1] != ':'))
			return fail(h, 400, "bad authority in the URL");
		host = auth + 1;
		hlen = (size_t)(close - host);
		if (close[1] == ':')
			colon = close + 1;
	} else {
		colon = strchr(auth, ':');
		hlen = colon != NULL ? (size_t)(colon - auth) : alen;
	}
	if (hlen == 0 || hlen >= sizeof(h->host))
		return fail(h, 400, "bad host in the URL");
	memcpy(h->host, host, hlen);
	h->host[hlen] = '\0';
	for (const char *q = h->host; *q; q++)
		if (!isalnum((unsigned char)*q) && !strchr("-._:", *q))
			return fail(h, 400, "bad host in the URL");
	h->port = HTTP_FORWARD_DEFAULT_PORT;
	if (colon != NULL) {
		char *e;
		unsigned long p;

		if (!isdigit((unsigned char)colon[1]) || strlen(colon + 1) > 5)
			return fail(h, 400, "bad port in the URL");
		p = strtoul(colon + 1, &e, 10);
		if (*e != '\0' || p == 0 || p > 65535)
			return fail(h, 400, "bad port in the URL");
		h->port = (uint16_t)p;
	}
	{
		const char *rest = a + alen;
		size_t rlen = n - 7 - alen;
		int q = rlen > 0 && *rest == '?';

		/* "http://h" is "/", "http://h?x" is "/?x" */
		if (rlen + 2 > tcap)
			return fail(h, 414, "request target too long");
		if (rlen == 0 || q)
			*target++ = '/';
		memcpy(target, rest, rlen);
		target[rlen] = '\0';
	}
	return PROXY_DONE;
}

/* Content-Length: digits only, at most 18 of them. */
static int parse_length(const char *v, size_t n, uint64_t *out)
{
	uint64_t x = 0;

	if (n == 0 || n > 18)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)v[i]))
			return -1;
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	*out = x;
	return 0;
}

enum proxy_parse http_forward_parse(const uint8_t *buf, size_t len,
				    struct http_forward_head *h, uint8_t *out,
				    size_t cap, size_t *out_len)
{
	struct out o = { out, cap, 0, 0 };
	char target[PROXY_REQUEST_MAX], auth[PROXY_HOST_MAX + 8];
	const char *line, *sp1, *sp2;
	size_t end, pos = 0, mlen;
	long ll;
	int have_length = 0, have_te = 0;
	enum proxy_parse pr;

	memset(h, 0, sizeof(*h));
	*out_len = 0;
	end = head_end(buf, len);
	if (end == 0) {
		if (len >= PROXY_REQUEST_MAX)
			return fail(h, 431, "request header too large");
		return PROXY_NEED_MORE;
	}
	if (end > PROXY_REQUEST_MAX)
		return fail(h, 431, "request header too large");
	if (memchr(buf, '\0', end) != NULL)
		return fail(h, 400, "NUL in request");
	line = (const char *)buf;
	ll = next_line(buf, end, &pos);
	/* method SP request-target SP HTTP/1.x */
	sp1 = ll > 0 ? memchr(line, ' ', (size_t)ll) : NULL;
	if (sp1 == NULL || sp1 == line)
		return fail(h, 400, "bad request line");
	mlen = (size_t)(sp1 - line);
	for (size_t i = 0; i < mlen; i++)
		if (!is_tchar((unsigned char)line[i]))
			return fail(h, 400, "bad method");
	if (mlen == 7 && memcmp(line, "CONNECT", 7) == 0)
		return fail(h, 400, "CONNECT after a forwarded request: open "
			    "a new connection");
	sp2 = memchr(sp1 + 1, ' ', (size_t)(line + ll - sp1 - 1));
	if (sp2 == NULL || line + ll - sp2 != 9 ||
	    (memcmp(sp2 + 1, "HTTP/1.1", 8) != 0 &&
	     memcmp(sp2 + 1, "HTTP/1.0", 8) != 0))
		return fail(h, 400, "bad request line");
	for (const char *q = sp1 + 1; q < sp2; q++)
		if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 0x7f)
			return fail(h, 400, "bad request target");
	pr = split_url(h, sp1 + 1, (size_t)(sp2 - sp1 - 1), target,
		       sizeof(target), auth, sizeof(auth));
	if (pr != PROXY_DONE)
		return pr;
	put(&o, line, mlen + 1);
	puts_(&o, target);
	put(&o, sp2, 9);
	puts_(&o, "\r\nHost: ");
	puts_(&o, auth);
	puts_(&o, "\r\n");
	/* The fields: the client's Host is replaced by the URL's (RFC 9112
	 * 3.2.2) and Proxy-* belong to this hop. A body is framed by exactly
	 * one of Content-Length and chunked; both, or anything else, could be
	 * read another way by the server (request smuggling). */
	for (;;) {
		const char *f = (const char *)buf + pos, *colon, *v, *ve;
		size_t nlen;

		ll = next_line(buf, end, &pos);
		if (ll < 0)
			return fail(h, 400, "bad header");
		if (ll == 0)
			break;
		if (f[0] == ' ' || f[0] == '\t')
			return fail(h, 400, "folded header line");
		colon = memchr(f, ':', (size_t)ll);
		if (colon == NULL || colon == f)
			return fail(h, 400, "bad header");
		nlen = (size_t)(colon - f);
		for (size_t i = 0; i < nlen; i++)
			if (!is_tchar((unsigned char)f[i]))
				return fail(h, 400, "bad header name");
		for (const char *q = colon + 1; q < f + ll; q++)
			if (((unsigned char)*q < ' ' && *q != '\t') ||
			    (unsigned char)*q == 0x7f)
				return fail(h, 400, "bad header value");
		v = colon + 1;
		ve = f + ll;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		if (nlen == 4 && strncasecmp(f, "Host", 4) == 0)
			continue;
		if (nlen >= 6 && strncasecmp(f, "Proxy-", 6) == 0)
			continue;
		/* After a 101 the bytes are no longer HTTP requests to frame:
		 * WebSocket and the like go through CONNECT or SOCKS5. */
		if (nlen == 7 && strncasecmp(f, "Upgrade", 7) == 0)
			return fail(h, 501, "Upgrade is not passed on plain "
				    "HTTP proxying: use CONNECT or SOCKS5 "
				    "(ALL_PROXY)");
		if (nlen == 14 && strncasecmp(f, "Content-Length", 14) == 0) {
			uint64_t n;

			if (parse_length(v, (size_t)(ve - v), &n) != 0 ||
			    (have_length && n != h->length))
				return fail(h, 400, "bad Content-Length");
			have_length = 1;
			h->length = n;
		}
		if (nlen == 17 && strncasecmp(f, "Transfer-Encoding", 17) == 0) {
			if (have_te || ve - v != 7 || strncasecmp(v, "chunked", 7) != 0)
				return fail(h, 501, "only Transfer-Encoding: "
					    "chunked is passed on");
			have_te = 1;
		}
		put(&o, f, (size_t)ll);
		puts_(&o, "\r\n");
	}
	if (have_te && have_length)
		return fail(h, 400, "both Content-Length and "
			    "Transfer-Encoding");
	puts_(&o, "\r\n");
	if (o.full)
		return fail(h, 431, "request header too large");
	h->body = have_te ? HTTP_BODY_CHUNKED :
		  have_length && h->length > 0 ? HTTP_BODY_LENGTH :
						 HTTP_BODY_NONE;
	h->consumed = end;
	*out_len = o.len;
	return PROXY_DONE;
}

int http_forward_same_origin(const struct http_forward_head *a,
			     const char *host, uint16_t port)
{
	return a->port == port && strcasecmp(a->host, host) == 0;
}

/* The chunked decoder (RFC 9112 7.1). */
enum {
	CH_SIZE,       /* hex digits */
	CH_EXT,        /* ";ext" up to LF */
	CH_DATA,       /* left bytes */
	CH_DATA_CR,    /* CR LF after the data */
	CH_DATA_LF,
	CH_TRAILER,    /* a trailer line, or the empty line that ends */
	CH_TRAILER_LF, /* CR seen at the start of a line */
	CH_TRAILER_IN, /* inside a trailer line */
};

#define CH_LINE_MAX 4096

void http_body_start(struct http_body *b, const struct http_forward_head *h)
{
	memset(b, 0, sizeof(*b));
	b->kind = h->body;
	b->left = h->length;
	b->state = CH_SIZE;
}

int http_body_step(struct http_body *b, const uint8_t *buf, size_t len,
		   size_t *used)
{
	size_t i = 0;

	*used = 0;
	if (b->kind == HTTP_BODY_NONE)
		return 1;
	if (b->kind == HTTP_BODY_LENGTH) {
		size_t n = len < b->left ? len : (size_t)b->left;

		b->left -= n;
		*used = n;
		return b->left == 0;
	}
	while (i < len) {
		uint8_t c = buf[i];

		switch (b->state) {
		case CH_SIZE:
			if (mtls_hexval(c) >= 0) {
				if (b->line >= 15) /* < 2^60 */
					return -1;
				b->left = b->left * 16 + (uint64_t)mtls_hexval(c);
				b->line++;
				i++;
				break;
			}
			if (b->line == 0)
				return -1;
			b->state = CH_EXT;
			break;
		case CH_EXT:
			i++;
			if (c == '\n') {
				b->line = 0;
				b->state = b->left > 0 ? CH_DATA : CH_TRAILER;
			} else if (++b->line > CH_LINE_MAX ||
				   (c < ' ' && c != '\t' && c != '\r')) {
				return -1;
			}
			break;
		case CH_DATA: {
			size_t n = len - i < b->left ? len - i : (size_t)b->left;

			b->left -= n;
			i += n;
			if (b->left == 0)
				b->state = CH_DATA_CR;
			break;
		}
		case CH_DATA_CR:
			i++;
			if (c == '\r')
				b->state = CH_DATA_LF;
			else if (c == '\n')
				b->state = CH_SIZE;
			else
				return -1;
			break;
		case CH_DATA_LF:
			i++;
			if (c != '\n')
				return -1;
			b->state = CH_SIZE;
			break;
		case CH_TRAILER:
			i++;
			if (c == '\n') {
				*used = i;
				return 1;
			}
			b->state = c == '\r' ? CH_TRAILER_LF : CH_TRAILER_IN;
			b->line = 1;
			break;
		case CH_TRAILER_LF:
			i++;
			if (c != '\n')
				return -1;
			*used = i;
			return 1;
		case CH_TRAILER_IN:
			i++;
			if (c == '\n')
				b->state = CH_TRAILER;
			else if (++b->line > CH_LINE_MAX)
				return -1;
			break;
		default:
			return -1;
		}
	}
	*used = i;
	return 0;
}
