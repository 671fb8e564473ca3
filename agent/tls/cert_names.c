#include "cert_names.h"

#include <string.h>

#include "policy.h"

int cert_ip_literal(const char *s, uint8_t addr[16])
{
	/* The policy's reading of an address, so that the address a rule
	 * allowed is the one the certificate must name. */
	return policy_parse_address(s, addr);
}

static char lower(char c)
{
	/* ASCII only: names in certificates are A-labels, and the C
	 * locale's tolower must not decide what matches. */
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static int same(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower(a[i]) != lower(b[i]))
			return 0;
	return 1;
}

/* A name without its trailing dot: its length, or 0 when it is empty, too
 * long, has an empty label or a NUL. */
static size_t name_len(const char *s, size_t n)
{
	if (n > 0 && s[n - 1] == '.')
		n--;
	if (n == 0 || n > CERT_NAME_MAX || memchr(s, '\0', n) != NULL)
		return 0;
	if (s[0] == '.' || s[n - 1] == '.')
		return 0;
	for (size_t i = 1; i < n; i++)
		if (s[i] == '.' && s[i - 1] == '.')
			return 0;
	return n;
}

/* 1: "*.<rest>" with rest of two labels or more and no other wildcard;
 * 0: no wildcard at all; -1: a wildcard anywhere else (never matches).
 * RFC 6125 6.4.3 allows the wildcard as the left-most label only and
 * lets clients refuse partial-label wildcards ("a*", "*a"); we refuse
 * them. A wildcard over a single remaining label ("*.com", "*.local")
 * would cover a whole top-level or internal domain: refused too (the CA/B
 * Baseline Requirements forbid it for public CAs; we do not carry a
 * public suffix list). */
static int wildcard(const char *s, size_t n)
{
	const char *rest;

	if (memchr(s, '*', n) == NULL && memchr(s, '?', n) == NULL)
		return 0;
	if (n < 3 || s[0] != '*' || s[1] != '.')
		return -1;
	rest = s + 2;
	if (memchr(rest, '*', n - 2) != NULL || memchr(rest, '?', n - 2) != NULL ||
	    memchr(rest, '.', n - 2) == NULL)
		return -1;
	return 1;
}

/* Does the plain name p (pn bytes) fall under "*.<rest>" (w, wn bytes)?
 * Exactly one label in place of the star. */
static int under_wildcard(const char *w, size_t wn, const char *p, size_t pn)
{
	const char *dot = memchr(p, '.', pn);
	size_t rest;

	if (dot == NULL || dot == p)
		return 0;
	rest = pn - (size_t)(dot + 1 - p);
	return rest == wn - 2 && same(dot + 1, w + 2, rest);
}

int cert_dns_id_match(const char *ref, const char *presented, size_t len)
{
	size_t rn = name_len(ref, strlen(ref)), pn = name_len(presented, len);
	int rw, pw;

	if (rn == 0 || pn == 0)
		return 0;
	rw = wildcard(ref, rn);
	pw = wildcard(presented, pn);
	if (rw < 0 || pw < 0)
		return 0;
	if (rw && pw) /* a profile pattern and a certificate for the same zone */
		return rn == pn && same(ref, presented, rn);
	if (pw)
		return under_wildcard(presented, pn, ref, rn);
	if (rw)
		return under_wildcard(ref, rn, presented, pn);
	return rn == pn && same(ref, presented, rn);
}

int cert_ip_id_match(int family, const uint8_t addr[16], const uint8_t *ip,
		     size_t len)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0,
					    0, 0, 0, 0, 0xff, 0xff };

	/* A certificate may name an IPv4 address as ::ffff:a.b.c.d. */
	if (len == 16 && memcmp(ip, mapped, 12) == 0) {
		ip += 12;
		len = 4;
	}
	if (family == 4)
		return len == 4 && memcmp(ip, addr, 4) == 0;
	if (family == 6)
		return len == 16 && memcmp(ip, addr, 16) == 0;
	return 0;
}
