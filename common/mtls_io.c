#include "mtls_io.h"

#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include "mtls_clock.h"

int mtls_write_all(int fd, const void *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p = (const char *)p + w;
		n -= (size_t)w;
	}
	return 0;
}

int mtls_wait_fd(int fd, short events, int stop_fd, uint64_t deadline)
{
	for (;;) {
		uint64_t now = mtls_now_ms();
		struct pollfd p[2] = { { .fd = fd, .events = events },
				       { .fd = stop_fd, .events = POLLIN } };
		int n;

		if (now >= deadline)
			return 0;
		/* A negative fd in the set is ignored by poll. */
		n = poll(p, 2, deadline - now > 60000 ? 60000 : (int)(deadline - now));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (p[1].revents & POLLIN))
			return -1;
		if (n > 0 && p[0].revents != 0)
			return 1;
	}
}
