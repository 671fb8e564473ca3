#include "stats.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "mtls_log.h"

struct stats g_stats;

const double handshake_bounds[HIST_BUCKETS] = { 0.002, 0.005, 0.01, 0.025, 0.05,
						0.1,   0.25,  0.5,  1,     2.5,
						10 };
/* A token signs in 0.1 ms (SoftHSM) to 500 ms (a slow smartcard). */
const double sign_bounds[HIST_BUCKETS] = { 0.0002, 0.0005, 0.001, 0.0025,
					   0.005,  0.01,   0.025, 0.05,
					   0.1,	   0.25,   1 };

void hist_observe(struct histogram *h, const double *bounds, double seconds)
{
	unsigned i = 0;

	while (i < HIST_BUCKETS && seconds > bounds[i])
		i++;
	atomic_fetch_add(&h->bucket[i], 1);
	atomic_fetch_add(&h->count, 1);
	atomic_fetch_add(&h->sum_us, (unsigned long)(seconds * 1e6));
}

void stats_count_problem(const char *type)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	int slot = -1;

	/* The table only grows, under the lock; a reader sees a type's
	 * name before its count turns non-zero. */
	pthread_mutex_lock(&mu);
	for (int i = 0; i < STATS_PROBLEM_TYPES && slot < 0; i++) {
		if (g_stats.problem_type[i][0] == '\0') {
			if (strlen(type) >= STATS_PROBLEM_TYPE_MAX ||
			    strspn(type, "abcdefghijklmnopqrstuvwxyz"
					 "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_:.") !=
				    strlen(type))
				break;
			memcpy(g_stats.problem_type[i], type, strlen(type) + 1);
			slot = i;
		} else if (strcmp(g_stats.problem_type[i], type) == 0) {
			slot = i;
		}
	}
	pthread_mutex_unlock(&mu);
	if (slot < 0)
		atomic_fetch_add(&g_stats.problem_other, 1);
	else
		atomic_fetch_add(&g_stats.problem_count[slot], 1);
}

void stats_observe_sign(double seconds)
{
	hist_observe(&g_stats.sign_seconds, sign_bounds, seconds);
}

void stats_log(void)
{
	char fails[1024];
	size_t n = 0;

	fails[0] = '\0';
	for (int i = 1; i < MTLS_ERR__COUNT; i++) {
		unsigned long v = atomic_load(&g_stats.handshakes_failed[i]);
		int w;

		if (v == 0)
			continue;
		w = snprintf(fails + n, sizeof(fails) - n, " failed_%s=%lu",
			     mtls_err_name((mtls_err_t)i), v);
		if (w < 0 || (size_t)w >= sizeof(fails) - n)
			break;
		n += (size_t)w;
	}
	for (int i = 1; i <= POLICY_REASON_ENVIRONMENT; i++) {
		unsigned long v = atomic_load(&g_stats.policy_denials[i]);
		int w;

		if (v == 0)
			continue;
		w = snprintf(fails + n, sizeof(fails) - n, " denied_%s=%lu",
			     policy_reason_name((enum policy_reason)i), v);
		if (w < 0 || (size_t)w >= sizeof(fails) - n)
			break;
		n += (size_t)w;
	}
	log_info("event=stats connections_total=%lu connections_active=%lu "
		 "connections_refused=%lu handshakes_ok=%lu bytes_to_server=%lu "
		 "bytes_to_client=%lu%s",
		 atomic_load(&g_stats.connections_total),
		 atomic_load(&g_stats.connections_active),
		 atomic_load(&g_stats.connections_refused),
		 atomic_load(&g_stats.handshakes_ok),
		 atomic_load(&g_stats.bytes_to_server),
		 atomic_load(&g_stats.bytes_to_client), fails);
}
