/* PINs handed to the agent with mtlsctl unlock, by token name, kept
 * (locked in memory) across reloads until mtlsctl lock or exit. */
#ifndef MTLS_PINS_H
#define MTLS_PINS_H

#include "mtls_secret.h"

/* At least the configuration's limits (checked where both are seen). */
#define PINS_MAX_TOKENS 16
#define PINS_NAME_MAX 64

int pins_set(const char *token, const struct mtls_secret *pin);
/* Copies the PIN into out; 0 if there is one. */
int pins_get(const char *token, struct mtls_secret *out);
void pins_forget(const char *token);
/* pins_forget for p11_token_forget_pin_on_removal (token: the name). */
void pins_forget_cb(void *token);
int pins_has(const char *token);

#endif
