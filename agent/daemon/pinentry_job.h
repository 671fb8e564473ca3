/* pin_source = pinentry: asking a person for a token's PIN in a thread of
 * its own, so that neither the accept paths nor the control socket wait
 * while someone types. One dialogue per token at a time; never re-asked by
 * itself after a cancel or a refused PIN (only a person's mtlsctl unlock
 * --pinentry or lock asks again), so no loop can spend the PIN counter. */
#ifndef MTLS_PINENTRY_JOB_H
#define MTLS_PINENTRY_JOB_H

#include <sys/types.h>

#include "runtime.h"

/* Where the dialogue appears when nobody said: MTLS_TTY, TERM and DISPLAY
 * of the agent's environment, read once at start. */
void pinentry_job_init(void);

/* Asks for token i's PIN; why says so in the dialogue. tty/term: NULL for
 * the defaults; a tty given by a caller must be a terminal that caller
 * owns (checked here). 0: started (or one already runs); -1 with *why_not. */
int pinentry_job_ask(struct runtime *rt, unsigned i, const char *why,
		     const char *tty, const char *term, uid_t caller,
		     const char **why_not);

/* Whether token i takes its PIN from pinentry. */
int pinentry_job_token(const struct runtime *rt, unsigned i);

#endif
