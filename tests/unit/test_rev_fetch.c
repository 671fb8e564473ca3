/* The revocation cache's file store and the plain-HTTP fetcher it uses:
 * records written and read back, files and folders that must be refused
 * (symlinks, permissions, truncation), local addresses not contacted
 * unless allowed, answers bounded in size and time. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http_fetch.h"
#include "net_addr.h"
#include "rev_store.h"

static char dir[256];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_rev_fetch.XXXXXX");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void record(struct rev_record *r, enum rev_kind k)
{
	static uint8_t issuer[] = { 0x30, 0x03, 0x02, 0x01, 0x05 };
	static uint8_t answer[] = { 0x30, 0x00, 0x0a, 0x0d };

	memset(r, 0, sizeof(*r));
	r->kind = k;
	memset(r->key, 'a', 64);
	snprintf(r->url, sizeof(r->url), "http://ocsp.example/x");
	r->serial[0] = 0x10, r->serial[1] = 0x02;
	r->serial_len = 2;
	r->fetched_at = 1764650000;
	r->issuer = issuer;
	r->issuer_len = sizeof(issuer);
	r->answer = answer; /* holds \n and \r: the body is binary */
	r->answer_len = sizeof(answer);
}

static void store_round_trip(void **state)
{
	struct rev_record w, r;
	struct mtls_error err = { 0 };
	char sub[300], name[80];
	struct stat st;

	(void)state;
	snprintf(sub, sizeof(sub), "%s/revocation", dir);
	assert_int_equal(rev_store_dir(sub, &err), MTLS_OK);
	assert_int_equal(stat(sub, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	record(&w, REV_KIND_OCSP);
	assert_int_equal(rev_store_write(sub, &w, &err), MTLS_OK);
	snprintf(name, sizeof(name), "%s.ocsp", w.key);
	assert_int_equal(rev_store_read(sub, name, &r, &err), MTLS_OK);
	assert_int_equal(r.kind, REV_KIND_OCSP);
	assert_string_equal(r.url, w.url);
	assert_int_equal(r.serial_len, 2);
	assert_memory_equal(r.serial, w.serial, 2);
	assert_int_equal(r.fetched_at, w.fetched_at);
	assert_int_equal(r.issuer_len, w.issuer_len);
	assert_memory_equal(r.issuer, w.issuer, w.issuer_len);
	assert_int_equal(r.answer_len, w.answer_len);
	assert_memory_equal(r.answer, w.answer, w.answer_len);
	rev_record_free(&r);
	{
		char path[400];

		snprintf(path, sizeof(path), "%s/%s", sub, name);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
	}
	/* An OCSP record under a .crl name is not one. */
	snprintf(name, sizeof(name), "%s.crl", w.key);
	{
		char from[400], to[400];

		snprintf(from, sizeof(from), "%s/%s.ocsp", sub, w.key);
		snprintf(to, sizeof(to), "%s/%s", sub, name);
		assert_int_equal(link(from, to), 0);
	}
	assert_int_not_equal(rev_store_read(sub, name, &r, &err), MTLS_OK);
}

static void store_refuses_unsafe(void **state)
{
	struct rev_record w, r;
	struct mtls_error err = { 0 };
	char sub[300], path[400], link_path[400], name[80];
	int fd;

	(void)state;
	snprintf(sub, sizeof(sub), "%s/rev", dir);
	assert_int_equal(rev_store_dir(sub, &err), MTLS_OK);
	/* A folder others may write is refused, and so is a symlink. */
	assert_int_equal(chmod(sub, 0770), 0);
	assert_int_equal(rev_store_dir(sub, &err), MTLS_ERR_PERMISSION);
	assert_int_equal(chmod(sub, 0700), 0);
	snprintf(link_path, sizeof(link_path), "%s/rev-link", dir);
	assert_int_equal(symlink(sub, link_path), 0);
	assert_int_equal(rev_store_dir(link_path, &err), MTLS_ERR_PERMISSION);

	record(&w, REV_KIND_CRL);
	assert_int_equal(rev_store_write(sub, &w, &err), MTLS_OK);
	snprintf(name, sizeof(name), "%s.crl", w.key);
	snprintf(path, sizeof(path), "%s/%s", sub, name);
	/* Readable by others: not ours alone. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(rev_store_read(sub, name, &r, &err), MTLS_ERR_PERMISSION);
	assert_int_equal(chmod(path, 0600), 0);
	/* A symlink in its place is not followed. */
	snprintf(link_path, sizeof(link_path), "%s/%s.crl", sub,
		 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
	assert_int_equal(symlink(path, link_path), 0);
	assert_int_not_equal(rev_store_read(sub, strrchr(link_path, '/') + 1, &r,
					    &err), MTLS_OK);
	/* Cut short, or with a byte more: not a record. */
	fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	assert_int_not_equal(rev_store_read(sub, name, &r, &err), MTLS_OK);
	{
		struct stat st;

		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(truncate(path, st.st_size - 3), 0);
	}
	assert_int_not_equal(rev_store_read(sub, name, &r, &err), MTLS_OK);
	/* A name that is not KEY.ocsp or KEY.crl. */
	assert_int_not_equal(rev_store_read(sub, "x.pem", &r, &err), MTLS_OK);
}

static void addresses(void **state)
{
	static const struct {
		const char *a;
		int local;
	} cases[] = {
		{ "127.0.0.1", 1 }, { "127.9.8.7", 1 }, { "0.0.0.0", 1 },
		{ "169.254.169.254", 1 }, { "224.0.0.1", 1 },
		{ "255.255.255.255", 1 }, { "10.1.2.3", 0 }, { "192.0.2.1", 0 },
		{ "::1", 1 }, { "::", 1 }, { "fe80::1", 1 }, { "ff02::1", 1 },
		{ "::ffff:127.0.0.1", 1 }, { "::ffff:169.254.1.1", 1 },
		{ "2001:db8::1", 0 }, { "::ffff:192.0.2.1", 0 },
	};
	struct net_addrs to;
	struct mtls_error err = { 0 };

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sockaddr_storage ss;

		memset(&ss, 0, sizeof(ss));
		if (strchr(cases[i].a, ':')) {
			ss.ss_family = AF_INET6;
			assert_int_equal(inet_pton(AF_INET6, cases[i].a,
				&((struct sockaddr_in6 *)&ss)->sin6_addr), 1);
		} else {
			ss.ss_family = AF_INET;
			assert_int_equal(inet_pton(AF_INET, cases[i].a,
				&((struct sockaddr_in *)&ss)->sin_addr), 1);
		}
		if (net_addr_local(&ss) != cases[i].local)
			fail_msg("%s: local=%d", cases[i].a, !cases[i].local);
	}
	/* The same address spelled another way never reaches a rule. */
	assert_int_equal(net_resolve("127.1", 80, &to, &err), MTLS_ERR_BAD_REQUEST);
	assert_int_equal(net_resolve("0x7f.0.0.1", 80, &to, &err),
			 MTLS_ERR_BAD_REQUEST);
	assert_int_equal(net_resolve("2130706433", 80, &to, &err),
			 MTLS_ERR_BAD_REQUEST);
	assert_int_equal(net_resolve("[::1]", 80, &to, &err), MTLS_OK);
	assert_int_equal(to.n, 1);
}

/* A loopback server for the fetcher: answers each connection with what
 * it is given, after reading the request head. */
struct server {
	int fd;
	uint16_t port;
	const char *answer;
	size_t answer_len;
	int hold;   /* read the request, never answer */
	int accepted;
	pthread_t t;
};

static void *serve(void *arg)
{
	struct server *s = arg;
	int c = accept(s->fd, NULL, NULL);
	char buf[4096];
	size_t got = 0;

	if (c < 0)
		return NULL;
	s->accepted = 1;
	while (got < sizeof(buf) - 1) {
		ssize_t n = read(c, buf + got, sizeof(buf) - 1 - got);

		if (n <= 0)
			break;
		got += (size_t)n;
		buf[got] = '\0';
		if (strstr(buf, "\r\n\r\n") != NULL)
			break;
	}
	if (!s->hold && s->answer != NULL) {
		size_t off = 0;

		while (off < s->answer_len) {
			ssize_t n = write(c, s->answer + off, s->answer_len - off);

			if (n <= 0)
				break;
			off += (size_t)n;
		}
	} else {
		/* Until the client gives up. */
		while (read(c, buf, sizeof(buf)) > 0)
			;
	}
	close(c);
	return NULL;
}

static void server_start(struct server *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t l = sizeof(a);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s->fd >= 0);
	assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->fd, 4), 0);
	assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &l), 0);
	s->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&s->t, NULL, serve, s), 0);
}

static void server_stop(struct server *s)
{
	shutdown(s->fd, SHUT_RDWR);
	pthread_join(s->t, NULL);
	close(s->fd);
}

static void fetch_local_refused(void **state)
{
	struct server s = { .answer = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc" };
	struct http_fetch_opts o = { .allow_local = 0, .timeout_ms = 5000,
				     .max = 4096 };
	struct http_answer a;
	struct mtls_error err = { 0 };
	char url[64], *raw = NULL;

	(void)state;
	s.answer_len = strlen(s.answer);
	server_start(&s);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/ocsp", s.port);
	assert_int_equal(http_fetch(url, NULL, NULL, 0, &o, &raw, &a, &err),
			 MTLS_ERR_POLICY_DENIED);
	assert_null(raw);
	/* Spelled as a name that resolves to loopback: the same. */
	snprintf(url, sizeof(url), "http://localhost:%u/ocsp", s.port);
	assert_int_equal(http_fetch(url, NULL, NULL, 0, &o, &raw, &a, &err),
			 MTLS_ERR_POLICY_DENIED);
	assert_int_equal(s.accepted, 0);
	/* Allowed by the profile: fetched. */
	o.allow_local = 1;
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/ocsp", s.port);
	assert_int_equal(http_fetch(url, "application/ocsp-request", "q", 1, &o,
				    &raw, &a, &err), MTLS_OK);
	assert_int_equal(a.status, 200);
	assert_int_equal(a.body_len, 3);
	assert_memory_equal(a.body, "abc", 3);
	free(raw);
	server_stop(&s);
	/* Only http:// URLs. */
	assert_int_equal(http_fetch("https://127.0.0.1/", NULL, NULL, 0, &o, &raw,
				    &a, &err), MTLS_ERR_ARG);
	assert_int_equal(http_fetch("ldap://127.0.0.1/", NULL, NULL, 0, &o, &raw,
				    &a, &err), MTLS_ERR_ARG);
}

static void fetch_bounded(void **state)
{
	static char big[9000];
	struct server s = { 0 }, slow = { .hold = 1 };
	struct http_fetch_opts o = { .allow_local = 1, .timeout_ms = 400,
				     .max = 4096 };
	struct http_answer a;
	struct mtls_error err = { 0 };
	char url[64], *raw = NULL;

	(void)state;
	snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\nContent-Length: 8000\r\n\r\n");
	memset(big + strlen(big), 'x', sizeof(big) - 1 - strlen(big));
	s.answer = big;
	s.answer_len = sizeof(big) - 1;
	o.timeout_ms = 10000;
	server_start(&s);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/ca.crl", s.port);
	assert_int_equal(http_fetch(url, NULL, NULL, 0, &o, &raw, &a, &err),
			 MTLS_ERR_LIMIT);
	assert_null(raw);
	server_stop(&s);
	/* A server that never answers costs the deadline, no more. */
	o.timeout_ms = 400;
	server_start(&slow);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/ca.crl", slow.port);
	assert_int_equal(http_fetch(url, NULL, NULL, 0, &o, &raw, &a, &err),
			 MTLS_ERR_TIMEOUT);
	server_stop(&slow);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(store_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(store_refuses_unsafe, setup, teardown),
		cmocka_unit_test(addresses),
		cmocka_unit_test(fetch_local_refused),
		cmocka_unit_test(fetch_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
