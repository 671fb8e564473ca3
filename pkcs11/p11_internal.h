/* Shared between the files of pkcs11/ only. */
#ifndef MTLS_P11_INTERNAL_H
#define MTLS_P11_INTERNAL_H

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>
#include <p11-kit/uri.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "mtls_secret.h"
#include "p11.h"

#define P11_URI_MAX 1024
#define P11_POOL_MAX 32
#define P11_MECH_MAX 256 /* mechanisms kept for display; SoftHSM has ~70 */

/* A token's mechanisms as read at generation gen (mech.c; under the
 * token's lock). The three signature mechanisms are kept apart, so that
 * a token listing more than P11_MECH_MAX still answers for them. */
struct p11_mech_cache {
	int loaded;
	unsigned long gen;
	CK_RV list_rv;   /* of C_GetMechanismList; not CKR_OK: no list */
	size_t n;        /* how many the token has */
	struct p11_mech list[P11_MECH_MAX];
	struct p11_mech sign[3]; /* per enum p11_sign_mech... */
	int sign_listed[3];      /* ...when the token lists it */
};

struct p11_module {
	CK_FUNCTION_LIST *fn;
	char name[256];
	/* tpm2-pkcs11 makes RSA signatures with TPM2_RSA_Decrypt: its RSA
	 * keys must keep CKA_DECRYPT (C_GetInfo's manufacturerID says). */
	int rsa_signs_by_decrypt;

	/* Held shared by every user of fn (a borrowed session, a token
	 * lookup, a logout), exclusively by a re-initialisation: PKCS#11
	 * leaves C_Finalize undefined while other threads are in calls. */
	pthread_rwlock_t use;
	/* Bumped by each C_Finalize + C_Initialize: every session handle
	 * and login from an older epoch is gone (and its numbers may be
	 * handed out again by the new instance). */
	_Atomic unsigned long epoch;
	/* A module-broken CK_RV was seen in the lookup path and no session
	 * has worked since: the token lookup re-initialises the module. */
	_Atomic int suspect;

	pthread_mutex_t lock; /* the fields below */
	pthread_cond_t reinit_cv; /* signalled when reinit_running ends */
	int reinit_running;
	CK_RV suspect_rv;
	int initialized;  /* the last C_Initialize succeeded */
	uint64_t next_reinit_ms; /* monotonic; 0: due now */
	unsigned backoff_ms;
	unsigned attempts; /* re-initialisations since the last working session */

	/* One per module file in the process (module.c's list, under its
	 * lock): every token and runtime on the module shares it. */
	char *file;
	unsigned refs;
	struct p11_module *next;
};

struct p11_token {
	struct p11_module *m;
	char uri[P11_URI_MAX];
	P11KitUri *kuri;
	char pin_source[P11_URI_MAX]; /* empty: from the URI */
	char so_source[P11_URI_MAX];  /* SO credential; empty: none */

	pthread_mutex_t lock;
	pthread_cond_t idle_cv;
	int present;
	CK_SLOT_ID slot;
	CK_TOKEN_INFO info;
	char pin_key[160]; /* the physical token, for the refused-PIN memory */
	CK_FLAGS pin_flags_seen; /* CKF_USER_PIN_* last reported */
	int logged_in;
	int login_blocked; /* the last PIN was refused or not tried (refused
			    * before): status's pin_refused */
	int so_busy;	   /* an SO operation owns the token's login */
	/* Bumped whenever sessions are dropped: cached handles of an older
	 * generation are stale and must be found again. */
	unsigned long generation;
	CK_SESSION_HANDLE idle[P11_POOL_MAX];
	unsigned n_idle;
	unsigned n_open;
	unsigned max_sessions;
	struct mtls_secret *unlocked_pin; /* from p11_token_unlock, or NULL */
	/* p11_token_forget_pin_on_removal: a PIN a person gave is dropped,
	 * and on_removal(removal_ctx) told, when the token is seen gone. */
	int forget_on_removal;
	void (*on_removal)(void *ctx);
	void *removal_ctx;
	unsigned long removals; /* times seen gone while present */
	/* mech.c's; zeroed by p11_token_open's calloc, nothing to free */
	struct p11_mech_cache mech;
	unsigned long mod_epoch; /* m->epoch the pool's sessions belong to */
};

struct p11_key {
	struct p11_token *t;
	char uri[P11_URI_MAX];
	P11KitUri *kuri;
	enum p11_key_type type;
	unsigned bits;
	uint8_t id[P11_ID_MAX];
	size_t id_len;

	int always_auth; /* CKA_ALWAYS_AUTHENTICATE: a PIN per signature */

	pthread_mutex_t lock;
	CK_OBJECT_HANDLE handle;
	unsigned long handle_gen;
};

/* A session borrowed from the token's pool. */
struct p11_session {
	CK_SESSION_HANDLE h;
	unsigned long gen;
};

/* The module as a whole (not one token): see module.c.
 * Lock order: a module's `use` lock before a token's lock; nothing of
 * pkcs11/ is held while calling p11_module_reinit. */
void p11_module_enter(struct p11_module *m);
void p11_module_leave(struct p11_module *m);
unsigned long p11_module_epoch(struct p11_module *m);
/* True for CK_RVs that say the module itself stopped working. */
int p11_rv_module_broken(CK_RV rv);
/* A lookup-path call (C_GetSlotList, C_GetTokenInfo, C_OpenSession)
 * answered rv; marks the module suspect if rv says it is broken. */
void p11_module_note(struct p11_module *m, CK_RV rv);
/* A session was obtained: the module works. */
void p11_module_ok(struct p11_module *m);
/* Re-initialises a suspect module when its backoff allows. seen: the
 * epoch the caller's failed lookup ran under. Returns 1 when the module
 * was re-initialised since (by this call or another thread: the caller
 * looks its token up again), 0 when it was not, -1 when this call's
 * C_Initialize failed (err says so, MTLS_ERR_TOKEN_ABSENT). */
int p11_module_reinit(struct p11_module *m, unsigned long seen,
		      const char *uri, struct mtls_error *err);

/* True for CK_RVs that mean the token or its sessions are gone. */
int p11_rv_token_lost(CK_RV rv);
/* Counts a failure for p11_rv_counts. */
void p11_rv_count(CK_RV rv);
/* Maps a CK_RV to the project's error, with "<what>: CKR_X (uri)" detail. */
mtls_err_t p11_rv_error(struct mtls_error *err, CK_RV rv, const char *what,
			const char *uri);

/* Never while this thread holds another session of the same module: the
 * module's use lock is held from here to p11_session_put. */
mtls_err_t p11_session_get(struct p11_token *t, struct p11_session *s,
			   struct mtls_error *err);
/* rv: the last result on the session. A session whose token was lost is
 * closed and the pool reset; otherwise it goes back to the pool. */
void p11_session_put(struct p11_token *t, struct p11_session *s, CK_RV rv);

/* Runs fn on a session logged in as the security officer with the token's
 * SO credential (so_pin_source; PIV: the management key). Every user
 * operation waits meanwhile: PKCS#11 login state is per application, so
 * the user is logged out first and logged in again by the next operation.
 * Without an SO credential fn runs on an ordinary user session. */
mtls_err_t p11_token_as_so(struct p11_token *t,
			   CK_RV (*fn)(struct p11_token *t, CK_SESSION_HANDLE s,
				       void *ctx),
			   void *ctx, const char *what, struct mtls_error *err);
/* C_Login(CKU_CONTEXT_SPECIFIC) on s, after C_SignInit with a key that
 * has CKA_ALWAYS_AUTHENTICATE, with the token's PIN. */
mtls_err_t p11_context_login(struct p11_token *t, CK_SESSION_HANDLE s,
			     struct mtls_error *err);
/* True when the token is listed in a slot now (asks the module). */
int p11_token_listed(struct p11_token *t);
/* A CK_TOKEN_INFO text field (blank-padded, not terminated) as a string
 * of at most cap - 1 bytes. */
void p11_info_text(char *out, size_t cap, const CK_UTF8CHAR *in, size_t n);

/* Where a PIN came from: a person (mtlsctl unlock), or which version of
 * which file (empty file: neither, e.g. env: or the URI). */
struct p11_pin_origin {
	int person;
	char file[1024];
	unsigned long long dev, ino;
	long long size, mtime_ns, ctime_ns;
};

/* Reads the PIN from the token's source into pin. */
mtls_err_t p11_pin_read(const struct p11_token *t, struct mtls_secret *pin,
			struct p11_pin_origin *origin, struct mtls_error *err);
/* The refusals that survive a restart (p11_pin_refusals_file). */
void p11_pin_refusal_record(const char *key, const struct p11_pin_origin *o);
void p11_pin_refusal_clear(const char *key);
int p11_pin_refusal_known(const char *key, const struct p11_pin_origin *o);

/* PINs a token refused, remembered for the life of the process (across
 * reloads, which open the token anew) so that the same wrong PIN is never
 * tried twice: only a different PIN is. key names the physical token. */
int p11_pin_was_refused(const char *key, const struct mtls_secret *pin);
void p11_pin_refused(const char *key, const struct mtls_secret *pin);
void p11_pin_accepted(const char *key);
mtls_err_t p11_pin_from_source(const char *source, struct mtls_secret *pin,
			       struct mtls_error *err);

/* Finds up to max objects of class cls matching the URI's attributes; at
 * least one, or an error. */
mtls_err_t p11_find_all(struct p11_token *t, CK_SESSION_HANDLE s,
			P11KitUri *uri, const char *uri_text,
			CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE *out,
			CK_ULONG max, CK_ULONG *n_found,
			struct mtls_error *err);
/* Finds exactly one object of class cls matching the URI's attributes. */
mtls_err_t p11_find_one(struct p11_token *t, CK_SESSION_HANDLE s,
			P11KitUri *uri, const char *uri_text,
			CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE *out,
			struct mtls_error *err);

mtls_err_t p11_uri_parse(const char *text, P11KitUri **out,
			 struct mtls_error *err);
/* Asks the token whether it would sign with mechanism type and key k:
 * *rv is C_SignInit's answer, after which the session is closed (nothing
 * is signed). An error when the question could not be asked (no session,
 * key not found, token lost). */
mtls_err_t p11_key_sign_init_probe(struct p11_key *k, CK_MECHANISM_TYPE type,
				   CK_RV *rv, struct mtls_error *err);

/* Does a key of type and bits fit a mechanism's ulMinKeySize..
 * ulMaxKeySize? (Units: see mech.c.) */
int p11_mech_key_size_ok(enum p11_key_type type, unsigned bits,
			 unsigned long min, unsigned long max);

/* Copies a URI for display with its pin-value replaced by "***". */
void p11_uri_redact(const char *in, char *out, size_t len);

#endif
