/* What a loaded configuration turns into: modules, tokens, identities and
 * one TLS context per tunnel. Connections hold a reference, so a reload
 * swaps in a new runtime while established connections finish on the old. */
#ifndef MTLS_RUNTIME_H
#define MTLS_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "config.h"
#include "identity.h"
#include "renew_state.h"
#include "tls.h"

struct tunnel {
	const struct cfg_tunnel *cfg;
	WOLFSSL_CTX *ctx;          /* NULL for a proxy */
	struct identity *id;       /* NULL for a proxy */
	const struct policy_profile *profile; /* may be NULL */
	int listen_fd;
	int activated; /* listen_fd came from systemd: never closed here */
};

/* A TLS context for one (identity, profile) route of the policy, built on
 * first use and rebuilt when one of the profile's CRL files changed. */
struct route_ctx {
	WOLFSSL_CTX *ctx;
	struct timespec crl_mtime[POLICY_LIST_MAX];
};

struct runtime {
	atomic_int refs;
	struct config *cfg;
	struct p11_module *modules[CFG_MAX_TOKENS];
	struct p11_token *tokens[CFG_MAX_TOKENS];
	int locked[CFG_MAX_TOKENS]; /* pin_source = unlock, no PIN yet */
	struct identity *ids[CFG_MAX_IDENTITIES];
	struct tunnel tunnels[CFG_MAX_TUNNELS];
	unsigned n_tunnels;
	pthread_mutex_t routes_lock;
	struct route_ctx *routes; /* [identity * POLICY_MAX_PROFILES + profile] */
};

/* Opens tokens (logging in, so a wrong PIN shows now), loads identities and
 * builds the TLS contexts. Takes ownership of cfg. Listeners are not
 * opened here. */
mtls_err_t runtime_new(struct config *cfg, struct runtime **out,
		       struct mtls_error *err);
/* Finishes or abandons a renewal a crash interrupted, for the identity
 * just loaded from st; *switched: another generation is now in service.
 * The lifecycle provides it (renew_recover_at_load): the runtime below
 * does not know how renewals work. */
typedef mtls_err_t (*runtime_recover_fn)(const struct config *cfg,
					 unsigned index,
					 struct p11_token *token,
					 struct identity *current,
					 struct renew_state *st, int *switched,
					 struct mtls_error *err);
/* The same, running recover for each identity that enrolls; the daemon
 * starts this way, --check does not. */
mtls_err_t runtime_new_recover(struct config *cfg, runtime_recover_fn recover,
			       struct runtime **out, struct mtls_error *err);
void runtime_get(struct runtime *rt);
/* A referenced context for the route (free it with tls_ctx_free). */
mtls_err_t runtime_route_ctx(struct runtime *rt, int identity, int profile,
			     WOLFSSL_CTX **out, struct mtls_error *err);
void runtime_put(struct runtime *rt);

#endif
