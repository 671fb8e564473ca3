#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#define LISTEN_BACKLOG 128

/* chown()/chmod() by path after bind() would follow a symlink that
 * someone who can write the socket's folder swapped in, to any file. So
 * the name is opened without following (O_PATH | O_NOFOLLOW), must be a
 * socket this process made, and is changed through that descriptor. The
 * socket is bound under umask 0177: nobody else can connect before. */
static mtls_err_t open_unix(const struct cfg_tunnel *t, int *out,
			    struct mtls_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char fdpath[64];
	struct stat st;
	mode_t old;
	int fd, pfd = -1, rc;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", t->listen_path);
	/* A stale socket from a previous run is replaced; anything else at
	 * that path is left alone. */
	if (lstat(t->listen_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return mtls_error_set(err, MTLS_ERR_CONFIG,
					      "%s exists and is not a socket",
					      t->listen_path);
		unlink(t->listen_path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return mtls_error_set(err, MTLS_ERR_IO, "socket: %s",
				      strerror(errno));
	old = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc != 0)
		goto fail;
	pfd = open(t->listen_path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (pfd < 0 || fstat(pfd, &st) != 0)
		goto fail;
	if (!S_ISSOCK(st.st_mode) || st.st_uid != geteuid()) {
		close(fd);
		close(pfd);
		return mtls_error_set(err, MTLS_ERR_IO, "%s: replaced by "
				      "someone else right after bind()",
				      t->listen_path);
	}
	if ((t->owner != (uid_t)-1 || t->group != (gid_t)-1) &&
	    fchownat(pfd, "", t->owner, t->group, AT_EMPTY_PATH) != 0)
		goto fail;
	/* fchmod() does not take an O_PATH descriptor; its /proc name
	 * reaches the same inode without a second lookup of the path. */
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", pfd);
	if (chmod(fdpath, t->mode) != 0)
		goto fail;
	if (listen(fd, LISTEN_BACKLOG) != 0)
		goto fail;
	close(pfd);
	*out = fd;
	return MTLS_OK;
fail:
	rc = errno;
	close(fd);
	if (pfd >= 0)
		close(pfd);
	return mtls_error_set(err, MTLS_ERR_IO, "%s: %s", t->listen_path,
			      strerror(rc));
}

static mtls_err_t open_tcp(const struct cfg_tunnel *t, int *out,
			   struct mtls_error *err)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1, rc;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, t->listen_host,
		      &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons(t->listen_port);
		len = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, t->listen_host,
			     &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(t->listen_port);
		len = sizeof(struct sockaddr_in6);
	} else {
		return mtls_error_set(err, MTLS_ERR_CONFIG,
				      "%s: not an address", t->listen_host);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    0);
	if (fd < 0)
		return mtls_error_set(err, MTLS_ERR_IO, "socket: %s",
				      strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) != 0 ||
	    listen(fd, LISTEN_BACKLOG) != 0) {
		rc = errno;
		close(fd);
		return mtls_error_set(err, MTLS_ERR_IO, "%s:%u: %s",
				      t->listen_host, t->listen_port,
				      strerror(rc));
	}
	*out = fd;
	return MTLS_OK;
}

#define INHERIT_MAX 64

static struct {
	int fd;
	char name[CFG_NAME_MAX];
} inherited[INHERIT_MAX];
static unsigned n_inherited;

void listener_inherit(void)
{
	char **names = NULL;
	int n = sd_listen_fds_with_names(1, &names);

	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;

		if (n_inherited < INHERIT_MAX && names != NULL && names[i] != NULL &&
		    sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) > 0) {
			inherited[n_inherited].fd = fd;
			snprintf(inherited[n_inherited].name,
				 sizeof(inherited[0].name), "%s", names[i]);
			(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
			(void)fcntl(fd, F_SETFL, O_NONBLOCK);
			n_inherited++;
		}
		if (names != NULL)
			free(names[i]);
	}
	free(names);
}

mtls_err_t listener_open(const struct cfg_tunnel *t, int *fd, int *activated,
			 struct mtls_error *err)
{
	*activated = 0;
	for (unsigned i = 0; i < n_inherited; i++) {
		if (strcmp(inherited[i].name, t->name) == 0) {
			*fd = inherited[i].fd;
			*activated = 1;
			return MTLS_OK;
		}
	}
	if (t->listen_path != NULL)
		return open_unix(t, fd, err);
	return open_tcp(t, fd, err);
}

void listener_unlink(const struct cfg_tunnel *t)
{
	if (t->listen_path != NULL)
		unlink(t->listen_path);
}

int listener_same(const struct cfg_tunnel *a, const struct cfg_tunnel *b)
{
	if (a->listen_path != NULL && b->listen_path != NULL)
		return strcmp(a->listen_path, b->listen_path) == 0 &&
		       a->mode == b->mode && a->owner == b->owner &&
		       a->group == b->group;
	if (a->listen_host != NULL && b->listen_host != NULL)
		return strcmp(a->listen_host, b->listen_host) == 0 &&
		       a->listen_port == b->listen_port;
	return 0;
}
