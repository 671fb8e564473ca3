/* The agent's side of the control socket (see control_proto.h). */
#ifndef MTLS_CONTROL_H
#define MTLS_CONTROL_H

#include "config.h"

/* reload_fd: written to ask the daemon for a reload. */
int control_start(const struct cfg_agent *a, int reload_fd);
void control_stop(void);
/* Asks the daemon for a reload (a token unlocked: its identities load). */
void control_ask_reload(void);

#endif
