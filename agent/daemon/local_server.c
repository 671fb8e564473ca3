#include "local_server.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listener.h"
#include "mtls_clock.h"
#include "mtls_log.h"

/* Waits for fd to be ready for events, the stop or the deadline:
 * 1 ready, -1 otherwise. */
static int wait_for(struct local_client *c, short events)
{
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = c->fd, .events = events },
			{ .fd = c->server->stop_fd, .events = POLLIN },
		};
		uint64_t now = mtls_now_ms();
		int n;

		if (now >= c->deadline)
			return -1;
		n = poll(p, 2, (int)(c->deadline - now));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (p[1].revents & POLLIN))
			return -1;
		if (n > 0)
			return 1;
	}
}

ssize_t local_client_recv(struct local_client *c, void *buf, size_t cap)
{
	for (;;) {
		ssize_t r;

		if (wait_for(c, POLLIN) < 0)
			return -1;
		r = recv(c->fd, buf, cap, 0);
		if (r >= 0)
			return r;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -1;
	}
}

int local_client_send(struct local_client *c, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t w;

		if (wait_for(c, POLLOUT) < 0)
			return -1;
		w = send(c->fd, p, len, MSG_NOSIGNAL);
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
			      errno == EINTR))
			continue;
		if (w <= 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static void *client_run(void *arg)
{
	struct local_client *c = arg;
	struct local_server *s = c->server;

	s->serve(c);
	close(c->fd);
	pthread_mutex_lock(&s->lock);
	s->slots[c->slot].used = 0;
	if (--s->active == 0)
		pthread_cond_broadcast(&s->idle);
	pthread_mutex_unlock(&s->lock);
	free(c);
	return NULL;
}

/* Takes a slot for a client of uid: its index, or -1 at either limit. */
static int take_slot(struct local_server *s, int64_t uid)
{
	unsigned same = 0;
	int free_slot = -1;

	for (int i = 0; i < LOCAL_SERVER_MAX_CLIENTS; i++) {
		if (!s->slots[i].used) {
			if (free_slot < 0)
				free_slot = i;
		} else if (s->slots[i].uid == uid) {
			same++;
		}
	}
	if (free_slot < 0 || same >= LOCAL_SERVER_MAX_PER_UID)
		return -1;
	s->slots[free_slot].used = 1;
	s->slots[free_slot].uid = uid;
	s->active++;
	return free_slot;
}

static void *run(void *arg)
{
	struct local_server *s = arg;

	for (;;) {
		struct pollfd p[2] = { { .fd = s->fd, .events = POLLIN },
				       { .fd = s->stop_fd, .events = POLLIN } };
		struct local_client *c;
		pthread_attr_t attr;
		pthread_t t;
		int fd, slot, ok;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents & POLLIN)
			break;
		fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			continue;
		c = calloc(1, sizeof(*c));
		if (c == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->server = s;
		c->deadline = mtls_now_ms() + s->timeout_ms;
		{
			char why[256];

			if (caller_identify(fd, &c->who, why, sizeof(why)) != 0) {
				log_warn("event=refused server=%s "
					 "reason=caller_unknown detail=\"%s\"",
					 s->name, why);
				close(fd);
				free(c);
				continue;
			}
		}
		pthread_mutex_lock(&s->lock);
		slot = take_slot(s, c->who.uid);
		pthread_mutex_unlock(&s->lock);
		if (slot < 0) {
			log_warn("event=refused server=%s reason=limit uid=%lld "
				 "max_clients=%u max_per_uid=%u", s->name,
				 (long long)c->who.uid, LOCAL_SERVER_MAX_CLIENTS,
				 LOCAL_SERVER_MAX_PER_UID);
			close(fd);
			free(c);
			continue;
		}
		c->slot = (unsigned)slot;
		ok = pthread_attr_init(&attr) == 0;
		ok = ok && pthread_attr_setdetachstate(&attr,
						       PTHREAD_CREATE_DETACHED) == 0;
		ok = ok && pthread_create(&t, &attr, client_run, c) == 0;
		pthread_attr_destroy(&attr);
		if (!ok) {
			close(fd);
			free(c);
			pthread_mutex_lock(&s->lock);
			s->slots[slot].used = 0;
			if (--s->active == 0)
				pthread_cond_broadcast(&s->idle);
			pthread_mutex_unlock(&s->lock);
		}
	}
	return NULL;
}

mtls_err_t local_server_start(struct local_server *s,
			       const struct cfg_tunnel *where,
			       unsigned timeout_ms,
			       void (*serve)(struct local_client *c),
			       struct mtls_error *err)
{
	int activated;
	mtls_err_t r;

	memset(s, 0, sizeof(*s));
	s->fd = s->stop_fd = -1;
	s->serve = serve;
	s->timeout_ms = timeout_ms;
	snprintf(s->name, sizeof(s->name), "%s", where->name);
	if (pthread_mutex_init(&s->lock, NULL) != 0 ||
	    pthread_cond_init(&s->idle, NULL) != 0)
		return mtls_error_set(err, MTLS_ERR_IO, "%s: no lock",
				      where->name);
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
	/* Never read: it stays readable, for the accept thread and for every
	 * client's next wait. */
	if (write(s->stop_fd, &one, sizeof(one)) != sizeof(one))
		return; /* the thread would not see it: leave it all open */
	pthread_join(s->thread, NULL);
	pthread_mutex_lock(&s->lock);
	while (s->active > 0)
		pthread_cond_wait(&s->idle, &s->lock);
	pthread_mutex_unlock(&s->lock);
	close(s->fd);
	close(s->stop_fd);
	s->running = 0;
}
