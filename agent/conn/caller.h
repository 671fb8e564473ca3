/* Who is on the other end of an accepted local socket, resolved right
 * after accept() and before any byte of the request is read.
 *
 * Authoritative (from the kernel): uid, gid, pid and supplementary groups
 * of a Unix-socket peer (SO_PEERCRED, SO_PEERGROUPS: the values at
 * connect() time); the uid of a loopback TCP peer, found with netlink
 * sock_diag by the connection's exact 4-tuple, only while that peer socket
 * is ESTABLISHED and still owned by a process (inode != 0). A caller whose
 * uid cannot be resolved is refused by the connection code.
 *
 * Advisory: the executable (/proc/PID/exe) and systemd unit
 * (/proc/PID/cgroup): the process may exec or exit between connect() and
 * our reads, its pid may be reused, an interpreter runs any script. A
 * value that could not be read, or only in part, is unknown (never
 * truncated): the policy lets an unknown value match no allow rule that
 * names it and every deny rule that names it. */
#ifndef MTLS_CALLER_H
#define MTLS_CALLER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "policy.h"

#define CALLER_GROUPS_MAX 64

struct caller {
	int64_t uid, gid, pid; /* -1: unknown */
	char exe[512];         /* empty: unknown */
	char unit[256];        /* empty: unknown */
	uint32_t groups[CALLER_GROUPS_MAX];
	unsigned n_groups;
	int groups_known;      /* 0: n_groups is not the whole list */
	int tcp;               /* a loopback TCP peer: only the uid is known */
};

/* 0, or -1 with why set when the caller's uid cannot be resolved. */
int caller_identify(int fd, struct caller *c, char *why, size_t why_len);
/* The policy's view of c (pointers into c). */
void caller_policy(const struct caller *c, struct policy_caller *pc);

/* Whether this process can read /proc/PID/exe of uid's processes: its
 * own uid's, or any with CAP_SYS_PTRACE (root has it unless dropped). */
int caller_exe_readable(int64_t uid);

/* The unit from /proc/PID/cgroup text (cgroup v2 "0::" line): the system
 * unit, or for a process of a user's service manager
 * "user@UID.service/UNIT" (so a user cannot pass for a system unit).
 * -1 when there is none. Exposed for tests. */
int caller_unit_from_cgroup(const char *text, char *unit, size_t len);

#endif
