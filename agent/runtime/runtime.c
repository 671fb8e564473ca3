#include <wolfssl/options.h>

#include "runtime.h"

#include <wolfssl/ssl.h>

#include <errno.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aead_offload.h"
#include "mtls_log.h"
#include "pins.h"
#include "renew_state.h"

_Static_assert(CFG_MAX_TOKENS <= PINS_MAX_TOKENS &&
		       CFG_NAME_MAX <= PINS_NAME_MAX,
	       "every configured token can hold an unlocked PIN");

static void runtime_free(struct runtime *rt)
{
	if (rt->routes != NULL) {
		for (unsigned i = 0; i < CFG_MAX_IDENTITIES * POLICY_MAX_PROFILES; i++)
			tls_ctx_free(rt->routes[i].ctx);
		free(rt->routes);
	}
	pthread_mutex_destroy(&rt->routes_lock);
	for (unsigned i = 0; i < rt->n_tunnels; i++) {
		tls_ctx_free(rt->tunnels[i].tls.ctx);
		if (rt->tunnels[i].listen_fd >= 0 && !rt->tunnels[i].activated)
			close(rt->tunnels[i].listen_fd);
	}
	for (unsigned i = 0; i < CFG_MAX_IDENTITIES; i++)
		identity_free(rt->ids[i]);
	for (unsigned i = 0; i < CFG_MAX_TOKENS; i++)
		p11_token_close(rt->tokens[i]);
	for (unsigned i = 0; i < CFG_MAX_TOKENS; i++)
		p11_module_close(rt->modules[i]);
	config_free(rt->cfg);
	free(rt);
}

static mtls_err_t load_identity(struct runtime *rt, unsigned i,
				runtime_recover_fn recover,
				struct mtls_error *err)
{
	const struct cfg_identity *ci = &rt->cfg->identities[i];
	char key[512], cert[1024], chain[1024];
	struct renew_state st;
	mtls_err_t r;

	r = renew_state_load(rt->cfg->agent.state_dir, ci->name, &st, err);
	if (r != MTLS_OK)
		return r;
	renew_identity_source(rt->cfg, i, &st, key, cert, chain, sizeof(key));
	r = identity_load(ci->name, rt->tokens[ci->token], key, cert,
			  chain[0] ? chain : NULL, &rt->ids[i], err);
	if (r != MTLS_OK || recover == NULL ||
	    ci->renew.enroll == CFG_ENROLL_NONE)
		return r;
	{
		int switched = 0;

		r = recover(rt->cfg, i, rt->tokens[ci->token], rt->ids[i], &st,
			    &switched, err);
		if (r != MTLS_OK || !switched)
			return r;
	}
	/* The crash came after the new generation was stored: it is the
	 * one in service now. */
	identity_free(rt->ids[i]);
	rt->ids[i] = NULL;
	renew_identity_source(rt->cfg, i, &st, key, cert, chain, sizeof(key));
	return identity_load(ci->name, rt->tokens[ci->token], key, cert,
			     chain[0] ? chain : NULL, &rt->ids[i], err);
}

static mtls_err_t runtime_build(struct config *cfg,
				runtime_recover_fn recover,
				struct runtime **out, struct mtls_error *err);

/* Can identity i's key sign in contexts of this minimum version? what
 * names the tunnel or rule asking, for the error. */
static mtls_err_t plan_allows(struct runtime *rt, int i, int min_tls,
			      const char *what, struct mtls_error *err)
{
	const struct cfg_identity *ci = &rt->cfg->identities[i];
	char who[CFG_NAME_MAX * 2 + 32];

	snprintf(who, sizeof(who), "identity '%s' on token '%s'", ci->name,
		 rt->cfg->tokens[ci->token].name);
	return tls_sig_plan_check(&rt->ids[i]->plan, min_tls, what, who, err);
}

/* What the token can sign with identity i's key, checked once at load: a
 * key it cannot sign with at all is refused; one it can sign with in one
 * TLS version only is noted, with the reason, once. */
static mtls_err_t identity_plan_check(struct runtime *rt, unsigned i,
				      struct mtls_error *err)
{
	const struct cfg_identity *ci = &rt->cfg->identities[i];
	const struct identity *id = rt->ids[i];
	const char *token = rt->cfg->tokens[ci->token].name;
	char what[CFG_NAME_MAX + 512], schemes[256];
	mtls_err_t r;

	snprintf(what, sizeof(what), "%s:%d: [identity %s]", rt->cfg->path,
		 ci->line, ci->name);
	r = plan_allows(rt, (int)i, 12, what, err);
	if (r != MTLS_OK)
		return r;
	if (!id->caps.listed)
		log_notice("event=token_mechanisms identity=%s token=%s "
			   "result=unlisted rv=%s detail=\"the token gives no "
			   "mechanism list; its signing mechanisms are "
			   "assumed\"", ci->name, token,
			   p11_rv_name(id->caps.list_rv));
	if (id->plan.missing[0] != '\0')
		log_notice("event=tls_limited identity=%s token=%s "
			   "key_type=rsa-%u tls=%s schemes=%s reason=\"%s\"",
			   ci->name, token, p11_key_bits(id->key),
			   id->plan.max_tls == 12 ? "1.2" : "1.3",
			   tls_schemes_text(id->plan.max_tls == 12 ?
					    id->plan.schemes12 :
					    id->plan.schemes13,
					    schemes, sizeof(schemes)),
			   id->plan.why);
	return MTLS_OK;
}

/* Every rule that sends an identity to a profile with min_tls = 1.3 must
 * have a key its token can sign with in TLS 1.3: checked at load, since
 * the routes' contexts are built at their first connection. */
static mtls_err_t rules_plan_check(struct runtime *rt, struct mtls_error *err)
{
	const struct policy *p = rt->cfg->policy;

	for (unsigned j = 0; p != NULL && j < p->n_rules; j++) {
		const struct policy_rule *rule = &p->rules[j];
		char what[CFG_NAME_MAX * 2 + 512];
		mtls_err_t r;

		if (rule->action != POLICY_ACTION_ALLOW || rule->identity < 0 ||
		    rule->profile < 0 || rt->ids[rule->identity] == NULL)
			continue; /* a locked token: checked when unlocked */
		snprintf(what, sizeof(what), "%s:%d: [rule %s] profile '%s'",
			 rt->cfg->path, rule->line, rule->name,
			 p->profiles[rule->profile].name);
		r = plan_allows(rt, rule->identity,
				p->profiles[rule->profile].min_tls, what, err);
		if (r != MTLS_OK)
			return r;
	}
	return MTLS_OK;
}

static mtls_err_t tunnel_build(struct runtime *rt, struct tunnel *t,
			       struct mtls_error *err);

static int token_final_try(struct p11_token *t)
{
	struct p11_token_status ts;

	p11_token_status(t, &ts);
	return ts.pin_final_try;
}

mtls_err_t runtime_new(struct config *cfg, struct runtime **out,
		       struct mtls_error *err)
{
	return runtime_build(cfg, NULL, out, err);
}

mtls_err_t runtime_new_recover(struct config *cfg, runtime_recover_fn recover,
			       struct runtime **out, struct mtls_error *err)
{
	return runtime_build(cfg, recover, out, err);
}

static mtls_err_t runtime_build(struct config *cfg,
				runtime_recover_fn recover,
				struct runtime **out, struct mtls_error *err)
{
	struct runtime *rt;
	mtls_err_t r = MTLS_OK;

	*out = NULL;
	rt = calloc(1, sizeof(*rt));
	if (rt == NULL) {
		config_free(cfg);
		return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	}
	atomic_init(&rt->refs, 1);
	rt->cfg = cfg;
	/* Process-wide, read by every context and connection made from here
	 * on; put back if this configuration is not taken. */
	rt->bulk_prev = aead_offload_wanted();
	aead_offload_enable(cfg->agent.bulk_crypto_openssl);
	pthread_mutex_init(&rt->routes_lock, NULL);
	rt->routes = calloc(CFG_MAX_IDENTITIES * POLICY_MAX_PROFILES,
			    sizeof(*rt->routes));
	if (rt->routes == NULL) {
		runtime_free(rt);
		return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	}
	for (unsigned i = 0; i < CFG_MAX_TUNNELS; i++)
		rt->tunnels[i].listen_fd = -1;

	{
		/* PINs a token refused stay refused across restarts. */
		char path[1024];

		/* Made here, not only by the first renewal: the refusals
		 * file lives in it. */
		if (mkdir(cfg->agent.state_dir, 0700) != 0 && errno != EEXIST)
			log_warn("event=state_dir_missing path=%s error=\"%s\"",
				 cfg->agent.state_dir, strerror(errno));
		snprintf(path, sizeof(path), "%s/pin-refusals",
			 cfg->agent.state_dir);
		p11_pin_refusals_file(path);
	}
	for (unsigned i = 0; i < cfg->n_tokens; i++) {
		const struct cfg_token *ct = &cfg->tokens[i];

		/* Each token gets its own p11-kit managed instance of the
		 * module, so a reload never disturbs the sessions of the
		 * runtime it replaces. */
		r = p11_module_open(ct->module, &rt->modules[i], err);
		if (r != MTLS_OK) {
			mtls_error_where(err, "%s:%d: [token %s] module = %s "
					 "(`p11-kit list-modules` names the "
					 "registered modules; a path works too)",
					 cfg->path, ct->line_module, ct->name,
					 ct->module);
			goto fail;
		}
		/* pinentry: to pkcs11/ a PIN handed over at run time, as
		 * with unlock (the daemon asks the person and unlocks). */
		r = p11_token_open(rt->modules[i], ct->uri,
				   cfg_token_pinentry(ct) ? "unlock" :
							    ct->pin_source,
				   ct->max_sessions, &rt->tokens[i], err);
		if (r == MTLS_ERR_TOKEN_ABSENT)
			mtls_error_where(err, "%s:%d: [token %s] uri (is the "
					 "token inserted? `p11-kit list-modules` "
					 "shows each module's tokens and their "
					 "labels)", cfg->path, ct->line_uri,
					 ct->name);
		else if (r != MTLS_OK)
			mtls_error_where(err, "%s:%d: [token %s]", cfg->path,
					 ct->line, ct->name);
		if (r == MTLS_OK && cfg_token_pinentry(ct))
			/* As with a smartcard in gpg-agent: a card pulled out
			 * takes its PIN with it, here and in pins.c (which a
			 * reload would hand back), before anyone could plug
			 * the card in again. */
			p11_token_forget_pin_on_removal(rt->tokens[i],
							pins_forget_cb,
							cfg->tokens[i].name);
		if (r == MTLS_OK)
			r = p11_token_set_so_source(rt->tokens[i],
						    ct->so_pin_source, err);
		if (r != MTLS_OK)
			goto fail;
		{
			struct mtls_secret *pin = mtls_secret_new();

			if (pin != NULL && pins_get(ct->name, pin) == 0)
				r = p11_token_unlock(rt->tokens[i], pin, err);
			else
				r = p11_token_login(rt->tokens[i], err);
			mtls_secret_free(pin);
		}
		if (r == MTLS_ERR_PIN_MISSING && cfg_token_person_pin(ct)) {
			/* Waits for mtlsctl unlock; its identities are not
			 * loaded until then. */
			log_notice("event=token_locked token=%s hint=\"mtlsctl "
				   "unlock %s\"", ct->name, ct->name);
			rt->locked[i] = 1;
			rt->lock_reason[i] = r;
			continue;
		}
		if (r == MTLS_ERR_PIN_INCORRECT || r == MTLS_ERR_PIN_LOCKED ||
		    (r == MTLS_ERR_PIN_MISSING && token_final_try(rt->tokens[i]))) {
			/* Not a reason to exit: a service manager would start
			 * the agent again, and each start would spend a try
			 * of the token's counter. The agent waits for a new
			 * PIN (reload, mtlsctl unlock) instead. */
			{
				char msg[512];

				log_err("event=token_locked token=%s reason=%s "
					"detail=\"%s\"", ct->name,
					mtls_err_name(err->code),
					mtls_error_str(err, msg, sizeof(msg)));
			}
			rt->locked[i] = 1;
			rt->lock_reason[i] = r;
			r = MTLS_OK;
			continue;
		}
		if (r == MTLS_ERR_TOKEN_ABSENT) {
			/* The token is looked up when the agent logs in. */
			mtls_error_where(err, "%s:%d: [token %s] uri (is the "
					 "token inserted? `p11-kit list-modules` "
					 "shows each module's tokens and their "
					 "labels)", cfg->path, ct->line_uri,
					 ct->name);
			goto fail;
		}
		if (r != MTLS_OK) {
			/* Most often the PIN file: missing, or readable by
			 * others. */
			mtls_error_where(err, "%s:%d: [token %s] pin_source",
					 cfg->path, ct->line_pin ? ct->line_pin :
					 ct->line, ct->name);
			goto fail;
		}
		log_info("event=token_open token=%s module=%s", ct->name,
			 ct->module);
	}
	for (unsigned i = 0; i < cfg->n_identities; i++) {
		const struct cfg_identity *ci = &cfg->identities[i];

		if (rt->locked[ci->token])
			continue;
		r = load_identity(rt, i, recover, err);
		if (r != MTLS_OK)
			goto fail;
		if (rt->ids[i] == NULL)
			continue;
		if (renew_revoked(cfg, ci->name, rt->ids[i])) {
			/* Never presented again; the tunnels using it refuse
			 * with identity_revoked until a new one is enrolled. */
			log_err("event=identity_revoked identity=%s subject=\"%s\" "
				"hint=\"enroll a new one: mtlsctl enroll %s\"",
				ci->name, rt->ids[i]->subject, ci->name);
			identity_free(rt->ids[i]);
			rt->ids[i] = NULL;
			rt->revoked[i] = 1;
			continue;
		}
		log_info("event=identity_loaded identity=%s key_type=%s-%u "
			 "subject=\"%s\" not_after=%ld", ci->name,
			 p11_key_type(rt->ids[i]->key) == P11_KEY_EC ? "ec" :
								       "rsa",
			 p11_key_bits(rt->ids[i]->key), rt->ids[i]->subject,
			 rt->ids[i]->not_after);
		r = identity_plan_check(rt, i, err);
		if (r != MTLS_OK)
			goto fail;
	}
	for (unsigned i = 0; i < cfg->n_tunnels; i++) {
		const struct cfg_tunnel *ct = &cfg->tunnels[i];
		struct tunnel *t = &rt->tunnels[i];

		t->cfg = ct;
		rt->n_tunnels = i + 1;
		if (ct->is_proxy)
			continue; /* no identity: routes come from the policy */
		t->id = rt->ids[ct->identity];
		t->profile = ct->profile >= 0 ?
				     &cfg->policy->profiles[ct->profile] : NULL;
		if (t->id == NULL)
			continue; /* its token is locked */
		{
			char what[CFG_NAME_MAX + 512];

			snprintf(what, sizeof(what), "%s:%d: [tunnel %s]%s%s%s",
				 cfg->path, ct->line, ct->name,
				 t->profile != NULL ? " profile '" : "",
				 t->profile != NULL ? t->profile->name : "",
				 t->profile != NULL ? "'" : "");
			r = plan_allows(rt, ct->identity, t->profile != NULL ?
					t->profile->min_tls : (int)ct->min_tls,
					what, err);
			if (r != MTLS_OK)
				goto fail;
		}
		/* Built now, so that a bad CA or CRL stops the start. */
		r = tunnel_build(rt, t, err);
		if (r != MTLS_OK)
			goto fail;
	}
	r = rules_plan_check(rt, err);
	if (r != MTLS_OK)
		goto fail;
	*out = rt;
	return MTLS_OK;
fail:
	aead_offload_enable(rt->bulk_prev);
	runtime_free(rt);
	return r;
}

static void crl_stamp_read(const char *path, struct crl_stamp *s)
{
	struct stat st;

	memset(s, 0, sizeof(*s));
	if (stat(path, &st) != 0) {
		s->missing = 1;
		return;
	}
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->size = st.st_size;
	s->mtime = st.st_mtim;
	s->ctime = st.st_ctim;
}

static int crl_stamp_same(const struct crl_stamp *a, const struct crl_stamp *b)
{
	return a->missing == b->missing && a->dev == b->dev && a->ino == b->ino &&
	       a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
	       a->mtime.tv_nsec == b->mtime.tv_nsec &&
	       a->ctime.tv_sec == b->ctime.tv_sec &&
	       a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* Has one of the profile's CRL files changed since rc's context was built?
 * update: remember them as they are now (stat before the files are
 * loaded: a change after that shows at the next call). */
static int crl_changed(const struct policy_profile *pr, struct route_ctx *rc,
		       int update)
{
	int changed = 0;

	for (unsigned i = 0; pr != NULL && i < pr->n_crls; i++) {
		struct crl_stamp now;

		crl_stamp_read(pr->crls[i], &now);
		if (!crl_stamp_same(&now, &rc->crl[i]))
			changed = 1;
		if (update)
			rc->crl[i] = now;
	}
	return changed;
}

/* rc's context, rebuilt first when its profile's CRL changed; the caller
 * holds routes_lock (or is building the runtime, alone). what names it in
 * the log. */
static mtls_err_t ctx_current(struct route_ctx *rc, struct identity *id,
			      const char *ca, int min_tls,
			      const struct policy_profile *pr, const char *what,
			      struct mtls_error *err)
{
	mtls_err_t r;

	if (rc->ctx != NULL && !crl_changed(pr, rc, 0))
		return MTLS_OK;
	if (rc->ctx != NULL) {
		/* Connections using the old context keep their reference. */
		log_info("event=crl_reload profile=%s %s old_ctx=%lu", pr->name,
			 what, tls_ctx_serial(rc->ctx));
		tls_ctx_free(rc->ctx);
		rc->ctx = NULL;
	}
	crl_changed(pr, rc, 1);
	r = tls_ctx_new(id, ca, min_tls, pr, &rc->ctx, err);
	if (r != MTLS_OK)
		return r; /* rc->ctx stays NULL: the next call tries again */
	log_debug("event=tls_context %s profile=%s ctx=%lu", what,
		  pr != NULL ? pr->name : "-", tls_ctx_serial(rc->ctx));
	return MTLS_OK;
}

static mtls_err_t ctx_ref(struct route_ctx *rc, WOLFSSL_CTX **out,
			  struct mtls_error *err)
{
	if (wolfSSL_CTX_up_ref(rc->ctx) != WOLFSSL_SUCCESS)
		return mtls_error_set(err, MTLS_ERR_TLS, "wolfSSL_CTX_up_ref");
	*out = rc->ctx;
	return MTLS_OK;
}

static mtls_err_t tunnel_build(struct runtime *rt, struct tunnel *t,
			       struct mtls_error *err)
{
	const struct cfg_tunnel *ct = t->cfg;
	const char *ca = ct->ca != NULL ? ct->ca :
					  rt->cfg->identities[ct->identity].ca;
	char what[CFG_NAME_MAX + 8];

	mtls_err_t r;

	snprintf(what, sizeof(what), "tunnel=%s", ct->name);
	r = ctx_current(&t->tls, t->id, ca, (int)ct->min_tls, t->profile, what,
			err);
	/* A trust anchor or CRL file that cannot be used: say which line
	 * named it. */
	if (r == MTLS_ERR_CONFIG && t->profile != NULL)
		mtls_error_where(err, "%s:%d: [profile %s] (used by [tunnel %s])",
				 rt->cfg->path, t->profile->line,
				 t->profile->name, ct->name);
	else if (r == MTLS_ERR_CONFIG && ct->ca != NULL)
		mtls_error_where(err, "%s:%d: [tunnel %s] ca", rt->cfg->path,
				 ct->line, ct->name);
	else if (r == MTLS_ERR_CONFIG)
		mtls_error_where(err, "%s:%d: [identity %s] ca", rt->cfg->path,
				 rt->cfg->identities[ct->identity].line_ca,
				 rt->cfg->identities[ct->identity].name);
	return r;
}

mtls_err_t runtime_tunnel_ctx(struct runtime *rt, struct tunnel *t,
			      WOLFSSL_CTX **out, struct mtls_error *err)
{
	mtls_err_t r;

	*out = NULL;
	if (t->id == NULL && rt->revoked[t->cfg->identity])
		return mtls_error_set(err, MTLS_ERR_IDENTITY_REVOKED, "identity "
				      "'%s': its certificate was revoked",
				      rt->cfg->identities[t->cfg->identity].name);
	if (t->id == NULL) {
		int tok = rt->cfg->identities[t->cfg->identity].token;

		return mtls_error_set(err, rt->lock_reason[tok] ? rt->lock_reason[tok] :
								  MTLS_ERR_PIN_MISSING,
				      "token %s waits for a PIN: mtlsctl unlock",
				      rt->cfg->tokens[tok].name);
	}
	/* Without a profile there is no CRL: the context built at start
	 * serves until the next reload. */
	pthread_mutex_lock(&rt->routes_lock);
	r = tunnel_build(rt, t, err);
	if (r == MTLS_OK)
		r = ctx_ref(&t->tls, out, err);
	pthread_mutex_unlock(&rt->routes_lock);
	return r;
}

mtls_err_t runtime_route_ctx(struct runtime *rt, int identity, int profile,
			     WOLFSSL_CTX **out, struct mtls_error *err)
{
	const struct policy_profile *pr = &rt->cfg->policy->profiles[profile];
	struct route_ctx *rc = &rt->routes[identity * POLICY_MAX_PROFILES + profile];
	char what[CFG_NAME_MAX + 16];
	mtls_err_t r;

	*out = NULL;
	if (rt->ids[identity] == NULL && rt->revoked[identity])
		return mtls_error_set(err, MTLS_ERR_IDENTITY_REVOKED, "identity "
				      "'%s': its certificate was revoked",
				      rt->cfg->identities[identity].name);
	if (rt->ids[identity] == NULL) {
		int tok = rt->cfg->identities[identity].token;

		return mtls_error_set(err, rt->lock_reason[tok] ? rt->lock_reason[tok] :
								  MTLS_ERR_PIN_MISSING,
				      "identity '%s': its token waits for a "
				      "PIN (mtlsctl unlock)",
				      rt->cfg->identities[identity].name);
	}
	snprintf(what, sizeof(what), "identity=%s",
		 rt->cfg->identities[identity].name);
	pthread_mutex_lock(&rt->routes_lock);
	r = ctx_current(rc, rt->ids[identity], NULL, 0, pr, what, err);
	if (r == MTLS_ERR_CONFIG)
		mtls_error_where(err, "%s:%d: [profile %s]", rt->cfg->path,
				 pr->line, pr->name);
	if (r == MTLS_OK)
		r = ctx_ref(rc, out, err);
	pthread_mutex_unlock(&rt->routes_lock);
	return r;
}

void runtime_get(struct runtime *rt)
{
	atomic_fetch_add(&rt->refs, 1);
}

int runtime_put_shared(struct runtime *rt)
{
	int refs = atomic_load(&rt->refs);

	while (refs > 1)
		if (atomic_compare_exchange_weak(&rt->refs, &refs, refs - 1))
			return 0;
	return -1;
}

void runtime_put(struct runtime *rt)
{
	if (rt != NULL && atomic_fetch_sub(&rt->refs, 1) == 1)
		runtime_free(rt);
}
