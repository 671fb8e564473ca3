#include "local_server.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listener.h"

static void *run(void *arg)
{
	struct local_server *s = arg;

	for (;;) {
		struct pollfd p[2] = { { .fd = s->fd, .events = POLLIN },
				       { .fd = s->stop_fd, .events = POLLIN } };
		int c;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents & POLLIN)
			break;
		c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		s->serve(c);
		close(c);
	}
	return NULL;
}

mtls_err_t local_server_start(struct local_server *s,
			       const struct cfg_tunnel *where,
			       void (*serve)(int fd), struct mtls_error *err)
{
	int activated;
	mtls_err_t r;

	memset(s, 0, sizeof(*s));
	s->fd = s->stop_fd = -1;
	s->serve = serve;
	r = listener_open(where, &s->fd, &activated, err);
	if (r != MTLS_OK)
		return r;
	s->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (s->stop_fd < 0 || pthread_create(&s->thread, NULL, run, s) != 0) {
		if (s->stop_fd >= 0)
			close(s->stop_fd);
		close(s->fd);
		return mtls_error_set(err, MTLS_ERR_IO, "%s: no thread",
				      where->name);
	}
	s->running = 1;
	return MTLS_OK;
}

void local_server_stop(struct local_server *s)
{
	uint64_t one = 1;

	if (!s->running)
		return;
	if (write(s->stop_fd, &one, sizeof(one)) == sizeof(one))
		pthread_join(s->thread, NULL);
	close(s->fd);
	close(s->stop_fd);
	s->running = 0;
}
