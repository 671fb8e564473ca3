#include "net_addr.h"

#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "policy.h"

mtls_err_t net_resolve(const char *host, uint16_t port_num,
		       struct net_addrs *out, struct mtls_error *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_family = AF_UNSPEC,
				  .ai_flags = AI_NUMERICHOST };
	struct addrinfo *res = NULL, *ai;
	char name[POLICY_HOST_MAX], port[8];
	uint8_t lit[16];
	size_t n = strlen(host);
	int rc;

	out->n = 0;
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']')
		host++, n -= 2;
	if (n == 0 || n >= sizeof(name))
		return mtls_error_set(err, MTLS_ERR_BAD_REQUEST, "bad host");
	memcpy(name, host, n);
	name[n] = '\0';
	/* getaddrinfo takes "127.1", "2130706433", "0x7f.0.0.1",
	 * "0177.0.0.1" or "fe80::1%lo" too: each reaches an address that no
	 * rule written for its usual spelling sees. */
	if (policy_parse_address(name, lit) == 0 &&
	    getaddrinfo(name, NULL, &hints, &res) == 0) {
		freeaddrinfo(res);
		return mtls_error_set(err, MTLS_ERR_BAD_REQUEST,
				      "%s: an address in a non-standard form "
				      "(write it as a.b.c.d or in RFC 5952 "
				      "form)", name);
	}
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%u", port_num);
	rc = getaddrinfo(name, port, &hints, &res);
	if (rc != 0)
		return mtls_error_set(err, MTLS_ERR_UNREACHABLE, "%s: %s",
				      name, gai_strerror(rc));
	for (ai = res; ai != NULL && out->n < NET_ADDRS_MAX; ai = ai->ai_next) {
		if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
		    ai->ai_addrlen > sizeof(out->a[0]))
			continue;
		memcpy(&out->a[out->n], ai->ai_addr, ai->ai_addrlen);
		out->len[out->n++] = ai->ai_addrlen;
	}
	freeaddrinfo(res);
	if (out->n == 0)
		return mtls_error_set(err, MTLS_ERR_UNREACHABLE,
				      "%s: no address", name);
	return MTLS_OK;
}

static int v4_local(const uint8_t *b)
{
	return b[0] == 127 || b[0] == 0 ||          /* loopback, "this host" */
	       (b[0] == 169 && b[1] == 254) ||       /* link-local */
	       b[0] >= 224;                          /* multicast, reserved,
							broadcast */
}

int net_addr_local(const struct sockaddr_storage *a)
{
	const struct in6_addr *v6;

	if (a->ss_family == AF_INET)
		return v4_local((const uint8_t *)&((const struct sockaddr_in *)a)
					->sin_addr);
	if (a->ss_family != AF_INET6)
		return 1;
	v6 = &((const struct sockaddr_in6 *)a)->sin6_addr;
	if (IN6_IS_ADDR_V4MAPPED(v6) || IN6_IS_ADDR_V4COMPAT(v6))
		return v4_local(v6->s6_addr + 12);
	return IN6_IS_ADDR_LOOPBACK(v6) || IN6_IS_ADDR_UNSPECIFIED(v6) ||
	       IN6_IS_ADDR_LINKLOCAL(v6) || IN6_IS_ADDR_SITELOCAL(v6) ||
	       IN6_IS_ADDR_MULTICAST(v6);
}
