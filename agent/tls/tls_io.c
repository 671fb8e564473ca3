#include <wolfssl/options.h>

#include "tls_io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <wolfssl/ssl.h>

/* As wolfSSL's own EmbedReceive maps recv's results (wolfio.c). */
static int io_error(ssize_t n)
{
	if (n == 0)
		return WOLFSSL_CBIO_ERR_CONN_CLOSE;
	switch (errno) {
	case EAGAIN:
#if EWOULDBLOCK != EAGAIN
	case EWOULDBLOCK:
#endif
		return WOLFSSL_CBIO_ERR_WANT_READ;
	case ECONNRESET:
		return WOLFSSL_CBIO_ERR_CONN_RST;
	case EINTR:
		return WOLFSSL_CBIO_ERR_ISR;
	case EPIPE:
	case ECONNABORTED:
		return WOLFSSL_CBIO_ERR_CONN_CLOSE;
	default:
		return WOLFSSL_CBIO_ERR_GENERAL;
	}
}

static int give(struct tls_io *io, char *out, int sz)
{
	size_t n = io->len < (size_t)sz ? io->len : (size_t)sz;

	memcpy(out, io->buf + io->off, n);
	io->off += n;
	io->len -= n;
	return (int)n;
}

static int io_recv(WOLFSSL *ssl, char *out, int sz, void *ctx)
{
	struct tls_io *io = ctx;
	ssize_t n;

	(void)ssl;
	if (sz <= 0)
		return 0;
	if (io->len > 0)
		return give(io, out, sz);
	/* A request as large as the buffer gains nothing from it. */
	if ((size_t)sz >= TLS_IO_READAHEAD) {
		n = recv(io->fd, out, (size_t)sz, 0);
		return n > 0 ? (int)n : io_error(n);
	}
	if (io->buf == NULL && (io->buf = malloc(TLS_IO_READAHEAD)) == NULL) {
		/* No memory for the buffer: read just what was asked. */
		n = recv(io->fd, out, (size_t)sz, 0);
		return n > 0 ? (int)n : io_error(n);
	}
	n = recv(io->fd, io->buf, TLS_IO_READAHEAD, 0);
	if (n <= 0) {
		int e = errno, r = io_error(n);

		/* Nothing more for now: an idle connection keeps no buffer. */
		free(io->buf);
		io->buf = NULL;
		errno = e;
		return r;
	}
	io->off = 0;
	io->len = (size_t)n;
	return give(io, out, sz);
}

int tls_io_attach(WOLFSSL *ssl, struct tls_io *io, int fd)
{
	*io = (struct tls_io){ .fd = fd };
	wolfSSL_SSLSetIORecv(ssl, io_recv);
	wolfSSL_SetIOReadCtx(ssl, io);
	return 0;
}

void tls_io_release(struct tls_io *io)
{
	if (io->buf != NULL)
		explicit_bzero(io->buf + io->off, io->len);
	free(io->buf);
	io->buf = NULL;
	io->off = io->len = 0;
}
