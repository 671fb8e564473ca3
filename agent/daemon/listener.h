/* Listening sockets: Unix socket paths (with owner, group, mode) and
 * loopback TCP ports. */
#ifndef MTLS_LISTENER_H
#define MTLS_LISTENER_H

#include <sys/types.h>

#include "config.h"
#include "mtls_err.h"

/* Takes the sockets systemd passed (socket activation); each is matched to
 * the tunnel or proxy whose name is its FileDescriptorName. */
void listener_inherit(void);
/* An inherited socket for t (*activated = 1; systemd owns it: never close
 * or unlink it), or a new one. */
mtls_err_t listener_open(const struct cfg_tunnel *t, int *fd, int *activated,
			 struct mtls_error *err);
/* Removes the socket file of a Unix listener (after closing it). */
void listener_unlink(const struct cfg_tunnel *t);
/* Same place to listen? (reload keeps such sockets open) */
int listener_same(const struct cfg_tunnel *a, const struct cfg_tunnel *b);

#endif
