#include "refuser.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mtls_clock.h"
#include "mtls_err.h"
#include "proxy_proto.h"

enum { WAIT_FIRST, DRAIN };

struct slot {
	int fd; /* -1: free */
	int state;
	uint64_t until;
	char reason[160];
};

static struct {
	pthread_mutex_t lock;
	struct slot s[REFUSER_SLOTS];
	int wake[2]; /* a byte wakes the thread: new slot, or stop */
	int started, stop;
	pthread_t th;
} R = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = { -1, -1 } };

/* What the program reads: SOCKS5 has no words, only a code (1, general
 * failure); HTTP gets 503 with the reason. */
static void answer(struct slot *sl)
{
	uint8_t first;
	ssize_t n = recv(sl->fd, &first, 1, MSG_PEEK);
	char out[768];
	size_t len;

	if (n <= 0)
		return;
	if (first == 0x05) {
		/* Method "no authentication", then the failure reply the
		 * client reads after sending its request. */
		static const uint8_t socks[12] = { 5, 0, 5, SOCKS5_GENERAL_FAILURE,
						   0, 1, 0, 0, 0, 0, 0, 0 };

		(void)send(sl->fd, socks, sizeof(socks), MSG_NOSIGNAL);
	} else {
		len = http_reply(503, mtls_err_name(MTLS_ERR_LIMIT), sl->reason,
				 out, sizeof(out));
		(void)send(sl->fd, out, len, MSG_NOSIGNAL);
	}
}

static void release(struct slot *sl)
{
	close(sl->fd);
	sl->fd = -1;
}

static void *refuser_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct pollfd p[REFUSER_SLOTS + 1];
		int idx[REFUSER_SLOTS + 1], n = 0, timeout = -1;
		uint64_t now = mtls_now_ms();

		pthread_mutex_lock(&R.lock);
		if (R.stop) {
			for (int i = 0; i < REFUSER_SLOTS; i++)
				if (R.s[i].fd >= 0)
					release(&R.s[i]);
			pthread_mutex_unlock(&R.lock);
			return NULL;
		}
		p[n].fd = R.wake[0];
		p[n].events = POLLIN;
		idx[n++] = -1;
		for (int i = 0; i < REFUSER_SLOTS; i++) {
			struct slot *sl = &R.s[i];

			if (sl->fd < 0)
				continue;
			if (now >= sl->until) {
				release(sl);
				continue;
			}
			p[n].fd = sl->fd;
			p[n].events = POLLIN;
			idx[n++] = i;
			if (timeout < 0 || (int)(sl->until - now) < timeout)
				timeout = (int)(sl->until - now);
		}
		pthread_mutex_unlock(&R.lock);
		if (poll(p, (nfds_t)n, timeout) < 0 && errno != EINTR)
			continue;
		pthread_mutex_lock(&R.lock);
		if (p[0].revents & POLLIN) {
			char drop[64];

			while (read(R.wake[0], drop, sizeof(drop)) > 0)
				;
		}
		for (int k = 1; k < n; k++) {
			struct slot *sl = &R.s[idx[k]];
			char sink[1024];
			ssize_t got;

			if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (sl->state == WAIT_FIRST) {
				answer(sl);
				/* Then read what the program still sends until
				 * it closes, so that our close does not reset the
				 * answer away. */
				(void)shutdown(sl->fd, SHUT_WR);
				sl->state = DRAIN;
			}
			got = recv(sl->fd, sink, sizeof(sink), MSG_DONTWAIT);
			if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR))
				release(sl);
		}
		pthread_mutex_unlock(&R.lock);
	}
}

static int start_locked(void)
{
	if (R.started)
		return 0;
	if (pipe2(R.wake, O_CLOEXEC | O_NONBLOCK) != 0)
		return -1;
	for (int i = 0; i < REFUSER_SLOTS; i++)
		R.s[i].fd = -1;
	if (pthread_create(&R.th, NULL, refuser_main, NULL) != 0) {
		close(R.wake[0]);
		close(R.wake[1]);
		R.wake[0] = R.wake[1] = -1;
		return -1;
	}
	R.started = 1;
	return 0;
}

void refuser_take(int fd, int is_proxy, const char *reason)
{
	int i = -1;

	if (!is_proxy) {
		close(fd);
		return;
	}
	pthread_mutex_lock(&R.lock);
	if (!R.stop && start_locked() == 0)
		for (int k = 0; k < REFUSER_SLOTS && i < 0; k++)
			if (R.s[k].fd < 0)
				i = k;
	if (i < 0) {
		/* Full: as before, a close. */
		pthread_mutex_unlock(&R.lock);
		close(fd);
		return;
	}
	R.s[i].fd = fd;
	R.s[i].state = WAIT_FIRST;
	R.s[i].until = mtls_now_ms() + REFUSER_MS;
	snprintf(R.s[i].reason, sizeof(R.s[i].reason), "%s", reason);
	/* Under the lock: refuser_stop closes the pipe after setting stop. */
	(void)!write(R.wake[1], "", 1);
	pthread_mutex_unlock(&R.lock);
}

void refuser_stop(void)
{
	int started;

	pthread_mutex_lock(&R.lock);
	R.stop = 1;
	started = R.started;
	pthread_mutex_unlock(&R.lock);
	if (!started)
		return;
	(void)!write(R.wake[1], "", 1);
	pthread_join(R.th, NULL);
	close(R.wake[0]);
	close(R.wake[1]);
}
