/* What a loaded configuration turns into: modules, tokens, identities and
 * one TLS context per tunnel. Connections hold a reference, so a reload
 * swaps in a new runtime while established connections finish on the old. */
#ifndef MTLS_RUNTIME_H
#define MTLS_RUNTIME_H

#include <stdatomic.h>

#include "config.h"
#include "identity.h"
#include "tls.h"

struct tunnel {
	const struct cfg_tunnel *cfg;
	WOLFSSL_CTX *ctx;
	struct identity *id;
	int listen_fd;
};

struct runtime {
	atomic_int refs;
	struct config *cfg;
	struct p11_module *modules[CFG_MAX_TOKENS];
	struct p11_token *tokens[CFG_MAX_TOKENS];
	struct identity *ids[CFG_MAX_IDENTITIES];
	struct tunnel tunnels[CFG_MAX_TUNNELS];
	unsigned n_tunnels;
};

/* Opens tokens (logging in, so a wrong PIN shows now), loads identities and
 * builds the TLS contexts. Takes ownership of cfg. Listeners are not
 * opened here. */
mtls_err_t runtime_new(struct config *cfg, struct runtime **out,
		       struct mtls_error *err);
void runtime_get(struct runtime *rt);
void runtime_put(struct runtime *rt);

#endif
