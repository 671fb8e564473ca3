/* pkcs11/: the only code that talks to tokens.
 *
 * Modules are loaded through p11-kit (by registered name or by path), tokens,
 * keys and certificates are selected with RFC 7512 URIs, and signatures use
 * the token's own mechanisms (CKM_ECDSA, CKM_RSA_PKCS, CKM_RSA_PKCS_PSS; never
 * raw CKM_RSA_X_509). Every failure carries the CK_RV name and the URI.
 *
 * Thread safety: a token may be used from many threads at once. Signatures
 * borrow a session from the token's pool; key handles are cached and found
 * again when the token was reset (removed, reinserted, sessions closed).
 *
 * This header deliberately does not include pkcs11.h: wolfSSL's PKCS#11
 * headers and p11-kit's conflict in one translation unit. */
#ifndef MTLS_P11_H
#define MTLS_P11_H

#include <stddef.h>
#include <stdint.h>

#include "mtls_err.h"
#include "mtls_secret.h"

struct p11_module;
struct p11_token;
struct p11_key;

enum p11_key_type {
	P11_KEY_EC = 1,
	P11_KEY_RSA = 2,
};

enum p11_sign_mech {
	P11_SIGN_ECDSA,    /* in: the hash; out: raw r||s */
	P11_SIGN_RSA_PKCS, /* in: DER DigestInfo; out: PKCS#1 v1.5 signature */
	P11_SIGN_RSA_PSS,  /* in: the hash; salt length = hash length */
};

enum p11_hash {
	P11_HASH_SHA256,
	P11_HASH_SHA384,
	P11_HASH_SHA512,
};

#define P11_ID_MAX 64
#define P11_LABEL_MAX 128
#define P11_SIG_MAX 1024   /* RSA-8192 */
#define P11_CERT_MAX 16384 /* one DER certificate */

/* Public half of a key, in the token's encodings. */
struct p11_pubkey {
	enum p11_key_type type;
	unsigned bits;
	uint8_t ec_params[16]; /* DER OID of the named curve */
	size_t ec_params_len;
	uint8_t ec_point[133]; /* uncompressed point 04||X||Y, up to P-521 */
	size_t ec_point_len;
	uint8_t modulus[1024];
	size_t modulus_len;
	uint8_t exponent[8];
	size_t exponent_len;
};

struct p11_key_flags {
	int token, private_, sensitive, extractable, always_sensitive,
		never_extractable, sign;
	int decrypt; /* -1: the token does not say */
	/* What the token answered when asked for the secret value
	 * (CKA_VALUE / CKA_PRIVATE_EXPONENT): CKR_ATTRIBUTE_SENSITIVE for a
	 * key that stays on the token. */
	const char *secret_read_rv;
};

struct p11_token_status {
	int present;       /* token found in a slot */
	int logged_in;
	/* The last PIN was refused, or was not tried because the token
	 * refused it before (in this process or, for a PIN file, earlier). */
	int pin_refused;
	/* The token's retry counter flags (CKF_USER_PIN_COUNT_LOW, _FINAL_TRY,
	 * _LOCKED), read from the token now. */
	int pin_count_low, pin_final_try, pin_locked;
	int so_configured; /* an SO credential source is set */
	unsigned long slot_id;
	char label[33], serial[17], model[17], manufacturer[33];
	unsigned sessions_open, sessions_idle;
};

/* Name of a CK_RV, e.g. "CKR_PIN_INCORRECT"; "CKR_0x..." for unknown ones. */
const char *p11_rv_name(unsigned long rv);

/* name_or_path: a p11-kit module name ("softhsm2") or a path to a .so. */
/* Whether text is a pkcs11: URI this layer takes (RFC 7512, through
 * p11-kit, with no attribute or value p11-kit did not recognise). */
mtls_err_t p11_uri_check(const char *text, struct mtls_error *err);

/* An initialised token as its module shows it. */
struct p11_token_info {
	char module[256]; /* the registered name, or the path given */
	char label[33], serial[17], model[17], manufacturer[33];
	int login_required;
};

/* The initialised tokens of one module (name or path), or of every module
 * p11-kit has registered (NULL); at most cap, *n found. */
mtls_err_t p11_tokens_list(const char *module, struct p11_token_info *out,
			   size_t cap, size_t *n, struct mtls_error *err);

mtls_err_t p11_module_open(const char *name_or_path, struct p11_module **out,
			   struct mtls_error *err);
void p11_module_close(struct p11_module *m);

/* uri selects the token (token, serial, model, manufacturer, slot-id).
 * pin_source: "file:PATH" (must not be group/world accessible),
 * "credential:NAME" ($CREDENTIALS_DIRECTORY/NAME), "env:VAR" (tests), or
 * NULL to use the URI's pin-source / pin-value. The token is looked up now;
 * an absent token is not an error here (it may be inserted later), a
 * malformed URI or PIN source is. */
mtls_err_t p11_token_open(struct p11_module *m, const char *uri,
			  const char *pin_source, unsigned max_sessions,
			  struct p11_token **out, struct mtls_error *err);
void p11_token_close(struct p11_token *t);
const char *p11_token_uri(const struct p11_token *t);
void p11_token_status(struct p11_token *t, struct p11_token_status *st);
/* The security officer's credential (PIV: the management key, in hex),
 * read from its source only when key generation or object writes need it:
 * file:, credential:, env:, with the PIN's rules. NULL: none, those
 * operations run as the user (SoftHSM, TPM). */
mtls_err_t p11_token_set_so_source(struct p11_token *t, const char *source,
				   struct mtls_error *err);

/* Where refusals of PINs read from files are kept across restarts (the
 * agent's state folder); NULL or "" keeps them in memory only. */
void p11_pin_refusals_file(const char *path);

/* What happened to a token's PIN, for the log: called from the thread that
 * saw it (with the token's lock held: the observer must not call back into
 * pkcs11/). */
enum p11_pin_event {
	P11_PIN_EVENT_OK,	 /* the counter is back to its full value */
	P11_PIN_EVENT_REFUSED,	 /* C_Login said CKR_PIN_INCORRECT */
	P11_PIN_EVENT_COUNT_LOW, /* CKF_USER_PIN_COUNT_LOW */
	P11_PIN_EVENT_FINAL_TRY, /* CKF_USER_PIN_FINAL_TRY */
	P11_PIN_EVENT_LOCKED,	 /* CKF_USER_PIN_LOCKED */
};
typedef void (*p11_pin_observer)(const char *token_uri,
				 enum p11_pin_event ev);
void p11_set_pin_observer(p11_pin_observer fn);

/* Log in now (at start-up) so that a wrong PIN shows before traffic.
 * A PIN the token refused is never sent again in this process, nor after
 * a restart when it came from an unchanged PIN file (only a different one
 * is), the last try (CKF_USER_PIN_FINAL_TRY) is left to a
 * person (mtlsctl unlock), and a locked PIN is not tried. */
mtls_err_t p11_token_login(struct p11_token *t, struct mtls_error *err);
/* A PIN handed over at run time (mtlsctl unlock): kept locked in memory,
 * used instead of the PIN source, tried now. */
mtls_err_t p11_token_unlock(struct p11_token *t, const struct mtls_secret *pin,
			    struct mtls_error *err);
/* Logs out, closes the sessions and forgets a PIN given by unlock. */
void p11_token_lock(struct p11_token *t);
/* For a PIN only a person gives (pinentry, as a smartcard user expects):
 * when the token is seen gone (pulled out, another card in its slot, a
 * reset that lost the login, its module re-initialised), the PIN given
 * with p11_token_unlock is forgotten and fn(ctx) called, with the token's
 * lock held (fn must not call into pkcs11/). The token then waits for a
 * person again. */
void p11_token_forget_pin_on_removal(struct p11_token *t,
				     void (*fn)(void *ctx), void *ctx);
/* Asks the module now whether the token is in its slot (the same token:
 * serial and label), or looks for it when it was gone: for watching a
 * token nobody is using. 1 if present; *removals counts the times it was
 * seen gone since p11_token_open, by this call or by any failing one. */
int p11_token_probe(struct p11_token *t, unsigned long *removals);

/* Every CK_RV failure seen, counted by name (for metrics). fn is called for
 * each non-zero count. */
void p11_rv_counts(void (*fn)(const char *name, unsigned long count, void *ctx),
		   void *ctx);

/* Re-initialisations (C_Finalize + C_Initialize) of modules that stopped
 * answering while their tokens were absent (p11-kit-client whose server
 * went away, ykcs11 after pcscd restarted): how many succeeded and how
 * many failed, since start (for metrics). */
void p11_module_reinits(unsigned long *ok, unsigned long *failed);

/* Reads a secret from a source with the PIN rules: "file:PATH" (owner
 * only), "credential:NAME", "env:VAR"; a bare absolute path is a file. */
mtls_err_t p11_pin_source_read(const char *source, struct mtls_secret *out,
			       struct mtls_error *err);

/* Finds the private key the URI names (object, id; type must be private if
 * given). The key must exist now. */
mtls_err_t p11_key_open(struct p11_token *t, const char *uri,
			struct p11_key **out, struct mtls_error *err);
void p11_key_close(struct p11_key *k);
enum p11_key_type p11_key_type(const struct p11_key *k);
unsigned p11_key_bits(const struct p11_key *k);
const char *p11_key_uri(const struct p11_key *k);
/* CKA_ALWAYS_AUTHENTICATE: each signature logs in again
 * (CKU_CONTEXT_SPECIFIC) with the token's PIN. */
int p11_key_always_authenticate(const struct p11_key *k);
/* The token's CKA_ID of the key. */
size_t p11_key_id(const struct p11_key *k, uint8_t id[P11_ID_MAX]);

mtls_err_t p11_key_sign(struct p11_key *k, enum p11_sign_mech mech,
			enum p11_hash hash, const uint8_t *in, size_t in_len,
			uint8_t *sig, size_t *sig_len, struct mtls_error *err);
mtls_err_t p11_key_public(struct p11_key *k, struct p11_pubkey *pub,
			  struct mtls_error *err);
mtls_err_t p11_key_flags(struct p11_key *k, struct p11_key_flags *f,
			 struct mtls_error *err);

/* What the token says it can do (C_GetMechanismList, C_GetMechanismInfo
 * on its slot), read when first asked and again after the token was reset
 * (removed and found again: it may be another card under the same URI). */
struct p11_mech {
	unsigned long type;             /* CKM_ value */
	unsigned long min_key, max_key; /* ulMin/MaxKeySize, as given */
	unsigned long flags;            /* CKF_SIGN, CKF_VERIFY, ... */
	unsigned long info_rv;          /* C_GetMechanismInfo's CK_RV (0: ok) */
};

/* Can the token sign with each of enum p11_sign_mech for this key? A
 * mechanism counts when the token lists it, C_GetMechanismInfo gives it
 * CKF_SIGN and the key's size is within its range; where the list says
 * no, when C_SignInit with the key accepts it all the same (a session is
 * closed for that; nothing is signed). listed == 0: the token gives no
 * mechanism list (C_GetMechanismList failed: list_rv); then every
 * mechanism of the key's type is assumed, as before the list was read. */
struct p11_sign_caps {
	unsigned can;   /* bit 1u << P11_SIGN_x */
	int listed;
	unsigned long list_rv;
	/* per enum p11_sign_mech: why not, or why despite the list; "" */
	char why[3][160];
};
mtls_err_t p11_key_sign_caps(struct p11_key *k, struct p11_sign_caps *caps,
			     struct mtls_error *err);
/* "CKM_ECDSA", "CKM_RSA_PKCS", "CKM_RSA_PKCS_PSS". */
const char *p11_sign_mech_name(enum p11_sign_mech mech);

/* The token's mechanisms, in the token's order: *n is how many it has, at
 * most max are copied into out. */
mtls_err_t p11_token_mechanisms(struct p11_token *t, struct p11_mech *out,
				size_t max, size_t *n, struct mtls_error *err);
/* Name of a CKM_ value, e.g. "CKM_RSA_PKCS_PSS"; "CKM_0x..." for unknown
 * ones (then in a per-thread buffer, valid until the next call). */
const char *p11_mech_name(unsigned long type);
/* The CKF_ flags of a mechanism as words: "sign verify encrypt ...". */
void p11_mech_flags_text(unsigned long flags, char *buf, size_t len);

/* Generates a key pair on the token: CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE
 * true, CKA_EXTRACTABLE false. bits: 256/384 for EC, 2048.. for RSA.
 * id may be NULL: a random 8-byte CKA_ID is chosen and returned in id_out. */
mtls_err_t p11_keygen(struct p11_token *t, enum p11_key_type type,
		      unsigned bits, const char *label, const uint8_t *id,
		      size_t id_len, uint8_t id_out[P11_ID_MAX],
		      size_t *id_out_len, struct mtls_error *err);

/* Reads every certificate the URI names (at most max, P11_CERTS_MAX):
 * a PIV card shows its attestation certificates under the key's CKA_ID
 * beside the key's own. der[i] are malloc'd. */
#define P11_CERTS_MAX 8
mtls_err_t p11_certs_read(struct p11_token *t, const char *uri,
			  uint8_t **der, size_t *der_len, unsigned max,
			  unsigned *n, struct mtls_error *err);
/* Stores a certificate object (CKC_X_509) beside the key with this id;
 * its label is the object= of label_uri (a pkcs11: URI) when given. */
mtls_err_t p11_cert_store(struct p11_token *t, const uint8_t *der,
			  size_t der_len, const uint8_t *subject,
			  size_t subject_len, const char *label_uri,
			  const uint8_t *id, size_t id_len,
			  struct mtls_error *err);

/* Destroys every object (private key, public key, certificate) with this
 * CKA_ID; returns how many through *n. Used to retire an old generation
 * and to abandon a half-made one. */
mtls_err_t p11_objects_destroy(struct p11_token *t, const uint8_t *id,
			       size_t id_len, unsigned *n,
			       struct mtls_error *err);

#endif
