/* Matchers and the decision. */
#include <arpa/inet.h>
#include <ctype.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "policy.h"

const char *policy_reason_name(enum policy_reason r)
{
	switch (r) {
	case POLICY_REASON_ALLOWED:
		return "allowed";
	case POLICY_REASON_RULE_DENIES:
		return "policy_denied";
	case POLICY_REASON_NO_RULE:
		return "no_rule";
	case POLICY_REASON_ENVIRONMENT:
		return "environment";
	}
	return "unknown";
}

/* Paths: '*' does not cross '/'. */
int policy_glob_match(const char *pattern, const char *s)
{
	return fnmatch(pattern, s, FNM_PATHNAME) == 0;
}

/* Host names compare without case and without a trailing dot; '*' and '?'
 * never match a dot, so "*.corp.example" matches "a.corp.example" but
 * neither "corp.example" nor "a.b.corp.example". */
int policy_host_match(const char *pattern, const char *host)
{
	size_t pl = strlen(pattern), sl = strlen(host);
	size_t p = 0, s = 0, star = (size_t)-1, mark = 0;

	/* "evil.example." and "evil.example" are one name, written either
	 * way in a rule or in a request. */
	if (sl > 0 && host[sl - 1] == '.')
		sl--;
	if (pl > 0 && pattern[pl - 1] == '.')
		pl--;
	if (sl == 0 || sl >= POLICY_HOST_MAX)
		return 0;
	while (s < sl) {
		if (p < pl && pattern[p] == '*') {
			star = p++;
			mark = s;
		} else if (p < pl && ((pattern[p] == '?' && host[s] != '.') ||
				      tolower((unsigned char)pattern[p]) ==
					      tolower((unsigned char)host[s]))) {
			p++;
			s++;
		} else if (star != (size_t)-1 && host[mark] != '.') {
			p = star + 1;
			s = ++mark;
		} else {
			return 0;
		}
	}
	while (p < pl && pattern[p] == '*')
		p++;
	return p == pl;
}

int policy_parse_address(const char *host, uint8_t addr[16])
{
	char buf[64];
	size_t n = strlen(host);

	/* "[::1]" as well as "::1". */
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof(buf)) {
		memcpy(buf, host + 1, n - 2);
		buf[n - 2] = '\0';
		host = buf;
	}
	if (inet_pton(AF_INET, host, addr) == 1)
		return 4;
	if (inet_pton(AF_INET6, host, addr) == 1) {
		/* ::ffff:a.b.c.d reaches a.b.c.d: it is that IPv4 address
		 * for every rule. */
		static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0,
						    0, 0, 0, 0, 0xff, 0xff };

		if (memcmp(addr, mapped, 12) == 0) {
			memmove(addr, addr + 12, 4);
			return 4;
		}
		return 6;
	}
	return 0;
}

static int cidr_contains(const struct policy_cidrs *c, unsigned i, int family,
			 const uint8_t *addr)
{
	unsigned bits = c->prefix[i], full = bits / 8, rest = bits % 8;
	uint8_t v6[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	/* An IPv6 range can hold IPv4 addresses as ::ffff:a.b.c.d. */
	if (c->family[i] == 6 && family == 4) {
		memcpy(v6 + 12, addr, 4);
		addr = v6;
		family = 6;
	}
	if (c->family[i] != family)
		return 0;
	if (memcmp(c->addr[i], addr, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((c->addr[i][full] ^ addr[full]) & (0xff << (8 - rest))) == 0;
}

static int dest_match(const struct policy_dest_match *m,
		      const struct policy_dest *d)
{
	uint8_t addr[16];
	int family, where = 0;

	if (m->hosts.n > 0 || m->cidrs.n > 0) {
		if (d->family == 4 || d->family == 6) {
			family = d->family;
			memcpy(addr, d->addr, sizeof(addr));
		} else {
			family = policy_parse_address(d->host, addr);
		}
		for (unsigned i = 0; i < m->hosts.n && !where; i++)
			where = policy_host_match(m->hosts.pattern[i], d->host);
		for (unsigned i = 0; i < m->cidrs.n && !where && family; i++)
			where = cidr_contains(&m->cidrs, i, family, addr);
		if (!where)
			return 0;
	}
	if (m->ports.n > 0) {
		for (unsigned i = 0; i < m->ports.n; i++)
			if (d->port >= m->ports.lo[i] && d->port <= m->ports.hi[i])
				return 1;
		return 0;
	}
	return 1;
}

static int list_has(const int64_t *v, unsigned n, int64_t x)
{
	for (unsigned i = 0; i < n; i++)
		if (v[i] == x)
			return 1;
	return 0;
}

static int globs_match(const struct policy_hosts *g, const char *s)
{
	if (s == NULL)
		return 0;
	for (unsigned i = 0; i < g->n; i++)
		if (policy_glob_match(g->pattern[i], s))
			return 1;
	return 0;
}

/* Days since 1970-01-01 -> weekday, 0 = Sunday (1970-01-01 was Thursday). */
static int weekday(int64_t t)
{
	int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;

	return (int)(((days % 7) + 7 + 4) % 7);
}

static const char *window_miss(const struct policy_window *w, int64_t now)
{
	int hour;

	if (w->not_before != 0 && now < w->not_before)
		return "before not_before";
	if (w->not_after != 0 && now >= w->not_after)
		return "after not_after";
	if (w->weekdays != 0 && !(w->weekdays & (1u << weekday(now))))
		return "outside days";
	if (w->hour_from >= 0) {
		hour = (int)(((now % 86400) + 86400) % 86400 / 3600);
		if (w->hour_from <= w->hour_to ?
			    (hour < w->hour_from || hour >= w->hour_to) :
			    (hour < w->hour_from && hour >= w->hour_to))
			return "outside hours";
	}
	return NULL;
}

enum caller_fit { CALLER_MATCH, CALLER_MISS, CALLER_UNKNOWN };

/* Whether the caller fits the rule's caller matchers; *what names the
 * attribute that missed or was unknown. A known miss on any attribute
 * decides (the rule does not apply); otherwise an unknown one leaves it
 * open. */
static enum caller_fit caller_fit(const struct policy_rule *r,
				  const struct policy_caller *c,
				  const char **what)
{
	enum caller_fit fit = CALLER_MATCH;

	*what = NULL;
	if (r->n_uids > 0) {
		if (c->uid < 0) {
			fit = CALLER_UNKNOWN;
			*what = "uid";
		} else if (!list_has(r->uids, r->n_uids, c->uid)) {
			*what = "uid";
			return CALLER_MISS;
		}
	}
	if (r->n_gids > 0) {
		int in = c->gid >= 0 && list_has(r->gids, r->n_gids, c->gid);

		for (unsigned i = 0; !in && i < c->n_groups; i++)
			in = list_has(r->gids, r->n_gids, c->groups[i]);
		if (!in && (c->gid < 0 || !c->groups_known)) {
			/* A group we could not see may be the one named. */
			fit = CALLER_UNKNOWN;
			*what = *what ? *what : "gid";
		} else if (!in) {
			*what = "gid";
			return CALLER_MISS;
		}
	}
	if (r->exes.n > 0) {
		if (c->exe == NULL) {
			fit = CALLER_UNKNOWN;
			*what = *what ? *what : "exe";
		} else if (!globs_match(&r->exes, c->exe)) {
			*what = "exe";
			return CALLER_MISS;
		}
	}
	if (r->units.n > 0) {
		if (c->unit == NULL) {
			fit = CALLER_UNKNOWN;
			*what = *what ? *what : "unit";
		} else if (!globs_match(&r->units, c->unit)) {
			*what = "unit";
			return CALLER_MISS;
		}
	}
	return fit;
}

int policy_caller_allows(const struct policy_rule *r,
			 const struct policy_caller *c, char *why,
			 size_t why_len)
{
	const char *what;
	enum caller_fit fit = caller_fit(r, c, &what);

	if (fit == CALLER_MATCH)
		return 1;
	snprintf(why, why_len, "%s %s", what,
		 fit == CALLER_MISS ? "not allowed" : "unknown");
	return 0;
}

static int rule_dest_match(const struct policy *p, const struct policy_rule *r,
			   const struct policy_dest *d)
{
	if (!r->has_dest && r->n_destsets == 0)
		return 1;
	if (r->has_dest && dest_match(&r->dest, d))
		return 1;
	for (unsigned i = 0; i < r->n_destsets; i++)
		if (dest_match(&p->destsets[r->destsets[i]].match, d))
			return 1;
	return 0;
}

static void why(struct policy_decision *out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void why(struct policy_decision *out, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out->why, sizeof(out->why), fmt, ap);
	va_end(ap);
}

void policy_decide(const struct policy *p, const struct policy_caller *c,
		   const struct policy_dest *d, int64_t now,
		   struct policy_decision *out)
{
	memset(out, 0, sizeof(*out));
	out->rule = out->identity = out->profile = -1;
	for (unsigned i = 0; i < p->n_rules; i++) {
		const struct policy_rule *r = &p->rules[i];
		const struct policy_identity *id;
		const char *what;
		enum caller_fit fit = caller_fit(r, c, &what);

		if (fit == CALLER_MISS || !rule_dest_match(p, r, d) ||
		    window_miss(&r->when, now) != NULL)
			continue;
		if (fit == CALLER_UNKNOWN && r->action != POLICY_ACTION_DENY)
			continue; /* an allow needs every named attribute seen */
		out->rule = (int)i;
		if (r->action == POLICY_ACTION_DENY) {
			out->reason = POLICY_REASON_RULE_DENIES;
			if (fit == CALLER_UNKNOWN)
				why(out, "rule '%s' (line %d) denies: the "
					 "caller's %s is unknown (%s)", r->name,
				    r->line, what,
				    r->reason[0] ? r->reason : "denied");
			else
				why(out, "rule '%s' (line %d) denies: %s",
				    r->name, r->line,
				    r->reason[0] ? r->reason : "denied");
			return;
		}
		/* A destination tagged with an environment is reachable only
		 * by identities of the same environment, whatever the rules
		 * say (the load-time check catches what it can see). */
		id = &p->identities[r->identity];
		for (unsigned j = 0; j < p->n_destsets; j++) {
			const struct policy_destset *ds = &p->destsets[j];

			if (ds->env[0] == '\0' || id->env[0] == '\0' ||
			    strcmp(ds->env, id->env) == 0)
				continue;
			if (dest_match(&ds->match, d)) {
				out->reason = POLICY_REASON_ENVIRONMENT;
				why(out, "rule '%s' (line %d) would present "
					 "identity '%s' (env %s) to %s:%u, "
					 "which [destinations %s] tags env %s",
				    r->name, r->line, id->name, id->env,
				    d->host, d->port, ds->name, ds->env);
				return;
			}
		}
		out->reason = POLICY_REASON_ALLOWED;
		out->identity = r->identity;
		out->profile = r->profile;
		why(out, "rule '%s' (line %d) allows: identity '%s', "
			 "profile '%s'", r->name, r->line, id->name,
		    p->profiles[r->profile].name);
		return;
	}
	out->reason = POLICY_REASON_NO_RULE;
	why(out, "no rule matches uid %lld to %s:%u: default deny",
	    (long long)c->uid, d->host, d->port);
}
