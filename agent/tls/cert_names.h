/* Does a server certificate's name match the name the agent expects?
 * RFC 6125 rules for DNS names, exact bytes for IP addresses. Pure
 * functions (no wolfSSL, no I/O): tls.c feeds them the certificate's
 * subjectAltNames. */
#ifndef MTLS_CERT_NAMES_H
#define MTLS_CERT_NAMES_H

#include <stddef.h>
#include <stdint.h>

#define CERT_NAME_MAX 253 /* RFC 1035: the longest DNS name, without a trailing dot */

/* 4 or 6 when s is an IPv4 or IPv6 address literal ("[::1]" too),
 * with its bytes in addr; 0 for anything else. ::ffff:a.b.c.d is the IPv4
 * address a.b.c.d (it reaches that host). */
int cert_ip_literal(const char *s, uint8_t addr[16]);

/* Does the certificate's dNSName presented (len bytes, not NUL-terminated,
 * from the certificate) match the reference name ref (what the agent
 * expects: the destination host, or a profile's `names` entry)?
 * Case-insensitive (ASCII; A-labels compare as ASCII), one trailing dot
 * ignored on either side. A wildcard is allowed only as the whole left-most
 * label, "*.example.com", with at least two labels after it, and matches
 * exactly one label; "*", "*.com", "a*.example.com", "*.*.example.com"
 * match nothing. ref may be such a wildcard too (a profile pattern): it
 * then matches the names it covers, and an identical wildcard. */
int cert_dns_id_match(const char *ref, const char *presented, size_t len);

/* Does the certificate's iPAddress (len bytes: 4 or 16) equal addr
 * (family 4 or 6, as cert_ip_literal gives it)? */
int cert_ip_id_match(int family, const uint8_t addr[16], const uint8_t *ip,
		     size_t len);

#endif
