#include <wolfssl/options.h>

#include "conn.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include "mtls_log.h"
#include "relay.h"
#include "stats.h"

#define CONN_STACK (256 * 1024)

struct conn {
	unsigned long id;
	struct runtime *rt;
	struct tunnel *t;
	int app_fd;
	int srv_fd;
	int stop_fd;
	struct ucred cred;
};

static atomic_ulong next_conn_id;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Waits for events on fd until deadline or stop. 1 ready, 0 timeout,
 * -1 stop/error. */
static int wait_fd(int fd, short events, int stop_fd, uint64_t deadline)
{
	for (;;) {
		uint64_t now = now_ms();
		struct pollfd p[2] = { { .fd = fd, .events = events },
				       { .fd = stop_fd, .events = POLLIN } };
		int n;

		if (now >= deadline)
			return 0;
		n = poll(p, 2, (int)(deadline - now));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (p[1].revents & POLLIN))
			return -1;
		if (n > 0)
			return 1;
	}
}

static mtls_err_t connect_server(struct conn *c, struct mtls_error *err)
{
	const struct cfg_tunnel *ct = c->t->cfg;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_family = AF_UNSPEC };
	struct addrinfo *res = NULL, *ai;
	uint64_t deadline = now_ms() + c->rt->cfg->agent.connect_timeout_ms;
	char port[8];
	int rc, last_errno = 0;

	snprintf(port, sizeof(port), "%u", ct->connect_port);
	rc = getaddrinfo(ct->connect_host, port, &hints, &res);
	if (rc != 0)
		return mtls_error_set(err, MTLS_ERR_CONNECT, "%s: %s",
				      ct->connect_host, gai_strerror(rc));
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		int fd = socket(ai->ai_family,
				SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		int soerr = 0;
		socklen_t len = sizeof(soerr);

		if (fd < 0) {
			last_errno = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			c->srv_fd = fd;
			break;
		}
		if (errno == EINPROGRESS) {
			rc = wait_fd(fd, POLLOUT, c->stop_fd, deadline);
			if (rc == 1 &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr,
				       &len) == 0 && soerr == 0) {
				c->srv_fd = fd;
				break;
			}
			last_errno = rc == 0 ? ETIMEDOUT : soerr;
		} else {
			last_errno = errno;
		}
		close(fd);
	}
	freeaddrinfo(res);
	if (c->srv_fd < 0)
		return mtls_error_set(err, last_errno == ETIMEDOUT ?
					   MTLS_ERR_TIMEOUT : MTLS_ERR_CONNECT,
				      "%s:%u: %s", ct->connect_host,
				      ct->connect_port,
				      strerror(last_errno ? last_errno : EIO));
	return MTLS_OK;
}

static mtls_err_t handshake(struct conn *c, WOLFSSL *ssl, struct tls_conn *tc,
			    struct mtls_error *err)
{
	uint64_t deadline = now_ms() + c->rt->cfg->agent.handshake_timeout_ms;

	for (;;) {
		int ret = wolfSSL_connect(ssl), e, w;

		if (ret == WOLFSSL_SUCCESS)
			return MTLS_OK;
		e = wolfSSL_get_error(ssl, ret);
		if (e != WOLFSSL_ERROR_WANT_READ && e != WOLFSSL_ERROR_WANT_WRITE)
			return tls_error(ssl, tc, ret, err);
		w = wait_fd(c->srv_fd,
			    e == WOLFSSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
			    c->stop_fd, deadline);
		if (w == 0)
			return mtls_error_set(err, MTLS_ERR_TIMEOUT,
					      "handshake took over %u ms",
					      c->rt->cfg->agent.handshake_timeout_ms);
		if (w < 0)
			return mtls_error_set(err, MTLS_ERR_TIMEOUT,
					      "agent stopping");
	}
}

static void count_failure(mtls_err_t code)
{
	if ((unsigned)code < MTLS_ERR__COUNT)
		atomic_fetch_add(&g_stats.handshakes_failed[code], 1);
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	const struct cfg_tunnel *ct = c->t->cfg;
	const char *name = ct->sni != NULL ? ct->sni : ct->connect_host;
	struct tls_conn tc = { .id = c->t->id };
	struct relay_result rr = { 0 };
	struct mtls_error err = { 0 };
	char msg[512];
	WOLFSSL *ssl = NULL;
	uint64_t t0 = now_ms();
	mtls_err_t r;

	log_info("event=accept conn=%lu tunnel=%s uid=%u gid=%u pid=%d",
		 c->id, ct->name, (unsigned)c->cred.uid, (unsigned)c->cred.gid,
		 (int)c->cred.pid);
	r = connect_server(c, &err);
	if (r != MTLS_OK)
		goto fail;
	r = tls_new(c->t->ctx, &tc, c->srv_fd, name, ct->alpn, &ssl, &err);
	if (r != MTLS_OK)
		goto fail;
	r = handshake(c, ssl, &tc, &err);
	/* Debian's wolfSSL has FP_ECC: each thread builds its own fixed-point
	 * tables (megabytes) and only this call frees them. The relay needs
	 * none, so they go as soon as the handshake is over. */
	wc_ecc_fp_free();
	if (r != MTLS_OK)
		goto fail;
	atomic_fetch_add(&g_stats.handshakes_ok, 1);
	log_info("event=handshake conn=%lu tunnel=%s result=ok server=%s:%u "
		 "version=%s cipher=%s token_signs=%lu sign_ms=%.1f "
		 "handshake_ms=%lu",
		 c->id, ct->name, ct->connect_host, ct->connect_port,
		 wolfSSL_get_version(ssl),
		 wolfSSL_get_cipher_name(ssl), tc.sign_count,
		 tc.sign_seconds * 1000.0, (unsigned long)(now_ms() - t0));

	r = relay_run(ssl, &tc, c->srv_fd, c->app_fd, c->stop_fd,
		      c->rt->cfg->agent.idle_timeout_ms, &rr, &err);
	if (r != MTLS_OK && rr.to_client == 0) {
		/* TLS 1.3 servers judge our certificate after our Finished:
		 * their refusal arrives as the first record, and turns the
		 * handshake counted as ok into a failed one. */
		atomic_fetch_sub(&g_stats.handshakes_ok, 1);
		count_failure(r);
		log_warn("event=handshake conn=%lu tunnel=%s result=fail "
			 "reason=%s detail=\"%s\"", c->id, ct->name,
			 mtls_err_name(r), mtls_error_str(&err, msg, sizeof(msg)));
	} else if (r != MTLS_OK) {
		log_warn("event=relay_error conn=%lu tunnel=%s reason=%s "
			 "detail=\"%s\"", c->id, ct->name, mtls_err_name(r),
			 mtls_error_str(&err, msg, sizeof(msg)));
	}
	log_info("event=close conn=%lu tunnel=%s to_server=%llu to_client=%llu "
		 "duration_ms=%llu%s%s", c->id, ct->name,
		 (unsigned long long)rr.to_server,
		 (unsigned long long)rr.to_client,
		 (unsigned long long)(now_ms() - t0),
		 rr.idle_timeout ? " idle_timeout=1" : "",
		 rr.stopped ? " stopped=1" : "");
	goto out;
fail:
	count_failure(r);
	log_warn("event=handshake conn=%lu tunnel=%s result=fail reason=%s "
		 "server=%s:%u detail=\"%s\"", c->id, ct->name,
		 mtls_err_name(r), ct->connect_host, ct->connect_port,
		 mtls_error_str(&err, msg, sizeof(msg)));
out:
	if (ssl != NULL)
		wolfSSL_free(ssl);
	if (c->srv_fd >= 0)
		close(c->srv_fd);
	close(c->app_fd);
	runtime_put(c->rt);
	free(c);
	atomic_fetch_sub(&g_stats.connections_active, 1);
	return NULL;
}

mtls_err_t conn_start(struct runtime *rt, struct tunnel *t, int fd,
		      int stop_fd, struct mtls_error *err)
{
	pthread_attr_t attr;
	pthread_t th;
	struct conn *c;
	socklen_t len;
	int rc;

	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		close(fd);
		runtime_put(rt);
		return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	}
	c->id = atomic_fetch_add(&next_conn_id, 1) + 1;
	c->rt = rt;
	c->t = t;
	c->app_fd = fd;
	c->srv_fd = -1;
	c->stop_fd = stop_fd;
	len = sizeof(c->cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->cred, &len) != 0) {
		c->cred.uid = (uid_t)-1;
		c->cred.gid = (gid_t)-1;
		c->cred.pid = 0;
	}
	atomic_fetch_add(&g_stats.connections_total, 1);
	atomic_fetch_add(&g_stats.connections_active, 1);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, CONN_STACK);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&th, &attr, conn_main, c);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		atomic_fetch_sub(&g_stats.connections_active, 1);
		close(fd);
		runtime_put(rt);
		free(c);
		return mtls_error_set(err, MTLS_ERR_LIMIT,
				      "pthread_create: %s", strerror(rc));
	}
	return MTLS_OK;
}
