/* caller.c: who is on the other end, from the kernel, race-free. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "caller.h"

static void test_cgroup_unit(void **state)
{
	char unit[64];

	(void)state;
	assert_int_equal(caller_unit_from_cgroup("0::/system.slice/nginx.service\n",
						 unit, sizeof(unit)), 0);
	assert_string_equal(unit, "nginx.service");
	assert_int_equal(caller_unit_from_cgroup(
				 "0::/system.slice/system-getty.slice/getty@tty1.service\n",
				 unit, sizeof(unit)), 0);
	assert_string_equal(unit, "getty@tty1.service");
	assert_int_equal(caller_unit_from_cgroup(
				 "0::/user.slice/user-1000.slice/session-3.scope\n",
				 unit, sizeof(unit)), 0);
	assert_string_equal(unit, "session-3.scope");
	/* A user's own unit never reads as the system unit of that name. */
	assert_int_equal(caller_unit_from_cgroup(
				 "0::/user.slice/user-1000.slice/user@1000.service/"
				 "app.slice/backup.service\n", unit, sizeof(unit)), 0);
	assert_string_equal(unit, "user@1000.service/backup.service");
	assert_int_equal(caller_unit_from_cgroup(
				 "0::/user.slice/user-1000.slice/user@1000.service/"
				 "init.scope\n", unit, sizeof(unit)), 0);
	assert_string_equal(unit, "user@1000.service/init.scope");
	/* Below a unit, a delegated subtree names its folders as it likes. */
	assert_int_equal(caller_unit_from_cgroup(
				 "0::/system.slice/runner.service/payload/backup.service\n",
				 unit, sizeof(unit)), 0);
	assert_string_equal(unit, "runner.service");
	/* No unit, a non-slice first, v1 only, and too long: none. */
	assert_int_equal(caller_unit_from_cgroup("0::/\n", unit, sizeof(unit)), -1);
	assert_int_equal(caller_unit_from_cgroup("0::/custom/x.service\n", unit,
						 sizeof(unit)), -1);
	assert_int_equal(caller_unit_from_cgroup("12:cpu:/x\n", unit, sizeof(unit)), -1);
	assert_int_equal(caller_unit_from_cgroup(
				 "0::/system.slice/a-very-long-name-that-does-not-fit.service\n",
				 unit, 16), -1);
	assert_string_equal(unit, "");
}

/* A loopback listener and a client connected to it: *srv accepted. */
static void tcp_pair(int family, int *cli, int *srv)
{
	struct sockaddr_storage a;
	socklen_t al;
	int l = socket(family, SOCK_STREAM, 0);

	assert_true(l >= 0);
	memset(&a, 0, sizeof(a));
	if (family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)&a;

		s->sin_family = AF_INET;
		s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		al = sizeof(*s);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&a;

		s->sin6_family = AF_INET6;
		s->sin6_addr = in6addr_loopback;
		al = sizeof(*s);
	}
	assert_int_equal(bind(l, (struct sockaddr *)&a, al), 0);
	assert_int_equal(listen(l, 4), 0);
	al = sizeof(a);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
	*cli = socket(family, SOCK_STREAM, 0);
	assert_true(*cli >= 0);
	assert_int_equal(connect(*cli, (struct sockaddr *)&a, al), 0);
	*srv = accept(l, NULL, NULL);
	assert_true(*srv >= 0);
	close(l);
}

static void test_tcp_peer(void **state)
{
	int families[] = { AF_INET, AF_INET6 };
	char why[256];

	(void)state;
	for (unsigned i = 0; i < 2; i++) {
		struct caller c;
		int cli, srv;

		tcp_pair(families[i], &cli, &srv);
		assert_int_equal(caller_identify(srv, &c, why, sizeof(why)), 0);
		assert_int_equal(c.uid, (int64_t)getuid());
		assert_int_equal(c.tcp, 1);
		/* Nothing but the uid is known of a TCP peer. */
		assert_int_equal(c.gid, -1);
		assert_int_equal(c.groups_known, 0);
		assert_string_equal(c.exe, "");
		close(cli);
		close(srv);
	}
}

/* The race of H1: the client sends and closes before the agent asks. Its
 * socket (FIN_WAIT, orphaned) shows uid 0 in /proc/net/tcp; it must not
 * pass for root. */
static void test_tcp_peer_gone(void **state)
{
	struct caller c;
	char why[256];
	int cli, srv;

	(void)state;
	tcp_pair(AF_INET, &cli, &srv);
	assert_int_equal(send(cli, "CONNECT x:1 HTTP/1.1\r\n\r\n", 25, 0), 25);
	close(cli);
	{
		/* The FIN has arrived once the accepted end reads EOF. */
		char buf[64];
		struct pollfd p = { .fd = srv, .events = POLLIN };

		while (poll(&p, 1, 5000) == 1 && recv(srv, buf, sizeof(buf), 0) > 0)
			;
	}
	assert_int_equal(caller_identify(srv, &c, why, sizeof(why)), -1);
	assert_int_equal(c.uid, -1);
	assert_non_null(strstr(why, "gone") ? why : strstr(why, "not found"));
	close(srv);
}

static void test_unix_peer(void **state)
{
	struct caller c;
	char why[256];
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(caller_identify(sv[1], &c, why, sizeof(why)), 0);
	assert_int_equal(c.uid, (int64_t)getuid());
	assert_int_equal(c.gid, (int64_t)getgid());
	assert_int_equal(c.pid, (int64_t)getpid());
	assert_int_equal(c.groups_known, 1);
	assert_int_equal(c.tcp, 0);
	assert_true(c.exe[0] == '/');
	close(sv[0]);
	close(sv[1]);
}

static void test_policy_view(void **state)
{
	struct caller c = { .uid = 5, .gid = -1, .pid = -1 };
	struct policy_caller pc;

	(void)state;
	caller_policy(&c, &pc);
	assert_null(pc.exe);
	assert_null(pc.unit);
	assert_int_equal(pc.groups_known, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cgroup_unit),
		cmocka_unit_test(test_tcp_peer),
		cmocka_unit_test(test_tcp_peer_gone),
		cmocka_unit_test(test_unix_peer),
		cmocka_unit_test(test_policy_view),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
