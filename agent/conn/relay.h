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
	int switched; /* the filter said RELAY_SWITCH, the server finished */
	int refused;  /* the filter said RELAY_REFUSE */
};

/* Looks at the app's bytes before they go to the server: the HTTP
 * forward proxy rewrites each request head and finds where the next one
 * starts; a proxied connection watches its first bytes for a TLS
 * ClientHello. */
enum relay_verdict {
	RELAY_PASS,   /* *used bytes of in taken, *out_len written to out */
	RELAY_MORE,   /* nothing yet: wait for more of the app's bytes */
	RELAY_SWITCH, /* in belongs to another server: let this one finish
		       * answering (close_notify, then its EOF), and return
		       * without closing the app's side */
	RELAY_REFUSE, /* stop now */
	RELAY_PLAIN,  /* no filter from here on: in goes on as it is */
};

struct relay_filter {
	enum relay_verdict (*fn)(void *arg, const uint8_t *in, size_t len,
				 int eof, uint8_t *out, size_t cap,
				 size_t *used, size_t *out_len);
	void *arg;
	/* On RELAY_SWITCH or RELAY_REFUSE: the app's bytes not passed on
	 * (at most RELAY_BUF), for the caller; NULL: not kept. */
	uint8_t *rest;
	size_t rest_len;
};

/* Returns MTLS_OK when both directions ended cleanly; a TLS error
 * otherwise (err says why; tc maps server alerts). */
/* early: bytes the app already sent (after a proxy request), to go first
 * (through the filter, when there is one). */
mtls_err_t relay_run(WOLFSSL *ssl, struct tls_conn *tc, int tls_fd,
		     int app_fd, int stop_fd, unsigned idle_ms,
		     const uint8_t *early, size_t early_len,
		     struct relay_filter *filter, struct relay_result *res,
		     struct mtls_error *err);

#endif
