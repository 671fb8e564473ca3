/* One accepted local connection: a thread that reads the request,
 * connects to the server and waits for the mTLS handshake (the token
 * signs, in the handshake pool); then the established relay moves to the
 * event loop (relay_loop.h) and the thread ends, so a slow token holds up
 * no one else's bytes and an idle connection holds no thread. The HTTP
 * forward proxy relays on its thread (each request may name another
 * server, whose handshake blocks). The count is bounded by [agent]
 * max_connections. */
#ifndef MTLS_CONN_H
#define MTLS_CONN_H

#include "runtime.h"

/* Takes ownership of fd and a runtime reference. stop_fd becomes readable
 * when every connection must end now. */
mtls_err_t conn_start(struct runtime *rt, struct tunnel *t, int fd,
		      int stop_fd, struct mtls_error *err);

/* Ends the handshake workers and joins every thread started here, so
 * that nothing of ours runs while the process exits (at exit, after the
 * connections ended). */
void conn_pool_stop(void);

#endif
