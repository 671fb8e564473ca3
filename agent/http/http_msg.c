#include "http_msg.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Retry-After (RFC 9110 10.2.3) as delta-seconds; an HTTP-date, a sign or
 * anything else is no number and counts as absent. Saturates at
 * HTTP_RETRY_AFTER_MAX rather than overflow. */
static int parse_retry_after(const char *v)
{
	long n = 0;

	while (*v == ' ' || *v == '\t')
		v++;
	if (!isdigit((unsigned char)*v))
		return 0;
	for (; isdigit((unsigned char)*v); v++)
		if (n <= HTTP_RETRY_AFTER_MAX)
			n = n * 10 + (*v - '0');
	while (*v == ' ' || *v == '\t')
		v++;
	if (*v != '\r' && *v != '\n' && *v != '\0')
		return 0;
	return n > HTTP_RETRY_AFTER_MAX ? HTTP_RETRY_AFTER_MAX : (int)n;
}

/* A header value without the blanks around it, into out; -1 if longer,
 * or if it holds a byte that is not printable ASCII (these values reach
 * URLs, logs and terminals). */
static int header_value(const char *v, char *out, size_t cap)
{
	const char *e;
	size_t n;

	while (*v == ' ' || *v == '\t')
		v++;
	e = v + strcspn(v, "\r\n");
	while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	n = (size_t)(e - v);
	if (n >= cap)
		return -1;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] > 0x7e)
			return -1;
	memcpy(out, v, n);
	out[n] = '\0';
	return 0;
}

/* Link (RFC 8288): <URL>; rel="alternate", <URL>; rel="up", ... Keeps the
 * alternates; -1 if one does not fit. */
static int parse_links(const char *v, struct http_answer *a)
{
	const char *end = v + strcspn(v, "\r\n");

	while (v < end) {
		const char *lt = memchr(v, '<', (size_t)(end - v)), *gt, *next;
		char params[256];
		size_t n;

		if (lt == NULL)
			break;
		gt = memchr(lt, '>', (size_t)(end - lt));
		if (gt == NULL)
			return -1;
		next = memchr(gt, ',', (size_t)(end - gt));
		if (next == NULL)
			next = end;
		n = (size_t)(next - gt - 1);
		if (n >= sizeof(params))
			n = sizeof(params) - 1;
		memcpy(params, gt + 1, n);
		params[n] = '\0';
		if (strstr(params, "rel=\"alternate\"") != NULL ||
		    strstr(params, "rel=alternate") != NULL) {
			size_t ul = (size_t)(gt - lt - 1);

			if (ul >= HTTP_URL_MAX)
				return -1;
			if (a->n_alternate < HTTP_LINKS_MAX) {
				memcpy(a->alternate[a->n_alternate], lt + 1, ul);
				a->alternate[a->n_alternate][ul] = '\0';
				a->n_alternate++;
			}
		}
		v = next + (next < end);
	}
	return 0;
}

int http_answer_parse(char *buf, size_t len, struct http_answer *a)
{
	char *hend = NULL, *line, *p;
	size_t clen = (size_t)-1;
	int chunked = 0;

	memset(a, 0, sizeof(*a));
	for (size_t i = 0; i + 3 < len; i++)
		if (memcmp(buf + i, "\r\n\r\n", 4) == 0) {
			hend = buf + i;
			break;
		}
	if (hend == NULL || sscanf(buf, "HTTP/1.%*d %3d", &a->status) != 1)
		return -1;
	*hend = '\0';
	for (line = strstr(buf, "\r\n"); line != NULL; line = strstr(line, "\r\n")) {
		line += 2;
		if (strncasecmp(line, "Content-Length:", 15) == 0) {
			char *e;

			clen = strtoul(line + 15, &e, 10);
		} else if (strncasecmp(line, "Retry-After:", 12) == 0)
			a->retry_after = parse_retry_after(line + 12);
		else if (strncasecmp(line, "Transfer-Encoding:", 18) == 0 &&
			 strstr(line, "chunked") != NULL)
			chunked = 1;
		else if ((strncasecmp(line, "Location:", 9) == 0 &&
			  header_value(line + 9, a->location,
				       sizeof(a->location)) != 0) ||
			 (strncasecmp(line, "Replay-Nonce:", 13) == 0 &&
			  header_value(line + 13, a->nonce, sizeof(a->nonce)) != 0) ||
			 (strncasecmp(line, "Content-Type:", 13) == 0 &&
			  header_value(line + 13, a->content_type,
				       sizeof(a->content_type)) != 0) ||
			 (strncasecmp(line, "Link:", 5) == 0 &&
			  parse_links(line + 5, a) != 0))
			return -1;
	}
	a->body = hend + 4;
	a->body_len = len - (size_t)(a->body - buf);
	if (chunked) {
		char *in = a->body, *end = a->body + a->body_len, *o = a->body;

		for (;;) {
			char *e;
			unsigned long n = strtoul(in, &e, 16);

			if (e == in || (p = strstr(e, "\r\n")) == NULL || p >= end)
				return -1;
			in = p + 2;
			if (n == 0)
				break;
			if (n > (size_t)(end - in))
				return -1;
			memmove(o, in, n);
			o += n;
			in += n + 2;
			if (in > end)
				return -1;
		}
		a->body_len = (size_t)(o - a->body);
	} else if (clen != (size_t)-1) {
		if (clen > a->body_len)
			return -1;
		a->body_len = clen;
	}
	a->body[a->body_len] = '\0';
	return 0;
}

int http_url_split(const char *url, int *tls, char **host, uint16_t *port,
		   char **path)
{
	const char *h, *slash, *colon, *hend;
	char hb[256];
	unsigned long p;
	size_t hl;

	*host = *path = NULL;
	if (strncmp(url, "https://", 8) == 0) {
		*tls = 1, p = 443;
		h = url + 8;
	} else if (strncmp(url, "http://", 7) == 0) {
		*tls = 0, p = 80;
		h = url + 7;
	} else {
		return -1;
	}
	slash = h + strcspn(h, "/?#");
	if (*h == '[') {
		hend = memchr(h, ']', (size_t)(slash - h));
		if (hend == NULL)
			return -1;
		colon = hend + 1 < slash && hend[1] == ':' ? hend + 1 : NULL;
		h++;
	} else {
		colon = memchr(h, ':', (size_t)(slash - h));
		hend = colon ? colon : slash;
	}
	hl = (size_t)(hend - h);
	if (hl == 0 || hl >= sizeof(hb) || memchr(h, '@', hl) != NULL)
		return -1;
	if (colon != NULL) {
		char *e;

		if (colon + 1 == slash)
			return -1;
		p = strtoul(colon + 1, &e, 10);
		if (e != slash || p == 0 || p > 65535)
			return -1;
	}
	memcpy(hb, h, hl);
	hb[hl] = '\0';
	*host = strdup(hb);
	*path = strdup(*slash == '/' ? slash : "/");
	if (*host == NULL || *path == NULL || (*slash != '/' && *slash != '\0')) {
		free(*host);
		free(*path);
		*host = *path = NULL;
		return -1;
	}
	*port = (uint16_t)p;
	return 0;
}

