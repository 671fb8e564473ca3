/* When to renew, retry and warn: pure arithmetic on times passed in, so it
 * can be tested at every boundary. */
#ifndef MTLS_RENEW_SCHEDULE_H
#define MTLS_RENEW_SCHEDULE_H

#include <stdint.h>

#define RENEW_WARN_MAX 4

struct renew_params {
	unsigned renew_at_permille;  /* share of the lifetime, e.g. 667 */
	int64_t renew_before;        /* seconds before expiry; used when > 0 */
	unsigned jitter_permille;    /* of the lifetime, taken off the time */
	int64_t retry_min, retry_max; /* backoff bounds, seconds */
	int64_t warn_before[RENEW_WARN_MAX]; /* seconds before expiry */
	unsigned n_warn;
};

/* The time to start a renewal of a certificate valid [not_before,
 * not_after). seed varies the jitter per identity and generation. */
int64_t renew_due(const struct renew_params *p, int64_t not_before,
		  int64_t not_after, uint64_t seed);

/* The time of the next attempt after `failures` consecutive failures, the
 * last at `last`: retry_min * 2^(failures-1), capped at retry_max. */
int64_t renew_retry_at(const struct renew_params *p, unsigned failures,
		       int64_t last);

/* The most urgent warning threshold crossed at now (index into
 * warn_before, the smallest crossed), or -1. */
int renew_warning(const struct renew_params *p, int64_t not_after, int64_t now);

#endif
