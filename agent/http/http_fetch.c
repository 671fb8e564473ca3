#include "http_fetch.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mtls_clock.h"
#include "mtls_io.h"
#include "net_addr.h"

static mtls_err_t dial(const char *host, uint16_t port, int allow_local,
		       uint64_t deadline, int *out, struct mtls_error *err)
{
	struct net_addrs to;
	unsigned skipped = 0;
	int last = 0, one = 1;
	mtls_err_t r;

	*out = -1;
	r = net_resolve(host, port, &to, err);
	if (r != MTLS_OK)
		return r;
	for (unsigned i = 0; i < to.n; i++) {
		int fd, soerr = 0;
		socklen_t sl = sizeof(soerr);

		if (!allow_local && net_addr_local(&to.a[i])) {
			skipped++;
			continue;
		}
		fd = socket(to.a[i].ss_family,
			    SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			last = errno;
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, (const struct sockaddr *)&to.a[i], to.len[i]) == 0) {
			*out = fd;
			return MTLS_OK;
		}
		if (errno == EINPROGRESS && mtls_wait_fd(fd, POLLOUT, -1, deadline) == 1 &&
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 &&
		    soerr == 0) {
			*out = fd;
			return MTLS_OK;
		}
		last = errno == EINPROGRESS ? (soerr ? soerr : ETIMEDOUT) : errno;
		close(fd);
	}
	if (skipped == to.n)
		return mtls_error_set(err, MTLS_ERR_POLICY_DENIED, "%s resolves only "
				      "to local addresses (loopback, "
				      "link-local): not contacted", host);
	return mtls_error_set(err, last == ETIMEDOUT ? MTLS_ERR_TIMEOUT :
				      MTLS_ERR_CONNECT, "%s:%u: %s", host, port,
			      strerror(last ? last : EIO));
}

static int send_all(int fd, const void *p, size_t n, uint64_t deadline)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (mtls_wait_fd(fd, POLLOUT, -1, deadline) != 1)
				return -1;
			continue;
		}
		if (w <= 0)
			return -1;
		p = (const char *)p + w;
		n -= (size_t)w;
	}
	return 0;
}

mtls_err_t http_fetch(const char *url, const char *content_type,
		      const void *body, size_t body_len,
		      const struct http_fetch_opts *o, char **raw,
		      struct http_answer *a, struct mtls_error *err)
{
	uint64_t deadline = mtls_now_ms() + o->timeout_ms;
	char *host = NULL, *path = NULL, *head = NULL;
	uint16_t port;
	size_t got = 0;
	mtls_err_t r;
	int tls, fd = -1, n;

	*raw = NULL;
	memset(a, 0, sizeof(*a));
	if (http_url_split(url, &tls, &host, &port, &path) != 0 || tls ||
	    strpbrk(path, "\r\n ") != NULL) {
		r = mtls_error_set(err, MTLS_ERR_ARG, "not an http:// URL");
		goto out;
	}
	r = dial(host, port, o->allow_local, deadline, &fd, err);
	if (r != MTLS_OK)
		goto out;
	/* An IPv6 literal goes into Host: in brackets (RFC 9110 7.2). */
	n = asprintf(&head,
		     "%s %s HTTP/1.1\r\nHost: %s%s%s:%u\r\n"
		     "User-Agent: mtls-agent/" MTLS_VERSION "\r\n"
		     "%s%s%sContent-Length: %zu\r\nConnection: close\r\n\r\n",
		     body ? "POST" : "GET", path, strchr(host, ':') ? "[" : "",
		     host, strchr(host, ':') ? "]" : "", port,
		     content_type ? "Content-Type: " : "",
		     content_type ? content_type : "",
		     content_type ? "\r\n" : "", body ? body_len : 0);
	if (n < 0) {
		head = NULL;
		r = mtls_error_set(err, MTLS_ERR_NOMEM, "request head");
		goto out;
	}
	if (send_all(fd, head, (size_t)n, deadline) != 0 ||
	    (body != NULL && send_all(fd, body, body_len, deadline) != 0)) {
		r = mtls_error_set(err, MTLS_ERR_IO, "%s: request not sent", host);
		goto out;
	}
	*raw = malloc(o->max + 1);
	if (*raw == NULL) {
		r = mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
		goto out;
	}
	/* One deadline for the whole answer: a server sending a byte now and
	 * then must not hold the fetch (and everyone waiting on it) longer. */
	while (got < o->max) {
		ssize_t k;
		int w = mtls_wait_fd(fd, POLLIN, -1, deadline);

		if (w == 0) {
			r = mtls_error_set(err, MTLS_ERR_TIMEOUT, "%s: no "
					   "complete answer within %u ms", host,
					   o->timeout_ms);
			goto out;
		}
		if (w < 0)
			break;
		k = recv(fd, *raw + got, o->max - got, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	if (got == o->max) {
		r = mtls_error_set(err, MTLS_ERR_LIMIT, "%s: answer larger than "
				   "%zu bytes", host, o->max);
		goto out;
	}
	(*raw)[got] = '\0';
	if (got == 0 || http_answer_parse(*raw, got, a) != 0)
		r = mtls_error_set(err, MTLS_ERR_IO, "%s: %s", host, got == 0 ?
				   "closed without an answer" :
				   "answer is not HTTP/1.x");
out:
	if (r != MTLS_OK) {
		free(*raw);
		*raw = NULL;
	}
	if (fd >= 0)
		close(fd);
	free(head);
	free(host);
	free(path);
	return r;
}
