/* mtlsctl policy check: what the policy decides for a caller and a
 * destination at a time, without connecting. */
#include <getopt.h>
#include <json-c/json.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mtlsctl.h"
#include "policy.h"

static int parse_id(const char *s, int user, int64_t *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*s != '\0' && *end == '\0') {
		*out = (int64_t)v;
		return 0;
	}
	if (user) {
		struct passwd *pw = getpwnam(s);

		if (pw == NULL)
			return -1;
		*out = pw->pw_uid;
	} else {
		struct group *gr = getgrnam(s);

		if (gr == NULL)
			return -1;
		*out = gr->gr_gid;
	}
	return 0;
}

int ctl_policy(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "uid", required_argument, NULL, 'u' },
		{ "gid", required_argument, NULL, 'g' },
		{ "exe", required_argument, NULL, 'e' },
		{ "unit", required_argument, NULL, 'U' },
		{ "dest", required_argument, NULL, 'd' },
		{ "at", required_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	int json = 0;
	struct policy_caller c = { .uid = -1, .gid = -1, .pid = -1 };
	uint32_t groups[64];
	struct policy_decision d;
	struct policy_dest dest = { 0 };
	char host[POLICY_HOST_MAX];
	int64_t at = (int64_t)time(NULL);
	const char *colon;
	int opt;

	if (argc < 2 || strcmp(argv[1], "check") != 0)
		return ctl_usage("policy");
	optind = 2;
	while ((opt = getopt_long(argc, argv, "u:g:e:U:d:a:j", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			json = 1;
			break;
		case 'u':
			if (parse_id(optarg, 1, &c.uid) != 0) {
				fprintf(stderr, "mtlsctl: unknown user %s\n", optarg);
				return 2;
			}
			break;
		case 'g':
			if (parse_id(optarg, 0, &c.gid) != 0) {
				fprintf(stderr, "mtlsctl: unknown group %s\n", optarg);
				return 2;
			}
			break;
		case 'e':
			c.exe = optarg;
			break;
		case 'U':
			c.unit = optarg;
			break;
		case 'd':
			colon = strrchr(optarg, ':');
			if (colon == NULL || (size_t)(colon - optarg) >= sizeof(host) ||
			    atoi(colon + 1) <= 0 || atoi(colon + 1) > 65535) {
				fprintf(stderr, "mtlsctl: --dest HOST:PORT\n");
				return 2;
			}
			memcpy(host, optarg, (size_t)(colon - optarg));
			host[colon - optarg] = '\0';
			dest.host = host;
			dest.port = (uint16_t)atoi(colon + 1);
			break;
		case 'a':
			if (policy_parse_time(optarg, &at) != 0) {
				fprintf(stderr, "mtlsctl: --at like "
						"2026-11-29T08:00:00Z\n");
				return 2;
			}
			break;
		default:
			return 2;
		}
	}
	if (c.uid < 0 || dest.host == NULL) {
		fprintf(stderr, "mtlsctl: policy check needs --uid and --dest\n");
		return 2;
	}
	{
		/* The user's groups as the kernel would report them for a
		 * process of that user; unknown for a uid without an entry. */
		struct passwd *pw = getpwuid((uid_t)c.uid);
		int ng = (int)(sizeof(groups) / sizeof(groups[0]));
		gid_t g[sizeof(groups) / sizeof(groups[0])];

		if (pw != NULL) {
			if (c.gid < 0)
				c.gid = pw->pw_gid;
			if (getgrouplist(pw->pw_name, (gid_t)c.gid, g, &ng) >= 0) {
				for (int i = 0; i < ng; i++)
					groups[i] = (uint32_t)g[i];
				c.groups = groups;
				c.n_groups = (unsigned)ng;
				c.groups_known = 1;
			}
		}
	}
	if (ctl_load_config(ctl) != 0)
		return 1;
	policy_decide(ctl->cfg->policy, &c, &dest, at, &d);
	if (json) {
		json_object *o = json_object_new_object();
		const struct policy *p = ctl->cfg->policy;

		json_object_object_add(o, "decision", json_object_new_string(
			d.reason == POLICY_REASON_ALLOWED ? "allow" : "deny"));
		json_object_object_add(o, "reason",
				       json_object_new_string(policy_reason_name(d.reason)));
		if (d.rule >= 0) {
			json_object_object_add(o, "rule",
					       json_object_new_string(p->rules[d.rule].name));
			json_object_object_add(o, "line",
					       json_object_new_int(p->rules[d.rule].line));
		}
		if (d.reason == POLICY_REASON_ALLOWED) {
			json_object_object_add(o, "identity", json_object_new_string(
				p->identities[d.identity].name));
			json_object_object_add(o, "profile", json_object_new_string(
				p->profiles[d.profile].name));
		}
		json_object_object_add(o, "why", json_object_new_string(d.why));
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
		json_object_put(o);
		return d.reason == POLICY_REASON_ALLOWED ? 0 : 3;
	}
	if (d.reason == POLICY_REASON_ALLOWED) {
		printf("allow\nrule: %s (%s:%d)\nidentity: %s\nprofile: %s\n"
		       "why: %s\n",
		       ctl->cfg->policy->rules[d.rule].name, ctl->config_path,
		       ctl->cfg->policy->rules[d.rule].line,
		       ctl->cfg->policy->identities[d.identity].name,
		       ctl->cfg->policy->profiles[d.profile].name, d.why);
		return 0;
	}
	printf("deny\nreason: %s\n", policy_reason_name(d.reason));
	if (d.rule >= 0)
		printf("rule: %s (%s:%d)\n", ctl->cfg->policy->rules[d.rule].name,
		       ctl->config_path, ctl->cfg->policy->rules[d.rule].line);
	printf("why: %s\n", d.why);
	return 3;
}
