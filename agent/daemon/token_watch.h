/* Watching the tokens whose PIN a person gives (pin_source = pinentry):
 * a thread asks each one's slot every second whether the token is there,
 * logs when it goes and comes back, and when it comes back without a PIN
 * (pulling it out took the PIN: pkcs11/ and pins.c forget it) asks the
 * person through pinentry, as gpg-agent does for a smartcard. */
#ifndef MTLS_TOKEN_WATCH_H
#define MTLS_TOKEN_WATCH_H

int token_watch_start(void);
/* Joins the thread; before the runtime goes. */
void token_watch_stop(void);

#endif
