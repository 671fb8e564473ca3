/* Shared between the files of pkcs11/ only. */
#ifndef MTLS_P11_INTERNAL_H
#define MTLS_P11_INTERNAL_H

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>
#include <p11-kit/uri.h>
#include <pthread.h>

#include "mtls_secret.h"
#include "p11.h"

#define P11_URI_MAX 1024
#define P11_POOL_MAX 32

struct p11_module {
	CK_FUNCTION_LIST *fn;
	char name[256];
};

struct p11_token {
	struct p11_module *m;
	char uri[P11_URI_MAX];
	P11KitUri *kuri;
	char pin_source[P11_URI_MAX]; /* empty: from the URI */

	pthread_mutex_t lock;
	pthread_cond_t idle_cv;
	int present;
	CK_SLOT_ID slot;
	CK_TOKEN_INFO info;
	int logged_in;
	int login_blocked;
	/* Bumped whenever sessions are dropped: cached handles of an older
	 * generation are stale and must be found again. */
	unsigned long generation;
	CK_SESSION_HANDLE idle[P11_POOL_MAX];
	unsigned n_idle;
	unsigned n_open;
	unsigned max_sessions;
	struct mtls_secret *unlocked_pin; /* from p11_token_unlock, or NULL */
};

struct p11_key {
	struct p11_token *t;
	char uri[P11_URI_MAX];
	P11KitUri *kuri;
	enum p11_key_type type;
	unsigned bits;
	uint8_t id[P11_ID_MAX];
	size_t id_len;

	pthread_mutex_t lock;
	CK_OBJECT_HANDLE handle;
	unsigned long handle_gen;
};

/* A session borrowed from the token's pool. */
struct p11_session {
	CK_SESSION_HANDLE h;
	unsigned long gen;
};

/* True for CK_RVs that mean the token or its sessions are gone. */
int p11_rv_token_lost(CK_RV rv);
/* Counts a failure for p11_rv_counts. */
void p11_rv_count(CK_RV rv);
/* Maps a CK_RV to the project's error, with "<what>: CKR_X (uri)" detail. */
mtls_err_t p11_rv_error(struct mtls_error *err, CK_RV rv, const char *what,
			const char *uri);

mtls_err_t p11_session_get(struct p11_token *t, struct p11_session *s,
			   struct mtls_error *err);
/* rv: the last result on the session. A session whose token was lost is
 * closed and the pool reset; otherwise it goes back to the pool. */
void p11_session_put(struct p11_token *t, struct p11_session *s, CK_RV rv);

/* Reads the PIN from the token's source into pin. */
mtls_err_t p11_pin_read(const struct p11_token *t, struct mtls_secret *pin,
			struct mtls_error *err);
mtls_err_t p11_pin_from_source(const char *source, struct mtls_secret *pin,
			       struct mtls_error *err);

/* Finds exactly one object of class cls matching the URI's attributes. */
mtls_err_t p11_find_one(struct p11_token *t, CK_SESSION_HANDLE s,
			P11KitUri *uri, const char *uri_text,
			CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE *out,
			struct mtls_error *err);

mtls_err_t p11_uri_parse(const char *text, P11KitUri **out,
			 struct mtls_error *err);
/* Copies a URI for display with its pin-value replaced by "***". */
void p11_uri_redact(const char *in, char *out, size_t len);

#endif
