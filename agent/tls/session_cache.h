/* TLS sessions kept for resumption, per route: a resumed handshake makes
 * no signature on the token. The key names the route and the identity's
 * certificate generation, so a renewed identity never resumes a session
 * made with the key it replaced; and a session is offered only to a
 * connection of the very TLS context it was made under (tls_ctx_serial),
 * so none outlives a CRL change or a reload. Bounded; the oldest entry
 * goes first. */
#ifndef MTLS_SESSION_CACHE_H
#define MTLS_SESSION_CACHE_H

typedef struct WOLFSSL WOLFSSL;

/* Offers the cached session for key to ssl, before the handshake. */
void session_cache_offer(const char *key, WOLFSSL *ssl);
/* Keeps ssl's session (with its TLS 1.3 ticket, so call it after data was
 * read) under key. */
void session_cache_keep(const char *key, WOLFSSL *ssl);
void session_cache_clear(void);

#endif
