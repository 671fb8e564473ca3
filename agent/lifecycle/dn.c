#include "dn.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "mtls_hex.h"

/* The attribute types a subject may name, with their DER OIDs and the
 * string type of their values (RFC 5280 appendix A, RFC 4519). */
static const struct {
	const char *name;
	uint8_t oid[10];
	uint8_t oid_len;
	uint8_t tag; /* 0x0c UTF8String, 0x13 PrintableString, 0x16 IA5String */
	uint8_t max; /* ub- values of RFC 5280 */
} types[] = {
	{ "CN", { 0x55, 0x04, 0x03 }, 3, 0x0c, 64 },
	{ "serialNumber", { 0x55, 0x04, 0x05 }, 3, 0x13, 64 },
	{ "C", { 0x55, 0x04, 0x06 }, 3, 0x13, 2 },
	{ "L", { 0x55, 0x04, 0x07 }, 3, 0x0c, 128 },
	{ "ST", { 0x55, 0x04, 0x08 }, 3, 0x0c, 128 },
	{ "STREET", { 0x55, 0x04, 0x09 }, 3, 0x0c, 128 },
	{ "O", { 0x55, 0x04, 0x0a }, 3, 0x0c, 64 },
	{ "OU", { 0x55, 0x04, 0x0b }, 3, 0x0c, 64 },
	{ "UID", { 0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01 },
	  10, 0x0c, 128 },
	{ "DC", { 0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19 },
	  10, 0x16, 63 },
	{ "emailAddress", { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01 },
	  9, 0x16, 128 },
};

struct rdn {
	int type;
	uint8_t v[DN_VALUE_MAX];
	size_t len;
};

/* Well-formed UTF-8 (no overlong form, surrogate or code point past
 * U+10FFFF), without C0 controls or DEL. */
static int valid_utf8(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = s[i], lo = 0x80, hi = 0xbf;
		size_t k;

		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return 0;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			k = 1;
		else if (c >= 0xe0 && c <= 0xef)
			k = 2;
		else if (c >= 0xf0 && c <= 0xf4)
			k = 3;
		else
			return 0;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
		else if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
		if (k >= n - i || s[i + 1] < lo || s[i + 1] > hi)
			return 0;
		for (size_t j = 2; j <= k; j++)
			if ((s[i + j] & 0xc0) != 0x80)
				return 0;
		i += k + 1;
	}
	return 1;
}

/* One "type=value" from *p; *p moves past it (to ',' or the end). */
static mtls_err_t parse_rdn(const char **p, struct rdn *r,
			    struct mtls_error *err)
{
	const char *s = *p, *eq;
	size_t tlen;

	while (*s == ' ')
		s++;
	eq = strchr(s, '=');
	if (eq == NULL)
		return mtls_error_set(err, MTLS_ERR_ARG,
				      "subject: '%.40s' lacks '='", s);
	tlen = (size_t)(eq - s);
	r->type = -1;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strlen(types[i].name) == tlen &&
		    strncasecmp(types[i].name, s, tlen) == 0)
			r->type = (int)i;
	if (r->type < 0)
		return mtls_error_set(err, MTLS_ERR_ARG,
				      "subject: attribute '%.*s' not supported "
				      "(CN O OU C ST L STREET DC UID "
				      "serialNumber emailAddress)",
				      (int)(tlen > 40 ? 40 : tlen), s);
	s = eq + 1;
	if (*s == '#')
		return mtls_error_set(err, MTLS_ERR_ARG,
				      "subject: %s=#hex values are not taken",
				      types[r->type].name);
	r->len = 0;
	while (*s != '\0' && *s != ',') {
		int c = (unsigned char)*s;

		if (c == '\\') {
			int hi = mtls_hexval(s[1]), lo = hi >= 0 ? mtls_hexval(s[2]) : -1;

			if (hi >= 0 && lo >= 0) {
				c = hi * 16 + lo;
				s += 3;
			} else if (s[1] != '\0' && strchr(" \"#+,;<=>\\", s[1])) {
				c = (unsigned char)s[1];
				s += 2;
			} else {
				return mtls_error_set(err, MTLS_ERR_ARG,
						      "subject: bad escape in "
						      "%s=", types[r->type].name);
			}
		} else if (strchr("\"+;<>", c)) {
			return mtls_error_set(err, MTLS_ERR_ARG,
					      "subject: '%c' in %s= must be "
					      "escaped (\\%c)%s", c,
					      types[r->type].name, c,
					      c == '+' ? "; multi-valued RDNs "
							 "are not taken" : "");
		} else {
			s++;
		}
		if (r->len >= DN_VALUE_MAX)
			return mtls_error_set(err, MTLS_ERR_ARG,
					      "subject: %s= too long",
					      types[r->type].name);
		r->v[r->len++] = (uint8_t)c;
	}
	*p = s;
	if (r->len == 0)
		return mtls_error_set(err, MTLS_ERR_ARG, "subject: %s= is empty",
				      types[r->type].name);
	if (r->len > types[r->type].max)
		return mtls_error_set(err, MTLS_ERR_ARG,
				      "subject: %s= longer than %u bytes",
				      types[r->type].name, types[r->type].max);
	if (!valid_utf8(r->v, r->len))
		return mtls_error_set(err, MTLS_ERR_ARG,
				      "subject: %s= is not printable UTF-8",
				      types[r->type].name);
	if (types[r->type].tag != 0x0c)
		for (size_t i = 0; i < r->len; i++)
			if (r->v[i] >= 0x80 ||
			    (types[r->type].tag == 0x13 &&
			     !isalnum(r->v[i]) && !strchr(" '()+,-./:=?", r->v[i])))
				return mtls_error_set(err, MTLS_ERR_ARG,
						      "subject: %s= takes ASCII "
						      "%s only", types[r->type].name,
						      types[r->type].tag == 0x13 ?
							      "letters, digits and "
							      "' ()+,-./:=?" :
							      "characters");
	if (types[r->type].tag == 0x13 && types[r->type].max == 2 &&
	    (r->len != 2 || !isalpha(r->v[0]) || !isalpha(r->v[1])))
		return mtls_error_set(err, MTLS_ERR_ARG,
				      "subject: C= takes a two-letter country "
				      "code");
	return MTLS_OK;
}

/* DER length octets for n < 65536; returns their count. */
static size_t der_len(size_t n, uint8_t out[3])
{
	if (n < 0x80) {
		out[0] = (uint8_t)n;
		return 1;
	}
	if (n < 0x100) {
		out[0] = 0x81;
		out[1] = (uint8_t)n;
		return 2;
	}
	out[0] = 0x82;
	out[1] = (uint8_t)(n >> 8);
	out[2] = (uint8_t)n;
	return 3;
}

struct w {
	uint8_t *p;
	size_t cap, len;
	int full;
};

static void put(struct w *w, const void *b, size_t n)
{
	if (w->full || n > w->cap - w->len) {
		w->full = 1;
		return;
	}
	memcpy(w->p + w->len, b, n);
	w->len += n;
}

static void put_hdr(struct w *w, uint8_t tag, size_t n)
{
	uint8_t l[3];
	size_t k = der_len(n, l);

	put(w, &tag, 1);
	put(w, l, k);
}

static size_t hdr_size(size_t n)
{
	return n < 0x80 ? 2 : n < 0x100 ? 3 : 4;
}

mtls_err_t dn_encode(const char *subject, uint8_t *out, size_t cap,
		     size_t *out_len, struct mtls_error *err)
{
	struct rdn rdns[DN_RDN_MAX];
	size_t n = 0, body = 0;
	const char *p = subject;
	int have_cn = 0;
	struct w w = { out, cap, 0, 0 };
	mtls_err_t r;

	*out_len = 0;
	if (strlen(subject) > DN_STRING_MAX)
		return mtls_error_set(err, MTLS_ERR_ARG, "subject too long");
	for (;;) {
		if (n == DN_RDN_MAX)
			return mtls_error_set(err, MTLS_ERR_ARG,
					      "subject: more than %d attributes",
					      DN_RDN_MAX);
		r = parse_rdn(&p, &rdns[n], err);
		if (r != MTLS_OK)
			return r;
		have_cn |= rdns[n].type == 0;
		n++;
		if (*p == '\0')
			break;
		p++; /* ',' */
	}
	if (!have_cn)
		return mtls_error_set(err, MTLS_ERR_ARG, "subject needs CN=");
	/* Name ::= SEQUENCE OF SET OF SEQUENCE { type, value }, last RDN of
	 * the string first. */
	for (size_t i = 0; i < n; i++) {
		size_t atv = 2 + types[rdns[i].type].oid_len +
			     hdr_size(rdns[i].len) + rdns[i].len;

		body += hdr_size(hdr_size(atv) + atv) + hdr_size(atv) + atv;
	}
	put_hdr(&w, 0x30, body);
	for (size_t k = n; k-- > 0;) {
		const struct rdn *rd = &rdns[k];
		size_t atv = 2 + types[rd->type].oid_len + hdr_size(rd->len) +
			     rd->len;

		put_hdr(&w, 0x31, hdr_size(atv) + atv);
		put_hdr(&w, 0x30, atv);
		put_hdr(&w, 0x06, types[rd->type].oid_len);
		put(&w, types[rd->type].oid, types[rd->type].oid_len);
		put_hdr(&w, types[rd->type].tag, rd->len);
		put(&w, rd->v, rd->len);
	}
	if (w.full)
		return mtls_error_set(err, MTLS_ERR_ARG, "subject too long");
	*out_len = w.len;
	return MTLS_OK;
}
