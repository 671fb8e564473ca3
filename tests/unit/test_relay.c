/* The relay's TLS side after the handshake, against a local wolfSSL TLS
 * 1.3 server thread: the relay never lets wolfSSL go back into a
 * handshake (it would run on the event loop: a ClientHello's key share,
 * or a token signature, outside the handshake workers' limits, and the
 * new server would skip the revocation check).
 *
 * Found when LeakSanitizer showed ECC key generation (a ClientHello's
 * key share) on the relay loop thread in CI: wolfSSL_shutdown, when the
 * server's close_notify has been read already, wolfSSL_clear()s the
 * session (OPENSSL_EXTRA), and the next wolfSSL_read sent a new
 * ClientHello on the same socket. The other way back into a handshake, a
 * post-handshake CertificateRequest, is tunnel_post_handshake's (it needs
 * a token key). Every wait is bounded. */
#include <wolfssl/options.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include "ec_offload.h"
#include "relay.h"
#include "tls.h"
#include "tls_testlib.h"

#define ANSWER "the server's answer"
#define WAIT_MS 10000

static struct tls_test_files F;

struct server {
	int lfd;
	uint16_t port;
	int go[2];   /* the test says: send the flight */
	int sent;    /* the flight went out */
	int notify;  /* the relay's close_notify came */
	ssize_t extra; /* bytes received after it */
	pthread_t thread;
};

static int setup(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	if (tls_test_files_make(&F, "test_relay") != 0)
		return -1;
	return tls_global_init(NULL) == MTLS_OK ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	tls_global_cleanup();
	return tls_test_files_remove(&F);
}

/* What the client sends after the server's last flight, raw: 0 bytes
 * until it closes is the right answer. */
static ssize_t drain(int fd)
{
	ssize_t total = 0;
	char buf[4096];

	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n <= 0)
			return total;
		total += n;
	}
}

static void *serve(void *arg)
{
	struct server *s = arg;
	struct pollfd p = { .fd = s->lfd, .events = POLLIN };
	WOLFSSL_CTX *ctx = NULL;
	WOLFSSL *ssl = NULL;
	char c;
	int fd = -1;

	s->extra = -1;
	if (poll(&p, 1, WAIT_MS) != 1 || (fd = accept(s->lfd, NULL, NULL)) < 0)
		goto out;
	{
		struct timeval tv = { WAIT_MS / 1000, 0 };

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	ctx = wolfSSL_CTX_new(wolfTLSv1_3_server_method());
	if (ctx == NULL ||
	    wolfSSL_CTX_use_certificate_file(ctx, F.cert, WOLFSSL_FILETYPE_PEM) !=
		    WOLFSSL_SUCCESS ||
	    wolfSSL_CTX_use_PrivateKey_file(ctx, F.key, WOLFSSL_FILETYPE_PEM) !=
		    WOLFSSL_SUCCESS ||
	    (ssl = wolfSSL_new(ctx)) == NULL ||
	    wolfSSL_set_fd(ssl, fd) != WOLFSSL_SUCCESS)
		goto out;
	/* No ticket: the flight is all the client has to read. */
	(void)wolfSSL_no_ticket_TLSv13(ssl);
	if (wolfSSL_accept(ssl) != WOLFSSL_SUCCESS)
		goto out;
	p = (struct pollfd){ .fd = s->go[0], .events = POLLIN };
	if (poll(&p, 1, WAIT_MS) != 1 || read(s->go[0], &c, 1) != 1)
		goto out;
	if (wolfSSL_write(ssl, ANSWER, (int)strlen(ANSWER)) !=
	    (int)strlen(ANSWER))
		goto out;
	if (wolfSSL_shutdown(ssl) != WOLFSSL_SHUTDOWN_NOT_DONE)
		goto out;
	s->sent = 1;
	{
		char b[64];

		/* The relay's close_notify: wolfSSL_read says 0. */
		s->notify = wolfSSL_read(ssl, b, sizeof(b)) == 0 &&
			    wolfSSL_get_error(ssl, 0) == WOLFSSL_ERROR_ZERO_RETURN;
		if (!s->notify)
			goto out;
	}
	s->extra = drain(fd);
out:
	if (ssl != NULL)
		wolfSSL_free(ssl);
	if (ctx != NULL)
		wolfSSL_CTX_free(ctx);
	if (fd >= 0)
		close(fd);
	/* Debian's wolfSSL keeps FP_ECC tables per thread. */
	wc_ecc_fp_free();
	return NULL;
}

static void server_start(struct server *s)
{
	memset(s, 0, sizeof(*s));
	assert_int_equal(pipe(s->go), 0);
	s->lfd = tls_test_listen(&s->port);
	assert_true(s->lfd >= 0);
	assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void server_join(struct server *s)
{
	pthread_join(s->thread, NULL);
	close(s->lfd);
	close(s->go[0]);
	close(s->go[1]);
}

static uint64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

struct client {
	WOLFSSL_CTX *ctx;
	WOLFSSL *ssl;
	struct tls_conn tc;
	int fd;
};

/* A server-authenticated TLS 1.3 connection as the agent makes one
 * (tls_ctx_new, tls_new: its read-ahead), on a non-blocking socket. */
static void client_connect(struct client *cl, uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				 .sin_port = htons(port) };
	struct mtls_error err = { 0 };
	uint64_t until = now_ms() + WAIT_MS;
	char msg[512];

	memset(cl, 0, sizeof(*cl));
	cl->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(cl->fd >= 0);
	assert_int_equal(connect(cl->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(fcntl(cl->fd, F_SETFL, O_NONBLOCK), 0);
	if (tls_ctx_new(NULL, F.ca, 13, NULL, &cl->ctx, &err) != MTLS_OK ||
	    tls_new(cl->ctx, &cl->tc, cl->fd, "127.0.0.1", NULL, &cl->ssl,
		    &err) != MTLS_OK)
		fail_msg("%s", mtls_error_str(&err, msg, sizeof(msg)));
	for (;;) {
		int ret = wolfSSL_connect(cl->ssl), e;
		struct pollfd p = { .fd = cl->fd };

		if (ret == WOLFSSL_SUCCESS)
			break;
		e = wolfSSL_get_error(cl->ssl, ret);
		if (e == WOLFSSL_ERROR_WANT_READ)
			p.events = POLLIN;
		else if (e == WOLFSSL_ERROR_WANT_WRITE)
			p.events = POLLOUT;
		else
			fail_msg("handshake: %d", e);
		assert_true(now_ms() < until);
		assert_int_equal(poll(&p, 1, WAIT_MS), 1);
	}
}

static void client_close(struct client *cl)
{
	tls_free(cl->ssl, &cl->tc);
	tls_ctx_free(cl->ctx);
	close(cl->fd);
	/* This thread did the handshake's ECC. */
	wc_ecc_fp_free();
}

/* Until fd has at least want bytes queued: the server's flight is all in
 * before the relay's first read. */
static void wait_queued(int fd, int want)
{
	uint64_t until = now_ms() + WAIT_MS;
	int n = 0;

	while (ioctl(fd, FIONREAD, &n) == 0 && n < want) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		assert_true(now_ms() < until);
		(void)poll(&p, 1, 10);
	}
	assert_true(n >= want);
}

/* The app's end, read until EOF (bounded). */
static size_t app_read_all(int fd, char *buf, size_t cap)
{
	uint64_t until = now_ms() + WAIT_MS;
	size_t got = 0;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		assert_true(now_ms() < until);
		if (poll(&p, 1, WAIT_MS) != 1)
			continue;
		n = recv(fd, buf + got, cap - got, MSG_DONTWAIT);
		if (n == 0)
			return got;
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return got;
		if (n > 0)
			got += (size_t)n;
		if (got == cap)
			return got;
	}
}

struct relay_out {
	mtls_err_t r;
	struct relay_result res;
	char msg[512];
};

/* Drives the relay as the event loop does, with poll in this thread,
 * until it ends (the idle timeout, WAIT_MS, bounds every wait). */
static void run_relay(struct client *cl, int app_fd, struct relay_out *o)
{
	struct mtls_error err = { 0 };
	struct relay rl;
	struct relay_wait w;

	o->r = relay_init(&rl, cl->ssl, &cl->tc, cl->fd, app_fd, WAIT_MS, NULL,
			  0, NULL, &err);
	while (o->r == MTLS_OK) {
		enum relay_step st = relay_step(&rl, 16, &w, &o->r, &err);
		struct pollfd p[2] = {
			{ .fd = w.app_events ? app_fd : -1, .events = w.app_events },
			{ .fd = w.tls_events ? cl->fd : -1, .events = w.tls_events },
		};

		if (st == RELAY_STEP_DONE)
			break;
		if (st == RELAY_STEP_AGAIN)
			continue;
		assert_true(poll(p, 2, w.timeout_ms) >= 0 || errno == EINTR);
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR))
			rl.app_readable = 1;
	}
	o->res = rl.res;
	relay_fini(&rl);
	mtls_error_str(&err, o->msg, sizeof(o->msg));
}

/* The app sent nothing and closed its side; the server answers and
 * closes. Both close_notify pass, and nothing else: the old relay sent a
 * ClientHello after them (wolfSSL_shutdown's wolfSSL_clear), which the
 * server saw as extra bytes. */
static void test_both_close_notify_then_nothing(void **state)
{
	unsigned long ec_before[EC_OFF__N];
	struct relay_out o;
	struct server s;
	struct client cl;
	char got[256];
	int app[2];
	size_t n;

	(void)state;
	server_start(&s);
	for (int i = 0; i < EC_OFF__N; i++)
		ec_before[i] = ec_offload_ops((enum ec_offload_op)i);
	client_connect(&cl, s.port);
	/* The client's P-256 went through libcrypto (ec_offload.c): its key
	 * share, the ECDH, and the checks of the server's CertificateVerify
	 * and of the CA's signature on its certificate. */
	assert_int_equal(ec_offload_ops(EC_OFF_KEYGEN), ec_before[EC_OFF_KEYGEN] + 1);
	assert_int_equal(ec_offload_ops(EC_OFF_ECDH), ec_before[EC_OFF_ECDH] + 1);
	assert_true(ec_offload_ops(EC_OFF_VERIFY) >= ec_before[EC_OFF_VERIFY] + 2);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
				    app), 0);
	assert_int_equal(shutdown(app[1], SHUT_WR), 0);
	assert_int_equal(write(s.go[1], "g", 1), 1);
	/* The answer's record and the close_notify's: 5 + n + 17 and 24. */
	wait_queued(cl.fd, (int)strlen(ANSWER) + 22 + 24);
	run_relay(&cl, app[0], &o);
	n = app_read_all(app[1], got, sizeof(got));
	client_close(&cl);
	server_join(&s);
	if (o.r != MTLS_OK)
		fail_msg("relay: %s", o.msg);
	assert_int_equal(n, strlen(ANSWER));
	assert_memory_equal(got, ANSWER, n);
	assert_true(s.sent);
	assert_true(s.notify);
	assert_int_equal(s.extra, 0);
	close(app[0]);
	close(app[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_both_close_notify_then_nothing),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
