/* Runs a helper program: in its own process group, with only PATH in its
 * environment and none of the agent's descriptors, input on its stdin,
 * its stdout collected; timeout_ms bounds the whole run (until it exits),
 * then its group is killed. */
#ifndef MTLS_EXEC_RUN_H
#define MTLS_EXEC_RUN_H

#include <stddef.h>

#include "mtls_err.h"

/* what: its name in messages. argv[0]: the program's path (no search, no
 * shell). *output: what it printed (malloc'd, NUL-terminated) when it
 * exited with 0; more than max bytes is an error. */
mtls_err_t exec_run(const char *what, char *const argv[], const char *input,
		    unsigned timeout_ms, size_t max, char **output,
		    struct mtls_error *err);

#endif
