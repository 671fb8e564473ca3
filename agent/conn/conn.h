/* One accepted local connection: a thread that connects to the tunnel's
 * server, performs the mTLS handshake (the token signs), and relays. A
 * thread per connection keeps a slow token from holding up anyone else's
 * data; the count is bounded by [agent] max_connections. */
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
