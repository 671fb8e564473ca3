#include <wolfssl/options.h>

#include "session_cache.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <wolfssl/ssl.h>

#define CACHE_SLOTS 256
#define KEY_MAX 512

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char key[KEY_MAX];
	WOLFSSL_SESSION *s;
	unsigned long used;
} slots[CACHE_SLOTS];
static unsigned long clock_tick;

void session_cache_offer(const char *key, WOLFSSL *ssl)
{
	pthread_mutex_lock(&lock);
	for (int i = 0; i < CACHE_SLOTS; i++)
		if (slots[i].s != NULL && strcmp(slots[i].key, key) == 0) {
			/* wolfSSL copies it into ssl. */
			(void)wolfSSL_set_session(ssl, slots[i].s);
			slots[i].used = ++clock_tick;
			break;
		}
	pthread_mutex_unlock(&lock);
}

void session_cache_keep(const char *key, WOLFSSL *ssl)
{
	WOLFSSL_SESSION *s = wolfSSL_get1_session(ssl);
	int victim = 0;

	if (s == NULL || strlen(key) >= KEY_MAX) {
		if (s != NULL)
			wolfSSL_SESSION_free(s);
		return;
	}
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
