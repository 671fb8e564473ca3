/* What test_https and test_relay share: a shell line, a temporary folder
 * with a CA and a server certificate for 127.0.0.1 (an iPAddress SAN,
 * made by openssl), and a listening socket on a free loopback port. */
#ifndef MTLS_TLS_TESTLIB_H
#define MTLS_TLS_TESTLIB_H

#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

struct tls_test_files {
	char dir[64], ca[128], cert[128], key[128];
};

static inline int tls_test_sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd) == 0 ? 0 : -1;
}

/* name: the folder's prefix under /tmp. 0 or -1. */
static inline int tls_test_files_make(struct tls_test_files *f,
				      const char *name)
{
	snprintf(f->dir, sizeof(f->dir), "/tmp/%s.XXXXXX", name);
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->ca, sizeof(f->ca), "%s/ca.pem", f->dir);
	snprintf(f->cert, sizeof(f->cert), "%s/server.pem", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/server.key", f->dir);
	return tls_test_sh(
		"cd %s && openssl req -x509 -newkey ec -pkeyopt "
		"ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem "
		"-days 2 -subj /CN=%s-ca -addext "
		"basicConstraints=critical,CA:TRUE >/dev/null 2>&1 && "
		"openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
		"-nodes -keyout server.key -out server.csr -subj "
		"/CN=127.0.0.1 >/dev/null 2>&1 && "
		"printf 'subjectAltName=IP:127.0.0.1\\n' >ext && "
		"openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
		"-CAcreateserial -days 2 -extfile ext -out server.pem "
		">/dev/null 2>&1",
		f->dir, name);
}

static inline int tls_test_files_remove(const struct tls_test_files *f)
{
	return tls_test_sh("rm -rf %s", f->dir);
}

/* A listening socket on 127.0.0.1, the kernel's choice of port. -1 on
 * failure. */
static inline int tls_test_listen(uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(fd, 4) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

#endif
