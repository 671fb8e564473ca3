/* Connections over a limit (per uid, or all of them) on an agent socket
 * get an answer before they are closed: HTTP 503 with the reason, or a
 * SOCKS5 failure reply, instead of a reset. One thread answers them all,
 * a bounded number at a time, each for a short while: a flood of refused
 * connections costs that thread and REFUSER_SLOTS descriptors, no more. */
#ifndef MTLS_REFUSER_H
#define MTLS_REFUSER_H

#define REFUSER_SLOTS 64
#define REFUSER_MS 2000 /* each refused connection's whole time */

/* Takes fd. is_proxy: the agent socket (answers); else closed at once
 * (a tunnel has no protocol to say why). reason: one line for HTTP. */
void refuser_take(int fd, int is_proxy, const char *reason);

/* Closes what is pending and joins the thread (at exit). */
void refuser_stop(void);

#endif
