/* A small local server (the control socket, metrics): one thread accepts
 * on a Unix socket or loopback port and hands each client to a thread of
 * its own, at most LOCAL_SERVER_MAX_CLIENTS at once and
 * LOCAL_SERVER_MAX_PER_UID of one uid, so that one slow client (or one
 * local user's several) cannot stall the others. Each client has one
 * deadline for its whole exchange, not a timeout per read: a client that
 * sends a byte now and then is dropped at the deadline all the same. */
#ifndef MTLS_LOCAL_SERVER_H
#define MTLS_LOCAL_SERVER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "caller.h"
#include "config.h"
#include "mtls_err.h"

#define LOCAL_SERVER_MAX_CLIENTS 8
#define LOCAL_SERVER_MAX_PER_UID 2

struct local_server;

struct local_client {
	int fd;                 /* non-blocking; closed after serve returns */
	uint64_t deadline;      /* mtls_now_ms() by which the exchange ends */
	struct caller who;      /* read once, at accept */
	struct local_server *server;
	unsigned slot;
};

struct local_server {
	pthread_t thread;
	int fd, stop_fd, running;
	unsigned timeout_ms;    /* each client's whole exchange */
	void (*serve)(struct local_client *c);
	pthread_mutex_t lock;
	pthread_cond_t idle;
	unsigned active;
	struct {
		int used;
		int64_t uid;
	} slots[LOCAL_SERVER_MAX_CLIENTS];
	char name[CFG_NAME_MAX];
};

mtls_err_t local_server_start(struct local_server *s,
			       const struct cfg_tunnel *where,
			       unsigned timeout_ms,
			       void (*serve)(struct local_client *c),
			       struct mtls_error *err);
/* Stops accepting, ends the clients being served (they see the stop at
 * their next wait) and waits for them. */
void local_server_stop(struct local_server *s);

/* One recv within the client's deadline: > 0 bytes, 0 at EOF, -1 at the
 * deadline, on error or when the server stops. */
ssize_t local_client_recv(struct local_client *c, void *buf, size_t cap);
/* All of buf within the deadline: 0, or -1. */
int local_client_send(struct local_client *c, const void *buf, size_t len);

#endif
