/* The control protocol between mtls-agent and mtlsctl, over a Unix socket
 * ([agent] control = PATH). One request per connection:
 *
 *   request:  one JSON object on one line, at most CONTROL_REQUEST_MAX bytes
 *             {"cmd":"status"}
 *             {"cmd":"reload"}
 *             {"cmd":"renew","identity":"NAME"}
 *             {"cmd":"unlock","token":"NAME"}   then the PIN on the next
 *                                               line, outside the JSON, so
 *                                               it never sits in the JSON
 *                                               library's buffers
 *             {"cmd":"unlock","token":"NAME","pinentry":true,
 *              "tty":"/dev/pts/N","term":"xterm"}   pin_source = pinentry:
 *                                               ask through pinentry, on
 *                                               the caller's own tty
 *             {"cmd":"lock","token":"NAME"}
 *   response: one JSON object, then the agent closes the connection
 *             {"ok":true, ...}  or  {"ok":false,"error":REASON,"detail":TEXT}
 *
 * Only the agent's own uid, root, or members of [agent] control_group may
 * connect; others are closed without an answer and logged. */
#ifndef MTLS_CONTROL_PROTO_H
#define MTLS_CONTROL_PROTO_H

#define CONTROL_REQUEST_MAX 4096
#define CONTROL_RESPONSE_MAX (256 * 1024)
#define CONTROL_TIMEOUT_MS 5000

#define CONTROL_CMD_STATUS "status"
#define CONTROL_CMD_RELOAD "reload"
#define CONTROL_CMD_RENEW "renew"
#define CONTROL_CMD_UNLOCK "unlock"
#define CONTROL_CMD_LOCK "lock"

#include <stddef.h>

struct control_request {
	char cmd[16];
	char arg[64];          /* identity or token name, or empty */
	const char *pin;       /* unlock: the line after the request, in buf */
	size_t pin_len;
	int pinentry;          /* unlock: ask through pinentry */
	char tty[64];          /* ... on this tty (the caller's), or empty */
	char term[32];         /* ... of this TERM, or empty */
};

/* Parses what a client sent (buf holds len bytes, NUL-terminated at
 * buf[len]); 0 or -1 with a reason in *why. Only the first line goes to
 * the JSON parser. */
int control_request_parse(char *buf, size_t len, struct control_request *req,
			  const char **why);

#endif
