/* The renewal scheduler: one thread that, for each identity with an
 * enroller, renews when due (share of the lifetime or time before expiry,
 * with jitter), retries failures with capped exponential backoff, warns at
 * the configured thresholds before expiry, and asks the daemon to reload
 * once a new generation is in service. Token and network waits happen on
 * this thread, never on the accept loop or a connection. */
#ifndef MTLS_SCHEDULER_H
#define MTLS_SCHEDULER_H

#include "runtime.h"

/* reload_fd: an eventfd the daemon polls; written after a switch. */
int scheduler_start(struct runtime *rt, int reload_fd);
/* After a reload: renewals now use rt. */
void scheduler_set_runtime(struct runtime *rt);
/* Renew this identity now (mtlsctl renew --now). -1: unknown name. */
int scheduler_renew_now(const char *identity);
void scheduler_stop(void);

#endif
