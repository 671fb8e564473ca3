#include "metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "current.h"
#include "local_server.h"
#include "mtls_log.h"
#include "p11.h"
#include "renew_schedule.h"
#include "renew_state.h"
#include "revocation.h"
#include "stats.h"

#define METRICS_MAX (128 * 1024)
/* A whole scrape: reading the request and sending the answer. */
#define METRICS_TIMEOUT_MS 5000

struct out {
	char *p;
	size_t len, cap;
};

static void put(struct out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->len >= o->cap)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len = (size_t)n < o->cap - o->len ? o->len + (size_t)n : o->cap;
}

static void head(struct out *o, const char *name, const char *type,
		 const char *help)
{
	put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void histogram(struct out *o, const char *name, const char *help,
		      struct histogram *h, const double *bounds)
{
	unsigned long cum = 0;

	head(o, name, "histogram", help);
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		cum += atomic_load(&h->bucket[i]);
		put(o, "%s_bucket{le=\"%g\"} %lu\n", name, bounds[i], cum);
	}
	cum += atomic_load(&h->bucket[HIST_BUCKETS]);
	put(o, "%s_bucket{le=\"+Inf\"} %lu\n", name, cum);
	put(o, "%s_sum %.6f\n%s_count %lu\n", name,
	    (double)atomic_load(&h->sum_us) / 1e6, name, atomic_load(&h->count));
}

static void rv_line(const char *name, unsigned long n, void *ctx)
{
	put(ctx, "mtls_token_errors_total{rv=\"%s\"} %lu\n", name, n);
}

size_t metrics_render(char *buf, size_t cap)
{
	struct out o = { buf, 0, cap };
	struct runtime *rt = current_get();
	struct p11_token_status tss[CFG_MAX_TOKENS];

	head(&o, "mtls_handshakes_total", "counter",
	     "TLS handshakes by result and reason.");
	put(&o, "mtls_handshakes_total{result=\"ok\",reason=\"ok\"} %lu\n",
	    atomic_load(&g_stats.handshakes_ok));
	for (int i = 1; i < MTLS_ERR__COUNT; i++) {
		unsigned long v = atomic_load(&g_stats.handshakes_failed[i]);

		if (v > 0)
			put(&o, "mtls_handshakes_total{result=\"fail\",reason=\"%s\"} %lu\n",
			    mtls_err_name((mtls_err_t)i), v);
	}
	histogram(&o, "mtls_handshake_duration_seconds",
		  "Time from accepting a local connection to an established TLS session.",
		  &g_stats.handshake_seconds, handshake_bounds);
	histogram(&o, "mtls_token_sign_duration_seconds",
		  "Time the token took for one signature.", &g_stats.sign_seconds,
		  sign_bounds);
	head(&o, "mtls_token_errors_total", "counter",
	     "PKCS#11 failures by CK_RV name.");
	p11_rv_counts(rv_line, &o);
	{
		unsigned long ok, failed;

		p11_module_reinits(&ok, &failed);
		head(&o, "mtls_token_module_reinits_total", "counter",
		     "PKCS#11 modules re-initialised after they stopped answering, by result.");
		put(&o, "mtls_token_module_reinits_total{result=\"ok\"} %lu\n", ok);
		put(&o, "mtls_token_module_reinits_total{result=\"failed\"} %lu\n",
		    failed);
	}
	head(&o, "mtls_connections_active", "gauge", "Local connections open now.");
	put(&o, "mtls_connections_active %lu\n",
	    atomic_load(&g_stats.connections_active));
	head(&o, "mtls_connections_total", "counter", "Local connections accepted.");
	put(&o, "mtls_connections_total %lu\n",
	    atomic_load(&g_stats.connections_total));
	head(&o, "mtls_connections_refused_total", "counter",
	     "Local connections refused at the connection limit.");
	put(&o, "mtls_connections_refused_total %lu\n",
	    atomic_load(&g_stats.connections_refused));
	head(&o, "mtls_bytes_total", "counter", "Bytes relayed, by direction.");
	put(&o, "mtls_bytes_total{direction=\"to_server\"} %lu\n",
	    atomic_load(&g_stats.bytes_to_server));
	put(&o, "mtls_bytes_total{direction=\"to_client\"} %lu\n",
	    atomic_load(&g_stats.bytes_to_client));
	head(&o, "mtls_renewals_total", "counter",
	     "Certificate renewals by result.");
	put(&o, "mtls_renewals_total{result=\"attempted\"} %lu\n",
	    atomic_load(&g_stats.renewals_attempted));
	put(&o, "mtls_renewals_total{result=\"ok\"} %lu\n",
	    atomic_load(&g_stats.renewals_ok));
	put(&o, "mtls_renewals_total{result=\"failed\"} %lu\n",
	    atomic_load(&g_stats.renewals_failed));
	head(&o, "mtls_acme_problems_total", "counter",
	     "ACME problem documents by type (RFC 8555 6.7).");
	for (int i = 0; i < STATS_PROBLEM_TYPES; i++)
		if (atomic_load(&g_stats.problem_count[i]) > 0)
			put(&o, "mtls_acme_problems_total{type=\"%s\"} %lu\n",
			    g_stats.problem_type[i],
			    atomic_load(&g_stats.problem_count[i]));
	put(&o, "mtls_acme_problems_total{type=\"other\"} %lu\n",
	    atomic_load(&g_stats.problem_other));
	head(&o, "mtls_revocation_checks_total", "counter",
	     "Revocation checks of server certificates by method and outcome.");
	for (unsigned m = 0; m < REV_M__COUNT; m++)
		for (unsigned k = 0; k < REV_O__COUNT; k++)
			put(&o, "mtls_revocation_checks_total{method=\"%s\","
			    "outcome=\"%s\"} %lu\n", rev_method_name(m),
			    rev_outcome_name(k), rev_count(m, k));
	head(&o, "mtls_revocation_fail_open_total", "counter",
	     "Connections let through without a revocation answer "
	     "(revocation = fail-open).");
	put(&o, "mtls_revocation_fail_open_total %lu\n", rev_fail_open_count());
	head(&o, "mtls_policy_denials_total", "counter",
	     "Connections the policy refused, by reason.");
	for (int i = 1; i <= POLICY_REASON_ENVIRONMENT; i++)
		put(&o, "mtls_policy_denials_total{reason=\"%s\"} %lu\n",
		    policy_reason_name((enum policy_reason)i),
		    atomic_load(&g_stats.policy_denials[i]));
	if (rt != NULL) {
		head(&o, "mtls_certificate_not_after_seconds", "gauge",
		     "Expiry of each identity's certificate in service (Unix time).");
		for (unsigned i = 0; i < rt->cfg->n_identities; i++)
			if (rt->ids[i] != NULL)
				put(&o, "mtls_certificate_not_after_seconds{identity=\"%s\"} %ld\n",
				    rt->ids[i]->name, rt->ids[i]->not_after);
		head(&o, "mtls_certificate_not_before_seconds", "gauge",
		     "Start of validity of each identity's certificate in service (Unix time).");
		for (unsigned i = 0; i < rt->cfg->n_identities; i++)
			if (rt->ids[i] != NULL)
				put(&o, "mtls_certificate_not_before_seconds{identity=\"%s\"} %ld\n",
				    rt->ids[i]->name, rt->ids[i]->not_before);
		/* Identities that renew (enroll =): when renewal is due (renew_at
		 * or renew_before; the jitter may start it earlier, the backoff
		 * later) and how many attempts in a row failed (the state
		 * file's count, kept across restarts, 0 again after a renewal). */
		head(&o, "mtls_certificate_renewal_due_seconds", "gauge",
		     "When renewal of each enrolling identity's certificate is due (Unix time).");
		for (unsigned i = 0; i < rt->cfg->n_identities; i++) {
			struct renew_params p = rt->cfg->identities[i].renew.sched;

			p.jitter_permille = 0; /* the scheduler starts up to that earlier */
			if (rt->ids[i] != NULL &&
			    rt->cfg->identities[i].renew.enroll != CFG_ENROLL_NONE)
				put(&o, "mtls_certificate_renewal_due_seconds{identity=\"%s\"} %lld\n",
				    rt->ids[i]->name, (long long)renew_due(&p,
					    rt->ids[i]->not_before,
					    rt->ids[i]->not_after, 0));
		}
		head(&o, "mtls_renewal_failures", "gauge",
		     "Consecutive failed renewal attempts of each enrolling identity.");
		for (unsigned i = 0; i < rt->cfg->n_identities; i++) {
			const struct cfg_identity *ci = &rt->cfg->identities[i];
			struct mtls_error err;
			struct renew_state st;

			if (ci->renew.enroll != CFG_ENROLL_NONE &&
			    renew_state_load(rt->cfg->agent.state_dir, ci->name,
					     &st, &err) == MTLS_OK)
				put(&o, "mtls_renewal_failures{identity=\"%s\"} %u\n",
				    ci->name, st.failures);
		}
		head(&o, "mtls_certificate_expiry_warning", "gauge",
		     "1 when an identity's certificate is within a warn_before threshold.");
		for (unsigned i = 0; i < rt->cfg->n_identities; i++)
			if (rt->ids[i] != NULL)
				put(&o, "mtls_certificate_expiry_warning{identity=\"%s\"} %d\n",
				    rt->ids[i]->name,
				    renew_warning(&rt->cfg->identities[i].renew.sched,
						  rt->ids[i]->not_after,
						  (int64_t)time(NULL)) >= 0);
		/* Read once per scrape: the PIN flags come from the token. */
		for (unsigned i = 0; i < rt->cfg->n_tokens; i++)
			p11_token_status(rt->tokens[i], &tss[i]);
		head(&o, "mtls_token_present", "gauge",
		     "1 when the token is in its slot, 0 when absent.");
		for (unsigned i = 0; i < rt->cfg->n_tokens; i++)
			put(&o, "mtls_token_present{token=\"%s\"} %d\n",
			    rt->cfg->tokens[i].name, tss[i].present);
		head(&o, "mtls_token_pin_state", "gauge",
		     "The token's PIN retry counter by state, 1 for the one that holds "
		     "(ok, count_low, final_try, locked); refused is 1 while a refused "
		     "PIN is kept from being tried again.");
		for (unsigned i = 0; i < rt->cfg->n_tokens; i++) {
			static const char *const states[] = { "ok", "count_low",
							      "final_try", "locked" };
			const struct p11_token_status *ts = &tss[i];
			const char *now = ts->pin_locked ? "locked" :
					  ts->pin_final_try ? "final_try" :
					  ts->pin_count_low ? "count_low" : "ok";

			for (unsigned k = 0; k < 4; k++)
				put(&o, "mtls_token_pin_state{token=\"%s\",state=\"%s\"} %d\n",
				    rt->cfg->tokens[i].name, states[k],
				    strcmp(states[k], now) == 0);
			put(&o, "mtls_token_pin_state{token=\"%s\",state=\"refused\"} %d\n",
			    rt->cfg->tokens[i].name, ts->pin_refused);
		}
		runtime_put(rt);
	}
	return o.len;
}

static struct local_server M;

/* A minimal HTTP/1.0 answer: whatever was asked, the metrics. */
static void serve_one(struct local_client *c)
{
	char req[2048], *body, hdr[160];
	size_t len, got = 0;
	int n;

	/* The request head, bounded in size; the deadline is the server's,
	 * for the whole exchange. */
	while (got < sizeof(req) - 1) {
		ssize_t r = local_client_recv(c, req + got, sizeof(req) - 1 - got);

		if (r < 0)
			return; /* deadline or stop: no answer */
		if (r == 0)
			break;
		got += (size_t)r;
		req[got] = '\0';
		if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
			break;
	}
	body = malloc(METRICS_MAX);
	if (body == NULL)
		return;
	len = metrics_render(body, METRICS_MAX);
	n = snprintf(hdr, sizeof(hdr),
		     "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
		     "Content-Length: %zu\r\nConnection: close\r\n\r\n", len);
	if (n > 0 && (size_t)n < sizeof(hdr) &&
	    local_client_send(c, hdr, (size_t)n) == 0)
		(void)local_client_send(c, body, len);
	free(body);
}

int metrics_start(const struct cfg_agent *a)
{
	struct cfg_tunnel t = { .listen_path = a->metrics_path,
				.listen_host = a->metrics_host,
				.listen_port = a->metrics_port,
				.mode = 0666,
				.owner = (uid_t)-1,
				.group = (gid_t)-1 };
	struct mtls_error err = { 0 };
	char msg[512];

	if (a->metrics_path == NULL && a->metrics_host == NULL)
		return 0;
	snprintf(t.name, sizeof(t.name), "metrics");
	if (local_server_start(&M, &t, METRICS_TIMEOUT_MS, serve_one, &err) !=
	    MTLS_OK) {
		log_err("event=metrics_failed detail=\"%s\"",
			mtls_error_str(&err, msg, sizeof(msg)));
		return -1;
	}
	log_info("event=metrics_listen listen=%s%s%.0u",
		 a->metrics_path ? a->metrics_path : a->metrics_host,
		 a->metrics_path ? "" : ":", a->metrics_path ? 0 : a->metrics_port);
	return 0;
}

void metrics_stop(void)
{
	local_server_stop(&M);
}
