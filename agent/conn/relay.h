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
	/* keep_rest: on RELAY_SWITCH or RELAY_REFUSE, the app's bytes not
	 * passed on (at most RELAY_BUF) go to rest, malloc'ed for the caller
	 * to wipe and free (NULL: there were none, or no memory). */
	int keep_rest;
	uint8_t *rest;
	size_t rest_len;
};

struct relay_dir {
	uint8_t *buf; /* on the heap while bytes flow, NULL while idle */
	size_t cap, len, off;
	int eof;  /* source finished */
	int done; /* EOF passed on to the sink */
};

struct relay_raw;

/* One relay's state, for a caller that runs it step by step: the event
 * loop (relay_loop.h). */
struct relay {
	WOLFSSL *ssl;
	struct tls_conn *tc;
	int tls_fd, app_fd;
	unsigned idle_ms;
	struct relay_filter *filter; /* NULL once it said RELAY_PLAIN */
	struct relay_dir up;         /* app -> server */
	struct relay_dir down;       /* server -> app */
	struct relay_raw *raw;       /* the filter's input, while it has some */
	uint64_t last;               /* the last byte moved, mtls_now_ms */
	int tls_want_read, tls_want_write, switching;
	/* Whether a recv from the app may find bytes: cleared by EAGAIN, set
	 * when poll or epoll says so. A bulk download would otherwise pay
	 * one failing recv per record. */
	int app_readable;
	struct relay_result res;
};

/* What a relay waits for after RELAY_STEP_WAIT: poll events (POLLIN,
 * POLLOUT; 0: nothing from that side) and the idle deadline (-1: none). */
struct relay_wait {
	short app_events, tls_events;
	int timeout_ms;
};

enum relay_step {
	RELAY_STEP_DONE,  /* finished: the result is returned */
	RELAY_STEP_WAIT,  /* nothing can move until w says so */
	RELAY_STEP_AGAIN, /* the budget is spent with bytes still moving */
};

/* early: bytes the app already sent (after a proxy request), to go first
 * (through the filter, when there is one); copied. */
mtls_err_t relay_init(struct relay *rl, WOLFSSL *ssl, struct tls_conn *tc,
		      int tls_fd, int app_fd, unsigned idle_ms,
		      const uint8_t *early, size_t early_len,
		      struct relay_filter *filter, struct mtls_error *err);

/* Moves what moves without blocking, for at most budget rounds (a round
 * moves at most 64 KiB to the app and 16 KiB to the server). On DONE, *r
 * is MTLS_OK when both directions ended cleanly or a TLS error (err says
 * why; tc maps server alerts), and rl->res tells the rest. */
enum relay_step relay_step(struct relay *rl, unsigned budget,
			   struct relay_wait *w, mtls_err_t *r,
			   struct mtls_error *err);

/* Frees the buffers (the app's bytes wiped: request heads carry
 * credentials). */
void relay_fini(struct relay *rl);

#endif
