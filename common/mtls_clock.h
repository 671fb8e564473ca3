/* The monotonic clock, in the units the agent's timeouts and measurements
 * use. */
#ifndef MTLS_CLOCK_H
#define MTLS_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t mtls_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t mtls_now_ms(void)
{
	return mtls_now_ns() / 1000000u;
}

#endif
