/* The runtime in service: set by the daemon at start and on each reload,
 * read (with a reference) by the scheduler, control and metrics threads. */
#ifndef MTLS_CURRENT_H
#define MTLS_CURRENT_H

#include "runtime.h"

void current_set(struct runtime *rt);
/* A referenced runtime (runtime_put it), or NULL before start. */
struct runtime *current_get(void);

#endif
