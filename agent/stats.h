/* Counters shared by every connection thread; read by logs and metrics. */
#ifndef MTLS_STATS_H
#define MTLS_STATS_H

#include <stdatomic.h>

#include "mtls_err.h"
#include "policy.h"

struct stats {
	atomic_ulong connections_total;
	atomic_ulong connections_active;
	atomic_ulong connections_refused; /* over the limit */
	atomic_ulong handshakes_ok;
	atomic_ulong handshakes_failed[MTLS_ERR__COUNT];
	atomic_ulong bytes_to_server;
	atomic_ulong bytes_to_client;
	atomic_ulong policy_denials[POLICY_REASON_ENVIRONMENT + 1];
	atomic_ulong renewals_attempted, renewals_ok, renewals_failed;
};

extern struct stats g_stats;

/* One log line with every non-zero counter. */
void stats_log(void);

#endif
