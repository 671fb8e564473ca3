#include "pins.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char token[PINS_NAME_MAX];
	struct mtls_secret *pin;
} pins[PINS_MAX_TOKENS];

static int slot(const char *token)
{
	for (int i = 0; i < PINS_MAX_TOKENS; i++)
		if (pins[i].pin != NULL && strcmp(pins[i].token, token) == 0)
			return i;
	return -1;
}

int pins_set(const char *token, const struct mtls_secret *pin)
{
	int i, rc = -1;

	if (strlen(token) >= PINS_NAME_MAX)
		return -1;
	pthread_mutex_lock(&lock);
	i = slot(token);
	for (int j = 0; i < 0 && j < PINS_MAX_TOKENS; j++)
		if (pins[j].pin == NULL)
			i = j;
	if (i >= 0) {
		if (pins[i].pin == NULL)
			pins[i].pin = mtls_secret_new();
		if (pins[i].pin != NULL &&
		    mtls_secret_set(pins[i].pin, pin->buf, pin->len) == 0) {
			snprintf(pins[i].token, sizeof(pins[i].token), "%s", token);
			rc = 0;
		}
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

int pins_get(const char *token, struct mtls_secret *out)
{
	int i, rc = -1;

	pthread_mutex_lock(&lock);
	i = slot(token);
	if (i >= 0 && mtls_secret_set(out, pins[i].pin->buf, pins[i].pin->len) == 0)
		rc = 0;
	pthread_mutex_unlock(&lock);
	return rc;
}

void pins_forget(const char *token)
{
	int i;

	pthread_mutex_lock(&lock);
	i = slot(token);
	if (i >= 0) {
		mtls_secret_free(pins[i].pin);
		pins[i].pin = NULL;
		pins[i].token[0] = '\0';
	}
	pthread_mutex_unlock(&lock);
}

void pins_forget_cb(void *token)
{
	pins_forget(token);
}

int pins_has(const char *token)
{
	int i;

	pthread_mutex_lock(&lock);
	i = slot(token);
	pthread_mutex_unlock(&lock);
	return i >= 0;
}
