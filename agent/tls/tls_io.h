/* Reading the server's TLS records from the socket in large pieces.
 * wolfSSL asks its receive callback for a record's 5-byte header, then
 * for its body: two recv calls per record. Here one recv takes what the
 * socket has (up to TLS_IO_READAHEAD) and the records are handed out from
 * that buffer. The buffer exists only while bytes flow: it is allocated
 * when wolfSSL asks and freed when the socket has nothing more (idle
 * connections hold none). */
#ifndef MTLS_TLS_IO_H
#define MTLS_TLS_IO_H

#include <stddef.h>
#include <stdint.h>

#define TLS_IO_READAHEAD 65536

struct tls_io {
	int fd;
	uint8_t *buf; /* NULL while idle */
	size_t off, len;
};

typedef struct WOLFSSL WOLFSSL;

/* Makes ssl read fd through io (which must outlive ssl's use). */
int tls_io_attach(WOLFSSL *ssl, struct tls_io *io, int fd);
/* Frees the buffer (bytes not taken by wolfSSL are wiped: they are
 * ciphertext, but nothing needs them). */
void tls_io_release(struct tls_io *io);

#endif
