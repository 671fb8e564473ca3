/* Tokens: slot lookup by URI, login, and the session pool.
 *
 * Login state is per application and token in PKCS#11, so one C_Login serves
 * every session. When the token goes away (CKR_DEVICE_REMOVED,
 * CKR_TOKEN_NOT_PRESENT, CKR_SESSION_HANDLE_INVALID, ...) the pool is dropped
 * and the generation bumped; the next operation looks the token up again,
 * which is how the agent recovers by itself when the token returns. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "p11_internal.h"

/* How long a signer waits for a pooled session before giving up. */
#define POOL_WAIT_SEC 30

int p11_rv_token_lost(CK_RV rv)
{
	switch (rv) {
	case CKR_DEVICE_REMOVED:
	case CKR_TOKEN_NOT_PRESENT:
	case CKR_TOKEN_NOT_RECOGNIZED:
	case CKR_SESSION_HANDLE_INVALID:
	case CKR_SESSION_CLOSED:
	case CKR_DEVICE_ERROR:
	case CKR_USER_NOT_LOGGED_IN:
	case CKR_CRYPTOKI_NOT_INITIALIZED:
	case CKR_SLOT_ID_INVALID:
		return 1;
	default:
		return 0;
	}
}

mtls_err_t p11_rv_error(struct mtls_error *err, CK_RV rv, const char *what,
			const char *uri)
{
	mtls_err_t code;

	p11_rv_count(rv);
	switch (rv) {
	case CKR_DEVICE_REMOVED:
	case CKR_TOKEN_NOT_PRESENT:
	case CKR_TOKEN_NOT_RECOGNIZED:
	case CKR_SLOT_ID_INVALID:
		code = MTLS_ERR_TOKEN_ABSENT;
		break;
	case CKR_PIN_INCORRECT:
	case CKR_PIN_INVALID:
	case CKR_PIN_LEN_RANGE:
		code = MTLS_ERR_PIN_INCORRECT;
		break;
	case CKR_PIN_LOCKED:
	case CKR_PIN_EXPIRED:
		code = MTLS_ERR_PIN_LOCKED;
		break;
	case CKR_MECHANISM_INVALID:
	case CKR_MECHANISM_PARAM_INVALID:
	case CKR_KEY_TYPE_INCONSISTENT:
	case CKR_KEY_FUNCTION_NOT_PERMITTED:
		code = MTLS_ERR_MECHANISM;
		break;
	case CKR_HOST_MEMORY:
		code = MTLS_ERR_NOMEM;
		break;
	default:
		code = MTLS_ERR_TOKEN;
		break;
	}
	return mtls_error_set(err, code, "%s: %s (%s)", what, p11_rv_name(rv),
			      uri);
}

void p11_info_text(char *out, size_t cap, const CK_UTF8CHAR *in, size_t n)
{
	/* PKCS#11 pads these fields with spaces and does not terminate
	 * them (some modules pad with NULs). */
	while (n > 0 && (in[n - 1] == ' ' || in[n - 1] == '\0'))
		n--;
	if (n >= cap)
		n = cap - 1;
	memcpy(out, in, n);
	out[n] = '\0';
}

/* Finds the slot holding the token; lock held. */
static mtls_err_t token_locate(struct p11_token *t, struct mtls_error *err)
{
	CK_SLOT_ID slots[64], want_slot, found = 0;
	CK_ULONG n = sizeof(slots) / sizeof(slots[0]);
	CK_TOKEN_INFO info, found_info;
	unsigned matches = 0;
	CK_RV rv;

	rv = t->m->fn->C_GetSlotList(CK_TRUE, slots, &n);
	if (rv != CKR_OK && p11_rv_module_broken(rv)) {
		/* No slot can be asked for its token: absent, for whoever
		 * waits on it; the module is re-initialised (module.c). */
		p11_module_note(t->m, rv);
		p11_rv_count(rv);
		return mtls_error_set(err, MTLS_ERR_TOKEN_ABSENT,
				      "C_GetSlotList: %s: the module lists "
				      "no token (%s)", p11_rv_name(rv), t->uri);
	}
	if (rv != CKR_OK)
		return p11_rv_error(err, rv, "C_GetSlotList", t->uri);
	want_slot = p11_kit_uri_get_slot_id(t->kuri);
	for (CK_ULONG i = 0; i < n; i++) {
		if (want_slot != (CK_SLOT_ID)-1 && slots[i] != want_slot)
			continue;
		rv = t->m->fn->C_GetTokenInfo(slots[i], &info);
		if (rv != CKR_OK) {
			p11_module_note(t->m, rv);
			continue;
		}
		/* SoftHSM lists an empty, uninitialised slot: never ours. */
		if (!(info.flags & CKF_TOKEN_INITIALIZED))
			continue;
		if (!p11_kit_uri_match_token_info(t->kuri, &info))
			continue;
		if (matches++ == 0) {
			found = slots[i];
			found_info = info;
		}
	}
	if (matches == 0)
		return mtls_error_set(err, MTLS_ERR_TOKEN_ABSENT,
				      "no token matches %s", t->uri);
	if (matches > 1)
		return mtls_error_set(err, MTLS_ERR_AMBIGUOUS,
				      "%u tokens match %s; add serial= or "
				      "slot-id=", matches, t->uri);
	t->slot = found;
	t->info = found_info;
	t->present = 1;
	{
		char man[33], model[17], serial[17], label[33];

		p11_info_text(man, sizeof(man), found_info.manufacturerID,
			      sizeof(found_info.manufacturerID));
		p11_info_text(model, sizeof(model), found_info.model,
			      sizeof(found_info.model));
		p11_info_text(serial, sizeof(serial), found_info.serialNumber,
			      sizeof(found_info.serialNumber));
		p11_info_text(label, sizeof(label), found_info.label,
			      sizeof(found_info.label));
		snprintf(t->pin_key, sizeof(t->pin_key), "%s|%s|%s|%s", man,
			 model, serial, label);
	}
	return MTLS_OK;
}

/* Closes every pooled session and forgets the login; lock held. */
static void token_reset(struct p11_token *t)
{
	unsigned long epoch = p11_module_epoch(t->m);

	/* After the module was re-initialised these handles are numbers the
	 * new instance may give out again (p11-kit-client starts at 17
	 * each time): forget them, never close them. */
	for (unsigned i = 0; i < t->n_idle && t->mod_epoch == epoch; i++)
		(void)t->m->fn->C_CloseSession(t->idle[i]);
	t->mod_epoch = epoch;
	t->n_open -= t->n_idle;
	t->n_idle = 0;
	t->present = 0;
	t->logged_in = 0;
	t->generation++;
	pthread_cond_broadcast(&t->idle_cv);
}

/* The token was seen gone (removed, reset, its module re-initialised):
 * the pool goes, and a PIN a person gave for it goes too where asked for,
 * so that a token inserted again waits for that person; lock held. */
static void token_lost(struct p11_token *t)
{
	int was_present = t->present;

	token_reset(t);
	if (!was_present)
		return;
	t->removals++;
	if (!t->forget_on_removal)
		return;
	mtls_secret_free(t->unlocked_pin);
	t->unlocked_pin = NULL;
	if (t->on_removal != NULL)
		t->on_removal(t->removal_ctx);
}

static _Atomic(p11_pin_observer) pin_observer;

void p11_set_pin_observer(p11_pin_observer fn)
{
	atomic_store(&pin_observer, fn);
}

#define PIN_FLAGS                                                        \
	(CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED)

/* Reads the token's flags again (the retry counter lives on the token) and
 * reports a change of the PIN counter flags; lock held. The observer only
 * logs, so calling it under the lock is safe. */
static void token_flags_refresh(struct p11_token *t)
{
	p11_pin_observer fn = atomic_load(&pin_observer);
	CK_TOKEN_INFO info;
	CK_FLAGS now;

	if (!t->present || t->m->fn->C_GetTokenInfo(t->slot, &info) != CKR_OK)
		return;
	t->info.flags = info.flags;
	now = info.flags & PIN_FLAGS;
	if (now == t->pin_flags_seen)
		return;
	t->pin_flags_seen = now;
	if (fn == NULL)
		return;
	if (now & CKF_USER_PIN_LOCKED)
		fn(t->uri, P11_PIN_EVENT_LOCKED);
	else if (now & CKF_USER_PIN_FINAL_TRY)
		fn(t->uri, P11_PIN_EVENT_FINAL_TRY);
	else if (now & CKF_USER_PIN_COUNT_LOW)
		fn(t->uri, P11_PIN_EVENT_COUNT_LOW);
	else
		fn(t->uri, P11_PIN_EVENT_OK);
}

/* The PIN for C_Login(type) now, or why none may be tried; lock held.
 * This is the one place that decides whether a PIN reaches the token:
 * never one it refused before (a reload or a handshake does not count as
 * a new PIN), never the last try unless a person handed the PIN over
 * (mtlsctl unlock), never on a locked PIN. */
static mtls_err_t token_pin_for_login(struct p11_token *t,
				      struct mtls_secret *pin,
				      struct p11_pin_origin *origin,
				      struct mtls_error *err)
{
	mtls_err_t r;

	token_flags_refresh(t);
	r = p11_pin_read(t, pin, origin, err);
	if (r != MTLS_OK)
		return r;
	if (p11_pin_was_refused(t->pin_key, pin) ||
	    p11_pin_refusal_known(t->pin_key, origin)) {
		t->login_blocked = 1;
		return mtls_error_set(err, MTLS_ERR_PIN_INCORRECT,
				      "the token refused this PIN before; "
				      "not trying it again: give a new PIN "
				      "(PIN source or mtlsctl unlock) (%s)",
				      t->uri);
	}
	/* A person may try even so: the counter may have been reset by the
	 * PUK meanwhile, which some modules (ykcs11) only notice at a login;
	 * a locked PIN stays locked, whatever is tried. */
	if (origin->person)
		return MTLS_OK;
	if (t->info.flags & CKF_USER_PIN_LOCKED)
		return mtls_error_set(err, MTLS_ERR_PIN_LOCKED,
				      "the token reports its user PIN locked: "
				      "unblock it with the PUK or the SO "
				      "PIN, then mtlsctl unlock (%s)", t->uri);
	if (t->info.flags & CKF_USER_PIN_FINAL_TRY)
		return mtls_error_set(err, MTLS_ERR_PIN_MISSING,
				      "one PIN try left: the agent does not "
				      "spend it on its own; give the PIN "
				      "with mtlsctl unlock (%s)", t->uri);
	return MTLS_OK;
}

/* After C_Login: remember a refused PIN; lock held. */
static mtls_err_t token_login_result(struct p11_token *t,
				     const struct mtls_secret *pin,
				     const struct p11_pin_origin *origin,
				     CK_RV rv, const char *what,
				     struct mtls_error *err)
{
	p11_pin_observer fn = atomic_load(&pin_observer);
	mtls_err_t r;

	if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) {
		p11_pin_refusal_clear(t->pin_key);
		t->login_blocked = 0;
		p11_pin_accepted(t->pin_key);
		return MTLS_OK;
	}
	r = p11_rv_error(err, rv, what, t->uri);
	if (r == MTLS_ERR_PIN_INCORRECT) {
		t->login_blocked = 1;
		p11_pin_refused(t->pin_key, pin);
		p11_pin_refusal_record(t->pin_key, origin);
		if (fn != NULL)
			fn(t->uri, P11_PIN_EVENT_REFUSED);
	}
	if (r == MTLS_ERR_PIN_INCORRECT || r == MTLS_ERR_PIN_LOCKED)
		token_flags_refresh(t);
	return r;
}

/* Logs in on session s; lock held. */
static mtls_err_t token_login_locked(struct p11_token *t, CK_SESSION_HANDLE s,
				     struct mtls_error *err)
{
	struct p11_pin_origin origin;
	struct mtls_secret *pin;
	mtls_err_t r;
	CK_RV rv;

	if (t->logged_in)
		return MTLS_OK;
	pin = mtls_secret_new();
	if (pin == NULL)
		return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	r = token_pin_for_login(t, pin, &origin, err);
	if (r == MTLS_OK) {
		rv = t->m->fn->C_Login(s, CKU_USER, (CK_UTF8CHAR *)pin->buf,
				       (CK_ULONG)pin->len);
		r = token_login_result(t, pin, &origin, rv, "C_Login", err);
		if (r == MTLS_OK)
			t->logged_in = 1;
	}
	mtls_secret_free(pin);
	return r;
}

mtls_err_t p11_context_login(struct p11_token *t, CK_SESSION_HANDLE s,
			     struct mtls_error *err)
{
	struct mtls_secret *pin = mtls_secret_new();
	struct p11_pin_origin origin;
	mtls_err_t r;
	CK_RV rv;

	if (pin == NULL)
		return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	pthread_mutex_lock(&t->lock);
	r = token_pin_for_login(t, pin, &origin, err);
	if (r == MTLS_OK) {
		rv = t->m->fn->C_Login(s, CKU_CONTEXT_SPECIFIC,
				       (CK_UTF8CHAR *)pin->buf,
				       (CK_ULONG)pin->len);
		r = token_login_result(t, pin, &origin, rv,
				       "C_Login(CKU_CONTEXT_SPECIFIC)", err);
	}
	pthread_mutex_unlock(&t->lock);
	mtls_secret_free(pin);
	return r;
}

mtls_err_t p11_token_open(struct p11_module *m, const char *uri,
			  const char *pin_source, unsigned max_sessions,
			  struct p11_token **out, struct mtls_error *err)
{
	struct p11_token *t;
	struct mtls_error ignored;
	mtls_err_t r;

	*out = NULL;
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	r = p11_uri_parse(uri, &t->kuri, err);
	if (r != MTLS_OK) {
		free(t);
		return r;
	}
	p11_uri_redact(uri, t->uri, sizeof(t->uri));
	if (pin_source != NULL)
		snprintf(t->pin_source, sizeof(t->pin_source), "%s",
			 pin_source);
	t->m = m;
	t->mod_epoch = p11_module_epoch(m);
	t->max_sessions = max_sessions == 0 ? 4 : max_sessions;
	if (t->max_sessions > P11_POOL_MAX)
		t->max_sessions = P11_POOL_MAX;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->idle_cv, NULL);
	/* Absent now is fine: it is looked up again on first use. */
	p11_module_enter(m);
	pthread_mutex_lock(&t->lock);
	r = token_locate(t, &ignored);
	pthread_mutex_unlock(&t->lock);
	p11_module_leave(m);
	if (r == MTLS_ERR_AMBIGUOUS) {
		*err = ignored;
		p11_token_close(t);
		return r;
	}
	*out = t;
	return MTLS_OK;
}

void p11_token_close(struct p11_token *t)
{
	if (t == NULL)
		return;
	p11_module_enter(t->m);
	pthread_mutex_lock(&t->lock);
	token_reset(t);
	pthread_mutex_unlock(&t->lock);
	p11_module_leave(t->m);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->idle_cv);
	p11_kit_uri_free(t->kuri);
	mtls_secret_free(t->unlocked_pin);
	free(t);
}

mtls_err_t p11_token_unlock(struct p11_token *t, const struct mtls_secret *pin,
			    struct mtls_error *err)
{
	pthread_mutex_lock(&t->lock);
	if (t->unlocked_pin == NULL)
		t->unlocked_pin = mtls_secret_new();
	if (t->unlocked_pin == NULL ||
	    mtls_secret_set(t->unlocked_pin, pin->buf, pin->len) != 0) {
		pthread_mutex_unlock(&t->lock);
		return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	}
	t->login_blocked = 0;
	pthread_mutex_unlock(&t->lock);
	return p11_token_login(t, err);
}

void p11_token_lock(struct p11_token *t)
{
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;

	p11_module_enter(t->m);
	pthread_mutex_lock(&t->lock);
	if (t->n_idle > 0 && t->mod_epoch == p11_module_epoch(t->m))
		s = t->idle[0];
	if (s != CK_INVALID_HANDLE && t->logged_in)
		(void)t->m->fn->C_Logout(s);
	token_reset(t);
	mtls_secret_free(t->unlocked_pin);
	t->unlocked_pin = NULL;
	pthread_mutex_unlock(&t->lock);
	p11_module_leave(t->m);
}

const char *p11_token_uri(const struct p11_token *t)
{
	return t->uri;
}

static void p11_session_put_locked(struct p11_token *t, struct p11_session *s,
				   CK_RV rv);

mtls_err_t p11_session_get(struct p11_token *t, struct p11_session *s,
			   struct mtls_error *err)
{
	struct timespec deadline;
	mtls_err_t r = MTLS_OK;
	CK_SESSION_HANDLE h;
	unsigned long epoch;
	int reinit_tried = 0;
	CK_RV rv;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += POOL_WAIT_SEC;
again:
	/* Held until p11_session_put: the session stays valid while out. */
	p11_module_enter(t->m);
	epoch = p11_module_epoch(t->m); /* fixed while entered */
	pthread_mutex_lock(&t->lock);
	if (t->mod_epoch != epoch)
		token_lost(t); /* the module was re-initialised since */
	for (;;) {
		if (t->so_busy)
			goto wait;
		if (!t->present) {
			r = token_locate(t, err);
			if (r != MTLS_OK)
				goto out;
		}
		if (t->n_idle > 0) {
			h = t->idle[--t->n_idle];
			/* Logged out meanwhile (an SO operation): log in on
			 * this session; the login holds for all of them. */
			r = token_login_locked(t, h, err);
			if (r != MTLS_OK) {
				t->idle[t->n_idle++] = h;
				goto out;
			}
			s->h = h;
			s->gen = t->generation;
			goto out;
		}
		if (t->n_open < t->max_sessions)
			break;
wait:
		if (pthread_cond_timedwait(&t->idle_cv, &t->lock, &deadline)) {
			r = mtls_error_set(err, MTLS_ERR_TIMEOUT,
					   "no free session on %s after %d s",
					   t->uri, POOL_WAIT_SEC);
			goto out;
		}
	}
	rv = t->m->fn->C_OpenSession(t->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
				     NULL, NULL, &h);
	if (rv != CKR_OK) {
		p11_module_note(t->m, rv);
		if (p11_rv_token_lost(rv))
			token_lost(t);
		r = p11_rv_error(err, rv, "C_OpenSession", t->uri);
		goto out;
	}
	t->n_open++;
	r = token_login_locked(t, h, err);
	if (r != MTLS_OK) {
		(void)t->m->fn->C_CloseSession(h);
		t->n_open--;
		goto out;
	}
	s->h = h;
	s->gen = t->generation;
out:
	pthread_mutex_unlock(&t->lock);
	if (r == MTLS_OK) {
		p11_module_ok(t->m);
		return MTLS_OK;
	}
	p11_module_leave(t->m);
	/* A broken module answers the same until it is re-initialised
	 * (module.c): once per call, when its backoff allows, re-initialise
	 * it and look again. */
	switch (reinit_tried ? 0 : p11_module_reinit(t->m, epoch, t->uri, err)) {
	case 1:
		reinit_tried = 1;
		goto again;
	case -1:
		return MTLS_ERR_TOKEN_ABSENT;
	default:
		return r;
	}
}

mtls_err_t p11_token_set_so_source(struct p11_token *t, const char *source,
				   struct mtls_error *err)
{
	if (source != NULL && strlen(source) >= sizeof(t->so_source))
		return mtls_error_set(err, MTLS_ERR_CONFIG,
				      "SO credential source too long");
	pthread_mutex_lock(&t->lock);
	snprintf(t->so_source, sizeof(t->so_source), "%s",
		 source != NULL ? source : "");
	pthread_mutex_unlock(&t->lock);
	return MTLS_OK;
}

/* A module can fail one kind of call while the rest still work: ykcs11
 * on a PIV card answers CKR_DEVICE_ERROR to every key generation after
 * the first in one C_Initialize, and signs on (virtual-piv, quirk 4).
 * Sessions and signatures keep the lookup from finding it broken, so an
 * SO operation that failed so re-initialises it, for the caller's retry.
 * Only CKR_DEVICE_ERROR: CKR_GENERAL_ERROR from an operation is also a
 * template refusal (tpm2-pkcs11's keygen). Called with nothing held;
 * EPOCH is the module's while the operation ran. */
static void op_failed(struct p11_token *t, CK_RV rv, unsigned long epoch)
{
	struct mtls_error ignored = { 0 };

	if (rv != CKR_DEVICE_ERROR)
		return;
	p11_module_note(t->m, rv);
	(void)p11_module_reinit(t->m, epoch, t->uri, &ignored);
}

mtls_err_t p11_token_as_so(struct p11_token *t,
			   CK_RV (*fn)(struct p11_token *t, CK_SESSION_HANDLE s,
				       void *ctx),
			   void *ctx, const char *what, struct mtls_error *err)
{
	struct mtls_secret *so = NULL;
	struct timespec deadline;
	struct p11_session ps;
	unsigned long epoch;
	mtls_err_t r;
	CK_RV rv;

	pthread_mutex_lock(&t->lock);
	if (t->so_source[0] == '\0') {
		pthread_mutex_unlock(&t->lock);
		r = p11_session_get(t, &ps, err);
		if (r != MTLS_OK)
			return r;
		epoch = p11_module_epoch(t->m); /* entered while ps is out */
		rv = fn(t, ps.h, ctx);
		p11_session_put(t, &ps, rv);
		op_failed(t, rv, epoch);
		if (rv == CKR_USER_TYPE_INVALID)
			return mtls_error_set(err, MTLS_ERR_TOKEN,
					      "%s: CKR_USER_TYPE_INVALID: this "
					      "token wants its security "
					      "officer for that: set "
					      "so_pin_source (%s)", what, t->uri);
		return rv == CKR_OK ? MTLS_OK :
				      p11_rv_error(err, rv, what, t->uri);
	}
	/* The module's use lock comes before the token's, and is held to
	 * the end: the SO session is out meanwhile. */
	pthread_mutex_unlock(&t->lock);
	p11_module_enter(t->m);
	epoch = p11_module_epoch(t->m); /* fixed while entered */
	pthread_mutex_lock(&t->lock);
	if (t->mod_epoch != epoch)
		token_lost(t);
	/* One SO operation at a time, and no user operation under way: the
	 * logout below would pull the login out from under it. */
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += POOL_WAIT_SEC;
	while (t->so_busy || t->n_idle != t->n_open) {
		if (pthread_cond_timedwait(&t->idle_cv, &t->lock, &deadline)) {
			pthread_mutex_unlock(&t->lock);
			p11_module_leave(t->m);
			return mtls_error_set(err, MTLS_ERR_TIMEOUT,
					      "%s: token busy for %d s (%s)",
					      what, POOL_WAIT_SEC, t->uri);
		}
	}
	t->so_busy = 1;
	r = MTLS_OK;
	if (!t->present)
		r = token_locate(t, err);
	ps.h = CK_INVALID_HANDLE;
	if (r == MTLS_OK && t->n_idle > 0) {
		ps.h = t->idle[--t->n_idle];
	} else if (r == MTLS_OK) {
		rv = t->m->fn->C_OpenSession(t->slot,
					     CKF_SERIAL_SESSION | CKF_RW_SESSION,
					     NULL, NULL, &ps.h);
		if (rv != CKR_OK) {
			if (p11_rv_token_lost(rv))
				token_lost(t);
			r = p11_rv_error(err, rv, "C_OpenSession", t->uri);
		} else {
			t->n_open++;
		}
	}
	ps.gen = t->generation;
	if (r == MTLS_OK && t->logged_in) {
		(void)t->m->fn->C_Logout(ps.h);
		t->logged_in = 0;
	}
	if (r == MTLS_OK && (so = mtls_secret_new()) == NULL)
		r = mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	if (r == MTLS_OK)
		r = p11_pin_from_source(t->so_source, so, err);
	pthread_mutex_unlock(&t->lock);

	rv = CKR_OK;
	if (r == MTLS_OK) {
		rv = t->m->fn->C_Login(ps.h, CKU_SO, (CK_UTF8CHAR *)so->buf,
				       (CK_ULONG)so->len);
		mtls_secret_free(so);
		so = NULL;
		if (rv != CKR_OK) {
			r = p11_rv_error(err, rv, "C_Login(CKU_SO)", t->uri);
		} else {
			rv = fn(t, ps.h, ctx);
			if (rv != CKR_OK)
				r = p11_rv_error(err, rv, what, t->uri);
			(void)t->m->fn->C_Logout(ps.h);
		}
	}
	mtls_secret_free(so);

	pthread_mutex_lock(&t->lock);
	t->so_busy = 0;
	if (ps.h != CK_INVALID_HANDLE)
		p11_session_put_locked(t, &ps, rv == CKR_OK ? CKR_OK : rv);
	if (t->n_open == 0)
		t->logged_in = 0;
	pthread_cond_broadcast(&t->idle_cv);
	pthread_mutex_unlock(&t->lock);
	p11_module_leave(t->m);
	op_failed(t, rv, epoch);
	return r;
}

void p11_token_forget_pin_on_removal(struct p11_token *t,
				     void (*fn)(void *ctx), void *ctx)
{
	pthread_mutex_lock(&t->lock);
	t->forget_on_removal = 1;
	t->on_removal = fn;
	t->removal_ctx = ctx;
	pthread_mutex_unlock(&t->lock);
}

/* Whether the slot still holds the token last found there: the same
 * serial and label (another card in the reader is not ours); lock held. */
static int token_still_there(struct p11_token *t)
{
	CK_TOKEN_INFO info;
	CK_RV rv;

	rv = t->m->fn->C_GetTokenInfo(t->slot, &info);
	if (rv != CKR_OK) {
		p11_module_note(t->m, rv);
		return 0;
	}
	return memcmp(info.serialNumber, t->info.serialNumber,
		      sizeof(info.serialNumber)) == 0 &&
	       memcmp(info.label, t->info.label, sizeof(info.label)) == 0;
}

/* Whether the token is there, looking it up when it was not; ask_slot:
 * also ask the slot of a token believed present (a probe of an idle one).
 * A broken module lists nothing until it is re-initialised (module.c):
 * ask again after that, once. */
static int token_look(struct p11_token *t, int ask_slot,
		      unsigned long *removals)
{
	struct mtls_error ignored;
	unsigned long epoch;
	int present;

	for (int tried = 0;; tried = 1) {
		p11_module_enter(t->m);
		epoch = p11_module_epoch(t->m);
		pthread_mutex_lock(&t->lock);
		if (t->mod_epoch != epoch)
			token_lost(t);
		if (ask_slot && t->present && !token_still_there(t))
			token_lost(t);
		if (!t->present)
			(void)token_locate(t, &ignored);
		present = t->present;
		if (removals != NULL)
			*removals = t->removals;
		pthread_mutex_unlock(&t->lock);
		p11_module_leave(t->m);
		if (present || tried ||
		    p11_module_reinit(t->m, epoch, t->uri, &ignored) != 1)
			return present;
	}
}

int p11_token_listed(struct p11_token *t)
{
	return token_look(t, 0, NULL);
}

int p11_token_probe(struct p11_token *t, unsigned long *removals)
{
	return token_look(t, 1, removals);
}

void p11_session_put(struct p11_token *t, struct p11_session *s, CK_RV rv)
{
	pthread_mutex_lock(&t->lock);
	p11_session_put_locked(t, s, rv);
	/* Closing the application's last session logs it out (PKCS#11 2.40,
	 * C_CloseSession): the next session must log in again. */
	if (t->n_open == 0)
		t->logged_in = 0;
	/* Broadcast: an SO operation waits for the pool to be idle, beside
	 * signers waiting for a session. */
	pthread_cond_broadcast(&t->idle_cv);
	pthread_mutex_unlock(&t->lock);
	p11_module_leave(t->m);
}

static void p11_session_put_locked(struct p11_token *t, struct p11_session *s,
				   CK_RV rv)
{
	if (s->gen != t->generation) {
		/* The pool was reset while this session was out. */
		(void)t->m->fn->C_CloseSession(s->h);
		t->n_open--;
	} else if (p11_rv_token_lost(rv)) {
		(void)t->m->fn->C_CloseSession(s->h);
		t->n_open--;
		token_lost(t);
	} else if (rv == CKR_OK && t->n_idle < P11_POOL_MAX) {
		t->idle[t->n_idle++] = s->h;
	} else {
		/* An unexpected failure may leave an operation active on the
		 * session; a fresh one is cheaper than finding out. */
		(void)t->m->fn->C_CloseSession(s->h);
		t->n_open--;
	}
}

mtls_err_t p11_token_login(struct p11_token *t, struct mtls_error *err)
{
	struct p11_session s;
	mtls_err_t r;

	r = p11_session_get(t, &s, err);
	if (r == MTLS_OK)
		p11_session_put(t, &s, CKR_OK);
	return r;
}


void p11_token_status(struct p11_token *t, struct p11_token_status *st)
{
	memset(st, 0, sizeof(*st));
	p11_module_enter(t->m); /* the flags are read from the token */
	pthread_mutex_lock(&t->lock);
	if (t->mod_epoch != p11_module_epoch(t->m))
		token_lost(t);
	st->present = t->present;
	st->logged_in = t->logged_in;
	st->slot_id = t->slot;
	st->sessions_open = t->n_open;
	st->sessions_idle = t->n_idle;
	st->so_configured = t->so_source[0] != '\0';
	if (t->present && !t->so_busy)
		token_flags_refresh(t);
	st->pin_count_low = (t->info.flags & CKF_USER_PIN_COUNT_LOW) != 0;
	st->pin_final_try = (t->info.flags & CKF_USER_PIN_FINAL_TRY) != 0;
	st->pin_locked = (t->info.flags & CKF_USER_PIN_LOCKED) != 0;
	st->pin_refused = t->login_blocked;
	if (t->present) {
		p11_info_text(st->label, sizeof(st->label), t->info.label,
			      sizeof(t->info.label));
		p11_info_text(st->serial, sizeof(st->serial), t->info.serialNumber,
			      sizeof(t->info.serialNumber));
		p11_info_text(st->model, sizeof(st->model), t->info.model,
			      sizeof(t->info.model));
		p11_info_text(st->manufacturer, sizeof(st->manufacturer),
			      t->info.manufacturerID,
			      sizeof(t->info.manufacturerID));
	}
	pthread_mutex_unlock(&t->lock);
	p11_module_leave(t->m);
}
