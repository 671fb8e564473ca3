/* Module loading through p11-kit: by registered name or by path; and the
 * re-initialisation of a module that stopped working as a whole.
 *
 * Some modules break for good when something behind them goes away and
 * only C_Finalize + C_Initialize mends them (measured, Debian 12):
 * p11-kit-client.so, whose p11-kit server went away, answers
 * CKR_DEVICE_ERROR to every call, C_GetSlotList included, and never
 * reconnects by itself, not even when the server is back on the same
 * socket; re-initialised while the server is still away it is
 * "initialised without a connection" (C_GetSlotList: CKR_OK, no slot;
 * C_OpenSession: CKR_SLOT_ID_INVALID) until the next re-initialisation.
 * ykcs11 answers CKR_DEVICE_ERROR to everything after pcscd restarted.
 * So a module that gave a module-broken CK_RV in the token lookup path is
 * suspect, and the lookup re-initialises it, with a backoff, until a
 * session works again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtls_clock.h"
#include "mtls_log.h"
#include "p11_internal.h"

/* Backoff between re-initialisations of one module: the first at once,
 * then 0.5 s doubling to 8 s, so that a returning server is used within
 * seconds while a long outage costs one failed connect() every 8 s. */
#define REINIT_FIRST_MS 500
#define REINIT_MAX_MS 8000
/* How long a re-initialisation waits for calls in flight on the module
 * to end (new ones wait behind it). A call that hangs (a stopped server)
 * must not freeze every thread: give up and try again later. */
#define REINIT_WAIT_MS 5000

static _Atomic unsigned long reinits_ok, reinits_failed;

/* The modules open in this process, one per file. p11-kit gives each
 * p11_kit_module_load its own managed instance, but counts their
 * C_Initialize calls and finalises the module only at the last
 * C_Finalize (measured with tests/faultmod: two instances initialised,
 * one finalised and initialised again, the module saw one C_Initialize).
 * With an instance per token, or per runtime across a reload, a
 * re-initialisation never reached the module. So every token on a file
 * shares one instance; a reload's old and new tokens keep their own
 * sessions, and closing the old ones leaves the new ones alone. */
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static struct p11_module *open_list;

static int module_locks_init(struct p11_module *m)
{
	pthread_rwlockattr_t a;
	int rc;

	/* Writer first: a re-initialisation waits only for the calls in
	 * flight, not for a stream of new ones (none of pkcs11/ takes the
	 * read lock twice in one thread, which this kind would deadlock). */
	if (pthread_rwlockattr_init(&a) != 0)
		return -1;
	rc = pthread_rwlockattr_setkind_np(&a,
		PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	if (rc == 0)
		rc = pthread_rwlock_init(&m->use, &a);
	pthread_rwlockattr_destroy(&a);
	if (rc != 0)
		return -1;
	if (pthread_mutex_init(&m->lock, NULL) != 0) {
		pthread_rwlock_destroy(&m->use);
		return -1;
	}
	if (pthread_cond_init(&m->reinit_cv, NULL) != 0) {
		pthread_mutex_destroy(&m->lock);
		pthread_rwlock_destroy(&m->use);
		return -1;
	}
	return 0;
}

static void module_locks_destroy(struct p11_module *m)
{
	pthread_cond_destroy(&m->reinit_cv);
	pthread_mutex_destroy(&m->lock);
	pthread_rwlock_destroy(&m->use);
}

static CK_FUNCTION_LIST *load_by_name(const char *name,
				      struct mtls_error *err)
{
	CK_FUNCTION_LIST **mods, *found = NULL;

	/* Load the registry without initialising it, keep the one module we
	 * want and release the others: initialising every registered module
	 * (tpm2, opensc) costs time and prints their errors. */
	mods = p11_kit_modules_load(NULL, 0);
	if (mods == NULL) {
		mtls_error_set(err, MTLS_ERR_MODULE,
			       "p11-kit registry: %s", p11_kit_message());
		return NULL;
	}
	for (size_t i = 0; mods[i] != NULL; i++) {
		char *n = p11_kit_module_get_name(mods[i]);

		if (found == NULL && n != NULL && strcmp(n, name) == 0)
			found = mods[i];
		else
			p11_kit_module_release(mods[i]);
		free(n);
	}
	free(mods);
	if (found == NULL)
		mtls_error_set(err, MTLS_ERR_MODULE,
			       "no p11-kit module named '%s' is registered",
			       name);
	return found;
}

static CK_FUNCTION_LIST *load(const char *name_or_path, struct mtls_error *err)
{
	CK_FUNCTION_LIST *fn;

	if (strchr(name_or_path, '/') == NULL)
		return load_by_name(name_or_path, err);
	fn = p11_kit_module_load(name_or_path, 0);
	if (fn == NULL)
		mtls_error_set(err, MTLS_ERR_MODULE, "%s: %s", name_or_path,
			       p11_kit_message());
	return fn;
}

/* The open module of FILE, one more reference taken; open_lock held. */
static struct p11_module *open_find(const char *file)
{
	for (struct p11_module *m = open_list; m != NULL; m = m->next)
		if (strcmp(m->file, file) == 0) {
			m->refs++;
			return m;
		}
	return NULL;
}

mtls_err_t p11_module_open(const char *name_or_path, struct p11_module **out,
			   struct mtls_error *err)
{
	static const char tpm2[] = "tpm2-software.github.io";
	struct p11_module *m;
	CK_FUNCTION_LIST *fn;
	char *file;
	CK_INFO info;
	CK_RV rv;

	*out = NULL;
	if (name_or_path == NULL || *name_or_path == '\0')
		return mtls_error_set(err, MTLS_ERR_ARG, "empty module name");
	/* Held while a new module initialises (at start and at a reload
	 * only), so that two tokens on it never both create it. */
	pthread_mutex_lock(&open_lock);
	fn = load(name_or_path, err);
	if (fn == NULL) {
		pthread_mutex_unlock(&open_lock);
		return MTLS_ERR_MODULE;
	}
	file = p11_kit_module_get_filename(fn);
	if (file == NULL) {
		p11_kit_module_release(fn);
		pthread_mutex_unlock(&open_lock);
		return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	}
	if ((m = open_find(file)) != NULL) {
		/* A name and a path of the same file meet here too. */
		p11_kit_module_release(fn);
		free(file);
		pthread_mutex_unlock(&open_lock);
		*out = m;
		return MTLS_OK;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL || module_locks_init(m) != 0) {
		free(m);
		free(file);
		p11_kit_module_release(fn);
		pthread_mutex_unlock(&open_lock);
		return mtls_error_set(err, MTLS_ERR_NOMEM, "module");
	}
	snprintf(m->name, sizeof(m->name), "%s", name_or_path);
	m->fn = fn;
	m->file = file;
	rv = p11_kit_module_initialize(m->fn);
	if (rv != CKR_OK) {
		pthread_mutex_unlock(&open_lock);
		mtls_error_set(err, MTLS_ERR_MODULE, "%s: C_Initialize: %s",
			       name_or_path, p11_rv_name(rv));
		p11_kit_module_release(m->fn);
		module_locks_destroy(m);
		free(m->file);
		free(m);
		return MTLS_ERR_MODULE;
	}
	if (m->fn->C_GetInfo(&info) == CKR_OK)
		m->rsa_signs_by_decrypt =
			memcmp(info.manufacturerID, tpm2, sizeof(tpm2) - 1) == 0;
	m->initialized = 1;
	m->backoff_ms = REINIT_FIRST_MS;
	m->refs = 1;
	m->next = open_list;
	open_list = m;
	pthread_mutex_unlock(&open_lock);
	*out = m;
	return MTLS_OK;
}

void p11_module_close(struct p11_module *m)
{
	struct p11_module **pp;

	if (m == NULL)
		return;
	pthread_mutex_lock(&open_lock);
	if (--m->refs > 0) {
		pthread_mutex_unlock(&open_lock);
		return;
	}
	for (pp = &open_list; *pp != m; pp = &(*pp)->next)
		;
	*pp = m->next;
	pthread_mutex_unlock(&open_lock);
	/* A failed re-initialisation left it finalised already. */
	if (m->initialized)
		p11_kit_module_finalize(m->fn);
	p11_kit_module_release(m->fn);
	module_locks_destroy(m);
	free(m->file);
	free(m);
}

void p11_module_enter(struct p11_module *m)
{
	/* Fails only for a lock never initialised or with too many
	 * readers (beyond any thread count here). */
	if (pthread_rwlock_rdlock(&m->use) != 0)
		abort();
}

void p11_module_leave(struct p11_module *m)
{
	pthread_rwlock_unlock(&m->use);
}

unsigned long p11_module_epoch(struct p11_module *m)
{
	return atomic_load(&m->epoch);
}

int p11_rv_module_broken(CK_RV rv)
{
	switch (rv) {
	case CKR_DEVICE_ERROR:	/* p11-kit-client: the server went away;
				 * ykcs11: pcscd went away */
	case CKR_GENERAL_ERROR: /* "some horrible, unrecoverable error"
				 * (PKCS#11 2.40, 5.1.1) */
	case CKR_CRYPTOKI_NOT_INITIALIZED: /* a re-initialisation failed, or
					    * the module was finalised under us */
		return 1;
	default:
		return 0;
	}
}

void p11_module_note(struct p11_module *m, CK_RV rv)
{
	if (!p11_rv_module_broken(rv))
		return;
	pthread_mutex_lock(&m->lock);
	if (!atomic_load(&m->suspect))
		m->suspect_rv = rv;
	atomic_store(&m->suspect, 1);
	pthread_mutex_unlock(&m->lock);
}

void p11_module_ok(struct p11_module *m)
{
	unsigned attempts;

	/* The signing path: one atomic load when nothing is wrong. */
	if (!atomic_load_explicit(&m->suspect, memory_order_relaxed))
		return;
	pthread_mutex_lock(&m->lock);
	attempts = m->attempts;
	atomic_store(&m->suspect, 0);
	m->attempts = 0;
	m->backoff_ms = REINIT_FIRST_MS;
	m->next_reinit_ms = 0;
	pthread_mutex_unlock(&m->lock);
	if (attempts > 0)
		log_notice("event=module_recovered module=%s reinits=%u",
			   m->name, attempts);
}

/* Waits (lock held) for a re-initialisation another thread is running. */
static void reinit_wait_other(struct p11_module *m)
{
	struct timespec deadline;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += 2 * REINIT_WAIT_MS / 1000;
	while (m->reinit_running)
		if (pthread_cond_clockwait(&m->reinit_cv, &m->lock,
					   CLOCK_MONOTONIC, &deadline) != 0)
			break;
}

static void reinit_done(struct p11_module *m)
{
	pthread_mutex_lock(&m->lock);
	m->reinit_running = 0;
	pthread_cond_broadcast(&m->reinit_cv);
	pthread_mutex_unlock(&m->lock);
}

int p11_module_reinit(struct p11_module *m, unsigned long seen,
		      const char *uri, struct mtls_error *err)
{
	struct timespec deadline;
	unsigned attempt, next_ms;
	CK_RV cause, frv = CKR_OK, rv;
	uint64_t now;

	pthread_mutex_lock(&m->lock);
	reinit_wait_other(m);
	/* Of many threads finding the module broken at once, one
	 * re-initialises it; the others look again after it. */
	if (p11_module_epoch(m) != seen) {
		pthread_mutex_unlock(&m->lock);
		return 1;
	}
	now = mtls_now_ms();
	if (m->reinit_running || !atomic_load(&m->suspect) ||
	    now < m->next_reinit_ms) {
		pthread_mutex_unlock(&m->lock);
		return 0;
	}
	m->reinit_running = 1;
	next_ms = m->backoff_ms;
	m->next_reinit_ms = now + next_ms;
	m->backoff_ms = next_ms * 2 > REINIT_MAX_MS ? REINIT_MAX_MS : next_ms * 2;
	attempt = ++m->attempts;
	cause = m->suspect_rv;
	pthread_mutex_unlock(&m->lock);

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += REINIT_WAIT_MS / 1000;
	if (pthread_rwlock_clockwrlock(&m->use, CLOCK_MONOTONIC, &deadline) != 0) {
		reinit_done(m);
		log_warn("event=module_reinit module=%s token=\"%s\" cause=%s "
			 "attempt=%u result=busy detail=\"calls in flight did "
			 "not end within %d ms\" next_in_ms=%u", m->name, uri,
			 p11_rv_name(cause), attempt, REINIT_WAIT_MS, next_ms);
		return 0;
	}
	/* Through p11-kit's managed wrapper: it closes the sessions it
	 * tracked, then finalises the module itself (unless another user
	 * in this process still holds it initialised). */
	if (m->initialized)
		frv = p11_kit_module_finalize(m->fn);
	rv = p11_kit_module_initialize(m->fn);
	m->initialized = rv == CKR_OK;
	/* Even after a failed C_Initialize: what was open is gone. */
	atomic_fetch_add(&m->epoch, 1);
	pthread_rwlock_unlock(&m->use);
	reinit_done(m);

	if (rv != CKR_OK) {
		atomic_fetch_add(&reinits_failed, 1);
		p11_rv_count(rv);
		log_warn("event=module_reinit module=%s token=\"%s\" cause=%s "
			 "attempt=%u result=%s next_in_ms=%u", m->name, uri,
			 p11_rv_name(cause), attempt, p11_rv_name(rv), next_ms);
		mtls_error_set(err, MTLS_ERR_TOKEN_ABSENT,
			       "module %s re-initialised after %s: "
			       "C_Initialize: %s (%s)", m->name,
			       p11_rv_name(cause), p11_rv_name(rv), uri);
		return -1;
	}
	atomic_fetch_add(&reinits_ok, 1);
	/* The first of an outage is news; the retries of a long one are
	 * logged at info (one every 8 s at most). */
	mtls_log(attempt == 1 ? MTLS_LOG_NOTICE : MTLS_LOG_INFO,
		 "event=module_reinit module=%s token=\"%s\" cause=%s "
		 "attempt=%u result=ok finalize=%s next_in_ms=%u", m->name, uri,
		 p11_rv_name(cause), attempt, p11_rv_name(frv), next_ms);
	return 1;
}

void p11_module_reinits(unsigned long *ok, unsigned long *failed)
{
	*ok = atomic_load(&reinits_ok);
	*failed = atomic_load(&reinits_failed);
}
