#include "caller.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define DIAG_TIMEOUT_MS 1000

/* Reads a small /proc file whole; -1 when it cannot be read or does not
 * fit (a partial view is no view). */
static ssize_t read_whole(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0;
	ssize_t r = 0;

	if (fd < 0)
		return -1;
	while (n + 1 < cap && (r = read(fd, buf + n, cap - 1 - n)) > 0)
		n += (size_t)r;
	if (r > 0) { /* full: is there more? */
		char extra;

		r = read(fd, &extra, 1);
		if (r != 0)
			r = -1;
	}
	close(fd);
	buf[n] = '\0';
	return r < 0 ? -1 : (ssize_t)n;
}

static int ends_with(const char *p, size_t n, const char *suffix)
{
	size_t sl = strlen(suffix);

	return n > sl && memcmp(p + n - sl, suffix, sl) == 0;
}

/* The first unit under path (after slices only), as [*start, *start+*n);
 * *rest: what follows it. 0, or -1 when the first non-slice component is
 * not a unit. Components below a unit are the unit's own (a service with
 * Delegate= names them as it likes) and never name a unit. */
static int first_unit(const char *p, const char *end, const char **start,
		      size_t *n, const char **rest)
{
	while (p < end) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		const char *cend = slash ? slash : end;
		size_t cl = (size_t)(cend - p);

		if (cl == 0) {
			p = cend + 1;
			continue;
		}
		if (ends_with(p, cl, ".slice")) {
			p = cend + 1;
			continue;
		}
		if (ends_with(p, cl, ".service") || ends_with(p, cl, ".scope")) {
			*start = p;
			*n = cl;
			*rest = cend;
			return 0;
		}
		return -1;
	}
	return -1;
}

int caller_unit_from_cgroup(const char *text, char *unit, size_t len)
{
	const char *line = text;

	unit[0] = '\0';
	while (line && *line) {
		const char *eol = strchr(line, '\n');
		size_t n = eol ? (size_t)(eol - line) : strlen(line);
		const char *end = line + n, *u, *rest, *u2, *rest2;
		size_t ul, ul2;

		if (n <= 3 || strncmp(line, "0::", 3) != 0) {
			line = eol ? eol + 1 : NULL;
			continue;
		}
		if (first_unit(line + 3, end, &u, &ul, &rest) != 0)
			return -1;
		if (ul > 5 && strncmp(u, "user@", 5) == 0 &&
		    ends_with(u, ul, ".service") &&
		    first_unit(rest, end, &u2, &ul2, &rest2) == 0) {
			/* A unit of a user's own service manager: named with
			 * its manager, so it never reads as a system unit. */
			if (ul + 1 + ul2 >= len)
				return -1;
			memcpy(unit, u, ul);
			unit[ul] = '/';
			memcpy(unit + ul + 1, u2, ul2);
			unit[ul + 1 + ul2] = '\0';
			return 0;
		}
		if (ul >= len)
			return -1;
		memcpy(unit, u, ul);
		unit[ul] = '\0';
		return 0;
	}
	return -1;
}

/* The uid owning the local TCP socket whose address is peer and whose
 * remote end is me, asked of the kernel by that exact 4-tuple. Only an
 * ESTABLISHED socket still attached to a file counts: a peer that already
 * closed (FIN_WAIT, TIME_WAIT: uid 0 and no inode) is no caller. */
static int tcp_peer_uid(const struct sockaddr_storage *peer,
			const struct sockaddr_storage *me, int64_t *uid,
			char *why, size_t why_len)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} q;
	union {
		struct nlmsghdr nlh;
		char buf[8192];
	} a;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	struct inet_diag_sockid *id = &q.req.id;
	struct pollfd pf;
	int fd, rc = -1;
	ssize_t n;

	memset(&q, 0, sizeof(q));
	q.nlh.nlmsg_len = sizeof(q);
	q.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	q.nlh.nlmsg_flags = NLM_F_REQUEST;
	q.nlh.nlmsg_seq = 1;
	q.req.sdiag_protocol = IPPROTO_TCP;
	q.req.idiag_states = 1u << TCP_ESTABLISHED;
	id->idiag_cookie[0] = id->idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	if (peer->ss_family == AF_INET && me->ss_family == AF_INET) {
		const struct sockaddr_in *p = (const void *)peer, *m = (const void *)me;

		q.req.sdiag_family = AF_INET;
		id->idiag_sport = p->sin_port;
		id->idiag_dport = m->sin_port;
		memcpy(id->idiag_src, &p->sin_addr, 4);
		memcpy(id->idiag_dst, &m->sin_addr, 4);
	} else if (peer->ss_family == AF_INET6 && me->ss_family == AF_INET6) {
		const struct sockaddr_in6 *p = (const void *)peer, *m = (const void *)me;

		id->idiag_sport = p->sin6_port;
		id->idiag_dport = m->sin6_port;
		if (IN6_IS_ADDR_V4MAPPED(&p->sin6_addr) &&
		    IN6_IS_ADDR_V4MAPPED(&m->sin6_addr)) {
			/* An IPv4 client of a dual-stack listener: its own
			 * socket is an AF_INET one. */
			q.req.sdiag_family = AF_INET;
			memcpy(id->idiag_src, p->sin6_addr.s6_addr + 12, 4);
			memcpy(id->idiag_dst, m->sin6_addr.s6_addr + 12, 4);
		} else {
			q.req.sdiag_family = AF_INET6;
			memcpy(id->idiag_src, &p->sin6_addr, 16);
			memcpy(id->idiag_dst, &m->sin6_addr, 16);
		}
	} else {
		snprintf(why, why_len, "not a TCP/IP socket");
		return -1;
	}

	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0) {
		snprintf(why, why_len, "sock_diag: %s", strerror(errno));
		return -1;
	}
	if (sendto(fd, &q, sizeof(q), 0, (struct sockaddr *)&kernel,
		   sizeof(kernel)) != (ssize_t)sizeof(q)) {
		snprintf(why, why_len, "sock_diag send: %s", strerror(errno));
		goto out;
	}
	pf.fd = fd;
	pf.events = POLLIN;
	if (poll(&pf, 1, DIAG_TIMEOUT_MS) != 1) {
		snprintf(why, why_len, "sock_diag: no answer");
		goto out;
	}
	n = recv(fd, &a, sizeof(a), 0);
	if (n < (ssize_t)sizeof(struct nlmsghdr) || !NLMSG_OK(&a.nlh, (size_t)n)) {
		snprintf(why, why_len, "sock_diag: short answer");
		goto out;
	}
	if (a.nlh.nlmsg_type == NLMSG_ERROR) {
		const struct nlmsgerr *e = NLMSG_DATA(&a.nlh);
		int en = a.nlh.nlmsg_len >= NLMSG_LENGTH(sizeof(*e)) ? -e->error : EIO;

		/* ENOENT: no such socket, i.e. the peer is gone. */
		snprintf(why, why_len, "peer socket not found (%s)",
			 strerror(en));
		goto out;
	}
	if (a.nlh.nlmsg_type != SOCK_DIAG_BY_FAMILY ||
	    a.nlh.nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
		snprintf(why, why_len, "sock_diag: unexpected answer");
		goto out;
	}
	{
		const struct inet_diag_msg *m = NLMSG_DATA(&a.nlh);

		/* The kernel looked the socket up by the 4-tuple; check it
		 * answered for that one and that it is a live connection. */
		if (m->id.idiag_sport != id->idiag_sport ||
		    m->id.idiag_dport != id->idiag_dport ||
		    memcmp(m->id.idiag_src, id->idiag_src, sizeof(id->idiag_src)) ||
		    memcmp(m->id.idiag_dst, id->idiag_dst, sizeof(id->idiag_dst))) {
			snprintf(why, why_len, "sock_diag: another socket");
			goto out;
		}
		if (m->idiag_state != TCP_ESTABLISHED || m->idiag_inode == 0) {
			snprintf(why, why_len, "peer socket not connected "
				 "(state %u): the client is gone",
				 (unsigned)m->idiag_state);
			goto out;
		}
		*uid = m->idiag_uid;
		rc = 0;
	}
out:
	close(fd);
	return rc;
}

static void read_groups(int fd, struct caller *c)
{
	gid_t g[CALLER_GROUPS_MAX];
	socklen_t len = sizeof(g);

	/* ERANGE: more groups than we hold; the list stays unknown rather
	 * than cut short. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) != 0 ||
	    len % sizeof(gid_t) != 0)
		return;
	c->n_groups = len / sizeof(gid_t);
	for (unsigned i = 0; i < c->n_groups; i++)
		c->groups[i] = (uint32_t)g[i];
	c->groups_known = 1;
}

static void read_process(struct caller *c)
{
	char path[64], buf[4096];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%lld/exe", (long long)c->pid);
	n = readlink(path, c->exe, sizeof(c->exe));
	/* Unreadable (another user's process without CAP_SYS_PTRACE, or
	 * gone) or too long: unknown. */
	if (n <= 0 || (size_t)n >= sizeof(c->exe))
		n = 0;
	c->exe[n] = '\0';
	snprintf(path, sizeof(path), "/proc/%lld/cgroup", (long long)c->pid);
	if (read_whole(path, buf, sizeof(buf)) > 0)
		caller_unit_from_cgroup(buf, c->unit, sizeof(c->unit));
}

static int has_cap_sys_ptrace(void)
{
	char buf[4096];
	const char *p;
	unsigned long long eff;

	if (read_whole("/proc/self/status", buf, sizeof(buf)) <= 0 ||
	    (p = strstr(buf, "\nCapEff:")) == NULL ||
	    sscanf(p + 8, "%llx", &eff) != 1)
		return 0;
	return (eff >> 19) & 1; /* CAP_SYS_PTRACE */
}

int caller_exe_readable(int64_t uid)
{
	/* /proc/PID/exe needs PTRACE_MODE_READ_FSCREDS: the same fsuid (and
	 * a dumpable process), or CAP_SYS_PTRACE. */
	return (uid >= 0 && (uid_t)uid == geteuid()) || has_cap_sys_ptrace();
}

int caller_identify(int fd, struct caller *c, char *why, size_t why_len)
{
	struct sockaddr_storage me, peer;
	socklen_t ml = sizeof(me), pl = sizeof(peer);

	memset(c, 0, sizeof(*c));
	c->uid = c->gid = c->pid = -1;
	why[0] = '\0';
	if (getsockname(fd, (struct sockaddr *)&me, &ml) != 0) {
		snprintf(why, why_len, "getsockname: %s", strerror(errno));
		return -1;
	}
	if (me.ss_family == AF_UNIX) {
		struct ucred cred;
		socklen_t len = sizeof(cred);

		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
			snprintf(why, why_len, "SO_PEERCRED: %s", strerror(errno));
			return -1;
		}
		c->uid = cred.uid;
		c->gid = cred.gid;
		read_groups(fd, c);
		/* pid 0: the peer is in a pid namespace we cannot see. */
		if (cred.pid > 0) {
			c->pid = cred.pid;
			read_process(c);
		}
		return 0;
	}
	if (getpeername(fd, (struct sockaddr *)&peer, &pl) != 0) {
		snprintf(why, why_len, "getpeername: %s", strerror(errno));
		return -1;
	}
	c->tcp = 1;
	return tcp_peer_uid(&peer, &me, &c->uid, why, why_len);
}

void caller_policy(const struct caller *c, struct policy_caller *pc)
{
	memset(pc, 0, sizeof(*pc));
	pc->uid = c->uid;
	pc->gid = c->gid;
	pc->pid = c->pid;
	pc->groups = c->groups;
	pc->n_groups = c->n_groups;
	pc->groups_known = c->groups_known;
	pc->exe = c->exe[0] ? c->exe : NULL;
	pc->unit = c->unit[0] ? c->unit : NULL;
}
