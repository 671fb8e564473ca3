/* The event loop that holds established relays, and connections that
 * wait (for their program's request, for a TCP connect to complete): one
 * thread per core (at most RELAY_LOOPS_MAX) with an epoll set each, so
 * that an idle connection costs its state, not a thread. Nothing here
 * blocks: a job's bytes move with non-blocking sockets and wolfSSL, and
 * the token is never asked (the handshake is over, and tls.c refuses to
 * sign after it). */
#ifndef MTLS_RELAY_LOOP_H
#define MTLS_RELAY_LOOP_H

#include "relay.h"

#define RELAY_LOOPS_MAX 4

struct relay_loop;
struct relay_job;

/* Called once, in a loop thread, when the relay ended: r and err as
 * relay_run's, j->rl.res for the rest. j is the owner's again (to free);
 * the fds are no longer watched. Must not block. */
typedef void (*relay_job_done)(struct relay_job *j, mtls_err_t r,
			       struct mtls_error *err);

struct relay_tag {
	struct relay_job *job; /* NULL: the loop's own wake or stop fd */
	int side;              /* 0 app, 1 tls */
};

struct relay_job {
	struct relay rl; /* relay_init'ed by the owner */
	relay_job_done done;
	/* The loop's own. */
	struct relay_loop *loop;
	struct relay_job *prev, *next; /* the loop's jobs */
	struct relay_job *ready_next;
	int ready;
	unsigned app_reg, tls_reg; /* epoll events registered (0: none) */
	uint64_t deadline;         /* the idle deadline, 0: none */
	struct relay_tag app_tag, tls_tag;
	struct mtls_error err;
	/* Set instead of a relay: the job waits for wait_fd to be ready for
	 * wait_events (POLLIN or POLLOUT; rl is not used). wait runs in the
	 * loop thread when it may be, once wait_deadline (0: none) has passed
	 * (timed_out), and once when the loop stops (stopping); it returns 1
	 * to wait on (for wait_fd and wait_events as they are then), 0 to end
	 * the job, and done then runs with MTLS_OK. Must not block. */
	int (*wait)(struct relay_job *j, int timed_out, int stopping);
	int wait_fd;
	short wait_events;
	uint64_t wait_deadline;
};

/* From a job's wait, before it closes or replaces wait_fd: the loop
 * watches it no more. */
void relay_loop_forget(struct relay_job *j);

/* Hands j over to a loop (the loops start at the first call). stop_fd
 * becomes readable when every connection must end now: the job then ends
 * with res.stopped. On failure j is still the caller's. */
mtls_err_t relay_loop_park(struct relay_job *j, int stop_fd,
			   struct mtls_error *err);

/* Ends the jobs still parked (res.stopped) and joins the loop threads. */
void relay_loop_stop(void);

#endif
