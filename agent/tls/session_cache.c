#include <wolfssl/options.h>

#include "session_cache.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <wolfssl/ssl.h>

#include "tls.h"

#define CACHE_SLOTS 256
#define KEY_MAX 512

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char key[KEY_MAX];
	unsigned long ctx; /* serial of the context it was made under */
	WOLFSSL_SESSION *s;
	unsigned long used;
} slots[CACHE_SLOTS];
static unsigned long clock_tick;

/* The serial of ssl's context (tls_ctx_serial): a resumed handshake skips
 * every certificate check, so a session made under one context (its CAs,
 * CRLs, profile, identity) must never resume under another, e.g. the one
 * rebuilt because the CRL now revokes that server. 0: not ours, no
 * resumption. */
static unsigned long ctx_of(WOLFSSL *ssl)
{
	return tls_ctx_serial(wolfSSL_get_SSL_CTX(ssl));
}

void session_cache_offer(const char *key, WOLFSSL *ssl)
{
	unsigned long ctx = ctx_of(ssl);

	if (ctx == 0)
		return;
	pthread_mutex_lock(&lock);
	for (int i = 0; i < CACHE_SLOTS; i++) {
		if (slots[i].s == NULL || strcmp(slots[i].key, key) != 0)
			continue;
		if (slots[i].ctx != ctx) {
			/* Its context is gone for good (serials only grow). */
			wolfSSL_SESSION_free(slots[i].s);
			slots[i].s = NULL;
			break;
		}
		/* wolfSSL copies it into ssl; should it refuse, the
		 * handshake is simply a full one. */
		(void)wolfSSL_set_session(ssl, slots[i].s);
		slots[i].used = ++clock_tick;
		break;
	}
	pthread_mutex_unlock(&lock);
}

void session_cache_keep(const char *key, WOLFSSL *ssl)
{
	unsigned long ctx = ctx_of(ssl);
	WOLFSSL_SESSION *s;
	int victim = 0;

	if (ctx == 0 || strlen(key) >= KEY_MAX)
		return;
	s = wolfSSL_get1_session(ssl);
	if (s == NULL)
		return;
	pthread_mutex_lock(&lock);
	for (int i = 0; i < CACHE_SLOTS; i++) {
		if (slots[i].s != NULL && strcmp(slots[i].key, key) == 0) {
			victim = i;
			break;
		}
		if (slots[i].s == NULL || slots[i].used < slots[victim].used)
			victim = i;
	}
	if (slots[victim].s != NULL)
		wolfSSL_SESSION_free(slots[victim].s);
	snprintf(slots[victim].key, KEY_MAX, "%s", key);
	slots[victim].ctx = ctx;
	slots[victim].s = s;
	slots[victim].used = ++clock_tick;
	pthread_mutex_unlock(&lock);
}

void session_cache_clear(void)
{
	pthread_mutex_lock(&lock);
	for (int i = 0; i < CACHE_SLOTS; i++) {
		if (slots[i].s != NULL)
			wolfSSL_SESSION_free(slots[i].s);
		slots[i].s = NULL;
	}
	pthread_mutex_unlock(&lock);
}
