/* libFuzzer: policy/ on its own. The input is read as lines:
 *
 *   [rule NAME] / [profile NAME] / [destinations NAME]   start an item
 *   [identity NAME] or [identity NAME ENV]                add an identity
 *   key = value                                           set on the item
 *   @ HOST PORT [UID]                                     one more decision
 *   ; or # comment, anything else: ignored
 *
 * Every line also goes through the parsing helpers. When policy_finish
 * accepts the policy, a few fixed callers x destinations x times (and the
 * "@" lines) are decided, and each decision is checked for consistency. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_INPUT 65536
#define MAX_EXTRA 8

static struct policy *pol;

struct extra {
	char host[POLICY_HOST_MAX];
	unsigned port;
	long long uid;
};

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t' || *s == '\r')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* The building blocks, on whatever the line holds. */
static void helpers(const char *s)
{
	uint8_t addr[16], pin[32], family, prefix;
	int64_t t;

	(void)policy_parse_time(s, &t);
	(void)policy_parse_pin(s, pin);
	if (policy_parse_cidr(s, &family, addr, &prefix) == 0 &&
	    ((family != 4 && family != 6) || prefix > (family == 4 ? 32 : 128)))
		__builtin_trap();
	(void)policy_parse_address(s, addr);
	(void)policy_host_match(s, "a.corp.example");
	(void)policy_host_match("*.corp.example", s);
	(void)policy_glob_match(s, "/usr/bin/curl");
}

/* A decision must be self-consistent whatever the policy says. */
static void check(const struct policy *p, const struct policy_caller *c,
		  const char *host, unsigned port, int64_t now)
{
	struct policy_dest d = { .host = host, .port = (uint16_t)port };
	struct policy_decision out;
	const struct policy_rule *r;

	policy_decide(p, c, &d, now, &out);
	if (memchr(out.why, '\0', sizeof(out.why)) == NULL)
		__builtin_trap();
	(void)policy_reason_name(out.reason);
	/* First match wins: with only the rules before the deciding one,
	 * nothing matches. */
	if (out.rule >= 0 && (unsigned)out.rule < p->n_rules) {
		struct policy_decision before;
		struct policy *q = (struct policy *)p; /* pol is not const */
		unsigned n = q->n_rules;

		q->n_rules = (unsigned)out.rule;
		policy_decide(q, c, &d, now, &before);
		q->n_rules = n;
		if (before.reason != POLICY_REASON_NO_RULE)
			__builtin_trap();
	}
	switch (out.reason) {
	case POLICY_REASON_NO_RULE:
		if (out.rule != -1 || out.identity != -1 || out.profile != -1)
			__builtin_trap();
		return;
	case POLICY_REASON_RULE_DENIES:
		if (out.rule < 0 || (unsigned)out.rule >= p->n_rules ||
		    p->rules[out.rule].action != POLICY_ACTION_DENY ||
		    out.identity != -1 || out.profile != -1)
			__builtin_trap();
		return;
	case POLICY_REASON_ENVIRONMENT:
		if (out.rule < 0 || (unsigned)out.rule >= p->n_rules ||
		    p->rules[out.rule].action != POLICY_ACTION_ALLOW ||
		    out.identity != -1 || out.profile != -1)
			__builtin_trap();
		return;
	case POLICY_REASON_ALLOWED:
		break;
	default:
		__builtin_trap();
	}
	if (out.rule < 0 || (unsigned)out.rule >= p->n_rules ||
	    out.identity < 0 || (unsigned)out.identity >= p->n_identities ||
	    out.profile < 0 || (unsigned)out.profile >= p->n_profiles)
		__builtin_trap();
	r = &p->rules[out.rule];
	if (r->action != POLICY_ACTION_ALLOW || r->identity != out.identity ||
	    r->profile != out.profile)
		__builtin_trap();
	/* An allow never rests on an attribute the agent could not see. */
	if ((r->n_uids > 0 && c->uid < 0) || (r->exes.n > 0 && c->exe == NULL) ||
	    (r->units.n > 0 && c->unit == NULL))
		__builtin_trap();
	if (r->n_gids > 0 && (c->gid < 0 || !c->groups_known)) {
		int in = 0;

		for (unsigned i = 0; i < r->n_gids; i++)
			in |= r->gids[i] == c->gid;
		for (unsigned i = 0; i < c->n_groups; i++)
			for (unsigned j = 0; j < r->n_gids; j++)
				in |= r->gids[j] == c->groups[i];
		if (!in)
			__builtin_trap();
	}
}

static void decide_all(const struct policy *p, const struct extra *x,
		       unsigned n_x)
{
	static const uint32_t groups[] = { 10, 27, 4242 };
	static const struct {
		const char *host;
		unsigned port;
	} dests[] = {
		{ "api.example", 443 },   { "db.prod.example", 5432 },
		{ "10.1.2.3", 443 },      { "[::1]", 8443 },
		{ "ab", 1 },              { "a.b.corp.example.", 65535 },
		{ "::ffff:10.1.2.3", 80 }, { "", 0 },
	};
	struct policy_caller callers[3] = {
		{ .uid = 1000, .gid = 1000, .pid = 1, .groups = groups,
		  .n_groups = 3, .groups_known = 1, .exe = "/usr/bin/curl",
		  .unit = "app.service" },
		{ .uid = 0, .gid = 0, .pid = 1, .groups_known = 1,
		  .exe = "/usr/sbin/cron", .unit = "cron.service" },
		{ .uid = -1, .gid = -1, .pid = -1 },
	};
	/* 2026-11-30T08:00:00Z (Monday), 2026-11-28T23:30:00Z (Saturday),
	 * 1970-01-01, and one before it */
	static const int64_t times[] = { 1795996800 + 8 * 3600,
					 1795824000 + 23 * 3600 + 1800, 0, -1 };

	for (unsigned c = 0; c < 3; c++)
		for (unsigned d = 0; d < sizeof(dests) / sizeof(dests[0]); d++)
			for (unsigned t = 0; t < sizeof(times) / sizeof(times[0]); t++)
				check(p, &callers[c], dests[d].host, dests[d].port,
				      times[t]);
	for (unsigned i = 0; i < n_x; i++) {
		struct policy_caller c = callers[0];

		c.uid = x[i].uid;
		check(p, &c, x[i].host, x[i].port, times[0]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512], *buf, *line, *next;
	enum policy_section sec = POLICY_SECTION_RULE;
	int idx = -1, have = 0, fline = 0, lineno = 0;
	struct extra extra[MAX_EXTRA];
	unsigned n_extra = 0;

	if (size > MAX_INPUT)
		return 0;
	if (pol == NULL && (pol = calloc(1, sizeof(*pol))) == NULL)
		abort();
	/* policy_add and policy_add_identity clear each new item: resetting
	 * the counts gives an empty policy without clearing megabytes. */
	pol->n_rules = pol->n_profiles = pol->n_destsets = 0;
	pol->n_identities = 0;
	buf = malloc(size + 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';

	for (line = buf; line != NULL; line = next) {
		char *s, *eq;

		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		lineno++;
		s = trim(line);
		helpers(s);
		if (*s == '\0' || *s == ';' || *s == '#')
			continue;
		if (*s == '[') {
			char kind[32], name[POLICY_NAME_MAX * 2], env[POLICY_NAME_MAX * 2];
			int n = sscanf(s + 1, "%31s %127s %127[^]]", kind, name, env);
			size_t nl;

			have = 0;
			if (n < 2)
				continue;
			nl = strlen(name);
			if (n == 2 && nl > 0 && name[nl - 1] == ']')
				name[nl - 1] = '\0';
			if (strcmp(kind, "identity") == 0) {
				(void)policy_add_identity(pol, name,
							  n == 3 ? trim(env) : NULL,
							  err, sizeof(err));
				continue;
			}
			if (strcmp(kind, "rule") == 0)
				sec = POLICY_SECTION_RULE;
			else if (strcmp(kind, "profile") == 0)
				sec = POLICY_SECTION_PROFILE;
			else if (strcmp(kind, "destinations") == 0)
				sec = POLICY_SECTION_DESTINATIONS;
			else
				continue;
			idx = policy_add(pol, sec, name, lineno, err, sizeof(err));
			have = 1; /* even when idx is -1: policy_set must refuse */
			continue;
		}
		if (*s == '@') {
			struct extra *x = &extra[n_extra];

			if (n_extra < MAX_EXTRA) {
				x->uid = 1000;
				if (sscanf(s + 1, "%255s %u %lld", x->host,
					   &x->port, &x->uid) >= 2) {
					x->port &= 0xffff;
					n_extra++;
				}
			}
			continue;
		}
		eq = strchr(s, '=');
		if (eq == NULL || !have)
			continue;
		*eq = '\0';
		helpers(trim(eq + 1));
		(void)policy_set(pol, sec, idx, trim(s), trim(eq + 1), err,
				 sizeof(err));
	}
	if (policy_finish(pol, err, sizeof(err), &fline) == 0)
		decide_all(pol, extra, n_extra);
	else if (memchr(err, '\0', sizeof(err)) == NULL)
		__builtin_trap();
	free(buf);
	return 0;
}
