/* Names to addresses, one way for every outgoing connection (servers,
 * OCSP responders, CRL distribution points): an address literal must be
 * in its standard form, so that no rule written for the usual spelling is
 * passed by another; and what counts as a local address. */
#ifndef MTLS_NET_ADDR_H
#define MTLS_NET_ADDR_H

#include <stdint.h>
#include <sys/socket.h>

#include "mtls_err.h"

#define NET_ADDRS_MAX 16

/* The addresses a name resolved to, in getaddrinfo's order. */
struct net_addrs {
	unsigned n;
	struct sockaddr_storage a[NET_ADDRS_MAX];
	socklen_t len[NET_ADDRS_MAX];
};

/* Resolves host:port (host may be "[v6]"). MTLS_ERR_BAD_REQUEST for an
 * address literal in a non-standard form ("127.1", "0x7f.0.0.1",
 * "fe80::1%lo"), MTLS_ERR_UNREACHABLE when it does not resolve. */
mtls_err_t net_resolve(const char *host, uint16_t port, struct net_addrs *out,
		       struct mtls_error *err);

/* 1 for an address on this host or its link: loopback, unspecified,
 * link-local, multicast, broadcast (IPv4 also when mapped into IPv6). */
int net_addr_local(const struct sockaddr_storage *a);

#endif
