#include "acme_http01.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mtls_clock.h"
#include "mtls_log.h"

/* A validation request is one short line and a few headers. */
#define H1_REQUEST_MAX 4096
#define H1_CLIENT_MS 10000
#define H1_PREFIX "/.well-known/acme-challenge/"

struct acme_http01 {
	int fd;
	int stop[2]; /* a pipe: written to stop the thread */
	pthread_t thread;
	pthread_mutex_t mu;
	char token[ACME_HTTP01_TOKENS][128];
	char authz[ACME_HTTP01_TOKENS][256];
	unsigned n;
	unsigned long served;
};

static void reply(int fd, int status, const char *text, const char *body)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf),
			 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
			 status, text, strlen(body), body);

	if (n > 0 && (size_t)n < sizeof(buf))
		(void)!write(fd, buf, (size_t)n);
}

/* Clients served at once; each has H1_CLIENT_MS for its whole request,
 * so one sending a byte a second delays nobody (the CA's validation
 * arrives beside it) and is closed when its time is up. */
#define H1_CLIENTS 16

struct h1_client {
	int fd;
	uint64_t deadline;
	size_t got;
	char req[H1_REQUEST_MAX + 1];
};

/* A complete request: answer it. */
static void answer(struct acme_http01 *h, struct h1_client *c)
{
	char path[256], authz[256] = "";
	int found = 0;

	c->req[c->got] = '\0';
	if (sscanf(c->req, "GET %255s HTTP/1.%*d", path) != 1 ||
	    strncmp(path, H1_PREFIX, strlen(H1_PREFIX)) != 0) {
		reply(c->fd, 404, "Not Found", "");
		return;
	}
	pthread_mutex_lock(&h->mu);
	for (unsigned i = 0; i < h->n; i++)
		if (strcmp(path + strlen(H1_PREFIX), h->token[i]) == 0) {
			snprintf(authz, sizeof(authz), "%s", h->authz[i]);
			found = 1;
			h->served++;
		}
	pthread_mutex_unlock(&h->mu);
	if (found)
		reply(c->fd, 200, "OK", authz);
	else
		reply(c->fd, 404, "Not Found", "");
	log_info("event=acme_http01_request path=%s status=%d", path,
		 found ? 200 : 404);
}

static void drop(struct h1_client *c)
{
	close(c->fd);
	c->fd = -1;
}

static void *run(void *arg)
{
	struct acme_http01 *h = arg;
	struct h1_client *cl = calloc(H1_CLIENTS, sizeof(*cl));

	if (cl == NULL)
		return NULL;
	for (int i = 0; i < H1_CLIENTS; i++)
		cl[i].fd = -1;
	for (;;) {
		struct pollfd p[2 + H1_CLIENTS];
		uint64_t now = mtls_now_ms();
		int64_t wait = -1;
		int n = 2, slot = -1;

		p[0] = (struct pollfd){ h->stop[0], POLLIN, 0 };
		p[1] = (struct pollfd){ h->fd, POLLIN, 0 };
		for (int i = 0; i < H1_CLIENTS; i++) {
			if (cl[i].fd < 0) {
				slot = i;
				continue;
			}
			if (cl[i].deadline <= now) {
				drop(&cl[i]); /* too slow: closed */
				slot = i;
				continue;
			}
			if (wait < 0 || (int64_t)(cl[i].deadline - now) < wait)
				wait = (int64_t)(cl[i].deadline - now);
			p[n++] = (struct pollfd){ cl[i].fd, POLLIN, 0 };
		}
		/* All slots busy: accept nobody until one is free (the
		 * backlog waits, and every slot is bounded in time). */
		if (slot < 0)
			p[1].fd = -1;
		if (poll(p, (nfds_t)n, (int)wait) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents)
			break;
		if (slot >= 0 && (p[1].revents & POLLIN)) {
			int c = accept4(h->fd, NULL, NULL,
					SOCK_CLOEXEC | SOCK_NONBLOCK);

			if (c >= 0) {
				cl[slot].fd = c;
				cl[slot].got = 0;
				cl[slot].deadline = mtls_now_ms() + H1_CLIENT_MS;
			}
		}
		for (int k = 2; k < n; k++) {
			struct h1_client *c = NULL;
			ssize_t r;

			if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			for (int i = 0; i < H1_CLIENTS; i++)
				if (cl[i].fd == p[k].fd)
					c = &cl[i];
			if (c == NULL)
				continue;
			r = read(c->fd, c->req + c->got, H1_REQUEST_MAX - c->got);
			if (r <= 0) {
				drop(c);
				continue;
			}
			c->got += (size_t)r;
			if (memmem(c->req, c->got, "\r\n\r\n", 4) != NULL) {
				answer(h, c);
				drop(c);
			} else if (c->got == H1_REQUEST_MAX) {
				reply(c->fd, 431, "Request Header Fields Too Large", "");
				drop(c);
			}
		}
	}
	for (int i = 0; i < H1_CLIENTS; i++)
		if (cl[i].fd >= 0)
			close(cl[i].fd);
	free(cl);
	return NULL;
}

mtls_err_t acme_http01_start(const char *host, uint16_t port,
			     struct acme_http01 **out, struct mtls_error *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICHOST | AI_PASSIVE };
	struct addrinfo *ai = NULL;
	struct acme_http01 *h;
	char p[8];
	int one = 1;

	*out = NULL;
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	h->fd = h->stop[0] = h->stop[1] = -1;
	pthread_mutex_init(&h->mu, NULL);
	snprintf(p, sizeof(p), "%u", port);
	if (getaddrinfo(host, p, &hints, &ai) != 0) {
		acme_http01_stop(h);
		return mtls_error_set(err, MTLS_ERR_CONFIG, "acme_http_listen "
				      "%s: not an address", host);
	}
	h->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (h->fd < 0 ||
	    setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(h->fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
	    listen(h->fd, 16) != 0 || pipe2(h->stop, O_CLOEXEC) != 0) {
		int e = errno;

		freeaddrinfo(ai);
		acme_http01_stop(h);
		return mtls_error_set(err, MTLS_ERR_IO, "http-01 responder on "
				      "%s:%u: %s", host, port, strerror(e));
	}
	freeaddrinfo(ai);
	if (pthread_create(&h->thread, NULL, run, h) != 0) {
		close(h->stop[1]);
		h->stop[1] = -1;
		acme_http01_stop(h);
		return mtls_error_set(err, MTLS_ERR_IO, "http-01 thread");
	}
	log_info("event=acme_http01_listening address=%s:%u", host, port);
	*out = h;
	return MTLS_OK;
}

mtls_err_t acme_http01_add(struct acme_http01 *h, const char *token,
			   const char *key_authz, struct mtls_error *err)
{
	mtls_err_t r = MTLS_OK;

	if (h == NULL)
		return mtls_error_set(err, MTLS_ERR_ARG, "no http-01 responder");
	pthread_mutex_lock(&h->mu);
	if (h->n == ACME_HTTP01_TOKENS || strlen(token) >= sizeof(h->token[0]) ||
	    strlen(key_authz) >= sizeof(h->authz[0])) {
		r = mtls_error_set(err, MTLS_ERR_LIMIT, "http-01 tokens");
	} else {
		snprintf(h->token[h->n], sizeof(h->token[0]), "%s", token);
		snprintf(h->authz[h->n], sizeof(h->authz[0]), "%s", key_authz);
		h->n++;
	}
	pthread_mutex_unlock(&h->mu);
	return r;
}

void acme_http01_stop(struct acme_http01 *h)
{
	if (h == NULL)
		return;
	if (h->stop[1] >= 0) {
		(void)!write(h->stop[1], "x", 1);
		pthread_join(h->thread, NULL);
	}
	for (int i = 0; i < 2; i++)
		if (h->stop[i] >= 0)
			close(h->stop[i]);
	if (h->fd >= 0)
		close(h->fd);
	pthread_mutex_destroy(&h->mu);
	free(h);
}
