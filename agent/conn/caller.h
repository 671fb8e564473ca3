/* Who is on the other end of a local socket: uid, gid and pid from
 * SO_PEERCRED (Unix sockets) or /proc/net/tcp (loopback TCP: uid only);
 * executable from /proc/PID/exe, systemd unit from /proc/PID/cgroup and
 * supplementary groups from /proc/PID/status. The /proc parts are
 * advisory: the process may exec or exit between accept() and our reads,
 * and its pid may be reused; the uid and gid come from the kernel at
 * connect() time and are authoritative. */
#ifndef MTLS_CALLER_H
#define MTLS_CALLER_H

#include <stdint.h>
#include <sys/types.h>

#include "policy.h"

#define CALLER_GROUPS_MAX 32

struct caller {
	int64_t uid, gid, pid; /* -1: unknown */
	char exe[512];
	char unit[256];
	uint32_t groups[CALLER_GROUPS_MAX];
	unsigned n_groups;
};

void caller_read(int fd, struct caller *c);
/* The policy's view of c (pointers into c). */
void caller_policy(const struct caller *c, struct policy_caller *pc);

/* Parsers of the /proc formats, exposed for tests. */
int caller_unit_from_cgroup(const char *text, char *unit, size_t len);
int caller_tcp_uid(const char *proc_net_tcp, const uint8_t *local,
		   uint16_t lport, const uint8_t *remote, uint16_t rport,
		   int v6, int64_t *uid);

#endif
