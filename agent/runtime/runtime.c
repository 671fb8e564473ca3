#include <wolfssl/options.h>

#include "runtime.h"

#include <wolfssl/ssl.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
		tls_ctx_free(rt->tunnels[i].ctx);
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
	pthread_mutex_init(&rt->routes_lock, NULL);
	rt->routes = calloc(CFG_MAX_IDENTITIES * POLICY_MAX_PROFILES,
			    sizeof(*rt->routes));
	if (rt->routes == NULL) {
		runtime_free(rt);
		return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	}
	for (unsigned i = 0; i < CFG_MAX_TUNNELS; i++)
		rt->tunnels[i].listen_fd = -1;

	for (unsigned i = 0; i < cfg->n_tokens; i++) {
		const struct cfg_token *ct = &cfg->tokens[i];

		/* Each token gets its own p11-kit managed instance of the
		 * module, so a reload never disturbs the sessions of the
		 * runtime it replaces. */
		r = p11_module_open(ct->module, &rt->modules[i], err);
		if (r != MTLS_OK)
			goto fail;
		r = p11_token_open(rt->modules[i], ct->uri, ct->pin_source,
				   ct->max_sessions, &rt->tokens[i], err);
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
		if (r == MTLS_ERR_PIN_MISSING && ct->pin_source != NULL &&
		    strcmp(ct->pin_source, "unlock") == 0) {
			/* Waits for mtlsctl unlock; its identities are not
			 * loaded until then. */
			log_notice("event=token_locked token=%s hint=\"mtlsctl "
				   "unlock %s\"", ct->name, ct->name);
			rt->locked[i] = 1;
			continue;
		}
		if (r != MTLS_OK)
			goto fail;
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
		log_info("event=identity_loaded identity=%s key_type=%s-%u "
			 "subject=\"%s\" not_after=%ld", ci->name,
			 p11_key_type(rt->ids[i]->key) == P11_KEY_EC ? "ec" :
								       "rsa",
			 p11_key_bits(rt->ids[i]->key), rt->ids[i]->subject,
			 rt->ids[i]->not_after);
	}
	for (unsigned i = 0; i < cfg->n_tunnels; i++) {
		const struct cfg_tunnel *ct = &cfg->tunnels[i];
		struct tunnel *t = &rt->tunnels[i];
		const char *ca;

		t->cfg = ct;
		rt->n_tunnels = i + 1;
		if (ct->is_proxy)
			continue; /* no identity: routes come from the policy */
		ca = ct->ca != NULL ? ct->ca : cfg->identities[ct->identity].ca;
		t->id = rt->ids[ct->identity];
		t->profile = ct->profile >= 0 ?
				     &cfg->policy->profiles[ct->profile] : NULL;
		if (t->id == NULL)
			continue; /* its token is locked */
		r = tls_ctx_new(t->id, ca, (int)ct->min_tls,
				t->profile, &t->ctx, err);
		if (r != MTLS_OK)
			goto fail;
	}
	*out = rt;
	return MTLS_OK;
fail:
	runtime_free(rt);
	return r;
}

static int crl_changed(const struct policy_profile *pr, struct route_ctx *rc,
		       int update)
{
	int changed = 0;

	for (unsigned i = 0; i < pr->n_crls; i++) {
		struct stat st;
		struct timespec m = { 0, 0 };

		if (stat(pr->crls[i], &st) == 0)
			m = st.st_mtim;
		if (m.tv_sec != rc->crl_mtime[i].tv_sec ||
		    m.tv_nsec != rc->crl_mtime[i].tv_nsec)
			changed = 1;
		if (update)
			rc->crl_mtime[i] = m;
	}
	return changed;
}

mtls_err_t runtime_route_ctx(struct runtime *rt, int identity, int profile,
			     WOLFSSL_CTX **out, struct mtls_error *err)
{
	const struct policy_profile *pr = &rt->cfg->policy->profiles[profile];
	struct route_ctx *rc = &rt->routes[identity * POLICY_MAX_PROFILES + profile];
	mtls_err_t r = MTLS_OK;

	if (rt->ids[identity] == NULL)
		return mtls_error_set(err, MTLS_ERR_PIN_MISSING,
				      "identity '%s': its token is locked "
				      "(mtlsctl unlock)",
				      rt->cfg->identities[identity].name);

	pthread_mutex_lock(&rt->routes_lock);
	if (rc->ctx != NULL && crl_changed(pr, rc, 0)) {
		/* Connections using the old context keep their reference. */
		log_info("event=crl_reload profile=%s", pr->name);
		tls_ctx_free(rc->ctx);
		rc->ctx = NULL;
	}
	if (rc->ctx == NULL) {
		crl_changed(pr, rc, 1);
		r = tls_ctx_new(rt->ids[identity], NULL, 0, pr, &rc->ctx, err);
	}
	if (r == MTLS_OK) {
		wolfSSL_CTX_up_ref(rc->ctx);
		*out = rc->ctx;
	}
	pthread_mutex_unlock(&rt->routes_lock);
	return r;
}

void runtime_get(struct runtime *rt)
{
	atomic_fetch_add(&rt->refs, 1);
}

void runtime_put(struct runtime *rt)
{
	if (rt != NULL && atomic_fetch_sub(&rt->refs, 1) == 1)
		runtime_free(rt);
}
