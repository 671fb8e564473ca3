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

/* What a CRL file was when a context loaded it. A replacement by rename
 * (another inode), an in-place rewrite (size, times), a removal: each
 * changes it. */
struct crl_stamp {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
	int missing;
};

/* A TLS context and the CRL files it was built with; rebuilt (under
 * routes_lock) when one of the profile's CRL files changed, so that a
 * revocation counts from the next connection. Connections hold their own
 * reference to the context they use. */
struct route_ctx {
	WOLFSSL_CTX *ctx;
	struct crl_stamp crl[POLICY_LIST_MAX];
};

struct tunnel {
	const struct cfg_tunnel *cfg;
	struct route_ctx tls;      /* ctx NULL for a proxy or a locked token */
	struct identity *id;       /* NULL for a proxy */
	const struct policy_profile *profile; /* may be NULL */
	int listen_fd;
	int activated; /* listen_fd came from systemd: never closed here */
};

struct runtime {
	atomic_int refs;
	struct config *cfg;
	int bulk_prev; /* aead_offload's switch before this runtime was built */
	struct p11_module *modules[CFG_MAX_TOKENS];
	struct p11_token *tokens[CFG_MAX_TOKENS];
	/* Waiting for a PIN: pin_source = unlock and none given yet, or the
	 * token refused the PIN (never retried: a new one must come), or it
	 * has one try left, or its PIN is locked. lock_reason says which
	 * (MTLS_ERR_PIN_*), the reason connections fail with. */
	int locked[CFG_MAX_TOKENS];
	mtls_err_t lock_reason[CFG_MAX_TOKENS];
	struct identity *ids[CFG_MAX_IDENTITIES];
	/* Not loaded on purpose: its certificate was revoked from here
	 * (mtlsctl revoke; STATE_DIR/NAME.revoked) and none replaced it. */
	int revoked[CFG_MAX_IDENTITIES];
	struct tunnel tunnels[CFG_MAX_TUNNELS];
	unsigned n_tunnels;
	pthread_mutex_t routes_lock; /* routes[] and tunnels[].tls */
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
/* The same for a tunnel: its context as of now, rebuilt first if its
 * profile's CRL changed. MTLS_ERR_PIN_MISSING while its token is locked. */
mtls_err_t runtime_tunnel_ctx(struct runtime *rt, struct tunnel *t,
			      WOLFSSL_CTX **out, struct mtls_error *err);
void runtime_put(struct runtime *rt);
/* Drops a reference that is not the last: 0; -1 (nothing dropped) when
 * it is the last one, whose runtime_put frees (and may block on tokens). */
int runtime_put_shared(struct runtime *rt);

#endif
