/* A small local server: one thread accepting on a Unix socket or loopback
 * port and serving each client in turn (the control socket, metrics). */
#ifndef MTLS_LOCAL_SERVER_H
#define MTLS_LOCAL_SERVER_H

#include <pthread.h>

#include "config.h"
#include "mtls_err.h"

struct local_server {
	pthread_t thread;
	int fd, stop_fd, running;
	void (*serve)(int fd); /* the connection is closed after it returns */
};

mtls_err_t local_server_start(struct local_server *s,
			       const struct cfg_tunnel *where,
			       void (*serve)(int fd), struct mtls_error *err);
void local_server_stop(struct local_server *s);

#endif
