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

int https_url_split(const char *url, char **host, uint16_t *port, char **path)
{
	int tls;

	if (http_url_split(url, &tls, host, port, path) != 0)
		return -1;
	if (tls)
		return 0;
	free(*host);
	free(*path);
	*host = *path = NULL;
	return -1;
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
		tls_free(ssl, &tc);
	if (fd >= 0)
		close(fd);
	wolfSSL_CTX_free(ctx);
	return ret;
}
