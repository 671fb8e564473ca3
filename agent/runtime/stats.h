/* Counters shared by every connection thread; read by logs and metrics. */
#ifndef MTLS_STATS_H
#define MTLS_STATS_H

#include <stdatomic.h>

#include "mtls_err.h"
#include "policy.h"

#define HIST_BUCKETS 11

/* A Prometheus histogram: cumulative counts are computed when rendered. */
struct histogram {
	atomic_ulong bucket[HIST_BUCKETS + 1]; /* last: above every bound */
	atomic_ulong count;
	atomic_ulong sum_us;
};

extern const double handshake_bounds[HIST_BUCKETS]; /* seconds */
extern const double sign_bounds[HIST_BUCKETS];

void hist_observe(struct histogram *h, const double *bounds, double seconds);

/* ACME problem types seen (RFC 8555 6.7), each counted: the label of
 * mtls_acme_problems_total. Types beyond the table count as "other". */
#define STATS_PROBLEM_TYPES 16
#define STATS_PROBLEM_TYPE_MAX 48

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
	char problem_type[STATS_PROBLEM_TYPES][STATS_PROBLEM_TYPE_MAX];
	atomic_ulong problem_count[STATS_PROBLEM_TYPES];
	atomic_ulong problem_other;
	struct histogram handshake_seconds;
	struct histogram sign_seconds;
};

extern struct stats g_stats;

/* A token signature took this long (for tls_set_sign_observer). */
void stats_observe_sign(double seconds);

/* Counts an ACME problem document by its type. */
void stats_count_problem(const char *type);

/* One log line with every non-zero counter. */
void stats_log(void);

#endif
