/* Building a policy from key = value pairs, and the load-time checks. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

static int fail(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return -1;
}

static int copy(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);

	if (n == 0 || n >= cap)
		return -1;
	memcpy(dst, src, n + 1);
	return 0;
}

/* Splits a comma-separated list into trimmed items; calls fn on each. */
static int each_item(const char *list, int (*fn)(void *, const char *, char *,
						  size_t),
		     void *ctx, char *err, size_t len)
{
	char item[POLICY_PATH_MAX];
	const char *p = list;

	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);

		while (n > 0 && isspace((unsigned char)*p)) {
			p++;
			n--;
		}
		while (n > 0 && isspace((unsigned char)p[n - 1]))
			n--;
		if (n == 0)
			return fail(err, len, "empty item in list");
		if (n >= sizeof(item))
			return fail(err, len, "list item longer than %zu",
				    sizeof(item) - 1);
		memcpy(item, p, n);
		item[n] = '\0';
		if (fn(ctx, item, err, len) != 0)
			return -1;
		if (comma == NULL)
			return 0;
		p = comma + 1;
	}
}

static int add_pattern(void *ctx, const char *s, char *err, size_t len)
{
	struct policy_hosts *h = ctx;

	if (h->n >= POLICY_LIST_MAX)
		return fail(err, len, "more than %d entries", POLICY_LIST_MAX);
	if (copy(h->pattern[h->n], sizeof(h->pattern[0]), s) != 0)
		return fail(err, len, "'%s' too long", s);
	h->n++;
	return 0;
}

static int add_host(void *ctx, const char *s, char *err, size_t len)
{
	for (const char *c = s; *c; c++)
		if (!isalnum((unsigned char)*c) && !strchr("-.*?_:[]", *c))
			return fail(err, len, "'%s' is not a host name or "
					      "pattern", s);
	return add_pattern(ctx, s, err, len);
}

static int parse_u16(const char *s, const char *end, uint16_t *out)
{
	unsigned long v = 0;

	if (s == end || end - s > 5)
		return -1;
	for (; s < end; s++) {
		if (!isdigit((unsigned char)*s))
			return -1;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	if (v > 65535)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

static int add_port(void *ctx, const char *s, char *err, size_t len)
{
	struct policy_ports *p = ctx;
	const char *dash = strchr(s, '-');
	uint16_t lo, hi;

	if (p->n >= POLICY_LIST_MAX)
		return fail(err, len, "more than %d port ranges",
			    POLICY_LIST_MAX);
	if (dash == NULL) {
		if (parse_u16(s, s + strlen(s), &lo) != 0 || lo == 0)
			return fail(err, len, "bad port '%s'", s);
		hi = lo;
	} else if (parse_u16(s, dash, &lo) != 0 ||
		   parse_u16(dash + 1, dash + 1 + strlen(dash + 1), &hi) != 0 ||
		   lo == 0 || hi < lo) {
		return fail(err, len, "bad port range '%s' (like 8000-8999)", s);
	}
	p->lo[p->n] = lo;
	p->hi[p->n] = hi;
	p->n++;
	return 0;
}

int policy_parse_cidr(const char *s, uint8_t *family, uint8_t addr[16],
		      uint8_t *prefix)
{
	char host[64];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	unsigned long bits;
	char *end;
	int f;

	if (n == 0 || n >= sizeof(host))
		return -1;
	memcpy(host, s, n);
	host[n] = '\0';
	memset(addr, 0, 16);
	f = policy_parse_address(host, addr);
	if (f == 0)
		return -1;
	if (slash == NULL) {
		bits = f == 4 ? 32 : 128;
	} else {
		/* Digits only: strtoul would take "-0" or " 8". */
		if (slash[1] == '\0' ||
		    strspn(slash + 1, "0123456789") != strlen(slash + 1) ||
		    strlen(slash + 1) > 3)
			return -1;
		errno = 0;
		bits = strtoul(slash + 1, &end, 10);
		if (*end != '\0' || errno != 0)
			return -1;
		/* "::ffff:10.0.0.0/104" was normalised to IPv4 by the address
		 * parser; its prefix follows. */
		if (f == 4 && strchr(host, ':') != NULL) {
			if (bits < 96)
				return -1;
			bits -= 96;
		}
		if (bits > (f == 4 ? 32u : 128u))
			return -1;
	}
	*family = (uint8_t)f;
	*prefix = (uint8_t)bits;
	return 0;
}

static int add_cidr(void *ctx, const char *s, char *err, size_t len)
{
	struct policy_cidrs *c = ctx;

	if (c->n >= POLICY_LIST_MAX)
		return fail(err, len, "more than %d CIDRs", POLICY_LIST_MAX);
	if (policy_parse_cidr(s, &c->family[c->n], c->addr[c->n],
			      &c->prefix[c->n]) != 0)
		return fail(err, len, "bad CIDR '%s' (like 10.0.0.0/8)", s);
	c->n++;
	return 0;
}

struct id_list {
	int64_t *v;
	unsigned *n;
};

static int add_id(void *ctx, const char *s, char *err, size_t len)
{
	struct id_list *l = ctx;
	char *end;
	unsigned long long v;

	if (*l->n >= POLICY_LIST_MAX)
		return fail(err, len, "more than %d ids", POLICY_LIST_MAX);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (!isdigit((unsigned char)*s) || *end != '\0' || errno != 0 ||
	    v > 0xfffffffeULL)
		return fail(err, len, "'%s' is not a numeric id", s);
	l->v[(*l->n)++] = (int64_t)v;
	return 0;
}

static int days_from_civil(int y, int m, int d, int64_t *out)
{
	/* Howard Hinnant's algorithm: days since 1970-01-01. */
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	*out = era * 146097 + doe - 719468;
	return 0;
}

int policy_parse_time(const char *s, int64_t *out)
{
	int y, mo, d, h = 0, mi = 0, se = 0, n = 0;
	int64_t days;
	size_t len = strlen(s);
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	/* Fixed positions, digits only: sscanf's %d would take signs and
	 * spaces. */
	for (size_t i = 0; i < len; i++) {
		int want_digit = !(i == 4 || i == 7 || i == 10 || i == 13 ||
				   i == 16 || i == 19);

		if (want_digit && !isdigit((unsigned char)s[i]))
			return -1;
	}
	if (len == 10) {
		if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
			return -1;
	} else if (len == 20) {
		if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &y, &mo, &d, &h, &mi,
			   &se, &n) != 6 || n != 20)
			return -1;
	} else {
		return -1;
	}
	if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 ||
	    d > mdays[mo - 1] || h > 23 || mi > 59 || se > 59 || h < 0 ||
	    mi < 0 || se < 0)
		return -1;
	if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return -1;
	days_from_civil(y, mo, d, &days);
	*out = days * 86400 + h * 3600 + mi * 60 + se;
	return 0;
}

static int b64_value(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int policy_parse_pin(const char *s, uint8_t out[32])
{
	size_t n = strlen(s);

	if (n == 64) {
		for (size_t i = 0; i < 32; i++) {
			unsigned v;

			if (!isxdigit((unsigned char)s[2 * i]) ||
			    !isxdigit((unsigned char)s[2 * i + 1]) ||
			    sscanf(s + 2 * i, "%2x", &v) != 1)
				return -1;
			out[i] = (uint8_t)v;
		}
		return 0;
	}
	/* sha256//BASE64, as in HPKP and curl's --pinnedpubkey. */
	if (n != 8 + 44 || strncmp(s, "sha256//", 8) != 0 || s[51] != '=')
		return -1;
	s += 8;
	uint32_t acc = 0;
	size_t o = 0;
	for (size_t i = 0; i < 43; i++) {
		int v = b64_value((unsigned char)s[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		if (i % 4 == 3) {
			out[o++] = (uint8_t)(acc >> 16);
			out[o++] = (uint8_t)(acc >> 8);
			out[o++] = (uint8_t)acc;
			acc = 0;
		}
	}
	/* 43 symbols: 10 full groups (30 bytes) and 3 symbols = 2 bytes. */
	if (acc & 0x3)
		return -1; /* non-canonical trailing bits */
	out[o++] = (uint8_t)(acc >> 10);
	out[o++] = (uint8_t)(acc >> 2);
	return o == 32 ? 0 : -1;
}

static int parse_days(const char *s, uint8_t *mask)
{
	static const char *const names[] = { "sun", "mon", "tue", "wed",
					     "thu", "fri", "sat" };
	char buf[128];
	char *save = NULL, *tok;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	*mask = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int a = -1, b = -1;
		char *dash;

		while (isspace((unsigned char)*tok))
			tok++;
		for (char *e = tok + strlen(tok); e > tok && isspace((unsigned char)e[-1]); )
			*--e = '\0';
		dash = strchr(tok, '-');
		if (dash)
			*dash = '\0';
		for (int i = 0; i < 7; i++) {
			if (strcasecmp(tok, names[i]) == 0)
				a = i;
			if (dash && strcasecmp(dash + 1, names[i]) == 0)
				b = i;
		}
		if (a < 0 || (dash && b < 0))
			return -1;
		if (!dash)
			b = a;
		/* mon-fri, and fri-mon wrapping over the weekend */
		for (int i = a;; i = (i + 1) % 7) {
			*mask |= (uint8_t)(1u << i);
			if (i == b)
				break;
		}
	}
	return *mask ? 0 : -1;
}

static int parse_hours(const char *s, int8_t *from, int8_t *to)
{
	int a, b, n = 0;

	if (sscanf(s, "%2d-%2d%n", &a, &b, &n) != 2 || s[n] != '\0' || a < 0 ||
	    a > 23 || b < 0 || b > 24 || a == b)
		return -1;
	*from = (int8_t)a;
	*to = (int8_t)b;
	return 0;
}

int policy_add_identity(struct policy *p, const char *name, const char *env,
			char *err, size_t err_len)
{
	struct policy_identity *id;

	if (p->n_identities >= POLICY_MAX_IDENTITIES)
		return fail(err, err_len, "too many identities");
	id = &p->identities[p->n_identities];
	memset(id, 0, sizeof(*id));
	if (copy(id->name, sizeof(id->name), name) != 0 ||
	    (env != NULL && *env && copy(id->env, sizeof(id->env), env) != 0))
		return fail(err, err_len, "identity name or env too long");
	return (int)p->n_identities++;
}

int policy_add(struct policy *p, enum policy_section s, const char *name,
	       int line, char *err, size_t err_len)
{
	switch (s) {
	case POLICY_SECTION_RULE: {
		struct policy_rule *r;

		if (p->n_rules >= POLICY_MAX_RULES)
			return fail(err, err_len, "more than %d rules",
				    POLICY_MAX_RULES);
		for (unsigned i = 0; i < p->n_rules; i++)
			if (strcmp(p->rules[i].name, name) == 0)
				return fail(err, err_len, "rule '%s' defined "
					    "twice", name);
		r = &p->rules[p->n_rules];
		memset(r, 0, sizeof(*r));
		if (copy(r->name, sizeof(r->name), name) != 0)
			return fail(err, err_len, "name too long");
		r->line = line;
		r->identity = r->profile = -1;
		r->when.hour_from = r->when.hour_to = -1;
		return (int)p->n_rules++;
	}
	case POLICY_SECTION_PROFILE: {
		struct policy_profile *pr;

		if (p->n_profiles >= POLICY_MAX_PROFILES)
			return fail(err, err_len, "more than %d profiles",
				    POLICY_MAX_PROFILES);
		for (unsigned i = 0; i < p->n_profiles; i++)
			if (strcmp(p->profiles[i].name, name) == 0)
				return fail(err, err_len, "profile '%s' "
					    "defined twice", name);
		pr = &p->profiles[p->n_profiles];
		memset(pr, 0, sizeof(*pr));
		if (copy(pr->name, sizeof(pr->name), name) != 0)
			return fail(err, err_len, "name too long");
		pr->line = line;
		pr->min_tls = 12;
		pr->rev_max_age = 7 * 86400;
		pr->rev_timeout_ms = 10000;
		return (int)p->n_profiles++;
	}
	case POLICY_SECTION_DESTINATIONS: {
		struct policy_destset *ds;

		if (p->n_destsets >= POLICY_MAX_DESTSETS)
			return fail(err, err_len, "more than %d destination "
				    "sets", POLICY_MAX_DESTSETS);
		for (unsigned i = 0; i < p->n_destsets; i++)
			if (strcmp(p->destsets[i].name, name) == 0)
				return fail(err, err_len, "destinations '%s' "
					    "defined twice", name);
		ds = &p->destsets[p->n_destsets];
		memset(ds, 0, sizeof(*ds));
		if (copy(ds->name, sizeof(ds->name), name) != 0)
			return fail(err, err_len, "name too long");
		ds->line = line;
		return (int)p->n_destsets++;
	}
	}
	return fail(err, err_len, "unknown section");
}

static int set_dest(struct policy_dest_match *m, const char *key,
		    const char *v, char *err, size_t len, int *handled)
{
	*handled = 1;
	if (strcmp(key, "hosts") == 0)
		return each_item(v, add_host, &m->hosts, err, len);
	if (strcmp(key, "cidrs") == 0)
		return each_item(v, add_cidr, &m->cidrs, err, len);
	if (strcmp(key, "ports") == 0)
		return each_item(v, add_port, &m->ports, err, len);
	*handled = 0;
	return 0;
}

struct name_list {
	char (*names)[POLICY_NAME_MAX];
	unsigned *n;
};

static int add_name(void *ctx, const char *s, char *err, size_t len)
{
	struct name_list *l = ctx;

	if (*l->n >= POLICY_LIST_MAX)
		return fail(err, len, "more than %d names", POLICY_LIST_MAX);
	if (copy(l->names[*l->n], POLICY_NAME_MAX, s) != 0)
		return fail(err, len, "name '%s' too long", s);
	(*l->n)++;
	return 0;
}

static int set_rule(struct policy_rule *r, const char *key, const char *v,
		    char *err, size_t len)
{
	int handled;

	/* A destination key restricts the rule even if its list is cut
	 * short by an error: never widen a rule to every destination. */
	if (strcmp(key, "hosts") == 0 || strcmp(key, "cidrs") == 0 ||
	    strcmp(key, "ports") == 0)
		r->has_dest = 1;
	if (set_dest(&r->dest, key, v, err, len, &handled) != 0)
		return -1;
	if (handled)
		return 0;
	if (strcmp(key, "uid") == 0)
		return each_item(v, add_id, &(struct id_list){ r->uids, &r->n_uids },
				 err, len);
	if (strcmp(key, "gid") == 0)
		return each_item(v, add_id, &(struct id_list){ r->gids, &r->n_gids },
				 err, len);
	if (strcmp(key, "exe") == 0)
		return each_item(v, add_pattern, &r->exes, err, len);
	if (strcmp(key, "unit") == 0)
		return each_item(v, add_pattern, &r->units, err, len);
	if (strcmp(key, "destinations") == 0)
		return each_item(v, add_name,
				 &(struct name_list){ r->destset_names,
						      &r->n_destsets },
				 err, len);
	if (strcmp(key, "not_before") == 0) {
		if (policy_parse_time(v, &r->when.not_before) != 0)
			return fail(err, len, "not_before: like 2026-01-31T08:00:00Z");
		return 0;
	}
	if (strcmp(key, "not_after") == 0) {
		if (policy_parse_time(v, &r->when.not_after) != 0)
			return fail(err, len, "not_after: like 2026-12-31T18:00:00Z");
		return 0;
	}
	if (strcmp(key, "days") == 0) {
		if (parse_days(v, &r->when.weekdays) != 0)
			return fail(err, len, "days: like mon-fri or sat,sun");
		return 0;
	}
	if (strcmp(key, "hours") == 0) {
		if (parse_hours(v, &r->when.hour_from, &r->when.hour_to) != 0)
			return fail(err, len, "hours: like 08-18 (UTC, end excluded)");
		return 0;
	}
	if (strcmp(key, "action") == 0) {
		if (strcmp(v, "allow") == 0)
			r->action = POLICY_ACTION_ALLOW;
		else if (strcmp(v, "deny") == 0)
			r->action = POLICY_ACTION_DENY;
		else
			return fail(err, len, "action: allow or deny");
		return 0;
	}
	if (strcmp(key, "identity") == 0) {
		if (copy(r->identity_name, sizeof(r->identity_name), v) != 0)
			return fail(err, len, "identity name too long");
		return 0;
	}
	if (strcmp(key, "profile") == 0) {
		if (copy(r->profile_name, sizeof(r->profile_name), v) != 0)
			return fail(err, len, "profile name too long");
		return 0;
	}
	if (strcmp(key, "reason") == 0) {
		if (copy(r->reason, sizeof(r->reason), v) != 0)
			return fail(err, len, "reason too long");
		for (char *c = r->reason; *c; c++)
			if (!isprint((unsigned char)*c))
				return fail(err, len, "reason: printable text only");
		return 0;
	}
	return fail(err, len, "unknown key '%s' in a rule", key);
}

static int add_pin(void *ctx, const char *s, char *err, size_t len)
{
	struct policy_profile *pr = ctx;

	if (pr->n_pins >= POLICY_MAX_PINS)
		return fail(err, len, "more than %d pins", POLICY_MAX_PINS);
	if (policy_parse_pin(s, pr->pins[pr->n_pins]) != 0)
		return fail(err, len, "pin '%s': sha256//BASE64 or 64 hex "
				      "digits of the SPKI's SHA-256", s);
	pr->n_pins++;
	return 0;
}

static int add_crl(void *ctx, const char *s, char *err, size_t len)
{
	struct policy_profile *pr = ctx;

	if (pr->n_crls >= POLICY_LIST_MAX)
		return fail(err, len, "more than %d CRLs", POLICY_LIST_MAX);
	if (s[0] != '/' || copy(pr->crls[pr->n_crls], POLICY_PATH_MAX, s) != 0)
		return fail(err, len, "crl '%s': an absolute path", s);
	pr->n_crls++;
	return 0;
}

static int add_rev_method(void *ctx, const char *s, char *err, size_t len)
{
	struct policy_profile *pr = ctx;
	uint8_t m;

	if (strcmp(s, "staple") == 0)
		m = POLICY_REV_STAPLE;
	else if (strcmp(s, "ocsp") == 0)
		m = POLICY_REV_OCSP;
	else if (strcmp(s, "crl") == 0)
		m = POLICY_REV_CRL;
	else
		return fail(err, len, "revocation_methods: '%s' is none of "
			    "staple, ocsp, crl", s);
	for (unsigned i = 0; i < pr->n_rev_methods; i++)
		if (pr->rev_methods[i] == m)
			return fail(err, len, "revocation_methods: '%s' twice", s);
	pr->rev_methods[pr->n_rev_methods++] = m;
	return 0;
}

/* "30", "30s", "5m", "12h", "7d" -> seconds; 0 is refused. */
static int parse_seconds(const char *v, uint32_t max, uint32_t *out)
{
	unsigned long n = 0, mult = 1;
	const char *p = v;

	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		n = n * 10 + (unsigned long)(*p - '0');
		if (n > max)
			return -1;
	}
	if (strcmp(p, "m") == 0 || strcmp(p, "min") == 0)
		mult = 60;
	else if (strcmp(p, "h") == 0)
		mult = 3600;
	else if (strcmp(p, "d") == 0)
		mult = 86400;
	else if (*p != '\0' && strcmp(p, "s") != 0)
		return -1;
	if (n == 0 || n * mult > max)
		return -1;
	*out = (uint32_t)(n * mult);
	return 0;
}

static int yes_no(const char *v, int *out)
{
	if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0)
		*out = 1;
	else if (strcmp(v, "no") == 0 || strcmp(v, "false") == 0)
		*out = 0;
	else
		return -1;
	return 0;
}

static int set_profile_revocation(struct policy_profile *pr, const char *key,
				  const char *v, char *err, size_t len)
{
	uint32_t s;

	if (strcmp(key, "revocation_methods") == 0) {
		pr->n_rev_methods = 0;
		if (strcmp(v, "none") == 0)
			return 0;
		return each_item(v, add_rev_method, pr, err, len);
	}
	if (strcmp(key, "revocation_chain") == 0) {
		if (strcmp(v, "leaf") == 0)
			pr->rev_chain = 0;
		else if (strcmp(v, "all") == 0)
			pr->rev_chain = 1;
		else
			return fail(err, len, "revocation_chain: leaf or all");
		return 0;
	}
	if (strcmp(key, "ocsp_url") == 0) {
		if (strncmp(v, "http://", 7) != 0 ||
		    copy(pr->ocsp_url, sizeof(pr->ocsp_url), v) != 0 ||
		    strpbrk(v, " \t\r\n\"") != NULL)
			return fail(err, len, "ocsp_url: an http:// URL (OCSP "
				    "answers are signed; RFC 6960 A.1)");
		return 0;
	}
	if (strcmp(key, "revocation_max_age") == 0) {
		if (parse_seconds(v, 366u * 86400, &s) != 0)
			return fail(err, len, "revocation_max_age: a duration "
				    "such as 12h or 7d, at most 366d");
		pr->rev_max_age = s;
		return 0;
	}
	if (strcmp(key, "revocation_timeout") == 0) {
		if (parse_seconds(v, 120, &s) != 0)
			return fail(err, len, "revocation_timeout: 1 to 120 "
				    "seconds (e.g. 10s)");
		pr->rev_timeout_ms = s * 1000;
		return 0;
	}
	if (strcmp(key, "revocation_local") == 0) {
		if (yes_no(v, &pr->rev_local) != 0)
			return fail(err, len, "revocation_local: yes or no");
		return 0;
	}
	return fail(err, len, "unknown key '%s' in a profile", key);
}

static int set_profile(struct policy_profile *pr, const char *key,
		       const char *v, char *err, size_t len)
{
	if (strcmp(key, "ca") == 0) {
		if (v[0] != '/' || copy(pr->ca, sizeof(pr->ca), v) != 0)
			return fail(err, len, "ca: an absolute path");
		return 0;
	}
	if (strcmp(key, "names") == 0)
		return each_item(v, add_host, &pr->names, err, len);
	if (strcmp(key, "organisation") == 0 || strcmp(key, "organization") == 0) {
		if (copy(pr->organisation, sizeof(pr->organisation), v) != 0)
			return fail(err, len, "organisation too long");
		return 0;
	}
	if (strcmp(key, "pins") == 0)
		return each_item(v, add_pin, pr, err, len);
	if (strcmp(key, "min_tls") == 0) {
		if (strcmp(v, "1.2") == 0)
			pr->min_tls = 12;
		else if (strcmp(v, "1.3") == 0)
			pr->min_tls = 13;
		else
			return fail(err, len, "min_tls: 1.2 or 1.3");
		return 0;
	}
	if (strcmp(key, "crl") == 0)
		return each_item(v, add_crl, pr, err, len);
	if (strcmp(key, "ocsp") == 0) {
		if (strcmp(v, "off") == 0)
			pr->ocsp = POLICY_OCSP_OFF;
		else if (strcmp(v, "optional") == 0)
			pr->ocsp = POLICY_OCSP_OPTIONAL;
		else if (strcmp(v, "required") == 0)
			pr->ocsp = POLICY_OCSP_REQUIRED;
		else
			return fail(err, len, "ocsp: off, optional or required");
		return 0;
	}
	if (strcmp(key, "revocation") == 0) {
		if (strcmp(v, "fail-closed") == 0)
			pr->revocation = POLICY_REVOCATION_FAIL_CLOSED;
		else if (strcmp(v, "fail-open") == 0)
			pr->revocation = POLICY_REVOCATION_FAIL_OPEN;
		else
			return fail(err, len, "revocation: fail-closed or fail-open");
		return 0;
	}
	if (strcmp(key, "verify") == 0 || strcmp(key, "insecure") == 0)
		return fail(err, len, "server verification cannot be turned off");
	if (strncmp(key, "revocation_", 11) == 0 || strcmp(key, "ocsp_url") == 0)
		return set_profile_revocation(pr, key, v, err, len);
	return fail(err, len, "unknown key '%s' in a profile", key);
}

int policy_set_caller(struct policy_rule *r, const char *key,
		      const char *value, char *err, size_t err_len)
{
	if (*value == '\0')
		return fail(err, err_len, "%s: empty value", key);
	if (strcmp(key, "uid") != 0 && strcmp(key, "gid") != 0 &&
	    strcmp(key, "exe") != 0 && strcmp(key, "unit") != 0)
		return fail(err, err_len, "%s: not a caller matcher", key);
	return set_rule(r, key, value, err, err_len);
}

int policy_set(struct policy *p, enum policy_section s, int index,
	       const char *key, const char *value, char *err, size_t err_len)
{
	if (*value == '\0')
		return fail(err, err_len, "%s: empty value", key);
	switch (s) {
	case POLICY_SECTION_RULE:
		if (index < 0 || (unsigned)index >= p->n_rules)
			break;
		return set_rule(&p->rules[index], key, value, err, err_len);
	case POLICY_SECTION_PROFILE:
		if (index < 0 || (unsigned)index >= p->n_profiles)
			break;
		return set_profile(&p->profiles[index], key, value, err, err_len);
	case POLICY_SECTION_DESTINATIONS: {
		struct policy_destset *ds;
		int handled;

		if (index < 0 || (unsigned)index >= p->n_destsets)
			break;
		ds = &p->destsets[index];
		if (strcmp(key, "env") == 0) {
			if (copy(ds->env, sizeof(ds->env), value) != 0)
				return fail(err, err_len, "env too long");
			return 0;
		}
		if (set_dest(&ds->match, key, value, err, err_len, &handled) != 0)
			return -1;
		if (!handled)
			return fail(err, err_len, "unknown key '%s' in "
				    "destinations", key);
		return 0;
	}
	}
	return fail(err, err_len, "no such item");
}

/* Could some destination satisfy both matchers? Decided conservatively:
 * "yes" whenever unsure, since a yes only makes loading stricter. */
static int ports_overlap(const struct policy_ports *a, const struct policy_ports *b)
{
	if (a->n == 0 || b->n == 0)
		return 1;
	for (unsigned i = 0; i < a->n; i++)
		for (unsigned j = 0; j < b->n; j++)
			if (a->lo[i] <= b->hi[j] && b->lo[j] <= a->hi[i])
				return 1;
	return 0;
}

static int cidrs_overlap(const struct policy_cidrs *a, unsigned i,
			 const struct policy_cidrs *b, unsigned j)
{
	unsigned bits = a->prefix[i] < b->prefix[j] ? a->prefix[i] : b->prefix[j];
	unsigned full = bits / 8, rest = bits % 8;

	if (a->family[i] != b->family[j]) {
		/* IPv6 ranges that hold ::ffff:0:0/96 reach all of IPv4. */
		const struct policy_cidrs *v6 = a->family[i] == 6 ? a : b;
		unsigned k = a->family[i] == 6 ? i : j;
		static const uint8_t mapped[16] = { 0, 0, 0, 0, 0, 0, 0, 0,
						    0, 0, 0xff, 0xff };
		struct policy_cidrs probe = { .n = 1 };

		probe.family[0] = 6;
		memcpy(probe.addr[0], mapped, 16);
		probe.prefix[0] = 96;
		return v6->prefix[k] <= 96 && cidrs_overlap(v6, k, &probe, 0);
	}
	if (memcmp(a->addr[i], b->addr[j], full) != 0)
		return 0;
	return rest == 0 ||
	       ((a->addr[i][full] ^ b->addr[j][full]) & (0xff << (8 - rest))) == 0;
}

/* Could a destination written as this host pattern be in one of the
 * ranges? An address literal is compared; a pattern made only of address
 * characters and wildcards ("10.*.*.*") is assumed to. */
static int host_may_be_in(const char *pattern, const struct policy_cidrs *c)
{
	struct policy_cidrs one = { .n = 1 };
	uint8_t addr[16];
	int f;

	if (c->n == 0)
		return 0;
	f = policy_parse_address(pattern, addr);
	if (f == 0)
		return strpbrk(pattern, "*?") != NULL &&
		       strspn(pattern, "0123456789.:*?[]abcdefABCDEF") ==
			       strlen(pattern);
	one.family[0] = (uint8_t)f;
	memcpy(one.addr[0], addr, 16);
	one.prefix[0] = f == 4 ? 32 : 128;
	for (unsigned j = 0; j < c->n; j++)
		if (cidrs_overlap(&one, 0, c, j))
			return 1;
	return 0;
}

static int where_overlap(const struct policy_dest_match *a,
			 const struct policy_dest_match *b)
{
	int any_a = a->hosts.n || a->cidrs.n, any_b = b->hosts.n || b->cidrs.n;

	if (!any_a || !any_b)
		return 1;
	for (unsigned i = 0; i < a->hosts.n; i++)
		for (unsigned j = 0; j < b->hosts.n; j++)
			if (policy_host_match(a->hosts.pattern[i], b->hosts.pattern[j]) ||
			    policy_host_match(b->hosts.pattern[j], a->hosts.pattern[i]))
				return 1;
	for (unsigned i = 0; i < a->cidrs.n; i++)
		for (unsigned j = 0; j < b->cidrs.n; j++)
			if (cidrs_overlap(&a->cidrs, i, &b->cidrs, j))
				return 1;
	/* A host pattern against a CIDR: an address literal written as a
	 * host could fall in the range. */
	for (unsigned i = 0; i < a->hosts.n; i++)
		if (host_may_be_in(a->hosts.pattern[i], &b->cidrs))
			return 1;
	for (unsigned i = 0; i < b->hosts.n; i++)
		if (host_may_be_in(b->hosts.pattern[i], &a->cidrs))
			return 1;
	return 0;
}

static int dest_overlap(const struct policy_dest_match *a,
			const struct policy_dest_match *b)
{
	return where_overlap(a, b) && ports_overlap(&a->ports, &b->ports);
}

static int check_environments(const struct policy *p,
			      const struct policy_rule *r, char *err,
			      size_t len)
{
	const struct policy_identity *id = &p->identities[r->identity];

	if (id->env[0] == '\0')
		return 0;
	for (unsigned j = 0; j < p->n_destsets; j++) {
		const struct policy_destset *ds = &p->destsets[j];
		int reach = 0;

		if (ds->env[0] == '\0' || strcmp(ds->env, id->env) == 0)
			continue;
		if (!r->has_dest && r->n_destsets == 0)
			reach = 1; /* the rule matches every destination */
		if (r->has_dest && dest_overlap(&r->dest, &ds->match))
			reach = 1;
		for (unsigned k = 0; k < r->n_destsets && !reach; k++)
			reach = dest_overlap(&p->destsets[r->destsets[k]].match,
					     &ds->match);
		if (reach)
			return fail(err, len, "[rule %s]: identity '%s' is "
				    "tagged env %s but the rule can reach "
				    "[destinations %s], tagged env %s",
				    r->name, id->name, id->env, ds->name,
				    ds->env);
	}
	return 0;
}

int policy_finish(struct policy *p, char *err, size_t err_len, int *line)
{
	for (unsigned i = 0; i < p->n_profiles; i++) {
		struct policy_profile *pr = &p->profiles[i];

		*line = pr->line;
		if (pr->ca[0] == '\0')
			return fail(err, err_len, "[profile %s]: ca= is required",
				    pr->name);
		/* A staple is asked for when the profile takes one. */
		for (unsigned k = 0; k < pr->n_rev_methods; k++)
			if (pr->rev_methods[k] == POLICY_REV_STAPLE &&
			    pr->ocsp == POLICY_OCSP_OFF)
				pr->ocsp = POLICY_OCSP_OPTIONAL;
		if ((pr->n_crls > 0 || pr->ocsp != POLICY_OCSP_OFF ||
		     pr->n_rev_methods > 0) &&
		    pr->revocation == POLICY_REVOCATION_UNSET)
			return fail(err, err_len, "[profile %s]: checks "
				    "revocation, so it must say revocation = "
				    "fail-closed or fail-open", pr->name);
	}
	for (unsigned i = 0; i < p->n_rules; i++) {
		struct policy_rule *r = &p->rules[i];

		*line = r->line;
		if (r->action == POLICY_ACTION_NONE)
			return fail(err, err_len, "[rule %s]: action = allow "
				    "or deny is required", r->name);
		for (unsigned k = 0; k < r->n_destsets; k++) {
			int found = -1;

			for (unsigned j = 0; j < p->n_destsets; j++)
				if (strcmp(p->destsets[j].name,
					   r->destset_names[k]) == 0)
					found = (int)j;
			if (found < 0)
				return fail(err, err_len, "[rule %s]: no "
					    "[destinations %s]", r->name,
					    r->destset_names[k]);
			r->destsets[k] = found;
		}
		if (r->action == POLICY_ACTION_DENY) {
			if (r->identity_name[0] || r->profile_name[0])
				return fail(err, err_len, "[rule %s]: a deny "
					    "rule takes no identity or profile",
					    r->name);
			continue;
		}
		if (r->identity_name[0] == '\0' || r->profile_name[0] == '\0')
			return fail(err, err_len, "[rule %s]: an allow rule "
				    "needs identity= and profile=", r->name);
		for (unsigned j = 0; j < p->n_identities; j++)
			if (strcmp(p->identities[j].name, r->identity_name) == 0)
				r->identity = (int)j;
		if (r->identity < 0)
			return fail(err, err_len, "[rule %s]: no [identity %s]",
				    r->name, r->identity_name);
		for (unsigned j = 0; j < p->n_profiles; j++)
			if (strcmp(p->profiles[j].name, r->profile_name) == 0)
				r->profile = (int)j;
		if (r->profile < 0)
			return fail(err, err_len, "[rule %s]: no [profile %s]",
				    r->name, r->profile_name);
		if (check_environments(p, r, err, err_len) != 0)
			return -1;
	}
	*line = 0;
	return 0;
}
