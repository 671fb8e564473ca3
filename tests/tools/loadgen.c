/* loadgen: holds N connections open through an agent socket at once.
 * Each sends one HTTP/1.1 request (keep-alive) and must get "200 OK" with
 * the expected text; then all stay open for HOLD seconds (so the agent's
 * memory with N live connections can be read), then close.
 *   loadgen SOCKET N HOLD EXPECT [WINDOW]
 * WINDOW: at most that many connections wait for their answer at once (the
 * next ones open as earlier ones are answered, in batches); default N.
 * Prints "ok=K failed=F connect_ms=T" and exits 0 when K == N. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct rlimit rl;
	int n, hold, window, ok = 0, failed = 0, *fds;
	long long t0;
	char buf[4096];

	if (argc != 5 && argc != 6) {
		fprintf(stderr, "usage: loadgen SOCKET N HOLD_SECONDS EXPECT "
			"[WINDOW]\n");
		return 2;
	}
	/* A refused connection (over a limit) may be closed by the agent before
	 * the request is written: that write must count as a failure, not kill
	 * the generator with SIGPIPE before it prints its result. */
	signal(SIGPIPE, SIG_IGN);
	n = atoi(argv[2]);
	hold = atoi(argv[3]);
	window = argc == 6 ? atoi(argv[5]) : n;
	if (window < 1)
		window = 1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[1]);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	fds = calloc((size_t)n, sizeof(*fds));
	if (fds == NULL)
		return 1;
	t0 = now_ms();
	for (int from = 0; from < n; from += window) {
		int to = from + window < n ? from + window : n;

		for (int i = from; i < to; i++) {
			fds[i] = socket(AF_UNIX, SOCK_STREAM, 0);
			if (fds[i] < 0 ||
			    connect(fds[i], (struct sockaddr *)&sa,
				    sizeof(sa)) != 0 ||
			    write(fds[i], req, sizeof(req) - 1) !=
				    (ssize_t)(sizeof(req) - 1)) {
				failed++;
				if (fds[i] >= 0)
					close(fds[i]);
				fds[i] = -1;
			}
		}
		/* Collect the answers; each connection stays open afterwards. */
		for (int i = from; i < to; i++) {
			struct pollfd p = { .fd = fds[i], .events = POLLIN };
			size_t got = 0;

			if (fds[i] < 0)
				continue;
			while (got < sizeof(buf) - 1 && poll(&p, 1, 30000) == 1) {
				ssize_t r = read(fds[i], buf + got, sizeof(buf) - 1 - got);

				if (r <= 0)
					break;
				got += (size_t)r;
				buf[got] = '\0';
				if (strstr(buf, argv[4]) != NULL)
					break;
			}
			buf[got] = '\0';
			if (strstr(buf, "200 OK") && strstr(buf, argv[4]))
				ok++;
			else
				failed++;
		}
	}
	printf("ok=%d failed=%d connect_ms=%lld\n", ok, failed, now_ms() - t0);
	fflush(stdout);
	sleep((unsigned)hold);
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
	return ok == n ? 0 : 1;
}
