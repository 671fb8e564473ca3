/* Moves bytes between a local plaintext socket and a TLS connection, both
 * ways, until both sides finished: half-close passes through (EOF from the
 * app sends close_notify; EOF from the server shuts the app's write side),
 * each direction reads only when its buffer drained (backpressure), and a
 * connection silent for idle_ms is closed. */
#ifndef MTLS_RELAY_H
#define MTLS_RELAY_H

#include <stdint.h>

#include "mtls_err.h"
#include "tls.h"

#define RELAY_BUF 16384

struct relay_result {
	uint64_t to_server, to_client;
	int idle_timeout;
	int stopped;
};

/* Returns MTLS_OK when both directions ended cleanly; a TLS error
 * otherwise (err says why; tc maps server alerts). */
/* early: bytes the app already sent (after a proxy request), to go first. */
mtls_err_t relay_run(WOLFSSL *ssl, struct tls_conn *tc, int tls_fd,
		     int app_fd, int stop_fd, unsigned idle_ms,
		     const uint8_t *early, size_t early_len,
		     struct relay_result *res, struct mtls_error *err);

#endif
