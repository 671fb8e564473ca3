/* Prometheus text format (version 0.0.4) on a Unix socket or a loopback
 * port: handshakes by result and reason, handshake and token-signature
 * duration histograms, token errors by CK_RV, connections, bytes, each
 * identity's validity dates, renewal due time and consecutive failures,
 * renewals, policy denials, token presence. */
#ifndef MTLS_METRICS_H
#define MTLS_METRICS_H

#include <stddef.h>

#include "config.h"

/* Renders the current values into buf; returns the length. */
size_t metrics_render(char *buf, size_t cap);
/* Serves GET (any path) on the configured socket from its own thread. */
int metrics_start(const struct cfg_agent *a);
void metrics_stop(void);

#endif
