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

#endif
