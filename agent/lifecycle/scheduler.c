#include <wolfssl/options.h>

#include "scheduler.h"

#include <wolfssl/wolfcrypt/ecc.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "current.h"
#include "mtls_log.h"
#include "renew.h"
#include "renew_schedule.h"
#include "stats.h"

#define SCHED_MAX_SLEEP 60

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	pthread_t thread;
	int running, stop, wake;
	int reload_fd;
	char now[CFG_MAX_IDENTITIES];
	/* A renewal someone asked for (mtlsctl renew) that failed: retried
	 * with the backoff until it succeeds, even when not due yet, so that
	 * a CA outage does not turn "renew now" into "renew when due". Only
	 * the scheduler thread touches it. */
	char asked[CFG_MAX_IDENTITIES];
	int warned[CFG_MAX_IDENTITIES];
} S = { .lock = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static uint64_t seed_of(const char *name, unsigned generation)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ULL;
	return h ^ generation;
}

/* Works on one identity; returns when it is next due. */
static int64_t visit(struct runtime *rt, unsigned i, int64_t now, int forced)
{
	const struct cfg_identity *ci = &rt->cfg->identities[i];
	const struct renew_params *p = &ci->renew.sched;
	struct identity *id = rt->ids[i];
	struct mtls_error err = { 0 };
	struct renew_state st;
	int64_t due;
	int w, switched = 0, retry_after = 0;
	char msg[512];
	mtls_err_t r;

	if (renew_state_load(rt->cfg->agent.state_dir, ci->name, &st, &err) !=
	    MTLS_OK) {
		log_err("event=renew_state_unreadable identity=%s detail=\"%s\"",
			ci->name, mtls_error_str(&err, msg, sizeof(msg)));
		return now + SCHED_MAX_SLEEP;
	}
	due = renew_due(p, id->not_before, id->not_after,
			seed_of(ci->name, st.generation));
	if (st.next_attempt > due)
		due = st.next_attempt;
	w = renew_warning(p, id->not_after, now);
	if (w != S.warned[i]) {
		S.warned[i] = w;
		if (w >= 0)
			log_warn("event=expiry_warning identity=%s not_after=%ld "
				 "seconds_left=%lld threshold=%lld", ci->name,
				 id->not_after, (long long)(id->not_after - now),
				 (long long)p->warn_before[w]);
	}
	if (S.asked[i] && st.next_attempt < due)
		due = st.next_attempt;
	if (now < due && !forced)
		return due;

	atomic_fetch_add(&g_stats.renewals_attempted, 1);
	log_info("event=renew_start identity=%s step=%s generation=%u "
		 "not_after=%ld%s", ci->name, renew_step_name(st.step),
		 st.generation, id->not_after, forced ? " forced=1" : "");
	{
		struct renew_env env = { rt->cfg, i, rt->tokens[ci->token], id };

		r = renew_run(&env, &st, &switched, &retry_after, &err);
	}
	st.last_attempt = now;
	S.asked[i] = (r != MTLS_OK || (!switched && retry_after > 0)) &&
		     (forced || S.asked[i]);
	if (r == MTLS_OK && switched) {
		uint64_t one = 1;

		atomic_fetch_add(&g_stats.renewals_ok, 1);
		if (write(S.reload_fd, &one, sizeof(one)) != sizeof(one))
			log_err("event=renew_reload_failed identity=%s", ci->name);
		return now + SCHED_MAX_SLEEP;
	}
	if (r == MTLS_OK && retry_after > 0) {
		st.next_attempt = now + retry_after;
		snprintf(st.last_result, sizeof(st.last_result),
			 "pending: the CA asked to retry after %d s", retry_after);
	} else if (r != MTLS_OK) {
		atomic_fetch_add(&g_stats.renewals_failed, 1);
		st.failures++;
		st.next_attempt = renew_retry_at(p, st.failures, now);
		mtls_error_str(&err, msg, sizeof(msg));
		snprintf(st.last_result, sizeof(st.last_result), "%.24s: %.120s",
			 mtls_err_name(r), msg);
		for (char *c = st.last_result; *c; c++)
			if (*c == '\n' || *c == '\r')
				*c = ' ';
		log_warn("event=renew_failed identity=%s reason=%s failures=%u "
			 "next_attempt_in=%lld detail=\"%s\"", ci->name,
			 mtls_err_name(r), st.failures,
			 (long long)(st.next_attempt - now), msg);
	}
	if (renew_state_save(rt->cfg->agent.state_dir, ci->name, &st, &err) !=
	    MTLS_OK)
		log_err("event=renew_state_save_failed identity=%s", ci->name);
	return st.next_attempt > now ? st.next_attempt : now + SCHED_MAX_SLEEP;
}

static void *run(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&S.lock);
	while (!S.stop) {
		struct runtime *rt = current_get();
		int64_t now = (int64_t)time(NULL), next = now + SCHED_MAX_SLEEP;
		char forced[CFG_MAX_IDENTITIES];
		struct timespec until;

		if (rt == NULL)
			break;
		memcpy(forced, S.now, sizeof(forced));
		memset(S.now, 0, sizeof(S.now));
		S.wake = 0;
		pthread_mutex_unlock(&S.lock);
		for (unsigned i = 0; i < rt->cfg->n_identities; i++) {
			int64_t due;

			/* A locked token's identities wait for unlock. */
			if (rt->cfg->identities[i].renew.enroll == CFG_ENROLL_NONE ||
			    rt->ids[i] == NULL)
				continue;
			due = visit(rt, i, now, forced[i]);
			if (due < next)
				next = due;
		}
		runtime_put(rt);
		pthread_mutex_lock(&S.lock);
		if (S.stop || S.wake)
			continue;
		until.tv_sec = (time_t)(next > now ? next : now + 1);
		until.tv_nsec = 0;
		while (!S.stop && !S.wake &&
		       pthread_cond_timedwait(&S.cv, &S.lock, &until) == 0)
			;
	}
	pthread_mutex_unlock(&S.lock);
	wc_ecc_fp_free(); /* renewals verify chains on this thread */
	return NULL;
}

int scheduler_start(struct runtime *rt, int reload_fd)
{
	int any = 0;

	for (unsigned i = 0; i < rt->cfg->n_identities; i++)
		any |= rt->cfg->identities[i].renew.enroll != CFG_ENROLL_NONE;
	for (unsigned i = 0; i < CFG_MAX_IDENTITIES; i++)
		S.warned[i] = -1;
	S.reload_fd = reload_fd;
	if (!any)
		return 0;
	if (pthread_create(&S.thread, NULL, run, NULL) != 0)
		return -1;
	S.running = 1;
	return 0;
}

void scheduler_set_runtime(struct runtime *rt)
{
	(void)rt; /* current_get() has it; look again now */
	pthread_mutex_lock(&S.lock);
	S.wake = 1;
	pthread_cond_signal(&S.cv);
	pthread_mutex_unlock(&S.lock);
}

int scheduler_renew_now(const char *identity)
{
	struct runtime *rt = current_get();
	int i;

	i = rt ? config_find_identity(rt->cfg, identity) : -1;
	if (rt != NULL)
		runtime_put(rt);
	pthread_mutex_lock(&S.lock);
	if (i >= 0) {
		S.now[i] = 1;
		S.wake = 1;
		pthread_cond_signal(&S.cv);
	}
	pthread_mutex_unlock(&S.lock);
	return i >= 0 ? 0 : -1;
}

void scheduler_stop(void)
{
	pthread_mutex_lock(&S.lock);
	S.stop = 1;
	pthread_cond_signal(&S.cv);
	pthread_mutex_unlock(&S.lock);
	if (S.running)
		pthread_join(S.thread, NULL);
	S.running = 0;
}
