#include <wolfssl/options.h>

#include "https.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include "mtls_clock.h"
#include "tls.h"

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

int https_url_split(const char *url, char **host, uint16_t *port, char **path)
{
	const char *h, *slash, *colon, *hend;
	char hb[256];
	unsigned long p = 443;
	size_t hl;

	*host = *path = NULL;
	if (strncmp(url, "https://", 8) != 0)
		return -1;
	h = url + 8;
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

static int tcp_connect(const char *host, uint16_t port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	struct timeval tv = { HTTPS_TIMEOUT_SEC, 0 };
	char p[8];
	int fd = -1, one = 1;

	snprintf(p, sizeof(p), "%u", port);
	if (getaddrinfo(host, p, &hints, &res) != 0)
		return -1;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		/* The handshake's last flight, the head and the body go out as
		 * small writes: with Nagle and delayed ACKs each waited ~40 ms
		 * (GET /dir from pebble: 56.8 ms, 14.2 ms with this). */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static int write_all(WOLFSSL *ssl, const void *p, size_t n)
{
	while (n > 0) {
		int w = wolfSSL_write(ssl, p, n > 65536 ? 65536 : (int)n);

		if (w <= 0)
			return -1;
		p = (const char *)p + w;
		n -= (size_t)w;
	}
	return 0;
}

mtls_err_t https_request(const struct https_target *t, const char *method,
			 const char *path, const char *extra_headers,
			 const char *content_type, const void *body,
			 size_t body_len, size_t max, char **raw,
			 struct http_answer *a, struct mtls_error *err)
{
	WOLFSSL_CTX *ctx = NULL;
	WOLFSSL *ssl = NULL;
	struct tls_conn tc = { .id = t->client };
	char *head = NULL, host[300];
	size_t got = 0, head_len = 0;
	uint64_t deadline;
	mtls_err_t ret;
	int fd = -1, n;

	*raw = NULL;
	memset(a, 0, sizeof(*a));
	/* An IPv6 literal goes into Host: in brackets (RFC 9110 7.2). */
	snprintf(host, sizeof(host), strchr(t->host, ':') ? "[%s]:%u" : "%s:%u",
		 t->host, t->port);
	ret = tls_ctx_new(t->client, t->ca, 12, NULL, &ctx, err);
	if (ret != MTLS_OK)
		goto out;
	fd = tcp_connect(t->host, t->port);
	if (fd < 0) {
		ret = mtls_error_set(err, MTLS_ERR_CONNECT, "%s: %s", host,
				     strerror(errno));
		goto out;
	}
	ret = tls_new(ctx, &tc, fd, t->host, NULL, &ssl, err);
	if (ret != MTLS_OK)
		goto out;
	n = wolfSSL_connect(ssl);
	wc_ecc_fp_free();
	if (n != WOLFSSL_SUCCESS) {
		ret = tls_error(ssl, &tc, n, err);
		goto out;
	}
	if (strpbrk(path, "\r\n ") != NULL) {
		ret = mtls_error_set(err, MTLS_ERR_ARG, "request path");
		goto out;
	}
	n = asprintf(&head,
		     "%s %s HTTP/1.1\r\nHost: %s\r\n"
		     "User-Agent: mtls-agent/" MTLS_VERSION "\r\n%s"
		     "%s%s%s"
		     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
		     method, path, host, extra_headers ? extra_headers : "",
		     content_type ? "Content-Type: " : "",
		     content_type ? content_type : "", content_type ? "\r\n" : "",
		     body_len);
	if (n < 0) {
		head = NULL;
		ret = mtls_error_set(err, MTLS_ERR_NOMEM, "request head");
		goto out;
	}
	head_len = (size_t)n;
	if (write_all(ssl, head, head_len) != 0 ||
	    (body_len > 0 && write_all(ssl, body, body_len) != 0)) {
		ret = mtls_error_set(err, MTLS_ERR_IO, "%s: request not sent",
				     host);
		goto out;
	}
	*raw = malloc(max + 1);
	if (*raw == NULL) {
		ret = mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
		goto out;
	}
	/* One deadline for the whole answer: the socket's timeout is per
	 * read, and a server sending a byte now and then would hold the
	 * renewal (and every other identity's, on the one scheduler thread)
	 * for ever. */
	deadline = mtls_now_ms() + HTTPS_TIMEOUT_SEC * 1000;
	while (got < max) {
		int64_t left = (int64_t)(deadline - mtls_now_ms());
		struct timeval tv;

		if (left <= 0)
			break;
		tv.tv_sec = left / 1000;
		tv.tv_usec = (left % 1000) * 1000;
		if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) {
			ret = mtls_error_set(err, MTLS_ERR_IO, "SO_RCVTIMEO: %s",
					     strerror(errno));
			goto out;
		}
		n = wolfSSL_read(ssl, *raw + got, (int)(max - got));
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (mtls_now_ms() >= deadline) {
		ret = mtls_error_set(err, MTLS_ERR_TIMEOUT, "%s: answer not "
				     "complete within %d s", host,
				     HTTPS_TIMEOUT_SEC);
		goto out;
	}
	if (got == max) {
		ret = mtls_error_set(err, MTLS_ERR_LIMIT, "%s: answer larger "
				     "than %zu bytes", host, max);
		goto out;
	}
	if (got == 0) {
		int e = wolfSSL_get_error(ssl, n);

		/* The handshake is done and the request sent: a server that
		 * closes now without a byte of answer went away (stopped,
		 * restarted, reset the connection), with close_notify or
		 * without (wolfSSL's SOCKET_PEER_CLOSED_E: a bare FIN or RST).
		 * An I/O failure, not a TLS one: tls_error would call it a
		 * failed handshake. A fatal alert (a certificate refused after
		 * our Finished) still goes to tls_error. */
		if (e == WOLFSSL_ERROR_ZERO_RETURN || e == SOCKET_PEER_CLOSED_E)
			ret = mtls_error_set(
				err, MTLS_ERR_IO, "%s closed the connection after "
				"the request without answering (%s)%s", host,
				e == WOLFSSL_ERROR_ZERO_RETURN ? "close_notify" :
				"no close_notify: stopped or reset",
				t->client != NULL ? "; a server refusing our "
				"certificate may close like this" : "");
		else
			ret = tls_error(ssl, &tc, n, err);
		goto out;
	}
	(*raw)[got] = '\0';
	if (http_answer_parse(*raw, got, a) != 0)
		ret = mtls_error_set(err, MTLS_ERR_IO, "%s: answer is not "
				     "HTTP/1.x", host);
out:
	if (head != NULL) {
		explicit_bzero(head, head_len); /* may hold a credential */
		free(head);
	}
	if (ret != MTLS_OK) {
		free(*raw);
		*raw = NULL;
	}
	if (ssl != NULL)
		wolfSSL_free(ssl);
	if (fd >= 0)
		close(fd);
	wolfSSL_CTX_free(ctx);
	return ret;
}
