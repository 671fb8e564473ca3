/* mtlsctl connect HOST:PORT: bridges stdin/stdout through the agent socket
 * (ssh ProxyCommand, git's core.gitProxy, any program that talks to a
 * pipe). It asks with HTTP CONNECT, whose refusals carry a reason. */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "mtls_io.h"
#include "mtlsctl.h"
#include "proxy_proto.h"

#define BRIDGE_BUF 65536

static int connect_agent(const struct cfg_tunnel *p, const char *path)
{
	int fd;

	if (path != NULL || p->listen_path != NULL) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s",
			 path ? path : p->listen_path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
			close(fd);
			return -1;
		}
		return fd;
	}
	{
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
		char port[8];

		snprintf(port, sizeof(port), "%u", p->listen_port);
		if (getaddrinfo(p->listen_host, port, &hints, &res) != 0)
			return -1;
		fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
			close(fd);
			fd = -1;
		}
		freeaddrinfo(res);
		return fd;
	}
}

/* Reads the CONNECT answer up to its blank line; anything after it is the
 * server's first bytes and goes to stdout. */
static int read_answer(int fd, char *buf, size_t cap, size_t *len,
		       size_t *head)
{
	*len = 0;
	while (*len + 1 < cap) {
		ssize_t n = read(fd, buf + *len, cap - 1 - *len);
		char *end;

		if (n <= 0)
			return -1;
		*len += (size_t)n;
		buf[*len] = '\0';
		end = strstr(buf, "\r\n\r\n");
		if (end != NULL) {
			*head = (size_t)(end - buf) + 4;
			return 0;
		}
	}
	return -1;
}

static int bridge(int sock)
{
	char *buf = malloc(BRIDGE_BUF);
	int in_open = 1, out_open = 1;

	if (buf == NULL)
		return 1;
	while (out_open) {
		struct pollfd p[2] = { { .fd = in_open ? 0 : -1, .events = POLLIN },
				       { .fd = sock, .events = POLLIN } };
		ssize_t n;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			n = read(0, buf, BRIDGE_BUF);
			if (n <= 0) {
				/* Half-close: the server still answers. */
				shutdown(sock, SHUT_WR);
				in_open = 0;
			} else if (mtls_write_all(sock, buf, (size_t)n) != 0) {
				break;
			}
		}
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			n = read(sock, buf, BRIDGE_BUF);
			if (n <= 0 || mtls_write_all(1, buf, (size_t)n) != 0)
				out_open = 0;
		}
	}
	free(buf);
	return 0;
}

int ctl_connect(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	const struct cfg_tunnel *proxy = NULL;
	const char *socket_path = NULL, *dest;
	char req[PROXY_HOST_MAX + 64], answer[4096];
	size_t len, head;
	int opt, fd, status;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "s:", opts, NULL)) != -1) {
		if (opt != 's')
			return 2;
		socket_path = optarg;
	}
	if (optind + 1 != argc)
		return ctl_usage("connect");
	dest = argv[optind];
	if (strlen(dest) > PROXY_HOST_MAX + 6 || strpbrk(dest, " \r\n") != NULL) {
		fprintf(stderr, "mtlsctl: bad destination '%s'\n", dest);
		return 2;
	}
	if (socket_path == NULL) {
		if (ctl_load_config(ctl) != 0)
			return 1;
		for (unsigned i = 0; i < ctl->cfg->n_tunnels && !proxy; i++)
			if (ctl->cfg->tunnels[i].is_proxy)
				proxy = &ctl->cfg->tunnels[i];
		if (proxy == NULL) {
			fprintf(stderr, "mtlsctl: %s has no [proxy]; use "
					"--socket\n", ctl->config_path);
			return 1;
		}
	}
	fd = connect_agent(proxy, socket_path);
	if (fd < 0) {
		fprintf(stderr, "mtlsctl: cannot reach the agent: %s\n",
			strerror(errno));
		return 1;
	}
	snprintf(req, sizeof(req), "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n",
		 dest, dest);
	if (mtls_write_all(fd, req, strlen(req)) != 0 ||
	    read_answer(fd, answer, sizeof(answer), &len, &head) != 0) {
		fprintf(stderr, "mtlsctl: the agent closed the connection\n");
		close(fd);
		return 1;
	}
	if (sscanf(answer, "HTTP/1.%*d %d", &status) != 1 || status != 200) {
		const char *body = answer + head;

		fprintf(stderr, "mtlsctl: %s refused: %s", dest,
			*body ? body : "no reason given\n");
		close(fd);
		return 1;
	}
	if (len > head && mtls_write_all(1, answer + head, len - head) != 0) {
		close(fd);
		return 1;
	}
	status = bridge(fd);
	close(fd);
	return status;
}
