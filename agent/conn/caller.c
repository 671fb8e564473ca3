#include "caller.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PROC_READ_MAX 65536

static ssize_t read_small(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0;
	ssize_t r;

	if (fd < 0)
		return -1;
	while (n + 1 < cap && (r = read(fd, buf + n, cap - 1 - n)) > 0)
		n += (size_t)r;
	close(fd);
	buf[n] = '\0';
	return (ssize_t)n;
}

/* cgroup v2: "0::/user.slice/user-1000.slice/user@1000.service/app.slice/x.service".
 * The unit is the last path component that is a service or a scope. */
int caller_unit_from_cgroup(const char *text, char *unit, size_t len)
{
	const char *line = text;

	unit[0] = '\0';
	while (line && *line) {
		const char *eol = strchr(line, '\n');
		size_t n = eol ? (size_t)(eol - line) : strlen(line);

		if (n > 3 && strncmp(line, "0::", 3) == 0) {
			const char *p = line + 3, *end = line + n;

			while (p < end) {
				const char *slash = memchr(p, '/', (size_t)(end - p));
				const char *cend = slash ? slash : end;
				size_t cl = (size_t)(cend - p);

				if ((cl > 8 && memcmp(cend - 8, ".service", 8) == 0) ||
				    (cl > 6 && memcmp(cend - 6, ".scope", 6) == 0)) {
					if (cl < len) {
						memcpy(unit, p, cl);
						unit[cl] = '\0';
					}
				}
				p = cend + 1;
			}
			return unit[0] ? 0 : -1;
		}
		line = eol ? eol + 1 : NULL;
	}
	return -1;
}

static uint32_t hex_word(const char *s)
{
	char w[9];

	memcpy(w, s, 8);
	w[8] = '\0';
	return (uint32_t)strtoul(w, NULL, 16);
}

/* /proc/net/tcp{,6}: "sl local_address rem_address st tx:rx tr:when retr uid ...",
 * addresses as hex of the in-memory 32-bit words. */
int caller_tcp_uid(const char *text, const uint8_t *local, uint16_t lport,
		   const uint8_t *remote, uint16_t rport, int v6, int64_t *uid)
{
	size_t alen = v6 ? 16 : 4;
	const char *line = strchr(text, '\n');

	while (line && *++line) {
		char la[33], ra[33];
		unsigned lp, rp, st, u;
		uint8_t lb[16], rb[16];

		if (sscanf(line, "%*u: %32[0-9A-Fa-f]:%x %32[0-9A-Fa-f]:%x %x "
				 "%*x:%*x %*x:%*x %*x %u", la, &lp, ra, &rp,
			   &st, &u) == 6 &&
		    strlen(la) == alen * 2 && strlen(ra) == alen * 2) {
			for (size_t w = 0; w < alen / 4; w++) {
				uint32_t lw = hex_word(la + w * 8);
				uint32_t rw = hex_word(ra + w * 8);

				memcpy(lb + w * 4, &lw, 4);
				memcpy(rb + w * 4, &rw, 4);
			}
			if (lp == lport && rp == rport &&
			    memcmp(lb, local, alen) == 0 &&
			    memcmp(rb, remote, alen) == 0) {
				*uid = u;
				return 0;
			}
		}
		line = strchr(line, '\n');
	}
	return -1;
}

/* A loopback TCP client is a local process too: its socket is in
 * /proc/net/tcp with our address as its remote end. */
static void tcp_caller(int fd, struct caller *c)
{
	struct sockaddr_storage me, peer;
	socklen_t ml = sizeof(me), pl = sizeof(peer);
	char *text;

	if (getsockname(fd, (struct sockaddr *)&me, &ml) != 0 ||
	    getpeername(fd, (struct sockaddr *)&peer, &pl) != 0)
		return;
	text = malloc(PROC_READ_MAX * 16);
	if (text == NULL)
		return;
	if (peer.ss_family == AF_INET) {
		struct sockaddr_in *p = (struct sockaddr_in *)&peer;
		struct sockaddr_in *m = (struct sockaddr_in *)&me;

		if (read_small("/proc/net/tcp", text, PROC_READ_MAX * 16) > 0)
			caller_tcp_uid(text, (uint8_t *)&p->sin_addr,
				       ntohs(p->sin_port), (uint8_t *)&m->sin_addr,
				       ntohs(m->sin_port), 0, &c->uid);
	} else if (peer.ss_family == AF_INET6) {
		struct sockaddr_in6 *p = (struct sockaddr_in6 *)&peer;
		struct sockaddr_in6 *m = (struct sockaddr_in6 *)&me;

		if (read_small("/proc/net/tcp6", text, PROC_READ_MAX * 16) > 0)
			caller_tcp_uid(text, (uint8_t *)&p->sin6_addr,
				       ntohs(p->sin6_port),
				       (uint8_t *)&m->sin6_addr,
				       ntohs(m->sin6_port), 1, &c->uid);
	}
	free(text);
}

void caller_read(int fd, struct caller *c)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	char path[64], buf[4096];
	ssize_t n;

	memset(c, 0, sizeof(*c));
	c->uid = c->gid = c->pid = -1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
	    cred.pid > 0) {
		c->uid = cred.uid;
		c->gid = cred.gid;
		c->pid = cred.pid;
	} else {
		tcp_caller(fd, c);
		return;
	}
	snprintf(path, sizeof(path), "/proc/%lld/exe", (long long)c->pid);
	n = readlink(path, c->exe, sizeof(c->exe) - 1);
	c->exe[n > 0 ? n : 0] = '\0';
	snprintf(path, sizeof(path), "/proc/%lld/cgroup", (long long)c->pid);
	if (read_small(path, buf, sizeof(buf)) > 0)
		caller_unit_from_cgroup(buf, c->unit, sizeof(c->unit));
	snprintf(path, sizeof(path), "/proc/%lld/status", (long long)c->pid);
	if (read_small(path, buf, sizeof(buf)) > 0) {
		const char *g = strstr(buf, "\nGroups:");

		if (g != NULL) {
			char *p = (char *)g + 8, *end;

			while (c->n_groups < CALLER_GROUPS_MAX) {
				unsigned long v = strtoul(p, &end, 10);

				if (end == p)
					break;
				c->groups[c->n_groups++] = (uint32_t)v;
				p = end;
			}
		}
	}
}

void caller_policy(const struct caller *c, struct policy_caller *pc)
{
	pc->uid = c->uid;
	pc->gid = c->gid;
	pc->pid = c->pid;
	pc->groups = c->groups;
	pc->n_groups = c->n_groups;
	pc->exe = c->exe[0] ? c->exe : NULL;
	pc->unit = c->unit[0] ? c->unit : NULL;
}
