/* mtlsctl enroll, renew, status: the certificate lifecycle, run against the
 * token and the state folder directly (the daemon's scheduler does the
 * same work on its own schedule). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acme.h"
#include "identity.h"
#include "mtls_log.h"
#include "mtlsctl.h"
#include "p11.h"
#include "renew.h"
#include "renew_schedule.h"
#include "renew_state.h"
#include "tls.h"

static int find(struct ctl *ctl, const char *name)
{
	int i;

	if (ctl_load_config(ctl) != 0)
		return -1;
	i = config_find_identity(ctl->cfg, name);
	if (i < 0)
		fprintf(stderr, "mtlsctl: %s: no [identity %s]\n",
			ctl->config_path, name);
	else if (ctl->cfg->identities[i].renew.enroll == CFG_ENROLL_NONE) {
		fprintf(stderr, "mtlsctl: [identity %s] has no enroll=\n", name);
		i = -1;
	}
	return i;
}

/* Enrollment and revocation talk to a CA: what they did, step by step
 * (the account, each authorization, the chain chosen), is shown. */
static void show_progress(void)
{
	mtls_log_set_level(MTLS_LOG_INFO);
}

/* The ACME account on record, and whether the binding is still needed. */
static void show_acme_account(const struct config *cfg,
			      const struct cfg_identity *ci)
{
	char url[1100];

	if (acme_account_read(cfg, ci->name, NULL, url, sizeof(url)) != 0) {
		printf("  acme account: none yet%s\n", ci->renew.acme_eab_hmac ?
		       " (the External Account Binding creates it)" : "");
		return;
	}
	printf("  acme account: %s\n", url);
	if (ci->renew.acme_eab_hmac != NULL)
		printf("  acme EAB:    no longer needed: remove %s and "
		       "acme_eab_kid/acme_eab_hmac\n", ci->renew.acme_eab_hmac);
}

/* Identity i's state, its token (logged in) and, with cur, the identity
 * in service: what enroll, renew and revoke work on. 0, or after the
 * error was printed 1 (2: no identity in service); o may be half open:
 * ctl_token_close it. */
static int open_identity(struct ctl *ctl, int i, struct renew_state *st,
			 struct ctl_token *o, struct identity **cur)
{
	const struct cfg_identity *ci = &ctl->cfg->identities[i];
	struct mtls_error err = { 0 };
	char key[512], cert[1024], chain[1024];

	show_progress();
	if (tls_global_init(&err) != MTLS_OK ||
	    renew_state_load(ctl->cfg->agent.state_dir, ci->name, st, &err) !=
		    MTLS_OK ||
	    ctl_token_open(ctl, ci, o, &err) != 0 ||
	    p11_token_login(o->t, &err) != MTLS_OK) {
		ctl_fail(&err);
		return 1;
	}
	if (cur == NULL)
		return 0;
	renew_identity_source(ctl->cfg, (unsigned)i, st, key, cert, chain,
			      sizeof(key));
	if (identity_load(ci->name, o->t, key, cert, chain[0] ? chain : NULL,
			  cur, &err) != MTLS_OK) {
		ctl_fail(&err);
		return 2;
	}
	return 0;
}

static int run(struct ctl *ctl, int i, int first)
{
	const struct cfg_identity *ci = &ctl->cfg->identities[i];
	struct mtls_error err = { 0 };
	struct identity *cur = NULL;
	struct renew_state st;
	struct ctl_token o = { 0 };
	int switched = 0, retry = 0, rc = 1;

	switch (open_identity(ctl, i, &st, &o, first ? NULL : &cur)) {
	case 0:
		break;
	case 2:
		fprintf(stderr, "mtlsctl: no identity in service to renew; "
				"use mtlsctl enroll\n");
		/* fall through */
	default:
		goto out;
	}
	{
		struct renew_env env = { ctl->cfg, (unsigned)i, o.t, cur };

		if (renew_run(&env, &st, &switched, &retry, &err) != MTLS_OK) {
			ctl_fail(&err);
			goto out;
		}
	}
	if (retry > 0) {
		printf("%s: the CA accepted the request; ask again in %d s\n",
		       ci->name, retry);
		st.next_attempt = (int64_t)time(NULL) + retry;
		renew_state_save(ctl->cfg->agent.state_dir, ci->name, &st, &err);
		rc = 0;
		goto out;
	}
	printf("%s: generation %u in service; reload the agent (SIGHUP) to "
	       "use it\n", ci->name, st.generation);
	rc = 0;
out:
	identity_free(cur);
	ctl_token_close(&o);
	return rc;
}

int ctl_enroll(struct ctl *ctl, int argc, char **argv)
{
	int i;

	if (argc != 2 && !(argc == 3 && strcmp(argv[2], "--bootstrap") == 0))
		return ctl_usage("enroll");
	i = find(ctl, argv[1]);
	return i < 0 ? 1 : run(ctl, i, 1);
}

int ctl_renew(struct ctl *ctl, int argc, char **argv)
{
	int i;

	if (argc != 2 && !(argc == 3 && strcmp(argv[2], "--now") == 0))
		return ctl_usage("renew");
	i = find(ctl, argv[1]);
	if (i < 0)
		return 1;
	/* A running agent does it (its scheduler owns the state); without
	 * one, do it here. */
	if (ctl->cfg->agent.control != NULL) {
		int rc = ctl_renew_agent(ctl, argv[1]);

		if (rc == 0)
			return 0;
	}
	return run(ctl, i, 0);
}

int ctl_status(struct ctl *ctl, int argc, char **argv)
{
	int64_t now = (int64_t)time(NULL);
	int json = argc == 2 && strcmp(argv[1], "--json") == 0;

	if (argc != 1 && !json)
		return ctl_usage("status");
	if (ctl_load_config(ctl) != 0)
		return 1;
	switch (ctl_status_agent(ctl, json)) {
	case 0:
		return 0;
	case 1:
		return 1;
	default:
		if (json) {
			fprintf(stderr, "mtlsctl: --json needs the running agent's "
					"control socket\n");
			return 1;
		}
		printf("(agent not reachable: status read from the tokens and "
		       "%s)\n\n", ctl->cfg->agent.state_dir);
	}
	tls_global_init(&(struct mtls_error){ 0 });
	for (unsigned i = 0; i < ctl->cfg->n_identities; i++) {
		const struct cfg_identity *ci = &ctl->cfg->identities[i];
		struct mtls_error err = { 0 };
		struct p11_token_status ts;
		struct identity *id = NULL;
		struct renew_state st;
		struct ctl_token o;
		char key[512], cert[1024], chain[1024], a[64], b[64], msg[512];

		printf("identity %s\n", ci->name);
		renew_state_load(ctl->cfg->agent.state_dir, ci->name, &st, &err);
		if (ctl_token_open(ctl, ci, &o, &err) != 0) {
			printf("  token:       %s\n", mtls_error_str(&err, msg, sizeof(msg)));
			ctl_token_close(&o);
			continue;
		}
		p11_token_status(o.t, &ts);
		if (!ts.present) {
			printf("  token:       ABSENT (%s)\n", p11_token_uri(o.t));
			ctl_token_close(&o);
			continue;
		}
		printf("  token:       present: %s (serial %s, %s)%s\n", ts.label,
		       ts.serial, ts.model,
		       ctl_pin_state(ts.pin_count_low, ts.pin_final_try,
				     ts.pin_locked));
		renew_identity_source(ctl->cfg, i, &st, key, cert, chain,
				      sizeof(key));
		if (identity_load(ci->name, o.t, key, cert, chain[0] ? chain : NULL,
				  &id, &err) != MTLS_OK) {
			printf("  certificate: none usable: %s\n",
			       mtls_error_str(&err, msg, sizeof(msg)));
		} else {
			ctl_fmt_time(id->not_after, a, sizeof(a));
			ctl_fmt_span(id->not_after - now, b, sizeof(b));
			printf("  subject:     %s\n  issuer:      %s\n"
			       "  not after:   %s (%s %s)\n", id->subject,
			       id->issuer, a, id->not_after > now ? "in" : "EXPIRED",
			       b);
			if (ci->renew.enroll != CFG_ENROLL_NONE) {
				int64_t due = renew_due(&ci->renew.sched,
							id->not_before,
							id->not_after, 0);

				if (st.next_attempt > due)
					due = st.next_attempt;
				ctl_fmt_time(due, a, sizeof(a));
				ctl_fmt_span(due - now, b, sizeof(b));
				printf("  next renewal: %s (%s %s)\n", a,
				       due > now ? "in" : "due, overdue by", b);
			} else {
				printf("  next renewal: none (no enroll=)\n");
			}
		}
		printf("  generation:  %u%s%s\n", st.generation,
		       st.step != RENEW_IDLE ? ", renewal in progress at step " : "",
		       st.step != RENEW_IDLE ? renew_step_name(st.step) : "");
		printf("  last result: %s%s\n",
		       st.last_result[0] ? st.last_result : "never renewed",
		       st.failures ? " (failing)" : "");
		if (ci->renew.enroll == CFG_ENROLL_ACME)
			show_acme_account(ctl->cfg, ci);
		identity_free(id);
		ctl_token_close(&o);
	}
	return 0;
}

/* Emergency revocation from the device: revokeCert signed by the
 * certificate's own key on the token, the certificate marked so that the
 * agent never presents it again, and, with acme_reenroll = yes, a new key
 * and certificate at once (the revoked key is then destroyed). */
int ctl_revoke(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "reason", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	const char *reason_name = "unspecified";
	struct mtls_error err = { 0 };
	struct identity *cur = NULL;
	struct renew_state st;
	struct ctl_token o = { 0 };
	const struct cfg_identity *ci;
	int i, opt, reason, rc = 1;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "r:", opts, NULL)) != -1) {
		if (opt != 'r')
			return 2;
		reason_name = optarg;
	}
	reason = acme_reason_code(reason_name);
	if (optind + 1 != argc || reason < 0)
		return ctl_usage("revoke");
	i = find(ctl, argv[optind]);
	if (i < 0)
		return 1;
	ci = &ctl->cfg->identities[i];
	if (ci->renew.enroll != CFG_ENROLL_ACME) {
		fprintf(stderr, "mtlsctl: [identity %s] does not enroll with "
				"ACME: revoke it at its CA\n", ci->name);
		return 1;
	}
	if (open_identity(ctl, i, &st, &o, &cur) != 0)
		goto out;
	{
		struct renew_env env = { ctl->cfg, (unsigned)i, o.t, cur };
		int switched = 0, retry = 0;
		uint8_t old_id[P11_ID_MAX];
		size_t old_len = p11_key_id(cur->key, old_id);

		if (acme_revoke(&env, cur, reason, &err) != MTLS_OK &&
		    strstr(err.detail, "alreadyRevoked") == NULL) {
			ctl_fail(&err);
			goto out;
		}
		/* Marked before anything else may fail: never presented again. */
		if (renew_revoked_add(ctl->cfg, ci->name, cur, &err) != MTLS_OK) {
			ctl_fail(&err);
			goto out;
		}
		printf("%s: certificate \"%s\" revoked (%s); the agent will not "
		       "present it again\n", ci->name, cur->subject, reason_name);
		if (ci->renew.acme_reenroll) {
			if (renew_run(&env, &st, &switched, &retry, &err) != MTLS_OK ||
			    !switched) {
				if (err.code == MTLS_OK)
					mtls_error_set(&err, MTLS_ERR_IO, "the CA "
						       "has not issued yet");
				ctl_fail(&err);
				fprintf(stderr, "mtlsctl: no new certificate yet: "
						"mtlsctl enroll %s\n", ci->name);
				goto reload;
			}
			/* The revoked key is kept by nobody: not as the
			 * previous generation either. */
			if (st.prev_id_len == old_len &&
			    memcmp(st.prev_id, old_id, old_len) == 0 &&
			    st.generation > 1) {
				unsigned n = 0;

				if (p11_objects_destroy(o.t, old_id, old_len, &n,
							&err) == MTLS_OK) {
					st.prev_id_len = 0;
					renew_state_save(ctl->cfg->agent.state_dir,
							 ci->name, &st, &err);
				}
			}
			printf("%s: generation %u enrolled in its place\n",
			       ci->name, st.generation);
		}
	}
reload:
	rc = 0;
	if (ctl->cfg->agent.control != NULL &&
	    ctl_reload_quiet(ctl) != 0)
		printf("(the agent was not reached: it refuses the certificate "
		       "at its next start or reload)\n");
out:
	identity_free(cur);
	ctl_token_close(&o);
	return rc;
}
