/* One accepted local connection. A proxy's request (SOCKS5, CONNECT or a
 * plain HTTP request) is read on the event loop (relay_loop.h) until it
 * is whole, so a program that connects and says nothing holds no thread.
 * Then a short-lived thread does what blocks, the name lookup (a tunnel
 * has no request: its thread starts at accept). The TCP connect is
 * awaited on the loop again, and the mTLS handshake is queued for the
 * handshake pool (where the token signs) with no thread waiting for it;
 * a revocation check, or a refusal, runs on a thread of its own after it.
 * The established relay goes to the event loop, so a slow token holds up
 * no one else's bytes and an idle connection holds no thread. The plain
 * HTTP proxy's next request for another server starts a thread again. The
 * count is bounded by [agent] max_connections and max_connections_per_uid.
 */
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
