/* The renewal state of one identity, in STATE_DIR/NAME.state: which key
 * generation is in service, which one is being prepared and how far it
 * got. Written atomically (write, fsync, rename, fsync the folder) before
 * each step acts, so that a crash at any point restarts into a known
 * state: the current key is never the one a recovery deletes. */
#ifndef MTLS_RENEW_STATE_H
#define MTLS_RENEW_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "identity.h"
#include "mtls_err.h"
#include "p11.h"

enum renew_step {
	RENEW_IDLE,
	RENEW_KEYGEN,    /* pending key being generated */
	RENEW_CSR,       /* pending key exists; request made or to be made */
	RENEW_RECEIVED,  /* certificate received and checked: STATE_DIR/NAME.pending.pem */
	RENEW_STORED,    /* certificate on the token beside the pending key */
};

struct renew_state {
	unsigned generation;            /* of the key in service; 0: from the config */
	uint8_t key_id[P11_ID_MAX];     /* in service (generation > 0) */
	size_t key_id_len;
	uint8_t prev_id[P11_ID_MAX];    /* the previous generation, kept */
	size_t prev_id_len;
	uint8_t retire_id[P11_ID_MAX];  /* to destroy (after a switch) */
	size_t retire_id_len;
	enum renew_step step;
	uint8_t pending_id[P11_ID_MAX];
	size_t pending_id_len;
	unsigned failures;
	int64_t last_attempt, next_attempt;
	char last_result[160];
};

const char *renew_step_name(enum renew_step s);

/* A missing file is an empty state (MTLS_OK). */
mtls_err_t renew_state_load(const char *dir, const char *name,
			    struct renew_state *st, struct mtls_error *err);
mtls_err_t renew_state_save(const char *dir, const char *name,
			    const struct renew_state *st,
			    struct mtls_error *err);

/* The state folder may be used: a folder, ours (or root's; any, for root),
 * written by none but its owner. Load and save check it. */
mtls_err_t renew_state_dir_check(const char *dir, struct mtls_error *err);

/* Writes data to path atomically: path.tmp (made anew with O_EXCL, never
 * through what was there), fsync, rename, fsync(dir). */
mtls_err_t file_write_atomic(const char *path, const void *data, size_t len,
			     unsigned mode, struct mtls_error *err);

/* Parses the text form (exposed for tests and fuzzing). */
int renew_state_parse(const char *text, struct renew_state *st);

void hex_encode(const uint8_t *in, size_t len, char *out);
int hex_decode(const char *in, uint8_t *out, size_t max, size_t *len);

/* The key and certificate URIs of the generation in service, and the
 * intermediates file: from the state, or the configuration's. */
void renew_identity_source(const struct config *cfg, unsigned index,
			   const struct renew_state *st, char *key_uri,
			   char *cert_uri, char *chain_path, size_t cap);

/* Revoked certificates of an identity: STATE_DIR/NAME.revoked, one
 * SHA-256 of a leaf (hex) per line. renew_revoked: is id's leaf one? */
#define RENEW_REVOKED_SUFFIX "revoked"
int renew_revoked(const struct config *cfg, const char *name,
		  const struct identity *id);
mtls_err_t renew_revoked_add(const struct config *cfg, const char *name,
			     const struct identity *id, struct mtls_error *err);

/* A PKCS#11 URI naming the object of that CKA_ID and type. */
void renew_id_uri(const uint8_t *id, size_t len, const char *type,
		  char *out, size_t cap);
/* STATE_DIR/NAME.SUFFIX of an identity. */
void renew_state_path(const struct config *cfg, const char *name,
		      const char *suffix, char *out, size_t cap);

#endif
